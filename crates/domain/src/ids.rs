//! Identifiers: random, unguessable, never sequential (UUID v4, 122 random bits).
//! Each aggregate has its own newtype so that a client id can never be passed
//! where a practice id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// An id string that is not a well-formed identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a valid identifier")]
pub struct InvalidId(pub String);

macro_rules! id_type {
    ($($(#[$doc:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh random id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }
            pub fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the canonical hyphenated form is accepted at the edge.
                if s.len() != 36 {
                    return Err(InvalidId(truncate(s)));
                }
                Uuid::parse_str(s).map(Self).map_err(|_| InvalidId(truncate(s)))
            }
        }
    )+};
}

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
}

id_type!(
    /// A practice: the tenant every record belongs to.
    PracticeId,
    /// A person who signs in (any role).
    UserId,
    /// A client record (the person receiving care).
    ClientId,
    /// An episode of care.
    EpisodeId,
    /// A clinician's professional profile.
    ClinicianId,
    /// A care relationship between a clinician and a client.
    CareRelationshipId,
    /// A questionnaire submission.
    ResponseId,
    /// A task for a clinician (e.g. a risk review).
    TaskId,
    /// Any other record.
    RecordId,
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_random_and_round_trip() {
        let a = ClientId::random();
        let b = ClientId::random();
        assert_ne!(a, b);
        let parsed: ClientId = a.to_string().parse().unwrap();
        assert_eq!(parsed, a);
        assert_eq!(a.as_uuid().get_version_num(), 4);
    }

    #[test]
    fn malformed_ids_are_rejected() {
        for bad in [
            "",
            "1",
            "../etc/passwd",
            "00000000000000000000000000000000",
            "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz",
        ] {
            assert!(bad.parse::<ClientId>().is_err(), "{bad} accepted");
        }
        let huge = "a".repeat(100_000);
        let err = huge.parse::<ClientId>().unwrap_err();
        assert!(err.0.len() <= 40);
    }
}
