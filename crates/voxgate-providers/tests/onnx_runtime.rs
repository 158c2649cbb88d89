//! The ONNX Runtime environment: one per process, typed errors.
#![cfg(feature = "onnx")]

mod onnx_support;

use std::path::Path;

use voxgate_providers::ProviderError;
use voxgate_providers::local::{OnnxRuntime, OnnxRuntimeError};

#[test]
fn a_second_environment_is_refused() {
    let first = onnx_support::runtime();
    let again = OnnxRuntime::init(first.library());
    assert_eq!(again.err(), Some(OnnxRuntimeError::AlreadyInitialized));
}

#[test]
fn a_missing_library_is_a_load_error() {
    let path = Path::new("/nonexistent/libonnxruntime.so.1.31.1");
    let error = OnnxRuntime::init(path).expect_err("no such file");
    assert!(
        matches!(&error, OnnxRuntimeError::Library { path: p, .. } if p == path),
        "{error:?}"
    );
    let provider: ProviderError = error.into();
    assert!(
        matches!(provider, ProviderError::Load { .. }),
        "{provider:?}"
    );
}
