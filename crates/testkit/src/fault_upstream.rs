//! A model server that misbehaves at the byte level, on raw TCP so that nothing between it and
//! the wire tidies its faults up: it stalls, drips, resets, floods, breaks the format, or
//! echoes the credentials it was sent. Every connection gets the same [`Fault`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does once it has read a request.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Nothing listens: the port was bound once and released.
    Refuse,
    /// Reads the request and never answers.
    HangBeforeHeaders,
    /// Sends `200` SSE headers, then nothing.
    HeadersThenHang,
    /// Sends `200` SSE headers, then a valid stream one byte every `every`.
    Drip { every: Duration },
    /// Resets the connection (RST) right after reading the request.
    ResetAfterRequest,
    /// Sends `200` SSE headers and one event, then resets the connection.
    ResetMidStream,
    /// Sends an error status whose body never completes.
    StalledErrorBody { status: u16 },
    /// A `200` SSE answer whose first line is `data: ` and `bytes` more bytes, no newline.
    HugeLine { bytes: usize },
    /// A `200` JSON answer of more than `bytes` bytes, without a length (read until close).
    HugeBody { bytes: usize },
    /// A `200` event-stream answer whose first frame declares itself `bytes` long.
    HugeFrame { bytes: u32 },
    /// A `200` SSE answer whose event is not JSON.
    MalformedSse,
    /// A `200` SSE answer whose text holds bytes that are not UTF-8.
    InvalidUtf8,
    /// An error status whose message repeats the request's credential headers
    /// (`authorization`, `api-key`, `x-amz-security-token`), as some servers do.
    EchoCredentials { status: u16 },
    /// A `200` `application/json` completion, whatever the request asked for.
    JsonToStream,
}

/// How the connection ends after the answer is written.
#[derive(Clone, Copy)]
enum End {
    Close,
    Hang,
    Reset,
}

/// What to write: an optional head, a body, then `filler` bytes of `x`, paced by `pace`.
struct Plan {
    head: Option<String>,
    body: Vec<u8>,
    filler: usize,
    pace: Option<Duration>,
    end: End,
}

const SSE: &str = "text/event-stream";
const COMPLETION: &str = r#"{"id":"c","object":"text_completion","choices":[{"index":0,"text":"hi","finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;

fn head(status: u16, content_type: &str, length: Option<usize>) -> String {
    let mut h =
        format!("HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\nconnection: close\r\n");
    if let Some(n) = length {
        h.push_str(&format!("content-length: {n}\r\n"));
    }
    h + "\r\n"
}

fn plan(fault: &Fault, request: &str) -> Plan {
    let p = |head: Option<String>, body: &[u8], end| Plan {
        head,
        body: body.to_vec(),
        filler: 0,
        pace: None,
        end,
    };
    let sse = || Some(head(200, SSE, None));
    let event = br#"data: {"choices":[{"index":0,"text":"hi","finish_reason":null}]}"#;
    match fault {
        Fault::Refuse | Fault::HangBeforeHeaders => p(None, b"", End::Hang),
        Fault::HeadersThenHang => p(sse(), b"", End::Hang),
        Fault::Drip { every } => Plan {
            pace: Some(*every),
            ..p(sse(), &[&event[..], b"\n\ndata: [DONE]\n\n"].concat(), End::Close)
        },
        Fault::ResetAfterRequest => p(None, b"", End::Reset),
        Fault::ResetMidStream => p(sse(), &[&event[..], b"\n\n"].concat(), End::Reset),
        Fault::StalledErrorBody { status } => p(
            Some(head(*status, "application/json", Some(1000))),
            br#"{"error":{"message":"the GPU is on fi"#,
            End::Hang,
        ),
        Fault::HugeLine { bytes } => Plan {
            filler: *bytes,
            ..p(sse(), b"data: ", End::Hang)
        },
        Fault::HugeBody { bytes } => Plan {
            filler: *bytes,
            ..p(
                Some(head(200, "application/json", None)),
                br#"{"choices":[{"text":""#,
                End::Close,
            )
        },
        Fault::HugeFrame { bytes } => {
            let mut prelude = bytes.to_be_bytes().to_vec();
            prelude.extend_from_slice(&[0; 8]);
            p(
                Some(head(200, "application/vnd.amazon.eventstream", None)),
                &prelude,
                End::Hang,
            )
        }
        Fault::MalformedSse => p(sse(), b"data: {not json\n\ndata: [DONE]\n\n", End::Close),
        Fault::InvalidUtf8 => p(
            sse(),
            b"data: {\"choices\":[{\"index\":0,\"text\":\"a\xff\xfeb\",\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n",
            End::Close,
        ),
        Fault::EchoCredentials { status } => {
            let echoed: Vec<String> = request
                .lines()
                .filter_map(|l| l.split_once(':'))
                .filter(|(k, _)| {
                    ["authorization", "api-key", "x-amz-security-token"]
                        .contains(&k.trim().to_ascii_lowercase().as_str())
                })
                .map(|(k, v)| format!("{}: {}", k.trim(), v.trim()))
                .collect();
            let message = format!(
                "Incorrect API key provided: {}. You can find your API key at https://example.com.",
                echoed.join("; ")
            );
            // Both shapes: OpenAI's envelope and Bedrock's top-level `message`.
            let body = serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_api_key"}, "message": message}).to_string();
            p(
                Some(head(*status, "application/json", Some(body.len()))),
                body.as_bytes(),
                End::Close,
            )
        }
        Fault::JsonToStream => p(
            Some(head(200, "application/json", Some(COMPLETION.len()))),
            COMPLETION.as_bytes(),
            End::Close,
        ),
    }
}

pub struct FaultUpstream {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    _server: Option<tokio::task::JoinHandle<()>>,
}

impl FaultUpstream {
    pub async fn start(fault: Fault) -> FaultUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        if matches!(fault, Fault::Refuse) {
            drop(listener);
            return FaultUpstream {
                addr,
                requests,
                _server: None,
            };
        }
        let seen = requests.clone();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (fault, seen) = (fault.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve(socket, &fault, &seen).await;
                });
            }
        });
        FaultUpstream {
            addr,
            requests,
            _server: Some(server),
        }
    }

    /// A TLS server whose certificate (self-signed, for `localhost` and 127.0.0.1) no client
    /// trusts, so every handshake fails at the client with an unknown issuer.
    pub async fn start_untrusted_tls() -> FaultUpstream {
        // Nothing trusts the pair in `tls/`.
        let acceptor = crate::tls::self_signed_acceptor(&[]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(socket).await;
                });
            }
        });
        FaultUpstream {
            addr,
            requests: Arc::default(),
            _server: Some(server),
        }
    }

    /// The OpenAI-style base URL (`…/v1`).
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// The bare origin, as Azure and Bedrock endpoints are given.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The heads of the requests received so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FaultUpstream {
    fn drop(&mut self) {
        if let Some(s) = &self._server {
            s.abort();
        }
    }
}

async fn serve(
    mut socket: TcpStream,
    fault: &Fault,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let request = read_request(&mut socket).await?;
    seen.lock().unwrap().push(request.clone());
    let plan = plan(fault, &request);
    if let Some(h) = &plan.head {
        socket.write_all(h.as_bytes()).await?;
    }
    match plan.pace {
        Some(every) => {
            for b in &plan.body {
                socket.write_all(&[*b]).await?;
                tokio::time::sleep(every).await;
            }
        }
        None => socket.write_all(&plan.body).await?,
    }
    let piece = vec![b'x'; 64 << 10];
    let mut left = plan.filler;
    while left > 0 {
        let n = left.min(piece.len());
        socket.write_all(&piece[..n]).await?;
        left -= n;
    }
    socket.flush().await?;
    match plan.end {
        End::Close => socket.shutdown().await,
        End::Hang => {
            // Held open until the client gives up; the read ends when it does.
            let mut sink = [0u8; 1024];
            while socket.read(&mut sink).await? > 0 {}
            Ok(())
        }
        End::Reset => {
            // Deprecated because a non-zero linger blocks the thread on drop; a zero one
            // does not, and it is the only way to make the kernel send RST.
            #[allow(deprecated)]
            socket.set_linger(Some(Duration::ZERO))?;
            drop(socket);
            Ok(())
        }
    }
}

/// Reads one request's head and body (all of it, so closing sends FIN rather than RST).
async fn read_request(socket: &mut TcpStream) -> std::io::Result<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = socket.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Ok(head)
}
