//! The whole server on the machine's PostgreSQL: a call is recorded there
//! and read back through the API.

mod common;

use common::{TestServer, http_get};
use sqlx::Connection;
use voxgate_testkit::{TwilioCaller, close_code, connect, send_text, ulaw_silence_frame};

fn base_url() -> String {
    std::env::var("VOXGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn admin(sql: &str) {
    let mut conn = sqlx::PgConnection::connect(&base_url())
        .await
        .expect("connect to the test PostgreSQL (set VOXGATE_TEST_POSTGRES_URL)");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

#[tokio::test]
async fn calls_are_recorded_in_postgres() {
    let name = format!("voxgate_srv_{}", uuid::Uuid::new_v4().simple());
    admin(&format!("CREATE DATABASE {name}")).await;
    let url = match base_url().rsplit_once('/') {
        Some((server, _)) => format!("{server}/{name}"),
        None => panic!("unexpected Postgres URL"),
    };
    let server = TestServer::start_with(|c| c.database_url = url).await;

    let mut caller = TwilioCaller::new("pg000001");
    let mut twilio = connect(server.addr, "/stream").await;
    send_text(
        &mut twilio,
        caller.start("+14155550100", "+14155550199", "support"),
    )
    .await;
    for _ in 0..10 {
        send_text(&mut twilio, caller.media(&ulaw_silence_frame())).await;
    }
    send_text(&mut twilio, caller.stop()).await;
    assert_eq!(close_code(&mut twilio).await, Some(1000));

    let record = server.record("CApg000001").await;
    assert_eq!(record["persona"], "support");
    assert_eq!(record["disposition"], "completed");
    let (status, body) = http_get(server.addr, "/api/calls?limit=10").await;
    assert_eq!(status, 200);
    assert!(body.contains("CApg000001"), "{body}");
    server.stop().await;
    admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await;
}
