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

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{delete, get, post};

use crate::AppState;

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/self_hosted_models",
            get(deployments::list).post(deployments::create),
        )
        .route(
            "/api/v1/self_hosted_models/{id}",
            get(deployments::show)
                .patch(deployments::update)
                .delete(deployments::remove),
        )
        .route("/api/v1/self_hosted_models/{id}/check", post(check::check))
        .route("/api/v1/feature_settings", get(features::list))
        .route(
            "/api/v1/feature_settings/{feature}",
            get(features::show).put(features::set),
        )
        .route(
            "/api/v1/settings",
            get(settings::show).patch(settings::update),
        )
        .route("/api/v1/catalog", get(catalog::show))
        .route("/api/v1/verify", post(verify::verify))
        .route(
            "/api/v1/client_keys",
            get(client_keys::list).post(client_keys::create),
        )
        .route("/api/v1/client_keys/{id}", delete(client_keys::revoke))
        .route_layer(from_fn_with_state(state, auth::require_admin))
}
