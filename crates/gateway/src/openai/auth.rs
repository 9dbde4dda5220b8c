//! Client API keys on the inference routes. With no key created, the routes answer only when
//! Hearth listens on loopback, so a fresh install is never an open relay on the network.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use tower_layer::Layer;
use tower_service::Service;

use crate::AppState;
use crate::openai::error::OaiError;

/// The key check in front of the inference routes, answering a refusal with `refuse` (OpenAI's
/// error shape, or Anthropic's for its route, which Anthropic's SDKs read). A tower layer
/// rather than `from_fn`, which boxes every request's future and clones the route for `Next`.
#[derive(Clone)]
pub(crate) struct ClientKeyLayer {
    state: AppState,
    refuse: fn(OaiError) -> Response,
}

impl ClientKeyLayer {
    pub(crate) fn openai(state: AppState) -> Self {
        Self {
            state,
            refuse: IntoResponse::into_response,
        }
    }

    pub(crate) fn anthropic(state: AppState) -> Self {
        Self {
            state,
            refuse: |e| crate::openai::anthropic::error_response(&e),
        }
    }
}

impl<S> Layer<S> for ClientKeyLayer {
    type Service = RequireClientKey<S>;

    fn layer(&self, inner: S) -> RequireClientKey<S> {
        RequireClientKey {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RequireClientKey<S> {
    inner: S,
    layer: ClientKeyLayer,
}

impl<S> Service<Request> for RequireClientKey<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, Ready<Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        match check(&self.layer.state, req.headers()) {
            Ok(()) => Either::Left(self.inner.call(req)),
            Err(e) => Either::Right(ready(Ok((self.layer.refuse)(e)))),
        }
    }
}

/// The presented key: `Authorization: Bearer` (OpenAI's clients), else `x-api-key`
/// (Anthropic's clients send their key there).
fn presented(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .or_else(|| {
            headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
}

fn check(state: &AppState, headers: &HeaderMap) -> Result<(), OaiError> {
    let snap = state.registry.snapshot();
    if !snap.has_active_client_keys() {
        if state.loopback {
            return Ok(());
        }
        return Err(OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "no_client_keys",
            "Hearth listens beyond loopback and has no client API keys yet: an administrator creates one with `hearth keys create NAME`",
        ));
    }
    match presented(headers).and_then(|k| snap.client_key_id(k)) {
        Some(_) => Ok(()),
        None => Err(OaiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or unknown API key: send `Authorization: Bearer <client key>` or `x-api-key: <client key>` (see `hearth keys create`)",
        )),
    }
}
