//! Tapestry's memory: one `Store` trait per aggregate, with two adapters
//! (SQLite, the embedded default, and PostgreSQL) generated from one body.

mod adapter;
mod adapter_groups;
mod adapter_jobs;
mod adapter_matching;
mod adapter_measurement;
mod adapter_messaging;
mod adapter_portal;
mod adapter_records;
mod adapter_schedule;
mod adapter_security;
pub mod audit_chain;
pub mod crypto;
pub mod error;
pub mod groups;
mod ingest_batch;
pub mod jobs;
pub mod matching;
pub mod measurement;
pub mod messaging;
pub mod portal;
pub mod postgres;
pub mod records;
pub mod schedule;
pub mod security;
pub mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
pub mod traits;
pub mod vault;

use std::path::Path;
use std::sync::Arc;

pub use error::{StoreError, StoreResult};
pub use groups::{AttendanceRecord, GroupChatLine, GroupStore};
pub use jobs::*;
pub use matching::*;
pub use measurement::{IngestReceipt, IngestResult, IngestSettings, MeasurementStore, StoredCurve};
pub use messaging::{Attachment, ChatLine, MessagingStore, SecureMessage};
pub use portal::*;
pub use postgres::PgStore;
pub use records::*;
pub use schedule::*;
pub use security::*;
pub use sqlite::SqliteStore;
pub use traits::*;

/// Where the data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// `tapestry.db` inside this directory.
    SqliteDir(std::path::PathBuf),
    /// A `postgres://` URL.
    Postgres(String),
}

/// The SQLite file inside a data directory.
pub fn sqlite_file(dir: &Path) -> std::path::PathBuf {
    dir.join("tapestry.db")
}

/// Opens the store at `location` with the configured key file and applies
/// pending migrations.
pub async fn open(location: &Location, key_file: crypto::KeyFile) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match location {
        Location::SqliteDir(dir) => {
            Arc::new(SqliteStore::open_with_keys(&sqlite_file(dir), key_file).await?)
        }
        Location::Postgres(url) => Arc::new(PgStore::open_with_keys(url, key_file).await?),
    };
    store.migrate().await?;
    Ok(store)
}
