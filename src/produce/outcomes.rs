//! The outcomes of one produce request as they settle, counted in the metrics on the way.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::Stream;

use crate::domain::{Record, TopicName};
use crate::error::{self, ErrorCode};
use crate::formats::EmbeddedFormat;
use crate::kafka::{Deliveries, Outcome};
use crate::metrics::Metrics;

/// One outcome per record, in request order, each as soon as that record and every record
/// before it are settled. Read them one by one as a [`Stream`] (v3 writes a line each), or
/// all at once with [`Outcomes::all_settled`] (v2).
///
/// Outcomes are counted in `kafka_rest_records_produced_total` and
/// `kafka_rest_record_bytes_total` as they are handed out, one counter update per outcome
/// kind when this is dropped (label lookups hash every label, so not one per record).
///
/// It owns what it needs (no borrow of the request): an API v3 stream hands it from the
/// task that reads the records to the response that writes their results. Of the records
/// it keeps only their sizes: librdkafka holds its own copy of each record until delivered,
/// and a stream's records in flight would otherwise be held twice.
pub struct Outcomes {
    deliveries: Deliveries,
    /// Each record's key + value bytes, for `kafka_rest_record_bytes_total`.
    sizes: Vec<u64>,
    /// The first record not handed out yet.
    next: usize,
    tally: Tally,
    metrics: Arc<Metrics>,
    topic: TopicName,
    principal: Option<String>,
    format: EmbeddedFormat,
    /// The trace's `produce` span, ended when this is (nothing with tracing off).
    span: tracing::Span,
}

#[derive(Default)]
struct Tally {
    written: u64,
    written_bytes: u64,
    failed: Vec<(ErrorCode, u64)>,
}

impl Outcomes {
    pub(super) fn new(
        deliveries: Deliveries,
        records: &[Record],
        metrics: Arc<Metrics>,
        topic: TopicName,
        principal: Option<String>,
        format: EmbeddedFormat,
        span: tracing::Span,
    ) -> Outcomes {
        Outcomes {
            deliveries,
            sizes: records.iter().map(|r| r.size_bytes() as u64).collect(),
            next: 0,
            tally: Tally::default(),
            metrics,
            topic,
            principal,
            format,
            span,
        }
    }

    /// Waits for every record; the outcomes not yet handed out, in request order.
    pub async fn all_settled(mut self) -> Vec<Outcome> {
        let outcomes = self.deliveries.all_settled().await;
        for outcome in &outcomes {
            self.count(outcome);
        }
        outcomes
    }

    fn count(&mut self, outcome: &Outcome) {
        match outcome {
            Ok(_) => {
                self.tally.written += 1;
                self.tally.written_bytes += self.sizes[self.next];
            }
            Err(e) => {
                let code = error::record_error_code(e);
                match self.tally.failed.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => self.tally.failed.push((code, 1)),
                }
            }
        }
        self.next += 1;
    }
}

impl Stream for Outcomes {
    type Item = Outcome;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outcome>> {
        let polled = Pin::new(&mut self.deliveries).poll_next(cx);
        if let Poll::Ready(Some(outcome)) = &polled {
            self.count(outcome);
        }
        polled
    }
}

impl Drop for Outcomes {
    fn drop(&mut self) {
        let metrics = &self.metrics;
        let topic = metrics.topic_label(self.topic.as_str());
        let principal = metrics.principal_label(self.principal.as_deref());
        let format = self.format.as_str();
        let tally = std::mem::take(&mut self.tally);
        if let Some((code, _)) = tally.failed.first() {
            let failed: u64 = tally.failed.iter().map(|(_, n)| n).sum();
            self.span.record("kafka_rest.records_failed", failed);
            self.span.record("error.type", code.0);
            self.span.record("otel.status_code", "error");
        }
        let outcomes = (tally.written > 0)
            .then(|| ("ok".to_owned(), tally.written))
            .into_iter()
            .chain(
                tally
                    .failed
                    .into_iter()
                    .map(|(code, n)| (code.0.to_string(), n)),
            );
        for (outcome, n) in outcomes {
            metrics
                .records_produced
                .with_label_values(&[&outcome, format, topic, principal])
                .inc_by(n);
        }
        metrics
            .record_bytes
            .with_label_values(&[format, topic, principal])
            .inc_by(tally.written_bytes);
    }
}
