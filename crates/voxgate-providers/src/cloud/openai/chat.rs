//! A language model on any OpenAI-compatible Chat Completions server
//! (OpenAI, vLLM, Ollama, Groq, xAI, llama.cpp …): the reply streams as
//! server-sent events.
//!
//! The protocol part is plain data in, data out: [`request_body`] builds
//! the JSON, and `ReplyAccumulator` turns the data of each event into
//! [`LlmChunk`]s, tolerating the known quirks of compatible servers. The
//! async shell only moves bytes, under the vendor's [`Supervisor`] and read
//! timeouts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::ACCEPT;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::OpenAiConfig;
use super::sse::SseParser;
use super::transport::{
    BodyPiece, PROVIDER, error_message, http_client, next_piece, protocol, send, spawn_or_fail,
};
use crate::supervisor::Supervisor;
use crate::{
    ChatMessage, LanguageModel, LlmChunk, LlmRequest, ProviderError, TaskScope, TokenUsage,
};

/// The model used when none is configured (`VOXGATE_LLM_MODEL`).
pub const DEFAULT_CHAT_MODEL: &str = "gpt-4o-mini";

/// Chunks buffered between the reading task and the consumer.
const CHANNEL_CAPACITY: usize = 32;

/// How long [`check`] waits for the server.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`OpenAiChat`] asks for replies.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatOptions {
    /// The model (`VOXGATE_LLM_MODEL`).
    pub model: String,
    /// Most tokens in a reply (`max_tokens`); the server's default when
    /// `None`.
    pub max_tokens: Option<u32>,
    /// Sampling temperature; the server's default when `None`.
    pub temperature: Option<f64>,
    /// Ask for token counts (`stream_options.include_usage`). Some older
    /// servers reject the field; turn it off for them.
    pub include_usage: bool,
    /// How long to wait for the first byte of the reply once the response
    /// headers came.
    pub first_byte_timeout: Duration,
    /// How long to wait for each later piece of the reply.
    pub chunk_timeout: Duration,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            model: DEFAULT_CHAT_MODEL.to_owned(),
            max_tokens: None,
            temperature: None,
            include_usage: true,
            first_byte_timeout: Duration::from_secs(10),
            chunk_timeout: Duration::from_secs(10),
        }
    }
}

/// A chat model behind `POST {base}/chat/completions`.
#[derive(Debug, Clone)]
pub struct OpenAiChat {
    inner: Arc<ChatClient>,
}

#[derive(Debug)]
struct ChatClient {
    http: reqwest::Client,
    config: OpenAiConfig,
    options: ChatOptions,
    supervisor: Supervisor,
}

impl OpenAiChat {
    /// A client of the server in `config`, run under `supervisor` (the one
    /// shared by every OpenAI client of the process).
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the HTTP client cannot be built.
    pub fn new(
        config: OpenAiConfig,
        options: ChatOptions,
        supervisor: Supervisor,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            inner: Arc::new(ChatClient {
                http: http_client()?,
                config,
                options,
                supervisor,
            }),
        })
    }
}

impl LanguageModel for OpenAiChat {
    /// Must be called inside a tokio runtime; otherwise the channel carries
    /// one error.
    fn reply(
        &self,
        request: LlmRequest,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<LlmChunk, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let body = request_body(&self.inner.options, &request);
        let client = Arc::clone(&self.inner);
        let task_tx = tx.clone();
        spawn_or_fail(&tx, scope, async move {
            if let Err(error) = client.stream_reply(&body, &task_tx).await {
                let _ = task_tx.send(Err(error)).await;
            }
        });
        rx
    }
}

impl ChatClient {
    async fn stream_reply(
        &self,
        body: &Value,
        tx: &mpsc::Sender<Result<LlmChunk, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let url = self.config.base_url.join("/chat/completions");
        let key = self.config.api_key.as_ref();
        let (mut response, _permit) = self
            .supervisor
            .run(|_| {
                let request = self
                    .http
                    .post(&url)
                    .header(ACCEPT, "text/event-stream")
                    .json(body);
                send(request, key)
            })
            .await?;
        let outcome = self.read_reply(&mut response, tx).await;
        match outcome {
            Ok(()) => self.supervisor.record_success(),
            Err(_) => self.supervisor.record_failure(),
        }
        outcome
    }

    /// Forwards the reply's chunks until `[DONE]`, an error, or the
    /// receiver is gone (then the response is dropped, which aborts it).
    async fn read_reply(
        &self,
        response: &mut reqwest::Response,
        tx: &mpsc::Sender<Result<LlmChunk, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let mut events = SseParser::default();
        let mut reply = ReplyAccumulator::default();
        let mut data = Vec::new();
        let mut chunks = Vec::new();
        let mut wait = self.options.first_byte_timeout;
        loop {
            match next_piece(response, wait, tx).await? {
                BodyPiece::ReceiverGone => return Ok(()),
                BodyPiece::End => break,
                BodyPiece::Bytes(bytes) => {
                    wait = self.options.chunk_timeout;
                    events
                        .push(&bytes, &mut data)
                        .map_err(|e| protocol(e.to_string()))?;
                    for event in data.drain(..) {
                        reply.push(&event, &mut chunks)?;
                    }
                    if !forward(&mut chunks, tx).await {
                        return Ok(());
                    }
                }
            }
        }
        if let Some(event) = events.finish() {
            reply.push(&event, &mut chunks)?;
        }
        reply.finish(&mut chunks)?;
        forward(&mut chunks, tx).await;
        Ok(())
    }
}

/// Sends `chunks` on; false once the receiver is gone.
async fn forward(
    chunks: &mut Vec<LlmChunk>,
    tx: &mpsc::Sender<Result<LlmChunk, ProviderError>>,
) -> bool {
    for chunk in chunks.drain(..) {
        if tx.send(Ok(chunk)).await.is_err() {
            return false;
        }
    }
    true
}

/// Checks, for `voxgate check`, that the server at `config` takes the key
/// and knows `model`: `GET {base}/models/{model}`, falling back to the list
/// at `GET {base}/models` for servers that serve only that (vLLM).
///
/// # Errors
/// [`ProviderError::Rejected`] with status 401 for a refused key or 404 for
/// an unknown model; otherwise what the request met.
pub async fn check(config: &OpenAiConfig, model: &str) -> Result<(), ProviderError> {
    let http = http_client()?;
    let key = config.api_key.as_ref();
    let get = |path: &str| send(http.get(config.base_url.join(path)), key);
    let checking = async {
        match get(&format!("/models/{model}")).await {
            Ok(_) => Ok(()),
            Err(ProviderError::Rejected {
                status: 401,
                reason,
                ..
            }) => Err(ProviderError::Rejected {
                provider: PROVIDER,
                status: 401,
                reason: format!("the API key was refused: {reason}"),
            }),
            Err(not_found @ ProviderError::Rejected { status: 404, .. }) => {
                let listed = match get("/models").await {
                    Ok(response) => response.json::<ModelList>().await.ok(),
                    Err(_) => None,
                };
                match listed {
                    Some(list) if list.data.iter().any(|m| m.id == model) => Ok(()),
                    Some(_) => Err(ProviderError::Rejected {
                        provider: PROVIDER,
                        status: 404,
                        reason: format!("unknown model {model:?}"),
                    }),
                    None => Err(not_found),
                }
            }
            Err(other) => Err(other),
        }
    };
    tokio::time::timeout(CHECK_TIMEOUT, checking)
        .await
        .unwrap_or_else(|_| {
            Err(ProviderError::Unavailable {
                provider: PROVIDER,
                reason: format!("no answer within {CHECK_TIMEOUT:?}"),
            })
        })
}

#[derive(Debug, Deserialize)]
struct ModelList {
    data: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
struct ModelEntry {
    id: String,
}

// ---- The protocol: request body and reply accumulation (sans-IO). ----

/// The Chat Completions request body for `request`.
fn request_body(options: &ChatOptions, request: &LlmRequest) -> Value {
    let messages: Vec<Value> = request.messages.iter().map(message_json).collect();
    let mut body = json!({
        "model": options.model,
        "messages": messages,
        "stream": true,
    });
    if options.include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(max_tokens) = options.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let Some(temperature) = options.temperature {
        body["temperature"] = json!(temperature);
    }
    if !request.tools.is_empty() {
        let tools: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                json!({
                    "type": "function",
                    "function": {
                        "name": tool.name,
                        "description": tool.description,
                        "parameters": tool.parameters,
                    }
                })
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

fn message_json(message: &ChatMessage) -> Value {
    let mut json = json!({"role": message.role.as_str(), "content": message.content});
    if !message.tool_calls.is_empty() {
        // A turn that only called tools has no text: the API's form for
        // that is `null`, which every compatible server accepts.
        if message.content.is_empty() {
            json["content"] = Value::Null;
        }
        let calls: Vec<Value> = message
            .tool_calls
            .iter()
            .map(|call| {
                json!({
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                })
            })
            .collect();
        json["tool_calls"] = Value::Array(calls);
    }
    if let Some(id) = &message.tool_call_id {
        json["tool_call_id"] = json!(id);
    }
    json
}

/// One `chat.completion.chunk`, with every field the quirks make optional.
#[derive(Debug, Deserialize)]
struct WireChunk {
    /// Absent or `null` in vLLM's usage chunk.
    choices: Option<Vec<WireChoice>>,
    usage: Option<WireUsage>,
    /// Groq's older place for the usage.
    x_groq: Option<WireGroq>,
    /// An error reported mid-stream.
    error: Option<Value>,
}

#[derive(Debug, Deserialize)]
struct WireChoice {
    index: Option<u32>,
    delta: Option<WireDelta>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireDelta {
    content: Option<String>,
    refusal: Option<String>,
    tool_calls: Option<Vec<WireToolCall>>,
}

#[derive(Debug, Deserialize)]
struct WireToolCall {
    /// Missing in older Ollama versions.
    index: Option<u32>,
    id: Option<String>,
    function: Option<WireFunction>,
}

#[derive(Debug, Deserialize)]
struct WireFunction {
    name: Option<String>,
    arguments: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u32,
    #[serde(default)]
    completion_tokens: u32,
}

#[derive(Debug, Deserialize)]
struct WireGroq {
    usage: Option<WireUsage>,
}

impl From<WireUsage> for TokenUsage {
    fn from(usage: WireUsage) -> Self {
        TokenUsage {
            prompt: usage.prompt_tokens,
            completion: usage.completion_tokens,
        }
    }
}

/// A tool call whose fragments are still arriving.
#[derive(Debug, Default)]
struct PartialCall {
    id: String,
    name: String,
    arguments: String,
}

/// Turns the data of each event of a reply into [`LlmChunk`]s: text at
/// once, tool calls once complete, the usage at the end.
#[derive(Debug, Default)]
struct ReplyAccumulator {
    /// Calls in the order they started.
    calls: Vec<PartialCall>,
    /// The wire `index` of a call → its place in `calls`.
    by_index: HashMap<u32, usize>,
    /// Calls emitted so far, to number those that came without an id.
    emitted: usize,
    /// The last usage seen; servers differ in where and when they send it.
    usage: Option<TokenUsage>,
    /// `[DONE]` came.
    done: bool,
}

impl ReplyAccumulator {
    /// Reads the data of one event, appending what it completes to `out`.
    ///
    /// # Errors
    /// [`ProviderError::Protocol`] for data that is not a chunk, or a tool
    /// call without a name; [`ProviderError::Unavailable`] for an error
    /// the server reported mid-stream.
    fn push(&mut self, data: &str, out: &mut Vec<LlmChunk>) -> Result<(), ProviderError> {
        if self.done {
            return Ok(());
        }
        if data.trim() == "[DONE]" {
            self.done = true;
            return Ok(());
        }
        let chunk: WireChunk = serde_json::from_str(data).map_err(|e| {
            let excerpt: String = data.chars().take(200).collect();
            protocol(format!("malformed chunk ({e}): {excerpt}"))
        })?;
        if let Some(error) = chunk.error {
            return Err(ProviderError::Unavailable {
                provider: PROVIDER,
                reason: format!("error mid-stream: {}", error_message(&error)),
            });
        }
        // `n` is never set, so only the first choice exists.
        for choice in chunk.choices.into_iter().flatten() {
            if choice.index.unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                // A refusal is what the model says instead of an answer.
                for text in [delta.content, delta.refusal].into_iter().flatten() {
                    if !text.is_empty() {
                        out.push(LlmChunk::Text(text));
                    }
                }
                for fragment in delta.tool_calls.into_iter().flatten() {
                    self.push_fragment(fragment);
                }
            }
            if choice
                .finish_reason
                .is_some_and(|reason| !reason.is_empty())
            {
                self.take_calls(out)?;
            }
        }
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage.into());
        } else if let Some(usage) = chunk.x_groq.and_then(|groq| groq.usage) {
            self.usage.get_or_insert(usage.into());
        }
        Ok(())
    }

    /// The end of the body: the calls not yet emitted, then the usage.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] if `[DONE]` never came: the
    /// connection dropped, and whatever was pending is incomplete.
    fn finish(mut self, out: &mut Vec<LlmChunk>) -> Result<(), ProviderError> {
        if !self.done {
            return Err(ProviderError::Unavailable {
                provider: PROVIDER,
                reason: "the reply stream ended before [DONE]".to_owned(),
            });
        }
        self.take_calls(out)?;
        out.extend(self.usage.map(LlmChunk::Usage));
        Ok(())
    }

    fn push_fragment(&mut self, fragment: WireToolCall) {
        let id = fragment.id.filter(|id| !id.is_empty());
        // The id comes only with a call's first fragment, so another id
        // means another call, even at the same index: servers that send
        // each call whole (Ollama) may repeat an index or leave it out.
        let starts_new = |call: &PartialCall| match &id {
            Some(id) => !call.id.is_empty() && call.id != *id,
            None => false,
        };
        let existing = match fragment.index {
            Some(index) => self.by_index.get(&index).copied(),
            None => self.calls.len().checked_sub(1),
        };
        let slot = match existing {
            Some(slot) if !starts_new(&self.calls[slot]) => slot,
            _ => {
                self.calls.push(PartialCall::default());
                let slot = self.calls.len() - 1;
                if let Some(index) = fragment.index {
                    self.by_index.insert(index, slot);
                }
                slot
            }
        };
        let call = &mut self.calls[slot];
        if let (true, Some(id)) = (call.id.is_empty(), id) {
            call.id = id;
        }
        if let Some(function) = fragment.function {
            if let (true, Some(name)) = (call.name.is_empty(), function.name) {
                call.name = name;
            }
            if let Some(arguments) = function.arguments {
                call.arguments.push_str(&arguments);
            }
        }
    }

    fn take_calls(&mut self, out: &mut Vec<LlmChunk>) -> Result<(), ProviderError> {
        self.by_index.clear();
        for call in self.calls.drain(..) {
            if call.name.is_empty() {
                return Err(protocol(format!(
                    "tool call {:?} came without a name",
                    call.id
                )));
            }
            let id = if call.id.is_empty() {
                format!("call_{}", self.emitted)
            } else {
                call.id
            };
            // A call without arguments is an empty object, as the tool's
            // schema expects an object.
            let arguments = if call.arguments.trim().is_empty() {
                "{}".to_owned()
            } else {
                call.arguments
            };
            self.emitted += 1;
            out.push(LlmChunk::ToolCall(crate::ToolCall {
                id,
                name: call.name,
                arguments,
            }));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ToolCall, ToolSpec};

    /// The chunks of a stream of event data, or the first error.
    fn accumulate(events: &[&str]) -> Result<Vec<LlmChunk>, ProviderError> {
        let mut reply = ReplyAccumulator::default();
        let mut out = Vec::new();
        for event in events {
            reply.push(event, &mut out)?;
        }
        reply.finish(&mut out)?;
        Ok(out)
    }

    fn text(s: &str) -> LlmChunk {
        LlmChunk::Text(s.to_owned())
    }

    fn call(id: &str, name: &str, arguments: &str) -> LlmChunk {
        LlmChunk::ToolCall(ToolCall {
            id: id.to_owned(),
            name: name.to_owned(),
            arguments: arguments.to_owned(),
        })
    }

    fn usage(prompt: u32, completion: u32) -> LlmChunk {
        LlmChunk::Usage(TokenUsage { prompt, completion })
    }

    #[test]
    fn text_streams_then_usage_comes_at_the_end() {
        let chunks = accumulate(&[
            r#"{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo."},"finish_reason":null}],"usage":null}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":9,"completion_tokens":2,"total_tokens":11}}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(chunks, [text("Hel"), text("lo."), usage(9, 2)]);
    }

    #[test]
    fn parallel_tool_calls_are_accumulated_by_index() {
        let chunks = accumulate(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"weather","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"ci"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"time","arguments":"{\"tz\":"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\":\"Paris\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"\"CET\"}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            chunks,
            [
                call("call_a", "weather", r#"{"city":"Paris"}"#),
                call("call_b", "time", r#"{"tz":"CET"}"#),
            ]
        );
    }

    #[test]
    fn a_tool_turn_is_decided_by_the_calls_not_the_finish_reason() {
        let chunks = accumulate(&[
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_a","function":{"name":"hang_up","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(chunks, [call("call_a", "hang_up", "{}")]);
    }

    #[test]
    fn calls_without_a_finish_reason_are_emitted_at_done() {
        let chunks = accumulate(&[
            r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(chunks, [call("call_0", "f", "{}")]);
    }

    #[test]
    fn whole_calls_without_an_index_are_separate_calls() {
        // Ollama: each call whole, no index, and `stop` as the reason.
        let chunks = accumulate(&[
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"a","arguments":"{\"x\":1}"}},{"id":"call_2","type":"function","function":{"name":"b","arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_3","index":0,"type":"function","function":{"name":"c","arguments":"{}"}}]},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(
            chunks,
            [
                call("call_1", "a", r#"{"x":1}"#),
                call("call_2", "b", "{}"),
                call("call_3", "c", "{}"),
            ]
        );
    }

    #[test]
    fn usage_quirks_of_compatible_servers() {
        // vLLM: `choices` null, or absent.
        for usage_chunk in [
            r#"{"choices":null,"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
            r#"{"usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
        ] {
            let chunks = accumulate(&[
                r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#,
                usage_chunk,
                "[DONE]",
            ])
            .expect("a valid stream");
            assert_eq!(chunks, [text("Hi"), usage(3, 1)]);
        }
        // Groq: in `x_groq` on the last chunk.
        let chunks = accumulate(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"x_groq":{"id":"req_1"}}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_1","usage":{"queue_time":0.01,"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(chunks, [text("Hi"), usage(5, 1)]);
        // xAI: the usage chunk is followed by an empty one.
        let chunks = accumulate(&[
            r#"{"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":1}}"#,
            r#"{"choices":[]}"#,
            "[DONE]",
        ])
        .expect("a valid stream");
        assert_eq!(chunks, [text("Hi"), usage(7, 1)]);
    }

    #[test]
    fn a_stream_cut_before_done_is_unavailable() {
        let mut reply = ReplyAccumulator::default();
        let mut out = Vec::new();
        reply
            .push(
                r#"{"choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
                &mut out,
            )
            .expect("a valid chunk");
        assert_eq!(out, [text("Hel")]);
        assert!(matches!(
            reply.finish(&mut out),
            Err(ProviderError::Unavailable { .. })
        ));
    }

    #[test]
    fn malformed_data_and_errors_mid_stream_fail() {
        assert!(matches!(
            accumulate(&["{\"choices\":[{\"delta\":"]),
            Err(ProviderError::Protocol { .. })
        ));
        assert!(matches!(
            accumulate(&[r#"{"choices":"nope"}"#]),
            Err(ProviderError::Protocol { .. })
        ));
        let error = accumulate(&[
            r#"{"error":{"message":"The server had an error","type":"server_error","code":null}}"#,
        ])
        .expect_err("an error event");
        assert!(matches!(error, ProviderError::Unavailable { .. }));
        assert!(error.to_string().contains("The server had an error"));
        assert!(matches!(
            accumulate(&[
                r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c","function":{"arguments":"{}"}}]}}]}"#,
                "[DONE]",
            ]),
            Err(ProviderError::Protocol { .. })
        ));
    }

    #[test]
    fn events_after_done_are_ignored() {
        let chunks = accumulate(&["[DONE]", "not json"]).expect("ignored");
        assert!(chunks.is_empty());
    }

    #[test]
    fn the_request_body_carries_tools_calls_and_results() {
        let options = ChatOptions {
            model: "m".to_owned(),
            max_tokens: Some(100),
            temperature: Some(0.5),
            ..ChatOptions::default()
        };
        let request = LlmRequest {
            messages: vec![
                ChatMessage::system("Be brief."),
                ChatMessage::user("Weather?"),
                ChatMessage::assistant_calls(
                    "",
                    vec![ToolCall {
                        id: "call_a".to_owned(),
                        name: "weather".to_owned(),
                        arguments: r#"{"city":"Paris"}"#.to_owned(),
                    }],
                ),
                ChatMessage::tool_result("call_a", "sunny"),
            ],
            tools: vec![ToolSpec {
                name: "weather".to_owned(),
                description: "The weather".to_owned(),
                parameters: json!({"type": "object"}),
            }],
        };
        assert_eq!(
            request_body(&options, &request),
            json!({
                "model": "m",
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 100,
                "temperature": 0.5,
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Weather?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_a", "type": "function",
                         "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}
                    ]},
                    {"role": "tool", "content": "sunny", "tool_call_id": "call_a"},
                ],
                "tools": [{"type": "function", "function": {
                    "name": "weather", "description": "The weather",
                    "parameters": {"type": "object"}}}],
            })
        );
        let plain = request_body(
            &ChatOptions {
                include_usage: false,
                ..ChatOptions::default()
            },
            &LlmRequest::chat(vec![ChatMessage::user("Hi")]),
        );
        assert_eq!(
            plain,
            json!({"model": DEFAULT_CHAT_MODEL, "stream": true,
                   "messages": [{"role": "user", "content": "Hi"}]})
        );
    }
}
