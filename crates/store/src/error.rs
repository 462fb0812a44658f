//! The store's one error type.

/// What can go wrong in storage. Messages never contain clinical content.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken (e.g. an e-mail address already in use).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// The row to change does not exist (in this practice) or has moved on.
    #[error("not found: {0}")]
    NotFound(&'static str),
    /// A stored value could not be read back as the domain type.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Backend(#[source] sqlx::Error),
    /// The SQLite ingest lane's own connection (`sqlite/ingest.rs`) answered with an error.
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    /// Schema migration failed.
    #[error("migration failed: {0}")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A sealed value did not open (tampered, moved, or the wrong key file).
    /// Says nothing about the plaintext.
    #[error("integrity error: {0}")]
    Integrity(#[from] crate::crypto::IntegrityError),
    /// The database location could not be understood.
    #[error("{0}")]
    Location(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Backend(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migration(e)
    }
}

impl StoreError {
    pub(crate) fn unique_or(e: sqlx::Error, what: &'static str) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what),
            _ => StoreError::Backend(e),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;
