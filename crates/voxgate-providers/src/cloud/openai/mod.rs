//! OpenAI and OpenAI-compatible servers: Chat Completions (any compatible
//! server), transcription and speech over HTTP, and the Realtime API.

pub mod chat;
pub mod realtime;
pub mod speech;
mod sse;
pub mod transcription;
mod transport;

use crate::Secret;
use crate::cloud::BaseUrl;

/// Where an OpenAI-compatible server is and how to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// `OPENAI_BASE_URL`, e.g. `https://api.openai.com/v1` (paths such as
    /// `/chat/completions` are joined to it).
    pub base_url: BaseUrl,
    /// `OPENAI_API_KEY`; local servers may need none.
    pub api_key: Option<Secret>,
}

/// The default base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
