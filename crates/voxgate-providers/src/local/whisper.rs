//! Speech to text with Whisper (tiny.en) in CTranslate2 format, through
//! `ct2rs`'s low-level binding.
//!
//! ct2rs's high-level `Whisper` is not used: it always builds the
//! multilingual prompt (`<|en|><|transcribe|>`), which English-only `.en`
//! models do not expect, and it pads the log-mel spectrogram with zeros
//! instead of taking the log-mel of zero-padded audio. Both make tiny.en
//! mishear. So this module computes Whisper's log-mel itself (as the
//! reference implementation does), builds the prompt from the model's
//! `is_multilingual()` and decodes the ids with the model's
//! `tokenizer.json`. With that, the result matches Python faster-whisper.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use crate::{ProviderError, TaskScope, TranscribeUtterance};

const PROVIDER: &str = "whisper";

/// Whisper's input rate.
const SAMPLE_RATE: usize = 16_000;
/// Whisper was trained on 30 s windows: the most it can hear at once.
const N_SAMPLES: usize = 30 * SAMPLE_RATE;
const N_FFT: usize = 400;
const HOP: usize = 160;
/// `N_SAMPLES / HOP`: the encoder's longest input.
const N_FRAMES: usize = N_SAMPLES / HOP;
const N_MELS: usize = 80;
const N_BINS: usize = N_FFT / 2 + 1;

/// How much audio Whisper's encoder sees for one utterance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderWindow {
    /// Always 30 s, the utterance padded with silence, as Whisper was
    /// trained: the cost is the same for any length.
    Full,
    /// The utterance plus `padding` of silence, at least `min` long (and at
    /// most 30 s). The encoder's cost falls with the window.
    Fitted {
        /// Silence after the utterance.
        padding: Duration,
        /// The shortest window.
        min: Duration,
    },
}

impl EncoderWindow {
    /// The turn plus 2 s, at least 10 s: on the STT bench's 64 phone-quality
    /// clips, 2.2x faster than the full window and about as accurate (the
    /// errors differ, see [`WhisperConfig::with_window`]).
    pub const DEFAULT: EncoderWindow = EncoderWindow::Fitted {
        padding: Duration::from_secs(2),
        min: Duration::from_secs(10),
    };

    /// Log-mel frames for `samples` of audio: even, as the encoder's
    /// second convolution halves them.
    fn frames(self, samples: usize) -> usize {
        let frames = match self {
            EncoderWindow::Full => N_FRAMES,
            EncoderWindow::Fitted { padding, min } => {
                let padded = samples + duration_samples(padding);
                padded.max(duration_samples(min)).div_ceil(HOP)
            }
        };
        frames.next_multiple_of(2).clamp(2, N_FRAMES)
    }
}

fn duration_samples(duration: Duration) -> usize {
    usize::try_from(duration.as_millis()).map_or(N_SAMPLES, |ms| ms * SAMPLE_RATE / 1000)
}

/// How [`WhisperStt`] runs the model.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    threads: usize,
    int8: bool,
    silence_rms: f32,
    window: EncoderWindow,
}

impl Default for WhisperConfig {
    fn default() -> Self {
        WhisperConfig {
            threads: 2,
            int8: false,
            // -60 dBFS: below any real caller, above digital silence and
            // dither. Whisper invents text ("Thank you.") for silence, so
            // such input is answered without running the model.
            silence_rms: 0.001,
            window: EncoderWindow::DEFAULT,
        }
    }
}

impl WhisperConfig {
    /// Threads used by one transcription (default 2). Transcriptions that
    /// arrive while one runs wait for it.
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Runs the model quantised to int8 (default off): 10-25% faster,
    /// slightly less accurate.
    pub fn with_int8(mut self, int8: bool) -> Self {
        self.int8 = int8;
        self
    }

    /// Audio whose RMS (full scale = 1.0) is below this is taken as silence
    /// and transcribed as "" without running the model (default 0.001,
    /// -60 dBFS).
    pub fn with_silence_rms(mut self, rms: f32) -> Self {
        self.silence_rms = rms;
        self
    }

    /// How much audio the encoder sees (default [`EncoderWindow::DEFAULT`]).
    /// `cargo bench -p voxgate-providers --bench stt` weighs the choice on
    /// phone-quality speech, 16 sentences at 4 offsets each. Fitted windows
    /// of 5 to 20 s are 1.4 to 3.2x faster than the full 30 s at about the
    /// same word error rate, but their mistakes differ: "What is the capital
    /// of France?" comes out as "... capital and friends?" at 2 or 3 of 4
    /// offsets in every fitted window, never in the full one. The full
    /// window gets a few more clips exactly right (12 of 64 against 9 for
    /// the default) and makes more word errors (30 % against 24 %). Without
    /// a minimum, short turns make the model loop.
    pub fn with_window(mut self, window: EncoderWindow) -> Self {
        self.window = window;
        self
    }
}

/// Whisper speech to text, loaded once and shared by every call.
///
/// Cloning is cheap and shares the model (about 250 MiB RSS once it has
/// run). Each [`TranscribeUtterance::transcribe`] runs on Tokio's blocking pool
/// (so it must be called inside a Tokio runtime). Its cost follows the
/// encoder's window ([`WhisperConfig::with_window`]): on 2 idle cores with
/// AVX-512 and int8, about 0.26 s for a turn of a few seconds in the
/// default window, 0.6 s in the full 30 s one (1 thread: ~1.8x more; AVX2
/// only: ~2x more). Calls that overlap are queued by CTranslate2. Silence
/// costs nothing.
#[derive(Clone)]
pub struct WhisperStt {
    inner: Arc<Inner>,
}

struct Inner {
    model: Whisper,
    tokenizer: Tokenizer,
    log_mel: LogMel,
    prompt: Vec<String>,
    /// Ids at or above this are special (end of text, language, task and
    /// timestamp tokens) and never part of a transcript.
    first_special_id: usize,
    options: WhisperOptions,
    silence_rms: f32,
    window: EncoderWindow,
}

impl std::fmt::Debug for WhisperStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WhisperStt")
            .field("prompt", &self.inner.prompt)
            .finish_non_exhaustive()
    }
}

impl WhisperStt {
    /// Loads the CTranslate2 Whisper model in `dir` (`model.bin`,
    /// `config.json`, `tokenizer.json`; see
    /// `voxgate_models::ModelPaths::whisper_dir`). Takes 0.2-0.5 s.
    pub fn load(dir: &Path, config: WhisperConfig) -> Result<WhisperStt, ProviderError> {
        let load_error = |reason: String| ProviderError::Load {
            what: format!("Whisper model in {}", dir.display()),
            reason,
        };
        let ct2_config = Config {
            device: Device::CPU,
            compute_type: if config.int8 {
                ComputeType::INT8
            } else {
                // The weights are float16, which CTranslate2 runs as float32
                // on CPU anyway; saying so spares its warning.
                ComputeType::FLOAT32
            },
            num_threads_per_replica: config.threads,
            ..Config::default()
        };
        let model = Whisper::new(dir, ct2_config).map_err(|e| load_error(format!("{e:#}")))?;
        let tokenizer = Tokenizer::from_file(dir.join("tokenizer.json"))
            .map_err(|e| load_error(format!("tokenizer.json: {e}")))?;
        let special_id = |token: &str| {
            tokenizer
                .token_to_id(token)
                .ok_or_else(|| load_error(format!("tokenizer.json lacks {token}")))
        };
        let first_special_id = special_id("<|endoftext|>")? as usize;
        let prompt: &[&str] = if model.is_multilingual() {
            &[
                "<|startoftranscript|>",
                "<|en|>",
                "<|transcribe|>",
                "<|notimestamps|>",
            ]
        } else {
            // What English-only (.en) models were trained with.
            &["<|startoftranscript|>", "<|notimestamps|>"]
        };
        for token in prompt {
            special_id(token)?;
        }
        let options = WhisperOptions {
            beam_size: 1,
            // [-1]: the model's own suppress list (config.json), as in
            // Whisper; suppress_blank keeps it from ending before a word.
            suppress_tokens: vec![-1],
            suppress_blank: true,
            return_no_speech_prob: true,
            return_scores: true,
            ..WhisperOptions::default()
        };
        Ok(WhisperStt {
            inner: Arc::new(Inner {
                model,
                tokenizer,
                log_mel: LogMel::new(),
                prompt: prompt.iter().map(|t| (*t).to_owned()).collect(),
                first_special_id,
                options,
                silence_rms: config.silence_rms,
                window: config.window,
            }),
        })
    }

    /// Transcribes 16 kHz mono audio on the calling thread (blocking).
    /// Audio longer than 30 s is cut to its last 30 s.
    pub fn transcribe_blocking(&self, audio: &[i16]) -> Result<String, ProviderError> {
        self.inner.transcribe(audio)
    }
}

impl TranscribeUtterance for WhisperStt {
    /// Runs on the blocking pool, not in `scope`: a transcription cannot
    /// be cancelled midway, and is skipped when nobody waits for it.
    fn transcribe(
        &self,
        audio: Vec<i16>,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<String, ProviderError>> {
        let (tx, rx) = mpsc::channel(1);
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            if tx.is_closed() {
                return;
            }
            let result = super::survive_panic(PROVIDER, || inner.transcribe(&audio));
            // The caller may have stopped waiting; nothing to do then.
            let _ = tx.blocking_send(result);
        });
        rx
    }
}

impl Inner {
    fn transcribe(&self, audio: &[i16]) -> Result<String, ProviderError> {
        // The caller's most recent words matter most.
        let audio = &audio[audio.len().saturating_sub(N_SAMPLES)..];
        let samples: Vec<f32> = audio.iter().map(|&s| f32::from(s) / 32768.0).collect();
        if rms(&samples) < self.silence_rms {
            return Ok(String::new());
        }
        let max_tokens = max_tokens(samples.len());
        let window = self.window.frames(samples.len());
        let mut ids = self.decode(&samples, window, max_tokens)?;
        if window < N_FRAMES && (ids.len() >= max_tokens || repeats_itself(&ids)) {
            // The model loops, as it may in a window shorter than it was
            // trained on. The full window is what it knows.
            ids = self.decode(&samples, N_FRAMES, max_tokens)?;
        }
        let text = self
            .tokenizer
            .decode(&ids, true)
            .map_err(|e| inference(format!("decoding tokens: {e}")))?;
        Ok(text.trim().to_owned())
    }

    /// The text tokens Whisper decodes from `frames` of log-mel of
    /// `samples`, at most `max_tokens`; none when it hears no speech.
    fn decode(
        &self,
        samples: &[f32],
        frames: usize,
        max_tokens: usize,
    ) -> Result<Vec<u32>, ProviderError> {
        let mut mel = self.log_mel.compute(samples, frames);
        let features = StorageView::new(&[1, N_MELS, frames], &mut mel, Device::CPU)
            .map_err(|e| inference(format!("features: {e:#}")))?;
        let options = WhisperOptions {
            max_length: self.prompt.len() + max_tokens,
            ..self.options.clone()
        };
        let results = self
            .model
            .generate(&features, std::slice::from_ref(&self.prompt), &options)
            .map_err(|e| inference(format!("{e:#}")))?;
        let Some(result) = results.into_iter().next() else {
            return Err(inference("no result for the batch".to_owned()));
        };
        // Whisper's own "no speech" rule (as in openai-whisper and
        // faster-whisper): the model says nobody speaks and is unsure of
        // what it decoded. Skips hallucinations on noise that is not silent.
        let avg_logprob = result.scores.first().copied().unwrap_or(0.0);
        if result.no_speech_prob > 0.6 && avg_logprob < -1.0 {
            return Ok(Vec::new());
        }
        Ok(result
            .sequences_ids
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .filter(|&id| id < self.first_special_id)
            .filter_map(|id| u32::try_from(id).ok())
            .collect())
    }
}

fn inference(reason: String) -> ProviderError {
    ProviderError::Inference {
        provider: PROVIDER,
        reason,
    }
}

/// Whether some run of up to 8 tokens comes three times in a row ("Yes.
/// Yes. Yes."): how a looping decoder reads, and rare in speech.
fn repeats_itself(ids: &[u32]) -> bool {
    const LONGEST: usize = 8;
    const TIMES: usize = 3;
    (1..=LONGEST).any(|n| {
        ids.windows(n * TIMES).any(|run| {
            let (first, rest) = run.split_at(n);
            rest.chunks_exact(n).all(|chunk| chunk == first)
        })
    })
}

/// The most text tokens `samples` of speech can hold: fast speech is about
/// 4 words, 5-6 tokens, a second; a decoder that writes more is looping.
fn max_tokens(samples: usize) -> usize {
    const PER_SECOND: usize = 8;
    const AT_LEAST: usize = 16;
    AT_LEAST + samples * PER_SECOND / SAMPLE_RATE
}

fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / samples.len() as f64).sqrt() as f32
}

/// Whisper's log-mel spectrogram of one window, as in openai-whisper's
/// `log_mel_spectrogram` (and HF's `WhisperFeatureExtractor`): the audio is
/// zero-padded to the window, framed with a centred periodic Hann window, and
/// the log of the mel power is clamped to 8 below its maximum and scaled.
struct LogMel {
    fft: Arc<dyn Fft<f32>>,
    window: Vec<f32>,
    /// `N_MELS x N_BINS`, row-major (Slaney-normalised, as Whisper's).
    filters: Vec<f32>,
    /// Each filter's non-zero bins: a triangle a few bins wide, so using
    /// only these makes the filter bank ~20x cheaper.
    spans: Vec<std::ops::Range<usize>>,
}

impl LogMel {
    fn new() -> LogMel {
        let fft = FftPlanner::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * n as f32 / N_FFT as f32).cos())
            .collect();
        let bank = mel_spec::mel::mel(SAMPLE_RATE as f64, N_FFT, N_MELS, None, None, false, true);
        let filters: Vec<f32> = bank.iter().map(|&w| w as f32).collect();
        let spans = filters
            .chunks_exact(N_BINS)
            .map(|filter| {
                let start = filter.iter().position(|&w| w != 0.0).unwrap_or(0);
                let end = filter.iter().rposition(|&w| w != 0.0).map_or(0, |i| i + 1);
                start..end.max(start)
            })
            .collect();
        LogMel {
            fft,
            window,
            filters,
            spans,
        }
    }

    /// `[N_MELS, frames]`, row-major, of the first `frames * HOP` samples
    /// of `audio` (zero-padded).
    fn compute(&self, audio: &[f32], frames: usize) -> Vec<f32> {
        let n_samples = frames * HOP;
        let audio = &audio[..audio.len().min(n_samples)];
        // Zero-pad to the window, then reflect-pad by N_FFT/2 (STFT center=True).
        let pad = N_FFT / 2;
        let mut padded = vec![0.0f32; n_samples + 2 * pad];
        padded[pad..pad + audio.len()].copy_from_slice(audio);
        let signal = |i: usize| padded[i];
        let reflected: Vec<f32> = (0..pad)
            .map(|i| signal(2 * pad - i))
            .chain((0..pad).map(|i| signal(pad + n_samples - 2 - i)))
            .collect();
        padded[..pad].copy_from_slice(&reflected[..pad]);
        padded[pad + n_samples..].copy_from_slice(&reflected[pad..]);

        let mut mel = vec![0.0f32; N_MELS * frames];
        let mut buf = vec![Complex::new(0.0f32, 0.0); N_FFT];
        let mut scratch = vec![Complex::new(0.0f32, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [0.0f32; N_BINS];
        for frame in 0..frames {
            let samples = &padded[frame * HOP..frame * HOP + N_FFT];
            // Most of the window is padding: its power is zero, skip the FFT.
            if samples.iter().all(|&s| s == 0.0) {
                continue;
            }
            for ((b, &s), &w) in buf.iter_mut().zip(samples).zip(&self.window) {
                *b = Complex::new(s * w, 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            for (p, b) in power.iter_mut().zip(&buf) {
                *p = b.norm_sqr();
            }
            for (m, (filter, span)) in self
                .filters
                .chunks_exact(N_BINS)
                .zip(&self.spans)
                .enumerate()
            {
                let (weights, bins) = (&filter[span.clone()], &power[span.clone()]);
                mel[m * frames + frame] = weights.iter().zip(bins).map(|(w, p)| w * p).sum();
            }
        }
        for v in &mut mel {
            *v = v.max(1e-10).log10();
        }
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for v in &mut mel {
            *v = (v.max(max - 8.0) + 4.0) / 4.0;
        }
        mel
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_mel_has_whisper_shape_and_range() {
        let log_mel = LogMel::new();
        let tone: Vec<f32> = (0..SAMPLE_RATE)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin())
            .collect();
        let mel = log_mel.compute(&tone, N_FRAMES);
        assert_eq!(mel.len(), N_MELS * N_FRAMES);
        let max = mel.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = mel.iter().copied().fold(f32::INFINITY, f32::min);
        // Clamped to 8 (log10) below the maximum, then scaled by 1/4.
        assert!((max - min - 2.0).abs() < 1e-4, "{min}..{max}");
        // The padding after the tone sits at the floor.
        assert_eq!(mel[N_FRAMES - 1], min);
        // 440 Hz falls in a low mel band, which is loud during the tone.
        let band_440 = (0..N_MELS)
            .max_by(|&a, &b| mel[a * N_FRAMES + 50].total_cmp(&mel[b * N_FRAMES + 50]))
            .unwrap_or(0);
        assert!((5..15).contains(&band_440), "{band_440}");
    }

    #[test]
    fn the_encoder_window_fits_the_utterance_within_its_bounds() {
        let fitted = EncoderWindow::Fitted {
            padding: Duration::from_secs(2),
            min: Duration::from_secs(5),
        };
        let second = SAMPLE_RATE;
        assert_eq!(EncoderWindow::Full.frames(second), N_FRAMES);
        assert_eq!(fitted.frames(0), 500, "at least 5 s");
        assert_eq!(fitted.frames(second), 500);
        assert_eq!(fitted.frames(10 * second), 1_200, "10 s and 2 s of padding");
        assert_eq!(fitted.frames(29 * second), N_FRAMES, "at most 30 s");
        // Rounded up to even: the second convolution halves the frames.
        let tight = EncoderWindow::Fitted {
            padding: Duration::ZERO,
            min: Duration::ZERO,
        };
        assert_eq!(tight.frames(HOP + 1), 2);
        assert_eq!(tight.frames(3 * HOP), 4);
    }

    #[test]
    fn a_run_said_three_times_in_a_row_is_a_loop() {
        assert!(repeats_itself(&[7, 1, 2, 1, 2, 1, 2]));
        assert!(repeats_itself(&[5, 5, 5]));
        let eight = [1, 2, 3, 4, 5, 6, 7, 8];
        assert!(repeats_itself(&eight.repeat(3)));
        assert!(!repeats_itself(&eight.repeat(2)), "twice is speech");
        assert!(!repeats_itself(&[1, 2, 1, 2, 1, 3]));
        assert!(!repeats_itself(&[]));
        let nine = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert!(
            !repeats_itself(&nine.repeat(3)),
            "longer runs are not looked for"
        );
    }

    #[test]
    fn filters_are_slaney_normalised() {
        let log_mel = LogMel::new();
        assert_eq!(log_mel.filters.len(), N_MELS * N_BINS);
        // Whisper's first filter peaks at ~0.0247 (librosa, norm="slaney").
        let peak = log_mel.filters[..N_BINS]
            .iter()
            .copied()
            .fold(0.0, f32::max);
        assert!((peak - 0.0247).abs() < 0.002, "{peak}");
    }

    #[test]
    fn spans_hold_every_non_zero_weight() {
        let log_mel = LogMel::new();
        for (filter, span) in log_mel.filters.chunks_exact(N_BINS).zip(&log_mel.spans) {
            assert!(!span.is_empty());
            for (bin, &w) in filter.iter().enumerate() {
                assert!(
                    w == 0.0 || span.contains(&bin),
                    "bin {bin} outside {span:?}"
                );
            }
        }
    }

    #[test]
    fn rms_of_silence_and_full_scale() {
        assert_eq!(rms(&[]), 0.0);
        assert_eq!(rms(&[0.0; 10]), 0.0);
        assert!((rms(&[1.0, -1.0]) - 1.0).abs() < 1e-6);
    }
}
