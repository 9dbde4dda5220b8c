//! The HTTP clients to one model server origin, and the one answer type both give.
//!
//! A plain `http://` origin that no proxy setting covers — the in-cluster vLLM or llama.cpp
//! server that every keystroke's completion goes to — is called through hyper-util's pooled
//! client directly. Everything else (TLS to Azure and Bedrock, anything behind
//! `HTTP_PROXY`/`HTTPS_PROXY`, the `verify` reads) goes through reqwest, which brings the
//! platform's trust store and proxy support. The direct client is the one reqwest pools
//! connections with; what it skips is reqwest's per-request URL work (its redirect layer turns
//! the request's URI into a `Url` and the answer's back into one, even with redirects off):
//! about 12k instructions a request, an eighth of a whole bare proxy's.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::proxy::matcher::Matcher;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::timeout_at;

use crate::error::{ConnectCause, ProviderError};
use crate::limits::{Deadline, UpstreamLimits, transport_error};
use crate::types::Endpoint;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Idle pooled connections are closed after this long unused.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// TCP keep-alive probes on upstream connections, as reqwest sets them: a model server that
/// vanished without a FIN is noticed on an idle pooled connection.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);
const TCP_KEEPALIVE_RETRIES: u32 = 3;

const USER_AGENT: &str = concat!("hearth/", env!("CARGO_PKG_VERSION"));

type Direct = hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>;

/// The clients for one (connect timeout, origin).
pub(crate) struct Clients {
    pub(crate) reqwest: reqwest::Client,
    /// Set for a plain `http://` origin that no proxy variable covers.
    direct: Option<Direct>,
}

impl Clients {
    pub(crate) fn new(
        ep: &Endpoint,
        origin: &str,
        limits: &UpstreamLimits,
    ) -> Result<Clients, ProviderError> {
        let reqwest = reqwest::Client::builder()
            .connect_timeout(ep.timeouts.connect)
            .pool_max_idle_per_host(limits.max_idle_connections)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| ProviderError::Connect {
                endpoint: ep.base_url.clone(),
                cause: ConnectCause::Other,
                message: e.to_string(),
            })?;
        let direct = direct_origin(origin, &Matcher::from_system()).then(|| {
            let mut http = HttpConnector::new();
            http.set_connect_timeout(Some(ep.timeouts.connect));
            http.set_nodelay(true);
            http.set_keepalive(Some(TCP_KEEPALIVE));
            http.set_keepalive_interval(Some(TCP_KEEPALIVE));
            http.set_keepalive_retries(Some(TCP_KEEPALIVE_RETRIES));
            hyper_util::client::legacy::Client::builder(TokioExecutor::new())
                .pool_idle_timeout(POOL_IDLE_TIMEOUT)
                .pool_max_idle_per_host(limits.max_idle_connections)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(http)
        });
        Ok(Clients { reqwest, direct })
    }

    /// The direct client, when this origin has one.
    pub(crate) fn direct(&self) -> Option<&Direct> {
        self.direct.as_ref()
    }
}

/// Whether `origin` (`scheme://host:port`) is called directly: plain HTTP, and no proxy
/// variable (`HTTP_PROXY`, `ALL_PROXY`, minus `NO_PROXY`) covers it — the same matcher reqwest
/// reads them with, so an origin is proxied exactly when it was before.
fn direct_origin(origin: &str, proxies: &Matcher) -> bool {
    let Ok(uri) = origin.parse::<http::Uri>() else {
        return false;
    };
    uri.scheme() == Some(&http::uri::Scheme::HTTP) && proxies.intercept(&uri).is_none()
}

/// Sends `request` through the direct client and waits for the answer's head until
/// `deadline`.
pub(crate) async fn send_direct(
    client: &Direct,
    request: http::Request<Full<Bytes>>,
    ep: &Endpoint,
    deadline: &Deadline,
) -> Result<Response, ProviderError> {
    match timeout_at(deadline.at, client.request(request)).await {
        Err(_) => Err(deadline.expired()),
        Ok(Err(e)) => Err(transport_error(ep, &e, e.is_connect(), false)),
        Ok(Ok(r)) => Ok(r.map(Body::Left)),
    }
}

/// The user agent the direct client sends (reqwest's is set on its builder).
pub(crate) fn user_agent() -> http::HeaderValue {
    http::HeaderValue::from_static(USER_AGENT)
}

/// A model server's answer, from either client.
pub(crate) type Response = http::Response<Body>;

/// An answer's body, from either client. Read errors are boxed; their source chains are what
/// [`crate::limits::connect_cause`] reads.
pub(crate) type Body = http_body_util::Either<hyper::body::Incoming, reqwest::Body>;

/// A reqwest answer as a [`Response`].
pub(crate) fn from_reqwest(r: reqwest::Response) -> Response {
    http::Response::from(r).map(Body::Right)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_without_a_proxy_is_called_directly() {
        let none = Matcher::builder().build();
        assert!(direct_origin("http://gpu-1:8000", &none));
        assert!(direct_origin("http://127.0.0.1:8000", &none));
        assert!(!direct_origin("https://x.openai.azure.com", &none));
        assert!(!direct_origin("gpu-1:8000", &none));
        assert!(!direct_origin("", &none));
    }

    #[test]
    fn a_proxied_origin_goes_through_reqwest() {
        let proxied = Matcher::builder()
            .http("http://proxy.internal:3128")
            .no("gpu-2")
            .build();
        assert!(!direct_origin("http://gpu-1:8000", &proxied));
        assert!(direct_origin("http://gpu-2:8000", &proxied));
    }
}
