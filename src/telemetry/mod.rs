//! Application logs: JSON lines for CloudWatch in production, human-readable text in dev;
//! and, when `tracing.enabled`, OpenTelemetry traces ([`traces`]).
//!
//! Every log line, the access log's included, goes through one non-blocking writer: a
//! bounded queue that a thread of its own writes to stdout. A log driver that stops reading
//! stdout then costs log lines (dropped and counted), never requests stalled on a write.

use std::sync::OnceLock;

pub mod traces;

use std::io::Write as _;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{FilterExt, LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::{ConfigError, LogSettings, TracingSettings};

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot install the logger: {0}")]
    Install(String),
}

/// The process's log writer, global like the `tracing` subscriber that writes through it.
static WRITER: OnceLock<NonBlocking> = OnceLock::new();

/// Exports the spans and writes out the lines still queued when dropped: keep it until the
/// process exits.
#[must_use = "dropping the guard stops the log writer and the export of spans"]
pub struct LogGuard {
    // Dropped in this order: the exporter's farewell warnings still reach the log.
    _traces: Option<traces::TracesGuard>,
    _worker: WorkerGuard,
}

/// Installs the global subscriber (JSON lines when `json`, else text) writing through the
/// non-blocking writer, which the access log uses too ([`write_line`]); with
/// `tracing.enabled`, the OpenTelemetry layer beside it.
///
/// # Errors
/// [`ConfigError`] on `log.level` when it is not a valid filter; a message when a logger
/// is already installed or the span exporter cannot be built.
pub fn init(
    settings: &LogSettings,
    json: bool,
    tracing: &TracingSettings,
) -> Result<LogGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&settings.level)
        .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
    if settings.max_buffered_lines == 0 {
        return Err(ConfigError::invalid("log.max_buffered_lines", "must be positive").into());
    }
    let (writer, worker) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(settings.max_buffered_lines)
        .thread_name("log-writer")
        .finish(std::io::stdout());
    WRITER
        .set(writer.clone())
        .map_err(|_| TelemetryError::Install("the log writer is already installed".into()))?;
    // The spans made for traces only are not log lines' business, whatever log.level says.
    // (`Targets`, unlike a closure, lets each call site cache the answer.)
    let filter = filter.and(
        Targets::new()
            .with_default(LevelFilter::TRACE)
            .with_target(traces::TARGET, LevelFilter::OFF),
    );
    let logs: Box<dyn Layer<Registry> + Send + Sync> = if json {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            // The request span: request_id and principal on every line of a request.
            .with_current_span(true)
            .with_span_list(false)
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_filter(filter)
            .boxed()
    };
    let (spans, traces) = if tracing.enabled {
        let (layer, guard) = traces::layer(tracing)?;
        (Some(layer), Some(guard))
    } else {
        (None, None)
    };
    tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init()
        .map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(LogGuard {
        _traces: traces,
        _worker: worker,
    })
}

/// Writes one whole line (the access log's) through the log writer; straight to stdout
/// when none is installed (the app embedded in tests).
pub fn write_line(line: &[u8]) {
    match WRITER.get() {
        Some(writer) => {
            let _ = writer.clone().write_all(line);
        }
        None => {
            let _ = std::io::stdout().lock().write_all(line);
        }
    }
}

/// Log lines dropped so far because the writer's queue was full.
pub fn dropped_lines() -> u64 {
    WRITER
        .get()
        .map_or(0, |writer| writer.error_counter().dropped_lines() as u64)
}
