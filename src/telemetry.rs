//! Application logs: JSON lines for CloudWatch in production, human-readable text in dev.
//!
//! Every log line, the access log's included, goes through one non-blocking writer: a
//! bounded queue that a thread of its own writes to stdout. A log driver that stops reading
//! stdout then costs log lines (dropped and counted), never requests stalled on a write.

use std::io::Write;
use std::sync::OnceLock;

use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::config::{ConfigError, LogSettings};

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

/// Writes out the lines still queued when dropped: keep it until the process exits.
#[must_use = "dropping the guard stops the log writer"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

/// Installs the global subscriber (JSON lines when `json`, else text) writing through the
/// non-blocking writer, which the access log uses too ([`write_line`]).
///
/// # Errors
/// [`ConfigError`] on `log.level` when it is not a valid filter; a message when a logger
/// is already installed.
pub fn init(settings: &LogSettings, json: bool) -> Result<LogGuard, TelemetryError> {
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
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            // The request span: request_id and principal on every line of a request.
            .with_current_span(true)
            .with_span_list(false)
            .try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| TelemetryError::Install(e.to_string()))?;
    Ok(LogGuard { _worker: worker })
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
