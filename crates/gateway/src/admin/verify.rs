//! `POST /api/v1/verify`: every server-side check between a client and the models, run with
//! the running server's own configuration and secrets (which the CLI never sees). Each check
//! says what it found and, when it fails, the fix. `hearth verify` adds the client-side ones.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use futures_util::future::join_all;
use hearth_catalog::{FamilyVerdict, Rating};
use hearth_registry::{ApiKey, Binding, KeySource};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AppState;

mod deployment;

use deployment::{deployment, replicas_of};

/// Each network step's deadline: a diagnosis must answer, healthy or not.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// One deployment's whole diagnosis; past it the rest of its steps are reported as not run.
const DEPLOYMENT_TIMEOUT: Duration = Duration::from_secs(40);
const DB_TIMEOUT: Duration = Duration::from_secs(2);
/// GitLab tokens are checked with no leeway: a GitLab clock this far ahead refuses fresh tokens.
const SKEW_WARN_SECS: i64 = 2;
const SKEW_FAIL_SECS: i64 = 60;

#[derive(Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

#[derive(Serialize)]
pub(crate) struct Check {
    group: &'static str,
    subject: String,
    step: String,
    status: Status,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn new(
        group: &'static str,
        subject: &str,
        step: &str,
        status: Status,
        message: String,
    ) -> Check {
        Check {
            group,
            subject: subject.to_string(),
            step: step.to_string(),
            status,
            message,
            fix: None,
        }
    }

    fn fix(mut self, fix: impl Into<String>) -> Check {
        self.fix = Some(fix.into());
        self
    }
}

#[utoipa::path(operation_id = "verify", post, path = "/api/v1/verify", tag = "admin",
    responses((status = 200, description = "`ok` and `checks`: one entry per step with `name`, `status` (ok, warn, fail, skip), `detail` and `fix`", body = Object),
        (status = 401, description = "No or wrong admin token", body = crate::error::ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn verify(State(state): State<AppState>) -> Json<Value> {
    let mut checks = Vec::new();
    checks.extend(database(&state).await);
    checks.extend(secret_key(&state));
    checks.push(aigw_names());
    checks.extend(gitlab(&state).await);
    checks.extend(features(&state));
    let snap = state.registry.snapshot();
    let runs = snap
        .deployments()
        .iter()
        .flat_map(|d| replicas_of(d))
        .map(|(d, real)| {
            let state = state.clone();
            async move {
                match tokio::time::timeout(DEPLOYMENT_TIMEOUT, deployment(&state, &d)).await {
                    // Fixes name the deployment as the CLI knows it, not the replica's label.
                    Ok(checks) => checks
                        .into_iter()
                        .map(|mut c| {
                            c.fix = c
                                .fix
                                .map(|f| f.replace(&format!("{:?}", d.name), &format!("{real:?}")));
                            c
                        })
                        .collect(),
                    Err(_) => vec![
                        Check::new(
                            "deployment",
                            &d.name,
                            "deadline",
                            Status::Fail,
                            format!(
                                "the checks of {:?} did not finish within {} s",
                                d.name,
                                DEPLOYMENT_TIMEOUT.as_secs()
                            ),
                        )
                        .fix("check the model server's load and the network between Hearth and it"),
                    ],
                }
            }
        });
    for list in join_all(runs).await {
        checks.extend(list);
    }
    if snap.deployments().is_empty() {
        checks.push(
            Check::new(
                "deployment",
                "-",
                "registered",
                Status::Warn,
                "no self-hosted model is registered: no request can be served".into(),
            )
            .fix("register one with `hearth models add` (`hearth plan MODEL` prints the command)"),
        );
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    tracing::info!(
        ok,
        failed = checks.iter().filter(|c| c.status == Status::Fail).count(),
        "verify"
    );
    Json(json!({"ok": ok, "checks": checks}))
}

async fn database(state: &AppState) -> Vec<Check> {
    let db = state.registry.database().to_string();
    let ping = match tokio::time::timeout(DB_TIMEOUT, state.registry.ping()).await {
        Ok(Ok(())) => Check::new("database", &db, "reachable", Status::Pass, "the database answers".into()),
        Ok(Err(e)) => Check::new("database", &db, "reachable", Status::Fail, format!("the database does not answer: {e}"))
            .fix("check the database file's disk and permissions (or HEARTH_DATABASE_URL), then restart Hearth"),
        Err(_) => Check::new("database", &db, "reachable", Status::Fail,
            format!("the database did not answer within {} s", DB_TIMEOUT.as_secs()))
            .fix("check the disk the database is on; another process may hold a lock on it"),
    };
    let migrations = match state.registry.migration_status().await {
        Ok(s) if s.pending.is_empty() && s.unknown.is_empty() => Check::new("database", &db, "migrations", Status::Pass,
            format!("{} migrations applied, none pending", s.applied)),
        Ok(s) if !s.unknown.is_empty() => Check::new("database", &db, "migrations", Status::Fail,
            format!("the database has migrations this Hearth does not know ({:?}): a newer Hearth wrote it", s.unknown))
            .fix("run the Hearth version that wrote the database, or restore a backup from before the upgrade"),
        Ok(s) => Check::new("database", &db, "migrations", Status::Fail,
            format!("migrations not applied: {}", s.pending.join(", ")))
            .fix("restart `hearth serve`: it applies migrations at start-up"),
        Err(e) => Check::new("database", &db, "migrations", Status::Fail, format!("cannot read the migration table: {e}"))
            .fix("check that the database is Hearth's and readable"),
    };
    vec![ping, migrations]
}

fn secret_key(state: &AppState) -> Vec<Check> {
    let source = match state.registry.key_source() {
        KeySource::Environment => "HEARTH_SECRET_KEY".to_string(),
        KeySource::File(p) | KeySource::CreatedFile(p) => format!("the key file {}", p.display()),
    };
    let snap = state.registry.snapshot();
    let stored = snap
        .deployments()
        .iter()
        .filter(|d| d.api_key.is_set())
        .count();
    let mut checks: Vec<Check> = snap
        .deployments()
        .iter()
        .filter_map(|d| match &d.api_key {
            ApiKey::Unreadable(why) => Some(
                Check::new("secret_key", &d.name, "decrypts", Status::Fail,
                    format!("the API key of deployment {:?} cannot be decrypted with {source} ({why})", d.name))
                    .fix(format!("start Hearth with the secret key the API key was stored with (HEARTH_SECRET_KEY or the data directory's secret.key), or store the key again: hearth models update {:?} --api-key-file FILE", d.name)),
            ),
            _ => None,
        })
        .collect();
    if checks.is_empty() {
        checks.push(Check::new(
            "secret_key",
            &source,
            "decrypts",
            Status::Pass,
            format!("{source} decrypts every stored API key ({stored} stored)"),
        ));
    }
    checks
}

/// GitLab's AI-gateway variable names the server sees; values are never read out.
fn aigw_names() -> Check {
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| k.starts_with("AIGW_"))
        .collect();
    let message = if names.is_empty() {
        "no AIGW_* variable is set in the server's environment".to_string()
    } else {
        format!(
            "AIGW_* variables set in the server's environment: {}",
            names.join(", ")
        )
    };
    Check::new(
        "environment",
        "server",
        "AIGW_* names",
        Status::Pass,
        message,
    )
}

async fn gitlab(state: &AppState) -> Vec<Check> {
    let Some(probe) = state.gitlab.probe().await else {
        let check = if state.gitlab_bypass {
            Check::new("gitlab", "-", "configured", Status::Warn,
                "GitLab auth bypass is on: the GitLab routes accept requests without a token".into())
                .fix("for local testing only; set HEARTH_GITLAB_URL and turn the bypass off for real use")
        } else {
            Check::new("gitlab", "-", "configured", Status::Skip,
                "no GitLab URL (HEARTH_GITLAB_URL / AIGW_GITLAB_URL): the GitLab routes refuse every request".into())
        };
        return vec![check];
    };
    let base = state.gitlab.gitlab_url().unwrap_or_default().to_string();
    let reach_fix = "check that HEARTH_GITLAB_URL (or AIGW_GITLAB_URL) is the instance's URL and that this machine reaches it (DNS, proxy, firewall, TLS trust)";
    let mut checks = Vec::new();
    match &probe.discovery {
        Ok(uri) => checks.push(Check::new(
            "gitlab",
            &base,
            "OIDC discovery",
            Status::Pass,
            format!("{} names the key set {uri}", probe.discovery_url),
        )),
        Err(e) => checks.push(
            Check::new(
                "gitlab",
                &base,
                "OIDC discovery",
                Status::Fail,
                format!("cannot read GitLab's OIDC discovery document: {e}"),
            )
            .fix(reach_fix),
        ),
    }
    match &probe.keys {
        Some(Ok(n)) => checks.push(Check::new(
            "gitlab",
            &base,
            "JWKS",
            Status::Pass,
            format!("GitLab's key set holds {n} key(s)"),
        )),
        Some(Err(e)) => checks.push(
            Check::new(
                "gitlab",
                &base,
                "JWKS",
                Status::Fail,
                format!("cannot read GitLab's signing keys: {e}"),
            )
            .fix(reach_fix),
        ),
        None => {}
    }
    if let Some(skew) = probe.clock_skew_secs {
        let (status, fix) = match skew.abs() {
            s if s <= SKEW_WARN_SECS => (Status::Pass, None),
            s if s <= SKEW_FAIL_SECS => (
                Status::Warn,
                Some("synchronise both clocks with NTP (chrony, systemd-timesyncd)"),
            ),
            _ => (
                Status::Fail,
                Some(
                    "synchronise both clocks with NTP (chrony, systemd-timesyncd): tokens are checked with no leeway",
                ),
            ),
        };
        let mut check = Check::new(
            "gitlab",
            &base,
            "clock skew",
            status,
            format!("GitLab's clock is {skew} s from Hearth's (from its Date header)"),
        );
        if let Some(fix) = fix {
            check = check.fix(fix);
        }
        checks.push(check);
    }
    checks
}

fn features(state: &AppState) -> Vec<Check> {
    let snap = state.registry.snapshot();
    let beta_on = snap.settings().beta_models_enabled;
    let mut checks = Vec::new();
    let mut disabled = Vec::new();
    for setting in snap.features() {
        let feature = setting.feature;
        let name = feature.as_str();
        let Binding::SelfHosted { deployment_id } = setting.binding else {
            disabled.push(name);
            continue;
        };
        let Some(d) = snap.deployment(deployment_id) else {
            checks.push(
                Check::new(
                    "feature",
                    name,
                    "bound",
                    Status::Fail,
                    format!(
                        "{name} points at deployment id {deployment_id}, which no longer exists"
                    ),
                )
                .fix(format!(
                    "hearth features set {name} <deployment>, or hearth features disable {name}"
                )),
            );
            continue;
        };
        if feature.is_beta() && !beta_on {
            checks.push(
                Check::new(
                    "feature",
                    name,
                    "beta gate",
                    Status::Fail,
                    format!(
                        "{name} is a beta feature and beta models are off: its requests are refused"
                    ),
                )
                .fix("hearth settings set beta_models_enabled true"),
            );
        }
        let capability = feature.capability();
        let (verdict, exact) = d.verdict(capability);
        let basis = if exact {
            ""
        } else {
            " (best of its family; set the deployment's --model for the exact rating)"
        };
        let check = match verdict {
            FamilyVerdict::Unrated => Check::new("feature", name, "rating", Status::Warn,
                format!("served by {:?}: the catalog has no rating for {} on {}", d.name, d.family.display_name(), capability.label()))
                .fix(format!("check the answers yourself, or name the catalog model: hearth models update {:?} --model ID", d.name)),
            FamilyVerdict::Rated { rating, model } if !rating.allows_binding() => Check::new("feature", name, "rating", Status::Fail,
                format!("served by {:?}: {model} is rated {} for {}{basis}; Hearth refuses it", d.name, rating.as_str(), capability.label()))
                .fix(format!("bind a deployment rated green or amber: hearth features set {name} <deployment>, or hearth features disable {name}")),
            FamilyVerdict::Rated { rating: Rating::Amber, model } => Check::new("feature", name, "rating", Status::Warn,
                format!("served by {:?}: {model} is rated amber for {}{basis}: {}", d.name, capability.label(), Rating::Amber.meaning())),
            FamilyVerdict::Rated { rating, model } => Check::new("feature", name, "rating", Status::Pass,
                format!("served by {:?}: {model} is rated {} for {}{basis}", d.name, rating.as_str(), capability.label())),
        };
        checks.push(check);
    }
    if checks.is_empty() {
        checks.push(
            Check::new(
                "feature",
                "-",
                "bound",
                Status::Warn,
                "no feature is bound to a deployment: GitLab and clients get 403 feature_disabled"
                    .into(),
            )
            .fix("hearth features set code_completions <deployment> (and duo_chat, …)"),
        );
    }
    if !disabled.is_empty() {
        checks.push(Check::new(
            "feature",
            "-",
            "disabled",
            Status::Skip,
            format!("not bound (disabled): {}", disabled.join(", ")),
        ));
    }
    checks
}
