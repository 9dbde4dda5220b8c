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

/// 200 when the database answers, else 503 with the reason.
#[utoipa::path(operation_id = "monitoring_ready", get, path = "/monitoring/ready", tag = "monitoring",
    responses((status = 200, description = "`status`: ready, `database`: ok", body = Object),
        (status = 503, description = "`status`: unavailable, `reason`", body = Object)))]
pub(crate) async fn ready(State(registry): State<Arc<Registry>>) -> (StatusCode, Json<Value>) {
    match tokio::time::timeout(READY_TIMEOUT, registry.ping()).await {
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
