//! What can go wrong talking to the store.

/// Why a store operation failed.
///
/// No variant carries a database password: URLs pass through
/// [`crate::redact_url`] and driver messages are scrubbed of the secret.
/// Driver errors are kept as text in the message rather than as a
/// `source`, so that nothing unredacted can be reached through the chain.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The configured URL names no backend this crate supports (operator
    /// error).
    #[error("unsupported database URL {url:?}: use {}", crate::url::ACCEPTED)]
    UnsupportedUrl {
        /// The URL as configured, password redacted.
        url: String,
    },
    /// The database could not be reached or refused the connection.
    #[error("could not connect to database {url}: {reason}")]
    Connect {
        /// The URL as configured, password redacted.
        url: String,
        /// The driver's reason, scrubbed of the password.
        reason: String,
    },
    /// Bringing the schema up to date failed.
    #[error("database migration failed: {reason}")]
    Migrate {
        /// The migrator's reason.
        reason: String,
    },
    /// A statement failed, e.g. because the database went away.
    #[error("database {operation} failed: {reason}")]
    Query {
        /// What was being done, e.g. `"upsert call"`.
        operation: &'static str,
        /// The driver's reason.
        reason: String,
    },
    /// A stored value could not be read back, e.g. an unknown disposition
    /// written by a newer or foreign writer.
    #[error("stored call {call_sid:?} has a bad {column}: {reason}")]
    Corrupt {
        /// The call whose row is bad (`"?"` when the id itself is unreadable).
        call_sid: String,
        /// The column that failed to parse.
        column: &'static str,
        /// Why it failed to parse.
        reason: String,
    },
    /// A stored persona could not be read back.
    #[error("stored persona {name:?} is unreadable: {reason}")]
    CorruptPersona {
        /// The persona's name.
        name: String,
        /// Why.
        reason: String,
    },
}

impl StoreError {
    pub(crate) fn query(operation: &'static str, err: sqlx::Error) -> Self {
        StoreError::Query {
            operation,
            reason: err.to_string(),
        }
    }
}
