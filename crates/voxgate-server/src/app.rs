//! Shared state and the one router that serves every endpoint.

use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Router, middleware};
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_store::{RecordWriter, Store};

use crate::access::{self, Access};
use crate::agent::{AgentState, ToolClient};
use crate::bus::EventBus;
use crate::config::Config;
use crate::http;
use crate::personas;
use crate::recordings;
use crate::registry::CallRegistry;
use crate::sessions::ParkedSessions;
use crate::twilio_api::TwilioApi;
use crate::twilio_routes::{self, OutboundGate};
use crate::ws;

/// Cancellation and task tracking for everything the server runs.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    /// Cancelled when the server stops for good: every connection and call ends.
    pub root: CancellationToken,
    /// Cancelled when draining starts: no new calls, `/readyz` is 503.
    pub draining: CancellationToken,
    /// Every connection and call task.
    pub tracker: TaskTracker,
}

/// Everything a handler needs, built once in `Server::bind` and passed down.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Shared>);

/// The parts of [`AppState`].
#[derive(Debug)]
pub struct Shared {
    /// The configuration in force.
    pub config: Config,
    /// The record store, read by the API.
    pub store: Store,
    /// Writes call records off the call path.
    pub records: RecordWriter,
    /// Live calls.
    pub registry: CallRegistry,
    /// Call events for monitors.
    pub bus: EventBus,
    /// Monitor sessions awaiting a reconnect.
    pub sessions: ParkedSessions,
    /// Shutdown and task tracking.
    pub lifecycle: Lifecycle,
    /// One permit per call the server may carry at once.
    pub call_slots: Arc<Semaphore>,
    /// One permit per `/events` connection the server takes at once.
    pub events_slots: Arc<Semaphore>,
    /// Renders `/metrics`.
    pub prometheus: PrometheusHandle,
    /// Open WebSocket connections on all endpoints.
    pub open_connections: Arc<AtomicUsize>,
    /// Whether calls get an agent, and its providers.
    pub agent: tokio::sync::watch::Sender<AgentState>,
    /// Who may use the server.
    pub access: Access,
    /// Limits on outbound calls.
    pub outbound: OutboundGate,
    /// Twilio's REST API (place, hang up, transfer calls), when the
    /// account SID and auth token are configured.
    pub twilio: Option<TwilioApi>,
    /// Calls personas' HTTP tools, for every call.
    pub tools: ToolClient,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The router for every endpoint on the one listener. Any other path,
/// WebSocket upgrades included, is answered 404 before any upgrade.
///
/// Every request first passes the `Host` and `Origin` checks; the admin's
/// routes then need the admin credential, and `/browser-stream` the admin's
/// or a call token ([`crate::access`]). Carriers' routes check their own
/// signatures.
pub fn router(state: AppState) -> Router {
    let admin = Router::new()
        .route("/events", get(ws::events_upgrade))
        .route("/metrics", get(http::metrics))
        .route(
            "/api/calls",
            get(http::list_calls).post(twilio_routes::create_call),
        )
        .route("/api/calls/{call_sid}", get(http::get_call))
        .route(
            "/api/calls/{call_sid}/recording",
            get(recordings::get_recording),
        )
        .route(
            "/api/personas",
            get(personas::list_personas).post(personas::create_persona),
        )
        .route(
            "/api/personas/{name}",
            get(personas::get_persona)
                .put(personas::put_persona)
                .delete(personas::delete_persona),
        )
        .route(
            "/api/call-tokens",
            post(access::create_call_token).layer(DefaultBodyLimit::max(access::MAX_BODY_BYTES)),
        )
        .route("/api/admin/reset", post(access::admin_reset))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            access::require_admin,
        ));
    let caller = Router::new()
        .route("/browser-stream", get(ws::browser_upgrade))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            access::require_caller,
        ));
    Router::new()
        .route("/twiml", post(http::twiml))
        .route("/stream", get(ws::stream_upgrade))
        .route("/healthz", get(http::healthz))
        .route("/readyz", get(http::readyz))
        .route("/twilio/status", post(twilio_routes::status_callback))
        .route(
            "/api/login",
            post(access::login).layer(DefaultBodyLimit::max(access::MAX_BODY_BYTES)),
        )
        .route("/api/logout", post(access::logout))
        .route("/api/session", get(access::session_status))
        .merge(admin)
        .merge(caller)
        .fallback(http::not_found)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            access::check_origin_and_host,
        ))
        .with_state(state)
}
