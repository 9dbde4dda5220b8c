//! Relaying a streamed answer to the client: each upstream chunk goes out as soon as it is
//! cleaned, in OpenAI's exact SSE framing. Dropping the relay (the client went away) drops the
//! upstream stream, which closes its connection: the model server stops generating.
//!
//! Frames are written into one buffer per stream and split off it when handed to the client;
//! once the client's connection has written a piece, its room is used again for the next, so
//! a stream makes no allocation per chunk for its frames.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use hearth_prompts::StopScanner;
use hearth_providers::{Chunk, ChunkStream, ProviderError, Usage};
use serde::Serialize;

use crate::openai::error::OaiError;
use crate::openai::frames::Frames;
use crate::openai::wire::{ChatChunk, ChatChunkChoice, Delta, TextCompletion, UsageOut};
use crate::telemetry::Exchange;

/// Frames gathered into one piece at most (a piece may pass it by its last frame).
const GATHER_BYTES: usize = 8 * 1024;
/// The frame buffer a stream starts with: a usual chunk's frame is 150 to 300 bytes.
const FIRST_BUFFER: usize = 512;

const DONE: &[u8] = b"data: [DONE]\n\n";

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
    upstream: ChunkStream,
    scanner: Option<StopScanner>,
    shape: Shape,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Taken when recorded; dropped unrecorded (the client left), it records 499 itself.
    exchange: Option<Exchange>,
    frames: Frames,
    sent_role: bool,
    usage: Option<Usage>,
    finish: Option<String>,
    /// Frames written and not yet handed on.
    buf: BytesMut,
    done: bool,
    /// The exchange's time is split into the model server's and Hearth's own by reading the
    /// clock when an event arrives and when its frames are written; Hearth's own is summed
    /// and the model server's is what is left of the relay's whole time (one subtraction an
    /// event, not two). `started`: when the relay was made (the model server had answered
    /// with its headers); `received`: when the current event arrived; `stepped`: when the
    /// last event's frames were written. Writing them to the client counts as waiting.
    started: Instant,
    received: Instant,
    stepped: Instant,
    own: Duration,
    /// The text the stop scanner let through for the current event.
    shown: String,
}

impl Relay {
    pub(crate) fn new(
        upstream: ChunkStream,
        scanner: Option<StopScanner>,
        framing: Framing,
        exchange: Exchange,
    ) -> Relay {
        let created = super::now_secs();
        let now = Instant::now();
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
            buf: BytesMut::with_capacity(FIRST_BUFFER),
            done: false,
            started: now,
            received: now,
            stepped: now,
            own: Duration::ZERO,
            shown: String::new(),
        }
    }

    /// Takes the model server's next event, if it has one now, and writes its frames (none,
    /// when the stop scanner holds its text back).
    fn poll_step(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let next = ready!(self.upstream.poll_next_unpin(cx));
        // Two clock reads an event (a third, at the poll that finds nothing, cost ~70
        // instructions a chunk).
        self.received = Instant::now();
        self.step(next);
        self.stepped = Instant::now();
        self.own += self.stepped - self.received;
        Poll::Ready(())
    }

    /// The exchange, to be recorded, with the relay's time split into the model server's and
    /// Hearth's own up to `until` (the current event's arrival, or the last step's end).
    fn settle(&mut self, until: Instant) -> Option<Exchange> {
        let mut x = self.exchange.take()?;
        x.upstream_time += until
            .saturating_duration_since(self.started)
            .saturating_sub(self.own);
        x.overhead += self.own;
        Some(x)
    }

    fn step(&mut self, next: Option<Result<Chunk, ProviderError>>) {
        if self.shape == Shape::Chat && !self.sent_role {
            // The role goes out with the first event the model server sends, not on its own
            // before it: one write instead of two, and the client's first chunk then says
            // when the model answered.
            self.sent_role = true;
            self.frames
                .chat(&mut self.buf, Some("assistant"), Some(""), None);
        }
        match next {
            Some(Ok(chunk)) => {
                // The scanner's text goes through one buffer kept for the stream.
                let text = match self.scanner.as_mut() {
                    Some(s) => {
                        let mut shown = std::mem::take(&mut self.shown);
                        shown.clear();
                        s.push_to(chunk.text, &mut shown);
                        shown
                    }
                    None => chunk.text,
                };
                if chunk.usage.is_some() {
                    self.usage = chunk.usage;
                }
                if chunk.finish_reason.is_some() {
                    self.finish = chunk.finish_reason;
                }
                if self.shape == Shape::Chat
                    && let Some(extra) = chunk.extra.as_deref()
                {
                    // Tool-call pieces and logprobs go out with the text they came with;
                    // chat answers are not cut, so nothing is held back here.
                    if let Some(x) = self.exchange.as_mut() {
                        x.record_text(&text);
                    }
                    self.chat_chunk_with(
                        Some(&text).filter(|t| !t.is_empty()).map(|t| t.as_str()),
                        Some(&extra.delta).filter(|d| !d.is_empty()),
                        extra.logprobs.as_ref(),
                    );
                } else {
                    self.emit_text(&text);
                }
                if self.scanner.is_some() {
                    // Its room is kept for the next event's text.
                    self.shown = text;
                }
                if self.scanner.as_ref().is_some_and(StopScanner::is_done) {
                    // A stop sequence ended the answer: stop reading the model server.
                    self.finish = Some("stop".into());
                    self.close(200, None);
                }
            }
            Some(Err(e)) => {
                let err = OaiError::upstream(&self.model, &e);
                sse(&mut self.buf, &err.stream_event());
                self.buf.extend_from_slice(DONE);
                self.done = true;
                if let Some(x) = self.settle(self.received) {
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
    }

    fn emit_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(x) = self.exchange.as_mut() {
            x.record_text(text);
        }
        match self.shape {
            Shape::Text => self.frames.text(&mut self.buf, text, None),
            Shape::Chat => self.frames.chat(&mut self.buf, None, Some(text), None),
        }
    }

    fn close(&mut self, status: u16, error: Option<&str>) {
        let finish = self.finish.as_deref().unwrap_or("stop");
        match self.shape {
            Shape::Text => self.frames.text(&mut self.buf, "", Some(finish)),
            Shape::Chat => self.frames.chat(&mut self.buf, None, None, Some(finish)),
        }
        if self.include_usage
            && let Some(u) = self.usage
        {
            self.usage_chunk(u.into());
        }
        self.buf.extend_from_slice(DONE);
        self.done = true;
        if let Some(mut x) = self.settle(self.received) {
            x.usage = self.usage;
            x.finish(status, error);
        }
    }

    fn usage_field(&self) -> Option<Option<UsageOut>> {
        self.include_usage.then_some(None)
    }

    /// A chat chunk carrying tool-call pieces or logprobs, which the usual frames do not.
    fn chat_chunk_with(
        &mut self,
        content: Option<&str>,
        more: Option<&serde_json::Map<String, serde_json::Value>>,
        logprobs: Option<&serde_json::Value>,
    ) {
        let choice = ChatChunkChoice {
            index: 0,
            delta: Delta {
                role: None,
                content,
                more,
            },
            logprobs,
            finish_reason: None,
        };
        let mut buf = std::mem::take(&mut self.buf);
        sse(&mut buf, &self.chat_chunk(vec![choice], self.usage_field()));
        self.buf = buf;
    }

    fn usage_chunk(&mut self, usage: UsageOut) {
        let mut buf = std::mem::take(&mut self.buf);
        match self.shape {
            Shape::Text => sse(
                &mut buf,
                &TextCompletion {
                    id: &self.id,
                    object: "text_completion",
                    created: self.created,
                    model: &self.model,
                    choices: Vec::new(),
                    usage: Some(Some(usage)),
                },
            ),
            Shape::Chat => sse(&mut buf, &self.chat_chunk(Vec::new(), Some(Some(usage)))),
        }
        self.buf = buf;
    }

    fn chat_chunk<'a>(
        &'a self,
        choices: Vec<ChatChunkChoice<'a>>,
        usage: Option<Option<UsageOut>>,
    ) -> ChatChunk<'a> {
        ChatChunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices,
            usage,
        }
    }
}

impl Drop for Relay {
    /// A relay dropped before it recorded (the client left) has its exchange record 499 with
    /// the time split as far as the relay got.
    fn drop(&mut self) {
        drop(self.settle(self.stepped));
    }
}

/// The answer's frames. Each item is every frame ready at that moment (made from one event,
/// or from every event already read from the model server): events that arrived together are
/// handed on, and written to the client, once, instead of once each. Nothing waits to be
/// gathered.
impl Stream for Relay {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let r = self.get_mut();
        while r.buf.is_empty() && !r.done {
            ready!(r.poll_step(cx));
        }
        if r.buf.is_empty() {
            return Poll::Ready(None);
        }
        // More of what is ready without waiting, up to GATHER_BYTES. Only events already
        // decoded, or the stream's end once the body has ended (the platform streams count
        // them in `size_hint`), are taken: polling the upstream for more would, on a slow
        // stream, arm a timer and read a socket with nothing in it, once per chunk. An answer
        // that arrived whole thus leaves in one piece, ending included.
        while r.buf.len() < GATHER_BYTES && !r.done && ready_now(&r.upstream) {
            if r.poll_step(cx).is_pending() {
                break;
            }
        }
        Poll::Ready(Some(r.buf.split().freeze()))
    }
}

/// Whether the upstream has an event decoded, or its end, ready without a read.
fn ready_now(upstream: &ChunkStream) -> bool {
    match upstream.size_hint() {
        (0, Some(0)) => true,
        (ready, _) => ready > 0,
    }
}

/// Appends `value` as one SSE frame.
fn sse<T: Serialize>(buf: &mut BytesMut, value: &T) {
    buf.extend_from_slice(b"data: ");
    super::frames::put_json(buf, value);
    buf.extend_from_slice(b"\n\n");
}
