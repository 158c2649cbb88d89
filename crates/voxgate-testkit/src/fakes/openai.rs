//! A fake OpenAI HTTP API (not the Realtime API): Chat Completions
//! streaming as server-sent events, audio transcription (multipart), speech
//! (chunked raw PCM), and the model routes. Clients take
//! `{fake.base_url()}/v1` as their base URL.
//!
//! Tests queue scripted replies and [`Fault`]s; each request takes the next
//! fault (if any), then the next script of its kind (or a default one).
//! Every request is recorded. Compatible servers' quirks are scripted with
//! [`Quirk`].

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::FakeServer;

/// Models the fake knows when none are set.
const DEFAULT_MODELS: [&str; 3] = ["gpt-4o-mini", "gpt-4o-mini-transcribe", "gpt-4o-mini-tts"];

/// `created` in every object the fake returns.
const CREATED: u64 = 1_700_000_000;

/// Bytes per piece of a speech body: odd, so that samples straddle pieces.
const SPEECH_PIECE_BYTES: usize = 4_801;

/// A way for the next request to go wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and OpenAI's error body for it (401 bad
    /// key, 404, 500 …).
    Status(u16),
    /// 429 with `retry-after` in seconds.
    RateLimited {
        /// The `retry-after` value.
        retry_after_secs: u32,
    },
    /// Send the headers at once and the body only after this long.
    SlowFirstByte(Duration),
    /// Send half the body, then cut the connection (no `[DONE]`).
    DropMidStream,
    /// Send half the reply's events, then end the body cleanly without
    /// `[DONE]` (chat only).
    EndWithoutDone,
    /// After the first event, send a `data:` line that is not JSON (chat),
    /// or a body that is not JSON (transcription).
    MalformedChunk,
}

/// A quirk of an OpenAI-compatible server, for a scripted chat reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quirk {
    /// OpenAI's own protocol.
    #[default]
    None,
    /// vLLM: the usage chunk has `"choices": null`.
    VllmNullChoices,
    /// Ollama: all tool calls whole in one chunk, without `index`, and
    /// `finish_reason: "stop"`.
    OllamaWholeToolCalls,
    /// Groq: no usage chunk; the usage is in `x_groq.usage` of the last
    /// chunk.
    GroqUsage,
    /// xAI: the usage chunk is followed by one with empty `choices`.
    XaiUsageNotLast,
}

/// A tool call in a scripted reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptedToolCall {
    /// Its id (`call_…`).
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments, as the fragments that are streamed.
    pub argument_fragments: Vec<String>,
}

impl ScriptedToolCall {
    /// A call of `name` whose arguments arrive as `fragments`.
    pub fn new(id: &str, name: &str, fragments: &[&str]) -> Self {
        Self {
            id: id.to_owned(),
            name: name.to_owned(),
            argument_fragments: fragments.iter().map(|f| (*f).to_owned()).collect(),
        }
    }
}

/// A scripted chat reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatReply {
    /// The text, as the deltas that are streamed.
    pub text_deltas: Vec<String>,
    /// Tool calls, streamed after the text.
    pub tool_calls: Vec<ScriptedToolCall>,
    /// Prompt and completion tokens reported when the client asks for
    /// usage.
    pub usage: (u32, u32),
    /// The compatible server to imitate.
    pub quirk: Quirk,
    /// The pause between events.
    pub interval: Duration,
}

impl ChatReply {
    /// A text reply streamed as `deltas`.
    pub fn text(deltas: &[&str]) -> Self {
        Self {
            text_deltas: deltas.iter().map(|d| (*d).to_owned()).collect(),
            tool_calls: Vec::new(),
            usage: (10, u32::try_from(deltas.len()).unwrap_or(u32::MAX)),
            quirk: Quirk::None,
            interval: Duration::ZERO,
        }
    }

    /// A reply that calls `calls`.
    pub fn tool_calls(calls: Vec<ScriptedToolCall>) -> Self {
        Self {
            tool_calls: calls,
            ..Self::text(&[])
        }
    }

    /// With this usage.
    pub fn with_usage(mut self, prompt: u32, completion: u32) -> Self {
        self.usage = (prompt, completion);
        self
    }

    /// Imitating `quirk`.
    pub fn with_quirk(mut self, quirk: Quirk) -> Self {
        self.quirk = quirk;
        self
    }

    /// With `interval` between events.
    pub fn with_interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    /// `GET`, `POST` …
    pub method: String,
    /// The path, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Bytes,
}

impl RecordedRequest {
    /// The value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON; fails the test if it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the request body is JSON")
    }

    /// The parts of a multipart body; fails the test if it is not one.
    pub fn form(&self) -> Vec<FormPart> {
        let content_type = self.header("content-type").unwrap_or_default();
        parse_multipart(content_type, &self.body).expect("the request body is multipart")
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPart {
    /// The field name.
    pub name: String,
    /// The file name, for a file.
    pub filename: Option<String>,
    /// The part's content type, when given.
    pub content_type: Option<String>,
    /// The content.
    pub data: Vec<u8>,
}

#[derive(Debug, Default)]
struct Script {
    chat: VecDeque<ChatReply>,
    transcripts: VecDeque<String>,
    speech: VecDeque<(Vec<i16>, Duration)>,
    faults: VecDeque<Fault>,
    requests: Vec<RecordedRequest>,
    models: Vec<String>,
    model_list_only: bool,
    streams_completed: usize,
    streams_abandoned: usize,
}

#[derive(Debug, Default)]
struct Shared {
    script: Mutex<Script>,
}

impl Shared {
    fn script(&self) -> std::sync::MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The fake server and the handle tests script it with.
#[derive(Debug)]
pub struct FakeOpenAi {
    server: FakeServer,
    shared: Arc<Shared>,
}

impl FakeOpenAi {
    /// Starts the fake on a free loopback port.
    pub async fn start() -> FakeOpenAi {
        let shared = Arc::new(Shared::default());
        shared.script().models = DEFAULT_MODELS.map(str::to_owned).to_vec();
        let server = FakeServer::serve(router(Arc::clone(&shared))).await;
        FakeOpenAi { server, shared }
    }

    /// `http://127.0.0.1:PORT`; clients take this plus `/v1`.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Queues the reply to the next chat request without one.
    pub fn push_chat(&self, reply: ChatReply) {
        self.shared.script().chat.push_back(reply);
    }

    /// Queues the text of the next transcription.
    pub fn push_transcript(&self, text: &str) {
        self.shared.script().transcripts.push_back(text.to_owned());
    }

    /// Queues the audio (24 kHz) of the next speech request, sent as fast
    /// as the connection takes it.
    pub fn push_speech(&self, samples: Vec<i16>) {
        self.push_speech_paced(samples, Duration::ZERO);
    }

    /// Queues the audio of the next speech request, with `interval` between
    /// its pieces.
    pub fn push_speech_paced(&self, samples: Vec<i16>, interval: Duration) {
        self.shared.script().speech.push_back((samples, interval));
    }

    /// Queues a fault for the next request (of any kind).
    pub fn push_fault(&self, fault: Fault) {
        self.shared.script().faults.push_back(fault);
    }

    /// Sets the models the model routes know.
    pub fn set_models(&self, models: &[&str]) {
        self.shared.script().models = models.iter().map(|m| (*m).to_owned()).collect();
    }

    /// Serves only the model list, as vLLM does: `GET /v1/models/{id}`
    /// answers 404 for every id.
    pub fn serve_model_list_only(&self) {
        self.shared.script().model_list_only = true;
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.script().requests.clone()
    }

    /// Streamed bodies whose every piece was handed to the connection.
    pub fn streams_completed(&self) -> usize {
        self.shared.script().streams_completed
    }

    /// Streamed bodies cut short because the client closed the connection.
    pub fn streams_abandoned(&self) -> usize {
        self.shared.script().streams_abandoned
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/speech", post(speech))
        .route("/v1/models", get(list_models))
        .route("/v1/models/{id}", get(retrieve_model))
        .with_state(shared)
}

/// Records the request and takes the next fault.
fn receive(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Option<Fault> {
    let mut script = shared.script();
    script.requests.push(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body,
    });
    script.faults.pop_front()
}

/// OpenAI's error response.
fn error_response(status: StatusCode, kind: &str, code: Value, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": code}});
    (status, axum::Json(body)).into_response()
}

fn invalid_request(message: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        Value::Null,
        message,
    )
}

/// The response for a status fault; `None` for faults of the body.
fn status_fault(fault: Option<&Fault>, headers: &HeaderMap) -> Option<Response> {
    match fault? {
        Fault::Status(401) => {
            let key = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default();
            Some(error_response(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                json!("invalid_api_key"),
                &format!(
                    "Incorrect API key provided: {}. You can find your API key at \
                     https://platform.openai.com/account/api-keys.",
                    masked(key)
                ),
            ))
        }
        Fault::Status(code) => {
            let status = StatusCode::from_u16(*code).expect("a valid HTTP status");
            Some(if status.is_server_error() {
                error_response(
                    status,
                    "server_error",
                    Value::Null,
                    "The server had an error while processing your request. Sorry about that!",
                )
            } else {
                error_response(
                    status,
                    "invalid_request_error",
                    Value::Null,
                    "Fault injected.",
                )
            })
        }
        Fault::RateLimited { retry_after_secs } => {
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                json!("rate_limit_exceeded"),
                &format!("Rate limit reached. Please try again in {retry_after_secs}s."),
            );
            response.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from(*retry_after_secs),
            );
            Some(response)
        }
        Fault::SlowFirstByte(_)
        | Fault::DropMidStream
        | Fault::EndWithoutDone
        | Fault::MalformedChunk => None,
    }
}

/// A key as OpenAI echoes it: the first three and last four characters.
fn masked(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let head: String = chars[..3].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(chars.len() - 7))
}

/// How a body is sent: pieces with pauses, and the fault that shapes it.
struct Delivery {
    pieces: Vec<Bytes>,
    interval: Duration,
    fault: Option<Fault>,
}

/// Streams `delivery` as the body of a 200 with `content_type`, counting
/// whether it was sent to the end or the client went away first.
fn deliver(shared: Arc<Shared>, content_type: &'static str, delivery: Delivery) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    let Delivery {
        mut pieces,
        interval,
        fault,
    } = delivery;
    tokio::spawn(async move {
        let cut = matches!(fault, Some(Fault::DropMidStream | Fault::EndWithoutDone));
        if cut {
            pieces.truncate((pieces.len() / 2).max(1));
        }
        if let Some(Fault::SlowFirstByte(delay)) = fault {
            tokio::time::sleep(delay).await;
        }
        let count = pieces.len();
        for (n, piece) in pieces.into_iter().enumerate() {
            if tx.send(Ok(piece)).await.is_err() {
                shared.script().streams_abandoned += 1;
                return;
            }
            if n + 1 < count && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
        }
        if fault == Some(Fault::DropMidStream) {
            // Let hyper flush what was sent; then an error ends the body
            // without its last chunk, and hyper cuts the connection.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let _ = tx
                .send(Err(std::io::Error::other("connection dropped")))
                .await;
            return;
        }
        // Dropping the sender ends the body.
        drop(tx);
        shared.script().streams_completed += 1;
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    (
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response()
}

/// Records a JSON request and applies a status fault: the fault queued for
/// it and its body, or the response that ends it there.
fn json_request(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Option<Fault>, Value), Box<Response>> {
    let fault = receive(shared, method, uri, headers, body.clone());
    if let Some(response) = status_fault(fault.as_ref(), headers) {
        return Err(Box::new(response));
    }
    let request = serde_json::from_slice::<Value>(&body).map_err(|_| {
        Box::new(invalid_request(
            "We could not parse the JSON body of your request.",
        ))
    })?;
    Ok((fault, request))
}

async fn chat_completions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = match json_request(&shared, &method, &uri, &headers, body) {
        Ok(received) => received,
        Err(response) => return *response,
    };
    let Some(model) = request["model"].as_str() else {
        return invalid_request("you must provide a model parameter");
    };
    if !request["messages"].is_array() {
        return invalid_request("Missing required parameter: 'messages'.");
    }
    if request["stream"] != json!(true) {
        return invalid_request("This fake serves only streamed replies (stream: true).");
    }
    let include_usage = request["stream_options"]["include_usage"] == json!(true);
    let reply = shared
        .script()
        .chat
        .pop_front()
        .unwrap_or_else(|| ChatReply::text(&["Hello", " from", " the fake."]));
    let mut events = chat_events(&reply, model, include_usage);
    if fault == Some(Fault::MalformedChunk) {
        events.insert(
            1,
            r#"{"choices":[{"index":0,"delta":{"content":"#.to_owned(),
        );
    }
    let mut pieces: Vec<Bytes> = events
        .into_iter()
        .map(|event| Bytes::from(format!("data: {event}\n\n")))
        .collect();
    if !matches!(fault, Some(Fault::DropMidStream | Fault::EndWithoutDone)) {
        pieces.push(Bytes::from_static(b"data: [DONE]\n\n"));
    }
    let delivery = Delivery {
        pieces,
        interval: reply.interval,
        fault,
    };
    deliver(shared, "text/event-stream; charset=utf-8", delivery)
}

/// The data of each event of `reply`, as `model` would stream it.
fn chat_events(reply: &ChatReply, model: &str, include_usage: bool) -> Vec<String> {
    let quirk = reply.quirk;
    let chunk = |choices: Value| {
        let mut chunk = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": choices,
        });
        if include_usage {
            chunk["usage"] = Value::Null;
        }
        chunk
    };
    let choice = |delta: Value, finish: Option<&str>| json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]);
    let (prompt, completion) = reply.usage;
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    });
    let calling = !reply.tool_calls.is_empty();

    let mut events = Vec::new();
    let first_content = if calling && reply.text_deltas.is_empty() {
        Value::Null
    } else {
        json!("")
    };
    events.push(chunk(choice(
        json!({"role": "assistant", "content": first_content, "refusal": null}),
        None,
    )));
    for delta in &reply.text_deltas {
        events.push(chunk(choice(json!({"content": delta}), None)));
    }
    if quirk == Quirk::OllamaWholeToolCalls && calling {
        let calls: Vec<Value> = reply
            .tool_calls
            .iter()
            .map(|call| {
                json!({"id": call.id, "type": "function", "function": {
                    "name": call.name, "arguments": call.argument_fragments.concat()}})
            })
            .collect();
        events.push(chunk(choice(json!({"tool_calls": calls}), None)));
    } else {
        for (index, call) in reply.tool_calls.iter().enumerate() {
            events.push(chunk(choice(
                json!({"tool_calls": [{"index": index, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}]}),
                None,
            )));
            for fragment in &call.argument_fragments {
                events.push(chunk(choice(
                    json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
                    None,
                )));
            }
        }
    }
    let finish_reason = if calling && quirk != Quirk::OllamaWholeToolCalls {
        "tool_calls"
    } else {
        "stop"
    };
    let mut last = chunk(choice(json!({}), Some(finish_reason)));
    if quirk == Quirk::GroqUsage {
        last["x_groq"] = json!({"id": "req_fake", "usage": usage});
        events.push(last);
        return events.into_iter().map(|e| e.to_string()).collect();
    }
    events.push(last);
    if include_usage {
        let mut usage_chunk = chunk(json!([]));
        usage_chunk["usage"] = usage;
        if quirk == Quirk::VllmNullChoices {
            usage_chunk["choices"] = Value::Null;
        }
        events.push(usage_chunk);
        if quirk == Quirk::XaiUsageNotLast {
            events.push(chunk(json!([])));
        }
    }
    events.into_iter().map(|e| e.to_string()).collect()
}

async fn transcriptions(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fault = receive(&shared, &method, &uri, &headers, body.clone());
    if let Some(response) = status_fault(fault.as_ref(), &headers) {
        return response;
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Ok(parts) = parse_multipart(content_type, &body) else {
        return invalid_request("The request body is not valid multipart/form-data.");
    };
    let field = |name: &str| parts.iter().find(|part| part.name == name);
    if field("model").is_none() {
        return invalid_request("you must provide a model parameter");
    }
    let Some(file) = field("file") else {
        return invalid_request("Missing required parameter: 'file'.");
    };
    if !file.data.starts_with(b"RIFF") || file.data.get(8..12) != Some(b"WAVE".as_slice()) {
        return invalid_request("Invalid file format. Supported formats: ['flac', 'mp3', 'wav' …]");
    }
    let text = shared
        .script()
        .transcripts
        .pop_front()
        .unwrap_or_else(|| "Hello.".to_owned());
    let answer = if fault == Some(Fault::MalformedChunk) {
        r#"{"text": "#.to_owned()
    } else {
        json!({"text": text, "usage": {"type": "tokens", "input_tokens": 14,
            "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
            "output_tokens": 5, "total_tokens": 19}})
        .to_string()
    };
    if fault.is_none() || fault == Some(Fault::MalformedChunk) {
        return ([(header::CONTENT_TYPE, "application/json")], answer).into_response();
    }
    let answer = Bytes::from(answer);
    let middle = answer.len() / 2;
    let delivery = Delivery {
        pieces: vec![answer.slice(..middle), answer.slice(middle..)],
        interval: Duration::ZERO,
        fault,
    };
    deliver(shared, "application/json", delivery)
}

async fn speech(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (fault, request) = match json_request(&shared, &method, &uri, &headers, body) {
        Ok(received) => received,
        Err(response) => return *response,
    };
    for field in ["model", "input", "voice"] {
        if !request[field].is_string() {
            return invalid_request(&format!("Missing required parameter: '{field}'."));
        }
    }
    if request["response_format"] != json!("pcm") {
        return invalid_request("This fake serves only response_format \"pcm\".");
    }
    let (samples, interval) = shared.script().speech.pop_front().unwrap_or_else(|| {
        let ramp = (0..6_000).map(|n| ((n % 200) * 100 - 10_000) as i16);
        (ramp.collect(), Duration::ZERO)
    });
    let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let delivery = Delivery {
        pieces: bytes
            .chunks(SPEECH_PIECE_BYTES)
            .map(Bytes::copy_from_slice)
            .collect(),
        interval,
        fault,
    };
    deliver(shared, "audio/pcm", delivery)
}

fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": CREATED, "owned_by": "openai"})
}

async fn list_models(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let fault = receive(&shared, &method, &uri, &headers, Bytes::new());
    if let Some(response) = status_fault(fault.as_ref(), &headers) {
        return response;
    }
    let data: Vec<Value> = shared
        .script()
        .models
        .iter()
        .map(|m| model_object(m))
        .collect();
    axum::Json(json!({"object": "list", "data": data})).into_response()
}

async fn retrieve_model(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let fault = receive(&shared, &method, &uri, &headers, Bytes::new());
    if let Some(response) = status_fault(fault.as_ref(), &headers) {
        return response;
    }
    let (known, list_only) = {
        let script = shared.script();
        (script.models.contains(&id), script.model_list_only)
    };
    if list_only {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"detail": "Not Found"})),
        )
            .into_response();
    }
    if !known {
        return error_response(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            json!("model_not_found"),
            &format!("The model '{id}' does not exist or you do not have access to it."),
        );
    }
    axum::Json(model_object(&id)).into_response()
}

/// The parts of a `multipart/form-data` body whose `content_type` names the
/// boundary.
fn parse_multipart(content_type: &str, body: &[u8]) -> Result<Vec<FormPart>, String> {
    let boundary = content_type
        .split(';')
        .map(str::trim)
        .find_map(|param| param.strip_prefix("boundary="))
        .map(|b| b.trim_matches('"'))
        .filter(|_| content_type.starts_with("multipart/form-data"))
        .ok_or("not multipart/form-data with a boundary")?;
    let delimiter = format!("--{boundary}");
    let next_delimiter = format!("\r\n--{boundary}");
    let start = find(body, delimiter.as_bytes()).ok_or("no first boundary")?;
    let mut rest = &body[start + delimiter.len()..];
    let mut parts = Vec::new();
    while !rest.starts_with(b"--") {
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("no line break after a boundary")?;
        let end = find(rest, next_delimiter.as_bytes()).ok_or("a part without its end")?;
        let part = &rest[..end];
        rest = &rest[end + next_delimiter.len()..];
        let split = find(part, b"\r\n\r\n").ok_or("a part without headers")?;
        let head = std::str::from_utf8(&part[..split]).map_err(|_| "headers not UTF-8")?;
        let mut name = None;
        let mut filename = None;
        let mut content_type = None;
        for line in head.split("\r\n") {
            let (key, value) = line.split_once(':').ok_or("a malformed part header")?;
            if key.eq_ignore_ascii_case("content-disposition") {
                for param in value.split(';').map(str::trim) {
                    if let Some(v) = param.strip_prefix("name=") {
                        name = Some(v.trim_matches('"').to_owned());
                    } else if let Some(v) = param.strip_prefix("filename=") {
                        filename = Some(v.trim_matches('"').to_owned());
                    }
                }
            } else if key.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.trim().to_owned());
            }
        }
        parts.push(FormPart {
            name: name.ok_or("a part without a name")?,
            filename,
            content_type,
            data: part[split + 4..].to_vec(),
        });
    }
    Ok(parts)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_bodies_are_split_into_parts() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n\
            --XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\
            Content-Type: audio/wav\r\n\r\nRIFF\r\n--\r\n--XyZ--\r\n";
        let parts = parse_multipart("multipart/form-data; boundary=XyZ", body).expect("valid");
        assert_eq!(
            parts,
            [
                FormPart {
                    name: "model".to_owned(),
                    filename: None,
                    content_type: None,
                    data: b"m".to_vec(),
                },
                FormPart {
                    name: "file".to_owned(),
                    filename: Some("a.wav".to_owned()),
                    content_type: Some("audio/wav".to_owned()),
                    data: b"RIFF\r\n--".to_vec(),
                },
            ]
        );
        assert!(parse_multipart("application/json", body).is_err());
    }

    #[test]
    fn keys_are_masked_like_openai_does() {
        assert_eq!(masked("sk-test-secret-0001"), "sk-************0001");
        assert_eq!(masked("short"), "*****");
    }

    #[test]
    fn a_scripted_reply_streams_like_openai() {
        let reply = ChatReply::tool_calls(vec![ScriptedToolCall::new("call_1", "f", &["{", "}"])]);
        let events = chat_events(&reply, "m", true);
        let parsed: Vec<Value> = events
            .iter()
            .map(|e| serde_json::from_str(e).expect("JSON"))
            .collect();
        assert_eq!(parsed[0]["choices"][0]["delta"]["role"], "assistant");
        assert_eq!(
            parsed[1]["choices"][0]["delta"]["tool_calls"][0]["id"],
            "call_1"
        );
        assert_eq!(
            parsed[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"],
            "{"
        );
        assert_eq!(parsed[4]["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(parsed[5]["choices"], json!([]));
        assert_eq!(parsed[5]["usage"]["total_tokens"], 10);
        assert!(parsed[..5].iter().all(|e| e["usage"].is_null()));
    }
}
