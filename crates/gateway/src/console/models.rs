//! Self-hosted models: the table, Add, Edit, Delete and Test connection.

use std::collections::BTreeMap;

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hearth_catalog::{Family, MODELS, ReleaseStatus};
use hearth_registry::{
    ApiKey, Deployment, DeploymentPatch, NewDeployment, TimeoutOverrides, TimeoutPatch,
};
use secrecy::SecretString;
use serde::Deserialize;

use super::session::{Current, Notice};
use super::{Chrome, done, given, render};
use crate::AppState;
use crate::admin::run_check;
use crate::error::ApiError;

pub(crate) struct Row {
    id: i64,
    name: String,
    family: &'static str,
    model: String,
    platform: &'static str,
    /// (url, `healthy` / `ejected` / `unchecked`).
    endpoints: Vec<(String, &'static str)>,
    key: &'static str,
    features: Vec<&'static str>,
    /// (passed, what it said, when).
    check: Option<(bool, String, String)>,
}

#[derive(Template)]
#[template(path = "console/models.html")]
struct ListPage {
    chrome: Chrome,
    rows: Vec<Row>,
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    let snap = state.registry.snapshot();
    let checks = state
        .checks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let rows = snap
        .deployments()
        .iter()
        .map(|d| Row {
            id: d.id,
            name: d.name.clone(),
            family: d.family.display_name(),
            model: d
                .model
                .map_or_else(|| "not recognised".to_string(), |m| m.name.to_string()),
            platform: platform_label(d),
            endpoints: crate::admin::endpoint_views(&state, d)
                .into_iter()
                .map(|e| (e.url, e.state))
                .collect(),
            key: match d.api_key {
                ApiKey::None => "not set",
                ApiKey::Set(_) => "set",
                ApiKey::Unreadable(_) => "set, unreadable (the secret key changed)",
            },
            features: snap
                .features_using(d.id)
                .iter()
                .map(|f| f.as_str())
                .collect(),
            check: checks.get(&d.id).map(|c| {
                let when = humantime::format_rfc3339_seconds(c.at).to_string();
                match &c.result {
                    Ok(detail) => (true, format!("{detail} in {} ms", c.latency_ms), when),
                    Err((_, error)) => (false, error.clone(), when),
                }
            }),
        })
        .collect();
    render(&ListPage {
        chrome: Chrome::new(&state, &current, "models", "Self-hosted models"),
        rows,
    })
}

/// The replica URLs typed after the first, one per line; `None` when there are none.
fn replicas(f: &Fields) -> Option<Vec<String>> {
    let lines: Vec<String> = f
        .replicas
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    (!lines.is_empty()).then_some(lines)
}

fn platform_label(d: &Deployment) -> &'static str {
    match d.platform {
        hearth_registry::DeploymentPlatform::OpenaiCompatible => "OpenAI-compatible (vLLM)",
        hearth_registry::DeploymentPlatform::Bedrock => "AWS Bedrock",
        hearth_registry::DeploymentPlatform::AzureOpenai => "Azure OpenAI",
    }
}

/// What the form holds, as typed. Every field is text: the registry judges it.
#[derive(Clone, Debug, Default, Deserialize)]
pub(crate) struct Fields {
    #[serde(default)]
    name: String,
    #[serde(default)]
    family: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    endpoint: String,
    /// Replicas after the first, one URL per line.
    #[serde(default)]
    replicas: String,
    #[serde(default)]
    routing: String,
    #[serde(default)]
    identifier: String,
    /// Write-only: never put back in a page.
    #[serde(default)]
    api_key: String,
    /// Edit only: remove the stored key.
    #[serde(default)]
    clear_api_key: Option<String>,
    #[serde(default)]
    connect_timeout_ms: String,
    #[serde(default)]
    first_token_timeout_ms: String,
    #[serde(default)]
    total_timeout_ms: String,
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    region: String,
}

#[derive(Template)]
#[template(path = "console/model_form.html")]
struct FormPage {
    chrome: Chrome,
    /// The deployment being edited; `None` for Add.
    editing: Option<i64>,
    key_set: bool,
    f: Fields,
    errors: BTreeMap<String, String>,
    families: Vec<(&'static str, String)>,
    models: Vec<(&'static str, String)>,
    routings: [(&'static str, &'static str); 3],
}

impl FormPage {
    fn error(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    /// `aria-describedby` for a field: its help text, and its error when it has one.
    fn described(&self, field: &str, help: bool) -> String {
        let mut ids = Vec::new();
        if help {
            ids.push(format!("{field}-help"));
        }
        if self.errors.contains_key(field) {
            ids.push(format!("{field}-error"));
        }
        ids.join(" ")
    }
}

/// The fields the form shows; an error on any other field is shown above the form.
const FORM_FIELDS: [&str; 12] = [
    "name",
    "family",
    "model",
    "endpoint",
    "endpoints",
    "routing",
    "identifier",
    "api_key",
    "connect_timeout_ms",
    "first_token_timeout_ms",
    "total_timeout_ms",
    "region",
];

fn form_page(
    state: &AppState,
    current: &Current,
    editing: Option<&Deployment>,
    f: Fields,
    error: Option<ApiError>,
) -> Response {
    let title = match editing {
        Some(d) => format!("Edit self-hosted model {}", d.name),
        None => "Add self-hosted model".to_string(),
    };
    let mut chrome = Chrome::new(state, current, "models", title);
    let mut errors = BTreeMap::new();
    let mut status = StatusCode::OK;
    if let Some(e) = error {
        status = e.status;
        match e.field {
            Some(field) if FORM_FIELDS.contains(&field.as_str()) || field == "api_version" => {
                errors.insert(field, e.message);
                chrome = chrome.with(Notice::error(
                    "The model was not saved: correct the field marked below.",
                ));
            }
            _ => chrome = chrome.with(Notice::error(e.message)),
        }
    }
    let families = Family::ALL
        .iter()
        .map(|f| {
            let beta = if f.status() == ReleaseStatus::Beta {
                " (beta)"
            } else {
                ""
            };
            (f.as_str(), format!("{}{beta}", f.display_name()))
        })
        .collect();
    let models = MODELS
        .iter()
        .map(|m| (m.id, format!("{} ({})", m.name, m.family.display_name())))
        .collect();
    let mut response = render(&FormPage {
        chrome,
        editing: editing.map(|d| d.id),
        key_set: editing.is_some_and(|d| d.api_key.is_set()),
        f: Fields {
            api_key: String::new(),
            ..f
        },
        errors,
        families,
        models,
        routings: [
            (
                "prefix_affinity",
                "Prefix affinity (same file, same replica)",
            ),
            ("least_loaded", "Least loaded"),
            ("round_robin", "Round robin"),
        ],
    });
    *response.status_mut() = status;
    response
}

/// Prefill from the catalog's plan ("register this").
#[derive(Deserialize)]
pub(crate) struct Prefill {
    #[serde(default)]
    name: String,
    #[serde(default)]
    family: String,
    #[serde(default)]
    model: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default)]
    identifier: String,
}

pub(crate) async fn new_form(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Query(p): Query<Prefill>,
) -> Response {
    let f = Fields {
        name: p.name,
        family: p.family,
        model: p.model,
        endpoint: p.endpoint,
        identifier: p.identifier,
        ..Fields::default()
    };
    form_page(&state, &current, None, f, None)
}

/// A timeout as typed: empty is "the default"; anything else must be a whole number. The
/// range rule is the registry's.
fn timeout(field: &'static str, text: &str) -> Result<Option<u32>, ApiError> {
    match given(text) {
        None => Ok(None),
        Some(t) => t.parse().map(Some).map_err(|_| {
            ApiError::invalid(
                field,
                format!("{field} must be a whole number of milliseconds"),
            )
        }),
    }
}

fn timeouts(f: &Fields) -> Result<TimeoutOverrides, ApiError> {
    Ok(TimeoutOverrides {
        connect_ms: timeout("connect_timeout_ms", &f.connect_timeout_ms)?,
        first_token_ms: timeout("first_token_timeout_ms", &f.first_token_timeout_ms)?,
        total_ms: timeout("total_timeout_ms", &f.total_timeout_ms)?,
    })
}

pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Form(f): Form<Fields>,
) -> Response {
    let t = match timeouts(&f) {
        Ok(t) => t,
        Err(e) => return form_page(&state, &current, None, f, Some(e)),
    };
    let input = NewDeployment {
        name: f.name.clone(),
        family: f.family.clone(),
        model: given(&f.model),
        platform: None,
        endpoint: given(&f.endpoint),
        endpoints: replicas(&f).map(|rest| given(&f.endpoint).into_iter().chain(rest).collect()),
        routing: given(&f.routing),
        identifier: f.identifier.clone(),
        api_key: given(&f.api_key).map(SecretString::from),
        timeouts: t,
        api_version: given(&f.api_version),
        region: given(&f.region),
    };
    match state.registry.create_deployment(input).await {
        Ok(outcome) => {
            let d = &outcome.value;
            tracing::info!(self_hosted_model_id = d.id, name = %d.name, family = %d.family,
                platform = d.platform.as_str(), api_key_set = d.api_key.is_set(),
                "self-hosted model created (console)");
            let notices = std::iter::once(Notice::ok(format!(
                "Self-hosted model {:?} created.",
                d.name
            )))
            .chain(outcome.warnings.into_iter().map(Notice::warn));
            done(&state, &current, "/admin/models", notices)
        }
        Err(e) => form_page(&state, &current, None, f, Some(ApiError::from(e))),
    }
}

fn find(state: &AppState, id: &str) -> Option<std::sync::Arc<Deployment>> {
    id.parse::<i64>()
        .ok()
        .and_then(|id| state.registry.snapshot().deployment(id).cloned())
}

fn missing() -> Response {
    let page = super::Message {
        chrome: Chrome::bare("Not found"),
        heading: "No such self-hosted model",
        text: "It may have been deleted. Go back to the list of self-hosted models.",
    };
    (StatusCode::NOT_FOUND, render(&page)).into_response()
}

pub(crate) async fn edit_form(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
) -> Response {
    let Some(d) = find(&state, &id) else {
        return missing();
    };
    let ms = |v: Option<u32>| v.map(|n| n.to_string()).unwrap_or_default();
    let f = Fields {
        name: d.name.clone(),
        family: d.family.as_str().to_string(),
        model: d.model.map(|m| m.id.to_string()).unwrap_or_default(),
        endpoint: d.endpoint.clone().unwrap_or_default(),
        replicas: d
            .endpoints
            .iter()
            .skip(1)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        routing: d.routing.as_str().to_string(),
        identifier: d.identifier.clone(),
        api_key: String::new(),
        clear_api_key: None,
        connect_timeout_ms: ms(d.timeouts.connect_ms),
        first_token_timeout_ms: ms(d.timeouts.first_token_ms),
        total_timeout_ms: ms(d.timeouts.total_ms),
        api_version: d.api_version.clone().unwrap_or_default(),
        region: d.region.clone().unwrap_or_default(),
    };
    form_page(&state, &current, Some(&d), f, None)
}

pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
    Form(f): Form<Fields>,
) -> Response {
    let Some(d) = find(&state, &id) else {
        return missing();
    };
    let t = match timeouts(&f) {
        Ok(t) => t,
        Err(e) => return form_page(&state, &current, Some(&d), f, Some(e)),
    };
    // An empty key field keeps the stored key; only the explicit box clears it.
    let api_key = match (f.clear_api_key.is_some(), given(&f.api_key)) {
        (true, _) => Some(None),
        (false, Some(k)) => Some(Some(SecretString::from(k))),
        (false, None) => None,
    };
    // The model select's empty choice means "recognise it from the identifier".
    let patch = DeploymentPatch {
        name: Some(f.name.clone()),
        family: Some(f.family.clone()),
        model: Some(given(&f.model)),
        platform: None,
        endpoint: Some(given(&f.endpoint)),
        // The form shows every replica, so what it sends is the whole list.
        endpoints: given(&f.endpoint).map(|first| {
            std::iter::once(first)
                .chain(replicas(&f).unwrap_or_default())
                .collect()
        }),
        routing: Some(f.routing.clone()),
        identifier: Some(f.identifier.clone()),
        api_key,
        timeouts: TimeoutPatch {
            connect_ms: Some(t.connect_ms),
            first_token_ms: Some(t.first_token_ms),
            total_ms: Some(t.total_ms),
        },
        api_version: Some(given(&f.api_version)),
        region: Some(given(&f.region)),
    };
    match state.registry.update_deployment(d.id, patch).await {
        Ok(outcome) => {
            let d = &outcome.value;
            tracing::info!(self_hosted_model_id = d.id, name = %d.name,
                api_key_set = d.api_key.is_set(), "self-hosted model updated (console)");
            let notices =
                std::iter::once(Notice::ok(format!("Self-hosted model {:?} saved.", d.name)))
                    .chain(outcome.warnings.into_iter().map(Notice::warn));
            done(&state, &current, "/admin/models", notices)
        }
        Err(e) => form_page(&state, &current, Some(&d), f, Some(ApiError::from(e))),
    }
}

pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
) -> Response {
    let Some(d) = find(&state, &id) else {
        return missing();
    };
    let notice = match state.registry.delete_deployment(d.id).await {
        Ok(()) => {
            tracing::info!(
                self_hosted_model_id = d.id,
                "self-hosted model deleted (console)"
            );
            Notice::ok(format!("Self-hosted model {:?} deleted.", d.name))
        }
        Err(e) => Notice::error(ApiError::from(e).message),
    };
    done(&state, &current, "/admin/models", [notice])
}

pub(crate) async fn check(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
) -> Response {
    let Some(d) = find(&state, &id) else {
        return missing();
    };
    let outcome = run_check(&state, &d).await;
    let notice = match outcome.result {
        Ok(detail) => Notice::ok(format!(
            "Connection to {:?} works: {detail} in {} ms.",
            d.name, outcome.latency_ms
        )),
        Err((_, error)) => Notice::error(format!("Connection to {:?} failed: {error}", d.name)),
    };
    done(&state, &current, "/admin/models", [notice])
}
