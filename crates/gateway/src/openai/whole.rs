//! Whole (non-streamed) answers in their usual shape — one choice, text only — written piece
//! by piece. The field names are fixed, so only the values need escaping; serializing the
//! structs escaped every name again and cost about as much as reading the model server's
//! answer. Anything else (a message with tool calls, logprobs) is serialized as before. The
//! bytes are exactly serde's (see the tests).

use axum::response::Response;

use super::frames::{put_head, put_opt_str, put_str, put_u64};
use super::wire::{ChatCompletion, TextCompletion, UsageOut, json_answer};

/// `text_completion` with one choice.
pub(crate) fn text(body: &TextCompletion<'_>) -> Response {
    let [choice] = body.choices.as_slice() else {
        return json_answer(body);
    };
    let mut buf = head(body.id, body.object, body.created, body.model, choice.text);
    buf.extend_from_slice(br#""text":"#);
    put_str(&mut buf, choice.text);
    buf.extend_from_slice(br#","logprobs":null,"finish_reason":"#);
    put_opt_str(&mut buf, choice.finish_reason);
    buf.extend_from_slice(b"}]");
    match body.usage {
        None => {}
        Some(None) => buf.extend_from_slice(br#","usage":null"#),
        Some(Some(u)) => usage(&mut buf, u),
    }
    buf.push(b'}');
    answer(buf)
}

/// `chat.completion` with one choice whose message is the assistant's text alone.
pub(crate) fn chat(body: &ChatCompletion<'_>) -> Response {
    let [choice] = body.choices.as_slice() else {
        return json_answer(body);
    };
    if !choice.message.more.is_empty() || choice.logprobs.is_some() {
        return json_answer(body);
    }
    let content = choice.message.content;
    let mut buf = head(
        body.id,
        body.object,
        body.created,
        body.model,
        content.unwrap_or_default(),
    );
    buf.extend_from_slice(br#""message":{"role":"#);
    put_str(&mut buf, choice.message.role);
    buf.extend_from_slice(br#","content":"#);
    put_opt_str(&mut buf, content);
    buf.extend_from_slice(br#"},"logprobs":null,"finish_reason":"#);
    put_str(&mut buf, choice.finish_reason);
    buf.extend_from_slice(b"}]");
    if let Some(u) = body.usage {
        usage(&mut buf, u);
    }
    buf.push(b'}');
    answer(buf)
}

/// A buffer for the answer, started with its head.
fn head(id: &str, object: &'static str, created: u64, model: &str, text: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(320 + text.len());
    put_head(&mut buf, id, object, created, model);
    buf
}

fn usage(buf: &mut Vec<u8>, u: UsageOut) {
    buf.extend_from_slice(br#","usage":{"prompt_tokens":"#);
    put_u64(buf, u.prompt_tokens);
    buf.extend_from_slice(br#","completion_tokens":"#);
    put_u64(buf, u.completion_tokens);
    buf.extend_from_slice(br#","total_tokens":"#);
    put_u64(buf, u.total_tokens);
    buf.push(b'}');
}

fn answer(buf: Vec<u8>) -> Response {
    use axum::response::IntoResponse;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/json"),
        )],
        buf,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value, json};

    use serde::Serialize;

    use super::*;
    use crate::openai::frames::tests::{TEXTS, text_completion};
    use crate::openai::wire::{ChatChoice, ChatMessageOut};

    const IDS: [&str; 2] = ["cmpl-0123456789abcdef", "chatcmpl-\"odd\"\\id"];
    const MODELS: [&str; 2] = ["codestral", "my \"model\" é"];

    async fn bytes(response: Response) -> Vec<u8> {
        let (parts, body) = response.into_parts();
        assert_eq!(parts.status, 200);
        assert_eq!(parts.headers["content-type"], "application/json");
        axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap()
            .to_vec()
    }

    fn serde<T: Serialize>(value: &T) -> Vec<u8> {
        serde_json::to_vec(value).unwrap()
    }

    fn usages() -> [Option<UsageOut>; 2] {
        [
            None,
            Some(UsageOut {
                prompt_tokens: 12,
                completion_tokens: u64::MAX - 12,
                total_tokens: u64::MAX,
            }),
        ]
    }

    #[tokio::test]
    async fn text_answers_are_what_serializing_gives() {
        for (id, model) in IDS.into_iter().zip(MODELS) {
            for text in TEXTS {
                for finish in [None, Some("stop"), Some("odd \"reason\"")] {
                    for usage in usages().into_iter().map(Some).chain(std::iter::once(None)) {
                        let body = text_completion(id, 1_764_561_600, model, text, finish, usage);
                        assert_eq!(
                            String::from_utf8(bytes(super::text(&body)).await).unwrap(),
                            String::from_utf8(serde(&body)).unwrap()
                        );
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn chat_answers_are_what_serializing_gives() {
        let tools: Map<String, Value> = json!({"tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": "{}"}}]})
        .as_object()
        .unwrap()
        .clone();
        let no_more = Map::new();
        let logprobs = json!({"content": []});
        for (id, model) in IDS.into_iter().zip(MODELS) {
            for content in TEXTS.into_iter().map(Some).chain([None]) {
                for usage in usages() {
                    // The last two take serde's way: they must come out the same either way.
                    for (more, lp) in [
                        (&no_more, None),
                        (&tools, None),
                        (&no_more, Some(&logprobs)),
                    ] {
                        let body = ChatCompletion {
                            id,
                            object: "chat.completion",
                            created: 7,
                            model,
                            choices: vec![ChatChoice {
                                index: 0,
                                message: ChatMessageOut {
                                    role: "assistant",
                                    content,
                                    more,
                                },
                                logprobs: lp,
                                finish_reason: "stop",
                            }],
                            usage,
                        };
                        assert_eq!(
                            String::from_utf8(bytes(super::chat(&body)).await).unwrap(),
                            String::from_utf8(serde(&body)).unwrap()
                        );
                    }
                }
            }
        }
    }
}
