//! Client API keys on the inference routes. With no key created, the routes answer only when
//! Hearth listens on loopback, so a fresh install is never an open relay on the network.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::openai::error::OaiError;

/// The key check with OpenAI's error shape (every inference route but Anthropic's).
pub(crate) async fn require_client_key(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// The same check answered in Anthropic's error shape, which Anthropic's SDKs read.
pub(crate) async fn require_client_key_anthropic(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    match check(&state, req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => crate::openai::anthropic::error_response(&e),
    }
}

/// The presented key: `Authorization: Bearer` (OpenAI's clients), else `x-api-key`
/// (Anthropic's clients send their key there).
fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
}

fn check(state: &AppState, headers: &HeaderMap) -> Result<(), OaiError> {
    let snap = state.registry.snapshot();
    if !snap.has_active_client_keys() {
        if state.loopback {
            return Ok(());
        }
        return Err(OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "no_client_keys",
            "Hearth listens beyond loopback and has no client API keys yet: an administrator creates one with `hearth keys create NAME`",
        ));
    }
    match presented(headers).and_then(|k| snap.client_key_id(k)) {
        Some(_) => Ok(()),
        None => Err(OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or unknown API key: send `Authorization: Bearer <client key>` or `x-api-key: <client key>` (see `hearth keys create`)",
        )),
    }
}
