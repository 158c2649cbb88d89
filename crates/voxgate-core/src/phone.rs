//! Phone-number normalisation to E.164, so call records and searches see one
//! spelling of a number whatever format the carrier or operator used.
//!
//! Not every call party is a phone number: Twilio Client callers arrive as
//! `client:alice`, SIP callers as `sip:…`, withheld numbers as `anonymous`.
//! [`normalize_e164`] returns `None` for those and callers keep the address as
//! it came ([`party`] does exactly that), because rewriting or dropping it
//! would lose who called.

/// Fewest digits accepted after `+`. ITU E.164 allows short numbers in small
/// countries (e.g. Niue's 4-digit subscriber numbers plus a 3-digit code);
/// 8 keeps those while rejecting stray short codes and extensions.
const MIN_DIGITS: usize = 8;
/// Most digits E.164 allows, country code included.
const MAX_DIGITS: usize = 15;

/// Normalises a phone number to E.164 (`+` and 8–15 digits, no leading 0).
///
/// Accepted spellings, after trimming and removing whitespace, `-`, `.`,
/// `(` and `)`:
/// - `+` followed by the digits: `+44 20 7946 0958` → `+442079460958`;
/// - the `00` international prefix: `0044…` → `+44…`;
/// - 10 digits, read as a North American number: `(415) 555-0100` →
///   `+14155550100`;
/// - 11 digits starting with `1`: `1-415-555-0100` → `+14155550100`.
///
/// North American forms must have an area code starting 2–9, as NANP
/// requires; this keeps national numbers from elsewhere (an Australian
/// `0412 345 678` is also 10 digits) from being misread as `+1`.
///
/// Anything else is not a phone number and gives `None`: SIP and client
/// addresses, `anonymous`, letters, extensions, `tel:` URIs, empty input.
pub fn normalize_e164(raw: &str) -> Option<String> {
    let mut compact = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        match c {
            '-' | '.' | '(' | ')' => {}
            c if c.is_whitespace() => {}
            c => compact.push(c),
        }
    }

    if let Some(digits) = compact.strip_prefix('+') {
        return international(digits);
    }
    if let Some(digits) = compact.strip_prefix("00") {
        return international(digits);
    }
    if !all_digits(&compact) {
        return None;
    }
    match compact.len() {
        10 => nanp(&compact),
        11 => compact.strip_prefix('1').and_then(nanp),
        _ => None,
    }
}

/// The value call records store for a party: the E.164 form when `raw` is a
/// phone number, otherwise `raw` trimmed but otherwise as it came.
pub fn party(raw: &str) -> String {
    normalize_e164(raw).unwrap_or_else(|| raw.trim().to_owned())
}

/// Digits after `+` or `00`: the country code comes first and is never 0.
fn international(digits: &str) -> Option<String> {
    let ok = all_digits(digits)
        && (MIN_DIGITS..=MAX_DIGITS).contains(&digits.len())
        && !digits.starts_with('0');
    ok.then(|| format!("+{digits}"))
}

/// A 10-digit North American number: area code then subscriber number.
fn nanp(ten: &str) -> Option<String> {
    let area_ok = matches!(ten.as_bytes().first(), Some(b'2'..=b'9'));
    (ten.len() == 10 && area_ok).then(|| format!("+1{ten}"))
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_common_spellings() {
        let cases = [
            ("+14155550100", "+14155550100"),
            ("  +1 415 555 0100  ", "+14155550100"),
            ("+1 (415) 555-0100", "+14155550100"),
            ("+1.415.555.0100", "+14155550100"),
            ("(415) 555-0100", "+14155550100"),
            ("415-555-0100", "+14155550100"),
            ("4155550100", "+14155550100"),
            ("1 415 555 0100", "+14155550100"),
            ("14155550100", "+14155550100"),
            ("+44 20 7946 0958", "+442079460958"),
            ("0044 20 7946 0958", "+442079460958"),
            ("00 49 30 1234567", "+49301234567"),
            ("+33\t1 23 45 67 89", "+33123456789"),
            ("+61 412 345 678", "+61412345678"),
            ("+266696687", "+266696687"),
            ("+12345678", "+12345678"),
            ("+123456789012345", "+123456789012345"),
            ("+1\u{a0}415\u{a0}555\u{a0}0100", "+14155550100"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_e164(raw).as_deref(), Some(want), "{raw:?}");
        }
    }

    #[test]
    fn rejects_non_numbers() {
        let cases = [
            "",
            "   ",
            "+",
            "00",
            "anonymous",
            "Anonymous",
            "client:alice",
            "sip:alice@example.com",
            "sip:+14155550100@sip.example.com",
            "tel:+14155550100",
            "+1 415 CALL NOW",
            "1-800-FLOWERS",
            "+14155550100 x123",
            "+14155550100;ext=12",
            "++14155550100",
            "+1415+5550100",
            "14155550100+",
            "+0123456789",
            "000123456789",
            "+1234567",
            "+1234567890123456",
            "0412 345 678",
            "1234567890",
            "0155550100",
            "10155550100",
            "24155550100",
            "555-0100",
            "911",
            "+١٤١٥٥٥٥٠١٠٠",
            "4155550100\u{0}",
        ];
        for raw in cases {
            assert_eq!(normalize_e164(raw), None, "{raw:?}");
        }
    }

    #[test]
    fn party_keeps_non_numbers_as_they_came() {
        assert_eq!(party(" (415) 555-0100 "), "+14155550100");
        assert_eq!(party("  client:alice "), "client:alice");
        assert_eq!(party("sip:bob@example.com"), "sip:bob@example.com");
        assert_eq!(party("anonymous"), "anonymous");
        assert_eq!(party(""), "");
    }

    #[test]
    fn normalised_numbers_are_fixed_points() {
        for raw in ["+14155550100", "0044 20 7946 0958", "415.555.0100"] {
            let once = normalize_e164(raw).expect("valid number");
            assert_eq!(normalize_e164(&once).as_deref(), Some(once.as_str()));
        }
    }
}
