//! `POST /api/v1/self_hosted_models/{id}/check`: one tiny real request to the deployment, and
//! the answer in plain words — what GitLab's "Test connection" button does for its gateway.

use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use hearth_catalog::Capability;
use hearth_prompts::{CompletionStyle, completion_prompt};
use hearth_providers::{
    CallContext, ChatMessage, ChatRequest, Endpoint, ProviderError, Reply, TextRequest,
};
use hearth_registry::Deployment;
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::AppState;
use crate::error::{ApiError, ApiErrorBody};
use crate::openai::error::OaiError;
use crate::routing::endpoint_for;

/// A check is a health probe, not a workload: it must answer quickly either way.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

#[utoipa::path(operation_id = "deployments_check", post, path = "/api/v1/self_hosted_models/{id}/check", tag = "admin",
    params(("id" = i64, Path, description = "Deployment id")),
    responses((status = 200, description = "`ok`, `deployment`, and `latency_ms` and `detail` or `code` and `error`", body = Object),
        (status = 404, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn check(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no self-hosted model has id {id:?}")))?;
    let snap = state.registry.snapshot();
    let d = snap
        .deployment(id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("no self-hosted model has id {id}")))?;
    let outcome = run_check(&state, &d).await;
    Ok(Json(match outcome.result {
        Ok(detail) => json!({
            "ok": true,
            "deployment": d.name,
            "latency_ms": outcome.latency_ms,
            "detail": detail,
        }),
        Err((code, error)) => {
            json!({"ok": false, "deployment": d.name, "code": code, "error": error})
        }
    }))
}

/// What one connection check found: the detail on success, or the error's code and plain
/// words. Both the API and the console show it, so it is worked out once, here.
#[derive(Clone, Debug)]
pub(crate) struct CheckOutcome {
    pub(crate) result: Result<String, (&'static str, String)>,
    pub(crate) latency_ms: u64,
    /// When it ran, for "last checked".
    pub(crate) at: std::time::SystemTime,
}

/// Sends the 1-token request and remembers the outcome as the deployment's last check.
pub(crate) async fn run_check(state: &AppState, d: &Deployment) -> CheckOutcome {
    let mut endpoint = match endpoint_for(d, Capability::CodeCompletion, &state.cloud) {
        Ok(ep) => ep,
        Err(e) => return remember(state, d.id, Err((e.code, e.message)), 0),
    };
    endpoint.timeouts.total = endpoint.timeouts.total.min(CHECK_TIMEOUT);
    endpoint.timeouts.first_token = endpoint.timeouts.first_token.min(CHECK_TIMEOUT);
    let ctx = CallContext {
        request_id: format!("check-{}", uuid::Uuid::new_v4().simple()),

        affinity: None,
    };
    let started = Instant::now();
    // Every replica is asked (at once); the check passes only if all answer.
    let replicas: Vec<Option<&str>> = match d.endpoints.as_slice() {
        [_, _, ..] => d.endpoints.iter().map(|u| Some(u.as_str())).collect(),
        _ => vec![None],
    };
    let runs = replicas.iter().map(|url| {
        let mut endpoint = endpoint.clone();
        if let Some(url) = url {
            endpoint.base_url = (*url).to_string();
        }
        let ctx = &ctx;
        async move { one_token(state, d, Capability::CodeCompletion, &endpoint, ctx).await }
    });
    let answers = futures_util::future::join_all(runs).await;
    let latency_ms = started.elapsed().as_millis() as u64;
    let request = answers.first().map_or("completion", |(r, _)| *r);
    let failures: Vec<(Option<&str>, &hearth_providers::ProviderError)> = replicas
        .iter()
        .zip(&answers)
        .filter_map(|(url, (_, r))| r.as_ref().err().map(|e| (*url, e)))
        .collect();
    // The failure's cause and fix belong in the log too: it is where an operator looks
    // when the check was run from GitLab's UI.
    let error = failures.first().map(|(_, e)| e.to_string());
    tracing::info!(
        self_hosted_model_id = d.id,
        ok = failures.is_empty(),
        latency_ms,
        error,
        "connection check"
    );
    let result = match failures.first() {
        None if replicas.len() > 1 => Ok(format!(
            "all {} replicas of {} answered a 1-token {request} request as {model:?}",
            replicas.len(),
            d.platform.as_str(),
            model = d.upstream_model()
        )),
        None => Ok(format!(
            "{} answered a 1-token {request} request as {model:?}",
            d.platform.as_str(),
            model = d.upstream_model()
        )),
        Some((url, e)) => {
            let e = OaiError::upstream(&d.name, e);
            let which = match url {
                Some(url) => format!(
                    "{} of {} replicas failed; {url}: ",
                    failures.len(),
                    replicas.len()
                ),
                None => String::new(),
            };
            Err((e.code, format!("{which}{}", e.message)))
        }
    };
    remember(state, d.id, result, latency_ms)
}

fn remember(
    state: &AppState,
    id: i64,
    result: Result<String, (&'static str, String)>,
    latency_ms: u64,
) -> CheckOutcome {
    let outcome = CheckOutcome {
        result,
        latency_ms,
        at: std::time::SystemTime::now(),
    };
    state
        .checks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, outcome.clone());
    outcome
}

/// The smallest real request for work of kind `capability`: a 1-token chat message for chat
/// and generation and for chat-only families, else a 1-token text completion. Shared by this
/// check and `verify`, so both test what requests will do. Returns the route's name too.
pub(super) async fn one_token(
    state: &AppState,
    d: &Deployment,
    capability: Capability,
    endpoint: &Endpoint,
    ctx: &CallContext,
) -> (&'static str, Result<Reply, ProviderError>) {
    let model = d.upstream_model().to_string();
    let chat = capability != Capability::CodeCompletion
        || completion_prompt(d.family, "", "", None, None).style == CompletionStyle::ChatInstruct;
    if chat {
        let req = ChatRequest {
            model,
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "Reply with OK.".into(),
                ..Default::default()
            }],
            max_tokens: Some(1),
            temperature: Some(0.0),
            ..Default::default()
        };
        (
            "chat/completions",
            state.provider.chat(endpoint, &req, ctx).await,
        )
    } else {
        let req = TextRequest {
            model,
            prompt: "def hello():".into(),
            max_tokens: 1,
            temperature: Some(0.0),
            ..Default::default()
        };
        (
            "completions",
            state.provider.complete(endpoint, &req, ctx).await,
        )
    }
}
