//! The middleware that applies the access model, before any handler runs.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::time::Instant;
use voxgate_core::access::{bearer_token, cookie};

use super::SESSION_COOKIE;
use crate::app::AppState;
use crate::http::{ApiError, is_websocket_upgrade};
use crate::metrics;

/// Who a request proved to be; handlers read it from the request's
/// extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The admin: the token, a console session, or no token configured.
    Admin,
    /// A browser call token, not yet used up (the handler redeems it once
    /// the call is admitted).
    CallToken(String),
}

/// Refuses requests for a `Host` that is not this server (421) and
/// requests from a browser origin that is not allowed (403), WebSocket
/// upgrades included, before they reach a handler. A request without
/// these headers is not from a browser, and goes on.
pub async fn check_origin_and_host(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if let Some(host) = headers.get(header::HOST)
        && !host.to_str().is_ok_and(|h| state.access.allowed.host(h))
    {
        metrics::access_denied("host", is_websocket_upgrade(headers));
        return ApiError::MisdirectedRequest(
            "this server does not answer for that Host; add it to VOXGATE_ALLOWED_HOSTS or \
             set VOXGATE_PUBLIC_URL"
                .into(),
        )
        .into_response();
    }
    if let Some(origin) = headers.get(header::ORIGIN)
        && !origin
            .to_str()
            .is_ok_and(|o| state.access.allowed.origin(o))
    {
        metrics::access_denied("origin", is_websocket_upgrade(headers));
        return ApiError::Forbidden(
            "requests from this browser origin are not allowed; add it to \
             VOXGATE_ALLOWED_ORIGINS"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Lets only the admin through (401 otherwise).
pub async fn require_admin(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(e) = admin(&state, request.headers()) {
        metrics::access_denied("unauthorized", is_websocket_upgrade(request.headers()));
        return e.into_response();
    }
    request.extensions_mut().insert(Credential::Admin);
    next.run(request).await
}

#[derive(Debug, Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Lets the admin through, or a request with a live browser call token in
/// its query (`?token=…`); 401 otherwise.
pub async fn require_caller(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let query = Query::<TokenQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|Query(q)| q.token);
    let credential = match (admin(&state, request.headers()), query) {
        (_, Some(token)) => {
            if !state
                .access
                .call_tokens
                .is_live(&token, Instant::now().into_std())
            {
                metrics::access_denied("call_token", is_websocket_upgrade(request.headers()));
                return ApiError::Unauthorized(
                    "the call token is unknown, used or expired; ask for a new one".into(),
                )
                .into_response();
            }
            Credential::CallToken(token)
        }
        (Ok(()), None) => Credential::Admin,
        (Err(e), None) => {
            metrics::access_denied("unauthorized", is_websocket_upgrade(request.headers()));
            return e.into_response();
        }
    };
    request.extensions_mut().insert(credential);
    next.run(request).await
}

/// Whether `headers` carry the admin's credential, or none is needed.
fn admin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(token) = &state.access.admin else {
        return Ok(());
    };
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return match value.to_str().ok().and_then(bearer_token) {
            Some(presented) if token.matches(presented) => Ok(()),
            _ => Err(ApiError::Unauthorized(
                "the Authorization header does not hold the admin token".into(),
            )),
        };
    }
    if session_id(state, headers).is_some() {
        return Ok(());
    }
    Err(ApiError::Unauthorized(
        "this needs the admin token: send `Authorization: Bearer <VOXGATE_ADMIN_TOKEN>`, or \
         log in (POST /api/login)"
            .into(),
    ))
}

/// The console's session id, if the request carries a live one.
pub(super) fn session_id(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let now = Instant::now().into_std();
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| cookie(value, SESSION_COOKIE))
        .find(|id| state.access.sessions.is_valid(id, now))
        .map(str::to_owned)
}
