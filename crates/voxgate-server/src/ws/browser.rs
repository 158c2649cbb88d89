//! `/browser-stream`: a call from a browser. PCM16 audio arrives in binary
//! frames; control is JSON text (`start`, `config`, `hangup`, `ping`). The
//! browser gets its own call's events directly.

use axum::extract::ws::Message;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use voxgate_core::audio::SampleRate;
use voxgate_core::audio::pcm::{pcm16le_decode_into, pcm16le_encode_into};
use voxgate_core::call::Disposition;
use voxgate_core::events::{
    BrowserRequest, Carrier, ErrorCode, JobConfig, ProtocolError, ServerMessage,
};
use voxgate_core::ids::CallSid;

use super::call_socket::{CallEnd, PlaybackWire, carry_out, end_call, next_input};
use super::{Connection, Frame, ReadEnd, WsSocket, close_code, new_session_id};
use crate::access::CallGrant;
use crate::app::AppState;
use crate::call::{CallInput, CallStart, LiveCall};
use crate::metrics::Endpoint;
use crate::registry::CallCommand;

/// Serves one browser call until it hangs up, drops, or the server stops.
///
/// A caller with a call token (`guest`) gets the token's persona whatever
/// `start` asks, and may not send `config`.
pub async fn run<S: WsSocket>(
    socket: S,
    state: AppState,
    slot: OwnedSemaphorePermit,
    guest: Option<CallGrant>,
) {
    let span = tracing::info_span!("call", carrier = "browser", call_id = tracing::field::Empty);
    serve(socket, state, slot, guest).instrument(span).await;
}

fn new_call_id() -> CallSid {
    // "BR" and 32 hex digits is always a valid id.
    CallSid::new(format!("BR{}", uuid::Uuid::new_v4().simple()))
        .unwrap_or_else(|_| unreachable!("a generated browser call id is valid"))
}

async fn serve<S: WsSocket>(
    socket: S,
    state: AppState,
    slot: OwnedSemaphorePermit,
    guest: Option<CallGrant>,
) {
    let mut conn = Connection::open(socket, &state, Endpoint::BrowserStream);
    let token = state.lifecycle.root.child_token();
    let mut slot = Some(slot);
    let mut call: Option<LiveCall> = None;
    let start_deadline = Instant::now() + state.config.limits.start_timeout;
    let mut audio_bytes: u64 = 0;

    let mut early_end = conn.greet(new_session_id());

    let outcome = loop {
        if let Some(end) = early_end.take() {
            break CallEnd::Read(end);
        }
        let deadline = conn.deadline();
        tokio::select! {
            biased;
            () = token.cancelled() => break CallEnd::shutdown(),
            () = sleep_until(start_deadline), if call.is_none() => break CallEnd::no_start(),
            Some(input) = next_input(&mut call) => match input {
                CallInput::Command(CallCommand::Hangup) => break CallEnd::hangup(),
                CallInput::Command(CallCommand::Reset) => break CallEnd::admin_reset(),
                CallInput::Command(CallCommand::Config(update)) => {
                    if let Some(call) = call.as_mut() {
                        call.apply_config(update);
                    }
                }
                CallInput::Agent(action) => {
                    if let Some(call) = call.as_mut() {
                        call.record_agent(&action);
                    }
                    if let Some(end) = carry_out(&conn, &BrowserWire, action) {
                        break end;
                    }
                }
            },
            item = futures_util::StreamExt::next(&mut conn.stream) => match conn.classify(item) {
                Frame::Text(text) => {
                    let request = match BrowserRequest::parse(&text) {
                        Ok(request) => request,
                        Err(e) => {
                            early_end = conn.refuse(&e);
                            continue;
                        }
                    };
                    match request {
                        BrowserRequest::Ping => early_end = conn.send(&ServerMessage::Pong),
                        BrowserRequest::Start { config } => {
                            let Some(permit) = slot.take() else {
                                early_end = conn.refuse(&ProtocolError::new(
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
                                config: match &guest {
                                    Some(grant) => JobConfig {
                                        persona: Some(grant.persona.clone()),
                                        ..JobConfig::default()
                                    },
                                    None => config,
                                },
                                audio_rate: SampleRate::HZ_16000,
                            };
                            match LiveCall::begin(&state, permit, begin, &token) {
                                Ok(live) => {
                                    early_end = conn.send_text(live.started_event().to_json());
                                    call = Some(live);
                                }
                                Err(duplicate) => {
                                    tracing::error!(error = %duplicate, "generated call id collided");
                                    break CallEnd::Read(ReadEnd::Failed);
                                }
                            }
                        }
                        BrowserRequest::Config { .. } if guest.is_some() => {
                            early_end = conn.refuse(&ProtocolError::new(
                                ErrorCode::Forbidden, "a call token's call cannot be reconfigured",
                            ));
                        }
                        BrowserRequest::Config { config } => match call.as_mut() {
                            Some(live) => live.apply_config(config),
                            None => {
                                early_end = conn.refuse(&ProtocolError::new(
                                    ErrorCode::NotStarted, "send `start` before `config`",
                                ));
                            }
                        },
                        BrowserRequest::Mark { name } => {
                            if let Some(call) = call.as_ref() {
                                call.mark_played(name);
                            }
                        }
                        BrowserRequest::Hangup => break CallEnd::Close {
                            code: close_code::NORMAL,
                            reason: "hangup",
                            metric: "completed",
                            disposition: Disposition::Completed,
                            detail: "browser hung up".into(),
                        },
                        _ => {
                            early_end = conn.refuse(&ProtocolError::new(
                                ErrorCode::UnknownType, "request not handled on /browser-stream",
                            ));
                        }
                    }
                }
                Frame::Binary(audio) => {
                    if call.is_none() {
                        early_end = conn.refuse(&ProtocolError::new(
                            ErrorCode::NotStarted, "audio arrived before `start`",
                        ));
                    } else if audio.len() % 2 != 0 {
                        early_end = conn.refuse(&ProtocolError::new(
                            ErrorCode::InvalidAudio,
                            format!("{} bytes is not whole PCM16 samples", audio.len()),
                        ));
                    } else {
                        audio_bytes += audio.len() as u64;
                        if let Some(call) = call.as_mut() {
                            let mut samples = Vec::with_capacity(audio.len() / 2);
                            match pcm16le_decode_into(&audio, &mut samples) {
                                Ok(()) => {
                                    if let Err(e) = call.caller_audio(samples, None) {
                                        conn.bad_input("too_fast");
                                break CallEnd::too_fast(&e);
                                    }
                                }
                                Err(e) => tracing::warn!(error = %e, "undecodable browser audio"),
                            }
                        }
                    }
                }
                Frame::Nothing => {}
                Frame::Ended(end) => break CallEnd::Read(end),
            },
            () = sleep_until(deadline) => early_end = conn.tick(),
        }
    };

    tracing::debug!(audio_bytes, "browser stream ended");
    end_call(conn, call, outcome, true).await;
}

/// The browser's playback messages: binary PCM16, JSON `mark` and `clear`.
struct BrowserWire;

impl PlaybackWire for BrowserWire {
    fn audio(&self, samples: &[i16]) -> Message {
        let mut pcm = Vec::with_capacity(samples.len() * 2);
        pcm16le_encode_into(samples, &mut pcm);
        Message::Binary(pcm.into())
    }

    fn mark(&self, name: &str) -> Message {
        let mark = ServerMessage::Mark {
            name: name.to_owned(),
        };
        Message::Text(mark.to_json().into())
    }

    fn clear(&self) -> Message {
        Message::Text(ServerMessage::Clear.to_json().into())
    }
}
