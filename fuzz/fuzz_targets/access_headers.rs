//! The access model's parsers on one arbitrary UTF-8 value: `Origin` and
//! `Host` values, `Authorization: Bearer`, `Cookie`, and the outbound URL
//! policy of persona tools.
//!
//! Never panics. A parsed origin is normalized (parsing it again gives it
//! back); split hosts, bearer tokens and cookie values are pieces of the
//! input; a URL the policy refuses says why with a known kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use voxgate_core::access::{Origin, bearer_token, cookie, split_host_port};
use voxgate_core::outbound::{AllowedHosts, check_url};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(origin) = Origin::parse(text) {
        let again = Origin::parse(origin.as_str()).expect("a normalized origin parses");
        assert_eq!(again, origin);
        assert!(origin.as_str().starts_with("http://") || origin.as_str().starts_with("https://"));
    }
    if let Some((host, port)) = split_host_port(text) {
        assert!(text.starts_with(host), "{text:?} -> {host:?}");
        if let Some(port) = port {
            assert!(text.ends_with(port), "{text:?} -> {port:?}");
        }
    }
    if let Some(token) = bearer_token(text) {
        assert!(!token.is_empty() && !token.contains(' '));
        assert!(text.contains(token));
    }
    if let Some(value) = cookie(text, "voxgate_session") {
        assert!(text.contains(value));
    }
    let allowed = AllowedHosts::parse(text).unwrap_or_default();
    if let Ok(url) = url::Url::parse(text)
        && let Err(refused) = check_url(&url, &allowed)
    {
        assert!(!refused.to_string().is_empty());
    }
});
