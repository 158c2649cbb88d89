//! Smart Turn v3.2: the same probability as pipecat on a reference signal,
//! and real (synthetic) speech.
#![cfg(feature = "onnx")]

mod onnx_support;

use std::time::{Duration, Instant};

use voxgate_core::audio::SampleRate;
use voxgate_providers::EndOfTurnModel;
use voxgate_providers::local::{SessionThreads, SmartTurn};

const COMPLETE: &str = "I would like to book a table for two people tonight.";
const CUT_OFF: &str = "I would like to book a table for";
const TRAILING_OFF: &str = "I would like to book a table for, um";

fn smart_turn() -> SmartTurn {
    let model = onnx_support::models()
        .smart_turn()
        .expect("smart turn in the manifest");
    SmartTurn::load(onnx_support::runtime(), model, SessionThreads::ONE)
        .expect("loading Smart Turn")
}

/// The signal of the `features_match_pipecat` unit test: integer arithmetic,
/// so that the Python reference has the same samples.
fn reference_signal() -> Vec<i16> {
    let mut state: u32 = 12345;
    (0..48_000i32)
        .map(|i| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (state >> 20) as i32 - 2048;
            let period = 37 + (i / 4000) * 11;
            let saw = (i % period) * 2 * 12_000 / period - 12_000;
            let envelope = if (i / 8000) % 2 == 0 { 4 } else { 1 };
            ((saw * envelope).div_euclid(4) + noise) as i16
        })
        .collect()
}

/// Whether onnxruntime takes its VNNI integer kernels on this CPU.
fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni")
            || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn matches_pipecat_on_a_reference_signal() {
    let p = smart_turn()
        .predict(&reference_signal())
        .expect("a prediction");
    // pipecat 1.14.0's LocalSmartTurnAnalyzerV3._predict_endpoint (left
    // zero-padding to 8 s, its compute_whisper_log_mel_features,
    // onnxruntime 1.31.1 with one thread, sequential, all optimizations) on
    // the same samples and the same model file. The model is int8: on a CPU
    // with VNNI onnxruntime's integer kernels accumulate exactly, on one
    // with only AVX2 they saturate pairwise sums, so pipecat's own answer
    // differs by CPU; both were measured with pipecat itself.
    let pipecat = if has_vnni() {
        0.122_457_71
    } else {
        // AMD EPYC, AVX2 without VNNI.
        0.828_564_47
    };
    assert!((p - pipecat).abs() < 1e-4, "{p}, pipecat says {pipecat}");
}

#[test]
fn speech_that_trails_off_scores_lower_than_a_complete_sentence() {
    let model = smart_turn();
    let score = |text: &str| {
        let audio = onnx_support::speak(text, SampleRate::HZ_16000);
        model.predict(&audio).expect("a prediction")
    };
    let (complete, cut_off, trailing_off) = (score(COMPLETE), score(CUT_OFF), score(TRAILING_OFF));
    eprintln!(
        "smart turn: complete {complete:.4}, cut off {cut_off:.4}, trailing off {trailing_off:.4}"
    );
    // The model hears prosody as much as words. espeak-ng gives any text it
    // ends a sentence's falling intonation, so a sentence cut off after
    // "for" sounds finished (~0.98, as in pipecat): that one is only
    // reported. A filler word is the cue the robotic voice can carry.
    assert!(complete > 0.5, "complete {complete}");
    assert!(trailing_off < 0.5, "trailing off {trailing_off}");

    let runs = 10;
    let audio = onnx_support::speak(COMPLETE, SampleRate::HZ_16000);
    let start = Instant::now();
    for _ in 0..runs {
        model.predict(&audio).expect("a prediction");
    }
    let per_prediction: Duration = start.elapsed() / runs;
    eprintln!("smart turn: {per_prediction:?} per prediction (1 thread, features included)");
}

#[test]
fn more_than_eight_seconds_and_nothing_at_all_are_accepted() {
    let model = smart_turn();
    let long = vec![0i16; SmartTurn::WINDOW_SAMPLES + 16_000];
    let p = model.predict(&long).expect("a prediction");
    assert!((0.0..=1.0).contains(&p), "{p}");
    let p = model.predict(&[]).expect("a prediction");
    assert!((0.0..=1.0).contains(&p), "{p}");
}
