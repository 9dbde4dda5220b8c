//! Bounded behaviour at the front door: clients that send slowly, hold connections, read
//! slowly or leave; more connections and calls than Hearth takes; shutdown with requests stuck
//! in flight. Each test asserts what the client sees and an upper bound on when.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use hearth_testkit::{FakeUpstream, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options, post, sse_payloads};

fn start(args: &[&str]) -> Hearth {
    Hearth::start_with(Options {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    })
}

/// Hearth with `args`, one codegemma deployment on `up` with these timeouts, bound to code
/// completion and chat.
async fn with_deployment(up: &FakeUpstream, args: &[&str], timeouts: Value) -> Hearth {
    let h = start(args);
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let mut body = json!({"name": "cg", "family": "codegemma", "endpoint": up.endpoint(),
        "identifier": "custom_openai/cg"});
    if let (Some(b), Some(t)) = (body.as_object_mut(), timeouts.as_object()) {
        b.extend(t.clone());
    }
    let id = h.create(body).await;
    h.bind_completions(id).await;
    h
}

fn connect(h: &Hearth) -> TcpStream {
    let s = TcpStream::connect(h.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the server closes the connection (or resets it); returns what it sent.
fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("the server kept the connection open past the read timeout")
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn half_sent_and_dripped_headers_are_cut_at_the_header_timeout() {
    let h = start(&["--header-timeout", "1s"]);
    // Half a header block, then nothing.
    let mut s = connect(&h);
    let started = Instant::now();
    s.write_all(b"GET /monitoring/healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    read_to_close(&mut s);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    assert!(took >= Duration::from_millis(900), "closed after {took:?}");

    // A header line every 300 ms: the timer does not restart with each line.
    let mut s = connect(&h);
    let started = Instant::now();
    s.write_all(b"GET /monitoring/healthz HTTP/1.1\r\n")
        .unwrap();
    let mut cut = false;
    for i in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(format!("X-Drip-{i}: y\r\n").as_bytes())
            .is_err()
        {
            cut = true;
            break;
        }
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    if !cut {
        read_to_close(&mut s);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dripping client was served for {:?}",
        started.elapsed()
    );

    // Health still answers.
    let mut s = connect(&h);
    s.write_all(b"GET /monitoring/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert!(read_to_close(&mut s).starts_with("HTTP/1.1 200"));
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let h = start(&["--header-timeout", "1s"]);
    let mut s = connect(&h);
    s.write_all(b"GET /monitoring/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let answer = read_to_close(&mut s);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "idle for {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_that_stops_arriving_is_408_on_both_front_doors() {
    let h = start(&["--body-timeout", "1s", "--auth-bypass", "true"]);
    for path in ["/v1/completions", "/v2/code/completions"] {
        let mut s = connect(&h);
        let started = Instant::now();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"prompt\": "
        );
        s.write_all(head.as_bytes()).unwrap();
        let answer = tokio::task::spawn_blocking(move || read_to_close(&mut s))
            .await
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(answer.contains("\"body_timeout\""), "{path}: {answer}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{path}: answered after {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn past_the_connection_cap_health_answers_and_the_rest_get_503() {
    let h = start(&["--max-connections", "8"]);
    // Far more idle connections than the cap and the overflow places together.
    let idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(h.addr).unwrap())
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..3 {
        let (status, _) = h.get("/monitoring/healthz").await;
        assert_eq!(status, StatusCode::OK);
        let resp = h.http().get(h.url("/v1/models")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()["retry-after"], "1");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "overloaded", "{body}");
    }
    h.wait_for_log("connection cap reached");
    drop(idle);
    // Once the idle connections are gone, normal service is back.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let resp = h.http().get(h.url("/v1/models")).send().await.unwrap();
        if resp.status() == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still refused: {}",
            resp.status()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_then_cuts_hung_requests_at_the_deadline() {
    let up = FakeUpstream::start().await;
    let mut h = with_deployment(
        &up,
        &["--drain-timeout", "2s"],
        json!({"total_timeout_ms": 120_000, "first_token_timeout_ms": 120_000}),
    )
    .await;
    up.script(Reply::StallBeforeHeaders(Duration::from_secs(60)));
    let hung = {
        let http = h.http().clone();
        let url = h.url("/v1/completions");
        tokio::spawn(async move { http.post(url).json(&json!({"prompt": "x"})).send().await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let status = tokio::task::block_in_place(|| h.stop());
    assert!(status.success(), "{status:?}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(6), "stopped after {took:?}");
    assert!(
        took >= Duration::from_millis(1500),
        "stopped after {took:?}"
    );
    assert!(hung.await.unwrap().is_err(), "the hung request was not cut");
    assert!(h.logs().contains("cut"), "{}", h.logs());
}

#[tokio::test]
async fn a_client_that_does_not_read_cannot_hold_a_stream_past_the_total_timeout() {
    let up = FakeUpstream::start().await;
    let h = with_deployment(
        &up,
        &[],
        json!({"total_timeout_ms": 1500, "first_token_timeout_ms": 1000}),
    )
    .await;
    up.script(Reply::Flood {
        count: 1_000_000,
        size: 16 * 1024,
    });
    let mut s = connect(&h);
    let body = json!({"prompt": "x", "stream": true}).to_string();
    s.write_all(
        format!(
            "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    // Read nothing: every buffer between the model server and this socket fills up.
    let started = Instant::now();
    while up.abandoned() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the model server's stream was still open after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What the client reads at last ends with the timeout, then [DONE].
    let text = tokio::task::spawn_blocking(move || read_to_close(&mut s))
        .await
        .unwrap();
    let tail = &text[text.len().saturating_sub(600)..];
    assert!(
        tail.contains("total timeout of 1500 ms"),
        "{} bytes, ends: {}",
        text.len(),
        &text[text.len().saturating_sub(120)..]
    );
    // (The raw socket shows the chunked transfer coding around the events.)
    let error_at = tail.find("total timeout").unwrap();
    assert!(tail[error_at..].contains("data: [DONE]"), "{tail}");
    assert!(!tail[error_at..].contains("xxxx"), "{tail}");
    h.wait_for_log("\"status_code\":504");
}

#[tokio::test]
async fn calls_past_the_in_flight_cap_are_shed_with_503_and_retry_after() {
    let up = FakeUpstream::start().await;
    let h = with_deployment(
        &up,
        &[
            "--max-in-flight-per-deployment",
            "2",
            "--queue-timeout",
            "200ms",
        ],
        json!({}),
    )
    .await;
    for _ in 0..2 {
        up.script(Reply::Slow {
            count: 20,
            every: Duration::from_millis(100),
        });
    }
    let a = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true}),
    )
    .await;
    let b = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true}),
    )
    .await;
    let started = Instant::now();
    let shed = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(shed.headers()["retry-after"], "1");
    let err: Value = shed.json().await.unwrap();
    assert_eq!(err["error"]["code"], "overloaded", "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-in-flight-per-deployment"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    let metrics = h.open_get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"hearth_shed_total{deployment="cg",scope="deployment"} 1"#),
        "{metrics}"
    );
    // The places come back when the streams end.
    for resp in [a, b] {
        let events = sse_payloads(resp).await;
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    }
    let resp = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

/// Bursts of 48 overlapping calls (more than the 32 idle connections Hearth used to keep):
/// each burst finds the connections of the one before still open. With 32 kept, every burst
/// after the first opened 16 new ones (48 + 2 × 16 = 80 for three bursts).
#[tokio::test(flavor = "multi_thread")]
async fn connections_to_the_model_server_are_kept_for_a_burst_as_large_as_the_last() {
    const BURST: usize = 48;
    const BURSTS: usize = 3;
    let up = FakeUpstream::start().await;
    let h = with_deployment(&up, &[], json!({})).await;
    for _ in 0..BURSTS {
        for _ in 0..BURST {
            up.script(Reply::StallBeforeHeaders(Duration::from_millis(300)));
        }
        // Started 2 ms apart (all in flight together by the last): 48 checkouts at the same
        // instant race and open spare connections, whatever the pool keeps.
        let calls = (0..BURST).map(|i| {
            let h = &h;
            async move {
                tokio::time::sleep(Duration::from_millis(2 * i as u64)).await;
                post(h, "/v1/completions", json!({"prompt": "x"})).await
            }
        });
        for resp in futures_util::future::join_all(calls).await {
            assert_eq!(resp.status(), StatusCode::OK);
        }
        // A connection goes back to the pool just after its answer reached the client;
        // without a pause the next burst's first call could beat the last one back.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let calls: Vec<_> = up
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/completions")
        .collect();
    assert_eq!(calls.len(), BURSTS * BURST);
    let connections: std::collections::HashSet<_> = calls.iter().map(|r| r.peer).collect();
    // A little room: calls that find no idle connection at the same instant may each open
    // one (the reason the calls are started apart).
    assert!(
        connections.len() <= BURST + 8,
        "{} connections for {BURSTS} bursts of {BURST} calls",
        connections.len()
    );
}

// Multi-threaded: the abandoned connection is closed by a client task while this test waits.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_leaves_before_a_whole_answer_is_logged_and_counted_as_499() {
    let up = FakeUpstream::start().await;
    let h = with_deployment(&up, &[], json!({})).await;
    up.script(Reply::StallBeforeHeaders(Duration::from_secs(2)));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let r = impatient
        .post(h.url("/v1/completions"))
        .header("x-request-id", "left-early-1")
        .json(&json!({"prompt": "x"}))
        .send()
        .await;
    assert!(r.is_err());
    drop(impatient);
    let line = h.wait_for_log("\"message\":\"POST /v1/completions 499\"");
    let entry: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["path"], "/v1/completions", "{line}");
    assert_eq!(entry["completed"], false, "{line}");
    // Written after the handler was dropped, still inside the request's span.
    assert_eq!(entry["correlation_id"], "left-early-1", "{line}");
    assert_eq!(entry["span"]["correlation_id"], "left-early-1", "{line}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let metrics = h.open_get("/metrics").await.text().await.unwrap();
        if metrics.contains(
            r#"hearth_requests_total{feature="code_completions",deployment="cg",status="499"} 1"#,
        ) {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn streams_still_relay_every_chunk_through_their_own_task() {
    let up = FakeUpstream::start().await;
    let h = with_deployment(&up, &[], json!({})).await;
    up.script(Reply::Flood {
        count: 300,
        size: 100,
    });
    let resp = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true}),
    )
    .await;
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    while let Some(chunk) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
    }
    assert_eq!(text.matches(&"x".repeat(100)).count(), 300);
    assert!(text.trim_end().ends_with("data: [DONE]"));
}
