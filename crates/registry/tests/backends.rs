//! The registry's rules on every database it supports: each test runs on SQLite, and on
//! PostgreSQL when HEARTH_TEST_DATABASE_URL names a server (each test gets its own database
//! there). Without it the PostgreSQL half is skipped with a note; when CI is set it fails.
//! Two `Registry` values on one database stand for two replicas.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use hearth_catalog::Feature;
use hearth_registry::{
    Binding, NewDeployment, Registry, RegistryConfig, RegistryError, SettingsPatch,
};
use secrecy::SecretString;
use sqlx::Connection;

const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

/// One database to test on, shared by the "replicas" a test opens on it.
struct Backend {
    name: &'static str,
    url: String,
    _dir: tempfile::TempDir,
}

impl Backend {
    fn config(&self, secret: &str) -> RegistryConfig {
        RegistryConfig {
            data_dir: self._dir.path().to_path_buf(),
            database_url: Some(self.url.clone()),
            secret_key: Some(SecretString::from(secret.to_string())),
            ..Default::default()
        }
    }

    async fn open(&self) -> Registry {
        Registry::open(&self.config(KEY_A)).await.unwrap()
    }
}

/// The PostgreSQL server to test on, if any. When CI is set a missing server is a failure.
fn postgres_server() -> Option<String> {
    match std::env::var("HEARTH_TEST_DATABASE_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI is set but HEARTH_TEST_DATABASE_URL is not set: scripts/test starts PostgreSQL for the tests"
            );
            eprintln!(
                "skipped PostgreSQL: set HEARTH_TEST_DATABASE_URL=postgres://… (scripts/test does)"
            );
            None
        }
    }
}

/// A fresh database on the test server, for one test.
async fn fresh_postgres_database(server: &str) -> String {
    let name = format!(
        "hearth_reg_{}",
        hearth_registry::random_token(8).to_lowercase()
    );
    let name: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
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

async fn backends() -> Vec<Backend> {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let mut all = vec![Backend {
        name: "sqlite",
        url: format!("sqlite://{}", sqlite_dir.path().join("hearth.db").display()),
        _dir: sqlite_dir,
    }];
    if let Some(server) = postgres_server() {
        all.push(Backend {
            name: "postgres",
            url: fresh_postgres_database(&server).await,
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    all
}

fn vllm(name: &str) -> NewDeployment {
    NewDeployment {
        name: name.to_string(),
        family: "mixtral".into(),
        endpoint: Some("http://gpu-1.internal:8000/v1".into()),
        identifier: "custom_openai/Mixtral-8x7B-Instruct-v0.1".into(),
        ..Default::default()
    }
}

fn with_key(name: &str) -> NewDeployment {
    NewDeployment {
        api_key: Some(SecretString::from("sk-test-key-0001".to_string())),
        ..vllm(name)
    }
}

#[tokio::test]
async fn deployments_round_trip_and_names_stay_unique() {
    for b in backends().await {
        let r = b.open().await;
        let created = r.create_deployment(with_key("one")).await.unwrap().value;
        assert!(created.api_key.is_set(), "{}", b.name);
        let dup = r.create_deployment(vllm("one")).await.unwrap_err();
        assert!(
            matches!(
                dup,
                RegistryError::Conflict {
                    field: Some("name"),
                    ..
                }
            ),
            "{}: {dup:?}",
            b.name
        );
        let other = r.create_deployment(vllm("two")).await.unwrap().value;
        let renamed = r
            .update_deployment(
                other.id,
                hearth_registry::DeploymentPatch {
                    name: Some("one".into()),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(
                renamed,
                RegistryError::Conflict {
                    field: Some("name"),
                    ..
                }
            ),
            "{}: {renamed:?}",
            b.name
        );
        r.delete_deployment(other.id).await.unwrap();
        assert!(matches!(
            r.delete_deployment(other.id).await.unwrap_err(),
            RegistryError::NotFound(_)
        ));
        let names: Vec<String> = r
            .snapshot()
            .deployments()
            .iter()
            .map(|d| d.name.clone())
            .collect();
        assert_eq!(names, ["one"], "{}", b.name);

        // Reopened: the same state, the key still decrypts.
        r.close().await;
        let again = b.open().await;
        let d = again.snapshot().deployment_by_name("one").cloned().unwrap();
        assert!(d.api_key.is_set(), "{}", b.name);
        assert!(again.secret_key_problem().is_none(), "{}", b.name);
    }
}

#[tokio::test]
async fn a_bound_deployment_cannot_be_deleted_even_by_a_replica_that_has_not_seen_the_binding() {
    for b in backends().await {
        let a = b.open().await;
        let stale = b.open().await;
        let d = a.create_deployment(vllm("bound")).await.unwrap().value;
        // `stale` learns of the deployment, not yet of the binding.
        assert!(stale.refresh().await.unwrap());
        a.set_feature(
            Feature::CodeCompletions,
            Binding::SelfHosted {
                deployment_id: d.id,
            },
            None,
        )
        .await
        .unwrap();
        assert!(stale.snapshot().features_using(d.id).is_empty());
        let err = stale.delete_deployment(d.id).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Conflict { field: None, .. }),
            "{}: {err:?}",
            b.name
        );
        assert!(err.to_string().contains("code_completions"), "{err}");
        assert!(stale.snapshot().deployment(d.id).is_some(), "{}", b.name);
    }
}

#[tokio::test]
async fn parallel_creates_on_two_replicas_give_one_success_per_name() {
    for b in backends().await {
        let a = Arc::new(b.open().await);
        let c = Arc::new(b.open().await);
        let mut tasks = Vec::new();
        for i in 0..24 {
            let r = if i % 2 == 0 { a.clone() } else { c.clone() };
            let name = format!("same-{}", i % 3);
            tasks.push(tokio::spawn(async move {
                r.create_deployment(vllm(&name)).await
            }));
        }
        let mut ok = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => ok += 1,
                Err(RegistryError::Conflict {
                    field: Some("name"),
                    ..
                }) => {}
                Err(e) => panic!("{}: unexpected {e:?}", b.name),
            }
        }
        assert_eq!(ok, 3, "{}", b.name);
        // A replica whose own writes all lost sees the winners on its next reload.
        a.refresh().await.unwrap();
        c.refresh().await.unwrap();
        assert_eq!(a.snapshot().deployments().len(), 3, "{}", b.name);
        assert_eq!(c.snapshot().deployments().len(), 3, "{}", b.name);
    }
}

#[tokio::test]
async fn every_write_bumps_the_version_and_other_replicas_pick_it_up() {
    for b in backends().await {
        let a = b.open().await;
        let other = b.open().await;
        let start = a.snapshot().version();
        let d = a.create_deployment(vllm("v")).await.unwrap().value;
        a.set_feature(
            Feature::CodeCompletions,
            Binding::SelfHosted {
                deployment_id: d.id,
            },
            None,
        )
        .await
        .unwrap();
        a.update_settings(SettingsPatch {
            verbose_ai_logs: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
        let (key, secret) = a.create_client_key("team").await.unwrap();
        assert_eq!(a.snapshot().version(), start + 4, "{}", b.name);

        assert!(other.refresh().await.unwrap(), "{}", b.name);
        let seen = other.snapshot();
        assert_eq!(seen.version(), start + 4);
        assert_eq!(
            seen.deployment_for(Feature::CodeCompletions).unwrap().id,
            d.id
        );
        assert!(seen.settings().verbose_ai_logs);
        use secrecy::ExposeSecret;
        assert_eq!(seen.client_key_id(secret.expose_secret()), Some(key.id));
        assert!(!other.refresh().await.unwrap(), "nothing new: {}", b.name);

        a.revoke_client_key(key.id).await.unwrap();
        other.refresh().await.unwrap();
        assert_eq!(other.snapshot().client_key_id(secret.expose_secret()), None);
    }
}

#[tokio::test]
async fn the_watcher_reloads_within_a_second_or_two() {
    for b in backends().await {
        let a = b.open().await;
        let watched = Arc::new(b.open().await);
        let _task = watched.watch();
        let d = a.create_deployment(vllm("watched")).await.unwrap().value;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while watched.snapshot().deployment(d.id).is_none() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{}: not seen within 3 s",
                b.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        watched.close().await;
    }
}

#[tokio::test]
async fn a_different_secret_key_is_reported_at_open() {
    for b in backends().await {
        let a = b.open().await;
        assert!(a.secret_key_problem().is_none());
        // Even with no API key stored yet, the key check written at first open tells.
        let wrong = Registry::open(&b.config(KEY_B)).await.unwrap();
        let problem = wrong.secret_key_problem().unwrap();
        assert!(problem.contains("HEARTH_SECRET_KEY"), "{problem}");
        a.create_deployment(with_key("sealed")).await.unwrap();
        let wrong = Registry::open(&b.config(KEY_B)).await.unwrap();
        let problem = wrong.secret_key_problem().unwrap();
        assert!(problem.contains("sealed"), "{}: {problem}", b.name);
    }
}

#[tokio::test]
async fn export_and_import_carry_everything_and_refuse_what_would_lose_data() {
    let sqlite_dir = tempfile::tempdir().unwrap();
    let source = Registry::open(&RegistryConfig {
        data_dir: sqlite_dir.path().to_path_buf(),
        secret_key: Some(SecretString::from(KEY_A.to_string())),
        ..Default::default()
    })
    .await
    .unwrap();
    let d = source
        .create_deployment(with_key("exported"))
        .await
        .unwrap()
        .value;
    source
        .set_feature(
            Feature::CodeCompletions,
            Binding::SelfHosted {
                deployment_id: d.id,
            },
            None,
        )
        .await
        .unwrap();
    let (key, secret) = source.create_client_key("ci").await.unwrap();
    source
        .update_settings(SettingsPatch {
            beta_models_enabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let tables = source.export().await.unwrap();
    // Through JSON, as `hearth db export` writes it.
    let text = serde_json::to_string(&tables).unwrap();
    assert!(!text.contains("sk-test-key-0001"), "sealed, not plain");
    let tables: hearth_registry::Tables = serde_json::from_str(&text).unwrap();

    for b in backends().await {
        let wrong = Registry::open(&b.config(KEY_B)).await.unwrap();
        let err = wrong.import(&tables).await.unwrap_err();
        assert!(err.to_string().contains("HEARTH_SECRET_KEY"), "{err}");
        wrong.close().await;

        let target = b.open().await;
        target.import(&tables).await.unwrap();
        assert_eq!(target.export().await.unwrap(), tables, "{}", b.name);
        let snap = target.snapshot();
        assert!(snap.deployment(d.id).unwrap().api_key.is_set());
        assert_eq!(
            snap.deployment_for(Feature::CodeCompletions).unwrap().id,
            d.id
        );
        use secrecy::ExposeSecret;
        assert_eq!(snap.client_key_id(secret.expose_secret()), Some(key.id));
        assert!(snap.settings().beta_models_enabled);
        // New rows get new ids after the imported ones.
        let next = target.create_deployment(vllm("after")).await.unwrap().value;
        assert!(next.id > d.id, "{}", b.name);
        let err = target.import(&tables).await.unwrap_err();
        assert!(
            matches!(err, RegistryError::Conflict { .. }),
            "{}: {err:?}",
            b.name
        );
    }
}

/// The write lock is the version row: a writer elsewhere holding it makes this one wait, and
/// the statement timeout bounds that wait.
#[tokio::test]
async fn on_postgres_a_held_write_lock_is_waited_for_up_to_the_statement_timeout() {
    let Some(server) = postgres_server() else {
        return;
    };
    let url = fresh_postgres_database(&server).await;
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(&RegistryConfig {
        data_dir: dir.path().to_path_buf(),
        database_url: Some(url.clone()),
        secret_key: Some(SecretString::from(KEY_A.to_string())),
        pool: hearth_registry::PoolConfig {
            statement_timeout: Some(Duration::from_millis(300)),
            ..Default::default()
        },
        ..Default::default()
    })
    .await
    .unwrap();
    let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut other).await.unwrap();
    sqlx::query("SELECT version FROM registry_state WHERE id = 1 FOR UPDATE")
        .execute(&mut other)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let err = registry
        .create_deployment(vllm("blocked"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Storage(_)),
        "cancelled by the timeout: {err:?}"
    );
    assert!(err.to_string().contains("statement timeout"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(10));
    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    registry.create_deployment(vllm("free")).await.unwrap();
}
