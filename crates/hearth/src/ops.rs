//! Commands for installing and running Hearth rather than configuring it: shell completions,
//! and the health probe container runtimes call.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory};

use crate::config::DEFAULT_LISTEN;

#[derive(Args)]
pub(crate) struct CompletionsArgs {
    /// bash, zsh, fish (also elvish, powershell)
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
pub(crate) struct HealthArgs {
    /// Hearth's base URL [default: HEARTH_URL, else HEARTH_LISTEN's address; https when HEARTH_TLS_CERT is set]
    #[arg(long, env = "HEARTH_URL")]
    pub url: Option<String>,
    /// Seconds to wait for the answer
    #[arg(long, default_value_t = 5)]
    pub timeout: u64,
}

pub(crate) fn completions(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut crate::cli::Cli::command(),
        "hearth",
        &mut script,
    );
    crate::output::write_out(&String::from_utf8_lossy(&script))
}

/// GET /monitoring/healthz; exit 0 on 200, 1 otherwise with the reason on stderr. Certificates
/// are not verified: the probe runs beside the server, sends no credentials, and a container
/// health check must not fail because the certificate names the public host, not 127.0.0.1.
pub(crate) async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let base = args.url.unwrap_or_else(own_url);
    let url = format!("{}/monitoring/healthz", base.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(args.timeout.max(1)))
        .tls_danger_accept_invalid_certs(true)
        .build()
        .context("cannot set up the HTTP client")?;
    match http.get(&url).send().await {
        Ok(resp) if resp.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(resp) => {
            eprintln!("unhealthy: {url} answered {}", resp.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            // The innermost cause says what happened (connection refused, timed out).
            let mut cause: &dyn std::error::Error = &e;
            while let Some(inner) = cause.source() {
                cause = inner;
            }
            eprintln!("unhealthy: cannot reach {url}: {cause}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The server's own address as this environment configures it: a wildcard listen address is
/// reached on loopback.
fn own_url() -> String {
    let listen = std::env::var("HEARTH_LISTEN")
        .ok()
        .filter(|l| !l.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_LISTEN.into());
    let listen = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let tls = std::env::var_os("HEARTH_TLS_CERT").is_some_and(|v| !v.is_empty());
    format!("{}://{listen}", if tls { "https" } else { "http" })
}
