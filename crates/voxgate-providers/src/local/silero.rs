//! Silero VAD (v5/v6 ONNX) on ONNX Runtime.
//!
//! The model is recurrent: each 32 ms window at 16 kHz is fed together with
//! the last 64 samples of the previous window (its "context", as in Silero's
//! own wrapper) and the previous hidden state `[2, 1, 128]`, and returns the
//! speech probability and the next state. The weights are shared by every
//! call; each [`SileroStream`] holds only its own state and context.
//!
//! Cost: 0.1-0.13 ms of one core per 32 ms window (release build, one
//! thread, 2-vCPU x86-64 box), i.e. ~0.4% of a core per call in real time.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::Session;
use ort::value::TensorRef;

use super::ort_env::{OnnxRuntime, SessionThreads};
use crate::{ProviderError, VadModel, VadStream};

const PROVIDER: &str = "silero-vad";
/// The only rate the streams accept.
const SAMPLE_RATE: i64 = 16_000;
/// New samples per window at 16 kHz.
const WINDOW: usize = 512;
/// Samples of the previous window repeated in front of each window.
const CONTEXT: usize = 64;
/// Elements of the recurrent state `[2, batch = 1, 128]`.
const STATE: usize = 2 * 128;

/// Silero VAD: one ONNX session shared by all calls.
///
/// `ort`'s `Session::run` takes `&mut self` (ONNX Runtime does not promise
/// that concurrent runs of one session are safe), so the session sits behind
/// a mutex held only for the ~0.1 ms of a run. The session uses one thread:
/// measured faster than two for a model this small.
#[derive(Clone)]
pub struct SileroVad {
    session: Arc<Mutex<Session>>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl SileroVad {
    /// Samples per window at 16 kHz.
    pub const WINDOW_SAMPLES: usize = WINDOW;

    /// Loads `silero_vad.onnx` (`voxgate_models::ModelPaths::silero_vad`),
    /// in about 0.1 s.
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the file cannot be loaded or does not have
    /// Silero's inputs (`input`, `state`, `sr`).
    pub fn load(ort: &OnnxRuntime, model: &Path) -> Result<SileroVad, ProviderError> {
        let session = ort.session(model, SessionThreads::ONE)?;
        for name in ["input", "state", "sr"] {
            if !session.inputs().iter().any(|i| i.name() == name) {
                return Err(ProviderError::Load {
                    what: model.display().to_string(),
                    reason: format!("not a Silero VAD model: no input named `{name}`"),
                });
            }
        }
        Ok(SileroVad {
            session: Arc::new(Mutex::new(session)),
        })
    }

    /// A fresh stream for one call (the concrete type of
    /// [`VadModel::stream`]).
    pub fn new_stream(&self) -> SileroStream {
        SileroStream {
            session: Arc::clone(&self.session),
            input: vec![0.0; CONTEXT + WINDOW],
            state: vec![0.0; STATE],
        }
    }
}

impl VadModel for SileroVad {
    fn stream(&self) -> Box<dyn VadStream> {
        Box::new(self.new_stream())
    }
}

/// One call's Silero state: the recurrent state and the 64-sample context.
pub struct SileroStream {
    session: Arc<Mutex<Session>>,
    /// The model's input: context (`..CONTEXT`) then the window.
    input: Vec<f32>,
    /// `[2, 1, 128]`, fed back after every window.
    state: Vec<f32>,
}

impl std::fmt::Debug for SileroStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroStream").finish_non_exhaustive()
    }
}

impl SileroStream {
    fn run(&mut self) -> Result<f32, ort::Error> {
        let sr = [SAMPLE_RATE];
        let inputs = ort::inputs![
            "input" => TensorRef::from_array_view(([1, CONTEXT + WINDOW], &self.input[..]))?,
            "state" => TensorRef::from_array_view(([2, 1, 128], &self.state[..]))?,
            "sr" => TensorRef::from_array_view(((), &sr[..]))?,
        ];
        // A panic inside `run` leaves nothing half-updated on our side, so a
        // poisoned lock is still usable.
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs)?;
        let (_, probability) = outputs
            .get("output")
            .ok_or_else(|| ort::Error::new("no output named `output`"))?
            .try_extract_tensor::<f32>()?;
        let (_, state) = outputs
            .get("stateN")
            .ok_or_else(|| ort::Error::new("no output named `stateN`"))?
            .try_extract_tensor::<f32>()?;
        if state.len() != STATE {
            return Err(ort::Error::new(format!(
                "`stateN` has {} elements, expected {STATE}",
                state.len()
            )));
        }
        self.state.copy_from_slice(state);
        probability
            .first()
            .copied()
            .ok_or_else(|| ort::Error::new("`output` is empty"))
    }
}

impl VadStream for SileroStream {
    fn window_samples(&self) -> usize {
        WINDOW
    }

    fn push(&mut self, window: &[i16]) -> Result<f32, ProviderError> {
        if window.len() != WINDOW {
            return Err(ProviderError::Input(format!(
                "Silero VAD takes windows of {WINDOW} samples, got {}",
                window.len()
            )));
        }
        for (x, &s) in self.input[CONTEXT..].iter_mut().zip(window) {
            *x = f32::from(s) / 32768.0;
        }
        let probability = self.run().map_err(|e| ProviderError::Inference {
            provider: PROVIDER,
            reason: e.to_string(),
        })?;
        // The next window's context is the tail of this one.
        self.input.copy_within(WINDOW.., 0);
        Ok(probability)
    }

    fn reset(&mut self) {
        self.input.fill(0.0);
        self.state.fill(0.0);
    }
}
