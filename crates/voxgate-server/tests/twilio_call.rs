//! A simulated Twilio caller against a real server on port 0.

mod common;

use common::{TestServer, http_get, metric};
use voxgate_testkit::{
    TwilioCaller, close_code, connect, next_json, next_of_type, send_text, ulaw_silence_frame,
};

#[tokio::test]
async fn a_full_call_is_announced_tracked_recorded_and_ended() {
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    let hello = next_json(&mut monitor).await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["ping_interval_ms"], 30_000);
    assert_eq!(hello["idle_timeout_ms"], 60_000);
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    assert_eq!(next_json(&mut monitor).await["type"], "subscribed");

    let mut caller = TwilioCaller::new("full0001");
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(&mut twilio, caller.connected()).await;
    send_text(
        &mut twilio,
        caller.start("+1 (415) 555-0100", "415.555.0199", "sales"),
    )
    .await;

    let started = next_of_type(&mut monitor, "call.started").await;
    assert_eq!(started["call_id"], "CAfull0001");
    assert_eq!(started["stream_sid"], "MZfull0001");
    assert_eq!(started["carrier"], "twilio");
    assert_eq!(started["from"], "+14155550100");
    assert_eq!(started["to"], "+14155550199");
    assert_eq!(started["config"]["persona"], "sales");
    server
        .eventually("call is live", |h| h.active_calls() == 1)
        .await;
    // The gauge is process-wide and other tests run beside this one; the
    // exact count back to zero is checked in the single-test churn binary.
    assert!(metric(server.addr, "voxgate_active_calls").await >= 1.0);

    for _ in 0..50 {
        send_text(&mut twilio, caller.media(&ulaw_silence_frame())).await;
    }
    send_text(&mut twilio, caller.mark("greeting-1")).await;
    send_text(&mut twilio, caller.dtmf("5")).await;
    send_text(&mut twilio, caller.stop()).await;

    let ended = next_of_type(&mut monitor, "call.status_changed").await;
    assert_eq!(ended["call_id"], "CAfull0001");
    assert_eq!(ended["status"], "ended");
    assert_eq!(ended["disposition"], "completed");
    assert_eq!(close_code(&mut twilio).await, Some(1000));

    server
        .eventually("call is gone", |h| h.active_calls() == 0)
        .await;
    let record = server.record("CAfull0001").await;
    assert_eq!(record["stream_sid"], "MZfull0001");
    assert_eq!(record["from"], "+14155550100");
    assert_eq!(record["to"], "+14155550199");
    assert_eq!(record["persona"], "sales");
    assert_eq!(record["disposition"], "completed");
    assert_eq!(record["end_reason"], "carrier sent stop");
    assert!(record["duration_ms"].as_i64().expect("duration") >= 0);
    assert!(
        record["started_at"]
            .as_str()
            .expect("rfc3339")
            .ends_with('Z')
    );
    assert!(record["ended_at"].is_string());
    server.stop().await;
}

#[tokio::test]
async fn a_socket_dropped_without_stop_still_ends_and_records_the_call() {
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    send_text(
        &mut monitor,
        r#"{"type":"subscribe","call_id":"CAdrop0001"}"#,
    )
    .await;
    next_of_type(&mut monitor, "subscribed").await;

    let mut caller = TwilioCaller::new("drop0001");
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(
        &mut twilio,
        caller.start("+442071838750", "+14155550199", "default"),
    )
    .await;
    for _ in 0..5 {
        send_text(&mut twilio, caller.media(&ulaw_silence_frame())).await;
    }
    next_of_type(&mut monitor, "call.started").await;
    drop(twilio);

    let ended = next_of_type(&mut monitor, "call.status_changed").await;
    assert_eq!(ended["disposition"], "dropped");
    server
        .eventually("call is gone", |h| h.active_calls() == 0)
        .await;
    let record = server.record("CAdrop0001").await;
    assert_eq!(record["disposition"], "dropped");
    assert_eq!(record["from"], "+442071838750");
    server.stop().await;
}

#[tokio::test]
async fn a_second_stream_for_a_live_call_is_refused_without_harming_the_first() {
    let server = TestServer::start().await;
    let mut caller = TwilioCaller::new("dup00001");
    let mut first = connect(server.addr, "/stream").await;
    send_text(
        &mut first,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    server
        .eventually("first call live", |h| h.active_calls() == 1)
        .await;

    let mut second = connect(server.addr, "/stream").await;
    send_text(
        &mut second,
        caller.clone().start("+14155550100", "+14155550199", "x"),
    )
    .await;
    assert_eq!(close_code(&mut second).await, Some(1008));

    send_text(&mut first, caller.media(&ulaw_silence_frame())).await;
    send_text(&mut first, caller.stop()).await;
    assert_eq!(close_code(&mut first).await, Some(1000));
    let record = server.record("CAdup00001").await;
    assert_eq!(record["disposition"], "completed");
    assert_eq!(record["persona"], "default");
    server.stop().await;
}

#[tokio::test]
async fn unknown_events_are_counted_not_fatal() {
    let server = TestServer::start().await;
    let before = metric(
        server.addr,
        r#"voxgate_carrier_unknown_events_total{carrier="twilio"}"#,
    )
    .await;
    let mut caller = TwilioCaller::new("unk00001");
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(
        &mut twilio,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    send_text(
        &mut twilio,
        r#"{"event":"hologram","streamSid":"MZunk00001","extra":{"a":1}}"#,
    )
    .await;
    send_text(&mut twilio, caller.stop()).await;
    assert_eq!(close_code(&mut twilio).await, Some(1000));
    let record = server.record("CAunk00001").await;
    assert_eq!(record["disposition"], "completed");
    let after = metric(
        server.addr,
        r#"voxgate_carrier_unknown_events_total{carrier="twilio"}"#,
    )
    .await;
    assert_eq!(after - before, 1.0);
    let (status, _) = http_get(server.addr, "/healthz").await;
    assert_eq!(status, 200);
    server.stop().await;
}
