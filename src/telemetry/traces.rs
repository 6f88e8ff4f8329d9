//! OpenTelemetry traces: the `tracing` spans of a request, exported over OTLP.
//!
//! `tracing` stays the one instrumentation API: [`layer`] adds `tracing-opentelemetry`'s
//! layer, which turns the request span and the spans of [`TARGET`] into OpenTelemetry
//! spans. Spans of [`TARGET`] exist only for that layer (the log lines never see them), so
//! with tracing off they are disabled at their call site and cost nothing.
//!
//! The OpenTelemetry SDK's batch processor exports from a thread of its own, through a
//! bounded queue ([`Bounded`]); what it exports, fails to export and drops is counted for
//! `kafka_rest_trace_spans_total` ([`span_counts`]).

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::header::HeaderMap;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceId, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_aws::trace::XrayPropagator;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig, WithTonicConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, IdGenerator, RandomIdGenerator, Sampler,
    SdkTracerProvider, SpanData, SpanExporter, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use secrecy::ExposeSecret;
use tracing::{Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use super::TelemetryError;
use crate::config::{OtlpProtocol, TracingSettings};

/// The target of spans made for traces only: authentication, schema resolution,
/// validation, the wait for Kafka.
pub const TARGET: &str = "kafka_rest_proxy::traces";

/// The target of the request span, which the log lines carry too (its `request_id`) and
/// traces make the server span.
pub const REQUEST_TARGET: &str = "kafka_rest_proxy::request";

/// What the rest of the service asks of tracing while it is on.
struct Active {
    /// `tracing.record_header`, when records get one.
    record_header: Option<String>,
}

/// Set once, by [`layer`]: tracing is on.
static ACTIVE: OnceLock<Active> = OnceLock::new();

/// Spans counted on their way out, for `kafka_rest_trace_spans_total`.
static COUNTS: SpanCounts = SpanCounts::new();

/// Whether tracing is on (`tracing.enabled`).
pub fn enabled() -> bool {
    ACTIVE.get().is_some()
}

/// The Kafka header produced records get, with [`traceparent`] of the span that produced
/// them; `None` with tracing off or `tracing.record_header` empty.
pub fn record_header() -> Option<&'static str> {
    ACTIVE.get()?.record_header.as_deref()
}

/// Ends the export when dropped: the spans still queued are exported (within the
/// shutdown timeout), then the exporter's runtime stops.
#[must_use = "dropping the guard stops the export of spans"]
pub struct TracesGuard {
    provider: SdkTracerProvider,
    /// The gRPC exporter's runtime (tonic's connection tasks run on it); none over HTTP,
    /// whose blocking client has its own.
    runtime: Option<tokio::runtime::Runtime>,
}

impl Drop for TracesGuard {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown_with_timeout(Duration::from_secs(5)) {
            tracing::warn!(error = %e, "spans still queued at exit were not all exported");
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

/// The OpenTelemetry layer for the request span and the spans of [`TARGET`], exporting
/// as `settings` say; tracing is [`enabled`] from then on.
///
/// # Errors
/// [`TelemetryError::Install`] when the exporter cannot be built or tracing was already
/// set up.
pub fn layer<S>(
    settings: &TracingSettings,
) -> Result<(Box<dyn Layer<S> + Send + Sync>, TracesGuard), TelemetryError>
where
    S: Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    let (exporter, runtime) = exporter(settings)?;
    let processor = Bounded::new(
        BatchSpanProcessor::new(
            Counted(exporter),
            BatchConfigBuilder::default()
                .with_max_queue_size(settings.max_queue_size)
                .with_max_export_batch_size(settings.max_export_batch_size)
                .with_scheduled_delay(Duration::from_millis(settings.scheduled_delay_ms))
                .build(),
        ),
        settings.max_queue_size,
    );
    let service_name = settings
        .service_name
        .clone()
        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(|| "kafka-rest-proxy".to_owned());
    // `Resource::builder` reads OTEL_RESOURCE_ATTRIBUTES.
    let resource = Resource::builder()
        .with_service_name(service_name)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            settings.sampling_ratio,
        ))))
        .with_id_generator(TraceIds::default())
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("kafka-rest-proxy");
    ACTIVE
        .set(Active {
            record_header: Some(settings.record_header.clone()).filter(|h| !h.is_empty()),
        })
        .map_err(|_| TelemetryError::Install("tracing is already set up".into()))?;
    let layer = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_target(false)
        .with_level(false)
        .with_tracked_inactivity(false)
        // The request span and the trace-only spans; nothing is logged at these targets, so
        // the log's events do not become span events.
        .with_filter(
            Targets::new()
                .with_target(TARGET, Level::INFO)
                .with_target(REQUEST_TARGET, Level::INFO),
        );
    Ok((Box::new(layer), TracesGuard { provider, runtime }))
}

/// The OTLP exporter `settings` describe, with the runtime a gRPC one runs on.
fn exporter(
    settings: &TracingSettings,
) -> Result<
    (
        opentelemetry_otlp::SpanExporter,
        Option<tokio::runtime::Runtime>,
    ),
    TelemetryError,
> {
    let protocol = settings.protocol.or_else(protocol_from_env);
    let timeout = Duration::from_millis(settings.timeout_ms);
    let headers = settings
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.expose_secret().to_owned()));
    let failed = |e: opentelemetry_otlp::ExporterBuildError| {
        TelemetryError::Install(format!("cannot build the OTLP span exporter: {e}"))
    };
    if protocol == Some(OtlpProtocol::Grpc) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("otlp-export")
            .enable_all()
            .build()
            .map_err(|e| TelemetryError::Install(format!("cannot start the OTLP runtime: {e}")))?;
        // tonic spawns its connection's tasks on the runtime it is built in.
        let _entered = runtime.enter();
        let mut metadata = opentelemetry_otlp::tonic_types::metadata::MetadataMap::new();
        for (name, value) in headers {
            let name = name.to_ascii_lowercase();
            let key = tonic::metadata::AsciiMetadataKey::from_bytes(name.as_bytes())
                .map_err(|_| invalid_header(&name))?;
            let value = value.parse().map_err(|_| invalid_header(&name))?;
            metadata.insert(key, value);
        }
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_timeout(timeout)
            .with_metadata(metadata);
        if let Some(endpoint) = &settings.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        let exporter = builder.build().map_err(failed)?;
        drop(_entered);
        return Ok((exporter, Some(runtime)));
    }
    let mut builder = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout)
        .with_headers(headers.collect::<HashMap<_, _>>());
    if let Some(endpoint) = &settings.endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    Ok((builder.build().map_err(failed)?, None))
}

fn invalid_header(name: &str) -> TelemetryError {
    TelemetryError::Install(format!(
        "tracing.headers: {name:?} cannot be sent as gRPC metadata"
    ))
}

/// The protocol the standard variables name: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
/// `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc` or `http/protobuf`; other values are ignored).
fn protocol_from_env() -> Option<OtlpProtocol> {
    [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ]
    .iter()
    .find_map(|name| match std::env::var(name).ok()?.trim() {
        "grpc" => Some(OtlpProtocol::Grpc),
        "http/protobuf" => Some(OtlpProtocol::HttpProtobuf),
        _ => None,
    })
}

/// Where a request's trace comes from, read from its headers.
#[derive(Debug)]
pub enum Incoming {
    /// A caller's span to continue (W3C `traceparent`, or `X-Amzn-Trace-Id` with a parent).
    Parent(Context),
    /// API Gateway's trace id without a parent segment (`X-Amzn-Trace-Id: Root=...` alone).
    Root(TraceId),
    /// Nothing usable: a new trace.
    New,
}

impl Incoming {
    /// W3C `traceparent`/`tracestate` first; without a valid one, API Gateway's
    /// `X-Amzn-Trace-Id`, whose trace id is kept even when it names no parent segment.
    pub fn read(headers: &HeaderMap) -> Incoming {
        let carrier = Headers(headers);
        let w3c = TraceContextPropagator::new().extract(&carrier);
        if w3c.span().span_context().is_valid() {
            return Incoming::Parent(w3c);
        }
        let xray = XrayPropagator::new().extract(&carrier);
        let context = xray.span().span_context().clone();
        // Without `Sampled=` (or with `Sampled=?`) X-Ray defers the decision to this
        // service, which a parent cannot say to the sampler (it would read "not sampled"
        // and never trace): such a trace is continued as its Root alone, and decided here.
        let deferred = context.trace_flags().to_u8() & !TraceFlags::SAMPLED.to_u8() != 0;
        if context.is_valid() && !deferred {
            Incoming::Parent(xray)
        } else if context.trace_id() != TraceId::INVALID {
            Incoming::Root(context.trace_id())
        } else {
            Incoming::New
        }
    }
}

/// Continues the caller's trace in `span` (the request span, not yet entered), as
/// [`Incoming::read`] finds it; else `span` starts a new trace.
pub fn continue_trace(span: &tracing::Span, headers: &HeaderMap) {
    match Incoming::read(headers) {
        Incoming::Parent(context) => {
            let _ = span.set_parent(context);
        }
        Incoming::Root(trace_id) => {
            // No parent to hang under, but the trace is API Gateway's: the new root span
            // gets its trace id. Building the span now, on this thread, is what takes it.
            NEXT_TRACE_ID.set(Some(trace_id));
            let _ = span.context();
            NEXT_TRACE_ID.set(None);
        }
        Incoming::New => {}
    }
}

/// A child span of the request's trace, made only when that trace is sampled (see
/// [`sampled`]); else (and with tracing off) `Span::none()`, which costs nothing.
macro_rules! child_span {
    ($name:expr $(, $($fields:tt)*)?) => {
        if $crate::telemetry::traces::sampled() {
            tracing::info_span!(target: $crate::telemetry::traces::TARGET, $name $(, $($fields)*)?)
        } else {
            tracing::Span::none()
        }
    };
}
pub(crate) use child_span;

/// Whether the trace of the span entered here (a request's) is sampled: only then are its
/// child spans worth making, as an unsampled trace exports nothing. False with tracing off.
pub fn sampled() -> bool {
    enabled() && Context::map_current(|cx| cx.span().span_context().is_sampled())
}

/// The W3C `traceparent` of `span`'s OpenTelemetry span, when tracing is on.
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    described(span).map(|(traceparent, _)| traceparent)
}

/// [`traceparent`] and whether the span is recording (sampled), from one look-up.
pub fn described(span: &tracing::Span) -> Option<(String, bool)> {
    if !enabled() {
        return None;
    }
    let context = span.context();
    let span = context.span();
    let span_context = span.span_context();
    span_context
        .is_valid()
        .then(|| (format_traceparent(span_context), span.is_recording()))
}

/// The `traceparent` of the span whose context is current here: within a request, its
/// server span (or the child entered). `None` with tracing off.
pub fn current_traceparent() -> Option<String> {
    if !enabled() {
        return None;
    }
    Context::map_current(|cx| {
        let span = cx.span();
        let span_context = span.span_context();
        span_context
            .is_valid()
            .then(|| format_traceparent(span_context))
    })
}

/// The trace id of `span` as 32 hex digits, when tracing is on.
pub fn trace_id(span: &tracing::Span) -> Option<String> {
    if !enabled() {
        return None;
    }
    let trace_id = span.context().span().span_context().trace_id();
    (trace_id != TraceId::INVALID).then(|| trace_id.to_string())
}

/// The W3C `traceparent` of a span context (`00-<trace id>-<span id>-<flags>`).
pub fn format_traceparent(context: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        context.trace_id(),
        context.span_id(),
        context.trace_flags().to_u8()
    )
}

/// Request headers as the propagators read them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

thread_local! {
    /// The trace id the next new trace on this thread takes ([`continue_trace`]).
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// X-Ray compatible ids (a trace id's first 32 bits are its epoch second, as X-Ray
/// requires; the other 96 random), and the trace id of an `X-Amzn-Trace-Id` without a
/// parent when one is waiting. (opentelemetry-aws's `XrayIdGenerator` makes the same ids
/// through two formatted strings per trace.)
#[derive(Debug, Default)]
struct TraceIds(RandomIdGenerator);

impl IdGenerator for TraceIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID.take().unwrap_or_else(|| {
            let random = u128::from_be_bytes(self.0.new_trace_id().to_bytes());
            let seconds = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32);
            TraceId::from((u128::from(seconds) << 96) | (random & ((1 << 96) - 1)))
        })
    }

    fn new_span_id(&self) -> opentelemetry::trace::SpanId {
        self.0.new_span_id()
    }
}

/// What became of ended spans.
struct SpanCounts {
    exported: AtomicU64,
    export_failed: AtomicU64,
    dropped_queue_full: AtomicU64,
    /// Spans handed to the batch processor and not yet through an export.
    queued: AtomicUsize,
}

impl SpanCounts {
    const fn new() -> SpanCounts {
        SpanCounts {
            exported: AtomicU64::new(0),
            export_failed: AtomicU64::new(0),
            dropped_queue_full: AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        }
    }
}

/// Spans so far, by outcome: `(exported, export_failed, dropped_queue_full)`.
pub fn span_counts() -> [(&'static str, u64); 3] {
    [
        ("exported", COUNTS.exported.load(Ordering::Relaxed)),
        (
            "export_failed",
            COUNTS.export_failed.load(Ordering::Relaxed),
        ),
        (
            "dropped_queue_full",
            COUNTS.dropped_queue_full.load(Ordering::Relaxed),
        ),
    ]
}

/// The SDK's batch processor behind a queue bound of our own: it drops spans past its own
/// bound without saying how many, so this one refuses them first, counting each. The bound
/// covers every span the processor holds, queued or in an export, so the processor's own
/// queue (as large) never fills.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    capacity: usize,
}

impl Bounded {
    fn new(inner: BatchSpanProcessor, capacity: usize) -> Bounded {
        Bounded { inner, capacity }
    }
}

impl SpanProcessor for Bounded {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let place = COUNTS
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        if place.is_err() {
            COUNTS.dropped_queue_full.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter, counting each batch's spans as exported or failed; either way they leave
/// the queue ([`Bounded`]).
#[derive(Debug)]
struct Counted(opentelemetry_otlp::SpanExporter);

impl SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let leaving = Leaving {
            spans: batch.len(),
            exported: false,
        };
        let result = self.0.export(batch).await;
        leaving.done(result.is_ok());
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// A batch in an export: its spans leave the queue when it ends, counted as failed unless
/// the export said otherwise (an export abandoned half way exported nothing we know of).
struct Leaving {
    spans: usize,
    exported: bool,
}

impl Leaving {
    fn done(mut self, exported: bool) {
        self.exported = exported;
    }
}

impl Drop for Leaving {
    fn drop(&mut self) {
        let counter = if self.exported {
            &COUNTS.exported
        } else {
            &COUNTS.export_failed
        };
        counter.fetch_add(self.spans as u64, Ordering::Relaxed);
        COUNTS.queued.fetch_sub(self.spans, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
    use opentelemetry::propagation::TextMapPropagator;
    use opentelemetry::trace::{SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn a_traceparent_is_written_as_the_w3c_header() {
        let context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        );
        assert_eq!(
            format_traceparent(&context),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );
        // Read back by the W3C propagator, it is the same context.
        let map = headers(&[("traceparent", &format_traceparent(&context))]);
        let read = TraceContextPropagator::new().extract(&Headers(&map));
        assert_eq!(read.span().span_context().span_id(), context.span_id());
        assert_eq!(read.span().span_context().trace_id(), context.trace_id());
    }

    #[test]
    fn api_gateway_trace_ids_are_read_with_and_without_a_parent() {
        let with_parent = headers(&[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        )]);
        let read = XrayPropagator::new().extract(&Headers(&with_parent));
        let context = read.span().span_context().clone();
        assert!(context.is_valid());
        assert_eq!(
            context.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
        // Root alone: a trace id without a parent, which continue_trace keeps.
        let root_only = headers(&[(
            "x-amzn-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
        )]);
        let read = XrayPropagator::new().extract(&Headers(&root_only));
        let context = read.span().span_context().clone();
        assert!(!context.is_valid());
        assert_eq!(
            context.trace_id().to_string(),
            "5759e988bd862e3fe1be46a994272793"
        );
    }

    proptest::proptest! {
        /// The trace headers are the caller's bytes: whatever they hold, reading them
        /// panics on nothing, and a context read from them is valid or absent.
        #[test]
        fn any_trace_header_is_read_without_panic(
            traceparent in "[ -~]{0,80}",
            tracestate in "[ -~]{0,80}",
            xray in "[ -~]{0,120}",
        ) {
            let map = headers(&[
                ("traceparent", &traceparent),
                ("tracestate", &tracestate),
                ("x-amzn-trace-id", &xray),
            ]);
            let w3c = TraceContextPropagator::new().extract(&Headers(&map));
            let read = w3c.span().span_context().clone();
            if read.is_valid() {
                // A context read is the one the header named.
                proptest::prop_assert!(traceparent.contains(&read.trace_id().to_string()));
                proptest::prop_assert!(traceparent.contains(&read.span_id().to_string()));
            }
            let _ = XrayPropagator::new().extract(&Headers(&map));
        }

        /// Any context this service writes is read back whole.
        #[test]
        fn a_written_traceparent_reads_back(trace in 1u128.., span in 1u64.., sampled: bool) {
            let flags = if sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
            let context = SpanContext::new(
                TraceId::from(trace),
                SpanId::from(span),
                flags,
                true,
                TraceState::default(),
            );
            let map = headers(&[("traceparent", &format_traceparent(&context))]);
            let read = TraceContextPropagator::new().extract(&Headers(&map));
            let read = read.span().span_context().clone();
            proptest::prop_assert_eq!(read, context);
        }
    }

    #[test]
    fn an_xray_parent_without_a_sampling_decision_is_continued_by_its_root() {
        let trace = "5759e988bd862e3fe1be46a994272793";
        for header in [
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=?",
        ] {
            match Incoming::read(&headers(&[("x-amzn-trace-id", header)])) {
                Incoming::Root(id) => assert_eq!(id.to_string(), trace),
                other => panic!("{header}: {other:?}"),
            }
        }
        for (header, sampled) in [
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
                true,
            ),
            (
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0",
                false,
            ),
        ] {
            match Incoming::read(&headers(&[("x-amzn-trace-id", header)])) {
                Incoming::Parent(context) => {
                    assert_eq!(context.span().span_context().is_sampled(), sampled);
                }
                other => panic!("{header}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_waiting_trace_id_is_taken_once() {
        let ids = TraceIds::default();
        let waiting = TraceId::from_hex("5759e988bd862e3fe1be46a994272793").unwrap();
        NEXT_TRACE_ID.set(Some(waiting));
        assert_eq!(ids.new_trace_id(), waiting);
        let next = ids.new_trace_id();
        assert_ne!(next, waiting);
        // X-Ray's form: the first 8 hex digits are the epoch second.
        let seconds = u64::from_str_radix(&next.to_string()[..8], 16).unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(seconds) < 60, "{next}");
    }
}
