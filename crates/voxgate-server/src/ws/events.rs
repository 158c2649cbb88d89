//! `/events`: monitors and front ends. Live call events filtered by
//! subscription, job configuration for live or upcoming calls, hang-up, and
//! session resumption across reconnects.

use std::sync::Arc;

use axum::extract::ws::Message;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use voxgate_core::engine::ChatMessage;
use voxgate_core::events::{
    CallEvent, ErrorCode, JobConfig, MonitorRequest, ProtocolError, ServerMessage,
};
use voxgate_core::ids::{CallSid, SessionId};
use voxgate_providers::TaskScope;

use super::{Connection, Frame, ReadEnd, WsSocket, close_code, new_session_id};
use crate::agent::{AgentState, CHAT_HISTORY, ChatAnswer, chat_turn};
use crate::app::AppState;
use crate::bus::PublishedEvent;
use crate::metrics::Endpoint;
use crate::registry::CallCommand;
use crate::sessions::SessionState;

/// One monitor connection's session.
struct Monitor {
    state: AppState,
    session_id: SessionId,
    session: SessionState,
    /// The text conversation with the agent on this connection.
    chat_history: Vec<ChatMessage>,
    /// Answers of chat turns in progress come back here.
    chats: mpsc::Sender<ChatDone>,
    /// Cancelled with the connection: chat turns in progress stop.
    token: CancellationToken,
}

/// A finished chat turn.
struct ChatDone {
    id: Option<String>,
    answer: Result<ChatAnswer, String>,
}

/// Chat turns one connection may have in progress.
const CHATS_IN_FLIGHT: usize = 4;

/// Serves one monitor connection until it closes or the server stops.
/// `slot` is the connection's place under the `/events` connection cap.
pub async fn run<S: WsSocket>(socket: S, state: AppState, slot: OwnedSemaphorePermit) {
    let session_id = new_session_id();
    let span = tracing::info_span!("monitor", session_id = %session_id);
    serve(socket, state, session_id).instrument(span).await;
    drop(slot);
}

async fn serve<S: WsSocket>(socket: S, state: AppState, session_id: SessionId) {
    let mut conn = Connection::open(socket, &state, Endpoint::Events);
    let mut bus = state.bus.subscribe();
    let token = state.lifecycle.root.child_token();
    let (chats, mut chat_answers) = mpsc::channel(CHATS_IN_FLIGHT);
    let mut monitor = Monitor {
        state: state.clone(),
        session_id,
        session: SessionState::default(),
        chat_history: Vec::new(),
        chats,
        token: token.clone(),
    };
    let mut ended = conn.greet(monitor.session_id.clone());

    while ended.is_none() {
        let deadline = conn.deadline();
        tokio::select! {
            biased;
            () = token.cancelled() => {
                park(&monitor);
                conn.close(close_code::GOING_AWAY, "server shutting down", "shutdown").await;
                return;
            }
            item = futures_util::StreamExt::next(&mut conn.stream) => {
                ended = match conn.classify(item) {
                    Frame::Text(text) => monitor.handle_text(&mut conn, &text),
                    Frame::Binary(_) => {
                        let e = ProtocolError::new(
                            ErrorCode::BinaryNotSupported,
                            "/events takes JSON text frames only",
                        );
                        conn.refuse(&e)
                    }
                    Frame::Nothing => None,
                    Frame::Ended(end) => Some(end),
                };
            }
            Some(done) = chat_answers.recv() => ended = monitor.chat_answered(&conn, done),
            received = bus.recv() => match received {
                Ok(event) => monitor.forward(&mut conn, &event),
                Err(RecvError::Lagged(n)) => conn.out.lost(n),
                Err(RecvError::Closed) => ended = Some(ReadEnd::PeerGone),
            },
            () = sleep_until(deadline) => ended = conn.tick(),
        }
    }
    token.cancel();
    park(&monitor);
    if let Some(end) = ended {
        tracing::debug!(reason = end.as_str(), "monitor connection ended");
        conn.finish(end).await;
    }
}

fn park(monitor: &Monitor) {
    monitor.state.sessions.park(
        monitor.session_id.clone(),
        monitor.session.clone(),
        Instant::now().into_std(),
    );
}

impl Monitor {
    fn handle_text<S: WsSocket>(
        &mut self,
        conn: &mut Connection<S>,
        text: &str,
    ) -> Option<ReadEnd> {
        match MonitorRequest::parse(text) {
            Ok(request) => self.handle(conn, request),
            Err(e) => conn.refuse(&e),
        }
    }

    fn handle<S: WsSocket>(
        &mut self,
        conn: &mut Connection<S>,
        request: MonitorRequest,
    ) -> Option<ReadEnd> {
        let answer = match request {
            MonitorRequest::Ping => ServerMessage::Pong,
            MonitorRequest::SessionInfo { session_id } => self.resume(session_id),
            MonitorRequest::Subscribe { call_id } => {
                let limit = self.state.config.limits.events_subscriptions;
                let known = self.session.subscriptions.contains(&call_id);
                if !known && self.session.subscriptions.len() >= limit {
                    let e = ProtocolError::new(
                        ErrorCode::LimitReached,
                        format!("at most {limit} subscriptions per connection"),
                    );
                    return conn.refuse(&e);
                }
                if !known {
                    self.session.subscriptions.push(call_id.clone());
                }
                ServerMessage::Subscribed { call_id }
            }
            MonitorRequest::Unsubscribe { call_id } => {
                self.session.subscriptions.retain(|f| *f != call_id);
                ServerMessage::Unsubscribed { call_id }
            }
            MonitorRequest::Config {
                call_id: Some(call_id),
                config,
            } => match self.command(&call_id, CallCommand::Config(config)) {
                Ok(()) => ServerMessage::ConfigApplied { call_id },
                Err(e) => return conn.refuse(&e),
            },
            MonitorRequest::Config {
                call_id: None,
                config,
            } => {
                let held = self
                    .session
                    .held_config
                    .get_or_insert_with(JobConfig::default);
                held.merge(config);
                ServerMessage::ConfigHeld {
                    config: held.clone(),
                }
            }
            MonitorRequest::Hangup { call_id } => match self.command(&call_id, CallCommand::Hangup)
            {
                Ok(()) => return None,
                Err(e) => return conn.refuse(&e),
            },
            MonitorRequest::Chat { text, persona, id } => {
                return match self.start_chat(text, persona, id) {
                    Ok(()) => None,
                    Err(e) => conn.refuse(&e),
                };
            }
            _ => {
                let e =
                    ProtocolError::new(ErrorCode::UnknownType, "request not handled on /events");
                return conn.refuse(&e);
            }
        };
        conn.send(&answer)
    }

    /// Starts a text turn; its answer arrives through `chats`.
    fn start_chat(
        &self,
        text: String,
        persona: Option<String>,
        id: Option<String>,
    ) -> Result<(), ProtocolError> {
        let AgentState::Ready(providers) = self.state.agent.borrow().clone() else {
            return Err(ProtocolError::new(
                ErrorCode::AgentUnavailable,
                "the agent is not loaded on this server",
            ));
        };
        let Ok(slot) = self.chats.clone().try_reserve_owned() else {
            return Err(ProtocolError::new(
                ErrorCode::InvalidField,
                format!("at most {CHATS_IN_FLIGHT} chat turns at a time"),
            ));
        };
        let mut job = self.session.held_config.clone().unwrap_or_default();
        if persona.is_some() {
            job.persona = persona;
        }
        let history = self.chat_history.clone();
        let store = self.state.store.clone();
        // The session's scope: the turn, and the model's work for it, end
        // with the session.
        let scope = TaskScope::new(self.state.lifecycle.tracker.clone(), self.token.clone());
        let turn_scope = scope.clone();
        scope.spawn(
            async move {
                let answer = chat_turn(&providers, &store, &job, history, text, &turn_scope).await;
                slot.send(ChatDone {
                    id,
                    answer: answer.map_err(|e| e.to_string()),
                });
            }
            .in_current_span(),
        );
        Ok(())
    }

    fn chat_answered<S: WsSocket>(
        &mut self,
        conn: &Connection<S>,
        done: ChatDone,
    ) -> Option<ReadEnd> {
        match done.answer {
            Ok(answer) => {
                let text = answer.exchange[1].content.clone();
                self.chat_history.extend(answer.exchange);
                let excess = self.chat_history.len().saturating_sub(CHAT_HISTORY);
                self.chat_history.drain(..excess);
                conn.send(&ServerMessage::ChatResponse {
                    id: done.id,
                    persona: answer.persona,
                    text,
                })
            }
            Err(reason) => {
                tracing::warn!(error = reason, "chat turn failed");
                conn.refuse(&ProtocolError::new(ErrorCode::AgentFailed, reason))
            }
        }
    }

    fn resume(&mut self, wanted: Option<SessionId>) -> ServerMessage {
        let now = Instant::now().into_std();
        let restored = wanted
            .filter(|id| *id != self.session_id)
            .and_then(|id| self.state.sessions.resume(&id, now).map(|s| (id, s)));
        let resumed = restored.is_some();
        if let Some((id, parked)) = restored {
            self.session_id = id;
            for filter in parked.subscriptions {
                if !self.session.subscriptions.contains(&filter) {
                    self.session.subscriptions.push(filter);
                }
            }
            if let Some(parked_config) = parked.held_config {
                let mut held = parked_config;
                if let Some(newer) = self.session.held_config.take() {
                    held.merge(newer);
                }
                self.session.held_config = Some(held);
            }
        }
        ServerMessage::SessionConfirmed {
            session_id: self.session_id.clone(),
            resumed,
            subscriptions: self.session.subscriptions.clone(),
            held_config: self.session.held_config.clone(),
        }
    }

    fn command(&self, call_id: &CallSid, command: CallCommand) -> Result<(), ProtocolError> {
        self.state
            .registry
            .get(call_id)
            .ok_or(())
            .and_then(|handle| handle.send(command).map_err(|_| ()))
            .map_err(|()| {
                ProtocolError::new(
                    ErrorCode::CallNotFound,
                    format!("no live call {call_id} on this server"),
                )
            })
    }

    fn forward<S: WsSocket>(&mut self, conn: &mut Connection<S>, published: &Arc<PublishedEvent>) {
        let call_id = published.event.call_id();
        if !self
            .session
            .subscriptions
            .iter()
            .any(|f| f.matches(call_id))
        {
            return;
        }
        conn.out.bulk(Message::Text(published.json.clone().into()));
        if let CallEvent::Started { call_id, .. } = &published.event
            && let Some(config) = self.session.held_config.take()
        {
            let answer = match self.command(call_id, CallCommand::Config(config.clone())) {
                Ok(()) => ServerMessage::ConfigApplied {
                    call_id: call_id.clone(),
                },
                Err(e) => {
                    // The call ended already; keep the config for the next one.
                    self.session.held_config = Some(config);
                    e.to_message()
                }
            };
            conn.out.bulk(Message::Text(answer.to_json().into()));
        }
    }
}
