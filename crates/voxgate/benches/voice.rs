//! Voice benchmarks on the embedded default (local models), through the real
//! server on loopback with a real-time simulated Twilio caller:
//!
//! * voice to voice: the caller's last sound → the first agent audio at the
//!   caller, with the engine's stage breakdown (`turn.metrics`);
//! * barge-in: the caller starts talking over a reply → `clear` at the caller;
//! * VAD cost: Silero time per second of call audio;
//! * memory: resident memory per extra live call (models are shared).
//!
//! Run with `cargo bench -p voxgate --bench voice` (needs the models, which
//! `voxgate models fetch` or the first run installs, and espeak-ng).
//!
//! With `VOXGATE_BENCH_PROVIDERS=fakes`, speech to text, the model and the
//! voice are the in-repo fakes of Deepgram, an OpenAI-compatible server and
//! ElevenLabs (the same the tests use), over their real protocols on
//! loopback: vendors that answer at once, so the figures are voxgate's own
//! share of a cloud call's latency.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use voxgate_core::audio::SampleRate;
use voxgate_models::models_dir;
use voxgate_providers::Secret;
use voxgate_providers::cloud::BaseUrl;
use voxgate_server::Server;
use voxgate_server::agent::AgentState;
use voxgate_server::config::{
    AgentConfig, Config, LlmProvider, SttProvider, TtsProvider, VendorAccess,
};
use voxgate_testkit::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions};
use voxgate_testkit::fakes::elevenlabs::{self, FakeElevenLabs, FakeElevenLabsOptions};
use voxgate_testkit::fakes::openai::{ChatReply, FakeOpenAi};
use voxgate_testkit::{
    CALLER_QUESTIONS, Heard, LiveCaller, LiveCallerOptions, connect, espeak, send_text,
};

/// Turns of the voice-to-voice call: the questions, asked twice.
const TURNS: usize = 2 * CALLER_QUESTIONS.len();
const LONG_QUESTION: &str = "Please tell me a long story about the sea.";
const INTERRUPTION: &str = "Wait, stop, I have another question.";
const BARGE_INS: usize = 8;
const MEMORY_CALLS: usize = 8;
const WAIT: Duration = Duration::from_secs(60);
/// The engine's stages in `turn.metrics`, in order.
const STAGES: [&str; 6] = [
    "end_of_turn_ms",
    "stt_final_ms",
    "llm_first_token_ms",
    "tts_first_audio_ms",
    "first_audio_sent_ms",
    "first_mark_ms",
];
/// Silence after which the agent is taken to have finished speaking.
const AGENT_DONE_QUIET: Duration = Duration::from_millis(800);

fn speak(text: &str) -> Vec<i16> {
    let mut out = espeak(text, 160, SampleRate::HZ_8000);
    // espeak pads with silence; the caller stops at the last sound.
    let end = out.iter().rposition(|s| s.abs() > 300).map_or(0, |i| i + 1);
    out.truncate(end);
    out
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank]
}

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

/// Waits for the first agent audio; returns when it arrived.
async fn first_audio(caller: &mut LiveCaller) -> Option<Instant> {
    loop {
        match caller.next_heard(WAIT).await? {
            Heard::Audio { .. } => return Some(Instant::now()),
            Heard::Closed { .. } => return None,
            Heard::Clear { .. } => {}
        }
    }
}

/// What a monitor saw of the calls.
#[derive(Default)]
struct Watched {
    /// Turn metrics, the greetings' aside.
    metrics: Vec<Value>,
    /// Final transcripts, in order, as (role, text).
    transcripts: Vec<(String, String)>,
}

/// Collects the calls' turn metrics and final transcripts from a monitor
/// until told to stop. The monitor reads all along, so it answers the
/// server's pings and outlives its idle timeout however long the call.
async fn watch_calls(
    addr: std::net::SocketAddr,
) -> (oneshot::Sender<()>, tokio::task::JoinHandle<Watched>) {
    let mut monitor = connect(addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    let (stop, mut stopped) = oneshot::channel();
    let watched = tokio::spawn(async move {
        let mut watched = Watched::default();
        loop {
            let message = tokio::select! {
                _ = &mut stopped => break,
                message = monitor.next() => message,
            };
            let text = match message {
                Some(Ok(Message::Text(text))) => text,
                // Pings are answered by reading on.
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => break,
            };
            let Ok(event) = serde_json::from_str::<Value>(text.as_str()) else {
                continue;
            };
            if event["type"] == "turn.metrics" && event["turn"] != 0 {
                watched.metrics.push(event);
            } else if event["type"] == "transcript" && event["final"] == true {
                let field = |name: &str| event[name].as_str().unwrap_or_default().to_owned();
                watched.transcripts.push((field("role"), field("text")));
            }
        }
        watched
    });
    (stop, watched)
}

async fn voice_to_voice(addr: std::net::SocketAddr) {
    let (stop_monitor, watched) = watch_calls(addr).await;
    let mut caller = LiveCaller::dial(addr, "benchturns01", LiveCallerOptions::default()).await;
    caller.wait_playing(true, WAIT).await;
    caller.wait_agent_done(AGENT_DONE_QUIET, WAIT).await;
    let mut measured = Vec::new();
    for question in CALLER_QUESTIONS.iter().cycle().take(TURNS) {
        let speech = speak(question);
        let speech_len = Duration::from_micros(speech.len() as u64 * 125);
        let said = Instant::now();
        caller.say(speech);
        let Some(heard) = first_audio(&mut caller).await else {
            break;
        };
        // The caller's frames go out on a 20 ms tick; its last sound ends
        // `speech_len` after the first frame.
        let stopped = said + speech_len;
        measured.push(heard.saturating_duration_since(stopped).as_secs_f64() * 1000.0);
        // The whole reply: a caller who spoke sooner would interrupt it.
        caller.wait_agent_done(AGENT_DONE_QUIET, WAIT).await;
    }
    caller.hang_up().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_monitor.send(());
    let Watched {
        metrics: turn_metrics,
        transcripts,
    } = watched.await.unwrap_or_default();
    println!(
        "voice to voice (caller's last sound → first agent audio at the caller), {} turns: p50 {:.0} ms, p90 {:.0} ms",
        measured.len(),
        percentile(&measured, 50.0),
        percentile(&measured, 90.0)
    );
    let each: Vec<String> = measured.iter().map(|ms| format!("{ms:.0}")).collect();
    println!("  each turn, ms: {}", each.join(", "));
    println!("  engine stages, ms after the VAD saw the caller stop:");
    println!(
        "    {:>5} {}",
        "turn",
        STAGES
            .map(|s| format!("{:>20}", s.trim_end_matches("_ms")))
            .join("")
    );
    let stage_ms = |event: &Value, stage: &str| event[stage].as_f64().unwrap_or(f64::NAN);
    for event in &turn_metrics {
        let row = STAGES.map(|stage| format!("{:>20.0}", stage_ms(event, stage)));
        println!("    {:>5} {}", event["turn"], row.join(""));
    }
    let p50 = STAGES.map(|stage| {
        let values: Vec<f64> = turn_metrics.iter().map(|e| stage_ms(e, stage)).collect();
        format!("{:>20.0}", percentile(&values, 50.0))
    });
    println!("    {:>5} {}", "p50", p50.join(""));
    println!("  what was said (final transcripts):");
    for (role, text) in transcripts {
        println!("    {role:>9}: {text}");
    }
}

async fn barge_in(addr: std::net::SocketAddr) {
    let question = speak(LONG_QUESTION);
    let interruption = speak(INTERRUPTION);
    let mut measured = Vec::new();
    for trial in 0..BARGE_INS {
        let mut caller = LiveCaller::dial(
            addr,
            &format!("benchbarge{trial:03}"),
            LiveCallerOptions::default(),
        )
        .await;
        caller.wait_playing(true, WAIT).await;
        caller.wait_agent_done(AGENT_DONE_QUIET, WAIT).await;
        caller.say(question.clone());
        if !caller.wait_playing(true, WAIT).await {
            caller.hang_up().await;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        caller.drain(Duration::from_millis(10)).await;
        let started = Instant::now();
        caller.say(interruption.clone());
        loop {
            match caller.next_heard(Duration::from_secs(5)).await {
                Some(Heard::Clear { .. }) => {
                    measured.push(started.elapsed().as_secs_f64() * 1000.0);
                    break;
                }
                Some(_) => {}
                None => break,
            }
        }
        caller.hang_up().await;
    }
    println!(
        "barge-in (caller starts talking → clear at the caller), {} of {BARGE_INS} trials: p50 {:.0} ms, p95 {:.0} ms",
        measured.len(),
        percentile(&measured, 50.0),
        percentile(&measured, 95.0)
    );
}

async fn memory(addr: std::net::SocketAddr) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = rss_mib();
    let mut callers = Vec::new();
    for i in 0..MEMORY_CALLS {
        callers.push(
            LiveCaller::dial(
                addr,
                &format!("benchmem{i:04}"),
                LiveCallerOptions::default(),
            )
            .await,
        );
    }
    for caller in &mut callers {
        caller.wait_playing(true, WAIT).await;
    }
    for caller in &mut callers {
        caller.wait_playing(false, WAIT).await;
    }
    let during = rss_mib();
    for caller in callers {
        caller.hang_up().await;
    }
    println!(
        "memory: {before:.0} MiB with the models and no call, {during:.0} MiB with {MEMORY_CALLS} greeted calls: {:.1} MiB per extra call (this process includes the simulated callers)",
        (during - before) / MEMORY_CALLS as f64
    );
}

fn vad_cost(providers: &voxgate_server::agent::Providers) {
    let mut stream = providers.vad.stream();
    let window = stream.window_samples();
    let audio: Vec<i16> = (0..16_000 * 60)
        .map(|i| ((i as f64 * 0.05).sin() * 3000.0) as i16)
        .collect();
    let started = Instant::now();
    for chunk in audio.chunks_exact(window) {
        stream.push(chunk).expect("vad");
    }
    let per_second = started.elapsed().as_secs_f64() * 1e6 / 60.0;
    println!(
        "VAD (Silero, one thread): {per_second:.0} µs per second of call audio ({:.2}% of one core per call)",
        per_second / 1e4
    );
}

/// The cloud vendors' fakes, scripted with what the benchmark's caller
/// says, and the configuration that points the agent at them.
async fn cloud_fakes() -> (AgentConfig, (FakeDeepgram, FakeOpenAi, FakeElevenLabs)) {
    let deepgram = FakeDeepgram::start(FakeDeepgramOptions::default()).await;
    let openai = FakeOpenAi::start().await;
    let elevenlabs = FakeElevenLabs::start(FakeElevenLabsOptions::default()).await;
    for question in CALLER_QUESTIONS.iter().cycle().take(TURNS) {
        deepgram.say(question);
    }
    for _ in 0..BARGE_INS {
        deepgram.say(LONG_QUESTION);
        deepgram.say(INTERRUPTION);
    }
    for _ in 0..TURNS + 2 * BARGE_INS {
        openai.push_chat(ChatReply::text(&[
            "Sure,",
            " here is my answer.",
            " It goes on for a while, so that there is time to interrupt it if you like.",
        ]));
    }
    let access = |key: &str, url: String| VendorAccess {
        api_key: Some(Secret::new(key)),
        base_url: Some(BaseUrl::parse(&url).expect("a fake's URL")),
    };
    let agent = AgentConfig {
        stt: SttProvider::Deepgram,
        llm: LlmProvider::OpenAi,
        tts: TtsProvider::ElevenLabs,
        tts_voice: Some(elevenlabs::VOICE_ID.to_owned()),
        deepgram: access(&FakeDeepgramOptions::default().api_key, deepgram.base_url()),
        openai: access("sk-bench", format!("{}/v1", openai.base_url())),
        elevenlabs: access(elevenlabs::API_KEY, elevenlabs.base_url()),
        ..AgentConfig::default()
    };
    (agent, (deepgram, openai, elevenlabs))
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let dir = std::env::temp_dir().join(format!("voxgate-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = Config {
            listen: "127.0.0.1:0".parse().expect("addr"),
            database_url: dir.join("bench.db").display().to_string(),
            recordings_dir: dir.join("recordings"),
            ..Config::default()
        };
        let prometheus = PrometheusBuilder::new().build_recorder().handle();
        let server = Server::bind(config, prometheus).await.expect("server");
        let addr = server.local_addr();
        let handle = server.handle();
        let running = tokio::spawn(server.run());
        let models = models_dir(|name| std::env::var(name).ok());
        let on_fakes = std::env::var("VOXGATE_BENCH_PROVIDERS").is_ok_and(|v| v == "fakes");
        let (agent, _fakes) = if on_fakes {
            let (agent, fakes) = cloud_fakes().await;
            println!("providers: fakes of Deepgram, OpenAI and ElevenLabs on loopback");
            (agent, Some(fakes))
        } else {
            println!("providers: local models");
            (AgentConfig::default(), None)
        };
        let providers = voxgate::agent::load_pipeline(&agent, &models, false, &handle.task_scope())
            .await
            .expect("providers");
        vad_cost(&providers);
        handle.set_agent(AgentState::Ready(providers));
        voice_to_voice(addr).await;
        barge_in(addr).await;
        memory(addr).await;
        handle.stop();
        let _ = running.await;
        let _ = std::fs::remove_dir_all(dir);
    });
}
