//! Storage of the security spine (issue 3): second factors, server-side
//! sessions, invitations and password resets, sign-in throttling counters,
//! API tokens, break-glass grants with owner/clinician alerts, the
//! append-only audit chain and key rotation. Both adapters implement
//! [`SecurityStore`] in `adapter_security.rs`.

use crate::audit_chain::{AuditEvent, NewAuditEvent};
use crate::crypto::KeyFile;
use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tapestry_domain::identity::api_token::ApiToken;
use tapestry_domain::identity::invitation::{Invitation, PasswordReset};
use tapestry_domain::identity::session::{EndReason, Session};
use tapestry_domain::identity::throttle::Backoff;
use tapestry_domain::identity::token::TokenHash;
use tapestry_domain::identity::totp::{StoredRecoveryCode, TotpSecret};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use uuid::Uuid;

/// An account's second factor as stored (secret opened from its sealed form).
#[derive(Debug, Clone)]
pub struct StoredMfa {
    pub secret: TotpSecret,
    /// When the first code was verified; `None` while enrolment is pending.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The step of the last accepted code (replay prevention, G8).
    pub last_used_step: Option<u64>,
}

/// A break-glass grant as stored (the reason is sealed; read it with
/// [`SecurityStore::break_glass_reason`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlassRecord {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub client_id: ClientId,
    pub opened_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// A content-free in-app alert (G11, G15): who, what kind, which object id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub recipient: UserId,
    /// e.g. `break_glass_opened`.
    pub kind: String,
    pub object_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// What a key rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RotationReport {
    /// Wrapped data keys re-wrapped under the new master key.
    pub rewrapped: u64,
    /// New data-key versions created (with `--data-keys`).
    pub new_data_keys: u64,
    /// Sealed values re-encrypted under the new data keys.
    pub reencrypted: u64,
}

#[async_trait]
pub trait SecurityStore {
    // ---- second factor
    /// Starts (or restarts, while unconfirmed) a TOTP enrolment. Refuses with
    /// a conflict when a confirmed factor exists (replacing one is a separate,
    /// re-authenticated action: [`SecurityStore::remove_mfa`] first).
    async fn begin_totp_enrolment(
        &self,
        practice: PracticeId,
        user: UserId,
        secret: &TotpSecret,
    ) -> StoreResult<()>;
    async fn mfa(&self, practice: PracticeId, user: UserId) -> StoreResult<Option<StoredMfa>>;
    /// Records an accepted TOTP step only if it is later than the stored one
    /// (compare-and-set, so a code replayed concurrently wins once); confirms
    /// a pending enrolment. `NotFound` when the step was already used.
    async fn accept_totp_step(
        &self,
        practice: PracticeId,
        user: UserId,
        step: u64,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn remove_mfa(&self, practice: PracticeId, user: UserId) -> StoreResult<()>;
    async fn replace_recovery_codes(
        &self,
        practice: PracticeId,
        user: UserId,
        codes: &[StoredRecoveryCode],
    ) -> StoreResult<()>;
    async fn recovery_codes(
        &self,
        practice: PracticeId,
        user: UserId,
    ) -> StoreResult<Vec<StoredRecoveryCode>>;
    /// Marks one code used (`... WHERE used_at IS NULL`); `NotFound` if it was.
    async fn use_recovery_code(
        &self,
        practice: PracticeId,
        user: UserId,
        position: usize,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // ---- sessions
    async fn insert_session(&self, session: &Session) -> StoreResult<()>;
    /// A session that has not been ended (it may still be expired by time).
    async fn session(&self, token_hash: &TokenHash) -> StoreResult<Option<Session>>;
    /// Saves a changed session; `previous` is its token hash before a rotation.
    async fn save_session(&self, previous: &TokenHash, session: &Session) -> StoreResult<()>;
    async fn end_session(
        &self,
        token_hash: &TokenHash,
        reason: EndReason,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Ends every open session of the user; returns how many.
    async fn end_user_sessions(
        &self,
        user: UserId,
        reason: EndReason,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    // ---- sign-in throttling
    async fn throttle_counter(&self, key: &str) -> StoreResult<Backoff>;
    async fn save_throttle_counter(&self, key: &str, backoff: &Backoff) -> StoreResult<()>;

    // ---- invitations and password resets (single use)
    async fn insert_invitation(&self, invitation: &Invitation) -> StoreResult<()>;
    async fn invitation(&self, token_hash: &TokenHash) -> StoreResult<Option<Invitation>>;
    /// `UPDATE … WHERE redeemed_at IS NULL`: exactly one redemption wins.
    async fn redeem_invitation(&self, token_hash: &TokenHash, at: DateTime<Utc>)
        -> StoreResult<()>;
    async fn insert_password_reset(
        &self,
        practice: PracticeId,
        reset: &PasswordReset,
    ) -> StoreResult<()>;
    async fn password_reset(
        &self,
        token_hash: &TokenHash,
    ) -> StoreResult<Option<(PracticeId, PasswordReset)>>;
    async fn redeem_password_reset(
        &self,
        token_hash: &TokenHash,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // ---- API tokens
    async fn insert_api_token(&self, token: &ApiToken) -> StoreResult<()>;
    async fn api_token(&self, token_hash: &TokenHash) -> StoreResult<Option<ApiToken>>;
    async fn revoke_api_token(
        &self,
        user: UserId,
        token_hash: &TokenHash,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // ---- break-glass and alerts
    /// Stores the grant with its reason sealed.
    async fn insert_break_glass(&self, grant: &BreakGlassRecord, reason: &str) -> StoreResult<()>;
    async fn break_glass_for(
        &self,
        practice: PracticeId,
        clinician: UserId,
    ) -> StoreResult<Vec<BreakGlassRecord>>;
    async fn break_glass_reason(
        &self,
        practice: PracticeId,
        id: Uuid,
    ) -> StoreResult<Option<String>>;
    async fn insert_alert(&self, alert: &Alert) -> StoreResult<()>;
    async fn alerts_for(&self, practice: PracticeId, recipient: UserId) -> StoreResult<Vec<Alert>>;

    // ---- audit (append-only, hash-chained)
    /// Appends one event in its own transaction; `seq` is assigned there
    /// without gaps.
    async fn append_audit(&self, event: NewAuditEvent) -> StoreResult<AuditEvent>;
    /// The whole chain in `seq` order (for `tapestry audit verify`).
    async fn audit_events(&self) -> StoreResult<Vec<AuditEvent>>;
    /// Events about one object of one practice, oldest first.
    async fn audit_for_object(
        &self,
        practice: PracticeId,
        object_type: &str,
        object_id: Uuid,
    ) -> StoreResult<Vec<AuditEvent>>;
    async fn count_audit_events(&self) -> StoreResult<u64>;

    // ---- encryption keys
    /// Moves every wrapped data key under `new_key_file`'s current master key
    /// and, with `data_keys`, adds a new data-key version per practice and
    /// re-encrypts every sealed value. The caller saves the key file first.
    async fn rotate_keys(
        &self,
        new_key_file: &KeyFile,
        data_keys: bool,
    ) -> StoreResult<RotationReport>;
}
