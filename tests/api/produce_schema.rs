//! The Schema Registry formats of API v2 (avro, jsonschema, protobuf) against tansu and the
//! registry double: exact answers, and what lands in Kafka decoded by Confluent's own Python
//! deserializers (tests/api/confluent_decode.py).

use serde_json::{json, Value};

use crate::helpers::registry::{Encoded, Registry, SchemaType};
use crate::helpers::{Cluster, TestApp};

const AVRO: &str = "application/vnd.kafka.avro.v2+json";
const JSONSCHEMA: &str = "application/vnd.kafka.jsonschema.v2+json";
const PROTOBUF: &str = "application/vnd.kafka.protobuf.v2+json";

/// A record of every kind the issue names: a union (with a named branch), a nested record,
/// an enum, bytes, a map, an array, logical types.
const ORDER_SCHEMA: &str = r#"{"type":"record","name":"Order","namespace":"com.example",
  "fields":[
    {"name":"id","type":"long"},
    {"name":"note","type":["null","string"]},
    {"name":"status","type":{"type":"enum","name":"Status","symbols":["NEW","PAID"]}},
    {"name":"digest","type":"bytes"},
    {"name":"tags","type":{"type":"map","values":"int"}},
    {"name":"lines","type":{"type":"array","items":"string"}},
    {"name":"address","type":["null",{"type":"record","name":"Address",
      "fields":[{"name":"street","type":"string"},{"name":"zip","type":"int"}]}]},
    {"name":"day","type":{"type":"int","logicalType":"date"}},
    {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}
  ]}"#;

async fn app_with(registry: &Registry) -> (TestApp, Cluster) {
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    settings.schema_registry.urls = vec![registry.url().to_owned()];
    settings.schema_registry.request_timeout_ms = 1_500;
    let app = TestApp::spawn_ready(settings).await;
    (app, cluster)
}

/// The request body of `records` with `schemas` (`"value_schema": ...` and the like).
fn body(schemas: Value, records: Value) -> String {
    let mut body = schemas;
    body["records"] = records;
    body.to_string()
}

fn ok_offsets(r: &Value, n: usize) {
    let offsets = r["offsets"].as_array().unwrap();
    assert_eq!(offsets.len(), n, "{r}");
    for o in offsets {
        assert!(o["error_code"].is_null(), "{r}");
    }
}

#[actix_web::test]
async fn avro_values_registered_by_text_are_read_back_by_confluents_deserializer() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let order = json!({"id": 9_007_199_254_740_993_i64, "note": {"string": "ring twice"},
        "status": "PAID", "digest": "\u{0}\u{ff}A", "tags": {"a": 1, "b": -2},
        "lines": ["x", "y"],
        "address": {"com.example.Address": {"street": "Main", "zip": 12345}},
        "day": 19_000, "at": 1_700_000_000_123_i64});
    let bare = json!({"id": 1, "note": null, "status": "NEW", "digest": "", "tags": {},
        "lines": [], "address": null, "day": 0, "at": 0});
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(
                json!({"key_schema": "\"string\"", "value_schema": ORDER_SCHEMA}),
                json!([{"key": "k1", "value": order}, {"value": bare}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let answer = r.json();
    ok_offsets(&answer, 2);
    let key_id = answer["key_schema_id"].as_i64().unwrap();
    let value_id = answer["value_schema_id"].as_i64().unwrap();
    assert_ne!(key_id, value_id);

    let records = cluster.consume(&topic, 1, 2).await;
    // The Schema Registry wire format: magic byte 0, then the id, big-endian.
    let value = records[0].value.as_deref().unwrap();
    assert_eq!(value[0], 0);
    assert_eq!(
        i64::from(i32::from_be_bytes(value[1..5].try_into().unwrap())),
        value_id
    );
    assert!(records[1].key.is_none());
    let decoded = registry
        .decode(&[
            Encoded::key(SchemaType::Avro, &topic, records[0].key.clone().unwrap()),
            Encoded::value(SchemaType::Avro, &topic, records[0].value.clone().unwrap()),
            Encoded::value(SchemaType::Avro, &topic, records[1].value.clone().unwrap()),
        ])
        .await;
    assert_eq!(decoded[0], json!("k1"));
    // Unions unwrapped, logical types as fastavro renders them.
    assert_eq!(
        decoded[1],
        json!({"id": 9_007_199_254_740_993_i64, "note": "ring twice", "status": "PAID",
            "digest": "\u{0}\u{ff}A", "tags": {"a": 1, "b": -2}, "lines": ["x", "y"],
            "address": {"street": "Main", "zip": 12345}, "day": "2022-01-08",
            "at": "2023-11-14T22:13:20.123000+00:00"})
    );
    assert_eq!(
        decoded[2],
        json!({"id": 1, "note": null, "status": "NEW", "digest": "", "tags": {},
            "lines": [], "address": null, "day": "1970-01-01",
            "at": "1970-01-01T00:00:00+00:00"})
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn avro_by_id_answers_the_ids_and_an_id_of_another_subject_is_42207() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let id = registry.register(&format!("{topic}-value"), SchemaType::Avro, r#""int""#);
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(json!({"value_schema_id": id}), json!([{"value": 7}])),
        )
        .await;
    r.assert_exact(
        200,
        &format!(
            r#"{{"offsets":[{{"partition":0,"offset":0,"error_code":null,"error":null}}],"key_schema_id":null,"value_schema_id":{id}}}"#
        ),
    );
    let other = registry.register("elsewhere-value", SchemaType::Avro, r#""long""#);
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(json!({"value_schema_id": other}), json!([{"value": 7}])),
        )
        .await;
    r.assert_exact(
        422,
        &format!(
            r#"{{"error_code":42207,"message":"Error serializing message. Schema {other} is not registered under subject '{topic}-value'.\nSchema not found; error code: 40403"}}"#
        ),
    );
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(json!({"value_schema_id": 999}), json!([{"value": 7}])),
        )
        .await;
    r.assert_exact(
        422,
        r#"{"error_code":42207,"message":"Error serializing message. Error when fetching schema by id. schemaId = 999\nSchema 999 not found; error code: 40403"}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [1]);
    app.stop().await.unwrap();
}

/// Confluent's Jackson reader coerces scalars: a schema id and a partition sent as strings
/// (padded, signed, empty) or as whole numbers with a fraction are taken as the integers
/// they spell, and land where those say.
#[actix_web::test]
async fn schema_ids_and_partitions_sent_as_strings_are_taken_as_confluent_takes_them() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(3).await;
    let id = registry.register(&format!("{topic}-value"), SchemaType::Avro, r#""int""#);
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/0"),
            AVRO,
            &body(
                json!({"key_schema_id": "", "value_schema_id": format!(" +{id} ")}),
                json!([{"value": 1, "partition": "1"}, {"value": 2, "partition": 2.0},
                    {"value": 3, "partition": ""}]),
            ),
        )
        .await;
    r.assert_exact(
        200,
        &format!(
            r#"{{"offsets":[{{"partition":1,"offset":0,"error_code":null,"error":null}},{{"partition":2,"offset":0,"error_code":null,"error":null}},{{"partition":0,"offset":0,"error_code":null,"error":null}}],"key_schema_id":null,"value_schema_id":{id}}}"#
        ),
    );
    let placed: Vec<(i32, Vec<u8>)> = cluster
        .consume(&topic, 3, 3)
        .await
        .into_iter()
        .map(|c| (c.partition, c.value.unwrap()))
        .collect();
    // The wire format: magic byte, the schema id, the avro int (zigzag varint).
    let framed = |n: u8| {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&id.to_be_bytes());
        bytes.push(n * 2);
        bytes
    };
    assert_eq!(placed, vec![(0, framed(3)), (1, framed(1)), (2, framed(2))]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn schema_errors_answer_confluents_codes_and_produce_nothing() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let post = |body: String| {
        let app = &app;
        let topic = &topic;
        async move { app.post(&format!("/topics/{topic}"), AVRO, &body).await }
    };
    post(body(json!({}), json!([{"key": "k", "value": null}])))
        .await
        .assert_exact(
            422,
            r#"{"error_code":42201,"message":"Request includes keys but does not include key schema"}"#,
        );
    post(body(json!({"key_schema": "\"string\""}), json!([{"key": "k", "value": 1}])))
        .await
        .assert_exact(
            422,
            r#"{"error_code":42202,"message":"Request includes values but does not include value schema"}"#,
        );
    post(body(
        json!({"value_schema": "\"int\"", "value_schema_id": 1}),
        json!([{"value": 1}]),
    ))
    .await
    .assert_exact(
        422,
        r#"{"error_code":422,"message":"Request includes both value_schema and value_schema_id: give one of them."}"#,
    );
    let r = post(body(
        json!({"value_schema": "{\"type\":\"record\"}"}),
        json!([{"value": {}}]),
    ))
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["error_code"], 42205);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid schema: "),
        "{answer}"
    );
    // Every record is checked before anything is produced: the bad one is the third.
    let schema = r#"{"type":"record","name":"P","fields":[{"name":"address","type":
        {"type":"record","name":"A","fields":[{"name":"zip","type":"int"}]}}]}"#;
    post(body(
        json!({"value_schema": schema}),
        json!([{"value": {"address": {"zip": 1}}}, {"value": {"address": {"zip": 2}}},
            {"value": {"address": {"zip": "x"}}}]),
    ))
    .await
    .assert_exact(
        400,
        r#"{"error_code":400,"message":"records[2].value.address.zip: expected int, got string"}"#,
    );
    // With a schema, null must be allowed by it (Confluent's default since
    // null.request.body.always.publishes.empty.record turned false)...
    post(body(
        json!({"value_schema": ORDER_SCHEMA}),
        json!([{"value": null}]),
    ))
    .await
    .assert_exact(
        400,
        r#"{"error_code":400,"message":"records[0].value: expected record com.example.Order, got null"}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [0]);
    // ... and is then a tombstone; without a schema, null data is a null key or value.
    let r = post(body(
        json!({"value_schema": "[\"null\",\"string\"]"}),
        json!([{"key": null, "value": null}]),
    ))
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let records = cluster.consume(&topic, 1, 1).await;
    assert_eq!(
        (records[0].key.as_ref(), records[0].value.as_ref()),
        (None, None)
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn many_requests_with_one_schema_ask_the_registry_once() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let request = body(
        json!({"value_schema": ORDER_SCHEMA.replace(['\n', ' '], ""), "key_schema": "\"string\""}),
        json!([{"key": "k", "value": {"id": 1, "note": null, "status": "NEW", "digest": "",
            "tags": {}, "lines": [], "address": null, "day": 0, "at": 0}}]),
    );
    let r = app.post(&format!("/topics/{topic}"), AVRO, &request).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let after_first = registry.calls();
    // Key and value: a look-up each, a registration each, and a look-up for the version.
    assert_eq!(after_first.lookup, 4, "{after_first:?}");
    assert_eq!(after_first.register, 2, "{after_first:?}");
    let path = format!("/topics/{topic}");
    let concurrent = (0..20).map(|_| app.post(&path, AVRO, &request));
    for r in futures_util::future::join_all(concurrent).await {
        assert_eq!(r.status, 200, "{}", r.body);
    }
    assert_eq!(registry.calls(), after_first);
    let by_id = body(
        json!({"value_schema_id": r.json()["value_schema_id"]}),
        json!([{"value": {"id": 1, "note": null, "status": "NEW", "digest": "", "tags": {},
            "lines": [], "address": null, "day": 0, "at": 0}}]),
    );
    for _ in 0..10 {
        let r = app.post(&format!("/topics/{topic}"), AVRO, &by_id).await;
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let after_ids = registry.calls();
    assert_eq!(after_ids.by_id, 1, "{after_ids:?}");
    assert_eq!(after_ids.lookup, after_first.lookup + 1, "{after_ids:?}");
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [31]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_registry_outage_spares_cached_schemas_and_is_503_for_the_others() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let cached = body(json!({"value_schema": "\"int\""}), json!([{"value": 1}]));
    let uncached = body(json!({"value_schema": "\"long\""}), json!([{"value": 1}]));
    let path = format!("/topics/{topic}");
    assert_eq!(app.post(&path, AVRO, &cached).await.status, 200);

    registry.fail_with(500, 50001, "Error in the backend data store");
    assert_eq!(app.post(&path, AVRO, &cached).await.status, 200);
    let r = app.post(&path, AVRO, &uncached).await;
    r.assert_exact(
        503,
        r#"{"error_code":50303,"message":"Schema Registry unavailable: answered 500 Internal Server Error: Error in the backend data store. Nothing was produced; retry later."}"#,
    );
    assert_eq!(r.header("retry-after"), Some("1"));

    registry.hang();
    let r = app.post(&path, AVRO, &uncached).await;
    r.assert_exact(
        503,
        r#"{"error_code":50303,"message":"Schema Registry unavailable: no answer within 1500 ms. Nothing was produced; retry later."}"#,
    );

    registry.restore();
    registry.fail_with(401, 401, "Unauthorized");
    let r = app.post(&path, AVRO, &uncached).await;
    r.assert_exact(
        403,
        &format!(
            r#"{{"error_code":40301,"message":"Error when registering schema. format = AVRO, subject = {topic}-value: the Schema Registry refused the proxy's credentials (Unauthorized; error code: 401)."}}"#
        ),
    );

    // A refusal of the registry's own (here: compatibility) is the partner's: 42207 with
    // the registry's words.
    registry.fail_with(
        409,
        409,
        "Schema being registered is incompatible with an earlier schema",
    );
    let r = app.post(&path, AVRO, &uncached).await;
    r.assert_exact(
        422,
        &format!(
            r#"{{"error_code":42207,"message":"Error serializing message. Error when registering schema. format = AVRO, subject = {topic}-value\nSchema being registered is incompatible with an earlier schema; error code: 409"}}"#
        ),
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [2]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn basic_auth_and_a_second_url_reach_the_registry() {
    let registry = Registry::start_with_basic_auth("sr-key", "sr-secret");
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    // The first URL refuses connections: the second one answers.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    settings.schema_registry.urls = vec![dead, registry.url().to_owned()];
    settings.schema_registry.basic_auth_user_info = Some("sr-key:sr-secret".to_owned().into());
    let app = TestApp::spawn_ready(settings).await;
    let topic = cluster.create_topic(1).await;
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(
                json!({"value_schema": "\"string\""}),
                json!([{"value": "x"}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    app.stop().await.unwrap();

    // Wrong credentials are the proxy's problem, said as Confluent says a refusal: 40301.
    let mut settings = cluster.settings();
    settings.schema_registry.urls = vec![registry.url().to_owned()];
    settings.schema_registry.basic_auth_user_info = Some("sr-key:wrong".to_owned().into());
    let app = TestApp::spawn_ready(settings).await;
    let r = app
        .post(
            &format!("/topics/{topic}"),
            AVRO,
            &body(json!({"value_schema": "\"long\""}), json!([{"value": 1}])),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["error_code"], 40301);
    assert!(!r.body.contains("wrong"), "{}", r.body);
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [1]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn jsonschema_values_are_validated_written_as_sent_and_read_back() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let schema = r#"{"type":"object","properties":{"id":{"type":"integer"},
        "tags":{"type":"array","items":{"type":"string"}}},"required":["id"]}"#;
    let r = app
        .post(
            &format!("/topics/{topic}"),
            JSONSCHEMA,
            &body(
                json!({"value_schema": schema}),
                json!([{"value": {"id": 1, "tags": ["a"]}}, {"value": {"id": 2, "extra": 1.10}}]),
            ),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.json()["value_schema_id"].as_i64().unwrap();
    let records = cluster.consume(&topic, 1, 2).await;
    let mut expected = vec![0];
    expected.extend_from_slice(&i32::try_from(id).unwrap().to_be_bytes());
    expected.extend_from_slice(br#"{"id":1,"tags":["a"]}"#);
    assert_eq!(records[0].value.as_deref(), Some(&expected[..]));
    let decoded = registry
        .decode(&[
            Encoded::value(SchemaType::Json, &topic, records[0].value.clone().unwrap()),
            Encoded::value(SchemaType::Json, &topic, records[1].value.clone().unwrap()),
        ])
        .await;
    assert_eq!(
        decoded,
        [
            json!({"id": 1, "tags": ["a"]}),
            json!({"id": 2, "extra": 1.1})
        ]
    );

    let r = app
        .post(
            &format!("/topics/{topic}"),
            JSONSCHEMA,
            &body(
                json!({"value_schema_id": id}),
                json!([{"value": {"id": 3}}, {"value": {"id": 4, "tags": [1]}}]),
            ),
        )
        .await;
    r.assert_exact(
        400,
        r#"{"error_code":400,"message":"records[1].value: at /tags/0: 1 is not of type \"string\""}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, [2]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn protobuf_messages_are_read_back_by_confluents_deserializer() {
    let registry = Registry::start();
    let (app, cluster) = app_with(&registry).await;
    let topic = cluster.create_topic(1).await;
    let schema = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
message Order {
  int64 id = 1;
  repeated Line lines = 2;
  Customer customer = 3;
  google.protobuf.Timestamp placed_at = 4;
  message Line { string sku = 1; int32 quantity = 2; }
}
message Customer { string name = 1; }
"#;
    let order = json!({"id": "9007199254740993", "lines": [{"sku": "a", "quantity": 2},
        {"sku": "b", "quantity": 1}], "customer": {"name": "Ada"},
        "placed_at": "2026-12-01T10:00:00.250Z"});
    let r = app
        .post(
            &format!("/topics/{topic}"),
            PROTOBUF,
            &body(json!({"value_schema": schema}), json!([{"value": order}])),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let records = cluster.consume(&topic, 1, 1).await;
    let value = records[0].value.clone().unwrap();
    assert_eq!(value[5], 0, "message indexes [0] are one zero byte");
    let decoded = registry
        .decode(&[Encoded::value(SchemaType::Protobuf, &topic, value)])
        .await;
    assert_eq!(
        decoded[0],
        json!({"id": "9007199254740993", "lines": [{"sku": "a", "quantity": 2},
            {"sku": "b", "quantity": 1}], "customer": {"name": "Ada"},
            "placed_at": "2026-12-01T10:00:00.250Z"})
    );

    let r = app
        .post(
            &format!("/topics/{topic}"),
            PROTOBUF,
            &body(
                json!({"value_schema": schema}),
                json!([{"value": {"id": 1, "colour": "red"}}]),
            ),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(message.starts_with("records[0].value"), "{message}");
    assert!(message.contains("colour"), "{message}");
    nothing_more_than(&cluster, &topic, 1).await;
    app.stop().await.unwrap();
}

async fn nothing_more_than(cluster: &Cluster, topic: &str, n: i64) {
    assert_eq!(cluster.high_watermarks(topic, 1).await, [n], "{topic}");
}
