//! The care relationship: the only ordinary way a clinician reaches a client's record.

use crate::ids::{CareRelationshipId, ClientId, PracticeId, UserId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// How a clinician is involved with a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CareRole {
    Treating,
    Supervising,
}

impl CareRole {
    pub fn as_str(self) -> &'static str {
        match self {
            CareRole::Treating => "treating",
            CareRole::Supervising => "supervising",
        }
    }
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "treating" => Some(CareRole::Treating),
            "supervising" => Some(CareRole::Supervising),
            _ => None,
        }
    }
}

/// A clinician's involvement with a client, from `started_at` until `ended_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CareRelationship {
    pub id: CareRelationshipId,
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub client_id: ClientId,
    pub role: CareRole,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
}

impl CareRelationship {
    pub fn begin(
        practice_id: PracticeId,
        clinician: UserId,
        client_id: ClientId,
        role: CareRole,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            id: CareRelationshipId::random(),
            practice_id,
            clinician,
            client_id,
            role,
            started_at: now,
            ended_at: None,
        }
    }

    pub fn is_current(&self, now: DateTime<Utc>) -> bool {
        self.started_at <= now && self.ended_at.is_none_or(|end| now < end)
    }
}
