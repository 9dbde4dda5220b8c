//! Anthropic's Messages API, `POST /v1/messages`, in front of any chat deployment, for clients
//! that speak only that API. Like the Ollama door, it translates the request into OpenAI's
//! chat request, runs it through the very same handler (routing, limits, metrics, tools passed
//! through or refused per platform), and translates the answer — whole, or streamed as
//! Anthropic's events — back into Anthropic's shapes.

use std::collections::HashMap;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::read_json;
use crate::openai::chat;
use crate::openai::error::OaiError;
use crate::openai::reframe::{Said, reframe};
use crate::openai::wire::{ChatBody, ChatMessageIn, MessageContent, OneOrMany, StreamOptions};

/// Anthropic's request. Parsed leniently like OpenAI's (its SDKs send fields Hearth has no use
/// for, such as `metadata`); the fields that change the answer are honoured or refused.
#[derive(Deserialize, ToSchema)]
pub(crate) struct MessagesBody {
    /// A deployment's name; without it, the deployment bound to `duo_chat`.
    #[serde(default)]
    model: Option<String>,
    /// Required, as Anthropic requires it.
    #[serde(default)]
    #[schema(value_type = i64)]
    max_tokens: Option<Value>,
    /// A string or a list of text blocks.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    system: Option<Value>,
    /// `{role: user|assistant, content: string | blocks}`; blocks are `text`, `tool_use`
    /// (assistant) and `tool_result` (user).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    temperature: Option<f64>,
    #[serde(default)]
    top_p: Option<f64>,
    /// Passed to OpenAI-compatible servers; refused on Azure and Bedrock.
    #[serde(default)]
    top_k: Option<u32>,
    #[serde(default)]
    stop_sequences: Option<Vec<String>>,
    #[serde(default)]
    stream: Option<bool>,
    /// `{name, description, input_schema}`, sent as OpenAI function tools.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    tools: Option<Vec<Value>>,
    /// `{type: auto|any|tool|none, name, disable_parallel_tool_use}`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    tool_choice: Option<Value>,
    /// `user_id` is sent as OpenAI's `user`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
    /// Refused when enabled: the model servers Hearth fronts have no thinking budget.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    thinking: Option<Value>,
}

/// Anthropic's error `type` for a status, as Anthropic's API documents them.
fn error_type(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        // Hearth sheds load with 503 and Retry-After; Anthropic's name for that is overloaded.
        503 => "overloaded_error",
        _ if status.is_client_error() => "invalid_request_error",
        _ => "api_error",
    }
}

/// `{"type":"error","error":{"type","message"}}` under `status`. 422 (a body of the wrong
/// shape) becomes 400, as Anthropic answers every invalid request.
fn error_with(status: StatusCode, message: &str, retry_after: Option<HeaderValue>) -> Response {
    let status = if status == StatusCode::UNPROCESSABLE_ENTITY {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let body = json!({"type": "error", "error": {"type": error_type(status), "message": message}});
    let mut response = (status, axum::Json(body)).into_response();
    if let Some(v) = retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, v);
    }
    response
}

pub(crate) fn error_response(e: &OaiError) -> Response {
    let retry_after = e
        .retry_after
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok());
    error_with(e.status, &e.message, retry_after)
}

fn invalid(field: &str, message: impl Into<String>) -> OaiError {
    OaiError::invalid(field, message)
}

#[utoipa::path(operation_id = "anthropic_messages", post, path = "/v1/messages", tag = "doors",
    request_body = MessagesBody,
    responses(
        (status = 200, description = "Anthropic's message; with `stream: true`, Anthropic's server-sent events (message_start, content_block_start, content_block_delta, content_block_stop, message_delta, message_stop)"),
        (status = 400, description = "Invalid request: `{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\"}}`"),
        (status = 401, description = "No or unknown client key, as `Authorization: Bearer` or `x-api-key`"),
        (status = 404, description = "No deployment serves chat or the named model"),
        (status = 502, description = "The model server failed"),
        (status = 503, description = "Shed: too many calls in flight (`overloaded_error`); see Retry-After"),
        (status = 504, description = "The model server timed out")),
    security((), ("client_key" = [])))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let body: MessagesBody = match read_json(req, &state).await {
        Ok(b) => b,
        Err(e) => return error_response(&OaiError::from(e)),
    };
    let stream = body.stream.unwrap_or(false);
    let translated = match translate_request(body) {
        Ok(b) => b,
        Err(e) => {
            // Counted as a refusal like the OpenAI routes' own.
            state
                .metrics
                .refused(hearth_catalog::Feature::DuoChat, e.status.as_u16());
            return error_response(&e);
        }
    };
    let answer = chat::answer(&state, cid.0, translated).await;
    translate_answer(answer, stream).await
}

/// Anthropic's request as OpenAI's chat request.
fn translate_request(body: MessagesBody) -> Result<ChatBody, OaiError> {
    let max_tokens = match body.max_tokens {
        None => {
            return Err(invalid(
                "max_tokens",
                "max_tokens: field required (the most tokens to generate, as Anthropic's API requires)",
            ));
        }
        Some(v) => v
            .as_u64()
            .filter(|n| *n >= 1)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| {
                invalid(
                    "max_tokens",
                    "max_tokens must be a whole number of at least 1",
                )
            })?,
    };
    if let Some(t) = body.temperature
        && !(0.0..=1.0).contains(&t)
    {
        return Err(invalid(
            "temperature",
            "temperature must be between 0 and 1",
        ));
    }
    if body
        .thinking
        .as_ref()
        .is_some_and(|t| t["type"].as_str() != Some("disabled"))
    {
        return Err(invalid(
            "thinking",
            "thinking is not supported: the model servers Hearth fronts have no thinking budget; leave it out",
        ));
    }
    let mut messages = Vec::new();
    if let Some(system) = body.system {
        let text = text_of(&system, "system")?;
        messages.push(ChatMessageIn {
            role: "system".into(),
            content: Some(MessageContent::Text(text)),
            ..Default::default()
        });
    }
    let turns = body
        .messages
        .ok_or_else(|| invalid("messages", "messages: field required"))?;
    if turns.is_empty() {
        return Err(invalid(
            "messages",
            "messages must hold at least one message",
        ));
    }
    for (i, turn) in turns.iter().enumerate() {
        translate_turn(turn, i, &mut messages)?;
    }
    let (tools, tool_choice, parallel) = translate_tools(body.tools, body.tool_choice)?;
    let user = body
        .metadata
        .as_ref()
        .and_then(|m| m["user_id"].as_str())
        .map(String::from);
    Ok(ChatBody {
        model: body.model,
        messages,
        max_tokens: Some(max_tokens),
        temperature: body.temperature,
        top_p: body.top_p,
        top_k: body.top_k,
        stop: body.stop_sequences.map(OneOrMany::Many),
        stream: Some(body.stream.unwrap_or(false)),
        // Anthropic's last event carries the usage; OpenAI sends it only when asked.
        stream_options: Some(StreamOptions {
            include_usage: Some(true),
        }),
        user,
        tools,
        tool_choice,
        parallel_tool_calls: parallel,
        ..Default::default()
    })
}

/// The text of a string or of a list of text blocks (`system`, a tool result's content).
fn text_of(v: &Value, field: &str) -> Result<String, OaiError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => {
            let mut texts = Vec::with_capacity(blocks.len());
            for (j, b) in blocks.iter().enumerate() {
                match (b["type"].as_str(), b["text"].as_str()) {
                    (Some("text"), Some(t)) => texts.push(t.to_string()),
                    (kind, _) => {
                        return Err(invalid(
                            &format!("{field}[{j}]"),
                            format!(
                                "{field}[{j}]: block type {} is not supported here; send text blocks",
                                kind.map_or("(none)".into(), |k| format!("{k:?}"))
                            ),
                        ));
                    }
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(invalid(
            field,
            format!("{field} must be a string or a list of text blocks"),
        )),
    }
}

/// One Anthropic turn as OpenAI messages: an assistant's `tool_use` blocks become its
/// `tool_calls`; a user's `tool_result` blocks become `tool` messages, placed first because
/// OpenAI wants them right after the assistant turn that called the tools.
fn translate_turn(turn: &Value, i: usize, out: &mut Vec<ChatMessageIn>) -> Result<(), OaiError> {
    let role = match turn["role"].as_str() {
        Some(r @ ("user" | "assistant")) => r,
        other => {
            return Err(invalid(
                &format!("messages[{i}].role"),
                format!(
                    "messages[{i}].role must be \"user\" or \"assistant\" (got {}); the system prompt goes in `system`",
                    other.map_or("none".into(), |r| format!("{r:?}"))
                ),
            ));
        }
    };
    let content = &turn["content"];
    let blocks = match content {
        Value::String(s) => {
            out.push(ChatMessageIn {
                role: role.into(),
                content: Some(MessageContent::Text(s.clone())),
                ..Default::default()
            });
            return Ok(());
        }
        Value::Array(blocks) => blocks,
        _ => {
            return Err(invalid(
                &format!("messages[{i}].content"),
                format!("messages[{i}].content must be a string or a list of content blocks"),
            ));
        }
    };
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    let mut results = Vec::new();
    for (j, b) in blocks.iter().enumerate() {
        let at = format!("messages[{i}].content[{j}]");
        match (role, b["type"].as_str()) {
            (_, Some("text")) => {
                let t = b["text"]
                    .as_str()
                    .ok_or_else(|| invalid(&at, format!("{at}.text is required")))?;
                texts.push(t.to_string());
            }
            ("assistant", Some("tool_use")) => {
                let (Some(id), Some(name)) = (b["id"].as_str(), b["name"].as_str()) else {
                    return Err(invalid(&at, format!("{at}: tool_use needs id and name")));
                };
                let input = if b["input"].is_null() {
                    json!({})
                } else {
                    b["input"].clone()
                };
                calls.push(json!({"id": id, "type": "function",
                    "function": {"name": name, "arguments": input.to_string()}}));
            }
            ("user", Some("tool_result")) => {
                let id = b["tool_use_id"]
                    .as_str()
                    .ok_or_else(|| invalid(&at, format!("{at}.tool_use_id is required")))?;
                let mut text = match &b["content"] {
                    Value::Null => String::new(),
                    c => text_of(c, &format!("{at}.content"))?,
                };
                // OpenAI's tool message has no error flag; the model reads it in the text.
                if b["is_error"].as_bool() == Some(true) {
                    text = format!("Error: {text}");
                }
                results.push(ChatMessageIn {
                    role: "tool".into(),
                    content: Some(MessageContent::Text(text)),
                    tool_call_id: Some(id.to_string()),
                    ..Default::default()
                });
            }
            (_, kind) => {
                return Err(invalid(
                    &format!("{at}.type"),
                    format!(
                        "{at}: block type {} is not supported in a {role} turn; Hearth's chat takes text, tool_use (assistant) and tool_result (user) blocks",
                        kind.map_or("(none)".into(), |k| format!("{k:?}"))
                    ),
                ));
            }
        }
    }
    out.extend(results);
    let text = texts.join("\n");
    if role == "assistant" && !calls.is_empty() {
        out.push(ChatMessageIn {
            role: "assistant".into(),
            content: (!text.is_empty()).then_some(MessageContent::Text(text)),
            tool_calls: Some(calls),
            ..Default::default()
        });
    } else if !text.is_empty() || out.last().is_none_or(|m| m.role != "tool") {
        out.push(ChatMessageIn {
            role: role.into(),
            content: Some(MessageContent::Text(text)),
            ..Default::default()
        });
    }
    Ok(())
}

type Tools = (Option<Vec<Value>>, Option<Value>, Option<bool>);

/// Anthropic's tools and tool choice as OpenAI's function tools, `tool_choice` and
/// `parallel_tool_calls`.
fn translate_tools(tools: Option<Vec<Value>>, choice: Option<Value>) -> Result<Tools, OaiError> {
    let tools = match tools {
        None => None,
        Some(list) => {
            let mut out = Vec::with_capacity(list.len());
            for (i, t) in list.iter().enumerate() {
                // Anthropic's own server-side tools (web search, bash, editors) carry a
                // versioned `type`; only a client's custom tools can run elsewhere.
                if let Some(kind) = t["type"].as_str().filter(|k| *k != "custom") {
                    return Err(invalid(
                        &format!("tools[{i}].type"),
                        format!(
                            "tools[{i}]: tool type {kind:?} is one of Anthropic's own tools and runs only on Anthropic's servers; send custom tools (name, description, input_schema)"
                        ),
                    ));
                }
                let name = t["name"].as_str().ok_or_else(|| {
                    invalid(
                        &format!("tools[{i}].name"),
                        format!("tools[{i}].name is required"),
                    )
                })?;
                let schema = match &t["input_schema"] {
                    s @ Value::Object(_) => s.clone(),
                    _ => {
                        return Err(invalid(
                            &format!("tools[{i}].input_schema"),
                            format!("tools[{i}].input_schema must be a JSON schema object"),
                        ));
                    }
                };
                let mut function = Map::new();
                function.insert("name".into(), Value::String(name.to_string()));
                if let Some(d) = t["description"].as_str() {
                    function.insert("description".into(), Value::String(d.to_string()));
                }
                function.insert("parameters".into(), schema);
                out.push(json!({"type": "function", "function": function}));
            }
            Some(out)
        }
    };
    let Some(choice) = choice else {
        return Ok((tools, None, None));
    };
    let parallel = choice["disable_parallel_tool_use"]
        .as_bool()
        .filter(|d| *d)
        .map(|_| false);
    let openai = match choice["type"].as_str() {
        Some("auto") => json!("auto"),
        Some("any") => json!("required"),
        Some("none") => json!("none"),
        Some("tool") => {
            let name = choice["name"].as_str().ok_or_else(|| {
                invalid(
                    "tool_choice.name",
                    "tool_choice of type \"tool\" needs the tool's name",
                )
            })?;
            json!({"type": "function", "function": {"name": name}})
        }
        _ => {
            return Err(invalid(
                "tool_choice.type",
                "tool_choice.type must be auto, any, tool or none",
            ));
        }
    };
    Ok((tools, Some(openai), parallel))
}

/// OpenAI's finish reason in Anthropic's terms. Stop sequences are cut by the model server,
/// which does not say which one matched, so a stop reads as `end_turn` (documented).
fn stop_reason(finish: Option<&str>) -> &'static str {
    match finish {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        Some("content_filter") => "refusal",
        _ => "end_turn",
    }
}

fn message_id() -> String {
    crate::correlation::fresh_id("msg_")
}

fn usage_of(v: &Value) -> Option<(u64, u64)> {
    let u = v["usage"].as_object()?;
    Some((
        u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0),
        u.get("completion_tokens")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    ))
}

/// A tool call's arguments as Anthropic's `input` object; the model server's text is data
/// from outside, so anything but a JSON object is an upstream failure, not a panic.
fn tool_input(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(json!({}));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err(format!(
            "the model server answered a tool call whose arguments are not a JSON object: {arguments:?}"
        )),
    }
}

/// The whole OpenAI completion as Anthropic's message.
fn whole_message(v: &Value) -> Result<Value, String> {
    let choice = &v["choices"][0];
    let message = &choice["message"];
    let mut content = Vec::new();
    if let Some(t) = message["content"].as_str().filter(|t| !t.is_empty()) {
        content.push(json!({"type": "text", "text": t}));
    }
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let f = &call["function"];
        content.push(json!({"type": "tool_use",
            "id": call["id"].as_str().unwrap_or_default(),
            "name": f["name"].as_str().unwrap_or_default(),
            "input": tool_input(f["arguments"].as_str().unwrap_or_default())?}));
    }
    let (input_tokens, output_tokens) = usage_of(v).unwrap_or((0, 0));
    Ok(json!({
        "id": message_id(),
        "type": "message",
        "role": "assistant",
        "model": v["model"].as_str().unwrap_or_default(),
        "content": content,
        "stop_reason": stop_reason(choice["finish_reason"].as_str()),
        "stop_sequence": null,
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }))
}

fn event(name: &str, data: &Value) -> Bytes {
    Bytes::from(format!("event: {name}\ndata: {data}\n\n"))
}

fn error_event(kind: &str, message: &str) -> Bytes {
    event(
        "error",
        &json!({"type": "error", "error": {"type": kind, "message": message}}),
    )
}

/// The content block open in the stream.
#[derive(Clone, Copy, PartialEq)]
enum Open {
    Text(usize),
    Tool(usize),
}

/// Turns OpenAI's chunks into Anthropic's events: opens and closes content blocks as text
/// and tool calls come, and closes the message with its stop reason and usage.
#[derive(Default)]
struct Events {
    open: Option<Open>,
    next_index: usize,
    /// OpenAI's tool call index → Anthropic's content block index.
    tools: HashMap<u64, usize>,
    finish: Option<String>,
    usage: (u64, u64),
}

impl Events {
    fn close(&mut self, out: &mut Vec<Bytes>) {
        if let Some(Open::Text(i) | Open::Tool(i)) = self.open.take() {
            out.push(event(
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": i}),
            ));
        }
    }

    fn start(&mut self, block: Value, out: &mut Vec<Bytes>) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        out.push(event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        index
    }

    fn chunk(&mut self, v: &Value, out: &mut Vec<Bytes>) {
        if let Some(u) = usage_of(v) {
            self.usage = u;
        }
        let choice = &v["choices"][0];
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish = Some(f.to_string());
        }
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => {
                    let i = self.start(json!({"type": "text", "text": ""}), out);
                    self.open = Some(Open::Text(i));
                    i
                }
            };
            out.push(event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": text}}),
            ));
        }
        for call in delta["tool_calls"].as_array().into_iter().flatten() {
            let n = call["index"].as_u64().unwrap_or(0);
            let index = match self.tools.get(&n) {
                Some(i) => *i,
                None => {
                    let block = json!({"type": "tool_use",
                        "id": call["id"].as_str().unwrap_or_default(),
                        "name": call["function"]["name"].as_str().unwrap_or_default(),
                        "input": {}});
                    let i = self.start(block, out);
                    self.open = Some(Open::Tool(i));
                    self.tools.insert(n, i);
                    i
                }
            };
            if let Some(piece) = call["function"]["arguments"]
                .as_str()
                .filter(|p| !p.is_empty())
            {
                out.push(event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
        }
    }

    fn end(&mut self, out: &mut Vec<Bytes>) {
        self.close(out);
        out.push(event(
            "message_delta",
            &json!({"type": "message_delta",
                "delta": {"stop_reason": stop_reason(self.finish.as_deref()), "stop_sequence": null},
                "usage": {"input_tokens": self.usage.0, "output_tokens": self.usage.1}}),
        ));
        out.push(event("message_stop", &json!({"type": "message_stop"})));
    }
}

fn message_start(id: &str, model: &str, out: &mut Vec<Bytes>) {
    // The prompt's tokens are known only from OpenAI's last chunk: message_delta carries them.
    out.push(event(
        "message_start",
        &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant",
            "model": model, "content": [], "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0}}}),
    ));
    out.push(event("ping", &json!({"type": "ping"})));
}

async fn translate_answer(answer: Response, stream: bool) -> Response {
    let status = answer.status();
    let is_sse = answer
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    let overhead = answer.headers().get(super::OVERHEAD).cloned();
    let retry_after = answer.headers().get(header::RETRY_AFTER).cloned();
    if !status.is_success() || !is_sse || !stream {
        let bytes = axum::body::to_bytes(answer.into_body(), crate::BODY_LIMIT * 4)
            .await
            .unwrap_or_default();
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if !status.is_success() {
            let message = v["error"]["message"].as_str().unwrap_or("request failed");
            return error_with(status, message, retry_after);
        }
        let mut response = match whole_message(&v) {
            Ok(m) => axum::Json(m).into_response(),
            Err(message) => return error_with(StatusCode::BAD_GATEWAY, &message, None),
        };
        if let Some(o) = overhead {
            response.headers_mut().insert(super::OVERHEAD, o);
        }
        return response;
    }
    let mut events = Events::default();
    let id = message_id();
    let mut started = false;
    let body = reframe(answer, move |said, out| match said {
        Said::Chunk(v) => {
            if !started {
                // Anthropic names the model in the first event; OpenAI's chunks carry the
                // deployment's name.
                let model = v["model"].as_str().unwrap_or_default();
                message_start(&id, model, out);
                started = true;
            }
            if let Some(message) = v["error"]["message"].as_str() {
                out.push(error_event("api_error", message));
                return false;
            }
            events.chunk(&v, out);
            true
        }
        Said::Done => {
            if !started {
                message_start(&id, "", out);
                started = true;
            }
            events.end(out);
            false
        }
        Said::TooLarge(max) => {
            out.push(error_event(
                "api_error",
                &format!("the model server sent an event larger than {max} bytes"),
            ));
            false
        }
    });
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    if let Some(o) = overhead {
        response.headers_mut().insert(super::OVERHEAD, o);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> MessagesBody {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_tool_round_trip_becomes_openai_turns() {
        let chat = translate_request(body(json!({"max_tokens": 10, "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [{"type": "text", "text": "checking"},
                    {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "21"}]}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}})))
        .unwrap_or_else(|e| panic!("{}", e.message));
        let roles: Vec<&str> = chat.messages.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["system", "user", "assistant", "tool"]);
        let calls = chat.messages[2].tool_calls.clone().unwrap_or_default();
        assert_eq!(calls[0]["function"]["arguments"], "{\"city\":\"Paris\"}");
        assert_eq!(chat.messages[3].tool_call_id.as_deref(), Some("t1"));
        assert_eq!(chat.tool_choice, Some(json!("required")));
        assert_eq!(chat.parallel_tool_calls, Some(false));
        let tools = chat.tools.unwrap_or_default();
        assert_eq!(
            tools[0]["function"]["parameters"],
            json!({"type": "object"})
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (v, field) in [
            (
                json!({"messages": [{"role": "user", "content": "x"}]}),
                "max_tokens",
            ),
            (
                json!({"max_tokens": 1, "temperature": 1.5, "messages": []}),
                "temperature",
            ),
            (
                json!({"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": "image"}]}]}),
                "messages[0].content[0].type",
            ),
            (
                json!({"max_tokens": 1, "messages": [{"role": "system", "content": "x"}]}),
                "messages[0].role",
            ),
            (
                json!({"max_tokens": 1, "thinking": {"type": "enabled", "budget_tokens": 9}, "messages": []}),
                "thinking",
            ),
            (
                json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
                "tools[0].type",
            ),
        ] {
            match translate_request(body(v)) {
                Ok(_) => panic!("{field} accepted"),
                Err(e) => assert_eq!(e.param.as_deref(), Some(field), "{}", e.message),
            }
        }
    }

    #[test]
    fn bad_tool_arguments_are_an_upstream_failure() {
        let v = json!({"model": "m", "choices": [{"message": {"content": null,
            "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1"}}]},
            "finish_reason": "tool_calls"}]});
        assert!(whole_message(&v).is_err());
    }
}
