//! `[validation]`: per-topic JSON Schema validation of json-format records.

use std::path::PathBuf;

use serde::Deserialize;

use crate::domain::TopicPattern;

/// Per-topic JSON Schema validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ValidationSettings {
    /// Topic patterns (exact, or prefix ending in `*`) to schema files; the first match wins.
    pub schemas: Vec<TopicSchema>,
    /// Violations listed in one 422 answer at most; the rest are counted.
    pub max_violations: usize,
}

impl Default for ValidationSettings {
    fn default() -> Self {
        ValidationSettings {
            schemas: Vec::new(),
            max_violations: 100,
        }
    }
}

/// The schemas of the topics matching `topics`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicSchema {
    /// Exact topic names, or prefixes ending in `*`.
    pub topics: Vec<TopicPattern>,
    /// JSON Schema (draft 7 or 2020-12, from `$schema`) for record values.
    pub value_schema: Option<PathBuf>,
    /// JSON Schema for record keys.
    pub key_schema: Option<PathBuf>,
    /// Accept binary-format records on these topics, unvalidated. Off, a binary request to
    /// a topic with a schema is refused (422): its bytes cannot be checked.
    pub allow_binary: bool,
}
