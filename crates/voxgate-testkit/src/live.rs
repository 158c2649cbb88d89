//! A caller on a live Twilio media stream, in real time: it speaks 20 ms
//! μ-law frames at the carrier's pace and plays the agent's audio the way
//! Twilio does, echoing each mark once the audio before it has played, and
//! echoing every pending mark at once after a `clear`.
//!
//! What the caller said and what it heard are kept time-aligned, one 20 ms
//! frame per tick, so a test (or `voxgate call`) can write both sides.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use voxgate_core::audio::g711::{ulaw_decode_into, ulaw_encode_into};

use crate::{TwilioCaller, connect};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;
const TICK: Duration = Duration::from_millis(20);

/// Something the caller noticed, with the time since the stream started.
#[derive(Debug, Clone, PartialEq)]
pub enum Heard {
    /// Agent audio arrived (not yet played).
    Audio {
        /// When.
        at: Duration,
        /// Samples at 8 kHz.
        samples: usize,
    },
    /// The server sent `clear`.
    Clear {
        /// When.
        at: Duration,
    },
    /// The server closed the stream.
    Closed {
        /// When.
        at: Duration,
        /// The close code, if a close frame came.
        code: Option<u16>,
    },
}

/// How the simulated caller behaves.
#[derive(Debug, Clone)]
pub struct LiveCallerOptions {
    /// The `persona` stream parameter.
    pub persona: String,
    /// Whether marks are echoed as playback reaches them (a real carrier);
    /// without, the agent never learns its audio played.
    pub echo_marks: bool,
    /// Twilio's auth token, when the server checks stream signatures.
    pub auth_token: Option<String>,
}

impl Default for LiveCallerOptions {
    fn default() -> Self {
        Self {
            persona: "default".to_owned(),
            echo_marks: true,
            auth_token: None,
        }
    }
}

/// Both sides of the call as the caller experienced them, 8 kHz, aligned.
#[derive(Debug, Clone, Default)]
pub struct CallAudio {
    /// What the caller said (silence between utterances).
    pub caller: Vec<i16>,
    /// What the caller heard of the agent.
    pub agent: Vec<i16>,
}

/// A running caller. Dropping it hangs up abruptly (no `stop`).
#[derive(Debug)]
pub struct LiveCaller {
    /// The call's SID.
    pub call_sid: String,
    say: mpsc::UnboundedSender<Command>,
    heard: mpsc::UnboundedReceiver<Heard>,
    playing: watch::Receiver<bool>,
    task: JoinHandle<CallAudio>,
}

#[derive(Debug)]
enum Command {
    Say(Vec<i16>),
    Stop,
}

impl LiveCaller {
    /// Connects to `/stream` at `addr`, sends `connected` and `start`, and
    /// starts sending silence in real time.
    pub async fn dial(addr: SocketAddr, tag: &str, options: LiveCallerOptions) -> LiveCaller {
        let mut client = match &options.auth_token {
            Some(token) => {
                crate::connect_signed(addr, "/stream", &format!("wss://{addr}/stream"), token).await
            }
            None => connect(addr, "/stream").await,
        };
        let mut frames = TwilioCaller::new(tag);
        let call_sid = frames.call_sid.clone();
        for text in [
            frames.connected(),
            frames.start("+15550001111", "+15550002222", &options.persona),
        ] {
            client.send(Message::text(text)).await.expect("send start");
        }
        let (say_tx, say_rx) = mpsc::unbounded_channel();
        let (heard_tx, heard_rx) = mpsc::unbounded_channel();
        let (playing_tx, playing_rx) = watch::channel(false);
        let task = tokio::spawn(run(client, frames, options, say_rx, heard_tx, playing_tx));
        LiveCaller {
            call_sid,
            say: say_tx,
            heard: heard_rx,
            playing: playing_rx,
            task,
        }
    }

    /// Queues 8 kHz speech; it is sent in real time after what is queued.
    pub fn say(&self, samples: Vec<i16>) {
        let _ = self.say.send(Command::Say(samples));
    }

    /// The next thing the caller noticed, waiting at most `timeout`.
    pub async fn next_heard(&mut self, timeout: Duration) -> Option<Heard> {
        tokio::time::timeout(timeout, self.heard.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits until agent audio is playing (true) or has stopped (false).
    pub async fn wait_playing(&mut self, playing: bool, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.playing.wait_for(|p| *p == playing))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Forgets what the caller noticed until nothing arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) {
        while self.next_heard(quiet).await.is_some() {}
    }

    /// Whether agent audio is playing now.
    pub fn is_playing(&self) -> bool {
        *self.playing.borrow()
    }

    /// Waits until the agent has said all it has to say: it played what it
    /// sent, and sent nothing more for `quiet` (a reply's sentences may
    /// come with gaps between them). Audio heard meanwhile is consumed.
    pub async fn wait_agent_done(&mut self, quiet: Duration, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !self.wait_playing(false, left).await {
                return false;
            }
            self.drain(quiet).await;
            if !self.is_playing() {
                return true;
            }
        }
    }

    /// Sends `stop`, closes, and returns both sides of the call.
    pub async fn hang_up(self) -> CallAudio {
        let _ = self.say.send(Command::Stop);
        self.task.await.expect("caller task")
    }

    /// Waits for the server to end the call, then returns both sides.
    pub async fn wait_closed(self, timeout: Duration) -> Option<CallAudio> {
        let mut task = self.task;
        tokio::time::timeout(timeout, &mut task)
            .await
            .ok()
            .map(|r| r.expect("caller task"))
    }
}

/// Agent audio queued at the carrier, with the marks between it.
#[derive(Debug, Default)]
struct Playout {
    queue: VecDeque<Queued>,
}

#[derive(Debug)]
enum Queued {
    Audio(VecDeque<i16>),
    Mark(String),
}

impl Playout {
    /// Plays one frame; returns the frame and the marks it passed.
    fn play_frame(&mut self, frame: &mut Vec<i16>, marks: &mut Vec<String>) {
        frame.clear();
        while frame.len() < FRAME_SAMPLES {
            match self.queue.front_mut() {
                None => break,
                Some(Queued::Mark(_)) => {
                    if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                        marks.push(name);
                    }
                }
                Some(Queued::Audio(samples)) => {
                    let take = (FRAME_SAMPLES - frame.len()).min(samples.len());
                    frame.extend(samples.drain(..take));
                    if samples.is_empty() {
                        self.queue.pop_front();
                    }
                }
            }
        }
        // Marks right after the last audio played count as reached.
        while let Some(Queued::Mark(_)) = self.queue.front() {
            if let Some(Queued::Mark(name)) = self.queue.pop_front() {
                marks.push(name);
            }
        }
        frame.resize(FRAME_SAMPLES, 0);
    }

    fn is_playing(&self) -> bool {
        self.queue.iter().any(|q| matches!(q, Queued::Audio(_)))
    }

    /// `clear`: audio is dropped; every pending mark is echoed.
    fn clear(&mut self) -> Vec<String> {
        self.queue
            .drain(..)
            .filter_map(|q| match q {
                Queued::Mark(name) => Some(name),
                Queued::Audio(_) => None,
            })
            .collect()
    }
}

async fn run(
    client: crate::Client,
    mut frames: TwilioCaller,
    options: LiveCallerOptions,
    mut say: mpsc::UnboundedReceiver<Command>,
    heard: mpsc::UnboundedSender<Heard>,
    playing: watch::Sender<bool>,
) -> CallAudio {
    let (mut sink, mut stream) = client.split();
    let started = Instant::now();
    let mut ticks = tokio::time::interval(TICK);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut speech: VecDeque<i16> = VecDeque::new();
    let mut playout = Playout::default();
    let mut audio = CallAudio::default();
    let mut frame = Vec::with_capacity(FRAME_SAMPLES);
    let mut marks = Vec::new();
    let mut payload = Vec::with_capacity(FRAME_SAMPLES);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let spoken: Vec<i16> = (0..FRAME_SAMPLES)
                    .map(|_| speech.pop_front().unwrap_or(0))
                    .collect();
                payload.clear();
                ulaw_encode_into(&spoken, &mut payload);
                audio.caller.extend_from_slice(&spoken);
                if sink.send(Message::text(frames.media(&payload))).await.is_err() {
                    break;
                }
                marks.clear();
                playout.play_frame(&mut frame, &mut marks);
                audio.agent.extend_from_slice(&frame);
                playing.send_replace(playout.is_playing());
                if options.echo_marks {
                    for name in &marks {
                        if sink.send(Message::text(frames.mark(name))).await.is_err() {
                            break;
                        }
                    }
                }
            }
            command = say.recv() => match command {
                Some(Command::Say(samples)) => speech.extend(samples),
                Some(Command::Stop) | None => {
                    let _ = sink.send(Message::text(frames.stop())).await;
                    let _ = sink.close().await;
                    // Read until the server's close so the call ends cleanly.
                    while let Ok(Some(Ok(message))) =
                        tokio::time::timeout(Duration::from_secs(5), stream.next()).await
                    {
                        if matches!(message, Message::Close(_)) {
                            break;
                        }
                    }
                    break;
                }
            },
            message = stream.next() => {
                let at = started.elapsed();
                match message {
                    Some(Ok(Message::Text(text))) => {
                        let Ok(value) = serde_json::from_str::<Value>(text.as_str()) else {
                            continue;
                        };
                        match value["event"].as_str() {
                            Some("media") => {
                                let bytes = value["media"]["payload"]
                                    .as_str()
                                    .and_then(|p| STANDARD.decode(p).ok())
                                    .unwrap_or_default();
                                let mut samples = Vec::with_capacity(bytes.len());
                                ulaw_decode_into(&bytes, &mut samples);
                                let _ = heard.send(Heard::Audio { at, samples: samples.len() });
                                playout.queue.push_back(Queued::Audio(samples.into()));
                            }
                            Some("mark") => {
                                let name = value["mark"]["name"].as_str().unwrap_or_default();
                                playout.queue.push_back(Queued::Mark(name.to_owned()));
                            }
                            Some("clear") => {
                                let _ = heard.send(Heard::Clear { at });
                                let pending = playout.clear();
                                if options.echo_marks {
                                    for name in pending {
                                        let _ = sink.send(Message::text(frames.mark(&name))).await;
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    Some(Ok(Message::Close(frame))) => {
                        let code = frame.map(|f| u16::from(f.code));
                        let _ = heard.send(Heard::Closed { at, code });
                        let _ = sink.close().await;
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        let _ = heard.send(Heard::Closed { at, code: None });
                        break;
                    }
                }
            }
        }
    }
    playing.send_replace(false);
    audio
}
