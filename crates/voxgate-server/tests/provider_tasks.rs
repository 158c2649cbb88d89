//! Cloud providers' tasks in calls through the server: they run on the
//! server's tracker, a call's under the call's token and ElevenLabs' spare
//! socket under the server's, so the end of a call stops its tasks and
//! stopping the server waits for all of them. Deepgram, ElevenLabs and the
//! OpenAI-compatible model are the in-repo fakes; the caller stays silent,
//! so the greeting is all that is said.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::deepgram::{self, DeepgramConfig, DeepgramStt};
use voxgate_providers::cloud::elevenlabs::{self, ElevenLabsConfig, ElevenLabsTts};
use voxgate_providers::cloud::openai::OpenAiConfig;
use voxgate_providers::cloud::openai::chat::{ChatOptions, OpenAiChat};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, Secret, VadModel, VadStream};
use voxgate_server::agent::{AgentState, Providers};
use voxgate_testkit::LiveCaller;
use voxgate_testkit::LiveCallerOptions;
use voxgate_testkit::fakes::deepgram::{FakeDeepgram, FakeDeepgramOptions};
use voxgate_testkit::fakes::elevenlabs::{self as fake_elevenlabs, FakeElevenLabs};
use voxgate_testkit::fakes::openai::FakeOpenAi;

const WAIT: Duration = Duration::from_secs(10);
/// How long the Deepgram task waits for its `CloseStream` to be answered;
/// the fake never answers, so the task outlives the call by this much.
const DEEPGRAM_CLOSE: Duration = Duration::from_secs(2);

/// Hears nothing: the call stays in its greeting.
struct Deaf;

impl VadModel for Deaf {
    fn stream(&self) -> Box<dyn VadStream> {
        Box::new(Deaf)
    }
}

impl VadStream for Deaf {
    fn window_samples(&self) -> usize {
        512
    }
    fn push(&mut self, _window: &[i16]) -> Result<f32, ProviderError> {
        Ok(0.0)
    }
    fn reset(&mut self) {}
}

struct Cloud {
    server: TestServer,
    deepgram: FakeDeepgram,
    elevenlabs: FakeElevenLabs,
    _openai: FakeOpenAi,
    stt: DeepgramStt,
}

/// A server whose calls use the cloud fakes, with ElevenLabs' spare socket
/// open and Deepgram slow to close.
async fn cloud_server() -> Cloud {
    let server = TestServer::start().await;
    let deepgram = FakeDeepgram::start(FakeDeepgramOptions::default()).await;
    deepgram.faults(|faults| faults.ignore_close_stream = true);
    let elevenlabs = FakeElevenLabs::start(Default::default()).await;
    let openai = FakeOpenAi::start().await;

    let stt = DeepgramStt::new(
        DeepgramConfig {
            close_timeout: DEEPGRAM_CLOSE,
            ..DeepgramConfig::new(
                BaseUrl::parse(&deepgram.base_url()).expect("the fake's URL"),
                Secret::new(FakeDeepgramOptions::default().api_key),
            )
        },
        Supervisor::new(deepgram::VENDOR, VendorPolicy::default()),
    );
    let llm = OpenAiChat::new(
        OpenAiConfig {
            base_url: BaseUrl::parse(&format!("{}/v1", openai.base_url())).expect("URL"),
            api_key: Some(Secret::new("sk-test")),
        },
        ChatOptions::default(),
        Supervisor::new("openai", VendorPolicy::default()),
    )
    .expect("a chat client");
    let voice = ElevenLabsConfig::new(
        BaseUrl::parse(&elevenlabs.base_url()).expect("the fake's URL"),
        Secret::new(fake_elevenlabs::API_KEY),
        fake_elevenlabs::VOICE_ID,
    )
    .expect("a valid voice");
    assert!(voice.prewarm, "a spare socket is kept by default");
    let scope = server.handle.task_scope();
    let tts = ElevenLabsTts::new(
        voice,
        Supervisor::new(elevenlabs::VENDOR, VendorPolicy::default()),
        &scope,
    );
    let providers = Providers::new(
        Arc::new(Deaf),
        None,
        Arc::new(stt.clone()),
        Arc::new(llm),
        Arc::new(tts),
        &scope,
    )
    .await
    .expect("providers");
    server.handle.set_agent(AgentState::Ready(providers));
    Cloud {
        server,
        deepgram,
        elevenlabs,
        _openai: openai,
        stt,
    }
}

/// A caller who has heard the greeting start, with Deepgram listening.
async fn greeted(cloud: &Cloud, tag: &str) -> LiveCaller {
    let mut caller = LiveCaller::dial(cloud.server.addr, tag, LiveCallerOptions::default()).await;
    assert!(caller.wait_playing(true, WAIT).await, "the greeting plays");
    cloud
        .deepgram
        .wait_until("the call's Deepgram socket", |r| r.connections.len() == 1)
        .await;
    assert_eq!(cloud.stt.stats().active_streams, 1);
    caller
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_provider_tasks_are_tracked_and_end_with_it() {
    let cloud = cloud_server().await;
    let caller = greeted(&cloud, "providertasks01").await;
    caller.hang_up().await;

    // Only ElevenLabs' spare keeper, which serves every call, is left; the
    // Deepgram task was counted until its close gave up.
    cloud
        .server
        .eventually("only the spare's task is left", |h| {
            h.active_calls() == 0 && h.running_tasks() == 1
        })
        .await;
    assert_eq!(cloud.stt.stats().active_streams, 0);
    let recorded = cloud.deepgram.recorded();
    assert_eq!(
        recorded.connections[0]
            .control_types()
            .last()
            .map(String::as_str),
        Some("CloseStream"),
        "{recorded:#?}"
    );
    cloud.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_server_waits_for_provider_tasks_and_ends_the_spare() {
    let cloud = cloud_server().await;
    let _caller = greeted(&cloud, "providertasks02").await;

    cloud.server.handle.stop();
    tokio::time::timeout(WAIT + DEEPGRAM_CLOSE, cloud.server.run)
        .await
        .expect("the server stops in time")
        .expect("the server task")
        .expect("the server exits cleanly");
    // The drain waited for the call's Deepgram task, slow close and all.
    assert_eq!(cloud.stt.stats().active_streams, 0);
    assert_eq!(cloud.server.handle.running_tasks(), 0);
    // And the spare keeper ended with the server, though the providers
    // (held by the handle) live on.
    cloud
        .elevenlabs
        .wait_for("every ElevenLabs socket to go", |c| {
            !c.is_empty() && c.iter().all(|c| c.ending.is_some())
        })
        .await;
    std::fs::remove_dir_all(&cloud.server.db_dir).ok();
}
