//! Records per request and bytes per record, checked before anything is produced.

use crate::config::LimitSettings;
use crate::domain::Record;

/// A request over a record limit (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordLimitError {
    #[error("Too many records: {count} in the request, the limit is {limit}.")]
    TooMany { count: usize, limit: usize },
    #[error("Record {index} is {size} bytes (key + value), the limit is {limit} bytes.")]
    TooLarge {
        index: usize,
        size: usize,
        limit: usize,
    },
}

/// `limits.max_records_per_request` and `limits.max_record_bytes`.
#[derive(Debug, Clone, Copy)]
pub struct RecordLimits {
    pub max_records: usize,
    pub max_record_bytes: usize,
}

impl RecordLimits {
    pub fn new(settings: &LimitSettings) -> RecordLimits {
        RecordLimits {
            max_records: settings.max_records_per_request,
            max_record_bytes: settings.max_record_bytes,
        }
    }

    /// Refuses too many records, or a record too large for Kafka, naming the record and the
    /// limit.
    ///
    /// # Errors
    /// The first limit the records break.
    pub fn check(&self, records: &[Record]) -> Result<(), RecordLimitError> {
        if records.len() > self.max_records {
            return Err(RecordLimitError::TooMany {
                count: records.len(),
                limit: self.max_records,
            });
        }
        records
            .iter()
            .enumerate()
            .try_for_each(|(index, record)| self.check_size(index, record))
    }

    /// Refuses one record too large for Kafka; `index` names it in the message.
    ///
    /// # Errors
    /// [`RecordLimitError::TooLarge`].
    pub fn check_size(&self, index: usize, record: &Record) -> Result<(), RecordLimitError> {
        if record.size_bytes() > self.max_record_bytes {
            return Err(RecordLimitError::TooLarge {
                index,
                size: record.size_bytes(),
                limit: self.max_record_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: usize) -> Record {
        Record {
            value: Some(vec![b'x'; bytes].into()),
            ..Record::default()
        }
    }

    #[test]
    fn count_then_size() {
        let limits = RecordLimits {
            max_records: 2,
            max_record_bytes: 10,
        };
        assert_eq!(limits.check(&[record(10), record(0)]), Ok(()));
        assert_eq!(
            limits.check(&[record(1), record(1), record(100)]),
            Err(RecordLimitError::TooMany { count: 3, limit: 2 })
        );
        assert_eq!(
            limits.check(&[record(1), record(11)]),
            Err(RecordLimitError::TooLarge {
                index: 1,
                size: 11,
                limit: 10
            })
        );
    }
}
