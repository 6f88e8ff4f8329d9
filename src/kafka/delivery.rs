//! Delivery reports gathered per request: one completion per request, not a channel and a
//! future per record (FutureProducer's way, which showed up in profiles of 100-record
//! requests as oneshot sends, future polls and their allocations).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use super::producer::{Delivered, ProduceError};

type Outcome = Result<Delivered, ProduceError>;

/// The outcomes of one request's records, filled in by librdkafka's delivery callback (or
/// by the enqueueing code for records that never made it into the queue).
pub struct Batch {
    outcomes: Mutex<Vec<Option<Outcome>>>,
    remaining: AtomicUsize,
    done: Mutex<Option<oneshot::Sender<()>>>,
}

/// What travels with each record through librdkafka: its request and its index there.
pub type Opaque = Box<(Arc<Batch>, usize)>;

impl Batch {
    /// A batch of `len` records, and the signal that all of them have an outcome.
    pub fn new(len: usize) -> (Arc<Batch>, oneshot::Receiver<()>) {
        let (done, all_done) = oneshot::channel();
        let batch = Arc::new(Batch {
            outcomes: Mutex::new((0..len).map(|_| None).collect()),
            remaining: AtomicUsize::new(len),
            done: Mutex::new(Some(done)),
        });
        if len == 0 {
            batch.signal();
        }
        (batch, all_done)
    }

    /// Records the outcome of record `index`.
    pub fn complete(&self, index: usize, outcome: Outcome) {
        if let Some(slot) = self
            .outcomes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_mut(index)
        {
            *slot = Some(outcome);
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.signal();
        }
    }

    fn signal(&self) {
        if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = done.send(());
        }
    }

    /// Every outcome, in record order. A record without one (the producer went away before
    /// reporting) counts as a retriable failure: it may or may not have been written.
    pub fn outcomes(&self) -> Vec<Outcome> {
        std::mem::take(&mut *self.outcomes.lock().unwrap_or_else(|p| p.into_inner()))
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(ProduceError::Retriable(
                        "the producer was closed before delivery".into(),
                    ))
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn signals_once_every_record_has_an_outcome_in_any_order() {
        let (batch, done) = Batch::new(3);
        batch.complete(2, Err(ProduceError::QueueFull));
        batch.complete(
            0,
            Ok(Delivered {
                partition: 0,
                offset: 7,
            }),
        );
        let mut done = done;
        assert!(done.try_recv().is_err(), "not yet");
        batch.complete(
            1,
            Ok(Delivered {
                partition: 1,
                offset: 8,
            }),
        );
        done.await.unwrap();
        let outcomes = batch.outcomes();
        assert_eq!(
            outcomes[0],
            Ok(Delivered {
                partition: 0,
                offset: 7
            })
        );
        assert_eq!(
            outcomes[1],
            Ok(Delivered {
                partition: 1,
                offset: 8
            })
        );
        assert_eq!(outcomes[2], Err(ProduceError::QueueFull));
    }

    #[tokio::test]
    async fn missing_outcomes_are_retriable_failures() {
        let (batch, _done) = Batch::new(1);
        assert!(matches!(
            batch.outcomes()[0],
            Err(ProduceError::Retriable(_))
        ));
    }
}
