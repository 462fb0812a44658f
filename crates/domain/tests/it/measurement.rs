//! Measurement engine: hand-computed worked examples for every instrument (published rule cited
//! beside each), property tests, content validation and bad input.

// Test helpers outside `#[test]` functions unwrap too (clippy.toml allows it only inside tests).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use std::sync::OnceLock;
use tapestry_domain::change::{
    classify_reliable_change, talking_therapies_outcome, DeteriorationDefinition, Pair,
    PairedMeasureRule, ReliableChange,
};
use tapestry_domain::content::{embedded_under, ContentFile};
use tapestry_domain::fhir::{observations, questionnaire_response, FhirContext};
use tapestry_domain::instrument::{
    Availability, InstrumentDef, InstrumentError, InstrumentRegistry, ScoringMethod, Sex,
};
use tapestry_domain::measurement_cli::{
    change_command, outcome_command, score_command, to_json, CliError,
};
use tapestry_domain::risk::{
    risk_signals, task_for, RiskColour, RiskFlag, RiskLevel, RiskSource, TaskDue,
};
use tapestry_domain::scoring::{score, Answer, Answers, DerivedValue, Points, Score, ScoringError};
use tapestry_domain::sleep_diary::{compute, parse_time, SleepDiaryEntry};
use tapestry_domain::trajectory::{
    fit_expected_recovery, nearest_neighbour_check, rational_status, EmpiricalConfig,
    ReferenceEpisode, TrackStatus, TrajectoryError,
};

fn reg() -> &'static InstrumentRegistry {
    static REG: OnceLock<InstrumentRegistry> = OnceLock::new();
    REG.get_or_init(|| InstrumentRegistry::embedded().expect("embedded instruments load"))
}

fn def(id: &str) -> &'static InstrumentDef {
    reg().get(id).unwrap_or_else(|| panic!("{id} not defined"))
}

fn sc(id: &str, values: &[i32]) -> Score {
    score(def(id), &Answers::from_values(values)).expect("scores")
}

fn sc_list(id: &str, list: &str) -> Result<Score, ScoringError> {
    let d = def(id);
    score(d, &Answers::parse_list(list, d.items.len())?)
}

fn total(s: &Score) -> Option<f64> {
    s.total.map(|p| p.0)
}

// ---------------------------------------------------------------------------------------------
// Content validation

#[test]
fn every_embedded_instrument_loads_and_validates() {
    let r = reg();
    for id in [
        "phq9",
        "phq2",
        "phq8",
        "gad7",
        "gad2",
        "phq15",
        "pcl5",
        "k10",
        "audit_c",
        "core10",
        "dass21",
        "wsas",
        "isi",
        "risk_assessment",
        "session_feedback",
        "personal_goals",
        "risk_rescreen",
    ] {
        assert!(r.get(id).is_some(), "{id} missing");
    }
    assert_eq!(r.len(), 17);
    // Own forms are labelled as not validated.
    for id in [
        "risk_assessment",
        "session_feedback",
        "personal_goals",
        "risk_rescreen",
    ] {
        assert!(!def(id).validated, "{id}");
        assert!(def(id).title.contains("not a validated instrument"), "{id}");
    }
}

#[test]
fn licence_handling_and_availability() {
    let r = reg();
    for id in ["dass21", "wsas", "isi"] {
        let d = def(id);
        assert!(
            d.items.iter().all(|i| i.text.is_none()),
            "{id} must not ship wording"
        );
        match d.availability() {
            Availability::Unavailable { reason } => {
                assert!(reason.contains("text pack"), "{reason}")
            }
            Availability::Available => panic!("{id} should be unavailable without a pack"),
        }
    }
    for id in [
        "phq9", "phq2", "phq8", "gad7", "gad2", "phq15", "k10", "audit_c", "core10",
    ] {
        assert_eq!(def(id).availability(), Availability::Available, "{id}");
    }
    // CORE-10 wording comes from its separately licensed data file.
    let core = def("core10");
    assert_eq!(
        core.text_pack.as_ref().map(|p| p.file.as_str()),
        Some("instruments/core10.text.toml")
    );
    assert_eq!(
        core.text_pack.as_ref().and_then(|p| p.licence.as_deref()),
        Some("CC-BY-ND-4.0")
    );
    assert!(embedded_under("instruments/LICENSE-CORE.md").len() == 1);
    // PCL-5 item 16's wording is withheld until verified: listed unavailable with the reason.
    match def("pcl5").availability() {
        Availability::Unavailable { reason } => assert!(reason.contains("item(s) 16"), "{reason}"),
        Availability::Available => panic!("pcl5 item 16 text should be missing"),
    }
    // Notices are kept.
    assert!(def("phq9").copyright.contains("Pfizer"));
    assert!(def("k10")
        .copyright
        .contains("World Health Organization 2003"));
    assert!(def("pcl5").copyright.contains("US Government"));
    let listing = r.listing();
    assert_eq!(listing.len(), 17);
}

fn phq9_text() -> String {
    embedded_under("instruments/phq9.toml")
        .pop()
        .expect("phq9.toml")
        .text
}

fn load_one(path: &str, text: String) -> Result<InstrumentRegistry, InstrumentError> {
    InstrumentRegistry::from_files(&[ContentFile {
        path: path.into(),
        text,
    }])
}

#[test]
fn broken_definitions_name_file_and_field() {
    // Range that the weights cannot produce.
    let err = load_one(
        "site/phq9.toml",
        phq9_text().replace("max = 27\nmissing", "max = 28\nmissing"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("site/phq9.toml") && err.contains("scoring.min/max"),
        "{err}"
    );
    // A gap between bands.
    let err = load_one(
        "x.toml",
        phq9_text().replace("min = 5\nmax = 9\n", "min = 6\nmax = 9\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("x.toml") && err.contains("`bands`") && err.contains("gap"),
        "{err}"
    );
    // An unknown answer set.
    let err = load_one(
        "x.toml",
        phq9_text().replacen("answers = \"phq_frequency\"", "answers = \"nope\"", 1),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("items[0].answers") && err.contains("nope"),
        "{err}"
    );
    // A critical trigger outside the item's answers.
    let err = load_one(
        "x.toml",
        phq9_text().replacen("item = 9\nat_least = 1", "item = 9\nat_least = 7", 1),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("critical[0]"), "{err}");
    // A misspelt field is rejected, not ignored.
    let err = load_one(
        "x.toml",
        phq9_text().replace("higher_is_better", "higher_is_beter"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("x.toml") && err.contains("higher_is_beter"),
        "{err}"
    );
    // Duplicate ids across files.
    let err = InstrumentRegistry::from_files(&[
        ContentFile {
            path: "a.toml".into(),
            text: phq9_text(),
        },
        ContentFile {
            path: "b.toml".into(),
            text: phq9_text(),
        },
    ])
    .unwrap_err()
    .to_string();
    assert!(err.contains("b.toml") && err.contains("a.toml"), "{err}");
    // Wording in a text-pack-only instrument is refused.
    let dass = embedded_under("instruments/dass21.toml")
        .pop()
        .expect("dass")
        .text;
    let err = load_one(
        "d.toml",
        dass.replacen(
            "id = \"dass21_q1\"\n",
            "id = \"dass21_q1\"\ntext = \"x\"\n",
            1,
        ),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("items[0].text") && err.contains("text_pack_required"),
        "{err}"
    );
    // Empty and malformed files.
    assert!(matches!(
        load_one("e.toml", String::new()),
        Err(InstrumentError::Parse { .. })
    ));
    assert!(load_one("m.toml", "id = [".into())
        .unwrap_err()
        .to_string()
        .contains("m.toml"));
}

fn dass_pack(n: usize) -> ContentFile {
    let mut text = String::from("instrument = \"dass21\"\nlicence = \"site licence\"\n");
    for i in 1..=n {
        text.push_str(&format!(
            "[[items]]\nnumber = {i}\ntext = \"Site wording {i}\"\n"
        ));
    }
    text.push_str(
        "[[answer_sets]]\nid = \"dass_applied\"\noptions = [{ value = 0, text = \"a\" }, { value = 1, text = \"b\" }, { value = 2, text = \"c\" }, { value = 3, text = \"d\" }]\n",
    );
    ContentFile {
        path: "packs/dass21.text.toml".into(),
        text,
    }
}

#[test]
fn text_packs_are_validated_and_make_instruments_available() {
    let mut r = reg().clone();
    r.apply_text_pack(&[dass_pack(21)]).expect("valid pack");
    let d = r.get("dass21").expect("dass21");
    assert_eq!(d.availability(), Availability::Available);
    assert_eq!(d.items[20].text.as_deref(), Some("Site wording 21"));
    // Scoring is unchanged by the pack.
    let s = score(d, &Answers::from_values(&[1; 21])).expect("score");
    assert_eq!(total(&s), Some(42.0));

    let mut r = reg().clone();
    let err = r.apply_text_pack(&[dass_pack(20)]).unwrap_err().to_string();
    assert!(
        err.contains("packs/dass21.text.toml") && err.contains("21 items") && err.contains("20"),
        "{err}"
    );
    // Nothing applied after a failure.
    assert!(r.get("dass21").expect("dass").text_pack.is_none());
    let mut wrong = dass_pack(21);
    wrong.text = wrong.text.replace("number = 5\n", "number = 50\n");
    let err = reg()
        .clone()
        .apply_text_pack(&[wrong])
        .unwrap_err()
        .to_string();
    assert!(err.contains("items[4].number"), "{err}");
    let unknown = ContentFile {
        path: "p.text.toml".into(),
        text: "instrument = \"nope\"\n[[items]]\nnumber = 1\ntext = \"x\"\n".into(),
    };
    assert!(reg()
        .clone()
        .apply_text_pack(&[unknown])
        .unwrap_err()
        .to_string()
        .contains("nope"));
    let mut bad_values = dass_pack(21);
    bad_values.text = bad_values
        .text
        .replace("{ value = 3, text = \"d\" }", "{ value = 4, text = \"d\" }");
    assert!(reg()
        .clone()
        .apply_text_pack(&[bad_values])
        .unwrap_err()
        .to_string()
        .contains("answer_sets[0].options"));
}

// ---------------------------------------------------------------------------------------------
// Worked examples. Each comment gives the published rule and the hand computation.

#[test]
fn phq9_worked_examples() {
    // Kroenke 2001: sum of 9 items 0-3; bands 0-4/5-9/10-14/15-19/20-27; caseness >= 10.
    // 1+2+0+3+1+0+2+1+0 = 10 → moderate, case.
    let s = sc("phq9", &[1, 2, 0, 3, 1, 0, 2, 1, 0]);
    assert_eq!(total(&s), Some(10.0));
    assert_eq!(s.band.as_deref(), Some("moderate"));
    assert_eq!(s.caseness, Some(true));
    assert!(s.complete && s.critical.is_empty());
    // Band boundaries (each total built from items, item 9 = 0).
    for (t, band) in [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (14, "moderate"),
        (15, "moderately_severe"),
        (19, "moderately_severe"),
        (20, "severe"),
        (24, "severe"),
    ] {
        let mut v = [0; 9];
        let mut left = t;
        for x in v.iter_mut().take(8) {
            *x = left.min(3);
            left -= *x;
        }
        let s = sc("phq9", &v);
        assert_eq!(
            (total(&s), s.band.as_deref()),
            (Some(f64::from(t)), Some(band))
        );
        assert_eq!(s.caseness, Some(t >= 10));
    }
    assert_eq!(sc("phq9", &[3; 9]).band.as_deref(), Some("severe"));
    assert_eq!(total(&sc("phq9", &[3; 9])), Some(27.0));
    // The difficulty item (10th) may be given; it is not added.
    assert_eq!(
        total(&sc("phq9", &[1, 2, 0, 3, 1, 0, 2, 1, 0, 3])),
        Some(10.0)
    );
    // Missing item: no total, band or caseness; the item is named (no pro-rating rule for PHQ-9).
    let s = sc_list("phq9", "1,2,-,3,1,0,2,1,1").unwrap();
    assert_eq!(
        (s.total, s.band.clone(), s.caseness, s.complete),
        (None, None, None, false)
    );
    assert_eq!(s.missing, vec![3]);
    // ...but the critical item is still raised.
    assert_eq!(s.critical.len(), 1);
    assert_eq!((s.critical[0].item, s.critical[0].value), (9, 1));
}

#[test]
fn phq2_phq8_gad7_gad2_worked_examples() {
    // PHQ-2 (Kroenke 2003): items 1-2, positive >= 3.
    assert_eq!(sc("phq2", &[2, 1]).caseness, Some(true));
    assert_eq!(sc("phq2", &[1, 1]).caseness, Some(false));
    assert_eq!(total(&sc("phq2", &[3, 3])), Some(6.0));
    // PHQ-8: PHQ-9 without item 9, 0-24, same cut points; no critical item.
    let s = sc("phq8", &[3; 8]);
    assert_eq!((total(&s), s.band.as_deref()), (Some(24.0), Some("severe")));
    assert!(s.critical.is_empty());
    // GAD-7 (Spitzer 2006): 2+2+1+1+1+0+0 = 7 → mild; screening cut-off 10 not met.
    let s = sc("gad7", &[2, 2, 1, 1, 1, 0, 0]);
    assert_eq!(
        (total(&s), s.band.as_deref(), s.caseness),
        (Some(7.0), Some("mild"), Some(false))
    );
    assert_eq!(sc("gad7", &[3; 7]).band.as_deref(), Some("severe"));
    assert_eq!(
        sc("gad7", &[2, 2, 2, 2, 2, 0, 0]).band.as_deref(),
        Some("moderate")
    );
    // NHS Talking Therapies caseness for GAD-7 is >= 8 (separate cut-off).
    assert_eq!(
        def("gad7")
            .cutoff("talking_therapies_caseness")
            .map(|c| c.at_least),
        Some(8.0)
    );
    // GAD-2 (Kroenke 2007): positive >= 3.
    assert_eq!(sc("gad2", &[3, 0]).caseness, Some(true));
    assert_eq!(sc("gad2", &[1, 1]).caseness, Some(false));
}

#[test]
fn phq15_worked_example_with_not_applicable_menstrual_item() {
    // Kroenke 2002: 15 items 0-2, 0-30; men scored on 14 items. All 1 with item 4 n/a → 14 → medium.
    let s = sc_list("phq15", "1,1,1,na,1,1,1,1,1,1,1,1,1,1,1").unwrap();
    assert_eq!(
        (total(&s), s.band.as_deref(), s.complete),
        (Some(14.0), Some("medium"), true)
    );
    assert_eq!(s.not_applicable, vec![4]);
    assert_eq!(total(&sc("phq15", &[2; 15])), Some(30.0));
    assert_eq!(sc("phq15", &[0; 15]).band.as_deref(), Some("minimal"));
    // n/a is refused on other items, naming the item.
    let err = sc_list("phq15", "na,1,1,1,1,1,1,1,1,1,1,1,1,1,1").unwrap_err();
    assert!(
        err.to_string().contains("item 1") && err.to_string().contains("not applicable"),
        "{err}"
    );
}

#[test]
fn pcl5_clusters_and_provisional_diagnosis() {
    // NCPTSD: sum 0-80; clusters B 1-5, C 6-7, D 8-14, E 15-20; items >= 2 endorsed;
    // provisional diagnosis needs 1 B, 1 C, 2 D, 2 E.
    //          B          C     D                    E
    let a = [2, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0];
    let s = sc("pcl5", &a);
    assert_eq!(total(&s), Some(12.0));
    let sub = |s: &Score, k: &str| s.subscales.get(k).and_then(|v| v.value).map(|p| p.0);
    assert_eq!(
        (sub(&s, "B"), sub(&s, "C"), sub(&s, "D"), sub(&s, "E")),
        (Some(2.0), Some(2.0), Some(4.0), Some(4.0))
    );
    // Diagnosis follows the cluster rule, not the total (12 is far below the 33 cut-off).
    assert_eq!(
        s.derived.get("provisional_diagnosis"),
        Some(&DerivedValue::Flag(Some(true)))
    );
    assert_eq!(s.caseness, Some(false));
    // Only one D item endorsed (item 9 rated 1) → no diagnosis, even with a higher total.
    let mut b = a;
    b[8] = 1;
    b[1] = 4;
    b[2] = 4;
    assert_eq!(
        sc("pcl5", &b).derived.get("provisional_diagnosis"),
        Some(&DerivedValue::Flag(Some(false)))
    );
    // Undecided when the missing item could complete the rule.
    let s = sc_list("pcl5", "2,0,0,0,0,0,2,2,-,0,0,0,0,0,2,2,0,0,0,0").unwrap();
    assert_eq!(
        s.derived.get("provisional_diagnosis"),
        Some(&DerivedValue::Flag(None))
    );
    assert_eq!(s.total, None);
    // Cut-off 33 and range 0-80.
    assert_eq!(sc("pcl5", &[4; 20]).caseness, Some(true));
    assert_eq!(total(&sc("pcl5", &[4; 20])), Some(80.0));
    // Item 16 rated 3 → critical (design choice, marked not published).
    let mut c = [0; 20];
    c[15] = 3;
    let s = sc("pcl5", &c);
    assert_eq!(s.critical.len(), 1);
    let sig = risk_signals(def("pcl5"), &Answers::from_values(&c), &s);
    assert_eq!(sig.len(), 1);
    assert!(!sig[0].published_rule);
}

#[test]
fn k10_uses_the_10_to_50_convention() {
    // ABS 4817.0.55.001: items 1-5, total 10-50; bands 10-15 low, 16-21 moderate, 22-29 high, 30-50 very high.
    assert_eq!(total(&sc("k10", &[1; 10])), Some(10.0));
    assert_eq!(sc("k10", &[1; 10]).band.as_deref(), Some("low"));
    assert_eq!(sc("k10", &[5; 10]).band.as_deref(), Some("very_high"));
    // 2,2,2,2,2,2,1,1,1,1 = 16 → moderate; 3×7+1 = 22 → high.
    assert_eq!(
        sc("k10", &[2, 2, 2, 2, 2, 2, 1, 1, 1, 1]).band.as_deref(),
        Some("moderate")
    );
    assert_eq!(
        sc("k10", &[3, 3, 3, 3, 3, 3, 3, 1, 1, 1]).band.as_deref(),
        Some("high")
    );
    // An answer scored 0 (the US 0-4 convention) is refused, naming the item.
    let err = sc_list("k10", "0,1,1,1,1,1,1,1,1,1").unwrap_err();
    assert_eq!(
        err,
        ScoringError::OutOfRange {
            instrument: "k10".into(),
            item: 1,
            value: 0,
            allowed: "1 to 5".into()
        }
    );
    assert!(def("k10").scoring.convention.contains("10-50"));
}

#[test]
fn audit_c_sex_specific_cutoffs() {
    // Bradley 2003: positive >= 4 men, >= 3 women. 1+1+1 = 3.
    let d = def("audit_c");
    let a = Answers::from_values(&[1, 1, 1]);
    assert_eq!(
        score(d, &a.clone().with_sex(Sex::Female)).unwrap().caseness,
        Some(true)
    );
    assert_eq!(
        score(d, &a.clone().with_sex(Sex::Male)).unwrap().caseness,
        Some(false)
    );
    assert_eq!(
        score(d, &a).unwrap().caseness,
        None,
        "sex unknown → no caseness"
    );
    assert_eq!(
        score(d, &Answers::from_values(&[2, 1, 1]).with_sex(Sex::Male))
            .unwrap()
            .caseness,
        Some(true)
    );
    assert_eq!(total(&sc("audit_c", &[4, 4, 4])), Some(12.0));
    let r = score_command(reg(), "audit_c", "1,1,1", Some("female")).unwrap();
    assert_eq!(r.caseness, Some(true));
    assert!(score_command(reg(), "audit_c", "1,1,1", Some("x"))
        .unwrap_err()
        .to_string()
        .contains("--sex"));
}

#[test]
fn core10_reversal_prorating_and_critical_item() {
    // CamCOPS core10.py: items 2 and 3 reversed (4 - answer); clinical score = sum 0-40.
    // 1,(4-3),(4-3),1,1,0,1,1,1,1 = 9 → healthy_low.
    let s = sc("core10", &[1, 3, 3, 1, 1, 0, 1, 1, 1, 1]);
    assert_eq!(
        (total(&s), s.band.as_deref(), s.caseness),
        (Some(9.0), Some("healthy_low"), Some(false))
    );
    // All zeros: items 2 and 3 reversed give 4 + 4 = 8.
    assert_eq!(total(&sc("core10", &[0; 10])), Some(8.0));
    // Best possible: 0 on negative items, 4 on items 2 and 3 → 0.
    assert_eq!(
        total(&sc("core10", &[0, 4, 4, 0, 0, 0, 0, 0, 0, 0])),
        Some(0.0)
    );
    // One missing item: pro-rated 10 × sum / 9 answered. 2,(2),(2),2,2,0,2,2,2,- → 16 × 10/9 = 17.78.
    let s = sc_list("core10", "2,2,2,2,2,0,2,2,2,-").unwrap();
    assert!((total(&s).unwrap() - 160.0 / 9.0).abs() < 1e-9);
    assert!(s.prorated && !s.complete);
    assert_eq!(s.missing, vec![10]);
    assert_eq!(s.band.as_deref(), Some("moderate"));
    // Two missing: no total.
    assert_eq!(
        sc_list("core10", "2,2,2,2,2,0,2,2,-,-").unwrap().total,
        None
    );
    // Item 6 > 0 → critical.
    let s = sc("core10", &[0, 4, 4, 0, 0, 1, 0, 0, 0, 0]);
    assert_eq!(s.critical.len(), 1);
    assert_eq!(s.critical[0].item, 6);
}

#[test]
fn dass21_doubled_subscales() {
    // Lovibond 1995: each subscale = 7 items × 2 (0-42); bands on doubled scores.
    // All items 1: each subscale 7 × 2 = 14 → depression moderate (14-20), anxiety moderate (10-14),
    // stress normal (0-14). Total 21 × 2 = 42.
    let s = sc("dass21", &[1; 21]);
    assert_eq!(total(&s), Some(42.0));
    let band = |s: &Score, k: &str| s.subscales.get(k).and_then(|v| v.band.clone());
    let val = |s: &Score, k: &str| s.subscales.get(k).and_then(|v| v.value).map(|p| p.0);
    assert_eq!(val(&s, "depression"), Some(14.0));
    assert_eq!(band(&s, "depression").as_deref(), Some("moderate"));
    assert_eq!(band(&s, "anxiety").as_deref(), Some("moderate"));
    assert_eq!(band(&s, "stress").as_deref(), Some("normal"));
    // Anxiety raw 5 (items 2,4,7,9,15 = 1 each) → ×2 = 10 → moderate (the un-doubled table would
    // say mild: the caution of instruments.md §1.6).
    let mut a = [0; 21];
    for i in [2, 4, 7, 9, 15] {
        a[i - 1] = 1;
    }
    let s = sc("dass21", &a);
    assert_eq!(val(&s, "anxiety"), Some(10.0));
    assert_eq!(band(&s, "anxiety").as_deref(), Some("moderate"));
    // Depression items all 2 → 28 → extremely severe.
    let mut d = [0; 21];
    for i in [3, 5, 10, 13, 16, 17, 21] {
        d[i - 1] = 2;
    }
    assert_eq!(
        band(&sc("dass21", &d), "depression").as_deref(),
        Some("extremely_severe")
    );
}

#[test]
fn wsas_work_item_not_applicable() {
    // Mundt 2002: 5 items 0-8. Work item "not applicable" → sum of the other four, complete,
    // listed; 4+4+4+4 = 16 → significant (10-20).
    let s = sc_list("wsas", "na,4,4,4,4").unwrap();
    assert_eq!(
        (total(&s), s.band.as_deref(), s.complete),
        (Some(16.0), Some("significant"), true)
    );
    assert_eq!(s.not_applicable, vec![1]);
    assert_eq!(
        sc("wsas", &[8; 5]).band.as_deref(),
        Some("moderately_severe_or_worse")
    );
    assert_eq!(sc("wsas", &[1; 5]).band.as_deref(), Some("subclinical"));
    // n/a on another item is an error naming it; missing work item is missing, not n/a.
    let err = sc_list("wsas", "4,na,4,4,4").unwrap_err();
    assert_eq!(
        err,
        ScoringError::NotApplicableNotAllowed {
            instrument: "wsas".into(),
            item: 2
        }
    );
    let s = sc_list("wsas", "-,4,4,4,4").unwrap();
    assert_eq!((s.total, s.missing.clone()), (None, vec![1]));
}

#[test]
fn isi_worked_example() {
    // Bastien 2001 (bands unverified): 0-7 none, 8-14 subthreshold, 15-21 moderate, 22-28 severe.
    assert_eq!(sc("isi", &[2; 7]).band.as_deref(), Some("subthreshold"));
    let s = sc("isi", &[3, 2, 2, 2, 2, 2, 2]);
    assert_eq!(
        (total(&s), s.band.as_deref(), s.caseness),
        (Some(15.0), Some("moderate"), Some(true))
    );
    assert_eq!(sc("isi", &[4; 7]).band.as_deref(), Some("severe"));
}

fn risk_level_of(values: &[i32]) -> (Score, Vec<tapestry_domain::risk::RiskSignal>) {
    let d = def("risk_assessment");
    let a = Answers::from_values(values);
    let s = score(d, &a).unwrap();
    let sig = risk_signals(d, &a, &s);
    (s, sig)
}

#[test]
fn structured_risk_assessment_rule() {
    // Items: ideation, method, intent, plan, recent behaviour, protective (risk_assessment.toml).
    let (s, sig) = risk_level_of(&[0, 0, 0, 0, 0, 0]);
    assert_eq!(s.band.as_deref(), Some("low"), "never `none`");
    assert!(
        sig.is_empty(),
        "nothing disclosed, strong protective factors: no signal"
    );
    // Passive ideation only → low, amber (R3).
    let (s, sig) = risk_level_of(&[1, 0, 0, 0, 0, 0]);
    assert_eq!(s.band.as_deref(), Some("low"));
    assert_eq!(
        (sig.len(), sig[0].colour, sig[0].rule.as_str()),
        (1, RiskColour::Amber, "R3")
    );
    // Active ideation with a method considered → moderate, amber, same day.
    let (s, sig) = risk_level_of(&[2, 1, 0, 0, 0, 1]);
    assert_eq!(s.band.as_deref(), Some("moderate"));
    assert_eq!(
        (sig[0].colour, sig[0].due),
        (RiskColour::Amber, TaskDue::SameDay)
    );
    // Ambivalent intent and a method → high, red, immediately.
    let (s, sig) = risk_level_of(&[2, 1, 1, 0, 0, 0]);
    assert_eq!(s.band.as_deref(), Some("high"));
    assert_eq!(
        (sig[0].colour, sig[0].due),
        (RiskColour::Red, TaskDue::Immediately)
    );
    // Intent with a detailed plan → imminent.
    let (s, _) = risk_level_of(&[2, 1, 2, 2, 0, 0]);
    assert_eq!(
        s.derived.get("risk_level"),
        Some(&DerivedValue::Level(RiskLevel::Imminent))
    );
    // Behaviour in the last 7 days with any ideation → imminent.
    assert_eq!(
        risk_level_of(&[1, 0, 0, 0, 3, 0]).0.band.as_deref(),
        Some("imminent")
    );
    // Few protective factors raise one step (moderate → high) but never to imminent.
    assert_eq!(
        risk_level_of(&[2, 1, 0, 0, 0, 2]).0.band.as_deref(),
        Some("high")
    );
    assert_eq!(
        risk_level_of(&[2, 0, 2, 0, 0, 2]).0.band.as_deref(),
        Some("high")
    );
    // Few protective factors alone (nothing disclosed) do not create a risk level or a task.
    let (s, sig) = risk_level_of(&[0, 0, 0, 0, 0, 2]);
    assert_eq!(s.band.as_deref(), Some("low"));
    assert!(sig.is_empty());
    // With passive ideation they raise low → moderate.
    assert_eq!(
        risk_level_of(&[1, 0, 0, 0, 0, 2]).0.band.as_deref(),
        Some("moderate")
    );
    // Strong protective factors never lower a level.
    assert_eq!(
        risk_level_of(&[2, 0, 2, 2, 0, 0]).0.band.as_deref(),
        Some("imminent")
    );
    // Incomplete: no level, no guess.
    let s = sc_list("risk_assessment", "2,1,-,0,0,0").unwrap();
    assert_eq!((s.band, s.complete), (None, false));
    assert_eq!(
        def("risk_assessment").scoring.method,
        ScoringMethod::RiskRules
    );
}

#[test]
fn own_feedback_and_goal_forms() {
    let s = sc("session_feedback", &[4, 4, 4, 4]);
    assert_eq!(
        (total(&s), s.band.as_deref()),
        (Some(16.0), Some("no_concern_raised"))
    );
    assert_eq!(
        sc("session_feedback", &[2, 2, 2, 2]).band.as_deref(),
        Some("talk_it_through")
    );
    // Goals: mean of the goals rated; unrated goals are not "missing".
    let s = sc_list("personal_goals", "4,6,-").unwrap();
    assert_eq!((total(&s), s.complete), (Some(5.0), true));
    assert_eq!(
        s.subscales.get("goal_1").and_then(|g| g.value),
        Some(Points(4.0))
    );
    assert_eq!(s.subscales.get("goal_3").and_then(|g| g.value), None);
    assert_eq!(total(&sc_list("personal_goals", "7").unwrap()), Some(7.0));
    assert_eq!(sc_list("personal_goals", "-,-,-").unwrap().total, None);
    let err = sc_list("personal_goals", "11").unwrap_err();
    assert!(
        err.to_string().contains("item 1") && err.to_string().contains("0 to 10"),
        "{err}"
    );
    assert_eq!(
        sc_list("personal_goals", "1,2,3,4").unwrap_err(),
        ScoringError::TooManyAnswers {
            expected: 3,
            got: "4".into()
        }
    );
}

#[test]
fn sleep_diary_across_midnight() {
    // Bed 23:30, lights out 23:45, 25 min to sleep, WASO 35, final wake 06:30, up 07:00.
    // TIB 23:30→07:00 = 450; window 23:45→06:30 = 405; TST = 405 − 25 − 35 = 345;
    // SE = 345 / 450 = 76.7 %.
    let t = |s| parse_time("time", s).unwrap();
    let m = compute(&SleepDiaryEntry {
        bedtime: t("23:30"),
        lights_out: t("23:45"),
        sleep_onset_latency_min: 25,
        awakenings: 3,
        waso_min: 35,
        final_wake: t("06:30"),
        out_of_bed: t("07:00"),
    })
    .unwrap();
    assert_eq!((m.time_in_bed_min, m.total_sleep_time_min), (450, 345));
    assert_eq!(m.sleep_efficiency_pct, Some(76.7));
    assert_eq!(
        (m.sleep_onset_latency_min, m.wake_after_sleep_onset_min),
        (25, 35)
    );
}

// ---------------------------------------------------------------------------------------------
// CLI forms (exact JSON)

#[test]
fn cli_score_exact_json() {
    let r = score_command(reg(), "phq9", "1,2,0,3,1,0,2,1,0", None).unwrap();
    assert_eq!(
        to_json(&r),
        r#"{"instrument":"phq9","total":10,"band":"moderate","caseness":true,"complete":true,"critical":[],"subscales":{}}"#
    );
    let r = score_command(reg(), "phq9", "1,2,0,3,1,0,2,1,2", None).unwrap();
    assert_eq!(
        to_json(&r),
        r#"{"instrument":"phq9","total":12,"band":"moderate","caseness":true,"complete":true,"critical":[{"item":9,"value":2}],"subscales":{}}"#
    );
    let r = score_command(reg(), "phq9", "1,2,-,3,1,0,2,1,0", None).unwrap();
    assert_eq!(
        to_json(&r),
        r#"{"instrument":"phq9","total":null,"band":null,"caseness":null,"complete":false,"critical":[],"subscales":{},"missing":[3]}"#
    );
    let r = score_command(reg(), "pcl5", &["1"; 20].join(","), None).unwrap();
    let v: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
    assert_eq!(v["subscales"]["D"], 7);
    assert_eq!(v["derived"]["provisional_diagnosis"], false);
}

#[test]
fn cli_outcome_exact_json() {
    let r = outcome_command(reg(), "18,7", "15,6").unwrap();
    assert_eq!(
        to_json(&r),
        r#"{"caseness_at_start":true,"recovery":true,"reliable_improvement":true,"reliable_deterioration":false,"reliable_recovery":true}"#
    );
    // Not a case at the start (PHQ-9 8 < 10, GAD-7 5 < 8): recovery is null.
    let r = outcome_command(reg(), "8,3", "5,2").unwrap();
    assert_eq!(
        to_json(&r),
        r#"{"caseness_at_start":false,"recovery":null,"reliable_improvement":false,"reliable_deterioration":false,"reliable_recovery":null}"#
    );
    // 18 → 12 (↓6, reliable) but GAD-7 9 → 13 (↑4, reliable): deterioration, no improvement.
    let r = outcome_command(reg(), "18,12", "9,13").unwrap();
    assert!(r.reliable_deterioration && !r.reliable_improvement);
    assert_eq!(r.recovery, Some(false));
    for (p, g) in [
        ("18", "15,6"),
        ("18,7,3", "15,6"),
        ("x,7", "15,6"),
        ("18,28", "15,6"),
        ("", "1,1"),
    ] {
        let err = outcome_command(reg(), p, g).unwrap_err().to_string();
        assert!(err.contains("--phq9"), "{p}: {err}");
    }
}

#[test]
fn cli_change_report() {
    let r = change_command(reg(), "phq9", "20,19,19,18,18,17").unwrap();
    assert_eq!(r.sessions.len(), 6);
    assert!(r
        .sessions
        .iter()
        .all(|s| s.reliable_change == ReliableChange::NoReliableChange));
    assert_eq!(r.sessions[5].change, Points(-3.0));
    assert!(r.sudden_gains.is_empty());
    assert_eq!(r.not_on_track.status, TrackStatus::NotOnTrack);
    assert!(r.not_on_track.not_on_track);
    let csc = r.clinically_significant_change.as_ref().unwrap();
    assert_eq!(
        csc.category,
        tapestry_domain::change::JacobsonTruax::Unchanged
    );
    assert!(
        !csc.cutoff.verified,
        "illustrative norms are flagged unverified"
    );
    let v: serde_json::Value = serde_json::from_str(&to_json(&r)).unwrap();
    assert_eq!(v["reliable_change_threshold"], 6);
    assert_eq!(v["sessions"][1]["reliable_change"], "no_reliable_change");
    assert_eq!(v["not_on_track"]["status"], "not_on_track");
    // A recovering course with a sudden gain: 20,20,19,10,9,5 → gain at 3→4, recovered (5 < c ≈ 8),
    // response (≥ 50 %), remission (< 5 fails at 5).
    let r = change_command(reg(), "phq9", "20,20,19,10,9,5").unwrap();
    assert_eq!(r.sudden_gains.len(), 1);
    assert_eq!(r.sessions[3].reliable_change, ReliableChange::Improved);
    assert_eq!(
        r.clinically_significant_change.unwrap().category,
        tapestry_domain::change::JacobsonTruax::Recovered
    );
    let rr = r.response_remission.unwrap();
    assert_eq!((rr.response, rr.remission), (Some(true), Some(false)));
    assert_eq!(r.not_on_track.status, TrackStatus::FunctionalRange);
    // Deterioration.
    let r = change_command(reg(), "phq9", "10,12,16").unwrap();
    assert_eq!(r.not_on_track.status, TrackStatus::Deteriorated);
    // Bad input names the argument.
    for bad in ["", "20,x", "20,28", "20,,19"] {
        let e = change_command(reg(), "phq9", bad).unwrap_err().to_string();
        assert!(e.contains("--scores"), "{bad}: {e}");
    }
    let huge = vec!["5"; 600].join(",");
    assert!(change_command(reg(), "phq9", &huge)
        .unwrap_err()
        .to_string()
        .contains("too many"));
    assert_eq!(
        change_command(reg(), "nope", "1").unwrap_err(),
        CliError::UnknownInstrument("nope".into())
    );
    // No reliable-change threshold recorded → a clear error, not a guess.
    assert!(change_command(reg(), "k10", "20,10")
        .unwrap_err()
        .to_string()
        .contains("reliable_change"));
}

// ---------------------------------------------------------------------------------------------
// Bad input

#[test]
fn bad_answers_are_named() {
    let e = |id: &str, list: &str| score_command(reg(), id, list, None).unwrap_err();
    assert_eq!(
        e("phq9", "1,2,0,4,1,0,2,1,0"),
        CliError::Scoring(ScoringError::OutOfRange {
            instrument: "phq9".into(),
            item: 4,
            value: 4,
            allowed: "0 to 3".into()
        })
    );
    assert_eq!(
        e("phq9", "1,2,0"),
        CliError::Scoring(ScoringError::WrongCount {
            instrument: "phq9".into(),
            expected: "9 to 10".into(),
            got: 3
        })
    );
    assert_eq!(
        e("phq9", "1,two,0,1,1,1,1,1,1"),
        CliError::Scoring(ScoringError::NotANumber {
            item: 2,
            text: "two".into()
        })
    );
    assert_eq!(e("phq9", ""), CliError::Scoring(ScoringError::Empty));
    assert_eq!(e("phq9", " "), CliError::Scoring(ScoringError::Empty));
    assert_eq!(
        e("phq9", "-1,0,0,0,0,0,0,0,0").to_string(),
        "phq9 item 1: -1 is not an allowed answer (0 to 3)"
    );
    assert_eq!(
        e("phq9", "1.5,0,0,0,0,0,0,0,0"),
        CliError::Scoring(ScoringError::NotANumber {
            item: 1,
            text: "1.5".into()
        })
    );
    assert!(e("phq9", &vec!["1"; 1_000_000].join(","))
        .to_string()
        .contains("too many answers"));
    assert!(e("phq9", "1,1,1,1,1,1,1,1,1,1,1")
        .to_string()
        .contains("too many answers"));
    assert_eq!(e("bdi", "1"), CliError::UnknownInstrument("bdi".into()));
    assert!(e("phq9", "99999999999,0,0,0,0,0,0,0,0")
        .to_string()
        .contains("item 1"));
    assert_eq!(
        e("phq9", "na,0,0,0,0,0,0,0,0"),
        CliError::Scoring(ScoringError::NotApplicableNotAllowed {
            instrument: "phq9".into(),
            item: 1
        })
    );
    // Direct API: wrong count and empty.
    assert_eq!(
        score(def("gad7"), &Answers::default()),
        Err(ScoringError::Empty)
    );
    assert!(matches!(
        score(def("gad7"), &Answers::from_values(&[0; 8])),
        Err(ScoringError::WrongCount { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Risk

#[test]
fn risk_signal_is_raised_even_when_totals_improve() {
    let d = def("phq9");
    // Totals improve 22 → 15 → 6 (reliable improvement, below caseness) but item 9 stays 1.
    let series = [
        [3, 3, 3, 3, 3, 3, 2, 1, 1],
        [2, 2, 2, 2, 2, 2, 1, 1, 1],
        [1, 1, 1, 1, 0, 0, 1, 0, 1],
    ];
    let totals: Vec<f64> = series
        .iter()
        .map(|v| total(&sc("phq9", v)).unwrap())
        .collect();
    assert_eq!(totals, vec![22.0, 15.0, 6.0]);
    let last = Answers::from_values(&series[2]);
    let s = score(d, &last).unwrap();
    assert_eq!(s.band.as_deref(), Some("mild"));
    let signals = risk_signals(d, &last, &s);
    assert_eq!(signals.len(), 1);
    assert_eq!(signals[0].rule, "R1");
    assert_eq!(signals[0].colour, RiskColour::Amber);
    assert_eq!(signals[0].due, TaskDue::BeforeSessionEnds);
    assert_eq!(
        signals[0].source,
        RiskSource::CriticalItem {
            instrument: "phq9".into(),
            item: 9,
            value: 1
        }
    );
    let task = task_for(d, &signals[0]);
    assert_eq!(task.title, "Risk review: PHQ-9 item 9 answered 1");
    // Item 9 = 2 → R2, same-day assessment.
    let a = Answers::from_values(&[0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let sig = risk_signals(d, &a, &score(d, &a).unwrap());
    assert_eq!(
        (sig.len(), sig[0].rule.as_str(), sig[0].due),
        (1, "R2", TaskDue::SameDay)
    );
    // Item 9 = 0: no signal.
    let a = Answers::from_values(&[3; 8].iter().copied().chain([0]).collect::<Vec<_>>());
    assert!(risk_signals(d, &a, &score(d, &a).unwrap()).is_empty());
}

#[test]
fn risk_flag_closes_only_with_a_note() {
    let d = def("core10");
    let a = Answers::from_values(&[0, 4, 4, 0, 0, 2, 0, 0, 0, 0]);
    let sig = risk_signals(d, &a, &score(d, &a).unwrap()).remove(0);
    let at = chrono::DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z")
        .unwrap()
        .to_utc();
    let mut flag = RiskFlag::raise(sig, at);
    let clinician = tapestry_domain::ids::UserId::random();
    assert!(flag.close(clinician, "   ", at).is_err());
    assert!(flag.is_open());
    flag.close(clinician, "Reviewed; safety plan updated.", at)
        .unwrap();
    assert!(!flag.is_open());
    assert!(flag.close(clinician, "again", at).is_err());
}

// ---------------------------------------------------------------------------------------------
// Trajectories

fn synthetic_reference(n: usize) -> Vec<ReferenceEpisode> {
    // y_t = y1 − (0.2·y1)·ln t, with a deterministic ±1 wobble; intakes 10..=24.
    (0..n)
        .map(|i| {
            let y1 = 10.0 + (i % 15) as f64;
            let scores = (1..=8)
                .map(|t| {
                    let wobble = if (i + t) % 2 == 0 { 1.0 } else { -1.0 };
                    if t == 1 {
                        y1
                    } else {
                        y1 - 0.2 * y1 * (t as f64).ln() + wobble
                    }
                })
                .collect();
            ReferenceEpisode { scores }
        })
        .collect()
}

#[test]
fn expected_recovery_curve_needs_enough_episodes_and_reports_n() {
    let d = def("phq9");
    let cfg = EmpiricalConfig {
        min_reference_episodes: 50,
        ..EmpiricalConfig::default()
    };
    let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 21).unwrap();
    let err = fit_expected_recovery(d, &synthetic_reference(49), &cfg, date, "v1").unwrap_err();
    assert_eq!(err, TrajectoryError::TooFewEpisodes { n: 49, min: 50 });
    let curve = fit_expected_recovery(d, &synthetic_reference(120), &cfg, date, "phq9-v1").unwrap();
    assert_eq!((curve.n_episodes, curve.n_observations), (120, 120 * 7));
    assert_eq!((curve.version.as_str(), curve.fitted_on), ("phq9-v1", date));
    // Expected for intake 20 at session 5 ≈ 20 − 4·ln 5 = 13.56.
    assert!(
        (curve.expected(20.0, 5) - (20.0 - 4.0 * 5f64.ln())).abs() < 0.3,
        "{}",
        curve.expected(20.0, 5)
    );
    let on = curve.check(20.0, 5, 13.0).unwrap();
    assert!(!on.not_on_track && on.n == 120);
    let off = curve.check(20.0, 5, 19.0).unwrap();
    assert!(off.not_on_track, "{off:?}");
    assert!(curve.check(20.0, 1, 19.0).is_err());
    // Combined assessment: rational says too early at session 2, the curve flags the score.
    let a = tapestry_domain::trajectory::assess(d, &[20.0, 21.0], Some(&curve)).unwrap();
    assert_eq!(a.rational.status, TrackStatus::TooEarly);
    assert!(a.empirical.as_ref().unwrap().not_on_track && a.not_on_track);
    assert_eq!(a.curve_version.as_deref(), Some("phq9-v1"));
    // A curve for another instrument is never applied.
    assert!(
        tapestry_domain::trajectory::assess(def("gad7"), &[15.0, 16.0], Some(&curve))
            .unwrap()
            .empirical
            .is_none()
    );
    // Identical intakes cannot be fitted.
    let flat: Vec<ReferenceEpisode> = (0..60)
        .map(|_| ReferenceEpisode {
            scores: vec![15.0, 14.0, 13.0],
        })
        .collect();
    assert_eq!(
        fit_expected_recovery(d, &flat, &cfg, date, "v").unwrap_err(),
        TrajectoryError::Degenerate
    );
    // Nearest neighbour: neighbours of intake 20 at session 5.
    let nn = nearest_neighbour_check(
        d,
        &synthetic_reference(120),
        &EmpiricalConfig {
            min_reference_episodes: 50,
            k_neighbours: 16,
            tolerance_quantile: 0.9,
        },
        20.0,
        5,
        19.0,
    )
    .unwrap();
    assert_eq!(nn.n, 16);
    assert!(nn.not_on_track);
    assert!(matches!(
        nearest_neighbour_check(d, &synthetic_reference(10), &cfg, 20.0, 5, 19.0),
        Err(TrajectoryError::TooFewEpisodes { n: 10, min: 50 })
    ));
}

#[test]
fn rational_rules_follow_reliable_change() {
    let d = def("phq9");
    assert_eq!(
        rational_status(d, &[18.0, 17.0]).unwrap().status,
        TrackStatus::TooEarly
    );
    assert_eq!(
        rational_status(d, &[18.0, 17.0, 17.0, 16.0])
            .unwrap()
            .status,
        TrackStatus::NotOnTrack
    );
    assert_eq!(
        rational_status(d, &[18.0, 12.0]).unwrap().status,
        TrackStatus::OnTrack
    );
    assert_eq!(
        rational_status(d, &[12.0, 9.0]).unwrap().status,
        TrackStatus::FunctionalRange
    );
    assert_eq!(
        rational_status(d, &[10.0, 16.0]).unwrap().status,
        TrackStatus::Deteriorated
    );
    assert!(rational_status(d, &[]).is_none());
}

// ---------------------------------------------------------------------------------------------
// FHIR

#[test]
fn fhir_shapes_use_only_verified_loinc() {
    let ctx = FhirContext {
        response_id: "r1",
        subject: "Patient/p1",
        authored: "2026-11-21T10:00:00Z",
    };
    let d = def("phq9");
    let a = Answers::from_values(&[1, 2, 0, 3, 1, 0, 2, 1, 0]);
    let s = score(d, &a).unwrap();
    let qr = questionnaire_response(d, &a, &s, &ctx);
    assert_eq!(qr["questionnaire"], "http://loinc.org/q/44249-1");
    assert_eq!(qr["status"], "completed");
    assert_eq!(
        qr["item"][0]["answer"][0]["valueCoding"]["code"],
        "LA6569-3"
    );
    assert_eq!(qr["item"][8]["code"][0]["code"], "44260-8");
    let obs = observations(d, &s, &ctx);
    assert_eq!(obs.len(), 1);
    assert_eq!(obs[0]["code"]["coding"][0]["code"], "44261-6");
    assert_eq!(obs[0]["valueQuantity"]["code"], "{score}");
    assert_eq!(obs[0]["valueQuantity"]["value"], 10.0);
    assert_eq!(obs[0]["interpretation"][0]["text"], "moderate");
    assert_eq!(
        obs[0]["derivedFrom"][0]["reference"],
        "QuestionnaireResponse/r1"
    );
    // PCL-5: LOINC not verified → local codes, subscale observations.
    let d = def("pcl5");
    let a = Answers::from_values(&[1; 20]);
    let s = score(d, &a).unwrap();
    let qr = questionnaire_response(d, &a, &s, &ctx);
    assert!(qr["questionnaire"]
        .as_str()
        .unwrap()
        .starts_with("urn:tapestry:instrument:pcl5"));
    assert_eq!(qr["item"][0]["answer"][0]["valueInteger"], 1);
    let obs = observations(d, &s, &ctx);
    assert_eq!(obs.len(), 5);
    assert_eq!(
        obs[0]["code"]["coding"][0]["system"],
        "urn:tapestry:instrument"
    );
    assert!(!serde_json::to_string(&obs).unwrap().contains("loinc.org"));
    // Incomplete response: in-progress, missing answers omitted, no total observation.
    let d = def("phq9");
    let a = Answers::parse_list("1,-,0,0,0,0,0,0,0", 10).unwrap();
    let s = score(d, &a).unwrap();
    let qr = questionnaire_response(d, &a, &s, &ctx);
    assert_eq!(qr["status"], "in-progress");
    assert_eq!(qr["item"].as_array().unwrap().len(), 8);
    assert!(observations(d, &s, &ctx).is_empty());
}

// ---------------------------------------------------------------------------------------------
// Property tests

fn sum_instruments() -> Vec<&'static InstrumentDef> {
    reg()
        .iter()
        .filter(|d| d.scoring.method == ScoringMethod::Sum)
        .collect()
}

/// A random valid complete response for `def`, from a vector of random picks.
fn answers_from(def: &InstrumentDef, picks: &[usize]) -> Vec<i32> {
    def.items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let set = def.answer_set_of(item).unwrap();
            let pick = picks.get(i).copied().unwrap_or(0) % set.options.len();
            set.options[pick].value
        })
        .collect()
}

proptest! {
    #[test]
    fn total_within_range_and_band_is_a_function_of_total(
        which in 0usize..64,
        picks in prop::collection::vec(0usize..16, 25),
    ) {
        let defs = sum_instruments();
        let d = defs[which % defs.len()];
        let values = answers_from(d, &picks);
        let s = score(d, &Answers::from_values(&values)).unwrap();
        let t = s.total.unwrap().0;
        prop_assert!(t >= f64::from(d.scoring.min) && t <= f64::from(d.scoring.max), "{} {}", d.id, t);
        prop_assert_eq!(s.band.as_deref(), d.band_for(t));
        if !d.bands.is_empty() { prop_assert!(s.band.is_some()); }
        prop_assert!(s.complete);
    }

    #[test]
    fn raising_one_answer_never_lowers_a_non_reversed_total(
        which in 0usize..64,
        picks in prop::collection::vec(0usize..16, 25),
        item_pick in 0usize..25,
    ) {
        let defs = sum_instruments();
        let d = defs[which % defs.len()];
        let values = answers_from(d, &picks);
        let ix = item_pick % d.items.len();
        let item = &d.items[ix];
        let set = d.answer_set_of(item).unwrap();
        let max = set.options.iter().map(|o| o.value).max().unwrap();
        prop_assume!(values[ix] < max);
        let mut raised = values.clone();
        raised[ix] += 1;
        let before = score(d, &Answers::from_values(&values)).unwrap().total.unwrap().0;
        let after = score(d, &Answers::from_values(&raised)).unwrap().total.unwrap().0;
        if item.reversed {
            prop_assert!(after <= before);
        } else {
            prop_assert!(after >= before, "{} item {}", d.id, item.number);
        }
    }

    #[test]
    fn reliable_change_is_symmetric(pre in 0.0f64..80.0, post in 0.0f64..80.0, t in 1.0f64..20.0, hib: bool) {
        let forward = classify_reliable_change(pre, post, t, hib);
        let back = classify_reliable_change(post, pre, t, hib);
        let mirrored = match forward {
            ReliableChange::Improved => ReliableChange::Deteriorated,
            ReliableChange::Deteriorated => ReliableChange::Improved,
            ReliableChange::NoReliableChange => ReliableChange::NoReliableChange,
        };
        prop_assert_eq!(back, mirrored);
        prop_assert_eq!(classify_reliable_change(pre, post, t, !hib), back);
    }

    #[test]
    fn paired_outcomes_are_consistent(p0 in 0i32..=27, p1 in 0i32..=27, g0 in 0i32..=21, g1 in 0i32..=21, strict: bool) {
        let pr = PairedMeasureRule::from_def(def("phq9")).unwrap();
        let gr = PairedMeasureRule::from_def(def("gad7")).unwrap();
        let how = if strict { DeteriorationDefinition::IncreasedWithoutImprovementOnOther } else { DeteriorationDefinition::EitherIncreased };
        let o = talking_therapies_outcome(
            (pr, Pair { first: f64::from(p0), last: f64::from(p1) }),
            (gr, Pair { first: f64::from(g0), last: f64::from(g1) }),
            how,
        );
        if o.reliable_recovery == Some(true) {
            prop_assert!(o.recovery == Some(true) && o.reliable_improvement);
        }
        prop_assert!(!(o.reliable_improvement && o.reliable_deterioration));
        prop_assert_eq!(o.caseness_at_start, p0 >= 10 || g0 >= 8);
        prop_assert_eq!(o.recovery.is_none(), !o.caseness_at_start);
        prop_assert_eq!(o.reliable_recovery.is_none(), !o.caseness_at_start);
        // Agreement with the CLI form.
        if !strict {
            let cli = outcome_command(reg(), &format!("{p0},{p1}"), &format!("{g0},{g1}")).unwrap();
            prop_assert_eq!(cli, o);
        }
    }

    #[test]
    fn parsing_arbitrary_text_never_panics(text in ".{0,200}") {
        let _ = score_command(reg(), "phq9", &text, None);
        let _ = change_command(reg(), "phq9", &text);
        let _ = outcome_command(reg(), &text, "1,1");
    }

    #[test]
    fn critical_hit_iff_item9_positive(picks in prop::collection::vec(0usize..4, 9)) {
        let d = def("phq9");
        let values = answers_from(d, &picks);
        let a = Answers::from_values(&values);
        let s = score(d, &a).unwrap();
        prop_assert_eq!(!s.critical.is_empty(), values[8] > 0);
        prop_assert_eq!(risk_signals(d, &a, &s).len(), usize::from(values[8] > 0));
    }

    #[test]
    fn missing_answers_never_give_a_total_without_prorating(
        which in 0usize..64,
        picks in prop::collection::vec(0usize..16, 25),
        hole in 0usize..25,
    ) {
        let defs = sum_instruments();
        let d = defs[which % defs.len()];
        let mut answers: Vec<Answer> = answers_from(d, &picks).into_iter().map(Answer::Value).collect();
        let ix = hole % d.required_items();
        prop_assume!(!d.items[ix].optional);
        answers[ix] = Answer::Missing;
        let s = score(d, &Answers { values: answers, sex: None }).unwrap();
        prop_assert!(!s.complete);
        prop_assert_eq!(s.missing.clone(), vec![d.items[ix].number]);
        if d.scoring.missing == tapestry_domain::instrument::MissingRule::NoTotal {
            prop_assert!(s.total.is_none() && s.band.is_none() && s.caseness.is_none());
        }
    }
}

#[test]
fn human_readable_summaries() {
    let r = score_command(reg(), "phq9", "1,2,-,3,1,0,2,1,2", None).unwrap();
    assert_eq!(
        r.summary(),
        "phq9: no total, incomplete (missing item 3); RISK: item 9 answered 2"
    );
    let r = score_command(reg(), "phq9", "1,2,0,3,1,0,2,1,0", None).unwrap();
    assert_eq!(r.summary(), "phq9: 10 (moderate), above cut-off");
    let c = change_command(reg(), "phq9", "20,19,19,18,18,17").unwrap();
    assert!(c.summary().contains("NotOnTrack"), "{}", c.summary());
    assert_eq!(
        tapestry_domain::scoring::score_instrument(reg(), "nope", &Answers::from_values(&[1])),
        Err(ScoringError::UnknownInstrument("nope".into()))
    );
}
