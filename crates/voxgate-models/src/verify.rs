//! Checking the models directory against the manifest.
//!
//! Hashing every model on each start would cost seconds (the files add up to
//! ~280 MB), so a file's hash is remembered in a stamp file next to it,
//! `.<file>.verified`, keyed by the file's size and modification time. An
//! unchanged file is trusted from its stamp; any change of size or mtime
//! forces a re-hash. Like make and git, this trusts that a change to a file's
//! content also changes its mtime (true at the nanosecond resolution of the
//! usual Linux file systems unless someone resets the mtime on purpose).

use std::fs::{self, File, Metadata};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use crate::error::ModelsError;
use crate::manifest::{Manifest, Member, Model, Sha256Digest};

/// How much verification work was done, so callers (and tests) can see that
/// the stamp cache is doing its job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Files whose content was read and hashed.
    pub files_hashed: usize,
    /// Files trusted from an up-to-date stamp, without reading them.
    pub files_trusted: usize,
}

impl VerifyReport {
    fn add(&mut self, other: VerifyReport) {
        self.files_hashed += other.files_hashed;
        self.files_trusted += other.files_trusted;
    }
}

/// Checks that every file the manifest lists is in `dir` with the right size
/// and SHA-256, and returns where they are.
///
/// Fails on the first problem; the error names the model and file and says
/// to run `voxgate models fetch`.
pub fn verify(manifest: &Manifest, dir: &Path) -> Result<ModelPaths, ModelsError> {
    verify_with_report(manifest, dir).map(|(paths, _)| paths)
}

/// [`verify`], also saying how many files were hashed and how many were
/// trusted from their stamps.
pub fn verify_with_report(
    manifest: &Manifest,
    dir: &Path,
) -> Result<(ModelPaths, VerifyReport), ModelsError> {
    let mut report = VerifyReport::default();
    let mut models = Vec::with_capacity(manifest.models().len());
    for model in manifest.models() {
        let (verified, model_report) = check_model(model, dir)?;
        report.add(model_report);
        models.push(verified);
    }
    let paths = ModelPaths {
        dir: dir.to_owned(),
        models,
    };
    Ok((paths, report))
}

/// Verifies one model's files in `dir` (the models directory, not the
/// model's own), for callers that report model by model.
pub fn verify_model(model: &Model, dir: &Path) -> Result<VerifyReport, ModelsError> {
    check_model(model, dir).map(|(_, report)| report)
}

fn check_model(model: &Model, dir: &Path) -> Result<(VerifiedModel, VerifyReport), ModelsError> {
    let model_dir = dir.join(model.name());
    let mut report = VerifyReport::default();
    let mut files = Vec::with_capacity(model.members().len());
    for member in model.members() {
        let path = check_member(model, member, &model_dir, &mut report)?;
        files.push((member.file().to_owned(), path));
    }
    let verified = VerifiedModel {
        name: model.name().to_owned(),
        dir: model_dir,
        files,
    };
    Ok((verified, report))
}

fn check_member(
    model: &Model,
    member: &Member,
    model_dir: &Path,
    report: &mut VerifyReport,
) -> Result<PathBuf, ModelsError> {
    let path = model_dir.join(member.file());
    let corrupt = |expected: String, actual: String| ModelsError::Corrupt {
        model: model.name().to_owned(),
        file: member.file().to_owned(),
        expected,
        actual,
    };
    let meta = match fs::metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelsError::Missing {
                model: model.name().to_owned(),
                file: member.file().to_owned(),
                path,
            });
        }
        Err(e) => return Err(ModelsError::io(path)(e)),
    };
    if !meta.is_file() {
        return Err(corrupt("a regular file".into(), "something else".into()));
    }
    // A size mismatch is conclusive and free: no need to hash or stamp.
    if meta.len() != member.size() {
        return Err(corrupt(
            format!("{} bytes", member.size()),
            format!("{} bytes", meta.len()),
        ));
    }
    let stamp = stamp_path(model_dir, member.file());
    let key = StampKey::of(&meta);
    let actual = match key.and_then(|key| read_stamp(&stamp, key)) {
        Some(digest) => {
            report.files_trusted += 1;
            digest
        }
        None => {
            let digest = hash_file(&path).map_err(ModelsError::io(&path))?;
            report.files_hashed += 1;
            // The key was taken before hashing: if the file changed meanwhile,
            // its mtime moved on and the next verify hashes it again.
            if let Some(key) = key {
                write_stamp(&stamp, key, digest);
            }
            digest
        }
    };
    if actual != member.sha256() {
        return Err(corrupt(
            format!("sha256 {}", member.sha256()),
            format!("sha256 {actual}"),
        ));
    }
    Ok(path)
}

/// Hashes a file, streaming.
pub(crate) fn hash_file(path: &Path) -> io::Result<Sha256Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Sha256Digest::from_hasher(hasher))
}

/// What a stamp is valid for: the file's size and mtime when it was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StampKey {
    size: u64,
    mtime_ns: u128,
}

impl StampKey {
    /// `None` where the platform reports no usable mtime: such files are
    /// always hashed.
    pub(crate) fn of(meta: &Metadata) -> Option<StampKey> {
        let mtime = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
        Some(StampKey {
            size: meta.len(),
            mtime_ns: mtime.as_nanos(),
        })
    }
}

/// `.<file>.verified` beside the file: hidden, and never a manifest file name
/// (those may not start with a dot).
pub(crate) fn stamp_path(model_dir: &Path, file: &str) -> PathBuf {
    model_dir.join(format!(".{file}.verified"))
}

const STAMP_HEADER: &str = "voxgate-models stamp 1";

fn read_stamp(stamp: &Path, key: StampKey) -> Option<Sha256Digest> {
    // Any unreadable or foreign stamp just means "hash again".
    let text = fs::read_to_string(stamp).ok()?;
    let mut lines = text.lines();
    if lines.next()? != STAMP_HEADER {
        return None;
    }
    let size: u64 = lines.next()?.strip_prefix("size ")?.parse().ok()?;
    let mtime_ns: u128 = lines.next()?.strip_prefix("mtime_ns ")?.parse().ok()?;
    let digest: Sha256Digest = lines.next()?.strip_prefix("sha256 ")?.parse().ok()?;
    (StampKey { size, mtime_ns } == key).then_some(digest)
}

/// Records that the file with `key` hashes to `digest`. Failure is ignored:
/// the models directory may be read-only (installed by root, mounted into a
/// container), and a missing stamp only costs a re-hash next time.
pub(crate) fn write_stamp(stamp: &Path, key: StampKey, digest: Sha256Digest) {
    let text = format!(
        "{STAMP_HEADER}\nsize {}\nmtime_ns {}\nsha256 {digest}\n",
        key.size, key.mtime_ns
    );
    let _ = fs::write(stamp, text);
}

/// Where the verified model files are.
///
/// The typed accessors find each file by model name and file kind rather than
/// by exact file name, so a version bump in the manifest that renames a file
/// (the ONNX Runtime library carries its version) needs no code change. They
/// fail only when the manifest that was verified lacks the model, which the
/// embedded manifest never does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPaths {
    dir: PathBuf,
    models: Vec<VerifiedModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct VerifiedModel {
    name: String,
    dir: PathBuf,
    files: Vec<(String, PathBuf)>,
}

impl ModelPaths {
    /// The models directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory of the model called `model`.
    pub fn model_dir(&self, model: &str) -> Option<&Path> {
        self.model(model).map(|m| m.dir.as_path())
    }

    /// The file `file` of the model called `model`.
    pub fn file(&self, model: &str, file: &str) -> Option<&Path> {
        self.model(model)?
            .files
            .iter()
            .find(|(name, _)| name == file)
            .map(|(_, path)| path.as_path())
    }

    /// Silero VAD (ONNX).
    pub fn silero_vad(&self) -> Result<&Path, ModelsError> {
        self.find("silero-vad", "an .onnx file", |f| f.ends_with(".onnx"))
    }

    /// Smart Turn v3 end-of-turn model (ONNX).
    pub fn smart_turn(&self) -> Result<&Path, ModelsError> {
        self.find("smart-turn", "an .onnx file", |f| f.ends_with(".onnx"))
    }

    /// The Whisper tiny.en CTranslate2 model directory (`model.bin`,
    /// `config.json`, `tokenizer.json`, `vocabulary.txt`).
    pub fn whisper_dir(&self) -> Result<&Path, ModelsError> {
        const MODEL: &str = "whisper-tiny-en";
        self.find(MODEL, "model.bin", |f| f == "model.bin")?;
        self.model_dir(MODEL).ok_or(ModelsError::NotInManifest {
            model: MODEL,
            what: "model.bin",
        })
    }

    /// SmolLM2-135M-Instruct (GGUF).
    pub fn smollm2_gguf(&self) -> Result<&Path, ModelsError> {
        self.find("smollm2-135m", "a .gguf file", |f| f.ends_with(".gguf"))
    }

    /// The Piper voice (ONNX).
    pub fn piper_voice(&self) -> Result<&Path, ModelsError> {
        self.find("piper-joe-medium", "an .onnx file", |f| {
            f.ends_with(".onnx")
        })
    }

    /// The Piper voice's configuration (`.onnx.json`).
    pub fn piper_config(&self) -> Result<&Path, ModelsError> {
        self.find("piper-joe-medium", "an .onnx.json file", |f| {
            f.ends_with(".onnx.json")
        })
    }

    /// The ONNX Runtime shared library, for `ort`'s `load-dynamic`
    /// (`ORT_DYLIB_PATH` or `ort::init_from`).
    pub fn onnxruntime_library(&self) -> Result<&Path, ModelsError> {
        self.find("onnxruntime", "libonnxruntime.so.*", |f| {
            f.starts_with("libonnxruntime.so")
        })
    }

    fn model(&self, model: &str) -> Option<&VerifiedModel> {
        self.models.iter().find(|m| m.name == model)
    }

    fn find(
        &self,
        model: &'static str,
        what: &'static str,
        matches: impl Fn(&str) -> bool,
    ) -> Result<&Path, ModelsError> {
        self.model(model)
            .and_then(|m| m.files.iter().find(|(file, _)| matches(file)))
            .map(|(_, path)| path.as_path())
            .ok_or(ModelsError::NotInManifest { model, what })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_paths_resolve_for_the_embedded_manifest() {
        let manifest = Manifest::embedded();
        let dir = Path::new("/models");
        let paths = ModelPaths {
            dir: dir.to_owned(),
            models: manifest
                .models()
                .iter()
                .map(|m| VerifiedModel {
                    name: m.name().to_owned(),
                    dir: dir.join(m.name()),
                    files: m
                        .members()
                        .iter()
                        .map(|f| (f.file().to_owned(), dir.join(m.name()).join(f.file())))
                        .collect(),
                })
                .collect(),
        };
        let p = |r: Result<&Path, ModelsError>| r.map(Path::to_owned).ok();
        let at = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            p(paths.silero_vad()),
            at("/models/silero-vad/silero_vad.onnx")
        );
        assert_eq!(
            p(paths.smart_turn()),
            at("/models/smart-turn/smart-turn-v3.2-cpu.onnx")
        );
        assert_eq!(p(paths.whisper_dir()), at("/models/whisper-tiny-en"));
        assert_eq!(
            p(paths.smollm2_gguf()),
            at("/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf")
        );
        assert_eq!(
            p(paths.piper_voice()),
            at("/models/piper-joe-medium/en_US-joe-medium.onnx")
        );
        assert_eq!(
            p(paths.piper_config()),
            at("/models/piper-joe-medium/en_US-joe-medium.onnx.json")
        );
        assert_eq!(
            p(paths.onnxruntime_library()),
            at("/models/onnxruntime/libonnxruntime.so.1.31.1")
        );
    }

    #[test]
    fn a_foreign_or_stale_stamp_is_not_trusted() {
        let dir = match tempfile::tempdir() {
            Ok(dir) => dir,
            Err(e) => panic!("tempdir: {e}"),
        };
        let stamp = dir.path().join(".f.verified");
        let key = StampKey {
            size: 3,
            mtime_ns: 42,
        };
        let digest = Sha256Digest::of(b"abc");
        write_stamp(&stamp, key, digest);
        assert_eq!(read_stamp(&stamp, key), Some(digest));
        let moved = StampKey {
            mtime_ns: 43,
            ..key
        };
        assert_eq!(read_stamp(&stamp, moved), None);
        let resized = StampKey { size: 4, ..key };
        assert_eq!(read_stamp(&stamp, resized), None);
        let _ = fs::write(&stamp, "something else\n");
        assert_eq!(read_stamp(&stamp, key), None);
    }
}
