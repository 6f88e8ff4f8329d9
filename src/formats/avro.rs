//! The avro embedded format: a key or value written in Avro's JSON encoding, read under its
//! schema and written as the Avro binary encoding of the datum (no container, no header: the
//! Schema Registry framing is the caller's).
//!
//! The JSON is read as Confluent's proxy reads it. Its `AvroSchemaUtils.toObject` hands the
//! value to Avro's `JsonDecoder` (Avro 1.12.1 in current Confluent releases), whose rules are:
//! - `null`, `true`/`false`, strings as JSON strings; int and long as JSON integers in range,
//!   or an integral number written with a fraction or exponent (`3.0`, `1e3`), which the
//!   decoder reads through a double (AVRO-2885); float and double as any JSON number;
//! - bytes and fixed as a string of one character per byte, U+0000 to U+00FF (fixed: exactly
//!   `size` of them); an enum as one of its symbols;
//! - array as a JSON array, map as a JSON object;
//! - record as a JSON object with its fields in any order, each present (a field's `default`
//!   does not excuse it: the reader's schema is the writer's, so nothing is filled in), and a
//!   field's alias accepted for its name;
//! - union as `null` for its null branch, else `{"<branch>": value}` with the branch's type
//!   name (`string`, `array`, the underlying type of a logical type) or a named type's full
//!   name; a bare value is refused, even when null is the only other branch;
//! - logical types as their underlying type (date as int, decimal as bytes or fixed).
//!
//! Unknown record fields follow the decoder too: it looks for each field in schema order and
//! keeps what it passes over, then refuses whatever it kept that no field claimed, and skips
//! whatever comes after the last field it needed (AVRO-2034). So an unknown field is refused
//! when a schema field follows it in the object, and ignored when it comes after all of them.
//!
//! Where we are stricter, because Avro would write something the partner did not send: a
//! bytes or fixed character above U+00FF (Java writes `?`), a number beyond the float range
//! for a float (Java writes infinity), and a union object with more than one member (Java
//! reads the first and skips the rest). The bytes differ from Java's in one harmless way: a
//! map's entries are written in the order sent, where Java writes its `HashMap`'s order.
//!
//! Paths in errors: `.field` for a record field as the partner spelled it, `[3]` for an array
//! item, and `["key"]` for a map entry or a union branch (the key as a JSON string), so that
//! the path follows the partner's JSON: `.owner["com.acme.Person"].tags["x y"]`.
//!
//! The schema is compiled once into a flat list of types that refer to each other by index,
//! so recursive types work and encoding never looks a name up. The JSON is walked directly
//! under the schema, borrowing from the request (no `serde_json::Value` tree), and written
//! directly: apache-avro's encoder would need a `types::Value` tree built first and checks it
//! against the schema again, while the binary encoding itself is zigzag varints, lengths and
//! blocks.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use apache_avro::schema::{FixedSchema, InnerDecimalSchema, Name, RecordSchema, UuidSchema};
use apache_avro::Schema;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::raw::Kind;
use super::DataError;

/// A parsed Avro schema, ready to encode values; Send + Sync, built once and cached.
#[derive(Debug)]
pub struct AvroSchema {
    /// The schema's types, which refer to each other by index.
    types: Vec<Type>,
    /// The index of the schema's own type.
    root: usize,
}

/// The logical type annotating a type, named in messages only: its JSON and its encoding
/// are the underlying type's.
type Logical = Option<&'static str>;

/// One type of a compiled schema.
#[derive(Debug)]
enum Type {
    Null,
    Boolean,
    Int(Logical),
    Long(Logical),
    Float,
    Double,
    Bytes(Logical),
    String(Logical),
    Fixed {
        name: String,
        size: usize,
        logical: Logical,
    },
    Enum {
        name: String,
        symbols: Vec<String>,
    },
    Array(usize),
    Map(usize),
    Record {
        name: String,
        fields: Vec<Field>,
        /// Field names and aliases to positions in `fields`: records can be wide.
        lookup: HashMap<String, usize>,
    },
    Union(Vec<usize>),
}

#[derive(Debug)]
struct Field {
    name: String,
    type_index: usize,
}

impl Type {
    /// How Avro's JSON encoding names this type as a union branch: a named type's full name,
    /// else the name of the (underlying) type.
    fn label(&self) -> &str {
        match self {
            Type::Null => "null",
            Type::Boolean => "boolean",
            Type::Int(_) => "int",
            Type::Long(_) => "long",
            Type::Float => "float",
            Type::Double => "double",
            Type::Bytes(_) => "bytes",
            Type::String(_) => "string",
            Type::Array(_) => "array",
            Type::Map(_) => "map",
            Type::Union(_) => "union",
            Type::Fixed { name, .. } | Type::Enum { name, .. } | Type::Record { name, .. } => name,
        }
    }

    /// What a message says was expected: `int (date)`, `record com.acme.Address`.
    fn expected(&self) -> String {
        let (kind, logical) = match self {
            Type::Int(logical)
            | Type::Long(logical)
            | Type::Bytes(logical)
            | Type::String(logical) => ("", *logical),
            Type::Fixed { logical, .. } => ("fixed ", *logical),
            Type::Enum { .. } => ("enum ", None),
            Type::Record { .. } => ("record ", None),
            _ => ("", None),
        };
        match logical {
            Some(logical) => format!("{kind}{} ({logical})", self.label()),
            None => format!("{kind}{}", self.label()),
        }
    }
}

impl AvroSchema {
    /// Parses and compiles a schema's text.
    ///
    /// # Errors
    /// The parser's message, for `Invalid schema: <message>` (42205).
    pub fn parse(text: &str) -> Result<AvroSchema, String> {
        let schema = Schema::parse_str(text).map_err(|e| e.to_string())?;
        let mut compiler = Compiler::default();
        let root = compiler.compile(&schema)?;
        Ok(AvroSchema {
            types: compiler.types,
            root,
        })
    }

    /// The schema's name, as Confluent's `RecordNameStrategy` reads it: a record's, enum's or
    /// fixed's full name, else the name of its type (`string`, `union`).
    pub fn name(&self) -> &str {
        self.types[self.root].label()
    }

    /// Appends the Avro binary encoding of `value` (the partner's JSON) to `out`; on error
    /// `out` is left as it was.
    ///
    /// # Errors
    /// [`DataError`] with the path below the value and what is wrong.
    pub fn encode(&self, value: &RawValue, out: &mut Vec<u8>) -> Result<(), DataError> {
        let start = out.len();
        self.write(self.root, value, out)
            .inspect_err(|_| out.truncate(start))
    }

    fn write(&self, index: usize, raw: &RawValue, out: &mut Vec<u8>) -> Result<(), DataError> {
        let text = raw.get();
        let kind = Kind::of(raw);
        match &self.types[index] {
            Type::Null if kind == Kind::Null => {}
            Type::Boolean if kind == Kind::Bool => out.push(u8::from(text == "true")),
            Type::Int(_) if kind == Kind::Number => {
                let n = integer(text)
                    .and_then(|n| i32::try_from(n).map_err(|_| NotAnInt::OutOfRange))
                    .map_err(|e| self.not_an_int(index, e, text))?;
                write_long(out, i64::from(n));
            }
            Type::Long(_) if kind == Kind::Number => {
                let n = integer(text).map_err(|e| self.not_an_int(index, e, text))?;
                write_long(out, n);
            }
            Type::Float if kind == Kind::Number => {
                // Narrowed from a double, as Java's decoder does.
                let x = double(text, "float")? as f32;
                if x.is_infinite() {
                    return Err(DataError::new(format!("float out of range: {text}")));
                }
                out.extend_from_slice(&x.to_le_bytes());
            }
            Type::Double if kind == Kind::Number => {
                out.extend_from_slice(&double(text, "double")?.to_le_bytes());
            }
            Type::String(_) if kind == Kind::Str => write_bytes(out, string(raw)?.as_bytes()),
            Type::Bytes(_) if kind == Kind::Str => write_bytes(out, &latin1(raw)?),
            Type::Fixed { name, size, .. } if kind == Kind::Str => {
                let bytes = latin1(raw)?;
                if bytes.len() != *size {
                    return Err(DataError::new(format!(
                        "expected {size} bytes for fixed {name}, got {}",
                        bytes.len()
                    )));
                }
                out.extend_from_slice(&bytes);
            }
            Type::Enum { name, symbols } if kind == Kind::Str => {
                let symbol = string(raw)?;
                let Some(position) = symbols.iter().position(|s| *s == symbol) else {
                    return Err(DataError::new(format!(
                        "unknown symbol '{symbol}' for enum {name} (expected one of {})",
                        symbols.join(", ")
                    )));
                };
                write_count(out, position);
            }
            Type::Array(items) if kind == Kind::Array => {
                let values: Vec<&RawValue> = serde_json::from_str(text).map_err(invalid)?;
                if !values.is_empty() {
                    write_count(out, values.len());
                    for (i, value) in values.iter().enumerate() {
                        self.write(*items, value, out)
                            .map_err(|e| e.within(&format!("[{i}]")))?;
                    }
                }
                out.push(0);
            }
            Type::Map(values) if kind == Kind::Object => {
                let entries = members(raw, 0)?;
                if !entries.is_empty() {
                    write_count(out, entries.len());
                    for (key, value) in &entries {
                        write_bytes(out, key.as_bytes());
                        self.write(*values, value, out)
                            .map_err(|e| e.within(&key_segment(key)))?;
                    }
                }
                out.push(0);
            }
            Type::Record { fields, lookup, .. } if kind == Kind::Object => {
                self.write_record(fields, lookup, raw, out)?;
            }
            Type::Union(branches) => self.write_union(branches, raw, out)?,
            other => {
                return Err(DataError::new(format!(
                    "expected {}, got {}",
                    other.expected(),
                    json_type(kind)
                )))
            }
        }
        Ok(())
    }

    fn write_record(
        &self,
        fields: &[Field],
        lookup: &HashMap<String, usize>,
        raw: &RawValue,
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let members = members(raw, fields.len())?;
        // For each field, the position of its member; a repeated member counts once, with
        // its last value, as when Confluent's proxy reads the body into a tree.
        let mut slots = vec![None; fields.len()];
        let mut last_known = None;
        let mut first_unknown = None;
        // Partners mostly write the fields in the schema's order: try the next field's name
        // before the lookup.
        let mut next = 0;
        for (position, (key, _)) in members.iter().enumerate() {
            let field = match fields.get(next) {
                Some(f) if f.name == *key => Some(next),
                _ => lookup.get(key.as_ref()).copied(),
            };
            match field {
                Some(field) => {
                    slots[field] = Some(position);
                    last_known = Some(position);
                    next = field + 1;
                }
                None => {
                    first_unknown.get_or_insert(position);
                }
            }
        }
        for (field, slot) in fields.iter().zip(slots) {
            let Some(position) = slot else {
                return Err(DataError::new(format!("missing field '{}'", field.name)));
            };
            let (key, value) = &members[position];
            self.write(field.type_index, value, out)
                .map_err(|e| e.within(&format!(".{key}")))?;
        }
        match (first_unknown, last_known) {
            (Some(unknown), Some(known)) if unknown < known => Err(DataError::new(format!(
                "unknown field '{}'",
                members[unknown].0
            ))),
            _ => Ok(()),
        }
    }

    fn write_union(
        &self,
        branches: &[usize],
        raw: &RawValue,
        out: &mut Vec<u8>,
    ) -> Result<(), DataError> {
        let branch = |label: &str| {
            branches
                .iter()
                .position(|&b| self.types[b].label() == label)
                .ok_or_else(|| {
                    let labels: Vec<&str> =
                        branches.iter().map(|&b| self.types[b].label()).collect();
                    DataError::new(format!(
                        "union branch '{label}' is not one of {}",
                        labels.join(", ")
                    ))
                })
        };
        let shape_error = |got: &str| {
            let null_or = if branch("null").is_ok() {
                "null or "
            } else {
                ""
            };
            DataError::new(format!(
                "expected a union written as {null_or}{{\"<branch>\": value}}, got {got}"
            ))
        };
        match Kind::of(raw) {
            Kind::Null => write_count(out, branch("null")?),
            Kind::Object => {
                let members = members(raw, 1)?;
                let count = members.len();
                let Ok([(label, value)]) = <[_; 1]>::try_from(members) else {
                    return Err(shape_error(&format!("object with {count} members")));
                };
                let position = branch(&label)?;
                write_count(out, position);
                self.write(branches[position], value, out)
                    .map_err(|e| e.within(&key_segment(&label)))?;
            }
            kind => return Err(shape_error(json_type(kind))),
        }
        Ok(())
    }

    fn not_an_int(&self, index: usize, error: NotAnInt, text: &str) -> DataError {
        let ty = &self.types[index];
        DataError::new(match error {
            NotAnInt::Fraction => format!("expected {}, got {text}", ty.expected()),
            NotAnInt::OutOfRange => format!("{} out of range: {text}", ty.label()),
        })
    }
}

/// Builds the flat list of types from apache-avro's tree, in which a named type is defined
/// where it first appears and is a `Ref` by name after that.
#[derive(Default)]
struct Compiler {
    types: Vec<Type>,
    /// Named types by full name, to their index in `types`.
    named: HashMap<String, usize>,
}

impl Compiler {
    /// The index of `schema`'s type, compiling it unless it is a named type already seen.
    fn compile(&mut self, schema: &Schema) -> Result<usize, String> {
        let ty = match schema {
            Schema::Null => Type::Null,
            Schema::Boolean => Type::Boolean,
            Schema::Int => Type::Int(None),
            Schema::Long => Type::Long(None),
            Schema::Float => Type::Float,
            Schema::Double => Type::Double,
            Schema::Bytes => Type::Bytes(None),
            Schema::String => Type::String(None),
            Schema::Date => Type::Int(Some("date")),
            Schema::TimeMillis => Type::Int(Some("time-millis")),
            Schema::TimeMicros => Type::Long(Some("time-micros")),
            Schema::TimestampMillis => Type::Long(Some("timestamp-millis")),
            Schema::TimestampMicros => Type::Long(Some("timestamp-micros")),
            Schema::TimestampNanos => Type::Long(Some("timestamp-nanos")),
            Schema::LocalTimestampMillis => Type::Long(Some("local-timestamp-millis")),
            Schema::LocalTimestampMicros => Type::Long(Some("local-timestamp-micros")),
            Schema::LocalTimestampNanos => Type::Long(Some("local-timestamp-nanos")),
            Schema::BigDecimal => Type::Bytes(Some("big-decimal")),
            Schema::Decimal(decimal) => match &decimal.inner {
                InnerDecimalSchema::Bytes => Type::Bytes(Some("decimal")),
                InnerDecimalSchema::Fixed(fixed) => return Ok(self.fixed(fixed, Some("decimal"))),
            },
            Schema::Uuid(UuidSchema::String) => Type::String(Some("uuid")),
            Schema::Uuid(UuidSchema::Bytes) => Type::Bytes(Some("uuid")),
            Schema::Uuid(UuidSchema::Fixed(fixed)) => return Ok(self.fixed(fixed, Some("uuid"))),
            Schema::Duration(fixed) => return Ok(self.fixed(fixed, Some("duration"))),
            Schema::Fixed(fixed) => return Ok(self.fixed(fixed, None)),
            Schema::Enum(e) => {
                let ty = Type::Enum {
                    name: full_name(&e.name),
                    symbols: e.symbols.clone(),
                };
                return Ok(self.define(&e.name, ty));
            }
            Schema::Array(array) => Type::Array(self.compile(&array.items)?),
            Schema::Map(map) => Type::Map(self.compile(&map.types)?),
            Schema::Union(union) => Type::Union(
                union
                    .variants()
                    .iter()
                    .map(|variant| self.compile(variant))
                    .collect::<Result<_, _>>()?,
            ),
            Schema::Record(record) => return self.record(record),
            Schema::Ref { name } => {
                return self
                    .named
                    .get(&full_name(name))
                    .copied()
                    .ok_or_else(|| format!("unknown type {}", full_name(name)))
            }
        };
        self.types.push(ty);
        Ok(self.types.len() - 1)
    }

    fn fixed(&mut self, fixed: &FixedSchema, logical: Logical) -> usize {
        let ty = Type::Fixed {
            name: full_name(&fixed.name),
            size: fixed.size,
            logical,
        };
        self.define(&fixed.name, ty)
    }

    /// Registers a named type that has no type inside it.
    fn define(&mut self, name: &Name, ty: Type) -> usize {
        *self.named.entry(full_name(name)).or_insert_with(|| {
            self.types.push(ty);
            self.types.len() - 1
        })
    }

    /// A record is registered before its fields are compiled, so that they can refer to it.
    fn record(&mut self, record: &RecordSchema) -> Result<usize, String> {
        let name = full_name(&record.name);
        if let Some(&index) = self.named.get(&name) {
            return Ok(index);
        }
        let index = self.types.len();
        self.types.push(Type::Null);
        self.named.insert(name.clone(), index);
        let mut fields = Vec::with_capacity(record.fields.len());
        let mut lookup = HashMap::new();
        for (position, field) in record.fields.iter().enumerate() {
            fields.push(Field {
                name: field.name.clone(),
                type_index: self.compile(&field.schema)?,
            });
            for alias in &field.aliases {
                lookup.entry(alias.clone()).or_insert(position);
            }
        }
        // A field's own name wins over another field's alias.
        for (position, field) in fields.iter().enumerate() {
            lookup.insert(field.name.clone(), position);
        }
        self.types[index] = Type::Record {
            name,
            fields,
            lookup,
        };
        Ok(index)
    }
}

fn full_name(name: &Name) -> String {
    name.fullname(None)
}

/// Why a JSON number is not an int or long.
enum NotAnInt {
    Fraction,
    OutOfRange,
}

/// The integer a JSON number denotes. An integral number written with a fraction or an
/// exponent (`3.0`, `1e3`) is read through a double, as Java's decoder reads it.
fn integer(text: &str) -> Result<i64, NotAnInt> {
    if let Ok(n) = text.parse::<i64>() {
        return Ok(n);
    }
    // Written with a fraction or exponent, or beyond i64: rounding to a double is monotonic,
    // so an integer beyond i64 becomes a double at or beyond 2^63 in magnitude.
    let x: f64 = text.parse().map_err(|_| NotAnInt::OutOfRange)?;
    // 2^63: i64's range is [-2^63, 2^63).
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    if !(-LIMIT..LIMIT).contains(&x) {
        return Err(NotAnInt::OutOfRange);
    }
    if x.fract() != 0.0 {
        return Err(NotAnInt::Fraction);
    }
    // In range and integral, so exact.
    Ok(x as i64)
}

/// A JSON number as a double; one beyond the double range is refused rather than written as
/// infinity.
fn double(text: &str, type_name: &str) -> Result<f64, DataError> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() => Ok(x),
        _ => Err(DataError::new(format!("{type_name} out of range: {text}"))),
    }
}

/// A JSON string, borrowed from the request unless it holds escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn string(raw: &RawValue) -> Result<Cow<'_, str>, DataError> {
    let text = raw.get();
    // Without escapes, a validated JSON string is its text between the quotes.
    if !text.contains('\\') {
        return Ok(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    serde_json::from_str::<Text>(text)
        .map(|t| t.0)
        .map_err(invalid)
}

/// The bytes of a bytes or fixed value: one byte per character, which must be U+0000 to
/// U+00FF.
fn latin1(raw: &RawValue) -> Result<Vec<u8>, DataError> {
    string(raw)?
        .chars()
        .map(|c| {
            u8::try_from(c).map_err(|_| {
                DataError::new(format!(
                    "character U+{:04X} is not a byte: bytes are written one character per \
                     byte, U+0000 to U+00FF",
                    u32::from(c)
                ))
            })
        })
        .collect()
}

/// The members of a JSON object in the order written, keys unescaped. `capacity` is how many
/// are expected (a record's field count): serde_json cannot tell, and growing the list costs
/// more than filling it.
fn members(raw: &RawValue, capacity: usize) -> Result<Vec<(Cow<'_, str>, &RawValue)>, DataError> {
    let mut deserializer = serde_json::Deserializer::from_str(raw.get());
    MembersSeed(capacity)
        .deserialize(&mut deserializer)
        .map_err(invalid)
}

struct MembersSeed(usize);

impl<'de> DeserializeSeed<'de> for MembersSeed {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for MembersSeed {
    type Value = Vec<(Cow<'de, str>, &'de RawValue)>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut members = Vec::with_capacity(self.0);
        while let Some(Text(key)) = map.next_key()? {
            members.push((key, map.next_value()?));
        }
        Ok(members)
    }
}

/// A value the envelope accepted as JSON but that cannot be read as the text it is: a
/// string with a lone surrogate escape.
fn invalid(error: serde_json::Error) -> DataError {
    DataError::new(format!("invalid JSON string: {error}"))
}

fn json_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Null => "null",
        Kind::Bool => "boolean",
        Kind::Number => "number",
        Kind::Str => "string",
        Kind::Array => "array",
        Kind::Object => "object",
    }
}

/// `["key"]`, the key as a JSON string.
fn key_segment(key: &str) -> String {
    format!("[{}]", serde_json::Value::from(key))
}

/// A long as Avro writes it: zigzag, then a little-endian base-128 varint.
fn write_long(out: &mut Vec<u8>, n: i64) {
    // The zigzag mapping, reinterpreted as unsigned: 0, -1, 1, -2... become 0, 1, 2, 3...
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z & 0x7f) as u8 | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A count or index (block counts, lengths, enum and union indexes) as a long.
fn write_count(out: &mut Vec<u8>, n: usize) {
    write_long(out, i64::try_from(n).unwrap_or(i64::MAX));
}

fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    write_count(out, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;
    use apache_avro::{Decimal, Uuid};

    use super::*;

    fn raw(json: &str) -> Box<RawValue> {
        serde_json::from_str(json).unwrap()
    }

    fn encode(schema: &str, json: &str) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        AvroSchema::parse(schema)
            .unwrap()
            .encode(&raw(json), &mut out)?;
        Ok(out)
    }

    /// The error as the caller renders it, with `value` for the record part.
    fn error(schema: &str, json: &str) -> String {
        let e = encode(schema, json).unwrap_err();
        format!("value{}: {}", e.path, e.message)
    }

    /// What apache-avro reads back from the bytes written, which must all be read.
    fn decoded(schema: &str, json: &str) -> Value {
        let bytes = encode(schema, json).unwrap();
        let schema = Schema::parse_str(schema).unwrap();
        let mut rest = &bytes[..];
        let value = GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut rest)
            .unwrap();
        assert!(rest.is_empty(), "{} bytes left over", rest.len());
        value
    }

    fn record(fields: &[(&str, Value)]) -> Value {
        Value::Record(
            fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect(),
        )
    }

    #[test]
    fn primitives_are_written_as_the_spec_says() {
        assert_eq!(encode(r#""null""#, "null").unwrap(), b"");
        assert_eq!(encode(r#""boolean""#, "true").unwrap(), [1]);
        assert_eq!(encode(r#""boolean""#, "false").unwrap(), [0]);
        // Zigzag varints: 0, -1, 1, 64, -65 become 0, 1, 2, 128, 129.
        for (json, bytes) in [
            ("0", &[0x00][..]),
            ("-1", &[0x01]),
            ("1", &[0x02]),
            ("64", &[0x80, 0x01]),
            ("-65", &[0x81, 0x01]),
            ("2147483647", &[0xfe, 0xff, 0xff, 0xff, 0x0f]),
            ("-2147483648", &[0xff, 0xff, 0xff, 0xff, 0x0f]),
        ] {
            assert_eq!(encode(r#""int""#, json).unwrap(), bytes, "{json}");
        }
        assert_eq!(
            encode(r#""long""#, "9223372036854775807").unwrap(),
            [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(
            encode(r#""long""#, "-9223372036854775808").unwrap(),
            [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
        assert_eq!(encode(r#""float""#, "1.5").unwrap(), [0, 0, 0xc0, 0x3f]);
        assert_eq!(
            encode(r#""double""#, "1.5").unwrap(),
            [0, 0, 0, 0, 0, 0, 0xf8, 0x3f]
        );
        assert_eq!(
            encode(r#""string""#, r#""h\u00e9""#).unwrap(),
            [0x06, b'h', 0xc3, 0xa9]
        );
        assert_eq!(
            encode(r#""bytes""#, r#""\u00ff\u0000A""#).unwrap(),
            [0x06, 0xff, 0x00, b'A']
        );
    }

    #[test]
    fn primitives_read_back() {
        assert_eq!(decoded(r#""int""#, "-7"), Value::Int(-7));
        assert_eq!(decoded(r#""long""#, "1"), Value::Long(1));
        assert_eq!(decoded(r#""float""#, "3"), Value::Float(3.0));
        assert_eq!(decoded(r#""double""#, "0.1"), Value::Double(0.1));
        assert_eq!(
            decoded(r#""string""#, r#""caf\u00e9 \"q\"""#),
            Value::String("café \"q\"".into())
        );
        assert_eq!(decoded(r#""boolean""#, "true"), Value::Boolean(true));
        assert_eq!(decoded(r#""null""#, "null"), Value::Null);
    }

    #[test]
    fn a_wrong_json_type_names_what_was_expected_and_what_came() {
        assert_eq!(
            error(r#""int""#, r#""1""#),
            "value: expected int, got string"
        );
        assert_eq!(
            error(r#""long""#, "true"),
            "value: expected long, got boolean"
        );
        assert_eq!(
            error(r#""string""#, "1"),
            "value: expected string, got number"
        );
        assert_eq!(
            error(r#""boolean""#, r#""true""#),
            "value: expected boolean, got string"
        );
        assert_eq!(error(r#""null""#, "0"), "value: expected null, got number");
        assert_eq!(
            error(r#""double""#, "null"),
            "value: expected double, got null"
        );
        assert_eq!(
            error(r#""bytes""#, "[]"),
            "value: expected bytes, got array"
        );
        assert_eq!(
            error(r#"{"type":"array","items":"int"}"#, "{}"),
            "value: expected array, got object"
        );
        assert_eq!(
            error(r#"{"type":"map","values":"int"}"#, "[]"),
            "value: expected map, got array"
        );
        assert_eq!(
            error(
                r#"{"type":"record","name":"R","namespace":"com.acme","fields":[]}"#,
                r#""x""#
            ),
            "value: expected record com.acme.R, got string"
        );
        assert_eq!(
            error(r#"{"type":"enum","name":"E","symbols":["A"]}"#, "0"),
            "value: expected enum E, got number"
        );
        assert_eq!(
            error(r#"{"type":"fixed","name":"F","size":1}"#, "0"),
            "value: expected fixed F, got number"
        );
    }

    /// Avro's JsonDecoder reads an integral number written with a fraction or exponent as an
    /// int or long (AVRO-2885), so Confluent's proxy takes `3.0` for an int.
    #[test]
    fn ints_may_be_written_as_integral_numbers() {
        assert_eq!(encode(r#""int""#, "3.0").unwrap(), [0x06]);
        assert_eq!(encode(r#""int""#, "1e2").unwrap(), [0xc8, 0x01]);
        assert_eq!(encode(r#""long""#, "-2.5E1").unwrap(), [0x31]);
        assert_eq!(error(r#""int""#, "1.5"), "value: expected int, got 1.5");
        assert_eq!(
            error(r#""long""#, "-0.01e1"),
            "value: expected long, got -0.01e1"
        );
    }

    #[test]
    fn integers_out_of_range_are_refused_not_rounded() {
        assert_eq!(
            error(r#""int""#, "2147483648"),
            "value: int out of range: 2147483648"
        );
        assert_eq!(
            error(r#""int""#, "-2147483649"),
            "value: int out of range: -2147483649"
        );
        assert_eq!(error(r#""int""#, "3e9"), "value: int out of range: 3e9");
        assert_eq!(
            error(r#""long""#, "9223372036854775808"),
            "value: long out of range: 9223372036854775808"
        );
        assert_eq!(
            error(r#""long""#, "-99999999999999999999"),
            "value: long out of range: -99999999999999999999"
        );
        assert_eq!(error(r#""long""#, "1e19"), "value: long out of range: 1e19");
        // Beyond 2^53, where a double would round it.
        assert_eq!(
            decoded(r#""long""#, "9007199254740993"),
            Value::Long(9_007_199_254_740_993)
        );
    }

    #[test]
    fn floats_beyond_their_range_are_refused() {
        assert_eq!(
            error(r#""float""#, "1e39"),
            "value: float out of range: 1e39"
        );
        assert_eq!(
            error(r#""double""#, "-1e400"),
            "value: double out of range: -1e400"
        );
        assert_eq!(decoded(r#""float""#, "1e38"), Value::Float(1e38));
        assert_eq!(
            decoded(r#""double""#, "123456789012345678901234567890"),
            Value::Double(1.234_567_890_123_456_8e29)
        );
    }

    #[test]
    fn bytes_and_fixed_are_one_character_per_byte() {
        assert_eq!(
            decoded(r#""bytes""#, r#""\u0000\u007f\u0080\u00ff""#),
            Value::Bytes(vec![0x00, 0x7f, 0x80, 0xff])
        );
        assert_eq!(
            error(r#""bytes""#, r#""a\u20acb""#),
            "value: character U+20AC is not a byte: bytes are written one character per byte, \
             U+0000 to U+00FF"
        );
        let fixed = r#"{"type":"fixed","name":"Pair","namespace":"com.acme","size":2}"#;
        assert_eq!(encode(fixed, r#""\u00e9\u0001""#).unwrap(), [0xe9, 0x01]);
        assert_eq!(decoded(fixed, r#""ab""#), Value::Fixed(2, b"ab".to_vec()));
        assert_eq!(
            error(fixed, r#""abc""#),
            "value: expected 2 bytes for fixed com.acme.Pair, got 3"
        );
        assert_eq!(
            error(fixed, r#""a""#),
            "value: expected 2 bytes for fixed com.acme.Pair, got 1"
        );
    }

    #[test]
    fn a_string_with_a_lone_surrogate_is_refused() {
        for json in [r#""\ud800""#, r#""\ud800x""#, r#""\udc00""#] {
            let message = error(r#""string""#, json);
            assert!(
                message.starts_with("value: invalid JSON string: "),
                "{message}"
            );
        }
        let message = error(r#"{"type":"map","values":"int"}"#, r#"{"\udc00": 1}"#);
        assert!(
            message.starts_with("value: invalid JSON string: "),
            "{message}"
        );
    }

    #[test]
    fn enums_are_written_as_the_symbol_index() {
        let color = r#"{"type":"enum","name":"Color","symbols":["RED","GREEN"]}"#;
        assert_eq!(encode(color, r#""RED""#).unwrap(), [0]);
        assert_eq!(encode(color, r#""GREEN""#).unwrap(), [2]);
        assert_eq!(decoded(color, r#""GREEN""#), Value::Enum(1, "GREEN".into()));
        assert_eq!(
            error(color, r#""PURPLE""#),
            "value: unknown symbol 'PURPLE' for enum Color (expected one of RED, GREEN)"
        );
        assert_eq!(
            error(color, r#""red""#),
            "value: unknown symbol 'red' for enum Color (expected one of RED, GREEN)"
        );
    }

    #[test]
    fn arrays_are_one_block() {
        let ints = r#"{"type":"array","items":"int"}"#;
        assert_eq!(encode(ints, "[1, 2, 3]").unwrap(), [0x06, 2, 4, 6, 0]);
        assert_eq!(encode(ints, "[]").unwrap(), [0]);
        assert_eq!(
            decoded(ints, "[1,-1]"),
            Value::Array(vec![Value::Int(1), Value::Int(-1)])
        );
        assert_eq!(
            error(ints, r#"[1, "x"]"#),
            "value[1]: expected int, got string"
        );
        let nested = r#"{"type":"array","items":{"type":"array","items":"string"}}"#;
        assert_eq!(
            error(nested, r#"[[], ["a", 2]]"#),
            "value[1][1]: expected string, got number"
        );
    }

    #[test]
    fn maps_are_one_block_in_the_order_written() {
        let ints = r#"{"type":"map","values":"int"}"#;
        assert_eq!(
            encode(ints, r#"{"b c": 2, "a": 1}"#).unwrap(),
            [0x04, 0x06, b'b', b' ', b'c', 0x04, 0x02, b'a', 0x02, 0]
        );
        assert_eq!(encode(ints, "{}").unwrap(), [0]);
        assert_eq!(
            decoded(ints, r#"{"\u0061": 1}"#),
            Value::Map([("a".to_owned(), Value::Int(1))].into())
        );
        assert_eq!(
            error(ints, r#"{"ok": 1, "x \"y\"": "s"}"#),
            r#"value["x \"y\""]: expected int, got string"#
        );
    }

    const ADDRESS: &str = r#"{"type":"record","name":"Person","namespace":"com.acme","fields":[
        {"name":"name","type":"string"},
        {"name":"age","type":"int","default":0,"aliases":["years"]},
        {"name":"address","type":{"type":"record","name":"Address","fields":[
            {"name":"street","type":"string"},
            {"name":"zip","type":"int"}]}}]}"#;

    fn person(name: &str, age: i32, street: &str, zip: i32) -> Value {
        record(&[
            ("name", Value::String(name.into())),
            ("age", Value::Int(age)),
            (
                "address",
                record(&[
                    ("street", Value::String(street.into())),
                    ("zip", Value::Int(zip)),
                ]),
            ),
        ])
    }

    #[test]
    fn records_take_their_fields_in_any_order() {
        assert_eq!(
            decoded(
                ADDRESS,
                r#"{"address":{"zip":1234,"street":"Main"},"age":42,"name":"Ann"}"#
            ),
            person("Ann", 42, "Main", 1234)
        );
        assert_eq!(
            decoded(
                ADDRESS,
                r#"{"name":"Ann","years":42,"address":{"street":"Main","zip":1}}"#
            ),
            person("Ann", 42, "Main", 1),
            "a field's alias stands for its name"
        );
        assert_eq!(
            decoded(
                ADDRESS,
                r#"{"name":"Bob","name":"Ann","age":42,"address":{"street":"Main","zip":1}}"#
            ),
            person("Ann", 42, "Main", 1),
            "a repeated member counts with its last value"
        );
    }

    #[test]
    fn nested_errors_name_their_path() {
        assert_eq!(
            error(
                ADDRESS,
                r#"{"name":"Ann","age":42,"address":{"street":"Main","zip":"1234"}}"#
            ),
            "value.address.zip: expected int, got string"
        );
        assert_eq!(
            error(ADDRESS, r#"{"name":"Ann","years":"x","address":{}}"#),
            "value.years: expected int, got string"
        );
    }

    /// Confluent's reader needs every field, even one with a default: the reader's schema is
    /// the writer's, so there is nothing to fill in from.
    #[test]
    fn every_field_must_be_present() {
        assert_eq!(
            error(
                ADDRESS,
                r#"{"name":"Ann","age":42,"address":{"street":"Main"}}"#
            ),
            "value.address: missing field 'zip'"
        );
        assert_eq!(
            error(
                ADDRESS,
                r#"{"name":"Ann","address":{"street":"Main","zip":1}}"#
            ),
            "value: missing field 'age'"
        );
    }

    /// As Avro's JsonDecoder: an unknown field that a schema field follows is refused, and
    /// unknown fields after the last schema field are skipped (AVRO-2034).
    #[test]
    fn unknown_fields_are_refused_unless_they_come_last() {
        assert_eq!(
            error(
                ADDRESS,
                r#"{"name":"Ann","nick":"A","age":42,"address":{"street":"Main","zip":1}}"#
            ),
            "value: unknown field 'nick'"
        );
        assert_eq!(
            error(
                ADDRESS,
                r#"{"name":"Ann","age":42,"address":{"x":{},"street":"Main","zip":1}}"#
            ),
            "value.address: unknown field 'x'"
        );
        let with_trailing = encode(
            ADDRESS,
            r#"{"name":"Ann","age":42,"address":{"street":"Main","zip":1,"x":[1]},"y":{"z":2}}"#,
        )
        .unwrap();
        let without = encode(
            ADDRESS,
            r#"{"name":"Ann","age":42,"address":{"street":"Main","zip":1}}"#,
        )
        .unwrap();
        assert_eq!(with_trailing, without);
    }

    const OPTIONAL_STRING: &str = r#"["null","string"]"#;

    #[test]
    fn unions_are_null_or_wrapped_in_their_branch_name() {
        assert_eq!(encode(OPTIONAL_STRING, "null").unwrap(), [0]);
        assert_eq!(
            encode(OPTIONAL_STRING, r#"{"string":"x"}"#).unwrap(),
            [0x02, 0x02, b'x']
        );
        assert_eq!(
            encode(OPTIONAL_STRING, r#"{"null":null}"#).unwrap(),
            [0],
            "Avro's decoder also takes the null branch wrapped"
        );
        assert_eq!(
            decoded(OPTIONAL_STRING, r#"{"string":"x"}"#),
            Value::Union(1, Box::new(Value::String("x".into())))
        );
        let collections =
            r#"["null",{"type":"array","items":"int"},{"type":"map","values":"int"}]"#;
        assert_eq!(
            decoded(collections, r#"{"map":{"k":1}}"#),
            Value::Union(
                2,
                Box::new(Value::Map([("k".to_owned(), Value::Int(1))].into()))
            )
        );
        assert_eq!(
            encode(collections, r#"{"array":[1]}"#).unwrap(),
            [2, 2, 2, 0]
        );
    }

    #[test]
    fn a_bare_value_for_a_union_is_refused() {
        assert_eq!(
            error(OPTIONAL_STRING, r#""x""#),
            r#"value: expected a union written as null or {"<branch>": value}, got string"#
        );
        assert_eq!(
            error(r#"["string","int"]"#, "1"),
            r#"value: expected a union written as {"<branch>": value}, got number"#
        );
        assert_eq!(
            error(OPTIONAL_STRING, r#"{"string":"x","null":null}"#),
            r#"value: expected a union written as null or {"<branch>": value}, got object with 2 members"#
        );
        assert_eq!(
            error(OPTIONAL_STRING, "{}"),
            r#"value: expected a union written as null or {"<branch>": value}, got object with 0 members"#
        );
    }

    #[test]
    fn union_branches_must_be_in_the_union() {
        assert_eq!(
            error(OPTIONAL_STRING, r#"{"int":1}"#),
            "value: union branch 'int' is not one of null, string"
        );
        assert_eq!(
            error(r#"["string","int"]"#, "null"),
            "value: union branch 'null' is not one of string, int"
        );
        assert_eq!(
            error(OPTIONAL_STRING, r#"{"string":1}"#),
            r#"value["string"]: expected string, got number"#
        );
    }

    const OWNER: &str = r#"{"type":"record","name":"Pet","namespace":"com.acme","fields":[
        {"name":"owner","type":["null",{"type":"record","name":"Person","fields":[
            {"name":"name","type":"string"}]}]}]}"#;

    #[test]
    fn named_branches_go_by_full_name() {
        assert_eq!(
            encode(OWNER, r#"{"owner":{"com.acme.Person":{"name":"Ann"}}}"#).unwrap(),
            [0x02, 0x06, b'A', b'n', b'n']
        );
        assert_eq!(
            decoded(OWNER, r#"{"owner":{"com.acme.Person":{"name":"Ann"}}}"#),
            record(&[(
                "owner",
                Value::Union(
                    1,
                    Box::new(record(&[("name", Value::String("Ann".into()))]))
                )
            )])
        );
        assert_eq!(
            error(OWNER, r#"{"owner":{"Person":{"name":"Ann"}}}"#),
            "value.owner: union branch 'Person' is not one of null, com.acme.Person"
        );
        assert_eq!(
            error(OWNER, r#"{"owner":{"name":"Ann"}}"#),
            "value.owner: union branch 'name' is not one of null, com.acme.Person"
        );
        assert_eq!(
            error(OWNER, r#"{"owner":{"com.acme.Person":{"name":7}}}"#),
            r#"value.owner["com.acme.Person"].name: expected string, got number"#
        );
    }

    const LOGICAL: &str = r#"{"type":"record","name":"L","fields":[
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
        {"name":"us","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
        {"name":"cents","type":{"type":"fixed","name":"Cents","size":2,"logicalType":"decimal","precision":4,"scale":2}},
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"maybe","type":["null",{"type":"long","logicalType":"timestamp-millis"}]}]}"#;

    #[test]
    fn logical_types_are_written_as_their_underlying_type() {
        let json = r#"{"day":19000,"at":1700000000000,"us":-1,"price":"\u0001\u00e2",
            "cents":"\u0000\u0007","id":"123e4567-e89b-12d3-a456-426614174000",
            "maybe":{"long":5}}"#;
        assert_eq!(
            decoded(LOGICAL, json),
            record(&[
                ("day", Value::Date(19000)),
                ("at", Value::TimestampMillis(1_700_000_000_000)),
                ("us", Value::TimestampMicros(-1)),
                ("price", Value::Decimal(Decimal::from(vec![0x01, 0xe2]))),
                ("cents", Value::Decimal(Decimal::from(vec![0x00, 0x07]))),
                (
                    "id",
                    Value::Uuid(Uuid::parse_str("123e4567-e89b-12d3-a456-426614174000").unwrap())
                ),
                (
                    "maybe",
                    Value::Union(1, Box::new(Value::TimestampMillis(5)))
                ),
            ])
        );
        let wrong_at = json.replace("1700000000000", r#""2024-01-01T00:00:00Z""#);
        assert_eq!(
            error(LOGICAL, &wrong_at),
            "value.at: expected long (timestamp-millis), got string"
        );
        let branch_by_logical_name = json.replace(r#"{"long":5}"#, r#"{"timestamp-millis":5}"#);
        assert_eq!(
            error(LOGICAL, &branch_by_logical_name),
            "value.maybe: union branch 'timestamp-millis' is not one of null, long"
        );
        let short_cents = json.replace(r#""\u0000\u0007""#, r#""\u0007""#);
        assert_eq!(
            error(LOGICAL, &short_cents),
            "value.cents: expected 2 bytes for fixed Cents, got 1"
        );
    }

    #[test]
    fn every_logical_type_is_its_underlying_type() {
        let schema = r#"{"type":"record","name":"All","namespace":"com.acme","fields":[
            {"name":"t","type":{"type":"int","logicalType":"time-millis"}},
            {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
            {"name":"tn","type":{"type":"long","logicalType":"timestamp-nanos"}},
            {"name":"lm","type":{"type":"long","logicalType":"local-timestamp-millis"}},
            {"name":"lu","type":{"type":"long","logicalType":"local-timestamp-micros"}},
            {"name":"ln","type":{"type":"long","logicalType":"local-timestamp-nanos"}},
            {"name":"big","type":{"type":"bytes","logicalType":"big-decimal"}},
            {"name":"span","type":{"type":"fixed","name":"Span","size":12,"logicalType":"duration"}},
            {"name":"key","type":{"type":"fixed","name":"Key","size":16,"logicalType":"uuid"}},
            {"name":"either","type":["null","Span"]}]}"#;
        let twelve = r"\u0001".repeat(12);
        let sixteen = "k".repeat(16);
        let json = format!(
            r#"{{"t":1,"tu":2,"tn":3,"lm":4,"lu":5,"ln":-1,"big":"\u0002",
                "span":"{twelve}","key":"{sixteen}","either":{{"com.acme.Span":"{twelve}"}}}}"#
        );
        let mut expected = vec![2, 4, 6, 8, 10, 1, 2, 2];
        expected.extend([1; 12]);
        expected.extend([b'k'; 16]);
        expected.push(2);
        expected.extend([1; 12]);
        assert_eq!(encode(schema, &json).unwrap(), expected);
        assert_eq!(
            error(schema, &json.replace(r#""tn":3"#, r#""tn":"3""#)),
            "value.tn: expected long (timestamp-nanos), got string"
        );
        assert_eq!(
            error(schema, &json.replace(&sixteen, "k")),
            "value.key: expected 16 bytes for fixed com.acme.Key, got 1"
        );
    }

    #[test]
    fn named_types_can_be_used_again_by_name() {
        let schema = r#"{"type":"record","name":"Trip","namespace":"com.acme","fields":[
            {"name":"from","type":{"type":"record","name":"Place","fields":[{"name":"zip","type":"int"}]}},
            {"name":"to","type":"Place"},
            {"name":"via","type":{"type":"array","items":"com.acme.Place"}},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
            {"name":"back","type":["null","Kind"]}]}"#;
        let json = r#"{"from":{"zip":1},"to":{"zip":2},"via":[{"zip":3}],"kind":"B","back":{"com.acme.Kind":"A"}}"#;
        assert_eq!(
            encode(schema, json).unwrap(),
            [0x02, 0x04, 0x02, 0x06, 0x00, 0x02, 0x02, 0x00]
        );
        assert_eq!(
            error(schema, &json.replace(r#"{"zip":2}"#, r#"{"zip":"2"}"#)),
            "value.to.zip: expected int, got string"
        );
    }

    #[test]
    fn recursive_types_work() {
        let list = r#"{"type":"record","name":"Node","fields":[
            {"name":"value","type":"int"},
            {"name":"next","type":["null","Node"]}]}"#;
        let json = r#"{"value":1,"next":{"Node":{"value":2,"next":null}}}"#;
        assert_eq!(encode(list, json).unwrap(), [0x02, 0x02, 0x04, 0x00]);
        assert_eq!(
            decoded(list, json),
            record(&[
                ("value", Value::Int(1)),
                (
                    "next",
                    Value::Union(
                        1,
                        Box::new(record(&[
                            ("value", Value::Int(2)),
                            ("next", Value::Union(0, Box::new(Value::Null))),
                        ]))
                    )
                ),
            ])
        );
        assert_eq!(
            error(
                list,
                r#"{"value":1,"next":{"Node":{"value":2,"next":{"Node":{"value":"3","next":null}}}}}"#
            ),
            r#"value.next["Node"].next["Node"].value: expected int, got string"#
        );
    }

    /// Computed by hand from the spec, so that the test does not only trust apache-avro.
    #[test]
    fn a_small_record_has_the_expected_bytes() {
        let schema = r#"{"type":"record","name":"User","fields":[
            {"name":"id","type":"int"},
            {"name":"name","type":"string"},
            {"name":"tags","type":{"type":"array","items":"string"}},
            {"name":"seen","type":"long"},
            {"name":"active","type":"boolean"}]}"#;
        let json = r#"{"id":-3,"name":"Al","tags":["x"],"seen":300,"active":true}"#;
        assert_eq!(
            encode(schema, json).unwrap(),
            [
                0x05, // id: -3 zigzags to 5
                0x04, b'A', b'l', // name: length 2, zigzagged to 4
                0x02, 0x02, b'x', 0x00, // tags: a block of 1, "x", the end block
                0xd8, 0x04, // seen: 300 zigzags to 600 = 0b100_1011000
                0x01, // active
            ]
        );
    }

    #[test]
    fn an_error_leaves_the_output_as_it_was() {
        let schema = AvroSchema::parse(ADDRESS).unwrap();
        let mut out = vec![9];
        schema
            .encode(
                &raw(r#"{"name":"Ann","age":42,"address":{"street":"Main","zip":"1"}}"#),
                &mut out,
            )
            .unwrap_err();
        assert_eq!(out, [9]);
        schema
            .encode(
                &raw(r#"{"name":"A","age":1,"address":{"street":"","zip":0}}"#),
                &mut out,
            )
            .unwrap();
        assert_eq!(out, [9, 0x02, b'A', 0x02, 0x00, 0x00]);
    }

    #[test]
    fn invalid_schemas_are_refused_with_the_parser_message() {
        assert!(!AvroSchema::parse("{").unwrap_err().is_empty());
        let unknown_type = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}"#,
        )
        .unwrap_err();
        assert!(unknown_type.contains("Nope"), "{unknown_type}");
    }

    #[test]
    fn schemas_can_be_shared_between_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<AvroSchema>();
    }
}
