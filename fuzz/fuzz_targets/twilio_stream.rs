//! One Twilio media-stream connection fed a whole sequence of text frames.
//!
//! The input is split on `\n` into frames (Twilio frames are single-line
//! JSON; JSON whitespace inside a frame is covered by `twilio_parse`), and
//! frames that are not UTF-8 are skipped, as the WebSocket layer only hands
//! over text frames that are. Checks, per frame:
//! - `handle_text` never panics;
//! - a rejected frame leaves the stream's observable state unchanged;
//! - a frame that does not parse alone is rejected with the same error;
//! - accepted frames move the state only in the documented ways (ids are set
//!   once by `start`, counters move only for `media`, nothing is accepted
//!   after `stop`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_core::ids::{CallSid, StreamSid};
use voxgate_core::twilio::{StreamInput, TwilioStream, parse_inbound};
use voxgate_core::wire::WireError;

/// Caps the frames per input so one input cannot run for long.
const MAX_FRAMES: usize = 256;

#[derive(Debug, Clone, PartialEq)]
struct Observed {
    stream_sid: Option<StreamSid>,
    call_sid: Option<CallSid>,
    stopped: bool,
    frames: u64,
    bytes: u64,
}

fn observe(s: &TwilioStream) -> Observed {
    Observed {
        stream_sid: s.stream_sid().cloned(),
        call_sid: s.call_sid().cloned(),
        stopped: s.is_stopped(),
        frames: s.media_frames(),
        bytes: s.media_bytes(),
    }
}

fn check_error(err: &WireError) {
    assert!(WireError::KINDS.contains(&err.kind()), "{err:?}");
    assert!(err.to_string().starts_with("peer sent"), "{err}");
    assert_eq!(
        err.breaks_stream_rules(),
        matches!(err.kind(), "out_of_order" | "stream_sid"),
        "{err:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut stream = TwilioStream::new();
    for frame in data.split(|&b| b == b'\n').take(MAX_FRAMES) {
        let Ok(text) = std::str::from_utf8(frame) else {
            continue;
        };
        let before = observe(&stream);
        let parsed = parse_inbound(text);
        match stream.handle_text(text) {
            Err(err) => {
                check_error(&err);
                assert_eq!(
                    observe(&stream),
                    before,
                    "rejected frame changed the stream: {err:?}"
                );
                if let Err(parse_err) = parsed {
                    assert_eq!(err, parse_err, "parse error not passed through");
                } else {
                    // The frame parses alone, so only the stream's rules
                    // can have refused it.
                    assert!(err.breaks_stream_rules(), "{err:?}");
                }
            }
            Ok(input) => {
                assert!(
                    parsed.is_ok(),
                    "accepted a frame that does not parse: {parsed:?}"
                );
                assert!(!before.stopped, "accepted {input:?} after stop");
                let after = observe(&stream);
                if !matches!(input, StreamInput::Audio(_)) {
                    assert_eq!((after.frames, after.bytes), (before.frames, before.bytes));
                }
                if !matches!(input, StreamInput::Started(_)) {
                    assert_eq!(after.stream_sid, before.stream_sid);
                    assert_eq!(after.call_sid, before.call_sid);
                }
                assert_eq!(after.stopped, matches!(input, StreamInput::Stopped(_)));
                match &input {
                    StreamInput::Connected => {
                        assert_eq!(before, observe(&TwilioStream::new()), "connected not first");
                    }
                    // Unknown events change nothing observable (checked above).
                    StreamInput::Ignored { .. } => {}
                    StreamInput::Started(start) => {
                        assert_eq!(before.stream_sid, None, "second start accepted");
                        assert_eq!(after.stream_sid.as_ref(), Some(&start.stream_sid));
                        assert_eq!(after.call_sid.as_ref(), Some(&start.call_sid));
                        assert_eq!((after.frames, after.bytes), (before.frames, before.bytes));
                    }
                    StreamInput::Audio(media) => {
                        assert_eq!(after.stream_sid.as_ref(), Some(&media.stream_sid));
                        assert_eq!(after.frames, before.frames.saturating_add(1));
                        assert_eq!(
                            after.bytes,
                            before.bytes.saturating_add(media.payload.len() as u64)
                        );
                    }
                    StreamInput::MarkPlayed(mark) => {
                        assert_eq!(after.stream_sid.as_ref(), Some(&mark.stream_sid));
                    }
                    StreamInput::Dtmf(dtmf) => {
                        assert_eq!(after.stream_sid.as_ref(), Some(&dtmf.stream_sid));
                    }
                    StreamInput::Stopped(stop) => {
                        assert_eq!(after.stream_sid.as_ref(), Some(&stop.stream_sid));
                    }
                }
            }
        }
    }
});
