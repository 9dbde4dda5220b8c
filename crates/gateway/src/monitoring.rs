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
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({}))
}

/// 200 when the database answers, else 503 with the reason.
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
