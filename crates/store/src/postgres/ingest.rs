//! The submission pipeline's transaction on PostgreSQL: lock and read the episodes the
//! requests name, decide (`ingest_batch`), write in multi-row statements, commit. SQLite has
//! its own lane (`sqlite/ingest.rs`); both share the decisions and the schema.

use std::collections::HashMap;

use futures_util::TryStreamExt as _;
use sqlx::Row as _;
use tapestry_domain::ids::*;
use tapestry_domain::ingest::{ClinicianTask, EpisodeMeasure, IngestRequest, StoredRiskFlag};
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::submission::Submission;
use uuid::Uuid;

use super::measurement_impl::{curve_from, json, measure_from};
use super::{answers_json, submission_from, PgStore};
use crate::crypto::Keyring;
use crate::error::{StoreError, StoreResult};
use crate::ingest_batch::{decide_batch, practice_keys, sql, Loaded};
use crate::measurement::{IngestResult, IngestSettings};

/// Rows per multi-row statement (well under PostgreSQL's bind limit).
const CHUNK: usize = 200;

/// One multi-row statement ready to run, and what a unique violation in it means.
type Statement<'a> = (sqlx::QueryBuilder<'a, sqlx::Postgres>, &'static str);

type Tx<'c> = sqlx::Transaction<'c, sqlx::Postgres>;

impl PgStore {
    /// One transaction for all `requests` (see [`crate::MeasurementStore::ingest`]).
    pub(super) async fn ingest_once(
        &self,
        registry: &InstrumentRegistry,
        settings: &IngestSettings,
        requests: &[IngestRequest],
        keyrings: &HashMap<PracticeId, Keyring>,
    ) -> StoreResult<Vec<IngestResult>> {
        let mut tx = self.pool().begin().await?;
        let mut loaded = load(&mut tx, requests, keyrings).await?;
        let batch = decide_batch(registry, settings, requests, &mut loaded);
        let measures = batch.measures(&loaded);
        let statements = submission_statements(&batch.submissions, keyrings)
            .chain(measure_statements(&measures))
            .chain(flag_statements(&batch.flags))
            .chain(task_statements(&batch.tasks));
        execute_pipelined(&mut tx, statements).await?;
        tx.commit().await?;
        Ok(batch.results)
    }
}

/// Locks the episodes the requests name (`FOR UPDATE OF e`, in id order, so two submissions
/// to one episode are decided one after the other) and reads their measure state, the
/// submissions already stored under the requests' keys (with their flags and tasks) and the
/// latest fitted curves.
async fn load(
    tx: &mut Tx<'_>,
    requests: &[IngestRequest],
    keyrings: &HashMap<PracticeId, Keyring>,
) -> StoreResult<Loaded> {
    let mut loaded = Loaded::default();
    let mut practices: Vec<PracticeId> = requests.iter().map(|r| r.practice_id).collect();
    practices.sort();
    practices.dedup();
    for practice in practices {
        let ours = || requests.iter().filter(move |r| r.practice_id == practice);
        let mut episodes: Vec<Uuid> = ours().map(|r| r.episode_id.as_uuid()).collect();
        episodes.sort();
        episodes.dedup();
        for chunk in episodes.chunks(CHUNK) {
            // Each episode comes with its measure state (one row per instrument, or one row
            // of NULLs).
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT e.id AS e_id, e.client_id AS e_client_id, e.primary_clinician AS e_primary_clinician, \
                 m.practice_id, m.episode_id, m.instrument, m.baseline, m.latest, m.sessions, m.track, m.updated_at \
                 FROM episodes e LEFT JOIN episode_measures m ON m.practice_id = e.practice_id AND m.episode_id = e.id \
                 WHERE e.practice_id = ",
            );
            q.push_bind(practice.as_uuid());
            q.push(" AND e.id IN (");
            let mut list = q.separated(", ");
            for e in chunk {
                list.push_bind(*e);
            }
            q.push(") ORDER BY e.id FOR UPDATE OF e");
            // Streamed: the database produces the next rows while these are decoded.
            let mut rows = q.build().fetch(&mut **tx);
            while let Some(row) = rows.try_next().await? {
                loaded.episodes.insert(
                    EpisodeId::from_uuid(row.try_get("e_id")?),
                    (
                        practice,
                        ClientId::from_uuid(row.try_get("e_client_id")?),
                        row.try_get::<Option<Uuid>, _>("e_primary_clinician")?
                            .map(UserId::from_uuid),
                    ),
                );
                if row.try_get::<Option<String>, _>("instrument")?.is_some() {
                    let m = measure_from(&row)?;
                    loaded
                        .states
                        .insert((m.episode_id, m.instrument.clone()), m);
                }
            }
        }
        let mut keys: Vec<&str> = ours()
            .filter_map(|r| r.idempotency_key.as_deref())
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(CHUNK) {
            let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
                "SELECT * FROM submissions WHERE practice_id = ",
            );
            q.push_bind(practice.as_uuid());
            q.push(" AND idempotency_key IN (");
            let mut list = q.separated(", ");
            for k in chunk {
                list.push_bind(k.to_string());
            }
            q.push(")");
            let keyring = practice_keys(keyrings, practice)?;
            for row in q.build().fetch_all(&mut **tx).await? {
                let s = submission_from(&row, keyring)?;
                load_replay(tx, &s, &mut loaded).await?;
                if let Some(k) = s.idempotency_key.clone() {
                    loaded.keyed.insert((practice, k), s);
                }
            }
        }
        let mut instruments: Vec<&str> = ours().map(|r| r.instrument.as_str()).collect();
        instruments.sort_unstable();
        instruments.dedup();
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT * FROM recovery_curves WHERE practice_id = ",
        );
        q.push_bind(practice.as_uuid());
        q.push(" AND instrument IN (");
        let mut list = q.separated(", ");
        for i in instruments.iter().take(CHUNK) {
            list.push_bind(i.to_string());
        }
        q.push(") ORDER BY version DESC");
        for row in q.build().fetch_all(&mut **tx).await? {
            let c = curve_from(&row)?;
            loaded
                .curves
                .entry((practice, c.curve.instrument.clone()))
                .or_insert(Some(c.curve));
        }
    }
    Ok(loaded)
}

/// The flags and tasks of a submission stored earlier under a key, for its replay.
async fn load_replay(tx: &mut Tx<'_>, s: &Submission, loaded: &mut Loaded) -> StoreResult<()> {
    let flags = sqlx::query(
        "SELECT id FROM risk_flags WHERE practice_id = $1 AND submission_id = $2 ORDER BY raised_at, id",
    )
    .bind(s.practice_id.as_uuid())
    .bind(s.id.as_uuid())
    .fetch_all(&mut **tx)
    .await?;
    let tasks = sqlx::query(
        "SELECT t.id FROM clinician_tasks t JOIN risk_flags f ON f.id = t.risk_flag_id AND f.practice_id = t.practice_id \
         WHERE t.practice_id = $1 AND f.submission_id = $2 ORDER BY t.created_at, t.id",
    )
    .bind(s.practice_id.as_uuid())
    .bind(s.id.as_uuid())
    .fetch_all(&mut **tx)
    .await?;
    let flags = flags
        .iter()
        .map(|r| r.try_get("id").map(RecordId::from_uuid))
        .collect::<Result<_, _>>()?;
    let tasks = tasks
        .iter()
        .map(|r| r.try_get("id").map(TaskId::from_uuid))
        .collect::<Result<_, _>>()?;
    loaded.replays.insert(s.id, (flags, tasks));
    Ok(())
}

/// Runs the statements in order in `tx`, preparing the next one (sealing, serialising,
/// binding) on this task while the database executes the current one.
async fn execute_pipelined<'a>(
    tx: &mut Tx<'_>,
    mut statements: impl Iterator<Item = StoreResult<Statement<'a>>> + Send,
) -> StoreResult<()> {
    let mut current = statements.next().transpose()?;
    while let Some((mut q, conflict)) = current {
        // `join!` polls the execution first, which hands the statement to the database,
        // then builds the next statement while it runs.
        let (done, next) = tokio::join!(q.build().execute(&mut **tx), async {
            statements.next().transpose()
        });
        done.map_err(|e| StoreError::unique_or(e, conflict))?;
        current = next?;
    }
    Ok(())
}

/// Multi-row INSERTs of the submissions, answers sealed (same columns as the base adapter's
/// SUBMISSION_INSERT).
fn submission_statements<'a>(
    submissions: &'a [Submission],
    keyrings: &'a HashMap<PracticeId, Keyring>,
) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
    submissions.chunks(CHUNK).map(move |chunk| {
        let answers: Vec<String> = chunk
            .iter()
            .map(|s| {
                let keyring = practice_keys(keyrings, s.practice_id)?;
                answers_json(s, keyring)
            })
            .collect::<StoreResult<_>>()?;
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(sql::SUBMISSION_COLUMNS);
        q.push_values(chunk.iter().zip(answers), |mut b, (s, a)| {
            b.push_bind(s.id.as_uuid())
                .push_bind(s.practice_id.as_uuid())
                .push_bind(s.client_id.as_uuid())
                .push_bind(s.episode_id.as_uuid())
                .push_bind(s.instrument.as_str())
                .push_bind(s.instrument_version.as_str())
                .push_bind(a)
                .push_bind(s.total)
                .push_bind(i64::from(s.session))
                .push_bind(s.submitted_at)
                .push_bind(s.idempotency_key.as_deref())
                .push_bind(s.week());
        });
        Ok((q, "Idempotency-Key: used concurrently"))
    })
}

/// Upserts of the episodes' measure state.
fn measure_statements<'a>(
    measures: &'a [&'a EpisodeMeasure],
) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
    measures.chunks(CHUNK).map(|chunk| {
        let tracks: Vec<Option<String>> = chunk
            .iter()
            .map(|m| {
                m.track
                    .as_ref()
                    .map(|t| json("episode_measures.track", t))
                    .transpose()
            })
            .collect::<StoreResult<_>>()?;
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(sql::MEASURE_COLUMNS);
        q.push_values(chunk.iter().zip(tracks), |mut b, (m, track)| {
            b.push_bind(m.practice_id.as_uuid())
                .push_bind(m.episode_id.as_uuid())
                .push_bind(m.instrument.as_str())
                .push_bind(m.baseline)
                .push_bind(m.latest)
                .push_bind(i64::from(m.sessions))
                .push_bind(m.track.as_ref().map(|t| t.status.as_str()))
                .push_bind(m.not_on_track())
                .push_bind(track)
                .push_bind(m.updated_at);
        });
        q.push(sql::MEASURE_UPSERT);
        Ok((q, "episode_measures: written concurrently"))
    })
}

fn flag_statements(
    flags: &[StoredRiskFlag],
) -> impl Iterator<Item = StoreResult<Statement<'_>>> + Send + '_ {
    flags.chunks(CHUNK).map(|chunk| {
        let signals: Vec<String> = chunk
            .iter()
            .map(|f| json("risk_flags.signal", &f.flag.signal))
            .collect::<StoreResult<_>>()?;
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(sql::FLAG_COLUMNS);
        q.push_values(chunk.iter().zip(signals), |mut b, (f, signal)| {
            let s = &f.flag.signal;
            let (instrument, item, value) = s.source.parts();
            b.push_bind(f.id.as_uuid())
                .push_bind(f.practice_id.as_uuid())
                .push_bind(f.client_id.as_uuid())
                .push_bind(f.episode_id.as_uuid())
                .push_bind(f.submission_id.as_uuid())
                .push_bind(instrument)
                .push_bind(item.map(i64::from))
                .push_bind(value.map(i64::from))
                .push_bind(s.level.map(|l| l.as_str()))
                .push_bind(s.colour.as_str())
                .push_bind(s.rule.as_str())
                .push_bind(signal)
                .push_bind(f.flag.raised_at);
        });
        Ok((q, "risk_flags.id: already used"))
    })
}

fn task_statements(
    tasks: &[ClinicianTask],
) -> impl Iterator<Item = StoreResult<Statement<'_>>> + Send + '_ {
    tasks.chunks(CHUNK).map(|chunk| {
        let mut q = sqlx::QueryBuilder::<sqlx::Postgres>::new(sql::TASK_COLUMNS);
        q.push_values(chunk.iter(), |mut b, t| {
            b.push_bind(t.id.as_uuid())
                .push_bind(t.practice_id.as_uuid())
                .push_bind(t.client_id.as_uuid())
                .push_bind(t.episode_id.as_uuid())
                .push_bind(t.kind.as_str())
                .push_bind(t.risk_flag_id.map(|f| f.as_uuid()))
                .push_bind(t.assignee.map(|u| u.as_uuid()))
                .push_bind(t.title.as_str())
                .push_bind(t.detail.as_str())
                .push_bind(t.colour.as_str())
                .push_bind(t.due_at)
                .push_bind(t.created_at)
                .push_bind(t.completed_at);
        });
        Ok((q, "clinician_tasks.id: already used"))
    })
}
