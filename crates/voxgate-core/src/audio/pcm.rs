//! PCM16 conversions: little-endian bytes (the browser and WAV wire format)
//! to and from `i16` samples, and `i16` to and from `f32` in [-1, 1] (the
//! Web Audio and model-input format).
//!
//! The float scale is 32767 in both directions, as in the browser worklet
//! (`×32767` after clamping), so every sample except `i16::MIN` survives a
//! round trip unchanged; `i16::MIN` maps to -1.0 and comes back as -32767
//! rather than overflowing the range.

use super::AudioError;

/// The float value of full scale.
const SCALE: f32 = 32767.0;

/// Decodes little-endian PCM16 bytes and appends the samples to `out`.
///
/// # Errors
/// [`AudioError::OddByteCount`] if `bytes` has an odd length; nothing is
/// appended then, so a caller can reject the whole packet.
pub fn pcm16le_decode_into(bytes: &[u8], out: &mut Vec<i16>) -> Result<(), AudioError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(AudioError::OddByteCount { len: bytes.len() });
    }
    out.reserve(bytes.len() / 2);
    out.extend(
        bytes
            .chunks_exact(2)
            .map(|pair| i16::from_le_bytes([pair[0], pair[1]])),
    );
    Ok(())
}

/// Encodes samples as little-endian PCM16 and appends the bytes to `out`.
pub fn pcm16le_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len() * 2);
    out.extend(samples.iter().flat_map(|s| s.to_le_bytes()));
}

/// Converts a sample to a float in [-1, 1]; `i16::MIN` clamps to -1.
pub fn i16_to_f32(sample: i16) -> f32 {
    (f32::from(sample) / SCALE).max(-1.0)
}

/// Converts a float to a sample, clamping to [-1, 1] first and rounding to
/// the nearest step. NaN becomes 0 (silence), never a click.
pub fn f32_to_i16(sample: f32) -> i16 {
    // `as` saturates and maps NaN to 0; after the clamp the value is within
    // ±32767 anyway.
    (sample.clamp(-1.0, 1.0) * SCALE).round() as i16
}

/// Converts samples to floats with [`i16_to_f32`] and appends them to `out`.
pub fn i16_to_f32_into(samples: &[i16], out: &mut Vec<f32>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| i16_to_f32(s)));
}

/// Converts floats to samples with [`f32_to_i16`] and appends them to `out`.
pub fn f32_to_i16_into(samples: &[f32], out: &mut Vec<i16>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| f32_to_i16(s)));
}
