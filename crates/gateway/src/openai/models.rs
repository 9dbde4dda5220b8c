//! `GET /v1/models`: the deployments clients may name, with what each serves.

use axum::Json;
use axum::extract::State;
use hearth_catalog::Capability;
use hearth_registry::DeploymentPlatform;
use serde_json::{Value, json};

use crate::AppState;

pub(crate) async fn list(State(state): State<AppState>) -> Json<Value> {
    let snap = state.registry.snapshot();
    let data: Vec<Value> = snap
        .deployments()
        .iter()
        .filter(|d| d.platform != DeploymentPlatform::Bedrock)
        .map(|d| {
            let serves: Vec<&str> = [
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
            json!({
                "id": d.name,
                "object": "model",
                "created": created,
                "owned_by": "hearth",
                "family": d.family.as_str(),
                "features": snap.features_using(d.id),
                "serves": serves,
            })
        })
        .collect();
    Json(json!({"object": "list", "data": data}))
}
