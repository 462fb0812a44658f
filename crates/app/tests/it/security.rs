//! `tapestry audit verify` detects edits, deletions and reorderings of a
//! copy of the audit log (G14); `tapestry keys rotate` re-wraps and
//! re-encrypts (G5); the key file is created with mode 0600.

use crate::harness::{data_dir, tapestry};
use chrono::{TimeZone, Utc};
use std::path::Path;
use tapestry_domain::practice::Practice;
use tapestry_store::audit_chain::{NewAuditEvent, Outcome};
use tapestry_store::{PracticeStore, SecurityStore, SqliteStore, Store, SubmissionStore};

fn verify(dir: &Path) -> (bool, String, String) {
    let out = tapestry(dir).args(["audit", "verify"]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

async fn tamper(original: &Path, sql: &[&str]) -> (bool, String) {
    let tmp = tempfile::tempdir().unwrap();
    copy_dir(&data_dir(original), &data_dir(tmp.path()));
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite:{}",
        tapestry_store::sqlite_file(&data_dir(tmp.path())).display()
    ))
    .await
    .unwrap();
    // An attacker with the file can drop the triggers; the chain still tells.
    for stmt in [
        "DROP TRIGGER audit_events_no_update",
        "DROP TRIGGER audit_events_no_delete",
    ]
    .iter()
    .chain(sql)
    {
        sqlx::query(stmt).execute(&pool).await.unwrap();
    }
    pool.close().await;
    let (ok, _, err) = verify(tmp.path());
    (ok, err)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_names_the_first_broken_entry_of_a_tampered_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tapestry(tmp.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = data_dir(tmp.path()).join("tapestry.key");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "key file mode {mode:o}");
    }
    let store = SqliteStore::open(&tapestry_store::sqlite_file(&data_dir(tmp.path())))
        .await
        .unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 4, 1, 8, 0, 0).unwrap();
    let practice = Practice::new("Audit practice", "UTC", t0).unwrap();
    store.insert_practice(&practice).await.unwrap();
    for i in 0..20 {
        store
            .append_audit(NewAuditEvent {
                actor: None,
                practice_id: Some(practice.id),
                object_type: "client".into(),
                object_id: Some(uuid::Uuid::new_v4()),
                action: "read_clinical_record".into(),
                outcome: Outcome::Allowed,
                at: t0 + chrono::Duration::seconds(i),
                request_id: format!("r{i}"),
            })
            .await
            .unwrap();
    }
    store.close().await;
    let (ok, stdout, stderr) = verify(tmp.path());
    assert!(ok, "{stderr}");
    assert!(stdout.contains("20 entries"), "{stdout}");
    for (what, sql, first_bad) in [
        (
            "edit",
            vec!["UPDATE audit_events SET action = 'nothing' WHERE seq = 7"],
            7,
        ),
        (
            "delete",
            vec!["DELETE FROM audit_events WHERE seq = 12"],
            12,
        ),
        (
            "reorder",
            vec![
                "UPDATE audit_events SET seq = 1000 WHERE seq = 3",
                "UPDATE audit_events SET seq = 3 WHERE seq = 4",
                "UPDATE audit_events SET seq = 4 WHERE seq = 1000",
            ],
            3,
        ),
        (
            "cut the head",
            vec!["DELETE FROM audit_events WHERE seq = 1"],
            1,
        ),
    ] {
        let (ok, err) = tamper(tmp.path(), &sql).await;
        assert!(!ok, "{what} not detected");
        assert!(err.contains(&format!("entry {first_bad}")), "{what}: {err}");
    }
    // The original is untouched and still verifies.
    assert!(verify(tmp.path()).0);
    // Cutting off the newest entries leaves a valid-looking chain; the signed
    // checkpoint exported before shows it.
    let out = tapestry(tmp.path())
        .args(["audit", "checkpoint"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("entry 20"));
    let (ok, err) = tamper(tmp.path(), &["DELETE FROM audit_events WHERE seq > 15"]).await;
    assert!(!ok, "tail truncation not detected");
    assert!(
        err.contains("entry 16") && err.contains("Truncated"),
        "{err}"
    );
    let (ok, stdout, _) = verify(tmp.path());
    assert!(ok);
    assert!(stdout.contains("1 signed checkpoints matched"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_rewraps_and_reencrypts_and_the_data_still_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tapestry(tmp.path())
        .args(["bench", "ingest", "--count", "5"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = String::from_utf8_lossy(&out.stdout).into_owned();
    let (practice, id) = lines.lines().next().unwrap().split_once(' ').unwrap();
    let before = std::fs::read_to_string(data_dir(tmp.path()).join("tapestry.key")).unwrap();
    let out = tapestry(tmp.path())
        .args(["keys", "rotate", "--data-keys"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("5 values re-encrypted"), "{stdout}");
    let after = std::fs::read_to_string(data_dir(tmp.path()).join("tapestry.key")).unwrap();
    assert_ne!(before, after);
    let store = SqliteStore::open(&tapestry_store::sqlite_file(&data_dir(tmp.path())))
        .await
        .unwrap();
    let got = store
        .submission(practice.parse().unwrap(), id.parse().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.answers.len(), 9);
    store.close().await;
}
