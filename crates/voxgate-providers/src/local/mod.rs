//! The embedded default: local models from registry packages
//! (see `voxgate-models`), run in-process.

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
