//! Rows the store cannot read back are reported as `Corrupt`, not skipped
//! and not a panic.

#[macro_use]
mod common;

use common::{TestDb, sid};
use voxgate_store::StoreError;

on_both_backends!(
    unknown_disposition_is_corrupt,
    invalid_stream_sid_is_corrupt
);

async fn unknown_disposition_is_corrupt(db: &TestDb) {
    let store = db.store().await;
    // As a newer voxgate with a disposition this one lacks might write it.
    db.execute(
        "INSERT INTO calls (call_sid, started_at_ms, disposition) VALUES ('CA1', 5, 'busy')",
    )
    .await;
    let err = store.get_call(&sid("CA1")).await.expect_err("corrupt row");
    match &err {
        StoreError::Corrupt {
            call_sid, column, ..
        } => {
            assert_eq!(call_sid, "CA1");
            assert_eq!(*column, "disposition");
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(err.to_string().contains("busy"), "{err}");
    let listed = store
        .list_calls(10, 0)
        .await
        .expect_err("corrupt row listed");
    assert!(matches!(listed, StoreError::Corrupt { .. }), "{listed:?}");
}

async fn invalid_stream_sid_is_corrupt(db: &TestDb) {
    let store = db.store().await;
    db.execute("INSERT INTO calls (call_sid, stream_sid, started_at_ms) VALUES ('CA1', 'MZ 1', 5)")
        .await;
    let err = store.get_call(&sid("CA1")).await.expect_err("corrupt row");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                column: "stream_sid",
                ..
            }
        ),
        "{err:?}"
    );
}
