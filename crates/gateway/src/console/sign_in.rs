//! Signing in with the admin token, and out.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hearth_registry::random_token;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::session::{COOKIE, Current, LIFETIME, Notice, PRE_COOKIE, WRONG_TOKEN_DELAY};
use super::{Chrome, forbidden, render, session};
use crate::AppState;

/// How long the sign-in form stays valid.
const FORM_LIFETIME: std::time::Duration = std::time::Duration::from_secs(30 * 60);

#[derive(Template)]
#[template(path = "console/sign_in.html")]
struct SignInPage {
    chrome: Chrome,
}

#[derive(Deserialize)]
pub(crate) struct SignedOut {
    #[serde(default)]
    signed_out: Option<String>,
}

pub(crate) async fn form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignedOut>,
) -> Response {
    let signed_in = session::cookie_value(&headers, COOKIE)
        .and_then(|id| state.console.get(id))
        .is_some();
    if signed_in {
        return Redirect::to("/admin/models").into_response();
    }
    let notice = q.signed_out.map(|_| Notice::ok("You are signed out."));
    page(&state, StatusCode::OK, notice)
}

/// The sign-in form with a fresh CSRF token, which the browser also gets as a cookie: the
/// post must carry both, equal (there is no session yet to keep it in).
fn page(state: &AppState, status: StatusCode, notice: Option<Notice>) -> Response {
    let pre = random_token(32);
    let mut chrome = Chrome::bare("Sign in");
    chrome.csrf = pre.clone();
    chrome.notices.extend(notice);
    let mut response = render(&SignInPage { chrome });
    *response.status_mut() = status;
    response.headers_mut().append(
        header::SET_COOKIE,
        state.console.cookie(PRE_COOKIE, &pre, FORM_LIFETIME),
    );
    response
}

#[derive(Deserialize)]
pub(crate) struct SignInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    token: String,
}

pub(crate) async fn sign_in(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return forbidden();
    };
    let expected_form = session::cookie_value(&headers, PRE_COOKIE).unwrap_or_default();
    if expected_form.is_empty() || !session::same_secret(&form.csrf, expected_form) {
        return forbidden();
    }
    let token = form.token.trim();
    if token.is_empty() || !session::same_secret(token, state.admin_token.expose_secret()) {
        // One wrong guess at a time, each answered late.
        let _one_at_a_time = state.console.wrong_token.lock().await;
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        tracing::warn!("console sign-in with a wrong admin token");
        return page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(Notice::error(
                "That is not the admin token. It is HEARTH_ADMIN_TOKEN, or the admin.token file in Hearth's data directory.",
            )),
        );
    }
    let id = state.console.create();
    tracing::info!("console sign-in");
    let mut response = Redirect::to("/admin/models").into_response();
    let h = response.headers_mut();
    h.append(
        header::SET_COOKIE,
        state.console.cookie(COOKIE, &id, LIFETIME),
    );
    h.append(header::SET_COOKIE, state.console.clear_cookie(PRE_COOKIE));
    response
}

pub(crate) async fn sign_out(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    state.console.remove(&current.id);
    tracing::info!("console sign-out");
    let mut response = Redirect::to("/admin/sign-in?signed_out=1").into_response();
    response
        .headers_mut()
        .append(header::SET_COOKIE, state.console.clear_cookie(COOKIE));
    response
}
