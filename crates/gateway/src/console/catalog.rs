//! Catalog and sizing: the approved-model table, and `hearth plan` as a form whose answer can
//! be registered in one step.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, State};
use axum::response::Response;
use hearth_catalog::{
    Capability, Filter, GPUS, Hardware, MODELS, PlanRequest, Rating, document, find_gpu,
    plan as catalog_plan,
};
use serde::Deserialize;

use super::session::Current;
use super::{Chrome, given, render};
use crate::AppState;

pub(crate) struct Row {
    name: &'static str,
    id: &'static str,
    family: &'static str,
    /// The release status, with the GitLab version that added the model where known.
    status: String,
    /// (capability, rating class, rating words) per capability.
    ratings: Vec<(&'static str, &'static str)>,
    platforms: String,
    gpu_memory: String,
}

/// What the plan form was given and what it answered.
#[derive(Default)]
pub(crate) struct PlanView {
    model: String,
    gpu: String,
    count: String,
    host: String,
    error: Option<(&'static str, String)>,
    answer: Option<Answer>,
}

pub(crate) struct Answer {
    fits: Option<bool>,
    verdict: String,
    setup: Vec<String>,
    command: Option<String>,
    notes: Vec<String>,
    /// The query string that opens the Add form prefilled.
    register: String,
}

#[derive(Template)]
#[template(path = "console/catalog.html")]
struct Page {
    chrome: Chrome,
    legend: Vec<(&'static str, &'static str, &'static str)>,
    rows: Vec<Row>,
    models: Vec<(&'static str, &'static str)>,
    gpus: Vec<(&'static str, u32)>,
    plan: PlanView,
}

impl Page {
    fn plan_error(&self, field: &str) -> bool {
        self.plan.error.as_ref().is_some_and(|(f, _)| *f == field)
    }
}

fn rating_word(r: Rating) -> &'static str {
    match r {
        Rating::NotSupported => "not supported",
        other => other.as_str(),
    }
}

fn page(state: &AppState, current: &Current, plan: PlanView) -> Page {
    let doc = document(Filter::default());
    let rows = doc
        .models
        .iter()
        .map(|entry| {
            let m = entry.model;
            Row {
                name: m.name,
                id: m.id,
                family: m.family.display_name(),
                status: match m.introduced {
                    Some(v) => format!("{} (added {v})", m.status.label()),
                    None => m.status.label().to_string(),
                },
                ratings: Capability::ALL
                    .iter()
                    .map(|&c| {
                        let r = m.ratings.get(c);
                        (r.as_str(), rating_word(r))
                    })
                    .collect(),
                platforms: m
                    .platforms
                    .iter()
                    .map(|p| p.label())
                    .collect::<Vec<_>>()
                    .join(", "),
                gpu_memory: entry.requirement.as_ref().map_or_else(
                    || "cloud only".to_string(),
                    |r| {
                        let about = if r.is_estimate() { "about " } else { "" };
                        format!("{about}{} GB", r.min_vram_gb)
                    },
                ),
            }
        })
        .collect();
    Page {
        chrome: Chrome::new(state, current, "catalog", "Catalog and sizing"),
        legend: doc
            .legend
            .iter()
            .map(|l| (l.rating.as_str(), rating_word(l.rating), l.meaning))
            .collect(),
        rows,
        models: MODELS.iter().map(|m| (m.id, m.name)).collect(),
        gpus: GPUS.iter().map(|g| (g.name, g.vram_gb)).collect(),
        plan,
    }
}

pub(crate) async fn show(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    render(&page(&state, &current, PlanView::default()))
}

#[derive(Deserialize)]
pub(crate) struct PlanForm {
    #[serde(default)]
    model: String,
    #[serde(default)]
    gpu: String,
    #[serde(default)]
    count: String,
    #[serde(default)]
    host: String,
}

fn answer(form: &PlanForm) -> PlanView {
    let mut view = PlanView {
        model: form.model.clone(),
        gpu: form.gpu.clone(),
        count: form.count.clone(),
        host: form.host.clone(),
        ..PlanView::default()
    };
    let count = match given(&form.count).map(|c| c.parse::<u32>()) {
        None => None,
        Some(Ok(n)) if (1..=64).contains(&n) => Some(n),
        Some(_) => {
            view.error = Some((
                "count",
                "GPU count must be a whole number from 1 to 64".into(),
            ));
            return view;
        }
    };
    let hardware = match given(&form.gpu) {
        None => None,
        Some(name) => match find_gpu(&name) {
            Ok(gpu) => Some(Hardware { gpu, count }),
            Err(e) => {
                view.error = Some(("gpu", e));
                return view;
            }
        },
    };
    let host = given(&form.host);
    let answer = catalog_plan(&PlanRequest {
        model: form.model.trim(),
        hardware,
        served_name: None,
        host: host.as_deref(),
        model_dir: None,
        precision: None,
    });
    match answer {
        Ok(p) => {
            let r = &p.register;
            let query = serde_urlencoded::to_string([
                ("name", p.model.name),
                ("family", r.family.as_str()),
                ("model", p.model.id),
                ("endpoint", r.endpoint.as_deref().unwrap_or_default()),
                ("identifier", r.identifier.as_str()),
            ])
            .unwrap_or_default();
            view.answer = Some(Answer {
                fits: p.fits,
                verdict: p.verdict.clone(),
                setup: p.setup.clone(),
                command: p.vllm_command.clone(),
                notes: p.notes.clone(),
                register: query,
            });
        }
        Err(e) => view.error = Some(("model", e.to_string())),
    }
    view
}

pub(crate) async fn plan(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Form(form): Form<PlanForm>,
) -> Response {
    let view = answer(&form);
    render(&page(&state, &current, view))
}
