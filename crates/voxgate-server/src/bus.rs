//! Call events fanned out to monitors. Publishing never waits: a monitor
//! that falls behind loses the oldest events and is told how many.

use std::sync::Arc;

use tokio::sync::broadcast;
use voxgate_core::events::CallEvent;

/// An event, serialized once for every monitor that receives it.
#[derive(Debug)]
pub struct PublishedEvent {
    /// The event.
    pub event: CallEvent,
    /// Its JSON text frame.
    pub json: String,
}

/// The in-process event bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    tx: broadcast::Sender<Arc<PublishedEvent>>,
}

impl EventBus {
    /// A bus that keeps `capacity` events for slow receivers.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity.max(1));
        Self { tx }
    }

    /// Publishes an event; returns at once whoever is listening.
    pub fn publish(&self, event: CallEvent) {
        let json = event.to_json();
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(Arc::new(PublishedEvent { event, json }));
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<PublishedEvent>> {
        self.tx.subscribe()
    }
}
