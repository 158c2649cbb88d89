//! The carrier's side of call records (direction, status callbacks), on
//! both backends.

#[macro_use]
mod common;

use common::{TestDb, full_record, sid};
use voxgate_store::{CallDirection, CallRecord, CarrierProgress, CarrierStatus, StatusReport};

on_both_backends!(
    an_outbound_call_is_recorded_queued,
    statuses_move_forward_and_record_the_duration,
    stale_and_repeated_reports_change_nothing,
    a_report_for_an_unknown_call_creates_its_record,
    a_late_outbound_insert_keeps_the_reported_status,
    the_media_streams_writes_leave_the_carrier_side_alone,
    an_unknown_stored_status_is_reported_as_corrupt,
);

fn outbound(call_sid: &str) -> CallRecord {
    CallRecord {
        from: Some("+15550001111".to_owned()),
        to: Some("+15550002222".to_owned()),
        persona: Some("sales".to_owned()),
        ..CallRecord::started(sid(call_sid), 1_000)
    }
}

fn report(call_sid: &str, status: CarrierStatus, at_ms: i64) -> StatusReport {
    StatusReport {
        call_sid: sid(call_sid),
        status,
        duration_s: None,
        from: None,
        to: None,
        at_ms,
    }
}

async fn status_of(store: &voxgate_store::Store, call_sid: &str) -> Option<CarrierStatus> {
    store
        .carrier_progress(&sid(call_sid))
        .await
        .expect("read progress")
        .expect("a record")
        .carrier_status
}

async fn an_outbound_call_is_recorded_queued(db: &TestDb) {
    let store = db.store().await;
    let record = outbound("CA1");
    store
        .record_outbound_call(&record, CarrierStatus::Queued)
        .await
        .expect("record");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(record)
    );
    assert_eq!(
        store.carrier_progress(&sid("CA1")).await.expect("progress"),
        Some(CarrierProgress {
            direction: Some(CallDirection::Outbound),
            carrier_status: Some(CarrierStatus::Queued),
            carrier_duration_s: None,
        })
    );
    assert_eq!(
        store.carrier_progress(&sid("CA2")).await.expect("progress"),
        None
    );
}

async fn statuses_move_forward_and_record_the_duration(db: &TestDb) {
    let store = db.store().await;
    store
        .record_outbound_call(&outbound("CA1"), CarrierStatus::Queued)
        .await
        .expect("record");
    for (status, at) in [
        (CarrierStatus::Initiated, 1_100),
        (CarrierStatus::Ringing, 1_200),
        (CarrierStatus::InProgress, 3_000),
    ] {
        assert!(
            store
                .report_carrier_status(&report("CA1", status, at))
                .await
                .expect("report"),
            "{status} applies"
        );
        assert_eq!(status_of(&store, "CA1").await, Some(status));
    }
    let call = store
        .get_call(&sid("CA1"))
        .await
        .expect("get")
        .expect("a record");
    assert_eq!(call.ended_at_ms, None, "not over yet");

    let completed = StatusReport {
        duration_s: Some(42),
        ..report("CA1", CarrierStatus::Completed, 45_000)
    };
    assert!(
        store
            .report_carrier_status(&completed)
            .await
            .expect("report")
    );
    let progress = store
        .carrier_progress(&sid("CA1"))
        .await
        .expect("progress")
        .expect("a record");
    assert_eq!(progress.carrier_status, Some(CarrierStatus::Completed));
    assert_eq!(progress.carrier_duration_s, Some(42));
    let call = store
        .get_call(&sid("CA1"))
        .await
        .expect("get")
        .expect("a record");
    assert_eq!(
        call.ended_at_ms,
        Some(45_000),
        "a final status ends the record"
    );
    assert_eq!(call.started_at_ms, 1_000, "the start is kept");
    assert_eq!(call.persona.as_deref(), Some("sales"));
}

async fn stale_and_repeated_reports_change_nothing(db: &TestDb) {
    let store = db.store().await;
    store
        .record_outbound_call(&outbound("CA1"), CarrierStatus::Queued)
        .await
        .expect("record");
    let apply = |status, at| {
        let store = store.clone();
        async move {
            store
                .report_carrier_status(&report("CA1", status, at))
                .await
                .expect("report")
        }
    };
    assert!(apply(CarrierStatus::InProgress, 2_000).await);
    assert!(!apply(CarrierStatus::Ringing, 2_100).await, "late ringing");
    assert!(!apply(CarrierStatus::InProgress, 2_200).await, "repeat");
    assert_eq!(
        status_of(&store, "CA1").await,
        Some(CarrierStatus::InProgress)
    );

    let busy = StatusReport {
        duration_s: Some(0),
        ..report("CA2", CarrierStatus::Busy, 5_000)
    };
    store
        .record_outbound_call(&outbound("CA2"), CarrierStatus::Queued)
        .await
        .expect("record");
    assert!(store.report_carrier_status(&busy).await.expect("report"));
    for late in [
        CarrierStatus::Queued,
        CarrierStatus::Ringing,
        CarrierStatus::InProgress,
        CarrierStatus::Completed,
        CarrierStatus::Busy,
    ] {
        let late = StatusReport {
            duration_s: Some(99),
            ..report("CA2", late, 9_000)
        };
        assert!(!store.report_carrier_status(&late).await.expect("report"));
    }
    let progress = store
        .carrier_progress(&sid("CA2"))
        .await
        .expect("progress")
        .expect("a record");
    assert_eq!(progress.carrier_status, Some(CarrierStatus::Busy));
    assert_eq!(progress.carrier_duration_s, Some(0));
    let call = store
        .get_call(&sid("CA2"))
        .await
        .expect("get")
        .expect("a record");
    assert_eq!(call.ended_at_ms, Some(5_000));
}

async fn a_report_for_an_unknown_call_creates_its_record(db: &TestDb) {
    let store = db.store().await;
    let ringing = StatusReport {
        from: Some("+15550003333".to_owned()),
        to: Some("+15550004444".to_owned()),
        ..report("CA9", CarrierStatus::Ringing, 7_000)
    };
    assert!(store.report_carrier_status(&ringing).await.expect("report"));
    let call = store
        .get_call(&sid("CA9"))
        .await
        .expect("get")
        .expect("a record");
    assert_eq!(call.started_at_ms, 7_000);
    assert_eq!(call.from.as_deref(), Some("+15550003333"));
    assert_eq!(call.to.as_deref(), Some("+15550004444"));
    assert_eq!(
        store.carrier_progress(&sid("CA9")).await.expect("progress"),
        Some(CarrierProgress {
            direction: None,
            carrier_status: Some(CarrierStatus::Ringing),
            carrier_duration_s: None,
        })
    );
}

async fn a_late_outbound_insert_keeps_the_reported_status(db: &TestDb) {
    let store = db.store().await;
    // The callback raced ahead of the API handler's insert.
    assert!(
        store
            .report_carrier_status(&report("CA1", CarrierStatus::Ringing, 1_500))
            .await
            .expect("report")
    );
    store
        .record_outbound_call(&outbound("CA1"), CarrierStatus::Queued)
        .await
        .expect("record");
    let progress = store
        .carrier_progress(&sid("CA1"))
        .await
        .expect("progress")
        .expect("a record");
    assert_eq!(progress.direction, Some(CallDirection::Outbound));
    assert_eq!(progress.carrier_status, Some(CarrierStatus::Ringing));
    let call = store
        .get_call(&sid("CA1"))
        .await
        .expect("get")
        .expect("a record");
    assert_eq!(call.persona.as_deref(), Some("sales"));
    assert_eq!(call.to.as_deref(), Some("+15550002222"));
}

async fn the_media_streams_writes_leave_the_carrier_side_alone(db: &TestDb) {
    let store = db.store().await;
    store
        .record_outbound_call(&outbound("CA1"), CarrierStatus::Queued)
        .await
        .expect("record");
    let answered = StatusReport {
        duration_s: Some(61),
        ..report("CA1", CarrierStatus::Completed, 70_000)
    };
    assert!(
        store
            .report_carrier_status(&answered)
            .await
            .expect("report")
    );
    // The stream's final write of the same call: the whole record.
    let stream_record = full_record("CA1", 2_000);
    store.upsert_call(&stream_record).await.expect("upsert");
    assert_eq!(
        store.get_call(&sid("CA1")).await.expect("get"),
        Some(stream_record)
    );
    assert_eq!(
        store.carrier_progress(&sid("CA1")).await.expect("progress"),
        Some(CarrierProgress {
            direction: Some(CallDirection::Outbound),
            carrier_status: Some(CarrierStatus::Completed),
            carrier_duration_s: Some(61),
        })
    );
    assert_eq!(store.list_calls(10, 0).await.expect("list").len(), 1);
}

async fn an_unknown_stored_status_is_reported_as_corrupt(db: &TestDb) {
    let store = db.store().await;
    store
        .record_outbound_call(&outbound("CA1"), CarrierStatus::Queued)
        .await
        .expect("record");
    db.execute("UPDATE calls SET carrier_status = 'teleported' WHERE call_sid = 'CA1'")
        .await;
    let err = store
        .carrier_progress(&sid("CA1"))
        .await
        .expect_err("corrupt");
    assert!(err.to_string().contains("carrier_status"), "{err}");
    assert!(err.to_string().contains("teleported"), "{err}");
}
