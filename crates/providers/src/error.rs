//! Everything that can go wrong talking to a model server, with what the server said.

use std::time::Duration;

use crate::redact::Secrets;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeoutPhase {
    Connect,
    FirstToken,
    Total,
}

impl TimeoutPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::FirstToken => "first token",
            Self::Total => "total",
        }
    }
}

/// Why a connection to the model server failed, so each can be told with its fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectCause {
    /// The endpoint's host name does not resolve.
    DnsNotFound,
    /// Nothing listens on the port.
    Refused,
    /// The server (or something in between) reset the connection.
    Reset,
    /// The server closed the connection before it answered.
    Closed,
    /// The operating system gave up connecting.
    TimedOut,
    /// The TLS handshake failed; `certificate` when the server's certificate was refused.
    Tls {
        certificate: bool,
    },
    Other,
}

fn connect_text(endpoint: &str, cause: ConnectCause, detail: &str) -> String {
    match cause {
        ConnectCause::DnsNotFound => format!(
            "cannot connect to the model server at {endpoint}: its host name was not found ({detail}); check the host name in the endpoint"
        ),
        ConnectCause::Refused => format!(
            "cannot connect to the model server at {endpoint}: connection refused ({detail}); is the model server running and listening on that port?"
        ),
        ConnectCause::Reset => format!(
            "connection reset by the model server at {endpoint} ({detail}); check the model server's log, and that the endpoint's scheme (http or https) and port are the server's"
        ),
        ConnectCause::Closed => format!(
            "the model server at {endpoint} closed the connection without answering ({detail}); check the model server's log, and that the endpoint's scheme (http or https) and port are the server's"
        ),
        ConnectCause::TimedOut => format!(
            "cannot connect to the model server at {endpoint}: the connection timed out ({detail}); check that the host is reachable from Hearth (firewall, VPN, security group)"
        ),
        ConnectCause::Tls { certificate: true } => format!(
            "cannot connect to the model server at {endpoint}: the server's certificate is not trusted: {detail}; add its CA to this machine's trust store, or use the host name the certificate names"
        ),
        ConnectCause::Tls { certificate: false } => format!(
            "cannot connect to the model server at {endpoint}: the TLS handshake failed ({detail}); check that the server speaks HTTPS on that port, or use http://"
        ),
        ConnectCause::Other => {
            format!("cannot connect to the model server at {endpoint}: {detail}")
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    #[error("{}", connect_text(endpoint, *cause, message))]
    Connect {
        endpoint: String,
        cause: ConnectCause,
        message: String,
    },
    #[error("the model server did not answer in time ({} timeout of {} ms)", phase.as_str(), after.as_millis())]
    Timeout {
        phase: TimeoutPhase,
        after: Duration,
    },
    /// The server answered with an HTTP error.
    #[error("the model server answered {status}: {message}")]
    Upstream {
        status: u16,
        message: String,
        /// The error's own code when it has one (`content_filter`, `DeploymentNotFound`).
        code: Option<String>,
        retry_after: Option<String>,
    },
    /// The server sent something that is not the protocol.
    #[error("the model server sent an invalid answer: {0}")]
    Protocol(String),
    /// The server reported an error after the stream had started.
    #[error("the model server failed mid-stream: {0}")]
    Stream(String),
    /// The server sent more than one of Hearth's [`crate::UpstreamLimits`] allows.
    #[error("the model server sent {what} larger than the {} limit ({limit})", crate::limits::size_text(*bytes))]
    TooLarge {
        what: &'static str,
        limit: &'static str,
        bytes: usize,
    },
}

impl ProviderError {
    /// The error as it may leave this crate: every secret the endpoint carries redacted from
    /// upstream text, then long messages cut (in that order, so a cut cannot leave a key's
    /// prefix behind).
    pub(crate) fn scrubbed(self, secrets: &Secrets) -> ProviderError {
        let clean = |s: String| truncate(secrets.redact(&s));
        match self {
            ProviderError::Connect {
                endpoint,
                cause,
                message,
            } => ProviderError::Connect {
                endpoint,
                cause,
                message: clean(message),
            },
            ProviderError::Upstream {
                status,
                message,
                code,
                retry_after,
            } => ProviderError::Upstream {
                status,
                message: clean(message),
                code: code.map(clean),
                retry_after: retry_after.map(clean),
            },
            ProviderError::Protocol(m) => ProviderError::Protocol(clean(m)),
            ProviderError::Stream(m) => ProviderError::Stream(clean(m)),
            e @ (ProviderError::Timeout { .. } | ProviderError::TooLarge { .. }) => e,
        }
    }
}

/// Longest upstream message passed on; beyond it a server's HTML error page is noise.
const MAX_MESSAGE: usize = 500;

/// The `code` of an OpenAI-style error envelope, as text (vLLM sends an integer, Azure a name).
pub(crate) fn upstream_code(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    match &v["error"]["code"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Reads the message out of any of the error bodies OpenAI-compatible servers send: the
/// OpenAI envelope (vLLM's has an integer `code`), the older flat `{"object":"error",…}`,
/// the bare `{"error":"Unauthorized"}`, or plain text.
pub(crate) fn upstream_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let from_json = parsed.as_ref().and_then(|v| {
        v["error"]["message"]
            .as_str()
            .or_else(|| v["error"].as_str())
            .or_else(|| v["message"].as_str())
            .or_else(|| v["detail"].as_str())
            .map(str::to_owned)
    });
    let message = from_json.unwrap_or_else(|| text.trim().to_string());
    let message = if message.is_empty() {
        "no error message".to_string()
    } else {
        message
    };
    // Cut only after redaction, in `ProviderError::scrubbed`.
    message
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_shape_yields_its_message() {
        let envelope = br#"{"error":{"message":"max_tokens is too large","type":"BadRequestError","param":null,"code":400}}"#;
        assert_eq!(upstream_message(envelope), "max_tokens is too large");
        let flat = br#"{"object":"error","message":"The model `x` does not exist.","type":"NotFoundError","param":null,"code":404}"#;
        assert_eq!(upstream_message(flat), "The model `x` does not exist.");
        assert_eq!(
            upstream_message(br#"{"error":"Unauthorized"}"#),
            "Unauthorized"
        );
        assert_eq!(
            upstream_message(b"<html>Bad Gateway</html>"),
            "<html>Bad Gateway</html>"
        );
        assert_eq!(upstream_message(b""), "no error message");
        let long = upstream_message("é".repeat(400).as_bytes());
        assert!(truncate(long).ends_with('…'));
        assert_eq!(upstream_code(envelope).as_deref(), Some("400"));
        let azure = br#"{"error":{"code":"DeploymentNotFound","message":"The API deployment for this resource does not exist."}}"#;
        assert_eq!(upstream_code(azure).as_deref(), Some("DeploymentNotFound"));
        assert_eq!(upstream_code(br#"{"error":"Unauthorized"}"#), None);
    }
}

/// When a streamed answer must produce its first token, and when it must end.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamClock {
    first: tokio::time::Instant,
    total: tokio::time::Instant,
    timeouts: (Duration, Duration),
    /// Set once real text (or a finish) arrived; from then on only the total applies.
    pub seen_token: bool,
}

impl StreamClock {
    pub(crate) fn start(
        started: tokio::time::Instant,
        first_token: Duration,
        total: Duration,
    ) -> StreamClock {
        let first_token = first_token.min(total);
        StreamClock {
            first: started + first_token,
            total: started + total,
            timeouts: (first_token, total),
            seen_token: false,
        }
    }

    /// The deadline for the next read, which timeout it is, and its length.
    pub(crate) fn next_deadline(&self) -> (tokio::time::Instant, TimeoutPhase, Duration) {
        if self.seen_token {
            (self.total, TimeoutPhase::Total, self.timeouts.1)
        } else {
            (
                self.first.min(self.total),
                TimeoutPhase::FirstToken,
                self.timeouts.0,
            )
        }
    }
}
