//! A fake OpenAI Realtime API: `GET /v1/realtime?model=…` upgraded to a
//! WebSocket after a bearer-key check (401 before the upgrade otherwise).
//!
//! It records every client event, answers `session.update` with
//! `session.updated` (or an `error` when the session has the other API
//! generation's shape), and plays a scripted conversation: it listens to
//! the appended μ-law audio with an energy detector and, like server VAD,
//! reports `speech_started`, then after enough silence `speech_stopped`,
//! `committed`, the caller's transcript and a response. A test can also
//! make the caller take a turn through [`FakeRealtime::caller_turn`].
//!
//! A spoken response is `response.created`, the assistant item, then
//! deltas of a deterministic μ-law tone (`delta_ms` each, `delta_gap`
//! apart) interleaved with transcript deltas, then the `.done` events and
//! `response.done`. Caller speech during a response cancels it, as
//! `interrupt_response` does. Event names are GA or beta by
//! [`EventNames`].
//!
//! Faults: a wrong key (401), dropping the socket mid-response, an `error`
//! event instead of a response, or dropping every socket on demand.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use voxgate_core::audio::g711::{ulaw_decode_into, ulaw_encode_into};

use super::FakeServer;

/// μ-law bytes per millisecond (8 kHz).
const BYTES_PER_MS: usize = 8;
/// The detector looks at the caller's audio in 20 ms blocks.
const BLOCK_MS: u64 = 20;

/// Which generation of event names the fake speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventNames {
    /// `response.output_audio.delta`, `conversation.item.added`, …; a
    /// `session.update` must have the GA shape.
    Ga,
    /// `response.audio.delta`, `conversation.item.created`, …; the upgrade
    /// must carry `OpenAI-Beta: realtime=v1` and `session.update` the flat
    /// beta shape.
    Beta,
}

/// What the model answers with.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Speech: `audio_ms` of tone whose transcript is `text`.
    Speech {
        /// The transcript.
        text: String,
        /// How much audio.
        audio_ms: u32,
    },
    /// A tool call.
    FunctionCall {
        /// The tool.
        name: String,
        /// Its arguments (JSON text).
        arguments: String,
    },
}

impl Reply {
    /// Speech of `text` lasting `audio_ms`.
    pub fn speech(text: &str, audio_ms: u32) -> Self {
        Reply::Speech {
            text: text.to_owned(),
            audio_ms,
        }
    }
}

/// A way to misbehave, applied to the next response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Drop the socket (no close frame) after this many audio deltas.
    DropMidResponse {
        /// Deltas sent before the drop.
        after_deltas: usize,
    },
    /// Send this `error` event instead of the response.
    Error {
        /// `error.type`.
        kind: String,
        /// `error.code`.
        code: String,
        /// `error.message`.
        message: String,
    },
}

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct RealtimeOptions {
    /// The key clients must present as `Authorization: Bearer …`.
    pub api_key: String,
    /// Event names and session shape.
    pub names: EventNames,
    /// Audio per delta.
    pub delta_ms: u32,
    /// Pause between deltas (zero: as fast as the socket takes them, as
    /// the real API mostly does).
    pub delta_gap: Duration,
    /// Mean absolute level (16-bit) above which a 20 ms block is speech.
    pub speech_level: u32,
    /// Speech needed before `speech_started`.
    pub min_speech_ms: u64,
    /// Silence that ends the caller's turn.
    pub silence_ms: u64,
    /// Replies in order; [`RealtimeOptions::default_reply`] once used up.
    pub replies: Vec<Reply>,
    /// The reply when none is queued.
    pub default_reply: Reply,
    /// Caller transcripts in order; `"Hello."` once used up.
    pub transcripts: Vec<String>,
}

impl Default for RealtimeOptions {
    fn default() -> Self {
        Self {
            api_key: "sk-test-realtime".to_owned(),
            names: EventNames::Ga,
            delta_ms: 100,
            delta_gap: Duration::ZERO,
            speech_level: 1000,
            min_speech_ms: 100,
            silence_ms: 300,
            replies: Vec::new(),
            default_reply: Reply::speech("Hello! How can I help you today?", 1000),
            transcripts: Vec::new(),
        }
    }
}

/// What one upgrade request carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade {
    /// The `model` query parameter.
    pub model: Option<String>,
    /// The `OpenAI-Beta` header.
    pub beta_header: Option<String>,
}

#[derive(Debug)]
enum Command {
    CallerTurn,
    Disconnect,
}

#[derive(Debug, Default)]
struct Record {
    upgrades: Vec<Upgrade>,
    /// (session index, client event)
    events: Vec<(usize, Value)>,
    replies: VecDeque<Reply>,
    transcripts: VecDeque<String>,
    fault: Option<Fault>,
    /// Audio sent per assistant item, in ms.
    item_audio_ms: HashMap<String, u64>,
    live: Vec<mpsc::UnboundedSender<Command>>,
}

#[derive(Debug)]
struct Shared {
    options: RealtimeOptions,
    record: Mutex<Record>,
    /// Bumped whenever a client event is recorded.
    recorded: watch::Sender<usize>,
}

impl Shared {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeRealtime {
    server: FakeServer,
    shared: Arc<Shared>,
    /// Sessions end when this is dropped.
    _alive: watch::Sender<()>,
}

impl FakeRealtime {
    /// Starts the fake on a loopback port.
    pub async fn start(options: RealtimeOptions) -> FakeRealtime {
        let record = Record {
            replies: options.replies.iter().cloned().collect(),
            transcripts: options.transcripts.iter().cloned().collect(),
            ..Record::default()
        };
        let shared = Arc::new(Shared {
            options,
            record: Mutex::new(record),
            recorded: watch::Sender::new(0),
        });
        let (alive, alive_rx) = watch::channel(());
        let router = Router::new()
            .route("/v1/realtime", get(upgrade))
            .with_state((Arc::clone(&shared), alive_rx));
        FakeRealtime {
            server: FakeServer::serve(router).await,
            shared,
            _alive: alive,
        }
    }

    /// `http://127.0.0.1:PORT/v1`: what `OPENAI_BASE_URL` is set to.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.base_url())
    }

    /// The key the fake accepts.
    pub fn api_key(&self) -> &str {
        &self.shared.options.api_key
    }

    /// Every accepted upgrade, in order; a session's index is its place here.
    pub fn upgrades(&self) -> Vec<Upgrade> {
        self.shared.record().upgrades.clone()
    }

    /// Every client event of every session, in order of arrival.
    pub fn events(&self) -> Vec<Value> {
        self.shared
            .record()
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The client events of session `session`.
    pub fn session_events(&self, session: usize) -> Vec<Value> {
        self.shared
            .record()
            .events
            .iter()
            .filter(|(s, _)| *s == session)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// The client events of type `kind`, across sessions.
    pub fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["type"] == kind)
            .collect()
    }

    /// The μ-law audio session `session` appended, concatenated.
    pub fn appended_audio(&self, session: usize) -> Vec<u8> {
        self.session_events(session)
            .iter()
            .filter(|e| e["type"] == "input_audio_buffer.append")
            .filter_map(|e| e["audio"].as_str().and_then(|a| STANDARD.decode(a).ok()))
            .flatten()
            .collect()
    }

    /// How much audio the fake sent for assistant item `item_id`, in ms.
    pub fn item_audio_ms(&self, item_id: &str) -> Option<u64> {
        self.shared.record().item_audio_ms.get(item_id).copied()
    }

    /// Waits until `count` client events of type `kind` arrived (across
    /// sessions); false after `timeout`.
    pub async fn wait_for(&self, kind: &str, count: usize, timeout: Duration) -> bool {
        let mut recorded = self.shared.recorded.subscribe();
        let reached = async {
            loop {
                if self.events_of(kind).len() >= count {
                    return;
                }
                if recorded.changed().await.is_err() {
                    return std::future::pending().await;
                }
            }
        };
        tokio::time::timeout(timeout, reached).await.is_ok()
    }

    /// Queues the next reply.
    pub fn queue_reply(&self, reply: Reply) {
        self.shared.record().replies.push_back(reply);
    }

    /// Misbehaves on the next response.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.record().fault = Some(fault);
    }

    /// Every live session acts as if the caller just spoke a turn.
    pub fn caller_turn(&self) {
        self.command(|| Command::CallerTurn);
    }

    /// Drops every live socket without a close frame.
    pub fn disconnect(&self) {
        self.command(|| Command::Disconnect);
    }

    fn command(&self, command: impl Fn() -> Command) {
        self.shared
            .record()
            .live
            .retain(|session| session.send(command()).is_ok());
    }
}

type AppState = (Arc<Shared>, watch::Receiver<()>);

fn error_body(kind: &str, code: &str, message: &str) -> Value {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

async fn upgrade(
    State((shared, alive)): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let expected = format!("Bearer {}", shared.options.api_key);
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == expected);
    if !authorized {
        let body = error_body(
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        );
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let beta_header = headers
        .get("openai-beta")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if shared.options.names == EventNames::Beta && beta_header.as_deref() != Some("realtime=v1") {
        let body = error_body(
            "invalid_request_error",
            "missing_beta_header",
            "You must send the 'OpenAI-Beta: realtime=v1' header.",
        );
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    }
    let Some(model) = query.get("model").cloned() else {
        let body = error_body(
            "invalid_request_error",
            "missing_model",
            "Missing required parameter: 'model'.",
        );
        return (StatusCode::BAD_REQUEST, axum::Json(body)).into_response();
    };
    let (commands_tx, commands) = mpsc::unbounded_channel();
    let index = {
        let mut record = shared.record();
        record.upgrades.push(Upgrade {
            model: Some(model),
            beta_header,
        });
        record.live.push(commands_tx);
        record.upgrades.len() - 1
    };
    ws.on_upgrade(move |socket| async move {
        let mut alive = alive;
        let mut session = Session::new(index, shared, socket);
        tokio::select! {
            _ = alive.changed() => {}
            () = session.run(commands) => {}
        }
    })
}

/// The energy detector standing in for server VAD.
#[derive(Debug, Default)]
struct Detector {
    /// Bytes not yet making a whole block.
    pending: Vec<u8>,
    /// Audio appended so far, in ms.
    position_ms: u64,
    loud_ms: u64,
    /// While the caller speaks: where the speech started, and the silence since.
    speaking: Option<(u64, u64)>,
}

enum Heard {
    Started { at_ms: u64 },
    Stopped { at_ms: u64 },
}

impl Detector {
    fn push(&mut self, audio: &[u8], options: &RealtimeOptions, heard: &mut Vec<Heard>) {
        self.pending.extend_from_slice(audio);
        let block = BLOCK_MS as usize * BYTES_PER_MS;
        let mut samples = Vec::with_capacity(block);
        while self.pending.len() >= block {
            samples.clear();
            ulaw_decode_into(&self.pending[..block], &mut samples);
            self.pending.drain(..block);
            self.position_ms += BLOCK_MS;
            let level =
                samples.iter().map(|s| s.unsigned_abs() as u64).sum::<u64>() / samples.len() as u64;
            let loud = level > u64::from(options.speech_level);
            match self.speaking.as_mut() {
                None if loud => {
                    self.loud_ms += BLOCK_MS;
                    if self.loud_ms >= options.min_speech_ms {
                        let at_ms = self.position_ms - self.loud_ms;
                        self.speaking = Some((at_ms, 0));
                        heard.push(Heard::Started { at_ms });
                    }
                }
                None => self.loud_ms = 0,
                Some((_, silence)) if loud => *silence = 0,
                Some((_, silence)) => {
                    *silence += BLOCK_MS;
                    if *silence >= options.silence_ms {
                        let at_ms = self.position_ms - *silence;
                        self.speaking = None;
                        self.loud_ms = 0;
                        heard.push(Heard::Stopped { at_ms });
                    }
                }
            }
        }
    }
}

/// A response being sent.
#[derive(Debug)]
struct Responding {
    id: String,
    item_id: String,
    /// Events still to send; each audio delta waits `delta_gap`.
    queue: VecDeque<Value>,
    next_at: Instant,
    /// Drop the socket after this many more deltas.
    drop_after: Option<usize>,
}

/// Server VAD settings from the last `session.update`.
#[derive(Debug, Clone, Copy)]
struct TurnDetection {
    create_response: bool,
    interrupt_response: bool,
}

struct Session {
    index: usize,
    shared: Arc<Shared>,
    socket: WebSocket,
    names: EventNames,
    next_id: u64,
    detector: Detector,
    /// `None` when turn detection is off.
    turn_detection: Option<TurnDetection>,
    responding: Option<Responding>,
    /// The user item of the turn in progress.
    user_item: Option<String>,
    last_item: Option<String>,
}

/// The socket is gone (or is to be dropped): the session ends.
struct Gone;

impl Session {
    fn new(index: usize, shared: Arc<Shared>, socket: WebSocket) -> Self {
        let names = shared.options.names;
        Self {
            index,
            shared,
            socket,
            names,
            next_id: 0,
            detector: Detector::default(),
            turn_detection: Some(TurnDetection {
                create_response: true,
                interrupt_response: true,
            }),
            responding: None,
            user_item: None,
            last_item: None,
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_{:06}", self.next_id)
    }

    fn name(&self, ga: &'static str, beta: &'static str) -> &'static str {
        match self.names {
            EventNames::Ga => ga,
            EventNames::Beta => beta,
        }
    }

    async fn send(&mut self, mut event: Value) -> Result<(), Gone> {
        event["event_id"] = json!(self.id("event"));
        self.socket
            .send(Message::Text(event.to_string().into()))
            .await
            .map_err(|_| Gone)
    }

    async fn run(&mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let session_id = self.id("sess");
        let created = json!({
            "type": "session.created",
            "session": {"type": "realtime", "object": "realtime.session", "id": session_id},
        });
        if self.send(created).await.is_err() {
            return;
        }
        loop {
            let next_at = self.responding.as_ref().map(|r| r.next_at);
            let outcome = tokio::select! {
                message = self.socket.next() => match message {
                    Some(Ok(Message::Text(text))) => self.client_event(text.as_str()).await,
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(Gone),
                    Some(Ok(_)) => Ok(()),
                },
                command = commands.recv() => match command {
                    Some(Command::CallerTurn) => self.caller_turn(None).await,
                    Some(Command::Disconnect) | None => Err(Gone),
                },
                () = sleep_until(next_at) => self.send_response_step().await,
            };
            if outcome.is_err() {
                return;
            }
        }
    }

    async fn client_event(&mut self, text: &str) -> Result<(), Gone> {
        let Ok(event) = serde_json::from_str::<Value>(text) else {
            return self
                .error("invalid_request_error", "invalid_json", "Invalid JSON.")
                .await;
        };
        {
            let mut record = self.shared.record();
            record.events.push((self.index, event.clone()));
            let count = record.events.len();
            drop(record);
            self.shared.recorded.send_replace(count);
        }
        let kind = event["type"].as_str().unwrap_or_default().to_owned();
        match kind.as_str() {
            "session.update" => self.session_update(&event).await,
            "input_audio_buffer.append" => {
                let Some(audio) = event["audio"]
                    .as_str()
                    .and_then(|a| STANDARD.decode(a).ok())
                else {
                    return self
                        .error(
                            "invalid_request_error",
                            "invalid_value",
                            "Invalid 'audio': not base64.",
                        )
                        .await;
                };
                self.caller_audio(&audio).await
            }
            "response.create" => {
                if self.responding.is_some() {
                    return self
                        .error(
                            "invalid_request_error",
                            "conversation_already_has_active_response",
                            "Conversation already has an active response in progress.",
                        )
                        .await;
                }
                self.respond().await
            }
            "response.cancel" => {
                if self.responding.is_none() {
                    return self
                        .error(
                            "invalid_request_error",
                            "response_cancel_not_active",
                            "Cancellation failed: no active response found.",
                        )
                        .await;
                }
                self.cancel_response("client_cancelled").await
            }
            "conversation.item.truncate" => self.truncate(&event).await,
            "conversation.item.create" => {
                let mut item = event["item"].clone();
                item["id"] = json!(self.id("item"));
                let added = self.name("conversation.item.added", "conversation.item.created");
                let previous = self
                    .last_item
                    .replace(item["id"].as_str().unwrap_or_default().to_owned());
                self.send(json!({"type": added, "previous_item_id": previous, "item": item}))
                    .await
            }
            other => {
                let message = format!("Invalid value: '{other}'.");
                self.error("invalid_request_error", "invalid_value", &message)
                    .await
            }
        }
    }

    async fn error(&mut self, kind: &str, code: &str, message: &str) -> Result<(), Gone> {
        let body = error_body(kind, code, message);
        self.send(json!({"type": "error", "error": body["error"]}))
            .await
    }

    /// Checks the session has this API generation's shape, then adopts its
    /// turn detection.
    async fn session_update(&mut self, event: &Value) -> Result<(), Gone> {
        let session = &event["session"];
        let (foreign, turn_detection) = match self.names {
            EventNames::Ga => (
                [
                    "modalities",
                    "voice",
                    "input_audio_format",
                    "output_audio_format",
                    "input_audio_transcription",
                    "turn_detection",
                ]
                .as_slice(),
                session
                    .get("audio")
                    .and_then(|a| a.get("input"))
                    .and_then(|i| i.get("turn_detection")),
            ),
            EventNames::Beta => (
                ["type", "audio", "output_modalities"].as_slice(),
                session.get("turn_detection"),
            ),
        };
        if let Some(field) = foreign.iter().find(|f| session.get(**f).is_some()) {
            let message = format!("Unknown parameter: 'session.{field}'.");
            return self
                .error("invalid_request_error", "unknown_parameter", &message)
                .await;
        }
        if self.names == EventNames::Ga && session["type"] != "realtime" {
            return self
                .error(
                    "invalid_request_error",
                    "missing_required_parameter",
                    "Missing required parameter: 'session.type'.",
                )
                .await;
        }
        self.turn_detection = match turn_detection {
            None => self.turn_detection,
            Some(Value::Object(settings)) => Some(TurnDetection {
                create_response: settings
                    .get("create_response")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
                interrupt_response: settings
                    .get("interrupt_response")
                    .and_then(Value::as_bool)
                    .unwrap_or(true),
            }),
            Some(_) => None,
        };
        self.send(json!({"type": "session.updated", "session": session}))
            .await
    }

    async fn caller_audio(&mut self, audio: &[u8]) -> Result<(), Gone> {
        let mut heard = Vec::new();
        self.detector.push(audio, &self.shared.options, &mut heard);
        if self.turn_detection.is_none() {
            return Ok(());
        }
        for event in heard {
            match event {
                Heard::Started { at_ms } => self.speech_started(at_ms).await?,
                Heard::Stopped { at_ms } => self.caller_turn(Some(at_ms)).await?,
            }
        }
        Ok(())
    }

    async fn speech_started(&mut self, at_ms: u64) -> Result<(), Gone> {
        let item_id = self.id("item");
        self.user_item = Some(item_id.clone());
        self.send(json!({
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": at_ms,
            "item_id": item_id,
        }))
        .await?;
        let interrupts = self.turn_detection.is_some_and(|t| t.interrupt_response);
        if interrupts && self.responding.is_some() {
            self.cancel_response("turn_detected").await?;
        }
        Ok(())
    }

    /// The caller's turn ends (at `stopped_ms` of their audio, or now when
    /// the test says so): stopped, committed, transcribed, answered.
    async fn caller_turn(&mut self, stopped_ms: Option<u64>) -> Result<(), Gone> {
        let position = self.detector.position_ms;
        if stopped_ms.is_none() {
            self.speech_started(position).await?;
        }
        let item_id = self.user_item.take().unwrap_or_else(|| self.id("item"));
        self.send(json!({
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": stopped_ms.unwrap_or(position),
            "item_id": item_id,
        }))
        .await?;
        let previous = self.last_item.replace(item_id.clone());
        self.send(json!({
            "type": "input_audio_buffer.committed",
            "previous_item_id": previous,
            "item_id": item_id,
        }))
        .await?;
        let added = self.name("conversation.item.added", "conversation.item.created");
        self.send(json!({
            "type": added,
            "previous_item_id": previous,
            "item": {
                "id": item_id, "object": "realtime.item", "type": "message",
                "status": "completed", "role": "user",
                "content": [{"type": "input_audio", "transcript": null}],
            },
        }))
        .await?;
        let transcript = self
            .shared
            .record()
            .transcripts
            .pop_front()
            .unwrap_or_else(|| "Hello.".to_owned());
        self.send(json!({
            "type": "conversation.item.input_audio_transcription.delta",
            "item_id": item_id, "content_index": 0, "delta": transcript,
        }))
        .await?;
        self.send(json!({
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item_id, "content_index": 0, "transcript": transcript,
        }))
        .await?;
        let creates = self.turn_detection.is_none_or(|t| t.create_response);
        if creates && self.responding.is_none() {
            self.respond().await?;
        }
        Ok(())
    }

    /// Starts the next scripted response (or the fault set for it).
    async fn respond(&mut self) -> Result<(), Gone> {
        let (reply, fault) = {
            let mut record = self.shared.record();
            let reply = record
                .replies
                .pop_front()
                .unwrap_or_else(|| self.shared.options.default_reply.clone());
            (reply, record.fault.take())
        };
        let drop_after = match fault {
            Some(Fault::Error {
                kind,
                code,
                message,
            }) => return self.error(&kind, &code, &message).await,
            Some(Fault::DropMidResponse { after_deltas }) => Some(after_deltas),
            None => None,
        };
        let response_id = self.id("resp");
        let item_id = self.id("item");
        self.send(json!({
            "type": "response.created",
            "response": {
                "object": "realtime.response", "id": response_id, "status": "in_progress",
                "status_details": null, "output": [], "usage": null,
            },
        }))
        .await?;
        let queue = match reply {
            Reply::Speech { text, audio_ms } => {
                self.speech_events(&response_id, &item_id, &text, audio_ms)
            }
            Reply::FunctionCall { name, arguments } => {
                self.function_call_events(&response_id, &item_id, &name, &arguments)
            }
        };
        self.last_item = Some(item_id.clone());
        self.responding = Some(Responding {
            id: response_id,
            item_id,
            queue,
            next_at: Instant::now(),
            drop_after,
        });
        Ok(())
    }

    fn speech_events(
        &self,
        response_id: &str,
        item_id: &str,
        text: &str,
        audio_ms: u32,
    ) -> VecDeque<Value> {
        let (audio, transcript, added) = match self.names {
            EventNames::Ga => (
                "response.output_audio",
                "response.output_audio_transcript",
                "conversation.item.added",
            ),
            EventNames::Beta => (
                "response.audio",
                "response.audio_transcript",
                "conversation.item.created",
            ),
        };
        let item = |status: &str, content: Value| {
            json!({
                "id": item_id, "object": "realtime.item", "type": "message",
                "status": status, "role": "assistant", "content": content,
            })
        };
        let at = |kind: &str| {
            json!({
                "type": kind, "response_id": response_id, "item_id": item_id,
                "output_index": 0, "content_index": 0,
            })
        };
        let mut queue = VecDeque::new();
        queue.push_back(json!({
            "type": "response.output_item.added", "response_id": response_id,
            "output_index": 0, "item": item("in_progress", json!([])),
        }));
        queue.push_back(json!({
            "type": added, "previous_item_id": self.last_item,
            "item": item("in_progress", json!([])),
        }));
        let mut part = at("response.content_part.added");
        part["part"] = json!({"type": "audio", "transcript": ""});
        queue.push_back(part);
        let tone = tone_ulaw(audio_ms as usize * BYTES_PER_MS);
        let delta_bytes = (self.shared.options.delta_ms.max(1) as usize) * BYTES_PER_MS;
        let chunks: Vec<&[u8]> = tone.chunks(delta_bytes).collect();
        let words: Vec<&str> = text.split_inclusive(' ').collect();
        let mut next_word = 0;
        for (index, chunk) in chunks.iter().enumerate() {
            let mut delta = at(&format!("{audio}.delta"));
            delta["delta"] = json!(STANDARD.encode(chunk));
            queue.push_back(delta);
            // Words spread evenly over the audio, all said by its end.
            let said = (index + 1) * words.len() / chunks.len();
            for word in &words[next_word..said] {
                let mut delta = at(&format!("{transcript}.delta"));
                delta["delta"] = json!(word);
                queue.push_back(delta);
            }
            next_word = said;
        }
        queue.push_back(at(&format!("{audio}.done")));
        let mut done = at(&format!("{transcript}.done"));
        done["transcript"] = json!(text);
        queue.push_back(done);
        let content = json!([{"type": "output_audio", "transcript": text}]);
        let mut part_done = at("response.content_part.done");
        part_done["part"] = content[0].clone();
        queue.push_back(part_done);
        queue.push_back(json!({
            "type": "response.output_item.done", "response_id": response_id,
            "output_index": 0, "item": item("completed", content.clone()),
        }));
        queue.push_back(response_done(
            response_id,
            "completed",
            json!([item("completed", content)]),
        ));
        queue
    }

    fn function_call_events(
        &self,
        response_id: &str,
        item_id: &str,
        name: &str,
        arguments: &str,
    ) -> VecDeque<Value> {
        let call_id = format!("call_{item_id}");
        let item = |status: &str, arguments: &str| {
            json!({
                "id": item_id, "object": "realtime.item", "type": "function_call",
                "status": status, "name": name, "call_id": call_id, "arguments": arguments,
            })
        };
        let added = self.name("conversation.item.added", "conversation.item.created");
        let mut queue = VecDeque::new();
        queue.push_back(json!({
            "type": "response.output_item.added", "response_id": response_id,
            "output_index": 0, "item": item("in_progress", ""),
        }));
        queue.push_back(json!({
            "type": added, "previous_item_id": self.last_item, "item": item("in_progress", ""),
        }));
        queue.push_back(json!({
            "type": "response.function_call_arguments.delta", "response_id": response_id,
            "item_id": item_id, "output_index": 0, "call_id": call_id, "delta": arguments,
        }));
        queue.push_back(json!({
            "type": "response.function_call_arguments.done", "response_id": response_id,
            "item_id": item_id, "output_index": 0, "call_id": call_id, "arguments": arguments,
        }));
        queue.push_back(json!({
            "type": "response.output_item.done", "response_id": response_id,
            "output_index": 0, "item": item("completed", arguments),
        }));
        queue.push_back(response_done(
            response_id,
            "completed",
            json!([item("completed", arguments)]),
        ));
        queue
    }

    /// Sends the response's events up to and including its next audio
    /// delta, then waits `delta_gap`.
    async fn send_response_step(&mut self) -> Result<(), Gone> {
        let gap = self.shared.options.delta_gap;
        loop {
            let Some(responding) = self.responding.as_mut() else {
                return Ok(());
            };
            let Some(event) = responding.queue.pop_front() else {
                self.responding = None;
                return Ok(());
            };
            let kind = event["type"].as_str().unwrap_or_default().to_owned();
            let is_audio = kind.ends_with("audio.delta");
            if is_audio {
                let item_id = responding.item_id.clone();
                let bytes = event["delta"]
                    .as_str()
                    .and_then(|d| STANDARD.decode(d).ok())
                    .map_or(0, |b| b.len());
                *self
                    .shared
                    .record()
                    .item_audio_ms
                    .entry(item_id)
                    .or_default() += (bytes / BYTES_PER_MS) as u64;
            }
            self.send(event).await?;
            if !is_audio {
                continue;
            }
            let Some(responding) = self.responding.as_mut() else {
                return Ok(());
            };
            if let Some(left) = responding.drop_after.as_mut() {
                *left = left.saturating_sub(1);
                if *left == 0 {
                    return Err(Gone);
                }
            }
            responding.next_at = Instant::now() + gap;
            if !gap.is_zero() {
                return Ok(());
            }
        }
    }

    /// Stops the response in progress, as `response.cancel` or caller
    /// speech with `interrupt_response` does.
    async fn cancel_response(&mut self, reason: &str) -> Result<(), Gone> {
        let Some(responding) = self.responding.take() else {
            return Ok(());
        };
        self.send(json!({
            "type": "response.output_item.done", "response_id": responding.id,
            "output_index": 0,
            "item": {"id": responding.item_id, "object": "realtime.item", "type": "message",
                     "status": "incomplete", "role": "assistant", "content": []},
        }))
        .await?;
        let mut done = response_done(&responding.id, "cancelled", json!([]));
        done["response"]["status_details"] = json!({"type": "cancelled", "reason": reason});
        self.send(done).await
    }

    /// Accepts a truncate within the audio the item actually carried.
    async fn truncate(&mut self, event: &Value) -> Result<(), Gone> {
        let item_id = event["item_id"].as_str().unwrap_or_default().to_owned();
        let audio_end_ms = event["audio_end_ms"].as_u64();
        let sent = self.shared.record().item_audio_ms.get(&item_id).copied();
        match (sent, audio_end_ms) {
            (None, _) => {
                let message = format!("Item with item_id '{item_id}' not found.");
                self.error("invalid_request_error", "item_not_found", &message)
                    .await
            }
            (Some(sent), Some(end)) if end <= sent && event["content_index"] == 0 => {
                self.send(json!({
                    "type": "conversation.item.truncated",
                    "item_id": item_id, "content_index": 0, "audio_end_ms": end,
                }))
                .await
            }
            _ => {
                self.error(
                    "invalid_request_error",
                    "invalid_value",
                    "Audio content end ms is longer than the audio.",
                )
                .await
            }
        }
    }
}

fn response_done(response_id: &str, status: &str, output: Value) -> Value {
    json!({
        "type": "response.done",
        "response": {
            "object": "realtime.response", "id": response_id, "status": status,
            "status_details": null, "output": output,
            "usage": {"total_tokens": 120, "input_tokens": 80, "output_tokens": 40},
        },
    })
}

/// `len` bytes of the fake's voice: a loud 500 Hz square wave in μ-law.
pub fn tone_ulaw(len: usize) -> Vec<u8> {
    let samples: Vec<i16> = (0..len)
        .map(|i| if (i / 8) % 2 == 0 { 6000 } else { -6000 })
        .collect();
    let mut out = Vec::with_capacity(len);
    ulaw_encode_into(&samples, &mut out);
    out
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
