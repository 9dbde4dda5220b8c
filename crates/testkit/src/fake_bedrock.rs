//! A Bedrock Runtime stand-in on 127.0.0.1:0. Every request's SigV4 signature is recomputed
//! independently (see `sigv4_check`) and a wrong one refused as Bedrock does; streams are real
//! `application/vnd.amazon.eventstream` frames made with the official encoder.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

use crate::fake_openai::Recorded;
use crate::sigv4_check;

pub const ACCESS_KEY: &str = "AKIDHEARTHTEST000001";
pub const SECRET_KEY: &str = "hearth/test/secret/SECRET-MARKER-7f3a9c";
pub const API_KEY: &str = "bedrock-api-key-SECRET-MARKER-7f3a9c";
pub const REGION: &str = "eu-central-1";

#[derive(Clone, Debug)]
pub enum BedrockReply {
    /// A normal answer in these pieces.
    Text {
        chunks: Vec<String>,
        stop_reason: &'static str,
    },
    /// Converse only: `text` (left out when empty), then one `toolUse` block per call, ending
    /// in `stopReason: tool_use`. A call is `(toolUseId, name, input pieces)`: streamed, each
    /// piece is one `contentBlockDelta`; whole, the joined pieces are the parsed `input`.
    ToolUse {
        text: String,
        calls: Vec<(String, String, Vec<String>)>,
    },
    /// An HTTP error with `x-amzn-ErrorType`.
    Error {
        status: u16,
        error_type: &'static str,
        message: &'static str,
    },
    /// `chunks`, then a frame whose CRC is wrong.
    CorruptCrc { chunks: Vec<String> },
    /// `chunks`, then an exception frame.
    Exception {
        chunks: Vec<String>,
        exception_type: &'static str,
        message: &'static str,
    },
    /// `chunks`, then half a frame and the end of the body.
    CutMidFrame { chunks: Vec<String> },
}

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<BedrockReply>>,
    seen: Mutex<Vec<Recorded>>,
}

pub struct FakeBedrock {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _server: tokio::task::JoinHandle<()>,
}

impl FakeBedrock {
    pub async fn start() -> FakeBedrock {
        let shared = Arc::new(Shared::default());
        let app = Router::new()
            .route("/model/{id}/{op}", post(answer))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(listener, app).await;
        });
        FakeBedrock {
            addr,
            shared,
            _server: server,
        }
    }

    /// The endpoint override a deployment registers (a VPC endpoint, as far as Hearth knows).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn script(&self, reply: BedrockReply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.seen.lock().unwrap().clone()
    }

    pub fn last(&self) -> Recorded {
        self.requests()
            .pop()
            .expect("the stand-in received a request")
    }
}

fn error(status: u16, error_type: &str, message: &str) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        axum::Json(json!({"message": message})),
    )
        .into_response();
    r.headers_mut().insert(
        "x-amzn-errortype",
        format!("{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")
            .parse()
            .unwrap(),
    );
    r
}

async fn answer(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((id, op)): Path<(String, String)>,
    uri: Uri,
    version: axum::http::Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let verdict = if let Some(token) = auth.strip_prefix("Bearer ") {
        if token == API_KEY {
            Ok(())
        } else {
            Err("unknown Bedrock API key".to_string())
        }
    } else {
        sigv4_check::verify(
            "POST",
            uri.path(),
            uri.query().unwrap_or(""),
            &pairs,
            &body,
            ACCESS_KEY,
            SECRET_KEY,
            REGION,
        )
    };
    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    shared.seen.lock().unwrap().push(Recorded {
        path: uri.path().to_string(),
        query: uri.query().map(str::to_owned),
        headers,
        body: parsed.clone(),
        peer,
        version,
    });
    if let Err(why) = verdict {
        return error(
            403,
            "InvalidSignatureException",
            &format!(
                "The request signature we calculated does not match the signature you provided. ({why})"
            ),
        );
    }
    let reply = shared
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(BedrockReply::Text {
            chunks: vec!["bedrock answer".into()],
            stop_reason: "end_turn",
        });
    let converse = op.starts_with("converse");
    let stream = op.ends_with("stream");
    let _ = id;
    match reply {
        BedrockReply::Error {
            status,
            error_type,
            message,
        } => error(status, error_type, message),
        BedrockReply::Text {
            chunks,
            stop_reason,
        } if !stream => whole(converse, &chunks.concat(), stop_reason),
        BedrockReply::Text {
            chunks,
            stop_reason,
        } => frames(converse, &chunks, Some(stop_reason), Tail::None),
        BedrockReply::ToolUse { text, calls } if !stream => tool_whole(&text, &calls),
        BedrockReply::ToolUse { text, calls } => tool_frames(&text, &calls),
        BedrockReply::CorruptCrc { chunks } => frames(converse, &chunks, None, Tail::Corrupt),
        BedrockReply::Exception {
            chunks,
            exception_type,
            message,
        } => frames(
            converse,
            &chunks,
            None,
            Tail::Exception(exception_type, message),
        ),
        BedrockReply::CutMidFrame { chunks } => frames(converse, &chunks, None, Tail::Cut),
    }
}

fn whole(converse: bool, text: &str, stop_reason: &str) -> Response {
    let body = if converse {
        json!({"output": {"message": {"role": "assistant", "content": [{"text": text}]}}, "stopReason": stop_reason,
            "usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}, "metrics": {"latencyMs": 12}})
    } else {
        json!({"outputs": [{"text": text, "stop_reason": if stop_reason == "end_turn" { "stop" } else { stop_reason }}]})
    };
    axum::Json(body).into_response()
}

fn tool_whole(text: &str, calls: &[(String, String, Vec<String>)]) -> Response {
    let mut content = Vec::new();
    if !text.is_empty() {
        content.push(json!({"text": text}));
    }
    for (id, name, pieces) in calls {
        let input: Value = serde_json::from_str(&pieces.concat()).unwrap();
        content.push(json!({"toolUse": {"toolUseId": id, "name": name, "input": input}}));
    }
    axum::Json(
        json!({"output": {"message": {"role": "assistant", "content": content}},
        "stopReason": "tool_use", "usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13},
        "metrics": {"latencyMs": 12}}),
    )
    .into_response()
}

fn tool_frames(text: &str, calls: &[(String, String, Vec<String>)]) -> Response {
    let mut out = event("messageStart", json!({"role": "assistant"}));
    let mut index = 0;
    if !text.is_empty() {
        out.extend(event(
            "contentBlockDelta",
            json!({"contentBlockIndex": 0, "delta": {"text": text}}),
        ));
        out.extend(event("contentBlockStop", json!({"contentBlockIndex": 0})));
        index = 1;
    }
    for (id, name, pieces) in calls {
        out.extend(event(
            "contentBlockStart",
            json!({"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": id, "name": name}}}),
        ));
        for p in pieces {
            out.extend(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": index, "delta": {"toolUse": {"input": p}}, "p": "abc"}),
            ));
        }
        out.extend(event(
            "contentBlockStop",
            json!({"contentBlockIndex": index}),
        ));
        index += 1;
    }
    out.extend(event("messageStop", json!({"stopReason": "tool_use"})));
    out.extend(event("metadata", json!({"usage": {"inputTokens": 9, "outputTokens": 5, "totalTokens": 14}, "metrics": {"latencyMs": 12}})));
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    r
}

enum Tail {
    None,
    Corrupt,
    Exception(&'static str, &'static str),
    Cut,
}

fn frame(message_type: &str, type_header: &str, kind: &str, payload: &Value) -> Vec<u8> {
    let message = Message::new(Bytes::from(serde_json::to_vec(payload).unwrap()))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String(message_type.to_string().into()),
        ))
        .add_header(Header::new(
            type_header.to_string(),
            HeaderValue::String(kind.to_string().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".to_string().into()),
        ));
    let mut out = Vec::new();
    aws_smithy_eventstream::frame::write_message_to(&message, &mut out).unwrap();
    out
}

fn event(kind: &str, payload: Value) -> Vec<u8> {
    frame("event", ":event-type", kind, &payload)
}

fn invoke_chunk(inner: Value) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&inner).unwrap());
    event("chunk", json!({"bytes": b64}))
}

fn frames(converse: bool, chunks: &[String], stop: Option<&str>, tail: Tail) -> Response {
    let mut out = Vec::new();
    if converse {
        out.extend(event("messageStart", json!({"role": "assistant"})));
        for c in chunks {
            out.extend(event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": c}, "p": "abcdef"}),
            ));
        }
        if let Some(reason) = stop {
            out.extend(event("contentBlockStop", json!({"contentBlockIndex": 0})));
            out.extend(event("messageStop", json!({"stopReason": reason})));
            out.extend(event("metadata", json!({"usage": {"inputTokens": 9, "outputTokens": chunks.len(), "totalTokens": 9 + chunks.len()}, "metrics": {"latencyMs": 12}})));
        }
    } else {
        for c in chunks {
            out.extend(invoke_chunk(
                json!({"outputs": [{"text": c, "stop_reason": null}]}),
            ));
        }
        if stop.is_some() {
            out.extend(invoke_chunk(json!({"outputs": [{"text": "", "stop_reason": "stop"}],
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": chunks.len(), "invocationLatency": 20, "firstByteLatency": 5}})));
        }
    }
    match tail {
        Tail::None => {}
        Tail::Corrupt => {
            let mut bad = event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "x"}}),
            );
            let at = bad.len() - 6;
            bad[at] ^= 0xFF; // a payload byte: the message CRC no longer matches
            out.extend(bad);
        }
        Tail::Exception(kind, message) => out.extend(frame(
            "exception",
            ":exception-type",
            kind,
            &json!({"message": message}),
        )),
        Tail::Cut => {
            let next = event(
                "contentBlockDelta",
                json!({"contentBlockIndex": 0, "delta": {"text": "never"}}),
            );
            out.extend_from_slice(&next[..next.len() / 2]);
        }
    }
    let mut r = Response::new(Body::from(out));
    r.headers_mut().insert(
        "content-type",
        "application/vnd.amazon.eventstream".parse().unwrap(),
    );
    r
}
