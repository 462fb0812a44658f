//! Matching storage: clinicians' matching profiles, clients' match requests
//! and the choices offered to them, accepted matches (a clinician's places,
//! never exceeded even under concurrent sign-ups, enforced by the database),
//! switches with the reason asked, and batch assignment runs with each
//! assignment's explanation.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::ids::{ClientId, PracticeId, TaskId, UserId};
use tapestry_domain::ingest::ClinicianTask;
use tapestry_domain::matching::instant::{ClientRequest, MatchResult};
use tapestry_domain::matching::profile::ClinicianProfile;
use uuid::Uuid;

/// The conflict returned when a clinician has no free place left.
pub const NO_FREE_PLACE: &str = "clinician has no free place";
/// The conflict returned when a client who already has a clinician accepts
/// another without saying why they switch.
pub const SWITCH_NEEDS_REASON: &str = "client already has a clinician; a switch needs a reason";

/// The conflict returned when a waitlist task is closed without a note.
pub const TASK_NOTE_REQUIRED: &str = "note: a note is required to close a waitlist task";
/// The conflict returned when a waitlist task is closed twice.
pub const TASK_ALREADY_CLOSED: &str = "task: already closed";

/// A clinician's stored matching profile. The profile was validated with
/// `ClinicianProfile::validate` before storing; its `capacity.caseload_limit`
/// and `capacity.new_clients_per_week` are the limits the database enforces
/// when a match is accepted (`current_load` and `new_clients_this_week` are
/// recomputed from accepted matches on read).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMatchingProfile {
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub profile: ClinicianProfile,
    pub updated_at: DateTime<Utc>,
}

/// A client's latest match request.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMatchRequest {
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub request: ClientRequest,
    pub created_at: DateTime<Utc>,
}

/// The choices offered to a client (the explained top list and what could
/// not be met), kept so the client's choice can be checked against them.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOffer {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub result: MatchResult,
    pub created_at: DateTime<Utc>,
}

/// Who chose the match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchSource {
    /// The client chose from the offered choices.
    Client,
    /// An intake coordinator chose for the client.
    Coordinator,
    /// A batch assignment run.
    Batch,
}

impl MatchSource {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchSource::Client => "client",
            MatchSource::Coordinator => "coordinator",
            MatchSource::Batch => "batch",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "client" => Some(MatchSource::Client),
            "coordinator" => Some(MatchSource::Coordinator),
            "batch" => Some(MatchSource::Batch),
            _ => None,
        }
    }
}

/// An accepted match: the client is with this clinician until it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicianMatch {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub clinician: UserId,
    pub score: i64,
    /// The plain-language reasons shown when it was chosen.
    pub reasons: Vec<String>,
    pub source: MatchSource,
    pub accepted_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Why the client switched away (asked at the switch).
    pub end_reason: Option<String>,
}

/// A batch assignment run and its explained result (JSON: one entry per
/// waiting client with the clinician or null and the reasons).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchRun {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub run_by: UserId,
    pub clients: i64,
    pub assigned: i64,
    pub total_score: i64,
    pub result: serde_json::Value,
    pub created_at: DateTime<Utc>,
}

#[async_trait]
pub trait MatchingStore {
    /// Creates or replaces a clinician's matching profile. The caller has
    /// validated it; negative limits are refused by the database as well.
    async fn put_matching_profile(&self, p: &StoredMatchingProfile) -> StoreResult<()>;
    /// The clinician's profile, with current load and this week's new
    /// clients recomputed from accepted matches (`week_start` on).
    async fn matching_profile(
        &self,
        practice: PracticeId,
        clinician: UserId,
        week_start: DateTime<Utc>,
    ) -> StoreResult<Option<StoredMatchingProfile>>;
    /// Every profile of the practice (by clinician id), loads recomputed.
    async fn matching_profiles(
        &self,
        practice: PracticeId,
        week_start: DateTime<Utc>,
    ) -> StoreResult<Vec<StoredMatchingProfile>>;

    /// Stores (replacing) the client's match request.
    async fn put_match_request(&self, r: &StoredMatchRequest) -> StoreResult<()>;
    async fn match_request(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Option<StoredMatchRequest>>;

    /// Every client's latest request in the practice, oldest first.
    async fn match_requests(&self, practice: PracticeId) -> StoreResult<Vec<StoredMatchRequest>>;

    /// Stores the choices offered to a client.
    async fn insert_match_offer(&self, o: &MatchOffer) -> StoreResult<()>;
    /// The client's latest offer.
    async fn latest_match_offer(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Option<MatchOffer>>;

    /// Accepts a match, checking the clinician's places inside one
    /// transaction that holds the clinician's capacity row (PostgreSQL:
    /// `SELECT … FOR UPDATE` on the profile row; SQLite: `BEGIN IMMEDIATE`),
    /// so concurrent acceptances never exceed the caseload limit nor the new
    /// clients per week (counted from `week_start`). Fails with
    /// `Conflict(NO_FREE_PLACE)` when full, `NotFound` without a profile,
    /// and `Conflict(SWITCH_NEEDS_REASON)` when the client has a current
    /// clinician and no `switch_reason` is given; with a reason, the current
    /// match ends with it in the same transaction.
    async fn accept_match(
        &self,
        m: &ClinicianMatch,
        week_start: DateTime<Utc>,
        switch_reason: Option<&str>,
    ) -> StoreResult<()>;
    /// The client's current match.
    async fn current_match(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Option<ClinicianMatch>>;
    /// Every match of the client, newest first (the current one first among
    /// matches accepted at the same time; switches included).
    async fn matches_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<ClinicianMatch>>;

    /// Stores a batch run.
    async fn insert_match_run(&self, run: &MatchRun) -> StoreResult<()>;
    /// The practice's runs, newest first, at most `limit`.
    async fn match_runs(&self, practice: PracticeId, limit: u32) -> StoreResult<Vec<MatchRun>>;

    /// Opens a task for the intake team (`TaskKind::is_intake_team`) unless
    /// its signal already has one, open or closed: one `WaitlistRisk` task per
    /// risk flag (which it must name: each new risk answer of a waiting client
    /// is a new task) and one `WaitlistDeterioration` task per episode. Unique
    /// indexes hold this, so concurrent or repeated watch runs add nothing.
    /// Returns whether it is new. `Conflict` for a clinician's task kind or a
    /// risk task without its flag; `NotFound` when the episode is not the
    /// client's in this practice or the flag is not the episode's.
    async fn open_waitlist_task(&self, task: &ClinicianTask) -> StoreResult<bool>;
    /// Closes an open intake-team task with the closer's note (sealed at
    /// rest). `closed_by` must be an active admin or owner of the practice.
    /// `Conflict(TASK_NOTE_REQUIRED)` for an empty note,
    /// `Conflict(TASK_ALREADY_CLOSED)` twice; another practice's task, a
    /// clinician's task or an unknown id is `NotFound`. Nothing changes on
    /// any error.
    async fn close_waitlist_task(
        &self,
        practice: PracticeId,
        task: TaskId,
        closed_by: UserId,
        note: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<ClinicianTask>;
    /// Who closed an intake-team task and their note (opened from the vault).
    async fn waitlist_task_closure(
        &self,
        practice: PracticeId,
        task: TaskId,
    ) -> StoreResult<Option<(UserId, String)>>;
}
