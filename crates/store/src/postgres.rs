//! PostgreSQL, for practices that outgrow one machine.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

crate::adapter::adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    Backend::Postgres,
    sqlx::migrate!("./migrations/postgres"),
    beside = ()
);
crate::adapter_security::security_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);
crate::adapter_measurement::measurement_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);

mod ingest;
crate::adapter_schedule::schedule_adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "BEGIN",
    false,
    "SELECT pg_advisory_xact_lock($1)"
);
crate::adapter_groups::groups_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow, "BEGIN");
crate::adapter_matching::matching_adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    begin = "BEGIN",
    lock_rows = " FOR UPDATE",
    gate_writes = false
);
crate::adapter_messaging::messaging_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);
crate::adapter_records::records_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);
crate::adapter_jobs::jobs_adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    "FOR UPDATE SKIP LOCKED"
);
crate::adapter_portal::portal_adapter!(PgStore, sqlx::Postgres, sqlx::postgres::PgRow);

impl PgStore {
    /// Opens with a fresh in-memory key file (tests and tools that do not
    /// reopen sealed data); the product uses [`Self::open_with_keys`].
    pub async fn open(url: &str) -> StoreResult<Self> {
        Self::open_with_keys(url, crate::crypto::KeyFile::generate()).await
    }

    /// Opens `url`; sealed columns use `key_file`.
    pub async fn open_with_keys(url: &str, key_file: crate::crypto::KeyFile) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::from_pool_with_keys(pool, key_file))
    }
}
