//! `/v1|v2/prompts/{prompt_id}` — today `model_configuration/check`, which GitLab's "Test
//! connection" button calls — and `/v1/models/definitions`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hearth_catalog::{Family, Feature};
use hearth_prompts::{CompletionStyle, completion_prompt};
use hearth_providers::{CallContext, ChatMessage, ChatRequest, ProviderError, TextRequest};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::RawBody;
use crate::gitlab::authorize;
use crate::gitlab::error::GitlabError;
use crate::gitlab::model::{ModelFields, UseCase, select};

#[derive(Deserialize)]
struct InvokeBody {
    #[serde(default)]
    model_metadata: Option<ModelFields>,
}

const CHECK: &str = "model_configuration/check";

async fn invoke(
    state: AppState,
    cid: String,
    headers: HeaderMap,
    prompt_id: String,
    body: Bytes,
) -> Result<(String, Option<Value>), GitlabError> {
    authorize(&state, &headers, None).await?;
    if prompt_id.trim_matches('/') != CHECK {
        return Err(GitlabError::detail(
            StatusCode::NOT_FOUND,
            format!("Prompt '{prompt_id}' not found"),
        ));
    }
    let b: InvokeBody = serde_json::from_slice(&body).map_err(|e| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {e}"),
        )
    })?;
    let fields = b.model_metadata.unwrap_or_default();
    let sel = select(&state, &fields, Feature::DuoChat, UseCase::Chat).or_else(|_| {
        select(
            &state,
            &fields,
            Feature::CodeCompletions,
            UseCase::Completion,
        )
    })?;
    let ctx = CallContext { request_id: cid };
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
        Ok(reply) => Ok((
            reply.text,
            reply.usage.map(
                |u| json!({"input_tokens": u.prompt_tokens, "output_tokens": u.completion_tokens}),
            ),
        )),
        // GitLab shows a 421 as the model server's own answer.
        Err(ProviderError::Upstream {
            status, message, ..
        }) => Err(GitlabError::detail(
            StatusCode::MISDIRECTED_REQUEST,
            format!("{status}: {message}"),
        )),
        Err(e @ ProviderError::Timeout { .. }) => Err(GitlabError::detail(
            StatusCode::GATEWAY_TIMEOUT,
            format!("the model server did not answer the check in time: {e}"),
        )),
        Err(e) => Err(GitlabError::detail(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the model server cannot be reached: {e}"),
        )),
    }
}

pub(crate) async fn v1(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    match invoke(state, cid.0, headers, id, body).await {
        Ok((text, _)) => Json(Value::String(text)).into_response(),
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
        Ok((text, usage)) => Json(json!({"content": text, "usage": usage})).into_response(),
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
    ]);
    Json(json!({"models": models, "unit_primitives": primitives}))
}
