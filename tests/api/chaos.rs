//! The short chaos run: `scripts/chaos.sh` for about a minute against the binary this test
//! build made. The service gets SIGTERM and restarts, the broker is SIGKILLed and restarted
//! on its storage, and paused past the delivery timeout, all under load; then the topic is
//! read back and no acknowledged record may be missing. The long run is the same script on
//! demand (`scripts/chaos.sh`, 10 minutes). Below it, what the chaos run found, made
//! deterministic with the mock cluster.

use std::process::Command;

use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use serde_json::Value;

use crate::helpers::{mock_cluster, TestApp, JSON_V2};

/// The faults the script cycles through; each must have happened at least once.
const FAULTS: [&str; 3] = ["proxy_sigterm", "broker_sigkill", "broker_sigstop"];

#[test]
fn a_short_chaos_run_loses_no_acknowledged_record() {
    std::env::var("IT_TANSU")
        .expect("IT_TANSU is not set: run the integration tests through scripts/test.sh");
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/chaos.sh"))
        .env("CHAOS_SECONDS", "50")
        .env("CHAOS_PROXY_BIN", env!("CARGO_BIN_EXE_kafka-rest-proxy"))
        .env("CHAOS_DIR", dir.path())
        .output()
        .expect("scripts/chaos.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // The report, for `--nocapture`.
    println!("{stdout}");
    let context = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    let report: Value = stdout
        .lines()
        .rev()
        .find(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).expect("the report line is JSON"))
        .unwrap_or_else(|| panic!("no report line; {context}"));
    // Kept for a look when an assertion fails (the directory is otherwise removed).
    let dir = dir.keep();
    let context = format!("{context}\nlogs in {}", dir.display());

    assert_eq!(report["missing"], 0, "acknowledged but missing; {context}");
    assert_eq!(
        report["misplaced"], 0,
        "not where the answer said; {context}"
    );
    assert_eq!(report["proxy_crashes"], 0, "{context}");
    assert_eq!(report["proxy_unclean_exits"], 0, "{context}");
    assert!(
        output.status.success(),
        "exit {:?}; {context}",
        output.status
    );

    // Not vacuous: plenty was acknowledged, every fault happened, the service acknowledged
    // records again after each, and the pause outlasted the delivery timeout (requests
    // during it were answered 500).
    let acknowledged = report["acknowledged"].as_u64().unwrap();
    assert!(
        acknowledged >= 2_000,
        "{acknowledged} acknowledged; {context}"
    );
    for fault in FAULTS {
        let done = report["cycles_done"][fault].as_u64().unwrap_or(0);
        assert!(done >= 1, "no {fault} cycle; {context}");
    }
    for cycle in report["cycles"].as_array().unwrap() {
        if FAULTS.contains(&cycle["kind"].as_str().unwrap()) {
            assert!(
                cycle["first_ack_after_s"].is_number(),
                "nothing acknowledged after {cycle}; {context}"
            );
        }
        if cycle["kind"] == "broker_sigstop" {
            let failed = cycle["answers_until_next_cycle"]["500"]
                .as_u64()
                .unwrap_or(0);
            assert!(
                failed > 0,
                "the pause timed nothing out: {cycle}; {context}"
            );
        }
    }
    std::fs::remove_dir_all(dir).unwrap();
}

/// What the chaos run found after a broker was SIGKILLed with a batch written but not yet
/// answered: the producer's retry gets DUPLICATE_SEQUENCE_NUMBER, which librdkafka takes as
/// delivered with the offset unknown (-1), and then numbers the batch's other records from
/// there (-1, 0, 1...: `rd_kafka_msgq_set_metadata` increments the unknown base offset). The
/// answer must say the offset is unknown for every record of the batch, as Java's producer
/// (and so Confluent's proxy) does, and never name offsets that hold other records.
#[actix_web::test]
async fn a_batch_found_already_written_on_retry_gets_no_invented_offsets() {
    let (mock, settings) = mock_cluster(1, "dupseq", 1);
    let app = TestApp::spawn_ready(settings).await;
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER],
    );
    let r = app
        .post(
            "/topics/dupseq",
            JSON_V2,
            r#"{"records":[{"value":1},{"value":2},{"value":3}]}"#,
        )
        .await;
    r.assert_exact(
        200,
        concat!(
            r#"{"offsets":[{"partition":0,"offset":-1,"error_code":null,"error":null},"#,
            r#"{"partition":0,"offset":-1,"error_code":null,"error":null},"#,
            r#"{"partition":0,"offset":-1,"error_code":null,"error":null}],"#,
            r#""key_schema_id":null,"value_schema_id":null}"#
        ),
    );
    app.stop().await.unwrap();
}
