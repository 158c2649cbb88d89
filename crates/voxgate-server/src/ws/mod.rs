//! WebSocket endpoints. Handlers are generic over any `Sink + Stream` of
//! messages, so tests drive them over in-memory channels on paused time as
//! well as over real sockets.

mod browser;
mod call_socket;
mod events;
mod lanes;
mod twilio;

use axum::body::Bytes;
use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitStream, StreamExt};
use futures_util::{Sink, Stream};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;
use voxgate_core::events::{ProtocolError, ServerMessage};
use voxgate_core::heartbeat::{Heartbeat, HeartbeatAction};
use voxgate_core::ids::SessionId;

pub use lanes::{Outbound, Stalled};

use crate::access::Credential;
use crate::app::AppState;
use crate::http::ApiError;
use crate::metrics::{self, ConnectionGuard, Endpoint};

/// Any duplex stream of WebSocket messages: axum's socket, or a test pair.
pub trait WsSocket:
    Stream<Item = Result<Message, axum::Error>>
    + Sink<Message, Error = axum::Error>
    + Send
    + Unpin
    + 'static
{
}

impl<T> WsSocket for T where
    T: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + Unpin
        + 'static
{
}

/// WebSocket close codes voxgate sends (RFC 6455 §7.4.1, plus one private code).
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// A data type the endpoint does not take (binary on a JSON endpoint).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A frame whose content is malformed.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A frame that breaks the protocol's rules (order, ids).
    pub const POLICY: u16 = 1008;
    /// A frame over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Nothing arrived for the idle timeout (private use, after HTTP 408).
    pub const IDLE_TIMEOUT: u16 = 4408;
}

/// Why a connection's read side ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadEnd {
    /// The peer sent a close frame.
    PeerClosed,
    /// The socket ended without a close frame.
    PeerGone,
    /// The peer sent a message over the size limit.
    TooLarge,
    /// The socket failed (protocol violation, reset).
    Failed,
    /// Nothing arrived for the idle timeout.
    IdleTimeout,
    /// The peer stopped reading what we send.
    Stalled,
}

impl ReadEnd {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadEnd::PeerClosed => "peer_closed",
            ReadEnd::PeerGone => "peer_gone",
            ReadEnd::TooLarge => "too_large",
            ReadEnd::Failed => "read_error",
            ReadEnd::IdleTimeout => "idle_timeout",
            ReadEnd::Stalled => "stalled",
        }
    }

    /// The close frame to send for this ending, if one can still be sent.
    fn close_frame(self) -> Option<(u16, &'static str)> {
        match self {
            ReadEnd::TooLarge => Some((close_code::TOO_BIG, "message too large")),
            ReadEnd::IdleTimeout => Some((close_code::IDLE_TIMEOUT, "idle timeout")),
            ReadEnd::Failed => Some((close_code::POLICY, "websocket protocol error")),
            ReadEnd::PeerClosed | ReadEnd::PeerGone | ReadEnd::Stalled => None,
        }
    }
}

/// One frame from the peer, after heartbeat and size checks.
#[derive(Debug)]
pub enum Frame {
    /// A text frame.
    Text(Utf8Bytes),
    /// A binary frame.
    Binary(Bytes),
    /// A control frame, already handled.
    Nothing,
    /// The read side is over.
    Ended(ReadEnd),
}

/// The parts every endpoint shares: the read half, the outbound lanes, the
/// heartbeat and the connection's place in the metrics.
pub struct Connection<S> {
    /// Frames from the peer.
    pub stream: SplitStream<S>,
    /// Messages to the peer.
    pub out: Outbound,
    heartbeat: Heartbeat,
    endpoint: Endpoint,
    max_message_bytes: usize,
    guard: ConnectionGuard,
}

impl<S: WsSocket> Connection<S> {
    /// Splits the socket and starts its writer on the server's tracker.
    pub fn open(socket: S, state: &AppState, endpoint: Endpoint) -> Self {
        let (sink, stream) = socket.split();
        let ws = state.config.ws;
        let (out, writer) = lanes::lanes(
            sink,
            endpoint,
            state.config.connection_queue,
            ws.heartbeat.idle_timeout,
        );
        state.lifecycle.tracker.spawn(writer);
        Self {
            stream,
            out,
            heartbeat: Heartbeat::new(ws.heartbeat, Instant::now().into_std()),
            endpoint,
            max_message_bytes: ws.max_message_bytes,
            guard: ConnectionGuard::open(endpoint, state.open_connections.clone()),
        }
    }

    /// When [`Connection::tick`] must next run.
    pub fn deadline(&self) -> Instant {
        Instant::from_std(self.heartbeat.next_deadline())
    }

    /// Sends a ping when one is due; reports an idle peer.
    pub fn tick(&mut self) -> Option<ReadEnd> {
        match self.heartbeat.poll(Instant::now().into_std())? {
            HeartbeatAction::SendPing => self
                .out
                .control(Message::Ping(Bytes::new()))
                .err()
                .map(|Stalled| ReadEnd::Stalled),
            HeartbeatAction::Close => Some(ReadEnd::IdleTimeout),
        }
    }

    /// Restarts the idle clock after the server spent a while not reading
    /// (a store lookup): the peer's silence counts from now.
    pub fn listening_again(&mut self) {
        self.heartbeat.heard(Instant::now().into_std());
    }

    /// Classifies what the read half produced. Anything at all from the
    /// peer counts as life.
    pub fn classify(&mut self, item: Option<Result<Message, axum::Error>>) -> Frame {
        let message = match item {
            None => return Frame::Ended(ReadEnd::PeerGone),
            Some(Err(e)) => {
                let end = read_error_kind(e);
                if end == ReadEnd::TooLarge {
                    metrics::bad_input(self.endpoint, "too_large");
                }
                return Frame::Ended(end);
            }
            Some(Ok(message)) => message,
        };
        self.heartbeat.heard(Instant::now().into_std());
        let size = match &message {
            Message::Text(t) => t.len(),
            Message::Binary(b) => b.len(),
            _ => 0,
        };
        if size > self.max_message_bytes {
            metrics::bad_input(self.endpoint, "too_large");
            return Frame::Ended(ReadEnd::TooLarge);
        }
        match message {
            Message::Text(text) => Frame::Text(text),
            Message::Binary(bytes) => Frame::Binary(bytes),
            // The WebSocket layer answers pings itself.
            Message::Ping(_) | Message::Pong(_) => Frame::Nothing,
            Message::Close(_) => Frame::Ended(ReadEnd::PeerClosed),
        }
    }

    /// Counts a bad frame on this endpoint.
    pub fn bad_input(&self, kind: &'static str) {
        metrics::bad_input(self.endpoint, kind);
    }

    /// Queues a text frame on the control lane.
    pub fn send_text(&self, text: String) -> Option<ReadEnd> {
        self.out
            .control(Message::Text(text.into()))
            .err()
            .map(|Stalled| ReadEnd::Stalled)
    }

    /// Queues a session-protocol message on the control lane.
    pub fn send(&self, message: &ServerMessage) -> Option<ReadEnd> {
        self.send_text(message.to_json())
    }

    /// Greets a session-protocol client with its id and the heartbeat.
    pub fn greet(&self, session_id: SessionId) -> Option<ReadEnd> {
        let millis = |d: std::time::Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let heartbeat = self.heartbeat.config();
        self.send(&ServerMessage::ConnectionEstablished {
            session_id,
            ping_interval_ms: millis(heartbeat.ping_interval),
            idle_timeout_ms: millis(heartbeat.idle_timeout),
            max_message_bytes: self.max_message_bytes,
        })
    }

    /// Counts a refused client request and answers it with `error`; the
    /// connection stays open.
    pub fn refuse(&self, error: &ProtocolError) -> Option<ReadEnd> {
        self.bad_input(error.code.as_str());
        tracing::debug!(code = error.code.as_str(), message = %error.message, "refused request");
        self.send(&error.to_message())
    }

    /// Ends the connection after the read side ended on its own.
    pub async fn finish(self, end: ReadEnd) {
        match end.close_frame() {
            Some((code, reason)) => self.close(code, reason, end.as_str()).await,
            None => self.guard.closed(end.as_str()),
        }
    }

    /// Sends a close frame after what is queued, then completes the closing
    /// handshake: reads (and drops) until the peer's close arrives or
    /// [`CLOSE_LINGER`] passes. Dropping the socket at once would make the
    /// kernel answer the peer's in-flight frames with a reset, which
    /// discards the close frame before the peer reads it.
    pub async fn close(self, code: u16, reason: &'static str, metric_reason: &'static str) {
        let Connection {
            mut stream,
            out,
            guard,
            ..
        } = self;
        guard.closed(metric_reason);
        tracing::debug!(code, reason, "closing connection");
        out.close(code, reason);
        let linger = Instant::now() + CLOSE_LINGER;
        while let Ok(Some(Ok(message))) = tokio::time::timeout_at(linger, stream.next()).await {
            if matches!(message, Message::Close(_)) {
                break;
            }
        }
    }
}

/// A fresh session id for a connection.
pub fn new_session_id() -> SessionId {
    // A v4 UUID is always a valid id: 36 printable ASCII characters.
    SessionId::new(uuid::Uuid::new_v4().to_string())
        .unwrap_or_else(|_| unreachable!("a UUID is a valid session id"))
}

/// How long a closing connection waits for the peer's close frame.
pub const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

fn read_error_kind(error: axum::Error) -> ReadEnd {
    let inner = error.into_inner();
    match inner.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => ReadEnd::TooLarge,
        Some(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
            ReadEnd::PeerGone
        }
        Some(tungstenite::Error::Protocol(
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake,
        )) => ReadEnd::PeerGone,
        _ => {
            tracing::debug!(error = %inner, "websocket read failed");
            ReadEnd::Failed
        }
    }
}

/// Why a new call connection is refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The server is draining.
    Draining,
    /// Every call slot is taken.
    AtCapacity,
    /// The agent's models are not loaded (yet).
    NotReady,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let message = match self {
            Refusal::Draining => "draining: not taking new calls",
            Refusal::AtCapacity => "at capacity: not taking new calls",
            Refusal::NotReady => "not ready: the agent's models are not loaded",
        };
        (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
    }
}

/// Takes a call slot for a new carrier or browser connection, or says why not.
fn admit_call(state: &AppState, endpoint: Endpoint) -> Result<OwnedSemaphorePermit, Refusal> {
    if state.lifecycle.draining.is_cancelled() {
        metrics::refused(endpoint.as_str(), "draining");
        return Err(Refusal::Draining);
    }
    if !state.agent.borrow().takes_calls() {
        metrics::refused(endpoint.as_str(), "not_ready");
        return Err(Refusal::NotReady);
    }
    state.call_slots.clone().try_acquire_owned().map_err(|_| {
        metrics::refused(endpoint.as_str(), "capacity");
        Refusal::AtCapacity
    })
}

fn configure(upgrade: WebSocketUpgrade, state: &AppState) -> WebSocketUpgrade {
    let max = state.config.ws.max_message_bytes;
    upgrade.max_message_size(max).max_frame_size(max)
}

/// `GET /stream`: Twilio Media Streams. With a Twilio auth token, only
/// upgrades Twilio signed are taken (403 otherwise, before the upgrade);
/// with a public URL and no token, none are.
pub async fn stream_upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    upgrade: WebSocketUpgrade,
) -> Response {
    if let Err(e) = crate::twilio_routes::check_stream_signature(&state, &headers, &uri) {
        metrics::refused(Endpoint::Stream.as_str(), "signature");
        return e.into_response();
    }
    match admit_call(&state, Endpoint::Stream) {
        Err(refusal) => refusal.into_response(),
        Ok(slot) => {
            let tracker = state.lifecycle.tracker.clone();
            configure(upgrade, &state)
                .on_upgrade(move |socket| tracker.track_future(twilio::run(socket, state, slot)))
        }
    }
}

/// `GET /browser-stream`: browser calls. A call token is used up only
/// once the call is admitted, so a refused call leaves it usable.
pub async fn browser_upgrade(
    State(state): State<AppState>,
    Extension(credential): Extension<Credential>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let slot = match admit_call(&state, Endpoint::BrowserStream) {
        Err(refusal) => return refusal.into_response(),
        Ok(slot) => slot,
    };
    let guest = match credential {
        Credential::Admin => None,
        Credential::CallToken(token) => {
            let now = Instant::now().into_std();
            match state.access.call_tokens.redeem(&token, now) {
                Some(grant) => Some(grant),
                None => {
                    metrics::access_denied("call_token", true);
                    return ApiError::Unauthorized("the call token was used meanwhile".into())
                        .into_response();
                }
            }
        }
    };
    let tracker = state.lifecycle.tracker.clone();
    configure(upgrade, &state)
        .on_upgrade(move |socket| tracker.track_future(browser::run(socket, state, slot, guest)))
}

/// `GET /events`: monitors. Monitors stay welcome while draining: they
/// watch the remaining calls end.
pub async fn events_upgrade(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let Ok(slot) = state.events_slots.clone().try_acquire_owned() else {
        metrics::refused(Endpoint::Events.as_str(), "capacity");
        return ApiError::TooManyRequests(format!(
            "{} monitor connections are open: the most this server takes",
            state.config.limits.events_connections
        ))
        .into_response();
    };
    let tracker = state.lifecycle.tracker.clone();
    configure(upgrade, &state)
        .on_upgrade(move |socket| tracker.track_future(events::run(socket, state, slot)))
}

pub use browser::run as run_browser;
pub use events::run as run_events;
pub use twilio::run as run_twilio;
