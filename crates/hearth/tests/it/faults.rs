//! Model servers that misbehave at the byte level (hearth-testkit's `FaultUpstream`): what
//! the client sees on every route, and that it sees it within the deployment's deadlines.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hearth_testkit::{FakeUpstream, Fault, FaultUpstream};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, MARKER, Options};

const FIRST_TOKEN_MS: u64 = 800;
const TOTAL_MS: u64 = 1500;
/// How long past its deadline a fault may take to end: process and scheduling slack on a
/// busy machine, not a performance figure.
const SLACK: Duration = Duration::from_secs(3);

/// Hearth with GitLab's loopback auth bypass on, and one deployment bound to code completions
/// and chat.
async fn setup(deployment: Value) -> (Hearth, i64) {
    let h = Hearth::start_with(Options {
        env: vec![("AIGW_AUTH__BYPASS_EXTERNAL", "true".into())],
        ..Default::default()
    });
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let id = h.create(deployment).await;
    for f in ["code_completions", "duo_chat"] {
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{f}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    (h, id)
}

fn openai(endpoint: &str, key: &str) -> Value {
    json!({"name": "m", "family": "mixtral", "endpoint": endpoint, "identifier": "custom_openai/m",
        "api_key": key, "first_token_timeout_ms": FIRST_TOKEN_MS, "total_timeout_ms": TOTAL_MS})
}

fn bedrock(endpoint: &str, key: &str) -> Value {
    json!({"name": "b", "family": "mixtral", "endpoint": endpoint, "region": "us-east-1",
        "identifier": "bedrock/mistral.mixtral-8x7b-instruct-v0:1", "api_key": key,
        "first_token_timeout_ms": FIRST_TOKEN_MS, "total_timeout_ms": TOTAL_MS})
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A request's status, body text and how long it took, checked for leaked secrets.
async fn send(h: &Hearth, path: &str, body: Value) -> (StatusCode, String, Duration) {
    let started = Instant::now();
    let resp = h.http().post(h.url(path)).json(&body).send().await.unwrap();
    let status = resp.status();
    let mut text = Vec::new();
    let mut stream = resp.bytes_stream();
    while let Some(piece) = stream.next().await {
        text.extend_from_slice(&piece.unwrap());
    }
    let text = String::from_utf8_lossy(&text).into_owned();
    assert!(!text.contains(MARKER), "a secret leaked: {text}");
    (status, text, started.elapsed())
}

/// The message of an OpenAI-shaped error answer.
fn message(text: &str) -> String {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {v}"))
        .to_string()
}

/// The message of the error event a 200 stream ended with.
fn stream_error(text: &str) -> String {
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
    let event = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|e| serde_json::from_str::<Value>(e).ok())
        .find(|v| v["error"].is_object())
        .unwrap_or_else(|| panic!("no error event: {text}"));
    event["error"]["message"].as_str().unwrap().to_string()
}

fn completion(stream: bool) -> Value {
    json!({"prompt": "def f():", "stream": stream})
}

fn chat(stream: bool) -> Value {
    json!({"messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

fn gitlab_completion() -> Value {
    json!({"current_file": {"file_name": "a.py", "content_above_cursor": "def f():", "content_below_cursor": ""}})
}

async fn check(h: &Hearth, id: i64) -> (Value, Duration) {
    let started = Instant::now();
    let (s, v) = h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], false, "{v}");
    (v, started.elapsed())
}

/// Issue 8 item 1: an error status whose body never completes ends in 504 within the
/// deadline that applies, on every route that calls the model.
#[tokio::test]
async fn a_stalled_error_body_is_a_504_within_the_deadline_on_every_route() {
    let up = FaultUpstream::start(Fault::StalledErrorBody { status: 500 }).await;
    let (h, id) = setup(openai(&up.endpoint(), "k")).await;
    let total = ms(TOTAL_MS) + SLACK;
    let first = ms(FIRST_TOKEN_MS) + SLACK;
    for (path, body, budget, phase) in [
        ("/v1/completions", completion(false), total, "total"),
        ("/v1/completions", completion(true), first, "first token"),
        ("/v1/chat/completions", chat(false), total, "total"),
        ("/v1/chat/completions", chat(true), first, "first token"),
    ] {
        let (status, text, took) = send(&h, path, body).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{path}: {text}");
        assert!(message(&text).contains(phase), "{path}: {text}");
        assert!(took < budget, "{path} took {took:?}");
    }
    for path in [
        "/v2/code/completions",
        "/v1/prompts/model_configuration%2Fcheck",
    ] {
        let body = if path.contains("prompts") {
            json!({"stream": false, "inputs": {}, "prompt_version": "^1.0.0"})
        } else {
            gitlab_completion()
        };
        let (status, text, took) = send(&h, path, body).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{path}: {text}");
        assert!(text.contains("timeout"), "{path}: {text}");
        assert!(took < total, "{path} took {took:?}");
    }
    let (v, took) = check(&h, id).await;
    assert_eq!(v["code"], "upstream_timeout", "{v}");
    assert!(took < total, "the check took {took:?}");
    assert!(
        up.requests().len() >= 7,
        "every route reached the model server"
    );

    // Bedrock reads its error bodies through the same deadline.
    let up = FaultUpstream::start(Fault::StalledErrorBody { status: 500 }).await;
    let (h, _) = setup(bedrock(&up.origin(), "bedrock-api-key-x")).await;
    let (status, text, took) = send(&h, "/v1/chat/completions", chat(true)).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{text}");
    assert!(took < first, "took {took:?}");
}

/// Stalls and drips after the headers end within the first-token or total deadline, as an
/// error event in the stream or a 504.
#[tokio::test]
async fn stalls_and_drips_end_within_the_deadline() {
    for (fault, phase) in [
        (Fault::HeadersThenHang, "first token"),
        (Fault::Drip { every: ms(150) }, "first token"),
    ] {
        let up = FaultUpstream::start(fault.clone()).await;
        let (h, _) = setup(openai(&up.endpoint(), "k")).await;
        let (status, text, took) = send(&h, "/v1/completions", completion(true)).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}: {text}");
        assert!(stream_error(&text).contains(phase), "{fault:?}: {text}");
        assert!(took < ms(FIRST_TOKEN_MS) + SLACK, "{fault:?}: {took:?}");
        let (status, text, took) = send(&h, "/v1/completions", completion(false)).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{fault:?}: {text}");
        assert!(took < ms(TOTAL_MS) + SLACK, "{fault:?}: {took:?}");
    }
}

/// Issue 8 item 5: past a cap, a clear 502 or error event that names the cap and its size.
#[tokio::test]
async fn oversized_answers_end_with_an_error_naming_the_cap() {
    let up = FaultUpstream::start(Fault::HugeLine { bytes: 8 << 20 }).await;
    let (h, _) = setup(openai(&up.endpoint(), "k")).await;
    let (status, text, _) = send(&h, "/v1/completions", completion(true)).await;
    assert_eq!(status, StatusCode::OK);
    let err = stream_error(&text);
    assert!(
        err.contains("max_event_bytes") && err.contains("4 MiB"),
        "{err}"
    );

    let up = FaultUpstream::start(Fault::HugeBody { bytes: 40 << 20 }).await;
    let (h, _) = setup(openai(&up.endpoint(), "k")).await;
    let (status, text, _) = send(&h, "/v1/completions", completion(false)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["error"]["code"], "upstream_too_large");
    let err = message(&text);
    assert!(
        err.contains("max_body_bytes") && err.contains("32 MiB"),
        "{err}"
    );

    let up = FaultUpstream::start(Fault::HugeFrame { bytes: 64 << 20 }).await;
    let (h, _) = setup(bedrock(&up.origin(), "bedrock-api-key-x")).await;
    let (status, text, _) = send(&h, "/v1/chat/completions", chat(true)).await;
    assert_eq!(status, StatusCode::OK);
    let err = stream_error(&text);
    assert!(
        err.contains("event-stream frame") && err.contains("max_event_bytes"),
        "{err}"
    );
}

/// Issue 8 item 7: a server that echoes the credentials it was sent has them redacted on
/// the OpenAI and GitLab routes, in the check, and in the log (the harness scans every log
/// line for the marker each secret below carries).
#[tokio::test]
async fn echoed_credentials_are_redacted_everywhere() {
    let key = format!("sk-{MARKER}-openai");
    let session = format!("session-{MARKER}-token");
    let cases = [
        ("openai", openai("", &key)),
        (
            "azure",
            json!({"name": "az", "family": "gpt", "identifier": "azure/gpt-4o",
                "api_key": format!("azure-{MARKER}"), "total_timeout_ms": TOTAL_MS}),
        ),
        (
            "bedrock sigv4",
            bedrock(
                "",
                &format!("AKIAIOSFODNN7EXAMPLE:secret-{MARKER}:{session}"),
            ),
        ),
        ("bedrock key", bedrock("", &format!("ABSK-{MARKER}"))),
    ];
    for (what, mut deployment) in cases {
        let up = FaultUpstream::start(Fault::EchoCredentials { status: 401 }).await;
        deployment["endpoint"] = if what == "openai" {
            json!(up.endpoint())
        } else {
            json!(up.origin())
        };
        let (h, id) = setup(deployment).await;
        for stream in [false, true] {
            let (status, text, _) = send(&h, "/v1/chat/completions", chat(stream)).await;
            assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}: {text}");
            let err = message(&text);
            assert!(err.contains("[redacted]"), "{what}: {err}");
        }
        let heads = up.requests().join("\n");
        assert!(
            heads.contains(MARKER),
            "{what}: the secret was sent: {heads}"
        );
        let (status, text, _) = send(&h, "/v2/code/completions", gitlab_completion()).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{what}: {text}");
        assert!(text.contains("[redacted]"), "{what}: {text}");
        let (v, _) = check(&h, id).await;
        assert!(
            v["error"].as_str().unwrap().contains("[redacted]"),
            "{what}: {v}"
        );
        let logs = h.logs();
        assert!(logs.contains("[redacted]"), "{what}: {logs}");
    }

    // A key GitLab names in the request is the endpoint's too.
    let up = FaultUpstream::start(Fault::EchoCredentials { status: 403 }).await;
    let h = Hearth::start_with(Options {
        env: vec![("AIGW_AUTH__BYPASS_EXTERNAL", "true".into())],
        ..Default::default()
    });
    let mut body = gitlab_completion();
    body["model_provider"] = json!("litellm");
    body["model_name"] = json!("codestral");
    body["model_endpoint"] = json!(up.endpoint());
    body["model_api_key"] = json!(format!("gl-{MARKER}"));
    let (status, text, _) = send(&h, "/v2/code/completions", body).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(text.contains("[redacted]"), "{text}");
}

/// Issue 8 item 10: a 200 that is not a stream, to a stream request, is a 502 before
/// anything is sent.
#[tokio::test]
async fn a_json_answer_to_a_stream_request_is_a_502() {
    let up = FaultUpstream::start(Fault::JsonToStream).await;
    let (h, _) = setup(openai(&up.endpoint(), "k")).await;
    let (status, text, _) = send(&h, "/v1/completions", completion(true)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    let err = message(&text);
    assert!(
        err.contains("application/json") && err.contains("text/event-stream"),
        "{err}"
    );
    let (status, text, _) = send(&h, "/v1/completions", completion(false)).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same answer is fine unstreamed: {text}"
    );

    let (h, _) = setup(bedrock(&up.origin(), "bedrock-api-key-x")).await;
    let (status, text, _) = send(&h, "/v1/chat/completions", chat(true)).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{text}");
    assert!(
        message(&text).contains("application/vnd.amazon.eventstream"),
        "{text}"
    );
}

/// Issue 8 item 12: each way of not reaching the server is named with its fix, in the API
/// error, in `hearth models check` and in the log.
#[tokio::test]
async fn connection_failures_name_their_cause_and_fix() {
    let refused = FaultUpstream::start(Fault::Refuse).await;
    let reset = FaultUpstream::start(Fault::ResetAfterRequest).await;
    let plain = FakeUpstream::start().await;
    let untrusted = FaultUpstream::start_untrusted_tls().await;
    let cases = [
        (
            refused.endpoint(),
            "connection refused",
            "is the model server running and listening on that port?",
        ),
        (
            reset.endpoint(),
            "connection reset by the model server",
            "check the model server's log",
        ),
        (
            "http://no-such-host.invalid:8000/v1".to_string(),
            "host name was not found",
            "check the host name in the endpoint",
        ),
        (
            // Plain HTTP where TLS was expected.
            format!("https://{}/v1", plain.addr),
            "TLS handshake failed",
            "check that the server speaks HTTPS on that port",
        ),
        (
            format!("https://localhost:{}/v1", untrusted.addr.port()),
            // The rustls reason depends on the machine's trust store (UnknownIssuer, or a
            // mismatch with a trusted certificate of the same name).
            "the server's certificate is not trusted: invalid peer certificate",
            "add its CA to this machine's trust store",
        ),
    ];
    for (endpoint, cause, fix) in cases {
        let mut deployment = openai(&endpoint, "k");
        deployment["connect_timeout_ms"] = json!(4000);
        let (h, _) = setup(deployment).await;
        let (status, text, _) = send(&h, "/v1/completions", completion(false)).await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{endpoint}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["error"]["code"], "upstream_unreachable", "{v}");
        let err = message(&text);
        assert!(
            err.contains(cause) && err.contains(fix),
            "{endpoint}: {err}"
        );
        let line = h.wait_for_log("inference failed");
        assert!(line.contains(cause), "{line}");

        // Off the test's one runtime thread, which also serves the fault upstream.
        let url = h.url("");
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(crate::harness::BIN)
                .args(["models", "check", "m"])
                .env("HEARTH_URL", url)
                .env("HEARTH_ADMIN_TOKEN", crate::harness::ADMIN_TOKEN)
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{stdout}");
        assert!(
            stdout.contains("FAILED") && stdout.contains(cause) && stdout.contains(fix),
            "{endpoint}: {stdout}"
        );
        let line = h.wait_for_log("connection check");
        assert!(line.contains(cause), "{line}");
    }
}

/// Resets, broken framing and invalid UTF-8 after a stream began: an error event (or
/// replacement characters), never a hang or a crash.
#[tokio::test]
async fn broken_streams_end_with_an_error_event() {
    for (fault, needle) in [
        (
            Fault::ResetMidStream,
            "connection reset by the model server",
        ),
        (Fault::MalformedSse, "not JSON"),
    ] {
        let up = FaultUpstream::start(fault.clone()).await;
        let (h, _) = setup(openai(&up.endpoint(), "k")).await;
        let (status, text, took) = send(&h, "/v1/completions", completion(true)).await;
        assert_eq!(status, StatusCode::OK, "{fault:?}");
        let err = stream_error(&text);
        assert!(err.contains(needle), "{fault:?}: {err}");
        assert!(took < ms(TOTAL_MS) + SLACK, "{fault:?}: {took:?}");
    }
    let up = FaultUpstream::start(Fault::InvalidUtf8).await;
    let (h, _) = setup(openai(&up.endpoint(), "k")).await;
    let (status, text, _) = send(&h, "/v1/completions", completion(true)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("a\u{FFFD}\u{FFFD}b"), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
}
