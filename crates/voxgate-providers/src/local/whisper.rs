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

use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use crate::{ProviderError, TranscribeUtterance};

const PROVIDER: &str = "whisper";

/// Whisper's input rate.
const SAMPLE_RATE: usize = 16_000;
/// Whisper sees exactly 30 s of audio at a time.
const N_SAMPLES: usize = 30 * SAMPLE_RATE;
const N_FFT: usize = 400;
const HOP: usize = 160;
/// `N_SAMPLES / HOP`: the encoder's fixed input length.
const N_FRAMES: usize = N_SAMPLES / HOP;
const N_MELS: usize = 80;
const N_BINS: usize = N_FFT / 2 + 1;

/// How [`WhisperStt`] runs the model.
#[derive(Debug, Clone, PartialEq)]
pub struct WhisperConfig {
    threads: usize,
    int8: bool,
    silence_rms: f32,
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
}

/// Whisper speech to text, loaded once and shared by every call.
///
/// Cloning is cheap and shares the model (about 250 MiB RSS once it has
/// run). Each [`TranscribeUtterance::transcribe`] runs on Tokio's blocking pool
/// (so it must be called inside a Tokio runtime) and costs the same for any
/// length up to 30 s, since the encoder always sees 30 s: on 2 idle cores
/// 1.1 s with AVX2 only, 0.5-0.7 s with AVX-512 (int8: ~25% less; 1 thread:
/// ~1.8x more). Calls that overlap are queued by CTranslate2. Silence costs
/// nothing.
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
    fn transcribe(&self, audio: Vec<i16>) -> mpsc::Receiver<Result<String, ProviderError>> {
        let (tx, rx) = mpsc::channel(1);
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            if tx.is_closed() {
                return;
            }
            let result = inner.transcribe(&audio);
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
        let inference = |reason: String| ProviderError::Inference {
            provider: PROVIDER,
            reason,
        };
        let mut mel = self.log_mel.compute(&samples);
        let features = StorageView::new(&[1, N_MELS, N_FRAMES], &mut mel, Device::CPU)
            .map_err(|e| inference(format!("features: {e:#}")))?;
        let results = self
            .model
            .generate(&features, std::slice::from_ref(&self.prompt), &self.options)
            .map_err(|e| inference(format!("{e:#}")))?;
        let Some(result) = results.into_iter().next() else {
            return Err(inference("no result for the batch".to_owned()));
        };
        // Whisper's own "no speech" rule (as in openai-whisper and
        // faster-whisper): the model says nobody speaks and is unsure of
        // what it decoded. Skips hallucinations on noise that is not silent.
        let avg_logprob = result.scores.first().copied().unwrap_or(0.0);
        if result.no_speech_prob > 0.6 && avg_logprob < -1.0 {
            return Ok(String::new());
        }
        let ids: Vec<u32> = result
            .sequences_ids
            .into_iter()
            .next()
            .unwrap_or_default()
            .into_iter()
            .filter(|&id| id < self.first_special_id)
            .filter_map(|id| u32::try_from(id).ok())
            .collect();
        let text = self
            .tokenizer
            .decode(&ids, true)
            .map_err(|e| inference(format!("decoding tokens: {e}")))?;
        Ok(text.trim().to_owned())
    }
}

fn rms(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return 0.0;
    }
    let energy: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
    (energy / samples.len() as f64).sqrt() as f32
}

/// Whisper's log-mel spectrogram of one 30 s window, as in openai-whisper's
/// `log_mel_spectrogram` (and HF's `WhisperFeatureExtractor`): the audio is
/// zero-padded to 30 s, framed with a centred periodic Hann window, and
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

    /// `[N_MELS, N_FRAMES]`, row-major, of at most 30 s of audio.
    fn compute(&self, audio: &[f32]) -> Vec<f32> {
        let audio = &audio[..audio.len().min(N_SAMPLES)];
        // Zero-pad to 30 s, then reflect-pad by N_FFT/2 (STFT center=True).
        let pad = N_FFT / 2;
        let mut padded = vec![0.0f32; N_SAMPLES + 2 * pad];
        padded[pad..pad + audio.len()].copy_from_slice(audio);
        let signal = |i: usize| padded[i];
        let reflected: Vec<f32> = (0..pad)
            .map(|i| signal(2 * pad - i))
            .chain((0..pad).map(|i| signal(pad + N_SAMPLES - 2 - i)))
            .collect();
        padded[..pad].copy_from_slice(&reflected[..pad]);
        padded[pad + N_SAMPLES..].copy_from_slice(&reflected[pad..]);

        let mut mel = vec![0.0f32; N_MELS * N_FRAMES];
        let mut buf = vec![Complex::new(0.0f32, 0.0); N_FFT];
        let mut scratch = vec![Complex::new(0.0f32, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [0.0f32; N_BINS];
        for frame in 0..N_FRAMES {
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
                mel[m * N_FRAMES + frame] = weights.iter().zip(bins).map(|(w, p)| w * p).sum();
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
        let mel = log_mel.compute(&tone);
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
