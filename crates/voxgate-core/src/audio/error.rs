//! The one error type of the audio module.

/// Why audio could not be decoded, converted or parsed.
///
/// Malformed input (an odd PCM16 payload, a broken WAV) is the peer's or the
/// file's fault; [`AudioError::UnsupportedRate`] and
/// [`AudioError::UnsupportedFormat`] mean the input is valid but voxgate does
/// not handle it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AudioError {
    /// A PCM16 payload had an odd number of bytes, so its last sample is cut.
    #[error("PCM16 payload has an odd number of bytes ({len})")]
    OddByteCount {
        /// The payload length in bytes.
        len: usize,
    },
    /// A sample rate that is zero, absurdly high, or (for the resampler) not
    /// one of [`SampleRate::RESAMPLABLE`](super::SampleRate::RESAMPLABLE).
    #[error("sample rate {hz} Hz is not supported")]
    UnsupportedRate {
        /// The rate that was asked for, in hertz.
        hz: u32,
    },
    /// The bytes do not start with a RIFF/WAVE header.
    #[error("not a WAV file: starts with {found:02x?}")]
    NotWav {
        /// The first bytes found where `RIFF....WAVE` was expected (up to 12,
        /// fewer if the input is shorter).
        found: Vec<u8>,
    },
    /// A RIFF/WAVE file whose chunks are broken.
    #[error("malformed WAV file: {reason}")]
    MalformedWav {
        /// What was wrong.
        reason: &'static str,
    },
    /// A well-formed WAV file in an encoding other than 16-bit integer PCM.
    #[error(
        "unsupported WAV encoding: format tag {format_tag:#06x}, {bits_per_sample} bits per sample (only 16-bit PCM is supported)"
    )]
    UnsupportedFormat {
        /// The `fmt ` chunk's format tag (1 = integer PCM, 3 = float,
        /// 6 = A-law, 7 = μ-law, 0xfffe = extensible).
        format_tag: u16,
        /// The `fmt ` chunk's bits per sample.
        bits_per_sample: u16,
    },
    /// The resampling library refused its configuration.
    #[error("resampler: {0}")]
    Resampler(String),
}
