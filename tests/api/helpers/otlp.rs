//! An OTLP trace receiver in the test process, over HTTP/protobuf or gRPC: it decodes what
//! the service exports with the OpenTelemetry protocol's own messages
//! (`opentelemetry-proto`), as a collector would, and keeps the spans. No collector installs
//! on these machines.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpResponse, HttpServer};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use super::{free_port, wait_until};

/// One span as received.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// OTLP's `SpanKind`: 2 server, 4 producer.
    pub kind: i32,
    /// OTLP's `StatusCode`: 0 unset, 2 error.
    pub status: i32,
    /// Attribute values as text (strings as they are, numbers in decimal).
    pub attributes: HashMap<String, String>,
    /// The resource's `service.name`.
    pub service: String,
    /// The resource's attributes, as text.
    pub resource: HashMap<String, String>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;
/// The headers (gRPC metadata) of every export request, lower-case names.
type Headers = Arc<Mutex<Vec<(String, String)>>>;

/// The receiver, listening until dropped (HTTP) or the test's runtime ends (gRPC).
pub struct Collector {
    /// What `tracing.endpoint` should say.
    pub endpoint: String,
    spans: Spans,
    headers: Headers,
    server: Option<actix_web::dev::ServerHandle>,
    /// A listener that never answers ([`Collector::black_hole`]).
    _silent: Option<std::net::TcpListener>,
}

impl Collector {
    /// OTLP/HTTP with protobuf bodies, at `/v1/traces`.
    pub fn http() -> Collector {
        let spans = Spans::default();
        let headers = Headers::default();
        let kept = Arc::clone(&spans);
        let seen = Arc::clone(&headers);
        let server = HttpServer::new(move || {
            let kept = Arc::clone(&kept);
            let seen = Arc::clone(&seen);
            App::new().route(
                "/v1/traces",
                web::post().to(move |req: actix_web::HttpRequest, body: web::Bytes| {
                    let kept = Arc::clone(&kept);
                    let seen = Arc::clone(&seen);
                    async move {
                        seen.lock()
                            .unwrap()
                            .extend(req.headers().iter().map(|(n, v)| {
                                (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())
                            }));
                        let request = ExportTraceServiceRequest::decode(body.as_ref())
                            .expect("an OTLP protobuf export request");
                        keep(&kept, request);
                        HttpResponse::Ok()
                            .content_type("application/x-protobuf")
                            .body(ExportTraceServiceResponse::default().encode_to_vec())
                    }
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
        let port = server.addrs()[0].port();
        let server = server.run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Collector {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            spans,
            headers,
            server: Some(handle),
            _silent: None,
        }
    }

    /// OTLP/gRPC (`TraceService/Export`).
    pub fn grpc() -> Collector {
        let spans = Spans::default();
        let headers = Headers::default();
        let port = free_port();
        let service =
            TraceServiceServer::new(GrpcReceiver(Arc::clone(&spans), Arc::clone(&headers)));
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve(([127, 0, 0, 1], port).into()),
        );
        Collector {
            endpoint: format!("http://127.0.0.1:{port}"),
            spans,
            headers,
            server: None,
            _silent: None,
        }
    }

    /// An HTTP endpoint that takes connections and never answers: every export waits for
    /// its timeout, as with a collector that hangs.
    pub fn black_hole() -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        Collector {
            endpoint: format!("http://127.0.0.1:{port}/v1/traces"),
            spans: Spans::default(),
            headers: Headers::default(),
            server: None,
            _silent: Some(listener),
        }
    }

    /// The value of header `name` in the export requests received so far.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans.lock().unwrap().clone()
    }

    /// The spans of `trace_id` once there are at least `count` of them (30 s at most).
    pub async fn trace(&self, trace_id: &str, count: usize) -> Vec<ReceivedSpan> {
        wait_until(Duration::from_secs(30), async || {
            let spans: Vec<ReceivedSpan> = self
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == trace_id)
                .collect();
            if spans.len() >= count {
                Ok(())
            } else {
                Err(format!(
                    "{} of {count} spans of trace {trace_id}: {spans:#?}",
                    spans.len()
                ))
            }
        })
        .await;
        self.spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            drop(server.stop(false));
        }
    }
}

struct GrpcReceiver(Spans, Headers);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.1.lock().unwrap().extend(
            request
                .metadata()
                .clone()
                .into_headers()
                .iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned())),
        );
        keep(&self.0, request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn keep(spans: &Spans, request: ExportTraceServiceRequest) {
    let mut kept = spans.lock().unwrap();
    for resource_spans in request.resource_spans {
        let resource: HashMap<String, String> = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .map(|a| {
                (
                    a.key.clone(),
                    a.value.as_ref().map(text).unwrap_or_default(),
                )
            })
            .collect();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                kept.push(ReceivedSpan {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: span.kind,
                    status: span.status.map_or(0, |s| s.code),
                    attributes: span
                        .attributes
                        .iter()
                        .map(|a| {
                            (
                                a.key.clone(),
                                a.value.as_ref().map(text).unwrap_or_default(),
                            )
                        })
                        .collect(),
                    service: service.clone(),
                    resource: resource.clone(),
                });
            }
        }
    }
}

fn text(value: &opentelemetry_proto::tonic::common::v1::AnyValue) -> String {
    match &value.value {
        Some(Value::StringValue(s)) => s.clone(),
        Some(Value::IntValue(i)) => i.to_string(),
        Some(Value::BoolValue(b)) => b.to_string(),
        Some(Value::DoubleValue(d)) => d.to_string(),
        other => format!("{other:?}"),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
