//! The IO of one call: its stream handle, and the task that owns the
//! socket. The task reacts to one event at a time (the caller's audio and
//! requests, the socket, the connect in progress, the keepalive and
//! finalize timers, the call's end), so the call's state has one owner and
//! no locks. It runs on the call's tracker: it ends when the handle is
//! dropped or the call's token is cancelled, after a close handshake
//! bounded by `close_timeout`, and a draining server waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use super::backlog::Backlog;
use super::messages::{self, CLOSE_STREAM, FINALIZE, KEEP_ALIVE, ServerMessage};
use super::turn::Turn;
use super::{Shared, VENDOR, authorization};
use crate::cloud::handshake_error;
use crate::supervisor::Permit;
use crate::{ProviderError, SttStream, TaskScope};

/// Audio frames queued between the caller and the task: 10 s of 20 ms
/// frames. Past that the task is stuck and frames are dropped rather than
/// blocking the caller.
const AUDIO_QUEUE: usize = 500;
/// Partial transcripts queued for display; older ones are worthless.
const PARTIALS_QUEUE: usize = 64;
/// Requests queued between the caller and the task. A call makes a few
/// per turn, and the task takes them before anything else, so a full queue
/// means the task is stuck (on a socket that takes nothing): the stream is
/// then failed rather than made to wait or to grow.
const REQUEST_QUEUE: usize = 32;

/// The call's end of the task.
pub(super) struct DeepgramStream {
    audio: mpsc::Sender<Bytes>,
    requests: mpsc::Sender<Request>,
    partials: Option<mpsc::Receiver<String>>,
    shared: Arc<Shared>,
    /// A request found the queue full: the task fell behind for good, and
    /// a dropped turn boundary would mix turns, so every transcription
    /// fails from then on.
    stuck: bool,
}

/// What the call asks of its task, besides audio.
enum Request {
    Transcribe(mpsc::Sender<Result<String, ProviderError>>),
    NextTurn,
}

/// Starts the call's task in `scope` and returns its handle.
pub(super) fn open(shared: Arc<Shared>, scope: &TaskScope) -> DeepgramStream {
    let (audio, audio_rx) = mpsc::channel(AUDIO_QUEUE);
    let (requests, requests_rx) = mpsc::channel(REQUEST_QUEUE);
    let (partials_tx, partials) = mpsc::channel(PARTIALS_QUEUE);
    let bytes_per_second = messages::SAMPLE_RATE as f64 * 2.0;
    let backlog_bytes = (shared.config.connect_buffer.as_secs_f64() * bytes_per_second) as usize;
    let task = Task {
        _active: ActiveStream::new(shared.clone()),
        link: Link::Connecting(connect(shared.clone(), Duration::ZERO)),
        shared: shared.clone(),
        audio: audio_rx,
        requests: requests_rx,
        partials: partials_tx,
        turn: Turn::default(),
        backlog: Backlog::new(backlog_bytes),
        pending: Vec::new(),
        drops_in_a_row: 0,
    };
    // On the tracker rather than `scope.spawn`: the task watches the token
    // itself, so that the call's end still says goodbye to Deepgram.
    drop(scope.tracker().spawn(task.run(scope.token().clone())));
    DeepgramStream {
        audio,
        requests,
        partials: Some(partials),
        shared,
        stuck: false,
    }
}

impl DeepgramStream {
    /// Queues `request` without waiting, or gives it back when the task is
    /// stuck (now or before).
    fn request(&mut self, request: Request) -> Result<(), Request> {
        if self.stuck {
            return Err(request);
        }
        match self.requests.try_send(request) {
            // A closed queue means the task has ended: the answer's sender
            // is dropped with the request, and the receiver reports that.
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Full(request)) => {
                tracing::warn!(
                    vendor = VENDOR,
                    "the stream's task is stuck; failing the stream"
                );
                self.stuck = true;
                Err(request)
            }
        }
    }
}

impl SttStream for DeepgramStream {
    fn audio(&mut self, samples: &[i16]) {
        // Deepgram takes an empty binary frame for the end of the stream.
        if samples.is_empty() {
            return;
        }
        let frame = Bytes::from(messages::linear16(samples));
        if let Err(mpsc::error::TrySendError::Full(_)) = self.audio.try_send(frame) {
            self.shared
                .counters
                .dropped_audio_frames
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The audio was already streamed, so `utterance` is not needed.
    fn transcribe(
        &mut self,
        _utterance: Vec<i16>,
    ) -> mpsc::Receiver<Result<String, ProviderError>> {
        let (answer, receiver) = mpsc::channel(1);
        if let Err(Request::Transcribe(answer)) = self.request(Request::Transcribe(answer)) {
            // The channel is new and empty, so there is room for this one.
            let _ = answer.try_send(Err(ProviderError::Unavailable {
                provider: VENDOR,
                reason: "the stream fell behind its requests".to_owned(),
            }));
        }
        receiver
    }

    fn next_turn(&mut self) {
        // One that cannot be queued has failed the stream (see `stuck`).
        let _ = self.request(Request::NextTurn);
    }

    fn partials(&mut self) -> Option<mpsc::Receiver<String>> {
        self.partials.take()
    }
}

/// A client WebSocket to Deepgram (boxed: it is large, and moves between
/// states).
type Socket = Box<WebSocketStream<MaybeTlsStream<TcpStream>>>;

/// A connect in progress: back-off, then the supervised attempts.
type Connecting = Pin<Box<dyn Future<Output = Result<(Socket, Permit), ProviderError>> + Send>>;

/// The state of the call's connection to Deepgram.
enum Link {
    Connecting(Connecting),
    Open(Open),
    /// Connecting failed for good: every transcription answers this.
    Failed(ProviderError),
}

struct Open {
    socket: Socket,
    /// The vendor slot, held for as long as the socket lives.
    _permit: Permit,
    /// When a frame last went out, for the keepalive.
    last_sent: Instant,
}

/// A `transcribe` waiting for the results of its `Finalize`.
struct Pending {
    answer: mpsc::Sender<Result<String, ProviderError>>,
    deadline: Instant,
}

/// One thing that happened, handled once the wait for it is over.
enum Event {
    /// The call's token was cancelled.
    CallEnded,
    Request(Option<Request>),
    Audio(Option<Bytes>),
    Connected(Result<(Socket, Permit), ProviderError>),
    Received(Option<Result<Message, tungstenite::Error>>),
    KeepAlive,
    FinalizeDeadline,
}

struct Task {
    shared: Arc<Shared>,
    /// Counts the task among the active streams until it ends.
    _active: ActiveStream,
    link: Link,
    audio: mpsc::Receiver<Bytes>,
    requests: mpsc::Receiver<Request>,
    partials: mpsc::Sender<String>,
    turn: Turn,
    backlog: Backlog,
    pending: Vec<Pending>,
    /// Sockets lost since the last message Deepgram sent: a socket that
    /// opens and drops at once must not be reconnected for ever.
    drops_in_a_row: u32,
}

impl Task {
    async fn run(mut self, call: CancellationToken) {
        loop {
            let keepalive_at = match &self.link {
                Link::Open(open) => Some(open.last_sent + self.shared.config.keepalive_interval),
                _ => None,
            };
            let deadline = self.pending.iter().map(|p| p.deadline).min();
            // The call's end first; then requests, so a turn boundary is
            // never taken after results that arrived later; then audio, so
            // it goes out as it comes.
            let event = tokio::select! {
                biased;
                () = call.cancelled() => Event::CallEnded,
                request = self.requests.recv() => Event::Request(request),
                frame = self.audio.recv() => Event::Audio(frame),
                event = self.link.next() => event,
                () = at(keepalive_at) => Event::KeepAlive,
                () = at(deadline) => Event::FinalizeDeadline,
            };
            match event {
                // The call ended, or dropped the stream.
                Event::CallEnded | Event::Request(None) | Event::Audio(None) => break,
                Event::Request(Some(Request::Transcribe(answer))) => {
                    // Every frame the caller sent before asking is queued
                    // already: send it first, so `Finalize` flushes it too.
                    while let Ok(frame) = self.audio.try_recv() {
                        self.send_audio(frame).await;
                    }
                    self.transcribe(answer).await;
                }
                Event::Request(Some(Request::NextTurn)) => self.turn.next_turn(),
                Event::Audio(Some(frame)) => self.send_audio(frame).await,
                Event::Connected(Ok((socket, permit))) => self.opened(socket, permit).await,
                Event::Connected(Err(error)) => self.fail(error),
                Event::Received(Some(Ok(message))) => self.received(message),
                Event::Received(Some(Err(error))) => self.lost(&error.to_string()),
                Event::Received(None) => self.lost("the socket ended"),
                Event::KeepAlive => self.send(Message::text(KEEP_ALIVE)).await,
                Event::FinalizeDeadline => self.finalize_deadline(),
            }
        }
        self.close().await;
    }

    async fn opened(&mut self, socket: Socket, permit: Permit) {
        tracing::debug!(vendor = VENDOR, "socket open");
        self.link = Link::Open(Open {
            socket,
            _permit: permit,
            last_sent: Instant::now(),
        });
        while matches!(self.link, Link::Open(_)) {
            let Some(frame) = self.backlog.pop() else {
                break;
            };
            self.send(Message::Binary(frame)).await;
        }
        // A transcription asked for while the socket was away.
        if !self.pending.is_empty() {
            self.send(Message::text(FINALIZE)).await;
        }
    }

    async fn send_audio(&mut self, frame: Bytes) {
        match self.link {
            Link::Open(_) => self.send(Message::Binary(frame)).await,
            Link::Connecting(_) => {
                let dropped = self.backlog.push(frame);
                self.shared
                    .counters
                    .dropped_audio_frames
                    .fetch_add(dropped as u64, Ordering::Relaxed);
            }
            Link::Failed(_) => {}
        }
    }

    async fn transcribe(&mut self, answer: mpsc::Sender<Result<String, ProviderError>>) {
        if let Link::Failed(error) = &self.link {
            let _ = answer.try_send(Err(error.clone()));
            return;
        }
        self.pending.push(Pending {
            answer,
            deadline: Instant::now() + self.shared.config.finalize_timeout,
        });
        if matches!(self.link, Link::Open(_)) {
            self.send(Message::text(FINALIZE)).await;
        }
    }

    /// Sends `message` if the socket is open; a failure is a lost socket.
    async fn send(&mut self, message: Message) {
        let Link::Open(open) = &mut self.link else {
            return;
        };
        match open.socket.send(message).await {
            Ok(()) => open.last_sent = Instant::now(),
            Err(error) => self.lost(&error.to_string()),
        }
    }

    fn received(&mut self, message: Message) {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(frame) => {
                // Deepgram says why in the close frame (e.g. 1011 NET-0001
                // for an idle socket); the socket ends right after.
                let why = frame.map_or_else(
                    || "closed without a reason".to_owned(),
                    |f| format!("closed {}: {}", u16::from(f.code), f.reason),
                );
                tracing::info!(vendor = VENDOR, %why, "deepgram closed the socket");
                return;
            }
            Message::Binary(_) => {
                self.malformed(&"an unexpected binary frame");
                return;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => return,
        };
        match messages::decode(&text) {
            Ok(ServerMessage::Results(results)) => {
                self.drops_in_a_row = 0;
                if let Some(partial) = self.turn.apply(&results) {
                    // For display only: when the reader is slow or gone the
                    // newest text comes with the next one.
                    let _ = self.partials.try_send(partial);
                }
                if results.from_finalize {
                    let text = self.turn.finals();
                    for pending in self.pending.drain(..) {
                        let _ = pending.answer.try_send(Ok(text.clone()));
                    }
                }
            }
            Ok(ServerMessage::UtteranceEnd(_) | ServerMessage::SpeechStarted(_)) => {
                self.drops_in_a_row = 0;
            }
            Ok(ServerMessage::Metadata(metadata)) => {
                tracing::debug!(vendor = VENDOR, request_id = %metadata.request_id, "metadata");
            }
            Ok(ServerMessage::Error(error)) => {
                tracing::warn!(
                    vendor = VENDOR,
                    description = %error.description,
                    message = %error.message,
                    "deepgram reported an error"
                );
            }
            Err(error) => self.malformed(&error),
        }
    }

    fn malformed(&self, why: &dyn std::fmt::Display) {
        self.shared
            .counters
            .malformed_messages
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!(vendor = VENDOR, %why, "skipped a malformed message");
    }

    /// The transcriptions whose `Finalize` went unanswered get what has
    /// arrived, the latest interim text included.
    fn finalize_deadline(&mut self) {
        let now = Instant::now();
        let so_far = self.turn.so_far();
        self.pending.retain(|pending| {
            if pending.deadline > now {
                return true;
            }
            tracing::debug!(vendor = VENDOR, "no finalized results in time");
            let _ = pending.answer.try_send(Ok(so_far.clone()));
            false
        });
    }

    /// The socket dropped: reconnect after a back-off, unless it keeps
    /// dropping.
    fn lost(&mut self, why: &str) {
        let supervisor = &self.shared.supervisor;
        supervisor.record_failure();
        self.drops_in_a_row += 1;
        if self.drops_in_a_row > supervisor.policy().retries + 1 {
            self.fail(ProviderError::Unavailable {
                provider: VENDOR,
                reason: format!(
                    "the socket dropped {} times in a row, last: {why}",
                    self.drops_in_a_row
                ),
            });
            return;
        }
        tracing::warn!(vendor = VENDOR, %why, "socket lost, reconnecting");
        self.shared
            .counters
            .reconnects
            .fetch_add(1, Ordering::Relaxed);
        let delay = supervisor.backoff(self.drops_in_a_row - 1);
        self.link = Link::Connecting(connect(self.shared.clone(), delay));
    }

    fn fail(&mut self, error: ProviderError) {
        tracing::warn!(vendor = VENDOR, %error, "cannot transcribe this call");
        for pending in self.pending.drain(..) {
            let _ = pending.answer.try_send(Err(error.clone()));
        }
        self.link = Link::Failed(error);
    }

    /// Asks Deepgram to close and waits, briefly, for it to flush and go.
    async fn close(self) {
        let Link::Open(mut open) = self.link else {
            return;
        };
        let closing = async {
            open.socket.send(Message::text(CLOSE_STREAM)).await?;
            while let Some(message) = open.socket.next().await {
                if let Message::Text(text) = message?
                    && let Ok(ServerMessage::Metadata(metadata)) = messages::decode(&text)
                {
                    tracing::debug!(vendor = VENDOR, request_id = %metadata.request_id, "closed");
                }
            }
            Ok::<_, tungstenite::Error>(())
        };
        match tokio::time::timeout(self.shared.config.close_timeout, closing).await {
            Ok(Ok(())) => self.shared.supervisor.record_success(),
            Ok(Err(error)) => tracing::debug!(vendor = VENDOR, %error, "closing failed"),
            Err(_) => tracing::debug!(vendor = VENDOR, "deepgram did not close in time"),
        }
    }
}

impl Link {
    /// What the connection does next; never, once failed.
    async fn next(&mut self) -> Event {
        match self {
            Link::Connecting(connecting) => Event::Connected(connecting.await),
            Link::Open(open) => Event::Received(open.socket.next().await),
            Link::Failed(_) => std::future::pending().await,
        }
    }
}

/// Completes at `when`; never, without one.
async fn at(when: Option<Instant>) {
    match when {
        Some(when) => sleep_until(when).await,
        None => std::future::pending().await,
    }
}

/// Waits `delay`, then connects under the vendor's supervisor.
fn connect(shared: Arc<Shared>, delay: Duration) -> Connecting {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        shared.supervisor.run(|_| handshake(&shared)).await
    })
}

/// One attempt at the WebSocket handshake.
async fn handshake(shared: &Shared) -> Result<Socket, ProviderError> {
    let unavailable = |reason: String| ProviderError::Unavailable {
        provider: VENDOR,
        reason,
    };
    let mut request = shared
        .url
        .as_str()
        .into_client_request()
        .map_err(|e| unavailable(e.to_string()))?;
    request.headers_mut().insert(
        tungstenite::http::header::AUTHORIZATION,
        authorization(&shared.config.api_key)?,
    );
    // Audio frames are small and late ones are useless: no Nagle.
    match tokio_tungstenite::connect_async_with_config(request, None, true).await {
        Ok((socket, _)) => Ok(Box::new(socket)),
        Err(error) => Err(handshake_error(VENDOR, error)),
    }
}

/// Counts a call's task among the active streams while it lives.
struct ActiveStream(Arc<Shared>);

impl ActiveStream {
    fn new(shared: Arc<Shared>) -> Self {
        shared
            .counters
            .active_streams
            .fetch_add(1, Ordering::Relaxed);
        Self(shared)
    }
}

impl Drop for ActiveStream {
    fn drop(&mut self) {
        self.0
            .counters
            .active_streams
            .fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::super::{DeepgramConfig, DeepgramStt};
    use super::*;
    use crate::Secret;
    use crate::cloud::BaseUrl;
    use crate::supervisor::Supervisor;

    /// A handle whose task never reads its requests, as when it is stuck on
    /// a socket that takes nothing, and the requests it left unread.
    fn stuck_stream() -> (DeepgramStream, mpsc::Receiver<Request>) {
        let stt = DeepgramStt::new(
            DeepgramConfig::new(
                BaseUrl::parse("http://127.0.0.1:9").expect("a valid URL"),
                Secret::new("dg-key"),
            ),
            Supervisor::new(VENDOR, Default::default()),
        );
        let (audio, _) = mpsc::channel(1);
        let (requests, unread) = mpsc::channel(REQUEST_QUEUE);
        let stream = DeepgramStream {
            audio,
            requests,
            partials: None,
            shared: stt.shared,
            stuck: false,
        };
        (stream, unread)
    }

    #[test]
    fn a_task_that_falls_behind_its_requests_fails_the_stream() {
        let (mut stream, mut unread) = stuck_stream();
        for _ in 0..REQUEST_QUEUE {
            stream.next_turn();
        }
        let mut answer = stream.transcribe(Vec::new());
        assert!(
            matches!(
                answer.try_recv(),
                Ok(Err(ProviderError::Unavailable { .. }))
            ),
            "a full queue is answered at once"
        );

        // Even once the task has caught up: a lost turn boundary would mix
        // turns.
        while unread.try_recv().is_ok() {}
        let mut later = stream.transcribe(Vec::new());
        assert!(matches!(
            later.try_recv(),
            Ok(Err(ProviderError::Unavailable { .. }))
        ));
        stream.next_turn();
        assert!(unread.try_recv().is_err(), "nothing more was queued");
    }
}
