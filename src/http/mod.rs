//! The HTTP API: one module per surface, one route table.

pub mod authenticate;
pub mod health;
pub mod metadata;
pub mod observe;
pub mod produce_v2;

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use futures_util::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::{Partition, TopicName};
use crate::error::ApiError;
use crate::formats;

/// The route table of the whole service; `/metrics` is here unless it has its own listener.
pub fn routes(cfg: &mut web::ServiceConfig, serve_metrics: bool) {
    if serve_metrics {
        cfg.service(resource("/metrics").route(web::get().to(observe::metrics)));
    }
    cfg.service(resource("/").route(web::get().to(metadata::root)))
        .service(resource("/healthz").route(web::get().to(health::healthz)))
        .service(resource("/readyz").route(web::get().to(health::readyz)))
        .service(resource("/brokers").route(web::get().to(metadata::list_brokers)))
        .service(resource("/topics").route(web::get().to(metadata::list_topics)))
        .service(
            resource("/topics/{topic}")
                .route(web::get().to(metadata::get_topic))
                .route(web::post().to(produce_v2::produce_to_topic)),
        )
        .service(
            resource("/topics/{topic}/partitions").route(web::get().to(metadata::list_partitions)),
        )
        .service(
            resource("/topics/{topic}/partitions/{partition}")
                .route(web::get().to(metadata::get_partition))
                .route(web::post().to(produce_v2::produce_to_partition)),
        )
        .default_service(web::to(route_not_found));
}

/// A resource whose unmatched methods get 405 in the Confluent envelope, carrying its
/// route template for the metrics and the access log.
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(path)
        .app_data(observe::RouteTemplate(path))
        .default_service(web::to(method_not_allowed))
}

async fn route_not_found() -> Result<HttpResponse, ApiError> {
    Err(ApiError::RouteNotFound)
}

async fn method_not_allowed() -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed)
}

/// Shared state of the handlers.
pub struct AppState {
    pub kafka: Arc<crate::kafka::Kafka>,
    pub lifecycle: Arc<crate::shutdown::Lifecycle>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rate_limits: Arc<crate::limits::RateLimits>,
    pub schemas: crate::formats::json_schema::SchemaRegistry,
    /// Request-body bytes that may be held at once (`limits.max_in_flight_bytes`).
    pub body_budget: Arc<Semaphore>,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub max_records_per_request: usize,
    pub max_record_bytes: usize,
    pub body_read_timeout: Duration,
}

/// Checks the `Accept` header of a v2 request.
fn check_accept(req: &HttpRequest) -> Result<(), ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    formats::check_accept(accept).map_err(ApiError::from)
}

/// The topic named in the path.
fn parse_topic(raw: &str) -> Result<TopicName, ApiError> {
    TopicName::parse(raw).map_err(ApiError::InvalidTopicName)
}

/// The partition named in the path: not a number is an unknown route (as in Confluent),
/// a negative number names no partition.
fn parse_partition(raw: &str) -> Result<Partition, ApiError> {
    let id: i64 = raw.parse().map_err(|_| ApiError::RouteNotFound)?;
    Partition::new(id).ok_or(ApiError::PartitionNotFound)
}

/// A request body, with its share of the in-flight byte budget (released on drop).
struct Body {
    bytes: web::Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// Takes `n` bytes of the in-flight budget, merging with what `held` already has.
fn take_budget(
    state: &AppState,
    held: &mut Option<OwnedSemaphorePermit>,
    n: usize,
) -> Result<(), ApiError> {
    let Some(n) = u32::try_from(n).ok().filter(|n| *n > 0) else {
        return Ok(());
    };
    let permit = Arc::clone(&state.body_budget)
        .try_acquire_many_owned(n)
        .map_err(|_| {
            state.metrics.shed.with_label_values(&["bytes"]).inc();
            ApiError::Overloaded
        })?;
    match held {
        Some(held) => held.merge(permit),
        None => *held = Some(permit),
    }
    Ok(())
}

/// Reads the body within `limits.body_read_timeout_ms`. A body larger than the limit is
/// refused from `Content-Length` before a byte is read, and a chunked one as soon as it
/// passes the limit. The bytes count against the in-flight budget while the request runs;
/// when the budget is spent the request is shed with 503.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> Result<Body, ApiError> {
    let limit = state.max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut budget = None;
    let declared = declared.map_or(0, |l| l as usize);
    take_budget(state, &mut budget, declared)?;
    let read = async {
        let mut body = web::BytesMut::with_capacity(declared);
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| ApiError::UnreadableBody(e.to_string()))?;
            if body.len() + chunk.len() > limit {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if declared == 0 {
                // Chunked: no size was announced, so the budget is taken as bytes arrive.
                take_budget(state, &mut budget, chunk.len())?;
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body.freeze())
    };
    let bytes = tokio::time::timeout(state.body_read_timeout, read)
        .await
        .map_err(|_| ApiError::RequestTimeout {
            timeout_ms: state.body_read_timeout.as_millis() as u64,
        })??;
    observe::with_facts(req, |f| f.bytes_in = Some(bytes.len() as u64));
    Ok(Body {
        bytes,
        _budget: budget,
    })
}

/// A `200 OK` JSON response in the v2 Content-Type.
fn v2_json(body: &impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::error::V2_CONTENT_TYPE)
        .body(serde_json::to_vec(body).expect("response bodies always serialize"))
}
