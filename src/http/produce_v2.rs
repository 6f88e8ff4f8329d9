//! API v2 produce: `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{partition}`.

use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::authenticate::{authorize, principal, AuthState};
use super::observe::{client_ip, with_facts};
use super::{check_accept, parse_partition, parse_topic, read_body, AppState};
use crate::auth::{Operation, Principal};
use crate::domain::TopicName;
use crate::error::{self, ApiError, ErrorCode, ErrorCodeOrOk};
use crate::formats::{self, EmbeddedFormat, ProduceBatch, Record};
use crate::kafka::{Delivered, ProduceError};

/// `POST /topics/{topic}`.
pub async fn produce_to_topic(
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    produce(&req, payload, &state, &auth, &path, None).await
}

/// `POST /topics/{topic}/partitions/{partition}`.
pub async fn produce_to_partition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<AppState>,
    auth: web::Data<AuthState>,
) -> Result<HttpResponse, ApiError> {
    let (topic, partition) = path.into_inner();
    produce(&req, payload, &state, &auth, &topic, Some(&partition)).await
}

async fn produce(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
    auth: &AuthState,
    raw_topic: &str,
    raw_partition: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = formats::request_format(content_type)?;
    check_accept(req)?;
    let topic = parse_topic(raw_topic)?;
    with_facts(req, |f| f.topic = Some(topic.to_string()));
    authorize(req, auth, Operation::Produce, topic.as_str())?;
    let principal = principal(req);
    let path_partition = raw_partition.map(parse_partition).transpose()?;
    let body = read_body(req, payload, state).await?;
    let batch = ProduceBatch::parse(&body.bytes, format)?;
    with_facts(req, |f| f.records = Some(batch.records.len()));
    check_sizes(state, &batch)?;
    let record_bytes: usize = batch.records.iter().map(Record::size_bytes).sum();
    check_rate(
        req,
        state,
        principal.as_ref(),
        batch.records.len(),
        record_bytes,
    )?;
    if format == EmbeddedFormat::Json {
        state
            .schemas
            .validate(topic.as_str(), &batch.records)
            .map_err(|report| ApiError::SchemaViolations(Box::new(report)))?;
    }

    // Partitions are numbered from 0, so checking the highest one named checks them all.
    let highest = batch
        .records
        .iter()
        .filter_map(|r| r.partition)
        .chain(path_partition)
        .max();
    state.kafka.topic(&topic, highest).await?;

    let mut records = batch.records;
    for record in &mut records {
        record.partition = record.partition.or(path_partition);
    }
    let results = state.kafka.produce(&topic, &records, now_ms()).await;
    let principal_id = principal.as_ref().map(|p| p.id.as_str());
    count_records(state, &topic, principal_id, format, &records, &results);
    let failed = results.iter().filter(|r| r.is_err()).count();
    with_facts(req, |f| f.records_failed = Some(failed));
    Ok(respond(&results))
}

/// Refuses requests with too many records or a record too large for Kafka, naming the
/// record and the limit.
fn check_sizes(state: &AppState, batch: &ProduceBatch) -> Result<(), ApiError> {
    if batch.records.len() > state.max_records_per_request {
        return Err(ApiError::TooManyRecords {
            count: batch.records.len(),
            limit: state.max_records_per_request,
        });
    }
    if let Some((index, record)) = batch
        .records
        .iter()
        .enumerate()
        .find(|(_, r)| r.size_bytes() > state.max_record_bytes)
    {
        return Err(ApiError::RecordTooLarge {
            index,
            size: record.size_bytes(),
            limit: state.max_record_bytes,
        });
    }
    Ok(())
}

/// Charges the request to the caller's rate limits (the principal, or the client address
/// without authentication) and the global ones.
fn check_rate(
    req: &HttpRequest,
    state: &AppState,
    principal: Option<&Principal>,
    records: usize,
    bytes: usize,
) -> Result<(), ApiError> {
    if !state.rate_limits.enabled() {
        return Ok(());
    }
    let (key, scopes) = match principal {
        Some(p) => (p.id.clone(), p.scopes.as_slice()),
        None => (
            client_ip(req).map(|ip| ip.to_string()).unwrap_or_default(),
            &[][..],
        ),
    };
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    state
        .rate_limits
        .check(&key, scopes, clamp(records), clamp(bytes))
        .map_err(|limited| {
            state
                .metrics
                .rate_limited
                .with_label_values(&[limited.scope, limited.unit.as_str()])
                .inc();
            ApiError::RateLimited(limited)
        })
}

/// Records by outcome, and the bytes of those written.
fn count_records(
    state: &AppState,
    topic: &TopicName,
    principal: Option<&str>,
    format: EmbeddedFormat,
    records: &[Record],
    results: &[Result<Delivered, ProduceError>],
) {
    let metrics = &state.metrics;
    let topic = metrics.topic_label(topic.as_str());
    let principal = metrics.principal_label(principal);
    // One counter update per outcome, not per record: label lookups hash every label.
    let mut written = 0;
    let mut written_bytes = 0;
    let mut failed: Vec<(ErrorCode, u64)> = Vec::new();
    for (record, result) in records.iter().zip(results) {
        match result {
            Ok(_) => {
                written += 1;
                written_bytes += record.size_bytes() as u64;
            }
            Err(e) => {
                let code = error::record_error_code(e);
                match failed.iter_mut().find(|(c, _)| *c == code) {
                    Some((_, n)) => *n += 1,
                    None => failed.push((code, 1)),
                }
            }
        }
    }
    let outcomes = (written > 0)
        .then(|| ("ok".to_owned(), written))
        .into_iter()
        .chain(failed.into_iter().map(|(code, n)| (code.0.to_string(), n)));
    for (outcome, n) in outcomes {
        metrics
            .records_produced
            .with_label_values(&[&outcome, format.as_str(), topic, principal])
            .inc_by(n);
    }
    metrics
        .record_bytes
        .with_label_values(&[format.as_str(), topic, principal])
        .inc_by(written_bytes);
}

/// One entry of `offsets`.
#[derive(Serialize)]
struct OffsetEntry {
    partition: Option<i32>,
    offset: Option<i64>,
    error_code: Option<ErrorCode>,
    error: Option<String>,
}

#[derive(Serialize)]
struct ProduceResponse {
    offsets: Vec<OffsetEntry>,
    key_schema_id: Option<i32>,
    value_schema_id: Option<i32>,
}

fn respond(results: &[Result<Delivered, ProduceError>]) -> HttpResponse {
    let offsets: Vec<OffsetEntry> = results
        .iter()
        .map(|r| match r {
            Ok(d) => OffsetEntry {
                partition: Some(d.partition),
                offset: Some(d.offset),
                error_code: None,
                error: None,
            },
            Err(e) => OffsetEntry {
                partition: None,
                offset: None,
                error_code: Some(error::record_error_code(e)),
                error: Some(e.to_string()),
            },
        })
        .collect();
    let codes: Vec<Option<ErrorCode>> = offsets.iter().map(|o| o.error_code).collect();
    let body = ProduceResponse {
        offsets,
        key_schema_id: None,
        value_schema_id: None,
    };
    let mut response = super::v2_json(&body);
    if let ErrorCodeOrOk::Failed(code) = error::produce_status(&codes) {
        *response.status_mut() = code.status();
        response.extensions_mut().insert(code);
        if let Some(secs) = code.retry_after_secs() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
    }
    response
}

/// The record timestamp: v2 has none, so it is the time of the request.
fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body_of(response: HttpResponse) -> String {
        let bytes = response.into_body().try_into_bytes().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn partial_failure_is_200_with_per_record_errors() {
        let response = respond(&[
            Ok(Delivered {
                partition: 1,
                offset: 42,
            }),
            Err(ProduceError::Retriable("Local: Message timed out".into())),
        ]);
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(
            body_of(response),
            r#"{"offsets":[{"partition":1,"offset":42,"error_code":null,"error":null},{"partition":null,"offset":null,"error_code":50003,"error":"Local: Message timed out"}],"key_schema_id":null,"value_schema_id":null}"#
        );
    }

    #[test]
    fn nothing_written_is_never_200() {
        let response = respond(&[Err(ProduceError::QueueFull), Err(ProduceError::QueueFull)]);
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }
}
