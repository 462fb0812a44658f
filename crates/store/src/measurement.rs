//! Storage of the measurement engine: measure schedules, the submission pipeline's durable
//! commit (submission + episode measure state + risk flags + clinician tasks in one
//! transaction), risk-flag closure, clinician tasks and versioned expected-recovery curves.
//!
//! The decisions are made by [`tapestry_domain::ingest::decide`]; the store only orchestrates:
//! it locks the episodes, reads their state, asks the domain, writes, commits.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::change::ReliableChange;
use tapestry_domain::ids::{EpisodeId, PracticeId, RecordId, ResponseId, TaskId, UserId};
use tapestry_domain::ingest::{
    ClinicianTask, EpisodeMeasure, IngestError, IngestRequest, StoredRiskFlag, TrackRecord,
};
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::measure_schedule::MeasureSchedule;
use tapestry_domain::trajectory::{ExpectedRecoveryCurve, ReferenceEpisode};

/// Settings of the pipeline that are not in the instrument definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestSettings {
    /// A fitted expected-recovery curve is used only when fitted on at least this many episodes
    /// (the trajectory module's `EmpiricalConfig::min_reference_episodes`).
    pub min_curve_episodes: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings {
            min_curve_episodes: tapestry_domain::trajectory::EmpiricalConfig::default()
                .min_reference_episodes,
        }
    }
}

/// What the caller learns once a submission is durably committed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IngestReceipt {
    pub submission_id: ResponseId,
    /// False when an earlier request with the same `Idempotency-Key` and the same answers had
    /// stored it (the same submission, flags and tasks are returned).
    pub new: bool,
    pub total: Option<f64>,
    pub session: u32,
    /// Reliable change from the episode baseline (absent on a replay).
    pub reliable_change: Option<ReliableChange>,
    /// The on-track verdict after this submission (absent on a replay).
    pub track: Option<TrackRecord>,
    pub flags: Vec<RecordId>,
    pub tasks: Vec<TaskId>,
}

/// The outcome of one request in a batch: a receipt, or why nothing was stored for it.
pub type IngestResult = Result<IngestReceipt, IngestError>;

/// A fitted curve as stored: the practice's numbered version of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredCurve {
    pub practice_id: PracticeId,
    pub version: u32,
    pub fitted_at: DateTime<Utc>,
    pub curve: ExpectedRecoveryCurve,
}

#[async_trait]
pub trait MeasurementStore {
    /// Assigns (or re-assigns) an instrument to an episode of the same practice.
    async fn set_measure_schedule(&self, schedule: &MeasureSchedule) -> StoreResult<()>;
    async fn measure_schedules(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
    ) -> StoreResult<Vec<MeasureSchedule>>;
    async fn remove_measure_schedule(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
        instrument: &str,
    ) -> StoreResult<()>;

    /// The submission pipeline. All requests are decided and committed in ONE transaction
    /// (group commit when there are many): for each, the submission, the episode's measure
    /// state, its risk flags and their clinician tasks. A request that fails validation, names
    /// an unknown episode or reuses an `Idempotency-Key` for different answers gets an error and
    /// stores nothing; the others are stored. A database failure stores nothing at all.
    async fn ingest(
        &self,
        registry: &InstrumentRegistry,
        settings: &IngestSettings,
        requests: &[IngestRequest],
    ) -> StoreResult<Vec<IngestResult>>;

    async fn episode_measures(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
    ) -> StoreResult<Vec<EpisodeMeasure>>;
    /// Episode measures whose latest verdict is not on track (or deteriorated).
    async fn not_on_track(&self, practice: PracticeId) -> StoreResult<Vec<EpisodeMeasure>>;

    async fn risk_flags_for_episode(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
    ) -> StoreResult<Vec<StoredRiskFlag>>;
    async fn open_risk_flags(&self, practice: PracticeId) -> StoreResult<Vec<StoredRiskFlag>>;
    /// Closes an open flag. Only a clinician, supervisor or practice owner of the same practice
    /// may, and only with a non-empty note (`NotFound`/`Conflict` otherwise); nothing else ever
    /// closes a flag.
    async fn close_risk_flag(
        &self,
        practice: PracticeId,
        flag: RecordId,
        by: UserId,
        note: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<StoredRiskFlag>;

    async fn open_tasks(&self, practice: PracticeId) -> StoreResult<Vec<ClinicianTask>>;
    async fn tasks_for_episode(
        &self,
        practice: PracticeId,
        episode: EpisodeId,
    ) -> StoreResult<Vec<ClinicianTask>>;
    async fn complete_task(
        &self,
        practice: PracticeId,
        task: TaskId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Stores a newly fitted curve as the practice's next version for its instrument and
    /// returns it (its `curve.version` becomes `<instrument>-v<n>`).
    async fn insert_recovery_curve(
        &self,
        practice: PracticeId,
        curve: &ExpectedRecoveryCurve,
        at: DateTime<Utc>,
    ) -> StoreResult<StoredCurve>;
    async fn latest_recovery_curve(
        &self,
        practice: PracticeId,
        instrument: &str,
    ) -> StoreResult<Option<StoredCurve>>;
    /// Completed (discharged) episodes' complete totals of `instrument`, in session order:
    /// the reference set for expected-recovery curves.
    async fn reference_episodes(
        &self,
        practice: PracticeId,
        instrument: &str,
    ) -> StoreResult<Vec<ReferenceEpisode>>;
}

/// Opens a SQLite store with an explicit `synchronous` setting, for the B3 benchmark's WAL
/// NORMAL runs. The product always uses [`crate::SqliteStore::open`] (WAL, FULL).
pub async fn open_sqlite_for_benchmark(
    path: &std::path::Path,
    synchronous_full: bool,
) -> StoreResult<crate::SqliteStore> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if synchronous_full {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .foreign_keys(true)
        .busy_timeout(std::time::Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .min_connections(1)
        .connect_with(crate::sqlite::tuned(options))
        .await?;
    Ok(crate::SqliteStore::from_pool(pool))
}
