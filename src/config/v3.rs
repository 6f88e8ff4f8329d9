//! `[streaming]` and `[batch]`: the API v3 produce routes, a stream of records on one
//! request (`POST .../records`) and a batch of entries (`POST .../records:batch`).

use serde::Deserialize;

use super::ConfigError;

/// The most entries a batch may be configured to hold, as Confluent's
/// `api.v3.produce.batch.maximum.entries`.
pub const MAX_BATCH_ENTRIES: usize = 50;

/// Streams of records on one request.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamingSettings {
    /// How long one stream may stay open (Confluent's
    /// `streaming.connection.max.duration.ms`, 24 h); records read after it get a 408 line.
    pub max_duration_ms: u64,
    /// After `max_duration_ms`, how long a stream still answers incoming records with 408
    /// lines before it ends (Confluent's `streaming.connection.max.duration.grace.period.ms`).
    pub max_duration_grace_ms: u64,
    /// Records of one stream read but not yet answered: the next record is not read until
    /// one of them is, so a client that does not read its results slows its own stream
    /// down instead of growing the service's memory.
    pub max_in_flight_records: usize,
}

impl Default for StreamingSettings {
    fn default() -> Self {
        StreamingSettings {
            max_duration_ms: 24 * 60 * 60 * 1000,
            max_duration_grace_ms: 500,
            max_in_flight_records: 1_000,
        }
    }
}

impl StreamingSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.max_duration_ms == 0 {
            return Err(ConfigError::invalid(
                "streaming.max_duration_ms",
                "must be positive",
            ));
        }
        if self.max_in_flight_records == 0 {
            return Err(ConfigError::invalid(
                "streaming.max_in_flight_records",
                "must be positive, or a stream could never read a record",
            ));
        }
        Ok(())
    }
}

/// Batches of entries on one request.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchSettings {
    /// Most entries in one batch (422/42208 above), 1 to 50 (Confluent's
    /// `api.v3.produce.batch.maximum.entries`, 10 by default).
    pub max_entries: usize,
}

impl Default for BatchSettings {
    fn default() -> Self {
        BatchSettings { max_entries: 10 }
    }
}

impl BatchSettings {
    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_BATCH_ENTRIES).contains(&self.max_entries) {
            return Err(ConfigError::invalid(
                "batch.max_entries",
                format!("must be between 1 and {MAX_BATCH_ENTRIES}"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_confluents_and_bounds_are_checked() {
        let streaming = StreamingSettings::default();
        assert_eq!(streaming.max_duration_ms, 86_400_000);
        assert_eq!(streaming.max_duration_grace_ms, 500);
        assert!(streaming.validate().is_ok());
        assert_eq!(BatchSettings::default().max_entries, 10);
        for (entries, ok) in [(0, false), (1, true), (50, true), (51, false)] {
            let result = BatchSettings {
                max_entries: entries,
            }
            .validate();
            assert_eq!(result.is_ok(), ok, "{entries}");
        }
        let err = StreamingSettings {
            max_in_flight_records: 0,
            ..StreamingSettings::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(err.contains("streaming.max_in_flight_records"), "{err}");
    }
}
