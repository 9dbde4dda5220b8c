//! Hearth's HTTP server.
//!
//! This crate is the only one that knows HTTP and the wire JSON: it decodes requests, checks
//! auth, gives every request a correlation id, and maps domain errors to statuses in one
//! place (`error.rs`). The domain lives in `hearth-registry` and `hearth-catalog`.

mod admin;
mod correlation;
mod error;
mod extract;
mod gitlab;
mod inference;
mod monitoring;
mod openai;
mod routing;
mod telemetry;
#[cfg(test)]
mod test_json;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::from_fn;
use axum::routing::get;
use hearth_providers::{AwsDefaults, Providers};
use hearth_registry::Registry;
use secrecy::SecretString;
use tokio::net::TcpListener;

pub use correlation::CorrelationId;

use crate::error::ApiError;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

#[derive(Clone)]
pub(crate) struct AppState {
    registry: Arc<Registry>,
    admin_token: Arc<SecretString>,
    provider: Arc<Providers>,
    /// Cloud credentials from the environment, read once at start.
    cloud: Arc<routing::CloudDefaults>,
    metrics: Arc<telemetry::Metrics>,
    /// Whether the listener is on a loopback address (see `openai::auth`).
    loopback: bool,
    gitlab: Arc<gitlab::Verifier>,
    /// GitLab auth bypassed (local testing only).
    gitlab_bypass: bool,
    /// Requests may name their own model endpoint (GitLab's custom models).
    custom_models: bool,
}

/// How the server is exposed, which decides what is safe to answer without credentials.
#[derive(Clone, Debug, Default)]
pub struct RouterOptions {
    /// True when listening on a loopback address only.
    pub loopback: bool,
    pub aws: AwsDefaults,
    /// AZURE_OPENAI_API_KEY, for Azure deployments without a key of their own.
    pub azure_api_key: Option<SecretString>,
    /// The GitLab instance whose tokens the GitLab routes accept (its OIDC issuer).
    pub gitlab_url: Option<String>,
    /// Skip GitLab token checks (local testing; the binary refuses it beyond loopback).
    pub gitlab_auth_bypass: bool,
    /// Refuse GitLab requests that name their own model endpoint (custom models off).
    pub custom_models_disabled: bool,
}

/// Builds the router; `serve` runs it. Split so tests can drive it without a socket.
pub fn router(
    registry: Arc<Registry>,
    admin_token: SecretString,
    options: RouterOptions,
) -> Router {
    let state = AppState {
        registry,
        admin_token: Arc::new(admin_token),
        provider: Arc::new(Providers::new()),
        cloud: Arc::new(routing::CloudDefaults {
            aws: options.aws,
            azure_api_key: options.azure_api_key,
        }),
        metrics: Arc::new(telemetry::Metrics::new()),
        loopback: options.loopback,
        gitlab: Arc::new(gitlab::Verifier::new(options.gitlab_url)),
        gitlab_bypass: options.gitlab_auth_bypass,
        custom_models: !options.custom_models_disabled,
    };
    Router::new()
        .route("/monitoring/healthz", get(monitoring::healthz))
        .route("/monitoring/ready", get(monitoring::ready))
        .route("/metrics", get(metrics))
        .merge(admin::routes(state.clone()))
        .merge(openai::routes(state.clone()))
        .merge(gitlab::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(from_fn(correlation::middleware))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` resolves, then lets in-flight requests
/// finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found(
        "no such route; the OpenAI API is under /v1, the admin API under /api/v1, health under /monitoring",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
