//! Connection caps count WebSockets for as long as they are open, not only
//! while their upgrade request is being answered.

mod common;

use std::time::Duration;

use common::{TestServer, http_get};
use voxgate_testkit::connect;

#[tokio::test]
async fn a_websocket_holds_its_connection_slot_until_it_closes() {
    let server = TestServer::start_with(|c| c.limits.max_connections_per_ip = 2).await;
    let first = connect(server.addr, "/events").await;
    let mut second = connect(server.addr, "/events").await;

    let (status, body) = http_get(server.addr, "/healthz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("too_many_connections"), "{body}");

    second.close(None).await.expect("close");
    drop(second);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = http_get(server.addr, "/healthz").await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the closed socket's slot was never freed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(first);
    server.stop().await;
}
