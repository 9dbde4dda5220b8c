//! SQL for the registry, on SQLite or PostgreSQL. The statements are the same text on both
//! (`$n` placeholders, `ON CONFLICT`, `RETURNING`); [`on_db!`] compiles each body once per
//! driver, so there is no `Any` driver and no trait bounds to carry around.
//!
//! Every write runs in [`Db::transact`]: it bumps `registry_state.version` first, which takes
//! the row's lock until commit, so writers from every process sharing the database queue up
//! there; the rules are then checked against a snapshot read under that lock. No replica can
//! slip a write between another one's check and its write.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use hearth_catalog::{Family, Feature, model_by_id};
use sqlx::{PgPool, SqlitePool};

use crate::client_keys::ClientKey;
use crate::crypto::SecretBox;
use crate::deployment::{
    ApiKey, Deployment, DeploymentPlatform, RoutingPolicy, TimeoutOverrides, Validated,
};
use crate::error::{RegistryError, Result};
use crate::features::{Binding, FeatureSetting};
use crate::settings::Settings;
use crate::snapshot::Snapshot;

pub(crate) enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Expands `$body` once per driver, with `$pool` bound to that driver's pool.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => $body,
            Db::Postgres($pool) => $body,
        }
    };
}

/// What happens to the stored API key in an update.
pub(crate) enum KeyChange {
    Keep,
    Set(Vec<u8>),
    Clear,
}

/// One change inside a write transaction.
pub(crate) enum Op {
    InsertDeployment {
        valid: Validated,
        sealed: Option<Vec<u8>>,
    },
    UpdateDeployment {
        id: i64,
        valid: Validated,
        key: KeyChange,
    },
    DeleteDeployment(i64),
    SetFeature(Feature, Binding, Vec<i64>),
    SetSetting(&'static str, bool),
    InsertClientKey {
        name: String,
        prefix: String,
        key_hash: String,
    },
    RevokeClientKey(i64),
}

/// A committed write: what the rules returned, each op's result (the new id for inserts,
/// rows affected otherwise) and the state right after it.
pub(crate) struct Committed<T> {
    pub value: T,
    pub results: Vec<i64>,
    pub snapshot: Snapshot,
}

/// The stored rows exactly as they are (API keys still sealed): the snapshot's source and the
/// body of `hearth db export`.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tables {
    pub deployments: Vec<DeploymentRow>,
    pub feature_settings: Vec<FeatureRow>,
    pub settings: Vec<SettingRow>,
    pub client_keys: Vec<ClientKeyRow>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct DeploymentRow {
    pub id: i64,
    pub name: String,
    pub family: String,
    pub catalog_model: Option<String>,
    pub platform: String,
    pub endpoint: Option<String>,
    pub identifier: String,
    /// AES-256-GCM sealed with the secret key of the Hearth that stored it; base64 in JSON.
    #[serde(with = "sealed_base64")]
    pub api_key_sealed: Option<Vec<u8>>,
    pub connect_timeout_ms: Option<i64>,
    pub first_token_timeout_ms: Option<i64>,
    pub total_timeout_ms: Option<i64>,
    pub api_version: Option<String>,
    pub region: Option<String>,
    /// Endpoints beyond `endpoint`, as a JSON array of URLs.
    #[serde(default)]
    pub replicas: Option<String>,
    #[serde(default)]
    pub routing: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct FeatureRow {
    pub feature: String,
    pub provider: String,
    pub self_hosted_model_id: Option<i64>,
    /// Fallback deployment ids in order, as a JSON array.
    #[serde(default)]
    pub fallbacks: Option<String>,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct SettingRow {
    pub name: String,
    pub value: String,
    pub updated_at: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct ClientKeyRow {
    pub id: i64,
    pub name: String,
    pub prefix: String,
    /// SHA-256 of the key, hex: enough to check a presented key, useless to present.
    pub key_hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

mod sealed_base64 {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as B64;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(bytes) => s.serialize_some(&B64.encode(bytes)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| B64.decode(text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

const SELECT_DEPLOYMENTS: &str = "SELECT id, name, family, catalog_model, platform, endpoint, \
    identifier, api_key_sealed, connect_timeout_ms, first_token_timeout_ms, total_timeout_ms, \
    api_version, region, replicas, routing, created_at, updated_at FROM self_hosted_models ORDER BY id";
const SELECT_FEATURES: &str = "SELECT feature, provider, self_hosted_model_id, fallbacks, updated_at FROM feature_settings ORDER BY feature";
const SELECT_SETTINGS: &str = "SELECT name, value, updated_at FROM settings ORDER BY name";
const SELECT_CLIENT_KEYS: &str =
    "SELECT id, name, prefix, key_hash, created_at, revoked_at FROM client_keys ORDER BY id";
const SELECT_VERSION: &str = "SELECT version FROM registry_state WHERE id = 1";

/// Reads every table on `$conn` (a `&mut` connection or transaction).
macro_rules! fetch_tables {
    ($conn:expr) => {
        Tables {
            deployments: sqlx::query_as(SELECT_DEPLOYMENTS)
                .fetch_all(&mut *$conn)
                .await?,
            feature_settings: sqlx::query_as(SELECT_FEATURES)
                .fetch_all(&mut *$conn)
                .await?,
            settings: sqlx::query_as(SELECT_SETTINGS)
                .fetch_all(&mut *$conn)
                .await?,
            client_keys: sqlx::query_as(SELECT_CLIENT_KEYS)
                .fetch_all(&mut *$conn)
                .await?,
        }
    };
}

/// Binds a deployment's columns as `$1`–`$13`, in the order both statements list them.
macro_rules! bind_fields {
    ($query:expr, $v:expr) => {
        $query
            .bind(&$v.name)
            .bind($v.family.as_str())
            .bind($v.model.map(|m| m.id))
            .bind($v.platform.as_str())
            .bind(&$v.endpoint)
            .bind(&$v.identifier)
            .bind($v.timeouts.connect_ms.map(i64::from))
            .bind($v.timeouts.first_token_ms.map(i64::from))
            .bind($v.timeouts.total_ms.map(i64::from))
            .bind(&$v.api_version)
            .bind(&$v.region)
            .bind(replicas_json(&$v.endpoints))
            .bind($v.routing.stored())
    };
}

/// Runs one op on `$conn`; evaluates to its result (new id or rows affected).
macro_rules! apply_op {
    ($conn:expr, $op:expr, $now:expr) => {
        match $op {
            Op::InsertDeployment { valid, sealed } => {
                let query = sqlx::query_scalar(
                    "INSERT INTO self_hosted_models \
                     (name, family, catalog_model, platform, endpoint, identifier, \
                      connect_timeout_ms, first_token_timeout_ms, total_timeout_ms, api_version, region, \
                      replicas, routing, api_key_sealed, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) RETURNING id",
                );
                bind_fields!(query, valid)
                    .bind(sealed)
                    .bind($now)
                    .fetch_one(&mut *$conn)
                    .await?
            }
            Op::UpdateDeployment { id, valid, key } => {
                let query = sqlx::query(
                    "UPDATE self_hosted_models SET name = $1, family = $2, catalog_model = $3, \
                     platform = $4, endpoint = $5, identifier = $6, connect_timeout_ms = $7, \
                     first_token_timeout_ms = $8, total_timeout_ms = $9, api_version = $10, \
                     region = $11, replicas = $12, routing = $13, updated_at = $14 WHERE id = $15",
                );
                let done = bind_fields!(query, valid)
                    .bind($now)
                    .bind(id)
                    .execute(&mut *$conn)
                    .await?;
                let sealed = match key {
                    KeyChange::Keep => None,
                    KeyChange::Set(blob) => Some(Some(blob)),
                    KeyChange::Clear => Some(None),
                };
                if let Some(sealed) = sealed {
                    sqlx::query("UPDATE self_hosted_models SET api_key_sealed = $1 WHERE id = $2")
                        .bind(sealed)
                        .bind(id)
                        .execute(&mut *$conn)
                        .await?;
                }
                rows(done.rows_affected())
            }
            Op::DeleteDeployment(id) => rows(
                sqlx::query("DELETE FROM self_hosted_models WHERE id = $1")
                    .bind(id)
                    .execute(&mut *$conn)
                    .await?
                    .rows_affected(),
            ),
            Op::SetFeature(feature, binding, fallbacks) => rows(
                sqlx::query(
                    "INSERT INTO feature_settings (feature, provider, self_hosted_model_id, fallbacks, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (feature) DO UPDATE SET \
                     provider = excluded.provider, self_hosted_model_id = excluded.self_hosted_model_id, \
                     fallbacks = excluded.fallbacks, updated_at = excluded.updated_at",
                )
                .bind(feature.as_str())
                .bind(binding.provider())
                .bind(binding.deployment_id())
                .bind(fallbacks_json(&fallbacks))
                .bind($now)
                .execute(&mut *$conn)
                .await?
                .rows_affected(),
            ),
            Op::SetSetting(name, value) => rows(
                sqlx::query(
                    "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                )
                .bind(name)
                .bind(if value { "true" } else { "false" })
                .bind($now)
                .execute(&mut *$conn)
                .await?
                .rows_affected(),
            ),
            Op::InsertClientKey {
                name,
                prefix,
                key_hash,
            } => sqlx::query_scalar(
                "INSERT INTO client_keys (name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            )
            .bind(name)
            .bind(prefix)
            .bind(key_hash)
            .bind($now)
            .fetch_one(&mut *$conn)
            .await?,
            Op::RevokeClientKey(id) => rows(
                sqlx::query(
                    "UPDATE client_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind($now)
                .bind(id)
                .execute(&mut *$conn)
                .await?
                .rows_affected(),
            ),
        }
    };
}

/// The endpoints after the first, as stored; `None` for a single endpoint.
fn replicas_json(endpoints: &[String]) -> Option<String> {
    match endpoints {
        [] | [_] => None,
        [_, rest @ ..] => serde_json::to_string(rest).ok(),
    }
}

fn fallbacks_json(ids: &[i64]) -> Option<String> {
    if ids.is_empty() {
        None
    } else {
        serde_json::to_string(ids).ok()
    }
}

fn rows(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The statement that bumps the version; on PostgreSQL its trigger sends the NOTIFY.
const BUMP_VERSION: &str =
    "UPDATE registry_state SET version = version + 1 WHERE id = 1 RETURNING version";

impl Db {
    pub(crate) fn is_postgres(&self) -> bool {
        matches!(self, Db::Postgres(_))
    }

    pub(crate) fn migrator(&self) -> sqlx::migrate::Migrator {
        match self {
            Db::Sqlite(_) => sqlx::migrate!("./migrations/sqlite"),
            Db::Postgres(_) => sqlx::migrate!("./migrations/postgres"),
        }
    }

    pub(crate) async fn migrate(&self) -> Result<()> {
        let migrator = self.migrator();
        on_db!(self, pool => migrator.run(pool).await?);
        Ok(())
    }

    /// Versions of the migrations this database has applied.
    pub(crate) async fn applied_migrations(&self) -> Result<Vec<i64>> {
        const SQL: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
        Ok(on_db!(self, pool => sqlx::query_scalar(SQL).fetch_all(pool).await?))
    }

    pub(crate) async fn ping(&self) -> Result<()> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop)?);
        Ok(())
    }

    pub(crate) async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }

    pub(crate) fn is_closed(&self) -> bool {
        on_db!(self, pool => pool.is_closed())
    }

    pub(crate) async fn version(&self) -> Result<i64> {
        Ok(on_db!(self, pool => sqlx::query_scalar(SELECT_VERSION).fetch_one(pool).await?))
    }

    /// Every table and the version they belong to, read in one transaction so they agree.
    pub(crate) async fn tables(&self) -> Result<(i64, Tables)> {
        Ok(match self {
            Db::Sqlite(pool) => {
                let mut tx = pool.begin().await?;
                let version = sqlx::query_scalar(SELECT_VERSION)
                    .fetch_one(&mut *tx)
                    .await?;
                (version, fetch_tables!(tx))
            }
            Db::Postgres(pool) => {
                // READ COMMITTED would give each SELECT its own view of the data.
                let mut tx = pool
                    .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?;
                let version = sqlx::query_scalar(SELECT_VERSION)
                    .fetch_one(&mut *tx)
                    .await?;
                (version, fetch_tables!(tx))
            }
        })
    }

    pub(crate) async fn load(&self, secrets: &SecretBox) -> Result<Snapshot> {
        let (version, tables) = self.tables().await?;
        Ok(snapshot(version, tables, secrets))
    }

    /// The one write path: takes the cross-process write lock (the version row), lets
    /// `decide` check the rules against the state under that lock and say what to change,
    /// applies it, and commits. An error from `decide` or any op rolls everything back.
    pub(crate) async fn transact<T>(
        &self,
        secrets: &SecretBox,
        now: &str,
        decide: impl FnOnce(&Snapshot) -> Result<(Vec<Op>, T)>,
    ) -> Result<Committed<T>> {
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP_VERSION).fetch_one(&mut *tx).await?;
            let before = snapshot(version - 1, fetch_tables!(tx), secrets);
            let (ops, value) = decide(&before)?;
            let mut results = Vec::with_capacity(ops.len());
            for op in ops {
                results.push(apply_op!(tx, op, now));
            }
            let after = snapshot(version, fetch_tables!(tx), secrets);
            tx.commit().await?;
            Ok(Committed { value, results, snapshot: after })
        })
    }

    /// Reads the stored key check, or stores `sealed` as the check when there is none yet.
    /// Returns the check to verify against, `None` when `sealed` became it.
    pub(crate) async fn key_check(&self, sealed: Vec<u8>) -> Result<Option<Vec<u8>>> {
        on_db!(self, pool => {
            let stored: Option<Vec<u8>> =
                sqlx::query_scalar("SELECT key_check FROM registry_state WHERE id = 1")
                    .fetch_one(pool)
                    .await?;
            if stored.is_some() {
                return Ok(stored);
            }
            // Two processes starting at once: the first one's check wins, the other reads it.
            let set = sqlx::query(
                "UPDATE registry_state SET key_check = $1 WHERE id = 1 AND key_check IS NULL",
            )
            .bind(sealed)
            .execute(pool)
            .await?
            .rows_affected();
            if set == 1 {
                return Ok(None);
            }
            Ok(sqlx::query_scalar("SELECT key_check FROM registry_state WHERE id = 1")
                .fetch_one(pool)
                .await?)
        })
    }

    /// Writes `tables` into an empty registry, ids included, as one write.
    pub(crate) async fn import(&self, tables: &Tables) -> Result<i64> {
        on_db!(self, pool => {
            let mut tx = pool.begin().await?;
            let version: i64 = sqlx::query_scalar(BUMP_VERSION).fetch_one(&mut *tx).await?;
            let existing = fetch_tables!(tx);
            if !existing.deployments.is_empty()
                || !existing.feature_settings.is_empty()
                || !existing.settings.is_empty()
                || !existing.client_keys.is_empty()
            {
                return Err(RegistryError::Conflict {
                    field: None,
                    message: "the target database already holds a registry; import only into an empty one".into(),
                });
            }
            for d in &tables.deployments {
                sqlx::query(
                    "INSERT INTO self_hosted_models (id, name, family, catalog_model, platform, \
                     endpoint, identifier, api_key_sealed, connect_timeout_ms, first_token_timeout_ms, \
                     total_timeout_ms, api_version, region, replicas, routing, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                )
                .bind(d.id)
                .bind(&d.name)
                .bind(&d.family)
                .bind(&d.catalog_model)
                .bind(&d.platform)
                .bind(&d.endpoint)
                .bind(&d.identifier)
                .bind(&d.api_key_sealed)
                .bind(d.connect_timeout_ms)
                .bind(d.first_token_timeout_ms)
                .bind(d.total_timeout_ms)
                .bind(&d.api_version)
                .bind(&d.region)
                .bind(&d.replicas)
                .bind(&d.routing)
                .bind(&d.created_at)
                .bind(&d.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            for f in &tables.feature_settings {
                sqlx::query(
                    "INSERT INTO feature_settings (feature, provider, self_hosted_model_id, fallbacks, updated_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&f.feature)
                .bind(&f.provider)
                .bind(f.self_hosted_model_id)
                .bind(&f.fallbacks)
                .bind(&f.updated_at)
                .execute(&mut *tx)
                .await?;
            }
            for s in &tables.settings {
                sqlx::query("INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3)")
                    .bind(&s.name)
                    .bind(&s.value)
                    .bind(&s.updated_at)
                    .execute(&mut *tx)
                    .await?;
            }
            for k in &tables.client_keys {
                sqlx::query(
                    "INSERT INTO client_keys (id, name, prefix, key_hash, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(k.id)
                .bind(&k.name)
                .bind(&k.prefix)
                .bind(&k.key_hash)
                .bind(&k.created_at)
                .bind(&k.revoked_at)
                .execute(&mut *tx)
                .await?;
            }
            if self.is_postgres() {
                // Explicit ids do not move PostgreSQL's identity sequences; the next insert
                // would collide with an imported row.
                for statement in [
                    "SELECT setval(pg_get_serial_sequence('self_hosted_models', 'id'), \
                     COALESCE((SELECT MAX(id) FROM self_hosted_models), 0) + 1, false)",
                    "SELECT setval(pg_get_serial_sequence('client_keys', 'id'), \
                     COALESCE((SELECT MAX(id) FROM client_keys), 0) + 1, false)",
                ] {
                    sqlx::query(statement).execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
            Ok(version)
        })
    }
}

/// Builds the readers' view from stored rows. Rows a newer Hearth wrote are skipped, and a
/// key that does not decrypt is kept as unreadable: one bad row never stops the registry.
pub(crate) fn snapshot(version: i64, tables: Tables, secrets: &SecretBox) -> Snapshot {
    let mut deployments = Vec::with_capacity(tables.deployments.len());
    for row in tables.deployments {
        let (Some(family), Some(platform)) = (
            Family::parse(&row.family),
            DeploymentPlatform::parse(&row.platform),
        ) else {
            // Written by a newer Hearth; serving it with wrong assumptions would be worse.
            tracing::error!(deployment_id = row.id, family = %row.family, platform = %row.platform,
                "skipping a deployment this version of Hearth does not understand");
            continue;
        };
        let api_key = match row.api_key_sealed {
            None => ApiKey::None,
            Some(blob) => match secrets.open(&blob) {
                Ok(key) => ApiKey::Set(key),
                Err(e) => ApiKey::Unreadable(e.to_string()),
            },
        };
        let ms = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
        let mut endpoints: Vec<String> = row.endpoint.iter().cloned().collect();
        endpoints.extend(
            row.replicas
                .as_deref()
                .and_then(|j| serde_json::from_str::<Vec<String>>(j).ok())
                .unwrap_or_default(),
        );
        deployments.push(Arc::new(Deployment {
            id: row.id,
            name: row.name,
            family,
            model: row.catalog_model.as_deref().and_then(model_by_id),
            platform,
            endpoint: row.endpoint,
            endpoints,
            routing: row
                .routing
                .as_deref()
                .and_then(RoutingPolicy::parse)
                .unwrap_or_default(),
            identifier: row.identifier,
            api_key,
            timeouts: TimeoutOverrides {
                connect_ms: ms(row.connect_timeout_ms),
                first_token_ms: ms(row.first_token_timeout_ms),
                total_ms: ms(row.total_timeout_ms),
            },
            api_version: row.api_version,
            region: row.region,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }));
    }

    let features = Feature::ALL
        .iter()
        .map(|&feature| {
            let found = tables
                .feature_settings
                .iter()
                .find(|f| f.feature == feature.as_str());
            FeatureSetting {
                feature,
                binding: found.map_or(Binding::Disabled, |f| {
                    match (f.provider.as_str(), f.self_hosted_model_id) {
                        ("self_hosted", Some(deployment_id)) => {
                            Binding::SelfHosted { deployment_id }
                        }
                        _ => Binding::Disabled,
                    }
                }),
                updated_at: found.map(|f| f.updated_at.clone()),
                fallbacks: found
                    .and_then(|f| f.fallbacks.as_deref())
                    .and_then(|j| serde_json::from_str(j).ok())
                    .unwrap_or_default(),
            }
        })
        .collect();

    let mut client_keys = Vec::with_capacity(tables.client_keys.len());
    let mut active_key_hashes = HashMap::new();
    for row in tables.client_keys {
        let key = ClientKey {
            id: row.id,
            name: row.name,
            prefix: row.prefix,
            created_at: row.created_at,
            revoked_at: row.revoked_at,
        };
        if key.is_active() {
            active_key_hashes.insert(row.key_hash, key.id);
        }
        client_keys.push(key);
    }

    let mut settings = Settings::default();
    for row in &tables.settings {
        settings.apply(&row.name, &row.value);
    }
    Snapshot {
        version,
        deployments,
        features,
        settings,
        client_keys,
        active_key_hashes,
    }
}

/// How long a PostgreSQL connection attempt may take before the pool reports an error.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
