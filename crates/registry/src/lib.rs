//! The registry: self-hosted model deployments, feature settings and instance settings.
//!
//! Writes go through [`Registry`], which validates them against the catalog, stores them with
//! sqlx (an embedded SQLite file by default, PostgreSQL for many replicas) and then swaps in a
//! fresh [`Snapshot`]. Readers, including the request path, only ever look at the snapshot;
//! [`Registry::watch`] keeps it current when other processes write to the same database.

mod client_keys;
mod crypto;
mod deployment;
mod error;
mod features;
mod settings;
mod snapshot;
mod store;
mod watch;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use hearth_catalog::{Family, Feature, ReleaseStatus};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection};

pub use client_keys::ClientKey;
pub use crypto::{KeySource, random_token};
pub use deployment::{
    ApiKey, CloudEnvironment, Deployment, DeploymentPatch, DeploymentPlatform, MAX_ENDPOINTS,
    NewDeployment, RoutingPolicy, TimeoutOverrides, TimeoutPatch,
};
pub use error::RegistryError;
pub use features::{Binding, FeatureSetting};
pub use settings::{Settings, SettingsPatch};
pub use snapshot::Snapshot;
pub use store::{ClientKeyRow, DeploymentRow, FeatureRow, SettingRow, Tables};

/// Fallback deployments per feature.
pub const MAX_FALLBACKS: usize = 8;

use crate::crypto::{SecretBox, write_private_file};
use crate::deployment::{API_KEY_MAX, validate};
use crate::error::Result;
use crate::features::check_binding;
use crate::store::{Committed, Db, KeyChange, Op};

/// Where the registry keeps its state.
#[derive(Clone, Debug, Default)]
pub struct RegistryConfig {
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `hearth.db` in the data directory.
    pub database_url: Option<String>,
    /// HEARTH_SECRET_KEY; without it a key file in the data directory is used.
    pub secret_key: Option<SecretString>,
    /// What cloud credentials the environment provides, for the registration checks.
    pub cloud: CloudEnvironment,
    pub pool: PoolConfig,
}

/// Connection pool settings; `None` takes the default.
#[derive(Clone, Copy, Debug, Default)]
pub struct PoolConfig {
    /// Connections the pool may open [default: 10 on PostgreSQL, 8 on SQLite].
    pub max_connections: Option<u32>,
    /// PostgreSQL only: longest a statement may run, waits for the write lock included
    /// [default: 30 s].
    pub statement_timeout: Option<Duration>,
}

pub const DEFAULT_PG_MAX_CONNECTIONS: u32 = 10;
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(30);

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
    db: Db,
    secrets: SecretBox,
    snapshot: ArcSwap<Snapshot>,
    /// Queues this process's writers before they take a database connection; the database's
    /// write lock (see `store`) is what orders writers across processes.
    write_lock: tokio::sync::Mutex<()>,
    key_source: KeySource,
    database: String,
    cloud: CloudEnvironment,
    key_problem: Option<String>,
}

impl Registry {
    /// Opens the database, applies pending migrations and loads the first snapshot.
    pub async fn open(config: &RegistryConfig) -> Result<Registry> {
        let registry = Self::open_unmigrated(config).await?;
        registry.db.migrate().await?;
        registry.finish_open().await
    }

    /// Opens the database and applies pending migrations, nothing else (`hearth db migrate`).
    pub async fn migrate_only(config: &RegistryConfig) -> Result<String> {
        let (db, shown) = connect(config).await?;
        let result = db.migrate().await;
        db.close().await;
        result.map(|()| shown)
    }

    async fn open_unmigrated(config: &RegistryConfig) -> Result<Registry> {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            RegistryError::Config(format!(
                "cannot create data directory {}: {e}",
                config.data_dir.display()
            ))
        })?;
        let (secrets, key_source) = SecretBox::load(config.secret_key.as_ref(), &config.data_dir)?;
        let (db, database) = connect(config).await?;
        Ok(Registry {
            db,
            secrets,
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            write_lock: tokio::sync::Mutex::new(()),
            key_source,
            database,
            cloud: config.cloud.clone(),
            key_problem: None,
        })
    }

    async fn finish_open(mut self) -> Result<Registry> {
        let snapshot = self.db.load(&self.secrets).await?;
        self.key_problem = self.check_secret_key(&snapshot).await?;
        self.snapshot.store(Arc::new(snapshot));
        Ok(self)
    }

    /// Whether this process's secret key opens what is stored: the key check written by the
    /// first process, and every sealed API key.
    async fn check_secret_key(&self, snapshot: &Snapshot) -> Result<Option<String>> {
        let check = self.secrets.seal(&SecretString::from(KEY_CHECK))?;
        let check_fails = match self.db.key_check(check).await? {
            None => false,
            Some(stored) => self.secrets.open(&stored).is_err(),
        };
        let unreadable: Vec<&str> = snapshot
            .deployments
            .iter()
            .filter(|d| matches!(d.api_key, ApiKey::Unreadable(_)))
            .map(|d| d.name.as_str())
            .collect();
        if !check_fails && unreadable.is_empty() {
            return Ok(None);
        }
        let which = match &self.key_source {
            KeySource::Environment => "HEARTH_SECRET_KEY".to_string(),
            KeySource::File(p) | KeySource::CreatedFile(p) => {
                format!(
                    "the key file {} (HEARTH_SECRET_KEY is not set)",
                    p.display()
                )
            }
        };
        let mut message = format!(
            "this process's secret key, from {which}, is not the one the stored API keys were sealed with; \
             every replica must run with the same HEARTH_SECRET_KEY"
        );
        if !unreadable.is_empty() {
            message.push_str(&format!(
                "; cannot decrypt a deployment's API key for: {}",
                unreadable.join(", ")
            ));
        }
        Ok(Some(message))
    }

    /// Set when the secret key cannot open what is stored (see `check_secret_key`); the caller
    /// logs it once at start-up.
    pub fn secret_key_problem(&self) -> Option<&str> {
        self.key_problem.as_deref()
    }

    /// The current state, without locks.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub fn key_source(&self) -> &KeySource {
        &self.key_source
    }

    /// The database in use, for logs (any password removed).
    pub fn database(&self) -> &str {
        &self.database
    }

    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }

    /// Closed by `close`: the process is shutting down.
    pub fn is_closed(&self) -> bool {
        self.db.is_closed()
    }

    /// How the database's schema compares with this binary's migrations: the ones it lacks
    /// and the versions it has that this binary does not know (a newer Hearth wrote them).
    /// `open` applies migrations, so anything here means another process changed the database.
    pub async fn migration_status(&self) -> Result<MigrationStatus> {
        let applied = self.db.applied_migrations().await?;
        let migrator = self.db.migrator();
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
        self.db.close().await;
    }

    /// Every stored row, API keys still sealed (`hearth db export`).
    pub async fn export(&self) -> Result<Tables> {
        Ok(self.db.tables().await?.1)
    }

    /// Writes an export into this registry, which must be empty. Refuses a document whose
    /// sealed API keys this registry's secret key cannot open: they would be lost.
    pub async fn import(&self, tables: &Tables) -> Result<()> {
        let sealed_elsewhere: Vec<&str> = tables
            .deployments
            .iter()
            .filter(|d| {
                d.api_key_sealed
                    .as_deref()
                    .is_some_and(|blob| self.secrets.open(blob).is_err())
            })
            .map(|d| d.name.as_str())
            .collect();
        if !sealed_elsewhere.is_empty() {
            return Err(RegistryError::Crypto(format!(
                "the API keys of {} were sealed with another secret key; run the import with the \
                 exporting Hearth's HEARTH_SECRET_KEY (or its secret.key as HEARTH_SECRET_KEY)",
                sealed_elsewhere.join(", ")
            )));
        }
        let _guard = self.write_lock.lock().await;
        self.db.import(tables).await?;
        self.refresh().await?;
        Ok(())
    }

    /// Runs one write: `decide` checks the rules against the state under the database's write
    /// lock and says what to change; the state after it is swapped in before returning.
    async fn write<T>(
        &self,
        decide: impl FnOnce(&Snapshot) -> Result<(Vec<Op>, T)>,
    ) -> Result<(T, Vec<i64>, Arc<Snapshot>)> {
        let _guard = self.write_lock.lock().await;
        let Committed {
            value,
            results,
            snapshot,
        } = self.db.transact(&self.secrets, &now(), decide).await?;
        Ok((value, results, self.install(snapshot)))
    }

    /// Swaps `fresh` in unless a newer state is already there (a reload and a write can
    /// finish in either order).
    fn install(&self, fresh: Snapshot) -> Arc<Snapshot> {
        let fresh = Arc::new(fresh);
        self.snapshot.rcu(|current| {
            if current.version > fresh.version {
                current.clone()
            } else {
                fresh.clone()
            }
        });
        fresh
    }

    /// Reloads the snapshot if the database holds a newer version; says whether it did.
    pub async fn refresh(&self) -> Result<bool> {
        let version = self.db.version().await?;
        if version <= self.snapshot.load().version {
            return Ok(false);
        }
        let fresh = self.db.load(&self.secrets).await?;
        self.install(fresh);
        Ok(true)
    }

    pub async fn create_deployment(
        &self,
        input: NewDeployment,
    ) -> Result<Outcome<Arc<Deployment>>> {
        let sealed = match non_empty_key(input.api_key.clone())? {
            Some(key) => Some(self.secrets.seal(&key)?),
            None => None,
        };
        let (warnings, ids, snap) = self
            .write(|snap| {
                let valid = validate(&input, &snap.settings, true, &self.cloud)?;
                let warnings = valid.warnings.clone();
                Ok((vec![Op::InsertDeployment { valid, sealed }], warnings))
            })
            .await
            .map_err(|e| duplicate_name(e, input.name.trim()))?;
        let id = ids.first().copied().unwrap_or_default();
        let deployment = snap
            .deployment(id)
            .cloned()
            .ok_or_else(|| RegistryError::NotFound(format!("self-hosted model {id} vanished")))?;
        Ok(Outcome {
            value: deployment,
            warnings,
        })
    }

    pub async fn update_deployment(
        &self,
        id: i64,
        patch: DeploymentPatch,
    ) -> Result<Outcome<Arc<Deployment>>> {
        let mut new_name = None;
        let (warnings, _, snap) = self
            .write(|snap| {
                let (op, warnings) = self.plan_update(snap, id, patch)?;
                if let Op::UpdateDeployment { valid, .. } = &op {
                    new_name = Some(valid.name.clone());
                }
                Ok((vec![op], warnings))
            })
            .await
            .map_err(|e| match &new_name {
                Some(name) => duplicate_name(e, name),
                None => e,
            })?;
        let deployment = snap.deployment(id).cloned().ok_or_else(|| not_found(id))?;
        Ok(Outcome {
            value: deployment,
            warnings,
        })
    }

    fn plan_update(
        &self,
        snap: &Snapshot,
        id: i64,
        patch: DeploymentPatch,
    ) -> Result<(Op, Vec<String>)> {
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
            endpoint: None,
            endpoints: match (patch.endpoints, patch.endpoint) {
                // Given: judged as given, an empty list included.
                (Some(list), _) => Some(list),
                (None, Some(None)) => None,
                (None, Some(Some(first))) => {
                    let mut list = current.endpoints.clone();
                    match list.first_mut() {
                        Some(slot) => *slot = first,
                        None => list.push(first),
                    }
                    Some(list)
                }
                (None, None) => Some(current.endpoints.clone()).filter(|l| !l.is_empty()),
            },
            routing: patch
                .routing
                .or_else(|| current.routing.stored().map(str::to_owned)),
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
            endpoint: valid.endpoint.clone(),
            endpoints: valid.endpoints.clone(),
            routing: valid.routing,
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
        Ok((Op::UpdateDeployment { id, valid, key }, warnings))
    }

    pub async fn delete_deployment(&self, id: i64) -> Result<()> {
        let known = self.snapshot().deployment(id).map(|d| d.name.clone());
        let (deleted, _, _) = self
            .write(|snap| {
                let current = snap.deployment(id).ok_or_else(|| not_found(id))?;
                let in_use = snap.features_using(id);
                if !in_use.is_empty() {
                    return Err(in_use_conflict(&current.name, &in_use));
                }
                let fallback_of = snap.features_falling_back_to(id);
                if !fallback_of.is_empty() {
                    let names: Vec<&str> = fallback_of.iter().map(|f| f.as_str()).collect();
                    return Err(RegistryError::Conflict {
                        field: None,
                        message: format!(
                            "self-hosted model {:?} is the fallback of {}; remove it from their fallbacks first",
                            current.name,
                            names.join(", ")
                        ),
                    });
                }
                Ok((vec![Op::DeleteDeployment(id)], ()))
            })
            .await
            .map(|((), results, snap)| (results.first().copied().unwrap_or_default(), (), snap))
            .map_err(|e| match e {
                // Bound by a writer the checks above could not see (an older Hearth).
                RegistryError::Storage(sqlx::Error::Database(db))
                    if db.is_foreign_key_violation() =>
                {
                    RegistryError::Conflict {
                        field: None,
                        message: format!(
                            "self-hosted model {} is used by a feature; rebind or disable it first",
                            known
                                .as_deref()
                                .map_or(format!("{id}"), |n| format!("{n:?}"))
                        ),
                    }
                }
                other => other,
            })?;
        if deleted == 0 {
            return Err(not_found(id));
        }
        Ok(())
    }

    /// Binds `feature`. `fallbacks` (deployment ids, in order, at most [`MAX_FALLBACKS`]) replaces the chain when given
    /// and is kept otherwise; a disabled feature has none.
    pub async fn set_feature(
        &self,
        feature: Feature,
        binding: Binding,
        fallbacks: Option<Vec<i64>>,
    ) -> Result<Outcome<FeatureSetting>> {
        let (warnings, _, snap) = self
            .write(|snap| {
                let fallbacks = match (binding, fallbacks) {
                    (Binding::Disabled, Some(f)) if !f.is_empty() => {
                        return Err(RegistryError::invalid(
                            "fallbacks",
                            "a disabled feature has no fallbacks; leave fallbacks out",
                        ));
                    }
                    (Binding::Disabled, _) => Vec::new(),
                    (_, Some(f)) => f,
                    (_, None) => snap.feature(feature).fallbacks,
                };
                if fallbacks.len() > MAX_FALLBACKS {
                    return Err(RegistryError::invalid(
                        "fallbacks",
                        format!("at most {MAX_FALLBACKS} fallbacks: each one a failing request tries adds to its wait"),
                    ));
                }
                let mut fallback_warnings = Vec::new();
                for (i, id) in fallbacks.iter().enumerate() {
                    let d = snap.deployment(*id).ok_or_else(|| {
                        RegistryError::invalid(
                            "fallbacks",
                            format!("fallbacks[{i}]: no self-hosted model has id {id}"),
                        )
                    })?;
                    if Some(*id) == binding.deployment_id() || fallbacks[..i].contains(id) {
                        return Err(RegistryError::invalid(
                            "fallbacks",
                            format!(
                                "fallbacks[{i}]: {:?} is already in the chain (the bound deployment or an earlier fallback)",
                                d.name
                            ),
                        ));
                    }
                    let w = check_binding(feature, d, &snap.settings).map_err(|e| match e {
                        RegistryError::Invalid { message, .. } => RegistryError::invalid(
                            "fallbacks",
                            format!("fallbacks[{i}] ({:?}): {message}", d.name),
                        ),
                        other => other,
                    })?;
                    fallback_warnings.extend(w);
                }
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
                let mut warnings = warnings;
                warnings.extend(fallback_warnings);
                Ok((vec![Op::SetFeature(feature, binding, fallbacks)], warnings))
            })
            .await?;
        Ok(Outcome {
            value: snap.feature(feature),
            warnings,
        })
    }

    pub async fn update_settings(&self, patch: SettingsPatch) -> Result<Outcome<Settings>> {
        let (warnings, _, snap) = self
            .write(|before| {
                let mut ops = Vec::new();
                if let Some(on) = patch.beta_models_enabled {
                    ops.push(Op::SetSetting(settings::BETA_MODELS_ENABLED, on));
                }
                if let Some(on) = patch.verbose_ai_logs {
                    ops.push(Op::SetSetting(settings::VERBOSE_AI_LOGS, on));
                }
                Ok((ops, settings_warnings(&patch, before)))
            })
            .await?;
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
        let key = format!("{}{}", client_keys::KEY_PREFIX, random_token(24));
        let op = Op::InsertClientKey {
            name: name.to_string(),
            prefix: key[..client_keys::SHOWN_PREFIX_LEN].to_string(),
            key_hash: client_keys::hash(&key),
        };
        let ((), ids, snap) = self.write(|_| Ok((vec![op], ()))).await?;
        let id = ids.first().copied().unwrap_or_default();
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
        let missing = || RegistryError::NotFound(format!("no client key has id {id}"));
        let ((), _, snap) = self
            .write(|snap| {
                if !snap.client_keys().iter().any(|k| k.id == id) {
                    return Err(missing());
                }
                Ok((vec![Op::RevokeClientKey(id)], ()))
            })
            .await?;
        snap.client_keys()
            .iter()
            .find(|k| k.id == id)
            .cloned()
            .ok_or_else(missing)
    }
}

/// Sealed into `registry_state.key_check` by the first process; only its secret key opens it.
const KEY_CHECK: &str = "hearth secret key check";

fn settings_warnings(patch: &SettingsPatch, before: &Snapshot) -> Vec<String> {
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
            "verbose AI logs record prompts and completions, which contain your users' code".into(),
        );
    }
    warnings
}

async fn connect(config: &RegistryConfig) -> Result<(Db, String)> {
    let url = config.database_url.as_deref().map(str::trim);
    match url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let shown = without_password(url);
            let timeout = config
                .pool
                .statement_timeout
                .unwrap_or(DEFAULT_STATEMENT_TIMEOUT);
            // sqlx's own message can quote the URL, password included: name the shown form.
            let options = PgConnectOptions::from_str(url)
                .map_err(|_| {
                    RegistryError::Config(format!(
                        "bad database URL {shown}: write postgres://USER:PASSWORD@HOST:PORT/DATABASE?sslmode=require"
                    ))
                })?
                .application_name("hearth")
                .options([("statement_timeout", timeout.as_millis().to_string())]);
            // One direct attempt first: the pool would only report that it timed out, while
            // this says why (refused, TLS, authentication).
            let probe = options
                .connect()
                .await
                .map_err(|e| RegistryError::Config(format!("cannot connect to {shown}: {e}")))?;
            let _ = probe.close().await;
            let pool = PgPoolOptions::new()
                .max_connections(
                    config
                        .pool
                        .max_connections
                        .unwrap_or(DEFAULT_PG_MAX_CONNECTIONS),
                )
                .acquire_timeout(store::ACQUIRE_TIMEOUT)
                .connect_with(options)
                .await
                .map_err(|e| RegistryError::Config(format!("cannot connect to {shown}: {e}")))?;
            Ok((Db::Postgres(pool), shown))
        }
        Some(url) if url.starts_with("sqlite:") => {
            let options = SqliteConnectOptions::from_str(url)
                .map_err(|e| RegistryError::Config(format!("bad database URL {url:?}: {e}")))?;
            open_sqlite(options, url.to_string(), config).await
        }
        Some(url) => {
            let scheme = url.split(':').next().unwrap_or_default();
            Err(RegistryError::Config(format!(
                "database URL scheme {scheme:?} is not supported; use postgres://USER@HOST/DATABASE, sqlite://PATH, or leave it unset for {}",
                config.data_dir.join("hearth.db").display()
            )))
        }
        None => {
            let path = config.data_dir.join("hearth.db");
            let shown = format!("sqlite://{}", path.display());
            open_sqlite(SqliteConnectOptions::new().filename(path), shown, config).await
        }
    }
}

async fn open_sqlite(
    options: SqliteConnectOptions,
    shown: String,
    config: &RegistryConfig,
) -> Result<(Db, String)> {
    let options = options
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(config.pool.max_connections.unwrap_or(8))
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|e| RegistryError::Config(format!("cannot open database {shown}: {e}")))?;
    Ok((Db::Sqlite(pool), shown))
}

/// The URL for logs and messages: the password replaced, the rest kept for diagnosis.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("****"));
            }
            parsed.to_string()
        }
        Err(_) => "the PostgreSQL URL (unparsable)".to_string(),
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
