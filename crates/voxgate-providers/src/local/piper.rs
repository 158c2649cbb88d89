//! Piper text to speech (a VITS voice exported to ONNX) on ONNX Runtime, with
//! phonemes from the `espeak-ng` program.
//!
//! # Phonemes
//!
//! Piper voices are trained on espeak-ng's IPA. espeak-ng is GPL-3.0, so it
//! runs as a separate process (`espeak-ng -q -v <voice> --ipa --stdin`, the
//! text on stdin; `--ipa` without a number gives IPA without separators or
//! tie characters, the same as the library call Piper makes) and is never
//! linked. It prints one line per clause and drops the punctuation, which
//! Piper keeps, so the text is split into sentences and clauses here first:
//! each clause's terminator (`, ; : . ! ?`, `.` for unterminated text) is put
//! back after its line, followed by a space after `, ; :`, exactly as Piper
//! 1.x does with its patched espeak-ng. If espeak-ng splits a sentence
//! differently than the splitter here (abbreviations, say), its lines are
//! joined with spaces and only the sentence's last terminator is kept.
//! `(en)`-style language-switch flags are removed, the phonemes are
//! NFD-decomposed, and each codepoint is mapped with the voice's
//! `phoneme_id_map`: `^ _`, then each phoneme's id followed by `_`, then `$`.
//! Codepoints the voice lacks are skipped, as Piper does.
//!
//! # Cost
//!
//! Per sentence: one `espeak-ng` process (~20 ms) and one model run.
//! Real-time factor 0.09-0.11 with one thread, espeak-ng included (release
//! build, 2-vCPU x86-64 box: ~150 ms for 1.6 s of speech, ~310 ms for
//! 3.5 s); two threads were slower there (0.13-0.15) with other work
//! running. Loading takes 1.5-1.8 s (graph optimization of the 63 MB voice),
//! so load at start-up.

use std::collections::HashMap;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use ort::session::Session;
use ort::value::TensorRef;
use serde::Deserialize;
use tokio::sync::mpsc;
use unicode_normalization::UnicodeNormalization;

use super::ort_env::{OnnxRuntime, SessionThreads};
use crate::{ProviderError, TaskScope, TextToSpeech};

const PROVIDER: &str = "piper";
/// The Debian package that provides the `espeak-ng` program.
const ESPEAK_PACKAGE: &str = "espeak-ng";
/// Sentences synthesized ahead of the listener. Each chunk is a whole
/// sentence, so two keep the speaker busy without wasting much work when a
/// barge-in drops the receiver.
const CHANNEL_CAPACITY: usize = 2;

/// How to run a Piper voice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiperOptions {
    threads: SessionThreads,
    espeak: PathBuf,
}

impl Default for PiperOptions {
    /// One thread, and `espeak-ng` from `PATH`.
    fn default() -> Self {
        PiperOptions {
            threads: SessionThreads::ONE,
            espeak: PathBuf::from("espeak-ng"),
        }
    }
}

impl PiperOptions {
    /// Threads for the voice model (default one).
    #[must_use]
    pub fn threads(mut self, threads: SessionThreads) -> Self {
        self.threads = threads;
        self
    }

    /// The espeak-ng program (default `espeak-ng`, looked up in `PATH`).
    #[must_use]
    pub fn espeak_program(mut self, program: impl Into<PathBuf>) -> Self {
        self.espeak = program.into();
        self
    }
}

/// Counters of a [`PiperTts`] and its clones, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PiperStats {
    /// Syntheses whose blocking task is still running.
    pub running: usize,
    /// Sentences run through the model since loading.
    pub sentences: u64,
}

/// A Piper voice. Clones share the model; synthesis runs on tokio's blocking
/// pool, one task per [`TextToSpeech::synthesize`] call, and the model runs
/// of concurrent calls take turns (`ort`'s `Session::run` takes `&mut self`).
#[derive(Clone)]
pub struct PiperTts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for PiperTts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiperTts")
            .field("sample_rate", &self.inner.voice.sample_rate)
            .field("espeak_voice", &self.inner.voice.espeak_voice)
            .finish_non_exhaustive()
    }
}

struct Inner {
    session: Mutex<Session>,
    voice: Voice,
    espeak: PathBuf,
    running: AtomicUsize,
    sentences: AtomicU64,
}

impl PiperTts {
    /// Loads a voice (`voxgate_models::ModelPaths::{piper_voice, piper_config}`)
    /// and checks that espeak-ng runs and knows the voice's language.
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the model or its configuration cannot be
    /// read or is not a single-speaker espeak voice, or if espeak-ng is
    /// missing (the message names the Debian package) or fails.
    pub fn load(
        ort: &OnnxRuntime,
        model: &Path,
        config: &Path,
        options: PiperOptions,
    ) -> Result<PiperTts, ProviderError> {
        let load_error = |reason: String| ProviderError::Load {
            what: config.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(config).map_err(|e| load_error(e.to_string()))?;
        let voice = Voice::parse(&text).map_err(load_error)?;
        // Fails early, and warms the espeak-ng data in the page cache.
        phonemize_sentence(&options.espeak, &voice.espeak_voice, "test")?;
        let session = ort.session(model, options.threads)?;
        let inputs: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
        let expected = ["input", "input_lengths", "scales"];
        if inputs.len() != expected.len() || !expected.iter().all(|e| inputs.contains(e)) {
            return Err(ProviderError::Load {
                what: model.display().to_string(),
                reason: format!(
                    "expected a single-speaker Piper voice with inputs {expected:?}, found {inputs:?}"
                ),
            });
        }
        Ok(PiperTts {
            inner: Arc::new(Inner {
                session: Mutex::new(session),
                voice,
                espeak: options.espeak,
                running: AtomicUsize::new(0),
                sentences: AtomicU64::new(0),
            }),
        })
    }

    /// The counters shared by this voice and its clones.
    pub fn stats(&self) -> PiperStats {
        PiperStats {
            running: self.inner.running.load(Ordering::SeqCst),
            sentences: self.inner.sentences.load(Ordering::SeqCst),
        }
    }

    /// All the audio of `text` at once, on the calling thread: PCM16 at
    /// [`TextToSpeech::sample_rate`], each sentence peak-normalized as Piper
    /// does. Empty if the text has nothing to say.
    ///
    /// # Errors
    /// [`ProviderError::Inference`] if espeak-ng or the model fails.
    pub fn synthesize_blocking(&self, text: &str) -> Result<Vec<i16>, ProviderError> {
        let mut audio = Vec::new();
        for sentence in split_sentences(text) {
            audio.extend(self.inner.sentence_audio(&sentence)?);
        }
        Ok(audio)
    }
}

impl TextToSpeech for PiperTts {
    fn sample_rate(&self) -> u32 {
        self.inner.voice.sample_rate
    }

    /// One chunk per sentence. Must be called inside a tokio runtime (the
    /// work runs on its blocking pool, not in `scope`: blocking work cannot
    /// be cancelled, and it stops between sentences once the receiver is
    /// gone); otherwise the channel carries one error.
    fn synthesize(
        &self,
        text: String,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let inner = Arc::clone(&self.inner);
                // Counted here rather than in the task so that the count is
                // never low while the task is queued.
                inner.running.fetch_add(1, Ordering::SeqCst);
                // Detached: the task ends on its own, at the latest when it
                // finds the receiver gone.
                drop(runtime.spawn_blocking(move || {
                    let _running = Running(&inner.running);
                    let synthesized = super::survive_panic(PROVIDER, || {
                        inner.synthesize_into(&text, &tx);
                        Ok(())
                    });
                    if let Err(e) = synthesized {
                        let _ = tx.blocking_send(Err(e));
                    }
                }));
            }
            Err(_) => {
                // The channel is empty, so there is room for this one.
                let _ = tx.try_send(Err(ProviderError::Inference {
                    provider: PROVIDER,
                    reason: "synthesize was called outside a tokio runtime".to_owned(),
                }));
            }
        }
        rx
    }
}

/// Decrements the running count when a synthesis task ends, however it ends.
struct Running<'a>(&'a AtomicUsize);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Inner {
    /// Sends one chunk per sentence until done, an error, or the receiver is
    /// dropped. Runs on a blocking thread.
    fn synthesize_into(&self, text: &str, tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>) {
        for sentence in split_sentences(text) {
            if tx.is_closed() {
                return;
            }
            match self.sentence_audio(&sentence) {
                Ok(audio) if audio.is_empty() => {}
                Ok(audio) => {
                    if tx.blocking_send(Ok(audio)).is_err() {
                        return;
                    }
                }
                Err(error) => {
                    let _ = tx.blocking_send(Err(error));
                    return;
                }
            }
        }
    }

    fn sentence_audio(&self, sentence: &Sentence) -> Result<Vec<i16>, ProviderError> {
        let lines = phonemize_sentence(&self.espeak, &self.voice.espeak_voice, &sentence.text)
            .map_err(|e| ProviderError::Inference {
                provider: PROVIDER,
                reason: e.to_string(),
            })?;
        let phonemes = attach_terminators(&lines, &sentence.terminators);
        let Some(ids) = self.voice.phoneme_ids(&phonemes) else {
            return Ok(Vec::new());
        };
        let audio = self.run(&ids).map_err(|e| ProviderError::Inference {
            provider: PROVIDER,
            reason: e.to_string(),
        })?;
        self.sentences.fetch_add(1, Ordering::SeqCst);
        Ok(to_pcm16(&audio))
    }

    fn run(&self, ids: &[i64]) -> Result<Vec<f32>, ort::Error> {
        let lengths = [ids.len() as i64];
        let inputs = ort::inputs![
            "input" => TensorRef::from_array_view(([1, ids.len()], ids))?,
            "input_lengths" => TensorRef::from_array_view(([1], &lengths[..]))?,
            "scales" => TensorRef::from_array_view(([3], &self.voice.scales[..]))?,
        ];
        let mut session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let outputs = session.run(inputs)?;
        if outputs.len() == 0 {
            return Err(ort::Error::new("the voice has no output"));
        }
        let (_, audio) = outputs[0].try_extract_tensor::<f32>()?;
        Ok(audio.to_vec())
    }
}

/// Peak-normalized to full scale, then PCM16 (Piper's `normalize_audio`).
fn to_pcm16(audio: &[f32]) -> Vec<i16> {
    let peak = audio.iter().fold(0.0f32, |m, &x| m.max(x.abs()));
    if peak < 1e-8 {
        return vec![0; audio.len()];
    }
    audio
        .iter()
        .map(|&x| ((x / peak).clamp(-1.0, 1.0) * 32767.0) as i16)
        .collect()
}

/// What the voice's `.onnx.json` says that synthesis needs.
#[derive(Debug, Clone, PartialEq)]
struct Voice {
    sample_rate: u32,
    espeak_voice: String,
    /// `[noise_scale, length_scale, noise_w]`, the model's `scales` input.
    scales: [f32; 3],
    ids: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
}

#[derive(Deserialize)]
struct RawVoice {
    audio: RawAudio,
    espeak: RawEspeak,
    inference: RawInference,
    #[serde(default = "espeak")]
    phoneme_type: String,
    #[serde(default = "one")]
    num_speakers: u32,
    phoneme_id_map: HashMap<String, Vec<i64>>,
}

#[derive(Deserialize)]
struct RawAudio {
    sample_rate: u32,
}

#[derive(Deserialize)]
struct RawEspeak {
    voice: String,
}

#[derive(Deserialize)]
struct RawInference {
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

fn espeak() -> String {
    "espeak".to_owned()
}

fn one() -> u32 {
    1
}

impl Voice {
    fn parse(json: &str) -> Result<Voice, String> {
        let raw: RawVoice = serde_json::from_str(json).map_err(|e| e.to_string())?;
        if raw.phoneme_type != "espeak" {
            return Err(format!(
                "phoneme type `{}` is not supported (only espeak)",
                raw.phoneme_type
            ));
        }
        if raw.num_speakers != 1 {
            return Err(format!(
                "{} speakers: only single-speaker voices are supported",
                raw.num_speakers
            ));
        }
        if raw.audio.sample_rate == 0 {
            return Err("sample rate 0".to_owned());
        }
        let mut map = raw.phoneme_id_map;
        let special = |symbol: &str| {
            map.get(symbol)
                .cloned()
                .ok_or_else(|| format!("phoneme_id_map has no `{symbol}`"))
        };
        let (bos, eos, pad) = (special("^")?, special("$")?, special("_")?);
        // Piper maps codepoints one by one; longer keys are only used with
        // vowel-cluster merging, which no espeak voice enables.
        let ids = map
            .drain()
            .filter_map(|(key, ids)| {
                let mut chars = key.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, ids)),
                    _ => None,
                }
            })
            .collect();
        Ok(Voice {
            sample_rate: raw.audio.sample_rate,
            espeak_voice: raw.espeak.voice,
            scales: [
                raw.inference.noise_scale,
                raw.inference.length_scale,
                raw.inference.noise_w,
            ],
            ids,
            bos,
            eos,
            pad,
        })
    }

    /// `^ _ (id _)* $` for the NFD codepoints of `phonemes`, or `None` if
    /// none of them is in the voice.
    fn phoneme_ids(&self, phonemes: &str) -> Option<Vec<i64>> {
        let mut ids = self.bos.clone();
        ids.extend(&self.pad);
        let mut any = false;
        for c in phonemes.nfd() {
            match self.ids.get(&c) {
                Some(id) => {
                    any |= !c.is_whitespace();
                    ids.extend(id);
                    ids.extend(&self.pad);
                }
                None => tracing::debug!(phoneme = %c, "phoneme not in the voice; skipped"),
            }
        }
        ids.extend(&self.eos);
        any.then_some(ids)
    }
}

/// One sentence, as espeak-ng will read it, and the terminator of each of
/// its clauses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sentence {
    text: String,
    terminators: Vec<char>,
}

/// Closing characters that may sit between a terminator and the space after
/// it (`"Hi!" he said`).
fn is_closing(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '”' | '’' | '»')
}

/// Splits text into sentences (ended by `. ! ?`) and those into clauses
/// (ended by `, ; :`), where the punctuation is followed by white space or
/// the end of the text, as espeak-ng splits clauses; `3.5` and `1,000` stay
/// whole. Text after the last terminator is a sentence ended by `.`.
/// Clauses with nothing to say (no letter or digit) are dropped.
fn split_sentences(text: &str) -> Vec<Sentence> {
    let mut sentences = Vec::new();
    let mut current = Sentence {
        text: String::new(),
        terminators: Vec::new(),
    };
    // Whether the clause being read has anything to say.
    let mut spoken = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        // espeak-ng reads line breaks as spaces too.
        current.text.push(if c.is_whitespace() { ' ' } else { c });
        spoken |= c.is_alphanumeric();
        if !matches!(c, ',' | ';' | ':' | '.' | '!' | '?') {
            continue;
        }
        while let Some(&close) = chars.peek().filter(|&&n| is_closing(n)) {
            current.text.push(close);
            chars.next();
        }
        if !chars.peek().is_none_or(|n| n.is_whitespace()) {
            continue;
        }
        if spoken {
            current.terminators.push(c);
        }
        spoken = false;
        if matches!(c, '.' | '!' | '?') {
            finish(&mut sentences, &mut current);
        }
    }
    if spoken {
        current.terminators.push('.');
    }
    finish(&mut sentences, &mut current);
    sentences
}

fn finish(sentences: &mut Vec<Sentence>, current: &mut Sentence) {
    let sentence = std::mem::replace(
        current,
        Sentence {
            text: String::new(),
            terminators: Vec::new(),
        },
    );
    if !sentence.terminators.is_empty() {
        sentences.push(Sentence {
            text: sentence.text.trim().to_owned(),
            terminators: sentence.terminators,
        });
    }
}

/// The sentence's phonemes with the punctuation Piper keeps: each clause's
/// line, its terminator, and a space after `, ; :`.
fn attach_terminators(lines: &[String], terminators: &[char]) -> String {
    let mut phonemes = String::new();
    if lines.len() == terminators.len() {
        for (line, &t) in lines.iter().zip(terminators) {
            phonemes.push_str(line);
            phonemes.push(t);
            if matches!(t, ',' | ';' | ':') {
                phonemes.push(' ');
            }
        }
    } else {
        // espeak-ng split the sentence elsewhere than we did: keep its
        // phonemes and the sentence's end.
        phonemes = lines.join(" ");
        phonemes.extend(terminators.last());
    }
    phonemes
}

/// Runs espeak-ng on one sentence: one line of IPA per clause, without
/// language-switch flags or empty lines.
fn phonemize_sentence(
    program: &Path,
    voice: &str,
    text: &str,
) -> Result<Vec<String>, ProviderError> {
    let error = |reason: String| ProviderError::Load {
        what: format!("espeak-ng ({})", program.display()),
        reason,
    };
    let mut child = Command::new(program)
        .args(["-q", "-v", voice, "--ipa", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            ErrorKind::NotFound => error(format!(
                "the program was not found; install the Debian package `{ESPEAK_PACKAGE}`"
            )),
            _ => error(e.to_string()),
        })?;
    // `--stdin` reads everything before writing anything, so writing first
    // cannot deadlock on a full stdout pipe.
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(text.as_bytes())
            .map_err(|e| error(format!("writing its input: {e}")))?;
    }
    let output = child.wait_with_output().map_err(|e| error(e.to_string()))?;
    if !output.status.success() {
        return Err(error(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(stdout
        .lines()
        .map(strip_language_flags)
        .map(|line| line.trim().to_owned())
        .filter(|line| !line.is_empty())
        .collect())
}

/// Removes `(en)`-style markers, which espeak-ng puts around words it reads
/// in another language.
fn strip_language_flags(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(open) = rest.find('(') {
        match rest[open..].find(')') {
            Some(close) if close > 1 => {
                out.push_str(&rest[..open]);
                rest = &rest[open + close + 1..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentence(text: &str, terminators: &[char]) -> Sentence {
        Sentence {
            text: text.to_owned(),
            terminators: terminators.to_vec(),
        }
    }

    #[test]
    fn splits_sentences_and_clauses_on_punctuation_before_space() {
        assert_eq!(
            split_sentences("Hello, thank you for calling. Your table: booked! Ok?"),
            [
                sentence("Hello, thank you for calling.", &[',', '.']),
                sentence("Your table: booked!", &[':', '!']),
                sentence("Ok?", &['?']),
            ]
        );
    }

    #[test]
    fn numbers_ellipses_and_quotes_stay_whole() {
        assert_eq!(
            split_sentences("It costs 3.5 dollars, or 1,000 cents... I said \"Hi!\" to him"),
            [
                sentence("It costs 3.5 dollars, or 1,000 cents...", &[',', '.']),
                sentence("I said \"Hi!\"", &['!']),
                sentence("to him", &['.']),
            ]
        );
    }

    #[test]
    fn unterminated_text_ends_with_a_period_and_empty_text_has_no_sentences() {
        assert_eq!(
            split_sentences("  Hello\nthere  "),
            [sentence("Hello there", &['.'])]
        );
        assert!(split_sentences("").is_empty());
        assert!(split_sentences(" ... !? ").is_empty());
        // A clause with nothing to say adds no terminator.
        assert_eq!(split_sentences("- , Hi."), [sentence("- , Hi.", &['.'])]);
    }

    #[test]
    fn terminators_go_back_where_piper_puts_them() {
        let lines = ["həlˈoʊ".to_owned(), "ðˈɛɹ".to_owned()];
        assert_eq!(attach_terminators(&lines, &[',', '.']), "həlˈoʊ, ðˈɛɹ.");
        assert_eq!(attach_terminators(&lines, &['?']), "həlˈoʊ ðˈɛɹ?");
    }

    #[test]
    fn language_flags_are_removed() {
        assert_eq!(strip_language_flags("(fr)bɔ̃ʒˈuʁ(en) ðˈɛɹ"), "bɔ̃ʒˈuʁ ðˈɛɹ");
        assert_eq!(strip_language_flags("a () b ("), "a () b (");
    }

    fn voice() -> Voice {
        Voice::parse(
            r#"{
                "audio": {"sample_rate": 22050},
                "espeak": {"voice": "en-us"},
                "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
                "phoneme_type": "espeak",
                "num_speakers": 1,
                "phoneme_id_map": {"_": [0], "^": [1], "$": [2], " ": [3], ",": [8],
                    "h": [20], "i": [21], "c": [16], "̧": [140], "aɪ": [161]}
            }"#,
        )
        .expect("valid voice")
    }

    #[test]
    fn voice_config_is_read() {
        let voice = voice();
        assert_eq!(voice.sample_rate, 22050);
        assert_eq!(voice.espeak_voice, "en-us");
        assert_eq!(voice.scales, [0.667, 1.0, 0.8]);
        // Multi-codepoint keys are not used.
        assert_eq!(voice.ids.len(), 9);
    }

    #[test]
    fn phoneme_ids_are_padded_and_decomposed() {
        let voice = voice();
        assert_eq!(
            voice.phoneme_ids("hi, h"),
            Some(vec![1, 0, 20, 0, 21, 0, 8, 0, 3, 0, 20, 0, 2])
        );
        // ç decomposes to c + U+0327; unknown codepoints are skipped.
        assert_eq!(voice.phoneme_ids("çx"), Some(vec![1, 0, 16, 0, 140, 0, 2]));
        assert_eq!(voice.phoneme_ids("x "), None);
    }

    #[test]
    fn bad_voice_configs_are_refused() {
        assert!(Voice::parse("{}").is_err());
        let multi = r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"},
            "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
            "num_speakers": 4, "phoneme_id_map": {"_": [0], "^": [1], "$": [2]}}"#;
        assert!(
            Voice::parse(multi)
                .expect_err("four speakers")
                .contains("single-speaker")
        );
    }

    #[test]
    fn audio_is_peak_normalized() {
        assert_eq!(to_pcm16(&[0.0, 0.25, -0.5]), [0, 16383, -32767]);
        assert_eq!(to_pcm16(&[0.0, 0.0]), [0, 0]);
    }
}
