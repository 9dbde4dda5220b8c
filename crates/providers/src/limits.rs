//! What Hearth holds from a model server at most, and the one way every request is sent and
//! every body read: under the call's deadline and under a size cap, so neither a stalled nor
//! a flooding server can hold a request or the process's memory.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep, timeout_at};

use crate::error::{ConnectCause, ProviderError, StreamClock, TimeoutPhase};
use crate::types::Endpoint;
use crate::upstream::{BoxError, Response, from_reqwest};

/// The deadline of a stream's reads: one timer for the whole stream, moved to each read's
/// deadline. A fresh `timeout_at` per read adds a timer to tokio's timer wheel and takes it
/// out again, for every chunk; moving a timer later is one atomic update.
pub(crate) struct ReadTimer {
    sleep: Pin<Box<Sleep>>,
    /// The waker the timer was last left pending with. Polling a timer that is set for the
    /// same deadline and will wake the same task again only registers that waker anew (~200
    /// instructions a chunk, a fifth of a bare proxy's cost per chunk), so that is skipped
    /// until the timer fires, moves or the task changes.
    armed_for: Option<Waker>,
}

impl ReadTimer {
    pub(crate) fn new(deadline: Instant) -> Self {
        ReadTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline)),
            armed_for: None,
        }
    }

    /// `body`'s next item, or `None` when `deadline` passed first (as `timeout_at`, the body
    /// is polled first).
    pub(crate) fn poll_next<S: Stream + Unpin>(
        &mut self,
        body: &mut S,
        deadline: Instant,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Option<S::Item>>> {
        if let Poll::Ready(item) = body.poll_next_unpin(cx) {
            return Poll::Ready(Some(item));
        }
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
            self.armed_for = None;
        } else if self
            .armed_for
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
            // Still in the timer wheel: it has not fired, and will wake that waker when it does.
            && !self.sleep.is_elapsed()
        {
            return Poll::Pending;
        }
        // A task out of its scheduling budget gets `Pending` from the timer without it being
        // set (the first poll is the one that puts it in the wheel): that is not armed.
        let budget = tokio::task::coop::has_budget_remaining();
        match self.sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending if !budget => {
                self.armed_for = None;
                Poll::Pending
            }
            Poll::Pending => {
                match &mut self.armed_for {
                    Some(w) => w.clone_from(cx.waker()),
                    None => self.armed_for = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

/// The start of every event stream's poll: the events already decoded (an error ends the
/// stream), then the end. `None`: nothing to hand on, read more. The deadline is checked
/// where bytes are read ([`poll_read`]), so everything handed on was read before it.
pub(crate) fn handed_on<T>(
    pending: &mut VecDeque<Result<T, ProviderError>>,
    finished: &mut bool,
) -> Option<Option<Result<T, ProviderError>>> {
    if let Some(item) = pending.pop_front() {
        if item.is_err() {
            *finished = true;
            pending.clear();
        }
        return Some(Some(item));
    }
    finished.then_some(None)
}

/// An event stream's next read under the clock's current deadline: bytes, `None` at the
/// body's end, or the error that ends the stream (the deadline passed, the connection broke).
/// The clock is read once a read is ready, not on every poll: a reader that polls only now
/// and then (a slow client), or a server that always has bytes ready, never lets the timer
/// fire, and must still meet the deadline.
pub(crate) fn poll_read<S>(
    timer: &mut ReadTimer,
    body: &mut S,
    clock: &StreamClock,
    finished: &mut bool,
    cx: &mut Context<'_>,
) -> Poll<Result<Option<Bytes>, ProviderError>>
where
    S: Stream<Item = Result<Bytes, BoxError>> + Unpin,
{
    let (deadline, phase, after) = clock.next_deadline();
    let read = ready!(timer.poll_next(body, deadline, cx));
    if read.is_none() || Instant::now() >= deadline {
        *finished = true;
        return Poll::Ready(Err(ProviderError::Timeout { phase, after }));
    }
    Poll::Ready(match read {
        Some(Some(Err(e))) => {
            *finished = true;
            Err(crate::openai_compat::broken_stream(&e))
        }
        Some(Some(Ok(bytes))) => Ok(Some(bytes)),
        _ => Ok(None),
    })
}

/// Caps on how much of an upstream answer is held in memory at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpstreamLimits {
    /// The longest SSE line or event, and the largest Bedrock event-stream frame.
    pub max_event_bytes: usize,
    /// The largest whole (non-streamed) answer.
    pub max_body_bytes: usize,
    /// Idle connections kept open to one model server (closed after 90 s unused). Sized to
    /// the calls that may be in flight to a deployment: with fewer, every burst above the
    /// count closes the surplus connections as they come back and opens new ones (a TCP and,
    /// for the clouds, a TLS handshake each) on the next burst.
    pub max_idle_connections: usize,
}

impl Default for UpstreamLimits {
    fn default() -> Self {
        UpstreamLimits {
            max_event_bytes: 4 << 20,
            max_body_bytes: 32 << 20,
            max_idle_connections: 256,
        }
    }
}

/// Error bodies are read only for their message, of which 500 characters are kept; 64 KiB
/// leaves room for a JSON envelope or an HTML page around it.
pub(crate) const MAX_ERROR_BODY: usize = 64 << 10;

/// When the current phase of a call must be over, and which timeout that is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Deadline {
    pub at: Instant,
    pub phase: TimeoutPhase,
    pub after: Duration,
}

impl Deadline {
    pub(crate) fn from(started: Instant, after: Duration, phase: TimeoutPhase) -> Deadline {
        Deadline {
            at: started + after,
            phase,
            after,
        }
    }

    pub(crate) fn expired(&self) -> ProviderError {
        ProviderError::Timeout {
            phase: self.phase,
            after: self.after,
        }
    }
}

/// `4 MiB` for whole mebibytes and kibibytes, else the byte count.
pub(crate) fn size_text(bytes: usize) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

/// Sends a request through reqwest and waits for the response head until `deadline`.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    ep: &Endpoint,
    deadline: &Deadline,
) -> Result<Response, ProviderError> {
    match timeout_at(deadline.at, request.send()).await {
        Err(_) => Err(deadline.expired()),
        Ok(Err(e)) => Err(transport_error(ep, &e, e.is_connect(), e.is_timeout())),
        Ok(Ok(r)) => Ok(from_reqwest(r)),
    }
}

/// Names why a request never got an answer, from the error's source chain; `connect` and
/// `timeout` are what the client itself says of the error.
pub(crate) fn transport_error(
    ep: &Endpoint,
    e: &(dyn std::error::Error + 'static),
    connect: bool,
    timeout: bool,
) -> ProviderError {
    let (cause, detail) = connect_cause(e);
    // The client's own connect timeout (the deployment's connect_timeout_ms) is a timeout,
    // not a connection failure: it maps to 504 like the other phases.
    if connect && (timeout || cause == ConnectCause::TimedOut) {
        return ProviderError::Timeout {
            phase: TimeoutPhase::Connect,
            after: ep.timeouts.connect,
        };
    }
    ProviderError::Connect {
        endpoint: ep.base_url.clone(),
        cause,
        message: detail,
    }
}

/// The first recognised cause along the chain, and the innermost error's text (the most
/// specific: `Connection refused (os error 111)`, `invalid peer certificate: UnknownIssuer`).
pub(crate) fn connect_cause(e: &(dyn std::error::Error + 'static)) -> (ConnectCause, String) {
    let mut cause = None;
    let mut innermost = e.to_string();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        innermost = err.to_string();
        if cause.is_none() {
            cause = classify(err);
        }
        current = err.source();
    }
    (cause.unwrap_or(ConnectCause::Other), innermost)
}

fn classify(err: &(dyn std::error::Error + 'static)) -> Option<ConnectCause> {
    if let Some(tls) = err.downcast_ref::<rustls::Error>() {
        return Some(tls_cause(tls));
    }
    if let Some(io) = err.downcast_ref::<std::io::Error>() {
        // An io::Error's source() skips the error it wraps, where rustls puts its own (and
        // connectors wrap io::Errors in io::Errors).
        if let Some(inner) = io.get_ref()
            && let Some(cause) = classify(inner)
        {
            return Some(cause);
        }
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused => return Some(ConnectCause::Refused),
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                return Some(ConnectCause::Reset);
            }
            K::TimedOut => return Some(ConnectCause::TimedOut),
            _ => {}
        }
    }
    if let Some(h) = err.downcast_ref::<hyper::Error>()
        && h.is_incomplete_message()
    {
        return Some(ConnectCause::Closed);
    }
    // hyper-util's resolver error has no type of its own to match; its text is stable.
    let text = err.to_string();
    if text == "dns error" || text.contains("failed to lookup address") {
        return Some(ConnectCause::DnsNotFound);
    }
    None
}

fn tls_cause(e: &rustls::Error) -> ConnectCause {
    ConnectCause::Tls {
        certificate: matches!(
            e,
            rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
        ),
    }
}

/// How a capped read ended.
enum End {
    Complete,
    OverCap,
    Broken(String),
}

/// The answer's declared length, when it has one.
fn content_length(response: &Response) -> Option<u64> {
    http_body::Body::size_hint(response.body()).exact()
}

async fn read_up_to(
    response: &mut Response,
    cap: usize,
    deadline: &Deadline,
) -> Result<(Vec<u8>, End), ProviderError> {
    let mut out = Vec::with_capacity(
        content_length(response).map_or(0, |n| usize::try_from(n).unwrap_or(cap).min(cap)),
    );
    loop {
        let frame = match timeout_at(deadline.at, response.body_mut().frame()).await {
            Err(_) => return Err(deadline.expired()),
            Ok(None) => return Ok((out, End::Complete)),
            Ok(Some(Err(e))) => return Ok((out, End::Broken(e.to_string()))),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing Hearth reads.
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, End::OverCap));
        }
        out.extend_from_slice(&chunk);
    }
}

/// A whole answer, refused once it passes `max_body_bytes`.
pub(crate) async fn read_answer(
    mut response: Response,
    limits: &UpstreamLimits,
    deadline: &Deadline,
) -> Result<Vec<u8>, ProviderError> {
    let too_large = ProviderError::TooLarge {
        what: "an answer",
        limit: "max_body_bytes",
        bytes: limits.max_body_bytes,
    };
    if content_length(&response).is_some_and(|n| n > limits.max_body_bytes as u64) {
        return Err(too_large);
    }
    match read_up_to(&mut response, limits.max_body_bytes, deadline).await? {
        (bytes, End::Complete) => Ok(bytes),
        (_, End::OverCap) => Err(too_large),
        (_, End::Broken(e)) => Err(ProviderError::Protocol(format!("reading the answer: {e}"))),
    }
}

/// The start of an error body: enough for its message. A body cut by the cap or by the
/// network still yields what arrived; only the deadline ends the wait.
pub(crate) async fn read_error_body(
    mut response: Response,
    deadline: &Deadline,
) -> Result<Vec<u8>, ProviderError> {
    read_up_to(&mut response, MAX_ERROR_BODY, deadline)
        .await
        .map(|(bytes, _)| bytes)
}

/// Whether a stream answer's `Content-Type` is `want`; a missing one is given the benefit
/// of the doubt (some proxies drop it), the decoder then judges the bytes.
pub(crate) fn content_type_is(response: &Response, want: &str) -> Result<(), String> {
    let Some(value) = response.headers().get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    let essence = text.split(';').next().unwrap_or_default().trim();
    if essence.eq_ignore_ascii_case(want) {
        Ok(())
    } else {
        Err(essence.chars().take(100).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size_text(4 << 20), "4 MiB");
        assert_eq!(size_text(64 << 10), "64 KiB");
        assert_eq!(size_text(1000), "1000 bytes");
    }

    #[test]
    fn io_causes_are_named() {
        use std::io::{Error, ErrorKind};
        let refused = Error::from(ErrorKind::ConnectionRefused);
        assert_eq!(connect_cause(&refused).0, ConnectCause::Refused);
        let reset = Error::from(ErrorKind::ConnectionReset);
        assert_eq!(connect_cause(&reset).0, ConnectCause::Reset);
        let tls = Error::new(
            ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let (cause, detail) = connect_cause(&tls);
        assert_eq!(cause, ConnectCause::Tls { certificate: true });
        assert!(detail.contains("UnknownIssuer"), "{detail}");
        let wrapped = Error::other(tls);
        assert_eq!(
            connect_cause(&wrapped).0,
            ConnectCause::Tls { certificate: true }
        );
        let other = Error::other("something else");
        assert_eq!(connect_cause(&other).0, ConnectCause::Other);
    }
}
