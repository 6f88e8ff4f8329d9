//! One stream of records on one request: a reader task takes records off the request body
//! as they complete and hands them to the pipeline; the response body writes each record's
//! result line as soon as that record and every record before it are settled, while the
//! request body is still arriving.
//!
//! Memory stays bounded whatever the stream's length. A record takes one of the stream's
//! `streaming.max_in_flight_records` places before it is read and gives it back once its
//! line is in the response, and its bytes are held against the service's in-flight byte
//! budget (`limits.max_in_flight_bytes`) until then. A client that does not read its
//! results stops the response body from being polled, so no place comes back, so the
//! reader stops reading, and TCP pushes back on the client.
//!
//! The reader stops at the end of the body, at a malformed record (one 400 line), a record
//! larger than `server.max_body_bytes` (one 413 line), `streaming.max_duration_ms` plus its
//! grace (records read in the grace get 408 lines), or when the service starts draining;
//! the response then writes the results of every record already read, and ends.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::web::{self, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::{error_line, failure_error, log_detail, LineWriter, Sides, Step, Target};
use crate::error::ApiError;
use crate::formats::v3::split::{Scan, Splitter};
use crate::formats::v3::V3Record;
use crate::http::guard::Gate;
use crate::http::AppState;
use crate::limits::InFlightGuard;
use crate::produce::RecordOutcomes;

/// Records read together (already in the buffer) go to the pipeline as one request, at
/// most this many: fewer pipeline calls per record, and a first result not held back long.
const MAX_RUN: usize = 256;

/// How long a stream waits for room in the in-flight byte budget before it ends with a 503
/// line: a whole v2 body is shed at once, a stream usually finds room as its own results
/// are written.
const BUDGET_WAIT: Duration = Duration::from_secs(1);

/// Result lines gathered into one chunk of the response at most, in bytes.
const MAX_CHUNK: usize = 64 * 1024;

/// Checks that the stream has a record (refusing an empty body as a whole), then starts
/// reading it; the returned body writes the results.
///
/// # Errors
/// [`ApiError::EmptyStream`] for a body without a record, [`ApiError::RequestTimeout`]
/// when none starts within `limits.body_read_timeout_ms`, [`ApiError::Overloaded`] when the
/// in-flight byte budget is spent, [`ApiError::ShuttingDown`] when draining begins first.
pub(super) async fn start(
    target: Target,
    mut payload: web::Payload,
    state: Arc<AppState>,
    gate: &Gate,
) -> Result<ResultLines, ApiError> {
    // Counted until the last line is written: shutdown waits for open streams.
    let in_flight = gate.in_flight.enter();
    let limits = &state.body_limits;
    // A stream that has not started when draining begins is refused, as a new request.
    let first = tokio::select! {
        first = first_bytes(&mut payload, limits.read_timeout()) => first?,
        () = state.lifecycle.draining() => return Err(ApiError::ShuttingDown),
    };
    let held = limits
        .hold_stream_bytes(first.len(), BUDGET_WAIT)
        .await
        .map_err(ApiError::from)?;
    let settings = state.streaming;
    let expires_at = Instant::now() + Duration::from_millis(settings.max_duration_ms);
    let ends_at = expires_at + Duration::from_millis(settings.max_duration_grace_ms);
    let metrics = Arc::clone(state.produce.metrics());
    let (items, received) = mpsc::unbounded_channel();
    let target = Arc::new(target);
    let reader = Reader {
        target: Arc::clone(&target),
        max_record_bytes: limits.max_body_bytes(),
        state,
        payload,
        buffer: first,
        splitter: Splitter::default(),
        eof: false,
        held: Some(held),
        places: Arc::new(Semaphore::new(settings.max_in_flight_records)),
        items,
        next_index: 0,
        expires_at,
        in_flight_gauge: metrics.stream_records_in_flight.clone(),
    };
    metrics.streams_open.inc();
    Ok(ResultLines {
        received,
        current: None,
        lines: LineWriter::new(&target),
        // In the request's span: the stream's log lines carry its request id, and its
        // produce spans (tracing on) are children of its server span, which lasts as long.
        reader: actix_web::rt::spawn(reader.run(ends_at).instrument(tracing::Span::current())),
        logged: false,
        _in_flight: in_flight,
        open: metrics.streams_open.clone(),
    })
}

/// JSON's whitespace (RFC 8259), which may come before, between and after records.
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Reads until the body shows something else than whitespace, which it returns from there.
async fn first_bytes(payload: &mut web::Payload, timeout: Duration) -> Result<BytesMut, ApiError> {
    let read = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
            if let Some(start) = chunk.iter().position(|b| !is_json_whitespace(*b)) {
                return Ok(BytesMut::from(&chunk[start..]));
            }
        }
        Err(ApiError::EmptyStream)
    };
    tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout {
            timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        })?
}

/// A record between its reading and its line: its place among the stream's records in
/// flight, and its bytes in the in-flight byte budget (with the whitespace before it).
struct Slot {
    place: OwnedSemaphorePermit,
    bytes: Option<OwnedSemaphorePermit>,
    _counted: Counted,
}

impl Slot {
    fn new(
        place: OwnedSemaphorePermit,
        bytes: Option<OwnedSemaphorePermit>,
        gauge: &prometheus::IntGauge,
    ) -> Slot {
        gauge.inc();
        Slot {
            place,
            bytes,
            _counted: Counted(gauge.clone()),
        }
    }
}

/// A record counted in the stream records gauge until it is dropped.
struct Counted(prometheus::IntGauge);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The places and budget of the records whose lines went into one chunk of the response,
/// given back together when it is dropped (at the end of each poll of the response body):
/// each give-back takes its semaphore's lock, once per chunk rather than twice per record.
#[derive(Default)]
struct Written {
    places: Option<OwnedSemaphorePermit>,
    bytes: Option<OwnedSemaphorePermit>,
}

impl Written {
    fn add(&mut self, slot: Slot) {
        let Slot { place, bytes, .. } = slot;
        merge(&mut self.places, Some(place));
        merge(&mut self.bytes, bytes);
    }
}

/// Permits of one semaphore, held as one.
fn merge(into: &mut Option<OwnedSemaphorePermit>, permit: Option<OwnedSemaphorePermit>) {
    match (into.as_mut(), permit) {
        (Some(held), Some(permit)) => held.merge(permit),
        (None, permit) => *into = permit,
        (Some(_), None) => {}
    }
}

/// What the reader hands the response, in record order.
enum Item {
    /// A line decided without Kafka: a record that could not be read or encoded, a late
    /// one, or the line that ends the stream (no slot).
    Line { line: Vec<u8>, slot: Option<Slot> },
    /// Records in the pipeline: their outcomes to come, in order.
    Sent {
        outcomes: RecordOutcomes,
        records: VecDeque<(Sides, Slot)>,
    },
}

/// What the reader found next in the body.
enum Next {
    Record(Bytes, Slot),
    /// The stream ends, with this last line (none at the end of the body).
    End(Option<ApiError>),
}

struct Reader {
    target: Arc<Target>,
    state: Arc<AppState>,
    payload: web::Payload,
    /// Bytes read and not yet taken as records (a record in progress).
    buffer: BytesMut,
    splitter: Splitter,
    eof: bool,
    /// The in-flight byte budget held for `buffer`.
    held: Option<OwnedSemaphorePermit>,
    /// The stream's places for records in flight.
    places: Arc<Semaphore>,
    items: mpsc::UnboundedSender<Item>,
    /// The index of the next record in the stream, for messages.
    next_index: usize,
    max_record_bytes: usize,
    /// Records read from then on get a 408 line.
    expires_at: Instant,
    in_flight_gauge: prometheus::IntGauge,
}

impl Reader {
    /// Reads, encodes and sends records until the stream ends; stops reading at `ends_at`
    /// or when the service drains.
    async fn run(mut self, ends_at: Instant) {
        let state = Arc::clone(&self.state);
        let stop = async {
            tokio::select! {
                () = state.lifecycle.draining() => {}
                () = tokio::time::sleep_until(ends_at) => {}
            }
        };
        tokio::pin!(stop);
        loop {
            let next = tokio::select! {
                biased;
                () = &mut stop => return,
                next = self.next_record() => next,
            };
            let (mut run, mut end) = match next {
                Next::Record(bytes, slot) => (vec![(bytes, slot)], None),
                Next::End(last) => (Vec::new(), Some(last)),
            };
            if end.is_none() {
                end = self.more_records(&mut run);
            }
            if self.process(run).await {
                return;
            }
            if let Some(last) = end {
                if let Some(error) = last {
                    self.send(Item::Line {
                        line: error_line(&error),
                        slot: None,
                    });
                }
                return;
            }
        }
    }

    /// Waits for a place, then for the next whole record.
    async fn next_record(&mut self) -> Next {
        let place = Arc::clone(&self.places)
            .acquire_owned()
            .await
            .expect("the stream's places are never closed");
        loop {
            if let Some(next) = self.take_record() {
                return match next {
                    Ok((bytes, held)) => {
                        let slot = self.slot(place, held);
                        Next::Record(bytes, slot)
                    }
                    Err(end) => Next::End(end),
                };
            }
            match self.payload.next().await {
                None => self.eof = true,
                Some(Err(e)) => return Next::End(Some(ApiError::UnreadableBody(e.to_string()))),
                Some(Ok(chunk)) => {
                    let limits = &self.state.body_limits;
                    match limits.hold_stream_bytes(chunk.len(), BUDGET_WAIT).await {
                        Ok(permit) => match &mut self.held {
                            Some(held) => held.merge(permit),
                            None => self.held = Some(permit),
                        },
                        Err(e) => return Next::End(Some(e.into())),
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
            }
        }
    }

    /// Takes the records already in the buffer, while the stream has places for them.
    /// `Some` when the stream ends after them.
    fn more_records(&mut self, run: &mut Vec<(Bytes, Slot)>) -> Option<Option<ApiError>> {
        while run.len() < MAX_RUN {
            let Ok(place) = Arc::clone(&self.places).try_acquire_owned() else {
                return None;
            };
            match self.take_record()? {
                Ok((bytes, held)) => {
                    let slot = self.slot(place, held);
                    run.push((bytes, slot));
                }
                Err(end) => return Some(end),
            }
        }
        None
    }

    /// The next whole record in the buffer (`Ok`, with the number of bytes it takes from
    /// the buffer, whitespace before it included), the end of the stream (`Err`, with its
    /// last line), or `None` when more bytes are needed.
    fn take_record(&mut self) -> Option<Result<(Bytes, usize), Option<ApiError>>> {
        let too_large = ApiError::RecordTooLarge {
            limit: self.max_record_bytes,
        };
        match self.splitter.scan(&self.buffer, self.eof) {
            Scan::Value { start, end } => {
                if end - start > self.max_record_bytes {
                    return Some(Err(Some(too_large)));
                }
                // The whitespace before the record stays in the budget with the record: one
                // give-back for both.
                let _ = self.buffer.split_to(start);
                let record = self.buffer.split_to(end - start).freeze();
                self.splitter.reset();
                Some(Ok((record, end)))
            }
            Scan::More { idle } => {
                self.release(idle);
                self.splitter.dropped(idle);
                if self.buffer.len() > self.max_record_bytes {
                    return Some(Err(Some(too_large)));
                }
                None
            }
            Scan::End => Some(Err(None)),
            Scan::Malformed(message) => Some(Err(Some(ApiError::MalformedJson(message)))),
        }
    }

    /// Drops `n` bytes from the front of the buffer (whitespace between records), and
    /// their budget.
    fn release(&mut self, n: usize) {
        let _ = self.buffer.split_to(n);
        if let Some(held) = &mut self.held {
            drop(held.split(n));
        }
    }

    /// A record just taken from the buffer, `len` bytes with the whitespace before it: its
    /// place, and its budget.
    fn slot(&mut self, place: OwnedSemaphorePermit, len: usize) -> Slot {
        let bytes = self.held.as_mut().and_then(|held| held.split(len));
        Slot::new(place, bytes, &self.in_flight_gauge)
    }

    /// Reads, encodes and sends a run of records; true when one of them was malformed,
    /// which ends the stream (the records after it are not answered).
    async fn process(&mut self, run: Vec<(Bytes, Slot)>) -> bool {
        let first_index = self.next_index;
        let mut encoded = Vec::with_capacity(run.len());
        let mut slots = Vec::with_capacity(run.len());
        let mut malformed = false;
        // Once per run: its records were read together.
        let expired = Instant::now() >= self.expires_at;
        for (bytes, slot) in run {
            self.next_index += 1;
            slots.push(slot);
            let result = if expired {
                Err(ApiError::StreamExpired)
            } else {
                match V3Record::parse_bytes(&bytes) {
                    Ok(record) => self.target.encode(record, &bytes, &self.state).await,
                    Err(e) => Err(e.into()),
                }
            };
            malformed = matches!(result, Err(ApiError::MalformedJson(_)));
            encoded.push(result);
            if malformed {
                break;
            }
        }
        let steps = self.target.run(&self.state, first_index, encoded).await;
        let mut slots = slots.into_iter();
        for step in steps {
            match step {
                Step::Failed(error) => self.send(Item::Line {
                    line: error_line(&error),
                    slot: slots.next(),
                }),
                Step::Sent { outcomes, sides } => {
                    let records = sides.into_iter().zip(slots.by_ref()).collect();
                    self.send(Item::Sent { outcomes, records });
                }
            }
        }
        malformed
    }

    fn send(&self, item: Item) {
        // The response is gone (the client left): this task is being stopped too.
        let _ = self.items.send(item);
    }
}

/// The response body: the result lines, in record order, as they settle.
pub(super) struct ResultLines {
    received: mpsc::UnboundedReceiver<Item>,
    /// The records in the pipeline whose lines are being written.
    current: Option<(RecordOutcomes, VecDeque<(Sides, Slot)>)>,
    /// Writes this stream's result lines.
    lines: LineWriter,
    /// Stopped when the response goes away (a client that left).
    reader: actix_web::rt::task::JoinHandle<()>,
    /// Whether librdkafka's detail of a failure was logged (once per stream).
    logged: bool,
    _in_flight: InFlightGuard,
    open: prometheus::IntGauge,
}

impl ResultLines {
    /// Appends the lines ready to be written to `out`, their records' slots to `written`;
    /// true when the stream is over.
    fn gather(&mut self, cx: &mut Context<'_>, out: &mut Vec<u8>, written: &mut Written) -> bool {
        while out.len() < MAX_CHUNK {
            if let Some((outcomes, records)) = &mut self.current {
                match outcomes.poll_next_unpin(cx) {
                    Poll::Ready(Some(outcome)) => {
                        let (sides, slot) = records.pop_front().expect("one record per outcome");
                        written.add(slot);
                        match outcome {
                            Ok(delivered) => {
                                self.lines.write(out, &delivered, &sides);
                            }
                            Err(failure) => {
                                let error = failure_error(failure);
                                log_detail(&error, &mut self.logged);
                                out.extend_from_slice(&error_line(&error));
                            }
                        }
                    }
                    Poll::Ready(None) => self.current = None,
                    Poll::Pending => return false,
                }
                continue;
            }
            match self.received.poll_recv(cx) {
                Poll::Ready(Some(Item::Line { line, slot })) => {
                    out.extend_from_slice(&line);
                    if let Some(slot) = slot {
                        written.add(slot);
                    }
                }
                Poll::Ready(Some(Item::Sent { outcomes, records })) => {
                    self.current = Some((outcomes, records));
                }
                Poll::Ready(None) => return true,
                Poll::Pending => return false,
            }
        }
        false
    }
}

impl Stream for ResultLines {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut out = Vec::new();
        // Dropped at the end of this poll: the chunk's records leave the stream's places
        // and the budget together.
        let mut written = Written::default();
        let over = self.gather(cx, &mut out, &mut written);
        if !out.is_empty() {
            Poll::Ready(Some(Ok(Bytes::from(out))))
        } else if over {
            Poll::Ready(None)
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ResultLines {
    fn drop(&mut self) {
        self.reader.abort();
        self.open.dec();
    }
}
