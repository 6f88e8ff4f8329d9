//! API v2 produce against a real broker: exact bodies, what lands in Kafka, and every
//! refusal of SPEC §1-2. Placement is checked against an independent murmur2 and CRC32
//! (below).

use std::time::{Duration, Instant};

use kafka_rest_proxy::config::Partitioner;

use crate::helpers::{Cluster, TestApp, BINARY_V2, JSON_V2, V2};

async fn app() -> (TestApp, Cluster) {
    let cluster = Cluster::plaintext();
    let app = TestApp::spawn_ready(cluster.settings()).await;
    (app, cluster)
}

#[test]
fn murmur2_matches_javas_test_vectors() {
    // apache/kafka clients UtilsTest.testMurmur2
    let vectors: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (data, expected) in vectors {
        assert_eq!(murmur2(data), expected, "{}", String::from_utf8_lossy(data));
    }
}

#[actix_web::test]
async fn json_values_of_every_type_survive_exactly() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    // Whitespace between tokens is dropped; everything else arrives as sent.
    let records = [
        (
            r#""k""#,
            r#"{ "z" : 1, "a" : [ true, false, null ], "m": {"y": "x"} }"#,
            r#"{"z":1,"a":[true,false,null],"m":{"y":"x"}}"#,
        ),
        (
            "1",
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        ("null", "1.10", "1.10"),
        ("true", "-1.5e-7", "-1.5e-7"),
        (
            r#"{"id":9007199254740993}"#,
            r#""caf\u00e9 \"q\" \\ \/""#,
            r#""caf\u00e9 \"q\" \\ \/""#,
        ),
        ("[1, 2]", "false", "false"),
        (r#""tomb""#, "null", ""),
    ];
    let body = format!(
        r#"{{"records":[{}]}}"#,
        records
            .iter()
            .map(|(k, v, _)| format!(r#"{{"key":{k},"value":{v}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let r = app.produce(&topic, &body).await;
    let offsets = (0..records.len())
        .map(|i| format!(r#"{{"partition":0,"offset":{i},"error_code":null,"error":null}}"#))
        .collect::<Vec<_>>()
        .join(",");
    r.assert_exact(
        200,
        &format!(r#"{{"offsets":[{offsets}],"key_schema_id":null,"value_schema_id":null}}"#),
    );

    let consumed = cluster.consume(&topic, 1, records.len()).await;
    assert_eq!(consumed.len(), records.len());
    let expected_keys = [
        Some(r#""k""#),
        Some("1"),
        None,
        Some("true"),
        Some(r#"{"id":9007199254740993}"#),
        Some("[1,2]"),
        Some(r#""tomb""#),
    ];
    for (i, record) in consumed.iter().enumerate() {
        let value = records[i].2;
        let expected_value = (!value.is_empty()).then(|| value.as_bytes().to_vec());
        assert_eq!(record.value, expected_value, "value {i}");
        assert_eq!(
            record.key,
            expected_keys[i].map(|k| k.as_bytes().to_vec()),
            "key {i}"
        );
        let ts = record.timestamp_ms.expect("a timestamp");
        assert!(
            ts >= before - 1000 && ts < before + 60_000,
            "timestamp {ts}"
        );
    }
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn application_json_is_an_alias_of_the_json_format() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    let r = app
        .post(
            &format!("/topics/{topic}"),
            "application/json; charset=utf-8",
            r#"{"records":[{"value":{"a":1}}]}"#,
        )
        .await;
    r.assert_exact(
        200,
        r#"{"offsets":[{"partition":0,"offset":0,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#,
    );
    let consumed = cluster.consume(&topic, 1, 1).await;
    assert_eq!(consumed[0].value.as_deref(), Some(&br#"{"a":1}"#[..]));
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn binary_keys_and_values_are_the_decoded_bytes() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    // "/+8=" is 0xff 0xef (not UTF-8); "Zm8" is unpadded "fo", accepted as Confluent does.
    let body = r#"{"records":[{"key":"a2V5","value":"/+8="},{"value":"Zm8"},{"key":null,"value":null},{"value":""}]}"#;
    let r = app.post(&format!("/topics/{topic}"), BINARY_V2, body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let consumed = cluster.consume(&topic, 1, 4).await;
    type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);
    let got: Vec<KeyValue> = consumed.into_iter().map(|c| (c.key, c.value)).collect();
    assert_eq!(
        got,
        vec![
            (Some(b"key".to_vec()), Some(vec![0xff, 0xef])),
            (None, Some(b"fo".to_vec())),
            (None, None),
            (None, Some(Vec::new())),
        ]
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn path_partition_and_record_partition() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(3).await;
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/1"),
            JSON_V2,
            r#"{"records":[{"value":"a"},{"value":"b","partition":2},{"key":"k","value":"c"}]}"#,
        )
        .await;
    r.assert_exact(
        200,
        r#"{"offsets":[{"partition":1,"offset":0,"error_code":null,"error":null},{"partition":2,"offset":0,"error_code":null,"error":null},{"partition":1,"offset":1,"error_code":null,"error":null}],"key_schema_id":null,"value_schema_id":null}"#,
    );
    let r = app
        .produce(&topic, r#"{"records":[{"value":"d","partition":0}]}"#)
        .await;
    assert_eq!(r.json()["offsets"][0]["partition"], 0);
    let consumed = cluster.consume(&topic, 3, 4).await;
    let placed: Vec<(i32, &[u8])> = consumed
        .iter()
        .map(|c| (c.partition, c.value.as_deref().unwrap()))
        .collect();
    assert_eq!(
        placed,
        vec![
            (0, &b"\"d\""[..]),
            (1, b"\"a\""),
            (1, b"\"c\""),
            (2, b"\"b\"")
        ]
    );
    app.stop().await.unwrap();
}

/// Forty distinct keys, and a json body with one record per key.
fn forty_keyed_records() -> (Vec<String>, String) {
    let keys: Vec<String> = (0..40).map(|i| format!("customer-{i}")).collect();
    let body = format!(
        r#"{{"records":[{}]}}"#,
        keys.iter()
            .map(|k| format!(r#"{{"key":"{k}","value":1}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    (keys, body)
}

#[actix_web::test]
async fn keyed_records_land_where_javas_partitioner_puts_them() {
    let (app, cluster) = app().await;
    let partitions = 7;
    let topic = cluster.create_topic(partitions).await;
    let (keys, body) = forty_keyed_records();
    let r = app.produce(&topic, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let offsets = r.json()["offsets"].as_array().unwrap().clone();
    let mut used = std::collections::BTreeSet::new();
    for (key, entry) in keys.iter().zip(&offsets) {
        // The json format writes the key as JSON: with its quotes.
        let expected = java_partition(format!("\"{key}\"").as_bytes(), partitions);
        assert_eq!(entry["partition"], expected, "key {key}");
        used.insert(expected);
    }
    assert!(used.len() > 3, "keys spread over partitions: {used:?}");

    // And what Kafka holds agrees with the response.
    let consumed = cluster.consume(&topic, partitions, keys.len()).await;
    for record in consumed {
        let key = record.key.unwrap();
        assert_eq!(record.partition, java_partition(&key, partitions));
    }
    app.stop().await.unwrap();
}

/// With `kafka.partitioner = "consistent_random"`, keys land where librdkafka's default
/// puts them (CRC32 of the key, modulo the partition count), not where murmur2 would.
#[actix_web::test]
async fn keyed_records_land_where_crc32_puts_them_with_consistent_random() {
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    settings.kafka.partitioner = Partitioner::ConsistentRandom;
    let app = TestApp::spawn_ready(settings).await;
    let partitions = 7;
    let topic = cluster.create_topic(partitions).await;
    let (keys, body) = forty_keyed_records();
    let r = app.produce(&topic, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let offsets = r.json()["offsets"].as_array().unwrap().clone();
    let mut moved = 0;
    for (key, entry) in keys.iter().zip(&offsets) {
        // The json format writes the key as JSON: with its quotes.
        let key = format!("\"{key}\"");
        let expected = crc32_partition(key.as_bytes(), partitions);
        assert_eq!(entry["partition"], expected, "key {key}");
        if expected != java_partition(key.as_bytes(), partitions) {
            moved += 1;
        }
    }
    assert!(
        moved > 10,
        "most keys land elsewhere than murmur2 puts them: {moved}"
    );

    let consumed = cluster.consume(&topic, partitions, keys.len()).await;
    assert_eq!(consumed.len(), keys.len());
    for record in consumed {
        let key = record.key.unwrap();
        assert_eq!(record.partition, crc32_partition(&key, partitions));
    }
    app.stop().await.unwrap();
}

#[test]
fn crc32_matches_the_standard_check_value() {
    // The CRC-32 (ISO-HDLC) catalogue's check value, and zlib's crc32 of a known string.
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(
        crc32(b"The quick brown fox jumps over the lazy dog"),
        0x414f_a339
    );
    assert_eq!(crc32(b""), 0);
}

#[actix_web::test]
async fn unsupported_content_types_get_415() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    let body = r#"{"records":[{"value":1}]}"#;
    for content_type in [
        "text/plain",
        "application/vnd.kafka.v2+json",
        "application/vnd.kafka.json.v1+json",
        "application/x-www-form-urlencoded",
    ] {
        let r = app
            .post(&format!("/topics/{topic}"), content_type, body)
            .await;
        r.assert_exact(
            415,
            r#"{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}"#,
        );
    }
    let r = app
        .request("POST", &format!("/topics/{topic}"), &[], body)
        .await;
    r.assert_exact(
        415,
        r#"{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn schema_formats_say_no_schema_registry_is_configured() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    let r = app
        .post(
            &format!("/topics/{topic}"),
            "application/vnd.kafka.avro.v2+json",
            r#"{"value_schema":"\"string\"","records":[{"value":"x"}]}"#,
        )
        .await;
    r.assert_exact(
        422,
        r#"{"error_code":42206,"message":"Payload error. Schema Registry must be configured when using schemas."}"#,
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn unacceptable_accept_gets_406() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    for accept in ["text/html", "application/xml", "application/json;q=0"] {
        let r = app
            .request(
                "POST",
                &format!("/topics/{topic}"),
                &[("content-type", JSON_V2), ("accept", accept)],
                r#"{"records":[{"value":1}]}"#,
            )
            .await;
        r.assert_exact(
            406,
            r#"{"error_code":406,"message":"HTTP 406 Not Acceptable"}"#,
        );
    }
    for accept in [
        "*/*",
        "application/*",
        "application/json",
        "text/html, application/vnd.kafka.v2+json;q=0.5",
    ] {
        let r = app
            .request(
                "POST",
                &format!("/topics/{topic}"),
                &[("content-type", JSON_V2), ("accept", accept)],
                r#"{"records":[{"value":1}]}"#,
            )
            .await;
        assert_eq!(r.status, 200, "{accept}: {r:?}");
    }
    let r = app
        .request("GET", "/topics", &[("accept", "text/html")], "")
        .await;
    r.assert_exact(
        406,
        r#"{"error_code":406,"message":"HTTP 406 Not Acceptable"}"#,
    );
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn invalid_envelopes_get_422_and_produce_nothing() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    let cases = [
        ("", "Request body is empty. Data is required."),
        ("  \n", "Request body is empty. Data is required."),
        ("{}", "Field 'records' is required."),
        (r#"{"records":null}"#, "Field 'records' is required."),
        (r#"{"records":[]}"#, "Field 'records' must not be empty."),
        (
            r#"{"records":[{"value":1}],"foo":1}"#,
            "Unrecognized field: foo",
        ),
        (
            r#"{"records":[{"value":1},{"value":2,"headers":[]}]}"#,
            "Unrecognized field: headers",
        ),
        (
            r#"{"records":"x"}"#,
            "Field 'records' must be an array, found a string.",
        ),
        (
            r#"{"records":[{"value":1},7]}"#,
            "Field 'records[1]' must be an object, found a number.",
        ),
        (
            r#"{"records":[{"value":1,"partition":"0.0"}]}"#,
            "Field 'records[0].partition' must be an integer, found a string that is not an integer.",
        ),
        (
            r#"{"records":[{"value":1,"partition":0.5}]}"#,
            "Field 'records[0].partition' must be an integer, found a non-integer number.",
        ),
        (
            r#"{"value_schema_id":"x","records":[{"value":1}]}"#,
            "Field 'value_schema_id' must be an integer, found a string that is not an integer.",
        ),
        (
            r#"{"key_schema":[],"records":[{"value":1}]}"#,
            "Field 'key_schema' must be a string, found an array.",
        ),
        ("[]", "Expected the request body to be a JSON object."),
    ];
    for (body, message) in cases {
        let r = app.produce(&topic, body).await;
        let expected = serde_json::json!({"error_code": 422, "message": message}).to_string();
        r.assert_exact(422, &expected);
    }
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn malformed_json_and_bad_binary_get_400_and_produce_nothing() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(1).await;
    let path = format!("/topics/{topic}");
    let r = app
        .post(&path, JSON_V2, r#"{"records":[{"value":1},"#)
        .await;
    r.assert_exact(
        400,
        r#"{"error_code":400,"message":"Malformed JSON: EOF while parsing a value at line 1 column 24"}"#,
    );
    let r = app
        .post(&path, JSON_V2, r#"{"records":[{"value":tru}]}"#)
        .await;
    r.assert_exact(
        400,
        r#"{"error_code":400,"message":"Malformed JSON: expected ident at line 1 column 25"}"#,
    );
    let r = app
        .post(
            &path,
            BINARY_V2,
            r#"{"records":[{"value":"Zm9v"},{"value":123}]}"#,
        )
        .await;
    r.assert_exact(
        400,
        r#"{"error_code":400,"message":"Field 'records[1].value': expected a base64 string, found a number."}"#,
    );
    let r = app
        .post(
            &path,
            BINARY_V2,
            r#"{"records":[{"key":"a-_b","value":"Zm9v"}]}"#,
        )
        .await;
    r.assert_exact(
        400,
        r#"{"error_code":400,"message":"Field 'records[0].key': not valid base64: '-' at offset 1 is not a base64 character (the URL-safe alphabet is not accepted)."}"#,
    );
    assert_eq!(cluster.high_watermarks(&topic, 1).await, vec![0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn unknown_topic_is_404_at_once() {
    let (app, _cluster) = app().await;
    // The producer's delivery timeout is 10 s in these tests: an answer within 3 s shows the
    // metadata check answered, not a delivery timeout (Confluent blocks for 60 s).
    let started = Instant::now();
    let r = app
        .post(
            "/topics/no-such-topic-here",
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    let elapsed = started.elapsed();
    r.assert_exact(404, r#"{"error_code":40401,"message":"Topic not found."}"#);
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    // Again, from the negative cache.
    let r = app
        .post(
            "/topics/no-such-topic-here",
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    r.assert_exact(404, r#"{"error_code":40401,"message":"Topic not found."}"#);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn a_topic_created_after_a_miss_is_found() {
    let (app, cluster) = app().await;
    let r = app
        .post(
            "/topics/not-yet-created",
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    assert_eq!(r.status, 404);
    let topic = cluster.create_topic(1).await;
    let r = app.produce(&topic, r#"{"records":[{"value":1}]}"#).await;
    assert_eq!(r.status, 200, "{r:?}");
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn invalid_topic_names_are_refused_before_kafka() {
    let (app, _cluster) = app().await;
    let r = app
        .post("/topics/bad$name", JSON_V2, r#"{"records":[{"value":1}]}"#)
        .await;
    r.assert_exact(
        404,
        r#"{"error_code":40401,"message":"Topic not found: invalid topic name: a topic name may contain only ASCII letters, digits, '.', '_' and '-'."}"#,
    );
    let long = "a".repeat(250);
    let r = app.produce(&long, r#"{"records":[{"value":1}]}"#).await;
    assert_eq!(r.json()["error_code"], 40401);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn partitions_out_of_range_are_404_and_produce_nothing() {
    let (app, cluster) = app().await;
    let topic = cluster.create_topic(2).await;
    let not_found = r#"{"error_code":40402,"message":"Partition not found."}"#;
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/2"),
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    r.assert_exact(404, not_found);
    let r = app
        .produce(
            &topic,
            r#"{"records":[{"value":1,"partition":0},{"value":2,"partition":5}]}"#,
        )
        .await;
    r.assert_exact(404, not_found);
    let r = app
        .produce(&topic, r#"{"records":[{"value":1,"partition":-1}]}"#)
        .await;
    r.assert_exact(404, not_found);
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/-3"),
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    r.assert_exact(404, not_found);
    let r = app
        .post(
            &format!("/topics/{topic}/partitions/one"),
            JSON_V2,
            r#"{"records":[{"value":1}]}"#,
        )
        .await;
    r.assert_exact(404, r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#);
    assert_eq!(cluster.high_watermarks(&topic, 2).await, vec![0, 0]);
    app.stop().await.unwrap();
}

#[actix_web::test]
async fn unknown_routes_and_methods() {
    let (app, _cluster) = app().await;
    let r = app.get("/nope").await;
    r.assert_exact(404, r#"{"error_code":404,"message":"HTTP 404 Not Found"}"#);
    let r = app.request("PUT", "/topics/x", &[], "").await;
    r.assert_exact(
        405,
        r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
    );
    let r = app.request("DELETE", "/topics", &[], "").await;
    r.assert_exact(
        405,
        r#"{"error_code":405,"message":"HTTP 405 Method Not Allowed"}"#,
    );
    assert_eq!(r.header("content-type"), Some(V2));
    app.stop().await.unwrap();
}

/// Kafka's murmur2 (Java `Utils.murmur2`), written from the Java source, independent of
/// librdkafka's.
fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = data.len() as u32;
    let mut h = SEED ^ length;
    let chunks = data.chunks_exact(4);
    let tail = chunks.remainder();
    for chunk in chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    match tail.len() {
        3 => {
            h ^= u32::from(tail[2]) << 16;
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        2 => {
            h ^= u32::from(tail[1]) << 8;
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        1 => {
            h ^= u32::from(tail[0]);
            h = h.wrapping_mul(M);
        }
        _ => {}
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// CRC-32 (reflected, polynomial 0xEDB88320), bit by bit from its definition, independent
/// of librdkafka's table-driven one.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffff_u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The partition librdkafka's `consistent_random` picks for a keyed record.
fn crc32_partition(key: &[u8], partitions: i32) -> i32 {
    i32::try_from(crc32(key) % partitions.unsigned_abs()).unwrap()
}

/// The partition Java's default partitioner picks for a keyed record.
fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}
