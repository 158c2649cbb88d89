//! A chat language model on llama.cpp (`llama-cpp-2`): SmolLM2-135M-Instruct
//! in GGUF by default, any GGUF chat model with an embedded template works.

use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatMessage, LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use tokio::sync::mpsc;
use voxgate_core::engine::{ChatMessage, Role};

use crate::{LanguageModel, LlmChunk, LlmRequest, ProviderError, TaskScope};

const PROVIDER: &str = "llama";

/// llama.cpp's process-wide backend.
///
/// llama.cpp keeps global state (`llama_backend_init`/`_free`), and
/// `llama-cpp-2` allows one `LlamaBackend` per process at a time: a second
/// [`LlamaRuntime::init`] fails while the first is alive. So the server
/// creates one runtime at start-up and passes it (as an `Arc`) to every
/// [`LlamaLlm`] it loads; each model keeps it alive. When the last `Arc` is
/// dropped the backend is freed and `init` works again.
#[derive(Debug)]
pub struct LlamaRuntime {
    backend: LlamaBackend,
}

impl LlamaRuntime {
    /// Initialises llama.cpp and silences its logging (it writes to stderr).
    ///
    /// Fails if a runtime already exists in this process.
    pub fn init() -> Result<Arc<LlamaRuntime>, ProviderError> {
        let mut backend = LlamaBackend::init().map_err(|e| ProviderError::Load {
            what: "llama.cpp backend".to_owned(),
            reason: format!("{e} (create one LlamaRuntime per process and share it)"),
        })?;
        backend.void_logs();
        Ok(Arc::new(LlamaRuntime { backend }))
    }
}

/// How [`LlamaLlm`] generates.
#[derive(Debug, Clone, PartialEq)]
pub struct LlamaConfig {
    n_ctx: u32,
    threads: i32,
    max_tokens: usize,
    temperature: f32,
    top_k: i32,
    top_p: f32,
    seed: u32,
    stream_buffer: usize,
    slots: usize,
}

impl Default for LlamaConfig {
    fn default() -> Self {
        LlamaConfig {
            n_ctx: 2048,
            threads: 2,
            max_tokens: 120,
            temperature: 0.7,
            top_k: 40,
            top_p: 0.9,
            seed: 42,
            stream_buffer: 32,
            slots: 2,
        }
    }
}

impl LlamaConfig {
    /// Context length in tokens, prompt plus reply (default 2048). Older
    /// messages are dropped from a conversation that does not fit.
    pub fn with_n_ctx(mut self, n_ctx: u32) -> Self {
        self.n_ctx = n_ctx.max(64);
        self
    }

    /// Threads per reply (default 2). Prefer 1 where other models share
    /// the cores while a reply is generated (see [`LlamaLlm`]).
    pub fn with_threads(mut self, threads: i32) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// The longest reply in tokens (default 120; a spoken turn rarely needs
    /// more).
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = max_tokens.max(1);
        self
    }

    /// Sampling temperature (default 0.7), top-k (default 40) and top-p
    /// (default 0.9).
    pub fn with_sampling(mut self, temperature: f32, top_k: i32, top_p: f32) -> Self {
        self.temperature = temperature;
        self.top_k = top_k;
        self.top_p = top_p;
        self
    }

    /// The sampler's seed (default 42): the same seed, prompt and build give
    /// the same reply.
    pub fn with_seed(mut self, seed: u32) -> Self {
        self.seed = seed;
        self
    }

    /// How many pieces may wait in a reply's channel (default 32). When it
    /// is full, generation waits for the reader.
    pub fn with_stream_buffer(mut self, pieces: usize) -> Self {
        self.stream_buffer = pieces.max(1);
        self
    }

    /// Replies generated at once (default 2), each in a context of its own
    /// that is kept between replies; more wait their turn.
    pub fn with_slots(mut self, slots: usize) -> Self {
        self.slots = slots.max(1);
        self
    }
}

/// A GGUF chat model on llama.cpp, loaded once and shared by every reply.
///
/// Cloning is cheap and shares the model. Replies run on a few slots (see
/// [`LlamaConfig::with_slots`]), each a thread with its own context (KV
/// cache, ~50 MiB for SmolLM2 at 2048 tokens) that outlives the reply: a
/// conversation's next prompt starts with the previous one, so only the
/// tokens after the longest common prefix are evaluated, and a reply goes
/// to the free slot that shares the most with it. Messages dropped from the
/// start of a conversation are cut out of the cache and what followed them
/// is shifted down (llama.cpp's context shift), not evaluated again. Pieces
/// are whole UTF-8
/// text: a character split across tokens is sent once complete.
///
/// Costs on a 2-core x86-64 box with SmolLM2-135M Q4_1 (llama.cpp built
/// with AVX2, see the workspace's `.cargo/config.toml`): loading takes
/// 0.1-0.25 s (mmap) and about 130 MiB RSS; a reply's first piece comes
/// 165 ms after the call with 2 idle cores (context set-up plus the prompt
/// at ~300 tokens/s, so each 100 tokens of history add ~0.3 s), then
/// 110-130 tokens/s. llama.cpp's threads wait for each other at every
/// layer, so 2 threads on 2 *busy* cores (Whisper or TTS running at the
/// same time) can drop to under 30 tokens/s; 1 thread gives a steady
/// 80-90 tokens/s and ~290 ms to the first piece there.
#[derive(Clone)]
pub struct LlamaLlm {
    inner: Arc<Inner>,
    slots: Arc<[Slot]>,
}

/// One generation thread and what its context holds.
struct Slot {
    jobs: std::sync::mpsc::Sender<Job>,
    /// The last prompt this slot evaluated, to route the next one.
    last_prompt: Arc<Mutex<String>>,
    /// Replies queued on or running in this slot.
    load: Arc<AtomicUsize>,
}

/// One reply for a slot.
struct Job {
    messages: Vec<ChatMessage>,
    tx: mpsc::Sender<Result<LlmChunk, ProviderError>>,
    /// Held until the reply ends.
    _active: ActiveReply,
    _load: SlotLoad,
}

/// Counts a job on its slot until dropped.
struct SlotLoad(Arc<AtomicUsize>);

impl Drop for SlotLoad {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A slot's context and the tokens its KV cache holds, in order.
struct Cached<'model> {
    ctx: llama_cpp_2::context::LlamaContext<'model>,
    tokens: Vec<LlamaToken>,
}

struct Inner {
    // Declared (so dropped) before `runtime`: the model must be freed before
    // the backend.
    model: LlamaModel,
    template: LlamaChatTemplate,
    config: LlamaConfig,
    /// Creating two contexts of one model at the same time is unsound in
    /// llama.cpp (it may write to the model), so creation is serialised.
    new_context: Mutex<()>,
    generated_tokens: AtomicU64,
    evaluated_prompt_tokens: AtomicU64,
    active_replies: AtomicUsize,
    runtime: Arc<LlamaRuntime>,
}

impl std::fmt::Debug for LlamaLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlamaLlm")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl LlamaLlm {
    /// Loads the GGUF model at `path` (see
    /// `voxgate_models::ModelPaths::smollm2_gguf`) and its chat template.
    pub fn load(
        runtime: Arc<LlamaRuntime>,
        path: &Path,
        config: LlamaConfig,
    ) -> Result<LlamaLlm, ProviderError> {
        let load_error = |reason: String| ProviderError::Load {
            what: format!("GGUF model {}", path.display()),
            reason,
        };
        if !path.is_file() {
            return Err(load_error("no such file".to_owned()));
        }
        let model =
            LlamaModel::load_from_file(&runtime.backend, path, &LlamaModelParams::default())
                .map_err(|e| load_error(e.to_string()))?;
        let template = model
            .chat_template(None)
            .map_err(|e| load_error(format!("chat template: {e}")))?;
        let slots = config.slots;
        let inner = Arc::new(Inner {
            model,
            template,
            config,
            new_context: Mutex::new(()),
            generated_tokens: AtomicU64::new(0),
            evaluated_prompt_tokens: AtomicU64::new(0),
            active_replies: AtomicUsize::new(0),
            runtime,
        });
        let slots = (0..slots)
            .map(|n| Slot::spawn(Arc::clone(&inner), n))
            .collect::<Result<Arc<[Slot]>, _>>()
            .map_err(|e| load_error(format!("starting a generation thread: {e}")))?;
        Ok(LlamaLlm { inner, slots })
    }

    /// Tokens generated by all replies so far (a metric; tests use it to
    /// see that a dropped receiver stops generation).
    pub fn generated_tokens(&self) -> u64 {
        self.inner.generated_tokens.load(Ordering::Relaxed)
    }

    /// Prompt tokens evaluated by all replies so far: those not already in
    /// a slot's cache (a metric; tests use it to see the cache reused).
    pub fn evaluated_prompt_tokens(&self) -> u64 {
        self.inner.evaluated_prompt_tokens.load(Ordering::Relaxed)
    }

    /// Replies whose generation is still running.
    pub fn active_replies(&self) -> usize {
        self.inner.active_replies.load(Ordering::Acquire)
    }
}

impl LanguageModel for LlamaLlm {
    /// SmolLM2-135M cannot call tools reliably, so `request.tools` is not
    /// offered to it. The reply is generated on the model's own threads,
    /// not in `scope`: they outlive calls, and drop a job whose receiver is
    /// gone.
    fn reply(
        &self,
        request: LlmRequest,
        _scope: &TaskScope,
    ) -> mpsc::Receiver<Result<LlmChunk, ProviderError>> {
        let (tx, rx) = mpsc::channel(self.inner.config.stream_buffer);
        let prompt = self.inner.prompt(&request.messages).unwrap_or_default();
        let slot = self.route(&prompt);
        slot.load.fetch_add(1, Ordering::AcqRel);
        let job = Job {
            messages: request.messages,
            tx,
            _active: ActiveReply::start(Arc::clone(&self.inner)),
            _load: SlotLoad(Arc::clone(&slot.load)),
        };
        if let Err(unsent) = slot.jobs.send(job) {
            let _ = unsent.0.tx.try_send(Err(ProviderError::Inference {
                provider: PROVIDER,
                reason: "the generation thread is gone".to_owned(),
            }));
        }
        rx
    }
}

impl LlamaLlm {
    /// The least loaded slot; among equals, the one whose last prompt
    /// shares the longest start with `prompt` (its KV cache is reused).
    fn route(&self, prompt: &str) -> &Slot {
        let shared = |slot: &Slot| {
            let last = slot
                .last_prompt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            last.bytes()
                .zip(prompt.bytes())
                .take_while(|(a, b)| a == b)
                .count()
        };
        self.slots
            .iter()
            .max_by_key(|slot| {
                (
                    std::cmp::Reverse(slot.load.load(Ordering::Acquire)),
                    shared(slot),
                )
            })
            .unwrap_or(&self.slots[0])
    }
}

impl Slot {
    fn spawn(inner: Arc<Inner>, n: usize) -> std::io::Result<Slot> {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let last_prompt = Arc::new(Mutex::new(String::new()));
        let seen = Arc::clone(&last_prompt);
        std::thread::Builder::new()
            .name(format!("llama-slot-{n}"))
            .spawn(move || {
                let mut cached = None;
                // Ends when the last `LlamaLlm` clone drops the senders.
                while let Ok(job) = queue.recv() {
                    if let Ok(prompt) = inner.prompt(&job.messages) {
                        *seen
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner) = prompt;
                    }
                    let generated = super::survive_panic(PROVIDER, || {
                        inner.generate(&mut cached, job.messages, &job.tx)
                    });
                    if let Err(e) = generated {
                        // The context may be half-updated (or a panic left
                        // it so): start clean.
                        cached = None;
                        let _ = job.tx.blocking_send(Err(e));
                    }
                }
            })?;
        Ok(Slot {
            jobs,
            last_prompt,
            load: Arc::new(AtomicUsize::new(0)),
        })
    }
}

/// Counts a running reply, until dropped (even by a panic).
struct ActiveReply(Arc<Inner>);

impl ActiveReply {
    fn start(inner: Arc<Inner>) -> ActiveReply {
        inner.active_replies.fetch_add(1, Ordering::AcqRel);
        ActiveReply(inner)
    }
}

impl Drop for ActiveReply {
    fn drop(&mut self) {
        self.0.active_replies.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Inner {
    /// Streams the reply to `messages` into `tx`, in the slot's context
    /// (made on first use), evaluating only what its cache does not hold.
    /// Returns early, without error, when the receiver is gone.
    fn generate<'model>(
        &'model self,
        cached: &mut Option<Cached<'model>>,
        mut messages: Vec<ChatMessage>,
        tx: &mpsc::Sender<Result<LlmChunk, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let inference = |reason: String| ProviderError::Inference {
            provider: PROVIDER,
            reason,
        };
        if tx.is_closed() {
            return Ok(());
        }
        let config = &self.config;
        let n_ctx = config.n_ctx as usize;
        let vocab = self.model.vocab();

        // Fit the conversation: drop the oldest turns (never the system
        // prompt, never the last message) until prompt + reply fit.
        let prompt = loop {
            let prompt = self.prompt(&messages)?;
            let tokens = vocab.tokenize(prompt.as_bytes(), false, true);
            if tokens.len() + config.max_tokens <= n_ctx {
                break tokens;
            }
            let oldest = messages.iter().position(|m| m.role != Role::System);
            match oldest {
                Some(i) if i + 1 < messages.len() => {
                    messages.remove(i);
                }
                _ => {
                    return Err(ProviderError::Input(format!(
                        "the prompt takes {} tokens; with {} for the reply that exceeds the \
                         context of {n_ctx}",
                        tokens.len(),
                        config.max_tokens
                    )));
                }
            }
        };
        if prompt.is_empty() {
            return Err(ProviderError::Input("empty prompt".to_owned()));
        }

        let Cached { ctx, tokens } = match cached {
            Some(cached) => cached,
            None => cached.insert(Cached {
                ctx: self.new_context()?,
                tokens: Vec::new(),
            }),
        };
        // Keep the longest common prefix, but evaluate at least the last
        // prompt token: its logits start the reply.
        let mut keep = common_prefix(tokens, &prompt);
        // Old messages left the conversation: cut them out of the cache and
        // shift what followed them down, instead of reading it all again.
        if let Some(gap) = dropped_span(tokens, &prompt, keep) {
            let (start, end) = (u32::try_from(keep), u32::try_from(keep + gap));
            let shift = i32::try_from(gap);
            if let (Ok(start), Ok(end), Ok(shift)) = (start, end, shift)
                && ctx.kv_cache_seq_rm(0, Some(start), Some(end)).is_ok()
                && ctx.kv_cache_seq_add(0, Some(end), None, -shift).is_ok()
            {
                tokens.drain(keep..keep + gap);
                keep = common_prefix(tokens, &prompt);
            }
        }
        let keep = keep.min(prompt.len() - 1);
        let trimmed = ctx
            .clear_kv_cache_seq(Some(0), Some(u32::try_from(keep).unwrap_or(0)), None)
            .unwrap_or(false);
        let keep = if trimmed {
            keep
        } else {
            ctx.clear_kv_cache();
            0
        };
        tokens.truncate(keep);
        // llama.cpp's own order: cut to top-k, then top-p, then temperature.
        let mut sampler = LlamaSampler::chain_simple([
            LlamaSampler::top_k(config.top_k),
            LlamaSampler::top_p(config.top_p, 1),
            LlamaSampler::temp(config.temperature),
            LlamaSampler::dist(config.seed),
        ]);

        let fresh = &prompt[keep..];
        let mut batch = LlamaBatch::new(fresh.len().max(1), 1);
        for (i, &token) in fresh.iter().enumerate() {
            batch
                .add(token, position_i32(keep + i)?, &[0], i + 1 == fresh.len())
                .map_err(|e| inference(format!("batching the prompt: {e}")))?;
        }
        ctx.decode(&mut batch)
            .map_err(|e| inference(format!("evaluating the prompt: {e}")))?;
        tokens.extend_from_slice(fresh);
        self.evaluated_prompt_tokens
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);

        let mut utf8 = Utf8Stream::default();
        let mut piece = Vec::new();
        // Fitting the prompt made `end <= n_ctx`: every position is valid.
        let end = prompt.len() + config.max_tokens;
        for position in prompt.len()..end {
            if tx.is_closed() {
                return Ok(());
            }
            let token = sampler.sample(ctx, batch.n_tokens() - 1);
            if vocab.is_eog(token) {
                break;
            }
            self.generated_tokens.fetch_add(1, Ordering::Relaxed);
            piece.clear();
            // Control tokens render as nothing.
            vocab.token_to_piece_into(token, &mut piece, false, None);
            let text = utf8.push(&piece);
            if !text.is_empty() && tx.blocking_send(Ok(LlmChunk::Text(text))).is_err() {
                return Ok(());
            }
            if position + 1 == end {
                // The last token: nothing will be sampled after it.
                break;
            }
            batch.clear();
            batch
                .add(token, position_i32(position)?, &[0], true)
                .map_err(|e| inference(format!("batching a token: {e}")))?;
            ctx.decode(&mut batch)
                .map_err(|e| inference(format!("evaluating a token: {e}")))?;
            tokens.push(token);
        }
        let rest = utf8.finish();
        if !rest.is_empty() {
            let _ = tx.blocking_send(Ok(LlmChunk::Text(rest)));
        }
        Ok(())
    }

    fn new_context(&self) -> Result<llama_cpp_2::context::LlamaContext<'_>, ProviderError> {
        let config = &self.config;
        let params = LlamaContextParams::default()
            .with_n_ctx(NonZeroU32::new(config.n_ctx))
            .with_n_batch(config.n_ctx)
            .with_n_threads(config.threads)
            .with_n_threads_batch(config.threads);
        // A poisoned lock guards nothing (the data is `()`); go on.
        let _guard = self
            .new_context
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.model
            .new_context(&self.runtime.backend, params)
            .map_err(|e| ProviderError::Inference {
                provider: PROVIDER,
                reason: format!("creating a context: {e}"),
            })
    }

    /// The conversation in the model's own chat format, ending with the
    /// assistant's turn opened.
    fn prompt(&self, messages: &[ChatMessage]) -> Result<String, ProviderError> {
        let chat = messages
            .iter()
            .map(|m| LlamaChatMessage::new(m.role.as_str().to_owned(), m.content.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ProviderError::Input(format!("a message holds a NUL byte: {e}")))?;
        self.model
            .apply_chat_template(&self.template, &chat, true)
            .map_err(|e| ProviderError::Inference {
                provider: PROVIDER,
                reason: format!("applying the chat template: {e}"),
            })
    }
}

fn position_i32(position: usize) -> Result<i32, ProviderError> {
    i32::try_from(position).map_err(|_| ProviderError::Inference {
        provider: PROVIDER,
        reason: format!("position {position} out of range"),
    })
}

/// Incremental UTF-8 decoding of token bytes: a token may end in the middle
/// of a character (emoji and accented letters often span two tokens), so
/// an incomplete sequence at the end is kept for the next token. Invalid
/// bytes become U+FFFD.
#[derive(Debug, Default)]
struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    /// The complete characters after `bytes` is appended.
    fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        let mut start = 0;
        loop {
            let rest = &self.pending[start..];
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.push_str(text);
                    start = self.pending.len();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&rest[..valid]));
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            start += valid + bad;
                        }
                        // An incomplete character at the end: wait for more.
                        None => {
                            start += valid;
                            break;
                        }
                    }
                }
            }
        }
        self.pending.drain(..start);
        out
    }

    /// What is left at the end of the stream: an unfinished character,
    /// which can only be shown as U+FFFD.
    fn finish(&mut self) -> String {
        let rest = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        rest
    }
}

/// How many tokens `cached` and `prompt` share from the start.
fn common_prefix(cached: &[LlamaToken], prompt: &[LlamaToken]) -> usize {
    cached
        .iter()
        .zip(prompt)
        .take_while(|(a, b)| a == b)
        .count()
}

/// The fewest cached tokens after the first `keep` whose removal makes the
/// cache go on as `prompt` does for at least [`MIN_SHIFTED_TOKENS`]: the
/// messages a conversation dropped from its start.
fn dropped_span(cached: &[LlamaToken], prompt: &[LlamaToken], keep: usize) -> Option<usize> {
    let wanted = prompt.get(keep..keep + MIN_SHIFTED_TOKENS)?;
    (1..cached.len().saturating_sub(keep)).find(|gap| {
        cached
            .get(keep + gap..keep + gap + MIN_SHIFTED_TOKENS)
            .is_some_and(|run| run == wanted)
    })
}

/// Tokens that must follow a dropped span for shifting the cache to be
/// worth it (and for the match to be the conversation, not chance).
const MIN_SHIFTED_TOKENS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(ids: impl IntoIterator<Item = i32>) -> Vec<LlamaToken> {
        ids.into_iter().map(LlamaToken::new).collect()
    }

    #[test]
    fn a_dropped_span_is_found_where_the_cache_goes_on_as_the_prompt() {
        // System prompt 0..10, old messages 100..150, the rest 200..260.
        let cached = tokens((0..10).chain(100..150).chain(200..260));
        let prompt = tokens((0..10).chain(200..270));
        let keep = common_prefix(&cached, &prompt);
        assert_eq!(keep, 10);
        assert_eq!(dropped_span(&cached, &prompt, keep), Some(50));
    }

    #[test]
    fn no_span_without_enough_matching_tokens_after_it() {
        let prompt = tokens((0..10).chain(200..270));
        // What follows the gap matches for fewer than MIN_SHIFTED_TOKENS.
        let short = tokens((0..10).chain(100..150).chain(200..220));
        assert_eq!(dropped_span(&short, &prompt, 10), None);
        // Another conversation altogether.
        let other = tokens((0..10).chain(300..400));
        assert_eq!(dropped_span(&other, &prompt, 10), None);
        // A prompt that goes on from the cache: nothing to drop.
        let continued = tokens(0..40);
        assert_eq!(dropped_span(&continued, &tokens(0..80), 40), None);
    }

    fn feed(chunks: &[&[u8]]) -> Vec<String> {
        let mut stream = Utf8Stream::default();
        let mut out: Vec<String> = chunks.iter().map(|c| stream.push(c)).collect();
        out.push(stream.finish());
        out
    }

    #[test]
    fn ascii_passes_straight_through() {
        assert_eq!(feed(&[b"Hel", b"lo"]), ["Hel", "lo", ""]);
    }

    #[test]
    fn a_split_two_byte_character_is_sent_whole() {
        let e = "é".as_bytes();
        assert_eq!(
            feed(&[b"caf", &e[..1], &e[1..], b"!"]),
            ["caf", "", "é", "!", ""]
        );
    }

    #[test]
    fn an_emoji_split_over_four_tokens_is_sent_whole() {
        let smile = "😀".as_bytes();
        let chunks: Vec<&[u8]> = smile.chunks(1).collect();
        assert_eq!(feed(&chunks), ["", "", "", "😀", ""]);
        // Split after the first byte and with text around it.
        let mut first = b"ok ".to_vec();
        first.extend_from_slice(&smile[..1]);
        let mut second = smile[1..].to_vec();
        second.extend_from_slice(" é".as_bytes());
        assert_eq!(feed(&[&first, &second]), ["ok ", "😀 é", ""]);
    }

    #[test]
    fn invalid_bytes_become_replacement_characters_and_decoding_goes_on() {
        assert_eq!(feed(&[b"a\xffb", b"c"]), ["a\u{FFFD}b", "c", ""]);
        // A lead byte followed by a non-continuation byte.
        assert_eq!(feed(&[b"\xc3", b"x"]), ["", "\u{FFFD}x", ""]);
    }

    #[test]
    fn an_unfinished_character_at_the_end_is_flushed() {
        assert_eq!(feed(&[b"a\xe2\x82"]), ["a", "\u{FFFD}"]);
    }

    #[test]
    fn every_split_of_mixed_text_round_trips() {
        let text = "Grüße, 東京 🎉 café";
        let bytes = text.as_bytes();
        for cut in 0..=bytes.len() {
            let pieces = feed(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(pieces.concat(), text, "cut at {cut}");
            assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
        }
    }
}
