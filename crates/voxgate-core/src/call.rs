//! How a call ended: one vocabulary shared by records, events and metrics.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a call ended, as stored in its record and counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Disposition {
    /// The carrier or the caller ended the call normally (`stop`, browser hang-up).
    Completed,
    /// voxgate ended the call on request (a monitor's `hangup`).
    Hangup,
    /// The carrier socket went away without a `stop`.
    Dropped,
    /// Nothing arrived from the carrier for the idle timeout.
    Timeout,
    /// The peer broke the protocol, or something failed inside voxgate.
    Error,
    /// The server was shutting down and the drain deadline passed.
    Shutdown,
    /// The agent transferred the call to a person.
    Transferred,
}

impl Disposition {
    /// Every disposition, for exhaustive metrics and tests.
    pub const ALL: [Disposition; 7] = [
        Disposition::Completed,
        Disposition::Hangup,
        Disposition::Dropped,
        Disposition::Timeout,
        Disposition::Error,
        Disposition::Shutdown,
        Disposition::Transferred,
    ];

    /// The stable lower-case name used on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Completed => "completed",
            Disposition::Hangup => "hangup",
            Disposition::Dropped => "dropped",
            Disposition::Timeout => "timeout",
            Disposition::Error => "error",
            Disposition::Shutdown => "shutdown",
            Disposition::Transferred => "transferred",
        }
    }
}

impl fmt::Display for Disposition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A disposition name that voxgate does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown disposition {0:?}")]
pub struct UnknownDisposition(pub String);

impl FromStr for Disposition {
    type Err = UnknownDisposition;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Disposition::ALL
            .into_iter()
            .find(|d| d.as_str() == s)
            .ok_or_else(|| UnknownDisposition(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in Disposition::ALL {
            assert_eq!(d.as_str().parse::<Disposition>(), Ok(d));
            assert_eq!(
                serde_json::to_string(&d).expect("serialize"),
                format!("\"{d}\"")
            );
        }
        assert!("busy".parse::<Disposition>().is_err());
    }
}
