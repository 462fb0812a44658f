//! Portal behaviour through the real router: sign-and-lock, private notes,
//! the shared safety plan, homework round trip, intake save-and-continue.

use crate::fixture::*;
use serde_json::Value;

fn next_of(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["next"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_note_is_locked_and_takes_addenda() {
    let f = fixture().await;
    let a = f.client_a.id;
    let t = f.login("treating");
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/notes"),
        t,
        Some(r#"{"template":"dap","kind":"progress"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page = next_of(&r.body);
    let note = page.rsplit('/').next().unwrap().to_string();
    let api = format!("/api/v1/clients/{a}/notes/{note}");
    // Empty: cannot be signed.
    let r = call(&f.state, "POST", &format!("{api}/sign"), t, Some("{}")).await;
    assert_eq!(r.status, 422, "{}", r.body);
    // A section of another template is refused by name.
    let r = call(&f.state, "POST", &api, t, Some(r#"{"subjective":"x"}"#)).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("subjective"), "{}", r.body);
    let r = call(
        &f.state,
        "POST",
        &api,
        t,
        Some(r#"{"data":"Tearful, PHQ-9 17","plan":"Safety plan review"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&f.state, "POST", &format!("{api}/sign"), t, Some("{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Locked: edits and a second signature are refused.
    let r = call(&f.state, "POST", &api, t, Some(r#"{"data":"changed"}"#)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = call(&f.state, "POST", &format!("{api}/sign"), t, Some("{}")).await;
    assert_eq!(r.status, 409, "{}", r.body);
    let r = call(
        &f.state,
        "POST",
        &format!("{api}/addenda"),
        t,
        Some(r#"{"text":"Correction: PHQ-9 was 16"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The supervisor co-signs once; the treating clinician cannot.
    let r = call(&f.state, "POST", &format!("{api}/cosign"), t, Some("{}")).await;
    assert_eq!(r.status, 403);
    let s = f.login("supervisor");
    let r = call(&f.state, "POST", &format!("{api}/cosign"), s, Some("{}")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = call(&f.state, "GET", &page, s, None).await;
    assert!(r.body.contains("Co-signed") && r.body.contains("Correction: PHQ-9 was 16"));
    assert!(!r.body.contains("changed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_psychotherapy_notes_are_for_their_author_only() {
    let f = fixture().await;
    let a = f.client_a.id;
    let t = f.login("treating");
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/notes"),
        t,
        Some(r#"{"template":"soap","kind":"psychotherapy"}"#),
    )
    .await;
    let page = next_of(&r.body);
    assert_eq!(call(&f.state, "GET", &page, t, None).await.status, 200);
    // The supervisor reads the record's notes but not this one: not found.
    let s = f.login("supervisor");
    assert_eq!(call(&f.state, "GET", &page, s, None).await.status, 404);
    let list = call(&f.state, "GET", &format!("/clients/{a}/notes"), s, None).await;
    assert_eq!(list.status, 200);
    assert!(
        !list.body.contains("Private psychotherapy note</td>"),
        "{}",
        list.body
    );
    let mine = call(&f.state, "GET", &format!("/clients/{a}/notes"), t, None).await;
    assert!(mine.body.contains("Private psychotherapy note</td>"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_safety_plan_is_versioned_and_shared_with_the_client() {
    let f = fixture().await;
    let a = f.client_a.id;
    let t = f.login("treating");
    let api = format!("/api/v1/clients/{a}/safety-plan");
    // Empty and unknown steps are refused, naming the problem.
    assert_eq!(
        call(&f.state, "POST", &api, t, Some("{}")).await.status,
        422
    );
    let r = call(&f.state, "POST", &api, t, Some(r#"{"means":"x"}"#)).await;
    assert!(r.body.contains("means"));
    let r = call(
        &f.state,
        "POST",
        &api,
        t,
        Some(r#"{"warning_signs":"Not sleeping"}"#),
    )
    .await;
    assert_eq!(r.status, 201);
    let r = call(
        &f.state,
        "POST",
        &api,
        t,
        Some(r#"{"warning_signs":"Not sleeping\nPacing","professionals":"Crisis line 116 123"}"#),
    )
    .await;
    assert!(r.body.contains(r#""version":2"#), "{}", r.body);
    let c = f.login("client_a");
    let mine = call(&f.state, "GET", "/me/safety-plan", c, None).await;
    assert_eq!(mine.status, 200);
    assert!(mine.body.contains("Pacing") && mine.body.contains("116 123"));
    // The other client sees none of it.
    let other = call(
        &f.state,
        "GET",
        "/me/safety-plan",
        f.login("client_b"),
        None,
    )
    .await;
    assert!(!other.body.contains("Pacing"));
    // The client cannot write their plan through the clinician's endpoint.
    assert_eq!(
        call(&f.state, "POST", &api, c, Some(r#"{"warning_signs":"x"}"#))
            .await
            .status,
        403
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homework_goes_out_comes_back_and_is_then_fixed() {
    let f = fixture().await;
    let a = f.client_a.id;
    let t = f.login("treating");
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/homework"),
        t,
        Some(r#"{"technique":"T999"}"#),
    )
    .await;
    assert_eq!(r.status, 422);
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/homework"),
        t,
        Some(r#"{"technique":"T04"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let c = f.login("client_a");
    let list = call(&f.state, "GET", "/me/homework", c, None).await;
    let id = list
        .body
        .split("/me/homework/")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let api = format!("/api/v1/me/homework/{id}");
    // Sending an empty worksheet is refused; a draft is kept.
    assert_eq!(
        call(&f.state, "POST", &api, c, Some(r#"{"send":"yes"}"#))
            .await
            .status,
        422
    );
    let r = call(
        &f.state,
        "POST",
        &api,
        c,
        Some(r#"{"situation":"Meeting ran late","send":"no"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Client B cannot reach A's worksheet.
    assert_eq!(
        call(
            &f.state,
            "POST",
            &api,
            f.login("client_b"),
            Some(r#"{"situation":"x"}"#)
        )
        .await
        .status,
        404
    );
    let r = call(
        &f.state,
        "POST",
        &api,
        c,
        Some(r#"{"situation":"Meeting ran late","send":"yes"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        call(&f.state, "POST", &api, c, Some(r#"{"situation":"edit"}"#))
            .await
            .status,
        409
    );
    let dash = call(&f.state, "GET", "/dashboard", t, None).await;
    assert!(dash.body.contains("Homework returned"), "{}", dash.body);
    let seen = call(&f.state, "GET", &format!("/clients/{a}/homework"), t, None).await;
    assert!(seen.body.contains("Meeting ran late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intake_saves_and_continues_and_staff_are_sent_to_their_start_page() {
    let f = fixture().await;
    let c = f.login("client_a");
    let r = call(
        &f.state,
        "POST",
        "/api/v1/me/intake",
        c,
        Some(r#"{"step":"0"}"#),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("consent"));
    let r = call(
        &f.state,
        "POST",
        "/api/v1/me/intake",
        c,
        Some(r#"{"step":"0","consent":"yes"}"#),
    )
    .await;
    assert_eq!(next_of(&r.body), "/intake");
    let r = call(
        &f.state,
        "POST",
        "/api/v1/me/intake",
        c,
        Some(r#"{"step":"2","concern":"Sleep"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let page = call(&f.state, "GET", "/intake", c, None).await;
    assert!(page.body.contains("Sleep"));
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/me/intake",
            c,
            Some(r#"{"step":"9"}"#)
        )
        .await
        .status,
        422
    );
    let me = call(&f.state, "GET", "/me", f.login("treating"), None).await;
    assert_eq!(me.status, 303);
    assert_eq!(me.headers["location"], "/dashboard");
    let me = call(&f.state, "GET", "/me", f.login("practice_admin"), None).await;
    assert_eq!(me.headers["location"], "/practice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn homework_is_assigned_from_the_accepted_plans_items_first() {
    let f = fixture().await;
    let a = f.client_a.id;
    let t = f.login("treating");
    let page = format!("/clients/{a}/homework");
    // No accepted plan yet: the library only, and the page says why.
    let before = call(&f.state, "GET", &page, t, None).await;
    assert!(!before.body.contains("From the accepted plan"));
    assert!(before.body.contains("accept a plan to see its items first"));
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/formulations"),
        t,
        Some(
            r#"{"formulation":{"age":34,"presenting_problems":["depression"],"dimension_ratings":{"cognitive":9}}}"#,
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/plans"),
        t,
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // A draft plan is not offered: only an accepted one is the plan in force.
    let draft = call(&f.state, "GET", &page, t, None).await;
    assert!(!draft.body.contains("From the accepted plan"));
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/clients/{a}/plans/1/decisions"),
        t,
        Some(r#"{"action":"accept_plan","reason":"Agreed with the client"}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let after = call(&f.state, "GET", &page, t, None).await;
    let body = &after.body;
    let plan_at = body
        .find("From the accepted plan")
        .expect("plan items group");
    let library_at = body.find("The whole library").expect("library group");
    assert!(plan_at < library_at, "the plan's items come first");
    let plan_group = &body[plan_at..library_at];
    assert!(plan_group.contains("(plan item)"));
    // Each worksheet is offered once: a plan item is not repeated below.
    for code in plan_group
        .split(r#"<option value=""#)
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
    {
        assert_eq!(
            body.matches(&format!(r#"<option value="{code}""#)).count(),
            1,
            "{code} offered once"
        );
    }
}
