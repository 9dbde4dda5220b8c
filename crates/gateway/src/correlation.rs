//! Correlation ids and the access log.
//!
//! Every request gets an id: the caller's `X-Request-ID` when it is sane, else a new one. It is
//! echoed in the response, carried by the request's tracing span (so every log line of the
//! request has it) and written as `correlation_id` on the access-log line. That line is written
//! when the response body ends — for a stream, when the last chunk went out — with the time to
//! the first chunk and the GitLab context of the request's headers.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tracing::Instrument;

pub(crate) const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// The request's correlation id, available to handlers as an extension.
#[derive(Clone, Debug)]
pub struct CorrelationId(pub String);

/// Accepts ids made of the characters tracing systems use, so a hostile header cannot forge
/// log fields or blow up log lines.
fn sane(value: &HeaderValue) -> Option<&str> {
    let s = value.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= MAX_LEN
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':' | b'/' | b'+' | b'=')
        }))
    .then_some(s)
}

/// A new random id after `prefix`: 32 hex digits, written straight into one allocation
/// (`format!` and `to_string` went through the formatter, which guesses the size and regrows).
pub(crate) fn fresh_id(prefix: &str) -> String {
    let mut buf = uuid::Uuid::encode_buffer();
    let hex = uuid::Uuid::new_v4().simple().encode_lower(&mut buf);
    let mut id = String::with_capacity(prefix.len() + hex.len());
    id.push_str(prefix);
    id.push_str(hex);
    id
}

/// GitLab's context headers, logged as `gitlab_*` as its own gateway does. As `HeaderName`s
/// made once: looking a header up by `&str` parses and lower-cases the name on every call.
static GITLAB_HEADERS: std::sync::LazyLock<[HeaderName; 9]> = std::sync::LazyLock::new(|| {
    [
        "x-gitlab-instance-id",
        "x-gitlab-global-user-id",
        "x-gitlab-host-name",
        "x-gitlab-version",
        "x-gitlab-realm",
        "x-gitlab-language-server-version",
        "x-gitlab-feature-enabled-by-namespace-ids",
        "x-gitlab-feature-enablement-type",
        "x-gitlab-root-namespace-id",
    ]
    .map(HeaderName::from_static)
});

fn gitlab_context(headers: &HeaderMap) -> Option<[String; 9]> {
    // Most requests (IDE plugins, SDKs) carry none: one pass over their few headers is
    // cheaper than nine hashed lookups.
    if !headers.keys().any(|k| k.as_str().starts_with("x-gitlab-")) {
        return None;
    }
    let names = &*GITLAB_HEADERS;
    if !names.iter().any(|h| headers.contains_key(h)) {
        return None;
    }
    Some(std::array::from_fn(|i| {
        headers
            .get(&names[i])
            .and_then(|v| v.to_str().ok())
            .map(|v| v.chars().take(256).collect())
            .unwrap_or_default()
    }))
}

struct AccessLog {
    id: String,
    method: axum::http::Method,
    path: String,
    status: u16,
    client_ip: String,
    gitlab: Option<[String; 9]>,
    started: Instant,
    first_chunk: Option<f64>,
    span: tracing::Span,
}

impl AccessLog {
    fn write(self, completed: bool) {
        let _entered = self.span.enter();
        let duration_s = self.started.elapsed().as_secs_f64();
        let first_chunk_duration_s = self.first_chunk.unwrap_or(duration_s);
        let (id, method, path, status, ip) = (
            &self.id,
            &self.method,
            &self.path,
            self.status,
            &self.client_ip,
        );
        match &self.gitlab {
            None => tracing::info!(
                target: "hearth::access",
                correlation_id = %id, method = %method, path = %path, status_code = status,
                duration_s, first_chunk_duration_s, client_ip = %ip, completed,
                "{method} {path} {status}"
            ),
            Some(g) => tracing::info!(
                target: "hearth::access",
                correlation_id = %id, method = %method, path = %path, status_code = status,
                duration_s, first_chunk_duration_s, client_ip = %ip, completed,
                gitlab_instance_id = %g[0], gitlab_global_user_id = %g[1], gitlab_host_name = %g[2],
                gitlab_version = %g[3], gitlab_realm = %g[4], gitlab_language_server_version = %g[5],
                gitlab_feature_enabled_by_namespace_ids = %g[6], gitlab_feature_enablement_type = %g[7],
                gitlab_root_namespace_id = %g[8],
                "{method} {path} {status}"
            ),
        }
    }
}

/// The response body, passed through unchanged, noting its first chunk and its end.
struct LoggedBody {
    inner: Body,
    log: Option<AccessLog>,
}

impl HttpBody for LoggedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                if let Some(log) = self.log.as_mut()
                    && log.first_chunk.is_none()
                {
                    log.first_chunk = Some(log.started.elapsed().as_secs_f64());
                }
            }
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                if let Some(log) = self.log.take() {
                    log.write(true);
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        // Bodies hyper never polls (empty ones), and clients that left mid-stream.
        if let Some(log) = self.log.take() {
            let completed = self.inner.is_end_stream();
            log.write(completed);
        }
    }
}

pub(crate) async fn middleware(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(HEADER)
        .and_then(sane)
        .map(str::to_owned)
        .unwrap_or_else(|| fresh_id(""));
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let client_ip = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| ip_text(addr.ip()))
        .unwrap_or_default();
    let gitlab = gitlab_context(req.headers());

    // `%` (Display), not a str: the text log format quotes str values.
    let span = tracing::info_span!("request", correlation_id = %id);
    // With the access log off, the request and its body need no watching.
    let logging = tracing::enabled!(target: "hearth::access", tracing::Level::INFO);
    let header_value = HeaderValue::from_str(&id).ok();
    // Written as 499 if the client leaves before the handler answers (this future is dropped).
    let mut unanswered = Unanswered(logging.then(|| AccessLog {
        id,
        method,
        path,
        status: crate::telemetry::CLIENT_CLOSED,
        client_ip,
        gitlab,
        started,
        first_chunk: None,
        span: span.clone(),
    }));
    let mut response = next.run(req).instrument(span).await;
    if let Some(value) = header_value {
        response.headers_mut().insert(HEADER, value);
    }
    let Some(mut log) = unanswered.0.take() else {
        return response;
    };
    log.status = response.status().as_u16();
    let (parts, body) = response.into_parts();
    Response::from_parts(
        parts,
        Body::new(LoggedBody {
            inner: body,
            log: Some(log),
        }),
    )
}

/// The client's address as the access line shows it. `Ipv4Addr`'s `Display` goes through the
/// formatter's padding support, which cost a tenth of the whole access line; a dotted quad is
/// four small numbers.
fn ip_text(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else {
        return ip.to_string();
    };
    let mut out = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if octet >= 100 {
            out.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            out.push(char::from(b'0' + octet / 10 % 10));
        }
        out.push(char::from(b'0' + octet % 10));
    }
    out
}

/// The access line of a request still waiting for its handler.
struct Unanswered(Option<AccessLog>);

impl Drop for Unanswered {
    fn drop(&mut self) {
        if let Some(log) = self.0.take() {
            log.write(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn ip_text_is_display(bits: u32) {
            let ip = IpAddr::V4(Ipv4Addr::from(bits));
            prop_assert_eq!(ip_text(ip), ip.to_string());
        }
    }

    #[test]
    fn fresh_ids_are_prefixed_hex() {
        let (a, b) = (fresh_id("cmpl-"), fresh_id("cmpl-"));
        assert_ne!(a, b);
        let hex = a.strip_prefix("cmpl-").unwrap();
        assert_eq!(hex.len(), 32);
        assert!(
            hex.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_eq!(fresh_id("").len(), 32);
    }

    #[test]
    fn ip_text_edges() {
        for octet in [0u8, 9, 10, 99, 100, 199, 200, 255] {
            let ip = IpAddr::V4(Ipv4Addr::new(octet, 1, octet, 127));
            assert_eq!(ip_text(ip), ip.to_string());
        }
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(ip_text(v6), "::1");
    }
}
