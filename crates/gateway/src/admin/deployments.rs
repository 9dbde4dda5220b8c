//! `/api/v1/self_hosted_models`: create, list, show, update and delete deployments.
//! The API key goes in and never comes out: responses say only `api_key_set`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hearth_catalog::Feature;
use hearth_registry::{
    ApiKey, Deployment, DeploymentPatch, NewDeployment, Snapshot, TimeoutOverrides, TimeoutPatch,
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiErrorBody};
use crate::extract::{ApiJson, nullable};

#[derive(Serialize, ToSchema)]
pub(crate) struct DeploymentView {
    id: i64,
    name: String,
    family: &'static str,
    /// The catalog model, when named or recognised from the identifier.
    model: Option<&'static str>,
    model_name: Option<&'static str>,
    platform: &'static str,
    /// The first of `endpoints`.
    endpoint: Option<String>,
    /// Every replica with what Hearth knows of its health.
    endpoints: Vec<EndpointView>,
    /// `round_robin`, `least_loaded` or `prefix_affinity`.
    routing: &'static str,
    identifier: String,
    api_key_set: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_error: Option<String>,
    connect_timeout_ms: Option<u32>,
    first_token_timeout_ms: Option<u32>,
    total_timeout_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    #[schema(value_type = Vec<String>)]
    features: Vec<Feature>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

/// One replica of a deployment.
#[derive(Serialize, ToSchema)]
pub(crate) struct EndpointView {
    pub(crate) url: String,
    /// `healthy`, `ejected` (no traffic until `ejected_for_ms` runs out, then one probe; it
    /// stays `ejected` until an answer re-admits it) or
    /// `unchecked` (no request or health check has reached it yet).
    pub(crate) state: &'static str,
    in_flight: u32,
    /// Requests waiting in the model server's queue, from its `/metrics` (0 when unknown).
    queued: u32,
    consecutive_failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    ejected_for_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

pub(crate) fn endpoint_views(state: &AppState, d: &Deployment) -> Vec<EndpointView> {
    let pool = state.pools.get(d.id).filter(|p| p.has_replicas_of(d));
    let now = std::time::Instant::now();
    d.endpoints
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let replica = pool.as_ref().and_then(|p| p.replicas.get(i));
            let health = replica.map(|r| r.health()).unwrap_or_default();
            // Until an answer re-admits it, an ejected replica stays ejected: past its
            // ejection time (0 ms left) it only takes one probe request.
            let ejected_for = health
                .ejected_until
                .map(|u| u.saturating_duration_since(now));
            EndpointView {
                url: url.clone(),
                state: match (replica, ejected_for) {
                    (_, Some(_)) => "ejected",
                    (Some(_), None) if health.known => "healthy",
                    _ => "unchecked",
                },
                in_flight: replica.map_or(0, |r| r.in_flight()),
                queued: replica.map_or(0, |r| r.queued()),
                consecutive_failures: health.consecutive_failures,
                ejected_for_ms: ejected_for
                    .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                last_error: health.last_error,
            }
        })
        .collect()
}

fn view(
    state: &AppState,
    d: &Deployment,
    snap: &Snapshot,
    warnings: Option<Vec<String>>,
) -> DeploymentView {
    DeploymentView {
        endpoints: endpoint_views(state, d),
        routing: d.routing.as_str(),
        id: d.id,
        name: d.name.clone(),
        family: d.family.as_str(),
        model: d.model.map(|m| m.id),
        model_name: d.model.map(|m| m.name),
        platform: d.platform.as_str(),
        endpoint: d.endpoint.clone(),
        identifier: d.identifier.clone(),
        api_key_set: d.api_key.is_set(),
        api_key_error: match &d.api_key {
            ApiKey::Unreadable(why) => Some(why.clone()),
            _ => None,
        },
        connect_timeout_ms: d.timeouts.connect_ms,
        first_token_timeout_ms: d.timeouts.first_token_ms,
        total_timeout_ms: d.timeouts.total_ms,
        api_version: d.api_version.clone(),
        region: d.region.clone(),
        features: snap.features_using(d.id),
        created_at: d.created_at.clone(),
        updated_at: d.updated_at.clone(),
        warnings,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateDeployment)]
pub(crate) struct CreateBody {
    name: String,
    family: String,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    endpoint: Option<String>,
    /// Replicas of the same served model; give this or `endpoint`.
    #[serde(default)]
    endpoints: Option<Vec<String>>,
    /// `round_robin`, `least_loaded` or `prefix_affinity` (the default).
    #[serde(default)]
    routing: Option<String>,
    identifier: String,
    #[serde(default)]
    api_key: Option<String>,
    #[serde(default)]
    connect_timeout_ms: Option<u32>,
    #[serde(default)]
    first_token_timeout_ms: Option<u32>,
    #[serde(default)]
    total_timeout_ms: Option<u32>,
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

/// Fields left out stay as they are; `null` clears the nullable ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateDeployment)]
pub(crate) struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    family: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    model: Option<Option<String>>,
    #[serde(default)]
    platform: Option<String>,
    /// Replaces the first endpoint; the other replicas stay.
    #[serde(default, deserialize_with = "nullable")]
    endpoint: Option<Option<String>>,
    /// Replaces the whole list of replicas.
    #[serde(default)]
    endpoints: Option<Vec<String>>,
    #[serde(default)]
    routing: Option<String>,
    #[serde(default)]
    identifier: Option<String>,
    #[serde(default, deserialize_with = "nullable")]
    api_key: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    connect_timeout_ms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    first_token_timeout_ms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    total_timeout_ms: Option<Option<u32>>,
    #[serde(default, deserialize_with = "nullable")]
    api_version: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    region: Option<Option<String>>,
}

fn parse_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::not_found(format!(
            "no self-hosted model has id {raw:?}; ids are whole numbers"
        ))
    })
}

#[utoipa::path(operation_id = "deployments_list", get, path = "/api/v1/self_hosted_models", tag = "admin",
    responses((status = 200, body = Vec<DeploymentView>), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<DeploymentView>> {
    let snap = state.registry.snapshot();
    Json(
        snap.deployments()
            .iter()
            .map(|d| view(&state, d, &snap, None))
            .collect(),
    )
}

#[utoipa::path(operation_id = "deployments_show", get, path = "/api/v1/self_hosted_models/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Deployment id")),
    responses((status = 200, body = DeploymentView), (status = 404, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DeploymentView>, ApiError> {
    let id = parse_id(&id)?;
    let snap = state.registry.snapshot();
    let d = snap
        .deployment(id)
        .ok_or_else(|| ApiError::not_found(format!("no self-hosted model has id {id}")))?;
    Ok(Json(view(&state, d, &snap, None)))
}

#[utoipa::path(operation_id = "deployments_create", post, path = "/api/v1/self_hosted_models", tag = "admin",
    request_body = CreateBody,
    responses((status = 201, body = DeploymentView), (status = 409, body = ApiErrorBody),
        (status = 422, description = "A field is invalid; `field` names it", body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<DeploymentView>), ApiError> {
    let outcome = state
        .registry
        .create_deployment(NewDeployment {
            name: body.name,
            family: body.family,
            model: body.model,
            platform: body.platform,
            endpoint: body.endpoint,
            endpoints: body.endpoints,
            routing: body.routing,
            identifier: body.identifier,
            api_key: body.api_key.map(SecretString::from),
            timeouts: TimeoutOverrides {
                connect_ms: body.connect_timeout_ms,
                first_token_ms: body.first_token_timeout_ms,
                total_ms: body.total_timeout_ms,
            },
            api_version: body.api_version,
            region: body.region,
        })
        .await?;
    let d = &outcome.value;
    tracing::info!(self_hosted_model_id = d.id, name = %d.name, family = %d.family,
        platform = d.platform.as_str(), api_key_set = d.api_key.is_set(), "self-hosted model created");
    let snap = state.registry.snapshot();
    Ok((
        StatusCode::CREATED,
        Json(view(&state, d, &snap, Some(outcome.warnings))),
    ))
}

#[utoipa::path(operation_id = "deployments_update", patch, path = "/api/v1/self_hosted_models/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Deployment id")),
    request_body = UpdateBody,
    responses((status = 200, body = DeploymentView), (status = 404, body = ApiErrorBody),
        (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateBody>,
) -> Result<Json<DeploymentView>, ApiError> {
    let id = parse_id(&id)?;
    let outcome = state
        .registry
        .update_deployment(
            id,
            DeploymentPatch {
                name: body.name,
                family: body.family,
                model: body.model,
                platform: body.platform,
                endpoint: body.endpoint,
                endpoints: body.endpoints,
                routing: body.routing,
                identifier: body.identifier,
                api_key: body.api_key.map(|k| k.map(SecretString::from)),
                timeouts: TimeoutPatch {
                    connect_ms: body.connect_timeout_ms,
                    first_token_ms: body.first_token_timeout_ms,
                    total_ms: body.total_timeout_ms,
                },
                api_version: body.api_version,
                region: body.region,
            },
        )
        .await?;
    let d = &outcome.value;
    tracing::info!(self_hosted_model_id = d.id, name = %d.name, api_key_set = d.api_key.is_set(),
        "self-hosted model updated");
    let snap = state.registry.snapshot();
    Ok(Json(view(&state, d, &snap, Some(outcome.warnings))))
}

#[utoipa::path(operation_id = "deployments_remove", delete, path = "/api/v1/self_hosted_models/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Deployment id")),
    responses((status = 204, description = "Deleted"), (status = 404, body = ApiErrorBody),
        (status = 409, description = "A feature still uses it", body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    state.registry.delete_deployment(id).await?;
    tracing::info!(self_hosted_model_id = id, "self-hosted model deleted");
    Ok(StatusCode::NO_CONTENT)
}
