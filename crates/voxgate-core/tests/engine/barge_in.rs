use std::time::Duration;

use voxgate_core::engine::{EngineEvent, Output, Persona, Role};

use crate::harness::{Caller, Fakes, Sim, WINDOW};

const LONG_REPLY: &str = "Our menu tonight has a lovely risotto with wild mushrooms, \
    a grilled sea bass with lemon butter, and a chocolate tart for dessert.";

fn fakes() -> Fakes {
    Fakes {
        transcripts: ["What's on the menu?", "Actually, just book the table."]
            .map(String::from)
            .into(),
        replies: [LONG_REPLY, "Done. See you at seven."]
            .map(String::from)
            .into(),
        ..Fakes::default()
    }
}

#[test]
fn caller_speech_during_the_reply_clears_playback_and_keeps_only_what_was_heard() {
    let mut sim = Sim::answered(Persona::default(), fakes());
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    // Let the reply start playing for a while.
    sim.run(Duration::from_millis(2500), Caller::Silent);
    assert!(sim.count(|o| matches!(o, Output::PlayAudio(_))) > 0);
    let onset = sim.elapsed();
    sim.run(Duration::from_millis(1500), Caller::Speaking);
    sim.run(Duration::from_secs(5), Caller::Silent);

    let clear_at = sim
        .first_time(|o| matches!(o, Output::ClearPlayback))
        .expect("playback cleared");
    let latency = clear_at - onset;
    assert!(
        latency <= Duration::from_millis(200) + 2 * WINDOW,
        "barge-in reacted in {latency:?}"
    );
    let interrupted = sim
        .events()
        .into_iter()
        .find_map(|e| match e {
            EngineEvent::AgentInterrupted {
                heard, intended, ..
            } => Some((heard, intended)),
            _ => None,
        })
        .expect("agent.interrupted published");
    let (heard, intended) = interrupted;
    assert!(!heard.is_empty(), "something was heard");
    assert!(
        intended.starts_with(&heard),
        "{heard:?} is a prefix of {intended:?}"
    );
    assert!(heard.len() < LONG_REPLY.len(), "not all of it was heard");

    // The next prompt carries only the heard part, then the new words.
    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 2);
    let second = &prompts[1];
    let assistant: Vec<&str> = second
        .iter()
        .filter(|m| m.role == Role::Assistant)
        .map(|m| m.content.as_str())
        .collect();
    assert_eq!(assistant.last(), Some(&heard.as_str()));
    assert_eq!(
        second.last().map(|m| m.content.as_str()),
        Some("Actually, just book the table.")
    );
}

#[test]
fn a_barge_in_while_the_model_still_streams_cancels_llm_and_tts() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            replies: [
                "Tonight we have a mushroom risotto. We also have sea bass with lemon butter. \
                 For dessert there is a chocolate tart with cream. And the wine list is long.",
            ]
            .map(String::from)
            .into(),
            // A slow model and slow synthesis: both are still working when
            // the caller cuts in.
            llm_token_interval: Duration::from_millis(150),
            tts_latency: Duration::from_millis(1200),
            ..fakes()
        },
    );
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    let prompted = sim.log.len();
    sim.run(Duration::from_millis(3000), Caller::Silent);
    let reply_playing = sim.log[prompted..]
        .iter()
        .any(|(_, o)| matches!(o, Output::PlayAudio(_)));
    assert!(reply_playing, "the reply is audible");
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    sim.run(Duration::from_secs(4), Caller::Silent);
    assert!(
        sim.events()
            .iter()
            .any(|e| matches!(e, EngineEvent::AgentInterrupted { .. }))
    );
    assert_eq!(sim.count(|o| matches!(o, Output::CancelLlm { .. })), 1);
    assert!(sim.count(|o| matches!(o, Output::CancelTts { .. })) >= 1);
}
