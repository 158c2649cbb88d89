//! Call records and transcript turns in SQLite (the default) or Postgres,
//! written off the call path.
//!
//! - [`Store`] is the database: connect with a URL or a bare file path,
//!   [`Store::migrate`], then read and write [`CallRecord`]s and
//!   [`TranscriptTurn`]s. One SQL dialect serves both backends through
//!   sqlx's `Any` driver.
//! - The carrier's side of a record ([`CarrierProgress`]: direction and
//!   the carrier's [`CarrierStatus`]) is written apart, by
//!   [`Store::record_outbound_call`] and [`Store::report_carrier_status`],
//!   and only ever moves forward.
//! - [`RecordWriter`] is what call tasks use: [`RecordWriter::submit`] and
//!   [`RecordWriter::submit_turn`] never block, and what they queue is held
//!   and retried while the database is down rather than dropped.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use tokio_util::task::TaskTracker;
//! use voxgate_core::ids::CallSid;
//! use voxgate_store::{CallRecord, RecordWriter, Store};
//!
//! let store = Store::connect("voxgate.db").await?;
//! store.migrate().await?;
//! let tracker = TaskTracker::new();
//! let writer = RecordWriter::spawn(store.clone(), &tracker);
//! writer.submit(CallRecord::started(CallSid::new("CA1")?, 1_700_000_000_000));
//! writer.flush(std::time::Duration::from_secs(5)).await?;
//! drop(writer); // the task ends once every handle is gone
//! tracker.close();
//! tracker.wait().await;
//! # Ok(())
//! # }
//! ```

mod carrier;
mod error;
mod personas;
mod record;
mod store;
mod transcript;
mod url;
mod writer;

pub use carrier::{
    CallDirection, CarrierProgress, CarrierStatus, StatusReport, UnknownCarrierStatus,
};
pub use error::StoreError;
pub use personas::Written;
pub use record::CallRecord;
pub use store::Store;
pub use transcript::{TranscriptTurn, TurnRole};
pub use url::{Backend, redact_url};
pub use writer::{FlushError, RecordWriter};
