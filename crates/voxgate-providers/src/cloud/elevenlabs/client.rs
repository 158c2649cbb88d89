//! The async shell: opening sockets under the supervisor, and one task per
//! sentence, in the call's scope, that sends it and passes the audio on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::messages::{END_OF_INPUT, Reply, Stop, init_message, sentence_message};
use super::spare::Spares;
use super::{ElevenLabsConfig, OutputFormat, VENDOR, invalid_key};
use crate::cloud::handshake_error;
use crate::supervisor::{Permit, Supervisor};
use crate::{ProviderError, Secret, TaskScope, TextToSpeech};

/// Chunks buffered between a sentence's task and the engine.
const CHANNEL_CAPACITY: usize = 32;

/// How long a socket being let go may take to send its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// An open, initialised `stream-input` socket and the vendor slot it
/// holds.
pub(super) struct Connection {
    pub(super) socket: Socket,
    permit: Permit,
    pub(super) opened_at: Instant,
}

impl Connection {
    /// Closes the socket in the background, in `scope`, and frees its
    /// slot. Should the scope end first, the socket is dropped unclosed,
    /// which stops the vendor just as well.
    pub(super) fn retire(self, scope: &TaskScope) {
        let Connection {
            mut socket, permit, ..
        } = self;
        scope.spawn(async move {
            let _ = tokio::time::timeout(CLOSE_GRACE, socket.close(None)).await;
            drop(permit);
        });
    }
}

/// Opens sockets: connect with the key, then the initialising message.
#[derive(Debug)]
pub(super) struct Dialer {
    url: String,
    api_key: Secret,
    init: String,
    supervisor: Supervisor,
}

impl Dialer {
    /// A connected, initialised socket, retried as the supervisor allows.
    pub(super) async fn open(&self) -> Result<Connection, ProviderError> {
        let (socket, permit) = self.supervisor.run(|_| self.attempt()).await?;
        Ok(Connection {
            socket,
            permit,
            opened_at: Instant::now(),
        })
    }

    async fn attempt(&self) -> Result<Socket, ProviderError> {
        let mut request =
            self.url
                .as_str()
                .into_client_request()
                .map_err(|e| ProviderError::Load {
                    what: format!("the ElevenLabs URL {}", self.url),
                    reason: e.to_string(),
                })?;
        let mut key = HeaderValue::from_str(self.api_key.expose()).map_err(|_| invalid_key())?;
        key.set_sensitive(true);
        request.headers_mut().insert("xi-api-key", key);
        // Small messages go out at once: every one of them is latency.
        let (mut socket, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .map_err(|e| handshake_error(VENDOR, e))?;
        socket
            .send(Message::text(self.init.as_str()))
            .await
            .map_err(|e| unavailable(format!("sending the first message failed: {e}")))?;
        Ok(socket)
    }
}

fn unavailable(reason: String) -> ProviderError {
    ProviderError::Unavailable {
        provider: VENDOR,
        reason,
    }
}

/// What every sentence's task shares.
#[derive(Debug)]
struct Speaker {
    dialer: Arc<Dialer>,
    format: OutputFormat,
    response_timeout: Duration,
    spares: Option<Spares>,
}

/// ElevenLabs text to speech: one `stream-input` socket per sentence, with
/// a spare kept ready (see the [module docs](super)).
pub struct ElevenLabsTts {
    speaker: Arc<Speaker>,
    voice: String,
    model_id: String,
}

impl fmt::Debug for ElevenLabsTts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElevenLabsTts")
            .field("voice", &self.voice)
            .field("model_id", &self.model_id)
            .field("format", &self.speaker.format)
            .field("prewarm", &self.speaker.spares.is_some())
            .finish_non_exhaustive()
    }
}

impl ElevenLabsTts {
    /// A client for `config`, opening its sockets under `supervisor` (the
    /// one for [`VENDOR`], shared with anything else that calls it). With
    /// `config.prewarm`, the spare socket is kept by a task in `scope`,
    /// which serves every call: the server's, so that it ends when the
    /// server stops.
    ///
    /// # Panics
    /// With `config.prewarm`, outside a tokio runtime: the spare is kept
    /// by a task started here.
    pub fn new(config: ElevenLabsConfig, supervisor: Supervisor, scope: &TaskScope) -> Self {
        let dialer = Arc::new(Dialer {
            url: config.stream_url(),
            api_key: config.api_key,
            init: init_message(&config.voice_settings, &config.chunk_length_schedule),
            supervisor,
        });
        let spares = config
            .prewarm
            .then(|| Spares::start(Arc::clone(&dialer), config.spare_max_idle, scope));
        Self {
            speaker: Arc::new(Speaker {
                dialer,
                format: config.output_format,
                response_timeout: config.response_timeout,
                spares,
            }),
            voice: config.voice_id.to_string(),
            model_id: config.model_id,
        }
    }
}

impl TextToSpeech for ElevenLabsTts {
    fn sample_rate(&self) -> u32 {
        self.speaker.format.sample_rate()
    }

    /// Must be called inside a tokio runtime; otherwise the channel carries
    /// one error.
    fn synthesize(
        &self,
        text: String,
        scope: &TaskScope,
    ) -> mpsc::Receiver<Result<Vec<i16>, ProviderError>> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        match tokio::runtime::Handle::try_current() {
            Ok(_) => {
                // It ends with the sentence, as soon as the receiver is
                // dropped, or with the scope.
                let speaker = Arc::clone(&self.speaker);
                scope.spawn(speaker.speak(text, tx, scope.clone()));
            }
            Err(_) => {
                // The channel is empty, so there is room for this one.
                let _ = tx.try_send(Err(ProviderError::Inference {
                    provider: VENDOR,
                    reason: "synthesize was called outside a tokio runtime".to_owned(),
                }));
            }
        }
        rx
    }
}

type Chunks = mpsc::Sender<Result<Vec<i16>, ProviderError>>;

impl Speaker {
    /// Says `text`; the sockets it lets go close in `scope`.
    async fn speak(self: Arc<Self>, text: String, tx: Chunks, scope: TaskScope) {
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let spare = match &self.spares {
            Some(spares) => tokio::select! {
                spare = spares.take() => spare,
                () = tx.closed() => return,
            },
            None => None,
        };
        let outcome = match spare {
            Some(connection) => match self.say(connection, text, &tx, &scope).await {
                Err(stop) if stop.stale => {
                    tracing::debug!(error = %stop.error, "the spare socket had gone; connecting afresh");
                    self.say_fresh(text, &tx, &scope).await
                }
                other => other.map_err(|stop| self.count(stop.error)),
            },
            None => self.say_fresh(text, &tx, &scope).await,
        };
        if let Err(error) = outcome {
            let _ = tx.send(Err(error)).await;
        }
    }

    async fn say_fresh(
        &self,
        text: &str,
        tx: &Chunks,
        scope: &TaskScope,
    ) -> Result<(), ProviderError> {
        // Failures to connect are counted by the supervisor itself.
        let connection = tokio::select! {
            connection = self.dialer.open() => connection?,
            () = tx.closed() => return Ok(()),
        };
        self.say(connection, text, tx, scope)
            .await
            .map_err(|stop| self.count(stop.error))
    }

    /// Counts a failure of the vendor's against it, as the supervisor does
    /// for connects.
    fn count(&self, error: ProviderError) -> ProviderError {
        if matches!(
            error,
            ProviderError::Unavailable { .. } | ProviderError::Protocol { .. }
        ) {
            self.dialer.supervisor.record_failure();
        }
        error
    }

    /// Says `text` on `connection`, passing the audio to `tx`, then lets
    /// the socket go: one sentence per socket.
    async fn say(
        &self,
        mut connection: Connection,
        text: &str,
        tx: &Chunks,
        scope: &TaskScope,
    ) -> Result<(), Stop> {
        let outcome = self.converse(&mut connection.socket, text, tx).await;
        connection.retire(scope);
        outcome
    }

    /// Returns when the sentence is complete or `tx`'s receiver is gone (a
    /// barge-in: closing the socket then stops the generation).
    async fn converse(&self, socket: &mut Socket, text: &str, tx: &Chunks) -> Result<(), Stop> {
        let mut reply = Reply::new(self.format);
        let sent = async {
            socket.feed(Message::text(sentence_message(text))).await?;
            socket.feed(Message::text(END_OF_INPUT)).await?;
            socket.flush().await
        }
        .await;
        if let Err(e) = sent {
            return Err(reply.on_lost(&e.to_string()));
        }
        loop {
            let frame = tokio::select! {
                biased;
                () = tx.closed() => return Ok(()),
                frame = tokio::time::timeout(self.response_timeout, socket.next()) => frame,
            };
            let heard = match frame {
                Err(_) => Err(Stop {
                    error: unavailable(format!("no answer within {:?}", self.response_timeout)),
                    stale: false,
                }),
                Ok(None) => Err(reply.on_lost("the connection ended")),
                Ok(Some(Err(e))) => Err(reply.on_lost(&e.to_string())),
                Ok(Some(Ok(Message::Text(text)))) => reply.on_text(text.as_str()),
                Ok(Some(Ok(Message::Binary(_)))) => Err(reply.on_binary()),
                Ok(Some(Ok(Message::Close(frame)))) => reply.on_close(
                    frame
                        .as_ref()
                        .map(|f| (u16::from(f.code), f.reason.as_str())),
                ),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)))) => continue,
            }?;
            if !heard.samples.is_empty() && tx.send(Ok(heard.samples)).await.is_err() {
                return Ok(());
            }
            if heard.done {
                self.dialer.supervisor.record_success();
                return Ok(());
            }
        }
    }
}
