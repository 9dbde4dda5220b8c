//! `POST /v1/chat/completions`: chat, through the server's own chat template (vLLM, llama.cpp
//! and Ollama apply the served checkpoint's template, which is exact for that model).

use axum::Extension;
use axum::extract::{Request, State};
use axum::response::Response;
use hearth_catalog::Feature;
use hearth_providers::{CallContext, ChatMessage, ChatRequest, Flavor};
use tokio::time::Instant;

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::read_json;
use crate::openai::completions::{failed, sse_response};
use crate::openai::error::OaiError;
use crate::openai::stream::{Framing, Relay, Shape};
use crate::openai::wire::{
    ChatBody, ChatChoice, ChatCompletion, ChatMessageOut, MessageContent, UsageOut,
};
use crate::openai::{
    admit, check_passthrough, check_platform, check_sampling, exchange, now_secs, overhead_header,
    respond,
};
use crate::routing::{Route, fall_back};

const FEATURE: Feature = Feature::DuoChat;

#[utoipa::path(operation_id = "chat_completions_handle", post, path = "/v1/chat/completions", tag = "openai",
    request_body = crate::openai::wire::ChatBody,
    responses(
        (status = 200, description = "A chat completion; with `stream: true`, server-sent `data:` events of `ChatChunk` and `data: [DONE]`",
            content((crate::openai::wire::ChatCompletion = "application/json"), (crate::openai::wire::ChatChunk = "text/event-stream"))),
        (status = 400, description = "Invalid request; `param` names the field", body = crate::openai::error::OaiErrorBody),
        (status = 401, description = "No or unknown client key (needed once any key exists, and always beyond loopback)", body = crate::openai::error::OaiErrorBody),
        (status = 404, description = "No deployment serves the feature or the named model", body = crate::openai::error::OaiErrorBody),
        (status = 502, description = "The model server failed", body = crate::openai::error::OaiErrorBody),
        (status = 503, description = "Shed: too many calls in flight; see Retry-After", body = crate::openai::error::OaiErrorBody),
        (status = 504, description = "The model server timed out", body = crate::openai::error::OaiErrorBody)),
    security((), ("client_key" = [])))]
pub(crate) async fn handle(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let result = run(&state, cid.0, req).await;
    respond(&state, FEATURE, result)
}

/// The conversation as sent upstream. Tool turns (`tool` and legacy `function` messages, an
/// assistant's `tool_calls`) keep their fields as the client wrote them.
fn messages(body: &mut ChatBody) -> Result<Vec<ChatMessage>, OaiError> {
    if body.messages.is_empty() {
        return Err(OaiError::invalid(
            "messages",
            "messages must hold at least one message",
        ));
    }
    let mut out = Vec::with_capacity(body.messages.len());
    for (i, m) in body.messages.drain(..).enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            "tool" => "tool",
            "function" => "function",
            other => {
                return Err(OaiError::invalid(
                    &format!("messages[{i}].role"),
                    format!(
                        "role {other:?} is not supported; use system, developer, user, assistant or tool"
                    ),
                ));
            }
        };
        let extra = m.passthrough();
        let calls_tools = extra.contains_key("tool_calls") || extra.contains_key("function_call");
        let content = match m.content {
            // OpenAI's own form of an assistant turn that only called tools.
            None if role == "assistant" && calls_tools => String::new(),
            None => {
                return Err(OaiError::invalid(
                    &format!("messages[{i}].content"),
                    format!("messages[{i}].content is required: the text of the {role} message"),
                ));
            }
            Some(MessageContent::Text(t)) => t,
            Some(MessageContent::Parts(parts)) => {
                let mut texts = Vec::new();
                for p in parts {
                    match (p.kind.as_str(), p.text) {
                        ("text", Some(t)) => texts.push(t),
                        (kind, _) => {
                            return Err(OaiError::invalid(
                                &format!("messages[{i}].content"),
                                format!("content part {kind:?} is not supported; send text"),
                            ));
                        }
                    }
                }
                texts.join("\n")
            }
        };
        out.push(ChatMessage {
            role: role.into(),
            content,
            extra,
        });
    }
    Ok(out)
}

/// The tool fields Hearth translates into Converse's `toolConfig` (the provider's
/// `bedrock::tool_config`); every other pass-through field is still refused on Bedrock.
const BEDROCK_TOOL_FIELDS: [&str; 3] = ["tools", "tool_choice", "parallel_tool_calls"];

fn unsupported(route: &Route, param: &str, why: &str) -> OaiError {
    let mut e = OaiError::new(
        axum::http::StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "unsupported_parameter",
        format!(
            "{param}: deployment {:?} runs on AWS Bedrock, where {why}",
            route.deployment.name
        ),
    );
    e.param = Some(param.to_string());
    e
}

/// Whether the conversation carries tool calls or results (Converse then needs `toolConfig`).
fn has_tool_turns(msgs: &[ChatMessage]) -> bool {
    msgs.iter()
        .any(|m| m.role == "tool" || m.extra.contains_key("tool_calls"))
}

/// Bedrock: what the translation to Converse's `toolConfig` cannot carry is refused here,
/// naming the field, before anything is sent.
fn check_bedrock_tools(
    route: &Route,
    extra: &serde_json::Map<String, serde_json::Value>,
    msgs: &[ChatMessage],
) -> Result<(), OaiError> {
    let tools = extra.get("tools").and_then(|t| t.as_array());
    for (i, t) in tools.into_iter().flatten().enumerate() {
        if t["type"] != "function" {
            return Err(unsupported(
                route,
                &format!("tools[{i}].type"),
                "only tools of type \"function\" are sent (as Converse toolSpec)",
            ));
        }
        if t["function"]["name"].as_str().is_none_or(str::is_empty) {
            return Err(OaiError::invalid(
                &format!("tools[{i}].function.name"),
                format!("tools[{i}].function.name is required: the function's name"),
            ));
        }
    }
    // Converse has no switch for this: a model may answer with several toolUse blocks, so
    // only the default (true) can be honoured.
    if extra.get("parallel_tool_calls") == Some(&serde_json::Value::Bool(false)) {
        return Err(unsupported(
            route,
            "parallel_tool_calls",
            "a model may always call several tools at once (Converse has no setting to stop it); leave parallel_tool_calls out or true",
        ));
    }
    if let Some(choice) = extra.get("tool_choice") {
        let valid = match choice {
            serde_json::Value::String(s) => matches!(s.as_str(), "auto" | "required" | "none"),
            c => c["type"] == "function" && c["function"]["name"].is_string(),
        };
        if !valid {
            return Err(OaiError::invalid(
                "tool_choice",
                "tool_choice must be \"auto\", \"required\", \"none\" or {\"type\": \"function\", \"function\": {\"name\": …}}",
            ));
        }
        if tools.is_none_or(|t| t.is_empty()) {
            return Err(OaiError::invalid(
                "tool_choice",
                "tool_choice needs tools: send the tools the model may call",
            ));
        }
        // "none" is sent as no toolConfig, which Converse refuses once the conversation
        // holds tool calls or results.
        if choice == "none" && has_tool_turns(msgs) {
            return Err(unsupported(
                route,
                "tool_choice",
                "tool_choice \"none\" can only be sent by leaving the tools out, which Converse refuses in a conversation that already has tool calls; use \"auto\"",
            ));
        }
    }
    if tools.is_none_or(|t| t.is_empty()) && has_tool_turns(msgs) {
        return Err(OaiError::invalid(
            "tools",
            "the conversation has tool calls or results, and Bedrock needs the tools they used: send tools",
        ));
    }
    Ok(())
}

/// Bedrock: tool calls and tool results become Converse `toolUse`/`toolResult` blocks; what
/// has no Converse form (legacy `function` turns, `function_call`) is refused naming it.
/// `name` has no Converse field and only labels a speaker, so it is left out there
/// (documented).
fn check_bedrock_messages(route: &Route, msgs: &mut [ChatMessage]) -> Result<(), OaiError> {
    for (i, m) in msgs.iter_mut().enumerate() {
        m.extra.remove("name");
        if m.role == "function" {
            return Err(unsupported(
                route,
                &format!("messages[{i}].role"),
                "legacy function messages are not translated; send role \"tool\" with tool_call_id",
            ));
        }
        if m.role == "tool" {
            if !m.extra.get("tool_call_id").is_some_and(|v| v.is_string()) {
                return Err(OaiError::invalid(
                    &format!("messages[{i}].tool_call_id"),
                    format!(
                        "messages[{i}].tool_call_id is required: the id of the tool call this answers"
                    ),
                ));
            }
        } else if m.role == "assistant"
            && let Some(calls) = m.extra.get("tool_calls")
        {
            let calls = calls.as_array().ok_or_else(|| {
                OaiError::invalid(
                    &format!("messages[{i}].tool_calls"),
                    format!("messages[{i}].tool_calls must be a list of tool calls"),
                )
            })?;
            for (j, c) in calls.iter().enumerate() {
                let at = format!("messages[{i}].tool_calls[{j}]");
                if !c["id"].is_string() || !c["function"]["name"].is_string() {
                    return Err(OaiError::invalid(
                        &at,
                        format!("{at} needs an id and a function name"),
                    ));
                }
                // Converse carries the arguments as a JSON object, so they must parse; an
                // empty string (a call without arguments, as some clients write it) is `{}`.
                let parsed = c["function"]["arguments"].as_str().and_then(|a| {
                    serde_json::from_str::<serde_json::Value>(if a.trim().is_empty() {
                        "{}"
                    } else {
                        a
                    })
                    .ok()
                });
                if !parsed.is_some_and(|v| v.is_object()) {
                    return Err(OaiError::invalid(
                        &format!("{at}.function.arguments"),
                        format!(
                            "{at}.function.arguments must be a JSON object in a string, as the model wrote it"
                        ),
                    ));
                }
            }
        }
        let allowed: &[&str] = match m.role.as_str() {
            "tool" => &["tool_call_id"],
            "assistant" => &["tool_calls"],
            _ => &[],
        };
        if let Some(field) = m.extra.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(unsupported(
                route,
                &format!("messages[{i}].{field}"),
                &format!("Hearth does not send `{field}` in a {} message", m.role),
            ));
        }
    }
    Ok(())
}

async fn run(state: &AppState, cid: String, req: Request) -> Result<Response, OaiError> {
    let started = Instant::now();
    let client = Some(crate::routing::affinity::client(
        req.headers(),
        req.extensions().get(),
    ));
    let body: ChatBody = read_json(req, state).await?;
    run_body(state, cid, body, started, client).await
}

/// A chat request another front door (Ollama's) has already translated, answered in OpenAI's
/// shape for that door to translate back.
pub(crate) async fn answer(state: &AppState, cid: String, body: ChatBody) -> Response {
    let result = run_body(state, cid, body, Instant::now(), None).await;
    respond(state, FEATURE, result)
}

async fn run_body(
    state: &AppState,
    cid: String,
    mut body: ChatBody,
    started: Instant,
    client: Option<u64>,
) -> Result<Response, OaiError> {
    let max_tokens = body.max_completion_tokens.or(body.max_tokens);
    let stops: std::sync::Arc<[String]> = check_sampling(
        max_tokens,
        body.temperature,
        body.top_p,
        body.n,
        body.stop.take(),
    )?
    .into();
    let extra = body.passthrough();
    check_passthrough(&extra)?;
    let msgs = messages(&mut body)?;
    let snap = state.registry.snapshot();
    // Deployments this request already failed on before any byte reached the client; the
    // feature's next fallback gets it. A platform's checks may adjust the messages, so each
    // attempt starts from the client's (kept only when there is a fallback to try).
    let mut tried: Vec<i64> = Vec::new();
    let spare = (!snap.feature(FEATURE).fallbacks.is_empty()).then(|| msgs.clone());
    let mut first = Some(msgs);
    let (route, mut record, name, id, reply) = loop {
        let mut msgs = first.take().or_else(|| spare.clone()).unwrap_or_default();
        let route =
            crate::openai::route_after(state, &snap, FEATURE, body.model.as_deref(), &tried)?;
        if matches!(route.endpoint.flavor, Flavor::Bedrock(_)) {
            let mut others = extra.clone();
            for f in BEDROCK_TOOL_FIELDS {
                others.remove(f);
            }
            check_platform(&route, &others)?;
            check_bedrock_tools(&route, &extra, &msgs)?;
            check_bedrock_messages(&route, &mut msgs)?;
        } else {
            check_platform(&route, &extra)?;
        }
        let verbose = snap.settings().verbose_ai_logs;
        let logged = if verbose {
            msgs.iter()
                .map(|m| format!("{}: {}", m.role, m.content))
                .collect::<Vec<_>>()
                .join("\n")
        } else {
            String::new()
        };
        let permit = admit(state, &route.deployment.name).await?;
        let mut record = exchange(
            state,
            &route.deployment,
            FEATURE,
            &cid,
            verbose,
            logged,
            started,
        );
        let name = route.deployment.name.clone();
        let request = ChatRequest {
            model: route.deployment.upstream_model().to_string(),
            messages: msgs,
            max_tokens,
            temperature: body.temperature,
            top_p: body.top_p,
            stop: stops.clone(),
            user: body.user.clone(),
            extra: extra.clone(),
        };
        let affinity = client
            .map(|c| crate::routing::affinity::chat(c, body.user.as_deref(), &request.messages));
        let ctx = CallContext {
            request_id: cid.clone(),
            affinity,
        };
        let id = crate::correlation::fresh_id("chatcmpl-");
        let upstream_started = Instant::now();

        if body.stream.unwrap_or(false) {
            let include_usage = body
                .stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
            let upstream = Box::pin(state.provider.chat_stream(
                &route.endpoint,
                &request,
                include_usage,
                &ctx,
            ))
            .await;
            record.upstream_time = upstream_started.elapsed();
            record.overhead = started.elapsed().saturating_sub(record.upstream_time);
            let upstream = match upstream {
                Ok(u) => u,
                Err(e) if fall_back(&snap, FEATURE, route.deployment.id, &e, &mut tried) => {
                    drop(failed(record, &name, &e));
                    continue;
                }
                Err(e) => return Ok(failed(record, &name, &e)),
            };
            let overhead = record.overhead;
            let framing = Framing {
                shape: Shape::Chat,
                id,
                model: name,
                include_usage,
            };
            let relay = Relay::new(upstream, None, framing, record);
            let deadline = upstream_started + route.endpoint.timeouts.total;
            let mut response = sse_response(relay, overhead, deadline, permit);
            crate::openai::served_by(&mut response, &route);
            return Ok(response);
        }

        // Boxed: the call's future would be most of the handler's, which each layer that wraps
        // the handler moves whole (as in completions.rs).
        let reply = Box::pin(state.provider.chat(&route.endpoint, &request, &ctx)).await;
        record.upstream_time = upstream_started.elapsed();
        match reply {
            Ok(r) => break (route, record, name, id, r),
            Err(e) if fall_back(&snap, FEATURE, route.deployment.id, &e, &mut tried) => {
                drop(failed(record, &name, &e));
            }
            Err(e) => return Ok(failed(record, &name, &e)),
        }
    };
    record.record_text(&reply.text);
    record.usage = reply.usage;
    let finish = reply.finish_reason.clone().unwrap_or_else(|| "stop".into());
    let out = ChatCompletion {
        id: &id,
        object: "chat.completion",
        created: now_secs(),
        model: &name,
        choices: vec![ChatChoice {
            index: 0,
            message: ChatMessageOut {
                role: "assistant",
                content: (!reply.text.is_empty() || reply.message.is_empty())
                    .then_some(reply.text.as_str()),
                more: &reply.message,
            },
            logprobs: reply.logprobs.as_ref(),
            finish_reason: &finish,
        }],
        usage: reply.usage.map(UsageOut::from),
    };
    let mut response = super::whole::chat(&out);
    record.overhead = started.elapsed().saturating_sub(record.upstream_time);
    response
        .headers_mut()
        .insert(super::OVERHEAD, overhead_header(record.overhead));
    crate::openai::served_by(&mut response, &route);
    record.finish(200, None);
    Ok(response)
}
