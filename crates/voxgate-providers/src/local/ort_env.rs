//! The ONNX Runtime environment that the ONNX models (Silero VAD, Smart Turn,
//! Piper) run in.
//!
//! ONNX Runtime is not linked at build time: `ort`'s `load-dynamic` feature
//! loads `libonnxruntime.so` from the path the `onnxruntime` wheel was
//! extracted to (`voxgate_models::ModelPaths::onnxruntime_library`), so the
//! build downloads nothing.
//!
//! # One environment per process
//!
//! `ort` keeps the loaded library and the environment in process-wide state
//! and refuses to build a second environment, even after the first one was
//! dropped. That is the only global here, and it is `ort`'s: [`OnnxRuntime`]
//! is a cheap handle to it, made once at start-up with
//! [`OnnxRuntime::init`] and cloned into every model that needs it. A second
//! `init` in the same process fails with
//! [`OnnxRuntimeError::AlreadyInitialized`].

use std::fmt;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use ort::environment::Environment;
use ort::session::Session;

use crate::ProviderError;

/// Why the ONNX Runtime environment could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OnnxRuntimeError {
    /// The shared library is missing or is not a usable ONNX Runtime (wrong
    /// file, or a version older than the 1.31 API `ort` is built for).
    #[error("cannot load the ONNX Runtime library {}: {reason}", path.display())]
    Library {
        /// The path given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// This process already created its environment (a bug in the caller:
    /// create one [`OnnxRuntime`] at start-up and clone it).
    #[error(
        "the ONNX Runtime environment already exists in this process; clone the first OnnxRuntime"
    )]
    AlreadyInitialized,
    /// ONNX Runtime loaded but refused to create the environment.
    #[error("cannot create the ONNX Runtime environment: {0}")]
    Environment(String),
}

impl From<OnnxRuntimeError> for ProviderError {
    fn from(error: OnnxRuntimeError) -> Self {
        ProviderError::Load {
            what: "ONNX Runtime".to_owned(),
            reason: error.to_string(),
        }
    }
}

/// A handle to this process's ONNX Runtime environment; clones share it.
#[derive(Clone)]
pub struct OnnxRuntime {
    env: Environment,
    library: PathBuf,
}

impl fmt::Debug for OnnxRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnnxRuntime")
            .field("library", &self.library)
            .finish_non_exhaustive()
    }
}

impl OnnxRuntime {
    /// Loads the ONNX Runtime shared library at `library` and creates the
    /// process's environment. Call once per process (see the module docs).
    ///
    /// # Errors
    /// [`OnnxRuntimeError::Library`] if the file is missing or unusable,
    /// [`OnnxRuntimeError::AlreadyInitialized`] on a second call,
    /// [`OnnxRuntimeError::Environment`] if ONNX Runtime fails otherwise.
    pub fn init(library: &Path) -> Result<OnnxRuntime, OnnxRuntimeError> {
        // Absolute, because `ort` resolves a relative path against the
        // executable's directory, not the working directory; and checked
        // here, because once a library is loaded `ort` ignores the path of
        // any later call instead of failing.
        let library = std::fs::canonicalize(library).map_err(|e| OnnxRuntimeError::Library {
            path: library.to_path_buf(),
            reason: e.to_string(),
        })?;
        let builder = ort::init_from(&library).map_err(|e| OnnxRuntimeError::Library {
            path: library.clone(),
            reason: e.to_string(),
        })?;
        let env = builder
            .with_name("voxgate")
            .with_telemetry(false)
            .build()
            .map_err(|e| {
                // `ort` has no error code for this case; its message is
                // pinned by the `onnx_runtime` test.
                if e.message().contains("only one environment") {
                    OnnxRuntimeError::AlreadyInitialized
                } else {
                    OnnxRuntimeError::Environment(e.to_string())
                }
            })?;
        Ok(OnnxRuntime { env, library })
    }

    /// The shared library this environment was loaded from.
    pub fn library(&self) -> &Path {
        &self.library
    }

    /// A session for the model at `model`, with `threads` threads.
    pub(crate) fn session(
        &self,
        model: &Path,
        threads: SessionThreads,
    ) -> Result<Session, ProviderError> {
        let load_error = |e: ort::Error| ProviderError::Load {
            what: model.display().to_string(),
            reason: e.to_string(),
        };
        Session::builder(&self.env)
            .and_then(|b| Ok(b.with_intra_threads(threads.intra.get())?))
            // Operators run one after another (ONNX Runtime's default
            // sequential mode), so the inter-op pool would sit idle.
            .and_then(|b| Ok(b.with_inter_threads(1)?))
            .and_then(|mut b| b.commit_from_file(model))
            .map_err(load_error)
    }
}

/// How many threads one ONNX session uses inside an operator (ONNX Runtime's
/// intra-op pool). Operators run sequentially, so there is no inter-op pool.
///
/// Each session has its own pool, and ONNX Runtime's pool threads spin for a
/// moment after each run, so on a small machine keep the sum over all loaded
/// models near the number of cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionThreads {
    intra: NonZeroUsize,
}

impl SessionThreads {
    /// One thread: the calling thread does all the work. Best for small
    /// models such as Silero VAD (measured faster than two threads).
    pub const ONE: SessionThreads = SessionThreads {
        intra: NonZeroUsize::MIN,
    };

    /// `intra` threads per operator, the calling thread included.
    pub const fn new(intra: NonZeroUsize) -> SessionThreads {
        SessionThreads { intra }
    }

    /// Threads per operator.
    pub const fn intra(self) -> NonZeroUsize {
        self.intra
    }
}

impl Default for SessionThreads {
    fn default() -> Self {
        SessionThreads::ONE
    }
}
