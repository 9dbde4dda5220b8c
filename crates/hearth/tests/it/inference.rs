//! The OpenAI front door against a scripted upstream that speaks the wire format exactly:
//! prompt bytes per family, stream framing, stops, every upstream failure mode, timeouts,
//! cancellation, auth, verbose logs and metrics.

use std::time::Duration;

use futures_util::StreamExt;
use hearth_testkit::{FakeUpstream, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options, post, sse_payloads};

/// Hearth with beta models on, one deployment per `(name, family, served name)` on `up`, and
/// code completion bound to the first.
async fn setup(up: &FakeUpstream, deployments: &[(&str, &str, &str)]) -> Hearth {
    setup_with(Options::default(), up, deployments).await
}

async fn setup_with(
    opts: Options<'_>,
    up: &FakeUpstream,
    deployments: &[(&str, &str, &str)],
) -> Hearth {
    let h = Hearth::start_with(opts);
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let mut ids = Vec::new();
    for (name, family, served) in deployments {
        ids.push(
            h.create(
                json!({"name": name, "family": family, "endpoint": up.endpoint(),
                "identifier": format!("custom_openai/{served}")}),
            )
            .await,
        );
    }
    let (s, b) = h
        .put("/api/v1/feature_settings/code_completions", bind(ids[0]))
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    h
}

fn bind(id: i64) -> Value {
    json!({"provider": "self_hosted", "self_hosted_model_id": id})
}

/// The message of the error event a failed stream ends with (just before `[DONE]`).
fn error_event(events: &[String]) -> String {
    let err: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    err["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error event: {err}"))
        .to_string()
}

fn texts(events: &[String]) -> String {
    events
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| v["choices"][0]["text"].as_str().map(str::to_owned))
        .collect()
}

/// The exact bytes each family's completion prompt reaches the model server as.
#[tokio::test]
async fn every_family_gets_its_exact_prompt_bytes() {
    let up = FakeUpstream::start().await;
    let families = [
        ("codestral", "codestral", "codestral-22b"),
        ("codegemma", "codegemma", "codegemma-2b"),
        ("codellama", "codellama", "codellama-13b"),
        ("deepseek", "deepseekcoder", "deepseek-33b"),
        ("starcoder2", "starcoder2", "starcoder2-15b"),
        ("qwen", "qwen", "qwen2.5-coder-7b"),
        ("mistral", "mistral", "mistral-7b"),
        ("mixtral", "mixtral", "mixtral-8x7b"),
        ("llama3", "llama3", "llama-3-8b"),
    ];
    let h = setup(&up, &families).await;
    let (p, s) = ("def add(a, b):\n    ", "\n    return c\n");
    let expected = [
        "<s>[SUFFIX]\n    return c\n[PREFIX]def add(a, b):\n    ",
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c\n<|fim_middle|>",
        "<PRE> def add(a, b):\n     <SUF>\n    return c\n <MID>",
        "<\u{FF5C}fim\u{2581}begin\u{FF5C}>def add(a, b):\n    <\u{FF5C}fim\u{2581}hole\u{FF5C}>\n    return c\n<\u{FF5C}fim\u{2581}end\u{FF5C}>",
        "<fim_prefix>def add(a, b):\n    <fim_suffix>\n    return c\n<fim_middle>",
        "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n    return c\n<|fim_middle|>",
        "def add(a, b):\n    ",
        "def add(a, b):\n    ",
        "def add(a, b):\n    ",
    ];
    for ((name, _, served), want) in families.iter().zip(expected) {
        let resp = h
            .http()
            .post(h.url("/v1/completions"))
            .header("x-request-id", format!("fim-{name}"))
            .json(&json!({"model": name, "prompt": p, "suffix": s}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{name}");
        let seen = up.last();
        assert_eq!(
            seen.path, "/v1/completions",
            "{name}: FIM goes to the text endpoint, not chat"
        );
        assert_eq!(seen.body["prompt"], want, "{name}");
        assert_eq!(seen.body["model"], *served, "{name}");
        assert!(
            seen.body.get("suffix").is_none(),
            "{name}: vLLM refuses `suffix`"
        );
        assert_eq!(
            seen.headers["x-request-id"],
            format!("fim-{name}").as_str(),
            "{name}"
        );
        assert!(seen.body["max_tokens"].as_u64().unwrap() >= 64, "{name}");
    }
    let cg = &up.requests()[1].body;
    assert_eq!(cg["max_tokens"], 128);
    assert!(
        cg["stop"]
            .as_array()
            .unwrap()
            .contains(&json!("<|file_separator|>"))
    );
    let mistral = &up.requests()[6].body;
    assert!(mistral["stop"].as_array().unwrap().contains(&json!("\n\n")));
    assert_eq!(mistral["temperature"], 0.0);
}

/// A plain-HTTP model server is called by hyper's client directly (not reqwest): the request
/// still carries the headers reqwest sent, the key as a bearer token, and one connection is
/// reused for the next request.
#[tokio::test]
async fn a_plain_http_model_server_gets_the_usual_headers_on_a_reused_connection() {
    let up = FakeUpstream::start().await;
    up.require_key("sk-direct-1");
    let h = Hearth::start();
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let id = h
        .create(
            json!({"name": "cs", "family": "codestral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/codestral", "api_key": "sk-direct-1"}),
        )
        .await;
    h.bind_completions(id).await;
    for _ in 0..2 {
        let resp = post(&h, "/v1/completions", json!({"prompt": "def f():"})).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let seen = up.requests();
    assert_eq!(seen.len(), 2);
    let headers = &seen[0].headers;
    assert_eq!(headers["authorization"], "Bearer sk-direct-1");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["accept"], "*/*");
    let agent = headers["user-agent"].to_str().unwrap();
    assert!(agent.starts_with("hearth/"), "{agent}");
    assert!(
        headers.contains_key("content-length"),
        "the body is sent whole, with its length: {headers:?}"
    );
    assert_eq!(seen[0].peer, seen[1].peer, "the connection is pooled");
}

/// An origin that `HTTP_PROXY` covers is reached through the proxy, as before Hearth called
/// plain-HTTP servers directly: here the model server's name does not resolve, so only the
/// proxy (a fake upstream, which answers the absolute-form request itself) can answer.
#[tokio::test]
async fn an_origin_behind_http_proxy_goes_through_the_proxy() {
    let proxy = FakeUpstream::start().await;
    let h = Hearth::start_with(Options {
        env: vec![
            ("HTTP_PROXY", format!("http://{}", proxy.addr)),
            ("NO_PROXY", String::new()),
        ],
        ..Options::default()
    });
    let id = h
        .create(json!({"name": "cs", "family": "codestral",
            "endpoint": "http://model-host.invalid:8000/v1",
            "identifier": "custom_openai/codestral"}))
        .await;
    h.bind_completions(id).await;
    let resp = post(&h, "/v1/completions", json!({"prompt": "def f():"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = proxy.last();
    assert_eq!(seen.path, "/v1/completions");
    assert_eq!(seen.headers["host"], "model-host.invalid:8000");
}

#[tokio::test]
async fn chat_families_complete_through_a_cursor_message() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("gpt", "gpt", "gpt-4o")]).await;
    up.script(Reply::Text {
        chunks: vec!["```python\nc = a + b\n```".into()],
        finish: "stop",
    });
    let resp = post(
        &h,
        "/v1/completions",
        json!({"prompt": "a = 1\n", "suffix": "\nprint(c)"}),
    )
    .await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["choices"][0]["text"], "c = a + b", "fences stripped");
    let seen = up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.body["messages"][1]["content"],
        "a = 1\n<CURSOR>\nprint(c)"
    );
}

#[tokio::test]
async fn streams_pass_through_split_bytes_in_openai_framing_with_usage() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let pieces = vec!["héllo".to_string(), " wörld ".into(), "🦀 done".into()];
    up.script(Reply::TextSplit {
        chunks: pieces.clone(),
        piece: 3,
    });
    let resp = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true, "stream_options": {"include_usage": true}}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers().contains_key("x-hearth-overhead-ms"));
    let events = sse_payloads(resp).await;
    assert_eq!(texts(&events), pieces.concat());
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    for v in &parsed[..parsed.len() - 1] {
        assert_eq!(v["object"], "text_completion");
        assert_eq!(v["model"], "cg");
        assert!(v["id"].as_str().unwrap().starts_with("cmpl-"));
        assert!(
            v["usage"].is_null() && v.get("usage").is_some(),
            "usage: null on every chunk but the last: {v}"
        );
    }
    let finish = &parsed[parsed.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    let usage = parsed.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["prompt_tokens"], 7);
    assert_eq!(usage["usage"]["total_tokens"], 10);
}

#[tokio::test]
async fn stop_sequences_are_cut_across_chunks_and_never_shown() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let chunks = vec![
        "return a".to_string(),
        " + b<|file_".into(),
        "separator|>junk".into(),
    ];
    up.script(Reply::Text {
        chunks: chunks.clone(),
        finish: "length",
    });
    let events = stream_x(&h).await;
    assert_eq!(texts(&events), "return a + b");
    let last: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");

    up.script(Reply::Text {
        chunks,
        finish: "length",
    });
    let body: Value = post(&h, "/v1/completions", json!({"prompt": "x"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["text"], "return a + b");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["usage"]["completion_tokens"], 3);

    // A client stop, and a model that repeats the suffix.
    up.script(Reply::Text {
        chunks: vec!["total = a + b\n    return total\n".into()],
        finish: "stop",
    });
    let body: Value = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "suffix": "\n    return total\n"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["text"], "total = a + b");
    up.script(Reply::Text {
        chunks: vec!["a; b".into()],
        finish: "stop",
    });
    let body: Value = post(&h, "/v1/completions", json!({"prompt": "x", "stop": ";"}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["text"], "a");
    assert!(
        up.last().body["stop"]
            .as_array()
            .unwrap()
            .contains(&json!(";"))
    );
}

/// A streamed answer the model server sent in one piece leaves Hearth in one piece too, its
/// ending (finish chunk and `[DONE]`) included: one chunk of the chunked encoding, then the
/// last. Read from the raw socket, where each body frame Hearth writes is one chunk.
#[tokio::test]
async fn a_streamed_answer_that_arrives_whole_is_written_once_with_its_ending() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    // Without a user, and with one: a completion that names its user may be superseded by the
    // next one for the same file, and is watched for that.
    for body in [
        json!({"prompt": "def add(a, b):", "stream": true}),
        json!({"prompt": "def add(a, b):", "stream": true, "user": "dev-1"}),
    ] {
        up.script(Reply::Text {
            chunks: vec!["return ".into(), "a + b".into()],
            finish: "stop",
        });
        assert_written_whole(&h, body.to_string()).await;
    }
}

/// Sends `body` as a streamed completion on a raw socket and checks the answer came as one
/// chunk of the chunked encoding, ending included.
async fn assert_written_whole(h: &Hearth, body: String) {
    use std::io::{Read, Write};

    let addr = h.addr;
    let raw = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(
            s,
            "POST /v1/completions HTTP/1.1\r\nHost: hearth\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        String::from_utf8(out).unwrap()
    })
    .await
    .unwrap();
    let (head, mut chunked) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let mut chunks = Vec::new();
    while let Some((size, rest)) = chunked.split_once("\r\n") {
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            break;
        }
        chunks.push(&rest[..size]);
        chunked = &rest[size + 2..];
    }
    assert_eq!(chunks.len(), 1, "{chunks:#?}");
    assert!(chunks[0].contains(r#""text":"return ""#), "{}", chunks[0]);
    assert!(chunks[0].contains(r#""text":"a + b""#), "{}", chunks[0]);
    assert!(
        chunks[0].contains(r#""finish_reason":"stop""#),
        "{}",
        chunks[0]
    );
    assert!(chunks[0].ends_with("data: [DONE]\n\n"), "{}", chunks[0]);
}

#[tokio::test]
async fn failures_after_the_stream_started_become_an_error_event_then_done() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    up.script(Reply::FailMidStream {
        chunks: vec!["partial".into()],
        error: json!({"error": {"message": "CUDA out of memory", "type": "InternalServerError", "code": 500}}),
    });
    let events = stream_x(&h).await;
    assert_eq!(texts(&events), "partial");
    let err = error_event(&events);
    assert!(err.contains("CUDA out of memory"), "{err}");

    up.script(Reply::Cut {
        chunks: vec!["half".into()],
    });
    let events = stream_x(&h).await;
    let err = error_event(&events);
    assert!(err.contains("before [DONE]"), "{err}");
}

#[tokio::test]
async fn each_upstream_error_shape_maps_to_a_status_with_its_message() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    // (upstream status, body, headers, status Hearth answers, text its message carries)
    type Case<'a> = (u16, &'a str, Vec<(String, String)>, StatusCode, &'a str);
    let cases: Vec<Case> = vec![
        (
            400,
            r#"{"error":{"message":"prompt is too long","type":"BadRequestError","param":null,"code":400}}"#,
            vec![],
            StatusCode::BAD_REQUEST,
            "prompt is too long",
        ),
        (
            404,
            r#"{"object":"error","message":"The model `cg` does not exist.","type":"NotFoundError","param":null,"code":404}"#,
            vec![],
            StatusCode::BAD_GATEWAY,
            "does not exist",
        ),
        (
            401,
            r#"{"error":"Unauthorized"}"#,
            vec![],
            StatusCode::BAD_GATEWAY,
            "api_key",
        ),
        (
            429,
            r#"{"error":{"message":"slow down","code":429}}"#,
            vec![("retry-after".into(), "7".into())],
            StatusCode::TOO_MANY_REQUESTS,
            "slow down",
        ),
        (
            503,
            "overloaded",
            vec![("retry-after".into(), "3".into())],
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
        ),
        (
            500,
            "<html>boom</html>",
            vec![],
            StatusCode::BAD_GATEWAY,
            "boom",
        ),
    ];
    for (status, body, headers, want, needle) in cases {
        for stream in [false, true] {
            up.script(Reply::Error {
                status,
                body: body.into(),
                headers: headers.clone(),
            });
            let resp = post(
                &h,
                "/v1/completions",
                json!({"prompt": "x", "stream": stream}),
            )
            .await;
            assert_eq!(resp.status(), want, "upstream {status}");
            let retry = resp
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            let err: Value = resp.json().await.unwrap();
            let msg = err["error"]["message"].as_str().unwrap();
            assert!(msg.contains(needle), "upstream {status}: {msg}");
            assert!(err["error"]["type"].is_string() && err["error"]["code"].is_string());
            if let Some((_, v)) = headers.first() {
                assert_eq!(
                    retry.as_deref(),
                    Some(v.as_str()),
                    "Retry-After passed through"
                );
            }
        }
    }
}

#[tokio::test]
async fn an_unreachable_deployment_is_502() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (_, models) = h.get("/api/v1/self_hosted_models").await;
    let id = models[0]["id"].as_i64().unwrap();
    h.patch(
        &format!("/api/v1/self_hosted_models/{id}"),
        json!({"endpoint": format!("http://{closed}/v1")}),
    )
    .await;
    let resp = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_unreachable");
}

#[tokio::test]
async fn each_timeout_is_a_504_or_an_error_event() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let (_, models) = h.get("/api/v1/self_hosted_models").await;
    let id = models[0]["id"].as_i64().unwrap();
    let (s, b) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"first_token_timeout_ms": 300, "total_timeout_ms": 600}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    // Non-streamed: the whole answer must arrive within the total timeout.
    up.script(Reply::StallBeforeHeaders(Duration::from_millis(1500)));
    let resp = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total timeout of 600 ms"),
        "{err}"
    );

    // Streamed: no first token in time.
    up.script(Reply::StallBeforeHeaders(Duration::from_millis(1500)));
    let resp = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::GATEWAY_TIMEOUT);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("first token timeout of 300 ms"),
        "{err}"
    );

    // Streamed: tokens came, then the server stalled past the total.
    up.script(Reply::StallAfter {
        chunks: vec!["some".into()],
        wait: Duration::from_millis(1500),
    });
    let events = stream_x(&h).await;
    assert_eq!(texts(&events), "some");
    let err = error_event(&events);
    assert!(err.contains("total timeout"), "{err}");

    // Streamed: tokens keep coming, one every 50 ms, past the total. Between them the read's
    // timer stays set rather than being polled again; it must still end the stream.
    up.script(Reply::Slow {
        count: 100,
        every: Duration::from_millis(50),
    });
    let started = std::time::Instant::now();
    let events = stream_x(&h).await;
    let took = started.elapsed();
    assert!(!texts(&events).is_empty(), "{events:?}");
    let err = error_event(&events);
    assert!(err.contains("total timeout of 600 ms"), "{err}");
    assert!(took < Duration::from_millis(2500), "{took:?}");

    let (s, _) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"first_token_timeout_ms": 5000, "total_timeout_ms": 1000}),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "first token cannot exceed total"
    );
}

#[tokio::test]
async fn a_client_that_leaves_cancels_the_upstream_request() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    up.script(Reply::Slow {
        count: 100,
        every: Duration::from_millis(30),
    });
    let resp = post(
        &h,
        "/v1/completions",
        json!({"prompt": "x", "stream": true}),
    )
    .await;
    let mut body = resp.bytes_stream();
    let mut got = 0;
    while got < 2 {
        let chunk = body.next().await.unwrap().unwrap();
        got += String::from_utf8_lossy(&chunk).matches("tok").count();
    }
    drop(body);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while up.abandoned() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream stream was not dropped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        up.slow_chunks_sent() < 20,
        "the upstream kept generating: {}",
        up.slow_chunks_sent()
    );
    // The metrics say what happened.
    let metrics = h.open_get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"status="499""#), "{metrics}");
}

#[tokio::test]
async fn routing_refusals_say_why() {
    let up = FakeUpstream::start().await;
    let h = setup(
        &up,
        &[
            ("cg", "codegemma", "cg"),
            ("mixtral", "mixtral", "Mixtral-8x7B-Instruct-v0.1"),
        ],
    )
    .await;

    let err = |resp: reqwest::Response| async move {
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        (
            status,
            v["error"]["code"].as_str().unwrap().to_string(),
            v["error"]["message"].as_str().unwrap().to_string(),
        )
    };
    h.put(
        "/api/v1/feature_settings/duo_chat",
        json!({"provider": "disabled"}),
    )
    .await;
    let (s, code, msg) = err(post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await)
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::FORBIDDEN, "feature_disabled")
    );
    assert!(msg.contains("duo_chat"), "{msg}");

    let (s, code, _) = err(post(
        &h,
        "/v1/completions",
        json!({"model": "nope", "prompt": "x"}),
    )
    .await)
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::NOT_FOUND, "model_not_found")
    );
    // CodeGemma 2b does no generation or chat.
    h.put(
        "/api/v1/feature_settings/duo_chat",
        json!({"provider": "self_hosted", "self_hosted_model_id": 2}),
    )
    .await;
    let (s, code, msg) = err(post(
        &h,
        "/v1/chat/completions",
        json!({"model": "cg", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await)
    .await;
    assert_eq!(
        (s, code.as_str()),
        (StatusCode::BAD_REQUEST, "model_not_capable"),
        "{msg}"
    );

    for (body, param) in [
        (json!({"prompt": "x", "n": 2}), "n"),
        (json!({"prompt": "x", "temperature": 3}), "temperature"),
        (json!({"prompt": ["a", "b"]}), "prompt"),
        (json!({"prompt": "x", "max_tokens": 0}), "max_tokens"),
        (json!({"prompt": 5}), "prompt"),
        (json!({"suffix": "x"}), "prompt"),
        (json!({"prompt": null}), "prompt"),
    ] {
        let resp = post(&h, "/v1/completions", body).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{param}");
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["param"], param);
        assert_eq!(v["error"]["type"], "invalid_request_error");
    }
    let resp = h
        .http()
        .post(h.url("/v1/completions"))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.json::<Value>().await.unwrap()["error"]["message"].is_string());
}

#[tokio::test]
async fn chat_whole_and_streamed() {
    let up = FakeUpstream::start().await;
    let h = setup(
        &up,
        &[
            ("cg", "codegemma", "cg"),
            ("mixtral", "mixtral", "Mixtral-8x7B-Instruct-v0.1"),
        ],
    )
    .await;
    h.put("/api/v1/feature_settings/duo_chat", bind(2)).await;
    up.script(Reply::Text {
        chunks: vec!["Hello".into(), " there".into()],
        finish: "stop",
    });
    let body: Value = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [{"type": "text", "text": "hi"}]}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello there"})
    );
    assert_eq!(body["model"], "mixtral");
    let seen = up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(
        seen.body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(seen.body["model"], "Mixtral-8x7B-Instruct-v0.1");

    up.script(Reply::Text {
        chunks: vec!["Hel".into(), "lo".into()],
        finish: "stop",
    });
    let events = sse_payloads(
        post(
            &h,
            "/v1/chat/completions",
            json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    let parsed: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(
        parsed[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    let content: String = parsed
        .iter()
        .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello");
    assert_eq!(
        parsed.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(parsed[1]["object"], "chat.completion.chunk");
}

#[tokio::test]
async fn models_lists_deployments_with_what_they_serve() {
    let up = FakeUpstream::start().await;
    let h = setup(
        &up,
        &[
            ("cg", "codegemma", "cg"),
            ("mixtral", "mixtral", "Mixtral-8x7B-Instruct-v0.1"),
        ],
    )
    .await;
    let v: Value = h.open_get("/v1/models").await.json().await.unwrap();
    assert_eq!(v["object"], "list");
    let data = v["data"].as_array().unwrap();
    assert_eq!(data[0]["id"], "cg");
    assert_eq!(data[0]["features"], json!(["code_completions"]));
    assert_eq!(data[0]["serves"], json!(["completions"]));
    assert_eq!(data[1]["serves"], json!(["completions", "chat"]));
    assert!(data[1]["created"].as_u64().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn client_keys_guard_the_inference_routes() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    assert_eq!(
        post(&h, "/v1/completions", json!({"prompt": "x"}))
            .await
            .status(),
        StatusCode::OK,
        "loopback, no keys"
    );
    let (s, created) = h.post("/api/v1/client_keys", json!({"name": "ide"})).await;
    assert_eq!(s, StatusCode::CREATED);
    let key = created["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("hth_") && key.starts_with(created["prefix"].as_str().unwrap()));
    let (_, list) = h.get("/api/v1/client_keys").await;
    assert!(list[0].get("key").is_none(), "the key is shown once");
    assert_eq!(
        post(&h, "/v1/completions", json!({"prompt": "x"}))
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let with = |k: &str| {
        h.http()
            .post(h.url("/v1/completions"))
            .bearer_auth(k)
            .json(&json!({"prompt": "x"}))
            .send()
    };
    assert_eq!(with(&key).await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        with("hth_wrong").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let id = created["id"].as_i64().unwrap();
    let (s, revoked) = h.delete(&format!("/api/v1/client_keys/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(revoked["active"], false);
    assert_eq!(
        with(&key).await.unwrap().status(),
        StatusCode::OK,
        "no active key left: loopback is open again"
    );
    assert!(!h.logs().contains(&key), "the key never reaches the log");
}

#[tokio::test]
async fn without_keys_a_non_loopback_listener_refuses_inference() {
    let up = FakeUpstream::start().await;
    let h = setup_with(
        Options {
            listen: Some("0.0.0.0:0"),
            ..Default::default()
        },
        &up,
        &[("cg", "codegemma", "cg")],
    )
    .await;
    let resp = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "no_client_keys");
    assert!(up.requests().is_empty());
}

#[tokio::test]
async fn prompts_are_logged_only_with_verbose_ai_logs_on() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let marker = "PROMPT-MARKER-1b2c";
    up.script(Reply::Text {
        chunks: vec!["ANSWER-MARKER-9z".into()],
        finish: "stop",
    });
    post(&h, "/v1/completions", json!({"prompt": marker})).await;
    h.wait_for_log("/v1/completions 200");
    assert!(
        !h.logs().contains(marker) && !h.logs().contains("ANSWER-MARKER-9z"),
        "verbose logs are off"
    );

    h.patch("/api/v1/settings", json!({"verbose_ai_logs": true}))
        .await;
    up.script(Reply::Text {
        chunks: vec!["ANSWER-MARKER-9z".into()],
        finish: "stop",
    });
    h.http()
        .post(h.url("/v1/completions"))
        .header("x-request-id", "verbose-1")
        .json(&json!({"prompt": marker, "stream": true, "stream_options": {"include_usage": true}}))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let line = h.wait_for_log("\"message\":\"ai request\"");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["correlation_id"], "verbose-1");
    assert!(v["prompt"].as_str().unwrap().contains(marker));
    assert_eq!(v["completion"], "ANSWER-MARKER-9z");
    assert_eq!(v["deployment"], "cg");
    assert_eq!(v["model"], "cg");
    assert_eq!(v["prompt_tokens"], 7);
    assert!(v["duration_ms"].is_u64() && v["time_to_first_token_ms"].is_u64());
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_overhead() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    for _ in 0..3 {
        let resp = post(&h, "/v1/completions", json!({"prompt": "x"})).await;
        let overhead: f64 = resp.headers()["x-hearth-overhead-ms"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(overhead >= 0.0);
    }
    up.script(Reply::Error {
        status: 503,
        body: "busy".into(),
        headers: vec![],
    });
    post(&h, "/v1/completions", json!({"prompt": "x"})).await;
    let m = h.open_get("/metrics").await.text().await.unwrap();
    for needle in [
        r#"hearth_requests_total{feature="code_completions",deployment="cg",status="200"} 3"#,
        r#"hearth_errors_total{feature="code_completions",deployment="cg",status="503"} 1"#,
        r#"hearth_tokens_total{feature="code_completions",deployment="cg",direction="in"} 21"#,
        r#"hearth_gateway_overhead_seconds_count{feature="code_completions"} 4"#,
        r#"hearth_upstream_latency_seconds_count{feature="code_completions",deployment="cg"} 4"#,
    ] {
        assert!(m.contains(needle), "missing {needle} in:\n{m}");
    }
}

/// Every error under /v1, the router's own 404 and 405 included, is OpenAI's exact envelope,
/// a wrong value is 400 (what SDKs raise as BadRequestError), and no message names a Rust type.
#[tokio::test]
async fn every_v1_error_is_openais_envelope_in_plain_words() {
    let up = FakeUpstream::start().await;
    let h = setup(&up, &[("cg", "codegemma", "cg")]).await;
    let envelope = |v: &Value| {
        let e = v["error"].as_object().unwrap_or_else(|| panic!("{v}"));
        let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["code", "message", "param", "type"], "{v}");
    };

    let resp = post(&h, "/v1/nothing/here", json!({})).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let v: Value = resp.json().await.unwrap();
    envelope(&v);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    let resp = h.http().get(h.url("/v1/completions")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    envelope(&resp.json().await.unwrap());
    // Outside /v1 the admin API keeps its own shape.
    let resp = h.http().get(h.url("/nothing")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"].get("type").is_none(), "{v}");

    let chat = |extra: Value| {
        let mut body = json!({"messages": [{"role": "user", "content": "hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    for (path, body, param, words) in [
        (
            "/v1/completions",
            json!({"prompt": "x", "temperature": "hot"}),
            "temperature",
            "expected a number",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "max_tokens": -1}),
            "max_tokens",
            "whole number",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "stream_options": "yes"}),
            "stream_options",
            "expected an object",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "n": 0}),
            "n",
            "n must be 1",
        ),
        (
            "/v1/completions",
            json!({"prompt": "x", "n": 3}),
            "n",
            "n must be 1",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"messages": [{"role": "user", "content": 5}]})),
            "messages[0].content",
            "accepted shapes",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"messages": [{"role": "user", "content": null}]})),
            "messages[0].content",
            "required",
        ),
        (
            "/v1/chat/completions",
            chat(json!({"messages": [{"role": "user"}]})),
            "messages[0].content",
            "required",
        ),
        (
            "/v1/chat/completions",
            json!({}),
            "messages",
            "`messages` is required",
        ),
    ] {
        let resp = post(&h, path, body.clone()).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{body}");
        let v: Value = resp.json().await.unwrap();
        envelope(&v);
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], param, "{v}");
        let msg = v["error"]["message"].as_str().unwrap();
        assert!(msg.contains(words), "{body}: {msg}");
        for rust in ["u32", "f32", "f64", "struct ", "enum ", "Option<", "n > 1"] {
            assert!(!msg.contains(rust), "{body}: {msg}");
        }
    }
    assert_eq!(up.requests().len(), 0, "nothing invalid went upstream");
}

/// The SSE payloads of a streamed completion of the prompt "x".
async fn stream_x(h: &Hearth) -> Vec<String> {
    sse_payloads(post(h, "/v1/completions", json!({"prompt": "x", "stream": true})).await).await
}
