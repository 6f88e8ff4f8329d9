//! The service's real binary, for what only a process shows: the command line, exit codes,
//! signals and stdout.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::wait::wait_for_sample;
use super::{free_port, wait_until};

/// The binary, started with a clean environment plus some variables, listening on a free
/// loopback port; killed when dropped before [`Binary::terminate`].
pub struct Binary {
    pub base: String,
    /// `http://127.0.0.1:PORT` of the `/metrics` listener.
    pub metrics_base: String,
    client: awc::Client,
    /// The process and the threads that read its stdout and stderr, until terminated.
    running: Option<(Child, JoinHandle<String>, JoinHandle<String>)>,
}

impl Binary {
    /// The binary as a command, with a clean environment (only PATH, and the metrics
    /// listener on a free loopback port instead of the default 0.0.0.0:9102, which binaries
    /// running in parallel would share).
    pub fn command() -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafka-rest-proxy"));
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("KRP_METRICS__LISTEN", "127.0.0.1:0");
        command
    }

    /// Starts serving with `envs` added to the clean environment, the API and the metrics
    /// listeners on free loopback ports. Stdout and stderr are read as they come, so that a
    /// chatty binary never blocks on a full pipe.
    pub fn start(envs: &[(&str, &str)]) -> Binary {
        let port = free_port();
        let metrics_port = free_port();
        let mut child = Binary::command()
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("KRP_METRICS__LISTEN", format!("127.0.0.1:{metrics_port}"))
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let stdout = read_all(child.stdout.take().unwrap());
        let stderr = read_all(child.stderr.take().unwrap());
        Binary {
            base: format!("http://127.0.0.1:{port}"),
            metrics_base: format!("http://127.0.0.1:{metrics_port}"),
            client: awc::Client::default(),
            running: Some((child, stdout, stderr)),
        }
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        let url = format!("{}/readyz", self.base);
        wait_until(Duration::from_secs(30), async || {
            match self.client.get(&url).send().await {
                Ok(r) if r.status() == 200 => Ok(()),
                _ => Err("the binary never became ready".to_owned()),
            }
        })
        .await;
    }

    /// Waits until the sample `series` in `/metrics` is at least `value`.
    pub async fn wait_for_sample(&self, series: &str, value: f64) {
        let url = format!("{}/metrics", self.metrics_base);
        wait_for_sample(series, value, async || {
            let mut r = self.client.get(&url).send().await.expect("GET /metrics");
            assert_eq!(r.status(), 200, "GET /metrics");
            String::from_utf8(r.body().await.unwrap().to_vec()).unwrap()
        })
        .await;
    }

    /// Sends SIGHUP (reload the policy file).
    pub fn hang_up(&self) {
        let (child, _, _) = self.running.as_ref().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    }

    /// Sends SIGTERM, waits for the exit, and returns the exit status, stdout and stderr.
    pub async fn terminate(mut self) -> (ExitStatus, String, String) {
        let (mut child, stdout, stderr) = self.running.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            (status, stdout.join().unwrap(), stderr.join().unwrap())
        })
        .await
        .unwrap()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Some((mut child, _, _)) = self.running.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Reads `stream` to its end on a thread of its own.
fn read_all(mut stream: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        String::from_utf8_lossy(&bytes).into_owned()
    })
}
