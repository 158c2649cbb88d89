//! Test fixtures for voxgate: a simulated Twilio caller that writes Media
//! Streams frames the way Twilio does (numeric strings, 20 ms μ-law chunks),
//! and small WebSocket client helpers with timeouts so a broken server fails
//! a test instead of hanging it.

use std::time::Duration;

pub mod fakes;
mod live;
pub use live::{CallAudio, FRAME_SAMPLES, Heard, LiveCaller, LiveCallerOptions};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};
use voxgate_core::audio::{Resampler, SampleRate, parse_wav};

/// A client WebSocket.
pub type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What a restaurant's caller asks, for benchmarks that put the same words
/// to the whole agent and to its parts.
pub const CALLER_QUESTIONS: [&str; 6] = [
    "What time do you open tomorrow?",
    "Can I book a table for two people?",
    "Do you have any vegetarian dishes?",
    "How much does the lunch menu cost?",
    "Is there parking near the restaurant?",
    "Thank you, that is all for today.",
];

/// How long a helper waits for a frame before failing the test.
pub const RECV_TIMEOUT: Duration = Duration::from_secs(10);

/// `text` spoken by espeak-ng (US English, `words_per_minute`), as mono
/// PCM16 at `rate`. Needs the `espeak-ng` program (`apt-get install espeak-ng`).
pub fn espeak(text: &str, words_per_minute: u32, rate: SampleRate) -> Vec<i16> {
    let output = std::process::Command::new("espeak-ng")
        .args([
            "-v",
            "en-us",
            "-s",
            &words_per_minute.to_string(),
            "--stdout",
            text,
        ])
        .output()
        .expect("running espeak-ng (apt-get install espeak-ng)");
    assert!(output.status.success(), "espeak-ng failed: {output:?}");
    let wav = parse_wav(&output.stdout).expect("espeak-ng writes a PCM16 WAV");
    let mut resampler = Resampler::new(wav.sample_rate, rate).expect("a resamplable rate");
    let mut samples = Vec::new();
    resampler.process(&wav.to_mono(), &mut samples);
    resampler.flush(&mut samples);
    samples
}

/// One 20 ms frame of μ-law silence at 8 kHz (0xFF encodes zero).
pub fn ulaw_silence_frame() -> Vec<u8> {
    vec![0xFF; 160]
}

/// The account every [`TwilioCaller`] streams for.
pub const ACCOUNT_SID: &str = "AC00000000000000000000000000000000";

/// Writes the frames one Twilio Media Stream sends, with consistent ids,
/// sequence numbers, chunk numbers and timestamps.
#[derive(Debug, Clone)]
pub struct TwilioCaller {
    /// The call's SID (`CA…`).
    pub call_sid: String,
    /// The stream's SID (`MZ…`).
    pub stream_sid: String,
    sequence: u64,
    chunk: u64,
    timestamp_ms: u64,
}

impl TwilioCaller {
    /// A caller whose SIDs are derived from `tag` (unique per test).
    pub fn new(tag: &str) -> Self {
        Self {
            call_sid: format!("CA{tag}"),
            stream_sid: format!("MZ{tag}"),
            sequence: 0,
            chunk: 0,
            timestamp_ms: 0,
        }
    }

    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    /// The `connected` message, always first.
    pub fn connected(&self) -> String {
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"}).to_string()
    }

    /// The `start` message with `from`, `to` and `persona` custom parameters.
    pub fn start(&mut self, from: &str, to: &str, persona: &str) -> String {
        json!({
            "event": "start",
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.stream_sid,
            "start": {
                "streamSid": self.stream_sid,
                "accountSid": ACCOUNT_SID,
                "callSid": self.call_sid,
                "tracks": ["inbound"],
                "customParameters": {"from": from, "to": to, "persona": persona},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
            }
        })
        .to_string()
    }

    /// One inbound `media` message carrying `payload` (μ-law bytes).
    pub fn media(&mut self, payload: &[u8]) -> String {
        self.chunk += 1;
        let frame = json!({
            "event": "media",
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.stream_sid,
            "media": {
                "track": "inbound",
                "chunk": self.chunk.to_string(),
                "timestamp": self.timestamp_ms.to_string(),
                "payload": STANDARD.encode(payload)
            }
        });
        self.timestamp_ms += 20;
        frame.to_string()
    }

    /// The echo of a `mark` the server sent.
    pub fn mark(&mut self, name: &str) -> String {
        json!({
            "event": "mark",
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.stream_sid,
            "mark": {"name": name}
        })
        .to_string()
    }

    /// A DTMF digit pressed by the caller.
    pub fn dtmf(&mut self, digit: &str) -> String {
        json!({
            "event": "dtmf",
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.stream_sid,
            "dtmf": {"track": "inbound_track", "digit": digit}
        })
        .to_string()
    }

    /// The `stop` message sent when the call ends.
    pub fn stop(&mut self) -> String {
        json!({
            "event": "stop",
            "sequenceNumber": self.next_sequence(),
            "streamSid": self.stream_sid,
            "stop": {"accountSid": ACCOUNT_SID, "callSid": self.call_sid}
        })
        .to_string()
    }
}

/// Connects a WebSocket client to `path` on a server at `addr`.
pub async fn connect(addr: std::net::SocketAddr, path: &str) -> Client {
    let url = format!("ws://{addr}{path}");
    // Like a carrier's media client, send each small frame at once.
    let connecting = connect_async_with_config(url.as_str(), None, true);
    let (client, _) = tokio::time::timeout(RECV_TIMEOUT, connecting)
        .await
        .unwrap_or_else(|_| panic!("timed out connecting to {url}"))
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    client
}

/// Opens a WebSocket to `path` with extra request headers: the client, or
/// the HTTP status and body with which the server refused the upgrade.
pub async fn try_connect(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Client, (u16, String)> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    let url = format!("ws://{addr}{path}");
    let mut request = url.as_str().into_client_request().expect("a WebSocket URL");
    for (name, value) in headers {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    let answer = tokio::time::timeout(RECV_TIMEOUT, connect_async_with_config(request, None, true))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for an answer from {url}"));
    match answer {
        Ok((client, _)) => Ok(client),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_deref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default();
            Err((response.status().as_u16(), body))
        }
        Err(other) => panic!("connecting to {url}: {other}"),
    }
}

/// Opens Twilio's `/stream` WebSocket at `addr` as Twilio does with an
/// auth token: signed over `signed_url`, the `wss://` URL Twilio was told
/// (`wss://<addr><path>` for a server without a public URL).
pub async fn connect_signed(
    addr: std::net::SocketAddr,
    path: &str,
    signed_url: &str,
    auth_token: &str,
) -> Client {
    let signature = voxgate_core::twilio_signature::sign(auth_token, signed_url, []);
    try_connect(addr, path, &[("x-twilio-signature", &signature)])
        .await
        .unwrap_or_else(|(status, body)| panic!("signed {path} refused: {status} {body}"))
}

/// The HTTP status with which the server refuses a WebSocket upgrade to
/// `path`; fails the test if the upgrade is accepted.
pub async fn refused_upgrade_status(addr: std::net::SocketAddr, path: &str) -> u16 {
    let url = format!("ws://{addr}{path}");
    let answer = tokio::time::timeout(
        RECV_TIMEOUT,
        connect_async_with_config(url.as_str(), None, true),
    )
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for an answer from {url}"));
    match answer {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal for {url}, got {other}"),
        Ok(_) => panic!("{url} was upgraded"),
    }
}

/// Sends a text frame.
pub async fn send_text(client: &mut Client, text: impl Into<String>) {
    client
        .send(Message::text(text.into()))
        .await
        .expect("send to server");
}

/// The next text frame as JSON, skipping pings and pongs.
pub async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(RECV_TIMEOUT, client.next())
            .await
            .expect("timed out waiting for a server message")
            .expect("the server closed the connection")
            .expect("websocket error");
        match message {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).expect("server sent JSON");
            }
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads JSON frames until one has `type` equal to `kind`, and returns it.
pub async fn next_of_type(client: &mut Client, kind: &str) -> Value {
    loop {
        let value = next_json(client).await;
        if value["type"] == kind {
            return value;
        }
    }
}

/// Reads until the server closes, returning the close code (None when the
/// connection ended without a close frame).
pub async fn close_code(client: &mut Client) -> Option<u16> {
    loop {
        let next = tokio::time::timeout(RECV_TIMEOUT, client.next())
            .await
            .expect("timed out waiting for the server to close");
        match next {
            Some(Ok(Message::Close(frame))) => {
                // Send the queued close reply, completing the handshake as a
                // real client does, so the server need not wait for it.
                let _ = client.flush().await;
                return frame.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}
