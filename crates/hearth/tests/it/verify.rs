//! `hearth verify` end to end: the real CLI against the real server, against a healthy set-up
//! and against each way a set-up breaks, each named with its cause and fix.

use std::process::{Command, Output};

use hearth_testkit::{FakeGitlab, FakeUpstream};
use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, BIN, Hearth, MARKER, Options, api_key};

const CODESTRAL: &str = "Codestral-22B-v0.1";
const MIXTRAL: &str = "Mixtral-8x7B-Instruct-v0.1";

/// Runs `hearth verify` against `h` from a clean environment (no HEARTH_* of the test runner).
/// It blocks its thread: the tests run on a multi-threaded runtime so the fake servers answer.
pub(crate) fn verify(h: &Hearth, extra: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("verify").args(extra);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") || k.starts_with("AIGW_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1")
        .env("HEARTH_URL", h.url(""))
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HEARTH_DATA_DIR", &h.data_dir);
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(MARKER), "verify printed a secret: {all}");
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The line of the check `step` with status `status` (`ok  `, `warn`, `FAIL`), and the fix
/// printed under it when there is one.
fn line<'a>(text: &'a str, status: &str, step: &str) -> (&'a str, Option<&'a str>) {
    let lines: Vec<&str> = text.lines().collect();
    let i = lines
        .iter()
        .position(|l| l.starts_with(&format!("[{status}]")) && l.contains(&format!(": {step}: ")))
        .unwrap_or_else(|| panic!("no [{status}] line for {step:?} in:\n{text}"));
    let fix = lines
        .get(i + 1)
        .and_then(|l| l.trim_start().strip_prefix("fix: "));
    (lines[i], fix)
}

async fn deployment(
    h: &Hearth,
    name: &str,
    up: &FakeUpstream,
    served: &str,
    key: Option<String>,
) -> i64 {
    let family = if served == CODESTRAL {
        "codestral"
    } else {
        "mixtral"
    };
    let mut body = json!({
        "name": name,
        "family": family,
        "endpoint": up.endpoint(),
        "identifier": format!("custom_openai/{served}"),
    });
    if let Some(key) = key {
        body["api_key"] = json!(key);
    }
    h.create(body).await
}

async fn bind(h: &Hearth, feature: &str, id: i64) {
    let (status, body) = h
        .put(
            &format!("/api/v1/feature_settings/{feature}"),
            json!({"provider": "self_hosted", "self_hosted_model_id": id}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_set_up_passes_with_every_step_listed() {
    let gl = FakeGitlab::start().await;
    let up = FakeUpstream::start().await;
    up.serve_models(&[CODESTRAL, MIXTRAL]);
    up.require_key(&api_key(1));
    let h = Hearth::start_with(Options {
        env: vec![("HEARTH_GITLAB_URL", gl.url())],
        ..Default::default()
    });
    let code = deployment(&h, "codestral", &up, CODESTRAL, Some(api_key(1))).await;
    let chat = deployment(&h, "mixtral", &up, MIXTRAL, Some(api_key(1))).await;
    bind(&h, "code_completions", code).await;
    bind(&h, "duo_chat", chat).await;
    {
        use std::os::unix::fs::PermissionsExt;
        let private = std::fs::Permissions::from_mode(0o700);
        std::fs::set_permissions(&h.data_dir, private).unwrap();
    }

    let out = verify(&h, &["--from-gitlab-view"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    for step in [
        "listen",
        "data dir",
        "admin token",
        "AIGW_* names",
        "healthz",
        "ready",
        "reachable",
        "migrations",
        "decrypts",
        "OIDC discovery",
        "JWKS",
        "clock skew",
        "configuration",
        "dns",
        "tcp",
        "authentication",
        "served name",
        "1-token code completion (code_completions)",
        "fim smoke test",
    ] {
        line(&text, "ok  ", step);
    }
    // Both deployments were called, each with the stored key.
    let (served, _) = line(&text, "ok  ", "served name");
    assert!(
        served.contains(CODESTRAL) || served.contains(MIXTRAL),
        "{served}"
    );
    line(&text, "ok  ", "1-token chat (duo_chat)");
    // Mixtral is amber for chat: a warning, which does not fail the run.
    let (amber, _) = line(&text, "warn", "rating");
    assert!(
        amber.contains("duo_chat") && amber.contains("amber"),
        "{amber}"
    );
    assert!(text.contains("/monitoring/healthz → 200"), "{text}");
    assert!(
        text.contains("model families GitLab may select: mistral, mixtral, codestral"),
        "{text}"
    );
    assert!(text.contains(" 0 failed"), "{text}");
    let paths: Vec<String> = up.requests().iter().map(|r| r.path.clone()).collect();
    assert!(paths.iter().any(|p| p == "/v1/completions"), "{paths:?}");
    assert!(
        paths.iter().any(|p| p == "/v1/chat/completions"),
        "{paths:?}"
    );
    // The FIM smoke test sent Codestral's own fill-in-the-middle prompt.
    assert!(
        up.requests().iter().any(|r| r.body["prompt"]
            .as_str()
            .is_some_and(|p| p.contains("[SUFFIX]") || p.contains("[PREFIX]"))),
        "{:?}",
        up.requests()
            .iter()
            .map(|r| r.body.clone())
            .collect::<Vec<_>>()
    );

    let out = verify(&h, &["--json", "--from-gitlab-view"]);
    assert_eq!(out.status.code(), Some(0));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() >= 20, "{report}");
    for c in checks {
        for field in ["group", "subject", "step", "status", "message"] {
            assert!(c[field].is_string(), "{field} missing in {c}");
        }
        assert!(
            ["pass", "warn", "skip"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
    assert_eq!(report["gitlab_view"]["healthz"]["status"], 200, "{report}");
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_endpoint_is_named_with_its_fix() {
    let h = Hearth::start();
    let id = h
        .create(json!({
            "name": "dead",
            "family": "codestral",
            "endpoint": format!("http://127.0.0.1:{}/v1", dead_port()),
            "identifier": format!("custom_openai/{CODESTRAL}"),
        }))
        .await;
    bind(&h, "code_completions", id).await;
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (tcp, fix) = line(&text, "FAIL", "tcp");
    assert!(
        tcp.contains("dead") && tcp.contains("connection refused"),
        "{tcp}"
    );
    assert!(fix.unwrap().contains("start the model server"), "{text}");
    assert!(text.contains(" 1 failed"), "{text}");
}

/// Each replica is checked on its own: the live one passes, the dead one fails naming its URL,
/// and the fix names the deployment as the CLI knows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_is_checked_on_its_own() {
    let up = FakeUpstream::start().await;
    up.serve_models(&[CODESTRAL]);
    let h = Hearth::start();
    let dead = format!("http://127.0.0.1:{}/v1", dead_port());
    let id = h
        .create(json!({
            "name": "pair",
            "family": "codestral",
            "endpoints": [up.endpoint(), dead],
            "identifier": format!("custom_openai/{CODESTRAL}"),
        }))
        .await;
    bind(&h, "code_completions", id).await;
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (tcp, _) = line(&text, "FAIL", "tcp");
    assert!(tcp.contains(&format!("pair @ {dead}")), "{tcp}");
    assert!(
        text.lines().any(
            |l| l.starts_with("[ok") && l.contains(&format!("pair @ {}: tcp: ", up.endpoint()))
        ),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_served_name_lists_the_names_served() {
    let up = FakeUpstream::start().await;
    up.serve_models(&["qwen-coder", "llama-3-8b"]);
    let h = Hearth::start();
    let id = deployment(&h, "codestral", &up, CODESTRAL, None).await;
    bind(&h, "code_completions", id).await;
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (served, fix) = line(&text, "FAIL", "served name");
    assert!(
        served.contains(&format!("does not serve \"{CODESTRAL}\""))
            && served.contains("it serves: qwen-coder, llama-3-8b"),
        "{served}"
    );
    assert!(fix.unwrap().contains("--served-model-name"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_server_refuses_fails_authentication_and_json_says_so() {
    let up = FakeUpstream::start().await;
    up.serve_models(&[CODESTRAL]);
    up.require_key("the-key-the-server-wants");
    let h = Hearth::start();
    let id = deployment(&h, "codestral", &up, CODESTRAL, Some(api_key(2))).await;
    bind(&h, "code_completions", id).await;
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (auth, fix) = line(&text, "FAIL", "authentication");
    assert!(auth.contains("401"), "{auth}");
    assert!(
        fix.unwrap().contains("refused the stored API key"),
        "{text}"
    );

    let out = verify(&h, &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    let failed: Vec<&Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "fail")
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert_eq!(failed[0]["group"], "deployment");
    assert_eq!(failed[0]["subject"], "codestral");
    assert_eq!(failed[0]["step"], "authentication");
    assert!(
        failed[0]["fix"]
            .as_str()
            .unwrap()
            .contains("hearth models update"),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_the_secret_key_cannot_decrypt_is_named_with_its_fix() {
    let dir = tempfile::tempdir().unwrap();
    let up = FakeUpstream::start().await;
    up.serve_models(&[CODESTRAL]);
    let with = |key: String| Options {
        data_dir: Some(dir.path()),
        env: vec![("HEARTH_SECRET_KEY", key)],
        ..Default::default()
    };
    let mut first = Hearth::start_with(with("aa".repeat(32)));
    deployment(&first, "keyed", &up, CODESTRAL, Some(api_key(3))).await;
    assert!(first.stop().success());

    let h = Hearth::start_with(with("bb".repeat(32)));
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (decrypt, fix) = line(&text, "FAIL", "decrypts");
    assert!(
        decrypt.contains("\"keyed\"")
            && decrypt.contains("cannot be decrypted with HEARTH_SECRET_KEY"),
        "{decrypt}"
    );
    let fix = fix.unwrap();
    assert!(
        fix.contains("HEARTH_SECRET_KEY") && fix.contains("--api-key-file"),
        "{fix}"
    );
    // The deployment itself cannot be called either, and says why.
    let (config, _) = line(&text, "FAIL", "configuration");
    assert!(config.contains("cannot decrypt"), "{config}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_gitlab_is_named_with_its_fix() {
    let h = Hearth::start_with(Options {
        env: vec![(
            "HEARTH_GITLAB_URL",
            format!("http://127.0.0.1:{}", dead_port()),
        )],
        ..Default::default()
    });
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (discovery, fix) = line(&text, "FAIL", "OIDC discovery");
    assert!(
        discovery.contains("openid-configuration") && discovery.contains("refused"),
        "{discovery}"
    );
    assert!(fix.unwrap().contains("HEARTH_GITLAB_URL"), "{text}");
}

#[test]
fn a_server_that_is_not_running_fails_at_health_and_skips_the_rest() {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd
        .args([
            "verify",
            "--url",
            &format!("http://127.0.0.1:{}", dead_port()),
        ])
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (health, fix) = line(&text, "FAIL", "healthz");
    assert!(health.contains("cannot reach"), "{health}");
    assert!(fix.unwrap().contains("hearth serve"), "{text}");
    assert!(text.contains("[skip] server"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_azure_deployment_that_does_not_exist_names_the_deployment_and_api_version() {
    let up = FakeUpstream::start().await;
    up.azure(&api_key(5), &["gpt-4o"]);
    let h = Hearth::start();
    let id = h
        .create(
            json!({"name": "azure", "family": "gpt", "identifier": "azure/gpt-4o-typo",
            "endpoint": up.azure_endpoint(), "api_key": api_key(5)}),
        )
        .await;
    bind(&h, "duo_chat", id).await;
    let out = verify(&h, &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let (call, fix) = line(&text, "FAIL", "1-token chat (duo_chat)");
    assert!(
        call.contains("404") && call.contains("deployment"),
        "{call}"
    );
    let fix = fix.unwrap();
    assert!(
        fix.contains("azure/<deployment>") && fix.contains("--api-version"),
        "{fix}"
    );
}
