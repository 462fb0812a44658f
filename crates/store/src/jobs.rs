//! The durable, idempotent job queue. A job's key is unique within its
//! practice, so enqueueing the same reminder twice stores one job. Workers
//! claim jobs atomically (PostgreSQL `FOR UPDATE SKIP LOCKED`; SQLite a
//! single `UPDATE … RETURNING`, which runs under SQLite's one-writer lock); a
//! claim that is not completed within its lease (the worker crashed) is
//! claimed again. Delivery is at-least-once: a worker that crashes after
//! doing the work but before completing it leaves the job to be retried.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use tapestry_domain::ids::PracticeId;
use tapestry_domain::schedule::JobId;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// A job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub practice_id: PracticeId,
    /// Unique per practice, e.g. `reminder:<appointment>:24h`.
    pub key: String,
    pub kind: String,
    /// JSON.
    pub payload: String,
    pub run_after: DateTime<Utc>,
    pub max_attempts: u32,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: JobId,
    pub practice_id: PracticeId,
    pub key: String,
    pub kind: String,
    pub payload: String,
    pub state: JobState,
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: DateTime<Utc>,
    pub claimed_by: Option<String>,
    pub claimed_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// Whether an enqueue stored a new job or found one with the same key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    New(JobId),
    AlreadyQueued(JobId),
}

impl Enqueued {
    pub fn id(self) -> JobId {
        match self {
            Self::New(id) | Self::AlreadyQueued(id) => id,
        }
    }
}

/// The delay before retry number `attempts` (1-based): 30 s doubling,
/// at most one hour.
pub fn backoff(attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(7);
    Duration::seconds((30i64 << exp).min(3600))
}

#[async_trait]
pub trait JobStore {
    /// Stores the job unless one with the same key exists in the practice.
    async fn enqueue(&self, job: &NewJob, at: DateTime<Utc>) -> StoreResult<Enqueued>;
    /// Claims the next ready job for `worker`: a queued job whose time has
    /// come, or a running job whose claim is older than `lease` (its worker
    /// is presumed dead). Increments `attempts`. Running jobs whose lease
    /// expired on their last attempt are marked failed instead.
    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> StoreResult<Option<Job>>;
    /// Marks a job done; fails with `NotFound` if `worker` no longer holds it.
    async fn complete_job(
        &self,
        practice: PracticeId,
        id: JobId,
        worker: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Records a failed attempt: queued again after [`backoff`], or failed
    /// for good once `max_attempts` is reached. Returns the new state.
    async fn fail_job(
        &self,
        practice: PracticeId,
        id: JobId,
        worker: &str,
        error: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<JobState>;
    async fn job(&self, practice: PracticeId, id: JobId) -> StoreResult<Option<Job>>;
    /// How many of the practice's jobs are in `state`.
    async fn count_jobs(&self, practice: PracticeId, state: JobState) -> StoreResult<u64>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::seconds(30));
        assert_eq!(backoff(1), Duration::seconds(30));
        assert_eq!(backoff(2), Duration::seconds(60));
        assert_eq!(backoff(5), Duration::seconds(480));
        assert_eq!(backoff(50), Duration::seconds(3600));
        assert_eq!(backoff(u32::MAX), Duration::seconds(3600));
    }
}
