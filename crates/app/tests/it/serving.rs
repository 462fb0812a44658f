//! The two ways a practice starts Tapestry: the demo and an empty instance,
//! on SQLite and on PostgreSQL.

use crate::harness::{data_dir, get, Server};
use std::path::Path;
use std::sync::Arc;
use tapestry_store::{PgStore, SqliteStore, Store};

async fn sqlite_at(dir: &Path) -> Arc<dyn Store> {
    Arc::new(
        SqliteStore::open(&tapestry_store::sqlite_file(&data_dir(dir)))
            .await
            .unwrap(),
    )
}

async fn client_count(store: &Arc<dyn Store>) -> (usize, usize, u64) {
    let practices = store.practices().await.unwrap();
    let mut clients = 0;
    let mut submissions = 0;
    for p in &practices {
        clients += store.clients_in_practice(p.id).await.unwrap().len();
        submissions += store.count_submissions(p.id).await.unwrap();
    }
    (practices.len(), clients, submissions)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_keeps_data_and_never_seeds_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let first = Server::start(tmp.path(), &["demo"], &[]);
    assert!(
        first.stdout.contains("demo practice created"),
        "{}",
        first.stdout
    );
    for role in ["practice owner", "clinician", "supervisor", "client"] {
        assert!(
            first.stdout.contains(role),
            "demo logins lack a {role}: {}",
            first.stdout
        );
    }
    let (status, body) = get(&format!("{}/", first.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains("Tapestry Demo Practice"));
    let (status, body) = get(&format!("{}/readyz", first.base)).await;
    assert_eq!((status, body.contains("sqlite")), (200, true));
    let first_stdout = first.stdout.clone();
    assert!(
        first.stop().success(),
        "SIGTERM should end the server cleanly"
    );

    // The data directory is private to the service account (G6).
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data_dir(tmp.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "data directory mode {mode:o}");
    }
    // The database is SQLite in WAL mode with synchronous=FULL.
    let store = sqlite_at(tmp.path()).await;
    let (practices, clients, submissions) = client_count(&store).await;
    assert_eq!((practices, clients), (1, 40));
    assert!(submissions > 300, "only {submissions} demo submissions");
    let pool = SqliteStore::open(&tapestry_store::sqlite_file(&data_dir(tmp.path())))
        .await
        .unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(mode, "wal");
    let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(pool.pool())
        .await
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    store.close().await;
    pool.close().await;

    // Starting again keeps every record and seeds nothing new; the same logins are shown.
    let second = Server::start(tmp.path(), &["demo"], &[]);
    assert!(second.stdout.contains("demo practice ready"));
    let logins = |s: &str| {
        s.lines()
            .filter(|l| l.contains("@demo.tapestry.invalid"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(logins(&second.stdout), logins(&first_stdout));
    assert_eq!(
        logins(&first_stdout).len(),
        11,
        "5 staff + 6 clients (one waiting for a match)"
    );
    second.stop();
    let store = sqlite_at(tmp.path()).await;
    assert_eq!(
        client_count(&store).await,
        (practices, clients, submissions)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_instance_prints_a_one_time_bootstrap_token_and_no_password() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &["serve"], &[]);
    assert!(server.stdout.contains("/bootstrap"), "{}", server.stdout);
    let token = server
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| {
            l.len() == 43
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .expect("a 256-bit base64url token")
        .to_string();
    assert!(!server.stdout.to_lowercase().contains("password"));
    let (status, body) = get(&format!("{}/", server.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains("no practice owner yet"));
    server.stop();
    // Only the token's hash is stored.
    let store = sqlite_at(tmp.path()).await;
    assert_eq!(store.count_users().await.unwrap(), 0);
    let db = std::fs::read(tapestry_store::sqlite_file(&data_dir(tmp.path()))).unwrap();
    let wal = std::fs::read(data_dir(tmp.path()).join("tapestry.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(token.len()).any(|w| w == token.as_bytes()),
            "bootstrap token stored in clear"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_product_runs_on_postgresql() {
    let Some(url) =
        tapestry_store::testing::fresh_database(Path::new(env!("CARGO_TARGET_TMPDIR"))).await
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(tmp.path(), &["demo"], &[("DATABASE_URL", &url)]);
    assert!(
        !server
            .stdout
            .contains(url.split('@').next().unwrap().split(':').nth(2).unwrap()),
        "password printed"
    );
    let (status, body) = get(&format!("{}/readyz", server.base)).await;
    assert_eq!(status, 200);
    assert!(body.contains("postgres"), "{body}");
    server.stop();
    let store: Arc<dyn Store> = Arc::new(PgStore::open(&url).await.unwrap());
    let (practices, clients, _) = client_count(&store).await;
    assert_eq!((practices, clients), (1, 40));
    // Nothing was written to a SQLite file.
    assert!(!tapestry_store::sqlite_file(&data_dir(tmp.path())).exists());
}
