//! The accept loop: HTTP/1.1 connections with a header-read timeout (which
//! also bounds idle keep-alive waits), a cap on open connections in all and
//! per IP address (a WebSocket holds its place until it closes), and a
//! rate limit on new connections per IP address.
//! Over a limit, the peer gets one short HTTP answer (429 for the rate,
//! 503 for the caps) and the connection is closed; nothing is spawned for
//! it. When the server stops, connections get a moment to finish their
//! answer, then are dropped, so half-open ones never hold up the exit.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::LimitsConfig;
use crate::metrics;

/// How long connections may finish what they are doing once the server
/// stops (WebSocket calls have already been ended by then).
const STOP_GRACE: Duration = Duration::from_secs(1);

/// Refused connections read before they are closed, at most at once.
const LINGERING_REFUSALS: usize = 64;

/// How long a refused connection is read before it is closed.
const REFUSAL_LINGER: Duration = Duration::from_millis(500);

/// Why a new connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Every connection slot is taken.
    ServerFull,
    /// This address has its share of connections open.
    TooManyFromAddress,
    /// This address opens connections too fast.
    TooFast,
}

impl Refused {
    fn label(self) -> &'static str {
        match self {
            Refused::ServerFull => "connections",
            Refused::TooManyFromAddress => "connections_per_ip",
            Refused::TooFast => "connection_rate",
        }
    }

    /// The whole answer: a status line and a JSON error, then close.
    fn answer(self) -> &'static [u8] {
        match self {
            Refused::TooFast => {
                b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n\
                  Connection: close\r\nRetry-After: 1\r\nContent-Length: 93\r\n\r\n\
                  {\"error\":{\"code\":\"too_many_requests\",\"message\":\"too many new connections from this address\"}}"
            }
            Refused::TooManyFromAddress | Refused::ServerFull => {
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
                  Connection: close\r\nRetry-After: 1\r\nContent-Length: 79\r\n\r\n\
                  {\"error\":{\"code\":\"too_many_connections\",\"message\":\"too many open connections\"}}"
            }
        }
    }
}

/// Open connections, in all and by address, and the per-address rate.
#[derive(Debug)]
pub struct ConnectionLimits {
    slots: Arc<Semaphore>,
    per_ip: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
    rate: DefaultKeyedRateLimiter<IpAddr>,
}

/// One admitted connection; dropping it frees its slots.
#[derive(Debug)]
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
    _slot: OwnedSemaphorePermit,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open();
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnectionLimits {
    /// Limits as configured.
    pub fn new(limits: &LimitsConfig) -> Arc<Self> {
        let per_second =
            NonZeroU32::new(limits.connections_per_ip_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = per_second.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        Arc::new(Self {
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            per_ip: limits.max_connections_per_ip,
            open: Mutex::default(),
            rate: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
        })
    }

    fn open(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Every operation is one increment or decrement: a poisoned map is consistent.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the slots for a connection from `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refused> {
        if self.rate.check_key(&ip).is_err() {
            return Err(Refused::TooFast);
        }
        // The rate limiter keeps a cell per address: forget idle ones so a
        // scan of many addresses cannot grow it without end.
        if self.rate.len() > 10_000 {
            self.rate.retain_recent();
        }
        let slot = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::ServerFull)?;
        let mut open = self.open();
        let count = open.entry(ip).or_insert(0);
        if *count >= self.per_ip {
            return Err(Refused::TooManyFromAddress);
        }
        *count += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            ip,
            _slot: slot,
        })
    }
}

/// A connection's socket with its slot: the slot is freed when the socket
/// is dropped, which for a WebSocket is when the upgraded connection ends,
/// not when its HTTP exchange does.
struct SlottedStream {
    tcp: TcpStream,
    _slot: ConnectionSlot,
}

impl AsyncRead for SlottedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for SlottedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Accepts connections until `stop` is cancelled, then gives open ones
/// [`STOP_GRACE`] to finish and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: &LimitsConfig,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let admission = ConnectionLimits::new(limits);
    let header_timeout = limits.header_timeout;
    let connections = TaskTracker::new();
    let refusals = Arc::new(Semaphore::new(LINGERING_REFUSALS));
    loop {
        let accepted = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: transient; back off
                // rather than spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match admission.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refused) => {
                refuse(tcp, peer, refused, &refusals, &connections);
                continue;
            }
        };
        // Media frames are small and latency-bound: never wait for Nagle.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        let io = SlottedStream { tcp, _slot: slot };
        connections.spawn(async move {
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout);
            let connection = builder
                .serve_connection(TokioIo::new(io), service)
                .with_upgrades();
            tokio::pin!(connection);
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(e) = served {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                }
                () = stop.cancelled() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STOP_GRACE, connection).await;
                }
            }
        });
    }
    drop(listener);
    connections.close();
    // Each connection ends within STOP_GRACE of `stop`; the margin covers
    // scheduling on a loaded machine.
    let _ = tokio::time::timeout(STOP_GRACE * 2, connections.wait()).await;
    Ok(())
}

/// Answers a refused connection without reading it, then closes it.
///
/// Closing a socket whose request is still unread makes the kernel send a
/// reset, which may destroy the answer before the peer reads it. So, while
/// few refusals are in flight, the refused request is read (briefly, and
/// at most a few KiB) before the close; in a flood, sockets are simply
/// closed, and cost nothing.
fn refuse(
    tcp: TcpStream,
    peer: SocketAddr,
    refused: Refused,
    lingering: &Arc<Semaphore>,
    tasks: &TaskTracker,
) {
    metrics::limited(refused.label());
    tracing::debug!(%peer, limit = refused.label(), "connection refused");
    // A fresh socket's send buffer takes these few bytes at once; if not,
    // the peer simply sees the close.
    let _ = tcp.try_write(refused.answer());
    let Ok(permit) = lingering.clone().try_acquire_owned() else {
        return;
    };
    tasks.spawn(async move {
        let _permit = permit;
        let mut tcp = tcp;
        let _ = tcp.shutdown().await;
        let mut sink = [0; 4096];
        let _ = tokio::time::timeout(REFUSAL_LINGER, tcp.read(&mut sink)).await;
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_answers_have_the_right_length() {
        for refused in [Refused::TooFast, Refused::ServerFull] {
            let answer = std::str::from_utf8(refused.answer()).expect("ASCII");
            let (head, body) = answer.split_once("\r\n\r\n").expect("head and body");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.parse().ok())
                .expect("length");
            assert_eq!(length, body.len(), "{answer}");
            serde_json::from_str::<serde_json::Value>(body).expect("JSON body");
        }
    }

    #[test]
    fn caps_per_address_and_in_all() {
        let limits = ConnectionLimits::new(&LimitsConfig {
            max_connections: 3,
            max_connections_per_ip: 2,
            connections_per_ip_per_second: 100,
            ..LimitsConfig::default()
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let first = limits.admit(a).expect("first");
        let _second = limits.admit(a).expect("second");
        assert_eq!(limits.admit(a).err(), Some(Refused::TooManyFromAddress));
        let _third = limits.admit(b).expect("another address");
        assert_eq!(limits.admit(b).err(), Some(Refused::ServerFull));
        drop(first);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn new_connections_per_address_are_rate_limited() {
        let limits = ConnectionLimits::new(&LimitsConfig {
            connections_per_ip_per_second: 5,
            ..LimitsConfig::default()
        });
        let a: IpAddr = [10, 0, 0, 1].into();
        let admitted = (0..50).filter(|_| limits.admit(a).is_ok()).count();
        // The burst is twice the rate; a slow test may earn one or two more.
        assert!((10..=12).contains(&admitted), "{admitted} admitted");
        assert!(limits.admit([10, 0, 0, 2].into()).is_ok());
    }
}
