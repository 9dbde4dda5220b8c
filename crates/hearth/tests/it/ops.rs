//! Install and operations commands: `--version`, `completions`, `health`.

use std::process::{Command, Output};

use crate::harness::{BIN, Hearth};

fn hearth(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn version_names_the_git_revision_it_was_built_from() {
    let out = hearth(&["--version"], &[]);
    assert!(out.status.success(), "{}", text(&out));
    let line = String::from_utf8(out.stdout).unwrap();
    let rev = line
        .trim()
        .strip_prefix(&format!("hearth {} (git ", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("unexpected --version line: {line:?}"));
    // Built inside the repository the test runs from: the revision is HEAD's.
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(head) if std::env::var_os("HEARTH_GIT_REV").is_none() => assert_eq!(rev, head),
        _ => assert!(
            rev == "unknown" || rev.chars().all(|c| c.is_ascii_hexdigit()),
            "{rev:?}"
        ),
    }
}

#[test]
fn completions_are_scripts_for_each_shell_naming_the_commands() {
    for (shell, marker) in [
        ("bash", "complete -F _hearth"),
        ("zsh", "#compdef hearth"),
        ("fish", "complete -c hearth"),
    ] {
        let out = hearth(&["completions", shell], &[]);
        assert!(out.status.success(), "{shell}: {}", text(&out));
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(marker), "{shell}: no {marker:?}");
        for command in ["serve", "models", "features", "completions", "health"] {
            assert!(script.contains(command), "{shell}: no {command}");
        }
    }
    let out = hearth(&["completions", "tcsh"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).contains("bash"), "{}", text(&out));
}

#[tokio::test]
async fn health_exits_0_when_the_server_answers_and_1_when_it_does_not() {
    let h = Hearth::start();
    let url = h.url("");
    let out = tokio::task::spawn_blocking(move || hearth(&["health", "--url", &url], &[]))
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    // HEARTH_LISTEN is how the container image configures both the server and the probe.
    let listen = h.addr.to_string();
    let out =
        tokio::task::spawn_blocking(move || hearth(&["health"], &[("HEARTH_LISTEN", &listen)]))
            .await
            .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = hearth(&["health", "--url", &dead, "--timeout", "2"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unhealthy: cannot reach"),
        "{}",
        text(&out)
    );
}
