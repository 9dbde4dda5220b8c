//! Bedrock deployments against a stand-in that recomputes every request's SigV4 signature on
//! its own and answers in real event-stream frames: each catalog family on Bedrock through
//! both routes, streamed and not; broken frames, exceptions, cut streams; Bedrock's errors.

use hearth_testkit::{ACCESS_KEY, API_KEY, BedrockReply, FakeBedrock, REGION, SECRET_KEY};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options, post, sse_json};

const CLAUDE: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const MIXTRAL: &str = "mistral.mixtral-8x7b-instruct-v0:1";
const MISTRAL: &str = "mistral.mistral-7b-instruct-v0:2";

fn creds() -> String {
    format!("{ACCESS_KEY}:{SECRET_KEY}")
}

async fn setup() -> (Hearth, FakeBedrock) {
    let fb = FakeBedrock::start().await;
    let h = Hearth::start();
    for (name, family, id) in [
        ("claude", "claude_3", CLAUDE),
        ("mixtral", "mixtral", MIXTRAL),
        ("mistral", "mistral", MISTRAL),
    ] {
        h.create(json!({"name": name, "family": family, "identifier": format!("bedrock/{id}"), "endpoint": fb.endpoint(),
            "region": REGION, "api_key": creds()})).await;
    }
    for f in ["code_completions", "duo_chat"] {
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{f}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    (h, fb)
}

fn streamed_text(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| {
            e["choices"][0]["text"]
                .as_str()
                .or_else(|| e["choices"][0]["delta"]["content"].as_str())
        })
        .collect()
}

#[tokio::test]
async fn every_bedrock_family_through_both_routes_streamed_and_not() {
    let (h, fb) = setup().await;
    for (name, id) in [
        ("claude", CLAUDE),
        ("mixtral", MIXTRAL),
        ("mistral", MISTRAL),
    ] {
        let encoded = id.replace(':', "%3A");
        // Chat: Converse, whole and streamed.
        fb.script(BedrockReply::Text {
            chunks: vec!["Hel".into(), "lo".into()],
            stop_reason: "end_turn",
        });
        let body: Value = post(&h, "/v1/chat/completions", json!({"model": name, "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}))
            .await.json().await.unwrap();
        assert_eq!(
            body["choices"][0]["message"]["content"], "Hello",
            "{name}: {body}"
        );
        assert_eq!(body["usage"]["prompt_tokens"], 9);
        let seen = fb.last();
        assert_eq!(seen.path, format!("/model/{encoded}/converse"), "{name}");
        assert_eq!(seen.body["system"], json!([{"text": "be brief"}]));
        assert_eq!(seen.body["messages"][0]["content"][0]["text"], "hi");

        fb.script(BedrockReply::Text {
            chunks: vec!["Hel".into(), "lo".into()],
            stop_reason: "max_tokens",
        });
        let ev = sse_json(
            post(
                &h,
                "/v1/chat/completions",
                json!({"model": name, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await,
        )
        .await;
        assert_eq!(streamed_text(&ev), "Hello", "{name}");
        assert_eq!(
            ev[ev.len() - 2]["choices"][0]["finish_reason"],
            "length",
            "{name}"
        );
        assert_eq!(
            ev.last().unwrap()["usage"]["completion_tokens"],
            2,
            "{name}"
        );
        assert_eq!(
            fb.last().path,
            format!("/model/{encoded}/converse-stream"),
            "{name}"
        );

        // Code completion, whole and streamed.
        fb.script(BedrockReply::Text {
            chunks: vec!["```python\nc = a + b\n```".into()],
            stop_reason: "end_turn",
        });
        let body: Value = post(
            &h,
            "/v1/completions",
            json!({"model": name, "prompt": "a = 1\n", "suffix": "\nprint(c)"}),
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(body["choices"][0]["text"], "c = a + b", "{name}: {body}");
        let seen = fb.last();
        if name == "claude" {
            assert_eq!(seen.path, format!("/model/{encoded}/converse"));
            assert!(
                seen.body["messages"][0]["content"][0]["text"]
                    .as_str()
                    .unwrap()
                    .contains("a = 1\n<CURSOR>\nprint(c)")
            );
        } else {
            assert_eq!(
                seen.path,
                format!("/model/{encoded}/invoke"),
                "{name}: Mistral's native text completion"
            );
            let prompt = seen.body["prompt"].as_str().unwrap();
            assert!(
                prompt.starts_with("<s>[INST] ")
                    && prompt.ends_with("a = 1\n<CURSOR>\nprint(c) [/INST]"),
                "{prompt}"
            );
            assert!(seen.body["max_tokens"].is_u64());
        }
        fb.script(BedrockReply::Text {
            chunks: vec!["c = ".into(), "a + b".into()],
            stop_reason: "end_turn",
        });
        let ev = sse_json(
            post(
                &h,
                "/v1/completions",
                json!({"model": name, "prompt": "a = 1\n", "stream": true}),
            )
            .await,
        )
        .await;
        assert_eq!(streamed_text(&ev), "c = a + b", "{name}");
        let stream_path = if name == "claude" {
            "converse-stream"
        } else {
            "invoke-with-response-stream"
        };
        assert_eq!(
            fb.last().path,
            format!("/model/{encoded}/{stream_path}"),
            "{name}"
        );
    }
    // Every request above passed the stand-in's own SigV4 check, colon sent as %3A.
    for r in fb.requests() {
        let auth = r.headers["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/"))
                && auth.contains(&format!("/{REGION}/bedrock/aws4_request")),
            "{auth}"
        );
    }
}

#[tokio::test]
async fn a_wrong_signature_is_refused_and_a_bedrock_api_key_works() {
    let (h, fb) = setup().await;
    h.patch(
        "/api/v1/self_hosted_models/1",
        json!({"api_key": format!("{ACCESS_KEY}:not-the-SECRET-MARKER-7f3a9c")}),
    )
    .await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["code"], "upstream_auth");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signature"),
        "{err}"
    );

    h.patch("/api/v1/self_hosted_models/1", json!({"api_key": API_KEY}))
        .await;
    let resp = post(
        &h,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        fb.last().headers["authorization"],
        format!("Bearer {API_KEY}").as_str()
    );
}

#[tokio::test]
async fn broken_streams_end_in_an_error_event_never_a_hang() {
    let (h, fb) = setup().await;
    let cases = [
        (
            BedrockReply::CorruptCrc {
                chunks: vec!["ok ".into()],
            },
            "corrupted event-stream frame",
        ),
        (
            BedrockReply::Exception {
                chunks: vec!["ok ".into()],
                exception_type: "throttlingException",
                message: "Too many tokens",
            },
            "throttlingException",
        ),
        (
            BedrockReply::Exception {
                chunks: vec!["ok ".into()],
                exception_type: "modelStreamErrorException",
                message: "model failed",
            },
            "modelStreamErrorException",
        ),
        (
            BedrockReply::CutMidFrame {
                chunks: vec!["ok ".into()],
            },
            "cut off mid-frame",
        ),
    ];
    for (reply, needle) in cases {
        for model in ["claude", "mixtral"] {
            fb.script(reply.clone());
            let path = if model == "claude" {
                "/v1/chat/completions"
            } else {
                "/v1/completions"
            };
            // Each route gets only its own fields: another route's would be refused by name.
            let body = if model == "claude" {
                json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]})
            } else {
                json!({"model": model, "stream": true, "prompt": "x"})
            };
            let ev = sse_json(post(&h, path, body).await).await;
            assert_eq!(streamed_text(&ev), "ok ", "{needle} / {model}");
            let msg = ev.last().unwrap()["error"]["message"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(msg.contains(needle), "{model}: {msg}");
        }
    }
}

#[tokio::test]
async fn bedrock_errors_map_to_statuses_with_hints() {
    let (h, fb) = setup().await;
    let cases = [
        (
            429,
            "ThrottlingException",
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
        ),
        (
            429,
            "ModelNotReadyException",
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
        ),
        (
            400,
            "ValidationException",
            StatusCode::BAD_REQUEST,
            "refused the request",
        ),
        (
            403,
            "AccessDeniedException",
            StatusCode::FORBIDDEN,
            "bedrock:InvokeModel",
        ),
        (
            408,
            "ModelTimeoutException",
            StatusCode::GATEWAY_TIMEOUT,
            "timed out",
        ),
        (
            404,
            "ResourceNotFoundException",
            StatusCode::BAD_GATEWAY,
            "bedrock/<model id>",
        ),
        (
            503,
            "ServiceUnavailableException",
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
        (
            500,
            "InternalServerException",
            StatusCode::BAD_GATEWAY,
            "failed",
        ),
    ];
    for (status, error_type, want, needle) in cases {
        fb.script(BedrockReply::Error {
            status,
            error_type,
            message: "upstream says no",
        });
        let resp = post(
            &h,
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "x"}]}),
        )
        .await;
        assert_eq!(resp.status(), want, "{error_type}");
        if want == StatusCode::TOO_MANY_REQUESTS {
            assert!(resp.headers().contains_key("retry-after"), "{error_type}");
        }
        let err: Value = resp.json().await.unwrap();
        let msg = err["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains(needle) && msg.contains("upstream says no"),
            "{error_type}: {msg}"
        );
    }
}

#[tokio::test]
async fn registration_needs_a_region_and_credentials_and_the_check_works() {
    let (h, fb) = setup().await;
    let base =
        json!({"name": "c2", "family": "claude_3", "identifier": format!("bedrock/{CLAUDE}")});
    let (s, e) = h.post("/api/v1/self_hosted_models", base.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["field"], "region");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AWS_REGION")
    );
    let mut with_region = base.clone();
    with_region["region"] = json!("us-east-1");
    let (s, e) = h.post("/api/v1/self_hosted_models", with_region).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(e["error"]["field"], "api_key");
    assert!(
        e["error"]["message"]
            .as_str()
            .unwrap()
            .contains("AWS_ACCESS_KEY_ID")
    );

    let (_, ok) = h
        .post("/api/v1/self_hosted_models/2/check", json!({}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert!(
        fb.last().path.ends_with("/invoke"),
        "mixtral is checked with a 1-token text completion"
    );

    // Credentials and region from the environment, as GitLab's docs set them.
    let env_h = Hearth::start_with(Options {
        env: vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION_NAME", REGION.into()),
        ],
        ..Default::default()
    });
    let id = env_h.create(json!({"name": "env", "family": "claude_3", "identifier": format!("bedrock/{CLAUDE}"), "endpoint": fb.endpoint()})).await;
    let (_, ok) = env_h
        .post(&format!("/api/v1/self_hosted_models/{id}/check"), json!({}))
        .await;
    assert_eq!(ok["ok"], true, "{ok}");
}
