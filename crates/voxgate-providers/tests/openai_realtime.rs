//! The Realtime client against the in-repo fake: the upgrade (key, model,
//! beta header), the session shapes, a caller turn and its spoken answer
//! in GA and beta names, barge-in and truncation, tool calls, and faults.

use std::time::Duration;

use voxgate_core::audio::g711::ulaw_encode_into;
use voxgate_providers::Secret;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::openai::OpenAiConfig;
use voxgate_providers::cloud::openai::realtime::{
    ClientEvent, ItemKind, RealtimeClient, RealtimeConfig, RealtimeEvents, RealtimeSession,
    ResponseStatus, ServerEvent, ServerVad, SessionConfig, VENDOR,
};
use voxgate_providers::supervisor::{BreakerState, Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, ToolCall};
use voxgate_testkit::fakes::openai_realtime::{
    EventNames, FakeRealtime, Fault, RealtimeOptions, Reply, tone_ulaw,
};

const WAIT: Duration = Duration::from_secs(5);

fn policy() -> VendorPolicy {
    VendorPolicy {
        connect_timeout: Duration::from_secs(2),
        retries: 1,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
        breaker_failures: 1,
        ..VendorPolicy::default()
    }
}

fn client(fake: &FakeRealtime, key: &str, beta: bool) -> (RealtimeClient, Supervisor) {
    let supervisor = Supervisor::new(VENDOR, policy());
    let config = RealtimeConfig {
        model: "gpt-realtime-test".to_owned(),
        beta,
        ..RealtimeConfig::new(OpenAiConfig {
            base_url: BaseUrl::parse(&fake.base_url()).expect("fake URL"),
            api_key: Some(Secret::new(key)),
        })
    };
    (RealtimeClient::new(config, supervisor.clone()), supervisor)
}

fn session_config() -> SessionConfig {
    SessionConfig {
        instructions: "You answer the phone.".to_owned(),
        voice: Some("marin".to_owned()),
        transcription_model: Some("gpt-4o-mini-transcribe".to_owned()),
        turn_detection: Some(ServerVad::default()),
        tools: Vec::new(),
    }
}

async fn next(events: &mut RealtimeEvents) -> ServerEvent {
    tokio::time::timeout(WAIT, events.next())
        .await
        .expect("an event in time")
        .expect("a valid event")
}

/// Events until (and including) the first that matches.
async fn until(
    events: &mut RealtimeEvents,
    matches: impl Fn(&ServerEvent) -> bool,
) -> Vec<ServerEvent> {
    let mut seen = Vec::new();
    loop {
        let event = next(events).await;
        let done = matches(&event);
        seen.push(event);
        if done {
            return seen;
        }
    }
}

fn is_response_done(event: &ServerEvent) -> bool {
    matches!(event, ServerEvent::ResponseDone { .. })
}

async fn open(fake: &FakeRealtime, beta: bool) -> RealtimeSession {
    let (client, _) = client(fake, fake.api_key(), beta);
    let mut session = client.connect().await.expect("connects");
    assert!(matches!(
        next(&mut session.events).await,
        ServerEvent::SessionCreated {
            session_id: Some(_)
        }
    ));
    session
        .sender
        .send(&ClientEvent::SessionUpdate(session_config()))
        .await
        .expect("send");
    assert_eq!(next(&mut session.events).await, ServerEvent::SessionUpdated);
    session
}

/// A caller turn and its spoken answer, as either API generation sends it.
async fn caller_turn_and_answer(names: EventNames) {
    let fake = FakeRealtime::start(RealtimeOptions {
        names,
        transcripts: vec!["I'd like a table for two.".to_owned()],
        replies: vec![Reply::speech("Sure, for what time?", 450)],
        ..RealtimeOptions::default()
    })
    .await;
    let beta = names == EventNames::Beta;
    let mut session = open(&fake, beta).await;
    let upgrade = &fake.upgrades()[0];
    assert_eq!(upgrade.model.as_deref(), Some("gpt-realtime-test"));
    assert_eq!(
        upgrade.beta_header.as_deref(),
        beta.then_some("realtime=v1"),
        "the beta header only for beta"
    );

    let mut caller = Vec::new();
    ulaw_encode_into(&[0; 320], &mut caller);
    session
        .sender
        .send(&ClientEvent::AppendAudio(caller.clone()))
        .await
        .expect("send");
    assert!(fake.wait_for("input_audio_buffer.append", 1, WAIT).await);
    assert_eq!(fake.appended_audio(0), caller, "μ-law arrives as sent");

    fake.caller_turn();
    let events = until(&mut session.events, is_response_done).await;
    let user_item = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::InputCommitted { item_id } => item_id.clone(),
            _ => None,
        })
        .expect("the turn is committed");
    assert!(matches!(&events[0], ServerEvent::SpeechStarted { .. }));
    assert!(matches!(&events[1], ServerEvent::SpeechStopped { .. }));
    assert!(events.contains(&ServerEvent::InputTranscriptCompleted {
        item_id: user_item,
        transcript: "I'd like a table for two.".to_owned()
    }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::ItemAdded(item) if item.kind == ItemKind::Message { role: "user".to_owned() }))
    );
    let audio: Vec<u8> = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::AudioDelta { audio, .. } => Some(audio.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(audio, tone_ulaw(450 * 8), "the answer's audio, decoded");
    let said: String = events
        .iter()
        .filter_map(|e| match e {
            ServerEvent::AudioTranscriptDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(said, "Sure, for what time?");
    assert!(events.iter().any(|e| matches!(
        e,
        ServerEvent::AudioTranscriptDone { transcript, .. } if transcript == "Sure, for what time?"
    )));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::AudioDone { .. }))
    );
    assert!(matches!(
        events.last(),
        Some(ServerEvent::ResponseDone {
            status: ResponseStatus::Completed,
            usage: Some(_),
            ..
        })
    ));
    let update = &fake.events_of("session.update")[0];
    if beta {
        assert_eq!(update["session"]["input_audio_format"], "g711_ulaw");
    } else {
        assert_eq!(
            update["session"]["audio"]["output"]["format"]["type"],
            "audio/pcmu"
        );
    }
}

#[tokio::test]
async fn a_caller_turn_and_its_answer_in_ga_names() {
    caller_turn_and_answer(EventNames::Ga).await;
}

#[tokio::test]
async fn a_caller_turn_and_its_answer_in_beta_names() {
    caller_turn_and_answer(EventNames::Beta).await;
}

#[tokio::test]
async fn caller_speech_interrupts_and_the_heard_part_is_truncated() {
    let fake = FakeRealtime::start(RealtimeOptions {
        delta_gap: Duration::from_millis(20),
        replies: vec![Reply::speech("A long answer that goes on and on.", 3000)],
        ..RealtimeOptions::default()
    })
    .await;
    let mut session = open(&fake, false).await;
    session
        .sender
        .send(&ClientEvent::CreateResponse {
            instructions: Some("Say hello.".to_owned()),
        })
        .await
        .expect("send");
    let events = until(&mut session.events, |e| {
        matches!(e, ServerEvent::AudioDelta { .. })
    })
    .await;
    let Some(ServerEvent::AudioDelta { item_id, .. }) = events.last() else {
        panic!("an audio delta");
    };
    let item_id = item_id.clone();

    // 200 ms of loud speech: the fake's server VAD hears the caller.
    let loud: Vec<i16> = (0..1600)
        .map(|i| if (i / 4) % 2 == 0 { 8000 } else { -8000 })
        .collect();
    let mut speech = Vec::new();
    ulaw_encode_into(&loud, &mut speech);
    session
        .sender
        .send(&ClientEvent::AppendAudio(speech))
        .await
        .expect("send");
    let events = until(&mut session.events, is_response_done).await;
    assert!(
        events
            .iter()
            .any(|e| matches!(e, ServerEvent::SpeechStarted { .. }))
    );
    assert!(matches!(
        events.last(),
        Some(ServerEvent::ResponseDone {
            status: ResponseStatus::Cancelled,
            ..
        })
    ));
    let sent_ms = fake.item_audio_ms(&item_id).expect("audio was sent");
    assert!(sent_ms < 3000, "the answer stopped early ({sent_ms} ms)");

    session
        .sender
        .send(&ClientEvent::Truncate {
            item_id: item_id.clone(),
            audio_end_ms: sent_ms,
        })
        .await
        .expect("send");
    assert_eq!(
        next(&mut session.events).await,
        ServerEvent::Ignored {
            kind: "conversation.item.truncated".to_owned()
        }
    );
    session
        .sender
        .send(&ClientEvent::Truncate {
            item_id,
            audio_end_ms: sent_ms + 1000,
        })
        .await
        .expect("send");
    assert!(
        matches!(next(&mut session.events).await, ServerEvent::Error(e) if !e.is_benign()),
        "truncating past the audio is refused"
    );

    session
        .sender
        .send(&ClientEvent::CancelResponse)
        .await
        .expect("send");
    assert!(
        matches!(next(&mut session.events).await, ServerEvent::Error(e) if e.is_benign()),
        "cancelling nothing is a benign race"
    );
    let truncate = &fake.events_of("conversation.item.truncate")[0];
    assert_eq!(truncate["content_index"], 0);
}

#[tokio::test]
async fn a_tool_call_is_parsed_and_its_output_sent() {
    let fake = FakeRealtime::start(RealtimeOptions {
        replies: vec![Reply::FunctionCall {
            name: "book_table".to_owned(),
            arguments: r#"{"party":2}"#.to_owned(),
        }],
        ..RealtimeOptions::default()
    })
    .await;
    let mut session = open(&fake, false).await;
    fake.caller_turn();
    let events = until(&mut session.events, is_response_done).await;
    let call = events
        .iter()
        .find_map(|e| match e {
            ServerEvent::OutputItemDone { item, .. } => match &item.kind {
                ItemKind::FunctionCall(call) => Some(call.clone()),
                _ => None,
            },
            _ => None,
        })
        .expect("a function call item");
    assert_eq!(
        (call.name.as_str(), call.arguments.as_str()),
        ("book_table", r#"{"party":2}"#)
    );
    let ToolCall { id, .. } = call;
    session
        .sender
        .send(&ClientEvent::FunctionCallOutput {
            call_id: id.clone(),
            output: r#"{"booked":true}"#.to_owned(),
        })
        .await
        .expect("send");
    let added = until(&mut session.events, |e| {
        matches!(e, ServerEvent::ItemAdded(_))
    })
    .await;
    assert!(matches!(
        added.last(),
        Some(ServerEvent::ItemAdded(item)) if item.kind == ItemKind::FunctionCallOutput { call_id: id.clone() }
    ));
}

#[tokio::test]
async fn a_wrong_key_is_rejected_before_the_upgrade_and_not_retried() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    let (client, supervisor) = client(&fake, "sk-wrong-key", false);
    let error = client.connect().await.expect_err("refused");
    assert!(
        matches!(
            error,
            ProviderError::Rejected {
                status: 401,
                provider: VENDOR,
                ..
            }
        ),
        "{error}"
    );
    assert!(!error.to_string().contains("sk-wrong-key"), "{error}");
    assert!(!format!("{client:?}").contains("sk-wrong-key"));
    assert!(fake.upgrades().is_empty());
    assert_eq!(supervisor.state(), BreakerState::Closed);
}

#[tokio::test]
async fn the_beta_api_needs_its_header() {
    let fake = FakeRealtime::start(RealtimeOptions {
        names: EventNames::Beta,
        ..RealtimeOptions::default()
    })
    .await;
    let (client, _) = client(&fake, fake.api_key(), false);
    let error = client.connect().await.expect_err("refused");
    assert!(
        matches!(error, ProviderError::Rejected { status: 400, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_session_in_the_other_generations_shape_gets_an_error() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    // A client speaking beta to a GA server.
    let (client, _) = client(&fake, fake.api_key(), true);
    let mut session = client.connect().await.expect("connects");
    next(&mut session.events).await;
    session
        .sender
        .send(&ClientEvent::SessionUpdate(session_config()))
        .await
        .expect("send");
    let ServerEvent::Error(error) = next(&mut session.events).await else {
        panic!("an error event");
    };
    assert_eq!(error.code.as_deref(), Some("unknown_parameter"));
    assert!(!error.is_benign());
}

#[tokio::test]
async fn a_dropped_socket_mid_response_is_unavailable_and_counts_against_the_vendor() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    let (client, supervisor) = client(&fake, fake.api_key(), false);
    let mut session = client.connect().await.expect("connects");
    next(&mut session.events).await;
    fake.set_fault(Fault::DropMidResponse { after_deltas: 2 });
    fake.caller_turn();
    let mut deltas = 0;
    let error = loop {
        match tokio::time::timeout(WAIT, session.events.next())
            .await
            .expect("in time")
        {
            Ok(ServerEvent::AudioDelta { .. }) => deltas += 1,
            Ok(_) => {}
            Err(error) => break error,
        }
    };
    assert_eq!(deltas, 2);
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error}"
    );
    assert_eq!(supervisor.state(), BreakerState::Open);
}

#[tokio::test]
async fn an_error_event_instead_of_a_response() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    let mut session = open(&fake, false).await;
    fake.set_fault(Fault::Error {
        kind: "server_error".to_owned(),
        code: "internal_error".to_owned(),
        message: "The server had an error.".to_owned(),
    });
    session
        .sender
        .send(&ClientEvent::CreateResponse { instructions: None })
        .await
        .expect("send");
    let ServerEvent::Error(error) = next(&mut session.events).await else {
        panic!("an error event");
    };
    assert!(!error.is_benign());
    assert_eq!(
        (error.kind.as_str(), error.message.as_str()),
        ("server_error", "The server had an error.")
    );
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    let (client, _) = client(&fake, fake.api_key(), false);
    drop(fake);
    let error = client.connect().await.expect_err("nobody listens");
    assert!(error.is_retryable(), "{error}");
}
