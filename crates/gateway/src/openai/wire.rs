//! The OpenAI JSON this surface reads and writes. Requests are parsed leniently (unknown
//! fields ignored, as SDKs send many); answers are written strictly in OpenAI's shapes.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};
use utoipa::ToSchema;

/// A string or a list of strings (`prompt`, `stop`).
#[derive(ToSchema)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Read by hand: serde's untagged enums copy the value into a buffer and try each variant on
/// it, which for `prompt` (the code before the cursor) cost a copy of the whole prompt.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut all = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(s) = seq.next_element::<String>()? {
                    all.push(s);
                }
                Ok(OneOrMany::Many(all))
            }
        }
        d.deserialize_any(V)
    }
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

#[derive(Deserialize, Default, ToSchema)]
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
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
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
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub seed: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub presence_penalty: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub frequency_penalty: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub logit_bias: Option<Map<String, Value>>,
    /// Refused: the answer is cut at stops and the suffix, so token logprobs would not match it.
    #[serde(default)]
    pub logprobs: Option<u32>,
    /// Refused when true: the prompt Hearth sends is the family's template, not the client's.
    #[serde(default)]
    pub echo: Option<bool>,
    #[serde(default)]
    pub best_of: Option<u32>,
    /// Mistral's FIM API name for `seed`.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub random_seed: Option<Number>,
    /// Mistral's FIM API and vLLM: the fewest tokens to generate.
    #[serde(default)]
    pub min_tokens: Option<u32>,
    /// Fields Hearth does not know (vLLM's `top_k`, `min_p`, `repetition_penalty`; OpenAI's
    /// `store`, `metadata`…): passed on where the platform takes OpenAI's fields, refused by
    /// name where it does not — never dropped.
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: Map<String, Value>,
}

impl CompletionBody {
    /// The fields sent upstream as the client wrote them.
    pub(crate) fn passthrough(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put(
            &mut out,
            "seed",
            self.seed.as_ref().or(self.random_seed.as_ref()).as_ref(),
        );
        put(&mut out, "presence_penalty", self.presence_penalty.as_ref());
        put(
            &mut out,
            "frequency_penalty",
            self.frequency_penalty.as_ref(),
        );
        put(&mut out, "logit_bias", self.logit_bias.as_ref());
        put(&mut out, "min_tokens", self.min_tokens.as_ref());
        out.extend(self.other.clone());
        out
    }
}

fn put<T: Serialize>(out: &mut Map<String, Value>, name: &str, value: Option<&T>) {
    if let Some(v) = value
        && let Ok(v) = serde_json::to_value(v)
    {
        out.insert(name.to_string(), v);
    }
}

#[derive(Deserialize, ToSchema)]
pub(crate) struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub text: Option<String>,
}

#[derive(ToSchema)]
#[serde(untagged)]
pub(crate) enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

/// Read by hand, as [`OneOrMany`]: a message's text was copied once more for serde's untagged
/// enum. A value of neither shape is refused with the untagged enum's words.
impl<'de> Deserialize<'de> for MessageContent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NEITHER: &str = "data did not match any variant of untagged enum MessageContent";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MessageContent;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or a list of content parts")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<MessageContent, E> {
                Ok(MessageContent::Text(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<MessageContent, A::Error> {
                let mut parts = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
                while let Some(p) = seq.next_element::<ContentPart>()? {
                    parts.push(p);
                }
                Ok(MessageContent::Parts(parts))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<MessageContent, E> {
                Err(E::custom(NEITHER))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<MessageContent, E> {
                Err(E::custom(NEITHER))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<MessageContent, E> {
                Err(E::custom(NEITHER))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<MessageContent, E> {
                Err(E::custom(NEITHER))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<MessageContent, E> {
                Err(E::custom(NEITHER))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                _: A,
            ) -> Result<MessageContent, A::Error> {
                Err(serde::de::Error::custom(NEITHER))
            }
        }
        d.deserialize_any(V)
    }
}

#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct ChatMessageIn {
    pub role: String,
    #[serde(default)]
    pub content: Option<MessageContent>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tool_calls: Option<Vec<Value>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub function_call: Option<Map<String, Value>>,
}

impl ChatMessageIn {
    /// The message's fields beyond role and content, sent upstream as they came.
    pub(crate) fn passthrough(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put(&mut out, "tool_calls", self.tool_calls.as_ref());
        put(&mut out, "tool_call_id", self.tool_call_id.as_ref());
        put(&mut out, "name", self.name.as_ref());
        put(&mut out, "function_call", self.function_call.as_ref());
        out
    }
}

#[derive(Deserialize, Default, ToSchema)]
pub(crate) struct ChatBody {
    #[serde(default)]
    pub model: Option<String>,
    pub messages: Vec<ChatMessageIn>,
    #[serde(default)]
    pub max_tokens: Option<u32>,
    #[serde(default)]
    pub max_completion_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
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
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub tools: Option<Vec<Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    /// The legacy form of `tools`.
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub functions: Option<Vec<Value>>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub function_call: Option<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_format: Option<Map<String, Value>>,
    #[serde(default)]
    pub logprobs: Option<bool>,
    #[serde(default)]
    pub top_logprobs: Option<u32>,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub seed: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub presence_penalty: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<f64>)]
    pub frequency_penalty: Option<Number>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub logit_bias: Option<Map<String, Value>>,
    /// Not OpenAI's, but vLLM, llama.cpp and Ollama take it (and Anthropic's door sends it).
    #[serde(default)]
    pub top_k: Option<u32>,
    /// Fields Hearth does not know (vLLM's `min_p`, `repetition_penalty`; OpenAI's
    /// `store`, `metadata`…): passed on where the platform takes OpenAI's fields, refused by
    /// name where it does not — never dropped.
    #[serde(flatten)]
    #[schema(ignore)]
    pub other: Map<String, Value>,
}

impl ChatBody {
    /// The fields sent upstream as the client wrote them, in the order refusals name them.
    pub(crate) fn passthrough(&self) -> Map<String, Value> {
        let mut out = Map::new();
        put(&mut out, "tools", self.tools.as_ref());
        put(&mut out, "tool_choice", self.tool_choice.as_ref());
        put(
            &mut out,
            "parallel_tool_calls",
            self.parallel_tool_calls.as_ref(),
        );
        put(&mut out, "functions", self.functions.as_ref());
        put(&mut out, "function_call", self.function_call.as_ref());
        put(&mut out, "response_format", self.response_format.as_ref());
        put(&mut out, "logprobs", self.logprobs.as_ref());
        put(&mut out, "top_logprobs", self.top_logprobs.as_ref());
        put(&mut out, "seed", self.seed.as_ref());
        put(&mut out, "presence_penalty", self.presence_penalty.as_ref());
        put(
            &mut out,
            "frequency_penalty",
            self.frequency_penalty.as_ref(),
        );
        put(&mut out, "logit_bias", self.logit_bias.as_ref());
        put(&mut out, "top_k", self.top_k.as_ref());
        out.extend(self.other.clone());
        out
    }
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
    /// Null when the model only called tools.
    pub content: Option<&'a str>,
    /// `tool_calls`, `function_call`, `refusal`, as the model server sent them.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub more: &'a Map<String, Value>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatChoice<'a> {
    pub index: u32,
    pub message: ChatMessageOut<'a>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<&'a Value>,
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
    /// Pieces of `tool_calls` (and `function_call`), as the model server sent them.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub more: Option<&'a Map<String, Value>>,
}

#[derive(Serialize, ToSchema)]
pub(crate) struct ChatChunkChoice<'a> {
    pub index: u32,
    pub delta: Delta<'a>,
    #[schema(value_type = Option<Object>)]
    pub logprobs: Option<&'a Value>,
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

/// A 200 answer with `body` as JSON. Serialized straight into a buffer sized for a usual
/// answer; axum's `Json` starts at 128 bytes and goes through an `io::Write` adapter, which
/// cost about twice as many instructions for these small bodies.
pub(crate) fn json_answer<T: Serialize>(body: &T) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut buf = Vec::with_capacity(512);
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => (
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            buf,
        )
            .into_response(),
        // Hearth's answer types always serialize; kept an answer rather than a panic.
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot serialize the answer: {e}"),
        )
            .into_response(),
    }
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

    /// The hand-written readings of `prompt`/`stop` and message content: both shapes read, and
    /// a value of neither shape refused naming the field.
    #[test]
    fn strings_or_lists_read_and_refuse_by_hand() {
        let body: CompletionBody = parse(br#"{"prompt": "a\nb", "stop": ["x", "y"]}"#).unwrap();
        assert!(matches!(body.prompt, Some(OneOrMany::One(p)) if p == "a\nb"));
        assert_eq!(
            body.stop.map(OneOrMany::into_vec),
            Some(vec!["x".into(), "y".into()])
        );
        for (json, field) in [
            (r#"{"prompt": 5}"#, "prompt"),
            (r#"{"prompt": ["a", 5]}"#, "prompt[1]"),
            (r#"{"prompt": "a", "stop": {"x": 1}}"#, "stop"),
        ] {
            let e = parse::<CompletionBody>(json.as_bytes()).err().unwrap();
            assert_eq!(e.field.as_deref(), Some(field), "{json}: {}", e.message);
        }
        let e = parse::<CompletionBody>(br#"{"prompt": 5}"#).err().unwrap();
        assert!(
            e.message.contains("a string or a list of strings"),
            "{}",
            e.message
        );
        let chat: ChatBody = parse(
            br#"{"messages": [{"role": "user", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "yo"}]}]}"#,
        )
        .unwrap();
        assert!(matches!(&chat.messages[0].content, Some(MessageContent::Text(t)) if t == "hi"));
        assert!(
            matches!(&chat.messages[1].content, Some(MessageContent::Parts(p)) if p.len() == 1)
        );
        for content in ["5", "true", "{}"] {
            let json = format!(r#"{{"messages": [{{"role": "user", "content": {content}}}]}}"#);
            let e = parse::<ChatBody>(json.as_bytes()).err().unwrap();
            assert_eq!(e.field.as_deref(), Some("messages[0].content"));
            assert!(e.message.contains("accepted shapes"), "{}", e.message);
        }
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
