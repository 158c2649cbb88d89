//! The OpenAI-compatible chat client against the in-repo fake: streamed
//! text and tool calls, the request it sends, compatible servers' quirks,
//! faults and retries, cancellation, and the key kept out of errors.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use voxgate_providers::cloud::BaseUrl;
use voxgate_providers::cloud::openai::OpenAiConfig;
use voxgate_providers::cloud::openai::chat::{ChatOptions, OpenAiChat, check};
use voxgate_providers::supervisor::{Supervisor, VendorPolicy};
use voxgate_providers::{
    ChatMessage, LanguageModel, LlmChunk, LlmRequest, ProviderError, Secret, TaskScope, TokenUsage,
    ToolCall, ToolSpec,
};
use voxgate_testkit::fakes::openai::{ChatReply, FakeOpenAi, Fault, Quirk, ScriptedToolCall};

const KEY: &str = "sk-test-secret-0001";

/// Longest any reply may take in these tests.
const DEADLINE: Duration = Duration::from_secs(10);

/// A scope that nothing cancels: each test holds what it started.
fn scope() -> TaskScope {
    TaskScope::new(TaskTracker::new(), CancellationToken::new())
}

fn config(fake: &FakeOpenAi, key: Option<&str>) -> OpenAiConfig {
    OpenAiConfig {
        base_url: BaseUrl::parse(&format!("{}/v1", fake.base_url())).expect("the fake's URL"),
        api_key: key.map(Secret::new),
    }
}

fn supervisor() -> Supervisor {
    Supervisor::new(
        "openai",
        VendorPolicy {
            connect_timeout: Duration::from_secs(3),
            retries: 2,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_secs(2),
            ..VendorPolicy::default()
        },
    )
}

fn chat_with(fake: &FakeOpenAi, options: ChatOptions) -> OpenAiChat {
    OpenAiChat::new(config(fake, Some(KEY)), options, supervisor()).expect("a client")
}

fn chat(fake: &FakeOpenAi) -> OpenAiChat {
    chat_with(fake, ChatOptions::default())
}

fn hello() -> LlmRequest {
    LlmRequest::chat(vec![
        ChatMessage::system("Be brief."),
        ChatMessage::user("Hello?"),
    ])
}

/// Everything on the channel until it closes, and the error if the reply
/// ended with one.
async fn collect(
    mut rx: mpsc::Receiver<Result<LlmChunk, ProviderError>>,
) -> (Vec<LlmChunk>, Option<ProviderError>) {
    let mut chunks = Vec::new();
    loop {
        let next = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("the reply ends in time");
        match next {
            None => return (chunks, None),
            Some(Ok(chunk)) => chunks.push(chunk),
            Some(Err(error)) => {
                assert!(rx.recv().await.is_none(), "nothing follows an error");
                return (chunks, Some(error));
            }
        }
    }
}

fn text(s: &str) -> LlmChunk {
    LlmChunk::Text(s.to_owned())
}

fn tool_call(id: &str, name: &str, arguments: &str) -> LlmChunk {
    LlmChunk::ToolCall(ToolCall {
        id: id.to_owned(),
        name: name.to_owned(),
        arguments: arguments.to_owned(),
    })
}

fn usage(prompt: u32, completion: u32) -> LlmChunk {
    LlmChunk::Usage(TokenUsage { prompt, completion })
}

fn weather_tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "weather".to_owned(),
        description: "The weather in a city".to_owned(),
        parameters: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }]
}

fn two_calls() -> Vec<ScriptedToolCall> {
    vec![
        ScriptedToolCall::new("call_a", "weather", &["{\"ci", "ty\":\"Pa", "ris\"}"]),
        ScriptedToolCall::new("call_b", "time", &["{\"tz\":", "\"CET\"}"]),
    ]
}

#[tokio::test]
async fn text_streams_in_pieces_and_in_order() {
    let fake = FakeOpenAi::start().await;
    fake.push_chat(
        ChatReply::text(&["Hel", "lo ", "there."])
            .with_usage(12, 3)
            .with_interval(Duration::from_millis(80)),
    );
    let mut rx = chat(&fake).reply(hello(), &scope());
    let mut arrivals = Vec::new();
    let mut chunks = Vec::new();
    while let Some(chunk) = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the reply ends in time")
    {
        arrivals.push(Instant::now());
        chunks.push(chunk.expect("no error"));
    }
    assert_eq!(
        chunks,
        [text("Hel"), text("lo "), text("there."), usage(12, 3)]
    );
    // The fake pauses between events: text that came all at once would
    // have been buffered.
    assert!(arrivals[2] - arrivals[0] >= Duration::from_millis(150));

    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        request.json(),
        json!({
            "model": "gpt-4o-mini",
            "stream": true,
            "stream_options": {"include_usage": true},
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hello?"},
            ],
        })
    );
}

#[tokio::test]
async fn parallel_tool_calls_are_emitted_complete() {
    let fake = FakeOpenAi::start().await;
    fake.push_chat(ChatReply::tool_calls(two_calls()).with_usage(40, 20));
    let request = LlmRequest {
        tools: weather_tools(),
        ..hello()
    };
    let (chunks, error) = collect(chat(&fake).reply(request, &scope())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        chunks,
        [
            tool_call("call_a", "weather", r#"{"city":"Paris"}"#),
            tool_call("call_b", "time", r#"{"tz":"CET"}"#),
            usage(40, 20),
        ]
    );
    assert_eq!(
        fake.requests()[0].json()["tools"],
        json!([{"type": "function", "function": {
            "name": "weather",
            "description": "The weather in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        }}])
    );
}

#[tokio::test]
async fn tool_calls_and_results_are_sent_back_in_the_history() {
    let fake = FakeOpenAi::start().await;
    let request = LlmRequest {
        messages: vec![
            ChatMessage::user("Weather in Paris?"),
            ChatMessage::assistant_calls(
                "Let me look.",
                vec![ToolCall {
                    id: "call_a".to_owned(),
                    name: "weather".to_owned(),
                    arguments: r#"{"city":"Paris"}"#.to_owned(),
                }],
            ),
            ChatMessage::tool_result("call_a", r#"{"sky":"clear"}"#),
            ChatMessage::assistant_calls(
                "",
                vec![ToolCall {
                    id: "call_b".to_owned(),
                    name: "hang_up".to_owned(),
                    arguments: "{}".to_owned(),
                }],
            ),
            ChatMessage::tool_result("call_b", "done"),
        ],
        tools: weather_tools(),
    };
    let (_, error) = collect(chat(&fake).reply(request, &scope())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(
        fake.requests()[0].json()["messages"],
        json!([
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "Let me look.", "tool_calls": [
                {"id": "call_a", "type": "function",
                 "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "content": "{\"sky\":\"clear\"}", "tool_call_id": "call_a"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_b", "type": "function",
                 "function": {"name": "hang_up", "arguments": "{}"}}]},
            {"role": "tool", "content": "done", "tool_call_id": "call_b"},
        ])
    );
}

#[tokio::test]
async fn compatible_servers_quirks_give_the_same_reply() {
    let fake = FakeOpenAi::start().await;
    let model = chat(&fake);
    for quirk in [
        Quirk::None,
        Quirk::VllmNullChoices,
        Quirk::OllamaWholeToolCalls,
        Quirk::GroqUsage,
        Quirk::XaiUsageNotLast,
    ] {
        let mut reply = ChatReply::tool_calls(two_calls())
            .with_usage(30, 9)
            .with_quirk(quirk);
        reply.text_deltas = vec!["One ".to_owned(), "moment.".to_owned()];
        fake.push_chat(reply);
        let (chunks, error) = collect(model.reply(hello(), &scope())).await;
        assert!(error.is_none(), "{quirk:?}: {error:?}");
        assert_eq!(
            chunks,
            [
                text("One "),
                text("moment."),
                tool_call("call_a", "weather", r#"{"city":"Paris"}"#),
                tool_call("call_b", "time", r#"{"tz":"CET"}"#),
                usage(30, 9),
            ],
            "{quirk:?}"
        );
    }
}

#[tokio::test]
async fn a_refused_key_is_rejected_without_retry_and_never_shown() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::Status(401));
    let (chunks, error) = collect(chat(&fake).reply(hello(), &scope())).await;
    assert!(chunks.is_empty());
    let error = error.expect("an error");
    assert!(
        matches!(error, ProviderError::Rejected { status: 401, .. }),
        "{error:?}"
    );
    assert_eq!(fake.requests().len(), 1, "not retried");
    assert_eq!(
        fake.requests()[0].header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    for shown in [error.to_string(), format!("{error:?}")] {
        assert!(!shown.contains(KEY), "the key leaked: {shown}");
        assert!(shown.contains("Incorrect API key"), "{shown}");
    }
    let client = chat(&fake);
    assert!(!format!("{client:?}").contains(KEY));
}

#[tokio::test]
async fn without_a_key_no_authorization_is_sent() {
    let fake = FakeOpenAi::start().await;
    let model = OpenAiChat::new(config(&fake, None), ChatOptions::default(), supervisor())
        .expect("a client");
    let (_, error) = collect(model.reply(hello(), &scope())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

#[tokio::test]
async fn rate_limiting_is_retried_after_the_time_asked() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::RateLimited {
        retry_after_secs: 1,
    });
    let started = Instant::now();
    let (chunks, error) = collect(chat(&fake).reply(hello(), &scope())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(chunks[0], text("Hello"));
    assert_eq!(fake.requests().len(), 2);
    assert!(started.elapsed() >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_server_error_is_retried() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::Status(500));
    let (chunks, error) = collect(chat(&fake).reply(hello(), &scope())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(chunks.first(), Some(&text("Hello")));
    assert_eq!(fake.requests().len(), 2);
}

#[tokio::test]
async fn a_stream_cut_short_fails_after_the_text_that_came() {
    for fault in [Fault::DropMidStream, Fault::EndWithoutDone] {
        let fake = FakeOpenAi::start().await;
        fake.push_chat(ChatReply::text(&["a", "b", "c", "d", "e", "f", "g", "h"]));
        fake.push_fault(fault.clone());
        let (chunks, error) = collect(chat(&fake).reply(hello(), &scope())).await;
        let error = error.expect("an error");
        assert!(
            matches!(error, ProviderError::Unavailable { .. }),
            "{fault:?}: {error:?}"
        );
        assert!(!chunks.is_empty(), "{fault:?}: the first text arrived");
        assert!(chunks.len() < 8, "{fault:?}: {chunks:?}");
        assert!(
            chunks.iter().all(|c| matches!(c, LlmChunk::Text(_))),
            "{fault:?}: no usage from a cut stream"
        );
        assert_eq!(fake.requests().len(), 1, "a stream is not retried");
    }
}

#[tokio::test]
async fn a_malformed_chunk_is_a_protocol_error() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::MalformedChunk);
    let (_, error) = collect(chat(&fake).reply(hello(), &scope())).await;
    let error = error.expect("an error");
    assert!(matches!(error, ProviderError::Protocol { .. }), "{error:?}");
}

#[tokio::test]
async fn a_slow_first_byte_times_out() {
    let fake = FakeOpenAi::start().await;
    fake.push_fault(Fault::SlowFirstByte(Duration::from_secs(5)));
    let model = chat_with(
        &fake,
        ChatOptions {
            first_byte_timeout: Duration::from_millis(200),
            ..ChatOptions::default()
        },
    );
    let started = Instant::now();
    let (chunks, error) = collect(model.reply(hello(), &scope())).await;
    assert!(chunks.is_empty());
    let error = error.expect("an error");
    assert!(
        matches!(error, ProviderError::Unavailable { .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dropping_the_receiver_stops_the_request() {
    let fake = FakeOpenAi::start().await;
    fake.push_chat(ChatReply::text(&["word "; 300]).with_interval(Duration::from_millis(10)));
    let mut rx = chat(&fake).reply(hello(), &scope());
    for _ in 0..3 {
        let chunk = tokio::time::timeout(DEADLINE, rx.recv())
            .await
            .expect("text in time");
        assert!(matches!(chunk, Some(Ok(LlmChunk::Text(_)))));
    }
    drop(rx);
    let deadline = Instant::now() + Duration::from_secs(2);
    while fake.streams_abandoned() == 0 {
        assert!(Instant::now() < deadline, "the fake still streams");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.streams_completed(), 0);
}

#[tokio::test]
async fn check_finds_the_model_and_reports_a_bad_key_or_model() {
    let fake = FakeOpenAi::start().await;
    let config = config(&fake, Some(KEY));
    check(&config, "gpt-4o-mini").await.expect("a known model");
    assert_eq!(fake.requests()[0].path, "/v1/models/gpt-4o-mini");

    let unknown = check(&config, "gpt-nope").await;
    assert!(
        matches!(unknown, Err(ProviderError::Rejected { status: 404, .. })),
        "{unknown:?}"
    );

    fake.push_fault(Fault::Status(401));
    let refused = check(&config, "gpt-4o-mini").await.expect_err("a bad key");
    assert!(matches!(
        refused,
        ProviderError::Rejected { status: 401, .. }
    ));
    assert!(!refused.to_string().contains(KEY));

    // vLLM serves only the list.
    fake.serve_model_list_only();
    fake.set_models(&["meta-llama/Llama-3.1-8B-Instruct"]);
    check(&config, "meta-llama/Llama-3.1-8B-Instruct")
        .await
        .expect("found in the list");
    let missing = check(&config, "gpt-4o-mini").await;
    assert!(
        matches!(missing, Err(ProviderError::Rejected { status: 404, .. })),
        "{missing:?}"
    );
}

#[tokio::test]
async fn a_reply_stops_with_its_scope_while_its_receiver_is_held() {
    let fake = FakeOpenAi::start().await;
    fake.push_chat(ChatReply::text(&["word "; 300]).with_interval(Duration::from_millis(10)));
    let call = scope();
    let mut rx = chat(&fake).reply(hello(), &call);
    let chunk = tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("text in time");
    assert!(matches!(chunk, Some(Ok(LlmChunk::Text(_)))));

    call.token().cancel();
    call.tracker().close();
    tokio::time::timeout(DEADLINE, call.tracker().wait())
        .await
        .expect("the request's task ends with the call");
    let deadline = Instant::now() + Duration::from_secs(2);
    while fake.streams_abandoned() == 0 {
        assert!(Instant::now() < deadline, "the fake still streams");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.streams_completed(), 0);
    // What was already queued may still be read; then the channel closes.
    while let Some(chunk) = rx.recv().await {
        assert!(chunk.is_ok(), "{chunk:?}");
    }
}
