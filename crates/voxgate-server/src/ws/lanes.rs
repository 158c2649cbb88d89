//! Two outbound lanes per connection. Control (pong, errors, pings, clear,
//! close) never waits behind bulk (events, media): the writer always drains
//! control first, and both queues are bounded. A full bulk lane drops and
//! counts; a monitor is told with `lagged` as soon as there is room again.
//!
//! Call audio goes on the bulk lane tagged with a playback generation; a
//! `clear` on the control lane starts a new generation, and the writer drops
//! audio of older generations still queued, so nothing queued before a
//! barge-in is played after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Sink, SinkExt};
use metrics::counter;
use tokio::sync::mpsc;
use voxgate_core::events::ServerMessage;

use crate::metrics::{EVENTS_DROPPED, Endpoint};

/// Control messages queued before a connection counts as stalled.
const CONTROL_QUEUE: usize = 32;

/// The peer has stopped reading even control messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer is not reading")]
pub struct Stalled;

/// What the bulk lane carries.
#[derive(Debug)]
enum Bulk {
    /// Monitor events and other traffic that may be dropped.
    Message(Message),
    /// Call audio or its marks, of one playback generation.
    Playback { generation: u64, message: Message },
}

/// The call's audio could not be queued: the peer is not reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the playback queue is full")]
pub struct PlaybackFull;

/// The sending half of a connection's two lanes.
#[derive(Debug)]
pub struct Outbound {
    control: mpsc::Sender<Message>,
    bulk: mpsc::Sender<Bulk>,
    generation: Arc<AtomicU64>,
    missed: u64,
    endpoint: Endpoint,
}

impl Outbound {
    /// Queues a control message ahead of all bulk traffic.
    pub fn control(&self, message: Message) -> Result<(), Stalled> {
        self.control.try_send(message).map_err(|_| Stalled)
    }

    /// Queues a JSON message on the control lane.
    pub fn control_json(&self, message: &ServerMessage) -> Result<(), Stalled> {
        self.control(Message::Text(message.to_json().into()))
    }

    /// Queues bulk traffic; if the lane is full the message is dropped and
    /// counted, never waited for.
    pub fn bulk(&mut self, message: Message) {
        if self.missed > 0 {
            let notice = ServerMessage::Lagged {
                missed: self.missed,
            };
            if self
                .bulk
                .try_send(Bulk::Message(Message::Text(notice.to_json().into())))
                .is_err()
            {
                self.lost(1);
                return;
            }
            self.missed = 0;
        }
        if self.bulk.try_send(Bulk::Message(message)).is_err() {
            self.lost(1);
        }
    }

    /// Queues call audio or a playback mark, in order, behind earlier audio.
    pub fn playback(&self, message: Message) -> Result<(), PlaybackFull> {
        let generation = self.generation.load(Ordering::Acquire);
        self.bulk
            .try_send(Bulk::Playback {
                generation,
                message,
            })
            .map_err(|_| PlaybackFull)
    }

    /// Sends `clear` ahead of everything and drops the audio still queued.
    pub fn clear_playback(&self, clear: Message) -> Result<(), Stalled> {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.control(clear)
    }

    /// Records `n` messages this client will never get (also used when the
    /// event bus itself reports a lag).
    pub fn lost(&mut self, n: u64) {
        self.missed += n;
        counter!(EVENTS_DROPPED, "endpoint" => self.endpoint.as_str()).increment(n);
    }

    /// Queues the close frame behind what is already queued, so a final
    /// status message reaches the peer before the close; if the bulk lane is
    /// full the close jumps the queue.
    pub fn close(self, code: u16, reason: &'static str) {
        let frame = Message::Close(Some(axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        }));
        if let Err(mpsc::error::TrySendError::Full(Bulk::Message(frame))) =
            self.bulk.try_send(Bulk::Message(frame))
        {
            let _ = self.control.try_send(frame);
        }
    }
}

/// Creates the lanes and the future that writes them to `sink`. Each write
/// is bounded by `write_timeout`, so a peer that stops reading cannot keep
/// the writer alive. The future ends after a close frame, on a write error,
/// or once both lanes are closed and drained.
pub(super) fn lanes<Si>(
    mut sink: Si,
    endpoint: Endpoint,
    bulk_capacity: usize,
    write_timeout: Duration,
) -> (Outbound, impl Future<Output = ()> + Send + 'static)
where
    Si: Sink<Message, Error = axum::Error> + Send + Unpin + 'static,
{
    let (control_tx, mut control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (bulk_tx, mut bulk_rx) = mpsc::channel(bulk_capacity.max(1));
    let generation = Arc::new(AtomicU64::new(0));
    let current = Arc::clone(&generation);
    let writer = async move {
        loop {
            let message = tokio::select! {
                biased;
                Some(m) = control_rx.recv() => m,
                Some(bulk) = bulk_rx.recv() => match bulk {
                    Bulk::Message(m) => m,
                    Bulk::Playback { generation, message } => {
                        if generation < current.load(Ordering::Acquire) {
                            continue;
                        }
                        message
                    }
                },
                else => break,
            };
            let closing = matches!(message, Message::Close(_));
            match tokio::time::timeout(write_timeout, sink.send(message)).await {
                Ok(Ok(())) if !closing => {}
                _ => break,
            }
        }
        let _ = tokio::time::timeout(write_timeout, sink.close()).await;
    };
    let outbound = Outbound {
        control: control_tx,
        bulk: bulk_tx,
        generation,
        missed: 0,
        endpoint,
    };
    (outbound, writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: &Message) -> String {
        match message {
            Message::Text(t) => t.as_str().to_owned(),
            other => format!("{other:?}"),
        }
    }

    /// A sink backed by a bounded channel: the test decides when the peer reads.
    fn channel_sink(
        capacity: usize,
    ) -> (
        impl Sink<Message, Error = axum::Error> + Send + Unpin + 'static,
        mpsc::Receiver<Message>,
    ) {
        let (tx, rx) = mpsc::channel(capacity);
        let sink = tokio_util::sync::PollSender::new(tx).sink_map_err(axum::Error::new);
        (sink, rx)
    }

    #[tokio::test(start_paused = true)]
    async fn control_overtakes_queued_bulk() {
        let (sink, mut peer) = channel_sink(1);
        let (mut out, writer) = lanes(sink, Endpoint::Events, 8, Duration::from_secs(5));
        for i in 0..4 {
            out.bulk(Message::Text(format!("event {i}").into()));
        }
        out.control_json(&ServerMessage::Pong).expect("room");
        drop(out);
        let writer = tokio::spawn(writer);
        let mut seen = Vec::new();
        while let Some(m) = peer.recv().await {
            seen.push(text(&m));
        }
        writer.await.expect("writer");
        // The writer had already taken "event 0" when the pong arrived, so the
        // pong is second at worst; it never waits behind the rest.
        let pong = seen
            .iter()
            .position(|m| m.contains("pong"))
            .expect("pong sent");
        assert!(pong <= 1, "{seen:?}");
        assert_eq!(seen.len(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bulk_lane_drops_and_reports_lagged() {
        let (sink, mut peer) = channel_sink(1);
        let (mut out, writer) = lanes(sink, Endpoint::Events, 2, Duration::from_secs(60));
        // Nothing is written yet: the writer is not running.
        for i in 0..10 {
            out.bulk(Message::Text(format!("event {i}").into()));
        }
        let writer = tokio::spawn(writer);
        assert_eq!(text(&peer.recv().await.expect("first")), "event 0");
        assert_eq!(text(&peer.recv().await.expect("second")), "event 1");
        out.bulk(Message::Text("event 10".into()));
        let lagged = text(&peer.recv().await.expect("lagged"));
        assert_eq!(lagged, r#"{"type":"lagged","missed":8}"#);
        assert_eq!(text(&peer.recv().await.expect("after")), "event 10");
        drop(out);
        writer.await.expect("writer");
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_never_reads_cannot_hold_the_writer() {
        let (sink, _peer) = channel_sink(1);
        let (out, writer) = lanes(sink, Endpoint::Events, 2, Duration::from_secs(1));
        for _ in 0..3 {
            out.control_json(&ServerMessage::Pong).expect("room");
        }
        let writer = tokio::spawn(writer);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(writer.is_finished());
        drop(out);
    }

    #[tokio::test]
    async fn clear_drops_the_audio_queued_before_it() {
        let (sink, mut peer) = channel_sink(16);
        let (out, writer) = lanes(sink, Endpoint::Stream, 8, Duration::from_secs(5));
        out.playback(Message::Text("audio 1".into())).expect("room");
        out.playback(Message::Text("mark 1".into())).expect("room");
        out.clear_playback(Message::Text("clear".into()))
            .expect("room");
        out.playback(Message::Text("audio 2".into())).expect("room");
        drop(out);
        writer.await;
        let mut seen = Vec::new();
        while let Some(m) = peer.recv().await {
            seen.push(text(&m));
        }
        assert_eq!(seen, ["clear", "audio 2"]);
    }

    #[tokio::test]
    async fn close_follows_what_is_queued() {
        let (sink, mut peer) = channel_sink(16);
        let (mut out, writer) = lanes(sink, Endpoint::Events, 8, Duration::from_secs(5));
        out.bulk(Message::Text("last event".into()));
        out.close(1000, "bye");
        writer.await;
        assert_eq!(text(&peer.recv().await.expect("event")), "last event");
        assert!(matches!(peer.recv().await, Some(Message::Close(Some(f))) if f.code == 1000));
        assert!(peer.recv().await.is_none(), "nothing after the close");
    }
}
