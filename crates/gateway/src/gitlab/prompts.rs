//! `/v1|v2/prompts/{prompt_id}`: `model_configuration/check` (GitLab's "Test connection"),
//! the Duo features GitLab sends there (commit message, merge request summary, review,
//! vulnerability resolution, the chat tools, …; see `hearth_prompts::FEATURE_PROMPTS`), and
//! `/v1/models/definitions`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use hearth_catalog::{Family, Feature};
use hearth_prompts::{
    CompletionStyle, FEATURE_MAX_TOKENS, FEATURE_TEMPERATURE, FeaturePrompt, completion_prompt,
    feature_prompt,
};
use hearth_providers::{CallContext, ChatMessage, ChatRequest, ProviderError, TextRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::RawBody;
use crate::gitlab::error::GitlabError;
use crate::gitlab::model::{ModelFields, UseCase, select};
use crate::gitlab::record::{exchange, failed, finish_whole, recorded};
use crate::gitlab::{admit, authorize};
use crate::telemetry::Exchange;

#[derive(Deserialize)]
struct InvokeBody {
    #[serde(default)]
    model_metadata: Option<ModelFields>,
    #[serde(default)]
    inputs: serde_json::Map<String, Value>,
    #[serde(default)]
    stream: bool,
}

const CHECK: &str = "model_configuration/check";

/// What a prompt answers: the whole text (v1 sends it as a bare JSON string, v2 as
/// `{content, usage}`), or GitLab's raw text stream.
enum Answer {
    Whole(String, Option<Value>),
    Stream(Response),
}

async fn invoke(
    state: AppState,
    cid: String,
    headers: HeaderMap,
    prompt_id: String,
    body: Bytes,
) -> Result<Answer, GitlabError> {
    let started = tokio::time::Instant::now();
    if prompt_id.trim_matches('/') != CHECK {
        let Some(prompt) = feature_prompt(&prompt_id) else {
            // Unknown ids are 404 whoever asks, as GitLab's gateway answers them.
            authorize(&state, &headers, None).await?;
            return Err(GitlabError::detail(
                StatusCode::NOT_FOUND,
                format!("Prompt '{prompt_id}' not found"),
            ));
        };
        authorize(&state, &headers, Some(prompt.unit_primitive)).await?;
        return run_feature(state, cid, prompt, parse_body(&body)?, started).await;
    }
    authorize(&state, &headers, None).await?;
    let b = parse_body(&body)?;
    let fields = b.model_metadata.unwrap_or_default();
    let sel = select(&state, &fields, Feature::DuoChat, UseCase::Chat).or_else(|_| {
        select(
            &state,
            &fields,
            Feature::CodeCompletions,
            UseCase::Completion,
        )
    })?;
    let ctx = CallContext {
        request_id: cid,
        affinity: None,
    };
    let model = sel.deployment.upstream_model().to_string();
    let chat = completion_prompt(sel.deployment.family, "", "", None, None).style
        == CompletionStyle::ChatInstruct;
    let result = if chat
        || sel.deployment.family == Family::Mistral
        || sel.deployment.family == Family::Mixtral
    {
        let req = ChatRequest {
            model,
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "Reply with OK.".into(),
                ..Default::default()
            }],
            max_tokens: Some(16),
            temperature: Some(0.0),
            ..Default::default()
        };
        state.provider.chat(&sel.endpoint, &req, &ctx).await
    } else {
        let req = TextRequest {
            model,
            prompt: "def hello():".into(),
            max_tokens: 16,
            temperature: Some(0.0),
            ..Default::default()
        };
        state.provider.complete(&sel.endpoint, &req, &ctx).await
    };
    match result {
        Ok(reply) => Ok(Answer::Whole(
            reply.text,
            reply.usage.map(
                |u| json!({"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}),
            ),
        )),
        Err(e) => Err(model_error(e)),
    }
}

fn parse_body(body: &Bytes) -> Result<InvokeBody, GitlabError> {
    serde_json::from_slice(body).map_err(|e| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {e}"),
        )
    })
}

/// GitLab's prompts route answers a model server's HTTP error with 421, which Rails shows as
/// the model server's own answer.
fn model_error(e: ProviderError) -> GitlabError {
    match e {
        ProviderError::Upstream {
            status, message, ..
        } => GitlabError::detail(
            StatusCode::MISDIRECTED_REQUEST,
            format!("{status}: {message}"),
        ),
        e @ ProviderError::Timeout { .. } => GitlabError::detail(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the model server did not answer in time: {e}"),
        ),
        e => GitlabError::detail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the model server cannot be reached: {e}"),
        ),
    }
}

/// GitLab sends strings; anything else (numbers, lists) reaches the model as its JSON text.
fn input_pairs(inputs: serde_json::Map<String, Value>) -> Vec<(String, String)> {
    inputs
        .into_iter()
        .filter_map(|(name, v)| match v {
            Value::Null => None,
            Value::String(s) => Some((name, s)),
            other => Some((name, other.to_string())),
        })
        .collect()
}

async fn run_feature(
    state: AppState,
    cid: String,
    prompt: &'static FeaturePrompt,
    b: InvokeBody,
    started: tokio::time::Instant,
) -> Result<Answer, GitlabError> {
    let fields = b.model_metadata.unwrap_or_default();
    // A feature with no binding of its own is served by Duo Chat's, as GitLab does for the
    // features an administrator has not assigned.
    let sel = match select(&state, &fields, prompt.feature, UseCase::Chat) {
        Ok(sel) => sel,
        Err(_) if fields.is_empty() => select(&state, &fields, Feature::DuoChat, UseCase::Chat)?,
        Err(e) => return Err(e),
    };
    let messages = prompt
        .messages(sel.deployment.prompt_family(), &input_pairs(b.inputs))
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role.as_str().into(),
            content: m.content,
            extra: Default::default(),
        })
        .collect();
    let req = ChatRequest {
        model: sel.deployment.upstream_model().to_string(),
        messages,
        max_tokens: Some(FEATURE_MAX_TOKENS),
        temperature: Some(FEATURE_TEMPERATURE),
        ..Default::default()
    };
    let permit = admit(&state, &sel.deployment.name).await?;
    let mut record = exchange(&state, &sel, prompt.feature, &cid, started);
    let ctx = CallContext {
        request_id: cid,
        affinity: None,
    };
    let fail = |e: ProviderError, record: Exchange| {
        let g = model_error(e);
        failed(record, &g);
        g
    };
    let called = tokio::time::Instant::now();
    if b.stream {
        let deadline = tokio::time::Instant::now() + sel.endpoint.timeouts.total;
        let up = state
            .provider
            .chat_stream(&sel.endpoint, &req, false, &ctx)
            .await;
        record.upstream_time = called.elapsed();
        let up = match up {
            Ok(up) => recorded(up, record),
            Err(e) => return Err(fail(e, record)),
        };
        let s = up.filter_map(|c| {
            std::future::ready(
                c.ok()
                    .filter(|c| !c.text.is_empty())
                    .map(|c| Bytes::from(c.text)),
            )
        });
        let mut r = Response::new(crate::pump::body(s, deadline, Some(permit)));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream; charset=utf-8"),
        );
        return Ok(Answer::Stream(r));
    }
    let reply = state.provider.chat(&sel.endpoint, &req, &ctx).await;
    record.upstream_time = called.elapsed();
    let reply = match reply {
        Ok(reply) => reply,
        Err(e) => return Err(fail(e, record)),
    };
    drop(permit);
    finish_whole(record, &reply.text, reply.usage);
    Ok(Answer::Whole(
        reply.text,
        reply.usage.map(
            |u| json!({"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}),
        ),
    ))
}

pub(crate) async fn v1(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    match invoke(state, cid.0, headers, id, body).await {
        Ok(Answer::Whole(text, _)) => Json(Value::String(text)).into_response(),
        Ok(Answer::Stream(r)) => r,
        Err(e) => e.into_response(),
    }
}

pub(crate) async fn v2(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    match invoke(state, cid.0, headers, id, body).await {
        Ok(Answer::Whole(text, usage)) => {
            Json(json!({"content": text, "usage": usage})).into_response()
        }
        Ok(Answer::Stream(r)) => r,
        Err(e) => e.into_response(),
    }
}

/// The model families GitLab may name, and the unit primitive each feature needs.
pub(crate) async fn definitions() -> Json<Value> {
    let models: Vec<Value> = Family::ALL
        .iter()
        .map(|f| json!({"name": f.display_name(), "gitlab_identifier": f.as_str(), "max_context_tokens": f.max_context_tokens()}))
        .collect();
    let primitives = json!([
        {"feature_setting": "code_completions", "unit_primitive": "complete_code"},
        {"feature_setting": "code_generations", "unit_primitive": "generate_code"},
        {"feature_setting": "duo_chat", "unit_primitive": "duo_chat"},
        {"feature_setting": "duo_chat_explain_code", "unit_primitive": "explain_code"},
        {"feature_setting": "duo_chat_write_tests", "unit_primitive": "write_tests"},
        {"feature_setting": "duo_chat_refactor_code", "unit_primitive": "refactor_code"},
        {"feature_setting": "duo_chat_fix_code", "unit_primitive": "fix_code"},
        {"feature_setting": "duo_chat_troubleshoot_job", "unit_primitive": "troubleshoot_job"},
        {"feature_setting": "duo_chat_explain_vulnerability", "unit_primitive": "explain_vulnerability"},
        {"feature_setting": "duo_chat_summarize_comments", "unit_primitive": "summarize_comments"},
        {"feature_setting": "generate_commit_message", "unit_primitive": "generate_commit_message"},
        {"feature_setting": "summarize_new_merge_request", "unit_primitive": "summarize_new_merge_request"},
        {"feature_setting": "summarize_review", "unit_primitive": "summarize_review"},
        {"feature_setting": "resolve_vulnerability", "unit_primitive": "resolve_vulnerability"},
        {"feature_setting": "review_merge_request", "unit_primitive": "review_merge_request"},
        {"feature_setting": "glab_ask_git_command", "unit_primitive": "glab_ask_git_command"},
    ]);
    Json(json!({"models": models, "unit_primitives": primitives}))
}
