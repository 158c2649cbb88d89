//! `CallRecorder`: agent audio lands where the caller heard it, overlaps
//! queue up as the carrier plays them, `clear` cuts what never played,
//! caller gaps become silence, and the output is a WAV others can read.

use std::io::Cursor;
use std::time::Duration;

use proptest::prelude::*;
use voxgate_core::audio::recording::{DEFAULT_MAX_RECORDING, MAX_CALLER_GAP};
use voxgate_core::audio::{CallRecorder, SampleRate, parse_wav};

const RATE: SampleRate = SampleRate::HZ_8000;
/// One 20 ms frame at 8 kHz.
const FRAME: usize = 160;

/// The recording split into its (caller, agent) channels.
fn channels(wav: &[u8]) -> (Vec<i16>, Vec<i16>) {
    let wav = parse_wav(wav).expect("the recorder writes a valid WAV");
    assert_eq!(wav.channels, 2);
    let caller = wav.samples.iter().step_by(2).copied().collect();
    let agent = wav.samples.iter().skip(1).step_by(2).copied().collect();
    (caller, agent)
}

/// `value` repeated `len` times.
fn tone(value: i16, len: usize) -> Vec<i16> {
    vec![value; len]
}

/// Sample positions in `d` at `rate`, rounded down (as the recorder counts).
fn positions(rate: SampleRate, d: Duration) -> u64 {
    u64::try_from(d.as_nanos() * u128::from(rate.hz()) / 1_000_000_000).expect("test durations")
}

/// `(value, run length)` pairs, for readable expectations.
fn runs(track: &[i16]) -> Vec<(i16, usize)> {
    let mut out: Vec<(i16, usize)> = Vec::new();
    for &s in track {
        match out.last_mut() {
            Some((value, len)) if *value == s => *len += 1,
            _ => out.push((s, 1)),
        }
    }
    out
}

#[test]
fn agent_audio_lands_where_the_caller_timeline_is() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller(&tone(1, 5 * FRAME));
    assert_eq!(rec.position(), 800);
    assert_eq!(rec.elapsed(), Duration::from_millis(100));
    rec.push_agent(&tone(7, 400));
    rec.push_caller(&tone(2, 5 * FRAME));

    let (caller, agent) = channels(&rec.finish());
    assert_eq!(runs(&caller), [(1, 800), (2, 800)]);
    assert_eq!(runs(&agent), [(0, 800), (7, 400), (0, 400)]);
}

#[test]
fn agent_audio_sent_while_playing_queues_behind_it() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller(&tone(1, FRAME));
    // 60 ms of agent audio, scheduled 160..640.
    rec.push_agent(&tone(5, 3 * FRAME));
    rec.push_caller(&tone(1, FRAME));
    // Handed over at 320 while the first chunk still plays: 640..800.
    rec.push_agent(&tone(6, FRAME));
    assert_eq!(rec.agent_end(), 800);
    rec.push_caller(&tone(1, 6 * FRAME));
    // Playback ran dry at 800; the next chunk plays as soon as it is sent,
    // at 1280, not back at the end of the last one.
    rec.push_agent(&tone(9, FRAME));
    rec.push_caller(&tone(1, 2 * FRAME));

    let (caller, agent) = channels(&rec.finish());
    assert_eq!(runs(&caller), [(1, 1600)]);
    assert_eq!(
        runs(&agent),
        [(0, 160), (5, 480), (6, 160), (0, 480), (9, 160), (0, 160)]
    );
}

#[test]
fn clear_discards_what_was_scheduled_after_now() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller(&tone(1, FRAME));
    // A whole sentence, 160..1760, sent far ahead of playback.
    rec.push_agent(&tone(5, 10 * FRAME));
    rec.push_caller(&tone(2, 2 * FRAME));
    // Barge-in at 480: the caller heard 320 samples of it.
    rec.clear();
    assert_eq!(rec.agent_end(), 480);
    // The next reply starts right away, not after the discarded audio.
    rec.push_agent(&tone(8, FRAME));
    rec.push_caller(&tone(3, 2 * FRAME));

    let (caller, agent) = channels(&rec.finish());
    assert_eq!(runs(&caller), [(1, 160), (2, 320), (3, 320)]);
    assert_eq!(runs(&agent), [(0, 160), (5, 320), (8, 160), (0, 160)]);
}

#[test]
fn clear_with_nothing_scheduled_changes_nothing() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller(&tone(1, FRAME));
    rec.push_agent(&tone(5, FRAME / 2));
    rec.push_caller(&tone(1, FRAME));
    rec.clear();
    let (_, agent) = channels(&rec.finish());
    assert_eq!(runs(&agent), [(0, 160), (5, 80), (0, 80)]);
}

#[test]
fn timestamp_gaps_in_caller_audio_become_silence() {
    let mut rec = CallRecorder::new(RATE);
    let ms = Duration::from_millis;
    rec.push_caller_at(ms(0), &tone(1, FRAME));
    rec.push_caller_at(ms(20), &tone(2, FRAME));
    // Frames for 40 and 60 ms were lost.
    rec.push_caller_at(ms(80), &tone(3, FRAME));
    assert_eq!(rec.position(), 800);
    // Agent audio sent now lands after the gap, where the caller was.
    rec.push_agent(&tone(9, FRAME));
    // A duplicate (old timestamp) is appended in arrival order.
    rec.push_caller_at(ms(20), &tone(4, FRAME));
    // No audio, but time passed: the timeline moves on.
    rec.push_caller_at(ms(200), &[]);
    assert_eq!(rec.position(), 1600);

    let (caller, agent) = channels(&rec.finish());
    assert_eq!(
        runs(&caller),
        [(1, 160), (2, 160), (0, 320), (3, 160), (4, 160), (0, 640)]
    );
    assert_eq!(runs(&agent), [(0, 800), (9, 160), (0, 640)]);
}

#[test]
fn the_recording_is_as_long_as_the_longer_track() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller(&tone(1, FRAME));
    // The goodbye is still playing when the last caller frame arrives.
    rec.push_agent(&tone(5, 3 * FRAME));
    let (caller, agent) = channels(&rec.clone().finish());
    assert_eq!(runs(&caller), [(1, 160), (0, 480)]);
    assert_eq!(runs(&agent), [(0, 160), (5, 480)]);

    // The caller hung up at 160: the shell clears first, so the unheard
    // tail is not recorded.
    rec.clear();
    let (caller, agent) = channels(&rec.finish());
    assert_eq!(runs(&caller), [(1, 160)]);
    assert_eq!(runs(&agent), [(0, 160)]);
}

#[test]
fn an_empty_recording_is_a_valid_empty_wav() {
    let bytes = CallRecorder::new(SampleRate::HZ_16000).finish();
    assert_eq!(bytes.len(), 44);
    let wav = parse_wav(&bytes).expect("valid");
    assert_eq!(
        (wav.sample_rate, wav.channels, wav.frames()),
        (SampleRate::HZ_16000, 2, 0)
    );
}

#[test]
fn hound_reads_the_recording() {
    let rate = SampleRate::HZ_16000;
    let mut rec = CallRecorder::new(rate);
    assert_eq!(rec.rate(), rate);
    let caller: Vec<i16> = (0..640).map(|i| (i * 37 % 2000 - 1000) as i16).collect();
    rec.push_caller(&caller[..320]);
    rec.push_agent(&[i16::MAX, i16::MIN, -1]);
    rec.push_caller(&caller[320..]);
    let bytes = rec.finish();

    let mut reader = hound::WavReader::new(Cursor::new(bytes)).expect("hound accepts it");
    assert_eq!(
        reader.spec(),
        hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        }
    );
    assert_eq!(reader.duration(), 640);
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("samples");
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(left, caller);
    assert_eq!(&right[320..323], [i16::MAX, i16::MIN, -1]);
    assert!(right[..320].iter().chain(&right[323..]).all(|&s| s == 0));
}

#[test]
fn audio_past_the_cap_is_dropped_and_counted() {
    let mut rec = CallRecorder::with_max_duration(RATE, Duration::from_millis(100));
    rec.push_caller(&tone(1, 4 * FRAME));
    // Scheduled 640..960: half of it is past the 800-sample cap.
    rec.push_agent(&tone(5, 2 * FRAME));
    rec.push_caller(&tone(2, 2 * FRAME));
    assert_eq!(rec.dropped(), 160 + 160);
    // A timestamp far in the future cannot make the file any longer.
    rec.push_caller_at(Duration::from_secs(3600), &tone(3, FRAME));
    assert_eq!(rec.dropped(), 480);

    let (caller, agent) = channels(&rec.finish());
    assert_eq!(runs(&caller), [(1, 640), (2, 160)]);
    assert_eq!(runs(&agent), [(0, 640), (5, 160)]);
}

#[test]
fn one_frame_stamped_1799_s_costs_a_bounded_gap_not_half_an_hour() {
    // Before the gap was bounded this allocated about 139 MB at 8 kHz and
    // 275 MB at 16 kHz: 1799 s of silence, with the WAV buffer's doubling.
    for rate in [SampleRate::HZ_8000, SampleRate::HZ_16000] {
        let mut rec = CallRecorder::new(rate);
        rec.push_caller_at(Duration::from_secs(1799), &vec![1; rate.frame_len()]);
        let gap = positions(rate, MAX_CALLER_GAP);
        assert_eq!(rec.position(), gap + rate.frame_len() as u64, "{rate}");
        let bytes = rec.memory_bytes();
        assert!(bytes < 1024 * 1024, "{rate}: {bytes} bytes");
        assert!(bytes as u64 >= 4 * gap, "{rate}: the WAV holds the gap");
    }
}

#[test]
fn a_long_real_gap_is_filled_by_the_frames_that_follow() {
    let mut rec = CallRecorder::new(RATE);
    rec.push_caller_at(Duration::from_millis(0), &[1; FRAME]);
    // 12 s with no audio, then frames again: each may fill 5 s more.
    rec.push_caller_at(Duration::from_millis(12_020), &[2; FRAME]);
    assert_eq!(
        rec.position(),
        positions(RATE, Duration::from_millis(5_020)) + FRAME as u64
    );
    rec.push_caller_at(Duration::from_millis(12_040), &[3; FRAME]);
    rec.push_caller_at(Duration::from_millis(12_060), &[4; FRAME]);
    assert_eq!(
        rec.position(),
        positions(RATE, Duration::from_millis(12_080))
    );
    rec.push_caller_at(Duration::from_millis(12_080), &[5; FRAME]);
    assert_eq!(
        rec.position(),
        positions(RATE, Duration::from_millis(12_100))
    );
}

#[test]
fn the_default_cap_is_documented_as_thirty_minutes() {
    assert_eq!(DEFAULT_MAX_RECORDING, Duration::from_secs(1800));
}

/// What the recorder is given, for the model test.
#[derive(Debug, Clone)]
enum Op {
    Caller(Vec<i16>),
    CallerAt(u64, Vec<i16>),
    Agent(Vec<i16>),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let samples = || prop::collection::vec(any::<i16>(), 0..200);
    prop_oneof![
        3 => samples().prop_map(Op::Caller),
        1 => (0u64..500, samples()).prop_map(|(ms, s)| Op::CallerAt(ms, s)),
        2 => samples().prop_map(Op::Agent),
        1 => Just(Op::Clear),
    ]
}

/// The same rules written as plainly as possible: whole tracks indexed by
/// position, nothing drained early.
fn model(ops: &[Op]) -> (Vec<i16>, Vec<i16>) {
    let (mut caller, mut agent): (Vec<i16>, Vec<i16>) = (Vec::new(), Vec::new());
    let mut agent_end = 0;
    for op in ops {
        match op {
            Op::Caller(s) => caller.extend(s),
            Op::CallerAt(ms, s) => {
                let at = (*ms * 8) as usize;
                if at > caller.len() {
                    caller.resize(at, 0);
                }
                caller.extend(s);
            }
            Op::Agent(s) => {
                let start = caller.len().max(agent_end);
                agent.resize(start, 0);
                agent.extend(s);
                agent_end = start + s.len();
            }
            Op::Clear => {
                agent.truncate(caller.len());
                agent_end = agent_end.min(caller.len());
            }
        }
    }
    let len = caller.len().max(agent_end);
    caller.resize(len, 0);
    agent.resize(len, 0);
    (caller, agent)
}

proptest! {
    #[test]
    fn matches_the_plain_model(ops in prop::collection::vec(op(), 0..40)) {
        let mut rec = CallRecorder::new(RATE);
        for op in &ops {
            match op {
                Op::Caller(s) => rec.push_caller(s),
                Op::CallerAt(ms, s) => rec.push_caller_at(Duration::from_millis(*ms), s),
                Op::Agent(s) => rec.push_agent(s),
                Op::Clear => rec.clear(),
            }
        }
        prop_assert_eq!(rec.dropped(), 0);
        prop_assert_eq!(channels(&rec.finish()), model(&ops));
    }
}

proptest! {
    // Few cases: most pushes fill a whole 5 s gap, sample by sample, and
    // the crate's tests run unoptimized.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn one_push_grows_the_recorder_by_a_bounded_gap(
        stamps in prop::collection::vec(any::<u64>(), 1..20),
    ) {
        // Without a guard: whatever the timestamps, each push moves the
        // timeline by at most one gap plus its own samples.
        let mut rec = CallRecorder::new(RATE);
        let most = positions(RATE, MAX_CALLER_GAP) + FRAME as u64;
        for stamp in stamps {
            let before = rec.position();
            rec.push_caller_at(Duration::from_nanos(stamp), &[1; FRAME]);
            prop_assert!(rec.position() - before <= most);
        }
        let bound = 2 * (44 + 4 * rec.position()) + 64 * 1024;
        prop_assert!(rec.memory_bytes() as u64 <= bound);
    }
}
