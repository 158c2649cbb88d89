//! Twilio's side of the HTTP API: webhook forms checked against
//! `X-Twilio-Signature` ([`TwilioForm`]), call status callbacks
//! (`POST /twilio/status`) and outbound calls (`POST /api/calls`).

use std::num::NonZeroU32;
use std::time::{SystemTime, UNIX_EPOCH};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Form, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use voxgate_core::ids::CallSid;
use voxgate_core::persona::DEFAULT_PERSONA;
use voxgate_core::phone;
use voxgate_core::twilio_signature::{self, SIGNATURE_HEADER};
use voxgate_store::{CallRecord, CarrierStatus, StatusReport};

use crate::app::AppState;
use crate::config::OutboundConfig;
use crate::http::{ApiError, connect_twiml};
use crate::metrics;
use crate::twilio_api::{CallInstructions, NewCall};

/// A Twilio webhook's form parameters, in the order they came. When an auth
/// token is configured, extracting one checks `X-Twilio-Signature` and
/// refuses the request (403) unless Twilio signed it; without one, any
/// request is taken.
///
/// The signed URL is `VOXGATE_PUBLIC_URL` plus the request's path and
/// query (what Twilio was told to request), or, without a public URL,
/// `https://` plus the `Host` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioForm(pub Vec<(String, String)>);

impl TwilioForm {
    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

impl FromRequest<AppState> for TwilioForm {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        refuse_unsigned_in_public(state)?;
        let signed = match &state.config.twilio.auth_token {
            Some(token) => Some((
                token.clone(),
                signed_url(state, request.headers(), request.uri(), false)?,
                request
                    .headers()
                    .get(SIGNATURE_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
            )),
            None => None,
        };
        let Form(params) = Form::<Vec<(String, String)>>::from_request(request, state).await?;
        if let Some((token, url, signature)) = signed {
            let signature = signature.ok_or_else(|| {
                ApiError::Forbidden(format!("no {SIGNATURE_HEADER} header: not from Twilio"))
            })?;
            let pairs = params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
            if !twilio_signature::is_valid(token.expose(), &url, pairs, &signature) {
                tracing::warn!(url, "webhook with a bad Twilio signature refused");
                return Err(ApiError::Forbidden(format!(
                    "{SIGNATURE_HEADER} does not match {url}: not from Twilio, or \
                     VOXGATE_PUBLIC_URL is not the URL Twilio calls"
                )));
            }
        }
        Ok(TwilioForm(params))
    }
}

/// A server with a public URL takes nothing from "Twilio" without the
/// auth token to check it was Twilio.
fn refuse_unsigned_in_public(state: &AppState) -> Result<(), ApiError> {
    if state.config.public_url.is_some() && state.config.twilio.auth_token.is_none() {
        return Err(ApiError::Forbidden(
            "Twilio requests are refused: VOXGATE_PUBLIC_URL is set without \
             TWILIO_AUTH_TOKEN to check their signatures"
                .into(),
        ));
    }
    Ok(())
}

/// Checks the `X-Twilio-Signature` of a `/stream` upgrade: Twilio signs
/// the `wss://` URL it opened, with no parameters. Without an auth token
/// (and without a public URL) every upgrade is taken.
pub(crate) fn check_stream_signature(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(), ApiError> {
    refuse_unsigned_in_public(state)?;
    let Some(token) = &state.config.twilio.auth_token else {
        return Ok(());
    };
    let url = signed_url(state, headers, uri, true)?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| {
            ApiError::Forbidden(format!("no {SIGNATURE_HEADER} header: not from Twilio"))
        })?;
    if !twilio_signature::is_valid(token.expose(), &url, [], signature) {
        tracing::warn!(url, "stream upgrade with a bad Twilio signature refused");
        return Err(ApiError::Forbidden(format!(
            "{SIGNATURE_HEADER} does not match {url}: not from Twilio, or VOXGATE_PUBLIC_URL \
             is not the URL Twilio calls"
        )));
    }
    Ok(())
}

/// The URL Twilio requested, as it signed it.
/// Webhooks are signed over their `https://` URL, a stream upgrade over
/// its `wss://` one (`websocket`).
fn signed_url(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    websocket: bool,
) -> Result<String, ApiError> {
    let path = uri.path_and_query().map_or("/", |path| path.as_str());
    if let Some(public) = &state.config.public_url {
        return Ok(if websocket {
            public.ws_url(path)
        } else {
            public.http_url(path)
        });
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .filter(|host| !host.is_empty())
        .ok_or_else(|| {
            ApiError::Forbidden(
                "no Host header and no VOXGATE_PUBLIC_URL to check the Twilio signature against"
                    .into(),
            )
        })?;
    let scheme = if websocket { "wss" } else { "https" };
    Ok(format!("{scheme}://{host}{path}"))
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `POST /twilio/status`: a call status callback. Moves the call's record
/// forward (a late or repeated status changes nothing) and records
/// `CallDuration` when the call completes. 204; 400 for a status Twilio
/// does not use.
pub async fn status_callback(
    State(state): State<AppState>,
    form: TwilioForm,
) -> Result<StatusCode, ApiError> {
    let required = |name: &str| {
        form.get(name)
            .ok_or_else(|| ApiError::BadRequest(format!("no {name} in the status callback")))
    };
    let call_sid = CallSid::new(required("CallSid")?)
        .map_err(|e| ApiError::BadRequest(format!("bad CallSid: {e}")))?;
    let status: CarrierStatus = required("CallStatus")?
        .parse()
        .map_err(|e| ApiError::BadRequest(format!("{e}")))?;
    let duration_s = form
        .get("CallDuration")
        .map(|raw| {
            raw.parse::<i64>()
                .ok()
                .filter(|seconds| *seconds >= 0)
                .ok_or_else(|| {
                    ApiError::BadRequest(format!("CallDuration {raw:?} is not whole seconds"))
                })
        })
        .transpose()?;
    let report = StatusReport {
        call_sid,
        status,
        duration_s,
        from: form.get("From").map(phone::party),
        to: form.get("To").map(phone::party),
        at_ms: unix_ms(),
    };
    let applied = state.store.report_carrier_status(&report).await?;
    tracing::info!(
        call_sid = report.call_sid.as_str(),
        status = status.as_str(),
        applied,
        "call status from Twilio"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The body of `POST /api/calls`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundCallRequest {
    /// Who to call: a phone number (normalised to E.164).
    pub to: String,
    /// The caller id: a number of the Twilio account.
    pub from: String,
    /// The persona that talks; the default one when absent.
    pub persona: Option<String>,
}

/// `POST /api/calls`: places a call through Twilio that connects, once
/// answered, to `/stream` with the persona, like an inbound call's TwiML;
/// records it as an outbound call, `queued`; answers 201 with
/// `{"call_sid", "status"}`. 503 when Twilio or the public URL is not
/// configured.
pub async fn create_call(
    State(state): State<AppState>,
    body: Result<Json<OutboundCallRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let (Some(twilio), Some(public)) = (&state.twilio, &state.config.public_url) else {
        return Err(not_configured(&state));
    };
    let Json(request) = body?;
    let number = |field: &str, raw: &str| {
        phone::normalize_e164(raw).ok_or_else(|| {
            ApiError::BadRequest(format!("`{field}` is not a phone number: {raw:?}"))
        })
    };
    let to = number("to", &request.to)?;
    let from = number("from", &request.from)?;
    state.outbound.allow(&to)?;
    let persona = request
        .persona
        .unwrap_or_else(|| DEFAULT_PERSONA.to_owned());
    if persona != DEFAULT_PERSONA && state.store.get_persona(&persona).await?.is_none() {
        return Err(ApiError::BadRequest(format!(
            "no persona named {persona:?}"
        )));
    }
    let twiml = connect_twiml(
        &public.ws_url("/stream"),
        Some(from.clone()),
        Some(to.clone()),
        persona.clone(),
    );
    let call_sid = twilio
        .create_call(&NewCall {
            to: to.clone(),
            from: from.clone(),
            instructions: CallInstructions::Twiml(twiml),
            status_callback: Some(public.http_url("/twilio/status")),
        })
        .await?;
    tracing::info!(call_sid = call_sid.as_str(), "outbound call placed");
    let record = CallRecord {
        from: Some(from),
        to: Some(to),
        persona: Some(persona),
        ..CallRecord::started(call_sid.clone(), unix_ms())
    };
    // The call exists now: failing the request would invite a second one.
    if let Err(error) = state
        .store
        .record_outbound_call(&record, CarrierStatus::Queued)
        .await
    {
        tracing::error!(%error, "outbound call not recorded; the writer will retry its record");
        state.records.submit(record);
    }
    let location = format!("/api/calls/{call_sid}");
    let body = serde_json::json!({
        "call_sid": call_sid,
        "status": CarrierStatus::Queued,
    });
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response())
}

/// The limits on outbound calls: destinations and a per-minute rate.
#[derive(Debug)]
pub struct OutboundGate {
    prefixes: Vec<String>,
    rate: Option<DefaultDirectRateLimiter>,
}

impl OutboundGate {
    /// The gate `config` describes; a rate of 0 refuses every call.
    pub fn new(config: &OutboundConfig) -> Self {
        Self {
            prefixes: config.allowed_prefixes.clone(),
            rate: NonZeroU32::new(config.max_per_minute)
                .map(|per_minute| RateLimiter::direct(Quota::per_minute(per_minute))),
        }
    }

    /// Whether a call to `to` (E.164) may be placed now; counts it if so.
    fn allow(&self, to: &str) -> Result<(), ApiError> {
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| to.starts_with(p.as_str())) {
            metrics::limited("outbound_destination");
            return Err(ApiError::Forbidden(format!(
                "calls to {to} are not allowed: VOXGATE_OUTBOUND_ALLOWED_PREFIXES is {}",
                self.prefixes.join(",")
            )));
        }
        let within_rate = self.rate.as_ref().is_some_and(|rate| rate.check().is_ok());
        if !within_rate {
            metrics::limited("outbound_rate");
            return Err(ApiError::TooManyRequests(
                "outbound calls are over VOXGATE_OUTBOUND_MAX_PER_MINUTE; try again later".into(),
            ));
        }
        Ok(())
    }
}

/// Which settings outbound calls lack.
fn not_configured(state: &AppState) -> ApiError {
    let twilio = &state.config.twilio;
    let missing: Vec<&str> = [
        ("TWILIO_ACCOUNT_SID", twilio.account_sid.is_none()),
        ("TWILIO_AUTH_TOKEN", twilio.auth_token.is_none()),
        ("VOXGATE_PUBLIC_URL", state.config.public_url.is_none()),
    ]
    .into_iter()
    .filter_map(|(name, absent)| absent.then_some(name))
    .collect();
    ApiError::TwilioNotConfigured(format!(
        "outbound calls need Twilio: set {}",
        missing.join(", ")
    ))
}
