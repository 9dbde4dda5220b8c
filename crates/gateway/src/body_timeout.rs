//! How long a request body may pause: each wait for the next piece of the body is cut after
//! the configured time, and reading it then fails with [`BodyTimedOut`] (a 408, see
//! `extract.rs`).
//!
//! The timer is armed only when the body has nothing ready. tower-http's `TimeoutBody` makes
//! and registers a new timer before every poll and drops it after every piece, which for the
//! usual body (already arrived with the headers) was all of its cost.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

/// The body stopped arriving for longer than the limit.
#[derive(Debug)]
pub(crate) struct BodyTimedOut;

impl std::fmt::Display for BodyTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body stopped arriving")
    }
}

impl std::error::Error for BodyTimedOut {}

#[derive(Clone, Copy)]
pub(crate) struct BodyTimeoutLayer(pub(crate) Duration);

impl<S> Layer<S> for BodyTimeoutLayer {
    type Service = BodyTimeout<S>;

    fn layer(&self, inner: S) -> BodyTimeout<S> {
        BodyTimeout {
            inner,
            limit: self.0,
        }
    }
}

#[derive(Clone)]
pub(crate) struct BodyTimeout<S> {
    inner: S,
    limit: Duration,
}

impl<S: Service<Request>> Service<Request> for BodyTimeout<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> S::Future {
        let limit = self.limit;
        self.inner.call(req.map(|body| {
            Body::new(TimedBody {
                body,
                limit,
                timer: None,
                armed: false,
            })
        }))
    }
}

struct TimedBody {
    body: Body,
    limit: Duration,
    /// Made the first time the body has to be waited for, then reset for each wait.
    timer: Option<Pin<Box<Sleep>>>,
    /// Whether `timer` runs for the current wait.
    armed: bool,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.body).poll_frame(cx) {
            this.armed = false;
            return Poll::Ready(frame);
        }
        if !this.armed {
            this.armed = true;
            let deadline = Instant::now() + this.limit;
            match &mut this.timer {
                Some(timer) => timer.as_mut().reset(deadline),
                None => this.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
        }
        let expired = this
            .timer
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready());
        if expired {
            this.armed = false;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timed(body: Body, limit: Duration) -> TimedBody {
        TimedBody {
            body,
            limit,
            timer: None,
            armed: false,
        }
    }

    async fn next(body: &mut TimedBody) -> Option<Result<Frame<Bytes>, axum::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test]
    async fn a_body_that_pauses_too_long_fails_and_one_that_keeps_coming_does_not() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|v| (v, rx)) },
            );
        let limit = Duration::from_millis(300);
        let mut body = timed(Body::from_stream(stream), limit);
        // Pieces 150 ms apart: each wait is under the limit, though the whole is not.
        let sender = tokio::spawn(async move {
            for piece in ["a", "b", "c"] {
                tokio::time::sleep(Duration::from_millis(150)).await;
                tx.send(Ok(Bytes::from(piece))).await.unwrap();
            }
            // Then a pause past the limit, with the body still open.
            tokio::time::sleep(Duration::from_secs(30)).await;
            drop(tx);
        });
        let started = Instant::now();
        let mut got = Vec::new();
        let err = loop {
            match next(&mut body).await {
                Some(Ok(frame)) => got.extend_from_slice(&frame.into_data().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("the body ended instead of timing out"),
            }
        };
        assert_eq!(got, b"abc");
        assert!(started.elapsed() >= Duration::from_millis(450 + 300));
        assert!(
            std::error::Error::source(&err).is_some_and(|e| e.is::<BodyTimedOut>()),
            "{err:?}"
        );
        sender.abort();
    }

    #[tokio::test]
    async fn a_body_already_here_is_read_without_a_timer() {
        let mut body = timed(Body::from("whole"), Duration::from_secs(5));
        let frame = next(&mut body).await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "whole");
        assert!(next(&mut body).await.is_none());
        assert!(body.timer.is_none());
    }
}
