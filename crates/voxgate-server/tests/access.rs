//! The access model with an admin token configured: which routes need it,
//! the console's login session, single-use browser call tokens and the
//! admin reset.

mod common;

use std::time::Duration;

use common::{TestServer, http_exchange, json_request, metric_with, with_header};
use serde_json::{Value, json};
use voxgate_providers::Secret;
use voxgate_testkit::{
    Client, TwilioCaller, close_code, next_json, next_of_type, send_text, try_connect,
};

const ADMIN: &str = "admin-token-7c1e4b9a2f";
const BEARER: &str = "Bearer admin-token-7c1e4b9a2f";

async fn server() -> TestServer {
    TestServer::start_with(|c| c.access.admin_token = Some(Secret::new(ADMIN))).await
}

fn json_body(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// One request with extra headers: status, lower-cased head, body.
async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    let mut request = json_request(server.addr, method, path, body);
    for (name, value) in headers {
        request = with_header(request, name, value);
    }
    http_exchange(server.addr, request).await
}

/// Asserts a 401 in the API's error shape, with the Bearer challenge.
fn assert_unauthorized(what: &str, (status, head, body): &(u16, String, String)) {
    assert_eq!(*status, 401, "{what}: {head}\n{body}");
    assert!(head.contains("www-authenticate: bearer"), "{what}: {head}");
    let error = json_body(body);
    assert_eq!(error["error"]["code"], "unauthorized", "{what}: {body}");
    assert!(error["error"]["message"].is_string(), "{what}: {body}");
}

/// Every route behind the admin token, with a body where it takes one.
const ADMIN_ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/api/calls", ""),
    (
        "POST",
        "/api/calls",
        r#"{"to":"+14155550199","from":"+14155550100"}"#,
    ),
    ("GET", "/api/calls/CAnone0001", ""),
    ("GET", "/api/calls/CAnone0001/recording", ""),
    ("GET", "/api/personas", ""),
    ("POST", "/api/personas", r#"{"name":"intruder"}"#),
    ("GET", "/api/personas/default", ""),
    ("PUT", "/api/personas/intruder", r#"{"name":"intruder"}"#),
    ("DELETE", "/api/personas/intruder", ""),
    ("POST", "/api/call-tokens", r#"{"persona":"default"}"#),
    ("POST", "/api/admin/reset", ""),
    ("GET", "/metrics", ""),
    ("GET", "/events", ""),
    ("GET", "/browser-stream", ""),
];

#[tokio::test]
async fn every_admin_route_needs_the_admin_token() {
    let server = server().await;
    let series = r#"voxgate_access_denied_total{reason="unauthorized"}"#;
    let denied_before = metric_with(server.addr, series, &[("Authorization", BEARER)]).await;
    for (method, path, body) in ADMIN_ROUTES {
        let what = format!("{method} {path} without a credential");
        assert_unauthorized(&what, &send(&server, method, path, body, &[]).await);
        let what = format!("{method} {path} with a wrong bearer");
        let wrong = [("Authorization", "Bearer admin-token-7c1e4b9a2g")];
        assert_unauthorized(&what, &send(&server, method, path, body, &wrong).await);
        let what = format!("{method} {path} with a cookie that is no session");
        let forged = [("Cookie", "voxgate_session=00ff00ff")];
        assert_unauthorized(&what, &send(&server, method, path, body, &forged).await);
    }
    let denied = metric_with(server.addr, series, &[("Authorization", BEARER)]).await;
    assert!(
        denied - denied_before >= (3 * ADMIN_ROUTES.len()) as f64,
        "every refusal is counted: {denied_before} -> {denied}"
    );
    // Nothing got through: the persona was not created.
    let (status, _, body) = send(
        &server,
        "GET",
        "/api/personas/intruder",
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 404, "{body}");

    // With the token, each route does its own work.
    let auth = [("Authorization", BEARER)];
    for (method, path, expected) in [
        ("GET", "/api/calls", 200),
        ("GET", "/api/calls/CAnone0001", 404),
        ("GET", "/api/personas", 200),
        ("GET", "/api/personas/default", 200),
        ("GET", "/metrics", 200),
        ("POST", "/api/admin/reset", 200),
    ] {
        let (status, _, body) = send(&server, method, path, "", &auth).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
    let (status, _, body) = send(
        &server,
        "POST",
        "/api/personas",
        r#"{"name":"admitted"}"#,
        &auth,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, _, body) = send(&server, "POST", "/api/calls", ADMIN_ROUTES[1].2, &auth).await;
    assert_eq!(
        status, 503,
        "no Twilio configured, but past the guard: {body}"
    );

    // WebSocket upgrades are refused before the upgrade, in the same shape.
    for path in ["/events", "/browser-stream"] {
        let (status, body) = try_connect(server.addr, path, &[])
            .await
            .err()
            .unwrap_or_else(|| panic!("{path} upgraded without a credential"));
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(json_body(&body)["error"]["code"], "unauthorized", "{body}");
        let wrong = [("authorization", "Bearer nope-nope-nope-nope")];
        let refused = try_connect(server.addr, path, &wrong).await.err();
        assert_eq!(
            refused.map(|r| r.0),
            Some(401),
            "{path} with a wrong bearer"
        );
        let mut client = try_connect(server.addr, path, &[("authorization", BEARER)])
            .await
            .unwrap_or_else(|(s, b)| panic!("{path} with the token: {s} {b}"));
        assert_eq!(
            next_json(&mut client).await["type"],
            "connection_established"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn carrier_and_health_routes_need_no_admin_token() {
    let server = server().await;
    for path in ["/healthz", "/readyz"] {
        let (status, _, body) = send(&server, "GET", path, "", &[]).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let twiml = common::form_request(
        server.addr,
        "/twiml",
        "From=%2B14155550100&To=%2B14155550199&CallSid=CAopen0001",
    );
    let (status, _, body) = http_exchange(server.addr, twiml).await;
    assert_eq!(status, 200, "/twiml: {body}");
    assert!(body.contains("<Stream"), "{body}");
    let callback = common::form_request(
        server.addr,
        "/twilio/status",
        "CallSid=CAopen0001&CallStatus=ringing",
    );
    let (status, _, body) = http_exchange(server.addr, callback).await;
    assert_eq!(status, 204, "/twilio/status: {body}");

    // A carrier stream needs no admin token, and its call starts.
    let mut stream = try_connect(server.addr, "/stream", &[])
        .await
        .unwrap_or_else(|(s, b)| panic!("/stream refused: {s} {b}"));
    let mut caller = TwilioCaller::new("open0002");
    send_text(&mut stream, caller.connected()).await;
    send_text(
        &mut stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    server
        .eventually("the carrier's call starts", |h| h.active_calls() == 1)
        .await;
    send_text(&mut stream, caller.stop()).await;
    assert_eq!(close_code(&mut stream).await, Some(1000));

    // The console asks whether it must log in.
    let (status, _, body) = send(&server, "GET", "/api/session", "", &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_body(&body),
        json!({"auth_required": true, "authenticated": false})
    );
    let (_, _, body) = send(
        &server,
        "GET",
        "/api/session",
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(json_body(&body)["auth_required"], true);
    server.stop().await;
}

/// The session cookie's value from a login answer's lower-cased head.
fn session_cookie(head: &str) -> String {
    let line = head
        .lines()
        .find(|l| l.starts_with("set-cookie: voxgate_session="))
        .unwrap_or_else(|| panic!("no session cookie: {head}"));
    let value = line["set-cookie: voxgate_session=".len()..]
        .split(';')
        .next()
        .expect("a value");
    value.to_owned()
}

#[tokio::test]
async fn a_console_login_is_a_cookie_that_works_until_logout() {
    let server = server().await;
    let wrong = send(
        &server,
        "POST",
        "/api/login",
        r#"{"token":"admin-token-0000000000"}"#,
        &[],
    )
    .await;
    assert_unauthorized("a wrong login", &wrong);
    assert!(!wrong.1.contains("set-cookie"), "{}", wrong.1);

    let (status, head, body) = send(
        &server,
        "POST",
        "/api/login",
        &json!({"token": ADMIN}).to_string(),
        &[],
    )
    .await;
    assert_eq!(status, 204, "{body}");
    let cookie_line = head
        .lines()
        .find(|l| l.starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {head}"));
    for attribute in ["httponly", "samesite=strict", "path=/"] {
        assert!(
            cookie_line.split(';').any(|a| a.trim() == attribute),
            "{attribute} missing: {cookie_line}"
        );
    }
    let id = session_cookie(&head);
    assert!(id.len() >= 32, "a long random session id: {id}");
    assert_ne!(id, ADMIN.to_ascii_lowercase());
    let cookie = format!("voxgate_session={id}");
    // Browsers send other cookies too.
    let cookies = format!("theme=dark; {cookie}; lang=en");

    let (status, _, body) =
        send(&server, "GET", "/api/personas", "", &[("Cookie", &cookies)]).await;
    assert_eq!(status, 200, "{body}");
    let (_, _, body) = send(&server, "GET", "/api/session", "", &[("Cookie", &cookie)]).await;
    assert_eq!(
        json_body(&body),
        json!({"auth_required": true, "authenticated": true})
    );
    let mut monitor = try_connect(server.addr, "/events", &[("cookie", &cookie)])
        .await
        .unwrap_or_else(|(s, b)| panic!("/events with the session cookie: {s} {b}"));
    assert_eq!(
        next_json(&mut monitor).await["type"],
        "connection_established"
    );

    let (status, head, _) = send(&server, "POST", "/api/logout", "", &[("Cookie", &cookie)]).await;
    assert_eq!(status, 204);
    assert!(
        head.contains("set-cookie: voxgate_session=;"),
        "the browser is told to forget it: {head}"
    );
    assert!(head.contains("max-age=0"), "{head}");

    let after = send(&server, "GET", "/api/personas", "", &[("Cookie", &cookie)]).await;
    assert_unauthorized("the cookie after logout", &after);
    let (_, _, body) = send(&server, "GET", "/api/session", "", &[("Cookie", &cookie)]).await;
    assert_eq!(json_body(&body)["authenticated"], false);
    let refused = try_connect(server.addr, "/events", &[("cookie", &cookie)])
        .await
        .err();
    assert_eq!(refused.map(|r| r.0), Some(401), "/events after logout");
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn the_admin_token_is_never_in_an_answer() {
    let server = server().await;
    let login = json!({"token": ADMIN}).to_string();
    let almost = json!({"token": format!("{ADMIN}x")}).to_string();
    let with_token = [("Authorization", BEARER)];
    let echo_bait = format!("Bearer {ADMIN}x");
    let wrong = [("Authorization", echo_bait.as_str())];
    let mut seen = Vec::new();
    for (expected, method, path, body, headers) in [
        (204, "POST", "/api/login", login.as_str(), &[][..]),
        (401, "POST", "/api/login", almost.as_str(), &[][..]),
        (422, "POST", "/api/login", r#"{"token":1}"#, &[][..]),
        (401, "GET", "/api/personas", "", &wrong[..]),
        (200, "GET", "/api/session", "", &with_token[..]),
        (200, "GET", "/metrics", "", &with_token[..]),
        (200, "GET", "/api/calls", "", &with_token[..]),
        (201, "POST", "/api/call-tokens", "{}", &with_token[..]),
        (
            404,
            "POST",
            "/api/call-tokens",
            r#"{"persona":"nobody"}"#,
            &with_token[..],
        ),
        (
            422,
            "POST",
            "/api/personas",
            r#"{"name":"bad name!"}"#,
            &with_token[..],
        ),
        (404, "GET", "/api/nothing-here", "", &with_token[..]),
        (204, "POST", "/api/logout", "", &with_token[..]),
    ] {
        let (status, head, answer) = send(&server, method, path, body, headers).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        seen.push(format!("{method} {path} -> {status}\n{head}\n{answer}"));
    }
    let (_, refused) = try_connect(server.addr, "/events", &[("authorization", &echo_bait)])
        .await
        .expect_err("refused");
    seen.push(refused);
    for answer in &seen {
        assert!(
            !answer
                .to_ascii_lowercase()
                .contains(&ADMIN.to_ascii_lowercase()),
            "the admin token leaked:\n{answer}"
        );
    }
    server.stop().await;
}

async fn mint(server: &TestServer, persona: &str) -> (u16, Value) {
    let body = json!({"persona": persona}).to_string();
    let (status, _, body) = send(
        server,
        "POST",
        "/api/call-tokens",
        &body,
        &[("Authorization", BEARER)],
    )
    .await;
    (status, json_body(&body))
}

async fn assert_error(client: &mut Client, code: &str) {
    let error = next_of_type(client, "error").await;
    assert_eq!(error["code"], code, "{error}");
}

#[tokio::test]
async fn a_call_token_is_one_browser_call_with_its_persona() {
    let server = server().await;
    let (status, _, body) = send(
        &server,
        "POST",
        "/api/personas",
        r#"{"name":"sales"}"#,
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let unauthenticated = send(
        &server,
        "POST",
        "/api/call-tokens",
        r#"{"persona":"sales"}"#,
        &[],
    )
    .await;
    assert_unauthorized("minting without the admin", &unauthenticated);

    let (status, minted) = mint(&server, "sales").await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().expect("a token").to_owned();
    assert!(token.len() >= 32, "{minted}");
    assert_eq!(minted["url"], format!("/browser-stream?token={token}"));
    assert_eq!(minted["expires_in_s"], 300);
    let url = minted["url"].as_str().expect("a url").to_owned();

    let (status, missing) = mint(&server, "nobody").await;
    assert_eq!(status, 404, "{missing}");
    assert_eq!(missing["error"]["code"], "not_found");
    let forged = try_connect(server.addr, "/browser-stream?token=00ff00ff00ff", &[])
        .await
        .err();
    assert_eq!(forged.map(|r| r.0), Some(401), "a token never minted");

    // The token is the caller's only credential.
    let mut browser = try_connect(server.addr, &url, &[])
        .await
        .unwrap_or_else(|(s, b)| panic!("the call token's URL: {s} {b}"));
    assert_eq!(
        next_json(&mut browser).await["type"],
        "connection_established"
    );
    send_text(&mut browser, r#"{"type":"config","persona":"support"}"#).await;
    assert_error(&mut browser, "forbidden").await;
    send_text(
        &mut browser,
        r#"{"type":"start","persona":"support","greeting":"Hi"}"#,
    )
    .await;
    let started = next_of_type(&mut browser, "call.started").await;
    assert_eq!(
        started["config"]["persona"], "sales",
        "the token's persona: {started}"
    );
    let call_id = started["call_id"].as_str().expect("call id").to_owned();
    send_text(&mut browser, r#"{"type":"config","persona":"support"}"#).await;
    assert_error(&mut browser, "forbidden").await;

    // Used once: a second connection with it is refused, during the call
    // and after it.
    let second = try_connect(server.addr, &url, &[]).await.err();
    assert_eq!(second.map(|r| r.0), Some(401), "a used token");
    send_text(&mut browser, r#"{"type":"hangup"}"#).await;
    let ended = next_of_type(&mut browser, "call.status_changed").await;
    assert_eq!(ended["disposition"], "completed", "{ended}");
    assert_eq!(close_code(&mut browser).await, Some(1000));
    let third = try_connect(server.addr, &url, &[]).await.err();
    assert_eq!(
        third.map(|r| r.0),
        Some(401),
        "a used token, after its call"
    );

    let (status, _, body) = send(
        &server,
        "GET",
        &format!("/api/calls/{call_id}"),
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_body(&body)["persona"], "sales", "{body}");
    server.stop().await;
}

#[tokio::test]
async fn an_expired_call_token_is_refused() {
    let server = TestServer::start_with(|c| {
        c.access.admin_token = Some(Secret::new(ADMIN));
        c.access.call_token_ttl = Duration::from_millis(100);
    })
    .await;
    let (status, minted) = mint(&server, "default").await;
    assert_eq!(status, 201, "{minted}");
    let url = minted["url"].as_str().expect("a url").to_owned();
    // Past the token's life (a wait for a precondition, not a measurement).
    tokio::time::sleep(Duration::from_millis(250)).await;
    let refused = try_connect(server.addr, &url, &[]).await.err();
    let (status, body) = refused.expect("an expired token is refused");
    assert_eq!(status, 401, "{body}");
    assert_eq!(json_body(&body)["error"]["code"], "unauthorized");
    assert_eq!(server.handle.active_calls(), 0);
    server.stop().await;
}

/// The call's `call.status_changed` to `ended`, per call id, from a monitor
/// subscribed to all calls.
async fn ended_events(monitor: &mut Client, count: usize) -> Vec<Value> {
    let mut ended = Vec::new();
    while ended.len() < count {
        let event = next_of_type(monitor, "call.status_changed").await;
        if event["status"] == "ended" {
            ended.push(event);
        }
    }
    ended
}

#[tokio::test]
async fn an_admin_reset_ends_every_call_and_drops_parked_sessions() {
    let server = server().await;
    let auth = [("authorization", BEARER)];
    let mut monitor = try_connect(server.addr, "/events", &auth)
        .await
        .expect("monitor");
    next_json(&mut monitor).await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut monitor, "subscribed").await;

    // A parked session: a monitor that went away.
    let mut gone = try_connect(server.addr, "/events", &auth)
        .await
        .expect("monitor");
    next_json(&mut gone).await;
    drop(gone);
    server
        .eventually("a session parked", |h| h.parked_sessions() == 1)
        .await;

    let mut stream = try_connect(server.addr, "/stream", &[])
        .await
        .expect("stream");
    let mut caller = TwilioCaller::new("reset0001");
    send_text(&mut stream, caller.connected()).await;
    send_text(
        &mut stream,
        caller.start("+14155550100", "+14155550199", "default"),
    )
    .await;
    let mut browser = try_connect(server.addr, "/browser-stream", &auth)
        .await
        .expect("browser");
    next_json(&mut browser).await;
    send_text(&mut browser, r#"{"type":"start","persona":"default"}"#).await;
    let browser_call = next_of_type(&mut browser, "call.started").await["call_id"]
        .as_str()
        .expect("call id")
        .to_owned();
    server
        .eventually("both calls live", |h| h.active_calls() == 2)
        .await;

    let (status, _, body) = send(
        &server,
        "POST",
        "/api/admin/reset",
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json_body(&body),
        json!({"calls_ended": 2, "sessions_dropped": 1})
    );

    let mut ended = ended_events(&mut monitor, 2).await;
    ended.sort_by_key(|e| e["call_id"].as_str().map(str::to_owned));
    let ids: Vec<&str> = ended.iter().filter_map(|e| e["call_id"].as_str()).collect();
    let mut expected = vec![browser_call.as_str(), "CAreset0001"];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for event in &ended {
        assert_eq!(event["disposition"], "hangup", "{event}");
        assert_eq!(event["reason"], "admin reset", "{event}");
    }
    assert_eq!(close_code(&mut stream).await, Some(1000));
    let told = next_of_type(&mut browser, "call.status_changed").await;
    assert_eq!(told["disposition"], "hangup", "{told}");
    assert_eq!(close_code(&mut browser).await, Some(1000));
    server
        .eventually("no call left", |h| h.active_calls() == 0)
        .await;
    assert_eq!(server.handle.parked_sessions(), 0);

    server
        .handle
        .flush_records(Duration::from_secs(10))
        .await
        .expect("flushed");
    let (status, _, body) = send(
        &server,
        "GET",
        "/api/calls/CAreset0001",
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let record = json_body(&body);
    assert_eq!(record["disposition"], "hangup", "{record}");
    assert_eq!(record["end_reason"], "admin reset", "{record}");

    // The monitor that asked is still there, and a second reset finds nothing.
    let (_, _, body) = send(
        &server,
        "POST",
        "/api/admin/reset",
        "",
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(
        json_body(&body),
        json!({"calls_ended": 0, "sessions_dropped": 0})
    );
    drop(monitor);
    server.stop().await;
}

#[tokio::test]
async fn oversized_login_and_call_token_bodies_are_refused_unread() {
    let server = server().await;
    let padding = "x".repeat(8 * 1024);
    let login = format!(r#"{{"token":"{padding}"}}"#);
    let (status, _, body) = send(&server, "POST", "/api/login", &login, &[]).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(json_body(&body)["error"]["code"], "payload_too_large");
    let mint = format!(r#"{{"persona":"{padding}"}}"#);
    let (status, _, body) = send(
        &server,
        "POST",
        "/api/call-tokens",
        &mint,
        &[("Authorization", BEARER)],
    )
    .await;
    assert_eq!(status, 413, "{body}");
    // Anonymous and oversized: the credential is checked first.
    let (status, _, _) = send(&server, "POST", "/api/call-tokens", &mint, &[]).await;
    assert_eq!(status, 401);
    server.stop().await;
}
