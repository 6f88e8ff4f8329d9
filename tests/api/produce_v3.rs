//! API v3 produce against tansu: streams of records answered line by line while the body is
//! still arriving, every error line and whole-request refusal with its exact text, a client
//! that stops reading, SIGTERM during a stream, `records:batch`, and a schema-format record
//! through the registry double; what was written is read back.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use kafka_rest_proxy::config::{Settings, TopicSchema};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::helpers::registry::{Encoded, Registry, SchemaType};
use crate::helpers::{sample, wait_until, Binary, Cluster, Policy, Response, TestApp};

const JSON: &str = "application/json";

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

fn records_path(cluster_id: &str, topic: &str) -> String {
    format!("/v3/clusters/{cluster_id}/topics/{topic}/records")
}

fn batch_path(cluster_id: &str, topic: &str) -> String {
    format!("/v3/clusters/{cluster_id}/topics/{topic}/records:batch")
}

/// A v3 answer: status, `application/json`, the exact body.
#[track_caller]
fn assert_v3(r: &Response, status: u16, body: &str) {
    r.assert_v3(status, body);
}

/// The lines of a stream's whole body, each of which must end in `\r\n`.
#[track_caller]
fn lines(body: &str) -> Vec<&str> {
    assert!(
        body.is_empty() || body.ends_with("\r\n"),
        "a line without its \\r\\n: {body:?}"
    );
    body.split_terminator("\r\n").collect()
}

/// The result line of a record written at `partition`/`offset` with `timestamp`, and the
/// `key`/`value` parts (`None` when the record had none), with Confluent's field order.
fn ok_line(
    cluster_id: &str,
    topic: &str,
    partition: i32,
    offset: i64,
    timestamp: &str,
    key: Option<&str>,
    value: Option<&str>,
) -> String {
    let mut line = format!(
        r#"{{"error_code":200,"cluster_id":"{cluster_id}","topic_name":"{topic}","partition_id":{partition},"offset":{offset},"timestamp":"{timestamp}""#
    );
    for (name, part) in [("key", key), ("value", value)] {
        if let Some(part) = part {
            line.push_str(&format!(r#","{name}":{part}"#));
        }
    }
    line.push('}');
    line
}

/// The `key` or `value` part of a line without a schema.
fn part(data_type: &str, size: usize) -> String {
    format!(r#"{{"type":"{data_type}","size":{size}}}"#)
}

fn error_line(code: u32, message: &str) -> String {
    format!(
        r#"{{"error_code":{code},"message":{}}}"#,
        serde_json::to_string(message).unwrap()
    )
}

struct V3App {
    app: TestApp,
    cluster: Cluster,
    cluster_id: String,
}

async fn v3_app(configure: impl FnOnce(&mut Settings)) -> V3App {
    let cluster = Cluster::plaintext();
    let mut settings = cluster.settings();
    configure(&mut settings);
    let app = TestApp::spawn_ready(settings).await;
    let cluster_id = cluster.cluster_id().await;
    V3App {
        app,
        cluster,
        cluster_id,
    }
}

impl V3App {
    async fn stream(&self, topic: &str, body: &str) -> Response {
        self.app
            .post(&records_path(&self.cluster_id, topic), JSON, body)
            .await
    }

    async fn batch(&self, topic: &str, body: &str) -> Response {
        self.app
            .post(&batch_path(&self.cluster_id, topic), JSON, body)
            .await
    }

    /// A stream on a connection of its own, the body sent in chunks as the test decides.
    async fn open(&self, topic: &str, headers: &str) -> RawStream {
        RawStream::open(
            self.app.address.trim_start_matches("http://"),
            &records_path(&self.cluster_id, topic),
            headers,
            None,
        )
        .await
    }
}

/// A stream on a raw connection: the request body sent as chunks (`Transfer-Encoding:
/// chunked`) when the test says, the response read line by line as it comes.
struct RawStream {
    read: OwnedReadHalf,
    write: Option<OwnedWriteHalf>,
    /// Bytes received and not yet decoded.
    received: Vec<u8>,
    /// Decoded response body not yet returned as lines.
    body: Vec<u8>,
    head: Option<String>,
    ended: bool,
    /// The response ended with its last chunk (not a connection closed mid-response).
    complete: bool,
}

impl RawStream {
    async fn open(
        address: &str,
        path: &str,
        headers: &str,
        receive_buffer: Option<u32>,
    ) -> RawStream {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if let Some(size) = receive_buffer {
            socket.set_recv_buffer_size(size).unwrap();
        }
        let mut stream = socket.connect(address.parse().unwrap()).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
             Transfer-Encoding: chunked\r\n{headers}\r\n"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (read, write) = stream.into_split();
        RawStream {
            read,
            write: Some(write),
            received: Vec::new(),
            body: Vec::new(),
            head: None,
            ended: false,
            complete: false,
        }
    }

    /// Sends `text` as one chunk of the body.
    async fn send(&mut self, text: &str) {
        self.try_send(text).await.unwrap();
    }

    async fn try_send(&mut self, text: &str) -> std::io::Result<()> {
        send_chunk(self.write.as_mut().expect("the writer is here"), text).await
    }

    /// Ends the body.
    async fn finish(&mut self) {
        finish_body(self.write.as_mut().expect("the writer is here")).await;
    }

    /// The sending half, for a writer of its own.
    fn take_writer(&mut self) -> OwnedWriteHalf {
        self.write.take().expect("the writer is here")
    }

    /// The response head, once it has come.
    async fn head(&mut self) -> String {
        while self.head.is_none() {
            assert!(self.read_more().await, "closed before the response head");
        }
        self.head.clone().unwrap()
    }

    /// The next line, waiting for it; `None` once the response has ended.
    async fn line(&mut self) -> Option<String> {
        loop {
            if let Some(at) = self.body.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.body.drain(..at + 2).collect();
                return Some(String::from_utf8(line[..at].to_vec()).unwrap());
            }
            if self.ended {
                assert!(self.body.is_empty(), "a line without its \\r\\n");
                return None;
            }
            if !self.read_more().await {
                self.ended = true;
            }
        }
    }

    async fn lines(&mut self, n: usize) -> Vec<String> {
        let mut lines = Vec::with_capacity(n);
        for _ in 0..n {
            lines.push(self.line().await.expect("the stream ended early"));
        }
        lines
    }

    /// Every line until the response ends.
    async fn rest(&mut self) -> Vec<String> {
        let mut lines = Vec::new();
        while let Some(line) = self.line().await {
            lines.push(line);
        }
        lines
    }

    /// Reads and decodes more of the response; false when the connection has closed or
    /// the last chunk has come.
    async fn read_more(&mut self) -> bool {
        let mut buf = [0u8; 65536];
        let n = tokio::time::timeout(Duration::from_secs(30), self.read.read(&mut buf))
            .await
            .expect("the response stalled")
            .unwrap_or(0);
        if n == 0 {
            return false;
        }
        self.received.extend_from_slice(&buf[..n]);
        if self.head.is_none() {
            let Some(at) = self.received.windows(4).position(|w| w == b"\r\n\r\n") else {
                return true;
            };
            let head: Vec<u8> = self.received.drain(..at + 4).collect();
            self.head = Some(String::from_utf8(head).unwrap());
        }
        // Chunks: `<hex size>\r\n<data>\r\n`, the last of size 0.
        loop {
            let Some(at) = self.received.windows(2).position(|w| w == b"\r\n") else {
                return true;
            };
            let size_text = std::str::from_utf8(&self.received[..at]).unwrap();
            let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
            if size == 0 {
                self.complete = true;
                return false;
            }
            if self.received.len() < at + 2 + size + 2 {
                return true;
            }
            self.body
                .extend_from_slice(&self.received[at + 2..at + 2 + size]);
            self.received.drain(..at + 2 + size + 2);
        }
    }
}

/// Sends `text` as one chunk of a chunked body.
async fn send_chunk(write: &mut OwnedWriteHalf, text: &str) -> std::io::Result<()> {
    let chunk = format!("{:x}\r\n{text}\r\n", text.len());
    write.write_all(chunk.as_bytes()).await
}

/// The last chunk of a chunked body.
async fn finish_body(write: &mut OwnedWriteHalf) {
    write.write_all(b"0\r\n\r\n").await.unwrap();
}

/// A hundred records in one body, with headers (repeated names, null values), timestamps,
/// explicit partitions and every separator (none, whitespace, CRLF): a hundred lines in
/// request order, and a hundred records in Kafka as sent.
#[actix_web::test]
async fn a_hundred_records_give_a_hundred_lines_in_order_and_land_as_sent() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(3).await;
    let separators = ["", "\n", " \r\n\t"];
    let mut body = String::new();
    let mut expected = Vec::new();
    for i in 0..100 {
        let key = format!("k{i}");
        let value = json!({"i": i, "text": "é\"\\"});
        let timestamp = format!("2026-12-01T10:00:00.{i:03}Z");
        let record = json!({
            "partition_id": i % 3,
            "headers": [{"name": "trace", "value": b64(format!("a{i}").as_bytes())},
                        {"name": "trace", "value": b64(b"b")},
                        {"name": "empty", "value": null}],
            "key": {"type": "BINARY", "data": b64(key.as_bytes())},
            "value": {"type": "JSON", "data": value},
            "timestamp": timestamp,
        });
        body.push_str(&record.to_string());
        body.push_str(separators[i % 3]);
        expected.push(ok_line(
            &v3.cluster_id,
            &topic,
            (i % 3) as i32,
            (i / 3) as i64,
            &timestamp,
            Some(&part("BINARY", key.len())),
            Some(&part("JSON", value.to_string().len())),
        ));
    }
    let r = v3.stream(&topic, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("content-type"), Some(JSON));
    assert_eq!(lines(&r.body), expected);

    let consumed = v3.cluster.consume(&topic, 3, 100).await;
    assert_eq!(consumed.len(), 100);
    for c in &consumed {
        let i = usize::try_from(c.offset * 3 + i64::from(c.partition)).unwrap();
        assert_eq!(c.key.as_deref(), Some(format!("k{i}").as_bytes()));
        let value = json!({"i": i, "text": "é\"\\"}).to_string();
        assert_eq!(c.value.as_deref(), Some(value.as_bytes()));
        assert_eq!(c.timestamp_ms, Some(1_796_119_200_000 + i as i64));
        assert_eq!(
            c.headers,
            vec![
                ("trace".to_owned(), Some(format!("a{i}").into_bytes())),
                ("trace".to_owned(), Some(b"b".to_vec())),
                ("empty".to_owned(), None),
            ]
        );
    }
    v3.app.stop().await.unwrap();
}

/// `{}` is a record with a null key and value, and no `key`/`value` in its line; a record
/// without a timestamp gets the time it was sent.
#[actix_web::test]
async fn an_empty_record_is_written_with_null_key_and_value() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let before = std::time::SystemTime::now();
    let r = v3.stream(&topic, "{}").await;
    assert_eq!(r.status, 200, "{r:?}");
    let line: Value = serde_json::from_str(lines(&r.body)[0]).unwrap();
    let timestamp = line["timestamp"].as_str().unwrap().to_owned();
    let sent = humantime::parse_rfc3339(&timestamp).unwrap();
    assert!(sent + Duration::from_millis(1) >= before, "{timestamp}");
    assert_eq!(
        lines(&r.body),
        [ok_line(
            &v3.cluster_id,
            &topic,
            0,
            0,
            &timestamp,
            None,
            None
        )]
    );
    let consumed = v3.cluster.consume(&topic, 1, 1).await;
    assert_eq!(
        (consumed[0].key.clone(), consumed[0].value.clone()),
        (None, None)
    );
    v3.app.stop().await.unwrap();
}

/// Results come back while the body is still being sent: half the records, their lines,
/// then the other half.
#[actix_web::test]
async fn results_arrive_while_the_body_is_still_being_sent() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let record = |i: usize| json!({"value": {"type": "STRING", "data": format!("v{i}")}});
    let mut stream = v3.open(&topic, "").await;
    // Half a record first: nothing to answer yet, but the stream is accepted.
    let first = record(0).to_string();
    let (a, b) = first.split_at(10);
    stream.send(a).await;
    stream.send(b).await;
    let head = stream.head().await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let half: String = (1..5).map(|i| record(i).to_string()).collect();
    stream.send(&half).await;
    let got = stream.lines(5).await;
    for (i, line) in got.iter().enumerate() {
        let line: Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            (line["error_code"].as_i64(), line["offset"].as_i64()),
            (Some(200), Some(i as i64))
        );
    }
    let rest: String = (5..10).map(|i| record(i).to_string()).collect();
    stream.send(&rest).await;
    stream.finish().await;
    let got = stream.rest().await;
    assert_eq!(got.len(), 5, "{got:?}");
    assert_eq!(
        serde_json::from_str::<Value>(&got[4]).unwrap()["offset"],
        json!(9)
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![10]);
    v3.app.stop().await.unwrap();
}

/// Each failed record gets its own line with its exact text, and the stream goes on; a
/// malformed record gets one 400 line and ends the stream.
#[actix_web::test]
async fn every_error_line_and_the_stream_goes_on() {
    let v3 = v3_app(|s| s.limits.max_record_bytes = 100).await;
    let topic = v3.cluster.create_topic(1).await;
    let good = |i: usize| {
        (
            json!({"value": {"type": "JSON", "data": i}}),
            None::<String>,
        )
    };
    let bad = |record: Value, code: u32, message: &str| (record, Some(error_line(code, message)));
    let records = [
        good(0),
        bad(
            json!({"value": {"type": "BINARY", "data": "!!"}}),
            400,
            "Field 'value.data': not valid base64: '!' at offset 0 is not a base64 character.",
        ),
        bad(json!({"partition_id": -1}), 40402, "Partition not found."),
        bad(json!({"partition_id": 7}), 40402, "Partition not found."),
        good(1),
        bad(json!({"foo": 1}), 400, "Unrecognized field: foo"),
        bad(
            json!({"key": {"type": "BINARY", "schema_id": 1}}),
            400,
            "Field 'key': 'type=BINARY' cannot be used with 'schema_id'.",
        ),
        bad(
            json!({"value": {"schema_id": 1, "schema": "\"int\""}}),
            400,
            "Field 'value': Only one of 'schema_id', 'schema_version' or 'schema' can be used.",
        ),
        bad(
            json!({"value": {"type": "AVRO", "schema": "\"string\"", "data": "x"}}),
            42206,
            "Payload error. Schema Registry must be configured when using schemas.",
        ),
        bad(
            json!({"value": {"data": "x"}}),
            42206,
            "Payload error. Schema Registry must be configured when using schemas.",
        ),
        bad(
            json!([1]),
            400,
            "A record must be a JSON object, found an array.",
        ),
        bad(
            json!({"value": {"type": "STRING", "data": 1}}),
            400,
            "Field 'value.data' must be a string, found a number.",
        ),
        bad(
            json!({"value": {"type": "STRING", "data": "x".repeat(101)}}),
            422,
            "Record 12 is 101 bytes (key + value), the limit is 100 bytes.",
        ),
        bad(
            json!({"key": {"type": "json", "data": 1}}),
            400,
            "Field 'key.type' must be one of BINARY, JSON, STRING, AVRO, JSONSCHEMA, PROTOBUF, \
             found \"json\".",
        ),
        good(2),
    ];
    let mut body: String = records.iter().map(|(r, _)| r.to_string()).collect();
    // Malformed: one line, the end; what follows is neither answered nor written.
    body.push_str(r#"{"value":}{"value":{"type":"JSON","data":3}}"#);
    let r = v3.stream(&topic, &body).await;
    assert_eq!(r.status, 200, "{r:?}");
    let got = lines(&r.body);
    let mut offset = 0;
    for (i, (_, expected)) in records.iter().enumerate() {
        match expected {
            Some(line) => assert_eq!(got[i], line, "record {i}"),
            None => {
                let line: Value = serde_json::from_str(got[i]).unwrap();
                assert_eq!(
                    (line["error_code"].as_i64(), line["offset"].as_i64()),
                    (Some(200), Some(offset)),
                    "record {i}: {line}"
                );
                offset += 1;
            }
        }
    }
    assert_eq!(
        got[records.len()..],
        [error_line(
            400,
            "Malformed JSON: expected value at line 1 column 10"
        )]
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![3]);
    v3.app.stop().await.unwrap();
}

/// The topic's JSON Schema checks each JSON record on its own: one that does not match gets
/// a 42203 line listing its violations (numbered by its place in the stream) and the others
/// are written; BINARY records are refused there (422), as in v2.
#[actix_web::test]
async fn records_that_do_not_match_the_topics_json_schema_get_42203_lines() {
    let topic = Cluster::plaintext().create_topic(1).await;
    let dir = tempfile::tempdir().unwrap();
    let schema = dir.path().join("value.json");
    std::fs::write(&schema, r#"{"type":"integer"}"#).unwrap();
    let v3 = v3_app(|s| {
        s.validation.schemas = vec![TopicSchema {
            topics: vec![topic.as_str().into()],
            value_schema: Some(schema),
            key_schema: None,
            allow_binary: false,
        }];
    })
    .await;
    let body: String = [
        json!({"value": {"type": "JSON", "data": 1}}),
        json!({"value": {"type": "JSON", "data": "x"}}),
        json!({"value": {"type": "BINARY", "data": "Zm9v"}}),
        json!({"value": {"type": "JSON", "data": 2}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    let r = v3.stream(&topic, &body).await;
    let got = lines(&r.body);
    assert_eq!(
        got[1..3],
        [
            format!(
                r#"{{"error_code":42203,"message":"1 of 1 records do not match the JSON Schema of topic '{topic}' (1 violations).","violations":[{{"record":1,"field":"value","pointer":"","keyword":"type","message":"\"x\" is not of type \"integer\""}}],"violations_omitted":0}}"#
            ),
            error_line(
                422,
                &format!(
                    "Topic '{topic}' validates its records against a JSON Schema, and \
                     binary-format records cannot be validated: send them in the json format."
                )
            ),
        ]
    );
    assert!(got[3].starts_with(r#"{"error_code":200,"#), "{}", got[3]);
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![2]);
    v3.app.stop().await.unwrap();
}

/// A record larger than `server.max_body_bytes` gets one 413 line and ends the stream.
#[actix_web::test]
async fn a_record_over_the_size_limit_ends_the_stream_with_413() {
    let v3 = v3_app(|s| {
        s.server.max_body_bytes = 1_000;
        s.limits.max_in_flight_bytes_per_principal = 1_000;
        s.limits.max_in_flight_bytes = 1_000_000;
    })
    .await;
    let topic = v3.cluster.create_topic(1).await;
    let small = json!({"value": {"type": "STRING", "data": "ok"}}).to_string();
    let large = json!({"value": {"type": "STRING", "data": "x".repeat(2_000)}}).to_string();
    let r = v3.stream(&topic, &format!("{small}{large}{small}")).await;
    let got = lines(&r.body);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        got[1],
        error_line(413, "A record is larger than the limit of 1000 bytes.")
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![1]);
    v3.app.stop().await.unwrap();
}

/// A partner over its record rate gets a 429 line per record, with the limit.
#[actix_web::test]
async fn records_over_the_rate_limit_get_429_lines() {
    let v3 = v3_app(|s| {
        s.limits.rate.default.records_per_second = 1;
        s.limits.rate.default.records_burst = Some(2);
    })
    .await;
    let topic = v3.cluster.create_topic(1).await;
    let body: String = (0..4)
        .map(|i| json!({"value": {"type": "JSON", "data": i}}).to_string())
        .collect();
    let r = v3.stream(&topic, &body).await;
    let got = lines(&r.body);
    let codes: Vec<i64> = got
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["error_code"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(codes, [200, 200, 429, 429], "{got:?}");
    assert_eq!(
        got[2],
        error_line(429, "Rate limit exceeded: 1 records/s (for principal).")
    );
    v3.app.stop().await.unwrap();
}

/// What is refused before the stream starts, as whole v3 errors in `application/json`.
#[actix_web::test]
async fn refusals_before_the_stream_starts() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let path = records_path(&v3.cluster_id, &topic);
    let record = r#"{"value":{"type":"JSON","data":1}}"#;

    let r = v3
        .app
        .post(&records_path("no-such-cluster", &topic), JSON, record)
        .await;
    assert_v3(
        &r,
        404,
        r#"{"error_code":404,"message":"Cluster no-such-cluster cannot be found."}"#,
    );
    let r = v3
        .app
        .post(&batch_path("no-such-cluster", &topic), JSON, record)
        .await;
    assert_v3(
        &r,
        404,
        r#"{"error_code":404,"message":"Cluster no-such-cluster cannot be found."}"#,
    );
    let r = v3.stream("no-such-topic-v3", record).await;
    assert_v3(
        &r,
        404,
        r#"{"error_code":40401,"message":"Topic not found."}"#,
    );
    let r = v3.app.post(&path, "text/plain", record).await;
    assert_v3(
        &r,
        415,
        r#"{"error_code":415,"message":"HTTP 415 Unsupported Media Type"}"#,
    );
    let r = v3
        .app
        .post(&path, "application/json; charset=ISO-8859-1", record)
        .await;
    assert_v3(
        &r,
        400,
        r#"{"error_code":400,"message":"Unsupported charset 'iso-8859-1': the request body must be UTF-8."}"#,
    );
    let r = v3
        .app
        .request(
            "POST",
            &path,
            &[("content-type", JSON), ("accept", "text/html")],
            record,
        )
        .await;
    assert_v3(
        &r,
        406,
        r#"{"error_code":406,"message":"HTTP 406 Not Acceptable"}"#,
    );
    for empty in ["", " \r\n "] {
        let r = v3.stream(&topic, empty).await;
        assert_v3(
            &r,
            422,
            r#"{"error_code":42206,"message":"Payload error. Request body is empty. Data is required."}"#,
        );
    }
    let r = v3.app.get(&path).await;
    assert_eq!(r.status, 405, "{r:?}");
    // UTF-8 named in any case is fine.
    let r = v3
        .app
        .post(&path, "application/json; charset=UTF-8", record)
        .await;
    assert_eq!((r.status.as_u16(), lines(&r.body).len()), (200, 1), "{r:?}");
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![1]);
    v3.app.stop().await.unwrap();
}

/// A caller without the produce grant is refused before the stream starts, as in v2.
#[actix_web::test]
async fn a_caller_without_the_grant_is_refused_before_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let topic_cluster = Cluster::plaintext();
    let topic = topic_cluster.create_topic(1).await;
    let v3 = v3_app(|s| {
        Policy::default()
            .api_key("partner-a", "key-a")
            .grant(&["api_key:partner-a"], &["other-topic"], &["produce"])
            .apply(s, dir.path());
    })
    .await;
    let r = v3
        .app
        .request(
            "POST",
            &records_path(&v3.cluster_id, &topic),
            &[("content-type", JSON), ("x-api-key", "key-a")],
            "{}",
        )
        .await;
    assert_v3(
        &r,
        403,
        &format!(
            r#"{{"error_code":40301,"message":"Not authorized to produce to topic '{topic}'."}}"#
        ),
    );
    let r = v3.stream(&topic, "{}").await;
    assert_v3(
        &r,
        401,
        r#"{"error_code":40101,"message":"Authentication required: send a bearer token or an API key."}"#,
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![0]);
    v3.app.stop().await.unwrap();
}

/// A client that sends records and reads no result: the stream holds at most
/// `streaming.max_in_flight_records` records, stops reading, and TCP stops the client; once
/// the client reads, every record is answered.
#[actix_web::test]
async fn a_client_that_stops_reading_is_stopped_and_memory_stays_bounded() {
    let v3 = v3_app(|s| s.streaming.max_in_flight_records = 8).await;
    let topic = v3.cluster.create_topic(1).await;
    let mut stream = RawStream::open(
        v3.app.address.trim_start_matches("http://"),
        &records_path(&v3.cluster_id, &topic),
        "",
        Some(4096),
    )
    .await;
    // Records whose lines are as large as themselves (an unknown 60 KB field name, quoted
    // back), so that the response's buffers fill after a few dozen records; every eighth
    // record is written to Kafka.
    let record = |i: usize| {
        if i % 8 == 0 {
            json!({"value": {"type": "JSON", "data": i}}).to_string()
        } else {
            format!(r#"{{"{}":{i}}}"#, "f".repeat(60_000))
        }
    };
    // A writer of its own sends records until told to stop, counting those fully sent.
    let sent = Rc::new(Cell::new(0_usize));
    let stop = Rc::new(Cell::new(false));
    let mut write = stream.take_writer();
    let writer = actix_web::rt::spawn({
        let (sent, stop) = (Rc::clone(&sent), Rc::clone(&stop));
        async move {
            while !stop.get() {
                send_chunk(&mut write, &record(sent.get())).await.unwrap();
                sent.set(sent.get() + 1);
            }
            finish_body(&mut write).await;
        }
    });
    // The client is stopped once nothing more goes through for a while, within a few MiB.
    let mut last = (0, std::time::Instant::now());
    wait_until(Duration::from_secs(60), async || {
        let m = v3.app.metrics().await;
        let in_flight = sample(&m, "kafka_rest_stream_records_in_flight");
        assert!(in_flight <= 8.0, "{in_flight} records in flight");
        let now = sent.get();
        assert!(
            now < 2_000,
            "{now} records (120 MB) sent and the proxy still reads"
        );
        if now != last.0 {
            last = (now, std::time::Instant::now());
        }
        if now > 0 && last.1.elapsed() > Duration::from_secs(2) {
            Ok(())
        } else {
            Err(format!(
                "{now} records sent, and the client is not stopped yet"
            ))
        }
    })
    .await;
    let m = v3.app.metrics().await;
    assert_eq!(sample(&m, "kafka_rest_streams_open"), 1.0, "{m}");
    assert!(
        sample(&m, "kafka_rest_stream_records_in_flight") <= 8.0,
        "{m}"
    );
    // Reading again lets the stream go on: every record sent is answered, in order.
    stop.set(true);
    let got = stream.rest().await;
    writer.await.unwrap();
    let sent = sent.get();
    // Failed once in ~20 runs under load (2026-12-02, values not kept): the last lines say
    // whether the stream ended early or answered a record more.
    assert_eq!(
        got.len(),
        sent,
        "lines for {sent} records sent; the last lines: {:?}",
        got.iter()
            .rev()
            .take(3)
            .map(|l| l.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
    );
    for (i, line) in got.iter().enumerate() {
        let code = serde_json::from_str::<Value>(line).unwrap()["error_code"].clone();
        assert_eq!(code, json!(if i % 8 == 0 { 200 } else { 400 }), "line {i}");
    }
    assert_eq!(
        v3.cluster.high_watermarks(&topic, 1).await,
        vec![i64::try_from(sent.div_ceil(8)).unwrap()]
    );
    wait_until(Duration::from_secs(10), async || {
        let m = v3.app.metrics().await;
        match sample(&m, "kafka_rest_streams_open") {
            0.0 => Ok(()),
            n => Err(format!("{n} streams still open")),
        }
    })
    .await;
    v3.app.stop().await.unwrap();
}

/// After `streaming.max_duration_ms` records get 408 lines, and the stream ends after the
/// grace period though the client sends on.
#[actix_web::test]
async fn a_stream_past_its_maximum_duration_gets_408_and_ends() {
    let v3 = v3_app(|s| {
        s.streaming.max_duration_ms = 500;
        s.streaming.max_duration_grace_ms = 1_000;
    })
    .await;
    let topic = v3.cluster.create_topic(1).await;
    let mut stream = v3.open(&topic, "").await;
    let record = json!({"value": {"type": "JSON", "data": 1}}).to_string();
    let expired = error_line(
        408,
        "Streaming connection open for longer than allowed: Connection will be closed.",
    );
    let mut answered = 0;
    let opened = std::time::Instant::now();
    loop {
        assert!(
            opened.elapsed() < Duration::from_secs(10),
            "no 408 line after {answered} records"
        );
        stream.send(&record).await;
        match stream.line().await {
            Some(line) if line == expired => break,
            Some(line) => {
                assert!(line.starts_with(r#"{"error_code":200,"#), "{line}");
                answered += 1;
            }
            None => panic!("the stream ended without a 408 line"),
        }
    }
    assert!(answered >= 1);
    // The client sends on and does not end the body: the service ends the stream.
    let _ = stream.try_send(&record).await;
    let rest = stream.rest().await;
    assert!(rest.iter().all(|l| *l == expired), "{rest:?}");
    assert_eq!(
        v3.cluster.high_watermarks(&topic, 1).await,
        vec![i64::from(answered)]
    );
    v3.app.stop().await.unwrap();
}

/// SIGTERM during an open stream: the stream stops reading, writes the result of every
/// record it read, ends, and the process exits 0; every record answered 200 is in Kafka.
#[actix_web::test]
async fn sigterm_during_an_open_stream_answers_what_was_read_and_ends() {
    let cluster = Cluster::plaintext();
    let topic = cluster.create_topic(1).await;
    let cluster_id = cluster.cluster_id().await;
    let binary = Binary::start(&[
        ("KRP_KAFKA__BOOTSTRAP_SERVERS", &cluster.bootstrap),
        ("KRP_SERVER__SHUTDOWN_TIMEOUT_MS", "10000"),
        ("KRP_LOG__LEVEL", "warn"),
    ]);
    binary.wait_ready().await;
    let mut stream = RawStream::open(
        binary.base.trim_start_matches("http://"),
        &records_path(&cluster_id, &topic),
        "",
        None,
    )
    .await;
    let records = |from: usize, n: usize| -> String {
        (from..from + n)
            .map(|i| json!({"value": {"type": "STRING", "data": format!("r{i}")}}).to_string())
            .collect()
    };
    stream.send(&records(0, 20)).await;
    let mut got = stream.lines(20).await;
    let signalled = std::time::Instant::now();
    let stopping = actix_web::rt::spawn(binary.terminate());
    // The client goes on sending; whatever the service read before it stopped is answered.
    let _ = stream.try_send(&records(20, 20)).await;
    got.extend(stream.rest().await);
    // The stream ended by itself, whole, long before the shutdown deadline forced it.
    assert!(stream.complete, "the connection was cut: {got:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "the stream ended {:?} after SIGTERM",
        signalled.elapsed()
    );
    let (exit, _, stderr) = stopping.await.unwrap();
    assert!(exit.success(), "exit {exit:?}: {stderr}");
    let acknowledged: Vec<i64> = got
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["error_code"] == 200)
        .map(|l| l["offset"].as_i64().unwrap())
        .collect();
    assert!(acknowledged.len() >= 20, "{got:?}");
    assert!(got.len() <= 40);
    let consumed = cluster.consume(&topic, 1, acknowledged.len()).await;
    for offset in &acknowledged {
        let record = consumed
            .iter()
            .find(|c| c.offset == *offset)
            .unwrap_or_else(|| panic!("acknowledged offset {offset} is missing"));
        assert_eq!(
            record.value.as_deref(),
            Some(format!("r{offset}").as_bytes())
        );
    }
}

/// A stream whose first record has not come when draining begins is refused at once as a
/// new request would be, rather than held until its read timeout.
#[actix_web::test]
async fn a_stream_without_a_record_yet_is_refused_when_draining_begins() {
    let mut v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let mut stream = v3.open(&topic, "").await;
    v3.app.wait_for_in_flight(1).await;
    let stopping = v3.app.begin_stop();
    let draining = std::time::Instant::now();
    let head = stream.head().await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        draining.elapsed() < Duration::from_secs(10),
        "refused only after {:?}",
        draining.elapsed()
    );
    stopping.await.unwrap().unwrap();
}

/// An Avro value by schema id, a key by its text, and a value by the subject's latest
/// version: the lines name subject, id and version, and Confluent's deserializer reads
/// what was written.
#[actix_web::test]
async fn schema_records_by_id_text_and_latest_are_read_back_by_confluents_deserializer() {
    let registry = Registry::start();
    let v3 = v3_app(|s| {
        s.schema_registry.urls = vec![registry.url().to_owned()];
    })
    .await;
    let topic = v3.cluster.create_topic(1).await;
    let schema = r#"{"type":"record","name":"Order","namespace":"com.example","fields":[{"name":"id","type":"long"}]}"#;
    let id = registry.register(&format!("{topic}-value"), SchemaType::Avro, schema);
    let body = [
        json!({"value": {"schema_id": id, "data": {"id": 1}}}),
        json!({"key": {"type": "AVRO", "schema": "\"string\"", "data": "k"},
               "value": {"data": {"id": 2}}}),
        json!({"value": {"schema_id": id, "data": {"id": "x"}}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<String>();
    let r = v3.stream(&topic, &body).await;
    let got = lines(&r.body);
    let line = |i: usize| serde_json::from_str::<Value>(got[i]).unwrap();
    let value_part = json!({"type": "AVRO", "subject": format!("{topic}-value"),
        "schema_id": id, "schema_version": 1, "size": 6});
    assert_eq!(line(0)["value"], value_part, "{}", got[0]);
    assert_eq!(line(1)["value"], value_part, "{}", got[1]);
    let key_id = line(1)["key"]["schema_id"].as_i64().unwrap();
    assert_eq!(
        line(1)["key"],
        json!({"type": "AVRO", "subject": format!("{topic}-key"), "schema_id": key_id,
            "schema_version": 1, "size": 7})
    );
    assert_eq!(
        got[2],
        error_line(400, "value.data.id: expected long, got string")
    );
    let consumed = v3.cluster.consume(&topic, 1, 2).await;
    let decoded = registry
        .decode(&[
            Encoded::value(SchemaType::Avro, &topic, consumed[0].value.clone().unwrap()),
            Encoded::key(SchemaType::Avro, &topic, consumed[1].key.clone().unwrap()),
            Encoded::value(SchemaType::Avro, &topic, consumed[1].value.clone().unwrap()),
        ])
        .await;
    assert_eq!(decoded, [json!({"id": 1}), json!("k"), json!({"id": 2})]);
    v3.app.stop().await.unwrap();
}

/// v3's schema selectors as Confluent's SchemaManagerImpl resolves them: by version or id
/// under the TOPIC_NAME subject, a named subject, the RECORD_NAME and TOPIC_RECORD_NAME
/// strategies (an Avro record's full name, a JSON Schema's title, a Protobuf message's);
/// a strategy with nothing to name, a missing version and a missing subject are errors.
#[actix_web::test]
async fn schema_selectors_follow_confluents_rules() {
    let registry = Registry::start();
    let v3 = v3_app(|s| {
        s.schema_registry.urls = vec![registry.url().to_owned()];
    })
    .await;
    let topic = v3.cluster.create_topic(1).await;
    let order = r#"{"type":"record","name":"Order","namespace":"com.example","fields":[{"name":"id","type":"long"}]}"#;
    let id = registry.register(&format!("{topic}-value"), SchemaType::Avro, order);
    registry.register("com.example.Order", SchemaType::Avro, order);
    let thing = r#"{"type":"object","title":"Thing","properties":{"a":{"type":"integer"}}}"#;
    let message = r#"syntax = "proto3"; package acme; message K { string id = 1; }"#;
    let body = [
        json!({"value": {"schema_version": 1, "data": {"id": 1}}}),
        json!({"value": {"subject": "com.example.Order", "schema_version": 1, "data": {"id": 2}}}),
        json!({"value": {"subject_name_strategy": "RECORD_NAME", "schema_id": id, "data": {"id": 3}}}),
        json!({"value": {"subject_name_strategy": "TOPIC_RECORD_NAME", "type": "AVRO",
                         "schema": order, "data": {"id": 4}}}),
        json!({"value": {"type": "JSONSCHEMA", "schema": thing,
                         "subject_name_strategy": "RECORD_NAME", "data": {"a": 5}},
               "key": {"type": "PROTOBUF", "schema": message,
                       "subject_name_strategy": "TOPIC_RECORD_NAME", "data": {"id": "x"}}}),
        json!({"value": {"subject_name_strategy": "RECORD_NAME", "data": {"id": 6}}}),
        json!({"value": {"schema_version": 7, "data": {"id": 7}}}),
        json!({"value": {"subject": "nope", "data": {"id": 8}}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<String>();
    let r = v3.stream(&topic, &body).await;
    let got = lines(&r.body);
    assert_eq!(got.len(), 8, "{got:?}");
    let line = |i: usize| serde_json::from_str::<Value>(got[i]).unwrap();
    let avro = |subject: &str, version: i64| {
        json!({"type": "AVRO", "subject": subject, "schema_id": id, "schema_version": version,
            "size": 6})
    };
    assert_eq!(
        line(0)["value"],
        avro(&format!("{topic}-value"), 1),
        "{}",
        got[0]
    );
    assert_eq!(line(1)["value"], avro("com.example.Order", 1), "{}", got[1]);
    assert_eq!(line(2)["value"], avro("com.example.Order", 1), "{}", got[2]);
    assert_eq!(
        line(3)["value"],
        avro(&format!("{topic}-com.example.Order"), 1),
        "{}",
        got[3]
    );
    assert_eq!(line(4)["value"]["subject"], "Thing", "{}", got[4]);
    assert_eq!(line(4)["value"]["type"], "JSONSCHEMA", "{}", got[4]);
    assert_eq!(
        line(4)["key"]["subject"],
        format!("{topic}-acme.K"),
        "{}",
        got[4]
    );
    assert_eq!(line(4)["key"]["type"], "PROTOBUF", "{}", got[4]);
    assert_eq!(
        got[5..],
        [
            error_line(
                400,
                "Cannot use schema_subject_strategy=RECORD_NAME without schema_id or schema."
            ),
            error_line(
                400,
                &format!("Schema does not exist for subject: {topic}-value, version: 7")
            ),
            error_line(
                42207,
                "Error serializing message. Error when fetching latest schema version. \
                 subject = nope\nSubject 'nope' not found.; error code: 40401"
            ),
        ]
    );
    let consumed = v3.cluster.consume(&topic, 1, 5).await;
    let decoded = registry
        .decode(&[
            Encoded::value(SchemaType::Avro, &topic, consumed[3].value.clone().unwrap()),
            Encoded::value(SchemaType::Json, &topic, consumed[4].value.clone().unwrap()),
            Encoded::key(
                SchemaType::Protobuf,
                &topic,
                consumed[4].key.clone().unwrap(),
            ),
        ])
        .await;
    assert_eq!(
        decoded,
        [json!({"id": 4}), json!({"a": 5}), json!({"id": "x"})]
    );
    v3.app.stop().await.unwrap();
}

/// records:batch: 207 with the successes and failures in entry order, exact bodies.
#[actix_web::test]
async fn a_batch_answers_207_with_successes_and_failures() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let body = json!({"entries": [
        {"id": "a", "value": {"type": "JSON", "data": {"n": 1}}, "timestamp": "2026-12-01T10:00:00Z"},
        {"id": "b", "value": {"type": "BINARY", "data": "!!"}},
        {"id": "c-_9", "partition_id": 5, "value": {"type": "JSON", "data": 2}},
        {"id": "d", "key": {"type": "STRING", "data": "k"}, "timestamp": "2026-12-01T10:00:01.5Z"},
        {"id": "e", "bogus": 1},
    ]});
    let r = v3.batch(&topic, &body.to_string()).await;
    let c = &v3.cluster_id;
    assert_v3(
        &r,
        207,
        &format!(
            r#"{{"successes":[{{"id":"a","cluster_id":"{c}","topic_name":"{topic}","partition_id":0,"offset":0,"timestamp":"2026-12-01T10:00:00.000Z","value":{{"type":"JSON","size":7}}}},{{"id":"d","cluster_id":"{c}","topic_name":"{topic}","partition_id":0,"offset":1,"timestamp":"2026-12-01T10:00:01.500Z","key":{{"type":"STRING","size":1}}}}],"failures":[{{"id":"b","error_code":400,"message":"Field 'value.data': not valid base64: '!' at offset 0 is not a base64 character."}},{{"id":"c-_9","error_code":40402,"message":"Partition not found."}},{{"id":"e","error_code":400,"message":"Unrecognized field: bogus"}}]}}"#
        ),
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![2]);

    // Nothing written: the status of the first failure (ours), the same body shape.
    let body = json!({"entries": [
        {"id": "x", "partition_id": 9},
        {"id": "y", "value": {"type": "BINARY", "data": 1}},
    ]});
    let r = v3.batch(&topic, &body.to_string()).await;
    assert_v3(
        &r,
        404,
        r#"{"successes":[],"failures":[{"id":"x","error_code":40402,"message":"Partition not found."},{"id":"y","error_code":400,"message":"Field 'value.data': expected a base64 string, found a number."}]}"#,
    );
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![2]);
    v3.app.stop().await.unwrap();
}

/// Every bad batch shape: 422/42208 with Confluent's messages, 422 for what is not a
/// batch; nothing written.
#[actix_web::test]
async fn bad_batches_are_42208_in_confluents_words() {
    let v3 = v3_app(|_| {}).await;
    let topic = v3.cluster.create_topic(1).await;
    let entries = |ids: &[Value]| {
        json!({"entries": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()}).to_string()
    };
    let eleven: Vec<Value> = (0..11).map(|i| json!(format!("e{i}"))).collect();
    let cases = [
        (String::new(), "Request body is empty. Data is required."),
        ("{}".to_owned(), "Empty batch."),
        (r#"{"entries":[]}"#.to_owned(), "Empty batch."),
        (entries(&eleven), "Too many entries in batch."),
        (
            entries(&[json!("a"), json!("b"), json!("a")]),
            "Batch entry IDs are not distinct.",
        ),
        (
            entries(&[json!(1)]),
            "Batch entry identifier is not a valid string.",
        ),
        (
            entries(&[json!(null)]),
            "Batch entry identifier is not a valid string.",
        ),
        (
            entries(&[json!("")]),
            "Batch entry identifier is not a valid string.",
        ),
        (
            entries(&[json!("x".repeat(81))]),
            "Batch entry identifier is not a valid string.",
        ),
        (
            entries(&[json!("not/valid")]),
            "Batch entry identifier is not a valid string.",
        ),
    ];
    for (body, message) in cases {
        let r = v3.batch(&topic, &body).await;
        assert_v3(&r, 422, &error_line(42208, message));
    }
    let r = v3.batch(&topic, r#"{"records":[]}"#).await;
    assert_v3(
        &r,
        422,
        r#"{"error_code":422,"message":"Unrecognized field: records"}"#,
    );
    let r = v3.batch(&topic, r#"{"entries":"#).await;
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(v3.cluster.high_watermarks(&topic, 1).await, vec![0]);
    v3.app.stop().await.unwrap();
}
