//! What every cloud client shares: base URLs and how an HTTP status maps to
//! a [`ProviderError`].

use std::time::Duration;

use crate::ProviderError;

/// A vendor's base URL, as its SDKs write it (`https://api.openai.com/v1`),
/// without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl(url::Url);

impl BaseUrl {
    /// Parses `text`; only `http` and `https` are accepted.
    ///
    /// # Errors
    /// Not a URL, or another scheme.
    pub fn parse(text: &str) -> Result<Self, ProviderError> {
        let url = url::Url::parse(text.trim_end_matches('/')).map_err(|e| ProviderError::Load {
            what: format!("base URL {text:?}"),
            reason: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ProviderError::Load {
                what: format!("base URL {text:?}"),
                reason: "the scheme must be http or https".to_owned(),
            });
        }
        Ok(Self(url))
    }

    /// `path` (starting with `/`) under the base.
    pub fn join(&self, path: &str) -> String {
        format!("{}{path}", self.0.as_str().trim_end_matches('/'))
    }

    /// The same under `ws`/`wss` (http→ws, https→wss).
    pub fn websocket(&self, path: &str) -> String {
        websocket_url(&self.join(path))
    }
}

/// `url` with its scheme mapped http→ws, https→wss.
pub fn websocket_url(url: &str) -> String {
    if let Some(rest) = url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        url.to_owned()
    }
}

/// A response's status, `retry-after` header and body: what
/// [`check_status`] takes.
pub async fn status_parts(response: reqwest::Response) -> (u16, Option<String>, String) {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let body = response.text().await.unwrap_or_default();
    (status, retry_after, body)
}

/// What a failed WebSocket handshake means: an HTTP answer instead of the
/// upgrade is mapped like any failed status ([`check_status`]); anything
/// else (refused, reset, TLS) is the vendor being unavailable.
pub fn handshake_error(
    provider: &'static str,
    error: tokio_tungstenite::tungstenite::Error,
) -> ProviderError {
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER.as_str())
                .and_then(|value| value.to_str().ok());
            let body = response
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            check_status(provider, status, retry_after, &body)
                .err()
                .unwrap_or_else(|| ProviderError::Unavailable {
                    provider,
                    reason: format!("HTTP {status} instead of an upgrade"),
                })
        }
        other => ProviderError::Unavailable {
            provider,
            reason: format!("cannot connect: {other}"),
        },
    }
}

/// Maps a failed HTTP status to the error it means: 429 is rate limiting
/// (with `retry-after` in seconds, when given), 5xx and 408 are the vendor's
/// trouble, any other 4xx is a rejection. `body` is the vendor's message; it
/// is cut short, and never holds our key.
///
/// # Errors
/// Always, for a status that is not a success.
pub fn check_status(
    provider: &'static str,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> Result<(), ProviderError> {
    if (200..300).contains(&status) {
        return Ok(());
    }
    let reason: String = body.trim().chars().take(300).collect();
    Err(match status {
        429 => ProviderError::RateLimited {
            provider,
            retry_after: retry_after
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64),
        },
        408 | 500..=599 => ProviderError::Unavailable {
            provider,
            reason: format!("HTTP {status}: {reason}"),
        },
        _ => ProviderError::Rejected {
            provider,
            status,
            reason,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_join_and_map_to_websockets() {
        let base = BaseUrl::parse("https://api.openai.com/v1/").expect("valid");
        assert_eq!(base.join("/realtime"), "https://api.openai.com/v1/realtime");
        assert_eq!(
            base.websocket("/realtime"),
            "wss://api.openai.com/v1/realtime"
        );
        let local = BaseUrl::parse("http://127.0.0.1:9000").expect("valid");
        assert_eq!(
            local.websocket("/v1/listen"),
            "ws://127.0.0.1:9000/v1/listen"
        );
        assert!(BaseUrl::parse("ftp://x").is_err());
        assert!(BaseUrl::parse("not a url").is_err());
    }

    #[test]
    fn statuses_map_to_errors() {
        assert!(check_status("v", 200, None, "").is_ok());
        assert!(matches!(
            check_status("v", 401, None, "bad key"),
            Err(ProviderError::Rejected { status: 401, .. })
        ));
        assert!(matches!(
            check_status("v", 429, Some("2"), ""),
            Err(ProviderError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(2)
        ));
        assert!(matches!(
            check_status("v", 429, Some("soon"), ""),
            Err(ProviderError::RateLimited {
                retry_after: None,
                ..
            })
        ));
        assert!(matches!(
            check_status("v", 503, None, ""),
            Err(ProviderError::Unavailable { .. })
        ));
    }
}
