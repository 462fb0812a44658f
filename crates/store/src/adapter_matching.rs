//! The matching adapter body, shared by both backends. Instantiated in
//! `sqlite.rs` and `postgres.rs`. `begin` opens the acceptance transaction
//! (`BEGIN IMMEDIATE` on SQLite takes the single write lock before the count
//! check); `lock_rows` is appended to the read of the clinician's capacity
//! row (` FOR UPDATE` on PostgreSQL, so concurrent acceptances for one
//! clinician queue on that row and each counts the places after the previous
//! one committed).

macro_rules! matching_adapter {
    ($store:ident, $db:ty, $row:ty, begin = $begin:literal, lock_rows = $lock:literal, gate_writes = $gate_writes:literal) => {
        mod matching_adapter {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::matching::*;
            use crate::measurement::MeasurementStore as _;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use tapestry_domain::ids::{ClientId, PracticeId, UserId};
            use uuid::Uuid;

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            /// SQLite acceptances in this process queue here before
            /// `BEGIN IMMEDIATE` (an async wait instead of the busy handler's
            /// polling); correctness rests on the immediate transaction.
            static WRITE_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

            async fn gate() -> Option<tokio::sync::MutexGuard<'static, ()>> {
                if $gate_writes {
                    Some(WRITE_GATE.lock().await)
                } else {
                    None
                }
            }

            fn to_i32(v: i64, what: &str) -> StoreResult<i32> {
                i32::try_from(v).map_err(|e| corrupt(what, e))
            }

            const LOAD: &str = "SELECT COUNT(*) FROM clinician_matches WHERE practice_id = $1 AND clinician = $2 AND ended_at IS NULL";
            const WEEK: &str = "SELECT COUNT(*) FROM clinician_matches WHERE practice_id = $1 AND clinician = $2 AND accepted_at >= $3";

            impl $store {
                /// A match row, its reasons and switch reason opened from the vault.
                async fn match_from(&self, row: &$row) -> StoreResult<ClinicianMatch> {
                    let id: Uuid = row.try_get("id")?;
                    let practice_id = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let sealed: String = row.try_get("reasons")?;
                    let reasons = self.open_text(practice_id, "clinician_matches", "reasons", id, &sealed).await?;
                    let end_reason = match row.try_get::<Option<String>, _>("end_reason")? {
                        Some(sealed) => Some(self.open_text(practice_id, "clinician_matches", "end_reason", id, &sealed).await?),
                        None => None,
                    };
                    let source: String = row.try_get("source")?;
                    Ok(ClinicianMatch {
                        id,
                        practice_id,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        clinician: UserId::from_uuid(row.try_get("clinician")?),
                        score: row.try_get("score")?,
                        reasons: serde_json::from_str(&reasons).map_err(|e| corrupt("clinician_matches.reasons", e))?,
                        source: MatchSource::parse(&source).ok_or_else(|| corrupt("clinician_matches.source", &source))?,
                        accepted_at: row.try_get("accepted_at")?,
                        ended_at: row.try_get("ended_at")?,
                        end_reason,
                    })
                }

                async fn matches_from(&self, rows: &[$row]) -> StoreResult<Vec<ClinicianMatch>> {
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        out.push(self.match_from(row).await?);
                    }
                    Ok(out)
                }

                /// A batch run row, its per-client lines opened from the vault.
                async fn run_from(&self, row: &$row) -> StoreResult<MatchRun> {
                    let id: Uuid = row.try_get("id")?;
                    let practice_id = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let sealed: String = row.try_get("result")?;
                    let result = self.open_text(practice_id, "match_runs", "result", id, &sealed).await?;
                    Ok(MatchRun {
                        id,
                        practice_id,
                        run_by: UserId::from_uuid(row.try_get("run_by")?),
                        clients: row.try_get("clients")?,
                        assigned: row.try_get("assigned")?,
                        total_score: row.try_get("total_score")?,
                        result: serde_json::from_str(&result).map_err(|e| corrupt("match_runs.result", e))?,
                        created_at: row.try_get("created_at")?,
                    })
                }

                /// The profile with its load and this week's new clients
                /// recomputed from accepted matches.
                async fn profile_from(&self, row: &$row, week_start: DateTime<Utc>) -> StoreResult<StoredMatchingProfile> {
                    let practice = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let clinician = UserId::from_uuid(row.try_get("clinician")?);
                    let sealed: String = row.try_get("profile")?;
                    let text = self.open_text(practice, "matching_profiles", "profile", clinician.as_uuid(), &sealed).await?;
                    let mut profile: tapestry_domain::matching::profile::ClinicianProfile =
                        serde_json::from_str(&text).map_err(|e| corrupt("matching_profiles.profile", e))?;
                    let load: i64 = sqlx::query_scalar(LOAD)
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .fetch_one(self.pool())
                        .await?;
                    let week: i64 = sqlx::query_scalar(WEEK)
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .bind(week_start)
                        .fetch_one(self.pool())
                        .await?;
                    profile.capacity.current_load = to_i32(load, "clinician_matches count")?;
                    profile.capacity.new_clients_this_week = to_i32(week, "clinician_matches week count")?;
                    Ok(StoredMatchingProfile {
                        practice_id: practice,
                        clinician,
                        profile,
                        updated_at: row.try_get("updated_at")?,
                    })
                }

                async fn accept_once(&self, m: &ClinicianMatch, week_start: DateTime<Utc>, switch_reason: Option<&str>) -> StoreResult<()> {
                    // The keyring is loaded (or created) before the transaction takes the
                    // write lock; sealing inside it is then pure computation.
                    let keyring = self.keyring(m.practice_id).await?;
                    let seal = |table: &str, column: &str, row: Uuid, plain: &str| {
                        crate::vault::Vault::seal(&keyring, &crate::vault::field(m.practice_id, table, column, row), plain)
                    };
                    let _gate = gate().await;
                    let mut tx = self.pool().begin_with($begin).await?;
                    let limits = sqlx::query(concat!(
                        "SELECT caseload_limit, new_clients_per_week FROM matching_profiles WHERE practice_id = $1 AND clinician = $2",
                        $lock
                    ))
                    .bind(m.practice_id.as_uuid())
                    .bind(m.clinician.as_uuid())
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some(limits) = limits else {
                        return Err(StoreError::NotFound("matching profile"));
                    };
                    let caseload: i64 = limits.try_get("caseload_limit")?;
                    let per_week: i64 = limits.try_get("new_clients_per_week")?;
                    let load: i64 = sqlx::query_scalar(LOAD)
                        .bind(m.practice_id.as_uuid())
                        .bind(m.clinician.as_uuid())
                        .fetch_one(&mut *tx)
                        .await?;
                    let week: i64 = sqlx::query_scalar(WEEK)
                        .bind(m.practice_id.as_uuid())
                        .bind(m.clinician.as_uuid())
                        .bind(week_start)
                        .fetch_one(&mut *tx)
                        .await?;
                    if load >= caseload || week >= per_week {
                        return Err(StoreError::Conflict(NO_FREE_PLACE));
                    }
                    let current: Option<Uuid> = sqlx::query_scalar("SELECT id FROM clinician_matches WHERE practice_id = $1 AND client_id = $2 AND ended_at IS NULL")
                        .bind(m.practice_id.as_uuid())
                        .bind(m.client_id.as_uuid())
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(current) = current {
                        let Some(reason) = switch_reason.map(str::trim).filter(|r| !r.is_empty()) else {
                            return Err(StoreError::Conflict(SWITCH_NEEDS_REASON));
                        };
                        let reason = seal("clinician_matches", "end_reason", current, reason)?;
                        sqlx::query("UPDATE clinician_matches SET ended_at = $1, end_reason = $2 WHERE id = $3")
                            .bind(m.accepted_at)
                            .bind(reason)
                            .bind(current)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let plain = serde_json::to_string(&m.reasons).map_err(|e| corrupt("clinician_matches.reasons", e))?;
                    let reasons = seal("clinician_matches", "reasons", m.id, &plain)?;
                    sqlx::query("INSERT INTO clinician_matches (id, practice_id, client_id, clinician, score, reasons, source, accepted_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                        .bind(m.id)
                        .bind(m.practice_id.as_uuid())
                        .bind(m.client_id.as_uuid())
                        .bind(m.clinician.as_uuid())
                        .bind(m.score)
                        .bind(reasons)
                        .bind(m.source.as_str())
                        .bind(m.accepted_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "client already has a current clinician"))?;
                    tx.commit().await?;
                    Ok(())
                }
            }

            /// Deadlock (40P01) or serialization failure (40001).
            fn is_retryable(e: &StoreError) -> bool {
                matches!(e, StoreError::Backend(sqlx::Error::Database(db))
                    if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
            }

            #[async_trait]
            impl MatchingStore for $store {
                async fn put_matching_profile(&self, p: &StoredMatchingProfile) -> StoreResult<()> {
                    let plain = serde_json::to_string(&p.profile).map_err(|e| corrupt("matching_profiles.profile", e))?;
                    let text = self.seal_text(p.practice_id, "matching_profiles", "profile", p.clinician.as_uuid(), &plain).await?;
                    sqlx::query("INSERT INTO matching_profiles (practice_id, clinician, profile, caseload_limit, new_clients_per_week, updated_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (practice_id, clinician) DO UPDATE SET profile = excluded.profile, caseload_limit = excluded.caseload_limit, new_clients_per_week = excluded.new_clients_per_week, updated_at = excluded.updated_at")
                        .bind(p.practice_id.as_uuid())
                        .bind(p.clinician.as_uuid())
                        .bind(text)
                        .bind(i64::from(p.profile.capacity.caseload_limit))
                        .bind(i64::from(p.profile.capacity.new_clients_per_week))
                        .bind(p.updated_at)
                        .execute(self.pool())
                        .await?;
                    Ok(())
                }

                async fn matching_profile(&self, practice: PracticeId, clinician: UserId, week_start: DateTime<Utc>) -> StoreResult<Option<StoredMatchingProfile>> {
                    let row = sqlx::query("SELECT * FROM matching_profiles WHERE practice_id = $1 AND clinician = $2")
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.profile_from(&row, week_start).await?)),
                        None => Ok(None),
                    }
                }

                async fn matching_profiles(&self, practice: PracticeId, week_start: DateTime<Utc>) -> StoreResult<Vec<StoredMatchingProfile>> {
                    let rows = sqlx::query("SELECT * FROM matching_profiles WHERE practice_id = $1 ORDER BY clinician")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.profile_from(row, week_start).await?);
                    }
                    Ok(out)
                }

                async fn put_match_request(&self, r: &StoredMatchRequest) -> StoreResult<()> {
                    let plain = serde_json::to_string(&r.request).map_err(|e| corrupt("match_requests.request", e))?;
                    let text = self.seal_text(r.practice_id, "match_requests", "request", r.client_id.as_uuid(), &plain).await?;
                    sqlx::query("INSERT INTO match_requests (practice_id, client_id, request, created_at) VALUES ($1,$2,$3,$4) ON CONFLICT (practice_id, client_id) DO UPDATE SET request = excluded.request, created_at = excluded.created_at")
                        .bind(r.practice_id.as_uuid())
                        .bind(r.client_id.as_uuid())
                        .bind(text)
                        .bind(r.created_at)
                        .execute(self.pool())
                        .await?;
                    Ok(())
                }

                async fn match_request(&self, practice: PracticeId, client: ClientId) -> StoreResult<Option<StoredMatchRequest>> {
                    let row = sqlx::query("SELECT request, created_at FROM match_requests WHERE practice_id = $1 AND client_id = $2")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let sealed: String = row.try_get("request")?;
                    let text = self.open_text(practice, "match_requests", "request", client.as_uuid(), &sealed).await?;
                    Ok(Some(StoredMatchRequest {
                        practice_id: practice,
                        client_id: client,
                        request: serde_json::from_str(&text).map_err(|e| corrupt("match_requests.request", e))?,
                        created_at: row.try_get("created_at")?,
                    }))
                }

                async fn match_requests(&self, practice: PracticeId) -> StoreResult<Vec<StoredMatchRequest>> {
                    let rows = sqlx::query("SELECT client_id, request, created_at FROM match_requests WHERE practice_id = $1 ORDER BY created_at, client_id")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        let client = ClientId::from_uuid(row.try_get("client_id")?);
                        let sealed: String = row.try_get("request")?;
                        let text = self.open_text(practice, "match_requests", "request", client.as_uuid(), &sealed).await?;
                        out.push(StoredMatchRequest {
                            practice_id: practice,
                            client_id: client,
                            request: serde_json::from_str(&text).map_err(|e| corrupt("match_requests.request", e))?,
                            created_at: row.try_get("created_at")?,
                        });
                    }
                    Ok(out)
                }

                async fn insert_match_offer(&self, o: &MatchOffer) -> StoreResult<()> {
                    let plain = serde_json::to_string(&o.result).map_err(|e| corrupt("match_offers.result", e))?;
                    let text = self.seal_text(o.practice_id, "match_offers", "result", o.id, &plain).await?;
                    sqlx::query("INSERT INTO match_offers (id, practice_id, client_id, result, created_at) VALUES ($1,$2,$3,$4,$5)")
                        .bind(o.id)
                        .bind(o.practice_id.as_uuid())
                        .bind(o.client_id.as_uuid())
                        .bind(text)
                        .bind(o.created_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "match offer id already exists"))?;
                    Ok(())
                }

                async fn latest_match_offer(&self, practice: PracticeId, client: ClientId) -> StoreResult<Option<MatchOffer>> {
                    let row = sqlx::query("SELECT id, result, created_at FROM match_offers WHERE practice_id = $1 AND client_id = $2 ORDER BY created_at DESC, id DESC LIMIT 1")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let id: Uuid = row.try_get("id")?;
                    let sealed: String = row.try_get("result")?;
                    let text = self.open_text(practice, "match_offers", "result", id, &sealed).await?;
                    Ok(Some(MatchOffer {
                        id,
                        practice_id: practice,
                        client_id: client,
                        result: serde_json::from_str(&text).map_err(|e| corrupt("match_offers.result", e))?,
                        created_at: row.try_get("created_at")?,
                    }))
                }

                async fn accept_match(&self, m: &ClinicianMatch, week_start: DateTime<Utc>, switch_reason: Option<&str>) -> StoreResult<()> {
                    let mut attempt = 0u32;
                    loop {
                        attempt += 1;
                        match self.accept_once(m, week_start, switch_reason).await {
                            Err(e) if attempt < 5 && is_retryable(&e) => continue,
                            other => return other,
                        }
                    }
                }

                async fn current_match(&self, practice: PracticeId, client: ClientId) -> StoreResult<Option<ClinicianMatch>> {
                    let row = sqlx::query("SELECT * FROM clinician_matches WHERE practice_id = $1 AND client_id = $2 AND ended_at IS NULL")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.match_from(&row).await?)),
                        None => Ok(None),
                    }
                }

                async fn matches_for_client(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<ClinicianMatch>> {
                    let rows = sqlx::query("SELECT * FROM clinician_matches WHERE practice_id = $1 AND client_id = $2 ORDER BY accepted_at DESC, CASE WHEN ended_at IS NULL THEN 0 ELSE 1 END, ended_at DESC, id")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    self.matches_from(&rows).await
                }

                async fn insert_match_run(&self, run: &MatchRun) -> StoreResult<()> {
                    let plain = serde_json::to_string(&run.result).map_err(|e| corrupt("match_runs.result", e))?;
                    let text = self.seal_text(run.practice_id, "match_runs", "result", run.id, &plain).await?;
                    sqlx::query("INSERT INTO match_runs (id, practice_id, run_by, clients, assigned, total_score, result, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                        .bind(run.id)
                        .bind(run.practice_id.as_uuid())
                        .bind(run.run_by.as_uuid())
                        .bind(run.clients)
                        .bind(run.assigned)
                        .bind(run.total_score)
                        .bind(text)
                        .bind(run.created_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "match run id already exists"))?;
                    Ok(())
                }

                async fn match_runs(&self, practice: PracticeId, limit: u32) -> StoreResult<Vec<MatchRun>> {
                    let rows = sqlx::query("SELECT * FROM match_runs WHERE practice_id = $1 ORDER BY created_at DESC, id LIMIT $2")
                        .bind(practice.as_uuid())
                        .bind(i64::from(limit))
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.run_from(row).await?);
                    }
                    Ok(out)
                }

                async fn open_waitlist_task(&self, t: &tapestry_domain::ingest::ClinicianTask) -> StoreResult<bool> {
                    if !t.kind.is_intake_team() {
                        return Err(StoreError::Conflict("kind: only waitlist tasks are opened here"));
                    }
                    // The episode must be the client's in this practice, and a named
                    // risk flag the episode's (one round trip for both).
                    let found = sqlx::query(
                        "SELECT CASE WHEN EXISTS (SELECT 1 FROM episodes WHERE id = $1 AND practice_id = $2 AND client_id = $3) THEN 1 ELSE 0 END AS episode, \
                                CASE WHEN EXISTS (SELECT 1 FROM risk_flags WHERE id = $4 AND practice_id = $2 AND episode_id = $1) THEN 1 ELSE 0 END AS flag",
                    )
                    .bind(t.episode_id.as_uuid())
                    .bind(t.practice_id.as_uuid())
                    .bind(t.client_id.as_uuid())
                    .bind(t.risk_flag_id.map(|f| f.as_uuid()))
                    .fetch_one(self.pool())
                    .await?;
                    if found.try_get::<i32, _>("episode")? != 1 {
                        return Err(StoreError::NotFound("episode_id: not this client's episode in this practice"));
                    }
                    match (t.kind, t.risk_flag_id) {
                        (tapestry_domain::ingest::TaskKind::WaitlistRisk, None) => {
                            return Err(StoreError::Conflict("risk_flag_id: a waitlist risk task names the risk flag it is about"));
                        }
                        (_, Some(_)) if found.try_get::<i32, _>("flag")? != 1 => {
                            return Err(StoreError::NotFound("risk_flag_id: not a risk flag of this episode"));
                        }
                        _ => {}
                    }
                    let done = crate::adapter_measurement::insert_clinician_task!(t, " ON CONFLICT DO NOTHING")
                    .execute(self.pool())
                    .await?;
                    Ok(done.rows_affected() == 1)
                }

                async fn close_waitlist_task(
                    &self,
                    practice: PracticeId,
                    task: tapestry_domain::ids::TaskId,
                    closed_by: UserId,
                    note: &str,
                    at: DateTime<Utc>,
                ) -> StoreResult<tapestry_domain::ingest::ClinicianTask> {
                    let note = note.trim();
                    if note.is_empty() {
                        return Err(StoreError::Conflict(TASK_NOTE_REQUIRED));
                    }
                    let row = sqlx::query("SELECT episode_id, kind, completed_at FROM clinician_tasks WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(task.as_uuid())
                        .fetch_optional(self.pool())
                        .await?
                        .ok_or(StoreError::NotFound("task"))?;
                    let kind: String = row.try_get("kind")?;
                    if !tapestry_domain::ingest::TaskKind::parse(&kind).is_some_and(|k| k.is_intake_team()) {
                        return Err(StoreError::NotFound("task"));
                    }
                    if row.try_get::<Option<DateTime<Utc>>, _>("completed_at")?.is_some() {
                        return Err(StoreError::Conflict(TASK_ALREADY_CLOSED));
                    }
                    let episode = tapestry_domain::ids::EpisodeId::from_uuid(row.try_get("episode_id")?);
                    let sealed = self.seal_text(practice, "clinician_tasks", "closing_note", task.as_uuid(), note).await?;
                    let done = sqlx::query(
                        "UPDATE clinician_tasks SET completed_at = $1, closed_by = $2, closing_note = $3 WHERE practice_id = $4 AND id = $5 AND completed_at IS NULL \
                         AND EXISTS (SELECT 1 FROM users WHERE id = $2 AND practice_id = $4 AND status = 'active' AND role IN ('practice_admin','practice_owner'))",
                    )
                    .bind(at)
                    .bind(closed_by.as_uuid())
                    .bind(sealed)
                    .bind(practice.as_uuid())
                    .bind(task.as_uuid())
                    .execute(self.pool())
                    .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("closed_by: an active admin or owner of this practice (or the task was closed meanwhile)"));
                    }
                    self.tasks_for_episode(practice, episode)
                        .await?
                        .into_iter()
                        .find(|t| t.id == task)
                        .ok_or(StoreError::NotFound("task"))
                }

                async fn waitlist_task_closure(
                    &self,
                    practice: PracticeId,
                    task: tapestry_domain::ids::TaskId,
                ) -> StoreResult<Option<(UserId, String)>> {
                    let row = sqlx::query("SELECT closed_by, closing_note FROM clinician_tasks WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(task.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let (Some(by), Some(sealed)) = (
                        row.try_get::<Option<Uuid>, _>("closed_by")?,
                        row.try_get::<Option<String>, _>("closing_note")?,
                    ) else {
                        return Ok(None);
                    };
                    let note = self.open_text(practice, "clinician_tasks", "closing_note", task.as_uuid(), &sealed).await?;
                    Ok(Some((UserId::from_uuid(by), note)))
                }
            }
        }
    };
}

pub(crate) use matching_adapter;
