//! Client keys: create (the key is shown on that one page only), list, revoke.

use askama::Template;
use axum::Extension;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::session::{Current, Notice};
use super::{Chrome, done, render};
use crate::AppState;
use crate::error::ApiError;

pub(crate) struct Row {
    id: i64,
    name: String,
    prefix: String,
    created_at: String,
    revoked_at: Option<String>,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
struct Page {
    chrome: Chrome,
    rows: Vec<Row>,
    /// The key just created: in this answer and nowhere else.
    new_key: Option<(String, String)>,
    name: String,
    name_error: Option<String>,
}

fn page(
    state: &AppState,
    current: &Current,
    new_key: Option<(String, String)>,
    name: String,
    name_error: Option<String>,
) -> Page {
    let rows = state
        .registry
        .snapshot()
        .client_keys()
        .iter()
        .map(|k| Row {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at.clone(),
            revoked_at: k.revoked_at.clone(),
        })
        .collect();
    Page {
        chrome: Chrome::new(state, current, "keys", "Client keys"),
        rows,
        new_key,
        name,
        name_error,
    }
}

pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
) -> Response {
    render(&page(&state, &current, None, String::new(), None))
}

#[derive(Deserialize)]
pub(crate) struct CreateForm {
    #[serde(default)]
    name: String,
}

/// Answers the post with the page itself rather than a redirect: the key must not be kept
/// anywhere (not even in the session) to show it after one.
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Form(form): Form<CreateForm>,
) -> Response {
    match state.registry.create_client_key(&form.name).await {
        Ok((key, secret)) => {
            tracing::info!(client_key_id = key.id, name = %key.name, prefix = %key.prefix,
                "client key created (console)");
            let mut p = page(
                &state,
                &current,
                Some((key.name.clone(), secret.expose_secret().to_string())),
                String::new(),
                None,
            );
            p.chrome = p
                .chrome
                .with(Notice::ok(format!("Client key {:?} created.", key.name)));
            render(&p)
        }
        Err(e) => {
            let e = ApiError::from(e);
            let status = e.status;
            let mut p = page(&state, &current, None, form.name, Some(e.message));
            p.chrome = p
                .chrome
                .with(Notice::error("The key was not created: correct the name."));
            let mut r = render(&p);
            *r.status_mut() = if status.is_client_error() {
                status
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            r
        }
    }
}

pub(crate) async fn revoke(
    State(state): State<AppState>,
    Extension(current): Extension<Current>,
    Path(id): Path<String>,
) -> Response {
    let notice = match id.parse::<i64>() {
        Err(_) => Notice::error(format!("There is no client key {id:?}.")),
        Ok(id) => match state.registry.revoke_client_key(id).await {
            Ok(key) => {
                tracing::info!(client_key_id = key.id, "client key revoked (console)");
                Notice::ok(format!(
                    "Client key {:?} revoked: it no longer works.",
                    key.name
                ))
            }
            Err(e) => Notice::error(ApiError::from(e).message),
        },
    };
    done(&state, &current, "/admin/keys", [notice])
}
