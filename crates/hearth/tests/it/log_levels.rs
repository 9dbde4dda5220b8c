//! Log levels as operators type them: GitLab's names in GitLab's variable, tracing filters,
//! and typos, which must stop start-up instead of silencing the log.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{ADMIN_TOKEN, BIN, Hearth, Options};

/// Runs `hearth serve` where start-up must fail; returns its stderr. A server that starts
/// anyway is killed after 20 s and fails the test rather than hanging it.
fn serve_must_fail(args: &[&str], env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") || k.starts_with("AIGW_") {
            cmd.env_remove(k);
        }
    }
    let mut child = cmd
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hearth serve started with {args:?} {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(!status.success(), "{stderr}");
    stderr
}

#[test]
fn a_mistyped_level_stops_start_up_with_one_line_naming_the_accepted_values() {
    for (args, env, shown) in [
        (vec!["--log-level", "infoo"], vec![], "\"infoo\""),
        (vec![], vec![("HEARTH_LOG_LEVEL", "verbose")], "\"verbose\""),
        (
            vec!["--log-level", "hearth=loud"],
            vec![],
            "\"hearth=loud\"",
        ),
        (vec![], vec![("AIGW_LOGGING__LEVEL", "WARN1")], "\"warn1\""),
    ] {
        let stderr = serve_must_fail(&args, &env);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.starts_with("error: log level ") && stderr.contains(shown),
            "{stderr}"
        );
        assert!(
            stderr.contains(
                "use trace, debug, info, warn (or warning), error (or critical) or off, in any case, or tracing directives such as hearth=debug,info"
            ),
            "{stderr}"
        );
    }
}

#[test]
fn tracing_directives_are_still_filters() {
    let mut h = Hearth::start_with(Options {
        args: vec!["--log-level".into(), "hearth=debug,info".into()],
        ..Default::default()
    });
    h.wait_for_log("hearth listening");
    assert!(h.stop().success());
}

/// GitLab's `AIGW_LOGGING__LEVEL=WARNING`: warnings are written, info lines are not. The
/// harness waits for an info line, so this test starts the server itself.
#[test]
fn gitlabs_warning_level_keeps_warnings_and_drops_info() {
    let dir = tempfile::tempdir().unwrap();
    let port = {
        let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        free.local_addr().unwrap().port()
    };
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("HEARTH_") || k.starts_with("AIGW_") {
            cmd.env_remove(k);
        }
    }
    // A fresh data directory without HEARTH_SECRET_KEY: start-up creates the key file and
    // warns about it, next to its info lines.
    let mut child = cmd
        .args(["serve", "--listen", &listen, "--data-dir"])
        .arg(dir.path())
        .env("HEARTH_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("AIGW_LOGGING__LEVEL", "WARNING")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let up = loop {
        if std::net::TcpStream::connect(&listen).is_ok() {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(up, "hearth did not start:\n{out}");
    assert!(status.success(), "{out}");
    assert!(
        out.lines().any(
            |l| l.contains("\"level\":\"WARN\"") && l.contains("created a new secret key file")
        ),
        "the warning is logged:\n{out}"
    );
    assert!(!out.contains("hearth listening"), "{out}");
    assert!(!out.contains("\"level\":\"INFO\""), "{out}");
}
