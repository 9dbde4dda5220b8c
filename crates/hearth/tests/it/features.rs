//! `/api/v1/feature_settings`: bindings follow the catalog's ratings.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Hearth, expect_error, vllm_body};

fn path(feature: &str) -> String {
    format!("/api/v1/feature_settings/{feature}")
}

fn bind(id: i64) -> serde_json::Value {
    json!({"provider": "self_hosted", "self_hosted_model_id": id})
}

#[tokio::test]
async fn every_feature_starts_disabled_and_binds_to_a_deployment() {
    let h = Hearth::start();
    let (status, list) = h.get("/api/v1/feature_settings").await;
    assert_eq!(status, StatusCode::OK);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 16);
    assert!(list.iter().all(|f| f["provider"] == "disabled"));
    let names: Vec<&str> = list
        .iter()
        .map(|f| f["feature"].as_str().unwrap())
        .collect();
    for expected in [
        "code_completions",
        "code_generations",
        "duo_chat",
        "duo_chat_explain_code",
        "duo_chat_write_tests",
        "duo_chat_refactor_code",
        "duo_chat_fix_code",
        "duo_chat_troubleshoot_job",
        "duo_chat_summarize_comments",
    ] {
        assert!(names.contains(&expected), "{expected}");
    }

    let id = h.create(vllm_body("mixtral")).await;
    let (status, set) = h.put(&path("code_completions"), bind(id)).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["provider"], "self_hosted");
    assert_eq!(set["self_hosted_model_id"], id);
    assert_eq!(set["self_hosted_model_name"], "mixtral");
    // Mixtral 8x7B is green for completion; the only warning is GitLab's deprecation (18.3).
    let warnings = set["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{set}");
    assert!(
        warnings[0]
            .as_str()
            .unwrap()
            .contains("deprecated by GitLab in 18.3 (end of support in 18.6)"),
        "{set}"
    );
    // The short chat sub-feature name works too.
    let (status, set) = h.put(&path("explain_code"), bind(id)).await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["feature"], "duo_chat_explain_code");

    let (_, one) = h.get(&path("code_completions")).await;
    assert_eq!(one["self_hosted_model_id"], id);
    let (status, off) = h
        .put(&path("code_completions"), json!({"provider": "disabled"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(off["provider"], "disabled");
    assert_eq!(off["self_hosted_model_id"], serde_json::Value::Null);
}

#[tokio::test]
async fn red_and_unsupported_ratings_are_refused_and_amber_warns() {
    let h = Hearth::start();
    let mistral = h
        .create(
            json!({"name": "mistral", "family": "mistral", "endpoint": "http://g:8000/v1",
            "identifier": "custom_openai/Mistral-7B-Instruct-v0.3"}),
        )
        .await;
    let msg = expect_error(
        &h.put(&path("duo_chat"), bind(mistral)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("self_hosted_model_id"),
    );
    assert!(
        msg.contains("Mistral 7B-it v0.3 is rated red for chat"),
        "{msg}"
    );

    let codestral = h
        .create(
            json!({"name": "codestral", "family": "codestral", "endpoint": "http://g:8000/v1",
            "identifier": "custom_openai/codestral"}),
        )
        .await;
    let msg = expect_error(
        &h.put(&path("duo_chat_write_tests"), bind(codestral)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("self_hosted_model_id"),
    );
    assert!(msg.contains("does not support chat"), "{msg}");
    let (status, ok) = h.put(&path("code_completions"), bind(codestral)).await;
    assert_eq!(status, StatusCode::OK, "{ok}");

    let mixtral = h.create(vllm_body("mixtral")).await;
    let (status, amber) = h.put(&path("duo_chat"), bind(mixtral)).await;
    assert_eq!(status, StatusCode::OK, "{amber}");
    assert!(
        amber["warnings"][0]
            .as_str()
            .unwrap()
            .contains("rated amber for chat"),
        "{amber}"
    );

    let (_, chat) = h.get(&path("duo_chat")).await;
    assert_eq!(
        chat["self_hosted_model_id"], mixtral,
        "refusals changed nothing"
    );
}

#[tokio::test]
async fn malformed_bindings_are_refused() {
    let h = Hearth::start();
    let id = h.create(vllm_body("m")).await;
    let cases = [
        (json!({"provider": "self_hosted"}), "self_hosted_model_id"),
        (
            json!({"provider": "self_hosted", "self_hosted_model_id": 4242}),
            "self_hosted_model_id",
        ),
        (
            json!({"provider": "disabled", "self_hosted_model_id": id}),
            "self_hosted_model_id",
        ),
        (json!({"provider": "vendored"}), "provider"),
        (
            json!({"provider": "self_hosted", "self_hosted_model_id": "one"}),
            "self_hosted_model_id",
        ),
        (json!({"provider": "disabled", "fallback": id}), "fallback"),
    ];
    for (body, field) in cases {
        expect_error(
            &h.put(&path("code_completions"), body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some(field),
        );
    }
    let msg = expect_error(
        &h.put(&path("make_coffee"), bind(id)).await,
        StatusCode::NOT_FOUND,
        None,
    );
    assert!(msg.contains("code_completions"), "{msg}");
}

#[tokio::test]
async fn beta_features_need_beta_models_on() {
    let h = Hearth::start();
    let id = h.create(vllm_body("m")).await;
    let got = h.put(&path("generate_commit_message"), bind(id)).await;
    let msg = expect_error(&got, StatusCode::UNPROCESSABLE_ENTITY, Some("feature"));
    assert!(msg.contains("beta"), "{msg}");
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let (status, body) = h.put(&path("generate_commit_message"), bind(id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
