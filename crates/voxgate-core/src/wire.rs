//! Errors for untrusted frames, shared by every carrier codec and the browser
//! protocol.
//!
//! Every variant is the peer's fault: voxgate never produces these for its own
//! mistakes. The messages say "peer" rather than a carrier's name because the
//! same type serves Twilio, compatible carriers and browsers; the shell's log
//! context says which peer it was.

use crate::ids::{IdError, StreamSid};

/// Why a frame from a peer was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The frame was not JSON, or not a JSON object. Holds serde's message,
    /// which gives the line and column.
    #[error("peer sent a frame that is not a JSON object: {0}")]
    Json(String),
    /// A required field was absent (or `null`).
    #[error("peer sent a frame without `{field}`")]
    MissingField {
        /// Dotted path of the field, as spelled on the wire.
        field: &'static str,
    },
    /// A field had the wrong JSON type.
    #[error("peer sent `{field}` that is not {expected}")]
    WrongType {
        /// Dotted path of the field, as spelled on the wire.
        field: &'static str,
        /// What the field should have been, e.g. "a string".
        expected: &'static str,
    },
    /// A field that carries bytes was not valid base64.
    #[error("peer sent `{field}` that is not valid base64")]
    Base64 {
        /// Dotted path of the field, as spelled on the wire.
        field: &'static str,
    },
    /// A numeric string was not an unsigned integer that fits the field.
    #[error("peer sent `{field}` as a string that is not an unsigned integer in range")]
    Number {
        /// Dotted path of the field, as spelled on the wire.
        field: &'static str,
    },
    /// An identifier field was empty, too long or had odd characters.
    ///
    /// The reason is in the message rather than in `Error::source`, so that
    /// a log line carries it and error chains do not print it twice.
    #[error("peer sent an invalid `{field}`: {reason}")]
    Id {
        /// Dotted path of the field, as spelled on the wire.
        field: &'static str,
        /// What was wrong with it.
        reason: IdError,
    },
    /// A well-formed event arrived when the protocol does not allow it.
    #[error("peer sent `{event}` {problem}")]
    OutOfOrder {
        /// The event's name as it came on the wire.
        event: String,
        /// Why it is out of order, e.g. "before `start`".
        problem: &'static str,
    },
    /// An event named a different stream from the one this connection carries.
    #[error("peer sent stream id {got} on a stream that started as {expected}")]
    StreamMismatch {
        /// The stream id the connection started with.
        expected: StreamSid,
        /// The stream id this event carried.
        got: StreamSid,
    },
}

impl WireError {
    /// Every label [`WireError::kind`] can return, so metrics can be
    /// registered up front and dashboards show zeroes rather than gaps.
    pub const KINDS: [&'static str; 5] = ["json", "field", "base64", "out_of_order", "stream_sid"];

    /// A stable, low-cardinality label for metrics.
    ///
    /// Bad numbers and bad ids count as "field": to an operator they are all
    /// "a field held the wrong thing", and fewer labels keep series down.
    pub fn kind(&self) -> &'static str {
        match self {
            WireError::Json(_) => "json",
            WireError::MissingField { .. }
            | WireError::WrongType { .. }
            | WireError::Number { .. }
            | WireError::Id { .. } => "field",
            WireError::Base64 { .. } => "base64",
            WireError::OutOfOrder { .. } => "out_of_order",
            WireError::StreamMismatch { .. } => "stream_sid",
        }
    }

    /// Whether the frame was well-formed but broke the stream's rules:
    /// it arrived at the wrong time or belongs to another stream. Shells
    /// close such a stream with a policy violation (1008) rather than an
    /// invalid-payload close (1007).
    pub fn breaks_stream_rules(&self) -> bool {
        matches!(
            self,
            WireError::OutOfOrder { .. } | WireError::StreamMismatch { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_listed_and_stable() {
        let sid = |s: &str| StreamSid::new(s).expect("valid id");
        let all = [
            WireError::Json("expected value at line 1 column 1".into()),
            WireError::MissingField { field: "streamSid" },
            WireError::WrongType {
                field: "media.chunk",
                expected: "a number",
            },
            WireError::Base64 {
                field: "media.payload",
            },
            WireError::Number {
                field: "sequenceNumber",
            },
            WireError::Id {
                field: "streamSid",
                reason: IdError::Empty,
            },
            WireError::OutOfOrder {
                event: "media".into(),
                problem: "before `start`",
            },
            WireError::StreamMismatch {
                expected: sid("MZ1"),
                got: sid("MZ2"),
            },
        ];
        for e in &all {
            assert!(WireError::KINDS.contains(&e.kind()), "{e:?}");
            assert!(e.to_string().starts_with("peer sent"), "{e}");
            assert_eq!(
                e.breaks_stream_rules(),
                matches!(e.kind(), "out_of_order" | "stream_sid")
            );
        }
        for k in WireError::KINDS {
            assert!(all.iter().any(|e| e.kind() == k), "no variant for {k}");
        }
    }

    #[test]
    fn messages_name_the_field() {
        let e = WireError::Id {
            field: "start.callSid",
            reason: IdError::BadCharacter,
        };
        assert_eq!(
            e.to_string(),
            "peer sent an invalid `start.callSid`: identifier has characters other than printable ASCII"
        );
    }
}
