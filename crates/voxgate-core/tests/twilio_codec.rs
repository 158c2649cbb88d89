//! Twilio Media Streams codec and stream state, against frames written from
//! the protocol reference (docs/protocols.md §1) with realistic SIDs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use voxgate_core::ids::{CallSid, StreamSid};
use voxgate_core::twilio::{
    Inbound, MediaFormat, Outbound, StreamInput, Track, TwilioStream, parse_inbound,
};
use voxgate_core::wire::WireError;

const ACCOUNT: &str = "AC5f7a0b3c9d2e4f6a8b1c3d5e7f9a0b2c";
const CALL: &str = "CA8e4a1f0b7c6d5e4f3a2b1c0d9e8f7a6b";
const STREAM: &str = "MZ1b2c3d4e5f60718293a4b5c6d7e8f9a0";
const OTHER_STREAM: &str = "MZ00000000000000000000000000000000";

fn sid(s: &str) -> StreamSid {
    StreamSid::new(s).expect("valid stream sid")
}

/// 20 ms of 8 kHz μ-law: 160 bytes, a ramp so each frame differs.
fn ulaw_frame(n: u8) -> Vec<u8> {
    (0..160u16).map(|i| (i as u8).wrapping_add(n)).collect()
}

fn connected() -> String {
    r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned()
}

fn start() -> String {
    format!(
        r#"{{"event":"start","sequenceNumber":"1","start":{{"accountSid":"{ACCOUNT}","streamSid":"{STREAM}","callSid":"{CALL}","tracks":["inbound"],"mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"from":"+1 (415) 555-0100","to":"415.555.0199","persona":"front-desk"}}}},"streamSid":"{STREAM}"}}"#
    )
}

fn media(seq: u64, chunk: u64, payload: &[u8]) -> String {
    let ts = (chunk - 1) * 20;
    let b64 = STANDARD.encode(payload);
    format!(
        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{chunk}","timestamp":"{ts}","payload":"{b64}"}},"streamSid":"{STREAM}"}}"#
    )
}

fn mark(seq: u64, name: &str) -> String {
    format!(
        r#"{{"event":"mark","sequenceNumber":"{seq}","streamSid":"{STREAM}","mark":{{"name":"{name}"}}}}"#
    )
}

fn dtmf(seq: u64, digit: &str) -> String {
    format!(
        r#"{{"event":"dtmf","streamSid":"{STREAM}","sequenceNumber":"{seq}","dtmf":{{"track":"inbound_track","digit":"{digit}"}}}}"#
    )
}

fn stop(seq: u64) -> String {
    format!(
        r#"{{"event":"stop","sequenceNumber":"{seq}","streamSid":"{STREAM}","stop":{{"accountSid":"{ACCOUNT}","callSid":"{CALL}"}}}}"#
    )
}

fn started() -> TwilioStream {
    let mut s = TwilioStream::new();
    s.handle_text(&connected()).expect("connected");
    s.handle_text(&start()).expect("start");
    s
}

#[derive(Debug, PartialEq)]
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

/// Feeds a frame that must fail, and checks the stream did not change.
fn reject(s: &mut TwilioStream, frame: &str) -> WireError {
    let before = observe(s);
    let err = s.handle_text(frame).expect_err("frame must be rejected");
    assert_eq!(observe(s), before, "a rejected frame changed the stream");
    err
}

// --- a whole call ---------------------------------------------------------

#[test]
fn full_call_sequence() {
    let mut s = TwilioStream::new();
    assert_eq!(s.stream_sid(), None);
    assert_eq!(s.handle_text(&connected()), Ok(StreamInput::Connected));

    let StreamInput::Started(st) = s.handle_text(&start()).expect("start") else {
        panic!("expected Started");
    };
    assert_eq!(st.call_sid.as_str(), CALL);
    assert_eq!(s.stream_sid(), Some(&sid(STREAM)));
    assert_eq!(s.call_sid().map(CallSid::as_str), Some(CALL));

    let mut seq = 2;
    for chunk in 1..=50u64 {
        let payload = ulaw_frame(chunk as u8);
        let input = s.handle_text(&media(seq, chunk, &payload)).expect("media");
        let StreamInput::Audio(m) = input else {
            panic!("expected Audio, got {input:?}");
        };
        assert_eq!(m.chunk, chunk);
        assert_eq!(m.timestamp_ms, (chunk - 1) * 20);
        assert_eq!(m.sequence_number, Some(seq));
        assert_eq!(m.payload, payload);
        seq += 1;
    }
    assert_eq!(s.media_frames(), 50);
    assert_eq!(s.media_bytes(), 50 * 160);

    let input = s.handle_text(&mark(seq, "resp-1-part-3")).expect("mark");
    let StreamInput::MarkPlayed(m) = input else {
        panic!("expected MarkPlayed, got {input:?}");
    };
    assert_eq!(m.name, "resp-1-part-3");
    seq += 1;

    let input = s.handle_text(&dtmf(seq, "#")).expect("dtmf");
    let StreamInput::Dtmf(d) = input else {
        panic!("expected Dtmf, got {input:?}");
    };
    assert_eq!((d.digit.as_str(), &d.track), ("#", &Track::Inbound));
    seq += 1;

    let input = s.handle_text(&stop(seq)).expect("stop");
    let StreamInput::Stopped(st) = input else {
        panic!("expected Stopped, got {input:?}");
    };
    assert_eq!(st.call_sid.as_ref().map(CallSid::as_str), Some(CALL));
    assert!(s.is_stopped());
    // The ids stay readable for the call record after the stream ends.
    assert_eq!(s.stream_sid(), Some(&sid(STREAM)));
    assert_eq!(s.call_sid().map(CallSid::as_str), Some(CALL));
}

#[test]
fn connected_is_optional() {
    let mut s = TwilioStream::new();
    assert!(matches!(
        s.handle_text(&start()),
        Ok(StreamInput::Started(_))
    ));
    assert!(matches!(
        s.handle_text(&media(2, 1, &ulaw_frame(0))),
        Ok(StreamInput::Audio(_))
    ));
}

// --- each inbound event -----------------------------------------------------

#[test]
fn parses_connected() {
    assert_eq!(
        parse_inbound(&connected()),
        Ok(Inbound::Connected {
            protocol: Some("Call".into()),
            version: Some("1.0.0".into()),
        })
    );
    assert_eq!(
        parse_inbound(r#"{"event":"connected"}"#),
        Ok(Inbound::Connected {
            protocol: None,
            version: None,
        })
    );
}

#[test]
fn parses_start() {
    let Ok(Inbound::Start(st)) = parse_inbound(&start()) else {
        panic!("expected Start");
    };
    assert_eq!(st.stream_sid, sid(STREAM));
    assert_eq!(st.call_sid.as_str(), CALL);
    assert_eq!(st.account_sid, ACCOUNT);
    assert_eq!(st.tracks, vec!["inbound".to_owned()]);
    assert_eq!(
        st.media_format,
        MediaFormat {
            encoding: "audio/x-mulaw".into(),
            sample_rate: 8000,
            channels: 1,
        }
    );
    assert_eq!(st.sequence_number, Some(1));
    assert_eq!(st.custom_parameters.len(), 3);
    assert_eq!(st.persona(), Some("front-desk"));
}

#[test]
fn start_from_and_to_are_e164() {
    let Ok(Inbound::Start(st)) = parse_inbound(&start()) else {
        panic!("expected Start");
    };
    assert_eq!(st.from().as_deref(), Some("+14155550100"));
    assert_eq!(st.to().as_deref(), Some("+14155550199"));

    // Non-phone parties are kept as they came; absent ones are None.
    let frame = format!(
        r#"{{"event":"start","streamSid":"{STREAM}","start":{{"accountSid":"{ACCOUNT}","callSid":"{CALL}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{{"from":" client:alice "}}}}}}"#
    );
    let Ok(Inbound::Start(st)) = parse_inbound(&frame) else {
        panic!("expected Start");
    };
    assert_eq!(st.from().as_deref(), Some("client:alice"));
    assert_eq!(st.to(), None);
    assert_eq!(st.persona(), None);
    assert!(st.tracks.is_empty());
    assert_eq!(st.sequence_number, None);
}

#[test]
fn start_custom_parameters_stringify_scalars_and_reject_the_rest() {
    let with = |params: &str| {
        format!(
            r#"{{"event":"start","streamSid":"{STREAM}","start":{{"accountSid":"{ACCOUNT}","callSid":"{CALL}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}},"customParameters":{params}}}}}"#
        )
    };
    let Ok(Inbound::Start(st)) = parse_inbound(&with(r#"{"n":42,"b":true,"s":"x"}"#)) else {
        panic!("expected Start");
    };
    let want: BTreeMap<String, String> = [("b", "true"), ("n", "42"), ("s", "x")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(st.custom_parameters, want);

    for bad in [
        r#"{"a":[1]}"#,
        r#"{"a":{"b":"c"}}"#,
        r#"{"a":null}"#,
        r#"["a"]"#,
    ] {
        let err = parse_inbound(&with(bad)).expect_err(bad);
        assert_eq!(err.kind(), "field", "{bad}: {err}");
    }
}

#[test]
fn start_stream_sid_inside_start_is_enough_but_must_agree() {
    let inner_only = format!(
        r#"{{"event":"start","start":{{"streamSid":"{STREAM}","accountSid":"{ACCOUNT}","callSid":"{CALL}","mediaFormat":{{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}}}}"#
    );
    let Ok(Inbound::Start(st)) = parse_inbound(&inner_only) else {
        panic!("expected Start");
    };
    assert_eq!(st.stream_sid, sid(STREAM));

    let disagree = start().replacen(
        &format!(r#""streamSid":"{STREAM}","callSid""#),
        &format!(r#""streamSid":"{OTHER_STREAM}","callSid""#),
        1,
    );
    assert_eq!(
        parse_inbound(&disagree),
        Err(WireError::StreamMismatch {
            expected: sid(STREAM),
            got: sid(OTHER_STREAM),
        })
    );
}

#[test]
fn parses_media() {
    let payload = ulaw_frame(7);
    let Ok(Inbound::Media(m)) = parse_inbound(&media(9, 8, &payload)) else {
        panic!("expected Media");
    };
    assert_eq!(m.stream_sid, sid(STREAM));
    assert_eq!(m.sequence_number, Some(9));
    assert_eq!(m.track, Track::Inbound);
    assert_eq!((m.chunk, m.timestamp_ms), (8, 140));
    assert_eq!(m.payload.len(), 160);
    assert_eq!(m.payload, payload);
}

#[test]
fn media_tracks() {
    let frame = |track: &str| {
        format!(
            r#"{{"event":"media","streamSid":"{STREAM}","media":{{"track":"{track}","chunk":"1","timestamp":"0","payload":""}}}}"#
        )
    };
    let track = |t: &str| match parse_inbound(&frame(t)) {
        Ok(Inbound::Media(m)) => m.track,
        other => panic!("expected Media, got {other:?}"),
    };
    assert_eq!(track("inbound"), Track::Inbound);
    assert_eq!(track("outbound"), Track::Outbound);
    assert_eq!(track("outbound_track"), Track::Outbound);
    assert_eq!(track("both"), Track::Other("both".into()));
    assert_eq!(Track::Other("both".into()).as_str(), "both");
}

#[test]
fn media_payload_may_omit_padding() {
    let frame = format!(
        r#"{{"event":"media","streamSid":"{STREAM}","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"/38"}}}}"#
    );
    let Ok(Inbound::Media(m)) = parse_inbound(&frame) else {
        panic!("expected Media");
    };
    assert_eq!(m.payload, vec![0xff, 0x7f]);
}

#[test]
fn parses_mark_dtmf_and_stop() {
    assert!(matches!(
        parse_inbound(&mark(4, "m42")),
        Ok(Inbound::Mark(m)) if m.name == "m42" && m.sequence_number == Some(4) && m.stream_sid == sid(STREAM)
    ));
    assert!(matches!(
        parse_inbound(&dtmf(5, "7")),
        Ok(Inbound::Dtmf(d)) if d.digit == "7" && d.track == Track::Inbound && d.sequence_number == Some(5)
    ));
    let Ok(Inbound::Stop(st)) = parse_inbound(&stop(6)) else {
        panic!("expected Stop");
    };
    assert_eq!(st.stream_sid, sid(STREAM));
    assert_eq!(st.call_sid.as_ref().map(CallSid::as_str), Some(CALL));
    assert_eq!(st.account_sid.as_deref(), Some(ACCOUNT));
    assert_eq!(st.sequence_number, Some(6));

    // A sparse stop still ends the stream.
    let sparse = format!(r#"{{"event":"stop","streamSid":"{STREAM}"}}"#);
    let Ok(Inbound::Stop(st)) = parse_inbound(&sparse) else {
        panic!("expected Stop");
    };
    assert_eq!(
        (st.call_sid, st.account_sid, st.sequence_number),
        (None, None, None)
    );
}

// --- leniency ---------------------------------------------------------------

#[test]
fn numbers_may_be_strings_or_json_numbers() {
    let frame = |seq: &str, chunk: &str, ts: &str| {
        format!(
            r#"{{"event":"media","sequenceNumber":{seq},"streamSid":"{STREAM}","media":{{"track":"inbound","chunk":{chunk},"timestamp":{ts},"payload":"AAA="}}}}"#
        )
    };
    for (seq, chunk, ts) in [
        (r#""3""#, r#""2""#, r#""20""#),
        ("3", "2", "20"),
        (r#""3""#, "2", r#""20""#),
        ("null", "2", "20"),
    ] {
        let Ok(Inbound::Media(m)) = parse_inbound(&frame(seq, chunk, ts)) else {
            panic!("expected Media for {seq} {chunk} {ts}");
        };
        assert_eq!((m.chunk, m.timestamp_ms), (2, 20));
        assert_eq!(m.sequence_number, (seq != "null").then_some(3));
    }

    let string_format = start()
        .replace(r#""sampleRate":8000"#, r#""sampleRate":"16000""#)
        .replace(r#""channels":1"#, r#""channels":"2""#);
    let Ok(Inbound::Start(st)) = parse_inbound(&string_format) else {
        panic!("expected Start");
    };
    assert_eq!(
        (st.media_format.sample_rate, st.media_format.channels),
        (16000, 2)
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let frame = format!(
        r#"{{"event":"media","extra":{{"deep":[1,2,3]}},"sequenceNumber":"2","streamSid":"{STREAM}","media":{{"track":"inbound","chunk":"1","timestamp":"0","payload":"AAA=","codec":"PCMU"}},"x":null}}"#
    );
    assert!(matches!(parse_inbound(&frame), Ok(Inbound::Media(_))));
    let frame = connected().replace(r#""version""#, r#""new":true,"version""#);
    assert!(matches!(
        parse_inbound(&frame),
        Ok(Inbound::Connected { .. })
    ));
}

#[test]
fn unknown_events_are_ignored_not_fatal() {
    let frame = format!(r#"{{"event":"transcription","streamSid":"{STREAM}","text":"hi"}}"#);
    assert_eq!(
        parse_inbound(&frame),
        Ok(Inbound::Unknown {
            event: "transcription".into()
        })
    );

    let mut s = started();
    let before = observe(&s);
    assert_eq!(
        s.handle_text(&frame),
        Ok(StreamInput::Ignored {
            event: "transcription".into()
        })
    );
    assert_eq!(observe(&s), before);
    assert!(matches!(
        s.handle_text(&media(2, 1, &ulaw_frame(1))),
        Ok(StreamInput::Audio(_))
    ));
}

// --- errors -------------------------------------------------------------------

#[test]
fn not_json_keeps_serde_position() {
    for frame in ["", "hello", "{\"event\":", "[1,2]", "\"media\"", "42"] {
        let err = parse_inbound(frame).expect_err(frame);
        assert_eq!(err.kind(), "json", "{frame:?}");
        let WireError::Json(msg) = &err else {
            panic!("expected Json for {frame:?}, got {err:?}");
        };
        assert!(msg.contains("line 1 column"), "{msg}");
        assert!(err.to_string().starts_with("peer sent"));
    }
}

#[test]
fn missing_or_wrong_event() {
    assert_eq!(
        parse_inbound(r#"{"streamSid":"MZ1"}"#),
        Err(WireError::MissingField { field: "event" })
    );
    assert!(matches!(
        parse_inbound(r#"{"event":7}"#),
        Err(WireError::WrongType { field: "event", .. })
    ));
}

#[test]
fn missing_stream_sid() {
    let frame = media(2, 1, &ulaw_frame(0)).replace(&format!(r#","streamSid":"{STREAM}""#), "");
    let err = parse_inbound(&frame).expect_err("no streamSid");
    assert_eq!(err, WireError::MissingField { field: "streamSid" });
    assert_eq!(err.kind(), "field");
    assert_eq!(err.to_string(), "peer sent a frame without `streamSid`");
}

#[test]
fn bad_stream_sid() {
    let frame = media(2, 1, &ulaw_frame(0)).replace(STREAM, "MZ 1");
    assert!(matches!(
        parse_inbound(&frame),
        Err(WireError::Id {
            field: "streamSid",
            ..
        })
    ));
    let frame = start().replace(CALL, "");
    let err = parse_inbound(&frame).expect_err("empty callSid");
    assert!(matches!(
        err,
        WireError::Id {
            field: "start.callSid",
            ..
        }
    ));
    assert_eq!(err.kind(), "field");
}

#[test]
fn wrong_typed_chunk() {
    let frame = media(2, 1, &ulaw_frame(0)).replace(r#""chunk":"1""#, r#""chunk":true"#);
    let err = parse_inbound(&frame).expect_err("bool chunk");
    assert!(matches!(
        err,
        WireError::WrongType {
            field: "media.chunk",
            ..
        }
    ));
    assert_eq!(err.kind(), "field");

    for bad in [
        r#""1a""#,
        r#""""#,
        r#"" 1""#,
        r#""-1""#,
        r#""+1""#,
        r#""99999999999999999999999""#,
    ] {
        let frame =
            media(2, 1, &ulaw_frame(0)).replace(r#""chunk":"1""#, &format!(r#""chunk":{bad}"#));
        assert_eq!(
            parse_inbound(&frame),
            Err(WireError::Number {
                field: "media.chunk"
            }),
            "{bad}"
        );
    }
    for bad in ["-1", "1.5", "1e3"] {
        let frame =
            media(2, 1, &ulaw_frame(0)).replace(r#""chunk":"1""#, &format!(r#""chunk":{bad}"#));
        assert!(
            matches!(
                parse_inbound(&frame),
                Err(WireError::WrongType {
                    field: "media.chunk",
                    ..
                })
            ),
            "{bad}"
        );
    }
}

#[test]
fn out_of_range_media_format() {
    let frame = start().replace(r#""channels":1"#, r#""channels":70000"#);
    assert_eq!(
        parse_inbound(&frame),
        Err(WireError::Number {
            field: "start.mediaFormat.channels"
        })
    );
    let frame = start().replace(
        r#","mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}"#,
        "",
    );
    assert_eq!(
        parse_inbound(&frame),
        Err(WireError::MissingField {
            field: "start.mediaFormat"
        })
    );
}

#[test]
fn invalid_base64() {
    let frame = media(2, 1, &ulaw_frame(0));
    let b64 = STANDARD.encode(ulaw_frame(0));
    for bad in ["!!!!", "AAA=AAA=", "A", "AA=A"] {
        let err = parse_inbound(&frame.replace(&b64, bad)).expect_err(bad);
        assert_eq!(
            err,
            WireError::Base64 {
                field: "media.payload"
            }
        );
        assert_eq!(err.kind(), "base64");
    }
}

#[test]
fn media_before_start() {
    let mut s = TwilioStream::new();
    s.handle_text(&connected()).expect("connected");
    let err = reject(&mut s, &media(2, 1, &ulaw_frame(0)));
    assert_eq!(
        err,
        WireError::OutOfOrder {
            event: "media".into(),
            problem: "before `start`"
        }
    );
    assert!(err.breaks_stream_rules());
    assert_eq!(err.kind(), "out_of_order");
    assert_eq!(err.to_string(), "peer sent `media` before `start`");
    for frame in [mark(2, "m"), dtmf(2, "1"), stop(2)] {
        assert!(reject(&mut s, &frame).breaks_stream_rules(), "{frame}");
    }
}

#[test]
fn second_start() {
    let mut s = started();
    let err = reject(&mut s, &start());
    assert!(err.breaks_stream_rules());
    assert!(matches!(&err, WireError::OutOfOrder { event, .. } if event == "start"));
}

#[test]
fn connected_only_first() {
    let mut s = started();
    assert!(reject(&mut s, &connected()).breaks_stream_rules());

    let mut s = TwilioStream::new();
    s.handle_text(&connected()).expect("connected");
    assert!(reject(&mut s, &connected()).breaks_stream_rules());
}

#[test]
fn anything_after_stop() {
    let mut s = started();
    s.handle_text(&stop(3)).expect("stop");
    let unknown = format!(r#"{{"event":"later","streamSid":"{STREAM}"}}"#);
    for frame in [
        media(4, 1, &ulaw_frame(0)),
        mark(4, "m"),
        dtmf(4, "1"),
        stop(4),
        start(),
        connected(),
        unknown,
    ] {
        let err = reject(&mut s, &frame);
        assert!(err.breaks_stream_rules(), "{frame}: {err:?}");
        assert!(err.to_string().ends_with("after `stop`"), "{err}");
    }
    // A malformed frame still reports what is wrong with it.
    assert_eq!(reject(&mut s, "not json").kind(), "json");
}

#[test]
fn mismatched_stream_sid() {
    let mut s = started();
    for frame in [
        media(2, 1, &ulaw_frame(0)),
        mark(2, "m"),
        dtmf(2, "1"),
        stop(2),
    ] {
        let err = reject(&mut s, &frame.replace(STREAM, OTHER_STREAM));
        assert_eq!(
            err,
            WireError::StreamMismatch {
                expected: sid(STREAM),
                got: sid(OTHER_STREAM),
            }
        );
        assert_eq!(err.kind(), "stream_sid");
        assert!(err.breaks_stream_rules());
    }
    assert!(!s.is_stopped());
}

#[test]
fn errors_leave_the_stream_usable() {
    let mut s = started();
    s.handle_text(&media(2, 1, &ulaw_frame(0))).expect("media");
    reject(&mut s, "garbage");
    reject(
        &mut s,
        &media(3, 2, &ulaw_frame(0)).replace(r#""chunk":"2""#, r#""chunk":{}"#),
    );
    assert!(matches!(
        s.handle_text(&media(4, 3, &ulaw_frame(0))),
        Ok(StreamInput::Audio(_))
    ));
    assert_eq!((s.media_frames(), s.media_bytes()), (2, 320));
}

// --- outbound -----------------------------------------------------------------

#[test]
fn outbound_exact_json() {
    let sid = sid(STREAM);
    let media = Outbound::Media {
        stream_sid: &sid,
        payload: &[0xff, 0x7f, 0x00],
    };
    assert_eq!(
        media.to_json(),
        format!(r#"{{"event":"media","streamSid":"{STREAM}","media":{{"payload":"/38A"}}}}"#)
    );
    let mark = Outbound::Mark {
        stream_sid: &sid,
        name: "m42",
    };
    assert_eq!(
        mark.to_json(),
        format!(r#"{{"event":"mark","streamSid":"{STREAM}","mark":{{"name":"m42"}}}}"#)
    );
    let clear = Outbound::Clear { stream_sid: &sid };
    assert_eq!(
        clear.to_json(),
        format!(r#"{{"event":"clear","streamSid":"{STREAM}"}}"#)
    );

    assert!(!media.is_control());
    assert!(mark.is_control());
    assert!(clear.is_control());
}

#[test]
fn outbound_round_trips_through_serde_json() {
    let odd_sid = StreamSid::new(r#"MZ"quoted\back"#).expect("printable ASCII is allowed");
    let payload = ulaw_frame(3);
    let name = "naïve \"mark\"\n\u{1}";

    let v: serde_json::Value = serde_json::from_str(
        &Outbound::Media {
            stream_sid: &odd_sid,
            payload: &payload,
        }
        .to_json(),
    )
    .expect("media is JSON");
    assert_eq!(v["event"], "media");
    assert_eq!(v["streamSid"], odd_sid.as_str());
    let b64 = v["media"]["payload"].as_str().expect("payload string");
    assert_eq!(STANDARD.decode(b64).expect("base64"), payload);

    let v: serde_json::Value = serde_json::from_str(
        &Outbound::Mark {
            stream_sid: &odd_sid,
            name,
        }
        .to_json(),
    )
    .expect("mark is JSON");
    assert_eq!(
        v,
        serde_json::json!({"event": "mark", "streamSid": odd_sid.as_str(), "mark": {"name": name}})
    );

    let v: serde_json::Value = serde_json::from_str(
        &Outbound::Clear {
            stream_sid: &odd_sid,
        }
        .to_json(),
    )
    .expect("clear is JSON");
    assert_eq!(
        v,
        serde_json::json!({"event": "clear", "streamSid": odd_sid.as_str()})
    );
}

#[test]
fn echoed_mark_parses_back() {
    // Twilio echoes our mark with the same name; the codec must agree with
    // itself on escaping.
    let sid = sid(STREAM);
    let name = "resp \"7\" \\ part 2";
    let sent: serde_json::Value = serde_json::from_str(
        &Outbound::Mark {
            stream_sid: &sid,
            name,
        }
        .to_json(),
    )
    .expect("mark is JSON");
    let mut echo = sent;
    echo["sequenceNumber"] = "12".into();
    let Ok(Inbound::Mark(m)) = parse_inbound(&echo.to_string()) else {
        panic!("expected Mark");
    };
    assert_eq!(m.name, name);
}
