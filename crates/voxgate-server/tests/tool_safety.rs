//! Persona tools cannot be pointed inside the server's network: refused
//! when the persona is saved if the URL names an internal address, and
//! refused when called if the name resolves to one. Real listeners on
//! loopback stand in for the internal services, and record whether they
//! were reached. Names are resolved by a lookup the test controls, so a
//! name that resolves to 127.0.0.1 is tried without a DNS server.

mod common;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use common::{TestServer, http_exchange, json_request};
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use serde_json::Value;
use voxgate_core::outbound::AllowedHosts;
use voxgate_core::persona::HttpToolSpec;
use voxgate_server::agent::{LookupHost, ToolClient, ToolOutcome};
use voxgate_server::config::ToolsConfig;

/// A loopback listener answering every request with what `answer` makes;
/// counts the requests it got.
async fn listener(
    answer: impl Fn() -> Response + Clone + Send + Sync + 'static,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        let answer = answer.clone();
        async move { answer() }
    });
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(socket, app).await;
    });
    (addr, hits)
}

async fn secret_service() -> (SocketAddr, Arc<AtomicUsize>) {
    listener(|| "the secret".into_response()).await
}

/// Names and the addresses they resolve to; other names do not resolve.
#[derive(Debug)]
struct FixedLookup(HashMap<&'static str, IpAddr>);

impl LookupHost for FixedLookup {
    fn lookup(&self, host: &str) -> BoxFuture<'static, io::Result<Vec<IpAddr>>> {
        let found = self.0.get(host).copied();
        Box::pin(async move {
            found
                .map(|address| vec![address])
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no such name"))
        })
    }
}

/// `tools.example` resolves to 127.0.0.1 (a rebinding name, or a stale
/// record); `allowed` is `[tools] allowed_hosts`.
fn client(allowed: &str) -> ToolClient {
    let lookup = FixedLookup(HashMap::from([(
        "tools.example",
        IpAddr::from([127, 0, 0, 1]),
    )]));
    let config = ToolsConfig {
        allowed_hosts: AllowedHosts::parse(allowed).expect("valid allow-list"),
    };
    ToolClient::with_lookup(&config, Arc::new(lookup)).expect("client")
}

fn tool_at(url: String) -> HttpToolSpec {
    serde_json::from_value(serde_json::json!({"name": "weather", "url": url})).expect("a tool")
}

async fn post_persona(server: &TestServer, tool_url: &str) -> (u16, Value) {
    let body = serde_json::json!({
        "name": "snoop",
        "tools": [{"name": "weather", "url": tool_url}],
    })
    .to_string();
    let request = json_request(server.addr, "POST", "/api/personas", &body);
    let (status, _, answer) = http_exchange(server.addr, request).await;
    (status, serde_json::from_str(&answer).expect("JSON"))
}

fn problems(answer: &Value) -> Vec<String> {
    assert_eq!(answer["error"]["code"], "invalid_persona", "{answer}");
    serde_json::from_value(answer["error"]["problems"].clone()).expect("problems")
}

#[tokio::test]
async fn tools_at_internal_addresses_are_refused_when_saved() {
    let (service, hits) = secret_service().await;
    let server = TestServer::start().await;
    let cases = [
        (
            format!("http://{service}/weather"),
            "127.0.0.1 is a loopback address",
        ),
        (
            "http://169.254.169.254/latest/meta-data/".to_owned(),
            "169.254.169.254 is a cloud metadata endpoint",
        ),
        (
            format!("http://localhost:{}/", service.port()),
            "localhost is a loopback address",
        ),
        ("http://[::ffff:10.0.0.1]/".to_owned(), "a private address"),
        (
            "http://metadata.google.internal/computeMetadata/v1/".to_owned(),
            "a cloud metadata endpoint",
        ),
    ];
    for (url, reason) in cases {
        let (status, answer) = post_persona(&server, &url).await;
        assert_eq!(status, 422, "{url}: {answer}");
        let listed = problems(&answer);
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert!(
            listed[0].contains("not allowed") && listed[0].contains(reason),
            "{url}: {listed:?}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    server.stop().await;
}

#[tokio::test]
async fn allowed_hosts_may_be_saved() {
    let server = TestServer::start_with(|config| {
        config.tools.allowed_hosts = AllowedHosts::parse("127.0.0.1").expect("valid");
    })
    .await;
    let (status, answer) = post_persona(&server, "http://127.0.0.1:9/weather").await;
    assert_eq!(status, 201, "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_when_called() {
    let (service, hits) = secret_service().await;
    let tool = tool_at(format!("http://tools.example:{}/weather", service.port()));
    // Saving cannot know where the name will resolve.
    assert!(
        tool_url_passes_save_checks(&tool),
        "a name passes the checks on save"
    );

    let answer = client("").call(&tool, r#"{"city":"Paris"}"#).await;
    assert_eq!(answer.outcome, ToolOutcome::ForbiddenAddress, "{answer:?}");
    assert_eq!(
        answer.text,
        "error: the tool's address is not allowed \
         (tools.example resolves to 127.0.0.1, a loopback address)"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");

    // An address literal never goes through the resolver: checked too.
    let literal = tool_at(format!("http://{service}/weather"));
    let answer = client("").call(&literal, "{}").await;
    assert_eq!(answer.outcome, ToolOutcome::ForbiddenAddress, "{answer:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing was sent");

    // The operator's own network, allowed by name.
    let answer = client("tools.example").call(&tool, "{}").await;
    assert_eq!(answer.outcome, ToolOutcome::Ok, "{answer:?}");
    assert_eq!(answer.text, "the secret");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

fn tool_url_passes_save_checks(tool: &HttpToolSpec) -> bool {
    let spec = voxgate_core::persona::PersonaSpec {
        name: "p".into(),
        tools: vec![tool.clone()],
        ..Default::default()
    };
    spec.problems(&AllowedHosts::default()).is_empty()
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let (secret, secret_hits) = secret_service().await;
    let target = format!("http://{secret}/admin");
    let (tool_addr, _) = listener(move || {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [(header::LOCATION, target.clone())],
        )
            .into_response()
    })
    .await;
    let tool = tool_at(format!("http://tools.example:{}/weather", tool_addr.port()));
    let answer = client("tools.example").call(&tool, "{}").await;
    assert_eq!(answer.outcome, ToolOutcome::HttpError, "{answer:?}");
    assert!(answer.text.contains("HTTP 307"), "{answer:?}");
    assert_eq!(secret_hits.load(Ordering::SeqCst), 0, "not followed");
}

/// A body bigger than any answer a model needs.
const HUGE_BYTES: usize = 50 * 1024 * 1024;
const PIECE_BYTES: usize = 64 * 1024;

#[tokio::test]
async fn a_huge_answer_is_not_read_whole() {
    let sent = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&sent);
    let (tool_addr, _) = listener(move || {
        let counted = Arc::clone(&counted);
        let pieces = futures_util::stream::iter(0..HUGE_BYTES / PIECE_BYTES).map(move |_| {
            counted.fetch_add(PIECE_BYTES, Ordering::SeqCst);
            Ok::<_, io::Error>(Bytes::from(vec![b'x'; PIECE_BYTES]))
        });
        Body::from_stream(pieces).into_response()
    })
    .await;
    let tool = tool_at(format!("http://tools.example:{}/weather", tool_addr.port()));
    let answer = client("tools.example").call(&tool, "{}").await;
    assert_eq!(answer.outcome, ToolOutcome::Ok);
    assert_eq!(answer.text.len(), 4000, "the model gets the first 4000");
    // Socket buffers hold some megabytes; give the server time to fill
    // them, then check it was stopped far short of the whole.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = sent.load(Ordering::SeqCst);
    assert!(sent < HUGE_BYTES / 2, "{sent} bytes were produced");
}
