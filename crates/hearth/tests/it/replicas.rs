//! Two `hearth serve` processes on one PostgreSQL: what one is told, the other serves within a
//! second; parallel writers across them keep the rules; each survives the other's restart and
//! a database outage. Every test makes its own database on the server HEARTH_TEST_DATABASE_URL
//! names (scripts/test starts one); the outage test runs its own private server, since it
//! stops it. Without a server the tests are skipped with a note; when CI is set they fail.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use hearth_testkit::FakeUpstream;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::harness::{BIN, Hearth, Options, api_key, serve_must_fail, vllm_body};

/// Shared by the replicas of a test, as operators must (docs/scaling.md).
const SECRET_KEY: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

/// The test server's URL, or `None` (test skipped) when there is none outside CI.
fn server() -> Option<String> {
    match std::env::var("HEARTH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but HEARTH_TEST_DATABASE_URL is not set: scripts/test starts PostgreSQL"
            );
            eprintln!("skipped: no PostgreSQL (set HEARTH_TEST_DATABASE_URL; scripts/test does)");
            None
        }
    }
}

/// A new, empty database on `server`; returns its URL.
async fn fresh_database(server: &str) -> String {
    let name = format!(
        "hearth_it_{}",
        hearth_registry::random_token(8)
            .to_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect::<String>()
    );
    let mut conn = sqlx::PgConnection::connect(server).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let mut url = url::Url::parse(server).unwrap();
    url.set_path(&name);
    url.to_string()
}

fn replica(database_url: &str) -> Hearth {
    replica_with(database_url, SECRET_KEY)
}

fn replica_with(database_url: &str, secret_key: &str) -> Hearth {
    Hearth::start_with(Options {
        env: vec![("HEARTH_SECRET_KEY", secret_key.to_string())],
        args: vec!["--database-url".into(), database_url.into()],
        ..Default::default()
    })
}

/// Beta on, one codegemma deployment on `up` bound to code completions; returns its id.
async fn serve_completions(h: &Hearth, up: &FakeUpstream, name: &str) -> i64 {
    h.patch("/api/v1/settings", json!({"beta_models_enabled": true}))
        .await;
    let id = h
        .create(
            json!({"name": name, "family": "codegemma", "endpoint": up.endpoint(),
            "identifier": "custom_openai/cg"}),
        )
        .await;
    h.bind_completions(id).await;
    id
}

async fn complete(h: &Hearth, key: Option<&str>) -> StatusCode {
    let mut req = h
        .http()
        .post(h.url("/v1/completions"))
        .json(&json!({"prompt": "fn main"}));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    req.send().await.unwrap().status()
}

/// Polls `check` until it holds; returns how long that took, failing after `limit`.
async fn within<F, Fut>(limit: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_deployment_created_on_a_serves_inference_on_b_within_a_second() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let up = FakeUpstream::start().await;
    let a = replica(&db);
    let b = replica(&db);
    assert_ne!(
        complete(&b, None).await,
        StatusCode::OK,
        "nothing bound yet"
    );
    serve_completions(&a, &up, "shared").await;
    let took = within(
        Duration::from_secs(1),
        "B serves A's deployment",
        || async { complete(&b, None).await == StatusCode::OK },
    )
    .await;
    eprintln!("propagation A -> B: {took:?}");
    let (_, list) = b.get("/api/v1/self_hosted_models").await;
    assert_eq!(list[0]["name"], "shared");
    assert!(!up.requests().is_empty());
}

#[tokio::test]
async fn a_client_key_revoked_on_a_is_refused_on_b_within_a_second() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let up = FakeUpstream::start().await;
    let a = replica(&db);
    let b = replica(&db);
    serve_completions(&a, &up, "keyed").await;
    let (_, doomed) = a
        .post("/api/v1/client_keys", json!({"name": "doomed"}))
        .await;
    let (_, kept) = a.post("/api/v1/client_keys", json!({"name": "kept"})).await;
    let doomed_key = doomed["key"].as_str().unwrap().to_string();
    let kept_key = kept["key"].as_str().unwrap().to_string();
    within(Duration::from_secs(1), "B accepts A's new key", || async {
        complete(&b, Some(&doomed_key)).await == StatusCode::OK
    })
    .await;
    let (s, _) = a
        .delete(&format!("/api/v1/client_keys/{}", doomed["id"]))
        .await;
    assert_eq!(s, StatusCode::OK);
    let took = within(
        Duration::from_secs(1),
        "B refuses the revoked key",
        || async { complete(&b, Some(&doomed_key)).await == StatusCode::UNAUTHORIZED },
    )
    .await;
    eprintln!("revocation A -> B: {took:?}");
    assert_eq!(complete(&b, Some(&kept_key)).await, StatusCode::OK);
    assert_eq!(complete(&b, None).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn fifty_parallel_creates_across_two_replicas_give_one_success_per_name() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let a = replica(&db);
    let b = replica(&db);
    let started = Instant::now();
    let answers = futures_util::future::join_all((0..50).map(|i| {
        let target = if i % 2 == 0 { &a } else { &b };
        let name = format!("dup-{}", i % 10);
        async move {
            let (status, body) = target
                .post("/api/v1/self_hosted_models", vllm_body(&name))
                .await;
            (name, status, body)
        }
    }))
    .await;
    eprintln!("50 parallel creates: {:?}", started.elapsed());
    let mut winners = std::collections::HashMap::new();
    for (name, status, body) in answers {
        match status {
            StatusCode::CREATED => *winners.entry(name).or_insert(0) += 1,
            StatusCode::CONFLICT => assert_eq!(body["error"]["field"], "name", "{body}"),
            other => panic!("{name}: {other} {body}"),
        }
    }
    assert_eq!(winners.len(), 10, "{winners:?}");
    assert!(winners.values().all(|&n| n == 1), "{winners:?}");
    for h in [&a, &b] {
        within(Duration::from_secs(2), "both list the ten", || async {
            let (_, list) = h.get("/api/v1/self_hosted_models").await;
            list.as_array().unwrap().len() == 10
        })
        .await;
    }
}

#[tokio::test]
async fn a_restarts_while_b_keeps_serving() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let up = FakeUpstream::start().await;
    let mut a = replica(&db);
    let b = replica(&db);
    serve_completions(&a, &up, "steady").await;
    within(Duration::from_secs(1), "B serves", || async {
        complete(&b, None).await == StatusCode::OK
    })
    .await;
    assert!(a.stop().success());
    for _ in 0..5 {
        assert_eq!(complete(&b, None).await, StatusCode::OK, "B alone");
    }
    let a = replica(&db);
    assert_eq!(
        complete(&a, None).await,
        StatusCode::OK,
        "A again, from the database"
    );
    a.patch("/api/v1/settings", json!({"verbose_ai_logs": true}))
        .await;
    within(
        Duration::from_secs(1),
        "B sees the restarted A's change",
        || async { b.get("/api/v1/settings").await.1["verbose_ai_logs"] == true },
    )
    .await;
}

#[tokio::test]
async fn a_replica_with_another_secret_key_says_so_at_start_up() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let a = replica(&db);
    let mut body = vllm_body("sealed");
    body["api_key"] = json!(api_key(3));
    a.create(body).await;
    let other = replica_with(&db, &"0f".repeat(32));
    let line = other.wait_for_log("is not the one the stored API keys were sealed with");
    assert!(line.contains("HEARTH_SECRET_KEY"), "{line}");
    assert!(line.contains("sealed"), "{line}");
    assert!(!a.logs().contains("is not the one"), "A's key is right");
}

/// `hearth db export` on SQLite, `hearth db import` into PostgreSQL, then serve from there.
#[tokio::test]
async fn a_sqlite_registry_moves_to_postgres_with_export_and_import() {
    let Some(server) = server() else { return };
    let db = fresh_database(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let env = [("HEARTH_SECRET_KEY", SECRET_KEY)];
    let mut old = Hearth::start_with(Options {
        data_dir: Some(dir.path()),
        env: vec![("HEARTH_SECRET_KEY", SECRET_KEY.into())],
        ..Default::default()
    });
    let mut body = vllm_body("moved");
    body["api_key"] = json!(api_key(4));
    old.create(body).await;
    let (_, key) = old
        .post("/api/v1/client_keys", json!({"name": "ide"}))
        .await;
    let (_, before) = old.get("/api/v1/self_hosted_models").await;
    assert!(old.stop().success());

    let file = dir.path().join("export.json");
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env_remove("HEARTH_DATABASE_URL")
            .envs(env)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let data_dir = dir.path().to_str().unwrap();
    run(&[
        "db",
        "export",
        "--data-dir",
        data_dir,
        file.to_str().unwrap(),
    ]);
    let document: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(document["format"], "hearth-registry");
    assert!(
        document["api_keys"]
            .as_str()
            .unwrap()
            .contains("HEARTH_SECRET_KEY")
    );
    assert!(
        !document.to_string().contains("SECRET-MARKER"),
        "keys stay sealed"
    );
    let fresh_dir = tempfile::tempdir().unwrap();
    let out = run(&[
        "db",
        "import",
        "--data-dir",
        fresh_dir.path().to_str().unwrap(),
        "--database-url",
        &db,
        file.to_str().unwrap(),
    ]);
    assert!(out.contains("Imported 1 deployments"), "{out}");

    let moved = replica(&db);
    let (_, after) = moved.get("/api/v1/self_hosted_models").await;
    assert_eq!(
        crate::persistence::stored(after.clone()),
        crate::persistence::stored(before)
    );
    assert!(after[0].get("api_key_error").is_none(), "{after}");
    let (_, keys) = moved.get("/api/v1/client_keys").await;
    assert_eq!(keys[0]["prefix"], key["prefix"]);
}

/// A PostgreSQL server of the test's own, so stopping it disturbs no other test.
struct PrivatePostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").exists())
            .max()?;
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres { dir, bin, port };
        let data = pg.dir.path().join("data");
        pg.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        );
        pg.ctl("start");
        Some(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) {
        let out = self.command(program).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let log = self.dir.path().join("server.log");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let mut args = vec![
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-w",
            "-o",
            &options,
        ];
        if action == "stop" {
            args.extend(["-m", "fast"]);
        }
        args.push(action);
        self.run("pg_ctl", &args);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[tokio::test]
async fn both_replicas_ride_out_a_database_outage_and_catch_up_after_it() {
    if server().is_none() {
        return;
    }
    let Some(pg) = PrivatePostgres::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but no PostgreSQL binaries under /usr/lib/postgresql"
        );
        eprintln!("skipped: no PostgreSQL binaries under /usr/lib/postgresql");
        return;
    };
    let db = fresh_database(&pg.url()).await;
    let up = FakeUpstream::start().await;
    let a = replica(&db);
    let b = replica(&db);
    serve_completions(&a, &up, "through-outage").await;
    let (_, key) = a.post("/api/v1/client_keys", json!({"name": "ide"})).await;
    let key = key["key"].as_str().unwrap().to_string();
    for h in [&a, &b] {
        within(
            Duration::from_secs(1),
            "both serve with the key",
            || async { complete(h, Some(&key)).await == StatusCode::OK },
        )
        .await;
    }

    pg.ctl("stop");
    for h in [&a, &b] {
        h.wait_for_log("lost the database");
        for _ in 0..3 {
            assert_eq!(
                complete(h, Some(&key)).await,
                StatusCode::OK,
                "from the snapshot"
            );
            assert_eq!(complete(h, None).await, StatusCode::UNAUTHORIZED);
        }
        let (s, list) = h.get("/api/v1/self_hosted_models").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list[0]["name"], "through-outage");
        let ready = h.open_get("/monitoring/ready").await;
        assert_eq!(ready.status(), StatusCode::OK, "it has a snapshot");
        let body: Value = ready.json().await.unwrap();
        assert_eq!(body["database"], "unavailable", "{body}");
    }
    // Writes wait for the database (503, not 500); meanwhile more polls fail, and the outage
    // is still logged once.
    let (s, body) = a
        .post("/api/v1/self_hosted_models", vllm_body("during-outage"))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    for h in [&a, &b] {
        assert_eq!(
            h.logs().matches("lost the database").count(),
            1,
            "{}",
            h.logs()
        );
    }

    pg.ctl("start");
    for h in [&a, &b] {
        h.wait_for_log("the database answers again");
    }
    let took = Instant::now();
    let made_after = within(Duration::from_secs(10), "A writes again", || async {
        a.post("/api/v1/self_hosted_models", vllm_body("after-outage"))
            .await
            .0
            == StatusCode::CREATED
    })
    .await;
    within(
        Duration::from_secs(1),
        "B sees the change made after the outage",
        || async {
            let (_, list) = b.get("/api/v1/self_hosted_models").await;
            list.as_array()
                .unwrap()
                .iter()
                .any(|d| d["name"] == "after-outage")
        },
    )
    .await;
    eprintln!(
        "first write after restart: {made_after:?}; seen on B after {:?}",
        took.elapsed()
    );
    for h in [&a, &b] {
        assert_eq!(h.logs().matches("lost the database").count(), 1);
        assert_eq!(h.logs().matches("the database answers again").count(), 1);
    }
}

#[test]
fn database_urls_that_cannot_work_stop_start_up_with_the_reason_and_no_password() {
    let stderr = serve_must_fail(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "mysql://db/hearth",
        ],
        &[],
    );
    assert!(stderr.contains("postgres://"), "{stderr}");
    // Port 1 on loopback: refused at once.
    let stderr = serve_must_fail(
        &[
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://hearth:pw-SECRET-MARKER-7f3a9c@127.0.0.1:1/hearth",
        ],
        &[],
    );
    assert!(
        stderr.contains("cannot connect to postgres://hearth:****@127.0.0.1:1/hearth"),
        "{stderr}"
    );
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(!stderr.contains("SECRET-MARKER"), "{stderr}");
}
