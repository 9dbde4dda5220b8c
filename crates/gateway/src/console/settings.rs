//! Settings: beta models, verbose AI logs, and how this instance was started (read only).

use askama::Template;
use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use hearth_registry::{KeySource, SettingsPatch};
use serde::Deserialize;

use super::session::{Current, Notice};
use super::{Chrome, done, render};
use crate::AppState;
use crate::error::ApiError;

#[derive(Template)]
#[template(path = "console/settings.html")]
struct Page {
    chrome: Chrome,
    beta: bool,
    verbose: bool,
    /// (what, value) for the settings fixed at start.
    instance: Vec<(&'static str, String)>,
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    let snap = state.registry.snapshot();
    let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
    let instance = vec![
        ("Database", state.registry.database().to_string()),
        (
            "API key encryption key",
            match state.registry.key_source() {
                KeySource::Environment => "HEARTH_SECRET_KEY".to_string(),
                KeySource::File(p) | KeySource::CreatedFile(p) => p.display().to_string(),
            },
        ),
        (
            "Listening",
            if state.loopback {
                "loopback only".to_string()
            } else {
                "beyond loopback".to_string()
            },
        ),
        (
            "GitLab instance",
            state.gitlab.gitlab_url().unwrap_or("not set").to_string(),
        ),
        ("GitLab token checks bypassed", on_off(state.gitlab_bypass)),
        (
            "Custom models from GitLab requests",
            on_off(state.custom_models),
        ),
        (
            "Metrics token for remote scrapers",
            on_off(state.metrics_token.is_some()),
        ),
    ];
    render(&Page {
        chrome: Chrome::new(&state, &current, "settings", "Settings"),
        beta: snap.settings().beta_models_enabled,
        verbose: snap.settings().verbose_ai_logs,
        instance,
    })
}

/// An unticked box is absent from the form, so both are read as "ticked or not".
#[derive(Deserialize)]
pub(crate) struct SettingsForm {
    #[serde(default)]
    beta_models_enabled: Option<String>,
    #[serde(default)]
    verbose_ai_logs: Option<String>,
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let patch = SettingsPatch {
        beta_models_enabled: Some(form.beta_models_enabled.is_some()),
        verbose_ai_logs: Some(form.verbose_ai_logs.is_some()),
    };
    let notices: Vec<Notice> = match state.registry.update_settings(patch).await {
        Ok(outcome) => {
            tracing::info!(
                beta_models_enabled = outcome.value.beta_models_enabled,
                verbose_ai_logs = outcome.value.verbose_ai_logs,
                "settings changed (console)"
            );
            std::iter::once(Notice::ok("Settings saved."))
                .chain(outcome.warnings.into_iter().map(Notice::warn))
                .collect()
        }
        Err(e) => vec![Notice::error(ApiError::from(e).message)],
    };
    done(&state, &current, "/admin/settings", notices)
}
