//! One listener, every route: health, readiness, metrics, TwiML, the calls
//! API, and the three WebSocket endpoints side by side.

mod common;

use std::time::Duration;

use common::{
    TestServer, form_request, http_exchange, http_get, http_post_form, http_request, metric,
};
use serde_json::Value;
use voxgate_core::ids::CallSid;
use voxgate_server::config::PublicUrl;
use voxgate_testkit::{
    TwilioCaller, close_code, connect, next_json, next_of_type, refused_upgrade_status, send_text,
    ulaw_silence_frame,
};

/// `voxgate_websocket_connections` is a process-wide gauge: tests in this
/// binary that open WebSockets take turns so each sees only its own.
static WEBSOCKETS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const FORM: &str = "From=%2B1%20415%20555%200100&To=4155550199&CallSid=CA1";
const TOKEN: &str = "twilio-auth-token-1";

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn listed_sids(page: &Value) -> Vec<String> {
    page["calls"]
        .as_array()
        .expect("a calls array")
        .iter()
        .map(|call| call["call_sid"].as_str().expect("call_sid").to_owned())
        .collect()
}

/// One Twilio call from `start` to `stop`.
async fn complete_call(server: &TestServer, tag: &str) {
    let mut caller = TwilioCaller::new(tag);
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(
        &mut twilio,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    send_text(&mut twilio, caller.media(&ulaw_silence_frame())).await;
    send_text(&mut twilio, caller.stop()).await;
    assert_eq!(close_code(&mut twilio).await, Some(1000));
}

#[tokio::test]
async fn healthz_answers_ok() {
    let server = TestServer::start().await;
    assert_eq!(
        http_get(server.addr, "/healthz").await,
        (200, "ok".to_owned())
    );
    server.stop().await;
}

#[tokio::test]
async fn readyz_says_ready_while_taking_calls() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.addr, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["ready"], true);
    assert_eq!(body["draining"], false);
    server.stop().await;
}

#[tokio::test]
async fn metrics_are_served_in_prometheus_text() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(body.contains("voxgate_active_calls"), "{body}");
    assert!(
        body.contains("# TYPE voxgate_calls_total counter"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn websocket_upgrades_to_unknown_paths_are_refused_with_404() {
    let server = TestServer::start().await;
    let series = r#"voxgate_websocket_refused_total{endpoint="unknown",reason="not_found"}"#;
    let before = metric(server.addr, series).await;
    assert_eq!(refused_upgrade_status(server.addr, "/nope").await, 404);
    assert_eq!(
        refused_upgrade_status(server.addr, "/stream/extra").await,
        404
    );
    assert_eq!(metric(server.addr, series).await - before, 2.0);
    assert_eq!(server.handle.open_connections(), 0);
    server.stop().await;
}

#[tokio::test]
async fn all_three_websocket_endpoints_work_at_once_on_one_port() {
    let _turn = WEBSOCKETS.lock().await;
    let server = TestServer::start().await;

    let mut caller = TwilioCaller::new("allthree01");
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(
        &mut twilio,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    let twilio_id = CallSid::new("CAallthree01").expect("id");
    server
        .eventually("the Twilio call is live", |h| {
            h.app_state().registry.get(&twilio_id).is_some()
        })
        .await;

    let mut browser = connect(server.addr, "/browser-stream").await;
    assert_eq!(
        next_json(&mut browser).await["type"],
        "connection_established"
    );
    send_text(&mut browser, r#"{"type":"start"}"#).await;
    let started = next_of_type(&mut browser, "call.started").await;
    assert_eq!(started["carrier"], "browser");

    let mut monitor = connect(server.addr, "/events").await;
    assert_eq!(
        next_json(&mut monitor).await["type"],
        "connection_established"
    );
    send_text(&mut monitor, r#"{"type":"ping"}"#).await;
    assert_eq!(next_json(&mut monitor).await["type"], "pong");

    assert_eq!(server.handle.active_calls(), 2);
    for endpoint in ["stream", "browser_stream", "events"] {
        let series = format!(r#"voxgate_websocket_connections{{endpoint="{endpoint}"}}"#);
        assert_eq!(metric(server.addr, &series).await, 1.0, "{series}");
    }

    send_text(&mut twilio, caller.stop()).await;
    assert_eq!(close_code(&mut twilio).await, Some(1000));
    send_text(&mut browser, r#"{"type":"hangup"}"#).await;
    assert_eq!(close_code(&mut browser).await, Some(1000));
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn twiml_connects_the_call_to_the_stream_on_the_request_host() {
    let server = TestServer::start().await;
    let (status, head, body) = http_exchange(
        server.addr,
        form_request(server.addr, "/twiml?persona=sales", FORM),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        head.contains("content-type: text/xml"),
        "content type in: {head}"
    );
    let stream = format!(r#"<Connect><Stream url="wss://{}/stream">"#, server.addr);
    assert!(body.contains(&stream), "{stream} in {body}");
    for parameter in [
        r#"<Parameter name="from" value="+14155550100"/>"#,
        r#"<Parameter name="to" value="+14155550199"/>"#,
        r#"<Parameter name="persona" value="sales"/>"#,
    ] {
        assert!(body.contains(parameter), "{parameter} in {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn twiml_uses_the_public_url_when_one_is_set() {
    let server = TestServer::start_with(|config| {
        config.public_url =
            Some(PublicUrl::parse("https://voice.example.com/vg").expect("a valid public URL"));
        config.twilio.auth_token = Some(voxgate_providers::Secret::new(TOKEN));
    })
    .await;
    let signature = voxgate_core::twilio_signature::sign(
        TOKEN,
        "https://voice.example.com/vg/twiml?persona=sales",
        [
            ("From", "+1 415 555 0100"),
            ("To", "4155550199"),
            ("CallSid", "CA1"),
        ],
    );
    let request = form_request(server.addr, "/twiml?persona=sales", FORM).replacen(
        "\r\n",
        &format!("\r\nX-Twilio-Signature: {signature}\r\n"),
        1,
    );
    let (status, body) = http_request(server.addr, request).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"<Stream url="wss://voice.example.com/vg/stream">"#),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn twiml_escapes_xml_special_characters_in_parameters() {
    let server = TestServer::start().await;
    // From = <sip:ann&bob@x"'>
    let form = "From=%3Csip%3Aann%26bob%40x%22%27%3E&To=4155550199";
    let (status, body) = http_post_form(server.addr, "/twiml", form).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"<Parameter name="from" value="&lt;sip:ann&amp;bob@x&quot;&apos;&gt;"/>"#),
        "{body}"
    );
    assert!(!body.contains("<sip"), "{body}");
    server.stop().await;
}

#[tokio::test]
async fn twiml_without_a_persona_names_the_default_one() {
    let server = TestServer::start().await;
    let (status, body) = http_post_form(server.addr, "/twiml", FORM).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(r#"<Parameter name="persona" value="default"/>"#),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn calls_are_listed_newest_first_and_paged() {
    let _turn = WEBSOCKETS.lock().await;
    let server = TestServer::start().await;
    for n in 1..=5 {
        complete_call(&server, &format!("list{n:04}")).await;
        // Distinct start times, so "newest first" has one answer.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server
        .handle
        .flush_records(Duration::from_secs(10))
        .await
        .expect("records flushed");

    let (status, body) = http_get(server.addr, "/api/calls").await;
    assert_eq!(status, 200, "{body}");
    let newest_first: Vec<String> = (1..=5).rev().map(|n| format!("CAlist{n:04}")).collect();
    assert_eq!(listed_sids(&json(&body)), newest_first);

    let (status, body) = http_get(server.addr, "/api/calls?limit=2").await;
    assert_eq!(status, 200, "{body}");
    let first_page = listed_sids(&json(&body));
    assert_eq!(first_page, newest_first[..2]);

    let (status, body) = http_get(server.addr, "/api/calls?limit=2&offset=2").await;
    assert_eq!(status, 200, "{body}");
    let second_page = listed_sids(&json(&body));
    assert_eq!(second_page, newest_first[2..4]);
    assert!(
        second_page.iter().all(|sid| !first_page.contains(sid)),
        "pages overlap: {first_page:?} {second_page:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_page_limits_are_refused_with_400() {
    let server = TestServer::start().await;
    for query in ["limit=0", "limit=abc", "limit=100000"] {
        let (status, body) = http_get(server.addr, &format!("/api/calls?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        let body = json(&body);
        assert_eq!(body["error"]["code"], "bad_request", "{query}: {body}");
        assert!(body["error"]["message"].is_string(), "{query}: {body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_call_is_404_not_found() {
    let server = TestServer::start().await;
    let (status, body) = http_get(server.addr, "/api/calls/CAnotthere").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(json(&body)["error"]["code"], "not_found");
    server.stop().await;
}
