//! Silero VAD on real speech: an espeak-ng sentence between two seconds of
//! silence, and two calls sharing one model.
#![cfg(feature = "onnx")]

mod onnx_support;

use std::time::Instant;

use voxgate_core::audio::SampleRate;
use voxgate_providers::local::SileroVad;
use voxgate_providers::{ProviderError, VadModel, VadStream};

const WINDOW: usize = SileroVad::WINDOW_SAMPLES;
const SECOND: usize = 16_000;
const SENTENCE: &str = "Hello, I would like to book a table for two people tonight.";

fn vad() -> SileroVad {
    let model = onnx_support::models()
        .silero_vad()
        .expect("silero in the manifest");
    SileroVad::load(onnx_support::runtime(), model).expect("loading Silero")
}

/// 1 s of silence, the sentence, 1 s of silence; and where the speech is.
/// espeak-ng's own quiet lead-in and tail are cut, so that the range is the
/// audible sentence (with its pauses between words) and the silence is
/// exactly the padding.
fn padded_sentence() -> (Vec<i16>, std::ops::Range<usize>) {
    let clip = onnx_support::speak(SENTENCE, SampleRate::HZ_16000);
    let audible = |s: &i16| s.unsigned_abs() > 300;
    let first = clip
        .iter()
        .position(audible)
        .expect("espeak-ng said something");
    let last = clip
        .iter()
        .rposition(audible)
        .expect("espeak-ng said something");
    let speech = &clip[first..=last];
    let mut audio = vec![0i16; SECOND];
    audio.extend(speech);
    audio.extend(vec![0i16; SECOND]);
    (audio, SECOND..SECOND + speech.len())
}

fn probabilities(stream: &mut dyn VadStream, audio: &[i16]) -> Vec<f32> {
    audio
        .chunks_exact(stream.window_samples())
        .map(|w| stream.push(w).expect("a window"))
        .collect()
}

#[test]
fn speech_is_detected_and_silence_is_not() {
    let vad = vad();
    let (audio, speech) = padded_sentence();
    let mut stream = vad.stream();
    assert_eq!(stream.window_samples(), 512);
    let p = probabilities(stream.as_mut(), &audio);

    let window_range = |w: usize| w * WINDOW..(w + 1) * WINDOW;
    // Windows wholly inside the sentence (which has its own short pauses
    // between words), and wholly inside the added silence.
    let inside: Vec<f32> = (0..p.len())
        .filter(|&w| {
            speech.contains(&window_range(w).start) && speech.contains(&(window_range(w).end - 1))
        })
        .map(|w| p[w])
        .collect();
    let leading: Vec<f32> = (0..p.len())
        .filter(|&w| window_range(w).end <= speech.start)
        .map(|w| p[w])
        .collect();
    // Silero lets go of speech within ~100 ms (its recurrent state).
    let trailing: Vec<f32> = (0..p.len())
        .filter(|&w| window_range(w).start >= speech.end + SECOND / 10)
        .map(|w| p[w])
        .collect();
    let speaking = inside.iter().filter(|&&x| x > 0.5).count();
    eprintln!(
        "silero: {speaking}/{} speech windows > 0.5; max in leading silence {:?}, trailing {:?}",
        inside.len(),
        leading.iter().copied().fold(0.0f32, f32::max),
        trailing.iter().copied().fold(0.0f32, f32::max),
    );
    let after: Vec<f32> = (0..p.len())
        .filter(|&w| window_range(w).end > speech.end)
        .take(5)
        .map(|w| p[w])
        .collect();
    eprintln!("silero: first windows after the speech {after:?}");
    assert!(speaking * 10 >= inside.len() * 8, "{inside:?}");
    assert!(
        leading.len() >= 30 && leading.iter().all(|&x| x < 0.2),
        "{leading:?}"
    );
    assert!(
        trailing.len() >= 20 && trailing.iter().all(|&x| x < 0.2),
        "{trailing:?}"
    );

    // Cost: ten passes through a fresh stream.
    let mut stream = vad.stream();
    let start = Instant::now();
    let windows: usize = (0..10)
        .map(|_| probabilities(stream.as_mut(), &audio).len())
        .sum();
    eprintln!(
        "silero: {:?} per window over {windows} windows (1 thread)",
        start.elapsed() / windows as u32
    );
}

#[test]
fn streams_of_one_model_do_not_share_state() {
    let vad = vad();
    let (speech, _) = padded_sentence();
    let silence_and_noise: Vec<i16> = (0..speech.len())
        .map(|i| ((i * 7919) % 61) as i16 - 30)
        .collect();
    let alone_speech = probabilities(vad.stream().as_mut(), &speech);
    let alone_quiet = probabilities(vad.stream().as_mut(), &silence_and_noise);

    // Two calls at once, window by window.
    let (mut a, mut b) = (vad.stream(), vad.stream());
    let mut together_speech = Vec::new();
    let mut together_quiet = Vec::new();
    for (wa, wb) in speech
        .chunks_exact(WINDOW)
        .zip(silence_and_noise.chunks_exact(WINDOW))
    {
        together_speech.push(a.push(wa).expect("a window"));
        together_quiet.push(b.push(wb).expect("a window"));
    }
    assert_eq!(together_speech, alone_speech);
    assert_eq!(together_quiet, alone_quiet);

    // Reset forgets the state: the same as a fresh stream.
    a.reset();
    assert_eq!(probabilities(a.as_mut(), &speech), alone_speech);
}

#[test]
fn windows_of_the_wrong_size_are_refused() {
    let mut stream = vad().stream();
    let error = stream.push(&[0; 480]).expect_err("480 samples");
    assert!(matches!(error, ProviderError::Input(_)), "{error:?}");
}
