//! `[log]` and `[metrics]`: application logs, the access log and Prometheus metrics.

use std::net::SocketAddr;

use serde::Deserialize;

/// Prometheus metrics.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSettings {
    /// Serve `/metrics` on this address instead of the API port (keeps it off the
    /// partner-facing listener).
    pub listen: Option<SocketAddr>,
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
            listen: None,
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
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Auto,
            access_log: true,
        }
    }
}
