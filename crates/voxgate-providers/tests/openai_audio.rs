//! OpenAI transcription and speech over HTTP against the in-repo fake: the
//! WAV and fields sent, the transcript returned, PCM streamed at 24 kHz,
//! faults, and cancellation.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_core::audio::{SampleRate, parse_wav};
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::openai::OpenAiConfig;
use voxgate_providers::cloud::openai::speech::{OpenAiSpeech, SpeechOptions};
use voxgate_providers::cloud::openai::transcription::{OpenAiTranscription, TranscriptionOptions};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{
    BatchStt, ProviderError, Secret, SpeechToText, TaskScope, TextToSpeech, TranscribeUtterance,
};
use voxgate_testkit::fakes::openai::{FakeOpenAi, Fault};

const KEY: &str = "sk-test-secret-0001";

/// Longest any request may take in these tests.
const DEADLINE: Duration = Duration::from_secs(10);

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn config(fake: &FakeOpenAi) -> OpenAiConfig {
    OpenAiConfig {
        base_url: BaseUrl::parse(&format!("{}/v1", fake.base_url())).expect("the fake's URL"),
        api_key: Some(Secret::new(KEY)),
    }
}

fn supervisor() -> Supervisor {
    Supervisor::new(
        "openai",
        VendorPolicy {
            connect_timeout: Duration::from_secs(3),
            backoff_base: Duration::from_millis(10),
            ..VendorPolicy::default()
        },
    )
}

fn transcriber(fake: &FakeOpenAi) -> OpenAiTranscription {
    OpenAiTranscription::new(config(fake), TranscriptionOptions::default(), supervisor())
        .expect("a client")
}

fn speaker(fake: &FakeOpenAi) -> OpenAiSpeech {
    OpenAiSpeech::new(config(fake), SpeechOptions::default(), supervisor()).expect("a client")
}

/// Every item on the channel until it closes.
async fn drain<T>(mut rx: mpsc::Receiver<T>) -> Vec<T> {
    let mut items = Vec::new();
    while let Some(item) = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the channel closes in time")
    {
        items.push(item);
    }
    items
}

async fn transcribe(stt: &OpenAiTranscription, audio: Vec<i16>) -> Result<String, ProviderError> {
    let mut answers = drain(stt.transcribe(audio, &scope())).await;
    assert_eq!(answers.len(), 1, "one answer");
    answers.remove(0)
}

fn tone(samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|n| ((n % 160) as i16 - 80) * 200)
        .collect()
}

#[tokio::test]
async fn transcription_sends_a_wav_and_the_model_and_returns_the_text() {
    let fake = FakeOpenAi::start().await;
    fake.push_transcript("What is the weather?");
    let audio = tone(16_000);
    let text = transcribe(&transcriber(&fake), audio.clone())
        .await
        .expect("a transcript");
    assert_eq!(text, "What is the weather?");

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/audio/transcriptions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let form = request.form();
    let field = |name: &str| {
        form.iter()
            .find(|part| part.name == name)
            .unwrap_or_else(|| panic!("no {name} field"))
    };
    assert_eq!(field("model").data, b"gpt-4o-mini-transcribe");
    assert_eq!(field("response_format").data, b"json");
    let file = field("file");
    assert_eq!(file.filename.as_deref(), Some("audio.wav"));
    assert_eq!(file.content_type.as_deref(), Some("audio/wav"));
    let wav = parse_wav(&file.data).expect("a valid WAV");
    assert_eq!(wav.sample_rate, SampleRate::HZ_16000);
    assert_eq!(wav.channels, 1);
    assert_eq!(wav.samples, audio);
}

#[tokio::test]
async fn transcription_sends_the_language_when_set() {
    let fake = FakeOpenAi::start().await;
    let options = TranscriptionOptions {
        model: "whisper-1".to_owned(),
        language: Some("fr".to_owned()),
    };
    let stt = OpenAiTranscription::new(config(&fake), options, supervisor()).expect("a client");
    transcribe(&stt, tone(1_600)).await.expect("a transcript");
    let form = fake.requests()[0].form();
    let value = |name: &str| form.iter().find(|p| p.name == name).map(|p| p.data.clone());
    assert_eq!(value("model"), Some(b"whisper-1".to_vec()));
    assert_eq!(value("language"), Some(b"fr".to_vec()));
}

#[tokio::test]
async fn transcription_retries_a_server_error_and_rejects_a_bad_key() {
    let fake = FakeOpenAi::start().await;
    let stt = transcriber(&fake);
    fake.push_fault(Fault::Status(503));
    fake.push_transcript("Hi.");
    assert_eq!(transcribe(&stt, tone(1_600)).await.expect("retried"), "Hi.");
    assert_eq!(fake.requests().len(), 2);

    fake.push_fault(Fault::Status(401));
    let error = transcribe(&stt, tone(1_600)).await.expect_err("refused");
    assert!(matches!(error, ProviderError::Rejected { status: 401, .. }));
    assert!(!format!("{error} {error:?}").contains(KEY));
    assert_eq!(fake.requests().len(), 3, "not retried");

    fake.push_fault(Fault::MalformedChunk);
    let error = transcribe(&stt, tone(1_600)).await.expect_err("malformed");
    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn billed_transcriptions_are_not_asked_for_at_every_pause() {
    let fake = FakeOpenAi::start().await;
    let stt = BatchStt::new(transcriber(&fake));
    assert!(!stt.transcribe_at_pauses());
}

#[tokio::test]
async fn empty_audio_is_an_empty_transcript_without_a_request() {
    let fake = FakeOpenAi::start().await;
    assert_eq!(
        transcribe(&transcriber(&fake), Vec::new())
            .await
            .expect("empty"),
        ""
    );
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn speech_streams_pcm_at_24_khz() {
    let fake = FakeOpenAi::start().await;
    let audio = tone(24_000);
    fake.push_speech(audio.clone());
    let tts = speaker(&fake);
    assert_eq!(tts.sample_rate(), 24_000);
    let chunks: Vec<Vec<i16>> = drain(tts.synthesize("Hello there.".to_owned(), &scope()))
        .await
        .into_iter()
        .map(|chunk| chunk.expect("audio"))
        .collect();
    assert!(chunks.len() > 1, "streamed in pieces");
    assert_eq!(chunks.concat(), audio, "odd-sized pieces decode whole");

    let request = &fake.requests()[0];
    assert_eq!(request.path, "/v1/audio/speech");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        request.json(),
        json!({"model": "gpt-4o-mini-tts", "voice": "alloy", "input": "Hello there.",
               "response_format": "pcm"})
    );
}

#[tokio::test]
async fn speech_cut_mid_stream_fails_after_the_audio_that_came() {
    let fake = FakeOpenAi::start().await;
    fake.push_speech(tone(24_000));
    fake.push_fault(Fault::DropMidStream);
    let items = drain(speaker(&fake).synthesize("Hello.".to_owned(), &scope())).await;
    let (last, audio) = items.split_last().expect("something arrived");
    assert!(
        matches!(last, Err(ProviderError::Unavailable { .. })),
        "{last:?}"
    );
    assert!(!audio.is_empty() && audio.iter().all(Result::is_ok));
}

#[tokio::test]
async fn speech_slow_first_byte_times_out() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::SlowFirstByte(Duration::from_secs(5)));
    let options = SpeechOptions {
        first_byte_timeout: Duration::from_millis(200),
        ..SpeechOptions::default()
    };
    let tts = OpenAiSpeech::new(config(&fake), options, supervisor()).expect("a client");
    let started = Instant::now();
    let items = drain(tts.synthesize("Hello.".to_owned(), &scope())).await;
    assert!(
        matches!(items.as_slice(), [Err(ProviderError::Unavailable { .. })]),
        "{items:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dropping_the_speech_receiver_stops_the_request() {
    let fake = FakeOpenAi::start().await;
    fake.push_speech_paced(tone(24_000 * 10), Duration::from_millis(10));
    let mut rx = speaker(&fake).synthesize("A long story.".to_owned(), &scope());
    let first = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("audio in time");
    assert!(matches!(first, Some(Ok(_))));
    drop(rx);
    let deadline = Instant::now() + Duration::from_secs(2);
    while fake.streams_abandoned() == 0 {
        assert!(Instant::now() < deadline, "the fake still streams");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.streams_completed(), 0);
}

#[tokio::test]
async fn nothing_to_say_makes_no_request() {
    let fake = FakeOpenAi::start().await;
    let items = drain(speaker(&fake).synthesize("  ".to_owned(), &scope())).await;
    assert!(items.is_empty());
    assert!(fake.requests().is_empty());
}
