//! Providers behind traits: voice activity, end of turn, speech to text,
//! language model, text to speech.
//!
//! Every provider is chosen by configuration. Local inference is CPU-bound,
//! so the async shell runs the synchronous calls (`VadStream::push`,
//! `EndOfTurnModel::predict`) on a blocking thread when they are slow, and
//! the streaming ones hand results over a bounded channel: dropping the
//! receiver cancels the work, which is how a barge-in or a hang-up stops a
//! reply mid-generation.
//!
//! Cloud providers ([`cloud`]) take a base URL, so tests and benchmarks
//! point them at the in-repo fakes that speak each vendor's protocol, and
//! share one [`supervisor::Supervisor`] per vendor. The tasks they start
//! for a call run in the call's [`TaskScope`], handed to each method that
//! starts work, so the end of the call stops them and a draining server
//! waits for them.

pub mod cloud;
pub mod local;
mod scope;
mod secret;
pub mod supervisor;

use std::time::Duration;

use tokio::sync::mpsc;
pub use voxgate_core::engine::{ChatMessage, ToolCall, ToolSpec};

pub use scope::TaskScope;
pub use secret::Secret;

/// What went wrong in a provider, and whose fault it is.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ProviderError {
    /// A model file or library could not be loaded.
    #[error("cannot load {what}: {reason}")]
    Load {
        /// The model or library.
        what: String,
        /// Why.
        reason: String,
    },
    /// The input was not something the model accepts (caller's audio/text).
    #[error("invalid input: {0}")]
    Input(String),
    /// Inference failed.
    #[error("{provider} failed: {reason}")]
    Inference {
        /// Which provider.
        provider: &'static str,
        /// Why.
        reason: String,
    },
    /// The vendor refused the request for good (bad key, unknown model or
    /// voice, bad request): retrying will not help.
    #[error("{provider} rejected the request ({status}): {reason}")]
    Rejected {
        /// Which vendor.
        provider: &'static str,
        /// The HTTP status (or WebSocket close code).
        status: u16,
        /// What the vendor said, without secrets.
        reason: String,
    },
    /// The vendor asked us to slow down (HTTP 429).
    #[error("{provider} is rate limiting (retry after {retry_after:?})")]
    RateLimited {
        /// Which vendor.
        provider: &'static str,
        /// How long the vendor asked us to wait, when it said.
        retry_after: Option<Duration>,
    },
    /// The vendor could not be reached or failed on its side (connect
    /// refused or timed out, 5xx, dropped mid-stream, circuit open).
    #[error("{provider} unavailable: {reason}")]
    Unavailable {
        /// Which vendor.
        provider: &'static str,
        /// Why.
        reason: String,
    },
    /// The vendor sent something that breaks its own protocol.
    #[error("{provider} protocol error: {reason}")]
    Protocol {
        /// Which vendor.
        provider: &'static str,
        /// What was wrong.
        reason: String,
    },
}

impl ProviderError {
    /// Whether trying again (after a pause) may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ProviderError::RateLimited { .. } | ProviderError::Unavailable { .. }
        )
    }

    /// How long the vendor asked us to wait before trying again.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ProviderError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// One voice-activity model, shared by every call; each call has its own
/// stream holding only the recurrent state.
pub trait VadModel: Send + Sync {
    /// A fresh per-call stream.
    fn stream(&self) -> Box<dyn VadStream>;
}

/// Per-call voice activity state.
pub trait VadStream: Send {
    /// Samples per window at 16 kHz (512 for Silero).
    fn window_samples(&self) -> usize;
    /// Speech probability of one window of exactly `window_samples()` samples.
    fn push(&mut self, window: &[i16]) -> Result<f32, ProviderError>;
    /// Forgets the recurrent state (a new call or a long gap).
    fn reset(&mut self);
}

/// A semantic end-of-turn model (Smart Turn).
pub trait EndOfTurnModel: Send + Sync {
    /// Probability that the caller finished their turn, from up to the last
    /// 8 s of their speech at 16 kHz.
    fn predict(&self, audio: &[i16]) -> Result<f32, ProviderError>;
}

/// Speech to text. Each call opens its own stream.
pub trait SpeechToText: Send + Sync {
    /// A stream for one call, whose work runs in `scope` (the call's).
    /// Streaming recognisers connect in the background (errors surface on
    /// [`SttStream::transcribe`]); dropping the stream, or cancelling the
    /// scope, closes it.
    fn open(&self, scope: &TaskScope) -> Box<dyn SttStream>;

    /// Whether a turn is worth transcribing ahead, at the caller's pauses
    /// (default yes): an extra transcription costs spare CPU or nothing on
    /// a streaming socket, but a request and its bill where each is paid.
    fn transcribe_at_pauses(&self) -> bool {
        true
    }
}

/// Speech to text for one call.
pub trait SttStream: Send {
    /// Every frame of the caller's audio at 16 kHz, in order, as it comes.
    /// Batch recognisers ignore it; streaming ones send it on.
    fn audio(&mut self, samples: &[i16]);
    /// The transcript of the caller's turn so far, whose audio (at 16 kHz)
    /// is `utterance`; it arrives once. A turn may be transcribed more than
    /// once, when the caller goes on after a pause: each answer covers the
    /// whole turn since [`SttStream::next_turn`].
    fn transcribe(&mut self, utterance: Vec<i16>) -> mpsc::Receiver<Result<String, ProviderError>>;
    /// The turn was answered: later transcripts start after it.
    fn next_turn(&mut self);
    /// Interim text of the turn in progress (each the whole turn so far),
    /// for display. Taken once; `None` for recognisers without interim
    /// results.
    fn partials(&mut self) -> Option<mpsc::Receiver<String>>;
}

/// Speech to text for whole utterances, made a [`SpeechToText`] by
/// [`BatchStt`].
pub trait TranscribeUtterance: Send + Sync + 'static {
    /// Transcribes 16 kHz audio, with any task it needs in `scope`; the
    /// text arrives on the channel once.
    fn transcribe(
        &self,
        audio: Vec<i16>,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<String, ProviderError>>;

    /// As [`SpeechToText::transcribe_at_pauses`].
    fn transcribe_at_pauses(&self) -> bool {
        true
    }
}

/// A batch recogniser as a [`SpeechToText`]: each turn's audio is
/// transcribed whole, with no interim results.
#[derive(Debug)]
pub struct BatchStt<T>(std::sync::Arc<T>);

impl<T: TranscribeUtterance> BatchStt<T> {
    /// Wraps `recogniser`.
    pub fn new(recogniser: T) -> Self {
        Self(std::sync::Arc::new(recogniser))
    }
}

impl<T: TranscribeUtterance> SpeechToText for BatchStt<T> {
    fn open(&self, scope: &TaskScope) -> Box<dyn SttStream> {
        Box::new(BatchStream {
            recogniser: self.0.clone(),
            scope: scope.clone(),
        })
    }

    fn transcribe_at_pauses(&self) -> bool {
        self.0.transcribe_at_pauses()
    }
}

struct BatchStream<T> {
    recogniser: std::sync::Arc<T>,
    /// The call's: each turn's transcription runs in it.
    scope: TaskScope,
}

impl<T: TranscribeUtterance> SttStream for BatchStream<T> {
    fn audio(&mut self, _samples: &[i16]) {}

    fn transcribe(&mut self, utterance: Vec<i16>) -> mpsc::Receiver<Result<String, ProviderError>> {
        self.recogniser.transcribe(utterance, &self.scope)
    }

    fn next_turn(&mut self) {}

    fn partials(&mut self) -> Option<mpsc::Receiver<String>> {
        None
    }
}

/// What the model is asked.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LlmRequest {
    /// System prompt first, then the conversation.
    pub messages: Vec<ChatMessage>,
    /// Tools the model may call; empty for none.
    pub tools: Vec<ToolSpec>,
}

impl LlmRequest {
    /// A request without tools.
    pub fn chat(messages: Vec<ChatMessage>) -> Self {
        Self {
            messages,
            tools: Vec::new(),
        }
    }
}

/// One piece of a streamed reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LlmChunk {
    /// Text to say.
    Text(String),
    /// A complete tool call (arguments accumulated to the end).
    ToolCall(ToolCall),
    /// Token counts, when the server reports them (at the end).
    Usage(TokenUsage),
}

/// Tokens one reply used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TokenUsage {
    /// Prompt tokens.
    pub prompt: u32,
    /// Generated tokens.
    pub completion: u32,
}

/// A chat language model that streams its reply.
pub trait LanguageModel: Send + Sync {
    /// Streams the reply to `request`, with any task it needs in `scope`;
    /// the channel closes when the reply is complete. Dropping the
    /// receiver, or cancelling the scope, stops generation.
    fn reply(
        &self,
        request: LlmRequest,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<LlmChunk, ProviderError>>;
}

/// Text to speech that streams audio.
pub trait TextToSpeech: Send + Sync {
    /// Rate of the audio it produces.
    fn sample_rate(&self) -> u32;
    /// Streams the audio of `text` as PCM16 chunks, with any task it needs
    /// in `scope`; the channel closes when done. Dropping the receiver, or
    /// cancelling the scope, stops synthesis.
    fn synthesize(
        &self,
        text: String,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>>;
}
