//! `GET /api/v1/feature_settings` and `PUT /api/v1/feature_settings/{feature}`.

use axum::Json;
use axum::extract::{Path, State};
use hearth_catalog::{Capability, Feature};
use hearth_registry::{Binding, FeatureSetting, Snapshot};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiErrorBody};
use crate::extract::ApiJson;

#[derive(Serialize, ToSchema)]
#[schema(as = FeatureSetting)]
pub(crate) struct FeatureView {
    #[schema(value_type = String)]
    feature: Feature,
    #[schema(value_type = String)]
    capability: Capability,
    beta: bool,
    provider: &'static str,
    self_hosted_model_id: Option<i64>,
    self_hosted_model_name: Option<String>,
    /// Deployments tried in order when the bound one has no healthy replica or no room.
    fallbacks: Vec<FallbackView>,
    updated_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct FallbackView {
    self_hosted_model_id: i64,
    self_hosted_model_name: Option<String>,
}

fn view(s: &FeatureSetting, snap: &Snapshot, warnings: Option<Vec<String>>) -> FeatureView {
    let id = s.binding.deployment_id();
    FeatureView {
        feature: s.feature,
        capability: s.feature.capability(),
        beta: s.feature.is_beta(),
        provider: s.binding.provider(),
        self_hosted_model_id: id,
        self_hosted_model_name: id
            .and_then(|id| snap.deployment(id))
            .map(|d| d.name.clone()),
        fallbacks: s
            .fallbacks
            .iter()
            .map(|&id| FallbackView {
                self_hosted_model_id: id,
                self_hosted_model_name: snap.deployment(id).map(|d| d.name.clone()),
            })
            .collect(),
        updated_at: s.updated_at.clone(),
        warnings,
    }
}

fn parse_feature(name: &str) -> Result<Feature, ApiError> {
    Feature::parse(name).ok_or_else(|| {
        let all: Vec<&str> = Feature::ALL.iter().map(|f| f.as_str()).collect();
        ApiError::not_found(format!(
            "unknown feature {name:?}; features: {}",
            all.join(", ")
        ))
    })
}

#[utoipa::path(operation_id = "feature_settings_list", get, path = "/api/v1/feature_settings", tag = "admin",
    responses((status = 200, body = Vec<FeatureView>), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<FeatureView>> {
    let snap = state.registry.snapshot();
    Json(
        snap.features()
            .iter()
            .map(|s| view(s, &snap, None))
            .collect(),
    )
}

#[utoipa::path(operation_id = "feature_settings_show", get, path = "/api/v1/feature_settings/{feature}", tag = "admin",
    params(("feature" = String, Path, description = "Feature name, e.g. code_completions")),
    responses((status = 200, body = FeatureView), (status = 404, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<FeatureView>, ApiError> {
    let feature = parse_feature(&name)?;
    let snap = state.registry.snapshot();
    Ok(Json(view(&snap.feature(feature), &snap, None)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SetFeature)]
pub(crate) struct FeatureBody {
    /// `disabled` or `self_hosted`
    provider: String,
    #[serde(default)]
    self_hosted_model_id: Option<i64>,
    /// Deployment ids tried in order when the bound one cannot serve; left out keeps the
    /// current list, `[]` clears it.
    #[serde(default)]
    fallbacks: Option<Vec<i64>>,
}

#[utoipa::path(operation_id = "feature_settings_set", put, path = "/api/v1/feature_settings/{feature}", tag = "admin",
    params(("feature" = String, Path, description = "Feature name, e.g. code_completions")),
    request_body = FeatureBody,
    responses((status = 200, body = FeatureView), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn set(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<FeatureBody>,
) -> Result<Json<FeatureView>, ApiError> {
    let feature = parse_feature(&name)?;
    let binding = match (body.provider.as_str(), body.self_hosted_model_id) {
        ("disabled", None) => Binding::Disabled,
        ("disabled", Some(_)) => {
            return Err(ApiError::invalid(
                "self_hosted_model_id",
                "leave self_hosted_model_id out when provider is disabled",
            ));
        }
        ("self_hosted", Some(deployment_id)) => Binding::SelfHosted { deployment_id },
        ("self_hosted", None) => {
            return Err(ApiError::invalid(
                "self_hosted_model_id",
                "provider self_hosted needs self_hosted_model_id: the id of a deployment from GET /api/v1/self_hosted_models",
            ));
        }
        (other, _) => {
            return Err(ApiError::invalid(
                "provider",
                format!("unknown provider {other:?}; use \"disabled\" or \"self_hosted\""),
            ));
        }
    };
    let outcome = state
        .registry
        .set_feature(feature, binding, body.fallbacks)
        .await?;
    tracing::info!(feature = %feature, provider = binding.provider(),
        self_hosted_model_id = binding.deployment_id(), "feature setting changed");
    let snap = state.registry.snapshot();
    Ok(Json(view(&outcome.value, &snap, Some(outcome.warnings))))
}
