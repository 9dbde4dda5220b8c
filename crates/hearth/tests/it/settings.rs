//! `/api/v1/settings` and `/api/v1/catalog`.

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Hearth, expect_error};

#[tokio::test]
async fn settings_default_off_and_patch_partially() {
    let h = Hearth::start();
    let (status, s) = h.get("/api/v1/settings").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        s,
        json!({"beta_models_enabled": false, "verbose_ai_logs": false})
    );
    let (status, s) = h
        .patch("/api/v1/settings", json!({"verbose_ai_logs": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(s["verbose_ai_logs"], true);
    assert_eq!(s["beta_models_enabled"], false);
    assert!(
        s["warnings"][0].as_str().unwrap().contains("prompts"),
        "{s}"
    );
    let (_, s) = h.get("/api/v1/settings").await;
    assert_eq!(
        s,
        json!({"beta_models_enabled": false, "verbose_ai_logs": true})
    );
}

#[tokio::test]
async fn bad_settings_are_refused() {
    let h = Hearth::start();
    expect_error(
        &h.patch("/api/v1/settings", json!({"verbose_ai_logs": "yes"}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("verbose_ai_logs"),
    );
    let msg = expect_error(
        &h.patch("/api/v1/settings", json!({"dark_mode": true}))
            .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("dark_mode"),
    );
    assert!(msg.contains("unknown field"), "{msg}");
    expect_error(
        &h.patch("/api/v1/settings", json!([1, 2])).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("body"),
    );
    let (_, s) = h.get("/api/v1/settings").await;
    assert_eq!(s["verbose_ai_logs"], false);
}

#[tokio::test]
async fn catalog_is_served_and_filtered() {
    let h = Hearth::start();
    let (status, all) = h.get("/api/v1/catalog").await;
    assert_eq!(status, StatusCode::OK);
    // The seeds' 22 rows and the 18 of GitLab 18.x's table.
    assert_eq!(all["models"].as_array().unwrap().len(), 22 + 18);
    let mixtral = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "mixtral-8x7b-instruct-v0.1")
        .unwrap();
    assert_eq!(mixtral["deprecated"]["since"], "18.3");
    assert_eq!(mixtral["deprecated"]["end_of_support"], "18.6");
    assert_eq!(
        mixtral["deprecated"]["replacement"],
        "mistral-small-24b-instruct-2506"
    );
    assert_eq!(mixtral["introduced"], serde_json::Value::Null);
    let llama = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "llama-3.3-70b-instruct")
        .unwrap();
    assert_eq!(llama["introduced"], "17.10");
    assert_eq!(all["legend"].as_array().unwrap().len(), 5);
    let (_, chat) = h.get("/api/v1/catalog?feature=duo_chat&status=ga").await;
    let ids: Vec<&str> = chat["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"gpt-4o") && !ids.contains(&"mistral-7b-instruct-v0.3"),
        "{ids:?}"
    );
    expect_error(
        &h.get("/api/v1/catalog?feature=vision").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("feature"),
    );
    expect_error(
        &h.get("/api/v1/catalog?status=alpha").await,
        StatusCode::UNPROCESSABLE_ENTITY,
        Some("status"),
    );
}
