//! Per-topic JSON Schema validation of json-format keys and values (jsonschema crate;
//! draft 7 and 2020-12, chosen by each schema's `$schema`), from schema files named in the
//! configuration. Not a Schema Registry: that is the registry client's name.
//!
//! Schemas are compiled once at startup. Every record of a request is checked before
//! anything is produced, and every violation is reported with the record index and the
//! JSON pointer of the offending value. Null keys and values (tombstones) are not checked.
//!
//! Nothing passes unchecked by accident: a key or value that cannot be read into a JSON
//! document for the validator (a number beyond f64 such as `1e400`, nesting deeper than
//! serde_json's limit of 128, a lone surrogate `"\ud800"`) is a violation with the keyword
//! `unvalidatable`, and binary-format records are refused on a topic with a schema unless
//! its entry sets `allow_binary`.
//!
//! The answer stays small whatever was sent: a violation's message and pointer are cut at
//! [`MAX_MESSAGE_CHARS`] (a message quotes the offending value, which may be megabytes), and
//! the list stops at `max_violations` or at [`MAX_VIOLATIONS_BYTES`] of JSON, the rest
//! counted in `omitted`.

use std::fmt::Write as _;
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
    allow_binary: bool,
}

/// Binary-format records sent to a topic whose records are validated (422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "Topic '{topic}' validates its records against a JSON Schema, and binary-format records \
     cannot be validated: send them in the json format."
)]
pub struct BinaryNotValidated {
    pub topic: String,
}

/// Longest `message` or `pointer` of one violation, in characters; longer ones end in `…`.
pub const MAX_MESSAGE_CHARS: usize = 256;

/// Most bytes of JSON the listed violations take in one answer; past it they are counted
/// in `omitted` instead.
pub const MAX_VIOLATIONS_BYTES: usize = 32 * 1024;

/// The keyword of a violation for a key or value the validator cannot read.
pub const UNVALIDATABLE: &str = "unvalidatable";

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
                allow_binary: entry.allow_binary,
            });
        }
        Ok(TopicSchemas {
            entries,
            max_violations: settings.max_violations,
        })
    }

    fn schemas_of(&self, topic: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| e.topics.iter().any(|t| t.matches(topic)))
    }

    /// Whether binary-format records may go to `topic`: yes where no schema covers it or
    /// its entry sets `allow_binary`.
    ///
    /// # Errors
    /// [`BinaryNotValidated`] naming the topic.
    pub fn check_binary(&self, topic: &str) -> Result<(), BinaryNotValidated> {
        match self.schemas_of(topic) {
            Some(e) if !e.allow_binary && (e.key.is_some() || e.value.is_some()) => {
                Err(BinaryNotValidated {
                    topic: topic.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }

    /// Checks json-format records against the schemas of `topic`; topics no schema covers
    /// pass.
    ///
    /// # Errors
    /// The report of every violation when any record is invalid or cannot be validated.
    pub fn validate(&self, topic: &str, records: &[Record]) -> Result<(), SchemaReport> {
        let Some(schemas) = self.schemas_of(topic) else {
            return Ok(());
        };
        let mut violations = Listed::new(self.max_violations);
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
                // Valid JSON (the envelope checked it), but not always a `Value`: what the
                // validator cannot see is refused, never written unchecked.
                let instance: serde_json::Value = match serde_json::from_slice(data) {
                    Ok(v) => v,
                    Err(e) => {
                        total += 1;
                        violations.push(|| Violation {
                            record: index,
                            field,
                            pointer: String::new(),
                            keyword: UNVALIDATABLE.to_owned(),
                            message: format!("cannot be validated: {}", unreadable(&e)),
                        });
                        continue;
                    }
                };
                for error in validator.iter_errors(&instance) {
                    total += 1;
                    violations.push(|| Violation {
                        record: index,
                        field,
                        pointer: bounded(error.instance_path()),
                        keyword: error.kind().keyword().to_owned(),
                        message: bounded(&error),
                    });
                }
            }
            if total > before {
                invalid_records += 1;
            }
        }
        if total == 0 {
            return Ok(());
        }
        let violations = violations.list;
        Err(SchemaReport {
            topic: topic.to_owned(),
            records: records.len(),
            invalid_records,
            omitted: total - violations.len(),
            violations,
        })
    }
}

/// The violations listed in an answer, within the count and size caps.
struct Listed {
    list: Vec<Violation>,
    max: usize,
    bytes: usize,
    full: bool,
}

impl Listed {
    fn new(max: usize) -> Listed {
        Listed {
            list: Vec::new(),
            max,
            bytes: 0,
            full: false,
        }
    }

    /// Lists the violation `make` builds, unless a cap is reached (then it is not built).
    fn push(&mut self, make: impl FnOnce() -> Violation) {
        if self.full || self.list.len() >= self.max {
            return;
        }
        let violation = make();
        let size = serde_json::to_vec(&violation).map_or(usize::MAX, |b| b.len() + 1);
        if self.bytes + size > MAX_VIOLATIONS_BYTES {
            // Later violations may be smaller, but a list cut in the middle of the records
            // reads better than one with holes.
            self.full = true;
            return;
        }
        self.bytes += size;
        self.list.push(violation);
    }
}

/// `value` as text, cut at [`MAX_MESSAGE_CHARS`] without formatting the rest (a message
/// embeds the offending value).
fn bounded(value: &impl std::fmt::Display) -> String {
    struct Capped {
        text: String,
        chars: usize,
        cut: bool,
    }
    impl std::fmt::Write for Capped {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            for c in s.chars() {
                if self.chars == MAX_MESSAGE_CHARS {
                    self.cut = true;
                    return Err(std::fmt::Error);
                }
                self.text.push(c);
                self.chars += 1;
            }
            Ok(())
        }
    }
    let mut capped = Capped {
        text: String::new(),
        chars: 0,
        cut: false,
    };
    let _ = write!(capped, "{value}");
    if capped.cut {
        capped.text.push('…');
    }
    capped.text
}

/// Why serde_json could not read a well-formed JSON text, in a partner's words.
fn unreadable(error: &serde_json::Error) -> String {
    let text = error.to_string();
    if text.starts_with("recursion limit exceeded") {
        "nested deeper than 128 levels".to_owned()
    } else if text.starts_with("number out of range") {
        "a number beyond the range of a 64-bit float".to_owned()
    } else if text.contains("surrogate") || text.contains("hex escape") {
        "a string holding a lone UTF-16 surrogate (\\ud800-\\udfff)".to_owned()
    } else {
        text
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
                allow_binary: false,
            }],
            max_violations,
        };
        (TopicSchemas::new(&settings).unwrap(), file)
    }

    fn record(value: &str) -> Record {
        Record {
            value: Some(value.as_bytes().to_vec().into()),
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
    fn what_cannot_be_validated_is_a_violation() {
        let (r, _f) = registry(ORDER, 100);
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        let records = [
            record(r#"{"id":1,"user":{}}"#),
            record(r#"{"id":1e400,"user":{}}"#),
            record(&format!(r#"{{"id":1,"user":{{}},"x":{deep}}}"#)),
            record(r#"{"id":1,"user":{"id":"\ud800"}}"#),
        ];
        let report = r.validate("orders", &records).unwrap_err();
        assert_eq!(report.invalid_records, 3);
        let got: Vec<(usize, &str, &str)> = report
            .violations
            .iter()
            .map(|v| (v.record, v.keyword.as_str(), v.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    UNVALIDATABLE,
                    "cannot be validated: a number beyond the range of a 64-bit float"
                ),
                (
                    2,
                    UNVALIDATABLE,
                    "cannot be validated: nested deeper than 128 levels"
                ),
                (
                    3,
                    UNVALIDATABLE,
                    "cannot be validated: a string holding a lone UTF-16 surrogate (\\ud800-\\udfff)"
                ),
            ]
        );
    }

    #[test]
    fn binary_is_refused_where_a_schema_applies_unless_allowed() {
        let (r, f) = registry(ORDER, 100);
        assert_eq!(
            r.check_binary("orders.eu"),
            Err(BinaryNotValidated {
                topic: "orders.eu".into()
            })
        );
        assert_eq!(r.check_binary("payments"), Ok(()));
        let allowed = TopicSchemas::new(&ValidationSettings {
            schemas: vec![TopicSchema {
                topics: vec![TopicPattern::parse("orders")],
                value_schema: Some(f.path().to_owned()),
                key_schema: None,
                allow_binary: true,
            }],
            max_violations: 10,
        })
        .unwrap();
        assert_eq!(allowed.check_binary("orders"), Ok(()));
    }

    #[test]
    fn huge_values_make_a_small_answer() {
        let (r, _f) = registry(ORDER, 1000);
        let huge = "x".repeat(1_000_000);
        let records: Vec<Record> = (0..100)
            .map(|_| record(&format!(r#"{{"id":"{huge}","user":{{}}}}"#)))
            .collect();
        let report = r.validate("orders", &records).unwrap_err();
        for v in &report.violations {
            assert!(v.message.chars().count() <= MAX_MESSAGE_CHARS + 1, "{v:?}");
            assert!(v.message.ends_with('…'), "{v:?}");
        }
        let listed = serde_json::to_vec(&report.violations).unwrap().len();
        assert!(listed <= MAX_VIOLATIONS_BYTES + 2, "{listed}");
        assert_eq!(report.violations.len() + report.omitted, 100);
        assert!(report.omitted > 0);
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
                allow_binary: false,
            }],
            max_violations: 10,
        };
        let err = TopicSchemas::new(&settings).err().unwrap().to_string();
        assert!(err.contains("validation.schemas[0].value_schema"), "{err}");
        assert!(err.contains(&file.path().display().to_string()), "{err}");
    }
}
