//! A real `redis-server` (Debian's package, installed by `scripts/install-test-tools.sh`)
//! owned by one test, on a free loopback port: the shared idempotency store, stopped and
//! started again where a test needs it gone.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_rest_proxy::config::{Settings, StoreKind};

use super::{free_port, tool};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
        };
        server.resume();
        server
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `settings` with this server as the idempotency store.
    pub fn store_for(&self, mut settings: Settings) -> Settings {
        settings.idempotency.store = StoreKind::Redis;
        settings.idempotency.redis.url = Some(self.url());
        settings
    }

    /// Kills the server (its keys are gone with it: nothing is saved).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(tool("redis-server"))
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let address = format!("127.0.0.1:{}", self.port);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(Instant::now() < deadline, "redis-server never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The keys the server holds under `pattern`, by `redis-cli`.
    pub fn keys(&self, pattern: &str) -> Vec<String> {
        let out = Command::new(tool("redis-cli"))
            .args(["-p", &self.port.to_string(), "--raw", "KEYS", pattern])
            .output()
            .expect("redis-cli runs");
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
