//! Deepgram live speech to text (`/v1/listen` over WebSocket).
//!
//! Each call gets a [`SttStream`] at once; a task of its own connects in
//! the background under the vendor's [`Supervisor`] and holds the slot for
//! as long as the socket lives. The caller's audio goes out as binary
//! linear16 frames (held for a few seconds while connecting); a
//! `KeepAlive` text frame goes out whenever no audio has for a while, since
//! Deepgram closes a socket that is idle for 10 s. A turn is transcribed by
//! sending `Finalize` and answering with the final segments since the turn
//! began once the flushed results (`from_finalize`) arrive, or, when they
//! are late, with what has arrived: the finals and the latest interim text. A socket that drops mid-call is
//! reconnected; when that fails for good, every transcription answers the
//! error. Dropping the stream, or cancelling the call's token, sends
//! `CloseStream` and ends the task.
//!
//! The protocol itself, as plain data, is in [`messages`].

mod backlog;
mod client;
pub mod messages;
mod turn;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use crate::cloud::{BaseUrl, check_status};
use crate::supervisor::Supervisor;
use crate::{ProviderError, Secret, SpeechToText, SttStream, TaskScope};

/// The vendor's name, in errors and on its [`Supervisor`].
pub const VENDOR: &str = "deepgram";
/// The default `DEEPGRAM_BASE_URL`.
pub const DEFAULT_BASE_URL: &str = "https://api.deepgram.com";
/// The default model (`VOXGATE_STT_MODEL`).
pub const DEFAULT_MODEL: &str = "nova-3";

/// How long `check` waits for Deepgram to answer.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where Deepgram is, how to authenticate, and the timings of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct DeepgramConfig {
    /// `DEEPGRAM_BASE_URL`, e.g. `https://api.deepgram.com` (the socket is
    /// `wss://…/v1/listen`).
    pub base_url: BaseUrl,
    /// `DEEPGRAM_API_KEY`, sent as `Authorization: Token <key>`.
    pub api_key: Secret,
    /// The model, e.g. `nova-3`.
    pub model: String,
    /// How long the socket may go without a frame from us (no audio, as
    /// while the caller listens) before a `KeepAlive` is sent. Deepgram
    /// closes the socket after 10 s without audio or a text message.
    pub keepalive_interval: Duration,
    /// How long `transcribe` waits for the results of its `Finalize` before
    /// answering with what it has.
    pub finalize_timeout: Duration,
    /// How long a dropped stream waits for Deepgram to flush and close after
    /// `CloseStream`.
    pub close_timeout: Duration,
    /// How much of the caller's audio is held while the socket is
    /// connecting or reconnecting (the newest is kept).
    pub connect_buffer: Duration,
}

impl DeepgramConfig {
    /// A configuration with the default model and timings.
    pub fn new(base_url: BaseUrl, api_key: Secret) -> Self {
        Self {
            base_url,
            api_key,
            model: DEFAULT_MODEL.to_owned(),
            keepalive_interval: Duration::from_secs(4),
            finalize_timeout: Duration::from_millis(1500),
            close_timeout: Duration::from_secs(1),
            connect_buffer: Duration::from_secs(5),
        }
    }
}

/// Deepgram live transcription, one WebSocket per call.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    shared: Arc<Shared>,
}

/// What every call's task shares: configuration, the vendor's supervisor
/// and the counters.
#[derive(Debug)]
struct Shared {
    config: DeepgramConfig,
    supervisor: Supervisor,
    url: String,
    counters: Counters,
}

#[derive(Debug, Default)]
struct Counters {
    malformed_messages: AtomicU64,
    reconnects: AtomicU64,
    dropped_audio_frames: AtomicU64,
    active_streams: AtomicUsize,
}

/// Counts across every call of one [`DeepgramStt`], for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeepgramStats {
    /// Messages from Deepgram that could not be decoded and were skipped.
    pub malformed_messages: u64,
    /// Sockets that dropped mid-call and were reconnected (or tried to be).
    pub reconnects: u64,
    /// Audio frames dropped because the socket was away too long or the
    /// call's task fell behind.
    pub dropped_audio_frames: u64,
    /// Calls whose task is still running.
    pub active_streams: usize,
}

impl DeepgramStt {
    /// A recogniser that connects per `config`, under `supervisor` (shared
    /// by all of Deepgram's clients).
    pub fn new(config: DeepgramConfig, supervisor: Supervisor) -> Self {
        let url = messages::listen_url(&config.base_url, &config.model);
        Self {
            shared: Arc::new(Shared {
                config,
                supervisor,
                url,
                counters: Counters::default(),
            }),
        }
    }

    /// The counts so far.
    pub fn stats(&self) -> DeepgramStats {
        let counters = &self.shared.counters;
        DeepgramStats {
            malformed_messages: counters.malformed_messages.load(Ordering::Relaxed),
            reconnects: counters.reconnects.load(Ordering::Relaxed),
            dropped_audio_frames: counters.dropped_audio_frames.load(Ordering::Relaxed),
            active_streams: counters.active_streams.load(Ordering::Relaxed),
        }
    }
}

impl SpeechToText for DeepgramStt {
    /// Opens a stream and starts its task in `scope`; must be called
    /// within a tokio runtime.
    fn open(&self, scope: &TaskScope) -> Box<dyn SttStream> {
        Box::new(client::open(self.shared.clone(), scope))
    }
}

/// Checks that Deepgram accepts the key (`GET /v1/projects`), for
/// `voxgate check`.
///
/// # Errors
/// `Rejected` (401) for a bad key, `Unavailable` when Deepgram cannot be
/// reached, or whatever else its status means.
pub async fn check(config: &DeepgramConfig) -> Result<(), ProviderError> {
    let unavailable = |e: reqwest::Error| ProviderError::Unavailable {
        provider: VENDOR,
        reason: e.without_url().to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(CHECK_TIMEOUT)
        .build()
        .map_err(unavailable)?;
    let response = client
        .get(config.base_url.join("/v1/projects"))
        .header(
            reqwest::header::AUTHORIZATION,
            authorization(&config.api_key)?,
        )
        .send()
        .await
        .map_err(unavailable)?;
    let (status, retry_after, body) = crate::cloud::status_parts(response).await;
    check_status(VENDOR, status, retry_after.as_deref(), &body)
}

/// The `Authorization` header for `key`, marked sensitive so it is never
/// printed.
fn authorization(key: &Secret) -> Result<reqwest::header::HeaderValue, ProviderError> {
    let mut value = reqwest::header::HeaderValue::from_str(&format!("Token {}", key.expose()))
        .map_err(|_| ProviderError::Load {
            what: "the Deepgram API key".to_owned(),
            reason: "it is not a valid HTTP header value".to_owned(),
        })?;
    value.set_sensitive(true);
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let config = DeepgramConfig::new(
            BaseUrl::parse(DEFAULT_BASE_URL).expect("valid"),
            Secret::new("dg-key-do-not-print"),
        );
        let stt = DeepgramStt::new(config.clone(), Supervisor::new(VENDOR, Default::default()));
        for printed in [format!("{config:?}"), format!("{stt:?}")] {
            assert!(!printed.contains("dg-key-do-not-print"), "{printed}");
        }
        let header = authorization(&config.api_key).expect("a valid header");
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains("dg-key-do-not-print"));
    }
}
