//! The real binary: `check` reports every problem on its own line and exits
//! non-zero; `serve` answers on its listener and exits 0 after SIGTERM.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, listening_address, temp_dir, voxgate, wait_ready};

#[test]
fn check_passes_on_a_valid_configuration() {
    let dir = temp_dir();
    let output = voxgate()
        .current_dir(&dir)
        .arg("check")
        .output()
        .expect("run voxgate check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("ok: configuration is valid"), "{stdout}");
    assert!(
        stdout.contains("ok: database voxgate.db is reachable"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok: recordings dir recordings will be created on the first recording"),
        "{stdout}"
    );
}

#[test]
fn check_reports_each_problem_on_its_own_line() {
    let dir = temp_dir();
    let output = voxgate()
        .current_dir(&dir)
        .env("VOXGATE_WS_PING_INTERVAL", "soon")
        .env("VOXGATE_PUBLIC_URL", "ftp://example.com")
        .env("VOXGATE_CALLS_MAX_CONCURRENT", "0")
        .arg("check")
        .output()
        .expect("run voxgate check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 3, "{stderr}");
    assert!(stderr.contains("error: VOXGATE_WS_PING_INTERVAL: \"soon\" is not a duration"));
    assert!(stderr.contains("error: VOXGATE_PUBLIC_URL: scheme \"ftp\""));
    assert!(stderr.contains("error: VOXGATE_CALLS_MAX_CONCURRENT: must be at least 1"));
}

#[test]
fn serve_and_check_refuse_a_server_reachable_from_outside_without_an_admin_token() {
    let dir = temp_dir();
    let started = Instant::now();
    let output = voxgate()
        .current_dir(&dir)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run voxgate serve");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "refused before loading anything"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].starts_with(
            "error: VOXGATE_ADMIN_TOKEN: must be set: the server listens on 0.0.0.0:0"
        ),
        "{stderr}"
    );
    assert!(!dir.join("voxgate.db").exists(), "nothing started");

    let output = voxgate()
        .current_dir(&dir)
        .env("VOXGATE_PUBLIC_URL", "https://voice.example.com")
        .arg("check")
        .output()
        .expect("run voxgate check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: VOXGATE_ADMIN_TOKEN: must be set: VOXGATE_PUBLIC_URL is set"),
        "{stderr}"
    );

    let output = voxgate()
        .current_dir(&dir)
        .env("VOXGATE_PUBLIC_URL", "https://voice.example.com")
        .env("VOXGATE_ADMIN_TOKEN", "a-long-random-admin-token-0123")
        .arg("check")
        .output()
        .expect("run voxgate check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("ok: admin token set"), "{stdout}");
    assert!(
        !stdout.contains("a-long-random-admin-token-0123"),
        "{stdout}"
    );
}

#[test]
fn check_fails_clearly_on_an_unreachable_database_without_leaking_its_password() {
    let output = voxgate()
        .arg("check")
        .arg("--database-url")
        .arg("postgres://voxgate:hunter2@127.0.0.1:1/voxgate")
        .output()
        .expect("run voxgate check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("error: database postgres://voxgate:***@127.0.0.1:1/voxgate"),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn check_names_a_missing_config_file() {
    let output = voxgate()
        .args(["check", "--config", "/nonexistent/voxgate.toml"])
        .output()
        .expect("run voxgate check");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("/nonexistent/voxgate.toml: cannot read the config file"),
        "{stderr}"
    );
}

#[test]
fn serve_answers_then_exits_zero_on_sigterm() {
    let dir = temp_dir();
    let mut child = voxgate()
        .current_dir(&dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("VOXGATE_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start voxgate serve");
    let (addr, lines) = listening_address(&mut child);
    assert!(http_get(&addr, "/healthz").starts_with("HTTP/1.1 200"));
    wait_ready(&addr, Duration::from_secs(300));
    // Slowloris: connections that never finish their headers must not
    // hold up the exit (the header timeout, 10 s, is longer than the
    // deadline below).
    let half_open: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            use std::io::Write;
            let mut tcp = std::net::TcpStream::connect(&addr).expect("connect");
            tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .expect("write part of a request");
            tcp
        })
        .collect();

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(8);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "voxgate did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    drop(half_open);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    assert!(
        rest.iter().any(|l| l.contains("server stopped")),
        "{rest:?}"
    );
    assert!(
        dir.join("voxgate.db").exists(),
        "SQLite file created in the working directory"
    );
}
