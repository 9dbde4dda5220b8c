//! The command line against a running server, as an operator types it.

use std::process::{Command, Output};

use serde_json::Value;

use crate::harness::{ADMIN_TOKEN, BIN, Hearth, api_key};

fn hearth(h: Option<&Hearth>, args: &[&str]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1");
    if let Some(h) = h {
        cmd.env("HEARTH_URL", h.url(""))
            .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN);
    }
    let out = cmd.output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !all.contains(crate::harness::MARKER),
        "the CLI printed a secret: {all}"
    );
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn models_features_and_settings_round_trip() {
    let h = Hearth::start();
    let key = api_key(9);
    let out = hearth(
        Some(&h),
        &[
            "models",
            "add",
            "--name",
            "Mixtral on gpu-1",
            "--family",
            "mixtral",
            "--endpoint",
            "http://gpu-1:8000/v1",
            "--identifier",
            "custom_openai/Mixtral-8x7B-Instruct-v0.1",
            "--api-key",
            &key,
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Created self-hosted model Mixtral on gpu-1 (id 1)"),
        "{}",
        stdout(&out)
    );

    let out = hearth(Some(&h), &["models", "list"]);
    let table = stdout(&out);
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    assert!(header.starts_with("ID  NAME"), "{table}");
    let row = lines.next().unwrap();
    assert!(
        row.contains("Mixtral on gpu-1")
            && row.contains("http://gpu-1:8000/v1")
            && row.contains(" set "),
        "{table}"
    );
    // Columns line up: each header starts where its cells start.
    let endpoint_col = header.find("ENDPOINT").unwrap();
    assert_eq!(row.find("http://").unwrap(), endpoint_col, "{table}");

    let out = hearth(Some(&h), &["models", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["api_key_set"], true);

    let out = hearth(
        Some(&h),
        &["features", "set", "duo_chat", "Mixtral on gpu-1"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("warning: Mixtral 8x7B-it v0.1 is rated amber for chat"),
        "{}",
        stderr(&out)
    );
    let out = hearth(Some(&h), &["features", "list"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("duo_chat ") && l.contains("Mixtral on gpu-1 (id 1)")),
        "{}",
        stdout(&out)
    );

    let out = hearth(Some(&h), &["models", "remove", "Mixtral on gpu-1"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is used by duo_chat"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).starts_with("error: "));

    let out = hearth(Some(&h), &["features", "disable", "duo_chat"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(
        Some(&h),
        &[
            "models",
            "update",
            "Mixtral on gpu-1",
            "--name",
            "renamed",
            "--clear-api-key",
            "--first-token-timeout-ms",
            "2500",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["models", "show", "renamed", "--json"]);
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["api_key_set"], false);
    assert_eq!(shown["first_token_timeout_ms"], 2500);
    assert_eq!(shown["total_timeout_ms"], Value::Null);
    let out = hearth(Some(&h), &["models", "remove", "renamed"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = hearth(
        Some(&h),
        &["settings", "set", "beta_models_enabled", "true"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["settings", "get", "--json"]);
    let settings: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(settings["beta_models_enabled"], true);
    let out = hearth(Some(&h), &["settings", "set", "dark_mode", "true"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("unknown setting"));
}

#[test]
fn server_refusals_exit_non_zero_with_the_servers_message() {
    let h = Hearth::start();
    let out = hearth(
        Some(&h),
        &[
            "models",
            "add",
            "--name",
            "x",
            "--family",
            "mistral",
            "--endpoint",
            "http://gpu:8000",
            "--identifier",
            "custom_openai/m",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).trim(),
        "error: an OpenAI-compatible (vLLM) endpoint must end in /v1: use http://gpu:8000/v1 (HTTP 422)"
    );
    let out = hearth(Some(&h), &["models", "show", "ghost"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no self-hosted model is named \"ghost\""));
}

#[test]
fn an_unreachable_server_is_one_line_naming_the_url() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    let out = Command::new(BIN)
        .args(["models", "list", "--url", &url])
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach Hearth at {url}")),
        "{err}"
    );
}

#[test]
fn the_cli_finds_the_generated_token_in_the_data_dir() {
    let h = Hearth::start_with(crate::harness::Options {
        generated_token: true,
        ..Default::default()
    });
    let out = Command::new(BIN)
        .args([
            "settings",
            "get",
            "--url",
            &h.url(""),
            "--data-dir",
            h.data_dir.to_str().unwrap(),
        ])
        .env_remove("HEARTH_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("beta_models_enabled  false"));
}

#[test]
fn catalog_and_plan_work_offline() {
    let out = hearth(
        None,
        &["catalog", "--feature", "chat", "--status", "ga", "--json"],
    );
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        doc["models"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["status"] == "ga")
    );

    let out = hearth(None, &["catalog"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("codestral-22b-v0.1") && l.contains("90 GB")),
        "{text}"
    );
    assert!(text.contains("~49 GB (estimate)"), "{text}");
    // The GitLab version that added a model, where a source gives it (docs/catalog.md).
    assert!(
        text.lines()
            .any(|l| l.starts_with("llama-3.3-70b-instruct") && l.contains("GA (added 17.10)")),
        "{text}"
    );
    let out = hearth(None, &["catalog", "--json"]);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let introduced = |id: &str| {
        doc["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["introduced"]
            .clone()
    };
    assert_eq!(introduced("llama-3-8b-instruct"), "17.10");
    assert_eq!(introduced("claude-4-sonnet"), Value::Null);
    let out = hearth(None, &["plan", "llama-3.1-8b-instruct"]);
    let text = stdout(&out);
    assert!(text.contains("GA, added by GitLab in 17.10"), "{text}");

    let out = hearth(
        None,
        &[
            "plan",
            "codestral",
            "--gpu",
            "A100-80GB",
            "--count",
            "2",
            "--host",
            "gpu-7",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("--tensor_parallel_size 2"), "{text}");
    assert!(
        text.contains(
            "--endpoint http://gpu-7:8000/v1 --identifier custom_openai/Codestral-22B-v0.1"
        ),
        "{text}"
    );

    let out = hearth(None, &["plan", "codestral", "--vram-gb", "24"]);
    assert!(
        out.status.success(),
        "4 x 24 GB hold the 90 GB Codestral needs"
    );
    assert!(
        stdout(&out).contains("--tensor_parallel_size 4"),
        "{}",
        stdout(&out)
    );
    let out = hearth(
        None,
        &["plan", "codestral", "--vram-gb", "24", "--count", "2"],
    );
    assert_eq!(out.status.code(), Some(1), "does not fit: exit 1");
    assert!(stdout(&out).contains("does not fit"));

    let out = hearth(None, &["plan", "mixtrel-8x7b"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("mixtral-8x7b-instruct-v0.1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn keys_are_created_once_listed_by_prefix_and_revoked() {
    let h = Hearth::start();
    let out = hearth(Some(&h), &["keys", "create", "vscode-team-a", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let created: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = created["key"].as_str().unwrap().to_string();
    let out = hearth(Some(&h), &["keys", "list"]);
    let table = stdout(&out);
    assert!(
        table.contains("vscode-team-a") && table.contains("active"),
        "{table}"
    );
    assert!(!table.contains(&key), "lists never show the key");
    let out = hearth(Some(&h), &["keys", "revoke", "vscode-team-a"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["keys", "list", "--json"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list[0]["active"], false);
    let out = hearth(Some(&h), &["keys", "revoke", "ghost"]);
    assert!(!out.status.success());
}

#[test]
fn a_closed_stdout_ends_offline_commands_quietly() {
    for args in [
        &["catalog"][..],
        &["catalog", "--json"],
        &["plan", "codestral", "--gpu", "A100-80GB"],
        &[
            "plan",
            "codestral",
            "--vram-gb",
            "24",
            "--count",
            "2",
            "--json",
        ],
    ] {
        // The reader is gone before the command writes its first byte, so every write fails
        // with EPIPE, as behind `| head` once head has had enough.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(BIN)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(stderr(&out), "", "{args:?}");
        assert_eq!(out.status.code(), Some(0), "{args:?}");
    }
}

fn add_args<'a>(name: &'a str, family: &'a str, identifier: &'a str) -> Vec<&'a str> {
    vec![
        "models",
        "add",
        "--name",
        name,
        "--family",
        family,
        "--endpoint",
        "http://gpu-1:8000/v1",
        "--identifier",
        identifier,
    ]
}

#[test]
fn models_add_suggests_only_the_features_the_catalog_allows_and_warns_about_names() {
    let h = Hearth::start();
    // Codestral completes and generates code but does not chat.
    let out = hearth(
        Some(&h),
        &add_args("codestral", "codestral", "custom_openai/Codestral-22B-v0.1"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("hearth features set code_completions 1"),
        "{text}"
    );
    assert!(
        text.contains("hearth features set code_generations 1"),
        "{text}"
    );
    assert!(!text.contains("duo_chat"), "{text}");
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));

    // A served name the catalog does not know: said at add, and at features set.
    let out = hearth(
        Some(&h),
        &add_args("mine", "mistral", "custom_openai/mistral"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("does not recognise the served name \"mistral\"")
            && err.contains("--model (one of: mistral-7b-instruct-v0.3"),
        "{err}"
    );
    let out = hearth(Some(&h), &["features", "set", "code_completions", "mine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("judged by the best of its family"),
        "{}",
        stderr(&out)
    );
    // --model names the catalog model, by name too; then the warning is gone.
    let out = hearth(
        Some(&h),
        &["models", "update", "mine", "--model", "Mistral 7B-it v0.3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["features", "set", "code_completions", "mine"]);
    // Only GitLab's deprecation of Mistral 7B (18.3, end of support 18.6) is left to say.
    let err = stderr(&out);
    assert!(!err.contains("best of its family"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("deprecated by GitLab in 18.3"), "{err}");

    // A family the identifier contradicts.
    let out = hearth(
        Some(&h),
        &add_args(
            "odd",
            "codestral",
            "custom_openai/Mixtral-8x7B-Instruct-v0.1",
        ),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("looks like a Mixtral model (family mixtral), not codestral"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_empty_key_file_is_refused_and_the_key_kept() {
    let h = Hearth::start();
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, api_key(4)).unwrap();
    let mut args = add_args(
        "keyed",
        "mixtral",
        "custom_openai/Mixtral-8x7B-Instruct-v0.1",
    );
    let path = key_file.to_str().unwrap();
    args.extend(["--api-key-file", path]);
    assert!(hearth(Some(&h), &args).status.success());

    std::fs::write(&key_file, "\n").unwrap();
    let out = hearth(
        Some(&h),
        &["models", "update", "keyed", "--api-key-file", path],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is empty") && stderr(&out).contains("--clear-api-key"),
        "{}",
        stderr(&out)
    );
    let out = hearth(Some(&h), &["models", "show", "keyed"]);
    assert!(stdout(&out).contains("api key     set"), "{}", stdout(&out));

    let out = hearth(Some(&h), &["models", "update", "keyed", "--clear-api-key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["models", "show", "keyed"]);
    assert!(stdout(&out).contains("api key     -"), "{}", stdout(&out));
}

#[test]
fn reset_returns_model_and_timeouts_to_their_defaults_and_delete_is_remove() {
    let h = Hearth::start();
    let mut args = add_args("m", "mixtral", "custom_openai/my-mixtral");
    args.extend([
        "--model",
        "mixtral-8x7b-instruct-v0.1",
        "--connect-timeout-ms",
        "1000",
        "--total-timeout-ms",
        "9000",
    ]);
    assert!(hearth(Some(&h), &args).status.success());
    let show = |h: &Hearth| stdout(&hearth(Some(h), &["models", "show", "m"]));
    let before = show(&h);
    assert!(
        before.contains("connect 1000 ms") && before.contains("Mixtral 8x7B"),
        "{before}"
    );

    let out = hearth(
        Some(&h),
        &[
            "models", "update", "m", "--reset", "model", "--reset", "timeouts",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let after = show(&h);
    assert!(
        after.contains("connect default, first token default, total default"),
        "{after}"
    );
    assert!(after.contains("model       -"), "{after}");

    let out = hearth(
        Some(&h),
        &["models", "update", "m", "--reset", "model", "--model", "x"],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("pass one"), "{}", stderr(&out));

    let out = hearth(Some(&h), &["models", "delete", "m"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Removed self-hosted model m"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn every_flag_and_argument_has_help() {
    for (args, expect) in [
        (
            &["models", "update", "--help"][..],
            &[
                "New unique deployment name",
                "Model family:",
                "Model server URL",
                "custom_openai/<served name>",
                "Catalog model id, name or repository",
                "Return a field to its default",
            ][..],
        ),
        (&["features", "disable", "--help"], &["Feature, e.g."]),
        (
            &["settings", "set", "--help"],
            &["beta_models_enabled or verbose_ai_logs", "true or false"],
        ),
        (&["models", "--help"], &["[alias: delete]"]),
    ] {
        let out = hearth(None, args);
        let text = stdout(&out);
        for e in expect {
            assert!(text.contains(e), "{args:?} lacks {e:?}:\n{text}");
        }
    }
}

#[test]
fn listen_takes_localhost_and_refuses_other_names_with_the_form() {
    let err = crate::harness::serve_must_fail(&["--listen", "gpu-1:5053"], &[]);
    assert!(
        err.contains("\"gpu-1:5053\" is not a listen address") && err.contains("127.0.0.1:5053"),
        "{err}"
    );
    let mut h = Hearth::start_with(crate::harness::Options {
        listen: Some("localhost:0"),
        ..Default::default()
    });
    assert!(h.addr.ip().is_loopback(), "{}", h.addr);
    assert!(h.stop().success());
}

#[test]
fn plan_explains_the_gitlab_minimum_stops_when_it_does_not_fit_and_estimates_unlisted_families() {
    let out = hearth(None, &["plan", "mistral-7b-instruct-v0.3", "--gpu", "L4"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("fits on 1 x L4")
            && text.contains("1x NVIDIA A100 (40GB), is the smallest GitLab tested"),
        "{text}"
    );
    assert!(
        text.contains("huggingface-cli download mistralai/Mistral-7B-Instruct-v0.3"),
        "{text}"
    );

    let out = hearth(
        None,
        &[
            "plan",
            "mixtral-8x22b-instruct-v0.1",
            "--gpu",
            "L4",
            "--count",
            "1",
        ],
    );
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("does not fit"), "{text}");
    assert!(
        !text.contains("vllm serve") && !text.contains("hearth models add"),
        "{text}"
    );

    let out = hearth(None, &["plan", "starcoder2-15b", "--gpu", "L4"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("fits on 2 x L4")
            && text.contains("about 40 GB")
            && text.contains("--family starcoder2"),
        "{text}"
    );
    assert!(!text.contains("codestral"), "{text}");
    let out = hearth(
        None,
        &[
            "plan",
            "Qwen/Qwen2.5-Coder-7B-Instruct",
            "--vram-gb",
            "8",
            "--count",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = hearth(None, &["plan", "starcoder2"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("starcoder2-15b"), "{}", stderr(&out));
}

#[test]
fn plan_sizes_other_precisions_and_refuses_what_the_checkpoint_cannot_give() {
    let out = hearth(
        None,
        &[
            "plan",
            "llama-3.3-70b-instruct",
            "--gpu",
            "A100-80GB",
            "--precision",
            "fp8",
        ],
    );
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Weights: FP8")
            && text.contains("fits on 2 x A100-80GB")
            && text.contains("--quantization fp8"),
        "{text}"
    );
    let out = hearth(None, &["plan", "gpt-oss-20b", "--precision", "awq-int4"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stderr(&out).contains("MXFP4"), "{}", stderr(&out));
    let out = hearth(None, &["plan", "gpt-oss-20b", "--precision", "int3"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("bf16, fp8 or awq-int4"),
        "{}",
        stderr(&out)
    );
}

/// Replicas and fallbacks from the command line, as an operator types them.
#[tokio::test]
async fn replicas_and_fallbacks_from_the_command_line() {
    let h = Hearth::start_with(crate::harness::Options {
        args: vec!["--health-check-interval".into(), "0s".into()],
        ..Default::default()
    });
    let out = hearth(
        Some(&h),
        &[
            "models",
            "add",
            "--name",
            "cs",
            "--family",
            "codestral",
            "--endpoint",
            "http://gpu-1:8000/v1",
            "--endpoint",
            "http://gpu-2:8000/v1",
            "--routing",
            "least_loaded",
            "--identifier",
            "custom_openai/codestral-22b",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(
        Some(&h),
        &[
            "models",
            "update",
            "cs",
            "--add-endpoint",
            "http://gpu-3:8000/v1",
            "--remove-endpoint",
            "http://gpu-1:8000/v1",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(Some(&h), &["models", "show", "cs"]);
    let shown = stdout(&out);
    assert!(
        shown.contains("http://gpu-2:8000/v1 (unchecked)")
            && shown.contains("http://gpu-3:8000/v1 (unchecked)")
            && !shown.contains("gpu-1")
            && shown.contains("least_loaded"),
        "{shown}"
    );
    let out = hearth(
        Some(&h),
        &[
            "models",
            "update",
            "cs",
            "--remove-endpoint",
            "http://gpu-9:8000/v1",
        ],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no endpoint http://gpu-9:8000/v1"),
        "{}",
        stderr(&out)
    );

    let out = hearth(
        Some(&h),
        &[
            "models",
            "add",
            "--name",
            "backup",
            "--family",
            "codestral",
            "--endpoint",
            "http://spare:8000/v1",
            "--identifier",
            "custom_openai/codestral-22b",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let out = hearth(
        Some(&h),
        &[
            "features",
            "set",
            "code_completions",
            "cs",
            "--fallback",
            "backup",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("falls back to: backup"),
        "{}",
        stdout(&out)
    );
    let out = hearth(Some(&h), &["features", "list"]);
    assert!(
        stdout(&out)
            .lines()
            .any(|l| l.starts_with("code_completions") && l.contains("cs (id 1), then backup")),
        "{}",
        stdout(&out)
    );
    let out = hearth(
        Some(&h),
        &[
            "features",
            "set",
            "code_completions",
            "cs",
            "--no-fallbacks",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!stdout(&out).contains("falls back"), "{}", stdout(&out));
}
