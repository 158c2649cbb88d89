//! `/stream`: Twilio Media Streams. The codec is sans-IO (`voxgate_core::twilio`);
//! this task feeds it frames, turns `start` into a live call, obeys call
//! commands, and ends the call with the disposition the socket's end implies.

use axum::extract::ws::Message;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, sleep_until};
use tracing::Instrument;
use voxgate_core::audio::SampleRate;
use voxgate_core::audio::g711::{ulaw_decode_into, ulaw_encode_into};
use voxgate_core::call::Disposition;
use voxgate_core::events::{Carrier, JobConfig};
use voxgate_core::ids::StreamSid;
use voxgate_core::twilio::{Outbound, StreamInput, Track, TwilioStream};

use super::call_socket::{CallEnd, PlaybackWire, carry_out, end_call, next_input};
use super::{Connection, Frame, WsSocket, close_code};
use crate::app::AppState;
use crate::call::{CallInput, CallStart, LiveCall, ended_before};
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
    let start_deadline = Instant::now() + state.config.limits.start_timeout;
    let mut warned_unknown = false;

    let outcome = loop {
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
                    // Agent actions follow `start`, which set the stream id.
                    let Some(stream_sid) = codec.stream_sid() else { continue };
                    if let Some(end) = carry_out(&conn, &TwilioWire { stream_sid }, action) {
                        break end;
                    }
                }
            },
            item = futures_util::StreamExt::next(&mut conn.stream) => match conn.classify(item) {
                Frame::Text(text) => match codec.handle_text(&text) {
                    Ok(StreamInput::Started(start)) => {
                        let Some(permit) = slot.take() else { continue };
                        let format = &start.media_format;
                        // What Twilio sends: anything else is not Twilio,
                        // and would feed the recorder and VAD at a rate
                        // the peer chose.
                        let is_twilio_audio = format.encoding == "audio/x-mulaw"
                            && format.sample_rate == 8000
                            && format.channels == 1;
                        if !is_twilio_audio {
                            conn.bad_input("media_format");
                            break CallEnd::Close {
                                code: close_code::UNSUPPORTED_DATA,
                                reason: "unsupported media format",
                                metric: "bad_input",
                                disposition: Disposition::Error,
                                detail: format!(
                                    "unsupported media format {:.32} at {} Hz, {} channels",
                                    format.encoding, format.sample_rate, format.channels
                                ),
                            };
                        }
                        if let Some(account) = &state.config.twilio.account_sid
                            && start.account_sid != *account
                        {
                            conn.bad_input("foreign_account");
                            break CallEnd::Close {
                                code: close_code::POLICY,
                                reason: "stream of another account",
                                metric: "foreign_account",
                                disposition: Disposition::Error,
                                detail: "start named an account other than TWILIO_ACCOUNT_SID".into(),
                            };
                        }
                        let replayed = ended_before(&state, &start.call_sid).await;
                        // The lookup was our time, not the peer's silence.
                        conn.listening_again();
                        if replayed {
                            conn.bad_input("replayed_call");
                            tracing::warn!(call_id = start.call_sid.as_str(), "stream reuses an ended call's id");
                            break CallEnd::Close {
                                code: close_code::POLICY,
                                reason: "call already ended",
                                metric: "replayed_call",
                                disposition: Disposition::Error,
                                detail: "call id of an ended call".into(),
                            };
                        }
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
                            audio_rate: SampleRate::HZ_8000,
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
                        // Once per call: a peer must not fill the log.
                        if !warned_unknown {
                            warned_unknown = true;
                            let event: String = event.chars().take(32).collect();
                            tracing::warn!(event, "ignoring unknown carrier events (counted, logged once)");
                        }
                    }
                    Ok(StreamInput::Audio(media)) => {
                        if let Some(call) = call.as_mut()
                            && media.track == Track::Inbound
                        {
                            let mut samples = Vec::with_capacity(media.payload.len());
                            ulaw_decode_into(&media.payload, &mut samples);
                            let at = Duration::from_millis(media.timestamp_ms);
                            if let Err(e) = call.caller_audio(samples, Some(at)) {
                                conn.bad_input("too_fast");
                                break CallEnd::too_fast(&e);
                            }
                        }
                    }
                    Ok(StreamInput::MarkPlayed(mark)) => {
                        if let Some(call) = call.as_ref() {
                            call.mark_played(mark.name);
                        }
                    }
                    Ok(StreamInput::Dtmf(dtmf)) => tracing::debug!(digit = dtmf.digit, "dtmf"),
                    Ok(StreamInput::Connected) => {}
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

/// Twilio's playback messages for one stream.
struct TwilioWire<'a> {
    stream_sid: &'a StreamSid,
}

impl PlaybackWire for TwilioWire<'_> {
    fn audio(&self, samples: &[i16]) -> Message {
        let mut payload = Vec::with_capacity(samples.len());
        ulaw_encode_into(samples, &mut payload);
        let media = Outbound::Media {
            stream_sid: self.stream_sid,
            payload: &payload,
        };
        Message::Text(media.to_json().into())
    }

    fn mark(&self, name: &str) -> Message {
        let mark = Outbound::Mark {
            stream_sid: self.stream_sid,
            name,
        };
        Message::Text(mark.to_json().into())
    }

    fn clear(&self) -> Message {
        let clear = Outbound::Clear {
            stream_sid: self.stream_sid,
        };
        Message::Text(clear.to_json().into())
    }
}
