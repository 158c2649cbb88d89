//! 1,000 rapid connect/disconnect cycles across every WebSocket endpoint
//! leave no call, session, task or connection behind, and every call that
//! started has its record.

mod common;

use std::time::Duration;

use common::{TestServer, http_get, metric};
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;
use voxgate_testkit::{TwilioCaller, connect, next_json, send_text, ulaw_silence_frame};

const CYCLES: usize = 1000;

#[tokio::test]
async fn a_thousand_connect_disconnect_cycles_leave_nothing_behind() {
    let server = TestServer::start_with(|c| {
        c.ws.resume_grace = Duration::from_millis(200);
        // A thousand connections as fast as one address can open them.
        c.limits.connections_per_ip_per_second = 100_000;
    })
    .await;
    let mut twilio_calls = 0;
    for i in 0..CYCLES {
        match i % 4 {
            // A carrier call that starts and then vanishes without `stop`.
            0 => {
                let mut caller = TwilioCaller::new(&format!("churn{i:05}"));
                let mut ws = connect(server.addr, "/stream").await;
                send_text(&mut ws, caller.connected()).await;
                send_text(
                    &mut ws,
                    caller.start("+14155550100", "+14155550199", "default"),
                )
                .await;
                send_text(&mut ws, caller.media(&ulaw_silence_frame())).await;
                twilio_calls += 1;
            }
            // A carrier connection that never starts a call.
            1 => {
                let mut ws = connect(server.addr, "/stream").await;
                send_text(&mut ws, TwilioCaller::new("x").connected()).await;
            }
            // A browser call that starts and drops.
            2 => {
                let mut ws = connect(server.addr, "/browser-stream").await;
                next_json(&mut ws).await;
                send_text(&mut ws, r#"{"type":"start"}"#).await;
                ws.send(Message::binary(vec![0u8; 640]))
                    .await
                    .expect("send");
            }
            // A monitor that subscribes, holds config, and drops.
            _ => {
                let mut ws = connect(server.addr, "/events").await;
                next_json(&mut ws).await;
                send_text(&mut ws, r#"{"type":"subscribe","call_id":"*"}"#).await;
                send_text(&mut ws, r#"{"type":"config","persona":"p"}"#).await;
            }
        }
        // The client socket is dropped here without a close frame.
    }

    server
        .eventually("no live calls", |h| h.active_calls() == 0)
        .await;
    server
        .eventually("no open connections", |h| h.open_connections() == 0)
        .await;
    server
        .eventually("no running tasks", |h| h.running_tasks() == 0)
        .await;
    server
        .eventually("parked sessions expired", |h| h.parked_sessions() == 0)
        .await;
    for endpoint in ["stream", "browser_stream", "events"] {
        let open = metric(
            server.addr,
            &format!(r#"voxgate_websocket_connections{{endpoint="{endpoint}"}}"#),
        )
        .await;
        assert_eq!(open, 0.0, "{endpoint} gauge back to zero");
    }
    assert_eq!(metric(server.addr, "voxgate_active_calls").await, 0.0);

    // Every call that started has its record, ended as dropped.
    server
        .handle
        .flush_records(Duration::from_secs(30))
        .await
        .expect("records flushed");
    let mut seen = 0;
    let mut offset = 0;
    loop {
        let (status, body) = http_get(
            server.addr,
            &format!("/api/calls?limit=500&offset={offset}"),
        )
        .await;
        assert_eq!(status, 200);
        let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let calls = page["calls"].as_array().expect("calls").clone();
        if calls.is_empty() {
            break;
        }
        for call in &calls {
            assert_eq!(call["disposition"], "dropped", "{call}");
            assert!(call["ended_at_ms"].is_i64(), "{call}");
        }
        seen += calls.len();
        offset += calls.len();
    }
    assert_eq!(seen, twilio_calls + CYCLES / 4, "twilio and browser calls");
    server.stop().await;
}
