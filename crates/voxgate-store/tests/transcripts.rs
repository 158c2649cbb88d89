//! Transcript turns and recording paths, through `Store` and through
//! `RecordWriter`, on both backends.

#[macro_use]
mod common;

use std::time::Duration;

use common::{TestDb, full_record, sid};
use tokio_util::task::TaskTracker;
use voxgate_store::{CallRecord, FlushError, RecordWriter, StoreError, TranscriptTurn, TurnRole};

/// Long enough that only a real hang or lost turn fails a test; the
/// longest back-off is 5 s.
const PATIENCE: Duration = Duration::from_secs(20);

on_both_backends!(
    turns_round_trip_in_order,
    an_unknown_call_has_an_empty_transcript,
    writing_a_turn_again_replaces_it,
    transcripts_are_per_call,
    an_unknown_role_is_corrupt,
    recording_path_is_set_by_a_later_upsert,
    submitted_turns_reach_the_store,
    turns_submitted_while_down_are_written_once_back,
);

fn turn(call_sid: &str, seq: u32, role: TurnRole, text: &str) -> TranscriptTurn {
    let started_ms = i64::from(seq) * 2_000;
    TranscriptTurn {
        call_sid: sid(call_sid),
        seq,
        role,
        text: text.to_owned(),
        started_ms,
        ended_ms: started_ms + 1_500,
        interrupted: false,
    }
}

/// A short conversation: greeting, question, an answer cut off by the
/// caller, and the caller's barge-in.
fn conversation(call_sid: &str) -> Vec<TranscriptTurn> {
    vec![
        turn(call_sid, 0, TurnRole::Assistant, "Hello, how can I help?"),
        turn(call_sid, 1, TurnRole::User, "What are your opening hours?"),
        TranscriptTurn {
            interrupted: true,
            ..turn(call_sid, 2, TurnRole::Assistant, "We are open from nine")
        },
        turn(
            call_sid,
            3,
            TurnRole::User,
            "Ça marche — merci «beaucoup» 👍",
        ),
    ]
}

async fn turns_round_trip_in_order(db: &TestDb) {
    let store = db.store().await;
    let turns = conversation("CA1");
    // Stored out of order: reading sorts by turn number.
    for turn in turns.iter().rev() {
        store.append_transcript_turn(turn).await.expect("append");
    }
    assert_eq!(store.transcript(&sid("CA1")).await.expect("read"), turns);
}

async fn an_unknown_call_has_an_empty_transcript(db: &TestDb) {
    let store = db.store().await;
    assert!(
        store
            .transcript(&sid("CA404"))
            .await
            .expect("read")
            .is_empty()
    );
}

async fn writing_a_turn_again_replaces_it(db: &TestDb) {
    let store = db.store().await;
    let first = turn("CA1", 0, TurnRole::User, "helo");
    store.append_transcript_turn(&first).await.expect("append");
    let again = TranscriptTurn {
        text: "hello".to_owned(),
        interrupted: true,
        ..first
    };
    store
        .append_transcript_turn(&again)
        .await
        .expect("append again");
    assert_eq!(store.transcript(&sid("CA1")).await.expect("read"), [again]);
}

async fn transcripts_are_per_call(db: &TestDb) {
    let store = db.store().await;
    for turn in conversation("CA1").iter().chain(&conversation("CA2")[..2]) {
        store.append_transcript_turn(turn).await.expect("append");
    }
    assert_eq!(store.transcript(&sid("CA1")).await.expect("read").len(), 4);
    assert_eq!(
        store.transcript(&sid("CA2")).await.expect("read"),
        conversation("CA2")[..2]
    );
}

async fn an_unknown_role_is_corrupt(db: &TestDb) {
    let store = db.store().await;
    db.execute(
        "INSERT INTO transcript_turns \
         (call_sid, seq, role, text, started_ms, ended_ms, interrupted) \
         VALUES ('CA1', 0, 'system', 'be nice', 0, 0, 0)",
    )
    .await;
    let err = store
        .transcript(&sid("CA1"))
        .await
        .expect_err("corrupt row");
    match &err {
        StoreError::Corrupt {
            call_sid, column, ..
        } => {
            assert_eq!(call_sid, "CA1");
            assert_eq!(*column, "role");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains("system"), "{err}");
}

async fn recording_path_is_set_by_a_later_upsert(db: &TestDb) {
    let store = db.store().await;
    let ended = CallRecord {
        recording_path: None,
        ..full_record("CA1", 1_000)
    };
    store.upsert_call(&ended).await.expect("upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(ended.clone())
    );
    // Once the WAV is on disk, the call task writes the record again.
    let recorded = CallRecord {
        recording_path: Some("/var/lib/voxgate/recordings/CA1.wav".to_owned()),
        ..ended
    };
    store.upsert_call(&recorded).await.expect("upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(recorded.clone())
    );
    assert_eq!(store.list_calls(10, 0).await.expect("list"), [recorded]);
}

async fn submitted_turns_reach_the_store(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);
    writer.submit(CallRecord::started(sid("CA1"), 1));
    for turn in conversation("CA1") {
        writer.submit_turn(turn);
    }
    // A correction of turn 1 before it was written replaces it.
    writer.submit_turn(turn("CA1", 1, TurnRole::User, "When do you open?"));
    writer.submit(full_record("CA1", 1));
    writer.flush(PATIENCE).await.expect("flush");
    assert_eq!(writer.pending(), 0);

    let mut expected = conversation("CA1");
    expected[1] = turn("CA1", 1, TurnRole::User, "When do you open?");
    assert_eq!(store.transcript(&sid("CA1")).await.expect("read"), expected);
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(full_record("CA1", 1))
    );
}

async fn turns_submitted_while_down_are_written_once_back(db: &TestDb) {
    let store = db.store().await;
    let tracker = TaskTracker::new();
    let writer = RecordWriter::spawn(store.clone(), &tracker);

    db.execute("ALTER TABLE transcript_turns RENAME TO transcript_turns_away")
        .await;
    writer.submit(full_record("CA1", 1));
    for turn in conversation("CA1") {
        writer.submit_turn(turn);
    }

    let deadline = Duration::from_millis(400);
    // The record is written; the four turns are held.
    let err = writer
        .flush(deadline)
        .await
        .expect_err("turns table is down");
    assert!(
        matches!(err, FlushError::Timeout { pending: 4, .. }),
        "{err:?}"
    );

    db.execute("ALTER TABLE transcript_turns_away RENAME TO transcript_turns")
        .await;
    writer.flush(PATIENCE).await.expect("flush once back");
    assert_eq!(writer.pending(), 0);
    assert_eq!(
        store.transcript(&sid("CA1")).await.expect("read"),
        conversation("CA1")
    );
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(full_record("CA1", 1))
    );
}
