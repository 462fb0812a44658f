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
    ($store:ident, $db:ty, $row:ty, begin = $begin:expr, lock_rows = $lock_rows:expr) => {
        mod measurement_impl {
            use super::{$store, answers_json, corrupt, submission_from};
            use crate::error::{StoreError, StoreResult};
            use crate::measurement::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use futures_util::TryStreamExt as _;
            use sqlx::Row as _;
            use std::collections::HashMap;
            use tapestry_domain::ids::*;
            use tapestry_domain::ingest::{
                decide, ClinicianTask, EpisodeMeasure, IngestError, IngestRequest, StoredRiskFlag,
                TaskKind, TrackRecord,
            };
            use tapestry_domain::instrument::InstrumentRegistry;
            use tapestry_domain::measure_schedule::{MeasureSchedule, ScheduleRule};
            use tapestry_domain::risk::{RiskColour, RiskFlag, RiskFlagClosure, RiskSignal, RiskSource};
            use tapestry_domain::submission::Submission;
            use tapestry_domain::trajectory::{ExpectedRecoveryCurve, ReferenceEpisode};
            use uuid::Uuid;

            /// Rows per multi-row statement (well under both engines' bind limits).
            const CHUNK: usize = 200;

            /// One multi-row statement ready to run, and what a unique violation in it means.
            type Statement<'a> = (sqlx::QueryBuilder<'a, $db>, &'static str);

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

            fn measure_from(row: &$row) -> StoreResult<EpisodeMeasure> {
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

            fn curve_from(row: &$row) -> StoreResult<StoredCurve> {
                let parameters: String = row.try_get("parameters")?;
                let version: i64 = row.try_get("version")?;
                Ok(StoredCurve {
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    version: u32::try_from(version).map_err(|e| corrupt("recovery_curves.version", e))?,
                    fitted_at: row.try_get("fitted_at")?,
                    curve: serde_json::from_str(&parameters).map_err(|e| corrupt("recovery_curves.parameters", e))?,
                })
            }

            fn json<T: serde::Serialize>(what: &str, value: &T) -> StoreResult<String> {
                serde_json::to_string(value).map_err(|e| corrupt(what, e))
            }

            /// An earlier submission under the same key counts as the same request when it is
            /// for the same client, episode and instrument with the same answers.
            fn same_request(earlier: &Submission, req: &IngestRequest) -> bool {
                earlier.client_id == req.client_id
                    && earlier.episode_id == req.episode_id
                    && earlier.instrument == req.instrument
                    && earlier.answers == req.answers.values
            }

            /// What the transaction read about the episodes it touches.
            #[derive(Default)]
            struct Loaded {
                /// episode → (practice, client, primary clinician)
                episodes: HashMap<EpisodeId, (PracticeId, ClientId, Option<UserId>)>,
                states: HashMap<(EpisodeId, String), EpisodeMeasure>,
                keyed: HashMap<(PracticeId, String), Submission>,
                curves: HashMap<(PracticeId, String), ExpectedRecoveryCurve>,
            }

            impl $store {
                async fn load_for_ingest(
                    tx: &mut sqlx::Transaction<'_, $db>,
                    requests: &[IngestRequest],
                    keyrings: &HashMap<PracticeId, crate::crypto::Keyring>,
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
                            // The transaction began with the write lock (SQLite: BEGIN
                            // IMMEDIATE) or locks the episode rows here (PostgreSQL: FOR
                            // UPDATE OF e, in id order), so two submissions to one episode are
                            // decided one after the other. Each episode comes with its measure
                            // state (one row per instrument, or one row of NULLs).
                            let mut q = sqlx::QueryBuilder::<$db>::new(
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
                            q.push(") ORDER BY e.id");
                            q.push($lock_rows);
                            // Streamed: the database produces the next rows while these are
                            // decoded.
                            let mut rows = q.build().fetch(&mut **tx);
                            while let Some(row) = rows.try_next().await? {
                                loaded.episodes.insert(
                                    EpisodeId::from_uuid(row.try_get("e_id")?),
                                    (
                                        practice,
                                        ClientId::from_uuid(row.try_get("e_client_id")?),
                                        row.try_get::<Option<Uuid>, _>("e_primary_clinician")?.map(UserId::from_uuid),
                                    ),
                                );
                                if row.try_get::<Option<String>, _>("instrument")?.is_some() {
                                    let m = measure_from(&row)?;
                                    loaded.states.insert((m.episode_id, m.instrument.clone()), m);
                                }
                            }
                        }
                        let mut keys: Vec<&str> = ours().filter_map(|r| r.idempotency_key.as_deref()).collect();
                        keys.sort_unstable();
                        keys.dedup();
                        for chunk in keys.chunks(CHUNK) {
                            let mut q = sqlx::QueryBuilder::<$db>::new("SELECT * FROM submissions WHERE practice_id = ");
                            q.push_bind(practice.as_uuid());
                            q.push(" AND idempotency_key IN (");
                            let mut list = q.separated(", ");
                            for k in chunk {
                                list.push_bind(k.to_string());
                            }
                            q.push(")");
                            let keyring = keyrings.get(&practice).ok_or(StoreError::NotFound("practice keys"))?;
                            for row in q.build().fetch_all(&mut **tx).await? {
                                let s = submission_from(&row, keyring)?;
                                if let Some(k) = s.idempotency_key.clone() {
                                    loaded.keyed.insert((practice, k), s);
                                }
                            }
                        }
                        let mut instruments: Vec<&str> = ours().map(|r| r.instrument.as_str()).collect();
                        instruments.sort_unstable();
                        instruments.dedup();
                        let mut q = sqlx::QueryBuilder::<$db>::new("SELECT * FROM recovery_curves WHERE practice_id = ");
                        q.push_bind(practice.as_uuid());
                        q.push(" AND instrument IN (");
                        let mut list = q.separated(", ");
                        for i in instruments.iter().take(CHUNK) {
                            list.push_bind(i.to_string());
                        }
                        q.push(") ORDER BY version DESC");
                        for row in q.build().fetch_all(&mut **tx).await? {
                            let c = curve_from(&row)?;
                            loaded.curves.entry((practice, c.curve.instrument.clone())).or_insert(c.curve);
                        }
                    }
                    Ok(loaded)
                }

                /// Receipt of a submission stored by an earlier request with the same key.
                async fn replay(tx: &mut sqlx::Transaction<'_, $db>, s: &Submission) -> StoreResult<IngestReceipt> {
                    let flags = sqlx::query("SELECT id FROM risk_flags WHERE practice_id = $1 AND submission_id = $2 ORDER BY raised_at, id")
                        .bind(s.practice_id.as_uuid())
                        .bind(s.id.as_uuid())
                        .fetch_all(&mut **tx)
                        .await?;
                    let tasks = sqlx::query("SELECT t.id FROM clinician_tasks t JOIN risk_flags f ON f.id = t.risk_flag_id AND f.practice_id = t.practice_id WHERE t.practice_id = $1 AND f.submission_id = $2 ORDER BY t.created_at, t.id")
                        .bind(s.practice_id.as_uuid())
                        .bind(s.id.as_uuid())
                        .fetch_all(&mut **tx)
                        .await?;
                    Ok(IngestReceipt {
                        submission_id: s.id,
                        new: false,
                        total: s.total,
                        session: s.session,
                        reliable_change: None,
                        track: None,
                        flags: flags.iter().map(|r| r.try_get("id").map(RecordId::from_uuid)).collect::<Result<_, _>>()?,
                        tasks: tasks.iter().map(|r| r.try_get("id").map(TaskId::from_uuid)).collect::<Result<_, _>>()?,
                    })
                }

                async fn ingest_once(
                    &self,
                    registry: &InstrumentRegistry,
                    settings: &IngestSettings,
                    requests: &[IngestRequest],
                ) -> StoreResult<Vec<IngestResult>> {
                    // Keys are loaded before the transaction: loading a practice's
                    // keyring the first time writes its wrapped data key.
                    let mut keyrings: HashMap<PracticeId, crate::crypto::Keyring> = HashMap::new();
                    for req in requests {
                        if !keyrings.contains_key(&req.practice_id) {
                            keyrings.insert(req.practice_id, self.keyring(req.practice_id).await?);
                        }
                    }
                    let mut tx = self.pool().begin_with($begin).await?;
                    let mut loaded = Self::load_for_ingest(&mut tx, requests, &keyrings).await?;
                    let mut results: Vec<IngestResult> = Vec::with_capacity(requests.len());
                    let mut submissions: Vec<Submission> = Vec::new();
                    let mut flags: Vec<StoredRiskFlag> = Vec::new();
                    let mut tasks: Vec<ClinicianTask> = Vec::new();
                    let mut touched: Vec<(EpisodeId, String)> = Vec::new();
                    let mut touched_set: std::collections::HashSet<(EpisodeId, String)> = std::collections::HashSet::new();
                    let mut in_batch: HashMap<(PracticeId, String), IngestReceipt> = HashMap::new();
                    for req in requests {
                        let Some(def) = registry.get(&req.instrument) else {
                            results.push(Err(IngestError::UnknownInstrument(req.instrument.chars().take(40).collect())));
                            continue;
                        };
                        let episode = loaded
                            .episodes
                            .get(&req.episode_id)
                            .filter(|(p, c, _)| *p == req.practice_id && *c == req.client_id)
                            .copied();
                        let Some((_, _, assignee)) = episode else {
                            results.push(Err(IngestError::EpisodeNotFound));
                            continue;
                        };
                        if let Some(key) = &req.idempotency_key {
                            if let Some(earlier) = loaded.keyed.get(&(req.practice_id, key.clone())) {
                                if !same_request(earlier, req) {
                                    results.push(Err(IngestError::IdempotencyConflict));
                                } else if let Some(receipt) = in_batch.get(&(req.practice_id, key.clone())) {
                                    results.push(Ok(IngestReceipt { new: false, ..receipt.clone() }));
                                } else {
                                    let earlier = earlier.clone();
                                    results.push(Ok(Self::replay(&mut tx, &earlier).await?));
                                }
                                continue;
                            }
                        }
                        let state_key = (req.episode_id, def.id.clone());
                        let curve = loaded.curves.get(&(req.practice_id, def.id.clone()));
                        let decision = match decide(def, req, loaded.states.get(&state_key), curve, settings.min_curve_episodes, assignee) {
                            Ok(d) => d,
                            Err(e) => {
                                results.push(Err(e));
                                continue;
                            }
                        };
                        let receipt = IngestReceipt {
                            submission_id: decision.submission.id,
                            new: true,
                            total: decision.submission.total,
                            session: decision.submission.session,
                            reliable_change: decision.reliable_change,
                            track: decision.measure.track.clone(),
                            flags: decision.flags.iter().map(|f| f.id).collect(),
                            tasks: decision.tasks.iter().map(|t| t.id).collect(),
                        };
                        if let Some(key) = &req.idempotency_key {
                            loaded.keyed.insert((req.practice_id, key.clone()), decision.submission.clone());
                            in_batch.insert((req.practice_id, key.clone()), receipt.clone());
                        }
                        if touched_set.insert(state_key.clone()) {
                            touched.push(state_key.clone());
                        }
                        loaded.states.insert(state_key, decision.measure);
                        submissions.push(decision.submission);
                        flags.extend(decision.flags);
                        tasks.extend(decision.tasks);
                        results.push(Ok(receipt));
                    }
                    let measures: Vec<&EpisodeMeasure> = touched.iter().filter_map(|k| loaded.states.get(k)).collect();
                    let statements = Self::submission_statements(&submissions, &keyrings)
                        .chain(Self::measure_statements(&measures))
                        .chain(Self::flag_statements(&flags))
                        .chain(Self::task_statements(&tasks));
                    Self::execute_pipelined(&mut tx, statements).await?;
                    tx.commit().await?;
                    Ok(results)
                }

                /// Runs the statements in order in `tx`, preparing the next one (sealing,
                /// serialising, binding) on this task while the database executes the current
                /// one: the two cores work at the same time (B3 profile).
                async fn execute_pipelined<'a>(
                    tx: &mut sqlx::Transaction<'_, $db>,
                    mut statements: impl Iterator<Item = StoreResult<Statement<'a>>> + Send,
                ) -> StoreResult<()> {
                    let mut current = statements.next().transpose()?;
                    while let Some((mut q, conflict)) = current {
                        // `join!` polls the execution first, which hands the statement to the
                        // database, then builds the next statement while it runs.
                        let (done, next) = tokio::join!(q.build().execute(&mut **tx), async { statements.next().transpose() });
                        done.map_err(|e| StoreError::unique_or(e, conflict))?;
                        current = next?;
                    }
                    Ok(())
                }

                /// Multi-row INSERTs of the submissions, answers sealed (same columns as the
                /// base adapter's SUBMISSION_INSERT).
                fn submission_statements<'a>(
                    submissions: &'a [Submission],
                    keyrings: &'a HashMap<PracticeId, crate::crypto::Keyring>,
                ) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
                    submissions.chunks(CHUNK).map(move |chunk| {
                        let answers: Vec<String> = chunk
                            .iter()
                            .map(|s| {
                                let keyring = keyrings.get(&s.practice_id).ok_or(StoreError::NotFound("practice keys"))?;
                                answers_json(s, keyring)
                            })
                            .collect::<StoreResult<_>>()?;
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO submissions (id, practice_id, client_id, episode_id, instrument, instrument_version, answers, total, session, submitted_at, idempotency_key, submitted_week) ");
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
                fn measure_statements<'a>(measures: &'a [&'a EpisodeMeasure]) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
                    measures.chunks(CHUNK).map(|chunk| {
                        let tracks: Vec<Option<String>> = chunk
                            .iter()
                            .map(|m| m.track.as_ref().map(|t| json("episode_measures.track", t)).transpose())
                            .collect::<StoreResult<_>>()?;
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO episode_measures (practice_id, episode_id, instrument, baseline, latest, sessions, track_status, not_on_track, track, updated_at) ");
                        q.push_values(chunk.iter().zip(tracks), |mut b, (m, track)| {
                            b.push_bind(m.practice_id.as_uuid())
                                .push_bind(m.episode_id.as_uuid())
                                .push_bind(m.instrument.as_str())
                                .push_bind(m.baseline)
                                .push_bind(m.latest)
                                .push_bind(i64::from(m.sessions))
                                .push_bind(m.track.as_ref().map(|t| t.status.as_str()))
                                .push_bind(m.track.as_ref().is_some_and(|t| t.not_on_track))
                                .push_bind(track)
                                .push_bind(m.updated_at);
                        });
                        q.push(" ON CONFLICT (practice_id, episode_id, instrument) DO UPDATE SET baseline = excluded.baseline, latest = excluded.latest, sessions = excluded.sessions, track_status = excluded.track_status, not_on_track = excluded.not_on_track, track = excluded.track, updated_at = excluded.updated_at");
                        Ok((q, "episode_measures: written concurrently"))
                    })
                }

                fn flag_statements<'a>(flags: &'a [StoredRiskFlag]) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
                    flags.chunks(CHUNK).map(|chunk| {
                        let signals: Vec<String> = chunk.iter().map(|f| json("risk_flags.signal", &f.flag.signal)).collect::<StoreResult<_>>()?;
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO risk_flags (id, practice_id, client_id, episode_id, submission_id, instrument, item, value, level, colour, rule, signal, raised_at) ");
                        q.push_values(chunk.iter().zip(signals), |mut b, (f, signal)| {
                            let s = &f.flag.signal;
                            let (instrument, item, value) = match &s.source {
                                RiskSource::CriticalItem { instrument, item, value } => (instrument.as_str(), Some(i64::from(*item)), Some(i64::from(*value))),
                                RiskSource::StructuredAssessment { instrument } => (instrument.as_str(), None, None),
                            };
                            b.push_bind(f.id.as_uuid())
                                .push_bind(f.practice_id.as_uuid())
                                .push_bind(f.client_id.as_uuid())
                                .push_bind(f.episode_id.as_uuid())
                                .push_bind(f.submission_id.as_uuid())
                                .push_bind(instrument)
                                .push_bind(item)
                                .push_bind(value)
                                .push_bind(s.level.map(|l| l.as_str()))
                                .push_bind(s.colour.as_str())
                                .push_bind(s.rule.as_str())
                                .push_bind(signal)
                                .push_bind(f.flag.raised_at);
                        });
                        Ok((q, "risk_flags.id: already used"))
                    })
                }

                fn task_statements<'a>(tasks: &'a [ClinicianTask]) -> impl Iterator<Item = StoreResult<Statement<'a>>> + Send + 'a {
                    tasks.chunks(CHUNK).map(|chunk| {
                        let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO clinician_tasks (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at) ");
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
                    match self.ingest_once(registry, settings, requests).await {
                        // A concurrent request committed the same Idempotency-Key for another
                        // episode between our read and our write: decide again, now seeing it.
                        Err(StoreError::Conflict(_)) => self.ingest_once(registry, settings, requests).await,
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
