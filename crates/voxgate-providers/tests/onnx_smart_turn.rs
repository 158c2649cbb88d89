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

#[test]
fn matches_pipecat_on_a_reference_signal() {
    let p = smart_turn()
        .predict(&reference_signal())
        .expect("a prediction");
    // pipecat 1.14.0's LocalSmartTurnAnalyzerV3._predict_endpoint steps
    // (left zero-padding to 8 s, its compute_whisper_log_mel_features,
    // onnxruntime 1.31.1 with one thread, sequential, all optimizations) on
    // the same samples and the same model file.
    assert!((p - 0.122_457_71).abs() < 1e-4, "{p}");
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
