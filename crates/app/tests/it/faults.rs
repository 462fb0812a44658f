//! Bad configuration and broken surroundings: each gives a one-line error
//! naming the problem and the fix, a non-zero exit, and writes nothing.

use crate::harness::{data_dir, tapestry};
use std::path::Path;

struct Outcome {
    code: Option<i32>,
    stderr: String,
}

fn run(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = tapestry(dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run tapestry");
    Outcome {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).to_string(),
    }
}

fn assert_one_line_failure(o: &Outcome, needle: &str) {
    assert_ne!(o.code, Some(0), "should fail: {}", o.stderr);
    assert!(
        o.stderr.contains(needle),
        "expected '{needle}' in: {}",
        o.stderr
    );
    assert_eq!(
        o.stderr.trim_end().lines().count(),
        1,
        "not one line: {}",
        o.stderr
    );
    assert!(o.stderr.starts_with("error: "));
}

#[test]
fn busy_port_fails_before_writing_anything() {
    let tmp = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let o = run(tmp.path(), &["serve", "--listen", &addr], &[]);
    assert_one_line_failure(&o, "already in use");
    assert!(
        !data_dir(tmp.path()).exists(),
        "data directory created despite the failure"
    );
}

#[test]
fn corrupt_database_file_is_refused_and_left_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = data_dir(tmp.path());
    std::fs::create_dir_all(&dir).unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(dir.join("tapestry.db"), &garbage).unwrap();
    let o = run(tmp.path(), &["migrate"], &[]);
    assert_one_line_failure(&o, "not a SQLite database");
    assert_eq!(std::fs::read(dir.join("tapestry.db")).unwrap(), garbage);
    assert!(!dir.join("tapestry.db-wal").exists());
    // A truncated SQLite header is caught too.
    std::fs::write(dir.join("tapestry.db"), b"SQLite for").unwrap();
    assert_one_line_failure(&run(tmp.path(), &["migrate"], &[]), "not a SQLite database");
}

#[test]
fn data_dir_that_is_a_file_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), b"x").unwrap();
    let o = run(tmp.path(), &["migrate", "--data-dir", "file"], &[]);
    assert_one_line_failure(&o, "not a directory");
}

#[test]
fn unknown_configuration_keys_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("tapestry.toml"),
        "lisen = \"127.0.0.1:8080\"\n",
    )
    .unwrap();
    let o = run(tmp.path(), &["migrate"], &[]);
    assert_one_line_failure(&o, "lisen");
    assert!(!data_dir(tmp.path()).exists());
    std::fs::remove_file(tmp.path().join("tapestry.toml")).unwrap();
    let o = run(tmp.path(), &["migrate"], &[("TAPESTRY_DATA_DRI", "x")]);
    assert_one_line_failure(&o, "TAPESTRY_DATA_DRI");
}

#[test]
fn unreachable_or_weak_database_urls_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(
        tmp.path(),
        &["migrate"],
        &[(
            "DATABASE_URL",
            "postgres://app:Str0ng-Pass-Word@127.0.0.1:1/tapestry",
        )],
    );
    assert_one_line_failure(&o, "cannot use the PostgreSQL database");
    assert!(
        !o.stderr.contains("Str0ng-Pass-Word"),
        "password printed: {}",
        o.stderr
    );
    let o = run(
        tmp.path(),
        &["migrate"],
        &[(
            "DATABASE_URL",
            "postgres://postgres:postgres@127.0.0.1/tapestry",
        )],
    );
    assert_one_line_failure(&o, "well-known default");
    let o = run(
        tmp.path(),
        &["migrate"],
        &[("DATABASE_URL", "postgres://app@127.0.0.1/tapestry")],
    );
    assert_one_line_failure(&o, "empty");
    assert!(!data_dir(tmp.path()).exists());
}

#[test]
fn public_address_without_tls_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(tmp.path(), &["serve", "--listen", "0.0.0.0:0"], &[]);
    assert_one_line_failure(&o, "--behind-proxy");
    assert!(!data_dir(tmp.path()).exists());
}

#[test]
fn help_documents_every_subcommand() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tapestry(tmp.path()).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in ["serve", "demo", "migrate", "admin", "bench"] {
        assert!(help.contains(sub), "--help lacks {sub}: {help}");
    }
    let out = tapestry(tmp.path())
        .args(["admin", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("create-user"));
}

#[test]
fn admin_create_user_checks_its_input() {
    let tmp = tempfile::tempdir().unwrap();
    let o = run(
        tmp.path(),
        &[
            "admin",
            "create-user",
            "--practice",
            "nope",
            "--email",
            "a@b.org",
            "--name",
            "A",
            "--role",
            "clinician",
        ],
        &[],
    );
    assert_one_line_failure(&o, "--practice");
    let o = run(
        tmp.path(),
        &[
            "admin",
            "create-user",
            "--practice",
            "00000000-0000-4000-8000-000000000000",
            "--email",
            "a@b.org",
            "--name",
            "A",
            "--role",
            "wizard",
        ],
        &[],
    );
    assert_one_line_failure(&o, "role");
}
