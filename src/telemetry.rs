//! Application logs: JSON lines for CloudWatch in production, human-readable text in dev.

use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber: JSON lines when `json`, else text.
///
/// # Errors
/// When the level is not a valid filter.
pub fn init(settings: &LogSettings, json: bool) -> Result<(), String> {
    let filter = EnvFilter::try_new(&settings.level)
        .map_err(|e| format!("invalid configuration: log.level: {e}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let result = if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init()
    } else {
        builder.try_init()
    };
    result.map_err(|e| format!("cannot install the logger: {e}"))
}
