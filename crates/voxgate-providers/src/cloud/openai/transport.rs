//! The transport every OpenAI HTTP client shares: the client, sending
//! with the key, mapping failures to [`ProviderError`]s without leaking the
//! key, and reading a body piece by piece with timeouts.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cloud::{check_status, status_parts};
use crate::{ProviderError, Secret, TaskScope};

/// The vendor's name in errors.
pub(super) const PROVIDER: &str = "openai";

/// The message of an OpenAI error object (`{"message": …}`), or the value
/// itself.
pub(super) fn error_message(error: &Value) -> String {
    match error {
        Value::String(text) => text.clone(),
        _ => match error.get("message").and_then(Value::as_str) {
            Some(message) => message.to_owned(),
            None => error.to_string(),
        },
    }
}

pub(super) fn protocol(reason: String) -> ProviderError {
    ProviderError::Protocol {
        provider: PROVIDER,
        reason,
    }
}

/// An HTTP client with no overall timeout: streams are bounded by the
/// supervisor up to the headers and by read timeouts after.
pub(super) fn http_client() -> Result<reqwest::Client, ProviderError> {
    reqwest::Client::builder()
        .build()
        .map_err(|e| ProviderError::Load {
            what: "the HTTP client".to_owned(),
            reason: e.to_string(),
        })
}

/// Sends `request`, with `key` as a bearer token, and turns a failed status
/// into its error, carrying the vendor's message with the key scrubbed out.
pub(super) async fn send(
    request: reqwest::RequestBuilder,
    key: Option<&Secret>,
) -> Result<reqwest::Response, ProviderError> {
    let request = match key {
        Some(key) => request.bearer_auth(key.expose()),
        None => request,
    };
    let response = request.send().await.map_err(|e| unavailable(&e))?;
    if response.status().is_success() {
        return Ok(response);
    }
    let (status, retry_after, body) = status_parts(response).await;
    let message = vendor_message(&body, key);
    Err(
        check_status(PROVIDER, status, retry_after.as_deref(), &message)
            .err()
            .unwrap_or_else(|| protocol(format!("unexpected HTTP status {status}"))),
    )
}

/// The message in an error body (OpenAI's `{"error": {"message": …}}`, or
/// the text as it is), without the key: some servers echo it back.
fn vendor_message(body: &str, key: Option<&Secret>) -> String {
    let message = match serde_json::from_str::<Value>(body) {
        Ok(json) => match json.get("error") {
            Some(error) => error_message(error),
            None => body.to_owned(),
        },
        Err(_) => body.to_owned(),
    };
    match key {
        Some(key) if !key.expose().is_empty() => message.replace(key.expose(), "[redacted]"),
        _ => message,
    }
}

/// A transport failure, with its chain of causes (reqwest's message alone
/// says only "error sending request").
pub(super) fn unavailable(error: &reqwest::Error) -> ProviderError {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    ProviderError::Unavailable {
        provider: PROVIDER,
        reason,
    }
}

/// What waiting for the next piece of a body gave.
pub(super) enum BodyPiece {
    /// Some bytes.
    Bytes(Bytes),
    /// The body ended.
    End,
    /// The consumer dropped its receiver: stop reading.
    ReceiverGone,
}

/// The next piece of `response`'s body, waiting at most `wait`, or sooner
/// [`BodyPiece::ReceiverGone`] if `tx`'s receiver is dropped.
///
/// # Errors
/// [`ProviderError::Unavailable`] when nothing came in time or the
/// connection broke.
pub(super) async fn next_piece<T>(
    response: &mut reqwest::Response,
    wait: Duration,
    tx: &mpsc::Sender<T>,
) -> Result<BodyPiece, ProviderError> {
    tokio::select! {
        biased;
        () = tx.closed() => Ok(BodyPiece::ReceiverGone),
        piece = tokio::time::timeout(wait, response.chunk()) => match piece {
            Err(_) => Err(ProviderError::Unavailable {
                provider: PROVIDER,
                reason: format!("no data for {wait:?}"),
            }),
            Ok(Err(error)) => Err(unavailable(&error)),
            Ok(Ok(Some(bytes))) => Ok(BodyPiece::Bytes(bytes)),
            Ok(Ok(None)) => Ok(BodyPiece::End),
        },
    }
}

/// Runs `task` in `scope` (it ends when it is done, when it finds the
/// receiver gone, or when the scope is cancelled); outside a tokio runtime,
/// `tx` carries one error instead.
pub(super) fn spawn_or_fail<T>(
    tx: &mpsc::Sender<Result<T, ProviderError>>,
    scope: &TaskScope,
    task: impl Future<Output = ()> + Send + 'static,
) {
    match tokio::runtime::Handle::try_current() {
        Ok(_) => scope.spawn(task),
        Err(_) => {
            // The channel is new and empty, so there is room for this one.
            let _ = tx.try_send(Err(ProviderError::Inference {
                provider: PROVIDER,
                reason: "called outside a tokio runtime".to_owned(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_scrubbed_from_vendor_messages() {
        let key = Secret::new("sk-secret");
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-secret.","type":"invalid_request_error"}}"#;
        assert_eq!(
            vendor_message(body, Some(&key)),
            "Incorrect API key provided: [redacted]."
        );
        assert_eq!(vendor_message("Bad Gateway", None), "Bad Gateway");
    }
}
