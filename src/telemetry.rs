//! Application logs: JSON lines for CloudWatch in production, human-readable text in dev.

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

/// Installs the global subscriber: JSON lines when `json`, else text.
///
/// # Errors
/// [`ConfigError`] on `log.level` when it is not a valid filter; a message when a logger
/// is already installed.
pub fn init(settings: &LogSettings, json: bool) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&settings.level)
        .map_err(|e| ConfigError::invalid("log.level", e.to_string()))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
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
    result.map_err(|e| TelemetryError::Install(e.to_string()))
}
