//! [`CallRecorder`]: the two-track recording of a call, as the caller
//! experienced it.
//!
//! The recorder keeps no clock. Its timeline is the caller's audio: the
//! carrier (and the browser worklet) sends caller audio continuously, in
//! real time, silence included, so "now" is simply how much caller audio
//! has arrived. Agent audio is placed on that timeline the way the carrier
//! plays it: the carrier buffers what it is sent and plays it in real time,
//! so a chunk handed over at position `t` starts at `max(t, end of what is
//! already scheduled)`, and a `clear` at `t` discards what was scheduled
//! after `t`. The result is what was said and what was heard, aligned.

use std::time::Duration;

use super::pcm::pcm16le_encode_into;
use super::wav::{StereoInterleaver, WAV_HEADER_LEN, wav_header};
use super::{SampleRate, Side};

/// The longest recording a [`CallRecorder::new`] keeps: 30 minutes.
///
/// A recording is held in memory until the call ends, at 4 bytes per sample
/// position (two channels of PCM16): 32 KB/s at 8 kHz (about 58 MB for 30
/// minutes) and 64 KB/s at 16 kHz (about 115 MB). Audio past the cap is
/// counted and dropped, never an allocation failure; use
/// [`CallRecorder::with_max_duration`] for another cap.
pub const DEFAULT_MAX_RECORDING: Duration = Duration::from_secs(30 * 60);

/// The most silence one [`CallRecorder::push_caller_at`] fills in for a
/// gap in the caller's timestamps: 5 seconds.
///
/// Carriers stream media over TCP, so frames arrive late rather than not at
/// all; a gap in their timestamps is audio the carrier itself never had
/// (packets lost before it), typically tens of milliseconds. A timestamp
/// further ahead than this is more likely wrong than a real gap, and
/// believing it would cost 4 bytes per sample position of it at once: one
/// frame stamped 1799 s would make a 30-minute recording's worth of
/// silence. Capping it bounds what one frame can cost (160 KB at 8 kHz,
/// 320 KB at 16 kHz). A longer real gap is still filled, up to this much per
/// frame, by the frames that follow while their timestamps stay ahead.
///
/// This only bounds a single frame; [`CallerPace`](super::CallerPace) ties
/// the whole timeline to the wall clock.
pub const MAX_CALLER_GAP: Duration = Duration::from_secs(5);

/// Sample positions turned into WAV bytes per pass: draining a long stretch
/// (a gap, or the end of the call) goes through a scratch buffer this size
/// (16 KiB), not one as long as the stretch.
const DRAIN_CHUNK: u64 = 4096;

/// Channels in a recording: caller left, agent right.
const CHANNELS: u16 = 2;
/// Bytes per sample position: two PCM16 samples.
const BYTES_PER_POSITION: u64 = 4;
/// Sample positions a WAV file can describe: its data size is a `u32`.
const MAX_WAV_POSITIONS: u64 = (u32::MAX as u64 - WAV_HEADER_LEN as u64) / BYTES_PER_POSITION;

/// Builds the stereo PCM16 WAV of one call: the caller on the left, as
/// received, and on the right the agent audio the caller actually heard.
///
/// Feed it from the call task, in the order things happen:
/// - [`CallRecorder::push_caller`] (or [`CallRecorder::push_caller_at`]
///   when frames carry timestamps) for every caller frame;
/// - [`CallRecorder::push_agent`] for every chunk of agent audio handed to
///   the carrier;
/// - [`CallRecorder::clear`] when playback is cleared (barge-in);
/// - [`CallRecorder::finish`] at the end, for the WAV bytes. If the caller
///   hung up while agent audio was still scheduled, call `clear` first so
///   the unheard tail is not recorded.
///
/// All samples are at the recorder's one rate (8 kHz for phone calls,
/// 16 kHz for browsers): resample agent audio before pushing it.
///
/// Memory: sample positions up to the cap ([`DEFAULT_MAX_RECORDING`] by
/// default) cost 4 bytes each, held until [`CallRecorder::finish`]; agent
/// audio scheduled ahead of the caller is held until the caller's timeline
/// reaches it. Nothing past the cap is stored (see
/// [`CallRecorder::dropped`]). A gap in caller timestamps is written as
/// silence straight into the WAV bytes, at most [`MAX_CALLER_GAP`] per
/// push. [`CallRecorder::memory_bytes`] says what it all costs. Cost per
/// push: one copy of each sample into the pending tracks, one more into the
/// WAV bytes once final.
///
/// Caller audio is untrusted: without a clock the recorder cannot tell a
/// peer that sends audio faster than real time, so a shell puts a
/// [`CallerPace`](super::CallerPace) in front of it, which keeps the
/// timeline, and so the memory, within the wall clock.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    rate: SampleRate,
    /// Sample positions at or past this are not recorded.
    limit: u64,
    /// Pending audio of both sides, from the last final position on.
    tracks: StereoInterleaver,
    /// The caller timeline ("now"): caller samples received so far,
    /// including silence filled into reported gaps.
    caller_end: u64,
    /// Where the agent audio scheduled so far stops playing.
    agent_end: u64,
    /// The WAV file so far: a header to patch, then every final position.
    wav: Vec<u8>,
    /// Interleaved pairs on their way into `wav`; kept to reuse its buffer.
    scratch: Vec<i16>,
    /// Samples (either side) not recorded because they fell past the cap.
    dropped: u64,
}

impl CallRecorder {
    /// An empty recording at `rate`, capped at [`DEFAULT_MAX_RECORDING`].
    pub fn new(rate: SampleRate) -> Self {
        Self::with_max_duration(rate, DEFAULT_MAX_RECORDING)
    }

    /// An empty recording at `rate` that keeps at most `max` of audio.
    ///
    /// The cap is also limited by what a WAV file can hold (4 GiB of data:
    /// over 37 hours at 8 kHz).
    pub fn with_max_duration(rate: SampleRate, max: Duration) -> Self {
        let mut wav = Vec::new();
        wav.extend_from_slice(&[0; WAV_HEADER_LEN]);
        Self {
            rate,
            limit: samples_in(rate, max).min(MAX_WAV_POSITIONS),
            tracks: StereoInterleaver::new(),
            caller_end: 0,
            agent_end: 0,
            wav,
            scratch: Vec::new(),
            dropped: 0,
        }
    }

    /// The recording's sample rate.
    pub fn rate(&self) -> SampleRate {
        self.rate
    }

    /// "Now" on the caller timeline, in samples: caller audio received so
    /// far, reported gaps included.
    pub fn position(&self) -> u64 {
        self.caller_end
    }

    /// [`CallRecorder::position`] as a duration since the recording began.
    pub fn elapsed(&self) -> Duration {
        duration_of(self.rate, self.caller_end)
    }

    /// Where the agent audio scheduled so far ends, in samples on the caller
    /// timeline; past [`CallRecorder::position`] while the carrier still
    /// has agent audio buffered.
    pub fn agent_end(&self) -> u64 {
        self.agent_end
    }

    /// Samples, on either side, that were not recorded because they fell
    /// past the cap. Non-zero means the recording is cut short.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Heap bytes the recorder holds: the WAV so far (4 bytes per final
    /// position, and up to as much again of spare capacity from the
    /// buffer's amortized doubling), pending audio not yet final, and
    /// scratch space. For metrics, and for the tests that bound it.
    pub fn memory_bytes(&self) -> usize {
        self.wav.capacity()
            + self.scratch.capacity() * std::mem::size_of::<i16>()
            + self.tracks.memory_bytes()
    }

    /// Appends caller audio as received; the caller timeline moves on by
    /// `samples.len()`.
    pub fn push_caller(&mut self, samples: &[i16]) {
        let start = self.caller_end;
        self.place(Side::Caller, start, samples);
        self.caller_end = self.caller_end.saturating_add(samples.len() as u64);
        self.settle();
    }

    /// Appends caller audio whose frame says it starts `timestamp` after the
    /// start of the stream (Twilio's `media.timestamp`).
    ///
    /// A timestamp past the caller timeline means frames went missing: the
    /// gap is filled with silence so later audio stays aligned with the
    /// agent's. A timestamp at or before it (a duplicate or a reordered
    /// frame) does not move audio back: the samples are appended in arrival
    /// order, as with [`CallRecorder::push_caller`].
    ///
    /// With no samples, this moves "now" forward to `timestamp`, which a
    /// shell can use to account for time when the caller stream stalls.
    ///
    /// One call fills at most [`MAX_CALLER_GAP`] of silence: a timestamp
    /// further ahead is taken as that far ahead, so a single bogus frame
    /// costs a bounded amount of memory however large its timestamp.
    pub fn push_caller_at(&mut self, timestamp: Duration, samples: &[i16]) {
        let furthest = self
            .caller_end
            .saturating_add(samples_in(self.rate, MAX_CALLER_GAP));
        let gap_end = samples_in(self.rate, timestamp).min(furthest);
        if gap_end > self.caller_end {
            self.caller_end = gap_end;
            // Final right away: the gap goes into the WAV as silence in
            // bounded chunks instead of padding the pending caller track,
            // which would hold it twice (there and in the WAV) for a moment.
            self.settle();
        }
        self.push_caller(samples);
    }

    /// Schedules agent audio handed to the carrier now (at
    /// [`CallRecorder::position`]): it plays right away if nothing is
    /// playing, or right after what is already scheduled.
    pub fn push_agent(&mut self, samples: &[i16]) {
        let start = self.agent_end.max(self.caller_end);
        self.place(Side::Agent, start, samples);
        self.agent_end = start.saturating_add(samples.len() as u64);
    }

    /// Playback was cleared now: agent audio scheduled after
    /// [`CallRecorder::position`] never plays, so it is discarded.
    pub fn clear(&mut self) {
        self.tracks.truncate(Side::Agent, self.caller_end);
        self.agent_end = self.agent_end.min(self.caller_end);
    }

    /// The recording as a stereo PCM16 WAV file (caller left, agent right),
    /// as long as the longer of the two tracks (up to the cap); the shorter
    /// one is padded with silence.
    pub fn finish(mut self) -> Vec<u8> {
        let end = self.caller_end.max(self.agent_end).min(self.limit);
        self.drain_until(end);
        let data_len = self.wav.len() - WAV_HEADER_LEN;
        // `limit` keeps the data within a WAV file's u32 size.
        let data_len = u32::try_from(data_len).unwrap_or(u32::MAX);
        let header = wav_header(self.rate, CHANNELS, 16, data_len);
        self.wav[..WAV_HEADER_LEN].copy_from_slice(&header);
        self.wav
    }

    /// Puts what fits under the cap of `samples` on `side` at `start`.
    fn place(&mut self, side: Side, start: u64, samples: &[i16]) {
        let room = usize::try_from(self.limit.saturating_sub(start)).unwrap_or(usize::MAX);
        let kept = samples.len().min(room);
        self.dropped += (samples.len() - kept) as u64;
        if kept > 0 {
            // Every push starts at or after the caller timeline, which is
            // never behind what was drained, so nothing comes back late.
            let late = self.tracks.push(side, start, &samples[..kept]);
            debug_assert_eq!(late, 0, "recorder pushed audio before a final position");
        }
    }

    /// Makes final everything before "now": a later `clear` cannot reach
    /// back past the caller timeline.
    fn settle(&mut self) {
        self.drain_until(self.caller_end.min(self.limit));
    }

    fn drain_until(&mut self, until: u64) {
        while self.tracks.drained() < until {
            let step = until.min(self.tracks.drained().saturating_add(DRAIN_CHUNK));
            self.scratch.clear();
            self.tracks.drain_until(step, &mut self.scratch);
            pcm16le_encode_into(&self.scratch, &mut self.wav);
        }
    }
}

/// Sample positions in `duration` at `rate`, rounded down.
pub(super) fn samples_in(rate: SampleRate, duration: Duration) -> u64 {
    let samples = duration.as_nanos() * u128::from(rate.hz()) / 1_000_000_000;
    u64::try_from(samples).unwrap_or(u64::MAX)
}

/// The duration of `samples` positions at `rate`.
fn duration_of(rate: SampleRate, samples: u64) -> Duration {
    let nanos = u128::from(samples) * 1_000_000_000 / u128::from(rate.hz());
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_convert_to_whole_samples() {
        let rate = SampleRate::HZ_8000;
        assert_eq!(samples_in(rate, Duration::from_millis(20)), 160);
        assert_eq!(samples_in(rate, Duration::from_micros(125)), 1);
        assert_eq!(samples_in(rate, Duration::from_micros(124)), 0);
        assert_eq!(duration_of(rate, 160), Duration::from_millis(20));
        assert_eq!(samples_in(rate, Duration::MAX), u64::MAX);
    }

    #[test]
    fn the_cap_fits_a_wav_file() {
        let rec = CallRecorder::with_max_duration(SampleRate::HZ_48000, Duration::MAX);
        assert_eq!(rec.limit, MAX_WAV_POSITIONS);
        assert!(rec.limit * BYTES_PER_POSITION + WAV_HEADER_LEN as u64 <= u64::from(u32::MAX));
    }
}
