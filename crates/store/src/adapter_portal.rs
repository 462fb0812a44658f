//! The portal adapter body (notes, safety plans, homework, intake drafts),
//! shared by both backends. Clinical content is sealed per row with the
//! vault; the structured content is JSON inside the seal.

macro_rules! portal_adapter {
    ($store:ident, $db:ty, $row:ty) => {
        mod portal_adapter {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::portal::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use tapestry_domain::homework::{HomeworkStatus, WorksheetAnswers};
            use tapestry_domain::intake::IntakeDraft;
            use tapestry_domain::ids::{ClientId, PracticeId, UserId};
            use tapestry_domain::notes::{NoteBody, NoteKind, NoteTemplate};
            use tapestry_domain::safety_plan::SafetyPlanBody;
            use uuid::Uuid;

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            impl $store {
                async fn seal_json<T: serde::Serialize>(&self, p: PracticeId, table: &str, column: &str, row: Uuid, value: &T) -> StoreResult<String> {
                    let json = serde_json::to_string(value).map_err(|e| corrupt(table, e))?;
                    self.seal_text(p, table, column, row, &json).await
                }

                async fn open_json<T: serde::de::DeserializeOwned>(&self, p: PracticeId, table: &str, column: &str, row: Uuid, stored: &str) -> StoreResult<T> {
                    let json = self.open_text(p, table, column, row, stored).await?;
                    serde_json::from_str(&json).map_err(|e| corrupt(&format!("{table}.{column}"), e))
                }

                async fn note_from(&self, row: &$row) -> StoreResult<SessionNote> {
                    let id: Uuid = row.try_get("id")?;
                    let practice_id = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let kind: String = row.try_get("kind")?;
                    let template: String = row.try_get("template")?;
                    let sealed: String = row.try_get("body")?;
                    Ok(SessionNote {
                        id,
                        practice_id,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        author: UserId::from_uuid(row.try_get("author")?),
                        kind: NoteKind::parse(&kind).map_err(|e| corrupt("session_notes.kind", e))?,
                        template: NoteTemplate::parse(&template).map_err(|e| corrupt("session_notes.template", e))?,
                        body: self.open_json(practice_id, "session_notes", "body", id, &sealed).await?,
                        signed_at: row.try_get("signed_at")?,
                        cosigned_by: row.try_get::<Option<Uuid>, _>("cosigned_by")?.map(UserId::from_uuid),
                        cosigned_at: row.try_get("cosigned_at")?,
                        created_at: row.try_get("created_at")?,
                        updated_at: row.try_get("updated_at")?,
                    })
                }

                async fn homework_from(&self, row: &$row) -> StoreResult<Homework> {
                    let id: Uuid = row.try_get("id")?;
                    let practice_id = PracticeId::from_uuid(row.try_get("practice_id")?);
                    let status: String = row.try_get("status")?;
                    let sealed: String = row.try_get("answers")?;
                    let answers = self.open_json(practice_id, "homework", "answers", id, &sealed).await?;
                    Ok(Homework {
                        id,
                        practice_id,
                        client_id: ClientId::from_uuid(row.try_get("client_id")?),
                        assigned_by: UserId::from_uuid(row.try_get("assigned_by")?),
                        technique: row.try_get("technique")?,
                        status: HomeworkStatus::parse(&status).map_err(|e| corrupt("homework.status", e))?,
                        answers,
                        assigned_at: row.try_get("assigned_at")?,
                        updated_at: row.try_get("updated_at")?,
                        submitted_at: row.try_get("submitted_at")?,
                        reviewed_at: row.try_get("reviewed_at")?,
                    })
                }

                async fn notes_where(&self, sql: &str, p: PracticeId, other: Uuid) -> StoreResult<Vec<SessionNote>> {
                    let rows = sqlx::query(sql).bind(p.as_uuid()).bind(other).fetch_all(&self.pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push(self.note_from(r).await?);
                    }
                    Ok(out)
                }

                async fn homework_where(&self, sql: &str, p: PracticeId, other: Option<Uuid>) -> StoreResult<Vec<Homework>> {
                    let mut q = sqlx::query(sql).bind(p.as_uuid());
                    if let Some(o) = other {
                        q = q.bind(o);
                    }
                    let rows = q.fetch_all(&self.pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        out.push(self.homework_from(r).await?);
                    }
                    Ok(out)
                }

                async fn signed_state(&self, p: PracticeId, id: Uuid) -> StoreResult<Option<bool>> {
                    let row = sqlx::query("SELECT signed_at FROM session_notes WHERE practice_id = $1 AND id = $2")
                        .bind(p.as_uuid()).bind(id).fetch_optional(&self.pool).await?;
                    match row {
                        None => Ok(None),
                        Some(r) => Ok(Some(r.try_get::<Option<DateTime<Utc>>, _>("signed_at")?.is_some())),
                    }
                }
            }

            #[async_trait]
            impl PortalStore for $store {
                async fn insert_note(&self, n: &SessionNote) -> StoreResult<()> {
                    let body = self.seal_json(n.practice_id, "session_notes", "body", n.id, &n.body).await?;
                    sqlx::query("INSERT INTO session_notes (id, practice_id, client_id, author, kind, template, body, signed_at, cosigned_by, cosigned_at, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,NULL,NULL,NULL,$8,$9)")
                        .bind(n.id).bind(n.practice_id.as_uuid()).bind(n.client_id.as_uuid()).bind(n.author.as_uuid())
                        .bind(n.kind.as_str()).bind(n.template.as_str()).bind(body).bind(n.created_at).bind(n.updated_at)
                        .execute(&self.pool).await
                        .map_err(|e| StoreError::unique_or(e, "note id already exists"))?;
                    Ok(())
                }

                async fn update_note_draft(&self, p: PracticeId, id: Uuid, body: &NoteBody, at: DateTime<Utc>) -> StoreResult<()> {
                    match self.signed_state(p, id).await? {
                        None => return Err(StoreError::NotFound("note")),
                        Some(true) => return Err(StoreError::Conflict(NOTE_SIGNED)),
                        Some(false) => {}
                    }
                    let sealed = self.seal_json(p, "session_notes", "body", id, body).await?;
                    let done = sqlx::query("UPDATE session_notes SET body = $3, updated_at = $4 WHERE practice_id = $1 AND id = $2 AND signed_at IS NULL")
                        .bind(p.as_uuid()).bind(id).bind(sealed).bind(at).execute(&self.pool).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict(NOTE_SIGNED));
                    }
                    Ok(())
                }

                async fn sign_note(&self, p: PracticeId, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                    match self.signed_state(p, id).await? {
                        None => return Err(StoreError::NotFound("note")),
                        Some(true) => return Err(StoreError::Conflict(NOTE_SIGNED)),
                        Some(false) => {}
                    }
                    let done = sqlx::query("UPDATE session_notes SET signed_at = $3, updated_at = $3 WHERE practice_id = $1 AND id = $2 AND signed_at IS NULL")
                        .bind(p.as_uuid()).bind(id).bind(at).execute(&self.pool).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict(NOTE_SIGNED));
                    }
                    Ok(())
                }

                async fn cosign_note(&self, p: PracticeId, id: Uuid, supervisor: UserId, at: DateTime<Utc>) -> StoreResult<()> {
                    match self.signed_state(p, id).await? {
                        None => return Err(StoreError::NotFound("note")),
                        Some(false) => return Err(StoreError::Conflict("only a signed note can be co-signed")),
                        Some(true) => {}
                    }
                    let done = sqlx::query("UPDATE session_notes SET cosigned_by = $3, cosigned_at = $4 WHERE practice_id = $1 AND id = $2 AND cosigned_at IS NULL")
                        .bind(p.as_uuid()).bind(id).bind(supervisor.as_uuid()).bind(at).execute(&self.pool).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict("note already co-signed"));
                    }
                    Ok(())
                }

                async fn note(&self, p: PracticeId, id: Uuid) -> StoreResult<Option<SessionNote>> {
                    let row = sqlx::query("SELECT * FROM session_notes WHERE practice_id = $1 AND id = $2")
                        .bind(p.as_uuid()).bind(id).fetch_optional(&self.pool).await?;
                    match row {
                        Some(r) => Ok(Some(self.note_from(&r).await?)),
                        None => Ok(None),
                    }
                }

                async fn notes_for_client(&self, p: PracticeId, client: ClientId) -> StoreResult<Vec<SessionNote>> {
                    self.notes_where("SELECT * FROM session_notes WHERE practice_id = $1 AND client_id = $2 ORDER BY created_at DESC, id", p, client.as_uuid()).await
                }

                async fn unsigned_notes_by(&self, p: PracticeId, author: UserId) -> StoreResult<Vec<SessionNote>> {
                    self.notes_where("SELECT * FROM session_notes WHERE practice_id = $1 AND author = $2 AND signed_at IS NULL ORDER BY created_at, id", p, author.as_uuid()).await
                }

                async fn add_addendum(&self, p: PracticeId, a: &Addendum) -> StoreResult<()> {
                    match self.signed_state(p, a.note_id).await? {
                        None => return Err(StoreError::NotFound("note")),
                        Some(false) => return Err(StoreError::Conflict("a draft is edited, not addended")),
                        Some(true) => {}
                    }
                    let body = self.seal_text(p, "note_addenda", "body", a.id, &a.text).await?;
                    sqlx::query("INSERT INTO note_addenda (id, practice_id, note_id, author, body, created_at) VALUES ($1,$2,$3,$4,$5,$6)")
                        .bind(a.id).bind(p.as_uuid()).bind(a.note_id).bind(a.author.as_uuid()).bind(body).bind(a.created_at)
                        .execute(&self.pool).await
                        .map_err(|e| StoreError::unique_or(e, "addendum id already exists"))?;
                    Ok(())
                }

                async fn addenda(&self, p: PracticeId, note: Uuid) -> StoreResult<Vec<Addendum>> {
                    let rows = sqlx::query("SELECT * FROM note_addenda WHERE practice_id = $1 AND note_id = $2 ORDER BY created_at, id")
                        .bind(p.as_uuid()).bind(note).fetch_all(&self.pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: Uuid = r.try_get("id")?;
                        let sealed: String = r.try_get("body")?;
                        out.push(Addendum {
                            id,
                            note_id: r.try_get("note_id")?,
                            author: UserId::from_uuid(r.try_get("author")?),
                            text: self.open_text(p, "note_addenda", "body", id, &sealed).await?,
                            created_at: r.try_get("created_at")?,
                        });
                    }
                    Ok(out)
                }

                async fn save_safety_plan(&self, p: PracticeId, client: ClientId, author: UserId, body: &SafetyPlanBody, at: DateTime<Utc>) -> StoreResult<u32> {
                    let id = Uuid::new_v4();
                    let sealed = self.seal_json(p, "safety_plans", "body", id, body).await?;
                    let row = sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM safety_plans WHERE practice_id = $1 AND client_id = $2")
                        .bind(p.as_uuid()).bind(client.as_uuid()).fetch_one(&self.pool).await?;
                    let latest: i64 = row.try_get("v")?;
                    let version = latest + 1;
                    // Two writers racing for the same number: the unique key refuses one.
                    sqlx::query("INSERT INTO safety_plans (id, practice_id, client_id, version, author, body, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)")
                        .bind(id).bind(p.as_uuid()).bind(client.as_uuid()).bind(version).bind(author.as_uuid()).bind(sealed).bind(at)
                        .execute(&self.pool).await
                        .map_err(|e| StoreError::unique_or(e, "safety plan changed meanwhile; reload and save again"))?;
                    u32::try_from(version).map_err(|e| corrupt("safety_plans.version", e))
                }

                async fn safety_plans(&self, p: PracticeId, client: ClientId) -> StoreResult<Vec<SafetyPlanVersion>> {
                    let rows = sqlx::query("SELECT * FROM safety_plans WHERE practice_id = $1 AND client_id = $2 ORDER BY version")
                        .bind(p.as_uuid()).bind(client.as_uuid()).fetch_all(&self.pool).await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: Uuid = r.try_get("id")?;
                        let sealed: String = r.try_get("body")?;
                        let version: i64 = r.try_get("version")?;
                        out.push(SafetyPlanVersion {
                            id,
                            client_id: client,
                            version: u32::try_from(version).map_err(|e| corrupt("safety_plans.version", e))?,
                            author: UserId::from_uuid(r.try_get("author")?),
                            body: self.open_json(p, "safety_plans", "body", id, &sealed).await?,
                            created_at: r.try_get("created_at")?,
                        });
                    }
                    Ok(out)
                }

                async fn assign_homework(&self, h: &Homework) -> StoreResult<()> {
                    let empty = self.seal_json(h.practice_id, "homework", "answers", h.id, &WorksheetAnswers::default()).await?;
                    sqlx::query("INSERT INTO homework (id, practice_id, client_id, assigned_by, technique, status, answers, assigned_at, updated_at, submitted_at, reviewed_at) VALUES ($1,$2,$3,$4,$5,'assigned',$7,$6,$6,NULL,NULL)")
                        .bind(h.id).bind(h.practice_id.as_uuid()).bind(h.client_id.as_uuid()).bind(h.assigned_by.as_uuid())
                        .bind(&h.technique).bind(h.assigned_at).bind(empty)
                        .execute(&self.pool).await
                        .map_err(|e| StoreError::unique_or(e, "homework id already exists"))?;
                    Ok(())
                }

                async fn homework(&self, p: PracticeId, id: Uuid) -> StoreResult<Option<Homework>> {
                    let row = sqlx::query("SELECT * FROM homework WHERE practice_id = $1 AND id = $2")
                        .bind(p.as_uuid()).bind(id).fetch_optional(&self.pool).await?;
                    match row {
                        Some(r) => Ok(Some(self.homework_from(&r).await?)),
                        None => Ok(None),
                    }
                }

                async fn homework_for_client(&self, p: PracticeId, client: ClientId) -> StoreResult<Vec<Homework>> {
                    self.homework_where("SELECT * FROM homework WHERE practice_id = $1 AND client_id = $2 ORDER BY assigned_at DESC, id", p, Some(client.as_uuid())).await
                }

                async fn save_homework_answers(&self, p: PracticeId, id: Uuid, answers: &WorksheetAnswers, submit: bool, at: DateTime<Utc>) -> StoreResult<()> {
                    let Some(current) = self.homework(p, id).await? else {
                        return Err(StoreError::NotFound("homework"));
                    };
                    if current.status == HomeworkStatus::Submitted {
                        return Err(StoreError::Conflict(HOMEWORK_SUBMITTED));
                    }
                    let sealed = self.seal_json(p, "homework", "answers", id, answers).await?;
                    let status = if submit { HomeworkStatus::Submitted } else { HomeworkStatus::Draft };
                    let submitted_at = if submit { Some(at) } else { None };
                    let done = sqlx::query("UPDATE homework SET answers = $3, status = $4, updated_at = $5, submitted_at = $6 WHERE practice_id = $1 AND id = $2 AND status <> 'submitted'")
                        .bind(p.as_uuid()).bind(id).bind(sealed).bind(status.as_str()).bind(at).bind(submitted_at)
                        .execute(&self.pool).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::Conflict(HOMEWORK_SUBMITTED));
                    }
                    Ok(())
                }

                async fn homework_returned(&self, p: PracticeId) -> StoreResult<Vec<Homework>> {
                    self.homework_where("SELECT * FROM homework WHERE practice_id = $1 AND status = 'submitted' AND reviewed_at IS NULL ORDER BY submitted_at, id", p, None).await
                }

                async fn mark_homework_reviewed(&self, p: PracticeId, id: Uuid, at: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE homework SET reviewed_at = $3 WHERE practice_id = $1 AND id = $2 AND status = 'submitted'")
                        .bind(p.as_uuid()).bind(id).bind(at).execute(&self.pool).await?;
                    if done.rows_affected() == 0 {
                        return Err(StoreError::NotFound("submitted homework"));
                    }
                    Ok(())
                }

                async fn save_intake_draft(&self, p: PracticeId, client: ClientId, draft: &IntakeDraft, at: DateTime<Utc>) -> StoreResult<()> {
                    let existing = sqlx::query("SELECT id FROM intake_drafts WHERE practice_id = $1 AND client_id = $2")
                        .bind(p.as_uuid()).bind(client.as_uuid()).fetch_optional(&self.pool).await?;
                    match existing {
                        Some(r) => {
                            let id: Uuid = r.try_get("id")?;
                            let sealed = self.seal_json(p, "intake_drafts", "body", id, draft).await?;
                            sqlx::query("UPDATE intake_drafts SET body = $2, updated_at = $3 WHERE id = $1")
                                .bind(id).bind(sealed).bind(at).execute(&self.pool).await?;
                        }
                        None => {
                            let id = Uuid::new_v4();
                            let sealed = self.seal_json(p, "intake_drafts", "body", id, draft).await?;
                            sqlx::query("INSERT INTO intake_drafts (id, practice_id, client_id, body, updated_at) VALUES ($1,$2,$3,$4,$5)")
                                .bind(id).bind(p.as_uuid()).bind(client.as_uuid()).bind(sealed).bind(at)
                                .execute(&self.pool).await
                                .map_err(|e| StoreError::unique_or(e, "intake draft saved meanwhile; try again"))?;
                        }
                    }
                    Ok(())
                }

                async fn intake_draft(&self, p: PracticeId, client: ClientId) -> StoreResult<Option<IntakeDraft>> {
                    let row = sqlx::query("SELECT id, body FROM intake_drafts WHERE practice_id = $1 AND client_id = $2")
                        .bind(p.as_uuid()).bind(client.as_uuid()).fetch_optional(&self.pool).await?;
                    match row {
                        Some(r) => {
                            let id: Uuid = r.try_get("id")?;
                            let sealed: String = r.try_get("body")?;
                            Ok(Some(self.open_json(p, "intake_drafts", "body", id, &sealed).await?))
                        }
                        None => Ok(None),
                    }
                }
            }
        }
    };
}

pub(crate) use portal_adapter;
