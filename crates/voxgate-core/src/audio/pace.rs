//! [`CallerPace`]: caller audio may not run ahead of the wall clock.
//!
//! Carriers (and the browser worklet) send caller audio in real time, so
//! after `t` seconds of call a peer has sent about `t` seconds of audio.
//! Nothing in the audio itself enforces that: a peer can send audio faster,
//! or stamp a frame far in the future, and everything fed from the caller
//! timeline (the [`CallRecorder`](super::CallRecorder), which fills claimed
//! gaps with silence; speech-to-text) then works through audio the wall
//! clock has not seen. The guard holds the caller timeline to the shell's
//! clock plus a small allowance, so what a call holds grows with how long
//! it has lasted, never with what a peer claims.
//!
//! The guard keeps no clock: the shell passes the time since the call
//! started with every frame.
//!
//! ```
//! use std::time::Duration;
//! use voxgate_core::audio::{CallRecorder, CallerPace, SampleRate};
//!
//! let rate = SampleRate::HZ_8000;
//! let mut pace = CallerPace::new(rate);
//! let mut recorder = CallRecorder::new(rate);
//!
//! // In the shell, for every caller frame: `elapsed` from its own clock
//! // (e.g. `started.elapsed()` on a `tokio::time::Instant` taken when the
//! // call began), the carrier's timestamp if the wire has one.
//! let frame = vec![0i16; 160];
//! let elapsed = Duration::from_millis(20);
//! let carrier_timestamp = Some(Duration::from_secs(1799)); // a lie
//! match pace.admit(elapsed, frame.len(), carrier_timestamp) {
//!     Ok(at) => recorder.push_caller_at(at, &frame),
//!     // `PaceError::TooFast`: the peer is at fault. End the call (or drop
//!     // the frame: a rejected frame does not count, so later ones pass
//!     // once the clock catches up).
//!     Err(err) => {
//!         eprintln!("hanging up: {err}");
//!         return;
//!     }
//! }
//! // The timestamp was not believed; a metric can count such frames.
//! assert_eq!(pace.clamped(), 1);
//! assert_eq!(recorder.position(), 160);
//! ```

use std::time::Duration;

use super::SampleRate;
use super::recording::samples_in;

/// How far ahead of the wall clock caller audio may run by default: 2 s.
///
/// Honest audio runs a little ahead of the shell's clock: the carrier's
/// stream clock starts before the shell's (the WebSocket upgrade and the
/// `start` message take a round trip or two, and the shell may take its
/// start time after that), its clock drifts against ours (100 ppm is 0.18 s
/// over 30 minutes), and frames it held back during a network stall arrive
/// together, each one early against the clock that was read when the first
/// arrived. Each is well under a second. Ending an honest call is far
/// worse than letting an abusive one run 2 s ahead, which costs 64 KB of
/// recording at 16 kHz, so the allowance is generous.
pub const DEFAULT_BURST: Duration = Duration::from_secs(2);

const NANOS_PER_SEC: u128 = 1_000_000_000;

/// Why a caller frame was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaceError {
    /// The peer sent caller audio faster than real time: with this frame
    /// the caller timeline would pass the wall clock by more than the
    /// allowance. The peer is at fault; the frame was not counted.
    #[error(
        "caller audio runs ahead of real time: {audio:?} of audio after {elapsed:?} of call, more than {burst:?} ahead"
    )]
    TooFast {
        /// Where the caller timeline would end with this frame: audio
        /// received plus the gaps its timestamps opened.
        audio: Duration,
        /// The shell's time since the call started.
        elapsed: Duration,
        /// The allowance it exceeds.
        burst: Duration,
    },
}

/// Keeps the caller timeline of one call within the wall clock.
///
/// Feed [`CallerPace::admit`] every caller frame, in arrival order, before
/// it reaches the recorder. The guard follows the timeline exactly as
/// [`CallRecorder::push_caller_at`](super::CallRecorder::push_caller_at)
/// builds it (a timestamp ahead opens a gap of silence, one behind appends),
/// so with every frame admitted, the recorder's
/// [`position`](super::CallRecorder::position) never passes
/// `rate × (elapsed + burst)`, and its memory stays within 4 bytes per
/// such position (plus the WAV buffer's spare capacity and a constant).
///
/// A carrier timestamp is believed if the frame it starts fits within
/// `elapsed + burst`. One further ahead is wrong (honest carriers cannot
/// send audio from the future), so it is ignored: the frame goes at the
/// end of the timeline, as if it had no timestamp, and is counted in
/// [`CallerPace::clamped`]. Ignoring it opens no gap at all, where moving
/// it to the edge of the allowance would use the allowance up (leaving the
/// call one early frame away from [`PaceError::TooFast`]) and moving it to
/// the clock would open a gap for every late frame of a carrier whose
/// timestamps are all wrong, pushing the timeline ahead by its jitter.
///
/// Memory: a few integers. Cost per frame: a few multiplications.
#[derive(Debug, Clone)]
pub struct CallerPace {
    rate: SampleRate,
    burst: Duration,
    /// Where the caller timeline ends, in samples: audio admitted so far
    /// plus the gaps admitted timestamps opened.
    end: u64,
    /// Frames whose carrier timestamp was too far ahead to believe.
    clamped: u64,
}

impl CallerPace {
    /// A guard for a call at `rate`, allowing [`DEFAULT_BURST`].
    pub fn new(rate: SampleRate) -> Self {
        Self::with_burst(rate, DEFAULT_BURST)
    }

    /// A guard for a call at `rate` that lets caller audio run up to
    /// `burst` ahead of the wall clock.
    pub fn with_burst(rate: SampleRate, burst: Duration) -> Self {
        Self {
            rate,
            burst,
            end: 0,
            clamped: 0,
        }
    }

    /// Admits a caller frame of `samples` samples that arrived `elapsed`
    /// after the call started (the shell's clock), stamped
    /// `carrier_timestamp` after the stream started if the wire carries
    /// one (Twilio's `media.timestamp`).
    ///
    /// Returns the timestamp to record the frame at, for
    /// [`CallRecorder::push_caller_at`](super::CallRecorder::push_caller_at):
    /// the carrier's when it is believable, otherwise (and without one) the
    /// end of the timeline, so the frame follows the audio before it. It is
    /// never past `elapsed + burst`, so the recorder never fills a gap the
    /// wall clock has not seen.
    ///
    /// # Errors
    /// [`PaceError::TooFast`] when the frame would take the caller timeline
    /// past `elapsed + burst`. The frame is not counted: a shell that drops
    /// it instead of ending the call gets frames admitted again once the
    /// clock catches up.
    pub fn admit(
        &mut self,
        elapsed: Duration,
        samples: usize,
        carrier_timestamp: Option<Duration>,
    ) -> Result<Duration, PaceError> {
        let allowed = samples_in(self.rate, elapsed.saturating_add(self.burst));
        let len = u64::try_from(samples).unwrap_or(u64::MAX);
        let mut clamped = false;
        let claimed = match carrier_timestamp {
            None => self.end,
            Some(at) => {
                let at = samples_in(self.rate, at);
                if at.saturating_add(len) > allowed {
                    clamped = true;
                    self.end
                } else {
                    at
                }
            }
        };
        // As the recorder does: a gap moves the timeline on, an old
        // timestamp does not move it back.
        let start = self.end.max(claimed);
        let end = start.saturating_add(len);
        if end > allowed {
            return Err(PaceError::TooFast {
                audio: time_of(self.rate, end),
                elapsed,
                burst: self.burst,
            });
        }
        self.end = end;
        self.clamped += u64::from(clamped);
        Ok(time_of(self.rate, start))
    }

    /// Admitted frames whose carrier timestamp was too far ahead of the
    /// clock to believe, so it was ignored.
    /// Non-zero means the carrier's timestamps are wrong (or forged); a
    /// shell exports it as a metric.
    pub fn clamped(&self) -> u64 {
        self.clamped
    }

    /// Where the caller timeline ends after the frames admitted so far, in
    /// samples: what the recorder's position will be.
    pub fn position(&self) -> u64 {
        self.end
    }
}

/// The time of sample position `samples` at `rate`, rounded up to the
/// nanosecond so that `samples_in` maps it back to exactly `samples`.
/// Rounding down would land a sample early at rates such as 22.05 kHz,
/// whose samples do not fall on whole nanoseconds.
fn time_of(rate: SampleRate, samples: u64) -> Duration {
    let nanos = (u128::from(samples) * NANOS_PER_SEC).div_ceil(u128::from(rate.hz()));
    let Ok(secs) = u64::try_from(nanos / NANOS_PER_SEC) else {
        return Duration::MAX;
    };
    // Below one second's worth of nanoseconds, so it fits.
    let subsec = u32::try_from(nanos % NANOS_PER_SEC).unwrap_or(0);
    Duration::new(secs, subsec)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn times_map_back_to_their_sample(
            rate in prop::sample::select(SampleRate::RESAMPLABLE.to_vec()),
            samples in any::<u64>(),
        ) {
            prop_assert_eq!(samples_in(rate, time_of(rate, samples)), samples);
        }
    }
}
