//! The two backends every store case runs on: a fresh SQLite file and a fresh
//! database in the throwaway PostgreSQL cluster (`tapestry_store::testing`).
//! `conformance!` declares each case once and runs it on both.

use std::path::Path;
use std::sync::Arc;
use tapestry_store::{PgStore, SqliteStore, Store};

pub async fn fresh_sqlite() -> (Arc<dyn Store>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("tapestry.db"))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    (Arc::new(store), dir)
}

/// `None` (reported as skipped) when PostgreSQL is not installed.
pub async fn fresh_postgres() -> Option<Arc<dyn Store>> {
    let url =
        tapestry_store::testing::fresh_database(Path::new(env!("CARGO_TARGET_TMPDIR"))).await?;
    let store = PgStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(Arc::new(store))
}

/// Declares each case once and runs it on both backends.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (store, _dir) = crate::backends::fresh_sqlite().await;
                assert_eq!(store.backend(), tapestry_store::Backend::Sqlite);
                super::$case(store).await;
            })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(store) = crate::backends::fresh_postgres().await else { return };
                assert_eq!(store.backend(), tapestry_store::Backend::Postgres);
                super::$case(store).await;
            })+
        }
    };
}
