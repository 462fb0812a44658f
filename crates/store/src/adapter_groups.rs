//! The group-programme adapter body, shared by both backends. It shares the
//! scheduling adapter's write gate, per-clinician lock and overlap check, so
//! a group session and a one-to-one appointment of the same clinician can
//! never both hold the same time. Per-member notes are sealed.

macro_rules! groups_adapter {
    ($store:ident, $db:ty, $row:ty, $begin:literal) => {
        mod groups_adapter {
            use super::schedule_adapter::{
                gate, is_retryable, lock_clinician, overlap_or, pause_before_retry,
                MAX_ATTEMPTS, OVERLAP_CHECK,
            };
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::groups::*;
            use crate::schedule::OVERLAP;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use tapestry_domain::ids::{ClientId, PracticeId, UserId};
            use tapestry_domain::schedule::group::{
                Attendance, GroupId, GroupKind, GroupNote, GroupProgramme, GroupSession,
                Membership,
            };
            use tapestry_domain::schedule::{
                AppointmentId, AppointmentKind, AppointmentStatus, AppointmentType, Format,
            };
            use uuid::Uuid;

            const NOTES: &str = "group_notes";
            const CHAT: &str = "group_chat_lines";

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            fn group_from(row: &$row) -> StoreResult<GroupProgramme> {
                let kind: String = row.try_get("kind")?;
                let capacity: i64 = row.try_get("capacity")?;
                let measures: String = row.try_get("measures")?;
                Ok(GroupProgramme {
                    id: GroupId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    name: row.try_get("name")?,
                    kind: GroupKind::parse(&kind).map_err(|e| corrupt("group_programmes.kind", e))?,
                    facilitator: UserId::from_uuid(row.try_get("facilitator")?),
                    co_facilitator: row.try_get::<Option<Uuid>, _>("co_facilitator")?.map(UserId::from_uuid),
                    capacity: u32::try_from(capacity).map_err(|e| corrupt("group_programmes.capacity", e))?,
                    self_enrolment: row.try_get("self_enrolment")?,
                    measures: serde_json::from_str(&measures).map_err(|e| corrupt("group_programmes.measures", e))?,
                    created_at: row.try_get("created_at")?,
                })
            }

            fn membership_from(row: &$row) -> StoreResult<Membership> {
                Ok(Membership {
                    group_id: GroupId::from_uuid(row.try_get("group_id")?),
                    client_id: ClientId::from_uuid(row.try_get("client_id")?),
                    joined_at: row.try_get("joined_at")?,
                    left_at: row.try_get("left_at")?,
                })
            }

            fn session_from(row: &$row) -> StoreResult<GroupSession> {
                let minutes: i64 = row.try_get("minutes")?;
                let format: String = row.try_get("format")?;
                let status: String = row.try_get("status")?;
                Ok(GroupSession {
                    id: AppointmentId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    group_id: GroupId::from_uuid(row.try_get("group_id")?),
                    facilitator: UserId::from_uuid(row.try_get("facilitator")?),
                    co_facilitator: row.try_get::<Option<Uuid>, _>("co_facilitator")?.map(UserId::from_uuid),
                    appointment_type: AppointmentType {
                        kind: AppointmentKind::Group,
                        minutes: u32::try_from(minutes).map_err(|e| corrupt("group_sessions.minutes", e))?,
                        format: Format::parse(&format).map_err(|e| corrupt("group_sessions.format", e))?,
                    },
                    starts_at: row.try_get("starts_at")?,
                    ends_at: row.try_get("ends_at")?,
                    status: AppointmentStatus::parse(&status).map_err(|e| corrupt("group_sessions.status", e))?,
                    series_id: row.try_get::<Option<Uuid>, _>("series_id")?.map(tapestry_domain::schedule::SeriesId::from_uuid),
                    created_at: row.try_get("created_at")?,
                })
            }

            fn attendance_from(row: &$row) -> StoreResult<AttendanceRecord> {
                let status: String = row.try_get("status")?;
                Ok(AttendanceRecord {
                    session_id: AppointmentId::from_uuid(row.try_get("session_id")?),
                    client_id: ClientId::from_uuid(row.try_get("client_id")?),
                    status: Attendance::parse(&status).map_err(|e| corrupt("group_attendance.status", e))?,
                    recorded_by: UserId::from_uuid(row.try_get("recorded_by")?),
                    recorded_at: row.try_get("recorded_at")?,
                })
            }

            impl $store {
                /// The facilitators' locks (in a fixed order, so two
                /// bookings never wait on each other in a cycle), the
                /// overlap check for each, then the insert.
                async fn book_group_session_once(&self, s: &GroupSession) -> StoreResult<()> {
                    let _gate = gate().await;
                    let mut tx = self.pool().begin_with($begin).await?;
                    let mut people: Vec<UserId> = std::iter::once(s.facilitator).chain(s.co_facilitator).collect();
                    people.sort();
                    for person in &people {
                        lock_clinician(&mut tx, s.practice_id, *person).await?;
                    }
                    for person in &people {
                        let clash = sqlx::query(OVERLAP_CHECK)
                            .bind(s.practice_id.as_uuid())
                            .bind(person.as_uuid())
                            .bind(s.starts_at)
                            .bind(s.ends_at)
                            .bind(s.id.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await?;
                        if clash.is_some() {
                            return Err(StoreError::Conflict(OVERLAP));
                        }
                    }
                    sqlx::query("INSERT INTO group_sessions (id, practice_id, group_id, facilitator, co_facilitator, minutes, format, starts_at, ends_at, status, created_at, status_changed_at, series_id) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'booked',$10,$10,$11)")
                        .bind(s.id.as_uuid())
                        .bind(s.practice_id.as_uuid())
                        .bind(s.group_id.as_uuid())
                        .bind(s.facilitator.as_uuid())
                        .bind(s.co_facilitator.map(|u| u.as_uuid()))
                        .bind(i64::from(s.appointment_type.minutes))
                        .bind(s.appointment_type.format.as_str())
                        .bind(s.starts_at)
                        .bind(s.ends_at)
                        .bind(s.created_at)
                        .bind(s.series_id.map(|x| x.as_uuid()))
                        .execute(&mut *tx)
                        .await
                        .map_err(overlap_or)?;
                    tx.commit().await.map_err(overlap_or)
                }
            }

            #[async_trait]
            impl GroupStore for $store {
                async fn append_group_chat_line(&self, l: &GroupChatLine) -> StoreResult<()> {
                    let body = self.seal_text(l.practice_id, CHAT, "body", l.id, &l.body).await?;
                    let done = sqlx::query("INSERT INTO group_chat_lines (id, practice_id, group_id, session_id, sender, body, sent_at) SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM group_sessions WHERE practice_id = $2 AND group_id = $3 AND id = $4)")
                        .bind(l.id)
                        .bind(l.practice_id.as_uuid())
                        .bind(l.group_id.as_uuid())
                        .bind(l.session_id.as_uuid())
                        .bind(l.sender.as_uuid())
                        .bind(body)
                        .bind(l.sent_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "group chat line id already exists"))?;
                    if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("group session")) }
                }

                async fn group_chat_transcript(&self, practice: PracticeId, group: GroupId) -> StoreResult<Vec<GroupChatLine>> {
                    let rows = sqlx::query("SELECT * FROM group_chat_lines WHERE practice_id = $1 AND group_id = $2 ORDER BY sent_at, id")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: Uuid = r.try_get("id")?;
                        let sealed: String = r.try_get("body")?;
                        out.push(GroupChatLine {
                            id,
                            practice_id: practice,
                            group_id: group,
                            session_id: AppointmentId::from_uuid(r.try_get("session_id")?),
                            sender: UserId::from_uuid(r.try_get("sender")?),
                            body: self.open_text(practice, CHAT, "body", id, &sealed).await?,
                            sent_at: r.try_get("sent_at")?,
                        });
                    }
                    Ok(out)
                }

                async fn insert_group(&self, g: &GroupProgramme) -> StoreResult<()> {
                    let measures = serde_json::to_string(&g.measures).map_err(|e| corrupt("group_programmes.measures", e))?;
                    sqlx::query("INSERT INTO group_programmes (id, practice_id, name, kind, facilitator, co_facilitator, capacity, self_enrolment, measures, active_members, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,0,$10)")
                        .bind(g.id.as_uuid())
                        .bind(g.practice_id.as_uuid())
                        .bind(g.name.clone())
                        .bind(g.kind.as_str())
                        .bind(g.facilitator.as_uuid())
                        .bind(g.co_facilitator.map(|u| u.as_uuid()))
                        .bind(i64::from(g.capacity))
                        .bind(g.self_enrolment)
                        .bind(measures)
                        .bind(g.created_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "group id already exists"))?;
                    Ok(())
                }

                async fn group(&self, practice: PracticeId, id: GroupId) -> StoreResult<Option<GroupProgramme>> {
                    let row = sqlx::query("SELECT * FROM group_programmes WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    row.as_ref().map(group_from).transpose()
                }

                async fn groups_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<GroupProgramme>> {
                    let rows = sqlx::query("SELECT * FROM group_programmes WHERE practice_id = $1 ORDER BY created_at, id")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(group_from).collect()
                }

                async fn groups_for_client(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<GroupProgramme>> {
                    let rows = sqlx::query("SELECT g.* FROM group_programmes g JOIN group_members m ON m.group_id = g.id AND m.practice_id = g.practice_id WHERE g.practice_id = $1 AND m.client_id = $2 AND m.left_at IS NULL ORDER BY g.created_at, g.id")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(group_from).collect()
                }

                async fn add_member(&self, practice: PracticeId, m: &Membership) -> StoreResult<()> {
                    let mut tx = self.pool().begin_with($begin).await?;
                    // The atomic counter update is the capacity rule: two
                    // concurrent joins for the last place serialise on the
                    // programme's row and only one finds room.
                    let room = sqlx::query("UPDATE group_programmes SET active_members = active_members + 1 WHERE practice_id = $1 AND id = $2 AND active_members < capacity")
                        .bind(practice.as_uuid())
                        .bind(m.group_id.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    if room.rows_affected() != 1 {
                        let exists = sqlx::query("SELECT id FROM group_programmes WHERE practice_id = $1 AND id = $2")
                            .bind(practice.as_uuid())
                            .bind(m.group_id.as_uuid())
                            .fetch_optional(&mut *tx)
                            .await?;
                        return Err(match exists {
                            Some(_) => StoreError::Conflict(GROUP_FULL),
                            None => StoreError::NotFound("group"),
                        });
                    }
                    sqlx::query("INSERT INTO group_members (practice_id, group_id, client_id, joined_at, left_at) VALUES ($1,$2,$3,$4,NULL)")
                        .bind(practice.as_uuid())
                        .bind(m.group_id.as_uuid())
                        .bind(m.client_id.as_uuid())
                        .bind(m.joined_at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, ALREADY_MEMBER))?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn remove_member(&self, practice: PracticeId, group: GroupId, client: ClientId, at: DateTime<Utc>) -> StoreResult<()> {
                    let mut tx = self.pool().begin_with($begin).await?;
                    let done = sqlx::query("UPDATE group_members SET left_at = $4 WHERE practice_id = $1 AND group_id = $2 AND client_id = $3 AND left_at IS NULL")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .bind(client.as_uuid())
                        .bind(at)
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("current group member"));
                    }
                    sqlx::query("UPDATE group_programmes SET active_members = active_members - 1 WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn memberships(&self, practice: PracticeId, group: GroupId) -> StoreResult<Vec<Membership>> {
                    let rows = sqlx::query("SELECT * FROM group_members WHERE practice_id = $1 AND group_id = $2 ORDER BY joined_at, client_id")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(membership_from).collect()
                }

                async fn book_group_session(&self, s: &GroupSession) -> StoreResult<()> {
                    if s.ends_at <= s.starts_at {
                        return Err(StoreError::Corrupt("group_sessions.ends_at: not after starts_at".into()));
                    }
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match self.book_group_session_once(s).await {
                            Err(e) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                                pause_before_retry(attempt).await;
                                continue;
                            }
                            other => return other,
                        }
                    }
                }

                async fn group_session(&self, practice: PracticeId, id: AppointmentId) -> StoreResult<Option<GroupSession>> {
                    let row = sqlx::query("SELECT * FROM group_sessions WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    row.as_ref().map(session_from).transpose()
                }

                async fn group_sessions(&self, practice: PracticeId, group: GroupId) -> StoreResult<Vec<GroupSession>> {
                    let rows = sqlx::query("SELECT * FROM group_sessions WHERE practice_id = $1 AND group_id = $2 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(session_from).collect()
                }

                async fn group_sessions_for_clinician(&self, practice: PracticeId, clinician: UserId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<GroupSession>> {
                    let rows = sqlx::query("SELECT * FROM group_sessions WHERE practice_id = $1 AND (facilitator = $2 OR co_facilitator = $2) AND starts_at < $4 AND ends_at > $3 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .bind(from)
                        .bind(to)
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(session_from).collect()
                }

                async fn booked_group_sessions_starting_between(&self, practice: PracticeId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<GroupSession>> {
                    let rows = sqlx::query("SELECT * FROM group_sessions WHERE practice_id = $1 AND status = 'booked' AND starts_at >= $2 AND starts_at < $3 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(from)
                        .bind(to)
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(session_from).collect()
                }

                async fn cancel_group_session(&self, practice: PracticeId, id: AppointmentId, at: DateTime<Utc>) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE group_sessions SET status = 'cancelled', status_changed_at = $3 WHERE practice_id = $1 AND id = $2 AND status = 'booked'")
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .bind(at)
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("booked group session"));
                    }
                    Ok(())
                }

                async fn set_attendance(&self, practice: PracticeId, r: &AttendanceRecord) -> StoreResult<()> {
                    sqlx::query("INSERT INTO group_attendance (practice_id, session_id, client_id, status, recorded_by, recorded_at) SELECT $1,$2,$3,$4,$5,$6 WHERE EXISTS (SELECT 1 FROM group_sessions WHERE practice_id = $1 AND id = $2) ON CONFLICT (session_id, client_id) DO UPDATE SET status = excluded.status, recorded_by = excluded.recorded_by, recorded_at = excluded.recorded_at")
                        .bind(practice.as_uuid())
                        .bind(r.session_id.as_uuid())
                        .bind(r.client_id.as_uuid())
                        .bind(r.status.as_str())
                        .bind(r.recorded_by.as_uuid())
                        .bind(r.recorded_at)
                        .execute(self.pool())
                        .await?;
                    Ok(())
                }

                async fn attendance(&self, practice: PracticeId, session: AppointmentId) -> StoreResult<Vec<AttendanceRecord>> {
                    let rows = sqlx::query("SELECT * FROM group_attendance WHERE practice_id = $1 AND session_id = $2 ORDER BY recorded_at, client_id")
                        .bind(practice.as_uuid())
                        .bind(session.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(attendance_from).collect()
                }

                async fn add_group_note(&self, n: &GroupNote) -> StoreResult<()> {
                    let body = self.seal_text(n.practice_id, NOTES, "body", n.id, &n.body).await?;
                    sqlx::query("INSERT INTO group_notes (id, practice_id, group_id, client_id, session_id, author, body, written_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                        .bind(n.id)
                        .bind(n.practice_id.as_uuid())
                        .bind(n.group_id.as_uuid())
                        .bind(n.client_id.as_uuid())
                        .bind(n.session_id.map(|s| s.as_uuid()))
                        .bind(n.author.as_uuid())
                        .bind(body)
                        .bind(n.written_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "group note id already exists"))?;
                    Ok(())
                }

                async fn group_notes(&self, practice: PracticeId, group: GroupId, client: ClientId) -> StoreResult<Vec<GroupNote>> {
                    let rows = sqlx::query("SELECT * FROM group_notes WHERE practice_id = $1 AND group_id = $2 AND client_id = $3 ORDER BY written_at, id")
                        .bind(practice.as_uuid())
                        .bind(group.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    let mut out = Vec::with_capacity(rows.len());
                    for r in &rows {
                        let id: Uuid = r.try_get("id")?;
                        let sealed: String = r.try_get("body")?;
                        out.push(GroupNote {
                            id,
                            practice_id: practice,
                            group_id: group,
                            client_id: client,
                            session_id: r.try_get::<Option<Uuid>, _>("session_id")?.map(AppointmentId::from_uuid),
                            author: UserId::from_uuid(r.try_get("author")?),
                            body: self.open_text(practice, NOTES, "body", id, &sealed).await?,
                            written_at: r.try_get("written_at")?,
                        });
                    }
                    Ok(out)
                }
            }
        }
    };
}

pub(crate) use groups_adapter;
