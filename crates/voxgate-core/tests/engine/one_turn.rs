use std::time::Duration;

use voxgate_core::engine::{EngineConfig, EngineEvent, Input, Output, Persona, Role, TurnMetrics};

use crate::harness::{Caller, Fakes, Sim};

fn fakes() -> Fakes {
    Fakes {
        transcripts: ["I'd like a table for two tonight."]
            .map(String::from)
            .into(),
        replies: ["Sure. What time would you like the table for two?"]
            .map(String::from)
            .into(),
        ..Fakes::default()
    }
}

fn metrics(sim: &Sim) -> Vec<TurnMetrics> {
    sim.events()
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::TurnMetrics(m) => Some(m),
            _ => None,
        })
        .collect()
}

#[test]
fn a_caller_turn_is_transcribed_answered_spoken_and_measured() {
    let mut sim = Sim::answered(Persona::default(), fakes());
    sim.run(Duration::from_millis(1500), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);

    let prompts = sim.prompts();
    assert_eq!(prompts.len(), 1);
    let roles: Vec<Role> = prompts[0].iter().map(|m| m.role).collect();
    assert_eq!(roles, vec![Role::System, Role::Assistant, Role::User]);
    assert_eq!(prompts[0][2].content, "I'd like a table for two tonight.");

    // Streamed by sentence: the short first sentence is spoken on its own.
    assert_eq!(
        sim.spoken_texts()[1..],
        ["Sure.", "What time would you like the table for two?"]
    );
    let m = &metrics(&sim)[0];
    let stages = [
        m.end_of_turn_ms,
        m.stt_final_ms,
        m.llm_first_token_ms,
        m.tts_first_audio_ms,
        m.first_audio_sent_ms,
        m.first_mark_ms,
    ];
    assert!(stages.iter().all(Option::is_some), "{m:?}");
    let stages: Vec<u64> = stages.into_iter().flatten().collect();
    assert!(
        stages.windows(2).all(|w| w[0] <= w[1]),
        "stages in order: {m:?}"
    );
    // A complete sentence is answered after the short delay (200 ms,
    // give or take the VAD's silence window and one tick).
    assert!(m.end_of_turn_ms.unwrap_or(0) <= 600, "{m:?}");

    let context = sim.engine.context();
    assert_eq!(context.last().map(|m| m.role), Some(Role::Assistant));
    assert_eq!(
        context.last().map(|m| m.content.as_str()),
        Some("Sure. What time would you like the table for two?")
    );
    assert!(sim.events().iter().any(|e| matches!(
        e,
        EngineEvent::Transcript {
            role: Role::User,
            is_final: true,
            ..
        }
    )));
}

#[test]
fn an_incomplete_sentence_waits_longer_than_a_complete_one() {
    let end_of_turn = |probability: Option<f32>| {
        let mut sim = Sim::answered(
            Persona::default(),
            Fakes {
                end_of_turn: probability,
                ..fakes()
            },
        );
        sim.run(Duration::from_millis(1200), Caller::Speaking);
        sim.run(Duration::from_secs(6), Caller::Silent);
        metrics(&sim)[0].end_of_turn_ms.unwrap_or(u64::MAX)
    };
    let complete = end_of_turn(Some(0.95));
    let incomplete = end_of_turn(Some(0.1));
    let no_verdict = end_of_turn(None);
    assert!(complete < no_verdict, "{complete} < {no_verdict}");
    assert!(no_verdict < incomplete, "{no_verdict} < {incomplete}");
    assert!(
        incomplete >= 2000,
        "incomplete waits the long delay: {incomplete}"
    );
}

#[test]
fn a_pause_inside_a_turn_does_not_split_it() {
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            end_of_turn: Some(0.1),
            ..fakes()
        },
    );
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_millis(900), Caller::Silent);
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);
    // Transcribed at each pause; the turn is answered once, from the
    // transcript of all of it.
    let requests: Vec<(u64, usize)> = sim
        .outputs()
        .filter_map(|(_, o)| match o {
            Output::Transcribe { turn, audio, .. } => Some((turn.0, audio.len())),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].0, requests[1].0, "one turn");
    assert!(
        requests[1].1 > requests[0].1,
        "the last covers the whole turn"
    );
    assert_eq!(sim.prompts().len(), 1, "answered once");
}

#[test]
fn the_transcript_is_asked_for_while_the_end_of_turn_is_decided() {
    let mut sim = Sim::answered(Persona::default(), fakes());
    sim.run(Duration::from_millis(1500), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);
    let m = &metrics(&sim)[0];
    let (end_of_turn, stt) = (m.end_of_turn_ms.unwrap_or(0), m.stt_final_ms.unwrap_or(0));
    // STT takes 300 ms in the fakes; it started at the caller's pause,
    // before the end of turn was decided.
    assert!(stt < end_of_turn + 300, "{m:?}");
    assert_eq!(
        sim.count(|o| matches!(o, Output::Transcribe { .. })),
        1,
        "the early transcript is the final one"
    );
    // Asked at the pause (half of the VAD's 320 ms minimum silence), not
    // when the VAD decided that speech ended.
    let asked = sim
        .first_time(|o| matches!(o, Output::Transcribe { .. }))
        .expect("a transcription");
    let speech_ended = sim
        .first_time(|o| matches!(o, Output::CheckEndOfTurn { .. }))
        .expect("an end-of-turn check");
    assert!(
        asked + Duration::from_millis(128) <= speech_ended,
        "{asked:?} vs {speech_ended:?}"
    );
}

#[test]
fn without_transcription_at_pauses_the_turn_is_transcribed_when_speech_ends() {
    // As for a recogniser that bills each request.
    let config = EngineConfig {
        transcribe_at_pauses: false,
        ..EngineConfig::default()
    };
    let mut sim = Sim::with_config(config, Persona::default(), fakes());
    sim.input(Input::Answered);
    sim.run(Duration::from_secs(3), Caller::Silent);
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_millis(224), Caller::Silent);
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);
    let asked: Vec<Duration> = sim
        .outputs()
        .filter(|(_, o)| matches!(o, Output::Transcribe { .. }))
        .map(|(at, _)| *at)
        .collect();
    let speech_ended = sim
        .first_time(|o| matches!(o, Output::CheckEndOfTurn { .. }))
        .expect("an end-of-turn check");
    assert_eq!(asked, [speech_ended], "once, when speech ended");
    assert_eq!(sim.prompts().len(), 1);
}

#[test]
fn speech_after_a_short_pause_is_transcribed_again() {
    let mut sim = Sim::answered(Persona::default(), fakes());
    sim.run(Duration::from_millis(800), Caller::Speaking);
    // Long enough to count as a pause (160 ms), too short to end speech.
    sim.run(Duration::from_millis(224), Caller::Silent);
    sim.run(Duration::from_millis(800), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);
    let requests: Vec<(Duration, u64, usize)> = sim
        .outputs()
        .filter_map(|(at, o)| match o {
            Output::Transcribe { turn, audio, .. } => Some((*at, turn.0, audio.len())),
            _ => None,
        })
        .collect();
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].1, requests[1].1, "one turn");
    assert!(requests[1].2 > requests[0].2, "the last covers the rest");
    // Answered once, from the transcript of all of it (STT takes 300 ms).
    let prompted = sim
        .first_time(|o| matches!(o, Output::Prompt { .. }))
        .expect("a prompt");
    assert!(prompted >= requests[1].0 + Duration::from_millis(300));
    assert_eq!(sim.prompts().len(), 1);
}

#[test]
fn words_heard_while_the_end_of_turn_is_pending_are_shown_as_a_partial() {
    // An unfinished sentence: the end of turn waits the long delay, and
    // the transcript that came back meanwhile is shown before the final.
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            end_of_turn: Some(0.05),
            ..fakes()
        },
    );
    sim.run(Duration::from_millis(1500), Caller::Speaking);
    sim.run(Duration::from_secs(6), Caller::Silent);

    let user: Vec<(bool, String)> = sim
        .events()
        .into_iter()
        .filter_map(|e| match e {
            EngineEvent::Transcript {
                role: Role::User,
                is_final,
                text,
                ..
            } => Some((is_final, text)),
            _ => None,
        })
        .collect();
    let words = "I'd like a table for two tonight.".to_owned();
    assert_eq!(user, [(false, words.clone()), (true, words)]);
    let partial_at = sim
        .first_time(|o| {
            matches!(
                o,
                Output::Event(EngineEvent::Transcript {
                    role: Role::User,
                    is_final: false,
                    ..
                })
            )
        })
        .expect("a partial");
    let prompt_at = sim
        .first_time(|o| matches!(o, Output::Prompt { .. }))
        .expect("a prompt");
    assert!(
        prompt_at >= partial_at + Duration::from_millis(1000),
        "the partial came well before the turn ended"
    );
}

#[test]
fn a_long_call_drops_old_history_in_blocks_so_the_prompt_start_holds() {
    const TURNS: usize = 14;
    let mut sim = Sim::answered(
        Persona::default(),
        Fakes {
            transcripts: (0..TURNS).map(|i| format!("Question {i}?")).collect(),
            replies: (0..TURNS).map(|i| format!("Answer {i}.")).collect(),
            ..Fakes::default()
        },
    );
    for _ in 0..TURNS {
        sim.run(Duration::from_millis(800), Caller::Speaking);
        sim.run(Duration::from_secs(3), Caller::Silent);
    }
    let prompts = sim.prompts();
    assert_eq!(prompts.len(), TURNS);
    // History beyond the system prompt: the greeting, then two messages a
    // turn. Past 20, ten at a time are dropped.
    let lengths: Vec<usize> = prompts.iter().map(|p| p.len() - 1).collect();
    assert_eq!(
        lengths,
        [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 12, 14, 16, 18]
    );
    let starts: Vec<&str> = prompts.iter().map(|p| p[1].content.as_str()).collect();
    let greeting = "Hello! How can I help you today?";
    assert!(starts[..10].iter().all(|s| *s == greeting), "{starts:?}");
    assert!(starts[10..].iter().all(|s| *s == "Answer 4."), "{starts:?}");
    assert!(prompts.iter().all(|p| p[0].role == Role::System));
}
