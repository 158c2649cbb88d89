//! A fake of Twilio's REST API for calls, and of Twilio's side of status
//! callbacks.
//!
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls.json` creates a call
//!   (`To`, `From`, `Twiml` or `Url`, `StatusCallback`, …) and answers 201
//!   with the call resource (`sid`, `status: "queued"`, …).
//! - `POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json` updates
//!   one: `Status=completed` (hang up), `Status=canceled`, `Twiml=`/`Url=`
//!   (redirect). An unknown or ended call is 404 with code 20404.
//! - Requests are form-encoded and need HTTP Basic auth with the account
//!   SID and auth token (else 401, code 20003). Errors have Twilio's shape:
//!   `{"code", "message", "more_info", "status"}`.
//!
//! Every request is recorded; [`FakeTwilio::fail_next`] makes the next ones
//! fail (429, 500). [`FakeTwilio::send_status_callback`] posts a signed
//! status callback the way Twilio does, to the URL the call was created
//! with.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use voxgate_core::twilio_signature::{SIGNATURE_HEADER, sign};

use super::FakeServer;

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioRequest {
    /// The request path, e.g. `/2010-04-01/Accounts/AC…/Calls.json`.
    pub path: String,
    /// The form parameters, in the order sent.
    pub form: Vec<(String, String)>,
    /// Whether the Basic credentials were the account's.
    pub authorized: bool,
}

impl TwilioRequest {
    /// The first value of form parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every value of form parameter `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.form
            .iter()
            .filter(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

/// A call as the fake knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCall {
    /// `To`.
    pub to: String,
    /// `From`.
    pub from: String,
    /// Twilio's status: `queued`, `ringing`, `in-progress`, `completed`, …
    pub status: String,
    /// The TwiML it runs: from `Twiml` at creation or the last redirect.
    pub twiml: Option<String>,
    /// `StatusCallback`, where progress is posted.
    pub status_callback: Option<String>,
}

/// A failure to answer a coming request with, whatever it asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429, code 20429; with a `Retry-After` header (seconds) when set.
    RateLimited {
        /// The `Retry-After` value.
        retry_after_s: Option<u32>,
    },
    /// 500, code 20500.
    ServerError,
}

/// How [`FakeTwilio::post_webhook`] signs a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signing {
    /// With the account's auth token over the URL, as Twilio does.
    Valid,
    /// With another token: what a forger would send.
    WithToken(String),
    /// With the account's token over another URL: a server whose public
    /// URL is not the one Twilio calls.
    ForUrl(String),
    /// No `X-Twilio-Signature` header at all.
    Unsigned,
}

/// Where public URLs really go in a test, as a reverse proxy in front of
/// the server would send them: a URL under `public_base` is requested from
/// the server at `addr`, with `public_base` replaced by `http://{addr}`.
/// Tests cannot resolve public hosts; the signature still covers the
/// public URL, as Twilio's does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// The public base URL, e.g. `https://voice.example.com/vg`.
    pub public_base: String,
    /// The server behind it.
    pub addr: SocketAddr,
}

impl Proxy {
    /// The local URL `public_url` is served at.
    ///
    /// # Panics
    /// If `public_url` is not under the public base.
    pub fn local_url(&self, public_url: &str) -> String {
        let rest = public_url
            .strip_prefix(self.public_base.trim_end_matches('/'))
            .filter(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
            .unwrap_or_else(|| panic!("{public_url:?} is not under {:?}", self.public_base));
        format!("http://{}{rest}", self.addr)
    }
}

#[derive(Debug, Default)]
struct Inner {
    requests: Vec<TwilioRequest>,
    calls: HashMap<String, FakeCall>,
    faults: VecDeque<Fault>,
    created: u64,
    callbacks_sent: u64,
}

#[derive(Debug)]
struct Shared {
    account_sid: String,
    auth_token: String,
    inner: Mutex<Inner>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake Twilio; it stops when dropped.
#[derive(Debug)]
pub struct FakeTwilio {
    server: FakeServer,
    shared: Arc<Shared>,
    client: reqwest::Client,
}

const API_VERSION: &str = "2010-04-01";

impl FakeTwilio {
    /// Serves the account `account_sid` whose auth token is `auth_token`.
    pub async fn start(account_sid: &str, auth_token: &str) -> FakeTwilio {
        let shared = Arc::new(Shared {
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            inner: Mutex::new(Inner::default()),
        });
        let router = Router::new()
            .route(
                "/2010-04-01/Accounts/{account}/Calls.json",
                post(create_call),
            )
            .route(
                "/2010-04-01/Accounts/{account}/Calls/{call}",
                post(update_call),
            )
            .route("/2010-04-01/Accounts/{account}", get(fetch_account))
            .with_state(shared.clone());
        FakeTwilio {
            server: FakeServer::serve(router).await,
            shared,
            client: reqwest::Client::new(),
        }
    }

    /// `http://127.0.0.1:PORT`: the `TWILIO_BASE_URL` to configure.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// The account SID it serves.
    pub fn account_sid(&self) -> &str {
        &self.shared.account_sid
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<TwilioRequest> {
        self.shared.lock().requests.clone()
    }

    /// The call `call_sid`, if the fake has it.
    pub fn call(&self, call_sid: &str) -> Option<FakeCall> {
        self.shared.lock().calls.get(call_sid).cloned()
    }

    /// Adds a live call (`in-progress`), as if it had come in.
    pub fn add_call(&self, call_sid: &str, from: &str, to: &str) {
        self.shared.lock().calls.insert(
            call_sid.to_owned(),
            FakeCall {
                to: to.to_owned(),
                from: from.to_owned(),
                status: "in-progress".to_owned(),
                twiml: None,
                status_callback: None,
            },
        );
    }

    /// Answers the next request with `fault` (queued after earlier faults).
    pub fn fail_next(&self, fault: Fault) {
        self.shared.lock().faults.push_back(fault);
    }

    /// Posts the status callback Twilio sends when `call_sid` reaches
    /// `status`, to the `StatusCallback` URL the call was created with,
    /// signed with the auth token. `CallDuration` is sent when given
    /// (Twilio sends it on completion). The fake's call takes the status.
    ///
    /// The request goes through `proxy`. Returns the answer's status.
    ///
    /// # Panics
    /// If the fake has no such call, or it was created without a
    /// `StatusCallback`.
    pub async fn send_status_callback(
        &self,
        proxy: &Proxy,
        call_sid: &str,
        status: &str,
        duration_s: Option<u32>,
    ) -> u16 {
        let (url, params) = {
            let mut inner = self.shared.lock();
            let sequence = inner.callbacks_sent;
            inner.callbacks_sent += 1;
            let call = inner
                .calls
                .get_mut(call_sid)
                .unwrap_or_else(|| panic!("the fake has no call {call_sid}"));
            call.status = status.to_owned();
            let url = call
                .status_callback
                .clone()
                .unwrap_or_else(|| panic!("call {call_sid} has no StatusCallback"));
            let mut params = vec![
                ("AccountSid", self.shared.account_sid.clone()),
                ("ApiVersion", API_VERSION.to_owned()),
                ("CallSid", call_sid.to_owned()),
                ("CallStatus", status.to_owned()),
                ("Called", call.to.clone()),
                ("Caller", call.from.clone()),
                ("CallbackSource", "call-progress-events".to_owned()),
                ("Direction", "outbound-api".to_owned()),
                ("From", call.from.clone()),
                ("SequenceNumber", sequence.to_string()),
                ("To", call.to.clone()),
            ];
            if let Some(duration) = duration_s {
                params.push(("CallDuration", duration.to_string()));
            }
            let params: Vec<(String, String)> = params
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect();
            (url, params)
        };
        self.post_webhook(proxy, &url, &params, Signing::Valid)
            .await
            .0
    }

    /// Posts a webhook form to the public URL `url` through `proxy`,
    /// signed as `signing` says; returns the answer's status and body.
    ///
    /// # Panics
    /// If `url` is not under the proxy's public base, or the server does
    /// not answer.
    pub async fn post_webhook(
        &self,
        proxy: &Proxy,
        url: &str,
        params: &[(String, String)],
        signing: Signing,
    ) -> (u16, String) {
        let pairs = || params.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let token = &self.shared.auth_token;
        let signature = match &signing {
            Signing::Valid => Some(sign(token, url, pairs())),
            Signing::WithToken(other) => Some(sign(other, url, pairs())),
            Signing::ForUrl(other) => Some(sign(token, other, pairs())),
            Signing::Unsigned => None,
        };
        let mut request = self.client.post(proxy.local_url(url)).form(params);
        if let Some(signature) = signature {
            request = request.header(SIGNATURE_HEADER, signature);
        }
        let response = tokio::time::timeout(crate::RECV_TIMEOUT, request.send())
            .await
            .unwrap_or_else(|_| panic!("no answer to the webhook {url} in time"))
            .unwrap_or_else(|e| panic!("posting the webhook {url}: {e}"));
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        (status, body)
    }
}

/// Twilio's error body and status.
fn error(status: StatusCode, code: u32, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "code": code,
            "message": message,
            "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
            "status": status.as_u16(),
        })),
    )
        .into_response()
}

fn fault_response(fault: Fault) -> Response {
    match fault {
        Fault::RateLimited { retry_after_s } => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, 20429, "Too Many Requests");
            if let Some(seconds) = retry_after_s {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, seconds.into());
            }
            response
        }
        Fault::ServerError => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal Server Error",
        ),
    }
}

/// `GET …/Accounts/{sid}.json`: the account, for valid credentials.
async fn fetch_account(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    let sid = account.trim_end_matches(".json");
    if !authorized(&shared, &headers, sid) {
        let body = json!({"code": 20003, "message": "Authenticate", "status": 401});
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    let body = json!({"sid": sid, "status": "active", "type": "Full"});
    (StatusCode::OK, axum::Json(body)).into_response()
}

/// Whether `headers` carry Basic credentials for the account, and the
/// path names that account.
fn authorized(shared: &Shared, headers: &HeaderMap, account: &str) -> bool {
    let Some(encoded) = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Basic "))
    else {
        return false;
    };
    let Some(decoded) = STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
    else {
        return false;
    };
    decoded.split_once(':') == Some((&shared.account_sid, &shared.auth_token))
        && account == shared.account_sid
}

/// Records the request; returns the answer to give instead of serving it:
/// a queued fault, or a failed authentication.
fn refusal(
    shared: &Shared,
    path: String,
    headers: &HeaderMap,
    account: &str,
    form: &[(String, String)],
) -> Option<Response> {
    let authorized = authorized(shared, headers, account);
    let mut inner = shared.lock();
    inner.requests.push(TwilioRequest {
        path,
        form: form.to_vec(),
        authorized,
    });
    if let Some(fault) = inner.faults.pop_front() {
        return Some(fault_response(fault));
    }
    if !authorized {
        let mut response = error(StatusCode::UNAUTHORIZED, 20003, "Authenticate");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Basic realm=\"Twilio API\""),
        );
        return Some(response);
    }
    None
}

fn first<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// The call resource as Twilio renders it (the fields a client reads).
fn resource(account: &str, sid: &str, call: &FakeCall) -> Value {
    json!({
        "sid": sid,
        "account_sid": account,
        "api_version": API_VERSION,
        "direction": "outbound-api",
        "from": call.from,
        "to": call.to,
        "status": call.status,
        "duration": null,
        "price": null,
        "parent_call_sid": null,
        "uri": format!("/{API_VERSION}/Accounts/{account}/Calls/{sid}.json"),
    })
}

async fn create_call(
    State(shared): State<Arc<Shared>>,
    Path(account): Path<String>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls.json");
    if let Some(response) = refusal(&shared, path, &headers, &account, &form) {
        return response;
    }
    let Some(to) = first(&form, "To") else {
        return error(
            StatusCode::BAD_REQUEST,
            21201,
            "No 'To' number is specified",
        );
    };
    let Some(from) = first(&form, "From") else {
        return error(
            StatusCode::BAD_REQUEST,
            21213,
            "No 'From' number is specified",
        );
    };
    let call = FakeCall {
        to: to.to_owned(),
        from: from.to_owned(),
        status: "queued".to_owned(),
        twiml: first(&form, "Twiml").map(str::to_owned),
        status_callback: first(&form, "StatusCallback").map(str::to_owned),
    };
    let mut inner = shared.lock();
    inner.created += 1;
    let sid = format!("CA{:032x}", inner.created);
    let body = resource(&account, &sid, &call);
    inner.calls.insert(sid, call);
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn update_call(
    State(shared): State<Arc<Shared>>,
    Path((account, call_file)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Response {
    let path = format!("/{API_VERSION}/Accounts/{account}/Calls/{call_file}");
    if let Some(response) = refusal(&shared, path.clone(), &headers, &account, &form) {
        return response;
    }
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            20404,
            &format!("The requested resource {path} was not found"),
        )
    };
    let Some(sid) = call_file.strip_suffix(".json") else {
        return not_found();
    };
    let mut inner = shared.lock();
    let Some(call) = inner.calls.get_mut(sid) else {
        return not_found();
    };
    let ended = !matches!(call.status.as_str(), "queued" | "ringing" | "in-progress");
    if ended {
        return not_found();
    }
    match first(&form, "Status") {
        Some("completed") => call.status = "completed".to_owned(),
        Some("canceled") if matches!(call.status.as_str(), "queued" | "ringing") => {
            call.status = "canceled".to_owned();
        }
        Some(other) => {
            // Twilio's "invalid call state" error.
            return error(
                StatusCode::BAD_REQUEST,
                21220,
                &format!("Invalid call state for Status={other}"),
            );
        }
        None => {}
    }
    if let Some(twiml) = first(&form, "Twiml") {
        call.twiml = Some(twiml.to_owned());
    }
    let body = resource(&account, sid, call);
    (StatusCode::OK, axum::Json(body)).into_response()
}
