//! Clinician-administered forms and measure schedules through the real router:
//! a high or imminent structured risk assessment raises a red flag and an
//! immediate task in the same commit, the care team alone may record one, the
//! wrong kind of form or a bad answer names the field and stores nothing, and
//! schedules are assigned, listed, replaced and removed by the treating clinician.

use crate::fixture::*;
use crate::records::{episode, send};

fn assess_path(f: &Fixture, episode: &str) -> String {
    format!(
        "/api/v1/clients/{}/episodes/{episode}/assessments",
        f.client_a.id
    )
}

fn schedules_path(f: &Fixture, episode: &str) -> String {
    format!(
        "/api/v1/clients/{}/episodes/{episode}/measure-schedules",
        f.client_a.id
    )
}

/// Active ideation, a method considered, intends to act, a detailed plan: imminent.
const IMMINENT: &str = r#"{"instrument":"risk_assessment","answers":[2,1,2,2,1,1]}"#;
/// Nothing disclosed, strong protective factors: low, and no signal.
const NOTHING_DISCLOSED: &str = r#"{"instrument":"risk_assessment","answers":[0,0,0,0,0,0]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imminent_assessment_raises_a_red_flag_and_an_immediate_task_once() {
    let f = fixture().await;
    let ep = episode(&f).await;
    let first = send(
        &f,
        "POST",
        &assess_path(&f, &ep),
        "treating",
        Some(IMMINENT),
        Some("assessment-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let r = first.json();
    assert_eq!(r["instrument"], "risk_assessment");
    assert_eq!(r["band"], "imminent", "{}", first.body);
    assert_eq!(r["risk_flags"].as_array().unwrap().len(), 1);
    assert_eq!(r["tasks"].as_array().unwrap().len(), 1);
    // The flag is red, names the structured assessment and its level, and is open.
    let flags = send(
        &f,
        "GET",
        &format!("/api/v1/clients/{}/risk-flags", f.client_a.id),
        "treating",
        None,
        None,
    )
    .await;
    let flag = &flags.json()[0];
    assert_eq!(flag["colour"], "red");
    assert_eq!(flag["level"], "imminent");
    assert_eq!(flag["instrument"], "risk_assessment");
    assert_eq!(flag["open"], true);
    // The task is due at once (red → immediately) and assigned to the clinician's list.
    let tasks = f.store.open_tasks(f.practice.id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].due_at, tasks[0].created_at);
    // A retry with the same key stores nothing new and returns the same ids.
    let before = f.fingerprint().await;
    let again = send(
        &f,
        "POST",
        &assess_path(&f, &ep),
        "treating",
        Some(IMMINENT),
        Some("assessment-1"),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["submission_id"], r["submission_id"]);
    assert_eq!(again.json()["risk_flags"], r["risk_flags"]);
    assert_eq!(again.json()["new"], false);
    assert_eq!(before, f.fingerprint().await);
    // The supervisor may record one too; with nothing disclosed it is low and raises nothing.
    let low = send(
        &f,
        "POST",
        &assess_path(&f, &ep),
        "supervisor",
        Some(NOTHING_DISCLOSED),
        None,
    )
    .await;
    assert_eq!(low.status, 201, "{}", low.body);
    assert_eq!(low.json()["band"], "low");
    assert_eq!(low.json()["risk_flags"].as_array().unwrap().len(), 0);
    assert_eq!(
        f.store.open_risk_flags(f.practice.id).await.unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_care_team_records_assessments_and_bad_input_stores_nothing() {
    let f = fixture().await;
    let ep = episode(&f).await;
    let before = f.fingerprint().await;
    // Outside the care team: the client, a colleague, an admin, the owner.
    for (role, status) in [
        ("client_a", 403),
        ("non_treating", 403),
        ("practice_admin", 403),
        ("owner", 403),
        ("client_b", 404),
        ("other_practice", 404),
    ] {
        let r = send(
            &f,
            "POST",
            &assess_path(&f, &ep),
            role,
            Some(IMMINENT),
            None,
        )
        .await;
        assert_eq!(r.status, status, "{role}: {}", r.body);
    }
    // The wrong kind of form on either route names the instrument.
    let r = send(
        &f,
        "POST",
        &format!(
            "/api/v1/clients/{}/episodes/{ep}/submissions",
            f.client_a.id
        ),
        "client_a",
        Some(IMMINENT),
        None,
    )
    .await;
    assert_eq!(
        r.status, 422,
        "a client cannot rate their own risk assessment"
    );
    assert!(
        r.json()["error"]["fields"].get("instrument").is_some(),
        "{}",
        r.body
    );
    for (body, field) in [
        (
            r#"{"instrument":"phq9","answers":[1,1,1,1,1,1,1,1,1]}"#,
            "instrument",
        ),
        (
            r#"{"instrument":"risk_assessment","answers":[2,1,2,2,1,9]}"#,
            "answers[6]",
        ),
        (
            r#"{"instrument":"risk_assessment","answers":[2,"yes",2,2,1,1]}"#,
            "answers[2]",
        ),
        (
            r#"{"instrument":"risk_assessment","answers":[2,1]}"#,
            "answers",
        ),
        (
            r#"{"instrument":"risk_assessment","answers":[]}"#,
            "answers",
        ),
        (r#"{"instrument":"nope","answers":[1]}"#, "instrument"),
    ] {
        let r = send(
            &f,
            "POST",
            &assess_path(&f, &ep),
            "treating",
            Some(body),
            None,
        )
        .await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(
            r.json()["error"]["fields"].get(field).is_some(),
            "{body}: {}",
            r.body
        );
    }
    // An episode that is not this client's is not found.
    let r = send(
        &f,
        "POST",
        &assess_path(&f, &uuid::Uuid::new_v4().to_string()),
        "treating",
        Some(IMMINENT),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(before, f.fingerprint().await, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measure_schedules_are_assigned_listed_replaced_and_removed() {
    let f = fixture().await;
    let ep = episode(&f).await;
    let path = schedules_path(&f, &ep);
    let every = send(
        &f,
        "POST",
        &path,
        "treating",
        Some(r#"{"instrument":"phq9","rule":"every_n_days","every_days":14}"#),
        None,
    )
    .await;
    assert_eq!(every.status, 201, "{}", every.body);
    assert_eq!(every.json()["every_days"], 14);
    let before_each = send(
        &f,
        "POST",
        &path,
        "treating",
        Some(r#"{"instrument":"gad7","rule":"before_every_session"}"#),
        None,
    )
    .await;
    assert_eq!(before_each.status, 201, "{}", before_each.body);
    // Re-assigning an instrument replaces its rule.
    let again = send(
        &f,
        "POST",
        &path,
        "treating",
        Some(r#"{"instrument":"phq9","rule":"intake_and_discharge"}"#),
        None,
    )
    .await;
    assert_eq!(again.status, 201, "{}", again.body);
    // The client reads their schedule, as the team does.
    for role in ["client_a", "treating", "supervisor"] {
        let list = send(&f, "GET", &path, role, None, None).await;
        assert_eq!(list.status, 200, "{role}: {}", list.body);
        let items = list.json();
        let rules: Vec<(&str, &str)> = items
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["instrument"].as_str().unwrap(),
                    s["rule"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            [
                ("gad7", "before_every_session"),
                ("phq9", "intake_and_discharge")
            ]
        );
    }
    // Bad input names the field and stores nothing; the supervisor may not assign.
    let before = f.fingerprint().await;
    for (body, field) in [
        (r#"{"instrument":"phq9","rule":"weekly"}"#, "rule"),
        (
            r#"{"instrument":"phq9","rule":"every_n_days"}"#,
            "every_days",
        ),
        (
            r#"{"instrument":"phq9","rule":"every_n_days","every_days":0}"#,
            "every_days",
        ),
        (
            r#"{"instrument":"phq9","rule":"every_n_days","every_days":367}"#,
            "every_days",
        ),
        (
            r#"{"instrument":"phq9","rule":"every_n_days","every_days":-3}"#,
            "every_days",
        ),
        (
            r#"{"instrument":"phq9","rule":"before_every_session","every_days":7}"#,
            "every_days",
        ),
        (
            r#"{"instrument":"mood-o-meter","rule":"before_every_session"}"#,
            "instrument",
        ),
    ] {
        let r = send(&f, "POST", &path, "treating", Some(body), None).await;
        assert_eq!(r.status, 422, "{body}: {}", r.body);
        assert!(
            r.json()["error"]["fields"].get(field).is_some(),
            "{body}: {}",
            r.body
        );
    }
    let r = send(
        &f,
        "POST",
        &path,
        "supervisor",
        Some(r#"{"instrument":"k10","rule":"before_every_session"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 403);
    let other_episode = schedules_path(&f, &uuid::Uuid::new_v4().to_string());
    let r = send(
        &f,
        "POST",
        &other_episode,
        "treating",
        Some(r#"{"instrument":"k10","rule":"before_every_session"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(before, f.fingerprint().await, "nothing was stored");
    // Removing: once, then it is gone (404 the second time).
    let remove = format!("{path}/phq9/remove");
    assert_eq!(
        send(&f, "POST", &remove, "supervisor", Some("{}"), None)
            .await
            .status,
        403
    );
    assert_eq!(
        send(&f, "POST", &remove, "treating", Some("{}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        send(&f, "POST", &remove, "treating", Some("{}"), None)
            .await
            .status,
        404
    );
    let list = send(&f, "GET", &path, "treating", None, None).await;
    assert_eq!(list.json().as_array().unwrap().len(), 1);
}
