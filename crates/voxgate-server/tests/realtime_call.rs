//! Calls in realtime mode, end to end: a real-time Twilio caller, the
//! server, and the fake OpenAI Realtime API (GA and beta names). The fake's
//! server VAD hears the caller's loud audio, answers with a tone whose
//! transcript it scripts, and records what the agent sent it.

mod common;

use std::time::Duration;

use common::TestServer;
use serde_json::Value;
use voxgate_core::audio::g711::ulaw_encode_into;
use voxgate_core::persona::PersonaSpec;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::openai::OpenAiConfig;
use voxgate_providers::cloud::openai::realtime::{RealtimeClient, RealtimeConfig, VENDOR};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, Secret};
use voxgate_server::agent::{AgentState, RealtimeAgent, RealtimeSettings};
use voxgate_testkit::fakes::openai_realtime::{
    EventNames, FakeRealtime, Fault, RealtimeOptions, Reply,
};
use voxgate_testkit::{Heard, LiveCaller, LiveCallerOptions, connect, next_of_type, send_text};

const WAIT: Duration = Duration::from_secs(10);
const GREETING: &str = "Hello! How can I help you today?";
/// The fake's session that said the apology at start-up is 0; the call's is 1.
const CALL_SESSION: usize = 1;

fn client(fake: &FakeRealtime, key: &str, beta: bool) -> RealtimeClient {
    let config = RealtimeConfig {
        beta,
        ..RealtimeConfig::new(OpenAiConfig {
            base_url: BaseUrl::parse(&fake.base_url()).expect("fake URL"),
            api_key: Some(Secret::new(key)),
        })
    };
    RealtimeClient::new(config, Supervisor::new(VENDOR, VendorPolicy::default()))
}

/// A server whose calls run in realtime mode against a fake answering, in
/// order, the start-up apology, the greeting, then `replies`.
async fn realtime_server(names: EventNames, replies: Vec<Reply>) -> (TestServer, FakeRealtime) {
    let mut script = vec![
        Reply::speech("I'm sorry, something went wrong.", 600),
        Reply::speech(GREETING, 800),
    ];
    script.extend(replies);
    let fake = FakeRealtime::start(RealtimeOptions {
        names,
        replies: script,
        transcripts: vec!["I'd like a table for two.".to_owned(), "Stop.".to_owned()],
        ..RealtimeOptions::default()
    })
    .await;
    let agent = RealtimeAgent::new(
        client(&fake, fake.api_key(), names == EventNames::Beta),
        RealtimeSettings::default(),
    )
    .await
    .expect("the realtime agent starts");
    let server = TestServer::start().await;
    server.handle.set_agent(AgentState::Realtime(agent));
    (server, fake)
}

/// `ms` of loud speech-like sound at 8 kHz.
fn speech(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| if (i / 4) % 2 == 0 { 8000 } else { -8000 })
        .collect()
}

async fn monitor(server: &TestServer) -> voxgate_testkit::Client {
    let mut monitor = connect(server.addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut monitor, "subscribed").await;
    monitor
}

/// The next final transcript on the monitor.
async fn final_transcript(monitor: &mut voxgate_testkit::Client) -> Value {
    loop {
        let event = next_of_type(monitor, "transcript").await;
        if event["final"] == true {
            return event;
        }
    }
}

async fn until(caller: &mut LiveCaller, what: &str, matches: impl Fn(&Heard) -> bool) -> Heard {
    loop {
        match caller.next_heard(WAIT).await {
            Some(heard) if matches(&heard) => return heard,
            Some(_) => {}
            None => panic!("timed out waiting for {what}"),
        }
    }
}

/// A caller who has heard the greeting play out (and forgot noticing it).
async fn greeted_caller(server: &TestServer, tag: &str) -> LiveCaller {
    let mut caller = LiveCaller::dial(server.addr, tag, LiveCallerOptions::default()).await;
    assert!(caller.wait_playing(true, WAIT).await, "the greeting plays");
    assert!(caller.wait_playing(false, WAIT).await, "the greeting ends");
    caller.drain(Duration::from_millis(1)).await;
    caller
}

fn loud(samples: &[i16]) -> usize {
    samples.iter().filter(|s| s.abs() > 3000).count()
}

/// Greets, answers one turn, and keeps the record, in either API's names.
async fn one_turn(names: EventNames, tag: &str) -> (FakeRealtime, Value) {
    let (server, fake) =
        realtime_server(names, vec![Reply::speech("Sure, for what time?", 1000)]).await;
    let mut monitor = monitor(&server).await;
    let caller = greeted_caller(&server, tag).await;
    let greeting = final_transcript(&mut monitor).await;
    assert_eq!(
        (greeting["role"].as_str(), greeting["text"].as_str()),
        (Some("assistant"), Some(GREETING))
    );

    let said = speech(400);
    caller.say(said.clone());
    let user = final_transcript(&mut monitor).await;
    assert_eq!(
        (user["role"].as_str(), user["text"].as_str()),
        (Some("user"), Some("I'd like a table for two."))
    );
    let metrics = next_of_type(&mut monitor, "turn.metrics").await;
    for stage in [
        "end_of_turn_ms",
        "stt_final_ms",
        "tts_first_audio_ms",
        "first_audio_sent_ms",
        "first_mark_ms",
    ] {
        assert!(metrics[stage].is_u64(), "{stage} in {metrics}");
    }
    assert!(metrics["llm_first_token_ms"].is_null(), "{metrics}");
    let answer = final_transcript(&mut monitor).await;
    assert_eq!(
        (answer["role"].as_str(), answer["text"].as_str()),
        (Some("assistant"), Some("Sure, for what time?"))
    );

    let sid = caller.call_sid.clone();
    let audio = caller.hang_up().await;
    assert!(
        loud(&audio.agent) >= 8 * 1700,
        "the caller heard the greeting and the answer"
    );
    // The caller's speech reached the model as the same μ-law bytes.
    let mut expected = Vec::new();
    ulaw_encode_into(&said, &mut expected);
    let appended = fake.appended_audio(CALL_SESSION);
    assert!(
        appended.windows(expected.len()).any(|w| w == expected),
        "the caller's audio is appended as μ-law ({} bytes appended)",
        appended.len()
    );
    let events = fake.session_events(CALL_SESSION);
    let greet = events
        .iter()
        .find(|e| e["type"] == "response.create")
        .expect("the agent asks for the greeting");
    let instructions = greet["response"]["instructions"].as_str().expect("text");
    assert!(instructions.contains(GREETING), "{instructions}");
    let update = events
        .iter()
        .find(|e| e["type"] == "session.update")
        .expect("the session is set up");
    assert_eq!(
        update["session"]["instructions"],
        PersonaSpec::default().instructions
    );

    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "completed");
    let turns: Vec<(String, String)> = record["transcript"]
        .as_array()
        .expect("transcript turns")
        .iter()
        .map(|t| {
            (
                t["role"].as_str().unwrap_or_default().to_owned(),
                t["text"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        turns,
        vec![
            ("assistant".to_owned(), GREETING.to_owned()),
            ("user".to_owned(), "I'd like a table for two.".to_owned()),
            ("assistant".to_owned(), "Sure, for what time?".to_owned()),
        ]
    );
    drop(monitor);
    server
        .eventually("agent tasks end with the call", |h| h.running_tasks() == 0)
        .await;
    server.stop().await;
    (fake, update.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greets_and_answers_a_turn_in_ga_names() {
    let (fake, update) = one_turn(EventNames::Ga, "realtimega01").await;
    assert_eq!(
        update["session"]["audio"]["input"]["format"]["type"],
        "audio/pcmu"
    );
    assert_eq!(
        update["session"]["audio"]["output"]["format"]["type"],
        "audio/pcmu"
    );
    assert_eq!(fake.upgrades()[CALL_SESSION].beta_header, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greets_and_answers_a_turn_in_beta_names() {
    let (fake, update) = one_turn(EventNames::Beta, "realtimebeta01").await;
    assert_eq!(update["session"]["input_audio_format"], "g711_ulaw");
    assert_eq!(update["session"]["output_audio_format"], "g711_ulaw");
    assert_eq!(
        fake.upgrades()[CALL_SESSION].beta_header.as_deref(),
        Some("realtime=v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_clears_the_caller_and_truncates_to_what_was_heard() {
    let long = "Here is a very long answer that goes on and on and keeps going for a long while.";
    let (server, fake) = realtime_server(
        EventNames::Ga,
        vec![Reply::speech(long, 5000), Reply::speech("Okay.", 400)],
    )
    .await;
    let mut monitor = monitor(&server).await;
    let mut caller = greeted_caller(&server, "realtimebarge01").await;

    caller.say(speech(400));
    let started = match until(&mut caller, "the long reply", |h| {
        matches!(h, Heard::Audio { .. })
    })
    .await
    {
        Heard::Audio { at, .. } => at,
        other => panic!("{other:?}"),
    };
    tokio::time::sleep(Duration::from_millis(1200)).await;
    caller.say(speech(400));
    let cleared = match until(&mut caller, "clear", |h| matches!(h, Heard::Clear { .. })).await {
        Heard::Clear { at } => at,
        other => panic!("{other:?}"),
    };
    assert!(
        fake.wait_for("conversation.item.truncate", 1, WAIT).await,
        "the agent truncates"
    );
    let truncate = fake.events_of("conversation.item.truncate")[0].clone();
    let item = truncate["item_id"].as_str().expect("item id");
    let end_ms = truncate["audio_end_ms"].as_u64().expect("audio_end_ms");
    assert_eq!(truncate["content_index"], 0);
    let sent_ms = fake
        .item_audio_ms(item)
        .expect("the truncated item is the reply");
    assert_eq!(sent_ms, 5000);
    // Marks come back per 100 ms delta: the caller heard whole deltas,
    // no more than played before the clear.
    let playing_ms = u64::try_from((cleared - started).as_millis()).expect("ms");
    assert!(end_ms > 0 && end_ms < sent_ms, "{end_ms}");
    assert_eq!(end_ms % 100, 0, "{end_ms}");
    assert!(
        end_ms <= playing_ms + 100 && end_ms + 1000 >= playing_ms,
        "truncated at {end_ms} ms after {playing_ms} ms of playback"
    );

    let interrupted = next_of_type(&mut monitor, "agent.interrupted").await;
    let heard = interrupted["heard"].as_str().expect("heard");
    let intended = interrupted["intended"].as_str().expect("intended");
    assert!(intended.starts_with(heard), "{heard:?} / {intended:?}");
    assert!(heard.len() < intended.len(), "{heard:?}");

    let sid = caller.call_sid.clone();
    caller.hang_up().await;
    let record = server.record(&sid).await;
    let turns = record["transcript"].as_array().expect("transcript turns");
    assert!(
        turns
            .iter()
            .any(|t| t["interrupted"] == true && t["text"] == heard),
        "{turns:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_session_gets_the_apology_and_an_error_hang_up() {
    let (server, fake) = realtime_server(EventNames::Ga, Vec::new()).await;
    let mut caller = greeted_caller(&server, "realtimedrop01").await;
    fake.set_fault(Fault::DropMidResponse { after_deltas: 3 });
    caller.say(speech(400));
    let closed = until(&mut caller, "the hang-up", |h| {
        matches!(h, Heard::Closed { .. })
    })
    .await;
    assert!(
        matches!(
            closed,
            Heard::Closed {
                code: Some(1000),
                ..
            }
        ),
        "{closed:?}"
    );
    let sid = caller.call_sid.clone();
    let audio = caller.wait_closed(WAIT).await.expect("the caller ends");
    // Greeting (800 ms), some of the reply, the apology (600 ms).
    assert!(loud(&audio.agent) >= 8 * 1400, "the apology was heard");
    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("reason");
    assert!(reason.contains(VENDOR), "{reason}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_stops_the_agent_from_starting() {
    let fake = FakeRealtime::start(RealtimeOptions::default()).await;
    let error = RealtimeAgent::new(
        client(&fake, "sk-wrong", false),
        RealtimeSettings::default(),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error}"
    );
}
