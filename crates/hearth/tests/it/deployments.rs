//! `/api/v1/self_hosted_models`: every rule of seed 004's "Configure the self-hosted model".

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Hearth, api_key, expect_error, vllm_body};

const MODELS: &str = "/api/v1/self_hosted_models";

#[tokio::test]
async fn create_show_list_update_delete() {
    let h = Hearth::start();
    let mut body = vllm_body("Mixtral on gpu-1");
    body["api_key"] = json!(api_key(1));
    let (status, created) = h.post(MODELS, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_i64().unwrap();
    assert_eq!(created["name"], "Mixtral on gpu-1");
    assert_eq!(created["family"], "mixtral");
    assert_eq!(created["platform"], "openai_compatible");
    assert_eq!(created["endpoint"], "http://gpu-1.internal:8000/v1");
    assert_eq!(
        created["identifier"],
        "custom_openai/Mixtral-8x7B-Instruct-v0.1"
    );
    assert_eq!(
        created["model"], "mixtral-8x7b-instruct-v0.1",
        "recognised from the identifier"
    );
    assert_eq!(created["api_key_set"], true);
    assert!(created.get("api_key").is_none());
    assert_eq!(created["warnings"], json!([]));

    let (status, shown) = h.get(&format!("{MODELS}/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["name"], "Mixtral on gpu-1");
    assert!(shown.get("warnings").is_none());

    let (_, list) = h.get(MODELS).await;
    assert_eq!(list.as_array().unwrap().len(), 1);

    let (status, updated) = h
        .patch(
            &format!("{MODELS}/{id}"),
            json!({"name": "Mixtral 8x7B", "api_key": null}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Mixtral 8x7B");
    assert_eq!(updated["api_key_set"], false, "null clears the key");
    assert_eq!(
        updated["endpoint"], "http://gpu-1.internal:8000/v1",
        "untouched fields stay"
    );

    let (status, updated) = h
        .patch(&format!("{MODELS}/{id}"), json!({"api_key": api_key(2)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["api_key_set"], true);

    let (status, _) = h.delete(&format!("{MODELS}/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let got = h.get(&format!("{MODELS}/{id}")).await;
    expect_error(&got, StatusCode::NOT_FOUND, None);
    let (_, list) = h.get(MODELS).await;
    assert_eq!(list, json!([]));
}

#[tokio::test]
async fn each_field_rule_is_refused_with_422_naming_the_field() {
    let h = Hearth::start();
    let base = vllm_body("ok");
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (json!({"name": ""}), "name", "must not be empty"),
        (json!({"name": "x".repeat(256)}), "name", "255"),
        (json!({"family": "gemini"}), "family", "codestral"),
        (
            json!({"family": "codegemma"}),
            "family",
            "beta_models_enabled",
        ),
        (json!({"endpoint": null}), "endpoint", "required"),
        (
            json!({"endpoint": "http://gpu-1.internal:8000"}),
            "endpoint",
            "use http://gpu-1.internal:8000/v1",
        ),
        (
            json!({"endpoint": "https://gpu/v1/chat/completions"}),
            "endpoint",
            "use https://gpu/v1",
        ),
        (
            json!({"endpoint": "ftp://gpu/v1"}),
            "endpoint",
            "http:// or https://",
        ),
        (
            json!({"endpoint": format!("http://gpu/{}/v1", "a".repeat(2048))}),
            "endpoint",
            "2048",
        ),
        (
            json!({"endpoint": "http://admin:pw@gpu:8000/v1"}),
            "endpoint",
            "credentials",
        ),
        (
            json!({"identifier": ""}),
            "identifier",
            "custom_openai/<served model name>",
        ),
        (
            json!({"identifier": "openai/gpt-4o"}),
            "identifier",
            "bedrock/<model id>",
        ),
        (
            json!({"identifier": "Mixtral-8x7B"}),
            "identifier",
            "azure/<deployment name>",
        ),
        (json!({"platform": "bedrock"}), "platform", "does not match"),
        (
            json!({"platform": "ollama"}),
            "platform",
            "unknown platform",
        ),
        (
            json!({"model": "codestral-22b-v0.1"}),
            "model",
            "belongs to family codestral",
        ),
        (json!({"model": "mixtral-9x9b"}), "model", "closest"),
        (json!({"api_key": "a\nb"}), "api_key", "control characters"),
        (json!({"api_key": "k".repeat(2001)}), "api_key", "2000"),
        (json!({"colour": "blue"}), "colour", "unknown field"),
        (json!({"name": 42}), "name", "expected a string"),
    ];
    for (change, field, needle) in cases {
        let mut body = base.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let got = h.post(MODELS, body).await;
        let msg = expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some(field));
        assert!(msg.contains(needle), "{field}: {msg:?} lacks {needle:?}");
    }
    let mut missing = base.clone();
    missing.as_object_mut().unwrap().remove("identifier");
    let msg = expect_error(
        &h.post(MODELS, missing).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("identifier"),
    );
    assert!(msg.contains("`identifier` is required"), "{msg}");
    let (_, list) = h.get(MODELS).await;
    assert_eq!(list, json!([]), "nothing refused was stored");
}

#[tokio::test]
async fn cloud_platforms_follow_their_own_endpoint_rules() {
    let h = Hearth::start();
    let (status, bedrock) = h
        .post(
            MODELS,
            json!({"name": "claude", "family": "claude_3",
            "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "region": "us-east-1", "api_key": "AKIAIOSFODNN7EXAMPLE:SECRET-MARKER-7f3a9c-aws"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{bedrock}");
    assert_eq!(bedrock["platform"], "bedrock");
    assert_eq!(bedrock["endpoint"], serde_json::Value::Null);
    assert_eq!(bedrock["model"], "claude-3.5-sonnet");

    let got = h
        .post(
            MODELS,
            json!({"name": "gpt", "family": "gpt", "identifier": "azure/gpt-4o"}),
        )
        .await;
    expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("endpoint"));
    let keyless = json!({"name": "gpt", "family": "gpt", "identifier": "azure/gpt-4o",
        "endpoint": "https://acme.openai.azure.com"});
    let msg = expect_error(
        &h.post(MODELS, keyless).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("api_key"),
    );
    assert!(msg.contains("AZURE_OPENAI_API_KEY"), "{msg}");
    let (status, azure) = h
        .post(
            MODELS,
            json!({"name": "gpt", "family": "gpt", "identifier": "azure/gpt-4o",
            "endpoint": "https://acme.openai.azure.com", "api_key": "azure-SECRET-MARKER-7f3a9c"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{azure}");
    assert_eq!(azure["platform"], "azure_openai");

    // Claude served by vLLM is not an approved combination: allowed, with a warning. (GPT on
    // vLLM is approved since GitLab lists GPT-oss.)
    let (status, odd) = h
        .post(
            MODELS,
            json!({"name": "claude-local", "family": "claude_3",
            "identifier": "custom_openai/claude-local", "endpoint": "http://gpu:8000/v1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{odd}");
    assert!(
        odd["warnings"][0]
            .as_str()
            .unwrap()
            .contains("not an approved combination"),
        "{odd}"
    );
}

#[tokio::test]
async fn beta_families_are_accepted_once_beta_models_are_on() {
    let h = Hearth::start();
    let body = json!({"name": "cg", "family": "codegemma", "endpoint": "http://gpu:8000/v1",
        "identifier": "custom_openai/codegemma-2b"});
    let msg = expect_error(
        &h.post(MODELS, body.clone()).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("family"),
    );
    assert!(
        msg.contains("hearth settings set beta_models_enabled true"),
        "{msg}"
    );
    let (status, _) = h
        .patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, created) = h.post(MODELS, body).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["model"], "codegemma-2b");
}

#[tokio::test]
async fn duplicate_names_conflict_on_create_and_rename() {
    let h = Hearth::start();
    h.create(vllm_body("a")).await;
    let b = h.create(vllm_body("b")).await;
    let msg = expect_error(
        &h.post(MODELS, vllm_body("a")).await,
        StatusCode::CONFLICT,
        Some("name"),
    );
    assert!(msg.contains("already exists"), "{msg}");
    let got = h
        .patch(&format!("{MODELS}/{b}"), json!({"name": "a"}))
        .await;
    expect_error(&got, StatusCode::CONFLICT, Some("name"));
    let (_, shown) = h.get(&format!("{MODELS}/{b}")).await;
    assert_eq!(
        shown["name"], "b",
        "the refused rename left the row as it was"
    );
}

#[tokio::test]
async fn deleting_a_deployment_in_use_names_the_features() {
    let h = Hearth::start();
    let id = h.create(vllm_body("busy")).await;
    for feature in ["code_completions", "code_generations"] {
        let (status, body) = h
            .put(
                &format!("/api/v1/feature_settings/{feature}"),
                json!({"provider": "self_hosted", "self_hosted_model_id": id}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let msg = expect_error(
        &h.delete(&format!("{MODELS}/{id}")).await,
        StatusCode::CONFLICT,
        None,
    );
    assert!(
        msg.contains("code_completions") && msg.contains("code_generations"),
        "{msg}"
    );
    let (_, shown) = h.get(&format!("{MODELS}/{id}")).await;
    assert_eq!(
        shown["features"],
        json!(["code_completions", "code_generations"])
    );

    for feature in ["code_completions", "code_generations"] {
        h.put(
            &format!("/api/v1/feature_settings/{feature}"),
            json!({"provider": "disabled"}),
        )
        .await;
    }
    let (status, _) = h.delete(&format!("{MODELS}/{id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn an_update_that_would_break_a_bound_feature_is_refused() {
    let h = Hearth::start();
    let id = h.create(vllm_body("chat")).await;
    let (status, _) = h
        .put(
            "/api/v1/feature_settings/duo_chat",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // Codestral has no chat: the family change would strand duo_chat.
    let got = h
        .patch(
            &format!("{MODELS}/{id}"),
            json!({"family": "codestral", "identifier": "custom_openai/codestral"}),
        )
        .await;
    let msg = expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("family"));
    assert!(
        msg.contains("duo_chat") && msg.contains("does not support chat"),
        "{msg}"
    );
    let (_, shown) = h.get(&format!("{MODELS}/{id}")).await;
    assert_eq!(shown["family"], "mixtral");
}

#[tokio::test]
async fn unknown_ids_are_404() {
    let h = Hearth::start();
    for path in [format!("{MODELS}/999"), format!("{MODELS}/abc")] {
        expect_error(&h.get(&path).await, StatusCode::NOT_FOUND, None);
        expect_error(
            &h.patch(&path, json!({"name": "x"})).await,
            StatusCode::NOT_FOUND,
            None,
        );
        expect_error(&h.delete(&path).await, StatusCode::NOT_FOUND, None);
    }
}
