//! `/browser-stream`: a call from a browser. PCM16 audio arrives in binary
//! frames; control is JSON text (`start`, `config`, `hangup`, `ping`). The
//! browser gets its own call's events directly.

use axum::extract::ws::Message;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::sleep_until;
use tracing::Instrument;
use voxgate_core::call::Disposition;
use voxgate_core::events::{
    BrowserRequest, CallEvent, Carrier, ErrorCode, ProtocolError, ServerMessage,
};
use voxgate_core::ids::{CallSid, SessionId};

use super::twilio::{next_command, read_end_disposition};
use super::{Connection, Frame, ReadEnd, Stalled, WsSocket, close_code};
use crate::app::AppState;
use crate::call::{CallStart, LiveCall};
use crate::metrics::Endpoint;
use crate::registry::CallCommand;

/// How the loop ended.
enum Outcome {
    /// End the call with this disposition and close normally.
    Ended(Disposition, &'static str, u16, &'static str),
    /// The read side ended by itself.
    Read(ReadEnd),
}

/// Serves one browser call until it hangs up, drops, or the server stops.
pub async fn run<S: WsSocket>(socket: S, state: AppState, slot: OwnedSemaphorePermit) {
    let span = tracing::info_span!("call", carrier = "browser", call_id = tracing::field::Empty);
    serve(socket, state, slot).instrument(span).await;
}

fn new_call_id() -> CallSid {
    // "BR" and 32 hex digits is always a valid id.
    CallSid::new(format!("BR{}", uuid::Uuid::new_v4().simple()))
        .unwrap_or_else(|_| unreachable!("a generated browser call id is valid"))
}

async fn serve<S: WsSocket>(socket: S, state: AppState, slot: OwnedSemaphorePermit) {
    let mut conn = Connection::open(socket, &state, Endpoint::BrowserStream);
    let token = state.lifecycle.root.child_token();
    let mut slot = Some(slot);
    let mut call: Option<LiveCall> = None;
    let mut audio_bytes: u64 = 0;

    let hello = ServerMessage::ConnectionEstablished {
        session_id: SessionId::new(uuid::Uuid::new_v4().to_string())
            .unwrap_or_else(|_| unreachable!("a UUID is a valid session id")),
        ping_interval_ms: u64::try_from(state.config.ws.heartbeat.ping_interval.as_millis())
            .unwrap_or(u64::MAX),
        idle_timeout_ms: u64::try_from(state.config.ws.heartbeat.idle_timeout.as_millis())
            .unwrap_or(u64::MAX),
        max_message_bytes: state.config.ws.max_message_bytes,
    };
    let mut early_end = conn
        .out
        .control_json(&hello)
        .err()
        .map(|Stalled| ReadEnd::Stalled);

    let outcome = loop {
        if let Some(end) = early_end.take() {
            break Outcome::Read(end);
        }
        let deadline = conn.deadline();
        tokio::select! {
            biased;
            () = token.cancelled() => break Outcome::Ended(
                Disposition::Shutdown, "server shut down before the call ended",
                close_code::GOING_AWAY, "server shutting down",
            ),
            Some(command) = next_command(&mut call) => match command {
                CallCommand::Hangup => break Outcome::Ended(
                    Disposition::Hangup, "hung up by a monitor", close_code::NORMAL, "hangup",
                ),
                CallCommand::Config(update) => {
                    if let Some(call) = call.as_mut() {
                        call.apply_config(update);
                    }
                }
            },
            item = futures_util::StreamExt::next(&mut conn.stream) => match conn.classify(item) {
                Frame::Text(text) => {
                    let request = match BrowserRequest::parse(&text) {
                        Ok(request) => request,
                        Err(e) => {
                            early_end = refuse(&conn, &e);
                            continue;
                        }
                    };
                    match request {
                        BrowserRequest::Ping => early_end = send(&conn, &ServerMessage::Pong),
                        BrowserRequest::Start { config } => {
                            let Some(permit) = slot.take() else {
                                early_end = refuse(&conn, &ProtocolError::new(
                                    ErrorCode::AlreadyStarted, "this connection's call has already started",
                                ));
                                continue;
                            };
                            let call_id = new_call_id();
                            tracing::Span::current().record("call_id", call_id.as_str());
                            let begin = CallStart {
                                call_id: call_id.clone(),
                                carrier: Carrier::Browser,
                                stream_sid: None,
                                from: None,
                                to: None,
                                config,
                            };
                            match LiveCall::begin(&state, permit, begin, &token) {
                                Ok(live) => {
                                    early_end = send_event(&conn, &live.started_event());
                                    call = Some(live);
                                }
                                Err(duplicate) => {
                                    tracing::error!(error = %duplicate, "generated call id collided");
                                    break Outcome::Read(ReadEnd::Failed);
                                }
                            }
                        }
                        BrowserRequest::Config { config } => match call.as_mut() {
                            Some(live) => live.apply_config(config),
                            None => {
                                early_end = refuse(&conn, &ProtocolError::new(
                                    ErrorCode::NotStarted, "send `start` before `config`",
                                ));
                            }
                        },
                        BrowserRequest::Hangup => break Outcome::Ended(
                            Disposition::Completed, "browser hung up", close_code::NORMAL, "hangup",
                        ),
                        _ => {
                            early_end = refuse(&conn, &ProtocolError::new(
                                ErrorCode::UnknownType, "request not handled on /browser-stream",
                            ));
                        }
                    }
                }
                Frame::Binary(audio) => {
                    if call.is_none() {
                        early_end = refuse(&conn, &ProtocolError::new(
                            ErrorCode::NotStarted, "audio arrived before `start`",
                        ));
                    } else if audio.len() % 2 != 0 {
                        early_end = refuse(&conn, &ProtocolError::new(
                            ErrorCode::InvalidAudio,
                            format!("{} bytes is not whole PCM16 samples", audio.len()),
                        ));
                    } else {
                        // Audio reaches the conversation engine once it exists.
                        audio_bytes += audio.len() as u64;
                    }
                }
                Frame::Nothing => {}
                Frame::Ended(end) => break Outcome::Read(end),
            },
            () = sleep_until(deadline) => early_end = conn.tick(),
        }
    };

    tracing::debug!(audio_bytes, "browser stream ended");
    match outcome {
        Outcome::Ended(disposition, detail, code, reason) => {
            if let Some(call) = call {
                let ended = call.end(disposition, detail);
                let _ = send_event(&conn, &ended);
            }
            conn.close(code, reason, disposition.as_str()).await;
        }
        Outcome::Read(end) => {
            if let Some(call) = call {
                let (disposition, detail) = read_end_disposition(end);
                let ended = call.end(disposition, detail);
                let _ = send_event(&conn, &ended);
            }
            conn.finish(end).await;
        }
    }
}

fn send<S: WsSocket>(conn: &Connection<S>, message: &ServerMessage) -> Option<ReadEnd> {
    conn.out
        .control_json(message)
        .err()
        .map(|Stalled| ReadEnd::Stalled)
}

fn send_event<S: WsSocket>(conn: &Connection<S>, event: &CallEvent) -> Option<ReadEnd> {
    conn.out
        .control(Message::Text(event.to_json().into()))
        .err()
        .map(|Stalled| ReadEnd::Stalled)
}

fn refuse<S: WsSocket>(conn: &Connection<S>, e: &ProtocolError) -> Option<ReadEnd> {
    conn.bad_input(e.code.as_str());
    send(conn, &e.to_message())
}
