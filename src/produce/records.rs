//! The outcomes of records run through the pipeline each on its own
//! ([`super::ProduceService::produce_each`]): the refusals of its steps and Kafka's outcomes
//! of the records it sent, merged back into request order.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;

use super::{Outcomes, Refused};
use crate::kafka::{Delivered, ProduceError};

/// Why one record was not written.
#[derive(Debug, Clone)]
pub enum RecordFailure {
    /// A step of the pipeline refused it; it was never sent.
    Refused(Refused),
    /// It was sent, and Kafka did not take it.
    Failed(ProduceError),
}

/// One outcome per record, in request order, each as soon as that record and every record
/// before it are settled: a refused record's at once, a sent record's when Kafka reports.
pub struct RecordOutcomes {
    /// One entry per record: its refusal, or `None` for a record handed to Kafka.
    refused: Vec<Option<Refused>>,
    /// The first record not handed out yet.
    next: usize,
    sent: Outcomes,
}

impl RecordOutcomes {
    pub(super) fn new(refused: Vec<Option<Refused>>, sent: Outcomes) -> RecordOutcomes {
        RecordOutcomes {
            refused,
            next: 0,
            sent,
        }
    }

    /// How many records (refused or sent).
    pub fn len(&self) -> usize {
        self.refused.len()
    }

    /// True for no records.
    pub fn is_empty(&self) -> bool {
        self.refused.is_empty()
    }
}

impl Stream for RecordOutcomes {
    type Item = Result<Delivered, RecordFailure>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let Some(slot) = this.refused.get_mut(this.next) else {
            return Poll::Ready(None);
        };
        if let Some(refusal) = slot.take() {
            this.next += 1;
            return Poll::Ready(Some(Err(RecordFailure::Refused(refusal))));
        }
        let polled = Pin::new(&mut this.sent).poll_next(cx);
        if let Poll::Ready(Some(_)) = &polled {
            this.next += 1;
        }
        polled.map(|outcome| outcome.map(|o| o.map_err(RecordFailure::Failed)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.refused.len() - self.next;
        (left, Some(left))
    }
}
