//! The registry: self-hosted model deployments, feature settings and instance settings.
//!
//! Writes go through [`Registry`], which validates them against the catalog, stores them with
//! sqlx (an embedded SQLite file by default) and then swaps in a fresh [`Snapshot`]. Readers,
//! including the request path, only ever look at the snapshot.

mod client_keys;
mod crypto;
mod deployment;
mod error;
mod features;
mod settings;
mod snapshot;
mod store;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hearth_catalog::{Family, Feature, ReleaseStatus};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

pub use client_keys::ClientKey;
pub use crypto::{KeySource, random_token};
pub use deployment::{
    ApiKey, CloudEnvironment, Deployment, DeploymentPatch, DeploymentPlatform, NewDeployment,
    TimeoutOverrides, TimeoutPatch,
};
pub use error::RegistryError;
pub use features::{Binding, FeatureSetting};
pub use settings::{Settings, SettingsPatch};
pub use snapshot::Snapshot;

use crate::crypto::{SecretBox, write_private_file};
use crate::deployment::{API_KEY_MAX, validate};
use crate::error::Result;
use crate::features::check_binding;
use crate::store::KeyChange;

/// Where the registry keeps its state.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    pub data_dir: PathBuf,
    /// `sqlite://…`; defaults to `hearth.db` in the data directory.
    pub database_url: Option<String>,
    /// HEARTH_SECRET_KEY; without it a key file in the data directory is used.
    pub secret_key: Option<SecretString>,
    /// What cloud credentials the environment provides, for the registration checks.
    pub cloud: CloudEnvironment,
}

/// A result that went through, with anything the caller should be told about it.
#[derive(Debug)]
pub struct Outcome<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// See [`Registry::migration_status`].
#[derive(Clone, Debug)]
pub struct MigrationStatus {
    pub applied: usize,
    pub pending: Vec<String>,
    pub unknown: Vec<i64>,
}

pub struct Registry {
    pool: SqlitePool,
    secrets: SecretBox,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises check-then-write sequences (rating checks, in-use checks) within this
    /// process; the database constraints guard the rest.
    write_lock: tokio::sync::Mutex<()>,
    key_source: KeySource,
    database: String,
    cloud: CloudEnvironment,
}

impl Registry {
    pub async fn open(config: &RegistryConfig) -> Result<Registry> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            RegistryError::Config(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let (secrets, key_source) = SecretBox::load(config.secret_key.as_ref(), &config.data_dir)?;
        let (options, database) = connect_options(config)?;
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await
            .map_err(|e| RegistryError::Config(format!("cannot open database {database}: {e}")))?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let snapshot = store::load(&pool, &secrets).await?;
        Ok(Registry {
            pool,
            secrets,
            snapshot: ArcSwap::from_pointee(snapshot),
            write_lock: tokio::sync::Mutex::new(()),
            key_source,
            database,
            cloud: config.cloud.clone(),
        })
    }

    /// The current state, without locks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// The database in use, for logs (never carries a password: SQLite has none).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// How the database's schema compares with this binary's migrations: the ones it lacks
    /// and the versions it has that this binary does not know (a newer Hearth wrote them).
    /// `open` applies migrations, so anything here means another process changed the database.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let applied: Vec<(i64,)> =
            sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await?;
        let applied: Vec<i64> = applied.into_iter().map(|(v,)| v).collect();
        let migrator = sqlx::migrate!("./migrations/sqlite");
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        Ok(MigrationStatus {
            applied: applied.len(),
            pending: migrator
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .map(|m| format!("{} {}", m.version, m.description))
                .collect(),
            unknown: applied.into_iter().filter(|v| !known.contains(v)).collect(),
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub async fn create_deployment(
        &self,
        input: NewDeployment,
    ) -> Result<Outcome<Arc<Deployment>>> {
        let _guard = self.write_lock.lock().await;
        let snap = self.snapshot();
        let valid = validate(&input, &snap.settings, true, &self.cloud)?;
        let sealed = match non_empty_key(input.api_key)? {
            Some(key) => Some(self.secrets.seal(&key)?),
            None => None,
        };
        let mut conn = self.pool.acquire().await?;
        let id = store::insert_deployment(&mut conn, &valid, sealed, &now())
            .await
            .map_err(|e| duplicate_name(e, &valid.name))?;
        drop(conn);
        let snap = self.reload().await?;
        let deployment = snap
            .deployment(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("self-hosted model {id} vanished")))?;
        Ok(Outcome {
            value: deployment,
            warnings: valid.warnings,
        })
    }

    pub async fn update_deployment(
        &self,
        id: i64,
        patch: DeploymentPatch,
    ) -> Result<Outcome<Arc<Deployment>>> {
        let _guard = self.write_lock.lock().await;
        let snap = self.snapshot();
        let current = snap.deployment(id).ok_or_else(|| not_found(id))?;
        let family_text = patch
            .family
            .clone()
            .unwrap_or_else(|| current.family.as_str().to_string());
        let family_changed = Family::parse(&family_text) != Some(current.family);
        let identifier_changed = patch
            .identifier
            .as_deref()
            .is_some_and(|i| i.trim() != current.identifier);
        let model = match patch.model {
            Some(m) => m,
            // A new family or identifier may mean a new model: recognise it afresh.
            None if family_changed || identifier_changed => None,
            None => current.model.map(|m| m.id.to_string()),
        };
        // The key only matters to validation as "the deployment has credentials of its own".
        let has_key = match &patch.api_key {
            Some(new) => new.clone(),
            None if current.api_key.is_set() => Some(SecretString::from("stored")),
            None => None,
        };
        let merged = NewDeployment {
            name: patch.name.unwrap_or_else(|| current.name.clone()),
            family: family_text,
            model,
            platform: patch.platform,
            endpoint: patch.endpoint.unwrap_or_else(|| current.endpoint.clone()),
            identifier: patch
                .identifier
                .unwrap_or_else(|| current.identifier.clone()),
            api_key: has_key,
            timeouts: current.timeouts.patched(patch.timeouts),
            api_version: patch
                .api_version
                .unwrap_or_else(|| current.api_version.clone()),
            region: patch.region.unwrap_or_else(|| current.region.clone()),
        };
        let valid = validate(&merged, &snap.settings, family_changed, &self.cloud)?;
        let mut warnings = valid.warnings.clone();

        // The features bound to this deployment must still be allowed on what it becomes.
        let would_be = Deployment {
            family: valid.family,
            model: valid.model,
            platform: valid.platform,
            name: valid.name.clone(),
            timeouts: valid.timeouts,
            api_version: valid.api_version.clone(),
            region: valid.region.clone(),
            ..(**current).clone()
        };
        for feature in snap.features_using(id) {
            match check_binding(feature, &would_be, &snap.settings) {
                Ok(w) => warnings.extend(w),
                Err(RegistryError::Invalid { message, .. }) => {
                    return Err(RegistryError::invalid(
                        if family_changed { "family" } else { "model" },
                        format!(
                            "this change would break a feature that uses the deployment: {message}"
                        ),
                    ));
                }
                Err(e) => return Err(e),
            }
        }

        let key = match patch.api_key {
            None => KeyChange::Keep,
            Some(new) => match non_empty_key(new)? {
                Some(k) => KeyChange::Set(self.secrets.seal(&k)?),
                None => KeyChange::Clear,
            },
        };
        let mut tx = self.pool.begin().await?;
        store::update_deployment(&mut tx, id, &valid, key, &now())
            .await
            .map_err(|e| duplicate_name(e, &valid.name))?;
        tx.commit().await?;
        let snap = self.reload().await?;
        let deployment = snap.deployment(id).cloned().ok_or_else(|| not_found(id))?;
        Ok(Outcome {
            value: deployment,
            warnings,
        })
    }

    pub async fn delete_deployment(&self, id: i64) -> Result<()> {
        let _guard = self.write_lock.lock().await;
        let snap = self.snapshot();
        let current = snap.deployment(id).ok_or_else(|| not_found(id))?;
        let in_use = snap.features_using(id);
        if !in_use.is_empty() {
            return Err(in_use_conflict(&current.name, &in_use));
        }
        let mut conn = self.pool.acquire().await?;
        let deleted = store::delete_deployment(&mut conn, id)
            .await
            .map_err(|e| match e {
                RegistryError::Storage(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
                    RegistryError::Conflict {
                        field: None,
                        message: format!(
                            "self-hosted model {:?} is used by a feature; rebind or disable it first",
                            current.name
                        ),
                    }
                }
                other => other,
            })?;
        drop(conn);
        self.reload().await?;
        if deleted == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    pub async fn set_feature(
        &self,
        feature: Feature,
        binding: Binding,
    ) -> Result<Outcome<FeatureSetting>> {
        let _guard = self.write_lock.lock().await;
        let snap = self.snapshot();
        let warnings = match binding {
            Binding::Disabled => Vec::new(),
            Binding::SelfHosted { deployment_id } => {
                let deployment = snap.deployment(deployment_id).ok_or_else(|| {
                    RegistryError::invalid(
                        "self_hosted_model_id",
                        format!(
                            "no self-hosted model has id {deployment_id}; list them with GET /api/v1/self_hosted_models"
                        ),
                    )
                })?;
                let mut warnings = check_binding(feature, deployment, &snap.settings)?;
                warnings.extend(features::deprecation_warning(deployment));
                warnings
            }
        };
        let mut conn = self.pool.acquire().await?;
        store::upsert_feature(&mut conn, feature, binding, &now()).await?;
        drop(conn);
        let snap = self.reload().await?;
        Ok(Outcome {
            value: snap.feature(feature),
            warnings,
        })
    }

    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Outcome<Settings>> {
        let _guard = self.write_lock.lock().await;
        let before = self.snapshot();
        let mut tx = self.pool.begin().await?;
        let at = now();
        if let Some(on) = patch.beta_models_enabled {
            store::upsert_setting(&mut tx, settings::BETA_MODELS_ENABLED, on, &at).await?;
        }
        if let Some(on) = patch.verbose_ai_logs {
            store::upsert_setting(&mut tx, settings::VERBOSE_AI_LOGS, on, &at).await?;
        }
        tx.commit().await?;
        let mut warnings = Vec::new();
        if patch.beta_models_enabled == Some(false) && before.settings.beta_models_enabled {
            let beta: Vec<&str> = before
                .deployments
                .iter()
                .filter(|d| d.family.status() == ReleaseStatus::Beta)
                .map(|d| d.name.as_str())
                .collect();
            if !beta.is_empty() {
                warnings.push(format!(
                    "beta deployments stay registered and keep serving: {}; new beta deployments and bindings are refused",
                    beta.join(", ")
                ));
            }
        }
        if patch.verbose_ai_logs == Some(true) {
            warnings.push(
                "verbose AI logs record prompts and completions, which contain your users' code"
                    .into(),
            );
        }
        let snap = self.reload().await?;
        Ok(Outcome {
            value: snap.settings.clone(),
            warnings,
        })
    }

    /// Creates a client key; the returned secret is the only time the key is visible.
    pub async fn create_client_key(&self, name: &str) -> Result<(ClientKey, SecretString)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 255 || name.chars().any(char::is_control) {
            return Err(RegistryError::invalid(
                "name",
                "name must be 1 to 255 characters without control characters, e.g. \"vscode-team-a\"",
            ));
        }
        let _guard = self.write_lock.lock().await;
        let key = format!("{}{}", client_keys::KEY_PREFIX, random_token(24));
        let prefix = key[..client_keys::SHOWN_PREFIX_LEN].to_string();
        let mut conn = self.pool.acquire().await?;
        let id =
            store::insert_client_key(&mut conn, name, &prefix, &client_keys::hash(&key), &now())
                .await?;
        drop(conn);
        let snap = self.reload().await?;
        let created = snap
            .client_keys()
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("client key {id} vanished")))?;
        Ok((created, SecretString::from(key)))
    }

    /// Revokes a client key; revoking a revoked key changes nothing.
    pub async fn revoke_client_key(&self, id: i64) -> Result<ClientKey> {
        let _guard = self.write_lock.lock().await;
        if !self.snapshot().client_keys().iter().any(|k| k.id == id) {
            return Err(RegistryError::NotFound(format!(
                "no client key has id {id}"
            )));
        }
        let mut conn = self.pool.acquire().await?;
        store::revoke_client_key(&mut conn, id, &now()).await?;
        drop(conn);
        let snap = self.reload().await?;
        snap.client_keys()
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("no client key has id {id}")))
    }

    async fn reload(&self) -> Result<Arc<Snapshot>> {
        let fresh = Arc::new(store::load(&self.pool, &self.secrets).await?);
        self.snapshot.store(fresh.clone());
        Ok(fresh)
    }
}

/// Reads the admin token from `path`, or creates one there (mode 0600) on first start.
/// Returns the token and whether it was created.
pub fn load_or_create_token(path: &Path) -> Result<(SecretString, bool)> {
    match std::fs::read_to_string(path) {
        Ok(text) if !text.trim().is_empty() => {
            Ok((SecretString::from(text.trim().to_string()), false))
        }
        Ok(_) => Err(RegistryError::Config(format!(
            "{} is empty; delete it to have a new token generated",
            path.display()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    RegistryError::Config(format!("cannot create {}: {e}", dir.display()))
                })?;
            }
            let token = format!("hth_admin_{}", random_token(24));
            write_private_file(path, &token)?;
            Ok((SecretString::from(token), true))
        }
        Err(e) => Err(RegistryError::Config(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

fn connect_options(config: &RegistryConfig) -> Result<(SqliteConnectOptions, String)> {
    let (options, shown) = match config.database_url.as_deref() {
        Some(url) if url.starts_with("sqlite:") => (
            SqliteConnectOptions::from_str(url)
                .map_err(|e| RegistryError::Config(format!("bad database URL {url:?}: {e}")))?,
            url.to_string(),
        ),
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            return Err(RegistryError::Config(format!(
                "database URL scheme {scheme:?} is not supported yet; use sqlite://PATH or leave it unset for {}",
                config.data_dir.join("hearth.db").display()
            )));
        }
        None => {
            let path = config.data_dir.join("hearth.db");
            let shown = format!("sqlite://{}", path.display());
            (SqliteConnectOptions::new().filename(path), shown)
        }
    };
    Ok((
        options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5)),
        shown,
    ))
}

fn now() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

fn not_found(id: i64) -> RegistryError {
    RegistryError::NotFound(format!("no self-hosted model has id {id}"))
}

fn in_use_conflict(name: &str, features: &[Feature]) -> RegistryError {
    let list: Vec<&str> = features.iter().map(|f| f.as_str()).collect();
    RegistryError::Conflict {
        field: None,
        message: format!(
            "self-hosted model {name:?} is used by {}; bind those features to another deployment or disable them first",
            list.join(", ")
        ),
    }
}

fn duplicate_name(e: RegistryError, name: &str) -> RegistryError {
    match e {
        RegistryError::Storage(sqlx::Error::Database(db)) if db.is_unique_violation() => {
            RegistryError::Conflict {
                field: Some("name"),
                message: format!(
                    "a self-hosted model named {name:?} already exists; choose another name"
                ),
            }
        }
        other => other,
    }
}

fn non_empty_key(key: Option<SecretString>) -> Result<Option<SecretString>> {
    let Some(key) = key else { return Ok(None) };
    let text = key.expose_secret();
    if text.trim().is_empty() {
        return Ok(None);
    }
    if text.len() > API_KEY_MAX {
        return Err(RegistryError::invalid(
            "api_key",
            format!("api_key is longer than {API_KEY_MAX} characters"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(RegistryError::invalid(
            "api_key",
            "api_key must not contain control characters or line breaks",
        ));
    }
    Ok(Some(key))
}
