//! Delivery reports gathered per request and handed back in request order.
//!
//! One shared tracker per request, not a channel and a future per record (FutureProducer's
//! way, which showed up in profiles of 100-record requests as oneshot sends, future polls
//! and their allocations). librdkafka's delivery callback fills a record's slot; the
//! request reads the outcomes as a [`Deliveries`] stream, each as soon as that record and
//! every record before it are settled, or all at once with [`Deliveries::all_settled`].

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use futures_util::Stream;

use super::outcome::{Outcome, ProduceError};

/// When the waiting request wants to be woken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WakeOn {
    /// Whenever the settled prefix grows (streaming).
    Prefix,
    /// Once every record is settled (collecting all).
    All,
}

struct State {
    outcomes: Vec<Option<Outcome>>,
    /// The first record not yet handed out.
    next: usize,
    unsettled: usize,
    wake_on: WakeOn,
}

/// The outcomes of one request's records, shared between the request and librdkafka.
struct Tracker {
    state: Mutex<State>,
    waker: AtomicWaker,
}

impl Tracker {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn settle(&self, index: usize, outcome: Outcome) {
        let wake = {
            let mut state = self.state();
            let Some(slot) = state.outcomes.get_mut(index) else {
                return;
            };
            if slot.is_some() {
                return;
            }
            *slot = Some(outcome);
            state.unsettled -= 1;
            match state.wake_on {
                WakeOn::Prefix => index == state.next,
                WakeOn::All => state.unsettled == 0,
            }
        };
        if wake {
            self.waker.wake();
        }
    }
}

/// One record's place in its request: travels through librdkafka as the delivery opaque
/// and settles the record exactly once. Dropped unsettled (librdkafka went away before
/// reporting), the record counts as a retriable failure: it may or may not have been
/// written, and the request is never left waiting.
pub struct Pending {
    tracker: Arc<Tracker>,
    index: usize,
    settled: bool,
}

impl Pending {
    /// Records this record's outcome.
    pub fn settle(mut self, outcome: Outcome) {
        self.settled = true;
        self.tracker.settle(self.index, outcome);
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.settled {
            self.tracker.settle(
                self.index,
                Err(ProduceError::Retriable(
                    "the producer was closed before delivery".into(),
                )),
            );
        }
    }
}

/// What travels with each record through librdkafka.
pub type Opaque = Box<Pending>;

/// The outcomes of a request's records, in request order.
pub struct Deliveries {
    tracker: Arc<Tracker>,
    len: usize,
}

impl Deliveries {
    /// Tracking for `len` records, and one [`Pending`] per record, in order.
    pub fn new(len: usize) -> (Deliveries, Vec<Pending>) {
        let tracker = Arc::new(Tracker {
            state: Mutex::new(State {
                outcomes: (0..len).map(|_| None).collect(),
                next: 0,
                unsettled: len,
                wake_on: WakeOn::Prefix,
            }),
            waker: AtomicWaker::new(),
        });
        let pending = (0..len)
            .map(|index| Pending {
                tracker: Arc::clone(&tracker),
                index,
                settled: false,
            })
            .collect();
        (Deliveries { tracker, len }, pending)
    }

    /// Every record failing with `error`, settled at once.
    pub fn failed(len: usize, error: &ProduceError) -> Deliveries {
        let (deliveries, pending) = Deliveries::new(len);
        for p in pending {
            p.settle(Err(error.clone()));
        }
        deliveries
    }

    /// How many records the request has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a request without records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits for every record and returns the outcomes not yet taken from the stream, in
    /// order. Wakes once, when the last record settles, instead of at every step.
    pub async fn all_settled(&mut self) -> Vec<Outcome> {
        self.tracker.state().wake_on = WakeOn::All;
        poll_fn(|cx| {
            self.tracker.waker.register(cx.waker());
            let mut state = self.tracker.state();
            if state.unsettled > 0 {
                return Poll::Pending;
            }
            let next = state.next;
            state.next = self.len;
            Poll::Ready(
                state.outcomes[next..]
                    .iter_mut()
                    .map(|o| o.take().expect("every record is settled"))
                    .collect(),
            )
        })
        .await
    }
}

impl Stream for Deliveries {
    type Item = Outcome;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        // Registered before looking, so a settle between the look and the return wakes us.
        self.tracker.waker.register(cx.waker());
        let mut state = self.tracker.state();
        if state.next == self.len {
            return Poll::Ready(None);
        }
        let next = state.next;
        match state.outcomes[next].take() {
            Some(outcome) => {
                state.next += 1;
                Poll::Ready(Some(outcome))
            }
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.tracker.state().next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::super::outcome::Delivered;
    use super::*;
    use futures_util::{FutureExt, StreamExt};

    fn three(pending: Vec<Pending>) -> [Pending; 3] {
        pending.try_into().ok().expect("three records")
    }

    fn ok(partition: i32, offset: i64) -> Outcome {
        Ok(Delivered {
            partition,
            offset,
            timestamp_ms: None,
        })
    }

    #[tokio::test]
    async fn all_waits_for_every_record_and_keeps_request_order() {
        let (mut deliveries, pending) = Deliveries::new(3);
        let [first, second, third] = three(pending);
        third.settle(Err(ProduceError::QueueFull));
        first.settle(ok(0, 7));
        let all = tokio::spawn(async move { deliveries.all_settled().await });
        tokio::task::yield_now().await;
        assert!(!all.is_finished(), "one record is still unsettled");
        second.settle(ok(1, 8));
        let outcomes = all.await.unwrap();
        assert_eq!(
            outcomes,
            vec![ok(0, 7), ok(1, 8), Err(ProduceError::QueueFull)]
        );
    }

    #[tokio::test]
    async fn the_stream_yields_each_record_once_it_and_all_before_it_are_settled() {
        let (mut deliveries, pending) = Deliveries::new(3);
        let [first, second, third] = three(pending);
        second.settle(ok(0, 2));
        assert!(
            deliveries.next().now_or_never().is_none(),
            "record 1 is settled but record 0 is not"
        );
        first.settle(ok(0, 1));
        assert_eq!(deliveries.next().await, Some(ok(0, 1)));
        assert_eq!(deliveries.next().await, Some(ok(0, 2)));
        let waiting = tokio::spawn(async move {
            let third = deliveries.next().await;
            (third, deliveries.next().await)
        });
        tokio::task::yield_now().await;
        third.settle(ok(0, 3));
        assert_eq!(waiting.await.unwrap(), (Some(ok(0, 3)), None));
    }

    #[tokio::test]
    async fn a_record_dropped_unsettled_is_a_retriable_failure() {
        let (mut deliveries, pending) = Deliveries::new(2);
        let mut pending = pending.into_iter();
        pending.next().unwrap().settle(ok(0, 0));
        drop(pending);
        let outcomes = deliveries.all_settled().await;
        assert_eq!(outcomes[0], ok(0, 0));
        assert!(matches!(outcomes[1], Err(ProduceError::Retriable(_))));
    }

    #[tokio::test]
    async fn all_after_streaming_part_returns_the_rest() {
        let (mut deliveries, pending) = Deliveries::new(2);
        for (i, p) in pending.into_iter().enumerate() {
            p.settle(ok(0, i as i64));
        }
        assert_eq!(deliveries.next().await, Some(ok(0, 0)));
        assert_eq!(deliveries.all_settled().await, vec![ok(0, 1)]);
    }
}
