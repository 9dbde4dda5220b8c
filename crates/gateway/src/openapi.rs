//! The OpenAPI 3.1 document of the admin API, the OpenAI-compatible routes and the health
//! routes, served at `/api/v1/openapi.json`. It is assembled by utoipa from the handlers'
//! `#[utoipa::path]` attributes and the request and response types they use, while the same
//! `routes!` calls register the routes: what is documented is what is routed.
//! GitLab's AI-gateway routes are left out: their contract is GitLab's (docs/gitlab.md).

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Hearth",
        description = "Hearth's admin API (under /api/v1, admin bearer token) and its OpenAI-compatible routes (under /v1; a client key once any exists, and always beyond loopback). docs/admin-api.md and docs/openai-api.md explain each.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Security),
    tags(
        (name = "admin", description = "Deployments, feature settings, settings, catalog, client keys"),
        (name = "openai", description = "The OpenAI-compatible front door"),
        (name = "monitoring", description = "Health, readiness and this document; no credentials"),
    ),
)]
pub(crate) struct ApiDoc;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let bearer = |what: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(what))
                    .build(),
            )
        };
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            bearer("HEARTH_ADMIN_TOKEN, or the admin.token file in the data directory"),
        );
        components.add_security_scheme(
            "client_key",
            bearer("A client key from POST /api/v1/client_keys; needed once any key exists, and always when Hearth listens beyond loopback"),
        );
    }
}

/// The document, serialized once at start.
#[derive(Clone)]
pub(crate) struct Document(pub(crate) Arc<String>);

#[utoipa::path(operation_id = "openapi_document", get, path = "/api/v1/openapi.json", tag = "monitoring",
    responses((status = 200, description = "This document (OpenAPI 3.1)", content_type = "application/json", body = Object)))]
pub(crate) async fn document(Extension(Document(json)): Extension<Document>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.as_str().to_owned(),
    )
}
