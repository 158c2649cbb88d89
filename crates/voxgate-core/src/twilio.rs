//! Twilio Media Streams (bidirectional `<Connect><Stream>`), sans-IO.
//!
//! Two layers, as in tungstenite: [`parse_inbound`] and [`Outbound::to_json`]
//! are pure codecs for one text frame each, and [`TwilioStream`] holds the
//! per-connection protocol state (event order, the stream's id, counters).
//! The shell owns the WebSocket; binary frames and size limits are its job.
//!
//! Drive loop: for every text frame call [`TwilioStream::handle_text`] and act
//! on the [`StreamInput`]; on `Err`, count [`WireError::kind`] and decide
//! whether to hang up (the state is unchanged, so carrying on is safe). To
//! send, build an [`Outbound`] and send [`Outbound::to_json`], sending control
//! frames ([`Outbound::is_control`]) ahead of queued media so a barge-in
//! `clear` is not stuck behind seconds of audio.
//!
//! Parsing is lenient where Twilio-compatible carriers differ harmlessly
//! (numbers as strings or as numbers, unknown fields, `null` for absent) and
//! strict where a wrong value would mislead the call engine (ids, base64,
//! numbers that do not fit).

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use serde_json::{Map, Value};

use crate::ids::{CallSid, IdError, StreamSid};
use crate::phone;
use crate::wire::WireError;

/// Decodes standard base64 with or without padding: Twilio pads, but a
/// missing `=` loses no audio and is not worth a dropped frame.
const LENIENT_B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

// ---------------------------------------------------------------------------
// Inbound messages
// ---------------------------------------------------------------------------

/// One message from Twilio, parsed but not yet checked against the stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Inbound {
    /// `connected`: the first message on a new socket.
    Connected {
        /// `protocol`, "Call" from Twilio.
        protocol: Option<String>,
        /// `version`, "1.0.0" from Twilio.
        version: Option<String>,
    },
    /// `start`: the stream's metadata, sent once.
    Start(Start),
    /// `media`: one chunk of caller audio.
    Media(Media),
    /// `mark`: Twilio played everything queued before a mark we sent.
    Mark(Mark),
    /// `dtmf`: the caller pressed a key.
    Dtmf(Dtmf),
    /// `stop`: the stream ended (for bidirectional streams, the call ended).
    Stop(Stop),
    /// An event this codec does not know; Twilio may add events at any time.
    Unknown {
        /// The `event` value as it came.
        event: String,
    },
}

/// The `start` message: who is calling and how the audio is encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Start {
    /// The stream's id; every later message must carry the same one.
    pub stream_sid: StreamSid,
    /// The call this stream belongs to.
    pub call_sid: CallSid,
    /// The Twilio account that owns the call.
    pub account_sid: String,
    /// Tracks being streamed, e.g. `["inbound"]`. Empty if not sent.
    pub tracks: Vec<String>,
    /// `<Parameter>` values from the TwiML. Empty if not sent.
    ///
    /// Twilio always sends strings. Numbers and booleans (possible from
    /// compatible carriers' REST APIs) are kept as their JSON text; `null`,
    /// arrays and objects are rejected, as there is no faithful string form.
    pub custom_parameters: BTreeMap<String, String>,
    /// How `media` payloads are encoded.
    pub media_format: MediaFormat,
    /// `sequenceNumber`, if sent.
    pub sequence_number: Option<u64>,
}

impl Start {
    /// The caller, from the `from` custom parameter, via [`phone::party`].
    pub fn from(&self) -> Option<String> {
        self.custom_parameters
            .get("from")
            .map(|raw| phone::party(raw))
    }

    /// The called number, from the `to` custom parameter, via [`phone::party`].
    pub fn to(&self) -> Option<String> {
        self.custom_parameters
            .get("to")
            .map(|raw| phone::party(raw))
    }

    /// The agent persona the TwiML asked for, from the `persona` parameter.
    pub fn persona(&self) -> Option<&str> {
        self.custom_parameters.get("persona").map(String::as_str)
    }
}

/// `start.mediaFormat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFormat {
    /// MIME-like encoding name; `audio/x-mulaw` from Twilio.
    pub encoding: String,
    /// Samples per second; 8000 from Twilio.
    pub sample_rate: u32,
    /// Channel count; 1 from Twilio.
    pub channels: u16,
}

/// Which side of the call a media chunk or key press belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Track {
    /// The caller (`inbound` or `inbound_track`).
    Inbound,
    /// What the call plays to the caller (`outbound` or `outbound_track`).
    Outbound,
    /// Any other name, kept so the shell can log it.
    Other(String),
}

impl Track {
    /// Twilio spells tracks `inbound` in media and `inbound_track` in dtmf;
    /// both mean the same side.
    fn parse(raw: &str) -> Self {
        match raw {
            "inbound" | "inbound_track" => Track::Inbound,
            "outbound" | "outbound_track" => Track::Outbound,
            other => Track::Other(other.to_owned()),
        }
    }

    /// The track's name: `inbound`, `outbound`, or the unknown name as sent.
    pub fn as_str(&self) -> &str {
        match self {
            Track::Inbound => "inbound",
            Track::Outbound => "outbound",
            Track::Other(name) => name,
        }
    }
}

/// The `media` message: one chunk of audio, usually 20 ms of μ-law.
#[derive(Debug, Clone, PartialEq)]
pub struct Media {
    /// The stream it belongs to.
    pub stream_sid: StreamSid,
    /// `sequenceNumber`, if sent.
    pub sequence_number: Option<u64>,
    /// `media.track`.
    pub track: Track,
    /// `media.chunk`: 1 for the first chunk, counting up.
    pub chunk: u64,
    /// `media.timestamp`: milliseconds since the stream started, on Twilio's
    /// clock, which is immune to bunching on the way to us.
    pub timestamp_ms: u64,
    /// The decoded `media.payload`, in the `start` message's format.
    pub payload: Vec<u8>,
}

/// The `mark` message: the echo of a mark we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The stream it belongs to.
    pub stream_sid: StreamSid,
    /// `sequenceNumber`, if sent.
    pub sequence_number: Option<u64>,
    /// `mark.name`, as we sent it.
    pub name: String,
}

/// The `dtmf` message: a key press.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dtmf {
    /// The stream it belongs to.
    pub stream_sid: StreamSid,
    /// `sequenceNumber`, if sent.
    pub sequence_number: Option<u64>,
    /// `dtmf.digit`: `0`–`9`, `*`, `#`, kept as sent.
    pub digit: String,
    /// `dtmf.track`.
    pub track: Track,
}

/// The `stop` message: the stream is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The stream it belongs to.
    pub stream_sid: StreamSid,
    /// `sequenceNumber`, if sent.
    pub sequence_number: Option<u64>,
    /// `stop.callSid`, if sent.
    pub call_sid: Option<CallSid>,
    /// `stop.accountSid`, if sent.
    pub account_sid: Option<String>,
}

/// Parses one text frame from Twilio.
///
/// Checks the frame alone; whether it fits the stream so far is
/// [`TwilioStream`]'s job. Unknown fields are ignored and unknown events come
/// back as [`Inbound::Unknown`]. `sequenceNumber`, `media.chunk` and
/// `media.timestamp` may be numeric strings (as Twilio sends them) or JSON
/// numbers; so may `mediaFormat.sampleRate` and `channels`.
pub fn parse_inbound(text: &str) -> Result<Inbound, WireError> {
    let frame: Map<String, Value> =
        serde_json::from_str(text).map_err(|e| WireError::Json(e.to_string()))?;
    let event = req_str(&frame, "event", "event")?;
    Ok(match event {
        "connected" => Inbound::Connected {
            protocol: opt_str(&frame, "protocol", "protocol")?.map(str::to_owned),
            version: opt_str(&frame, "version", "version")?.map(str::to_owned),
        },
        "start" => Inbound::Start(parse_start(&frame)?),
        "media" => Inbound::Media(parse_media(&frame)?),
        "mark" => {
            let mark = req_obj(&frame, "mark", "mark")?;
            Inbound::Mark(Mark {
                stream_sid: stream_sid(&frame)?,
                sequence_number: sequence_number(&frame)?,
                name: req_str(mark, "name", "mark.name")?.to_owned(),
            })
        }
        "dtmf" => {
            let dtmf = req_obj(&frame, "dtmf", "dtmf")?;
            Inbound::Dtmf(Dtmf {
                stream_sid: stream_sid(&frame)?,
                sequence_number: sequence_number(&frame)?,
                digit: req_str(dtmf, "digit", "dtmf.digit")?.to_owned(),
                track: Track::parse(req_str(dtmf, "track", "dtmf.track")?),
            })
        }
        "stop" => {
            // `stop` is the end of the call: demand as little as possible so
            // a sparse one still ends the stream cleanly.
            let stop = opt_obj(&frame, "stop", "stop")?;
            let (call_sid, account_sid) = match stop {
                Some(stop) => (
                    opt_str(stop, "callSid", "stop.callSid")?
                        .map(|s| CallSid::new(s).map_err(id_err("stop.callSid")))
                        .transpose()?,
                    opt_str(stop, "accountSid", "stop.accountSid")?.map(str::to_owned),
                ),
                None => (None, None),
            };
            Inbound::Stop(Stop {
                stream_sid: stream_sid(&frame)?,
                sequence_number: sequence_number(&frame)?,
                call_sid,
                account_sid,
            })
        }
        other => Inbound::Unknown {
            event: other.to_owned(),
        },
    })
}

fn parse_start(frame: &Map<String, Value>) -> Result<Start, WireError> {
    let start = req_obj(frame, "start", "start")?;

    // Twilio sends the id both at the top level and inside `start`. Either
    // will do; if both are there they must agree, or later checks against
    // "the stream's id" would depend on which one we picked.
    let stream_sid = match (
        opt_str(frame, "streamSid", "streamSid")?,
        opt_str(start, "streamSid", "start.streamSid")?,
    ) {
        (Some(top), inner) => {
            let top = StreamSid::new(top).map_err(id_err("streamSid"))?;
            if let Some(inner) = inner {
                let inner = StreamSid::new(inner).map_err(id_err("start.streamSid"))?;
                if inner != top {
                    return Err(WireError::StreamMismatch {
                        expected: top,
                        got: inner,
                    });
                }
            }
            top
        }
        (None, Some(inner)) => StreamSid::new(inner).map_err(id_err("start.streamSid"))?,
        (None, None) => return Err(WireError::MissingField { field: "streamSid" }),
    };

    let call_sid = CallSid::new(req_str(start, "callSid", "start.callSid")?)
        .map_err(id_err("start.callSid"))?;
    let account_sid = req_str(start, "accountSid", "start.accountSid")?.to_owned();

    let tracks = match get(start, "tracks") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(WireError::WrongType {
                field: "start.tracks",
                expected: "an array of strings",
            })?,
        Some(_) => {
            return Err(WireError::WrongType {
                field: "start.tracks",
                expected: "an array of strings",
            });
        }
    };

    let mut custom_parameters = BTreeMap::new();
    if let Some(params) = opt_obj(start, "customParameters", "start.customParameters")? {
        for (name, value) in params {
            let value = match value {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(WireError::WrongType {
                        field: "start.customParameters",
                        expected: "an object of strings",
                    });
                }
            };
            custom_parameters.insert(name.clone(), value);
        }
    }

    let format = req_obj(start, "mediaFormat", "start.mediaFormat")?;
    let sample_rate = req_uint(format, "sampleRate", "start.mediaFormat.sampleRate")?;
    let channels = req_uint(format, "channels", "start.mediaFormat.channels")?;
    let media_format = MediaFormat {
        encoding: req_str(format, "encoding", "start.mediaFormat.encoding")?.to_owned(),
        sample_rate: u32::try_from(sample_rate).map_err(|_| WireError::Number {
            field: "start.mediaFormat.sampleRate",
        })?,
        channels: u16::try_from(channels).map_err(|_| WireError::Number {
            field: "start.mediaFormat.channels",
        })?,
    };

    Ok(Start {
        stream_sid,
        call_sid,
        account_sid,
        tracks,
        custom_parameters,
        media_format,
        sequence_number: sequence_number(frame)?,
    })
}

fn parse_media(frame: &Map<String, Value>) -> Result<Media, WireError> {
    let media = req_obj(frame, "media", "media")?;
    let stream_sid = stream_sid(frame)?;
    let sequence_number = sequence_number(frame)?;
    let track = Track::parse(req_str(media, "track", "media.track")?);
    let chunk = req_uint(media, "chunk", "media.chunk")?;
    let timestamp_ms = req_uint(media, "timestamp", "media.timestamp")?;
    // Decoded last: it is the only costly step, so a frame that fails the
    // cheap checks costs nothing more.
    let payload = req_str(media, "payload", "media.payload")?;
    let payload = LENIENT_B64.decode(payload).map_err(|_| WireError::Base64 {
        field: "media.payload",
    })?;
    Ok(Media {
        stream_sid,
        sequence_number,
        track,
        chunk,
        timestamp_ms,
        payload,
    })
}

// Field access. `null` counts as absent: some JSON producers write `null`
// for "not set", and treating it as a type error would reject such frames
// for no gain.

fn get<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

fn opt_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a str>, WireError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WireError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

fn req_str<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a str, WireError> {
    opt_str(obj, key, field)?.ok_or(WireError::MissingField { field })
}

fn opt_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<&'a Map<String, Value>>, WireError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(WireError::WrongType {
            field,
            expected: "an object",
        }),
    }
}

fn req_obj<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<&'a Map<String, Value>, WireError> {
    opt_obj(obj, key, field)?.ok_or(WireError::MissingField { field })
}

/// An unsigned integer sent as a numeric string (Twilio) or a JSON number
/// (compatible carriers). Strings must be plain ASCII digits: no sign, space
/// or exponent, so two spellings of one number cannot both pass.
fn opt_uint(
    obj: &Map<String, Value>,
    key: &str,
    field: &'static str,
) -> Result<Option<u64>, WireError> {
    match get(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(WireError::Number { field });
            }
            s.parse().map(Some).map_err(|_| WireError::Number { field })
        }
        Some(Value::Number(n)) => n.as_u64().map(Some).ok_or(WireError::WrongType {
            field,
            expected: "an unsigned integer",
        }),
        Some(_) => Err(WireError::WrongType {
            field,
            expected: "a number or numeric string",
        }),
    }
}

fn req_uint(obj: &Map<String, Value>, key: &str, field: &'static str) -> Result<u64, WireError> {
    opt_uint(obj, key, field)?.ok_or(WireError::MissingField { field })
}

fn sequence_number(frame: &Map<String, Value>) -> Result<Option<u64>, WireError> {
    opt_uint(frame, "sequenceNumber", "sequenceNumber")
}

fn stream_sid(frame: &Map<String, Value>) -> Result<StreamSid, WireError> {
    StreamSid::new(req_str(frame, "streamSid", "streamSid")?).map_err(id_err("streamSid"))
}

fn id_err(field: &'static str) -> impl Fn(IdError) -> WireError {
    move |reason| WireError::Id { field, reason }
}

// ---------------------------------------------------------------------------
// Outbound messages
// ---------------------------------------------------------------------------

/// One message to Twilio. Borrowing keeps the audio path free of copies until
/// the base64 text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outbound<'a> {
    /// Queue audio for playback, in the stream's format with no file header
    /// (header bytes would play as noise).
    Media {
        /// The stream to play on.
        stream_sid: &'a StreamSid,
        /// Raw μ-law bytes.
        payload: &'a [u8],
    },
    /// Ask Twilio to echo `name` once everything queued before it has played.
    Mark {
        /// The stream to mark.
        stream_sid: &'a StreamSid,
        /// The name to echo. Always give one: marks are the only playback
        /// position feedback, and an unnamed echo identifies nothing.
        name: &'a str,
    },
    /// Drop all queued audio (barge-in). Twilio then echoes pending marks.
    Clear {
        /// The stream to clear.
        stream_sid: &'a StreamSid,
    },
}

impl Outbound<'_> {
    /// The JSON text frame, with fields in the order Twilio documents.
    pub fn to_json(&self) -> String {
        // Written by hand rather than through `serde_json::json!`, whose map
        // sorts keys, and so that the base64 goes straight into the output.
        match self {
            Outbound::Media {
                stream_sid,
                payload,
            } => {
                let sid = json_string(stream_sid.as_str());
                let mut out = String::with_capacity(64 + sid.len() + payload.len().div_ceil(3) * 4);
                out.push_str(r#"{"event":"media","streamSid":"#);
                out.push_str(&sid);
                out.push_str(r#","media":{"payload":""#);
                STANDARD.encode_string(payload, &mut out);
                out.push_str(r#""}}"#);
                out
            }
            Outbound::Mark { stream_sid, name } => format!(
                r#"{{"event":"mark","streamSid":{},"mark":{{"name":{}}}}}"#,
                json_string(stream_sid.as_str()),
                json_string(name),
            ),
            Outbound::Clear { stream_sid } => format!(
                r#"{{"event":"clear","streamSid":{}}}"#,
                json_string(stream_sid.as_str()),
            ),
        }
    }

    /// Whether this is a control message (mark, clear) rather than bulk
    /// audio. The shell sends control ahead of queued media so that a `clear`
    /// takes effect at once and marks keep their place in the audio.
    pub fn is_control(&self) -> bool {
        !matches!(self, Outbound::Media { .. })
    }
}

/// `s` as a quoted, escaped JSON string. Ids are printable ASCII but may
/// still hold `"` or `\`, and mark names are arbitrary.
fn json_string(s: &str) -> String {
    Value::from(s).to_string()
}

// ---------------------------------------------------------------------------
// Stream state
// ---------------------------------------------------------------------------

/// What a frame meant for the call, after the stream's checks.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamInput {
    /// `connected` arrived; nothing to do but wait for `start`.
    Connected,
    /// The stream started: set up the call.
    Started(Start),
    /// Caller audio.
    Audio(Media),
    /// A mark we sent has played.
    MarkPlayed(Mark),
    /// The caller pressed a key.
    Dtmf(Dtmf),
    /// The stream is over: end the call and close the socket.
    Stopped(Stop),
    /// An event this codec does not know. Not fatal: the shell counts and
    /// logs it, since Twilio may add events.
    Ignored {
        /// The `event` value as it came.
        event: String,
    },
}

/// Where a stream is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Nothing has arrived yet; only here may `connected` come.
    Fresh,
    /// Something arrived, but not `start`.
    AwaitingStart,
    /// `start` arrived.
    Started {
        stream_sid: StreamSid,
        call_sid: CallSid,
    },
    /// `stop` arrived; nothing more may.
    Stopped {
        stream_sid: StreamSid,
        call_sid: CallSid,
    },
}

/// The protocol state of one Twilio media-stream connection.
///
/// Enforces the message order: `connected` (optional, and only first), then
/// `start` exactly once, then `media`, `mark` and `dtmf` in any order, then
/// `stop`, after which nothing may arrive. Every message after `start` must
/// carry the `start`'s `streamSid`. A frame that fails any check returns
/// `Err` and leaves the state as it was.
#[derive(Debug, Clone)]
pub struct TwilioStream {
    phase: Phase,
    media_frames: u64,
    media_bytes: u64,
}

impl Default for TwilioStream {
    fn default() -> Self {
        Self::new()
    }
}

impl TwilioStream {
    /// A stream on a socket that has just opened.
    pub fn new() -> Self {
        Self {
            phase: Phase::Fresh,
            media_frames: 0,
            media_bytes: 0,
        }
    }

    /// Parses and checks one text frame, updating the stream on success.
    ///
    /// A frame is parsed before its order is checked, so a malformed frame
    /// gets a parse error even after `stop`.
    pub fn handle_text(&mut self, text: &str) -> Result<StreamInput, WireError> {
        let inbound = parse_inbound(text)?;
        let out_of_order = |event: &str, problem: &'static str| WireError::OutOfOrder {
            event: event.to_owned(),
            problem,
        };

        if matches!(self.phase, Phase::Stopped { .. }) {
            let event = match &inbound {
                Inbound::Connected { .. } => "connected",
                Inbound::Start(_) => "start",
                Inbound::Media(_) => "media",
                Inbound::Mark(_) => "mark",
                Inbound::Dtmf(_) => "dtmf",
                Inbound::Stop(_) => "stop",
                Inbound::Unknown { event } => event.as_str(),
            };
            return Err(out_of_order(event, "after `stop`"));
        }

        match inbound {
            Inbound::Connected { .. } => {
                if self.phase != Phase::Fresh {
                    return Err(out_of_order("connected", "after other events"));
                }
                self.phase = Phase::AwaitingStart;
                Ok(StreamInput::Connected)
            }
            Inbound::Start(start) => {
                if matches!(self.phase, Phase::Started { .. }) {
                    return Err(out_of_order("start", "after `start` already arrived"));
                }
                self.phase = Phase::Started {
                    stream_sid: start.stream_sid.clone(),
                    call_sid: start.call_sid.clone(),
                };
                Ok(StreamInput::Started(start))
            }
            Inbound::Media(media) => {
                self.check_sid("media", &media.stream_sid)?;
                self.media_frames = self.media_frames.saturating_add(1);
                // usize → u64 is lossless on every platform Rust supports.
                self.media_bytes = self.media_bytes.saturating_add(media.payload.len() as u64);
                Ok(StreamInput::Audio(media))
            }
            Inbound::Mark(mark) => {
                self.check_sid("mark", &mark.stream_sid)?;
                Ok(StreamInput::MarkPlayed(mark))
            }
            Inbound::Dtmf(dtmf) => {
                self.check_sid("dtmf", &dtmf.stream_sid)?;
                Ok(StreamInput::Dtmf(dtmf))
            }
            Inbound::Stop(stop) => {
                self.check_sid("stop", &stop.stream_sid)?;
                // check_sid passed, so the phase is `Started`.
                if let Phase::Started {
                    stream_sid,
                    call_sid,
                } = &self.phase
                {
                    self.phase = Phase::Stopped {
                        stream_sid: stream_sid.clone(),
                        call_sid: call_sid.clone(),
                    };
                }
                Ok(StreamInput::Stopped(stop))
            }
            Inbound::Unknown { event } => {
                // Unknown events carry no schema we can check, so they do not
                // count as the stream's content; they only end `Fresh`, since
                // `connected` is documented to come first.
                if self.phase == Phase::Fresh {
                    self.phase = Phase::AwaitingStart;
                }
                Ok(StreamInput::Ignored { event })
            }
        }
    }

    /// Errors unless the stream has started with `got` as its id.
    fn check_sid(&self, event: &str, got: &StreamSid) -> Result<(), WireError> {
        match &self.phase {
            Phase::Started { stream_sid, .. } if stream_sid == got => Ok(()),
            Phase::Started { stream_sid, .. } => Err(WireError::StreamMismatch {
                expected: stream_sid.clone(),
                got: got.clone(),
            }),
            Phase::Fresh | Phase::AwaitingStart => Err(WireError::OutOfOrder {
                event: event.to_owned(),
                problem: "before `start`",
            }),
            Phase::Stopped { .. } => Err(WireError::OutOfOrder {
                event: event.to_owned(),
                problem: "after `stop`",
            }),
        }
    }

    /// The stream's id, once `start` has arrived.
    pub fn stream_sid(&self) -> Option<&StreamSid> {
        match &self.phase {
            Phase::Started { stream_sid, .. } | Phase::Stopped { stream_sid, .. } => {
                Some(stream_sid)
            }
            Phase::Fresh | Phase::AwaitingStart => None,
        }
    }

    /// The call's id, once `start` has arrived.
    pub fn call_sid(&self) -> Option<&CallSid> {
        match &self.phase {
            Phase::Started { call_sid, .. } | Phase::Stopped { call_sid, .. } => Some(call_sid),
            Phase::Fresh | Phase::AwaitingStart => None,
        }
    }

    /// Whether `stop` has arrived.
    pub fn is_stopped(&self) -> bool {
        matches!(self.phase, Phase::Stopped { .. })
    }

    /// How many `media` messages were accepted.
    pub fn media_frames(&self) -> u64 {
        self.media_frames
    }

    /// Decoded payload bytes of all accepted `media` messages.
    pub fn media_bytes(&self) -> u64 {
        self.media_bytes
    }
}
