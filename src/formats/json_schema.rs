//! The jsonschema embedded format: the partner's JSON, checked against the registered JSON
//! Schema, is written as sent (the exactness of the json format: key order, digits,
//! escapes), after the Schema Registry header the caller adds.
//!
//! The draft is the schema's `$schema`; without one it is draft 7, as Confluent's
//! serializers assume.

use jsonschema::{Draft, Validator};
use serde_json::value::RawValue;

use super::{json, DataError};
use crate::validation::MAX_MESSAGE_CHARS;

/// A compiled JSON Schema; built once per registered schema and cached.
pub struct JsonSchema {
    validator: Validator,
    /// The schema's `title`: its name for Confluent's `RecordNameStrategy`.
    title: Option<String>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JsonSchema")
    }
}

impl JsonSchema {
    /// Compiles a schema's text.
    ///
    /// # Errors
    /// Why the text is not JSON, or not a valid JSON Schema.
    pub fn parse(text: &str) -> Result<JsonSchema, String> {
        let schema: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let declares_draft = schema.get("$schema").is_some();
        let mut options = jsonschema::options();
        if !declares_draft {
            options = options.with_draft(Draft::Draft7);
        }
        let validator = options
            .build(&schema)
            .map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        let title = schema
            .get("title")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        Ok(JsonSchema { validator, title })
    }

    /// The schema's `title`, which Confluent's `RecordNameStrategy` takes as its name.
    pub fn title(&self) -> Option<&str> {
        self.title.as_deref()
    }

    /// Checks `value` and appends it, compacted, to `out`.
    ///
    /// # Errors
    /// The first violation, with its JSON pointer.
    pub fn encode(&self, value: &RawValue, out: &mut Vec<u8>) -> Result<(), DataError> {
        let document: serde_json::Value = serde_json::from_str(value.get())
            .map_err(|e| DataError::new(format!("cannot be read for validation: {e}")))?;
        if let Err(violation) = self.validator.validate(&document) {
            let pointer = violation.instance_path().as_str().to_owned();
            let mut message: String = violation.to_string();
            if message.chars().count() > MAX_MESSAGE_CHARS {
                message = message.chars().take(MAX_MESSAGE_CHARS).collect();
                message.push('…');
            }
            let message = if pointer.is_empty() {
                message
            } else {
                format!("at {pointer}: {message}")
            };
            return Err(DataError::new(message));
        }
        // A `null` document that the schema allows is the JSON text `null`.
        out.extend_from_slice(&json::encode(value).unwrap_or_else(|| b"null".to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(schema: &str, value: &str) -> Result<Vec<u8>, DataError> {
        let schema = JsonSchema::parse(schema).unwrap();
        let raw: Box<RawValue> = serde_json::from_str(value).unwrap();
        let mut out = Vec::new();
        schema.encode(&raw, &mut out).map(|()| out)
    }

    const PERSON: &str = r#"{"type":"object","properties":{"name":{"type":"string"},
        "address":{"type":"object","properties":{"zip":{"type":"integer"}}}},
        "required":["name"]}"#;

    #[test]
    fn valid_documents_are_written_as_sent() {
        let out = encode(
            PERSON,
            r#"{ "name": "a\u00e9", "n": 1.10, "address": {"zip": 1} }"#,
        )
        .unwrap();
        assert_eq!(out, br#"{"name":"a\u00e9","n":1.10,"address":{"zip":1}}"#);
    }

    #[test]
    fn violations_name_the_pointer() {
        let err = encode(PERSON, r#"{"name":"a","address":{"zip":"x"}}"#).unwrap_err();
        assert_eq!(
            err.message,
            r#"at /address/zip: "x" is not of type "integer""#
        );
        let err = encode(PERSON, r#"{}"#).unwrap_err();
        assert_eq!(err.message, r#""name" is a required property"#);
    }

    #[test]
    fn draft_7_unless_declared() {
        // Draft 7 ignores `prefixItems` (a 2020-12 keyword); 2020-12 applies it.
        let draft7 = r#"{"type":"array","prefixItems":[{"type":"integer"}]}"#;
        assert!(encode(draft7, r#"["x"]"#).is_ok());
        let declared = r#"{"$schema":"https://json-schema.org/draft/2020-12/schema",
            "type":"array","prefixItems":[{"type":"integer"}]}"#;
        assert!(encode(declared, r#"["x"]"#).is_err());
    }

    #[test]
    fn bad_schemas_are_refused() {
        assert!(JsonSchema::parse("{").unwrap_err().starts_with("not JSON"));
        assert!(JsonSchema::parse(r#"{"type": 12}"#)
            .unwrap_err()
            .starts_with("not a valid JSON Schema"));
    }
}
