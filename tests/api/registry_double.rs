//! The Schema Registry double answers as Confluent's registry does, and Confluent's Python
//! deserializers read Schema Registry frames through it: the ground the schema format tests
//! stand on, checked without the proxy.

use std::time::Duration;

use actix_web::http::header;
use apache_avro::types::Value as AvroValue;
use prost::Message;
use prost_reflect::DynamicMessage;
use serde_json::{json, Value};

use crate::helpers::registry::{Calls, Encoded, Registry, SchemaType, MEDIA_TYPE};

const USER: &str = r#"{"type": "record", "name": "User", "fields": [
    {"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}"#;
/// [`USER`] as the registry writes it back (and as Java's `Schema.toString()` does).
const USER_RENDERED: &str = r#"{"type":"record","name":"User","fields":[{"name":"name","type":"string"},{"name":"age","type":"int"}]}"#;
/// The MD5 of [`USER_RENDERED`] as a UUID.
const USER_GUID: &str = "850a2dc2-f62f-d810-b719-5b449920cb78";

/// An answer, read whole.
#[derive(Debug)]
struct Answer {
    status: u16,
    content_type: Option<String>,
    www_authenticate: Option<String>,
    body: Value,
}

impl Answer {
    /// Asserts the status and the exact JSON body, and the registry's Content-Type.
    #[track_caller]
    fn assert(&self, status: u16, body: &Value) {
        assert_eq!((self.status, &self.body), (status, body), "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some(MEDIA_TYPE), "{self:?}");
    }

    /// The body of a 200 without `ts`, after checking that it is a time in milliseconds.
    #[track_caller]
    fn ok_without_ts(&self) -> Value {
        assert_eq!(self.status, 200, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some(MEDIA_TYPE), "{self:?}");
        let mut body = self.body.clone();
        let ts = body.as_object_mut().unwrap().remove("ts");
        assert!(
            ts.as_ref().and_then(Value::as_u64).unwrap() > 1_600_000_000_000,
            "{self:?}"
        );
        body
    }
}

async fn read(request: awc::ClientRequest, body: Option<Value>) -> Answer {
    let sent = match body {
        Some(body) => request
            .insert_header((header::CONTENT_TYPE, MEDIA_TYPE))
            .send_body(body.to_string()),
        None => request.send(),
    };
    let mut response = sent.await.unwrap();
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|v: &header::HeaderValue| v.to_str().unwrap().to_owned())
    };
    let content_type = header(header::CONTENT_TYPE);
    let www_authenticate = header(header::WWW_AUTHENTICATE);
    let bytes = response.body().await.unwrap();
    Answer {
        status: response.status().as_u16(),
        content_type,
        www_authenticate,
        body: serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes))),
    }
}

async fn get(registry: &Registry, path: &str) -> Answer {
    let client = awc::Client::default();
    read(client.get(format!("{}{path}", registry.url())), None).await
}

async fn post(registry: &Registry, path: &str, body: Value) -> Answer {
    let client = awc::Client::default();
    read(client.post(format!("{}{path}", registry.url())), Some(body)).await
}

/// The body of a registration or a look-up.
fn schema(schema_type: Option<&str>, text: &str) -> Value {
    match schema_type {
        Some(t) => json!({"schema": text, "schemaType": t}),
        None => json!({"schema": text}),
    }
}

/// An Avro datum, written with apache-avro.
fn avro(schema: &str, value: AvroValue) -> Vec<u8> {
    let schema = apache_avro::Schema::parse_str(schema).unwrap();
    apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_value_to_vec(value)
        .unwrap()
}

/// A Schema Registry frame: magic byte 0, the schema id, the message indexes (Protobuf
/// only) and the payload.
fn frame(id: i32, indexes: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0];
    bytes.extend_from_slice(&id.to_be_bytes());
    bytes.extend_from_slice(indexes);
    bytes.extend_from_slice(payload);
    bytes
}

#[actix_web::test]
async fn registration_gives_global_ids_and_subject_versions() {
    let registry = Registry::start();
    let registered = json!({"id": 1, "version": 1, "guid": USER_GUID, "schemaType": "AVRO",
        "schema": USER_RENDERED});
    post(&registry, "/subjects/t-value/versions", schema(None, USER))
        .await
        .assert(200, &registered);
    // The same schema again, in other whitespace and with the type named: the same version.
    post(
        &registry,
        "/subjects/t-value/versions",
        schema(Some("AVRO"), USER_RENDERED),
    )
    .await
    .assert(200, &registered);
    // Under another subject: the same global id, that subject's first version.
    post(&registry, "/subjects/u-value/versions", schema(None, USER))
        .await
        .assert(200, &registered);
    // A new schema: the next id, the subject's next version.
    let answer = post(
        &registry,
        "/subjects/t-value/versions",
        schema(None, r#""string""#),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.body["id"], &answer.body["version"]),
        (200, &json!(2), &json!(2)),
        "{answer:?}"
    );
    assert_eq!(answer.body["schema"], json!(r#""string""#));

    let version_1 = json!({"subject": "t-value", "version": 1, "id": 1, "guid": USER_GUID,
        "schemaType": "AVRO", "schema": USER_RENDERED, "deleted": false});
    let answer = get(&registry, "/subjects/t-value/versions/1").await;
    assert_eq!(answer.ok_without_ts(), version_1);
    let answer = get(&registry, "/subjects/t-value/versions/latest").await;
    assert_eq!((answer.status, &answer.body["id"]), (200, &json!(2)));

    let answer = post(&registry, "/subjects/t-value", schema(None, USER)).await;
    answer.assert(
        200,
        &json!({"subject": "t-value", "version": 1, "id": 1, "guid": USER_GUID,
            "schemaType": "AVRO", "schema": USER_RENDERED}),
    );

    let by_id = json!({"guid": USER_GUID, "schemaType": "AVRO", "schema": USER_RENDERED,
        "deleted": false});
    let answer = get(&registry, "/schemas/ids/1").await;
    assert_eq!(answer.ok_without_ts(), by_id);
    // With a subject: where the id is registered under it.
    let mut under_u = by_id.clone();
    under_u["subject"] = json!("u-value");
    under_u["version"] = json!(1);
    let answer = get(&registry, "/schemas/ids/1?subject=u-value").await;
    assert_eq!(answer.ok_without_ts(), under_u);
    // Under a subject it is not registered under: its first home.
    under_u["subject"] = json!("t-value");
    let answer = get(&registry, "/schemas/ids/1?subject=v-value").await;
    assert_eq!(answer.ok_without_ts(), under_u);
}

#[actix_web::test]
async fn errors_carry_the_registry_codes_and_messages() {
    let registry = Registry::start();
    registry.register("t-value", SchemaType::Avro, USER);
    let error = |code: i32, message: &str| json!({"error_code": code, "message": message});

    get(&registry, "/schemas/ids/99")
        .await
        .assert(404, &error(40403, "Schema 99 not found"));
    get(&registry, "/schemas/ids/one")
        .await
        .assert(404, &error(404, "HTTP 404 Not Found"));
    get(&registry, "/config")
        .await
        .assert(404, &error(404, "HTTP 404 Not Found"));
    post(&registry, "/subjects/nope", schema(None, USER))
        .await
        .assert(404, &error(40401, "Subject 'nope' not found."));
    post(&registry, "/subjects/t-value", schema(None, r#""string""#))
        .await
        .assert(404, &error(40403, "Schema not found"));
    get(&registry, "/subjects/nope/versions/latest")
        .await
        .assert(404, &error(40401, "Subject 'nope' not found."));
    get(&registry, "/subjects/t-value/versions/7")
        .await
        .assert(404, &error(40402, "Version 7 not found."));
    for (version, shown) in [("0", "0"), ("x", "x")] {
        get(&registry, &format!("/subjects/t-value/versions/{version}"))
            .await
            .assert(
                422,
                &error(
                    42202,
                    &format!(
                        "The specified version '{shown}' is not a valid version id. Allowed \
                         values are between [1, 2^31-1] and the string \"latest\""
                    ),
                ),
            );
    }

    post(
        &registry,
        "/subjects/t-value/versions",
        schema(Some("XML"), "<a/>"),
    )
    .await
    .assert(422, &error(42201, "Invalid schema type XML"));
    // A schema that does not parse is refused before the subject is looked at.
    for path in ["/subjects/t-value/versions", "/subjects/nope"] {
        let answer = post(&registry, path, schema(None, r#"{"type": "nothing"}"#)).await;
        assert_eq!(
            (answer.status, &answer.body["error_code"]),
            (422, &json!(42201))
        );
        let message = answer.body["message"].as_str().unwrap();
        let subject = path.split('/').nth(2).unwrap();
        assert!(
            message.starts_with(&format!(
                "Invalid schema of type AVRO, details: Invalid schema {{subject={subject},\
                 version=null,id=null,guid="
            )),
            "{message}"
        );
        assert!(
            message.contains(r#",schema={"type": "nothing"},schemaTags=null,ts=null,deleted=null} with refs [] of type AVRO, details: "#),
            "{message}"
        );
    }
    for (kind, text) in [
        ("JSON", r#"{"type": 12}"#),
        ("JSON", "{"),
        ("PROTOBUF", "message {"),
    ] {
        let answer = post(
            &registry,
            "/subjects/t-value/versions",
            schema(Some(kind), text),
        )
        .await;
        assert_eq!(
            (answer.status, &answer.body["error_code"]),
            (422, &json!(42201))
        );
        let prefix = format!(
            "Invalid schema of type {kind}, details: Invalid schema of type {kind}, details: "
        );
        assert!(
            answer.body["message"]
                .as_str()
                .unwrap()
                .starts_with(&prefix),
            "{answer:?}"
        );
    }
    post(
        &registry,
        "/subjects/t-value/versions",
        json!({"schemaType": "AVRO"}),
    )
    .await
    .assert(422, &error(42201, "Empty schema"));

    let client = awc::Client::default();
    let request = client
        .post(format!("{}/subjects/t-value/versions", registry.url()))
        .insert_header((header::CONTENT_TYPE, "text/plain"));
    let answer = read(request, None).await;
    answer.assert(415, &error(415, "HTTP 415 Unsupported Media Type"));
    // The generic request types are accepted too, as the real one does.
    for media_type in ["application/json", "application/octet-stream"] {
        let response = client
            .post(format!("{}/subjects/t-value", registry.url()))
            .insert_header((header::CONTENT_TYPE, media_type))
            .send_body(schema(None, USER).to_string())
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{media_type}");
    }
}

#[actix_web::test]
async fn equivalent_schemas_are_found_under_a_subject() {
    let registry = Registry::start();

    // Avro: another rendering of an equivalent schema (a doc, which the parsing canonical
    // form drops) is that version under the subject, and a new id under another.
    let documented = r#"{"type": "record", "name": "User", "doc": "a user", "fields": [
        {"name": "name", "type": "string"}, {"name": "age", "type": "int"}]}"#;
    let id = registry.register("a-value", SchemaType::Avro, documented);
    let answer = post(&registry, "/subjects/a-value", schema(None, USER)).await;
    assert_eq!(
        (answer.status, &answer.body["id"], &answer.body["version"]),
        (200, &json!(id), &json!(1)),
        "{answer:?}"
    );
    // Found as the registered version: its rendering, with the stored fields.
    assert!(answer.body["schema"]
        .as_str()
        .unwrap()
        .contains(r#""doc":"a user""#));
    assert_eq!(answer.body["deleted"], json!(false));
    let answer = post(&registry, "/subjects/a-value/versions", schema(None, USER)).await;
    assert_eq!(
        (&answer.body["id"], &answer.body["version"]),
        (&json!(id), &json!(1))
    );
    let other = registry.register("b-value", SchemaType::Avro, USER);
    assert_ne!(other, id);

    // JSON Schema: the parsed value, whatever the key order and whitespace.
    let id = registry.register(
        "j-value",
        SchemaType::Json,
        r#"{"type": "object", "properties": {"a": {"type": "string"}}}"#,
    );
    let answer = post(
        &registry,
        "/subjects/j-value",
        schema(
            Some("JSON"),
            r#"{"properties":{"a":{"type":"string"}},"type":"object"}"#,
        ),
    )
    .await;
    answer.assert(
        200,
        &json!({"subject": "j-value", "version": 1, "id": id, "guid": answer.body["guid"],
            "schemaType": "JSON",
            "schema": r#"{"properties":{"a":{"type":"string"}},"type":"object"}"#}),
    );

    // Protobuf: the compiled file, whatever the layout and comments.
    let proto = "syntax = \"proto3\";\npackage test;\nmessage Item { string name = 1; }\n";
    let id = registry.register("p-value", SchemaType::Protobuf, proto);
    let relaid =
        "syntax=\"proto3\"; // the same\npackage test;\n\nmessage Item {\n  string name = 1;\n}";
    let answer = post(
        &registry,
        "/subjects/p-value",
        schema(Some("PROTOBUF"), relaid),
    )
    .await;
    assert_eq!(
        (
            answer.status,
            &answer.body["id"],
            &answer.body["schemaType"]
        ),
        (200, &json!(id), &json!("PROTOBUF")),
        "{answer:?}"
    );
    let answer = post(
        &registry,
        "/subjects/p-value",
        schema(Some("PROTOBUF"), &proto.replace("name = 1", "name = 2")),
    )
    .await;
    assert_eq!(answer.status, 404, "another field number is another schema");

    // format=serialized: the FileDescriptorProto, base64, named as the real one names it.
    let answer = get(&registry, &format!("/schemas/ids/{id}?format=serialized")).await;
    let serialized = answer.body["schema"].as_str().unwrap();
    let file = prost_reflect::prost_types::FileDescriptorProto::decode(
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, serialized)
            .unwrap()
            .as_slice(),
    )
    .unwrap();
    assert_eq!(
        (file.name(), file.package(), file.message_type[0].name()),
        ("default", "test", "Item")
    );
    let answer = get(&registry, &format!("/schemas/ids/{id}")).await;
    assert_eq!(answer.body["schema"], json!(proto));
}

#[actix_web::test]
async fn basic_auth_refuses_requests_without_the_credentials() {
    let registry = Registry::start_with_basic_auth("sr-user", "sr-secret");
    let id = registry.register("t-value", SchemaType::Avro, USER);
    let client = awc::Client::default();
    let url = format!("{}/schemas/ids/{id}", registry.url());
    for request in [
        client.get(&url),
        client.get(&url).basic_auth("sr-user", "wrong"),
    ] {
        let answer = read(request, None).await;
        assert_eq!(
            (answer.status, &answer.body),
            (401, &json!({"error_code": 401, "message": "Unauthorized"}))
        );
        assert_eq!(answer.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            answer.www_authenticate.as_deref(),
            Some("Basic realm=\"SchemaRegistry\"")
        );
    }
    let answer = read(client.get(&url).basic_auth("sr-user", "sr-secret"), None).await;
    assert_eq!(
        (answer.status, &answer.body["schema"]),
        (200, &json!(USER_RENDERED))
    );

    // The deserializers are given the credentials too.
    let datum = avro(
        USER,
        AvroValue::Record(vec![
            ("name".into(), "ada".into()),
            ("age".into(), 36.into()),
        ]),
    );
    let decoded = registry
        .decode(&[Encoded::value(
            SchemaType::Avro,
            "t",
            frame(id, &[], &datum),
        )])
        .await;
    assert_eq!(decoded, vec![json!({"name": "ada", "age": 36})]);
    // Refused or not, every request counts.
    assert_eq!(
        registry.calls(),
        Calls {
            total: 5,
            by_id: 4,
            associations: 1,
            ..Calls::default()
        }
    );
}

#[actix_web::test]
async fn switches_fail_hang_and_restore_and_every_call_is_counted() {
    let registry = Registry::start();
    let id = registry.register("t-value", SchemaType::Avro, USER);
    assert_eq!(
        registry.calls(),
        Calls::default(),
        "direct registration is not counted"
    );

    get(&registry, &format!("/schemas/ids/{id}")).await;
    post(&registry, "/subjects/t-value", schema(None, USER)).await;
    post(&registry, "/subjects/t-value", schema(None, r#""int""#)).await;
    post(&registry, "/subjects/t-value/versions", schema(None, USER)).await;
    get(&registry, "/subjects/t-value/versions/latest").await;
    get(
        &registry,
        "/associations/resources/-/t?resourceType=topic&associationType=value",
    )
    .await
    .assert(200, &json!([]));
    get(&registry, "/mode").await;
    let counted = Calls {
        total: 7,
        by_id: 1,
        lookup: 2,
        register: 1,
        version: 1,
        associations: 1,
    };
    assert_eq!(registry.calls(), counted);

    registry.fail_with(500, 50001, "Error while retrieving schema");
    get(&registry, &format!("/schemas/ids/{id}")).await.assert(
        500,
        &json!({"error_code": 50001, "message": "Error while retrieving schema"}),
    );

    registry.hang();
    let client = awc::Client::builder()
        .timeout(Duration::from_millis(300))
        .finish();
    let hung = client
        .get(format!("{}/schemas/ids/{id}", registry.url()))
        .send()
        .await;
    assert!(
        matches!(hung, Err(awc::error::SendRequestError::Timeout)),
        "{hung:?}"
    );

    registry.restore();
    let answer = get(&registry, &format!("/schemas/ids/{id}")).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        registry.calls(),
        Calls {
            total: 10,
            by_id: 4,
            ..counted
        }
    );
}

#[actix_web::test]
async fn confluent_deserializers_read_the_three_formats() {
    let registry = Registry::start();

    let avro_text = r#"{"type": "record", "name": "Event", "fields": [
        {"name": "name", "type": "string"},
        {"name": "count", "type": "long"},
        {"name": "nick", "type": ["null", "string"]},
        {"name": "raw", "type": "bytes"},
        {"name": "tag", "type": {"type": "fixed", "name": "Tag", "size": 2}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
            "precision": 6, "scale": 2}}]}"#;
    let avro_id = registry.register("events-value", SchemaType::Avro, avro_text);
    let datum = avro(
        avro_text,
        AvroValue::Record(vec![
            ("name".into(), "ada".into()),
            ("count".into(), AvroValue::Long(1 << 40)),
            ("nick".into(), AvroValue::Union(1, Box::new("ad".into()))),
            ("raw".into(), AvroValue::Bytes(vec![0, 0xff, b'A'])),
            ("tag".into(), AvroValue::Fixed(2, vec![0xe9, b'!'])),
            ("kind".into(), AvroValue::Enum(1, "B".into())),
            ("at".into(), AvroValue::TimestampMillis(1_700_000_000_000)),
            (
                "price".into(),
                AvroValue::Decimal(apache_avro::Decimal::from(vec![0x04, 0xd2])),
            ),
        ]),
    );
    let key_id = registry.register("events-key", SchemaType::Avro, r#""string""#);
    let key = avro(r#""string""#, "k-1".into());

    let json_id = registry.register(
        "docs-value",
        SchemaType::Json,
        r#"{"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}"#,
    );

    let proto = r#"syntax = "proto3";
        package shop;
        message Item { string name = 1; int64 count = 2; repeated string tags = 3; }
        message Order { message Line { string sku = 1; int32 qty = 2; } Line line = 1; }"#;
    let proto_id = registry.register("items-value", SchemaType::Protobuf, proto);
    let mut compiler = protox::Compiler::with_file_resolver(InMemory(proto));
    compiler.open_file("shop.proto").unwrap();
    let pool = compiler.descriptor_pool();
    let message = |name: &str, value: Value| {
        let descriptor = pool.get_message_by_name(name).unwrap();
        DynamicMessage::deserialize(descriptor, value)
            .unwrap()
            .encode_to_vec()
    };
    let item = message(
        "shop.Item",
        json!({"name": "pen", "count": "7", "tags": ["a", "b"]}),
    );
    let line = message("shop.Order.Line", json!({"sku": "X1", "qty": 3}));

    let decoded = registry
        .decode(&[
            Encoded::value(SchemaType::Avro, "events", frame(avro_id, &[], &datum)),
            Encoded::key(SchemaType::Avro, "events", frame(key_id, &[], &key)),
            Encoded::value(
                SchemaType::Json,
                "docs",
                frame(json_id, &[], br#"{"a": 5}"#),
            ),
            // The message indexes, zigzag varints: [0] is written as a single 0, [1, 0] as
            // its length and items, 4 2 0.
            Encoded::value(SchemaType::Protobuf, "items", frame(proto_id, &[0], &item)),
            Encoded::value(
                SchemaType::Protobuf,
                "items",
                frame(proto_id, &[4, 2, 0], &line),
            ),
            // Each value fails alone: an unknown id, and JSON that the schema refuses.
            Encoded::value(SchemaType::Avro, "events", frame(99, &[], &datum)),
            Encoded::value(
                SchemaType::Json,
                "docs",
                frame(json_id, &[], br#"{"b": 5}"#),
            ),
        ])
        .await;
    assert_eq!(
        decoded[..5],
        [
            json!({"name": "ada", "count": 1_u64 << 40, "nick": "ad", "raw": "\u{0}\u{ff}A",
                "tag": "é!", "kind": "B", "at": "2023-11-14T22:13:20+00:00", "price": "12.34"}),
            json!("k-1"),
            json!({"a": 5}),
            json!({"name": "pen", "count": "7", "tags": ["a", "b"]}),
            json!({"sku": "X1", "qty": 3}),
        ]
    );
    let error = |i: usize| decoded[i]["error"].as_str().unwrap_or_default().to_owned();
    assert!(error(5).contains("40403"), "{:?}", decoded[5]);
    assert!(
        error(6).contains("'a' is a required property"),
        "{:?}",
        decoded[6]
    );
    // Each deserializer asked which subject the topic uses (none is associated: the topic's
    // subject then), and the client fetched each writer schema once per subject and id;
    // nothing else.
    assert_eq!(
        registry.calls(),
        Calls {
            total: 10,
            by_id: 5,
            associations: 5,
            ..Calls::default()
        }
    );
}

/// One `.proto` file, for building the test's messages.
struct InMemory(&'static str);

impl protox::file::FileResolver for InMemory {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        protox::file::File::from_source(name, self.0)
    }
}
