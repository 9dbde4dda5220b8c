//! Streamed response bodies that keep the deployment's deadline whatever the client does.
//!
//! The relay (the model server's stream, re-framed) is polled inline when hyper asks the body
//! for more, so each chunk goes from the model server's connection to the client's through one
//! task hand-over, as in a plain proxy. hyper polls a body only when the client has room for
//! more, though, so a client that reads slowly (or not at all) would keep the relay — and the
//! model server behind it — alive past the total timeout. A watchdog task sleeps until the
//! deadline: if the relay is still running then, it takes the relay out of the body, lets it
//! end the stream its own way (the provider stream reports the total timeout), drops it
//! (closing the model server's connection) and leaves that ending for the client to read.
//! An answer that arrives whole (a short completion from a fast model server) is relayed and
//! ended in the body's first poll, and gets no watchdog: the task would cost it more than the
//! rest of the relay.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http_body::Frame;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::admission::Permit;

/// What the relay may add once the deadline passed (its error event and end marker).
const MAX_TAIL: usize = 64 * 1024;
/// How long the relay may take to say so.
const TAIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

type Relay = Pin<Box<dyn Stream<Item = Bytes> + Send>>;

/// What the body and its watchdog share.
struct Shared {
    /// The running relay; taken out by the watchdog at the deadline, or dropped at its end.
    relay: Option<Relay>,
    /// The call's admission place, held while the relay runs.
    permit: Option<Permit>,
    /// The relay's ending, written by the watchdog after the deadline.
    tail: Option<Bytes>,
    /// Nothing more will come.
    done: bool,
    /// The body waiting for the tail.
    waker: Option<Waker>,
}

impl Shared {
    /// Keeps the body's waker (once per task) for the watchdog to wake.
    fn wait(&mut self, cx: &Context<'_>) {
        if !self.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            self.waker = Some(cx.waker().clone());
        }
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // Nothing here can be left half-updated by a panic; keep serving the stream.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A body fed by `relay` until the relay ends, the client leaves, or `deadline` passes.
/// `permit` (the call's admission place) is held until then.
pub(crate) fn body<S>(relay: S, deadline: Instant, permit: Option<Permit>) -> Body
where
    S: Stream<Item = Bytes> + Send + 'static,
{
    let shared = Arc::new(Mutex::new(Shared {
        relay: Some(Box::pin(relay)),
        permit,
        tail: None,
        done: false,
        waker: None,
    }));
    Body::new(Relayed {
        shared,
        deadline,
        watchdog: None,
        held: None,
        ended: false,
    })
}

/// Sleeps until the deadline; ends the relay then if it still runs. Returns early when the
/// body ends or is dropped (its `stop` sender goes).
async fn watchdog(shared: Arc<Mutex<Shared>>, deadline: Instant, stopped: oneshot::Receiver<()>) {
    tokio::select! {
        biased;
        _ = stopped => return,
        () = tokio::time::sleep_until(deadline) => {}
    }
    // The admission place goes with the relay: it is held until the relay is dropped.
    let (relay, permit) = {
        let mut s = lock(&shared);
        (s.relay.take(), s.permit.take())
    };
    let Some(mut relay) = relay else {
        return;
    };
    // Past the deadline: what the relay says now is its ending (the provider stream answers
    // every read after the deadline with the timeout). Only the last frames are kept if it
    // says more than fits: the ending matters.
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
    drop(relay);
    drop(permit);
    let tail: BytesMut = tail.into_iter().flatten().collect();
    let mut s = lock(&shared);
    s.tail = Some(tail.freeze());
    if let Some(waker) = s.waker.take() {
        waker.wake();
    }
}

/// The response body: the relay's frames as hyper asks for them, then the watchdog's ending
/// if the deadline cut the relay.
struct Relayed {
    shared: Arc<Mutex<Shared>>,
    deadline: Instant,
    /// Set when the watchdog starts: only when the relay is still running after the body's
    /// first poll. An answer that arrived whole (a short completion from a fast model server)
    /// is relayed and ended in that poll, and a task per stream would cost it more than the
    /// rest of the relay. Dropped with the body, which lets the watchdog go.
    watchdog: Option<oneshot::Sender<()>>,
    /// A frame the relay gave while the body was looking whether it had ended.
    held: Option<Bytes>,
    /// The body saw the relay end. hyper asks `is_end_stream` after every frame; answered
    /// from here it takes no lock (an ending the watchdog wrote is seen at the next poll).
    ended: bool,
}

/// Starts the watchdog; the sender it returns lets it go when dropped.
fn start_watchdog(shared: &Arc<Mutex<Shared>>, deadline: Instant) -> Option<oneshot::Sender<()>> {
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(watchdog(Arc::clone(shared), deadline, stopped));
    Some(stop)
}

impl Shared {
    /// The relay has ended: what it held is handed back to be dropped outside the lock.
    fn end(&mut self) -> (Option<Relay>, Option<Permit>) {
        self.done = true;
        (self.relay.take(), self.permit.take())
    }
}

impl http_body::Body for Relayed {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let Relayed {
            shared,
            deadline,
            watchdog,
            held,
            ended,
        } = self.get_mut();
        if let Some(frame) = held.take() {
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        let mut s = lock(shared);
        if let Some(relay) = s.relay.as_mut() {
            return match relay.as_mut().poll_next(cx) {
                Poll::Ready(Some(frame)) => {
                    if watchdog.is_none() {
                        // The first frame: look once whether the relay has ended already.
                        match relay.as_mut().poll_next(cx) {
                            Poll::Ready(None) => {
                                *ended = true;
                                let gone = s.end();
                                drop(s);
                                drop(gone);
                            }
                            Poll::Ready(Some(next)) => {
                                *held = Some(next);
                                *watchdog = start_watchdog(shared, *deadline);
                            }
                            Poll::Pending => *watchdog = start_watchdog(shared, *deadline),
                        }
                    }
                    Poll::Ready(Some(Ok(Frame::data(frame))))
                }
                Poll::Ready(None) => {
                    *ended = true;
                    let gone = s.end();
                    drop(s);
                    drop(gone);
                    Poll::Ready(None)
                }
                Poll::Pending => {
                    if watchdog.is_none() {
                        // Nothing yet (a model server slow to its first token): watched from
                        // now on, like a relay that sent part of its answer.
                        *watchdog = start_watchdog(shared, *deadline);
                    }
                    // The relay woke this body through its own wakers; if the watchdog takes
                    // it now, only this one is left to say the ending is ready.
                    s.wait(cx);
                    Poll::Pending
                }
            };
        }
        if s.done {
            *ended = true;
            return Poll::Ready(None);
        }
        match s.tail.take() {
            Some(tail) => {
                s.done = true;
                *ended = true;
                if tail.is_empty() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Ok(Frame::data(tail))))
                }
            }
            None => {
                // The watchdog is writing the ending.
                s.wait(cx);
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.ended
    }
}

impl Drop for Relayed {
    fn drop(&mut self) {
        // The client left (or the stream ended): the relay goes now, closing the model
        // server's connection, rather than when the watchdog would have woken.
        let ended = lock(&self.shared).end();
        drop(ended);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A relay that never yields (a model server gone quiet) while the client waits on it: at
    /// the deadline the watchdog takes it, gives up on its ending after `TAIL_TIMEOUT`, and the
    /// waiting body must be woken to end, not left pending forever.
    #[tokio::test]
    async fn a_body_waiting_on_a_silent_relay_ends_after_the_deadline() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let body = body(futures_util::stream::pending::<Bytes>(), deadline, None);
        // Read in a task of its own: a timeout around the read itself would poll the body when
        // it fires and so hide a body nobody wakes.
        let read = tokio::spawn(axum::body::to_bytes(body, usize::MAX));
        let bytes = tokio::time::timeout(TAIL_TIMEOUT + Duration::from_secs(2), read)
            .await
            .expect("the body was never woken after the deadline");
        assert!(bytes.unwrap().unwrap().is_empty());
    }

    /// A relay that has ended by the time its first frame is read needs no watchdog, and the
    /// body says it has ended without another poll.
    #[tokio::test]
    async fn an_answer_that_came_whole_ends_with_its_first_frame() {
        use http_body::Body as _;
        let relay = futures_util::stream::iter([Bytes::from_static(b"all of it")]);
        let mut body = body(relay, Instant::now() + Duration::from_secs(60), None);
        let first = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        let data = first.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&data[..], b"all of it");
        assert!(body.is_end_stream());
        let next = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await;
        assert!(next.is_none());
    }

    /// A frame read while looking whether the relay had ended keeps its place.
    #[tokio::test]
    async fn frames_keep_their_order_when_the_relay_goes_on() {
        let relay = futures_util::stream::iter(
            [b"a", b"b", b"c"].map(|b: &'static [u8; 1]| Bytes::from_static(b)),
        );
        let body = body(relay, Instant::now() + Duration::from_secs(60), None);
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        assert_eq!(&bytes[..], b"abc");
    }

    /// What the relay says after the deadline reaches the client after what it said before.
    #[tokio::test]
    async fn the_ending_follows_what_came_before() {
        let deadline = Instant::now() + Duration::from_millis(50);
        let relay = futures_util::stream::once(async { Bytes::from_static(b"early;") }).chain(
            futures_util::stream::once(async move {
                tokio::time::sleep_until(deadline + Duration::from_millis(20)).await;
                Bytes::from_static(b"ending")
            }),
        );
        let body = body(relay, deadline, None);
        let bytes =
            tokio::time::timeout(Duration::from_secs(3), axum::body::to_bytes(body, 1 << 20))
                .await
                .expect("the body ended")
                .unwrap();
        assert_eq!(&bytes[..], b"early;ending");
    }
}
