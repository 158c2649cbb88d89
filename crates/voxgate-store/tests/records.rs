//! Reading and writing call records through `Store`, on both backends.

#[macro_use]
mod common;

use common::{TestDb, full_record, sid};
use voxgate_core::call::Disposition;
use voxgate_store::CallRecord;

on_both_backends!(
    every_field_round_trips,
    absent_fields_round_trip_as_none,
    upsert_replaces_every_field,
    unknown_call_is_none,
    list_is_newest_first_with_limit_and_offset,
    migrate_twice_is_harmless,
    ping_answers,
    every_disposition_round_trips,
);

async fn every_field_round_trips(db: &TestDb) {
    let store = db.store().await;
    let record = full_record("CA1", 1_700_000_000_123);
    store.upsert_call(&record).await.expect("upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(record)
    );
}

async fn absent_fields_round_trip_as_none(db: &TestDb) {
    let store = db.store().await;
    let record = CallRecord::started(sid("CA1"), -5);
    store.upsert_call(&record).await.expect("upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(record)
    );
}

async fn upsert_replaces_every_field(db: &TestDb) {
    let store = db.store().await;
    store
        .upsert_call(&full_record("CA1", 1_000))
        .await
        .expect("first upsert");
    // Fields set the first time must be cleared, not kept.
    let replacement = CallRecord {
        persona: Some("sales".to_owned()),
        ..CallRecord::started(sid("CA1"), 2_000)
    };
    store
        .upsert_call(&replacement)
        .await
        .expect("second upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(replacement)
    );
    assert_eq!(store.list_calls(10, 0).await.expect("list").len(), 1);
}

async fn unknown_call_is_none(db: &TestDb) {
    let store = db.store().await;
    store
        .upsert_call(&full_record("CA1", 1))
        .await
        .expect("upsert");
    assert_eq!(store.get_call(&sid("CA2")).await.expect("get"), None);
}

async fn list_is_newest_first_with_limit_and_offset(db: &TestDb) {
    let store = db.store().await;
    for (call_sid, started_at_ms) in [
        ("CA1", 100),
        ("CA4", 300),
        ("CA3", 200),
        ("CA2", 300),
        ("CA5", 50),
    ] {
        store
            .upsert_call(&full_record(call_sid, started_at_ms))
            .await
            .expect("upsert");
    }
    let page = |limit, offset| {
        let store = store.clone();
        async move {
            let calls = store.list_calls(limit, offset).await.expect("list");
            calls
                .into_iter()
                .map(|c| c.call_sid.to_string())
                .collect::<Vec<_>>()
        }
    };
    // CA2 and CA4 started together: call_sid breaks the tie.
    assert_eq!(page(10, 0).await, ["CA2", "CA4", "CA3", "CA1", "CA5"]);
    assert_eq!(page(2, 0).await, ["CA2", "CA4"]);
    assert_eq!(page(2, 2).await, ["CA3", "CA1"]);
    assert_eq!(page(2, 4).await, ["CA5"]);
    assert!(page(2, 5).await.is_empty());
    assert!(page(0, 0).await.is_empty());
}

async fn migrate_twice_is_harmless(db: &TestDb) {
    let store = db.store().await;
    store
        .upsert_call(&full_record("CA1", 1))
        .await
        .expect("upsert");
    store.migrate().await.expect("second migrate");
    assert!(store.get_call(&sid("CA1")).await.expect("get").is_some());
}

async fn ping_answers(db: &TestDb) {
    db.store().await.ping().await.expect("ping");
}

async fn every_disposition_round_trips(db: &TestDb) {
    let store = db.store().await;
    for (i, disposition) in Disposition::ALL.into_iter().enumerate() {
        let call_sid = format!("CA{i}");
        let record = CallRecord {
            disposition: Some(disposition),
            ..CallRecord::started(sid(&call_sid), 1)
        };
        store.upsert_call(&record).await.expect("upsert");
        assert_eq!(
            store.get_call(&sid(&call_sid)).await.expect("get"),
            Some(record)
        );
    }
}
