//! The HTTP edge: one route table, one thin adapter per API surface (`produce_v2`,
//! `produce_v3`, `metadata`, `resources_v3`, `health`, `openapi`), the steps metadata reads
//! share (`describe`), the v2 and v3 renderings (`v2`, `v3`), and the middleware that wraps
//! them all: `observe` (request id, span, metrics, access log), `cors` (browser clients),
//! `guard` (draining and the in-flight budget) and `authenticate`.

pub mod authenticate;
pub mod cors;
mod describe;
pub mod guard;
pub mod health;
mod idempotent;
pub mod metadata;
pub mod observe;
pub mod openapi;
pub mod produce_v2;
pub mod produce_v3;
pub mod resources_v3;
pub mod v2;
pub mod v3;

use std::sync::Arc;

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::Method;
use actix_web::{web, FromRequest, Handler, HttpRequest, HttpResponse, Responder};

use crate::config::{AdvertisedUrl, BatchSettings, StreamingSettings};
use crate::domain::{Partition, TopicName};
use crate::error::ApiError;
use crate::formats::{self, SchemaFormats};
use crate::idempotency::Idempotency;
use crate::kafka::Kafka;
use crate::limits::{Body, BodyLimits};
use crate::produce::{Caller, ProduceService};
use crate::shutdown::Lifecycle;

/// One route: a method on a path template, and the handler that answers it.
struct Endpoint {
    method: Method,
    path: &'static str,
    route: actix_web::Route,
}

fn endpoint<F, Args>(method: Method, path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    Endpoint {
        route: web::method(method.clone()).to(handler),
        method,
        path,
    }
}

fn get<F, Args>(path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(Method::GET, path, handler)
}

fn post<F, Args>(path: &'static str, handler: F) -> Endpoint
where
    F: Handler<Args>,
    Args: FromRequest + 'static,
    F::Output: Responder + 'static,
{
    endpoint(Method::POST, path, handler)
}

/// The route table of the whole service; `/metrics` is here unless it has its own listener.
///
/// The one list of what the service answers: [`routes`] registers exactly these, and the
/// OpenAPI document (`openapi/openapi.json`) is tested against [`route_list`], so a route
/// cannot be added or removed without the document knowing.
fn endpoints(serve_metrics: bool) -> Vec<Endpoint> {
    let mut table = vec![
        get("/", metadata::root),
        get("/healthz", health::healthz),
        get("/readyz", health::readyz),
        get("/openapi.json", openapi::document),
        get("/v3/openapi.json", openapi::document),
        get("/brokers", metadata::list_brokers),
        get("/topics", metadata::list_topics),
        get("/topics/{topic}", metadata::get_topic),
        post("/topics/{topic}", produce_v2::produce_to_topic),
        get("/topics/{topic}/partitions", metadata::list_partitions),
        get(
            "/topics/{topic}/partitions/{partition}",
            metadata::get_partition,
        ),
        post(
            "/topics/{topic}/partitions/{partition}",
            produce_v2::produce_to_partition,
        ),
        get(
            "/topics/{topic}/partitions/{partition}/offsets",
            metadata::get_partition_offsets,
        ),
        get("/v3/clusters", resources_v3::list_clusters),
        get("/v3/clusters/{cluster_id}", resources_v3::get_cluster),
        get(
            "/v3/clusters/{cluster_id}/topics",
            resources_v3::list_topics,
        ),
        get(
            "/v3/clusters/{cluster_id}/topics/{topic_name}",
            resources_v3::get_topic,
        ),
        get(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions",
            resources_v3::list_partitions,
        ),
        get(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/partitions/{partition_id}",
            resources_v3::get_partition,
        ),
        get(
            "/v3/clusters/{cluster_id}/brokers",
            resources_v3::list_brokers,
        ),
        post(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/records",
            produce_v3::produce_records,
        ),
        post(
            "/v3/clusters/{cluster_id}/topics/{topic_name}/records:batch",
            produce_v3::produce_batch,
        ),
    ];
    if serve_metrics {
        table.push(get("/metrics", observe::metrics));
    }
    table
}

/// Every (method, path template) of the route table, in registration order.
pub fn route_list(serve_metrics: bool) -> Vec<(Method, &'static str)> {
    endpoints(serve_metrics)
        .into_iter()
        .map(|e| (e.method, e.path))
        .collect()
}

/// Registers the route table: one resource per path template, carrying its template for
/// the metrics and the access log, whose other methods get 405 with `Allow` (RFC 9110).
/// Unknown paths get 404; both in the Confluent envelope.
pub fn routes(cfg: &mut web::ServiceConfig, serve_metrics: bool) {
    let mut resources: Vec<(&'static str, Vec<Endpoint>)> = Vec::new();
    for endpoint in endpoints(serve_metrics) {
        match resources
            .iter_mut()
            .find(|(path, _)| *path == endpoint.path)
        {
            Some((_, same_path)) => same_path.push(endpoint),
            None => resources.push((endpoint.path, vec![endpoint])),
        }
    }
    for (path, endpoints) in resources {
        let allow = endpoints
            .iter()
            .map(|e| e.method.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let allow = HeaderValue::from_str(&allow).expect("method names are header-safe");
        let mut resource = web::resource(path)
            .app_data(observe::RouteTemplate(path))
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move { method_not_allowed(&req, allow) }
            }));
        for endpoint in endpoints {
            resource = resource.route(endpoint.route);
        }
        cfg.service(resource);
    }
    cfg.default_service(web::to(route_not_found));
}

async fn route_not_found(req: HttpRequest) -> HttpResponse {
    v3::error_response_for(req.path(), &ApiError::RouteNotFound)
}

fn method_not_allowed(req: &HttpRequest, allow: HeaderValue) -> HttpResponse {
    let mut response = v3::error_response_for(req.path(), &ApiError::MethodNotAllowed);
    response.headers_mut().insert(header::ALLOW, allow);
    response
}

/// Shared state of the handlers.
pub struct AppState {
    pub kafka: Arc<Kafka>,
    pub produce: ProduceService,
    pub body_limits: BodyLimits,
    pub lifecycle: Arc<Lifecycle>,
    /// The Schema Registry formats' resolver; `None` without a registry (they answer 42206).
    pub schemas: Option<SchemaFormats>,
    /// `server.advertised_url`: the base of the links in v3 bodies, when set.
    pub advertised_url: Option<AdvertisedUrl>,
    /// API v3 streams of records.
    pub streaming: StreamingSettings,
    /// API v3 batches of records.
    pub batch: BatchSettings,
    /// `Idempotency-Key` claims and stored outcomes.
    pub idempotency: Arc<Idempotency>,
}

/// Checks the `Accept` header of a v2 request, and of a v3 one (which answers
/// `application/json`, one of the types it accepts).
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

/// Reads the request body within the body guard rails (`limits::body`).
async fn read_body(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<Body, ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let principal = authenticate::principal(req);
    let caller = Caller {
        principal: principal.as_ref(),
        client_ip: observe::client_ip(req),
    };
    let caller = caller.key().into_owned();
    Ok(state.body_limits.read(declared, payload, caller).await?)
}
