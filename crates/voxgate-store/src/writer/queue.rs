//! The writer's bookkeeping, free of IO so it can be tested directly:
//! the ordered, coalescing queue of unwritten items (call records and
//! transcript turns) and the retry back-off.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use voxgate_core::ids::CallSid;

use crate::record::CallRecord;
use crate::transcript::TranscriptTurn;

/// Something to write.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    /// A call record; a newer one for the same call replaces it.
    Call(CallRecord),
    /// A transcript turn; one with the same call and number replaces it.
    Turn(TranscriptTurn),
}

impl Item {
    /// The call the item belongs to.
    pub(crate) fn call_sid(&self) -> &CallSid {
        match self {
            Item::Call(record) => &record.call_sid,
            Item::Turn(turn) => &turn.call_sid,
        }
    }

    /// What the item is, for logs.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Item::Call(_) => "call record",
            Item::Turn(_) => "transcript turn",
        }
    }

    fn key(&self) -> Key {
        match self {
            Item::Call(record) => Key::Call(record.call_sid.clone()),
            Item::Turn(turn) => Key::Turn(turn.call_sid.clone(), turn.seq),
        }
    }
}

/// What an item replaces: the unwritten item with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Call(CallSid),
    Turn(CallSid, u32),
}

/// Unwritten items in arrival order, at most one per key: one record per
/// call, one turn per call and turn number.
///
/// Each entry keeps the sequence number of the first item that created
/// it; a newer item with the same key replaces the content in place. So
/// sequence numbers increase along the queue, and "everything submitted up
/// to N is written" is simply "the oldest entry is newer than N".
#[derive(Debug, Default)]
pub(crate) struct Pending {
    entries: VecDeque<Entry>,
    /// Which entry holds each key, by sequence number.
    by_key: HashMap<Key, u64>,
    /// Sequence number of the last item accepted; 0 before the first.
    last_seq: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    item: Item,
}

impl Pending {
    /// Queues `item`. Returns true if it replaced an unwritten older item
    /// with the same key.
    pub(crate) fn push(&mut self, item: Item) -> bool {
        self.last_seq += 1;
        let key = item.key();
        if let Some(&seq) = self.by_key.get(&key)
            && let Some(i) = self.position(seq)
        {
            self.entries[i].item = item;
            return true;
        }
        self.by_key.insert(key, self.last_seq);
        self.entries.push_back(Entry {
            seq: self.last_seq,
            item,
        });
        false
    }

    /// The sequence number of the last record pushed.
    pub(crate) fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// True once every item pushed up to `seq` (or a newer item with the
    /// same key) has been removed as written.
    pub(crate) fn written_through(&self, seq: u64) -> bool {
        self.entries.front().is_none_or(|oldest| oldest.seq > seq)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `i`th oldest unwritten item.
    pub(crate) fn get(&self, i: usize) -> Option<&Item> {
        self.entries.get(i).map(|e| &e.item)
    }

    /// Drops the `i`th oldest item, once written.
    pub(crate) fn remove(&mut self, i: usize) -> Option<Item> {
        let entry = self.entries.remove(i)?;
        self.by_key.remove(&entry.item.key());
        Some(entry.item)
    }

    /// The calls of the items still unwritten, oldest first (a call with
    /// several items appears as often), for logging.
    pub(crate) fn call_sids(&self) -> impl Iterator<Item = &CallSid> {
        self.entries.iter().map(|e| e.item.call_sid())
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

    fn record(sid: &str, started_at_ms: i64) -> Item {
        Item::Call(CallRecord::started(
            CallSid::new(sid).expect("valid sid"),
            started_at_ms,
        ))
    }

    fn turn(sid: &str, seq: u32, text: &str) -> Item {
        Item::Turn(TranscriptTurn {
            call_sid: CallSid::new(sid).expect("valid sid"),
            seq,
            role: crate::TurnRole::User,
            text: text.to_owned(),
            started_ms: 0,
            ended_ms: 1,
            interrupted: false,
        })
    }

    fn started_at(item: Option<&Item>) -> Option<i64> {
        match item? {
            Item::Call(record) => Some(record.started_at_ms),
            Item::Turn(_) => None,
        }
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
        assert_eq!(started_at(pending.get(0)), Some(10));
    }

    #[test]
    fn a_written_call_queues_afresh() {
        let mut pending = Pending::default();
        pending.push(record("CA1", 1));
        pending.push(record("CA2", 2));
        assert_eq!(started_at(pending.remove(0).as_ref()), Some(1));
        assert!(!pending.push(record("CA1", 3)));
        assert_eq!(sids(&pending), ["CA2", "CA1"]);
    }

    #[test]
    fn turns_queue_apart_from_records_and_from_each_other() {
        let mut pending = Pending::default();
        assert!(!pending.push(record("CA1", 1)));
        assert!(!pending.push(turn("CA1", 0, "hello")));
        assert!(!pending.push(turn("CA1", 1, "hi there")));
        assert!(!pending.push(turn("CA2", 0, "other call")));
        // The same turn again (a retry, a correction) replaces it in place.
        assert!(pending.push(turn("CA1", 0, "hello?")));
        assert_eq!(sids(&pending), ["CA1", "CA1", "CA1", "CA2"]);
        assert_eq!(pending.get(1), Some(&turn("CA1", 0, "hello?")));
        assert_eq!(pending.get(1).map(Item::kind), Some("transcript turn"));
        // Writing one turn frees its key only.
        assert_eq!(pending.remove(1), Some(turn("CA1", 0, "hello?")));
        assert!(!pending.push(turn("CA1", 0, "again")));
        assert!(pending.push(turn("CA1", 1, "hi")));
        assert_eq!(sids(&pending), ["CA1", "CA1", "CA2", "CA1"]);
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
