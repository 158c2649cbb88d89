//! `/stream`: Twilio Media Streams. The codec is sans-IO (`voxgate_core::twilio`);
//! this task feeds it frames, turns `start` into a live call, obeys call
//! commands, and ends the call with the disposition the socket's end implies.

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::sleep_until;
use tracing::Instrument;
use voxgate_core::call::Disposition;
use voxgate_core::events::{Carrier, JobConfig};
use voxgate_core::twilio::{StreamInput, TwilioStream};

use super::{Connection, Frame, ReadEnd, WsSocket, close_code};
use crate::app::AppState;
use crate::call::{CallStart, LiveCall};
use crate::metrics::{Endpoint, UNKNOWN_EVENTS};
use crate::registry::CallCommand;

/// How the connection ends, decided inside the loop, acted on after it.
enum Outcome {
    /// Close with a code; end the call (if any) with a disposition.
    Close {
        code: u16,
        reason: &'static str,
        metric: &'static str,
        disposition: Disposition,
        detail: String,
    },
    /// The read side ended by itself.
    Read(ReadEnd),
}

/// Serves one carrier media stream until it stops, drops, or the server stops.
pub async fn run<S: WsSocket>(socket: S, state: AppState, slot: OwnedSemaphorePermit) {
    let span = tracing::info_span!("call", carrier = "twilio", call_id = tracing::field::Empty);
    serve(socket, state, slot).instrument(span).await;
}

async fn serve<S: WsSocket>(socket: S, state: AppState, slot: OwnedSemaphorePermit) {
    let mut conn = Connection::open(socket, &state, Endpoint::Stream);
    let token = state.lifecycle.root.child_token();
    let mut codec = TwilioStream::new();
    let mut slot = Some(slot);
    let mut call: Option<LiveCall> = None;

    let outcome = loop {
        let deadline = conn.deadline();
        tokio::select! {
            biased;
            () = token.cancelled() => break Outcome::Close {
                code: close_code::GOING_AWAY,
                reason: "server shutting down",
                metric: "shutdown",
                disposition: Disposition::Shutdown,
                detail: "server shut down before the call ended".into(),
            },
            Some(command) = next_command(&mut call) => match command {
                CallCommand::Hangup => break Outcome::Close {
                    code: close_code::NORMAL,
                    reason: "hangup",
                    metric: "hangup",
                    disposition: Disposition::Hangup,
                    detail: "hung up by a monitor".into(),
                },
                CallCommand::Config(update) => {
                    if let Some(call) = call.as_mut() {
                        call.apply_config(update);
                    }
                }
            },
            item = futures_util::StreamExt::next(&mut conn.stream) => match conn.classify(item) {
                Frame::Text(text) => match codec.handle_text(&text) {
                    Ok(StreamInput::Started(start)) => {
                        let Some(permit) = slot.take() else { continue };
                        let begin = CallStart {
                            call_id: start.call_sid.clone(),
                            carrier: Carrier::Twilio,
                            stream_sid: Some(start.stream_sid.clone()),
                            from: start.from(),
                            to: start.to(),
                            config: JobConfig {
                                persona: start.persona().map(str::to_owned),
                                ..JobConfig::default()
                            },
                        };
                        tracing::Span::current().record("call_id", start.call_sid.as_str());
                        match LiveCall::begin(&state, permit, begin, &token) {
                            Ok(live) => call = Some(live),
                            Err(duplicate) => {
                                conn.bad_input("duplicate_call");
                                break Outcome::Close {
                                    code: close_code::POLICY,
                                    reason: "call already live",
                                    metric: "duplicate_call",
                                    disposition: Disposition::Error,
                                    detail: duplicate.to_string(),
                                };
                            }
                        }
                    }
                    Ok(StreamInput::Stopped(_)) => break Outcome::Close {
                        code: close_code::NORMAL,
                        reason: "stream stopped",
                        metric: "stop",
                        disposition: Disposition::Completed,
                        detail: "carrier sent stop".into(),
                    },
                    Ok(StreamInput::Ignored { event }) => {
                        metrics::counter!(UNKNOWN_EVENTS, "carrier" => "twilio").increment(1);
                        tracing::warn!(event, "ignoring unknown carrier event");
                    }
                    // Audio, marks and digits reach the conversation engine
                    // once it exists; the codec counts frames and bytes.
                    Ok(_) => {}
                    Err(e) => {
                        conn.bad_input(e.kind());
                        tracing::warn!(error = %e, "bad frame from carrier");
                        let (code, reason) = if e.breaks_stream_rules() {
                            (close_code::POLICY, "frame breaks the stream's rules")
                        } else {
                            (close_code::INVALID_PAYLOAD, "malformed frame")
                        };
                        break Outcome::Close {
                            code,
                            reason,
                            metric: "bad_input",
                            disposition: Disposition::Error,
                            detail: e.to_string(),
                        };
                    }
                },
                Frame::Binary(_) => {
                    conn.bad_input("binary");
                    break Outcome::Close {
                        code: close_code::UNSUPPORTED_DATA,
                        reason: "binary frames are not part of Media Streams",
                        metric: "bad_input",
                        disposition: Disposition::Error,
                        detail: "carrier sent a binary frame".into(),
                    };
                }
                Frame::Nothing => {}
                Frame::Ended(end) => break Outcome::Read(end),
            },
            () = sleep_until(deadline) => {
                if let Some(end) = conn.tick() {
                    break Outcome::Read(end);
                }
            }
        }
    };

    tracing::debug!(
        media_frames = codec.media_frames(),
        media_bytes = codec.media_bytes(),
        "stream ended"
    );
    match outcome {
        Outcome::Close {
            code,
            reason,
            metric,
            disposition,
            detail,
        } => {
            if let Some(call) = call {
                call.end(disposition, detail);
            }
            conn.close(code, reason, metric).await;
        }
        Outcome::Read(end) => {
            if let Some(call) = call {
                let (disposition, detail) = read_end_disposition(end);
                call.end(disposition, detail);
            }
            conn.finish(end).await;
        }
    }
}

/// What a socket that ended on its own means for the call on it.
pub(super) fn read_end_disposition(end: ReadEnd) -> (Disposition, &'static str) {
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

/// The next command for the call, or never when there is no call yet.
pub(super) async fn next_command(call: &mut Option<LiveCall>) -> Option<CallCommand> {
    match call {
        Some(call) => call.next_command().await,
        None => std::future::pending().await,
    }
}
