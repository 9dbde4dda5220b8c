//! `/metrics` from beyond loopback needs the metrics token; loopback needs nothing. Driven
//! through the real router with the peer address a real connection would give it.

// Helpers outside `#[test]` functions unwrap too: in a test a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use secrecy::SecretString;
use tower::ServiceExt;

mod common;

async fn gateway(token: Option<&str>) -> (hearth_gateway::Gateway, tempfile::TempDir) {
    let (registry, dir) = common::registry().await;
    let gateway = hearth_gateway::build(
        registry,
        SecretString::from("x".repeat(20)),
        hearth_gateway::RouterOptions {
            metrics_token: token.map(SecretString::from),
            ..Default::default()
        },
    );
    (gateway, dir)
}

async fn scrape(g: &hearth_gateway::Gateway, peer: &str, bearer: Option<&str>) -> StatusCode {
    let mut req = Request::get("/metrics");
    if let Some(b) = bearer {
        req = req.header("authorization", format!("Bearer {b}"));
    }
    let mut req = req.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    req.extensions_mut().insert(ConnectInfo(peer));
    g.router.clone().oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn remote_scrapers_need_the_metrics_token_and_loopback_needs_none() {
    let (open, _d1) = gateway(None).await;
    assert_eq!(scrape(&open, "127.0.0.1:40000", None).await, StatusCode::OK);
    assert_eq!(scrape(&open, "[::1]:40000", None).await, StatusCode::OK);
    assert_eq!(
        scrape(&open, "10.1.2.3:40000", None).await,
        StatusCode::FORBIDDEN
    );

    let token = "metrics-token-0123456789";
    let (guarded, _d2) = gateway(Some(token)).await;
    assert_eq!(
        scrape(&guarded, "127.0.0.1:40000", None).await,
        StatusCode::OK
    );
    assert_eq!(
        scrape(&guarded, "10.1.2.3:40000", None).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scrape(&guarded, "10.1.2.3:40000", Some("wrong-token-0123456789")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        scrape(&guarded, "10.1.2.3:40000", Some(token)).await,
        StatusCode::OK
    );
}
