//! Starting and stopping the real binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn tapestry(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tapestry"));
    c.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TAPESTRY_") || key == "DATABASE_URL" {
            c.env_remove(key);
        }
    }
    c.env("TAPESTRY_LOG", "warn");
    c
}

/// A server started by a test, stopped (SIGTERM) when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub stdout: String,
}

impl Server {
    /// Starts `tapestry <args> --listen 127.0.0.1:0` and waits for it to serve.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let mut cmd = tapestry(dir);
        cmd.args(args)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn tapestry");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut seen = String::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                seen.push_str(&line);
                seen.push('\n');
                if line.starts_with("Tapestry is serving") {
                    let _ = tx.send(seen.clone());
                }
            }
        });
        let seen = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(s) => s,
            Err(_) => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "server did not start: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        };
        let line = seen
            .lines()
            .find(|l| l.starts_with("Tapestry is serving"))
            .expect("serving line");
        let addr = line
            .split('(')
            .nth(1)
            .and_then(|s| s.split(')').next())
            .expect("address in serving line");
        Server {
            child,
            base: format!("http://{addr}"),
            stdout: seen,
        }
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("server did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn data_dir(dir: &Path) -> PathBuf {
    dir.join("tapestry-data")
}

pub async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status().as_u16();
    (status, r.text().await.expect("body"))
}
