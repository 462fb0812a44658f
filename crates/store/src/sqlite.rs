//! The embedded default: SQLite in WAL mode with `synchronous=FULL`, so an
//! acknowledged write survives power loss.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

crate::adapter::adapter!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    Backend::Sqlite,
    sqlx::migrate!("./migrations/sqlite"),
    beside = ingest::IngestLane
);
crate::adapter_security::security_adapter!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
crate::adapter_measurement::measurement_adapter!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow
);

mod ingest;
crate::adapter_schedule::schedule_adapter!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE",
    true,
    ""
);
crate::adapter_groups::groups_adapter!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    "BEGIN IMMEDIATE"
);
crate::adapter_matching::matching_adapter!(
    SqliteStore,
    sqlx::Sqlite,
    sqlx::sqlite::SqliteRow,
    begin = "BEGIN IMMEDIATE",
    lock_rows = "",
    gate_writes = true
);
crate::adapter_messaging::messaging_adapter!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
crate::adapter_records::records_adapter!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);
crate::adapter_jobs::jobs_adapter!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow, "");
crate::adapter_portal::portal_adapter!(SqliteStore, sqlx::Sqlite, sqlx::sqlite::SqliteRow);

/// Page cache per connection (`PRAGMA cache_size`; negative = KiB): 32 MiB instead of
/// SQLite's 2 MiB, so the hot index pages of the submission pipeline stay in memory
/// instead of being re-read from the OS for every group commit (B3 profile).
const PAGE_CACHE: &str = "-32768";

/// Rows sqlx's SQLite worker thread may queue ahead of the reader (its default is 50): the
/// ingest pipeline reads thousands of episode states per group commit, and with a short queue
/// the worker stops and is woken again every 50 rows (B3 profile).
const ROW_BUFFER: usize = 4096;

/// The connection settings every SQLite pool shares, on top of journal mode and `synchronous`.
pub(crate) fn tuned(options: SqliteConnectOptions) -> SqliteConnectOptions {
    options
        .pragma("cache_size", PAGE_CACHE)
        .row_buffer_size(ROW_BUFFER)
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`, with the key
    /// file at its default place beside it (`tapestry.key`, created with mode
    /// 0600 on first use). A configured key file elsewhere: [`Self::open_with_keys`].
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let key_file = crate::crypto::load_or_create_key_file(&path.with_file_name("tapestry.key"))
            .map_err(|e| StoreError::Location(e.to_string()))?;
        Self::open_with_keys(path, key_file).await
    }

    /// Opens the database file at `path`; sealed columns use `key_file`.
    pub async fn open_with_keys(
        path: &Path,
        key_file: crate::crypto::KeyFile,
    ) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = Self::pool_with(options).await?;
        Ok(Self::from_pool_with_keys(pool, key_file))
    }

    /// Opens a `sqlite:` URL (used by tests and `DATABASE_URL=sqlite:…`).
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Location(format!("DATABASE_URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        Ok(Self::from_pool(Self::pool_with(options).await?))
    }

    async fn pool_with(options: SqliteConnectOptions) -> StoreResult<sqlx::SqlitePool> {
        let options = tuned(options);
        Ok(SqlitePoolOptions::new()
            .max_connections(8)
            .min_connections(1)
            .connect_with(options)
            .await?)
    }

    /// `PRAGMA integrity_check`: `"ok"` when the file is sound.
    pub async fn integrity_check(&self) -> StoreResult<String> {
        let row = sqlx::query("PRAGMA integrity_check")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<String, _>(0)?)
    }
}
