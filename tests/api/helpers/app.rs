//! The app, running in this process on port 0, and the HTTP responses the tests read.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use kafka_rest_proxy::config::Settings;
use kafka_rest_proxy::startup::Application;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::wait::wait_for_sample;
use super::{wait_until, JSON_V2, V2};

/// The gauge of requests being served, by the main listener.
const IN_FLIGHT: &str = "kafka_rest_http_requests_in_flight";

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

    /// Asserts status, the v2 Content-Type and the exact body bytes.
    #[track_caller]
    pub fn assert_exact(&self, status: u16, body: &str) {
        self.assert_exact_as(V2, status, body);
    }

    /// Asserts status, the v3 Content-Type (`application/json`) and the exact body bytes.
    #[track_caller]
    pub fn assert_v3(&self, status: u16, body: &str) {
        self.assert_exact_as("application/json", status, body);
    }

    #[track_caller]
    fn assert_exact_as(&self, content_type: &str, status: u16, body: &str) {
        assert_eq!(
            (self.status.as_u16(), self.body.as_str()),
            (status, body),
            "headers: {:?}",
            self.headers
        );
        assert_eq!(self.header("content-type"), Some(content_type), "{self:?}");
    }
}

/// The app, running in this process on a free port.
pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:PORT` of the separate metrics listener, unless
    /// `metrics.serve_on_api_listener`.
    pub metrics_address: Option<String>,
    /// The HTTPS listener's port, when configured.
    pub tls_port: Option<u16>,
    client: awc::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts the app; it answers at once, but may not be ready yet.
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

    /// Starts the app and waits until it is ready.
    pub async fn spawn_ready(settings: Settings) -> TestApp {
        let app = TestApp::spawn(settings).await;
        app.wait_ready().await;
        app
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self) {
        wait_until(Duration::from_secs(30), async || {
            let r = self.get("/readyz").await;
            if r.status == StatusCode::OK {
                Ok(())
            } else {
                Err(format!("never ready: {r:?}"))
            }
        })
        .await;
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        self.send(&self.address, method, path, headers, body).await
    }

    async fn send(
        &self,
        base: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut request = self
            .client
            .request(method.parse().unwrap(), format!("{base}{path}"));
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

    /// `POST /topics/{topic}` in the json embedded format, with more headers (credentials,
    /// X-Forwarded-For).
    pub async fn produce_with(
        &self,
        topic: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut all = vec![("content-type", JSON_V2)];
        all.extend_from_slice(headers);
        self.request("POST", &format!("/topics/{topic}"), &all, body)
            .await
    }

    /// Connects to the app and sends `head` (and nothing more): for requests that stay in
    /// flight, or misbehave in ways an HTTP client library will not.
    pub async fn raw(&self, head: &str) -> TcpStream {
        let address = self.address.trim_start_matches("http://");
        let mut stream = TcpStream::connect(address).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
    }

    /// The Prometheus exposition: from the separate metrics listener when there is one, else
    /// from `/metrics` on the main listener (which needs auth off, and a free in-flight slot).
    pub async fn metrics(&self) -> String {
        let r = self.metrics_response().await;
        assert_eq!(r.status, StatusCode::OK, "GET /metrics: {r:?}");
        r.body
    }

    /// `GET /metrics` where [`TestApp::metrics`] reads it, the whole response.
    pub async fn metrics_response(&self) -> Response {
        let base = self.metrics_address.as_deref().unwrap_or(&self.address);
        self.send(base, "GET", "/metrics", &[], "").await
    }

    /// Waits until the sample `series` in [`TestApp::metrics`] is at least `value`.
    pub async fn wait_for_sample(&self, series: &str, value: f64) {
        wait_for_sample(series, value, async || self.metrics().await).await;
    }

    /// Waits until at least `n` requests are in flight, not counting the one that asks:
    /// served by the main listener, `/metrics` counts itself in the gauge.
    pub async fn wait_for_in_flight(&self, n: u32) {
        let asking = if self.metrics_address.is_some() { 0 } else { 1 };
        self.wait_for_sample(IN_FLIGHT, f64::from(n + asking)).await;
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

/// Reads what the server sends on a [`TestApp::raw`] connection until it has sent a whole
/// response or closed.
pub async fn read_response(stream: &mut TcpStream, within: Duration) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no complete response within {within:?}: {}",
                String::from_utf8_lossy(&got)
            ),
        }
        let text = String::from_utf8_lossy(&got);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head.lines().find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length: ")
                    .map(|v| v.trim().parse::<usize>().unwrap())
            });
            if length.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    String::from_utf8(got).unwrap()
}

/// The body of a response [`read_response`] read.
pub fn body_of(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}
