use std::time::Duration;

use voxgate_core::engine::{Output, Persona, Role};

use crate::harness::{Caller, Fakes, Sim};

#[test]
fn the_agent_never_starts_talking_over_the_caller() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["I want to book a table", "for four people at eight."]
                .map(String::from)
                .into(),
            replies: ["How many people?", "Four at eight, booked."]
                .map(String::from)
                .into(),
            // The model answers slowly, so the caller resumes first.
            llm_first_token: Duration::from_millis(900),
            end_of_turn: None,
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    // A pause long enough to end the turn...
    sim.run(Duration::from_millis(1100), Caller::Silent);
    assert_eq!(sim.prompts().len(), 1);
    // ...but the caller goes on before any reply audio exists.
    let resumed = sim.log.len();
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    let while_speaking = sim.log[resumed..]
        .iter()
        .filter(|(_, o)| matches!(o, Output::PlayAudio(_)))
        .count();
    assert_eq!(while_speaking, 0, "no agent audio while the caller talks");
    sim.run(Duration::from_secs(6), Caller::Silent);

    // The unanswered words lead the next prompt, merged with the new ones.
    let prompts = sim.prompts();
    let last = prompts.last().expect("a prompt");
    assert_eq!(
        last.last().map(|m| (m.role, m.content.as_str())),
        Some((
            Role::User,
            "I want to book a table for four people at eight."
        ))
    );
    assert_eq!(sim.count(|o| matches!(o, Output::CancelLlm { .. })), 1);
}

#[test]
fn words_said_while_the_last_turn_is_transcribed_join_it() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["I want to book a table", "for two."]
                .map(String::from)
                .into(),
            replies: ["A table for two, booked."].map(String::from).into(),
            // Transcription is slow: the caller's first words are still
            // being transcribed when their next words pause and end.
            stt_latency: Duration::from_millis(1500),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(700), Caller::Silent);
    sim.run(Duration::from_millis(400), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);

    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 1, "one answer to both pieces");
    assert_eq!(
        prompts[0].last().map(|m| (m.role, m.content.as_str())),
        Some((Role::User, "I want to book a table for two."))
    );
}

#[test]
fn turns_transcribed_out_of_order_are_answered_in_the_order_spoken() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["I want to book a table", "for two."]
                .map(String::from)
                .into(),
            replies: ["A table for two, booked."].map(String::from).into(),
            stt_latency: Duration::from_millis(2500),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(700), Caller::Silent);
    // The second piece's transcript comes back long before the first's.
    sim.fakes.stt_latency = Duration::from_millis(200);
    sim.run(Duration::from_millis(400), Caller::Speaking);
    sim.run(Duration::from_millis(1000), Caller::Silent);
    assert!(sim.prompts().is_empty(), "waits for the first piece");
    sim.run(Duration::from_secs(5), Caller::Silent);

    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 1);
    assert_eq!(
        prompts[0].last().map(|m| (m.role, m.content.as_str())),
        Some((Role::User, "I want to book a table for two."))
    );
}
