//! Live calls by id. Each entry is a handle to the task that owns the call;
//! the call's state lives in that task, never here.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{mpsc, watch};
use voxgate_core::events::JobConfig;
use voxgate_core::ids::CallSid;

/// A request to a live call's task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallCommand {
    /// End the call.
    Hangup,
    /// End the call: an admin reset every call.
    Reset,
    /// Merge new job configuration into the call's.
    Config(JobConfig),
}

/// How other tasks reach a live call: a bounded control queue.
#[derive(Debug, Clone)]
pub struct CallHandle {
    commands: mpsc::Sender<CallCommand>,
}

/// The call's task is gone or not keeping up with commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the call is not accepting commands")]
pub struct CallUnreachable;

impl CallHandle {
    /// Queues a command without waiting: control never blocks the sender.
    pub fn send(&self, command: CallCommand) -> Result<(), CallUnreachable> {
        self.commands.try_send(command).map_err(|_| CallUnreachable)
    }
}

/// Commands queued per call before the sender is told the call is unreachable.
const COMMAND_QUEUE: usize = 16;

/// Live calls by id.
#[derive(Debug, Clone)]
pub struct CallRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    calls: Mutex<HashMap<CallSid, CallHandle>>,
    count: watch::Sender<usize>,
    ended: Mutex<RecentlyEnded>,
}

/// Ids of the calls that ended last, oldest first: a call's record may
/// still be on its way to the store when a replay of its id arrives.
#[derive(Debug, Default)]
struct RecentlyEnded {
    order: VecDeque<CallSid>,
    ids: HashSet<CallSid>,
}

/// How many ended call ids the registry remembers.
const RECENTLY_ENDED: usize = 4096;

impl RecentlyEnded {
    fn insert(&mut self, id: CallSid) {
        if !self.ids.insert(id.clone()) {
            return;
        }
        self.order.push_back(id);
        if self.order.len() > RECENTLY_ENDED
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
    }
}

/// A call with this id is already live.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("call {0} is already live on this server")]
pub struct DuplicateCall(pub CallSid);

impl Default for CallRegistry {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                calls: Mutex::new(HashMap::new()),
                count: watch::Sender::new(0),
                ended: Mutex::default(),
            }),
        }
    }
}

impl CallRegistry {
    fn calls(&self) -> MutexGuard<'_, HashMap<CallSid, CallHandle>> {
        // A panic while holding this lock leaves the map consistent (every
        // operation is a single insert/remove), so poisoning is ignored.
        self.inner
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn ended(&self) -> MutexGuard<'_, RecentlyEnded> {
        // One insert (and maybe one eviction) at a time: a poisoned set is
        // still consistent.
        self.inner
            .ended
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers a call; the returned registration removes it when dropped.
    pub fn register(
        &self,
        call_id: CallSid,
    ) -> Result<(Registration, mpsc::Receiver<CallCommand>), DuplicateCall> {
        let mut calls = self.calls();
        if calls.contains_key(&call_id) {
            return Err(DuplicateCall(call_id));
        }
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        calls.insert(call_id.clone(), CallHandle { commands: tx });
        self.inner.count.send_replace(calls.len());
        Ok((
            Registration {
                registry: self.clone(),
                call_id,
            },
            rx,
        ))
    }

    /// The handle of a live call.
    pub fn get(&self, call_id: &CallSid) -> Option<CallHandle> {
        self.calls().get(call_id).cloned()
    }

    /// Sends `command` to every live call; returns how many took it.
    pub fn broadcast(&self, command: &CallCommand) -> usize {
        let handles: Vec<CallHandle> = self.calls().values().cloned().collect();
        handles
            .iter()
            .filter(|handle| handle.send(command.clone()).is_ok())
            .count()
    }

    /// Whether a call with this id ended on this server recently.
    pub fn recently_ended(&self, call_id: &CallSid) -> bool {
        self.ended().ids.contains(call_id)
    }

    /// How many calls are live.
    pub fn len(&self) -> usize {
        self.calls().len()
    }

    /// Whether no call is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once no call is live.
    pub async fn wait_empty(&self) {
        let mut rx = self.inner.count.subscribe();
        // The sender lives in `inner`, which `self` keeps alive.
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// A call's place in the registry; dropping it removes the call.
#[derive(Debug)]
pub struct Registration {
    registry: CallRegistry,
    call_id: CallSid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.ended().insert(self.call_id.clone());
        let mut calls = self.registry.calls();
        calls.remove(&self.call_id);
        self.registry.inner.count.send_replace(calls.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn registration_is_unique_and_released_on_drop() {
        let registry = CallRegistry::default();
        let id = CallSid::new("CA1").expect("id");
        let (reg, mut rx) = registry.register(id.clone()).expect("first");
        assert_eq!(
            registry.register(id.clone()).err(),
            Some(DuplicateCall(id.clone()))
        );
        registry
            .get(&id)
            .expect("live")
            .send(CallCommand::Hangup)
            .expect("queued");
        assert_eq!(rx.recv().await, Some(CallCommand::Hangup));
        assert!(!registry.recently_ended(&id));
        drop(reg);
        assert!(registry.recently_ended(&id));
        assert!(registry.is_empty());
        assert!(registry.get(&id).is_none());
        registry.wait_empty().await;
    }

    #[tokio::test]
    async fn a_call_that_stops_reading_is_unreachable_not_blocking() {
        let registry = CallRegistry::default();
        let id = CallSid::new("CA2").expect("id");
        let (_reg, _rx) = registry.register(id.clone()).expect("first");
        let handle = registry.get(&id).expect("live");
        for _ in 0..COMMAND_QUEUE {
            handle.send(CallCommand::Hangup).expect("room");
        }
        assert_eq!(handle.send(CallCommand::Hangup), Err(CallUnreachable));
    }
}
