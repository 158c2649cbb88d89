//! The JSON session protocol spoken on `/events` (monitors) and
//! `/browser-stream` (browser calls): every frame is a text frame holding an
//! object with a `type`.
//!
//! Parsing is two-step so that errors say exactly what is wrong: first the
//! frame must be a JSON object with a string `type` the endpoint knows, then
//! the fields are checked for that type.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::Disposition;
use crate::engine::{EngineEvent, Role, TurnMetrics};
use crate::ids::{CallSid, SessionId, StreamSid};

/// Machine-readable reason carried by an `error` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object.
    InvalidJson,
    /// The object has no string `type`.
    MissingType,
    /// The `type` is not one this endpoint accepts.
    UnknownType,
    /// A field is missing, of the wrong type, or has a bad value.
    InvalidField,
    /// A binary frame arrived where only JSON text is accepted.
    BinaryNotSupported,
    /// The frame was over the configured maximum size.
    TooLarge,
    /// The request names a call this server does not have.
    CallNotFound,
    /// The request needs a call that has not started yet.
    NotStarted,
    /// The request would start a call that has already started.
    AlreadyStarted,
    /// Audio that cannot be PCM16 (an odd number of bytes).
    InvalidAudio,
    /// The server is draining and takes no new calls.
    Draining,
    /// The request needs the agent, and this server has none (yet).
    AgentUnavailable,
    /// The agent could not answer (a provider failed).
    AgentFailed,
    /// The connection's credential does not allow the request (a browser
    /// call token may not reconfigure its call).
    Forbidden,
    /// The request would go over a limit (subscriptions per connection).
    LimitReached,
}

impl ErrorCode {
    /// The stable name, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingType => "missing_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::BinaryNotSupported => "binary_not_supported",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::CallNotFound => "call_not_found",
            ErrorCode::NotStarted => "not_started",
            ErrorCode::AlreadyStarted => "already_started",
            ErrorCode::InvalidAudio => "invalid_audio",
            ErrorCode::Draining => "draining",
            ErrorCode::AgentUnavailable => "agent_unavailable",
            ErrorCode::AgentFailed => "agent_failed",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::LimitReached => "limit_reached",
        }
    }
}

/// A client frame that was refused, with a message for the client's developer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct ProtocolError {
    /// What kind of problem it is.
    pub code: ErrorCode,
    /// What exactly was wrong.
    pub message: String,
}

impl ProtocolError {
    /// Builds an error from a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The `error` message to send back for this problem.
    pub fn to_message(&self) -> ServerMessage {
        ServerMessage::Error {
            code: self.code,
            message: self.message.clone(),
        }
    }
}

/// Which calls a monitor wants events for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum CallFilter {
    /// Every call (`"*"`).
    All,
    /// One call.
    Call(CallSid),
}

impl CallFilter {
    /// Whether events of `call` pass this filter.
    pub fn matches(&self, call: &CallSid) -> bool {
        match self {
            CallFilter::All => true,
            CallFilter::Call(id) => id == call,
        }
    }
}

impl TryFrom<String> for CallFilter {
    type Error = crate::ids::IdError;
    fn try_from(raw: String) -> Result<Self, Self::Error> {
        if raw == "*" {
            Ok(CallFilter::All)
        } else {
            CallSid::new(raw).map(CallFilter::Call)
        }
    }
}

impl From<CallFilter> for String {
    fn from(filter: CallFilter) -> String {
        match filter {
            CallFilter::All => "*".to_owned(),
            CallFilter::Call(id) => id.into(),
        }
    }
}

/// Job configuration for a call: who the agent is and what it says first.
/// Fields left out keep their current value when merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobConfig {
    /// Persona name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persona: Option<String>,
    /// System instructions for the agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// Voice id for speech synthesis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// What the agent says when the call is answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub greeting: Option<String>,
}

impl JobConfig {
    /// Whether no field is set.
    pub fn is_empty(&self) -> bool {
        *self == JobConfig::default()
    }

    /// Every field over the limits a stored persona has (a job's fields
    /// override the persona's, so they are bounded alike), one message each.
    pub fn problems(&self) -> Vec<String> {
        use crate::persona::{
            MAX_INSTRUCTIONS_CHARS, MAX_NAME_LEN, MAX_PHRASE_CHARS, MAX_VOICE_LEN,
        };
        let mut problems = Vec::new();
        let too_long = |field: Option<&String>, limit: usize, count: fn(&str) -> usize| {
            field.is_some_and(|value| count(value) > limit)
        };
        let chars = |s: &str| s.chars().count();
        let bytes = |s: &str| s.len();
        if too_long(self.persona.as_ref(), MAX_NAME_LEN, bytes) {
            problems.push(format!("`persona` must be at most {MAX_NAME_LEN} bytes"));
        }
        if too_long(self.instructions.as_ref(), MAX_INSTRUCTIONS_CHARS, chars) {
            problems.push(format!(
                "`instructions` must be at most {MAX_INSTRUCTIONS_CHARS} characters"
            ));
        }
        if too_long(self.greeting.as_ref(), MAX_PHRASE_CHARS, chars) {
            problems.push(format!(
                "`greeting` must be at most {MAX_PHRASE_CHARS} characters"
            ));
        }
        if too_long(self.voice.as_ref(), MAX_VOICE_LEN, bytes) {
            problems.push(format!("`voice` must be at most {MAX_VOICE_LEN} bytes"));
        }
        problems
    }

    /// Overlays the fields `update` sets onto `self`.
    pub fn merge(&mut self, update: JobConfig) {
        let JobConfig {
            persona,
            instructions,
            voice,
            greeting,
        } = update;
        for (slot, value) in [
            (&mut self.persona, persona),
            (&mut self.instructions, instructions),
            (&mut self.voice, voice),
            (&mut self.greeting, greeting),
        ] {
            if value.is_some() {
                *slot = value;
            }
        }
    }
}

/// A request from a monitor on `/events`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum MonitorRequest {
    /// Application-level heartbeat; answered with `pong`.
    Ping,
    /// Names the client's session; a known id within the grace period resumes it.
    SessionInfo {
        /// The session id the client had before, if any.
        session_id: Option<SessionId>,
    },
    /// Start receiving events for one call or all calls.
    Subscribe {
        /// Which calls.
        call_id: CallFilter,
    },
    /// Stop receiving events for a filter given earlier.
    Unsubscribe {
        /// Which calls.
        call_id: CallFilter,
    },
    /// Job configuration: for a live call, or held for the next call.
    Config {
        /// The live call to apply it to; none means hold it.
        call_id: Option<CallSid>,
        /// The settings.
        config: JobConfig,
    },
    /// End a live call.
    Hangup {
        /// The call to end.
        call_id: CallSid,
    },
    /// A text turn with the agent: same persona, same model, no audio.
    Chat {
        /// What the user writes.
        text: String,
        /// The persona to answer as; else the session's held configuration's,
        /// else the default.
        persona: Option<String>,
        /// Echoed in the `chat.response`, to match answers to questions.
        id: Option<String>,
    },
}

impl MonitorRequest {
    /// Parses one text frame from a monitor.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let (kind, object) = tagged_object(text)?;
        match kind.as_str() {
            "ping" => Ok(MonitorRequest::Ping),
            "session_info" => {
                #[derive(Deserialize)]
                struct Fields {
                    #[serde(default)]
                    session_id: Option<SessionId>,
                }
                let f: Fields = fields(&kind, object)?;
                Ok(MonitorRequest::SessionInfo {
                    session_id: f.session_id,
                })
            }
            "subscribe" | "unsubscribe" => {
                #[derive(Deserialize)]
                struct Fields {
                    call_id: CallFilter,
                }
                let f: Fields = fields(&kind, object)?;
                Ok(if kind == "subscribe" {
                    MonitorRequest::Subscribe { call_id: f.call_id }
                } else {
                    MonitorRequest::Unsubscribe { call_id: f.call_id }
                })
            }
            "config" => {
                #[derive(Deserialize)]
                struct Fields {
                    #[serde(default)]
                    call_id: Option<CallSid>,
                    #[serde(flatten)]
                    config: JobConfig,
                }
                let f: Fields = fields(&kind, object)?;
                Ok(MonitorRequest::Config {
                    call_id: f.call_id,
                    config: within_limits(&kind, non_empty(f.config)?)?,
                })
            }
            "hangup" => {
                #[derive(Deserialize)]
                struct Fields {
                    call_id: CallSid,
                }
                let f: Fields = fields(&kind, object)?;
                Ok(MonitorRequest::Hangup { call_id: f.call_id })
            }
            "chat" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Fields {
                    text: String,
                    #[serde(default)]
                    persona: Option<String>,
                    #[serde(default)]
                    id: Option<String>,
                }
                let f: Fields = fields(&kind, object)?;
                if f.text.trim().is_empty() {
                    return Err(ProtocolError::new(
                        ErrorCode::InvalidField,
                        "`chat`: `text` is empty",
                    ));
                }
                Ok(MonitorRequest::Chat {
                    text: f.text,
                    persona: f.persona,
                    id: f.id,
                })
            }
            _ => Err(unknown_type(
                &kind,
                "ping, session_info, subscribe, unsubscribe, config, hangup, chat",
            )),
        }
    }
}

/// A control message from a browser on `/browser-stream`. Audio travels
/// separately, as binary PCM16 frames.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BrowserRequest {
    /// Application-level heartbeat; answered with `pong`.
    Ping,
    /// Starts the call, optionally with job configuration.
    Start {
        /// The settings for this call.
        config: JobConfig,
    },
    /// Updates the live call's job configuration.
    Config {
        /// The settings.
        config: JobConfig,
    },
    /// Ends the call.
    Hangup,
    /// Everything sent before the mark `name` has played.
    Mark {
        /// The mark's name, as the server sent it.
        name: String,
    },
}

/// Fields of a browser's `mark` echo.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MarkFields {
    name: String,
}

impl BrowserRequest {
    /// Parses one text frame from a browser.
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        let (kind, object) = tagged_object(text)?;
        match kind.as_str() {
            "ping" => Ok(BrowserRequest::Ping),
            "hangup" => Ok(BrowserRequest::Hangup),
            "start" => Ok(BrowserRequest::Start {
                config: within_limits(&kind, fields(&kind, object)?)?,
            }),
            "config" => Ok(BrowserRequest::Config {
                config: within_limits(&kind, non_empty(fields(&kind, object)?)?)?,
            }),
            "mark" => {
                let MarkFields { name } = fields(&kind, object)?;
                Ok(BrowserRequest::Mark { name })
            }
            _ => Err(unknown_type(&kind, "ping, start, config, hangup, mark")),
        }
    }
}

fn tagged_object(text: &str) -> Result<(String, Value), ProtocolError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidJson, format!("not JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(ProtocolError::new(
            ErrorCode::InvalidJson,
            "expected a JSON object with a `type` field",
        ));
    };
    match object.remove("type") {
        Some(Value::String(kind)) => Ok((kind, Value::Object(object))),
        Some(_) => Err(ProtocolError::new(
            ErrorCode::MissingType,
            "`type` must be a string",
        )),
        None => Err(ProtocolError::new(
            ErrorCode::MissingType,
            "the object has no `type` field",
        )),
    }
}

fn fields<T: DeserializeOwned>(kind: &str, object: Value) -> Result<T, ProtocolError> {
    serde_json::from_value(object)
        .map_err(|e| ProtocolError::new(ErrorCode::InvalidField, format!("`{kind}`: {e}")))
}

fn non_empty(config: JobConfig) -> Result<JobConfig, ProtocolError> {
    if config.is_empty() {
        return Err(ProtocolError::new(
            ErrorCode::InvalidField,
            "`config` sets none of persona, instructions, voice, greeting",
        ));
    }
    Ok(config)
}

/// Refuses job configuration over the persona limits here, while parsing,
/// so that no endpoint can apply it.
fn within_limits(kind: &str, config: JobConfig) -> Result<JobConfig, ProtocolError> {
    let problems = config.problems();
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(ProtocolError::new(
            ErrorCode::InvalidField,
            format!("`{kind}`: {}", problems.join("; ")),
        ))
    }
}

fn unknown_type(kind: &str, accepted: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::UnknownType,
        format!("unknown type {kind:?}; this endpoint accepts {accepted}"),
    )
}

/// Where a call came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Carrier {
    /// Twilio Media Streams on `/stream`.
    Twilio,
    /// A browser on `/browser-stream`.
    Browser,
}

impl Carrier {
    /// The stable name, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Carrier::Twilio => "twilio",
            Carrier::Browser => "browser",
        }
    }
}

/// Something that happened to a call, published to every interested monitor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum CallEvent {
    /// A call was answered and is now tracked.
    #[serde(rename = "call.started")]
    Started {
        /// The call.
        call_id: CallSid,
        /// Where it came from.
        carrier: Carrier,
        /// The carrier's media stream id, when it has one.
        #[serde(skip_serializing_if = "Option::is_none")]
        stream_sid: Option<StreamSid>,
        /// Caller, E.164 when it is a phone number.
        #[serde(skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// Called party, E.164 when it is a phone number.
        #[serde(skip_serializing_if = "Option::is_none")]
        to: Option<String>,
        /// The job configuration the call starts with.
        config: JobConfig,
        /// Unix time in milliseconds.
        started_at_ms: i64,
    },
    /// A call's status changed; `ended` is always published before the
    /// call's session is cleaned up.
    #[serde(rename = "call.status_changed")]
    StatusChanged {
        /// The call.
        call_id: CallSid,
        /// The new status.
        status: CallStatus,
        /// How it ended, for `ended`.
        #[serde(skip_serializing_if = "Option::is_none")]
        disposition: Option<Disposition>,
        /// Why, in words.
        reason: String,
    },
    /// A call's job configuration changed while it was live.
    #[serde(rename = "call.config_updated")]
    ConfigUpdated {
        /// The call.
        call_id: CallSid,
        /// The whole configuration now in force.
        config: JobConfig,
    },
    /// Words said on the call: the caller's as transcribed, the agent's as
    /// spoken.
    #[serde(rename = "transcript")]
    Transcript {
        /// The call.
        call_id: CallSid,
        /// `user` or `assistant`.
        role: Role,
        /// The words.
        text: String,
        /// Whether the text is final (partials may be revised).
        #[serde(rename = "final")]
        is_final: bool,
    },
    /// The caller interrupted the agent.
    #[serde(rename = "agent.interrupted")]
    AgentInterrupted {
        /// The call.
        call_id: CallSid,
        /// The interrupted turn.
        turn: u64,
        /// What the caller actually heard of the reply (from played marks).
        heard: String,
        /// What the agent meant to say so far.
        intended: String,
    },
    /// Latency of one turn, each stage in milliseconds after the caller
    /// stopped speaking.
    #[serde(rename = "turn.metrics")]
    TurnMetrics {
        /// The call.
        call_id: CallSid,
        /// The stages.
        #[serde(flatten)]
        metrics: TurnMetrics,
    },
}

impl CallEvent {
    /// The call this event is about.
    pub fn call_id(&self) -> &CallSid {
        match self {
            CallEvent::Started { call_id, .. }
            | CallEvent::StatusChanged { call_id, .. }
            | CallEvent::ConfigUpdated { call_id, .. }
            | CallEvent::Transcript { call_id, .. }
            | CallEvent::AgentInterrupted { call_id, .. }
            | CallEvent::TurnMetrics { call_id, .. } => call_id,
        }
    }

    /// The monitor event for something the conversation engine reported.
    pub fn from_engine(call_id: CallSid, event: EngineEvent) -> CallEvent {
        match event {
            EngineEvent::Transcript {
                role,
                text,
                is_final,
                ..
            } => CallEvent::Transcript {
                call_id,
                role,
                text,
                is_final,
            },
            EngineEvent::AgentInterrupted {
                turn,
                heard,
                intended,
            } => CallEvent::AgentInterrupted {
                call_id,
                turn,
                heard,
                intended,
            },
            EngineEvent::TurnMetrics(metrics) => CallEvent::TurnMetrics { call_id, metrics },
        }
    }

    /// The event as a JSON text frame.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

/// A call's lifecycle status as published in `call.status_changed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum CallStatus {
    /// The call is over.
    Ended,
}

/// A message from the server to one client that is not a call event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type")]
#[non_exhaustive]
pub enum ServerMessage {
    /// First message on every connection: who the client is and the heartbeat.
    #[serde(rename = "connection_established")]
    ConnectionEstablished {
        /// This connection's session id (send it in `session_info` to resume).
        session_id: SessionId,
        /// The server pings this often.
        ping_interval_ms: u64,
        /// The server closes a connection silent for this long.
        idle_timeout_ms: u64,
        /// Largest frame the server accepts.
        max_message_bytes: usize,
    },
    /// Answer to `session_info`.
    #[serde(rename = "session_confirmed")]
    SessionConfirmed {
        /// The session id now in force.
        session_id: SessionId,
        /// Whether an earlier session's state was restored.
        resumed: bool,
        /// Subscriptions in force after the answer.
        subscriptions: Vec<CallFilter>,
        /// Configuration held for the next call, if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        held_config: Option<JobConfig>,
    },
    /// Answer to a JSON `ping`.
    #[serde(rename = "pong")]
    Pong,
    /// Answer to `subscribe`.
    #[serde(rename = "subscribed")]
    Subscribed {
        /// The filter now in force.
        call_id: CallFilter,
    },
    /// Answer to `unsubscribe`.
    #[serde(rename = "unsubscribed")]
    Unsubscribed {
        /// The filter removed.
        call_id: CallFilter,
    },
    /// A `config` was handed to a live call.
    #[serde(rename = "config.applied")]
    ConfigApplied {
        /// The call it went to.
        call_id: CallSid,
    },
    /// A `config` without a call id is held for the next call this session sees start.
    #[serde(rename = "config.held")]
    ConfigHeld {
        /// Everything held so far.
        config: JobConfig,
    },
    /// A request was refused; the connection stays open.
    #[serde(rename = "error")]
    Error {
        /// What kind of problem.
        code: ErrorCode,
        /// What exactly.
        message: String,
    },
    /// This client was too slow and lost events.
    #[serde(rename = "lagged")]
    Lagged {
        /// How many events were dropped for it.
        missed: u64,
    },
    /// Browser calls: echo `name` back in a `mark` once the audio sent
    /// before this message has played.
    #[serde(rename = "mark")]
    Mark {
        /// The mark's name.
        name: String,
    },
    /// Browser calls: drop all queued agent audio now (barge-in).
    #[serde(rename = "clear")]
    Clear,
    /// The agent's answer to a `chat`.
    #[serde(rename = "chat.response")]
    ChatResponse {
        /// The `chat`'s `id`, if it had one.
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The persona that answered.
        persona: String,
        /// The answer.
        text: String,
    },
}

impl ServerMessage {
    /// The message as a JSON text frame.
    pub fn to_json(&self) -> String {
        to_json(self)
    }
}

fn to_json(value: &impl Serialize) -> String {
    // Serializing these types cannot fail: every map key is a string and
    // every value is plain data.
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"serialize: {e}"}}"#)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(s: &str) -> CallSid {
        CallSid::new(s).expect("valid id")
    }

    #[test]
    fn parses_every_monitor_request() {
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"ping"}"#),
            Ok(MonitorRequest::Ping)
        );
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"session_info","session_id":"s1"}"#),
            Ok(MonitorRequest::SessionInfo {
                session_id: Some(SessionId::new("s1").expect("valid id"))
            })
        );
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"subscribe","call_id":"*"}"#),
            Ok(MonitorRequest::Subscribe {
                call_id: CallFilter::All
            })
        );
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"unsubscribe","call_id":"CA1"}"#),
            Ok(MonitorRequest::Unsubscribe {
                call_id: CallFilter::Call(sid("CA1"))
            })
        );
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"config","persona":"sales","greeting":"Hi"}"#),
            Ok(MonitorRequest::Config {
                call_id: None,
                config: JobConfig {
                    persona: Some("sales".into()),
                    greeting: Some("Hi".into()),
                    ..JobConfig::default()
                }
            })
        );
        assert_eq!(
            MonitorRequest::parse(r#"{"type":"hangup","call_id":"CA9"}"#),
            Ok(MonitorRequest::Hangup {
                call_id: sid("CA9")
            })
        );
    }

    #[test]
    fn each_malformed_frame_gets_its_own_code() {
        let code = |text: &str| MonitorRequest::parse(text).map_err(|e| e.code);
        assert_eq!(code("{not json"), Err(ErrorCode::InvalidJson));
        assert_eq!(code("[1,2]"), Err(ErrorCode::InvalidJson));
        assert_eq!(code(r#"{"call_id":"*"}"#), Err(ErrorCode::MissingType));
        assert_eq!(code(r#"{"type":7}"#), Err(ErrorCode::MissingType));
        assert_eq!(code(r#"{"type":"dance"}"#), Err(ErrorCode::UnknownType));
        assert_eq!(
            code(r#"{"type":"subscribe"}"#),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            code(r#"{"type":"subscribe","call_id":5}"#),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            code(r#"{"type":"hangup","call_id":""}"#),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(
            code(r#"{"type":"config","persona":3}"#),
            Err(ErrorCode::InvalidField)
        );
        assert_eq!(code(r#"{"type":"config"}"#), Err(ErrorCode::InvalidField));
    }

    #[test]
    fn field_errors_name_the_field() {
        let err =
            MonitorRequest::parse(r#"{"type":"config","voice":false}"#).expect_err("wrong type");
        assert!(err.message.contains("`config`"), "{}", err.message);
        let err = MonitorRequest::parse(r#"{"type":"subscribe"}"#).expect_err("missing");
        assert!(err.message.contains("call_id"), "{}", err.message);
    }

    #[test]
    fn browser_requests_are_their_own_set() {
        assert_eq!(
            BrowserRequest::parse(r#"{"type":"start","persona":"p"}"#),
            Ok(BrowserRequest::Start {
                config: JobConfig {
                    persona: Some("p".into()),
                    ..JobConfig::default()
                }
            })
        );
        assert_eq!(
            BrowserRequest::parse(r#"{"type":"hangup"}"#),
            Ok(BrowserRequest::Hangup)
        );
        assert_eq!(
            BrowserRequest::parse(r#"{"type":"subscribe","call_id":"*"}"#).map_err(|e| e.code),
            Err(ErrorCode::UnknownType)
        );
    }

    #[test]
    fn job_configuration_over_the_persona_limits_is_refused() {
        use crate::persona::{MAX_INSTRUCTIONS_CHARS, MAX_PHRASE_CHARS};
        let long = "a".repeat(MAX_INSTRUCTIONS_CHARS + 1);
        let at_limit = "é".repeat(MAX_INSTRUCTIONS_CHARS);
        let frame = |kind: &str, field: &str, value: &str| {
            serde_json::json!({"type": kind, field: value}).to_string()
        };
        for text in [
            frame("config", "instructions", &long),
            frame("config", "greeting", &"a".repeat(MAX_PHRASE_CHARS + 1)),
            frame("config", "voice", &"v".repeat(129)),
            frame("config", "persona", &"p".repeat(65)),
        ] {
            let refused = MonitorRequest::parse(&text).expect_err("over the limit");
            assert_eq!(refused.code, ErrorCode::InvalidField, "{refused}");
            assert!(refused.message.starts_with("`config`: `"), "{refused}");
            let refused = BrowserRequest::parse(&text).expect_err("over the limit");
            assert_eq!(refused.code, ErrorCode::InvalidField, "{refused}");
        }
        let refused =
            BrowserRequest::parse(&frame("start", "instructions", &long)).expect_err("too long");
        assert!(refused.message.contains("instructions"), "{refused}");
        assert!(MonitorRequest::parse(&frame("config", "instructions", &at_limit)).is_ok());
        assert!(BrowserRequest::parse(&frame("start", "instructions", &at_limit)).is_ok());
    }

    #[test]
    fn merge_overlays_only_set_fields() {
        let mut config = JobConfig {
            persona: Some("a".into()),
            voice: Some("v".into()),
            ..JobConfig::default()
        };
        config.merge(JobConfig {
            persona: Some("b".into()),
            greeting: Some("g".into()),
            ..JobConfig::default()
        });
        assert_eq!(config.persona.as_deref(), Some("b"));
        assert_eq!(config.voice.as_deref(), Some("v"));
        assert_eq!(config.greeting.as_deref(), Some("g"));
    }

    #[test]
    fn messages_serialize_with_their_type() {
        let ended = CallEvent::StatusChanged {
            call_id: sid("CA1"),
            status: CallStatus::Ended,
            disposition: Some(Disposition::Dropped),
            reason: "carrier socket closed without stop".into(),
        };
        let v: Value = serde_json::from_str(&ended.to_json()).expect("json");
        assert_eq!(v["type"], "call.status_changed");
        assert_eq!(v["status"], "ended");
        assert_eq!(v["disposition"], "dropped");
        let lagged: Value =
            serde_json::from_str(&ServerMessage::Lagged { missed: 3 }.to_json()).expect("json");
        assert_eq!(lagged, serde_json::json!({"type":"lagged","missed":3}));
        let pong: Value = serde_json::from_str(&ServerMessage::Pong.to_json()).expect("json");
        assert_eq!(pong, serde_json::json!({"type":"pong"}));
    }
}
