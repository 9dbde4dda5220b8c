//! Against a real model server: llama.cpp's llama-server serving a tiny random-weight GGUF this
//! project writes, reached through Hearth with the real `async-openai` client. The model's
//! output is gibberish (empty deltas, U+FFFD pieces); the tests check the plumbing.
//!
//! `scripts/llama-server.sh` builds the server (cached); `HEARTH_LLAMA_SERVER` points at it.
//! Without it these tests say so and pass — except in CI, where a missing server fails them.

use std::path::PathBuf;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessageArgs, ChatCompletionStreamOptions,
    CreateChatCompletionRequestArgs,
};
use async_openai::types::completions::CreateCompletionRequestArgs;
use futures_util::StreamExt;
use hearth_testkit::{LlamaServer, write_tiny_llama};
use serde_json::json;

use crate::harness::Hearth;

pub(crate) fn llama_binary() -> Option<PathBuf> {
    match std::env::var_os("HEARTH_LLAMA_SERVER") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "CI must run the real-upstream tests: set HEARTH_LLAMA_SERVER (scripts/llama-server.sh builds it)"
            )
        }
        None => {
            eprintln!("skipping: HEARTH_LLAMA_SERVER is not set (scripts/test sets it)");
            None
        }
    }
}

struct Setup {
    hearth: Hearth,
    _llama: LlamaServer,
    _dir: tempfile::TempDir,
    client: Client<OpenAIConfig>,
}

async fn setup() -> Option<Setup> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let binary = llama_binary()?;
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model).unwrap();
    let llama = LlamaServer::start(&binary, &model).await;
    let hearth = Hearth::start();
    // Codestral: a FIM family; Mistral: a chat family. Both served by the tiny model.
    let completion = hearth
        .create(json!({"name": "tiny-fim", "family": "codestral", "endpoint": llama.endpoint(), "identifier": "custom_openai/tiny"}))
        .await;
    let chat = hearth
        .create(json!({"name": "tiny-chat", "family": "mistral", "endpoint": llama.endpoint(), "identifier": "custom_openai/tiny"}))
        .await;
    for (feature, id) in [("code_completions", completion), ("duo_chat", chat)] {
        let (s, b) = hearth
            .put(
                &format!("/api/v1/feature_settings/{feature}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert!(s.is_success(), "{b}");
    }
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(hearth.url("/v1"))
            .with_api_key("unused"),
    );
    Some(Setup {
        hearth,
        _llama: llama,
        _dir: dir,
        client,
    })
}

#[tokio::test]
async fn completions_with_suffix_whole_and_streamed() {
    let Some(s) = setup().await else { return };
    let request = CreateCompletionRequestArgs::default()
        .model("tiny-fim")
        .prompt("def add(a, b):\n    ")
        .suffix("\n    return c\n")
        .max_tokens(12u32)
        .build()
        .unwrap();
    let whole = s
        .client
        .completions()
        .create(request.clone())
        .await
        .unwrap();
    assert_eq!(whole.model, "tiny-fim");
    assert_eq!(whole.object, "text_completion");
    assert!(whole.id.starts_with("cmpl-"));
    assert_eq!(whole.choices.len(), 1);
    let usage = whole.usage.expect("llama-server reports usage");
    assert!(
        usage.prompt_tokens > 10,
        "the FIM prompt reached the model: {usage:?}"
    );

    let mut streamed = request;
    streamed.stream = Some(true);
    let mut stream = s
        .client
        .completions()
        .create_stream(streamed)
        .await
        .unwrap();
    let mut chunks = 0;
    let mut finished = false;
    while let Some(item) = stream.next().await {
        let chunk = item.expect("every chunk parses");
        chunks += 1;
        if let Some(choice) = chunk.choices.first() {
            finished |= choice.finish_reason.is_some();
        }
    }
    assert!(
        chunks >= 1 && finished,
        "{chunks} chunks, finished: {finished}"
    );
    let log = s.hearth.wait_for_log("/v1/completions 200");
    assert!(log.contains("hearth::access"));
}

#[tokio::test]
async fn chat_whole_and_streamed_with_usage() {
    let Some(s) = setup().await else { return };
    let message = ChatCompletionRequestUserMessageArgs::default()
        .content("hello world")
        .build()
        .unwrap();
    let request = CreateChatCompletionRequestArgs::default()
        .messages(vec![message.into()])
        .max_completion_tokens(12u32)
        .build()
        .unwrap();
    let whole = s.client.chat().create(request.clone()).await.unwrap();
    assert_eq!(
        whole.model, "tiny-chat",
        "no model given: duo_chat's deployment answered"
    );
    assert_eq!(whole.choices.len(), 1);
    assert!(whole.usage.unwrap().prompt_tokens > 0);

    let mut streamed = request;
    streamed.stream = Some(true);
    streamed.stream_options = Some(ChatCompletionStreamOptions {
        include_usage: Some(true),
        include_obfuscation: None,
    });
    let mut stream = s.client.chat().create_stream(streamed).await.unwrap();
    let mut last_usage = None;
    let mut role_seen = false;
    while let Some(item) = stream.next().await {
        let chunk = item.expect("every chunk parses");
        if let Some(c) = chunk.choices.first() {
            role_seen |= c.delta.role.is_some();
        }
        if chunk.usage.is_some() {
            assert!(chunk.choices.is_empty(), "the usage chunk has no choices");
            last_usage = chunk.usage;
        }
    }
    assert!(role_seen);
    assert!(last_usage.is_some_and(|u| u.completion_tokens > 0));
}

#[tokio::test]
async fn models_are_listed_for_the_sdk() {
    let Some(s) = setup().await else { return };
    let list = s.client.models().list().await.unwrap();
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["tiny-fim", "tiny-chat"]);
}

/// GitLab's own requests (gitlab-aigw.md §7) through Hearth to the real llama-server, with a
/// JWT signed by the key a stand-in GitLab publishes.
#[tokio::test]
async fn gitlab_requests_reach_the_real_model() {
    use hearth_testkit::{FakeGitlab, GITLAB_KEY, INSTANCE_ID, mint};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(binary) = llama_binary() else { return };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("tiny.gguf");
    write_tiny_llama(&model).unwrap();
    let llama = LlamaServer::start(&binary, &model).await;
    let gl = FakeGitlab::start().await;
    let h = Hearth::start_with(crate::harness::Options {
        env: vec![("AIGW_GITLAB_URL", gl.url())],
        ..Default::default()
    });
    let token = mint(
        &gl.claims(&[
            "complete_code",
            "generate_code",
            "duo_chat",
            "generate_commit_message",
            "troubleshoot_job",
        ]),
        "k1",
        GITLAB_KEY,
    );
    let post = |path: &str, body: serde_json::Value| {
        h.http()
            .post(h.url(path))
            .bearer_auth(&token)
            .header("x-gitlab-authentication-type", "oidc")
            .header("x-gitlab-realm", "self-managed")
            .header("x-gitlab-instance-id", INSTANCE_ID)
            .json(&body)
            .send()
    };
    let metadata = |name: &str| json!({"provider": "openai", "name": name, "endpoint": llama.endpoint(), "identifier": "custom_openai/tiny"});

    // Completion, as Rails sends it for a self-hosted model.
    let resp = post("/v2/code/completions", json!({
        "current_file": {"file_name": "main.py", "content_above_cursor": "def hello():\n    ", "content_below_cursor": "\n"},
        "model_provider": "litellm", "model_name": "codestral", "model_endpoint": llama.endpoint(),
        "model_identifier": "custom_openai/tiny", "prompt_version": 2, "prompt": null})).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["object"], "text_completion");
    assert_eq!(v["model"]["engine"], "litellm");
    assert_eq!(v["model"]["lang"], "python");
    assert!(
        v["model"]["tokens_consumption_metadata"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 10
    );
    assert!(v["choices"].is_array());

    // Generation through v3 and v4.
    let generation = json!({"prompt_components": [{"type": "code_editor_generation",
        "payload": {"file_name": "main.py", "content_above_cursor": "import os\n", "content_below_cursor": "",
            "prompt": "list the files", "prompt_id": "code_suggestions/generations", "prompt_version": "^1.0.0"}}],
        "model_metadata": metadata("mistral")});
    let v: serde_json::Value = post("/v3/code/completions", generation.clone())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["model"]["engine"], "agent");
    assert_eq!(v["metadata"]["model"], v["model"]);
    let text = post("/v4/code/suggestions", generation)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.starts_with("event: stream_start\r\ndata: {\"metadata\":"),
        "{text}"
    );
    assert!(
        text.ends_with("event: stream_end\r\ndata: null\r\n\r\n"),
        "{text}"
    );

    // A chat agent turn with the scratchpad of an earlier step.
    let text = post("/v2/chat/agent", json!({
        "messages": [{"role": "user", "content": "what is in issue 42?"},
            {"role": "assistant", "agent_scratchpad": [{"action": {"tool": "issue_reader", "tool_input": "#42", "thought": "read it"},
                "observation": "the runner died"}]}],
        "unavailable_resources": ["Pipelines"], "model_metadata": metadata("mistral")})).await.unwrap().text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = lines.last().unwrap();
    assert_eq!(last["type"], "usage");
    assert!(
        last["data"]["usage"]["tiny"]["input_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{last}"
    );
    assert!(
        ["action", "final_answer_delta", "unknown"].contains(&lines[0]["type"].as_str().unwrap()),
        "{text}"
    );

    // GitLab's "Test connection".
    let resp = post(
        "/v1/prompts/model_configuration%2Fcheck",
        json!({"stream": false, "inputs": {}, "model_metadata": metadata("mistral")}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<serde_json::Value>().await.unwrap().is_string());

    // A Duo feature through GitLab's prompt registry route, whole and streamed.
    let resp = post(
        "/v1/prompts/generate_commit_message",
        json!({"inputs": {"diff": "--- a/main.py\n+++ b/main.py\n+print('hi')\n"},
            "prompt_version": "^1.0.0", "model_metadata": metadata("mistral")}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<serde_json::Value>().await.unwrap().is_string());
    let resp = post(
        "/v1/prompts/chat%2Ftroubleshoot_job",
        json!({"inputs": {"job_log": "$ make\nERROR: missing target\n"}, "stream": true,
            "prompt_version": "^1.0.0", "model_metadata": metadata("mistral")}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // A tiny random model may end at once; the stream must still finish cleanly.
    assert!(resp.text().await.is_ok());
}

#[tokio::test]
async fn verify_passes_against_the_real_server() {
    let Some(s) = setup().await else { return };
    let out = crate::verify::verify(&s.hearth, &["--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert!(failed.is_empty(), "{report:#}");
    assert_eq!(out.status.code(), Some(0), "{report:#}");
    // llama-server lists its alias, the served name both deployments registered.
    let served: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["step"] == "served name" && c["status"] == "pass")
        .collect();
    assert_eq!(served.len(), 2, "{report:#}");
}

/// The doors IDE plugins speak, end to end against the real server: llama.cpp's `/infill`
/// (llama.vscode) and Ollama's `/api/generate` with a suffix and `/api/chat`, whole and streamed.
#[tokio::test]
async fn infill_and_ollama_doors_reach_the_real_model() {
    let Some(s) = setup().await else { return };
    let http = s.hearth.http();
    let resp = http
        .post(s.hearth.url("/infill"))
        .json(&json!({"input_prefix": "def add(a, b):\n    ", "input_suffix": "\n    return c\n",
            "input_extra": [{"filename": "util.py", "text": "X = 1\n"}], "prompt": "", "n_predict": 8}))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["content"].is_string(), "{v}");
    assert_eq!(v["stop"], true);
    assert!(
        v["tokens_evaluated"].as_u64().unwrap() > 10,
        "the FIM prompt with the extra file reached the model: {v}"
    );

    for stream in [false, true] {
        let resp = http
            .post(s.hearth.url("/api/generate"))
            .json(
                &json!({"model": "tiny-fim", "prompt": "def add(a, b):\n    ",
                "suffix": "\n    return c\n", "stream": stream, "options": {"num_predict": 8}}),
            )
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let text = resp.text().await.unwrap();
        let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
        assert_eq!(last["done"], true, "stream={stream}: {text}");
        assert!(last["prompt_eval_count"].as_u64().unwrap() > 10, "{text}");
        assert_eq!(last["model"], "tiny-fim");
    }

    let resp = http
        .post(s.hearth.url("/api/chat"))
        .json(
            &json!({"model": "tiny-chat", "messages": [{"role": "user", "content": "hi"}],
            "stream": false, "options": {"num_predict": 8}}),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success(), "{}", resp.status());
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(v["message"]["role"], "assistant", "{v}");
    assert_eq!(v["done"], true);
}
