//! `twilio::parse_inbound` on one arbitrary UTF-8 frame.
//!
//! Never panics; parses the same way twice; every id it returns passes the
//! id rules; errors carry a known kind and a "peer sent" message. A parsed
//! `media` frame survives a round trip through `Outbound::Media::to_json`
//! (with the inbound-only fields put back) unchanged, payload bytes
//! included, and a parsed `mark` through `Outbound::Mark::to_json`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use voxgate_core::twilio::{Inbound, Media, Outbound, parse_inbound};
use voxgate_core::wire::WireError;

/// What `ids::check_id` promises about every id it lets through.
fn check_id(id: &str) {
    assert!(!id.is_empty() && id.len() <= 128, "{id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
}

fn roundtrip_media(m: &Media) {
    let out = Outbound::Media {
        stream_sid: &m.stream_sid,
        payload: &m.payload,
    }
    .to_json();
    let mut frame: Value = serde_json::from_str(&out).expect("Outbound::to_json is JSON");
    assert_eq!(frame["streamSid"].as_str(), Some(m.stream_sid.as_str()));
    // The outbound message has no track, chunk, timestamp or sequence
    // number; put the parsed ones back so the whole Media can be compared.
    frame["media"]["track"] = json!(m.track.as_str());
    frame["media"]["chunk"] = json!(m.chunk);
    frame["media"]["timestamp"] = json!(m.timestamp_ms.to_string());
    if let Some(seq) = m.sequence_number {
        frame["sequenceNumber"] = json!(seq.to_string());
    }
    let again = parse_inbound(&frame.to_string()).expect("re-encoded media parses");
    let Inbound::Media(again) = again else {
        panic!("re-encoded media parsed as {again:?}");
    };
    assert_eq!(again.payload, m.payload, "payload bytes changed");
    assert_eq!(&again, m);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_inbound(text);
    assert_eq!(parse_inbound(text), parsed, "parsing is not deterministic");
    match parsed {
        Err(err) => {
            assert!(WireError::KINDS.contains(&err.kind()), "{err:?}");
            assert!(err.to_string().starts_with("peer sent"), "{err}");
        }
        Ok(Inbound::Media(m)) => {
            check_id(m.stream_sid.as_str());
            roundtrip_media(&m);
        }
        Ok(Inbound::Mark(m)) => {
            check_id(m.stream_sid.as_str());
            let out = Outbound::Mark {
                stream_sid: &m.stream_sid,
                name: &m.name,
            }
            .to_json();
            let Ok(Inbound::Mark(again)) = parse_inbound(&out) else {
                panic!("re-encoded mark {out:?} did not parse as a mark");
            };
            assert_eq!((&again.stream_sid, &again.name), (&m.stream_sid, &m.name));
        }
        Ok(Inbound::Start(s)) => {
            check_id(s.stream_sid.as_str());
            check_id(s.call_sid.as_str());
            // Derived accessors must not panic on any parameter values.
            let _ = (s.from(), s.to(), s.persona());
            let clear = Outbound::Clear {
                stream_sid: &s.stream_sid,
            }
            .to_json();
            assert!(matches!(
                parse_inbound(&clear),
                Ok(Inbound::Unknown { ref event }) if event == "clear"
            ));
        }
        Ok(Inbound::Dtmf(d)) => check_id(d.stream_sid.as_str()),
        Ok(Inbound::Stop(s)) => {
            check_id(s.stream_sid.as_str());
            if let Some(call) = &s.call_sid {
                check_id(call.as_str());
            }
        }
        Ok(Inbound::Connected { .. } | Inbound::Unknown { .. }) => {}
        // `Inbound` is #[non_exhaustive]: new events need their own checks.
        Ok(_) => {}
    }
});
