//! Running the real binary: a clean environment, a scratch directory, the
//! address it listens on, and a tiny HTTP client.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Lines, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStderr, Command};
use std::time::{Duration, Instant};

pub fn voxgate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_voxgate"));
    // Only what each test sets: no stray VOXGATE_* from the environment,
    // except where the models are and how pip fetches them.
    // No vendor keys or URLs either.
    let vendors = [
        "VOXGATE_",
        "OPENAI_",
        "DEEPGRAM_",
        "ELEVENLABS_",
        "ELEVEN_",
        "TWILIO_",
    ];
    for (name, _) in std::env::vars() {
        let models = ["VOXGATE_MODELS_DIR", "VOXGATE_PIP_ARGS", "VOXGATE_PYTHON"];
        if vendors.iter().any(|v| name.starts_with(v)) && !models.contains(&name.as_str()) {
            command.env_remove(name);
        }
    }
    command
}

pub fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("voxgate-cli-{}", std::process::id()))
        .join(format!("{:?}", Instant::now()).replace(['{', '}', ' ', ':', ','], ""));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

pub fn http_get(addr: &str, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    response
}

/// Reads the child's log until it says where it listens.
pub fn listening_address(child: &mut Child) -> (String, Lines<BufReader<ChildStderr>>) {
    let stderr = child.stderr.take().expect("stderr piped");
    let mut lines = BufReader::new(stderr).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("voxgate logged its address before exiting")
            .expect("read log");
        if let Some(rest) = line.split("address=").nth(1) {
            break rest.split_whitespace().next().expect("address").to_owned();
        }
    };
    (addr, lines)
}

/// Polls `/readyz` until it answers 200 (the models are loaded).
pub fn wait_ready(addr: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let response = http_get(addr, "/readyz");
        if response.starts_with("HTTP/1.1 200") {
            return;
        }
        assert!(
            response.starts_with("HTTP/1.1 503") && Instant::now() < deadline,
            "voxgate did not become ready: {response}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `voxgate serve` running on a free loopback port, ready for calls, its
/// log echoed (a full pipe would stall it) and kept.
pub struct Serving {
    pub child: Child,
    pub addr: std::net::SocketAddr,
    log: std::thread::JoinHandle<String>,
}

impl Serving {
    /// Starts `command` (a `voxgate()` with its environment) as `serve` in
    /// `dir` and waits until `/readyz` says it takes calls.
    pub async fn start(mut command: Command, dir: &std::path::Path) -> Serving {
        let mut child = command
            .current_dir(dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start voxgate serve");
        let (addr, lines) = listening_address(&mut child);
        let log = std::thread::spawn(move || {
            let mut all = String::new();
            for line in lines.map_while(Result::ok) {
                eprintln!("voxgate: {line}");
                all.push_str(&line);
                all.push('\n');
            }
            all
        });
        let ready_addr = addr.clone();
        tokio::task::spawn_blocking(move || wait_ready(&ready_addr, Duration::from_secs(300)))
            .await
            .expect("readiness");
        Serving {
            child,
            addr: addr.parse().expect("address"),
            log,
        }
    }

    /// Sends SIGTERM; returns the exit code and the whole log.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(killed.success());
        let status = self.child.wait().expect("voxgate exits");
        (status.code(), self.log.join().expect("log reader"))
    }
}
