//! PostgreSQL, for practices that outgrow one machine.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

crate::adapter::adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    Backend::Postgres,
    sqlx::migrate!("./migrations/postgres")
);
crate::adapter_measurement::measurement_adapter!(
    PgStore,
    sqlx::Postgres,
    sqlx::postgres::PgRow,
    begin = "BEGIN",
    lock_rows = " FOR UPDATE OF e"
);

impl PgStore {
    pub async fn open(url: &str) -> StoreResult<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(Self::from_pool(pool))
    }
}
