//! Calls with an agent, end to end through the server: a real-time Twilio
//! caller, the engine, and scripted providers whose behaviour each test
//! sets (an energy VAD, fixed transcripts and replies, a tone voice). The
//! real local models are exercised by the binary's end-to-end test.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestServer, metric};
use serde_json::Value;
use tokio::sync::mpsc;
use voxgate_core::engine::{Role, ToolCall};
use voxgate_providers::{
    BatchStt, LanguageModel, LlmChunk, LlmRequest, ProviderError, TaskScope, TextToSpeech,
    TranscribeUtterance, VadModel, VadStream,
};
use voxgate_server::agent::{AgentState, Providers};
use voxgate_testkit::{Heard, LiveCaller, LiveCallerOptions, connect, next_of_type, send_text};

/// Speech wherever the caller's audio is loud.
struct EnergyVad;

struct EnergyStream;

impl VadModel for EnergyVad {
    fn stream(&self) -> Box<dyn VadStream> {
        Box::new(EnergyStream)
    }
}

impl VadStream for EnergyStream {
    fn window_samples(&self) -> usize {
        512
    }
    fn push(&mut self, window: &[i16]) -> Result<f32, ProviderError> {
        let energy = window.iter().map(|&s| f64::from(s).abs()).sum::<f64>() / window.len() as f64;
        Ok(if energy > 500.0 { 0.95 } else { 0.02 })
    }
    fn reset(&mut self) {}
}

/// Transcripts for successive turns.
struct ScriptedStt(Mutex<VecDeque<String>>);

impl TranscribeUtterance for ScriptedStt {
    fn transcribe(
        &self,
        _audio: Vec<i16>,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<String, ProviderError>> {
        let (tx, rx) = mpsc::channel(1);
        let text = self.0.lock().expect("lock").pop_front().unwrap_or_default();
        let _ = tx.try_send(Ok(text));
        rx
    }
}

/// A model that streams the given reply word by word, or fails.
struct ScriptedLlm {
    reply: Result<String, String>,
    word_gap: Duration,
    /// Replies being generated right now (drops when cancelled or done).
    active: Arc<AtomicUsize>,
    prompts: Mutex<Vec<LlmRequest>>,
    /// Scripted rounds (text, then tool calls) taken before `reply` is used.
    rounds: Mutex<VecDeque<(String, Vec<ToolCall>)>>,
}

impl LanguageModel for ScriptedLlm {
    fn reply(
        &self,
        request: LlmRequest,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<LlmChunk, ProviderError>> {
        self.prompts.lock().expect("lock").push(request);
        let round = self.rounds.lock().expect("lock").pop_front();
        let (tx, rx) = mpsc::channel(4);
        let (reply, calls) = match round {
            Some((text, calls)) => (Ok(text), calls),
            None => (self.reply.clone(), Vec::new()),
        };
        let gap = self.word_gap;
        let active = Arc::clone(&self.active);
        active.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(async move {
            match reply {
                Ok(text) => {
                    for word in text.split_inclusive(' ') {
                        tokio::time::sleep(gap).await;
                        if tx.send(Ok(LlmChunk::Text(word.to_owned()))).await.is_err() {
                            break;
                        }
                    }
                    for call in calls {
                        let _ = tx.send(Ok(LlmChunk::ToolCall(call))).await;
                    }
                }
                Err(reason) => {
                    let _ = tx
                        .send(Err(ProviderError::Inference {
                            provider: "scripted",
                            reason,
                        }))
                        .await;
                }
            }
            active.fetch_sub(1, Ordering::SeqCst);
        });
        rx
    }
}

/// 50 ms of a loud tone per character, at 16 kHz, in 100 ms chunks.
struct ToneTts;

impl TextToSpeech for ToneTts {
    fn sample_rate(&self) -> u32 {
        16_000
    }
    fn synthesize(
        &self,
        text: String,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>> {
        let samples = text.chars().count() * 800;
        let (tx, rx) = mpsc::channel(samples / 1600 + 2);
        let tone: Vec<i16> = (0..samples)
            .map(|i| if (i / 8) % 2 == 0 { 6000 } else { -6000 })
            .collect();
        for chunk in tone.chunks(1600) {
            let _ = tx.try_send(Ok(chunk.to_vec()));
        }
        rx
    }
}

struct Script {
    transcripts: Vec<&'static str>,
    reply: Result<&'static str, &'static str>,
    word_gap: Duration,
    rounds: Vec<(&'static str, Vec<ToolCall>)>,
}

async fn server_with(script: Script) -> (TestServer, Arc<ScriptedLlm>) {
    server_configured(script, |_| {}).await
}

async fn server_configured(
    script: Script,
    tune: impl FnOnce(&mut voxgate_server::config::Config),
) -> (TestServer, Arc<ScriptedLlm>) {
    let server = TestServer::start_with(tune).await;
    let llm = Arc::new(ScriptedLlm {
        reply: script.reply.map(str::to_owned).map_err(str::to_owned),
        word_gap: script.word_gap,
        active: Arc::new(AtomicUsize::new(0)),
        prompts: Mutex::new(Vec::new()),
        rounds: Mutex::new(
            script
                .rounds
                .into_iter()
                .map(|(text, calls)| (text.to_owned(), calls))
                .collect(),
        ),
    });
    let providers = Providers::new(
        Arc::new(EnergyVad),
        None,
        Arc::new(BatchStt::new(ScriptedStt(Mutex::new(
            script.transcripts.into_iter().map(str::to_owned).collect(),
        )))),
        Arc::clone(&llm) as Arc<dyn LanguageModel>,
        Arc::new(ToneTts),
        &server.handle.task_scope(),
    )
    .await
    .expect("providers");
    server.handle.set_agent(AgentState::Ready(providers));
    (server, llm)
}

/// `ms` of loud speech-like sound at 8 kHz.
fn speech(ms: usize) -> Vec<i16> {
    (0..ms * 8)
        .map(|i| if (i / 4) % 2 == 0 { 8000 } else { -8000 })
        .collect()
}

const WAIT: Duration = Duration::from_secs(10);

/// Waits for the next `kind` event about `call_sid` on a monitor.
async fn event(monitor: &mut voxgate_testkit::Client, kind: &str) -> Value {
    next_of_type(monitor, kind).await
}

async fn monitor(server: &TestServer) -> voxgate_testkit::Client {
    let mut monitor = connect(server.addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    next_of_type(&mut monitor, "subscribed").await;
    monitor
}

/// Waits (bounded) until the number of replies being generated satisfies `check`.
async fn replies_become(llm: &ScriptedLlm, what: &str, check: impl Fn(usize) -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check(llm.active.load(Ordering::SeqCst)) {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A caller on the default persona who has heard the greeting play out.
async fn greeted_caller(server: &TestServer, tag: &str) -> LiveCaller {
    greeted_caller_as(server, tag, "default").await
}

/// A caller on `persona` who has heard the greeting play out.
async fn greeted_caller_as(server: &TestServer, tag: &str, persona: &str) -> LiveCaller {
    let options = LiveCallerOptions {
        persona: persona.to_owned(),
        ..LiveCallerOptions::default()
    };
    greeted_caller_with(server, tag, options).await
}

/// A caller dialled with `options` who has heard the greeting play out.
async fn greeted_caller_with(
    server: &TestServer,
    tag: &str,
    options: LiveCallerOptions,
) -> LiveCaller {
    let mut caller = LiveCaller::dial(server.addr, tag, options).await;
    assert!(caller.wait_playing(true, WAIT).await, "the greeting plays");
    assert!(caller.wait_playing(false, WAIT).await, "the greeting ends");
    caller
}

/// Reads caller observations until one matches.
async fn until(caller: &mut LiveCaller, what: &str, matches: impl Fn(&Heard) -> bool) -> Heard {
    loop {
        match caller.next_heard(WAIT).await {
            Some(heard) if matches(&heard) => return heard,
            Some(_) => {}
            None => panic!("timed out waiting for {what}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greets_then_answers_one_turn() {
    let (server, llm) = server_with(Script {
        transcripts: vec!["I would like a table for two."],
        reply: Ok("Sure. What time would you like?"),
        word_gap: Duration::from_millis(5),
        rounds: Vec::new(),
    })
    .await;
    let mut monitor = monitor(&server).await;
    let mut caller =
        LiveCaller::dial(server.addr, "agentturn01", LiveCallerOptions::default()).await;

    let greeting = event(&mut monitor, "transcript").await;
    assert_eq!(greeting["role"], "assistant");
    assert_eq!(greeting["text"], "Hello! How can I help you today?");
    until(&mut caller, "greeting audio", |h| {
        matches!(h, Heard::Audio { .. })
    })
    .await;
    assert!(
        caller.wait_playing(false, WAIT).await,
        "greeting played out"
    );

    caller.say(speech(800));
    let (mut user, mut agent, mut metrics) = (None, None, None);
    while user.is_none() || agent.is_none() || metrics.is_none() {
        let value = voxgate_testkit::next_json(&mut monitor).await;
        match (value["type"].as_str(), value["role"].as_str()) {
            (Some("transcript"), Some("user")) => user = Some(value),
            (Some("transcript"), Some("assistant")) if user.is_some() => agent = Some(value),
            (Some("turn.metrics"), _) => metrics = Some(value),
            _ => {}
        }
    }
    let (user, agent, metrics) = (
        user.unwrap_or_default(),
        agent.unwrap_or_default(),
        metrics.unwrap_or_default(),
    );
    assert_eq!(user["text"], "I would like a table for two.");
    assert_eq!(user["final"], true);
    let said = agent["text"].as_str().expect("agent text");
    assert!(
        !said.is_empty() && "Sure. What time would you like?".starts_with(said),
        "{said}"
    );
    assert_eq!(metrics["call_id"], caller.call_sid.as_str());
    for stage in [
        "end_of_turn_ms",
        "stt_final_ms",
        "llm_first_token_ms",
        "tts_first_audio_ms",
        "first_audio_sent_ms",
        "first_mark_ms",
    ] {
        assert!(metrics[stage].is_u64(), "{stage} in {metrics}");
    }
    let prompt = llm
        .prompts
        .lock()
        .expect("lock")
        .last()
        .map(|request| request.messages.clone())
        .expect("prompted");
    assert_eq!(
        prompt.last().map(|m| m.content.as_str()),
        Some("I would like a table for two.")
    );

    let sid = caller.call_sid.clone();
    let audio = caller.hang_up().await;
    assert!(
        audio.agent.iter().any(|&s| s.abs() > 3000),
        "the caller heard the agent"
    );
    drop(monitor);
    server
        .eventually("agent tasks end with the call", |h| h.running_tasks() == 0)
        .await;
    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "completed");
    let turns = record["transcript"].as_array().expect("transcript turns");
    let said: Vec<(&str, &str)> = turns
        .iter()
        .map(|t| {
            (
                t["role"].as_str().unwrap_or(""),
                t["text"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(said[0], ("assistant", "Hello! How can I help you today?"));
    assert_eq!(said[1], ("user", "I would like a table for two."));
    assert_eq!(said[2].0, "assistant");
    assert!(
        turns[1]["started_ms"].as_i64() < turns[1]["ended_ms"].as_i64(),
        "{turns:?}"
    );
    assert!(
        turns[1]["ended_ms"].as_i64() <= turns[2]["started_ms"].as_i64(),
        "{turns:?}"
    );
    // The recording: caller left, agent right, on one timeline.
    let url = record["recording_url"].as_str().expect("recording url");
    let (status, head, wav) = common::http_get_bytes(server.addr, url).await;
    assert_eq!(status, 200, "{head}");
    let wav = voxgate_core::audio::parse_wav(&wav).expect("a WAV");
    assert_eq!((wav.channels, wav.sample_rate.hz()), (2, 8000));
    let (left, right): (Vec<i16>, Vec<i16>) =
        wav.samples.chunks_exact(2).map(|f| (f[0], f[1])).unzip();
    let loud = |s: &[i16]| s.iter().filter(|x| x.abs() > 3000).count();
    assert!(loud(&left) > 4000, "the caller's speech is on the left");
    assert!(loud(&right) > 8000, "the agent's speech is on the right");
    let first_agent = right
        .iter()
        .position(|x| x.abs() > 3000)
        .expect("agent audio");
    let first_caller = left
        .iter()
        .position(|x| x.abs() > 3000)
        .expect("caller audio");
    assert!(
        first_agent < first_caller,
        "the greeting comes before the caller speaks"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_clears_playback_and_says_what_was_heard() {
    let (server, llm) = server_with(Script {
        transcripts: vec!["Tell me everything.", "Stop, please."],
        reply: Ok("Here is a very long answer that goes on and on. It has many sentences. It keeps going for a long while."),
        word_gap: Duration::from_millis(5),
        rounds: Vec::new(),
    })
    .await;
    let mut monitor = monitor(&server).await;
    let mut caller = greeted_caller(&server, "agentbarge01").await;
    event(&mut monitor, "transcript").await;

    caller.say(speech(600));
    assert!(
        caller.wait_playing(true, WAIT).await,
        "the long reply starts"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    caller.say(speech(900));
    until(&mut caller, "clear", |h| matches!(h, Heard::Clear { .. })).await;
    let interrupted = event(&mut monitor, "agent.interrupted").await;
    let heard = interrupted["heard"].as_str().expect("heard");
    let intended = interrupted["intended"].as_str().expect("intended");
    assert!(
        intended.starts_with(heard),
        "heard {heard:?} is a prefix of {intended:?}"
    );
    assert!(
        heard.len() < intended.len(),
        "the caller did not hear it all"
    );
    // The model stops generating the interrupted reply.
    replies_become(&llm, "generation cancelled", |active| active == 0).await;
    caller.hang_up().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_model_gets_an_apology_and_a_clean_hang_up() {
    let (server, _llm) = server_with(Script {
        transcripts: vec!["Hello?"],
        reply: Err("model server returned 500"),
        word_gap: Duration::from_millis(5),
        rounds: Vec::new(),
    })
    .await;
    let mut caller = greeted_caller(&server, "agentfail01").await;
    caller.say(speech(600));
    assert!(caller.wait_playing(true, WAIT).await, "the apology plays");
    let closed = until(&mut caller, "the hang-up", |h| {
        matches!(h, Heard::Closed { .. })
    })
    .await;
    assert!(
        matches!(
            closed,
            Heard::Closed {
                code: Some(1000),
                ..
            }
        ),
        "{closed:?}"
    );
    let sid = caller.call_sid.clone();
    let audio = caller.wait_closed(WAIT).await.expect("caller ends");
    assert!(
        audio.agent.iter().filter(|&&s| s.abs() > 3000).count() > 8000,
        "apology heard"
    );
    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "error");
    let reason = record["end_reason"].as_str().expect("reason");
    assert!(
        reason.contains("llm failed") && reason.contains("500"),
        "{reason}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_up_mid_reply_cancels_the_turn() {
    let (server, llm) = server_with(Script {
        transcripts: vec!["Go on."],
        reply: Ok("one two three four five six seven eight nine ten eleven twelve"),
        word_gap: Duration::from_millis(300),
        rounds: Vec::new(),
    })
    .await;
    let caller = greeted_caller(&server, "agenthang01").await;
    caller.say(speech(600));
    replies_become(&llm, "the model starts", |active| active > 0).await;
    caller.hang_up().await;
    replies_become(&llm, "generation stops with the call", |active| active == 0).await;
    server
        .eventually("no call, no agent task left", |h| {
            h.active_calls() == 0 && h.running_tasks() == 0
        })
        .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_wait_for_the_models() {
    let server = TestServer::start().await;
    server.handle.set_agent(AgentState::Loading);
    let (status, body) = common::http_get(server.addr, "/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(r#""agent":"loading""#), "{body}");
    assert_eq!(
        voxgate_testkit::refused_upgrade_status(server.addr, "/stream").await,
        503
    );
    server
        .handle
        .set_agent(AgentState::Failed("Whisper: model.bin missing".into()));
    let (status, body) = common::http_get(server.addr, "/readyz").await;
    assert_eq!(status, 503);
    assert!(body.contains("model.bin missing"), "{body}");
    assert!(
        metric(
            server.addr,
            r#"voxgate_websocket_refused_total{endpoint="stream",reason="not_ready"}"#
        )
        .await
            >= 1.0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_runs_a_text_turn_with_the_same_persona_and_model() {
    let (server, llm) = server_with(Script {
        transcripts: vec![],
        reply: Ok("We open at nine."),
        word_gap: Duration::from_millis(1),
        rounds: Vec::new(),
    })
    .await;
    let mut monitor = connect(server.addr, "/events").await;
    send_text(
        &mut monitor,
        r#"{"type":"chat","id":"q1","text":"When do you open?"}"#,
    )
    .await;
    let answer = next_of_type(&mut monitor, "chat.response").await;
    assert_eq!(answer["id"], "q1");
    assert_eq!(answer["persona"], "default");
    assert_eq!(answer["text"], "We open at nine.");
    send_text(&mut monitor, r#"{"type":"chat","text":"And on Sundays?"}"#).await;
    next_of_type(&mut monitor, "chat.response").await;
    let prompt = llm
        .prompts
        .lock()
        .expect("lock")
        .last()
        .map(|request| request.messages.clone())
        .expect("prompted");
    let said: Vec<&str> = prompt.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(
        said[1..],
        ["When do you open?", "We open at nine.", "And on Sundays?"]
    );
    send_text(&mut monitor, r#"{"type":"chat","text":"  "}"#).await;
    let refused = next_of_type(&mut monitor, "error").await;
    assert_eq!(refused["code"], "invalid_field");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_without_an_agent_is_refused() {
    let server = TestServer::start().await;
    let mut monitor = connect(server.addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"chat","text":"Hello"}"#).await;
    let refused = next_of_type(&mut monitor, "error").await;
    assert_eq!(refused["code"], "agent_unavailable");
    server.stop().await;
}

async fn create_persona(server: &TestServer, body: &str) {
    let request = common::json_request(server.addr, "POST", "/api/personas", body);
    let (status, answer) = common::http_request(server.addr, request).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_picks_the_persona_and_a_live_config_switches_it() {
    let (server, llm) = server_with(Script {
        transcripts: vec!["Hi.", "Hello again."],
        reply: Ok("Certainly."),
        word_gap: Duration::from_millis(1),
        rounds: Vec::new(),
    })
    .await;
    create_persona(
        &server,
        r#"{"name":"sales","instructions":"You sell boats.","greeting":"Sales here!"}"#,
    )
    .await;
    create_persona(
        &server,
        r#"{"name":"support","instructions":"You fix boats.","greeting":"Support here!"}"#,
    )
    .await;
    let mut monitor = monitor(&server).await;
    let options = LiveCallerOptions {
        persona: "sales".to_owned(),
        ..LiveCallerOptions::default()
    };
    let mut caller = LiveCaller::dial(server.addr, "agentpersona1", options).await;
    let greeting = event(&mut monitor, "transcript").await;
    assert_eq!(greeting["text"], "Sales here!");
    assert!(caller.wait_playing(false, WAIT).await);
    caller.say(speech(600));
    replies_become(&llm, "the first reply", |_| {
        !llm.prompts.lock().expect("lock").is_empty()
    })
    .await;
    let system = |n: usize| {
        llm.prompts.lock().expect("lock")[n].messages[0]
            .content
            .clone()
    };
    assert_eq!(system(0), "You sell boats.");

    let config = format!(
        r#"{{"type":"config","call_id":"{}","persona":"support"}}"#,
        caller.call_sid
    );
    send_text(&mut monitor, config).await;
    next_of_type(&mut monitor, "config.applied").await;
    assert!(caller.wait_playing(true, WAIT).await);
    assert!(caller.wait_playing(false, WAIT).await);
    // The persona lookup runs beside the call; give it a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    caller.say(speech(600));
    replies_become(&llm, "the second reply", |_| {
        llm.prompts.lock().expect("lock").len() >= 2
    })
    .await;
    assert_eq!(system(1), "You fix boats.");
    caller.hang_up().await;
    server.stop().await;
}

/// A one-route HTTP server standing in for a persona's tool; it records the
/// bodies it was sent.
async fn tool_server(answer: &'static str) -> (std::net::SocketAddr, Arc<Mutex<Vec<String>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&bodies);
    let app = axum::Router::new().route(
        "/weather",
        axum::routing::post(move |body: String| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().expect("lock").push(body);
                answer
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, bodies)
}

fn tool_call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_calls_a_persona_tool_then_ends_the_call() {
    let (tool_addr, bodies) = tool_server(r#"{"sky":"sunny"}"#).await;
    let (server, llm) = server_configured(
        Script {
            transcripts: vec!["What is the weather in Paris?"],
            reply: Ok("Unused."),
            word_gap: Duration::from_millis(5),
            rounds: vec![
                ("", vec![tool_call("w1", "weather", r#"{"city":"Paris"}"#)]),
                (
                    "It is sunny in Paris. Goodbye!",
                    vec![tool_call("e1", "end_call", "{}")],
                ),
            ],
        },
        // The stand-in tool is on loopback, which tools may not reach
        // unless the operator allows it.
        |config| {
            config.tools.allowed_hosts =
                voxgate_core::outbound::AllowedHosts::parse("127.0.0.1").expect("valid");
        },
    )
    .await;
    create_persona(
        &server,
        &format!(
            r#"{{"name":"weatherman","tools":[{{"name":"weather","description":"Weather by city",
                "parameters":{{"type":"object","properties":{{"city":{{"type":"string"}}}}}},
                "url":"http://{tool_addr}/weather","timeout_ms":2000}}]}}"#
        ),
    )
    .await;
    let caller = greeted_caller_as(&server, "agenttools01", "weatherman").await;
    let sid = caller.call_sid.clone();
    caller.say(speech(800));

    server
        .eventually("the agent hangs up", |h| h.running_tasks() == 0)
        .await;
    let audio = caller.hang_up().await;
    assert!(
        audio.agent.iter().any(|&s| s.abs() > 3000),
        "the caller heard the agent"
    );
    assert_eq!(
        bodies.lock().expect("lock").as_slice(),
        [r#"{"city":"Paris"}"#],
        "the tool got the model's arguments"
    );
    let prompts = llm.prompts.lock().expect("lock").clone();
    assert_eq!(prompts.len(), 2, "prompted again with the tool's answer");
    let offered: Vec<&str> = prompts[0].tools.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        offered,
        ["end_call", "weather"],
        "no transfer: the call cannot be transferred"
    );
    let result = prompts[1].messages.last().expect("a tool result");
    assert_eq!(result.role, Role::Tool);
    assert_eq!(result.content, r#"{"sky":"sunny"}"#);

    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "hangup", "{record}");
    assert_eq!(record["end_reason"], "the agent ended the call", "{record}");
    let said: Vec<String> = record["transcript"]
        .as_array()
        .expect("transcript turns")
        .iter()
        .filter(|t| t["role"] == "assistant")
        .map(|t| t["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(said.iter().any(|t| t.contains("One moment")), "{said:?}");
    assert!(
        said.iter().any(|t| t.contains("sunny in Paris")),
        "{said:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_at_an_internal_address_is_refused_at_call_time_and_the_model_told() {
    let (tool_addr, bodies) = tool_server(r#"{"sky":"sunny"}"#).await;
    let (server, llm) = server_with(Script {
        transcripts: vec!["What is the weather in Paris?"],
        reply: Ok("Unused."),
        word_gap: Duration::from_millis(5),
        rounds: vec![
            ("", vec![tool_call("w1", "weather", r#"{"city":"Paris"}"#)]),
            (
                "I cannot check the weather. Goodbye!",
                vec![tool_call("e1", "end_call", "{}")],
            ),
        ],
    })
    .await;
    // Saved straight to the store, as a persona saved before the policy,
    // or under an allow-list since shortened: the API would refuse it.
    let persona: voxgate_core::persona::PersonaSpec = serde_json::from_value(serde_json::json!({
        "name": "snoop",
        "tools": [{"name": "weather", "url": format!("http://{tool_addr}/weather")}],
    }))
    .expect("a persona");
    let store = &server.handle.app_state().store;
    store.put_persona(&persona, 0).await.expect("stored");
    let refused_before = metric(
        server.addr,
        r#"voxgate_tool_calls_total{outcome="forbidden_address"}"#,
    )
    .await;

    let caller = greeted_caller_as(&server, "agenttools02", "snoop").await;
    caller.say(speech(800));
    server
        .eventually("the agent hangs up", |h| h.running_tasks() == 0)
        .await;
    caller.hang_up().await;
    assert!(
        bodies.lock().expect("lock").is_empty(),
        "the tool was not reached"
    );
    let prompts = llm.prompts.lock().expect("lock").clone();
    assert_eq!(prompts.len(), 2, "prompted again with the refusal");
    let result = prompts[1].messages.last().expect("a tool result");
    assert_eq!(result.role, Role::Tool);
    assert_eq!(
        result.content,
        "error: the tool's address is not allowed (127.0.0.1 is a loopback address)"
    );
    let refused = metric(
        server.addr,
        r#"voxgate_tool_calls_total{outcome="forbidden_address"}"#,
    )
    .await;
    assert_eq!(refused, refused_before + 1.0);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_transfers_a_twilio_call_to_an_allowed_number() {
    use voxgate_testkit::fakes::twilio::FakeTwilio;
    const ACCOUNT: &str = voxgate_testkit::ACCOUNT_SID;
    const TOKEN: &str = "twilio-token-3f9a";
    let twilio = FakeTwilio::start(ACCOUNT, TOKEN).await;
    let base_url = twilio.base_url();
    let (server, llm) = server_configured(
        Script {
            transcripts: vec!["Can I talk to a person?"],
            reply: Ok("Unused."),
            word_gap: Duration::from_millis(5),
            rounds: vec![(
                "",
                vec![tool_call("t1", "transfer_call", r#"{"to":"+14155550100"}"#)],
            )],
        },
        |config| {
            config.twilio = voxgate_server::config::TwilioConfig {
                account_sid: Some(ACCOUNT.to_owned()),
                auth_token: Some(voxgate_providers::Secret::new(TOKEN)),
                base_url: voxgate_providers::cloud::BaseUrl::parse(&base_url)
                    .expect("the fake's URL"),
            };
        },
    )
    .await;
    create_persona(
        &server,
        r#"{"name":"frontdesk","transfer_numbers":["+14155550100"]}"#,
    )
    .await;
    let options = LiveCallerOptions {
        persona: "frontdesk".to_owned(),
        auth_token: Some(TOKEN.to_owned()),
        ..LiveCallerOptions::default()
    };
    let caller = greeted_caller_with(&server, "agenttransfer1", options).await;
    twilio.add_call(&caller.call_sid, "+15551230000", "+15551239999");
    let sid = caller.call_sid.clone();
    caller.say(speech(800));

    server
        .eventually("the call ends after the transfer", |h| {
            h.running_tasks() == 0
        })
        .await;
    caller.hang_up().await;
    let update = twilio
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(&format!("/Calls/{sid}.json")))
        .expect("the call was updated");
    assert!(update.authorized);
    let twiml = update.get("Twiml").unwrap_or_default().to_owned();
    assert!(twiml.contains("<Dial>+14155550100</Dial>"), "{twiml}");
    let offered: Vec<String> = llm.prompts.lock().expect("lock")[0]
        .tools
        .iter()
        .map(|t| t.name.clone())
        .collect();
    assert_eq!(offered, ["end_call", "transfer_call"]);
    let record = server.record(&sid).await;
    assert_eq!(record["disposition"], "transferred", "{record}");
    assert_eq!(
        record["end_reason"], "transferred to +14155550100",
        "{record}"
    );
    server.stop().await;
}
