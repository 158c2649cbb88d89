//! The stored summary of one call.

use serde::Serialize;
use voxgate_core::call::Disposition;
use voxgate_core::ids::{CallSid, StreamSid};

/// One call as stored: written when it starts and again when it ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallRecord {
    /// The call's id; the primary key.
    pub call_sid: CallSid,
    /// The carrier media stream, once known.
    pub stream_sid: Option<StreamSid>,
    /// Caller number as the carrier gave it.
    pub from: Option<String>,
    /// Called number as the carrier gave it.
    pub to: Option<String>,
    /// The persona that answered.
    pub persona: Option<String>,
    /// When the call started, in Unix epoch milliseconds.
    pub started_at_ms: i64,
    /// When the call ended, in Unix epoch milliseconds.
    pub ended_at_ms: Option<i64>,
    /// How long the call lasted, in milliseconds.
    pub duration_ms: Option<i64>,
    /// How the call ended.
    pub disposition: Option<Disposition>,
    /// Free-text detail on why the call ended.
    pub end_reason: Option<String>,
    /// Where the call's recording (a stereo WAV) was written, once it was.
    /// Not serialized: a server path means nothing to API clients, which get
    /// a URL instead.
    #[serde(skip_serializing)]
    pub recording_path: Option<String>,
}

impl CallRecord {
    /// A record for a call that has just started: everything else unknown.
    pub fn started(call_sid: CallSid, started_at_ms: i64) -> Self {
        CallRecord {
            call_sid,
            stream_sid: None,
            from: None,
            to: None,
            persona: None,
            started_at_ms,
            ended_at_ms: None,
            duration_ms: None,
            disposition: None,
            end_reason: None,
            recording_path: None,
        }
    }
}
