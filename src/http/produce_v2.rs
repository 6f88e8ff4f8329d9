//! API v2 produce: `POST /topics/{topic}` and `POST /topics/{topic}/partitions/{partition}`.
//!
//! A thin adapter: negotiate media types, parse the path and the envelope, resolve and
//! encode the records, hand them to the produce pipeline, render the v2 body and status.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use super::authenticate::{authorize, principal, AuthState};
use super::idempotent::{self, Produced};
use super::observe::{client_ip, with_facts};
use super::{check_accept, parse_partition, parse_topic, read_body, v2, AppState};
use crate::auth::Operation;
use crate::domain::{Header, Partition, TopicName};
use crate::error::{self, ApiError, ErrorCode};
use crate::formats::EmbeddedFormat;
use crate::formats::{self, Encoders};
use crate::kafka::{Outcome, ProduceError};
use crate::limits::Body;
use crate::produce::{Caller, ProduceRequest};

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
    state: &web::Data<AppState>,
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
    let path_partition = raw_partition.map(parse_partition).transpose()?;
    let key = idempotent::request_key(req, auth)?;
    let body = read_body(req, payload, state).await?;
    let work = Work {
        req: req.clone(),
        state: web::Data::clone(state),
        format,
        topic: topic.clone(),
        path_partition,
        key_header: idempotent::record_header(state, key.as_ref()),
    };
    let Some(key) = key else {
        return work.run(body).await.map(|p| p.response);
    };
    let bytes = body.bytes.clone();
    // Boxed: kept out of this future's own state, which every request allocates.
    let work = Box::pin(work.run(body));
    idempotent::run(req, state, topic.as_str(), key, &bytes, work).await
}

/// What is left of a produce request once its body is read: the part an
/// `Idempotency-Key` runs once.
struct Work {
    req: HttpRequest,
    state: web::Data<AppState>,
    format: EmbeddedFormat,
    topic: TopicName,
    path_partition: Option<Partition>,
    /// `idempotency.record_header` with the request's key, for every record.
    key_header: Option<Header>,
}

impl Work {
    async fn run(self, body: Body) -> Result<Produced, ApiError> {
        let Work {
            req,
            state,
            format,
            topic,
            path_partition,
            key_header,
        } = self;
        let (encoders, mut records) = formats::read_v2(
            format,
            &topic,
            &body.bytes,
            state.produce.max_records(),
            state.schemas.as_ref(),
        )
        .await?;
        with_facts(&req, |f| f.records = Some(records.len()));
        for record in &mut records {
            // A record's own partition wins over the path's.
            record.partition = record.partition.or(path_partition);
            record.headers.extend(key_header.clone());
        }
        let principal = principal(&req);
        let caller = Caller {
            principal: principal.as_ref(),
            client_ip: client_ip(&req),
        };
        let outcomes = state
            .produce
            .produce(ProduceRequest {
                caller,
                topic: &topic,
                format,
                records,
            })
            .await?;
        let results = outcomes.all_settled().await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        with_facts(&req, |f| f.records_failed = Some(failed));
        let possibly_written = results
            .iter()
            .filter(|r| {
                r.as_ref()
                    .err()
                    .is_none_or(ProduceError::may_have_been_written)
            })
            .count();
        Ok(Produced {
            response: respond(&results, Some(&encoders)),
            possibly_written,
        })
    }
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

fn respond(results: &[Outcome], encoders: Option<&Encoders>) -> HttpResponse {
    // The partner reads a generic message; the detail goes to the log, in the request span.
    if let Some(detail) = results
        .iter()
        .find_map(|r| r.as_ref().err().and_then(ProduceError::detail))
    {
        tracing::warn!(detail, "records failed: Kafka refused the producer");
    }
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
        key_schema_id: encoders.and_then(|e| e.key_schema_id),
        value_schema_id: encoders.and_then(|e| e.value_schema_id),
    };
    let mut response = v2::json(&body);
    if let ErrorCodeOrOk::Failed(code) = produce_status(&codes) {
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

/// The HTTP status of a produce response, from each record's error code (`None` = written).
///
/// Confluent's rule: 401 if any record failed authentication, else 403 if any failed
/// authorization, else 200. Ours adds: when no record was written, the status of the first
/// failure, so a partner is never told 200 for a request that wrote nothing.
pub fn produce_status(record_codes: &[Option<ErrorCode>]) -> ErrorCodeOrOk {
    let failed = || record_codes.iter().flatten();
    if let Some(code) = failed().find(|c| **c == ErrorCode::KAFKA_AUTHENTICATION) {
        return ErrorCodeOrOk::Failed(*code);
    }
    if let Some(code) = failed().find(|c| **c == ErrorCode::KAFKA_AUTHORIZATION) {
        return ErrorCodeOrOk::Failed(*code);
    }
    if record_codes.iter().all(Option::is_some) {
        if let Some(first) = failed().next() {
            return ErrorCodeOrOk::Failed(*first);
        }
    }
    ErrorCodeOrOk::Ok
}

/// The outcome [`produce_status`] derives for a whole produce request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCodeOrOk {
    Ok,
    /// The status and `Retry-After` hint come from this code.
    Failed(ErrorCode),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kafka::Delivered;
    use actix_web::body::MessageBody;

    fn body_of(response: HttpResponse) -> String {
        let bytes = response.into_body().try_into_bytes().unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn partial_failure_is_200_with_per_record_errors() {
        let response = respond(
            &[
                Ok(Delivered {
                    partition: 1,
                    offset: 42,
                    timestamp_ms: None,
                }),
                Err(ProduceError::Retriable("Local: Message timed out".into())),
            ],
            None,
        );
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        assert_eq!(
            body_of(response),
            r#"{"offsets":[{"partition":1,"offset":42,"error_code":null,"error":null},{"partition":null,"offset":null,"error_code":50003,"error":"Local: Message timed out"}],"key_schema_id":null,"value_schema_id":null}"#
        );
    }

    #[test]
    fn nothing_written_is_never_200() {
        let response = respond(
            &[Err(ProduceError::QueueFull), Err(ProduceError::QueueFull)],
            None,
        );
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers().get(header::RETRY_AFTER).unwrap(), "1");
    }

    #[test]
    fn produce_status_rules() {
        let ok = None;
        let timeout = Some(ErrorCode::KAFKA_RETRIABLE_ERROR);
        let auth = Some(ErrorCode::KAFKA_AUTHENTICATION);
        let denied = Some(ErrorCode::KAFKA_AUTHORIZATION);
        let full = Some(ErrorCode::NO_BROKER_AVAILABLE);
        let fatal = Some(ErrorCode::KAFKA_ERROR);
        let failed = ErrorCodeOrOk::Failed;
        let table = [
            (vec![ok, ok], ErrorCodeOrOk::Ok),
            (vec![ok, timeout], ErrorCodeOrOk::Ok),
            (vec![ok, denied], failed(ErrorCode::KAFKA_AUTHORIZATION)),
            (vec![denied, auth], failed(ErrorCode::KAFKA_AUTHENTICATION)),
            (
                vec![timeout, timeout],
                failed(ErrorCode::KAFKA_RETRIABLE_ERROR),
            ),
            (vec![full, fatal], failed(ErrorCode::NO_BROKER_AVAILABLE)),
            (vec![fatal], failed(ErrorCode::KAFKA_ERROR)),
        ];
        for (codes, expected) in table {
            assert_eq!(produce_status(&codes), expected, "{codes:?}");
        }
    }

    fn outcome() -> impl proptest::strategy::Strategy<Value = Outcome> {
        use proptest::prelude::*;
        let text = || "[a-z ]{0,12}";
        prop_oneof![
            (0..100i32, 0..1_000_000i64).prop_map(|(partition, offset)| Ok(Delivered {
                partition,
                offset,
                timestamp_ms: None,
            })),
            text().prop_map(|t| Err(ProduceError::Retriable(t))),
            text().prop_map(|t| Err(ProduceError::NonRetriable(t))),
            Just(Err(ProduceError::QueueFull)),
            text().prop_map(|t| Err(ProduceError::Authentication(t))),
            text().prop_map(|t| Err(ProduceError::Authorization(t))),
            Just(Err(ProduceError::UnknownTopic)),
            Just(Err(ProduceError::UnknownPartition)),
        ]
    }

    proptest::proptest! {
        /// The status rule over any mix of record outcomes: never 2xx when nothing was
        /// written; 401, else 403, when any record failed so; else 200 when something was
        /// written; else the first failure's status, with `Retry-After` when retrying
        /// helps. Each record's entry says what became of it, in order.
        #[test]
        fn the_status_follows_the_records(outcomes in proptest::collection::vec(outcome(), 1..40)) {
            let response = respond(&outcomes, None);
            let status = response.status();
            let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
            let body: serde_json::Value = serde_json::from_str(&body_of(response)).unwrap();
            let written = outcomes.iter().filter(|o| o.is_ok()).count();
            let codes: Vec<Option<ErrorCode>> = outcomes
                .iter()
                .map(|o| o.as_ref().err().map(error::record_error_code))
                .collect();
            if written == 0 {
                proptest::prop_assert!(!status.is_success(), "{status} for nothing written");
            }
            let any = |code: ErrorCode| codes.contains(&Some(code));
            let first_failure = codes.iter().flatten().next().copied();
            let expected = if any(ErrorCode::KAFKA_AUTHENTICATION) {
                Some(ErrorCode::KAFKA_AUTHENTICATION)
            } else if any(ErrorCode::KAFKA_AUTHORIZATION) {
                Some(ErrorCode::KAFKA_AUTHORIZATION)
            } else if written > 0 {
                None
            } else {
                first_failure
            };
            match expected {
                None => {
                    proptest::prop_assert_eq!(status.as_u16(), 200);
                    proptest::prop_assert!(retry_after.is_none());
                }
                Some(code) => {
                    proptest::prop_assert_eq!(status, code.status());
                    proptest::prop_assert_eq!(
                        retry_after.map(|v| v.to_str().unwrap().to_owned()),
                        code.retry_after_secs().map(|s| s.to_string())
                    );
                }
            }
            let entries = body["offsets"].as_array().unwrap();
            proptest::prop_assert_eq!(entries.len(), outcomes.len());
            for (entry, outcome) in entries.iter().zip(&outcomes) {
                match outcome {
                    Ok(delivered) => {
                        proptest::prop_assert_eq!(&entry["partition"], delivered.partition);
                        proptest::prop_assert_eq!(&entry["offset"], delivered.offset);
                        proptest::prop_assert!(entry["error_code"].is_null());
                    }
                    Err(e) => {
                        proptest::prop_assert!(entry["partition"].is_null());
                        proptest::prop_assert_eq!(&entry["error_code"], error::record_error_code(e).0);
                    }
                }
            }
        }
    }
}
