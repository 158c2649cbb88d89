//! voxgate-server: the async shell around `voxgate-core`.
//!
//! One axum listener serves carriers (`/stream`), browsers
//! (`/browser-stream`), monitors (`/events`), TwiML, health, metrics and the
//! calls and personas APIs. Every connection is a task on one
//! [`TaskTracker`] under one root [`CancellationToken`]; each call has a
//! child token, so ending a call ends everything it started, and stopping
//! the server ends every call.
//!
//! [`TaskTracker`]: tokio_util::task::TaskTracker
//! [`CancellationToken`]: tokio_util::sync::CancellationToken

pub mod access;
pub mod agent;
pub mod app;
pub mod bus;
pub mod call;
pub mod config;
pub mod http;
pub mod listener;
pub mod metrics;
pub mod personas;
pub mod recordings;
pub mod registry;
pub mod sessions;
pub mod twilio_api;
pub mod twilio_routes;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use voxgate_providers::TaskScope;
use voxgate_providers::supervisor::VendorPolicy;
use voxgate_store::{RecordWriter, Store, StoreError};

use crate::access::Access;
use crate::agent::{AgentState, ToolClient, ToolClientError};
use crate::app::{AppState, Lifecycle, Shared};
use crate::bus::EventBus;
use crate::config::Config;
use crate::registry::CallRegistry;
use crate::sessions::ParkedSessions;
use crate::twilio_api::{TwilioApi, TwilioError};
use crate::twilio_routes::OutboundGate;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The record store could not be opened or migrated.
    #[error("call store: {0}")]
    Store(#[from] StoreError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The listener failed while serving.
    #[error("serving HTTP: {0}")]
    Serve(std::io::Error),
    /// The Twilio client could not be built.
    #[error("Twilio client: {0}")]
    Twilio(#[from] TwilioError),
    /// The persona tools' HTTP client could not be built.
    #[error(transparent)]
    Tools(#[from] ToolClientError),
}

/// How long records may take to reach the store once every call has ended.
const RECORD_FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

/// A bound, ready-to-run server.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    listener: TcpListener,
    record_tasks: TaskTracker,
}

impl Server {
    /// Opens and migrates the store, then binds the listener. Fails here,
    /// before any call is taken, rather than on the first call.
    pub async fn bind(config: Config, prometheus: PrometheusHandle) -> Result<Server, ServerError> {
        let twilio = TwilioApi::from_config(&config.twilio, VendorPolicy::default())?;
        let tools = ToolClient::new(&config.tools)?;
        let store = Store::connect(&config.database_url).await?;
        store.migrate().await?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServerError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let bound = listener.local_addr().unwrap_or(config.listen);
        crate::metrics::describe();
        let record_tasks = TaskTracker::new();
        let records = RecordWriter::spawn(store.clone(), &record_tasks);
        let state = AppState::new(Shared {
            registry: CallRegistry::default(),
            bus: EventBus::new(config.events_buffer),
            sessions: ParkedSessions::new(config.ws.resume_grace, config.limits.parked_sessions),
            lifecycle: Lifecycle::default(),
            call_slots: Arc::new(Semaphore::new(config.max_concurrent_calls)),
            events_slots: Arc::new(Semaphore::new(config.limits.events_connections)),
            open_connections: Arc::new(AtomicUsize::new(0)),
            agent: tokio::sync::watch::Sender::new(AgentState::Off),
            prometheus,
            records,
            store,
            twilio,
            access: Access::new(&config, bound),
            outbound: OutboundGate::new(&config.outbound),
            tools,
            config,
        });
        Ok(Server {
            state,
            listener,
            record_tasks,
        })
    }

    /// The address the listener is bound to (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or(self.state.config.listen)
    }

    /// A handle to drain the server and to look inside it.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            state: self.state.clone(),
        }
    }

    /// Serves until drained: after [`ServerHandle::drain`], the listener keeps
    /// answering (readiness 503, new calls refused) while live calls finish,
    /// up to the drain timeout; then every remaining call is ended, records
    /// are flushed, and this returns.
    pub async fn run(self) -> Result<(), ServerError> {
        let Server {
            state,
            listener,
            record_tasks,
        } = self;
        let lifecycle = state.lifecycle.clone();
        let drain = tokio::spawn(drain_then_stop(state.clone()));
        let served = listener::serve(
            listener,
            app::router(state.clone()),
            &state.config.limits,
            lifecycle.root.clone(),
        )
        .await
        .map_err(ServerError::Serve);
        lifecycle.root.cancel();
        drain.abort();
        lifecycle.tracker.close();
        lifecycle.tracker.wait().await;
        // Flushing is the guarantee that every record is stored; the writer
        // task itself lives as long as any handle (a ServerHandle may outlive
        // this call), so it is not awaited.
        if let Err(e) = state.records.flush(RECORD_FLUSH_TIMEOUT).await {
            tracing::error!(error = %e, "call records not flushed before exit");
        }
        record_tasks.close();
        tracing::info!("server stopped");
        served
    }
}

async fn drain_then_stop(state: AppState) {
    let lifecycle = &state.lifecycle;
    lifecycle.draining.cancelled().await;
    let live = state.registry.len();
    tracing::info!(live_calls = live, timeout = ?state.config.drain_timeout, "draining");
    tokio::select! {
        () = state.registry.wait_empty() => tracing::info!("all calls ended"),
        () = tokio::time::sleep(state.config.drain_timeout) => tracing::warn!(
            remaining = state.registry.len(),
            "drain timeout: ending the remaining calls"
        ),
        () = lifecycle.root.cancelled() => {}
    }
    lifecycle.root.cancel();
}

/// Controls and inspects a running server.
#[derive(Debug, Clone)]
pub struct ServerHandle {
    state: AppState,
}

impl ServerHandle {
    /// Starts a graceful drain (what SIGTERM does).
    pub fn drain(&self) {
        self.state.lifecycle.draining.cancel();
    }

    /// Stops at once: every call ends with disposition `shutdown`.
    pub fn stop(&self) {
        self.state.lifecycle.draining.cancel();
        self.state.lifecycle.root.cancel();
    }

    /// Sets whether new calls get an agent (the binary loads the models
    /// after the listener is up, so `/readyz` can say it is loading).
    pub fn set_agent(&self, agent: AgentState) {
        tracing::info!(agent = agent.as_str(), "agent state");
        self.state.agent.send_replace(agent);
    }

    /// Whether a drain has started.
    pub fn is_draining(&self) -> bool {
        self.state.lifecycle.draining.is_cancelled()
    }

    /// Live calls.
    pub fn active_calls(&self) -> usize {
        self.state.registry.len()
    }

    /// Open WebSocket connections, all endpoints.
    pub fn open_connections(&self) -> usize {
        self.state.open_connections.load(Ordering::SeqCst)
    }

    /// Connection and call tasks still running (writers and providers'
    /// tasks included: those of calls, and server-wide ones such as
    /// ElevenLabs' spare socket).
    pub fn running_tasks(&self) -> usize {
        self.state.lifecycle.tracker.len()
    }

    /// The server's own scope, for providers' server-wide tasks (such as
    /// ElevenLabs' spare socket) and the work of building them: the drain
    /// waits for what runs in it, and stopping the server ends it.
    pub fn task_scope(&self) -> TaskScope {
        TaskScope::new(
            self.state.lifecycle.tracker.clone(),
            self.state.lifecycle.root.clone(),
        )
    }

    /// Monitor sessions parked and not yet expired.
    pub fn parked_sessions(&self) -> usize {
        self.state
            .sessions
            .len(tokio::time::Instant::now().into_std())
    }

    /// The shared state, for driving endpoint handlers directly in tests.
    pub fn app_state(&self) -> AppState {
        self.state.clone()
    }

    /// Waits until every record submitted so far is in the store.
    pub async fn flush_records(&self, deadline: Duration) -> Result<(), voxgate_store::FlushError> {
        self.state.records.flush(deadline).await
    }
}
