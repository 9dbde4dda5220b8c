//! Reading what an OpenAI-compatible server answers: a whole answer's reply and each stream
//! event's chunk. Well-formed input is read in one typed pass that skips what Hearth does not
//! use; anything unusual is read again as a JSON value, which tolerates it or names the
//! problem, so the typed pass changes no result, only the cost.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::Value;

use super::Kind;
use crate::error::{ProviderError, upstream_message};

mod plain;
use crate::types::{Chunk, ChunkExtra, Reply, Usage};

/// The parts of a stream event Hearth reads (see [`WholeAnswer`]).
#[derive(Deserialize)]
struct StreamEvent {
    #[serde(default)]
    error: Option<Value>,
    #[serde(default)]
    choices: Vec<StreamChoice>,
    #[serde(default)]
    usage: Option<WholeUsage>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    delta: Option<PlainDelta>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<Value>,
}

/// A delta with nothing but text: the usual event, read without building a map. Any other
/// field (tool-call pieces, a refusal, what a server adds) fails this reading, and the event
/// is read again as a JSON value, which keeps those fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlainDelta {
    #[serde(default)]
    #[allow(dead_code)]
    role: Option<IgnoredAny>,
    #[serde(default)]
    content: Option<String>,
    /// Reasoning text is not relayed (as the JSON-value reading drops it).
    #[serde(default)]
    #[allow(dead_code)]
    reasoning_content: Option<IgnoredAny>,
    /// Only `null` is plain; a refusal's text is kept by the JSON-value reading.
    #[serde(default)]
    #[allow(dead_code)]
    refusal: Option<()>,
}

/// Reads one stream's events in order, keeping the last usual one as a template for the next
/// (see [`plain::Template`]).
pub(super) struct EventReader {
    kind: Kind,
    template: plain::Template,
}

impl EventReader {
    pub(super) fn new(kind: Kind) -> EventReader {
        EventReader {
            kind,
            template: plain::Template::default(),
        }
    }

    /// The event's chunk, as [`event_chunk`] reads it.
    /// `data` need not be UTF-8: what is not is replaced (U+FFFD), in the text too.
    pub(super) fn chunk(&mut self, data: &[u8]) -> Result<Chunk, ProviderError> {
        match plain::chunk_in_stream(data, self.kind, &mut self.template) {
            Some(chunk) => Ok(chunk),
            None => event_chunk_typed(&crate::sse::text(data), self.kind),
        }
    }
}

/// One stream event's chunk: typed in one pass when the event is well-formed, else read as a
/// JSON value, which tolerates odd fields or names the problem as before.
#[cfg(test)]
fn event_chunk(data: impl AsRef<[u8]>, kind: Kind) -> Result<Chunk, ProviderError> {
    EventReader::new(kind).chunk(data.as_ref())
}

/// [`event_chunk`] past the plain reading.
fn event_chunk_typed(data: &str, kind: Kind) -> Result<Chunk, ProviderError> {
    let Ok(event) = serde_json::from_str::<StreamEvent>(data) else {
        return event_chunk_value(data, kind);
    };
    if event.error.is_some() {
        return Err(ProviderError::Stream(upstream_message(data.as_bytes())));
    }
    let usage = event.usage.and_then(WholeUsage::usage);
    let Some(choice) = event.choices.into_iter().next() else {
        return Ok(Chunk {
            usage,
            ..Chunk::default()
        });
    };
    let (text, delta) = match kind {
        Kind::Text => (choice.text, serde_json::Map::new()),
        Kind::Chat => (choice.delta.and_then(|d| d.content), serde_json::Map::new()),
    };
    Ok(Chunk {
        finish_reason: choice.finish_reason,
        usage,
        text: text.unwrap_or_default(),
        extra: ChunkExtra::of(delta, choice.logprobs.filter(|l| !l.is_null())),
    })
}

fn event_chunk_value(data: &str, kind: Kind) -> Result<Chunk, ProviderError> {
    let v: Value = serde_json::from_str(data)
        .map_err(|e| ProviderError::Protocol(format!("stream event is not JSON: {e}")))?;
    if !v["error"].is_null() {
        return Err(ProviderError::Stream(upstream_message(data.as_bytes())));
    }
    let choice = &v["choices"][0];
    let text = match kind {
        Kind::Text => choice["text"].as_str(),
        Kind::Chat => choice["delta"]["content"].as_str(),
    }
    .unwrap_or_default()
    .to_string();
    let delta = match kind {
        Kind::Text => serde_json::Map::new(),
        Kind::Chat => beyond_text(&choice["delta"]),
    };
    Ok(Chunk {
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        usage: usage(&v["usage"]),
        text,
        extra: ChunkExtra::of(
            delta,
            Some(choice["logprobs"].clone()).filter(|l| !l.is_null()),
        ),
    })
}

/// The parts of a whole answer Hearth reads, typed so the rest is skipped without being built.
#[derive(Deserialize)]
struct WholeAnswer {
    choices: Vec<WholeChoice>,
    #[serde(default)]
    usage: Option<WholeUsage>,
}

#[derive(Deserialize)]
struct WholeChoice {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    finish_reason: Option<String>,
    #[serde(default)]
    logprobs: Option<Value>,
}

#[derive(Deserialize)]
struct WholeUsage {
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl WholeUsage {
    /// As [`usage`] reads it from a JSON value: no prompt count, no usage.
    fn usage(self) -> Option<Usage> {
        Some(Usage {
            prompt_tokens: self.prompt_tokens?,
            completion_tokens: self.completion_tokens.unwrap_or(0),
        })
    }
}

/// A whole answer's reply. A well-formed answer is read in one typed pass; anything unusual
/// (a field of another type, a repeated key, no choices) is read again as a JSON value, which
/// tolerates it or names the problem exactly as before.
pub(super) fn answer(bytes: &[u8], kind: Kind) -> Result<Reply, ProviderError> {
    if let Ok(text) = std::str::from_utf8(bytes)
        && let Some(reply) = plain::reply(text, kind)
    {
        return Ok(reply);
    }
    if let Ok(whole) = serde_json::from_slice::<WholeAnswer>(bytes)
        && let Some(choice) = whole.choices.into_iter().next()
    {
        let (text, message) = match kind {
            Kind::Text => (choice.text, serde_json::Map::new()),
            Kind::Chat => {
                let message = choice.message.unwrap_or_default();
                let text = message["content"].as_str().map(str::to_owned);
                (text, beyond_text(&message))
            }
        };
        return Ok(Reply {
            text: text.unwrap_or_default(),
            finish_reason: choice.finish_reason,
            usage: whole.usage.and_then(WholeUsage::usage),
            message,
            logprobs: choice.logprobs.filter(|l| !l.is_null()),
        });
    }
    answer_value(bytes, kind)
}

fn answer_value(bytes: &[u8], kind: Kind) -> Result<Reply, ProviderError> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| ProviderError::Protocol(format!("answer is not JSON: {e}")))?;
    let choice = &v["choices"][0];
    let text = match kind {
        Kind::Text => choice["text"].as_str(),
        Kind::Chat => choice["message"]["content"].as_str(),
    };
    if choice.is_null() {
        return Err(ProviderError::Protocol("answer has no choices".into()));
    }
    let message = match kind {
        Kind::Text => serde_json::Map::new(),
        Kind::Chat => beyond_text(&choice["message"]),
    };
    Ok(Reply {
        text: text.unwrap_or_default().to_string(),
        finish_reason: choice["finish_reason"].as_str().map(str::to_owned),
        usage: usage(&v["usage"]),
        message,
        logprobs: Some(choice["logprobs"].clone()).filter(|l| !l.is_null()),
    })
}

fn beyond_text(message: &Value) -> serde_json::Map<String, Value> {
    message
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            !matches!(k.as_str(), "role" | "content" | "reasoning_content")
                && !v.is_null()
                && v.as_array().is_none_or(|a| !a.is_empty())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn usage(v: &Value) -> Option<Usage> {
    Some(Usage {
        prompt_tokens: v["prompt_tokens"].as_u64()?,
        completion_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The typed reading gives what the JSON-value reading gives, for usual and odd answers.
    #[test]
    fn typed_answers_read_as_the_value_reading_does() {
        let answers = [
            r#"{"id":"x","object":"text_completion","choices":[{"index":0,"text":"return a + b","logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":4,"total_tokens":11}}"#,
            r#"{"choices":[{"message":{"role":"assistant","content":"hi","tool_calls":[{"id":"t"}],"refusal":null}}],"usage":{"prompt_tokens":3}}"#,
            r#"{"choices":[{"message":{"role":"assistant","content":null,"tool_calls":[]}}]}"#,
            r#"{"choices":[{"text":"a","logprobs":{"tokens":["a"]}}],"usage":{"completion_tokens":1}}"#,
            r#"{"choices":[{"text":5,"finish_reason":7}],"usage":{"prompt_tokens":-1}}"#,
            r#"{"choices":[{"text":"a"}],"usage":{"prompt_tokens":2.5}}"#,
            r#"{"choices":[{"text":"first","text":"second"}]}"#,
            r#"{"choices":[{"text":"a"},{"text":"b"}],"usage":null}"#,
            r#"{"choices":[null]}"#,
            r#"{"choices":[]}"#,
            r#"{"choices":{}}"#,
            r#"{}"#,
            r#"[]"#,
            r#"not json"#,
        ];
        for body in answers {
            for kind in [Kind::Text, Kind::Chat] {
                let typed = answer(body.as_bytes(), kind).map_err(|e| e.to_string());
                let value = answer_value(body.as_bytes(), kind).map_err(|e| e.to_string());
                assert_eq!(typed, value, "{body}");
            }
        }
        for body in answers {
            for kind in [Kind::Text, Kind::Chat] {
                let typed = event_chunk(body, kind).map_err(|e| e.to_string());
                let value = event_chunk_value(body, kind).map_err(|e| e.to_string());
                assert_eq!(typed, value, "{body}");
            }
        }
        let events = [
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{"}}]}}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2}}"#,
            r#"{"choices":[{"text":"x","finish_reason":"length"}],"usage":null}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"error":null,"choices":[{"text":"y"}]}"#,
            r#"{"choices":[{"delta":{"content":5}}]}"#,
            r#"{"choices":[{"delta":{"role":"assistant"}}]}"#,
            r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}]}"#,
            r#"{"choices":[{"delta":{"content":"a \"q\" \u00e9\n","refusal":null}}]}"#,
            r#"{"choices":[{"delta":{"refusal":"no"}}]}"#,
            r#"{"choices":[{"delta":{"content":"x","tool_calls":[]}}]}"#,
            r#"{"choices":[{"delta":{"content":"x","added_by_server":{"a":1}}}]}"#,
            r#"{"choices":[{"delta":{"content":"x","content":"y"}}]}"#,
            r#"{"choices":[{"delta":null,"finish_reason":"stop"}]}"#,
        ];
        for body in events {
            for kind in [Kind::Text, Kind::Chat] {
                let typed = event_chunk(body, kind).map_err(|e| e.to_string());
                let value = event_chunk_value(body, kind).map_err(|e| e.to_string());
                assert_eq!(typed, value, "{body}");
            }
        }
        // The usual events of vLLM, llama-server and OpenAI are read the plain way.
        let usual = [
            r#"{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":0,"text":"def f():\n    \"x\"","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":null}"#,
            r#"{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","system_fingerprint":"fp","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1,"id":"x","model":"m","object":"chat.completion.chunk","usage":{"completion_tokens":2,"prompt_tokens":9,"total_tokens":11}}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
        ];
        for body in usual {
            for kind in [Kind::Text, Kind::Chat] {
                let fast = plain::chunk(body, kind);
                assert!(fast.is_some(), "not read the plain way: {body}");
                assert_eq!(fast, event_chunk_value(body, kind).ok(), "{body}");
            }
        }
        // The usual whole answers of vLLM, llama-server and OpenAI are read the plain way.
        let usual = [
            (Kind::Text, answers[0]),
            (Kind::Chat, answers[2]),
            (
                Kind::Chat,
                r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","reasoning_content":null,"content":"def f():\n    \"x\"","tool_calls":[]},"logprobs":null,"finish_reason":"stop","stop_reason":null}],"usage":{"prompt_tokens":9,"total_tokens":11,"completion_tokens":2,"prompt_tokens_details":null},"prompt_logprobs":null}"#,
            ),
            (
                Kind::Text,
                r#"{"choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":"length"}],"created":1,"model":"m","system_fingerprint":"b1","object":"text_completion","usage":{"completion_tokens":16,"prompt_tokens":5,"total_tokens":21},"id":"c","timings":{"prompt_n":5}}"#,
            ),
        ];
        for (kind, body) in usual {
            let fast = plain::reply(body, kind);
            assert!(
                fast.is_some() || body.contains("timings"),
                "not read the plain way: {body}"
            );
            assert_eq!(
                fast.clone().or_else(|| answer(body.as_bytes(), kind).ok()),
                answer_value(body.as_bytes(), kind).ok(),
                "{body}"
            );
        }
        let reply = answer(answers[0].as_bytes(), Kind::Text).unwrap();
        assert_eq!(reply.text, "return a + b");
        assert_eq!(
            reply.usage,
            Some(Usage {
                prompt_tokens: 7,
                completion_tokens: 4
            })
        );
    }

    /// Events and whole answers built from the parts servers send, some then edited at one
    /// byte: whenever the plain reading answers, it answers what the JSON-value reading does.
    fn event_text() -> impl Strategy<Value = String> {
        let text = || {
            let usual =
                proptest::string::string_regex(r#"([a-z {}():]|\\n|\\t|\\"|\\\\|\\/|é|✓)*"#)
                    .unwrap();
            let odd =
                proptest::string::string_regex(r#"([a-z]|\\u00e9|\\x|\\b|\\f|\\r)*"#).unwrap();
            prop_oneof![8 => usual, 1 => odd]
        };
        let value = prop_oneof![
            4 => Just("null".to_string()),
            4 => Just("1".to_string()),
            2 => Just("-0.5e3".to_string()),
            2 => Just("true".to_string()),
            2 => Just("\"s\"".to_string()),
            1 => Just("01".to_string()),
            1 => Just("{}".to_string()),
            1 => Just("[1]".to_string()),
        ];
        let count = prop_oneof![
            3 => Just("7".to_string()),
            3 => Just("0".to_string()),
            3 => Just("null".to_string()),
            1 => Just("2.5".to_string()),
            1 => Just("-1".to_string()),
            1 => Just("18446744073709551616".to_string()),
        ];
        (
            text(),
            text(),
            value.clone(),
            count.clone(),
            count,
            prop_oneof![Just("null"), Just("\"stop\""), Just("\"length\"")],
            prop_oneof![4 => 0usize..3, 1 => 3usize..9],
            value,
            proptest::collection::vec(0usize..4, 0..3),
        )
            .prop_map(|(t, c, v, p, q, finish, shape, extra, spaces)| {
                let sp = |i: usize| " \n\t".get(..spaces.get(i).copied().unwrap_or(0).min(3)).unwrap_or("");
                let choice = match shape {
                    0 => format!(r#"{{"index":0,"text":"{t}","logprobs":null,"finish_reason":{finish}}}"#),
                    1 => format!(r#"{{"index":0,"delta":{{"role":"assistant","content":"{c}"}},"finish_reason":{finish}}}"#),
                    2 => format!(r#"{{"index":0,"message":{{"role":"assistant","reasoning_content":null,"content":"{c}","tool_calls":[]}},"logprobs":null,"finish_reason":{finish}}}"#),
                    3 => format!(r#"{{"delta":{{"content":"{c}","refusal":{extra}}},"x":{extra}}}"#),
                    4 => format!(r#"{{"text":"{t}","text":"{c}"}}"#),
                    5 => format!(r#"{{"text":"{t}"}},{{"text":"{c}"}}"#),
                    6 => format!(r#"{{"message":{{"content":"{c}","tool_calls":{extra},"refusal":{extra}}},"text":{extra}}}"#),
                    7 => format!(r#"{{"message":{extra},"delta":{extra},"finish_reason":{finish}}}"#),
                    _ => format!(r#"{{"delta":{{"reasoning_content":{extra},"content":null}},"logprobs":{extra}}}"#),
                };
                format!(
                    r#"{{"id":"x",{}"created":{v},"choices":[{}{choice}],"usage":{{"prompt_tokens":{p},"completion_tokens":{q}}}{}}}"#,
                    sp(0), sp(1), sp(2)
                )
            })
    }

    proptest::proptest! {
        #[test]
        fn plain_reading_agrees_with_the_json_value_reading(
            body in event_text(),
            edit in proptest::option::weighted(0.3, (0usize..400, proptest::char::any())),
        ) {
            let mut chars: Vec<char> = body.chars().collect();
            if let Some((at, c)) = edit {
                let at = at % chars.len().max(1);
                if at < chars.len() {
                    chars[at] = c;
                }
            }
            let body: String = chars.into_iter().collect();
            for kind in [Kind::Text, Kind::Chat] {
                if let Some(fast) = plain::chunk(&body, kind) {
                    prop_assert_eq!(Some(fast), event_chunk_value(&body, kind).ok(), "{}", body);
                }
                if let Some(fast) = plain::reply(&body, kind) {
                    prop_assert_eq!(Some(fast), answer_value(body.as_bytes(), kind).ok(), "{}", body);
                }
            }
        }
    }

    /// The usual stream reads its middle events from the template: each event after the first
    /// differs only in its text, and the reader hands on each one's own text.
    #[test]
    fn a_streams_usual_events_read_from_the_template() {
        let event = |t: &str| {
            format!(
                r#"{{"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{{"index":0,"text":"{t}","logprobs":null,"finish_reason":null}}],"usage":null}}"#
            )
        };
        let mut template = plain::Template::default();
        let first =
            plain::chunk_in_stream(event("def").as_bytes(), Kind::Text, &mut template).unwrap();
        assert_eq!(first.text, "def");
        assert_eq!(
            template
                .read(event(r#" f():\n    \"x\""#).as_bytes())
                .map(|c| c.text),
            Some(" f():\n    \"x\"".to_string()),
            "read from the template"
        );
        // A quote in the new text ends the string before the template's tail: not a fit.
        let forged = event(r#"a","finish_reason":"stop"#);
        assert_eq!(template.read(forged.as_bytes()), None);
        assert_eq!(
            plain::chunk_in_stream(forged.as_bytes(), Kind::Text, &mut template),
            None,
            "a repeated finish_reason goes the general way"
        );
        let mut reader = EventReader::new(Kind::Text);
        reader.chunk(event("def").as_bytes()).unwrap();
        assert_eq!(
            reader.chunk(forged.as_bytes()).map_err(|e| e.to_string()),
            event_chunk(&forged, Kind::Text).map_err(|e| e.to_string())
        );
    }

    /// A stream's events that share their shape and differ in text, some texts with quotes,
    /// escapes and JSON that end the string early, some events edited at one character, some
    /// with a byte that is not UTF-8.
    fn stream_events() -> impl Strategy<Value = Vec<Vec<u8>>> {
        let piece = prop_oneof![
            Just("a"),
            Just(" "),
            Just(r"\n"),
            Just(r#"\""#),
            Just(r"\\"),
            Just("é"),
            Just(r"\u00e9"),
            Just(r#"""#),
            Just(r#"","finish_reason":"stop"#),
            Just(r#"","x":""#),
            Just(r#""}],"usage":{"prompt_tokens":1},"z":[{"y":""#),
        ];
        let text = proptest::collection::vec(piece, 0..5).prop_map(|p| p.concat());
        let event = (
            text,
            prop_oneof![6 => Just("null"), 1 => Just("\"stop\"")],
            proptest::option::weighted(0.1, (0usize..200, proptest::char::any())),
            proptest::option::weighted(0.1, (0usize..200, 0x80u8..=0xff)),
        );
        (0usize..3, proptest::collection::vec(event, 1..8)).prop_map(|(shape, events)| {
            events
                .into_iter()
                .map(|(t, finish, edit, raw)| {
                    let body = match shape {
                        0 => format!(
                            r#"{{"id":"c","choices":[{{"index":0,"text":"{t}","logprobs":null,"finish_reason":{finish}}}],"usage":null}}"#
                        ),
                        1 => format!(
                            r#"{{"choices":[{{"delta":{{"content":"{t}"}},"finish_reason":{finish},"index":0}}],"created":1,"model":"m"}}"#
                        ),
                        _ => format!(
                            r#"{{"choices":[{{"delta":{{"role":"assistant","content":"{t}"}},"text":"{t}","finish_reason":{finish}}}]}}"#
                        ),
                    };
                    let mut chars: Vec<char> = body.chars().collect();
                    if let Some((at, c)) = edit {
                        let at = at % chars.len();
                        chars[at] = c;
                    }
                    let mut bytes = chars.into_iter().collect::<String>().into_bytes();
                    if let Some((at, b)) = raw {
                        let at = at % bytes.len();
                        bytes[at] = b;
                    }
                    bytes
                })
                .collect()
        })
    }

    proptest::proptest! {
        #[test]
        fn a_stream_read_in_order_reads_each_event_as_it_reads_alone(events in stream_events()) {
            for kind in [Kind::Text, Kind::Chat] {
                let mut reader = EventReader::new(kind);
                for body in &events {
                    let text = String::from_utf8_lossy(body);
                    let in_stream = reader.chunk(body).map_err(|e| e.to_string());
                    let alone = event_chunk(body, kind).map_err(|e| e.to_string());
                    prop_assert_eq!(&in_stream, &alone, "{}", text);
                    // Bytes that are not UTF-8 read as the general reading reads them
                    // replaced, wherever they are.
                    let value = event_chunk_value(&text, kind).map_err(|e| e.to_string());
                    prop_assert_eq!(&alone, &value, "{}", text);
                }
            }
        }
    }
}
