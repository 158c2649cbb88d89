use std::time::Duration;

use voxgate_core::engine::{EngineEvent, Output, Persona, Role};

use crate::harness::{Caller, Fakes, Sim};

#[test]
fn the_agent_greets_on_answer_and_the_greeting_is_heard() {
    let mut sim = Sim::new(Persona::default(), Fakes::default());
    sim.input(voxgate_core::engine::Input::Answered);
    assert_eq!(sim.spoken_texts(), vec!["Hello! How can I help you today?"]);
    sim.run(Duration::from_secs(4), Caller::Silent);
    assert!(sim.count(|o| matches!(o, Output::PlayAudio(_))) > 1);
    let heard: Vec<_> = sim
        .events()
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Transcript {
                role: Role::Assistant,
                text,
                ..
            } => Some(text),
            _ => None,
        })
        .collect();
    assert_eq!(heard, vec!["Hello! How can I help you today?"]);
    // The greeting is part of the conversation the model will see.
    let context = sim.engine.context();
    assert_eq!(context.last().map(|m| m.role), Some(Role::Assistant));
}

#[test]
fn an_empty_greeting_says_nothing() {
    let persona = Persona {
        greeting: String::new(),
        ..Persona::default()
    };
    let mut sim = Sim::new(persona, Fakes::default());
    sim.input(voxgate_core::engine::Input::Answered);
    sim.run(Duration::from_secs(2), Caller::Silent);
    assert!(sim.spoken_texts().is_empty());
}
