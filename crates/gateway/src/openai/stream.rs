//! Relaying a streamed answer to the client: each upstream chunk goes out as soon as it is
//! cleaned, in OpenAI's exact SSE framing. Dropping the relay (the client went away) drops the
//! upstream stream, which closes its connection: the model server stops generating.

use std::collections::VecDeque;

use bytes::Bytes;
use futures_util::{FutureExt, Stream, StreamExt};
use hearth_prompts::StopScanner;
use hearth_providers::{ChunkStream, Usage};
use serde::Serialize;
use tokio::time::Instant;

use crate::openai::error::OaiError;
use crate::openai::frames::Frames;
use crate::openai::wire::{ChatChunk, ChatChunkChoice, Delta, TextCompletion, UsageOut};
use crate::telemetry::Exchange;

/// Frames gathered into one piece at most (a piece may pass it by its last frame).
const GATHER_BYTES: usize = 8 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Text,
    Chat,
}

/// How the relayed chunks are framed for the client.
pub(crate) struct Framing {
    pub shape: Shape,
    pub id: String,
    /// The deployment name, shown as `model`.
    pub model: String,
    pub include_usage: bool,
}

pub(crate) struct Relay {
    pub upstream: ChunkStream,
    pub scanner: Option<StopScanner>,
    pub shape: Shape,
    pub id: String,
    pub created: u64,
    pub model: String,
    pub include_usage: bool,
    /// Taken when recorded; dropped unrecorded (the client left), it records 499 itself.
    pub exchange: Option<Exchange>,
    frames: Frames,
    sent_role: bool,
    usage: Option<Usage>,
    finish: Option<String>,
    out: VecDeque<Bytes>,
    done: bool,
}

impl Relay {
    pub(crate) fn new(
        upstream: ChunkStream,
        scanner: Option<StopScanner>,
        framing: Framing,
        exchange: Exchange,
    ) -> Relay {
        let created = super::now_secs();
        let frames = Frames::new(
            framing.shape,
            &framing.id,
            created,
            &framing.model,
            framing.include_usage,
        );
        Relay {
            upstream,
            scanner,
            shape: framing.shape,
            id: framing.id,
            created,
            model: framing.model,
            include_usage: framing.include_usage,
            exchange: Some(exchange),
            frames,
            sent_role: false,
            usage: None,
            finish: None,
            out: VecDeque::new(),
            done: false,
        }
    }

    /// The answer's frames. Each item is every frame ready at that moment (already queued, or
    /// already read from the model server): events that arrived together are handed on, and
    /// written to the client, once, instead of once each. Nothing waits to be gathered.
    pub(crate) fn into_frames(self) -> impl Stream<Item = Bytes> + Send {
        futures_util::stream::unfold(self, |mut r| async move {
            let first = r.next_bytes().await?;
            let gathered = r.gather(first);
            Some((gathered, r))
        })
    }

    /// `first`, followed by the frames that are ready without waiting, up to [`GATHER_BYTES`].
    /// Only frames already made or events already decoded (the platform streams count them in
    /// `size_hint`) are taken: polling the upstream for more would, on a slow stream, arm a
    /// timer and read a socket with nothing in it, once per chunk.
    fn gather(&mut self, first: Bytes) -> Bytes {
        let mut buf: Option<Vec<u8>> = None;
        while buf.as_ref().map_or(first.len(), Vec::len) < GATHER_BYTES
            && (!self.out.is_empty() || self.upstream.size_hint().0 > 0)
        {
            // Cancel-safe: `next_bytes` changes nothing before its only await, the upstream
            // stream's next item, and a stream keeps its own state when that is dropped.
            let Some(Some(more)) = self.next_bytes().now_or_never() else {
                break;
            };
            buf.get_or_insert_with(|| {
                let mut b = Vec::with_capacity(first.len() + more.len() + 256);
                b.extend_from_slice(&first);
                b
            })
            .extend_from_slice(&more);
        }
        buf.map_or(first, Bytes::from)
    }

    async fn next_bytes(&mut self) -> Option<Bytes> {
        loop {
            if self.shape == Shape::Chat && !self.sent_role {
                // The role goes out with the first event the model server sends, not on its
                // own before it: one write instead of two, and the client's first chunk then
                // says when the model answered.
                self.sent_role = true;
                let role = self.chat_chunk(Some("assistant"), Some(""), None);
                self.out.push_back(role);
            } else if let Some(b) = self.out.pop_front() {
                return Some(b);
            } else if self.done {
                return None;
            }
            let waiting = Instant::now();
            let next = self.upstream.next().await;
            let received = Instant::now();
            if let Some(x) = self.exchange.as_mut() {
                x.upstream_time += received - waiting;
            }
            match next {
                Some(Ok(chunk)) => {
                    let text = match self.scanner.as_mut() {
                        Some(s) => s.push(&chunk.text),
                        None => chunk.text,
                    };
                    if chunk.usage.is_some() {
                        self.usage = chunk.usage;
                    }
                    if chunk.finish_reason.is_some() {
                        self.finish = chunk.finish_reason;
                    }
                    if self.shape == Shape::Chat
                        && (!chunk.delta.is_empty() || chunk.logprobs.is_some())
                    {
                        // Tool-call pieces and logprobs go out with the text they came with;
                        // chat answers are not cut, so nothing is held back here.
                        if let Some(x) = self.exchange.as_mut() {
                            x.record_text(&text);
                        }
                        let bytes = self.chat_chunk_with(
                            None,
                            Some(&text).filter(|t| !t.is_empty()).map(|t| t.as_str()),
                            None,
                            Some(&chunk.delta).filter(|d| !d.is_empty()),
                            chunk.logprobs.as_ref(),
                        );
                        self.out.push_back(bytes);
                    } else {
                        self.emit_text(&text);
                    }
                    if self.scanner.as_ref().is_some_and(StopScanner::is_done) {
                        // A stop sequence ended the answer: stop reading the model server.
                        self.finish = Some("stop".into());
                        self.close(200, None);
                    }
                }
                Some(Err(e)) => {
                    let err = OaiError::upstream(&self.model, &e);
                    let event = sse(&err.stream_event());
                    self.out.push_back(event);
                    self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
                    self.done = true;
                    if let Some(x) = self.exchange.take() {
                        x.finish(err.status.as_u16(), Some(&err.message));
                    }
                }
                None => {
                    if let Some(rest) = self.scanner.as_mut().map(StopScanner::finish) {
                        self.emit_text(&rest);
                    }
                    self.close(200, None);
                }
            }
            if let Some(x) = self.exchange.as_mut() {
                x.overhead += received.elapsed();
            }
        }
    }

    fn emit_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(x) = self.exchange.as_mut() {
            x.record_text(text);
        }
        let bytes = match self.shape {
            Shape::Text => self.text_chunk(text, None),
            Shape::Chat => self.chat_chunk(None, Some(text), None),
        };
        self.out.push_back(bytes);
    }

    fn close(&mut self, status: u16, error: Option<&str>) {
        let finish = self.finish.as_deref().unwrap_or("stop");
        let last = match self.shape {
            Shape::Text => self.text_chunk("", Some(finish)),
            Shape::Chat => self.chat_chunk(None, None, Some(finish)),
        };
        self.out.push_back(last);
        if self.include_usage
            && let Some(u) = self.usage
        {
            let usage_chunk = self.usage_chunk(u.into());
            self.out.push_back(usage_chunk);
        }
        self.out.push_back(Bytes::from_static(b"data: [DONE]\n\n"));
        self.done = true;
        if let Some(mut x) = self.exchange.take() {
            x.usage = self.usage;
            x.finish(status, error);
        }
    }

    fn usage_field(&self) -> Option<Option<UsageOut>> {
        self.include_usage.then_some(None)
    }

    fn text_chunk(&self, text: &str, finish: Option<&str>) -> Bytes {
        self.frames.text(text, finish)
    }

    fn chat_chunk(
        &self,
        role: Option<&'static str>,
        content: Option<&str>,
        finish: Option<&str>,
    ) -> Bytes {
        self.frames.chat(role, content, finish)
    }

    /// A chat chunk carrying tool-call pieces or logprobs, which the usual frames do not.
    fn chat_chunk_with(
        &self,
        role: Option<&'static str>,
        content: Option<&str>,
        finish: Option<&str>,
        more: Option<&serde_json::Map<String, serde_json::Value>>,
        logprobs: Option<&serde_json::Value>,
    ) -> Bytes {
        sse(&ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChatChunkChoice {
                index: 0,
                delta: Delta {
                    role,
                    content,
                    more,
                },
                logprobs,
                finish_reason: finish,
            }],
            usage: self.usage_field(),
        })
    }

    fn usage_chunk(&self, usage: UsageOut) -> Bytes {
        match self.shape {
            Shape::Text => sse(&TextCompletion {
                id: &self.id,
                object: "text_completion",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(usage)),
            }),
            Shape::Chat => sse(&ChatChunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(usage)),
            }),
        }
    }
}

fn sse<T: Serialize>(value: &T) -> Bytes {
    let mut buf = Vec::with_capacity(256);
    buf.extend_from_slice(b"data: ");
    // Serialising these plain structs cannot fail.
    if serde_json::to_writer(&mut buf, value).is_err() {
        buf.extend_from_slice(b"{}");
    }
    buf.extend_from_slice(b"\n\n");
    Bytes::from(buf)
}
