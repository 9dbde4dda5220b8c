//! Stopping and starting on the same data directory loses nothing, and API keys stay
//! encrypted at rest and decryptable with the same secret key.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options, SECRET, api_key, serve_must_fail, vllm_body};

#[tokio::test]
async fn everything_survives_a_restart_and_the_key_still_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Hearth::start_with(Options {
        data_dir: Some(dir.path()),
        ..Default::default()
    });
    let mut body = vllm_body("persisted");
    body["api_key"] = json!(api_key(7));
    let id = first.create(body).await;
    first
        .create(json!({"name": "claude", "family": "claude_3",
        "identifier": "bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", "region": "us-east-1", "api_key": "AKIAIOSFODNN7EXAMPLE:SECRET-MARKER-7f3a9c-aws"}))
        .await;
    first
        .put(
            "/api/v1/feature_settings/code_completions",
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    first
        .patch(
            "/api/v1/settings",
            json!({"beta_models_enabled": true, "verbose_ai_logs": true}),
        )
        .await;
    let (_, models_before) = first.get("/api/v1/self_hosted_models").await;
    let (_, features_before) = first.get("/api/v1/feature_settings").await;
    assert!(first.stop().success());

    // The key is not in the database file in the clear.
    let db = std::fs::read(dir.path().join("hearth.db")).unwrap();
    let wal = std::fs::read(dir.path().join("hearth.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
            "plain key on disk"
        );
    }

    let second = Hearth::start_with(Options {
        data_dir: Some(dir.path()),
        ..Default::default()
    });
    let (_, models_after) = second.get("/api/v1/self_hosted_models").await;
    let (_, features_after) = second.get("/api/v1/feature_settings").await;
    let (_, settings) = second.get("/api/v1/settings").await;
    assert_eq!(stored(models_after.clone()), stored(models_before));
    assert_eq!(features_after, features_before);
    assert_eq!(
        settings,
        json!({"beta_models_enabled": true, "verbose_ai_logs": true})
    );
    let persisted = &models_after[0];
    assert_eq!(persisted["api_key_set"], true);
    assert!(
        persisted.get("api_key_error").is_none(),
        "the key decrypts: {persisted}"
    );
    assert!(
        !second.logs().contains("cannot decrypt"),
        "{}",
        second.logs()
    );
}

#[tokio::test]
async fn a_different_secret_key_reports_the_key_as_unreadable_without_losing_it() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = "aa".repeat(32);
    let key_b = "bb".repeat(32);
    let with = |key: &str| Options {
        data_dir: Some(dir.path()),
        env: vec![("HEARTH_SECRET_KEY", key.to_string())],
        ..Default::default()
    };
    let mut first = Hearth::start_with(with(&key_a));
    let mut body = vllm_body("keyed");
    body["api_key"] = json!(api_key(8));
    first.create(body).await;
    assert!(first.stop().success());
    assert!(
        !dir.path().join("secret.key").exists(),
        "HEARTH_SECRET_KEY replaces the key file"
    );

    let mut wrong = Hearth::start_with(with(&key_b));
    let (status, list) = wrong.get("/api/v1/self_hosted_models").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list[0]["api_key_set"], true);
    assert!(
        list[0]["api_key_error"]
            .as_str()
            .unwrap()
            .contains("cannot be decrypted"),
        "{list}"
    );
    wrong.wait_for_log("cannot decrypt a deployment's API key");
    assert!(wrong.stop().success());

    let right = Hearth::start_with(with(&key_a));
    let (_, list) = right.get("/api/v1/self_hosted_models").await;
    assert!(
        list[0].get("api_key_error").is_none(),
        "the original key opens it again: {list}"
    );
}

#[test]
fn a_malformed_secret_key_stops_start_up_with_the_fix() {
    let stderr = serve_must_fail(
        &["--listen", "127.0.0.1:0"],
        &[("HEARTH_SECRET_KEY", "too-short")],
    );
    assert!(stderr.contains("openssl rand -hex 32"), "{stderr}");
}

/// Deployments as stored: each replica's URL without what this process has seen of it
/// (health, load), which a restart starts afresh.
pub(crate) fn stored(mut deployments: Value) -> Value {
    for d in deployments.as_array_mut().into_iter().flatten() {
        for e in d["endpoints"].as_array_mut().into_iter().flatten() {
            *e = e["url"].clone();
        }
    }
    deployments
}
