use std::time::Duration;

use voxgate_core::engine::{Input, Persona, Role};

use crate::harness::{Caller, Fakes, Sim};

#[test]
fn a_config_change_mid_call_applies_from_the_next_turn() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["Hi there.", "Can you help me?"].map(String::from).into(),
            replies: ["Hello.", "Of course."].map(String::from).into(),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(4), Caller::Silent);
    sim.input(Input::Configure(Box::new(Persona {
        instructions: "You are Marco, the maître d' of Trattoria Roma.".into(),
        ..Persona::default()
    })));
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(4), Caller::Silent);

    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 2);
    let system = |i: usize| {
        prompts[i]
            .iter()
            .find(|m| m.role == Role::System)
            .map(|m| m.content.clone())
    };
    assert_eq!(system(0), Some(Persona::default().instructions));
    assert_eq!(
        system(1),
        Some("You are Marco, the maître d' of Trattoria Roma.".into())
    );
    // The conversation so far is kept across the change.
    assert!(prompts[1].iter().any(|m| m.content == "Hi there."));
}
