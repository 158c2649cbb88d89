//! The writer's bookkeeping, free of IO so it can be tested directly:
//! the ordered, coalescing queue of unwritten records and the retry
//! back-off.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use voxgate_core::ids::CallSid;

use crate::record::CallRecord;

/// Unwritten records in arrival order, at most one per call.
///
/// Each entry keeps the sequence number of the first record that created
/// it; a newer record for the same call replaces the content in place. So
/// sequence numbers increase along the queue, and "everything submitted up
/// to N is written" is simply "the oldest entry is newer than N".
#[derive(Debug, Default)]
pub(crate) struct Pending {
    entries: VecDeque<Entry>,
    /// Which entry holds each call, by sequence number.
    by_call: HashMap<CallSid, u64>,
    /// Sequence number of the last record accepted; 0 before the first.
    last_seq: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    record: CallRecord,
}

impl Pending {
    /// Queues `record`. Returns true if it replaced an unwritten older
    /// record for the same call.
    pub(crate) fn push(&mut self, record: CallRecord) -> bool {
        self.last_seq += 1;
        if let Some(&seq) = self.by_call.get(&record.call_sid) {
            if let Some(i) = self.position(seq) {
                self.entries[i].record = record;
                return true;
            }
        }
        self.by_call.insert(record.call_sid.clone(), self.last_seq);
        self.entries.push_back(Entry {
            seq: self.last_seq,
            record,
        });
        false
    }

    /// The sequence number of the last record pushed.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// True once every record pushed up to `seq` (or a newer record for the
    /// same call) has been removed as written.
    pub(crate) fn written_through(&self, seq: u64) -> bool {
        self.entries.front().is_none_or(|oldest| oldest.seq > seq)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`th oldest unwritten record.
    pub(crate) fn get(&self, i: usize) -> Option<&CallRecord> {
        self.entries.get(i).map(|e| &e.record)
    }

    /// Drops the `i`th oldest record, once written.
    pub(crate) fn remove(&mut self, i: usize) -> Option<CallRecord> {
        let entry = self.entries.remove(i)?;
        self.by_call.remove(&entry.record.call_sid);
        Some(entry.record)
    }

    /// The calls still unwritten, oldest first, for logging.
    pub(crate) fn call_sids(&self) -> impl Iterator<Item = &CallSid> {
        self.entries.iter().map(|e| &e.record.call_sid)
    }

    fn position(&self, seq: u64) -> Option<usize> {
        self.entries.binary_search_by_key(&seq, |e| e.seq).ok()
    }
}

/// Capped exponential back-off between write attempts.
#[derive(Debug)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; each call doubles the one after,
    /// up to the cap.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Back to the initial delay, after a clean round of writes.
    pub(crate) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(sid: &str, started_at_ms: i64) -> CallRecord {
        CallRecord::started(CallSid::new(sid).expect("valid sid"), started_at_ms)
    }

    fn sids(pending: &Pending) -> Vec<&str> {
        pending.call_sids().map(CallSid::as_str).collect()
    }

    #[test]
    fn keeps_arrival_order() {
        let mut pending = Pending::default();
        assert!(!pending.push(record("CA1", 1)));
        assert!(!pending.push(record("CA2", 2)));
        assert!(!pending.push(record("CA3", 3)));
        assert_eq!(sids(&pending), ["CA1", "CA2", "CA3"]);
    }

    #[test]
    fn newer_record_replaces_older_in_place() {
        let mut pending = Pending::default();
        pending.push(record("CA1", 1));
        pending.push(record("CA2", 2));
        assert!(pending.push(record("CA1", 10)));
        assert_eq!(sids(&pending), ["CA1", "CA2"]);
        assert_eq!(pending.get(0).map(|r| r.started_at_ms), Some(10));
    }

    #[test]
    fn a_written_call_queues_afresh() {
        let mut pending = Pending::default();
        pending.push(record("CA1", 1));
        pending.push(record("CA2", 2));
        assert_eq!(pending.remove(0).map(|r| r.started_at_ms), Some(1));
        assert!(!pending.push(record("CA1", 3)));
        assert_eq!(sids(&pending), ["CA2", "CA1"]);
    }

    #[test]
    fn written_through_tracks_the_oldest_unwritten() {
        let mut pending = Pending::default();
        assert!(pending.written_through(pending.last_seq()));
        pending.push(record("CA1", 1));
        pending.push(record("CA2", 2));
        let flush_at = pending.last_seq();
        // A record after the flush supersedes one before it: the flush
        // must still wait for that call.
        pending.push(record("CA1", 3));
        assert!(!pending.written_through(flush_at));
        pending.remove(1);
        assert!(!pending.written_through(flush_at));
        pending.remove(0);
        assert!(pending.written_through(flush_at));
        assert!(pending.is_empty());
    }

    #[test]
    fn written_through_ignores_later_calls() {
        let mut pending = Pending::default();
        pending.push(record("CA1", 1));
        let flush_at = pending.last_seq();
        pending.push(record("CA2", 2));
        pending.remove(0);
        assert!(pending.written_through(flush_at));
        assert!(!pending.written_through(pending.last_seq()));
    }

    #[test]
    fn backoff_doubles_to_the_cap_and_resets() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::new(ms(100), ms(5_000));
        let delays: Vec<_> = (0..8).map(|_| backoff.next_delay()).collect();
        assert_eq!(
            delays,
            [100, 200, 400, 800, 1_600, 3_200, 5_000, 5_000].map(ms)
        );
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
    }
}
