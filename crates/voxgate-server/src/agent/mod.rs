//! The conversational agent of a call: the async shell around the sans-IO
//! [`CallEngine`](voxgate_core::engine::CallEngine).
//!
//! Each call with an agent runs one agent task, a TTS worker and short-lived
//! provider tasks, all on the server's task tracker under the call's
//! cancellation token. The call's socket task talks to it over channels:
//! caller audio and played marks in, [`AgentAction`]s out, both at the
//! carrier's rate. The agent resamples to 16 kHz for VAD and STT, and from
//! the TTS rate to the carrier's.

mod chat;
mod providers;
mod realtime;
mod task;
mod tools;
mod transcript;

pub use chat::{CHAT_HISTORY, ChatAnswer, chat_turn};
pub use providers::{APOLOGY, Providers};
pub use realtime::{RealtimeAgent, RealtimeSettings, spawn_realtime_agent};
pub use task::{AgentAction, AgentHandle, AgentSpec, CallTransfer, spawn_agent};
pub use tools::{LookupHost, SystemLookup, ToolAnswer, ToolClient, ToolClientError, ToolOutcome};

/// Whether this server's calls get an agent.
#[derive(Debug, Clone, Default)]
pub enum AgentState {
    /// Calls are answered, tracked and recorded, but nobody speaks: a
    /// server embedded without providers.
    #[default]
    Off,
    /// The providers are loading: not ready, new calls are refused.
    Loading,
    /// Every new call gets an agent with these providers.
    Ready(Providers),
    /// Every new call gets a realtime (speech-to-speech) agent.
    Realtime(RealtimeAgent),
    /// The providers could not be loaded: not ready, new calls are refused.
    Failed(String),
}

impl AgentState {
    /// The name `/readyz` reports.
    pub fn as_str(&self) -> &'static str {
        match self {
            AgentState::Off => "off",
            AgentState::Loading => "loading",
            AgentState::Ready(_) | AgentState::Realtime(_) => "ready",
            AgentState::Failed(_) => "failed",
        }
    }

    /// Whether calls can be taken.
    pub fn takes_calls(&self) -> bool {
        matches!(
            self,
            AgentState::Off | AgentState::Ready(_) | AgentState::Realtime(_)
        )
    }
}
