//! `hearth serve`'s TLS settings: flags, `HEARTH_TLS_*` and the `[tls]` TOML section, and the
//! reload triggers (SIGHUP, file changes) around the gateway's [`hearth_gateway::Tls`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde::Deserialize;

/// How often the certificate and key files are checked for changes by default.
const DEFAULT_WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// TLS of the listener (docs/install.md, "TLS").
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct TlsArgs {
    /// Serve HTTPS (HTTP/1.1 and HTTP/2) with this PEM certificate chain; needs --tls-key
    #[arg(long, env = "HEARTH_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1)
    #[arg(long, env = "HEARTH_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes; 0s turns it off (SIGHUP still reloads) [default: 10s]
    #[arg(long, env = "HEARTH_TLS_WATCH_INTERVAL", value_parser = duration)]
    pub tls_watch_interval: Option<Duration>,
}

fn duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e}; write a duration such as 10s or 1m"))
}

/// `[tls]` in the config file.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsSection {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    watch_interval: Option<String>,
}

/// The resolved TLS settings: `None` serves plain HTTP.
#[derive(Clone, Debug)]
pub(crate) struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// `None`: no file watching.
    pub watch_interval: Option<Duration>,
}

/// Flags (and their environment variables) over the file's `[tls]`.
pub(crate) fn resolve(
    args: &TlsArgs,
    file: Option<TlsSection>,
) -> anyhow::Result<Option<TlsConfig>> {
    let file = file.unwrap_or_default();
    let interval = match (&args.tls_watch_interval, file.watch_interval) {
        (Some(d), _) => *d,
        (None, Some(text)) => humantime::parse_duration(&text).map_err(|e| {
            anyhow::anyhow!(
                "config file: tls.watch_interval = {text:?} is not a duration such as \"10s\": {e}"
            )
        })?,
        (None, None) => DEFAULT_WATCH_INTERVAL,
    };
    let cert = args.tls_cert.clone().or(file.cert);
    let key = args.tls_key.clone().or(file.key);
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Ok(Some(TlsConfig {
            cert,
            key,
            watch_interval: (!interval.is_zero()).then_some(interval),
        })),
        (Some(_), None) => {
            bail!("--tls-cert needs --tls-key too (HEARTH_TLS_KEY, or key in [tls])")
        }
        (None, Some(_)) => {
            bail!("--tls-key needs --tls-cert too (HEARTH_TLS_CERT, or cert in [tls])")
        }
    }
}

/// Loads the pair (the error names the file), and starts the file watcher.
pub(crate) fn start(config: &TlsConfig) -> anyhow::Result<hearth_gateway::Tls> {
    let tls = hearth_gateway::Tls::load(&config.cert, &config.key)?;
    if let Some(every) = config.watch_interval {
        tls.watch(every);
    }
    tracing::info!(
        cert = %config.cert.display(),
        key = %config.key.display(),
        watch_interval_s = config.watch_interval.map(|d| d.as_secs_f64()),
        "TLS on: HTTPS with HTTP/1.1 and HTTP/2; SIGHUP or a file change reloads the certificate"
    );
    Ok(tls)
}

/// Reloads the certificate on every SIGHUP (`systemctl reload hearth`). Registered even
/// without TLS: SIGHUP's default action would otherwise end the process.
pub(crate) fn reload_on_sighup(tls: Option<hearth_gateway::Tls>) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use anyhow::Context;
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match &tls {
                    Some(tls) => {
                        tls.reload();
                    }
                    None => tracing::info!("SIGHUP: nothing to reload (TLS is off)"),
                }
            }
        });
    }
    #[cfg(not(unix))]
    let _ = tls;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> TlsSection {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn flags_beat_the_file_and_half_a_pair_is_refused() {
        let file =
            section("cert = \"/f/cert.pem\"\nkey = \"/f/key.pem\"\nwatch_interval = \"0s\"\n");
        let args = TlsArgs {
            tls_cert: Some("/a/cert.pem".into()),
            ..Default::default()
        };
        let c = resolve(&args, Some(file)).unwrap().unwrap();
        assert_eq!(c.cert, PathBuf::from("/a/cert.pem"));
        assert_eq!(c.key, PathBuf::from("/f/key.pem"));
        assert_eq!(c.watch_interval, None);

        assert!(resolve(&TlsArgs::default(), None).unwrap().is_none());
        let c = resolve(
            &TlsArgs::default(),
            Some(section("cert = \"c\"\nkey = \"k\"\n")),
        )
        .unwrap()
        .unwrap();
        assert_eq!(c.watch_interval, Some(DEFAULT_WATCH_INTERVAL));

        let err = resolve(&args, None).unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let err = resolve(
            &TlsArgs::default(),
            Some(section(
                "cert = \"c\"\nkey = \"k\"\nwatch_interval = \"often\"\n",
            )),
        )
        .unwrap_err();
        assert!(err.to_string().contains("tls.watch_interval"), "{err}");
        assert!(toml::from_str::<TlsSection>("certificate = \"c\"\n").is_err());
    }

    #[test]
    fn the_config_file_tls_section_reaches_serve() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hearth.toml");
        std::fs::write(
            &path,
            "[tls]\ncert = \"/etc/hearth/cert.pem\"\nkey = \"/etc/hearth/key.pem\"\nwatch_interval = \"1m\"\n",
        )
        .unwrap();
        let cli =
            crate::cli::Cli::parse_from(["hearth", "serve", "--config", path.to_str().unwrap()]);
        let crate::cli::Command::Serve(args) = cli.command else {
            unreachable!("parsed a serve command")
        };
        let tls = crate::config::resolve(&args).unwrap().tls.unwrap();
        assert_eq!(tls.cert, PathBuf::from("/etc/hearth/cert.pem"));
        assert_eq!(tls.watch_interval, Some(Duration::from_secs(60)));
        std::fs::write(&path, "[tls]\ncert = \"c\"\nkey = \"k\"\nport = 1\n").unwrap();
        let err = crate::config::resolve(&args).unwrap_err();
        assert!(format!("{err:#}").contains("port"), "{err:#}");
    }
}
