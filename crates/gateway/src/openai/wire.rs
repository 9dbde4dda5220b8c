//! The OpenAI JSON this surface reads and writes. Requests are parsed leniently (unknown
//! fields ignored, as SDKs send many); answers are written strictly in OpenAI's shapes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub(crate) fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct CompletionBody {
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub prompt: Option<OneOrMany>,
    #[serde(default)]
    pub suffix: Option<String>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub stop: Option<OneOrMany>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChatMessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ChatBody {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessageIn>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f32>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub stop: Option<OneOrMany>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub n: Option<u32>,
}

#[derive(Serialize, Clone, Copy, ToSchema)]
pub(crate) struct UsageOut {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl From<hearth_providers::Usage> for UsageOut {
    fn from(u: hearth_providers::Usage) -> Self {
        UsageOut {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub(crate) struct TextChoice<'a> {
    pub index: u32,
    pub text: &'a str,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

/// `text_completion`: the whole answer, and each streamed chunk.
#[derive(Serialize, ToSchema)]
pub(crate) struct TextCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<TextChoice<'a>>,
    /// Absent when not asked for; `null` on stream chunks when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageOut>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatMessageOut<'a> {
    pub role: &'static str,
    pub content: &'a str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatChoice<'a> {
    pub index: u32,
    pub message: ChatMessageOut<'a>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    pub finish_reason: &'a str,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatCompletion<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChatChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageOut>,
}

#[derive(Serialize, Default, ToSchema)]
pub(crate) struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<&'a str>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<()>,
    pub finish_reason: Option<&'a str>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatChunk<'a> {
    pub id: &'a str,
    pub object: &'static str,
    pub created: u64,
    pub model: &'a str,
    pub choices: Vec<ChatChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Option<UsageOut>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::parse;
    use crate::test_json::{edited, json_like};
    use axum::http::StatusCode;
    use proptest::prelude::*;

    const NAMES: &[&str] = &[
        "model",
        "prompt",
        "suffix",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
        "include_usage",
        "user",
        "n",
        "messages",
        "role",
        "content",
        "type",
        "text",
    ];

    /// `extract::parse` (every OpenAI route's body) into these types: a bad body is a 400 (not JSON) or a 422 (wrong shape) naming a field, never a panic.
    fn check(body: &[u8]) -> Result<(), TestCaseError> {
        for result in [
            parse::<CompletionBody>(body).map(|_| ()),
            parse::<ChatBody>(body).map(|_| ()),
        ] {
            if let Err(e) = result {
                prop_assert!(
                    e.status == StatusCode::BAD_REQUEST
                        || e.status == StatusCode::UNPROCESSABLE_ENTITY,
                    "{}",
                    e.status
                );
                if e.status == StatusCode::UNPROCESSABLE_ENTITY {
                    prop_assert!(e.field.is_some());
                }
            }
        }
        Ok(())
    }

    fn completion_body() -> serde_json::Value {
        serde_json::json!({"model": "codestral", "prompt": ["def f():"], "suffix": "\n", "max_tokens": 64,
            "temperature": 0.2, "top_p": 0.9, "stop": "\n\n", "stream": true,
            "stream_options": {"include_usage": true}, "user": "u", "n": 1})
    }

    fn chat_body() -> serde_json::Value {
        serde_json::json!({"model": "mistral", "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image_url"}]}],
            "max_tokens": 64, "max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9,
            "stop": ["x", "y"], "stream": false, "stream_options": {"include_usage": false}, "user": "u", "n": 1})
    }

    #[test]
    fn the_templates_are_valid() {
        assert!(parse::<CompletionBody>(completion_body().to_string().as_bytes()).is_ok());
        assert!(parse::<ChatBody>(chat_body().to_string().as_bytes()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bytes_are_refused_or_parsed(body in proptest::collection::vec(any::<u8>(), 0..512)) {
            check(&body)?;
        }

        #[test]
        fn arbitrary_json_is_refused_or_parsed(body in json_like(NAMES)) {
            check(body.to_string().as_bytes())?;
        }

        #[test]
        fn edited_completion_bodies_are_refused_or_parsed(body in edited(completion_body(), NAMES)) {
            check(body.to_string().as_bytes())?;
        }

        #[test]
        fn edited_chat_bodies_are_refused_or_parsed(body in edited(chat_body(), NAMES)) {
            check(body.to_string().as_bytes())?;
        }
    }
}
