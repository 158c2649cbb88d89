//! Twilio's REST API, the part a voice agent needs: place a call, hang one
//! up, transfer one to a phone number. Form-encoded POSTs to
//! `{base}/2010-04-01/Accounts/{AccountSid}/Calls[/{CallSid}].json` with
//! HTTP Basic auth (account SID and auth token).
//!
//! Requests run under the `twilio` [`Supervisor`]: rate limiting (429) and
//! failed connects are retried for every request; server errors (5xx),
//! timeouts and dropped answers only for hang-ups, which are idempotent. A
//! create or transfer that failed that way may still have happened, and
//! repeating it could dial twice.

use serde::Deserialize;
use voxgate_core::ids::CallSid;
use voxgate_core::phone;
use voxgate_providers::cloud::{BaseUrl, check_status};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{ProviderError, Secret};

use crate::config::TwilioConfig;
use crate::http::xml_escape;

const VENDOR: &str = "twilio";
/// Twilio's REST API version, part of every path.
const API_VERSION: &str = "2010-04-01";

/// Why a Twilio request failed. No variant carries the auth token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TwilioError {
    /// Twilio refused the request (a 4xx other than 429): a bad number, an
    /// unknown call, bad credentials. Retrying will not help.
    #[error("Twilio rejected the request (HTTP {status}{}): {message}",
        code.map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// Twilio's error code (e.g. 21211, invalid `To` number).
        code: Option<u32>,
        /// Twilio's message.
        message: String,
    },
    /// Twilio could not be reached, failed on its side, kept rate
    /// limiting, or has failed repeatedly (the circuit is open).
    #[error(transparent)]
    Unavailable(ProviderError),
    /// Twilio answered with something that is not its documented shape.
    #[error("Twilio sent an unexpected answer: {0}")]
    Protocol(String),
    /// The transfer target is not a phone number.
    #[error("{0:?} is not a phone number")]
    NotAPhoneNumber(String),
}

/// Where a new call gets its instructions once answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallInstructions {
    /// Inline TwiML (`Twiml=`).
    Twiml(String),
    /// A URL Twilio fetches TwiML from with a POST (`Url=`, `Method=POST`).
    Url(String),
}

/// A call to place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCall {
    /// Who to call, E.164.
    pub to: String,
    /// The caller id: a number of the account, E.164.
    pub from: String,
    /// What to do once answered.
    pub instructions: CallInstructions,
    /// Where Twilio posts the call's progress (`initiated`, `ringing`,
    /// `answered`, `completed`).
    pub status_callback: Option<String>,
}

/// A client for one Twilio account; cheap to clone.
#[derive(Debug, Clone)]
pub struct TwilioApi {
    http: reqwest::Client,
    base_url: BaseUrl,
    account_sid: String,
    auth_token: Secret,
    supervisor: Supervisor,
}

/// The call resource in Twilio's answers (only what voxgate reads).
#[derive(Debug, Deserialize)]
struct CallResource {
    sid: String,
}

/// Twilio's error body: `{"code": 20404, "message": "…", "status": 404, …}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    code: Option<u32>,
    message: Option<String>,
}

/// Whether a failed attempt may be repeated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Only when Twilio certainly did nothing: 429, or no connection.
    IfNotDone,
    /// Also on server errors: the request is idempotent.
    Idempotent,
}

impl TwilioApi {
    /// A client for the account in `config`, or `None` when the account SID
    /// or auth token is missing. `policy` sets retries, timeouts and the
    /// circuit breaker.
    ///
    /// # Errors
    /// The HTTP client could not be built (no TLS backend).
    pub fn from_config(
        config: &TwilioConfig,
        policy: VendorPolicy,
    ) -> Result<Option<TwilioApi>, TwilioError> {
        let (Some(account_sid), Some(auth_token)) = (&config.account_sid, &config.auth_token)
        else {
            return Ok(None);
        };
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| TwilioError::Unavailable(provider_unavailable(&e)))?;
        Ok(Some(TwilioApi {
            http,
            base_url: config.base_url.clone(),
            account_sid: account_sid.clone(),
            auth_token: auth_token.clone(),
            supervisor: Supervisor::new(VENDOR, policy),
        }))
    }

    /// Places a call; returns its SID. The call is `queued` at Twilio.
    ///
    /// # Errors
    /// [`TwilioError::Rejected`] for a bad number or account,
    /// [`TwilioError::Unavailable`] when Twilio cannot be reached.
    pub async fn create_call(&self, call: &NewCall) -> Result<CallSid, TwilioError> {
        let mut form = vec![("To", call.to.clone()), ("From", call.from.clone())];
        match &call.instructions {
            CallInstructions::Twiml(twiml) => form.push(("Twiml", twiml.clone())),
            CallInstructions::Url(url) => {
                form.push(("Url", url.clone()));
                form.push(("Method", "POST".to_owned()));
            }
        }
        if let Some(callback) = &call.status_callback {
            form.push(("StatusCallback", callback.clone()));
            form.push(("StatusCallbackMethod", "POST".to_owned()));
            for event in ["initiated", "ringing", "answered", "completed"] {
                form.push(("StatusCallbackEvent", event.to_owned()));
            }
        }
        let (status, body) = self
            .post(self.calls_url(None), &form, Retry::IfNotDone)
            .await?;
        if !(200..300).contains(&status) {
            return Err(rejected(status, &body));
        }
        let created: CallResource = serde_json::from_str(&body)
            .map_err(|e| TwilioError::Protocol(format!("a created call without a sid: {e}")))?;
        CallSid::new(created.sid)
            .map_err(|e| TwilioError::Protocol(format!("a created call with a bad sid: {e}")))
    }

    /// Hangs up `call_sid` (`Status=completed`). A call that has already
    /// ended (Twilio answers 404, code 20404) counts as hung up.
    ///
    /// # Errors
    /// [`TwilioError::Rejected`] for any other refusal,
    /// [`TwilioError::Unavailable`] when Twilio cannot be reached.
    pub async fn hang_up(&self, call_sid: &CallSid) -> Result<(), TwilioError> {
        let form = [("Status", "completed".to_owned())];
        let (status, body) = self
            .post(self.calls_url(Some(call_sid)), &form, Retry::Idempotent)
            .await?;
        match status {
            200..=299 => Ok(()),
            404 => {
                tracing::debug!(call_sid = call_sid.as_str(), "call already ended");
                Ok(())
            }
            _ => Err(rejected(status, &body)),
        }
    }

    /// Transfers `call_sid` to the phone number `to` by replacing its TwiML
    /// with `<Dial>`. This ends the call's media stream; Twilio then dials
    /// the number and bridges the caller to it.
    ///
    /// # Errors
    /// [`TwilioError::NotAPhoneNumber`] when `to` is not one (E.164 or a
    /// spelling [`phone::normalize_e164`] accepts), otherwise as
    /// [`TwilioApi::hang_up`], except that an ended call is an error.
    pub async fn transfer(&self, call_sid: &CallSid, to: &str) -> Result<(), TwilioError> {
        let number =
            phone::normalize_e164(to).ok_or_else(|| TwilioError::NotAPhoneNumber(to.to_owned()))?;
        let form = [("Twiml", dial_twiml(&number))];
        let (status, body) = self
            .post(self.calls_url(Some(call_sid)), &form, Retry::IfNotDone)
            .await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(rejected(status, &body))
        }
    }

    /// The account whose calls it controls.
    pub fn account_sid(&self) -> &str {
        &self.account_sid
    }

    /// Fetches the account: the credentials work and Twilio answers (for
    /// `voxgate check`).
    ///
    /// # Errors
    /// Twilio refused the credentials, or could not be reached.
    pub async fn check(&self) -> Result<(), TwilioError> {
        let url = self.base_url.join(&format!(
            "/{API_VERSION}/Accounts/{}.json",
            path_segment(&self.account_sid)
        ));
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
            .timeout(self.supervisor.policy().connect_timeout)
            .send()
            .await
            .map_err(|e| TwilioError::Unavailable(provider_unavailable(&e)))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(rejected(status, &body))
        }
    }

    fn calls_url(&self, call_sid: Option<&CallSid>) -> String {
        let account = &self.account_sid;
        let path = match call_sid {
            None => format!("/{API_VERSION}/Accounts/{account}/Calls.json"),
            Some(sid) => format!(
                "/{API_VERSION}/Accounts/{account}/Calls/{}.json",
                path_segment(sid.as_str())
            ),
        };
        self.base_url.join(&path)
    }

    /// POSTs `form` under the supervisor and returns Twilio's status and
    /// body for the caller to read, except for failures: those that say to
    /// try again are retried as `retry` allows, and what remains is
    /// [`TwilioError::Unavailable`].
    async fn post(
        &self,
        url: String,
        form: &[(&str, String)],
        retry: Retry,
    ) -> Result<(u16, String), TwilioError> {
        // reqwest's timeout must fire before the supervisor's, which is
        // always retried: reqwest's can be classified.
        let timeout = self.supervisor.policy().connect_timeout.mul_f64(0.9);
        let attempt = |_| {
            let request = self
                .http
                .post(&url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose()))
                .timeout(timeout)
                .form(form);
            async move {
                let response = request.send().await.map_err(|e| {
                    if e.is_connect() || retry == Retry::Idempotent {
                        provider_unavailable(&e)
                    } else {
                        not_retried(format!(
                            "no answer, the request may have been done: {}",
                            without_url(&e)
                        ))
                    }
                })?;
                let status = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let body = response.text().await.map_err(|e| match retry {
                    Retry::Idempotent => provider_unavailable(&e),
                    Retry::IfNotDone => {
                        not_retried(format!("the answer was cut: {}", without_url(&e)))
                    }
                })?;
                if status == 429 || (retry == Retry::Idempotent && status >= 500) {
                    check_status(VENDOR, status, retry_after.as_deref(), &body)?;
                } else if status >= 500 {
                    return Err(not_retried(format!("HTTP {status}: {}", short(&body))));
                }
                Ok((status, body))
            }
        };
        let ((status, body), _permit) =
            self.supervisor
                .run(attempt)
                .await
                .map_err(|error| match error {
                    ProviderError::Protocol { reason, .. } => {
                        TwilioError::Unavailable(ProviderError::Unavailable {
                            provider: VENDOR,
                            reason,
                        })
                    }
                    other => TwilioError::Unavailable(other),
                })?;
        Ok((status, body))
    }
}

/// A failure of Twilio's that must not be retried because the request may
/// have been carried out. The supervisor counts `Protocol` errors against
/// the vendor without retrying them, so these travel as `Protocol` and
/// [`TwilioApi::post`] turns them back into `Unavailable`.
fn not_retried(reason: String) -> ProviderError {
    ProviderError::Protocol {
        provider: VENDOR,
        reason,
    }
}

/// TwiML that dials `number` (E.164), replacing whatever the call was doing.
pub fn dial_twiml(number: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial>{}</Dial></Response>"#,
        xml_escape(number)
    )
}

/// A 4xx answer as an error, with Twilio's code and message when its body
/// has them.
fn rejected(status: u16, body: &str) -> TwilioError {
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(error) => TwilioError::Rejected {
            status,
            code: error.code,
            message: error.message.unwrap_or_else(|| short(body)),
        },
        Err(_) => TwilioError::Rejected {
            status,
            code: None,
            message: short(body),
        },
    }
}

fn short(body: &str) -> String {
    body.trim().chars().take(300).collect()
}

fn provider_unavailable(e: &reqwest::Error) -> ProviderError {
    ProviderError::Unavailable {
        provider: VENDOR,
        reason: without_url(e),
    }
}

/// The error's text without the request URL; the URL holds no secret, but
/// an error message has no use for it.
fn without_url(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    if let Some(url) = e.url() {
        text = text.replace(url.as_str(), "Twilio");
    }
    text
}

/// `raw` percent-encoded for one URL path segment: call SIDs are opaque
/// and may hold `/`, `?` or `#`.
fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The agent's `transfer_call`: Twilio moves the call to the number with
/// `<Dial>`.
impl crate::agent::CallTransfer for TwilioApi {
    fn transfer<'a>(
        &'a self,
        call: &'a CallSid,
        to: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            TwilioApi::transfer(self, call, to)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dial_twiml_escapes_and_dials() {
        assert_eq!(
            dial_twiml("+14155550100"),
            r#"<?xml version="1.0" encoding="UTF-8"?><Response><Dial>+14155550100</Dial></Response>"#
        );
        assert!(dial_twiml("<&>").contains("<Dial>&lt;&amp;&gt;</Dial>"));
    }

    #[test]
    fn call_sids_are_encoded_as_one_path_segment() {
        assert_eq!(path_segment("CA0123abc"), "CA0123abc");
        assert_eq!(path_segment("a/b?c#d%"), "a%2Fb%3Fc%23d%25");
    }

    #[test]
    fn rejections_carry_twilios_code_and_message() {
        let body = r#"{"code": 21211, "message": "Invalid 'To' Phone Number", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#;
        let error = rejected(400, body);
        assert_eq!(
            error.to_string(),
            "Twilio rejected the request (HTTP 400, code 21211): Invalid 'To' Phone Number"
        );
        let html = rejected(403, "<html>denied</html>");
        assert_eq!(
            html.to_string(),
            "Twilio rejected the request (HTTP 403): <html>denied</html>"
        );
    }

    #[test]
    fn a_client_needs_both_credentials() {
        let mut config = TwilioConfig {
            account_sid: Some("AC1".to_owned()),
            ..TwilioConfig::default()
        };
        let built = TwilioApi::from_config(&config, VendorPolicy::default()).expect("builds");
        assert!(built.is_none());
        config.auth_token = Some(Secret::new("hunter2"));
        let api = TwilioApi::from_config(&config, VendorPolicy::default())
            .expect("builds")
            .expect("configured");
        assert!(!format!("{api:?}").contains("hunter2"));
        assert_eq!(
            api.calls_url(None),
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json"
        );
    }
}
