//! Measurement engine: worked examples, property tests, content validation, bad input.

use tapestry_domain::instrument::InstrumentRegistry;

fn reg() -> InstrumentRegistry {
    InstrumentRegistry::embedded().expect("embedded instruments load")
}

#[test]
fn every_embedded_instrument_loads_and_validates() {
    let r = reg();
    for id in [
        "phq9", "phq2", "phq8", "gad7", "gad2", "phq15", "pcl5", "k10", "audit_c", "core10",
        "dass21", "wsas", "isi", "risk_assessment", "session_feedback", "personal_goals",
    ] {
        assert!(r.get(id).is_some(), "{id} missing");
    }
    assert_eq!(r.len(), 16);
}
