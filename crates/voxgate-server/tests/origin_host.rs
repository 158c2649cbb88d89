//! Browser origins (cross-site WebSockets and CSRF) and `Host` names (DNS
//! rebinding) are checked on every route before anything else runs.

mod common;

use common::{TestServer, http_exchange, json_request, metric_with, with_header, with_host};
use serde_json::Value;
use voxgate_providers::Secret;
use voxgate_server::config::PublicUrl;
use voxgate_testkit::{next_json, try_connect};

const ADMIN: &str = "admin-token-origin-5d2c";
const BEARER: &str = "Bearer admin-token-origin-5d2c";

/// The tests count refusals in the process-wide metrics: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn error_code(body: &str) -> Value {
    let value: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
    value["error"]["code"].clone()
}

async fn denied(server: &TestServer, reason: &str) -> (f64, f64) {
    let auth = [("Authorization", BEARER)];
    let all = metric_with(
        server.addr,
        &format!(r#"voxgate_access_denied_total{{reason="{reason}"}}"#),
        &auth,
    )
    .await;
    let upgrades = metric_with(
        server.addr,
        &format!(r#"voxgate_websocket_refused_total{{endpoint="any",reason="{reason}"}}"#),
        &auth,
    )
    .await;
    (all, upgrades)
}

#[tokio::test]
async fn only_own_and_configured_origins_may_open_sockets() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start_with(|c| {
        c.access.admin_token = Some(Secret::new(ADMIN));
        c.access.allowed_origins = vec!["https://console.example.com".into()];
        c.public_url = Some(PublicUrl::parse("https://voice.example.com").expect("url"));
    })
    .await;
    let port = server.addr.port();
    let (before, upgrades_before) = denied(&server, "origin").await;

    // The admin's token does not make a foreign page's socket acceptable.
    let foreign = [
        "https://evil.example".to_owned(),
        format!("http://localhost:{}", port.wrapping_add(1)),
        format!("https://127.0.0.1:{port}"),
        "null".to_owned(),
    ];
    for origin in &foreign {
        for path in ["/events", "/browser-stream"] {
            let headers = [("origin", origin.as_str()), ("authorization", BEARER)];
            let (status, body) = try_connect(server.addr, path, &headers)
                .await
                .err()
                .unwrap_or_else(|| panic!("{path} upgraded for origin {origin}"));
            assert_eq!(status, 403, "{path} from {origin}: {body}");
            assert_eq!(error_code(&body), "forbidden", "{body}");
        }
    }
    let refusals = (foreign.len() * 2) as f64;
    let (after, upgrades_after) = denied(&server, "origin").await;
    assert_eq!(after - before, refusals, "each refusal is counted");
    assert_eq!(upgrades_after - upgrades_before, refusals);

    for origin in [
        format!("http://127.0.0.1:{port}"),
        format!("http://localhost:{port}"),
        "https://console.example.com".to_owned(),
        "https://voice.example.com".to_owned(),
    ] {
        for path in ["/events", "/browser-stream"] {
            let headers = [("origin", origin.as_str()), ("authorization", BEARER)];
            let mut client = try_connect(server.addr, path, &headers)
                .await
                .unwrap_or_else(|(s, b)| panic!("{path} from {origin}: {s} {b}"));
            assert_eq!(
                next_json(&mut client).await["type"],
                "connection_established"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn a_cross_site_post_is_refused_without_effect() {
    let _serial = SERIAL.lock().await;
    // No admin token: the loopback default, where only the origin check
    // stands between a web page and the API.
    let server = TestServer::start().await;
    let addr = server.addr;
    let before = common::metric(addr, r#"voxgate_access_denied_total{reason="origin"}"#).await;
    let post = json_request(addr, "POST", "/api/personas", r#"{"name":"csrf"}"#);
    let (status, _, body) = http_exchange(
        addr,
        with_header(post.clone(), "Origin", "https://evil.example"),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "forbidden");
    let reset = json_request(addr, "POST", "/api/admin/reset", "");
    let (status, _, body) =
        http_exchange(addr, with_header(reset, "Origin", "https://evil.example")).await;
    assert_eq!(status, 403, "{body}");
    let after = common::metric(addr, r#"voxgate_access_denied_total{reason="origin"}"#).await;
    assert_eq!(after - before, 2.0);

    let (status, _, _) =
        http_exchange(addr, json_request(addr, "GET", "/api/personas/csrf", "")).await;
    assert_eq!(status, 404, "the cross-site POST created nothing");

    // The console's own page may post.
    let own = format!("http://localhost:{}", addr.port());
    let (status, _, body) = http_exchange(addr, with_header(post, "Origin", &own)).await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn requests_for_another_host_are_misdirected() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start_with(|c| {
        c.public_url = Some(PublicUrl::parse("https://voice.example.com/vg").expect("url"));
        c.access.allowed_hosts = vec!["voice.internal".into()];
    })
    .await;
    let addr = server.addr;
    let port = addr.port();
    let series = r#"voxgate_access_denied_total{reason="host"}"#;
    let before = common::metric(addr, series).await;

    let mut refused = 0.0;
    for host in [
        "rebind.attacker.example".to_owned(),
        format!("rebind.attacker.example:{port}"),
        format!("127.0.0.2:{port}"),
        format!("voice.example.com.attacker.example:{port}"),
    ] {
        for path in ["/healthz", "/api/calls", "/api/personas"] {
            let request = json_request(addr, "GET", path, "");
            let (status, _, body) = http_exchange(addr, with_host(request, addr, &host)).await;
            assert_eq!(status, 421, "{path} for Host {host}: {body}");
            assert_eq!(error_code(&body), "misdirected_request", "{body}");
            refused += 1.0;
        }
        let (status, body) = try_connect(addr, "/events", &[("host", &host)])
            .await
            .err()
            .unwrap_or_else(|| panic!("/events upgraded for Host {host}"));
        assert_eq!(status, 421, "{body}");
        refused += 1.0;
    }
    assert_eq!(common::metric(addr, series).await - before, refused);

    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "voice.example.com".to_owned(),
        "VOICE.example.com:443".to_owned(),
        "voice.internal".to_owned(),
        format!("voice.internal:{port}"),
    ] {
        for path in ["/healthz", "/api/calls"] {
            let request = json_request(addr, "GET", path, "");
            let (status, _, body) = http_exchange(addr, with_host(request, addr, &host)).await;
            assert_eq!(status, 200, "{path} for Host {host}: {body}");
        }
    }
    let mut monitor = try_connect(addr, "/events", &[("host", &format!("localhost:{port}"))])
        .await
        .unwrap_or_else(|(s, b)| panic!("/events for localhost: {s} {b}"));
    assert_eq!(
        next_json(&mut monitor).await["type"],
        "connection_established"
    );
    drop(monitor);
    server.stop().await;
}
