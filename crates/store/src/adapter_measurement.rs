//! The measurement store's SQL, shared by both backends (portable `$n` SQL and
//! `QueryBuilder` lists). Instantiated in `sqlite.rs` and `postgres.rs` next to the base adapter,
//! whose `submission_from`, `answers_json` and `corrupt` helpers it reuses so that submissions
//! are written and read one way only.

/// One clinician task's INSERT with every column bound, for the places that write a single
/// task (the urgent-language screen, the waitlist watch); `$tail` ends the statement (e.g.
/// `" ON CONFLICT DO NOTHING"`). The pipeline writes its tasks in multi-row statements.
macro_rules! insert_clinician_task {
    ($t:expr, $tail:literal) => {
        sqlx::query(concat!(
            "INSERT INTO clinician_tasks (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at) \
             VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)",
            $tail
        ))
        .bind($t.id.as_uuid())
        .bind($t.practice_id.as_uuid())
        .bind($t.client_id.as_uuid())
        .bind($t.episode_id.as_uuid())
        .bind($t.kind.as_str())
        .bind($t.risk_flag_id.map(|f| f.as_uuid()))
        .bind($t.assignee.map(|u| u.as_uuid()))
        .bind($t.title.clone())
        .bind($t.detail.clone())
        .bind($t.colour.as_str())
        .bind($t.due_at)
        .bind($t.created_at)
        .bind($t.completed_at)
    };
}
pub(crate) use insert_clinician_task;

macro_rules! measurement_adapter {
    ($store:ident, $db:ty, $row:ty) => {
        mod measurement_impl {
            use super::{$store, corrupt};
            use crate::error::{StoreError, StoreResult};
            use crate::measurement::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use std::collections::HashMap;
            use tapestry_domain::ids::*;
            use tapestry_domain::ingest::{
                ClinicianTask, EpisodeMeasure, IngestRequest, StoredRiskFlag,
                TaskKind, TrackRecord,
            };
            use tapestry_domain::instrument::InstrumentRegistry;
            use tapestry_domain::measure_schedule::{MeasureSchedule, ScheduleRule};
            use tapestry_domain::risk::{RiskColour, RiskFlag, RiskFlagClosure, RiskSignal};
            use tapestry_domain::trajectory::{ExpectedRecoveryCurve, ReferenceEpisode};
            use uuid::Uuid;

            fn schedule_from(row: &$row) -> StoreResult<MeasureSchedule> {
                let rule: String = row.try_get("rule")?;
                let days: Option<i64> = row.try_get("every_days")?;
                let days = days.map(u32::try_from).transpose().map_err(|e| corrupt("measure_schedules.every_days", e))?;
                Ok(MeasureSchedule {
                    id: RecordId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    episode_id: EpisodeId::from_uuid(row.try_get("episode_id")?),
                    instrument: row.try_get("instrument")?,
                    rule: ScheduleRule::parse(&rule, days).map_err(|e| corrupt("measure_schedules.rule", e))?,
                    created_at: row.try_get("created_at")?,
                })
            }

            pub(super) fn measure_from(row: &$row) -> StoreResult<EpisodeMeasure> {
                let sessions: i64 = row.try_get("sessions")?;
                let track: Option<String> = row.try_get("track")?;
                Ok(EpisodeMeasure {
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    episode_id: EpisodeId::from_uuid(row.try_get("episode_id")?),
                    instrument: row.try_get("instrument")?,
                    baseline: row.try_get("baseline")?,
                    latest: row.try_get("latest")?,
                    sessions: u32::try_from(sessions).map_err(|e| corrupt("episode_measures.sessions", e))?,
                    track: track
                        .map(|t| serde_json::from_str::<TrackRecord>(&t))
                        .transpose()
                        .map_err(|e| corrupt("episode_measures.track", e))?,
                    updated_at: row.try_get("updated_at")?,
                })
            }

            fn flag_from(row: &$row, keyring: &crate::crypto::Keyring) -> StoreResult<StoredRiskFlag> {
                let signal: String = row.try_get("signal")?;
                let signal: RiskSignal = serde_json::from_str(&signal).map_err(|e| corrupt("risk_flags.signal", e))?;
                let closed_by: Option<Uuid> = row.try_get("closed_by")?;
                let closed_at: Option<DateTime<Utc>> = row.try_get("closed_at")?;
                let id: Uuid = row.try_get("id")?;
                let practice_id = PracticeId::from_uuid(row.try_get("practice_id")?);
                // The clinician's closing note is clinical text: sealed at rest.
                let note: Option<String> = row
                    .try_get::<Option<String>, _>("closing_note")?
                    .map(|sealed| crate::vault::Vault::open(keyring, &crate::vault::field(practice_id, "risk_flags", "closing_note", id), &sealed))
                    .transpose()?;
                let closure = match (closed_by, closed_at, note) {
                    (Some(by), Some(at), Some(note)) => Some(RiskFlagClosure { by: UserId::from_uuid(by), at, note }),
                    (None, None, None) => None,
                    _ => return Err(corrupt("risk_flags.closed_at", "closure is incomplete")),
                };
                Ok(StoredRiskFlag {
                    id: RecordId::from_uuid(id),
                    practice_id,
                    client_id: ClientId::from_uuid(row.try_get("client_id")?),
                    episode_id: EpisodeId::from_uuid(row.try_get("episode_id")?),
                    submission_id: ResponseId::from_uuid(row.try_get("submission_id")?),
                    flag: RiskFlag { signal, raised_at: row.try_get("raised_at")?, closure },
                })
            }

            fn colour_parse(text: &str) -> StoreResult<RiskColour> {
                match text {
                    "amber" => Ok(RiskColour::Amber),
                    "red" => Ok(RiskColour::Red),
                    other => Err(corrupt("colour", other)),
                }
            }

            fn task_from(row: &$row) -> StoreResult<ClinicianTask> {
                let kind: String = row.try_get("kind")?;
                let colour: String = row.try_get("colour")?;
                Ok(ClinicianTask {
                    id: TaskId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    client_id: ClientId::from_uuid(row.try_get("client_id")?),
                    episode_id: EpisodeId::from_uuid(row.try_get("episode_id")?),
                    kind: TaskKind::parse(&kind).ok_or_else(|| corrupt("clinician_tasks.kind", &kind))?,
                    risk_flag_id: row.try_get::<Option<Uuid>, _>("risk_flag_id")?.map(RecordId::from_uuid),
                    assignee: row.try_get::<Option<Uuid>, _>("assignee")?.map(UserId::from_uuid),
                    title: row.try_get("title")?,
                    detail: row.try_get("detail")?,
                    colour: colour_parse(&colour)?,
                    due_at: row.try_get("due_at")?,
                    created_at: row.try_get("created_at")?,
                    completed_at: row.try_get("completed_at")?,
                })
            }

            pub(super) fn curve_from(row: &$row) -> StoreResult<StoredCurve> {
                let parameters: String = row.try_get("parameters")?;
                let version: i64 = row.try_get("version")?;
                Ok(StoredCurve {
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    version: u32::try_from(version).map_err(|e| corrupt("recovery_curves.version", e))?,
                    fitted_at: row.try_get("fitted_at")?,
                    curve: serde_json::from_str(&parameters).map_err(|e| corrupt("recovery_curves.parameters", e))?,
                })
            }

            pub(super) fn json<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
                serde_json::to_string(value).map_err(|e| corrupt(what, e))
            }

            #[async_trait]
            impl MeasurementStore for $store {
                async fn set_measure_schedule(&self, s: &MeasureSchedule) -> StoreResult<()> {
                    let done = sqlx::query(
                        "INSERT INTO measure_schedules (id, practice_id, episode_id, instrument, rule, every_days, created_at) \
                         SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM episodes WHERE id = $3 AND practice_id = $2) \
                         ON CONFLICT (practice_id, episode_id, instrument) DO UPDATE SET rule = excluded.rule, every_days = excluded.every_days, created_at = excluded.created_at",
                    )
                    .bind(s.id.as_uuid())
                    .bind(s.practice_id.as_uuid())
                    .bind(s.episode_id.as_uuid())
                    .bind(&s.instrument)
                    .bind(s.rule.as_str())
                    .bind(s.rule.days().map(i64::from))
                    .bind(s.created_at)
                    .execute(self.pool())
                    .await?;
                    if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("episode")) }
                }
                async fn measure_schedules(&self, practice: PracticeId, episode: EpisodeId) -> StoreResult<Vec<MeasureSchedule>> {
                    let rows = sqlx::query("SELECT * FROM measure_schedules WHERE practice_id = $1 AND episode_id = $2 ORDER BY instrument")
                        .bind(practice.as_uuid())
                        .bind(episode.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(schedule_from).collect()
                }
                async fn remove_measure_schedule(&self, practice: PracticeId, episode: EpisodeId, instrument: &str) -> StoreResult<()> {
                    let done = sqlx::query("DELETE FROM measure_schedules WHERE practice_id = $1 AND episode_id = $2 AND instrument = $3")
                        .bind(practice.as_uuid())
                        .bind(episode.as_uuid())
                        .bind(instrument)
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("measure schedule")) }
                }

                async fn ingest(&self, registry: &InstrumentRegistry, settings: &IngestSettings, requests: &[IngestRequest]) -> StoreResult<Vec<IngestResult>> {
                    if requests.is_empty() {
                        return Ok(Vec::new());
                    }
                    // Keys are loaded before the transaction: loading a practice's keyring the
                    // first time writes its wrapped data key.
                    let mut keyrings: HashMap<PracticeId, crate::crypto::Keyring> = HashMap::new();
                    for req in requests {
                        if !keyrings.contains_key(&req.practice_id) {
                            keyrings.insert(req.practice_id, self.keyring(req.practice_id).await?);
                        }
                    }
                    // The transaction is the backend's own (sqlite/ingest.rs, postgres/ingest.rs).
                    match self.ingest_once(registry, settings, requests, &keyrings).await {
                        // A concurrent request committed the same Idempotency-Key for another
                        // episode between our read and our write: decide again, now seeing it.
                        Err(StoreError::Conflict(_)) => self.ingest_once(registry, settings, requests, &keyrings).await,
                        other => other,
                    }
                }

                async fn episode_measures(&self, practice: PracticeId, episode: EpisodeId) -> StoreResult<Vec<EpisodeMeasure>> {
                    let rows = sqlx::query("SELECT * FROM episode_measures WHERE practice_id = $1 AND episode_id = $2 ORDER BY instrument")
                        .bind(practice.as_uuid())
                        .bind(episode.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(measure_from).collect()
                }
                async fn not_on_track(&self, practice: PracticeId) -> StoreResult<Vec<EpisodeMeasure>> {
                    let rows = sqlx::query("SELECT * FROM episode_measures WHERE practice_id = $1 AND not_on_track = $2 ORDER BY updated_at, episode_id, instrument")
                        .bind(practice.as_uuid())
                        .bind(true)
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(measure_from).collect()
                }

                async fn risk_flags_for_episode(&self, practice: PracticeId, episode: EpisodeId) -> StoreResult<Vec<StoredRiskFlag>> {
                    let rows = sqlx::query("SELECT * FROM risk_flags WHERE practice_id = $1 AND episode_id = $2 ORDER BY raised_at, id")
                        .bind(practice.as_uuid())
                        .bind(episode.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let keyring = self.keyring(practice).await?;
                    rows.iter().map(|r| flag_from(r, &keyring)).collect()
                }
                async fn open_risk_flags(&self, practice: PracticeId) -> StoreResult<Vec<StoredRiskFlag>> {
                    let rows = sqlx::query("SELECT * FROM risk_flags WHERE practice_id = $1 AND closed_at IS NULL ORDER BY raised_at, id")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let keyring = self.keyring(practice).await?;
                    rows.iter().map(|r| flag_from(r, &keyring)).collect()
                }
                async fn close_risk_flag(&self, practice: PracticeId, flag: RecordId, by: UserId, note: &str, at: DateTime<Utc>) -> StoreResult<StoredRiskFlag> {
                    let row = sqlx::query("SELECT * FROM risk_flags WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(flag.as_uuid())
                        .fetch_optional(self.pool())
                        .await?
                        .ok_or(StoreError::NotFound("risk flag"))?;
                    let keyring = self.keyring(practice).await?;
                    let mut stored = flag_from(&row, &keyring)?;
                    stored.flag.close(by, note, at).map_err(|e| match e {
                        tapestry_domain::risk::RiskError::NoteRequired => StoreError::Conflict("note: a clinician's note is required to close a risk flag"),
                        tapestry_domain::risk::RiskError::AlreadyClosed => StoreError::Conflict("flag: already closed"),
                    })?;
                    let Some(closure) = &stored.flag.closure else {
                        return Err(StoreError::Conflict("flag: already closed"));
                    };
                    let done = sqlx::query(
                        "UPDATE risk_flags SET closed_by = $1, closed_at = $2, closing_note = $3 WHERE practice_id = $4 AND id = $5 AND closed_at IS NULL \
                         AND EXISTS (SELECT 1 FROM users WHERE id = $1 AND practice_id = $4 AND status = 'active' AND role IN ('clinician','supervisor','practice_owner'))",
                    )
                    .bind(by.as_uuid())
                    .bind(closure.at)
                    .bind(crate::vault::Vault::seal(&keyring, &crate::vault::field(practice, "risk_flags", "closing_note", flag.as_uuid()), &closure.note)?)
                    .bind(practice.as_uuid())
                    .bind(flag.as_uuid())
                    .execute(self.pool())
                    .await?;
                    if done.rows_affected() == 1 {
                        Ok(stored)
                    } else {
                        Err(StoreError::NotFound("closed_by: an active clinician of this practice (or the flag was closed meanwhile)"))
                    }
                }

                async fn open_tasks(&self, practice: PracticeId) -> StoreResult<Vec<ClinicianTask>> {
                    let rows = sqlx::query("SELECT * FROM clinician_tasks WHERE practice_id = $1 AND completed_at IS NULL ORDER BY due_at, id")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(task_from).collect()
                }
                async fn tasks_for_episode(&self, practice: PracticeId, episode: EpisodeId) -> StoreResult<Vec<ClinicianTask>> {
                    let rows = sqlx::query("SELECT * FROM clinician_tasks WHERE practice_id = $1 AND episode_id = $2 ORDER BY due_at, id")
                        .bind(practice.as_uuid())
                        .bind(episode.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(task_from).collect()
                }
                async fn complete_task(&self, practice: PracticeId, task: TaskId, at: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE clinician_tasks SET completed_at = $1 WHERE practice_id = $2 AND id = $3 AND completed_at IS NULL")
                        .bind(at)
                        .bind(practice.as_uuid())
                        .bind(task.as_uuid())
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("open task")) }
                }

                async fn insert_recovery_curve(&self, practice: PracticeId, curve: &ExpectedRecoveryCurve, at: DateTime<Utc>) -> StoreResult<StoredCurve> {
                    let mut tx = self.pool().begin().await?;
                    let next: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 AS next FROM recovery_curves WHERE practice_id = $1 AND instrument = $2")
                        .bind(practice.as_uuid())
                        .bind(&curve.instrument)
                        .fetch_one(&mut *tx)
                        .await?
                        .try_get("next")?;
                    let version = u32::try_from(next).map_err(|e| corrupt("recovery_curves.version", e))?;
                    let mut curve = curve.clone();
                    curve.version = format!("{}-v{version}", curve.instrument);
                    sqlx::query("INSERT INTO recovery_curves (practice_id, instrument, version, fitted_at, n_episodes, n_observations, parameters) VALUES ($1,$2,$3,$4,$5,$6,$7)")
                        .bind(practice.as_uuid())
                        .bind(&curve.instrument)
                        .bind(next)
                        .bind(at)
                        .bind(i64::try_from(curve.n_episodes).unwrap_or(i64::MAX))
                        .bind(i64::try_from(curve.n_observations).unwrap_or(i64::MAX))
                        .bind(json("recovery_curves.parameters", &curve)?)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "recovery curve version fitted concurrently"))?;
                    tx.commit().await?;
                    Ok(StoredCurve { practice_id: practice, version, fitted_at: at, curve })
                }
                async fn latest_recovery_curve(&self, practice: PracticeId, instrument: &str) -> StoreResult<Option<StoredCurve>> {
                    let row = sqlx::query("SELECT * FROM recovery_curves WHERE practice_id = $1 AND instrument = $2 ORDER BY version DESC LIMIT 1")
                        .bind(practice.as_uuid())
                        .bind(instrument)
                        .fetch_optional(self.pool())
                        .await?;
                    row.as_ref().map(curve_from).transpose()
                }
                async fn reference_episodes(&self, practice: PracticeId, instrument: &str) -> StoreResult<Vec<ReferenceEpisode>> {
                    let rows = sqlx::query(
                        "SELECT s.episode_id, s.total FROM submissions s JOIN episodes e ON e.id = s.episode_id AND e.practice_id = s.practice_id \
                         WHERE s.practice_id = $1 AND s.instrument = $2 AND e.status = 'discharged' AND s.total IS NOT NULL \
                         ORDER BY s.episode_id, s.session, s.submitted_at, s.id",
                    )
                    .bind(practice.as_uuid())
                    .bind(instrument)
                    .fetch_all(self.pool())
                    .await?;
                    let mut out: Vec<ReferenceEpisode> = Vec::new();
                    let mut current: Option<Uuid> = None;
                    for row in &rows {
                        let episode: Uuid = row.try_get("episode_id")?;
                        let total: f64 = row.try_get("total")?;
                        match out.last_mut() {
                            Some(last) if current == Some(episode) => last.scores.push(total),
                            _ => {
                                out.push(ReferenceEpisode { scores: vec![total] });
                                current = Some(episode);
                            }
                        }
                    }
                    Ok(out)
                }
            }
        }
    };
}

pub(crate) use measurement_adapter;
