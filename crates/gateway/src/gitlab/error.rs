//! Error bodies as GitLab's AI gateway sends them: `{"error": …}` for authentication,
//! `{"detail": …}` for everything else.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub(crate) struct GitlabError {
    pub status: StatusCode,
    /// Authentication errors use `error`, the rest `detail`.
    pub auth: bool,
    pub message: String,
    pub retry_after: Option<String>,
}

impl GitlabError {
    pub(crate) fn unauthorized(message: impl Into<String>) -> Self {
        GitlabError {
            status: StatusCode::UNAUTHORIZED,
            auth: true,
            message: message.into(),
            retry_after: None,
        }
    }

    pub(crate) fn forbidden_by_provider() -> Self {
        Self::unauthorized("Forbidden by auth provider")
    }

    pub(crate) fn detail(status: StatusCode, message: impl Into<String>) -> Self {
        GitlabError {
            status,
            auth: false,
            message: message.into(),
            retry_after: None,
        }
    }
}

impl From<crate::openai::error::OaiError> for GitlabError {
    fn from(e: crate::openai::error::OaiError) -> Self {
        let mut g = GitlabError::detail(e.status, e.message);
        g.retry_after = e.retry_after;
        g
    }
}

impl IntoResponse for GitlabError {
    fn into_response(self) -> Response {
        let body = if self.auth {
            json!({"error": self.message})
        } else {
            json!({"detail": self.message})
        };
        let mut r = (self.status, Json(body)).into_response();
        if let Some(v) = self
            .retry_after
            .and_then(|v| HeaderValue::from_str(&v).ok())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}
