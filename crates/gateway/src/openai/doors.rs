//! Front doors for clients that speak another server's API: Ollama's (`/api/generate`,
//! `/api/chat`, `/api/tags`, `/api/show`, `/api/version`) and llama.cpp's `POST /infill`.
//! Each translates its request into the OpenAI one, runs it through the very same handler
//! (routing, family prompts, stops, cleaning, limits, metrics), and translates the answer —
//! whole or streamed — back into its own shape.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Number, Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::read_json;
use crate::openai::error::OaiError;
use crate::openai::reframe::{Said, reframe};
use crate::openai::wire::{ChatBody, ChatMessageIn, CompletionBody, MessageContent, OneOrMany};
use crate::openai::{chat, completions, models};

/// The Ollama API version `/api/version` reports: the level of the API these routes follow.
const OLLAMA_VERSION: &str = "0.6.0";

/// Ollama's `options`: the sampling ones map onto OpenAI's; the others tune Ollama's own
/// runtime (`num_ctx`, `num_thread`, `mirostat`…), which the deployment's server owns, and are
/// not sent (documented in openai-api.md).
#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct OllamaOptions {
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    num_predict: Option<i64>,
    #[serde(default)]
    stop: Option<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    seed: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    presence_penalty: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    frequency_penalty: Option<Number>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct GenerateBody {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    suffix: Option<String>,
    /// A raw prompt already in the family's FIM tokens is sent as it is either way.
    #[serde(default)]
    raw: Option<bool>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<OllamaOptions>,
    /// Refused: completion prompts are the family's own.
    #[serde(default)]
    system: Option<String>,
    /// Refused: completion prompts are the family's own.
    #[serde(default)]
    template: Option<String>,
    /// Refused: not for code completion.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    format: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    images: Option<Vec<Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<i64>>)]
    context: Option<Vec<Value>>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct OllamaMessage {
    role: String,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>)]
    images: Option<Vec<Value>>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct OllamaChatBody {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<OllamaMessage>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    options: Option<OllamaOptions>,
    /// `"json"` or a JSON schema: OpenAI's `response_format`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    format: Option<Value>,
    /// Refused here: tools work through `/v1/chat/completions`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    tools: Option<Vec<Value>>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ShowBody {
    #[serde(default)]
    model: Option<String>,
    /// The older name of `model`.
    #[serde(default)]
    name: Option<String>,
}

/// llama.cpp's `/infill`, as llama.vscode and llama.vim send it.
#[derive(Deserialize, ToSchema)]
pub(crate) struct InfillBody {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    input_prefix: Option<String>,
    #[serde(default)]
    input_suffix: Option<String>,
    /// Other files for context: placed before the prefix, so they are trimmed first.
    #[serde(default)]
    input_extra: Option<Vec<InfillExtra>>,
    /// Text the middle starts with (llama.cpp puts it after the FIM middle token).
    #[serde(default)]
    prompt: Option<String>,
    #[serde(default)]
    n_predict: Option<i64>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    #[serde(default)]
    stop: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    seed: Option<Number>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct InfillExtra {
    #[serde(default)]
    filename: Option<String>,
    #[serde(default)]
    text: Option<String>,
}

fn refuse(field: &str, why: &str) -> OaiError {
    OaiError::invalid(field, format!("`{field}` is not supported here: {why}"))
}

/// `num_predict`/`n_predict` of -1 or less means "no limit" in both APIs: the family's default.
fn predict(n: Option<i64>, field: &str) -> Result<Option<u32>, OaiError> {
    match n {
        None => Ok(None),
        Some(n) if n < 0 => Ok(None),
        Some(n) => u32::try_from(n)
            .map(Some)
            .map_err(|_| OaiError::invalid(field, format!("{field} must be at most {}", u32::MAX))),
    }
}

/// Ollama's options in OpenAI's terms.
struct Sampled {
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: Option<OneOrMany>,
    seed: Option<Number>,
    presence_penalty: Option<Number>,
    frequency_penalty: Option<Number>,
}

fn apply_options(o: OllamaOptions) -> Result<Sampled, OaiError> {
    Ok(Sampled {
        max_tokens: predict(o.num_predict, "options.num_predict")?,
        temperature: o.temperature,
        top_p: o.top_p,
        stop: o.stop.map(OneOrMany::Many),
        seed: o.seed,
        presence_penalty: o.presence_penalty,
        frequency_penalty: o.frequency_penalty,
    })
}

fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}

#[utoipa::path(operation_id = "ollama_generate", post, path = "/api/generate", tag = "doors",
    request_body = GenerateBody,
    responses((status = 200, description = "Ollama's generate answer; streamed (the default) as NDJSON lines"),
        (status = 400, description = "Invalid request: `{\"error\": message}`")),
    security((), ("client_key" = [])))]
pub(crate) async fn generate(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let body: GenerateBody = match read_json(req, &state).await {
        Ok(b) => b,
        Err(e) => return ollama_error(e.into()),
    };
    let model = body.model.clone().unwrap_or_default();
    let stream = body.stream.unwrap_or(true);
    let translated = (|| {
        if body.system.is_some() {
            return Err(refuse(
                "system",
                "completion prompts are the model family's own",
            ));
        }
        if body.template.is_some() {
            return Err(refuse(
                "template",
                "completion prompts are the model family's own; send a raw prompt in the family's FIM tokens instead",
            ));
        }
        if body.format.is_some() {
            return Err(refuse(
                "format",
                "use /api/chat or /v1/chat/completions for structured output",
            ));
        }
        if body.images.as_ref().is_some_and(|i| !i.is_empty()) {
            return Err(refuse("images", "Hearth's completion path is text only"));
        }
        if body.context.as_ref().is_some_and(|c| !c.is_empty()) {
            return Err(refuse("context", "send the whole text in `prompt`"));
        }
        let _raw = body.raw;
        let o = apply_options(body.options.unwrap_or_default())?;
        Ok(CompletionBody {
            model: body.model,
            prompt: Some(OneOrMany::One(body.prompt.unwrap_or_default())),
            suffix: body.suffix,
            max_tokens: o.max_tokens,
            temperature: o.temperature,
            top_p: o.top_p,
            stop: o.stop,
            stream: Some(stream),
            stream_options: Some(crate::openai::wire::StreamOptions {
                include_usage: Some(true),
            }),
            seed: o.seed,
            presence_penalty: o.presence_penalty,
            frequency_penalty: o.frequency_penalty,
            ..Default::default()
        })
    })();
    let body = match translated {
        Ok(b) => b,
        Err(e) => return ollama_error(e),
    };
    let answer = completions::answer(&state, cid.0, body).await;
    translate(answer, stream, Door::Generate { model }).await
}

#[utoipa::path(operation_id = "ollama_chat", post, path = "/api/chat", tag = "doors",
    request_body = OllamaChatBody,
    responses((status = 200, description = "Ollama's chat answer; streamed (the default) as NDJSON lines"),
        (status = 400, description = "Invalid request: `{\"error\": message}`")),
    security((), ("client_key" = [])))]
pub(crate) async fn ollama_chat(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let body: OllamaChatBody = match read_json(req, &state).await {
        Ok(b) => b,
        Err(e) => return ollama_error(e.into()),
    };
    let model = body.model.clone().unwrap_or_default();
    let stream = body.stream.unwrap_or(true);
    let translated = (|| {
        if body.tools.as_ref().is_some_and(|t| !t.is_empty()) {
            return Err(refuse(
                "tools",
                "Hearth passes tools through /v1/chat/completions; point the client's OpenAI provider at Hearth for tools",
            ));
        }
        let mut messages = Vec::with_capacity(body.messages.len());
        for (i, m) in body.messages.into_iter().enumerate() {
            if m.images.as_ref().is_some_and(|i| !i.is_empty()) {
                return Err(refuse(
                    &format!("messages[{i}].images"),
                    "Hearth's chat is text only",
                ));
            }
            messages.push(ChatMessageIn {
                role: m.role,
                content: m.content.map(MessageContent::Text),
                ..Default::default()
            });
        }
        let o = apply_options(body.options.unwrap_or_default())?;
        let response_format = match body.format {
            None => None,
            Some(Value::String(s)) if s == "json" => Some(
                json!({"type": "json_object"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            Some(schema @ Value::Object(_)) => Some(
                json!({"type": "json_schema", "json_schema": {"name": "format", "schema": schema}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            ),
            Some(_) => {
                return Err(OaiError::invalid(
                    "format",
                    "format is \"json\" or a JSON schema object",
                ));
            }
        };
        Ok(ChatBody {
            model: body.model,
            messages,
            max_tokens: o.max_tokens,
            temperature: o.temperature,
            top_p: o.top_p,
            stop: o.stop,
            stream: Some(stream),
            stream_options: Some(crate::openai::wire::StreamOptions {
                include_usage: Some(true),
            }),
            response_format,
            seed: o.seed,
            presence_penalty: o.presence_penalty,
            frequency_penalty: o.frequency_penalty,
            ..Default::default()
        })
    })();
    let body = match translated {
        Ok(b) => b,
        Err(e) => return ollama_error(e),
    };
    let answer = chat::answer(&state, cid.0, body).await;
    translate(answer, stream, Door::Chat { model }).await
}

#[utoipa::path(operation_id = "ollama_tags", get, path = "/api/tags", tag = "doors",
    responses((status = 200, description = "The deployments, as Ollama lists local models")),
    security((), ("client_key" = [])))]
pub(crate) async fn tags(State(state): State<AppState>) -> Response {
    let snap = state.registry.snapshot();
    let list: Vec<Value> = models::listed_deployments(&snap)
        .map(|d| {
            json!({"name": d.name, "model": d.name, "modified_at": d.created_at, "size": 0,
                "digest": "", "details": details(d)})
        })
        .collect();
    axum::Json(json!({"models": list})).into_response()
}

fn details(d: &hearth_registry::Deployment) -> Value {
    json!({"format": "", "family": d.family.as_str(), "families": [d.family.as_str()],
        "parameter_size": "", "quantization_level": ""})
}

#[utoipa::path(operation_id = "ollama_show", post, path = "/api/show", tag = "doors",
    request_body = ShowBody,
    responses((status = 200, description = "One deployment, as Ollama describes a model"),
        (status = 404, description = "`{\"error\": message}`")),
    security((), ("client_key" = [])))]
pub(crate) async fn show(State(state): State<AppState>, req: Request) -> Response {
    let body: ShowBody = match read_json(req, &state).await {
        Ok(b) => b,
        Err(e) => return ollama_error(e.into()),
    };
    let name = body.model.or(body.name).unwrap_or_default();
    let snap = state.registry.snapshot();
    let Some(d) = models::listed_deployments(&snap).find(|d| d.name == name) else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"error": format!("model '{name}' not found")})),
        )
            .into_response();
    };
    let serves = models::serves(d);
    let mut capabilities = Vec::new();
    if serves.contains(&"completions") {
        capabilities.extend(["completion", "insert"]);
    }
    if serves.contains(&"chat") && !capabilities.contains(&"completion") {
        capabilities.push("completion");
    }
    axum::Json(
        json!({"modelfile": "", "parameters": "", "template": "", "details": details(d),
        "model_info": {}, "capabilities": capabilities, "modified_at": d.created_at}),
    )
    .into_response()
}

#[utoipa::path(operation_id = "ollama_version", get, path = "/api/version", tag = "doors",
    responses((status = 200, description = "The Ollama API version these routes follow")),
    security((), ("client_key" = [])))]
pub(crate) async fn version() -> Response {
    axum::Json(json!({"version": OLLAMA_VERSION})).into_response()
}

#[utoipa::path(operation_id = "llama_infill", post, path = "/infill", tag = "doors",
    request_body = InfillBody,
    responses((status = 200, description = "llama.cpp's completion answer (`content`, `stop`); with `stream: true`, server-sent `data:` events of the same shape"),
        (status = 400, description = "Invalid request", body = crate::openai::error::OaiErrorBody)),
    security((), ("client_key" = [])))]
pub(crate) async fn infill(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let body: InfillBody = match read_json(req, &state).await {
        Ok(b) => b,
        Err(e) => return OaiError::from(e).into_response(),
    };
    let stream = body.stream.unwrap_or(false);
    let mut prefix = String::new();
    for f in body.input_extra.into_iter().flatten() {
        if let Some(name) = f.filename.filter(|n| !n.is_empty()) {
            prefix.push_str(&format!("// {name}\n"));
        }
        prefix.push_str(&f.text.unwrap_or_default());
        if !prefix.ends_with('\n') {
            prefix.push('\n');
        }
    }
    prefix.push_str(&body.input_prefix.unwrap_or_default());
    prefix.push_str(&body.prompt.unwrap_or_default());
    let max_tokens = match predict(body.n_predict, "n_predict") {
        Ok(m) => m,
        Err(e) => return e.into_response(),
    };
    let translated = CompletionBody {
        model: body.model.clone(),
        prompt: Some(OneOrMany::One(prefix)),
        suffix: body.input_suffix,
        max_tokens,
        temperature: body.temperature,
        top_p: body.top_p,
        stop: body.stop.map(OneOrMany::Many),
        stream: Some(stream),
        stream_options: Some(crate::openai::wire::StreamOptions {
            include_usage: Some(true),
        }),
        seed: body.seed,
        ..Default::default()
    };
    let answer = completions::answer(&state, cid.0, translated).await;
    translate(
        answer,
        stream,
        Door::Infill {
            model: body.model.unwrap_or_default(),
        },
    )
    .await
}

/// Which shape the OpenAI answer is translated into.
#[derive(Clone)]
enum Door {
    Generate { model: String },
    Chat { model: String },
    Infill { model: String },
}

/// Ollama's error body, `{"error": "message"}`, under the same status.
fn ollama_error(e: OaiError) -> Response {
    (e.status, axum::Json(json!({"error": e.message}))).into_response()
}

/// Pieces of one answer as they come: text, the finish reason, the usage.
#[derive(Default)]
struct Progress {
    finish: Option<String>,
    prompt_tokens: u64,
    completion_tokens: u64,
}

impl Door {
    fn is_ollama(&self) -> bool {
        !matches!(self, Door::Infill { .. })
    }

    /// One line (NDJSON) or event (SSE) for a piece of text.
    fn piece(&self, text: &str) -> Bytes {
        match self {
            Door::Generate { model } => ndjson(
                &json!({"model": model, "created_at": now_rfc3339(), "response": text, "done": false}),
            ),
            Door::Chat { model } => ndjson(&json!({"model": model, "created_at": now_rfc3339(),
                    "message": {"role": "assistant", "content": text}, "done": false})),
            Door::Infill { .. } => sse(&json!({"content": text, "stop": false})),
        }
    }

    /// The closing line or event, or the whole answer when not streamed (`text` then holds it).
    fn last(&self, text: &str, p: &Progress) -> Value {
        let finish = p.finish.as_deref().unwrap_or("stop");
        match self {
            Door::Generate { model } => json!({"model": model, "created_at": now_rfc3339(),
                "response": text, "done": true, "done_reason": finish,
                "prompt_eval_count": p.prompt_tokens, "eval_count": p.completion_tokens}),
            Door::Chat { model } => json!({"model": model, "created_at": now_rfc3339(),
                "message": {"role": "assistant", "content": text}, "done": true,
                "done_reason": finish, "prompt_eval_count": p.prompt_tokens,
                "eval_count": p.completion_tokens}),
            Door::Infill { model } => json!({"content": text, "stop": true, "model": model,
                "stop_type": if finish == "length" { "limit" } else { "eos" },
                "tokens_predicted": p.completion_tokens, "tokens_evaluated": p.prompt_tokens}),
        }
    }
}

fn ndjson(v: &Value) -> Bytes {
    let mut line = v.to_string().into_bytes();
    line.push(b'\n');
    Bytes::from(line)
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

/// Reads the OpenAI answer's text, finish reason and usage out of one (chunk) object.
fn read_choice(v: &Value, p: &mut Progress) -> String {
    let choice = &v["choices"][0];
    if let Some(f) = choice["finish_reason"].as_str() {
        p.finish = Some(f.to_string());
    }
    if let Some(u) = v["usage"].as_object() {
        p.prompt_tokens = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
        p.completion_tokens = u
            .get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0);
    }
    choice["text"]
        .as_str()
        .or_else(|| choice["message"]["content"].as_str())
        .or_else(|| choice["delta"]["content"].as_str())
        .unwrap_or_default()
        .to_string()
}

async fn translate(answer: Response, stream: bool, door: Door) -> Response {
    let status = answer.status();
    let is_sse = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let overhead = answer.headers().get(super::OVERHEAD).cloned();
    if !status.is_success() || !is_sse || !stream {
        let bytes = axum::body::to_bytes(answer.into_body(), crate::BODY_LIMIT * 4)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = v["error"]["message"].as_str().unwrap_or("request failed");
            let body = if door.is_ollama() {
                json!({"error": message})
            } else {
                v.clone()
            };
            return (status, axum::Json(body)).into_response();
        }
        let mut p = Progress::default();
        let text = read_choice(&v, &mut p);
        let mut response = axum::Json(door.last(&text, &p)).into_response();
        if let Some(o) = overhead {
            response.headers_mut().insert(super::OVERHEAD, o);
        }
        return response;
    }
    let mut progress = Progress::default();
    let door_for_stream = door.clone();
    let body = reframe(answer, move |said, out| {
        let frame = |v: &Value| {
            if door_for_stream.is_ollama() {
                ndjson(v)
            } else {
                sse(v)
            }
        };
        match said {
            Said::Chunk(v) => {
                if let Some(message) = v["error"]["message"].as_str() {
                    out.push(frame(&json!({"error": message})));
                    return false;
                }
                let text = read_choice(&v, &mut progress);
                if !text.is_empty() {
                    out.push(door_for_stream.piece(&text));
                }
                true
            }
            Said::Done | Said::TooLarge(_) => {
                out.push(frame(&door_for_stream.last("", &progress)));
                false
            }
        }
    });
    let mut response = Response::new(body);
    let content_type = if door.is_ollama() {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(o) = overhead {
        response.headers_mut().insert(super::OVERHEAD, o);
    }
    response
}
