//! Test support: a throwaway PostgreSQL cluster started with `pg_ctl` under the
//! build's target directory, and a fresh database per test. Compiled only for
//! tests (feature `testing`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running throwaway cluster.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    pub dir: PathBuf,
}

static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();

fn pg_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("pg_ctl").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, p)| p)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL tool, as the `postgres` user when we are root (initdb
/// refuses to run as root).
fn pg_command(bin: &Path, tool: &str, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
        c
    } else {
        Command::new(bin.join(tool))
    }
}

fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

fn start(base: &Path) -> Result<PgCluster, String> {
    let bin = pg_bin_dir().ok_or_else(|| {
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl)".to_string()
    })?;
    let root = is_root();
    let dir = base.join(format!("pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if root {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown of the test cluster directory failed".into());
        }
    }
    let data = dir.join("data");
    let out = pg_command(&bin, "initdb", root)
        .args(["-D"])
        .arg(&data)
        .args(["--auth=trust", "-U", "postgres", "-E", "UTF8", "--no-sync"])
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = free_port()?;
    let opts = format!(
        "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400",
        dir.display()
    );
    let out = pg_command(&bin, "pg_ctl", root)
        .arg("-D")
        .arg(&data)
        .args(["-o", &opts, "-l"])
        .arg(dir.join("log"))
        .args(["-w", "start"])
        .output()
        .map_err(|e| format!("pg_ctl: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "pg_ctl start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // Stop and remove the cluster when this test process exits.
    let runas = if root { "runuser -u postgres -- " } else { "" };
    let watchdog = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {runas}{pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    Command::new("sh")
        .args(["-c", &watchdog])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("watchdog: {e}"))?;
    Ok(PgCluster { port, dir })
}

/// The shared throwaway cluster, started on first use. `None` when PostgreSQL
/// is not installed: the caller's test then reports itself as skipped, unless
/// `TAPESTRY_TEST_REQUIRE_POSTGRES=1` (set in CI), in which case it fails.
pub fn cluster(base: &Path) -> Option<&'static PgCluster> {
    match CLUSTER.get_or_init(|| start(base)) {
        Ok(c) => Some(c),
        Err(why) => {
            let required = std::env::var("TAPESTRY_TEST_REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "PostgreSQL is required (TAPESTRY_TEST_REQUIRE_POSTGRES=1) but unavailable: {why}"
            );
            // Written past the test harness's capture, so the skip is visible.
            let _ = writeln!(std::io::stderr(), "SKIPPED (postgres backend): {why}");
            None
        }
    }
}

/// A URL to a brand-new, empty database in the throwaway cluster, owned by
/// its own login role with a random strong password (so the URL passes the
/// application's credential checks).
pub async fn fresh_database(base: &Path) -> Option<String> {
    let cluster = cluster(base)?;
    let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", cluster.port);
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("t_{suffix}");
    let role = format!("u_{suffix}");
    let password = format!("Pw-{}", uuid::Uuid::new_v4().simple());
    // The cluster is running: failing to create a database is a test failure,
    // not a skip.
    let conn = <sqlx::PgConnection as sqlx::Connection>::connect(&admin).await;
    assert!(
        conn.is_ok(),
        "cannot connect to the test cluster: {:?}",
        conn.err()
    );
    let mut conn = conn.ok()?;
    for statement in [
        format!("CREATE ROLE {role} LOGIN PASSWORD '{password}'"),
        format!("CREATE DATABASE {name} OWNER {role}"),
    ] {
        let done = sqlx::query(&statement).execute(&mut conn).await;
        assert!(done.is_ok(), "test cluster: {statement}: {:?}", done.err());
    }
    let _ = sqlx::Connection::close(conn).await;
    Some(format!(
        "postgres://{role}:{password}@127.0.0.1:{}/{name}",
        cluster.port
    ))
}
