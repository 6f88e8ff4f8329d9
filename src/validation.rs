//! Per-topic JSON Schema validation of json-format keys and values (jsonschema crate;
//! draft 7 and 2020-12, chosen by each schema's `$schema`), from schema files named in the
//! configuration. Not a Schema Registry: that is the registry client's name.
//!
//! Schemas are compiled once at startup. Every record of a request is checked before
//! anything is produced, and every violation is reported with the record index and the
//! JSON pointer of the offending value. Null keys and values (tombstones) are not checked.

use std::path::Path;

use jsonschema::Validator;
use serde::Serialize;

use crate::config::{ConfigError, ValidationSettings};
use crate::domain::{Record, TopicPattern};

/// One violation, as listed in the 42203 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// Index of the record in the request.
    pub record: usize,
    /// `key` or `value`.
    pub field: &'static str,
    /// JSON pointer into the key or value ("" for the whole of it).
    pub pointer: String,
    /// The schema keyword that failed (`type`, `required`, `maximum`...).
    pub keyword: String,
    pub message: String,
}

/// Every violation of a request, capped for the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaReport {
    pub topic: String,
    pub records: usize,
    pub invalid_records: usize,
    /// At most `max_violations`.
    pub violations: Vec<Violation>,
    /// Violations found beyond the cap.
    pub omitted: usize,
}

/// The schemas of the topics matching `topics`.
struct Entry {
    topics: Vec<TopicPattern>,
    key: Option<Validator>,
    value: Option<Validator>,
}

/// Every configured topic's compiled schemas.
pub struct TopicSchemas {
    entries: Vec<Entry>,
    max_violations: usize,
}

fn compile(path: &Path, key: &str) -> Result<Validator, ConfigError> {
    let fail = |why: String| ConfigError::invalid(key, format!("{}: {why}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    let schema: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| fail(format!("not JSON: {e}")))?;
    jsonschema::validator_for(&schema).map_err(|e| fail(format!("not a valid JSON Schema: {e}")))
}

impl TopicSchemas {
    /// Compiles every configured schema.
    ///
    /// # Errors
    /// [`ConfigError`] naming the setting and the file that cannot be read or compiled.
    pub fn new(settings: &ValidationSettings) -> Result<TopicSchemas, ConfigError> {
        let mut entries = Vec::new();
        for (i, entry) in settings.schemas.iter().enumerate() {
            let key = |field: &str| format!("validation.schemas[{i}].{field}");
            entries.push(Entry {
                topics: entry.topics.clone(),
                key: entry
                    .key_schema
                    .as_deref()
                    .map(|p| compile(p, &key("key_schema")))
                    .transpose()?,
                value: entry
                    .value_schema
                    .as_deref()
                    .map(|p| compile(p, &key("value_schema")))
                    .transpose()?,
            });
        }
        Ok(TopicSchemas {
            entries,
            max_violations: settings.max_violations,
        })
    }

    /// Checks json-format records against the schemas of `topic`; topics no schema covers
    /// pass.
    ///
    /// # Errors
    /// The report of every violation when any record is invalid.
    pub fn validate(&self, topic: &str, records: &[Record]) -> Result<(), SchemaReport> {
        let Some(schemas) = self
            .entries
            .iter()
            .find(|e| e.topics.iter().any(|t| t.matches(topic)))
        else {
            return Ok(());
        };
        let mut violations = Vec::new();
        let mut total = 0;
        let mut invalid_records = 0;
        for (index, record) in records.iter().enumerate() {
            let before = total;
            for (field, validator, data) in [
                ("key", &schemas.key, &record.key),
                ("value", &schemas.value, &record.value),
            ] {
                let (Some(validator), Some(data)) = (validator, data) else {
                    continue;
                };
                // The bytes were produced from valid JSON by the json format.
                let instance: serde_json::Value = match serde_json::from_slice(data) {
                    Ok(v) => v,
                    Err(_) => continue,
                };
                for error in validator.iter_errors(&instance) {
                    total += 1;
                    if violations.len() < self.max_violations {
                        violations.push(Violation {
                            record: index,
                            field,
                            pointer: error.instance_path().to_string(),
                            keyword: error.kind().keyword().to_owned(),
                            message: error.to_string(),
                        });
                    }
                }
            }
            if total > before {
                invalid_records += 1;
            }
        }
        if total == 0 {
            return Ok(());
        }
        Err(SchemaReport {
            topic: topic.to_owned(),
            records: records.len(),
            invalid_records,
            omitted: total - violations.len(),
            violations,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TopicSchema;
    use std::io::Write;

    fn registry(schema: &str, max_violations: usize) -> (TopicSchemas, tempfile::NamedTempFile) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(schema.as_bytes()).unwrap();
        let settings = ValidationSettings {
            schemas: vec![TopicSchema {
                topics: vec![
                    TopicPattern::parse("orders"),
                    TopicPattern::parse("orders.*"),
                ],
                value_schema: Some(file.path().to_owned()),
                key_schema: None,
            }],
            max_violations,
        };
        (TopicSchemas::new(&settings).unwrap(), file)
    }

    fn record(value: &str) -> Record {
        Record {
            value: Some(value.as_bytes().to_vec()),
            ..Record::default()
        }
    }

    const ORDER: &str = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema",
        "type":"object","required":["id","user"],
        "properties":{"id":{"type":"integer"},"user":{"type":"object",
        "properties":{"id":{"type":"string"}}},"amount":{"maximum":100}}}"#;

    #[test]
    fn every_violation_with_index_and_pointer() {
        let (r, _f) = registry(ORDER, 100);
        let records = [
            record(r#"{"id":1,"user":{"id":"u"}}"#),
            record(r#"{"id":"x","user":{"id":7},"amount":500}"#),
            record(r#"{"user":{}}"#),
        ];
        let report = r.validate("orders.eu", &records).unwrap_err();
        assert_eq!(report.invalid_records, 2);
        assert_eq!(report.omitted, 0);
        let got: Vec<(usize, &str, &str)> = report
            .violations
            .iter()
            .map(|v| (v.record, v.pointer.as_str(), v.keyword.as_str()))
            .collect();
        assert!(got.contains(&(1, "/id", "type")), "{got:?}");
        assert!(got.contains(&(1, "/user/id", "type")), "{got:?}");
        assert!(got.contains(&(1, "/amount", "maximum")), "{got:?}");
        assert!(got.contains(&(2, "", "required")), "{got:?}");
        assert_eq!(got.len(), 4, "{got:?}");
    }

    #[test]
    fn the_list_is_capped_and_the_rest_counted() {
        let (r, _f) = registry(ORDER, 2);
        let records = [record(r#"{"id":"x","user":{"id":7},"amount":500}"#)];
        let report = r.validate("orders", &records).unwrap_err();
        assert_eq!(report.violations.len(), 2);
        assert_eq!(report.omitted, 1);
    }

    #[test]
    fn other_topics_and_valid_records_pass() {
        let (r, _f) = registry(ORDER, 100);
        assert!(r.validate("payments", &[record("42")]).is_ok());
        assert!(r
            .validate("orders", &[record(r#"{"id":1,"user":{}}"#)])
            .is_ok());
    }

    #[test]
    fn draft_7_works_too() {
        let (r, _f) = registry(
            r#"{"$schema":"http://json-schema.org/draft-07/schema#","type":"array","items":{"type":"number"}}"#,
            100,
        );
        let report = r.validate("orders", &[record(r#"[1,"two"]"#)]).unwrap_err();
        assert_eq!(report.violations[0].pointer, "/1");
    }

    #[test]
    fn a_bad_schema_names_the_setting_and_file() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(br#"{"type": 12}"#).unwrap();
        let settings = ValidationSettings {
            schemas: vec![TopicSchema {
                topics: vec![TopicPattern::parse("t")],
                value_schema: Some(file.path().to_owned()),
                key_schema: None,
            }],
            max_violations: 10,
        };
        let err = TopicSchemas::new(&settings).err().unwrap().to_string();
        assert!(err.contains("validation.schemas[0].value_schema"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }
}
