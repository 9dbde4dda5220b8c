//! `ApiJson`: reads a JSON body so that every way it can be wrong gets the API's own error
//! body — 400 for bytes that are not JSON, 413 past the size limit, 415 for another media
//! type, 422 naming the field for JSON of the wrong shape (unknown fields included).

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_json(req, state).await.map(ApiJson)
    }
}

/// Reads and decodes a JSON body, with every failure as an [`ApiError`] (which the OpenAI
/// surface re-shapes into its own error body).
pub(crate) async fn read_json<S: Send + Sync, T: DeserializeOwned>(
    req: Request,
    state: &S,
) -> Result<T, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE)
        && !is_json(ct)
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ));
    }
    let bytes = read_body(req, state).await?;
    parse(&bytes)
}

/// `application/json` or any `…+json` type, parameters aside, in any case.
fn is_json(content_type: &header::HeaderValue) -> bool {
    // What nearly every client sends, compared before anything is split or trimmed.
    if content_type.as_bytes() == b"application/json" {
        return true;
    }
    content_type
        .to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("application/json")
                || v.len() >= 5 && v.as_bytes()[v.len() - 5..].eq_ignore_ascii_case(b"+json")
        })
}

/// The raw body, for routes that decode it themselves, with the same errors as [`ApiJson`].
pub(crate) struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(RawBody)
    }
}

/// Reads the whole body: 413 past the size limit, 408 when the client stops sending (the
/// body timeout layer in `lib.rs` ends the wait), 400 for a body cut off.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("request body is larger than {} bytes", crate::BODY_LIMIT),
            )
        } else if timed_out(&rejection) {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "the request body stopped arriving before it was complete; send the whole body without pausing",
            )
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("could not read the request body: {}", rejection.body_text()),
            )
        }
    })
}

fn timed_out(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<crate::body_timeout::BodyTimedOut>() {
            return true;
        }
        cause = c.source();
    }
    false
}

pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // The usual body, a well-formed object of the right shape, is decoded in one pass. Any
    // other (and a duplicate key, which the pass below takes as its last value) goes the way
    // below, which names what is wrong: the outcome is the same, only slower.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
        && let Ok(parsed) = serde_json::from_slice::<T>(bytes)
    {
        return Ok(parsed);
    }
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    // Every body the API takes is an object; serde would also accept a struct as an array.
    if !value.is_object() {
        return Err(ApiError::invalid(
            "body",
            "request body must be a JSON object",
        ));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        // serde names unknown and missing fields only in its message.
        let named = ["unknown field `", "missing field `"]
            .iter()
            .find_map(|p| message.strip_prefix(p))
            .and_then(|rest| rest.split('`').next());
        let field = match (named, path.as_str()) {
            (Some(name), ".") => name.to_string(),
            // For unknown fields the path already ends in the field.
            (Some(name), p) if p == name || p.ends_with(&format!(".{name}")) => p.to_string(),
            (Some(name), parent) => format!("{parent}.{name}"),
            (None, p) => p.to_string(),
        };
        let message = if message.starts_with("unknown field") {
            format!("{message}; remove `{field}`")
        } else if message.starts_with("missing field") {
            format!("`{field}` is required")
        } else {
            format!("`{field}`: {}", plain_words(&message))
        };
        ApiError::invalid(field, message)
    })
}

/// serde's messages name Rust types (`u32`, `struct StreamOptions`, `untagged enum …`), which
/// mean nothing to an API client; this says the same in JSON's terms.
pub(crate) fn plain_words(message: &str) -> String {
    if message.starts_with("data did not match any variant of untagged enum") {
        return "this value has none of the accepted shapes (see the API reference for the field)"
            .to_string();
    }
    let rest = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    let Some((got, expected)) = rest.and_then(|r| r.rsplit_once(", expected ")) else {
        return message.to_string();
    };
    let expected = match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => format!(
            "a whole number from 0 to {}",
            match expected {
                "u8" => u64::from(u8::MAX),
                "u16" => u64::from(u16::MAX),
                "u32" => u64::from(u32::MAX),
                _ => u64::MAX,
            }
        ),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_string(),
        "f32" | "f64" => "a number".to_string(),
        "a sequence" => "a list".to_string(),
        "a map" => "an object".to_string(),
        e if e.starts_with("struct ") || e.starts_with("a map") => "an object".to_string(),
        e if e.contains("enum ") || e.contains("variant") => {
            "one of the accepted values".to_string()
        }
        e => e.to_string(),
    };
    let got = match got {
        "map" => "an object".to_string(),
        "sequence" => "a list".to_string(),
        "null" | "unit value" => "null".to_string(),
        g => g
            .strip_prefix("string ")
            .or_else(|| g.strip_prefix("integer "))
            .or_else(|| g.strip_prefix("floating point "))
            .or_else(|| g.strip_prefix("boolean "))
            .unwrap_or(g)
            .trim_matches('`')
            .to_string(),
    };
    format!("expected {expected}, got {got}")
}

/// For PATCH bodies: tells an absent field (`None`) from an explicit `null` (`Some(None)`).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    serde::Deserialize::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::{header, is_json, plain_words};

    #[test]
    fn json_content_types() {
        for (ct, json) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            (" application/json ;charset=utf-8", true),
            ("application/vnd.api+json", true),
            ("application/merge-patch+JSON", true),
            ("text/plain", false),
            ("json", false),
            ("+json", true),
            ("application/jsonx", false),
            ("", false),
        ] {
            let value = header::HeaderValue::from_str(ct).unwrap();
            assert_eq!(is_json(&value), json, "{ct:?}");
        }
    }

    #[test]
    fn serde_messages_lose_their_rust_type_names() {
        for (serde, plain) in [
            (
                "invalid type: string \"hot\", expected f32",
                "expected a number, got \"hot\"",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "expected a whole number from 0 to 4294967295, got -1",
            ),
            (
                "invalid type: string \"yes\", expected struct StreamOptions",
                "expected an object, got \"yes\"",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list, got an object",
            ),
            (
                "invalid type: null, expected a string",
                "expected a string, got null",
            ),
        ] {
            assert_eq!(plain_words(serde), plain);
        }
        let untagged =
            plain_words("data did not match any variant of untagged enum MessageContent");
        assert!(!untagged.contains("MessageContent"), "{untagged}");
    }
}
