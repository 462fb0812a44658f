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
