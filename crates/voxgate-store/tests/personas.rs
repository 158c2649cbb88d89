//! Personas in the store, on both backends.

#[macro_use]
mod common;

use common::TestDb;
use voxgate_core::persona::{PersonaSpec, TurnSpec};
use voxgate_store::{StoreError, Written};

on_both_backends!(
    personas_round_trip_and_list_by_name,
    insert_does_not_overwrite,
    put_creates_then_replaces,
    delete_reports_whether_it_removed,
    an_unreadable_persona_is_a_clear_error,
);

fn persona(name: &str, greeting: &str) -> PersonaSpec {
    PersonaSpec {
        name: name.into(),
        greeting: greeting.into(),
        voice: Some("joe".into()),
        turn: TurnSpec {
            max_reprompts: 1,
            ..TurnSpec::default()
        },
        ..PersonaSpec::default()
    }
}

async fn personas_round_trip_and_list_by_name(db: &TestDb) {
    let store = db.store().await;
    assert!(store.list_personas().await.expect("list").is_empty());
    let sales = persona("sales", "Hi, sales here.");
    let support = persona("support", "Support, how can I help?");
    assert!(store.insert_persona(&support, 1).await.expect("insert"));
    assert!(store.insert_persona(&sales, 2).await.expect("insert"));
    let listed = store.list_personas().await.expect("list");
    assert_eq!(listed, vec![sales.clone(), support]);
    assert_eq!(store.get_persona("sales").await.expect("get"), Some(sales));
    assert_eq!(store.get_persona("nobody").await.expect("get"), None);
}

async fn insert_does_not_overwrite(db: &TestDb) {
    let store = db.store().await;
    assert!(
        store
            .insert_persona(&persona("p", "first"), 1)
            .await
            .expect("insert")
    );
    assert!(
        !store
            .insert_persona(&persona("p", "second"), 2)
            .await
            .expect("insert")
    );
    let kept = store.get_persona("p").await.expect("get").expect("exists");
    assert_eq!(kept.greeting, "first");
}

async fn put_creates_then_replaces(db: &TestDb) {
    let store = db.store().await;
    let written = store
        .put_persona(&persona("p", "first"), 1)
        .await
        .expect("put");
    assert_eq!(written, Written::Created);
    let written = store
        .put_persona(&persona("p", "second"), 2)
        .await
        .expect("put");
    assert_eq!(written, Written::Replaced);
    let kept = store.get_persona("p").await.expect("get").expect("exists");
    assert_eq!(kept.greeting, "second");
}

async fn delete_reports_whether_it_removed(db: &TestDb) {
    let store = db.store().await;
    store.put_persona(&persona("p", "x"), 1).await.expect("put");
    assert!(store.delete_persona("p").await.expect("delete"));
    assert!(!store.delete_persona("p").await.expect("delete"));
    assert_eq!(store.get_persona("p").await.expect("get"), None);
}

async fn an_unreadable_persona_is_a_clear_error(db: &TestDb) {
    let store = db.store().await;
    db.execute(
        "INSERT INTO personas (name, spec, updated_at_ms) VALUES ('broken', '{\"greting\":1}', 1)",
    )
    .await;
    let err = store.get_persona("broken").await.expect_err("corrupt");
    assert!(
        matches!(err, StoreError::CorruptPersona { ref name, .. } if name == "broken"),
        "{err}"
    );
    assert!(err.to_string().contains("greting"), "{err}");
}
