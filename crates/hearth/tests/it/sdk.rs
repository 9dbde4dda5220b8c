//! Hearth driven by client libraries nobody here wrote. Python: the official `openai`,
//! `ollama` and `anthropic` libraries (installed by scripts/sdk-venv.sh, which scripts/test
//! runs and points HEARTH_SDK_PYTHON at): tools round trip, streamed tool calls, `parse()` with
//! a JSON schema, `models.retrieve`, the Ollama and Anthropic doors and each error class.
//! JavaScript: the official `openai` Node SDK and Continue's `@continuedev/openai-adapters`
//! (installed by scripts/node-clients.sh, pointed at by HEARTH_NODE_CLIENTS). Without a client
//! its test is skipped with a notice, except under CI=true, where it fails.

use std::process::Command;

use hearth_testkit::{FakeUpstream, Reply};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::Hearth;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py");
const OLLAMA_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/ollama_lib.py");

/// Runs `script` with `python` off the runtime's thread (the stand-in upstream answers on it)
/// and asserts it succeeded and printed `ok <step>` for each step.
async fn run_script(python: &str, script: &str, h: &Hearth, key: &str, steps: &[&str]) {
    let mut command = Command::new(python);
    command
        .arg(script)
        .env("HEARTH_URL", h.url(""))
        .env("HEARTH_KEY", key)
        .env("HEARTH_MODEL", "mixtral");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for step in steps.iter().chain(&["all"]) {
        assert!(
            stdout
                .lines()
                .any(|l| l == format!("ok {step}") || l == *step),
            "{step} missing:\n{stdout}"
        );
    }
}

/// A python that imports `modules`, or `None` (after failing under CI) when there is none.
/// Hearth with Codestral bound to code completion and Mixtral to chat, both on `up`.
async fn codestral_and_mixtral(up: &FakeUpstream) -> Hearth {
    let h = Hearth::start();
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    for (name, family, served, feature) in [
        (
            "codestral",
            "codestral",
            "Codestral-22B-v0.1",
            "code_completions",
        ),
        (
            "mixtral",
            "mixtral",
            "Mixtral-8x7B-Instruct-v0.1",
            "duo_chat",
        ),
    ] {
        let id = h
            .create(
                json!({"name": name, "family": family, "endpoint": up.endpoint(),
                "identifier": format!("custom_openai/{served}")}),
            )
            .await;
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{feature}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    h
}

/// A new client key, which the scripts send as their API key.
async fn client_key(h: &Hearth, name: &str) -> String {
    let (s, created) = h.post("/api/v1/client_keys", json!({"name": name})).await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    created["key"].as_str().unwrap().to_string()
}

fn sdk_python(modules: &str) -> Option<String> {
    let candidates = std::env::var("HEARTH_SDK_PYTHON")
        .ok()
        .into_iter()
        .chain(["python3".to_string()]);
    for python in candidates {
        let works = Command::new(&python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if works {
            return Some(python);
        }
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "Python's {modules} missing under CI: run scripts/sdk-venv.sh and set HEARTH_SDK_PYTHON"
    );
    eprintln!(
        "SKIPPED sdk test: no python with {modules}; run scripts/sdk-venv.sh and set HEARTH_SDK_PYTHON to the path it prints"
    );
    None
}

#[tokio::test]
async fn the_openai_python_sdk_works_end_to_end() {
    let Some(python) = sdk_python("openai, pydantic") else {
        return;
    };
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1"}),
        )
        .await;
    for f in ["code_completions", "duo_chat"] {
        let (s, b) = h
            .put(
                &format!("/api/v1/feature_settings/{f}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    let key = client_key(&h, "sdk").await;

    // The upstream's answers, in the order of the script's steps.
    up.script(Reply::ToolCalls(vec![(
        "call_1".into(),
        "get_weather".into(),
        r#"{"city": "Paris"}"#.into(),
    )]));
    up.script(Reply::Text {
        chunks: vec!["It is 21 degrees.".into()],
        finish: "stop",
    });
    up.script(Reply::ToolCalls(vec![
        (
            "call_a".into(),
            "get_weather".into(),
            r#"{"city": "Nice"}"#.into(),
        ),
        (
            "call_b".into(),
            "get_weather".into(),
            r#"{"city": "Metz"}"#.into(),
        ),
    ]));
    up.script(Reply::Text {
        chunks: vec![r#"{"city": "Paris", "temp": 21.5}"#.into()],
        finish: "stop",
    });
    up.script(Reply::Error {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "rate_limit", "code": 429}})
            .to_string(),
        headers: vec![("retry-after".into(), "1".into())],
    });
    up.script(Reply::Error {
        status: 500,
        body: json!({"error": {"message": "boom", "type": "internal", "code": 500}}).to_string(),
        headers: vec![],
    });

    run_script(
        &python,
        SCRIPT,
        &h,
        &key,
        &[
            "tools round trip",
            "streamed tool calls",
            "parse",
            "models.retrieve",
            "BadRequestError",
            "AuthenticationError",
            "NotFoundError",
            "RateLimitError",
            "APIStatusError 5xx",
        ],
    )
    .await;

    // What the SDK's fields became on the wire.
    let seen: Vec<Value> = up.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(seen.len(), 6, "{seen:?}");
    assert_eq!(seen[0]["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(seen[0]["tool_choice"], "required");
    assert!(
        seen[0].to_string().contains("\"temperature\":0.32"),
        "{}",
        seen[0]
    );
    let turns = seen[1]["messages"].as_array().unwrap();
    assert_eq!(turns[1]["role"], "assistant");
    assert_eq!(turns[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        turns[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"t\": 21}"})
    );
    assert_eq!(seen[2]["stream"], true);
    let format = &seen[3]["response_format"];
    assert_eq!(format["type"], "json_schema", "{format}");
    assert_eq!(format["json_schema"]["name"], "Weather");
    assert_eq!(format["json_schema"]["strict"], true);
    assert_eq!(
        format["json_schema"]["schema"]["required"],
        json!(["city", "temp"])
    );
}

/// The official `ollama` Python library against the Ollama door: generate with a suffix
/// (whole and streamed), chat (whole and streamed), list, show and its error.
#[tokio::test]
async fn the_ollama_python_library_works_against_the_ollama_door() {
    let Some(python) = sdk_python("ollama") else {
        return;
    };
    let up = FakeUpstream::start().await;
    let h = codestral_and_mixtral(&up).await;
    let key = client_key(&h, "ollama").await;
    for chunks in [
        vec!["a + b"],
        vec!["4 ", "+ 2"],
        vec!["Hello."],
        vec!["Hello ", "again."],
    ] {
        up.script(Reply::Text {
            chunks: chunks.into_iter().map(String::from).collect(),
            finish: "stop",
        });
    }
    run_script(
        &python,
        OLLAMA_SCRIPT,
        &h,
        &key,
        &[
            "generate with suffix",
            "generate streamed",
            "chat",
            "chat streamed",
            "list",
            "show",
            "ResponseError",
        ],
    )
    .await;
    let seen: Vec<Value> = up.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(
        seen[0]["prompt"],
        "<s>[SUFFIX]\n[PREFIX]def add(a, b):\n    return "
    );
    assert_eq!(seen[0]["max_tokens"], 20);
    assert_eq!(seen[0]["temperature"], 0.2);
    assert_eq!(seen[1]["stream"], true);
    assert_eq!(
        seen[2]["messages"],
        json!([{"role": "user", "content": "hi"}])
    );
}

const ANTHROPIC_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/anthropic_sdk.py");

/// The official `anthropic` Python SDK against the Anthropic door: a whole message, streamed
/// (the SDK's helper and the raw events), a tool round trip, streamed tool calls, and each
/// error class.
#[tokio::test]
async fn the_anthropic_python_sdk_works_against_the_anthropic_door() {
    let Some(python) = sdk_python("anthropic") else {
        return;
    };
    let up = FakeUpstream::start().await;
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "mixtral", "family": "mixtral", "endpoint": up.endpoint(),
            "identifier": "custom_openai/Mixtral-8x7B-Instruct-v0.1"}),
        )
        .await;
    let (s, b) = h
        .put(
            "/api/v1/feature_settings/duo_chat",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let key = client_key(&h, "anthropic").await;

    // The upstream's answers, in the order of the script's steps.
    for chunks in [
        vec!["Hello ", "there."],
        vec!["Hello ", "again."],
        vec!["Hi."],
    ] {
        up.script(Reply::Text {
            chunks: chunks.into_iter().map(String::from).collect(),
            finish: "stop",
        });
    }
    up.script(Reply::ToolCalls(vec![(
        "call_1".into(),
        "get_weather".into(),
        r#"{"city": "Paris"}"#.into(),
    )]));
    up.script(Reply::Text {
        chunks: vec!["It is 21 degrees.".into()],
        finish: "stop",
    });
    up.script(Reply::ToolCalls(vec![
        (
            "call_a".into(),
            "get_weather".into(),
            r#"{"city": "Nice"}"#.into(),
        ),
        (
            "call_b".into(),
            "get_weather".into(),
            r#"{"city": "Metz"}"#.into(),
        ),
    ]));
    up.script(Reply::Error {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "rate_limit", "code": 429}})
            .to_string(),
        headers: vec![("retry-after".into(), "1".into())],
    });

    run_script(
        &python,
        ANTHROPIC_SCRIPT,
        &h,
        &key,
        &[
            "messages.create",
            "messages.stream",
            "create stream=True",
            "tools round trip",
            "streamed tool calls",
            "BadRequestError",
            "AuthenticationError",
            "NotFoundError",
            "RateLimitError",
        ],
    )
    .await;

    // What the SDK's fields became on the wire.
    let seen: Vec<Value> = up.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(seen.len(), 7, "{seen:?}");
    assert_eq!(
        seen[0]["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
    assert_eq!(seen[0]["temperature"], 0.25);
    assert_eq!(seen[1]["stream"], true);
    assert_eq!(seen[3]["tool_choice"], "required");
    assert_eq!(seen[3]["tools"][0]["function"]["name"], "get_weather");
    let turns = seen[4]["messages"].as_array().unwrap();
    assert_eq!(turns[1]["tool_calls"][0]["id"], "call_1");
    assert_eq!(
        turns[2],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "21 degrees"})
    );
}

const NODE_SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node/clients.mjs");

/// The directory scripts/node-clients.sh installed the JavaScript clients into, or `None`
/// (after failing under CI) when there is none.
fn node_clients() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("HEARTH_NODE_CLIENTS").map(std::path::PathBuf::from);
    let installed = dir.as_ref().is_some_and(|d| {
        d.join("node_modules/openai").is_dir()
            && d.join("node_modules/@continuedev/openai-adapters").is_dir()
    });
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && node {
        return dir;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the JavaScript clients are missing under CI: run scripts/node-clients.sh and set HEARTH_NODE_CLIENTS"
    );
    eprintln!(
        "SKIPPED node clients test: no node, or no clients; run scripts/node-clients.sh and set HEARTH_NODE_CLIENTS to the directory it prints"
    );
    None
}

/// The official `openai` Node SDK (chat whole and streamed, its error classes) and Continue's
/// `@continuedev/openai-adapters` `fimStream` against `/v1/fim/completions`.
#[tokio::test]
async fn the_javascript_clients_work_end_to_end() {
    let Some(dir) = node_clients() else {
        return;
    };
    let up = FakeUpstream::start().await;
    let h = codestral_and_mixtral(&up).await;
    let key = client_key(&h, "node").await;
    for chunks in [
        vec!["Hello ", "there."],
        vec!["Hello ", "again."],
        vec!["a + ", "b"],
    ] {
        up.script(Reply::Text {
            chunks: chunks.into_iter().map(String::from).collect(),
            finish: "stop",
        });
    }

    // Run from the install directory, where Node's ESM resolution finds the packages.
    let script = dir.join("hearth-clients.mjs");
    std::fs::copy(NODE_SCRIPT, &script).unwrap();
    let mut command = Command::new("node");
    command
        .arg(&script)
        .current_dir(&dir)
        .env("HEARTH_URL", h.url(""))
        .env("HEARTH_KEY", &key)
        .env("HEARTH_MODEL", "mixtral")
        .env("HEARTH_FIM_MODEL", "codestral");
    let out = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for step in [
        "chat",
        "chat streamed",
        "BadRequestError",
        "AuthenticationError",
        "fimStream",
        "all",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {step}")),
            "{step} missing:\n{stdout}"
        );
    }

    // What the clients' fields became on the wire.
    let seen: Vec<Value> = up.requests().into_iter().map(|r| r.body).collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].to_string().contains("\"temperature\":0.32"),
        "{}",
        seen[0]
    );
    assert_eq!(seen[1]["stream"], true);
    assert_eq!(seen[2]["stream"], true);
    assert_eq!(
        seen[2]["prompt"],
        "<s>[SUFFIX]\n[PREFIX]def add(a, b):\n    return "
    );
    assert_eq!(seen[2]["max_tokens"], 20);
    assert_eq!(seen[2]["temperature"], 0.2);
}
