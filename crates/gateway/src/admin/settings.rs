//! `GET|PATCH /api/v1/settings`.

use axum::Json;
use axum::extract::State;
use hearth_registry::{Settings, SettingsPatch};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiError, ApiErrorBody};
use crate::extract::ApiJson;

#[derive(Serialize, ToSchema)]
#[schema(as = Settings)]
pub(crate) struct SettingsView {
    beta_models_enabled: bool,
    verbose_ai_logs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    warnings: Option<Vec<String>>,
}

impl SettingsView {
    fn new(s: &Settings, warnings: Option<Vec<String>>) -> Self {
        Self {
            beta_models_enabled: s.beta_models_enabled,
            verbose_ai_logs: s.verbose_ai_logs,
            warnings,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateSettings)]
pub(crate) struct SettingsBody {
    beta_models_enabled: Option<bool>,
    verbose_ai_logs: Option<bool>,
}

#[utoipa::path(operation_id = "settings_show", get, path = "/api/v1/settings", tag = "admin",
    responses((status = 200, body = SettingsView), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn show(State(state): State<AppState>) -> Json<SettingsView> {
    Json(SettingsView::new(
        state.registry.snapshot().settings(),
        None,
    ))
}

#[utoipa::path(operation_id = "settings_update", patch, path = "/api/v1/settings", tag = "admin",
    request_body = SettingsBody,
    responses((status = 200, body = SettingsView), (status = 422, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn update(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<SettingsBody>,
) -> Result<Json<SettingsView>, ApiError> {
    let outcome = state
        .registry
        .update_settings(SettingsPatch {
            beta_models_enabled: body.beta_models_enabled,
            verbose_ai_logs: body.verbose_ai_logs,
        })
        .await?;
    tracing::info!(
        beta_models_enabled = outcome.value.beta_models_enabled,
        verbose_ai_logs = outcome.value.verbose_ai_logs,
        "settings changed"
    );
    Ok(Json(SettingsView::new(
        &outcome.value,
        Some(outcome.warnings),
    )))
}
