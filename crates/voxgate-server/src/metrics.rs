//! Metric names, labels and the small RAII helpers that keep gauges honest.
//! Everything goes through the `metrics` facade; `/metrics` renders the
//! Prometheus recorder that the binary installs.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge};
use voxgate_core::call::Disposition;

/// Calls in progress.
pub const ACTIVE_CALLS: &str = "voxgate_active_calls";
/// Open WebSocket connections, by endpoint.
pub const WS_CONNECTIONS: &str = "voxgate_websocket_connections";
/// WebSocket upgrades accepted, by endpoint.
pub const WS_ACCEPTED: &str = "voxgate_websocket_accepted_total";
/// WebSocket upgrades refused, by endpoint and reason.
pub const WS_REFUSED: &str = "voxgate_websocket_refused_total";
/// WebSocket connections closed, by endpoint and reason.
pub const WS_CLOSED: &str = "voxgate_websocket_closed_total";
/// Calls ended, by disposition.
pub const CALLS: &str = "voxgate_calls_total";
/// Malformed or out-of-place input, by endpoint and kind.
pub const BAD_INPUT: &str = "voxgate_bad_input_total";
/// Carrier events voxgate does not know, by event name.
pub const UNKNOWN_EVENTS: &str = "voxgate_carrier_unknown_events_total";
/// Events dropped for slow monitors.
pub const EVENTS_DROPPED: &str = "voxgate_monitor_events_dropped_total";
/// Caller audio or marks dropped because a call's agent was not keeping up.
pub const AGENT_INPUT_DROPPED: &str = "voxgate_agent_input_dropped_total";
/// Sentences of a reply skipped because the call's voice was far behind.
pub const TTS_SEGMENTS_DROPPED: &str = "voxgate_tts_segments_dropped_total";
/// Agent audio dropped because the carrier was not reading.
pub const PLAYBACK_DROPPED: &str = "voxgate_playback_dropped_total";
/// Seconds from the caller stopping to each stage of the reply, by stage.
pub const TURN_STAGE_SECONDS: &str = "voxgate_turn_stage_seconds";
/// Language-model tokens by kind (prompt, completion), when reported.
pub const LLM_TOKENS: &str = "voxgate_llm_tokens_total";
/// Calls of the personas' HTTP tools by outcome.
pub const TOOL_CALLS: &str = "voxgate_tool_calls_total";
/// Caller frames whose carrier timestamp ran ahead of the clock (ignored).
pub const CALLER_TIMESTAMPS_CLAMPED: &str = "voxgate_caller_timestamps_clamped_total";
/// Requests refused by the access model, by reason.
pub const ACCESS_DENIED: &str = "voxgate_access_denied_total";
/// Requests and connections refused by a rate or count limit, by limit.
pub const LIMITED: &str = "voxgate_limited_total";

/// Registers help texts, and zeroes every call counter so dashboards see
/// each disposition from the start.
pub fn describe() {
    describe_gauge!(ACTIVE_CALLS, "Calls in progress");
    describe_gauge!(WS_CONNECTIONS, "Open WebSocket connections by endpoint");
    describe_counter!(WS_ACCEPTED, "WebSocket upgrades accepted by endpoint");
    describe_counter!(
        WS_REFUSED,
        "WebSocket upgrades refused by endpoint and reason"
    );
    describe_counter!(
        WS_CLOSED,
        "WebSocket connections closed by endpoint and reason"
    );
    describe_counter!(CALLS, "Calls ended by disposition");
    describe_counter!(
        BAD_INPUT,
        "Malformed or out-of-place input by endpoint and kind"
    );
    describe_counter!(UNKNOWN_EVENTS, "Carrier events of unknown type");
    describe_counter!(EVENTS_DROPPED, "Call events dropped for slow monitors");
    describe_counter!(
        AGENT_INPUT_DROPPED,
        "Caller audio or marks dropped because the agent was not keeping up"
    );
    describe_counter!(
        TTS_SEGMENTS_DROPPED,
        "Reply sentences skipped because the call's voice was far behind"
    );
    describe_counter!(
        PLAYBACK_DROPPED,
        "Agent audio dropped because the carrier was not reading"
    );
    describe_counter!(LLM_TOKENS, "Language-model tokens by kind, when reported");
    describe_counter!(TOOL_CALLS, "Persona HTTP tool calls by outcome");
    describe_counter!(
        CALLER_TIMESTAMPS_CLAMPED,
        "Caller frames whose timestamp ran ahead of the clock and was ignored"
    );
    describe_counter!(
        ACCESS_DENIED,
        "Requests refused by the access model by reason"
    );
    describe_counter!(LIMITED, "Requests and connections refused by a limit");
    describe_histogram!(
        TURN_STAGE_SECONDS,
        metrics::Unit::Seconds,
        "Seconds from the caller stopping to each stage of the reply"
    );
    for disposition in Disposition::ALL {
        counter!(CALLS, "disposition" => disposition.as_str()).absolute(0);
    }
    gauge!(ACTIVE_CALLS).set(0.0);
}

/// The WebSocket endpoints on the one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `/stream`: Twilio Media Streams.
    Stream,
    /// `/browser-stream`: browser calls.
    BrowserStream,
    /// `/events`: monitors.
    Events,
}

impl Endpoint {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Stream => "stream",
            Endpoint::BrowserStream => "browser_stream",
            Endpoint::Events => "events",
        }
    }
}

/// Counts bad input of one kind on one endpoint.
pub fn bad_input(endpoint: Endpoint, kind: &'static str) {
    counter!(BAD_INPUT, "endpoint" => endpoint.as_str(), "kind" => kind).increment(1);
}

/// Counts a refused upgrade.
pub fn refused(endpoint: &'static str, reason: &'static str) {
    counter!(WS_REFUSED, "endpoint" => endpoint, "reason" => reason).increment(1);
}

/// Counts a request refused by the access model; a refused WebSocket
/// upgrade is also counted as refused.
pub fn access_denied(reason: &'static str, upgrade: bool) {
    counter!(ACCESS_DENIED, "reason" => reason).increment(1);
    if upgrade {
        refused("any", reason);
    }
}

/// Counts something refused by a limit.
pub fn limited(limit: &'static str) {
    counter!(LIMITED, "limit" => limit).increment(1);
}

/// Holds one open connection in the gauge and in the server's own count;
/// dropping it releases both, however the connection ended.
pub struct ConnectionGuard {
    endpoint: Endpoint,
    open: Arc<AtomicUsize>,
}

impl ConnectionGuard {
    /// Counts a newly accepted connection.
    pub fn open(endpoint: Endpoint, open: Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Ordering::SeqCst);
        counter!(WS_ACCEPTED, "endpoint" => endpoint.as_str()).increment(1);
        gauge!(WS_CONNECTIONS, "endpoint" => endpoint.as_str()).increment(1.0);
        Self { endpoint, open }
    }

    /// Counts why the connection closed.
    pub fn closed(&self, reason: &'static str) {
        counter!(WS_CLOSED, "endpoint" => self.endpoint.as_str(), "reason" => reason).increment(1);
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::SeqCst);
        gauge!(WS_CONNECTIONS, "endpoint" => self.endpoint.as_str()).decrement(1.0);
    }
}
