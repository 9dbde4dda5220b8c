//! GitLab's AI-gateway routes as a GitLab instance calls them: tokens signed with a key the
//! stand-in instance publishes through OIDC discovery, the payloads of gitlab-aigw.md §7, and
//! the exact answers and stream framing of §1 and §9.

use futures_util::StreamExt;
use hearth_testkit::{FakeGitlab, FakeUpstream, GITLAB_KEY, INSTANCE_ID, OTHER_KEY, Reply, mint};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options};

struct Env {
    h: Hearth,
    gl: FakeGitlab,
    up: FakeUpstream,
}

async fn setup() -> Env {
    let gl = FakeGitlab::start().await;
    let up = FakeUpstream::start().await;
    let h = Hearth::start_with(Options {
        env: vec![("HEARTH_GITLAB_URL", gl.url())],
        ..Default::default()
    });
    Env { h, gl, up }
}

const SCOPES: &[&str] = &["complete_code", "generate_code", "duo_chat"];

impl Env {
    fn token(&self) -> String {
        mint(&self.gl.claims(SCOPES), "k1", GITLAB_KEY)
    }

    fn request(&self, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let mut r = self
            .h
            .http()
            .post(self.h.url(path))
            .header("x-gitlab-authentication-type", "oidc")
            .header("x-gitlab-realm", "self-managed")
            .header("x-gitlab-instance-id", INSTANCE_ID)
            .header("x-gitlab-enabled-feature-flags", "flag_a,flag_b");
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.request(path, Some(&self.token()))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// The completion payload GitLab's Rails sends for a self-hosted model (§7).
    fn completion(&self, family: &str) -> Value {
        json!({
            "current_file": {"file_name": "app/calc.py", "content_above_cursor": "def add(a, b):\n    ",
                "content_below_cursor": "\n\nprint(add(1, 2))\n"},
            "stream": false, "choices_count": 0, "telemetry": [], "prompt_version": 2, "prompt": null,
            "model_provider": "litellm", "model_name": family, "model_endpoint": self.up.endpoint(),
            "model_api_key": "upstream-SECRET-MARKER-7f3a9c", "model_identifier": format!("custom_openai/{family}-served"),
            "project_path": "group/project", "unknown_field": "ignored",
        })
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Sends a completion with `token` and `extra` headers (set, not added); returns status and body.
async fn try_auth(
    env: &Env,
    token: Option<&str>,
    extra: &[(&str, &str)],
    path: &str,
) -> (StatusCode, Value) {
    let mut r = env
        .h
        .http()
        .post(env.h.url(path))
        .header("x-gitlab-authentication-type", "oidc")
        .header("x-gitlab-realm", "self-managed")
        .header("x-gitlab-instance-id", INSTANCE_ID);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let mut req = r.json(&env.completion("codestral")).build().unwrap();
    for (k, v) in extra {
        req.headers_mut().insert(
            reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let resp = env.h.http().execute(req).await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

/// A token with its claims edited, signed with GitLab's key.
fn edited(env: &Env, edit: impl Fn(&mut Value)) -> String {
    let mut c = env.gl.claims(SCOPES);
    edit(&mut c);
    mint(&c, "k1", GITLAB_KEY)
}

async fn refused(env: &Env, token: Option<&str>, extra: &[(&str, &str)], error: &str) {
    let (s, v) = try_auth(env, token, extra, "/v2/code/completions").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v, json!({"error": error}));
    assert!(env.up.requests().is_empty(), "nothing reached the model");
}

#[tokio::test]
async fn auth_no_header() {
    let env = setup().await;
    refused(&env, None, &[], "No authorization header presented").await;
}

#[tokio::test]
async fn auth_wrong_type() {
    let env = setup().await;
    refused(
        &env,
        Some(&env.token()),
        &[("x-gitlab-authentication-type", "pat")],
        "Invalid authentication token type - only OIDC is supported",
    )
    .await;
}

#[tokio::test]
async fn auth_bad_signature() {
    let env = setup().await;
    let forged = mint(&env.gl.claims(SCOPES), "k1", OTHER_KEY);
    refused(&env, Some(&forged), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn auth_alg_none() {
    use base64::Engine;
    let env = setup().await;
    let e = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        e(&json!({"alg": "none", "typ": "JWT", "kid": "k1"})),
        e(&env.gl.claims(SCOPES))
    );
    refused(&env, Some(&unsigned), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn auth_expired() {
    let env = setup().await;
    let t = edited(&env, |c| c["exp"] = json!(now() - 60));
    refused(&env, Some(&t), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn auth_not_yet_valid() {
    let env = setup().await;
    let t = edited(&env, |c| c["nbf"] = json!(now() + 600));
    refused(&env, Some(&t), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn auth_wrong_audience() {
    let env = setup().await;
    let t = edited(&env, |c| c["aud"] = json!(["someone-else"]));
    refused(&env, Some(&t), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn auth_realm_mismatch() {
    let env = setup().await;
    refused(
        &env,
        Some(&env.token()),
        &[("x-gitlab-realm", "saas")],
        "Header mismatch 'X-Gitlab-Realm'",
    )
    .await;
}

#[tokio::test]
async fn auth_instance_id_mismatch() {
    let env = setup().await;
    refused(
        &env,
        Some(&env.token()),
        &[(
            "x-gitlab-instance-id",
            "00000000-0000-0000-0000-000000000000",
        )],
        "Header mismatch 'X-Gitlab-Instance-Id'",
    )
    .await;
}

#[tokio::test]
async fn auth_missing_scope() {
    let env = setup().await;
    let chat_only = mint(&env.gl.claims(&["duo_chat"]), "k1", GITLAB_KEY);
    for (path, scope) in [
        ("/v2/code/completions", "complete_code"),
        ("/v2/code/generations", "generate_code"),
    ] {
        let (s, v) = try_auth(&env, Some(&chat_only), &[], path).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(
            v,
            json!({"detail": format!("Unauthorized to access {scope}")})
        );
    }
}

#[tokio::test]
async fn auth_unknown_kid_is_refetched_once_then_refused_until_gitlab_rotates() {
    let env = setup().await;
    assert_eq!(
        try_auth(&env, Some(&env.token()), &[], "/v2/code/completions")
            .await
            .0,
        StatusCode::OK
    );
    let rotated = mint(&env.gl.claims(SCOPES), "k2", OTHER_KEY);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = env.gl.jwks_fetches();
    let (s, v) = try_auth(&env, Some(&rotated), &[], "/v2/code/completions").await;
    assert_eq!(
        (s, v),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "Forbidden by auth provider"})
        )
    );
    assert_eq!(env.gl.jwks_fetches(), before + 1, "refetched once");
    env.gl.rotate_in("k2");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        try_auth(&env, Some(&rotated), &[], "/v2/code/completions")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn auth_garbage_token() {
    let env = setup().await;
    refused(&env, Some("not.a.jwt"), &[], "Forbidden by auth provider").await;
}

#[tokio::test]
async fn keys_are_cached_and_no_gitlab_url_means_no_access() {
    let env = setup().await;
    for _ in 0..5 {
        assert_eq!(
            env.post("/v2/code/completions", env.completion("codestral"))
                .await
                .status(),
            StatusCode::OK
        );
    }
    assert_eq!(
        env.gl.jwks_fetches(),
        1,
        "the key set is fetched once and cached"
    );

    let bare = Hearth::start();
    let resp = bare
        .http()
        .post(bare.url("/v2/code/completions"))
        .bearer_auth(env.token())
        .header("x-gitlab-authentication-type", "oidc")
        .json(&env.completion("codestral"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("HEARTH_GITLAB_URL"),
        "{v}"
    );
}

/// A compatible (`general`) model GitLab names: the served name picks the FIM format, and
/// Qwen2.5-Coder gets its repository tokens from `project_path` and the file name.
#[tokio::test]
async fn general_models_take_the_fim_format_their_served_name_names() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["return a + b".into()],
        finish: "stop",
    });
    let mut body = env.completion("general");
    body["model_identifier"] = json!("custom_openai/Qwen2.5-Coder-7B");
    let resp = env.post("/v2/code/completions", body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["text"], "return a + b");
    assert_eq!(v["model"]["name"], "general");
    let seen = env.up.last();
    assert_eq!(seen.path, "/v1/completions");
    assert_eq!(seen.body["model"], "Qwen2.5-Coder-7B");
    assert_eq!(
        seen.body["prompt"],
        "<|repo_name|>group/project\n<|file_sep|>app/calc.py\n<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))\n<|fim_middle|>"
    );

    // A served name that names no code family is asked in chat.
    env.up.script(Reply::Text {
        chunks: vec!["return a + b".into()],
        finish: "stop",
    });
    let mut body = env.completion("general");
    body["model_identifier"] = json!("custom_openai/Devstral-Small-2507");
    let resp = env.post("/v2/code/completions", body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = env.up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert!(
        seen.body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("<CURSOR>"),
        "{}",
        seen.body
    );
}

#[tokio::test]
async fn v2_completions_answer_field_for_field_with_the_families_fim_prompt() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["return a + b".into()],
        finish: "length",
    });
    let resp = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["id"], "id");
    assert_eq!(v["object"], "text_completion");
    assert!(v["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(v["experiments"], json!([]));
    assert_eq!(
        v["choices"],
        json!([{"text": "return a + b", "index": 0, "finish_reason": "length"}])
    );
    assert_eq!(v["model"]["engine"], "litellm");
    assert_eq!(v["model"]["name"], "codestral");
    assert_eq!(v["model"]["lang"], "python");
    assert_eq!(
        v["model"]["tokens_consumption_metadata"],
        json!({"input_tokens": 7, "output_tokens": 3,
        "max_output_tokens_used": false, "context_tokens_sent": 0, "context_tokens_used": 0})
    );
    assert_eq!(
        v["metadata"]["enabled_feature_flags"],
        json!(["flag_a", "flag_b"])
    );
    let seen = env.up.last();
    assert_eq!(seen.path, "/v1/completions");
    assert_eq!(seen.body["model"], "codestral-served");
    assert_eq!(
        seen.body["prompt"],
        "<s>[SUFFIX]\n\nprint(add(1, 2))\n[PREFIX]def add(a, b):\n    "
    );
    assert_eq!(
        seen.headers["authorization"],
        "Bearer upstream-SECRET-MARKER-7f3a9c"
    );

    // The alias, and an empty answer dropping its choice.
    env.up.script(Reply::Text {
        chunks: vec!["   ".into()],
        finish: "stop",
    });
    let v: Value = env
        .post("/v2/completions", env.completion("codestral"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"], json!([]));

    // Raw text streaming: the pieces, no SSE framing.
    env.up.script(Reply::Text {
        chunks: vec!["return ".into(), "a + b".into()],
        finish: "stop",
    });
    let mut body = env.completion("codestral");
    body["stream"] = json!(true);
    let resp = env.post("/v2/code/completions", body).await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(resp.text().await.unwrap(), "return a + b");
}

#[tokio::test]
async fn v2_requests_are_validated_like_gitlabs() {
    let env = setup().await;
    let mut bad_name = env.completion("codestral");
    bad_name["model_name"] = json!("gemini");
    let mut too_long = env.completion("codestral");
    too_long["current_file"]["content_above_cursor"] = json!("x".repeat(100_001));
    let mut missing = env.completion("codestral");
    missing["current_file"]
        .as_object_mut()
        .unwrap()
        .remove("file_name");
    for body in [bad_name, too_long, missing] {
        let resp = env.post("/v2/code/completions", body).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let v: Value = resp.json().await.unwrap();
        assert!(v["detail"].is_string(), "{v}");
    }
    let mut gen_only = env.completion("codestral");
    gen_only["model_name"] = json!("qwen2p5-coder-7b");
    let resp = env.post("/v2/code/generations", gen_only).await;
    assert_eq!(
        resp.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "qwen is for completions only"
    );
}

#[tokio::test]
async fn without_model_fields_hearths_feature_setting_serves() {
    let env = setup().await;
    let id = env.h.create(json!({"name": "cg", "family": "codestral", "endpoint": env.up.endpoint(), "identifier": "custom_openai/cs-local"})).await;
    env.h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    let body = json!({"current_file": {"file_name": "a.rs", "content_above_cursor": "fn main() {", "content_below_cursor": "}"}});
    let resp = env.post("/v2/code/completions", body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["model"]["lang"], "rust");
    assert_eq!(env.up.last().body["model"], "cs-local");
}

#[tokio::test]
async fn generations_through_v2_v3_and_v4() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["```python\ndef sub(a, b):\n    return a - b\n```".into()],
        finish: "stop",
    });
    let mut body = env.completion("mistral");
    body["prompt"] = json!("write a subtract function");
    let v: Value = env
        .post("/v2/code/generations", body)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["text"], "def sub(a, b):\n    return a - b");
    let seen = env.up.last();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert!(
        seen.body["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("write a subtract function")
    );

    let components = |kind: &str| {
        json!({
            "prompt_components": [{"type": kind, "metadata": {"source": "GitLab EE", "version": "17.9.0"},
                "payload": {"file_name": "calc.py", "content_above_cursor": "import math\n", "content_below_cursor": "",
                    "language_identifier": "Python", "prompt_id": "code_suggestions/generations", "prompt_version": "^1.0.0",
                    "prompt": "compute a circle's area", "prompt_enhancer": {}}}],
            "model_metadata": {"provider": "openai", "name": "mistral", "endpoint": env.up.endpoint(),
                "api_key": "k-SECRET-MARKER-7f3a9c", "identifier": "custom_openai/mistral-served"},
        })
    };
    env.up.script(Reply::Text {
        chunks: vec!["area = math.pi * r ** 2".into()],
        finish: "stop",
    });
    let v: Value = env
        .post("/v3/code/completions", components("code_editor_generation"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"],
        json!([{"text": "area = math.pi * r ** 2", "index": 0, "finish_reason": "length"}])
    );
    assert_eq!(
        v["model"],
        json!({"engine": "agent", "name": "mistral", "lang": "python"})
    );
    assert_eq!(v["metadata"]["model"], v["model"]);
    assert!(v["metadata"]["timestamp"].is_u64());
    assert_eq!(v["metadata"]["region"], Value::Null);

    env.up.script(Reply::Text {
        chunks: vec!["area = ".into(), "math.pi".into()],
        finish: "stop",
    });
    let resp = env
        .post("/v4/code/suggestions", components("code_editor_generation"))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["x-streaming-format"], "sse");
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["x-accel-buffering"], "no");
    let mut raw = String::new();
    let mut s = resp.bytes_stream();
    while let Some(c) = s.next().await {
        raw.push_str(&String::from_utf8_lossy(&c.unwrap()));
    }
    let events: Vec<&str> = raw.split("\r\n\r\n").filter(|e| !e.is_empty()).collect();
    assert!(
        events[0].starts_with("event: stream_start\r\ndata: {\"metadata\":{"),
        "{raw:?}"
    );
    assert_eq!(
        events[1],
        "event: content_chunk\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"area = \"},\"index\":0}]}"
    );
    assert_eq!(
        events[2],
        "event: content_chunk\r\ndata: {\"choices\":[{\"delta\":{\"content\":\"math.pi\"},\"index\":0}]}"
    );
    assert_eq!(*events.last().unwrap(), "event: stream_end\r\ndata: null");

    // A v3 completion goes through the FIM path, engine = the metadata's provider.
    env.up.script(Reply::Text {
        chunks: vec!["x = 1".into()],
        finish: "stop",
    });
    let mut completion = components("code_editor_completion");
    completion["model_metadata"]["name"] = json!("codestral");
    let v: Value = env
        .post("/v3/code/completions", completion)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"]["engine"], "openai");
    assert_eq!(env.up.last().path, "/v1/completions");
}

#[tokio::test]
async fn model_configuration_check_answers_like_gitlabs_test_connection_expects() {
    let env = setup().await;
    let check = |status: Option<u16>| {
        if let Some(s) = status {
            env.up.script(Reply::Error {
                status: s,
                body: r#"{"error":"Unauthorized"}"#.into(),
                headers: vec![],
            });
        } else {
            env.up.script(Reply::Text {
                chunks: vec!["OK".into()],
                finish: "stop",
            });
        }
        json!({"stream": false, "inputs": {}, "prompt_version": "^1.0.0",
            "model_metadata": {"provider": "openai", "name": "mistral", "endpoint": env.up.endpoint(),
                "api_key": "k-SECRET-MARKER-7f3a9c", "identifier": "custom_openai/mistral-served"}})
    };
    let resp = env
        .post("/v1/prompts/model_configuration%2Fcheck", check(None))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!("OK"),
        "v1: a bare JSON string"
    );
    let resp = env
        .post("/v2/prompts/model_configuration/check", check(None))
        .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"], "OK");
    let resp = env
        .post("/v1/prompts/model_configuration%2Fcheck", check(Some(401)))
        .await;
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "401: Unauthorized"})
    );
    let resp = env.post("/v1/prompts/no_such%2Fprompt", check(None)).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let defs: Value = env
        .h
        .open_get("/v1/models/definitions")
        .await
        .json()
        .await
        .unwrap();
    assert!(
        defs["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["gitlab_identifier"] == "codestral")
    );
    assert!(
        defs["unit_primitives"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u["unit_primitive"] == "complete_code")
    );
}

/// The body GitLab Rails posts to `/v1/prompts/{id}` for a feature: its `inputs`, the prompt
/// version, and the self-hosted model it configured.
fn prompt_body(env: &Env, inputs: Value, stream: bool) -> Value {
    json!({"inputs": inputs, "prompt_version": "^1.0.0", "stream": stream,
        "model_metadata": {"provider": "openai", "name": "mistral", "endpoint": env.up.endpoint(),
            "api_key": "k-SECRET-MARKER-7f3a9c", "identifier": "custom_openai/mistral-small"}})
}

/// Posts to a prompt route with a token holding exactly `scopes`.
async fn post_scoped(env: &Env, path: &str, scopes: &[&str], body: Value) -> reqwest::Response {
    let token = mint(&env.gl.claims(scopes), "k1", GITLAB_KEY);
    env.request(path, Some(&token))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Every feature GitLab sends to `/v1/prompts/{id}`: the inputs Rails sends (for the chat
/// tools, representative ones: Hearth passes every input through), a bare JSON string back,
/// and what reached the model server.
#[tokio::test]
async fn feature_prompts_answer_a_bare_string_from_the_features_inputs() {
    let env = setup().await;
    let cases: [(&str, &str, Value, &str); 13] = [
        (
            "generate_commit_message",
            "generate_commit_message",
            json!({"diff": "--- a/x.py\n+++ b/x.py\n+print(1)"}),
            "<diff>\n--- a/x.py",
        ),
        (
            "summarize_new_merge_request",
            "summarize_new_merge_request",
            json!({"extracted_diff": "+fn new() {}"}),
            "<extracted_diff>\n+fn new() {}",
        ),
        (
            "review_merge_request",
            "review_merge_request",
            json!({"mr_data": "diff --git a/a.rs b/a.rs", "codebase_context": "fn helper()"}),
            "<mr_data>\ndiff --git a/a.rs b/a.rs\n</mr_data>\n\n<codebase_context>",
        ),
        (
            "summarize_review",
            "summarize_review",
            json!({"draft_notes_content": "Comment: rename x\n"}),
            "Comment: rename x",
        ),
        (
            "resolve_vulnerability",
            "resolve_vulnerability",
            json!({"name": "SQL injection", "filename": "db.py", "identifiers": "", "vulnerable_code": "q + id",
                "source_code": "def f(id):\n    q + id", "vulnerability_description": "user input in SQL"}),
            "<name>\nSQL injection\n</name>\n\n<vulnerability_description>",
        ),
        (
            "glab_ask_git_command",
            "glab_ask_git_command",
            json!({"prompt": "undo my last commit"}),
            "undo my last commit",
        ),
        (
            "chat/explain_vulnerability",
            "explain_vulnerability",
            json!({"vulnerability": "XSS in view", "file_content": "<%= raw x %>"}),
            "<%= raw x %>",
        ),
        (
            "chat/troubleshoot_job",
            "troubleshoot_job",
            json!({"job_log": "step 3\nERROR: exit 1"}),
            "ERROR: exit 1",
        ),
        (
            "chat/summarize_comments",
            "summarize_comments",
            json!({"notes_content": "<comment>ship it</comment>"}),
            "ship it",
        ),
        (
            "chat/explain_code",
            "explain_code",
            json!({"code": "x = y or z", "file_name": "a.py"}),
            "x = y or z",
        ),
        (
            "chat/write_tests",
            "write_tests",
            json!({"code": "def add(a, b): ..."}),
            "def add",
        ),
        (
            "chat/refactor_code",
            "refactor_code",
            json!({"code": "if x == True: y()"}),
            "x == True",
        ),
        (
            "chat/fix_code",
            "fix_code",
            json!({"code": "retrun 1"}),
            "retrun 1",
        ),
    ];
    for (id, scope, inputs, seen_text) in cases {
        env.up.script(Reply::Text {
            chunks: vec![format!("answer for {id}")],
            finish: "stop",
        });
        let path = format!("/v1/prompts/{}", id.replace('/', "%2F"));
        let resp = post_scoped(&env, &path, &[scope], prompt_body(&env, inputs, false)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{id}");
        assert_eq!(
            resp.json::<Value>().await.unwrap(),
            json!(format!("answer for {id}")),
            "{id}: v1 answers a bare JSON string"
        );
        let seen = env.up.last();
        assert_eq!(seen.path, "/v1/chat/completions", "{id}");
        assert_eq!(seen.body["model"], "mistral-small", "{id}");
        assert_eq!(seen.body["messages"][0]["role"], "system", "{id}");
        let user = seen.body["messages"][1]["content"].as_str().unwrap();
        assert!(user.contains(seen_text), "{id}: {user}");
        assert_eq!(seen.body["max_tokens"], 2048, "{id}");
    }

    // v2 answers {content, usage}.
    env.up.script(Reply::Text {
        chunks: vec!["feat: add x".into()],
        finish: "stop",
    });
    let resp = post_scoped(
        &env,
        "/v2/prompts/generate_commit_message",
        &["generate_commit_message"],
        prompt_body(&env, json!({"diff": "+x"}), false),
    )
    .await;
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["content"], "feat: add x");
    assert!(v["usage"]["output_tokens"].as_u64().is_some(), "{v}");

    // A token without the feature's unit primitive is refused.
    let resp = post_scoped(
        &env,
        "/v1/prompts/resolve_vulnerability",
        &["duo_chat"],
        prompt_body(&env, json!({"name": "x"}), false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

/// The chat tools stream (`stream: true`, as Rails sends them): raw text, no SSE framing; a
/// model-server error is 421 with its status, as for "Test connection".
#[tokio::test]
async fn chat_tool_prompts_stream_raw_text_and_upstream_errors_are_421() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["The job ".into(), "failed because".into()],
        finish: "stop",
    });
    let resp = post_scoped(
        &env,
        "/v1/prompts/chat%2Ftroubleshoot_job",
        &["troubleshoot_job"],
        prompt_body(&env, json!({"job_log": "ERROR"}), true),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(resp.text().await.unwrap(), "The job failed because");

    env.up.script(Reply::Error {
        status: 500,
        body: r#"{"error":"boom"}"#.into(),
        headers: vec![],
    });
    let resp = post_scoped(
        &env,
        "/v1/prompts/generate_commit_message",
        &["generate_commit_message"],
        prompt_body(&env, json!({"diff": "+x"}), false),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::MISDIRECTED_REQUEST);
    let v: Value = resp.json().await.unwrap();
    assert!(v["detail"].as_str().unwrap().starts_with("500"), "{v}");
}

/// Without model fields Hearth's own bindings decide; a feature with no binding of its own is
/// served by Duo Chat's.
#[tokio::test]
async fn an_unbound_feature_falls_back_to_the_chat_binding() {
    let env = setup().await;
    let (status, _) = env
        .h
        .patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let id = env
        .h
        .create(
            json!({"name": "small", "family": "mistral", "endpoint": env.up.endpoint(),
            "identifier": "custom_openai/Mistral-Small-3.2-24B-Instruct-2506"}),
        )
        .await;
    let (status, body) = env
        .h
        .put(
            "/api/v1/feature_settings/duo_chat",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    env.up.script(Reply::Text {
        chunks: vec!["Summary".into()],
        finish: "stop",
    });
    let resp = post_scoped(
        &env,
        "/v1/prompts/summarize_new_merge_request",
        &["summarize_new_merge_request"],
        json!({"inputs": {"extracted_diff": "+a"}, "prompt_version": "^1.0.0"}),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!("Summary"));
    assert_eq!(
        env.up.last().body["model"],
        "Mistral-Small-3.2-24B-Instruct-2506"
    );
}

#[tokio::test]
async fn upstream_failures_on_code_routes_are_json_details() {
    let env = setup().await;
    env.up.script(Reply::Error {
        status: 429,
        body: "{}".into(),
        headers: vec![("retry-after".into(), "4".into())],
    });
    let resp = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "4");
    assert_eq!(
        resp.json::<Value>().await.unwrap(),
        json!({"detail": "Too many requests. Please try again later."})
    );
    env.up.script(Reply::Error {
        status: 500,
        body: "boom".into(),
        headers: vec![],
    });
    let resp = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
    assert!(
        resp.json::<Value>().await.unwrap()["detail"]
            .as_str()
            .unwrap()
            .contains("boom")
    );
}

#[tokio::test]
async fn the_auth_bypass_is_loopback_only_unless_forced() {
    let up = FakeUpstream::start().await;
    let h = Hearth::start_with(Options {
        env: vec![("AIGW_AUTH__BYPASS_EXTERNAL", "true".into())],
        ..Default::default()
    });
    let body = json!({"current_file": {"file_name": "a.py", "content_above_cursor": "x", "content_below_cursor": ""},
        "model_provider": "litellm", "model_name": "codestral", "model_endpoint": up.endpoint()});
    let resp = h
        .http()
        .post(h.url("/v2/code/completions"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(h.logs().contains("GITLAB AUTH BYPASS IS ON"));
    let stderr = crate::harness::serve_must_fail(
        &["--listen", "0.0.0.0:0"],
        &[("HEARTH_AUTH_BYPASS", "true")],
    );
    assert!(stderr.contains("HEARTH_AUTH_BYPASS_FORCE"), "{stderr}");
}

async fn ndjson(resp: reqwest::Response) -> Vec<Value> {
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "application/x-ndjson; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    assert!(text.ends_with('\n'));
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn agent_body(env: &Env, messages: Value) -> Value {
    json!({"messages": messages, "unavailable_resources": ["Pipelines", "Vulnerabilities"],
        "model_metadata": {"provider": "openai", "name": "mixtral", "endpoint": env.up.endpoint(),
            "api_key": "k-SECRET-MARKER-7f3a9c", "identifier": "custom_openai/mixtral-served"}})
}

#[tokio::test]
async fn chat_agent_streams_the_final_answer_and_reports_actions() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec![
            "Thought: I can answer now\nFinal ".into(),
            "Answer: Hello".into(),
            " there".into(),
        ],
        finish: "stop",
    });
    let lines = ndjson(
        env.post(
            "/v2/chat/agent",
            agent_body(&env, json!([{"role": "user", "content": "hi"}])),
        )
        .await,
    )
    .await;
    let deltas: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "final_answer_delta")
        .collect();
    let text: String = deltas
        .iter()
        .filter_map(|l| l["data"]["text"].as_str())
        .collect();
    assert_eq!(text, "Hello there");
    assert_eq!(
        deltas.last().unwrap()["data"],
        json!({"text": "", "finish_reason": "stop"})
    );
    assert_eq!(lines.last().unwrap()["type"], "usage");
    assert_eq!(
        lines.last().unwrap()["data"]["usage"]["mixtral-served"]["input_tokens"],
        7
    );
    let seen = env.up.last();
    assert_eq!(seen.body["stop"], json!(["Observation:"]));
    let system = seen.body["messages"][0]["content"].as_str().unwrap();
    assert!(
        system.contains("issue_reader") && !system.contains("build_reader"),
        "Pipelines are unavailable: {system}"
    );

    // A step that calls a tool, with the scratchpad of an earlier step.
    env.up.script(Reply::Text { chunks: vec!["Thought: I need the job log\nAction: gitlab_documentation\nAction Input: how to retry a job\n".into()], finish: "stop" });
    let messages = json!([
        {"role": "user", "content": "why did my job fail?"},
        {"role": "assistant", "agent_scratchpad": [{"action": {"tool": "issue_reader", "tool_input": "#42", "thought": "read the issue"},
            "observation": "the issue says the runner died"}]},
    ]);
    let lines = ndjson(env.post("/v2/chat/agent", agent_body(&env, messages)).await).await;
    assert_eq!(
        lines[0],
        json!({"type": "action", "data": {"tool": "gitlab_documentation", "tool_input": "how to retry a job", "thought": "I need the job log"}})
    );
    let sent = env.up.last().body["messages"].to_string();
    assert!(
        sent.contains("Action: issue_reader")
            && sent.contains("Observation: the issue says the runner died"),
        "{sent}"
    );

    // Neither an action nor an answer.
    env.up.script(Reply::Text {
        chunks: vec!["just rambling".into()],
        finish: "stop",
    });
    let lines = ndjson(
        env.post(
            "/v2/chat/agent",
            agent_body(&env, json!([{"role": "user", "content": "hi"}])),
        )
        .await,
    )
    .await;
    assert_eq!(
        lines[0],
        json!({"type": "unknown", "data": {"text": "just rambling"}})
    );

    let bad = json!([{"role": "user", "content": "x", "agent_scratchpad": []}]);
    let resp = env.post("/v2/chat/agent", agent_body(&env, bad)).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let no_scope = mint(&env.gl.claims(&["complete_code"]), "k1", GITLAB_KEY);
    let resp = env
        .request("/v2/chat/agent", Some(&no_scope))
        .json(&agent_body(
            &env,
            json!([{"role": "user", "content": "hi"}]),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn v1_chat_tools_answer_whole_or_streamed() {
    let env = setup().await;
    let body = |stream: bool| {
        json!({"stream": stream, "prompt_components": [{"type": "prompt", "metadata": {"source": "GitLab EE", "version": "17.9"},
        "payload": {"content": "Explain this code: x = 1", "provider": "litellm", "model": "mistral",
            "params": {"stop_sequences": ["</s>"], "temperature": 0.1, "max_tokens_to_sample": 64},
            "model_endpoint": env.up.endpoint(), "model_identifier": "custom_openai/mistral-served"}}]})
    };
    let mut claims = env.gl.claims(&["explain_code"]);
    claims["scopes"] = json!(["explain_code"]);
    let token = mint(&claims, "k1", GITLAB_KEY);
    env.up.script(Reply::Text {
        chunks: vec!["It assigns 1.".into()],
        finish: "stop",
    });
    let v: Value = env
        .request("/v1/chat/explain_code", Some(&token))
        .json(&body(false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["response"], "It assigns 1.");
    assert_eq!(v["metadata"]["provider"], "litellm");
    assert_eq!(v["metadata"]["model"], "mistral");
    assert_eq!(env.up.last().body["max_tokens"], 64);
    env.up.script(Reply::Text {
        chunks: vec!["It ".into(), "assigns.".into()],
        finish: "stop",
    });
    let text = env
        .request("/v1/chat/explain_code", Some(&token))
        .json(&body(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "It assigns.");
    let resp = env
        .request("/v1/chat/write_tests", Some(&token))
        .json(&body(false))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::FORBIDDEN,
        "the token lacks write_tests"
    );
}

#[tokio::test]
async fn access_lines_carry_gitlab_context_and_prompts_log_only_when_asked() {
    let env = setup().await;
    let mut body = env.completion("codestral");
    body["current_file"]["content_above_cursor"] = json!("PREFIX-MARKER-31 = ");
    env.up.script(Reply::Text {
        chunks: vec!["a".into()],
        finish: "stop",
    });
    let resp = env
        .request("/v2/code/completions", Some(&env.token()))
        .header("x-request-id", "gl-1")
        .header("x-gitlab-host-name", "gitlab.example.com")
        .header("x-gitlab-version", "17.9.0")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let line = env.h.wait_for_log("\"correlation_id\":\"gl-1\",\"method\"");
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["gitlab_instance_id"], INSTANCE_ID);
    assert_eq!(v["gitlab_realm"], "self-managed");
    assert_eq!(v["gitlab_host_name"], "gitlab.example.com");
    assert_eq!(v["gitlab_version"], "17.9.0");
    assert_eq!(v["status_code"], 200);
    assert!(v["first_chunk_duration_s"].as_f64().unwrap() <= v["duration_s"].as_f64().unwrap());
    assert!(
        !env.h.logs().contains("PREFIX-MARKER-31"),
        "no prompt logging without the header"
    );

    env.up.script(Reply::Text {
        chunks: vec!["b".into()],
        finish: "stop",
    });
    env.request("/v2/code/completions", Some(&env.token()))
        .header("x-gitlab-enabled-instance-verbose-ai-logs", "true")
        .json(&body)
        .send()
        .await
        .unwrap();
    let input = env.h.wait_for_log("code suggestion input");
    assert!(input.contains("PREFIX-MARKER-31"), "{input}");
    assert!(
        env.h
            .wait_for_log("code suggestion output")
            .contains("\"completion\":\"b\"")
    );
    // The harness also checks that the model_api_key never reached the log.
}

#[tokio::test]
async fn custom_models_can_be_switched_off() {
    let gl = FakeGitlab::start().await;
    let up = FakeUpstream::start().await;
    let h = Hearth::start_with(Options {
        env: vec![
            ("AIGW_GITLAB_URL", gl.url()),
            ("AIGW_CUSTOM_MODELS__ENABLED", "false".into()),
        ],
        ..Default::default()
    });
    let env = Env { h, gl, up };
    let resp = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("AIGW_CUSTOM_MODELS__ENABLED"),
        "{v}"
    );
    assert!(env.up.requests().is_empty());
}

#[tokio::test]
async fn v3_with_stream_true_streams_raw_text() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["x = ".into(), "1".into()],
        finish: "stop",
    });
    let body = json!({"prompt_components": [{"type": "code_editor_completion",
        "payload": {"file_name": "a.py", "content_above_cursor": "", "content_below_cursor": "", "stream": true}}],
        "model_metadata": {"provider": "litellm", "name": "codestral", "endpoint": env.up.endpoint(), "identifier": "custom_openai/cs"}});
    let resp = env.post("/v3/code/completions", body).await;
    assert_eq!(
        resp.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(resp.text().await.unwrap(), "x = 1");
}

/// The next keystroke in the same file cancels the completion in flight: GitLab gets no
/// suggestion for it (its clients show errors loudly), and the model server's request is
/// dropped.
#[tokio::test]
async fn a_newer_keystroke_in_the_same_file_cancels_the_suggestion_in_flight() {
    let env = setup().await;
    // A model server that takes requests and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_url = format!("http://{}/v1", silent.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = silent.accept().await {
            keep.lock().unwrap().push(s);
        }
    });
    let mut first_body = env.completion("codestral");
    first_body["model_endpoint"] = json!(silent_url);
    // GitLab names the user in a header on code suggestion requests; the same user's requests
    // are one client's whatever token each carries.
    let as_user = |body: &Value| {
        env.request("/v2/code/completions", Some(&env.token()))
            .header("x-gitlab-global-user-id", "gid://gitlab/User/1")
            .json(body)
    };
    let first = async { as_user(&first_body).send().await.unwrap() };
    let second = async {
        // Once the first is at the model server.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while held.lock().unwrap().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the first request never arrived"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut next = first_body.clone();
        next["current_file"]["content_above_cursor"] = json!("def add(a, b):\n    r");
        // It hangs at the silent model server in its turn; it only has to arrive.
        let request = as_user(&next);
        let handle = tokio::spawn(async move { request.send().await });
        handle.abort_handle()
    };
    let (first, second) = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        tokio::join!(first, second)
    })
    .await
    .expect("the older request was answered when the newer one came");
    second.abort();
    assert_eq!(first.status(), StatusCode::OK);
    let v: Value = first.json().await.unwrap();
    assert_eq!(v["choices"], json!([]), "no suggestion: {v}");
}

/// A request whose deployment fails before answering goes on to the feature's fallback at
/// once — no health check has to notice first — with the prompt built for the fallback.
#[tokio::test]
async fn a_failed_deployment_hands_the_request_to_the_features_fallback() {
    let env = setup().await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_url = format!("http://{}/v1", dead.local_addr().unwrap());
    drop(dead);
    let primary = env.h.create(json!({"name": "on-prem", "family": "codestral", "endpoint": dead_url, "identifier": "custom_openai/cs"})).await;
    let backup = env.h.create(json!({"name": "backup", "family": "mistral", "endpoint": env.up.endpoint(), "identifier": "custom_openai/mistral-7b"})).await;
    let (s, v) = env
        .h
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": primary, "fallbacks": [backup]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    env.up.script(Reply::Text {
        chunks: vec!["a + b".into()],
        finish: "stop",
    });
    let body = json!({"current_file": {"file_name": "calc.py", "content_above_cursor": "def add(a, b):\n    return ", "content_below_cursor": "\n"}});
    let resp = env.post("/v2/code/completions", body).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["choices"][0]["text"], "a + b", "{v}");
    let sent = env.up.last();
    assert_eq!(sent.body["model"], "mistral-7b");
    assert!(
        !sent.body.to_string().contains("[SUFFIX]"),
        "Codestral's FIM prompt is not sent to Mistral: {}",
        sent.body
    );
}

/// The value of the one series whose line starts with `series` (labels included), 0 if none.
fn series(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(series))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// GitLab's code routes count in the same metrics as the OpenAI routes: requests by status,
/// errors, tokens, the model server's latency and Hearth's own time (the token check in it).
#[tokio::test]
async fn code_routes_count_in_the_metrics() {
    let env = setup().await;
    let ok = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(ok.status(), StatusCode::OK);
    env.up.script(Reply::Text {
        chunks: vec!["return ".into(), "a + b".into()],
        finish: "stop",
    });
    let mut body = env.completion("codestral");
    body["stream"] = json!(true);
    let streamed = env.post("/v2/code/completions", body).await;
    assert_eq!(streamed.text().await.unwrap(), "return a + b");
    env.up.script(Reply::Error {
        status: 500,
        body: "boom".into(),
        headers: vec![],
    });
    let failed = env
        .post("/v2/code/completions", env.completion("codestral"))
        .await;
    assert_eq!(failed.status(), StatusCode::BAD_GATEWAY);

    let m = env.h.open_get("/metrics").await.text().await.unwrap();
    let requests = r#"hearth_requests_total{feature="code_completions","#;
    assert_eq!(series(&m, requests), 3.0, "{m}");
    let errors = r#"hearth_errors_total{feature="code_completions","#;
    assert_eq!(series(&m, errors), 1.0, "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with(errors) && l.contains(r#"status="502""#)),
        "{m}"
    );
    let tokens_in = m
        .lines()
        .filter(|l| l.starts_with(r#"hearth_tokens_total{feature="code_completions","#))
        .filter(|l| l.contains(r#"direction="in""#))
        .count();
    assert!(tokens_in >= 1, "{m}");
    let own = r#"hearth_gateway_overhead_seconds_count{feature="code_completions"}"#;
    assert_eq!(series(&m, own), 3.0, "{m}");
    let upstream = r#"hearth_upstream_latency_seconds_count{feature="code_completions","#;
    assert_eq!(series(&m, upstream), 3.0, "{m}");
}

/// Duo Chat's agent, a chat tool and a feature prompt count under their own features, streamed
/// (recorded when the stream ends) or whole.
#[tokio::test]
async fn chat_and_prompt_routes_count_in_the_metrics() {
    let env = setup().await;
    env.up.script(Reply::Text {
        chunks: vec!["Thought: done\nFinal Answer: Hi".into()],
        finish: "stop",
    });
    let lines = ndjson(
        env.post(
            "/v2/chat/agent",
            agent_body(&env, json!([{"role": "user", "content": "hi"}])),
        )
        .await,
    )
    .await;
    assert!(lines.iter().any(|l| l["type"] == "usage"), "{lines:?}");

    let tool = json!({"stream": true, "prompt_components": [{"type": "prompt",
        "payload": {"content": "Explain this code: x = 1", "provider": "litellm", "model": "mistral",
            "model_endpoint": env.up.endpoint(), "model_identifier": "custom_openai/mistral-served"}}]});
    let resp = post_scoped(&env, "/v1/chat/explain_code", &["explain_code"], tool).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(!resp.text().await.unwrap().is_empty());

    let prompt = prompt_body(&env, json!({"diff": "+print(1)"}), false);
    let resp = post_scoped(
        &env,
        "/v1/prompts/generate_commit_message",
        &["generate_commit_message"],
        prompt,
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    env.up.script(Reply::Error {
        status: 500,
        body: "boom".into(),
        headers: vec![],
    });
    let prompt = prompt_body(&env, json!({"diff": "+print(2)"}), false);
    let resp = post_scoped(
        &env,
        "/v1/prompts/generate_commit_message",
        &["generate_commit_message"],
        prompt,
    )
    .await;
    assert!(!resp.status().is_success());

    let m = env.h.open_get("/metrics").await.text().await.unwrap();
    for (feature, requests, errors) in [
        ("duo_chat", 1.0, 0.0),
        ("duo_chat_explain_code", 1.0, 0.0),
        ("generate_commit_message", 2.0, 1.0),
    ] {
        let r = format!(r#"hearth_requests_total{{feature="{feature}","#);
        assert_eq!(series(&m, &r), requests, "{feature}: {m}");
        let e = format!(r#"hearth_errors_total{{feature="{feature}","#);
        assert_eq!(series(&m, &e), errors, "{feature}: {m}");
        let own = format!(r#"hearth_gateway_overhead_seconds_count{{feature="{feature}"}}"#);
        assert_eq!(series(&m, &own), requests, "{feature}: {m}");
    }
}
