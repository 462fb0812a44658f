//! Time per password hash with the production Argon2id parameters.
//!
//! `cargo run --release -p tapestry-bench --bin argon2_time [iterations]`
//! Prints the parameters and the median / min / max milliseconds per hash and
//! per verification, and the dummy verification used for unknown users.

use std::time::Instant;
use tapestry_domain::identity::password::{
    hash_password, prepare_unknown_user_check, verify_password, verify_unknown_user,
    NormalizedPassword, ARGON2_M_KIB, ARGON2_P, ARGON2_T,
};

fn summary(mut ms: Vec<f64>) -> String {
    ms.sort_by(|a, b| a.total_cmp(b));
    let median = ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN);
    let min = ms.first().copied().unwrap_or(f64::NAN);
    let max = ms.last().copied().unwrap_or(f64::NAN);
    format!("median {median:.1} ms, min {min:.1} ms, max {max:.1} ms")
}

fn main() {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(1);
    let password = NormalizedPassword::new("violet meadow lantern");
    let mut hash_ms = Vec::with_capacity(iterations);
    let mut verify_ms = Vec::with_capacity(iterations);
    let mut unknown_ms = Vec::with_capacity(iterations);
    let mut stored = String::new();
    prepare_unknown_user_check();
    for _ in 0..iterations {
        let t = Instant::now();
        stored = match hash_password(&password) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("hashing failed: {e}");
                std::process::exit(1);
            }
        };
        hash_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let _ = verify_password("violet meadow lanterN", &stored);
        verify_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let t = Instant::now();
        let _ = verify_unknown_user("violet meadow lanterN");
        unknown_ms.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "Argon2id v=19 m={ARGON2_M_KIB} KiB t={ARGON2_T} p={ARGON2_P}; {iterations} iterations"
    );
    println!(
        "stored form: {}",
        stored.split('$').take(4).collect::<Vec<_>>().join("$")
    );
    println!("hash:                 {}", summary(hash_ms));
    println!("verify (wrong pw):    {}", summary(verify_ms));
    println!("verify (unknown user): {}", summary(unknown_ms));
}
