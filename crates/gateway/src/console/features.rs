//! AI-powered features: which self-hosted model serves each, with the catalog's rating of
//! every choice shown before it is made.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::response::Response;
use hearth_catalog::{FamilyVerdict, Feature, Rating};
use hearth_registry::Binding;
use serde::Deserialize;

use super::session::{Current, Notice};
use super::{Chrome, done, render};
use crate::AppState;
use crate::error::ApiError;

pub(crate) struct Choice {
    /// The deployment id as the form sends it.
    value: String,
    label: String,
    selected: bool,
}

pub(crate) struct Row {
    feature: &'static str,
    capability: &'static str,
    beta: bool,
    choices: Vec<Choice>,
}

#[derive(Template)]
#[template(path = "console/features.html")]
struct Page {
    chrome: Chrome,
    rows: Vec<Row>,
    beta_on: bool,
}

/// "green", "amber — recommended with limitations", "red — will be refused", …
fn rating_words(verdict: &FamilyVerdict, exact: bool) -> String {
    let basis = if exact { "" } else { ", judged by its family" };
    match verdict {
        FamilyVerdict::Unrated => "not rated by the catalog".to_string(),
        FamilyVerdict::Rated { rating, model } => {
            let word = match rating {
                Rating::Green => "green",
                Rating::Amber => "amber: works with limitations",
                Rating::Red => "red: will be refused",
                Rating::Supported => "supported",
                Rating::NotSupported => "not supported: will be refused",
            };
            format!("{word} ({model}{basis})")
        }
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    let snap = state.registry.snapshot();
    let rows = Feature::ALL
        .iter()
        .map(|&feature| {
            let setting = snap.feature(feature);
            let bound = setting.binding.deployment_id();
            let capability = feature.capability();
            let mut choices = vec![Choice {
                value: "disabled".into(),
                label: "Disabled".into(),
                selected: bound.is_none(),
            }];
            choices.extend(snap.deployments().iter().map(|d| {
                let (verdict, exact) = d.verdict(capability);
                Choice {
                    value: d.id.to_string(),
                    label: format!("{} — {}", d.name, rating_words(&verdict, exact)),
                    selected: bound == Some(d.id),
                }
            }));
            Row {
                feature: feature.as_str(),
                capability: capability.label(),
                beta: feature.is_beta(),
                choices,
            }
        })
        .collect();
    render(&Page {
        chrome: Chrome::new(&state, &current, "features", "AI-powered features"),
        rows,
        beta_on: snap.settings().beta_models_enabled,
    })
}

#[derive(Deserialize)]
pub(crate) struct SetForm {
    #[serde(default)]
    deployment: String,
}

pub(crate) async fn set(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(name): Path<String>,
    Form(form): Form<SetForm>,
) -> Response {
    let back = "/admin/features";
    let Some(feature) = Feature::parse(&name) else {
        return done(
            &state,
            &current,
            back,
            [Notice::error(format!("There is no feature {name:?}."))],
        );
    };
    let binding = match form.deployment.as_str() {
        "disabled" => Binding::Disabled,
        id => match id.parse() {
            Ok(deployment_id) => Binding::SelfHosted { deployment_id },
            Err(_) => {
                return done(
                    &state,
                    &current,
                    back,
                    [Notice::error("Choose a self-hosted model or Disabled.")],
                );
            }
        },
    };
    let notices: Vec<Notice> = match state.registry.set_feature(feature, binding, None).await {
        Ok(outcome) => {
            tracing::info!(feature = %feature, provider = binding.provider(),
                self_hosted_model_id = binding.deployment_id(), "feature setting changed (console)");
            let name = binding.deployment_id().and_then(|id| {
                state
                    .registry
                    .snapshot()
                    .deployment(id)
                    .map(|d| d.name.clone())
            });
            let what = match name {
                Some(n) => format!("{feature} now uses {n:?}."),
                None => format!("{feature} is disabled."),
            };
            std::iter::once(Notice::ok(what))
                .chain(outcome.warnings.into_iter().map(Notice::warn))
                .collect()
        }
        Err(e) => vec![Notice::error(format!(
            "{feature} was not changed: {}",
            ApiError::from(e).message
        ))],
    };
    done(&state, &current, &format!("{back}#{feature}"), notices)
}
