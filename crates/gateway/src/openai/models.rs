//! `GET /v1/models`: the deployments clients may name, with what each serves.

use axum::Json;
use axum::extract::State;
use hearth_catalog::{Capability, Feature};
use hearth_registry::DeploymentPlatform;
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::openai::error::OaiErrorBody;

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
        .filter(|d| d.platform != DeploymentPlatform::Bedrock)
        .map(|d| {
            let serves: Vec<&'static str> = [
                (Capability::CodeCompletion, "completions"),
                (Capability::Chat, "chat"),
            ]
            .into_iter()
            .filter(|(c, _)| match d.verdict(*c).0 {
                hearth_catalog::FamilyVerdict::Rated { rating, .. } => rating.allows_binding(),
                hearth_catalog::FamilyVerdict::Unrated => true,
            })
            .map(|(_, name)| name)
            .collect();
            let created = humantime::parse_rfc3339(&d.created_at)
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_secs());
            Model {
                id: d.name.clone(),
                object: "model",
                created,
                owned_by: "hearth",
                family: d.family.as_str(),
                features: snap.features_using(d.id),
                serves,
            }
        })
        .collect();
    Json(ModelList {
        object: "list",
        data,
    })
}
