//! Property tests for the Twilio codec: untrusted text never panics, a
//! rejected frame never changes the stream, and what we encode parses back.

use proptest::prelude::*;
use serde_json::{Map, Value};
use voxgate_core::ids::StreamSid;
use voxgate_core::twilio::{Inbound, Outbound, StreamInput, TwilioStream, parse_inbound};

/// Keys the codec looks for, so generated objects reach deep into the parser.
const KEYS: &[&str] = &[
    "event",
    "streamSid",
    "sequenceNumber",
    "protocol",
    "version",
    "start",
    "media",
    "mark",
    "dtmf",
    "stop",
    "accountSid",
    "callSid",
    "tracks",
    "customParameters",
    "mediaFormat",
    "encoding",
    "sampleRate",
    "channels",
    "track",
    "chunk",
    "timestamp",
    "payload",
    "name",
    "digit",
    "from",
    "to",
    "persona",
];

const EVENTS: &[&str] = &[
    "connected",
    "start",
    "media",
    "mark",
    "dtmf",
    "stop",
    "clear",
    "other",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f)
            .map(Value::Number)),
        "[0-9]{0,25}".prop_map(Value::from),
        "[A-Za-z0-9+/=]{0,16}".prop_map(Value::from),
        prop::sample::select(&["MZ1", "MZ2", "CA1", "", "inbound", "inbound_track"][..])
            .prop_map(Value::from),
        any::<String>().prop_map(Value::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
        1 => "[a-zA-Z]{1,6}",
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A JSON object whose `event` is one the codec knows (or a stranger), with
/// mostly the right stream id and arbitrary other fields.
fn frame() -> impl Strategy<Value = String> {
    (
        prop::sample::select(EVENTS),
        prop::option::weighted(0.8, prop::sample::select(&["MZ1", "MZ2", ""][..])),
        prop::collection::btree_map(key(), value(), 0..6),
    )
        .prop_map(|(event, sid, fields)| {
            let mut obj: Map<String, Value> = fields.into_iter().collect();
            obj.insert("event".into(), event.into());
            if let Some(sid) = sid {
                obj.insert("streamSid".into(), sid.into());
            }
            Value::Object(obj).to_string()
        })
}

/// Real frames, so that sequences actually get past `start`.
fn valid_frame() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#"{"event":"connected","protocol":"Call","version":"1.0.0"}"#.to_owned(),
        r#"{"event":"start","streamSid":"MZ1","start":{"accountSid":"AC1","callSid":"CA1","tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"from":"+14155550100"}}}"#.to_owned(),
        r#"{"event":"media","streamSid":"MZ1","sequenceNumber":"2","media":{"track":"inbound","chunk":"1","timestamp":"0","payload":"//////////8="}}"#.to_owned(),
        r#"{"event":"mark","streamSid":"MZ1","mark":{"name":"m1"}}"#.to_owned(),
        r#"{"event":"dtmf","streamSid":"MZ1","dtmf":{"track":"inbound_track","digit":"5"}}"#.to_owned(),
        r#"{"event":"stop","streamSid":"MZ1","stop":{"accountSid":"AC1","callSid":"CA1"}}"#.to_owned(),
    ])
}

/// A valid frame cut short or with one character changed.
fn damaged_frame() -> impl Strategy<Value = String> {
    (
        valid_frame(),
        any::<prop::sample::Index>(),
        any::<char>(),
        any::<bool>(),
    )
        .prop_map(|(frame, at, c, truncate)| {
            let chars: Vec<char> = frame.chars().collect();
            let i = at.index(chars.len());
            if truncate {
                chars[..i].iter().collect()
            } else {
                let mut chars = chars;
                chars[i] = c;
                chars.into_iter().collect()
            }
        })
}

fn any_frame() -> impl Strategy<Value = String> {
    prop_oneof![
        frame(),
        valid_frame(),
        damaged_frame(),
        any::<String>(),
        "[{}\\[\\]\":,0-9a-zA-Z ]{0,40}",
    ]
}

type Observed = (Option<StreamSid>, bool, u64, u64);

fn observe(s: &TwilioStream) -> Observed {
    (
        s.stream_sid().cloned(),
        s.is_stopped(),
        s.media_frames(),
        s.media_bytes(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_never_panics_on_any_string(text in any::<String>()) {
        let _ = parse_inbound(&text);
        let _ = TwilioStream::new().handle_text(&text);
    }

    #[test]
    fn parse_never_panics_on_event_objects(text in frame()) {
        let _ = parse_inbound(&text);
        let mut s = TwilioStream::new();
        let _ = s.handle_text(&text);
    }

    #[test]
    fn stream_invariants_hold_over_any_sequence(
        frames in prop::collection::vec(any_frame(), 0..16),
    ) {
        let mut s = TwilioStream::new();
        for text in &frames {
            let before = observe(&s);
            match s.handle_text(text) {
                Err(_) => prop_assert_eq!(observe(&s), before),
                Ok(input) => {
                    let after = observe(&s);
                    // Once known, the stream id never changes, and stop is final.
                    if before.0.is_some() {
                        prop_assert_eq!(&after.0, &before.0);
                    }
                    prop_assert!(!before.1, "accepted {:?} after stop", input);
                    match input {
                        StreamInput::Audio(m) => {
                            prop_assert_eq!(after.2, before.2 + 1);
                            prop_assert_eq!(after.3, before.3 + m.payload.len() as u64);
                            prop_assert_eq!(Some(&m.stream_sid), after.0.as_ref());
                        }
                        StreamInput::Stopped(_) => prop_assert!(after.1),
                        _ => prop_assert_eq!((after.2, after.3), (before.2, before.3)),
                    }
                }
            }
        }
    }

    #[test]
    fn media_payload_round_trips(
        payload in prop::collection::vec(any::<u8>(), 0..2048),
        sid in "[!-~]{1,40}",
        chunk in any::<u64>(),
        timestamp in any::<u64>(),
    ) {
        let sid = StreamSid::new(sid).expect("printable ASCII is a valid id");
        let sent = Outbound::Media { stream_sid: &sid, payload: &payload }.to_json();

        // Turn our outbound frame into what Twilio would send inbound: the
        // same shape plus the fields only the inbound direction carries.
        let mut v: Value = serde_json::from_str(&sent).expect("outbound media is JSON");
        v["sequenceNumber"] = chunk.to_string().into();
        v["media"]["track"] = "inbound".into();
        v["media"]["chunk"] = chunk.to_string().into();
        v["media"]["timestamp"] = timestamp.into();

        match parse_inbound(&v.to_string()) {
            Ok(Inbound::Media(m)) => {
                prop_assert_eq!(m.payload, payload);
                prop_assert_eq!(m.stream_sid, sid);
                prop_assert_eq!((m.chunk, m.timestamp_ms), (chunk, timestamp));
                prop_assert_eq!(m.sequence_number, Some(chunk));
            }
            other => prop_assert!(false, "expected Media, got {:?}", other),
        }
    }

    #[test]
    fn mark_name_round_trips(name in any::<String>(), sid in "[!-~]{1,40}") {
        let sid = StreamSid::new(sid).expect("printable ASCII is a valid id");
        let sent = Outbound::Mark { stream_sid: &sid, name: &name }.to_json();
        match parse_inbound(&sent) {
            Ok(Inbound::Mark(m)) => {
                prop_assert_eq!(m.name, name);
                prop_assert_eq!(m.stream_sid, sid);
            }
            other => prop_assert!(false, "expected Mark, got {:?}", other),
        }
    }
}
