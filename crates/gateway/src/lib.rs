//! Hearth's HTTP server.
//!
//! This crate is the only one that knows HTTP and the wire JSON: it decodes requests, checks
//! auth, gives every request a correlation id, and maps domain errors to statuses in one
//! place (`error.rs`). The domain lives in `hearth-registry` and `hearth-catalog`.

mod admin;
mod admission;
mod body_timeout;
mod console;
mod correlation;
mod error;
mod extract;
mod gitlab;
mod inference;
mod monitoring;
mod openai;
mod openapi;
mod pump;
mod routing;
mod server;
mod telemetry;
#[cfg(test)]
mod test_json;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use hearth_providers::{AwsDefaults, Providers, UpstreamLimits};
use hearth_registry::Registry;
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use admission::AdmissionLimits;
pub use correlation::{CorrelationId, request_id_in_scope, run_in_request_scope};
pub use routing::UpstreamRouting;
pub use server::{OVERFLOW_CONNECTIONS, ServeOptions, serve};
pub use tls::{Tls, TlsError};

use crate::error::ApiError;

/// The largest request body accepted, in bytes.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler shares. One `Arc`: axum clones the state for every request and layer,
/// and one reference count is cheaper to move than one per field.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub(crate) struct Shared {
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
    admission: Arc<admission::Admission>,
    /// Lets non-loopback scrapers read `/metrics`.
    metrics_token: Option<Arc<SecretString>>,
    /// Each deployment's last connection check (API or console), for the console's table.
    checks: Arc<std::sync::Mutex<std::collections::HashMap<i64, admin::CheckOutcome>>>,
    /// The web console's sessions.
    console: Arc<console::Sessions>,
    /// Each deployment's replicas and their health.
    pools: Arc<routing::Pools>,
    /// Completions in flight per client and file (keystroke-aware cancellation).
    supersede: Arc<routing::supersede::Supersede>,
}

impl routing::Capacity for AppState {
    fn has_room(&self, d: &hearth_registry::Deployment) -> bool {
        self.pools.of(d).is_none_or(|p| p.any_available()) && !self.admission.is_full(&d.name)
    }
}

impl FromRef<AppState> for Arc<Registry> {
    fn from_ref(state: &AppState) -> Self {
        state.registry.clone()
    }
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
    /// Caps on model-server calls in flight.
    pub admission: AdmissionLimits,
    /// The longest wait for the next piece of a request body (default 30 s).
    pub body_timeout: Option<Duration>,
    /// Bearer token for `/metrics` from beyond loopback (loopback needs none).
    pub metrics_token: Option<SecretString>,
    /// What Hearth reads from a model server at most.
    pub upstream: UpstreamLimits,
    /// The listener serves HTTPS, so the console's session cookie is marked `Secure`.
    pub served_over_tls: bool,
    /// Replica health checks, ejection, retries and keystroke-aware completion.
    pub routing: UpstreamRouting,
}

/// The routers `serve` runs: the whole API, and the small one that answers connections past
/// the connection cap (health checks, and 503 for the rest).
pub struct Gateway {
    pub router: Api,
    pub overflow: Router,
}

/// The whole API as one service: the routes inside the layers every request passes.
pub type Api = tower::util::BoxCloneSyncService<Request, Response, std::convert::Infallible>;

/// The default for [`RouterOptions::body_timeout`].
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the routers; [`serve`] runs them. Split so tests can drive them without a socket.
pub fn build(
    registry: Arc<Registry>,
    admin_token: SecretString,
    options: RouterOptions,
) -> Gateway {
    let shared_metrics = Arc::new(telemetry::Metrics::new());
    let events = {
        let metrics = Arc::downgrade(&shared_metrics);
        Arc::new(move |event: routing::PoolEvent<'_>| {
            if let Some(m) = metrics.upgrade() {
                m.pool_event(event);
            }
        })
    };
    let health_interval = options.routing.health_interval;
    let cache_ttl = options.routing.cache_ttl;
    let state = AppState(Arc::new(Shared {
        registry,
        admin_token: Arc::new(admin_token),
        provider: Arc::new(Providers::with_limits(options.upstream)),
        cloud: Arc::new(routing::CloudDefaults {
            aws: options.aws,
            azure_api_key: options.azure_api_key,
        }),
        metrics: shared_metrics,
        pools: Arc::new(routing::Pools::new(options.routing, events)),
        supersede: Arc::new(routing::supersede::Supersede::new(cache_ttl)),
        loopback: options.loopback,
        gitlab: Arc::new(gitlab::Verifier::new(options.gitlab_url)),
        gitlab_bypass: options.gitlab_auth_bypass,
        custom_models: !options.custom_models_disabled,
        admission: Arc::new(admission::Admission::new(options.admission)),
        metrics_token: options.metrics_token.map(Arc::new),
        checks: Arc::default(),
        console: Arc::new(console::Sessions::new(options.served_over_tls)),
    }));
    if !health_interval.is_zero() {
        routing::health::spawn(
            Arc::downgrade(&state.pools),
            Arc::downgrade(&state.registry),
            state.provider.clone(),
            state.cloud.clone(),
            health_interval,
        );
    }
    let (documented, api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(monitoring::healthz))
        .routes(routes!(monitoring::ready))
        .routes(routes!(openapi::document))
        .merge(admin::routes(state.clone()))
        .merge(openai::routes(state.clone()))
        .split_for_parts();
    let document = match serde_json::to_string(&api) {
        Ok(json) => json,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            String::from("{}")
        }
    };
    let routes = Router::new()
        .route("/metrics", get(metrics))
        .merge(documented)
        .merge(gitlab::routes())
        .merge(console::routes(state.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state.clone());
    // Wrapped around the router once, outermost first, rather than with Router::layer: that
    // wraps every route on its own, and axum boxes and clones each route's service at every
    // layer for every request. Boxed once here instead of put in an outer Router, whose own
    // dispatch to a fallback service cost as much again.
    let router = Api::new(
        Extension(openapi::Document(Arc::new(document))).layer(
            correlation::CorrelationLayer.layer(
                body_timeout::BodyTimeoutLayer(options.body_timeout.unwrap_or(BODY_TIMEOUT))
                    .layer(DefaultBodyLimit::max(BODY_LIMIT).layer(routes)),
            ),
        ),
    );
    let overflow = Router::new()
        .route("/monitoring/healthz", get(monitoring::healthz))
        .route("/monitoring/ready", get(monitoring::ready))
        .fallback(at_connection_cap)
        .with_state(state.registry.clone());
    Gateway { router, overflow }
}

/// Prometheus text. Loopback scrapers need nothing; others need the metrics token.
async fn metrics(State(state): State<AppState>, req: Request) -> Response {
    let from_loopback = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| peer.ip().is_loopback());
    if !from_loopback {
        let Some(expected) = &state.metrics_token else {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                "metrics_loopback_only",
                "/metrics answers loopback clients only; set HEARTH_METRICS_TOKEN and scrape with `Authorization: Bearer <token>`",
            )
            .into_response();
        };
        let presented = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !bool::from(
            presented
                .as_bytes()
                .ct_eq(expected.expose_secret().as_bytes()),
        ) {
            return ApiError::unauthorized(
                "/metrics needs `Authorization: Bearer <metrics token>` (HEARTH_METRICS_TOKEN)",
            )
            .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        {
            let pools = state.pools.sync(state.registry.snapshot().deployments());
            state.metrics.set_replicas(&pools);
            state.metrics.encode()
        },
    )
        .into_response()
}

/// Every route but health on a connection past the cap.
async fn at_connection_cap() -> Response {
    let mut response = openai::error::OaiError::overloaded(
        "Hearth is at its connection limit (--max-connections); retry shortly".into(),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// OpenAI SDKs read only OpenAI's error envelope, so anything under `/v1` gets that shape.
fn is_openai_path(uri: &axum::http::Uri) -> bool {
    let path = uri.path();
    path == "/v1" || path.starts_with("/v1/")
}

/// Anthropic's clients read errors under `/v1/messages` (e.g. `count_tokens`, which Hearth
/// does not serve) in Anthropic's shape.
fn is_anthropic_path(uri: &axum::http::Uri) -> bool {
    let path = uri.path();
    path == "/v1/messages" || path.starts_with("/v1/messages/")
}

async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if is_anthropic_path(&uri) {
        let e = openai::error::OaiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!(
                "Hearth does not serve {method} {}; its Anthropic route is POST /v1/messages",
                uri.path()
            ),
        );
        return openai::anthropic::error_response(&e);
    }
    if is_openai_path(&uri) {
        return openai::error::OaiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!(
                "Hearth does not serve {method} {}; the OpenAI routes are POST /v1/completions, POST /v1/fim/completions, POST /v1/chat/completions, GET /v1/models and GET /v1/models/{{model}} (and Anthropic's POST /v1/messages)",
                uri.path()
            ),
        )
        .into_response();
    }
    ApiError::not_found(
        "no such route; the OpenAI API is under /v1, the admin API under /api/v1, the web console under /admin, health under /monitoring",
    )
    .into_response()
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    if is_anthropic_path(&uri) {
        let e = openai::error::OaiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{} does not accept {method}", uri.path()),
        );
        return openai::anthropic::error_response(&e);
    }
    if is_openai_path(&uri) {
        return openai::error::OaiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            "method_not_allowed",
            format!("{} does not accept {method}", uri.path()),
        )
        .into_response();
    }
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
    .into_response()
}
