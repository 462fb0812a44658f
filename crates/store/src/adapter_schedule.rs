//! The scheduling adapter body, shared by both backends. Instantiated in
//! `sqlite.rs` and `postgres.rs`; `$begin` is the statement that opens a
//! booking transaction (`BEGIN IMMEDIATE` on SQLite takes the single write
//! lock before the overlap check, so checks and inserts cannot interleave;
//! plain `BEGIN` on PostgreSQL, where the exclusion constraint decides).

macro_rules! schedule_adapter {
    ($store:ident, $db:ty, $row:ty, $begin:literal, $gate_writes:literal, $clinician_lock:literal) => {
        mod schedule_adapter {
            use super::$store;
            use crate::error::{StoreError, StoreResult};
            use crate::schedule::*;
            use async_trait::async_trait;
            use chrono::{DateTime, Utc};
            use sqlx::Row as _;
            use tapestry_domain::ids::{ClientId, PracticeId, UserId};
            use tapestry_domain::schedule::{
                Appointment, AppointmentId, AppointmentKind, AppointmentStatus, AppointmentType,
                Format, SeriesId,
            };
            use uuid::Uuid;

            fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
                StoreError::Corrupt(format!("{what}: {e}"))
            }

            /// An overlap refused by the database (PostgreSQL exclusion
            /// violation, SQLSTATE 23P01) is the same conflict as one found
            /// by the check.
            pub(super) fn overlap_or(e: sqlx::Error) -> StoreError {
                match &e {
                    sqlx::Error::Database(db) if db.code().as_deref() == Some("23P01") => {
                        StoreError::Conflict(OVERLAP)
                    }
                    _ => StoreError::unique_or(e, "appointment id already exists"),
                }
            }

            fn appointment_from(row: &$row) -> StoreResult<Appointment> {
                let kind: String = row.try_get("kind")?;
                let format: String = row.try_get("format")?;
                let minutes: i64 = row.try_get("minutes")?;
                let status: String = row.try_get("status")?;
                Ok(Appointment {
                    id: AppointmentId::from_uuid(row.try_get("id")?),
                    practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                    clinician: UserId::from_uuid(row.try_get("clinician")?),
                    client_id: ClientId::from_uuid(row.try_get("client_id")?),
                    appointment_type: AppointmentType {
                        kind: AppointmentKind::parse(&kind).map_err(|e| corrupt("appointments.kind", e))?,
                        minutes: u32::try_from(minutes).map_err(|e| corrupt("appointments.minutes", e))?,
                        format: Format::parse(&format).map_err(|e| corrupt("appointments.format", e))?,
                    },
                    starts_at: row.try_get("starts_at")?,
                    ends_at: row.try_get("ends_at")?,
                    status: AppointmentStatus::parse(&status).map_err(|e| corrupt("appointments.status", e))?,
                    late_cancel: row.try_get("late_cancel")?,
                    series_id: row.try_get::<Option<Uuid>, _>("series_id")?.map(SeriesId::from_uuid),
                    created_at: row.try_get("created_at")?,
                })
            }

            /// When `$gate_writes` (SQLite), bookings in this process queue
            /// here before `BEGIN IMMEDIATE`, so they wait on an async lock
            /// instead of SQLite's sleeping busy handler. Correctness does not
            /// depend on it (another process is still held off by the
            /// immediate transaction); it only removes the polling delay.
            static WRITE_GATE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

            pub(super) async fn gate() -> Option<tokio::sync::MutexGuard<'static, ()>> {
                if $gate_writes {
                    Some(WRITE_GATE.lock().await)
                } else {
                    None
                }
            }

            /// How often a booking that lost a deadlock is retried.
            pub(super) const MAX_ATTEMPTS: u32 = 5;

            /// A short random pause before a retry, growing with the attempt,
            /// so that retried bookings do not meet in the same deadlock.
            pub(super) async fn pause_before_retry(attempt: u32) {
                use rand::Rng as _;
                let ms = rand::thread_rng().gen_range(1..=5 * u64::from(attempt));
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
            }

            /// Deadlock (40P01) or serialization failure (40001).
            pub(super) fn is_retryable(e: &StoreError) -> bool {
                matches!(e, StoreError::Backend(sqlx::Error::Database(db))
                    if matches!(db.code().as_deref(), Some("40P01") | Some("40001")))
            }

            /// Whether clinician `$2` is busy in `[$3, $4)` (ignoring id
            /// `$5`): a non-cancelled appointment, or a non-cancelled group
            /// session they facilitate or co-facilitate.
            pub(super) const OVERLAP_CHECK: &str = "SELECT id FROM appointments WHERE practice_id = $1 AND clinician = $2 AND status <> 'cancelled' AND starts_at < $4 AND ends_at > $3 AND id <> $5 UNION ALL SELECT id FROM group_sessions WHERE practice_id = $1 AND (facilitator = $2 OR co_facilitator = $2) AND status <> 'cancelled' AND starts_at < $4 AND ends_at > $3 AND id <> $5 LIMIT 1";
            const INSERT: &str = "INSERT INTO appointments (id, practice_id, clinician, client_id, kind, minutes, format, starts_at, ends_at, status, late_cancel, series_id, created_at, status_changed_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,'booked',$10,$11,$12,$12)";

            /// Takes the per-clinician transaction lock where the backend has
            /// one (`$clinician_lock`: PostgreSQL `pg_advisory_xact_lock`), so
            /// bookings for one clinician queue in the database instead of
            /// racing into the exclusion constraint, where concurrent inserts
            /// can deadlock. The constraint remains the guarantee.
            pub(super) async fn lock_clinician(
                conn: &mut <$db as sqlx::Database>::Connection,
                practice: PracticeId,
                clinician: UserId,
            ) -> StoreResult<()> {
                if $clinician_lock.is_empty() {
                    return Ok(());
                }
                let mixed = practice.as_uuid().as_u128() ^ clinician.as_uuid().as_u128().rotate_left(64);
                let key = i64::from_le_bytes(mixed.to_le_bytes()[..8].try_into().unwrap_or([0; 8]));
                sqlx::query($clinician_lock).bind(key).execute(&mut *conn).await?;
                Ok(())
            }

            /// The overlap check and insert inside an open transaction.
            async fn insert_checked(
                conn: &mut <$db as sqlx::Database>::Connection,
                a: &Appointment,
                ignore: Option<AppointmentId>,
            ) -> StoreResult<()> {
                if a.ends_at <= a.starts_at {
                    return Err(StoreError::Corrupt("appointments.ends_at: not after starts_at".into()));
                }
                lock_clinician(&mut *conn, a.practice_id, a.clinician).await?;
                let clash = sqlx::query(OVERLAP_CHECK)
                    .bind(a.practice_id.as_uuid())
                    .bind(a.clinician.as_uuid())
                    .bind(a.starts_at)
                    .bind(a.ends_at)
                    .bind(ignore.unwrap_or(a.id).as_uuid())
                    .fetch_optional(&mut *conn)
                    .await?;
                if clash.is_some() {
                    return Err(StoreError::Conflict(OVERLAP));
                }
                sqlx::query(INSERT)
                    .bind(a.id.as_uuid())
                    .bind(a.practice_id.as_uuid())
                    .bind(a.clinician.as_uuid())
                    .bind(a.client_id.as_uuid())
                    .bind(a.appointment_type.kind.as_str())
                    .bind(i64::from(a.appointment_type.minutes))
                    .bind(a.appointment_type.format.as_str())
                    .bind(a.starts_at)
                    .bind(a.ends_at)
                    .bind(a.late_cancel)
                    .bind(a.series_id.map(|s| s.as_uuid()))
                    .bind(a.created_at)
                    .execute(&mut *conn)
                    .await
                    .map_err(overlap_or)?;
                Ok(())
            }

            impl $store {
                async fn reschedule_once(&self, practice: PracticeId, old: AppointmentId, late_cancel: bool, new: &Appointment) -> StoreResult<()> {
                    let _gate = gate().await;
                    let mut tx = self.pool().begin_with($begin).await?;
                    let done = sqlx::query("UPDATE appointments SET status = 'cancelled', late_cancel = $1, status_changed_at = $2 WHERE practice_id = $3 AND id = $4 AND status = 'booked'")
                        .bind(late_cancel)
                        .bind(new.created_at)
                        .bind(practice.as_uuid())
                        .bind(old.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("booked appointment"));
                    }
                    insert_checked(&mut tx, new, None).await?;
                    tx.commit().await.map_err(overlap_or)?;
                    Ok(())
                }

            }

            #[async_trait]
            impl ScheduleStore for $store {
                async fn set_client_time_zone(
                    &self,
                    practice: PracticeId,
                    client: ClientId,
                    time_zone: Option<&tapestry_domain::practice::TimeZoneName>,
                ) -> StoreResult<()> {
                    let done = sqlx::query("UPDATE clients SET time_zone = $1 WHERE practice_id = $2 AND id = $3")
                        .bind(time_zone.map(|z| z.as_str().to_string()))
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .execute(&self.pool)
                        .await?;
                    if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("client")) }
                }
                async fn put_clinician_schedule(&self, s: &ClinicianSchedule) -> StoreResult<()> {
                    let availability = serde_json::to_string(&s.availability).map_err(|e| corrupt("clinician_schedules.availability", e))?;
                    let rules = serde_json::to_string(&s.rules).map_err(|e| corrupt("clinician_schedules.rules", e))?;
                    let policy = serde_json::to_string(&s.policy).map_err(|e| corrupt("clinician_schedules.policy", e))?;
                    sqlx::query("INSERT INTO clinician_schedules (practice_id, clinician, time_zone, availability, rules, policy, updated_at) VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (practice_id, clinician) DO UPDATE SET time_zone = excluded.time_zone, availability = excluded.availability, rules = excluded.rules, policy = excluded.policy, updated_at = excluded.updated_at")
                        .bind(s.practice_id.as_uuid())
                        .bind(s.clinician.as_uuid())
                        .bind(&s.availability.time_zone)
                        .bind(availability)
                        .bind(rules)
                        .bind(policy)
                        .bind(s.updated_at)
                        .execute(self.pool())
                        .await?;
                    Ok(())
                }

                async fn clinician_schedule(&self, practice: PracticeId, clinician: UserId) -> StoreResult<Option<ClinicianSchedule>> {
                    let row = sqlx::query("SELECT * FROM clinician_schedules WHERE practice_id = $1 AND clinician = $2")
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    let Some(row) = row else { return Ok(None) };
                    let availability: String = row.try_get("availability")?;
                    let rules: String = row.try_get("rules")?;
                    let policy: String = row.try_get("policy")?;
                    Ok(Some(ClinicianSchedule {
                        practice_id: practice,
                        clinician,
                        availability: serde_json::from_str(&availability).map_err(|e| corrupt("clinician_schedules.availability", e))?,
                        rules: serde_json::from_str(&rules).map_err(|e| corrupt("clinician_schedules.rules", e))?,
                        policy: serde_json::from_str(&policy).map_err(|e| corrupt("clinician_schedules.policy", e))?,
                        updated_at: row.try_get("updated_at")?,
                    }))
                }

                async fn add_appointment_type(&self, practice: PracticeId, t: AppointmentType) -> StoreResult<()> {
                    sqlx::query("INSERT INTO appointment_types (practice_id, kind, minutes, format) VALUES ($1,$2,$3,$4) ON CONFLICT DO NOTHING")
                        .bind(practice.as_uuid())
                        .bind(t.kind.as_str())
                        .bind(i64::from(t.minutes))
                        .bind(t.format.as_str())
                        .execute(self.pool())
                        .await?;
                    Ok(())
                }

                async fn appointment_types(&self, practice: PracticeId) -> StoreResult<Vec<AppointmentType>> {
                    let rows = sqlx::query("SELECT kind, minutes, format FROM appointment_types WHERE practice_id = $1 ORDER BY kind, minutes, format")
                        .bind(practice.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter()
                        .map(|r| {
                            let kind: String = r.try_get("kind")?;
                            let format: String = r.try_get("format")?;
                            let minutes: i64 = r.try_get("minutes")?;
                            Ok(AppointmentType {
                                kind: AppointmentKind::parse(&kind).map_err(|e| corrupt("appointment_types.kind", e))?,
                                minutes: u32::try_from(minutes).map_err(|e| corrupt("appointment_types.minutes", e))?,
                                format: Format::parse(&format).map_err(|e| corrupt("appointment_types.format", e))?,
                            })
                        })
                        .collect()
                }

                async fn book_appointment(&self, a: &Appointment) -> StoreResult<()> {
                    // Two concurrent inserts checking the exclusion constraint
                    // against each other can deadlock on PostgreSQL; the
                    // victim is retried, and the retry then sees the winner.
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        let result = async {
                            let _gate = gate().await;
                            let mut tx = self.pool().begin_with($begin).await?;
                            insert_checked(&mut tx, a, None).await?;
                            tx.commit().await.map_err(overlap_or)
                        }
                        .await;
                        match result {
                            Err(e) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                                pause_before_retry(attempt).await;
                                continue;
                            }
                            other => return other,
                        }
                    }
                }

                async fn book_series(&self, series: &Series, occurrences: &[Appointment]) -> StoreResult<Vec<OccurrenceOutcome>> {
                    let recurrence = serde_json::to_string(&series.recurrence).map_err(|e| corrupt("appointment_series.recurrence", e))?;
                    sqlx::query("INSERT INTO appointment_series (id, practice_id, clinician, client_id, recurrence, created_at) VALUES ($1,$2,$3,$4,$5,$6)")
                        .bind(series.id.as_uuid())
                        .bind(series.practice_id.as_uuid())
                        .bind(series.clinician.as_uuid())
                        .bind(series.client_id.as_uuid())
                        .bind(recurrence)
                        .bind(series.created_at)
                        .execute(self.pool())
                        .await
                        .map_err(|e| StoreError::unique_or(e, "series already exists"))?;
                    let mut out = Vec::with_capacity(occurrences.len());
                    for o in occurrences {
                        let mut o = o.clone();
                        o.series_id = Some(series.id);
                        match self.book_appointment(&o).await {
                            Ok(()) => out.push(OccurrenceOutcome::Booked(o.id)),
                            Err(StoreError::Conflict(OVERLAP)) => out.push(OccurrenceOutcome::Conflict(o.starts_at)),
                            Err(e) => return Err(e),
                        }
                    }
                    Ok(out)
                }

                async fn appointment(&self, practice: PracticeId, id: AppointmentId) -> StoreResult<Option<Appointment>> {
                    let row = sqlx::query("SELECT * FROM appointments WHERE practice_id = $1 AND id = $2")
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .fetch_optional(self.pool())
                        .await?;
                    row.as_ref().map(appointment_from).transpose()
                }

                async fn appointments_for_clinician(&self, practice: PracticeId, clinician: UserId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<Appointment>> {
                    let rows = sqlx::query("SELECT * FROM appointments WHERE practice_id = $1 AND clinician = $2 AND starts_at < $4 AND ends_at > $3 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .bind(from)
                        .bind(to)
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(appointment_from).collect()
                }

                async fn booked_starting_between(&self, practice: PracticeId, from: DateTime<Utc>, to: DateTime<Utc>) -> StoreResult<Vec<Appointment>> {
                    let rows = sqlx::query("SELECT * FROM appointments WHERE practice_id = $1 AND status = 'booked' AND starts_at >= $2 AND starts_at < $3 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(from)
                        .bind(to)
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(appointment_from).collect()
                }

                async fn appointments_for_client(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<Appointment>> {
                    let rows = sqlx::query("SELECT * FROM appointments WHERE practice_id = $1 AND client_id = $2 ORDER BY starts_at, id")
                        .bind(practice.as_uuid())
                        .bind(client.as_uuid())
                        .fetch_all(self.pool())
                        .await?;
                    rows.iter().map(appointment_from).collect()
                }

                async fn set_appointment_status(&self, practice: PracticeId, id: AppointmentId, from: AppointmentStatus, to: AppointmentStatus, late_cancel: bool, at: DateTime<Utc>) -> StoreResult<()> {
                    // Un-cancelling would bypass the overlap rule: refused here.
                    if from == AppointmentStatus::Cancelled && to != AppointmentStatus::Cancelled {
                        return Err(StoreError::Conflict("a cancelled appointment cannot be restored; book it again"));
                    }
                    let done = sqlx::query("UPDATE appointments SET status = $1, late_cancel = $2, status_changed_at = $3 WHERE practice_id = $4 AND id = $5 AND status = $6")
                        .bind(to.as_str())
                        .bind(late_cancel)
                        .bind(at)
                        .bind(practice.as_uuid())
                        .bind(id.as_uuid())
                        .bind(from.as_str())
                        .execute(self.pool())
                        .await?;
                    if done.rows_affected() != 1 {
                        return Err(StoreError::NotFound("appointment in the expected status"));
                    }
                    Ok(())
                }

                async fn reschedule(&self, practice: PracticeId, old: AppointmentId, late_cancel: bool, new: &Appointment) -> StoreResult<()> {
                    if new.practice_id != practice {
                        return Err(StoreError::NotFound("appointment"));
                    }
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        match self.reschedule_once(practice, old, late_cancel, new).await {
                            Err(e) if attempt < MAX_ATTEMPTS && is_retryable(&e) => {
                                pause_before_retry(attempt).await;
                                continue;
                            }
                            other => return other,
                        }
                    }
                }
                async fn replace_feed_token(&self, practice: PracticeId, clinician: UserId, token_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                    let mut tx = self.pool().begin().await?;
                    sqlx::query("UPDATE calendar_feed_tokens SET revoked_at = $1 WHERE practice_id = $2 AND clinician = $3 AND revoked_at IS NULL")
                        .bind(at)
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("INSERT INTO calendar_feed_tokens (token_hash, practice_id, clinician, created_at) VALUES ($1,$2,$3,$4)")
                        .bind(token_hash)
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .bind(at)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "feed token already exists"))?;
                    tx.commit().await?;
                    Ok(())
                }

                async fn revoke_feed_tokens(&self, practice: PracticeId, clinician: UserId, at: DateTime<Utc>) -> StoreResult<u64> {
                    let done = sqlx::query("UPDATE calendar_feed_tokens SET revoked_at = $1 WHERE practice_id = $2 AND clinician = $3 AND revoked_at IS NULL")
                        .bind(at)
                        .bind(practice.as_uuid())
                        .bind(clinician.as_uuid())
                        .execute(self.pool())
                        .await?;
                    Ok(done.rows_affected())
                }

                async fn feed_owner(&self, token_hash: &str) -> StoreResult<Option<(PracticeId, UserId)>> {
                    let row = sqlx::query("SELECT practice_id, clinician FROM calendar_feed_tokens WHERE token_hash = $1 AND revoked_at IS NULL")
                        .bind(token_hash)
                        .fetch_optional(self.pool())
                        .await?;
                    Ok(match row {
                        Some(r) => Some((PracticeId::from_uuid(r.try_get("practice_id")?), UserId::from_uuid(r.try_get("clinician")?))),
                        None => None,
                    })
                }
            }
        }
    };
}

pub(crate) use schedule_adapter;
