//! Turns per-window speech probabilities (from Silero VAD or any model)
//! into speech start/end decisions with hysteresis and minimum durations.

use std::time::{Duration, Instant};

/// VAD decision parameters, per persona.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadSettings {
    /// Probability at or above which a window counts as speech.
    pub activation_threshold: f32,
    /// Probability below which a window counts as silence (hysteresis:
    /// between the two thresholds the current state holds).
    pub deactivation_threshold: f32,
    /// Speech must last this long before it counts as started.
    pub min_speech: Duration,
    /// Silence must last this long before speech counts as ended.
    pub min_silence: Duration,
    /// Audio kept from before the detected onset, so STT hears the first syllable.
    pub prefix_padding: Duration,
}

impl Default for VadSettings {
    fn default() -> Self {
        Self {
            activation_threshold: 0.5,
            deactivation_threshold: 0.35,
            min_speech: Duration::from_millis(96),
            min_silence: Duration::from_millis(320),
            prefix_padding: Duration::from_millis(300),
        }
    }
}

/// A speech boundary decided by the smoother.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VadEvent {
    /// Speech started; `onset` is when the first speech window arrived.
    SpeechStarted {
        /// First speech window.
        onset: Instant,
    },
    /// The speaker has been silent for half of `min_silence`: speech will
    /// likely end, so what was said is worth transcribing ahead. Reported
    /// once per pause; speech may still go on.
    Paused {
        /// Last speech window.
        last_speech: Instant,
    },
    /// Speech ended; `last_speech` is when the last speech window arrived.
    SpeechEnded {
        /// Last speech window.
        last_speech: Instant,
    },
}

/// Hysteresis and minimum-duration smoothing over VAD windows.
#[derive(Debug, Clone)]
pub struct VadSmoother {
    settings: VadSettings,
    speaking: bool,
    /// Onset of the current run of speech windows (while not yet speaking).
    run_start: Option<Instant>,
    /// Last window that counted as speech.
    last_speech: Option<Instant>,
    /// Whether the current pause was reported.
    pause_reported: bool,
}

impl VadSmoother {
    /// A smoother in the silent state.
    pub fn new(settings: VadSettings) -> Self {
        Self {
            settings,
            speaking: false,
            run_start: None,
            last_speech: None,
            pause_reported: false,
        }
    }

    /// Replaces the settings; the current state is kept.
    pub fn set_settings(&mut self, settings: VadSettings) {
        self.settings = settings;
    }

    /// Whether speech is in progress.
    pub fn is_speaking(&self) -> bool {
        self.speaking
    }

    /// When the current speech began, while speaking.
    pub fn speech_onset(&self) -> Option<Instant> {
        if self.speaking { self.run_start } else { None }
    }

    /// Feeds one window's probability, observed at `now`.
    pub fn push(&mut self, now: Instant, probability: f32) -> Option<VadEvent> {
        let s = self.settings;
        if self.speaking {
            if probability >= s.deactivation_threshold {
                self.last_speech = Some(now);
                self.pause_reported = false;
                return None;
            }
            let last = self.last_speech.unwrap_or(now);
            let silence = now.saturating_duration_since(last);
            if silence >= s.min_silence {
                self.speaking = false;
                self.run_start = None;
                return Some(VadEvent::SpeechEnded { last_speech: last });
            }
            if !self.pause_reported && silence >= s.min_silence / 2 {
                self.pause_reported = true;
                return Some(VadEvent::Paused { last_speech: last });
            }
            return None;
        }
        if probability >= s.activation_threshold {
            let onset = *self.run_start.get_or_insert(now);
            self.last_speech = Some(now);
            if now.saturating_duration_since(onset) >= s.min_speech {
                self.speaking = true;
                self.pause_reported = false;
                return Some(VadEvent::SpeechStarted { onset });
            }
        } else if probability < s.deactivation_threshold {
            self.run_start = None;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_millis(32);

    fn feed(smoother: &mut VadSmoother, t0: Instant, probs: &[f32]) -> Vec<(usize, VadEvent)> {
        probs
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                let now = t0 + WINDOW * u32::try_from(i).unwrap_or(u32::MAX);
                smoother.push(now, *p).map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn speech_needs_min_speech_and_ends_after_min_silence() {
        let t0 = Instant::now();
        let mut v = VadSmoother::new(VadSettings::default());
        let mut probs = vec![0.1; 3];
        probs.extend([0.9; 10]);
        probs.extend([0.05; 12]);
        let events = feed(&mut v, t0, &probs);
        let last_speech = t0 + WINDOW * 12;
        assert_eq!(
            events,
            vec![
                (
                    6,
                    VadEvent::SpeechStarted {
                        onset: t0 + WINDOW * 3
                    }
                ),
                // 160 ms (half of min_silence) after the last speech window.
                (17, VadEvent::Paused { last_speech }),
                (22, VadEvent::SpeechEnded { last_speech }),
            ]
        );
    }

    #[test]
    fn each_pause_is_reported_once() {
        let t0 = Instant::now();
        let mut v = VadSmoother::new(VadSettings::default());
        let mut probs = vec![0.9; 5];
        // A 192 ms pause, speech again, then silence until the end.
        probs.extend([0.05; 6]);
        probs.extend([0.9; 3]);
        probs.extend([0.05; 11]);
        let events = feed(&mut v, t0, &probs);
        assert_eq!(
            events,
            vec![
                (3, VadEvent::SpeechStarted { onset: t0 }),
                (
                    9,
                    VadEvent::Paused {
                        last_speech: t0 + WINDOW * 4
                    }
                ),
                (
                    18,
                    VadEvent::Paused {
                        last_speech: t0 + WINDOW * 13
                    }
                ),
                (
                    23,
                    VadEvent::SpeechEnded {
                        last_speech: t0 + WINDOW * 13
                    }
                ),
            ]
        );
    }

    #[test]
    fn a_blip_shorter_than_min_speech_is_ignored() {
        let t0 = Instant::now();
        let mut v = VadSmoother::new(VadSettings::default());
        let events = feed(&mut v, t0, &[0.9, 0.9, 0.1, 0.9, 0.1, 0.1]);
        assert!(events.is_empty(), "{events:?}");
    }

    #[test]
    fn hysteresis_keeps_speech_through_middling_windows() {
        let t0 = Instant::now();
        let mut v = VadSmoother::new(VadSettings::default());
        let mut probs = vec![0.9; 5];
        probs.extend([0.4; 20]);
        let events = feed(&mut v, t0, &probs);
        assert_eq!(events.len(), 1, "only the start: {events:?}");
        assert!(v.is_speaking());
    }
}
