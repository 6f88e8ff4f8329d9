//! The integration test harness: the real app on port 0 against the real tansu brokers that
//! `scripts/test.sh` starts, an independent consumer to read back what was written, and an
//! independent murmur2.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use kafka_rest_proxy::config::{SaslMechanism, SecurityProtocol, Settings};
use kafka_rest_proxy::startup::Application;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};

pub const V2: &str = "application/vnd.kafka.v2+json";
pub const JSON_V2: &str = "application/vnd.kafka.json.v2+json";
pub const BINARY_V2: &str = "application/vnd.kafka.binary.v2+json";

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
        Cluster {
            bootstrap: env("IT_BOOTSTRAP"),
            scram: None,
        }
    }

    /// The shared SCRAM-SHA-512 broker, with the credentials it knows.
    pub fn scram() -> Cluster {
        Cluster {
            bootstrap: env("IT_SCRAM_BOOTSTRAP"),
            scram: Some((env("IT_SCRAM_USERNAME"), env("IT_SCRAM_PASSWORD"))),
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
}

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
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

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: actix_web::http::header::HeaderMap,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// Asserts status, Content-Type and the exact body bytes.
    #[track_caller]
    pub fn assert_exact(&self, status: u16, body: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body.as_str()),
            (status, body),
            "headers: {:?}",
            self.headers
        );
        assert_eq!(self.header("content-type"), Some(V2), "{self:?}");
    }
}

/// The app, running in this process on a free port.
pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of the separate metrics listener, when configured.
    pub metrics_address: Option<String>,
    /// The HTTPS listener's port, when configured.
    pub tls_port: Option<u16>,
    client: awc::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub async fn spawn(settings: Settings) -> TestApp {
        let app = Application::build(&settings).expect("the app starts");
        let address = format!("http://127.0.0.1:{}", app.port());
        let tls_port = app.tls_port();
        let metrics_address = app
            .metrics_port()
            .map(|port| format!("http://127.0.0.1:{port}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let done = actix_web::rt::spawn(app.run_until_stopped(async {
            let _ = stopped.await;
        }));
        TestApp {
            address,
            metrics_address,
            tls_port,
            client: awc::Client::builder()
                .timeout(Duration::from_secs(60))
                .finish(),
            stop: Some(stop),
            done: Some(done),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = self.get("/readyz").await;
            if r.status == StatusCode::OK {
                return;
            }
            assert!(Instant::now() < deadline, "never ready: {r:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.address, path));
        // Appended, so a name listed twice is sent as two headers.
        for (name, value) in headers {
            request = request.append_header((*name, *value));
        }
        let mut response = request
            .send_body(body.to_owned())
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let bytes = response.body().limit(64 << 20).await.unwrap();
        Response {
            status: response.status(),
            headers: response.headers().clone(),
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request("GET", path, &[], "").await
    }

    /// `POST path` with a Content-Type.
    pub async fn post(&self, path: &str, content_type: &str, body: &str) -> Response {
        self.request("POST", path, &[("content-type", content_type)], body)
            .await
    }

    /// `POST /topics/{topic}` in the json embedded format.
    pub async fn produce(&self, topic: &str, body: &str) -> Response {
        self.post(&format!("/topics/{topic}"), JSON_V2, body).await
    }

    /// Triggers the shutdown sequence; the handle resolves when it has finished. The app
    /// still answers (503) meanwhile.
    pub fn begin_stop(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        let _ = self.stop.take().expect("not stopped yet").send(());
        self.done.take().expect("not stopped yet")
    }

    /// Triggers the shutdown sequence and waits for it to finish.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.begin_stop().await.unwrap()
    }
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
        Cluster {
            bootstrap: self.bootstrap.clone(),
            scram: None,
        }
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

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(address: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(address).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {address}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kafka's murmur2 (Java `Utils.murmur2`), written from the Java source, independent of
/// librdkafka's.
pub fn murmur2(data: &[u8]) -> i32 {
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

/// The partition Java's default partitioner picks for a keyed record.
pub fn java_partition(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// The service's binary, started with a clean environment plus `envs`, listening on a free
/// loopback port; stdout is piped for the access log.
pub struct Binary {
    pub child: Child,
    pub base: String,
}

impl Binary {
    pub fn start(envs: &[(&str, &str)]) -> Binary {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kafka-rest-proxy"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        Binary {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, client: &awc::Client) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "the binary never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit status, stdout and stderr.
    pub async fn terminate(self) -> (std::process::ExitStatus, String, String) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let output = tokio::task::spawn_blocking(move || self.child.wait_with_output())
            .await
            .unwrap()
            .unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

/// The path of a command on PATH, or a panic saying how to get it.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: run scripts/install-test-tools.sh"))
}

/// The value of the sample `name{labels}` (labels in the exposition's sorted order) in a
/// Prometheus text exposition; 0 when absent.
pub fn sample(exposition: &str, series: &str) -> f64 {
    exposition
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().unwrap())
        })
        .unwrap_or(0.0)
}
