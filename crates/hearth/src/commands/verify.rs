//! `hearth verify`: the client-side checks (configuration, environment, the gateway's health on
//! its address), then the server's own diagnosis (`POST /api/v1/verify`), one line per step,
//! each failure with its fix. Exit 1 when any check failed; warnings do not fail.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reqwest::Method;
use serde_json::{Value, json};

use crate::cli::{Cli, Command};
use crate::cli_verify::VerifyArgs;
use crate::client::{Client, default_url};
use crate::config::{ServeConfig, env_secret};
use crate::output::{outln, print_json};
use crate::serve::ADMIN_TOKEN_FILE;

/// Health probes answer at once on a live server; longer means it is not serving.
const HEALTH_TIMEOUT: Duration = Duration::from_secs(5);
const MIN_ADMIN_TOKEN_LEN: usize = 16;

struct Report {
    json: bool,
    checks: Vec<Value>,
}

impl Report {
    fn add(
        &mut self,
        group: &str,
        subject: &str,
        step: &str,
        status: &str,
        message: String,
        fix: Option<String>,
    ) -> anyhow::Result<()> {
        let mut check = json!({"group": group, "subject": subject, "step": step, "status": status, "message": message});
        if let Some(fix) = fix {
            check["fix"] = json!(fix);
        }
        self.push(check)
    }

    /// Records a check and, for people, prints its line at once: the progress of the run.
    fn push(&mut self, check: Value) -> anyhow::Result<()> {
        if !self.json {
            let status = match check["status"].as_str() {
                Some("pass") => "ok  ",
                Some("warn") => "warn",
                Some("fail") => "FAIL",
                _ => "skip",
            };
            let subject = check["subject"].as_str().unwrap_or("-");
            let subject = if subject == "-" {
                String::new()
            } else {
                format!(" {subject}")
            };
            outln!(
                "[{status}] {}{subject}: {}: {}",
                check["group"].as_str().unwrap_or_default(),
                check["step"].as_str().unwrap_or_default(),
                check["message"].as_str().unwrap_or_default()
            )?;
            if let Some(fix) = check["fix"].as_str() {
                outln!("       fix: {fix}")?;
            }
        }
        self.checks.push(check);
        Ok(())
    }

    fn count(&self, status: &str) -> usize {
        self.checks
            .iter()
            .filter(|c| c["status"].as_str() == Some(status))
            .count()
    }
}

pub(crate) async fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let mut r = Report {
        json: args.client.json,
        checks: Vec::new(),
    };
    let config = configuration(&args, &mut r)?;
    if let Some(cfg) = &config {
        data_dir(&cfg.data_dir, &mut r)?;
        logs(cfg, &mut r)?;
    }
    admin_token(&args, config.as_ref(), &mut r)?;
    environment(&mut r)?;

    let base = args
        .client
        .url
        .clone()
        .or_else(|| config.as_ref().map(|c| loopback_url(&c.listen.to_string())))
        .unwrap_or_else(default_url)
        .trim_end_matches('/')
        .to_string();
    let http = reqwest::Client::builder().timeout(HEALTH_TIMEOUT).build()?;
    let up = health(&http, &base, &mut r).await?;
    if up {
        server_side(&args, &mut r).await?;
    } else {
        r.add(
            "server",
            &base,
            "server-side checks",
            "skip",
            "not run: Hearth does not answer".into(),
            None,
        )?;
    }
    let gitlab_view = if args.from_gitlab_view && up {
        Some(gitlab_view(&http, &base).await)
    } else {
        None
    };
    let failed = r.count("fail");
    if r.json {
        let mut out = json!({"ok": failed == 0, "checks": r.checks});
        if let Some(view) = &gitlab_view {
            out["gitlab_view"] = view.clone();
        }
        print_json(&out)?;
    } else {
        if let Some(view) = &gitlab_view {
            print_gitlab_view(view)?;
        }
        outln!(
            "verify: {} passed, {} warnings, {failed} failed",
            r.count("pass"),
            r.count("warn")
        )?;
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `0.0.0.0:5052` is reached on `127.0.0.1:5052` from this machine.
fn loopback_url(listen: &str) -> String {
    let listen = listen
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    format!("http://{listen}")
}

/// The configuration `hearth serve` would use here: its flags' environment variables and the
/// file, read by the same code.
fn configuration(args: &VerifyArgs, r: &mut Report) -> anyhow::Result<Option<ServeConfig>> {
    let mut argv = vec!["hearth".to_string(), "serve".to_string()];
    if let Some(path) = &args.config {
        argv.push("--config".into());
        argv.push(path.display().to_string());
    }
    let source = args
        .config
        .as_ref()
        .map_or("environment".to_string(), |p| p.display().to_string());
    let serve = match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Serve(serve),
        }) => serve,
        Ok(_) => return Ok(None),
        Err(e) => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            r.add(
                "config",
                &source,
                "parse",
                "fail",
                format!("hearth serve would refuse this environment: {first}"),
                Some("correct the HEARTH_* variable it names (see `hearth serve --help`)".into()),
            )?;
            return Ok(None);
        }
    };
    match crate::config::resolve(&serve) {
        Ok(cfg) => {
            let bypass_open = cfg.auth_bypass && !cfg.listen.ip().is_loopback();
            r.add(
                "config",
                &source,
                "listen",
                if bypass_open { "fail" } else { "pass" },
                if bypass_open {
                    format!(
                        "Hearth listens on {} with the GitLab auth bypass on",
                        cfg.listen
                    )
                } else {
                    format!(
                        "listens on {}{}",
                        cfg.listen,
                        if cfg.listen.ip().is_unspecified() {
                            " (every interface: reachable from other machines)"
                        } else {
                            ""
                        }
                    )
                },
                bypass_open.then(|| {
                    "turn the bypass off (HEARTH_AUTH_BYPASS=false), or listen on 127.0.0.1".into()
                }),
            )?;
            Ok(Some(cfg))
        }
        Err(e) => {
            r.add(
                "config",
                &source,
                "parse",
                "fail",
                format!("{e:#}"),
                Some(
                    "correct the file or variable named; `hearth serve --help` lists every setting"
                        .into(),
                ),
            )?;
            Ok(None)
        }
    }
}

fn data_dir(dir: &Path, r: &mut Report) -> anyhow::Result<()> {
    let subject = dir.display().to_string();
    let Ok(meta) = std::fs::metadata(dir) else {
        return r.add("config", &subject, "data dir", "warn",
            "the data directory does not exist yet (hearth serve creates it), or is on another machine".into(),
            Some("run verify where hearth serve runs, or pass --data-dir".into()));
    };
    if !meta.is_dir() {
        return r.add(
            "config",
            &subject,
            "data dir",
            "fail",
            "the data directory is not a directory".into(),
            Some("point HEARTH_DATA_DIR (or --data-dir, data_dir) at a directory".into()),
        );
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let open = |p: &Path| {
            std::fs::metadata(p)
                .ok()
                .map(|m| m.permissions().mode() & 0o077 != 0)
        };
        let mut loose = Vec::new();
        for file in ["secret.key", ADMIN_TOKEN_FILE] {
            if open(&dir.join(file)) == Some(true) {
                loose.push(file);
            }
        }
        if !loose.is_empty() {
            return r.add(
                "config",
                &subject,
                "data dir",
                "fail",
                format!("{} can be read by other users", loose.join(" and ")),
                Some(format!(
                    "chmod 600 {}",
                    loose
                        .iter()
                        .map(|f| dir.join(f).display().to_string())
                        .collect::<Vec<_>>()
                        .join(" ")
                )),
            );
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return r.add(
                "config",
                &subject,
                "data dir",
                "warn",
                format!(
                    "the data directory is open to other users (mode {:o})",
                    meta.permissions().mode() & 0o777
                ),
                Some(format!("chmod 700 {subject}")),
            );
        }
    }
    r.add(
        "config",
        &subject,
        "data dir",
        "pass",
        "exists, private to its owner".into(),
        None,
    )
}

fn logs(cfg: &ServeConfig, r: &mut Report) -> anyhow::Result<()> {
    if let Err(e) = crate::logging::filter_for(&cfg.log_level) {
        return r.add(
            "config",
            "log",
            "level",
            "fail",
            format!("{e:#}"),
            Some("set HEARTH_LOG_LEVEL (or log.level) to info".into()),
        );
    }
    if let Some(file) = &cfg.log_file {
        let parent = file
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !parent.is_dir() {
            return r.add(
                "config",
                "log",
                "file",
                "fail",
                format!(
                    "the log file's directory {} does not exist",
                    parent.display()
                ),
                Some("create it, or change HEARTH_LOG_FILE (log.file)".into()),
            );
        }
    }
    r.add(
        "config",
        "log",
        "settings",
        "pass",
        format!(
            "level {}, format {:?}{}",
            cfg.log_level,
            cfg.log_format,
            cfg.log_file
                .as_ref()
                .map(|f| format!(", also to {}", f.display()))
                .unwrap_or_default()
        ),
        None,
    )
}

fn admin_token(args: &VerifyArgs, cfg: Option<&ServeConfig>, r: &mut Report) -> anyhow::Result<()> {
    match env_secret("HEARTH_ADMIN_TOKEN") {
        Some(t) if t.len() < MIN_ADMIN_TOKEN_LEN => r.add("config", "HEARTH_ADMIN_TOKEN", "admin token", "fail",
            format!("HEARTH_ADMIN_TOKEN has {} characters; hearth serve refuses fewer than {MIN_ADMIN_TOKEN_LEN}", t.len()),
            Some("make one with `openssl rand -hex 24`".into())),
        Some(t) if distinct_chars(&t) < 8 => r.add("config", "HEARTH_ADMIN_TOKEN", "admin token", "warn",
            "HEARTH_ADMIN_TOKEN repeats a few characters: easy to guess".into(),
            Some("make one with `openssl rand -hex 24`".into())),
        Some(t) => r.add("config", "HEARTH_ADMIN_TOKEN", "admin token", "pass",
            format!("set ({} characters)", t.len()), None),
        None => {
            let dir = args
                .client
                .data_dir
                .clone()
                .or_else(|| cfg.map(|c| c.data_dir.clone()))
                .unwrap_or_else(crate::config::default_data_dir);
            let path = dir.join(ADMIN_TOKEN_FILE);
            if path.is_file() {
                r.add("config", &path.display().to_string(), "admin token", "pass", "read from the token file".into(), None)
            } else {
                r.add("config", &path.display().to_string(), "admin token", "warn",
                    "no HEARTH_ADMIN_TOKEN and no token file: the server-side checks cannot run".into(),
                    Some("set HEARTH_ADMIN_TOKEN, or pass --data-dir where hearth serve keeps admin.token".into()))
            }
        }
    }
}

fn distinct_chars(s: &str) -> usize {
    let mut chars: Vec<char> = s.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    chars.len()
}

/// Names only: values may be secrets.
fn environment(r: &mut Report) -> anyhow::Result<()> {
    let names = |prefix: &str| {
        let mut v: Vec<String> = std::env::vars_os()
            .filter_map(|(k, _)| k.into_string().ok())
            .filter(|k| k.starts_with(prefix))
            .collect();
        v.sort();
        v
    };
    let aigw = names("AIGW_");
    r.add(
        "environment",
        "cli",
        "AIGW_* names",
        "pass",
        if aigw.is_empty() {
            "no AIGW_* variable is set here".into()
        } else {
            format!("set here: {}", aigw.join(", "))
        },
        None,
    )?;
    let secret = if env_secret("HEARTH_SECRET_KEY").is_some() {
        "HEARTH_SECRET_KEY is set here: the server must have the same one"
    } else {
        "HEARTH_SECRET_KEY is not set here: the server uses its own, or secret.key in its data directory"
    };
    r.add(
        "environment",
        "cli",
        "secret key",
        "pass",
        secret.into(),
        None,
    )
}

async fn health(http: &reqwest::Client, base: &str, r: &mut Report) -> anyhow::Result<bool> {
    let mut up = true;
    for (step, path) in [
        ("healthz", "/monitoring/healthz"),
        ("ready", "/monitoring/ready"),
    ] {
        let url = format!("{base}{path}");
        match http.get(&url).send().await {
            Ok(resp) if resp.status().is_success() => {
                r.add(
                    "gateway",
                    base,
                    step,
                    "pass",
                    format!("GET {path} answered {}", resp.status().as_u16()),
                    None,
                )?;
            }
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                r.add("gateway", base, step, "fail",
                    format!("GET {path} answered {status}: {}", body.chars().take(300).collect::<String>()),
                    Some("see the reason above and Hearth's log; a database that does not answer makes it unready".into()))?;
            }
            Err(e) => {
                up = false;
                let mut inner: &dyn std::error::Error = &e;
                while let Some(next) = inner.source() {
                    inner = next;
                }
                r.add(
                    "gateway",
                    base,
                    step,
                    "fail",
                    format!("cannot reach {url}: {inner}"),
                    Some("start it with `hearth serve`, or point --url / HEARTH_URL at it".into()),
                )?;
                break;
            }
        }
    }
    Ok(up)
}

async fn server_side(args: &VerifyArgs, r: &mut Report) -> anyhow::Result<()> {
    let client = match Client::new(&args.client) {
        Ok(c) => c,
        Err(e) => {
            return r.add(
                "server",
                "-",
                "server-side checks",
                "fail",
                format!("{e:#}"),
                Some("the server-side checks need the admin token".into()),
            );
        }
    };
    if !r.json {
        outln!(
            "… asking Hearth at {} to check the database, keys, GitLab, features and every deployment",
            client.base()
        )?;
    }
    match client.send(Method::POST, "/api/v1/verify", None).await {
        Ok(answer) => {
            for check in answer["checks"].as_array().into_iter().flatten() {
                r.push(check.clone())?;
            }
            Ok(())
        }
        Err(e) => r.add("server", "-", "server-side checks", "fail", format!("{e:#}"),
            Some("check the admin token (HEARTH_ADMIN_TOKEN or the data directory's admin.token) and that this Hearth has `verify`".into())),
    }
}

/// What GitLab's rake task asks the gateway: its health, and the model definitions.
async fn gitlab_view(http: &reqwest::Client, base: &str) -> Value {
    let mut view = json!({});
    for (key, path) in [
        ("healthz", "/monitoring/healthz"),
        ("models", "/v1/models/definitions"),
    ] {
        view[key] = match http.get(format!("{base}{path}")).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.unwrap_or(Value::Null);
                json!({"url": format!("{base}{path}"), "status": status, "body": body})
            }
            Err(e) => json!({"url": format!("{base}{path}"), "error": e.to_string()}),
        };
    }
    view
}

fn print_gitlab_view(view: &Value) -> anyhow::Result<()> {
    outln!("What GitLab's verify_self_hosted_setup task sees:")?;
    for key in ["healthz", "models"] {
        let v = &view[key];
        match v["status"].as_u64() {
            Some(status) => outln!("  GET {} → {status}", v["url"].as_str().unwrap_or_default())?,
            None => outln!(
                "  GET {} → {}",
                v["url"].as_str().unwrap_or_default(),
                v["error"].as_str().unwrap_or_default()
            )?,
        }
    }
    let names: Vec<&str> = view["models"]["body"]["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["gitlab_identifier"].as_str())
        .collect();
    if !names.is_empty() {
        outln!("  model families GitLab may select: {}", names.join(", "))?;
    }
    Ok(())
}
