//! Database URLs: which backend a URL names, and how to print one safely.
//!
//! Pure string handling, so the rules are unit-tested without a database.

use crate::error::StoreError;

/// What [`crate::Store::connect`] accepts, for error messages.
pub(crate) const ACCEPTED: &str =
    "sqlite:PATH, sqlite://PATH, sqlite::memory:, postgres://…, postgresql://… or a bare file path";

/// The database engine behind a [`crate::Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// A SQLite file (or in-memory database).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// A URL resolved to what sqlx's `Any` driver should be given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) backend: Backend,
    pub(crate) url: String,
    /// Each `Any` connection re-parses the URL, and every parse of
    /// `:memory:` names a fresh database, so the pool must hold exactly one
    /// connection for the data to stay visible.
    pub(crate) in_memory: bool,
    /// Whether connecting creates a missing SQLite file (`mode=rwc`), so
    /// [`crate::Store::connect`] creates it first, readable by the owner
    /// only.
    pub(crate) creates_file: bool,
}

/// Works out the backend for `raw` and the URL sqlx should get.
pub(crate) fn resolve(raw: &str) -> Result<Target, StoreError> {
    let unsupported = || StoreError::UnsupportedUrl {
        url: redact_url(raw),
    };
    if raw.trim().is_empty() {
        return Err(unsupported());
    }
    if starts_with_ignore_case(raw, "postgres://") || starts_with_ignore_case(raw, "postgresql://")
    {
        return Ok(Target {
            backend: Backend::Postgres,
            url: raw.to_owned(),
            in_memory: false,
            creates_file: false,
        });
    }
    if starts_with_ignore_case(raw, "sqlite:") {
        return Ok(sqlite_url(raw));
    }
    if has_scheme(raw) {
        return Err(unsupported());
    }
    // A bare path: encode it so `?`, `#`, `%` and spaces survive the URL
    // parse that sqlx does (it percent-decodes the path again).
    Ok(Target {
        backend: Backend::Sqlite,
        url: format!("sqlite:{}?mode=rwc", percent_encode_path(raw)),
        in_memory: false,
        creates_file: true,
    })
}

/// A `sqlite:` URL, with `mode=rwc` added when it sets no mode: a server
/// pointed at a new file should create it rather than fail to start.
fn sqlite_url(raw: &str) -> Target {
    let (location, query) = match raw.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (raw, None),
    };
    let path = strip_prefix_ignore_case(location, "sqlite://")
        .or_else(|| strip_prefix_ignore_case(location, "sqlite:"))
        .unwrap_or(location);
    let sets_mode = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("mode=")));
    let sets_rwc = query.is_some_and(|q| q.split('&').any(|p| p == "mode=rwc"));
    let in_memory =
        path == ":memory:" || query.is_some_and(|q| q.split('&').any(|p| p == "mode=memory"));
    let url = match query {
        _ if sets_mode || in_memory => raw.to_owned(),
        Some(_) => format!("{raw}&mode=rwc"),
        None => format!("{raw}?mode=rwc"),
    };
    Target {
        backend: Backend::Sqlite,
        url,
        in_memory,
        creates_file: !in_memory && (sets_rwc || !sets_mode),
    }
}

/// True for `scheme:…` with a scheme of two or more characters, so that
/// `mysql://…` or `file:x.db` are refused while a Windows drive letter
/// (`C:\…`) still counts as a path.
fn has_scheme(raw: &str) -> bool {
    if raw.contains("://") {
        return true;
    }
    let Some((scheme, _)) = raw.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    scheme.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn percent_encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn starts_with_ignore_case(s: &str, prefix: &str) -> bool {
    strip_prefix_ignore_case(s, prefix).is_some()
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `url` with any password replaced by `***`, safe to log or show.
///
/// Covers the user-info password (`scheme://user:secret@host`) and query
/// parameters whose name contains `password` (`?password=secret`). When the
/// URL is malformed it errs towards hiding too much: everything up to the
/// last `@` counts as user info.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return redact_query(url);
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host_and_path)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{}", redact_query(host_and_path)),
            None => format!("{userinfo}@{}", redact_query(host_and_path)),
        },
        None => redact_query(rest),
    };
    format!("{scheme}://{rest}")
}

fn redact_query(s: &str) -> String {
    let Some((head, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((key, _)) if key.to_ascii_lowercase().contains("password") => {
                format!("{key}=***")
            }
            _ => param.to_owned(),
        })
        .collect();
    format!("{head}?{}", params.join("&"))
}

/// The secrets in `url`, raw and percent-decoded, so error text from the
/// driver can be scrubbed of them whatever form it echoes.
pub(crate) fn secrets_in(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some((_, rest)) = url.split_once("://")
        && let Some((userinfo, _)) = rest.rsplit_once('@')
        && let Some((_, password)) = userinfo.split_once(':')
    {
        secrets.push(password.to_owned());
    }
    if let Some((_, query)) = url.split_once('?') {
        for param in query.split('&') {
            if let Some((key, value)) = param.split_once('=')
                && key.to_ascii_lowercase().contains("password")
            {
                secrets.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `text` with every secret from [`secrets_in`] replaced by `***`.
pub(crate) fn scrub(text: &str, secrets: &[String]) -> String {
    secrets
        .iter()
        .fold(text.to_owned(), |text, secret| text.replace(secret, "***"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(raw: &str) -> Target {
        resolve(raw).expect("supported url")
    }

    #[test]
    fn postgres_urls_pass_through() {
        for raw in [
            "postgres://u@h/db",
            "postgresql://u:p@h:5432/db?sslmode=disable",
        ] {
            let t = target(raw);
            assert_eq!(t.backend, Backend::Postgres);
            assert_eq!(t.url, raw);
        }
    }

    #[test]
    fn sqlite_urls_create_the_file_unless_a_mode_is_given() {
        assert_eq!(target("sqlite:v.db").url, "sqlite:v.db?mode=rwc");
        assert_eq!(target("sqlite://v.db").url, "sqlite://v.db?mode=rwc");
        assert_eq!(
            target("sqlite:v.db?cache=private").url,
            "sqlite:v.db?cache=private&mode=rwc"
        );
        assert_eq!(target("sqlite:v.db?mode=ro").url, "sqlite:v.db?mode=ro");
        assert!(!target("sqlite:v.db").in_memory);
        assert!(target("sqlite:v.db").creates_file);
        assert!(target("sqlite:v.db?mode=rwc").creates_file);
        assert!(!target("sqlite:v.db?mode=ro").creates_file);
        assert!(!target("sqlite:v.db?mode=rw").creates_file);
        assert!(target("v.db").creates_file);
        assert!(!target("postgres://u@h/db").creates_file);
    }

    #[test]
    fn in_memory_sqlite_is_flagged() {
        assert!(target("sqlite::memory:").in_memory);
        assert_eq!(target("sqlite::memory:").url, "sqlite::memory:");
        assert!(target("sqlite://?mode=memory").in_memory);
        assert!(!target("sqlite::memory:").creates_file);
        assert!(!target("sqlite://?mode=memory").creates_file);
    }

    #[test]
    fn bare_paths_are_sqlite_files() {
        assert_eq!(target("voxgate.db").url, "sqlite:voxgate.db?mode=rwc");
        assert_eq!(
            target("/var/lib/v x.db").url,
            "sqlite:/var/lib/v%20x.db?mode=rwc"
        );
        assert_eq!(target("a?b#c%.db").url, "sqlite:a%3Fb%23c%25.db?mode=rwc");
        assert_eq!(target(r"C:\data\v.db").backend, Backend::Sqlite);
    }

    #[test]
    fn other_schemes_are_refused_with_the_accepted_list() {
        for raw in ["mysql://u:hunter2@h/db", "file:v.db", "http://x", "", "  "] {
            let err = resolve(raw).expect_err("unsupported");
            let text = err.to_string();
            assert!(text.contains("postgres://"), "{text}");
            assert!(text.contains("sqlite:"), "{text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
    }

    #[test]
    fn redacts_userinfo_password() {
        assert_eq!(
            redact_url("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("postgres://h/db"), "postgres://h/db");
        assert_eq!(redact_url("sqlite:v.db?mode=rwc"), "sqlite:v.db?mode=rwc");
        assert_eq!(redact_url("voxgate.db"), "voxgate.db");
    }

    #[test]
    fn redacts_passwords_with_odd_characters_and_query_passwords() {
        let redacted = redact_url("postgres://u:p@ss/w:rd@h/db");
        assert_eq!(redacted, "postgres://u:***@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=secret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
    }

    #[test]
    fn scrubs_raw_and_decoded_secrets() {
        let secrets = secrets_in("postgres://u:s%40cret@h/db?sslpassword=x2");
        let text = scrub("failed: s%40cret s@cret x2", &secrets);
        assert_eq!(text, "failed: *** *** ***");
    }
}
