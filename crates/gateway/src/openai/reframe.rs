//! The other front doors (Ollama, `/infill`, Anthropic) run the OpenAI handler and re-frame its
//! streamed answer in their own API's shape. This reads that answer event by event, once, so
//! each door only says what an event becomes.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::response::Response;
use futures_util::StreamExt;
use hearth_providers::{SseDecoder, SseEvent};
use serde_json::Value;

/// One event of the OpenAI handler's SSE answer.
pub(crate) enum Said {
    /// A `data:` chunk (an error chunk too: `{"error": …}`).
    Chunk(Value),
    /// `data: [DONE]`.
    Done,
    /// An event past the decoder's cap, with the cap.
    TooLarge(usize),
}

/// The body of a door's stream: `on` turns each event into the frames to send and returns
/// false once the door's stream is over (nothing after that is read).
pub(crate) fn reframe(
    answer: Response,
    mut on: impl FnMut(Said, &mut Vec<Bytes>) -> bool + Send + 'static,
) -> Body {
    let mut decoder = SseDecoder::new();
    let mut open = true;
    let frames = answer
        .into_body()
        .into_data_stream()
        .flat_map(move |chunk| {
            let mut out: Vec<Bytes> = Vec::new();
            let events = match chunk {
                Ok(bytes) => decoder.push(&bytes),
                Err(_) => Vec::new(),
            };
            for event in events {
                if !open {
                    break;
                }
                let said = match event {
                    SseEvent::Data { data, .. } => {
                        Said::Chunk(serde_json::from_str(&data).unwrap_or(Value::Null))
                    }
                    SseEvent::Done => Said::Done,
                    SseEvent::TooLarge(max) => Said::TooLarge(max),
                };
                open = on(said, &mut out);
            }
            futures_util::stream::iter(out.into_iter().map(Ok::<_, Infallible>))
        });
    Body::from_stream(frames)
}
