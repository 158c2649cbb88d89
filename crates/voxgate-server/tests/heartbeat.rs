//! Heartbeats on paused time: endpoint handlers driven over in-memory
//! sockets, so the timings asserted are the virtual clock's, exactly.

mod common;

use std::time::Duration;

use axum::extract::ws::Message;
use common::memory::ClientEnd;
use common::{TestServer, memory::pair};
use tokio::time::Instant;
use voxgate_server::ws;
use voxgate_testkit::TwilioCaller;

const PING: Duration = Duration::from_millis(100);
const IDLE: Duration = Duration::from_millis(250);

async fn fast_heartbeat_server() -> TestServer {
    TestServer::start_with(|c| {
        c.ws.heartbeat.ping_interval = PING;
        c.ws.heartbeat.idle_timeout = IDLE;
    })
    .await
}

/// Tokio's timer wheel fires on whole milliseconds, rounding deadlines up.
fn assert_at(actual: Duration, expected: Duration) {
    assert!(
        actual >= expected && actual <= expected + Duration::from_millis(1),
        "expected {expected:?} (+1 ms timer granularity), got {actual:?}"
    );
}

/// Reads until the server closes; returns the close code and when it came.
async fn wait_close(client: &mut ClientEnd) -> (Option<u16>, Instant) {
    loop {
        match client.recv().await {
            Some(Message::Close(frame)) => return (frame.map(|f| f.code), Instant::now()),
            Some(_) => {}
            None => return (None, Instant::now()),
        }
    }
}

#[tokio::test]
async fn a_silent_monitor_is_pinged_then_closed_at_the_idle_timeout() {
    let server = fast_heartbeat_server().await;
    tokio::time::pause();
    let (socket, mut client) = pair(16);
    let t0 = Instant::now();
    let task = {
        let state = server.handle.app_state();
        let slot = common::events_slot(&state);
        tokio::spawn(ws::run_events(socket, state, slot))
    };

    let hello = client.next_json().await;
    assert_eq!(hello["ping_interval_ms"], 100);
    assert_eq!(hello["idle_timeout_ms"], 250);
    let mut pings = Vec::new();
    let close = loop {
        match client.recv().await.expect("open") {
            Message::Ping(_) => pings.push(Instant::now() - t0),
            Message::Close(frame) => break (frame.map(|f| f.code), Instant::now() - t0),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(pings.len(), 2, "{pings:?}");
    assert_at(pings[0], PING);
    assert_at(pings[1], 2 * PING);
    assert_eq!(close.0, Some(4408));
    assert_at(close.1, IDLE);
    task.await.expect("handler ends");
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test]
async fn a_json_ping_counts_as_life() {
    let server = fast_heartbeat_server().await;
    tokio::time::pause();
    let (socket, mut client) = pair(64);
    let t0 = Instant::now();
    let task = {
        let state = server.handle.app_state();
        let slot = common::events_slot(&state);
        tokio::spawn(ws::run_events(socket, state, slot))
    };
    client.next_json().await;

    // Every 200 ms is inside the 250 ms idle timeout: the connection lives.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.send_text(r#"{"type":"ping"}"#).await;
    }
    let last = Instant::now();
    let mut pongs = 0;
    let (code, at) = loop {
        match client.recv().await.expect("open") {
            Message::Text(t) if t.as_str().contains("pong") => pongs += 1,
            Message::Close(frame) => break (frame.map(|f| f.code), Instant::now()),
            _ => {}
        }
    };
    assert_eq!(pongs, 5);
    assert_eq!(code, Some(4408));
    assert_at(at - last, IDLE);
    assert!(at - t0 > Duration::from_secs(1));
    task.await.expect("handler ends");
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_connected() {
    let server = fast_heartbeat_server().await;
    tokio::time::pause();
    let (socket, mut client) = pair(64);
    let task = {
        let state = server.handle.app_state();
        let slot = common::events_slot(&state);
        tokio::spawn(ws::run_events(socket, state, slot))
    };
    client.next_json().await;
    let t0 = Instant::now();
    let mut pings = 0;
    while Instant::now() - t0 < Duration::from_secs(2) {
        match client.recv().await.expect("open") {
            Message::Ping(payload) => {
                pings += 1;
                client
                    .to_server
                    .send(Ok(Message::Pong(payload)))
                    .await
                    .expect("send pong");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(pings >= 19, "pinged every 100 ms for 2 s, got {pings}");
    drop(client);
    task.await.expect("handler ends");
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test]
async fn a_silent_carrier_times_out_and_the_call_ends_with_timeout() {
    let server = fast_heartbeat_server().await;
    let state = server.handle.app_state();
    let mut events = state.bus.subscribe();
    tokio::time::pause();
    let (socket, mut client) = pair(16);
    let slot = state
        .call_slots
        .clone()
        .try_acquire_owned()
        .expect("a call slot");
    let task = tokio::spawn(ws::run_twilio(socket, state.clone(), slot));
    let mut caller = TwilioCaller::new("idle0001");
    client.send_text(&caller.connected()).await;
    client
        .send_text(&caller.start("+14155550100", "+14155550199", "default"))
        .await;
    // The stream's start waits for the store (is the call id new?), and
    // paused time jumps while it does: count from the call's start.
    loop {
        let published = events.recv().await.expect("bus open");
        if published.json.contains("call.started") {
            break;
        }
    }
    let started_at = Instant::now();
    let (code, closed_at) = wait_close(&mut client).await;
    assert_eq!(code, Some(4408));
    assert_at(closed_at - started_at, IDLE);

    let mut ended = None;
    while let Ok(published) = events.try_recv() {
        if published.event.call_id().as_str() == "CAidle0001" && published.json.contains("ended") {
            ended = Some(published.json.clone());
        }
    }
    let ended = ended.expect("call.status_changed published");
    assert!(ended.contains(r#""disposition":"timeout""#), "{ended}");
    task.await.expect("handler ends");
    assert_eq!(server.handle.active_calls(), 0);
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test]
async fn browser_calls_get_the_same_heartbeat() {
    let server = fast_heartbeat_server().await;
    let state = server.handle.app_state();
    tokio::time::pause();
    let (socket, mut client) = pair(16);
    let slot = state.call_slots.clone().try_acquire_owned().expect("slot");
    let task = tokio::spawn(ws::run_browser(socket, state, slot, None));
    assert_eq!(client.next_json().await["type"], "connection_established");
    let t0 = Instant::now();
    let (code, at) = wait_close(&mut client).await;
    assert_eq!(code, Some(4408));
    assert_at(at - t0, IDLE);
    task.await.expect("handler ends");
    tokio::time::resume();
    server.stop().await;
}

#[tokio::test]
async fn over_a_real_socket_pongs_keep_a_client_alive_and_silence_closes_it() {
    use futures_util::StreamExt;
    let server = TestServer::start_with(|c| {
        c.ws.heartbeat.ping_interval = Duration::from_millis(50);
        c.ws.heartbeat.idle_timeout = Duration::from_millis(300);
    })
    .await;
    let mut client = voxgate_testkit::connect(server.addr, "/events").await;
    // Reading lets the client library answer each ping with a pong.
    let mut pings = 0;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let next = tokio::time::timeout(Duration::from_millis(200), client.next()).await;
        if let Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_)))) = next {
            pings += 1;
        }
    }
    assert!(pings >= 10, "pinged every 50 ms, got {pings}");
    // Not reading means no pongs: the server gives up after the idle timeout.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(voxgate_testkit::close_code(&mut client).await, Some(4408));
    server.stop().await;
}
