//! Deepgram's live-transcription protocol as plain data: the URL of a
//! session, the control messages we send (text frames), the audio encoding
//! (binary frames), and a decoder for what the server sends. No IO here, so
//! it is tested against recorded frames.

use serde::Deserialize;

use crate::cloud::BaseUrl;

/// Keeps an idle socket open; Deepgram closes one that hears neither audio
/// nor a text message for 10 s. Must go as a text frame: as binary it is
/// taken for audio.
pub const KEEP_ALIVE: &str = r#"{"type":"KeepAlive"}"#;
/// Flushes the audio Deepgram holds: the results that follow carry
/// `from_finalize: true`.
pub const FINALIZE: &str = r#"{"type":"Finalize"}"#;
/// Ends the session: Deepgram flushes its last results, sends `Metadata`
/// and closes.
pub const CLOSE_STREAM: &str = r#"{"type":"CloseStream"}"#;

/// Samples per second of the audio we send (the caller's audio inside
/// voxgate).
pub const SAMPLE_RATE: u32 = 16_000;

/// The `/v1/listen` WebSocket URL for `model`, asking for 16 kHz mono
/// linear16, interim results, 300 ms endpointing, utterance ends after
/// 1 s, VAD events, and formatted, punctuated text.
pub fn listen_url(base: &BaseUrl, model: &str) -> String {
    let sample_rate = SAMPLE_RATE.to_string();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("model", model)
        .append_pair("encoding", "linear16")
        .append_pair("sample_rate", &sample_rate)
        .append_pair("channels", "1")
        .append_pair("interim_results", "true")
        .append_pair("endpointing", "300")
        .append_pair("utterance_end_ms", "1000")
        .append_pair("vad_events", "true")
        .append_pair("smart_format", "true")
        .append_pair("punctuate", "true")
        .finish();
    format!("{}?{query}", base.websocket("/v1/listen"))
}

/// `samples` as `linear16`: little-endian 16-bit PCM.
pub fn linear16(samples: &[i16]) -> Vec<u8> {
    samples.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// A message from Deepgram.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// A transcript of a stretch of audio, interim or final.
    Results(Results),
    /// `utterance_end_ms` of silence followed the last finalized word.
    UtteranceEnd(UtteranceEnd),
    /// Voice activity began.
    SpeechStarted(SpeechStarted),
    /// The summary Deepgram sends before closing.
    Metadata(Metadata),
    /// Deepgram reports an error in-band.
    Error(VendorError),
}

/// A `Results` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Results {
    /// This segment's text will not change.
    #[serde(default)]
    pub is_final: bool,
    /// The endpointer saw a pause after this segment.
    #[serde(default)]
    pub speech_final: bool,
    /// The segment was flushed by a `Finalize` we sent.
    #[serde(default)]
    pub from_finalize: bool,
    /// Where the segment starts in the stream, in seconds.
    #[serde(default)]
    pub start: f64,
    /// How long the segment is, in seconds.
    #[serde(default)]
    pub duration: f64,
    /// The transcript alternatives of the one channel.
    pub channel: Channel,
}

impl Results {
    /// The best alternative's transcript, trimmed; empty when there is none
    /// (Deepgram often sends empty transcripts for silence).
    pub fn transcript(&self) -> &str {
        self.channel
            .alternatives
            .first()
            .map_or("", |alternative| alternative.transcript.trim())
    }
}

/// The alternatives of one channel.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Channel {
    /// Best first.
    pub alternatives: Vec<Alternative>,
}

/// One transcript hypothesis.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Alternative {
    /// The text.
    pub transcript: String,
    /// Deepgram's confidence, 0 to 1.
    #[serde(default)]
    pub confidence: f64,
}

/// An `UtteranceEnd` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct UtteranceEnd {
    /// When the last finalized word ended, in seconds.
    pub last_word_end: f64,
}

/// A `SpeechStarted` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct SpeechStarted {
    /// When speech began, in seconds.
    pub timestamp: f64,
}

/// A `Metadata` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Metadata {
    /// Deepgram's id of the session, for support requests.
    pub request_id: String,
    /// Seconds of audio received.
    #[serde(default)]
    pub duration: f64,
}

/// An `Error` message.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct VendorError {
    /// What went wrong, in words.
    #[serde(default)]
    pub description: String,
    /// Deepgram's error code or short message.
    #[serde(default)]
    pub message: String,
}

/// Why a text frame from Deepgram could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Not a JSON object with a string `type`.
    #[error("not a typed JSON message: {0}")]
    Untyped(String),
    /// A `type` this client does not know.
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    /// A known `type` whose fields do not match.
    #[error("invalid {kind} message: {reason}")]
    Invalid {
        /// The message's `type`.
        kind: String,
        /// What did not match.
        reason: String,
    },
}

#[derive(Deserialize)]
struct Typed {
    #[serde(rename = "type")]
    kind: String,
}

/// Decodes one text frame from Deepgram.
///
/// # Errors
/// The frame is not JSON, has no `type`, has a `type` this client does not
/// know, or lacks the fields its `type` needs.
pub fn decode(text: &str) -> Result<ServerMessage, DecodeError> {
    let Typed { kind } =
        serde_json::from_str(text).map_err(|e| DecodeError::Untyped(e.to_string()))?;
    let invalid = |e: serde_json::Error| DecodeError::Invalid {
        kind: kind.clone(),
        reason: e.to_string(),
    };
    match kind.as_str() {
        "Results" => serde_json::from_str(text)
            .map(ServerMessage::Results)
            .map_err(invalid),
        "UtteranceEnd" => serde_json::from_str(text)
            .map(ServerMessage::UtteranceEnd)
            .map_err(invalid),
        "SpeechStarted" => serde_json::from_str(text)
            .map(ServerMessage::SpeechStarted)
            .map_err(invalid),
        "Metadata" => serde_json::from_str(text)
            .map(ServerMessage::Metadata)
            .map_err(invalid),
        "Error" => serde_json::from_str(text)
            .map(ServerMessage::Error)
            .map_err(invalid),
        _ => Err(DecodeError::UnknownType(kind)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Frames as Deepgram sends them (nova-3, smart_format, interim_results).
    const INTERIM: &str = r#"{"type":"Results","channel_index":[0,1],"duration":1.02,"start":0.0,"is_final":false,"speech_final":false,"channel":{"alternatives":[{"transcript":"Hello there","confidence":0.9921875,"words":[{"word":"hello","start":0.08,"end":0.4,"confidence":0.99,"punctuated_word":"Hello"},{"word":"there","start":0.4,"end":0.8,"confidence":0.98,"punctuated_word":"there"}]}]},"metadata":{"request_id":"7c8e3e4d-57a1-4d5c-9f35-1c2b0d6d1f0e","model_info":{"name":"general-nova-3","version":"2025-01-28.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bfb1"},"from_finalize":false}"#;
    const FINAL_FROM_FINALIZE: &str = r#"{"type":"Results","channel_index":[0,1],"duration":1.3,"start":0.0,"is_final":true,"speech_final":false,"channel":{"alternatives":[{"transcript":"Hello there.","confidence":0.99,"words":[]}]},"metadata":{"request_id":"7c8e3e4d-57a1-4d5c-9f35-1c2b0d6d1f0e","model_info":{"name":"general-nova-3","version":"2025-01-28.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bfb1"},"from_finalize":true}"#;
    const EMPTY_FINAL: &str = r#"{"type":"Results","channel_index":[0,1],"duration":2.5,"start":1.3,"is_final":true,"speech_final":true,"channel":{"alternatives":[{"transcript":"","confidence":0.0,"words":[]}]},"metadata":{"request_id":"7c8e3e4d-57a1-4d5c-9f35-1c2b0d6d1f0e","model_info":{"name":"general-nova-3","version":"2025-01-28.0","arch":"nova-3"},"model_uuid":"40bd3654-e622-47c4-a111-63a61b23bfb1"},"from_finalize":false}"#;
    const UTTERANCE_END: &str = r#"{"type":"UtteranceEnd","channel":[0,1],"last_word_end":2.395}"#;
    const SPEECH_STARTED: &str = r#"{"type":"SpeechStarted","channel":[0,1],"timestamp":0.0}"#;
    const METADATA: &str = r#"{"type":"Metadata","transaction_key":"deprecated","request_id":"7c8e3e4d-57a1-4d5c-9f35-1c2b0d6d1f0e","sha256":"5324da68ede209a16ac69a38e8cd29cee4d754434a041166cda3a1f5e0b24566","created":"2025-03-14T10:21:07.021Z","duration":3.84,"channels":1,"models":["40bd3654-e622-47c4-a111-63a61b23bfb1"],"model_info":{"40bd3654-e622-47c4-a111-63a61b23bfb1":{"name":"general-nova-3","version":"2025-01-28.0","arch":"nova-3"}}}"#;
    const ERROR: &str = r#"{"type":"Error","description":"Failed to decode audio.","message":"DATA-0000","variant":"bad_data"}"#;

    #[test]
    fn decodes_interim_and_final_results() {
        let Ok(ServerMessage::Results(interim)) = decode(INTERIM) else {
            panic!("an interim Results");
        };
        assert!(!interim.is_final && !interim.from_finalize);
        assert_eq!(interim.transcript(), "Hello there");
        assert_eq!(interim.duration, 1.02);

        let Ok(ServerMessage::Results(flushed)) = decode(FINAL_FROM_FINALIZE) else {
            panic!("a final Results");
        };
        assert!(flushed.is_final && flushed.from_finalize && !flushed.speech_final);
        assert_eq!(flushed.transcript(), "Hello there.");

        let Ok(ServerMessage::Results(empty)) = decode(EMPTY_FINAL) else {
            panic!("an empty final Results");
        };
        assert!(empty.is_final && empty.speech_final);
        assert_eq!(empty.transcript(), "");
    }

    #[test]
    fn decodes_events_metadata_and_errors() {
        assert_eq!(
            decode(UTTERANCE_END),
            Ok(ServerMessage::UtteranceEnd(UtteranceEnd {
                last_word_end: 2.395
            }))
        );
        assert_eq!(
            decode(SPEECH_STARTED),
            Ok(ServerMessage::SpeechStarted(SpeechStarted {
                timestamp: 0.0
            }))
        );
        assert_eq!(
            decode(METADATA),
            Ok(ServerMessage::Metadata(Metadata {
                request_id: "7c8e3e4d-57a1-4d5c-9f35-1c2b0d6d1f0e".to_owned(),
                duration: 3.84
            }))
        );
        assert_eq!(
            decode(ERROR),
            Ok(ServerMessage::Error(VendorError {
                description: "Failed to decode audio.".to_owned(),
                message: "DATA-0000".to_owned()
            }))
        );
    }

    #[test]
    fn malformed_frames_are_errors_not_panics() {
        assert!(matches!(decode("not json"), Err(DecodeError::Untyped(_))));
        assert!(matches!(
            decode(r#"{"kind":"Results"}"#),
            Err(DecodeError::Untyped(_))
        ));
        assert!(matches!(decode("[1,2]"), Err(DecodeError::Untyped(_))));
        assert_eq!(
            decode(r#"{"type":"Mystery"}"#),
            Err(DecodeError::UnknownType("Mystery".to_owned()))
        );
        assert!(matches!(
            decode(r#"{"type":"Results","is_final":true}"#),
            Err(DecodeError::Invalid { kind, .. }) if kind == "Results"
        ));
        let no_alternatives = r#"{"type":"Results","is_final":true,"channel":{"alternatives":[]}}"#;
        let Ok(ServerMessage::Results(results)) = decode(no_alternatives) else {
            panic!("Results without alternatives still decode");
        };
        assert_eq!(results.transcript(), "");
    }

    #[test]
    fn the_url_asks_for_16_khz_linear16_with_interim_results() {
        let base = BaseUrl::parse("https://api.deepgram.com").expect("valid");
        assert_eq!(
            listen_url(&base, "nova-3"),
            "wss://api.deepgram.com/v1/listen?model=nova-3&encoding=linear16&sample_rate=16000\
             &channels=1&interim_results=true&endpointing=300&utterance_end_ms=1000\
             &vad_events=true&smart_format=true&punctuate=true"
        );
        let local = BaseUrl::parse("http://127.0.0.1:9000").expect("valid");
        assert!(
            listen_url(&local, "nova 2&x")
                .starts_with("ws://127.0.0.1:9000/v1/listen?model=nova+2%26x&encoding=linear16")
        );
    }

    #[test]
    fn audio_is_little_endian_pcm16() {
        assert_eq!(linear16(&[1, -2, 0x1234]), [1, 0, 0xFE, 0xFF, 0x34, 0x12]);
    }
}
