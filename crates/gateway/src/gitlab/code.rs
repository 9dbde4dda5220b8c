//! Code suggestions: `/v2/code/completions` (and `/v2/completions`), `/v2/code/generations`,
//! `/v3/code/completions` and the SSE `/v4/code/suggestions`.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::StreamExt;
use hearth_catalog::Feature;
use hearth_prompts::{
    RepoFile, StopScanner, clean_generation, generation_defaults, generation_messages,
};
use hearth_providers::{CallContext, ChatMessage, ChatRequest, ChunkStream, ProviderError, Usage};
use serde::Deserialize;
use serde_json::Value;

use crate::AppState;
use crate::admission::Permit;
use crate::correlation::CorrelationId;
use crate::extract::RawBody;
use crate::gitlab::answer;
use crate::gitlab::error::GitlabError;
use crate::gitlab::model::{ModelFields, Selected, UseCase, language, select_after};
use crate::gitlab::record::{broke_off, exchange, failed, finish_whole, settle};
use crate::gitlab::{admit, authorize, feature_flags};
use crate::inference::{CompletionPlan, Cursor, Sampling};
use crate::openai::error::OaiError;
use crate::openai::now_secs;
use crate::pump;
use crate::routing::supersede::{keystroke, until_superseded};
use crate::telemetry::Exchange;
use tokio::time::Instant;

const CONTENT_MAX: usize = 100_000;
const FILE_NAME_MAX: usize = 255;

#[derive(Deserialize)]
struct CurrentFile {
    file_name: String,
    #[serde(default)]
    language_identifier: Option<String>,
    content_above_cursor: String,
    content_below_cursor: String,
}

#[derive(Deserialize)]
struct V2Body {
    current_file: CurrentFile,
    #[serde(default)]
    model_provider: Option<String>,
    #[serde(default)]
    model_name: Option<String>,
    #[serde(default)]
    model_endpoint: Option<String>,
    #[serde(default)]
    model_api_key: Option<String>,
    #[serde(default)]
    model_identifier: Option<String>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    project_path: Option<String>,
}

/// What any of the code routes asks for, once decoded.
struct Ask {
    file_name: String,
    /// GitLab's `project_path`, for models trained with repository tokens.
    project: Option<String>,
    language: String,
    above: String,
    below: String,
    instruction: Option<String>,
    stream: bool,
    model: ModelFields,
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, GitlabError> {
    serde_json::from_slice(body).map_err(|e| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {e}"),
        )
    })
}

fn check_sizes(file_name: &str, above: &str, below: &str) -> Result<(), GitlabError> {
    let too_long = |field: &str, max: usize| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {field} is longer than {max} characters"),
        )
    };
    if file_name.chars().count() > FILE_NAME_MAX {
        return Err(too_long("current_file.file_name", FILE_NAME_MAX));
    }
    if above.chars().count() > CONTENT_MAX {
        return Err(too_long("current_file.content_above_cursor", CONTENT_MAX));
    }
    if below.chars().count() > CONTENT_MAX {
        return Err(too_long("current_file.content_below_cursor", CONTENT_MAX));
    }
    Ok(())
}

fn v2_ask(body: &Bytes, use_case: UseCase) -> Result<Ask, GitlabError> {
    let b: V2Body = parse(body)?;
    let f = b.current_file;
    let file_name = f.file_name.trim().to_string();
    check_sizes(&file_name, &f.content_above_cursor, &f.content_below_cursor)?;
    if let Some(p) = b.model_provider.as_deref()
        && ![
            "anthropic",
            "vertex-ai",
            "litellm",
            "codestral",
            "fireworks_ai",
            "amazon_q",
            "gitlab",
        ]
        .contains(&p)
    {
        return Err(GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: model_provider {p:?} is not supported"),
        ));
    }
    let instruction = match (use_case, b.prompt) {
        (UseCase::Generation, Some(Value::String(s))) => Some(s),
        _ => None,
    };
    let project = b
        .project_path
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty() && p.chars().count() <= FILE_NAME_MAX);
    Ok(Ask {
        language: language(f.language_identifier.as_deref(), &file_name),
        file_name,
        project,
        above: f.content_above_cursor,
        below: f.content_below_cursor,
        instruction,
        stream: b.stream,
        model: ModelFields {
            provider: b.model_provider,
            name: b.model_name,
            endpoint: b.model_endpoint,
            api_key: b.model_api_key,
            identifier: b.model_identifier,
        },
    })
}

#[derive(Deserialize)]
struct Component {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Value,
}

#[derive(Deserialize)]
struct V3Body {
    prompt_components: Vec<Component>,
    #[serde(default)]
    model_metadata: Option<ModelFields>,
}

fn v3_ask(body: &Bytes) -> Result<(Ask, UseCase), GitlabError> {
    let b: V3Body = parse(body)?;
    let invalid = |m: &str| {
        GitlabError::detail(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Validation error: {m}"),
        )
    };
    if b.prompt_components.is_empty() || b.prompt_components.len() > 100 {
        return Err(invalid("prompt_components takes 1 to 100 components"));
    }
    let first = &b.prompt_components[0];
    let use_case = match first.kind.as_str() {
        "code_editor_completion" => UseCase::Completion,
        "code_editor_generation" => UseCase::Generation,
        other => {
            return Err(invalid(&format!(
                "the first prompt component must be code_editor_completion or code_editor_generation, not {other:?}"
            )));
        }
    };
    let p = &first.payload;
    let text = |k: &str| p[k].as_str().map(str::to_owned);
    let file_name = text("file_name").ok_or_else(|| invalid("payload.file_name is required"))?;
    let above = text("content_above_cursor")
        .ok_or_else(|| invalid("payload.content_above_cursor is required"))?;
    let below = text("content_below_cursor")
        .ok_or_else(|| invalid("payload.content_below_cursor is required"))?;
    check_sizes(&file_name, &above, &below)?;
    Ok((
        Ask {
            language: language(p["language_identifier"].as_str(), &file_name),
            file_name,
            // The v3 components carry no project path.
            project: None,
            above,
            below,
            instruction: text("prompt").filter(|_| use_case == UseCase::Generation),
            stream: p["stream"].as_bool().unwrap_or(false),
            model: b.model_metadata.unwrap_or_default(),
        },
        use_case,
    ))
}

fn upstream_error(name: &str, e: &ProviderError) -> GitlabError {
    let o = OaiError::upstream(name, e);
    let message = if o.status == StatusCode::TOO_MANY_REQUESTS {
        "Too many requests. Please try again later.".to_string()
    } else {
        o.message
    };
    let mut g = GitlabError::detail(o.status, message);
    g.retry_after = o.retry_after;
    g
}

/// The model's answer: whole, or as a stream of cleaned text pieces.
enum Answer {
    Whole { text: String, usage: Option<Usage> },
    Stream(Streamed),
}

/// A streamed answer, with its admission place and the deployment's total deadline.
struct Streamed {
    upstream: ChunkStream,
    scanner: Option<StopScanner>,
    permit: Permit,
    deadline: Instant,
}

impl Streamed {
    /// The body: the cleaned pieces framed by `frame`, wrapped by `start` and `end`; the
    /// exchange is recorded when the stream ends (499 if GitLab leaves first).
    fn body(
        self,
        start: Option<Bytes>,
        end: Option<Bytes>,
        frame: fn(&str) -> Bytes,
        record: Exchange,
    ) -> Body {
        let frames = pieces(self.upstream, self.scanner, start, end, frame, record);
        pump::body(frames, self.deadline, Some(self.permit))
    }
}

/// Whether to log prompts and answers: the instance setting, or GitLab's own per-request header.
fn verbose(state: &AppState, headers: &HeaderMap) -> bool {
    state.registry.snapshot().settings().verbose_ai_logs
        || headers
            .get("x-gitlab-enabled-instance-verbose-ai-logs")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

fn log_input(sel: &Selected, ask: &Ask) {
    tracing::info!(
        target: "hearth::ai",
        model_name = %sel.name,
        deployment = %sel.deployment.name,
        file_name = %ask.file_name,
        language = %ask.language,
        prefix = %ask.above,
        suffix = %ask.below,
        instruction = ask.instruction.as_deref().unwrap_or(""),
        "code suggestion input"
    );
}

fn log_output(sel: &Selected, text: &str, usage: Option<Usage>) {
    tracing::info!(
        target: "hearth::ai",
        model_name = %sel.name,
        completion = %text,
        input_tokens = usage.map(|u| u.prompt_tokens),
        output_tokens = usage.map(|u| u.completion_tokens),
        "code suggestion output"
    );
}

/// Why an answer failed: refused before any call, or the model server's error (kept so the
/// caller can decide to try the feature's fallback) with its GitLab form.
enum Failed {
    Refused(GitlabError),
    Upstream(ProviderError, GitlabError),
}

impl From<GitlabError> for Failed {
    fn from(e: GitlabError) -> Failed {
        Failed::Refused(e)
    }
}

/// Selects the deployment and answers. A failure before anything reached GitLab goes on to
/// the feature's next fallback (see `routing::fall_back`), with the prompt built for it.
async fn select_and_answer(
    state: &AppState,
    ask: &Ask,
    (feature, use_case): (Feature, UseCase),
    cid: &str,
    headers: &HeaderMap,
    verbose: bool,
    started: Instant,
) -> Result<(Selected, Answer, Exchange), GitlabError> {
    let affinity = Some(crate::routing::affinity::gitlab_file(
        headers,
        ask.project.as_deref(),
        &ask.file_name,
    ));
    let mut tried = Vec::new();
    loop {
        let sel = select_after(state, &ask.model, feature, use_case, &tried)?;
        if verbose {
            log_input(&sel, ask);
        }
        match answer(
            state,
            &sel,
            ask,
            (feature, use_case),
            cid,
            affinity,
            started,
        )
        .await
        {
            Ok((a, record)) => return Ok((sel, a, record)),
            Err(Failed::Upstream(e, mapped)) => {
                let snap = state.registry.snapshot();
                if !crate::routing::fall_back(&snap, feature, sel.deployment.id, &e, &mut tried) {
                    return Err(mapped);
                }
            }
            Err(Failed::Refused(e)) => return Err(e),
        }
    }
}

/// Calls the model server for `ask`, with the exchange that goes into the metrics: recorded
/// here when the call fails, by the caller when the answer is written.
async fn answer(
    state: &AppState,
    sel: &Selected,
    ask: &Ask,
    (feature, use_case): (Feature, UseCase),
    cid: &str,
    affinity: Option<u64>,
    started: Instant,
) -> Result<(Answer, Exchange), Failed> {
    let permit = admit(state, &sel.deployment.name).await?;
    let mut record = exchange(state, sel, feature, cid, started);
    let called = Instant::now();
    let answered = call(state, sel, ask, use_case, cid, affinity, permit).await;
    record.upstream_time = called.elapsed();
    match answered {
        Ok(a) => Ok((a, record)),
        Err(Failed::Upstream(e, mapped)) => {
            failed(record, &mapped);
            Err(Failed::Upstream(e, mapped))
        }
        Err(Failed::Refused(e)) => {
            failed(record, &e);
            Err(Failed::Refused(e))
        }
    }
}

async fn call(
    state: &AppState,
    sel: &Selected,
    ask: &Ask,
    use_case: UseCase,
    cid: &str,
    affinity: Option<u64>,
    permit: Permit,
) -> Result<Answer, Failed> {
    let ctx = CallContext {
        request_id: cid.to_string(),
        affinity,
    };
    let model = sel.deployment.upstream_model().to_string();
    let family = sel.deployment.prompt_family();
    let fail = |e: ProviderError| {
        let mapped = upstream_error(&sel.deployment.name, &e);
        Failed::Upstream(e, mapped)
    };
    let deadline = Instant::now() + sel.endpoint.timeouts.total;
    let streamed = |upstream, scanner| {
        Answer::Stream(Streamed {
            upstream,
            scanner,
            permit,
            deadline,
        })
    };
    if use_case == UseCase::Completion {
        let plan = CompletionPlan::new(
            family,
            &sel.endpoint,
            Cursor {
                prefix: &ask.above,
                suffix: &ask.below,
                language: Some(&ask.language),
                file: ask.project.as_deref().map(|repo| RepoFile {
                    repo,
                    path: &ask.file_name,
                }),
            },
            None,
            Vec::new(),
        );
        let sampling = Sampling {
            temperature: None,
            top_p: None,
            user: None,
            extra: Default::default(),
        };
        let asked = || {
            crate::routing::stable_hash(&[
                sel.deployment.name.as_bytes(),
                ask.above.as_bytes(),
                ask.below.as_bytes(),
                &[u8::from(ask.stream)],
            ])
        };
        let (ticket, joined) = keystroke(
            state,
            Feature::CodeCompletions,
            affinity,
            asked,
            !ask.stream,
        )
        .await;
        let cancel = ticket.token();
        // A superseded completion gets no suggestion: GitLab's clients show an error for
        // anything else, and the newer request's answer is the one that counts.
        let nothing = || Answer::Whole {
            text: String::new(),
            usage: None,
        };
        return if ask.stream {
            let s = tokio::select! {
                s = plan.stream(
                    &state.provider,
                    &sel.endpoint,
                    &model,
                    &sampling,
                    false,
                    &ctx,
                ) => s.map_err(fail)?,
                () = cancel.cancelled() => return Ok(nothing()),
            };
            Ok(streamed(until_superseded(s, ticket), Some(plan.scanner())))
        } else {
            let answer = match joined {
                Some(shared) => (*shared).clone(),
                None => {
                    let answer = tokio::select! {
                        a = plan.complete(
                            &state.provider,
                            &sel.endpoint,
                            &model,
                            &ask.above,
                            &sampling,
                            &ctx,
                        ) => a,
                        () = cancel.cancelled() => return Ok(nothing()),
                    };
                    ticket.share(|| std::sync::Arc::new(answer.clone()));
                    answer
                }
            };
            let (text, _, usage) = answer.map_err(fail)?;
            Ok(Answer::Whole { text, usage })
        };
    }
    let defaults = generation_defaults(family);
    let req = ChatRequest {
        model,
        messages: generation_messages(
            family,
            &ask.above,
            &ask.below,
            Some(&ask.language),
            ask.instruction.as_deref(),
        )
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role.as_str().into(),
            content: m.content,
            ..Default::default()
        })
        .collect(),
        max_tokens: Some(defaults.max_tokens),
        temperature: Some(defaults.temperature),
        ..Default::default()
    };
    if ask.stream {
        let s = state
            .provider
            .chat_stream(&sel.endpoint, &req, false, &ctx)
            .await
            .map_err(fail)?;
        Ok(streamed(s, None))
    } else {
        let reply = state
            .provider
            .chat(&sel.endpoint, &req, &ctx)
            .await
            .map_err(fail)?;
        Ok(Answer::Whole {
            text: clean_generation(&reply.text, &ask.above),
            usage: reply.usage,
        })
    }
}

/// Cleaned text pieces of a stream, each framed by `frame`; `start` and `end` wrap them.
fn pieces(
    upstream: ChunkStream,
    scanner: Option<StopScanner>,
    start: Option<Bytes>,
    end: Option<Bytes>,
    frame: fn(&str) -> Bytes,
    record: Exchange,
) -> impl futures_util::Stream<Item = Bytes> + Send + 'static {
    let body = futures_util::stream::unfold(
        (upstream, scanner, false, Some(record)),
        move |(mut up, mut sc, done, mut record)| async move {
            if done {
                settle(record.take(), 200, None);
                return None;
            }
            loop {
                let asked = Instant::now();
                let next = up.next().await;
                if let Some(r) = record.as_mut() {
                    r.upstream_time += asked.elapsed();
                }
                match next {
                    Some(Ok(chunk)) => {
                        if let Some(r) = record.as_mut() {
                            r.record_text(&chunk.text);
                            r.usage = chunk.usage.or(r.usage);
                        }
                        let text = match sc.as_mut() {
                            Some(s) => s.push(chunk.text),
                            None => chunk.text,
                        };
                        let stop = sc.as_ref().is_some_and(StopScanner::is_done);
                        if !text.is_empty() || stop {
                            let bytes = if text.is_empty() {
                                Bytes::new()
                            } else {
                                frame(&text)
                            };
                            return Some((bytes, (up, sc, stop, record)));
                        }
                    }
                    Some(Err(e)) => {
                        tracing::warn!(error = %e, "upstream failed mid-stream");
                        broke_off(record.take(), &e);
                        return None;
                    }
                    None => {
                        let rest = sc.as_mut().map(StopScanner::finish).unwrap_or_default();
                        if rest.is_empty() {
                            settle(record.take(), 200, None);
                            return None;
                        }
                        return Some((frame(&rest), (up, sc, true, record)));
                    }
                }
            }
        },
    );
    futures_util::stream::iter(start)
        .chain(body)
        .chain(futures_util::stream::iter(end))
        .filter(|b| std::future::ready(!b.is_empty()))
}

/// `stream: true` on v2 and v3: the cleaned text pieces, without SSE framing.
fn raw_text(answer: Streamed, record: Exchange) -> Response {
    let mut r = Response::new(answer.body(None, None, |t| Bytes::from(t.to_string()), record));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    r
}

async fn v2(
    state: AppState,
    cid: String,
    headers: HeaderMap,
    body: Bytes,
    use_case: UseCase,
) -> Result<Response, GitlabError> {
    let started = Instant::now();
    let (scope, feature) = match use_case {
        UseCase::Generation => ("generate_code", Feature::CodeGenerations),
        _ => ("complete_code", Feature::CodeCompletions),
    };
    authorize(&state, &headers, Some(scope)).await?;
    let ask = v2_ask(&body, use_case)?;
    let verbose = verbose(&state, &headers);
    let (sel, answer, record) = select_and_answer(
        &state,
        &ask,
        (feature, use_case),
        &cid,
        &headers,
        verbose,
        started,
    )
    .await?;
    match answer {
        Answer::Stream(s) => Ok(raw_text(s, record)),
        Answer::Whole { text, usage } => {
            if verbose {
                log_output(&sel, &text, usage);
            }
            finish_whole(record, &text, usage);
            Ok(Json(answer::V2 {
                id: "id",
                model: answer::Model {
                    engine: "litellm",
                    name: &sel.name,
                    lang: &ask.language,
                    tokens_consumption_metadata: Some(answer::TokenUse::of(usage)),
                },
                experiments: [],
                object: "text_completion",
                created: now_secs(),
                choices: answer::choices(text),
                metadata: answer::Flags {
                    enabled_feature_flags: feature_flags(&headers),
                },
            })
            .into_response())
        }
    }
}

pub(crate) async fn v2_completions(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    v2(state, cid.0, headers, body, UseCase::Completion)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn v2_generations(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    v2(state, cid.0, headers, body, UseCase::Generation)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

async fn v3_or_v4(
    state: AppState,
    cid: String,
    headers: HeaderMap,
    body: Bytes,
    sse: bool,
) -> Result<Response, GitlabError> {
    let started = Instant::now();
    authorize(&state, &headers, None).await?;
    let (mut ask, use_case) = v3_ask(&body)?;
    let (scope, feature) = match use_case {
        UseCase::Generation => ("generate_code", Feature::CodeGenerations),
        _ => ("complete_code", Feature::CodeCompletions),
    };
    authorize(&state, &headers, Some(scope)).await?;
    if sse {
        ask.stream = true;
    }
    let verbose = verbose(&state, &headers);
    let (sel, answer, record) = select_and_answer(
        &state,
        &ask,
        (feature, use_case),
        &cid,
        &headers,
        verbose,
        started,
    )
    .await?;
    let engine = if use_case == UseCase::Generation {
        "agent".to_string()
    } else {
        ask.model
            .provider
            .clone()
            .unwrap_or_else(|| "litellm".into())
    };
    let model = answer::Model {
        engine: &engine,
        name: &sel.name,
        lang: &ask.language,
        tokens_consumption_metadata: None,
    };
    let metadata = answer::V3Metadata {
        model: &model,
        timestamp: now_secs(),
        enabled_feature_flags: feature_flags(&headers),
        region: None,
    };
    match answer {
        Answer::Stream(streamed) if sse => {
            let start = Bytes::from(format!(
                "event: stream_start\r\ndata: {}\r\n\r\n",
                answer::to_string(&answer::StreamStart {
                    metadata: &metadata
                })
            ));
            let end = Bytes::from_static(b"event: stream_end\r\ndata: null\r\n\r\n");
            let frame = |t: &str| {
                Bytes::from(format!(
                    "event: content_chunk\r\ndata: {}\r\n\r\n",
                    answer::to_string(&answer::ContentChunk::of(t))
                ))
            };
            let mut r = Response::new(streamed.body(Some(start), Some(end), frame, record));
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            h.insert("x-streaming-format", HeaderValue::from_static("sse"));
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-accel-buffering", HeaderValue::from_static("no"));
            Ok(r)
        }
        Answer::Stream(s) => Ok(raw_text(s, record)),
        Answer::Whole { text, usage } => {
            if verbose {
                log_output(&sel, &text, usage);
            }
            finish_whole(record, &text, usage);
            Ok(Json(answer::V3 {
                choices: answer::choices(text),
                metadata: &metadata,
                model: &model,
            })
            .into_response())
        }
    }
}

pub(crate) async fn v3(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    v3_or_v4(state, cid.0, headers, body, false)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

pub(crate) async fn v4(
    State(state): State<AppState>,
    Extension(cid): Extension<CorrelationId>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Response {
    v3_or_v4(state, cid.0, headers, body, true)
        .await
        .unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_json::{edited, json_like};
    use proptest::prelude::*;
    use serde_json::json;

    const NAMES: &[&str] = &[
        "current_file",
        "file_name",
        "content_above_cursor",
        "content_below_cursor",
        "language_identifier",
        "prompt",
        "stream",
        "model_provider",
        "model_name",
        "model_endpoint",
        "model_api_key",
        "model_identifier",
        "prompt_components",
        "type",
        "payload",
        "model_metadata",
        "code_editor_completion",
        "code_editor_generation",
        "litellm",
        "provider",
        "name",
        "endpoint",
        "api_key",
        "identifier",
    ];

    /// Every way a body can be wrong is a 422 with GitLab's `detail`, never a panic.
    fn check(body: &[u8]) -> Result<(), TestCaseError> {
        let body = Bytes::copy_from_slice(body);
        for result in [
            v2_ask(&body, UseCase::Completion).map(|_| ()),
            v2_ask(&body, UseCase::Generation).map(|_| ()),
            v3_ask(&body).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY);
                prop_assert!(!e.auth);
            }
        }
        Ok(())
    }

    fn v2_body() -> Value {
        json!({
            "current_file": {"file_name": "app/calc.py", "content_above_cursor": "def add(a, b):\n    ",
                "content_below_cursor": "\n", "language_identifier": "python"},
            "stream": false, "prompt_version": 2, "prompt": "write it",
            "model_provider": "litellm", "model_name": "codestral", "model_endpoint": "http://m:8000/v1",
            "model_api_key": "k", "model_identifier": "custom_openai/codestral",
        })
    }

    fn v3_body() -> Value {
        json!({
            "prompt_components": [{"type": "code_editor_generation", "payload": {
                "file_name": "a.rs", "content_above_cursor": "fn main() {", "content_below_cursor": "}",
                "language_identifier": "rust", "prompt": "print hello", "stream": true}}],
            "model_metadata": {"provider": "litellm", "name": "codestral", "endpoint": "http://m:8000/v1",
                "api_key": "k", "identifier": "custom_openai/codestral"},
        })
    }

    #[test]
    fn the_templates_are_valid() {
        let v2 = Bytes::from(v2_body().to_string());
        assert!(v2_ask(&v2, UseCase::Generation).is_ok());
        assert!(v3_ask(&Bytes::from(v3_body().to_string())).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_are_refused_or_parsed(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&body)?;
        }

        #[test]
        fn arbitrary_json_is_refused_or_parsed(body in json_like(NAMES)) {
            check(body.to_string().as_bytes())?;
        }

        #[test]
        fn edited_v2_bodies_are_refused_or_parsed(body in edited(v2_body(), NAMES)) {
            check(body.to_string().as_bytes())?;
        }

        #[test]
        fn edited_v3_bodies_are_refused_or_parsed(body in edited(v3_body(), NAMES)) {
            check(body.to_string().as_bytes())?;
        }
    }
}
