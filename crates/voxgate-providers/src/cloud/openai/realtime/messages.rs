//! The Realtime API's events as plain data: server events parsed from JSON
//! text frames, client events written to them. No IO.
//!
//! Both generations of event names are accepted: the GA ones
//! (`response.output_audio.delta`, `conversation.item.added`, …) and the
//! beta ones (`response.audio.delta`, `conversation.item.created`, …).
//! Client events differ between the two only in `session.update`, whose
//! shape [`Dialect`] picks.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;
use serde_json::{Value, json};

use super::VENDOR;
use crate::{ProviderError, TokenUsage, ToolCall, ToolSpec};

/// Which generation of the API a session speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The GA API: nested `audio` settings, `session.type`, no beta header.
    Ga,
    /// The beta API (`OpenAI-Beta: realtime=v1`): flat session fields.
    Beta,
}

/// An error the server reported with an `error` event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VendorError {
    /// `error.type`, e.g. `invalid_request_error`.
    pub kind: String,
    /// `error.code`, when given.
    pub code: Option<String>,
    /// What the server said.
    pub message: String,
    /// The session field at fault, when given.
    pub param: Option<String>,
    /// The client event at fault, when it carried an id.
    pub event_id: Option<String>,
}

/// Error codes that only say a request raced the server's own state (a
/// cancel after the response ended, a `response.create` while one runs);
/// the session goes on.
const BENIGN_ERROR_CODES: [&str; 2] = [
    "response_cancel_not_active",
    "conversation_already_has_active_response",
];

impl VendorError {
    /// Whether the session can go on after it.
    pub fn is_benign(&self) -> bool {
        self.code
            .as_deref()
            .is_some_and(|code| BENIGN_ERROR_CODES.contains(&code))
    }
}

/// One conversation item, as far as a call needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item's id.
    pub id: String,
    /// What it is.
    pub kind: ItemKind,
}

/// The kind of a conversation item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemKind {
    /// A message of `role` (`user`, `assistant`, `system`).
    Message {
        /// Who it is from.
        role: String,
    },
    /// The model calls a tool. Its arguments are complete once the item is
    /// done (`response.output_item.done`); when added they may be empty.
    FunctionCall(ToolCall),
    /// A tool's result, sent by the client.
    FunctionCallOutput {
        /// The call it answers.
        call_id: String,
    },
    /// An item type this client does not use.
    Other(String),
}

/// How a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseStatus {
    /// It ran to the end.
    Completed,
    /// It was cancelled (`response.cancel`, or the caller spoke).
    Cancelled,
    /// It stopped early (e.g. the token limit).
    Incomplete,
    /// It failed on the server's side.
    Failed,
    /// A status this client does not know.
    Other(String),
}

impl ResponseStatus {
    fn parse(status: &str) -> Self {
        match status {
            "completed" => ResponseStatus::Completed,
            "cancelled" => ResponseStatus::Cancelled,
            "incomplete" => ResponseStatus::Incomplete,
            "failed" => ResponseStatus::Failed,
            other => ResponseStatus::Other(other.to_owned()),
        }
    }
}

/// An event from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ServerEvent {
    /// `session.created`: the session is open.
    SessionCreated {
        /// The session's id.
        session_id: Option<String>,
    },
    /// `session.updated`: a `session.update` took effect.
    SessionUpdated,
    /// `input_audio_buffer.speech_started`: the caller started speaking
    /// (with `interrupt_response`, the server cancels its response).
    SpeechStarted {
        /// The user item the speech will become.
        item_id: Option<String>,
        /// Where in the appended audio the speech started.
        audio_start_ms: Option<u64>,
    },
    /// `input_audio_buffer.speech_stopped`: the caller stopped speaking.
    SpeechStopped {
        /// The user item.
        item_id: Option<String>,
        /// Where in the appended audio the speech ended.
        audio_end_ms: Option<u64>,
    },
    /// `input_audio_buffer.committed`: the caller's turn became an item.
    InputCommitted {
        /// The user item.
        item_id: Option<String>,
    },
    /// `conversation.item.input_audio_transcription.delta`.
    InputTranscriptDelta {
        /// The user item.
        item_id: String,
        /// More of the transcript.
        delta: String,
    },
    /// `conversation.item.input_audio_transcription.completed`.
    InputTranscriptCompleted {
        /// The user item.
        item_id: String,
        /// What the caller said.
        transcript: String,
    },
    /// `conversation.item.input_audio_transcription.failed`.
    InputTranscriptFailed {
        /// The user item.
        item_id: String,
        /// Why, as the server said.
        reason: String,
    },
    /// `conversation.item.added` (beta: `conversation.item.created`).
    ItemAdded(Item),
    /// `response.created`.
    ResponseCreated {
        /// The response.
        response_id: String,
    },
    /// `response.output_item.added`.
    OutputItemAdded {
        /// The response.
        response_id: String,
        /// The item.
        item: Item,
    },
    /// `response.output_item.done`.
    OutputItemDone {
        /// The response.
        response_id: String,
        /// The item, complete.
        item: Item,
    },
    /// `response.output_audio.delta` (beta: `response.audio.delta`).
    AudioDelta {
        /// The response.
        response_id: String,
        /// The assistant item the audio belongs to.
        item_id: String,
        /// The audio in the session's output format (μ-law bytes for
        /// `audio/pcmu`), base64-decoded.
        audio: Vec<u8>,
    },
    /// `response.output_audio.done` (beta: `response.audio.done`).
    AudioDone {
        /// The response.
        response_id: String,
        /// The item whose audio is complete.
        item_id: String,
    },
    /// `response.output_audio_transcript.delta` (beta:
    /// `response.audio_transcript.delta`).
    AudioTranscriptDelta {
        /// The response.
        response_id: String,
        /// The item.
        item_id: String,
        /// More of what the audio says.
        delta: String,
    },
    /// `response.output_audio_transcript.done` (beta:
    /// `response.audio_transcript.done`).
    AudioTranscriptDone {
        /// The response.
        response_id: String,
        /// The item.
        item_id: String,
        /// Everything the audio says.
        transcript: String,
    },
    /// `response.output_text.delta` (beta: `response.text.delta`).
    TextDelta {
        /// The response.
        response_id: String,
        /// The item.
        item_id: String,
        /// More text.
        delta: String,
    },
    /// `response.done`.
    ResponseDone {
        /// The response.
        response_id: String,
        /// How it ended.
        status: ResponseStatus,
        /// Its output items.
        output: Vec<Item>,
        /// Token counts, when reported.
        usage: Option<TokenUsage>,
    },
    /// `error`. Apart from [`VendorError::is_benign`] ones, the session
    /// cannot be trusted to go on.
    Error(VendorError),
    /// An event this client does not act on (`rate_limits.updated`,
    /// `response.content_part.added`, …).
    Ignored {
        /// Its `type`.
        kind: String,
    },
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct SessionCreatedWire {
    #[serde(default)]
    session: SessionWire,
}

#[derive(Deserialize, Default)]
struct SessionWire {
    id: Option<String>,
}

#[derive(Deserialize)]
struct SpeechWire {
    item_id: Option<String>,
    audio_start_ms: Option<u64>,
    audio_end_ms: Option<u64>,
}

#[derive(Deserialize)]
struct InputTranscriptWire {
    item_id: String,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    error: Option<ErrorWire>,
}

#[derive(Deserialize)]
struct ItemEventWire {
    item: ItemWire,
}

#[derive(Deserialize)]
struct OutputItemWire {
    response_id: String,
    item: ItemWire,
}

#[derive(Deserialize)]
struct ItemWire {
    #[serde(default)]
    id: String,
    #[serde(rename = "type")]
    kind: String,
    role: Option<String>,
    call_id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
}

impl ItemWire {
    fn into_item(self) -> Item {
        let kind = match self.kind.as_str() {
            "message" => ItemKind::Message {
                role: self.role.unwrap_or_default(),
            },
            "function_call" => ItemKind::FunctionCall(ToolCall {
                id: self.call_id.unwrap_or_default(),
                name: self.name.unwrap_or_default(),
                arguments: self.arguments.unwrap_or_default(),
            }),
            "function_call_output" => ItemKind::FunctionCallOutput {
                call_id: self.call_id.unwrap_or_default(),
            },
            _ => ItemKind::Other(self.kind),
        };
        Item { id: self.id, kind }
    }
}

#[derive(Deserialize)]
struct ContentWire {
    response_id: String,
    item_id: String,
    #[serde(default)]
    delta: String,
    #[serde(default)]
    transcript: String,
}

#[derive(Deserialize)]
struct ResponseEventWire {
    response: ResponseWire,
}

#[derive(Deserialize)]
struct ResponseWire {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    output: Vec<ItemWire>,
    usage: Option<UsageWire>,
}

#[derive(Deserialize)]
struct UsageWire {
    #[serde(default)]
    input_tokens: u32,
    #[serde(default)]
    output_tokens: u32,
}

#[derive(Deserialize)]
struct ErrorEventWire {
    error: ErrorWire,
}

#[derive(Deserialize)]
struct ErrorWire {
    #[serde(rename = "type", default)]
    kind: String,
    code: Option<String>,
    #[serde(default)]
    message: String,
    param: Option<String>,
    event_id: Option<String>,
}

impl ErrorWire {
    fn into_error(self) -> VendorError {
        VendorError {
            kind: self.kind,
            code: self.code,
            message: self.message,
            param: self.param,
            event_id: self.event_id,
        }
    }
}

fn protocol(reason: String) -> ProviderError {
    ProviderError::Protocol {
        provider: VENDOR,
        reason,
    }
}

fn fields<'a, T: Deserialize<'a>>(kind: &str, text: &'a str) -> Result<T, ProviderError> {
    serde_json::from_str(text).map_err(|e| protocol(format!("malformed {kind}: {e}")))
}

/// Parses one text frame from the server.
///
/// # Errors
/// [`ProviderError::Protocol`] when the frame is not JSON with a `type`, an
/// event lacks a field its type requires, or audio is not valid base64.
/// Unknown event types are not errors: they parse as
/// [`ServerEvent::Ignored`].
pub fn parse_server_event(text: &str) -> Result<ServerEvent, ProviderError> {
    let Envelope { kind } = serde_json::from_str(text)
        .map_err(|e| protocol(format!("not an event with a type: {e}")))?;
    let event = match kind.as_str() {
        "session.created" => {
            let wire: SessionCreatedWire = fields(&kind, text)?;
            ServerEvent::SessionCreated {
                session_id: wire.session.id,
            }
        }
        "session.updated" => ServerEvent::SessionUpdated,
        "input_audio_buffer.speech_started" => {
            let wire: SpeechWire = fields(&kind, text)?;
            ServerEvent::SpeechStarted {
                item_id: wire.item_id,
                audio_start_ms: wire.audio_start_ms,
            }
        }
        "input_audio_buffer.speech_stopped" => {
            let wire: SpeechWire = fields(&kind, text)?;
            ServerEvent::SpeechStopped {
                item_id: wire.item_id,
                audio_end_ms: wire.audio_end_ms,
            }
        }
        "input_audio_buffer.committed" => {
            let wire: SpeechWire = fields(&kind, text)?;
            ServerEvent::InputCommitted {
                item_id: wire.item_id,
            }
        }
        "conversation.item.input_audio_transcription.delta" => {
            let wire: InputTranscriptWire = fields(&kind, text)?;
            ServerEvent::InputTranscriptDelta {
                item_id: wire.item_id,
                delta: wire.delta,
            }
        }
        "conversation.item.input_audio_transcription.completed" => {
            let wire: InputTranscriptWire = fields(&kind, text)?;
            ServerEvent::InputTranscriptCompleted {
                item_id: wire.item_id,
                transcript: wire.transcript,
            }
        }
        "conversation.item.input_audio_transcription.failed" => {
            let wire: InputTranscriptWire = fields(&kind, text)?;
            ServerEvent::InputTranscriptFailed {
                item_id: wire.item_id,
                reason: wire.error.map(|e| e.message).unwrap_or_default(),
            }
        }
        "conversation.item.added" | "conversation.item.created" => {
            let wire: ItemEventWire = fields(&kind, text)?;
            ServerEvent::ItemAdded(wire.item.into_item())
        }
        "response.created" => {
            let wire: ResponseEventWire = fields(&kind, text)?;
            ServerEvent::ResponseCreated {
                response_id: wire.response.id,
            }
        }
        "response.output_item.added" | "response.output_item.done" => {
            let wire: OutputItemWire = fields(&kind, text)?;
            let (response_id, item) = (wire.response_id, wire.item.into_item());
            if kind.ends_with("added") {
                ServerEvent::OutputItemAdded { response_id, item }
            } else {
                ServerEvent::OutputItemDone { response_id, item }
            }
        }
        "response.output_audio.delta" | "response.audio.delta" => {
            let wire: ContentWire = fields(&kind, text)?;
            let audio = STANDARD
                .decode(wire.delta.as_bytes())
                .map_err(|e| protocol(format!("{kind} audio is not base64: {e}")))?;
            ServerEvent::AudioDelta {
                response_id: wire.response_id,
                item_id: wire.item_id,
                audio,
            }
        }
        "response.output_audio.done" | "response.audio.done" => {
            let wire: ContentWire = fields(&kind, text)?;
            ServerEvent::AudioDone {
                response_id: wire.response_id,
                item_id: wire.item_id,
            }
        }
        "response.output_audio_transcript.delta" | "response.audio_transcript.delta" => {
            let wire: ContentWire = fields(&kind, text)?;
            ServerEvent::AudioTranscriptDelta {
                response_id: wire.response_id,
                item_id: wire.item_id,
                delta: wire.delta,
            }
        }
        "response.output_audio_transcript.done" | "response.audio_transcript.done" => {
            let wire: ContentWire = fields(&kind, text)?;
            ServerEvent::AudioTranscriptDone {
                response_id: wire.response_id,
                item_id: wire.item_id,
                transcript: wire.transcript,
            }
        }
        "response.output_text.delta" | "response.text.delta" => {
            let wire: ContentWire = fields(&kind, text)?;
            ServerEvent::TextDelta {
                response_id: wire.response_id,
                item_id: wire.item_id,
                delta: wire.delta,
            }
        }
        "response.done" => {
            let ResponseEventWire { response } = fields(&kind, text)?;
            ServerEvent::ResponseDone {
                response_id: response.id,
                status: ResponseStatus::parse(&response.status),
                output: response
                    .output
                    .into_iter()
                    .map(ItemWire::into_item)
                    .collect(),
                usage: response.usage.map(|u| TokenUsage {
                    prompt: u.input_tokens,
                    completion: u.output_tokens,
                }),
            }
        }
        "error" => {
            let wire: ErrorEventWire = fields(&kind, text)?;
            ServerEvent::Error(wire.error.into_error())
        }
        _ => ServerEvent::Ignored { kind },
    };
    Ok(event)
}

/// Server voice-activity detection: the server decides when the caller's
/// turn ends and answers it by itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerVad {
    /// Speech probability that counts as speech, 0 to 1.
    pub threshold: f32,
    /// Audio kept from before the speech started.
    pub prefix_padding_ms: u32,
    /// Silence that ends the caller's turn.
    pub silence_duration_ms: u32,
    /// Whether the caller speaking cancels the response in progress.
    pub interrupt_response: bool,
}

impl Default for ServerVad {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            interrupt_response: true,
        }
    }
}

impl ServerVad {
    fn to_json(&self) -> Value {
        json!({
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
            "create_response": true,
            "interrupt_response": self.interrupt_response,
        })
    }
}

/// What `session.update` sets. Audio is G.711 μ-law at 8 kHz both ways:
/// byte for byte what telephony carriers send and play.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    /// The system prompt.
    pub instructions: String,
    /// The voice; `None` leaves it as it is (it cannot change once the
    /// model has spoken).
    pub voice: Option<String>,
    /// Transcribe the caller's audio with this model; `None` for no
    /// transcripts of the caller.
    pub transcription_model: Option<String>,
    /// Server turn detection; `None` turns it off.
    pub turn_detection: Option<ServerVad>,
    /// Tools the model may call.
    pub tools: Vec<ToolSpec>,
}

impl SessionConfig {
    fn to_json(&self, dialect: Dialect) -> Value {
        let turn_detection = self
            .turn_detection
            .as_ref()
            .map_or(Value::Null, ServerVad::to_json);
        let transcription = self
            .transcription_model
            .as_ref()
            .map_or(Value::Null, |model| json!({ "model": model }));
        let tools: Vec<Value> = self
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "name": tool.name,
                    "description": tool.description,
                    "parameters": tool.parameters,
                })
            })
            .collect();
        let mut session = match dialect {
            Dialect::Ga => {
                let mut output = json!({ "format": { "type": "audio/pcmu" } });
                if let Some(voice) = &self.voice {
                    output["voice"] = json!(voice);
                }
                json!({
                    "type": "realtime",
                    "output_modalities": ["audio"],
                    "instructions": self.instructions,
                    "audio": {
                        "input": {
                            "format": { "type": "audio/pcmu" },
                            "transcription": transcription,
                            "turn_detection": turn_detection,
                        },
                        "output": output,
                    },
                })
            }
            Dialect::Beta => {
                let mut session = json!({
                    "modalities": ["audio", "text"],
                    "instructions": self.instructions,
                    "input_audio_format": "g711_ulaw",
                    "output_audio_format": "g711_ulaw",
                    "input_audio_transcription": transcription,
                    "turn_detection": turn_detection,
                });
                if let Some(voice) = &self.voice {
                    session["voice"] = json!(voice);
                }
                session
            }
        };
        if !tools.is_empty() {
            session["tools"] = Value::Array(tools);
            session["tool_choice"] = json!("auto");
        }
        session
    }
}

/// An event for the server.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// `session.update`.
    SessionUpdate(SessionConfig),
    /// `input_audio_buffer.append`: caller audio in the session's input
    /// format (μ-law bytes).
    AppendAudio(Vec<u8>),
    /// `conversation.item.truncate`: the caller heard only the first
    /// `audio_end_ms` of the item's audio, so the model forgets the rest.
    Truncate {
        /// The assistant item.
        item_id: String,
        /// Milliseconds of its audio that played.
        audio_end_ms: u64,
    },
    /// `conversation.item.create` with a `function_call_output` item.
    FunctionCallOutput {
        /// The call it answers.
        call_id: String,
        /// The tool's result.
        output: String,
    },
    /// `response.create`, optionally with instructions for this response
    /// only.
    CreateResponse {
        /// Overrides the session's instructions for this response.
        instructions: Option<String>,
    },
    /// `response.cancel`: stop the response in progress.
    CancelResponse,
}

impl ClientEvent {
    /// The event as a JSON text frame for a session of `dialect`.
    pub fn to_json(&self, dialect: Dialect) -> String {
        let value = match self {
            ClientEvent::SessionUpdate(config) => json!({
                "type": "session.update",
                "session": config.to_json(dialect),
            }),
            ClientEvent::AppendAudio(audio) => json!({
                "type": "input_audio_buffer.append",
                "audio": STANDARD.encode(audio),
            }),
            ClientEvent::Truncate {
                item_id,
                audio_end_ms,
            } => json!({
                "type": "conversation.item.truncate",
                "item_id": item_id,
                "content_index": 0,
                "audio_end_ms": audio_end_ms,
            }),
            ClientEvent::FunctionCallOutput { call_id, output } => json!({
                "type": "conversation.item.create",
                "item": {
                    "type": "function_call_output",
                    "call_id": call_id,
                    "output": output,
                },
            }),
            ClientEvent::CreateResponse { instructions } => match instructions {
                Some(instructions) => json!({
                    "type": "response.create",
                    "response": { "instructions": instructions },
                }),
                None => json!({ "type": "response.create" }),
            },
            ClientEvent::CancelResponse => json!({ "type": "response.cancel" }),
        };
        value.to_string()
    }
}

#[cfg(test)]
mod tests;
