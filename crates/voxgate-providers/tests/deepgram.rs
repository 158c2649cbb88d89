//! Deepgram live transcription against the in-repo fake: interim and final
//! results, keepalives, closing, and the failures a call must survive or
//! report.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::deepgram::{self, DeepgramConfig, DeepgramStt};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, Secret, SpeechToText, SttStream, TaskScope};
use voxgate_testkit::fakes::deepgram::{
    Connection, Ending, FakeDeepgram, FakeDeepgramOptions, Recorded, Refusal,
};

const KEY: &str = "dg-test-key-5f2e9c";
/// 20 ms at 16 kHz.
const FRAME: usize = 320;
/// Speech frames per scripted word: 5 × 640 bytes.
const FRAMES_PER_WORD: usize = 5;
const BYTES_PER_WORD: usize = FRAMES_PER_WORD * FRAME * 2;
/// The 300 ms of silence after which Deepgram endpoints.
const ENDPOINTING_FRAMES: usize = 15;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn fake_options() -> FakeDeepgramOptions {
    FakeDeepgramOptions {
        api_key: KEY.to_owned(),
        idle_timeout: Duration::from_millis(300),
        bytes_per_word: BYTES_PER_WORD,
    }
}

fn policy() -> VendorPolicy {
    VendorPolicy {
        max_concurrent: 4,
        connect_timeout: Duration::from_secs(2),
        retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(100),
        breaker_failures: 100,
        breaker_cooldown: Duration::from_secs(1),
    }
}

fn config(fake: &FakeDeepgram, key: &str) -> DeepgramConfig {
    DeepgramConfig {
        keepalive_interval: Duration::from_millis(100),
        finalize_timeout: Duration::from_secs(2),
        close_timeout: Duration::from_secs(1),
        ..DeepgramConfig::new(
            BaseUrl::parse(&fake.base_url()).expect("the fake's URL"),
            Secret::new(key),
        )
    }
}

fn stt(config: DeepgramConfig, policy: VendorPolicy) -> DeepgramStt {
    DeepgramStt::new(config, Supervisor::new(deepgram::VENDOR, policy))
}

fn speak(stream: &mut dyn SttStream, words: usize) {
    for _ in 0..words * FRAMES_PER_WORD {
        stream.audio(&[1000; FRAME]);
    }
}

fn pause(stream: &mut dyn SttStream, frames: usize) {
    for _ in 0..frames {
        stream.audio(&[0; FRAME]);
    }
}

async fn transcript(stream: &mut dyn SttStream) -> Result<String, ProviderError> {
    let mut answer = stream.transcribe(Vec::new());
    timeout(ANSWER_TIMEOUT, answer.recv())
        .await
        .expect("an answer in time")
        .expect("the stream's task answers")
}

fn drain(partials: &mut mpsc::Receiver<String>) -> Vec<String> {
    std::iter::from_fn(|| partials.try_recv().ok()).collect()
}

/// The control messages a connection received, keepalives left out (they
/// go whenever the audio pauses, which test timing does not fix).
fn controls(connection: &Connection) -> Vec<String> {
    connection
        .control_types()
        .into_iter()
        .filter(|kind| kind != "KeepAlive")
        .collect()
}

fn connections(count: usize) -> impl Fn(&Recorded) -> bool {
    move |recorded| recorded.connections.len() >= count
}

/// Polls `stt`'s counters until `done` holds (they live in the client, which
/// has no way to announce them).
async fn wait_for_stats(
    stt: &DeepgramStt,
    what: &str,
    done: impl Fn(&deepgram::DeepgramStats) -> bool,
) {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    while !done(&stt.stats()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            stt.stats()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn connects_with_the_documented_query_and_token() {
    let fake = FakeDeepgram::start(fake_options()).await;
    let stt = stt(config(&fake, KEY), policy());
    let _stream = stt.open(&scope());
    let recorded = fake.wait_until("a connection", connections(1)).await;
    let connection = &recorded.connections[0];
    let query: Vec<(&str, &str)> = connection
        .query
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        query,
        [
            ("channels", "1"),
            ("encoding", "linear16"),
            ("endpointing", "300"),
            ("interim_results", "true"),
            ("model", "nova-3"),
            ("punctuate", "true"),
            ("sample_rate", "16000"),
            ("smart_format", "true"),
            ("utterance_end_ms", "1000"),
            ("vad_events", "true"),
        ]
    );
    assert_eq!(
        connection.headers.get("authorization").map(String::as_str),
        Some(format!("Token {KEY}").as_str())
    );
}

#[tokio::test]
async fn interim_results_arrive_as_partials_and_transcribe_answers_the_finals() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.say("Hello there general Kenobi.");
    let stt = stt(config(&fake, KEY), policy());
    let mut stream = stt.open(&scope());
    let mut partials = stream.partials().expect("interim results");
    assert!(stream.partials().is_none(), "taken once");

    speak(stream.as_mut(), 4);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("a transcript"),
        "Hello there general Kenobi."
    );
    assert_eq!(
        drain(&mut partials),
        [
            "Hello",
            "Hello there",
            "Hello there general",
            "Hello there general Kenobi."
        ]
    );
    let recorded = fake.recorded();
    let connection = &recorded.connections[0];
    assert_eq!(
        connection.audio_bytes,
        4 * BYTES_PER_WORD,
        "every frame as linear16"
    );
    assert_eq!(
        connection.controls[0], r#"{"type":"Finalize"}"#,
        "no keepalive while audio flows"
    );
    assert_eq!(controls(connection), ["Finalize"]);
}

#[tokio::test]
async fn a_turn_transcribed_twice_covers_the_whole_turn_until_next_turn() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.say("Hello there.");
    fake.say("General Kenobi.");
    fake.say("How are you?");
    let stt = stt(config(&fake, KEY), policy());
    let mut stream = stt.open(&scope());

    speak(stream.as_mut(), 2);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("first"),
        "Hello there."
    );
    // The caller went on after a pause.
    speak(stream.as_mut(), 2);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("second"),
        "Hello there. General Kenobi."
    );
    stream.next_turn();
    speak(stream.as_mut(), 3);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("next turn"),
        "How are you?"
    );
}

#[tokio::test]
async fn keepalive_goes_as_text_during_silence_and_keeps_the_socket_open() {
    let fake = FakeDeepgram::start(fake_options()).await;
    let stt = stt(config(&fake, KEY), policy());
    let _stream = stt.open(&scope());
    fake.wait_until("a connection", connections(1)).await;
    // Four times the fake's idle timeout without audio.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let recorded = fake.recorded();
    assert_eq!(recorded.connections.len(), 1, "never reconnected");
    let connection = &recorded.connections[0];
    assert_eq!(connection.ended, None, "still open");
    assert_eq!(connection.audio_bytes, 0, "keepalives are not binary");
    assert!(connection.controls.len() >= 5, "{:?}", connection.controls);
    assert!(
        connection
            .controls
            .iter()
            .all(|text| text == r#"{"type":"KeepAlive"}"#)
    );
}

#[tokio::test]
async fn without_keepalive_the_fake_closes_an_idle_socket() {
    let fake = FakeDeepgram::start(fake_options()).await;
    let config = DeepgramConfig {
        keepalive_interval: Duration::from_secs(60),
        ..config(&fake, KEY)
    };
    let stt = stt(config, policy());
    let _stream = stt.open(&scope());
    fake.wait_until("a connection", connections(1)).await;
    let opened = Instant::now();
    let recorded = fake
        .wait_until("the idle close", |r| r.connections[0].ended.is_some())
        .await;
    assert_eq!(recorded.connections[0].ended, Some(Ending::IdleTimeout));
    assert!(opened.elapsed() >= Duration::from_millis(250));
    assert!(recorded.connections[0].controls.is_empty());
    // The call survives it: the client reconnects.
    fake.wait_until("a reconnection", connections(2)).await;
}

#[tokio::test]
async fn dropping_the_stream_sends_close_stream_and_ends_the_task() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.say("Goodbye.");
    // One slot: the next call can only connect once this one let go.
    let stt = stt(
        config(&fake, KEY),
        VendorPolicy {
            max_concurrent: 1,
            ..policy()
        },
    );
    let mut stream = stt.open(&scope());
    speak(stream.as_mut(), 1);
    fake.wait_until("audio", |r| {
        r.connections
            .first()
            .is_some_and(|c| c.audio_bytes == BYTES_PER_WORD)
    })
    .await;
    assert_eq!(stt.stats().active_streams, 1);
    drop(stream);

    let recorded = fake
        .wait_until("the close", |r| r.connections[0].ended.is_some())
        .await;
    let connection = &recorded.connections[0];
    assert_eq!(connection.ended, Some(Ending::CloseStream));
    assert_eq!(controls(connection), ["CloseStream"]);
    assert_eq!(
        connection.finals,
        ["Goodbye."],
        "the fake flushed before closing"
    );
    wait_for_stats(&stt, "the task to end", |s| s.active_streams == 0).await;

    let _next = stt.open(&scope());
    fake.wait_until("the next call's connection", connections(2))
        .await;
}

#[tokio::test]
async fn a_bad_key_is_rejected_once_and_never_shown() {
    let fake = FakeDeepgram::start(fake_options()).await;
    let wrong_key = "dg-wrong-key-8c1d";
    let stt = stt(config(&fake, wrong_key), policy());
    let mut stream = stt.open(&scope());
    let error = transcript(stream.as_mut())
        .await
        .expect_err("a bad key fails");
    assert!(
        matches!(
            error,
            ProviderError::Rejected {
                provider: "deepgram",
                status: 401,
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fake.recorded().refused, [401], "not retried");
    let later = transcript(stream.as_mut()).await.expect_err("still failed");
    assert!(matches!(later, ProviderError::Rejected { status: 401, .. }));
    for printed in [format!("{error}"), format!("{error:?}"), format!("{stt:?}")] {
        assert!(!printed.contains(wrong_key), "{printed}");
    }
}

#[tokio::test]
async fn a_rate_limited_handshake_is_retried() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.faults(|faults| {
        faults.refuse = Some(Refusal {
            status: 429,
            retry_after: Some(1),
            remaining: Some(1),
        })
    });
    fake.say("Finally.");
    let stt = stt(config(&fake, KEY), policy());
    let mut stream = stt.open(&scope());
    speak(stream.as_mut(), 1);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("after a retry"),
        "Finally."
    );
    let recorded = fake.recorded();
    assert_eq!(recorded.refused, [429]);
    assert_eq!(recorded.connections.len(), 1);
    assert_eq!(
        recorded.connections[0].audio_bytes, BYTES_PER_WORD,
        "held, then sent"
    );
}

#[tokio::test]
async fn a_socket_dropped_mid_call_is_reconnected_and_the_turn_kept() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.say("Hello there.");
    fake.say("Good morning.");
    fake.say("Still here.");
    // Dropped right after the endpointing silence finalizes the first
    // utterance.
    let first_bytes = (2 * FRAMES_PER_WORD + ENDPOINTING_FRAMES) * FRAME * 2;
    fake.faults(|faults| faults.drop_after_bytes = Some(first_bytes));
    let stt = stt(config(&fake, KEY), policy());
    let mut stream = stt.open(&scope());

    speak(stream.as_mut(), 2);
    pause(stream.as_mut(), ENDPOINTING_FRAMES);
    let recorded = fake.wait_until("a reconnection", connections(2)).await;
    assert_eq!(recorded.connections[0].ended, Some(Ending::Dropped));
    assert_eq!(recorded.connections[0].finals, ["Hello there."]);

    speak(stream.as_mut(), 2);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("the whole turn"),
        "Hello there. Good morning."
    );
    stream.next_turn();
    speak(stream.as_mut(), 2);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("a later turn"),
        "Still here."
    );
    assert_eq!(stt.stats().reconnects, 1);
}

#[tokio::test]
async fn when_reconnecting_fails_transcribe_answers_the_error() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.say("Hello.");
    fake.faults(|faults| faults.drop_after_bytes = Some(BYTES_PER_WORD));
    let config = DeepgramConfig {
        finalize_timeout: Duration::from_secs(4),
        ..config(&fake, KEY)
    };
    let stt = stt(config, policy());
    let mut stream = stt.open(&scope());
    fake.wait_until("a connection", connections(1)).await;
    fake.faults(|faults| {
        faults.refuse = Some(Refusal {
            status: 503,
            retry_after: None,
            remaining: None,
        })
    });
    speak(stream.as_mut(), 1);
    let pending = transcript(stream.as_mut()).await;
    assert!(
        matches!(
            pending,
            Err(ProviderError::Unavailable {
                provider: "deepgram",
                ..
            })
        ),
        "{pending:?}"
    );
    let later = transcript(stream.as_mut()).await;
    assert!(
        matches!(later, Err(ProviderError::Unavailable { .. })),
        "{later:?}"
    );
    let recorded = fake.recorded();
    assert_eq!(
        recorded.refused,
        [503, 503, 503],
        "the first try and two retries"
    );
    assert_eq!(recorded.connections.len(), 1);
}

#[tokio::test]
async fn malformed_messages_are_skipped_and_counted() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.faults(|faults| faults.malformed_on_connect = true);
    fake.say("Still fine.");
    let stt = stt(config(&fake, KEY), policy());
    let mut stream = stt.open(&scope());
    speak(stream.as_mut(), 2);
    assert_eq!(
        transcript(stream.as_mut()).await.expect("a transcript"),
        "Still fine."
    );
    assert_eq!(stt.stats().malformed_messages, 2);
    assert_eq!(stt.stats().reconnects, 0);
}

#[tokio::test]
async fn a_late_finalize_answers_with_what_has_arrived() {
    let fake = FakeDeepgram::start(fake_options()).await;
    fake.faults(|faults| faults.ignore_finalize = true);
    fake.say("Hello there.");
    fake.say("General Kenobi.");
    let finalize_timeout = Duration::from_millis(300);
    let config = DeepgramConfig {
        finalize_timeout,
        ..config(&fake, KEY)
    };
    let stt = stt(config, policy());
    let mut stream = stt.open(&scope());
    let mut partials = stream.partials().expect("interim results");

    speak(stream.as_mut(), 2);
    pause(stream.as_mut(), ENDPOINTING_FRAMES);
    speak(stream.as_mut(), 1);
    // Wait until the interim text of the second utterance has arrived.
    timeout(ANSWER_TIMEOUT, async {
        while partials.recv().await.as_deref() != Some("Hello there. General") {}
    })
    .await
    .expect("the second utterance's first word");

    let asked = Instant::now();
    assert_eq!(
        transcript(stream.as_mut()).await.expect("what has arrived"),
        "Hello there. General",
        "the final segment and the latest interim"
    );
    assert!(asked.elapsed() >= finalize_timeout);
    assert_eq!(controls(&fake.recorded().connections[0]), ["Finalize"]);
}

#[tokio::test]
async fn check_accepts_the_key_and_rejects_a_bad_one() {
    let fake = FakeDeepgram::start(fake_options()).await;
    deepgram::check(&config(&fake, KEY))
        .await
        .expect("a good key");
    assert_eq!(fake.recorded().project_listings, 1);

    let wrong_key = "dg-wrong-key-3a7b";
    let error = deepgram::check(&config(&fake, wrong_key))
        .await
        .expect_err("a bad key");
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(wrong_key));
    assert!(!format!("{:?}", config(&fake, wrong_key)).contains(wrong_key));
}

#[tokio::test]
async fn the_calls_end_stops_the_task_while_the_stream_is_still_held() {
    let fake = FakeDeepgram::start(fake_options()).await;
    let stt = stt(config(&fake, KEY), policy());
    let call = scope();
    let mut stream = stt.open(&call);
    // Audio reaches the fake once the socket is open at both ends.
    speak(stream.as_mut(), 1);
    fake.wait_until("audio", |r| {
        r.connections.first().is_some_and(|c| c.audio_bytes > 0)
    })
    .await;

    call.token().cancel();
    call.tracker().close();
    timeout(ANSWER_TIMEOUT, call.tracker().wait())
        .await
        .expect("the task ends with the call, and the tracker sees it");
    assert_eq!(stt.stats().active_streams, 0);
    // It said goodbye on the way out.
    let recorded = fake
        .wait_until("the close", |r| r.connections[0].ended.is_some())
        .await;
    assert_eq!(recorded.connections[0].ended, Some(Ending::CloseStream));
    // A stream that outlived its task answers at once, without a text.
    let answer = timeout(ANSWER_TIMEOUT, stream.transcribe(Vec::new()).recv())
        .await
        .expect("an answer in time");
    assert!(answer.is_none(), "{answer:?}");
}
