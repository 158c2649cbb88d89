//! Call recordings on disk: one stereo WAV per call in the recordings
//! directory, written off the async path and served by the calls API.
//!
//! The call task builds a [`CallRecorder`] (sans-IO, in `voxgate-core`)
//! while the call runs; when the call ends it hands the recorder to
//! [`write_recording`] and stores the returned path in the call record.
//! [`get_recording`] serves a recording only if its stored path resolves to
//! a file inside the configured directory.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use tokio_util::io::ReaderStream;
use voxgate_core::audio::CallRecorder;
use voxgate_core::ids::CallSid;

use crate::app::AppState;
use crate::http::{ApiError, call_record};

/// Why a recording could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecordingError {
    /// The file system refused (missing permission, full disk, …): an
    /// operator problem with the recordings directory.
    #[error("cannot write recording {path}: {source}")]
    Io {
        /// The file or directory being written.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// The blocking task that writes the file panicked or was cancelled
    /// because the runtime is shutting down.
    #[error("the recording writer task did not finish: {0}")]
    Task(String),
}

/// The file name of `call_sid`'s recording: `<call_sid>.wav`, with every
/// character other than ASCII letters, digits, `-` and `_` written as `%XX`.
///
/// Call ids are printable ASCII chosen by the carrier (or a browser), so
/// they may hold `/`, `.` or `\`; escaping keeps every id a single plain
/// file name inside the directory, and distinct ids distinct names.
pub fn file_name(call_sid: &CallSid) -> String {
    let mut name = escape(call_sid.as_str());
    name.push_str(".wav");
    name
}

/// The API path of `call_sid`'s recording.
pub fn url(call_sid: &CallSid) -> String {
    // The escaped form is also a valid URL path segment.
    format!("/api/calls/{}/recording", escape(call_sid.as_str()))
}

fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Finishes `recorder` and writes it to `<dir>/<call_sid>.wav` (see
/// [`file_name`]), creating `dir` if needed, and returns the file's
/// absolute path, for [`voxgate_store::CallRecord::recording_path`].
///
/// Encoding and file IO run on tokio's blocking pool, never on the call's
/// task. The file appears whole or not at all: it is written under a
/// temporary name and renamed, so the API never serves half a recording.
/// An earlier recording of the same call is replaced.
pub async fn write_recording(
    dir: &Path,
    call_sid: &CallSid,
    recorder: CallRecorder,
) -> Result<PathBuf, RecordingError> {
    let dir = dir.to_owned();
    let name = file_name(call_sid);
    tokio::task::spawn_blocking(move || write_file(&dir, &name, &recorder.finish()))
        .await
        .map_err(|err| RecordingError::Task(err.to_string()))?
}

fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, RecordingError> {
    let io_error = |path: &Path| {
        let path = path.to_owned();
        move |source| RecordingError::Io { path, source }
    };
    create_private_dir(dir).map_err(io_error(dir))?;
    // Absolute, so the stored path still points at the file if the server
    // later runs from another working directory.
    let dir = std::fs::canonicalize(dir).map_err(io_error(dir))?;
    let path = dir.join(name);
    // Escaped ids hold no `.`, so no recording is ever called this.
    let partial = dir.join(format!("{name}.partial"));
    let written = create_private_file(&partial).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    if let Err(source) = written.and_then(|()| std::fs::rename(&partial, &path)) {
        // Best effort: a leftover partial file is harmless and replaced by
        // the next attempt.
        let _ = std::fs::remove_file(&partial);
        return Err(RecordingError::Io { path, source });
    }
    Ok(path)
}

// Recordings are callers' voices, so on Unix they are the owner's alone
// whatever the umask: new directories 0700, files 0600. A directory that
// already exists keeps the mode the operator gave it.

/// `create_dir_all`, with mode 0700 for every directory it creates.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// `File::create`, with mode 0600.
fn create_private_file(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The mode above applies only to a file this call creates; a partial
    // file left by an earlier attempt keeps its own, and the rename would
    // carry it over to the recording.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// The file at `stored` if it is a regular file inside `dir`, after
/// resolving `..` and symbolic links on both; `None` otherwise.
///
/// The stored path comes from the database, which other nodes or an
/// operator may have written, so it is never trusted to stay inside the
/// recordings directory.
pub async fn resolve(dir: &Path, stored: &str) -> Option<PathBuf> {
    let dir = tokio::fs::canonicalize(dir).await.ok()?;
    let file = tokio::fs::canonicalize(stored).await.ok()?;
    if !file.starts_with(&dir) {
        tracing::warn!(
            path = stored,
            dir = %dir.display(),
            "recording path outside the recordings directory; not served"
        );
        return None;
    }
    let is_file = tokio::fs::metadata(&file).await.ok()?.is_file();
    is_file.then_some(file)
}

/// `GET /api/calls/{call_sid}/recording`: the call's stereo WAV (caller
/// left, agent right), streamed from disk.
pub async fn get_recording(
    State(state): State<AppState>,
    UrlPath(call_sid): UrlPath<String>,
) -> Result<Response, ApiError> {
    let record = call_record(&state, &call_sid).await?;
    let no_recording = || ApiError::NotFound(format!("call {call_sid} has no recording"));
    let stored = record.recording_path.ok_or_else(no_recording)?;
    let path = resolve(&state.config.recordings_dir, &stored)
        .await
        .ok_or_else(no_recording)?;
    // Gone between the check and here: as good as never there.
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|_| no_recording())?;
    let len = file.metadata().await.map_err(|_| no_recording())?.len();
    let headers = [
        (header::CONTENT_TYPE, "audio/wav".to_owned()),
        (header::CONTENT_LENGTH, len.to_string()),
        // The escaped name needs no quoting rules beyond the quotes.
        (
            header::CONTENT_DISPOSITION,
            format!("inline; filename=\"{}\"", file_name(&record.call_sid)),
        ),
    ];
    Ok((headers, Body::from_stream(ReaderStream::new(file))).into_response())
}

/// For `voxgate check`: whether recordings can be written to `dir`. It is
/// fine for `dir` not to exist yet (it is created on the first recording)
/// as long as its nearest existing parent is a writable directory. Returns
/// what was found, for the `ok:` line.
pub fn check_dir(dir: &Path) -> Result<String, String> {
    let shown = dir.display();
    let (existing, note) = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => (dir.to_owned(), "is writable"),
        Ok(_) => return Err(format!("{shown} exists and is not a directory")),
        Err(_) => {
            let parent = dir
                .ancestors()
                .skip(1)
                .map(|p| {
                    if p.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        p
                    }
                })
                .find(|p| p.exists())
                .ok_or_else(|| format!("{shown}: no parent directory exists"))?;
            if !parent.is_dir() {
                return Err(format!("{shown}: {} is not a directory", parent.display()));
            }
            (parent.to_owned(), "will be created on the first recording")
        }
    };
    // Permissions bits do not tell (ACLs, read-only mounts, root): try it.
    let probe = existing.join(format!(".voxgate-check-{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| {
            format!(
                "{shown}: cannot create files in {}: {e}",
                existing.display()
            )
        })?;
    // Best effort: the probe is empty and uniquely named.
    let _ = std::fs::remove_file(&probe);
    Ok(format!("{shown} {note}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(raw: &str) -> CallSid {
        CallSid::new(raw).expect("valid call sid")
    }

    #[test]
    fn file_names_stay_in_the_directory() {
        assert_eq!(file_name(&sid("CA0123abc")), "CA0123abc.wav");
        assert_eq!(file_name(&sid("6f1c-3a4b_x")), "6f1c-3a4b_x.wav");
        assert_eq!(
            file_name(&sid("../etc/passwd")),
            "%2E%2E%2Fetc%2Fpasswd.wav"
        );
        assert_eq!(file_name(&sid("a\\b%c.")), "a%5Cb%25c%2E.wav");
        assert_eq!(url(&sid("a/b")), "/api/calls/a%2Fb/recording");
    }

    #[cfg(unix)]
    #[test]
    fn recordings_are_readable_by_the_owner_only() {
        use std::os::unix::fs::PermissionsExt;

        let mode = |path: &Path| {
            let meta = std::fs::metadata(path).expect("exists");
            format!("{:o}", meta.permissions().mode() & 0o777)
        };
        let base = std::env::temp_dir().join(format!("voxgate-rec-{}", uuid::Uuid::new_v4()));
        let dir = base.join("calls/recordings");
        let path = write_file(&dir, "CA1.wav", b"RIFF").expect("written");
        assert_eq!(mode(&dir), "700");
        assert_eq!(mode(&base.join("calls")), "700");
        assert_eq!(mode(&path), "600");

        // A partial file left by an earlier attempt does not pass its mode on.
        let partial = dir.join("CA2.wav.partial");
        std::fs::write(&partial, b"half").expect("leftover");
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let path = write_file(&dir, "CA2.wav", b"RIFF").expect("written");
        assert_eq!(mode(&path), "600");
        assert_eq!(std::fs::read(&path).expect("read"), b"RIFF");
        std::fs::remove_dir_all(&base).ok();
    }

    #[test]
    fn check_accepts_a_missing_dir_under_a_writable_parent() {
        let base = std::env::temp_dir().join(format!("voxgate-rec-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&base).expect("temp dir");
        let missing = base.join("a/b");
        let found = check_dir(&missing).expect("creatable");
        assert!(found.contains("will be created"), "{found}");
        assert!(!missing.exists(), "check must not create the directory");
        assert!(check_dir(&base).expect("writable").contains("is writable"));

        let file = base.join("file");
        std::fs::write(&file, b"x").expect("write");
        let err = check_dir(&file).expect_err("a file");
        assert!(err.contains("not a directory"), "{err}");
        let err = check_dir(&file.join("sub")).expect_err("under a file");
        assert!(err.contains("not a directory"), "{err}");
        std::fs::remove_dir_all(&base).ok();
    }
}
