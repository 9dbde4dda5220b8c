//! `hearth db migrate | export | import`: straight on the database, for moving from SQLite to
//! PostgreSQL and for backups.
//!
//! The export keeps API keys sealed (AES-256-GCM with the exporting Hearth's secret key): a
//! backup file never holds a plain key, and importing needs the same HEARTH_SECRET_KEY (or the
//! old `secret.key`'s content as HEARTH_SECRET_KEY). Import refuses keys it cannot open.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, bail};
use hearth_registry::{Registry, RegistryConfig, Tables};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::config::{default_data_dir, env_secret};
use crate::database::{DbCommand, DbTarget};
use crate::output::outln;

/// `format` of the document; `version` changes when its shape does.
const FORMAT: &str = "hearth-registry";
const VERSION: u32 = 1;
const API_KEYS_NOTE: &str = "api_key_sealed values are AES-256-GCM sealed with the exporting \
    Hearth's secret key; import with the same HEARTH_SECRET_KEY (or that secret.key's content)";

#[derive(Serialize, Deserialize)]
struct Document {
    format: String,
    version: u32,
    hearth_version: String,
    exported_at: String,
    api_keys: String,
    #[serde(flatten)]
    tables: Tables,
}

pub(crate) async fn run(cmd: DbCommand) -> anyhow::Result<()> {
    match cmd {
        DbCommand::Migrate { target } => {
            let shown = Registry::migrate_only(&config(&target))
                .await
                .context("migration failed")?;
            outln!("The registry schema in {shown} is up to date.")?;
        }
        DbCommand::Export { target, file } => {
            let registry = open(&target).await?;
            let tables = registry.export().await;
            registry.close().await;
            let document = Document {
                format: FORMAT.into(),
                version: VERSION,
                hearth_version: env!("CARGO_PKG_VERSION").into(),
                exported_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                    .to_string(),
                api_keys: API_KEYS_NOTE.into(),
                tables: tables?,
            };
            let mut text = serde_json::to_string_pretty(&document)?;
            text.push('\n');
            match file {
                Some(path) => write_private(&path, &text)?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
        }
        DbCommand::Import { target, file } => {
            let text = read_input(&file)?;
            let document: Document = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a hearth db export", file.display()))?;
            if document.format != FORMAT || document.version != VERSION {
                bail!(
                    "{} is {} version {}; this Hearth reads {FORMAT} version {VERSION}",
                    file.display(),
                    document.format,
                    document.version
                );
            }
            let registry = open(&target).await?;
            let result = registry.import(&document.tables).await;
            let shown = registry.database().to_string();
            registry.close().await;
            result.with_context(|| format!("cannot import into {shown}"))?;
            outln!(
                "Imported {} deployments, {} feature settings, {} settings and {} client keys into {shown}.",
                document.tables.deployments.len(),
                document.tables.feature_settings.len(),
                document.tables.settings.len(),
                document.tables.client_keys.len()
            )?;
        }
    }
    Ok(())
}

fn config(target: &DbTarget) -> RegistryConfig {
    RegistryConfig {
        data_dir: target.data_dir.clone().unwrap_or_else(default_data_dir),
        database_url: target.database_url.clone(),
        secret_key: env_secret("HEARTH_SECRET_KEY").map(SecretString::from),
        ..Default::default()
    }
}

async fn open(target: &DbTarget) -> anyhow::Result<Registry> {
    Registry::open(&config(target))
        .await
        .context("cannot open the registry")
}

fn read_input(path: &Path) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        return Ok(text);
    }
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The export holds client key hashes and sealed API keys: owner-only, like secret.key.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut out = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    out.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}
