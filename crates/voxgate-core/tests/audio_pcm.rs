//! PCM16 byte and float conversions.

use proptest::prelude::*;
use voxgate_core::audio::AudioError;
use voxgate_core::audio::pcm::{
    f32_to_i16, f32_to_i16_into, i16_to_f32, i16_to_f32_into, pcm16le_decode_into,
    pcm16le_encode_into,
};

#[test]
fn decodes_little_endian() {
    let mut out = Vec::new();
    pcm16le_decode_into(&[0x01, 0x00, 0xFF, 0xFF, 0x00, 0x80, 0xFF, 0x7F], &mut out)
        .expect("even length");
    assert_eq!(out, [1, -1, i16::MIN, i16::MAX]);
}

#[test]
fn odd_byte_count_is_rejected_and_appends_nothing() {
    let mut out = vec![5];
    assert_eq!(
        pcm16le_decode_into(&[1, 2, 3], &mut out),
        Err(AudioError::OddByteCount { len: 3 })
    );
    assert_eq!(out, [5]);
}

#[test]
fn float_scale_is_symmetric() {
    assert_eq!(i16_to_f32(0), 0.0);
    assert_eq!(i16_to_f32(i16::MAX), 1.0);
    assert_eq!(i16_to_f32(-i16::MAX), -1.0);
    // Clamped rather than -1.00003.
    assert_eq!(i16_to_f32(i16::MIN), -1.0);
    assert_eq!(f32_to_i16(1.0), i16::MAX);
    assert_eq!(f32_to_i16(-1.0), -i16::MAX);
    assert_eq!(f32_to_i16(7.5), i16::MAX);
    assert_eq!(f32_to_i16(-7.5), -i16::MAX);
    assert_eq!(f32_to_i16(f32::INFINITY), i16::MAX);
    assert_eq!(f32_to_i16(f32::NEG_INFINITY), -i16::MAX);
    assert_eq!(f32_to_i16(f32::NAN), 0);
}

#[test]
fn every_sample_but_min_survives_a_float_round_trip() {
    for s in -i16::MAX..=i16::MAX {
        let f = i16_to_f32(s);
        assert!((-1.0..=1.0).contains(&f), "{s}");
        assert_eq!(f32_to_i16(f), s);
    }
    assert_eq!(f32_to_i16(i16_to_f32(i16::MIN)), -i16::MAX);
}

proptest! {
    #[test]
    fn bytes_round_trip(samples in prop::collection::vec(any::<i16>(), 0..500)) {
        let mut bytes = Vec::new();
        pcm16le_encode_into(&samples, &mut bytes);
        prop_assert_eq!(bytes.len(), samples.len() * 2);
        let mut back = Vec::new();
        pcm16le_decode_into(&bytes, &mut back).expect("even length");
        prop_assert_eq!(back, samples);
    }

    #[test]
    fn any_odd_length_is_rejected(bytes in prop::collection::vec(any::<u8>(), 0..500)) {
        let mut out = Vec::new();
        let result = pcm16le_decode_into(&bytes, &mut out);
        if bytes.len() % 2 == 0 {
            prop_assert!(result.is_ok());
            prop_assert_eq!(out.len(), bytes.len() / 2);
        } else {
            prop_assert_eq!(result, Err(AudioError::OddByteCount { len: bytes.len() }));
            prop_assert!(out.is_empty());
        }
    }

    #[test]
    fn float_conversion_stays_in_range(floats in prop::collection::vec(any::<f32>(), 0..200)) {
        let mut samples = Vec::new();
        f32_to_i16_into(&floats, &mut samples);
        prop_assert!(samples.iter().all(|&s| s != i16::MIN));
        let mut back = Vec::new();
        i16_to_f32_into(&samples, &mut back);
        prop_assert!(back.iter().all(|f| (-1.0..=1.0).contains(f)));
        for (f, b) in floats.iter().zip(&back) {
            if f.is_finite() {
                prop_assert!((f.clamp(-1.0, 1.0) - b).abs() <= 0.5 / 32767.0 + f32::EPSILON);
            }
        }
    }
}
