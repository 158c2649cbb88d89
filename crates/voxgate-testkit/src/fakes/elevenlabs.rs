//! A fake ElevenLabs: the `stream-input` text-to-speech WebSocket and the
//! voice lookup, as the vendor speaks them.
//!
//! - `GET /v1/text-to-speech/{voice_id}/stream-input` (WebSocket): refuses
//!   a missing or wrong `xi-api-key` with 401 before the upgrade; the first
//!   message must be `{"text":" ",…}` (else close 1008); text is buffered
//!   until `flush: true` or the end of input (`{"text":""}`), then spoken
//!   as `{"audio":"<base64>","isFinal":false,"normalizedAlignment":…,
//!   "alignment":…}` messages, [`FakeElevenLabsOptions::chunk_ms`] of audio
//!   each. After the end of input come `{"audio":null,"isFinal":true}` and
//!   a normal close. A socket that hears no text for its inactivity timeout
//!   gets the vendor's `input_timeout_exceeded` error and close 1008.
//!   Any voice id is accepted on the socket.
//! - `GET /v1/voices/{voice_id}`: 200 for the known voices, 404
//!   `voice_not_found` otherwise, 401 for a wrong key.
//!
//! The speech is a 220 Hz tone, [`FakeElevenLabsOptions::ms_per_char`] long
//! per character of the trimmed text ([`FakeElevenLabs::speech`]), encoded
//! as the `output_format` asks: `ulaw_8000` or `pcm_<rate>` (S16LE).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use voxgate_core::audio::{g711, pcm};

use super::FakeServer;

/// The key the fake accepts unless told otherwise.
pub const API_KEY: &str = "fake-elevenlabs-key";

/// A voice the fake knows unless told otherwise.
pub const VOICE_ID: &str = "21m00Tcm4TlvDq8ikWAM";

/// The vendor's default `inactivity_timeout`.
const VENDOR_INACTIVITY: Duration = Duration::from_secs(20);

/// How long [`FakeElevenLabs::wait_for`] waits before failing the test.
const WAIT_LIMIT: Duration = Duration::from_secs(5);

/// How the fake behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeElevenLabsOptions {
    /// The accepted `xi-api-key`.
    pub api_key: String,
    /// Voice ids `GET /v1/voices/{id}` knows.
    pub voices: Vec<String>,
    /// The longest a socket may go without text: the `inactivity_timeout`
    /// query parameter (seconds, 20 when absent) is honoured up to this, so
    /// tests can shorten it below a second.
    pub inactivity_timeout: Duration,
    /// Audio per character of text.
    pub ms_per_char: u32,
    /// Audio per message.
    pub chunk_ms: u32,
    /// Pause between audio messages (0: as fast as the socket takes them).
    pub chunk_interval: Duration,
}

impl Default for FakeElevenLabsOptions {
    fn default() -> Self {
        Self {
            api_key: API_KEY.to_owned(),
            voices: vec![VOICE_ID.to_owned()],
            inactivity_timeout: VENDOR_INACTIVITY,
            ms_per_char: 60,
            chunk_ms: 100,
            chunk_interval: Duration::ZERO,
        }
    }
}

/// A failure of the next WebSocket handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFault {
    /// 429 with `retry-after`.
    RateLimited {
        /// The `retry-after` value in seconds.
        retry_after_secs: u32,
    },
}

/// A misbehaviour of the next generation (a flushed or ended text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeechFault {
    /// Sends this many audio messages, then drops the connection without a
    /// close frame.
    DropAfter {
        /// Audio messages sent first (0: drop at once).
        chunks: usize,
    },
    /// Sends this text frame before the audio.
    Malformed(String),
    /// Sends the vendor's error message `{"message","error","code":1008}`
    /// instead of audio, then closes with 1008.
    Error {
        /// The `error` code, such as `quota_exceeded`.
        error: String,
        /// The `message`.
        message: String,
    },
    /// Waits this long before the first audio message.
    SlowFirstAudio(Duration),
}

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// The fake sent `isFinal` and closed normally.
    Finished,
    /// The client sent a close frame.
    ClientClosed,
    /// The client's connection ended without a close frame.
    ClientGone,
    /// No text for the inactivity timeout: closed with 1008.
    IdleTimeout,
    /// The client broke the protocol: closed with 1008 and this reason.
    PolicyViolation(String),
    /// A [`SpeechFault`] ended it.
    Fault,
}

/// One accepted WebSocket connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionRecord {
    /// The voice id in the path.
    pub voice_id: String,
    /// The query parameters.
    pub query: BTreeMap<String, String>,
    /// Every text message the client sent, as sent.
    pub messages: Vec<String>,
    /// Audio messages sent.
    pub chunks_sent: usize,
    /// How it ended; `None` while open.
    pub ending: Option<Ending>,
}

#[derive(Debug, Default)]
struct Record {
    handshakes: usize,
    connections: Vec<ConnectionRecord>,
    handshake_faults: VecDeque<HandshakeFault>,
    speech_faults: VecDeque<SpeechFault>,
}

#[derive(Debug)]
struct Shared {
    options: FakeElevenLabsOptions,
    record: Mutex<Record>,
    changed: watch::Sender<u64>,
}

impl Shared {
    fn update<T>(&self, change: impl FnOnce(&mut Record) -> T) -> T {
        let value = change(&mut self.record.lock().unwrap_or_else(PoisonError::into_inner));
        self.changed.send_modify(|version| *version += 1);
        value
    }

    fn read<T>(&self, look: impl FnOnce(&Record) -> T) -> T {
        look(&self.record.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The fake vendor on loopback; stops when dropped.
#[derive(Debug)]
pub struct FakeElevenLabs {
    server: FakeServer,
    shared: Arc<Shared>,
}

impl FakeElevenLabs {
    /// Starts the fake.
    pub async fn start(options: FakeElevenLabsOptions) -> Self {
        let shared = Arc::new(Shared {
            options,
            record: Mutex::new(Record::default()),
            changed: watch::Sender::new(0),
        });
        let router = Router::new()
            .route(
                "/v1/text-to-speech/{voice_id}/stream-input",
                get(stream_input),
            )
            .route("/v1/voices/{voice_id}", get(voice))
            .with_state(Arc::clone(&shared));
        Self {
            server: FakeServer::serve(router).await,
            shared,
        }
    }

    /// `http://127.0.0.1:PORT`, the base URL to configure.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Makes the next WebSocket handshake (after the key check) fail.
    pub fn fail_next_handshake(&self, fault: HandshakeFault) {
        self.shared
            .update(|record| record.handshake_faults.push_back(fault));
    }

    /// Makes the next generation, on any connection, misbehave.
    pub fn fail_next_speech(&self, fault: SpeechFault) {
        self.shared
            .update(|record| record.speech_faults.push_back(fault));
    }

    /// WebSocket handshakes attempted, refused ones included.
    pub fn handshakes(&self) -> usize {
        self.shared.read(|record| record.handshakes)
    }

    /// The accepted connections, oldest first.
    pub fn connections(&self) -> Vec<ConnectionRecord> {
        self.shared.read(|record| record.connections.clone())
    }

    /// Waits until `ready` holds for the connections, and returns them;
    /// fails the test after 5 s, naming `what` it waited for.
    pub async fn wait_for(
        &self,
        what: &str,
        ready: impl Fn(&[ConnectionRecord]) -> bool,
    ) -> Vec<ConnectionRecord> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = Instant::now() + WAIT_LIMIT;
        loop {
            let connections = self.connections();
            if ready(&connections) {
                return connections;
            }
            let waited = tokio::time::timeout_at(deadline, changed.changed()).await;
            assert!(
                waited.is_ok(),
                "timed out waiting for {what}; connections: {connections:#?}"
            );
        }
    }

    /// The PCM the fake speaks for `text` at `sample_rate`, before encoding.
    pub fn speech(&self, text: &str, sample_rate: u32) -> Vec<i16> {
        speech(&self.shared.options, text, sample_rate)
    }
}

/// How the audio is encoded.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Ulaw,
    Pcm(u32),
}

impl Encoding {
    fn parse(format: &str) -> Option<Self> {
        if format == "ulaw_8000" {
            return Some(Self::Ulaw);
        }
        let rate = format.strip_prefix("pcm_")?.parse().ok()?;
        [8000, 16000, 22050, 24000, 44100, 48000]
            .contains(&rate)
            .then_some(Self::Pcm(rate))
    }

    fn rate(self) -> u32 {
        match self {
            Self::Ulaw => 8000,
            Self::Pcm(rate) => rate,
        }
    }

    fn encode(self, samples: &[i16]) -> Vec<u8> {
        let mut out = Vec::with_capacity(samples.len() * 2);
        match self {
            Self::Ulaw => g711::ulaw_encode_into(samples, &mut out),
            Self::Pcm(_) => pcm::pcm16le_encode_into(samples, &mut out),
        }
        out
    }
}

fn detail(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"detail": {"status": code, "message": message}})),
    )
        .into_response()
}

fn key_ok(shared: &Shared, headers: &HeaderMap) -> bool {
    headers
        .get("xi-api-key")
        .is_some_and(|key| key.as_bytes() == shared.options.api_key.as_bytes())
}

async fn voice(
    State(shared): State<Arc<Shared>>,
    Path(voice_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !key_ok(&shared, &headers) {
        return detail(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
        );
    }
    if !shared.options.voices.contains(&voice_id) {
        return detail(
            StatusCode::NOT_FOUND,
            "voice_not_found",
            &format!("A voice with the voice_id {voice_id} was not found."),
        );
    }
    Json(json!({"voice_id": voice_id, "name": "Fake", "category": "premade"})).into_response()
}

async fn stream_input(
    State(shared): State<Arc<Shared>>,
    Path(voice_id): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let fault = shared.update(|record| {
        record.handshakes += 1;
        record.handshake_faults.pop_front()
    });
    if !key_ok(&shared, &headers) {
        return detail(
            StatusCode::UNAUTHORIZED,
            "invalid_api_key",
            "Invalid API key",
        );
    }
    if let Some(HandshakeFault::RateLimited { retry_after_secs }) = fault {
        let mut response = detail(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_concurrent_requests",
            "Too many concurrent requests.",
        );
        response
            .headers_mut()
            .insert("retry-after", retry_after_secs.into());
        return response;
    }
    let format = query
        .get("output_format")
        .map_or("mp3_44100_128", String::as_str);
    let Some(encoding) = Encoding::parse(format) else {
        return detail(
            StatusCode::BAD_REQUEST,
            "unsupported_output_format",
            "the fake speaks only ulaw_8000 and pcm_<rate>",
        );
    };
    let inactivity = query
        .get("inactivity_timeout")
        .and_then(|seconds| seconds.parse().ok())
        .map_or(VENDOR_INACTIVITY, Duration::from_secs)
        .min(shared.options.inactivity_timeout);
    let index = shared.update(|record| {
        record.connections.push(ConnectionRecord {
            voice_id,
            query,
            messages: Vec::new(),
            chunks_sent: 0,
            ending: None,
        });
        record.connections.len() - 1
    });
    upgrade.on_upgrade(move |socket| {
        let session = Session {
            shared,
            index,
            encoding,
            inactivity,
        };
        session.run(socket)
    })
}

/// What the fake sends next.
#[derive(Debug)]
enum Outgoing {
    Audio(String),
    Text(String),
    Pause(Duration),
    Drop,
    Close(String),
    Final,
}

struct Session {
    shared: Arc<Shared>,
    index: usize,
    encoding: Encoding,
    inactivity: Duration,
}

impl Session {
    async fn run(self, mut socket: WebSocket) {
        let mut last_input = Instant::now();
        let mut initialised = false;
        let mut buffer = String::new();
        let mut outbox = VecDeque::new();
        let mut next_send = Instant::now();
        let ending = loop {
            tokio::select! {
                incoming = socket.recv() => {
                    let text = match incoming {
                        None | Some(Err(_)) => break Ending::ClientGone,
                        Some(Ok(Message::Close(_))) => break Ending::ClientClosed,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(_))) => {
                            break close(&mut socket, "binary frames are not accepted").await;
                        }
                        Some(Ok(_)) => continue,
                    };
                    last_input = Instant::now();
                    self.shared.update(|record| {
                        record.connections[self.index].messages.push(text.to_string());
                    });
                    if let Err(reason) = self.hear(&text, &mut initialised, &mut buffer, &mut outbox) {
                        break close(&mut socket, &reason).await;
                    }
                }
                () = tokio::time::sleep_until(next_send), if !outbox.is_empty() => {
                    let Some(next) = outbox.pop_front() else { continue };
                    let sent = match next {
                        Outgoing::Audio(message) => {
                            self.shared.update(|record| record.connections[self.index].chunks_sent += 1);
                            next_send = Instant::now() + self.shared.options.chunk_interval;
                            socket.send(Message::text(message)).await
                        }
                        Outgoing::Text(message) => socket.send(Message::text(message)).await,
                        Outgoing::Pause(pause) => {
                            next_send = Instant::now() + pause;
                            Ok(())
                        }
                        Outgoing::Drop => break Ending::Fault,
                        Outgoing::Close(reason) => {
                            let _ = send_close(&mut socket, 1008, &reason).await;
                            break Ending::Fault;
                        }
                        Outgoing::Final => {
                            let last = json!({"audio": null, "isFinal": true}).to_string();
                            let _ = socket.send(Message::text(last)).await;
                            let _ = send_close(&mut socket, 1000, "").await;
                            break Ending::Finished;
                        }
                    };
                    if sent.is_err() {
                        break Ending::ClientGone;
                    }
                }
                () = tokio::time::sleep_until(last_input + self.inactivity), if outbox.is_empty() => {
                    let seconds = self.inactivity.as_secs_f64();
                    let message = format!(
                        "Have not received a new text input within the timeout of {seconds:.1} seconds. \
                         Streaming input terminated. Please make sure to either feed the input in the \
                         timely manner, or to send the end of input text (empty string \"\") when done."
                    );
                    let error = json!({"message": message, "error": "input_timeout_exceeded", "code": 1008});
                    let _ = socket.send(Message::text(error.to_string())).await;
                    let _ = send_close(&mut socket, 1008, &message).await;
                    break Ending::IdleTimeout;
                }
            }
        };
        self.shared
            .update(|record| record.connections[self.index].ending = Some(ending));
    }

    /// Takes one client message; `Err` is a protocol violation.
    fn hear(
        &self,
        text: &str,
        initialised: &mut bool,
        buffer: &mut String,
        outbox: &mut VecDeque<Outgoing>,
    ) -> Result<(), String> {
        let message: Value =
            serde_json::from_str(text).map_err(|_| "Invalid message: not JSON".to_owned())?;
        let Some(chunk) = message["text"].as_str() else {
            return Err("Invalid message: the text field is missing".to_owned());
        };
        if !*initialised {
            if chunk != " " {
                return Err("The first message must have text set to a single space".to_owned());
            }
            *initialised = true;
            return Ok(());
        }
        if chunk.is_empty() {
            if !buffer.trim().is_empty() {
                self.generate(buffer, outbox);
            }
            buffer.clear();
            outbox.push_back(Outgoing::Final);
            return Ok(());
        }
        buffer.push_str(chunk);
        if message["flush"] == true || message["try_trigger_generation"] == true {
            if !buffer.trim().is_empty() {
                self.generate(buffer, outbox);
            }
            buffer.clear();
        }
        Ok(())
    }

    /// Queues the audio of `text`, as the next fault (if any) has it.
    fn generate(&self, text: &str, outbox: &mut VecDeque<Outgoing>) {
        let options = &self.shared.options;
        let fault = self
            .shared
            .update(|record| record.speech_faults.pop_front());
        let fake = speech(options, text, self.encoding.rate());
        let chunk_len = usize::try_from(self.encoding.rate() * options.chunk_ms / 1000)
            .unwrap_or(usize::MAX)
            .max(1);
        let chars: Vec<char> = text.trim().chars().collect();
        let mut audio: Vec<Outgoing> = fake
            .chunks(chunk_len)
            .enumerate()
            .map(|(n, samples)| {
                let alignment = self.alignment(&chars, n);
                Outgoing::Audio(
                    json!({
                        "audio": STANDARD.encode(self.encoding.encode(samples)),
                        "isFinal": false,
                        "normalizedAlignment": alignment,
                        "alignment": alignment,
                    })
                    .to_string(),
                )
            })
            .collect();
        match fault {
            None => {}
            Some(SpeechFault::DropAfter { chunks }) => {
                audio.truncate(chunks);
                audio.push(Outgoing::Drop);
            }
            Some(SpeechFault::Malformed(text)) => audio.insert(0, Outgoing::Text(text)),
            Some(SpeechFault::Error { error, message }) => {
                let payload = json!({"message": message, "error": error, "code": 1008});
                audio = vec![
                    Outgoing::Text(payload.to_string()),
                    Outgoing::Close(message),
                ];
            }
            Some(SpeechFault::SlowFirstAudio(pause)) => audio.insert(0, Outgoing::Pause(pause)),
        }
        outbox.extend(audio);
    }

    /// The characters whose speech starts in chunk `n`.
    fn alignment(&self, chars: &[char], n: usize) -> Value {
        let options = &self.shared.options;
        let per_char = u64::from(options.ms_per_char);
        let chunk_ms = u64::from(options.chunk_ms);
        let start = n as u64 * chunk_ms;
        let (mut letters, mut starts, mut durations) = (Vec::new(), Vec::new(), Vec::new());
        for (i, c) in chars.iter().enumerate() {
            let at = i as u64 * per_char;
            if (start..start + chunk_ms).contains(&at) {
                letters.push(c.to_string());
                starts.push(at - start);
                durations.push(per_char);
            }
        }
        if letters.is_empty() {
            return Value::Null;
        }
        json!({"charStartTimesMs": starts, "charsDurationsMs": durations, "chars": letters})
    }
}

/// A 220 Hz tone, `ms_per_char` long per character of the trimmed text.
fn speech(options: &FakeElevenLabsOptions, text: &str, sample_rate: u32) -> Vec<i16> {
    let chars = u64::try_from(text.trim().chars().count()).unwrap_or(u64::MAX);
    let samples = chars * u64::from(options.ms_per_char) * u64::from(sample_rate) / 1000;
    (0..samples)
        .map(|n| {
            let phase = std::f64::consts::TAU * 220.0 * n as f64 / f64::from(sample_rate);
            (8000.0 * phase.sin()).round() as i16
        })
        .collect()
}

/// Closes with 1008 for a protocol violation.
async fn close(socket: &mut WebSocket, reason: &str) -> Ending {
    let _ = send_close(socket, 1008, reason).await;
    Ending::PolicyViolation(reason.to_owned())
}

/// Sends a close frame; its reason is cut to fit a control frame.
async fn send_close(socket: &mut WebSocket, code: u16, reason: &str) -> Result<(), axum::Error> {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason[..end].into(),
        })))
        .await
}
