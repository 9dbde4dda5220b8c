//! The web console under `/admin`: server-rendered pages for what the admin API does, for
//! administrators who know GitLab's "Self-hosted models" pages.
//!
//! Every change goes through the same `Registry` operations the API uses, and every refusal
//! is the `RegistryError` the API maps (through `ApiError`), shown beside its field. The pages
//! are HTML for people, not part of the JSON API, so they are routed here with plain
//! `.route(` and stay out of the OpenAPI document on purpose.
//!
//! Security: a session cookie from signing in with the admin token (`session.rs`); every
//! POST carries the session's CSRF token, checked once in [`check_csrf`] before any handler
//! runs; pages are never cached and never framed.

mod catalog;
mod features;
mod keys;
mod models;
mod session;
mod settings;
mod sign_in;

use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::AppState;
use crate::error::ApiError;
pub(crate) use session::Sessions;
use session::{Current, Notice};

/// The stylesheet and the optional script, compiled in.
const STYLESHEET: &str = include_str!("../static/console.css");
const SCRIPT: &str = include_str!("../static/console.js");

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let signed_in = Router::new()
        .route("/admin", get(|| async { Redirect::to("/admin/models") }))
        .route("/admin/sign-out", post(sign_in::sign_out))
        .route("/admin/models", get(models::list).post(models::create))
        .route("/admin/models/new", get(models::new_form))
        .route("/admin/models/{id}", post(models::update))
        .route("/admin/models/{id}/edit", get(models::edit_form))
        .route("/admin/models/{id}/delete", post(models::delete))
        .route("/admin/models/{id}/check", post(models::check))
        .route("/admin/features", get(features::list))
        .route("/admin/features/{feature}", post(features::set))
        .route(
            "/admin/settings",
            get(settings::show).post(settings::update),
        )
        .route("/admin/catalog", get(catalog::show).post(catalog::plan))
        .route("/admin/keys", get(keys::list).post(keys::create))
        .route("/admin/keys/{id}/revoke", post(keys::revoke))
        // Layers run outside in: the session first, then its CSRF token.
        .route_layer(from_fn(check_csrf))
        .route_layer(from_fn_with_state(state, session::require_session));
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin") }))
        .route("/admin/sign-in", get(sign_in::form).post(sign_in::sign_in))
        .route("/admin/static/console.css", get(stylesheet))
        .route("/admin/static/console.js", get(script))
        .merge(signed_in)
        .layer(from_fn(page_headers))
}

async fn stylesheet() -> Response {
    static_file("text/css; charset=utf-8", STYLESHEET)
}

async fn script() -> Response {
    static_file("text/javascript; charset=utf-8", SCRIPT)
}

fn static_file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Pages hold state that changes and, once, a new client key: never cache them, never let
/// another site frame them, and run only this console's own script.
async fn page_headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// The most a console form may carry; the largest field is an API key (2,000 characters).
const FORM_LIMIT: usize = 64 * 1024;

/// Refuses any POST whose form lacks this session's CSRF token. One check for every form, so
/// no handler can forget it.
async fn check_csrf(req: Request, next: Next) -> Response {
    if req.method() != axum::http::Method::POST {
        return next.run(req).await;
    }
    let Some(current) = req.extensions().get::<Current>().cloned() else {
        return Redirect::to("/admin/sign-in").into_response();
    };
    let (parts, body) = req.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response();
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    let presented = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str());
    if !presented.is_some_and(|p| session::same_secret(p, &current.csrf)) {
        return forbidden();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn forbidden() -> Response {
    let page = Message {
        chrome: Chrome::bare("Form expired"),
        heading: "This form has expired",
        text: "The form did not carry this session's security token. Go back, reload the page and try again.",
    };
    (StatusCode::FORBIDDEN, render(&page)).into_response()
}

/// The parts of every page around its content.
pub(crate) struct Chrome {
    pub(crate) title: String,
    /// Which navigation entry is current (`models`, `features`, …); empty when signed out.
    pub(crate) nav: &'static str,
    pub(crate) csrf: String,
    pub(crate) notices: Vec<Notice>,
    pub(crate) status: Option<Status>,
}

impl Chrome {
    /// A page for a signed-in administrator: takes the session's pending notices.
    pub(crate) fn new(
        state: &AppState,
        current: &Current,
        nav: &'static str,
        title: impl Into<String>,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            csrf: current.csrf.clone(),
            notices: state.console.take_notices(&current.id),
            status: Some(Status::now(state)),
        }
    }

    /// A page without navigation (signed out, or an error).
    pub(crate) fn bare(title: impl Into<String>) -> Chrome {
        Chrome {
            title: title.into(),
            nav: "",
            csrf: String::new(),
            notices: Vec::new(),
            status: None,
        }
    }

    pub(crate) fn with(mut self, notice: Notice) -> Chrome {
        self.notices.push(notice);
        self
    }
}

/// The status strip: version, uptime, and recent traffic per feature.
pub(crate) struct Status {
    pub(crate) version: &'static str,
    pub(crate) uptime: String,
    pub(crate) minutes: u64,
    /// (feature, requests, errors), busiest first.
    pub(crate) features: Vec<(&'static str, u64, u64)>,
}

impl Status {
    fn now(state: &AppState) -> Status {
        let mut features: Vec<(&'static str, u64, u64)> = state
            .metrics
            .recent()
            .into_iter()
            .map(|(f, c)| (f.as_str(), c.requests, c.errors))
            .collect();
        features.sort_by_key(|f| std::cmp::Reverse(f.1));
        Status {
            version: env!("CARGO_PKG_VERSION"),
            uptime: short_duration(state.metrics.uptime()),
            minutes: crate::telemetry::RECENT_MINUTES,
            features,
        }
    }
}

/// "3d 4h", "2h 5m", "7m", "12s".
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 86_400, s / 3_600 % 24, s / 60 % 60) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct Message {
    chrome: Chrome,
    heading: &'static str,
    text: &'static str,
}

/// Renders a page, or a plain 500 if a template fails (it has no I/O, so only a bug can).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// After a change: back to `to`, with `notices` on the next page (post/redirect/get, so a
/// reload does not repeat the change).
pub(crate) fn done(
    state: &AppState,
    current: &Current,
    to: &str,
    notices: impl IntoIterator<Item = Notice>,
) -> Response {
    for n in notices {
        state.console.push_notice(&current.id, n);
    }
    Redirect::to(to).into_response()
}

/// A form field left empty means "not given".
pub(crate) fn given(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short() {
        assert_eq!(short_duration(Duration::from_secs(12)), "12s");
        assert_eq!(short_duration(Duration::from_secs(7 * 60 + 3)), "7m");
        assert_eq!(short_duration(Duration::from_secs(2 * 3600 + 300)), "2h 5m");
        assert_eq!(
            short_duration(Duration::from_secs(3 * 86_400 + 4 * 3600)),
            "3d 4h"
        );
    }
}
