//! The access model's own routes: console login and logout, browser call
//! tokens, and the admin reset.

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use voxgate_core::persona::{DEFAULT_PERSONA, is_valid_name};

use super::guard::session_id;
use super::{CallGrant, SESSION_COOKIE};
use crate::app::AppState;
use crate::http::ApiError;
use crate::metrics;
use crate::registry::CallCommand;

/// Body of `POST /api/login`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    token: String,
}

/// `POST /api/login` with `{"token": "<admin token>"}`: 204 and an
/// `HttpOnly`, `SameSite=Strict` session cookie; 401 for a wrong token.
/// Without an admin token configured there is nothing to log in to: 204,
/// no cookie.
pub async fn login(
    State(state): State<AppState>,
    body: Result<Json<Login>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(login) = body?;
    let Some(admin) = &state.access.admin else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !admin.matches(&login.token) {
        metrics::access_denied("login", false);
        return Err(ApiError::Unauthorized("that is not the admin token".into()));
    }
    let id = state.access.sessions.open(Instant::now().into_std());
    let max_age = state.access.sessions.ttl().as_secs();
    let cookie = session_cookie(&state, &id, max_age);
    tracing::info!("console login");
    Ok((StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response())
}

/// `POST /api/logout`: ends the console session the request carries, and
/// tells the browser to forget its cookie. 204 whether or not there was one.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = session_id(&state, &headers) {
        state.access.sessions.close(&id, Instant::now().into_std());
    }
    let cookie = session_cookie(&state, "", 0);
    (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
}

/// `GET /api/session`: whether an admin token is needed and whether this
/// request has a console session (for the console's login screen).
pub async fn session_status(State(state): State<AppState>, headers: HeaderMap) -> Json<Value> {
    let required = state.access.admin.is_some();
    let logged_in = !required || session_id(&state, &headers).is_some();
    Json(json!({"auth_required": required, "authenticated": logged_in}))
}

fn session_cookie(state: &AppState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.access.secure_cookies {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age}{secure}"
    );
    // Hex digits and fixed ASCII: always a valid header value.
    HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Body of `POST /api/call-tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewCallToken {
    persona: Option<String>,
}

/// `POST /api/call-tokens` (admin) with `{"persona": "<name>"}` (the
/// default persona when left out): 201 with a single-use `token` for one
/// browser call with that persona, its `expires_in_s`, and the `url` to
/// open. 404 for a persona that does not exist.
pub async fn create_call_token(
    State(state): State<AppState>,
    body: Result<Json<NewCallToken>, JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(request) = body?;
    let persona = request
        .persona
        .unwrap_or_else(|| DEFAULT_PERSONA.to_owned());
    if !is_valid_name(&persona) {
        return Err(ApiError::BadRequest(format!(
            "{:?} is not a persona name",
            persona.chars().take(64).collect::<String>()
        )));
    }
    if persona != DEFAULT_PERSONA && state.store.get_persona(&persona).await?.is_none() {
        return Err(ApiError::NotFound(format!("no persona {persona}")));
    }
    let (token, ttl) = state
        .access
        .call_tokens
        .mint(
            CallGrant {
                persona: persona.clone(),
            },
            Instant::now().into_std(),
        )
        .map_err(|e| ApiError::TooManyRequests(e.to_string()))?;
    tracing::info!(persona, "browser call token minted");
    let body = json!({
        "token": token,
        "persona": persona,
        "expires_in_s": ttl.as_secs(),
        "url": format!("/browser-stream?token={token}"),
    });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `POST /api/admin/reset` (admin): ends every live call (disposition
/// `hangup`, reason `admin reset`) and drops every parked monitor session;
/// answers with the counts.
pub async fn admin_reset(State(state): State<AppState>) -> Json<Value> {
    let calls = state.registry.broadcast(&CallCommand::Reset);
    let sessions = state.sessions.clear();
    tracing::warn!(calls, sessions, "admin reset");
    Json(json!({"calls_ended": calls, "sessions_dropped": sessions}))
}
