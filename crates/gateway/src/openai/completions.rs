//! `POST /v1/completions`: code completion. `prompt` (+ `suffix`) become the deployment's
//! family prompt — FIM where the family has it — and the answer is cut where it should end.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use hearth_catalog::Feature;
use hearth_prompts::{
    CompletionStyle, PromptBody, StopScanner, clean_generation, completion_prompt,
    instruct_completion_prompt,
};
use hearth_providers::{CallContext, ChatMessage, ChatRequest, Flavor, TextRequest};
use tokio::time::Instant;

use crate::AppState;
use crate::correlation::CorrelationId;
use crate::extract::read_json;
use crate::openai::error::OaiError;
use crate::openai::stream::{Framing, Relay, Shape};
use crate::openai::wire::{CompletionBody, OneOrMany, TextChoice, TextCompletion, UsageOut};
use crate::openai::{check_sampling, exchange, now_secs, overhead_header, respond};
use crate::routing::resolve;

const FEATURE: Feature = Feature::CodeCompletions;

pub(crate) async fn handle(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let result = run(&state, cid.0, req).await;
    respond(&state, FEATURE, result)
}

/// `Err` is a refusal before any model server was called.
async fn run(state: &AppState, cid: String, req: Request) -> Result<Response, OaiError> {
    let started = Instant::now();
    let body: CompletionBody = read_json(req, state).await?;
    let client_stops = check_sampling(
        body.max_tokens,
        body.temperature,
        body.top_p,
        body.n,
        body.stop,
    )?;
    let prompt = match body.prompt {
        None => String::new(),
        Some(OneOrMany::One(p)) => p,
        Some(OneOrMany::Many(mut v)) if v.len() == 1 => v.remove(0),
        Some(OneOrMany::Many(_)) => {
            return Err(OaiError::invalid(
                "prompt",
                "send one prompt per request (a list of prompts is not supported)",
            ));
        }
    };
    let suffix = body.suffix.unwrap_or_default();
    let snap = state.registry.snapshot();
    let route = resolve(&snap, FEATURE, body.model.as_deref(), &state.cloud)?;
    let family = route.deployment.family;
    let mut cp = completion_prompt(family, &prompt, &suffix, None, body.max_tokens);
    // Bedrock serves Mistral and Mixtral instruct models through a raw prompt: ask in [INST].
    if matches!(route.endpoint.flavor, Flavor::Bedrock(_))
        && cp.style == CompletionStyle::PrefixContinuation
    {
        cp = instruct_completion_prompt(family, &prompt, &suffix, body.max_tokens);
    }
    let mut stops = cp.stops.clone();
    for s in client_stops {
        if !stops.contains(&s) {
            stops.push(s);
        }
    }
    let mut scanner = StopScanner::new(stops.clone(), cp.suffix_echo.clone());
    let verbose = snap.settings().verbose_ai_logs;
    let logged_prompt = match &cp.body {
        PromptBody::Text(t) => t.clone(),
        PromptBody::Chat(m) => m
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
    };
    let mut record = exchange(&route, FEATURE, &cid, verbose, logged_prompt, started);
    let ctx = CallContext { request_id: cid };
    let temperature = Some(body.temperature.unwrap_or(cp.temperature));
    let model = route.deployment.upstream_model().to_string();
    let stream = body.stream.unwrap_or(false);
    let include_usage = body
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    let name = route.deployment.name.clone();
    let chat_style = matches!(
        cp.style,
        CompletionStyle::ChatInstruct | CompletionStyle::InstructText
    );

    let text_req = |prompt: String| TextRequest {
        model: model.clone(),
        prompt,
        max_tokens: cp.max_tokens,
        temperature,
        top_p: body.top_p,
        stop: stops.clone(),
        user: body.user.clone(),
    };
    let chat_req = |messages: Vec<hearth_prompts::Message>| ChatRequest {
        model: model.clone(),
        messages: messages
            .into_iter()
            .map(|m| ChatMessage {
                role: m.role.as_str().into(),
                content: m.content,
            })
            .collect(),
        max_tokens: Some(cp.max_tokens),
        temperature,
        top_p: body.top_p,
        stop: stops.clone(),
        user: body.user.clone(),
    };
    let provider = &state.provider;
    let id = format!("cmpl-{}", uuid::Uuid::new_v4().simple());
    let upstream_started = Instant::now();

    if stream {
        let upstream = match cp.body.clone() {
            PromptBody::Text(p) => {
                provider
                    .complete_stream(&route.endpoint, &text_req(p), include_usage, &ctx)
                    .await
            }
            PromptBody::Chat(m) => {
                provider
                    .chat_stream(&route.endpoint, &chat_req(m), include_usage, &ctx)
                    .await
            }
        };
        record.upstream_time = upstream_started.elapsed();
        record.overhead = started.elapsed().saturating_sub(record.upstream_time);
        let upstream = match upstream {
            Ok(u) => u,
            Err(e) => return Ok(failed(state, record, &name, &e)),
        };
        let overhead = record.overhead;
        let framing = Framing {
            shape: Shape::Text,
            id,
            model: name,
            include_usage,
        };
        let relay = Relay::new(
            upstream,
            Some(scanner),
            framing,
            record,
            state.metrics.clone(),
        );
        return Ok(sse_response(relay, overhead));
    }

    let reply = match cp.body.clone() {
        PromptBody::Text(p) => provider.complete(&route.endpoint, &text_req(p), &ctx).await,
        PromptBody::Chat(m) => provider.chat(&route.endpoint, &chat_req(m), &ctx).await,
    };
    record.upstream_time = upstream_started.elapsed();
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return Ok(failed(state, record, &name, &e)),
    };
    let raw = if chat_style {
        clean_generation(&reply.text, &prompt)
    } else {
        reply.text
    };
    let mut text = scanner.push(&raw);
    let cut = scanner.is_done();
    text.push_str(&scanner.finish());
    let finish_reason = if cut {
        "stop".to_string()
    } else {
        reply.finish_reason.unwrap_or_else(|| "stop".into())
    };
    record.record_text(&text);
    record.usage = reply.usage;
    let body = TextCompletion {
        id: &id,
        object: "text_completion",
        created: now_secs(),
        model: &name,
        choices: vec![TextChoice {
            index: 0,
            text: &text,
            logprobs: None,
            finish_reason: Some(&finish_reason),
        }],
        usage: reply.usage.map(|u| Some(UsageOut::from(u))),
    };
    let mut response = Json(body).into_response();
    record.overhead = started.elapsed().saturating_sub(record.upstream_time);
    response
        .headers_mut()
        .insert("x-hearth-overhead-ms", overhead_header(record.overhead));
    record.finish(&state.metrics, 200, None);
    Ok(response)
}

/// An upstream failure before any answer: record it and answer with the mapped status.
pub(crate) fn failed(
    state: &AppState,
    mut record: crate::telemetry::Exchange,
    name: &str,
    e: &hearth_providers::ProviderError,
) -> Response {
    let err = OaiError::upstream(name, e);
    record.overhead = record
        .started
        .elapsed()
        .saturating_sub(record.upstream_time);
    record.finish(&state.metrics, err.status.as_u16(), Some(&err.message));
    err.into_response()
}

pub(crate) fn sse_response(relay: Relay, overhead: std::time::Duration) -> Response {
    let mut response = Response::new(Body::from_stream(relay.into_body()));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    h.insert("x-hearth-overhead-ms", overhead_header(overhead));
    response
}
