//! The records area through the real router: measures submission (risk →
//! task first, idempotent retries, bad answers name the item and store
//! nothing), formulation and plan flows, session review, chart pages and
//! the sealed-at-rest canary.

use crate::fixture::*;
use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

pub(crate) struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub(crate) async fn send(
    f: &Fixture,
    method: &str,
    path: &str,
    role: &str,
    body: Option<&str>,
    key: Option<&str>,
) -> Reply {
    let login = f.login(role).unwrap();
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf);
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    if let Some(k) = key {
        req = req.header("idempotency-key", k);
    }
    let resp = tapestry_web::router(f.state.clone())
        .oneshot(
            req.body(Body::from(body.unwrap_or("").to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Reply {
        status,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

pub(crate) async fn episode(f: &Fixture) -> String {
    f.store
        .episodes_for_client(f.practice.id, f.client_a.id)
        .await
        .unwrap()[0]
        .id
        .to_string()
}

fn submit_path(f: &Fixture, episode: &str) -> String {
    format!(
        "/api/v1/clients/{}/episodes/{episode}/submissions",
        f.client_a.id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risk_answer_puts_a_task_first_and_retries_are_idempotent() {
    let f = fixture().await;
    let ep = episode(&f).await;
    let body = r#"{"instrument":"phq9","answers":[2,2,1,1,1,1,1,1,2]}"#;
    let first = send(
        &f,
        "POST",
        &submit_path(&f, &ep),
        "client_a",
        Some(body),
        Some("intake-1"),
    )
    .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let r = first.json();
    assert_eq!(r["total"], 12.0);
    assert_eq!(r["band"], "moderate");
    assert_eq!(
        r["risk_flags"].as_array().unwrap().len(),
        1,
        "item 9 > 0 raises a flag"
    );
    assert_eq!(
        r["tasks"].as_array().unwrap().len(),
        1,
        "and a task in the same commit"
    );
    // The retry (same key, same answers) returns the first result, stores nothing new.
    let before = f.fingerprint().await;
    let again = send(
        &f,
        "POST",
        &submit_path(&f, &ep),
        "client_a",
        Some(body),
        Some("intake-1"),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json()["submission_id"], r["submission_id"]);
    assert_eq!(again.json()["new"], false);
    assert_eq!(before, f.fingerprint().await);
    // The same key with different answers is a conflict.
    let other = r#"{"instrument":"phq9","answers":[0,0,0,0,0,0,0,0,0]}"#;
    let clash = send(
        &f,
        "POST",
        &submit_path(&f, &ep),
        "client_a",
        Some(other),
        Some("intake-1"),
    )
    .await;
    assert_eq!(clash.status, 409, "{}", clash.body);
    // The treating clinician's task list has the risk review first.
    let tasks = send(&f, "GET", "/api/v1/me/tasks", "treating", None, None).await;
    assert_eq!(tasks.status, 200, "{}", tasks.body);
    let list = tasks.json();
    assert_eq!(list[0]["kind"], "risk_review");
    assert_eq!(list[0]["client_id"], f.client_a.id.to_string());
    // A clinician without a relationship sees no task of this client.
    let theirs = send(&f, "GET", "/api/v1/me/tasks", "non_treating", None, None).await;
    assert_eq!(theirs.json().as_array().unwrap().len(), 0);
    // The flag is listed, open, red or amber, and never closes by itself.
    let flags = send(
        &f,
        "GET",
        &format!("/api/v1/clients/{}/risk-flags", f.client_a.id),
        "treating",
        None,
        None,
    )
    .await;
    let flag = flags.json()[0].clone();
    assert_eq!(flag["open"], true);
    assert_eq!(flag["item"], 9);
    let better = r#"{"instrument":"phq9","answers":[0,0,0,0,0,0,0,0,0]}"#;
    let ok = send(
        &f,
        "POST",
        &submit_path(&f, &ep),
        "client_a",
        Some(better),
        None,
    )
    .await;
    assert_eq!(ok.status, 201);
    let flags = send(
        &f,
        "GET",
        &format!("/api/v1/clients/{}/risk-flags", f.client_a.id),
        "treating",
        None,
        None,
    )
    .await;
    assert_eq!(
        flags.json()[0]["open"],
        true,
        "an improving total does not close a flag"
    );
    // Closing needs a note, accepts no other fields, and only the treating team.
    let close = format!("/api/v1/risk-flags/{}/close", flag["id"].as_str().unwrap());
    let empty = send(
        &f,
        "POST",
        &close,
        "treating",
        Some(r#"{"note":"  "}"#),
        None,
    )
    .await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains(r#""note""#));
    let extra = send(
        &f,
        "POST",
        &close,
        "treating",
        Some(r#"{"note":"ok","closed_by":"x"}"#),
        None,
    )
    .await;
    assert_eq!(extra.status, 422);
    let client = send(
        &f,
        "POST",
        &close,
        "client_a",
        Some(r#"{"note":"I am fine"}"#),
        None,
    )
    .await;
    assert_eq!(client.status, 403);
    let done = send(
        &f,
        "POST",
        &close,
        "treating",
        Some(r#"{"note":"Assessed by phone: no plan or intent; safety plan reviewed"}"#),
        None,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert_eq!(done.json()["open"], false);
    let tasks = send(&f, "GET", "/api/v1/me/tasks", "treating", None, None).await;
    assert_eq!(
        tasks.json().as_array().unwrap().len(),
        0,
        "closing the flag completes its task"
    );
    let twice = send(
        &f,
        "POST",
        &close,
        "treating",
        Some(r#"{"note":"again"}"#),
        None,
    )
    .await;
    assert!(twice.status >= 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_name_the_item_and_store_nothing() {
    let f = fixture().await;
    let ep = episode(&f).await;
    let before = f.fingerprint().await;
    for (body, field) in [
        (
            r#"{"instrument":"phq9","answers":[1,1,1,1,1,1,1,1,7]}"#,
            "answers[9]",
        ),
        (
            r#"{"instrument":"phq9","answers":[1,1,"often",1,1,1,1,1,1]}"#,
            "answers[3]",
        ),
        (r#"{"instrument":"phq9","answers":[1,1,1]}"#, "answers"),
        (r#"{"instrument":"phq9","answers":[]}"#, "answers"),
        (
            r#"{"instrument":"mood-o-meter","answers":[1]}"#,
            "instrument",
        ),
        (
            r#"{"instrument":"phq9","answers":[1,1,1,1,1,1,1,1,1],"total":27}"#,
            "total",
        ),
    ] {
        let r = send(
            &f,
            "POST",
            &submit_path(&f, &ep),
            "client_a",
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
    // A huge answer list is refused before scoring.
    let huge = format!(
        r#"{{"instrument":"phq9","answers":[{}]}}"#,
        vec!["1"; 5000].join(",")
    );
    let r = send(
        &f,
        "POST",
        &submit_path(&f, &ep),
        "client_a",
        Some(&huge),
        None,
    )
    .await;
    assert_eq!(r.status, 422);
    // Another client's episode id in this path is not found.
    let r = send(
        &f,
        "POST",
        &submit_path(&f, &uuid::Uuid::new_v4().to_string()),
        "client_a",
        Some(r#"{"instrument":"phq9","answers":[1,1,1,1,1,1,1,1,0]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(before, f.fingerprint().await, "nothing was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulation_plan_decisions_diff_and_review() {
    let f = fixture().await;
    let id = f.client_a.id;
    let path = format!("/api/v1/clients/{id}/formulations");
    let before = f.fingerprint().await;
    for (body, field) in [
        (
            r#"{"formulation":{"age":34,"presenting_problems":["sadness"]}}"#,
            "formulation.presenting_problems[0]",
        ),
        (
            r#"{"formulation":{"age":34,"presenting_problems":[]}}"#,
            "formulation.presenting_problems",
        ),
        (
            r#"{"formulation":{"age":300,"presenting_problems":["depression"]}}"#,
            "formulation.age",
        ),
        (
            r#"{"formulation":{"age":34,"presenting_problems":["depression"],"five_ps":{"secret":["x"]}}}"#,
            "formulation.five_ps.secret",
        ),
        (
            r#"{"formulation":{"age":34,"presenting_problems":["depression"]},"practice_id":"x"}"#,
            "practice_id",
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
    assert_eq!(
        before,
        f.fingerprint().await,
        "bad formulations store nothing"
    );
    let good = r#"{"formulation":{"age":34,"presenting_problems":["depression","insomnia"],"goals":["Enjoy Sunday football again"],"five_ps":{"precipitating":["Redundancy in March"]},"style":{"reactance":"high"}}}"#;
    let v1 = send(&f, "POST", &path, "treating", Some(good), None).await;
    assert_eq!(v1.status, 201, "{}", v1.body);
    assert_eq!(v1.json()["version"], 1);
    let no_reason = send(&f, "POST", &path, "treating", Some(good), None).await;
    assert_eq!(no_reason.status, 422);
    assert!(no_reason.body.contains(r#""reason""#));
    // Plans: generated from the formulation and the stored PHQ-9.
    let plans = format!("/api/v1/clients/{id}/plans");
    let p1 = send(&f, "POST", &plans, "treating", Some("{}"), None).await;
    assert_eq!(p1.status, 201, "{}", p1.body);
    let plan = p1.json();
    assert_eq!(plan["version"], 1);
    assert_eq!(plan["status"], "draft");
    let items = plan["plan"]["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(
        items
            .iter()
            .all(|i| !i["why"]["summary"].as_str().unwrap().is_empty()),
        "every item says why"
    );
    let code = items[0]["code"].as_str().unwrap().to_string();
    // Decisions: a reason is required; accept the plan; edit an item.
    let decide = format!("/api/v1/clients/{id}/plans/1/decisions");
    let r = send(
        &f,
        "POST",
        &decide,
        "treating",
        Some(r#"{"action":"accept_plan","reason":""}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 422);
    let r = send(
        &f,
        "POST",
        &decide,
        "treating",
        Some(r#"{"action":"accept_plan","reason":"Agreed with the client at session 2"}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["status"], "accepted");
    // Deciding on a version that is no longer the latest is a conflict.
    let stale = send(
        &f,
        "POST",
        &decide,
        "treating",
        Some(r#"{"action":"accept_plan","reason":"again"}"#),
        None,
    )
    .await;
    assert_eq!(stale.status, 409);
    let edit = format!(
        r#"{{"action":"edit","code":"{code}","change":"Two short sessions a week","reason":"Energy is low in the mornings"}}"#
    );
    let r = send(
        &f,
        "POST",
        &format!("/api/v1/clients/{id}/plans/2/decisions"),
        "treating",
        Some(&edit),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let unknown = send(
        &f,
        "POST",
        &format!("/api/v1/clients/{id}/plans/3/decisions"),
        "treating",
        Some(r#"{"action":"accept","code":"T99","reason":"x"}"#),
        None,
    )
    .await;
    assert_eq!(unknown.status, 422);
    assert!(unknown.body.contains(r#""code""#));
    let list = send(&f, "GET", &plans, "treating", None, None).await;
    assert_eq!(list.json().as_array().unwrap().len(), 3);
    let d = send(
        &f,
        "GET",
        &format!("/api/v1/clients/{id}/plans/diff?from=1&to=3"),
        "treating",
        None,
        None,
    )
    .await;
    assert_eq!(d.status, 200, "{}", d.body);
    assert_eq!(d.json()["from_version"], 1);
    // The client sees accepted versions only.
    let theirs = send(&f, "GET", &plans, "client_a", None, None).await;
    assert!(theirs
        .json()
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] == "accepted"));
    let draft = send(&f, "GET", &format!("{plans}/1"), "client_a", None, None).await;
    assert_eq!(draft.status, 404);
    // Session review: unknown technique names the field; a review is stored.
    let review = format!("/api/v1/clients/{id}/session-review");
    let r = send(
        &f,
        "POST",
        &review,
        "treating",
        Some(r#"{"techniques":["T06","tap-dancing"]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("techniques[1]"));
    let r = send(
        &f,
        "POST",
        &review,
        "treating",
        Some(r#"{"techniques":["T06"]}"#),
        None,
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.json()["suggestions"].is_array());
    // Pages show the why chain, evidence levels, the chart and the review.
    let page = send(
        &f,
        "GET",
        &format!("/clients/{id}/plan"),
        "treating",
        None,
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Why this technique"));
    assert!(page.body.contains("Evidence "));
    assert!(page.body.contains("Techniques not in this plan"));
    assert!(page.body.contains("Version history"));
    let page = send(
        &f,
        "GET",
        &format!("/clients/{id}/plan?from=1&to=3"),
        "treating",
        None,
        None,
    )
    .await;
    assert!(page.body.contains("Changes from version 1 to 3"));
    let page = send(
        &f,
        "GET",
        &format!("/clients/{id}/measures"),
        "treating",
        None,
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains(r#"role="img""#));
    assert!(page.body.contains("Show as table"));
    assert!(page.body.contains(r#"class="sr-only""#));
    let page = send(&f, "GET", &format!("/clients/{id}"), "treating", None, None).await;
    assert!(page.body.contains("Open risk flags"));
    assert!(page.body.contains("Latest scores"));
    let page = send(
        &f,
        "GET",
        &format!("/clients/{id}/formulation"),
        "treating",
        None,
        None,
    )
    .await;
    assert!(page.body.contains("Enjoy Sunday football again"));
    assert!(page.body.contains("Perpetuating"));
    let page = send(
        &f,
        "GET",
        &format!("/clients/{id}/review"),
        "treating",
        None,
        None,
    )
    .await;
    assert!(page.body.contains("Techniques used: T06"));
    let mine = send(&f, "GET", "/me/plan", "client_a", None, None).await;
    assert_eq!(mine.status, 200);
    assert!(mine.body.contains("What it is for"));
    let progress = send(&f, "GET", "/me/progress", "client_a", None, None).await;
    assert_eq!(progress.status, 200);
    assert!(
        progress.body.contains("your mood scores") || progress.body.contains("Your mood scores")
    );
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formulation_and_plan_text_is_sealed_at_rest() {
    let f = fixture().await;
    let id = f.client_a.id;
    let canary = format!("CANARY{}", uuid::Uuid::new_v4().simple());
    let body = format!(
        r#"{{"formulation":{{"age":41,"presenting_problems":["generalized-anxiety"],"goals":["{canary} goal"],"five_ps":{{"perpetuating":["{canary} worry"]}}}}}}"#
    );
    assert_eq!(
        send(
            &f,
            "POST",
            &format!("/api/v1/clients/{id}/formulations"),
            "treating",
            Some(&body),
            None
        )
        .await
        .status,
        201
    );
    let p = send(
        &f,
        "POST",
        &format!("/api/v1/clients/{id}/plans"),
        "treating",
        Some("{}"),
        None,
    )
    .await;
    assert_eq!(p.status, 201);
    let summary = p.json()["plan"]["items"][0]["why"]["summary"]
        .as_str()
        .unwrap()
        .to_string();
    let reason = format!("{canary} accepted");
    let d = send(
        &f,
        "POST",
        &format!("/api/v1/clients/{id}/plans/1/decisions"),
        "treating",
        Some(&format!(
            r#"{{"action":"accept_plan","reason":"{reason}"}}"#
        )),
        None,
    )
    .await;
    assert_eq!(d.status, 201);
    for file in ["tapestry.db", "tapestry.db-wal"] {
        let bytes = std::fs::read(f.dir.path().join(file)).unwrap_or_default();
        assert!(!contains(&bytes, &canary), "canary in {file}");
        assert!(!contains(&bytes, &summary), "plan text in {file}");
        assert!(
            !contains(&bytes, "generalized-anxiety"),
            "problems in {file}"
        );
    }
    // ...and reads back whole through the API.
    let list = send(
        &f,
        "GET",
        &format!("/api/v1/clients/{id}/formulations"),
        "treating",
        None,
        None,
    )
    .await;
    assert!(list.body.contains(&canary));
}
