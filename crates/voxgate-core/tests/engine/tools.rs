//! Tools: the model ends the call, transfers it (only to allowed numbers),
//! and calls the persona's tools while the caller hears a filler line.

use std::time::Duration;

use voxgate_core::engine::{HangupReason, Output, Persona, Role, ToolCall, ToolSpec};

use crate::harness::{Caller, Fakes, Sim};

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    }
}

fn one_question(reply: &str, calls: Vec<ToolCall>) -> Fakes {
    Fakes {
        transcripts: ["Could you help me?"].map(String::from).into(),
        replies: [reply.to_owned()].into(),
        tool_calls: [calls].into(),
        ..Fakes::default()
    }
}

fn caller_asks(sim: &mut Sim) {
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    sim.run(Duration::from_secs(8), Caller::Silent);
}

fn weather_persona() -> Persona {
    Persona {
        tools: vec![ToolSpec {
            name: "weather".to_owned(),
            description: "The weather in a city".to_owned(),
            parameters: serde_json::json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }],
        ..Persona::default()
    }
}

#[test]
fn end_call_hangs_up_after_the_goodbye_has_played() {
    let mut sim = Sim::answered(
        Persona::default(),
        one_question(
            "Goodbye, have a nice day!",
            vec![call("c1", "end_call", "{}")],
        ),
    );
    caller_asks(&mut sim);

    assert_eq!(sim.hung_up, Some(HangupReason::AgentEnded));
    let goodbye_played = sim
        .first_time(|o| matches!(o, Output::Event(voxgate_core::engine::EngineEvent::Transcript { role: Role::Assistant, text, .. }) if text.contains("nice day")))
        .expect("the goodbye was heard");
    let hang_up = sim
        .first_time(|o| matches!(o, Output::HangUp(_)))
        .expect("hung up");
    assert!(
        hang_up >= goodbye_played,
        "hang up only after the goodbye played"
    );
    // The model said goodbye itself: the persona's line is not added.
    assert!(
        !sim.spoken_texts()
            .iter()
            .any(|t| t.contains("Thank you for calling"))
    );
    assert!(sim.offered_tools()[0].contains(&"end_call".to_owned()));
    assert!(!sim.offered_tools()[0].contains(&"transfer_call".to_owned()));
}

#[test]
fn a_silent_end_call_says_the_personas_goodbye() {
    let mut sim = Sim::answered(
        Persona::default(),
        one_question("", vec![call("c1", "end_call", "{}")]),
    );
    caller_asks(&mut sim);
    assert!(
        sim.spoken_texts()
            .iter()
            .any(|t| t == "Thank you for calling. Goodbye!")
    );
    assert_eq!(sim.hung_up, Some(HangupReason::AgentEnded));
}

#[test]
fn transfer_goes_only_to_an_allowed_number() {
    let persona = Persona {
        transfer_numbers: vec!["+14155550100".to_owned()],
        ..Persona::default()
    };
    let mut fakes = one_question(
        "",
        vec![call("c1", "transfer_call", r#"{"to":"+19995550000"}"#)],
    );
    // Told the number is not allowed, the model picks the allowed one.
    fakes.replies.push_back(String::new());
    fakes.tool_calls.push_back(vec![call(
        "c2",
        "transfer_call",
        r#"{"to":"+14155550100"}"#,
    )]);
    let mut sim = Sim::answered(persona, fakes);
    caller_asks(&mut sim);

    assert!(sim.offered_tools()[0].contains(&"transfer_call".to_owned()));
    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 2, "prompted again after the refusal");
    let refusal = prompts[1].last().expect("a tool result");
    assert_eq!(refusal.role, Role::Tool);
    assert_eq!(refusal.tool_call_id.as_deref(), Some("c1"));
    assert!(
        refusal.content.contains("not a number you may transfer to"),
        "{refusal:?}"
    );
    assert_eq!(sim.transferred_to.as_deref(), Some("+14155550100"));
    assert!(
        sim.spoken_texts()
            .iter()
            .any(|t| t.contains("transfer your call"))
    );
    assert_eq!(sim.hung_up, None);
}

#[test]
fn a_persona_tool_runs_with_a_filler_and_its_result_prompts_the_model_again() {
    let mut fakes = one_question(
        "Let me check.",
        vec![call("w1", "weather", r#"{"city":"Paris"}"#)],
    );
    fakes.replies.push_back("It is sunny in Paris.".to_owned());
    fakes
        .tool_results
        .insert("weather".to_owned(), r#"{"sky":"sunny"}"#.to_owned());
    let mut sim = Sim::answered(weather_persona(), fakes);
    caller_asks(&mut sim);

    assert_eq!(sim.count(|o| matches!(o, Output::RunTool { .. })), 1);
    let spoken = sim.spoken_texts();
    let filler = spoken.iter().position(|t| t == "One moment, please.");
    let answer = spoken.iter().position(|t| t == "It is sunny in Paris.");
    assert!(filler.is_some() && answer > filler, "{spoken:?}");

    let second = &sim.prompts()[1];
    let n = second.len();
    assert_eq!(second[n - 2].role, Role::Assistant);
    assert_eq!(second[n - 2].content, "Let me check.");
    assert_eq!(second[n - 2].tool_calls[0].name, "weather");
    assert_eq!(second[n - 1].role, Role::Tool);
    assert_eq!(second[n - 1].content, r#"{"sky":"sunny"}"#);
    assert!(sim.offered_tools()[1].contains(&"weather".to_owned()));

    // The context ends with the answer, said once.
    let context = sim.engine.context();
    let last = context.last().expect("a message");
    assert_eq!(
        (last.role, last.content.as_str()),
        (Role::Assistant, "It is sunny in Paris.")
    );
    assert_eq!(sim.hung_up, None);
}

#[test]
fn an_unknown_tool_is_reported_to_the_model() {
    let mut fakes = one_question("", vec![call("x1", "launch_rocket", "{}")]);
    fakes.replies.push_back("I cannot do that.".to_owned());
    let mut sim = Sim::answered(Persona::default(), fakes);
    caller_asks(&mut sim);
    let second = &sim.prompts()[1];
    let result = second.last().expect("a tool result");
    assert!(result.content.contains("no tool named"), "{result:?}");
    assert!(sim.spoken_texts().iter().any(|t| t == "I cannot do that."));
}

#[test]
fn a_model_that_keeps_calling_tools_is_finally_offered_none() {
    let mut fakes = one_question("", vec![call("w1", "weather", "{}")]);
    for i in 2..=4 {
        fakes.replies.push_back(String::new());
        fakes
            .tool_calls
            .push_back(vec![call(&format!("w{i}"), "weather", "{}")]);
    }
    let mut sim = Sim::answered(weather_persona(), fakes);
    sim.fakes.tool_latency = Duration::from_millis(50);
    caller_asks(&mut sim);
    let offered = sim.offered_tools();
    assert_eq!(offered.len(), 4, "{offered:?}");
    assert!(offered[3].is_empty(), "the last round offers no tools");
}

#[test]
fn a_barge_in_during_a_tool_cancels_it() {
    let mut fakes = one_question("", vec![call("w1", "weather", "{}")]);
    fakes.tool_latency = Duration::from_secs(5);
    fakes
        .transcripts
        .push_back("Never mind, goodbye.".to_owned());
    fakes.replies.push_back("Okay.".to_owned());
    let mut sim = Sim::answered(weather_persona(), fakes);
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    sim.run(Duration::from_millis(1500), Caller::Silent);
    // The filler plays; the caller talks over it.
    assert!(
        sim.spoken_texts()
            .iter()
            .any(|t| t == "One moment, please.")
    );
    sim.run(Duration::from_millis(1200), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);
    assert!(sim.count(|o| matches!(o, Output::CancelLlm { .. })) >= 1);
    // The late tool result (cancelled) never prompts the model.
    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 2, "{prompts:?}");
    assert_eq!(prompts[1].last().map(|m| m.role), Some(Role::User));
}
