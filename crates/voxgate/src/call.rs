//! `voxgate call FILE.wav`: an offline demo of the whole pipeline. A server
//! runs in-process on a loopback port with the local agent; a simulated
//! Twilio caller says the WAV in real time; the transcript and each turn's
//! latency are printed; the agent's side, as the caller heard it, is
//! written to a WAV.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use metrics_exporter_prometheus::PrometheusBuilder;
use serde_json::Value;
use voxgate_core::audio::{Resampler, SampleRate, parse_wav, write_wav_into};
use voxgate_server::Server;
use voxgate_server::config::Config;
use voxgate_testkit::{LiveCaller, LiveCallerOptions, connect, send_text};

/// How long the call goes on after the agent's answer while nothing happens.
const QUIET_END: Duration = Duration::from_secs(3);
/// The longest the agent may take to answer once the caller is done.
const ANSWER_LIMIT: Duration = Duration::from_secs(60);
/// Silence after the greeting before the caller speaks.
const GREETING_GAP: Duration = Duration::from_secs(1);

/// Waits until the agent has stopped playing and stays silent for `quiet`.
async fn until_quiet(caller: &mut LiveCaller, quiet: Duration) {
    loop {
        caller.wait_playing(false, ANSWER_LIMIT).await;
        if !caller.wait_playing(true, quiet).await {
            return;
        }
    }
}

/// Plays `wav` as a caller and writes what the agent said to `out`.
pub async fn call(
    mut config: Config,
    wav: &Path,
    out: Option<PathBuf>,
    persona: &str,
    models_dir: &Path,
) -> anyhow::Result<()> {
    let bytes = std::fs::read(wav).with_context(|| format!("reading {}", wav.display()))?;
    let parsed =
        parse_wav(&bytes).with_context(|| format!("{} is not a PCM16 WAV", wav.display()))?;
    let mut resampler = Resampler::new(parsed.sample_rate, SampleRate::HZ_8000)
        .with_context(|| format!("{} cannot be resampled to 8 kHz", wav.display()))?;
    let mut speech = Vec::new();
    resampler.process(&parsed.to_mono(), &mut speech);
    resampler.flush(&mut speech);
    if speech.is_empty() {
        bail!("{} holds no audio", wav.display());
    }

    config.listen = "127.0.0.1:0".parse().context("loopback address")?;
    let agent_config = config.agent.clone();
    let prometheus = PrometheusBuilder::new().build_recorder().handle();
    let server = Server::bind(config, prometheus)
        .await
        .context("starting the in-process server")?;
    let addr = server.local_addr();
    let handle = server.handle();
    let running = tokio::spawn(server.run());
    let agent =
        crate::agent::load_agent(&agent_config, models_dir, true, &handle.task_scope()).await?;
    handle.set_agent(agent);

    let mut monitor = connect(addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    let options = LiveCallerOptions {
        persona: persona.to_owned(),
        ..LiveCallerOptions::default()
    };
    let mut caller = LiveCaller::dial(addr, "democall0001", options).await;
    let printer = tokio::spawn(print_events(monitor));

    // Let the greeting play out (all of it: on a busy machine its sentences
    // may arrive with gaps), then speak.
    if caller.wait_playing(true, ANSWER_LIMIT).await {
        until_quiet(&mut caller, GREETING_GAP).await;
    }
    let speech_len = Duration::from_millis(speech.len() as u64 / 8);
    caller.say(speech);
    tokio::time::sleep(speech_len).await;
    // The call ends once the agent has answered and all is quiet again.
    if caller.wait_playing(true, ANSWER_LIMIT).await {
        until_quiet(&mut caller, QUIET_END).await;
    }
    let audio = caller.hang_up().await;
    // The monitor prints until the call's end reaches it.
    let _ = tokio::time::timeout(Duration::from_secs(5), printer).await;

    let out = out.unwrap_or_else(|| wav.with_extension("agent.wav"));
    let mut file = Vec::new();
    write_wav_into(SampleRate::HZ_8000, 1, &audio.agent, &mut file);
    std::fs::write(&out, file).with_context(|| format!("writing {}", out.display()))?;
    println!("agent audio: {}", out.display());

    handle.stop();
    running.await.context("server task")??;
    Ok(())
}

/// Prints the call's transcript and per-turn latency as they arrive.
async fn print_events(mut monitor: voxgate_testkit::Client) {
    use futures_util::StreamExt;
    while let Some(Ok(message)) = monitor.next().await {
        let Ok(event) = serde_json::from_str::<Value>(message.to_text().unwrap_or_default()) else {
            continue;
        };
        match event["type"].as_str() {
            Some("transcript") if event["final"] == true => {
                let who = if event["role"] == "user" {
                    "caller"
                } else {
                    "agent "
                };
                println!("{who}: {}", event["text"].as_str().unwrap_or_default());
            }
            Some("agent.interrupted") => {
                println!(
                    "        (interrupted; heard: {:?})",
                    event["heard"].as_str().unwrap_or_default()
                );
            }
            Some("turn.metrics") => println!("        {}", latency_line(&event)),
            Some("call.status_changed") => {
                println!(
                    "call ended: {}",
                    event["reason"].as_str().unwrap_or_default()
                );
                return;
            }
            _ => {}
        }
    }
}

fn latency_line(event: &Value) -> String {
    let stages = [
        ("end of turn", "end_of_turn_ms"),
        ("stt", "stt_final_ms"),
        ("llm first token", "llm_first_token_ms"),
        ("tts first audio", "tts_first_audio_ms"),
        ("first audio sent", "first_audio_sent_ms"),
        ("heard", "first_mark_ms"),
    ];
    let parts: Vec<String> = stages
        .iter()
        .filter_map(|(name, key)| event[*key].as_u64().map(|ms| format!("{name} {ms} ms")))
        .collect();
    format!("turn {}: {}", event["turn"], parts.join(", "))
}
