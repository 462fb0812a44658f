//! Dev-only helpers for Tapestry's real-browser tests (never shipped:
//! `publish = false`, a dev-dependency of the web and app test binaries).
//!
//! * [`tools`]: chromium and chromedriver, or SKIPPED (a failure under
//!   `TAPESTRY_TEST_REQUIRE_BROWSER=1`).
//! * [`DriverProcess`]: chromedriver in a process group of its own, so no
//!   Chromium outlives its test.
//! * [`Browser`]: one headless Chromium session (fantoccini) against a
//!   Tapestry served at `base`, with the page helpers the journeys use.
//!
//! Test support code: a failed step panics with what the page showed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// Chromium arguments for a fake camera and microphone, granted without a
/// prompt, with peer connections allowed on loopback.
pub const FAKE_MEDIA: &[&str] = &[
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
];

/// Chromium argument that turns scripting off.
pub const JAVASCRIPT_OFF: &str = "--blink-settings=scriptEnabled=false";

fn find_tool(names: &[&str]) -> Option<PathBuf> {
    for name in names {
        for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return Some(p);
            }
        }
    }
    None
}

/// chromium and chromedriver, or `None` (with SKIPPED printed) when missing;
/// missing tools fail the test under `TAPESTRY_TEST_REQUIRE_BROWSER=1`.
pub fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let chromium = find_tool(&["chromium", "chromium-browser", "google-chrome"]);
    let driver = find_tool(&["chromedriver"]);
    match (chromium, driver) {
        (Some(c), Some(d)) => Some((c, d)),
        _ => {
            assert!(
                std::env::var("TAPESTRY_TEST_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "chromium and chromedriver are required (TAPESTRY_TEST_REQUIRE_BROWSER=1)"
            );
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (browser) {test}: chromium or chromedriver not installed"
            );
            None
        }
    }
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// chromedriver in a process group of its own: dropping it ends chromedriver
/// and every Chromium process it started, also when a test fails before it
/// closes its session (no browser outlives its test).
pub struct DriverProcess {
    child: Child,
}

impl DriverProcess {
    /// Spawns `command` (chromedriver with its arguments) in a new process group.
    pub fn spawn(mut command: Command) -> DriverProcess {
        command.process_group(0).kill_on_drop(true);
        DriverProcess {
            child: command.spawn().expect("chromedriver starts"),
        }
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
    }
}

/// A headless Chromium session (with its own chromedriver and profile)
/// pointed at a Tapestry served at `base`.
pub struct Browser {
    pub client: Client,
    /// `http://host:port` of the Tapestry under test.
    pub base: String,
    /// Where [`Browser::screenshot`] writes its PNGs.
    pub screenshots: PathBuf,
    driver_url: String,
    session: String,
    _driver: DriverProcess,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and one headless Chromium
    /// session with `extra_args` (e.g. [`FAKE_MEDIA`], [`JAVASCRIPT_OFF`]).
    pub async fn launch(
        base: &str,
        chromium: &Path,
        chromedriver: &Path,
        extra_args: &[&str],
        screenshots: &Path,
    ) -> Browser {
        let port = free_port();
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = DriverProcess::spawn(command);
        let driver_url = format!("http://127.0.0.1:{port}");
        let profile = tempfile::tempdir().unwrap();
        let mut caps = serde_json::Map::new();
        let mut args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1280,800".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium.to_string_lossy(),
                "args": args,
            }),
        );
        caps.insert(
            "goog:loggingPrefs".into(),
            json!({"browser": "ALL", "performance": "ALL"}),
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        let client = loop {
            match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(caps.clone())
                .connect(&driver_url)
                .await
            {
                Ok(c) => break c,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("chromedriver did not start: {e}"),
            }
        };
        let session = client.session_id().await.unwrap().unwrap();
        Browser {
            client,
            base: base.to_string(),
            screenshots: screenshots.to_path_buf(),
            driver_url,
            session,
            _driver: driver,
            _profile: profile,
        }
    }

    /// Opens `path` on the server under test.
    pub async fn go(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.base))
            .await
            .unwrap();
    }

    /// The current page's path.
    pub async fn path(&self) -> String {
        self.client.current_url().await.unwrap().path().to_string()
    }

    /// Waits (up to 15 s) until the page's path is `want`.
    pub async fn wait_path(&self, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let p = self.path().await;
            if p == want {
                // Let the new document finish loading.
                let _ = self.client.wait().for_element(Locator::Css("main")).await;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still on {p}, wanted {want}; page: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Replaces the text of the field at `css`.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        e.clear().await.unwrap();
        e.send_keys(text).await.unwrap();
    }

    /// Clicks the element at `css`.
    pub async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .click()
            .await
            .unwrap();
    }

    /// Chooses `value` in the `<select>` at `css`.
    pub async fn select(&self, css: &str, value: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
    }

    /// The visible text of the element at `css`.
    pub async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
            .text()
            .await
            .unwrap()
    }

    /// Clicks `css` (a form that posts and then reloads this same page) and
    /// waits until the new document has replaced the old one.
    pub async fn submit_same_page(&self, css: &str) {
        self.client
            .execute("window.__beforeSubmit = true;", vec![])
            .await
            .unwrap();
        self.click(css).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let gone = self
                .client
                .execute(
                    "return document.readyState === 'complete' && window.__beforeSubmit === undefined;",
                    vec![],
                )
                .await
                .map(|v| v == json!(true))
                .unwrap_or(false);
            if gone {
                return;
            }
            if Instant::now() >= deadline {
                let said = self
                    .client
                    .execute(
                        "return Array.from(document.querySelectorAll('.message, [role=alert], [role=status]')).map(function (e) { return e.textContent.trim(); }).concat(Array.from(document.querySelectorAll('input:invalid, select:invalid, textarea:invalid')).map(function (e) { return 'invalid ' + (e.id || e.name) + ': ' + e.validationMessage; })).filter(Boolean).join(' | ');",
                        vec![],
                    )
                    .await
                    .unwrap_or_default();
                panic!("{css}: the page did not reload; it says: {said}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits (up to 15 s) until the element at `css` shows `want`.
    pub async fn wait_text(&self, css: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(e) = self.client.find(Locator::Css(css)).await {
                if e.text().await.unwrap_or_default().contains(want) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css} never showed {want:?}; page: {}",
                self.client.source().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to 15 s) until nothing on the page matches `css` (e.g. a
    /// form that a plain post, without JavaScript, has made unnecessary).
    pub async fn wait_gone(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.client.find(Locator::Css(css)).await.is_ok() {
            assert!(
                Instant::now() < deadline,
                "{css} is still on {}",
                self.path().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap()
    }

    /// Polls `script` until it returns `want` (at most `secs` seconds);
    /// returns the last value seen.
    pub async fn wait_js(&self, script: &str, want: &Value, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let last = self
                .client
                .execute(script, vec![])
                .await
                .unwrap_or_default();
            if &last == want || Instant::now() >= deadline {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// The browser's log of `kind` (browser = console, performance = DevTools
    /// network events), read through chromedriver.
    pub async fn log(&self, kind: &str) -> Vec<Value> {
        let url = format!("{}/session/{}/se/log", self.driver_url, self.session);
        let v: Value = reqwest::Client::new()
            .post(url)
            .json(&json!({ "type": kind }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["value"].as_array().cloned().unwrap_or_default()
    }

    /// The console errors logged so far.
    pub async fn console_errors(&self) -> Vec<Value> {
        self.log("browser")
            .await
            .into_iter()
            .filter(|e| e["level"] == "SEVERE")
            .collect()
    }

    /// Fills the sign-in form and sends it (the caller waits for where it lands).
    pub async fn sign_in(&self, email: &str, password: &str) {
        self.go("/sign-in").await;
        self.fill("input[name=email]", email).await;
        self.fill("input[name=password]", password).await;
        self.click("#sign-in button[type=submit]").await;
    }

    /// Signs out with the header's button.
    pub async fn sign_out(&self) {
        self.click("header form.inline button").await;
        self.wait_path("/sign-in").await;
    }

    /// Saves the page at desktop (1280×800) and phone (390×844) widths as
    /// `<screenshots>/<name>-{desktop,phone}.png`, checking that the header
    /// never wraps (one line on a phone: the menu folds into a `<details>`).
    pub async fn screenshot(&self, name: &str) {
        std::fs::create_dir_all(&self.screenshots).unwrap();
        for (label, w, h) in [("desktop", 1280, 800), ("phone", 390, 844)] {
            self.client.set_window_size(w, h).await.unwrap();
            let header = self
                .client
                .execute(
                    "const h = document.querySelector('header.top'); return h ? h.getBoundingClientRect().height : 0;",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            assert!(
                header <= 80.0,
                "{name} ({label}): header is {header}px tall"
            );
            let png = self.client.screenshot().await.unwrap();
            std::fs::write(self.screenshots.join(format!("{name}-{label}.png")), png).unwrap();
        }
        self.client.set_window_size(1280, 800).await.unwrap();
    }
}
