//! What carrier and browser call sockets share: commands for the call, and
//! how the way a connection ends becomes the way its call ends.

use voxgate_core::audio::PaceError;
use voxgate_core::call::Disposition;

use axum::extract::ws::Message;

use super::{Connection, ReadEnd, WsSocket, close_code};
use crate::agent::AgentAction;
use crate::call::{CallInput, LiveCall};
use crate::metrics::PLAYBACK_DROPPED;

/// How a call connection ends.
pub(super) enum CallEnd {
    /// The server closes the socket with `code`, ending the call so.
    Close {
        /// WebSocket close code.
        code: u16,
        /// Close reason sent to the peer.
        reason: &'static str,
        /// Metrics label for the close.
        metric: &'static str,
        /// The call's disposition.
        disposition: Disposition,
        /// The call's end reason, for its record.
        detail: String,
    },
    /// The socket ended by itself.
    Read(ReadEnd),
}

impl CallEnd {
    /// The server is stopping.
    pub(super) fn shutdown() -> Self {
        CallEnd::Close {
            code: close_code::GOING_AWAY,
            reason: "server shutting down",
            metric: "shutdown",
            disposition: Disposition::Shutdown,
            detail: "server shut down before the call ended".into(),
        }
    }

    /// A monitor hung the call up.
    pub(super) fn hangup() -> Self {
        CallEnd::Close {
            code: close_code::NORMAL,
            reason: "hangup",
            metric: "hangup",
            disposition: Disposition::Hangup,
            detail: "hung up by a monitor".into(),
        }
    }
}

impl CallEnd {
    /// The peer did not start a call in time: its slot goes back.
    pub(super) fn no_start() -> Self {
        CallEnd::Close {
            code: close_code::POLICY,
            reason: "no start in time",
            metric: "start_timeout",
            disposition: Disposition::Timeout,
            detail: "no start before the start timeout".into(),
        }
    }

    /// The peer sent caller audio faster than real time.
    pub(super) fn too_fast(error: &PaceError) -> Self {
        CallEnd::Close {
            code: close_code::POLICY,
            reason: "audio faster than real time",
            metric: "too_fast",
            disposition: Disposition::Error,
            detail: error.to_string(),
        }
    }

    /// An admin reset every call.
    pub(super) fn admin_reset() -> Self {
        CallEnd::Close {
            code: close_code::NORMAL,
            reason: "admin reset",
            metric: "admin_reset",
            disposition: Disposition::Hangup,
            detail: "admin reset".into(),
        }
    }
}

/// What a socket that ended on its own means for the call on it.
fn read_end_disposition(end: ReadEnd) -> (Disposition, &'static str) {
    match end {
        ReadEnd::PeerClosed => (Disposition::Dropped, "peer closed the socket without stop"),
        ReadEnd::PeerGone => (Disposition::Dropped, "socket dropped without stop"),
        ReadEnd::TooLarge => (
            Disposition::Error,
            "peer sent a message over the size limit",
        ),
        ReadEnd::Failed => (Disposition::Error, "websocket protocol error"),
        ReadEnd::IdleTimeout => (
            Disposition::Timeout,
            "nothing received for the idle timeout",
        ),
        ReadEnd::Stalled => (Disposition::Dropped, "peer stopped reading"),
    }
}

/// Ends the call, if one started, as `end` implies, then closes the
/// connection. A peer that owns the call's events (a browser) is sent the
/// final `call.status_changed` before the close.
pub(super) async fn end_call<S: WsSocket>(
    conn: Connection<S>,
    call: Option<LiveCall>,
    end: CallEnd,
    tell_peer: bool,
) {
    let ended = match (&end, call) {
        (_, None) => None,
        (
            CallEnd::Close {
                disposition,
                detail,
                ..
            },
            Some(call),
        ) => Some(call.end(*disposition, detail.clone())),
        (CallEnd::Read(read_end), Some(call)) => {
            let (disposition, detail) = read_end_disposition(*read_end);
            Some(call.end(disposition, detail))
        }
    };
    if let Some(ended) = ended.filter(|_| tell_peer) {
        let _ = conn.send_text(ended.to_json());
    }
    match end {
        CallEnd::Close {
            code,
            reason,
            metric,
            ..
        } => conn.close(code, reason, metric).await,
        CallEnd::Read(read_end) => conn.finish(read_end).await,
    }
}

/// How a carrier's wire carries the agent's audio, marks and `clear`.
pub(super) trait PlaybackWire {
    /// A chunk of agent audio at the carrier's rate.
    fn audio(&self, samples: &[i16]) -> Message;
    /// The mark sent after a chunk.
    fn mark(&self, name: &str) -> Message;
    /// Drop the audio queued at the peer.
    fn clear(&self) -> Message;
}

/// Sends the peer what the agent asks, in order behind earlier audio
/// (`clear` ahead of it); the call's end when the agent hangs up.
pub(super) fn carry_out<S: WsSocket>(
    conn: &Connection<S>,
    wire: &impl PlaybackWire,
    action: AgentAction,
) -> Option<CallEnd> {
    match action {
        AgentAction::Play { samples, mark } => {
            for message in [wire.audio(&samples), wire.mark(&mark)] {
                if conn.out.playback(message).is_err() {
                    metrics::counter!(PLAYBACK_DROPPED).increment(1);
                }
            }
            None
        }
        AgentAction::Clear => conn
            .out
            .clear_playback(wire.clear())
            .err()
            .map(|_| CallEnd::Read(ReadEnd::Stalled)),
        AgentAction::HangUp {
            disposition,
            reason,
        } => Some(CallEnd::agent_hangup(disposition, reason)),
    }
}

impl CallEnd {
    /// The agent ended the call (silence after reprompts, provider failure).
    pub(super) fn agent_hangup(disposition: Disposition, detail: String) -> Self {
        CallEnd::Close {
            code: close_code::NORMAL,
            reason: "agent hung up",
            metric: "agent_hangup",
            disposition,
            detail,
        }
    }
}

/// The next input for the call, or never when there is no call yet.
pub(super) async fn next_input(call: &mut Option<LiveCall>) -> Option<CallInput> {
    match call {
        Some(call) => call.next_input().await,
        None => std::future::pending().await,
    }
}
