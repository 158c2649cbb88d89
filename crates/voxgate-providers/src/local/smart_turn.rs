//! Smart Turn v3 (the `smart-turn-v3.2-cpu.onnx` shipped in pipecat) on ONNX
//! Runtime: the probability that the caller has finished their turn, from
//! the sound of their last 8 seconds of speech.
//!
//! Preprocessing matches pipecat 1.14's `LocalSmartTurnAnalyzerV3` exactly:
//! PCM16 / 32768, keep the last 8 s at 16 kHz or pad with zeros *at the
//! start* to 8 s, then Whisper's log-mel features (pipecat's vendored
//! `WhisperFeatureExtractor(chunk_length = 8)` with `do_normalize = True`):
//! zero-mean unit-variance waveform, reflect-padded 400-point periodic-Hann
//! STFT with hop 160, power spectrum, 80 Slaney mel bins over 0-8 kHz,
//! `log10(max(x, 1e-10))`, the last frame dropped (800 frames remain), floor
//! at `max - 8`, then `(x + 4) / 4`. The model takes them as
//! `input_features` `[1, 80, 800]` and returns a sigmoid probability.
//!
//! Cost per prediction (release build, 2-vCPU x86-64 box): ~70 ms with one
//! thread, of which the features take ~7 ms; two threads were slower
//! (~120 ms) on a 2-core box with other work running. Loading takes ~0.1 s.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::Session;
use ort::value::{TensorElementType, TensorRef, ValueType};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use super::ort_env::{OnnxRuntime, SessionThreads};
use crate::{EndOfTurnModel, ProviderError};

const PROVIDER: &str = "smart-turn";
const SAMPLE_RATE: usize = 16_000;
/// The model looks at the last 8 s.
const WINDOW_SAMPLES: usize = 8 * SAMPLE_RATE;
const N_FFT: usize = 400;
const HOP: usize = 160;
const N_MELS: usize = 80;
/// `1 + WINDOW_SAMPLES / HOP` frames, less the last one that Whisper drops.
const N_FRAMES: usize = WINDOW_SAMPLES / HOP;
const FREQ_BINS: usize = N_FFT / 2 + 1;
const MEL_FLOOR: f64 = 1e-10;
const NORM_EPS: f64 = 1e-7;

/// Smart Turn v3: one ONNX session, shared by every call behind a mutex
/// (`ort`'s `Session::run` takes `&mut self`); the features are computed
/// before taking it.
pub struct SmartTurn {
    session: Mutex<Session>,
    input: String,
    features: LogMel,
}

impl std::fmt::Debug for SmartTurn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmartTurn")
            .field("input", &self.input)
            .finish_non_exhaustive()
    }
}

impl SmartTurn {
    /// Audio the model looks at: the last this-many samples at 16 kHz (8 s).
    pub const WINDOW_SAMPLES: usize = WINDOW_SAMPLES;

    /// Loads `smart-turn-v3.2-cpu.onnx` (`voxgate_models::ModelPaths::smart_turn`).
    /// pipecat runs it with one thread.
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the file cannot be loaded, or its input is
    /// not one float tensor of shape `[batch, 80, 800]`.
    pub fn load(
        ort: &OnnxRuntime,
        model: &Path,
        threads: SessionThreads,
    ) -> Result<SmartTurn, ProviderError> {
        let session = ort.session(model, threads)?;
        let input = expected_input(&session).map_err(|reason| ProviderError::Load {
            what: model.display().to_string(),
            reason,
        })?;
        tracing::debug!(model = %model.display(), input, "loaded Smart Turn");
        Ok(SmartTurn {
            session: Mutex::new(session),
            input,
            features: LogMel::new(),
        })
    }

    fn run(&self, features: &[f32]) -> Result<f32, ort::Error> {
        let tensor = TensorRef::from_array_view(([1, N_MELS, N_FRAMES], features))?;
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(ort::inputs![self.input.as_str() => tensor])?;
        if outputs.len() == 0 {
            return Err(ort::Error::new("the model has no output"));
        }
        let (_, probability) = outputs[0].try_extract_tensor::<f32>()?;
        probability
            .first()
            .copied()
            .ok_or_else(|| ort::Error::new("the output is empty"))
    }
}

impl EndOfTurnModel for SmartTurn {
    fn predict(&self, audio: &[i16]) -> Result<f32, ProviderError> {
        let features = self.features.compute(&last_window(audio));
        self.run(&features).map_err(|e| ProviderError::Inference {
            provider: PROVIDER,
            reason: e.to_string(),
        })
    }
}

/// The name of the model's only input, checked to be `[batch, 80, 800]`
/// floats (a dimension the model leaves open is accepted).
fn expected_input(session: &Session) -> Result<String, String> {
    let [input] = session.inputs() else {
        return Err(format!(
            "expected one input (log-mel features), found {}",
            session.inputs().len()
        ));
    };
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(format!("input `{}` is not a tensor", input.name()));
    };
    let expected = [-1, N_MELS as i64, N_FRAMES as i64];
    let fits = *ty == TensorElementType::Float32
        && shape.len() == expected.len()
        && shape
            .iter()
            .zip(expected)
            .all(|(&d, e)| d < 0 || e < 0 || d == e);
    if !fits {
        return Err(format!(
            "input `{}` is {ty:?} {shape:?}; expected Float32 [batch, {N_MELS}, {N_FRAMES}]",
            input.name()
        ));
    }
    Ok(input.name().to_owned())
}

/// The last 8 s of `audio` as floats in [-1, 1), zero-padded at the start.
fn last_window(audio: &[i16]) -> Vec<f32> {
    let tail = &audio[audio.len().saturating_sub(WINDOW_SAMPLES)..];
    let mut window = vec![0.0; WINDOW_SAMPLES - tail.len()];
    window.extend(tail.iter().map(|&s| f32::from(s) / 32768.0));
    window
}

/// Whisper's log-mel spectrogram of exactly 8 s at 16 kHz; the plans and
/// tables are built once.
struct LogMel {
    fft: Arc<dyn Fft<f64>>,
    /// Periodic Hann window of `N_FFT` points.
    window: Vec<f64>,
    /// Per mel bin, the first frequency bin with a non-zero weight and the
    /// weights from there (the triangles are narrow, so this is ~10x fewer
    /// multiplications than the dense 80 x 201 matrix).
    filters: Vec<(usize, Vec<f64>)>,
}

impl LogMel {
    fn new() -> LogMel {
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        let filters = slaney_mel_filters()
            .into_iter()
            .map(|weights| {
                let start = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
                let end = weights
                    .iter()
                    .rposition(|&w| w > 0.0)
                    .map_or(start, |e| e + 1);
                (start, weights[start..end].to_vec())
            })
            .collect();
        LogMel {
            fft: FftPlanner::new().plan_fft_forward(N_FFT),
            window,
            filters,
        }
    }

    /// Features of `audio` (`WINDOW_SAMPLES` long), row-major `[N_MELS, N_FRAMES]`.
    fn compute(&self, audio: &[f32]) -> Vec<f32> {
        debug_assert_eq!(audio.len(), WINDOW_SAMPLES);
        // Zero-mean, unit-variance waveform (WhisperFeatureExtractor's
        // `do_normalize`), then reflect padding by half a frame (`center`).
        let n = audio.len() as f64;
        let mean = audio.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = audio
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let scale = 1.0 / (var + NORM_EPS).sqrt();
        let normalized: Vec<f64> = audio
            .iter()
            .map(|&x| f64::from((f64::from(x) - mean) as f32 * scale as f32))
            .collect();
        let padded = reflect_pad(&normalized, N_FFT / 2);

        let mut log_mel = vec![0.0f64; N_MELS * N_FRAMES];
        let mut buffer = vec![Complex::new(0.0, 0.0); N_FFT];
        let mut scratch = vec![Complex::new(0.0, 0.0); self.fft.get_inplace_scratch_len()];
        let mut power = [0.0f64; FREQ_BINS];
        for frame in 0..N_FRAMES {
            let samples = &padded[frame * HOP..frame * HOP + N_FFT];
            for ((b, &s), &w) in buffer.iter_mut().zip(samples).zip(&self.window) {
                *b = Complex::new(s * w, 0.0);
            }
            self.fft.process_with_scratch(&mut buffer, &mut scratch);
            for (p, b) in power.iter_mut().zip(&buffer) {
                *p = b.norm_sqr();
            }
            for (mel, (start, weights)) in self.filters.iter().enumerate() {
                let energy: f64 = weights
                    .iter()
                    .zip(&power[*start..])
                    .map(|(w, p)| w * p)
                    .sum();
                log_mel[mel * N_FRAMES + frame] = energy.max(MEL_FLOOR).log10();
            }
        }
        let max = log_mel.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        log_mel
            .iter()
            .map(|&x| ((x.max(max - 8.0) + 4.0) / 4.0) as f32)
            .collect()
    }
}

/// numpy's `pad(x, (pad, pad), mode = "reflect")` (the edge sample is not
/// repeated). `x` must be longer than `pad`.
fn reflect_pad(x: &[f64], pad: usize) -> Vec<f64> {
    let n = x.len();
    let mut out = Vec::with_capacity(n + 2 * pad);
    out.extend((1..=pad).rev().map(|i| x[i]));
    out.extend_from_slice(x);
    out.extend((1..=pad).map(|i| x[n - 1 - i]));
    out
}

/// The Slaney-normalized triangular mel filters of librosa / transformers
/// (`mel_filter_bank(norm = "slaney", mel_scale = "slaney")`) for 80 mels
/// over 0-8 kHz: one row of `FREQ_BINS` weights per mel bin.
fn slaney_mel_filters() -> Vec<Vec<f64>> {
    fn hz_to_mel(hz: f64) -> f64 {
        if hz >= 1000.0 {
            15.0 + (hz / 1000.0).ln() * 27.0 / 6.4f64.ln()
        } else {
            3.0 * hz / 200.0
        }
    }
    fn mel_to_hz(mel: f64) -> f64 {
        if mel >= 15.0 {
            1000.0 * ((mel - 15.0) * 6.4f64.ln() / 27.0).exp()
        } else {
            200.0 * mel / 3.0
        }
    }
    let nyquist = (SAMPLE_RATE / 2) as f64;
    let (mel_min, mel_max) = (hz_to_mel(0.0), hz_to_mel(nyquist));
    // N_MELS + 2 edges, evenly spaced in mels.
    let edges: Vec<f64> = (0..N_MELS + 2)
        .map(|i| mel_to_hz(mel_min + (mel_max - mel_min) * i as f64 / (N_MELS + 1) as f64))
        .collect();
    let bin_hz = |k: usize| nyquist * k as f64 / (FREQ_BINS - 1) as f64;
    (0..N_MELS)
        .map(|m| {
            let (low, centre, high) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (high - low);
            (0..FREQ_BINS)
                .map(|k| {
                    let f = bin_hz(k);
                    let down = (f - low) / (centre - low);
                    let up = (high - f) / (high - centre);
                    down.min(up).max(0.0) * norm
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflect_pad_matches_numpy() {
        // np.pad([1, 2, 3, 4], (2, 2), mode="reflect") == [3, 2, 1, 2, 3, 4, 3, 2]
        let padded = reflect_pad(&[1.0, 2.0, 3.0, 4.0], 2);
        assert_eq!(padded, [3.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 2.0]);
    }

    #[test]
    fn short_audio_is_padded_at_the_start_and_long_audio_keeps_its_end() {
        let window = last_window(&[16384, -16384]);
        assert_eq!(window.len(), WINDOW_SAMPLES);
        assert_eq!(&window[WINDOW_SAMPLES - 2..], &[0.5, -0.5]);
        assert!(window[..WINDOW_SAMPLES - 2].iter().all(|&x| x == 0.0));

        let long: Vec<i16> = (0..WINDOW_SAMPLES + 10)
            .map(|i| (i % 1000) as i16)
            .collect();
        let window = last_window(&long);
        assert_eq!(window[0], 10.0 / 32768.0);
        assert_eq!(
            window[WINDOW_SAMPLES - 1],
            ((WINDOW_SAMPLES + 9) % 1000) as f32 / 32768.0
        );
    }

    #[test]
    fn mel_filters_are_slaney_triangles() {
        let filters = slaney_mel_filters();
        assert_eq!(filters.len(), N_MELS);
        assert!(filters.iter().all(|f| f.len() == FREQ_BINS));
        // Values from transformers' mel_filter_bank(201, 80, 0, 8000, 16000,
        // "slaney", "slaney"): the first filter peaks at bin 1 (40 Hz).
        assert!(
            (filters[0][1] - 0.024_862_593).abs() < 1e-6,
            "{}",
            filters[0][1]
        );
        assert_eq!(filters[0][0], 0.0);
        // Every filter has some weight: no empty mel bins at 201 bins.
        assert!(filters.iter().all(|f| f.iter().any(|&w| w > 0.0)));
    }

    /// 3 s of a pitch-stepping sawtooth with a slow on/off envelope plus
    /// noise, in integer arithmetic so that the Python reference computes
    /// the same samples.
    fn golden_signal() -> Vec<i16> {
        let mut state: u32 = 12345;
        (0..48_000i32)
            .map(|i| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let noise = (state >> 20) as i32 - 2048;
                let period = 37 + (i / 4000) * 11;
                let saw = (i % period) * 2 * 12_000 / period - 12_000;
                let envelope = if (i / 8000) % 2 == 0 { 4 } else { 1 };
                ((saw * envelope).div_euclid(4) + noise) as i16
            })
            .collect()
    }

    #[test]
    fn features_match_pipecat() {
        let signal = golden_signal();
        assert_eq!(&signal[..4], &[-13965, -13333, -10527, -9503]);
        let features = LogMel::new().compute(&last_window(&signal));
        // pipecat 1.14 `compute_whisper_log_mel_features` on the same
        // samples (/ 32768, zero-padded at the start to 8 s).
        let at = |mel: usize, frame: usize| features[mel * N_FRAMES + frame];
        for (mel, frame, expected) in [
            (0, 0, 0.638_417_8),
            (10, 799, 1.143_266_7),
            (40, 700, 1.035_726_1),
            (79, 500, 0.937_679_6),
        ] {
            let got = at(mel, frame);
            assert!(
                (got - expected).abs() < 1e-4,
                "[{mel}, {frame}]: {got} vs {expected}"
            );
        }
        let mean = features.iter().map(|&x| f64::from(x)).sum::<f64>() / features.len() as f64;
        assert!((mean - 0.278_529_34).abs() < 1e-5, "mean {mean}");
    }

    #[test]
    fn silence_gives_the_floor_everywhere() {
        let features = LogMel::new().compute(&vec![0.0; WINDOW_SAMPLES]);
        assert_eq!(features.len(), N_MELS * N_FRAMES);
        // log10(1e-10) = -10, and (-10 + 4) / 4 = -1.5.
        assert!(features.iter().all(|&x| (x + 1.5).abs() < 1e-6));
    }

    #[test]
    fn a_tone_lights_up_its_mel_bin() {
        // 1 kHz sine, loud enough that the floor at max - 8 is far below it.
        let audio: Vec<f32> = (0..WINDOW_SAMPLES)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 16_000.0).sin() * 0.5)
            .collect();
        let features = LogMel::new().compute(&audio);
        let frame = N_FRAMES / 2;
        let column: Vec<f32> = (0..N_MELS)
            .map(|m| features[m * N_FRAMES + frame])
            .collect();
        let loudest = column
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .map(|(m, _)| m);
        let filters = slaney_mel_filters();
        // The filter with the most weight at bin 25 (1000 Hz).
        let expected = (0..N_MELS).max_by(|&a, &b| filters[a][25].total_cmp(&filters[b][25]));
        assert_eq!(loudest, expected);
        // The floor sits 8 (in log10 units) below the maximum: a range of 2.
        let (min, max) = features
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
        assert!((max - min - 2.0).abs() < 1e-4, "{min}..{max}");
    }
}
