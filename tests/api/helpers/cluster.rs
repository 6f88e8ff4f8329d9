//! The Kafka side: the tansu brokers that `scripts/test.sh` starts, a broker of a test's own
//! to stop, librdkafka's mock cluster for errors on demand, and an independent rdkafka
//! client to create topics and read back what was written.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kafka_rest_proxy::config::{SaslMechanism, SecurityProtocol, Settings};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

use super::free_port;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the integration tests through scripts/test.sh")
    })
}

/// A Kafka cluster the tests can reach.
#[derive(Clone, Debug)]
pub struct Cluster {
    pub bootstrap: String,
    /// SCRAM-SHA-512 username and password, for the SASL broker.
    pub scram: Option<(String, String)>,
}

impl Cluster {
    /// The shared plaintext broker.
    pub fn plaintext() -> Cluster {
        Cluster::at(env("IT_BOOTSTRAP"))
    }

    /// The shared SCRAM-SHA-512 broker, with the credentials it knows.
    pub fn scram() -> Cluster {
        Cluster {
            bootstrap: env("IT_SCRAM_BOOTSTRAP"),
            scram: Some((env("IT_SCRAM_USERNAME"), env("IT_SCRAM_PASSWORD"))),
        }
    }

    /// A plaintext cluster at `bootstrap`.
    pub fn at(bootstrap: impl Into<String>) -> Cluster {
        Cluster {
            bootstrap: bootstrap.into(),
            scram: None,
        }
    }

    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap);
        if let Some((user, password)) = &self.scram {
            config
                .set("security.protocol", "sasl_plaintext")
                .set("sasl.mechanisms", "SCRAM-SHA-512")
                .set("sasl.username", user)
                .set("sasl.password", password);
        }
        config
    }

    /// App settings that point at this cluster, with timeouts short enough for tests.
    pub fn settings(&self) -> Settings {
        let mut settings = Settings::default();
        settings.server.listen = "127.0.0.1:0".parse().unwrap();
        settings.server.workers = Some(2);
        // /metrics on a listener of its own, as by default, but on a free port.
        settings.metrics.listen = "127.0.0.1:0".parse().unwrap();
        settings.kafka.bootstrap_servers = Some(self.bootstrap.clone());
        settings.kafka.message_timeout_ms = 10_000;
        settings.metadata.refresh_interval_ms = 1_000;
        settings.metadata.request_timeout_ms = 3_000;
        // Access-log lines go straight to stdout, past the test harness's capture.
        settings.log.access_log = false;
        if let Some((user, password)) = &self.scram {
            settings.kafka.security_protocol = SecurityProtocol::SaslPlaintext;
            settings.kafka.sasl_mechanism = Some(SaslMechanism::ScramSha512);
            settings.kafka.sasl_username = Some(user.clone());
            settings.kafka.sasl_password = Some(password.clone().into());
        }
        settings
    }

    /// Creates a topic with a unique name and returns the name.
    pub async fn create_topic(&self, partitions: i32) -> String {
        let name = unique_name("krp-test");
        let admin: AdminClient<DefaultClientContext> = self.client_config().create().unwrap();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin
            .create_topics(
                &[NewTopic::new(&name, partitions, TopicReplication::Fixed(1))],
                &options,
            )
            .await
            .expect("CreateTopics request");
        for result in results {
            result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code}"));
        }
        name
    }

    /// The cluster's own id, as a Kafka client reads it from metadata (the v3 API's
    /// `cluster_id`).
    pub async fn cluster_id(&self) -> String {
        let consumer: BaseConsumer = self.consumer_config().create().unwrap();
        tokio::task::spawn_blocking(move || {
            consumer
                .client()
                .fetch_cluster_id(rdkafka::util::Timeout::After(Duration::from_secs(10)))
                .expect("the cluster names its id")
        })
        .await
        .unwrap()
    }

    /// The high watermark of every partition: how many records each holds.
    pub async fn high_watermarks(&self, topic: &str, partitions: i32) -> Vec<i64> {
        let consumer: BaseConsumer = self.consumer_config().create().unwrap();
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    consumer
                        .fetch_watermarks(&topic, p, Duration::from_secs(10))
                        .expect("watermarks")
                        .1
                })
                .collect()
        })
        .await
        .unwrap()
    }

    fn consumer_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set("group.id", unique_name("krp-test-reader"))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false");
        config
    }

    /// Reads `expected` records from the start of every partition with an independent
    /// consumer, then waits a little more to be sure there are no others. Sorted by
    /// partition and offset.
    pub async fn consume(&self, topic: &str, partitions: i32, expected: usize) -> Vec<Consumed> {
        let consumer: BaseConsumer = self.consumer_config().create().unwrap();
        let mut assignment = TopicPartitionList::new();
        for p in 0..partitions {
            assignment
                .add_partition_offset(topic, p, Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&assignment).unwrap();
        tokio::task::spawn_blocking(move || {
            let mut records = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut quiet_until: Option<Instant> = None;
            loop {
                let now = Instant::now();
                if now > deadline || quiet_until.is_some_and(|q| now > q) {
                    break;
                }
                if let Some(message) = consumer.poll(Duration::from_millis(100)) {
                    let m = message.expect("consume");
                    records.push(Consumed {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        value: m.payload().map(<[u8]>::to_vec),
                        timestamp_ms: m.timestamp().to_millis(),
                        headers: m.headers().map_or_else(Vec::new, |headers| {
                            headers
                                .iter()
                                .map(|h| (h.key.to_owned(), h.value.map(<[u8]>::to_vec)))
                                .collect()
                        }),
                    });
                }
                if records.len() >= expected && quiet_until.is_none() {
                    quiet_until = Some(Instant::now() + Duration::from_millis(500));
                }
            }
            records.sort_by_key(|r| (r.partition, r.offset));
            records
        })
        .await
        .unwrap()
    }
}

/// A record read back from Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: Option<i64>,
    /// Record headers in order: name and value (`None` for a null value).
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// A name no other test (or earlier run) uses.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A librdkafka mock cluster of `brokers` brokers holding `topic` (one replica per
/// partition), and app settings that point at it: for the errors and outages a real broker
/// cannot be made to produce on demand. Topic names need not be unique: every mock cluster
/// is a cluster of its own.
pub fn mock_cluster(
    brokers: i32,
    topic: &str,
    partitions: i32,
) -> (MockCluster<'static, DefaultProducerContext>, Settings) {
    let mock = MockCluster::new(brokers).unwrap();
    mock.create_topic(topic, partitions, 1).unwrap();
    let settings = Cluster::at(mock.bootstrap_servers()).settings();
    (mock, settings)
}

/// A tansu broker owned by one test, for tests that stop it; killed when dropped.
pub struct OwnBroker {
    pub bootstrap: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl OwnBroker {
    pub fn start() -> OwnBroker {
        let tansu = PathBuf::from(env("IT_TANSU"));
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "sqlite://broker.db"])
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let bootstrap = format!("127.0.0.1:{port}");
        wait_for_port(&bootstrap);
        OwnBroker {
            bootstrap,
            child,
            _dir: dir,
        }
    }

    pub fn cluster(&self) -> Cluster {
        Cluster::at(self.bootstrap.clone())
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits (blocking: the broker starts before the test has anything to run concurrently)
/// until something listens on `address`.
fn wait_for_port(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
