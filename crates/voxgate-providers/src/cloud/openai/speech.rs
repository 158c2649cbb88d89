//! Text to speech over HTTP: `POST {base}/audio/speech` with
//! `response_format: "pcm"` streams raw PCM16 LE mono at 24 kHz, passed on
//! as it arrives.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::OpenAiConfig;
use super::transport::{BodyPiece, http_client, next_piece, send, spawn_or_fail};
use crate::supervisor::Supervisor;
use crate::{ProviderError, TaskScope, TextToSpeech};

/// The model used when none is configured.
pub const DEFAULT_SPEECH_MODEL: &str = "gpt-4o-mini-tts";

/// The voice used when none is configured (`VOXGATE_TTS_VOICE`).
pub const DEFAULT_VOICE: &str = "alloy";

/// The rate of `pcm` output, fixed by the API.
pub const SPEECH_SAMPLE_RATE: u32 = 24_000;

/// Chunks buffered between the reading task and the consumer.
const CHANNEL_CAPACITY: usize = 16;

/// How [`OpenAiSpeech`] asks for audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeechOptions {
    /// The model.
    pub model: String,
    /// The voice (`VOXGATE_TTS_VOICE`).
    pub voice: String,
    /// How to speak (tone, accent, pace), for models that take it
    /// (`gpt-4o-mini-tts`).
    pub instructions: Option<String>,
    /// How long to wait for the first audio once the response headers came.
    pub first_byte_timeout: Duration,
    /// How long to wait for each later piece of audio.
    pub chunk_timeout: Duration,
}

impl Default for SpeechOptions {
    fn default() -> Self {
        Self {
            model: DEFAULT_SPEECH_MODEL.to_owned(),
            voice: DEFAULT_VOICE.to_owned(),
            instructions: None,
            first_byte_timeout: Duration::from_secs(10),
            chunk_timeout: Duration::from_secs(10),
        }
    }
}

/// A voice behind `POST {base}/audio/speech`.
#[derive(Debug, Clone)]
pub struct OpenAiSpeech {
    inner: Arc<SpeechClient>,
}

#[derive(Debug)]
struct SpeechClient {
    http: reqwest::Client,
    config: OpenAiConfig,
    options: SpeechOptions,
    supervisor: Supervisor,
}

impl OpenAiSpeech {
    /// A client of the server in `config`, run under `supervisor` (the one
    /// shared by every OpenAI client of the process).
    ///
    /// # Errors
    /// [`ProviderError::Load`] if the HTTP client cannot be built.
    pub fn new(
        config: OpenAiConfig,
        options: SpeechOptions,
        supervisor: Supervisor,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            inner: Arc::new(SpeechClient {
                http: http_client()?,
                config,
                options,
                supervisor,
            }),
        })
    }
}

impl TextToSpeech for OpenAiSpeech {
    fn sample_rate(&self) -> u32 {
        SPEECH_SAMPLE_RATE
    }

    /// Must be called inside a tokio runtime; otherwise the channel carries
    /// one error. Text with nothing to say closes the channel at once.
    fn synthesize(
        &self,
        text: String,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        if text.trim().is_empty() {
            return rx;
        }
        let body = request_body(&self.inner.options, &text);
        let client = Arc::clone(&self.inner);
        let task_tx = tx.clone();
        spawn_or_fail(&tx, scope, async move {
            if let Err(error) = client.stream_audio(&body, &task_tx).await {
                let _ = task_tx.send(Err(error)).await;
            }
        });
        rx
    }
}

impl SpeechClient {
    async fn stream_audio(
        &self,
        body: &Value,
        tx: &mpsc::Sender<Result<Vec<i16>, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let url = self.config.base_url.join("/audio/speech");
        let key = self.config.api_key.as_ref();
        let (mut response, _permit) = self
            .supervisor
            .run(|_| send(self.http.post(&url).json(body), key))
            .await?;
        let mut samples = Pcm16Decoder::default();
        let mut wait = self.options.first_byte_timeout;
        loop {
            let piece = match next_piece(&mut response, wait, tx).await {
                Ok(piece) => piece,
                Err(error) => {
                    self.supervisor.record_failure();
                    return Err(error);
                }
            };
            match piece {
                BodyPiece::ReceiverGone => return Ok(()),
                BodyPiece::End => {
                    self.supervisor.record_success();
                    return Ok(());
                }
                BodyPiece::Bytes(bytes) => {
                    wait = self.options.chunk_timeout;
                    let audio = samples.push(&bytes);
                    if !audio.is_empty() && tx.send(Ok(audio)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// The speech request body for `text`.
fn request_body(options: &SpeechOptions, text: &str) -> Value {
    let mut body = json!({
        "model": options.model,
        "voice": options.voice,
        "input": text,
        "response_format": "pcm",
    });
    if let Some(instructions) = &options.instructions {
        body["instructions"] = json!(instructions);
    }
    body
}

/// Little-endian PCM16 from pieces of any length: a byte left over from
/// one piece starts the next one's first sample.
#[derive(Debug, Default)]
struct Pcm16Decoder {
    odd_byte: Option<u8>,
}

impl Pcm16Decoder {
    /// The whole samples `bytes` completes.
    fn push(&mut self, bytes: &[u8]) -> Vec<i16> {
        let mut samples = Vec::with_capacity(bytes.len().div_ceil(2));
        let mut rest = bytes;
        if let (Some(low), Some((&high, tail))) = (self.odd_byte, rest.split_first()) {
            samples.push(i16::from_le_bytes([low, high]));
            self.odd_byte = None;
            rest = tail;
        }
        let pairs = rest.chunks_exact(2);
        if let [last] = pairs.remainder() {
            self.odd_byte = Some(*last);
        }
        samples.extend(pairs.map(|pair| i16::from_le_bytes([pair[0], pair[1]])));
        samples
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_split_anywhere_decode_the_same() {
        let expected: Vec<i16> = vec![0, 1, -1, i16::MAX, i16::MIN, 12345, -4321];
        let bytes: Vec<u8> = expected.iter().flat_map(|s| s.to_le_bytes()).collect();
        for size in 1..=bytes.len() {
            let mut decoder = Pcm16Decoder::default();
            let decoded: Vec<i16> = bytes.chunks(size).flat_map(|c| decoder.push(c)).collect();
            assert_eq!(decoded, expected, "pieces of {size} bytes");
        }
        let mut decoder = Pcm16Decoder::default();
        assert!(decoder.push(&[0x01]).is_empty());
        assert!(decoder.push(&[]).is_empty());
        assert_eq!(decoder.push(&[0x02]), [0x0201]);
    }

    #[test]
    fn the_request_asks_for_raw_pcm() {
        let options = SpeechOptions {
            instructions: Some("Warm.".to_owned()),
            ..SpeechOptions::default()
        };
        assert_eq!(
            request_body(&options, "Hello."),
            json!({"model": DEFAULT_SPEECH_MODEL, "voice": DEFAULT_VOICE, "input": "Hello.",
                   "response_format": "pcm", "instructions": "Warm."})
        );
    }
}
