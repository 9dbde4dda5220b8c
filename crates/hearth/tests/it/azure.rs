//! Azure OpenAI deployments against a stand-in that speaks Azure's dialect: the deployments URL
//! with `api-version` and the v1 form, `api-key` or an Entra bearer token, a first stream
//! chunk without choices, content-filter answers, DeploymentNotFound and retry headers.

use hearth_testkit::{FakeUpstream, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, SECRET, post, sse_json};

const KEY: &str = "azure-key-SECRET-MARKER-7f3a9c";

async fn setup(api_version: Option<&str>, api_key: &str) -> (Hearth, FakeUpstream, i64) {
    assert!(KEY.contains(&SECRET[3..]), "the harness scans for the key");
    let up = FakeUpstream::start().await;
    up.azure(api_key.trim_start_matches("Bearer "), &["gpt-4o"]);
    let h = Hearth::start();
    let mut body = json!({"name": "gpt-4o on azure", "family": "gpt", "identifier": "azure/gpt-4o",
        "endpoint": up.azure_endpoint(), "api_key": api_key});
    if let Some(v) = api_version {
        body["api_version"] = json!(v);
    }
    let id = h.create(body).await;
    for f in ["code_completions", "duo_chat"] {
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{f}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    (h, up, id)
}

#[tokio::test]
async fn classic_deployments_url_with_api_key_both_routes_streamed_and_not() {
    let (h, up, _) = setup(None, KEY).await;

    up.script(Reply::Text {
        chunks: vec!["Hi".into(), " there".into()],
        finish: "stop",
    });
    let body: Value = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hi there");
    let seen = up.last();
    assert_eq!(seen.path, "/openai/deployments/gpt-4o/chat/completions");
    assert_eq!(seen.query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(seen.headers["api-key"], KEY);
    assert!(!seen.headers.contains_key("authorization"));
    assert!(
        seen.body.get("model").is_none(),
        "the classic URL names the deployment"
    );

    up.script(Reply::Text {
        chunks: vec!["Hi".into(), " there".into()],
        finish: "stop",
    });
    let chunks = sse_json(
        post(
            &h,
            "/v1/chat/completions",
            json!({"stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await,
    )
    .await;
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        content, "Hi there",
        "the choices-less first chunk is skipped"
    );
    assert!(
        chunks
            .iter()
            .all(|c| c["choices"].as_array().is_some_and(|a| !a.is_empty()))
    );

    // Completion on a chat-only family: a cursor message to the chat endpoint.
    up.script(Reply::Text {
        chunks: vec!["c = a + b".into()],
        finish: "stop",
    });
    let body: Value = post(
        &h,
        "/v1/completions",
        json!({"prompt": "a = 1\n", "suffix": "\nprint(c)"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["text"], "c = a + b");
    assert_eq!(
        up.last().path,
        "/openai/deployments/gpt-4o/chat/completions"
    );
    up.script(Reply::Text {
        chunks: vec!["c = ".into(), "a + b".into()],
        finish: "stop",
    });
    let chunks = sse_json(
        post(
            &h,
            "/v1/completions",
            json!({"prompt": "a = 1\n", "stream": true}),
        )
        .await,
    )
    .await;
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["text"].as_str())
        .collect();
    assert_eq!(text, "c = a + b");
}

#[tokio::test]
async fn the_v1_api_puts_the_deployment_in_model() {
    let (h, up, _) = setup(Some("v1"), KEY).await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.path, "/openai/v1/chat/completions");
    assert_eq!(seen.query, None);
    assert_eq!(seen.body["model"], "gpt-4o");
}

#[tokio::test]
async fn an_entra_token_goes_as_bearer() {
    let token = "Bearer eyJ0eXAiOiJKV1Qi.SECRET-MARKER-7f3a9c";
    let (h, up, _) = setup(None, token).await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.headers["authorization"], token);
    assert!(!seen.headers.contains_key("api-key"));
}

#[tokio::test]
async fn content_filter_answers_are_surfaced() {
    let (h, up, _) = setup(None, KEY).await;
    up.script(Reply::ContentFiltered {
        chunks: vec!["partial".into()],
    });
    let body: Value = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    up.script(Reply::ContentFiltered {
        chunks: vec!["partial".into()],
    });
    let chunks = sse_json(
        post(
            &h,
            "/v1/chat/completions",
            json!({"stream": true, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await,
    )
    .await;
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "content_filter"
    );

    up.script(Reply::Error {
        status: 400,
        body: json!({"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            "type": null, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation"}}}).to_string(),
        headers: vec![],
    });
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "content_filter");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("content filter"),
        "{err}"
    );
}

#[tokio::test]
async fn azure_errors_and_retry_headers() {
    let (h, up, id) = setup(None, KEY).await;
    up.script(Reply::Error {
        status: 429,
        body: json!({"error": {"code": "429", "message": "Please retry after 2 seconds."}})
            .to_string(),
        headers: vec![
            ("retry-after-ms".into(), "1500".into()),
            ("retry-after".into(), "2".into()),
        ],
    });
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "2");
    up.script(Reply::Error {
        status: 429,
        body: "{}".into(),
        headers: vec![("retry-after".into(), "7".into())],
    });
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.headers()["retry-after"], "7");

    // A deployment the resource does not have.
    h.patch(
        &format!("/api/v1/self_hosted_models/{id}"),
        json!({"identifier": "azure/gpt-5"}),
    )
    .await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("azure/<deployment name>"),
        "{err}"
    );

    // A wrong key.
    h.patch(
        &format!("/api/v1/self_hosted_models/{id}"),
        json!({"identifier": "azure/gpt-4o", "api_key": "wrong-SECRET-MARKER-7f3a9c"}),
    )
    .await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_auth");
}

// Multi-threaded: the CLI runs as a blocking child process while the stand-in answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_checks_report_success_or_the_platforms_error() {
    let (h, up, id) = setup(None, KEY).await;
    let (s, ok) = h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(ok["latency_ms"].is_u64());
    let seen = up.last();
    assert_eq!(seen.body["max_tokens"], 1);
    assert!(
        seen.headers["x-request-id"]
            .to_str()
            .unwrap()
            .starts_with("check-")
    );

    h.patch(
        &format!("/api/v1/self_hosted_models/{id}"),
        json!({"identifier": "azure/gpt-5"}),
    )
    .await;
    let (_, bad) = h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(bad["ok"], false);
    assert!(
        bad["error"]
            .as_str()
            .unwrap()
            .contains("DeploymentNotFound")
            || bad["error"].as_str().unwrap().contains("no deployment"),
        "{bad}"
    );

    // An OpenAI-compatible deployment is checked with a 1-token text completion.
    let vllm = h.create(json!({"name": "cs", "family": "codestral", "endpoint": format!("http://{}/v1", up.addr),
        "identifier": "custom_openai/codestral"})).await;
    let (_, ok) = h
        .post(
            &format!("/api/v1/self_hosted_models/{vllm}/check"),
            json!({}),
        )
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(up.last().path, "/v1/completions");

    // Bedrock checks are in `bedrock.rs`, against its stand-in: no test may reach AWS itself.

    // The CLI: exit 0 on success, 1 on failure, with the reason.
    let cli = |name: &str| {
        std::process::Command::new(crate::harness::BIN)
            .args(["models", "check", name, "--url", &h.url("")])
            .env("HEARTH_ADMIN_TOKEN", crate::harness::ADMIN_TOKEN)
            .output()
            .unwrap()
    };
    let out = cli("cs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("OK: cs answered in"));
    let out = cli("gpt-4o on azure");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("FAILED: "));
}

#[tokio::test]
async fn api_versions_are_validated() {
    let (h, _up, id) = setup(Some("2025-04-01-preview"), KEY).await;
    let (_, d) = h.get(&format!("/api/v1/self_hosted_models/{id}")).await;
    assert_eq!(d["api_version"], "2025-04-01-preview");
    let (s, e) = h
        .patch(
            &format!("/api/v1/self_hosted_models/{id}"),
            json!({"api_version": "latest"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["field"], "api_version");
}
