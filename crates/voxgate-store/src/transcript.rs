//! Transcript turns: what the caller and the agent said on a call, turn by
//! turn, with timings on the call's own timeline.

use std::fmt;

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use voxgate_core::engine::Role;
use voxgate_core::ids::CallSid;

use crate::error::StoreError;
use crate::store::Store;

/// Who spoke a turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TurnRole {
    /// The caller, as transcribed.
    User,
    /// The agent, as spoken.
    Assistant,
}

impl TurnRole {
    /// The stored and serialized name: `user` or `assistant`.
    pub fn as_str(self) -> &'static str {
        match self {
            TurnRole::User => "user",
            TurnRole::Assistant => "assistant",
        }
    }

    /// The role named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<TurnRole> {
        match name {
            "user" => Some(TurnRole::User),
            "assistant" => Some(TurnRole::Assistant),
            _ => None,
        }
    }
}

impl fmt::Display for TurnRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<TurnRole> for Role {
    fn from(role: TurnRole) -> Role {
        match role {
            TurnRole::User => Role::User,
            TurnRole::Assistant => Role::Assistant,
        }
    }
}

/// One turn of a call's transcript.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TranscriptTurn {
    /// The call.
    pub call_sid: CallSid,
    /// The turn's number within the call, from 0; with `call_sid`, the key.
    pub seq: u32,
    /// Who spoke.
    pub role: TurnRole,
    /// What was said: the caller's final transcript, or the agent's words
    /// as far as the caller heard them.
    pub text: String,
    /// When the turn started, in milliseconds from the start of the call
    /// (the recording's timeline).
    pub started_ms: i64,
    /// When the turn ended, in milliseconds from the start of the call.
    pub ended_ms: i64,
    /// Whether the caller cut the agent off (barge-in) during this turn.
    pub interrupted: bool,
}

const COLUMNS: &str = "call_sid, seq, role, text, started_ms, ended_ms, interrupted";

impl Store {
    /// Stores `turn`. Writing a turn again (same call and `seq`) replaces
    /// it, so a retried write never fails or duplicates.
    pub async fn append_transcript_turn(&self, turn: &TranscriptTurn) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO transcript_turns ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (call_sid, seq) DO UPDATE SET \
             role = excluded.role, text = excluded.text, started_ms = excluded.started_ms, \
             ended_ms = excluded.ended_ms, interrupted = excluded.interrupted"
        );
        sqlx::query(&sql)
            .bind(turn.call_sid.as_str())
            .bind(i64::from(turn.seq))
            .bind(turn.role.as_str())
            .bind(turn.text.as_str())
            .bind(turn.started_ms)
            .bind(turn.ended_ms)
            .bind(i64::from(turn.interrupted))
            .execute(self.pool())
            .await
            .map_err(|err| StoreError::query("append transcript turn", err))?;
        Ok(())
    }

    /// Every stored turn of `call_sid`, in order; empty for an unknown call.
    pub async fn transcript(&self, call_sid: &CallSid) -> Result<Vec<TranscriptTurn>, StoreError> {
        let sql =
            format!("SELECT {COLUMNS} FROM transcript_turns WHERE call_sid = $1 ORDER BY seq");
        let rows = sqlx::query(&sql)
            .bind(call_sid.as_str())
            .fetch_all(self.pool())
            .await
            .map_err(|err| StoreError::query("read transcript", err))?;
        rows.iter()
            .map(|row| turn_from_row(call_sid, row))
            .collect()
    }
}

fn turn_from_row(call_sid: &CallSid, row: &AnyRow) -> Result<TranscriptTurn, StoreError> {
    let corrupt = |column: &'static str, reason: String| StoreError::Corrupt {
        call_sid: call_sid.as_str().to_owned(),
        column,
        reason,
    };
    let get_err = |column: &'static str| move |err: sqlx::Error| corrupt(column, err.to_string());
    let seq: i64 = row.try_get("seq").map_err(get_err("seq"))?;
    let seq = u32::try_from(seq).map_err(|_| corrupt("seq", format!("{seq} is out of range")))?;
    let role: String = row.try_get("role").map_err(get_err("role"))?;
    let role = TurnRole::from_name(&role)
        .ok_or_else(|| corrupt("role", format!("unknown role {role:?}")))?;
    let interrupted: i64 = row.try_get("interrupted").map_err(get_err("interrupted"))?;
    let interrupted = match interrupted {
        0 => false,
        1 => true,
        other => return Err(corrupt("interrupted", format!("{other} is not 0 or 1"))),
    };
    Ok(TranscriptTurn {
        call_sid: call_sid.clone(),
        seq,
        role,
        text: row.try_get("text").map_err(get_err("text"))?,
        started_ms: row.try_get("started_ms").map_err(get_err("started_ms"))?,
        ended_ms: row.try_get("ended_ms").map_err(get_err("ended_ms"))?,
        interrupted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_by_name() {
        for role in [TurnRole::User, TurnRole::Assistant] {
            assert_eq!(TurnRole::from_name(role.as_str()), Some(role));
            assert_eq!(
                serde_json::to_value(role).expect("serializes"),
                serde_json::json!(role.as_str())
            );
        }
        assert_eq!(TurnRole::from_name("system"), None);
        assert_eq!(Role::from(TurnRole::Assistant), Role::Assistant);
    }
}
