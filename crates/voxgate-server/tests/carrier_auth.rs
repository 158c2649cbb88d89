//! Carriers prove themselves: signed `/stream` upgrades, the account a
//! stream names, no second life for an ended call's id, and only the media
//! format Twilio sends.

mod common;

use std::time::Duration;

use common::{TestServer, http_exchange, metric};
use serde_json::Value;
use voxgate_providers::Secret;
use voxgate_server::config::PublicUrl;
use voxgate_testkit::{
    Client, TwilioCaller, close_code, connect, connect_signed, send_text, try_connect,
};

const TOKEN: &str = "twilio-auth-token-c4a1";

/// The tests count refusals in the process-wide metrics: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn signature(token: &str, url: &str) -> String {
    voxgate_core::twilio_signature::sign(token, url, [])
}

/// Sends `connected` and `start` for `caller`.
async fn start(stream: &mut Client, caller: &mut TwilioCaller) {
    send_text(stream, caller.connected()).await;
    send_text(
        stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
}

#[tokio::test]
async fn with_an_auth_token_only_signed_stream_upgrades_are_taken() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start_with(|c| c.twilio.auth_token = Some(Secret::new(TOKEN))).await;
    let addr = server.addr;
    let series = r#"voxgate_websocket_refused_total{endpoint="stream",reason="signature"}"#;
    let before = metric(addr, series).await;
    let url = format!("wss://{addr}/stream");
    let wrong_token = signature("another-token", &url);
    let wrong_url = signature(TOKEN, "wss://elsewhere.example/stream");
    let other_path = signature(TOKEN, &format!("wss://{addr}/stream?persona=vip"));
    let cases: [(&str, &[(&str, &str)]); 4] = [
        ("unsigned", &[]),
        (
            "signed with another token",
            &[("x-twilio-signature", &wrong_token)],
        ),
        (
            "signed over another URL",
            &[("x-twilio-signature", &wrong_url)],
        ),
        (
            "signed over another path",
            &[("x-twilio-signature", &other_path)],
        ),
    ];
    for (what, headers) in cases {
        let (status, body) = try_connect(addr, "/stream", headers)
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}: upgraded"));
        assert_eq!(status, 403, "{what}: {body}");
    }
    assert_eq!(metric(addr, series).await - before, 4.0);
    assert_eq!(server.handle.open_connections(), 0);

    let mut stream = connect_signed(addr, "/stream", &url, TOKEN).await;
    let mut caller = TwilioCaller::new("signed0001");
    start(&mut stream, &mut caller).await;
    server
        .eventually("the signed call starts", |h| h.active_calls() == 1)
        .await;
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));
    server.stop().await;
}

#[tokio::test]
async fn a_stream_of_another_account_is_closed() {
    let server = TestServer::start_with(|c| {
        c.twilio.account_sid = Some("AC11111111111111111111111111111111".into());
        c.twilio.auth_token = Some(Secret::new(TOKEN));
    })
    .await;
    let addr = server.addr;
    let mut stream = connect_signed(addr, "/stream", &format!("wss://{addr}/stream"), TOKEN).await;
    let mut caller = TwilioCaller::new("foreign001");
    start(&mut stream, &mut caller).await;
    assert_eq!(close_code(&mut stream).await, Some(1008));
    assert_eq!(server.handle.active_calls(), 0);
    server
        .handle
        .flush_records(Duration::from_secs(10))
        .await
        .expect("flushed");
    let (status, _) = common::http_get(addr, "/api/calls/CAforeign001").await;
    assert_eq!(status, 404, "no record for another account's call");
    server.stop().await;
}

#[tokio::test]
async fn a_public_server_without_an_auth_token_takes_nothing_from_twilio() {
    let _serial = SERIAL.lock().await;
    let server = TestServer::start_with(|c| {
        c.public_url = Some(PublicUrl::parse("https://voice.example.com").expect("url"));
    })
    .await;
    let addr = server.addr;
    for path in ["/twiml", "/twilio/status"] {
        let form = "CallSid=CApublic001&CallStatus=ringing&From=%2B14155550100";
        let (status, _, body) = http_exchange(addr, common::form_request(addr, path, form)).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(
            body.contains("TWILIO_AUTH_TOKEN"),
            "says what to set: {body}"
        );
    }
    let forged = signature("any-token", "wss://voice.example.com/stream");
    for headers in [vec![], vec![("x-twilio-signature", forged.as_str())]] {
        let (status, body) = try_connect(addr, "/stream", &headers)
            .await
            .expect_err("/stream refused");
        assert_eq!(status, 403, "{body}");
    }
    assert_eq!(server.handle.active_calls(), 0);
    server.stop().await;
}

/// The fields of a call's record that must not change once it ended.
fn settled(record: &Value) -> Value {
    serde_json::json!({
        "call_sid": record["call_sid"],
        "disposition": record["disposition"],
        "end_reason": record["end_reason"],
        "started_at": record["started_at"],
        "ended_at": record["ended_at"],
        "started_at_ms": record["started_at_ms"],
        "ended_at_ms": record["ended_at_ms"],
        "duration_ms": record["duration_ms"],
        "stream_sid": record["stream_sid"],
        "from": record["from"],
        "to": record["to"],
        "persona": record["persona"],
    })
}

/// Runs a whole call for `tag` and returns its record.
async fn finished_call(server: &TestServer, tag: &str) -> Value {
    let mut stream = connect(server.addr, "/stream").await;
    let mut caller = TwilioCaller::new(tag);
    start(&mut stream, &mut caller).await;
    server
        .eventually("the call starts", |h| h.active_calls() == 1)
        .await;
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));
    server
        .eventually("the call ends", |h| h.active_calls() == 0)
        .await;
    let record = server.record(&caller.call_sid).await;
    assert_eq!(record["disposition"], "completed", "{record}");
    record
}

/// A new stream reusing `tag`'s call id: closed 1008, no call started.
async fn replay(server: &TestServer, tag: &str) {
    let mut stream = connect(server.addr, "/stream").await;
    let mut caller = TwilioCaller::new(tag);
    start(&mut stream, &mut caller).await;
    assert_eq!(close_code(&mut stream).await, Some(1008));
    assert_eq!(server.handle.active_calls(), 0);
}

#[tokio::test]
async fn an_ended_calls_id_cannot_be_streamed_again() {
    let server = TestServer::start().await;
    let record = finished_call(&server, "replay0001").await;
    assert!(record["ended_at"].is_string(), "{record}");
    assert!(record["ended_at_ms"].is_number(), "{record}");
    replay(&server, "replay0001").await;
    let after = server.record("CAreplay0001").await;
    assert_eq!(
        settled(&after),
        settled(&record),
        "the ended call's record is untouched"
    );
    // Twice, for good measure: nothing accumulates.
    replay(&server, "replay0001").await;
    assert_eq!(
        settled(&server.record("CAreplay0001").await),
        settled(&record)
    );
    server.stop().await;
}

#[tokio::test]
async fn an_ended_calls_id_is_refused_after_a_restart_too() {
    let first = TestServer::start().await;
    let record = finished_call(&first, "restart001").await;
    // Stop the first server but keep its database for the second.
    let database = first.db_dir.join("voxgate.db").display().to_string();
    first.handle.stop();
    tokio::time::timeout(Duration::from_secs(15), first.run)
        .await
        .expect("first server stops in time")
        .expect("server task")
        .expect("first server exits cleanly");

    let second = TestServer::start_with(|c| c.database_url = database.clone()).await;
    assert_eq!(
        settled(&second.record("CArestart001").await),
        settled(&record),
        "the second server reads the first one's records"
    );
    replay(&second, "restart001").await;
    assert_eq!(
        settled(&second.record("CArestart001").await),
        settled(&record)
    );
    // A fresh id is still welcome.
    finished_call(&second, "restart002").await;
    second.stop().await;
    std::fs::remove_dir_all(&first.db_dir).ok();
}

/// A `start` from `caller` with one field of its media format changed.
fn start_with_format(caller: &mut TwilioCaller, field: &str, value: Value) -> String {
    let mut start: Value =
        serde_json::from_str(&caller.start("+14155550100", "+14155550199", "default"))
            .expect("JSON");
    start["start"]["mediaFormat"][field] = value;
    start.to_string()
}

#[tokio::test]
async fn only_mulaw_at_8000_hz_mono_is_taken() {
    let server = TestServer::start().await;
    let edits = [
        ("sampleRate", Value::from(16000)),
        ("encoding", Value::from("audio/x-alaw")),
        ("encoding", Value::from("audio/l16")),
        ("channels", Value::from(2)),
    ];
    for (i, (field, value)) in edits.into_iter().enumerate() {
        let what = format!("{field} {value}");
        let tag = format!("format000{i}");
        let mut stream = connect(server.addr, "/stream").await;
        let mut caller = TwilioCaller::new(&tag);
        send_text(&mut stream, caller.connected()).await;
        send_text(&mut stream, start_with_format(&mut caller, field, value)).await;
        assert_eq!(close_code(&mut stream).await, Some(1003), "{what}");
        assert_eq!(server.handle.active_calls(), 0, "{what}");
    }
    server
        .eventually("every refused stream closed", |h| h.open_connections() == 0)
        .await;
    // The slots came back: Twilio's own format still starts a call.
    finished_call(&server, "format0009").await;
    server.stop().await;
}
