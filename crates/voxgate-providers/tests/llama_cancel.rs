//! Dropping a reply's receiver stops generation within a token or two,
//! counted in generated tokens (not timed). Alone in its binary so that no
//! other reply moves the counters. Also reports time to first piece and
//! tokens per second.
#![cfg(feature = "llama")]

use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_core::engine::{ChatMessage, Role};
use voxgate_models::{Manifest, NoProgress, fetch, models_dir};
use voxgate_providers::local::{LlamaConfig, LlamaLlm, LlamaRuntime};
use voxgate_providers::{LanguageModel, LlmChunk, LlmRequest, TaskScope};

const STREAM_BUFFER: usize = 4;
const MAX_TOKENS: usize = 400;

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn messages() -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            Role::System,
            "You are a storyteller who writes long, detailed stories.".to_owned(),
        ),
        ChatMessage::new(
            Role::User,
            "Tell me a long story about a dragon who opens a restaurant.".to_owned(),
        ),
    ]
}

async fn until_idle(llm: &LlamaLlm) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while llm.active_replies() > 0 {
        assert!(Instant::now() < deadline, "generation did not stop");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_receiver_stops_generation() {
    let dir = models_dir(|k| std::env::var(k).ok());
    let paths = fetch(&Manifest::embedded(), &dir, &NoProgress).expect("fetching the models");
    let runtime = LlamaRuntime::init().expect("llama.cpp backend");
    let start = Instant::now();
    let config = LlamaConfig::default()
        .with_max_tokens(MAX_TOKENS)
        .with_stream_buffer(STREAM_BUFFER)
        .with_seed(7);
    let llm = LlamaLlm::load(runtime, paths.smollm2_gguf().expect("SmolLM2"), config)
        .expect("loading SmolLM2");
    eprintln!("llama: model loaded in {:?}", start.elapsed());

    // The whole reply, read to the end: how long it runs when nobody stops it.
    let start = Instant::now();
    let mut rx = llm.reply(LlmRequest::chat(messages()), &scope());
    let mut first_piece = None;
    let mut text = String::new();
    while let Some(piece) = rx.recv().await {
        first_piece.get_or_insert_with(|| start.elapsed());
        text.push_str(&text_of(piece.expect("generation")));
    }
    let total = start.elapsed();
    until_idle(&llm).await;
    let full = llm.generated_tokens();
    let ttft = first_piece.expect("at least one piece");
    eprintln!(
        "llama: {full} tokens, first piece after {ttft:?}, then {:.0} tokens/s; {text:?}",
        (full - 1) as f64 / (total - ttft).as_secs_f64()
    );
    assert!(
        full as usize > STREAM_BUFFER + 20,
        "the reply is too short ({full} tokens) to show that dropping stops it"
    );

    // The same reply (same seed), dropped after its first piece.
    let mut rx = llm.reply(LlmRequest::chat(messages()), &scope());
    rx.recv().await.expect("a first piece").expect("generation");
    drop(rx);
    until_idle(&llm).await;
    let cancelled = llm.generated_tokens() - full;
    eprintln!("llama: dropped after the first piece, {cancelled} tokens were generated");
    // The first piece, what fit in the buffer, and the one being made when
    // the receiver went (plus one whose piece was an unfinished character).
    assert!(
        cancelled as usize <= 1 + STREAM_BUFFER + 2,
        "{cancelled} tokens generated after the receiver was dropped (full reply: {full})"
    );
}

/// The local model streams text only.
fn text_of(chunk: LlmChunk) -> String {
    match chunk {
        LlmChunk::Text(text) => text,
        other => panic!("the local model sent {other:?}"),
    }
}
