//! The embedded default: local models from registry packages
//! (see `voxgate-models`), run in-process.

#[cfg(any(feature = "llama", feature = "whisper", feature = "onnx"))]
use std::panic::{AssertUnwindSafe, catch_unwind};

#[cfg(any(feature = "llama", feature = "whisper", feature = "onnx"))]
use crate::ProviderError;

#[cfg(feature = "llama")]
mod llama;
#[cfg(feature = "llama")]
pub use llama::{LlamaConfig, LlamaLlm, LlamaRuntime};

#[cfg(feature = "whisper")]
mod whisper;
#[cfg(feature = "whisper")]
pub use whisper::{EncoderWindow, WhisperConfig, WhisperStt};

#[cfg(feature = "onnx")]
mod ort_env;
#[cfg(feature = "onnx")]
mod piper;
#[cfg(feature = "onnx")]
mod silero;
#[cfg(feature = "onnx")]
mod smart_turn;
#[cfg(feature = "onnx")]
pub use ort_env::{OnnxRuntime, OnnxRuntimeError, SessionThreads};
#[cfg(feature = "onnx")]
pub use piper::{PiperOptions, PiperStats, PiperTts};
#[cfg(feature = "onnx")]
pub use silero::{SileroStream, SileroVad};
#[cfg(feature = "onnx")]
pub use smart_turn::SmartTurn;

/// Runs one request of a local model's worker, turning a panic into an
/// error for the request that hit it: the worker (a long-lived thread, or
/// the blocking pool) goes on serving the next request instead of dying,
/// and the call gets the provider-failure path (an apology) instead of a
/// channel that closes without an answer.
///
/// The model's own state is not touched by the unwind: callers that keep
/// per-worker state reset it when this returns an error.
#[cfg(any(feature = "llama", feature = "whisper", feature = "onnx"))]
pub(crate) fn survive_panic<T>(
    provider: &'static str,
    request: impl FnOnce() -> Result<T, ProviderError>,
) -> Result<T, ProviderError> {
    catch_unwind(AssertUnwindSafe(request)).unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(provider, panic = %what.chars().take(200).collect::<String>(), "local model panicked; its worker goes on");
        Err(ProviderError::Inference {
            provider,
            reason: "the local model failed unexpectedly".to_owned(),
        })
    })
}

#[cfg(all(test, any(feature = "llama", feature = "whisper", feature = "onnx")))]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_request_becomes_an_error_and_the_next_one_runs() {
        let hit: Result<(), ProviderError> = survive_panic("test", || panic!("boom"));
        assert!(matches!(
            hit,
            Err(ProviderError::Inference {
                provider: "test",
                ..
            })
        ));
        assert_eq!(survive_panic("test", || Ok(7)).ok(), Some(7));
    }
}
