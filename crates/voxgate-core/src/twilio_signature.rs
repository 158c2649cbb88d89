//! Twilio request validation: the `X-Twilio-Signature` header on webhooks
//! (voice URLs, status callbacks) proves the request came from Twilio.
//!
//! The signed text is the full URL Twilio requested (scheme, host, any port,
//! path and query), followed, for form POSTs, by every form parameter sorted
//! by name, each as its name then its value with no separator. The signature
//! is the HMAC-SHA1 of that text keyed with the account's auth token,
//! base64-encoded. Pure functions: the shell supplies the URL it is known
//! by and the decoded form.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The signature Twilio sends for a request to `url` with form `params`
/// (empty for a GET or a WebSocket upgrade), keyed with `auth_token`.
///
/// Parameters are sorted by name, then by value when a name repeats, so the
/// order they arrive in does not matter.
pub fn sign<'a>(
    auth_token: &str,
    url: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> String {
    STANDARD.encode(mac(auth_token, url, params).finalize().into_bytes())
}

/// Whether `signature` (the header's value) is the one [`sign`] gives for
/// this request. The comparison takes the same time wherever the bytes
/// differ, so a forger learns nothing from timing.
pub fn is_valid<'a>(
    auth_token: &str,
    url: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
    signature: &str,
) -> bool {
    let Ok(claimed) = STANDARD.decode(signature.trim()) else {
        return false;
    };
    mac(auth_token, url, params).verify_slice(&claimed).is_ok()
}

fn mac<'a>(
    auth_token: &str,
    url: &str,
    params: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Hmac<Sha1> {
    let mut sorted: Vec<(&str, &str)> = params.into_iter().collect();
    // `str` orders by bytes, which for UTF-8 is Unicode code point order,
    // the order Twilio's helper libraries sort by.
    sorted.sort_unstable();
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in Twilio's security documentation and helper-library
    /// snippets (twilio-samples/api-snippets
    /// `security/signature_validation/signature_validation.2.x.js`),
    /// recomputed here with Python's `hmac` before being written down.
    const DOC_TOKEN: &str = "12345";
    const DOC_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
    const DOC_PARAMS: [(&str, &str); 5] = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ];
    const DOC_SIGNATURE: &str = "RSOYDt4T1cUTdK1PDd93/VVr8B8=";

    #[test]
    fn matches_twilios_documented_example() {
        assert_eq!(sign(DOC_TOKEN, DOC_URL, DOC_PARAMS), DOC_SIGNATURE);
        assert!(is_valid(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE));
    }

    #[test]
    fn parameter_order_does_not_matter() {
        let mut reversed = DOC_PARAMS;
        reversed.reverse();
        assert_eq!(sign(DOC_TOKEN, DOC_URL, reversed), DOC_SIGNATURE);
    }

    /// A vector of our own (non-ASCII token and values, a port, a path
    /// prefix), computed with Python 3's `hmac` and `hashlib.sha1` over
    /// `url + "".join(name + value for name, value in sorted(params))`.
    #[test]
    fn matches_an_independently_computed_vector() {
        let token = "tok-é";
        let url = "https://voice.example.com:8443/vg/twilio/status";
        let params = [
            ("To", "+14155550199"),
            ("CallStatus", "in-progress"),
            ("From", "+33 1 23 45 67 89"),
            ("CallSid", "CAé&="),
            ("AccountSid", "AC00000000000000000000000000000000"),
        ];
        assert_eq!(sign(token, url, params), "BS2fRwfhWTNcpk9EKhls/sJo1gc=");
    }

    #[test]
    fn a_url_without_parameters_signs_the_url_alone() {
        // Computed with Python 3's `hmac` over the URL alone.
        assert_eq!(
            sign(DOC_TOKEN, "wss://example.com/stream", []),
            "KG4JbhDlv15BMlxSTOWKt9btbgg="
        );
    }

    #[test]
    fn rejects_anything_else() {
        let check = |token: &str, url: &str, params: &[(&str, &str)], signature: &str| {
            is_valid(token, url, params.iter().copied(), signature)
        };
        assert!(!check("54321", DOC_URL, &DOC_PARAMS, DOC_SIGNATURE));
        assert!(!check(
            DOC_TOKEN,
            "https://mycompany.com/myapp.php?foo=1&bar=3",
            &DOC_PARAMS,
            DOC_SIGNATURE
        ));
        assert!(!check(DOC_TOKEN, DOC_URL, &DOC_PARAMS[1..], DOC_SIGNATURE));
        let mut tampered = DOC_PARAMS;
        tampered[2] = ("Digits", "1235");
        assert!(!check(DOC_TOKEN, DOC_URL, &tampered, DOC_SIGNATURE));
        assert!(!check(DOC_TOKEN, DOC_URL, &DOC_PARAMS, ""));
        assert!(!check(DOC_TOKEN, DOC_URL, &DOC_PARAMS, "not base64!"));
        // A truncated MAC must not pass as a prefix match.
        assert!(!check(DOC_TOKEN, DOC_URL, &DOC_PARAMS, "RSOYDt4T1cUTdK1P"));
    }
}
