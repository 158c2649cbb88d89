use std::time::Duration;

use voxgate_core::engine::{EngineEvent, Output, Persona, Role};

use crate::harness::{Caller, Fakes, Sim};

const REPLY: &str = "We are open from noon until eleven every day, and the kitchen closes at ten.";

fn fakes(transcripts: &[&str]) -> Fakes {
    Fakes {
        transcripts: transcripts.iter().map(|s| s.to_string()).collect(),
        replies: [REPLY].map(String::from).into(),
        ..Fakes::default()
    }
}

fn interrupted(sim: &Sim) -> bool {
    sim.events()
        .iter()
        .any(|e| matches!(e, EngineEvent::AgentInterrupted { .. }))
}

#[test]
fn a_cough_clears_then_resumes_the_reply() {
    let mut sim = Sim::answered(Persona::default(), fakes(&["When are you open?"]));
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(2000), Caller::Silent);
    // A 300 ms cough: long enough to clear, too short to be words.
    sim.run(Duration::from_millis(300), Caller::Speaking);
    sim.run(Duration::from_secs(8), Caller::Silent);

    assert_eq!(sim.count(|o| matches!(o, Output::ClearPlayback)), 1);
    assert!(!interrupted(&sim));
    let resent = sim
        .outputs()
        .filter(|(_, o)| matches!(o, Output::PlayAudio(a) if a.mark.starts_with("g1.")))
        .count();
    assert!(resent > 0, "the unheard rest is played again");
    assert_eq!(sim.count(|o| matches!(o, Output::Transcribe { .. })), 1);
    let context = sim.engine.context();
    assert_eq!(context.last().map(|m| m.role), Some(Role::Assistant));
    assert_eq!(context.last().map(|m| m.content.as_str()), Some(REPLY));
}

#[test]
fn wordless_speech_after_a_clear_resumes_too() {
    // Long enough to be transcribed, but the transcript is empty (noise).
    let mut sim = Sim::answered(Persona::default(), fakes(&["When are you open?", ""]));
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(2000), Caller::Silent);
    sim.run(Duration::from_millis(700), Caller::Speaking);
    sim.run(Duration::from_secs(8), Caller::Silent);
    assert_eq!(sim.count(|o| matches!(o, Output::Transcribe { .. })), 2);
    assert!(!interrupted(&sim));
    assert_eq!(
        sim.engine.context().last().map(|m| m.content.as_str()),
        Some(REPLY)
    );
}
