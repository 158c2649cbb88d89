//! One live call: registered, announced, recorded, and always ended with a
//! disposition, even if its task unwinds.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use metrics::{counter, gauge};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use voxgate_core::audio::{CallRecorder, CallerPace, PaceError, SampleRate};
use voxgate_core::call::Disposition;
use voxgate_core::events::{CallEvent, CallStatus, Carrier, JobConfig};
use voxgate_core::ids::{CallSid, StreamSid};
use voxgate_store::CallRecord;

use crate::agent::{
    AgentAction, AgentHandle, AgentSpec, AgentState, CallTransfer, spawn_agent,
    spawn_realtime_agent,
};
use crate::app::AppState;
use crate::metrics::{ACTIVE_CALLS, CALLER_TIMESTAMPS_CLAMPED, CALLS};
use crate::recordings::write_recording;
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
    /// The carrier's audio rate, both ways.
    pub audio_rate: SampleRate,
}

/// What a call's socket task must act on besides its socket.
#[derive(Debug)]
pub enum CallInput {
    /// A command from elsewhere in the server (a monitor).
    Command(CallCommand),
    /// Something the call's agent asks.
    Agent(AgentAction),
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
    /// The conversational agent, when the server has one.
    agent: Option<AgentHandle>,
    /// Both sides of the call, time-aligned; taken when the call ends.
    recorder: Option<CallRecorder>,
    /// Keeps the caller's audio within real time (plus a burst).
    pace: CallerPace,
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

/// Whether a call with this id has already ended here: its record, turns
/// and recording must never be overwritten by a new call reusing the id.
/// A store that cannot answer is not taken as a yes (calls go on while
/// the store is down); the registry remembers the latest ended calls.
pub async fn ended_before(state: &AppState, call_id: &CallSid) -> bool {
    if state.registry.recently_ended(call_id) {
        return true;
    }
    match state.store.get_call(call_id).await {
        Ok(record) => record.is_some_and(|r| r.ended_at_ms.is_some() || r.disposition.is_some()),
        Err(error) => {
            tracing::warn!(%error, "cannot check the call id against the store");
            false
        }
    }
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
            recording_path: None,
        };
        state.records.submit(record.clone());
        gauge!(ACTIVE_CALLS).increment(1.0);
        tracing::info!(carrier = start.carrier.as_str(), "call started");
        let token = parent.child_token();
        let started = tokio::time::Instant::now();
        let spec = AgentSpec {
            call_id: record.call_sid.clone(),
            carrier_rate: start.audio_rate,
            job: start.config.clone(),
            started,
            // Only a carrier call can be transferred, and only through the
            // carrier's REST API.
            transfer: match start.carrier {
                Carrier::Twilio => state
                    .twilio
                    .clone()
                    .map(|api| Arc::new(api) as Arc<dyn CallTransfer>),
                _ => None,
            },
            tools: state.tools.clone(),
        };
        let agent = match &*state.agent.borrow() {
            AgentState::Realtime(agent) => Some(spawn_realtime_agent(
                agent,
                spec,
                state.store.clone(),
                state.records.clone(),
                state.bus.clone(),
                &state.lifecycle.tracker,
                &token,
            )),
            AgentState::Ready(providers) => Some(spawn_agent(
                providers,
                spec,
                state.store.clone(),
                state.records.clone(),
                state.bus.clone(),
                &state.lifecycle.tracker,
                &token,
            )),
            _ => None,
        };
        let call = LiveCall {
            state: state.clone(),
            record,
            carrier: start.carrier,
            config: start.config,
            token,
            commands,
            agent,
            recorder: Some(CallRecorder::new(start.audio_rate)),
            pace: CallerPace::new(start.audio_rate),
            started,
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

    /// Caller audio at the carrier's rate: paced against the clock, then
    /// recorded, then heard by the agent. `at` is the carrier's timestamp
    /// of the audio, when it sends one.
    ///
    /// # Errors
    /// The peer sends audio faster than real time: the call must end; the
    /// audio reached neither the recording nor the agent.
    pub fn caller_audio(
        &mut self,
        samples: Vec<i16>,
        at: Option<std::time::Duration>,
    ) -> Result<(), PaceError> {
        let clamped = self.pace.clamped();
        let at = self.pace.admit(self.started.elapsed(), samples.len(), at)?;
        if self.pace.clamped() > clamped {
            counter!(CALLER_TIMESTAMPS_CLAMPED).increment(1);
        }
        if let Some(recorder) = self.recorder.as_mut() {
            recorder.push_caller_at(at, &samples);
        }
        if let Some(agent) = &self.agent {
            agent.caller_audio(samples);
        }
        Ok(())
    }

    /// The carrier (or browser) played agent audio up to `mark`.
    pub fn mark_played(&self, mark: String) {
        if let Some(agent) = &self.agent {
            agent.mark_played(mark);
        }
    }

    /// Records what the agent sends the caller (audio, or a clear).
    pub fn record_agent(&mut self, action: &AgentAction) {
        let Some(recorder) = self.recorder.as_mut() else {
            return;
        };
        match action {
            AgentAction::Play { samples, .. } => recorder.push_agent(samples),
            AgentAction::Clear => recorder.clear(),
            AgentAction::HangUp { .. } => {}
        }
    }

    /// Writes the recording off the call's path, then adds its location to
    /// the record. A call without any audio has no recording.
    fn save_recording(&mut self) {
        let Some(recorder) = self.recorder.take() else {
            return;
        };
        if recorder.position() == 0 && recorder.agent_end() == 0 {
            return;
        }
        let dir = self.state.config.recordings_dir.clone();
        let records = self.state.records.clone();
        let mut record = self.record.clone();
        self.state.lifecycle.tracker.spawn(
            async move {
                match write_recording(&dir, &record.call_sid, recorder).await {
                    Ok(path) => {
                        record.recording_path = Some(path.display().to_string());
                        records.submit(record);
                    }
                    Err(e) => tracing::error!(error = %e, "call recording not saved"),
                }
            }
            .in_current_span(),
        );
    }

    /// The next command for the call or action of its agent.
    pub async fn next_input(&mut self) -> Option<CallInput> {
        let agent = async {
            match self.agent.as_mut() {
                Some(agent) => agent.next_action().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some(command) = self.commands.recv() => Some(CallInput::Command(command)),
            Some(action) = agent => Some(CallInput::Agent(action)),
            else => None,
        }
    }

    /// Merges new job configuration and announces the result.
    pub fn apply_config(&mut self, update: JobConfig) {
        self.config.merge(update);
        if self.config.persona != self.record.persona {
            self.record.persona = self.config.persona.clone();
            self.state.records.submit(self.record.clone());
        }
        if let Some(agent) = &self.agent {
            agent.configure(self.config.clone());
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
        self.save_recording();
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
