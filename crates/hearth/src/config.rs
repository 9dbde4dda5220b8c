//! Configuration for `hearth serve`: defaults < TOML file < environment (`HEARTH_*`) < flags.
//! clap already puts flags over the environment; this file slots the TOML file underneath.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::{LimitArgs, LogFormat, ServeArgs};

pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:5052";

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<String>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    gitlab_url: Option<String>,
    auth_bypass: Option<bool>,
    log: Option<LogSection>,
    limits: Option<LimitSection>,
    tls: Option<crate::serve_tls::TlsSection>,
    database: Option<crate::database::DatabaseSection>,
}

/// `[limits]`: the same names as the flags, durations written like "30s".
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitSection {
    header_timeout: Option<String>,
    body_timeout: Option<String>,
    drain_timeout: Option<String>,
    max_connections: Option<u32>,
    max_in_flight: Option<u32>,
    max_in_flight_per_deployment: Option<u32>,
    max_queued: Option<u32>,
    queue_timeout: Option<String>,
    max_upstream_event_bytes: Option<u64>,
    max_upstream_body_bytes: Option<u64>,
    health_check_interval: Option<String>,
    eject_after_failures: Option<u32>,
    ejection_time: Option<String>,
    retry_budget: Option<f64>,
    supersede: Option<bool>,
    coalesce: Option<bool>,
    completion_cache_ttl: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LogSection {
    level: Option<String>,
    format: Option<LogFormat>,
    file: Option<PathBuf>,
}

#[derive(Debug)]
pub(crate) struct ServeConfig {
    pub gitlab_url: Option<String>,
    pub gitlab_api_url: Option<String>,
    pub custom_models: bool,
    pub auth_bypass: bool,
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub log_level: String,
    pub log_format: LogFormat,
    pub log_file: Option<PathBuf>,
    pub limits: LimitArgs,
    pub tls: Option<crate::serve_tls::TlsConfig>,
    pub database: hearth_registry::PoolConfig,
}

pub(crate) fn resolve(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    let log = file.log.unwrap_or_default();
    let aigw = |k: &str| {
        std::env::var(format!("AIGW_{k}"))
            .ok()
            .filter(|v| !v.trim().is_empty())
    };
    let listen = match (args.listen, file.listen) {
        (Some(addr), _) => addr,
        (None, Some(text)) => crate::listen::parse_listen(&text)
            .map_err(|e| anyhow::anyhow!("config file: listen = {text:?}: {e}"))?,
        // GitLab's names, as its AI gateway image takes them (host 0.0.0.0, port 5052).
        (None, None)
            if aigw("FASTAPI__API_HOST").is_some() || aigw("FASTAPI__API_PORT").is_some() =>
        {
            let host = aigw("FASTAPI__API_HOST").unwrap_or_else(|| "0.0.0.0".into());
            let port = aigw("FASTAPI__API_PORT").unwrap_or_else(|| "5052".into());
            format!("{host}:{port}").parse().with_context(|| {
                format!("AIGW_FASTAPI__API_HOST / __API_PORT give {host}:{port}, which is not an address")
            })?
        }
        (None, None) => DEFAULT_LISTEN.parse()?,
    };
    let bool_text = |v: &str| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "true" | "1" | "yes" | "on"
        )
    };
    let limits = limits(&args.limits, file.limits.unwrap_or_default())?;
    let tls = crate::serve_tls::resolve(&args.tls, file.tls)?;
    let database = crate::database::resolve(&args.database, file.database.unwrap_or_default())?;
    Ok(ServeConfig {
        limits,
        tls,
        database,
        listen,
        data_dir: args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(default_data_dir),
        database_url: args.database_url.clone().or(file.database_url),
        log_level: args
            .log_level
            .clone()
            .or(log.level)
            .or_else(|| aigw("LOGGING__LEVEL").map(|l| l.to_lowercase()))
            .unwrap_or_else(|| "info".into()),
        log_format: args.log_format.or(log.format).unwrap_or_else(|| {
            match aigw("LOGGING__FORMAT_JSON") {
                Some(v) if !bool_text(&v) => LogFormat::Text,
                _ => LogFormat::Json,
            }
        }),
        log_file: args
            .log_file
            .clone()
            .or(log.file)
            .or_else(|| aigw("LOGGING__TO_FILE").map(PathBuf::from)),
        gitlab_api_url: std::env::var("HEARTH_GITLAB_API_URL")
            .ok()
            .or_else(|| aigw("GITLAB_API_URL")),
        custom_models: std::env::var("HEARTH_CUSTOM_MODELS")
            .ok()
            .or_else(|| aigw("CUSTOM_MODELS__ENABLED"))
            .is_none_or(|v| bool_text(&v)),
        gitlab_url: args
            .gitlab_url
            .clone()
            .or(file.gitlab_url)
            .or_else(|| aigw("GITLAB_URL")),
        auth_bypass: args
            .auth_bypass
            .or(file.auth_bypass)
            .unwrap_or_else(|| aigw("AUTH__BYPASS_EXTERNAL").is_some_and(|v| bool_text(&v))),
    })
}

/// Flags (and their environment variables) over the file's `[limits]`.
fn limits(args: &LimitArgs, file: LimitSection) -> anyhow::Result<LimitArgs> {
    let duration = |name: &str, text: Option<String>| -> anyhow::Result<_> {
        text.map(|t| {
            humantime::parse_duration(&t).with_context(|| {
                format!("config file: limits.{name} = {t:?} is not a duration such as \"30s\"")
            })
        })
        .transpose()
    };
    let positive = |name: &str, n: Option<u32>| -> anyhow::Result<_> {
        match n {
            Some(0) => bail!("config file: limits.{name} must be at least 1"),
            n => Ok(n),
        }
    };
    let at_least_1k = |name: &str, n: Option<u64>| -> anyhow::Result<_> {
        match n {
            Some(n) if n < 1024 => {
                bail!("config file: limits.{name} must be at least 1024 (bytes)")
            }
            n => Ok(n),
        }
    };
    Ok(LimitArgs {
        header_timeout: args
            .header_timeout
            .or(duration("header_timeout", file.header_timeout)?),
        body_timeout: args
            .body_timeout
            .or(duration("body_timeout", file.body_timeout)?),
        drain_timeout: args
            .drain_timeout
            .or(duration("drain_timeout", file.drain_timeout)?),
        max_connections: args
            .max_connections
            .or(positive("max_connections", file.max_connections)?),
        max_in_flight: args
            .max_in_flight
            .or(positive("max_in_flight", file.max_in_flight)?),
        max_in_flight_per_deployment: args.max_in_flight_per_deployment.or(positive(
            "max_in_flight_per_deployment",
            file.max_in_flight_per_deployment,
        )?),
        max_queued: args.max_queued.or(file.max_queued),
        queue_timeout: args
            .queue_timeout
            .or(duration("queue_timeout", file.queue_timeout)?),
        max_upstream_event_bytes: args.max_upstream_event_bytes.or(at_least_1k(
            "max_upstream_event_bytes",
            file.max_upstream_event_bytes,
        )?),
        max_upstream_body_bytes: args.max_upstream_body_bytes.or(at_least_1k(
            "max_upstream_body_bytes",
            file.max_upstream_body_bytes,
        )?),
        health_check_interval: args.health_check_interval.or(duration(
            "health_check_interval",
            file.health_check_interval,
        )?),
        eject_after_failures: args
            .eject_after_failures
            .or(positive("eject_after_failures", file.eject_after_failures)?),
        ejection_time: args
            .ejection_time
            .or(duration("ejection_time", file.ejection_time)?),
        retry_budget: match args.retry_budget.or(file.retry_budget) {
            Some(r) if !(0.0..=1.0).contains(&r) => {
                bail!("config file: limits.retry_budget must be between 0 and 1 (0.2 = 20 %)")
            }
            r => r,
        },
        no_supersede: args.no_supersede || file.supersede == Some(false),
        no_coalesce: args.no_coalesce || file.coalesce == Some(false),
        completion_cache_ttl: args
            .completion_cache_ttl
            .or(duration("completion_cache_ttl", file.completion_cache_ttl)?),
    })
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    match toml::from_str(&text) {
        Ok(config) => Ok(config),
        Err(e) => bail!("{}", toml_error(path, &text, &e)),
    }
}

/// `config file F, line N, key K: what is wrong`, from the span toml reports: its own
/// message shows the line but leaves the key (and the section it is in) for the reader to find.
fn toml_error(path: &Path, text: &str, e: &toml::de::Error) -> String {
    let Some(span) = e.span() else {
        return format!("config file {}: {e}", path.display());
    };
    let before = &text[..span.start.min(text.len())];
    let line_no = before.matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or_default();
    let section = before
        .lines()
        .map(str::trim)
        .rfind(|l| l.starts_with('[') && l.ends_with(']'))
        .map(|l| l.trim_matches(['[', ']']).trim());
    let key = line
        .split_once('=')
        .map(|(k, _)| k.trim())
        .filter(|k| !k.is_empty() && !k.starts_with('['));
    let message = e.message().trim();
    match (key, section) {
        (Some(k), Some(s)) => format!(
            "config file {}, line {line_no}, key {s}.{k}: {message}",
            path.display()
        ),
        (Some(k), None) => format!(
            "config file {}, line {line_no}, key {k}: {message}",
            path.display()
        ),
        _ => format!("config file {}, line {line_no}: {message}", path.display()),
    }
}

/// `$XDG_DATA_HOME/hearth`, else `~/.local/share/hearth`, else `./hearth-data`: the same place
/// whichever directory the server or the CLI is started from.
pub(crate) fn default_data_dir() -> PathBuf {
    let non_empty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return PathBuf::from(xdg).join("hearth");
    }
    if let Some(home) = non_empty("HOME") {
        return PathBuf::from(home).join(".local/share/hearth");
    }
    PathBuf::from("hearth-data")
}

/// A secret from the environment; an empty value counts as unset.
pub(crate) fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["hearth", "serve"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Serve(a) => a,
            _ => unreachable!("parsed a serve command"),
        }
    }

    fn write(text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "hearth-config-{}.toml",
            hearth_registry::random_token(6)
        ));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let path = write(
            "listen = \"127.0.0.1:7000\"\ndata_dir = \"/srv/hearth\"\n[log]\nformat = \"text\"\nlevel = \"debug\"\n",
        );
        let p = path.to_str().unwrap();
        let c = resolve(&args(&["--config", p, "--listen", "127.0.0.1:7001"])).unwrap();
        assert_eq!(c.listen.port(), 7001);
        assert_eq!(c.data_dir, PathBuf::from("/srv/hearth"));
        assert_eq!(c.log_format, LogFormat::Text);
        assert_eq!(c.log_level, "debug");
        let c = resolve(&args(&["--config", p])).unwrap();
        assert_eq!(c.listen.port(), 7000);
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn limits_come_from_flags_over_the_file() {
        let path = write(
            "[limits]\nheader_timeout = \"5s\"\nmax_connections = 10\ndrain_timeout = \"1m\"\n",
        );
        let p = path.to_str().unwrap();
        let c = resolve(&args(&["--config", p, "--max-connections", "20"])).unwrap();
        assert_eq!(
            c.limits.header_timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            c.limits.drain_timeout,
            Some(std::time::Duration::from_secs(60))
        );
        assert_eq!(c.limits.max_connections, Some(20));
        assert_eq!(c.limits.max_in_flight, None);
        std::fs::write(&path, "[limits]\nqueue_timeout = \"soon\"\n").unwrap();
        let err = resolve(&args(&["--config", p])).unwrap_err();
        assert!(
            format!("{err:#}").contains("limits.queue_timeout"),
            "{err:#}"
        );
        std::fs::write(&path, "[limits]\nmax_in_flight = 0\n").unwrap();
        let err = resolve(&args(&["--config", p])).unwrap_err();
        assert!(format!("{err:#}").contains("at least 1"), "{err:#}");
        std::fs::remove_file(path).unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_problem() {
        let path = write("listen = \"127.0.0.1:7000\"\nlisten_port = 5\n");
        let err = resolve(&args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("listen_port"), "{err:#}");
        std::fs::write(&path, "data_dir = \"/x\"\nlisten = 5053\n").unwrap();
        let err = format!(
            "{:#}",
            resolve(&args(&["--config", path.to_str().unwrap()])).unwrap_err()
        );
        assert!(
            err.contains(&format!("config file {}, line 2, key listen: invalid type: integer `5053`, expected a string", path.display())),
            "{err}"
        );
        std::fs::write(&path, "[limits]\nmax_connections = \"x\"\n").unwrap();
        let err = format!(
            "{:#}",
            resolve(&args(&["--config", path.to_str().unwrap()])).unwrap_err()
        );
        assert!(
            err.contains("line 2, key limits.max_connections: invalid type"),
            "{err}"
        );
        std::fs::write(&path, "listen = \"localhost:7002\"\n").unwrap();
        let c = resolve(&args(&["--config", path.to_str().unwrap()])).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7002".parse().unwrap());
        std::fs::write(&path, "listen = \"everywhere\"\n").unwrap();
        let err = resolve(&args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(format!("{err:#}").contains("everywhere"), "{err:#}");
        std::fs::remove_file(path).unwrap();
    }
}
