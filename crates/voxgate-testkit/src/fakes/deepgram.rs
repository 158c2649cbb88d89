//! A fake Deepgram live-transcription server (`/v1/listen`), and the
//! `/v1/projects` listing that `voxgate check` reads.
//!
//! It checks `Authorization: Token <key>` before the upgrade (401 with
//! Deepgram's body otherwise), takes binary audio and text control frames,
//! and answers the way Deepgram does: interim `Results` as speech comes in,
//! a final one with `speech_final` after `endpointing` ms of silence, and
//! `UtteranceEnd` after `utterance_end_ms`; `SpeechStarted` at each onset;
//! a final with `from_finalize` on `Finalize`; on `CloseStream` the last
//! final, `Metadata` and a normal close. A socket that hears neither audio
//! nor a text message for the idle timeout is closed with 1011 `NET-0001`.
//! A binary frame is audio whatever it holds, so a `KeepAlive` sent as
//! binary does not count as one (Deepgram mishandles it the same way).
//!
//! What is said is scripted: [`FakeDeepgram::say`] queues an utterance,
//! whose words are heard one per [`FakeDeepgramOptions::bytes_per_word`]
//! of speech (any frame with a non-zero sample; all-zero frames are
//! silence). Everything the fake receives is recorded, and faults are set
//! through [`FakeDeepgram::faults`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until, timeout};

use super::FakeServer;
use crate::RECV_TIMEOUT;

/// The model the fake claims to run.
const MODEL_UUID: &str = "40bd3654-e622-47c4-a111-63a61b23bfb1";

/// How the fake behaves.
#[derive(Debug, Clone)]
pub struct FakeDeepgramOptions {
    /// The only key it accepts.
    pub api_key: String,
    /// How long a socket may hear nothing before it is closed (Deepgram:
    /// 10 s).
    pub idle_timeout: Duration,
    /// Bytes of speech per scripted word (6400 = 200 ms of 16 kHz
    /// linear16).
    pub bytes_per_word: usize,
}

impl Default for FakeDeepgramOptions {
    fn default() -> Self {
        Self {
            api_key: "fake-deepgram-key".to_owned(),
            idle_timeout: Duration::from_secs(10),
            bytes_per_word: 6400,
        }
    }
}

/// Misbehaviour on demand.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Refuse handshakes (after the key check).
    pub refuse: Option<Refusal>,
    /// The next socket is dropped, without a close frame, once it has
    /// received this many bytes of audio; the fault is then spent.
    pub drop_after_bytes: Option<usize>,
    /// Each new socket first gets a frame that is not JSON and one of an
    /// unknown type.
    pub malformed_on_connect: bool,
    /// `Finalize` is recorded but never answered.
    pub ignore_finalize: bool,
    /// `CloseStream` is recorded but never answered: the socket stays open
    /// until the client gives up on the close and goes.
    pub ignore_close_stream: bool,
}

/// Handshakes refused with an HTTP status.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The status (429, 503, …).
    pub status: u16,
    /// The `retry-after` header, in seconds.
    pub retry_after: Option<u32>,
    /// How many more to refuse; `None` for all.
    pub remaining: Option<u32>,
}

/// Everything the fake received.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Accepted sockets, in order.
    pub connections: Vec<Connection>,
    /// Statuses of refused handshakes (401 for a bad key), in order.
    pub refused: Vec<u16>,
    /// `GET /v1/projects` requests with the right key.
    pub project_listings: usize,
}

/// One accepted socket.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// The query parameters of the handshake.
    pub query: BTreeMap<String, String>,
    /// The handshake's headers (names lower case).
    pub headers: BTreeMap<String, String>,
    /// Bytes received in binary frames.
    pub audio_bytes: usize,
    /// Text frames received, in order.
    pub controls: Vec<String>,
    /// Transcripts of the final `Results` sent (empty ones included).
    pub finals: Vec<String>,
    /// How the socket ended; `None` while open.
    pub ended: Option<Ending>,
}

impl Connection {
    /// The `type` of each text frame received, in order.
    pub fn control_types(&self) -> Vec<String> {
        self.controls
            .iter()
            .map(|text| {
                serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|v| v["type"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| format!("not JSON: {text}"))
            })
            .collect()
    }
}

/// How a socket ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The fake closed it with 1011 `NET-0001`: nothing arrived in time.
    IdleTimeout,
    /// The client sent `CloseStream`; the fake flushed and closed it.
    CloseStream,
    /// The fake dropped it, per [`Faults::drop_after_bytes`].
    Dropped,
    /// The client closed or dropped it.
    ClientClosed,
}

/// A running fake Deepgram; stops when dropped.
#[derive(Debug)]
pub struct FakeDeepgram {
    server: FakeServer,
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    options: FakeDeepgramOptions,
    state: Mutex<FakeState>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct FakeState {
    recorded: Recorded,
    faults: Faults,
    script: VecDeque<Vec<String>>,
    requests: u64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Changes the state and wakes whoever waits on it.
    fn update<T>(&self, change: impl FnOnce(&mut FakeState) -> T) -> T {
        let result = change(&mut self.state());
        self.changed.notify_waiters();
        result
    }
}

impl FakeState {
    fn request_id(&mut self) -> String {
        self.requests += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.requests)
    }
}

impl FakeDeepgram {
    /// Starts a fake on a free loopback port.
    pub async fn start(options: FakeDeepgramOptions) -> FakeDeepgram {
        let shared = Arc::new(Shared {
            options,
            state: Mutex::new(FakeState::default()),
            changed: Notify::new(),
        });
        let router = Router::new()
            .route("/v1/listen", get(listen))
            .route("/v1/projects", get(projects))
            .with_state(shared.clone());
        FakeDeepgram {
            server: FakeServer::serve(router).await,
            shared,
        }
    }

    /// The base URL to configure (`DEEPGRAM_BASE_URL`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Queues an utterance the caller will say; its words are heard as
    /// speech arrives.
    pub fn say(&self, utterance: &str) {
        let words = utterance.split_whitespace().map(str::to_owned).collect();
        self.shared.update(|state| state.script.push_back(words));
    }

    /// Changes the faults; they apply from the next frame or handshake.
    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        self.shared.update(|state| change(&mut state.faults));
    }

    /// What was received so far.
    pub fn recorded(&self) -> Recorded {
        self.shared.state().recorded.clone()
    }

    /// Waits until `done` holds for what was received, and returns it;
    /// fails the test, naming `what`, after [`RECV_TIMEOUT`].
    pub async fn wait_until(&self, what: &str, done: impl Fn(&Recorded) -> bool) -> Recorded {
        let deadline = Instant::now() + RECV_TIMEOUT;
        loop {
            let changed = self.shared.changed.notified();
            tokio::pin!(changed);
            // Registered before looking, so no change is missed between.
            changed.as_mut().enable();
            let recorded = self.recorded();
            if done(&recorded) {
                return recorded;
            }
            if timeout(deadline - Instant::now(), changed).await.is_err() {
                panic!("timed out waiting for the fake Deepgram: {what}; it saw {recorded:#?}");
            }
        }
    }
}

fn authorized(shared: &Shared, headers: &HeaderMap) -> bool {
    let expected = format!("Token {}", shared.options.api_key);
    headers
        .get(header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes() == expected.as_bytes())
}

/// Deepgram's answer to a refused handshake or request.
fn refusal(status: StatusCode, retry_after: Option<u32>, request_id: String) -> Response {
    let (code, message) = match status {
        StatusCode::UNAUTHORIZED => ("INVALID_AUTH", "Invalid credentials."),
        StatusCode::TOO_MANY_REQUESTS => (
            "TOO_MANY_REQUESTS",
            "Too many requests. Please try again later",
        ),
        _ => ("INTERNAL_SERVER_ERROR", "Service unavailable."),
    };
    let body = json!({"err_code": code, "err_msg": message, "request_id": request_id});
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("dg-error", HeaderValue::from_static(message));
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("dg-request-id", id);
    }
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

async fn projects(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let request_id = shared.state().request_id();
    if !authorized(&shared, &headers) {
        return refusal(StatusCode::UNAUTHORIZED, None, request_id);
    }
    shared.update(|state| state.recorded.project_listings += 1);
    axum::Json(json!({
        "projects": [{"project_id": "3f7c2a9e-1b4d-4e8f-9a6b-5c0d2e1f3a4b", "name": "voxgate fake"}]
    }))
    .into_response()
}

async fn listen(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    let request_id = shared.state().request_id();
    if !authorized(&shared, &headers) {
        shared.update(|state| state.recorded.refused.push(401));
        return refusal(StatusCode::UNAUTHORIZED, None, request_id);
    }
    let refused = shared.update(|state| {
        let refusal = state.faults.refuse.as_mut()?;
        if let Some(remaining) = &mut refusal.remaining {
            if *remaining == 0 {
                return None;
            }
            *remaining -= 1;
        }
        state.recorded.refused.push(refusal.status);
        Some((refusal.status, refusal.retry_after))
    });
    if let Some((status, retry_after)) = refused {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        return refusal(status, retry_after, request_id);
    }
    let (index, faults) = shared.update(|state| {
        let recorded_headers = headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        state.recorded.connections.push(Connection {
            query: query.clone(),
            headers: recorded_headers,
            ..Connection::default()
        });
        let faults = state.faults.clone();
        state.faults.drop_after_bytes = None;
        (state.recorded.connections.len() - 1, faults)
    });
    let transcriber = Transcriber::new(&query, shared.options.bytes_per_word, request_id.clone());
    let mut response = upgrade.on_upgrade(move |socket| {
        Session {
            socket,
            shared,
            index,
            faults,
            transcriber,
        }
        .run()
    });
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("dg-request-id", id);
    }
    response
}

/// One accepted socket.
struct Session {
    socket: WebSocket,
    shared: Arc<Shared>,
    index: usize,
    /// The faults as they were at the handshake.
    faults: Faults,
    transcriber: Transcriber,
}

impl Session {
    async fn run(mut self) {
        let ending = self.converse().await;
        let index = self.index;
        self.shared
            .update(|state| state.recorded.connections[index].ended = Some(ending));
    }

    async fn converse(&mut self) -> Ending {
        if self.faults.malformed_on_connect {
            for text in [
                "Deepgram is thinking {",
                r#"{"type":"Mystery","channel":[0,1]}"#,
            ] {
                if self.socket.send(Message::text(text)).await.is_err() {
                    return Ending::ClientClosed;
                }
            }
        }
        let mut last_heard = Instant::now();
        loop {
            let received = tokio::select! {
                received = self.socket.recv() => received,
                () = sleep_until(last_heard + self.shared.options.idle_timeout) => {
                    let close = CloseFrame {
                        code: 1011,
                        reason: Utf8Bytes::from_static(
                            "NET-0001: did not receive audio data or a text message within the timeout window",
                        ),
                    };
                    let _ = self.socket.send(Message::Close(Some(close))).await;
                    return Ending::IdleTimeout;
                }
            };
            let replies = match received {
                Some(Ok(Message::Binary(audio))) => {
                    last_heard = Instant::now();
                    let index = self.index;
                    let transcriber = &mut self.transcriber;
                    let (replies, total) = self.shared.update(|state| {
                        let connection = &mut state.recorded.connections[index];
                        connection.audio_bytes += audio.len();
                        let total = connection.audio_bytes;
                        (transcriber.audio(&audio, &mut state.script), total)
                    });
                    if self.send_all(replies).await.is_err() {
                        return Ending::ClientClosed;
                    }
                    if self
                        .faults
                        .drop_after_bytes
                        .is_some_and(|limit| total >= limit)
                    {
                        // Dropping the socket ends the TCP connection
                        // without a close frame, like a network failure.
                        return Ending::Dropped;
                    }
                    continue;
                }
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    let index = self.index;
                    self.shared.update(|state| {
                        state.recorded.connections[index]
                            .controls
                            .push(text.as_str().to_owned())
                    });
                    let kind = serde_json::from_str::<Value>(text.as_str())
                        .ok()
                        .and_then(|v| v["type"].as_str().map(str::to_owned));
                    match kind.as_deref() {
                        Some("Finalize") if !self.faults.ignore_finalize => {
                            vec![self.transcriber.finalize(false, true)]
                        }
                        Some("CloseStream") if !self.faults.ignore_close_stream => {
                            self.close_stream().await;
                            return Ending::CloseStream;
                        }
                        // KeepAlive, an ignored Finalize or CloseStream, or
                        // anything else.
                        _ => Vec::new(),
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Ending::ClientClosed,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            };
            if self.send_all(replies).await.is_err() {
                return Ending::ClientClosed;
            }
        }
    }

    /// Flushes the last words, sends `Metadata`, closes normally and waits
    /// briefly for the client's close.
    async fn close_stream(&mut self) {
        let mut replies = Vec::new();
        if self.transcriber.has_unfinalized_words() {
            replies.push(self.transcriber.finalize(false, false));
        }
        replies.push(self.transcriber.metadata());
        if self.send_all(replies).await.is_err() {
            return;
        }
        let _ = self
            .socket
            .send(Message::Close(Some(CloseFrame {
                code: 1000,
                reason: Utf8Bytes::default(),
            })))
            .await;
        let _ = timeout(Duration::from_secs(1), async {
            while let Some(Ok(_)) = self.socket.recv().await {}
        })
        .await;
    }

    async fn send_all(&mut self, replies: Vec<Reply>) -> Result<(), axum::Error> {
        for reply in replies {
            if let Some(transcript) = reply.final_transcript {
                let index = self.index;
                self.shared
                    .update(|state| state.recorded.connections[index].finals.push(transcript));
            }
            self.socket
                .send(Message::text(reply.frame.to_string()))
                .await?;
        }
        Ok(())
    }
}

/// A frame to send, and the transcript when it is a final `Results`.
struct Reply {
    frame: Value,
    final_transcript: Option<String>,
}

impl Reply {
    fn event(frame: Value) -> Self {
        Self {
            frame,
            final_transcript: None,
        }
    }
}

/// The scripted utterance being heard.
struct Utterance {
    words: Vec<String>,
    /// Words heard so far.
    heard: usize,
    /// Words already sent in a final `Results`.
    finalized: usize,
    /// When each heard word ended, in seconds of audio.
    ends: Vec<f64>,
}

/// Turns audio into Deepgram's messages for one socket, following the
/// script. Plain data: no IO.
struct Transcriber {
    request_id: String,
    bytes_per_second: f64,
    bytes_per_word: usize,
    interim_results: bool,
    punctuate: bool,
    vad_events: bool,
    endpointing_bytes: Option<usize>,
    utterance_end_bytes: Option<usize>,
    /// Bytes of audio received.
    heard_bytes: usize,
    /// Bytes of speech not yet spent on a word.
    speech_credit: usize,
    /// Bytes of silence since the last speech.
    silence_run: usize,
    speaking: bool,
    utterance: Option<Utterance>,
    /// The end of the last finalized word, until `UtteranceEnd` reports it.
    last_word_end: Option<f64>,
}

impl Transcriber {
    fn new(query: &BTreeMap<String, String>, bytes_per_word: usize, request_id: String) -> Self {
        let flag = |name: &str| query.get(name).is_some_and(|v| v == "true");
        let number = |name: &str| query.get(name).and_then(|v| v.parse::<f64>().ok());
        let sample_rate = number("sample_rate").unwrap_or(16_000.0);
        let channels = number("channels").unwrap_or(1.0);
        let bytes_per_second = sample_rate * channels * 2.0;
        let bytes_of_ms = |ms: f64| (ms * bytes_per_second / 1000.0) as usize;
        Self {
            request_id,
            bytes_per_second,
            bytes_per_word: bytes_per_word.max(1),
            interim_results: flag("interim_results"),
            punctuate: flag("punctuate") || flag("smart_format"),
            vad_events: flag("vad_events"),
            // Deepgram endpoints after 10 ms by default; `false` turns it off.
            endpointing_bytes: match query.get("endpointing").map(String::as_str) {
                Some("false") => None,
                _ => Some(bytes_of_ms(number("endpointing").unwrap_or(10.0))),
            },
            utterance_end_bytes: number("utterance_end_ms").map(bytes_of_ms),
            heard_bytes: 0,
            speech_credit: 0,
            silence_run: 0,
            speaking: false,
            utterance: None,
            last_word_end: None,
        }
    }

    fn now(&self) -> f64 {
        self.heard_bytes as f64 / self.bytes_per_second
    }

    fn has_unfinalized_words(&self) -> bool {
        self.utterance
            .as_ref()
            .is_some_and(|u| u.heard > u.finalized)
    }

    fn audio(&mut self, frame: &[u8], script: &mut VecDeque<Vec<String>>) -> Vec<Reply> {
        let onset = self.now();
        self.heard_bytes += frame.len();
        let mut replies = Vec::new();
        if frame.iter().all(|b| *b == 0) {
            self.silence_run += frame.len();
            if let Some(endpointing) = self.endpointing_bytes
                && self.silence_run >= endpointing
            {
                self.speaking = false;
                if self.has_unfinalized_words() {
                    replies.push(self.finalize(true, false));
                }
            }
            if let Some(utterance_end) = self.utterance_end_bytes
                && self.silence_run >= utterance_end
                && let Some(last_word_end) = self.last_word_end.take()
            {
                replies.push(Reply::event(json!({
                    "type": "UtteranceEnd", "channel": [0, 1], "last_word_end": last_word_end
                })));
            }
            return replies;
        }
        if !self.speaking {
            self.speaking = true;
            if self.vad_events {
                replies.push(Reply::event(json!({
                    "type": "SpeechStarted", "channel": [0, 1], "timestamp": onset
                })));
            }
        }
        self.silence_run = 0;
        self.speech_credit += frame.len();
        let mut heard_a_word = false;
        while self.speech_credit >= self.bytes_per_word {
            if !self.hear_word(script) {
                // Speech past the script, or past the utterance before it
                // is finalized: nothing more to recognise.
                self.speech_credit = 0;
                break;
            }
            self.speech_credit -= self.bytes_per_word;
            heard_a_word = true;
        }
        if heard_a_word && self.interim_results {
            replies.push(Reply::event(self.results(false, false, false)));
        }
        replies
    }

    /// Hears the next scripted word; false when there is none to hear now.
    fn hear_word(&mut self, script: &mut VecDeque<Vec<String>>) -> bool {
        if self.utterance.is_none() {
            let Some(words) = script.pop_front() else {
                return false;
            };
            self.utterance = Some(Utterance {
                words,
                heard: 0,
                finalized: 0,
                ends: Vec::new(),
            });
        }
        let now = self.now();
        let Some(utterance) = self.utterance.as_mut() else {
            return false;
        };
        if utterance.heard == utterance.words.len() {
            return false;
        }
        utterance.heard += 1;
        utterance.ends.push(now);
        true
    }

    /// A final `Results` of the words heard since the last one; the
    /// utterance is done once all its words are final.
    fn finalize(&mut self, speech_final: bool, from_finalize: bool) -> Reply {
        let frame = self.results(true, speech_final, from_finalize);
        if let Some(utterance) = self.utterance.as_mut() {
            if utterance.heard > utterance.finalized {
                self.last_word_end = utterance.ends.last().copied();
            }
            utterance.finalized = utterance.heard;
            if utterance.finalized == utterance.words.len() {
                self.utterance = None;
            }
        }
        let transcript = frame["channel"]["alternatives"][0]["transcript"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        Reply {
            frame,
            final_transcript: Some(transcript),
        }
    }

    /// A `Results` of the words heard and not yet finalized.
    fn results(&self, is_final: bool, speech_final: bool, from_finalize: bool) -> Value {
        let word_seconds = self.bytes_per_word as f64 / self.bytes_per_second;
        let now = self.now();
        let mut words = Vec::new();
        let mut texts = Vec::new();
        if let Some(utterance) = &self.utterance {
            for (word, end) in utterance.words[utterance.finalized..utterance.heard]
                .iter()
                .zip(&utterance.ends[utterance.finalized..])
            {
                let plain: String = word
                    .chars()
                    .filter(|c| c.is_alphanumeric() || *c == '\'')
                    .flat_map(char::to_lowercase)
                    .collect();
                let mut entry = json!({
                    "word": plain, "start": (end - word_seconds).max(0.0), "end": end,
                    "confidence": 0.98
                });
                if self.punctuate {
                    entry["punctuated_word"] = json!(word);
                    texts.push(word.clone());
                } else {
                    texts.push(plain);
                }
                words.push(entry);
            }
        }
        let start = words
            .first()
            .and_then(|w| w["start"].as_f64())
            .unwrap_or(now);
        json!({
            "type": "Results",
            "channel_index": [0, 1],
            "duration": now - start,
            "start": start,
            "is_final": is_final,
            "speech_final": speech_final,
            "channel": {"alternatives": [{
                "transcript": texts.join(" "),
                "confidence": if words.is_empty() { 0.0 } else { 0.98 },
                "words": words
            }]},
            "metadata": {
                "request_id": self.request_id,
                "model_info": {"name": "general-nova-3", "version": "2025-01-28.0", "arch": "nova-3"},
                "model_uuid": MODEL_UUID
            },
            "from_finalize": from_finalize
        })
    }

    /// The `Metadata` sent before closing.
    fn metadata(&self) -> Reply {
        Reply::event(json!({
            "type": "Metadata",
            "transaction_key": "deprecated",
            "request_id": self.request_id,
            "sha256": "0000000000000000000000000000000000000000000000000000000000000000",
            "created": "2025-03-14T10:21:07.021Z",
            "duration": self.now(),
            "channels": 1,
            "models": [MODEL_UUID],
            "model_info": {MODEL_UUID: {"name": "general-nova-3", "version": "2025-01-28.0", "arch": "nova-3"}}
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transcriber() -> Transcriber {
        let query = [
            ("encoding", "linear16"),
            ("sample_rate", "16000"),
            ("interim_results", "true"),
            ("endpointing", "300"),
            ("utterance_end_ms", "1000"),
            ("vad_events", "true"),
            ("punctuate", "true"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Transcriber::new(&query, 3200, "req".to_owned())
    }

    fn kinds(replies: &[Reply]) -> Vec<String> {
        replies
            .iter()
            .map(|r| {
                let kind = r.frame["type"].as_str().unwrap_or_default();
                match (kind, r.frame["is_final"].as_bool()) {
                    ("Results", Some(true)) => format!(
                        "final {}",
                        r.frame["channel"]["alternatives"][0]["transcript"]
                    ),
                    ("Results", _) => format!(
                        "interim {}",
                        r.frame["channel"]["alternatives"][0]["transcript"]
                    ),
                    _ => kind.to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn words_are_heard_with_speech_and_finalized_after_silence() {
        let mut transcriber = transcriber();
        let mut script = VecDeque::from([vec!["Hello".to_owned(), "there.".to_owned()]]);
        let speech = [1u8; 3200];
        let silence = [0u8; 3200];
        assert_eq!(
            kinds(&transcriber.audio(&speech, &mut script)),
            ["SpeechStarted", "interim \"Hello\""]
        );
        assert_eq!(
            kinds(&transcriber.audio(&speech, &mut script)),
            ["interim \"Hello there.\""]
        );
        assert!(
            transcriber.audio(&speech, &mut script).is_empty(),
            "nothing more to hear"
        );
        assert!(transcriber.audio(&silence, &mut script).is_empty());
        assert!(transcriber.audio(&silence, &mut script).is_empty());
        assert_eq!(
            kinds(&transcriber.audio(&silence, &mut script)),
            ["final \"Hello there.\""],
            "300 ms of silence endpoints"
        );
        let mut replies = Vec::new();
        for _ in 0..7 {
            replies.extend(transcriber.audio(&silence, &mut script));
        }
        assert_eq!(kinds(&replies), ["UtteranceEnd"]);
    }

    #[test]
    fn finalize_flushes_what_was_heard() {
        let mut transcriber = transcriber();
        let mut script = VecDeque::from([vec!["One".to_owned(), "two".to_owned()]]);
        transcriber.audio(&[1u8; 3200], &mut script);
        let flushed = transcriber.finalize(false, true);
        assert_eq!(flushed.final_transcript.as_deref(), Some("One"));
        assert_eq!(flushed.frame["from_finalize"], true);
        let empty = transcriber.finalize(false, true);
        assert_eq!(
            empty.final_transcript.as_deref(),
            Some(""),
            "nothing new to flush"
        );
        transcriber.audio(&[1u8; 3200], &mut script);
        assert_eq!(
            transcriber
                .finalize(false, true)
                .final_transcript
                .as_deref(),
            Some("two")
        );
        assert!(transcriber.utterance.is_none(), "the utterance is done");
    }
}
