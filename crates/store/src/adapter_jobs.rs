//! The job-queue adapter body, shared by both backends. `$lock` is appended
//! to the claim's inner SELECT: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so
//! concurrent workers skip each other's rows; empty on SQLite, where the
//! whole `UPDATE … RETURNING` runs under the single write lock.

macro_rules! jobs_adapter {
    ($store:ident, $db:ty, $row:ty, $lock:literal) => {
        mod jobs_adapter {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::jobs::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Duration, Utc};
            use sqlx::Row as _;
            use tapestry_domain::ids::PracticeId;
            use tapestry_domain::schedule::JobId;

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn job_from(row: &$row) -> StoreResult<Job> {
                let state: String = row.try_get("state")?;
                let attempts: i64 = row.try_get("attempts")?;
                let max_attempts: i64 = row.try_get("max_attempts")?;
                Ok(Job {
                    id: JobId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    key: row.try_get("job_key")?,
                    kind: row.try_get("kind")?,
                    payload: row.try_get("payload")?,
                    state: JobState::parse(&state).ok_or_else(|| corrupt("jobs.state", &state))?,
                    attempts: u32::try_from(attempts).map_err(|e| corrupt("jobs.attempts", e))?,
                    max_attempts: u32::try_from(max_attempts).map_err(|e| corrupt("jobs.max_attempts", e))?,
                    run_after: row.try_get("run_after")?,
                    claimed_by: row.try_get("claimed_by")?,
                    claimed_at: row.try_get("claimed_at")?,
                    last_error: row.try_get("last_error")?,
                    created_at: row.try_get("created_at")?,
                })
            }

            /// Error texts are kept short and free of payload content.
            fn bounded(error: &str) -> String {
                error.chars().take(500).collect()
            }

            #[async_trait]
            impl JobStore for $store {
                async fn enqueue(&self, job: &NewJob, at: DateTime<Utc>) -> StoreResult<Enqueued> {
                    if job.key.is_empty() || job.key.len() > 200 {
                        return Err(StoreError::Conflict("job key must be 1..=200 bytes"));
                    }
                    let id = JobId::random();
                    let done = sqlx::query("INSERT INTO jobs (id, practice_id, job_key, kind, payload, state, attempts, max_attempts, run_after, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,'queued',0,$6,$7,$8,$8) ON CONFLICT (practice_id, job_key) DO NOTHING")
                        .bind(id.as_uuid())
                        .bind(job.practice_id.as_uuid())
                        .bind(&job.key)
                        .bind(&job.kind)
                        .bind(&job.payload)
                        .bind(i64::from(job.max_attempts.max(1)))
                        .bind(job.run_after)
                        .bind(at)
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() == 1 {
                        return Ok(Enqueued::New(id));
                    }
                    let row = sqlx::query("SELECT id FROM jobs WHERE practice_id = $1 AND job_key = $2")
                        .bind(job.practice_id.as_uuid())
                        .bind(&job.key)
                        .fetch_one(self.pool())
                        .await?;
                    Ok(Enqueued::AlreadyQueued(JobId::from_uuid(row.try_get("id")?)))
                }

                async fn claim_job(&self, worker: &str, now: DateTime<Utc>, lease: Duration) -> StoreResult<Option<Job>> {
                    let stale = now - lease;
                    sqlx::query("UPDATE jobs SET state = 'failed', last_error = 'claim expired on the last attempt', updated_at = $1 WHERE state = 'running' AND claimed_at <= $2 AND attempts >= max_attempts")
                        .bind(now)
                        .bind(stale)
                        .execute(self.pool())
                        .await?;
                    let row = sqlx::query(concat!(
                        "UPDATE jobs SET state = 'running', attempts = attempts + 1, claimed_by = $1, claimed_at = $2, updated_at = $2 ",
                        "WHERE id = (SELECT id FROM jobs WHERE ((state = 'queued' AND run_after <= $2) OR (state = 'running' AND claimed_at <= $3 AND attempts < max_attempts)) ",
                        "ORDER BY run_after, id LIMIT 1 ", $lock, ") RETURNING *"
                    ))
                    .bind(worker)
                    .bind(now)
                    .bind(stale)
                    .fetch_optional(self.pool())
                    .await?;
                    row.as_ref().map(job_from).transpose()
                }

                async fn complete_job(&self, practice: PracticeId, id: JobId, worker: &str, now: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE jobs SET state = 'done', updated_at = $1, last_error = NULL WHERE practice_id = $2 AND id = $3 AND state = 'running' AND claimed_by = $4")
                        .bind(now)
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .bind(worker)
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("job claimed by this worker"));
                    }
                    Ok(())
                }

                async fn fail_job(&self, practice: PracticeId, id: JobId, worker: &str, error: &str, now: DateTime<Utc>) -> StoreResult<JobState> {
                    let Some(job) = self.job(practice, id).await? else {
                        return Err(StoreError::NotFound("job"));
                    };
                    let next = if job.attempts >= job.max_attempts { JobState::Failed } else { JobState::Queued };
                    let done = sqlx::query("UPDATE jobs SET state = $1, run_after = $2, last_error = $3, claimed_by = NULL, claimed_at = NULL, updated_at = $4 WHERE practice_id = $5 AND id = $6 AND state = 'running' AND claimed_by = $7")
                        .bind(next.as_str())
                        .bind(now + backoff(job.attempts))
                        .bind(bounded(error))
                        .bind(now)
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .bind(worker)
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("job claimed by this worker"));
                    }
                    Ok(next)
                }

                async fn job(&self, practice: PracticeId, id: JobId) -> StoreResult<Option<Job>> {
                    let row = sqlx::query("SELECT * FROM jobs WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    row.as_ref().map(job_from).transpose()
                }

                async fn count_jobs(&self, practice: PracticeId, state: JobState) -> StoreResult<u64> {
                    let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE practice_id = $1 AND state = $2")
                        .bind(practice.as_uuid())
                        .bind(state.as_str())
                        .fetch_one(self.pool())
                        .await?;
                    let n: i64 = row.try_get("n")?;
                    u64::try_from(n).map_err(|e| corrupt("jobs count", e))
                }
            }
        }
    };
}

pub(crate) use jobs_adapter;
