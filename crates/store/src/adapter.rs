//! The body shared by both adapters. The SQL below is portable between
//! SQLite and PostgreSQL (numbered `$n` parameters, standard types); where the
//! engines differ, the schema differs (see the two migrations folders), not the
//! queries. The macro is instantiated once per backend in `sqlite.rs` and
//! `postgres.rs`, so there is one way to do each thing and two drivers.

/// What a backend keeps beside its pool, closed with the store: SQLite its ingest lane
/// (`sqlite/ingest.rs`); PostgreSQL nothing.
pub(crate) trait BesidePool: Default + Clone + std::fmt::Debug + Send + Sync {
    fn close(&self);
}

impl BesidePool for () {
    fn close(&self) {}
}

macro_rules! adapter {
    ($store:ident, $db:ty, $row:ty, $backend:expr, $migrator:expr, beside = $beside:ty) => {
        use crate::error::{StoreError, StoreResult};
        use crate::traits::*;
        use async_trait::async_trait;
        use chrono::{DateTime, NaiveDate, Utc};
        use sqlx::Row as _;
        use tapestry_domain::care::{CareRelationship, CareRole};
        use tapestry_domain::client::{Client, ClinicianProfile};
        use tapestry_domain::episode::{Episode, EpisodeStatus};
        use tapestry_domain::ids::*;
        use tapestry_domain::practice::{Practice, TimeZoneName};
        use tapestry_domain::submission::Submission;
        use tapestry_domain::user::{AccountStatus, Email, Role, User};
        use uuid::Uuid;

        /// A store on this backend.
        #[derive(Clone, Debug)]
        pub struct $store {
            pool: sqlx::Pool<$db>,
            /// Keys for encryption at rest (see `vault.rs`).
            vault: std::sync::Arc<crate::vault::Vault>,
            /// See [`crate::adapter::BesidePool`].
            beside: $beside,
        }

        impl $store {
            /// A store whose sealed columns use `key_file` (the configured
            /// `key_file`; without it nothing sealed can be read).
            pub fn from_pool_with_keys(pool: sqlx::Pool<$db>, key_file: crate::crypto::KeyFile) -> Self {
                Self { pool, vault: std::sync::Arc::new(crate::vault::Vault::new(key_file)), beside: Default::default() }
            }
            /// A store with a fresh, in-memory key file: for tests and tools
            /// that never reopen sealed data. The product opens stores with
            /// the configured key file (`tapestry_store::open`).
            pub fn from_pool(pool: sqlx::Pool<$db>) -> Self {
                Self::from_pool_with_keys(pool, crate::crypto::KeyFile::generate())
            }
            pub fn pool(&self) -> &sqlx::Pool<$db> {
                &self.pool
            }
        }

        fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
            StoreError::Corrupt(format!("{what}: {e}"))
        }

        fn practice_from(row: &$row) -> StoreResult<Practice> {
            Ok(Practice {
                id: PracticeId::from_uuid(row.try_get("id")?),
                name: row.try_get("name")?,
                time_zone: TimeZoneName::parse(&row.try_get::<String, _>("time_zone")?).map_err(|e| corrupt("practices.time_zone", e))?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn user_from(row: &$row) -> StoreResult<User> {
            Ok(User {
                id: UserId::from_uuid(row.try_get("id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                email: Email::parse(&row.try_get::<String, _>("email")?).map_err(|e| corrupt("users.email", e))?,
                display_name: row.try_get("display_name")?,
                role: Role::parse(&row.try_get::<String, _>("role")?).map_err(|e| corrupt("users.role", e))?,
                status: AccountStatus::parse(&row.try_get::<String, _>("status")?).map_err(|e| corrupt("users.status", e))?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn client_from(row: &$row) -> StoreResult<Client> {
            Ok(Client {
                id: ClientId::from_uuid(row.try_get("id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                user_id: row.try_get::<Option<Uuid>, _>("user_id")?.map(UserId::from_uuid),
                display_name: row.try_get("display_name")?,
                date_of_birth: row.try_get::<Option<NaiveDate>, _>("date_of_birth")?,
                jurisdiction: row.try_get("jurisdiction")?,
                time_zone: row
                    .try_get::<Option<String>, _>("time_zone")?
                    .map(|z| TimeZoneName::parse(&z).map_err(|e| corrupt("clients.time_zone", e)))
                    .transpose()?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn profile_from(row: &$row) -> StoreResult<ClinicianProfile> {
            let languages: String = row.try_get("languages")?;
            let limit: i64 = row.try_get("caseload_limit")?;
            Ok(ClinicianProfile {
                user_id: UserId::from_uuid(row.try_get("user_id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                professional_title: row.try_get("professional_title")?,
                bio: row.try_get("bio")?,
                languages: serde_json::from_str(&languages).map_err(|e| corrupt("clinician_profiles.languages", e))?,
                accepts_new_clients: row.try_get("accepts_new_clients")?,
                caseload_limit: u32::try_from(limit).map_err(|e| corrupt("clinician_profiles.caseload_limit", e))?,
            })
        }

        fn episode_from(row: &$row) -> StoreResult<Episode> {
            Ok(Episode {
                id: EpisodeId::from_uuid(row.try_get("id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                client_id: ClientId::from_uuid(row.try_get("client_id")?),
                status: EpisodeStatus::parse(&row.try_get::<String, _>("status")?).map_err(|e| corrupt("episodes.status", e))?,
                primary_clinician: row.try_get::<Option<Uuid>, _>("primary_clinician")?.map(UserId::from_uuid),
                opened_at: row.try_get("opened_at")?,
                status_changed_at: row.try_get("status_changed_at")?,
            })
        }

        fn care_from(row: &$row) -> StoreResult<CareRelationship> {
            let role: String = row.try_get("role")?;
            Ok(CareRelationship {
                id: CareRelationshipId::from_uuid(row.try_get("id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                clinician: UserId::from_uuid(row.try_get("clinician")?),
                client_id: ClientId::from_uuid(row.try_get("client_id")?),
                role: CareRole::parse(&role).ok_or_else(|| corrupt("care_relationships.role", role))?,
                started_at: row.try_get("started_at")?,
                ended_at: row.try_get("ended_at")?,
            })
        }

        /// Questionnaire answers are clinical content: sealed in
        /// `submissions.answers` with AAD (practice, table, column, row id).
        fn submission_from(row: &$row, keyring: &crate::crypto::Keyring) -> StoreResult<Submission> {
            let id: Uuid = row.try_get("id")?;
            let practice = PracticeId::from_uuid(row.try_get("practice_id")?);
            let sealed: String = row.try_get("answers")?;
            let answers = crate::vault::Vault::open(keyring, &crate::vault::field(practice, "submissions", "answers", id), &sealed)?;
            let session: i64 = row.try_get("session")?;
            Ok(Submission {
                id: ResponseId::from_uuid(row.try_get("id")?),
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                client_id: ClientId::from_uuid(row.try_get("client_id")?),
                episode_id: EpisodeId::from_uuid(row.try_get("episode_id")?),
                instrument: row.try_get("instrument")?,
                instrument_version: row.try_get("instrument_version")?,
                answers: serde_json::from_str(&answers).map_err(|e| corrupt("submissions.answers", e))?,
                total: row.try_get("total")?,
                session: u32::try_from(session).map_err(|e| corrupt("submissions.session", e))?,
                submitted_at: row.try_get("submitted_at")?,
                idempotency_key: row.try_get("idempotency_key")?,
            })
        }

        fn answers_json(s: &Submission, keyring: &crate::crypto::Keyring) -> StoreResult<String> {
            let plain = serde_json::to_string(&s.answers).map_err(|e| corrupt("submissions.answers", e))?;
            crate::vault::Vault::seal(keyring, &crate::vault::field(s.practice_id, "submissions", "answers", s.id.as_uuid()), &plain)
        }

        /// The insert of one submission, its answers already sealed.
        fn insert_submission_query<'q>(s: &'q Submission, sealed_answers: &'q str) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
            sqlx::query(SUBMISSION_INSERT)
                .bind(s.id.as_uuid())
                .bind(s.practice_id.as_uuid())
                .bind(s.client_id.as_uuid())
                .bind(s.episode_id.as_uuid())
                .bind(s.instrument.as_str())
                .bind(s.instrument_version.as_str())
                .bind(sealed_answers)
                .bind(s.total)
                .bind(i64::from(s.session))
                .bind(s.submitted_at)
                .bind(s.idempotency_key.as_deref())
                .bind(s.week())
        }

        const SUBMISSION_INSERT: &str = "INSERT INTO submissions (id, practice_id, client_id, episode_id, instrument, instrument_version, answers, total, session, submitted_at, idempotency_key, submitted_week) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)";

        #[async_trait]
        impl PracticeStore for $store {
            async fn insert_practice(&self, p: &Practice) -> StoreResult<()> {
                sqlx::query("INSERT INTO practices (id, practice_id, name, time_zone, created_at) VALUES ($1,$1,$2,$3,$4)")
                    .bind(p.id.as_uuid())
                    .bind(&p.name)
                    .bind(p.time_zone.as_str())
                    .bind(p.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "practice already exists"))?;
                Ok(())
            }
            async fn practice(&self, id: PracticeId) -> StoreResult<Option<Practice>> {
                let row = sqlx::query("SELECT * FROM practices WHERE id = $1").bind(id.as_uuid()).fetch_optional(&self.pool).await?;
                row.as_ref().map(practice_from).transpose()
            }
            async fn practices(&self) -> StoreResult<Vec<Practice>> {
                let rows = sqlx::query("SELECT * FROM practices ORDER BY created_at, id").fetch_all(&self.pool).await?;
                rows.iter().map(practice_from).collect()
            }
            async fn set_setting(&self, practice: PracticeId, key: &str, value: &str) -> StoreResult<()> {
                sqlx::query("INSERT INTO practice_settings (practice_id, key, value) VALUES ($1,$2,$3) ON CONFLICT (practice_id, key) DO UPDATE SET value = excluded.value")
                    .bind(practice.as_uuid())
                    .bind(key)
                    .bind(value)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn setting(&self, practice: PracticeId, key: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT value FROM practice_settings WHERE practice_id = $1 AND key = $2")
                    .bind(practice.as_uuid())
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => Some(r.try_get("value")?),
                    None => None,
                })
            }
            async fn practice_with_setting(&self, key: &str, value: &str) -> StoreResult<Option<PracticeId>> {
                let row = sqlx::query("SELECT practice_id FROM practice_settings WHERE key = $1 AND value = $2 ORDER BY practice_id LIMIT 1")
                    .bind(key)
                    .bind(value)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => Some(PracticeId::from_uuid(r.try_get("practice_id")?)),
                    None => None,
                })
            }
        }

        #[async_trait]
        impl UserStore for $store {
            async fn insert_user(&self, u: &User, password_hash: Option<&str>) -> StoreResult<()> {
                sqlx::query("INSERT INTO users (id, practice_id, email, display_name, role, status, password_hash, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                    .bind(u.id.as_uuid())
                    .bind(u.practice_id.as_uuid())
                    .bind(u.email.as_str())
                    .bind(&u.display_name)
                    .bind(u.role.as_str())
                    .bind(u.status.as_str())
                    .bind(password_hash)
                    .bind(u.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "email: already in use"))?;
                Ok(())
            }
            async fn user(&self, practice: PracticeId, id: UserId) -> StoreResult<Option<User>> {
                let row = sqlx::query("SELECT * FROM users WHERE practice_id = $1 AND id = $2")
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(user_from).transpose()
            }
            async fn credentials_by_email(&self, email: &str) -> StoreResult<Option<Credentials>> {
                let row = sqlx::query("SELECT * FROM users WHERE email = $1")
                    .bind(email.trim().to_lowercase())
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(r) => Ok(Some(Credentials {
                        user: user_from(&r)?,
                        password_hash: r.try_get("password_hash")?,
                    })),
                }
            }
            async fn users_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<User>> {
                let rows = sqlx::query("SELECT * FROM users WHERE practice_id = $1 ORDER BY display_name, id")
                    .bind(practice.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(user_from).collect()
            }
            async fn set_user_status(&self, practice: PracticeId, id: UserId, status: AccountStatus) -> StoreResult<()> {
                let done = sqlx::query("UPDATE users SET status = $1 WHERE practice_id = $2 AND id = $3")
                    .bind(status.as_str())
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("user")) }
            }
            async fn set_password_hash(&self, practice: PracticeId, id: UserId, hash: &str) -> StoreResult<()> {
                let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE practice_id = $2 AND id = $3")
                    .bind(hash)
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("user")) }
            }
            async fn count_users(&self) -> StoreResult<u64> {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users").fetch_one(&self.pool).await?.try_get("n")?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }

        #[async_trait]
        impl ClientStore for $store {
            async fn insert_client(&self, c: &Client) -> StoreResult<()> {
                sqlx::query("INSERT INTO clients (id, practice_id, user_id, display_name, date_of_birth, jurisdiction, time_zone, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                    .bind(c.id.as_uuid())
                    .bind(c.practice_id.as_uuid())
                    .bind(c.user_id.map(|u| u.as_uuid()))
                    .bind(&c.display_name)
                    .bind(c.date_of_birth)
                    .bind(&c.jurisdiction)
                    .bind(c.time_zone.as_ref().map(|z| z.as_str().to_string()))
                    .bind(c.created_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "client already exists or user already linked"))?;
                Ok(())
            }
            async fn client(&self, practice: PracticeId, id: ClientId) -> StoreResult<Option<Client>> {
                let row = sqlx::query("SELECT * FROM clients WHERE practice_id = $1 AND id = $2")
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(client_from).transpose()
            }
            async fn client_for_user(&self, practice: PracticeId, user: UserId) -> StoreResult<Option<Client>> {
                let row = sqlx::query("SELECT * FROM clients WHERE practice_id = $1 AND user_id = $2")
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(client_from).transpose()
            }
            async fn clients_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<Client>> {
                let rows = sqlx::query("SELECT * FROM clients WHERE practice_id = $1 ORDER BY display_name, id")
                    .bind(practice.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(client_from).collect()
            }
            async fn link_client_user(&self, practice: PracticeId, id: ClientId, user: UserId) -> StoreResult<()> {
                let done = sqlx::query("UPDATE clients SET user_id = $1 WHERE practice_id = $2 AND id = $3 AND EXISTS (SELECT 1 FROM users WHERE users.id = $1 AND users.practice_id = $2)")
                    .bind(user.as_uuid())
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "user: already linked to another client"))?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("client or user")) }
            }
        }

        #[async_trait]
        impl ClinicianStore for $store {
            async fn upsert_clinician_profile(&self, p: &ClinicianProfile) -> StoreResult<()> {
                let languages = serde_json::to_string(&p.languages).map_err(|e| corrupt("languages", e))?;
                let done = sqlx::query(
                    "INSERT INTO clinician_profiles (user_id, practice_id, professional_title, bio, languages, accepts_new_clients, caseload_limit) \
                     SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND practice_id = $2) \
                     ON CONFLICT (user_id) DO UPDATE SET professional_title = excluded.professional_title, bio = excluded.bio, \
                     languages = excluded.languages, accepts_new_clients = excluded.accepts_new_clients, caseload_limit = excluded.caseload_limit \
                     WHERE clinician_profiles.practice_id = excluded.practice_id",
                )
                .bind(p.user_id.as_uuid())
                .bind(p.practice_id.as_uuid())
                .bind(&p.professional_title)
                .bind(&p.bio)
                .bind(languages)
                .bind(p.accepts_new_clients)
                .bind(i64::from(p.caseload_limit))
                .execute(&self.pool)
                .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("user")) }
            }
            async fn clinician_profile(&self, practice: PracticeId, user: UserId) -> StoreResult<Option<ClinicianProfile>> {
                let row = sqlx::query("SELECT * FROM clinician_profiles WHERE practice_id = $1 AND user_id = $2")
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(profile_from).transpose()
            }
            async fn clinician_profiles(&self, practice: PracticeId) -> StoreResult<Vec<ClinicianProfile>> {
                let rows = sqlx::query("SELECT * FROM clinician_profiles WHERE practice_id = $1 ORDER BY user_id")
                    .bind(practice.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(profile_from).collect()
            }
        }

        #[async_trait]
        impl EpisodeStore for $store {
            async fn insert_episode(&self, e: &Episode) -> StoreResult<()> {
                let done = sqlx::query(
                    "INSERT INTO episodes (id, practice_id, client_id, status, primary_clinician, opened_at, status_changed_at) \
                     SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $3 AND practice_id = $2)",
                )
                .bind(e.id.as_uuid())
                .bind(e.practice_id.as_uuid())
                .bind(e.client_id.as_uuid())
                .bind(e.status.as_str())
                .bind(e.primary_clinician.map(|u| u.as_uuid()))
                .bind(e.opened_at)
                .bind(e.status_changed_at)
                .execute(&self.pool)
                .await
                .map_err(|err| StoreError::unique_or(err, "episode already exists"))?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("client")) }
            }
            async fn episode(&self, practice: PracticeId, id: EpisodeId) -> StoreResult<Option<Episode>> {
                let row = sqlx::query("SELECT * FROM episodes WHERE practice_id = $1 AND id = $2")
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(episode_from).transpose()
            }
            async fn episodes_for_client(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<Episode>> {
                let rows = sqlx::query("SELECT * FROM episodes WHERE practice_id = $1 AND client_id = $2 ORDER BY opened_at, id")
                    .bind(practice.as_uuid())
                    .bind(client.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(episode_from).collect()
            }
            async fn move_episode(&self, practice: PracticeId, id: EpisodeId, from: EpisodeStatus, to: EpisodeStatus, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE episodes SET status = $1, status_changed_at = $2 WHERE practice_id = $3 AND id = $4 AND status = $5")
                    .bind(to.as_str())
                    .bind(at)
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .bind(from.as_str())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("episode in that status")) }
            }
            async fn set_primary_clinician(&self, practice: PracticeId, id: EpisodeId, clinician: UserId) -> StoreResult<()> {
                let done = sqlx::query("UPDATE episodes SET primary_clinician = $1 WHERE practice_id = $2 AND id = $3 AND EXISTS (SELECT 1 FROM users WHERE users.id = $1 AND users.practice_id = $2)")
                    .bind(clinician.as_uuid())
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("episode or clinician")) }
            }
        }

        #[async_trait]
        impl CareStore for $store {
            async fn insert_care_relationship(&self, r: &CareRelationship) -> StoreResult<()> {
                let done = sqlx::query(
                    "INSERT INTO care_relationships (id, practice_id, clinician, client_id, role, started_at, ended_at) \
                     SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $4 AND practice_id = $2) \
                     AND EXISTS (SELECT 1 FROM users WHERE id = $3 AND practice_id = $2 AND role IN ('clinician','supervisor','practice_owner'))",
                )
                .bind(r.id.as_uuid())
                .bind(r.practice_id.as_uuid())
                .bind(r.clinician.as_uuid())
                .bind(r.client_id.as_uuid())
                .bind(r.role.as_str())
                .bind(r.started_at)
                .bind(r.ended_at)
                .execute(&self.pool)
                .await
                .map_err(|e| StoreError::unique_or(e, "care relationship already current"))?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("client or clinician")) }
            }
            async fn end_care_relationship(&self, practice: PracticeId, id: CareRelationshipId, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE care_relationships SET ended_at = $1 WHERE practice_id = $2 AND id = $3 AND ended_at IS NULL")
                    .bind(at)
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .execute(&self.pool)
                    .await?;
                if done.rows_affected() == 1 { Ok(()) } else { Err(StoreError::NotFound("current care relationship")) }
            }
            async fn care_for_clinician(&self, practice: PracticeId, clinician: UserId) -> StoreResult<Vec<CareRelationship>> {
                let rows = sqlx::query("SELECT * FROM care_relationships WHERE practice_id = $1 AND clinician = $2 ORDER BY started_at, id")
                    .bind(practice.as_uuid())
                    .bind(clinician.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(care_from).collect()
            }
            async fn care_for_client(&self, practice: PracticeId, client: ClientId) -> StoreResult<Vec<CareRelationship>> {
                let rows = sqlx::query("SELECT * FROM care_relationships WHERE practice_id = $1 AND client_id = $2 ORDER BY started_at, id")
                    .bind(practice.as_uuid())
                    .bind(client.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(care_from).collect()
            }
        }

        #[async_trait]
        impl SubmissionStore for $store {
            async fn insert_submission(&self, s: &Submission) -> StoreResult<Stored> {
                let keyring = self.keyring(s.practice_id).await?;
                let answers = answers_json(s, &keyring)?;
                let inserted = insert_submission_query(s, &answers)
                    .execute(&self.pool)
                    .await;
                match inserted {
                    Ok(_) => Ok(Stored::New(s.id)),
                    Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                        let Some(key) = &s.idempotency_key else {
                            return Err(StoreError::Conflict("submission already exists"));
                        };
                        let row = sqlx::query("SELECT * FROM submissions WHERE practice_id = $1 AND idempotency_key = $2")
                            .bind(s.practice_id.as_uuid())
                            .bind(key)
                            .fetch_optional(&self.pool)
                            .await?
                            .ok_or(StoreError::Conflict("submission already exists"))?;
                        let earlier = submission_from(&row, &keyring)?;
                        let same = earlier.client_id == s.client_id
                            && earlier.episode_id == s.episode_id
                            && earlier.instrument == s.instrument
                            && earlier.answers == s.answers;
                        if same {
                            Ok(Stored::AlreadyStored(earlier.id))
                        } else {
                            Err(StoreError::Conflict("Idempotency-Key: already used for a different submission"))
                        }
                    }
                    Err(e) => Err(StoreError::Backend(e)),
                }
            }
            async fn insert_submissions(&self, batch: &[Submission]) -> StoreResult<()> {
                // Seal before the transaction (loading a keyring may write).
                let mut sealed = Vec::with_capacity(batch.len());
                for s in batch {
                    let keyring = self.keyring(s.practice_id).await?;
                    sealed.push(answers_json(s, &keyring)?);
                }
                let mut tx = self.pool.begin().await?;
                for (s, answers) in batch.iter().zip(sealed) {
                    insert_submission_query(s, &answers)
                        .execute(&mut *tx)
                        .await
                        .map_err(|e| StoreError::unique_or(e, "submission already exists"))?;
                }
                tx.commit().await?;
                Ok(())
            }
            async fn submission(&self, practice: PracticeId, id: ResponseId) -> StoreResult<Option<Submission>> {
                let row = sqlx::query("SELECT * FROM submissions WHERE practice_id = $1 AND id = $2")
                    .bind(practice.as_uuid())
                    .bind(id.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?;
                let keyring = self.keyring(practice).await?;
                row.as_ref().map(|r| submission_from(r, &keyring)).transpose()
            }
            async fn submissions_for_episode(&self, practice: PracticeId, episode: EpisodeId) -> StoreResult<Vec<Submission>> {
                // The index is led by the week (migration 0009): walk the practice's weeks,
                // one index seek each, and take the episode's rows in every week.
                let rows = sqlx::query(
                    "WITH RECURSIVE weeks(w) AS ( \
                       SELECT (SELECT submitted_week FROM submissions WHERE practice_id = $1 ORDER BY submitted_week LIMIT 1) \
                       UNION ALL \
                       SELECT (SELECT submitted_week FROM submissions WHERE practice_id = $1 AND submitted_week > weeks.w ORDER BY submitted_week LIMIT 1) \
                       FROM weeks WHERE weeks.w IS NOT NULL) \
                     SELECT s.* FROM weeks JOIN submissions s ON s.practice_id = $1 AND s.submitted_week = weeks.w AND s.episode_id = $2 \
                     ORDER BY s.submitted_at, s.id",
                )
                    .bind(practice.as_uuid())
                    .bind(episode.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                let keyring = self.keyring(practice).await?;
                rows.iter().map(|r| submission_from(r, &keyring)).collect()
            }
            async fn count_submissions(&self, practice: PracticeId) -> StoreResult<u64> {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM submissions WHERE practice_id = $1")
                    .bind(practice.as_uuid())
                    .fetch_one(&self.pool)
                    .await?
                    .try_get("n")?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
        }

        #[async_trait]
        impl BootstrapStore for $store {
            async fn insert_bootstrap_token(&self, token_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("INSERT INTO bootstrap_tokens (token_hash, created_at) VALUES ($1,$2)")
                    .bind(token_hash)
                    .bind(at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "bootstrap token already exists"))?;
                Ok(())
            }
            async fn complete_bootstrap(&self, token_hash: &str, practice: &Practice, owner: &User, password_hash: &str, at: DateTime<Utc>) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("INSERT INTO practices (id, practice_id, name, time_zone, created_at) VALUES ($1,$1,$2,$3,$4)")
                    .bind(practice.id.as_uuid())
                    .bind(&practice.name)
                    .bind(practice.time_zone.as_str())
                    .bind(practice.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "practice already exists"))?;
                let used = sqlx::query("UPDATE bootstrap_tokens SET used_at = $1, practice_id = $2 WHERE token_hash = $3 AND used_at IS NULL")
                    .bind(at)
                    .bind(practice.id.as_uuid())
                    .bind(token_hash)
                    .execute(&mut *tx)
                    .await?;
                if used.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound("bootstrap token"));
                }
                sqlx::query("INSERT INTO users (id, practice_id, email, display_name, role, status, password_hash, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                    .bind(owner.id.as_uuid())
                    .bind(owner.practice_id.as_uuid())
                    .bind(owner.email.as_str())
                    .bind(&owner.display_name)
                    .bind(owner.role.as_str())
                    .bind(owner.status.as_str())
                    .bind(password_hash)
                    .bind(owner.created_at)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "email: already in use"))?;
                tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait]
        impl Store for $store {
            fn backend(&self) -> Backend {
                $backend
            }
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
            async fn migrate(&self) -> StoreResult<()> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }
            async fn close(&self) {
                crate::adapter::BesidePool::close(&self.beside);
                self.pool.close().await;
            }
        }
    };
}

pub(crate) use adapter;
