//! A discrete-event simulation of one call around the sans-IO engine: a
//! scripted caller (speech or silence, one VAD window every 32 ms), fake
//! providers that answer after virtual latencies, and a carrier that plays
//! audio in real time and echoes marks as Twilio does, including echoing
//! every pending mark at once after a clear.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use voxgate_core::engine::{
    CallEngine, EngineConfig, EngineEvent, HangupReason, Input, Output, Persona, SegmentId, Stage,
    ToolCall, TurnId,
};

/// One VAD window (Silero at 16 kHz: 512 samples).
pub const WINDOW: Duration = Duration::from_millis(32);
const OUTPUT_RATE: u32 = 8_000;

/// What the fake providers do.
#[derive(Debug, Clone)]
pub struct Fakes {
    /// Transcripts returned for successive turns.
    pub transcripts: VecDeque<String>,
    pub stt_latency: Duration,
    /// End-of-turn verdict; None models "no end-of-turn model answer".
    pub end_of_turn: Option<f32>,
    pub end_of_turn_latency: Duration,
    /// Replies for successive prompts.
    pub replies: VecDeque<String>,
    pub llm_first_token: Duration,
    pub llm_token_interval: Duration,
    pub tts_latency: Duration,
    /// Audio per character of text.
    pub tts_per_char: Duration,
    /// Fail the LLM instead of answering.
    pub fail_llm: bool,
    /// Tool calls made after the text of successive prompts (none when
    /// empty).
    pub tool_calls: VecDeque<Vec<ToolCall>>,
    /// What the persona's tools answer, by tool name.
    pub tool_results: HashMap<String, String>,
    pub tool_latency: Duration,
}

impl Default for Fakes {
    fn default() -> Self {
        Self {
            transcripts: VecDeque::new(),
            stt_latency: Duration::from_millis(300),
            end_of_turn: Some(0.9),
            end_of_turn_latency: Duration::from_millis(40),
            replies: VecDeque::new(),
            llm_first_token: Duration::from_millis(150),
            llm_token_interval: Duration::from_millis(10),
            tts_latency: Duration::from_millis(100),
            tts_per_char: Duration::from_millis(60),
            fail_llm: false,
            tool_calls: VecDeque::new(),
            tool_results: HashMap::new(),
            tool_latency: Duration::from_millis(400),
        }
    }
}

/// Whether the scripted caller is talking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Caller {
    Speaking,
    Silent,
}

pub struct Sim {
    pub engine: CallEngine,
    pub now: Instant,
    t0: Instant,
    pub fakes: Fakes,
    /// Provider answers waiting for their time.
    scheduled: Vec<(Instant, u64, Input)>,
    seq: u64,
    segment_turns: HashMap<SegmentId, TurnId>,
    /// What the caller said in each turn, once asked.
    turn_words: HashMap<TurnId, String>,
    /// Marks the carrier will echo, with the time playback reaches them.
    carrier: VecDeque<(Instant, String)>,
    carrier_busy_until: Instant,
    /// Everything the engine emitted, with the time since the start.
    pub log: Vec<(Duration, Output)>,
    pub hung_up: Option<HangupReason>,
    pub transferred_to: Option<String>,
}

impl Sim {
    pub fn new(persona: Persona, fakes: Fakes) -> Sim {
        Sim::with_config(EngineConfig::default(), persona, fakes)
    }

    pub fn with_config(config: EngineConfig, persona: Persona, fakes: Fakes) -> Sim {
        let t0 = Instant::now();
        Sim {
            engine: CallEngine::new(config, persona),
            now: t0,
            t0,
            fakes,
            scheduled: Vec::new(),
            seq: 0,
            segment_turns: HashMap::new(),
            turn_words: HashMap::new(),
            carrier: VecDeque::new(),
            carrier_busy_until: t0,
            log: Vec::new(),
            hung_up: None,
            transferred_to: None,
        }
    }

    /// Time since the call started.
    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    pub fn input(&mut self, input: Input) {
        self.engine.handle(self.now, input);
        self.drain();
    }

    fn schedule(&mut self, after: Duration, input: Input) {
        self.seq += 1;
        self.scheduled.push((self.now + after, self.seq, input));
    }

    /// Runs the simulation for `duration` with the caller as given.
    pub fn run(&mut self, duration: Duration, caller: Caller) {
        let end = self.now + duration;
        while self.now + WINDOW <= end {
            self.tick(caller);
        }
    }

    fn tick(&mut self, caller: Caller) {
        self.now += WINDOW;
        self.deliver_due();
        let (sample, probability) = match caller {
            Caller::Speaking => (1000_i16, 0.95),
            Caller::Silent => (0, 0.02),
        };
        self.engine
            .handle(self.now, Input::CallerAudio(vec![sample; 512]));
        self.engine.handle(self.now, Input::Vad { probability });
        if self.engine.poll_timeout().is_some_and(|t| t <= self.now) {
            self.engine.handle_timeout(self.now);
        }
        self.drain();
    }

    fn deliver_due(&mut self) {
        loop {
            let now = self.now;
            let due_mark = self.carrier.front().is_some_and(|(t, _)| *t <= now);
            let due_input = self
                .scheduled
                .iter()
                .enumerate()
                .filter(|(_, (t, _, _))| *t <= now)
                .min_by_key(|(_, (t, seq, _))| (*t, *seq))
                .map(|(i, _)| i);
            if due_mark {
                if let Some((_, name)) = self.carrier.pop_front() {
                    self.engine.handle(now, Input::MarkPlayed { name });
                }
            } else if let Some(i) = due_input {
                let (_, _, input) = self.scheduled.remove(i);
                self.engine.handle(now, input);
            } else {
                break;
            }
            if self.engine.poll_timeout().is_some_and(|t| t <= now) {
                self.engine.handle_timeout(now);
            }
            self.drain();
        }
    }

    fn drain(&mut self) {
        while let Some(output) = self.engine.poll_output() {
            self.react(&output);
            self.log.push((self.elapsed(), output));
        }
    }

    fn react(&mut self, output: &Output) {
        match output {
            Output::CheckEndOfTurn { turn, .. } => {
                if let Some(probability) = self.fakes.end_of_turn {
                    let latency = self.fakes.end_of_turn_latency;
                    self.schedule(
                        latency,
                        Input::EndOfTurn {
                            turn: *turn,
                            probability,
                        },
                    );
                }
            }
            Output::Transcribe { turn, attempt, .. } => {
                // The words of a turn do not change with the request.
                let transcripts = &mut self.fakes.transcripts;
                let text = self
                    .turn_words
                    .entry(*turn)
                    .or_insert_with(|| transcripts.pop_front().unwrap_or_default())
                    .clone();
                let latency = self.fakes.stt_latency;
                self.schedule(
                    latency,
                    Input::SttFinal {
                        turn: *turn,
                        attempt: *attempt,
                        text,
                    },
                );
            }
            Output::Prompt { turn, .. } => {
                if self.fakes.fail_llm {
                    self.schedule(
                        self.fakes.llm_first_token,
                        Input::ProviderFailed {
                            stage: Stage::Llm,
                            detail: "model server returned 500".into(),
                        },
                    );
                    return;
                }
                let reply = self.fakes.replies.pop_front().unwrap_or_default();
                let mut at = self.fakes.llm_first_token;
                for word in reply.split_inclusive(' ') {
                    self.schedule(
                        at,
                        Input::LlmToken {
                            turn: *turn,
                            text: word.to_owned(),
                        },
                    );
                    at += self.fakes.llm_token_interval;
                }
                for call in self.fakes.tool_calls.pop_front().unwrap_or_default() {
                    self.schedule(at, Input::LlmToolCall { turn: *turn, call });
                }
                self.schedule(at, Input::LlmDone { turn: *turn });
            }
            Output::Speak {
                turn,
                segment,
                text,
            } => {
                self.segment_turns.insert(*segment, *turn);
                let audio = self.fakes.tts_per_char * u32::try_from(text.len()).unwrap_or(0);
                let samples = samples(audio);
                let latency = self.fakes.tts_latency;
                // Two pieces, like a streaming TTS.
                let half = samples.len() / 2;
                self.schedule(
                    latency,
                    Input::TtsAudio {
                        segment: *segment,
                        samples: samples[..half].to_vec(),
                    },
                );
                self.schedule(
                    latency + Duration::from_millis(20),
                    Input::TtsAudio {
                        segment: *segment,
                        samples: samples[half..].to_vec(),
                    },
                );
                self.schedule(
                    latency + Duration::from_millis(20),
                    Input::TtsDone { segment: *segment },
                );
            }
            Output::CancelLlm { turn } => {
                let turn = *turn;
                self.scheduled.retain(|(_, _, i)| {
                    !matches!(i, Input::LlmToken { turn: t, .. } | Input::LlmDone { turn: t } | Input::LlmToolCall { turn: t, .. } | Input::ToolResult { turn: t, .. } if *t == turn)
                });
            }
            Output::CancelTts { turn } => {
                let turn = *turn;
                let turns = self.segment_turns.clone();
                self.scheduled.retain(|(_, _, i)| match i {
                    Input::TtsAudio { segment, .. } | Input::TtsDone { segment } => {
                        turns.get(segment) != Some(&turn)
                    }
                    _ => true,
                });
            }
            Output::PlayAudio(audio) => {
                let duration = Duration::from_micros(
                    u64::try_from(audio.samples.len()).unwrap_or(0) * 1_000_000
                        / u64::from(OUTPUT_RATE),
                );
                self.enqueue_playback(duration, audio.mark.clone());
            }
            Output::PlayApology { mark } => {
                self.enqueue_playback(Duration::from_millis(1500), mark.clone());
            }
            Output::ClearPlayback => {
                // Twilio echoes every pending mark at once after a clear.
                let now = self.now;
                for (t, _) in self.carrier.iter_mut() {
                    *t = now;
                }
                self.carrier_busy_until = now;
            }
            Output::HangUp(reason) => self.hung_up = Some(reason.clone()),
            Output::Transfer { to } => self.transferred_to = Some(to.clone()),
            Output::RunTool { turn, call } => {
                let content = self
                    .fakes
                    .tool_results
                    .get(&call.name)
                    .cloned()
                    .unwrap_or_default();
                self.schedule(
                    self.fakes.tool_latency,
                    Input::ToolResult {
                        turn: *turn,
                        call_id: call.id.clone(),
                        content,
                    },
                );
            }
            _ => {}
        }
    }

    fn enqueue_playback(&mut self, duration: Duration, mark: String) {
        let start = self.carrier_busy_until.max(self.now);
        self.carrier_busy_until = start + duration;
        self.carrier.push_back((self.carrier_busy_until, mark));
    }

    // --- queries over the log ------------------------------------------

    pub fn outputs(&self) -> impl Iterator<Item = &(Duration, Output)> {
        self.log.iter()
    }

    pub fn count(&self, pred: impl Fn(&Output) -> bool) -> usize {
        self.log.iter().filter(|(_, o)| pred(o)).count()
    }

    pub fn first_time(&self, pred: impl Fn(&Output) -> bool) -> Option<Duration> {
        self.log.iter().find(|(_, o)| pred(o)).map(|(t, _)| *t)
    }

    pub fn events(&self) -> Vec<EngineEvent> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn prompts(&self) -> Vec<Vec<voxgate_core::engine::ChatMessage>> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Prompt { messages, .. } => Some(messages.clone()),
                _ => None,
            })
            .collect()
    }

    /// The tools offered with each prompt, by name.
    pub fn offered_tools(&self) -> Vec<Vec<String>> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Prompt { tools, .. } => {
                    Some(tools.iter().map(|t| t.name.clone()).collect())
                }
                _ => None,
            })
            .collect()
    }

    pub fn spoken_texts(&self) -> Vec<String> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Speak { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    }

    /// Answers, lets the greeting play out, and returns the sim.
    pub fn answered(persona: Persona, fakes: Fakes) -> Sim {
        let mut sim = Sim::new(persona, fakes);
        sim.input(Input::Answered);
        sim.run(Duration::from_secs(3), Caller::Silent);
        sim
    }
}

/// Samples of `duration` at the output rate.
pub fn samples(duration: Duration) -> Vec<i16> {
    let n = usize::try_from(duration.as_millis()).unwrap_or(0) * OUTPUT_RATE as usize / 1000;
    vec![100; n]
}
