//! The kind of an unparsed JSON value, for checks and messages about a field's type. The
//! bottom of `formats/`: the envelope and the formats use it, it uses nothing.

use serde_json::value::RawValue;

/// The JSON type of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Null,
    Bool,
    Number,
    Str,
    Array,
    Object,
}

impl Kind {
    /// The kind of an already validated JSON value, from its first byte.
    pub fn of(raw: &RawValue) -> Kind {
        match raw.get().as_bytes().first() {
            Some(b'n') => Kind::Null,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'"') => Kind::Str,
            Some(b'[') => Kind::Array,
            Some(b'{') => Kind::Object,
            _ => Kind::Number,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool => "a boolean",
            Kind::Number => "a number",
            Kind::Str => "a string",
            Kind::Array => "an array",
            Kind::Object => "an object",
        }
    }
}

/// "a string", "an object"…, for messages about a value's type.
pub fn type_name(raw: &RawValue) -> &'static str {
    Kind::of(raw).name()
}
