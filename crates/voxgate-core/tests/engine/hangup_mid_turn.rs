use std::time::Duration;

use voxgate_core::engine::{Input, Output, Persona};

use crate::harness::{Caller, Fakes, Sim};

#[test]
fn hanging_up_mid_turn_cancels_everything_the_turn_started() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: ["Tell me about your wines."].map(String::from).into(),
            replies: ["We have a long list of Italian and French wines by the glass."]
                .map(String::from)
                .into(),
            llm_token_interval: Duration::from_millis(200),
            ..Fakes::default()
        },
    );
    sim.run(Duration::from_millis(1000), Caller::Speaking);
    sim.run(Duration::from_millis(1200), Caller::Silent);
    assert_eq!(sim.prompts().len(), 1, "the model is answering");
    let before = sim.log.len();
    sim.input(Input::CallerHungUp);
    let after: Vec<_> = sim.log[before..].iter().map(|(_, o)| o.clone()).collect();
    assert!(
        after.iter().any(|o| matches!(o, Output::CancelLlm { .. })),
        "{after:?}"
    );
    assert!(sim.engine.is_ended());
    assert_eq!(sim.engine.poll_timeout(), None);

    // Late provider answers change nothing.
    let logged = sim.log.len();
    sim.run(Duration::from_secs(5), Caller::Speaking);
    assert_eq!(sim.log.len(), logged);
}
