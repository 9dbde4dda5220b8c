//! `GET /v1/models`: the deployments clients may name, with what each serves.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hearth_catalog::{Capability, Feature};
use hearth_registry::{Deployment, DeploymentPlatform, Snapshot};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::openai::error::{OaiError, OaiErrorBody};

#[derive(Serialize, ToSchema)]
pub(crate) struct ModelList {
    /// Always `list`.
    object: &'static str,
    data: Vec<Model>,
}

/// A deployment, under the name clients put in `model`.
#[derive(Serialize, ToSchema)]
pub(crate) struct Model {
    id: String,
    /// Always `model`.
    object: &'static str,
    /// Unix seconds.
    created: u64,
    owned_by: &'static str,
    family: &'static str,
    /// The features bound to it.
    #[schema(value_type = Vec<String>)]
    features: Vec<Feature>,
    /// What it may be asked for: `completions`, `chat`.
    serves: Vec<&'static str>,
}

#[utoipa::path(operation_id = "models_list", get, path = "/v1/models", tag = "openai",
    responses((status = 200, body = ModelList),
        (status = 401, description = "No or unknown client key (needed once any key exists, and always beyond loopback)", body = OaiErrorBody)),
    security((), ("client_key" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<ModelList> {
    let snap = state.registry.snapshot();
    let data: Vec<Model> = snap
        .deployments()
        .iter()
        .filter(|d| listed(d))
        .map(|d| model(&snap, d))
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}

/// `models.retrieve`: one deployment, by the name `GET /v1/models` lists.
#[utoipa::path(operation_id = "models_retrieve", get, path = "/v1/models/{model}", tag = "openai",
    params(("model" = String, Path, description = "A deployment name, as `GET /v1/models` lists it")),
    responses((status = 200, body = Model),
        (status = 401, description = "No or unknown client key (needed once any key exists, and always beyond loopback)", body = OaiErrorBody),
        (status = 404, description = "No such model", body = OaiErrorBody)),
    security((), ("client_key" = [])))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<Model>, OaiError> {
    let Path(name) = name.map_err(|e| OaiError::invalid("model", e.body_text()))?;
    let snap = state.registry.snapshot();
    match snap.deployment_by_name(&name).filter(|d| listed(d)) {
        Some(d) => Ok(Json(model(&snap, d))),
        None => {
            let mut e = OaiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "model_not_found",
                format!("the model {name:?} does not exist; GET /v1/models lists them"),
            );
            e.param = Some("model".into());
            Err(e)
        }
    }
}

fn listed(d: &Deployment) -> bool {
    d.platform != DeploymentPlatform::Bedrock
}

/// The deployments the model lists show (every front door's list is the same).
pub(crate) fn listed_deployments(snap: &Snapshot) -> impl Iterator<Item = &Deployment> {
    snap.deployments()
        .iter()
        .map(|d| &**d)
        .filter(|d| listed(d))
}

fn model(snap: &Snapshot, d: &Deployment) -> Model {
    let serves = serves(d);
    Model {
        id: d.name.clone(),
        object: "model",
        created: created(d),
        owned_by: "hearth",
        family: d.family.as_str(),
        features: snap.features_using(d.id),
        serves,
    }
}

fn created(d: &Deployment) -> u64 {
    humantime::parse_rfc3339(&d.created_at)
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// What a deployment may be asked for: `completions`, `chat`.
pub(crate) fn serves(d: &Deployment) -> Vec<&'static str> {
    [
        (Capability::CodeCompletion, "completions"),
        (Capability::Chat, "chat"),
    ]
    .into_iter()
    .filter(|(c, _)| match d.verdict(*c).0 {
        hearth_catalog::FamilyVerdict::Rated { rating, .. } => rating.allows_binding(),
        hearth_catalog::FamilyVerdict::Unrated => true,
    })
    .map(|(_, name)| name)
    .collect()
}
