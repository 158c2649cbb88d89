//! The personas API over a real socket: create, read, replace and delete,
//! the always-present default, and every kind of bad body answered in the
//! API's JSON error shape.

mod common;

use std::net::SocketAddr;

use common::{TestServer, http_exchange, json_request};
use serde_json::{Value, json};
use sqlx::Connection;
use voxgate_core::events::JobConfig;
use voxgate_core::persona::{
    MAX_PERSONAS, MAX_TOOL_DESCRIPTION_CHARS, MAX_TOOL_PARAMETERS_BYTES, MAX_TOOL_URL_LEN,
    MAX_TOOLS, MAX_TRANSFER_NUMBERS, PersonaSpec,
};
use voxgate_server::personas::resolve_persona;

/// One exchange: status, lower-cased head, and the body as JSON (`Null`
/// when empty).
async fn send(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, Value) {
    let (status, head, body) = http_exchange(addr, json_request(addr, method, path, body)).await;
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {body:?}"))
    };
    (status, head, json)
}

async fn get(addr: SocketAddr, path: &str) -> (u16, Value) {
    let (status, _, body) = send(addr, "GET", path, "").await;
    (status, body)
}

/// Checks the `{"error": {"code", "message"}}` shape and returns the error.
fn error_of(body: &Value, code: &str) -> Value {
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error.clone()
}

fn problems(body: &Value) -> Vec<String> {
    let error = error_of(body, "invalid_persona");
    serde_json::from_value(error["problems"].clone()).expect("problems is a list of strings")
}

fn names(list: &Value) -> Vec<&str> {
    list["personas"]
        .as_array()
        .expect("personas list")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect()
}

fn builtin() -> Value {
    serde_json::to_value(PersonaSpec::default()).expect("serializable")
}

async fn round_trip(server: &TestServer) {
    let addr = server.addr;
    let (status, head, created) = send(
        addr,
        "POST",
        "/api/personas",
        r#"{"name":"sales","greeting":"Hi, sales here.","turn":{"max_reprompts":1}}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(head.contains("location: /api/personas/sales"), "{head}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(created["greeting"], "Hi, sales here.");
    assert_eq!(created["turn"]["max_reprompts"], 1);
    // Left-out fields are filled in from the defaults.
    assert_eq!(created["vad"], builtin()["vad"]);

    assert_eq!(
        get(addr, "/api/personas/sales").await,
        (200, created.clone())
    );
    let (status, list) = get(addr, "/api/personas").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(names(&list), ["default", "sales"]);

    // Replace, leaving the name to the path.
    let (status, _, replaced) = send(
        addr,
        "PUT",
        "/api/personas/sales",
        r#"{"greeting":"Sales, hello.","voice":"joe"}"#,
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["name"], "sales");
    assert_eq!(replaced["greeting"], "Sales, hello.");
    // A replacement is whole: what it leaves out is the default again.
    assert_eq!(replaced["turn"], builtin()["turn"]);
    assert_eq!(get(addr, "/api/personas/sales").await, (200, replaced));

    // PUT creates too.
    let (status, head, support) = send(
        addr,
        "PUT",
        "/api/personas/support",
        r#"{"name":"support","instructions":"Help with orders."}"#,
    )
    .await;
    assert_eq!(status, 201, "{support}");
    assert!(head.contains("location: /api/personas/support"), "{head}");
    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(names(&list), ["default", "sales", "support"]);

    let (status, _, body) = send(addr, "DELETE", "/api/personas/sales", "").await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = get(addr, "/api/personas/sales").await;
    assert_eq!(status, 404);
    error_of(&body, "not_found");
    let (status, _, body) = send(addr, "DELETE", "/api/personas/sales", "").await;
    assert_eq!(status, 404);
    error_of(&body, "not_found");
    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(names(&list), ["default", "support"]);
}

#[tokio::test]
async fn personas_can_be_created_read_replaced_and_deleted() {
    let server = TestServer::start().await;
    round_trip(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn creating_a_taken_name_conflicts() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let body = r#"{"name":"sales"}"#;
    let (status, _, _) = send(addr, "POST", "/api/personas", body).await;
    assert_eq!(status, 201);
    let (status, _, answer) = send(addr, "POST", "/api/personas", body).await;
    assert_eq!(status, 409, "{answer}");
    error_of(&answer, "conflict");
    // The default exists whether or not it is stored.
    let (status, _, answer) = send(addr, "POST", "/api/personas", r#"{"name":"default"}"#).await;
    assert_eq!(status, 409, "{answer}");
    error_of(&answer, "conflict");
    server.stop().await;
}

#[tokio::test]
async fn unacceptable_values_are_listed_as_problems() {
    let server = TestServer::start().await;
    let addr = server.addr;

    let (status, _, answer) = send(
        addr,
        "POST",
        "/api/personas",
        r#"{"name":"loud","vad":{"activation_threshold":2.0}}"#,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let listed = problems(&answer);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert!(listed[0].contains("vad.activation_threshold"), "{listed:?}");

    // All at once, not one per attempt.
    let (status, _, answer) = send(
        addr,
        "POST",
        "/api/personas",
        r#"{"name":"bad name!","turn":{"min_endpoint_delay_ms":3000,"max_endpoint_delay_ms":1000}}"#,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    let listed = problems(&answer);
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed[0].starts_with("name"), "{listed:?}");

    let (status, _, answer) = send(addr, "POST", "/api/personas", r#"{"greeting":"Hi"}"#).await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(problems(&answer), ["name is required"]);

    let (status, _, answer) = send(addr, "PUT", "/api/personas/bad%20name", "{}").await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(problems(&answer).len(), 1, "{answer}");

    // Nothing was stored.
    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(names(&list), ["default"]);
    server.stop().await;
}

/// A persona named `name` with `tools` (JSON array text).
fn with_tools(name: &str, tools: &str) -> String {
    format!(r#"{{"name":"{name}","tools":{tools}}}"#)
}

fn tool(name: &str, extra: &str) -> String {
    format!(r#"{{"name":"{name}","url":"https://tools.example.com/{name}"{extra}}}"#)
}

#[tokio::test]
async fn every_field_is_bounded() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let seventeen: Vec<String> = (0..=MAX_TOOLS)
        .map(|i| tool(&format!("t{i}"), ""))
        .collect();
    let numbers: Vec<String> = (0..=MAX_TRANSFER_NUMBERS)
        .map(|i| format!(r#""+1415555{i:04}""#))
        .collect();
    let long_description = format!(
        r#","description":"{}""#,
        "d".repeat(MAX_TOOL_DESCRIPTION_CHARS + 1)
    );
    let big_schema = format!(
        r#","parameters":{{"type":"object","description":"{}"}}"#,
        "p".repeat(MAX_TOOL_PARAMETERS_BYTES)
    );
    let long_url = format!(
        r#"{{"name":"t","url":"https://tools.example.com/{}"}}"#,
        "u".repeat(MAX_TOOL_URL_LEN)
    );
    let cases = [
        (
            with_tools("many", &format!("[{}]", seventeen.join(","))),
            "at most 16 tools",
        ),
        (
            format!(
                r#"{{"name":"numbers","transfer_numbers":[{}]}}"#,
                numbers.join(",")
            ),
            "at most 16 numbers",
        ),
        (
            with_tools("wordy", &format!("[{}]", tool("t", &long_description))),
            "description",
        ),
        (
            with_tools("schema", &format!("[{}]", tool("t", &big_schema))),
            "bytes of JSON",
        ),
        (
            with_tools("longurl", &format!("[{long_url}]")),
            "url must be at most 2048 bytes",
        ),
    ];
    for (body, mentioned) in cases {
        let (status, _, answer) = send(addr, "POST", "/api/personas", &body).await;
        assert_eq!(status, 422, "{mentioned}: {answer}");
        let listed = problems(&answer);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(listed[0].contains(mentioned), "{listed:?}");
    }
    // At the limits is fine.
    let sixteen = seventeen[..MAX_TOOLS].join(",");
    let (status, _, answer) = send(
        addr,
        "POST",
        "/api/personas",
        &with_tools("full", &format!("[{sixteen}]")),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_number_of_stored_personas_is_bounded() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let store = &server.handle.app_state().store;
    for i in 0..MAX_PERSONAS - 1 {
        let spec = PersonaSpec {
            name: format!("p{i:04}"),
            ..PersonaSpec::default()
        };
        store.put_persona(&spec, 0).await.expect("stored");
    }
    // The last place is taken through the API.
    let (status, _, answer) = send(addr, "PUT", "/api/personas/last", "{}").await;
    assert_eq!(status, 201, "{answer}");

    let (status, _, answer) = send(addr, "POST", "/api/personas", r#"{"name":"more"}"#).await;
    assert_eq!(status, 409, "{answer}");
    error_of(&answer, "too_many_personas");
    let (status, _, answer) = send(addr, "PUT", "/api/personas/more", "{}").await;
    assert_eq!(status, 409, "{answer}");
    error_of(&answer, "too_many_personas");
    // Replacing one is not adding one.
    let (status, _, answer) =
        send(addr, "PUT", "/api/personas/p0001", r#"{"greeting":"Hi"}"#).await;
    assert_eq!(status, 200, "{answer}");
    // Deleting one makes room.
    let (status, _, _) = send(addr, "DELETE", "/api/personas/p0000", "").await;
    assert_eq!(status, 204);
    let (status, _, answer) = send(addr, "POST", "/api/personas", r#"{"name":"more"}"#).await;
    assert_eq!(status, 201, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_put_body_naming_another_persona_is_refused() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (status, _, answer) =
        send(addr, "PUT", "/api/personas/sales", r#"{"name":"support"}"#).await;
    assert_eq!(status, 422, "{answer}");
    let listed = problems(&answer);
    assert!(
        listed[0].contains("support") && listed[0].contains("sales"),
        "{listed:?}"
    );
    let (status, _) = get(addr, "/api/personas/sales").await;
    assert_eq!(status, 404);
    let (status, _) = get(addr, "/api/personas/support").await;
    assert_eq!(status, 404);
    server.stop().await;
}

#[tokio::test]
async fn bodies_that_are_not_personas_get_json_errors() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let cases = [
        ("POST", "/api/personas", r#"{"name":"x","#, "EOF"),
        (
            "POST",
            "/api/personas",
            r#"{"name":"x","greting":"Hi"}"#,
            "greting",
        ),
        (
            "PUT",
            "/api/personas/x",
            r#"{"vad":{"threshold":0.5}}"#,
            "threshold",
        ),
        (
            "POST",
            "/api/personas",
            r#"{"name":"x","turn":{"max_reprompts":"two"}}"#,
            "two",
        ),
        ("PUT", "/api/personas/x", r#"{"name":null}"#, "null"),
        ("PUT", "/api/personas/x", "[1,2]", "object"),
        ("POST", "/api/personas", "not json", "JSON"),
    ];
    for (method, path, body, mentioned) in cases {
        let (status, head, answer) = send(addr, method, path, body).await;
        assert_eq!(status, 400, "{method} {path} {body}: {answer}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let error = error_of(&answer, "bad_request");
        let message = error["message"].as_str().expect("message");
        assert!(
            message.contains(mentioned),
            "{body}: {message:?} should mention {mentioned:?}"
        );
    }

    // No JSON content type: 415, still in the API's shape.
    let request = format!(
        "POST /api/personas HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain\r\nContent-Length: 15\r\n\r\n{{\"name\":\"abc\"}}"
    );
    let (status, head, body) = http_exchange(addr, request).await;
    assert_eq!(status, 415, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    error_of(
        &serde_json::from_str(&body).expect("JSON error"),
        "unsupported_media_type",
    );

    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(names(&list), ["default"]);
    server.stop().await;
}

#[tokio::test]
async fn the_default_persona_is_always_there_and_deleting_it_resets_it() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (status, list) = get(addr, "/api/personas").await;
    assert_eq!(status, 200);
    assert_eq!(list["personas"], json!([builtin()]));
    assert_eq!(get(addr, "/api/personas/default").await, (200, builtin()));

    // Nothing stored yet, so deleting changes nothing, and is no error.
    let (status, _, _) = send(addr, "DELETE", "/api/personas/default", "").await;
    assert_eq!(status, 204);

    // Replacing the default is a replacement (200), not a creation.
    let (status, _, replaced) = send(
        addr,
        "PUT",
        "/api/personas/default",
        r#"{"greeting":"Thanks for calling."}"#,
    )
    .await;
    assert_eq!(status, 200, "{replaced}");
    assert_eq!(replaced["greeting"], "Thanks for calling.");
    assert_eq!(
        get(addr, "/api/personas/default").await,
        (200, replaced.clone())
    );
    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(
        list["personas"],
        json!([replaced]),
        "listed once, as stored"
    );

    // Calls pick the replaced default up.
    let store = &server.handle.app_state().store;
    let spec = resolve_persona(store, &JobConfig::default()).await;
    assert_eq!(spec.greeting, "Thanks for calling.");

    let (status, _, body) = send(addr, "DELETE", "/api/personas/default", "").await;
    assert_eq!((status, body), (204, Value::Null));
    assert_eq!(get(addr, "/api/personas/default").await, (200, builtin()));
    let (_, list) = get(addr, "/api/personas").await;
    assert_eq!(list["personas"], json!([builtin()]));
    server.stop().await;
}

#[tokio::test]
async fn calls_resolve_personas_written_through_the_api() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let (status, _, _) = send(
        addr,
        "POST",
        "/api/personas",
        r#"{"name":"sales","greeting":"Hi, sales here.","instructions":"Sell."}"#,
    )
    .await;
    assert_eq!(status, 201);
    let store = &server.handle.app_state().store;
    let job = JobConfig {
        persona: Some("sales".into()),
        instructions: Some("Sell politely.".into()),
        ..JobConfig::default()
    };
    let spec = resolve_persona(store, &job).await;
    assert_eq!(spec.name, "sales");
    assert_eq!(spec.greeting, "Hi, sales here.");
    assert_eq!(spec.instructions, "Sell politely.");

    let unknown = JobConfig {
        persona: Some("nobody".into()),
        ..JobConfig::default()
    };
    assert_eq!(
        resolve_persona(store, &unknown).await,
        PersonaSpec::default()
    );
    server.stop().await;
}

fn postgres_url() -> String {
    std::env::var("VOXGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn postgres_admin(sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&postgres_url())
        .await
        .expect("connect to the test PostgreSQL (set VOXGATE_TEST_POSTGRES_URL)");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

#[tokio::test]
async fn personas_round_trip_on_postgres() {
    let name = format!("voxgate_personas_{}", uuid::Uuid::new_v4().simple());
    postgres_admin(&format!("CREATE DATABASE {name}")).await;
    let url = match postgres_url().rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("unexpected Postgres URL"),
    };
    let server = TestServer::start_with(|c| c.database_url = url).await;
    round_trip(&server).await;
    server.stop().await;
    postgres_admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

#[tokio::test]
async fn the_persona_list_comes_in_pages() {
    let server = TestServer::start().await;
    for name in ["alpha", "beta", "gamma"] {
        let (status, _, body) = send(
            server.addr,
            "POST",
            "/api/personas",
            &format!(r#"{{"name":"{name}"}}"#),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, first) = get(server.addr, "/api/personas?limit=2").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(names(&first), ["alpha", "beta"]);
    assert_eq!(first["total"], 4);
    let (_, second) = get(server.addr, "/api/personas?limit=2&offset=2").await;
    assert_eq!(names(&second), ["default", "gamma"]);
    let (status, _) = get(server.addr, "/api/personas?limit=100000").await;
    assert_eq!(status, 400);
    server.stop().await;
}
