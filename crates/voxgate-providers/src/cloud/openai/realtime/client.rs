//! The socket: `{OPENAI_BASE_URL → ws(s)}/realtime?model=…` with a bearer
//! key, opened under the vendor's supervisor and split into a sending and
//! a receiving half, so a call can send audio while it waits for events.

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async_with_config};

use super::VENDOR;
use super::messages::{ClientEvent, Dialect, ServerEvent, parse_server_event};
use crate::ProviderError;
use crate::cloud::handshake_error;
use crate::cloud::openai::OpenAiConfig;
use crate::supervisor::{Permit, Supervisor};

/// The model asked for when none is configured.
pub const DEFAULT_MODEL: &str = "gpt-realtime";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where the Realtime API is and how to talk to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RealtimeConfig {
    /// Base URL and key.
    pub openai: OpenAiConfig,
    /// The model, sent as the `model` query parameter.
    pub model: String,
    /// Speak the beta API (`OpenAI-Beta: realtime=v1`, flat session
    /// fields), for preview models and servers that only know it.
    pub beta: bool,
}

impl RealtimeConfig {
    /// The GA API with the default model.
    pub fn new(openai: OpenAiConfig) -> Self {
        Self {
            openai,
            model: DEFAULT_MODEL.to_owned(),
            beta: false,
        }
    }

    /// Which shape of events the session speaks.
    pub fn dialect(&self) -> Dialect {
        if self.beta {
            Dialect::Beta
        } else {
            Dialect::Ga
        }
    }

    /// The WebSocket URL.
    pub fn url(&self) -> String {
        let model: String = url::form_urlencoded::byte_serialize(self.model.as_bytes()).collect();
        format!(
            "{}?model={model}",
            self.openai.base_url.websocket("/realtime")
        )
    }
}

/// Opens Realtime sessions; one per server, shared by every call.
#[derive(Debug, Clone)]
pub struct RealtimeClient {
    config: RealtimeConfig,
    supervisor: Supervisor,
}

/// An open session, split in two halves.
#[derive(Debug)]
pub struct RealtimeSession {
    /// Sends client events.
    pub sender: RealtimeSender,
    /// Receives server events.
    pub events: RealtimeEvents,
}

/// The sending half of a session.
#[derive(Debug)]
pub struct RealtimeSender {
    sink: SplitSink<Socket, Message>,
    dialect: Dialect,
}

/// The receiving half of a session; it holds the supervisor's slot, so
/// the slot is free again once the session is dropped.
#[derive(Debug)]
pub struct RealtimeEvents {
    stream: SplitStream<Socket>,
    supervisor: Supervisor,
    failed: bool,
    _permit: Permit,
}

fn unavailable(reason: String) -> ProviderError {
    ProviderError::Unavailable {
        provider: VENDOR,
        reason,
    }
}

impl RealtimeClient {
    /// A client for `config`, connecting under `supervisor` (the vendor's,
    /// named [`VENDOR`]).
    pub fn new(config: RealtimeConfig, supervisor: Supervisor) -> Self {
        Self { config, supervisor }
    }

    /// The client's settings.
    pub fn config(&self) -> &RealtimeConfig {
        &self.config
    }

    /// Opens a session, retrying as the supervisor allows.
    ///
    /// # Errors
    /// [`ProviderError::Rejected`] for a bad key (401) or request,
    /// [`ProviderError::RateLimited`] for 429, [`ProviderError::Unavailable`]
    /// when the server cannot be reached, fails, or the circuit is open.
    pub async fn connect(&self) -> Result<RealtimeSession, ProviderError> {
        let (socket, permit) = self.supervisor.run(|_| self.open()).await?;
        let (sink, stream) = socket.split();
        Ok(RealtimeSession {
            sender: RealtimeSender {
                sink,
                dialect: self.config.dialect(),
            },
            events: RealtimeEvents {
                stream,
                supervisor: self.supervisor.clone(),
                failed: false,
                _permit: permit,
            },
        })
    }

    async fn open(&self) -> Result<Socket, ProviderError> {
        let mut request =
            self.config
                .url()
                .into_client_request()
                .map_err(|e| ProviderError::Load {
                    what: "the OpenAI Realtime URL".to_owned(),
                    reason: e.to_string(),
                })?;
        let headers = request.headers_mut();
        if let Some(key) = &self.config.openai.api_key {
            let mut value =
                HeaderValue::from_str(&format!("Bearer {}", key.expose())).map_err(|_| {
                    ProviderError::Rejected {
                        provider: VENDOR,
                        status: 401,
                        reason: "the API key is not a valid header value".to_owned(),
                    }
                })?;
            value.set_sensitive(true);
            headers.insert("authorization", value);
        }
        if self.config.beta {
            headers.insert("openai-beta", HeaderValue::from_static("realtime=v1"));
        }
        match connect_async_with_config(request, None, true).await {
            Ok((socket, _)) => Ok(socket),
            Err(error) => Err(handshake_error(VENDOR, error)),
        }
    }
}

impl RealtimeSender {
    /// Sends one event.
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] once the socket is gone.
    pub async fn send(&mut self, event: &ClientEvent) -> Result<(), ProviderError> {
        self.sink
            .send(Message::text(event.to_json(self.dialect)))
            .await
            .map_err(|e| unavailable(format!("sending: {e}")))
    }

    /// Closes the socket politely (the call ended).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
    }
}

impl RealtimeEvents {
    /// The next server event.
    ///
    /// # Errors
    /// [`ProviderError::Protocol`] for a frame that is not a valid event
    /// (the session goes on); [`ProviderError::Unavailable`] once the socket
    /// closed or failed (counted against the vendor: a Realtime session
    /// only ends from the server's side when something went wrong).
    pub async fn next(&mut self) -> Result<ServerEvent, ProviderError> {
        loop {
            let reason = match self.stream.next().await {
                Some(Ok(Message::Text(text))) => return parse_server_event(text.as_str()),
                Some(Ok(Message::Binary(_))) => {
                    return Err(ProviderError::Protocol {
                        provider: VENDOR,
                        reason: "a binary frame".to_owned(),
                    });
                }
                Some(Ok(Message::Close(frame))) => match frame {
                    Some(frame) => format!(
                        "the server closed the socket ({} {})",
                        u16::from(frame.code),
                        frame.reason
                    ),
                    None => "the server closed the socket".to_owned(),
                },
                Some(Ok(_)) => continue,
                Some(Err(e)) => format!("the socket failed: {e}"),
                None => "the socket is closed".to_owned(),
            };
            if !self.failed {
                self.failed = true;
                self.supervisor.record_failure();
            }
            return Err(unavailable(reason));
        }
    }
}
