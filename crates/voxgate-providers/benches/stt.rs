//! Whisper's cost and accuracy by encoder window: `cargo bench -p
//! voxgate-providers --bench stt`.
//!
//! Each sentence is spoken by espeak-ng and goes the way a phone caller's
//! words do (8 kHz μ-law, then 16 kHz), with the silence the turn engine
//! hands to STT around it: 300 ms of prefix padding before (give or take
//! where the VAD saw speech start: each sentence is heard at 4 offsets) and
//! 320 ms of end-of-speech silence after. The table gives, per window, the
//! median time per transcription, the word error rate and the clips heard
//! exactly. Needs espeak-ng; fetches the models on first use.

use std::time::{Duration, Instant};

use voxgate_core::audio::g711::{ulaw_decode_into, ulaw_encode_into};
use voxgate_core::audio::{Resampler, SampleRate};
use voxgate_models::{Manifest, NoProgress, fetch, models_dir};
use voxgate_providers::local::{EncoderWindow, WhisperConfig, WhisperStt};
use voxgate_testkit::{CALLER_QUESTIONS, espeak};

/// Asked after the voice benchmark's questions.
const MORE_SENTENCES: [&str; 10] = [
    "What is the capital of France?",
    "Wait, stop, I have another question.",
    "I would like to change my reservation to Friday evening.",
    "My name is John Smith and my phone number ends in four five six.",
    "Yes.",
    "No, thank you.",
    "Could you repeat that please?",
    "I need to speak to someone about my order, it arrived broken.",
    "Hi, I booked a table for four people on Saturday at eight, but two more friends are \
     coming, so could you make it a table for six instead?",
    "I ordered a blue jacket in size medium last week and the package arrived today, but it \
     is the wrong colour and the sleeves are too long, so I would like to return it.",
];
/// Silence before the speech, in ms: where the VAD's onset fell.
const LEADS_MS: [usize; 4] = [150, 230, 300, 370];

fn main() {
    let dir = models_dir(|k| std::env::var(k).ok());
    let paths = fetch(&Manifest::embedded(), &dir, &NoProgress).expect("fetching the models");
    let whisper_dir = paths.whisper_dir().expect("the Whisper model");
    let sentences: Vec<&str> = CALLER_QUESTIONS.into_iter().chain(MORE_SENTENCES).collect();
    let clips: Vec<(&str, Vec<i16>)> = sentences
        .iter()
        .flat_map(|s| LEADS_MS.map(|lead| (*s, phone_caller(s, lead))))
        .collect();
    let seconds: f32 = clips.iter().map(|(_, c)| c.len() as f32 / 16_000.0).sum();
    println!(
        "{} sentences at {} offsets, {seconds:.1} s of audio in all",
        sentences.len(),
        LEADS_MS.len()
    );
    let fitted = |padding_ms, min_ms| EncoderWindow::Fitted {
        padding: Duration::from_millis(padding_ms),
        min: Duration::from_millis(min_ms),
    };
    let windows = [
        ("30 s (full)", EncoderWindow::Full),
        ("fitted +1 s", fitted(1_000, 0)),
        ("fitted +2 s, min 5 s", fitted(2_000, 5_000)),
        ("fitted +2 s, min 10 s (default)", EncoderWindow::DEFAULT),
        ("fitted +2 s, min 15 s", fitted(2_000, 15_000)),
        ("fitted +2 s, min 20 s", fitted(2_000, 20_000)),
    ];
    println!("| window | median time | WER | exact |\n| --- | --- | --- | --- |");
    for (name, window) in windows {
        let config = WhisperConfig::default().with_int8(true).with_window(window);
        let stt = WhisperStt::load(whisper_dir, config).expect("loading Whisper");
        let mut times = Vec::new();
        let (mut errors, mut words, mut exact) = (0, 0, 0);
        let mut misheard = Vec::new();
        for (sentence, clip) in &clips {
            let start = Instant::now();
            let text = stt.transcribe_blocking(clip).expect("transcription");
            times.push(start.elapsed());
            let (reference, heard) = (normalise(sentence), normalise(&text));
            errors += edit_distance(&reference, &heard);
            words += reference.len();
            if reference == heard {
                exact += 1;
            } else {
                misheard.push(text);
            }
        }
        times.sort();
        println!(
            "| {name} | {:.0} ms | {:.1} % | {exact}/{} |",
            times[times.len() / 2].as_secs_f64() * 1000.0,
            100.0 * errors as f64 / words as f64,
            clips.len()
        );
        for text in misheard {
            eprintln!("  {name}: {text:?}");
        }
    }
}

/// `text` as a phone caller's words reach STT, after `lead_ms` of silence.
fn phone_caller(text: &str, lead_ms: usize) -> Vec<i16> {
    let speech = espeak(text, 150, SampleRate::HZ_8000);
    let mut ulaw = Vec::new();
    ulaw_encode_into(&speech, &mut ulaw);
    let mut narrowband = vec![0i16; lead_ms * 8];
    ulaw_decode_into(&ulaw, &mut narrowband);
    narrowband.extend(std::iter::repeat_n(0, 2_560));
    let mut resampler =
        Resampler::new(SampleRate::HZ_8000, SampleRate::HZ_16000).expect("8 to 16 kHz");
    let mut wideband = Vec::new();
    resampler.process(&narrowband, &mut wideband);
    resampler.flush(&mut wideband);
    wideband
}

/// Lower-case words without punctuation, numbers as digits.
fn normalise(text: &str) -> Vec<String> {
    const NUMBERS: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '-')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .flat_map(|w| {
            if let Some(digit) = NUMBERS.iter().position(|n| *n == w) {
                vec![digit.to_string()]
            } else if w.chars().all(|c| c.is_ascii_digit()) {
                w.chars().map(String::from).collect()
            } else {
                vec![w]
            }
        })
        .collect()
}

/// Word-level Levenshtein distance.
fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, y) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(x != y);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}
