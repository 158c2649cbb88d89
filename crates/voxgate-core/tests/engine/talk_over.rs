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

/// A caller who says "I want to book a table", pauses long enough to end
/// the turn, then adds "for two.", with the first piece's transcript taking
/// `first_stt` and the second's `second_stt`.
fn two_pieces(first_stt: Duration, second_stt: Duration) -> Sim {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["I want to book a table", "for two."]
                .map(String::from)
                .into(),
            replies: ["A table for two, booked."].map(String::from).into(),
            stt_latency: first_stt,
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(700), Caller::Silent);
    sim.fakes.stt_latency = second_stt;
    sim.run(Duration::from_millis(400), Caller::Speaking);
    sim
}

fn assert_one_answer_to_both_pieces(sim: &Sim) {
    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 1, "one answer to both pieces");
    assert_eq!(
        prompts[0].last().map(|m| (m.role, m.content.as_str())),
        Some((Role::User, "I want to book a table for two."))
    );
}

#[test]
fn words_said_while_the_last_turn_is_transcribed_join_it() {
    // Transcription is slow: the first piece is still being transcribed
    // when the second pauses and ends.
    let slow = Duration::from_millis(1500);
    let mut sim = two_pieces(slow, slow);
    sim.run(Duration::from_secs(6), Caller::Silent);
    assert_one_answer_to_both_pieces(&sim);
}

#[test]
fn turns_transcribed_out_of_order_are_answered_in_the_order_spoken() {
    // The second piece's transcript comes back long before the first's.
    let mut sim = two_pieces(Duration::from_millis(2500), Duration::from_millis(200));
    sim.run(Duration::from_millis(1000), Caller::Silent);
    assert!(sim.prompts().is_empty(), "waits for the first piece");
    sim.run(Duration::from_secs(5), Caller::Silent);
    assert_one_answer_to_both_pieces(&sim);
}

#[test]
fn a_cough_before_the_reply_is_heard_does_not_leave_the_caller_unanswered() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["I want to book a table", ""].map(String::from).into(),
            replies: ["How many people?", "For how many people?"]
                .map(String::from)
                .into(),
            // The model answers slowly, so the cough comes first.
            llm_first_token: Duration::from_millis(900),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(700), Caller::Silent);
    assert_eq!(sim.prompts().len(), 1);
    // A cough: long enough to count as speech, transcribed as nothing.
    sim.run(Duration::from_millis(160), Caller::Speaking);
    sim.run(Duration::from_secs(4), Caller::Silent);

    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 2, "the words are answered after the cough");
    assert_eq!(
        prompts[1].last().map(|m| (m.role, m.content.as_str())),
        Some((Role::User, "I want to book a table"))
    );
    assert!(
        sim.count(|o| matches!(o, Output::PlayAudio(_))) > 0,
        "the answer is spoken"
    );
}
