//! Bad input of every kind gets a clear 4xx, nothing stored is lost, and the server keeps
//! serving. Also: auth, and concurrent writers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, expect_error, vllm_body};

const MODELS: &str = "/api/v1/self_hosted_models";

async fn raw_post(
    h: &Hearth,
    body: impl Into<reqwest::Body>,
    content_type: &str,
) -> (StatusCode, Value) {
    let resp = h
        .http()
        .post(h.url(MODELS))
        .bearer_auth(&h.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn still_serving(h: &Hearth, expected_models: usize) {
    let resp = h.open_get("/monitoring/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (_, list) = h.get(MODELS).await;
    assert_eq!(
        list.as_array().unwrap().len(),
        expected_models,
        "stored data survived"
    );
}

#[tokio::test]
async fn malformed_truncated_and_oversized_bodies_get_4xx() {
    let h = Hearth::start();
    h.create(vllm_body("kept")).await;

    let got = raw_post(&h, "{not json", "application/json").await;
    let msg = expect_error(&got, StatusCode::BAD_REQUEST, None);
    assert!(msg.contains("not valid JSON"), "{msg}");
    still_serving(&h, 1).await;

    let got = raw_post(&h, r#"{"name": "x", "family": "mixt"#, "application/json").await;
    expect_error(&got, StatusCode::BAD_REQUEST, None);
    still_serving(&h, 1).await;

    let got = raw_post(&h, "", "application/json").await;
    expect_error(&got, StatusCode::BAD_REQUEST, None);

    let got = raw_post(&h, vllm_body("x").to_string(), "text/plain").await;
    expect_error(&got, StatusCode::UNSUPPORTED_MEDIA_TYPE, None);

    // 2 MiB of otherwise valid JSON.
    let mut big = vllm_body("big");
    big["name"] = json!("n".repeat(2 * 1024 * 1024));
    let resp = h
        .http()
        .post(h.url(MODELS))
        .bearer_auth(&h.token)
        .header("content-type", "application/json")
        .body(big.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["connection"], "close");
    let got = (resp.status(), resp.json().await.unwrap());
    let msg = expect_error(&got, StatusCode::PAYLOAD_TOO_LARGE, None);
    assert!(msg.contains("1048576"), "{msg}");
    still_serving(&h, 1).await;
}

#[tokio::test]
async fn a_body_cut_off_mid_request_does_not_hang_the_server() {
    let h = Hearth::start();
    h.create(vllm_body("kept")).await;
    let addr = h.addr;
    let token = h.token.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "POST {MODELS} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{{\"name\": \"trunc"
        )
        .unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut out = String::new();
        // Either an error response or a closed connection; never a hang (read timeout).
        let _ = s.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    still_serving(&h, 1).await;
}

#[tokio::test]
async fn admin_routes_need_the_right_token() {
    let h = Hearth::start();
    for (auth, needle) in [
        (None, "Authorization: Bearer"),
        (Some("Bearer wrong-token-wrong-token"), "wrong"),
        (Some("Basic dXNlcjpwYXNz"), "Authorization: Bearer"),
    ] {
        for (method, path) in [
            ("GET", MODELS),
            ("POST", MODELS),
            ("GET", "/api/v1/settings"),
            ("PUT", "/api/v1/feature_settings/duo_chat"),
            ("GET", "/api/v1/catalog"),
        ] {
            let mut req = h.http().request(method.parse().unwrap(), h.url(path));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = req.json(&vllm_body("x")).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
            assert_eq!(resp.headers()["www-authenticate"], "Bearer");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "unauthorized");
            assert!(
                body["error"]["message"].as_str().unwrap().contains(needle),
                "{body}"
            );
        }
    }
    let (_, list) = h.get(MODELS).await;
    assert_eq!(list, json!([]), "unauthorised writes stored nothing");
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let h = Hearth::start();
    let resp = h.open_get("/nope").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let resp = h
        .http()
        .delete(h.url("/monitoring/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn fifty_parallel_creates_with_ten_duplicate_names_keep_one_per_name() {
    let h = std::sync::Arc::new(Hearth::start());
    // 40 distinct names; names 0..10 are sent twice.
    let names: Vec<String> = (0..40).chain(0..10).map(|i| format!("dep-{i}")).collect();
    assert_eq!(names.len(), 50);
    let mut tasks = tokio::task::JoinSet::new();
    for name in names {
        let h = h.clone();
        tasks.spawn(async move { h.post(MODELS, vllm_body(&name)).await.0 });
    }
    let mut created = 0;
    let mut conflicts = 0;
    while let Some(status) = tasks.join_next().await {
        match status.unwrap() {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT => conflicts += 1,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!((created, conflicts), (40, 10));
    let (_, list) = h.get(MODELS).await;
    let mut stored: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    stored.sort_unstable();
    stored.dedup();
    assert_eq!(stored.len(), 40);
    assert_eq!(list.as_array().unwrap().len(), 40);
}
