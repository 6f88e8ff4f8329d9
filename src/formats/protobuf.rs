//! The protobuf embedded format: a registered `.proto` schema, and the partner's JSON read
//! with the proto3 JSON mapping into the schema's first message, written as Confluent's
//! Protobuf serializer writes it (after the 5-byte header the integrator puts in front).
//!
//! As in Confluent's proxy (`ProtobufSchema.toDescriptor()` and `JsonFormat.parser()`): the
//! record type is the file's first top-level message, fields are found by their JSON or
//! their proto name, and an unknown field is refused.

use prost::Message;
use prost_reflect::{
    DeserializeOptions, DynamicMessage, MapKey, MessageDescriptor, ReflectMessage, Value,
};
use protox::file::{ChainFileResolver, File, FileResolver, GoogleFileResolver};
use serde_json::value::RawValue;
use serde_path_to_error::{Segment, Track};

use super::DataError;

/// The name the schema text is compiled under: the registry gives it none, and compiler
/// messages start with it.
const FILE_NAME: &str = "schema.proto";

/// Confluent's message-index list for the file's first top-level message, the only one
/// this proxy writes. The list is generally a zigzag varint count followed by one zigzag
/// varint index per nesting level (`MessageIndexes.toByteArray` in schema-registry,
/// `_encode_varints` in confluent-kafka-python), but both write the list `[0]` as the single
/// byte `0x00`, which their deserializers read back as `[0]`.
const FIRST_MESSAGE_INDEXES: u8 = 0x00;

/// The proto3 JSON mapping as Confluent's proxy reads it (`JsonFormat.parser()`, which
/// does not ignore unknown fields): an unknown field or enum name is an error.
const READ_OPTIONS: DeserializeOptions = DeserializeOptions::new().deny_unknown_fields(true);

/// A compiled `.proto` schema and its record message: built once per schema and shared by
/// the requests that use it (the descriptors are reference-counted, `Send` and `Sync`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtobufSchema {
    message: MessageDescriptor,
    /// Whether any message of the schema has a proto2 `required` field, so that proto3
    /// schemas skip the walk that looks for missing ones.
    has_required_fields: bool,
}

impl ProtobufSchema {
    /// Compiles the `.proto` text in pure Rust (protox, no `protoc`), proto2 (with or without
    /// a `syntax` line) as well as proto3. Imports of the `google/protobuf/` well-known types
    /// resolve; any other import is refused, as schema references are not supported.
    ///
    /// # Errors
    /// The compiler's message, with its line and column, for `Invalid schema: <message>`
    /// (42205); a file without any message is invalid too.
    pub fn parse(text: &str) -> Result<ProtobufSchema, String> {
        let mut resolver = ChainFileResolver::new();
        resolver.add(SchemaText(text.to_owned()));
        resolver.add(GoogleFileResolver::new());
        let mut compiler = protox::Compiler::with_file_resolver(resolver);
        compiler.open_file(FILE_NAME).map_err(|err| {
            // Our resolver serves the schema itself, so whatever is not found was imported.
            if err.is_file_not_found() {
                format!(
                    "{err:?}; only the google/protobuf/ well-known types can be imported \
                     (schema references are not supported)"
                )
            } else {
                format!("{err:?}")
            }
        })?;
        let pool = compiler.descriptor_pool();
        let message = pool
            .get_file_by_name(FILE_NAME)
            .and_then(|file| file.messages().next())
            .ok_or_else(|| "the schema defines no message".to_owned())?;
        let has_required_fields = pool
            .all_messages()
            .any(|m| m.fields().any(|field| field.is_required()));
        Ok(ProtobufSchema {
            message,
            has_required_fields,
        })
    }

    /// The full name of the record message (`acme.Shipment`), as Confluent's
    /// `RecordNameStrategy` reads it.
    pub fn name(&self) -> &str {
        self.message.full_name()
    }

    /// Appends the message-index list and the serialized message to `out`.
    ///
    /// # Errors
    /// A [`DataError`] with the path of the offending field and what is wrong with it:
    /// a JSON type the field cannot take, an unknown field or enum name, a proto2 `required`
    /// field left out.
    pub fn encode(&self, value: &RawValue, out: &mut Vec<u8>) -> Result<(), DataError> {
        let message = self.read(value)?;
        if self.has_required_fields {
            check_required(&message)?;
        }
        out.push(FIRST_MESSAGE_INDEXES);
        // Cannot fail: a Vec grows as needed.
        message
            .encode(out)
            .map_err(|err| DataError::new(err.to_string()))
    }

    /// The schema's `FileDescriptorProto`, serialized without source locations: what the
    /// Schema Registry serves for `?format=serialized`.
    pub fn file_descriptor_bytes(&self) -> Vec<u8> {
        let mut file = self.message.parent_file_descriptor_proto().clone();
        file.source_code_info = None;
        file.encode_to_vec()
    }

    /// Reads the JSON into the record message.
    fn read(&self, value: &RawValue) -> Result<DynamicMessage, DataError> {
        let mut json = serde_json::Deserializer::from_str(value.get());
        DynamicMessage::deserialize_with_options(self.message.clone(), &mut json, &READ_OPTIONS)
            .map_err(|err| DataError {
                path: self.error_path(value),
                message: describe(&err),
            })
    }

    /// Where reading `value` fails (`.items[3].count`), found by reading it again with a
    /// path tracker: the tracker allocates for every field name, so only the records that
    /// fail pay for it.
    fn error_path(&self, value: &RawValue) -> String {
        let mut track = Track::new();
        let mut json = serde_json::Deserializer::from_str(value.get());
        let tracked = serde_path_to_error::Deserializer::new(&mut json, &mut track);
        // Fails again, the same way: only the path it leaves in `track` is wanted.
        let _ =
            DynamicMessage::deserialize_with_options(self.message.clone(), tracked, &READ_OPTIONS);
        track
            .path()
            .iter()
            .map(|segment| match segment {
                Segment::Seq { index } => format!("[{index}]"),
                Segment::Map { key } => format!(".{key}"),
                Segment::Enum { variant } => format!(".{variant}"),
                Segment::Unknown => ".?".to_owned(),
            })
            .collect()
    }
}

/// Serves the schema text under [`FILE_NAME`], so that the compiler reads it like a file.
struct SchemaText(String);

impl FileResolver for SchemaText {
    fn open_file(&self, name: &str) -> Result<File, protox::Error> {
        if name == FILE_NAME {
            File::from_source(name, &self.0)
        } else {
            Err(protox::Error::file_not_found(name))
        }
    }
}

/// A reader's error in the words of JSON, without serde_json's position in the value (the
/// path says where): `invalid type: sequence, expected a string` becomes `expected a string,
/// got an array`; other messages (`unrecognized field name 'x'`, `invalid base64: ...`) are
/// kept as prost-reflect words them.
fn describe(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let position = format!(" at line {} column {}", err.line(), err.column());
    let text = text.strip_suffix(&position).unwrap_or(&text);
    // prost-reflect's expectations contain no ", expected ", a string value may.
    match text
        .strip_prefix("invalid type: ")
        .and_then(|rest| rest.rsplit_once(", expected "))
    {
        Some((got, expected)) => format!("expected {}, got {}", in_json(expected), in_json(got)),
        None => text.to_owned(),
    }
}

/// serde's and prost-reflect's names for the JSON kinds that JSON names differently.
fn in_json(kind: &str) -> &str {
    match kind {
        "map" | "a map" => "an object",
        "sequence" | "a list" => "an array",
        "unit value" => "null",
        other => other,
    }
}

/// Refuses a message whose proto2 `required` fields, at any depth, are not all set: Java's
/// builder refuses it in Confluent's proxy, and a consumer's parser would refuse its bytes.
fn check_required(message: &DynamicMessage) -> Result<(), DataError> {
    if let Some(missing) = message
        .descriptor()
        .fields()
        .find(|field| field.is_required() && !message.has_field(field))
    {
        return Err(DataError::new(format!(
            "missing required field '{}'",
            missing.name()
        )));
    }
    for (field, value) in message.fields() {
        let within_field = |err: DataError| err.within(&format!(".{}", field.name()));
        match value {
            Value::Message(inner) => check_required(inner).map_err(within_field)?,
            Value::List(items) => {
                for (index, item) in items.iter().enumerate() {
                    if let Value::Message(inner) = item {
                        check_required(inner)
                            .map_err(|err| within_field(err.within(&format!("[{index}]"))))?;
                    }
                }
            }
            Value::Map(entries) => {
                for (key, entry) in entries {
                    if let Value::Message(inner) = entry {
                        check_required(inner).map_err(|err| {
                            within_field(err.within(&format!(".{}", json_key(key))))
                        })?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A map key as the JSON wrote it: map keys are object keys, hence strings.
fn json_key(key: &MapKey) -> String {
    match key {
        MapKey::Bool(v) => v.to_string(),
        MapKey::I32(v) => v.to_string(),
        MapKey::I64(v) => v.to_string(),
        MapKey::U32(v) => v.to_string(),
        MapKey::U64(v) => v.to_string(),
        MapKey::String(v) => v.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An enum before the first message, and a second message after it: the record type is
    /// the first message, not the first type nor the last message.
    const SHOP: &str = r#"
        syntax = "proto3";
        package shop;
        import "google/protobuf/timestamp.proto";

        enum Status { UNKNOWN = 0; PAID = 1; SHIPPED = 2; }

        message Order {
          message Item { string sku = 1; uint32 quantity = 2; }
          int32 count = 1;
          int64 total_cents = 2;
          string name = 3;
          bytes payload = 4;
          Status status = 5;
          Item item = 6;
          repeated Item items = 7;
          map<string, int32> stock = 8;
          google.protobuf.Timestamp placed_at = 9;
        }

        message Other { string x = 1; }
    "#;

    fn raw(json: &str) -> Box<RawValue> {
        RawValue::from_string(json.to_owned()).unwrap()
    }

    fn encode(schema: &str, json: &str) -> Result<Vec<u8>, DataError> {
        let mut out = Vec::new();
        ProtobufSchema::parse(schema)
            .unwrap()
            .encode(&raw(json), &mut out)?;
        Ok(out)
    }

    /// Encodes into the shop schema's record type and decodes the bytes back, checking
    /// the message-index prefix on the way.
    fn round_trip(json: &str) -> DynamicMessage {
        let schema = ProtobufSchema::parse(SHOP).unwrap();
        let mut out = Vec::new();
        schema.encode(&raw(json), &mut out).unwrap();
        assert_eq!(out[0], 0x00, "message-index list of the first message");
        DynamicMessage::decode(schema.message.clone(), &out[1..]).unwrap()
    }

    fn field(message: &DynamicMessage, name: &str) -> Value {
        message.get_field_by_name(name).unwrap().into_owned()
    }

    fn error(json: &str) -> DataError {
        encode(SHOP, json).unwrap_err()
    }

    fn refused(json: &str) -> (String, String) {
        let err = error(json);
        (err.path, err.message)
    }

    #[test]
    fn the_record_type_is_the_first_message() {
        let schema = ProtobufSchema::parse(SHOP).unwrap();
        assert_eq!(schema.message.full_name(), "shop.Order");
    }

    #[test]
    fn a_tiny_message_has_the_bytes_computed_by_hand() {
        let schema = "syntax = \"proto3\"; message M { int32 id = 1; string name = 2; }";
        // Index list [0]; field 1 varint (tag 0x08) 150 = 0x96 0x01; field 2 length-delimited
        // (tag 0x12), 2 bytes "hi".
        assert_eq!(
            encode(schema, r#"{"id": 150, "name": "hi"}"#).unwrap(),
            [0x00, 0x08, 0x96, 0x01, 0x12, 0x02, b'h', b'i']
        );
    }

    #[test]
    fn nested_and_repeated_messages() {
        let order = round_trip(
            r#"{"item": {"sku": "a"}, "items": [{"sku": "b", "quantity": 2}, {"quantity": 3}]}"#,
        );
        let Value::Message(item) = field(&order, "item") else {
            panic!("item is a message")
        };
        assert_eq!(field(&item, "sku"), Value::String("a".into()));
        let Value::List(items) = field(&order, "items") else {
            panic!("items is a list")
        };
        let quantities: Vec<Value> = items
            .iter()
            .map(|item| field(item.as_message().unwrap(), "quantity"))
            .collect();
        assert_eq!(quantities, [Value::U32(2), Value::U32(3)]);
    }

    #[test]
    fn a_map_field() {
        let order = round_trip(r#"{"stock": {"apples": 3, "pears": 0}}"#);
        let Value::Map(stock) = field(&order, "stock") else {
            panic!("stock is a map")
        };
        assert_eq!(stock.len(), 2);
        assert_eq!(stock[&MapKey::String("apples".into())], Value::I32(3));
        assert_eq!(stock[&MapKey::String("pears".into())], Value::I32(0));
    }

    #[test]
    fn an_enum_by_name_and_by_number() {
        let by_name = round_trip(r#"{"status": "SHIPPED"}"#);
        let by_number = round_trip(r#"{"status": 2}"#);
        assert_eq!(field(&by_name, "status"), Value::EnumNumber(2));
        assert_eq!(field(&by_number, "status"), Value::EnumNumber(2));
    }

    #[test]
    fn a_timestamp_from_its_rfc_3339_string() {
        let order = round_trip(r#"{"placedAt": "2024-01-02T03:04:05.5Z"}"#);
        let Value::Message(placed_at) = field(&order, "placed_at") else {
            panic!("placed_at is a message")
        };
        // 2024-01-01T00:00:00Z is 1_704_067_200, plus a day and 3:04:05.
        assert_eq!(field(&placed_at, "seconds"), Value::I64(1_704_164_645));
        assert_eq!(field(&placed_at, "nanos"), Value::I32(500_000_000));
    }

    #[test]
    fn int64_as_a_string_and_as_a_number() {
        // 2^53 + 1: a double would round it.
        let as_string = round_trip(r#"{"totalCents": "9007199254740993"}"#);
        let as_number = round_trip(r#"{"total_cents": 9007199254740993}"#);
        for order in [as_string, as_number] {
            assert_eq!(
                field(&order, "total_cents"),
                Value::I64(9_007_199_254_740_993)
            );
        }
    }

    #[test]
    fn bytes_as_base64() {
        let order = round_trip(r#"{"payload": "AAEC/w=="}"#);
        assert_eq!(
            field(&order, "payload"),
            Value::Bytes(vec![0, 1, 2, 255].into())
        );
    }

    #[test]
    fn an_unknown_field_is_refused() {
        assert_eq!(
            refused(r#"{"count": 1, "item": {"sku": "a", "colour": "red"}}"#),
            (".item".into(), "unrecognized field name 'colour'".into())
        );
    }

    #[test]
    fn an_unknown_enum_name_is_refused() {
        assert_eq!(
            refused(r#"{"status": "LOST"}"#),
            (".status".into(), "unrecognized enum value 'LOST'".into())
        );
    }

    #[test]
    fn a_wrong_type_is_refused_with_its_path_in_json_words() {
        assert_eq!(
            refused(r#"{"items": [{"sku": "a"}, {"quantity": true}]}"#),
            (
                ".items[1].quantity".into(),
                "expected a 32-bit unsigned integer or decimal string, got boolean `true`".into()
            )
        );
        assert_eq!(
            refused(r#"{"name": ["a"]}"#),
            (".name".into(), "expected a string, got an array".into())
        );
        assert_eq!(
            refused(r#"{"item": "a, expected b"}"#),
            (
                ".item".into(),
                r#"expected an object, got string "a, expected b""#.into()
            )
        );
        assert_eq!(
            refused(r#"{"stock": {"apples": 1, "pears": "many"}}"#),
            (
                ".stock.pears".into(),
                "invalid digit found in string".into()
            )
        );
        assert_eq!(
            refused("[]"),
            ("".into(), "expected an object, got an array".into())
        );
    }

    #[test]
    fn proto2_without_a_syntax_line_and_its_required_fields() {
        let schema = r#"
            message Order {
              message Item { required string sku = 1; }
              required int32 id = 1;
              optional string note = 2;
              repeated Item items = 3;
            }
        "#;
        assert_eq!(
            encode(schema, r#"{"id": 1, "items": [{"sku": "a"}]}"#).unwrap(),
            [0x00, 0x08, 0x01, 0x1a, 0x03, 0x0a, 0x01, b'a']
        );
        let missing = encode(schema, r#"{"note": "x"}"#).unwrap_err();
        assert_eq!(
            (missing.path.as_str(), missing.message.as_str()),
            ("", "missing required field 'id'")
        );
        let nested = encode(schema, r#"{"id": 1, "items": [{"sku": "a"}, {}]}"#).unwrap_err();
        assert_eq!(
            (nested.path.as_str(), nested.message.as_str()),
            (".items[1]", "missing required field 'sku'")
        );
    }

    #[test]
    fn a_schema_without_a_message_is_invalid() {
        assert_eq!(
            ProtobufSchema::parse("syntax = \"proto3\"; enum E { A = 0; }").unwrap_err(),
            "the schema defines no message"
        );
    }

    #[test]
    fn an_unparseable_schema_is_invalid_with_the_compilers_message() {
        assert_eq!(
            ProtobufSchema::parse("message M {\n  optional int32 id = ;\n}").unwrap_err(),
            "schema.proto:2:23: expected an integer, but found ';'"
        );
        assert_eq!(
            ProtobufSchema::parse("message M { optional Missing m = 1; }").unwrap_err(),
            "schema.proto:1:22: name 'Missing' is not defined"
        );
    }

    #[test]
    fn only_well_known_types_can_be_imported() {
        assert_eq!(
            ProtobufSchema::parse("import \"other.proto\";\nmessage M {}").unwrap_err(),
            "schema.proto:1:1: import 'other.proto' not found; only the google/protobuf/ \
             well-known types can be imported (schema references are not supported)"
        );
        for well_known in [
            "duration",
            "struct",
            "wrappers",
            "any",
            "empty",
            "field_mask",
        ] {
            let schema = format!("import \"google/protobuf/{well_known}.proto\"; message M {{}}");
            assert!(ProtobufSchema::parse(&schema).is_ok(), "{well_known}");
        }
    }

    #[test]
    fn the_file_descriptor_describes_the_schema() {
        let schema =
            ProtobufSchema::parse("package p; message M { optional int32 id = 1; }").unwrap();
        let mut pool = prost_reflect::DescriptorPool::new();
        pool.decode_file_descriptor_proto(schema.file_descriptor_bytes().as_slice())
            .unwrap();
        let m = pool.get_message_by_name("p.M").unwrap();
        assert_eq!(m.get_field_by_name("id").unwrap().number(), 1);
        assert!(m.parent_file_descriptor_proto().source_code_info.is_none());
    }
}
