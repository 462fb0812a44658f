//! The clinical record's SQL (formulations, plan versions, session reviews),
//! shared by both backends. See `records.rs` for the trait and the rules.

macro_rules! records_adapter {
    ($store:ident, $db:ty, $row:ty) => {
        mod records_impl {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::measurement::MeasurementStore;
            use crate::records::*;
            use async_trait::async_trait;
            use serde::{Deserialize, Serialize};
            use sqlx::Row as _;
            use tapestry_domain::formulation::Formulation;
            use tapestry_domain::ids::*;
            use tapestry_domain::ingest::StoredRiskFlag;
            use tapestry_domain::plan::Plan;
            use uuid::Uuid;

            /// Attempts at the next version number when concurrent writers collide.
            const VERSION_ATTEMPTS: usize = 16;

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn version_of(row: &$row, col: &str) -> StoreResult<u32> {
                let v: i64 = row.try_get(col)?;
                u32::try_from(v).map_err(|e| corrupt(col, e))
            }

            fn opt_version(row: &$row, col: &str) -> StoreResult<Option<u32>> {
                let v: Option<i64> = row.try_get(col)?;
                v.map(u32::try_from).transpose().map_err(|e| corrupt(col, e))
            }

            fn check_reason(field: &'static str, reason: &str) -> StoreResult<()> {
                if reason.trim().is_empty() {
                    return Err(StoreError::Conflict(field));
                }
                if reason.chars().count() > MAX_REASON_CHARS {
                    return Err(StoreError::Conflict("reason: longer than 4000 characters"));
                }
                Ok(())
            }

            #[derive(Serialize, Deserialize)]
            struct FormulationBody {
                formulation: Formulation,
                reason: String,
            }

            #[derive(Serialize, Deserialize)]
            struct PlanBody {
                plan: Plan,
                origin: PlanOrigin,
            }

            impl $store {
                async fn open_record_json<T: serde::de::DeserializeOwned>(&self, practice: PracticeId, table: &'static str, row: &$row) -> StoreResult<(Uuid, T)> {
                    let id: Uuid = row.try_get("id")?;
                    let sealed: String = row.try_get("body")?;
                    let text = self.open_text(practice, table, "body", id, &sealed).await?;
                    let value = serde_json::from_str(&text).map_err(|e| corrupt(table, e))?;
                    Ok((id, value))
                }

                async fn formulation_from(&self, practice: PracticeId, row: &$row) -> StoreResult<FormulationRecord> {
                    let (id, body): (Uuid, FormulationBody) = self.open_record_json(practice, "formulations", row).await?;
                    Ok(FormulationRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: practice,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        version: version_of(row, "version")?,
                        formulation: body.formulation,
                        reason: body.reason,
                        author: UserId::from_uuid(row.try_get("author")?),
                        created_at: row.try_get("created_at")?,
                    })
                }

                async fn plan_from(&self, practice: PracticeId, row: &$row) -> StoreResult<PlanRecord> {
                    let (id, body): (Uuid, PlanBody) = self.open_record_json(practice, "plan_versions", row).await?;
                    let status: String = row.try_get("status")?;
                    let version = version_of(row, "version")?;
                    let mut plan = body.plan;
                    plan.version = version;
                    Ok(PlanRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: practice,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        version,
                        formulation_version: opt_version(row, "formulation_version")?,
                        engine_version: row.try_get("engine_version")?,
                        status: PlanStatus::parse(&status).ok_or_else(|| corrupt("plan_versions.status", &status))?,
                        plan,
                        origin: body.origin,
                        created_by: UserId::from_uuid(row.try_get("created_by")?),
                        created_at: row.try_get("created_at")?,
                    })
                }

                async fn review_from(&self, practice: PracticeId, row: &$row) -> StoreResult<SessionReviewRecord> {
                    let (id, content): (Uuid, ReviewContent) = self.open_record_json(practice, "session_reviews", row).await?;
                    Ok(SessionReviewRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: practice,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        plan_version: opt_version(row, "plan_version")?,
                        content,
                        created_by: UserId::from_uuid(row.try_get("created_by")?),
                        created_at: row.try_get("created_at")?,
                    })
                }

            }

            /// Runs a versioned INSERT until it gets a number: `MAX(version) + 1`
            /// for the client is computed in the INSERT itself; a concurrent writer
            /// that took the same number makes the unique index fail and the next
            /// attempt sees it. No row comes back when the client is not in the practice.
            macro_rules! insert_versioned {
                ($pool:expr, $query:expr) => {{
                    let mut result: StoreResult<u32> = Err(StoreError::Conflict("version: too many concurrent writers, try again"));
                    for _ in 0..VERSION_ATTEMPTS {
                        match $query.fetch_optional($pool).await {
                            Ok(Some(row)) => {
                                result = version_of(&row, "version");
                                break;
                            }
                            Ok(None) => {
                                result = Err(StoreError::NotFound("client"));
                                break;
                            }
                            Err(sqlx::Error::Database(db)) if db.is_unique_violation() => continue,
                            Err(e) => {
                                result = Err(e.into());
                                break;
                            }
                        }
                    }
                    result
                }};
            }

            const INSERT_FORMULATION: &str = "INSERT INTO formulations (id, practice_id, client_id, version, body, author, created_at) \
                SELECT $1, $2, $3, COALESCE((SELECT MAX(version) FROM formulations WHERE practice_id = $2 AND client_id = $3), 0) + 1, $4, $5, $6 \
                WHERE EXISTS (SELECT 1 FROM clients WHERE id = $3 AND practice_id = $2) RETURNING version";
            const INSERT_PLAN: &str = "INSERT INTO plan_versions (id, practice_id, client_id, version, body, created_by, created_at, formulation_version, engine_version, status) \
                SELECT $1, $2, $3, COALESCE((SELECT MAX(version) FROM plan_versions WHERE practice_id = $2 AND client_id = $3), 0) + 1, $4, $5, $6, $7, $8, $9 \
                WHERE EXISTS (SELECT 1 FROM clients WHERE id = $3 AND practice_id = $2) RETURNING version";

            #[async_trait]
            impl RecordsStore for $store {
                async fn insert_formulation(&self, new: &NewFormulation<'_>) -> StoreResult<FormulationRecord> {
                    check_reason("reason: a formulation version needs a reason", new.reason)?;
                    let id = Uuid::new_v4();
                    let body = FormulationBody { formulation: new.formulation.clone(), reason: new.reason.trim().to_string() };
                    let json = serde_json::to_string(&body).map_err(|e| corrupt("formulations.body", e))?;
                    let sealed = self.seal_text(new.practice_id, "formulations", "body", id, &json).await?;
                    let version = insert_versioned!(
                        self.pool(),
                        sqlx::query(INSERT_FORMULATION)
                            .bind(id)
                            .bind(new.practice_id.as_uuid())
                            .bind(new.client_id.as_uuid())
                            .bind(&sealed)
                            .bind(new.author.as_uuid())
                            .bind(new.at)
                    )?;
                    Ok(FormulationRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: new.practice_id,
                        client_id: new.client_id,
                        version,
                        formulation: body.formulation,
                        reason: body.reason,
                        author: new.author,
                        created_at: new.at,
                    })
                }

                async fn formulations(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<FormulationRecord>> {
                    let rows = sqlx::query("SELECT * FROM formulations WHERE practice_id = $1 AND client_id = $2 ORDER BY version")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.formulation_from(practice, row).await?);
                    }
                    Ok(out)
                }

                async fn latest_formulation(&self, practice: PracticeId, client: ClientId) -> StoreResult<Option<FormulationRecord>> {
                    let row = sqlx::query("SELECT * FROM formulations WHERE practice_id = $1 AND client_id = $2 ORDER BY version DESC LIMIT 1")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.formulation_from(practice, &row).await?)),
                        None => Ok(None),
                    }
                }

                async fn insert_plan_version(&self, new: &NewPlanVersion<'_>) -> StoreResult<PlanRecord> {
                    if let Some(reason) = new.origin.reason() {
                        check_reason("reason: a reason is required for every clinician decision", reason)?;
                    }
                    if new.engine_version.trim().is_empty() {
                        return Err(StoreError::Conflict("engine_version: required"));
                    }
                    let id = Uuid::new_v4();
                    let body = PlanBody { plan: new.plan.clone(), origin: new.origin.clone() };
                    let json = serde_json::to_string(&body).map_err(|e| corrupt("plan_versions.body", e))?;
                    let sealed = self.seal_text(new.practice_id, "plan_versions", "body", id, &json).await?;
                    let version = insert_versioned!(
                        self.pool(),
                        sqlx::query(INSERT_PLAN)
                            .bind(id)
                            .bind(new.practice_id.as_uuid())
                            .bind(new.client_id.as_uuid())
                            .bind(&sealed)
                            .bind(new.created_by.as_uuid())
                            .bind(new.at)
                            .bind(new.formulation_version.map(i64::from))
                            .bind(new.engine_version)
                            .bind(new.status.as_str())
                    )?;
                    let mut plan = body.plan;
                    plan.version = version;
                    Ok(PlanRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: new.practice_id,
                        client_id: new.client_id,
                        version,
                        formulation_version: new.formulation_version,
                        engine_version: new.engine_version.to_string(),
                        status: new.status,
                        plan,
                        origin: body.origin,
                        created_by: new.created_by,
                        created_at: new.at,
                    })
                }

                async fn plan_versions(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<PlanRecord>> {
                    let rows = sqlx::query("SELECT * FROM plan_versions WHERE practice_id = $1 AND client_id = $2 ORDER BY version")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.plan_from(practice, row).await?);
                    }
                    Ok(out)
                }

                async fn plan_version(&self, practice: PracticeId, client: ClientId, version: u32) -> StoreResult<Option<PlanRecord>> {
                    let row = sqlx::query("SELECT * FROM plan_versions WHERE practice_id = $1 AND client_id = $2 AND version = $3")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .bind(i64::from(version))
                        .fetch_optional(self.pool())
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.plan_from(practice, &row).await?)),
                        None => Ok(None),
                    }
                }

                async fn latest_plan(&self, practice: PracticeId, client: ClientId) -> StoreResult<Option<PlanRecord>> {
                    let row = sqlx::query("SELECT * FROM plan_versions WHERE practice_id = $1 AND client_id = $2 ORDER BY version DESC LIMIT 1")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    match row {
                        Some(row) => Ok(Some(self.plan_from(practice, &row).await?)),
                        None => Ok(None),
                    }
                }

                async fn insert_session_review(&self, new: &NewSessionReview<'_>) -> StoreResult<SessionReviewRecord> {
                    let id = Uuid::new_v4();
                    let json = serde_json::to_string(new.content).map_err(|e| corrupt("session_reviews.body", e))?;
                    let sealed = self.seal_text(new.practice_id, "session_reviews", "body", id, &json).await?;
                    let done = sqlx::query(
                        "INSERT INTO session_reviews (id, practice_id, client_id, plan_version, body, created_by, created_at) \
                         SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $3 AND practice_id = $2)",
                    )
                    .bind(id)
                    .bind(new.practice_id.as_uuid())
                    .bind(new.client_id.as_uuid())
                    .bind(new.plan_version.map(i64::from))
                    .bind(&sealed)
                    .bind(new.created_by.as_uuid())
                    .bind(new.at)
                    .execute(self.pool())
                    .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("client"));
                    }
                    Ok(SessionReviewRecord {
                        id: RecordId::from_uuid(id),
                        practice_id: new.practice_id,
                        client_id: new.client_id,
                        plan_version: new.plan_version,
                        content: new.content.clone(),
                        created_by: new.created_by,
                        created_at: new.at,
                    })
                }

                async fn session_reviews(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<SessionReviewRecord>> {
                    let rows = sqlx::query("SELECT * FROM session_reviews WHERE practice_id = $1 AND client_id = $2 ORDER BY created_at, id")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for row in &rows {
                        out.push(self.review_from(practice, row).await?);
                    }
                    Ok(out)
                }

                async fn risk_flag(&self, practice: PracticeId, flag: RecordId) -> StoreResult<Option<StoredRiskFlag>> {
                    let row = sqlx::query("SELECT episode_id FROM risk_flags WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(flag.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let episode = EpisodeId::from_uuid(row.try_get("episode_id")?);
                    Ok(self
                        .risk_flags_for_episode(practice, episode)
                        .await?
                        .into_iter()
                        .find(|f| f.id == flag))
                }
            }
        }
    };
}

pub(crate) use records_adapter;
