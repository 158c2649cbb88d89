//! Plain HTTP routes: TwiML, health, metrics and the calls API. Errors are
//! mapped to responses in one place, [`ApiError`], for these routes and for
//! the personas API in [`crate::personas`] and the Twilio routes in
//! [`crate::twilio_routes`].

use std::collections::HashMap;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use voxgate_core::ids::CallSid;
use voxgate_core::phone;
use voxgate_store::{CallRecord, CarrierProgress, StoreError, TranscriptTurn};

use crate::agent::AgentState;
use crate::app::AppState;
use crate::metrics;
use crate::recordings;
use crate::twilio_api::TwilioError;
use crate::twilio_routes::TwilioForm;

/// An API failure, rendered as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// The client asked for something malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The JSON body could not be read: not JSON, no JSON content type, or
    /// too large. Answered with the rejection's own status, in our shape
    /// rather than axum's plain text.
    #[error("{}", .0.body_text())]
    Body(#[from] JsonRejection),
    /// A form body could not be read (webhooks), answered like [`ApiError::Body`].
    #[error("{}", .0.body_text())]
    Form(#[from] FormRejection),
    /// The request is not allowed: a webhook Twilio did not sign.
    #[error("{0}")]
    Forbidden(String),
    /// The request lacks the credential the route needs.
    #[error("{0}")]
    Unauthorized(String),
    /// The request's `Host` is not this server (DNS rebinding).
    #[error("{0}")]
    MisdirectedRequest(String),
    /// Over a rate or count limit.
    #[error("{0}")]
    TooManyRequests(String),
    /// No such resource.
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists.
    #[error("{0}")]
    Conflict(String),
    /// Storing one more persona would pass the limit of `0`. Answered 409
    /// `too_many_personas`: the request conflicts with the store's state,
    /// and deleting a persona resolves it; the persona itself is fine, so
    /// not 422.
    #[error("at most {0} personas may be stored; delete one first")]
    TooManyPersonas(usize),
    /// A well-formed persona whose values are unacceptable; one message per
    /// problem.
    #[error("the persona is invalid: {}", .problems.join("; "))]
    InvalidPersona {
        /// What is wrong, one message each.
        problems: Vec<String>,
    },
    /// The record store could not answer.
    #[error("the store is unavailable")]
    Store(#[from] StoreError),
    /// The request needs Twilio settings the server does not have.
    #[error("{0}")]
    TwilioNotConfigured(String),
    /// Twilio refused or failed a request made on the client's behalf.
    #[error("{0}")]
    Twilio(#[from] TwilioError),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Body(rejection) => body_rejection(rejection.status()),
            ApiError::Form(rejection) => body_rejection(rejection.status()),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::MisdirectedRequest(_) => {
                (StatusCode::MISDIRECTED_REQUEST, "misdirected_request")
            }
            ApiError::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::TooManyPersonas(_) => (StatusCode::CONFLICT, "too_many_personas"),
            ApiError::InvalidPersona { .. } => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_persona")
            }
            ApiError::Store(e) => {
                tracing::error!(error = %e, "store query failed");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable")
            }
            ApiError::TwilioNotConfigured(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "twilio_not_configured")
            }
            ApiError::Twilio(e) => {
                tracing::warn!(error = %e, "Twilio request failed");
                match e {
                    TwilioError::Unavailable(_) => {
                        (StatusCode::SERVICE_UNAVAILABLE, "twilio_unavailable")
                    }
                    TwilioError::NotAPhoneNumber(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                    _ => (StatusCode::BAD_GATEWAY, "twilio_rejected"),
                }
            }
        };
        let mut error = serde_json::json!({"code": code, "message": self.to_string()});
        if let ApiError::InvalidPersona { problems } = &self {
            error["problems"] = serde_json::json!(problems);
        }
        let mut response = (status, Json(serde_json::json!({ "error": error }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The status and code for a body that could not be read.
fn body_rejection(status: StatusCode) -> (StatusCode, &'static str) {
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        _ => "bad_request",
    };
    (status, code)
}

/// Query of `POST /twiml`: which persona answers this number.
#[derive(Debug, Deserialize)]
pub struct TwimlQuery {
    persona: Option<String>,
}

/// The persona used when the webhook names none.
pub use voxgate_core::persona::DEFAULT_PERSONA;

/// `POST /twiml`: connects the call to `/stream`, passing caller, callee
/// and persona as stream parameters (Twilio drops query strings on stream
/// URLs). With a Twilio auth token configured, only signed requests are
/// answered (see [`TwilioForm`]).
pub async fn twiml(
    State(state): State<AppState>,
    Query(query): Query<TwimlQuery>,
    headers: HeaderMap,
    form: TwilioForm,
) -> Result<Response, ApiError> {
    let stream_url = match &state.config.public_url {
        Some(public) => public.ws_url("/stream"),
        None => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| !h.is_empty() && !h.contains(['/', '"', '<', '>', ' ']))
                .ok_or_else(|| {
                    ApiError::BadRequest(
                        "no Host header and no VOXGATE_PUBLIC_URL to build the stream URL".into(),
                    )
                })?;
            // Twilio accepts only wss:// stream URLs.
            format!("wss://{host}/stream")
        }
    };
    let xml = connect_twiml(
        &stream_url,
        form.get("From").map(phone::party),
        form.get("To").map(phone::party),
        query.persona.unwrap_or_else(|| DEFAULT_PERSONA.to_owned()),
    );
    Ok(([(header::CONTENT_TYPE, "text/xml; charset=utf-8")], xml).into_response())
}

/// TwiML that connects a call to the media stream at `stream_url`, with
/// caller, callee and persona as stream parameters: for inbound calls
/// (`/twiml`) and outbound ones (`POST /api/calls`) alike.
pub(crate) fn connect_twiml(
    stream_url: &str,
    from: Option<String>,
    to: Option<String>,
    persona: String,
) -> String {
    let params = [("from", from), ("to", to), ("persona", Some(persona))];
    let mut xml = String::from(r#"<?xml version="1.0" encoding="UTF-8"?><Response><Connect>"#);
    xml.push_str(&format!(r#"<Stream url="{}">"#, xml_escape(stream_url)));
    for (name, value) in params {
        if let Some(value) = value {
            xml.push_str(&format!(
                r#"<Parameter name="{name}" value="{}"/>"#,
                xml_escape(&value)
            ));
        }
    }
    xml.push_str("</Stream></Connect></Response>");
    xml
}

/// `raw` escaped for XML text and attribute values.
pub(crate) fn xml_escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// `GET /healthz`: the process is alive.
pub async fn healthz() -> &'static str {
    "ok"
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    draining: bool,
    /// `off`, `loading`, `ready` or `failed`.
    agent: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    agent_error: Option<String>,
    active_calls: usize,
}

/// `GET /readyz`: 200 while the server takes calls; 503 while the agent's
/// models load (or failed to) and once it drains.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let draining = state.lifecycle.draining.is_cancelled();
    let agent = state.agent.borrow().clone();
    let ready = !draining && agent.takes_calls();
    let body = Readiness {
        ready,
        draining,
        agent: agent.as_str(),
        agent_error: match agent {
            AgentState::Failed(reason) => Some(reason),
            _ => None,
        },
        active_calls: state.registry.len(),
    };
    let status = if !ready {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

/// A call record as the API shows it: the stored fields plus RFC 3339 times.
#[derive(Debug, Serialize)]
pub struct CallView {
    #[serde(flatten)]
    record: CallRecord,
    started_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    ended_at: Option<String>,
}

impl From<CallRecord> for CallView {
    fn from(record: CallRecord) -> Self {
        Self {
            started_at: rfc3339(record.started_at_ms),
            ended_at: record.ended_at_ms.map(rfc3339),
            record,
        }
    }
}

fn rfc3339(unix_ms: i64) -> String {
    let ms = u64::try_from(unix_ms).unwrap_or(0);
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(time).to_string()
}

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

/// One page of a list: `?limit=` (1 to 500, default 50) items from
/// `?offset=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Page {
    pub(crate) limit: u32,
    pub(crate) offset: u32,
}

impl Page {
    pub(crate) fn from_query(query: &HashMap<String, String>) -> Result<Page, ApiError> {
        let number = |name: &str, default: u32| -> Result<u32, ApiError> {
            match query.get(name) {
                None => Ok(default),
                Some(raw) => raw.parse().map_err(|_| {
                    let raw: String = raw.chars().take(32).collect();
                    ApiError::BadRequest(format!("`{name}` must be a whole number, got {raw:?}"))
                }),
            }
        };
        let limit = number("limit", DEFAULT_PAGE)?;
        let offset = number("offset", 0)?;
        if limit == 0 || limit > MAX_PAGE {
            return Err(ApiError::BadRequest(format!(
                "`limit` must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(Page { limit, offset })
    }
}

/// `GET /api/calls?limit=&offset=`: newest first.
pub async fn list_calls(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Page { limit, offset } = Page::from_query(&query)?;
    let calls: Vec<CallView> = state
        .store
        .list_calls(limit, offset)
        .await?
        .into_iter()
        .map(CallView::from)
        .collect();
    Ok(Json(
        serde_json::json!({"calls": calls, "limit": limit, "offset": offset}),
    ))
}

/// One call as `GET /api/calls/{call_sid}` shows it: the record, the
/// carrier's side of it (direction, status), its transcript, and where to
/// fetch its recording.
#[derive(Debug, Serialize)]
pub struct CallDetail {
    #[serde(flatten)]
    call: CallView,
    #[serde(flatten)]
    carrier: CarrierProgress,
    /// Every stored turn, in order.
    transcript: Vec<TranscriptTurn>,
    /// Set only when the recording file is there to be served.
    #[serde(skip_serializing_if = "Option::is_none")]
    recording_url: Option<String>,
}

/// The record of the call `call_sid` names, or why there is none.
pub(crate) async fn call_record(state: &AppState, call_sid: &str) -> Result<CallRecord, ApiError> {
    let id = CallSid::new(call_sid.to_owned())
        .map_err(|e| ApiError::BadRequest(format!("bad call id: {e}")))?;
    state
        .store
        .get_call(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no call {call_sid}")))
}

/// `GET /api/calls/{call_sid}`: the record, transcript and recording URL.
pub async fn get_call(
    State(state): State<AppState>,
    Path(call_sid): Path<String>,
) -> Result<Json<CallDetail>, ApiError> {
    let record = call_record(&state, &call_sid).await?;
    let transcript = state.store.transcript(&record.call_sid).await?;
    let carrier = state
        .store
        .carrier_progress(&record.call_sid)
        .await?
        .unwrap_or_default();
    let recording_url = match &record.recording_path {
        Some(stored) => recordings::resolve(&state.config.recordings_dir, stored)
            .await
            .map(|_| recordings::url(&record.call_sid)),
        None => None,
    };
    Ok(Json(CallDetail {
        call: CallView::from(record),
        carrier,
        transcript,
        recording_url,
    }))
}

/// Whether the request asks for a WebSocket upgrade.
pub(crate) fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|h| h.to_str().ok())
        .is_some_and(|h| h.eq_ignore_ascii_case("websocket"))
}

/// Everything else: 404, and WebSocket upgrades to unknown paths are
/// counted as refused, never accepted.
pub async fn not_found(headers: HeaderMap) -> Response {
    if is_websocket_upgrade(&headers) {
        metrics::refused("unknown", "not_found");
    }
    ApiError::NotFound("no such endpoint".into()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_xml_attribute_values() {
        assert_eq!(xml_escape(r#"a&b<c>"d'"#), "a&amp;b&lt;c&gt;&quot;d&apos;");
    }

    #[test]
    fn formats_record_times() {
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
