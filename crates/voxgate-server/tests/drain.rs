//! Graceful drain: readiness turns 503, new calls are refused before the
//! upgrade, live calls go on until they end or the drain timeout passes,
//! records are flushed, and the server exits cleanly.

mod common;

use std::time::Duration;

use common::{TestServer, http_get, metric};
use voxgate_store::Store;
use voxgate_testkit::{
    TwilioCaller, close_code, connect, refused_upgrade_status, send_text, ulaw_silence_frame,
};

async fn stored(db_dir: &std::path::Path, call_sid: &str) -> voxgate_store::CallRecord {
    let store = Store::connect(&db_dir.join("voxgate.db").display().to_string())
        .await
        .expect("open the server's database");
    let id = voxgate_core_id(call_sid);
    store
        .get_call(&id)
        .await
        .expect("query")
        .expect("record exists")
}

fn voxgate_core_id(raw: &str) -> voxgate_core::ids::CallSid {
    voxgate_core::ids::CallSid::new(raw).expect("valid id")
}

#[tokio::test]
async fn draining_refuses_new_calls_and_waits_for_live_ones() {
    let server = TestServer::start_with(|c| c.drain_timeout = Duration::from_secs(30)).await;
    let mut caller = TwilioCaller::new("drain001");
    let mut live = connect(server.addr, "/stream").await;
    send_text(
        &mut live,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    server
        .eventually("call live", |h| h.active_calls() == 1)
        .await;

    let refused_before = metric(
        server.addr,
        r#"voxgate_websocket_refused_total{endpoint="stream",reason="draining"}"#,
    )
    .await;
    server.handle.drain();
    let (status, body) = http_get(server.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""draining":true"#), "{body}");
    assert_eq!(refused_upgrade_status(server.addr, "/stream").await, 503);
    assert_eq!(
        refused_upgrade_status(server.addr, "/browser-stream").await,
        503
    );
    let refused_after = metric(
        server.addr,
        r#"voxgate_websocket_refused_total{endpoint="stream",reason="draining"}"#,
    )
    .await;
    assert_eq!(refused_after - refused_before, 1.0);

    // The live call is untouched by the drain and ends on its own terms.
    for _ in 0..20 {
        send_text(&mut live, caller.media(&ulaw_silence_frame())).await;
    }
    assert!(!server.run.is_finished(), "server waits for the live call");
    send_text(&mut live, caller.stop()).await;
    assert_eq!(close_code(&mut live).await, Some(1000));

    let run = tokio::time::timeout(Duration::from_secs(10), server.run)
        .await
        .expect("server exits once the last call ended")
        .expect("server task");
    assert!(run.is_ok(), "{run:?}");
    let record = stored(&server.db_dir, "CAdrain001").await;
    assert_eq!(record.disposition.map(|d| d.as_str()), Some("completed"));
    std::fs::remove_dir_all(&server.db_dir).ok();
}

#[tokio::test]
async fn calls_still_live_at_the_drain_deadline_end_as_shutdown() {
    let server = TestServer::start_with(|c| c.drain_timeout = Duration::from_millis(300)).await;
    let mut monitor = connect(server.addr, "/events").await;
    let mut caller = TwilioCaller::new("drain002");
    let mut live = connect(server.addr, "/stream").await;
    send_text(
        &mut live,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    server
        .eventually("call live", |h| h.active_calls() == 1)
        .await;

    server.handle.drain();
    // The call never ends by itself; the deadline ends it.
    assert_eq!(close_code(&mut live).await, Some(1001));
    assert_eq!(close_code(&mut monitor).await, Some(1001));
    let run = tokio::time::timeout(Duration::from_secs(10), server.run)
        .await
        .expect("server exits after the drain deadline")
        .expect("server task");
    assert!(run.is_ok(), "{run:?}");
    let record = stored(&server.db_dir, "CAdrain002").await;
    assert_eq!(record.disposition.map(|d| d.as_str()), Some("shutdown"));
    assert!(record.ended_at_ms.is_some());
    std::fs::remove_dir_all(&server.db_dir).ok();
}
