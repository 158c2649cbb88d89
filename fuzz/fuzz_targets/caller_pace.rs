//! Caller frames from an untrusted peer through `audio::CallerPace` into
//! `audio::CallRecorder`, as a shell does for every caller frame: arbitrary
//! sample rates, allowances, recording caps, frame sizes, carrier
//! timestamps (far in the future, behind, absent) and shell clocks
//! (including one that steps back). Checks:
//! - nothing panics;
//! - an admitted frame's timestamp is never past `elapsed + burst`;
//! - a refused frame leaves the guard's timeline where it was;
//! - the recorder's timeline never passes the guard's, and the guard's
//!   never passes `rate × (elapsed + burst)`;
//! - the recorder's memory stays within 4 bytes per position of
//!   `elapsed + burst` (twice that for `Vec`'s spare capacity) plus a
//!   constant, whatever the timestamps claim;
//! - the finished WAV holds exactly the timeline, up to the cap.
//!
//! Input: a 6-byte header (rate: u24 LE, taken modulo 48 kHz, plus 1;
//! burst: u16 LE milliseconds; cap: u8 seconds, modulo 11), then frames:
//! a flags byte (low two bits: no timestamp, a u32 LE of milliseconds, or a
//! u64 LE of nanoseconds; bit 7: the clock steps back instead of forward),
//! a u16 LE clock step in milliseconds, a u16 LE sample count (its low 12
//! bits: up to 4095, over 85 ms at any rate here), then the timestamp.
//! Rates stop at 48 kHz, caps at 10 s and frames at 4095 samples so that
//! one input cannot legitimately need more memory, or time, than the fuzzer
//! allows.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use voxgate_core::audio::{CallRecorder, CallerPace, SampleRate, parse_wav};

/// Room for frame-sized buffers: the pending caller track (a frame of up
/// to 4095 samples, with spare capacity) and the 16 KiB drain scratch.
const SLACK: u64 = 64 * 1024;

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|[b]| b)
    }

    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
}

/// Sample positions in `d` at `rate`, rounded down, as the recorder counts.
fn positions(rate: SampleRate, d: Duration) -> u64 {
    u64::try_from(d.as_nanos() * u128::from(rate.hz()) / 1_000_000_000).unwrap_or(u64::MAX)
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let Some([r0, r1, r2]) = input.take::<3>() else {
        return;
    };
    let hz = u32::from_le_bytes([r0, r1, r2, 0]) % 48_000 + 1;
    let rate = SampleRate::new(hz).expect("1..=48000 Hz is a valid rate");
    let Some(burst) = input.u16() else { return };
    let burst = Duration::from_millis(burst.into());
    let Some(cap) = input.u8() else { return };
    let cap = Duration::from_secs(u64::from(cap % 11));

    let mut pace = CallerPace::with_burst(rate, burst);
    let mut rec = CallRecorder::with_max_duration(rate, cap);
    let mut elapsed = Duration::ZERO;
    // Memory never shrinks, so it is bounded by the furthest clock seen.
    let mut furthest = Duration::ZERO;

    while let (Some(flags), Some(step), Some(samples)) = (input.u8(), input.u16(), input.u16()) {
        let step = Duration::from_millis(step.into());
        elapsed = if flags & 0x80 == 0 {
            elapsed + step
        } else {
            elapsed.saturating_sub(step)
        };
        furthest = furthest.max(elapsed);
        let stamp = match flags & 0b11 {
            1 => match input.take::<4>() {
                Some(ms) => Some(Duration::from_millis(u32::from_le_bytes(ms).into())),
                None => break,
            },
            2 => match input.take::<8>() {
                Some(ns) => Some(Duration::from_nanos(u64::from_le_bytes(ns))),
                None => break,
            },
            _ => None,
        };
        let samples = usize::from(samples & 0x0FFF);

        let before = pace.position();
        match pace.admit(elapsed, samples, stamp) {
            Ok(at) => {
                assert!(at <= elapsed + burst, "{at:?} past {elapsed:?} + {burst:?}");
                rec.push_caller_at(at, &vec![0x55; samples]);
            }
            Err(_) => assert_eq!(
                pace.position(),
                before,
                "a refused frame moved the timeline"
            ),
        }
        assert!(rec.position() <= pace.position());
        let allowed = positions(rate, furthest + burst);
        assert!(pace.position() <= allowed);
        let bound = 2 * (44 + 4 * allowed) + SLACK;
        let held = rec.memory_bytes() as u64;
        assert!(
            held <= bound,
            "{held} bytes at {rate} after {furthest:?}: bound {bound}"
        );
    }

    let expected = rec.position().min(positions(rate, cap));
    let wav = parse_wav(&rec.finish()).expect("the recorder writes a valid WAV");
    assert_eq!(wav.frames() as u64, expected);
});
