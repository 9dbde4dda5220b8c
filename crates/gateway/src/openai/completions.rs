//! `POST /v1/completions`: code completion. `prompt` (+ `suffix`) become the deployment's
//! family prompt — FIM where the family has it — and the answer is cut where it should end.

use axum::Extension;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_catalog::Feature;
use hearth_providers::CallContext;
use tokio::time::Instant;

use crate::AppState;
use crate::admission::Permit;
use crate::correlation::CorrelationId;
use crate::extract::read_json;
use crate::inference::{CompletionPlan, Cursor, Sampling};
use crate::openai::error::OaiError;
use crate::openai::stream::{Framing, Relay, Shape};
use crate::openai::whole;
use crate::openai::wire::{
    ChatChoice, ChatCompletion, ChatMessageOut, CompletionBody, OneOrMany, TextChoice,
    TextCompletion, UsageOut,
};
use crate::openai::{
    admit, check_passthrough, check_platform, check_sampling, exchange, now_secs, overhead_header,
    respond, served_by,
};
use crate::pump;
use crate::routing::supersede::{SUPERSEDED, keystroke, until_superseded};
use crate::routing::{affinity, fall_back, stable_hash};

const FEATURE: Feature = Feature::CodeCompletions;

#[utoipa::path(operation_id = "completions_handle", post, path = "/v1/completions", tag = "openai",
    request_body = CompletionBody,
    responses(
        (status = 200, description = "A text completion; with `stream: true`, server-sent `data:` events of the same shape and `data: [DONE]`",
            content((TextCompletion = "application/json"), (String = "text/event-stream"))),
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
    let result = run(&state, cid.0, req, Shape::Text).await;
    respond(&state, FEATURE, result)
}

/// Mistral's FIM API, which Continue and other clients use for Codestral and other FIM models:
/// the same request as `/v1/completions` (`prompt` before the cursor, `suffix` after it),
/// through the same prompts and cleaning, answered in chat-completion shape as Mistral does.
#[utoipa::path(operation_id = "fim_completions", post, path = "/v1/fim/completions", tag = "openai",
    request_body = CompletionBody,
    responses(
        (status = 200, description = "The middle, as a `chat.completion` whose message holds it; with `stream: true`, server-sent `data:` events of `chat.completion.chunk` and `data: [DONE]`",
            content((crate::openai::wire::ChatCompletion = "application/json"), (crate::openai::wire::ChatChunk = "text/event-stream"))),
        (status = 400, description = "Invalid request; `param` names the field", body = crate::openai::error::OaiErrorBody),
        (status = 401, description = "No or unknown client key (needed once any key exists, and always beyond loopback)", body = crate::openai::error::OaiErrorBody),
        (status = 404, description = "No deployment serves the feature or the named model", body = crate::openai::error::OaiErrorBody),
        (status = 502, description = "The model server failed", body = crate::openai::error::OaiErrorBody),
        (status = 503, description = "Shed: too many calls in flight; see Retry-After", body = crate::openai::error::OaiErrorBody),
        (status = 504, description = "The model server timed out", body = crate::openai::error::OaiErrorBody)),
    security((), ("client_key" = [])))]
pub(crate) async fn fim(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    req: Request,
) -> Response {
    let result = run(&state, cid.0, req, Shape::Chat).await;
    respond(&state, FEATURE, result)
}

/// `Err` is a refusal before any model server was called. `shape` is how the answer is
/// framed: OpenAI's `text_completion`, or the chat shape of Mistral's FIM API.
async fn run(
    state: &AppState,
    cid: String,
    req: Request,
    shape: Shape,
) -> Result<Response, OaiError> {
    let started = Instant::now();
    let client = affinity::client(req.headers(), req.extensions().get());
    let body: CompletionBody = read_json(req, state).await?;
    run_body(state, cid, body, shape, started, Some(client)).await
}

/// A completion another front door (Ollama's, llama.cpp's) has already translated, answered in
/// OpenAI's `text_completion` shape for that door to translate back.
pub(crate) async fn answer(state: &AppState, cid: String, body: CompletionBody) -> Response {
    let result = run_body(state, cid, body, Shape::Text, Instant::now(), None).await;
    respond(state, FEATURE, result)
}

async fn run_body(
    state: &AppState,
    cid: String,
    body: CompletionBody,
    shape: Shape,
    started: Instant,
    client: Option<u64>,
) -> Result<Response, OaiError> {
    let extra = body.passthrough();
    let client_stops = check_sampling(
        body.max_tokens,
        body.temperature,
        body.top_p,
        body.n,
        body.stop,
    )?;
    let prompt = match body.prompt {
        None => {
            return Err(OaiError::invalid(
                "prompt",
                "prompt is required: the code before the cursor (an empty string is fine)",
            ));
        }
        Some(OneOrMany::One(p)) => p,
        Some(OneOrMany::Many(mut v)) if v.len() == 1 => v.remove(0),
        Some(OneOrMany::Many(_)) => {
            return Err(OaiError::invalid(
                "prompt",
                "send one prompt per request (a list of prompts is not supported)",
            ));
        }
    };
    if body.echo == Some(true) {
        return Err(OaiError::invalid(
            "echo",
            "echo is not supported: Hearth sends the model its family's completion prompt built from yours, so echoing it back would not be your prompt",
        ));
    }
    if body.logprobs.is_some() {
        return Err(OaiError::invalid(
            "logprobs",
            "logprobs is not supported on completions: Hearth cuts the answer at stop sequences and where it repeats the suffix, so the model's token logprobs would not match the text returned",
        ));
    }
    if body.best_of.is_some_and(|b| b != 1) {
        return Err(OaiError::invalid(
            "best_of",
            "best_of must be 1: Hearth post-processes one answer per request",
        ));
    }
    check_passthrough(&extra)?;
    let suffix = body.suffix.unwrap_or_default();
    let snap = state.registry.snapshot();
    let stream = body.stream.unwrap_or(false);
    let include_usage = body
        .stream_options
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    // Deployments this request already failed on before any byte reached the client; the
    // feature's next fallback gets it, with the prompt built for its family.
    let mut tried: Vec<i64> = Vec::new();
    let (route, mut record, id, name, (text, finish, usage)) = loop {
        let route =
            crate::openai::route_after(state, &snap, FEATURE, body.model.as_deref(), &tried)?;
        check_platform(&route, &extra)?;
        let plan = CompletionPlan::new(
            route.deployment.prompt_family(),
            &route.endpoint,
            Cursor {
                prefix: &prompt,
                suffix: &suffix,
                language: None,
                file: None,
            },
            body.max_tokens,
            client_stops.clone(),
        );
        let affinity = client.map(|c| affinity::completion(c, body.user.as_deref(), &prompt));
        // What was asked, hashed only when a request may be cancelled or joined.
        let asked = || {
            stable_hash(&[
                route.deployment.name.as_bytes(),
                prompt.as_bytes(),
                suffix.as_bytes(),
                format!(
                    "{:?}{:?}{:?}{:?}{stream}",
                    body.max_tokens, body.temperature, body.top_p, plan.stops
                )
                .as_bytes(),
                serde_json::to_string(&extra).unwrap_or_default().as_bytes(),
            ])
        };
        // Cancelling and joining need to know the requests are one person's keystrokes: only
        // a client that names its user gets them (a batch job or evaluation harness sharing a key
        // and a preamble must not have its requests cancelled), and only answers that are the
        // same every time (temperature 0) are shared.
        let (ticket, joined) = keystroke(
            state,
            FEATURE,
            affinity.filter(|_| body.user.is_some()),
            asked,
            !stream && body.temperature == Some(0.0),
        )
        .await;
        let verbose = snap.settings().verbose_ai_logs;
        let permit = admit(state, &route.deployment.name).await?;
        let mut record = exchange(
            state,
            &route.deployment,
            FEATURE,
            &cid,
            verbose,
            if verbose {
                plan.logged_prompt()
            } else {
                String::new()
            },
            started,
        );
        let ctx = CallContext {
            request_id: cid.clone(),
            affinity,
        };
        let model = route.deployment.upstream_model().to_string();
        let name = route.deployment.name.clone();
        let sampling = Sampling {
            temperature: body.temperature,
            top_p: body.top_p,
            user: body.user.as_deref(),
            extra: extra.clone(),
        };
        let id = crate::correlation::fresh_id("cmpl-");
        let upstream_started = Instant::now();
        let cancel = ticket.token();

        if stream {
            let upstream = tokio::select! {
                u = Box::pin(plan.stream(
                    &state.provider,
                    &route.endpoint,
                    &model,
                    &sampling,
                    include_usage,
                    &ctx,
                )) => u,
                () = cancel.cancelled() => return Ok(superseded(record)),
            };
            record.upstream_time = upstream_started.elapsed();
            record.overhead = started.elapsed().saturating_sub(record.upstream_time);
            let upstream = match upstream {
                Ok(u) => until_superseded(u, ticket),
                Err(e) if fall_back(&snap, FEATURE, route.deployment.id, &e, &mut tried) => {
                    drop(failed(record, &name, &e));
                    continue;
                }
                Err(e) => return Ok(failed(record, &name, &e)),
            };
            let overhead = record.overhead;
            let framing = Framing {
                shape,
                id,
                model: name,
                include_usage,
            };
            let relay = Relay::new(upstream, Some(plan.scanner()), framing, record);
            let deadline = upstream_started + route.endpoint.timeouts.total;
            let mut response = sse_response(relay, overhead, deadline, permit);
            served_by(&mut response, &route);
            return Ok(response);
        }

        let answer = match joined {
            Some(shared) => (*shared).clone(),
            None => {
                // The model server call's future is most of this handler's: boxed, the
                // handler's future (moved whole by each layer that wraps it) stays small
                // (~1.6k instructions a whole completion, `bench/instructions.sh`).
                let answer = tokio::select! {
                    a = Box::pin(plan.complete(
                        &state.provider,
                        &route.endpoint,
                        &model,
                        &prompt,
                        &sampling,
                        &ctx,
                    )) => a,
                    () = cancel.cancelled() => return Ok(superseded(record)),
                };
                ticket.share(|| std::sync::Arc::new(answer.clone()));
                answer
            }
        };
        record.upstream_time = upstream_started.elapsed();
        match answer {
            Ok(a) => break (route, record, id, name, a),
            Err(e) if fall_back(&snap, FEATURE, route.deployment.id, &e, &mut tried) => {
                drop(failed(record, &name, &e));
            }
            Err(e) => return Ok(failed(record, &name, &e)),
        }
    };
    let finish_reason = finish.unwrap_or_else(|| "stop".into());
    record.record_text(&text);
    record.usage = usage;
    if shape == Shape::Chat {
        let no_more = serde_json::Map::new();
        let body = ChatCompletion {
            id: &id,
            object: "chat.completion",
            created: now_secs(),
            model: &name,
            choices: vec![ChatChoice {
                index: 0,
                message: ChatMessageOut {
                    role: "assistant",
                    content: Some(&text),
                    more: &no_more,
                },
                logprobs: None,
                finish_reason: &finish_reason,
            }],
            usage: usage.map(UsageOut::from),
        };
        let mut response = finish_whole(whole::chat(&body), record, started);
        served_by(&mut response, &route);
        return Ok(response);
    }
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
        usage: usage.map(|u| Some(UsageOut::from(u))),
    };
    let mut response = finish_whole(whole::text(&body), record, started);
    served_by(&mut response, &route);
    Ok(response)
}

/// The answer to a completion a newer one from the same client and file replaced.
pub(crate) fn superseded(record: crate::telemetry::Exchange) -> Response {
    let err = OaiError::new(
        StatusCode::CONFLICT,
        "invalid_request_error",
        "superseded",
        SUPERSEDED.to_string(),
    );
    record.finish(err.status.as_u16(), Some(&err.message));
    err.into_response()
}

fn finish_whole(
    mut response: Response,
    mut record: crate::telemetry::Exchange,
    started: Instant,
) -> Response {
    record.overhead = started.elapsed().saturating_sub(record.upstream_time);
    response
        .headers_mut()
        .insert(super::OVERHEAD, overhead_header(record.overhead));
    record.finish(200, None);
    response
}

/// An upstream failure before any answer: record it and answer with the mapped status.
pub(crate) fn failed(
    mut record: crate::telemetry::Exchange,
    name: &str,
    e: &hearth_providers::ProviderError,
) -> Response {
    let err = OaiError::upstream(name, e);
    record.overhead = record
        .started
        .elapsed()
        .saturating_sub(record.upstream_time);
    record.finish(err.status.as_u16(), Some(&err.message));
    err.into_response()
}

/// The streamed answer, relayed under the deployment's total `deadline` (see `pump`).
pub(crate) fn sse_response(
    relay: Relay,
    overhead: std::time::Duration,
    deadline: Instant,
    permit: Permit,
) -> Response {
    let mut response = Response::new(pump::body(relay, deadline, Some(permit)));
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
    h.insert(super::OVERHEAD, overhead_header(overhead));
    response
}
