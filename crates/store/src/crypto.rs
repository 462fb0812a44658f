//! Encryption at rest of clinical content (security goals G5, G15b).
//!
//! Layers:
//! - **Key file** ([`KeyFile`]): master keys (key-encryption keys) and the
//!   server's CSRF secret, in a small text file kept *outside* the database and
//!   its backups, created on first run with mode 0600 ([`load_or_create_key_file`]).
//! - **Data keys** ([`DataKey`]): one per practice and version, random 256-bit,
//!   stored in the database only wrapped by a master key ([`WrappedDataKey`]).
//! - **Fields**: each clinical column value is sealed with XChaCha20-Poly1305
//!   under the practice's current data key. The associated data binds the
//!   ciphertext to (practice, table, column, row id, row version) so a
//!   ciphertext copied into another row, column or practice fails to open.
//!
//! Sealed field layout: `[format 0x01][key version u32 BE][nonce 24 B][ciphertext ‖ tag 16 B]`.
//!
//! Rotation: [`KeyFile::add_master_key`] + [`rewrap`] move every data key under
//! a new master key (old master retired afterwards with [`KeyFile::retire_master_key`]);
//! [`Keyring::rotate`] adds a new data-key version for new writes while old
//! versions stay for reading, and [`reencrypt`] moves a value to the current one.
//!
//! What this protects: stolen disks, database files, dumps and backups
//! (without the key file nothing decrypts). What it does not: a compromised
//! running server, which holds the keys (see docs/security-model.md).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::BASE64URL_NOPAD;
use rand::rngs::OsRng;
use rand::RngCore;
use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::Path;
use tapestry_domain::ids::PracticeId;
use uuid::Uuid;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// First byte of every sealed value.
pub const FORMAT_V1: u8 = 1;
/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;
/// Authentication tag length.
pub const TAG_LEN: usize = 16;
/// Header length: format byte, key version, nonce.
pub const HEADER_LEN: usize = 1 + 4 + NONCE_LEN;
/// First line of a key file.
pub const KEY_FILE_MAGIC: &str = "tapestry-key-file v1";

/// A sealed value that cannot be opened. Deliberately says nothing about the
/// plaintext; the caller reports "integrity error" and audits it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntegrityError {
    #[error("sealed value: shorter than header and tag ({0} bytes)")]
    Truncated(usize),
    #[error("sealed value: unknown format version {0}")]
    UnknownFormat(u8),
    #[error("sealed value: data key version {0} is not in the keyring")]
    UnknownKeyVersion(u32),
    #[error("wrapped data key: master key {0} is not in the key file")]
    UnknownMasterKey(u32),
    #[error("sealed value: authentication failed (tampered, moved to another row, or wrong key)")]
    AuthenticationFailed,
    #[error("sealed value: could not encrypt")]
    EncryptionFailed,
}

/// A key file that cannot be read, written or trusted.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file: {0}")]
    Format(String),
    #[error("key file {path}: permissions {mode:o} allow group or other access; chmod 600 it")]
    InsecurePermissions { path: String, mode: u32 },
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// 32 secret bytes: wiped on drop, never printed.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// A fresh random nonce. Drawn from the thread's CSPRNG (`rand::thread_rng`: ChaCha12 seeded
/// from the OS, reseeded from the OS every 64 KiB of output and after a fork), not from a
/// system call per value: 192 random bits make a repeat negligible (birthday bound ~2^-96 after
/// 2^48 seals under one key) and unpredictable, while sealing a group commit's answers no
/// longer costs one `getrandom` per submission (B3 profile). Keys still come from [`OsRng`].
fn random_nonce() -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

// ---------------------------------------------------------------- key file

/// The contents of the key file: master keys by id (the highest is current),
/// the CSRF secret and the audit-checkpoint signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyFile {
    masters: BTreeMap<u32, SecretKey>,
    csrf: SecretKey,
    audit: SecretKey,
}

impl fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyFile")
            .field("master_key_ids", &self.masters.keys().collect::<Vec<_>>())
            .field("keys", &"<redacted>")
            .finish()
    }
}

impl KeyFile {
    /// A fresh key file with master key 1 and a CSRF secret.
    pub fn generate() -> Self {
        let mut masters = BTreeMap::new();
        masters.insert(1, SecretKey::generate());
        Self {
            masters,
            csrf: SecretKey::generate(),
            audit: SecretKey::generate(),
        }
    }

    /// The id of the master key new wraps use.
    pub fn current_master_id(&self) -> u32 {
        self.masters.keys().next_back().copied().unwrap_or(0)
    }

    /// All master key ids present.
    pub fn master_ids(&self) -> Vec<u32> {
        self.masters.keys().copied().collect()
    }

    fn master(&self, id: u32) -> Result<&SecretKey, IntegrityError> {
        self.masters
            .get(&id)
            .ok_or(IntegrityError::UnknownMasterKey(id))
    }

    /// The CSRF secret (for `tapestry_domain::identity::csrf::CsrfKey`).
    pub fn csrf_secret(&self) -> &[u8; 32] {
        self.csrf.as_bytes()
    }

    /// The key that signs exported audit checkpoints
    /// ([`crate::audit_chain::Checkpoint::sign`]).
    pub fn audit_secret(&self) -> &[u8; 32] {
        self.audit.as_bytes()
    }

    /// Start a master-key rotation: add a new current master key.
    pub fn add_master_key(&mut self) -> u32 {
        let id = self.current_master_id().saturating_add(1);
        self.masters.insert(id, SecretKey::generate());
        id
    }

    /// Finish a rotation: drop an old master key once no data key uses it.
    /// The current key cannot be retired.
    pub fn retire_master_key(&mut self, id: u32) -> Result<(), KeyFileError> {
        if id == self.current_master_id() {
            return Err(KeyFileError::Format(format!(
                "master key {id} is current and cannot be retired"
            )));
        }
        self.masters
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| KeyFileError::Format(format!("master key {id} is not present")))
    }

    /// Serialise (text; one key per line, base64url).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::new();
        out.push_str(KEY_FILE_MAGIC);
        out.push('\n');
        out.push_str(
            "# Tapestry encryption keys. Keep this file secret (mode 0600), outside the\n\
             # database directory and out of database backups; back it up separately.\n\
             # Without it no clinical record can be decrypted.\n",
        );
        for (id, key) in &self.masters {
            out.push_str(&format!(
                "master {id} {}\n",
                BASE64URL_NOPAD.encode(key.as_bytes())
            ));
        }
        out.push_str(&format!(
            "csrf {}\n",
            BASE64URL_NOPAD.encode(self.csrf.as_bytes())
        ));
        out.push_str(&format!(
            "audit {}\n",
            BASE64URL_NOPAD.encode(self.audit.as_bytes())
        ));
        out.into_bytes()
    }

    /// Parse a key file. Errors name the line and the problem, never a key.
    pub fn parse(bytes: &[u8]) -> Result<Self, KeyFileError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| KeyFileError::Format("not UTF-8 text".into()))?;
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, first)) if first.trim() == KEY_FILE_MAGIC => {}
            _ => {
                return Err(KeyFileError::Format(format!(
                    "line 1: expected '{KEY_FILE_MAGIC}'"
                )))
            }
        }
        let mut masters = BTreeMap::new();
        let mut csrf = None;
        let mut audit = None;
        for (i, line) in lines {
            let n = i + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["master", id, key] => {
                    let id: u32 = id.parse().map_err(|_| {
                        KeyFileError::Format(format!("line {n}: master key id is not a number"))
                    })?;
                    if id == 0 {
                        return Err(KeyFileError::Format(format!(
                            "line {n}: master key id 0 is reserved"
                        )));
                    }
                    let key = decode_key(key)
                        .map_err(|e| KeyFileError::Format(format!("line {n}: {e}")))?;
                    if masters.insert(id, key).is_some() {
                        return Err(KeyFileError::Format(format!(
                            "line {n}: master key {id} appears twice"
                        )));
                    }
                }
                ["audit", key] => {
                    if audit.is_some() {
                        return Err(KeyFileError::Format(format!(
                            "line {n}: audit secret appears twice"
                        )));
                    }
                    audit = Some(
                        decode_key(key)
                            .map_err(|e| KeyFileError::Format(format!("line {n}: {e}")))?,
                    );
                }
                ["csrf", key] => {
                    if csrf.is_some() {
                        return Err(KeyFileError::Format(format!(
                            "line {n}: csrf secret appears twice"
                        )));
                    }
                    csrf = Some(
                        decode_key(key)
                            .map_err(|e| KeyFileError::Format(format!("line {n}: {e}")))?,
                    );
                }
                _ => {
                    return Err(KeyFileError::Format(format!(
                        "line {n}: expected 'master <id> <key>', 'csrf <key>' or 'audit <key>'"
                    )))
                }
            }
        }
        if masters.is_empty() {
            return Err(KeyFileError::Format("no master key".into()));
        }
        let csrf = csrf.ok_or_else(|| KeyFileError::Format("no csrf secret".into()))?;
        let audit = audit.ok_or_else(|| KeyFileError::Format("no audit secret".into()))?;
        Ok(Self {
            masters,
            csrf,
            audit,
        })
    }
}

fn decode_key(text: &str) -> Result<SecretKey, String> {
    let mut bytes = BASE64URL_NOPAD
        .decode(text.as_bytes())
        .map_err(|_| "key is not base64url".to_string())?;
    let arr: Result<[u8; 32], _> = bytes.as_slice().try_into();
    bytes.zeroize();
    arr.map(SecretKey)
        .map_err(|_| "key is not 32 bytes".to_string())
}

/// Read the key file at `path`, or create it (mode 0600, fsynced) if it does
/// not exist. Refuses a file that group or others can read.
pub fn load_or_create_key_file(path: &Path) -> Result<KeyFile, KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::metadata(path) {
        Ok(meta) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(KeyFileError::InsecurePermissions {
                    path: path.display().to_string(),
                    mode,
                });
            }
            KeyFile::parse(&std::fs::read(path).map_err(io)?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key_file = KeyFile::generate();
            write_new_file_0600(path, &key_file.to_bytes()).map_err(io)?;
            Ok(key_file)
        }
        Err(e) => Err(io(e)),
    }
}

/// Replace the key file atomically (rotation): write `path.tmp` with 0600,
/// fsync, rename over `path`, fsync the directory.
pub fn save_key_file(path: &Path, key_file: &KeyFile) -> Result<(), KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    write_new_file_0600(&tmp, &key_file.to_bytes()).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    sync_parent(path).map_err(io)
}

fn write_new_file_0600(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    // fsync errors are not retryable: report them (G16).
    f.sync_all()?;
    sync_parent(path)
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------- data keys

/// A practice's data key of one version.
#[derive(Clone, PartialEq, Eq)]
pub struct DataKey {
    pub practice_id: PracticeId,
    pub version: u32,
    key: SecretKey,
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("practice_id", &self.practice_id)
            .field("version", &self.version)
            .field("key", &"<redacted>")
            .finish()
    }
}

/// A data key as stored in the database: encrypted under a master key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    pub practice_id: PracticeId,
    pub version: u32,
    pub master_key_id: u32,
    /// `nonce ‖ ciphertext ‖ tag` of the 32 key bytes.
    pub blob: Vec<u8>,
}

fn wrap_aad(practice_id: PracticeId, version: u32, master_id: u32) -> Vec<u8> {
    let mut aad = b"tapestry-dek-v1".to_vec();
    aad.extend_from_slice(practice_id.as_uuid().as_bytes());
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(&master_id.to_be_bytes());
    aad
}

impl DataKey {
    /// A new random data key.
    pub fn generate(practice_id: PracticeId, version: u32) -> Self {
        Self {
            practice_id,
            version,
            key: SecretKey::generate(),
        }
    }

    /// Wrap under the key file's current master key.
    pub fn wrap(&self, key_file: &KeyFile) -> Result<WrappedDataKey, IntegrityError> {
        let master_key_id = key_file.current_master_id();
        let master = key_file.master(master_key_id)?;
        let nonce = random_nonce();
        let aad = wrap_aad(self.practice_id, self.version, master_key_id);
        let ct = master
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: self.key.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| IntegrityError::EncryptionFailed)?;
        let mut blob = nonce.to_vec();
        blob.extend_from_slice(&ct);
        Ok(WrappedDataKey {
            practice_id: self.practice_id,
            version: self.version,
            master_key_id,
            blob,
        })
    }

    /// Unwrap a stored data key with the master key it names.
    pub fn unwrap(wrapped: &WrappedDataKey, key_file: &KeyFile) -> Result<Self, IntegrityError> {
        let master = key_file.master(wrapped.master_key_id)?;
        if wrapped.blob.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(IntegrityError::Truncated(wrapped.blob.len()));
        }
        let (nonce, ct) = wrapped.blob.split_at(NONCE_LEN);
        let aad = wrap_aad(wrapped.practice_id, wrapped.version, wrapped.master_key_id);
        let mut bytes = master
            .cipher()
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| IntegrityError::AuthenticationFailed)?;
        let arr: Result<[u8; 32], _> = bytes.as_slice().try_into();
        bytes.zeroize();
        let arr = arr.map_err(|_| IntegrityError::AuthenticationFailed)?;
        Ok(Self {
            practice_id: wrapped.practice_id,
            version: wrapped.version,
            key: SecretKey(arr),
        })
    }
}

/// Move a wrapped data key under the key file's current master key.
pub fn rewrap(
    wrapped: &WrappedDataKey,
    key_file: &KeyFile,
) -> Result<WrappedDataKey, IntegrityError> {
    DataKey::unwrap(wrapped, key_file)?.wrap(key_file)
}

// ---------------------------------------------------------------- fields

/// Where a sealed value lives. All of it goes into the associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldContext<'a> {
    pub practice_id: PracticeId,
    /// Table name, e.g. `"session_notes"`.
    pub table: &'a str,
    /// Column name, e.g. `"body"`.
    pub column: &'a str,
    /// The row's id.
    pub row_id: Uuid,
    /// The row's version (note versions, G15b); 0 for unversioned rows.
    pub row_version: u32,
}

fn field_aad(ctx: &FieldContext<'_>, header: &[u8]) -> Vec<u8> {
    let mut aad = b"tapestry-field-v1".to_vec();
    aad.extend_from_slice(ctx.practice_id.as_uuid().as_bytes());
    for part in [ctx.table, ctx.column] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad.extend_from_slice(ctx.row_id.as_bytes());
    aad.extend_from_slice(&ctx.row_version.to_be_bytes());
    // The header (format, key version, nonce) is authenticated too.
    aad.extend_from_slice(header);
    aad
}

/// Seal `plaintext` for the field `ctx` under `key`.
pub fn seal(
    key: &DataKey,
    plaintext: &[u8],
    ctx: &FieldContext<'_>,
) -> Result<Vec<u8>, IntegrityError> {
    if ctx.practice_id != key.practice_id {
        // Never encrypt one practice's data under another's key.
        return Err(IntegrityError::EncryptionFailed);
    }
    let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + TAG_LEN);
    out.push(FORMAT_V1);
    out.extend_from_slice(&key.version.to_be_bytes());
    out.extend_from_slice(&random_nonce());
    let aad = field_aad(ctx, &out);
    let nonce = out
        .get(5..HEADER_LEN)
        .ok_or(IntegrityError::EncryptionFailed)?;
    let ct = key
        .key
        .cipher()
        .encrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| IntegrityError::EncryptionFailed)?;
    out.extend_from_slice(&ct);
    Ok(out)
}

/// The data-key version a sealed value was made with.
pub fn key_version_of(sealed: &[u8]) -> Result<u32, IntegrityError> {
    if sealed.len() < HEADER_LEN + TAG_LEN {
        return Err(IntegrityError::Truncated(sealed.len()));
    }
    match sealed.first() {
        Some(&FORMAT_V1) => {}
        Some(other) => return Err(IntegrityError::UnknownFormat(*other)),
        None => return Err(IntegrityError::Truncated(0)),
    }
    let v = sealed
        .get(1..5)
        .ok_or(IntegrityError::Truncated(sealed.len()))?;
    Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
}

/// Open a sealed value with the practice's keyring.
pub fn open(
    keyring: &Keyring,
    sealed: &[u8],
    ctx: &FieldContext<'_>,
) -> Result<Vec<u8>, IntegrityError> {
    let version = key_version_of(sealed)?;
    let key = keyring.version(version)?;
    if ctx.practice_id != key.practice_id {
        return Err(IntegrityError::AuthenticationFailed);
    }
    let (header, body) = sealed.split_at(HEADER_LEN);
    let nonce = header
        .get(5..)
        .ok_or(IntegrityError::Truncated(sealed.len()))?;
    let aad = field_aad(ctx, header);
    key.key
        .cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: &aad,
            },
        )
        .map_err(|_| IntegrityError::AuthenticationFailed)
}

/// All data-key versions of one practice; the highest version seals new values.
#[derive(Clone, PartialEq, Eq)]
pub struct Keyring {
    practice_id: PracticeId,
    keys: BTreeMap<u32, DataKey>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("practice_id", &self.practice_id)
            .field("versions", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// A new practice's keyring with data key version 1.
    pub fn new_practice(practice_id: PracticeId) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, DataKey::generate(practice_id, 1));
        Self { practice_id, keys }
    }

    /// Unwrap a practice's stored data keys. All must belong to `practice_id`.
    pub fn unwrap_all(
        practice_id: PracticeId,
        wrapped: &[WrappedDataKey],
        key_file: &KeyFile,
    ) -> Result<Self, IntegrityError> {
        let mut keys = BTreeMap::new();
        for w in wrapped {
            if w.practice_id != practice_id {
                return Err(IntegrityError::AuthenticationFailed);
            }
            let k = DataKey::unwrap(w, key_file)?;
            keys.insert(k.version, k);
        }
        if keys.is_empty() {
            return Err(IntegrityError::UnknownKeyVersion(0));
        }
        Ok(Self { practice_id, keys })
    }

    /// Wrap every version for storage under the current master key.
    pub fn wrap_all(&self, key_file: &KeyFile) -> Result<Vec<WrappedDataKey>, IntegrityError> {
        self.keys.values().map(|k| k.wrap(key_file)).collect()
    }

    pub fn practice_id(&self) -> PracticeId {
        self.practice_id
    }

    /// The key new values are sealed with.
    pub fn current(&self) -> Result<&DataKey, IntegrityError> {
        self.keys
            .values()
            .next_back()
            .ok_or(IntegrityError::UnknownKeyVersion(0))
    }

    pub fn version(&self, version: u32) -> Result<&DataKey, IntegrityError> {
        self.keys
            .get(&version)
            .ok_or(IntegrityError::UnknownKeyVersion(version))
    }

    pub fn versions(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// Add a new data-key version; returns it (the caller wraps and stores it).
    pub fn rotate(&mut self) -> &DataKey {
        let next = self
            .keys
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .saturating_add(1);
        self.keys
            .entry(next)
            .or_insert_with(|| DataKey::generate(self.practice_id, next))
    }

    /// Seal with the current data key.
    pub fn seal(
        &self,
        plaintext: &[u8],
        ctx: &FieldContext<'_>,
    ) -> Result<Vec<u8>, IntegrityError> {
        seal(self.current()?, plaintext, ctx)
    }

    pub fn open(&self, sealed: &[u8], ctx: &FieldContext<'_>) -> Result<Vec<u8>, IntegrityError> {
        open(self, sealed, ctx)
    }
}

/// Re-encrypt a value under the keyring's current key if it was sealed with
/// an older version; `Ok(None)` when it is already current.
pub fn reencrypt(
    keyring: &Keyring,
    sealed: &[u8],
    ctx: &FieldContext<'_>,
) -> Result<Option<Vec<u8>>, IntegrityError> {
    let current = keyring.current()?.version;
    if key_version_of(sealed)? == current {
        return Ok(None);
    }
    let mut plain = open(keyring, sealed, ctx)?;
    let resealed = keyring.seal(&plain, ctx);
    plain.zeroize();
    resealed.map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ctx(p: PracticeId, row: Uuid) -> FieldContext<'static> {
        FieldContext {
            practice_id: p,
            table: "session_notes",
            column: "body",
            row_id: row,
            row_version: 1,
        }
    }

    fn setup() -> (Keyring, FieldContext<'static>) {
        let p = PracticeId::random();
        (Keyring::new_practice(p), ctx(p, Uuid::new_v4()))
    }

    #[test]
    fn round_trip_including_empty_and_large_values() {
        let (ring, c) = setup();
        let huge = vec![0xABu8; 1 << 20];
        for text in [
            &b""[..],
            b"x",
            "Gedanken über Schuld, Übelkeit 🙂".as_bytes(),
            &huge,
        ] {
            let sealed = ring.seal(text, &c).unwrap();
            assert_eq!(sealed.len(), HEADER_LEN + text.len() + TAG_LEN);
            assert_eq!(ring.open(&sealed, &c).unwrap(), text);
        }
    }

    #[test]
    fn a_hundred_thousand_seals_have_distinct_nonces_and_all_open() {
        let (kr, c) = setup();
        let mut nonces = std::collections::HashSet::new();
        for i in 0u32..100_000 {
            let plain = i.to_be_bytes();
            let sealed = kr.seal(&plain, &c).unwrap();
            let nonce: [u8; NONCE_LEN] = sealed[5..HEADER_LEN].try_into().unwrap();
            assert!(nonces.insert(nonce), "nonce repeated at seal {i}");
            assert_eq!(kr.open(&sealed, &c).unwrap(), plain);
        }
        assert_eq!(nonces.len(), 100_000);
    }

    #[test]
    fn nonces_differ_across_threads_and_after_data_key_rotation() {
        let (mut kr, c) = setup();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let kr = kr.clone();
                std::thread::spawn(move || {
                    (0..1000)
                        .map(|_| kr.seal(b"x", &c).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut sealed: Vec<Vec<u8>> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let before = sealed.len();
        kr.rotate();
        sealed.extend((0..1000).map(|_| kr.seal(b"x", &c).unwrap()));
        let nonces: std::collections::HashSet<&[u8]> =
            sealed.iter().map(|s| &s[5..HEADER_LEN]).collect();
        assert_eq!(nonces.len(), before + 1000);
        // Old and new key versions both open.
        assert!(sealed.iter().all(|s| kr.open(s, &c).unwrap() == b"x"));
        assert_eq!(key_version_of(sealed.last().unwrap()).unwrap(), 2);
        assert_eq!(key_version_of(&sealed[0]).unwrap(), 1);
    }

    #[test]
    fn same_plaintext_seals_differently_each_time() {
        let (ring, c) = setup();
        assert_ne!(
            ring.seal(b"same", &c).unwrap(),
            ring.seal(b"same", &c).unwrap()
        );
    }

    #[test]
    fn no_plaintext_substring_appears_in_the_ciphertext() {
        let (ring, c) = setup();
        let canary = b"CANARY-7f3a9c-client-disclosed-trauma-history";
        let sealed = ring.seal(canary, &c).unwrap();
        for window in 4..=canary.len() {
            for part in canary.windows(window) {
                // 4+ byte runs of the canary never appear (chance ≈ 2^-32 per position).
                if window >= 6 {
                    assert!(
                        !sealed.windows(part.len()).any(|w| w == part),
                        "leak of {part:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_single_flipped_byte_is_an_integrity_error() {
        let (ring, c) = setup();
        let sealed = ring
            .seal(b"the client said something important", &c)
            .unwrap();
        for i in 0..sealed.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = sealed.clone();
                bad[i] ^= bit;
                let err = ring.open(&bad, &c).unwrap_err();
                assert!(
                    matches!(
                        err,
                        IntegrityError::AuthenticationFailed
                            | IntegrityError::UnknownFormat(_)
                            | IntegrityError::UnknownKeyVersion(_)
                    ),
                    "byte {i}: {err:?}"
                );
            }
        }
    }

    #[test]
    fn truncated_and_garbage_values_are_errors_not_panics() {
        let (ring, c) = setup();
        let sealed = ring.seal(b"hello", &c).unwrap();
        for len in 0..sealed.len() {
            assert!(ring.open(&sealed[..len], &c).is_err(), "len {len}");
        }
        let mut extended = sealed.clone();
        extended.push(0);
        assert!(ring.open(&extended, &c).is_err());
        assert!(ring.open(&vec![1u8; 10_000], &c).is_err());
    }

    #[test]
    fn moving_a_ciphertext_to_another_row_column_version_or_practice_fails() {
        let (ring, c) = setup();
        let sealed = ring.seal(b"note for row 1", &c).unwrap();
        let other_row = FieldContext {
            row_id: Uuid::new_v4(),
            ..c
        };
        let other_col = FieldContext {
            column: "summary",
            ..c
        };
        let other_table = FieldContext {
            table: "messages",
            ..c
        };
        let other_version = FieldContext {
            row_version: 2,
            ..c
        };
        for wrong in [other_row, other_col, other_table, other_version] {
            assert_eq!(
                ring.open(&sealed, &wrong),
                Err(IntegrityError::AuthenticationFailed)
            );
        }
        // Length-prefixing keeps ("ab","c") and ("a","bc") apart.
        let a = FieldContext {
            table: "ab",
            column: "c",
            ..c
        };
        let b = FieldContext {
            table: "a",
            column: "bc",
            ..c
        };
        let s = ring.seal(b"x", &a).unwrap();
        assert!(ring.open(&s, &b).is_err());
        // Another practice's keyring cannot open it, even with a forged context.
        let (other_ring, _) = setup();
        let forged = FieldContext {
            practice_id: other_ring.practice_id(),
            ..c
        };
        assert!(other_ring.open(&sealed, &forged).is_err());
        assert!(other_ring.open(&sealed, &c).is_err());
    }

    #[test]
    fn sealing_under_another_practices_key_is_refused() {
        let (ring, _) = setup();
        let foreign = ctx(PracticeId::random(), Uuid::new_v4());
        assert_eq!(
            ring.seal(b"x", &foreign),
            Err(IntegrityError::EncryptionFailed)
        );
    }

    #[test]
    fn wrong_key_of_the_same_version_fails() {
        let (ring, c) = setup();
        let sealed = ring.seal(b"secret", &c).unwrap();
        let impostor = Keyring::new_practice(c.practice_id);
        assert_eq!(
            impostor.open(&sealed, &c),
            Err(IntegrityError::AuthenticationFailed)
        );
    }

    #[test]
    fn debug_output_of_keys_is_redacted() {
        let kf = KeyFile::generate();
        let ring = Keyring::new_practice(PracticeId::random());
        let key = ring.current().unwrap();
        let secret_b64 = BASE64URL_NOPAD.encode(key.key.as_bytes());
        for debug in [
            format!("{kf:?}"),
            format!("{ring:?}"),
            format!("{key:?}"),
            format!("{:?}", key.key),
        ] {
            assert!(!debug.contains(&secret_b64), "{debug}");
            assert!(
                !debug.contains(&format!("{:?}", key.key.as_bytes())),
                "{debug}"
            );
        }
        let kf_text = String::from_utf8(kf.to_bytes()).unwrap();
        let master = BASE64URL_NOPAD.encode(kf.master(1).unwrap().as_bytes());
        assert!(kf_text.contains(&master), "the file itself holds the key");
        assert!(!format!("{kf:?}").contains(&master));
    }

    #[test]
    fn key_file_round_trips_and_rejects_malformed_files() {
        let mut kf = KeyFile::generate();
        kf.add_master_key();
        let parsed = KeyFile::parse(&kf.to_bytes()).unwrap();
        assert_eq!(parsed, kf);
        assert_eq!(parsed.current_master_id(), 2);
        let good = String::from_utf8(kf.to_bytes()).unwrap();
        let bad_cases = [
            String::new(),
            "not a key file".to_string(),
            good.replace(KEY_FILE_MAGIC, "tapestry-key-file v9"),
            good.lines()
                .filter(|l| !l.starts_with("csrf"))
                .collect::<Vec<_>>()
                .join("\n"),
            good.lines()
                .filter(|l| !l.starts_with("audit"))
                .collect::<Vec<_>>()
                .join("\n"),
            format!("{good}audit {}\n", BASE64URL_NOPAD.encode(&[1u8; 32])),
            good.lines()
                .filter(|l| !l.starts_with("master"))
                .collect::<Vec<_>>()
                .join("\n"),
            format!("{good}master 1 {}\n", BASE64URL_NOPAD.encode(&[0u8; 32])),
            format!("{good}master x AAAA\n"),
            format!("{good}master 5 AAAA\n"),
            format!("{good}master 0 {}\n", BASE64URL_NOPAD.encode(&[0u8; 32])),
            format!("{good}unknown line\n"),
        ];
        for bad in bad_cases {
            let err = KeyFile::parse(bad.as_bytes()).unwrap_err();
            // Error messages never contain key material.
            assert!(!err
                .to_string()
                .contains(&BASE64URL_NOPAD.encode(kf.csrf_secret())));
        }
        assert!(KeyFile::parse(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_insecure_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tapestry-keyfile-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tapestry.key");
        let created = load_or_create_key_file(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Second run reads the same keys.
        assert_eq!(load_or_create_key_file(&path).unwrap(), created);
        // Rotation saves atomically, still 0600.
        let mut rotated = created.clone();
        rotated.add_master_key();
        save_key_file(&path, &rotated).unwrap();
        assert_eq!(load_or_create_key_file(&path).unwrap(), rotated);
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Group-readable: refused.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            load_or_create_key_file(&path),
            Err(KeyFileError::InsecurePermissions { mode: 0o640, .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn data_keys_wrap_and_unwrap_only_with_the_right_master_and_binding() {
        let kf = KeyFile::generate();
        let ring = Keyring::new_practice(PracticeId::random());
        let wrapped = ring.wrap_all(&kf).unwrap();
        let back = Keyring::unwrap_all(ring.practice_id(), &wrapped, &kf).unwrap();
        assert_eq!(back, ring);
        // Without the key file (a different one) nothing unwraps.
        let other_kf = KeyFile::generate();
        assert_eq!(
            Keyring::unwrap_all(ring.practice_id(), &wrapped, &other_kf),
            Err(IntegrityError::AuthenticationFailed)
        );
        // A wrapped key relabelled as another practice's does not unwrap.
        let mut moved = wrapped[0].clone();
        let p2 = PracticeId::random();
        moved.practice_id = p2;
        assert!(Keyring::unwrap_all(p2, &[moved], &kf).is_err());
        // A relabelled version does not unwrap either.
        let mut relabelled = wrapped[0].clone();
        relabelled.version = 7;
        assert!(DataKey::unwrap(&relabelled, &kf).is_err());
        // Unknown master id.
        let mut unknown = wrapped[0].clone();
        unknown.master_key_id = 99;
        assert_eq!(
            DataKey::unwrap(&unknown, &kf),
            Err(IntegrityError::UnknownMasterKey(99))
        );
        // Keys of one practice are refused when loading another's keyring.
        assert!(Keyring::unwrap_all(p2, &wrapped, &kf).is_err());
        assert!(Keyring::unwrap_all(ring.practice_id(), &[], &kf).is_err());
        // Flipped byte in the blob.
        let mut flipped = wrapped[0].clone();
        flipped.blob[30] ^= 1;
        assert!(DataKey::unwrap(&flipped, &kf).is_err());
    }

    #[test]
    fn master_key_rotation_rewraps_data_keys_and_old_master_can_be_retired() {
        let mut kf = KeyFile::generate();
        let ring = Keyring::new_practice(PracticeId::random());
        let c = ctx(ring.practice_id(), Uuid::new_v4());
        let sealed = ring.seal(b"before rotation", &c).unwrap();
        let wrapped_v1 = ring.wrap_all(&kf).unwrap();
        let new_id = kf.add_master_key();
        assert_eq!(new_id, 2);
        let rewrapped: Vec<_> = wrapped_v1.iter().map(|w| rewrap(w, &kf).unwrap()).collect();
        assert!(rewrapped.iter().all(|w| w.master_key_id == 2));
        assert!(
            kf.retire_master_key(2).is_err(),
            "current key cannot be retired"
        );
        kf.retire_master_key(1).unwrap();
        // Old wraps are now unreadable, new ones open existing data unchanged.
        assert!(Keyring::unwrap_all(ring.practice_id(), &wrapped_v1, &kf).is_err());
        let ring2 = Keyring::unwrap_all(ring.practice_id(), &rewrapped, &kf).unwrap();
        assert_eq!(ring2.open(&sealed, &c).unwrap(), b"before rotation");
    }

    #[test]
    fn data_key_rotation_keeps_old_versions_and_reencrypt_moves_values() {
        let mut ring = Keyring::new_practice(PracticeId::random());
        let c = ctx(ring.practice_id(), Uuid::new_v4());
        let old = ring.seal(b"written under v1", &c).unwrap();
        assert_eq!(ring.rotate().version, 2);
        assert_eq!(ring.versions(), vec![1, 2]);
        // Old values still open; new values use v2.
        assert_eq!(ring.open(&old, &c).unwrap(), b"written under v1");
        let new = ring.seal(b"written under v2", &c).unwrap();
        assert_eq!(key_version_of(&new).unwrap(), 2);
        let moved = reencrypt(&ring, &old, &c).unwrap().unwrap();
        assert_eq!(key_version_of(&moved).unwrap(), 2);
        assert_eq!(ring.open(&moved, &c).unwrap(), b"written under v1");
        assert_eq!(reencrypt(&ring, &new, &c).unwrap(), None);
        // A keyring that lost version 1 reports it by number.
        let only_v2 = Keyring {
            practice_id: ring.practice_id(),
            keys: ring
                .keys
                .clone()
                .into_iter()
                .filter(|(v, _)| *v == 2)
                .collect(),
        };
        assert_eq!(
            only_v2.open(&old, &c),
            Err(IntegrityError::UnknownKeyVersion(1))
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn any_plaintext_round_trips_and_any_edit_is_detected(
            plain in prop::collection::vec(any::<u8>(), 0..512),
            pos in any::<prop::sample::Index>(),
            delta in 1u8..=255,
        ) {
            let (ring, c) = setup();
            let sealed = ring.seal(&plain, &c).unwrap();
            prop_assert_eq!(ring.open(&sealed, &c).unwrap(), plain);
            let mut bad = sealed.clone();
            let i = pos.index(bad.len());
            bad[i] = bad[i].wrapping_add(delta);
            prop_assert!(ring.open(&bad, &c).is_err());
        }
    }
}
