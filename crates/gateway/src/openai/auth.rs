//! Client API keys on the inference routes. With no key created, the routes answer only when
//! Hearth listens on loopback, so a fresh install is never an open relay on the network.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::openai::error::OaiError;

pub(crate) async fn require_client_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let snap = state.registry.snapshot();
    if !snap.has_active_client_keys() {
        if state.loopback {
            return next.run(req).await;
        }
        return OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "no_client_keys",
            "Hearth listens beyond loopback and has no client API keys yet: an administrator creates one with `hearth keys create NAME`",
        )
        .into_response();
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim());
    match presented.and_then(|k| snap.client_key_id(k)) {
        Some(_) => next.run(req).await,
        None => OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or unknown API key: send `Authorization: Bearer <client key>` (see `hearth keys create`)",
        )
        .into_response(),
    }
}
