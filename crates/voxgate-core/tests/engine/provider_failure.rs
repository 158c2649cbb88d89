use std::time::Duration;

use voxgate_core::engine::{HangupReason, Input, Output, Persona, Stage};

use crate::harness::{Caller, Fakes, Sim};

fn failing() -> Fakes {
    Fakes {
        transcripts: ["Hello?"].map(String::from).into(),
        fail_llm: true,
        ..Fakes::default()
    }
}

#[test]
fn a_failing_provider_gets_an_apology_then_a_clean_hang_up() {
    let mut sim = Sim::answered(Persona::default(), failing());
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(5), Caller::Silent);
    let apology = sim
        .first_time(|o| matches!(o, Output::PlayApology { .. }))
        .expect("apology played");
    let hangup = sim
        .first_time(|o| matches!(o, Output::HangUp(_)))
        .expect("hung up");
    assert!(hangup > apology, "the apology is heard before the hang-up");
    match sim.hung_up {
        Some(HangupReason::ProviderFailed { stage, detail }) => {
            assert_eq!(stage, Stage::Llm);
            assert!(detail.contains("500"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(sim.engine.is_ended());
}

#[test]
fn the_call_is_hung_up_even_if_the_apology_mark_never_returns() {
    let mut sim = Sim::answered(Persona::default(), Fakes::default());
    sim.input(Input::ProviderFailed {
        stage: Stage::Tts,
        detail: "synthesis timed out".into(),
    });
    // Drop the carrier's echo: nothing but time passes.
    sim.engine.handle(
        sim.now + Duration::from_secs(9),
        Input::Vad { probability: 0.9 },
    );
    let deadline = sim.engine.poll_timeout().expect("a deadline");
    sim.engine.handle_timeout(deadline);
    let mut hung_up = false;
    while let Some(o) = sim.engine.poll_output() {
        hung_up |= matches!(
            o,
            Output::HangUp(HangupReason::ProviderFailed {
                stage: Stage::Tts,
                ..
            })
        );
    }
    assert!(hung_up);
}

#[test]
fn caller_speech_during_the_apology_is_ignored() {
    let mut sim = Sim::answered(Persona::default(), failing());
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_millis(1000), Caller::Silent);
    sim.run(Duration::from_secs(3), Caller::Speaking);
    assert_eq!(sim.count(|o| matches!(o, Output::Transcribe { .. })), 1);
}
