//! The store's one path for encryption at rest (G5): every clinical free
//! text (questionnaire answers today; session notes, formulations, messages
//! and plans as they are added) and every stored second-factor secret goes
//! through [`Vault`], never straight into a column.
//!
//! How other store code uses it (inside an adapter macro body):
//!
//! ```text
//! let sealed = self.seal_text(practice, "session_notes", "body", note_id, 0, &text).await?;
//! // ... bind `sealed` into a TEXT column ...
//! let text = self.open_text(practice, "session_notes", "body", note_id, 0, &sealed).await?;
//! ```
//!
//! `seal_text`/`open_text` (see `adapter_security.rs`) load the practice's
//! [`Keyring`] once (creating and storing its wrapped first data key on first
//! use) and call [`Vault::seal`]/[`Vault::open`] here. The associated data
//! binds each value to (practice, table, column, row id, row version), so a
//! ciphertext copied to another row, column or practice does not open.
//!
//! Stored form: `s1.` followed by unpadded base64url of the sealed bytes
//! (`crypto` layout), so it fits a TEXT column on both backends.

use crate::crypto::{FieldContext, IntegrityError, KeyFile, Keyring, WrappedDataKey};
use crate::error::{StoreError, StoreResult};
use data_encoding::BASE64URL_NOPAD;
use std::collections::HashMap;
use std::sync::{Mutex, RwLock};
use tapestry_domain::ids::PracticeId;
use uuid::Uuid;

/// Prefix of a sealed TEXT value.
pub const SEALED_PREFIX: &str = "s1.";

/// The key file and the unwrapped keyrings of the practices seen so far.
pub struct Vault {
    key_file: RwLock<KeyFile>,
    keyrings: Mutex<HashMap<PracticeId, Keyring>>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<keys redacted>)")
    }
}

fn poisoned() -> StoreError {
    StoreError::Corrupt("vault: key cache lock poisoned".into())
}

impl Vault {
    /// A vault over the key file loaded by the caller (the configured `key_file`).
    pub fn new(key_file: KeyFile) -> Self {
        Self {
            key_file: RwLock::new(key_file),
            keyrings: Mutex::new(HashMap::new()),
        }
    }

    /// A copy of the key file (for rotation).
    pub fn key_file(&self) -> StoreResult<KeyFile> {
        self.key_file
            .read()
            .map(|k| k.clone())
            .map_err(|_| poisoned())
    }

    /// Replace the key file (after rotation) and forget cached keyrings.
    pub fn replace_key_file(&self, key_file: KeyFile) -> StoreResult<()> {
        *self.key_file.write().map_err(|_| poisoned())? = key_file;
        self.keyrings.lock().map_err(|_| poisoned())?.clear();
        Ok(())
    }

    /// The cached keyring of a practice, if loaded.
    pub fn cached(&self, practice: PracticeId) -> StoreResult<Option<Keyring>> {
        Ok(self
            .keyrings
            .lock()
            .map_err(|_| poisoned())?
            .get(&practice)
            .cloned())
    }

    /// Unwrap stored data keys and cache the keyring.
    pub fn load(&self, practice: PracticeId, wrapped: &[WrappedDataKey]) -> StoreResult<Keyring> {
        let key_file = self.key_file()?;
        let keyring = Keyring::unwrap_all(practice, wrapped, &key_file)?;
        self.keyrings
            .lock()
            .map_err(|_| poisoned())?
            .insert(practice, keyring.clone());
        Ok(keyring)
    }

    /// Wrap a keyring's keys under the current master key (for storage).
    pub fn wrap(&self, keyring: &Keyring) -> StoreResult<Vec<WrappedDataKey>> {
        Ok(keyring.wrap_all(&self.key_file()?)?)
    }

    /// Seal `plain` for one field.
    pub fn seal(keyring: &Keyring, ctx: &FieldContext<'_>, plain: &str) -> StoreResult<String> {
        let sealed = keyring.seal(plain.as_bytes(), ctx)?;
        Ok(format!(
            "{SEALED_PREFIX}{}",
            BASE64URL_NOPAD.encode(&sealed)
        ))
    }

    /// Open a sealed TEXT value of one field.
    pub fn open(keyring: &Keyring, ctx: &FieldContext<'_>, stored: &str) -> StoreResult<String> {
        let body = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(StoreError::Integrity(IntegrityError::UnknownFormat(0)))?;
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| StoreError::Integrity(IntegrityError::AuthenticationFailed))?;
        let plain = keyring.open(&bytes, ctx)?;
        String::from_utf8(plain)
            .map_err(|_| StoreError::Integrity(IntegrityError::AuthenticationFailed))
    }

    /// Re-seal a stored value under the keyring's current data key when it
    /// was sealed with an older one; `None` when already current.
    pub fn reseal(
        keyring: &Keyring,
        ctx: &FieldContext<'_>,
        stored: &str,
    ) -> StoreResult<Option<String>> {
        let body = stored
            .strip_prefix(SEALED_PREFIX)
            .ok_or(StoreError::Integrity(IntegrityError::UnknownFormat(0)))?;
        let bytes = BASE64URL_NOPAD
            .decode(body.as_bytes())
            .map_err(|_| StoreError::Integrity(IntegrityError::AuthenticationFailed))?;
        Ok(crate::crypto::reencrypt(keyring, &bytes, ctx)?
            .map(|b| format!("{SEALED_PREFIX}{}", BASE64URL_NOPAD.encode(&b))))
    }
}

/// The field context of an unversioned row.
pub fn field<'a>(
    practice: PracticeId,
    table: &'a str,
    column: &'a str,
    row: Uuid,
) -> FieldContext<'a> {
    FieldContext {
        practice_id: practice,
        table,
        column,
        row_id: row,
        row_version: 0,
    }
}

/// Every sealed column the store knows, for key rotation with re-encryption:
/// (table, sealed column, row-id column). New clinical tables add a line.
pub const SEALED_COLUMNS: &[(&str, &str, &str)] = &[
    ("submissions", "answers", "id"),
    ("risk_flags", "closing_note", "id"),
    ("clinician_tasks", "closing_note", "id"),
    ("user_mfa", "totp_secret", "user_id"),
    ("break_glass_grants", "reason", "id"),
    ("session_notes", "body", "id"),
    ("note_addenda", "body", "id"),
    ("safety_plans", "body", "id"),
    ("homework", "answers", "id"),
    ("intake_drafts", "body", "id"),
    ("secure_messages", "body", "id"),
    ("message_attachments", "content", "message_id"),
    ("chat_lines", "body", "id"),
    ("group_notes", "body", "id"),
    ("group_chat_lines", "body", "id"),
    ("matching_profiles", "profile", "clinician"),
    ("match_requests", "request", "client_id"),
    ("match_offers", "result", "id"),
    ("clinician_matches", "reasons", "id"),
    ("clinician_matches", "end_reason", "id"),
    ("match_runs", "result", "id"),
    ("formulations", "body", "id"),
    ("plan_versions", "body", "id"),
    ("session_reviews", "body", "id"),
];
