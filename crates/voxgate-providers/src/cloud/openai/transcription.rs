//! Speech to text for whole turns: `POST {base}/audio/transcriptions`
//! (multipart, the turn as a 16 kHz WAV), answered `{"text": …}`. Made a
//! [`SpeechToText`](crate::SpeechToText) by [`BatchStt`](crate::BatchStt).

use std::sync::Arc;

use serde::Deserialize;
use tokio::sync::mpsc;
use voxgate_core::audio::{SampleRate, write_wav_into};

use super::OpenAiConfig;
use super::transport::{http_client, protocol, send, spawn_or_fail, unavailable};
use crate::supervisor::Supervisor;
use crate::{ProviderError, TaskScope, TranscribeUtterance};

/// The model used when none is configured (`VOXGATE_STT_MODEL`).
pub const DEFAULT_TRANSCRIPTION_MODEL: &str = "gpt-4o-mini-transcribe";

/// How [`OpenAiTranscription`] asks for transcripts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptionOptions {
    /// The model (`VOXGATE_STT_MODEL`).
    pub model: String,
    /// The spoken language as ISO-639-1 (`en`), which improves accuracy
    /// and latency; detected when `None`.
    pub language: Option<String>,
}

impl Default for TranscriptionOptions {
    fn default() -> Self {
        Self {
            model: DEFAULT_TRANSCRIPTION_MODEL.to_owned(),
            language: None,
        }
    }
}

/// A recogniser behind `POST {base}/audio/transcriptions`.
///
/// The whole request, answer included, runs under the supervisor, so its
/// connect timeout must allow for the time the server takes to transcribe.
#[derive(Debug, Clone)]
pub struct OpenAiTranscription {
    inner: Arc<TranscriptionClient>,
}

#[derive(Debug)]
struct TranscriptionClient {
    http: reqwest::Client,
    config: OpenAiConfig,
    options: TranscriptionOptions,
    supervisor: Supervisor,
}

#[derive(Debug, Deserialize)]
struct Transcript {
    text: String,
}

impl OpenAiTranscription {
    /// A client of the server in `config`, run under `supervisor` (the one
    /// shared by every OpenAI client of the process).
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the HTTP client cannot be built.
    pub fn new(
        config: OpenAiConfig,
        options: TranscriptionOptions,
        supervisor: Supervisor,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            inner: Arc::new(TranscriptionClient {
                http: http_client()?,
                config,
                options,
                supervisor,
            }),
        })
    }
}

impl TranscribeUtterance for OpenAiTranscription {
    /// Must be called inside a tokio runtime; otherwise the channel carries
    /// one error. Empty audio is an empty transcript, without a request.
    fn transcribe(
        &self,
        audio: Vec<i16>,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<String, ProviderError>> {
        let (tx, rx) = mpsc::channel(1);
        let client = Arc::clone(&self.inner);
        let task_tx = tx.clone();
        spawn_or_fail(&tx, scope, async move {
            let outcome = tokio::select! {
                // Nobody waits for the text any more: drop the request.
                () = task_tx.closed() => return,
                outcome = client.transcribe(&audio) => outcome,
            };
            let _ = task_tx.send(outcome).await;
        });
        rx
    }

    /// Each transcription is a billed request: only whole turns are sent.
    fn transcribe_at_pauses(&self) -> bool {
        false
    }
}

impl TranscriptionClient {
    async fn transcribe(&self, audio: &[i16]) -> Result<String, ProviderError> {
        if audio.is_empty() {
            return Ok(String::new());
        }
        let mut wav = Vec::new();
        write_wav_into(SampleRate::HZ_16000, 1, audio, &mut wav);
        let url = self.config.base_url.join("/audio/transcriptions");
        let key = self.config.api_key.as_ref();
        let (transcript, _permit) = self
            .supervisor
            .run(|_| {
                // A form is consumed by sending, so each attempt builds one.
                let file = reqwest::multipart::Part::bytes(wav.clone())
                    .file_name("audio.wav")
                    .mime_str("audio/wav")
                    .expect("audio/wav is a valid MIME type");
                let mut form = reqwest::multipart::Form::new()
                    .part("file", file)
                    .text("model", self.options.model.clone())
                    .text("response_format", "json");
                if let Some(language) = &self.options.language {
                    form = form.text("language", language.clone());
                }
                let request = self.http.post(&url).multipart(form);
                async move {
                    let response = send(request, key).await?;
                    let body = response.bytes().await.map_err(|e| unavailable(&e))?;
                    serde_json::from_slice::<Transcript>(&body)
                        .map_err(|e| protocol(format!("not a transcript ({e})")))
                }
            })
            .await?;
        Ok(transcript.text.trim().to_owned())
    }
}
