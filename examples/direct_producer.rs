//! Benchmark baseline: the records the proxy's benchmark sends, produced straight into the
//! broker by a librdkafka `FutureProducer` with exactly the service's producer settings
//! (`producer_config` over the service's `KafkaSettings`), with no HTTP in between. Its
//! records/s is the ceiling the proxy's records/s is compared with (see BENCHMARKS.md).
//! `KRP_KAFKA__*` variables override the settings as they do for the service.
//!
//! `--in-flight C` tasks each play one HTTP connection: enqueue `--batch B` records (one
//! "request"), await all B delivery reports, start the next. Latency is measured per
//! batch, from the first enqueue to the last delivery report (for `--batch 1`, the delivery
//! latency of one record). `--rate R` paces the batches at R per second over all tasks (each
//! task on its own fixed schedule, as the wrk script's paced mode: a batch late for its slot
//! is sent at once, and its latency is measured from when it was sent). After `--seconds` of load it prints one JSON line and exits 1 if
//! any record failed.
//!
//! ```sh
//! cargo run --release --example direct_producer -- \
//!     --bootstrap 127.0.0.1:9092 --topic bench --seconds 10 --in-flight 16 --batch 1
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use futures_util::future::join_all;
use kafka_rest_proxy::config::{CommandLine, KafkaSettings, Settings};
use kafka_rest_proxy::kafka::client_config::producer_config;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

/// The value the wrk scripts send by default (scripts/bench/produce.lua), compact JSON.
const DEFAULT_VALUE: &str = r#"{"id":1234567,"name":"benchmark-record-abcdefghijklmnopqrstuvwxyz-0123456789-ABCDEF","amount":12.34}"#;

#[derive(Parser, Debug)]
#[command(about = "Produce directly with the service's producer settings (benchmark baseline)")]
struct Args {
    /// Kafka bootstrap servers.
    #[arg(long)]
    bootstrap: String,
    /// Topic to produce to (must exist).
    #[arg(long)]
    topic: String,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Batches ("requests") in flight at once, like HTTP connections.
    #[arg(long, default_value_t = 16)]
    in_flight: usize,
    /// Records per batch: enqueued together, then awaited together.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Record value bytes (the key is null).
    #[arg(long, default_value = DEFAULT_VALUE)]
    value: String,
    /// Seconds of unmeasured warm-up load (connections, producer id, metadata).
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// A label copied into the output line.
    #[arg(long, default_value = "direct_producer")]
    label: String,
    /// Batches per second over all tasks (paced); as fast as possible when unset.
    #[arg(long)]
    rate: Option<f64>,
}

#[derive(Default)]
struct TaskStats {
    latencies_us: Vec<u64>,
    batches: u64,
    records: u64,
    errors: u64,
    first_error: Option<String>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Enqueues one record, waiting for room while librdkafka's local queue is full (as the
/// service does), and returns its delivery future or the enqueue error.
async fn enqueue(
    producer: &FutureProducer,
    topic: &str,
    value: &[u8],
) -> Result<rdkafka::producer::DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic)
        .payload(value)
        .timestamp(now_ms());
    loop {
        match producer.send_result(record) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// One "connection": batches back to back until `until`, or one per `pace` (the first
/// after `pace.1`, so that the tasks' schedules are spread over the interval).
async fn run_task(
    producer: FutureProducer,
    topic: String,
    value: Vec<u8>,
    batch: usize,
    until: Instant,
    pace: Option<(Duration, Duration)>,
) -> TaskStats {
    let mut stats = TaskStats::default();
    let mut next = pace.map(|(_, offset)| Instant::now() + offset);
    while Instant::now() < until {
        if let (Some(at), Some((interval, _))) = (next.as_mut(), pace) {
            tokio::time::sleep_until(tokio::time::Instant::from_std(*at)).await;
            *at += interval;
            if Instant::now() >= until {
                break;
            }
        }
        let started = Instant::now();
        let mut pending = Vec::with_capacity(batch);
        for _ in 0..batch {
            pending.push(enqueue(&producer, &topic, &value).await);
        }
        let results = join_all(pending.into_iter().map(|p| async move {
            match p {
                Ok(delivery) => match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((error, _))) => Err(error.to_string()),
                    Err(_canceled) => Err("delivery canceled".to_owned()),
                },
                Err(error) => Err(error.to_string()),
            }
        }))
        .await;
        let elapsed = started.elapsed();
        stats.batches += 1;
        for result in results {
            match result {
                Ok(()) => stats.records += 1,
                Err(error) => {
                    stats.errors += 1;
                    stats.first_error.get_or_insert(error);
                }
            }
        }
        stats
            .latencies_us
            .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }
    stats
}

async fn run_load(
    producer: &FutureProducer,
    args: &Args,
    seconds: f64,
) -> (Vec<TaskStats>, Duration) {
    let started = Instant::now();
    let until = started + Duration::from_secs_f64(seconds);
    // Each task sends one batch per in_flight / rate seconds, the tasks' slots spread evenly.
    let interval = args
        .rate
        .map(|rate| Duration::from_secs_f64(args.in_flight as f64 / rate));
    let tasks: Vec<_> = (0..args.in_flight)
        .map(|i| {
            let pace =
                interval.map(|every| (every, every.mul_f64(i as f64 / args.in_flight as f64)));
            tokio::spawn(run_task(
                producer.clone(),
                args.topic.clone(),
                args.value.as_bytes().to_vec(),
                args.batch,
                until,
                pace,
            ))
        })
        .collect();
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        all.push(task.await.expect("producer task panicked"));
    }
    (all, started.elapsed())
}

/// utime + stime of this process, in seconds.
fn cpu_seconds() -> f64 {
    let ticks_per_s = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .unwrap_or(100.0);
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / ticks_per_s
}

/// VmHWM of this process, in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    sorted_us[rank.clamp(1, sorted_us.len()) - 1] as f64 / 1000.0
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    assert!(
        args.in_flight > 0 && args.batch > 0 && args.rate.is_none_or(|r| r > 0.0),
        "--in-flight, --batch and --rate must be positive"
    );
    // The service's producer settings: its defaults plus the same `KRP_KAFKA__*` overrides
    // the proxy under test reads from the environment (bench.sh runs both with one
    // environment), so e.g. `KRP_KAFKA__LINGER_MS=0 scripts/bench.sh` changes both.
    // The brokers come from --bootstrap; the settings require them (there is no implicit
    // dev cluster), so they join the environment the settings are read from. Nothing else
    // runs yet that could read the environment concurrently.
    std::env::set_var("KRP_KAFKA__BOOTSTRAP_SERVERS", &args.bootstrap);
    let settings = KafkaSettings {
        bootstrap_servers: Some(args.bootstrap.clone()),
        ..Settings::load(None, &CommandLine::default())
            .expect("the KRP_* environment is not a valid configuration")
            .kafka
    };
    let producer: FutureProducer = producer_config(&settings, &args.bootstrap, 0)
        .create()
        .expect("cannot create the producer");

    if args.warmup > 0.0 {
        let (warm, _) = run_load(&producer, &args, args.warmup).await;
        let errors: u64 = warm.iter().map(|s| s.errors).sum();
        if errors > 0 {
            let first = warm.iter().find_map(|s| s.first_error.clone());
            eprintln!(
                "direct_producer: {errors} records failed during warm-up, first: {}",
                first.unwrap_or_default()
            );
            std::process::exit(1);
        }
    }

    let cpu_before = cpu_seconds();
    let (stats, elapsed) = run_load(&producer, &args, args.seconds).await;
    let cpu = cpu_seconds() - cpu_before;
    let _ = producer.flush(Duration::from_secs(10));

    let mut latencies: Vec<u64> = stats
        .iter()
        .flat_map(|s| s.latencies_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    let batches: u64 = stats.iter().map(|s| s.batches).sum();
    let records: u64 = stats.iter().map(|s| s.records).sum();
    let errors: u64 = stats.iter().map(|s| s.errors).sum();
    let first_error = stats.iter().find_map(|s| s.first_error.clone());
    let secs = elapsed.as_secs_f64();
    let line = serde_json::json!({
        "tool": "direct_producer",
        "label": args.label,
        "in_flight": args.in_flight,
        "batch": args.batch,
        "value_bytes": args.value.len(),
        "duration_s": secs,
        "requests": batches,
        "records": records,
        "errors": errors,
        "first_error": first_error,
        "target_rate": args.rate,
        "requests_per_s": batches as f64 / secs,
        "records_per_s": records as f64 / secs,
        "p50_ms": percentile_ms(&latencies, 50.0),
        "p90_ms": percentile_ms(&latencies, 90.0),
        "p99_ms": percentile_ms(&latencies, 99.0),
        "max_ms": latencies.last().map_or(0.0, |&us| us as f64 / 1000.0),
        "cpu_s": cpu,
        "cpu_s_per_1k_records": if records > 0 { cpu * 1000.0 / records as f64 } else { 0.0 },
        "peak_rss_kib": peak_rss_kib(),
    });
    println!("{line}");
    if errors > 0 {
        eprintln!(
            "direct_producer: {errors} of {} records failed",
            records + errors
        );
        std::process::exit(1);
    }
}
