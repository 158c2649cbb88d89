//! Piper (joe-medium) with espeak-ng phonemes: real speech out, streaming by
//! sentence, cancellation by dropping the receiver.
#![cfg(feature = "onnx")]

mod onnx_support;

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_providers::local::{PiperOptions, PiperTts};
use voxgate_providers::{ProviderError, TaskScope, TextToSpeech};

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn piper() -> PiperTts {
    let models = onnx_support::models();
    let model = models.piper_voice().expect("piper in the manifest");
    let config = models.piper_config().expect("piper config in the manifest");
    PiperTts::load(
        onnx_support::runtime(),
        model,
        config,
        PiperOptions::default(),
    )
    .expect("loading Piper")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaks_a_greeting() {
    let tts = piper();
    assert_eq!(tts.sample_rate(), 22_050);
    let start = Instant::now();
    let mut rx = tts.synthesize("Hello, thank you for calling.".to_owned(), &scope());
    let mut audio = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = rx.recv().await {
        audio.extend(chunk.expect("a chunk"));
        chunks += 1;
    }
    let elapsed = start.elapsed();
    let seconds = audio.len() as f64 / 22_050.0;
    let rms = onnx_support::rms(&audio);
    eprintln!(
        "piper: {seconds:.2} s of audio in {elapsed:?} (RTF {:.3}, 1 thread), {chunks} chunk(s), RMS {rms:.0}",
        elapsed.as_secs_f64() / seconds
    );
    assert_eq!(chunks, 1, "one sentence, one chunk");
    assert!(seconds >= 1.0, "{seconds} s");
    assert!(rms > 1000.0, "RMS {rms}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_one_chunk_per_sentence_and_measures_the_real_time_factor() {
    let tts = piper();
    let text =
        "Sure, a table for two at seven tonight. Can I have a name for the booking? Thank you!";
    let start = Instant::now();
    let mut rx = tts.synthesize(text.to_owned(), &scope());
    let mut lengths = Vec::new();
    let mut first = None;
    while let Some(chunk) = rx.recv().await {
        first.get_or_insert_with(|| start.elapsed());
        lengths.push(chunk.expect("a chunk").len());
    }
    let elapsed = start.elapsed();
    let seconds = lengths.iter().sum::<usize>() as f64 / 22_050.0;
    eprintln!(
        "piper: 3 sentences, {seconds:.2} s of audio in {elapsed:?} (RTF {:.3}), first chunk after {:?}",
        elapsed.as_secs_f64() / seconds,
        first.unwrap_or_default()
    );
    assert_eq!(lengths.len(), 3, "{lengths:?}");
    assert!(lengths.iter().all(|&n| n > 22_050 / 2), "{lengths:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_receiver_stops_synthesis() {
    // Its own voice, so that the counters are this test's alone.
    let tts = piper();
    let sentences = 20;
    let text = (1..=sentences)
        .map(|i| format!("This is sentence number {i} of a long reply."))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rx = tts.synthesize(text, &scope());
    rx.recv().await.expect("a first chunk").expect("audio");
    drop(rx);
    // The task ends on its own; wait for it (bounded, so a bug fails rather
    // than hangs), then count what it did.
    for _ in 0..6000 {
        if tts.stats().running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stats = tts.stats();
    eprintln!(
        "piper: {} of {sentences} sentences synthesized before stopping",
        stats.sentences
    );
    assert_eq!(stats.running, 0, "the synthesis task is still running");
    // The one received, at most two waiting in the channel, and the one in
    // progress when the receiver went away.
    assert!(stats.sentences <= 4, "{stats:?}");
}

#[test]
fn missing_espeak_is_a_load_error_naming_the_package() {
    let models = onnx_support::models();
    let options = PiperOptions::default().espeak_program("/nonexistent/espeak-ng");
    let error = PiperTts::load(
        onnx_support::runtime(),
        models.piper_voice().expect("piper"),
        models.piper_config().expect("piper config"),
        options,
    )
    .expect_err("no espeak-ng");
    let ProviderError::Load { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(reason.contains("Debian package `espeak-ng`"), "{reason}");
}

#[test]
fn synthesize_outside_a_runtime_reports_an_error() {
    let tts = piper();
    let mut rx = tts.synthesize("Hello.".to_owned(), &scope());
    let first = rx.blocking_recv().expect("one message");
    assert!(
        matches!(first, Err(ProviderError::Inference { .. })),
        "{first:?}"
    );
    assert!(rx.blocking_recv().is_none());
}
