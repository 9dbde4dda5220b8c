//! Keystroke-aware completion. An editor asks for a completion on nearly every keystroke;
//! the answer to the previous keystroke is worthless once the next request from the same
//! client and file arrives, so that request is cancelled at once (its upstream call dropped,
//! freeing the model server). A request identical to one in flight joins it instead of
//! calling the model server again, and, with a cache time set, one identical to a request
//! answered moments ago gets that answer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::Stream;
use hearth_providers::{Chunk, ChunkStream, ProviderError};
use tokio::sync::broadcast;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Completions in flight tracked at most; past it new ones are simply not tracked.
const MAX_TRACKED: usize = 65_536;

/// Answers kept for exact repeats at most.
const MAX_CACHED: usize = 4_096;

/// A shared answer: the cleaned text, finish reason and usage, or the error.
pub(crate) type Shared = Arc<Result<super::super::inference::Completed, ProviderError>>;

struct Entry {
    /// Tells this entry apart from a later one under the same key.
    serial: u64,
    /// What was asked, so an identical request can join instead of superseding.
    request: u64,
    cancel: CancellationToken,
    /// Present for a whole (non-streamed) answer that others may join.
    answer: Option<broadcast::Sender<Shared>>,
}

#[derive(Default)]
pub(crate) struct Supersede {
    inflight: Mutex<(u64, HashMap<u64, Entry>)>,
    /// How long an answer serves exact repeats; zero keeps none.
    ttl: Duration,
    /// (key, request) → when it was answered, and the answer.
    recent: Mutex<HashMap<(u64, u64), (Instant, Shared)>>,
}

/// What the caller does with its request.
pub(crate) enum Admitted {
    /// Run it; it is cancelled when `ticket.cancelled()` fires.
    Run(Ticket),
    /// An identical request is in flight: wait for its answer.
    Join(broadcast::Receiver<Shared>),
}

/// A request's place under its key; leaving drops the entry if it is still this one's.
pub(crate) struct Ticket {
    /// (owner, key, serial, request).
    owner: Option<(Arc<Supersede>, u64, u64, u64)>,
    cancel: CancellationToken,
}

impl Supersede {
    pub(crate) fn new(ttl: Duration) -> Supersede {
        Supersede {
            ttl,
            ..Supersede::default()
        }
    }

    /// The answer to this exact request from the same client within the cache time.
    fn cached(&self, key: u64, request: u64) -> Option<Shared> {
        if self.ttl.is_zero() {
            return None;
        }
        let map = self.recent.lock().ok()?;
        let (at, answer) = map.get(&(key, request))?;
        (at.elapsed() < self.ttl).then(|| answer.clone())
    }

    fn remember(&self, key: u64, request: u64, answer: &Shared) {
        if self.ttl.is_zero() || answer.is_err() {
            return;
        }
        let Ok(mut map) = self.recent.lock() else {
            return;
        };
        if map.len() >= MAX_CACHED {
            let ttl = self.ttl;
            map.retain(|_, (at, _)| at.elapsed() < ttl);
            if map.len() >= MAX_CACHED {
                map.clear();
            }
        }
        map.insert((key, request), (Instant::now(), answer.clone()));
    }

    /// Registers a request for `key` (client and file) asking `request` (a hash of what goes
    /// upstream). Cancels a different request in flight under the same key; with `joinable`,
    /// an identical whole-answer request joins the one in flight.
    pub(crate) fn admit(
        self: &Arc<Self>,
        key: u64,
        request: u64,
        joinable: bool,
        superseded: impl FnOnce(),
    ) -> Admitted {
        let Ok(mut guard) = self.inflight.lock() else {
            return Admitted::Run(Ticket::untracked());
        };
        let (serial, map) = &mut *guard;
        if let Some(e) = map.get(&key) {
            if e.request == request
                && joinable
                && let Some(tx) = &e.answer
            {
                return Admitted::Join(tx.subscribe());
            }
            if e.request != request {
                e.cancel.cancel();
                superseded();
            }
        }
        if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
            return Admitted::Run(Ticket::untracked());
        }
        *serial += 1;
        let cancel = CancellationToken::new();
        map.insert(
            key,
            Entry {
                serial: *serial,
                request,
                cancel: cancel.clone(),
                answer: joinable.then(|| broadcast::channel(1).0),
            },
        );
        Admitted::Run(Ticket {
            owner: Some((self.clone(), key, *serial, request)),
            cancel,
        })
    }
}

impl Ticket {
    pub(crate) fn untracked() -> Ticket {
        Ticket {
            owner: None,
            cancel: CancellationToken::new(),
        }
    }

    pub(crate) fn token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Hands the answer to the requests that joined this one. `answer` is made only when
    /// this request's answer is remembered for others: most are not, and need no copy.
    pub(crate) fn share(&self, answer: impl FnOnce() -> Shared) {
        let Some((owner, key, serial, request)) = &self.owner else {
            return;
        };
        let answer = answer();
        owner.remember(*key, *request, &answer);
        if let Ok(guard) = owner.inflight.lock()
            && let Some(e) = guard.1.get(key)
            && e.serial == *serial
            && let Some(tx) = &e.answer
        {
            let _ = tx.send(answer);
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some((owner, key, serial, _)) = self.owner.take()
            && let Ok(mut guard) = owner.inflight.lock()
            && guard.1.get(&key).is_some_and(|e| e.serial == serial)
        {
            guard.1.remove(&key);
        }
    }
}

/// The message a superseded request gets.
pub(crate) const SUPERSEDED: &str =
    "a newer completion request for the same file from the same client replaced this one";

/// Ends `stream` with an error as soon as the ticket is cancelled, dropping the upstream
/// stream; the ticket (the request's place under its key) lives as long as the stream.
pub(crate) fn until_superseded(stream: ChunkStream, ticket: Ticket) -> ChunkStream {
    if ticket.owner.is_none() {
        // Nobody else holds an untracked ticket's token, so nothing can cancel it; the
        // watching layer would cost every chunk of every keyless stream for nothing.
        return stream;
    }
    Box::pin(UntilSuperseded {
        cancelled: Box::pin(ticket.token().cancelled_owned()),
        running: Some((stream, ticket)),
    })
}

/// [`until_superseded`]'s stream. Its own type rather than `take_until` chained to a tail, so
/// that its `size_hint` says when the model server's stream has ended: a relay then writes an
/// answer that arrived whole in one piece with its ending, without starting the deadline's
/// watchdog task for it.
struct UntilSuperseded {
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
    /// The model server's stream and the request's place under its key, dropped together
    /// when superseded (closing the model server's connection) or ended.
    running: Option<(ChunkStream, Ticket)>,
}

impl Stream for UntilSuperseded {
    type Item = Result<Chunk, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let superseded = || Some(Err(ProviderError::Stream(SUPERSEDED.into())));
        let this = &mut *self;
        let Some((stream, ticket)) = this.running.as_mut() else {
            return Poll::Ready(None);
        };
        if this.cancelled.as_mut().poll(cx).is_ready() {
            this.running = None;
            return Poll::Ready(superseded());
        }
        match ready!(stream.as_mut().poll_next(cx)) {
            Some(item) => Poll::Ready(Some(item)),
            None => {
                let cancelled = ticket.cancel.is_cancelled();
                this.running = None;
                Poll::Ready(if cancelled { superseded() } else { None })
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match &self.running {
            Some((stream, _)) => stream.size_hint(),
            None => (0, Some(0)),
        }
    }
}

/// Takes the request's place under its client-and-file key (cancelling an older request
/// there), or joins an identical one in flight: then its answer comes back as the second
/// value. Keyless requests, or with `--no-supersede`, get an untracked ticket.
pub(crate) async fn keystroke(
    state: &crate::AppState,
    feature: hearth_catalog::Feature,
    affinity: Option<u64>,
    asked: impl FnOnce() -> u64,
    joinable: bool,
) -> (Ticket, Option<Shared>) {
    let settings = state.pools.settings();
    let Some(key) = affinity.filter(|_| settings.supersede) else {
        return (Ticket::untracked(), None);
    };
    let asked = asked();
    let joinable = joinable && settings.coalesce;
    if joinable && let Some(answer) = state.supersede.cached(key, asked) {
        state.metrics.coalesced(feature);
        return (Ticket::untracked(), Some(answer));
    }
    match state
        .supersede
        .admit(key, asked, joinable, || state.metrics.superseded(feature))
    {
        Admitted::Run(ticket) => (ticket, None),
        Admitted::Join(mut answer) => match answer.recv().await {
            Ok(shared) => {
                state.metrics.coalesced(feature);
                (Ticket::untracked(), Some(shared))
            }
            // The request joined went away (its client left, or it was superseded): ask
            // for ourselves.
            Err(_) => (Ticket::untracked(), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_request_cancels_the_previous_and_an_identical_one_joins() {
        let s = Arc::new(Supersede::default());
        let mut cancelled = 0;
        let Admitted::Run(first) = s.admit(1, 10, true, || cancelled += 1) else {
            panic!("first request must run");
        };
        assert!(matches!(
            s.admit(1, 10, true, || cancelled += 1),
            Admitted::Join(_)
        ));
        assert!(!first.token().is_cancelled());
        let Admitted::Run(second) = s.admit(1, 11, true, || cancelled += 1) else {
            panic!("a different request must run");
        };
        assert!(first.token().is_cancelled());
        assert_eq!(cancelled, 1);
        // The first leaving does not remove the second's entry.
        drop(first);
        assert!(matches!(s.admit(1, 11, true, || {}), Admitted::Join(_)));
        drop(second);
        assert!(matches!(s.admit(1, 11, true, || {}), Admitted::Run(_)));
    }

    #[test]
    fn exact_repeats_get_the_answer_while_it_is_fresh() {
        let s = Arc::new(Supersede::new(Duration::from_millis(50)));
        let Admitted::Run(t) = s.admit(1, 10, true, || {}) else {
            panic!()
        };
        t.share(|| Arc::new(Ok(("x".into(), None, None))));
        drop(t);
        assert!(s.cached(1, 10).is_some());
        assert!(s.cached(1, 11).is_none());
        std::thread::sleep(Duration::from_millis(60));
        assert!(s.cached(1, 10).is_none());
        let none = Arc::new(Supersede::new(Duration::ZERO));
        none.remember(1, 10, &Arc::new(Ok(("x".into(), None, None))));
        assert!(none.cached(1, 10).is_none());
    }

    #[test]
    fn other_files_are_left_alone() {
        let s = Arc::new(Supersede::default());
        let Admitted::Run(a) = s.admit(1, 10, false, || {}) else {
            panic!()
        };
        let _b = s.admit(2, 11, false, || {});
        assert!(!a.token().is_cancelled());
    }
}
