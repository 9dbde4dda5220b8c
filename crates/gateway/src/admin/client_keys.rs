//! `/api/v1/client_keys`: keys for the inference routes. A new key is in the creation answer
//! and nowhere else, ever.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use hearth_registry::ClientKey;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiErrorBody};
use crate::extract::ApiJson;

#[derive(Serialize, ToSchema)]
#[schema(as = ClientKey)]
pub(crate) struct KeyView {
    id: i64,
    name: String,
    prefix: String,
    created_at: String,
    revoked_at: Option<String>,
    active: bool,
    /// Only in the answer to a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

fn view(k: &ClientKey, key: Option<String>) -> KeyView {
    KeyView {
        id: k.id,
        name: k.name.clone(),
        prefix: k.prefix.clone(),
        created_at: k.created_at.clone(),
        revoked_at: k.revoked_at.clone(),
        active: k.is_active(),
        key,
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateClientKey)]
pub(crate) struct CreateBody {
    name: String,
}

#[utoipa::path(operation_id = "client_keys_list", get, path = "/api/v1/client_keys", tag = "admin",
    responses((status = 200, body = Vec<KeyView>), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn list(State(state): State<AppState>) -> Json<Vec<KeyView>> {
    let snap = state.registry.snapshot();
    Json(snap.client_keys().iter().map(|k| view(k, None)).collect())
}

#[utoipa::path(operation_id = "client_keys_create", post, path = "/api/v1/client_keys", tag = "admin",
    request_body = CreateBody,
    responses((status = 201, description = "The key, in `key`, this once", body = KeyView),
        (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateBody>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let (key, secret) = state.registry.create_client_key(&body.name).await?;
    tracing::info!(client_key_id = key.id, name = %key.name, prefix = %key.prefix, "client key created");
    Ok((
        StatusCode::CREATED,
        Json(view(&key, Some(secret.expose_secret().to_string()))),
    ))
}

#[utoipa::path(operation_id = "client_keys_revoke", delete, path = "/api/v1/client_keys/{id}", tag = "admin",
    params(("id" = i64, Path, description = "Client key id")),
    responses((status = 200, body = KeyView), (status = 404, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<KeyView>, ApiError> {
    let id: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("no client key has id {id:?}")))?;
    let key = state.registry.revoke_client_key(id).await?;
    tracing::info!(client_key_id = key.id, "client key revoked");
    Ok(Json(view(&key, None)))
}
