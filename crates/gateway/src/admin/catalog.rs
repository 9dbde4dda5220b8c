//! `GET /api/v1/catalog`: the approved-model catalog, optionally filtered.

use axum::Json;
use axum::extract::Query;
use hearth_catalog::{Capability, Document, Filter, ReleaseStatus, document};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::{ApiError, ApiErrorBody};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CatalogQuery {
    /// code_completion, code_generation, chat, or a feature name
    feature: Option<String>,
    /// ga or beta
    status: Option<String>,
}

#[utoipa::path(operation_id = "catalog_show", get, path = "/api/v1/catalog", tag = "admin",
    params(CatalogQuery),
    responses((status = 200, description = "The approved-model catalog (docs/catalog.md)", body = Object),
        (status = 422, body = ApiErrorBody), (status = 401, description = "No or wrong admin token", body = ApiErrorBody)),
    security(("admin_token" = [])))]
pub(crate) async fn show(
    query: Result<Query<CatalogQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Document>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let capability = q
        .feature
        .map(|f| {
            Capability::parse(&f).ok_or_else(|| {
                ApiError::invalid(
                    "feature",
                    format!("unknown feature {f:?}; use code_completion, code_generation, chat or a feature name"),
                )
            })
        })
        .transpose()?;
    let status = q
        .status
        .map(|s| {
            ReleaseStatus::parse(&s).ok_or_else(|| {
                ApiError::invalid("status", format!("unknown status {s:?}; use ga or beta"))
            })
        })
        .transpose()?;
    Ok(Json(document(Filter { capability, status })))
}
