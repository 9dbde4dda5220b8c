//! The admin bearer token check.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use crate::AppState;
use crate::error::ApiError;

pub(crate) async fn require_admin(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    let Some(presented) = presented else {
        return ApiError::unauthorized(
            "admin API needs `Authorization: Bearer <admin token>`; the token is HEARTH_ADMIN_TOKEN or the admin.token file in the data directory",
        )
        .into_response();
    };
    let expected = state.admin_token.expose_secret().as_bytes();
    if bool::from(presented.as_bytes().ct_eq(expected)) {
        next.run(req).await
    } else {
        ApiError::unauthorized("the admin token is wrong").into_response()
    }
}
