//! Per-request telemetry: the request id, the request's tracing span, the HTTP metrics and
//! one access-log line per request.
//!
//! Every request runs inside a `request` span carrying its `request_id` (and its
//! `principal` once authenticated), so every log line written while handling it, from any
//! module, carries them too.
//!
//! Handlers add what only they know (topic, record counts, principal) as [`RequestFacts`]
//! in the request's extensions; error responses carry their Confluent code in the
//! response's extensions.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use actix_web::body::{BodySize, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{web, Error, HttpMessage};
use serde::Serialize;
use tracing::Instrument;

use crate::error::ErrorCode;
use crate::metrics::Metrics;
use crate::telemetry::{self, traces};

/// The response header carrying the request id.
pub const REQUEST_ID: &str = "x-request-id";

/// Headers that may carry an upstream request id, in order of preference: ours, then API
/// Gateway's.
const INCOMING_REQUEST_ID_HEADERS: &[&str] = &[
    REQUEST_ID,
    "x-amzn-requestid",
    "x-amzn-request-id",
    "x-amz-apigw-id",
];

/// What a handler learned about a request, for the access log and metrics.
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub topic: Option<String>,
    pub records: Option<usize>,
    pub records_failed: Option<usize>,
    pub principal: Option<String>,
    /// The client address after trusted-proxy resolution.
    pub client_ip: Option<std::net::IpAddr>,
    /// The request's `Idempotency-Key`, hashed ([`crate::idempotency::IdempotencyKey::log_name`]).
    pub idempotency_key: Option<String>,
    /// The response is a stored outcome, replayed.
    pub idempotent_replayed: bool,
}

/// Adds to the request's [`RequestFacts`].
pub fn with_facts(req: &actix_web::HttpRequest, update: impl FnOnce(&mut RequestFacts)) {
    let mut extensions = req.extensions_mut();
    if let Some(facts) = extensions.get_mut::<RequestFacts>() {
        update(facts);
    } else {
        let mut facts = RequestFacts::default();
        update(&mut facts);
        extensions.insert(facts);
    }
}

/// The client address the auth middleware resolved (trusted-proxy aware).
pub fn client_ip(req: &actix_web::HttpRequest) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<RequestFacts>()
        .and_then(|f| f.client_ip)
}

/// Where access-log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLog {
    Off,
    /// JSON lines on stdout.
    Json,
    /// A human-readable `tracing` line (dev mode).
    Text,
}

/// The metrics and the access log, shared by the middleware.
pub struct Observability {
    pub metrics: Arc<Metrics>,
    pub access_log: AccessLog,
}

/// One access-log line. Field names are stable: dashboards and Logs Insights queries use
/// them. Counterparts of API Gateway's access log: `request_id` (requestId), `source_ip`
/// (sourceIp), `time` (requestTime), `route` (resourcePath).
#[derive(Serialize)]
struct AccessRecord<'a> {
    time: String,
    #[serde(rename = "type")]
    kind: &'static str,
    request_id: &'a str,
    method: &'a str,
    route: &'a str,
    path: &'a str,
    status: u16,
    error_code: Option<ErrorCode>,
    principal: Option<&'a str>,
    source_ip: &'a str,
    user_agent: Option<&'a str>,
    topic: Option<&'a str>,
    records: Option<usize>,
    records_failed: Option<usize>,
    idempotency_key: Option<&'a str>,
    idempotent_replayed: bool,
    bytes_in: u64,
    bytes_out: u64,
    latency_ms: f64,
    /// The request's trace (32 hex digits) when tracing is on, else null.
    trace_id: Option<&'a str>,
}

/// The route template of a resource, registered as resource data, so the middleware does
/// not have to match the path against the route table again (`match_pattern` does).
#[derive(Debug, Clone, Copy)]
pub struct RouteTemplate(pub &'static str);

/// Counts a request in the in-flight gauge until dropped.
struct InFlightGauge(prometheus::IntGauge);

impl InFlightGauge {
    fn enter(gauge: &prometheus::IntGauge) -> InFlightGauge {
        gauge.inc();
        InFlightGauge(gauge.clone())
    }
}

impl Drop for InFlightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Middleware: outermost, so it sees every response, including refusals.
pub async fn observe(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let started = Instant::now();
    let time = SystemTime::now();
    let observability = Arc::clone(
        req.app_data::<web::Data<Observability>>()
            .expect("observability is registered as app data"),
    );
    let metrics = &observability.metrics;
    let request_id = incoming_request_id(&req).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    let span = request_span(&request_id, &req);
    let bytes_in = count_body_bytes(&mut req);
    // A guard, not inc/dec around the await: a client that disconnects drops this future.
    let in_flight = InFlightGauge::enter(&metrics.http_requests_in_flight);
    let result = next.call(req).instrument(span.clone()).await;
    drop(in_flight);
    let mut response = result?;
    let latency = started.elapsed();

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID), value);
    }
    let (traceparent, recording) = traces::described(&span).unzip();
    if let Some(value) = traceparent
        .as_deref()
        .and_then(|v| HeaderValue::from_str(v).ok())
    {
        response
            .headers_mut()
            .insert(HeaderName::from_static("traceparent"), value);
    }

    let request = response.request();
    let matched;
    let route = match request.app_data::<RouteTemplate>() {
        Some(template) => template.0,
        // Refused before routing (authentication, the allowlists, shedding, draining): the
        // route its path would have taken, looked up in the route table for these only.
        None => {
            matched = request.match_pattern();
            matched.as_deref().unwrap_or("unmatched")
        }
    };
    let method = request.method().as_str();
    let method_label = method_label(request.method());
    let status = response.status();
    let extensions = request.extensions();
    let facts = extensions.get::<RequestFacts>();
    // What was read, whatever Content-Length claimed: a body refused unread counts nothing.
    let bytes_in = bytes_in.get();
    let bytes_out = match response.response().body().size() {
        BodySize::Sized(n) => n,
        _ => 0,
    };

    metrics
        .http_requests
        .with_label_values(&[route, method_label, status.as_str()])
        .inc();
    metrics
        .http_request_duration
        .with_label_values(&[route, method_label])
        .observe(latency.as_secs_f64());
    metrics
        .http_request_bytes
        .with_label_values(&[route])
        .inc_by(bytes_in);
    metrics
        .http_response_bytes
        .with_label_values(&[route])
        .inc_by(bytes_out);

    let error_code = response.response().extensions().get::<ErrorCode>().copied();
    let recording = recording == Some(true);
    if observability.access_log != AccessLog::Off || recording {
        let source_ip = facts
            .and_then(|f| f.client_ip)
            .or_else(|| request.peer_addr().map(|a| a.ip()))
            .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
        let record = AccessRecord {
            time: humantime::format_rfc3339_millis(time).to_string(),
            kind: "access",
            request_id: &request_id,
            method,
            route,
            path: request.path(),
            status: status.as_u16(),
            error_code,
            principal: facts.and_then(|f| f.principal.as_deref()),
            source_ip: &source_ip,
            user_agent: request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok()),
            topic: facts.and_then(|f| f.topic.as_deref()),
            records: facts.and_then(|f| f.records),
            records_failed: facts.and_then(|f| f.records_failed),
            idempotency_key: facts.and_then(|f| f.idempotency_key.as_deref()),
            idempotent_replayed: facts.is_some_and(|f| f.idempotent_replayed),
            bytes_in,
            bytes_out,
            latency_ms: (latency.as_secs_f64() * 1e6).round() / 1e3,
            trace_id: traceparent.as_deref().and_then(trace_id_of),
        };
        // An unsampled span records nothing: its attributes would be built for nothing.
        if recording {
            describe_server_span(&span, &record, method_label);
        }
        write_access_log(&record, observability.access_log);
    }
    drop(extensions);
    Ok(response)
}

/// The request's span, which every log line of the request carries; with tracing on it is
/// also the server span, continuing the caller's trace.
fn request_span(request_id: &str, req: &ServiceRequest) -> tracing::Span {
    if !traces::enabled() {
        return tracing::info_span!(
            target: traces::REQUEST_TARGET,
            "request",
            request_id = %request_id,
            principal = tracing::field::Empty
        );
    }
    let span = tracing::info_span!(
        target: traces::REQUEST_TARGET,
        "request",
        request_id = %request_id,
        principal = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty
    );
    traces::continue_trace(&span, req.headers());
    span
}

/// The trace id part of a `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id_of(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// The server span's name and attributes (OpenTelemetry's HTTP semantic conventions), from
/// what the access log says of the request. A 5xx is an error of the span; every refusal's
/// Confluent code is its `error.type`. `method` is the bounded label (`_other` for an
/// invented method), as the conventions want.
fn describe_server_span(span: &tracing::Span, record: &AccessRecord<'_>, method: &str) {
    use opentelemetry::trace::TraceContextExt;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    // Its name is known only once routed, after the span started.
    span.context()
        .span()
        .update_name(format!("{method} {}", record.route));
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("http.route", record.route.to_owned());
    span.set_attribute("url.path", record.path.to_owned());
    span.set_attribute("http.response.status_code", i64::from(record.status));
    span.set_attribute("client.address", record.source_ip.to_owned());
    span.set_attribute("http.request.body.size", record.bytes_in as i64);
    span.set_attribute("http.response.body.size", record.bytes_out as i64);
    if let Some(agent) = record.user_agent {
        span.set_attribute("user_agent.original", agent.to_owned());
    }
    if let Some(principal) = record.principal {
        span.set_attribute("enduser.id", principal.to_owned());
    }
    if let Some(topic) = record.topic {
        span.set_attribute("messaging.destination.name", topic.to_owned());
    }
    if let Some(records) = record.records {
        span.set_attribute("messaging.batch.message_count", records as i64);
    }
    if let Some(code) = record.error_code {
        span.set_attribute("error.type", code.0.to_string());
        span.set_attribute("kafka_rest.error_code", i64::from(code.0));
    }
    if record.status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// Wraps the request's body in a stream that counts the bytes the handlers actually read.
fn count_body_bytes(req: &mut ServiceRequest) -> Rc<Cell<u64>> {
    use futures_util::StreamExt;
    let count = Rc::new(Cell::new(0));
    let counter = Rc::clone(&count);
    let payload = req.take_payload().inspect(move |chunk| {
        if let Ok(bytes) = chunk {
            counter.set(counter.get() + bytes.len() as u64);
        }
    });
    let payload: std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<web::Bytes, PayloadError>>>,
    > = Box::pin(payload);
    req.set_payload(payload.into());
    count
}

/// The `method` label: the request line's method is whatever the client sent (any token, of
/// any length, before authentication), so only the standard methods get their own value.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "_other",
    }
}

fn write_access_log(record: &AccessRecord<'_>, access_log: AccessLog) {
    if access_log == AccessLog::Json {
        let mut line = serde_json::to_vec(record).expect("access records serialize");
        line.push(b'\n');
        // One write of a whole line: lines from concurrent workers do not interleave.
        telemetry::write_line(&line);
    } else if access_log == AccessLog::Text {
        tracing::info!(
            target: "access",
            request_id = record.request_id,
            status = record.status,
            error_code = record.error_code.map(|c| c.0),
            principal = record.principal,
            topic = record.topic,
            records = record.records,
            latency_ms = record.latency_ms,
            "{} {}",
            record.method,
            record.path
        );
    }
}

/// A request id from upstream, if it is a sane token (no log injection through it).
fn incoming_request_id(req: &ServiceRequest) -> Option<String> {
    INCOMING_REQUEST_ID_HEADERS.iter().find_map(|name| {
        let value = req.headers().get(*name)?.to_str().ok()?;
        let sane = !value.is_empty()
            && value.len() <= 128
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
        sane.then(|| value.to_owned())
    })
}

/// `GET /metrics`: the Prometheus text format.
pub async fn metrics(observability: web::Data<Observability>) -> actix_web::HttpResponse {
    observability
        .metrics
        .observe_dropped_log_lines(telemetry::dropped_lines());
    observability
        .metrics
        .observe_trace_spans(&telemetry::traces::span_counts());
    actix_web::HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(observability.metrics.render())
}

#[cfg(test)]
mod tests {
    use actix_web::http::Method;

    use super::method_label;

    #[test]
    fn only_standard_methods_get_their_own_label() {
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for invented in ["FOO", "get", "X".repeat(1000).as_str()] {
            let method = Method::from_bytes(invented.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "_other", "{invented}");
        }
    }
}
