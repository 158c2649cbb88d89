//! One live call: registered, announced, recorded, and always ended with a
//! disposition, even if its task unwinds.

use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use voxgate_core::call::Disposition;
use voxgate_core::events::{CallEvent, CallStatus, Carrier, JobConfig};
use voxgate_core::ids::{CallSid, StreamSid};
use voxgate_store::CallRecord;

use crate::app::AppState;
use crate::metrics::{ACTIVE_CALLS, CALLS};
use crate::registry::{CallCommand, DuplicateCall, Registration};

/// What is known about a call when it starts.
#[derive(Debug, Clone)]
pub struct CallStart {
    /// The call's id.
    pub call_id: CallSid,
    /// Where it came from.
    pub carrier: Carrier,
    /// The carrier's media stream id.
    pub stream_sid: Option<StreamSid>,
    /// Caller (E.164 when a phone number).
    pub from: Option<String>,
    /// Called party (E.164 when a phone number).
    pub to: Option<String>,
    /// Initial job configuration.
    pub config: JobConfig,
}

/// A call in progress, owned by its connection task.
#[derive(Debug)]
pub struct LiveCall {
    state: AppState,
    record: CallRecord,
    carrier: Carrier,
    config: JobConfig,
    token: CancellationToken,
    commands: mpsc::Receiver<CallCommand>,
    started: tokio::time::Instant,
    ended: bool,
    // Released after `end` has published and recorded: the call leaves the
    // registry only once monitors have been told it ended.
    _registration: Registration,
    _slot: OwnedSemaphorePermit,
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl LiveCall {
    /// Registers the call, records it and announces `call.started`.
    /// `parent` is the connection's token; the call's token is its child.
    pub fn begin(
        state: &AppState,
        slot: OwnedSemaphorePermit,
        start: CallStart,
        parent: &CancellationToken,
    ) -> Result<LiveCall, DuplicateCall> {
        let (registration, commands) = state.registry.register(start.call_id.clone())?;
        let record = CallRecord {
            call_sid: start.call_id,
            stream_sid: start.stream_sid,
            from: start.from,
            to: start.to,
            persona: start.config.persona.clone(),
            started_at_ms: unix_ms(),
            ended_at_ms: None,
            duration_ms: None,
            disposition: None,
            end_reason: None,
        };
        state.records.submit(record.clone());
        gauge!(ACTIVE_CALLS).increment(1.0);
        tracing::info!(carrier = start.carrier.as_str(), "call started");
        let call = LiveCall {
            state: state.clone(),
            record,
            carrier: start.carrier,
            config: start.config,
            token: parent.child_token(),
            commands,
            started: tokio::time::Instant::now(),
            ended: false,
            _registration: registration,
            _slot: slot,
        };
        state.bus.publish(call.started_event());
        Ok(call)
    }

    /// The `call.started` event for this call.
    pub fn started_event(&self) -> CallEvent {
        CallEvent::Started {
            call_id: self.record.call_sid.clone(),
            carrier: self.carrier,
            stream_sid: self.record.stream_sid.clone(),
            from: self.record.from.clone(),
            to: self.record.to.clone(),
            config: self.config.clone(),
            started_at_ms: self.record.started_at_ms,
        }
    }

    /// The call's own cancellation token: everything the call starts hangs off it.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// The next command for this call.
    pub async fn next_command(&mut self) -> Option<CallCommand> {
        self.commands.recv().await
    }

    /// Merges new job configuration and announces the result.
    pub fn apply_config(&mut self, update: JobConfig) {
        self.config.merge(update);
        if self.config.persona != self.record.persona {
            self.record.persona = self.config.persona.clone();
            self.state.records.submit(self.record.clone());
        }
        tracing::info!(persona = ?self.config.persona, "call configuration updated");
        self.state.bus.publish(CallEvent::ConfigUpdated {
            call_id: self.record.call_sid.clone(),
            config: self.config.clone(),
        });
    }

    /// Ends the call: cancels what it started, announces `ended` while the
    /// call is still registered, writes the final record, then unregisters.
    /// Returns the event it published, for a client that owns the call.
    pub fn end(mut self, disposition: Disposition, reason: impl Into<String>) -> CallEvent {
        self.finish(disposition, reason.into())
    }

    fn finish(&mut self, disposition: Disposition, reason: String) -> CallEvent {
        self.ended = true;
        self.token.cancel();
        let duration_ms = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        self.record.ended_at_ms = Some(self.record.started_at_ms.saturating_add(duration_ms));
        self.record.duration_ms = Some(duration_ms);
        self.record.disposition = Some(disposition);
        self.record.end_reason = Some(reason.clone());
        let event = CallEvent::StatusChanged {
            call_id: self.record.call_sid.clone(),
            status: CallStatus::Ended,
            disposition: Some(disposition),
            reason: reason.clone(),
        };
        self.state.bus.publish(event.clone());
        self.state.records.submit(self.record.clone());
        gauge!(ACTIVE_CALLS).decrement(1.0);
        counter!(CALLS, "disposition" => disposition.as_str()).increment(1);
        tracing::info!(
            carrier = self.carrier.as_str(),
            disposition = disposition.as_str(),
            reason,
            duration_ms,
            "call ended"
        );
        event
    }
}

impl Drop for LiveCall {
    fn drop(&mut self) {
        if !self.ended {
            // Only a bug or a panic gets here; the record must still be kept.
            self.finish(
                Disposition::Error,
                "call task ended without a disposition".to_owned(),
            );
        }
    }
}
