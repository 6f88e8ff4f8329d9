//! `[log]` and `[metrics]`: application logs, the access log and Prometheus metrics.

use std::net::SocketAddr;

use serde::Deserialize;

/// Prometheus metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// The address of the `/metrics` listener, separate from the partner-facing API
    /// listener.
    pub listen: SocketAddr,
    /// Serve `/metrics` on the API listener instead (no separate listener): partners could
    /// read it there, so it is only on this explicit request.
    pub serve_on_api_listener: bool,
    /// Topics that get their own `topic` label; all others are counted as `_other`, so the
    /// label stays bounded.
    pub topics: Vec<String>,
    /// How often librdkafka reports statistics (queue depth, broker round trips); 0 turns
    /// the broker metrics off.
    pub statistics_interval_ms: u64,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        MetricsSettings {
            listen: SocketAddr::from(([0, 0, 0, 0], 9102)),
            serve_on_api_listener: false,
            topics: Vec::new(),
            statistics_interval_ms: 5_000,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// JSON with a dev cluster off, text in dev mode.
    Auto,
    Json,
    Text,
}

/// Application logs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter, e.g. `info` or `kafka_rest_proxy=debug,info`.
    pub level: String,
    /// `auto`, `json` or `text`.
    pub format: LogFormat,
    /// One line per request on stdout.
    pub access_log: bool,
    /// Log lines (application and access log) queued for stdout at most: lines are written
    /// by a thread of their own, so a stalled log driver never stalls a request; past this
    /// many, lines are dropped and counted in `kafka_rest_log_lines_dropped_total`.
    pub max_buffered_lines: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Auto,
            access_log: true,
            max_buffered_lines: 100_000,
        }
    }
}
