//! GitLab's AI-gateway API: what a GitLab instance with Duo Self-Hosted sends to the URL in
//! its `AI_GATEWAY_URL`. Requests, responses, errors and auth follow GitLab's own gateway.

mod answer;
mod auth;
mod chat;
mod code;
mod error;
mod model;
mod prompts;
mod record;
mod rs256;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{get, post};

use crate::AppState;
use auth::Principal;
pub(crate) use auth::Verifier;
use error::GitlabError;

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v2/code/completions", post(code::v2_completions))
        .route("/v2/completions", post(code::v2_completions))
        .route("/v2/code/generations", post(code::v2_generations))
        .route("/v3/code/completions", post(code::v3))
        .route("/v4/code/suggestions", post(code::v4))
        .route("/v2/chat/agent", post(chat::agent))
        .route("/v1/chat/{tool}", post(chat::tool))
        .route("/v1/prompts/{*prompt_id}", post(prompts::v1))
        .route("/v2/prompts/{*prompt_id}", post(prompts::v2))
        .route("/v1/models/definitions", get(prompts::definitions))
}

/// Checks the request's GitLab token and, when given, that it grants `scope` (the feature's
/// unit primitive: `complete_code`, `generate_code`, …).
pub(crate) async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    scope: Option<&str>,
) -> Result<Principal, GitlabError> {
    let principal = if state.gitlab_bypass {
        Principal::Bypass
    } else {
        Principal::Token(state.gitlab.verify(headers).await?)
    };
    if let Some(scope) = scope
        && !principal.allows(scope)
    {
        return Err(GitlabError::detail(
            axum::http::StatusCode::FORBIDDEN,
            format!("Unauthorized to access {scope}"),
        ));
    }
    Ok(principal)
}

/// A place for one call to `deployment`, or GitLab's 503 (see `admission`).
pub(crate) async fn admit(
    state: &AppState,
    deployment: &str,
) -> Result<crate::admission::Permit, GitlabError> {
    Ok(crate::openai::admit(state, deployment).await?)
}

/// The feature flags GitLab says are on, echoed in `metadata.enabled_feature_flags`.
pub(crate) fn feature_flags(headers: &HeaderMap) -> Vec<String> {
    headers
        .get("x-gitlab-enabled-feature-flags")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}
