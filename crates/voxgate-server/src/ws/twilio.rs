//! `/stream`: Twilio Media Streams. The codec is sans-IO (`voxgate_core::twilio`);
//! this task feeds it frames, turns `start` into a live call, obeys call
//! commands, and ends the call with the disposition the socket's end implies.

use axum::extract::ws::Message;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::sleep_until;
use tracing::Instrument;
use voxgate_core::audio::SampleRate;
use voxgate_core::audio::g711::{
    alaw_decode_into, alaw_encode_into, ulaw_decode_into, ulaw_encode_into,
};
use voxgate_core::call::Disposition;
use voxgate_core::events::{Carrier, JobConfig};
use voxgate_core::ids::StreamSid;
use voxgate_core::twilio::{Outbound, StreamInput, Track, TwilioStream};

use super::call_socket::{CallEnd, PlaybackWire, carry_out, end_call, next_input};
use super::{Connection, Frame, WsSocket, close_code};
use crate::app::AppState;
use crate::call::{CallInput, CallStart, LiveCall};
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
    let mut law = G711::Mulaw;

    let outcome = loop {
        let deadline = conn.deadline();
        tokio::select! {
            biased;
            () = token.cancelled() => break CallEnd::shutdown(),
            Some(input) = next_input(&mut call) => match input {
                CallInput::Command(CallCommand::Hangup) => break CallEnd::hangup(),
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
                    if let Some(end) = carry_out(&conn, &TwilioWire { stream_sid, law }, action) {
                        break end;
                    }
                }
            },
            item = futures_util::StreamExt::next(&mut conn.stream) => match conn.classify(item) {
                Frame::Text(text) => match codec.handle_text(&text) {
                    Ok(StreamInput::Started(start)) => {
                        let Some(permit) = slot.take() else { continue };
                        let format = &start.media_format;
                        let (Some(format_law), Ok(audio_rate)) =
                            (G711::from_encoding(&format.encoding), SampleRate::new(format.sample_rate))
                        else {
                            conn.bad_input("media_format");
                            break CallEnd::Close {
                                code: close_code::UNSUPPORTED_DATA,
                                reason: "unsupported media format",
                                metric: "bad_input",
                                disposition: Disposition::Error,
                                detail: format!(
                                    "unsupported media format {} at {} Hz",
                                    format.encoding, format.sample_rate
                                ),
                            };
                        };
                        law = format_law;
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
                            audio_rate,
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
                    Ok(StreamInput::Audio(media)) => {
                        if let Some(call) = call.as_mut()
                            && media.track == Track::Inbound
                        {
                            let mut samples = Vec::with_capacity(media.payload.len());
                            law.decode(&media.payload, &mut samples);
                            let at = Duration::from_millis(media.timestamp_ms);
                            call.caller_audio(samples, Some(at));
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
    law: G711,
}

impl PlaybackWire for TwilioWire<'_> {
    fn audio(&self, samples: &[i16]) -> Message {
        let mut payload = Vec::with_capacity(samples.len());
        self.law.encode(samples, &mut payload);
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

/// The G.711 law of a stream's audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum G711 {
    Mulaw,
    Alaw,
}

impl G711 {
    fn from_encoding(encoding: &str) -> Option<G711> {
        match encoding {
            "audio/x-mulaw" => Some(G711::Mulaw),
            "audio/x-alaw" => Some(G711::Alaw),
            _ => None,
        }
    }

    fn decode(self, bytes: &[u8], out: &mut Vec<i16>) {
        match self {
            G711::Mulaw => ulaw_decode_into(bytes, out),
            G711::Alaw => alaw_decode_into(bytes, out),
        }
    }

    fn encode(self, samples: &[i16], out: &mut Vec<u8>) {
        match self {
            G711::Mulaw => ulaw_encode_into(samples, out),
            G711::Alaw => alaw_encode_into(samples, out),
        }
    }
}
