//! Plan engine: vignettes, knowledge validation and properties.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use tapestry_domain::adapt::review;
use tapestry_domain::content::ContentFile;
use tapestry_domain::knowledge::{Knowledge, KnowledgeError, Phase, RuleType};
use tapestry_domain::plan::{
    apply_decision, diff, generate, pause_for_risk, plan_command, Decision, ItemStatus,
    MeasureScorer, MeasureSnapshot,
};
use tapestry_domain::plan_input::parse_case;

/// Test-only scorer: the sum of the items, with the conventional caseness
/// cut-offs. The real scoring engine replaces it at merge.
struct SumScorer;

impl MeasureScorer for SumScorer {
    fn score(&self, instrument: &str, items: &[Option<u8>]) -> Result<MeasureSnapshot, String> {
        let (count, max, cut) = match instrument {
            "phq9" => (9, 3, 10.0),
            "gad7" => (7, 3, 8.0),
            "pcl5" => (20, 4, 33.0),
            "isi" => (7, 4, 15.0),
            other => return Err(format!("no scorer for '{other}'")),
        };
        if items.len() != count {
            return Err(format!("expected {count} items, got {}", items.len()));
        }
        let mut total = 0.0;
        for (i, v) in items.iter().enumerate() {
            match v {
                None => return Err(format!("item {} is missing", i + 1)),
                Some(x) if *x > max => {
                    return Err(format!("item {} = {x} is above the maximum {max}", i + 1))
                }
                Some(x) => total += f64::from(*x),
            }
        }
        let critical = if instrument == "phq9" {
            vec![(9, items[8].unwrap_or(0))]
        } else {
            Vec::new()
        };
        Ok(MeasureSnapshot {
            instrument: instrument.into(),
            total,
            caseness: total >= cut,
            band: None,
            critical,
        })
    }
}

fn k() -> Knowledge {
    Knowledge::embedded().expect("embedded knowledge is valid")
}

fn run(case: &Value) -> Value {
    plan_command(&k(), &SumScorer, &case.to_string()).unwrap_or_else(|e| panic!("{e}"))
}

fn codes(plan: &Value) -> Vec<String> {
    plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn debug_print_panic_case() {
    let out = run(&json!({
        "age": 34, "presenting_problems": ["panic"],
        "measures": {"gad7": {"items": [2,2,2,2,1,1,2]}, "phq9": {"items": [1,1,1,1,1,0,1,0,0]}},
        "style": {"stage_of_change": "action", "reactance": "high", "coping": "externalizing"}
    }));
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
    assert!(!codes(&out).is_empty());
}

// ---------------------------------------------------------------------------
// Vignettes: each file holds a case and the clinical properties it must show.
// ---------------------------------------------------------------------------

fn vignettes() -> Vec<(String, Value)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vignettes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            (
                p.file_stem().unwrap().to_string_lossy().to_string(),
                serde_json::from_str(&text).unwrap(),
            )
        })
        .collect()
}

fn item<'a>(plan: &'a Value, code: &str) -> Option<&'a Value> {
    plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == code)
}

fn excluded<'a>(plan: &'a Value, code: &str) -> Option<&'a Value> {
    plan["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["code"] == code)
}

fn suggestion<'a>(plan: &'a Value, rule: &str) -> Option<&'a Value> {
    plan["suggestions"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["rule"] == rule))
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().map(|x| x.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Check one vignette's expectations; returns the failures.
fn check(plan: &Value, expect: &Value) -> Vec<String> {
    let mut fails = Vec::new();
    let mut fail = |s: String| fails.push(s);
    let obj = expect.as_object().unwrap();
    for (key, want) in obj {
        match key.as_str() {
            "phase" | "care_intensity" | "halted" | "risk_regression" => {
                if &plan[key] != want {
                    fail(format!("{key}: want {want}, got {}", plan[key]));
                }
            }
            "directiveness" | "focus" | "arousal_target" => {
                if &plan["style"][key] != want {
                    fail(format!("style.{key}: want {want}, got {}", plan["style"][key]));
                }
            }
            "integration_model" => {
                if &plan["integration"]["model"] != want {
                    fail(format!("integration.model: want {want}"));
                }
            }
            "first_item" => {
                if plan["items"][0]["code"] != *want {
                    fail(format!("first item: want {want}, got {}", plan["items"][0]["code"]));
                }
            }
            "includes" => {
                for c in str_list(want) {
                    if item(plan, &c).is_none() {
                        fail(format!("{c} should be in the plan"));
                    }
                }
            }
            "absent" => {
                for c in str_list(want) {
                    if item(plan, &c).is_some() {
                        fail(format!("{c} must not be in the plan"));
                    }
                }
            }
            "not_excluded" => {
                for c in str_list(want) {
                    if excluded(plan, &c).is_some() {
                        fail(format!("{c} must not be excluded"));
                    }
                }
            }
            "excluded" => {
                for (c, rule) in want.as_object().unwrap() {
                    match excluded(plan, c) {
                        None => fail(format!("{c} should be excluded by {rule}")),
                        Some(e) => {
                            if &e["rule"] != rule {
                                fail(format!("{c} excluded by {} not {rule}", e["rule"]));
                            }
                            if e["reason"].as_str().unwrap_or("").len() < 20 {
                                fail(format!("{c}: exclusion reason too thin"));
                            }
                        }
                    }
                }
            }
            "reason_contains" => {
                for (c, text) in want.as_object().unwrap() {
                    let reason = excluded(plan, c).map(|e| e["reason"].to_string()).unwrap_or_default();
                    if !reason.contains(text.as_str().unwrap()) {
                        fail(format!("{c}: reason '{reason}' lacks {text}"));
                    }
                }
            }
            "status" => {
                for (c, st) in want.as_object().unwrap() {
                    match item(plan, c) {
                        Some(i) if &i["status"] == st => {}
                        Some(i) => fail(format!("{c}: status {} not {st}", i["status"])),
                        None => fail(format!("{c}: missing (status {st} expected)")),
                    }
                }
            }
            "imported" => {
                for (c, b) in want.as_object().unwrap() {
                    if item(plan, c).map(|i| &i["imported"]) != Some(b) {
                        fail(format!("{c}: imported should be {b}"));
                    }
                }
            }
            "before" => {
                for pair in want.as_array().unwrap() {
                    let list = codes(plan);
                    let a = pair[0].as_str().unwrap();
                    let b = pair[1].as_str().unwrap();
                    let (pa, pb) = (
                        list.iter().position(|x| x == a),
                        list.iter().position(|x| x == b),
                    );
                    if !matches!((pa, pb), (Some(x), Some(y)) if x < y) {
                        fail(format!("{a} should come before {b}"));
                    }
                }
            }
            "alerts" => {
                for r in str_list(want) {
                    if !plan["alerts"].as_array().unwrap().iter().any(|a| a["rule"] == r.as_str()) {
                        fail(format!("alert from {r} missing"));
                    }
                }
            }
            "suggestions" => {
                for r in str_list(want) {
                    if suggestion(plan, &r).is_none() {
                        fail(format!("suggestion {r} missing"));
                    }
                }
            }
            "absent_suggestions" => {
                for r in str_list(want) {
                    if suggestion(plan, &r).is_some() {
                        fail(format!("suggestion {r} should not fire"));
                    }
                }
            }
            "suggestion_adds" => {
                for (r, adds) in want.as_object().unwrap() {
                    let got = suggestion(plan, r).map(|s| str_list(&s["adds"]));
                    if got.as_ref() != Some(&str_list(adds)) {
                        fail(format!("{r} adds {got:?}, want {adds}"));
                    }
                }
            }
            "withheld" => {
                for (r, codes_) in want.as_object().unwrap() {
                    let got: Vec<String> = suggestion(plan, r)
                        .and_then(|s| s["withheld"].as_array().cloned())
                        .unwrap_or_default()
                        .iter()
                        .map(|w| w["code"].as_str().unwrap().to_string())
                        .collect();
                    if got != str_list(codes_) {
                        fail(format!("{r} withheld {got:?}, want {codes_}"));
                    }
                }
            }
            "checklist" => {
                let has = plan["checklist"].is_array();
                if Some(has) != want.as_bool() {
                    fail(format!("checklist present = {has}, want {want}"));
                }
                if has {
                    let domains: Vec<String> = plan["checklist"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|c| c["domain"].as_str().unwrap().to_string())
                        .collect();
                    for d in ["alliance", "motivation", "social_support_life_events", "emotion_regulation", "risk"] {
                        if !domains.iter().any(|x| x == d) {
                            fail(format!("checklist lacks {d}"));
                        }
                    }
                }
            }
            "paused_beyond_p0" => {
                for i in plan["items"].as_array().unwrap() {
                    if i["phase"] != "P0" && i["status"] != "paused" {
                        fail(format!("{} in {} should be paused", i["code"], i["phase"]));
                    }
                }
            }
            other => fail(format!("unknown expectation '{other}'")),
        }
    }
    fails
}

fn compact(plan: &Value) -> String {
    let items: Vec<String> = plan["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{}:{}:{}", i["code"].as_str().unwrap(), i["phase"].as_str().unwrap(), i["status"].as_str().unwrap()))
        .collect();
    let excl: Vec<String> = plan["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}<-{}", e["code"].as_str().unwrap(), e["rule"].as_str().unwrap()))
        .collect();
    let sugg: Vec<String> = plan["suggestions"]
        .as_array()
        .map(|s| s.iter().map(|x| format!("{}{:?}", x["rule"].as_str().unwrap(), str_list(&x["adds"]))).collect())
        .unwrap_or_default();
    format!(
        "phase {} intensity {} style {} items [{}] excluded [{}] suggestions [{}] fired {:?}",
        plan["phase"], plan["care_intensity"], plan["style"]["directiveness"],
        items.join(" "), excl.join(" "), sugg.join(" "), str_list(&plan["fired_rules"])
    )
}

#[test]
fn vignettes_show_their_clinical_properties() {
    let all = vignettes();
    assert!(all.len() >= 20, "at least 20 vignettes, found {}", all.len());
    let mut report = Vec::new();
    for (name, v) in &all {
        assert!(v["clinical_point"].as_str().is_some_and(|s| s.len() > 20), "{name}: state the clinical point");
        let plan = run(&v["case"]);
        let fails = check(&plan, &v["expect"]);
        // Universal properties of every plan.
        let mut fails = fails;
        for i in plan["items"].as_array().unwrap() {
            if excluded(&plan, i["code"].as_str().unwrap()).is_some() {
                fails.push(format!("{} both planned and excluded", i["code"]));
            }
            let why = &i["why"];
            if why["chain"].as_array().unwrap().is_empty() || why["mechanism"].as_str().unwrap().is_empty() {
                fails.push(format!("{} has no why chain", i["code"]));
            }
        }
        if !fails.is_empty() {
            report.push(format!("{name}:\n  - {}\n  {}", fails.join("\n  - "), compact(&plan)));
        }
    }
    assert!(report.is_empty(), "\n{}", report.join("\n"));
}

#[test]
#[ignore = "prints every vignette plan for review"]
fn print_vignettes() {
    for (name, v) in vignettes() {
        println!("{name}: {}\n", compact(&run(&v["case"])));
    }
}
