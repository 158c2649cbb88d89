//! The codec against recorded frames, in GA and beta names.

use serde_json::{Value, json};

use super::*;

fn parse(text: &str) -> ServerEvent {
    parse_server_event(text).unwrap_or_else(|e| panic!("{text} parses: {e}"))
}

fn value(event: &ClientEvent, dialect: Dialect) -> Value {
    serde_json::from_str(&event.to_json(dialect)).expect("client events are JSON")
}

#[test]
fn session_and_turn_events() {
    let created = r#"{"type":"session.created","event_id":"event_C9G5RJeJ2gF77mV7f2B1j","session":{"type":"realtime","object":"realtime.session","id":"sess_C9G5QPteg4UIbotdKLoYQ","model":"gpt-realtime-2025-08-28","output_modalities":["audio"],"instructions":"Be brief.","tools":[],"tool_choice":"auto","max_output_tokens":"inf"}}"#;
    assert_eq!(
        parse(created),
        ServerEvent::SessionCreated {
            session_id: Some("sess_C9G5QPteg4UIbotdKLoYQ".to_owned())
        }
    );
    assert_eq!(
        parse(r#"{"type":"session.updated","event_id":"event_2","session":{"id":"sess_1"}}"#),
        ServerEvent::SessionUpdated
    );
    let started = r#"{"type":"input_audio_buffer.speech_started","event_id":"event_3","audio_start_ms":1000,"item_id":"item_003"}"#;
    assert_eq!(
        parse(started),
        ServerEvent::SpeechStarted {
            item_id: Some("item_003".to_owned()),
            audio_start_ms: Some(1000)
        }
    );
    let stopped = r#"{"type":"input_audio_buffer.speech_stopped","event_id":"event_4","audio_end_ms":2000,"item_id":"item_003"}"#;
    assert_eq!(
        parse(stopped),
        ServerEvent::SpeechStopped {
            item_id: Some("item_003".to_owned()),
            audio_end_ms: Some(2000)
        }
    );
    let committed = r#"{"type":"input_audio_buffer.committed","event_id":"event_5","previous_item_id":"msg_001","item_id":"item_003"}"#;
    assert_eq!(
        parse(committed),
        ServerEvent::InputCommitted {
            item_id: Some("item_003".to_owned())
        }
    );
    let delta = r#"{"type":"conversation.item.input_audio_transcription.delta","event_id":"event_6","item_id":"item_003","content_index":0,"delta":"Hello,"}"#;
    assert_eq!(
        parse(delta),
        ServerEvent::InputTranscriptDelta {
            item_id: "item_003".to_owned(),
            delta: "Hello,".to_owned()
        }
    );
    let completed = r#"{"type":"conversation.item.input_audio_transcription.completed","event_id":"event_7","item_id":"item_003","content_index":0,"transcript":"Hello, how are you?","usage":{"type":"duration","seconds":2}}"#;
    assert_eq!(
        parse(completed),
        ServerEvent::InputTranscriptCompleted {
            item_id: "item_003".to_owned(),
            transcript: "Hello, how are you?".to_owned()
        }
    );
    let failed = r#"{"type":"conversation.item.input_audio_transcription.failed","event_id":"event_8","item_id":"item_003","content_index":0,"error":{"type":"transcription_error","code":"audio_unintelligible","message":"The audio could not be transcribed.","param":null}}"#;
    assert_eq!(
        parse(failed),
        ServerEvent::InputTranscriptFailed {
            item_id: "item_003".to_owned(),
            reason: "The audio could not be transcribed.".to_owned()
        }
    );
}

/// One spoken response as the GA API sends it, and the same in beta names.
fn response_frames(ga: bool) -> Vec<String> {
    let (audio, transcript, added) = if ga {
        (
            "response.output_audio",
            "response.output_audio_transcript",
            "conversation.item.added",
        )
    } else {
        (
            "response.audio",
            "response.audio_transcript",
            "conversation.item.created",
        )
    };
    vec![
        r#"{"type":"response.created","event_id":"event_10","response":{"object":"realtime.response","id":"resp_001","status":"in_progress","status_details":null,"output":[],"usage":null}}"#.to_owned(),
        r#"{"type":"response.output_item.added","event_id":"event_11","response_id":"resp_001","output_index":0,"item":{"id":"msg_007","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}"#.to_owned(),
        format!(r#"{{"type":"{added}","event_id":"event_12","previous_item_id":"item_003","item":{{"id":"msg_007","object":"realtime.item","type":"message","status":"in_progress","role":"assistant","content":[]}}}}"#),
        r#"{"type":"response.content_part.added","event_id":"event_13","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0,"part":{"type":"audio","transcript":""}}"#.to_owned(),
        format!(r#"{{"type":"{audio}.delta","event_id":"event_14","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0,"delta":"/39/fw=="}}"#),
        format!(r#"{{"type":"{transcript}.delta","event_id":"event_15","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0,"delta":"Hello"}}"#),
        format!(r#"{{"type":"{audio}.done","event_id":"event_16","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0}}"#),
        format!(r#"{{"type":"{transcript}.done","event_id":"event_17","response_id":"resp_001","item_id":"msg_007","output_index":0,"content_index":0,"transcript":"Hello there."}}"#),
        r#"{"type":"response.output_item.done","event_id":"event_18","response_id":"resp_001","output_index":0,"item":{"id":"msg_007","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Hello there."}]}}"#.to_owned(),
        r#"{"type":"response.done","event_id":"event_19","response":{"object":"realtime.response","id":"resp_001","status":"completed","status_details":null,"output":[{"id":"msg_007","object":"realtime.item","type":"message","status":"completed","role":"assistant","content":[{"type":"output_audio","transcript":"Hello there."}]}],"usage":{"total_tokens":275,"input_tokens":127,"output_tokens":148}}}"#.to_owned(),
    ]
}

fn expected_response() -> Vec<ServerEvent> {
    let assistant = Item {
        id: "msg_007".to_owned(),
        kind: ItemKind::Message {
            role: "assistant".to_owned(),
        },
    };
    let ids = || ("resp_001".to_owned(), "msg_007".to_owned());
    vec![
        ServerEvent::ResponseCreated {
            response_id: "resp_001".to_owned(),
        },
        ServerEvent::OutputItemAdded {
            response_id: "resp_001".to_owned(),
            item: assistant.clone(),
        },
        ServerEvent::ItemAdded(assistant.clone()),
        ServerEvent::Ignored {
            kind: "response.content_part.added".to_owned(),
        },
        ServerEvent::AudioDelta {
            response_id: ids().0,
            item_id: ids().1,
            audio: vec![0xFF, 0x7F, 0x7F, 0x7F],
        },
        ServerEvent::AudioTranscriptDelta {
            response_id: ids().0,
            item_id: ids().1,
            delta: "Hello".to_owned(),
        },
        ServerEvent::AudioDone {
            response_id: ids().0,
            item_id: ids().1,
        },
        ServerEvent::AudioTranscriptDone {
            response_id: ids().0,
            item_id: ids().1,
            transcript: "Hello there.".to_owned(),
        },
        ServerEvent::OutputItemDone {
            response_id: "resp_001".to_owned(),
            item: assistant.clone(),
        },
        ServerEvent::ResponseDone {
            response_id: "resp_001".to_owned(),
            status: ResponseStatus::Completed,
            output: vec![assistant],
            usage: Some(TokenUsage {
                prompt: 127,
                completion: 148,
            }),
        },
    ]
}

#[test]
fn a_spoken_response_in_ga_names() {
    let parsed: Vec<ServerEvent> = response_frames(true).iter().map(|f| parse(f)).collect();
    assert_eq!(parsed, expected_response());
}

#[test]
fn a_spoken_response_in_beta_names() {
    let parsed: Vec<ServerEvent> = response_frames(false).iter().map(|f| parse(f)).collect();
    assert_eq!(parsed, expected_response());
}

#[test]
fn text_deltas_in_both_names() {
    for kind in ["response.output_text.delta", "response.text.delta"] {
        let frame = format!(
            r#"{{"type":"{kind}","event_id":"e","response_id":"resp_2","item_id":"msg_8","output_index":0,"content_index":0,"delta":"Hi"}}"#
        );
        assert_eq!(
            parse(&frame),
            ServerEvent::TextDelta {
                response_id: "resp_2".to_owned(),
                item_id: "msg_8".to_owned(),
                delta: "Hi".to_owned()
            }
        );
    }
}

#[test]
fn function_call_items_carry_the_call() {
    let added = r#"{"type":"response.output_item.added","event_id":"e1","response_id":"resp_5","output_index":0,"item":{"id":"fc_001","object":"realtime.item","type":"function_call","status":"in_progress","name":"book_table","call_id":"call_abc","arguments":""}}"#;
    let done = r#"{"type":"response.output_item.done","event_id":"e2","response_id":"resp_5","output_index":0,"item":{"id":"fc_001","object":"realtime.item","type":"function_call","status":"completed","name":"book_table","call_id":"call_abc","arguments":"{\"party\":2}"}}"#;
    let call = |arguments: &str| Item {
        id: "fc_001".to_owned(),
        kind: ItemKind::FunctionCall(ToolCall {
            id: "call_abc".to_owned(),
            name: "book_table".to_owned(),
            arguments: arguments.to_owned(),
        }),
    };
    assert_eq!(
        parse(added),
        ServerEvent::OutputItemAdded {
            response_id: "resp_5".to_owned(),
            item: call("")
        }
    );
    assert_eq!(
        parse(done),
        ServerEvent::OutputItemDone {
            response_id: "resp_5".to_owned(),
            item: call(r#"{"party":2}"#)
        }
    );
    let response_done = r#"{"type":"response.done","event_id":"e3","response":{"object":"realtime.response","id":"resp_5","status":"completed","status_details":null,"output":[{"id":"fc_001","object":"realtime.item","type":"function_call","status":"completed","name":"book_table","call_id":"call_abc","arguments":"{\"party\":2}"}],"usage":null}}"#;
    let ServerEvent::ResponseDone { output, usage, .. } = parse(response_done) else {
        panic!("a response.done");
    };
    assert_eq!(output, vec![call(r#"{"party":2}"#)]);
    assert_eq!(usage, None);
}

#[test]
fn cancelled_and_failed_responses() {
    let cancelled = r#"{"type":"response.done","event_id":"e","response":{"object":"realtime.response","id":"resp_9","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"},"output":[]}}"#;
    assert!(matches!(
        parse(cancelled),
        ServerEvent::ResponseDone {
            status: ResponseStatus::Cancelled,
            ..
        }
    ));
    let failed = r#"{"type":"response.done","event_id":"e","response":{"id":"resp_10","status":"failed","output":[]}}"#;
    assert!(matches!(
        parse(failed),
        ServerEvent::ResponseDone {
            status: ResponseStatus::Failed,
            ..
        }
    ));
}

#[test]
fn errors_are_benign_only_for_races() {
    let race = r#"{"type":"error","event_id":"event_890","error":{"type":"invalid_request_error","code":"response_cancel_not_active","message":"Cancellation failed: no active response found.","param":null,"event_id":"evt_client_1"}}"#;
    let ServerEvent::Error(error) = parse(race) else {
        panic!("an error");
    };
    assert!(error.is_benign());
    assert_eq!(error.event_id.as_deref(), Some("evt_client_1"));
    let active = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"conversation_already_has_active_response","message":"Conversation already has an active response in progress."}}"#;
    assert!(matches!(parse(active), ServerEvent::Error(e) if e.is_benign()));
    let fatal = r#"{"type":"error","event_id":"e","error":{"type":"invalid_request_error","code":"unknown_parameter","message":"Unknown parameter: 'session.input_audio_format'.","param":"session.input_audio_format","event_id":null}}"#;
    let ServerEvent::Error(error) = parse(fatal) else {
        panic!("an error");
    };
    assert!(!error.is_benign());
    assert_eq!(error.param.as_deref(), Some("session.input_audio_format"));
    let server = r#"{"type":"error","event_id":"e","error":{"type":"server_error","message":"The server had an error."}}"#;
    assert!(matches!(parse(server), ServerEvent::Error(e) if !e.is_benign() && e.code.is_none()));
}

#[test]
fn unknown_events_are_ignored_and_garbage_is_a_protocol_error() {
    assert_eq!(
        parse(r#"{"type":"rate_limits.updated","event_id":"e","rate_limits":[]}"#),
        ServerEvent::Ignored {
            kind: "rate_limits.updated".to_owned()
        }
    );
    for bad in [
        "not json",
        r#"{"no_type":1}"#,
        r#"{"type":"response.output_audio.delta","response_id":"r","item_id":"i","delta":"%%%"}"#,
        r#"{"type":"response.output_audio.delta","delta":"AAAA"}"#,
        r#"{"type":"response.created","response":{}}"#,
    ] {
        assert!(
            matches!(
                parse_server_event(bad),
                Err(ProviderError::Protocol {
                    provider: VENDOR,
                    ..
                })
            ),
            "{bad}"
        );
    }
}

fn session() -> SessionConfig {
    SessionConfig {
        instructions: "You take restaurant bookings.".to_owned(),
        voice: Some("marin".to_owned()),
        transcription_model: Some("gpt-4o-mini-transcribe".to_owned()),
        turn_detection: Some(ServerVad::default()),
        tools: vec![ToolSpec {
            name: "book_table".to_owned(),
            description: "Books a table.".to_owned(),
            parameters: json!({"type":"object","properties":{"party":{"type":"integer"}}}),
        }],
    }
}

#[test]
fn session_update_in_the_ga_shape() {
    let update = value(&ClientEvent::SessionUpdate(session()), Dialect::Ga);
    assert_eq!(
        update,
        json!({
            "type": "session.update",
            "session": {
                "type": "realtime",
                "output_modalities": ["audio"],
                "instructions": "You take restaurant bookings.",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcmu"},
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": {
                            "type": "server_vad",
                            "threshold": 0.5,
                            "prefix_padding_ms": 300,
                            "silence_duration_ms": 500,
                            "create_response": true,
                            "interrupt_response": true
                        }
                    },
                    "output": {"format": {"type": "audio/pcmu"}, "voice": "marin"}
                },
                "tools": [{
                    "type": "function",
                    "name": "book_table",
                    "description": "Books a table.",
                    "parameters": {"type":"object","properties":{"party":{"type":"integer"}}}
                }],
                "tool_choice": "auto"
            }
        })
    );
}

#[test]
fn session_update_in_the_beta_shape() {
    let config = SessionConfig {
        voice: None,
        tools: Vec::new(),
        turn_detection: None,
        ..session()
    };
    let update = value(&ClientEvent::SessionUpdate(config), Dialect::Beta);
    assert_eq!(
        update,
        json!({
            "type": "session.update",
            "session": {
                "modalities": ["audio", "text"],
                "instructions": "You take restaurant bookings.",
                "input_audio_format": "g711_ulaw",
                "output_audio_format": "g711_ulaw",
                "input_audio_transcription": {"model": "gpt-4o-mini-transcribe"},
                "turn_detection": null
            }
        })
    );
    let with_voice = value(&ClientEvent::SessionUpdate(session()), Dialect::Beta);
    assert_eq!(with_voice["session"]["voice"], "marin");
    assert_eq!(
        with_voice["session"]["turn_detection"]["type"],
        "server_vad"
    );
    assert!(with_voice["session"].get("audio").is_none());
    assert!(with_voice["session"].get("type").is_none());
}

#[test]
fn other_client_events() {
    for dialect in [Dialect::Ga, Dialect::Beta] {
        assert_eq!(
            value(
                &ClientEvent::AppendAudio(vec![0xFF, 0x7F, 0x7F, 0x7F]),
                dialect
            ),
            json!({"type": "input_audio_buffer.append", "audio": "/39/fw=="})
        );
        assert_eq!(
            value(
                &ClientEvent::Truncate {
                    item_id: "msg_007".to_owned(),
                    audio_end_ms: 1500
                },
                dialect
            ),
            json!({"type": "conversation.item.truncate", "item_id": "msg_007", "content_index": 0, "audio_end_ms": 1500})
        );
        assert_eq!(
            value(
                &ClientEvent::FunctionCallOutput {
                    call_id: "call_abc".to_owned(),
                    output: r#"{"booked":true}"#.to_owned()
                },
                dialect
            ),
            json!({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_abc", "output": "{\"booked\":true}"}})
        );
        assert_eq!(
            value(&ClientEvent::CreateResponse { instructions: None }, dialect),
            json!({"type": "response.create"})
        );
        assert_eq!(
            value(
                &ClientEvent::CreateResponse {
                    instructions: Some("Greet the caller.".to_owned())
                },
                dialect
            ),
            json!({"type": "response.create", "response": {"instructions": "Greet the caller."}})
        );
        assert_eq!(
            value(&ClientEvent::CancelResponse, dialect),
            json!({"type": "response.cancel"})
        );
    }
}
