//! A real `redis-server` (Debian's package, installed by `scripts/install-test-tools.sh`)
//! owned by one test, on a free loopback port: the shared idempotency store, stopped and
//! started again where a test needs it gone.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafka_rest_proxy::config::{Settings, StoreKind};

use super::{free_port, tool};

pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    /// Arguments beyond the port: TLS files, a password.
    args: Vec<String>,
    tls: bool,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            args: Vec::new(),
            tls: false,
        };
        server.resume();
        server
    }

    /// A server that speaks only TLS (with `cert`/`key`, PEM files) and requires the
    /// password `auth_token` (as an ElastiCache AUTH token).
    pub fn start_tls(cert: &Path, key: &Path, auth_token: &str) -> RedisServer {
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            args: vec![
                "--tls-cert-file".into(),
                path(cert),
                "--tls-key-file".into(),
                path(key),
                "--tls-auth-clients".into(),
                "no".into(),
                "--requirepass".into(),
                auth_token.into(),
            ],
            tls: true,
        };
        server.resume();
        server
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://` when the server speaks TLS.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "rediss" } else { "redis" };
        format!("{scheme}://127.0.0.1:{}", self.port)
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
        let port = self.port.to_string();
        let ports = if self.tls {
            ["--port", "0", "--tls-port", &port]
        } else {
            ["--port", &port, "--tls-port", "0"]
        };
        let child = Command::new(tool("redis-server"))
            .args(ports)
            .args(["--bind", "127.0.0.1"])
            .args(&self.args)
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
