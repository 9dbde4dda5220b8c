//! The server's own behaviour: health, correlation ids, log lines, the admin token file,
//! graceful shutdown.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Hearth, Options, api_key, serve_must_fail, vllm_body};

#[tokio::test]
async fn health_and_readiness_answer_without_auth() {
    let h = Hearth::start();
    let resp = h.open_get("/monitoring/healthz").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({}));
    let resp = h.open_get("/monitoring/ready").await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["database"], "ok");
}

#[tokio::test]
async fn correlation_ids_are_kept_when_sane_echoed_and_logged() {
    let h = Hearth::start();
    let resp = h
        .http()
        .get(h.url("/monitoring/healthz"))
        .header("x-request-id", "req-4f2a.9")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-4f2a.9");
    let line = h.wait_for_log("\"correlation_id\":\"req-4f2a.9\"");
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["path"], "/monitoring/healthz");
    assert_eq!(entry["status_code"], 200);
    assert_eq!(entry["method"], "GET");
    assert_eq!(entry["client_ip"], "127.0.0.1");
    assert!(entry["duration_s"].as_f64().unwrap() >= 0.0);

    for insane in [
        "a b".to_string(),
        "x".repeat(300),
        "id\"injected".to_string(),
    ] {
        let resp = h
            .http()
            .get(h.url("/monitoring/healthz"))
            .header("x-request-id", insane.as_str())
            .send()
            .await
            .unwrap();
        let echoed = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        assert_ne!(echoed, insane);
        assert_eq!(echoed.len(), 32, "a fresh id replaces {insane:?}");
    }
    let resp = h.open_get("/monitoring/healthz").await;
    assert_eq!(resp.headers()["x-request-id"].len(), 32);
}

#[tokio::test]
async fn handler_log_lines_carry_the_correlation_id_and_never_the_key() {
    let h = Hearth::start_with(Options {
        args: vec!["--log-level".into(), "trace".into()],
        ..Default::default()
    });
    let mut body = vllm_body("logged");
    body["api_key"] = json!(api_key(3));
    let resp = h
        .http()
        .post(h.url("/api/v1/self_hosted_models"))
        .bearer_auth(&h.token)
        .header("x-request-id", "create-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    let line = h.wait_for_log("self-hosted model created");
    let entry: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(entry["span"]["correlation_id"], "create-1");
    assert_eq!(entry["api_key_set"], true);
    // The harness also scans every line of this trace-level run for the key when it stops.
}

#[tokio::test]
async fn the_generated_admin_token_is_private_and_works() {
    let h = Hearth::start_with(Options {
        generated_token: true,
        ..Default::default()
    });
    let path = h.data_dir.join("admin.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = h.data_dir.join("secret.key");
        assert_eq!(
            std::fs::metadata(key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let line = h.wait_for_log("generated the admin token");
    assert!(
        line.contains(path.to_str().unwrap()),
        "the log names the path: {line}"
    );
    let (status, _) = h.get("/api/v1/settings").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn logs_are_appended_to_a_file_too() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("hearth.log");
    std::fs::write(&log, "earlier line\n").unwrap();
    let mut h = Hearth::start_with(Options {
        args: vec!["--log-file".into(), log.to_str().unwrap().into()],
        ..Default::default()
    });
    h.http()
        .get(h.url("/monitoring/healthz"))
        .header("x-request-id", "to-file")
        .send()
        .await
        .unwrap();
    h.wait_for_log("to-file");
    assert!(h.stop().success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.starts_with("earlier line\n"),
        "appended, not truncated"
    );
    assert!(text.contains("\"correlation_id\":\"to-file\""), "{text}");
    assert!(text.contains("hearth stopped"));
}

#[tokio::test]
async fn sigterm_stops_cleanly() {
    let mut h = Hearth::start();
    h.create(vllm_body("x")).await;
    let status = h.stop();
    assert!(status.success(), "{status:?}");
    assert!(h.logs().contains("shutting down"));
    assert!(h.logs().contains("hearth stopped"));
}

#[test]
fn a_busy_port_is_a_clear_start_up_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    let stderr = serve_must_fail(&["--listen", &listen], &[]);
    assert!(
        stderr.contains(&format!("cannot listen on {listen}")),
        "{stderr}"
    );
}

#[test]
fn a_short_admin_token_is_refused() {
    let stderr = serve_must_fail(
        &["--listen", "127.0.0.1:0"],
        &[("HEARTH_ADMIN_TOKEN", "short")],
    );
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
}

#[tokio::test]
async fn gitlabs_configuration_names_work_and_hearths_win() {
    let dir = tempfile::tempdir().unwrap();
    let aigw_file = dir.path().join("aigateway.log");
    let hearth_file = dir.path().join("hearth.log");
    // GitLab's name alone: lines appended to its file.
    let mut h = Hearth::start_with(Options {
        env: vec![("AIGW_LOGGING__TO_FILE", aigw_file.to_str().unwrap().into())],
        ..Default::default()
    });
    let status = h.stop();
    assert!(status.success(), "{status:?}\n{}", h.logs());
    let text = std::fs::read_to_string(&aigw_file).unwrap();
    assert!(text.contains("hearth listening"), "{text}");
    // Both names: HEARTH_LOG_FILE wins.
    let mut h = Hearth::start_with(Options {
        env: vec![
            ("AIGW_LOGGING__TO_FILE", aigw_file.to_str().unwrap().into()),
            ("HEARTH_LOG_FILE", hearth_file.to_str().unwrap().into()),
        ],
        ..Default::default()
    });
    assert!(h.stop().success());
    assert!(
        std::fs::read_to_string(&hearth_file)
            .unwrap()
            .contains("hearth listening")
    );
    assert_eq!(
        std::fs::read_to_string(&aigw_file).unwrap(),
        text,
        "the GitLab name lost"
    );
}
