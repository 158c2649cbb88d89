//! Parsing what browsers and API clients send to prove who they are and
//! where they come from: `Origin` and `Host` values, bearer tokens and
//! cookies. Pure functions over header values; the server decides.

use std::fmt;

/// A browser origin, normalized: lower-case scheme and host, default port
/// left out (`https://example.com`, `http://127.0.0.1:8080`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin(String);

/// A string that is not a usable origin.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an origin like https://example.com[:port]")]
pub struct BadOrigin(String);

impl Origin {
    /// Parses `scheme://host[:port]` (http or https; a trailing `/` is
    /// tolerated), as browsers send it in the `Origin` header.
    pub fn parse(raw: &str) -> Result<Origin, BadOrigin> {
        let bad = || BadOrigin(raw.chars().take(100).collect());
        let (scheme, rest) = raw.split_once("://").ok_or_else(bad)?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => "80",
            "https" => "443",
            _ => return Err(bad()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_host_port(authority).ok_or_else(bad)?;
        if host.is_empty() || !host.bytes().all(is_host_byte) {
            return Err(bad());
        }
        let host = host.to_ascii_lowercase();
        match port {
            Some(port) if port != default_port => {
                if port.parse::<u16>().is_err() {
                    return Err(bad());
                }
                Ok(Origin(format!("{scheme}://{host}:{port}")))
            }
            _ => Ok(Origin(format!("{scheme}://{host}"))),
        }
    }

    /// The origin as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':' | b'[' | b']')
}

/// Splits `host[:port]` (`[v6]:port` for IPv6); `None` when malformed.
/// The host keeps its brackets.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            rest => Some((host, Some(rest.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, port)) if !port.contains(':') => Some((host, Some(port))),
        Some(_) => None,
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && !token.contains(' '))
        .then_some(token)
}

/// The value of cookie `name` in a `Cookie` header value
/// (`a=1; name=value`), the first if it is given twice.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key.trim() == name).then(|| value.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            Origin::parse("HTTPS://Example.com:443/")
                .as_ref()
                .map(Origin::as_str),
            Ok("https://example.com")
        );
        assert_eq!(
            Origin::parse("http://[::1]:8080")
                .as_ref()
                .map(Origin::as_str),
            Ok("http://[::1]:8080")
        );
        assert!(Origin::parse("null").is_err());
        assert!(Origin::parse("ftp://example.com").is_err());
        assert!(Origin::parse("https://a b").is_err());
        assert!(Origin::parse("https://example.com:99999").is_err());
    }

    #[test]
    fn bearer_tokens() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer a b"), None);
    }

    #[test]
    fn cookies() {
        assert_eq!(
            cookie("a=1; voxgate_session=xyz", "voxgate_session"),
            Some("xyz")
        );
        assert_eq!(
            cookie("voxgate_session=\"q\"", "voxgate_session"),
            Some("q")
        );
        assert_eq!(cookie("xvoxgate_session=1", "voxgate_session"), None);
        assert_eq!(cookie("garbage", "voxgate_session"), None);
    }
}
