//! `/events` sessions: resumption, job configuration held or applied live,
//! hang-up, and subscription filters.

mod common;

use std::time::Duration;

use common::TestServer;
use voxgate_testkit::{
    Client, TwilioCaller, close_code, connect, next_json, next_of_type, send_text,
};

async fn monitor(server: &TestServer) -> (Client, String) {
    let mut ws = connect(server.addr, "/events").await;
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["type"], "connection_established");
    let id = hello["session_id"].as_str().expect("session id").to_owned();
    (ws, id)
}

async fn start_call(server: &TestServer, tag: &str, persona: &str) -> (Client, TwilioCaller) {
    let mut caller = TwilioCaller::new(tag);
    let mut ws = connect(server.addr, "/stream").await;
    send_text(&mut ws, caller.connected()).await;
    send_text(
        &mut ws,
        caller.start("+14155550100", "+14155550199", persona),
    )
    .await;
    (ws, caller)
}

async fn stop_call(ws: &mut Client, caller: &mut TwilioCaller) {
    send_text(ws, caller.stop()).await;
    assert_eq!(close_code(ws).await, Some(1000));
}

#[tokio::test]
async fn a_reconnecting_monitor_resumes_its_session() {
    let server = TestServer::start().await;
    let (mut first, id) = monitor(&server).await;
    send_text(&mut first, r#"{"type":"subscribe","call_id":"CAres00001"}"#).await;
    next_of_type(&mut first, "subscribed").await;
    send_text(&mut first, r#"{"type":"config","persona":"vip"}"#).await;
    let held = next_of_type(&mut first, "config.held").await;
    assert_eq!(held["config"]["persona"], "vip");
    drop(first);
    server
        .eventually("session parked", |h| h.parked_sessions() == 1)
        .await;

    let (mut second, new_id) = monitor(&server).await;
    assert_ne!(id, new_id);
    send_text(
        &mut second,
        format!(r#"{{"type":"session_info","session_id":"{id}"}}"#),
    )
    .await;
    let confirmed = next_of_type(&mut second, "session_confirmed").await;
    assert_eq!(confirmed["resumed"], true);
    assert_eq!(confirmed["session_id"], id.as_str());
    assert_eq!(
        confirmed["subscriptions"],
        serde_json::json!(["CAres00001"])
    );
    assert_eq!(confirmed["held_config"]["persona"], "vip");

    // The restored subscription is live: the call's events arrive.
    let (mut call, mut caller) = start_call(&server, "res00001", "default").await;
    let started = next_of_type(&mut second, "call.started").await;
    assert_eq!(started["call_id"], "CAres00001");
    stop_call(&mut call, &mut caller).await;

    // A session can be resumed once; an unknown id is not resumed.
    let (mut third, _) = monitor(&server).await;
    send_text(
        &mut third,
        format!(r#"{{"type":"session_info","session_id":"{id}"}}"#),
    )
    .await;
    let confirmed = next_of_type(&mut third, "session_confirmed").await;
    assert_eq!(confirmed["resumed"], false);
    server.stop().await;
}

#[tokio::test]
async fn a_session_is_not_resumed_after_the_grace_period() {
    let server = TestServer::start_with(|c| c.ws.resume_grace = Duration::from_millis(100)).await;
    let (mut first, id) = monitor(&server).await;
    send_text(&mut first, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut first, "subscribed").await;
    drop(first);
    server
        .eventually("session parked", |h| h.parked_sessions() == 1)
        .await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (mut second, _) = monitor(&server).await;
    send_text(
        &mut second,
        format!(r#"{{"type":"session_info","session_id":"{id}"}}"#),
    )
    .await;
    let confirmed = next_of_type(&mut second, "session_confirmed").await;
    assert_eq!(confirmed["resumed"], false);
    assert_eq!(confirmed["subscriptions"], serde_json::json!([]));
    server.stop().await;
}

#[tokio::test]
async fn held_config_applies_to_the_next_call_the_session_sees_start() {
    let server = TestServer::start().await;
    let (mut mon, _) = monitor(&server).await;
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut mon, "subscribed").await;
    send_text(
        &mut mon,
        r#"{"type":"config","persona":"vip","greeting":"Welcome back"}"#,
    )
    .await;
    next_of_type(&mut mon, "config.held").await;

    let (mut call, mut caller) = start_call(&server, "held0001", "default").await;
    let started = next_of_type(&mut mon, "call.started").await;
    assert_eq!(started["config"]["persona"], "default");
    let applied = next_of_type(&mut mon, "config.applied").await;
    assert_eq!(applied["call_id"], "CAheld0001");
    let updated = next_of_type(&mut mon, "call.config_updated").await;
    assert_eq!(updated["config"]["persona"], "vip");
    assert_eq!(updated["config"]["greeting"], "Welcome back");
    stop_call(&mut call, &mut caller).await;
    let ended = next_of_type(&mut mon, "call.status_changed").await;
    assert_eq!(ended["call_id"], "CAheld0001");
    assert_eq!(server.record("CAheld0001").await["persona"], "vip");

    // Held config is used once: the next call keeps its own persona.
    let (mut call, mut caller) = start_call(&server, "held0002", "default").await;
    let started = next_json(&mut mon).await;
    assert_eq!(started["type"], "call.started");
    stop_call(&mut call, &mut caller).await;
    let ended = next_json(&mut mon).await;
    assert_eq!(
        ended["type"], "call.status_changed",
        "no config.applied this time"
    );
    assert_eq!(ended["call_id"], "CAheld0002");
    assert_eq!(server.record("CAheld0002").await["persona"], "default");
    server.stop().await;
}

#[tokio::test]
async fn config_over_the_persona_limits_is_refused_and_the_call_unchanged() {
    use voxgate_core::persona::MAX_INSTRUCTIONS_CHARS;
    let server = TestServer::start().await;
    let (mut mon, _) = monitor(&server).await;
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"CAlimit001"}"#).await;
    next_of_type(&mut mon, "subscribed").await;
    let (mut call, mut caller) = start_call(&server, "limit001", "default").await;
    next_of_type(&mut mon, "call.started").await;

    let long = serde_json::json!({
        "type": "config",
        "call_id": "CAlimit001",
        "persona": "sales",
        "instructions": "x".repeat(MAX_INSTRUCTIONS_CHARS + 1),
    });
    send_text(&mut mon, long.to_string()).await;
    let error = next_of_type(&mut mon, "error").await;
    assert_eq!(error["code"], "invalid_field", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("instructions")),
        "{error}"
    );
    // Held configuration is refused alike.
    let held = serde_json::json!({"type": "config", "greeting": "g".repeat(501)});
    send_text(&mut mon, held.to_string()).await;
    assert_eq!(
        next_of_type(&mut mon, "error").await["code"],
        "invalid_field"
    );

    send_text(
        &mut mon,
        r#"{"type":"config","call_id":"CAlimit001","voice":"joe"}"#,
    )
    .await;
    next_of_type(&mut mon, "config.applied").await;
    let updated = next_of_type(&mut mon, "call.config_updated").await;
    assert_eq!(
        updated["config"],
        serde_json::json!({"persona": "default", "voice": "joe"}),
        "nothing of the refused config was applied"
    );
    stop_call(&mut call, &mut caller).await;
    assert_eq!(server.record("CAlimit001").await["persona"], "default");
    server.stop().await;
}

#[tokio::test]
async fn config_with_a_call_id_updates_that_live_call() {
    let server = TestServer::start().await;
    let (mut mon, _) = monitor(&server).await;
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"CAlive0001"}"#).await;
    next_of_type(&mut mon, "subscribed").await;
    let (mut call, mut caller) = start_call(&server, "live0001", "default").await;
    next_of_type(&mut mon, "call.started").await;

    send_text(
        &mut mon,
        r#"{"type":"config","call_id":"CAlive0001","persona":"sales","voice":"joe"}"#,
    )
    .await;
    assert_eq!(
        next_of_type(&mut mon, "config.applied").await["call_id"],
        "CAlive0001"
    );
    let updated = next_of_type(&mut mon, "call.config_updated").await;
    assert_eq!(updated["config"]["persona"], "sales");
    assert_eq!(updated["config"]["voice"], "joe");

    send_text(
        &mut mon,
        r#"{"type":"config","call_id":"CAnotlive","persona":"x"}"#,
    )
    .await;
    let error = next_of_type(&mut mon, "error").await;
    assert_eq!(error["code"], "call_not_found");

    stop_call(&mut call, &mut caller).await;
    assert_eq!(server.record("CAlive0001").await["persona"], "sales");
    server.stop().await;
}

#[tokio::test]
async fn a_monitor_hangs_up_a_live_call() {
    let server = TestServer::start().await;
    let (mut mon, _) = monitor(&server).await;
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut mon, "subscribed").await;
    let (mut call, _caller) = start_call(&server, "hang0001", "default").await;
    next_of_type(&mut mon, "call.started").await;

    send_text(&mut mon, r#"{"type":"hangup","call_id":"CAhang0001"}"#).await;
    let ended = next_of_type(&mut mon, "call.status_changed").await;
    assert_eq!(ended["disposition"], "hangup");
    assert_eq!(close_code(&mut call).await, Some(1000));
    let record = server.record("CAhang0001").await;
    assert_eq!(record["disposition"], "hangup");
    assert_eq!(record["end_reason"], "hung up by a monitor");
    server.stop().await;
}

#[tokio::test]
async fn a_subscription_to_one_call_sees_only_that_call() {
    let server = TestServer::start().await;
    let (mut mon, _) = monitor(&server).await;
    send_text(&mut mon, r#"{"type":"subscribe","call_id":"CAmine0001"}"#).await;
    next_of_type(&mut mon, "subscribed").await;

    let (mut other, mut other_caller) = start_call(&server, "other001", "default").await;
    let (mut mine, mut my_caller) = start_call(&server, "mine0001", "default").await;
    stop_call(&mut other, &mut other_caller).await;
    stop_call(&mut mine, &mut my_caller).await;

    let first = next_json(&mut mon).await;
    assert_eq!(first["type"], "call.started");
    assert_eq!(first["call_id"], "CAmine0001");
    let second = next_json(&mut mon).await;
    assert_eq!(second["type"], "call.status_changed");
    assert_eq!(second["call_id"], "CAmine0001");

    send_text(&mut mon, r#"{"type":"unsubscribe","call_id":"CAmine0001"}"#).await;
    next_of_type(&mut mon, "unsubscribed").await;
    let (mut again, mut again_caller) = start_call(&server, "mine0002", "default").await;
    stop_call(&mut again, &mut again_caller).await;
    send_text(&mut mon, r#"{"type":"ping"}"#).await;
    assert_eq!(
        next_json(&mut mon).await["type"],
        "pong",
        "no events after unsubscribe"
    );
    server.stop().await;
}
