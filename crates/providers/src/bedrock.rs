//! AWS Bedrock Runtime: Converse / ConverseStream for chat, InvokeModel(WithResponseStream)
//! with Mistral's native text-completion body for raw prompts. Requests are signed with SigV4
//! (signing name `bedrock`) over the exact bytes and path sent, or carry a Bedrock API key.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_eventstream::smithy::parse_response_headers;
use base64::Engine;
use bytes::BytesMut;
use futures_util::Stream;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::error::{ProviderError, StreamClock, TimeoutPhase};
use crate::limits::{self, Deadline, ReadTimer, UpstreamLimits};
use crate::types::{
    CallContext, ChatMessage, ChatRequest, Chunk, ChunkExtra, ChunkStream, Endpoint, Reply,
    TextRequest, Usage,
};

/// How Hearth proves itself to Bedrock.
#[derive(Clone, Debug)]
pub enum BedrockAuth {
    /// Access key, secret and optional session token: SigV4.
    SigV4 {
        access_key_id: String,
        secret_access_key: SecretString,
        session_token: Option<SecretString>,
    },
    /// A Bedrock API key, sent as `Authorization: Bearer`.
    ApiKey(SecretString),
}

/// The Bedrock half of an endpoint.
#[derive(Clone, Debug)]
pub struct BedrockTarget {
    pub region: String,
    pub model_id: String,
    pub auth: BedrockAuth,
}

/// The public endpoint for a region; deployments may override it (VPC endpoints).
pub fn bedrock_runtime_url(region: &str) -> String {
    format!("https://bedrock-runtime.{region}.amazonaws.com")
}

/// Percent-encodes a path label the way the AWS SDKs do: everything but unreserved characters,
/// so `anthropic.claude-3-5-sonnet-20240620-v1:0` travels as `…v1%3A0`.
pub fn encode_label(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for b in label.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Signs a POST of `body` to `url` (sent byte for byte as given) for Bedrock and returns the
/// headers to add.
pub fn sigv4_headers(
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    region: &str,
    auth: &BedrockAuth,
    time: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    let BedrockAuth::SigV4 {
        access_key_id,
        secret_access_key,
        session_token,
    } = auth
    else {
        return Ok(Vec::new());
    };
    let identity = Credentials::new(
        access_key_id,
        secret_access_key.expose_secret(),
        session_token
            .as_ref()
            .map(|t| t.expose_secret().to_string()),
        None,
        "hearth",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("bedrock")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

const EVENT_STREAM: &str = "application/vnd.amazon.eventstream";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Converse,
    ConverseStream,
    Invoke,
    InvokeStream,
}

impl Op {
    fn path(self) -> &'static str {
        match self {
            Op::Converse => "converse",
            Op::ConverseStream => "converse-stream",
            Op::Invoke => "invoke",
            Op::InvokeStream => "invoke-with-response-stream",
        }
    }
}

pub(crate) async fn chat(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    req: &ChatRequest,
    ctx: &CallContext,
) -> Result<Reply, ProviderError> {
    let v = whole(
        client,
        limits,
        ep,
        target,
        Op::Converse,
        converse_body(req)?,
        ctx,
    )
    .await?;
    let content = &v["output"]["message"]["content"];
    let text: String = content
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b["text"].as_str())
        .collect();
    let mut message = serde_json::Map::new();
    let calls = tool_calls(content);
    if !calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    Ok(Reply {
        text,
        finish_reason: v["stopReason"].as_str().map(finish_reason),
        usage: converse_usage(&v["usage"]),
        message,
        ..Default::default()
    })
}

pub(crate) async fn complete(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    req: &TextRequest,
    ctx: &CallContext,
) -> Result<Reply, ProviderError> {
    let v = whole(
        client,
        limits,
        ep,
        target,
        Op::Invoke,
        mistral_body(req),
        ctx,
    )
    .await?;
    let out = &v["outputs"][0];
    if out.is_null() {
        return Err(ProviderError::Protocol(
            "InvokeModel answer has no outputs".into(),
        ));
    }
    Ok(Reply {
        text: out["text"].as_str().unwrap_or_default().to_string(),
        finish_reason: out["stop_reason"].as_str().map(finish_reason),
        ..Default::default()
    })
}

pub(crate) async fn chat_stream(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    req: &ChatRequest,
    ctx: &CallContext,
) -> Result<ChunkStream, ProviderError> {
    streamed(
        client,
        limits,
        ep,
        target,
        Op::ConverseStream,
        converse_body(req)?,
        ctx,
    )
    .await
}

pub(crate) async fn complete_stream(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    req: &TextRequest,
    ctx: &CallContext,
) -> Result<ChunkStream, ProviderError> {
    streamed(
        client,
        limits,
        ep,
        target,
        Op::InvokeStream,
        mistral_body(req),
        ctx,
    )
    .await
}

/// Bedrock's stop reasons in OpenAI's words.
fn finish_reason(reason: &str) -> String {
    match reason {
        "max_tokens" | "length" | "model_context_window_exceeded" => "length",
        "content_filtered" | "guardrail_intervened" => "content_filter",
        "tool_use" => "tool_calls",
        _ => "stop",
    }
    .to_string()
}

fn converse_usage(v: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: v["inputTokens"].as_u64()?,
        completion_tokens: v["outputTokens"].as_u64().unwrap_or(0),
    })
}

/// A tool turn the gateway should have refused (it checks them before anything is sent);
/// reaching this means a caller skipped that check, so it is not sent half-translated.
fn untranslatable(what: String) -> ProviderError {
    ProviderError::Protocol(format!("cannot translate for Converse: {what}"))
}

/// One OpenAI message as Converse content blocks, with the Converse role it belongs to
/// (a `tool` result is a user turn there).
fn converse_blocks(i: usize, m: &ChatMessage) -> Result<(&'static str, Vec<Value>), ProviderError> {
    let mut blocks = Vec::new();
    match m.role.as_str() {
        "tool" => {
            let id = m
                .extra
                .get("tool_call_id")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    untranslatable(format!(
                        "messages[{i}] is a tool result without tool_call_id"
                    ))
                })?;
            // The result goes as the text the client wrote: Converse's `json` block would
            // need an object, and tool results are often plain text or JSON arrays.
            blocks.push(json!({"toolResult": {"toolUseId": id, "content": [{"text": m.content}]}}));
            Ok(("user", blocks))
        }
        "assistant" => {
            // Converse refuses empty text blocks; a turn that only called tools has none.
            if !m.content.is_empty() || !m.extra.contains_key("tool_calls") {
                blocks.push(json!({"text": m.content}));
            }
            let calls = m.extra.get("tool_calls").and_then(Value::as_array);
            for (j, call) in calls.into_iter().flatten().enumerate() {
                let f = &call["function"];
                let (Some(id), Some(name), Some(args)) = (
                    call["id"].as_str(),
                    f["name"].as_str(),
                    f["arguments"].as_str(),
                ) else {
                    return Err(untranslatable(format!("messages[{i}].tool_calls[{j}]")));
                };
                // An empty string is a call without arguments, as some clients write it.
                let args = if args.trim().is_empty() { "{}" } else { args };
                let input: Value = serde_json::from_str(args).map_err(|_| {
                    untranslatable(format!("messages[{i}].tool_calls[{j}].function.arguments"))
                })?;
                blocks.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
            }
            Ok(("assistant", blocks))
        }
        _ => {
            blocks.push(json!({"text": m.content}));
            Ok(("user", blocks))
        }
    }
}

/// OpenAI's `tools`/`tool_choice` as Converse's `toolConfig`; `None` when no tools go
/// (none given, or `tool_choice: "none"`, which Converse can only express by sending none).
fn tool_config(req: &ChatRequest) -> Result<Option<Value>, ProviderError> {
    let Some(tools) = req.extra.get("tools").and_then(Value::as_array) else {
        return Ok(None);
    };
    let choice = req.extra.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return Ok(None);
    }
    let mut specs = Vec::with_capacity(tools.len());
    for (i, t) in tools.iter().enumerate() {
        let f = &t["function"];
        let name = f["name"]
            .as_str()
            .ok_or_else(|| untranslatable(format!("tools[{i}] has no function name")))?;
        // OpenAI lets `parameters` be left out for a tool without arguments; Converse
        // needs a schema, and an empty object schema says the same.
        let schema = match &f["parameters"] {
            Value::Null => json!({"type": "object", "properties": {}}),
            p => p.clone(),
        };
        let mut spec = json!({"name": name, "inputSchema": {"json": schema}});
        if let Some(d) = f["description"].as_str() {
            spec["description"] = json!(d);
        }
        specs.push(json!({"toolSpec": spec}));
    }
    let mut config = json!({"tools": specs});
    match choice {
        None => {}
        Some(Value::String(s)) if s == "auto" => config["toolChoice"] = json!({"auto": {}}),
        Some(Value::String(s)) if s == "required" => config["toolChoice"] = json!({"any": {}}),
        Some(c) => match c["function"]["name"].as_str() {
            Some(name) => config["toolChoice"] = json!({"tool": {"name": name}}),
            None => return Err(untranslatable(format!("tool_choice {c}"))),
        },
    }
    Ok(Some(config))
}

fn converse_body(req: &ChatRequest) -> Result<Value, ProviderError> {
    let system: Vec<Value> = req
        .messages
        .iter()
        .filter(|m| m.role == "system")
        .map(|m| json!({"text": m.content}))
        .collect();
    // Converse wants alternating turns: consecutive messages of one role are one turn, their
    // texts joined and their tool results side by side.
    let mut messages: Vec<(&str, Vec<Value>)> = Vec::new();
    for (i, m) in req
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.role != "system")
    {
        let (role, blocks) = converse_blocks(i, m)?;
        match messages.last_mut() {
            Some((last_role, last)) if *last_role == role => {
                for b in blocks {
                    match (
                        last.last_mut().and_then(|l| l.get_mut("text")),
                        b.get("text"),
                    ) {
                        (Some(Value::String(prev)), Some(Value::String(next))) => {
                            prev.push_str("\n\n");
                            prev.push_str(next);
                        }
                        _ => last.push(b),
                    }
                }
            }
            _ => messages.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = messages
        .into_iter()
        .map(|(role, content)| json!({"role": role, "content": content}))
        .collect();
    let mut config = json!({});
    if let Some(n) = req.max_tokens {
        config["maxTokens"] = json!(n);
    }
    if let Some(t) = req.temperature {
        // Bedrock takes 0..1.
        config["temperature"] = json!(t.min(1.0));
    }
    if let Some(p) = req.top_p {
        config["topP"] = json!(p);
    }
    if !req.stop.is_empty() {
        config["stopSequences"] = json!(&*req.stop);
    }
    let mut body = json!({"messages": messages, "inferenceConfig": config});
    if !system.is_empty() {
        body["system"] = json!(system);
    }
    if let Some(tools) = tool_config(req)? {
        body["toolConfig"] = tools;
    }
    Ok(body)
}

/// The answer's `toolUse` blocks as OpenAI's `tool_calls`.
fn tool_calls(content: &Value) -> Vec<Value> {
    content
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|b| b.get("toolUse"))
        .map(|t| {
            json!({"id": t["toolUseId"], "type": "function", "function": {
                "name": t["name"],
                // OpenAI carries arguments as a JSON string; Converse as the object itself.
                "arguments": if t["input"].is_null() { "{}".to_string() } else { t["input"].to_string() },
            }})
        })
        .collect()
}

fn mistral_body(req: &TextRequest) -> Value {
    let mut body = json!({"prompt": req.prompt, "max_tokens": req.max_tokens});
    if let Some(t) = req.temperature {
        body["temperature"] = json!(t.min(1.0));
    }
    if let Some(p) = req.top_p {
        body["top_p"] = json!(p);
    }
    if !req.stop.is_empty() {
        body["stop"] = json!(&*req.stop);
    }
    body
}

async fn send(
    client: &reqwest::Client,
    ep: &Endpoint,
    target: &BedrockTarget,
    op: Op,
    body: Value,
    ctx: &CallContext,
    deadline: &Deadline,
) -> Result<crate::upstream::Response, ProviderError> {
    let url = format!(
        "{}/model/{}/{}",
        ep.base_url.trim_end_matches('/'),
        encode_label(&target.model_id),
        op.path()
    );
    let bytes = serde_json::to_vec(&body).map_err(|e| ProviderError::Protocol(e.to_string()))?;
    let accept = match op {
        Op::Converse | Op::Invoke => "application/json",
        Op::ConverseStream | Op::InvokeStream => EVENT_STREAM,
    };
    let signed: Vec<(&str, &str)> = vec![("content-type", "application/json"), ("accept", accept)];
    let mut request = client.post(&url).body(bytes.clone());
    for (k, v) in &signed {
        request = request.header(*k, *v);
    }
    match &target.auth {
        BedrockAuth::ApiKey(key) => request = request.bearer_auth(key.expose_secret()),
        auth @ BedrockAuth::SigV4 { .. } => {
            let headers = sigv4_headers(
                &url,
                &signed,
                &bytes,
                &target.region,
                auth,
                SystemTime::now(),
            )
            .map_err(|e| ProviderError::Protocol(format!("cannot sign the request: {e}")))?;
            for (k, v) in headers {
                request = request.header(k, v);
            }
        }
    }
    if !ctx.request_id.is_empty() {
        // Unsigned, so it cannot break the signature; Bedrock logs it as a trace id.
        request = request.header("x-request-id", &ctx.request_id);
    }
    let response = limits::send(request, ep, deadline).await?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // `x-amzn-ErrorType: ThrottlingException:http://internal.amazon.com/…`
    let code = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(':')
                .next()
                .unwrap_or(v)
                .rsplit('#')
                .next()
                .unwrap_or(v)
                .to_string()
        });
    let body = limits::read_error_body(response, deadline).await?;
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let message = parsed["message"]
        .as_str()
        .or_else(|| parsed["Message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
    let code = code.or_else(|| {
        parsed["__type"]
            .as_str()
            .or_else(|| parsed["code"].as_str())
            .map(|t| t.rsplit('#').next().unwrap_or(t).to_string())
    });
    Err(ProviderError::Upstream {
        status: status.as_u16(),
        message,
        code,
        retry_after: None,
    })
}

async fn whole(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    op: Op,
    body: Value,
    ctx: &CallContext,
) -> Result<Value, ProviderError> {
    let deadline = Deadline::from(Instant::now(), ep.timeouts.total, TimeoutPhase::Total);
    let response = send(client, ep, target, op, body, ctx, &deadline).await?;
    let bytes = limits::read_answer(response, limits, &deadline).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::Protocol(format!("answer is not JSON: {e}")))
}

async fn streamed(
    client: &reqwest::Client,
    limits: &UpstreamLimits,
    ep: &Endpoint,
    target: &BedrockTarget,
    op: Op,
    body: Value,
    ctx: &CallContext,
) -> Result<ChunkStream, ProviderError> {
    let started = Instant::now();
    let first = ep.timeouts.first_token.min(ep.timeouts.total);
    let deadline = Deadline::from(started, first, TimeoutPhase::FirstToken);
    let response = send(client, ep, target, op, body, ctx, &deadline).await?;
    if let Err(got) = limits::content_type_is(&response, EVENT_STREAM) {
        // Nothing has reached the client yet, so this can still be a plain error answer.
        let body = limits::read_error_body(response, &deadline).await?;
        return Err(ProviderError::Protocol(format!(
            "a stream was asked for but the answer is {got}, not {EVENT_STREAM}: {}",
            crate::error::upstream_message(&body)
        )));
    }
    let clock = StreamClock::start(started, first, ep.timeouts.total);
    let state = EventStream {
        body: http_body_util::BodyDataStream::new(response.into_body()),
        frames: FrameReader::new(limits.max_event_bytes),
        pending: VecDeque::new(),
        timer: ReadTimer::new(clock.next_deadline().0),
        clock,
        finished: false,
        invoke: op == Op::InvokeStream,
        ended: false,
        tool_blocks: Vec::new(),
    };
    Ok(Box::pin(state))
}

type ByteStream = http_body_util::BodyDataStream<crate::upstream::Body>;

struct EventStream {
    body: ByteStream,
    frames: FrameReader,
    pending: VecDeque<Result<Chunk, ProviderError>>,
    timer: ReadTimer,
    clock: StreamClock,
    finished: bool,
    /// InvokeModelWithResponseStream (`chunk` events) rather than ConverseStream.
    invoke: bool,
    /// The answer's end was seen (`messageStop`, or a chunk with a stop reason).
    ended: bool,
    /// The `contentBlockIndex` of each `toolUse` block started so far, in order: a call's
    /// position here is its OpenAI `tool_calls` index (text blocks take none).
    tool_blocks: Vec<u64>,
}

/// Cuts event-stream frames out of the bytes as they arrive, holding at most one frame of
/// `max` bytes: a frame that declares itself larger is refused at its prelude. Public for the
/// crate's benchmarks (`benches/decode.rs`); the gateway does not use it directly.
pub struct FrameReader {
    buf: BytesMut,
    decoder: MessageFrameDecoder,
    max: usize,
    /// The decoder has taken the current frame's prelude out of `buf`.
    in_frame: bool,
    failed: bool,
}

/// A frame's first four bytes are its total length, big-endian.
const PRELUDE: usize = 12;

impl FrameReader {
    pub fn new(max: usize) -> FrameReader {
        FrameReader {
            buf: BytesMut::new(),
            decoder: MessageFrameDecoder::new(),
            max,
            in_frame: false,
            failed: false,
        }
    }

    /// Bytes held of frames not yet complete.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len() + if self.in_frame { PRELUDE } else { 0 }
    }

    /// A frame has begun arriving but is not complete.
    pub(crate) fn partial(&self) -> bool {
        self.in_frame || !self.buf.is_empty()
    }

    /// Feeds bytes; returns the messages they complete, then an error if the input broke
    /// the format or the limit (after which all input is ignored).
    pub fn push(
        &mut self,
        bytes: &[u8],
    ) -> (
        Vec<aws_smithy_types::event_stream::Message>,
        Option<ProviderError>,
    ) {
        let mut out = Vec::new();
        if self.failed {
            return (out, None);
        }
        self.buf.extend_from_slice(bytes);
        loop {
            if !self.in_frame && self.buf.len() >= 4 {
                let declared =
                    u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
                if usize::try_from(declared).map_or(true, |n| n > self.max) {
                    return (out, Some(self.fail_too_large()));
                }
            }
            let before = self.buf.len();
            match self.decoder.decode_frame(&mut self.buf) {
                Ok(DecodedFrame::Incomplete) => {
                    self.in_frame = self.in_frame || self.buf.len() < before;
                    // Never reached with a valid prelude (declared ≤ max); a safety net.
                    if self.buffered() > self.max {
                        return (out, Some(self.fail_too_large()));
                    }
                    return (out, None);
                }
                Ok(DecodedFrame::Complete(message)) => {
                    self.in_frame = false;
                    out.push(message);
                }
                Err(e) => {
                    self.fail();
                    return (
                        out,
                        Some(ProviderError::Stream(format!(
                            "corrupted event-stream frame: {e}"
                        ))),
                    );
                }
            }
        }
    }

    fn fail(&mut self) {
        self.failed = true;
        self.in_frame = false;
        self.buf = BytesMut::new();
    }

    fn fail_too_large(&mut self) -> ProviderError {
        self.fail();
        ProviderError::TooLarge {
            what: "an event-stream frame",
            limit: "max_event_bytes",
            bytes: self.max,
        }
    }
}

impl Stream for EventStream {
    type Item = Result<Chunk, ProviderError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let s = self.get_mut();
        loop {
            if let Some(item) = limits::handed_on(&mut s.pending, &mut s.finished) {
                return Poll::Ready(item);
            }
            let read = limits::poll_read(&mut s.timer, &mut s.body, &s.clock, &mut s.finished, cx);
            match ready!(read) {
                Err(e) => return Poll::Ready(Some(Err(e))),
                Ok(Some(bytes)) => {
                    let (messages, error) = s.frames.push(&bytes);
                    for m in &messages {
                        s.handle(m);
                    }
                    s.pending.extend(error.map(Err));
                }
                Ok(None) => {
                    s.finished = true;
                    if s.frames.partial() {
                        return Poll::Ready(Some(Err(ProviderError::Stream(
                            "the event stream was cut off mid-frame".into(),
                        ))));
                    }
                    if !s.ended {
                        return Poll::Ready(Some(Err(ProviderError::Stream(
                            "the event stream ended before the answer did".into(),
                        ))));
                    }
                }
            }
        }
    }

    /// At least the events already decoded (see the OpenAI-compatible stream's).
    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            self.pending.len(),
            self.finished.then_some(self.pending.len()),
        )
    }
}

impl EventStream {
    fn handle(&mut self, message: &aws_smithy_types::event_stream::Message) {
        let headers = match parse_response_headers(message) {
            Ok(h) => h,
            Err(e) => {
                self.pending.push_back(Err(ProviderError::Stream(format!(
                    "event without its headers: {e}"
                ))));
                return;
            }
        };
        let payload: Value = serde_json::from_slice(message.payload()).unwrap_or(Value::Null);
        let kind = headers.smithy_type.as_str();
        match headers.message_type.as_str() {
            "event" => {}
            "exception" => {
                let text = payload["message"]
                    .as_str()
                    .or_else(|| payload["Message"].as_str())
                    .unwrap_or("no message");
                self.pending.push_back(Err(ProviderError::Stream(format!(
                    "Bedrock {kind}: {text}"
                ))));
                return;
            }
            other => {
                self.pending.push_back(Err(ProviderError::Stream(format!(
                    "Bedrock sent a {other} message"
                ))));
                return;
            }
        }
        let chunk = match (self.invoke, kind) {
            (false, "contentBlockStart") => {
                let Some(tool) = payload["start"].get("toolUse") else {
                    return;
                };
                let index = self.tool_blocks.len();
                self.tool_blocks
                    .push(payload["contentBlockIndex"].as_u64().unwrap_or(u64::MAX));
                tool_delta(
                    json!({"index": index, "id": tool["toolUseId"], "type": "function",
                    "function": {"name": tool["name"], "arguments": ""}}),
                )
            }
            (false, "contentBlockDelta") => match payload["delta"].get("toolUse") {
                Some(tool) => {
                    let block = payload["contentBlockIndex"].as_u64().unwrap_or(u64::MAX);
                    let Some(index) = self.tool_blocks.iter().position(|b| *b == block) else {
                        self.pending.push_back(Err(ProviderError::Protocol(
                            "a toolUse delta for a content block that did not start one".into(),
                        )));
                        return;
                    };
                    tool_delta(json!({"index": index,
                        "function": {"arguments": tool["input"].as_str().unwrap_or_default()}}))
                }
                None => Chunk {
                    text: payload["delta"]["text"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    ..Default::default()
                },
            },
            (false, "messageStop") => {
                self.ended = true;
                Chunk {
                    finish_reason: Some(finish_reason(
                        payload["stopReason"].as_str().unwrap_or("end_turn"),
                    )),
                    ..Default::default()
                }
            }
            (false, "metadata") => Chunk {
                usage: converse_usage(&payload["usage"]),
                ..Default::default()
            },
            (true, "chunk") => {
                let inner = payload["bytes"]
                    .as_str()
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
                let Some(inner) = inner else {
                    self.pending.push_back(Err(ProviderError::Protocol(
                        "a chunk event without base64 JSON bytes".into(),
                    )));
                    return;
                };
                let out = &inner["outputs"][0];
                let stop = out["stop_reason"].as_str().map(finish_reason);
                self.ended |= stop.is_some();
                let metrics = &inner["amazon-bedrock-invocationMetrics"];
                Chunk {
                    text: out["text"].as_str().unwrap_or_default().to_string(),
                    finish_reason: stop,
                    usage: metrics["inputTokenCount"].as_u64().map(|i| Usage {
                        prompt_tokens: i,
                        completion_tokens: metrics["outputTokenCount"].as_u64().unwrap_or(0),
                    }),
                    ..Default::default()
                }
            }
            _ => return, // messageStart, contentBlockStart/Stop, and events added later
        };
        if chunk.is_token() {
            self.clock.seen_token = true;
        }
        self.pending.push_back(Ok(chunk));
    }
}

/// A streamed piece of one tool call, in OpenAI's `tool_calls` delta shape.
fn tool_delta(call: Value) -> Chunk {
    let mut delta = serde_json::Map::new();
    delta.insert("tool_calls".into(), json!([call]));
    Chunk {
        extra: ChunkExtra::of(delta, None),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let message = aws_smithy_types::event_stream::Message::new(payload.to_vec());
        let mut out = Vec::new();
        aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
        out
    }

    /// Feeds `bytes` cut at `cuts`; checks the held bytes after every piece.
    fn feed(reader: &mut FrameReader, bytes: &[u8], cuts: &[usize]) -> (usize, Option<String>) {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
        points.sort_unstable();
        let (mut last, mut messages, mut error) = (0, 0, None);
        for p in points.into_iter().chain([bytes.len()]) {
            let (m, e) = reader.push(&bytes[last..p]);
            assert!(
                error.is_none() || (m.is_empty() && e.is_none()),
                "nothing after an error"
            );
            messages += m.len();
            error = error.or(e.map(|e| e.to_string()));
            assert!(
                reader.buffered() <= reader.max,
                "{} > {}",
                reader.buffered(),
                reader.max
            );
            last = p;
        }
        (messages, error)
    }

    #[test]
    fn frames_past_the_limit_are_refused_at_their_prelude() {
        let small = frame(b"{}");
        let big = frame(&[b'x'; 200]);
        let mut bytes = small.clone();
        bytes.extend_from_slice(&big);
        let mut r = FrameReader::new(100);
        let (messages, error) = feed(&mut r, &bytes, &[3, small.len() + 2]);
        assert_eq!(messages, 1);
        let error = error.unwrap();
        assert!(
            error.contains("max_event_bytes") && error.contains("100 bytes"),
            "{error}"
        );
        let mut r = FrameReader::new(1000);
        assert_eq!(feed(&mut r, &bytes, &[5, 40, 41]), (2, None));
        assert!(!r.partial());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_or_pass_the_limit(
            noise in proptest::collection::vec(any::<u8>(), 0..400),
            payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 0..4),
            cuts in proptest::collection::vec(0usize..800, 0..12),
            max in 16usize..160,
            noise_first in any::<bool>(),
        ) {
            let mut bytes: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
            if noise_first {
                bytes.splice(0..0, noise.iter().copied());
            } else {
                bytes.extend_from_slice(&noise);
            }
            let mut r = FrameReader::new(max);
            let (messages, _) = feed(&mut r, &bytes, &cuts);
            prop_assert!(messages <= payloads.len() + bytes.len() / 16);
        }
    }

    const AK: &str = "AKIDEXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn creds() -> BedrockAuth {
        BedrockAuth::SigV4 {
            access_key_id: AK.into(),
            secret_access_key: SecretString::from(SK),
            session_token: None,
        }
    }

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn signature(headers: &[(String, String)]) -> String {
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        auth.rsplit("Signature=").next().unwrap().to_string()
    }

    /// The fixed-input signatures in shared/reference/providers.md §3.4: the same request with
    /// the model id's colon sent encoded (`%3A`, as the AWS SDKs do) and raw.
    #[test]
    fn signs_the_exact_wire_path_colon_encoded_or_raw() {
        let body = br#"{"messages":[{"role":"user","content":[{"text":"hi"}]}]}"#;
        let t = at(1_440_938_160); // 2015-08-30T12:36:00Z
        let base = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-5-sonnet-20240620-v1";
        let encoded = sigv4_headers(
            &format!("{base}%3A0/converse"),
            &[("content-type", "application/json")],
            body,
            "us-east-1",
            &creds(),
            t,
        )
        .unwrap();
        assert_eq!(
            signature(&encoded),
            "1c91d22c6dfb49efad9e8de45bc4dde894ea14c06a0f4b54d7682ee99e1cd6d6"
        );
        let raw = sigv4_headers(
            &format!("{base}:0/converse"),
            &[("content-type", "application/json")],
            body,
            "us-east-1",
            &creds(),
            t,
        )
        .unwrap();
        assert_eq!(
            signature(&raw),
            "6118daf6151a241c625e7f6ad4a2f2f4149d45acadc0fdd806e6df333e0e86b7"
        );
        let date = encoded.iter().find(|(k, _)| k == "x-amz-date").unwrap();
        assert_eq!(date.1, "20150830T123600Z");
    }

    /// The InvokeModel request of shared/reference/local-env.md §5, which boto3 signs the same.
    #[test]
    fn matches_boto3_on_invoke_model() {
        let body = br#"{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}"#;
        let url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke";
        let headers = sigv4_headers(
            url,
            &[
                ("content-type", "application/json"),
                ("accept", "application/json"),
            ],
            body,
            "us-east-1",
            &creds(),
            at(1_704_067_200),
        )
        .unwrap();
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert_eq!(
            auth,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240101/us-east-1/bedrock/aws4_request, \
             SignedHeaders=accept;content-type;host;x-amz-date, \
             Signature=4d48955bf1f21e3518ac0cd69faeb754335d62e71a1576dabfcf2985e81406c5"
        );
        assert!(!headers.iter().any(|(k, _)| k == "x-amz-content-sha256"));
    }

    #[test]
    fn session_tokens_are_sent_and_api_keys_are_not_signed() {
        let auth = BedrockAuth::SigV4 {
            access_key_id: AK.into(),
            secret_access_key: SecretString::from(SK),
            session_token: Some(SecretString::from("TOKEN")),
        };
        let h = sigv4_headers(
            "https://h/model/m/converse",
            &[],
            b"{}",
            "eu-west-1",
            &auth,
            at(0),
        )
        .unwrap();
        assert!(
            h.iter()
                .any(|(k, v)| k == "x-amz-security-token" && v == "TOKEN")
        );
        let key = BedrockAuth::ApiKey(SecretString::from("bedrock-api-key"));
        assert!(
            sigv4_headers(
                "https://h/model/m/converse",
                &[],
                b"{}",
                "eu-west-1",
                &key,
                at(0)
            )
            .unwrap()
            .is_empty()
        );
    }

    #[test]
    fn labels_are_encoded_like_the_sdks() {
        assert_eq!(
            encode_label("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(
            encode_label("arn:aws:bedrock:us-east-1::foundation-model/x"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A%3Afoundation-model%2Fx"
        );
    }

    /// A tool without `parameters` gets an empty object schema (Converse needs one), a call
    /// written with empty arguments is `{}`, and a text turn after tool results joins their
    /// user turn.
    #[test]
    fn tool_edge_cases_translate() {
        let mut extra = serde_json::Map::new();
        extra.insert(
            "tools".into(),
            json!([{"type": "function", "function": {"name": "now"}}]),
        );
        let msg = |role: &str, content: &str, more: Value| crate::ChatMessage {
            role: role.into(),
            content: content.into(),
            extra: more.as_object().cloned().unwrap_or_default(),
        };
        let req = ChatRequest {
            messages: vec![
                msg("user", "time?", json!({})),
                msg(
                    "assistant",
                    "",
                    json!({"tool_calls": [{"id": "c1", "type": "function",
                        "function": {"name": "now", "arguments": ""}}]}),
                ),
                msg("tool", "12:00", json!({"tool_call_id": "c1"})),
                msg("user", "and tomorrow?", json!({})),
            ],
            extra,
            ..Default::default()
        };
        let body = converse_body(&req).unwrap();
        assert_eq!(
            body["toolConfig"],
            json!({"tools": [{"toolSpec": {"name": "now",
                "inputSchema": {"json": {"type": "object", "properties": {}}}}}]})
        );
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"toolUse": {"toolUseId": "c1", "name": "now", "input": {}}}])
        );
        assert_eq!(
            body["messages"][2]["content"],
            json!([{"toolResult": {"toolUseId": "c1", "content": [{"text": "12:00"}]}},
                {"text": "and tomorrow?"}])
        );
        assert_eq!(body["messages"].as_array().map(Vec::len), Some(3));
    }

    #[test]
    fn stop_reasons_map_to_openai_words() {
        assert_eq!(finish_reason("end_turn"), "stop");
        assert_eq!(finish_reason("max_tokens"), "length");
        assert_eq!(finish_reason("guardrail_intervened"), "content_filter");
        assert_eq!(finish_reason("tool_use"), "tool_calls");
        let req = ChatRequest {
            model: "m".into(),
            messages: vec![
                crate::ChatMessage {
                    role: "system".into(),
                    content: "be brief".into(),
                    ..Default::default()
                },
                crate::ChatMessage {
                    role: "user".into(),
                    content: "a".into(),
                    ..Default::default()
                },
                crate::ChatMessage {
                    role: "user".into(),
                    content: "b".into(),
                    ..Default::default()
                },
            ],
            max_tokens: Some(5),
            temperature: Some(1.5),
            ..Default::default()
        };
        let body = converse_body(&req).unwrap();
        assert_eq!(body["system"], json!([{"text": "be brief"}]));
        assert_eq!(
            body["messages"],
            json!([{"role": "user", "content": [{"text": "a\n\nb"}]}])
        );
        assert_eq!(
            body["inferenceConfig"],
            json!({"maxTokens": 5, "temperature": 1.0})
        );
    }
}

/// Bedrock credentials and region the process's environment provides: AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, else AWS_BEARER_TOKEN_BEDROCK, else the shared
/// credentials file's profile (AWS_PROFILE or `default`); AWS_REGION, AWS_REGION_NAME (GitLab's
/// name) or AWS_DEFAULT_REGION.
#[derive(Clone, Debug, Default)]
pub struct AwsDefaults {
    pub auth: Option<BedrockAuth>,
    pub region: Option<String>,
}

impl AwsDefaults {
    pub fn from_env() -> AwsDefaults {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let region = var("AWS_REGION")
            .or_else(|| var("AWS_REGION_NAME"))
            .or_else(|| var("AWS_DEFAULT_REGION"));
        let auth = match (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY")) {
            (Some(id), Some(secret)) => Some(BedrockAuth::SigV4 {
                access_key_id: id,
                secret_access_key: SecretString::from(secret),
                session_token: var("AWS_SESSION_TOKEN").map(SecretString::from),
            }),
            _ => var("AWS_BEARER_TOKEN_BEDROCK")
                .map(|t| BedrockAuth::ApiKey(SecretString::from(t)))
                .or_else(|| {
                    let path = var("AWS_SHARED_CREDENTIALS_FILE")
                        .map(std::path::PathBuf::from)
                        .or_else(|| {
                            var("HOME").map(|h| std::path::Path::new(&h).join(".aws/credentials"))
                        })?;
                    let text = std::fs::read_to_string(path).ok()?;
                    profile_credentials(
                        &text,
                        &var("AWS_PROFILE").unwrap_or_else(|| "default".into()),
                    )
                }),
        };
        AwsDefaults { auth, region }
    }
}

/// Reads one profile's keys from a shared credentials file (INI).
fn profile_credentials(text: &str, profile: &str) -> Option<BedrockAuth> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        if !in_profile {
            continue;
        }
        match k.trim() {
            "aws_access_key_id" => id = Some(v.trim().to_string()),
            "aws_secret_access_key" => secret = Some(v.trim().to_string()),
            "aws_session_token" => token = Some(v.trim().to_string()),
            _ => {}
        }
    }
    Some(BedrockAuth::SigV4 {
        access_key_id: id?,
        secret_access_key: SecretString::from(secret?),
        session_token: token.map(SecretString::from),
    })
}

/// A deployment's stored key: `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:SESSION_TOKEN]` for SigV4,
/// anything else is a Bedrock API key.
pub fn bedrock_auth_from_key(key: &SecretString) -> BedrockAuth {
    let text = key.expose_secret();
    let parts: Vec<&str> = text.splitn(3, ':').collect();
    let looks_like_key_id = |s: &str| {
        s.len() >= 16
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    match parts.as_slice() {
        [id, secret, rest @ ..] if looks_like_key_id(id) && !secret.is_empty() => {
            BedrockAuth::SigV4 {
                access_key_id: id.to_string(),
                secret_access_key: SecretString::from(secret.to_string()),
                session_token: rest.first().map(|t| SecretString::from(t.to_string())),
            }
        }
        _ => BedrockAuth::ApiKey(key.clone()),
    }
}

#[cfg(test)]
mod credential_tests {
    use super::*;

    #[test]
    fn stored_keys_and_profiles_parse() {
        match bedrock_auth_from_key(&SecretString::from(
            "AKIAIOSFODNN7EXAMPLE:wJalr/K7MDENG:tok",
        )) {
            BedrockAuth::SigV4 {
                access_key_id,
                session_token,
                ..
            } => {
                assert_eq!(access_key_id, "AKIAIOSFODNN7EXAMPLE");
                assert!(session_token.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            bedrock_auth_from_key(&SecretString::from("ABSKQmVkcm9ja0FQSUtleQ==")),
            BedrockAuth::ApiKey(_)
        ));
        let file = "[default]\naws_access_key_id = AKIAONE\naws_secret_access_key = s1\n\n[work]\naws_access_key_id=AKIATWO\naws_secret_access_key=s2\n";
        match profile_credentials(file, "work") {
            Some(BedrockAuth::SigV4 { access_key_id, .. }) => assert_eq!(access_key_id, "AKIATWO"),
            other => panic!("{other:?}"),
        }
        assert!(profile_credentials(file, "missing").is_none());
    }
}
