//! Micro-benchmark of scoring alone (issue 4, B3 target: < 1 µs per PHQ-9 submission).
//! Validates, scores, classifies reliable change from a baseline and checks risk signals for
//! a stream of varied PHQ-9 submissions. Not a test: prints figures only.
//!
//! Run: `cargo run --release -p tapestry-bench --bin score_phq9 [N]`

use std::hint::black_box;
use std::time::Instant;
use tapestry_domain::change::classify_reliable_change;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::risk::risk_signals;
use tapestry_domain::scoring::{score, Answers};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let registry = InstrumentRegistry::embedded()?;
    let def = registry.require("phq9")?;
    let threshold = def.reliable_change_threshold().unwrap_or(6.0);
    // 64 pre-built submissions (seeded pattern, no RNG dependency).
    let inputs: Vec<Answers> = (0..64u32)
        .map(|s| {
            let values: Vec<i32> = (0..9u32)
                .map(|i| ((s.wrapping_mul(2_654_435_761) >> (i * 3)) % 4) as i32)
                .collect();
            Answers::from_values(&values)
        })
        .collect();
    let mut checksum = 0f64;
    let mut signals = 0usize;
    let start = Instant::now();
    for i in 0..n {
        let a = &inputs[i % inputs.len()];
        let s = score(def, a)?;
        if let Some(t) = s.total {
            checksum += t.0;
            let _ = black_box(classify_reliable_change(20.0, t.0, threshold, false));
        }
        if !s.critical.is_empty() {
            signals += risk_signals(def, a, &s).len();
        }
        black_box(&s);
    }
    let elapsed = start.elapsed();
    let per = elapsed.as_nanos() as f64 / n as f64;
    println!(
        "{{\"bench\":\"score_phq9\",\"submissions\":{n},\"ns_per_submission\":{per:.1},\"checksum\":{checksum},\"risk_signals\":{signals}}}"
    );
    Ok(())
}
