//! `futures_util::stream::unfold` for the platforms' event streams, except that it says how
//! many decoded events are waiting: its `size_hint` lower bound is the state's queue. A relay
//! can then group the events one network read brought without polling the network again,
//! which for a slow stream would only arm a timer and read a socket that has nothing yet.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use futures_util::Stream;

/// A stream state with decoded events waiting to be handed on.
pub(crate) trait Queued {
    /// Events the next calls hand on without reading the network.
    fn queued(&self) -> usize;
}

pin_project_lite::pin_project! {
    pub(crate) struct Events<St, F, Fut> {
        state: Option<St>,
        next: F,
        #[pin]
        step: Option<Fut>,
    }
}

impl<St, F, Fut> Events<St, F, Fut> {
    pub(crate) fn new(state: St, next: F) -> Self {
        Events {
            state: Some(state),
            next,
            step: None,
        }
    }
}

impl<St, F, Fut, Item> Stream for Events<St, F, Fut>
where
    St: Queued,
    F: FnMut(St) -> Fut,
    Fut: Future<Output = Option<(Item, St)>>,
{
    type Item = Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Item>> {
        let mut this = self.project();
        if let Some(state) = this.state.take() {
            this.step.set(Some((this.next)(state)));
        }
        let Some(step) = this.step.as_mut().as_pin_mut() else {
            return Poll::Ready(None);
        };
        let out = ready!(step.poll(cx));
        this.step.set(None);
        Poll::Ready(out.map(|(item, state)| {
            *this.state = Some(state);
            item
        }))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.state.as_ref().map_or(0, Queued::queued), None)
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    struct Counter {
        queue: Vec<u32>,
    }

    impl Queued for Counter {
        fn queued(&self) -> usize {
            self.queue.len()
        }
    }

    #[tokio::test]
    async fn hands_on_like_unfold_and_counts_what_waits() {
        let mut s = Box::pin(Events::new(
            Counter {
                queue: vec![3, 2, 1],
            },
            |mut c: Counter| async move { c.queue.pop().map(|v| (v, c)) },
        ));
        assert_eq!(s.size_hint().0, 3);
        assert_eq!(s.next().await, Some(1));
        assert_eq!(s.size_hint().0, 2);
        assert_eq!(s.next().await, Some(2));
        assert_eq!(s.next().await, Some(3));
        assert_eq!(s.size_hint().0, 0);
        assert_eq!(s.next().await, None);
        assert_eq!(s.next().await, None);
    }
}
