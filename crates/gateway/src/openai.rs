//! The OpenAI-compatible front door: `/v1/completions`, `/v1/chat/completions`, `/v1/models`,
//! and Mistral's `/v1/fim/completions`.
//! Any IDE plugin or SDK that speaks the OpenAI API can point at Hearth.

pub(crate) mod anthropic;
mod auth;
mod chat;
mod completions;
mod doors;
pub(crate) mod error;
mod frames;
mod models;
mod reframe;
mod stream;
mod whole;
mod wire;

use hearth_catalog::Feature;
use hearth_registry::Deployment;
use tokio::time::Instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::admission::Permit;
use crate::openai::error::OaiError;
use crate::routing::Route;
use crate::telemetry::Exchange;

/// Registered through `routes!` from each handler's `#[utoipa::path]`, so the OpenAPI
/// document lists exactly what is routed.
pub(crate) fn routes(state: AppState) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(completions::handle))
        .routes(routes!(chat::handle))
        .routes(routes!(models::list))
        .routes(routes!(models::retrieve))
        .routes(routes!(completions::fim))
        .routes(routes!(doors::generate))
        .routes(routes!(doors::ollama_chat))
        .routes(routes!(doors::tags))
        .routes(routes!(doors::show))
        .routes(routes!(doors::version))
        .routes(routes!(doors::infill))
        .route_layer(auth::ClientKeyLayer::openai(state.clone()))
        .merge(
            // Its own key check, so even a refused key is answered in Anthropic's shape.
            OpenApiRouter::new()
                .routes(routes!(anthropic::messages))
                .route_layer(auth::ClientKeyLayer::anthropic(state)),
        )
}

/// Answers a route's result; a refusal (no model server called) is counted here.
pub(crate) fn respond(
    state: &AppState,
    feature: Feature,
    result: Result<axum::response::Response, OaiError>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    result.unwrap_or_else(|e| {
        state.metrics.refused(feature, e.status.as_u16());
        e.into_response()
    })
}

pub(crate) fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Most stop sequences a request may add; each is scanned for in every chunk.
const MAX_STOPS: usize = 16;
const MAX_STOP_LEN: usize = 256;
const MAX_TOKENS_LIMIT: u32 = 131_072;

/// Checks the sampling fields both endpoints share; returns the client's stop sequences.
pub(crate) fn check_sampling(
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    n: Option<u32>,
    stop: Option<wire::OneOrMany>,
) -> Result<Vec<String>, OaiError> {
    if let Some(m) = max_tokens
        && !(1..=MAX_TOKENS_LIMIT).contains(&m)
    {
        return Err(OaiError::invalid(
            "max_tokens",
            format!("max_tokens must be between 1 and {MAX_TOKENS_LIMIT}"),
        ));
    }
    if let Some(t) = temperature
        && !(0.0..=2.0).contains(&t)
    {
        return Err(OaiError::invalid(
            "temperature",
            "temperature must be between 0 and 2",
        ));
    }
    if let Some(p) = top_p
        && !(p > 0.0 && p <= 1.0)
    {
        return Err(OaiError::invalid(
            "top_p",
            "top_p must be greater than 0 and at most 1",
        ));
    }
    match n {
        Some(0) => {
            return Err(OaiError::invalid(
                "n",
                "n must be 1 (or left out): it is the number of answers to generate",
            ));
        }
        Some(n) if n > 1 => {
            return Err(OaiError::invalid(
                "n",
                "n must be 1: Hearth post-processes one answer per request; send separate requests for more",
            ));
        }
        _ => {}
    }
    let stops = stop.map(wire::OneOrMany::into_vec).unwrap_or_default();
    if stops.len() > MAX_STOPS || stops.iter().any(|s| s.is_empty() || s.len() > MAX_STOP_LEN) {
        return Err(OaiError::invalid(
            "stop",
            format!(
                "stop takes at most {MAX_STOPS} non-empty sequences of at most {MAX_STOP_LEN} bytes"
            ),
        ));
    }
    Ok(stops)
}

/// Refuses, naming the field, what the deployment's platform cannot honour, so nothing a
/// client asked for is dropped silently. OpenAI-compatible servers and Azure take OpenAI's
/// fields as they are (Azure has no `top_k`, which only OpenAI-compatible servers take); for
/// Bedrock's Converse and InvokeModel Hearth sends no equivalent of these (chat's tool fields,
/// which it translates, are checked by `chat::check_bedrock_tools` instead of here).
pub(crate) fn check_platform(
    route: &Route,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), OaiError> {
    if matches!(
        route.endpoint.flavor,
        hearth_providers::Flavor::Azure { .. }
    ) && extra.contains_key("top_k")
    {
        let mut e = OaiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unsupported_parameter",
            format!(
                "`top_k` is not supported by deployment {:?}: Azure OpenAI has no top_k; leave it out or use a deployment on an OpenAI-compatible server (vLLM, llama.cpp, Ollama)",
                route.deployment.name
            ),
        );
        e.param = Some("top_k".into());
        return Err(e);
    }
    if !matches!(route.endpoint.flavor, hearth_providers::Flavor::Bedrock(_)) {
        return Ok(());
    }
    if let Some(field) = extra.keys().next() {
        let mut e = OaiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "unsupported_parameter",
            format!(
                "`{field}` is not supported by deployment {:?}: it runs on AWS Bedrock, where Hearth does not send `{field}`; leave it out or use a deployment on an OpenAI-compatible server or Azure",
                route.deployment.name
            ),
        );
        e.param = Some(field.clone());
        return Err(e);
    }
    Ok(())
}

/// Checks the numbers passed through as the client wrote them, as OpenAI bounds them.
pub(crate) fn check_passthrough(
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), OaiError> {
    for name in ["presence_penalty", "frequency_penalty"] {
        if let Some(v) = extra.get(name)
            && !v.as_f64().is_some_and(|p| (-2.0..=2.0).contains(&p))
        {
            return Err(OaiError::invalid(
                name,
                format!("{name} must be between -2 and 2"),
            ));
        }
    }
    if let Some(v) = extra.get("seed")
        && !(v.is_i64() || v.is_u64())
    {
        return Err(OaiError::invalid("seed", "seed must be a whole number"));
    }
    if let Some(v) = extra.get("top_logprobs")
        && v.as_u64().is_none_or(|n| n > 20)
    {
        return Err(OaiError::invalid(
            "top_logprobs",
            "top_logprobs must be between 0 and 20",
        ));
    }
    Ok(())
}

/// The route for a request to `feature` (see `routing::resolve`), once the deployments in
/// `tried` failed it (none, at first); a fallback is counted and logged.
pub(crate) fn route_after(
    state: &AppState,
    snap: &hearth_registry::Snapshot,
    feature: hearth_catalog::Feature,
    model: Option<&str>,
    tried: &[i64],
) -> Result<Route, OaiError> {
    let route = crate::routing::resolve(
        snap,
        feature,
        model,
        &state.cloud,
        &state.pools,
        state,
        tried,
    )?;
    if let Some(from) = &route.fallback_from {
        state
            .metrics
            .fallback(feature, from, &route.deployment.name);
        tracing::warn!(feature = %feature, from = %from, to = %route.deployment.name,
            after_failure = !tried.is_empty(),
            "fallback: the feature's deployment failed, or has no healthy replica or no room");
    }
    Ok(route)
}

/// Names the deployment that answered, for clients and for following fallbacks.
pub(crate) fn served_by(response: &mut axum::response::Response, route: &Route) {
    if let Ok(v) = axum::http::HeaderValue::from_str(&route.deployment.name) {
        response.headers_mut().insert(DEPLOYMENT, v);
    }
}

/// A place for one call to `deployment`, or the 503 that sheds the request.
pub(crate) async fn admit(state: &AppState, deployment: &str) -> Result<Permit, OaiError> {
    state.admission.admit(deployment).await.map_err(|o| {
        state.metrics.shed(deployment, o.scope);
        OaiError::overloaded(o.message(deployment))
    })
}

pub(crate) fn exchange(
    state: &AppState,
    deployment: &Deployment,
    feature: Feature,
    correlation_id: &str,
    verbose: bool,
    prompt: String,
    started: Instant,
) -> Exchange {
    Exchange::new(
        state.metrics.clone(),
        feature,
        deployment.name.clone(),
        deployment.upstream_model().to_string(),
        correlation_id.to_string(),
        verbose,
        prompt,
        started,
    )
}

/// The header naming the deployment that answered (a fallback's, when one took over).
const DEPLOYMENT: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-hearth-deployment");

/// The header with Hearth's own time in a request, in milliseconds.
pub(crate) const OVERHEAD: axum::http::HeaderName =
    axum::http::HeaderName::from_static("x-hearth-overhead-ms");

/// [`OVERHEAD`]'s value, with three decimals (rounded to the microsecond). Written from
/// whole microseconds: formatting an `f64` with a precision takes a slow exact path.
pub(crate) fn overhead_header(d: std::time::Duration) -> axum::http::HeaderValue {
    // In u64: the u128 of `as_nanos` made every digit below a library division.
    let micros = d
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from((d.subsec_nanos() + 500) / 1000));
    // Digits written from the right: the formatter's `{:03}` padding cost more than the rest
    // of the header.
    let mut text = [0u8; 48];
    let mut at = text.len();
    let mut rest = micros;
    for i in 0.. {
        if i == 3 {
            at -= 1;
            text[at] = b'.';
        }
        at -= 1;
        text[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 && i >= 3 {
            break;
        }
    }
    axum::http::HeaderValue::from_bytes(&text[at..])
        .unwrap_or(axum::http::HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::overhead_header;

    #[test]
    fn overhead_is_milliseconds_with_three_decimals_rounded() {
        for (d, text) in [
            (Duration::ZERO, "0.000"),
            (Duration::from_micros(999), "0.999"),
            (Duration::from_micros(1_000), "1.000"),
            (Duration::from_micros(10_020), "10.020"),
            // Saturated at u64::MAX microseconds (half a million years).
            (Duration::MAX, "18446744073709551.615"),
            (Duration::new(3, 999_999_600), "4000.000"),
            (Duration::from_nanos(1_234_567), "1.235"),
            (Duration::from_nanos(1_234_499), "1.234"),
            (Duration::from_nanos(9_999_995_000), "9999.995"),
            (Duration::from_secs(12), "12000.000"),
        ] {
            assert_eq!(overhead_header(d).to_str().unwrap(), text, "{d:?}");
        }
    }
}
