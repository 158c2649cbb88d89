//! Providers behind traits: voice activity, end of turn, speech to text,
//! language model, text to speech.
//!
//! Every provider is chosen by configuration. Local inference is CPU-bound,
//! so the async shell runs the synchronous calls (`VadStream::push`,
//! `EndOfTurnModel::predict`) on a blocking thread when they are slow, and
//! the streaming ones hand results over a bounded channel: dropping the
//! receiver cancels the work, which is how a barge-in or a hang-up stops a
//! reply mid-generation.

pub mod local;

use tokio::sync::mpsc;
use voxgate_core::engine::ChatMessage;

/// What went wrong in a provider, and whose fault it is.
#[derive(Debug, thiserror::Error)]
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

/// Speech to text for whole utterances.
pub trait SpeechToText: Send + Sync {
    /// Transcribes 16 kHz audio; the text arrives on the channel once.
    fn transcribe(&self, audio: Vec<i16>) -> mpsc::Receiver<Result<String, ProviderError>>;
}

/// A chat language model that streams its reply.
pub trait LanguageModel: Send + Sync {
    /// Streams the reply to `messages` as text pieces; the channel closes
    /// when the reply is complete. Dropping the receiver stops generation.
    fn reply(&self, messages: Vec<ChatMessage>) -> mpsc::Receiver<Result<String, ProviderError>>;
}

/// Text to speech that streams audio.
pub trait TextToSpeech: Send + Sync {
    /// Rate of the audio it produces.
    fn sample_rate(&self) -> u32;
    /// Streams the audio of `text` as PCM16 chunks; the channel closes when
    /// done. Dropping the receiver stops synthesis.
    fn synthesize(&self, text: String) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>>;
}
