//! `RecordWriter` against real databases: records arrive, coalesce, survive
//! an outage, and are written at shutdown.
//!
//! "Down" is the `calls` table renamed away: every write fails with a real
//! database error until it is renamed back, on either backend. These tests
//! run on real time because paused time would auto-advance while the
//! runtime idles waiting on database IO, firing timeouts early.

#[macro_use]
mod common;

use std::time::Duration;

use common::{TestDb, full_record, sid};
use tokio_util::task::TaskTracker;
use voxgate_store::{CallRecord, FlushError, RecordWriter};

/// Long enough that only a real hang or lost record fails a test; the
/// longest back-off is 5 s.
const PATIENCE: Duration = Duration::from_secs(20);

on_both_backends!(
    submitted_records_reach_the_store,
    newer_record_for_a_call_wins,
    records_submitted_while_down_are_written_once_back,
    flush_with_nothing_pending_returns_at_once,
    dropping_every_handle_writes_what_remains,
);

async fn submitted_records_reach_the_store(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);
    for i in 0..50 {
        writer.submit(full_record(&format!("CA{i}"), i));
    }
    writer.flush(PATIENCE).await.expect("flush");
    assert_eq!(writer.pending(), 0);
    assert_eq!(store.list_calls(100, 0).await.expect("list").len(), 50);
    assert_eq!(
        store.get_call(&sid("CA7")).await.expect("get"),
        Some(full_record("CA7", 7))
    );
}

async fn newer_record_for_a_call_wins(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);
    writer.submit(CallRecord::started(sid("CA1"), 1_000));
    writer.submit(full_record("CA1", 1_000));
    writer.flush(PATIENCE).await.expect("flush");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(full_record("CA1", 1_000))
    );
}

async fn records_submitted_while_down_are_written_once_back(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);

    db.execute("ALTER TABLE calls RENAME TO calls_away").await;
    writer.submit(CallRecord::started(sid("CA1"), 1));
    writer.submit(CallRecord::started(sid("CA2"), 2));
    // The end of CA1 supersedes its start: still two records pending.
    writer.submit(full_record("CA1", 1));

    let deadline = Duration::from_millis(400);
    let err = writer.flush(deadline).await.expect_err("store is down");
    assert_eq!(
        err,
        FlushError::Timeout {
            deadline,
            pending: 2
        }
    );
    let text = err.to_string();
    assert!(text.contains("2 record(s) still pending"), "{text}");
    assert_eq!(writer.pending(), 2);

    db.execute("ALTER TABLE calls_away RENAME TO calls").await;
    writer.flush(PATIENCE).await.expect("flush once back");
    assert_eq!(writer.pending(), 0);
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(full_record("CA1", 1))
    );
    assert_eq!(
        store.get_call(&sid("CA2")).await.expect("get"),
        Some(CallRecord::started(sid("CA2"), 2))
    );
}

async fn flush_with_nothing_pending_returns_at_once(db: &TestDb) {
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(db.store().await, &tracker);
    writer
        .flush(Duration::from_secs(5))
        .await
        .expect("nothing to flush");
}

async fn dropping_every_handle_writes_what_remains(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);
    let clone = writer.clone();
    writer.submit(full_record("CA1", 1));
    clone.submit(full_record("CA2", 2));
    drop(writer);
    drop(clone);
    tracker.close();
    tokio::time::timeout(PATIENCE, tracker.wait())
        .await
        .expect("writer task ends once every handle is dropped");
    assert_eq!(store.list_calls(10, 0).await.expect("list").len(), 2);
}
