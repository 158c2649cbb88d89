//! `/stream`: Twilio Media Streams. The codec is sans-IO (`voxgate_core::twilio`);
//! this task feeds it frames, turns `start` into a live call, obeys call
//! commands, and ends the call with the disposition the socket's end implies.

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::sleep_until;
use tracing::Instrument;
use voxgate_core::call::Disposition;
use voxgate_core::events::{Carrier, JobConfig};
use voxgate_core::twilio::{StreamInput, TwilioStream};

use super::call_socket::{CallEnd, end_call, next_command};
use super::{Connection, Frame, WsSocket, close_code};
use crate::app::AppState;
use crate::call::{CallStart, LiveCall};
use crate::metrics::{Endpoint, UNKNOWN_EVENTS};
use crate::registry::CallCommand;

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
            () = token.cancelled() => break CallEnd::shutdown(),
            Some(command) = next_command(&mut call) => match command {
                CallCommand::Hangup => break CallEnd::hangup(),
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
                                break CallEnd::Close {
                                    code: close_code::POLICY,
                                    reason: "call already live",
                                    metric: "duplicate_call",
                                    disposition: Disposition::Error,
                                    detail: duplicate.to_string(),
                                };
                            }
                        }
                    }
                    Ok(StreamInput::Stopped(_)) => break CallEnd::Close {
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
                        break CallEnd::Close {
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
                    break CallEnd::Close {
                        code: close_code::UNSUPPORTED_DATA,
                        reason: "binary frames are not part of Media Streams",
                        metric: "bad_input",
                        disposition: Disposition::Error,
                        detail: "carrier sent a binary frame".into(),
                    };
                }
                Frame::Nothing => {}
                Frame::Ended(end) => break CallEnd::Read(end),
            },
            () = sleep_until(deadline) => {
                if let Some(end) = conn.tick() {
                    break CallEnd::Read(end);
                }
            }
        }
    };

    tracing::debug!(
        media_frames = codec.media_frames(),
        media_bytes = codec.media_bytes(),
        "stream ended"
    );
    end_call(conn, call, outcome, false).await;
}
