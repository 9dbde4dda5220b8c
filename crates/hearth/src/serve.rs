//! `hearth serve`: open the registry, bind, serve until SIGTERM or Ctrl-C.

use std::sync::Arc;

use anyhow::Context;
use hearth_registry::{
    CloudEnvironment, KeySource, Registry, RegistryConfig, load_or_create_token,
};
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::cli::ServeArgs;
use crate::config::{self, env_secret};
use crate::logging;

/// The admin token file in the data directory.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";
/// A shorter token is too easy to guess for an API that controls where code is sent.
const MIN_ADMIN_TOKEN_LEN: usize = 16;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let cfg = config::resolve(&args)?;
    let args_force = args.auth_bypass_force;
    // Held to the end of `run`, so queued log lines are flushed before the process exits.
    let _logs = logging::init(&cfg.log_level, cfg.log_format, cfg.log_file.as_deref())?;

    // Read once: Bedrock credentials and region from the environment or the AWS profile.
    let aws = hearth_providers::AwsDefaults::from_env();
    let registry = Registry::open(&RegistryConfig {
        cloud: CloudEnvironment {
            aws_credentials: aws.auth.is_some(),
            aws_region: aws.region.clone(),
            azure_key: env_secret("AZURE_OPENAI_API_KEY").is_some(),
        },
        data_dir: cfg.data_dir.clone(),
        database_url: cfg.database_url.clone(),
        secret_key: env_secret("HEARTH_SECRET_KEY").map(SecretString::from),
        pool: cfg.database,
    })
    .await
    .context("cannot open the registry")?;
    if let Some(problem) = registry.secret_key_problem() {
        tracing::error!("{problem}");
    }
    match registry.key_source() {
        KeySource::Environment => tracing::info!("API keys are encrypted with HEARTH_SECRET_KEY"),
        KeySource::File(path) => {
            tracing::info!(path = %path.display(), "API keys are encrypted with the key file")
        }
        KeySource::CreatedFile(path) => tracing::warn!(
            path = %path.display(),
            "created a new secret key file (mode 0600) to encrypt API keys; back it up, or stored API keys become unreadable if it is lost"
        ),
    }

    let admin_token = match env_secret("HEARTH_ADMIN_TOKEN") {
        Some(token) if token.len() < MIN_ADMIN_TOKEN_LEN => anyhow::bail!(
            "HEARTH_ADMIN_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters (make one with `openssl rand -hex 24`)"
        ),
        Some(token) => {
            tracing::info!("admin token: HEARTH_ADMIN_TOKEN");
            SecretString::from(token)
        }
        None => {
            let path = cfg.data_dir.join(ADMIN_TOKEN_FILE);
            let (token, created) = load_or_create_token(&path)?;
            if created {
                tracing::info!(path = %path.display(), "generated the admin token (mode 0600); the CLI reads it from there");
            } else {
                tracing::info!(path = %path.display(), "admin token: file");
            }
            token
        }
    };

    // Before binding: an unreadable certificate stops start-up with the file's name.
    let tls = cfg.tls.as_ref().map(crate::serve_tls::start).transpose()?;
    crate::serve_tls::reload_on_sighup(tls.clone())?;
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    tracing::info!(
        addr = %addr,
        data_dir = %cfg.data_dir.display(),
        database = registry.database(),
        version = env!("CARGO_PKG_VERSION"),
        git_rev = env!("HEARTH_GIT_REV"),
        tls = tls.is_some(),
        "hearth listening"
    );
    let registry = Arc::new(registry);
    // SQLite too: a `hearth db import` or a second process on the same file shows up here.
    let _watch = registry.watch();
    let loopback = addr.ip().is_loopback();
    if cfg.auth_bypass {
        if !loopback && !args_force {
            anyhow::bail!(
                "the GitLab auth bypass is for local testing and Hearth listens on {addr}, beyond loopback; \
                 turn it off, listen on 127.0.0.1, or force it with HEARTH_AUTH_BYPASS_FORCE=true"
            );
        }
        tracing::warn!(addr = %addr, "GITLAB AUTH BYPASS IS ON: every GitLab route accepts requests without a token");
    }
    if let Some(api) = &cfg.gitlab_api_url {
        tracing::info!(gitlab_api_url = %api, "GitLab API URL (for set-up checks)");
    }
    if !cfg.auth_bypass && cfg.gitlab_url.is_none() {
        tracing::info!(
            "no GitLab URL (HEARTH_GITLAB_URL / AIGW_GITLAB_URL): the GitLab routes refuse every request"
        );
    }
    let metrics_token = match env_secret("HEARTH_METRICS_TOKEN") {
        Some(token) if token.len() < MIN_ADMIN_TOKEN_LEN => anyhow::bail!(
            "HEARTH_METRICS_TOKEN must be at least {MIN_ADMIN_TOKEN_LEN} characters (make one with `openssl rand -hex 24`)"
        ),
        Some(token) => Some(SecretString::from(token)),
        None => {
            if !loopback {
                tracing::info!(
                    "/metrics answers loopback clients only; set HEARTH_METRICS_TOKEN to let a remote scraper in"
                );
            }
            None
        }
    };
    let limits = &cfg.limits;
    let defaults = hearth_gateway::AdmissionLimits::default();
    let admission = hearth_gateway::AdmissionLimits {
        max_in_flight: limits
            .max_in_flight
            .map_or(defaults.max_in_flight, |n| n as usize),
        max_in_flight_per_deployment: limits
            .max_in_flight_per_deployment
            .map_or(defaults.max_in_flight_per_deployment, |n| n as usize),
        max_queued: limits
            .max_queued
            .map_or(defaults.max_queued, |n| n as usize),
        queue_timeout: limits.queue_timeout.unwrap_or(defaults.queue_timeout),
    };
    let gateway = hearth_gateway::build(
        registry.clone(),
        admin_token,
        hearth_gateway::RouterOptions {
            loopback,
            aws,
            azure_api_key: env_secret("AZURE_OPENAI_API_KEY").map(SecretString::from),
            gitlab_url: cfg.gitlab_url.clone(),
            gitlab_auth_bypass: cfg.auth_bypass,
            custom_models_disabled: !cfg.custom_models,
            admission,
            body_timeout: limits.body_timeout,
            metrics_token,
            upstream: upstream_limits(limits, admission.max_in_flight_per_deployment),
            served_over_tls: tls.is_some(),
            routing: upstream_routing(limits),
        },
    );
    let serve_defaults = hearth_gateway::ServeOptions::default();
    let options = hearth_gateway::ServeOptions {
        header_timeout: limits
            .header_timeout
            .unwrap_or(serve_defaults.header_timeout),
        max_connections: connection_cap(
            limits
                .max_connections
                .map_or(serve_defaults.max_connections, |n| n as usize),
        ),
        drain_timeout: limits.drain_timeout.unwrap_or(serve_defaults.drain_timeout),
        tls,
    };
    tracing::info!(
        max_connections = options.max_connections,
        header_timeout_s = options.header_timeout.as_secs_f64(),
        drain_timeout_s = options.drain_timeout.as_secs_f64(),
        max_in_flight = admission.max_in_flight,
        max_in_flight_per_deployment = admission.max_in_flight_per_deployment,
        "limits"
    );
    hearth_gateway::serve(listener, gateway, options, shutdown).await?;
    registry.close().await;
    tracing::info!("hearth stopped");
    Ok(())
}

/// `in_flight`: the calls one deployment may have in flight, which is also how many idle
/// connections to its model server are worth keeping.
fn upstream_limits(
    limits: &crate::cli::LimitArgs,
    in_flight: usize,
) -> hearth_providers::UpstreamLimits {
    let defaults = hearth_providers::UpstreamLimits::default();
    let bytes = |n: Option<u64>, default: usize| n.map_or(default, |n| n as usize);
    hearth_providers::UpstreamLimits {
        max_event_bytes: bytes(limits.max_upstream_event_bytes, defaults.max_event_bytes),
        max_body_bytes: bytes(limits.max_upstream_body_bytes, defaults.max_body_bytes),
        max_idle_connections: in_flight,
    }
}

/// File descriptors kept for the database, log files and listener beyond the connections.
const SPARE_FILES: u64 = 64;

/// The connection cap that fits the open-file limit: the soft limit is raised to the hard
/// one, and each client connection may need a second descriptor for its model server.
fn connection_cap(wanted: usize) -> usize {
    let limit = match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit");
            return wanted;
        }
    };
    let overflow = hearth_gateway::OVERFLOW_CONNECTIONS as u64;
    let fits = (limit.saturating_sub(SPARE_FILES + overflow) / 2).max(1) as usize;
    if wanted > fits {
        tracing::warn!(
            max_connections = wanted,
            open_file_limit = limit,
            using = fits,
            "the open-file limit is too low for --max-connections; raise it (ulimit -n, LimitNOFILE=) to serve more"
        );
        return fits;
    }
    wanted
}

/// Resolves on SIGTERM or Ctrl-C. The handlers are registered when this is called, not when
/// first polled, so a signal that arrives right after start-up is not lost (or fatal).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut int = signal(SignalKind::interrupt()).context("cannot listen for Ctrl-C")?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("shutting down: finishing requests in flight");
        })
    }
}

/// Replica health, retries and keystroke-aware completion from the limits given.
fn upstream_routing(limits: &crate::cli::LimitArgs) -> hearth_gateway::UpstreamRouting {
    let d = hearth_gateway::UpstreamRouting::default();
    hearth_gateway::UpstreamRouting {
        health_interval: limits.health_check_interval.unwrap_or(d.health_interval),
        eject_after: limits.eject_after_failures.unwrap_or(d.eject_after),
        ejection: limits.ejection_time.unwrap_or(d.ejection),
        retry_ratio: limits.retry_budget.unwrap_or(d.retry_ratio),
        supersede: !limits.no_supersede,
        coalesce: !limits.no_coalesce,
        cache_ttl: limits.completion_cache_ttl.unwrap_or(d.cache_ttl),
        ..d
    }
}
