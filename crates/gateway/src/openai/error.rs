//! OpenAI-shaped errors, `{"error":{"message","type","param","code"}}`, and the one mapping
//! from upstream failures to statuses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hearth_providers::{ProviderError, TimeoutPhase};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::ApiError;

/// OpenAI's error body, as answered and as the last event of a failed stream.
#[derive(Serialize, ToSchema)]
#[schema(as = OpenAiError)]
pub(crate) struct OaiErrorBody<'a> {
    error: OaiErrorDetail<'a>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = OpenAiErrorDetail)]
struct OaiErrorDetail<'a> {
    message: &'a str,
    /// e.g. `invalid_request_error`, `upstream_error`
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

#[derive(Debug)]
pub(crate) struct OaiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub code: &'static str,
    pub message: String,
    pub param: Option<String>,
    pub retry_after: Option<String>,
}

impl OaiError {
    pub(crate) fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        OaiError {
            status,
            kind,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    pub(crate) fn invalid(param: &str, message: impl Into<String>) -> Self {
        // OpenAI answers every invalid value with 400; SDKs raise BadRequestError for it.
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_value",
            message,
        );
        e.param = Some(param.to_string());
        e
    }

    /// A request shed because the in-flight cap is full (see `admission`).
    pub(crate) fn overloaded(message: String) -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "overloaded",
            message,
        );
        e.retry_after = Some(crate::admission::Overloaded::RETRY_AFTER.into());
        e
    }

    /// The JSON an error becomes inside a stream that has already started.
    pub(crate) fn stream_event(&self) -> serde_json::Value {
        let body = OaiErrorBody {
            error: OaiErrorDetail {
                message: &self.message,
                kind: self.kind,
                param: self.param.as_deref(),
                code: self.code,
            },
        };
        serde_json::to_value(body).unwrap_or(serde_json::Value::Null)
    }

    /// Maps an upstream failure for deployment `name`. Client mistakes the model server
    /// caught stay 400; operator mistakes (keys, identifiers) and outages are 5xx.
    pub(crate) fn upstream(name: &str, e: &ProviderError) -> Self {
        use StatusCode as S;
        let gateway =
            |status, code, message: String| Self::new(status, "upstream_error", code, message);
        match e {
            ProviderError::Connect { .. } => gateway(
                S::BAD_GATEWAY,
                "upstream_unreachable",
                format!("deployment {name:?}: {e}"),
            ),
            ProviderError::Timeout {
                phase: TimeoutPhase::Connect,
                ..
            } => gateway(
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!(
                    "deployment {name:?}: {e}; check that the endpoint's host is reachable from Hearth (firewall, VPN, security group)"
                ),
            ),
            ProviderError::Timeout { .. } => gateway(
                S::GATEWAY_TIMEOUT,
                "upstream_timeout",
                format!("deployment {name:?}: {e}"),
            ),
            ProviderError::TooLarge { .. } => gateway(
                S::BAD_GATEWAY,
                "upstream_too_large",
                format!("deployment {name:?}: {e}"),
            ),
            ProviderError::Protocol(_) | ProviderError::Stream(_) => gateway(
                S::BAD_GATEWAY,
                "upstream_error",
                format!("deployment {name:?}: {e}"),
            ),
            ProviderError::Upstream {
                status,
                message,
                code,
                retry_after,
            } => {
                let mut err = match (*status, code.as_deref()) {
                    (400, Some("content_filter")) => Self::new(
                        S::BAD_REQUEST,
                        "invalid_request_error",
                        "content_filter",
                        format!(
                            "the content filter of deployment {name:?} blocked the prompt: {message}"
                        ),
                    ),
                    (
                        _,
                        Some(
                            "ThrottlingException"
                            | "ModelNotReadyException"
                            | "ServiceQuotaExceededException",
                        ),
                    ) => {
                        let mut e = Self::new(
                            S::TOO_MANY_REQUESTS,
                            "rate_limit_error",
                            "upstream_rate_limited",
                            format!("deployment {name:?} is throttled by Bedrock: {message}"),
                        );
                        // Bedrock sends no Retry-After; its SDKs back off from about a second.
                        e.retry_after = Some("2".into());
                        return e;
                    }
                    (_, Some("ValidationException")) => Self::new(
                        S::BAD_REQUEST,
                        "invalid_request_error",
                        "upstream_rejected",
                        format!("Bedrock refused the request for deployment {name:?}: {message}"),
                    ),
                    (_, Some("AccessDeniedException")) => Self::new(
                        S::FORBIDDEN,
                        "permission_error",
                        "upstream_access_denied",
                        format!(
                            "Bedrock denied access for deployment {name:?} ({message}); Hearth's AWS identity needs bedrock:InvokeModel and bedrock:InvokeModelWithResponseStream on the model, and model access enabled in the Bedrock console"
                        ),
                    ),
                    (_, Some("ModelTimeoutException")) => gateway(
                        S::GATEWAY_TIMEOUT,
                        "upstream_timeout",
                        format!(
                            "the model behind deployment {name:?} timed out on Bedrock: {message}"
                        ),
                    ),
                    (_, Some("ResourceNotFoundException")) => gateway(
                        S::BAD_GATEWAY,
                        "upstream_not_found",
                        format!(
                            "Bedrock does not know the model of deployment {name:?} ({message}); check bedrock/<model id> and the region"
                        ),
                    ),
                    (
                        _,
                        Some(
                            "InvalidSignatureException"
                            | "UnrecognizedClientException"
                            | "ExpiredTokenException",
                        ),
                    ) => gateway(
                        S::BAD_GATEWAY,
                        "upstream_auth",
                        format!(
                            "Bedrock refused Hearth's AWS credentials for deployment {name:?} ({message}); check the access key, secret and session token"
                        ),
                    ),
                    (404, Some("DeploymentNotFound")) => gateway(
                        S::BAD_GATEWAY,
                        "upstream_not_found",
                        format!(
                            "Azure has no deployment named in {name:?}'s identifier ({message}); check azure/<deployment name> and the endpoint's resource"
                        ),
                    ),
                    (status, _) => match status {
                        429 => Self::new(
                            S::TOO_MANY_REQUESTS,
                            "rate_limit_error",
                            "upstream_rate_limited",
                            format!("deployment {name:?} is rate limited: {message}"),
                        ),
                        503 => gateway(
                            S::SERVICE_UNAVAILABLE,
                            "upstream_unavailable",
                            format!("deployment {name:?} is unavailable: {message}"),
                        ),
                        400 | 413 | 422 => Self::new(
                            S::BAD_REQUEST,
                            "invalid_request_error",
                            "upstream_rejected",
                            format!("deployment {name:?} refused the request: {message}"),
                        ),
                        401 | 403 => gateway(
                            S::BAD_GATEWAY,
                            "upstream_auth",
                            format!(
                                "deployment {name:?} refused Hearth's credentials ({status}: {message}); check the deployment's api_key"
                            ),
                        ),
                        404 => gateway(
                            S::BAD_GATEWAY,
                            "upstream_not_found",
                            format!(
                                "deployment {name:?} answered 404 ({message}); check its endpoint and identifier"
                            ),
                        ),
                        _ => gateway(
                            S::BAD_GATEWAY,
                            "upstream_error",
                            format!("deployment {name:?} failed ({status}): {message}"),
                        ),
                    },
                };
                err.retry_after = retry_after.clone();
                err
            }
        }
    }
}

impl From<ApiError> for OaiError {
    fn from(e: ApiError) -> Self {
        let kind = if e.status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        };
        // The shared body reader says 422 for a wrong shape, as the admin API does; OpenAI
        // says 400.
        let (status, code) = if e.status == StatusCode::UNPROCESSABLE_ENTITY {
            (StatusCode::BAD_REQUEST, "invalid_value")
        } else {
            (e.status, e.code)
        };
        OaiError {
            status,
            kind,
            code,
            message: e.message,
            param: e.field,
            retry_after: None,
        }
    }
}

impl IntoResponse for OaiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.stream_event())).into_response();
        if let Some(v) = self
            .retry_after
            .as_deref()
            .and_then(|v| HeaderValue::from_str(v).ok())
        {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}
