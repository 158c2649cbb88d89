//! Real databases for the integration tests: a SQLite file in a fresh temp
//! directory, or a fresh database on the machine's PostgreSQL. Both are
//! removed when the [`TestDb`] is dropped, even if the test panicked.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;

use sqlx::Connection;
use voxgate_core::call::Disposition;
use voxgate_core::ids::{CallSid, StreamSid};
use voxgate_store::{CallRecord, Store};

/// The server the Postgres tests use; trust auth, so no password.
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs `async fn $name(db: &TestDb)` once on SQLite and once on Postgres,
/// as the tests `$name::sqlite` and `$name::postgres`.
#[allow(unused_macros)] // not every test file runs on both backends
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let db = crate::common::TestDb::sqlite();
                super::$name(&db).await;
            }

            #[tokio::test]
            async fn postgres() {
                let db = crate::common::TestDb::postgres().await;
                super::$name(&db).await;
            }
        }
    )*};
}

/// Which engine a [`TestDb`] lives on, and what to clean up.
enum Backing {
    Sqlite { dir: PathBuf },
    Postgres { base_url: String, name: String },
}

/// A database that exists for one test.
pub(crate) struct TestDb {
    /// What to give [`Store::connect`].
    pub(crate) url: String,
    backing: Backing,
}

impl TestDb {
    /// A SQLite file in a new directory under the system temp dir.
    pub(crate) fn sqlite() -> TestDb {
        let dir = temp_dir();
        let path = dir.join("voxgate.db");
        TestDb {
            url: format!("sqlite:{}", path.display()),
            backing: Backing::Sqlite { dir },
        }
    }

    /// A new, empty database on the test Postgres server.
    pub(crate) async fn postgres() -> TestDb {
        let base_url = postgres_base_url();
        let name = format!("voxgate_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = sqlx::PgConnection::connect(&base_url)
            .await
            .expect("connect to the test Postgres server (set VOXGATE_TEST_POSTGRES_URL)");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create test database");
        admin.close().await.expect("close admin connection");
        TestDb {
            url: with_database(&base_url, &name),
            backing: Backing::Postgres { base_url, name },
        }
    }

    /// A connected store with the schema in place.
    pub(crate) async fn store(&self) -> Store {
        let store = Store::connect(&self.url).await.expect("connect to test db");
        store.migrate().await.expect("migrate test db");
        store
    }

    /// Runs `sql` on a connection of its own, bypassing the store, to
    /// tamper with the database the way another writer or an operator might.
    pub(crate) async fn execute(&self, sql: &str) {
        let mut conn = self.raw_connection().await;
        sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|err| panic!("raw SQL {sql:?} failed: {err}"));
        conn.close().await.expect("close raw connection");
    }
}

impl TestDb {
    /// A plain sqlx connection, not through the store.
    pub(crate) async fn raw_connection(&self) -> sqlx::AnyConnection {
        sqlx::any::install_default_drivers();
        let url = match self.backing {
            // The store creates the file; this may run before it exists.
            Backing::Sqlite { .. } => format!("{}?mode=rwc", self.url),
            Backing::Postgres { .. } => self.url.clone(),
        };
        sqlx::AnyConnection::connect(&url)
            .await
            .expect("raw connection to test db")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match &self.backing {
            Backing::Sqlite { dir } => {
                // Best effort: a leftover temp dir is harmless.
                let _ = std::fs::remove_dir_all(dir);
            }
            Backing::Postgres { base_url, name } => {
                let (base_url, sql) = (
                    base_url.clone(),
                    // FORCE: the store's pool may still hold connections.
                    format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                );
                // Drop cannot await, and the test's runtime may be the
                // current-thread kind, so the drop runs on a runtime of
                // its own on another thread.
                let dropped = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("cleanup runtime");
                    runtime.block_on(async {
                        let mut admin = sqlx::PgConnection::connect(&base_url).await?;
                        sqlx::query(&sql).execute(&mut admin).await?;
                        admin.close().await
                    })
                })
                .join();
                if !matches!(dropped, Ok(Ok(()))) {
                    eprintln!("could not drop test database {name}; drop it by hand");
                }
            }
        }
    }
}

/// A new empty directory under the system temp dir.
pub(crate) fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("voxgate-store-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `VOXGATE_TEST_POSTGRES_URL`, or the local server.
pub(crate) fn postgres_base_url() -> String {
    std::env::var("VOXGATE_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned())
}

/// `url` pointing at database `name` instead, keeping any query string.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (location, query) = match url.split_once('?') {
        Some((location, query)) => (location, Some(query)),
        None => (url, None),
    };
    let authority_start = location.find("://").map_or(0, |i| i + 3);
    let server = match location[authority_start..].find('/') {
        Some(slash) => &location[..authority_start + slash],
        None => location,
    };
    match query {
        Some(query) => format!("{server}/{name}?{query}"),
        None => format!("{server}/{name}"),
    }
}

/// A call id from a test literal.
pub(crate) fn sid(raw: &str) -> CallSid {
    CallSid::new(raw).expect("valid call sid")
}

/// A record with every optional field set.
pub(crate) fn full_record(call_sid: &str, started_at_ms: i64) -> CallRecord {
    CallRecord {
        call_sid: sid(call_sid),
        stream_sid: Some(StreamSid::new(format!("MZ{call_sid}")).expect("valid stream sid")),
        from: Some("+15550001111".to_owned()),
        to: Some("+15550002222".to_owned()),
        persona: Some("receptionist".to_owned()),
        started_at_ms,
        ended_at_ms: Some(started_at_ms + 61_500),
        duration_ms: Some(61_500),
        disposition: Some(Disposition::Completed),
        end_reason: Some("caller hung up".to_owned()),
        recording_path: Some(format!("recordings/{call_sid}.wav")),
    }
}
