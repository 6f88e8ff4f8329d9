//! `[tracing]`: OpenTelemetry traces of requests, exported over OTLP, and the trace context
//! written into each produced record.
//!
//! The standard `OTEL_*` variables apply where a key here is unset: the exporter's
//! `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `_HEADERS`, `_TIMEOUT` and `_PROTOCOL`, and the
//! resource's `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`; a key set here wins.

use std::collections::BTreeMap;

use secrecy::SecretString;
use serde::Deserialize;

use super::ConfigError;

/// How spans travel to the collector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (the collector's port 4317).
    #[serde(rename = "grpc")]
    Grpc,
    /// OTLP over HTTP, protobuf bodies (the collector's port 4318, path `/v1/traces`).
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Traces.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracingSettings {
    /// Off by default: no span is made, exported or written into a record.
    pub enabled: bool,
    /// `grpc` or `http/protobuf`; unset: `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, then
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, then `http/protobuf`.
    pub protocol: Option<OtlpProtocol>,
    /// Where spans go, as a whole URL (`http://collector:4318/v1/traces` for
    /// `http/protobuf`, `http://collector:4317` for `grpc`); unset: the `OTEL_EXPORTER_OTLP_*`
    /// endpoint variables, then the collector on localhost.
    pub endpoint: Option<String>,
    /// Headers (gRPC metadata) sent with every export, e.g. a vendor's API key; merged with
    /// `OTEL_EXPORTER_OTLP_HEADERS`. Secrets: never logged.
    pub headers: BTreeMap<String, SecretString>,
    /// How long one export may take, retries included.
    pub timeout_ms: u64,
    /// The share of new traces sampled, 0.0 to 1.0. A request that continues a trace follows
    /// its parent's decision (parent-based sampling), so a partner's sampled trace stays whole.
    pub sampling_ratio: f64,
    /// Spans ended and not yet exported, at most; past it spans are dropped and counted in
    /// `kafka_rest_trace_spans_total{outcome="dropped_queue_full"}`, never waited for.
    pub max_queue_size: usize,
    /// Spans in one export.
    pub max_export_batch_size: usize,
    /// How often queued spans are exported.
    pub scheduled_delay_ms: u64,
    /// The Kafka header each produced record gets, a W3C `traceparent` naming the span that
    /// produced it, so a consumer can continue the trace; empty: no header.
    pub record_header: String,
    /// The resource's `service.name`; unset: `OTEL_SERVICE_NAME`, then `kafka-rest-proxy`.
    pub service_name: Option<String>,
}

impl Default for TracingSettings {
    fn default() -> Self {
        TracingSettings {
            enabled: false,
            protocol: None,
            endpoint: None,
            headers: BTreeMap::new(),
            timeout_ms: 10_000,
            sampling_ratio: 1.0,
            max_queue_size: 2_048,
            max_export_batch_size: 512,
            scheduled_delay_ms: 5_000,
            record_header: "traceparent".to_owned(),
            service_name: None,
        }
    }
}

impl TracingSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.sampling_ratio) {
            return Err(ConfigError::invalid(
                "tracing.sampling_ratio",
                "must be between 0.0 and 1.0",
            ));
        }
        if self.max_queue_size == 0 {
            return Err(ConfigError::invalid(
                "tracing.max_queue_size",
                "must be positive",
            ));
        }
        if self.max_export_batch_size == 0 || self.max_export_batch_size > self.max_queue_size {
            return Err(ConfigError::invalid(
                "tracing.max_export_batch_size",
                "must be positive and at most tracing.max_queue_size",
            ));
        }
        if self.timeout_ms == 0 || self.scheduled_delay_ms == 0 {
            let key = if self.timeout_ms == 0 {
                "tracing.timeout_ms"
            } else {
                "tracing.scheduled_delay_ms"
            };
            return Err(ConfigError::invalid(key, "must be positive"));
        }
        if let Some(endpoint) = &self.endpoint {
            let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
            if !scheme_ok || endpoint.parse::<actix_web::http::Uri>().is_err() {
                return Err(ConfigError::invalid(
                    "tracing.endpoint",
                    "must be an http:// or https:// URL",
                ));
            }
        }
        let header_ok =
            |name: &str| actix_web::http::header::HeaderName::from_bytes(name.as_bytes()).is_ok();
        if !self.record_header.is_empty() && !header_ok(&self.record_header) {
            return Err(ConfigError::invalid(
                "tracing.record_header",
                "must be a header name (letters, digits and -_.!#$%&'*+^`|~), or empty for none",
            ));
        }
        if let Some(name) = self.headers.keys().find(|name| !header_ok(name)) {
            return Err(ConfigError::invalid(
                "tracing.headers",
                format!("{name:?} is not a header name"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TracingSettings;

    #[test]
    fn settings_that_could_not_work_are_refused_naming_the_key() {
        let refused = |change: fn(&mut TracingSettings)| {
            let mut settings = TracingSettings::default();
            change(&mut settings);
            settings.validate().unwrap_err().to_string()
        };
        assert!(refused(|s| s.sampling_ratio = 1.5).contains("tracing.sampling_ratio"));
        assert!(refused(|s| s.sampling_ratio = -0.1).contains("tracing.sampling_ratio"));
        assert!(refused(|s| s.max_queue_size = 0).contains("tracing.max_queue_size"));
        assert!(
            refused(|s| s.max_export_batch_size = 4_096).contains("tracing.max_export_batch_size")
        );
        assert!(
            refused(|s| s.endpoint = Some("collector:4317".into())).contains("tracing.endpoint")
        );
        assert!(refused(|s| s.record_header = "trace parent".into()).contains("record_header"));
        assert!(refused(|s| {
            s.headers.insert("bad header".into(), "x".to_owned().into());
        })
        .contains("tracing.headers"));
        assert!(TracingSettings::default().validate().is_ok());
        let mut off = TracingSettings::default();
        off.record_header.clear();
        assert!(off.validate().is_ok());
    }
}
