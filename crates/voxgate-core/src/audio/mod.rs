//! Audio plumbing for calls: units, G.711 codecs, PCM16 conversion,
//! resampling, 20 ms framing, in-memory WAV, call recordings and the pace
//! guard that keeps caller audio within the wall clock.
//!
//! Everything here is a pure function over buffers or a small state machine
//! fed by the caller, so the same code serves phone calls (μ-law at 8 kHz,
//! 20 ms frames of 160 bytes), browser calls (PCM16 little-endian at 16 kHz,
//! 20 ms frames of 640 bytes), provider audio (TTS at 16/22.05/24 kHz) and
//! recordings. Nothing reads a file, a socket or a clock.
//!
//! Hot-path functions append to a caller-owned `Vec` instead of returning a
//! new one, so a call that keeps its buffers allocates only while they grow.

mod error;
pub mod frame;
pub mod g711;
pub mod pace;
pub mod pcm;
pub mod recording;
pub mod resample;
pub mod wav;

use std::fmt;
use std::num::NonZeroU32;

pub use error::AudioError;
pub use frame::Framer;
pub use pace::{CallerPace, PaceError};
pub use recording::CallRecorder;
pub use resample::Resampler;
pub use wav::{Side, StereoInterleaver, Wav, parse_wav, wav_header, write_wav_into};

/// Length of one audio frame in milliseconds: carriers send 20 ms packets and
/// the browser worklet batches the same, so the whole pipeline uses it.
pub const FRAME_MS: u32 = 20;

/// Highest rate [`SampleRate::new`] accepts. Far above any real audio path;
/// it exists so that a corrupt WAV header cannot ask for absurd buffers.
pub const MAX_SAMPLE_RATE_HZ: u32 = 768_000;

/// A sample rate in hertz (samples per second per channel).
///
/// Always between 1 and [`MAX_SAMPLE_RATE_HZ`]. Any such rate can be framed
/// or written to a WAV; [`Resampler`] supports only the rates listed in
/// [`SampleRate::RESAMPLABLE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SampleRate(NonZeroU32);

impl SampleRate {
    /// 8 kHz: G.711 telephony (Twilio and the other carriers).
    pub const HZ_8000: Self = Self::from_const(8_000);
    /// 16 kHz: browser PCM16 and most speech-to-text models.
    pub const HZ_16000: Self = Self::from_const(16_000);
    /// 22.05 kHz: a common text-to-speech output rate.
    pub const HZ_22050: Self = Self::from_const(22_050);
    /// 24 kHz: OpenAI Realtime and several text-to-speech providers.
    pub const HZ_24000: Self = Self::from_const(24_000);
    /// 32 kHz: some wideband codecs and TTS voices.
    pub const HZ_32000: Self = Self::from_const(32_000);
    /// 44.1 kHz: CD-rate WAV files.
    pub const HZ_44100: Self = Self::from_const(44_100);
    /// 48 kHz: browser capture and WebRTC.
    pub const HZ_48000: Self = Self::from_const(48_000);

    /// Rates the [`Resampler`] converts between. Each one holds a whole
    /// number of samples in a 20 ms frame, which the resampler's chunking
    /// relies on.
    pub const RESAMPLABLE: [Self; 7] = [
        Self::HZ_8000,
        Self::HZ_16000,
        Self::HZ_22050,
        Self::HZ_24000,
        Self::HZ_32000,
        Self::HZ_44100,
        Self::HZ_48000,
    ];

    const fn from_const(hz: u32) -> Self {
        match NonZeroU32::new(hz) {
            Some(hz) => Self(hz),
            None => panic!("sample rate constants are non-zero"),
        }
    }

    /// Checks and wraps a rate in hertz.
    ///
    /// # Errors
    /// [`AudioError::UnsupportedRate`] for 0 or more than
    /// [`MAX_SAMPLE_RATE_HZ`].
    pub const fn new(hz: u32) -> Result<Self, AudioError> {
        match NonZeroU32::new(hz) {
            Some(nz) if hz <= MAX_SAMPLE_RATE_HZ => Ok(Self(nz)),
            _ => Err(AudioError::UnsupportedRate { hz }),
        }
    }

    /// The rate in hertz.
    pub const fn hz(self) -> u32 {
        self.0.get()
    }

    /// Samples (per channel) in `duration_ms` milliseconds, rounded down.
    ///
    /// Exact for every rate in [`SampleRate::RESAMPLABLE`] and any whole
    /// number of 20 ms frames.
    pub const fn samples_per(self, duration_ms: u32) -> usize {
        // u64 so that an hour at 768 kHz cannot overflow.
        (self.0.get() as u64 * duration_ms as u64 / 1000) as usize
    }

    /// Samples (per channel) in one [`FRAME_MS`] frame: 160 at 8 kHz,
    /// 320 at 16 kHz, 441 at 22.05 kHz, 480 at 24 kHz.
    pub const fn frame_len(self) -> usize {
        self.samples_per(FRAME_MS)
    }

    /// Whether [`Resampler`] accepts this rate.
    pub fn is_resamplable(self) -> bool {
        Self::RESAMPLABLE.contains(&self)
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Hz", self.0)
    }
}

impl TryFrom<u32> for SampleRate {
    type Error = AudioError;

    fn try_from(hz: u32) -> Result<Self, Self::Error> {
        Self::new(hz)
    }
}

impl From<SampleRate> for u32 {
    fn from(rate: SampleRate) -> Self {
        rate.hz()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_lengths_match_the_wire() {
        assert_eq!(SampleRate::HZ_8000.frame_len(), 160);
        assert_eq!(SampleRate::HZ_16000.frame_len(), 320);
        assert_eq!(SampleRate::HZ_22050.frame_len(), 441);
        assert_eq!(SampleRate::HZ_24000.frame_len(), 480);
        assert_eq!(SampleRate::HZ_48000.frame_len(), 960);
        assert_eq!(SampleRate::HZ_8000.samples_per(1000), 8000);
    }

    #[test]
    fn every_resamplable_rate_has_whole_frames() {
        for rate in SampleRate::RESAMPLABLE {
            assert_eq!(rate.hz() as usize * FRAME_MS as usize % 1000, 0, "{rate}");
        }
    }

    #[test]
    fn rejects_zero_and_absurd_rates() {
        assert_eq!(
            SampleRate::new(0),
            Err(AudioError::UnsupportedRate { hz: 0 })
        );
        assert_eq!(
            SampleRate::new(MAX_SAMPLE_RATE_HZ + 1),
            Err(AudioError::UnsupportedRate {
                hz: MAX_SAMPLE_RATE_HZ + 1
            })
        );
        assert_eq!(SampleRate::new(8000), Ok(SampleRate::HZ_8000));
    }
}
