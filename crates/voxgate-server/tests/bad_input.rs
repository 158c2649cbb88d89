//! Bad input is contained: each malformed frame gets an `error` message or a
//! close with a fitting code, is counted in `voxgate_bad_input_total`, and
//! never takes down the process or another call.

mod common;

use common::{TestServer, http_get, metric};
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use voxgate_core::ids::CallSid;
use voxgate_testkit::{
    Client, TwilioCaller, close_code, connect, next_json, send_text, ulaw_silence_frame,
};

/// The `voxgate_bad_input_total` series for one endpoint and kind.
fn bad_input_series(endpoint: &str, kind: &str) -> String {
    format!(r#"voxgate_bad_input_total{{endpoint="{endpoint}",kind="{kind}"}}"#)
}

/// Rewrites one frame the testkit wrote, to break it in a precise way.
fn tamper(frame: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(frame).expect("the testkit writes JSON");
    edit(&mut value);
    value.to_string()
}

async fn wait_live(server: &TestServer, call_sid: &str) {
    let id = CallSid::new(call_sid).expect("valid call id");
    server
        .eventually(&format!("{call_sid} is live"), |h| {
            h.app_state().registry.get(&id).is_some()
        })
        .await;
}

async fn assert_healthy(server: &TestServer) {
    assert_eq!(
        http_get(server.addr, "/healthz").await,
        (200, "ok".to_owned()),
        "the process still answers /healthz"
    );
}

/// A Twilio stream that has sent `connected` and `start` and is live.
async fn started_call(server: &TestServer, tag: &str) -> (TwilioCaller, Client) {
    let mut caller = TwilioCaller::new(tag);
    let mut client = connect(server.addr, "/stream").await;
    send_text(&mut client, caller.connected()).await;
    send_text(
        &mut client,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    wait_live(server, &caller.call_sid).await;
    (caller, client)
}

/// A well-behaved call, live before the bad one and finished after it.
struct GoodCall {
    caller: TwilioCaller,
    client: Client,
}

impl GoodCall {
    async fn start(server: &TestServer, tag: &str) -> GoodCall {
        let (caller, client) = started_call(server, tag).await;
        GoodCall { caller, client }
    }

    /// Sends more audio and `stop`, and checks the call ended `completed`.
    async fn finish(mut self, server: &TestServer) {
        for _ in 0..5 {
            send_text(&mut self.client, self.caller.media(&ulaw_silence_frame())).await;
        }
        send_text(&mut self.client, self.caller.stop()).await;
        assert_eq!(close_code(&mut self.client).await, Some(1000));
        let record = server.record(&self.caller.call_sid).await;
        assert_eq!(
            record["disposition"], "completed",
            "the well-behaved call was not harmed: {record}"
        );
    }
}

#[tokio::test]
async fn non_json_after_start_closes_1007_and_records_an_error() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "json");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodjson01").await;

    let (_caller, mut bad) = started_call(&server, "badjson01").await;
    send_text(&mut bad, "this is not json {").await;
    assert_eq!(close_code(&mut bad).await, Some(1007));

    let record = server.record("CAbadjson01").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("not a JSON object"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn invalid_base64_media_closes_1007() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "base64");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodb64001").await;

    let (mut caller, mut bad) = started_call(&server, "badb64001").await;
    let frame = tamper(&caller.media(&ulaw_silence_frame()), |v| {
        v["media"]["payload"] = json!("!!! not base64 !!!");
    });
    send_text(&mut bad, frame).await;
    assert_eq!(close_code(&mut bad).await, Some(1007));

    let record = server.record("CAbadb64001").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("base64"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_field_of_the_wrong_type_closes_1007() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "field");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodfield01").await;

    let (mut caller, mut bad) = started_call(&server, "badfield01").await;
    let frame = tamper(&caller.media(&ulaw_silence_frame()), |v| {
        v["media"]["chunk"] = json!({"n": 1});
    });
    send_text(&mut bad, frame).await;
    assert_eq!(close_code(&mut bad).await, Some(1007));

    let record = server.record("CAbadfield01").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("media.chunk"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn media_before_start_closes_1008() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "out_of_order");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodorder01").await;

    let mut caller = TwilioCaller::new("badorder01");
    let mut bad = connect(server.addr, "/stream").await;
    send_text(&mut bad, caller.connected()).await;
    send_text(&mut bad, caller.media(&ulaw_silence_frame())).await;
    assert_eq!(close_code(&mut bad).await, Some(1008));

    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_eq!(
        server.handle.active_calls(),
        1,
        "only the good call is live"
    );
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_different_stream_sid_closes_1008() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "stream_sid");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodsid001").await;

    let (mut caller, mut bad) = started_call(&server, "badsid001").await;
    let frame = tamper(&caller.media(&ulaw_silence_frame()), |v| {
        v["streamSid"] = json!("MZsomeoneelse");
    });
    send_text(&mut bad, frame).await;
    assert_eq!(close_code(&mut bad).await, Some(1008));

    let record = server.record("CAbadsid001").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("MZsomeoneelse"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_binary_frame_on_stream_closes_1003() {
    let server = TestServer::start().await;
    let series = bad_input_series("stream", "binary");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodbin001").await;

    let (_caller, mut bad) = started_call(&server, "badbin001").await;
    bad.send(Message::binary(vec![0u8; 160]))
        .await
        .expect("send a binary frame");
    assert_eq!(close_code(&mut bad).await, Some(1003));

    let record = server.record("CAbadbin001").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("binary"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_frame_over_the_size_limit_on_stream_closes_1009() {
    let server = TestServer::start_with(|config| config.ws.max_message_bytes = 4096).await;
    let series = bad_input_series("stream", "too_large");
    let before = metric(server.addr, &series).await;
    let good = GoodCall::start(&server, "goodbig001").await;

    let (mut caller, mut bad) = started_call(&server, "badbig001").await;
    // 7,500 bytes of audio is 10,000 characters of base64.
    let frame = caller.media(&[0xFF; 7_500]);
    assert!(frame.len() > 10_000);
    send_text(&mut bad, frame).await;
    assert_eq!(close_code(&mut bad).await, Some(1009));

    let record = server.record("CAbadbig001").await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("an end reason");
    assert!(reason.contains("size limit"), "end_reason: {reason}");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    assert_healthy(&server).await;
    good.finish(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn every_malformed_monitor_frame_gets_its_error_code_and_the_connection_lives_on() {
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    assert_eq!(
        next_json(&mut monitor).await["type"],
        "connection_established"
    );

    let text_cases = [
        ("this is not json {", "invalid_json"),
        ("[1,2]", "invalid_json"),
        (r#"{"call_id":"*"}"#, "missing_type"),
        (r#"{"type":"dance"}"#, "unknown_type"),
        (r#"{"type":"subscribe","call_id":5}"#, "invalid_field"),
        (
            r#"{"type":"hangup","call_id":"CAnotthere"}"#,
            "call_not_found",
        ),
    ];
    for (frame, code) in text_cases {
        let series = bad_input_series("events", code);
        let before = metric(server.addr, &series).await;
        send_text(&mut monitor, frame).await;
        let error = next_json(&mut monitor).await;
        assert_eq!(error["type"], "error", "answer to {frame}: {error}");
        assert_eq!(error["code"], code, "answer to {frame}: {error}");
        assert!(error["message"].is_string(), "answer to {frame}: {error}");
        assert_eq!(
            metric(server.addr, &series).await - before,
            1.0,
            "{series} after {frame}"
        );
    }

    let series = bad_input_series("events", "binary_not_supported");
    let before = metric(server.addr, &series).await;
    monitor
        .send(Message::binary(vec![1u8, 2, 3]))
        .await
        .expect("send a binary frame");
    let error = next_json(&mut monitor).await;
    assert_eq!(error["type"], "error", "answer to a binary frame: {error}");
    assert_eq!(error["code"], "binary_not_supported");
    assert_eq!(metric(server.addr, &series).await - before, 1.0);

    send_text(&mut monitor, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(&mut monitor).await, json!({"type": "pong"}));
    assert_healthy(&server).await;
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn an_oversized_monitor_frame_closes_1009_and_spares_other_monitors() {
    let server = TestServer::start_with(|config| config.ws.max_message_bytes = 4096).await;
    let series = bad_input_series("events", "too_large");
    let before = metric(server.addr, &series).await;
    let mut bystander = connect(server.addr, "/events").await;
    next_json(&mut bystander).await;

    let mut monitor = connect(server.addr, "/events").await;
    assert_eq!(
        next_json(&mut monitor).await["type"],
        "connection_established"
    );
    let huge = json!({"type": "config", "instructions": "x".repeat(10_000)}).to_string();
    send_text(&mut monitor, huge).await;
    assert_eq!(close_code(&mut monitor).await, Some(1009));

    assert_eq!(metric(server.addr, &series).await - before, 1.0);
    send_text(&mut bystander, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(&mut bystander).await, json!({"type": "pong"}));
    assert_healthy(&server).await;
    drop(bystander);
    server.stop().await;
}
