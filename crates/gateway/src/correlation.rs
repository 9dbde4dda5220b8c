//! Correlation ids and the access log.
//!
//! Every request gets an id: the caller's `X-Request-ID` when it is sane, else a new one. It is
//! echoed in the response, carried by the request's tracing span (so every log line of the
//! request has it) and written as `correlation_id` on the access-log line.

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
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

pub(crate) async fn middleware(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = req
        .headers()
        .get(HEADER)
        .and_then(sane)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    req.extensions_mut().insert(CorrelationId(id.clone()));
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| *addr);

    let span = tracing::info_span!("request", correlation_id = %id);
    let mut response = next.run(req).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    let status = response.status().as_u16();
    let _entered = span.enter();
    tracing::info!(
        target: "hearth::access",
        correlation_id = %id,
        method = %method,
        path = %path,
        status_code = status,
        duration_s = started.elapsed().as_secs_f64(),
        client_ip = client.map(|a| a.ip().to_string()).unwrap_or_default(),
        "{method} {path} {status}"
    );
    response
}
