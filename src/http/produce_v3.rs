//! API v3 produce: `POST /v3/clusters/{cluster_id}/topics/{topic_name}/records`, a stream
//! of records each answered by its own result line ([`stream`]), and `POST
//! .../records:batch`, a batch of entries answered at once with 207.
//!
//! A thin adapter, as v2's: negotiate, check the path (cluster, topic, the caller's grant,
//! the topic's existence: all refused with a whole-request v3 error before anything is
//! read), read and encode each record ([`crate::formats::v3`]), hand runs of records to the
//! produce pipeline ([`ProduceService::produce_each`]: each record stands alone), render
//! each result in Confluent's shapes.

mod stream;

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde::Serialize;

use super::authenticate::{authorize, principal, AuthState};
use super::guard::Gate;
use super::idempotent::{self, Produced};
use super::observe::{client_ip, with_facts};
use super::v3::{self, V3Error};
use super::{check_accept, parse_topic, read_body, AppState};
use crate::auth::{Operation, Principal};
use crate::domain::{Header, TopicName};
use crate::error::{ApiError, ErrorBody, ErrorCode};
use crate::formats::v3::{batch, encode, Encoded, SideResult, V3Record};
use crate::kafka::Delivered;
use crate::limits::Body;
use crate::produce::{Caller, ProduceRequest, RecordFailure, RecordOutcomes};
use crate::validation::Violation;

/// `POST /v3/clusters/{cluster_id}/topics/{topic_name}/records`: 200 once the stream is
/// accepted, then one line per record, in order, as each is settled.
pub async fn produce_records(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
    gate: web::Data<Gate>,
) -> Result<HttpResponse, V3Error> {
    let (cluster_id, raw_topic) = path.into_inner();
    let topic = admit(&req, &state, &auth, &cluster_id, &raw_topic).await?;
    idempotent::refuse_on_stream(&req, &auth)?;
    let target = Target {
        cluster_id,
        topic,
        principal: principal(&req),
        client_ip: client_ip(&req),
    };
    let lines = stream::start(target, payload, state.into_inner(), &gate).await?;
    Ok(HttpResponse::Ok()
        .content_type(v3::V3_CONTENT_TYPE)
        .streaming(lines))
}

/// `POST /v3/clusters/{cluster_id}/topics/{topic_name}/records:batch`: 207 with the
/// successes and failures in entry order; the status of the first failure when every entry
/// failed (ours: a partner is never told 2xx when nothing was written).
pub async fn produce_batch(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, V3Error> {
    let (cluster_id, raw_topic) = path.into_inner();
    let topic = admit(&req, &state, &auth, &cluster_id, &raw_topic).await?;
    let key = idempotent::request_key(&req, &auth)?;
    let body = read_body(&req, payload, &state).await?;
    let key_header = idempotent::record_header(&state, key.as_ref());
    let target = Target {
        cluster_id,
        topic,
        principal: principal(&req),
        client_ip: client_ip(&req),
    };
    let topic = target.topic.clone();
    let bytes = body.bytes.clone();
    let work = produce_entries(req.clone(), state.clone(), target, body, key_header);
    let Some(key) = key else {
        return Ok(work.await?.response);
    };
    // Boxed: kept out of this future's own state, which every request allocates.
    let work = Box::pin(work);
    Ok(idempotent::run(&req, &state, topic.as_str(), key, &bytes, work).await?)
}

/// A batch once its body is read: the part an `Idempotency-Key` runs once.
async fn produce_entries(
    req: HttpRequest,
    state: web::Data<AppState>,
    target: Target,
    body: Body,
    key_header: Option<Header>,
) -> Result<Produced, ApiError> {
    let entries = batch::parse(&body.bytes, state.batch.max_entries)?;
    with_facts(&req, |f| f.records = Some(entries.len()));
    let mut ids = Vec::with_capacity(entries.len());
    let mut encoded = Vec::with_capacity(entries.len());
    for entry in entries {
        ids.push(entry.id);
        encoded.push(match entry.record {
            Ok(record) => target
                .encode(record, &body.bytes, &state)
                .await
                .map(|mut e| {
                    e.record.headers.extend(key_header.clone());
                    e
                }),
            Err(e) => Err(e.into()),
        });
    }
    let mut results = Vec::with_capacity(ids.len());
    for step in target.run(&state, 0, encoded).await {
        match step {
            Step::Failed(error) => results.push(Err(error)),
            Step::Sent { outcomes, sides } => {
                let settled: Vec<_> = outcomes.collect().await;
                for (outcome, sides) in settled.into_iter().zip(sides) {
                    results.push(outcome.map(|d| (d, sides)).map_err(failure_error));
                }
            }
        }
    }
    let mut body = BatchResponse::default();
    let mut first_failure = None;
    let mut logged = false;
    for (id, result) in ids.iter().zip(&results) {
        match result {
            Ok((delivered, sides)) => {
                body.successes
                    .push(target.result(Some(id), delivered, sides))
            }
            Err(error) => {
                log_detail(error, &mut logged);
                first_failure.get_or_insert(error.code());
                body.failures.push(BatchFailure {
                    id,
                    error_code: error.code(),
                    message: error.to_string(),
                });
            }
        }
    }
    with_facts(&req, |f| f.records_failed = Some(body.failures.len()));
    let possibly_written = body.successes.len()
        + results
            .iter()
            .filter(|r| matches!(r, Err(ApiError::RecordFailed(e)) if e.may_have_been_written()))
            .count();
    let Some(code) = first_failure.filter(|_| body.successes.is_empty()) else {
        return Ok(Produced {
            response: v3::json(StatusCode::MULTI_STATUS, &body),
            possibly_written,
        });
    };
    let mut response = v3::json(code.status(), &body);
    response.extensions_mut().insert(code);
    if let Some(secs) = code.retry_after_secs() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    Ok(Produced {
        response,
        possibly_written,
    })
}

/// What is checked before anything is read, in order: media types, the topic's name, the
/// caller's grant, the cluster, the topic's existence.
async fn admit(
    req: &HttpRequest,
    state: &AppState,
    auth: &AuthState,
    cluster_id: &str,
    raw_topic: &str,
) -> Result<TopicName, ApiError> {
    check_content_type(req)?;
    check_accept(req)?;
    let topic = parse_topic(raw_topic)?;
    with_facts(req, |f| f.topic = Some(topic.to_string()));
    authorize(req, auth, Operation::Produce, topic.as_str())?;
    if *state.kafka.cluster_id().await? != *cluster_id {
        return Err(ApiError::ClusterNotFound(cluster_id.to_owned()));
    }
    state.produce.check_topic(&topic).await?;
    Ok(topic)
}

/// `application/json`, UTF-8 if a charset is named (415 for another type, 400 for another
/// charset).
fn check_content_type(req: &HttpRequest) -> Result<(), ApiError> {
    let mime: mime::Mime = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or(ApiError::UnsupportedMediaType)?;
    if !mime.essence_str().eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    match mime.get_param(mime::CHARSET) {
        Some(charset) if !charset.as_str().eq_ignore_ascii_case("utf-8") => {
            Err(ApiError::UnsupportedCharset(charset.as_str().to_owned()))
        }
        _ => Ok(()),
    }
}

/// Where records go and on whose behalf: what every record of a request shares.
struct Target {
    cluster_id: String,
    topic: TopicName,
    principal: Option<Principal>,
    client_ip: Option<IpAddr>,
}

/// A run of records on its way to the pipeline.
enum Step {
    /// A record that could not be read or encoded (or came too late): its error.
    Failed(ApiError),
    /// Records handed to the pipeline together, their outcomes to come in order, and what
    /// their results say about their keys and values.
    Sent {
        outcomes: RecordOutcomes,
        sides: Vec<Sides>,
    },
}

/// How a record's key and value were written, and the timestamp it was sent with.
struct Sides {
    key: Option<SideResult>,
    value: Option<SideResult>,
    timestamp_ms: Option<i64>,
}

impl Target {
    fn caller(&self) -> Caller<'_> {
        Caller {
            principal: self.principal.as_ref(),
            client_ip: self.client_ip,
        }
    }

    /// Resolves the schemas of one record and encodes it.
    async fn encode(
        &self,
        record: V3Record<'_>,
        source: &Bytes,
        state: &AppState,
    ) -> Result<Encoded, ApiError> {
        Ok(encode(record, source, &self.topic, state.schemas.as_ref()).await?)
    }

    /// Hands the records (numbered in messages from `first_index`) to the pipeline in
    /// order: records of one format that follow each other go as one pipeline request,
    /// each record checked on its own; a record that failed before stands alone.
    async fn run(
        &self,
        state: &AppState,
        first_index: usize,
        records: Vec<Result<Encoded, ApiError>>,
    ) -> Vec<Step> {
        let mut steps = Vec::new();
        let mut run: Vec<Encoded> = Vec::new();
        let mut run_start = first_index;
        for (index, record) in (first_index..).zip(records) {
            let breaks_run = match &record {
                Ok(encoded) => run.first().is_some_and(|r| r.format != encoded.format),
                Err(_) => true,
            };
            if breaks_run && !run.is_empty() {
                steps.push(self.send(state, run_start, std::mem::take(&mut run)).await);
            }
            match record {
                Ok(encoded) => {
                    if run.is_empty() {
                        run_start = index;
                    }
                    run.push(encoded);
                }
                Err(error) => steps.push(Step::Failed(error)),
            }
        }
        if !run.is_empty() {
            steps.push(self.send(state, run_start, run).await);
        }
        steps
    }

    async fn send(&self, state: &AppState, first_index: usize, run: Vec<Encoded>) -> Step {
        let format = run[0].format;
        let (records, sides) = run
            .into_iter()
            .map(|e| {
                let sides = Sides {
                    key: e.key,
                    value: e.value,
                    timestamp_ms: e.record.timestamp_ms,
                };
                (e.record, sides)
            })
            .unzip();
        let request = ProduceRequest {
            caller: self.caller(),
            topic: &self.topic,
            format,
            records,
        };
        Step::Sent {
            outcomes: state.produce.produce_each(request, first_index).await,
            sides,
        }
    }

    /// A record's result: a stream's line (`id` absent, `error_code` 200) or a batch's
    /// success entry.
    fn result<'a>(
        &'a self,
        id: Option<&'a str>,
        delivered: &Delivered,
        sides: &'a Sides,
    ) -> ResultBody<'a> {
        ResultBody {
            id,
            error_code: id.is_none().then_some(200),
            cluster_id: &self.cluster_id,
            topic_name: self.topic.as_str(),
            partition_id: delivered.partition,
            offset: delivered.offset,
            timestamp: delivered
                .timestamp_ms
                .or(sides.timestamp_ms)
                .and_then(iso_8601_millis),
            key: sides.key.as_ref().map(DataBody::of),
            value: sides.value.as_ref().map(DataBody::of),
        }
    }
}

/// How a stream writes its result lines: what every line begins with, `{"error_code":200,
/// "cluster_id":...,"topic_name":...,"partition_id":`, escaped once per stream rather than
/// per record, and the last timestamp written, formatted once for the records that share
/// it (a run of records read together gets the same time).
struct LineWriter {
    prefix: Vec<u8>,
    last_timestamp: Option<(i64, String)>,
}

impl LineWriter {
    fn new(target: &Target) -> LineWriter {
        let text = |s: &str| serde_json::to_string(s).expect("a string serializes");
        let prefix = format!(
            "{{\"error_code\":200,\"cluster_id\":{},\"topic_name\":{},\"partition_id\":",
            text(&target.cluster_id),
            text(target.topic.as_str())
        )
        .into_bytes();
        LineWriter {
            prefix,
            last_timestamp: None,
        }
    }

    /// The line of a delivered record: see [`write_line`].
    fn write(&mut self, out: &mut Vec<u8>, delivered: &Delivered, sides: &Sides) {
        let ms = delivered.timestamp_ms.or(sides.timestamp_ms);
        let timestamp = match (ms, &self.last_timestamp) {
            (Some(ms), Some((last, text))) if *last == ms => Some(text.as_str()),
            (Some(ms), _) => {
                self.last_timestamp = rfc3339_millis(ms).map(|at| (ms, at.to_string()));
                self.last_timestamp.as_ref().map(|(_, text)| text.as_str())
            }
            (None, _) => None,
        };
        write_line(&self.prefix, out, delivered, timestamp, sides);
    }
}

/// A stream's result line for a delivered record, with its `\r\n`, appended to `out`: the
/// bytes of `Target::result` serialized (a test holds the two together), written without
/// serializing the shared part again and without the timestamp's `String`. A stream writes
/// one per record, so this is on its hot path.
fn write_line(
    prefix: &[u8],
    out: &mut Vec<u8>,
    delivered: &Delivered,
    timestamp: Option<&str>,
    sides: &Sides,
) {
    // Numbers through itoa rather than `fmt` (serde_json's own way of writing them).
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(prefix);
    out.extend_from_slice(number.format(delivered.partition).as_bytes());
    out.extend_from_slice(b",\"offset\":");
    out.extend_from_slice(number.format(delivered.offset).as_bytes());
    if let Some(at) = timestamp {
        out.extend_from_slice(b",\"timestamp\":\"");
        out.extend_from_slice(at.as_bytes());
        out.push(b'"');
    }
    for (name, side) in [
        (&b",\"key\":"[..], &sides.key),
        (&b",\"value\":"[..], &sides.value),
    ] {
        let Some(side) = side else { continue };
        out.extend_from_slice(name);
        if side.schema.is_some() {
            serde_json::to_writer(&mut *out, &DataBody::of(side)).expect("a result serializes");
        } else {
            // `DataBody` without its schema fields: a type name needs no escaping.
            out.extend_from_slice(b"{\"type\":\"");
            out.extend_from_slice(side.data_type.as_str().as_bytes());
            out.extend_from_slice(b"\",\"size\":");
            out.extend_from_slice(number.format(side.size).as_bytes());
            out.push(b'}');
        }
    }
    out.extend_from_slice(b"}\r\n");
}

/// The error a record's result reports.
fn failure_error(failure: RecordFailure) -> ApiError {
    match failure {
        RecordFailure::Refused(refused) => refused.into(),
        RecordFailure::Failed(e) => ApiError::RecordFailed(e),
    }
}

/// The partner reads a generic message; librdkafka's detail of a refusal goes to the log,
/// once per request (a stream's records would repeat it).
fn log_detail(error: &ApiError, logged: &mut bool) {
    if let ApiError::RecordFailed(e) = error {
        if let Some(detail) = e.detail().filter(|_| !*logged) {
            *logged = true;
            tracing::warn!(detail, "records failed: Kafka refused the producer");
        }
    }
}

/// `2026-12-01T10:00:00.000Z`: milliseconds, UTC.
fn iso_8601_millis(ms: i64) -> Option<String> {
    rfc3339_millis(ms).map(|at| at.to_string())
}

/// A result's timestamp, ready to be displayed; `None` before the epoch.
fn rfc3339_millis(ms: i64) -> Option<humantime::Rfc3339Timestamp> {
    let ms = u64::try_from(ms).ok()?;
    Some(humantime::format_rfc3339_millis(
        UNIX_EPOCH + Duration::from_millis(ms),
    ))
}

/// A record's result, in Confluent's `ProduceResponse` (a stream's line) or
/// `ProduceBatchResponseSuccessEntry` shape.
#[derive(Serialize)]
struct ResultBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<u16>,
    cluster_id: &'a str,
    topic_name: &'a str,
    partition_id: i32,
    offset: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<DataBody<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<DataBody<'a>>,
}

/// A key's or value's part of a result (Confluent's `ProduceResponseData`).
#[derive(Serialize)]
struct DataBody<'a> {
    #[serde(rename = "type")]
    data_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_id: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schema_version: Option<i32>,
    size: i64,
}

impl DataBody<'_> {
    fn of(side: &SideResult) -> DataBody<'_> {
        let schema = side.schema.as_deref();
        DataBody {
            data_type: side.data_type.as_str(),
            subject: schema.map(|s| s.subject.as_str()),
            schema_id: schema.map(|s| s.id),
            schema_version: schema.map(|s| s.version),
            size: side.size,
        }
    }
}

#[derive(Serialize, Default)]
struct BatchResponse<'a> {
    successes: Vec<ResultBody<'a>>,
    failures: Vec<BatchFailure<'a>>,
}

#[derive(Serialize)]
struct BatchFailure<'a> {
    id: &'a str,
    error_code: ErrorCode,
    message: String,
}

/// A failed record's result (a stream's line): the error envelope, and for a record that
/// does not match its topic's JSON Schema, the violations as v2 lists them.
fn error_line(error: &ApiError) -> Vec<u8> {
    #[derive(Serialize)]
    struct WithViolations<'a> {
        error_code: ErrorCode,
        message: String,
        violations: &'a [Violation],
        violations_omitted: usize,
    }
    let mut line = match error {
        ApiError::SchemaViolations(report) => serde_json::to_vec(&WithViolations {
            error_code: error.code(),
            message: error.to_string(),
            violations: &report.violations,
            violations_omitted: report.omitted,
        })
        .expect("the violations envelope serializes"),
        _ => ErrorBody {
            error_code: error.code(),
            message: &error.to_string(),
        }
        .to_vec(),
    };
    line.extend_from_slice(b"\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_have_milliseconds_in_utc() {
        assert_eq!(
            iso_8601_millis(1_796_119_200_000).as_deref(),
            Some("2026-12-01T10:00:00.000Z")
        );
        assert_eq!(
            iso_8601_millis(1_612_552_482_123).as_deref(),
            Some("2021-02-05T19:14:42.123Z")
        );
        assert_eq!(iso_8601_millis(-1), None);
    }

    #[test]
    fn written_lines_are_the_serialized_result_body() {
        use crate::formats::v3::DataType;

        let targets = [("krp-bench", "orders"), ("a\"b\\c\u{e9}\u{1}", "t.x_y-z")];
        let side = |data_type, size| SideResult {
            data_type,
            schema: None,
            size,
        };
        for (cluster_id, topic) in targets {
            let target = Target {
                cluster_id: cluster_id.to_owned(),
                topic: TopicName::parse(topic).unwrap(),
                principal: None,
                client_ip: None,
            };
            let mut lines = LineWriter::new(&target);
            for (partition, offset, delivered_ts, sent_ts) in [
                (0, 0, Some(1_796_119_200_000), None),
                (7, i64::MAX, None, Some(1_612_552_482_123)),
                (2, 5, None, None),
                (1, 3, Some(-1), Some(5)),
            ] {
                let delivered = Delivered {
                    partition,
                    offset,
                    timestamp_ms: delivered_ts,
                };
                for (key, value) in [
                    (None, None),
                    (Some(side(DataType::Binary, 3)), None),
                    (None, Some(side(DataType::Json, -1))),
                    (
                        Some(side(DataType::String, 0)),
                        Some(side(DataType::Json, 7)),
                    ),
                ] {
                    let sides = Sides {
                        key,
                        value,
                        timestamp_ms: sent_ts,
                    };
                    let mut expected =
                        serde_json::to_vec(&target.result(None, &delivered, &sides)).unwrap();
                    expected.extend_from_slice(b"\r\n");
                    let mut written = b"earlier lines ".to_vec();
                    lines.write(&mut written, &delivered, &sides);
                    assert_eq!(
                        String::from_utf8_lossy(&written[b"earlier lines ".len()..]),
                        String::from_utf8_lossy(&expected)
                    );
                }
            }
        }
    }

    #[test]
    fn error_lines_are_the_envelope_and_crlf() {
        assert_eq!(
            error_line(&ApiError::PartitionNotFound),
            b"{\"error_code\":40402,\"message\":\"Partition not found.\"}\r\n"
        );
    }
}
