//! G5/G12 canary scans and integrity errors.

use crate::fixture::*;

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// Everything logged during a test, at every level.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One process-wide capture of every log line of this test binary.
fn captured_logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
        logs
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clinical_text_never_reaches_the_database_files_backups_logs_or_audit_rows() {
    let logs = captured_logs();
    let f = fixture().await;
    let canary = format!("CANARY-{}", uuid::Uuid::new_v4().simple());
    let body =
        format!(r#"{{"reason":"Emergency: {canary} client unreachable by treating clinician"}}"#);
    let path = format!("/api/v1/clients/{}/break-glass", f.client_a.id);
    let a = call(
        &f.state,
        "POST",
        &path,
        f.login("non_treating"),
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // The reason opens again for the store (sealed, not lost).
    let grants = f
        .store
        .break_glass_for(f.practice.id, f.user("non_treating").id)
        .await
        .unwrap();
    let reason = f
        .store
        .break_glass_reason(f.practice.id, grants[0].id)
        .await
        .unwrap()
        .unwrap();
    assert!(reason.contains(&canary));
    // A backup copy (VACUUM INTO) and the live files hold no plaintext.
    let backup = f.dir.path().join("backup.db");
    sqlx::query(&format!("VACUUM INTO '{}'", backup.display()))
        .execute(f.sqlite().pool())
        .await
        .unwrap();
    for file in ["tapestry.db", "tapestry.db-wal", "backup.db"] {
        let bytes = std::fs::read(f.dir.path().join(file)).unwrap_or_default();
        assert!(!contains(&bytes, &canary), "canary found in {file}");
        // The PHQ-9 answers are sealed too.
        assert!(
            !contains(&bytes, "[3,1,2,1,0,2,3,1,2]") && !contains(&bytes, "\"value\":3"),
            "answers in {file}"
        );
    }
    // Reading it back through the API logs nothing of it either.
    let read = call(
        &f.state,
        "GET",
        &format!("/api/v1/clients/{}/submissions", f.client_a.id),
        f.login("treating"),
        None,
    )
    .await;
    assert_eq!(read.status, 200);
    let audit = format!("{:?}", f.store.audit_events().await.unwrap());
    assert!(!audit.contains(&canary));
    let logged = logs.0.lock().unwrap().clone();
    assert!(
        !logged.is_empty(),
        "nothing was logged; the capture is broken"
    );
    assert!(!contains(&logged, &canary), "canary in the logs");
    assert!(!contains(&logged, "Client called"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flipped_ciphertext_byte_is_an_integrity_error_and_a_foreign_key_file_opens_nothing() {
    let f = fixture().await;
    let path = format!("/api/v1/clients/{}/submissions", f.client_a.id);
    let ok = call(&f.state, "GET", &path, f.login("treating"), None).await;
    assert_eq!(ok.status, 200);
    assert!(ok.body.contains("phq9"));
    // Without the key file (another one), nothing decrypts.
    let other = tapestry_store::SqliteStore::open_with_keys(
        &f.dir.path().join("tapestry.db"),
        tapestry_store::crypto::KeyFile::generate(),
    )
    .await
    .unwrap();
    use tapestry_store::{EpisodeStore, SubmissionStore};
    let episodes = other
        .episodes_for_client(f.practice.id, f.client_a.id)
        .await
        .unwrap();
    assert!(other
        .submissions_for_episode(f.practice.id, episodes[0].id)
        .await
        .is_err());
    // Flip one character of the sealed answers.
    use sqlx::Row;
    let row = sqlx::query("SELECT id, answers FROM submissions")
        .fetch_one(f.sqlite().pool())
        .await
        .unwrap();
    let sealed: String = row.get("answers");
    let mut chars: Vec<char> = sealed.chars().collect();
    let i = chars.len() / 2;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    sqlx::query("UPDATE submissions SET answers = $1")
        .bind(&tampered)
        .execute(f.sqlite().pool())
        .await
        .unwrap();
    let bad = call(&f.state, "GET", &path, f.login("treating"), None).await;
    assert_eq!(bad.status, 409, "{}", bad.body);
    assert!(bad.body.contains("integrity_error"));
    assert!(!bad.body.contains("phq9"));
}
