//! Migration 0012 on SQLite rebuilds `clinician_tasks` (SQLite cannot alter a
//! CHECK constraint). A database at version 11 holding tasks is migrated:
//! every row and column survives, the indexes are back, the new kinds are
//! accepted, an unknown kind is still refused, and the one-task-per-episode
//! index holds. (PostgreSQL alters the constraint in place; its schema is
//! exercised by the conformance cases.)

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::Row as _;
use std::borrow::Cow;
use std::path::Path;

const TASK: &str = "INSERT INTO clinician_tasks (id, practice_id, client_id, episode_id, kind, risk_flag_id, assignee, title, detail, colour, due_at, created_at, completed_at) VALUES ($1, X'01', X'02', $2, $3, NULL, NULL, 'Risk review: PHQ-9 item 9 answered 2', 'Same-day full risk assessment', 'amber', '2026-11-21T09:00:00Z', '2026-11-21T09:00:00Z', $4)";

/// Every task row as one string of all its values, by id.
async fn rows(pool: &sqlx::SqlitePool) -> Vec<String> {
    sqlx::query("SELECT quote(id) || kind || title || detail || colour || due_at || created_at || coalesce(completed_at, '-') AS r FROM clinician_tasks ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get("r"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_rebuild_keeps_every_task_and_index() {
    let dir = tempfile::tempdir().unwrap();
    // Foreign keys off: the rows below reference no real practice (the
    // rebuild itself does not depend on it).
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("v11.db"))
        .create_if_missing(true)
        .foreign_keys(false);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/sqlite");
    let mut up_to_11 = Migrator::new(folder.as_path()).await.unwrap();
    up_to_11.migrations = Cow::Owned(
        up_to_11
            .migrations
            .iter()
            .filter(|m| m.version <= 11)
            .cloned()
            .collect(),
    );
    up_to_11.run(&pool).await.unwrap();
    // Version 11 refuses the new kinds.
    assert!(sqlx::query(TASK)
        .bind(vec![9u8])
        .bind(vec![3u8])
        .bind("waitlist_deterioration")
        .bind(None::<String>)
        .execute(&pool)
        .await
        .is_err());
    for (id, done) in [(1u8, None), (2, Some("2026-11-21T10:00:00Z"))] {
        sqlx::query(TASK)
            .bind(vec![id])
            .bind(vec![3u8])
            .bind("risk_review")
            .bind(done)
            .execute(&pool)
            .await
            .unwrap();
    }
    let before = rows(&pool).await;
    assert_eq!(before.len(), 2);
    Migrator::new(folder.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let after = rows(&pool).await;
    assert_eq!(before, after, "every row and value kept");
    let indexes: Vec<String> = sqlx::query(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'clinician_tasks' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&pool)
    .await
    .unwrap()
    .iter()
    .map(|r| r.get("name"))
    .collect();
    assert_eq!(
        indexes,
        [
            "clinician_tasks_flag",
            "clinician_tasks_open",
            "clinician_tasks_waitlist_deterioration_once",
            "clinician_tasks_waitlist_risk_once"
        ]
    );
    let fks: i64 =
        sqlx::query("SELECT COUNT(*) AS n FROM pragma_foreign_key_list('clinician_tasks')")
            .fetch_one(&pool)
            .await
            .unwrap()
            .get("n");
    assert_eq!(
        fks, 6,
        "practice, client, episode, flag, assignee, closed_by"
    );
    // The new kinds: a risk task needs its flag, one deterioration task per
    // episode; an unknown kind is refused.
    let insert = |id: u8, kind: &'static str| {
        sqlx::query(TASK)
            .bind(vec![id])
            .bind(vec![3u8])
            .bind(kind)
            .bind(None::<String>)
            .execute(&pool)
    };
    assert!(
        insert(10, "waitlist_risk").await.is_err(),
        "a waitlist risk task names its risk flag"
    );
    insert(11, "waitlist_deterioration").await.unwrap();
    assert!(
        insert(12, "waitlist_deterioration").await.is_err(),
        "one deterioration task per episode"
    );
    assert!(
        insert(13, "risk_review").await.is_ok(),
        "risk reviews are not limited"
    );
    assert!(insert(14, "coffee").await.is_err());
    // A closing note needs its closer and a completion.
    assert!(
        sqlx::query("UPDATE clinician_tasks SET closing_note = 'x' WHERE id = X'0B'")
            .execute(&pool)
            .await
            .is_err()
    );
}
