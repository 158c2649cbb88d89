//! [`Store`]: call records over one SQL dialect that SQLite and Postgres
//! both speak.
//!
//! Placeholders are `$1, $2, …`: Postgres requires them, and sqlx's SQLite
//! driver binds `$N` by its number, so one string serves both.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Row;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use voxgate_core::call::Disposition;
use voxgate_core::ids::{CallSid, StreamSid};

use crate::error::StoreError;
use crate::record::CallRecord;
use crate::url::{self, Backend};

/// The schema, embedded at compile time from `migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!();

/// How long to wait for a pooled connection. sqlx's default of 30 s would
/// stall readiness checks and the writer's retries long after the
/// database is known to be down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

const COLUMNS: &str = "call_sid, stream_sid, from_number, to_number, persona, \
     started_at_ms, ended_at_ms, duration_ms, disposition, end_reason, recording_path";

/// Creates the SQLite file `url` names, empty and with mode 0600, if it does
/// not exist yet.
///
/// The database holds caller numbers and transcripts, and SQLite would
/// create it with the process umask (typically world-readable 0644).
/// SQLite takes an empty file as an empty database. The path comes from
/// sqlx's own parse of the URL, so it is the file sqlx then opens. Failing
/// here is not an error of its own: sqlx then opens the same path and
/// reports why it cannot (a missing directory, no permission).
#[cfg(unix)]
fn create_private_file(url: &str) {
    use std::os::unix::fs::OpenOptionsExt;
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    use sqlx::any::AnyConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;

    let Ok(options) = AnyConnectOptions::from_str(url)
        .and_then(|any| SqliteConnectOptions::from_url(&any.database_url))
    else {
        return;
    };
    let path = options.get_filename();
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => tracing::debug!(path = %path.display(), "created the SQLite file, mode 0600"),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => {
            tracing::debug!(path = %path.display(), %err, "cannot create the SQLite file; sqlx will say why");
        }
    }
}

/// Call records in SQLite or Postgres; cheap to clone (a pool handle).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Connects to `url`: `sqlite:PATH`, `sqlite://PATH`, `sqlite::memory:`,
    /// `postgres://…`, `postgresql://…`, or a bare file path (a SQLite file).
    ///
    /// SQLite files are created if missing unless the URL sets `mode=`
    /// (other than `mode=rwc`); on Unix a new file is readable and writable
    /// by the owner only (0600), and so are its `-wal`, `-shm` and
    /// `-journal` side files, which SQLite creates with the database's
    /// permissions. An existing file keeps its permissions.
    /// The schema is not touched; call [`Store::migrate`] for that.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let target = url::resolve(url)?;
        // Guarded by a `Once` inside sqlx, so calling it per connect is fine.
        sqlx::any::install_default_drivers();
        #[cfg(unix)]
        if target.creates_file {
            create_private_file(&target.url);
        }
        let mut options = AnyPoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
        if target.in_memory {
            options = options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options
            .connect(&target.url)
            .await
            .map_err(|err| StoreError::Connect {
                url: url::redact_url(url),
                reason: url::scrub(&err.to_string(), &url::secrets_in(url)),
            })?;
        tracing::debug!(url = %url::redact_url(url), backend = ?target.backend, "store connected");
        Ok(Store {
            pool,
            backend: target.backend,
        })
    }

    /// Which engine this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Brings the schema up to date; safe to run on every start.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|err| StoreError::Migrate {
                reason: err.to_string(),
            })
    }

    /// Checks that the database answers, for readiness probes.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(|err| StoreError::query("ping", err))?;
        Ok(())
    }

    /// Inserts `record`, or replaces every field of the stored one.
    pub async fn upsert_call(&self, record: &CallRecord) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO calls ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (call_sid) DO UPDATE SET \
             stream_sid = excluded.stream_sid, from_number = excluded.from_number, \
             to_number = excluded.to_number, persona = excluded.persona, \
             started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, \
             duration_ms = excluded.duration_ms, disposition = excluded.disposition, \
             end_reason = excluded.end_reason, recording_path = excluded.recording_path"
        );
        sqlx::query(&sql)
            .bind(record.call_sid.as_str())
            .bind(record.stream_sid.as_ref().map(StreamSid::as_str))
            .bind(record.from.as_deref())
            .bind(record.to.as_deref())
            .bind(record.persona.as_deref())
            .bind(record.started_at_ms)
            .bind(record.ended_at_ms)
            .bind(record.duration_ms)
            .bind(record.disposition.map(Disposition::as_str))
            .bind(record.end_reason.as_deref())
            .bind(record.recording_path.as_deref())
            .execute(&self.pool)
            .await
            .map_err(|err| StoreError::query("upsert call", err))?;
        Ok(())
    }

    /// The record for `call_sid`, or `None` if there is none.
    pub async fn get_call(&self, call_sid: &CallSid) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM calls WHERE call_sid = $1");
        let row = sqlx::query(&sql)
            .bind(call_sid.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(|err| StoreError::query("get call", err))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Up to `limit` records after skipping `offset`, newest first.
    ///
    /// Calls that started in the same millisecond are ordered by
    /// `call_sid`, ascending, so pages are stable. The text ordering is the
    /// backend's (bytewise on SQLite; the database collation on Postgres).
    pub async fn list_calls(&self, limit: u32, offset: u32) -> Result<Vec<CallRecord>, StoreError> {
        let sql = format!(
            "SELECT {COLUMNS} FROM calls ORDER BY started_at_ms DESC, call_sid ASC \
             LIMIT $1 OFFSET $2"
        );
        let rows = sqlx::query(&sql)
            .bind(i64::from(limit))
            .bind(i64::from(offset))
            .fetch_all(&self.pool)
            .await
            .map_err(|err| StoreError::query("list calls", err))?;
        rows.iter().map(record_from_row).collect()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn record_from_row(row: &AnyRow) -> Result<CallRecord, StoreError> {
    let raw_sid: String = column(row, "?", "call_sid")?;
    let call_sid = CallSid::new(raw_sid.clone()).map_err(|err| StoreError::Corrupt {
        call_sid: raw_sid.clone(),
        column: "call_sid",
        reason: err.to_string(),
    })?;
    let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
        call_sid: raw_sid.clone(),
        column,
        reason,
    };
    let stream_sid = column::<Option<String>>(row, &raw_sid, "stream_sid")?
        .map(StreamSid::new)
        .transpose()
        .map_err(|err| corrupt("stream_sid", err.to_string()))?;
    let disposition = column::<Option<String>>(row, &raw_sid, "disposition")?
        .map(|d| d.parse::<Disposition>())
        .transpose()
        .map_err(|err| corrupt("disposition", err.to_string()))?;
    Ok(CallRecord {
        call_sid,
        stream_sid,
        from: column(row, &raw_sid, "from_number")?,
        to: column(row, &raw_sid, "to_number")?,
        persona: column(row, &raw_sid, "persona")?,
        started_at_ms: column(row, &raw_sid, "started_at_ms")?,
        ended_at_ms: column(row, &raw_sid, "ended_at_ms")?,
        duration_ms: column(row, &raw_sid, "duration_ms")?,
        disposition,
        end_reason: column(row, &raw_sid, "end_reason")?,
        recording_path: column(row, &raw_sid, "recording_path")?,
    })
}

/// One column, where a type mismatch means the row was not written by us.
fn column<'r, T>(row: &'r AnyRow, call_sid: &str, name: &'static str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    row.try_get(name).map_err(|err| StoreError::Corrupt {
        call_sid: call_sid.to_owned(),
        column: name,
        reason: err.to_string(),
    })
}
