//! The conversation engine of one call, sans-IO.
//!
//! # Drive loop
//!
//! The shell owns one [`CallEngine`] per call and, in a loop:
//! 1. feeds whatever happened with [`CallEngine::handle`]`(now, input)`:
//!    caller audio and VAD scores, end-of-turn scores, STT results, LLM
//!    tokens, TTS audio, marks echoed by the carrier, hang-up, config;
//! 2. drains [`CallEngine::poll_output`] until it returns `None`, carrying
//!    out each [`Output`] (start STT, prompt the LLM, synthesize, send
//!    audio and marks, clear playback, hang up, publish events);
//! 3. sleeps until [`CallEngine::poll_timeout`] (or the next input) and
//!    then calls [`CallEngine::handle_timeout`]`(now)`.
//!
//! The engine never reads a clock and never does IO, so every scenario is
//! a test on a fake clock.
//!
//! # Conversation rules
//! * The agent greets on answer and never starts talking over the caller:
//!   reply audio that arrives while the caller speaks is held.
//! * End of turn: after the caller's speech ends, an end-of-turn model
//!   (Smart Turn) is asked; a complete sentence is answered after a short
//!   silence, an incomplete one after a longer one, and without an answer
//!   the silence fallback decides.
//! * Barge-in: caller speech lasting at least `interrupt_min_speech` while
//!   the agent is speaking clears playback at once. If the caller's sound
//!   turns out to be short or wordless (a cough), the rest of the reply is
//!   played again; otherwise the reply is dropped and only what the caller
//!   heard stays in the model's context.
//! * A provider failure plays the apology prepared at start-up, then hangs up.

mod chat;
mod playback;
mod sentences;
mod vad;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

pub use chat::{ChatMessage, Role, ToolCall, ToolSpec};
pub use playback::{OutgoingAudio, Playback, SegmentId};
pub use sentences::SentenceSplitter;
pub use vad::{VadEvent, VadSettings, VadSmoother};

/// Caller audio reaches the engine at this rate (what VAD and STT take).
pub const INPUT_RATE_HZ: u32 = 16_000;

/// Identifies one exchange: a caller utterance and the agent's reply.
/// Turn 0 is the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TurnId(pub u64);

/// Which provider failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Voice activity or end-of-turn detection.
    Vad,
    /// Speech to text.
    Stt,
    /// The language model.
    Llm,
    /// Text to speech.
    Tts,
}

impl Stage {
    /// The stage's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Vad => "vad",
            Stage::Stt => "stt",
            Stage::Llm => "llm",
            Stage::Tts => "tts",
        }
    }
}

/// Timing and behaviour of turn-taking, per persona.
#[derive(Debug, Clone, PartialEq)]
pub struct TurnSettings {
    /// Speech detection.
    pub vad: VadSettings,
    /// Whether to ask an end-of-turn model after the caller stops.
    pub use_end_of_turn_model: bool,
    /// End-of-turn probability at or above which the turn is complete.
    pub end_of_turn_threshold: f32,
    /// Silence before answering a complete sentence.
    pub min_endpoint_delay: Duration,
    /// Silence before answering an incomplete sentence.
    pub max_endpoint_delay: Duration,
    /// Silence before answering when no end-of-turn verdict arrives.
    pub fallback_endpoint_delay: Duration,
    /// Caller speech needed to interrupt the agent.
    pub interrupt_min_speech: Duration,
    /// Caller sound shorter than this after an interruption is noise: the
    /// reply resumes.
    pub false_interruption_max_speech: Duration,
    /// Silence after which the agent checks whether the caller is there.
    pub idle_reprompt_after: Duration,
    /// How many such checks before hanging up.
    pub max_reprompts: u32,
}

impl Default for TurnSettings {
    fn default() -> Self {
        Self {
            vad: VadSettings::default(),
            use_end_of_turn_model: true,
            end_of_turn_threshold: 0.5,
            min_endpoint_delay: Duration::from_millis(200),
            max_endpoint_delay: Duration::from_millis(2000),
            fallback_endpoint_delay: Duration::from_millis(700),
            interrupt_min_speech: Duration::from_millis(200),
            false_interruption_max_speech: Duration::from_millis(450),
            idle_reprompt_after: Duration::from_secs(8),
            max_reprompts: 2,
        }
    }
}

/// Who the agent is on this call.
#[derive(Debug, Clone, PartialEq)]
pub struct Persona {
    /// The system prompt.
    pub instructions: String,
    /// Said on answer; empty for none.
    pub greeting: String,
    /// Said after a long silence.
    pub reprompt: String,
    /// Said when the agent ends the call without having said goodbye.
    pub goodbye: String,
    /// Said while a tool runs.
    pub tool_filler: String,
    /// Numbers (E.164) the agent may transfer the call to; the
    /// `transfer_call` tool is offered only when there are some.
    pub transfer_numbers: Vec<String>,
    /// The persona's own tools (the shell runs them).
    pub tools: Vec<ToolSpec>,
    /// Turn-taking settings.
    pub turn: TurnSettings,
}

impl Default for Persona {
    fn default() -> Self {
        Self {
            instructions: "You are a helpful, friendly voice assistant on a phone call. \
                           Answer in one or two short sentences."
                .to_owned(),
            greeting: "Hello! How can I help you today?".to_owned(),
            reprompt: "Are you still there?".to_owned(),
            goodbye: "Thank you for calling. Goodbye!".to_owned(),
            tool_filler: "One moment, please.".to_owned(),
            transfer_numbers: Vec::new(),
            tools: Vec::new(),
            turn: TurnSettings::default(),
        }
    }
}

/// Engine-wide settings fixed for the call.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineConfig {
    /// Agent audio rate (what the carrier plays: 8 kHz for phones).
    pub output_rate_hz: u32,
    /// Length of one marked playback chunk; bounds how precisely the heard
    /// text is known after a barge-in.
    pub playback_chunk: Duration,
    /// Messages of history kept in the prompt (besides the system prompt).
    /// Past that, the oldest are dropped half this many at a time, so the
    /// prompt's beginning stays the same for several turns and a model
    /// that caches it (llama.cpp's KV cache, a cloud prompt cache) reads
    /// only what is new.
    pub max_history: usize,
    /// How long the apology may take before the call is hung up anyway.
    pub apology_deadline: Duration,
    /// Whether to transcribe at the caller's pauses, before the VAD judges
    /// that speech ended (the words are ready sooner; a pause that does not
    /// end the turn costs a transcription).
    pub transcribe_at_pauses: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            output_rate_hz: 8_000,
            playback_chunk: Duration::from_millis(200),
            max_history: 20,
            apology_deadline: Duration::from_secs(8),
            transcribe_at_pauses: true,
        }
    }
}

/// Something that happened, for the shell to act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// The call was answered: greet.
    Answered,
    /// Caller audio at [`INPUT_RATE_HZ`].
    CallerAudio(Vec<i16>),
    /// One VAD window's speech probability.
    Vad {
        /// Probability in [0, 1].
        probability: f32,
    },
    /// The end-of-turn model's verdict for a turn.
    EndOfTurn {
        /// The turn asked about.
        turn: TurnId,
        /// Probability that the caller finished.
        probability: f32,
    },
    /// The transcript of a turn.
    SttFinal {
        /// The turn.
        turn: TurnId,
        /// The request it answers (from [`Output::Transcribe`]).
        attempt: u32,
        /// What the caller said.
        text: String,
    },
    /// A piece of the model's reply.
    LlmToken {
        /// The turn.
        turn: TurnId,
        /// Text.
        text: String,
    },
    /// The model called a tool (arguments complete).
    LlmToolCall {
        /// The turn.
        turn: TurnId,
        /// The call.
        call: ToolCall,
    },
    /// A tool the shell ran ([`Output::RunTool`]) answered.
    ToolResult {
        /// The turn.
        turn: TurnId,
        /// The call it answers.
        call_id: String,
        /// The result (or what went wrong), for the model.
        content: String,
    },
    /// The model finished its reply.
    LlmDone {
        /// The turn.
        turn: TurnId,
    },
    /// Synthesized audio for a segment, at the output rate.
    TtsAudio {
        /// The segment.
        segment: SegmentId,
        /// Samples.
        samples: Vec<i16>,
    },
    /// A segment is fully synthesized.
    TtsDone {
        /// The segment.
        segment: SegmentId,
    },
    /// The carrier played everything up to this mark.
    MarkPlayed {
        /// The mark's name.
        name: String,
    },
    /// A provider failed beyond recovery.
    ProviderFailed {
        /// Which one.
        stage: Stage,
        /// Why.
        detail: String,
    },
    /// New persona settings; they apply from the next turn.
    Configure(Box<Persona>),
    /// The caller hung up: stop everything.
    CallerHungUp,
}

/// What the shell must do.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// Ask the end-of-turn model about the caller's last words.
    CheckEndOfTurn {
        /// The turn.
        turn: TurnId,
        /// The last seconds of the utterance, at [`INPUT_RATE_HZ`].
        audio: Vec<i16>,
    },
    /// Transcribe a finished utterance.
    Transcribe {
        /// The turn.
        turn: TurnId,
        /// Identifies this request; its [`Input::SttFinal`] carries it back.
        /// A turn may be transcribed more than once: as soon as the caller
        /// pauses, and again if they go on.
        attempt: u32,
        /// The utterance, at [`INPUT_RATE_HZ`].
        audio: Vec<i16>,
    },
    /// Stream a reply from the language model.
    Prompt {
        /// The turn.
        turn: TurnId,
        /// System prompt, history and the caller's words.
        messages: Vec<ChatMessage>,
        /// Tools the model may call.
        tools: Vec<ToolSpec>,
    },
    /// Run one of the persona's tools; answer with [`Input::ToolResult`].
    /// Cancelled with the turn's model ([`Output::CancelLlm`]).
    RunTool {
        /// The turn.
        turn: TurnId,
        /// The call.
        call: ToolCall,
    },
    /// Transfer the call to `to` (the goodbye has played); the call ends.
    Transfer {
        /// E.164 number, one of the persona's transfer numbers.
        to: String,
    },
    /// Stop generating for a turn.
    CancelLlm {
        /// The turn.
        turn: TurnId,
    },
    /// Synthesize a segment.
    Speak {
        /// The turn.
        turn: TurnId,
        /// The segment.
        segment: SegmentId,
        /// Its text.
        text: String,
    },
    /// Stop synthesizing a turn's segments.
    CancelTts {
        /// The turn.
        turn: TurnId,
    },
    /// Send audio to the caller, then the mark.
    PlayAudio(OutgoingAudio),
    /// Drop everything buffered for playback at the carrier.
    ClearPlayback,
    /// Play the apology prepared at start-up, then send this mark.
    PlayApology {
        /// The mark to send after it.
        mark: String,
    },
    /// End the call.
    HangUp(HangupReason),
    /// Tell monitors.
    Event(EngineEvent),
}

/// Why the engine ended the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HangupReason {
    /// The caller stayed silent through every reprompt.
    CallerSilent,
    /// The model ended the call (the `end_call` tool) after saying goodbye.
    AgentEnded,
    /// A provider failed; the caller heard the apology.
    ProviderFailed {
        /// Which provider.
        stage: Stage,
        /// Why.
        detail: String,
    },
}

/// Per-turn latency, each stage in milliseconds after the caller stopped
/// speaking.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TurnMetrics {
    /// The turn.
    pub turn: u64,
    /// End of turn decided.
    pub end_of_turn_ms: Option<u64>,
    /// Transcript ready.
    pub stt_final_ms: Option<u64>,
    /// First token from the model.
    pub llm_first_token_ms: Option<u64>,
    /// First synthesized audio.
    pub tts_first_audio_ms: Option<u64>,
    /// First audio handed to the carrier.
    pub first_audio_sent_ms: Option<u64>,
    /// First mark echoed: the caller is hearing the reply.
    pub first_mark_ms: Option<u64>,
}

/// Something monitors see.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// Words said on the call.
    Transcript {
        /// The exchange the words belong to (0 is the greeting).
        turn: u64,
        /// Caller or agent.
        role: Role,
        /// The words.
        text: String,
        /// Whether this text is final.
        is_final: bool,
        /// When the words started: the caller's first speech, or the
        /// start of the agent audio that carried them.
        started: Instant,
        /// When the words ended: the caller stopped, or their audio played.
        ended: Instant,
    },
    /// The caller interrupted the agent.
    AgentInterrupted {
        /// The turn that was interrupted.
        turn: u64,
        /// What the caller actually heard of the reply.
        heard: String,
        /// What the agent meant to say so far.
        intended: String,
    },
    /// Latency of one turn.
    TurnMetrics(TurnMetrics),
}

#[derive(Debug, Clone, Copy)]
struct Timings {
    caller_started: Instant,
    caller_stopped: Instant,
    end_of_turn: Option<Instant>,
    stt_final: Option<Instant>,
    llm_first_token: Option<Instant>,
    tts_first_audio: Option<Instant>,
    first_audio_sent: Option<Instant>,
    first_mark: Option<Instant>,
}

impl Timings {
    fn new(caller_started: Instant, caller_stopped: Instant) -> Self {
        Self {
            caller_started,
            caller_stopped,
            end_of_turn: None,
            stt_final: None,
            llm_first_token: None,
            tts_first_audio: None,
            first_audio_sent: None,
            first_mark: None,
        }
    }

    fn metrics(&self, turn: TurnId) -> TurnMetrics {
        let ms = |t: Option<Instant>| {
            t.map(|t| {
                u64::try_from(t.saturating_duration_since(self.caller_stopped).as_millis())
                    .unwrap_or(u64::MAX)
            })
        };
        TurnMetrics {
            turn: turn.0,
            end_of_turn_ms: ms(self.end_of_turn),
            stt_final_ms: ms(self.stt_final),
            llm_first_token_ms: ms(self.llm_first_token),
            tts_first_audio_ms: ms(self.tts_first_audio),
            first_audio_sent_ms: ms(self.first_audio_sent),
            first_mark_ms: ms(self.first_mark),
        }
    }
}

/// The caller's utterance being collected.
#[derive(Debug)]
struct Utterance {
    turn: TurnId,
    /// The first speech onset.
    started: Instant,
    audio: Vec<i16>,
    /// Total speech in this utterance (sum of speech runs).
    speech: Duration,
    /// Onset of the current speech run, while the caller speaks.
    run_onset: Option<Instant>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Verdict {
    Pending,
    Complete,
    Incomplete,
}

/// A transcription in flight (or answered early).
#[derive(Debug)]
struct SttRequest {
    turn: TurnId,
    attempt: u32,
    /// The utterance's last speech window it covers: speech after it calls
    /// for a new transcription.
    last_speech: Instant,
    /// Its text, when it came back before the end of turn was decided.
    text: Option<String>,
}

/// A turn whose end was decided, waiting for its transcript.
#[derive(Debug)]
struct EndedTurn {
    turn: TurnId,
    attempt: u32,
    timings: Timings,
    /// The transcript, when it came back before an earlier turn's.
    text: Option<String>,
}

/// Waiting to decide that the caller finished.
#[derive(Debug)]
struct Endpointing {
    silence_since: Instant,
    verdict: Verdict,
}

/// An agent reply in progress.
#[derive(Debug)]
struct Reply {
    turn: TurnId,
    splitter: SentenceSplitter,
    llm_done: bool,
    /// Segments asked of TTS and not yet done.
    open_segments: usize,
    playback: Playback,
    timings: Option<Timings>,
    metrics_sent: bool,
    /// Whether this reply came from the model (it is cancelled there too).
    from_llm: bool,
    /// What the model wrote in its current round (since its last tool
    /// calls).
    round_text: String,
    /// The tools the model called in its current round.
    tool_calls: Vec<ToolCall>,
    /// Tools the shell is running for this reply.
    pending_tools: usize,
    /// Times the model was prompted for this reply (tool results prompt it
    /// again).
    rounds: u32,
    /// What happens once the reply has played.
    ending: Option<Ending>,
    /// Whether the model called tools in this reply.
    used_tools: bool,
}

/// How a reply ends the call.
#[derive(Debug, Clone, PartialEq)]
enum Ending {
    HangUp,
    Transfer(String),
}

/// A barge-in awaiting its verdict: real interruption, or noise.
#[derive(Debug)]
struct Interruption {
    turn: TurnId,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Live,
    /// Apology playing; hang up at the mark or the deadline.
    Apologizing {
        deadline: Instant,
    },
    Ended,
}

/// Longest utterance kept for STT (Whisper's window).
const MAX_UTTERANCE: Duration = Duration::from_secs(30);
/// Audio given to the end-of-turn model (Smart Turn takes up to 8 s).
const END_OF_TURN_AUDIO: Duration = Duration::from_secs(8);
/// The mark sent after the apology.
const APOLOGY_MARK: &str = "apology";
/// The built-in tool that ends the call.
pub const END_CALL_TOOL: &str = "end_call";
/// The built-in tool that transfers the call.
pub const TRANSFER_CALL_TOOL: &str = "transfer_call";
/// Model rounds per reply; the last one is offered no tools, so a model
/// that keeps calling tools still ends up answering.
const MAX_MODEL_ROUNDS: u32 = 4;
/// Said before a transfer when the model said nothing.
const TRANSFER_LINE: &str = "Please hold while I transfer your call.";

fn samples_for(duration: Duration, rate_hz: u32) -> usize {
    usize::try_from(duration.as_millis() * u128::from(rate_hz) / 1000).unwrap_or(usize::MAX)
}

/// The conversation state machine of one call.
#[derive(Debug)]
pub struct CallEngine {
    config: EngineConfig,
    persona: Persona,
    phase: Phase,
    vad: VadSmoother,
    outputs: VecDeque<Output>,
    history: Vec<ChatMessage>,
    next_turn: u64,
    next_segment: u64,
    /// Recent caller audio, for the prefix padding of the next utterance.
    recent_audio: VecDeque<i16>,
    utterance: Option<Utterance>,
    endpointing: Option<Endpointing>,
    /// Ended turns awaiting their transcripts, oldest first: the caller
    /// may speak again before a transcript comes back.
    transcribing: VecDeque<EndedTurn>,
    /// The latest transcription asked for the utterance under way.
    stt_request: Option<SttRequest>,
    /// The last transcription attempt number used.
    next_attempt: u32,
    /// Caller words not answered yet (a reply cancelled because the caller
    /// went on talking); they lead the next prompt.
    unanswered: Vec<String>,
    reply: Option<Reply>,
    interruption: Option<Interruption>,
    /// When the conversation last went quiet on both sides.
    idle_since: Option<Instant>,
    reprompts: u32,
    /// Why the call is ending, while the apology plays.
    pending_failure: Option<(Stage, String)>,
}

impl CallEngine {
    /// A new engine for a call that is about to be answered.
    pub fn new(config: EngineConfig, persona: Persona) -> Self {
        Self {
            vad: VadSmoother::new(persona.turn.vad),
            config,
            persona,
            phase: Phase::Live,
            outputs: VecDeque::new(),
            history: Vec::new(),
            next_turn: 1,
            next_segment: 0,
            recent_audio: VecDeque::new(),
            utterance: None,
            endpointing: None,
            transcribing: VecDeque::new(),
            stt_request: None,
            next_attempt: 0,
            unanswered: Vec::new(),
            reply: None,
            interruption: None,
            idle_since: None,
            reprompts: 0,
            pending_failure: None,
        }
    }

    /// The next thing for the shell to do.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When [`CallEngine::handle_timeout`] must run next, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ended => None,
            Phase::Apologizing { deadline } => Some(deadline),
            Phase::Live => {
                let endpoint = self.endpointing.as_ref().map(|e| self.endpoint_deadline(e));
                let idle = self
                    .idle_since
                    .map(|t| t + self.persona.turn.idle_reprompt_after);
                [endpoint, idle].into_iter().flatten().min()
            }
        }
    }

    /// Whether the call is over for the engine.
    pub fn is_ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// The model's context as it stands (system prompt first).
    pub fn context(&self) -> Vec<ChatMessage> {
        let mut messages = vec![ChatMessage::new(
            Role::System,
            self.persona.instructions.clone(),
        )];
        let over = self.history.len().saturating_sub(self.config.max_history);
        let step = (self.config.max_history / 2).max(1);
        let mut skip = over.div_ceil(step) * step;
        // A tool result cut off from the call it answers is refused by the
        // model's API.
        while self.history.get(skip).is_some_and(|m| m.role == Role::Tool) {
            skip += 1;
        }
        messages.extend(self.history[skip..].iter().cloned());
        messages
    }

    /// The tools offered to the model: `end_call`, `transfer_call` when the
    /// persona has numbers to transfer to, and the persona's own.
    pub fn offered_tools(&self) -> Vec<ToolSpec> {
        let mut tools = vec![ToolSpec {
            name: END_CALL_TOOL.to_owned(),
            description: "End the phone call. Use it when the caller says goodbye or asks \
                          to hang up. Say goodbye in the same reply."
                .to_owned(),
            parameters: serde_json::json!({"type": "object", "properties": {}}),
        }];
        let numbers = &self.persona.transfer_numbers;
        if !numbers.is_empty() {
            tools.push(ToolSpec {
                name: TRANSFER_CALL_TOOL.to_owned(),
                description: "Transfer the call to a person at one of the allowed numbers, \
                              when the caller asks for a human or you cannot help."
                    .to_owned(),
                parameters: serde_json::json!({
                    "type": "object",
                    "properties": {
                        "to": {"type": "string", "enum": numbers, "description": "E.164 number"}
                    },
                    "required": ["to"]
                }),
            });
        }
        tools.extend(self.persona.tools.iter().cloned());
        tools
    }

    /// Feeds one input observed at `now`.
    pub fn handle(&mut self, now: Instant, input: Input) {
        match (self.phase, &input) {
            (Phase::Live, _) => {}
            // While the apology plays only its mark and a hang-up matter.
            (Phase::Apologizing { .. }, Input::MarkPlayed { .. } | Input::CallerHungUp) => {}
            _ => return,
        }
        match input {
            Input::Answered => self.greet(now),
            Input::CallerAudio(samples) => self.caller_audio(&samples),
            Input::Vad { probability } => self.vad_window(now, probability),
            Input::EndOfTurn { turn, probability } => {
                self.end_of_turn_verdict(now, turn, probability)
            }
            Input::SttFinal {
                turn,
                attempt,
                text,
            } => self.stt_final(now, turn, attempt, text),
            Input::LlmToken { turn, text } => self.llm_token(now, turn, &text),
            Input::LlmDone { turn } => self.llm_done(now, turn),
            Input::LlmToolCall { turn, call } => self.llm_tool_call(now, turn, call),
            Input::ToolResult {
                turn,
                call_id,
                content,
            } => self.tool_result(turn, call_id, content),
            Input::TtsAudio { segment, samples } => self.tts_audio(now, segment, &samples),
            Input::TtsDone { segment } => self.tts_done(now, segment),
            Input::MarkPlayed { name } => self.mark_played(now, &name),
            Input::ProviderFailed { stage, detail } => self.fail(now, stage, detail),
            Input::Configure(persona) => {
                self.vad.set_settings(persona.turn.vad);
                self.persona = *persona;
            }
            Input::CallerHungUp => self.stop_everything(),
        }
    }

    /// Acts on timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.phase {
            Phase::Ended => {}
            Phase::Apologizing { deadline } => {
                if now >= deadline {
                    self.hang_up_after_apology();
                }
            }
            Phase::Live => {
                if let Some(e) = &self.endpointing
                    && now >= self.endpoint_deadline(e)
                {
                    self.end_turn(now);
                }
                if let Some(since) = self.idle_since
                    && now >= since + self.persona.turn.idle_reprompt_after
                {
                    self.caller_idle(now);
                }
            }
        }
    }

    fn emit(&mut self, output: Output) {
        self.outputs.push_back(output);
    }

    fn event(&mut self, event: EngineEvent) {
        self.emit(Output::Event(event));
    }

    // --- agent speech -------------------------------------------------

    fn greet(&mut self, now: Instant) {
        let greeting = self.persona.greeting.trim().to_owned();
        if greeting.is_empty() {
            self.idle_since = Some(now);
        } else {
            self.say(TurnId(0), greeting);
        }
    }

    /// Speaks fixed text (greeting, reprompt) as its own reply.
    fn say(&mut self, turn: TurnId, text: String) {
        let mut reply = self.new_reply(turn, None, false);
        reply.llm_done = true;
        self.reply = Some(reply);
        self.idle_since = None;
        self.speak_segment(text);
    }

    fn new_reply(&self, turn: TurnId, timings: Option<Timings>, from_llm: bool) -> Reply {
        Reply {
            turn,
            splitter: SentenceSplitter::default(),
            llm_done: false,
            open_segments: 0,
            playback: Playback::new(samples_for(
                self.config.playback_chunk,
                self.config.output_rate_hz,
            )),
            timings,
            metrics_sent: false,
            from_llm,
            round_text: String::new(),
            tool_calls: Vec::new(),
            pending_tools: 0,
            rounds: u32::from(from_llm),
            ending: None,
            used_tools: false,
        }
    }

    fn speak_segment(&mut self, text: String) {
        let segment = SegmentId(self.next_segment);
        self.next_segment += 1;
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.playback.add_segment(segment, text.clone());
        reply.open_segments += 1;
        let turn = reply.turn;
        self.emit(Output::Speak {
            turn,
            segment,
            text,
        });
    }

    /// The reply `turn`'s model is writing, with the time of its first
    /// output noted; `None` for a reply that is gone or done.
    fn generating(&mut self, now: Instant, turn: TurnId) -> Option<&mut Reply> {
        let reply = self
            .reply
            .as_mut()
            .filter(|r| r.turn == turn && !r.llm_done)?;
        if let Some(t) = reply.timings.as_mut() {
            t.llm_first_token.get_or_insert(now);
        }
        Some(reply)
    }

    fn llm_token(&mut self, now: Instant, turn: TurnId, text: &str) {
        let Some(reply) = self.generating(now, turn) else {
            return;
        };
        reply.round_text.push_str(text);
        let sentences = reply.splitter.push(text);
        for sentence in sentences {
            self.speak_segment(sentence);
        }
    }

    fn llm_done(&mut self, now: Instant, turn: TurnId) {
        let Some(reply) = self
            .reply
            .as_mut()
            .filter(|r| r.turn == turn && !r.llm_done)
        else {
            return;
        };
        let rest = reply.splitter.finish();
        let called_tools = !reply.tool_calls.is_empty();
        reply.llm_done = !called_tools;
        if let Some(rest) = rest {
            self.speak_segment(rest);
        }
        if called_tools {
            self.run_tools(now);
        } else {
            self.finish_reply_if_done(now);
        }
    }

    fn llm_tool_call(&mut self, now: Instant, turn: TurnId, call: ToolCall) {
        let Some(reply) = self.generating(now, turn) else {
            return;
        };
        // The last round offers no tools; a call made anyway is ignored.
        if reply.rounds < MAX_MODEL_ROUNDS {
            reply.tool_calls.push(call);
        }
    }

    /// Carries out the tools the model called this round: the built-in ones
    /// here, the persona's by the shell (with a filler line meanwhile).
    fn run_tools(&mut self, now: Instant) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let turn = reply.turn;
        reply.used_tools = true;
        let calls = std::mem::take(&mut reply.tool_calls);
        let said = std::mem::take(&mut reply.round_text);
        self.history
            .push(ChatMessage::assistant_calls(said.trim(), calls.clone()));
        let mut ending = None;
        let mut shell_tools = Vec::new();
        for call in calls {
            let result = match call.name.as_str() {
                END_CALL_TOOL => {
                    ending = Some(Ending::HangUp);
                    "The call ends once your goodbye has played.".to_owned()
                }
                TRANSFER_CALL_TOOL => match self.transfer_target(&call.arguments) {
                    Ok(to) => {
                        let result = format!("Transferring the call to {to}.");
                        ending = Some(Ending::Transfer(to));
                        result
                    }
                    Err(problem) => problem,
                },
                name if self.persona.tools.iter().any(|t| t.name == name) => {
                    shell_tools.push(call);
                    continue;
                }
                other => format!("error: there is no tool named {other:?}"),
            };
            self.history.push(ChatMessage::tool_result(call.id, result));
        }
        if let Some(ending) = ending {
            let Some(reply) = self.reply.as_mut() else {
                return;
            };
            reply.llm_done = true;
            let line = match &ending {
                Ending::HangUp => self.persona.goodbye.trim().to_owned(),
                Ending::Transfer(_) => TRANSFER_LINE.to_owned(),
            };
            let silent = reply.playback.full_text().trim().is_empty();
            reply.ending = Some(ending);
            if silent && !line.is_empty() {
                self.speak_segment(line);
            }
            self.finish_reply_if_done(now);
            return;
        }
        if shell_tools.is_empty() {
            self.prompt_again(turn);
            return;
        }
        if let Some(reply) = self.reply.as_mut() {
            reply.pending_tools += shell_tools.len();
        }
        for call in shell_tools {
            self.emit(Output::RunTool { turn, call });
        }
        let filler = self.persona.tool_filler.trim().to_owned();
        if !filler.is_empty() {
            self.speak_segment(filler);
        }
    }

    fn tool_result(&mut self, turn: TurnId, call_id: String, content: String) {
        let Some(reply) = self
            .reply
            .as_mut()
            .filter(|r| r.turn == turn && r.pending_tools > 0 && r.ending.is_none())
        else {
            return;
        };
        reply.pending_tools -= 1;
        let all_in = reply.pending_tools == 0;
        self.history
            .push(ChatMessage::tool_result(call_id, content));
        if all_in {
            self.prompt_again(turn);
        }
    }

    /// Prompts the model again for the same reply, with the tool results.
    fn prompt_again(&mut self, turn: TurnId) {
        let tools = self.offered_tools();
        let messages = self.context();
        let Some(reply) = self.reply.as_mut().filter(|r| r.turn == turn) else {
            return;
        };
        reply.splitter = SentenceSplitter::default();
        reply.rounds += 1;
        let tools = if reply.rounds >= MAX_MODEL_ROUNDS {
            Vec::new()
        } else {
            tools
        };
        self.emit(Output::Prompt {
            turn,
            messages,
            tools,
        });
    }

    /// The number a `transfer_call` asks for, if the persona allows it;
    /// otherwise what to tell the model.
    fn transfer_target(&self, arguments: &str) -> Result<String, String> {
        let to = serde_json::from_str::<serde_json::Value>(arguments)
            .ok()
            .and_then(|v| v.get("to").and_then(|to| to.as_str()).map(str::to_owned));
        let allowed = &self.persona.transfer_numbers;
        match to {
            Some(to) if allowed.contains(&to) => Ok(to),
            Some(to) => Err(format!(
                "error: {to} is not a number you may transfer to; allowed: {}",
                allowed.join(", ")
            )),
            None => Err("error: transfer_call needs {\"to\": \"<number>\"}".to_owned()),
        }
    }

    fn tts_audio(&mut self, now: Instant, segment: SegmentId, samples: &[i16]) {
        let hold = self.must_hold_playback();
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if let Some(t) = reply.timings.as_mut() {
            t.tts_first_audio.get_or_insert(now);
        }
        if hold {
            reply.playback.hold();
        }
        let out = reply.playback.add_audio(segment, samples);
        self.play(now, out);
    }

    fn tts_done(&mut self, now: Instant, segment: SegmentId) {
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        reply.open_segments = reply.open_segments.saturating_sub(1);
        let out = reply.playback.finish_segment(segment);
        self.play(now, out);
        self.finish_reply_if_done(now);
    }

    fn play(&mut self, now: Instant, out: Vec<OutgoingAudio>) {
        if out.is_empty() {
            return;
        }
        if let Some(t) = self.reply.as_mut().and_then(|r| r.timings.as_mut()) {
            t.first_audio_sent.get_or_insert(now);
        }
        for audio in out {
            self.emit(Output::PlayAudio(audio));
        }
    }

    /// Agent audio must wait while the caller talks or an interruption is
    /// being judged.
    fn must_hold_playback(&self) -> bool {
        self.vad.is_speaking() || self.interruption.is_some()
    }

    fn mark_played(&mut self, now: Instant, name: &str) {
        if let Phase::Apologizing { .. } = self.phase {
            if name == APOLOGY_MARK {
                self.hang_up_after_apology();
            }
            return;
        }
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let finished = reply.playback.mark_played(name);
        let mut metrics = None;
        if let Some(t) = reply.timings.as_mut()
            && t.first_mark.is_none()
            && reply.playback.played_samples() > 0
        {
            t.first_mark = Some(now);
            reply.metrics_sent = true;
            metrics = Some(t.metrics(reply.turn));
        }
        let rate = u64::from(self.config.output_rate_hz.max(1));
        let turn = reply.turn.0;
        for (_, text, samples) in finished {
            // Playback is real time: the segment played for its length up to now.
            let played = Duration::from_micros(samples as u64 * 1_000_000 / rate);
            self.event(EngineEvent::Transcript {
                turn,
                role: Role::Assistant,
                text,
                is_final: true,
                started: now.checked_sub(played).unwrap_or(now),
                ended: now,
            });
        }
        if let Some(m) = metrics {
            self.event(EngineEvent::TurnMetrics(m));
        }
        self.finish_reply_if_done(now);
    }

    fn finish_reply_if_done(&mut self, now: Instant) {
        let done = self
            .reply
            .as_ref()
            .is_some_and(|r| r.llm_done && r.open_segments == 0 && r.playback.is_complete());
        if !done || self.interruption.is_some() {
            return;
        }
        let Some(reply) = self.reply.take() else {
            return;
        };
        // After tool calls, the history already holds what was said before
        // them; only the last round's words are new.
        let text = if reply.used_tools {
            reply.round_text.trim().to_owned()
        } else {
            reply.playback.full_text()
        };
        if !text.is_empty() {
            self.history.push(ChatMessage::new(Role::Assistant, text));
        }
        if let (Some(t), false) = (reply.timings, reply.metrics_sent) {
            self.event(EngineEvent::TurnMetrics(t.metrics(reply.turn)));
        }
        if let Some(ending) = reply.ending {
            self.stop_everything();
            self.emit(match ending {
                Ending::HangUp => Output::HangUp(HangupReason::AgentEnded),
                Ending::Transfer(to) => Output::Transfer { to },
            });
            return;
        }
        if !self.vad.is_speaking() && self.utterance.is_none() {
            self.idle_since = Some(now);
        }
    }

    /// Cancels the reply in progress; returns it.
    fn cancel_reply(&mut self) -> Option<Reply> {
        let reply = self.reply.take()?;
        if reply.from_llm && !reply.llm_done {
            self.emit(Output::CancelLlm { turn: reply.turn });
        }
        if reply.open_segments > 0 {
            self.emit(Output::CancelTts { turn: reply.turn });
        }
        Some(reply)
    }

    // --- caller speech --------------------------------------------------

    fn caller_audio(&mut self, samples: &[i16]) {
        let keep = samples_for(
            self.persona.turn.vad.prefix_padding + self.persona.turn.vad.min_speech,
            INPUT_RATE_HZ,
        );
        self.recent_audio.extend(samples.iter().copied());
        let excess = self.recent_audio.len().saturating_sub(keep);
        self.recent_audio.drain(..excess);
        if let Some(u) = self.utterance.as_mut() {
            u.audio.extend_from_slice(samples);
            let max = samples_for(MAX_UTTERANCE, INPUT_RATE_HZ);
            if u.audio.len() > max {
                let cut = u.audio.len() - max;
                u.audio.drain(..cut);
            }
        }
    }

    fn vad_window(&mut self, now: Instant, probability: f32) {
        match self.vad.push(now, probability) {
            Some(VadEvent::SpeechStarted { onset }) => self.speech_started(onset),
            Some(VadEvent::Paused { last_speech }) => self.speech_paused(last_speech),
            Some(VadEvent::SpeechEnded { last_speech }) => self.speech_ended(now, last_speech),
            None => {}
        }
        if self.vad.is_speaking() {
            self.consider_barge_in(now);
        }
    }

    fn speech_started(&mut self, onset: Instant) {
        self.idle_since = None;
        self.reprompts = 0;
        self.endpointing = None;
        match self.utterance.as_mut() {
            // The caller goes on after a pause: same turn.
            Some(u) => u.run_onset = Some(onset),
            None => {
                let turn = TurnId(self.next_turn);
                self.next_turn += 1;
                self.utterance = Some(Utterance {
                    turn,
                    started: onset,
                    audio: self.recent_audio.iter().copied().collect(),
                    speech: Duration::ZERO,
                    run_onset: Some(onset),
                });
            }
        }
        // A reply being prepared but not yet heard is dropped: the caller
        // is not done, and the agent must not talk over them. Their words
        // so far lead the next prompt.
        let unheard = self
            .reply
            .as_ref()
            .is_some_and(|r| r.from_llm && !r.playback.has_started());
        if unheard
            && self.interruption.is_none()
            && self.cancel_reply().is_some()
            && self.history.last().is_some_and(|m| m.role == Role::User)
            && let Some(words) = self.history.pop()
        {
            self.unanswered.push(words.content);
        }
        if let Some(reply) = self.reply.as_mut() {
            reply.playback.hold();
        }
    }

    fn consider_barge_in(&mut self, now: Instant) {
        if self.interruption.is_some() {
            return;
        }
        let Some(onset) = self.vad.speech_onset() else {
            return;
        };
        let speaking = self
            .reply
            .as_ref()
            .is_some_and(|r| r.playback.is_playing() || r.playback.has_started());
        if !speaking
            || now.saturating_duration_since(onset) < self.persona.turn.interrupt_min_speech
        {
            return;
        }
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        if !reply.playback.is_playing() && reply.playback.is_complete() {
            return;
        }
        reply.playback.clear();
        let turn = reply.turn;
        self.interruption = Some(Interruption { turn });
        self.emit(Output::ClearPlayback);
    }

    /// The caller paused: while nothing else is going on, their words are
    /// transcribed now, so that if the pause ends the turn the transcript is
    /// ready sooner. Speech after the pause calls for another transcription.
    fn speech_paused(&mut self, last_speech: Instant) {
        if self.config.transcribe_at_pauses && self.reply.is_none() && self.interruption.is_none() {
            self.request_transcript(last_speech);
        }
    }

    fn speech_ended(&mut self, now: Instant, last_speech: Instant) {
        let Some(u) = self.utterance.as_mut() else {
            return;
        };
        if let Some(onset) = u.run_onset.take() {
            u.speech += last_speech.saturating_duration_since(onset);
        }
        // A short sound during an interruption is noise: resume the reply.
        if self.interruption.is_some() && u.speech < self.persona.turn.false_interruption_max_speech
        {
            self.utterance = None;
            self.resume_reply(now);
            return;
        }
        // A blip too short to interrupt while a reply is under way: carry on.
        if self.interruption.is_none()
            && self.reply.is_some()
            && u.speech < self.persona.turn.interrupt_min_speech
        {
            self.utterance = None;
            self.resume_reply(now);
            return;
        }
        self.endpointing = Some(Endpointing {
            silence_since: last_speech,
            verdict: Verdict::Pending,
        });
        // Transcribe while the end of turn is being decided (unless the
        // pause already did): if the caller is done, the words are ready
        // sooner.
        if !self.transcript_covers(last_speech) {
            self.request_transcript(last_speech);
        }
        if self.persona.turn.use_end_of_turn_model {
            let Some(u) = self.utterance.as_ref() else {
                return;
            };
            let keep = samples_for(END_OF_TURN_AUDIO, INPUT_RATE_HZ);
            let start = u.audio.len().saturating_sub(keep);
            let turn = u.turn;
            let audio = u.audio[start..].to_vec();
            self.emit(Output::CheckEndOfTurn { turn, audio });
        }
    }

    fn endpoint_deadline(&self, e: &Endpointing) -> Instant {
        let t = &self.persona.turn;
        let wait = match e.verdict {
            Verdict::Complete => t.min_endpoint_delay,
            Verdict::Incomplete => t.max_endpoint_delay,
            // Without a verdict (yet) the silence fallback decides, never
            // sooner than a "complete" verdict would.
            Verdict::Pending => t.fallback_endpoint_delay.max(t.min_endpoint_delay),
        };
        e.silence_since + wait
    }

    fn end_of_turn_verdict(&mut self, now: Instant, turn: TurnId, probability: f32) {
        let current = self.utterance.as_ref().map(|u| u.turn);
        let threshold = self.persona.turn.end_of_turn_threshold;
        let Some(e) = self.endpointing.as_mut().filter(|_| current == Some(turn)) else {
            return;
        };
        e.verdict = if probability >= threshold {
            Verdict::Complete
        } else {
            Verdict::Incomplete
        };
        self.handle_timeout(now);
    }

    fn end_turn(&mut self, now: Instant) {
        let Some(e) = self.endpointing.take() else {
            return;
        };
        if !self.transcript_covers(e.silence_since) {
            self.request_transcript(e.silence_since);
        }
        let (Some(u), Some(request)) = (self.utterance.take(), self.stt_request.take()) else {
            return;
        };
        let mut timings = Timings::new(u.started, e.silence_since);
        timings.end_of_turn = Some(now);
        self.transcribing.push_back(EndedTurn {
            turn: u.turn,
            attempt: request.attempt,
            timings,
            text: None,
        });
        if let Some(text) = request.text {
            self.stt_final(now, u.turn, request.attempt, text);
        }
    }

    /// Whether the transcription asked for covers the utterance's speech
    /// up to `last_speech`.
    fn transcript_covers(&self, last_speech: Instant) -> bool {
        let (Some(u), Some(r)) = (self.utterance.as_ref(), self.stt_request.as_ref()) else {
            return false;
        };
        r.turn == u.turn && r.last_speech == last_speech
    }

    /// Asks for the transcript of the utterance so far, whose last speech
    /// window was at `last_speech`.
    fn request_transcript(&mut self, last_speech: Instant) {
        let Some(u) = self.utterance.as_ref() else {
            return;
        };
        self.next_attempt += 1;
        let (turn, attempt) = (u.turn, self.next_attempt);
        self.stt_request = Some(SttRequest {
            turn,
            attempt,
            last_speech,
            text: None,
        });
        let audio = u.audio.clone();
        self.emit(Output::Transcribe {
            turn,
            attempt,
            audio,
        });
    }

    fn stt_final(&mut self, now: Instant, turn: TurnId, attempt: u32, text: String) {
        if let Some(ended) = self
            .transcribing
            .iter_mut()
            .find(|t| t.turn == turn && t.attempt == attempt)
        {
            ended.text = Some(text);
            // Turns are answered in the order they were spoken.
            while let Some(text) = self.transcribing.front_mut().and_then(|t| t.text.take()) {
                if let Some(ended) = self.transcribing.pop_front() {
                    self.turn_transcribed(now, ended.turn, ended.timings, text);
                }
            }
            return;
        }
        let Some(request) = self
            .stt_request
            .as_mut()
            .filter(|r| r.turn == turn && r.attempt == attempt)
        else {
            return;
        };
        // Early: kept until the end of the turn is decided, and shown
        // meanwhile as the caller's words so far.
        let partial = text.trim().to_owned();
        request.text = Some(text);
        if let Some(u) = self.utterance.as_ref().filter(|u| u.turn == turn)
            && !partial.is_empty()
        {
            let started = u.started;
            self.event(EngineEvent::Transcript {
                turn: turn.0,
                role: Role::User,
                text: partial,
                is_final: false,
                started,
                ended: now,
            });
        }
    }

    /// An ended turn's transcript, once every earlier turn's is in.
    fn turn_transcribed(&mut self, now: Instant, turn: TurnId, mut timings: Timings, text: String) {
        timings.stt_final = Some(now);
        let text = text.trim().to_owned();
        if text.is_empty() || is_filler(&text) {
            // Nothing was said: noise, or a cough after an interruption.
            if self.reply.is_some() {
                self.resume_reply(now);
                return;
            }
            if self.unanswered.is_empty() {
                if self.utterance.is_none() && self.transcribing.is_empty() {
                    self.idle_since = Some(now);
                }
                return;
            }
            // Words whose reply the noise cancelled are still owed one.
        } else {
            if let Some(interruption) = self.interruption.take() {
                self.commit_interruption(interruption);
            } else {
                // The caller talked over a reply that had not reached them
                // yet: answer what they said instead.
                self.cancel_reply();
            }
            self.event(EngineEvent::Transcript {
                turn: turn.0,
                role: Role::User,
                text: text.clone(),
                is_final: true,
                started: timings.caller_started,
                ended: timings.caller_stopped,
            });
            self.unanswered.push(text);
        }
        if self.utterance.is_some() || !self.transcribing.is_empty() {
            // Still talking, or more words to come: answer them together.
            return;
        }
        let words = std::mem::take(&mut self.unanswered);
        self.history
            .push(ChatMessage::new(Role::User, words.join(" ")));
        let messages = self.context();
        let tools = self.offered_tools();
        self.reply = Some(self.new_reply(turn, Some(timings), true));
        self.emit(Output::Prompt {
            turn,
            messages,
            tools,
        });
    }

    fn resume_reply(&mut self, now: Instant) {
        self.interruption = None;
        let Some(reply) = self.reply.as_mut() else {
            return;
        };
        let out = reply.playback.resume();
        self.play(now, out);
        self.finish_reply_if_done(now);
    }

    fn commit_interruption(&mut self, interruption: Interruption) {
        let Some(reply) = self.cancel_reply() else {
            return;
        };
        let heard = reply.playback.heard_text();
        let intended = reply.playback.full_text();
        if !heard.is_empty() {
            self.history
                .push(ChatMessage::new(Role::Assistant, heard.clone()));
        }
        self.event(EngineEvent::AgentInterrupted {
            turn: interruption.turn.0,
            heard,
            intended,
        });
    }

    fn caller_idle(&mut self, now: Instant) {
        self.idle_since = None;
        if self.reprompts >= self.persona.turn.max_reprompts {
            self.stop_everything();
            self.emit(Output::HangUp(HangupReason::CallerSilent));
            return;
        }
        self.reprompts += 1;
        let text = self.persona.reprompt.trim().to_owned();
        if text.is_empty() {
            self.idle_since = Some(now);
        } else {
            let turn = TurnId(self.next_turn);
            self.next_turn += 1;
            self.say(turn, text);
        }
    }

    // --- endings --------------------------------------------------------

    fn fail(&mut self, now: Instant, stage: Stage, detail: String) {
        if let Phase::Apologizing { .. } = self.phase {
            return;
        }
        let playing = self.reply.as_ref().is_some_and(|r| r.playback.is_playing());
        self.cancel_reply();
        if playing {
            self.emit(Output::ClearPlayback);
        }
        self.clear_turn_state();
        self.pending_failure = Some((stage, detail));
        self.phase = Phase::Apologizing {
            deadline: now + self.config.apology_deadline,
        };
        self.emit(Output::PlayApology {
            mark: APOLOGY_MARK.to_owned(),
        });
    }

    fn hang_up_after_apology(&mut self) {
        let (stage, detail) = self
            .pending_failure
            .take()
            .unwrap_or((Stage::Llm, "provider failed".to_owned()));
        self.phase = Phase::Ended;
        self.emit(Output::HangUp(HangupReason::ProviderFailed {
            stage,
            detail,
        }));
    }

    fn clear_turn_state(&mut self) {
        self.utterance = None;
        self.endpointing = None;
        self.transcribing.clear();
        self.stt_request = None;
        self.interruption = None;
        self.idle_since = None;
    }

    fn stop_everything(&mut self) {
        self.cancel_reply();
        self.clear_turn_state();
        self.phase = Phase::Ended;
    }
}

/// Sounds that are not words: an interruption made of these is noise.
fn is_filler(text: &str) -> bool {
    let word: String = text
        .chars()
        .filter(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    matches!(
        word.as_str(),
        "" | "um" | "uh" | "hm" | "hmm" | "mm" | "ah" | "er"
    )
}
