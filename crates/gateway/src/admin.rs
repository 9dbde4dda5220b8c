//! The admin REST API under `/api/v1`: deployments, feature settings, settings, catalog,
//! client keys, and the set-up diagnosis (`verify`).
//! Every route needs the admin bearer token.

mod auth;
mod catalog;
mod check;
mod client_keys;
mod deployments;
mod features;
mod settings;
mod verify;

use axum::middleware::from_fn_with_state;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub(crate) use check::{CheckOutcome, run_check};
pub(crate) use deployments::endpoint_views;

/// Every admin route, registered through `routes!` from its handler's `#[utoipa::path]`, so
/// the OpenAPI document lists exactly what is routed.
pub(crate) fn routes(state: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(deployments::list, deployments::create))
        .routes(routes!(
            deployments::show,
            deployments::update,
            deployments::remove
        ))
        .routes(routes!(check::check))
        .routes(routes!(features::list))
        .routes(routes!(features::show, features::set))
        .routes(routes!(settings::show, settings::update))
        .routes(routes!(catalog::show))
        .routes(routes!(verify::verify))
        .routes(routes!(client_keys::list, client_keys::create))
        .routes(routes!(client_keys::revoke))
        .route_layer(from_fn_with_state(state, auth::require_admin))
}
