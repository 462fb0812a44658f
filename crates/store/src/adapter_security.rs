//! SQL of the security spine, shared by both backends (see `security.rs` for
//! the trait and `vault.rs` for sealing). Instantiated once per backend.

macro_rules! security_adapter {
    ($store:ident, $db:ty, $row:ty) => {
        use crate::audit_chain::{parse_hex as sec_parse_hex, hex as sec_hex, AuditEvent, NewAuditEvent, Outcome as AuditOutcome};
        use crate::crypto::{KeyFile, Keyring, WrappedDataKey};
        use crate::security::*;
        use crate::vault::{self, Vault};
        use tapestry_domain::identity::api_token::ApiToken;
        use tapestry_domain::identity::invitation::{Invitation, PasswordReset};
        use tapestry_domain::identity::session::{EndReason, Session};
        use tapestry_domain::identity::throttle::Backoff;
        use tapestry_domain::identity::token::TokenHash;
        use tapestry_domain::identity::totp::{StoredRecoveryCode, TotpSecret};

        fn sec_hash(row: &$row, col: &str) -> StoreResult<TokenHash> {
            let text: String = row.try_get(col)?;
            TokenHash::from_hex(&text).map_err(|e| corrupt(col, e))
        }

        fn sec_end_reason(r: EndReason) -> &'static str {
            match r {
                EndReason::IdleTimeout => "idle_timeout",
                EndReason::AbsoluteTimeout => "absolute_timeout",
                EndReason::SignOut => "sign_out",
                EndReason::PasswordChanged => "password_changed",
                EndReason::MfaChanged => "mfa_changed",
                EndReason::AccountDisabled => "account_disabled",
            }
        }

        fn session_from(row: &$row) -> StoreResult<Session> {
            let idle: i64 = row.try_get("idle_seconds")?;
            Ok(Session {
                token_hash: sec_hash(row, "token_hash")?,
                user_id: UserId::from_uuid(row.try_get("user_id")?),
                practice_id: row.try_get::<Option<Uuid>, _>("practice_id")?.map(PracticeId::from_uuid),
                role: Role::parse(&row.try_get::<String, _>("role")?).map_err(|e| corrupt("sessions.role", e))?,
                created_at: row.try_get("created_at")?,
                last_seen_at: row.try_get("last_seen_at")?,
                idle_timeout: chrono::Duration::seconds(idle),
                absolute_deadline: row.try_get("absolute_deadline")?,
                mfa_enrolled: row.try_get("mfa_enrolled")?,
                mfa_completed_at: row.try_get("mfa_completed_at")?,
                reauthenticated_at: row.try_get("reauthenticated_at")?,
            })
        }

        fn invitation_from(row: &$row) -> StoreResult<Invitation> {
            Ok(Invitation {
                token_hash: sec_hash(row, "token_hash")?,
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                invited_by: UserId::from_uuid(row.try_get("invited_by")?),
                role: Role::parse(&row.try_get::<String, _>("role")?).map_err(|e| corrupt("invitations.role", e))?,
                client_id: row.try_get::<Option<Uuid>, _>("client_id")?.map(ClientId::from_uuid),
                email: row.try_get("email")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                redeemed_at: row.try_get("redeemed_at")?,
            })
        }

        fn api_token_from(row: &$row) -> StoreResult<ApiToken> {
            let scope: String = row.try_get("scope")?;
            Ok(ApiToken {
                token_hash: sec_hash(row, "token_hash")?,
                user_id: UserId::from_uuid(row.try_get("user_id")?),
                practice_id: row.try_get::<Option<Uuid>, _>("practice_id")?.map(PracticeId::from_uuid),
                name: row.try_get("name")?,
                scope: serde_json::from_str(&scope).map_err(|e| corrupt("api_tokens.scope", e))?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
                revoked_at: row.try_get("revoked_at")?,
            })
        }

        fn break_glass_from(row: &$row) -> StoreResult<BreakGlassRecord> {
            Ok(BreakGlassRecord {
                id: row.try_get("id")?,
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                clinician: UserId::from_uuid(row.try_get("clinician")?),
                client_id: ClientId::from_uuid(row.try_get("client_id")?),
                opened_at: row.try_get("opened_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        fn alert_from(row: &$row) -> StoreResult<Alert> {
            Ok(Alert {
                id: row.try_get("id")?,
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                recipient: UserId::from_uuid(row.try_get("recipient")?),
                kind: row.try_get("kind")?,
                object_id: row.try_get("object_id")?,
                created_at: row.try_get("created_at")?,
            })
        }

        fn audit_from(row: &$row) -> StoreResult<AuditEvent> {
            let seq: i64 = row.try_get("seq")?;
            let outcome: String = row.try_get("outcome")?;
            let prev: String = row.try_get("prev_hash")?;
            let hash: String = row.try_get("hash")?;
            Ok(AuditEvent {
                seq: u64::try_from(seq).map_err(|e| corrupt("audit_events.seq", e))?,
                actor: row.try_get::<Option<Uuid>, _>("actor")?.map(UserId::from_uuid),
                practice_id: row.try_get::<Option<Uuid>, _>("practice_id")?.map(PracticeId::from_uuid),
                object_type: row.try_get("object_type")?,
                object_id: row.try_get("object_id")?,
                action: row.try_get("action")?,
                outcome: AuditOutcome::parse(&outcome).ok_or_else(|| corrupt("audit_events.outcome", outcome))?,
                at: row.try_get("at")?,
                request_id: row.try_get("request_id")?,
                prev_hash: sec_parse_hex(&prev).ok_or_else(|| corrupt("audit_events.prev_hash", "not a hash"))?,
                hash: sec_parse_hex(&hash).ok_or_else(|| corrupt("audit_events.hash", "not a hash"))?,
            })
        }

        fn wrapped_from(row: &$row) -> StoreResult<WrappedDataKey> {
            let version: i64 = row.try_get("version")?;
            let master: i64 = row.try_get("master_key_id")?;
            Ok(WrappedDataKey {
                practice_id: PracticeId::from_uuid(row.try_get("practice_id")?),
                version: u32::try_from(version).map_err(|e| corrupt("data_keys.version", e))?,
                master_key_id: u32::try_from(master).map_err(|e| corrupt("data_keys.master_key_id", e))?,
                blob: row.try_get("wrapped")?,
            })
        }

        const UPSERT_DATA_KEY: &str = "INSERT INTO data_keys (practice_id, version, master_key_id, wrapped) VALUES ($1,$2,$3,$4) ON CONFLICT (practice_id, version) DO UPDATE SET master_key_id = excluded.master_key_id, wrapped = excluded.wrapped";

        impl $store {
            async fn wrapped_keys(&self, practice: PracticeId) -> StoreResult<Vec<WrappedDataKey>> {
                let rows = sqlx::query("SELECT * FROM data_keys WHERE practice_id = $1 ORDER BY version")
                    .bind(practice.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(wrapped_from).collect()
            }

            /// The practice's keyring: cached, or unwrapped from `data_keys`,
            /// or created (version 1) and stored wrapped on first use.
            pub async fn keyring(&self, practice: PracticeId) -> StoreResult<Keyring> {
                if let Some(k) = self.vault.cached(practice)? {
                    return Ok(k);
                }
                let mut wrapped = self.wrapped_keys(practice).await?;
                if wrapped.is_empty() {
                    let fresh = Keyring::new_practice(practice);
                    for w in self.vault.wrap(&fresh)? {
                        sqlx::query("INSERT INTO data_keys (practice_id, version, master_key_id, wrapped) VALUES ($1,$2,$3,$4) ON CONFLICT (practice_id, version) DO NOTHING")
                            .bind(practice.as_uuid())
                            .bind(i64::from(w.version))
                            .bind(i64::from(w.master_key_id))
                            .bind(&w.blob)
                            .execute(&self.pool)
                            .await?;
                    }
                    wrapped = self.wrapped_keys(practice).await?;
                }
                self.vault.load(practice, &wrapped)
            }

            /// Seal clinical free text for one field of one row (the one
            /// path for encryption at rest; see `vault.rs`).
            pub async fn seal_text(&self, practice: PracticeId, table: &str, column: &str, row: Uuid, plain: &str) -> StoreResult<String> {
                let keyring = self.keyring(practice).await?;
                Vault::seal(&keyring, &vault::field(practice, table, column, row), plain)
            }

            /// Open a value sealed by [`Self::seal_text`] for the same field and row.
            pub async fn open_text(&self, practice: PracticeId, table: &str, column: &str, row: Uuid, stored: &str) -> StoreResult<String> {
                let keyring = self.keyring(practice).await?;
                Vault::open(&keyring, &vault::field(practice, table, column, row), stored)
            }

            async fn mfa_row(&self, practice: PracticeId, user: UserId) -> StoreResult<Option<$row>> {
                Ok(sqlx::query("SELECT * FROM user_mfa WHERE practice_id = $1 AND user_id = $2")
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .fetch_optional(&self.pool)
                    .await?)
            }
        }

        fn one(done: u64, what: &'static str) -> StoreResult<()> {
            if done == 1 { Ok(()) } else { Err(StoreError::NotFound(what)) }
        }

        #[async_trait]
        impl SecurityStore for $store {
            async fn begin_totp_enrolment(&self, practice: PracticeId, user: UserId, secret: &TotpSecret) -> StoreResult<()> {
                if let Some(row) = self.mfa_row(practice, user).await? {
                    let confirmed: Option<DateTime<Utc>> = row.try_get("confirmed_at")?;
                    if confirmed.is_some() {
                        return Err(StoreError::Conflict("second factor: already enrolled"));
                    }
                }
                let sealed = self.seal_text(practice, "user_mfa", "totp_secret", user.as_uuid(), &secret.to_base32()).await?;
                sqlx::query("INSERT INTO user_mfa (user_id, practice_id, totp_secret, confirmed_at, last_used_step) SELECT $1,$2,$3,NULL,NULL WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND practice_id = $2) ON CONFLICT (user_id) DO UPDATE SET totp_secret = excluded.totp_secret, last_used_step = NULL WHERE user_mfa.confirmed_at IS NULL")
                    .bind(user.as_uuid())
                    .bind(practice.as_uuid())
                    .bind(&sealed)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn mfa(&self, practice: PracticeId, user: UserId) -> StoreResult<Option<StoredMfa>> {
                let Some(row) = self.mfa_row(practice, user).await? else { return Ok(None) };
                let sealed: String = row.try_get("totp_secret")?;
                let text = self.open_text(practice, "user_mfa", "totp_secret", user.as_uuid(), &sealed).await?;
                let step: Option<i64> = row.try_get("last_used_step")?;
                Ok(Some(StoredMfa {
                    secret: TotpSecret::from_base32(&text).map_err(|e| corrupt("user_mfa.totp_secret", e))?,
                    confirmed_at: row.try_get("confirmed_at")?,
                    last_used_step: step.and_then(|s| u64::try_from(s).ok()),
                }))
            }
            async fn accept_totp_step(&self, practice: PracticeId, user: UserId, step: u64, at: DateTime<Utc>) -> StoreResult<()> {
                let step = i64::try_from(step).map_err(|e| corrupt("totp step", e))?;
                let done = sqlx::query("UPDATE user_mfa SET last_used_step = $1, confirmed_at = COALESCE(confirmed_at, $2) WHERE practice_id = $3 AND user_id = $4 AND (last_used_step IS NULL OR last_used_step < $1)")
                    .bind(step)
                    .bind(at)
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "unused TOTP step")
            }
            async fn remove_mfa(&self, practice: PracticeId, user: UserId) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM user_mfa WHERE practice_id = $1 AND user_id = $2").bind(practice.as_uuid()).bind(user.as_uuid()).execute(&mut *tx).await?;
                sqlx::query("DELETE FROM recovery_codes WHERE practice_id = $1 AND user_id = $2").bind(practice.as_uuid()).bind(user.as_uuid()).execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }
            async fn replace_recovery_codes(&self, practice: PracticeId, user: UserId, codes: &[StoredRecoveryCode]) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM recovery_codes WHERE practice_id = $1 AND user_id = $2").bind(practice.as_uuid()).bind(user.as_uuid()).execute(&mut *tx).await?;
                for (i, c) in codes.iter().enumerate() {
                    sqlx::query("INSERT INTO recovery_codes (user_id, practice_id, position, code_hash, used_at) VALUES ($1,$2,$3,$4,$5)")
                        .bind(user.as_uuid())
                        .bind(practice.as_uuid())
                        .bind(i64::try_from(i).unwrap_or(i64::MAX))
                        .bind(c.hash.to_hex())
                        .bind(c.used_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }
            async fn recovery_codes(&self, practice: PracticeId, user: UserId) -> StoreResult<Vec<StoredRecoveryCode>> {
                let rows = sqlx::query("SELECT * FROM recovery_codes WHERE practice_id = $1 AND user_id = $2 ORDER BY position")
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter()
                    .map(|r| Ok(StoredRecoveryCode { hash: sec_hash(r, "code_hash")?, used_at: r.try_get("used_at")? }))
                    .collect()
            }
            async fn use_recovery_code(&self, practice: PracticeId, user: UserId, position: usize, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE practice_id = $2 AND user_id = $3 AND position = $4 AND used_at IS NULL")
                    .bind(at)
                    .bind(practice.as_uuid())
                    .bind(user.as_uuid())
                    .bind(i64::try_from(position).unwrap_or(i64::MAX))
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "unused recovery code")
            }

            async fn insert_session(&self, s: &Session) -> StoreResult<()> {
                sqlx::query("INSERT INTO sessions (token_hash, practice_id, user_id, role, created_at, last_seen_at, idle_seconds, absolute_deadline, mfa_enrolled, mfa_completed_at, reauthenticated_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)")
                    .bind(s.token_hash.to_hex())
                    .bind(s.practice_id.map(|p| p.as_uuid()))
                    .bind(s.user_id.as_uuid())
                    .bind(s.role.as_str())
                    .bind(s.created_at)
                    .bind(s.last_seen_at)
                    .bind(s.idle_timeout.num_seconds())
                    .bind(s.absolute_deadline)
                    .bind(s.mfa_enrolled)
                    .bind(s.mfa_completed_at)
                    .bind(s.reauthenticated_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "session already exists"))?;
                Ok(())
            }
            async fn session(&self, token_hash: &TokenHash) -> StoreResult<Option<Session>> {
                let row = sqlx::query("SELECT * FROM sessions WHERE token_hash = $1 AND ended_at IS NULL")
                    .bind(token_hash.to_hex())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(session_from).transpose()
            }
            async fn save_session(&self, previous: &TokenHash, s: &Session) -> StoreResult<()> {
                let done = sqlx::query("UPDATE sessions SET token_hash = $1, last_seen_at = $2, mfa_enrolled = $3, mfa_completed_at = $4, reauthenticated_at = $5 WHERE token_hash = $6 AND ended_at IS NULL")
                    .bind(s.token_hash.to_hex())
                    .bind(s.last_seen_at)
                    .bind(s.mfa_enrolled)
                    .bind(s.mfa_completed_at)
                    .bind(s.reauthenticated_at)
                    .bind(previous.to_hex())
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "session")
            }
            async fn end_session(&self, token_hash: &TokenHash, reason: EndReason, at: DateTime<Utc>) -> StoreResult<()> {
                sqlx::query("UPDATE sessions SET ended_at = $1, ended_reason = $2 WHERE token_hash = $3 AND ended_at IS NULL")
                    .bind(at)
                    .bind(sec_end_reason(reason))
                    .bind(token_hash.to_hex())
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn end_user_sessions(&self, user: UserId, reason: EndReason, at: DateTime<Utc>) -> StoreResult<u64> {
                let done = sqlx::query("UPDATE sessions SET ended_at = $1, ended_reason = $2 WHERE user_id = $3 AND ended_at IS NULL")
                    .bind(at)
                    .bind(sec_end_reason(reason))
                    .bind(user.as_uuid())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }

            async fn throttle_counter(&self, key: &str) -> StoreResult<Backoff> {
                let row = sqlx::query("SELECT failures, last_failure_at FROM login_throttle WHERE counter_key = $1")
                    .bind(key)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    None => Backoff::default(),
                    Some(r) => Backoff {
                        failures: u32::try_from(r.try_get::<i64, _>("failures")?).unwrap_or(u32::MAX),
                        last_failure_at: r.try_get("last_failure_at")?,
                    },
                })
            }
            async fn save_throttle_counter(&self, key: &str, b: &Backoff) -> StoreResult<()> {
                sqlx::query("INSERT INTO login_throttle (counter_key, failures, last_failure_at) VALUES ($1,$2,$3) ON CONFLICT (counter_key) DO UPDATE SET failures = excluded.failures, last_failure_at = excluded.last_failure_at")
                    .bind(key)
                    .bind(i64::from(b.failures))
                    .bind(b.last_failure_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn insert_invitation(&self, i: &Invitation) -> StoreResult<()> {
                let done = sqlx::query("INSERT INTO invitations (token_hash, practice_id, invited_by, role, client_id, email, created_at, expires_at, redeemed_at) SELECT $1,$2,$3,$4,$5,$6,$7,$8,$9 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3 AND practice_id = $2) AND ($5 IS NULL OR EXISTS (SELECT 1 FROM clients WHERE id = $5 AND practice_id = $2))")
                    .bind(i.token_hash.to_hex())
                    .bind(i.practice_id.as_uuid())
                    .bind(i.invited_by.as_uuid())
                    .bind(i.role.as_str())
                    .bind(i.client_id.map(|c| c.as_uuid()))
                    .bind(&i.email)
                    .bind(i.created_at)
                    .bind(i.expires_at)
                    .bind(i.redeemed_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "invitation already exists"))?;
                one(done.rows_affected(), "inviter or client")
            }
            async fn invitation(&self, token_hash: &TokenHash) -> StoreResult<Option<Invitation>> {
                let row = sqlx::query("SELECT * FROM invitations WHERE token_hash = $1").bind(token_hash.to_hex()).fetch_optional(&self.pool).await?;
                row.as_ref().map(invitation_from).transpose()
            }
            async fn redeem_invitation(&self, token_hash: &TokenHash, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE invitations SET redeemed_at = $1 WHERE token_hash = $2 AND redeemed_at IS NULL AND expires_at > $1")
                    .bind(at)
                    .bind(token_hash.to_hex())
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "open invitation")
            }
            async fn insert_password_reset(&self, practice: PracticeId, r: &PasswordReset) -> StoreResult<()> {
                let done = sqlx::query("INSERT INTO password_resets (token_hash, practice_id, user_id, created_at, expires_at, redeemed_at) SELECT $1,$2,$3,$4,$5,$6 WHERE EXISTS (SELECT 1 FROM users WHERE id = $3 AND practice_id = $2)")
                    .bind(r.token_hash.to_hex())
                    .bind(practice.as_uuid())
                    .bind(r.user_id.as_uuid())
                    .bind(r.created_at)
                    .bind(r.expires_at)
                    .bind(r.used_at)
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "user")
            }
            async fn password_reset(&self, token_hash: &TokenHash) -> StoreResult<Option<(PracticeId, PasswordReset)>> {
                let row = sqlx::query("SELECT * FROM password_resets WHERE token_hash = $1").bind(token_hash.to_hex()).fetch_optional(&self.pool).await?;
                let Some(r) = row else { return Ok(None) };
                Ok(Some((
                    PracticeId::from_uuid(r.try_get("practice_id")?),
                    PasswordReset {
                        token_hash: sec_hash(&r, "token_hash")?,
                        user_id: UserId::from_uuid(r.try_get("user_id")?),
                        created_at: r.try_get("created_at")?,
                        expires_at: r.try_get("expires_at")?,
                        used_at: r.try_get("redeemed_at")?,
                    },
                )))
            }
            async fn redeem_password_reset(&self, token_hash: &TokenHash, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE password_resets SET redeemed_at = $1 WHERE token_hash = $2 AND redeemed_at IS NULL AND expires_at > $1")
                    .bind(at)
                    .bind(token_hash.to_hex())
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "open password reset")
            }

            async fn insert_api_token(&self, t: &ApiToken) -> StoreResult<()> {
                let scope = serde_json::to_string(&t.scope).map_err(|e| corrupt("api_tokens.scope", e))?;
                sqlx::query("INSERT INTO api_tokens (token_hash, practice_id, user_id, name, scope, created_at, expires_at, revoked_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)")
                    .bind(t.token_hash.to_hex())
                    .bind(t.practice_id.map(|p| p.as_uuid()))
                    .bind(t.user_id.as_uuid())
                    .bind(&t.name)
                    .bind(&scope)
                    .bind(t.created_at)
                    .bind(t.expires_at)
                    .bind(t.revoked_at)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| StoreError::unique_or(e, "api token already exists"))?;
                Ok(())
            }
            async fn api_token(&self, token_hash: &TokenHash) -> StoreResult<Option<ApiToken>> {
                let row = sqlx::query("SELECT * FROM api_tokens WHERE token_hash = $1").bind(token_hash.to_hex()).fetch_optional(&self.pool).await?;
                row.as_ref().map(api_token_from).transpose()
            }
            async fn revoke_api_token(&self, user: UserId, token_hash: &TokenHash, at: DateTime<Utc>) -> StoreResult<()> {
                let done = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE token_hash = $2 AND user_id = $3 AND revoked_at IS NULL")
                    .bind(at)
                    .bind(token_hash.to_hex())
                    .bind(user.as_uuid())
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "api token")
            }

            async fn insert_break_glass(&self, g: &BreakGlassRecord, reason: &str) -> StoreResult<()> {
                let sealed = self.seal_text(g.practice_id, "break_glass_grants", "reason", g.id, reason).await?;
                let done = sqlx::query("INSERT INTO break_glass_grants (id, practice_id, clinician, client_id, reason, opened_at, expires_at) SELECT $1,$2,$3,$4,$5,$6,$7 WHERE EXISTS (SELECT 1 FROM clients WHERE id = $4 AND practice_id = $2) AND EXISTS (SELECT 1 FROM users WHERE id = $3 AND practice_id = $2)")
                    .bind(g.id)
                    .bind(g.practice_id.as_uuid())
                    .bind(g.clinician.as_uuid())
                    .bind(g.client_id.as_uuid())
                    .bind(&sealed)
                    .bind(g.opened_at)
                    .bind(g.expires_at)
                    .execute(&self.pool)
                    .await?;
                one(done.rows_affected(), "client or clinician")
            }
            async fn break_glass_for(&self, practice: PracticeId, clinician: UserId) -> StoreResult<Vec<BreakGlassRecord>> {
                let rows = sqlx::query("SELECT * FROM break_glass_grants WHERE practice_id = $1 AND clinician = $2 ORDER BY opened_at, id")
                    .bind(practice.as_uuid())
                    .bind(clinician.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(break_glass_from).collect()
            }
            async fn break_glass_reason(&self, practice: PracticeId, id: Uuid) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT reason FROM break_glass_grants WHERE practice_id = $1 AND id = $2")
                    .bind(practice.as_uuid())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                match row {
                    None => Ok(None),
                    Some(r) => {
                        let sealed: String = r.try_get("reason")?;
                        Ok(Some(self.open_text(practice, "break_glass_grants", "reason", id, &sealed).await?))
                    }
                }
            }
            async fn insert_alert(&self, a: &Alert) -> StoreResult<()> {
                sqlx::query("INSERT INTO alerts (id, practice_id, recipient, kind, object_id, created_at) VALUES ($1,$2,$3,$4,$5,$6)")
                    .bind(a.id)
                    .bind(a.practice_id.as_uuid())
                    .bind(a.recipient.as_uuid())
                    .bind(&a.kind)
                    .bind(a.object_id)
                    .bind(a.created_at)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }
            async fn alerts_for(&self, practice: PracticeId, recipient: UserId) -> StoreResult<Vec<Alert>> {
                let rows = sqlx::query("SELECT * FROM alerts WHERE practice_id = $1 AND recipient = $2 ORDER BY created_at, id")
                    .bind(practice.as_uuid())
                    .bind(recipient.as_uuid())
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(alert_from).collect()
            }

            async fn append_audit(&self, new: NewAuditEvent) -> StoreResult<AuditEvent> {
                let mut tx = self.pool.begin().await?;
                // Taking the head row first serialises appenders (write lock
                // on SQLite, row lock on PostgreSQL) and assigns seq gap-free.
                sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE chain = 'main'").execute(&mut *tx).await?;
                let seq: i64 = sqlx::query("SELECT seq FROM audit_head WHERE chain = 'main'").fetch_one(&mut *tx).await?.try_get("seq")?;
                let prev = if seq > 1 {
                    let row = sqlx::query("SELECT * FROM audit_events WHERE seq = $1")
                        .bind(seq - 1)
                        .fetch_optional(&mut *tx)
                        .await?
                        .ok_or_else(|| corrupt("audit_events", "the previous entry is missing; run `tapestry audit verify`"))?;
                    Some(audit_from(&row)?)
                } else {
                    None
                };
                let event = AuditEvent::chain(prev.as_ref(), new);
                if i64::try_from(event.seq).ok() != Some(seq) {
                    return Err(corrupt("audit_head.seq", "out of step with audit_events"));
                }
                sqlx::query("INSERT INTO audit_events (seq, actor, practice_id, object_type, object_id, action, outcome, at, request_id, prev_hash, hash) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)")
                    .bind(seq)
                    .bind(event.actor.map(|u| u.as_uuid()))
                    .bind(event.practice_id.map(|p| p.as_uuid()))
                    .bind(&event.object_type)
                    .bind(event.object_id)
                    .bind(&event.action)
                    .bind(event.outcome.as_str())
                    .bind(event.at)
                    .bind(&event.request_id)
                    .bind(sec_hex(&event.prev_hash))
                    .bind(sec_hex(&event.hash))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(event)
            }
            async fn audit_events(&self) -> StoreResult<Vec<AuditEvent>> {
                let rows = sqlx::query("SELECT * FROM audit_events ORDER BY seq").fetch_all(&self.pool).await?;
                rows.iter().map(audit_from).collect()
            }
            async fn audit_for_object(&self, practice: PracticeId, object_type: &str, object_id: Uuid) -> StoreResult<Vec<AuditEvent>> {
                let rows = sqlx::query("SELECT * FROM audit_events WHERE practice_id = $1 AND object_type = $2 AND object_id = $3 ORDER BY seq")
                    .bind(practice.as_uuid())
                    .bind(object_type)
                    .bind(object_id)
                    .fetch_all(&self.pool)
                    .await?;
                rows.iter().map(audit_from).collect()
            }
            async fn count_audit_events(&self) -> StoreResult<u64> {
                let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM audit_events").fetch_one(&self.pool).await?.try_get("n")?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn rotate_keys(&self, new_key_file: &KeyFile, data_keys: bool) -> StoreResult<RotationReport> {
                let mut report = RotationReport::default();
                let practices: Vec<Uuid> = sqlx::query("SELECT DISTINCT practice_id FROM data_keys")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| r.try_get::<Uuid, _>("practice_id"))
                    .collect::<Result<_, _>>()?;
                let mut plans = Vec::new();
                for p in practices {
                    let practice = PracticeId::from_uuid(p);
                    let wrapped = self.wrapped_keys(practice).await?;
                    let mut keyring = Keyring::unwrap_all(practice, &wrapped, new_key_file)?;
                    if data_keys {
                        keyring.rotate();
                        report.new_data_keys += 1;
                    }
                    let mut reseals = Vec::new();
                    if data_keys {
                        for (table, column, id_col) in vault::SEALED_COLUMNS {
                            let rows = sqlx::query(&format!("SELECT {id_col} AS row_id, {column} AS sealed FROM {table} WHERE practice_id = $1 AND {column} IS NOT NULL"))
                                .bind(p)
                                .fetch_all(&self.pool)
                                .await?;
                            for r in rows {
                                let row_id: Uuid = r.try_get("row_id")?;
                                let sealed: String = r.try_get("sealed")?;
                                if let Some(new) = Vault::reseal(&keyring, &vault::field(practice, table, column, row_id), &sealed)? {
                                    reseals.push((*table, *column, *id_col, row_id, new));
                                }
                            }
                        }
                    }
                    plans.push((practice, keyring.wrap_all(new_key_file)?, reseals));
                }
                let mut tx = self.pool.begin().await?;
                for (practice, wrapped, reseals) in &plans {
                    for w in wrapped {
                        sqlx::query(UPSERT_DATA_KEY)
                            .bind(practice.as_uuid())
                            .bind(i64::from(w.version))
                            .bind(i64::from(w.master_key_id))
                            .bind(&w.blob)
                            .execute(&mut *tx)
                            .await?;
                        report.rewrapped += 1;
                    }
                    for (table, column, id_col, row_id, new) in reseals {
                        sqlx::query(&format!("UPDATE {table} SET {column} = $1 WHERE practice_id = $2 AND {id_col} = $3"))
                            .bind(new)
                            .bind(practice.as_uuid())
                            .bind(row_id)
                            .execute(&mut *tx)
                            .await?;
                        report.reencrypted += 1;
                    }
                }
                tx.commit().await?;
                self.vault.replace_key_file(new_key_file.clone())?;
                Ok(report)
            }
        }
    };
}

pub(crate) use security_adapter;
