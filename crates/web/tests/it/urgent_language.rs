//! The practice's urgent-language review through the real router: a
//! clinician edits and reviews the list, screening follows the reviewed
//! list, any edit falls back to the shipped draft list, bad input changes
//! nothing, concurrent edits all land. Who may call what is in the matrix.

use crate::fixture::*;
use tapestry_domain::urgent_language::MAX_PHRASE_CHARS;

const EDIT: &str = "/api/v1/practice/urgent-language";
const REVIEW: &str = "/api/v1/practice/urgent-language/review";

async fn edit(f: &Fixture, role: &str, body: &str) -> Answer_ {
    call(&f.state, "POST", EDIT, f.login(role), Some(body)).await
}

/// Sends `text` as client A; true when the answer says the care team was
/// alerted (urgent language found).
async fn alerts(f: &Fixture, text: &str) -> bool {
    let path = format!("/api/v1/clients/{}/messages", f.client_a.id);
    let body = serde_json::json!({ "body": text }).to_string();
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    !r.body.contains(r#""urgent_notice":null"#)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewed_practice_list_screens_and_any_edit_falls_back_to_the_draft_list() {
    let f = fixture().await;
    // Shipped draft list: "suicide" alerts, the practice phrase does not.
    assert!(alerts(&f, "I keep thinking about suicide").await);
    assert!(!alerts(&f, "I am going to jump off the bridge").await);
    let r = edit(
        &f,
        "treating",
        r#"{"op":"add","phrase":"Going to JUMP off","category":"suicide"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = edit(&f, "treating", r#"{"op":"remove","phrase":"suicide"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Edited but unreviewed: still the draft list.
    assert!(alerts(&f, "I keep thinking about suicide").await);
    assert!(!alerts(&f, "I am going to jump off the bridge").await);
    let page = call(
        &f.state,
        "GET",
        "/practice/urgent-language",
        f.login("supervisor"),
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("urgent-language list is unreviewed"));
    assert!(page.body.contains("going to jump off"));
    // The supervisor reviews: the practice's list screens from now on.
    let tasks_before = f.store.open_tasks(f.practice.id).await.unwrap().len();
    let r = call(&f.state, "POST", REVIEW, f.login("supervisor"), Some("{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let reviewer = &f.user("supervisor").display_name;
    assert!(
        r.body
            .contains(&format!("reviewed by {reviewer} on 2026-03-02")),
        "{}",
        r.body
    );
    assert!(alerts(&f, "I am going to jump off the bridge").await);
    assert!(
        f.store.open_tasks(f.practice.id).await.unwrap().len() > tasks_before,
        "a practice-added phrase raises the risk task"
    );
    assert!(
        !alerts(&f, "I keep thinking about suicide").await,
        "a removed shipped phrase no longer alerts"
    );
    // Other shipped phrases still do.
    assert!(alerts(&f, "I want to end it all").await);
    for role in ["treating", "owner"] {
        let page = call(&f.state, "GET", "/messages", f.login(role), None).await;
        assert!(
            page.body
                .contains(&format!("reviewed by {reviewer} on 2026-03-02")),
            "{role}: {}",
            page.body
        );
    }
    // The review is audited with the practice's list as its object.
    let events = f.store.audit_events().await.unwrap();
    assert!(events.iter().any(|e| e.action == "review_urgent_language"
        && e.object_type == "urgent_language_list"
        && e.actor == Some(f.user("supervisor").id)));
    // Any edit clears the review: back to the draft list.
    let r = edit(
        &f,
        "treating",
        r#"{"op":"add","phrase":"no way out","category":"suicide"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(alerts(&f, "I keep thinking about suicide").await);
    assert!(!alerts(&f, "I am going to jump off the bridge").await);
    let page = call(&f.state, "GET", "/messages", f.login("treating"), None).await;
    assert!(page.body.contains("urgent-language list is unreviewed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_edits_answer_422_naming_the_field_and_leave_the_list_unchanged() {
    let f = fixture().await;
    let r = edit(
        &f,
        "treating",
        r#"{"op":"add","phrase":"going to jump","category":"suicide"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let stored = || async { f.store.practice_phrase_list(f.practice.id).await.unwrap() };
    let before = stored().await;
    let long = "word ".repeat(MAX_PHRASE_CHARS / 5 + 1);
    let huge = "x".repeat(100_000);
    let cases: Vec<(String, &str)> = vec![
        // Empty, or nothing but punctuation.
        (
            r#"{"op":"add","phrase":"","category":"x"}"#.into(),
            "phrase",
        ),
        (
            r#"{"op":"add","phrase":" ?! ","category":"x"}"#.into(),
            "phrase",
        ),
        // Too long (just over the limit, and a huge paste).
        (
            serde_json::json!({"op":"add","phrase":long,"category":"x"}).to_string(),
            "phrase",
        ),
        (
            serde_json::json!({"op":"add","phrase":huge,"category":"x"}).to_string(),
            "phrase",
        ),
        // Duplicates: of its own phrase in another spelling, of a shipped one.
        (
            r#"{"op":"add","phrase":"Going, to JUMP","category":"x"}"#.into(),
            "phrase",
        ),
        (
            r#"{"op":"add","phrase":"kill myself","category":"x"}"#.into(),
            "phrase",
        ),
        // Removing what is not listed.
        (
            r#"{"op":"remove","phrase":"nice weather"}"#.into(),
            "phrase",
        ),
        // No category for an added phrase.
        (r#"{"op":"add","phrase":"new words"}"#.into(), "category"),
        // Malformed: unknown operation, missing or smuggled fields.
        (r#"{"op":"replace","phrase":"a"}"#.into(), "op"),
        (r#"{"phrase":"a"}"#.into(), "op"),
        (
            r#"{"op":"add","phrase":"a","category":"x","reviewed":true}"#.into(),
            "reviewed",
        ),
    ];
    for (body, field) in cases {
        let r = edit(&f, "treating", &body).await;
        assert_eq!(
            r.status,
            422,
            "{}: {}",
            body.chars().take(80).collect::<String>(),
            r.body
        );
        assert!(
            r.body.contains(&format!(r#""fields":{{"{field}":"#)),
            "{field}: {}",
            r.body
        );
        assert_eq!(stored().await, before, "{field}: nothing stored");
    }
    // The review endpoint takes no fields (no reviewer or date smuggled in).
    let r = call(
        &f.state,
        "POST",
        REVIEW,
        f.login("treating"),
        Some(r#"{"by_name":"Someone Else"}"#),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(stored().await, before);
}

/// Two clinicians add different phrases at the same moment, many times
/// over: both always land (each write is a compare-and-swap that re-reads
/// and re-applies when it lost the race), none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_adds_keep_both() {
    let f = fixture().await;
    for round in 0..10 {
        let a = format!(r#"{{"op":"add","phrase":"alpha phrase {round}","category":"other"}}"#);
        let b = format!(r#"{{"op":"add","phrase":"beta phrase {round}","category":"other"}}"#);
        let (ra, rb) = tokio::join!(edit(&f, "treating", &a), edit(&f, "supervisor", &b));
        assert_eq!((ra.status.as_u16(), rb.status.as_u16()), (200, 200));
    }
    let list = f
        .store
        .practice_phrase_list(f.practice.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(list.added.len(), 20);
    for round in 0..10 {
        for who in ["alpha", "beta"] {
            let text = format!("{who} phrase {round}");
            assert!(list.added.iter().any(|p| p.text == text), "{text} lost");
        }
    }
}
