//! ElevenLabs streaming TTS against the in-repo fake: audio, the spare
//! socket, barge-in, handshake and mid-sentence failures, the start-up
//! check and the key's secrecy.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_core::audio::g711;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::elevenlabs::{
    self, ConfigError, ElevenLabsConfig, ElevenLabsTts, OutputFormat,
};
use voxgate_providers::supervisor::{BreakerState, Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, Secret, TaskScope, TextToSpeech};
use voxgate_testkit::fakes::elevenlabs::{
    API_KEY, Ending, FakeElevenLabs, FakeElevenLabsOptions, HandshakeFault, SpeechFault, VOICE_ID,
};

const SENTENCE: &str = "Hello there.";

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn policy() -> VendorPolicy {
    VendorPolicy {
        connect_timeout: Duration::from_secs(2),
        retries: 2,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(50),
        ..VendorPolicy::default()
    }
}

async fn fake_with(options: FakeElevenLabsOptions) -> FakeElevenLabs {
    FakeElevenLabs::start(options).await
}

async fn fake() -> FakeElevenLabs {
    fake_with(FakeElevenLabsOptions::default()).await
}

fn config(fake: &FakeElevenLabs) -> ElevenLabsConfig {
    let base = BaseUrl::parse(&fake.base_url()).expect("the fake's URL");
    ElevenLabsConfig::new(base, Secret::new(API_KEY), VOICE_ID).expect("a valid voice id")
}

fn cold(fake: &FakeElevenLabs) -> ElevenLabsConfig {
    ElevenLabsConfig {
        prewarm: false,
        ..config(fake)
    }
}

fn tts(config: ElevenLabsConfig) -> ElevenLabsTts {
    ElevenLabsTts::new(
        config,
        Supervisor::new(elevenlabs::VENDOR, policy()),
        &scope(),
    )
}

/// Every sample of one synthesis, and the error that ended it, if any.
async fn collect(
    mut chunks: mpsc::Receiver<Result<Vec<i16>, ProviderError>>,
) -> (Vec<i16>, Option<ProviderError>) {
    let mut samples = Vec::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), chunks.recv())
            .await
            .expect("the synthesis ends");
        match next {
            Some(Ok(chunk)) => samples.extend(chunk),
            Some(Err(error)) => {
                assert!(chunks.recv().await.is_none(), "nothing follows an error");
                return (samples, Some(error));
            }
            None => return (samples, None),
        }
    }
}

async fn speak(tts: &ElevenLabsTts, text: &str) -> Vec<i16> {
    let (samples, error) = collect(tts.synthesize(text.to_owned(), &scope())).await;
    assert!(error.is_none(), "{error:?}");
    samples
}

async fn fail(tts: &ElevenLabsTts, text: &str) -> ProviderError {
    let (_, error) = collect(tts.synthesize(text.to_owned(), &scope())).await;
    error.expect("the synthesis fails")
}

fn ulaw_round_trip(samples: &[i16]) -> Vec<i16> {
    let mut bytes = Vec::new();
    g711::ulaw_encode_into(samples, &mut bytes);
    let mut decoded = Vec::new();
    g711::ulaw_decode_into(&bytes, &mut decoded);
    decoded
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).expect("the client sends JSON")
}

#[tokio::test]
async fn a_sentence_becomes_8khz_ulaw_audio() {
    let fake = fake().await;
    let tts = tts(cold(&fake));
    assert_eq!(tts.sample_rate(), 8000);

    let samples = speak(&tts, SENTENCE).await;

    // 12 characters at 60 ms each, at 8 kHz.
    assert_eq!(samples.len(), 5760);
    assert_eq!(samples, ulaw_round_trip(&fake.speech(SENTENCE, 8000)));
    let connections = fake
        .wait_for("the socket to finish", |c| {
            c.first().is_some_and(|c| c.ending.is_some())
        })
        .await;
    let connection = &connections[0];
    assert_eq!(connection.ending, Some(Ending::Finished));
    assert_eq!(connection.voice_id, VOICE_ID);
    assert_eq!(connection.query["model_id"], "eleven_flash_v2_5");
    assert_eq!(connection.query["output_format"], "ulaw_8000");
    assert_eq!(connection.query["inactivity_timeout"], "20");
    let init = json(&connection.messages[0]);
    assert_eq!(init["text"], " ");
    assert_eq!(init["voice_settings"]["stability"], 0.5);
    assert_eq!(
        init["generation_config"]["chunk_length_schedule"],
        serde_json::json!([120, 160, 250, 290])
    );
    assert_eq!(
        connection.messages[1],
        r#"{"text":"Hello there. ","flush":true}"#
    );
    assert_eq!(connection.messages[2], r#"{"text":""}"#);
    assert_eq!(connection.messages.len(), 3);
}

#[tokio::test]
async fn pcm_formats_are_decoded_as_s16le() {
    let fake = fake().await;
    let tts = tts(ElevenLabsConfig {
        output_format: OutputFormat::Pcm16000,
        ..cold(&fake)
    });
    assert_eq!(tts.sample_rate(), 16000);
    assert_eq!(speak(&tts, SENTENCE).await, fake.speech(SENTENCE, 16000));
    assert_eq!(fake.connections()[0].query["output_format"], "pcm_16000");
}

#[tokio::test]
async fn sentences_start_on_a_prewarmed_socket() {
    let fake = fake().await;
    let tts = tts(config(&fake));
    fake.wait_for("the first spare", |c| {
        c.len() == 1 && c[0].messages.len() == 1
    })
    .await;

    assert_eq!(speak(&tts, "First one.").await.len(), 4800);
    let connections = fake
        .wait_for("the next spare", |c| {
            c.len() == 2 && c[1].messages.len() == 1
        })
        .await;
    assert_eq!(
        connections[0].messages[1],
        r#"{"text":"First one. ","flush":true}"#
    );

    // The second sentence goes out on the socket opened before it was
    // asked for: no handshake on its path.
    speak(&tts, "Second one.").await;
    let connections = fake.connections();
    assert_eq!(
        connections[1].messages[1],
        r#"{"text":"Second one. ","flush":true}"#
    );
}

#[tokio::test]
async fn an_idle_spare_is_replaced_before_the_vendor_drops_it() {
    let fake = fake_with(FakeElevenLabsOptions {
        inactivity_timeout: Duration::from_millis(400),
        ..FakeElevenLabsOptions::default()
    })
    .await;
    let tts = tts(ElevenLabsConfig {
        spare_max_idle: Duration::from_millis(100),
        ..config(&fake)
    });

    tokio::time::sleep(Duration::from_millis(900)).await;
    let connections = fake.connections();
    assert!(connections.len() >= 3, "{connections:#?}");
    assert!(
        connections
            .iter()
            .all(|c| c.ending != Some(Ending::IdleTimeout)),
        "{connections:#?}"
    );

    let before = fake.connections().len();
    assert_eq!(speak(&tts, SENTENCE).await.len(), 5760);
    let spoken_on = fake
        .connections()
        .iter()
        .position(|c| c.messages.len() > 1)
        .expect("a socket carried the sentence");
    assert!(spoken_on < before, "the sentence went out on a spare");
}

#[tokio::test]
async fn a_spare_the_vendor_closed_gives_way_to_a_fresh_socket() {
    let fake = fake_with(FakeElevenLabsOptions {
        inactivity_timeout: Duration::from_millis(200),
        ..FakeElevenLabsOptions::default()
    })
    .await;
    let tts = tts(ElevenLabsConfig {
        spare_max_idle: Duration::from_secs(60),
        ..config(&fake)
    });
    fake.wait_for("the spare to time out", |c| {
        c.first()
            .is_some_and(|c| c.ending == Some(Ending::IdleTimeout))
    })
    .await;

    assert_eq!(speak(&tts, SENTENCE).await.len(), 5760);
}

#[tokio::test]
async fn a_spare_lost_as_it_is_taken_is_replaced_by_a_fresh_socket() {
    let fake = fake().await;
    let tts = tts(config(&fake));
    fake.wait_for("the first spare", |c| {
        c.len() == 1 && c[0].messages.len() == 1
    })
    .await;
    fake.fail_next_speech(SpeechFault::DropAfter { chunks: 0 });

    assert_eq!(speak(&tts, SENTENCE).await.len(), 5760);
    let connections = fake.connections();
    assert_eq!(connections[0].ending, Some(Ending::Fault));
    assert!(
        connections[1..]
            .iter()
            .any(|c| c.messages.len() == 3 && c.messages[1].contains(SENTENCE)),
        "{connections:#?}"
    );
}

#[tokio::test]
async fn dropping_the_receiver_closes_the_socket() {
    let fake = fake_with(FakeElevenLabsOptions {
        chunk_interval: Duration::from_millis(20),
        ..FakeElevenLabsOptions::default()
    })
    .await;
    let tts = tts(cold(&fake));
    // 100 characters: 60 chunks of audio.
    let mut chunks = tts.synthesize("a".repeat(100), &scope());
    let first = tokio::time::timeout(Duration::from_secs(5), chunks.recv())
        .await
        .expect("audio arrives");
    assert!(matches!(first, Some(Ok(_))));
    drop(chunks);

    let connections = fake
        .wait_for("the client to close", |c| {
            c.first().is_some_and(|c| c.ending.is_some())
        })
        .await;
    assert_eq!(connections[0].ending, Some(Ending::ClientClosed));
    assert!(connections[0].chunks_sent < 20, "{connections:#?}");
}

#[tokio::test]
async fn a_refused_key_is_rejected_and_never_shown() {
    let fake = fake().await;
    let key = "sk_0123456789abcdef_wrong";
    let config = ElevenLabsConfig {
        api_key: Secret::new(key),
        ..config(&fake)
    };
    assert!(!format!("{config:?}").contains(key));
    let tts = tts(config.clone());
    assert!(!format!("{tts:?}").contains(key));

    let error = fail(&tts, SENTENCE).await;
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(key));

    let error = elevenlabs::check(&config).await.expect_err("a refused key");
    assert!(matches!(error, ProviderError::Rejected { status: 401, .. }));
    assert!(!format!("{error} {error:?}").contains(key));
}

#[tokio::test]
async fn a_rate_limited_handshake_is_retried() {
    let fake = fake().await;
    let tts = tts(cold(&fake));
    fake.fail_next_handshake(HandshakeFault::RateLimited {
        retry_after_secs: 1,
    });

    assert_eq!(speak(&tts, SENTENCE).await.len(), 5760);
    assert_eq!(fake.handshakes(), 2);
    assert_eq!(fake.connections().len(), 1);
}

#[tokio::test]
async fn a_socket_dropped_mid_sentence_is_an_error_counted_against_the_vendor() {
    let fake = fake().await;
    let supervisor = Supervisor::new(
        elevenlabs::VENDOR,
        VendorPolicy {
            breaker_failures: 1,
            ..policy()
        },
    );
    let tts = ElevenLabsTts::new(cold(&fake), supervisor.clone(), &scope());
    fake.fail_next_speech(SpeechFault::DropAfter { chunks: 2 });

    let (samples, error) = collect(tts.synthesize(SENTENCE.to_owned(), &scope())).await;
    assert_eq!(samples.len(), 1600, "two chunks arrived first");
    assert!(
        matches!(error, Some(ProviderError::Unavailable { .. })),
        "{error:?}"
    );
    assert_eq!(supervisor.state(), BreakerState::Open);
}

#[tokio::test]
async fn a_fresh_socket_lost_before_answering_is_not_retried() {
    let fake = fake().await;
    let tts = tts(cold(&fake));
    fake.fail_next_speech(SpeechFault::DropAfter { chunks: 0 });

    let error = fail(&tts, SENTENCE).await;
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert_eq!(fake.connections().len(), 1);
}

#[tokio::test]
async fn malformed_messages_are_protocol_errors() {
    let fake = fake().await;
    let tts = tts(cold(&fake));
    for malformed in ["not json", r#"{"audio":"***","isFinal":false}"#] {
        fake.fail_next_speech(SpeechFault::Malformed(malformed.to_owned()));
        let error = fail(&tts, SENTENCE).await;
        assert!(
            matches!(error, ProviderError::Protocol { .. }),
            "{malformed}: {error:?}"
        );
    }
}

#[tokio::test]
async fn a_vendor_error_message_fails_the_sentence() {
    let fake = fake().await;
    let tts = tts(cold(&fake));
    fake.fail_next_speech(SpeechFault::Error {
        error: "quota_exceeded".to_owned(),
        message: "This request exceeds your quota.".to_owned(),
    });

    let error = fail(&tts, SENTENCE).await;
    assert!(
        matches!(error, ProviderError::Rejected { status: 1008, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("quota_exceeded"));
}

#[tokio::test]
async fn slow_first_audio_is_waited_for_up_to_the_response_timeout() {
    let fake = fake().await;
    let patient = tts(ElevenLabsConfig {
        response_timeout: Duration::from_secs(1),
        ..cold(&fake)
    });
    fake.fail_next_speech(SpeechFault::SlowFirstAudio(Duration::from_millis(100)));
    assert_eq!(speak(&patient, SENTENCE).await.len(), 5760);

    let hasty = tts(ElevenLabsConfig {
        response_timeout: Duration::from_millis(50),
        ..cold(&fake)
    });
    fake.fail_next_speech(SpeechFault::SlowFirstAudio(Duration::from_millis(400)));
    let error = fail(&hasty, SENTENCE).await;
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn check_finds_the_voice_and_names_an_unknown_one() {
    let fake = fake().await;
    elevenlabs::check(&config(&fake))
        .await
        .expect("the voice exists");

    let unknown = "AAAAAAAAAAAAAAAAAAAA";
    let config = ElevenLabsConfig::new(
        BaseUrl::parse(&fake.base_url()).expect("the fake's URL"),
        Secret::new(API_KEY),
        unknown,
    )
    .expect("a well-formed id");
    let error = elevenlabs::check(&config).await.expect_err("unknown");
    assert!(matches!(error, ProviderError::Rejected { status: 404, .. }));
    assert!(error.to_string().contains(unknown), "{error}");
}

#[test]
fn voice_ids_are_checked_when_the_config_is_built() {
    let base = BaseUrl::parse(elevenlabs::DEFAULT_BASE_URL).expect("valid");
    let error = ElevenLabsConfig::new(base, Secret::new("k"), "Rachel").expect_err("a name");
    assert_eq!(error, ConfigError::VoiceId("Rachel".to_owned()));
    assert!(error.to_string().contains("\"Rachel\""));
}

#[test]
fn the_key_comes_from_either_variable_preferring_elevenlabs_api_key() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        }
    };
    let key = |pairs| elevenlabs::api_key_from_env(env(pairs)).map(|k| k.expose().to_owned());
    assert_eq!(key(&[("ELEVENLABS_API_KEY", "a")]), Some("a".to_owned()));
    assert_eq!(key(&[("ELEVEN_API_KEY", "b")]), Some("b".to_owned()));
    assert_eq!(
        key(&[("ELEVEN_API_KEY", "b"), ("ELEVENLABS_API_KEY", "a")]),
        Some("a".to_owned())
    );
    assert_eq!(
        key(&[("ELEVENLABS_API_KEY", " "), ("ELEVEN_API_KEY", "b")]),
        Some("b".to_owned())
    );
    assert_eq!(key(&[]), None);
}

#[tokio::test]
async fn a_sentence_stops_with_its_scope_while_its_audio_is_still_read() {
    let fake = fake_with(FakeElevenLabsOptions {
        chunk_interval: Duration::from_millis(20),
        ..FakeElevenLabsOptions::default()
    })
    .await;
    let tts = tts(cold(&fake));
    let call = scope();
    // 100 characters: 60 chunks of audio.
    let mut chunks = tts.synthesize("a".repeat(100), &call);
    let first = tokio::time::timeout(Duration::from_secs(5), chunks.recv())
        .await
        .expect("audio arrives");
    assert!(matches!(first, Some(Ok(_))));

    call.token().cancel();
    call.tracker().close();
    tokio::time::timeout(Duration::from_secs(5), call.tracker().wait())
        .await
        .expect("the sentence's tasks end with the call");
    let connections = fake
        .wait_for("the socket to go", |c| {
            c.first().is_some_and(|c| c.ending.is_some())
        })
        .await;
    assert_eq!(connections[0].ending, Some(Ending::ClientGone));
    assert!(connections[0].chunks_sent < 20, "{connections:#?}");
    // What was already queued may still be read; then the channel closes.
    while let Some(chunk) = chunks.recv().await {
        assert!(chunk.is_ok(), "{chunk:?}");
    }
}

#[tokio::test]
async fn the_spare_socket_ends_with_the_scope_it_was_built_in() {
    let fake = fake().await;
    let server = scope();
    let tts = ElevenLabsTts::new(
        config(&fake),
        Supervisor::new(elevenlabs::VENDOR, policy()),
        &server,
    );
    fake.wait_for("the spare", |c| c.len() == 1 && c[0].messages.len() == 1)
        .await;
    assert_eq!(server.tracker().len(), 1, "the spare's task is tracked");

    server.token().cancel();
    server.tracker().close();
    tokio::time::timeout(Duration::from_secs(5), server.tracker().wait())
        .await
        .expect("the spare's task ends with its scope, though the TTS lives on");
    fake.wait_for("the spare to be let go", |c| c[0].ending.is_some())
        .await;
    drop(tts);
}
