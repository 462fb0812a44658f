//! Conformance of the clinical record on SQLite and PostgreSQL: versioned,
//! sealed formulations and plans, session reviews, practice scoping, no lost
//! version under concurrent writers, bad input stores nothing.

use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::formulation::Formulation;
use tapestry_domain::ids::*;
use tapestry_domain::knowledge::Knowledge;
use tapestry_domain::plan::{generate, Case, Decision};
use tapestry_domain::practice::Practice;
use tapestry_domain::user::{Role, User};
use tapestry_store::{
    NewFormulation, NewPlanVersion, NewSessionReview, PlanOrigin, PlanStatus, ReviewContent, Store,
    StoreError,
};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    formulations_are_versioned_and_scoped_by_practice,
    concurrent_formulation_versions_are_all_kept,
    bad_formulation_input_stores_nothing,
    plan_versions_keep_status_origin_and_reasons,
    session_reviews_round_trip,
);

struct World {
    practice: Practice,
    other: Practice,
    clinician: User,
    client: Client,
}

async fn world(s: &Arc<dyn Store>) -> World {
    let practice = Practice::new("Riverside", "Europe/London", t0()).unwrap();
    let other = Practice::new("Hillside", "America/Toronto", t0()).unwrap();
    s.insert_practice(&practice).await.unwrap();
    s.insert_practice(&other).await.unwrap();
    let clinician = User::new(
        practice.id,
        "dr.ng@riverside.example",
        "Dr Ng",
        Role::Clinician,
        t0(),
    )
    .unwrap();
    s.insert_user(&clinician, None).await.unwrap();
    let client = Client::new(practice.id, "Sam Client", None, Some("GB"), t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    World {
        practice,
        other,
        clinician,
        client,
    }
}

fn formulation() -> Formulation {
    let mut f = Formulation::new(34, vec!["depression".into(), "insomnia".into()]);
    f.goals = vec!["Get back to playing football on Sundays".into()];
    f.five_ps.precipitating = vec!["Redundancy in March".into()];
    f
}

async fn formulations_are_versioned_and_scoped_by_practice(s: Arc<dyn Store>) {
    let w = world(&s).await;
    let f = formulation();
    let first = s
        .insert_formulation(&NewFormulation {
            practice_id: w.practice.id,
            client_id: w.client.id,
            formulation: &f,
            reason: "initial formulation",
            author: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!(first.version, 1);
    let mut g = f.clone();
    g.goals.push("Sleep through most nights".into());
    let second = s
        .insert_formulation(&NewFormulation {
            practice_id: w.practice.id,
            client_id: w.client.id,
            formulation: &g,
            reason: "  sleep goal added at session 3 ",
            author: w.clinician.id,
            at: t0() + Duration::days(14),
        })
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    assert_eq!(second.reason, "sleep goal added at session 3");
    let all = s.formulations(w.practice.id, w.client.id).await.unwrap();
    assert_eq!(all.iter().map(|v| v.version).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(all[0].formulation, f, "version 1 is kept unchanged");
    assert_eq!(all[1].formulation, g);
    let latest = s
        .latest_formulation(w.practice.id, w.client.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 2);
    // Another practice sees nothing and cannot write to this client.
    assert!(s
        .formulations(w.other.id, w.client.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .latest_formulation(w.other.id, w.client.id)
        .await
        .unwrap()
        .is_none());
    let err = s
        .insert_formulation(&NewFormulation {
            practice_id: w.other.id,
            client_id: w.client.id,
            formulation: &f,
            reason: "cross-tenant write",
            author: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    assert_eq!(
        s.formulations(w.practice.id, w.client.id)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn concurrent_formulation_versions_are_all_kept(s: Arc<dyn Store>) {
    let w = Arc::new(world(&s).await);
    let mut handles = Vec::new();
    for i in 0..12 {
        let s = s.clone();
        let w = w.clone();
        handles.push(tokio::spawn(async move {
            let mut f = formulation();
            f.goals = vec![format!("goal written by writer {i}")];
            s.insert_formulation(&NewFormulation {
                practice_id: w.practice.id,
                client_id: w.client.id,
                formulation: &f,
                reason: &format!("writer {i}"),
                author: w.clinician.id,
                at: t0(),
            })
            .await
            .unwrap()
            .version
        }));
    }
    let mut versions = Vec::new();
    for h in handles {
        versions.push(h.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (1..=12).collect::<Vec<u32>>(),
        "no version lost or duplicated"
    );
    let all = s.formulations(w.practice.id, w.client.id).await.unwrap();
    assert_eq!(all.len(), 12);
    let mut reasons: Vec<String> = all.iter().map(|v| v.reason.clone()).collect();
    reasons.sort();
    reasons.dedup();
    assert_eq!(reasons.len(), 12, "every writer's version is stored");
}

async fn bad_formulation_input_stores_nothing(s: Arc<dyn Store>) {
    let w = world(&s).await;
    let f = formulation();
    for reason in ["", "   ", &"x".repeat(5000)] {
        let err = s
            .insert_formulation(&NewFormulation {
                practice_id: w.practice.id,
                client_id: w.client.id,
                formulation: &f,
                reason,
                author: w.clinician.id,
                at: t0(),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict(m) if m.starts_with("reason")));
    }
    // An unknown client (random id) is not found.
    let err = s
        .insert_formulation(&NewFormulation {
            practice_id: w.practice.id,
            client_id: ClientId::random(),
            formulation: &f,
            reason: "initial",
            author: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)));
    assert!(s
        .formulations(w.practice.id, w.client.id)
        .await
        .unwrap()
        .is_empty());
    // A plan decision without a reason stores nothing either.
    let k = Knowledge::embedded().unwrap();
    let plan = generate(
        &k,
        &Case {
            formulation: f,
            measures: Default::default(),
            history: Vec::new(),
        },
    );
    let origin = PlanOrigin::ItemDecision {
        decision: Decision::Accept { code: "T01".into() },
        reason: " ".into(),
    };
    let err = s
        .insert_plan_version(&NewPlanVersion {
            practice_id: w.practice.id,
            client_id: w.client.id,
            plan: &plan,
            formulation_version: None,
            engine_version: "test",
            status: PlanStatus::Draft,
            origin: &origin,
            created_by: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)));
    assert!(s
        .plan_versions(w.practice.id, w.client.id)
        .await
        .unwrap()
        .is_empty());
}

async fn plan_versions_keep_status_origin_and_reasons(s: Arc<dyn Store>) {
    let w = world(&s).await;
    let k = Knowledge::embedded().unwrap();
    let plan = generate(
        &k,
        &Case {
            formulation: formulation(),
            measures: Default::default(),
            history: Vec::new(),
        },
    );
    assert!(!plan.items.is_empty());
    let first = s
        .insert_plan_version(&NewPlanVersion {
            practice_id: w.practice.id,
            client_id: w.client.id,
            plan: &plan,
            formulation_version: Some(1),
            engine_version: "plan-engine/1",
            status: PlanStatus::Draft,
            origin: &PlanOrigin::Generated,
            created_by: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap();
    assert_eq!((first.version, first.plan.version), (1, 1));
    let accepted = PlanOrigin::AcceptedPlan {
        reason: "Discussed with the client; agreed".into(),
    };
    let second = s
        .insert_plan_version(&NewPlanVersion {
            practice_id: w.practice.id,
            client_id: w.client.id,
            plan: &first.plan,
            formulation_version: Some(1),
            engine_version: "plan-engine/1",
            status: PlanStatus::Accepted,
            origin: &accepted,
            created_by: w.clinician.id,
            at: t0() + Duration::minutes(5),
        })
        .await
        .unwrap();
    assert_eq!(second.version, 2);
    let all = s.plan_versions(w.practice.id, w.client.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, PlanStatus::Draft);
    assert_eq!(all[1].status, PlanStatus::Accepted);
    assert_eq!(all[1].origin, accepted);
    assert_eq!(all[0].plan.items, plan.items);
    let one = s
        .plan_version(w.practice.id, w.client.id, 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(one.formulation_version, Some(1));
    assert!(s
        .plan_version(w.practice.id, w.client.id, 3)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .plan_version(w.other.id, w.client.id, 1)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.latest_plan(w.practice.id, w.client.id)
            .await
            .unwrap()
            .unwrap()
            .version,
        2
    );
}

async fn session_reviews_round_trip(s: Arc<dyn Store>) {
    let w = world(&s).await;
    let k = Knowledge::embedded().unwrap();
    let review = tapestry_domain::adapt::review(
        &k,
        &Case {
            formulation: formulation(),
            measures: Default::default(),
            history: Vec::new(),
        },
        None,
    );
    let content = ReviewContent {
        techniques: vec!["T06".into()],
        review,
    };
    let stored = s
        .insert_session_review(&NewSessionReview {
            practice_id: w.practice.id,
            client_id: w.client.id,
            plan_version: None,
            content: &content,
            created_by: w.clinician.id,
            at: t0(),
        })
        .await
        .unwrap();
    let all = s.session_reviews(w.practice.id, w.client.id).await.unwrap();
    assert_eq!(all, vec![stored]);
    assert!(s
        .session_reviews(w.other.id, w.client.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .insert_session_review(&NewSessionReview {
            practice_id: w.other.id,
            client_id: w.client.id,
            plan_version: None,
            content: &content,
            created_by: w.clinician.id,
            at: t0(),
        })
        .await
        .is_err());
}
