//! Episodes of care: referral → waitlist → active → discharged.

use crate::ids::{ClientId, EpisodeId, PracticeId, UserId};
use crate::practice::FieldError;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where an episode of care stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EpisodeStatus {
    Referral,
    Waitlist,
    Active,
    Discharged,
}

impl EpisodeStatus {
    pub const ALL: [EpisodeStatus; 4] = [
        EpisodeStatus::Referral,
        EpisodeStatus::Waitlist,
        EpisodeStatus::Active,
        EpisodeStatus::Discharged,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EpisodeStatus::Referral => "referral",
            EpisodeStatus::Waitlist => "waitlist",
            EpisodeStatus::Active => "active",
            EpisodeStatus::Discharged => "discharged",
        }
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        EpisodeStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == value)
            .ok_or_else(|| {
                FieldError::new(
                    "status",
                    format!(
                        "unknown episode status '{}'",
                        value.chars().take(30).collect::<String>()
                    ),
                )
            })
    }

    /// The moves a practice may make. A referral may go straight to active
    /// (no wait) or be discharged (not taken on); a discharged episode is
    /// closed for good — returning clients start a new episode.
    pub fn can_move_to(self, next: EpisodeStatus) -> bool {
        use EpisodeStatus::*;
        matches!(
            (self, next),
            (Referral, Waitlist)
                | (Referral, Active)
                | (Referral, Discharged)
                | (Waitlist, Active)
                | (Waitlist, Discharged)
                | (Active, Discharged)
        )
    }
}

/// An episode of care for one client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Episode {
    pub id: EpisodeId,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub status: EpisodeStatus,
    pub primary_clinician: Option<UserId>,
    pub opened_at: DateTime<Utc>,
    pub status_changed_at: DateTime<Utc>,
}

/// A status change that the episode's lifecycle does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status: an episode cannot move from {from} to {to}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub to: &'static str,
}

impl Episode {
    pub fn open(practice_id: PracticeId, client_id: ClientId, now: DateTime<Utc>) -> Self {
        Self {
            id: EpisodeId::random(),
            practice_id,
            client_id,
            status: EpisodeStatus::Referral,
            primary_clinician: None,
            opened_at: now,
            status_changed_at: now,
        }
    }

    pub fn move_to(
        &mut self,
        next: EpisodeStatus,
        now: DateTime<Utc>,
    ) -> Result<(), InvalidTransition> {
        if !self.status.can_move_to(next) {
            return Err(InvalidTransition {
                from: self.status.as_str(),
                to: next.as_str(),
            });
        }
        self.status = next;
        self.status_changed_at = now;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn lifecycle_moves_forward_only() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut e = Episode::open(PracticeId::random(), ClientId::random(), t0);
        e.move_to(EpisodeStatus::Waitlist, t0).unwrap();
        e.move_to(EpisodeStatus::Active, t0).unwrap();
        let err = e.move_to(EpisodeStatus::Waitlist, t0).unwrap_err();
        assert_eq!((err.from, err.to), ("active", "waitlist"));
        e.move_to(EpisodeStatus::Discharged, t0).unwrap();
        for s in EpisodeStatus::ALL {
            assert!(!EpisodeStatus::Discharged.can_move_to(s));
            assert!(!s.can_move_to(s), "{s:?} to itself");
        }
    }
}
