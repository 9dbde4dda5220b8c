//! The baseline for `bench/compare.sh`: a pass-through proxy built from Hearth's HTTP stack
//! (axum + reqwest on tokio) that does none of Hearth's work — no auth, routing, templating,
//! post-processing, logging or metrics.
//!
//! `bare-proxy LISTEN UPSTREAM`, e.g. `bare-proxy 127.0.0.1:19102 http://127.0.0.1:19100`.
//! `POST /v1/completions` and `POST /v1/chat/completions` forward the body as is to the same
//! path on UPSTREAM over a pooled keep-alive client, and stream the answer back unchanged
//! (status, content type, body chunks as they arrive).
//!
//! Each request is numbered in an `x-request-id` header, on the call to UPSTREAM and on the
//! answer, as Hearth sends its correlation id both ways: `bench/added.py` pairs the two sides
//! of each request by it in a packet capture.
//!
//! With `BARE_CLIENT=hyper` the upstream calls go through hyper-util's pooled client directly
//! instead of reqwest, as Hearth's calls to plain-HTTP model servers do: the baseline for
//! Hearth's own work without reqwest's per-request URL handling in either.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

#[derive(Clone)]
struct Proxy {
    client: reqwest::Client,
    /// Set with `BARE_CLIENT=hyper`.
    direct: Option<hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>>,
    upstream: String,
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(upstream)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: bare-proxy LISTEN UPSTREAM (e.g. 127.0.0.1:19102 http://127.0.0.1:19100)"
        );
        std::process::exit(2);
    };
    // Hearth's provider too: reqwest is built without one (`rustls-no-provider`).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .tcp_nodelay(true)
        .build()
    {
        Ok(client) => client,
        Err(err) => {
            eprintln!("bare-proxy: cannot build the HTTP client: {err}");
            std::process::exit(1);
        }
    };
    let direct = (std::env::var("BARE_CLIENT").as_deref() == Ok("hyper")).then(|| {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .build(http)
    });
    let proxy = Proxy {
        client,
        direct,
        upstream: upstream.trim_end_matches('/').to_owned(),
    };
    let app = Router::new()
        .route("/v1/completions", post(forward))
        .route("/v1/chat/completions", post(forward))
        .with_state(proxy);
    let listener = match tokio::net::TcpListener::bind(&listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("bare-proxy: cannot listen on {listen}: {err}");
            std::process::exit(1);
        }
    };
    println!("bare proxy on {listen} → {upstream}");
    if let Err(err) = axum::serve(listener, app).await {
        eprintln!("bare-proxy: {err}");
        std::process::exit(1);
    }
}

async fn forward(
    State(proxy): State<Proxy>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = HeaderValue::from(NEXT_ID.fetch_add(1, Ordering::Relaxed));
    let mut response = match &proxy.direct {
        Some(direct) => forward_direct(direct, &proxy.upstream, &uri, &headers, body, &id).await,
        None => forward_reqwest(&proxy, &uri, &headers, body, &id).await,
    };
    response.headers_mut().insert(REQUEST_ID, id);
    response
}

async fn forward_reqwest(
    proxy: &Proxy,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    id: &HeaderValue,
) -> Response {
    let mut request = proxy
        .client
        .post(format!("{}{}", proxy.upstream, uri.path()))
        .header(REQUEST_ID, id.clone())
        .body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    let answer = match request.send().await {
        Ok(answer) => answer,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let status = answer.status();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    } else {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    response
}

async fn forward_direct(
    client: &hyper_util::client::legacy::Client<HttpConnector, Full<Bytes>>,
    upstream: &str,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    id: &HeaderValue,
) -> Response {
    let target = match format!("{upstream}{}", uri.path()).parse::<Uri>() {
        Ok(target) => target,
        Err(err) => return (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    };
    let mut request = axum::http::Request::new(Full::new(body));
    *request.method_mut() = axum::http::Method::POST;
    *request.uri_mut() = target;
    request.headers_mut().insert(REQUEST_ID, id.clone());
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type.clone());
    }
    match client.request(request).await {
        Ok(answer) => answer.map(Body::new),
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}
