//! G.711 μ-law (PCMU) and A-law (PCMA) companding, bit-exact with the ITU-T
//! G.191 reference implementation (`g711.c` of the Software Tool Library).
//!
//! μ-law is what Twilio and most North American carriers send
//! (`audio/x-mulaw`, 8 kHz); A-law is its European twin. Both map a 16-bit
//! linear sample to one byte: a sign bit, a 3-bit segment (exponent) and a
//! 4-bit step within the segment, so the quantisation step doubles with each
//! segment.
//!
//! Encoding follows G.191 in treating a negative input by its one's
//! complement (`!x`), so −1 lands beside +0 exactly as a 14-bit (μ-law) or
//! 13-bit (A-law) sample does in G.711 itself. Python's `audioop.lin2ulaw`
//! takes the two's complement instead and so rounds 508 negative inputs that
//! sit exactly halfway between two levels to the larger magnitude; decoding
//! agrees bit for bit with both.
//!
//! Cost: encoding is a handful of integer operations per sample, decoding one
//! table lookup; both tables are built at compile time. The slice helpers
//! reserve once and allocate nothing else.

/// μ-law bias in the 14-bit domain: G.711 offsets the magnitude by 33 so that
/// the segment boundaries fall on powers of two.
const ULAW_BIAS: u16 = 33;
/// Largest biased 14-bit magnitude μ-law can represent; louder input clips.
const ULAW_MAX: u16 = 0x1FFF;
/// A-law transmits every other bit inverted (the "even bit" inversion) so
/// that silence is not a run of zero bits on the line.
const ALAW_XOR: u8 = 0x55;

/// The linear value of every μ-law byte, indexed by the byte.
const ULAW_TABLE: [i16; 256] = build_ulaw_table();
/// The linear value of every A-law byte, indexed by the byte.
const ALAW_TABLE: [i16; 256] = build_alaw_table();

/// Encodes one linear sample as μ-law.
pub const fn ulaw_encode(sample: i16) -> u8 {
    // One's complement for negatives, as G.191 does (see the module docs).
    let (magnitude, sign) = if sample < 0 {
        ((!sample) as u16 >> 2, 0x00)
    } else {
        (sample as u16 >> 2, 0x80)
    };
    let mut biased = magnitude + ULAW_BIAS;
    if biased > ULAW_MAX {
        biased = ULAW_MAX;
    }
    // The segment is how far the biased magnitude's top bit sits above bit 5.
    let exponent = (16 - (biased >> 6).leading_zeros()) as u16;
    let mantissa = (biased >> (exponent + 1)) & 0x0F;
    // μ-law sends the magnitude bits inverted.
    sign | (0x7F ^ ((exponent << 4) | mantissa) as u8)
}

/// Decodes one μ-law byte to a linear sample.
pub const fn ulaw_decode(byte: u8) -> i16 {
    ULAW_TABLE[byte as usize]
}

/// Encodes one linear sample as A-law.
pub const fn alaw_encode(sample: i16) -> u8 {
    // One's complement for negatives, as G.191 does (see the module docs);
    // A-law keeps 12 bits of magnitude.
    let (magnitude, sign) = if sample < 0 {
        ((!sample) as u16 >> 4, 0x00)
    } else {
        (sample as u16 >> 4, 0x80)
    };
    let code = if magnitude < 16 {
        // Segment 0 is linear: the magnitude is the code.
        magnitude
    } else {
        // Segments 1..=7 keep the four bits below the leading one.
        let exponent = (16 - magnitude.leading_zeros() - 4) as u16;
        let mantissa = (magnitude >> (exponent - 1)) & 0x0F;
        (exponent << 4) | mantissa
    };
    (code as u8 | sign) ^ ALAW_XOR
}

/// Decodes one A-law byte to a linear sample.
pub const fn alaw_decode(byte: u8) -> i16 {
    ALAW_TABLE[byte as usize]
}

/// Decodes μ-law bytes and appends the samples to `out`.
pub fn ulaw_decode_into(bytes: &[u8], out: &mut Vec<i16>) {
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| ULAW_TABLE[usize::from(b)]));
}

/// Encodes samples as μ-law and appends the bytes to `out`.
pub fn ulaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| ulaw_encode(s)));
}

/// Decodes A-law bytes and appends the samples to `out`.
pub fn alaw_decode_into(bytes: &[u8], out: &mut Vec<i16>) {
    out.reserve(bytes.len());
    out.extend(bytes.iter().map(|&b| ALAW_TABLE[usize::from(b)]));
}

/// Encodes samples as A-law and appends the bytes to `out`.
pub fn alaw_encode_into(samples: &[i16], out: &mut Vec<u8>) {
    out.reserve(samples.len());
    out.extend(samples.iter().map(|&s| alaw_encode(s)));
}

/// G.191 `ulaw_expand`: each code decodes to the middle of its interval.
const fn ulaw_decode_formula(byte: u8) -> i16 {
    let inverted = !byte;
    let exponent = (inverted >> 4) & 0x07;
    let mantissa = (inverted & 0x0F) as i32;
    let step = 8_i32 << exponent;
    // Middle of the interval, minus the encoder's bias (33 in the 14-bit
    // domain is 132 at 16 bits).
    let magnitude = (0x80_i32 << exponent) + step * mantissa + step / 2 - 4 * ULAW_BIAS as i32;
    // The largest magnitude is 32124, so the cast is lossless.
    if byte < 0x80 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// G.191 `alaw_expand`: each code decodes to the middle of its interval.
const fn alaw_decode_formula(byte: u8) -> i16 {
    let code = (byte ^ ALAW_XOR) & 0x7F;
    let exponent = code >> 4;
    let mut mantissa = (code & 0x0F) as i32;
    if exponent > 0 {
        // Segments above 0 have an implicit leading one.
        mantissa += 16;
    }
    let mut magnitude = (mantissa << 4) + 8;
    if exponent > 1 {
        magnitude <<= exponent - 1;
    }
    // The largest magnitude is 32256, so the cast is lossless.
    if byte & 0x80 != 0 {
        magnitude as i16
    } else {
        -magnitude as i16
    }
}

const fn build_ulaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = ulaw_decode_formula(i as u8);
        i += 1;
    }
    table
}

const fn build_alaw_table() -> [i16; 256] {
    let mut table = [0; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = alaw_decode_formula(i as u8);
        i += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_codes() {
        assert_eq!(ulaw_encode(0), 0xFF);
        assert_eq!(ulaw_decode(0xFF), 0);
        assert_eq!(ulaw_decode(0x7F), 0);
        assert_eq!(alaw_encode(0), 0xD5);
        assert_eq!(alaw_decode(0xD5), 8);
        assert_eq!(alaw_decode(0x55), -8);
    }

    #[test]
    fn extremes_clip_to_the_outer_codes() {
        assert_eq!(ulaw_encode(i16::MAX), 0x80);
        assert_eq!(ulaw_encode(i16::MIN), 0x00);
        assert_eq!(alaw_encode(i16::MAX), 0xAA);
        assert_eq!(alaw_encode(i16::MIN), 0x2A);
    }
}
