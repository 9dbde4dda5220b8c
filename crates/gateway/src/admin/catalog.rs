//! `GET /api/v1/catalog`: the approved-model catalog, optionally filtered.

use axum::Json;
use axum::extract::Query;
use hearth_catalog::{Capability, Document, Filter, ReleaseStatus, document};
use serde::Deserialize;

use crate::error::ApiError;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CatalogQuery {
    feature: Option<String>,
    status: Option<String>,
}

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
