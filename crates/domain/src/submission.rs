//! A completed questionnaire as stored: the raw answers always, the score as
//! computed by the definition version in force, so it can be recomputed.

use crate::ids::{ClientId, EpisodeId, PracticeId, ResponseId};
use crate::scoring::Answer;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// One questionnaire submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Submission {
    pub id: ResponseId,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub episode_id: EpisodeId,
    /// Instrument id, e.g. `phq9`.
    pub instrument: String,
    pub instrument_version: String,
    /// Raw answers in item order, exactly as given (missing and "not
    /// applicable" included).
    pub answers: Vec<Answer>,
    /// The total at the time of scoring; `None` when incomplete.
    pub total: Option<f64>,
    /// Session number within the episode (1 = intake).
    pub session: u32,
    pub submitted_at: DateTime<Utc>,
    /// Makes retries safe: the same key in the same practice stores once.
    pub idempotency_key: Option<String>,
}

/// Seconds in a week: the width of the time buckets the store files submissions under.
pub const WEEK_SECONDS: i64 = 7 * 24 * 3600;

impl Submission {
    /// Whole weeks since 1970-01-01T00:00Z of `submitted_at`: the leading key of the store's
    /// per-episode index (migration 0009), so that new submissions land at the right edge of
    /// the index (the current week) instead of on a random page per episode.
    pub fn week(&self) -> i64 {
        week_of(self.submitted_at)
    }
}

/// Whole weeks since 1970-01-01T00:00Z (rounded down, also before 1970).
pub fn week_of(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(WEEK_SECONDS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn weeks_count_from_the_epoch_and_round_down() {
        let epoch = Utc.timestamp_opt(0, 0).unwrap();
        assert_eq!(week_of(epoch), 0);
        assert_eq!(
            week_of(epoch + chrono::Duration::seconds(WEEK_SECONDS - 1)),
            0
        );
        assert_eq!(week_of(epoch + chrono::Duration::seconds(WEEK_SECONDS)), 1);
        assert_eq!(week_of(epoch - chrono::Duration::seconds(1)), -1);
        // 2026-01-05 09:00 UTC is 20,458 days after the epoch: week 2922.
        let at = Utc.with_ymd_and_hms(2026, 1, 5, 9, 0, 0).unwrap();
        assert_eq!(week_of(at), 20_458 / 7);
    }
}
