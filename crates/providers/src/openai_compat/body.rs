//! What Hearth sends to an OpenAI-compatible server: the request body, serialized straight
//! from the request. Building it as a `serde_json::Value` first (a map of owned keys and
//! values, then written, then freed) cost more than the rest of the upstream call's own work.

use serde::ser::{Serialize, SerializeMap, Serializer};
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

/// A map being written, remembering which of Hearth's keys it holds (at most ten: `model`,
/// the prompt or messages, and the sampling and stream fields), without allocating.
struct Fields<M> {
    map: M,
    written: [&'static str; 10],
    count: usize,
}

impl<M: SerializeMap> Fields<M> {
    fn put<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), M::Error> {
        self.mark(key);
        self.map.serialize_entry(key, value)
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

impl Serialize for Outgoing<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `model` counts as written even when left out: it is Hearth's to name.
        let mut f = Fields {
            map: serializer.serialize_map(None)?,
            written: [""; 10],
            count: 0,
        };
        match self.model {
            Some(model) => f.put("model", model)?,
            None => f.mark("model"),
        }
        let common = match self.request {
            Request::Text(req) => {
                f.put("prompt", &req.prompt)?;
                f.put("max_tokens", &req.max_tokens)?;
                Common {
                    temperature: req.temperature,
                    top_p: req.top_p,
                    stop: &req.stop,
                    user: req.user.as_deref(),
                    extra: &req.extra,
                }
            }
            Request::Chat(req) => {
                f.put("messages", &Messages(&req.messages))?;
                if let Some(n) = req.max_tokens {
                    f.put("max_tokens", &n)?;
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
        f.put("stream", &self.stream)?;
        if let Some(t) = common.temperature {
            f.put("temperature", &t)?;
        }
        if let Some(p) = common.top_p {
            f.put("top_p", &p)?;
        }
        if !common.stop.is_empty() {
            f.put("stop", common.stop)?;
        }
        if let Some(u) = common.user {
            f.put("user", u)?;
        }
        if self.stream && self.include_usage {
            f.put("stream_options", &IncludeUsage)?;
        }
        // The client's own fields, as it sent them. Hearth's win a clash: they were derived
        // from the client's and checked.
        for (k, v) in common.extra {
            if !f.wrote(k) {
                f.map.serialize_entry(k, v)?;
            }
        }
        f.map.end()
    }
}

struct IncludeUsage;

impl Serialize for IncludeUsage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(1))?;
        map.serialize_entry("include_usage", &true)?;
        map.end()
    }
}

struct Messages<'a>(&'a [ChatMessage]);

impl Serialize for Messages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(Message))
    }
}

struct Message<'a>(&'a ChatMessage);

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("role", &m.role)?;
        // An assistant turn that only called tools has no text; OpenAI's form is null.
        let tools_only = m.content.is_empty()
            && (m.extra.contains_key("tool_calls") || m.extra.contains_key("function_call"));
        if tools_only {
            map.serialize_entry("content", &())?;
        } else {
            map.serialize_entry("content", &m.content)?;
        }
        for (k, v) in &m.extra {
            if k != "role" && k != "content" {
                map.serialize_entry(k, v)?;
            }
        }
        map.end()
    }
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
            body["stop"] = json!(stop);
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
                stop: vec!["\n\n".into()],
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
                stop: vec!["</s>".into(), "[INST]".into()],
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
                    let sent: Value =
                        serde_json::from_slice(&serde_json::to_vec(&out).unwrap()).unwrap();
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
            stop: vec!["\n\n".into()],
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(Outgoing::text(&req, true, true)).unwrap(),
            json!({"model": "m", "prompt": "p", "max_tokens": 8, "stream": true,
                   "stop": ["\n\n"], "stream_options": {"include_usage": true}})
        );
        let chat = ChatRequest {
            model: "m".into(),
            temperature: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(Outgoing::chat(&chat, false, true).with_model(None)).unwrap(),
            json!({"messages": [], "stream": false, "temperature": 0.5})
        );
    }
}
