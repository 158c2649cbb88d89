//! A monitor that stops reading never slows a call: real Twilio calls run
//! over TCP while a monitor's socket is stalled; afterwards the monitor is
//! told exactly how many events it lost.

mod common;

use std::time::Duration;

use axum::extract::ws::Message;
use common::TestServer;
use common::memory::pair;
use voxgate_server::ws;
use voxgate_testkit::{TwilioCaller, close_code, connect, send_text, ulaw_silence_frame};

const CALLS: usize = 200;

async fn one_call(server: &TestServer, tag: &str) {
    let mut caller = TwilioCaller::new(tag);
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(&mut twilio, caller.connected()).await;
    send_text(
        &mut twilio,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    for _ in 0..10 {
        send_text(&mut twilio, caller.media(&ulaw_silence_frame())).await;
    }
    send_text(&mut twilio, caller.stop()).await;
    assert_eq!(close_code(&mut twilio).await, Some(1000));
}

#[tokio::test]
async fn a_stalled_monitor_loses_events_is_told_how_many_and_slows_nothing() {
    let server = TestServer::start_with(|c| {
        c.events_buffer = 16;
        c.connection_queue = 8;
    })
    .await;
    // The monitor's socket takes one frame, then nobody reads it.
    let (socket, mut monitor) = pair(1);
    let state = server.handle.app_state();
    let slot = common::events_slot(&state);
    let handler = tokio::spawn(ws::run_events(socket, state, slot));
    monitor
        .send_text(r#"{"type":"subscribe","call_id":"*"}"#)
        .await;

    // Every call completes while the monitor is stalled (each step is
    // bounded by the test kit's timeouts).
    for i in 0..CALLS {
        one_call(&server, &format!("slow{i:04}")).await;
    }
    server
        .eventually("all calls ended", |h| h.active_calls() == 0)
        .await;

    // The monitor reads again; one more call flushes the lag notice.
    let reader = tokio::spawn(async move {
        let mut call_events = 0_u64;
        let mut missed = 0_u64;
        let mut last_call_ended = false;
        while !last_call_ended {
            let Some(message) = monitor.recv().await else {
                break;
            };
            let Message::Text(text) = message else {
                continue;
            };
            let value: serde_json::Value = serde_json::from_str(text.as_str()).expect("JSON");
            match value["type"].as_str() {
                Some("lagged") => missed += value["missed"].as_u64().expect("missed"),
                Some("call.started" | "call.status_changed") => {
                    if value["call_id"] == "CAslowlast" {
                        last_call_ended |= value["type"] == "call.status_changed";
                    } else {
                        call_events += 1;
                    }
                }
                _ => {}
            }
        }
        (call_events, missed, monitor)
    });
    one_call(&server, "slowlast").await;
    let (call_events, missed, monitor) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("monitor catches up")
        .expect("reader");

    assert!(missed > 0, "a stalled monitor must lag");
    assert_eq!(
        call_events + missed,
        2 * CALLS as u64,
        "every event was either delivered or counted as missed"
    );
    drop(monitor);
    handler.await.expect("monitor handler ends");
    server.stop().await;
}
