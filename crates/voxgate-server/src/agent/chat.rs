//! Text turns with the agent (`chat` on `/events`): the persona and model a
//! call would get, without audio.

use voxgate_core::engine::{ChatMessage, Role};
use voxgate_core::events::JobConfig;
use voxgate_providers::{LlmChunk, LlmRequest, ProviderError, TaskScope};
use voxgate_store::Store;

use super::Providers;
use crate::personas::resolve_persona;

/// Messages of chat history kept per monitor session.
pub const CHAT_HISTORY: usize = 20;

/// One answered chat turn.
#[derive(Debug, Clone)]
pub struct ChatAnswer {
    /// The persona that answered.
    pub persona: String,
    /// The user's words, then the answer, for the history.
    pub exchange: [ChatMessage; 2],
}

/// Answers `text` as the persona `job` names, after `history`; the model's
/// work runs in `scope` (the monitor session's).
///
/// # Errors
/// The language model failed.
pub async fn chat_turn(
    providers: &Providers,
    store: &Store,
    job: &JobConfig,
    history: Vec<ChatMessage>,
    text: String,
    scope: &TaskScope,
) -> Result<ChatAnswer, ProviderError> {
    let persona = resolve_persona(store, job).await;
    let user = ChatMessage::new(Role::User, text);
    let mut messages = Vec::with_capacity(history.len() + 2);
    messages.push(ChatMessage::new(Role::System, persona.instructions.clone()));
    messages.extend(history);
    messages.push(user.clone());
    // A text chat offers no tools: it has no call to end or transfer.
    let mut pieces = providers.llm.reply(LlmRequest::chat(messages), scope);
    let mut answer = String::new();
    while let Some(piece) = pieces.recv().await {
        if let LlmChunk::Text(text) = piece? {
            answer.push_str(&text);
        }
    }
    Ok(ChatAnswer {
        persona: persona.name,
        exchange: [
            user,
            ChatMessage::new(Role::Assistant, answer.trim().to_owned()),
        ],
    })
}
