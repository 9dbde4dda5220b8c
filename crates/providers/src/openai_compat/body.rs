//! What Hearth sends to an OpenAI-compatible server: the request body, written straight
//! from the request. Building it as a `serde_json::Value` first (a map of owned keys and
//! values, then written, then freed) cost more than the rest of the upstream call's own work.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::types::{ChatMessage, ChatRequest, TextRequest};

/// A request as the server is sent it.
pub(super) struct Outgoing<'a> {
    request: Request<'a>,
    stream: bool,
    include_usage: bool,
    /// `None` leaves `model` out (Azure's classic form names the deployment in the URL).
    model: Option<&'a str>,
}

#[derive(Clone, Copy)]
enum Request<'a> {
    Text(&'a TextRequest),
    Chat(&'a ChatRequest),
}

impl<'a> Outgoing<'a> {
    pub(super) fn text(req: &'a TextRequest, stream: bool, include_usage: bool) -> Self {
        Outgoing {
            request: Request::Text(req),
            stream,
            include_usage,
            model: Some(&req.model),
        }
    }

    pub(super) fn chat(req: &'a ChatRequest, stream: bool, include_usage: bool) -> Self {
        Outgoing {
            request: Request::Chat(req),
            stream,
            include_usage,
            model: Some(&req.model),
        }
    }

    /// Sends `model` as this name instead of the request's, or (`None`) not at all.
    pub(super) fn with_model(self, model: Option<&'a str>) -> Self {
        Outgoing { model, ..self }
    }
}

/// The fields every request shares, after the kind's own.
struct Common<'a> {
    temperature: Option<f64>,
    top_p: Option<f64>,
    stop: &'a [String],
    user: Option<&'a str>,
    extra: &'a Map<String, Value>,
}

/// A JSON object being written, remembering which of Hearth's keys it holds (at most ten:
/// `model`, the prompt or messages, and the sampling and stream fields), without allocating.
struct Fields {
    out: Vec<u8>,
    written: [&'static str; 10],
    count: usize,
}

impl Fields {
    /// `key` is one of Hearth's: plain ASCII, written as it is (serde's serializer escapes
    /// every key, which was a third of this body's cost).
    fn put<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) {
        self.mark(key);
        self.key(key);
        put_json(&mut self.out, value);
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(b',');
        }
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn mark(&mut self, key: &'static str) {
        if let Some(slot) = self.written.get_mut(self.count) {
            *slot = key;
            self.count += 1;
        }
    }

    fn wrote(&self, key: &str) -> bool {
        self.written[..self.count].contains(&key)
    }
}

/// Appends `value` as JSON. Strings, numbers and JSON values cannot fail to serialize into a
/// `Vec`; were one to, `null` keeps the body well-formed.
fn put_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    let mark = out.len();
    if serde_json::to_writer(&mut *out, value).is_err() {
        out.truncate(mark);
        out.extend_from_slice(b"null");
    }
}

impl Outgoing<'_> {
    /// The body as JSON.
    pub(super) fn to_json(&self) -> Vec<u8> {
        let size = match self.request {
            Request::Text(req) => req.prompt.len(),
            Request::Chat(req) => req.messages.iter().map(|m| m.content.len() + 32).sum(),
        };
        let mut f = Fields {
            out: Vec::with_capacity(size + 256),
            written: [""; 10],
            count: 0,
        };
        f.out.push(b'{');
        // `model` counts as written even when left out: it is Hearth's to name.
        match self.model {
            Some(model) => f.put("model", model),
            None => f.mark("model"),
        }
        let common = match self.request {
            Request::Text(req) => {
                f.put("prompt", &req.prompt);
                f.put("max_tokens", &req.max_tokens);
                Common {
                    temperature: req.temperature,
                    top_p: req.top_p,
                    stop: &req.stop,
                    user: req.user.as_deref(),
                    extra: &req.extra,
                }
            }
            Request::Chat(req) => {
                f.mark("messages");
                f.key("messages");
                messages(&mut f.out, &req.messages);
                if let Some(n) = req.max_tokens {
                    f.put("max_tokens", &n);
                }
                Common {
                    temperature: req.temperature,
                    top_p: req.top_p,
                    stop: &req.stop,
                    user: req.user.as_deref(),
                    extra: &req.extra,
                }
            }
        };
        f.put("stream", &self.stream);
        if let Some(t) = common.temperature {
            f.put("temperature", &t);
        }
        if let Some(p) = common.top_p {
            f.put("top_p", &p);
        }
        if !common.stop.is_empty() {
            f.put("stop", common.stop);
        }
        if let Some(u) = common.user {
            f.put("user", u);
        }
        if self.stream && self.include_usage {
            f.mark("stream_options");
            f.key("stream_options");
            f.out.extend_from_slice(br#"{"include_usage":true}"#);
        }
        // The client's own fields, as it sent them. Hearth's win a clash: they were derived
        // from the client's and checked.
        for (k, v) in common.extra {
            if !f.wrote(k) {
                if f.out.len() > 1 {
                    f.out.push(b',');
                }
                put_json(&mut f.out, k);
                f.out.push(b':');
                put_json(&mut f.out, v);
            }
        }
        f.out.push(b'}');
        f.out
    }
}

fn messages(out: &mut Vec<u8>, messages: &[ChatMessage]) {
    out.push(b'[');
    for (i, m) in messages.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(br#"{"role":"#);
        put_json(out, &m.role);
        out.extend_from_slice(br#","content":"#);
        // An assistant turn that only called tools has no text; OpenAI's form is null.
        let tools_only = m.content.is_empty()
            && (m.extra.contains_key("tool_calls") || m.extra.contains_key("function_call"));
        if tools_only {
            out.extend_from_slice(b"null");
        } else {
            put_json(out, &m.content);
        }
        for (k, v) in &m.extra {
            if k != "role" && k != "content" {
                out.push(b',');
                put_json(out, k);
                out.push(b':');
                put_json(out, v);
            }
        }
        out.push(b'}');
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The body as Hearth built it before, as a `serde_json::Value`: the reference the typed
    /// body must equal.
    fn reference(
        req: Request<'_>,
        stream: bool,
        include_usage: bool,
        model: Option<&str>,
    ) -> Value {
        fn pass_through(body: &mut Value, extra: &Map<String, Value>) {
            if let Some(obj) = body.as_object_mut() {
                for (k, v) in extra {
                    obj.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
        }
        let (mut body, temperature, top_p, stop, user, extra) = match req {
            Request::Text(r) => (
                json!({"model": r.model, "prompt": r.prompt, "max_tokens": r.max_tokens,
                       "stream": stream}),
                r.temperature,
                r.top_p,
                &r.stop,
                r.user.as_deref(),
                &r.extra,
            ),
            Request::Chat(r) => {
                let messages: Vec<Value> = r
                    .messages
                    .iter()
                    .map(|m| {
                        let mut out = json!({"role": m.role, "content": m.content});
                        if m.content.is_empty()
                            && (m.extra.contains_key("tool_calls")
                                || m.extra.contains_key("function_call"))
                        {
                            out["content"] = Value::Null;
                        }
                        pass_through(&mut out, &m.extra);
                        out
                    })
                    .collect();
                let mut body = json!({"model": r.model, "messages": messages, "stream": stream});
                if let Some(n) = r.max_tokens {
                    body["max_tokens"] = json!(n);
                }
                (
                    body,
                    r.temperature,
                    r.top_p,
                    &r.stop,
                    r.user.as_deref(),
                    &r.extra,
                )
            }
        };
        if let Some(t) = temperature {
            body["temperature"] = json!(t);
        }
        if let Some(p) = top_p {
            body["top_p"] = json!(p);
        }
        if !stop.is_empty() {
            body["stop"] = json!(**stop);
        }
        if let Some(u) = user {
            body["user"] = json!(u);
        }
        if stream && include_usage {
            body["stream_options"] = json!({"include_usage": true});
        }
        pass_through(&mut body, extra);
        match model {
            None => {
                body.as_object_mut().map(|o| o.remove("model"));
            }
            Some(m) => body["model"] = json!(m),
        }
        body
    }

    fn extra(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn typed_bodies_equal_the_value_built_ones() {
        let texts = [
            TextRequest {
                model: "m".into(),
                prompt: "p".into(),
                max_tokens: 8,
                stop: vec!["\n\n".into()].into(),
                ..Default::default()
            },
            TextRequest {
                model: "codestral".into(),
                prompt: "def add(a, b):\n    \"quoted\" é".into(),
                max_tokens: 64,
                temperature: Some(0.32),
                top_p: Some(1.0),
                user: Some("u-1".into()),
                extra: extra(json!({"seed": 7, "logit_bias": {"50256": -100},
                    "stream_options": {"include_usage": false}, "echo": false})),
                ..Default::default()
            },
        ];
        let chats = [
            ChatRequest {
                model: "m".into(),
                temperature: Some(0.5),
                ..Default::default()
            },
            ChatRequest {
                model: "mistral".into(),
                messages: vec![
                    ChatMessage {
                        role: "user".into(),
                        content: "hi".into(),
                        extra: extra(json!({"name": "ann"})),
                    },
                    ChatMessage {
                        role: "assistant".into(),
                        content: String::new(),
                        extra: extra(json!({"tool_calls": [{"id": "t", "type": "function"}]})),
                    },
                    ChatMessage {
                        role: "tool".into(),
                        content: String::new(),
                        extra: extra(json!({"tool_call_id": "t"})),
                    },
                ],
                max_tokens: Some(100),
                stop: vec!["</s>".into(), "[INST]".into()].into(),
                extra: extra(json!({"tools": [{"type": "function"}], "response_format":
                    {"type": "json_object"}, "stream_options": {"include_usage": false}})),
                ..Default::default()
            },
        ];
        let mut requests: Vec<Request<'_>> = texts.iter().map(Request::Text).collect();
        requests.extend(chats.iter().map(Request::Chat));
        for req in requests {
            for (stream, include_usage) in [(false, false), (true, false), (true, true)] {
                for model in [None, Some("deployment-1"), Some("same")] {
                    let mut out = match req {
                        Request::Text(r) => Outgoing::text(r, stream, include_usage),
                        Request::Chat(r) => Outgoing::chat(r, stream, include_usage),
                    };
                    let own = match model {
                        Some("same") => out.model,
                        other => other,
                    };
                    out = out.with_model(own);
                    let sent: Value = serde_json::from_slice(&out.to_json()).unwrap();
                    assert_eq!(sent, reference(req, stream, include_usage, own));
                }
            }
        }
    }

    #[test]
    fn bodies_carry_only_what_was_set() {
        let req = TextRequest {
            model: "m".into(),
            prompt: "p".into(),
            max_tokens: 8,
            stop: vec!["\n\n".into()].into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::from_slice::<Value>(&Outgoing::text(&req, true, true).to_json()).unwrap(),
            json!({"model": "m", "prompt": "p", "max_tokens": 8, "stream": true,
                   "stop": ["\n\n"], "stream_options": {"include_usage": true}})
        );
        let chat = ChatRequest {
            model: "m".into(),
            temperature: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            serde_json::from_slice::<Value>(
                &Outgoing::chat(&chat, false, true)
                    .with_model(None)
                    .to_json()
            )
            .unwrap(),
            json!({"messages": [], "stream": false, "temperature": 0.5})
        );
    }
}
