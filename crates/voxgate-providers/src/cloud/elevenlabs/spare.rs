//! The spare socket: connected and initialised ahead of the next
//! sentence, so that a sentence starts without a handshake.
//!
//! One task owns the spare and is reached through a channel; it runs in
//! the scope the provider was built with (the server's), as does the
//! closing of the sockets it lets go. It opens a
//! replacement whenever the spare is taken or has waited `max_idle` (the
//! old one serves until the new one is ready), and watches the idle
//! socket: one that closes, or says anything, is dropped. A spare that
//! could not be opened, or that died, is not retried on a timer: the next
//! sentence connects for itself and asks for a new spare, so a vendor that
//! is down or refuses the key is not hammered.

use std::future::{self, Future};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use super::client::{Connection, Dialer};
use crate::{ProviderError, TaskScope};

type Take = oneshot::Sender<Option<Connection>>;
type Opening = Pin<Box<dyn Future<Output = Result<Connection, ProviderError>> + Send>>;

/// The handle to the task that keeps the spare; the task ends, closing
/// the spare, when every handle is gone or its scope is cancelled.
#[derive(Debug)]
pub(super) struct Spares {
    requests: mpsc::Sender<Take>,
}

impl Spares {
    /// Starts the task in `scope`; it opens the first spare at once.
    pub(super) fn start(dialer: Arc<Dialer>, max_idle: Duration, scope: &TaskScope) -> Self {
        let (requests, taken) = mpsc::channel(16);
        scope.spawn(keep_spare(dialer, max_idle, taken, scope.clone()));
        Self { requests }
    }

    /// The spare, if one is ready.
    pub(super) async fn take(&self) -> Option<Connection> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(reply).await.ok()?;
        answer.await.ok().flatten()
    }
}

async fn keep_spare(
    dialer: Arc<Dialer>,
    max_idle: Duration,
    mut requests: mpsc::Receiver<Take>,
    scope: TaskScope,
) {
    let open = |dialer: &Arc<Dialer>| -> Opening {
        let dialer = Arc::clone(dialer);
        Box::pin(async move { dialer.open().await })
    };
    let mut spare: Option<Connection> = None;
    let mut opening: Option<Opening> = Some(open(&dialer));
    loop {
        let refresh_at = match (&spare, &opening) {
            (Some(connection), None) => Some(connection.opened_at + max_idle),
            _ => None,
        };
        tokio::select! {
            request = requests.recv() => {
                let Some(reply) = request else {
                    if let Some(connection) = spare.take() {
                        connection.retire(&scope);
                    }
                    return;
                };
                // A requester that gave up leaves the spare for the next.
                if let Err(unsent) = reply.send(spare.take()) {
                    spare = unsent;
                }
                if spare.is_none() && opening.is_none() {
                    opening = Some(open(&dialer));
                }
            }
            opened = finish(&mut opening) => {
                opening = None;
                let replaced = match opened {
                    Ok(connection) => spare.replace(connection),
                    Err(error) => {
                        tracing::debug!(%error, "cannot open a spare socket");
                        spare.take()
                    }
                };
                if let Some(old) = replaced {
                    old.retire(&scope);
                }
            }
            () = sleep_until(refresh_at) => {
                opening = Some(open(&dialer));
            }
            event = idle_event(&mut spare) => {
                if let Some(Ok(Message::Ping(_) | Message::Pong(_))) = event {
                    continue;
                }
                tracing::debug!(?event, "the spare socket went away");
                if let Some(connection) = spare.take() {
                    connection.retire(&scope);
                }
            }
        }
    }
}

async fn finish(opening: &mut Option<Opening>) -> Result<Connection, ProviderError> {
    match opening {
        Some(future) => future.await,
        None => future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => future::pending().await,
    }
}

async fn idle_event(spare: &mut Option<Connection>) -> Option<Result<Message, tungstenite::Error>> {
    match spare {
        Some(connection) => connection.socket.next().await,
        None => future::pending().await,
    }
}
