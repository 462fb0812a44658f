//! With TLS configured, Tapestry speaks only TLS 1.2 and 1.3 and sends HSTS.

use crate::harness::Server;
use std::process::{Command, Stdio};

fn self_signed(dir: &std::path::Path) -> (String, String) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (
        cert_path.to_string_lossy().to_string(),
        key_path.to_string_lossy().to_string(),
    )
}

/// Whether `openssl s_client` completes a handshake with `version_flag`.
fn handshake(addr: &str, version_flag: &str) -> bool {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", addr, version_flag, "-brief"])
        .stdin(Stdio::null())
        .output();
    match out {
        Ok(o) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            text.contains("Protocol version:") && o.status.success()
        }
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_only_modern_versions_with_hsts() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(tmp.path());
    let server = Server::start(
        tmp.path(),
        &["serve"],
        &[
            ("TAPESTRY_TLS_CERT_FILE", &cert),
            ("TAPESTRY_TLS_KEY_FILE", &key),
        ],
    );
    let https = server.base.replace("http://", "https://");
    assert!(server.stdout.contains("https://"), "{}", server.stdout);
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = client.get(format!("{https}/healthz")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let hsts = r
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(hsts.contains("max-age=31536000"), "HSTS: {hsts}");
    // Plain HTTP on the TLS port gets no answer.
    assert!(reqwest::get(format!("{}/healthz", server.base))
        .await
        .is_err());
    let addr = server.base.trim_start_matches("http://").to_string();
    if Command::new("openssl").arg("version").output().is_ok() {
        assert!(handshake(&addr, "-tls1_2"), "TLS 1.2 must succeed");
        assert!(handshake(&addr, "-tls1_3"), "TLS 1.3 must succeed");
        assert!(!handshake(&addr, "-tls1_1"), "TLS 1.1 must fail");
    }
    server.stop();
}

#[test]
fn a_missing_certificate_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let out = crate::harness::tapestry(tmp.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TAPESTRY_TLS_CERT_FILE", "nope.pem")
        .env("TAPESTRY_TLS_KEY_FILE", "nope-key.pem")
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tls.cert_file nope.pem"), "{err}");
    assert!(!tmp.path().join("tapestry-data").exists());
}
