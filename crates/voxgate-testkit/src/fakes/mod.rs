//! Fakes of the cloud vendors, on loopback, speaking each vendor's
//! documented protocol byte for byte: tests and benchmarks point voxgate's
//! clients at them through the base-URL settings. Each fake records what it
//! was sent and can be told to misbehave the ways the real vendor does
//! (disconnect mid-stream, 401, 429 with `retry-after`, slow first byte,
//! malformed messages, idle timeout).

pub mod deepgram;
pub mod elevenlabs;
pub mod openai;
pub mod openai_realtime;
pub mod twilio;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A fake vendor listening on loopback; it stops when dropped.
#[derive(Debug)]
pub struct FakeServer {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl FakeServer {
    /// Serves `router` on a free loopback port.
    pub async fn serve(router: axum::Router) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding a loopback port");
        let addr = listener.local_addr().expect("a bound address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeServer { addr, task }
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, the base URL to configure.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
