//! Shared harness: a real server on port 0 with its own SQLite file.

#![allow(dead_code, unreachable_pub, missing_docs)]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::Value;
use tokio::task::JoinHandle;
use voxgate_server::config::Config;
use voxgate_server::{Server, ServerError, ServerHandle};

/// The `metrics` recorder is process-wide by design; one per test binary.
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .install_recorder()
                .expect("install the metrics recorder once per test binary")
        })
        .clone()
}

pub struct TestServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub run: JoinHandle<Result<(), ServerError>>,
    pub db_dir: std::path::PathBuf,
}

/// A config for tests: port 0, a fresh SQLite file, fast heartbeats.
pub fn test_config() -> (Config, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("voxgate-test-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: dir.join("voxgate.db").display().to_string(),
        recordings_dir: dir.join("recordings"),
        ..Config::default()
    };
    (config, dir)
}

impl TestServer {
    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let (mut config, db_dir) = test_config();
        tune(&mut config);
        let server = Server::bind(config, prometheus())
            .await
            .expect("server binds");
        let addr = server.local_addr();
        let handle = server.handle();
        let run = tokio::spawn(server.run());
        TestServer {
            addr,
            handle,
            run,
            db_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server and checks it exits cleanly.
    pub async fn stop(self) {
        self.handle.stop();
        tokio::time::timeout(Duration::from_secs(15), self.run)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server exits cleanly");
        std::fs::remove_dir_all(&self.db_dir).ok();
    }

    /// Waits (bounded) until `check` holds, polling the handle.
    pub async fn eventually(&self, what: &str, check: impl Fn(&ServerHandle) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !check(&self.handle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A call record from the API, after records are flushed.
    pub async fn record(&self, call_sid: &str) -> Value {
        self.handle
            .flush_records(Duration::from_secs(10))
            .await
            .expect("records flushed");
        let (status, body) = http_get(self.addr, &format!("/api/calls/{call_sid}")).await;
        assert_eq!(status, 200, "GET call {call_sid}: {body}");
        serde_json::from_str(&body).expect("JSON record")
    }
}

/// A place under the `/events` connection cap, for driving the monitor
/// handler directly.
pub fn events_slot(state: &voxgate_server::app::AppState) -> tokio::sync::OwnedSemaphorePermit {
    state
        .events_slots
        .clone()
        .try_acquire_owned()
        .expect("an /events slot")
}

/// A minimal HTTP/1.1 client over a raw socket: enough for our JSON API,
/// with no extra dependency. Returns the status, the lower-cased head and
/// the (de-chunked) body.
pub async fn http_exchange(addr: SocketAddr, request: String) -> (u16, String, String) {
    let raw = exchange_raw(addr, &request).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, head, body)
}

/// Sends `request` on a fresh connection and reads the whole answer.
async fn exchange_raw(addr: SocketAddr, request: &str) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("response in time")
        .expect("read");
    raw
}

/// Like [`http_exchange`], without the head.
pub async fn http_request(addr: SocketAddr, request: String) -> (u16, String) {
    let (status, _, body) = http_exchange(addr, request).await;
    (status, body)
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
    out
}

/// A GET whose body may be binary: status, lower-cased head, body bytes.
pub async fn http_get_bytes(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let raw = exchange_raw(addr, &request).await;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, head, raw[split + 4..].to_vec())
}

pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    http_request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// A form POST request.
pub fn form_request(addr: SocketAddr, path: &str, form: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
        form.len()
    )
}

/// A request with a JSON body; an empty `body` sends none (for `GET` and
/// `DELETE`).
pub fn json_request(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
    let content_type = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         {content_type}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

pub async fn http_post_form(addr: SocketAddr, path: &str, form: &str) -> (u16, String) {
    http_request(addr, form_request(addr, path, form)).await
}

/// The value of one metric series in `/metrics` text, 0 when absent.
pub async fn metric(addr: SocketAddr, series: &str) -> f64 {
    let (_, body) = http_get(addr, "/metrics").await;
    body.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// `request` with one more header line, right after the request line.
pub fn with_header(request: String, name: &str, value: &str) -> String {
    request.replacen("\r\n", &format!("\r\n{name}: {value}\r\n"), 1)
}

/// `request` (from one of the builders here) with its `Host` header set to
/// `host`.
pub fn with_host(request: String, addr: SocketAddr, host: &str) -> String {
    request.replacen(
        &format!("Host: {addr}\r\n"),
        &format!("Host: {host}\r\n"),
        1,
    )
}

/// The value of one metric series, read from `/metrics` with extra request
/// headers (the admin's credential); 0 when absent.
pub async fn metric_with(addr: SocketAddr, series: &str, headers: &[(&str, &str)]) -> f64 {
    let mut request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    for (name, value) in headers {
        request = with_header(request, name, value);
    }
    let (status, body) = http_request(addr, request).await;
    assert_eq!(status, 200, "GET /metrics: {body}");
    body.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// An in-memory WebSocket: the server end implements the handlers'
/// `Sink + Stream`, the test holds the other end. Works on paused time.
pub mod memory {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use axum::extract::ws::Message;
    use futures_util::{Sink, Stream};
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    pub struct ServerEnd {
        incoming: mpsc::Receiver<Result<Message, axum::Error>>,
        outgoing: PollSender<Message>,
    }

    pub struct ClientEnd {
        pub to_server: mpsc::Sender<Result<Message, axum::Error>>,
        pub from_server: mpsc::Receiver<Message>,
    }

    impl ClientEnd {
        pub async fn send_text(&self, text: &str) {
            self.to_server
                .send(Ok(Message::Text(text.into())))
                .await
                .expect("server end open");
        }

        /// The next message; None once the server dropped its end.
        pub async fn recv(&mut self) -> Option<Message> {
            self.from_server.recv().await
        }

        /// The next text message as JSON, skipping pings.
        pub async fn next_json(&mut self) -> serde_json::Value {
            loop {
                match self.recv().await.expect("server end open") {
                    Message::Text(text) => {
                        return serde_json::from_str(text.as_str()).expect("JSON");
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                    other => panic!("expected text, got {other:?}"),
                }
            }
        }
    }

    /// A socket pair; `capacity` bounds what the server may send unread.
    pub fn pair(capacity: usize) -> (ServerEnd, ClientEnd) {
        let (to_server, incoming) = mpsc::channel(64);
        let (outgoing, from_server) = mpsc::channel(capacity);
        (
            ServerEnd {
                incoming,
                outgoing: PollSender::new(outgoing),
            },
            ClientEnd {
                to_server,
                from_server,
            },
        )
    }

    impl Stream for ServerEnd {
        type Item = Result<Message, axum::Error>;
        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            self.incoming.poll_recv(cx)
        }
    }

    impl Sink<Message> for ServerEnd {
        type Error = axum::Error;
        fn poll_ready(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing)
                .poll_ready(cx)
                .map_err(axum::Error::new)
        }
        fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Self::Error> {
            Pin::new(&mut self.outgoing)
                .start_send(item)
                .map_err(axum::Error::new)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing)
                .poll_flush(cx)
                .map_err(axum::Error::new)
        }
        fn poll_close(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Result<(), Self::Error>> {
            Pin::new(&mut self.outgoing)
                .poll_close(cx)
                .map_err(axum::Error::new)
        }
    }
}
