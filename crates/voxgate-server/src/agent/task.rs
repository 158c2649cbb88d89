//! The agent task of one call: feeds the engine caller audio, VAD scores,
//! provider results and marks; carries out what the engine asks.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use voxgate_core::audio::{Framer, Resampler, SampleRate};
use voxgate_core::call::Disposition;
use voxgate_core::engine::{
    CallEngine, EngineConfig, EngineEvent, HangupReason, INPUT_RATE_HZ, Input, Output, Persona,
    Role, SegmentId, Stage, ToolCall, TurnId, TurnMetrics,
};
use voxgate_core::events::{CallEvent, JobConfig};
use voxgate_core::ids::CallSid;
use voxgate_core::persona::{HttpToolSpec, PersonaSpec};
use voxgate_providers::{LlmChunk, LlmRequest, SttStream, TaskScope, VadStream};
use voxgate_store::{RecordWriter, Store};

use super::Providers;
use super::tools::ToolClient;
use super::transcript::TranscriptLog;
use crate::bus::EventBus;
use crate::metrics::{AGENT_INPUT_DROPPED, LLM_TOKENS, TTS_SEGMENTS_DROPPED, TURN_STAGE_SECONDS};
use crate::personas::resolve_persona;

/// What the agent asks of the call's socket.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentAction {
    /// Play `samples` (at the carrier's rate), then send the mark `mark`.
    Play {
        /// Audio at the carrier's rate.
        samples: Vec<i16>,
        /// The mark to send after it.
        mark: String,
    },
    /// Drop whatever the carrier has queued for playback (barge-in).
    Clear,
    /// The agent ends the call.
    HangUp {
        /// How the call ended.
        disposition: Disposition,
        /// Why, for the record.
        reason: String,
    },
}

/// What the socket tells the agent.
#[derive(Debug)]
pub(super) enum AgentInput {
    CallerAudio(Vec<i16>),
    MarkPlayed(String),
    Configure(JobConfig),
}

/// A handle for the socket and the agent's ends of it: the inputs it
/// hears and the sender of its actions (for agents other than the
/// pipeline's, such as the realtime one).
pub(super) fn agent_channels() -> (
    AgentHandle,
    mpsc::Receiver<AgentInput>,
    mpsc::Sender<AgentAction>,
) {
    let (input, inputs) = mpsc::channel(INPUT_QUEUE);
    let (actions_tx, actions) = mpsc::channel(ACTION_QUEUE);
    (AgentHandle { input, actions }, inputs, actions_tx)
}

/// The socket's side of a call's agent.
#[derive(Debug)]
pub struct AgentHandle {
    input: mpsc::Sender<AgentInput>,
    actions: mpsc::Receiver<AgentAction>,
}

/// Inputs queued for the agent before new ones are dropped (about 10 s of
/// 20 ms frames: only a stuck agent fills it).
const INPUT_QUEUE: usize = 512;
/// Actions queued for the socket.
const ACTION_QUEUE: usize = 256;
/// Provider results queued for the engine.
const RESULT_QUEUE: usize = 256;
/// Sentences queued for the TTS worker: minutes of speech. The engine
/// queues a reply's sentences as the model writes them, faster than they
/// are spoken, so only a reply far longer than anyone listens to, or a
/// stuck voice, fills it; a sentence that finds it full is skipped (and
/// counted) rather than held, since the agent must not wait.
const SPEAK_QUEUE: usize = 64;

impl AgentHandle {
    /// Hands the agent caller audio at the carrier's rate; never waits.
    pub fn caller_audio(&self, samples: Vec<i16>) {
        self.send(AgentInput::CallerAudio(samples));
    }

    /// The carrier played up to `mark`.
    pub fn mark_played(&self, mark: String) {
        self.send(AgentInput::MarkPlayed(mark));
    }

    /// The call's job configuration changed: the persona it names (and its
    /// overrides) apply from the next turn.
    pub fn configure(&self, job: JobConfig) {
        self.send(AgentInput::Configure(job));
    }

    fn send(&self, input: AgentInput) {
        if self.input.try_send(input).is_err() {
            metrics::counter!(AGENT_INPUT_DROPPED).increment(1);
        }
    }

    /// The next action for the socket; `None` once the agent is gone.
    pub async fn next_action(&mut self) -> Option<AgentAction> {
        self.actions.recv().await
    }
}

/// Everything an agent needs to start.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    /// The call.
    pub call_id: CallSid,
    /// The carrier's audio rate, both ways.
    pub carrier_rate: SampleRate,
    /// The call's job configuration: which persona, with what overrides.
    pub job: JobConfig,
    /// When the call started (the transcript's and recording's time zero).
    pub started: Instant,
    /// How to transfer this call, when the carrier can (the persona's
    /// transfer numbers are offered to the model only then).
    pub transfer: Option<Arc<dyn CallTransfer>>,
    /// Calls the persona's HTTP tools.
    pub tools: ToolClient,
}

/// Hands a live call over to another number through the carrier's
/// call-control API.
pub trait CallTransfer: Send + Sync + std::fmt::Debug {
    /// Transfers `call` to `to` (E.164).
    ///
    /// # Errors
    /// What the carrier said, without secrets.
    fn transfer<'a>(
        &'a self,
        call: &'a CallSid,
        to: &'a str,
    ) -> futures_util::future::BoxFuture<'a, Result<(), String>>;
}

/// Starts the agent of a call on `tracker`. It ends when `token` (the
/// call's) is cancelled or the handle is dropped, and every task it starts,
/// its providers' included, ends with it.
pub fn spawn_agent(
    providers: &Providers,
    spec: AgentSpec,
    store: Store,
    records: RecordWriter,
    bus: EventBus,
    tracker: &TaskTracker,
    token: &CancellationToken,
) -> AgentHandle {
    let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
    let (action_tx, action_rx) = mpsc::channel(ACTION_QUEUE);
    let (result_tx, result_rx) = mpsc::channel(RESULT_QUEUE);
    let (tts_tx, tts_rx) = mpsc::channel(SPEAK_QUEUE);
    let span = tracing::info_span!("agent", call_id = %spec.call_id);
    let scope = TaskScope::new(tracker.clone(), token.clone());
    let workers = Workers {
        providers: providers.clone(),
        store,
        stt: providers.stt.open(&scope),
        scope: scope.clone(),
        results: result_tx,
        tts_jobs: tts_tx,
        llm_turns: HashMap::new(),
        tts_turns: HashMap::new(),
        tools: PersonaTools::default(),
        tool_client: spec.tools.clone(),
    };
    tracker.spawn(
        tts_worker(
            Arc::clone(&providers.tts),
            providers.tts_rate(),
            spec.carrier_rate,
            tts_rx,
            workers.results.clone(),
            scope,
        )
        .instrument(span.clone()),
    );
    let apology = providers.apology_at(spec.carrier_rate);
    let vad = providers.vad.stream();
    let transcribe_at_pauses = providers.stt.transcribe_at_pauses();
    let start = async move {
        let mut workers = workers;
        let persona = resolve_persona(&workers.store, &spec.job).await;
        tracing::info!(persona = %persona.name, "agent answering");
        let can_transfer = spec.transfer.is_some();
        let engine_persona = adopt(&workers.tools, &persona, can_transfer);
        let partials = workers.stt.partials();
        let agent = Agent {
            engine: CallEngine::new(
                EngineConfig {
                    output_rate_hz: spec.carrier_rate.hz(),
                    transcribe_at_pauses,
                    ..EngineConfig::default()
                },
                engine_persona,
            ),
            transfer: spec.transfer,
            partials,
            apology,
            vad,
            upsample: SampleRate::new(INPUT_RATE_HZ)
                .and_then(|engine_rate| Resampler::new(spec.carrier_rate, engine_rate))
                .ok(),
            windows: None,
            scratch: Vec::new(),
            transcript: TranscriptLog::new(spec.call_id.clone(), spec.started.into_std()),
            records,
            call_id: spec.call_id,
            bus,
            actions: action_tx,
            workers,
        };
        agent.run(input_rx, result_rx).await;
    };
    let call = token.clone();
    tracker.spawn(
        async move {
            tokio::select! {
                () = call.cancelled() => {}
                () = start => {}
            }
        }
        .instrument(span),
    );
    AgentHandle {
        input: input_tx,
        actions: action_rx,
    }
}

struct Agent {
    engine: CallEngine,
    transfer: Option<Arc<dyn CallTransfer>>,
    /// Interim transcripts of the caller, when the recogniser makes them.
    partials: Option<mpsc::Receiver<String>>,
    /// The apology at the carrier's rate.
    apology: Vec<i16>,
    vad: Box<dyn VadStream>,
    /// Carrier rate to 16 kHz; `None` when the carrier rate cannot be
    /// resampled (then audio is dropped and counted).
    upsample: Option<Resampler>,
    /// Cuts 16 kHz audio into VAD windows; made on the first audio.
    windows: Option<Framer>,
    scratch: Vec<i16>,
    transcript: TranscriptLog,
    records: RecordWriter,
    call_id: CallSid,
    bus: EventBus,
    actions: mpsc::Sender<AgentAction>,
    workers: Workers,
}

fn now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Agent {
    async fn run(
        mut self,
        mut inputs: mpsc::Receiver<AgentInput>,
        mut results: mpsc::Receiver<Input>,
    ) {
        let token = self.workers.scope.token().clone();
        self.engine.handle(now(), Input::Answered);
        loop {
            if !self.carry_out().await {
                break;
            }
            let timeout = self.engine.poll_timeout().map(Instant::from_std);
            tokio::select! {
                biased;
                () = token.cancelled() => break,
                input = inputs.recv() => match input {
                    Some(input) => self.on_input(input),
                    None => break,
                },
                Some(result) = results.recv() => self.engine.handle(now(), result),
                Some(text) = next_partial(&mut self.partials) => self.bus.publish(CallEvent::Transcript {
                    call_id: self.call_id.clone(),
                    role: Role::User,
                    text,
                    is_final: false,
                }),
                () = sleep_until(timeout) => self.engine.handle_timeout(now()),
            }
        }
        // Whatever the turn started stops with the call.
        token.cancel();
    }

    fn on_input(&mut self, input: AgentInput) {
        match input {
            AgentInput::CallerAudio(samples) => self.caller_audio(&samples),
            AgentInput::MarkPlayed(name) => self.engine.handle(now(), Input::MarkPlayed { name }),
            AgentInput::Configure(job) => self.workers.configure(job, self.transfer.is_some()),
        }
    }

    /// Upsamples to 16 kHz and feeds the engine one VAD window at a time:
    /// the window's audio, then its speech probability.
    fn caller_audio(&mut self, samples: &[i16]) {
        let Some(upsample) = self.upsample.as_mut() else {
            metrics::counter!(AGENT_INPUT_DROPPED).increment(1);
            return;
        };
        self.scratch.clear();
        upsample.process(samples, &mut self.scratch);
        self.workers.stt.audio(&self.scratch);
        let window_len = self.vad.window_samples();
        let windows = self.windows.get_or_insert_with(|| {
            Framer::with_frame_len(NonZeroUsize::new(window_len).unwrap_or(NonZeroUsize::MIN))
        });
        windows.push(&self.scratch);
        let at = now();
        while let Some(window) = windows.pop_frame() {
            let window = window.to_vec();
            let input = match self.vad.push(&window) {
                Ok(probability) => Input::Vad { probability },
                Err(e) => Input::ProviderFailed {
                    stage: Stage::Vad,
                    detail: e.to_string(),
                },
            };
            self.engine.handle(at, Input::CallerAudio(window));
            self.engine.handle(at, input);
        }
    }

    /// Carries out everything the engine asked; false once the socket is gone.
    async fn carry_out(&mut self) -> bool {
        while let Some(output) = self.engine.poll_output() {
            let action = match output {
                Output::PlayAudio(audio) => AgentAction::Play {
                    samples: audio.samples,
                    mark: audio.mark,
                },
                Output::PlayApology { mark } => AgentAction::Play {
                    samples: self.apology.clone(),
                    mark,
                },
                Output::ClearPlayback => AgentAction::Clear,
                Output::HangUp(reason) => hang_up(reason),
                Output::Transfer { to } => {
                    transfer_call(self.transfer.clone(), &self.call_id, &to).await
                }
                Output::Event(event) => {
                    self.publish(event);
                    continue;
                }
                other => {
                    if let Some(skipped) = self.workers.start(other) {
                        self.engine.handle(now(), skipped);
                    }
                    continue;
                }
            };
            if self.actions.send(action).await.is_err() {
                return false;
            }
        }
        true
    }
}

/// Transfers the call (the model asked, the persona allows it); the call
/// then ends here either way.
async fn transfer_call(
    transfer: Option<Arc<dyn CallTransfer>>,
    call_id: &CallSid,
    to: &str,
) -> AgentAction {
    let result = match &transfer {
        Some(transfer) => transfer.transfer(call_id, to).await,
        None => Err("this call cannot be transferred".to_owned()),
    };
    match result {
        Ok(()) => {
            tracing::info!(to, "call transferred");
            AgentAction::HangUp {
                disposition: Disposition::Transferred,
                reason: format!("transferred to {to}"),
            }
        }
        Err(e) => {
            tracing::error!(to, error = %e, "transfer failed");
            AgentAction::HangUp {
                disposition: Disposition::Error,
                reason: format!("transfer to {to} failed: {e}"),
            }
        }
    }
}

impl Agent {
    fn publish(&mut self, event: EngineEvent) {
        let stored = match &event {
            EngineEvent::TurnMetrics(metrics) => {
                record_turn_metrics(metrics);
                None
            }
            EngineEvent::Transcript {
                turn,
                role,
                text,
                is_final: true,
                started,
                ended,
            } => {
                if *role == Role::User {
                    // The caller's words are committed: the recogniser's
                    // next transcript starts after them.
                    self.workers.stt.next_turn();
                }
                self.transcript.words(*turn, *role, text, *started, *ended)
            }
            EngineEvent::AgentInterrupted { turn, heard, .. } => {
                self.transcript.interrupted(*turn, heard, now())
            }
            _ => None,
        };
        if let Some(turn) = stored {
            self.records.submit_turn(turn);
        }
        self.bus
            .publish(CallEvent::from_engine(self.call_id.clone(), event));
    }
}

fn hang_up(reason: HangupReason) -> AgentAction {
    let (disposition, reason) = match reason {
        HangupReason::CallerSilent => (
            Disposition::Completed,
            "the caller stayed silent through every reprompt".to_owned(),
        ),
        HangupReason::AgentEnded => (Disposition::Hangup, "the agent ended the call".to_owned()),
        HangupReason::ProviderFailed { stage, detail } => (
            Disposition::Error,
            format!("{} failed: {detail}", stage.as_str()),
        ),
    };
    AgentAction::HangUp {
        disposition,
        reason,
    }
}

/// Records a turn's stages in the stage histogram (those it has).
pub(super) fn record_turn_metrics(metrics: &TurnMetrics) {
    let stages = [
        ("end_of_turn", metrics.end_of_turn_ms),
        ("stt_final", metrics.stt_final_ms),
        ("llm_first_token", metrics.llm_first_token_ms),
        ("tts_first_audio", metrics.tts_first_audio_ms),
        ("first_audio_sent", metrics.first_audio_sent_ms),
        ("first_mark", metrics.first_mark_ms),
    ];
    for (stage, ms) in stages {
        if let Some(ms) = ms {
            metrics::histogram!(TURN_STAGE_SECONDS, "stage" => stage).record(ms as f64 / 1000.0);
        }
    }
}

async fn next_partial(partials: &mut Option<mpsc::Receiver<String>>) -> Option<String> {
    match partials {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Starts and cancels provider work for the engine; results come back on
/// `results` as engine inputs.
struct Workers {
    providers: Providers,
    store: Store,
    /// The server's tracker and the call's token: every worker, and every
    /// task the providers start for the call, ends with the call.
    scope: TaskScope,
    results: mpsc::Sender<Input>,
    tts_jobs: mpsc::Sender<SpeakJob>,
    llm_turns: HashMap<TurnId, CancellationToken>,
    tts_turns: HashMap<TurnId, CancellationToken>,
    /// The call's speech-to-text stream.
    stt: Box<dyn SttStream>,
    /// The persona's HTTP tools, by name (a live config replaces them).
    tools: PersonaTools,
    tool_client: ToolClient,
}

/// The HTTP tools of the call's current persona, by name.
type PersonaTools = Arc<std::sync::Mutex<HashMap<String, HttpToolSpec>>>;

/// One segment for the TTS worker.
struct SpeakJob {
    segment: SegmentId,
    text: String,
    /// Cancelled with the segment's turn.
    token: CancellationToken,
}

impl Workers {
    /// Starts the work `output` asks for; when it is skipped instead, the
    /// input that tells the engine so.
    fn start(&mut self, output: Output) -> Option<Input> {
        match output {
            Output::CheckEndOfTurn { turn, audio } => self.check_end_of_turn(turn, audio),
            Output::Transcribe {
                turn,
                attempt,
                audio,
            } => self.transcribe(turn, attempt, audio),
            Output::Prompt {
                turn,
                messages,
                tools,
            } => {
                let token = self.turn_token(turn);
                let rx = self
                    .providers
                    .llm
                    .reply(LlmRequest { messages, tools }, &self.scope);
                self.spawn(
                    token.clone(),
                    stream_reply(turn, rx, self.results.clone(), token),
                );
            }
            Output::RunTool { turn, call } => self.run_tool(turn, call),
            Output::CancelLlm { turn } => {
                if let Some(token) = self.llm_turns.remove(&turn) {
                    token.cancel();
                }
            }
            Output::Speak {
                turn,
                segment,
                text,
            } => {
                let token = self
                    .tts_turns
                    .entry(turn)
                    .or_insert_with(|| self.scope.token().child_token())
                    .clone();
                let job = SpeakJob {
                    segment,
                    text,
                    token,
                };
                // Closed means the worker has stopped, having told the
                // engine why.
                if let Err(mpsc::error::TrySendError::Full(_)) = self.tts_jobs.try_send(job) {
                    metrics::counter!(TTS_SEGMENTS_DROPPED).increment(1);
                    tracing::warn!(?segment, "the voice is behind: a sentence is skipped");
                    // Said, as far as the reply is concerned, so it ends.
                    return Some(Input::TtsDone { segment });
                }
            }
            Output::CancelTts { turn } => {
                if let Some(token) = self.tts_turns.remove(&turn) {
                    token.cancel();
                }
            }
            other => tracing::warn!(?other, "engine output not handled by a worker"),
        }
        None
    }

    /// Runs `work` on the tracker until it finishes or `token` is cancelled.
    fn spawn(&self, token: CancellationToken, work: impl Future<Output = ()> + Send + 'static) {
        self.scope.tracker().spawn(
            async move {
                tokio::select! {
                    () = token.cancelled() => {}
                    () = work => {}
                }
            }
            .in_current_span(),
        );
    }

    /// The token of a turn's model work (its generations and its tools),
    /// made on first use.
    fn turn_token(&mut self, turn: TurnId) -> CancellationToken {
        self.llm_turns.retain(|_, t| !t.is_cancelled());
        self.llm_turns
            .entry(turn)
            .or_insert_with(|| self.scope.token().child_token())
            .clone()
    }

    /// Looks the call's persona up again; it applies from the next turn.
    fn configure(&self, job: JobConfig, can_transfer: bool) {
        let store = self.store.clone();
        let results = self.results.clone();
        let tools = Arc::clone(&self.tools);
        self.spawn(self.scope.token().clone(), async move {
            let persona = resolve_persona(&store, &job).await;
            tracing::info!(persona = %persona.name, "persona updated");
            let engine = adopt(&tools, &persona, can_transfer);
            let _ = results.send(Input::Configure(Box::new(engine))).await;
        });
    }

    /// Runs one of the persona's HTTP tools; its answer (or what went
    /// wrong) goes back to the model.
    fn run_tool(&mut self, turn: TurnId, call: ToolCall) {
        let token = self.turn_token(turn);
        let tool = self
            .tools
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&call.name)
            .cloned();
        let results = self.results.clone();
        let client = self.tool_client.clone();
        self.spawn(token, async move {
            let content = match tool {
                Some(tool) => client.call(&tool, &call.arguments).await.text,
                None => format!("error: there is no tool named {:?}", call.name),
            };
            let _ = results
                .send(Input::ToolResult {
                    turn,
                    call_id: call.id,
                    content,
                })
                .await;
        });
    }

    fn check_end_of_turn(&self, turn: TurnId, audio: Vec<i16>) {
        // Without a model, or when it fails, the silence fallback decides.
        let Some(model) = self.providers.end_of_turn.clone() else {
            return;
        };
        let results = self.results.clone();
        self.spawn(self.scope.token().clone(), async move {
            let verdict = tokio::task::spawn_blocking(move || model.predict(&audio)).await;
            match verdict {
                Ok(Ok(probability)) => {
                    let _ = results.send(Input::EndOfTurn { turn, probability }).await;
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "end-of-turn model failed"),
                Err(e) => tracing::warn!(error = %e, "end-of-turn task failed"),
            }
        });
    }

    fn transcribe(&mut self, turn: TurnId, attempt: u32, audio: Vec<i16>) {
        let mut rx = self.stt.transcribe(audio);
        let results = self.results.clone();
        self.spawn(self.scope.token().clone(), async move {
            let input = match rx.recv().await {
                Some(Ok(text)) => Input::SttFinal {
                    turn,
                    attempt,
                    text,
                },
                Some(Err(e)) => failed(Stage::Stt, &e),
                None => failed(Stage::Stt, &"the transcriber stopped without a result"),
            };
            let _ = results.send(input).await;
        });
    }
}

/// Takes `persona`'s tools for the call and gives the engine's view of it;
/// transfer numbers are dropped when the call cannot be transferred.
fn adopt(tools: &PersonaTools, persona: &PersonaSpec, can_transfer: bool) -> Persona {
    *tools
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = persona
        .tools
        .iter()
        .map(|tool| (tool.name.clone(), tool.clone()))
        .collect();
    let mut engine = persona.to_engine();
    if !can_transfer {
        engine.transfer_numbers.clear();
    }
    engine
}

fn failed(stage: Stage, detail: &dyn std::fmt::Display) -> Input {
    tracing::error!(stage = stage.as_str(), error = %detail, "provider failed");
    Input::ProviderFailed {
        stage,
        detail: detail.to_string(),
    }
}

/// Forwards a reply's pieces to the engine; dropping `rx` (on cancel) stops
/// generation.
async fn stream_reply(
    turn: TurnId,
    mut rx: mpsc::Receiver<Result<LlmChunk, voxgate_providers::ProviderError>>,
    results: mpsc::Sender<Input>,
    token: CancellationToken,
) {
    // Marks the turn's token done so the worker map can forget it.
    let _done = token.drop_guard();
    loop {
        let input = match rx.recv().await {
            Some(Ok(LlmChunk::Text(text))) => Input::LlmToken { turn, text },
            Some(Ok(LlmChunk::ToolCall(call))) => Input::LlmToolCall { turn, call },
            Some(Ok(LlmChunk::Usage(usage))) => {
                metrics::counter!(LLM_TOKENS, "kind" => "prompt")
                    .increment(u64::from(usage.prompt));
                metrics::counter!(LLM_TOKENS, "kind" => "completion")
                    .increment(u64::from(usage.completion));
                continue;
            }
            Some(Err(e)) => {
                let _ = results.send(failed(Stage::Llm, &e)).await;
                return;
            }
            None => {
                let _ = results.send(Input::LlmDone { turn }).await;
                return;
            }
        };
        if results.send(input).await.is_err() {
            return;
        }
    }
}

/// Synthesizes segments one at a time, in order, at the carrier's rate,
/// in the call's `scope`.
async fn tts_worker(
    tts: Arc<dyn voxgate_providers::TextToSpeech>,
    from: SampleRate,
    to: SampleRate,
    mut jobs: mpsc::Receiver<SpeakJob>,
    results: mpsc::Sender<Input>,
    scope: TaskScope,
) {
    let Ok(mut resampler) = Resampler::new(from, to) else {
        let _ = results
            .send(failed(
                Stage::Tts,
                &format!("cannot resample {from} to {to}"),
            ))
            .await;
        return;
    };
    loop {
        let job = tokio::select! {
            () = scope.token().cancelled() => return,
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
        };
        if job.token.is_cancelled() {
            continue;
        }
        let mut chunks = tts.synthesize(job.text, &scope);
        let mut out = Vec::new();
        loop {
            let chunk = tokio::select! {
                () = job.token.cancelled() => break,
                chunk = chunks.recv() => chunk,
            };
            out.clear();
            let input = match chunk {
                Some(Ok(samples)) => {
                    resampler.process(&samples, &mut out);
                    if out.is_empty() {
                        continue;
                    }
                    Input::TtsAudio {
                        segment: job.segment,
                        samples: std::mem::take(&mut out),
                    }
                }
                Some(Err(e)) => {
                    let _ = results.send(failed(Stage::Tts, &e)).await;
                    break;
                }
                None => {
                    resampler.flush(&mut out);
                    if !out.is_empty() {
                        let audio = Input::TtsAudio {
                            segment: job.segment,
                            samples: std::mem::take(&mut out),
                        };
                        if results.send(audio).await.is_err() {
                            return;
                        }
                    }
                    let _ = results
                        .send(Input::TtsDone {
                            segment: job.segment,
                        })
                        .await;
                    break;
                }
            };
            if results.send(input).await.is_err() {
                return;
            }
        }
        // A cancelled segment leaves samples in the filter; start clean.
        resampler.reset();
    }
}
