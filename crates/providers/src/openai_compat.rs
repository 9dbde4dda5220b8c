//! The OpenAI-compatible platform: `/completions` and `/chat/completions`, whole or streamed.

// Keys are deployment settings, not client input: the fast seeded hash is enough.
use foldhash::HashMap;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures_util::Stream;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http_body_util::{BodyDataStream, Full};
use secrecy::ExposeSecret;
use serde_json::Value;
use tokio::time::Instant;

use crate::bedrock;
use crate::error::{
    ConnectCause, ProviderError, StreamClock, TimeoutPhase, upstream_code, upstream_message,
};
use crate::limits::{self, Deadline, ReadTimer, UpstreamLimits};
use crate::redact::{SecretSource, Secrets};
use crate::replicas;
use crate::upstream::{self, BoxError, Clients};

mod body;
mod read;
use crate::sse::{SseDecoder, SseRef};
use crate::types::{
    CallContext, ChatRequest, Chunk, ChunkStream, Endpoint, Flavor, Reply, TextRequest,
};
use body::Outgoing;
use read::{EventReader, answer};

/// What kind of answer to read: `choices[].text` or `choices[].message|delta.content`.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Chat,
}

/// Parsed upstream URLs kept at most; past it the cache starts again (a registry with more
/// distinct endpoint × path pairs than this only pays the parse again).
const MAX_CACHED_URLS: usize = 4096;

/// Every platform behind one entry point, with one set of pooled clients per (connect
/// timeout, endpoint origin): keep-alive connections are reused across requests, and one slow
/// endpoint's settings never apply to another. Upstream URLs are parsed once: parsing one
/// costs more than the rest of building the request.
#[derive(Default)]
pub struct Providers {
    clients: RwLock<HashMap<Duration, HashMap<String, Arc<Clients>>>>,
    urls: RwLock<HashMap<String, Arc<Target>>>,
    limits: UpstreamLimits,
}

/// An upstream URL, parsed for each client.
struct Target {
    url: reqwest::Url,
    /// For the direct client; `None` sends the request through reqwest: a URL with a user
    /// name or password in it (reqwest turns those into an `Authorization` header), or one
    /// whose serialisation is not an HTTP URI.
    uri: Option<http::Uri>,
}

impl Providers {
    /// With the default [`UpstreamLimits`].
    pub fn new() -> Providers {
        Providers::default()
    }

    pub fn with_limits(limits: UpstreamLimits) -> Providers {
        Providers {
            limits,
            ..Providers::default()
        }
    }

    fn clients(&self, ep: &Endpoint) -> Result<Arc<Clients>, ProviderError> {
        let origin = origin(&ep.base_url);
        if let Ok(map) = self.clients.read()
            && let Some(c) = map.get(&ep.timeouts.connect).and_then(|m| m.get(origin))
        {
            return Ok(Arc::clone(c));
        }
        let clients = Arc::new(Clients::new(ep, origin, &self.limits)?);
        if let Ok(mut map) = self.clients.write() {
            map.entry(ep.timeouts.connect)
                .or_default()
                .insert(origin.to_owned(), Arc::clone(&clients));
        }
        Ok(clients)
    }

    /// The reqwest client for the endpoint's origin (Bedrock's calls).
    fn reqwest(&self, ep: &Endpoint) -> Result<reqwest::Client, ProviderError> {
        Ok(self.clients(ep)?.reqwest.clone())
    }

    /// `url` parsed, from the cache when it was seen before.
    fn target(&self, url: &str) -> Result<Arc<Target>, ProviderError> {
        if let Ok(map) = self.urls.read()
            && let Some(t) = map.get(url)
        {
            return Ok(Arc::clone(t));
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| ProviderError::Connect {
            endpoint: url.to_owned(),
            cause: ConnectCause::Other,
            message: format!("{url} is not a URL: {e}"),
        })?;
        let plain = parsed.username().is_empty() && parsed.password().is_none();
        let target = Arc::new(Target {
            uri: plain.then(|| parsed.as_str().parse().ok()).flatten(),
            url: parsed,
        });
        if let Ok(mut map) = self.urls.write() {
            if map.len() >= MAX_CACHED_URLS {
                map.clear();
            }
            map.insert(url.to_owned(), Arc::clone(&target));
        }
        Ok(target)
    }

    pub async fn complete(
        &self,
        ep: &Endpoint,
        req: &TextRequest,
        ctx: &CallContext,
    ) -> Result<Reply, ProviderError> {
        replicas::attempt(ep, ctx, |one| async move {
            let result = match &one.flavor {
                Flavor::Bedrock(t) => {
                    bedrock::complete(&self.reqwest(&one)?, &self.limits, &one, t, req, ctx).await
                }
                _ => {
                    let body = Outgoing::text(req, false, false);
                    self.whole(&one, "/completions", body, Kind::Text, ctx)
                        .await
                }
            };
            result.map_err(|e| e.scrubbed(&Secrets::of(&one)))
        })
        .await
        .map(|(reply, _)| reply)
    }

    pub async fn complete_stream(
        &self,
        ep: &Endpoint,
        req: &TextRequest,
        include_usage: bool,
        ctx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let ((stream, source), guard) = replicas::attempt(ep, ctx, |one| async move {
            let result = match &one.flavor {
                Flavor::Bedrock(t) => {
                    bedrock::complete_stream(&self.reqwest(&one)?, &self.limits, &one, t, req, ctx)
                        .await
                }
                _ => {
                    let body = Outgoing::text(req, true, include_usage);
                    self.streamed(&one, "/completions", body, Kind::Text, ctx)
                        .await
                }
            };
            with_secrets(result, &one)
        })
        .await?;
        Ok(Box::pin(Delivered {
            stream,
            source,
            _replica: guard,
        }))
    }

    pub async fn chat(
        &self,
        ep: &Endpoint,
        req: &ChatRequest,
        ctx: &CallContext,
    ) -> Result<Reply, ProviderError> {
        replicas::attempt(ep, ctx, |one| async move {
            let result = match &one.flavor {
                Flavor::Bedrock(t) => {
                    bedrock::chat(&self.reqwest(&one)?, &self.limits, &one, t, req, ctx).await
                }
                _ => {
                    let body = Outgoing::chat(req, false, false);
                    self.whole(&one, "/chat/completions", body, Kind::Chat, ctx)
                        .await
                }
            };
            result.map_err(|e| e.scrubbed(&Secrets::of(&one)))
        })
        .await
        .map(|(reply, _)| reply)
    }

    pub async fn chat_stream(
        &self,
        ep: &Endpoint,
        req: &ChatRequest,
        include_usage: bool,
        ctx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let ((stream, source), guard) = replicas::attempt(ep, ctx, |one| async move {
            let result = match &one.flavor {
                Flavor::Bedrock(t) => {
                    bedrock::chat_stream(&self.reqwest(&one)?, &self.limits, &one, t, req, ctx)
                        .await
                }
                _ => {
                    let body = Outgoing::chat(req, true, include_usage);
                    self.streamed(&one, "/chat/completions", body, Kind::Chat, ctx)
                        .await
                }
            };
            with_secrets(result, &one)
        })
        .await?;
        Ok(Box::pin(Delivered {
            stream,
            source,
            _replica: guard,
        }))
    }

    /// The model names an OpenAI-compatible server serves (`GET {base}/models`), for `hearth
    /// verify`: one read under the endpoint's total timeout, through the same client, caps and
    /// error mapping as a completion, so a failure here names the cause a request would meet.
    pub async fn list_models(&self, ep: &Endpoint) -> Result<Vec<String>, ProviderError> {
        let result = async {
            let deadline = Deadline::from(Instant::now(), ep.timeouts.total, TimeoutPhase::Total);
            let url = format!("{}/models", ep.base_url.trim_end_matches('/'));
            let mut request = self.clients(ep)?.reqwest.get(&url);
            if let Some(key) = &ep.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            let response = limits::send(request, ep, &deadline).await?;
            let status = response.status();
            if !status.is_success() {
                let body = limits::read_error_body(response, &deadline).await?;
                return Err(ProviderError::Upstream {
                    status: status.as_u16(),
                    message: upstream_message(&body),
                    code: upstream_code(&body),
                    retry_after: None,
                });
            }
            let bytes = limits::read_answer(response, &self.limits, &deadline).await?;
            let v: Value = serde_json::from_slice(&bytes)
                .map_err(|e| ProviderError::Protocol(format!("the model list is not JSON: {e}")))?;
            let Some(data) = v["data"].as_array() else {
                return Err(ProviderError::Protocol(
                    "the model list has no \"data\" array".into(),
                ));
            };
            Ok(data
                .iter()
                .filter_map(|m| m["id"].as_str().map(str::to_owned))
                .collect())
        }
        .await;
        result.map_err(|e| e.scrubbed(&Secrets::of(ep)))
    }

    /// The model server's Prometheus text at `{origin}/metrics` (vLLM; llama-server with
    /// `--metrics`), read under the endpoint's total timeout, for its queue length.
    pub async fn server_metrics(&self, ep: &Endpoint) -> Result<String, ProviderError> {
        let result = async {
            let deadline = Deadline::from(Instant::now(), ep.timeouts.total, TimeoutPhase::Total);
            let url = format!("{}/metrics", origin(&ep.base_url));
            let mut request = self.clients(ep)?.reqwest.get(&url);
            if let Some(key) = &ep.api_key {
                request = request.bearer_auth(key.expose_secret());
            }
            let response = limits::send(request, ep, &deadline).await?;
            let status = response.status();
            if !status.is_success() {
                return Err(ProviderError::Upstream {
                    status: status.as_u16(),
                    message: format!("{url} answered {status}"),
                    code: None,
                    retry_after: None,
                });
            }
            let bytes = limits::read_answer(response, &self.limits, &deadline).await?;
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        .await;
        result.map_err(|e| e.scrubbed(&Secrets::of(ep)))
    }

    /// Sends the request and waits for an OK status; maps every failure.
    async fn send(
        &self,
        ep: &Endpoint,
        path: &str,
        body: Outgoing<'_>,
        ctx: &CallContext,
        deadline: Deadline,
    ) -> Result<upstream::Response, ProviderError> {
        let base = ep.base_url.trim_end_matches('/');
        let (url, body) = match &ep.flavor {
            // Bedrock calls never reach here (see the public methods); treat as plain OpenAI.
            Flavor::OpenAi | Flavor::Bedrock(_) => ([base, path].concat(), body),
            Flavor::Azure {
                deployment,
                api_version: Some(version),
            } => {
                // The classic form names the deployment in the URL; `model` is not needed.
                (
                    format!("{base}/openai/deployments/{deployment}{path}?api-version={version}"),
                    body.with_model(None),
                )
            }
            Flavor::Azure {
                deployment,
                api_version: None,
            } => (
                format!("{base}/openai/v1{path}"),
                body.with_model(Some(deployment)),
            ),
        };
        let clients = self.clients(ep)?;
        let target = self.target(&url)?;
        let response = match (clients.direct(), &target.uri) {
            (Some(direct), Some(uri)) => {
                let request = direct_request(ep, uri, body.to_json(), ctx)?;
                upstream::send_direct(direct, request, ep, &deadline).await?
            }
            _ => {
                let mut request = clients
                    .reqwest
                    .post(target.url.clone())
                    .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.to_json());
                if let Some(key) = &ep.api_key {
                    let key = key.expose_secret();
                    request = match auth_header(&ep.flavor, key) {
                        (AUTHORIZATION, token) => request.bearer_auth(token),
                        (name, key) => request.header(name, key),
                    };
                }
                if !ctx.request_id.is_empty() {
                    request = request.header("x-request-id", &ctx.request_id);
                }
                limits::send(request, ep, &deadline).await?
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // Azure's millisecond form is the more precise; rounded up to whole seconds.
        let retry_after = header("retry-after-ms")
            .and_then(|v| v.parse::<u64>().ok())
            .map(|ms| ms.div_ceil(1000).to_string())
            .or_else(|| header("retry-after"));
        let body = limits::read_error_body(response, &deadline).await?;
        Err(ProviderError::Upstream {
            status: status.as_u16(),
            message: upstream_message(&body),
            code: upstream_code(&body),
            retry_after,
        })
    }

    async fn whole(
        &self,
        ep: &Endpoint,
        path: &str,
        body: Outgoing<'_>,
        kind: Kind,
        ctx: &CallContext,
    ) -> Result<Reply, ProviderError> {
        let deadline = Deadline::from(Instant::now(), ep.timeouts.total, TimeoutPhase::Total);
        let response = self.send(ep, path, body, ctx, deadline).await?;
        let bytes = limits::read_answer(response, &self.limits, &deadline).await?;
        answer(&bytes, kind)
    }

    async fn streamed(
        &self,
        ep: &Endpoint,
        path: &str,
        body: Outgoing<'_>,
        kind: Kind,
        ctx: &CallContext,
    ) -> Result<ChunkStream, ProviderError> {
        let started = Instant::now();
        let first_token = ep.timeouts.first_token.min(ep.timeouts.total);
        let deadline = Deadline::from(started, first_token, TimeoutPhase::FirstToken);
        let response = self.send(ep, path, body, ctx, deadline).await?;
        if let Err(got) = limits::content_type_is(&response, "text/event-stream") {
            // Nothing has reached the client yet, so this can still be a plain error answer.
            let body = limits::read_error_body(response, &deadline).await?;
            return Err(ProviderError::Protocol(format!(
                "a stream was asked for but the answer is {got}, not text/event-stream: {}",
                upstream_message(&body)
            )));
        }
        let clock = StreamClock::start(started, first_token, ep.timeouts.total);
        let state = StreamState {
            body: BodyDataStream::new(response.into_body()),
            decoder: SseDecoder::with_limit(self.limits.max_event_bytes),
            pending: std::collections::VecDeque::new(),
            timer: ReadTimer::new(clock.next_deadline().0),
            clock,
            finished: false,
            events: EventReader::new(kind),
        };
        Ok(Box::pin(state))
    }
}

/// Names made at compile time: `from_static` at run time checks every byte of the name.
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const API_KEY: HeaderName = HeaderName::from_static("api-key");

/// The header a deployment's key goes in, and the key as it goes there (`Bearer` added to it
/// for `Authorization`).
fn auth_header<'k>(flavor: &Flavor, key: &'k str) -> (HeaderName, &'k str) {
    match (flavor, key.strip_prefix("Bearer ")) {
        (Flavor::OpenAi | Flavor::Bedrock(_), _) => (AUTHORIZATION, key),
        // An Entra ID token, stored with its scheme.
        (Flavor::Azure { .. }, Some(token)) => (AUTHORIZATION, token),
        (Flavor::Azure { .. }, None) => (API_KEY, key),
    }
}

/// The request the direct client sends: the headers reqwest would have sent.
fn direct_request(
    ep: &Endpoint,
    uri: &http::Uri,
    body: Vec<u8>,
    ctx: &CallContext,
) -> Result<http::Request<Full<bytes::Bytes>>, ProviderError> {
    let refused = |what: &str| ProviderError::Connect {
        endpoint: ep.base_url.clone(),
        cause: ConnectCause::Other,
        message: format!("{what} cannot be sent in an HTTP header (it holds a control character)"),
    };
    let mut request = http::Request::new(Full::new(bytes::Bytes::from(body)));
    *request.method_mut() = http::Method::POST;
    *request.uri_mut() = uri.clone();
    let headers = request.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    headers.insert(USER_AGENT, upstream::user_agent());
    if let Some(key) = &ep.api_key {
        let (name, key) = auth_header(&ep.flavor, key.expose_secret());
        let value = if name == AUTHORIZATION {
            HeaderValue::try_from(["Bearer ", key].concat())
        } else {
            HeaderValue::try_from(key)
        };
        let mut value = value.map_err(|_| refused("the deployment's API key"))?;
        value.set_sensitive(true);
        headers.insert(name, value);
    }
    if !ctx.request_id.is_empty() {
        let id = HeaderValue::try_from(&ctx.request_id).map_err(|_| refused("the request id"))?;
        headers.insert(REQUEST_ID, id);
    }
    Ok(request)
}

/// A stream that began, with where its secrets are; an error before it began, scrubbed.
fn with_secrets(
    result: Result<ChunkStream, ProviderError>,
    ep: &Endpoint,
) -> Result<(ChunkStream, SecretSource), ProviderError> {
    match result {
        // The secrets are listed only if an error comes: most streams never need them.
        Ok(stream) => Ok((stream, SecretSource::of(ep))),
        Err(e) => Err(e.scrubbed(&Secrets::of(ep))),
    }
}

/// A stream as it leaves the crate: every error it yields scrubbed of its endpoint's secrets,
/// and the replica it came from counted busy until it is dropped. One layer for both, as each
/// layer is a call through a pointer on every chunk.
struct Delivered {
    stream: ChunkStream,
    source: SecretSource,
    _replica: Option<Box<dyn Send + Sync>>,
}

impl Stream for Delivered {
    type Item = Result<Chunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = ready!(self.stream.as_mut().poll_next(cx));
        Poll::Ready(item.map(|r| r.map_err(|e| e.scrubbed(&self.source.secrets()))))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.stream.size_hint()
    }
}

type ByteStream = BodyDataStream<upstream::Body>;

struct StreamState {
    body: ByteStream,
    decoder: SseDecoder,
    pending: std::collections::VecDeque<Result<Chunk, ProviderError>>,
    timer: ReadTimer,
    clock: StreamClock,
    finished: bool,
    events: EventReader,
}

impl Stream for StreamState {
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
                    let (decoder, mut out) = s.split();
                    decoder.push_each(&bytes, |event| out.handle(event));
                }
                Ok(None) => {
                    let (decoder, mut out) = s.split();
                    decoder.finish_each(|event| out.handle(event));
                    if !s.finished {
                        // The body ended without [DONE]: the server or the network cut it.
                        s.pending.push_back(Err(ProviderError::Stream(
                            "the stream ended before [DONE]".into(),
                        )));
                    }
                    s.finished = true;
                }
            }
        }
    }

    /// At least the events already decoded, and exactly those once the body has ended: a
    /// relay groups what is ready (the stream's end included) without polling the network
    /// again, which on a slow stream would only arm the timer and read a socket that has
    /// nothing yet.
    fn size_hint(&self) -> (usize, Option<usize>) {
        (
            self.pending.len(),
            self.finished.then_some(self.pending.len()),
        )
    }
}

impl StreamState {
    /// The decoder, and what handles the events it decodes: apart, so each event is handled
    /// as it is decoded without moving the decoder out of the state and back for every read.
    fn split(&mut self) -> (&mut SseDecoder, Decoded<'_>) {
        let StreamState {
            decoder,
            pending,
            clock,
            finished,
            events,
            ..
        } = self;
        let out = Decoded {
            pending,
            clock,
            finished,
            events,
        };
        (decoder, out)
    }
}

/// Where a stream's decoded events go.
struct Decoded<'a> {
    pending: &'a mut std::collections::VecDeque<Result<Chunk, ProviderError>>,
    clock: &'a mut StreamClock,
    finished: &'a mut bool,
    events: &'a mut EventReader,
}

impl Decoded<'_> {
    fn handle(&mut self, event: SseRef<'_>) {
        if *self.finished {
            return;
        }
        let data = match event {
            SseRef::Done => {
                *self.finished = true;
                return;
            }
            SseRef::TooLarge(bytes) => {
                self.pending.push_back(Err(ProviderError::TooLarge {
                    what: "an SSE event",
                    limit: "max_event_bytes",
                    bytes,
                }));
                return;
            }
            SseRef::Data { data, .. } => data,
        };
        let chunk = match self.events.chunk(data) {
            Ok(chunk) => chunk,
            Err(e) => {
                self.pending.push_back(Err(e));
                return;
            }
        };
        if chunk.is_token() {
            self.clock.seen_token = true;
        }
        self.pending.push_back(Ok(chunk));
    }
}

/// A stream whose connection failed after it began, with the cause when one is known.
pub(crate) fn broken_stream(e: &BoxError) -> ProviderError {
    let (cause, detail) = limits::connect_cause(&**e);
    ProviderError::Stream(match cause {
        ConnectCause::Reset => format!("connection reset by the model server ({detail})"),
        ConnectCause::Closed => format!("the model server closed the connection ({detail})"),
        _ => format!("connection broke: {e}"),
    })
}

/// `scheme://host:port` of a URL, the unit connections are pooled by.
fn origin(url: &str) -> &str {
    // A byte scan: `str::find` with a three-byte pattern sets up a substring searcher, which
    // cost more than the rest of looking the client up.
    let after_scheme = url
        .as_bytes()
        .windows(3)
        .position(|w| w == b"://")
        .map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_pool_per_host() {
        assert_eq!(origin("http://gpu-1:8000/v1"), "http://gpu-1:8000");
        assert_eq!(origin("https://h/v1/"), "https://h");
        assert_eq!(origin("http://h"), "http://h");
        assert_eq!(origin("gpu-1:8000/v1"), "gpu-1:8000");
        assert_eq!(origin("http:/x"), "http:");
        assert_eq!(origin(""), "");
    }
}
