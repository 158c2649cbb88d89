use std::time::Duration;

use voxgate_core::engine::{HangupReason, Persona};

use crate::harness::{Caller, Fakes, Sim};

#[test]
fn a_silent_caller_is_reprompted_then_hung_up_on() {
    let mut sim = Sim::answered(Persona::default(), Fakes::default());
    sim.run(Duration::from_secs(9), Caller::Silent);
    assert_eq!(
        sim.spoken_texts(),
        vec!["Hello! How can I help you today?", "Are you still there?"]
    );
    sim.run(Duration::from_secs(20), Caller::Silent);
    assert_eq!(sim.spoken_texts().len(), 3, "two reprompts");
    assert_eq!(sim.hung_up, Some(HangupReason::CallerSilent));
    assert!(sim.engine.is_ended());
}

#[test]
fn speech_resets_the_silence_count() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["Hi"].map(String::from).into(),
            replies: ["Hello."].map(String::from).into(),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_secs(9), Caller::Silent);
    sim.run(Duration::from_millis(600), Caller::Speaking);
    sim.run(Duration::from_secs(12), Caller::Silent);
    assert!(
        sim.hung_up.is_none(),
        "the caller spoke: the count restarted"
    );
}
