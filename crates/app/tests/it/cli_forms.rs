//! The command-line forms promised in the issues, exactly.

use crate::harness::tapestry;
use serde_json::{json, Value};

fn run_json(args: &[&str]) -> (Option<i32>, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tapestry(tmp.path()).args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn score_phq9_exact_output() {
    let (code, out, _) = run_json(&["score", "phq9", "1,2,0,3,1,0,2,1,0", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        r#"{"instrument":"phq9","total":10,"band":"moderate","caseness":true,"complete":true,"critical":[],"subscales":{}}"#
    );
    let (_, out, _) = run_json(&["score", "phq9", "0,0,0,0,0,0,0,0,2", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["critical"], json!([{"item": 9, "value": 2}]));
    // A missing answer: no total, the item named.
    let (_, out, _) = run_json(&["score", "phq9", "-,2,0,3,1,0,2,1,0", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (
            v["total"].clone(),
            v["complete"].clone(),
            v["missing"].clone()
        ),
        (Value::Null, json!(false), json!([1]))
    );
}

#[test]
fn score_rejects_bad_answers_naming_the_item() {
    for (args, needle) in [
        (
            vec!["score", "phq9", "1,2,0,3,1,0,2,1,7", "--json"],
            "item 9",
        ),
        (vec!["score", "phq9", "1,2,x", "--json"], "item 3"),
        (vec!["score", "phq9", "1,2,0", "--json"], "answers"),
        (vec!["score", "nosuch", "1", "--json"], "nosuch"),
        (vec!["score", "phq9", "", "--json"], "answers"),
    ] {
        let (code, out, err) = run_json(&args);
        assert_ne!(code, Some(0), "{args:?}");
        assert!(out.is_empty(), "{args:?} printed {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }
}

#[test]
fn outcome_exact_output() {
    let (code, out, _) = run_json(&["outcome", "--phq9", "18,7", "--gad7", "15,6", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        out.trim(),
        r#"{"caseness_at_start":true,"recovery":true,"reliable_improvement":true,"reliable_deterioration":false,"reliable_recovery":true}"#
    );
    let (_, out, _) = run_json(&["outcome", "--phq9", "8,7", "--gad7", "6,6", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["recovery"], Value::Null, "not a case at the start");
}

#[test]
fn change_reports_every_session_and_not_on_track() {
    let (code, out, _) = run_json(&["change", "phq9", "--scores", "20,19,19,18,18,17", "--json"]);
    assert_eq!(code, Some(0));
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["sessions"].as_array().unwrap().len(), 6);
    assert_eq!(v["not_on_track"]["not_on_track"], json!(true));
    assert!(v.get("sudden_gains").is_some() && v.get("clinically_significant_change").is_some());
}

#[test]
fn plan_from_the_documented_example_case() {
    let case = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/plan-example-case.json"
    );
    let (code, out, err) = run_json(&["plan", "--input", case, "--json"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim().lines().count(), 1, "one JSON object on one line");
    let v: Value = serde_json::from_str(&out).unwrap();
    for key in [
        "phase",
        "care_intensity",
        "style",
        "integration",
        "items",
        "excluded",
        "alerts",
    ] {
        assert!(v.get(key).is_some(), "plan lacks {key}");
    }
    for item in v["items"].as_array().unwrap() {
        for key in ["id", "code", "school", "phase", "why", "evidence"] {
            assert!(item.get(key).is_some(), "item lacks {key}: {item}");
        }
    }
}

#[test]
fn plan_errors_name_the_field() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("case.json");
    std::fs::write(&path, r#"{"age":30,"presenting_problems":["sadness"],"measures":{},"risk":{"level":"none","days_since_self_harm":null}}"#).unwrap();
    let (code, _, err) = run_json(&["plan", "--input", path.to_str().unwrap(), "--json"]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("presenting_problems") && err.contains("sadness"),
        "{err}"
    );
}

#[test]
fn match_assign_is_optimal_and_in_the_exact_form() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("instance.json");
    // Greedy would take client 0 → clinician 0 (5) and strand client 1; the
    // optimum matches both (3 + 4 = 7).
    std::fs::write(
        &path,
        r#"{"clients":3,"capacities":[1,1],"edges":[[0,0,5],[0,1,3],[1,0,4],[2,1,1]]}"#,
    )
    .unwrap();
    let (code, out, err) = run_json(&[
        "match",
        "assign",
        "--input",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        out.trim(),
        r#"{"assigned":2,"total_score":7,"assignment":[1,0,null]}"#
    );
    std::fs::write(&path, r#"{"clients":1,"capacities":[-1],"edges":[]}"#).unwrap();
    let (code, _, err) = run_json(&[
        "match",
        "assign",
        "--input",
        path.to_str().unwrap(),
        "--json",
    ]);
    assert_ne!(code, Some(0));
    assert!(err.contains("capacities[0]"), "{err}");
}
