//! The real binary on cloud providers, each a fake in this process that
//! speaks the vendor's protocol: Deepgram hears the caller, an
//! OpenAI-compatible server answers, ElevenLabs speaks. Voice activity and
//! end of turn stay local (Silero and Smart Turn, from the models cache).
//! Also `voxgate check` against the same fakes.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Serving, temp_dir, voxgate};
use voxgate_core::audio::SampleRate;
use voxgate_testkit::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions};
use voxgate_testkit::fakes::elevenlabs::{self, FakeElevenLabs, FakeElevenLabsOptions};
use voxgate_testkit::fakes::openai::{ChatReply, FakeOpenAi};
use voxgate_testkit::fakes::twilio::FakeTwilio;
use voxgate_testkit::{LiveCaller, LiveCallerOptions, connect, espeak, next_json, send_text};

struct Fakes {
    deepgram: FakeDeepgram,
    openai: FakeOpenAi,
    elevenlabs: FakeElevenLabs,
}

impl Fakes {
    async fn start() -> Fakes {
        Fakes {
            deepgram: FakeDeepgram::start(FakeDeepgramOptions::default()).await,
            openai: FakeOpenAi::start().await,
            elevenlabs: FakeElevenLabs::start(FakeElevenLabsOptions::default()).await,
        }
    }

    /// `voxgate` configured for the fakes.
    fn voxgate(&self) -> Command {
        let mut command = voxgate();
        command
            .env("VOXGATE_STT", "deepgram")
            .env("DEEPGRAM_API_KEY", FakeDeepgramOptions::default().api_key)
            .env("DEEPGRAM_BASE_URL", self.deepgram.base_url())
            .env("VOXGATE_LLM", "openai")
            .env("VOXGATE_LLM_MODEL", "gpt-4o-mini")
            .env("OPENAI_API_KEY", "sk-fake-openai")
            .env("OPENAI_BASE_URL", format!("{}/v1", self.openai.base_url()))
            .env("VOXGATE_TTS", "elevenlabs")
            .env("ELEVEN_API_KEY", elevenlabs::API_KEY)
            .env("ELEVENLABS_BASE_URL", self.elevenlabs.base_url())
            .env("VOXGATE_TTS_VOICE", elevenlabs::VOICE_ID);
        command
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_runs_on_deepgram_openai_and_elevenlabs() {
    let fakes = Fakes::start().await;
    fakes.deepgram.say("What is the capital of France?");
    fakes.openai.push_chat(ChatReply::text(&[
        "Paris",
        " is the capital",
        " of France.",
    ]));
    let dir = temp_dir();
    let server = Serving::start(fakes.voxgate(), &dir).await;
    let addr = server.addr;

    let mut monitor = connect(addr, "/events").await;
    send_text(&mut monitor, r#"{"type":"subscribe","call_id":"*"}"#).await;
    let mut caller = LiveCaller::dial(addr, "cloudcall0001", LiveCallerOptions::default()).await;
    assert!(
        caller.wait_playing(true, Duration::from_secs(30)).await,
        "the greeting plays (ElevenLabs)"
    );
    assert!(caller.wait_playing(false, Duration::from_secs(30)).await);
    caller.say(espeak(
        "What is the capital of France?",
        150,
        SampleRate::HZ_8000,
    ));

    let (mut heard, mut answer) = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while heard.is_none() || answer.is_none() {
        let event = tokio::time::timeout_at(deadline, next_json(&mut monitor))
            .await
            .expect("the agent answered within a minute");
        match (event["type"].as_str(), event["role"].as_str()) {
            (Some("transcript"), Some("user")) if event["final"] == true => {
                heard = event["text"].as_str().map(str::to_owned);
            }
            (Some("transcript"), Some("assistant")) if heard.is_some() => {
                answer = event["text"].as_str().map(str::to_owned);
            }
            _ => {}
        }
    }
    assert_eq!(heard.as_deref(), Some("What is the capital of France?"));
    assert!(
        answer.as_deref().is_some_and(|a| a.contains("Paris")),
        "{answer:?}"
    );
    assert!(
        caller.wait_playing(true, Duration::from_secs(10)).await,
        "the answer is heard"
    );

    // What each vendor was sent.
    let recorded = fakes.deepgram.recorded();
    let socket = recorded.connections.first().expect("a Deepgram socket");
    assert_eq!(
        socket.query.get("encoding").map(String::as_str),
        Some("linear16")
    );
    assert!(
        socket.audio_bytes > 16_000,
        "the caller's audio was streamed"
    );
    assert!(
        socket.control_types().iter().any(|t| t == "Finalize"),
        "{:?}",
        socket.control_types()
    );
    let chat = fakes
        .openai
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/chat/completions"))
        .expect("a chat request");
    assert_eq!(chat.header("authorization"), Some("Bearer sk-fake-openai"));
    let body = chat.json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["stream"], true);
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned();
    assert_eq!(
        last.map(|m| m["content"].clone()),
        Some(serde_json::json!("What is the capital of France?"))
    );
    assert!(
        body["tools"]
            .as_array()
            .is_some_and(|tools| tools.iter().any(|t| t["function"]["name"] == "end_call")),
        "{body}"
    );
    let spoken: Vec<String> = fakes
        .elevenlabs
        .connections()
        .iter()
        .flat_map(|c| c.messages.clone())
        .collect();
    assert!(
        spoken.iter().any(|m| m.contains("Paris")),
        "ElevenLabs spoke the answer: {spoken:?}"
    );

    caller.hang_up().await;
    let (code, log) = server.stop();
    assert_eq!(code, Some(0));
    for secret in ["sk-fake-openai", elevenlabs::API_KEY, "fake-deepgram-key"] {
        assert!(!log.contains(secret), "a key leaked into the log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reaches_every_configured_provider() {
    const ACCOUNT: &str = "AC00000000000000000000000000000002";
    let fakes = Fakes::start().await;
    let twilio = FakeTwilio::start(ACCOUNT, "twilio-token-7c1d").await;
    let dir = temp_dir();
    let output = fakes
        .voxgate()
        .current_dir(&dir)
        .env("TWILIO_ACCOUNT_SID", ACCOUNT)
        .env("TWILIO_AUTH_TOKEN", "twilio-token-7c1d")
        .env("TWILIO_BASE_URL", twilio.base_url())
        .arg("check")
        .output()
        .expect("run voxgate check");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    for line in [
        "ok: deepgram at",
        "ok: openai at",
        "ok: elevenlabs voice",
        "ok: twilio account",
        "ok: local models verified",
    ] {
        assert!(stdout.contains(line), "{line} missing from:\n{stdout}");
    }

    // A wrong key and an unknown voice: one error line each, exit non-zero.
    let output = fakes
        .voxgate()
        .current_dir(&dir)
        .env("DEEPGRAM_API_KEY", "wrong-key")
        .env("TWILIO_ACCOUNT_SID", ACCOUNT)
        .env("TWILIO_AUTH_TOKEN", "wrong-twilio-token")
        .env("TWILIO_BASE_URL", twilio.base_url())
        .env("VOXGATE_TTS_VOICE", "AAAAAAAAAAAAAAAAAAAA")
        .arg("check")
        .output()
        .expect("run voxgate check");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: deepgram") && l.contains("401")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: elevenlabs") && l.contains("AAAAAAAAAAAAAAAAAAAA")),
        "{stderr}"
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with("error: twilio account") && l.contains("401")),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-key"), "the key is never printed");
    assert!(
        !stderr.contains("wrong-twilio-token"),
        "the token is never printed"
    );
}
