//! Liveness and readiness, at the paths GitLab's gateway uses.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use std::sync::Arc;

use hearth_registry::Registry;

const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Always 200 while the process serves requests.
#[utoipa::path(operation_id = "monitoring_healthz", get, path = "/monitoring/healthz", tag = "monitoring",
    responses((status = 200, description = "The process serves requests", body = Object)))]
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({}))
}

/// 200 when the database answers. When it does not, the replica still serves the registry it
/// last loaded, so it stays ready (200, with the database's state) unless it is shutting down:
/// taking every replica out of the load balancer during a database outage would turn a
/// configuration freeze into a full outage.
#[utoipa::path(operation_id = "monitoring_ready", get, path = "/monitoring/ready", tag = "monitoring",
    responses((status = 200, description = "`status`: ready, `database`: ok or unavailable (the last loaded registry is served)", body = Object),
        (status = 503, description = "`status`: unavailable, `reason` (shutting down)", body = Object)))]
pub(crate) async fn ready(State(registry): State<Arc<Registry>>) -> (StatusCode, Json<Value>) {
    let answer = tokio::time::timeout(READY_TIMEOUT, registry.ping()).await;
    if answer.as_ref().is_ok_and(|r| r.is_ok()) {
        return (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": "ok"})),
        );
    }
    if !registry.is_closed() {
        return (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "database": "unavailable",
                "registry_version": registry.snapshot().version(),
            })),
        );
    }
    match answer {
        Ok(Ok(())) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database": "ok"})),
        ),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable", "reason": format!("database: {e}")})),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "reason": format!("database did not answer within {} s", READY_TIMEOUT.as_secs()),
            })),
        ),
    }
}
