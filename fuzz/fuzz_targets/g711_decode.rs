//! G.711 decoding of carrier payloads: `audio::g711::ulaw_decode_into` (what
//! every Twilio `media` payload goes through) and `alaw_decode_into`.
//!
//! Never panics; appends exactly one sample per byte after what the buffer
//! already held; agrees with the per-byte decoders; and every code re-encodes
//! to itself, except μ-law's negative zero (0x7F), which decodes to 0 like
//! positive zero (0xFF). The input is also read as PCM16 and encoded, to
//! check that encode → decode → encode is stable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_core::audio::g711::{
    alaw_decode, alaw_decode_into, alaw_encode, alaw_encode_into, ulaw_decode, ulaw_decode_into,
    ulaw_encode, ulaw_encode_into,
};

/// Samples already in the caller's buffer, which decoding must keep.
const PREFIX: [i16; 3] = [i16::MIN, 0, i16::MAX];

fuzz_target!(|data: &[u8]| {
    let mut out = PREFIX.to_vec();
    ulaw_decode_into(data, &mut out);
    assert_eq!(out.len(), PREFIX.len() + data.len());
    assert_eq!(out[..PREFIX.len()], PREFIX);
    for (&byte, &sample) in data.iter().zip(&out[PREFIX.len()..]) {
        assert_eq!(sample, ulaw_decode(byte));
        let expected = if byte == 0x7F { 0xFF } else { byte };
        assert_eq!(
            ulaw_encode(sample),
            expected,
            "μ-law {byte:#04x} -> {sample}"
        );
    }

    let mut out = PREFIX.to_vec();
    alaw_decode_into(data, &mut out);
    assert_eq!(out.len(), PREFIX.len() + data.len());
    assert_eq!(out[..PREFIX.len()], PREFIX);
    for (&byte, &sample) in data.iter().zip(&out[PREFIX.len()..]) {
        assert_eq!(sample, alaw_decode(byte));
        assert_eq!(alaw_encode(sample), byte, "A-law {byte:#04x} -> {sample}");
    }

    // The same bytes as PCM16: encoding is a quantiser, so a second pass
    // through decode and encode must not move any code (bar μ-law -0).
    let samples: Vec<i16> = data
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    let mut codes = Vec::new();
    ulaw_encode_into(&samples, &mut codes);
    assert_eq!(codes.len(), samples.len());
    for &code in &codes {
        let again = ulaw_encode(ulaw_decode(code));
        assert!(
            again == code || (code == 0x7F && again == 0xFF),
            "μ-law {code:#04x}"
        );
    }
    codes.clear();
    alaw_encode_into(&samples, &mut codes);
    assert_eq!(codes.len(), samples.len());
    for &code in &codes {
        assert_eq!(alaw_encode(alaw_decode(code)), code, "A-law {code:#04x}");
    }
});
