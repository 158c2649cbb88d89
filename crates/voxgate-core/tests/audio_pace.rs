//! `CallerPace` in front of `CallRecorder`: honest carriers pass whatever
//! their jitter, peers faster than real time are refused within a bounded
//! time, far-future timestamps are ignored and counted, and the recorder's
//! memory follows the wall clock whatever the peer sends.

use std::time::Duration;

use proptest::prelude::*;
use voxgate_core::audio::pace::DEFAULT_BURST;
use voxgate_core::audio::{CallRecorder, CallerPace, PaceError, SampleRate};

const RATE: SampleRate = SampleRate::HZ_8000;
/// One 20 ms frame at 8 kHz.
const FRAME: usize = 160;

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// Sample positions in `d` at `rate`, rounded down (as the recorder counts).
fn positions(rate: SampleRate, d: Duration) -> u64 {
    u64::try_from(d.as_nanos() * u128::from(rate.hz()) / 1_000_000_000).expect("test durations")
}

/// What the bound allows the recorder to hold after `elapsed`: the WAV (a
/// 44-byte header and 4 bytes per position up to `elapsed + burst`), up to
/// as much again in spare capacity from `Vec`'s amortized doubling, and a
/// constant for frame-sized buffers (pending tracks, drain scratch).
fn memory_bound(rate: SampleRate, elapsed: Duration, burst: Duration) -> u64 {
    let wav = 44 + 4 * positions(rate, elapsed + burst);
    2 * wav + 64 * 1024
}

#[test]
fn a_far_future_timestamp_is_ignored_and_counted() {
    let mut pace = CallerPace::new(RATE);
    let mut rec = CallRecorder::new(RATE);
    for (elapsed, stamp) in [(20, 0), (40, 1_799_000), (60, 40)] {
        let at = pace
            .admit(ms(elapsed), FRAME, Some(ms(stamp)))
            .expect("in time");
        rec.push_caller_at(at, &[1; FRAME]);
    }
    assert_eq!(pace.clamped(), 1);
    // The lie opened no gap: three frames back to back.
    assert_eq!(rec.position(), 3 * FRAME as u64);
    assert_eq!(pace.position(), rec.position());
    assert!(rec.memory_bytes() < 64 * 1024, "{}", rec.memory_bytes());
}

#[test]
fn believable_timestamps_open_gaps_and_old_ones_append() {
    let mut pace = CallerPace::new(RATE);
    assert_eq!(pace.admit(ms(20), FRAME, Some(ms(0))), Ok(ms(0)));
    // Frames lost between 20 ms and 1 s: the gap is real time.
    assert_eq!(pace.admit(ms(1_020), FRAME, Some(ms(1_000))), Ok(ms(1_000)));
    // A duplicate goes after what is there, as the recorder would put it.
    assert_eq!(pace.admit(ms(1_040), FRAME, Some(ms(500))), Ok(ms(1_020)));
    // No timestamp: next in line.
    assert_eq!(pace.admit(ms(1_060), FRAME, None), Ok(ms(1_040)));
    // Ahead of the clock, but within the allowance: believed.
    assert_eq!(pace.admit(ms(1_080), FRAME, Some(ms(2_500))), Ok(ms(2_500)));
    assert_eq!(pace.clamped(), 0);
}

#[test]
fn a_frame_too_fast_is_refused_and_not_counted() {
    let burst = ms(100);
    let mut pace = CallerPace::with_burst(RATE, burst);
    assert_eq!(pace.admit(ms(0), 5 * FRAME, None), Ok(ms(0)));
    let err = pace.admit(ms(0), FRAME, None).expect_err("120 ms at 0 ms");
    assert_eq!(
        err,
        PaceError::TooFast {
            audio: ms(120),
            elapsed: ms(0),
            burst
        }
    );
    let text = err.to_string();
    assert!(text.contains("120ms") && text.contains("100ms"), "{text}");
    assert_eq!(pace.position(), 5 * FRAME as u64);
    // The clock catches up: the next frame is in time again.
    assert_eq!(pace.admit(ms(20), FRAME, None), Ok(ms(100)));
}

#[test]
fn three_times_real_time_is_refused_within_half_the_burst() {
    // At speed s the timeline gains (s - 1) s of audio per second of call,
    // so it passes the allowance after burst / (s - 1): 1 s at 3x.
    for stamped in [false, true] {
        let mut pace = CallerPace::new(RATE);
        let mut tripped = None;
        for k in 0..10_000u64 {
            let elapsed = Duration::from_micros(k * 20_000 / 3);
            let stamp = stamped.then(|| ms(k * 20));
            if pace.admit(elapsed, FRAME, stamp).is_err() {
                tripped = Some(elapsed);
                break;
            }
        }
        let tripped = tripped.expect("3x real time is refused");
        assert!(tripped <= DEFAULT_BURST / 2, "{tripped:?}");
        assert!(tripped > DEFAULT_BURST / 2 - ms(20), "{tripped:?}");
    }
}

#[derive(Debug, Clone)]
struct Frame {
    /// Time since the previous frame arrived.
    after: Duration,
    samples: usize,
    stamp: Option<Duration>,
}

fn frame() -> impl Strategy<Value = Frame> {
    let stamp = prop_oneof![
        Just(None),
        (0u64..3_600_000).prop_map(|t| Some(ms(t))),
        any::<u64>().prop_map(|n| Some(Duration::from_nanos(n))),
        any::<u64>().prop_map(|s| Some(Duration::from_secs(s))),
    ];
    (0u64..200, 0usize..2_000, stamp).prop_map(|(after, samples, stamp)| Frame {
        after: ms(after),
        samples,
        stamp,
    })
}

proptest! {
    #[test]
    fn honest_carriers_are_never_refused(
        rate in prop::sample::select(SampleRate::RESAMPLABLE.to_vec()),
        delays in prop::collection::vec(0u64..400, 1..600),
        ahead in 0u64..1_500,
        stamped in any::<bool>(),
    ) {
        // Frame k holds audio k*20 .. (k+1)*20 ms. It arrives at k*20 ms
        // (exactly real time, as early as any sender) plus jitter, in order;
        // the carrier's clock may run up to 1.5 s ahead of the shell's.
        let mut pace = CallerPace::new(rate);
        let mut rec = CallRecorder::new(rate);
        let samples = vec![1; rate.frame_len()];
        let mut arrived = Duration::ZERO;
        for (k, delay) in (0u64..).zip(&delays) {
            arrived = arrived.max(ms(k * 20 + delay));
            let stamp = stamped.then(|| ms(k * 20 + ahead));
            let at = pace.admit(arrived, samples.len(), stamp);
            prop_assert!(at.is_ok(), "frame {} at {:?}: {:?}", k, arrived, at);
            if let Ok(at) = at {
                rec.push_caller_at(at, &samples);
            }
        }
        prop_assert_eq!(pace.clamped(), 0);
        let gap = if stamped { positions(rate, ms(ahead)) } else { 0 };
        let audio = (delays.len() * samples.len()) as u64;
        prop_assert_eq!(rec.position(), gap + audio);
    }

    #[test]
    fn recorder_memory_follows_the_wall_clock(
        rate in prop::sample::select(SampleRate::RESAMPLABLE.to_vec()),
        burst in (0u64..5_000).prop_map(ms),
        frames in prop::collection::vec(frame(), 0..200),
    ) {
        let mut pace = CallerPace::with_burst(rate, burst);
        let mut rec = CallRecorder::new(rate);
        let mut elapsed = Duration::ZERO;
        for f in &frames {
            elapsed += f.after;
            let Ok(at) = pace.admit(elapsed, f.samples, f.stamp) else {
                continue;
            };
            prop_assert!(at <= elapsed + burst, "{:?} past {:?}", at, elapsed + burst);
            rec.push_caller_at(at, &vec![7; f.samples]);
            prop_assert!(rec.position() <= pace.position());
            prop_assert!(pace.position() <= positions(rate, elapsed + burst));
            let bound = memory_bound(rate, elapsed, burst);
            prop_assert!(
                rec.memory_bytes() as u64 <= bound,
                "{} bytes after {:?}, bound {}", rec.memory_bytes(), elapsed, bound
            );
        }
    }

}
