//! What an untrusted peer may hold: call slots without a call, monitor
//! connections, subscriptions and parked sessions, TCP connections, slow
//! requests, outbound calls, and the log.

mod common;

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{TestServer, http_exchange, http_get, json_request, metric, with_header};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use voxgate_providers::Secret;
use voxgate_providers::cloud::BaseUrl;
use voxgate_server::config::{PublicUrl, TwilioConfig};
use voxgate_testkit::fakes::twilio::FakeTwilio;
use voxgate_testkit::{
    Client, TwilioCaller, close_code, connect, next_json, next_of_type, refused_upgrade_status,
    send_text, try_connect,
};

/// How long anything here may take before the test fails.
const BOUND: Duration = Duration::from_secs(10);

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Pings the server every 50 ms (and answers its pings) until it closes
/// the socket; the close code, or None for a close without one.
async fn ping_until_closed(mut client: Client) -> Option<u16> {
    let deadline = Instant::now() + BOUND;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => panic!("the server never closed the socket"),
            _ = tick.tick() => {
                let _ = client.send(Message::Ping(vec![1, 2, 3].into())).await;
            }
            next = client.next() => match next {
                Some(Ok(Message::Close(frame))) => {
                    let _ = client.flush().await;
                    return frame.map(|f| u16::from(f.code));
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            },
        }
    }
}

async fn assert_ready(server: &TestServer) {
    let (status, body) = http_get(server.addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn sockets_that_never_start_a_call_give_their_slot_back() {
    let start_timeout = Duration::from_millis(300);
    let server = TestServer::start_with(|c| {
        c.max_concurrent_calls = 2;
        c.limits.start_timeout = start_timeout;
    })
    .await;
    assert_ready(&server).await;
    let opened = Instant::now();
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut holder = connect(server.addr, "/stream").await;
        send_text(&mut holder, TwilioCaller::new("holder").connected()).await;
        holders.push(holder);
    }
    // Both slots are taken by sockets with no call.
    assert_eq!(refused_upgrade_status(server.addr, "/stream").await, 503);
    assert_ready(&server).await;

    let codes = futures_util::future::join_all(holders.into_iter().map(ping_until_closed)).await;
    assert_eq!(codes, [Some(1008), Some(1008)], "closed for not starting");
    assert!(
        opened.elapsed() >= start_timeout,
        "not before the start timeout"
    );
    assert_ready(&server).await;
    let state = server.handle.app_state();
    server
        .eventually("both slots back", |_| {
            state.call_slots.available_permits() == 2
        })
        .await;

    // A real carrier is admitted now.
    let mut stream = connect(server.addr, "/stream").await;
    let mut caller = TwilioCaller::new("afterholders1");
    send_text(&mut stream, caller.connected()).await;
    send_text(
        &mut stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    server
        .eventually("the call starts", |h| h.active_calls() == 1)
        .await;
    // A started call is not subject to the start timeout.
    assert_ready(&server).await;
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));
    let record = server.record(&caller.call_sid).await;
    assert_eq!(record["disposition"], "completed", "{record}");
    server.stop().await;
}

async fn monitor(server: &TestServer) -> Client {
    let mut client = connect(server.addr, "/events").await;
    assert_eq!(
        next_json(&mut client).await["type"],
        "connection_established"
    );
    client
}

#[tokio::test]
async fn monitor_connections_are_capped() {
    let server = TestServer::start_with(|c| c.limits.events_connections = 2).await;
    let first = monitor(&server).await;
    let _second = monitor(&server).await;
    let (status, body) = try_connect(server.addr, "/events", &[])
        .await
        .expect_err("a third monitor is refused");
    assert_eq!(status, 429, "{body}");
    assert_eq!(json_body(&body)["error"]["code"], "too_many_requests");
    drop(first);
    let state = server.handle.app_state();
    server
        .eventually("a monitor slot freed", |_| {
            state.events_slots.available_permits() == 1
        })
        .await;
    let _third = monitor(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_per_connection_are_capped() {
    let server = TestServer::start_with(|c| c.limits.events_subscriptions = 2).await;
    let mut mon = monitor(&server).await;
    for call in ["CAsubcap001", "CAsubcap002"] {
        send_text(
            &mut mon,
            json!({"type": "subscribe", "call_id": call}).to_string(),
        )
        .await;
        assert_eq!(next_of_type(&mut mon, "subscribed").await["call_id"], call);
    }
    for call in ["CAsubcap003", "*"] {
        send_text(
            &mut mon,
            json!({"type": "subscribe", "call_id": call}).to_string(),
        )
        .await;
        let error = next_json(&mut mon).await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], "limit_reached", "{error}");
    }
    // Subscribing again to a known call is not one more; dropping one
    // makes room.
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"CAsubcap001"}"#).await;
    assert_eq!(next_json(&mut mon).await["type"], "subscribed");
    send_text(
        &mut mon,
        r#"{"type":"unsubscribe","call_id":"CAsubcap002"}"#,
    )
    .await;
    assert_eq!(next_json(&mut mon).await["type"], "unsubscribed");
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"CAsubcap003"}"#).await;
    assert_eq!(next_json(&mut mon).await["type"], "subscribed");
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_parked_sessions_stays_under_the_cap() {
    const CAP: usize = 3;
    const FLOOD: usize = 12;
    let server = TestServer::start_with(|c| c.limits.parked_sessions = CAP).await;
    let series = r#"voxgate_limited_total{limit="parked_sessions"}"#;
    let before = metric(server.addr, series).await;
    for i in 0..FLOOD {
        let mut mon = monitor(&server).await;
        let id = format!("flood-session-{i:04}");
        send_text(
            &mut mon,
            json!({"type": "session_info", "session_id": id}).to_string(),
        )
        .await;
        let confirmed = next_of_type(&mut mon, "session_confirmed").await;
        assert_eq!(confirmed["resumed"], false, "{confirmed}");
        send_text(&mut mon, r#"{"type":"subscribe","call_id":"*"}"#).await;
        next_of_type(&mut mon, "subscribed").await;
        drop(mon);
        let parked = server.handle.parked_sessions();
        assert!(parked <= CAP, "{parked} parked after {} monitors", i + 1);
    }
    // Every monitor's session was parked, the oldest making way.
    let evicted = (FLOOD - CAP) as f64;
    let deadline = Instant::now() + BOUND;
    while metric(server.addr, series).await - before < evicted {
        assert!(Instant::now() < deadline, "not every session was parked");
        assert!(server.handle.parked_sessions() <= CAP);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(server.addr, series).await - before, evicted);
    assert_eq!(server.handle.parked_sessions(), CAP);
    server.stop().await;
}

/// Everything the server sends on `tcp` until it closes it (within
/// [`BOUND`]).
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(BOUND, tcp.read(&mut buf)).await {
            Err(_) => panic!(
                "the server kept the connection open; read so far: {:?}",
                String::from_utf8_lossy(&answer)
            ),
            Ok(Ok(0) | Err(_)) => return String::from_utf8_lossy(&answer).into_owned(),
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// One GET on an open connection, kept alive: the status.
async fn get_on(tcp: &mut TcpStream, addr: std::net::SocketAddr, path: &str) -> u16 {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    // `/healthz` answers "ok" with a Content-Length: read the whole answer.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.ends_with(b"\r\n\r\nok") {
        let n = tokio::time::timeout(BOUND, tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "closed early: {:?}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&answer);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status")
}

/// With two connections open, a third is answered 503 and closed; the
/// limit's counter under `label` goes up by one.
async fn third_connection_refused(server: &TestServer, label: &str) {
    let addr = server.addr;
    let series = format!(r#"voxgate_limited_total{{limit="{label}"}}"#);
    let before = metric(addr, &series).await;
    let mut first = TcpStream::connect(addr).await.expect("connect");
    let mut second = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_on(&mut first, addr, "/healthz").await, 200);
    assert_eq!(get_on(&mut second, addr, "/healthz").await, 200);
    let mut third = TcpStream::connect(addr).await.expect("connect");
    let answer = read_until_closed(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 503 "), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // The admitted ones are untouched.
    assert_eq!(get_on(&mut first, addr, "/healthz").await, 200);
    drop(first);
    drop(second);
    // Once they are gone, a new connection gets in again.
    let deadline = Instant::now() + BOUND;
    loop {
        let (status, _) = http_get(addr, "/healthz").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(Instant::now() < deadline, "the slots never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(metric(addr, &series).await - before, 1.0);
}

#[tokio::test]
async fn connections_from_one_address_are_capped() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    third_connection_refused(&server, "connections_per_ip").await;
    server.stop().await;
}

#[tokio::test]
async fn connections_in_all_are_capped() {
    let server = TestServer::start_with(|c| c.limits.max_connections = 2).await;
    third_connection_refused(&server, "connections").await;
    server.stop().await;
}

#[tokio::test]
async fn new_connections_from_one_address_are_rate_limited() {
    let server = TestServer::start_with(|c| c.limits.connections_per_ip_per_second = 1).await;
    let addr = server.addr;
    let mut answers = Vec::new();
    for _ in 0..10 {
        // A client that sends its request at once, as clients do. The
        // refusal is written without reading the request, so the close may
        // come as a reset after the answer: keep what arrived before it.
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let _ = tcp.write_all(request.as_bytes()).await;
        answers.push(read_until_closed(&mut tcp).await);
    }
    let statuses: Vec<&str> = answers
        .iter()
        .map(|a| a.split_whitespace().nth(1).unwrap_or("none"))
        .collect();
    // The burst is twice the rate: two at once, then one a second.
    assert_eq!(statuses[..2], ["200", "200"], "{answers:?}");
    let refused = answers
        .iter()
        .find(|a| a.starts_with("HTTP/1.1 429 "))
        .unwrap_or_else(|| panic!("no 429 in {answers:?}"));
    let (head, body) = refused.split_once("\r\n\r\n").expect("head and body");
    assert!(head.contains("Retry-After: 1"), "{head}");
    assert_eq!(json_body(body)["error"]["code"], "too_many_requests");
    server.stop().await;
}

/// Connections a slow peer leaves hanging: partial request lines and
/// headers, nothing at all, and an idle keep-alive after one request.
async fn hanging_connections(addr: std::net::SocketAddr) -> Vec<TcpStream> {
    let mut hanging = Vec::new();
    for partial in [
        "GE",
        "GET /healthz HTTP/1.1\r\n",
        "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a",
        "POST /api/personas HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n",
        "",
    ] {
        let mut tcp = TcpStream::connect(addr).await.expect("connect");
        tcp.write_all(partial.as_bytes()).await.expect("write");
        hanging.push(tcp);
    }
    let mut idle = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get_on(&mut idle, addr, "/healthz").await, 200);
    hanging.push(idle);
    hanging
}

#[tokio::test]
async fn slow_and_idle_connections_are_closed_at_the_header_timeout() {
    let header_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(|c| c.limits.header_timeout = header_timeout).await;
    let opened = Instant::now();
    let hanging = hanging_connections(server.addr).await;
    let closed = futures_util::future::join_all(hanging.into_iter().map(|mut tcp| async move {
        read_until_closed(&mut tcp).await;
    }));
    closed.await;
    assert!(opened.elapsed() >= header_timeout, "not before the timeout");
    // The server is fine.
    let (status, _) = http_get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn half_open_connections_do_not_hold_up_a_drain() {
    let drain_timeout = Duration::from_millis(200);
    let server = TestServer::start_with(|c| {
        c.limits.header_timeout = Duration::from_secs(600);
        c.drain_timeout = drain_timeout;
    })
    .await;
    let mut hanging = hanging_connections(server.addr).await;
    let TestServer {
        handle,
        run,
        db_dir,
        ..
    } = server;
    handle.drain();
    tokio::time::timeout(drain_timeout + Duration::from_secs(3), run)
        .await
        .expect("the server stops although connections hang")
        .expect("server task")
        .expect("server exits cleanly");
    for tcp in &mut hanging {
        read_until_closed(tcp).await;
    }
    std::fs::remove_dir_all(db_dir).ok();
}

const ACCOUNT: &str = voxgate_testkit::ACCOUNT_SID;
const TWILIO_TOKEN: &str = "auth-token-abuse-77f1";
const PUBLIC: &str = "https://voice.example.com";

async fn outbound_server(
    fake: &FakeTwilio,
    tune: impl FnOnce(&mut voxgate_server::config::Config),
) -> TestServer {
    let twilio = TwilioConfig {
        account_sid: Some(ACCOUNT.to_owned()),
        auth_token: Some(Secret::new(TWILIO_TOKEN)),
        base_url: BaseUrl::parse(&fake.base_url()).expect("the fake's URL"),
    };
    TestServer::start_with(|c| {
        c.public_url = Some(PublicUrl::parse(PUBLIC).expect("url"));
        c.twilio = twilio;
        tune(c);
    })
    .await
}

async fn place_call(server: &TestServer, to: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let body = json!({"to": to, "from": "+14155550100"}).to_string();
    let mut request = json_request(server.addr, "POST", "/api/calls", &body);
    for (name, value) in headers {
        request = with_header(request, name, value);
    }
    let (status, _, body) = http_exchange(server.addr, request).await;
    (status, json_body(&body))
}

#[tokio::test]
async fn outbound_calls_are_held_to_the_prefixes_and_the_rate() {
    let fake = FakeTwilio::start(ACCOUNT, TWILIO_TOKEN).await;
    let server = outbound_server(&fake, |c| {
        c.outbound.allowed_prefixes = vec!["+1".into()];
        c.outbound.max_per_minute = 2;
    })
    .await;
    let destination = r#"voxgate_limited_total{limit="outbound_destination"}"#;
    let rate = r#"voxgate_limited_total{limit="outbound_rate"}"#;
    let (destination_before, rate_before) = (
        metric(server.addr, destination).await,
        metric(server.addr, rate).await,
    );

    let (status, body) = place_call(&server, "+44 20 7946 0000", &[]).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "forbidden");
    assert!(fake.requests().is_empty(), "Twilio was not asked");
    for _ in 0..2 {
        let (status, body) = place_call(&server, "+1 415 555 0199", &[]).await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = place_call(&server, "+1 415 555 0199", &[]).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    // Refused destinations do not use up the rate.
    let (status, _) = place_call(&server, "+33 1 23 45 67 89", &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        fake.requests().len(),
        2,
        "only the allowed calls reached Twilio"
    );
    assert_eq!(
        metric(server.addr, destination).await - destination_before,
        2.0
    );
    assert_eq!(metric(server.addr, rate).await - rate_before, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn outbound_calls_need_the_admin_token_when_one_is_set() {
    const ADMIN: &str = "admin-token-outbound-9a9a";
    let fake = FakeTwilio::start(ACCOUNT, TWILIO_TOKEN).await;
    let server = outbound_server(&fake, |c| {
        c.access.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    for headers in [
        &[][..],
        &[("Authorization", "Bearer not-the-admin-token")][..],
    ] {
        let (status, body) = place_call(&server, "+14155550199", headers).await;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    assert!(fake.requests().is_empty(), "Twilio was not asked");
    let bearer = format!("Bearer {ADMIN}");
    let (status, body) = place_call(&server, "+14155550199", &[("Authorization", &bearer)]).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(fake.requests().len(), 1);
    server.stop().await;
}

/// Counts WARN events whose message contains `needle`, on the thread it is
/// the default for (the test's, where the server's tasks also run).
struct WarnCounter {
    needle: &'static str,
    count: Arc<AtomicUsize>,
}

struct WarnMessage(String);

impl tracing::field::Visit for WarnMessage {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for WarnCounter {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        if *event.metadata().level() != tracing::Level::WARN {
            return;
        }
        let mut message = WarnMessage(String::new());
        event.record(&mut message);
        if message.0.contains(self.needle) {
            self.count.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn a_flood_of_unknown_carrier_events_is_counted_and_logged_once() {
    const FLOOD: usize = 200;
    let warnings = Arc::new(AtomicUsize::new(0));
    let _log = tracing::subscriber::set_default(WarnCounter {
        needle: "ignoring unknown carrier event",
        count: warnings.clone(),
    });
    let server = TestServer::start().await;
    let series = r#"voxgate_carrier_unknown_events_total{carrier="twilio"}"#;
    let before = metric(server.addr, series).await;
    let mut stream = connect(server.addr, "/stream").await;
    let mut caller = TwilioCaller::new("unknownflood1");
    send_text(&mut stream, caller.connected()).await;
    send_text(
        &mut stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    for i in 0..FLOOD {
        let frame = json!({"event": format!("novelty-{i}"), "sequenceNumber": "9", "streamSid": caller.stream_sid});
        send_text(&mut stream, frame.to_string()).await;
    }
    // Still a call: `stop` ends it normally.
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));
    assert_eq!(metric(server.addr, series).await - before, FLOOD as f64);
    assert_eq!(warnings.load(Ordering::SeqCst), 1, "logged once per call");
    let record = server.record(&caller.call_sid).await;
    assert_eq!(record["disposition"], "completed", "{record}");
    server.stop().await;
}
