//! The agent of a call in realtime mode (`VOXGATE_MODE=realtime`): one
//! OpenAI Realtime session per call listens, decides when the caller is
//! done, thinks and speaks. The agent relays the caller's audio to it as
//! μ-law, plays its audio back in marked chunks, and keeps the call's
//! record as the pipeline agent does: transcripts, interruptions and turn
//! metrics, on the same bus and in the same store.
//!
//! [`Relay`] holds every decision as plain data in, data out (time is an
//! input); the task around it only moves bytes between the call's socket,
//! the Realtime socket, the bus and the record writer.
//!
//! Barge-in: the server's VAD reports `speech_started` and (with
//! `interrupt_response`) stops generating by itself. If any of the reply's
//! audio had not been heard yet, the agent clears the carrier's buffer and
//! truncates the item to the milliseconds whose marks came back, so the
//! model forgets what the caller never heard. What the caller heard of the
//! words is estimated from the transcript so far, in proportion to the
//! audio played.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use voxgate_core::audio::g711::{ulaw_decode_into, ulaw_encode_into};
use voxgate_core::audio::{Resampler, SampleRate};
use voxgate_core::call::Disposition;
use voxgate_core::engine::{Role, TurnMetrics};
use voxgate_core::events::CallEvent;
use voxgate_core::ids::CallSid;
use voxgate_core::persona::PersonaSpec;
use voxgate_providers::ProviderError;
use voxgate_providers::cloud::openai::realtime::{
    ClientEvent, ItemKind, RealtimeClient, RealtimeEvents, RealtimeSession, ServerEvent, ServerVad,
    SessionConfig, VENDOR,
};
use voxgate_store::{RecordWriter, Store, TranscriptTurn};

use super::APOLOGY;
use super::task::{
    AgentAction, AgentHandle, AgentInput, AgentSpec, agent_channels, record_turn_metrics,
    sleep_until,
};
use super::transcript::TranscriptLog;
use crate::bus::EventBus;
use crate::personas::resolve_persona;

/// The Realtime session's audio rate both ways (G.711 μ-law).
const REALTIME_RATE: SampleRate = SampleRate::HZ_8000;
/// Caller audio is appended in batches of this many μ-law bytes (40 ms).
const APPEND_BATCH: usize = 320;
/// Longest piece of agent audio sent with one mark; bounds how precisely
/// "what the caller heard" is known.
const PLAY_CHUNK_MS: u32 = 200;
/// The mark sent after the apology.
const APOLOGY_MARK: &str = "apology";
/// How long the start-up apology may take to say.
const SAY_TIMEOUT: Duration = Duration::from_secs(30);

/// How realtime calls are set up; safe defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RealtimeSettings {
    /// The voice when the persona names none. In realtime mode a persona's
    /// voice must be a Realtime voice (`marin`, `alloy`, …).
    pub voice: String,
    /// Transcribes the caller for transcripts; `None` for no transcripts
    /// of the caller.
    pub transcription_model: Option<String>,
    /// The server's turn detection.
    pub turn_detection: ServerVad,
    /// How long the apology may play before the call is hung up anyway.
    pub apology_deadline: Duration,
}

impl Default for RealtimeSettings {
    fn default() -> Self {
        Self {
            voice: "marin".to_owned(),
            transcription_model: Some("gpt-4o-mini-transcribe".to_owned()),
            turn_detection: ServerVad::default(),
            apology_deadline: Duration::from_secs(8),
        }
    }
}

/// What every realtime call of a server shares: the client (with its
/// supervisor) and the apology said when a call's session fails.
#[derive(Clone)]
pub struct RealtimeAgent {
    client: RealtimeClient,
    settings: Arc<RealtimeSettings>,
    /// [`APOLOGY`] in the configured voice, at 8 kHz.
    apology: Arc<[i16]>,
}

impl fmt::Debug for RealtimeAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RealtimeAgent")
            .field("client", &self.client)
            .field("settings", &self.settings)
            .field("apology_samples", &self.apology.len())
            .finish()
    }
}

impl RealtimeAgent {
    /// Has the model say the apology once now, in the configured voice:
    /// when a call's session fails mid-call it cannot say it then. This
    /// also proves the key and the server work before calls are taken.
    ///
    /// # Errors
    /// The session cannot be opened, the server reports an error, or the
    /// apology comes back without audio.
    pub async fn new(
        client: RealtimeClient,
        settings: RealtimeSettings,
    ) -> Result<RealtimeAgent, ProviderError> {
        let apology = say_once(&client, &settings, APOLOGY).await?;
        Ok(RealtimeAgent {
            client,
            settings: Arc::new(settings),
            apology: apology.into(),
        })
    }
}

/// What the model says when told to say `text`, as 8 kHz PCM.
async fn say_once(
    client: &RealtimeClient,
    settings: &RealtimeSettings,
    text: &str,
) -> Result<Vec<i16>, ProviderError> {
    let RealtimeSession {
        mut sender,
        mut events,
    } = client.connect().await?;
    sender
        .send(&ClientEvent::SessionUpdate(SessionConfig {
            instructions: "You read text aloud exactly as given, and nothing else.".to_owned(),
            voice: Some(settings.voice.clone()),
            transcription_model: None,
            turn_detection: None,
            tools: Vec::new(),
        }))
        .await?;
    sender
        .send(&ClientEvent::CreateResponse {
            instructions: Some(format!("Say exactly this: \"{text}\"")),
        })
        .await?;
    let said = async {
        let mut ulaw = Vec::new();
        loop {
            let event = match events.next().await {
                Ok(event) => event,
                Err(ProviderError::Protocol { reason, .. }) => {
                    tracing::warn!(reason, "skipped a malformed realtime event");
                    continue;
                }
                Err(e) => return Err(e),
            };
            match event {
                ServerEvent::AudioDelta { audio, .. } => ulaw.extend_from_slice(&audio),
                ServerEvent::ResponseDone { .. } => return Ok(ulaw),
                ServerEvent::Error(error) if !error.is_benign() => {
                    return Err(ProviderError::Inference {
                        provider: VENDOR,
                        reason: format!("{}: {}", error.kind, error.message),
                    });
                }
                _ => {}
            }
        }
    };
    let ulaw = tokio::time::timeout(SAY_TIMEOUT, said)
        .await
        .map_err(|_| ProviderError::Unavailable {
            provider: VENDOR,
            reason: format!("no spoken answer within {SAY_TIMEOUT:?}"),
        })??;
    sender.close().await;
    if ulaw.is_empty() {
        return Err(ProviderError::Inference {
            provider: VENDOR,
            reason: "the apology came back without audio".to_owned(),
        });
    }
    let mut pcm = Vec::with_capacity(ulaw.len());
    ulaw_decode_into(&ulaw, &mut pcm);
    Ok(pcm)
}

/// Starts the realtime agent of a call on `tracker`: the counterpart of
/// [`spawn_agent`](super::spawn_agent) for `VOXGATE_MODE=realtime`. It ends
/// when `token` (the call's) is cancelled or the handle is dropped, and
/// every task it starts ends with it. Call transfer is not offered in
/// realtime mode (`spec.transfer` is unused).
pub fn spawn_realtime_agent(
    agent: &RealtimeAgent,
    spec: AgentSpec,
    store: Store,
    records: RecordWriter,
    bus: EventBus,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> AgentHandle {
    let (handle, inputs, actions) = agent_channels();
    let span = tracing::info_span!("agent", call_id = %spec.call_id, mode = "realtime");
    let shell = Shell {
        agent: agent.clone(),
        store,
        records,
        bus,
        actions,
        tracker: tracker.clone(),
        token: token.clone(),
    };
    let call = token.clone();
    tracker.spawn(
        async move {
            tokio::select! {
                () = call.cancelled() => {}
                () = shell.run(spec, inputs) => {}
            }
        }
        .instrument(span),
    );
    handle
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// The IO around a [`Relay`].
struct Shell {
    agent: RealtimeAgent,
    store: Store,
    records: RecordWriter,
    bus: EventBus,
    actions: mpsc::Sender<AgentAction>,
    tracker: TaskTracker,
    token: CancellationToken,
}

impl Shell {
    async fn run(self, spec: AgentSpec, mut inputs: mpsc::Receiver<AgentInput>) {
        let (persona, session) = tokio::join!(
            resolve_persona(&self.store, &spec.job),
            self.agent.client.connect()
        );
        tracing::info!(persona = %persona.name, "realtime agent answering");
        let apology = at_rate(&self.agent.apology, spec.carrier_rate);
        let mut relay = Relay::new(
            TranscriptLog::new(spec.call_id.clone(), spec.started.into_std()),
            spec.call_id,
            spec.carrier_rate,
            Arc::clone(&self.agent.settings),
            apology,
        );
        let (mut sender, mut events) = match session {
            Ok(session) => {
                relay.start(&persona);
                (Some(session.sender), Some(session.events))
            }
            Err(e) => {
                relay.fail(now(), &e.to_string());
                (None, None)
            }
        };
        let (persona_tx, mut personas) = mpsc::channel(4);
        'call: loop {
            while let Some(step) = relay.poll() {
                match step {
                    Step::Send(event) => {
                        let Some(socket) = sender.as_mut() else {
                            continue;
                        };
                        if let Err(e) = socket.send(&event).await {
                            relay.fail(now(), &e.to_string());
                            (sender, events) = (None, None);
                        }
                    }
                    Step::Act(action) => {
                        if self.actions.send(action).await.is_err() {
                            break 'call;
                        }
                    }
                    Step::Publish(event) => {
                        if let CallEvent::TurnMetrics { metrics, .. } = &event {
                            record_turn_metrics(metrics);
                        }
                        self.bus.publish(event);
                    }
                    Step::Store(turn) => self.records.submit_turn(turn),
                }
            }
            let deadline = relay.poll_timeout().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = self.token.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(AgentInput::CallerAudio(samples)) => relay.caller_audio(&samples),
                    Some(AgentInput::MarkPlayed(name)) => relay.mark_played(now(), &name),
                    Some(AgentInput::Configure(job)) => {
                        let (store, personas) = (self.store.clone(), persona_tx.clone());
                        let token = self.token.clone();
                        self.tracker.spawn(async move {
                            tokio::select! {
                                () = token.cancelled() => {}
                                persona = resolve_persona(&store, &job) => {
                                    let _ = personas.send(persona).await;
                                }
                            }
                        }.in_current_span());
                    }
                    None => break,
                },
                Some(persona) = personas.recv() => {
                    tracing::info!(persona = %persona.name, "persona updated");
                    relay.configure(&persona);
                }
                event = next_event(&mut events) => match event {
                    Ok(event) => relay.server_event(now(), event),
                    Err(ProviderError::Protocol { reason, .. }) => {
                        tracing::warn!(reason, "skipped a malformed realtime event");
                    }
                    Err(e) => {
                        relay.fail(now(), &e.to_string());
                        (sender, events) = (None, None);
                    }
                },
                () = sleep_until(deadline) => relay.handle_timeout(now()),
            }
        }
        // Whatever the call started stops with it.
        self.token.cancel();
    }
}

/// `samples` at 8 kHz, at `rate`.
fn at_rate(samples: &[i16], rate: SampleRate) -> Vec<i16> {
    let mut out = Vec::with_capacity(samples.len());
    match Resampler::new(REALTIME_RATE, rate) {
        Ok(mut resampler) => {
            resampler.process(samples, &mut out);
            resampler.flush(&mut out);
        }
        Err(e) => tracing::error!(error = %e, "cannot resample the apology"),
    }
    out
}

async fn next_event(events: &mut Option<RealtimeEvents>) -> Result<ServerEvent, ProviderError> {
    match events {
        Some(events) => events.next().await,
        None => std::future::pending().await,
    }
}

/// Something the relay asks of its shell.
#[derive(Debug, PartialEq)]
enum Step {
    /// Send an event on the Realtime socket.
    Send(ClientEvent),
    /// Ask the call's socket.
    Act(AgentAction),
    /// Tell monitors.
    Publish(CallEvent),
    /// Store a transcript turn.
    Store(TranscriptTurn),
}

#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Live,
    /// The session failed; hang up at the apology's mark or the deadline.
    Apologizing {
        deadline: Instant,
        reason: String,
    },
    Ended,
}

/// One assistant item's audio, from its first delta until the caller has
/// heard it all or cut it off. Sample counts are at the carrier's rate.
#[derive(Debug)]
struct Speech {
    item_id: String,
    turn: u64,
    received: usize,
    played: usize,
    /// Marks sent and not echoed yet.
    pending: usize,
    transcript: String,
    transcript_done: bool,
    audio_done: bool,
    /// When its first audio went to the carrier.
    started: Instant,
}

impl Speech {
    fn heard_all(&self) -> bool {
        self.audio_done && self.transcript_done && self.pending == 0
    }
}

/// A mark's piece of audio.
#[derive(Debug)]
struct Mark {
    item_id: String,
    samples: usize,
}

/// The caller's utterance that became item `item_id`.
#[derive(Debug)]
struct Utterance {
    turn: u64,
    started: Instant,
    stopped: Option<Instant>,
    /// The transcript so far.
    partial: String,
}

/// When each stage of one turn happened; times are measured from the
/// caller stopping (`speech_stopped`).
#[derive(Debug)]
struct Timings {
    turn: u64,
    caller_stopped: Instant,
    committed: Option<Instant>,
    transcribed: Option<Instant>,
    first_audio: Option<Instant>,
    first_sent: Option<Instant>,
}

impl Timings {
    fn metrics(&self, first_mark: Option<Instant>) -> TurnMetrics {
        let ms = |at: Option<Instant>| {
            at.map(|at| {
                u64::try_from(
                    at.saturating_duration_since(self.caller_stopped)
                        .as_millis(),
                )
                .unwrap_or(u64::MAX)
            })
        };
        TurnMetrics {
            turn: self.turn,
            end_of_turn_ms: ms(self.committed),
            stt_final_ms: ms(self.transcribed),
            // The model has no separate text stage here: its first output
            // is audio.
            llm_first_token_ms: None,
            tts_first_audio_ms: ms(self.first_audio),
            first_audio_sent_ms: ms(self.first_sent),
            first_mark_ms: ms(first_mark),
        }
    }
}

/// The sans-IO core of a realtime call: fed caller audio, marks and server
/// events with the time they happened; asks for [`Step`]s.
struct Relay {
    call_id: CallSid,
    carrier_rate: SampleRate,
    settings: Arc<RealtimeSettings>,
    /// The apology at the carrier's rate.
    apology: Vec<i16>,
    phase: Phase,
    /// Carrier rate to 8 kHz; `None` when the carrier's rate cannot be
    /// resampled (then the caller is not heard).
    inbound: Option<Resampler>,
    /// 8 kHz to the carrier's rate; `None` when it cannot be resampled.
    outbound: Option<Resampler>,
    scratch: Vec<i16>,
    /// μ-law not yet appended.
    append: Vec<u8>,
    /// The exchange in progress: 0 is the greeting, each caller utterance
    /// starts the next.
    turn: u64,
    /// Whether the model has spoken (its voice cannot change after).
    spoke: bool,
    speech: Vec<Speech>,
    /// Items cut off by the caller: their late audio is dropped.
    silenced: HashSet<String>,
    marks: HashMap<String, Mark>,
    next_mark: u64,
    utterances: HashMap<String, Utterance>,
    timings: Option<Timings>,
    /// Tool calls answered in the current response (tools are not wired
    /// yet): the model is asked to go on once the response ends.
    tool_calls_answered: bool,
    transcript: TranscriptLog,
    steps: VecDeque<Step>,
}

impl Relay {
    fn new(
        transcript: TranscriptLog,
        call_id: CallSid,
        carrier_rate: SampleRate,
        settings: Arc<RealtimeSettings>,
        apology: Vec<i16>,
    ) -> Self {
        Self {
            call_id,
            carrier_rate,
            settings,
            apology,
            phase: Phase::Live,
            inbound: Resampler::new(carrier_rate, REALTIME_RATE).ok(),
            outbound: Resampler::new(REALTIME_RATE, carrier_rate).ok(),
            scratch: Vec::new(),
            append: Vec::with_capacity(APPEND_BATCH * 2),
            turn: 0,
            spoke: false,
            speech: Vec::new(),
            silenced: HashSet::new(),
            marks: HashMap::new(),
            next_mark: 0,
            utterances: HashMap::new(),
            timings: None,
            tool_calls_answered: false,
            transcript,
            steps: VecDeque::new(),
        }
    }

    /// The next thing to do.
    fn poll(&mut self) -> Option<Step> {
        self.steps.pop_front()
    }

    /// When [`Relay::handle_timeout`] is due.
    fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Apologizing { deadline, .. } => Some(*deadline),
            Phase::Live | Phase::Ended => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Apologizing { deadline, .. } = &self.phase
            && now >= *deadline
        {
            self.hang_up();
        }
    }

    fn session(&self, persona: &PersonaSpec, voice: bool) -> SessionConfig {
        SessionConfig {
            instructions: persona.instructions.clone(),
            voice: voice.then(|| {
                persona
                    .voice
                    .clone()
                    .unwrap_or_else(|| self.settings.voice.clone())
            }),
            transcription_model: self.settings.transcription_model.clone(),
            turn_detection: Some(self.settings.turn_detection.clone()),
            tools: Vec::new(),
        }
    }

    /// The session opened: set it up and greet.
    fn start(&mut self, persona: &PersonaSpec) {
        let session = self.session(persona, true);
        self.steps
            .push_back(Step::Send(ClientEvent::SessionUpdate(session)));
        let greeting = persona.greeting.trim();
        if !greeting.is_empty() {
            self.steps
                .push_back(Step::Send(ClientEvent::CreateResponse {
                    instructions: Some(format!(
                        "Greet the caller by saying exactly: \"{greeting}\""
                    )),
                }));
        }
    }

    /// The call's persona changed: new instructions from the next response
    /// (and a new voice, if the model has not spoken yet).
    fn configure(&mut self, persona: &PersonaSpec) {
        if self.phase != Phase::Live {
            return;
        }
        let session = self.session(persona, !self.spoke);
        self.steps
            .push_back(Step::Send(ClientEvent::SessionUpdate(session)));
    }

    /// Caller audio at the carrier's rate: appended as μ-law in batches.
    fn caller_audio(&mut self, samples: &[i16]) {
        if self.phase != Phase::Live {
            return;
        }
        let Some(inbound) = self.inbound.as_mut() else {
            return;
        };
        self.scratch.clear();
        inbound.process(samples, &mut self.scratch);
        ulaw_encode_into(&self.scratch, &mut self.append);
        if self.append.len() >= APPEND_BATCH {
            let batch = std::mem::take(&mut self.append);
            self.steps
                .push_back(Step::Send(ClientEvent::AppendAudio(batch)));
        }
    }

    fn mark_played(&mut self, now: Instant, name: &str) {
        if name == APOLOGY_MARK && matches!(self.phase, Phase::Apologizing { .. }) {
            self.hang_up();
            return;
        }
        let Some(mark) = self.marks.remove(name) else {
            // A mark from before a clear, or not ours.
            return;
        };
        let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == mark.item_id) else {
            return;
        };
        speech.played += mark.samples;
        speech.pending = speech.pending.saturating_sub(1);
        let turn = speech.turn;
        if self.timings.as_ref().is_some_and(|t| t.turn == turn) {
            self.publish_timings(Some(now));
        }
        self.finish_heard(now);
    }

    fn server_event(&mut self, now: Instant, event: ServerEvent) {
        if self.phase != Phase::Live {
            return;
        }
        match event {
            ServerEvent::SpeechStarted { item_id, .. } => self.speech_started(now, item_id),
            ServerEvent::SpeechStopped { item_id, .. } => self.speech_stopped(now, item_id),
            ServerEvent::InputCommitted { .. } => {
                if let Some(timings) = self.timings.as_mut() {
                    timings.committed.get_or_insert(now);
                }
            }
            ServerEvent::InputTranscriptDelta { item_id, delta } => {
                let utterance = self.utterance(now, item_id);
                utterance.partial.push_str(&delta);
                let text = utterance.partial.clone();
                self.publish(Role::User, text, false);
            }
            ServerEvent::InputTranscriptCompleted {
                item_id,
                transcript,
            } => self.caller_transcript(now, item_id, transcript),
            ServerEvent::InputTranscriptFailed { item_id, reason } => {
                tracing::warn!(item_id, reason, "the caller's words were not transcribed");
            }
            ServerEvent::AudioDelta { item_id, audio, .. } => {
                self.agent_audio(now, item_id, &audio)
            }
            ServerEvent::AudioDone { item_id, .. } => self.audio_done(now, &item_id),
            ServerEvent::AudioTranscriptDelta { item_id, delta, .. } => {
                if let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == item_id) {
                    speech.transcript.push_str(&delta);
                }
            }
            ServerEvent::AudioTranscriptDone {
                item_id,
                transcript,
                ..
            } => {
                if let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == item_id) {
                    speech.transcript = transcript;
                    speech.transcript_done = true;
                }
                self.finish_heard(now);
            }
            ServerEvent::OutputItemDone { item, .. } => {
                if let ItemKind::FunctionCall(call) = item.kind {
                    tracing::warn!(tool = call.name, "the model called a tool; none is offered");
                    self.steps
                        .push_back(Step::Send(ClientEvent::FunctionCallOutput {
                            call_id: call.id,
                            output: format!(
                                r#"{{"error":"there is no tool named {:?}"}}"#,
                                call.name
                            ),
                        }));
                    self.tool_calls_answered = true;
                }
            }
            ServerEvent::ResponseDone { output, status, .. } => {
                tracing::debug!(?status, "response done");
                for item in &output {
                    if let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == item.id) {
                        speech.transcript_done = true;
                        if !speech.audio_done {
                            self.audio_done(now, &item.id);
                        }
                    }
                }
                self.finish_heard(now);
                if std::mem::take(&mut self.tool_calls_answered) {
                    self.steps
                        .push_back(Step::Send(ClientEvent::CreateResponse {
                            instructions: None,
                        }));
                }
            }
            ServerEvent::Error(error) if error.is_benign() => {
                tracing::debug!(code = ?error.code, message = error.message, "benign realtime error");
            }
            ServerEvent::Error(error) => {
                let reason = format!("{}: {}", error.kind, error.message);
                self.fail(now, &reason);
            }
            _ => {}
        }
    }

    fn utterance(&mut self, now: Instant, item_id: String) -> &mut Utterance {
        let turn = self.turn;
        self.utterances.entry(item_id).or_insert(Utterance {
            turn,
            started: now,
            stopped: None,
            partial: String::new(),
        })
    }

    /// The caller started speaking: whatever of the reply they have not
    /// heard is dropped, and a new exchange begins.
    fn speech_started(&mut self, now: Instant, item_id: Option<String>) {
        self.interrupt(now);
        if self.timings.is_some() {
            self.publish_timings(None);
        }
        self.turn += 1;
        if let Some(item_id) = item_id {
            let turn = self.turn;
            self.utterances.insert(
                item_id,
                Utterance {
                    turn,
                    started: now,
                    stopped: None,
                    partial: String::new(),
                },
            );
        }
    }

    fn speech_stopped(&mut self, now: Instant, item_id: Option<String>) {
        if let Some(item_id) = item_id {
            self.utterance(now, item_id).stopped = Some(now);
        }
        self.timings = Some(Timings {
            turn: self.turn,
            caller_stopped: now,
            committed: None,
            transcribed: None,
            first_audio: None,
            first_sent: None,
        });
    }

    fn caller_transcript(&mut self, now: Instant, item_id: String, text: String) {
        let utterance = self.utterance(now, item_id);
        let (turn, started, stopped) = (
            utterance.turn,
            utterance.started,
            utterance.stopped.unwrap_or(now),
        );
        if let Some(timings) = self.timings.as_mut().filter(|t| t.turn == turn) {
            timings.transcribed.get_or_insert(now);
        }
        let text = text.trim().to_owned();
        if text.is_empty() {
            return;
        }
        if let Some(stored) = self
            .transcript
            .words(turn, Role::User, &text, started, stopped)
        {
            self.steps.push_back(Step::Store(stored));
        }
        self.publish(Role::User, text, true);
    }

    /// Cuts off every reply the caller has not heard to the end: clears
    /// the carrier's buffer if audio is queued there, and truncates each to
    /// what played.
    fn interrupt(&mut self, now: Instant) {
        let (cut, kept): (Vec<Speech>, Vec<Speech>) = std::mem::take(&mut self.speech)
            .into_iter()
            .partition(|s| !(s.audio_done && s.pending == 0));
        self.speech = kept;
        if cut.is_empty() {
            return;
        }
        if cut.iter().any(|s| s.pending > 0) {
            self.steps.push_back(Step::Act(AgentAction::Clear));
        }
        self.marks
            .retain(|_, mark| !cut.iter().any(|s| s.item_id == mark.item_id));
        if let Some(outbound) = self.outbound.as_mut() {
            outbound.reset();
        }
        for speech in cut {
            let audio_end_ms = self.ms(speech.played);
            self.steps.push_back(Step::Send(ClientEvent::Truncate {
                item_id: speech.item_id.clone(),
                audio_end_ms,
            }));
            let heard = heard_share(&speech.transcript, speech.played, speech.received);
            tracing::info!(item_id = speech.item_id, audio_end_ms, "caller barged in");
            if let Some(stored) = self.transcript.interrupted(speech.turn, &heard, now) {
                self.steps.push_back(Step::Store(stored));
            }
            self.steps
                .push_back(Step::Publish(CallEvent::AgentInterrupted {
                    call_id: self.call_id.clone(),
                    turn: speech.turn,
                    heard,
                    intended: speech.transcript,
                }));
            self.silenced.insert(speech.item_id);
        }
    }

    fn ms(&self, samples: usize) -> u64 {
        (samples as u64).saturating_mul(1000) / u64::from(self.carrier_rate.hz())
    }

    /// Agent audio (μ-law at 8 kHz) for the caller, in marked pieces.
    fn agent_audio(&mut self, now: Instant, item_id: String, ulaw: &[u8]) {
        if self.silenced.contains(&item_id) {
            return;
        }
        let Some(outbound) = self.outbound.as_mut() else {
            return;
        };
        let mut pcm = Vec::with_capacity(ulaw.len());
        ulaw_decode_into(ulaw, &mut pcm);
        let mut samples = Vec::with_capacity(pcm.len() * 2);
        outbound.process(&pcm, &mut samples);
        self.spoke = true;
        let turn = self.turn;
        if !self.speech.iter().any(|s| s.item_id == item_id) {
            self.speech.push(Speech {
                item_id: item_id.clone(),
                turn,
                received: 0,
                played: 0,
                pending: 0,
                transcript: String::new(),
                transcript_done: false,
                audio_done: false,
                started: now,
            });
        }
        if let Some(timings) = self.timings.as_mut().filter(|t| t.turn == turn) {
            timings.first_audio.get_or_insert(now);
        }
        self.play(now, &item_id, samples);
    }

    fn play(&mut self, now: Instant, item_id: &str, samples: Vec<i16>) {
        if samples.is_empty() {
            return;
        }
        let chunk = self.carrier_rate.samples_per(PLAY_CHUNK_MS).max(1);
        let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == item_id) else {
            return;
        };
        for piece in samples.chunks(chunk) {
            let mark = format!("rt{}", self.next_mark);
            self.next_mark += 1;
            speech.received += piece.len();
            speech.pending += 1;
            self.marks.insert(
                mark.clone(),
                Mark {
                    item_id: item_id.to_owned(),
                    samples: piece.len(),
                },
            );
            self.steps.push_back(Step::Act(AgentAction::Play {
                samples: piece.to_vec(),
                mark,
            }));
        }
        let turn = speech.turn;
        if let Some(timings) = self.timings.as_mut().filter(|t| t.turn == turn) {
            timings.first_sent.get_or_insert(now);
        }
    }

    /// An item's audio is complete: the resampler's tail goes out too.
    fn audio_done(&mut self, now: Instant, item_id: &str) {
        let Some(speech) = self.speech.iter_mut().find(|s| s.item_id == item_id) else {
            return;
        };
        speech.audio_done = true;
        let mut tail = Vec::new();
        if let Some(outbound) = self.outbound.as_mut() {
            outbound.flush(&mut tail);
        }
        self.play(now, item_id, tail);
        self.finish_heard(now);
    }

    /// Replies the caller heard to the end become transcript.
    fn finish_heard(&mut self, now: Instant) {
        let (heard, rest): (Vec<Speech>, Vec<Speech>) = std::mem::take(&mut self.speech)
            .into_iter()
            .partition(Speech::heard_all);
        self.speech = rest;
        for speech in heard {
            let text = speech.transcript.trim().to_owned();
            if text.is_empty() {
                continue;
            }
            if let Some(stored) =
                self.transcript
                    .words(speech.turn, Role::Assistant, &text, speech.started, now)
            {
                self.steps.push_back(Step::Store(stored));
            }
            self.publish(Role::Assistant, text, true);
        }
    }

    fn publish(&mut self, role: Role, text: String, is_final: bool) {
        self.steps.push_back(Step::Publish(CallEvent::Transcript {
            call_id: self.call_id.clone(),
            role,
            text,
            is_final,
        }));
    }

    fn publish_timings(&mut self, first_mark: Option<Instant>) {
        if let Some(timings) = self.timings.take() {
            self.steps.push_back(Step::Publish(CallEvent::TurnMetrics {
                call_id: self.call_id.clone(),
                metrics: timings.metrics(first_mark),
            }));
        }
    }

    /// The session failed: stop the reply, say sorry, then hang up.
    fn fail(&mut self, now: Instant, reason: &str) {
        if self.phase != Phase::Live {
            return;
        }
        tracing::error!(reason, "the realtime session failed");
        if !self.marks.is_empty() {
            self.steps.push_back(Step::Act(AgentAction::Clear));
        }
        self.marks.clear();
        self.speech.clear();
        self.timings = None;
        self.phase = Phase::Apologizing {
            deadline: now + self.settings.apology_deadline,
            reason: reason.to_owned(),
        };
        if self.apology.is_empty() {
            self.hang_up();
            return;
        }
        self.steps.push_back(Step::Act(AgentAction::Play {
            samples: self.apology.clone(),
            mark: APOLOGY_MARK.to_owned(),
        }));
    }

    fn hang_up(&mut self) {
        let Phase::Apologizing { reason, .. } = std::mem::replace(&mut self.phase, Phase::Ended)
        else {
            return;
        };
        self.steps.push_back(Step::Act(AgentAction::HangUp {
            disposition: Disposition::Error,
            reason: format!("{VENDOR} failed: {reason}"),
        }));
    }
}

/// The leading words of `text` in proportion `played / received`: the
/// transcript streams alongside the audio, so the share of audio the
/// caller heard stands for the share of words.
fn heard_share(text: &str, played: usize, received: usize) -> String {
    if received == 0 {
        return String::new();
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    let heard = words.len() * played.min(received) / received;
    words[..heard].join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const CARRIER: SampleRate = SampleRate::HZ_8000;

    struct Clock(Instant);

    impl Clock {
        fn at(&self, ms: u64) -> Instant {
            self.0 + Duration::from_millis(ms)
        }
    }

    fn relay(rate: SampleRate) -> (Relay, Clock) {
        let t0 = Instant::now();
        let call_id = CallSid::new("CArealtime").expect("sid");
        let relay = Relay::new(
            TranscriptLog::new(call_id.clone(), t0),
            call_id,
            rate,
            Arc::new(RealtimeSettings::default()),
            vec![100; 800],
        );
        (relay, Clock(t0))
    }

    fn steps(relay: &mut Relay) -> Vec<Step> {
        std::iter::from_fn(|| relay.poll()).collect()
    }

    fn persona() -> PersonaSpec {
        PersonaSpec {
            instructions: "You book tables.".to_owned(),
            greeting: "Hello, Rosa's!".to_owned(),
            ..PersonaSpec::default()
        }
    }

    /// `ms` of agent audio (μ-law) for `item`.
    fn delta(item: &str, ms: usize) -> ServerEvent {
        ServerEvent::AudioDelta {
            response_id: "resp_1".to_owned(),
            item_id: item.to_owned(),
            audio: vec![0x10; ms * 8],
        }
    }

    fn transcript_done(item: &str, text: &str) -> ServerEvent {
        ServerEvent::AudioTranscriptDone {
            response_id: "resp_1".to_owned(),
            item_id: item.to_owned(),
            transcript: text.to_owned(),
        }
    }

    fn audio_done(item: &str) -> ServerEvent {
        ServerEvent::AudioDone {
            response_id: "resp_1".to_owned(),
            item_id: item.to_owned(),
        }
    }

    fn plays(steps: &[Step]) -> Vec<(usize, String)> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Act(AgentAction::Play { samples, mark }) => {
                    Some((samples.len(), mark.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn sets_up_the_session_and_greets() {
        let (mut relay, _) = relay(CARRIER);
        relay.start(&persona());
        let steps = steps(&mut relay);
        let [
            Step::Send(ClientEvent::SessionUpdate(session)),
            Step::Send(greet),
        ] = &steps[..]
        else {
            panic!("{steps:?}");
        };
        assert_eq!(session.instructions, "You book tables.");
        assert_eq!(session.voice.as_deref(), Some("marin"));
        assert!(session.turn_detection.is_some());
        assert_eq!(
            greet,
            &ClientEvent::CreateResponse {
                instructions: Some(
                    "Greet the caller by saying exactly: \"Hello, Rosa's!\"".to_owned()
                )
            }
        );
    }

    #[test]
    fn caller_audio_is_appended_as_mu_law_in_batches() {
        let (mut relay, _) = relay(CARRIER);
        let frame: Vec<i16> = (0..160).map(|i| (i * 50) as i16).collect();
        relay.caller_audio(&frame);
        assert!(steps(&mut relay).is_empty(), "20 ms waits for the batch");
        relay.caller_audio(&frame);
        let mut expected = Vec::new();
        ulaw_encode_into(&frame, &mut expected);
        ulaw_encode_into(&frame, &mut expected);
        assert_eq!(
            steps(&mut relay),
            vec![Step::Send(ClientEvent::AppendAudio(expected))]
        );
    }

    #[test]
    fn a_16_khz_carrier_is_resampled_both_ways() {
        let (mut relay, clock) = relay(SampleRate::HZ_16000);
        for _ in 0..10 {
            relay.caller_audio(&[0; 320]);
        }
        let appended: usize = steps(&mut relay)
            .iter()
            .map(|s| match s {
                Step::Send(ClientEvent::AppendAudio(a)) => a.len(),
                _ => 0,
            })
            .sum();
        assert!(
            (1200..=1600).contains(&appended),
            "{appended} bytes for 200 ms"
        );
        relay.server_event(clock.at(0), delta("msg_1", 100));
        relay.server_event(clock.at(0), audio_done("msg_1"));
        let played: usize = plays(&steps(&mut relay)).iter().map(|p| p.0).sum();
        assert_eq!(played, 1600, "100 ms at 16 kHz");
    }

    #[test]
    fn a_reply_plays_in_marked_pieces_and_becomes_transcript_once_heard() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(clock.at(0), delta("msg_1", 500));
        relay.server_event(clock.at(10), transcript_done("msg_1", "Hello, Rosa's!"));
        relay.server_event(clock.at(10), audio_done("msg_1"));
        let steps_sent = steps(&mut relay);
        let pieces = plays(&steps_sent);
        assert_eq!(
            pieces.iter().map(|p| p.0).collect::<Vec<_>>(),
            vec![1600, 1600, 800],
            "at most 200 ms per mark"
        );
        let marks: HashSet<&String> = pieces.iter().map(|p| &p.1).collect();
        assert_eq!(marks.len(), 3, "every mark is unique");
        for (i, (_, mark)) in pieces.iter().enumerate() {
            relay.mark_played(clock.at(200 * (i as u64 + 1)), mark);
        }
        let done = steps(&mut relay);
        assert!(
            matches!(
                &done[..],
                [Step::Store(turn), Step::Publish(CallEvent::Transcript { role: Role::Assistant, text, is_final: true, .. })]
                    if text == "Hello, Rosa's!" && turn.started_ms == 0 && turn.ended_ms == 600
            ),
            "{done:?}"
        );
    }

    #[test]
    fn barge_in_clears_truncates_to_what_played_and_drops_late_audio() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(clock.at(0), delta("msg_1", 600));
        relay.server_event(
            clock.at(0),
            ServerEvent::AudioTranscriptDelta {
                response_id: "resp_1".to_owned(),
                item_id: "msg_1".to_owned(),
                delta: "one two three four five six".to_owned(),
            },
        );
        let pieces = plays(&steps(&mut relay));
        relay.mark_played(clock.at(200), &pieces[0].1);
        assert!(steps(&mut relay).is_empty());
        relay.server_event(
            clock.at(250),
            ServerEvent::SpeechStarted {
                item_id: Some("item_2".to_owned()),
                audio_start_ms: Some(250),
            },
        );
        let cut = steps(&mut relay);
        assert_eq!(cut[0], Step::Act(AgentAction::Clear));
        assert_eq!(
            cut[1],
            Step::Send(ClientEvent::Truncate {
                item_id: "msg_1".to_owned(),
                audio_end_ms: 200
            })
        );
        assert!(matches!(&cut[2], Step::Store(turn) if turn.interrupted && turn.text == "one two"));
        assert!(matches!(
            &cut[3],
            Step::Publish(CallEvent::AgentInterrupted { turn: 0, heard, intended, .. })
                if heard == "one two" && intended == "one two three four five six"
        ));
        // The carrier echoes the cleared marks; they mean nothing now.
        relay.mark_played(clock.at(260), &pieces[1].1);
        relay.server_event(clock.at(270), delta("msg_1", 100));
        assert!(
            steps(&mut relay).is_empty(),
            "late audio of a cut reply is dropped"
        );
    }

    #[test]
    fn speech_while_nothing_is_unheard_interrupts_nothing() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(clock.at(0), delta("msg_1", 100));
        relay.server_event(clock.at(0), audio_done("msg_1"));
        let pieces = plays(&steps(&mut relay));
        relay.mark_played(clock.at(100), &pieces[0].1);
        relay.server_event(
            clock.at(150),
            ServerEvent::SpeechStarted {
                item_id: Some("item_2".to_owned()),
                audio_start_ms: None,
            },
        );
        assert!(steps(&mut relay).is_empty());
    }

    #[test]
    fn a_caller_turn_is_transcribed_stored_and_measured() {
        let (mut relay, clock) = relay(CARRIER);
        let item = Some("item_2".to_owned());
        relay.server_event(
            clock.at(1000),
            ServerEvent::SpeechStarted {
                item_id: item.clone(),
                audio_start_ms: None,
            },
        );
        relay.server_event(
            clock.at(2000),
            ServerEvent::SpeechStopped {
                item_id: item.clone(),
                audio_end_ms: None,
            },
        );
        relay.server_event(
            clock.at(2010),
            ServerEvent::InputCommitted { item_id: item },
        );
        relay.server_event(
            clock.at(2100),
            ServerEvent::InputTranscriptCompleted {
                item_id: "item_2".to_owned(),
                transcript: " A table for two. ".to_owned(),
            },
        );
        relay.server_event(clock.at(2300), delta("msg_3", 100));
        let steps_so_far = steps(&mut relay);
        assert!(matches!(
            &steps_so_far[0],
            Step::Store(turn) if turn.text == "A table for two." && turn.started_ms == 1000 && turn.ended_ms == 2000
        ));
        assert!(matches!(
            &steps_so_far[1],
            Step::Publish(CallEvent::Transcript { role: Role::User, is_final: true, text, .. }) if text == "A table for two."
        ));
        let pieces = plays(&steps_so_far);
        relay.mark_played(clock.at(2450), &pieces[0].1);
        let metrics = steps(&mut relay);
        assert_eq!(
            metrics,
            vec![Step::Publish(CallEvent::TurnMetrics {
                call_id: CallSid::new("CArealtime").expect("sid"),
                metrics: TurnMetrics {
                    turn: 1,
                    end_of_turn_ms: Some(10),
                    stt_final_ms: Some(100),
                    llm_first_token_ms: None,
                    tts_first_audio_ms: Some(300),
                    first_audio_sent_ms: Some(300),
                    first_mark_ms: Some(450),
                },
            })]
        );
    }

    #[test]
    fn a_failed_session_apologizes_then_hangs_up_with_an_error() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(clock.at(0), delta("msg_1", 400));
        steps(&mut relay);
        relay.server_event(
            clock.at(100),
            ServerEvent::Error(voxgate_providers::cloud::openai::realtime::VendorError {
                kind: "invalid_request_error".to_owned(),
                code: Some("conversation_already_has_active_response".to_owned()),
                ..Default::default()
            }),
        );
        assert!(
            steps(&mut relay).is_empty(),
            "a benign error changes nothing"
        );
        relay.fail(clock.at(200), "the socket failed");
        let apology = steps(&mut relay);
        assert_eq!(apology[0], Step::Act(AgentAction::Clear));
        assert!(matches!(
            &apology[1],
            Step::Act(AgentAction::Play { samples, mark }) if samples.len() == 800 && mark == APOLOGY_MARK
        ));
        relay.caller_audio(&[0; 640]);
        relay.server_event(clock.at(300), delta("msg_1", 100));
        assert!(
            steps(&mut relay).is_empty(),
            "nothing else happens while apologizing"
        );
        relay.mark_played(clock.at(400), APOLOGY_MARK);
        assert!(matches!(
            &steps(&mut relay)[..],
            [Step::Act(AgentAction::HangUp { disposition: Disposition::Error, reason })]
                if reason.contains("the socket failed")
        ));
    }

    #[test]
    fn an_unplayed_apology_hangs_up_at_the_deadline() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(
            clock.at(0),
            ServerEvent::Error(voxgate_providers::cloud::openai::realtime::VendorError {
                kind: "server_error".to_owned(),
                message: "boom".to_owned(),
                ..Default::default()
            }),
        );
        steps(&mut relay);
        let deadline = relay.poll_timeout().expect("a deadline");
        assert_eq!(deadline, clock.at(8000));
        relay.handle_timeout(clock.at(7999));
        assert!(steps(&mut relay).is_empty());
        relay.handle_timeout(deadline);
        assert!(matches!(
            &steps(&mut relay)[..],
            [Step::Act(AgentAction::HangUp { reason, .. })] if reason.contains("server_error: boom")
        ));
    }

    #[test]
    fn a_tool_call_is_answered_that_no_tool_exists() {
        let (mut relay, clock) = relay(CARRIER);
        relay.server_event(
            clock.at(0),
            ServerEvent::OutputItemDone {
                response_id: "resp_1".to_owned(),
                item: voxgate_providers::cloud::openai::realtime::Item {
                    id: "fc_1".to_owned(),
                    kind: ItemKind::FunctionCall(voxgate_core::engine::ToolCall {
                        id: "call_1".to_owned(),
                        name: "book".to_owned(),
                        arguments: "{}".to_owned(),
                    }),
                },
            },
        );
        relay.server_event(
            clock.at(0),
            ServerEvent::ResponseDone {
                response_id: "resp_1".to_owned(),
                status: voxgate_providers::cloud::openai::realtime::ResponseStatus::Completed,
                output: Vec::new(),
                usage: None,
            },
        );
        let sent = steps(&mut relay);
        assert!(
            matches!(&sent[0], Step::Send(ClientEvent::FunctionCallOutput { call_id, .. }) if call_id == "call_1")
        );
        assert_eq!(
            sent[1],
            Step::Send(ClientEvent::CreateResponse { instructions: None })
        );
    }

    #[test]
    fn heard_words_follow_the_audio_played() {
        assert_eq!(heard_share("a b c d", 1, 2), "a b");
        assert_eq!(heard_share("a b c d", 0, 2), "");
        assert_eq!(heard_share("a b c d", 5, 2), "a b c d");
        assert_eq!(heard_share("a b", 1, 0), "");
    }
}
