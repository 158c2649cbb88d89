//! `events::BrowserRequest::parse` on one arbitrary UTF-8 frame from
//! `/browser-stream`.
//!
//! Never panics; every error has a code and a non-empty message, and the
//! `error` reply built from it is JSON; a `config` always sets something.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_core::events::{BrowserRequest, ProtocolError};

fn check_error(err: &ProtocolError) {
    assert!(!err.code.as_str().is_empty(), "{err:?}");
    assert!(!err.message.trim().is_empty(), "empty message: {err:?}");
    assert!(err.to_string().starts_with(err.code.as_str()), "{err}");
    let reply: serde_json::Value =
        serde_json::from_str(&err.to_message().to_json()).expect("error reply is JSON");
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["code"], err.code.as_str());
    assert_eq!(reply["message"].as_str(), Some(err.message.as_str()));
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BrowserRequest::parse(text) {
        Err(err) => check_error(&err),
        Ok(BrowserRequest::Config { config }) => assert!(!config.is_empty()),
        Ok(_) => {}
    }
});
