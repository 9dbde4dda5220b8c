//! A scriptable OpenAI-compatible model server on 127.0.0.1:0. It records every request and
//! answers with the next scripted [`Reply`], or echoes a fixed text when the script is empty.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A normal answer: streamed as these chunks when the request streams, else joined.
    Text {
        chunks: Vec<String>,
        finish: &'static str,
    },
    /// Like `Text`, but the SSE bytes are written in pieces of this many bytes (splitting
    /// events and UTF-8 characters anywhere).
    TextSplit { chunks: Vec<String>, piece: usize },
    /// An HTTP error with this body and headers.
    Error {
        status: u16,
        body: String,
        headers: Vec<(String, String)>,
    },
    /// `chunks`, then an error event, then `[DONE]`.
    FailMidStream { chunks: Vec<String>, error: Value },
    /// `chunks`, then the connection closes without `[DONE]`.
    Cut { chunks: Vec<String> },
    /// Waits before sending the response headers.
    StallBeforeHeaders(Duration),
    /// Sends `chunks`, then waits before the next.
    StallAfter { chunks: Vec<String>, wait: Duration },
    /// Streams `count` chunks, one every `every`, and notes whether the client left early.
    Slow { count: usize, every: Duration },
    /// Streams `count` chunks of `size` bytes of text as fast as the client takes them, and
    /// notes whether the client left early (fills every buffer of a client that does not read).
    Flood { count: usize, size: usize },
    /// `chunks`, then a chunk whose `finish_reason` is `content_filter` (Azure's filter).
    ContentFiltered { chunks: Vec<String> },
    /// The model calls these tools, `(id, name, arguments JSON)`, with `finish_reason:
    /// "tool_calls"`. Streamed as OpenAI does: each call's id and name first, then its
    /// arguments in two pieces.
    ToolCalls(Vec<(String, String, String)>),
    /// This JSON text as the whole answer's (or each streamed chunk's) message content, with
    /// `logprobs` on the choice: for structured output and logprobs round trips.
    WithLogprobs { content: String, logprobs: Value },
}

/// A request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Value,
    /// The client's address: one per TCP connection, so requests that share it shared one.
    pub peer: SocketAddr,
    /// The HTTP version the request came over.
    pub version: axum::http::Version,
}

#[derive(Default)]
struct Shared {
    /// Keep no record of requests (for load tests, where the record would only grow).
    quiet: bool,
    /// The answer to a streamed request when the script is empty: `Reply::Slow` with these
    /// (count, every) instead of the default text (for memory tests holding streams open).
    slow_default: Mutex<Option<(usize, Duration)>>,
    script: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<Recorded>>,
    /// Slow streams whose client went away before the end.
    abandoned: AtomicUsize,
    /// Slow-stream chunks actually written.
    slow_chunks_sent: AtomicUsize,
    /// Azure mode: the `api-key` every `/openai/...` request must carry, and the deployments
    /// that exist.
    azure_key: Mutex<Option<String>>,
    azure_deployments: Mutex<Vec<String>>,
    /// What `GET /v1/models` lists; `["fake"]` until set.
    models: Mutex<Option<Vec<String>>>,
    /// The bearer key every `/v1/...` request must carry, when set.
    required_key: Mutex<Option<String>>,
}

pub struct FakeUpstream {
    pub addr: SocketAddr,
    /// Serving HTTPS ([`start_tls_on`](Self::start_tls_on)).
    tls: bool,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    pub async fn start() -> FakeUpstream {
        Self::start_on("127.0.0.1:0", false).await
    }

    /// Starts on `addr`; `quiet` keeps no record of requests.
    pub async fn start_on(addr: &str, quiet: bool) -> FakeUpstream {
        let (shared, app, listener, addr) = bind(addr, quiet).await;
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        FakeUpstream {
            addr,
            tls: false,
            shared,
            _server: server,
        }
    }

    /// Like [`start_on`](Self::start_on), over TLS with the self-signed pair in `tls/`
    /// (`localhost`, 127.0.0.1), offering HTTP/2 and HTTP/1.1 by ALPN. An HTTP/2 connection
    /// takes any number of concurrent streams, so one connection can carry every stream of a
    /// load test. A client trusts it by taking `tls/self-signed.crt` as a root (Hearth:
    /// `SSL_CERT_FILE`).
    pub async fn start_tls_on(addr: &str, quiet: bool) -> FakeUpstream {
        let (shared, app, listener, addr) = bind(addr, quiet).await;
        let acceptor = crate::tls::self_signed_acceptor(&[b"h2", b"http/1.1"]);
        let server = tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder.http2().max_concurrent_streams(None);
            while let Ok((socket, peer)) = listener.accept().await {
                let (acceptor, builder) = (acceptor.clone(), builder.clone());
                let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
                tokio::spawn(async move {
                    let _ = socket.set_nodelay(true);
                    let Ok(tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    let service = TowerToHyperService::new(app);
                    let _ = builder.serve_connection(TokioIo::new(tls), service).await;
                });
            }
        });
        FakeUpstream {
            addr,
            tls: true,
            shared,
            _server: server,
        }
    }

    /// The endpoint to register: `http://127.0.0.1:PORT/v1` (`https://` over TLS).
    pub fn endpoint(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/v1", self.addr)
    }

    /// Makes the `/openai/...` routes behave as an Azure OpenAI resource with this key and
    /// these deployments.
    pub fn azure(&self, api_key: &str, deployments: &[&str]) {
        *self.shared.azure_key.lock().unwrap() = Some(api_key.to_string());
        *self.shared.azure_deployments.lock().unwrap() =
            deployments.iter().map(|d| d.to_string()).collect();
    }

    /// The endpoint an Azure deployment registers: `http://127.0.0.1:PORT`.
    pub fn azure_endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The names `GET /v1/models` lists.
    pub fn serve_models(&self, names: &[&str]) {
        *self.shared.models.lock().unwrap() = Some(names.iter().map(|n| n.to_string()).collect());
    }

    /// Every `/v1/...` request without `Authorization: Bearer <key>` gets 401, as vLLM's
    /// `--api-key` does.
    pub fn require_key(&self, key: &str) {
        *self.shared.required_key.lock().unwrap() = Some(key.to_string());
    }

    /// Answers every streamed request the script does not cover as `Reply::Slow { count,
    /// every }`; non-streamed requests keep the default answer.
    pub fn slow_by_default(&self, count: usize, every: Duration) {
        *self.shared.slow_default.lock().unwrap() = Some((count, every));
    }

    pub fn script(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the upstream received a request")
    }

    pub fn abandoned(&self) -> usize {
        self.shared.abandoned.load(Ordering::SeqCst)
    }

    pub fn slow_chunks_sent(&self) -> usize {
        self.shared.slow_chunks_sent.load(Ordering::SeqCst)
    }
}

/// A fresh record, the routes serving it, and the listener on `addr` (and its address).
async fn bind(
    addr: &str,
    quiet: bool,
) -> (Arc<Shared>, Router, tokio::net::TcpListener, SocketAddr) {
    let shared = Arc::new(Shared {
        quiet,
        ..Default::default()
    });
    let app = routes(shared.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let addr = listener.local_addr().unwrap();
    (shared, app, listener, addr)
}

/// Every route the fake serves: vLLM's, Azure's (both URL shapes) and the model list.
fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/completions", post(answer))
        .route("/v1/chat/completions", post(answer))
        .route("/openai/deployments/{deployment}/completions", post(answer))
        .route(
            "/openai/deployments/{deployment}/chat/completions",
            post(answer),
        )
        .route("/openai/v1/completions", post(answer))
        .route("/openai/v1/chat/completions", post(answer))
        .route("/v1/models", get(models))
        .with_state(shared)
}

const DEFAULT_TEXT: &str = "fake completion";

/// vLLM's answer to a missing or wrong `--api-key`.
fn unauthorized(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let want = shared.required_key.lock().unwrap().clone()?;
    let got = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    (got != Some(want.as_str())).then(|| {
        (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": "Unauthorized"})),
        )
            .into_response()
    })
}

async fn models(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(refusal) = unauthorized(&shared, &headers) {
        return refusal;
    }
    let names = shared
        .models
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| vec!["fake".into()]);
    let data: Vec<Value> = names
        .iter()
        .map(|n| json!({"id": n, "object": "model"}))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let chat = uri.path().ends_with("/chat/completions");
    let stream = body["stream"].as_bool().unwrap_or(false);
    let usage = body["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let azure = uri.path().starts_with("/openai/");
    let azure_refusal = if azure {
        azure_check(&shared, &uri, &headers, &body)
    } else {
        None
    };
    let headers_copy = headers.clone();
    if !shared.quiet {
        shared.seen.lock().unwrap().push(Recorded {
            path: uri.path().to_string(),
            query: uri.query().map(str::to_owned),
            headers,
            body,
            peer,
            version,
        });
    }
    if let Some(refusal) = azure_refusal {
        return refusal;
    }
    if !azure && let Some(refusal) = unauthorized(&shared, &headers_copy) {
        return refusal;
    }
    let scripted = shared.script.lock().unwrap().pop_front();
    let slow_default = *shared.slow_default.lock().unwrap();
    let reply = match (scripted, slow_default) {
        (Some(reply), _) => reply,
        (None, Some((count, every))) if stream => Reply::Slow { count, every },
        (None, _) => Reply::Text {
            chunks: vec![DEFAULT_TEXT.into()],
            finish: "stop",
        },
    };
    let f = Frames { chat, usage, azure };
    match reply {
        Reply::Text { chunks, finish } if !stream => f.whole(&chunks.concat(), finish),
        Reply::Text { chunks, finish } => sse(f.events(&chunks, Some(finish), true), None),
        Reply::TextSplit { chunks, .. } if !stream => f.whole(&chunks.concat(), "stop"),
        Reply::TextSplit { chunks, piece } => {
            sse(f.events(&chunks, Some("stop"), true), Some(piece))
        }
        Reply::Error {
            status,
            body,
            headers,
        } => {
            let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
            for (k, v) in headers {
                r.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            r
        }
        Reply::FailMidStream { chunks, error } => {
            let mut events = f.events(&chunks, None, false);
            events.push(format!("data: {error}\n\n"));
            events.push("data: [DONE]\n\n".into());
            sse(events, None)
        }
        Reply::Cut { chunks } => sse(f.events(&chunks, None, false), None),
        Reply::ContentFiltered { chunks } if !stream => f.whole(&chunks.concat(), "content_filter"),
        Reply::ContentFiltered { chunks } => {
            sse(f.events(&chunks, Some("content_filter"), true), None)
        }
        Reply::ToolCalls(calls) if !stream => f.whole_message(
            json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)|
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()}),
            Value::Null,
            "tool_calls",
        ),
        Reply::ToolCalls(calls) => {
            let mut events = Vec::new();
            for (i, (id, name, args)) in calls.iter().enumerate() {
                events.push(f.delta(json!({"tool_calls": [{"index": i, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""}}]}), Value::Null, None));
                let half = args.len() / 2;
                let cut = (0..=half).rev().find(|c| args.is_char_boundary(*c)).unwrap_or(0);
                for piece in [&args[..cut], &args[cut..]] {
                    events.push(f.delta(json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), Value::Null, None));
                }
            }
            events.push(f.delta(json!({}), Value::Null, Some("tool_calls")));
            events.push("data: [DONE]\n\n".into());
            sse(events, None)
        }
        Reply::WithLogprobs { content, logprobs } if !stream => f.whole_message(
            json!({"role": "assistant", "content": content}),
            logprobs,
            "stop",
        ),
        Reply::WithLogprobs { content, logprobs } => sse(
            vec![
                f.delta(json!({"content": content}), logprobs, None),
                f.delta(json!({}), Value::Null, Some("stop")),
                "data: [DONE]\n\n".into(),
            ],
            None,
        ),
        Reply::StallBeforeHeaders(wait) => {
            tokio::time::sleep(wait).await;
            f.whole(DEFAULT_TEXT, "stop")
        }
        Reply::StallAfter { chunks, wait } => {
            let events = f.events(&chunks, None, false);
            let s = futures_util::stream::iter(
                events
                    .into_iter()
                    .map(|e| Ok::<_, std::convert::Infallible>(Bytes::from(e))),
            )
            .chain(futures_util::stream::once(async move {
                tokio::time::sleep(wait).await;
                Ok(Bytes::from_static(b"data: [DONE]\n\n"))
            }));
            stream_response(Body::from_stream(s))
        }
        Reply::Slow { count, every } => {
            paced(shared, f, count, Some(every), |i| format!("tok{i} "))
        }
        Reply::Flood { count, size } => paced(shared, f, count, None, move |_| "x".repeat(size)),
    }
}

/// `count` chunks made by `text`, each after `every` (or at once), then `[DONE]`; the body
/// counts itself abandoned if dropped first.
fn paced(
    shared: Arc<Shared>,
    f: Frames,
    count: usize,
    every: Option<Duration>,
    text: impl Fn(usize) -> String + Send + Sync + 'static,
) -> Response {
    let guard = Abandon {
        shared,
        finished: false,
    };
    let text = Arc::new(text);
    let s = futures_util::stream::unfold((0usize, guard, f), move |(i, mut guard, f)| {
        let text = text.clone();
        async move {
            if i > count {
                return None;
            }
            if i == count {
                guard.finished = true;
                return Some((
                    Ok::<_, std::convert::Infallible>(Bytes::from_static(b"data: [DONE]\n\n")),
                    (i + 1, guard, f),
                ));
            }
            match every {
                Some(every) => tokio::time::sleep(every).await,
                None => tokio::task::yield_now().await,
            }
            guard.shared.slow_chunks_sent.fetch_add(1, Ordering::SeqCst);
            let event = f.event(&text(i), None);
            Some((Ok(Bytes::from(event)), (i + 1, guard, f)))
        }
    });
    stream_response(Body::from_stream(s))
}

use futures_util::StreamExt;

/// Counts a slow stream as abandoned when its body is dropped before the end.
struct Abandon {
    shared: Arc<Shared>,
    finished: bool,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if !self.finished {
            self.shared.abandoned.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[derive(Clone, Copy)]
struct Frames {
    chat: bool,
    usage: bool,
    azure: bool,
}

impl Frames {
    fn event(&self, text: &str, finish: Option<&str>) -> String {
        let choice = if self.chat {
            json!({"index": 0, "delta": {"content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        };
        format!(
            "data: {}\n\n",
            json!({"id": "up-1", "object": "x", "created": 1, "model": "fake", "choices": [choice]})
        )
    }

    fn events(&self, chunks: &[String], finish: Option<&str>, done: bool) -> Vec<String> {
        let mut out = Vec::new();
        if self.azure {
            // Azure opens with the prompt's filter results and no choices at all.
            out.push(format!(
                "data: {}\n\n",
                json!({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {"hate": {"filtered": false, "severity": "safe"}}}]})
            ));
        }
        out.extend(chunks.iter().map(|c| self.event(c, None)));
        if let Some(f) = finish {
            out.push(self.event("", Some(f)));
        }
        if done {
            if self.usage {
                out.push(format!(
                    "data: {}\n\n",
                    json!({"id": "up-1", "choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": chunks.len(), "total_tokens": 7 + chunks.len()}})
                ));
            }
            out.push("data: [DONE]\n\n".into());
        }
        out
    }

    /// A chat chunk with this delta (vLLM's `logprobs: null` when none).
    fn delta(&self, delta: Value, logprobs: Value, finish: Option<&str>) -> String {
        format!(
            "data: {}\n\n",
            json!({"id": "up-1", "object": "chat.completion.chunk", "created": 1, "model": "fake",
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})
        )
    }

    fn whole_message(&self, message: Value, logprobs: Value, finish: &str) -> Response {
        axum::Json(
            json!({"id": "up-1", "object": "chat.completion", "created": 1, "model": "fake",
                "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
                "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
        )
        .into_response()
    }

    fn whole(&self, text: &str, finish: &str) -> Response {
        let choice = if self.chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        };
        axum::Json(
            json!({"id": "up-1", "object": "x", "created": 1, "model": "fake", "choices": [choice],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}}),
        )
        .into_response()
    }
}

fn stream_response(body: Body) -> Response {
    let mut r = Response::new(body);
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

/// Writes the events, optionally in pieces of `piece` bytes with a pause between, so the
/// client really receives them split.
fn sse(events: Vec<String>, piece: Option<usize>) -> Response {
    let bytes: Vec<u8> = events.concat().into_bytes();
    match piece {
        None => stream_response(Body::from(bytes)),
        Some(n) => {
            let pieces: Vec<Vec<u8>> = bytes.chunks(n.max(1)).map(<[u8]>::to_vec).collect();
            let s = futures_util::stream::iter(pieces).then(|p| async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok::<_, std::convert::Infallible>(Bytes::from(p))
            });
            stream_response(Body::from_stream(s))
        }
    }
}

/// Azure's own refusals: a wrong key, a missing API version, an unknown deployment.
fn azure_check(
    shared: &Shared,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: &Value,
) -> Option<Response> {
    let refuse = |status: u16, code: &str, message: &str| {
        Some(
            (
                StatusCode::from_u16(status).unwrap(),
                axum::Json(json!({"error": {"code": code, "message": message}})),
            )
                .into_response(),
        )
    };
    let key = shared.azure_key.lock().unwrap().clone();
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let bearer = format!("Bearer {}", key.as_deref().unwrap_or_default());
    // Either the resource key in `api-key`, or an Entra token as Bearer.
    if let Some(key) = &key
        && header("api-key").as_deref() != Some(key.as_str())
        && header("authorization") != Some(bearer)
    {
        return refuse(
            401,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint.",
        );
    }
    let path = uri.path();
    let deployment = if let Some(rest) = path.strip_prefix("/openai/deployments/") {
        if !uri.query().unwrap_or_default().contains("api-version=") {
            return refuse(404, "404", "Resource not found");
        }
        rest.split('/').next().unwrap_or_default().to_string()
    } else {
        body["model"].as_str().unwrap_or_default().to_string()
    };
    if !shared
        .azure_deployments
        .lock()
        .unwrap()
        .contains(&deployment)
    {
        return refuse(
            404,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 minutes, please wait a moment and try again.",
        );
    }
    None
}
