//! The `stream-input` protocol as plain data: the messages voxgate sends,
//! and [`Reply`], which reads the server's frames for one sentence into
//! audio, completion or a typed failure. No IO, no clock.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use voxgate_core::audio::g711;

use super::{OutputFormat, VENDOR, VoiceSettings};
use crate::ProviderError;

/// The message that ends the input: the vendor generates what is left,
/// sends `isFinal`, and closes.
pub const END_OF_INPUT: &str = r#"{"text":""}"#;

/// The vendor's error code for a socket that heard no text for its
/// `inactivity_timeout`.
const INPUT_TIMEOUT: &str = "input_timeout_exceeded";

/// WebSocket close code 1000.
const NORMAL_CLOSURE: u16 = 1000;
/// WebSocket close code 1008: the vendor refuses what it was sent.
const POLICY_VIOLATION: u16 = 1008;

#[derive(Serialize)]
struct Init<'a> {
    text: &'static str,
    voice_settings: &'a VoiceSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    generation_config: Option<GenerationConfig<'a>>,
}

#[derive(Serialize)]
struct GenerationConfig<'a> {
    chunk_length_schedule: &'a [u32],
}

#[derive(Serialize)]
struct Text<'a> {
    text: &'a str,
    flush: bool,
}

/// The first message on a socket; its text must be a single space.
pub fn init_message(voice_settings: &VoiceSettings, chunk_length_schedule: &[u32]) -> String {
    let init = Init {
        text: " ",
        voice_settings,
        generation_config: (!chunk_length_schedule.is_empty()).then_some(GenerationConfig {
            chunk_length_schedule,
        }),
    };
    serde_json::to_string(&init).expect("plain structs always serialize")
}

/// A sentence, flushed so that the vendor generates it at once. The vendor
/// expects every text to end with a space.
pub fn sentence_message(sentence: &str) -> String {
    let text = format!("{} ", sentence.trim());
    serde_json::to_string(&Text {
        text: &text,
        flush: true,
    })
    .expect("plain structs always serialize")
}

/// A server message, as far as voxgate reads it (`alignment` is not used).
#[derive(Deserialize)]
struct ServerMessage {
    audio: Option<String>,
    #[serde(rename = "isFinal")]
    is_final: Option<bool>,
    error: Option<serde_json::Value>,
    message: Option<serde_json::Value>,
    code: Option<u16>,
}

/// What one frame added to the sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    /// Decoded samples; may be empty.
    pub samples: Vec<i16>,
    /// The sentence is complete: stop reading.
    pub done: bool,
}

/// Why the sentence failed.
#[derive(Debug, Clone)]
pub struct Stop {
    /// The failure.
    pub error: ProviderError,
    /// The socket went away before the vendor answered, the way a spare
    /// that sat too long goes: the sentence may be said again on a fresh
    /// socket.
    pub stale: bool,
}

/// Reads the server's frames for one sentence.
#[derive(Debug)]
pub struct Reply {
    format: OutputFormat,
    /// A PCM byte whose sample continues in the next message.
    odd_byte: Option<u8>,
    answered: bool,
}

impl Reply {
    /// A reply in `format`.
    pub fn new(format: OutputFormat) -> Self {
        Self {
            format,
            odd_byte: None,
            answered: false,
        }
    }

    /// A text frame.
    ///
    /// # Errors
    /// Not JSON, bad base64 or a PCM stream that ends mid-sample
    /// ([`ProviderError::Protocol`]); a vendor error message
    /// ([`ProviderError::Rejected`], or [`ProviderError::Unavailable`] when
    /// the vendor says it is its own trouble or the socket sat idle).
    pub fn on_text(&mut self, text: &str) -> Result<Heard, Stop> {
        let first = !self.answered;
        self.answered = true;
        let message: ServerMessage = serde_json::from_str(text)
            .map_err(|e| protocol(format!("a server message is not valid JSON: {e}")))?;
        if message.error.is_some() || (message.audio.is_none() && message.message.is_some()) {
            return Err(vendor_failure(&message, first));
        }
        let mut samples = Vec::new();
        if let Some(audio) = &message.audio {
            let bytes = STANDARD
                .decode(audio)
                .map_err(|e| protocol(format!("audio is not valid base64: {e}")))?;
            self.decode(&bytes, &mut samples);
        }
        let done = message.is_final == Some(true);
        if done {
            self.finish()?;
        }
        Ok(Heard { samples, done })
    }

    /// A close frame (`None` when it carried no code).
    ///
    /// # Errors
    /// The vendor closed before answering, or with a code other than 1000.
    pub fn on_close(&mut self, frame: Option<(u16, &str)>) -> Result<Heard, Stop> {
        let (code, reason) = frame.unwrap_or((NORMAL_CLOSURE, ""));
        let error = match code {
            NORMAL_CLOSURE if self.answered => {
                self.finish()?;
                return Ok(Heard {
                    samples: Vec::new(),
                    done: true,
                });
            }
            NORMAL_CLOSURE => unavailable("the socket was closed before any answer".to_owned()),
            POLICY_VIOLATION => ProviderError::Rejected {
                provider: VENDOR,
                status: code,
                reason: reason.to_owned(),
            },
            _ => unavailable(format!("the socket was closed ({code}): {reason}")),
        };
        Err(Stop {
            error,
            stale: !self.answered,
        })
    }

    /// The connection ended without a close frame, or failed.
    pub fn on_lost(&self, detail: &str) -> Stop {
        Stop {
            error: unavailable(format!("the connection was lost mid-sentence: {detail}")),
            stale: !self.answered,
        }
    }

    /// A binary frame, which the vendor never sends.
    pub fn on_binary(&self) -> Stop {
        protocol("a binary frame arrived; the vendor sends JSON text".to_owned())
    }

    fn decode(&mut self, bytes: &[u8], out: &mut Vec<i16>) {
        if self.format == OutputFormat::Ulaw8000 {
            g711::ulaw_decode_into(bytes, out);
            return;
        }
        let mut rest = bytes;
        if let (Some(low), Some((&high, tail))) = (self.odd_byte, rest.split_first()) {
            out.push(i16::from_le_bytes([low, high]));
            self.odd_byte = None;
            rest = tail;
        }
        let mut pairs = rest.chunks_exact(2);
        out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
        if let [last] = pairs.remainder() {
            self.odd_byte = Some(*last);
        }
    }

    fn finish(&self) -> Result<(), Stop> {
        match self.odd_byte {
            Some(_) => Err(protocol(
                "the PCM audio ended in the middle of a sample".to_owned(),
            )),
            None => Ok(()),
        }
    }
}

fn vendor_failure(message: &ServerMessage, first: bool) -> Stop {
    let text = |value: &Option<serde_json::Value>| match value {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    let kind = text(&message.error);
    let reason = match (kind.is_empty(), text(&message.message)) {
        (_, detail) if detail.is_empty() => kind.clone(),
        (true, detail) => detail,
        (false, detail) => format!("{kind}: {detail}"),
    };
    let idle = kind == INPUT_TIMEOUT;
    let error = match message.code {
        _ if idle => unavailable(reason),
        // 1011 internal error, 1013 try again later.
        Some(1011 | 1013) => unavailable(reason),
        code => ProviderError::Rejected {
            provider: VENDOR,
            status: code.unwrap_or(POLICY_VIOLATION),
            reason,
        },
    };
    Stop {
        error,
        stale: first && idle,
    }
}

fn protocol(reason: String) -> Stop {
    Stop {
        error: ProviderError::Protocol {
            provider: VENDOR,
            reason,
        },
        stale: false,
    }
}

fn unavailable(reason: String) -> ProviderError {
    ProviderError::Unavailable {
        provider: VENDOR,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recorded from the vendor (`stream-input`, ulaw_8000), audio cut
    /// short.
    const AUDIO: &str = r#"{"audio":"//9+fXx7","isFinal":null,"normalizedAlignment":{"charStartTimesMs":[0,81],"charsDurationsMs":[81,70],"chars":["H","i"]},"alignment":{"charStartTimesMs":[0,81],"charsDurationsMs":[81,70],"chars":["H","i"]}}"#;
    const FINAL: &str =
        r#"{"audio":null,"isFinal":true,"normalizedAlignment":null,"alignment":null}"#;
    const IDLE: &str = r#"{"message":"Have not received a new text input within the timeout of 20.0 seconds. Streaming input terminated. Please make sure to either feed the input in the timely manner, or to send the end of input text (empty string \"\") when done.","error":"input_timeout_exceeded","code":1008}"#;
    const QUOTA: &str =
        r#"{"message":"This request exceeds your quota.","error":"quota_exceeded","code":1008}"#;

    #[test]
    fn client_messages_have_the_vendor_shape() {
        assert_eq!(
            init_message(&VoiceSettings::default(), &[120, 160, 250, 290]),
            r#"{"text":" ","voice_settings":{"stability":0.5,"similarity_boost":0.75,"speed":1.0},"generation_config":{"chunk_length_schedule":[120,160,250,290]}}"#
        );
        assert_eq!(
            init_message(&VoiceSettings::default(), &[]),
            r#"{"text":" ","voice_settings":{"stability":0.5,"similarity_boost":0.75,"speed":1.0}}"#
        );
        assert_eq!(
            sentence_message(" Say \"hi\". "),
            r#"{"text":"Say \"hi\". ","flush":true}"#
        );
    }

    #[test]
    fn audio_is_decoded_until_the_final_message() {
        let mut reply = Reply::new(OutputFormat::Ulaw8000);
        let heard = reply.on_text(AUDIO).expect("audio");
        let mut expected = Vec::new();
        g711::ulaw_decode_into(&[0xff, 0xff, 0x7e, 0x7d, 0x7c, 0x7b], &mut expected);
        assert_eq!(heard.samples, expected);
        assert!(!heard.done);
        let last = reply.on_text(FINAL).expect("final");
        assert!(last.samples.is_empty() && last.done);
    }

    #[test]
    fn pcm_samples_may_straddle_messages() {
        let mut reply = Reply::new(OutputFormat::Pcm16000);
        let message = |bytes: &[u8]| {
            format!(
                r#"{{"audio":"{}","isFinal":false}}"#,
                STANDARD.encode(bytes)
            )
        };
        let first = reply.on_text(&message(&[0x01, 0x02, 0x03])).expect("audio");
        assert_eq!(first.samples, [0x0201]);
        let second = reply.on_text(&message(&[0x04, 0x05, 0x06])).expect("audio");
        assert_eq!(second.samples, [0x0403, 0x0605]);
        assert!(reply.on_text(FINAL).is_ok());

        let mut cut = Reply::new(OutputFormat::Pcm16000);
        cut.on_text(&message(&[0x01])).expect("half a sample waits");
        let stop = cut.on_text(FINAL).expect_err("ends mid-sample");
        assert!(matches!(stop.error, ProviderError::Protocol { .. }));
    }

    #[test]
    fn malformed_messages_are_protocol_errors() {
        for bad in [
            "not json",
            r#"{"audio":"%%%","isFinal":false}"#,
            r#"{"audio":7}"#,
        ] {
            let stop = Reply::new(OutputFormat::Ulaw8000)
                .on_text(bad)
                .expect_err("malformed");
            assert!(
                matches!(stop.error, ProviderError::Protocol { .. }),
                "{bad}"
            );
            assert!(!stop.stale);
        }
        assert!(matches!(
            Reply::new(OutputFormat::Ulaw8000).on_binary().error,
            ProviderError::Protocol { .. }
        ));
    }

    #[test]
    fn vendor_errors_say_what_the_vendor_said() {
        let stop = Reply::new(OutputFormat::Ulaw8000)
            .on_text(QUOTA)
            .expect_err("an error");
        assert!(matches!(
            stop.error,
            ProviderError::Rejected { status: 1008, .. }
        ));
        assert!(
            stop.error
                .to_string()
                .contains("quota_exceeded: This request exceeds your quota.")
        );
        assert!(!stop.stale);

        let stop = Reply::new(OutputFormat::Ulaw8000)
            .on_text(r#"{"message":"Internal error","code":1011}"#)
            .expect_err("an error");
        assert!(matches!(stop.error, ProviderError::Unavailable { .. }));
    }

    #[test]
    fn a_socket_gone_before_answering_is_stale() {
        let idle = Reply::new(OutputFormat::Ulaw8000)
            .on_text(IDLE)
            .expect_err("timed out");
        assert!(idle.stale);
        assert!(matches!(idle.error, ProviderError::Unavailable { .. }));

        let mut reply = Reply::new(OutputFormat::Ulaw8000);
        assert!(
            reply
                .on_close(Some((1000, "")))
                .expect_err("no answer")
                .stale
        );
        assert!(reply.on_lost("reset").stale);

        reply.on_text(AUDIO).expect("audio");
        let lost = reply.on_lost("reset");
        assert!(!lost.stale);
        assert!(matches!(lost.error, ProviderError::Unavailable { .. }));
        assert!(
            reply
                .on_close(Some((1000, "")))
                .expect("a normal close ends")
                .done
        );
        assert!(matches!(
            reply
                .on_close(Some((1008, "policy")))
                .expect_err("refused")
                .error,
            ProviderError::Rejected { status: 1008, .. }
        ));
        assert!(matches!(
            reply
                .on_close(Some((1011, "oops")))
                .expect_err("failed")
                .error,
            ProviderError::Unavailable { .. }
        ));
    }
}
