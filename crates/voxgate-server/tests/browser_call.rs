//! Calls from a browser on `/browser-stream`: JSON control, binary PCM16
//! audio, the call's own events, hang-up from either side, and the call cap.

mod common;

use common::{TestServer, metric};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use voxgate_testkit::{
    Client, close_code, connect, next_json, next_of_type, refused_upgrade_status, send_text,
};

/// A browser connected and greeted.
async fn open_browser(server: &TestServer) -> Client {
    let mut browser = connect(server.addr, "/browser-stream").await;
    let hello = next_json(&mut browser).await;
    assert_eq!(hello["type"], "connection_established", "{hello}");
    browser
}

/// Sends `start` and returns the `call.started` the browser gets.
async fn start_call(browser: &mut Client, persona: &str) -> Value {
    send_text(
        browser,
        json!({"type": "start", "persona": persona}).to_string(),
    )
    .await;
    let started = next_json(browser).await;
    assert_eq!(started["type"], "call.started", "{started}");
    started
}

fn call_id(started: &Value) -> String {
    started["call_id"].as_str().expect("a call id").to_owned()
}

async fn send_audio(browser: &mut Client, bytes: usize) {
    browser
        .send(Message::binary(vec![0u8; bytes]))
        .await
        .expect("send audio");
}

/// Pings and expects the very next message to be the pong.
async fn assert_pong_next(browser: &mut Client) {
    send_text(browser, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(browser).await, json!({"type": "pong"}));
}

/// Asserts the next message is an `error` with `code`.
async fn assert_error(browser: &mut Client, code: &str) {
    let error = next_json(browser).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["code"], code, "{error}");
}

fn bad_input_series(kind: &str) -> String {
    format!(r#"voxgate_bad_input_total{{endpoint="browser_stream",kind="{kind}"}}"#)
}

/// Hangs up from the browser and checks the call ended `completed`.
async fn hang_up(browser: &mut Client) {
    send_text(browser, r#"{"type":"hangup"}"#).await;
    let ended = next_json(browser).await;
    assert_eq!(ended["type"], "call.status_changed", "{ended}");
    assert_eq!(ended["disposition"], "completed", "{ended}");
    assert_eq!(close_code(browser).await, Some(1000));
}

#[tokio::test]
async fn a_browser_is_greeted_and_answered_with_pong() {
    let server = TestServer::start().await;
    let mut browser = connect(server.addr, "/browser-stream").await;
    let hello = next_json(&mut browser).await;
    assert_eq!(hello["type"], "connection_established");
    assert!(hello["session_id"].is_string(), "{hello}");
    assert_pong_next(&mut browser).await;
    drop(browser);
    server.stop().await;
}

#[tokio::test]
async fn audio_before_start_is_refused_with_not_started() {
    let server = TestServer::start().await;
    let series = bad_input_series("not_started");
    let before = metric(server.addr, &series).await;
    let mut browser = open_browser(&server).await;
    send_audio(&mut browser, 640).await;
    assert_error(&mut browser, "not_started").await;
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_eq!(server.handle.active_calls(), 0);
    assert_pong_next(&mut browser).await;
    drop(browser);
    server.stop().await;
}

#[tokio::test]
async fn start_announces_the_call_to_the_browser() {
    let server = TestServer::start().await;
    let mut browser = open_browser(&server).await;
    let started = start_call(&mut browser, "support").await;
    assert!(call_id(&started).starts_with("BR"), "{started}");
    assert_eq!(started["carrier"], "browser");
    assert_eq!(started["config"]["persona"], "support");
    assert_eq!(server.handle.active_calls(), 1);
    hang_up(&mut browser).await;
    server.stop().await;
}

#[tokio::test]
async fn whole_pcm16_frames_are_accepted_silently() {
    let server = TestServer::start().await;
    let mut browser = open_browser(&server).await;
    start_call(&mut browser, "support").await;
    for _ in 0..25 {
        send_audio(&mut browser, 640).await;
    }
    // Nothing was said about the audio: the pong is the next message.
    assert_pong_next(&mut browser).await;
    assert_eq!(server.handle.active_calls(), 1);
    hang_up(&mut browser).await;
    server.stop().await;
}

#[tokio::test]
async fn odd_length_audio_is_refused_and_the_call_continues() {
    let server = TestServer::start().await;
    let series = bad_input_series("invalid_audio");
    let before = metric(server.addr, &series).await;
    let mut browser = open_browser(&server).await;
    let started = start_call(&mut browser, "support").await;
    send_audio(&mut browser, 641).await;
    assert_error(&mut browser, "invalid_audio").await;
    assert_eq!(metric(server.addr, &series).await - before, 1.0);

    send_audio(&mut browser, 640).await;
    assert_pong_next(&mut browser).await;
    assert_eq!(server.handle.active_calls(), 1);
    hang_up(&mut browser).await;
    let record = server.record(&call_id(&started)).await;
    assert_eq!(record["disposition"], "completed");
    server.stop().await;
}

#[tokio::test]
async fn a_second_start_is_refused_with_already_started() {
    let server = TestServer::start().await;
    let series = bad_input_series("already_started");
    let before = metric(server.addr, &series).await;
    let mut browser = open_browser(&server).await;
    start_call(&mut browser, "support").await;
    send_text(&mut browser, r#"{"type":"start","persona":"other"}"#).await;
    assert_error(&mut browser, "already_started").await;
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_eq!(server.handle.active_calls(), 1);
    hang_up(&mut browser).await;
    server.stop().await;
}

#[tokio::test]
async fn config_over_the_persona_limits_is_refused_and_the_call_goes_on() {
    use voxgate_core::persona::MAX_INSTRUCTIONS_CHARS;
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    next_of_type(&mut monitor, "connection_established").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut monitor, "subscribed").await;

    let long = "x".repeat(MAX_INSTRUCTIONS_CHARS + 1);
    let mut browser = open_browser(&server).await;
    send_text(
        &mut browser,
        json!({"type": "start", "instructions": long}).to_string(),
    )
    .await;
    assert_error(&mut browser, "invalid_field").await;
    let id = call_id(&start_call(&mut browser, "support").await);
    next_of_type(&mut monitor, "call.started").await;

    send_text(
        &mut browser,
        json!({"type": "config", "instructions": long}).to_string(),
    )
    .await;
    assert_error(&mut browser, "invalid_field").await;
    assert_pong_next(&mut browser).await;
    send_text(&mut browser, r#"{"type":"config","greeting":"Hello"}"#).await;
    let updated = next_of_type(&mut monitor, "call.config_updated").await;
    assert_eq!(updated["call_id"], id.as_str());
    assert_eq!(
        updated["config"],
        json!({"persona": "support", "greeting": "Hello"}),
        "nothing of the refused config was applied"
    );

    hang_up(&mut browser).await;
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn config_mid_call_is_published_to_monitors() {
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    next_of_type(&mut monitor, "connection_established").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut monitor, "subscribed").await;

    let mut browser = open_browser(&server).await;
    let id = call_id(&start_call(&mut browser, "support").await);
    let seen = next_of_type(&mut monitor, "call.started").await;
    assert_eq!(seen["call_id"], id.as_str());

    send_text(&mut browser, r#"{"type":"config","greeting":"Hello"}"#).await;
    let updated = next_of_type(&mut monitor, "call.config_updated").await;
    assert_eq!(updated["call_id"], id.as_str());
    assert_eq!(updated["config"]["persona"], "support");
    assert_eq!(updated["config"]["greeting"], "Hello");

    hang_up(&mut browser).await;
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn hangup_ends_the_call_completed_and_closes_1000() {
    let server = TestServer::start().await;
    let mut browser = open_browser(&server).await;
    let id = call_id(&start_call(&mut browser, "support").await);

    send_text(&mut browser, r#"{"type":"hangup"}"#).await;
    let ended = next_json(&mut browser).await;
    assert_eq!(ended["type"], "call.status_changed", "{ended}");
    assert_eq!(ended["call_id"], id.as_str());
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["disposition"], "completed");
    assert_eq!(close_code(&mut browser).await, Some(1000));

    let record = server.record(&id).await;
    assert_eq!(record["persona"], "support");
    assert_eq!(record["disposition"], "completed");
    server.stop().await;
}

#[tokio::test]
async fn a_dropped_browser_socket_records_dropped() {
    let server = TestServer::start().await;
    let mut browser = open_browser(&server).await;
    let id = call_id(&start_call(&mut browser, "support").await);
    send_audio(&mut browser, 640).await;
    drop(browser);

    server
        .eventually("the call ends", |h| h.active_calls() == 0)
        .await;
    let record = server.record(&id).await;
    assert_eq!(record["disposition"], "dropped");
    server.stop().await;
}

#[tokio::test]
async fn a_monitor_hangup_ends_a_browser_call() {
    let server = TestServer::start().await;
    let mut browser = open_browser(&server).await;
    let id = call_id(&start_call(&mut browser, "support").await);

    let mut monitor = connect(server.addr, "/events").await;
    next_of_type(&mut monitor, "connection_established").await;
    send_text(
        &mut monitor,
        json!({"type": "hangup", "call_id": id}).to_string(),
    )
    .await;

    let ended = next_json(&mut browser).await;
    assert_eq!(ended["type"], "call.status_changed", "{ended}");
    assert_eq!(ended["call_id"], id.as_str());
    assert_eq!(ended["disposition"], "hangup");
    assert_eq!(close_code(&mut browser).await, Some(1000));
    let record = server.record(&id).await;
    assert_eq!(record["disposition"], "hangup");
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn past_the_call_cap_new_call_sockets_get_503_until_a_slot_frees() {
    let server = TestServer::start_with(|config| config.max_concurrent_calls = 1).await;
    let browser_refused =
        r#"voxgate_websocket_refused_total{endpoint="browser_stream",reason="capacity"}"#;
    let stream_refused = r#"voxgate_websocket_refused_total{endpoint="stream",reason="capacity"}"#;
    let browser_before = metric(server.addr, browser_refused).await;
    let stream_before = metric(server.addr, stream_refused).await;

    let mut first = open_browser(&server).await;
    start_call(&mut first, "support").await;
    assert_eq!(
        refused_upgrade_status(server.addr, "/browser-stream").await,
        503
    );
    assert_eq!(refused_upgrade_status(server.addr, "/stream").await, 503);
    assert_eq!(
        metric(server.addr, browser_refused).await - browser_before,
        1.0
    );
    assert_eq!(
        metric(server.addr, stream_refused).await - stream_before,
        1.0
    );

    hang_up(&mut first).await;
    let mut next = open_browser(&server).await;
    start_call(&mut next, "support").await;
    hang_up(&mut next).await;
    server.stop().await;
}
