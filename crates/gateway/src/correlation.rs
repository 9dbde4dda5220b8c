//! Correlation ids and the access log.
//!
//! Every request gets an id: the caller's `X-Request-ID` when it is sane, else a new one. It is
//! echoed in the response, kept in scope on the thread while the request's handler runs (so
//! every log line of the request has it, see [`request_id_in_scope`]) and written as
//! `correlation_id` on the access-log line. That line is written when the response body ends —
//! for a stream, when the last chunk went out — with the time to the first chunk and the GitLab
//! context of the request's headers.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tower_layer::Layer;
use tower_service::Service;

pub(crate) const HEADER: HeaderName = HeaderName::from_static("x-request-id");
const MAX_LEN: usize = 128;

thread_local! {
    /// The correlation id of the request this thread is running the handler of.
    static IN_SCOPE: Cell<Option<Arc<str>>> = const { Cell::new(None) };
}

/// Calls `f` with the correlation id of the request whose handler is running on this thread,
/// if any. Log formatters write it where a span's fields would go, as `span.correlation_id`.
///
/// Why not a tracing span: making one per request, entering it at every poll and closing it
/// cost about 2.5 % of a request (registry slot, stored fields, span stack, filter checks);
/// moving the id in and out of this slot costs next to nothing. Work a request spawns onto
/// other tasks does not carry it, as it would not have carried a span without `instrument`.
pub fn request_id_in_scope<R>(f: impl FnOnce(Option<&str>) -> R) -> R {
    let id = IN_SCOPE.try_with(Cell::take).ok().flatten();
    let result = f(id.as_deref());
    if id.is_some() {
        let _ = IN_SCOPE.try_with(|slot| slot.set(id));
    }
    result
}

/// Runs `f` as a request's handler runs: with `id` in scope (for tests of log formats).
pub fn run_in_request_scope<R>(id: &str, f: impl FnOnce() -> R) -> R {
    in_scope(Arc::from(id), f)
}

/// Runs `f` with `id` in the thread's slot.
fn in_scope<R>(id: Arc<str>, f: impl FnOnce() -> R) -> R {
    let mut owner = Some(id);
    let _scope = Scope::enter(&mut owner);
    f()
}

/// Holds a request's id in the thread's slot until dropped (also when unwinding), then
/// gives it back to its owner and restores what the slot held before.
struct Scope<'a> {
    owner: &'a mut Option<Arc<str>>,
    before: Option<Arc<str>>,
}

impl<'a> Scope<'a> {
    fn enter(owner: &'a mut Option<Arc<str>>) -> Self {
        let before = IN_SCOPE
            .try_with(|slot| slot.replace(owner.take()))
            .ok()
            .flatten();
        Scope { owner, before }
    }
}

impl Drop for Scope<'_> {
    fn drop(&mut self) {
        let before = self.before.take();
        if let Ok(id) = IN_SCOPE.try_with(|slot| slot.replace(before)) {
            *self.owner = id;
        }
    }
}

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
    id: Arc<str>,
    method: axum::http::Method,
    path: String,
    status: u16,
    client_ip: String,
    gitlab: Option<[String; 9]>,
    started: Instant,
    first_chunk: Option<f64>,
}

impl AccessLog {
    /// Writes the line with the request's id in scope, as the handler's lines were.
    fn write(self, completed: bool) {
        in_scope(self.id.clone(), || self.emit(completed));
    }

    /// Every value goes to tracing as a `&str` or a number: a `%` (Display) value makes the
    /// log formatter run `core::fmt` for it, which cost about as much as the rest of the line.
    fn emit(&self, completed: bool) {
        let duration_s = self.started.elapsed().as_secs_f64();
        let first_chunk_duration_s = self.first_chunk.unwrap_or(duration_s);
        let status = self.status;
        // HTTP status codes have three digits (`StatusCode` holds 100..=999).
        let digits = [100, 10, 1].map(|d| b'0' + (status / d % 10) as u8);
        let status_text = std::str::from_utf8(&digits).unwrap_or("000");
        let method = self.method.as_str();
        let path = self.path.as_str();
        let message = [method, " ", path, " ", status_text].concat();
        let (id, ip) = (&*self.id, self.client_ip.as_str());
        match &self.gitlab {
            // The message first, where a formatted message goes (the text format writes it
            // at the head of the fields).
            None => tracing::info!(
                target: "hearth::access",
                message = message.as_str(),
                correlation_id = id, method, path, status_code = status,
                duration_s, first_chunk_duration_s, client_ip = ip, completed,
            ),
            Some(g) => tracing::info!(
                target: "hearth::access",
                message = message.as_str(),
                correlation_id = id, method, path, status_code = status,
                duration_s, first_chunk_duration_s, client_ip = ip, completed,
                gitlab_instance_id = g[0].as_str(), gitlab_global_user_id = g[1].as_str(),
                gitlab_host_name = g[2].as_str(), gitlab_version = g[3].as_str(),
                gitlab_realm = g[4].as_str(), gitlab_language_server_version = g[5].as_str(),
                gitlab_feature_enabled_by_namespace_ids = g[6].as_str(),
                gitlab_feature_enablement_type = g[7].as_str(),
                gitlab_root_namespace_id = g[8].as_str(),
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

/// Gives each request its correlation id, its scope for log lines and its access line (a tower layer rather than
/// `from_fn`, which boxes every request's future and clones the inner service for `Next`).
#[derive(Clone, Copy)]
pub(crate) struct CorrelationLayer;

impl<S> Layer<S> for CorrelationLayer {
    type Service = Correlation<S>;

    fn layer(&self, inner: S) -> Correlation<S> {
        Correlation { inner }
    }
}

#[derive(Clone)]
pub(crate) struct Correlation<S> {
    inner: S,
}

impl<S> Service<Request> for Correlation<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Unpin,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Correlated<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let started = Instant::now();
        let id = req
            .headers()
            .get(&HEADER)
            .and_then(sane)
            .map(str::to_owned)
            .unwrap_or_else(|| fresh_id(""));
        let header_value = HeaderValue::from_str(&id).ok();
        let scoped: Arc<str> = Arc::from(id.as_str());
        req.extensions_mut().insert(CorrelationId(id));
        // With the access log off, the request and its body need no watching.
        let logging = tracing::enabled!(target: "hearth::access", tracing::Level::INFO);
        let log = logging.then(|| AccessLog {
            method: req.method().clone(),
            path: req.uri().path().to_owned(),
            status: crate::telemetry::CLIENT_CLOSED,
            client_ip: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| ip_text(addr.ip()))
                .unwrap_or_default(),
            gitlab: gitlab_context(req.headers()),
            id: scoped.clone(),
            started,
            first_chunk: None,
        });
        Correlated {
            inner: Some(self.inner.call(req)),
            id: Some(scoped),
            header_value,
            log,
        }
    }
}

/// The request on its way through the handler, polled with its id in scope.
pub(crate) struct Correlated<F> {
    /// Taken once it has answered.
    inner: Option<F>,
    /// Moved into the thread's slot for each poll and back (see [`Scope`]).
    id: Option<Arc<str>>,
    header_value: Option<HeaderValue>,
    /// Left here, the line is written as a 499 when the client leaves before the handler
    /// answers (this future is dropped).
    log: Option<AccessLog>,
}

impl<F> Future for Correlated<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else {
            // Polled again after it answered: nothing more will come.
            return Poll::Pending;
        };
        let Ok(mut response) = {
            let _scope = Scope::enter(&mut this.id);
            let polled = ready!(Pin::new(inner).poll(cx));
            this.inner = None;
            polled
        };
        if let Some(value) = this.header_value.take() {
            response.headers_mut().insert(HEADER, value);
        }
        let Some(mut log) = this.log.take() else {
            return Poll::Ready(Ok(response));
        };
        log.status = response.status().as_u16();
        let (parts, body) = response.into_parts();
        Poll::Ready(Ok(Response::from_parts(
            parts,
            Body::new(LoggedBody {
                inner: body,
                log: Some(log),
            }),
        )))
    }
}

impl<F> Drop for Correlated<F> {
    fn drop(&mut self) {
        // The client left before the answer: the handler is dropped with the request's id in
        // scope (whatever it logs on the way keeps the id), then the line is written.
        if let Some(inner) = self.inner.take() {
            let _scope = Scope::enter(&mut self.id);
            drop(inner);
        }
        if let Some(log) = self.log.take() {
            log.write(false);
        }
    }
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
