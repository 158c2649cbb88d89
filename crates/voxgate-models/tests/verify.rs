//! `verify` on a fetched directory: corrupt and missing files, and the stamp
//! cache that keeps unchanged files from being hashed again.

mod common;

use std::fs::{self, File};
use std::time::{Duration, SystemTime};

use common::{Fixture, MODEL, TestResult};
use voxgate_models::{ModelsError, verify, verify_with_report};

#[test]
fn a_corrupt_file_is_named() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    // Same size, different content: only the hash can tell.
    let weights = fx.model_file("weights.bin");
    let mut bytes = fs::read(&weights)?;
    bytes[1000] ^= 0xff;
    fs::write(&weights, &bytes)?;
    match verify(&fx.manifest, &fx.models) {
        Err(e @ ModelsError::Corrupt { .. }) => {
            let message = e.to_string();
            let ModelsError::Corrupt {
                model,
                file,
                expected,
                actual,
            } = e
            else {
                unreachable!("matched above")
            };
            assert_eq!((model.as_str(), file.as_str()), (MODEL, "weights.bin"));
            assert!(expected.starts_with("sha256 "), "{expected}");
            assert_ne!(expected, actual);
            assert!(message.contains("voxgate models fetch"), "{message}");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_file_of_the_wrong_size_is_corrupt() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    fs::write(fx.model_file("config.json"), b"{}")?;
    match verify(&fx.manifest, &fx.models) {
        Err(ModelsError::Corrupt {
            model,
            file,
            expected,
            actual,
        }) => {
            assert_eq!((model.as_str(), file.as_str()), (MODEL, "config.json"));
            assert_eq!(expected, format!("{} bytes", fx.files[1].bytes.len()));
            assert_eq!(actual, "2 bytes");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    Ok(())
}

#[test]
fn a_missing_file_names_model_and_file() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    fs::remove_file(fx.model_file("config.json"))?;
    match verify(&fx.manifest, &fx.models) {
        Err(e @ ModelsError::Missing { .. }) => {
            let message = e.to_string();
            let ModelsError::Missing { model, file, path } = e else {
                unreachable!("matched above")
            };
            assert_eq!((model.as_str(), file.as_str()), (MODEL, "config.json"));
            assert_eq!(path, fx.model_file("config.json"));
            assert!(message.contains("model fake: config.json"), "{message}");
            assert!(message.contains("voxgate models fetch"), "{message}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    Ok(())
}

#[test]
fn an_empty_directory_is_missing_everything() -> TestResult {
    let fx = Fixture::new()?;
    assert!(matches!(
        verify(&fx.manifest, &fx.models),
        Err(ModelsError::Missing { .. })
    ));
    Ok(())
}

#[test]
fn stamps_skip_hashing_unchanged_files_and_a_new_mtime_forces_it() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    // fetch stamped what it extracted: nothing to hash.
    let (_, report) = verify_with_report(&fx.manifest, &fx.models)?;
    assert_eq!((report.files_hashed, report.files_trusted), (0, 2));

    // Touch one file: same content, new mtime.
    let weights = fx.model_file("weights.bin");
    let later = SystemTime::now() + Duration::from_secs(60);
    File::options()
        .write(true)
        .open(&weights)?
        .set_modified(later)?;
    let (_, report) = verify_with_report(&fx.manifest, &fx.models)?;
    assert_eq!((report.files_hashed, report.files_trusted), (1, 1));

    // That re-hash was stamped in turn.
    let (_, report) = verify_with_report(&fx.manifest, &fx.models)?;
    assert_eq!((report.files_hashed, report.files_trusted), (0, 2));

    // Without its stamp a file is hashed, and stamped again.
    fs::remove_file(fx.models.join(MODEL).join(".config.json.verified"))?;
    let (_, report) = verify_with_report(&fx.manifest, &fx.models)?;
    assert_eq!((report.files_hashed, report.files_trusted), (1, 1));
    let (_, report) = verify_with_report(&fx.manifest, &fx.models)?;
    assert_eq!((report.files_hashed, report.files_trusted), (0, 2));
    Ok(())
}

#[test]
fn a_stamp_does_not_hide_a_change_of_content() -> TestResult {
    let fx = Fixture::new()?;
    fx.fetch()?;
    let weights = fx.model_file("weights.bin");
    let mut bytes = fs::read(&weights)?;
    bytes[0] ^= 0x01;
    fs::write(&weights, &bytes)?;
    // Writing moved the mtime on, so the stamp no longer applies.
    assert!(matches!(
        verify(&fx.manifest, &fx.models),
        Err(ModelsError::Corrupt { ref file, .. }) if file == "weights.bin"
    ));
    Ok(())
}
