//! SQL for the registry. Queries use `$n` placeholders and portable SQL so that a PostgreSQL
//! pool can run them unchanged.

use std::sync::Arc;

use hearth_catalog::{Family, Feature, model_by_id};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Row, SqlitePool};

use crate::client_keys::ClientKey;
use crate::crypto::SecretBox;
use crate::deployment::{ApiKey, Deployment, DeploymentPlatform, TimeoutOverrides, Validated};
use crate::error::Result;
use crate::features::{Binding, FeatureSetting};
use crate::settings::Settings;
use crate::snapshot::Snapshot;

/// What happens to the stored API key in an update.
pub(crate) enum KeyChange {
    Keep,
    Set(Vec<u8>),
    Clear,
}

pub(crate) async fn load(pool: &SqlitePool, secrets: &SecretBox) -> Result<Snapshot> {
    let rows = sqlx::query(
        "SELECT id, name, family, catalog_model, platform, endpoint, identifier, api_key_sealed, \
         connect_timeout_ms, first_token_timeout_ms, total_timeout_ms, api_version, region, created_at, updated_at \
         FROM self_hosted_models ORDER BY id",
    )
    .fetch_all(pool)
    .await?;
    let mut deployments = Vec::with_capacity(rows.len());
    for row in rows {
        let id: i64 = row.try_get("id")?;
        let name: String = row.try_get("name")?;
        let family_text: String = row.try_get("family")?;
        let platform_text: String = row.try_get("platform")?;
        let (Some(family), Some(platform)) = (
            Family::parse(&family_text),
            DeploymentPlatform::parse(&platform_text),
        ) else {
            // Written by a newer Hearth; serving it with wrong assumptions would be worse.
            tracing::error!(deployment_id = id, family = %family_text, platform = %platform_text,
                "skipping a deployment this version of Hearth does not understand");
            continue;
        };
        let sealed: Option<Vec<u8>> = row.try_get("api_key_sealed")?;
        let api_key = match sealed {
            None => ApiKey::None,
            Some(blob) => match secrets.open(&blob) {
                Ok(key) => ApiKey::Set(key),
                Err(e) => {
                    tracing::error!(deployment_id = id, deployment = %name, error = %e,
                        "cannot decrypt a deployment's API key");
                    ApiKey::Unreadable(e.to_string())
                }
            },
        };
        let catalog_model: Option<String> = row.try_get("catalog_model")?;
        deployments.push(Arc::new(Deployment {
            id,
            name,
            family,
            model: catalog_model.as_deref().and_then(model_by_id),
            platform,
            endpoint: row.try_get("endpoint")?,
            identifier: row.try_get("identifier")?,
            api_key,
            timeouts: TimeoutOverrides {
                connect_ms: ms(&row, "connect_timeout_ms")?,
                first_token_ms: ms(&row, "first_token_timeout_ms")?,
                total_ms: ms(&row, "total_timeout_ms")?,
            },
            api_version: row.try_get("api_version")?,
            region: row.try_get("region")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }));
    }

    let mut stored = Vec::new();
    for row in sqlx::query(
        "SELECT feature, provider, self_hosted_model_id, updated_at FROM feature_settings",
    )
    .fetch_all(pool)
    .await?
    {
        let feature: String = row.try_get("feature")?;
        let provider: String = row.try_get("provider")?;
        let id: Option<i64> = row.try_get("self_hosted_model_id")?;
        let binding = match (provider.as_str(), id) {
            ("self_hosted", Some(deployment_id)) => Binding::SelfHosted { deployment_id },
            _ => Binding::Disabled,
        };
        stored.push((feature, binding, row.try_get::<String, _>("updated_at")?));
    }
    let features = Feature::ALL
        .iter()
        .map(|&feature| {
            let found = stored.iter().find(|(f, _, _)| f == feature.as_str());
            FeatureSetting {
                feature,
                binding: found.map_or(Binding::Disabled, |(_, b, _)| *b),
                updated_at: found.map(|(_, _, at)| at.clone()),
            }
        })
        .collect();

    let mut client_keys = Vec::new();
    let mut active_key_hashes = std::collections::HashMap::new();
    for row in sqlx::query(
        "SELECT id, name, prefix, key_hash, created_at, revoked_at FROM client_keys ORDER BY id",
    )
    .fetch_all(pool)
    .await?
    {
        let key = ClientKey {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            prefix: row.try_get("prefix")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
        };
        if key.is_active() {
            active_key_hashes.insert(row.try_get::<String, _>("key_hash")?, key.id);
        }
        client_keys.push(key);
    }

    let mut settings = Settings::default();
    for row in sqlx::query("SELECT name, value FROM settings")
        .fetch_all(pool)
        .await?
    {
        let name: String = row.try_get("name")?;
        let value: String = row.try_get("value")?;
        settings.apply(&name, &value);
    }
    Ok(Snapshot {
        deployments,
        features,
        settings,
        client_keys,
        active_key_hashes,
    })
}

type SqliteQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>;

/// Binds a deployment's columns as `$1`–`$11`, in the order both statements list them.
fn bind_fields<'q>(query: SqliteQuery<'q>, v: &'q Validated) -> SqliteQuery<'q> {
    query
        .bind(&v.name)
        .bind(v.family.as_str())
        .bind(v.model.map(|m| m.id))
        .bind(v.platform.as_str())
        .bind(&v.endpoint)
        .bind(&v.identifier)
        .bind(v.timeouts.connect_ms.map(i64::from))
        .bind(v.timeouts.first_token_ms.map(i64::from))
        .bind(v.timeouts.total_ms.map(i64::from))
        .bind(&v.api_version)
        .bind(&v.region)
}

fn ms(row: &sqlx::sqlite::SqliteRow, column: &str) -> Result<Option<u32>> {
    let v: Option<i64> = row.try_get(column)?;
    Ok(v.and_then(|v| u32::try_from(v).ok()))
}

pub(crate) async fn insert_deployment(
    conn: &mut SqliteConnection,
    v: &Validated,
    sealed: Option<Vec<u8>>,
    now: &str,
) -> Result<i64> {
    let query = sqlx::query(
        "INSERT INTO self_hosted_models \
         (name, family, catalog_model, platform, endpoint, identifier, \
          connect_timeout_ms, first_token_timeout_ms, total_timeout_ms, api_version, region, \
          api_key_sealed, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
    );
    let row = bind_fields(query, v)
        .bind(sealed)
        .bind(now)
        .fetch_one(conn)
        .await?;
    Ok(row.try_get("id")?)
}

pub(crate) async fn update_deployment(
    conn: &mut SqliteConnection,
    id: i64,
    v: &Validated,
    key: KeyChange,
    now: &str,
) -> Result<()> {
    let query = sqlx::query(
        "UPDATE self_hosted_models SET name = $1, family = $2, catalog_model = $3, platform = $4, \
         endpoint = $5, identifier = $6, connect_timeout_ms = $7, first_token_timeout_ms = $8, \
         total_timeout_ms = $9, api_version = $10, region = $11, updated_at = $12 WHERE id = $13",
    );
    bind_fields(query, v)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let sealed = match key {
        KeyChange::Keep => return Ok(()),
        KeyChange::Set(blob) => Some(blob),
        KeyChange::Clear => None,
    };
    sqlx::query("UPDATE self_hosted_models SET api_key_sealed = $1 WHERE id = $2")
        .bind(sealed)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

pub(crate) async fn delete_deployment(conn: &mut SqliteConnection, id: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM self_hosted_models WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?
        .rows_affected())
}

pub(crate) async fn upsert_feature(
    conn: &mut SqliteConnection,
    feature: Feature,
    binding: Binding,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO feature_settings (feature, provider, self_hosted_model_id, updated_at) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (feature) DO UPDATE SET \
         provider = excluded.provider, self_hosted_model_id = excluded.self_hosted_model_id, \
         updated_at = excluded.updated_at",
    )
    .bind(feature.as_str())
    .bind(binding.provider())
    .bind(binding.deployment_id())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn upsert_setting(
    conn: &mut SqliteConnection,
    name: &str,
    value: bool,
    now: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO settings (name, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(name)
    .bind(if value { "true" } else { "false" })
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn insert_client_key(
    conn: &mut SqliteConnection,
    name: &str,
    prefix: &str,
    key_hash: &str,
    now: &str,
) -> Result<i64> {
    let row = sqlx::query(
        "INSERT INTO client_keys (name, prefix, key_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(name)
    .bind(prefix)
    .bind(key_hash)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(row.try_get("id")?)
}

pub(crate) async fn revoke_client_key(
    conn: &mut SqliteConnection,
    id: i64,
    now: &str,
) -> Result<()> {
    sqlx::query("UPDATE client_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}
