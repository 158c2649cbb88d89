//! The carrier's side of a call record: which side placed the call, and the
//! status the carrier last reported for it (Twilio's call status callbacks).
//!
//! These columns are written apart from [`CallRecord`]: a call placed
//! through the API is recorded before any media flows, its status moves as
//! callbacks arrive, and the media stream's writes of the record
//! ([`Store::upsert_call`]) leave them alone. Callbacks may arrive late or
//! out of order, so a status only ever moves forward: see
//! [`CarrierStatus::may_follow`].
//!
//! [`CallRecord`]: crate::CallRecord

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use sqlx::Row;
use voxgate_core::ids::CallSid;

use crate::error::StoreError;
use crate::record::CallRecord;
use crate::store::Store;

/// Which side placed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallDirection {
    /// Someone called us.
    Inbound,
    /// We called someone (`POST /api/calls`).
    Outbound,
}

impl CallDirection {
    /// The stored and serialized name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallDirection::Inbound => "inbound",
            CallDirection::Outbound => "outbound",
        }
    }

    fn from_name(name: &str) -> Option<CallDirection> {
        match name {
            "inbound" => Some(CallDirection::Inbound),
            "outbound" => Some(CallDirection::Outbound),
            _ => None,
        }
    }
}

/// A call's status as the carrier reports it, in Twilio's vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CarrierStatus {
    /// Accepted by the carrier, not yet dialled.
    Queued,
    /// Handed on for dialling. Twilio's support pages list this state
    /// between queued and ringing, and callbacks for the `initiated` event
    /// may carry it.
    Initiated,
    /// The far end is ringing.
    Ringing,
    /// Answered and connected.
    InProgress,
    /// Answered, then ended normally.
    Completed,
    /// The far end was busy.
    Busy,
    /// Nobody answered.
    NoAnswer,
    /// The call could not be placed (e.g. a bad number).
    Failed,
    /// Ended while queued or ringing.
    Canceled,
}

impl CarrierStatus {
    /// Every status, in order of progress.
    pub const ALL: [CarrierStatus; 9] = [
        CarrierStatus::Queued,
        CarrierStatus::Initiated,
        CarrierStatus::Ringing,
        CarrierStatus::InProgress,
        CarrierStatus::Completed,
        CarrierStatus::Busy,
        CarrierStatus::NoAnswer,
        CarrierStatus::Failed,
        CarrierStatus::Canceled,
    ];

    /// The carrier's name for it, as stored and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            CarrierStatus::Queued => "queued",
            CarrierStatus::Initiated => "initiated",
            CarrierStatus::Ringing => "ringing",
            CarrierStatus::InProgress => "in-progress",
            CarrierStatus::Completed => "completed",
            CarrierStatus::Busy => "busy",
            CarrierStatus::NoAnswer => "no-answer",
            CarrierStatus::Failed => "failed",
            CarrierStatus::Canceled => "canceled",
        }
    }

    /// Whether the call is over: no status follows this one.
    pub fn is_final(self) -> bool {
        self.stage() == FINAL_STAGE
    }

    /// Whether a call now in `current` (`None`: no status yet) may move to
    /// this status. Only forward moves are taken: a late `ringing` after
    /// `in-progress` is stale, and nothing moves a finished call.
    pub fn may_follow(self, current: Option<CarrierStatus>) -> bool {
        current.is_none_or(|current| self.stage() > current.stage())
    }

    fn stage(self) -> u8 {
        match self {
            CarrierStatus::Queued => 0,
            CarrierStatus::Initiated => 1,
            CarrierStatus::Ringing => 2,
            CarrierStatus::InProgress => 3,
            CarrierStatus::Completed
            | CarrierStatus::Busy
            | CarrierStatus::NoAnswer
            | CarrierStatus::Failed
            | CarrierStatus::Canceled => FINAL_STAGE,
        }
    }

    /// SQL that holds when the row's stored status may move to `self`;
    /// [`CarrierStatus::may_follow`] as a condition on `calls`. The names
    /// are this enum's own constants, never input.
    fn may_follow_sql(self) -> String {
        let earlier: Vec<String> = CarrierStatus::ALL
            .into_iter()
            .filter(|earlier| self.may_follow(Some(*earlier)))
            .map(|earlier| format!("'{}'", earlier.as_str()))
            .collect();
        if earlier.is_empty() {
            "calls.carrier_status IS NULL".to_owned()
        } else {
            format!(
                "(calls.carrier_status IS NULL OR calls.carrier_status IN ({}))",
                earlier.join(", ")
            )
        }
    }
}

const FINAL_STAGE: u8 = 4;

impl fmt::Display for CarrierStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name the carrier does not use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown call status {0:?}")]
pub struct UnknownCarrierStatus(pub String);

impl FromStr for CarrierStatus {
    type Err = UnknownCarrierStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CarrierStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownCarrierStatus(s.to_owned()))
    }
}

/// The carrier's side of one call record. Serialized with absent fields
/// left out, to sit beside the record in API answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CarrierProgress {
    /// Which side placed the call, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<CallDirection>,
    /// The status the carrier last reported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_status: Option<CarrierStatus>,
    /// The call's length in whole seconds, as the carrier billed it; set
    /// when the call completes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carrier_duration_s: Option<i64>,
}

/// One status callback, as the store takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The call.
    pub call_sid: CallSid,
    /// Its new status.
    pub status: CarrierStatus,
    /// The call's length in seconds, when the carrier says (on completion).
    pub duration_s: Option<i64>,
    /// Caller as the carrier gave it; fills the record only where it has none.
    pub from: Option<String>,
    /// Called party, likewise.
    pub to: Option<String>,
    /// When the report arrived, in Unix epoch milliseconds: the record's
    /// start if the call has no record yet, its end if the status is final
    /// and the media stream set none.
    pub at_ms: i64,
}

impl Store {
    /// Records a call this server placed: `record`'s from, to, persona and
    /// start, direction outbound, carrier status `status`. A status report
    /// may have beaten it here; then the record keeps whichever status is
    /// further on, and fields already set are kept.
    pub async fn record_outbound_call(
        &self,
        record: &CallRecord,
        status: CarrierStatus,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO calls (call_sid, from_number, to_number, persona, started_at_ms, \
             direction, carrier_status) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (call_sid) DO UPDATE SET \
             direction = excluded.direction, \
             from_number = COALESCE(calls.from_number, excluded.from_number), \
             to_number = COALESCE(calls.to_number, excluded.to_number), \
             persona = COALESCE(calls.persona, excluded.persona), \
             carrier_status = CASE WHEN {} THEN excluded.carrier_status \
             ELSE calls.carrier_status END",
            status.may_follow_sql()
        );
        sqlx::query(&sql)
            .bind(record.call_sid.as_str())
            .bind(record.from.as_deref())
            .bind(record.to.as_deref())
            .bind(record.persona.as_deref())
            .bind(record.started_at_ms)
            .bind(CallDirection::Outbound.as_str())
            .bind(status.as_str())
            .execute(self.pool())
            .await
            .map_err(|err| StoreError::query("record outbound call", err))?;
        Ok(())
    }

    /// Applies a status callback. Returns `false`, changing nothing, when
    /// the report is stale: the stored status is as far on or further (see
    /// [`CarrierStatus::may_follow`]). A call with no record yet gets one.
    pub async fn report_carrier_status(&self, report: &StatusReport) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO calls (call_sid, from_number, to_number, started_at_ms, ended_at_ms, \
             carrier_status, carrier_duration_s) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (call_sid) DO UPDATE SET \
             carrier_status = excluded.carrier_status, \
             carrier_duration_s = COALESCE(excluded.carrier_duration_s, calls.carrier_duration_s), \
             ended_at_ms = COALESCE(calls.ended_at_ms, excluded.ended_at_ms), \
             from_number = COALESCE(calls.from_number, excluded.from_number), \
             to_number = COALESCE(calls.to_number, excluded.to_number) \
             WHERE {}",
            report.status.may_follow_sql()
        );
        let ended_at_ms = report.status.is_final().then_some(report.at_ms);
        let done = sqlx::query(&sql)
            .bind(report.call_sid.as_str())
            .bind(report.from.as_deref())
            .bind(report.to.as_deref())
            .bind(report.at_ms)
            .bind(ended_at_ms)
            .bind(report.status.as_str())
            .bind(report.duration_s)
            .execute(self.pool())
            .await
            .map_err(|err| StoreError::query("report carrier status", err))?;
        Ok(done.rows_affected() > 0)
    }

    /// The carrier's side of `call_sid`'s record, or `None` if there is no
    /// record.
    pub async fn carrier_progress(
        &self,
        call_sid: &CallSid,
    ) -> Result<Option<CarrierProgress>, StoreError> {
        let row = sqlx::query(
            "SELECT direction, carrier_status, carrier_duration_s FROM calls WHERE call_sid = $1",
        )
        .bind(call_sid.as_str())
        .fetch_optional(self.pool())
        .await
        .map_err(|err| StoreError::query("read carrier status", err))?;
        let Some(row) = row else {
            return Ok(None);
        };
        let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
            call_sid: call_sid.as_str().to_owned(),
            column,
            reason,
        };
        let direction: Option<String> = row
            .try_get("direction")
            .map_err(|err| corrupt("direction", err.to_string()))?;
        let direction = direction
            .map(|name| {
                CallDirection::from_name(&name)
                    .ok_or_else(|| corrupt("direction", format!("unknown direction {name:?}")))
            })
            .transpose()?;
        let status: Option<String> = row
            .try_get("carrier_status")
            .map_err(|err| corrupt("carrier_status", err.to_string()))?;
        let carrier_status = status
            .map(|name| name.parse::<CarrierStatus>())
            .transpose()
            .map_err(|err| corrupt("carrier_status", err.to_string()))?;
        let carrier_duration_s = row
            .try_get("carrier_duration_s")
            .map_err(|err| corrupt("carrier_duration_s", err.to_string()))?;
        Ok(Some(CarrierProgress {
            direction,
            carrier_status,
            carrier_duration_s,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for status in CarrierStatus::ALL {
            assert_eq!(status.as_str().parse::<CarrierStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_string(&status).expect("serialize"),
                format!("\"{status}\"")
            );
        }
        assert!("in_progress".parse::<CarrierStatus>().is_err());
        assert!("Completed".parse::<CarrierStatus>().is_err());
        assert!("".parse::<CarrierStatus>().is_err());
    }

    #[test]
    fn statuses_only_move_forward() {
        use CarrierStatus::*;
        assert!(Queued.may_follow(None));
        assert!(Completed.may_follow(None));
        assert!(Ringing.may_follow(Some(Queued)));
        assert!(InProgress.may_follow(Some(Ringing)));
        assert!(Completed.may_follow(Some(InProgress)));
        assert!(Busy.may_follow(Some(Ringing)));
        assert!(!Ringing.may_follow(Some(InProgress)), "late ringing");
        assert!(!Ringing.may_follow(Some(Ringing)), "repeat");
        assert!(!Queued.may_follow(Some(Initiated)));
        for done in CarrierStatus::ALL.into_iter().filter(|s| s.is_final()) {
            for next in CarrierStatus::ALL {
                assert!(!next.may_follow(Some(done)), "{next} after {done}");
            }
        }
    }

    #[test]
    fn the_sql_condition_lists_exactly_the_earlier_statuses() {
        assert_eq!(
            CarrierStatus::Queued.may_follow_sql(),
            "calls.carrier_status IS NULL"
        );
        assert_eq!(
            CarrierStatus::Ringing.may_follow_sql(),
            "(calls.carrier_status IS NULL OR calls.carrier_status IN ('queued', 'initiated'))"
        );
        assert_eq!(
            CarrierStatus::Failed.may_follow_sql(),
            "(calls.carrier_status IS NULL OR calls.carrier_status IN \
             ('queued', 'initiated', 'ringing', 'in-progress'))"
        );
    }
}
