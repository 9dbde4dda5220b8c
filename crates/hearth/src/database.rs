//! The registry database's settings (`--database-*` flags, `[database]` in the TOML file) and
//! the `hearth db` command's arguments. Kept out of cli.rs and config.rs so the database's
//! options live in one place.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use hearth_registry::PoolConfig;
use serde::Deserialize;

/// Pool and statement settings of `hearth serve` (docs/scaling.md).
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct DatabaseArgs {
    /// Connections each replica keeps to the database at most [default: 10 on PostgreSQL, 8 on SQLite]
    #[arg(long, env = "HEARTH_DATABASE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_max_connections: Option<u32>,
    /// PostgreSQL: longest a statement may run, waiting for the write lock included [default: 30s]
    #[arg(long, env = "HEARTH_DATABASE_STATEMENT_TIMEOUT", value_parser = positive_duration)]
    pub database_statement_timeout: Option<Duration>,
}

/// `[database]`: the same settings as the flags; the URL stays `database_url` at the top.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DatabaseSection {
    max_connections: Option<u32>,
    statement_timeout: Option<String>,
}

/// Flags (and their environment variables) over the file's `[database]`.
pub(crate) fn resolve(args: &DatabaseArgs, file: DatabaseSection) -> anyhow::Result<PoolConfig> {
    let file_max = match file.max_connections {
        Some(0) => bail!("config file: database.max_connections must be at least 1"),
        n => n,
    };
    let file_timeout = file
        .statement_timeout
        .map(|t| {
            positive_duration(&t)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("config file: database.statement_timeout = {t:?}"))
        })
        .transpose()?;
    Ok(PoolConfig {
        max_connections: args.database_max_connections.or(file_max),
        statement_timeout: args.database_statement_timeout.or(file_timeout),
    })
}

fn positive_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0, e.g. 30s".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(format!("{e}; write a duration such as 30s or 500ms")),
    }
}

/// `hearth db`: works on the database directly; no running server needed.
#[derive(Subcommand)]
pub(crate) enum DbCommand {
    /// Apply pending schema migrations and exit (`hearth serve` also applies them at start)
    Migrate {
        #[command(flatten)]
        target: DbTarget,
    },
    /// Write the whole registry as a versioned JSON document (API keys stay sealed)
    Export {
        #[command(flatten)]
        target: DbTarget,
        /// Output file [default: standard output]
        file: Option<PathBuf>,
    },
    /// Load a `hearth db export` document into an empty registry
    Import {
        #[command(flatten)]
        target: DbTarget,
        /// The exported document (- for standard input)
        file: PathBuf,
    },
}

/// Which registry `hearth db` works on: the same settings as `hearth serve`.
#[derive(Args)]
pub(crate) struct DbTarget {
    /// Data directory (the SQLite file and secret.key) [default: as for hearth serve]
    #[arg(long, env = "HEARTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Database URL, e.g. postgres://hearth@db.internal/hearth?sslmode=require [default: sqlite://DATA_DIR/hearth.db]
    #[arg(long, env = "HEARTH_DATABASE_URL")]
    pub database_url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_and_bad_values_name_the_key() {
        let file = DatabaseSection {
            max_connections: Some(4),
            statement_timeout: Some("5s".into()),
        };
        let args = DatabaseArgs {
            database_max_connections: Some(20),
            database_statement_timeout: None,
        };
        let pool = resolve(&args, file).unwrap();
        assert_eq!(pool.max_connections, Some(20));
        assert_eq!(pool.statement_timeout, Some(Duration::from_secs(5)));
        let bad = DatabaseSection {
            max_connections: None,
            statement_timeout: Some("0s".into()),
        };
        let err = resolve(&DatabaseArgs::default(), bad).unwrap_err();
        assert!(
            format!("{err:#}").contains("database.statement_timeout"),
            "{err:#}"
        );
    }
}
