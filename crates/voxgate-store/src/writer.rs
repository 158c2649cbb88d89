//! [`RecordWriter`]: call records and transcript turns written off the
//! call path, held and retried while the database is down.

mod queue;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::record::CallRecord;
use crate::store::Store;
use crate::transcript::TranscriptTurn;
use queue::{Backoff, Item, Pending};

/// Gauge: records and transcript turns submitted but not yet written.
const PENDING_GAUGE: &str = "voxgate_store_pending_records";
/// Counter: failed write attempts (one item may fail many times).
const WRITE_ERRORS: &str = "voxgate_store_write_errors_total";

const INITIAL_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A hung statement counts as a failed write rather than stalling the queue.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Failures in a row that mean the database itself is down, not one bad
/// record: the round stops there instead of trying every record.
const FAILURES_MEANING_DOWN: u32 = 2;
/// Commands taken from the channel before a write round must run.
const COMMANDS_PER_WRITE_ROUND: u32 = 1024;

/// Why [`RecordWriter::flush`] returned before everything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The deadline passed, usually because the database is unreachable.
    /// The records are kept and still retried.
    #[error(
        "call records not flushed within {deadline:?}: {pending} record(s) still pending \
         (is the database reachable?)"
    )]
    Timeout {
        /// The deadline that passed.
        deadline: Duration,
        /// Records submitted but not yet written when it passed.
        pending: usize,
    },
    /// The writer task is gone (the runtime is shutting down, or it panicked).
    #[error("the call record writer has stopped")]
    WriterStopped,
}

enum Command {
    /// Boxed: records are large, and flushes should not pay for them.
    Write(Box<Item>),
    /// Answer once everything submitted before this command is written.
    Flush(oneshot::Sender<()>),
}

/// Handle to the task that writes call records and transcript turns;
/// cheap to clone.
///
/// The task ends once every handle is dropped, after one last attempt to
/// write what is left. Drop all handles before waiting on the tracker, or
/// the wait will not finish.
#[derive(Debug, Clone)]
pub struct RecordWriter {
    /// Unbounded on purpose: a bounded queue would have to either block the
    /// call path or drop records when full, and neither is allowed. Growth
    /// is bounded in practice by coalescing (one entry per call record or
    /// turn) and by the rate calls and turns happen; the gauge shows it.
    tx: mpsc::UnboundedSender<Command>,
    /// Submitted but not yet written or superseded, for the gauge and
    /// flush errors. Counted here rather than in the task so that records
    /// still in the channel are included.
    unwritten: Arc<AtomicUsize>,
}

impl RecordWriter {
    /// Spawns the writer task on `tracker` and returns its handle.
    ///
    /// Must be called inside a tokio runtime.
    pub fn spawn(store: Store, tracker: &TaskTracker) -> RecordWriter {
        let (tx, rx) = mpsc::unbounded_channel();
        let unwritten = Arc::new(AtomicUsize::new(0));
        let task = WriterTask {
            store,
            rx,
            pending: Pending::default(),
            unwritten: Arc::clone(&unwritten),
            flushes: Vec::new(),
            backoff: Backoff::new(INITIAL_BACKOFF, MAX_BACKOFF),
        };
        tracker.spawn(task.run().instrument(tracing::info_span!("record_writer")));
        RecordWriter { tx, unwritten }
    }

    /// Queues `record` for writing, replacing any unwritten record for the
    /// same call. Never blocks and never waits on the database.
    pub fn submit(&self, record: CallRecord) {
        self.send(Item::Call(record));
    }

    /// Queues `turn` for writing, replacing any unwritten turn with the same
    /// call and number. Never blocks and never waits on the database; turns
    /// are written in the order submitted, interleaved with records.
    pub fn submit_turn(&self, turn: TranscriptTurn) {
        self.send(Item::Turn(turn));
    }

    fn send(&self, item: Item) {
        self.unwritten.fetch_add(1, Ordering::Relaxed);
        if let Err(mpsc::error::SendError(command)) = self.tx.send(Command::Write(Box::new(item))) {
            self.unwritten.fetch_sub(1, Ordering::Relaxed);
            if let Command::Write(item) = command {
                tracing::error!(call_sid = %item.call_sid(), "record writer has stopped; {} lost", item.kind());
            }
        }
    }

    /// Waits until every record and turn submitted before this call is
    /// written, or `deadline` passes. They are kept either way.
    pub async fn flush(&self, deadline: Duration) -> Result<(), FlushError> {
        let (done_tx, done_rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(done_tx))
            .map_err(|_| FlushError::WriterStopped)?;
        match tokio::time::timeout(deadline, done_rx).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(FlushError::WriterStopped),
            Err(_elapsed) => Err(FlushError::Timeout {
                deadline,
                pending: self.pending(),
            }),
        }
    }

    /// Records and turns submitted but not yet written.
    pub fn pending(&self) -> usize {
        self.unwritten.load(Ordering::Relaxed)
    }
}

struct WriterTask {
    store: Store,
    rx: mpsc::UnboundedReceiver<Command>,
    pending: Pending,
    unwritten: Arc<AtomicUsize>,
    /// Flush waiters and the sequence number each waits for.
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    backoff: Backoff,
}

impl WriterTask {
    async fn run(mut self) {
        let mut retry_at: Option<Instant> = None;
        let mut handled_since_write = 0;
        loop {
            let can_write = !self.pending.is_empty() && retry_at.is_none();
            // Under a steady stream of submits the channel is never empty;
            // the cap makes sure writes still get their turn.
            let commands_first = !can_write || handled_since_write < COMMANDS_PER_WRITE_ROUND;
            let wake_at = retry_at.unwrap_or_else(Instant::now);
            tokio::select! {
                // Commands first: taking everything already queued before
                // writing lets a call's start and end records coalesce.
                biased;
                command = self.rx.recv(), if commands_first => match command {
                    Some(command) => {
                        self.handle(command);
                        handled_since_write += 1;
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(wake_at), if retry_at.is_some() => retry_at = None,
                () = std::future::ready(()), if can_write => {
                    handled_since_write = 0;
                    if self.write_round().await {
                        retry_at = Some(Instant::now() + self.backoff.next_delay());
                    } else {
                        self.backoff.reset();
                    }
                }
            }
        }
        self.finish().await;
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Write(item) => {
                if self.pending.push(*item) {
                    // The older item will never be written on its own.
                    self.unwritten.fetch_sub(1, Ordering::Relaxed);
                }
            }
            Command::Flush(done) => {
                self.flushes.push((self.pending.last_seq(), done));
                self.answer_flushes();
            }
        }
        self.update_gauge();
    }

    /// Tries each pending item once, oldest first; returns true if any
    /// is left unwritten. A failure followed by a success means one item
    /// is bad, and it must not hold back the others; two failures in a row
    /// mean the database is down, so the round stops.
    async fn write_round(&mut self) -> bool {
        let mut i = 0;
        let mut failures_in_a_row = 0;
        let mut any_failed = false;
        while let Some(item) = self.pending.get(i) {
            let write = async {
                match item {
                    Item::Call(record) => self.store.upsert_call(record).await,
                    Item::Turn(turn) => self.store.append_transcript_turn(turn).await,
                }
            };
            let result = match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(result) => result.map_err(|err| err.to_string()),
                Err(_elapsed) => Err(format!("no answer within {WRITE_TIMEOUT:?}")),
            };
            match result {
                Ok(()) => {
                    self.pending.remove(i);
                    self.unwritten.fetch_sub(1, Ordering::Relaxed);
                    failures_in_a_row = 0;
                    self.answer_flushes();
                }
                Err(error) => {
                    metrics::counter!(WRITE_ERRORS).increment(1);
                    tracing::warn!(call_sid = %item.call_sid(), %error, "{} write failed; will retry", item.kind());
                    any_failed = true;
                    failures_in_a_row += 1;
                    i += 1;
                    if failures_in_a_row >= FAILURES_MEANING_DOWN {
                        break;
                    }
                }
            }
        }
        self.update_gauge();
        any_failed
    }

    fn answer_flushes(&mut self) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(seq, _)| self.pending.written_through(*seq));
        self.flushes = waiting;
        for (_, done) in done {
            // An error only means the caller stopped waiting (its deadline
            // passed); there is nobody left to tell.
            let _ = done.send(());
        }
    }

    fn update_gauge(&self) {
        // Precision loss above 2^53 pending records is not a concern.
        #[allow(clippy::cast_precision_loss)]
        let pending = self.unwritten.load(Ordering::Relaxed) as f64;
        metrics::gauge!(PENDING_GAUGE).set(pending);
    }

    /// Every handle is gone: one last round, then report what could not be
    /// written, since nobody is left to retry it.
    async fn finish(mut self) {
        if !self.pending.is_empty() {
            self.write_round().await;
        }
        if !self.pending.is_empty() {
            let lost: Vec<&str> = self.pending.call_sids().map(|sid| sid.as_str()).collect();
            tracing::error!(count = lost.len(), call_sids = ?lost, "database unreachable at shutdown; call records or transcript turns lost");
        }
    }
}
