//! Where providers' background tasks run.

use std::future::Future;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A tracker to spawn on and a token that ends what is spawned.
///
/// A call's provider work gets the call's scope (the server's tracker, the
/// call's token), so the end of the call stops it and a draining server
/// waits for it; work that outlives calls, such as ElevenLabs' spare
/// socket, gets the server's scope when the provider is built. Nothing a
/// provider spawns is detached.
#[derive(Debug, Clone)]
pub struct TaskScope {
    tracker: TaskTracker,
    token: CancellationToken,
}

impl TaskScope {
    /// Tasks go on `tracker` and end when `token` is cancelled.
    pub fn new(tracker: TaskTracker, token: CancellationToken) -> Self {
        Self { tracker, token }
    }

    /// The tracker, for a task that must finish something after the token
    /// is cancelled (a bounded close handshake) and so watches it itself.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// Cancelled when the scope's work must stop.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Runs `task` on the tracker until it completes or the token is
    /// cancelled; then it is dropped wherever it was waiting.
    ///
    /// # Panics
    /// Outside a tokio runtime, as [`tokio::spawn`] does.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let token = self.token.clone();
        drop(self.tracker.spawn(async move {
            tokio::select! {
                biased;
                () = token.cancelled() => {}
                () = task => {}
            }
        }));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_cancelled_scope_ends_its_tasks_and_the_tracker_sees_it() {
        let scope = TaskScope::new(TaskTracker::new(), CancellationToken::new());
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        scope.spawn(async move {
            // Holds the sender until dropped: waits for ever otherwise.
            let _tx = tx;
            std::future::pending::<()>().await;
        });
        assert_eq!(scope.tracker().len(), 1);
        scope.token().cancel();
        scope.tracker().close();
        tokio::time::timeout(Duration::from_secs(1), scope.tracker().wait())
            .await
            .expect("the task ends with the token");
        assert_eq!(rx.recv().await, None, "the task was dropped");
    }
}
