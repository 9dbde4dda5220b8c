//! Replicas, health, retries, fallbacks and keystroke-aware completion, against scripted
//! upstreams and raw sockets (the real llama-server replicas are in `routing_llama`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hearth_testkit::{FakeUpstream, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Hearth, Options, expect_error, post, sse_payloads};

fn bind(id: i64) -> Value {
    json!({"provider": "self_hosted", "self_hosted_model_id": id})
}

/// A local URL nothing listens on: connections to it are refused.
fn refused_endpoint() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}/v1")
}

fn hearth(args: &[&str]) -> Hearth {
    Hearth::start_with(Options {
        args: args.iter().map(|a| a.to_string()).collect(),
        ..Default::default()
    })
}

async fn codestral(h: &Hearth, name: &str, endpoints: &[String], routing: &str) -> i64 {
    h.create(
        json!({"name": name, "family": "codestral", "endpoints": endpoints,
        "routing": routing, "identifier": "custom_openai/codestral-22b"}),
    )
    .await
}

async fn complete(h: &Hearth, prompt: &str) -> reqwest::Response {
    post(
        h,
        "/v1/completions",
        json!({"prompt": prompt, "suffix": "\n", "max_tokens": 8}),
    )
    .await
}

async fn replica_states(h: &Hearth, id: i64) -> Vec<String> {
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["state"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_for_states(h: &Hearth, id: i64, want: &[&str], within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = replica_states(h, id).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "replica states {got:?}, wanted {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn metrics(h: &Hearth) -> String {
    h.http()
        .get(h.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The value of the first metric line starting with `prefix`, 0 when there is none.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn replicas_are_listed_added_and_removed_through_the_api() {
    let h = hearth(&["--health-check-interval", "0s"]);
    let a = "http://gpu-1.internal:8000/v1".to_string();
    let b = "http://gpu-2.internal:8000/v1".to_string();
    let id = codestral(&h, "c", &[a.clone(), b.clone()], "least_loaded").await;
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(d["endpoint"], a.as_str(), "{d}");
    assert_eq!(d["routing"], "least_loaded");
    let urls: Vec<&str> = d["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["url"].as_str().unwrap())
        .collect();
    assert_eq!(urls, [a.as_str(), b.as_str()]);

    // `endpoint` alone replaces the first replica and keeps the others.
    let c = "http://gpu-3.internal:8000/v1";
    let (s, d) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"endpoint": c}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["endpoints"][0]["url"], c);
    assert_eq!(d["endpoints"][1]["url"], b.as_str());
    // `endpoints` replaces the list.
    let (s, d) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"endpoints": [b], "routing": "round_robin"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["endpoints"].as_array().unwrap().len(), 1);
    assert_eq!(d["endpoint"], b.as_str());
    assert_eq!(d["routing"], "round_robin");

    // Each refusal names the field and the fix; nothing stored changes.
    let path = format!("/api/v1/self_hosted_models/{id}");
    for (body, field, says) in [
        (json!({"endpoints": []}), "endpoints", "at least one"),
        (
            json!({"endpoints": [a, a]}),
            "endpoints",
            "endpoints[1]: http://gpu-1.internal:8000/v1 is listed twice",
        ),
        (
            json!({"endpoints": [a, "http://gpu-2.internal:8000"]}),
            "endpoints",
            "endpoints[1]: an OpenAI-compatible (vLLM) endpoint must end in /v1",
        ),
        (json!({"routing": "random"}), "routing", "prefix_affinity"),
    ] {
        let got = h.patch(&path, body.clone()).await;
        let message = expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        assert!(message.contains(says), "{body}: {message}");
    }
    let got = h
        .post(
            "/api/v1/self_hosted_models",
            json!({"name": "d", "family": "codestral", "endpoint": a, "endpoints": [b],
                "identifier": "custom_openai/codestral-22b"}),
        )
        .await;
    expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("endpoint"));
    let (_, d) = h.get(&path).await;
    assert_eq!(d["endpoint"], b.as_str());
    assert_eq!(d["routing"], "round_robin");
}

#[tokio::test]
async fn a_refused_replica_is_retried_elsewhere_ejected_and_shown() {
    let up = FakeUpstream::start().await;
    let h = hearth(&["--health-check-interval", "0s"]);
    let dead = refused_endpoint();
    let id = codestral(&h, "c", &[dead.clone(), up.endpoint()], "round_robin").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    for i in 0..12 {
        let r = complete(&h, &format!("def f{i}():\n")).await;
        assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
        assert_eq!(r.headers()["x-hearth-deployment"], "c");
    }
    assert_eq!(
        up.requests().len(),
        12,
        "every request reached the live replica"
    );
    assert_eq!(replica_states(&h, id).await, ["ejected", "healthy"]);
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    let last_error = d["endpoints"][0]["last_error"].as_str().unwrap_or_default();
    assert!(
        d["endpoints"][0]["ejected_for_ms"].as_u64().unwrap() > 0,
        "{d}"
    );
    assert!(
        last_error.is_empty() || last_error.contains("refused"),
        "{d}"
    );
    let m = metrics(&h).await;
    // A refused connection ejects it at once (nothing listens there); that request was
    // retried on the live replica.
    assert_eq!(
        metric(&m, "hearth_upstream_retries_total{deployment=\"c\"}"),
        1.0,
        "{m}"
    );
    assert!(m.contains(&format!(
        "hearth_replica_healthy{{deployment=\"c\",endpoint=\"{dead}\"}} 0"
    )));
    assert_eq!(
        metric(
            &m,
            &format!("hearth_replica_ejections_total{{deployment=\"c\",endpoint=\"{dead}\"}}")
        ),
        1.0
    );
    // The command line shows it too.
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["models", "list"])
        .env("HEARTH_URL", h.url(""))
        .env("HEARTH_ADMIN_TOKEN", &h.token)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(&format!("{dead} (ejected)")), "{listed}");
}

#[tokio::test]
async fn health_checks_eject_a_dead_replica_and_readmit_it_when_it_returns() {
    let up = FakeUpstream::start().await;
    // A replica that is down now, on a port we can bring up later.
    let later = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = later.local_addr().unwrap();
    drop(later);
    let back = format!("http://{addr}/v1");
    let h = hearth(&["--health-check-interval", "200ms"]);
    let id = codestral(&h, "c", &[up.endpoint(), back.clone()], "round_robin").await;
    wait_for_states(&h, id, &["healthy", "ejected"], Duration::from_secs(3)).await;
    let _revived = FakeUpstream::start_on(&addr.to_string(), false).await;
    wait_for_states(&h, id, &["healthy", "healthy"], Duration::from_secs(3)).await;
    let m = metrics(&h).await;
    assert!(
        metric(
            &m,
            &format!("hearth_replica_readmissions_total{{deployment=\"c\",endpoint=\"{back}\"}}")
        ) >= 1.0,
        "{m}"
    );
}

/// A raw upstream that answers every request with `status`, counting requests.
async fn failing_upstream(status: u16) -> (String, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(Mutex::new(0usize));
    let seen = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut have = Vec::new();
                loop {
                    let Ok(n) = s.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    have.extend_from_slice(&buf[..n]);
                    // One request per read loop: headers, then a Content-Length body.
                    let Some(end) = find(&have, b"\r\n\r\n") else {
                        continue;
                    };
                    let head = String::from_utf8_lossy(&have[..end]).to_lowercase();
                    let len = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                    if have.len() < end + 4 + len {
                        continue;
                    }
                    have.drain(..end + 4 + len);
                    if head.starts_with("post") {
                        *seen.lock().unwrap() += 1;
                    }
                    let body = r#"{"error":{"message":"overloaded"}}"#;
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}/v1"), count)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn the_retry_budget_bounds_what_a_failing_deployment_receives() {
    let (a, a_count) = failing_upstream(503).await;
    let (b, b_count) = failing_upstream(503).await;
    // Ejection off (a huge threshold), so every request reaches a replica and only the
    // budget limits retries.
    let h = hearth(&[
        "--health-check-interval",
        "0s",
        "--eject-after-failures",
        "100000",
        "--retry-budget",
        "0.1",
    ]);
    let id = codestral(&h, "c", &[a, b], "round_robin").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    let requests = 200;
    for i in 0..requests {
        let r = complete(&h, &format!("x = {i}\n")).await;
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    }
    let attempts = *a_count.lock().unwrap() + *b_count.lock().unwrap();
    // 10 retries in reserve, then one per ten requests.
    let budget = requests + requests / 10 + 10;
    assert!(
        attempts > requests && attempts <= budget,
        "{attempts} attempts for {requests} requests (budget {budget})"
    );
    let m = metrics(&h).await;
    assert!(metric(&m, "hearth_retry_budget_spent_total{deployment=\"c\"}") > 0.0);
}

#[tokio::test]
async fn nothing_is_retried_once_output_reached_the_client_or_the_server_answered() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let h = hearth(&["--health-check-interval", "0s"]);
    let id = codestral(&h, "c", &[a.endpoint(), b.endpoint()], "round_robin").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    for up in [&a, &b] {
        up.script(Reply::Cut {
            chunks: vec!["pri".into(), "nt(".into()],
        });
    }
    let r = post(
        &h,
        "/v1/completions",
        json!({"prompt": "def f():\n", "suffix": "\n", "stream": true}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    let events = sse_payloads(r).await;
    assert!(events.iter().any(|e| e.contains("pri")), "{events:?}");
    assert_eq!(
        a.requests().len() + b.requests().len(),
        1,
        "a stream cut after output is not sent again"
    );
    // A 500 (the server ran the request and failed) is not retried either.
    for up in [&a, &b] {
        up.script(Reply::Error {
            status: 500,
            body: r#"{"error":{"message":"boom"}}"#.into(),
            headers: vec![],
        });
    }
    let r = complete(&h, "def g():\n").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
    assert_eq!(a.requests().len() + b.requests().len(), 2);
}

/// Code completion bound to a Codestral deployment nothing answers for, falling back to a Code
/// Llama one on a scripted upstream: (upstream, Hearth, primary id, fallback id).
async fn fallback_pair(health_interval: &str) -> (FakeUpstream, Hearth, i64, i64) {
    let up = FakeUpstream::start().await;
    let h = hearth(&["--health-check-interval", health_interval]);
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let primary = codestral(&h, "on-prem", &[refused_endpoint()], "least_loaded").await;
    let backup = h
        .create(
            json!({"name": "backup", "family": "codellama", "endpoint": up.endpoint(),
            "identifier": "custom_openai/codellama-13b"}),
        )
        .await;
    let (s, f) = h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": primary, "fallbacks": [backup]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{f}");
    (up, h, primary, backup)
}

#[tokio::test]
async fn a_feature_falls_back_to_another_family_with_its_own_prompt() {
    let (up, h, primary, backup) = fallback_pair("200ms").await;
    let (_, f) = h.get("/api/v1/feature_settings/code_completions").await;
    assert_eq!(f["fallbacks"][0]["self_hosted_model_name"], "backup");
    // A deployment that is a fallback cannot be deleted from under the feature.
    let got = h
        .delete(&format!("/api/v1/self_hosted_models/{backup}"))
        .await;
    assert_eq!(got.0, StatusCode::CONFLICT, "{}", got.1);
    // A fallback must be allowed for the feature like a binding, and not repeat.
    let got = h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": primary, "fallbacks": [primary]}),
        )
        .await;
    expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("fallbacks"));
    // The length is checked before anything else, so a huge list costs nothing.
    let many: Vec<i64> = (1..=100_000).collect();
    let got = h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": primary, "fallbacks": many}),
        )
        .await;
    let message = expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("fallbacks"));
    assert!(message.contains("at most 8"), "{message}");

    wait_for_states(&h, primary, &["ejected"], Duration::from_secs(3)).await;
    let r = complete(&h, "def add(a, b):\n    ").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-hearth-deployment"], "backup");
    let sent = up.last();
    assert_eq!(sent.body["model"], "codellama-13b");
    let prompt = sent.body["prompt"].as_str().unwrap();
    assert!(
        prompt.starts_with("<PRE> def add(a, b):"),
        "the prompt is rebuilt for Code Llama: {prompt}"
    );
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "hearth_fallbacks_total{feature=\"code_completions\",from=\"on-prem\",to=\"backup\"}"
        ),
        1.0,
        "{m}"
    );
    h.wait_for_log("fallback");
}

/// A raw upstream that never answers and records when each connection's request arrived and
/// when the connection was closed.
async fn silent_upstream() -> (String, Arc<Mutex<Vec<(Instant, Option<Instant>)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let mut slot = None;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) if slot.is_none() => {
                            let mut l = seen.lock().unwrap();
                            l.push((Instant::now(), None));
                            slot = Some(l.len() - 1);
                        }
                        Ok(_) => {}
                    }
                }
                if let Some(i) = slot {
                    seen.lock().unwrap()[i].1 = Some(Instant::now());
                }
            });
        }
    });
    (format!("http://{addr}/v1"), log)
}

#[tokio::test]
async fn a_newer_keystroke_cancels_the_completion_in_flight() {
    let (endpoint, log) = silent_upstream().await;
    let h = hearth(&["--health-check-interval", "0s"]);
    let id = codestral(&h, "c", &[endpoint], "prefix_affinity").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    let file = "import os\nimport sys\n\ndef main():\n    ";
    let first = {
        let h_url = h.url("/v1/completions");
        let http = h.http().clone();
        let body = json!({"prompt": file, "suffix": "\n", "user": "dev-1"});
        tokio::spawn(async move { http.post(h_url).json(&body).send().await.unwrap() })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while log.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the first request never arrived");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The next keystroke, same user and file.
    let second = {
        let h_url = h.url("/v1/completions");
        let http = h.http().clone();
        let body = json!({"prompt": format!("{file}a"), "suffix": "\n", "user": "dev-1"});
        tokio::spawn(async move { http.post(h_url).json(&body).send().await })
    };
    let first = tokio::time::timeout(Duration::from_secs(3), first)
        .await
        .expect("the superseded request was answered")
        .unwrap();
    assert_eq!(first.status(), StatusCode::CONFLICT);
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["error"]["code"], "superseded", "{body}");
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let l = log.lock().unwrap().clone();
        if l.len() == 2 && l[0].1.is_some() {
            let closed_after = l[0].1.unwrap().saturating_duration_since(l[1].0);
            assert!(
                closed_after < Duration::from_millis(100),
                "the first upstream request was closed {closed_after:?} after the second arrived"
            );
            break;
        }
        assert!(Instant::now() < deadline, "upstream saw {l:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    second.abort();
    // Another user's request for the same file is left alone.
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "hearth_completions_cancelled_superseded_total{feature=\"code_completions\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn identical_completions_in_flight_share_one_upstream_call() {
    let up = FakeUpstream::start().await;
    let h = hearth(&["--health-check-interval", "0s"]);
    let id = codestral(&h, "c", &[up.endpoint()], "prefix_affinity").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    up.script(Reply::StallBeforeHeaders(Duration::from_millis(1500)));
    let body =
        json!({"prompt": "fn main() {\n", "suffix": "}\n", "user": "dev-1", "temperature": 0});
    let (a, b) = tokio::join!(post(&h, "/v1/completions", body.clone()), async {
        // Once the first is at the model server.
        let deadline = Instant::now() + Duration::from_secs(10);
        while up.requests().is_empty() {
            assert!(Instant::now() < deadline, "the first request never arrived");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        post(&h, "/v1/completions", body.clone()).await
    });
    assert_eq!(a.status(), StatusCode::OK);
    assert_eq!(b.status(), StatusCode::OK);
    let (a, b): (Value, Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"]);
    assert_eq!(up.requests().len(), 1);
    // Sampled requests (no temperature 0) each get their own answer.
    let sampled = json!({"prompt": "fn main() {\n", "suffix": "}\n", "user": "dev-1"});
    up.script(Reply::StallBeforeHeaders(Duration::from_millis(200)));
    let (c, d) = tokio::join!(
        post(&h, "/v1/completions", sampled.clone()),
        post(&h, "/v1/completions", sampled.clone())
    );
    assert_eq!((c.status(), d.status()), (StatusCode::OK, StatusCode::OK));
    assert_eq!(up.requests().len(), 3);
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "hearth_completions_coalesced_total{feature=\"code_completions\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn an_exact_repeat_within_the_cache_time_gets_the_same_answer() {
    let up = FakeUpstream::start().await;
    let h = hearth(&[
        "--health-check-interval",
        "0s",
        "--completion-cache-ttl",
        "5s",
    ]);
    let id = codestral(&h, "c", &[up.endpoint()], "prefix_affinity").await;
    h.put("/api/v1/feature_settings/code_completions", bind(id))
        .await;
    let body = json!({"prompt": "let x = ", "suffix": ";\n", "user": "dev-1", "temperature": 0});
    let a: Value = post(&h, "/v1/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    let b: Value = post(&h, "/v1/completions", body.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(a["choices"][0]["text"], b["choices"][0]["text"], "{a} {b}");
    assert_eq!(
        up.requests().len(),
        1,
        "the repeat was answered from the cache"
    );
    // Another user's identical request is their own.
    let mut other = body.clone();
    other["user"] = json!("dev-2");
    assert_eq!(
        post(&h, "/v1/completions", other).await.status(),
        StatusCode::OK
    );
    assert_eq!(up.requests().len(), 2);
}

#[tokio::test]
async fn a_request_that_fails_on_its_deployment_is_served_by_the_fallback_at_once() {
    // No health checks: the first request itself finds the primary down.
    let (up, h, primary, _) = fallback_pair("0s").await;
    let r = complete(&h, "def add(a, b):\n    ").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-hearth-deployment"], "backup");
    assert!(
        up.last().body["prompt"]
            .as_str()
            .unwrap()
            .starts_with("<PRE> def add(a, b):")
    );
    let m = metrics(&h).await;
    assert_eq!(
        metric(
            &m,
            "hearth_fallbacks_total{feature=\"code_completions\",from=\"on-prem\",to=\"backup\"}"
        ),
        1.0,
        "{m}"
    );
    // The failed attempt is counted against the deployment that failed.
    assert!(
        m.lines()
            .any(|l| l.starts_with("hearth_errors_total{") && l.contains("deployment=\"on-prem\"")),
        "{m}"
    );
    // Streamed too.
    let r = post(
        &h,
        "/v1/completions",
        json!({"prompt": "def sub(a, b):\n    ", "suffix": "\n", "stream": true}),
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-hearth-deployment"], "backup");
    // Without a fallback the client gets the error.
    h.put(
        "/api/v1/feature_settings/code_completions",
        json!({"provider": "self_hosted", "self_hosted_model_id": primary, "fallbacks": []}),
    )
    .await;
    let r = complete(&h, "def mul(a, b):\n    ").await;
    assert_eq!(r.status(), StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn a_server_without_a_model_list_is_not_ejected_by_health_checks() {
    // Answers everything 404: up, but without `GET /models`.
    let (no_list, _) = failing_upstream(404).await;
    let (broken, _) = failing_upstream(500).await;
    let h = hearth(&[
        "--health-check-interval",
        "100ms",
        "--eject-after-failures",
        "2",
    ]);
    let id = codestral(&h, "c", &[no_list, broken], "round_robin").await;
    wait_for_states(&h, id, &["healthy", "ejected"], Duration::from_secs(3)).await;
    // And it stays so over several more checks.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replica_states(&h, id).await[0], "healthy");
}

#[tokio::test]
async fn the_connection_check_asks_every_replica() {
    let a = FakeUpstream::start().await;
    let b = FakeUpstream::start().await;
    let h = hearth(&["--health-check-interval", "0s"]);
    let id = codestral(&h, "c", &[a.endpoint(), b.endpoint()], "round_robin").await;
    let (s, v) = h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["ok"], true, "{v}");
    assert!(
        v["detail"].as_str().unwrap().contains("all 2 replicas"),
        "{v}"
    );
    assert_eq!((a.requests().len(), b.requests().len()), (1, 1));

    let dead = refused_endpoint();
    h.patch(
        &format!("/api/v1/self_hosted_models/{id}"),
        json!({"endpoints": [a.endpoint(), dead]}),
    )
    .await;
    let (_, v) = h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(v["ok"], false, "{v}");
    let error = v["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("1 of 2 replicas failed; {dead}")) && error.contains("refused"),
        "{v}"
    );
}
