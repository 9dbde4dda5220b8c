//! Streamed response bodies that keep the deployment's deadline whatever the client does.
//!
//! hyper polls a response body only when the client has room for more, so a client that reads
//! slowly (or not at all) would otherwise keep the relay — and the model server behind it —
//! alive past the total timeout. Here the relay runs in its own task and hands frames over a
//! short channel: it keeps reading the model server at the model's pace, and at the deadline
//! it stops, lets the relay end the stream its own way (the provider stream reports the total
//! timeout), and queues those last frames behind the ones the client has not read yet.

use std::collections::VecDeque;
use std::convert::Infallible;

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::admission::Permit;

/// Frames waiting for the client: enough to absorb a burst, small enough that a stalled
/// client holds little. (The OpenAI relay hands over what arrived together as one frame.)
const QUEUED_FRAMES: usize = 8;
/// What the relay may add once the deadline passed (its error event and end marker).
const MAX_TAIL: usize = 64 * 1024;
/// How long the relay may take to say so.
const TAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// A body fed by `relay` from its own task until the relay ends, the client leaves, or
/// `deadline` passes. `permit` (the call's admission place) is held until then.
pub(crate) fn body<S>(relay: S, deadline: Instant, permit: Option<Permit>) -> Body
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let (tx, rx) = mpsc::channel::<Bytes>(QUEUED_FRAMES);
    let (tail_tx, tail_rx) = oneshot::channel::<Bytes>();
    tokio::spawn(async move {
        let _permit = permit;
        let mut relay = std::pin::pin!(relay);
        let expired = tokio::time::sleep_until(deadline);
        tokio::pin!(expired);
        loop {
            let frame = tokio::select! {
                biased;
                () = tx.closed() => return, // the client left: dropping the relay ends the call
                frame = relay.next() => frame,
                () = &mut expired => break,
            };
            let Some(frame) = frame else { return };
            tokio::select! {
                biased;
                place = tx.reserve() => match place {
                    Ok(place) => place.send(frame),
                    Err(_) => return,
                },
                () = &mut expired => break,
            }
        }
        // Past the deadline: what the relay says now is its ending (the provider stream
        // answers every read after the deadline with the timeout), sent after the queue.
        // Only the last frames are kept if it says more than fits: the ending matters.
        let mut tail: VecDeque<Bytes> = VecDeque::new();
        let mut size = 0;
        let ending = async {
            while let Some(frame) = relay.next().await {
                size += frame.len();
                tail.push_back(frame);
                while size > MAX_TAIL && tail.len() > 1 {
                    size -= tail.pop_front().map_or(0, |f| f.len());
                }
            }
        };
        let _ = tokio::time::timeout(TAIL_TIMEOUT, ending).await;
        let tail: BytesMut = tail.into_iter().flatten().collect();
        let _ = tail_tx.send(tail.freeze());
    });
    let queued = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let tail = futures_util::stream::once(tail_rx)
        .filter_map(|t| std::future::ready(t.ok().filter(|t| !t.is_empty())));
    Body::from_stream(queued.chain(tail).map(Ok::<_, Infallible>))
}
