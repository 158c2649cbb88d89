//! Which URLs `Store::connect` accepts, and that errors never show a password.

#[macro_use]
mod common;

use std::path::{Path, PathBuf};

use common::{full_record, sid, temp_dir};
use voxgate_store::{Backend, Store, StoreError, redact_url};

/// Opens `url`, migrates, and checks a record survives a fresh connection,
/// so the file really is where the URL says.
async fn round_trip_via(url: &str) {
    let store = Store::connect(url).await.expect("connect");
    assert_eq!(store.backend(), Backend::Sqlite);
    store.migrate().await.expect("migrate");
    store
        .upsert_call(&full_record("CA1", 7))
        .await
        .expect("upsert");
    store.close().await;
    let reopened = Store::connect(url).await.expect("reconnect");
    assert_eq!(
        reopened.get_call(&sid("CA1")).await.expect("get"),
        Some(full_record("CA1", 7))
    );
    reopened.close().await;
}

#[tokio::test]
async fn bare_absolute_path_creates_a_sqlite_file() {
    let dir = temp_dir();
    // A space and a `#` must survive the trip through a URL.
    let path = dir.join("voice #1.db");
    round_trip_via(path.to_str().expect("utf-8 temp path")).await;
    assert!(path.is_file());
    std::fs::remove_dir_all(dir).expect("clean up");
}

/// Removes a file the test created in the working directory.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

#[tokio::test]
async fn bare_relative_path_is_in_the_working_directory() {
    let name = format!("voxgate-test-{}.db", uuid::Uuid::new_v4().simple());
    let _cleanup = RemoveOnDrop(PathBuf::from(&name));
    round_trip_via(&name).await;
    assert!(Path::new(&name).is_file());
}

#[tokio::test]
async fn sqlite_urls_create_the_file() {
    let dir = temp_dir();
    let a = dir.join("a.db");
    let b = dir.join("b.db");
    round_trip_via(&format!("sqlite:{}", a.display())).await;
    round_trip_via(&format!("sqlite://{}", b.display())).await;
    assert!(a.is_file() && b.is_file());
    std::fs::remove_dir_all(dir).expect("clean up");
}

#[tokio::test]
async fn in_memory_sqlite_keeps_its_data_across_queries() {
    let store = Store::connect("sqlite::memory:").await.expect("connect");
    store.migrate().await.expect("migrate");
    for i in 0..20 {
        store
            .upsert_call(&full_record(&format!("CA{i}"), i))
            .await
            .expect("upsert");
    }
    assert_eq!(store.list_calls(100, 0).await.expect("list").len(), 20);
}

#[tokio::test]
async fn postgres_url_reports_its_backend() {
    let store = Store::connect(&common::postgres_base_url())
        .await
        .expect("connect");
    assert_eq!(store.backend(), Backend::Postgres);
    store.ping().await.expect("ping");
}

#[tokio::test]
async fn unsupported_url_names_the_accepted_schemes() {
    let err = Store::connect("mysql://root:hunter2@127.0.0.1/voxgate")
        .await
        .expect_err("mysql is not supported");
    assert!(matches!(err, StoreError::UnsupportedUrl { .. }), "{err:?}");
    let text = err.to_string();
    for scheme in ["sqlite:", "postgres://", "postgresql://", "file path"] {
        assert!(text.contains(scheme), "{text:?} should mention {scheme}");
    }
    assert!(!text.contains("hunter2"), "{text:?}");
    assert!(text.contains("root:***@"), "{text:?}");
}

#[tokio::test]
async fn connect_error_hides_the_password() {
    // A database that does not exist: a real refusal from the real server.
    let url = common::with_database(&common::postgres_base_url(), "voxgate_no_such_db").replacen(
        "postgres@",
        "postgres:hunter2@",
        1,
    );
    let err = Store::connect(&url).await.expect_err("no such database");
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("postgres:***@"), "{text}");
        assert!(text.contains("voxgate_no_such_db"), "{text}");
    }
}

#[tokio::test]
async fn connect_error_for_a_missing_directory_names_the_url() {
    let err = Store::connect("sqlite:/nonexistent-voxgate-dir/x.db")
        .await
        .expect_err("directory does not exist");
    assert!(matches!(err, StoreError::Connect { .. }), "{err:?}");
    assert!(
        err.to_string().contains("/nonexistent-voxgate-dir/x.db"),
        "{err}"
    );
}

#[test]
fn redact_url_replaces_only_the_password() {
    assert_eq!(
        redact_url("postgresql://voxgate:s3cr%40t@db.internal:5432/voxgate?sslmode=require"),
        "postgresql://voxgate:***@db.internal:5432/voxgate?sslmode=require"
    );
    assert_eq!(
        redact_url("postgres://voxgate@db/voxgate"),
        "postgres://voxgate@db/voxgate"
    );
    assert_eq!(
        redact_url("postgres://db/voxgate?password=s3cret"),
        "postgres://db/voxgate?password=***"
    );
    assert_eq!(redact_url("voxgate.db"), "voxgate.db");
}

/// The database holds caller numbers and transcripts: a new file, and the
/// side files SQLite makes next to it, are the owner's alone.
#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_file_is_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;

    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
    use sqlx::{ConnectOptions, Connection, Executor};

    let mode = |path: &Path| {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        format!("{:o}", meta.permissions().mode() & 0o777)
    };
    let side = |path: &Path, suffix: &str| {
        let mut side = path.to_owned().into_os_string();
        side.push(suffix);
        PathBuf::from(side)
    };
    let dir = temp_dir();
    for (name, url) in [
        ("bare.db", None),
        ("url.db", Some("sqlite:{}")),
        ("rwc.db", Some("sqlite://{}?mode=rwc")),
    ] {
        let path = dir.join(name);
        let shown = path.to_str().expect("utf-8 temp path");
        let url = url.map_or_else(|| shown.to_owned(), |u| u.replace("{}", shown));
        let store = Store::connect(&url).await.expect("connect");
        store.migrate().await.expect("migrate");
        assert_eq!(mode(&path), "600", "{url}");

        // SQLite gives its side files the database's permissions. In WAL
        // mode they stay while a connection is open, so they can be seen.
        let mut conn = SqliteConnectOptions::new()
            .filename(&path)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .expect("open in WAL mode");
        conn.execute("CREATE TABLE wal_probe (x INTEGER)")
            .await
            .expect("write");
        for suffix in ["-wal", "-shm"] {
            assert_eq!(mode(&side(&path, suffix)), "600", "{url}{suffix}");
        }
        conn.close().await.expect("close");
        store.close().await;
    }

    // An existing file is the operator's: its mode is left alone.
    let existing = dir.join("existing.db");
    std::fs::write(&existing, b"").expect("create");
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let store = Store::connect(existing.to_str().expect("utf-8 temp path"))
        .await
        .expect("connect");
    store.close().await;
    assert_eq!(mode(&existing), "640");
    std::fs::remove_dir_all(dir).expect("clean up");
}
