//! Identifier newtypes. Carrier ids are opaque: SignalWire uses UUIDs where
//! Twilio uses `CA…`/`MZ…`, so only length and charset are checked.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Longest identifier accepted from the wire.
const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id was empty.
    #[error("identifier is empty")]
    Empty,
    /// The id was longer than [`MAX_ID_LEN`] bytes.
    #[error("identifier is longer than {MAX_ID_LEN} bytes")]
    TooLong,
    /// The id had whitespace, control or non-ASCII characters.
    #[error("identifier has characters other than printable ASCII")]
    BadCharacter,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong);
    }
    if !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IdError::BadCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an identifier.
            pub fn new(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                check_id(&raw)?;
                Ok(Self(raw))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(raw: String) -> Result<Self, IdError> {
                Self::new(raw)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A call's id: the carrier's call SID, or one voxgate makes for browser calls.
    CallSid
);
id_type!(
    /// A carrier media stream's id (Twilio `streamSid`).
    StreamSid
);
id_type!(
    /// A monitor session on `/events`, kept across reconnects.
    SessionId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_twilio_and_uuid_shapes() {
        assert!(CallSid::new("CA0123456789abcdef0123456789abcdef").is_ok());
        assert!(CallSid::new("6f1c1b1e-3a4b-4c5d-8e9f-0a1b2c3d4e5f").is_ok());
    }

    #[test]
    fn rejects_empty_long_and_odd_characters() {
        assert_eq!(CallSid::new(""), Err(IdError::Empty));
        assert_eq!(CallSid::new("x".repeat(129)), Err(IdError::TooLong));
        assert_eq!(CallSid::new("CA 1"), Err(IdError::BadCharacter));
        assert_eq!(CallSid::new("CA\u{e9}"), Err(IdError::BadCharacter));
    }

    #[test]
    fn deserializing_checks_the_id() {
        assert!(serde_json::from_str::<StreamSid>("\"\"").is_err());
        let sid: StreamSid = serde_json::from_str("\"MZ1\"").expect("valid id");
        assert_eq!(sid.as_str(), "MZ1");
    }
}
