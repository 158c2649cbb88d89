//! The store writes its SQL once, with `$N` placeholders. Postgres binds
//! them by number; this checks that sqlx's SQLite driver does too, rather
//! than in order of appearance.

#[macro_use]
mod common;

use common::TestDb;
use sqlx::{Connection, Row};

on_both_backends!(dollar_placeholders_bind_by_number);

async fn dollar_placeholders_bind_by_number(db: &TestDb) {
    let mut conn = db.raw_connection().await;
    let row = sqlx::query("SELECT $2 AS a, $1 AS b, $2 AS c")
        .bind("one")
        .bind("two")
        .fetch_one(&mut conn)
        .await
        .expect("select");
    let got: (String, String, String) = (
        row.try_get("a").expect("a"),
        row.try_get("b").expect("b"),
        row.try_get("c").expect("c"),
    );
    assert_eq!(got, ("two".into(), "one".into(), "two".into()));
    conn.close().await.expect("close");
}
