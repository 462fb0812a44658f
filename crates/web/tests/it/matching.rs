//! Matching through the real router: profiles (bad ones are 422 naming the
//! field), an explained instant match that leaves out an expired licence,
//! the client's choice (care relationship and primary clinician), a switch
//! that must say why, batch runs, and a waitlist with a risk flag first.

use crate::fixture::*;
use crate::matrix_matching::PROFILE_BODY;
use chrono::Duration;
use tapestry_domain::care::CareRole;
use tapestry_domain::episode::{Episode, EpisodeStatus};
use tapestry_domain::ingest::IngestRequest;
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::measure_schedule::{MeasureSchedule, ScheduleRule};
use tapestry_domain::scoring::Answers;
use tapestry_store::IngestSettings;
use tapestry_web::matching::watch_waitlist;

/// Treating clinician: England, English and Spanish, trauma and anxiety.
const SPANISH_PROFILE: &str = r#"{"licences":[{"jurisdiction":"GB-ENG","number":"HCPC-7","expires_on":"2030-01-01"}],"languages":["en","es"],"formats":["video"],"populations":["adults"],"specialties":["trauma","anxiety"],"approaches":["emdr"],"caseload_limit":10,"new_clients_per_week":3,"availability":{"utc_offset_minutes":0,"intervals":[{"day":1,"start_minute":540,"end_minute":1020}]},"accepts_risk":true}"#;
/// Non-treating clinician: the same, but the licence expired before the
/// fixture's day (2026-03-02).
const EXPIRED_PROFILE: &str = r#"{"licences":[{"jurisdiction":"GB-ENG","number":"HCPC-8","expires_on":"2026-03-01"}],"languages":["en","es"],"formats":["video"],"populations":["adults"],"specialties":["trauma","anxiety"],"caseload_limit":10,"new_clients_per_week":3,"availability":{"utc_offset_minutes":0,"intervals":[]},"accepts_risk":true}"#;

const SPANISH_REQUEST: &str = r#"{"jurisdiction":"GB-ENG","languages":["es"],"format":"video","population":"adults","elevated_domains":["trauma","anxiety"],"preferences":{"approaches":["emdr","dbt"]}}"#;

async fn post(f: &Fixture, role: &str, path: &str, body: &str) -> Answer_ {
    call(&f.state, "POST", path, f.login(role), Some(body)).await
}

/// `role` saves the Spanish-speaking trauma profile as their own (200).
async fn spanish_profile(f: &Fixture, role: &str) {
    let a = post(f, role, "/api/v1/me/matching-profile", SPANISH_PROFILE).await;
    assert_eq!(a.status, 200, "{role}: {}", a.body);
}

/// `client`'s answers `values` to `instrument` in `episode`, submitted `at`.
fn answered(
    f: &Fixture,
    client: &tapestry_domain::client::Client,
    episode: &Episode,
    instrument: &str,
    values: &[i32],
    at: chrono::DateTime<chrono::Utc>,
) -> IngestRequest {
    IngestRequest {
        practice_id: f.practice.id,
        client_id: client.id,
        episode_id: episode.id,
        instrument: instrument.into(),
        answers: Answers::from_values(values),
        idempotency_key: None,
        submitted_at: at,
    }
}

/// Runs `requests` through the submission pipeline in one commit.
async fn ingest(f: &Fixture, requests: &[IngestRequest]) -> Vec<tapestry_store::IngestResult> {
    let registry = InstrumentRegistry::embedded().unwrap();
    f.store
        .ingest(&registry, &IngestSettings::default(), requests)
        .await
        .unwrap()
}

/// The intake waitlist page as the practice admin sees it.
async fn waitlist_page(f: &Fixture) -> Answer_ {
    call(
        &f.state,
        "GET",
        "/practice/waitlist",
        f.login("practice_admin"),
        None,
    )
    .await
}

/// Opens an episode for each client, joined at the given time, and moves it
/// from referral onto the waitlist; returns them in order.
async fn waiting(
    f: &Fixture,
    clients: &[(
        &tapestry_domain::client::Client,
        chrono::DateTime<chrono::Utc>,
    )],
) -> Vec<Episode> {
    let mut episodes = Vec::new();
    for &(client, joined) in clients {
        let e = Episode::open(f.practice.id, client.id, joined);
        f.store.insert_episode(&e).await.unwrap();
        f.store
            .move_episode(
                f.practice.id,
                e.id,
                EpisodeStatus::Referral,
                EpisodeStatus::Waitlist,
                joined,
            )
            .await
            .unwrap();
        episodes.push(e);
    }
    episodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_profiles_and_impossible_requests_are_422_naming_the_field() {
    let f = fixture().await;
    let cases = [
        (
            PROFILE_BODY.replace("GB-ENG", "XX-ZZ"),
            "licences[0].jurisdiction",
        ),
        (
            PROFILE_BODY.replace(r#""caseload_limit":10"#, r#""caseload_limit":-1"#),
            "capacity.caseload_limit",
        ),
        (
            PROFILE_BODY.replace(
                r#""intervals":[{"day":0,"start_minute":540,"end_minute":1020}]"#,
                r#""intervals":[{"day":0,"start_minute":540,"end_minute":1020},{"day":0,"start_minute":600,"end_minute":700}]"#,
            ),
            "availability",
        ),
        (PROFILE_BODY.replace(r#""en""#, r#""English""#), "languages[0]"),
        // Mass assignment: measured outcomes cannot be typed in.
        (
            PROFILE_BODY.replace(r#""accepts_risk":true"#, r#""accepts_risk":true,"outcomes":[]"#),
            "outcomes",
        ),
    ];
    for (body, field) in cases {
        let a = post(&f, "treating", "/api/v1/me/matching-profile", &body).await;
        assert_eq!(a.status, 422, "{field}: {}", a.body);
        assert!(a.body.contains(field), "{field} not named in {}", a.body);
    }
    // Nothing was stored.
    let a = call(
        &f.state,
        "GET",
        "/api/v1/me/matching-profile",
        f.login("treating"),
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains(r#""profile":null"#), "{}", a.body);
    // Impossible requests.
    let path = format!("/api/v1/clients/{}/match", f.client_b.id);
    for (body, field) in [
        (SPANISH_REQUEST.replace("GB-ENG", "XX-ZZ"), "jurisdiction"),
        (SPANISH_REQUEST.replace(r#"["es"]"#, "[]"), "languages"),
        // An unknown value: serde's message names the value, not the field.
        (
            SPANISH_REQUEST.replace(r#""video""#, r#""carrier_pigeon""#),
            "carrier_pigeon",
        ),
    ] {
        let a = post(&f, "practice_admin", &path, &body).await;
        assert_eq!(a.status, 422, "{field}: {}", a.body);
        assert!(a.body.contains(field), "{field} not named in {}", a.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explained_match_leaves_out_the_expired_licence_and_the_client_chooses() {
    let f = fixture().await;
    spanish_profile(&f, "treating").await;
    let a = post(
        &f,
        "non_treating",
        "/api/v1/me/matching-profile",
        EXPIRED_PROFILE,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);

    let path = format!("/api/v1/clients/{}/match", f.client_b.id);
    let a = post(&f, "practice_admin", &path, SPANISH_REQUEST).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let result: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let choices = result["choices"].as_array().unwrap();
    // The expired licence is a hard stop: only the treating clinician.
    assert_eq!(choices.len(), 1, "{}", a.body);
    assert_eq!(choices[0]["display_name"], "treating");
    let reasons: Vec<&str> = choices[0]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    for want in ["licensed in England", "speaks Spanish", "works with trauma"] {
        assert!(reasons.contains(&want), "{want} missing from {reasons:?}");
    }
    let unmet = choices[0]["unmet"].to_string();
    assert!(unmet.contains("DBT"), "{unmet}");
    assert!(
        result["unmet"].to_string().contains("only 1"),
        "{}",
        result["unmet"]
    );

    // The request (elevated domains, risk) is sealed at rest.
    let raw: Vec<String> = sqlx::query_scalar("SELECT request FROM match_requests")
        .fetch_all(f.sqlite().pool())
        .await
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert!(
        !raw[0].contains("trauma") && !raw[0].contains("GB-ENG"),
        "{}",
        raw[0]
    );

    // The client sees the same explained choice in the browser.
    let page = call(&f.state, "GET", "/me/match", f.login("client_b"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("speaks Spanish"), "{}", page.body);
    assert!(page.body.contains("/api/v1/me/match/choice"));

    // A clinician who is not among the choices cannot be chosen.
    let non = f.user("non_treating").id;
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &format!(r#"{{"clinician":"{non}"}}"#),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("clinician"));

    // The choice: care relationship and primary clinician.
    let episode = Episode::open(f.practice.id, f.client_b.id, t0());
    f.store.insert_episode(&episode).await.unwrap();
    let treating = f.user("treating").id;
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &format!(r#"{{"clinician":"{treating}"}}"#),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let current = f
        .store
        .current_match(f.practice.id, f.client_b.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.clinician, treating);
    assert!(current.reasons.iter().any(|r| r == "speaks Spanish"));
    let care = f
        .store
        .care_for_client(f.practice.id, f.client_b.id)
        .await
        .unwrap();
    assert!(care
        .iter()
        .any(|c| c.clinician == treating && c.role == CareRole::Treating && c.ended_at.is_none()));
    let ep = f
        .store
        .episode(f.practice.id, episode.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ep.primary_clinician, Some(treating));
    // The treating clinician now sees one place taken.
    let a = call(
        &f.state,
        "GET",
        "/api/v1/me/matching-profile",
        f.login("treating"),
        None,
    )
    .await;
    assert!(a.body.contains(r#""current_load":1"#), "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_is_free_but_asks_why() {
    let f = fixture().await;
    for who in ["treating", "owner"] {
        spanish_profile(&f, who).await;
    }
    let path = format!("/api/v1/clients/{}/match", f.client_b.id);
    assert_eq!(post(&f, "owner", &path, SPANISH_REQUEST).await.status, 200);
    let (first, second) = (f.user("treating").id, f.user("owner").id);
    let choose = |id: String| format!(r#"{{"clinician":"{id}"}}"#);
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &choose(first.to_string()),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    // Without a reason: 422 naming `reason`, nothing changes.
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &choose(second.to_string()),
    )
    .await;
    assert_eq!(a.status, 422, "{}", a.body);
    assert!(a.body.contains("reason"));
    let now = f
        .store
        .current_match(f.practice.id, f.client_b.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.clinician, first);
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &format!(r#"{{"clinician":"{second}","reason":"I would prefer someone else"}}"#),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let history = f
        .store
        .matches_for_client(f.practice.id, f.client_b.id)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].clinician, second);
    assert_eq!(
        history[1].end_reason.as_deref(),
        Some("I would prefer someone else")
    );
    let care = f
        .store
        .care_for_client(f.practice.id, f.client_b.id)
        .await
        .unwrap();
    let current: Vec<_> = care
        .iter()
        .filter(|c| c.ended_at.is_none() && c.role == CareRole::Treating)
        .collect();
    assert_eq!(current.len(), 1, "{care:?}");
    assert_eq!(current[0].clinician, second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_run_assigns_within_capacity_and_explains_each_line() {
    let f = fixture().await;
    // One place only.
    let one_place =
        SPANISH_PROFILE.replace(r#""new_clients_per_week":3"#, r#""new_clients_per_week":1"#);
    assert_eq!(
        post(&f, "treating", "/api/v1/me/matching-profile", &one_place)
            .await
            .status,
        200
    );
    for c in [&f.client_a, &f.client_b] {
        let path = format!("/api/v1/clients/{}/match", c.id);
        assert_eq!(post(&f, "owner", &path, SPANISH_REQUEST).await.status, 200);
    }
    let a = post(&f, "practice_admin", "/api/v1/practice/match-runs", "{}").await;
    assert_eq!(a.status, 201, "{}", a.body);
    let run: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(run["clients"], 2);
    assert_eq!(run["assigned"], 1);
    let lines = run["assignments"].as_array().unwrap();
    let placed: Vec<_> = lines.iter().filter(|l| !l["clinician"].is_null()).collect();
    assert_eq!(placed.len(), 1);
    assert!(placed[0]["reasons"].to_string().contains("speaks Spanish"));
    let waiting: Vec<_> = lines.iter().filter(|l| l["clinician"].is_null()).collect();
    assert!(
        waiting[0]["reasons"].to_string().contains("free places"),
        "{}",
        waiting[0]
    );
    let runs = f.store.match_runs(f.practice.id, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].assigned, 1);
    // A second run has one waiting client and no free place: nobody placed.
    let a = post(&f, "practice_admin", "/api/v1/practice/match-runs", "{}").await;
    let run: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(
        (run["clients"].as_i64(), run["assigned"].as_i64()),
        (Some(1), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_waitlist_puts_a_risk_flag_first_and_alerts_the_intake_team() {
    let f = fixture().await;
    // Client B has waited longer; client A answers PHQ-9 item 9 (risk).
    let episodes = waiting(
        &f,
        &[
            (&f.client_b, t0() - Duration::days(30)),
            (&f.client_a, t0() - Duration::days(3)),
        ],
    )
    .await;
    let page = waitlist_page(&f).await;
    assert_eq!(page.status, 200);
    let b = page.body.find("Client Beta").unwrap();
    let a = page.body.find("Client Alpha").unwrap();
    assert!(b < a, "longest wait first without risk");
    ingest(
        &f,
        &[answered(
            &f,
            &f.client_a,
            &episodes[1],
            "phq9",
            &[2, 2, 2, 2, 1, 1, 1, 1, 2],
            t0(),
        )],
    )
    .await
    .remove(0)
    .unwrap();
    let page = waitlist_page(&f).await;
    assert_eq!(page.status, 200);
    let b = page.body.find("Client Beta").unwrap();
    let a = page.body.find("Client Alpha").unwrap();
    assert!(a < b, "the open risk signal comes first");
    assert!(page.body.contains("open risk signal"), "{}", page.body);
    // Opening the page raises nothing: the worker's waitlist watch does.
    for who in ["practice_admin", "owner"] {
        let alerts = f
            .store
            .alerts_for(f.practice.id, f.user(who).id)
            .await
            .unwrap();
        assert!(alerts.is_empty(), "{who}: {alerts:?}");
    }
    // The intake team (admin and owner) is alerted once, however often the
    // watch runs.
    for run in 0..2 {
        let report = watch_waitlist(&*f.store, f.practice.id, t0())
            .await
            .unwrap();
        assert_eq!(report.alerts_raised, if run == 0 { 2 } else { 0 });
    }
    for who in ["practice_admin", "owner"] {
        let alerts = f
            .store
            .alerts_for(f.practice.id, f.user(who).id)
            .await
            .unwrap();
        let risk: Vec<_> = alerts
            .iter()
            .filter(|a| a.kind == "waitlist_risk")
            .collect();
        assert_eq!(risk.len(), 1, "{who}");
        assert_eq!(risk[0].object_id, Some(f.client_a.id.as_uuid()));
    }
    let clinician_alerts = f
        .store
        .alerts_for(f.practice.id, f.user("treating").id)
        .await
        .unwrap();
    assert!(clinician_alerts.iter().all(|a| a.kind != "waitlist_risk"));
}

/// Measured outcomes come from the practice's own discharged episodes
/// (PHQ-9 first and last totals → depression), with n and a Wilson
/// interval; 14 episodes are not rated, 15 are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measured_outcomes_come_from_finished_episodes_and_are_rated_from_15() {
    let f = fixture().await;
    let treating = f.user("treating").id;
    assert_eq!(
        post(
            &f,
            "treating",
            "/api/v1/me/matching-profile",
            SPANISH_PROFILE
        )
        .await
        .status,
        200
    );
    let page = |f: &Fixture| {
        let state = f.state.clone();
        let login = f.login("treating").map(|l| Login {
            cookie: l.cookie.clone(),
            csrf: l.csrf.clone(),
        });
        async move {
            call(&state, "GET", "/me/matching-profile", login.as_ref(), None)
                .await
                .body
        }
    };
    assert!(page(&f).await.contains("No finished episodes"));
    for n in 1..=15 {
        let client = tapestry_domain::client::Client::new(
            f.practice.id,
            &format!("Past {n}"),
            None,
            None,
            t0(),
        )
        .unwrap();
        f.store.insert_client(&client).await.unwrap();
        let e = Episode::open(f.practice.id, client.id, t0() - Duration::days(120));
        f.store.insert_episode(&e).await.unwrap();
        f.store
            .move_episode(
                f.practice.id,
                e.id,
                EpisodeStatus::Referral,
                EpisodeStatus::Active,
                t0() - Duration::days(119),
            )
            .await
            .unwrap();
        f.store
            .set_primary_clinician(f.practice.id, e.id, treating)
            .await
            .unwrap();
        // 12 of 15 improve from 18 to 4 (reliable: ≥ 6 points); 3 stay at 18.
        let last: [i32; 9] = if n <= 12 {
            [1, 1, 1, 1, 0, 0, 0, 0, 0]
        } else {
            [2; 9]
        };
        for (k, values) in [[2i32; 9], last].iter().enumerate() {
            ingest(
                &f,
                &[answered(
                    &f,
                    &client,
                    &e,
                    "phq9",
                    values,
                    t0() - Duration::days(100 - 50 * k as i64),
                )],
            )
            .await
            .remove(0)
            .unwrap();
        }
        f.store
            .move_episode(
                f.practice.id,
                e.id,
                EpisodeStatus::Active,
                EpisodeStatus::Discharged,
                t0() - Duration::days(10),
            )
            .await
            .unwrap();
        let body = page(&f).await;
        if n == 14 {
            assert!(
                body.contains("depression: 12 of 14 reliably improved"),
                "{body}"
            );
            assert!(body.contains("not rated (fewer than 15"), "{body}");
        }
        if n == 15 {
            // 12 of 15 = 80 %; the only rated clinician is compared with the
            // practice's pooled rate (their own), so neutral.
            assert!(
                body.contains("depression: 12 of 15 reliably improved (80%, 95% CI 55–93%)"),
                "{body}"
            );
            assert!(body.contains("rating: neutral"), "{body}");
        }
    }
    // A formulation whose primary problem is PTSD moves that client's episode
    // from depression (its instrument) to trauma (its presenting problem); it
    // is still judged on PHQ-9, the only measure it has. Each episode counts once.
    let past1 = f
        .store
        .clients_in_practice(f.practice.id)
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.display_name == "Past 1")
        .unwrap();
    let formulation =
        tapestry_domain::formulation::Formulation::new(34, vec!["ptsd".into(), "insomnia".into()]);
    f.store
        .insert_formulation(&tapestry_store::NewFormulation {
            practice_id: f.practice.id,
            client_id: past1.id,
            formulation: &formulation,
            reason: "first formulation",
            author: treating,
            at: t0() - Duration::days(115),
        })
        .await
        .unwrap();
    let body = page(&f).await;
    assert!(
        body.contains("depression: 11 of 14 reliably improved"),
        "{body}"
    );
    assert!(body.contains("trauma: 1 of 1 reliably improved"), "{body}");
}

/// Early low session feedback with the current clinician: the intake team sees
/// the suggestion on the waitlist page, the clinician and the team are alerted
/// once, and the client's page offers the free switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_low_session_feedback_suggests_a_rematch() {
    let f = fixture().await;
    for who in ["treating", "owner"] {
        spanish_profile(&f, who).await;
    }
    let path = format!("/api/v1/clients/{}/match", f.client_b.id);
    assert_eq!(post(&f, "owner", &path, SPANISH_REQUEST).await.status, 200);
    let treating = f.user("treating").id;
    let a = post(
        &f,
        "client_b",
        "/api/v1/me/match/choice",
        &format!(r#"{{"clinician":"{treating}"}}"#),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    let get = |role: &'static str, path: &'static str| {
        let state = f.state.clone();
        let login = f.login(role).map(|l| Login {
            cookie: l.cookie.clone(),
            csrf: l.csrf.clone(),
        });
        async move { call(&state, "GET", path, login.as_ref(), None).await.body }
    };
    let episode = Episode::open(f.practice.id, f.client_b.id, t0());
    f.store.insert_episode(&episode).await.unwrap();
    let feedback = |values: [i32; 4], day: i64| {
        answered(
            &f,
            &f.client_b,
            &episode,
            "session_feedback",
            &values,
            t0() + Duration::days(day),
        )
    };
    // Session 1: 7 of 16 (low). One low form is not enough.
    ingest(&f, &[feedback([2, 2, 2, 1], 1)]).await;
    let waitlist = get("owner", "/practice/waitlist").await;
    assert!(
        waitlist.contains("No early feedback suggests a re-match"),
        "{waitlist}"
    );
    // Session 2: 14 (fine); session 3: 9 (low) → 2 of the first 3 are low.
    ingest(&f, &[feedback([4, 4, 3, 3], 8), feedback([3, 2, 2, 2], 15)]).await;
    for _ in 0..2 {
        let waitlist = get("owner", "/practice/waitlist").await;
        assert!(
            waitlist.contains(
                "2 of the first 3 session-feedback forms with this clinician scored below 12 of 16 (7, 9)"
            ),
            "{waitlist}"
        );
    }
    // Opening the page raised nothing; the watch (run twice) alerts once each:
    // the clinician and the owner.
    let owner_alerts = f
        .store
        .alerts_for(f.practice.id, f.user("owner").id)
        .await
        .unwrap();
    assert!(owner_alerts.is_empty(), "{owner_alerts:?}");
    for _ in 0..2 {
        watch_waitlist(&*f.store, f.practice.id, t0() + Duration::days(16))
            .await
            .unwrap();
    }
    for who in ["treating", "owner"] {
        let alerts = f
            .store
            .alerts_for(f.practice.id, f.user(who).id)
            .await
            .unwrap();
        let n = alerts
            .iter()
            .filter(|a| {
                a.kind == "rematch_suggested" && a.object_id == Some(f.client_b.id.as_uuid())
            })
            .count();
        assert_eq!(n, 1, "{who}: {alerts:?}");
    }
    let mine = get("client_b", "/me/match").await;
    assert!(mine.contains("may not be the right fit yet"), "{mine}");
    assert!(mine.contains("Switching is free"), "{mine}");
}

/// The waitlist that watches: run twice it raises nothing new; a reliably
/// deteriorating PHQ-9 (10 → 18, reliable change 6, no risk item) moves the
/// client ahead of a longer wait and alerts the intake team once; opening
/// the page changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deteriorating_waiting_client_moves_up_and_the_intake_team_is_alerted_once() {
    let f = fixture().await;
    let episodes = waiting(
        &f,
        &[
            (&f.client_b, t0() - Duration::days(30)),
            (&f.client_a, t0() - Duration::days(20)),
        ],
    )
    .await;
    let phq9 = |values: [i32; 9], at| answered(&f, &f.client_a, &episodes[1], "phq9", &values, at);
    // Client A's intake PHQ-9: 10, item 9 = 0.
    ingest(
        &f,
        &[phq9([2, 2, 1, 1, 1, 1, 1, 1, 0], t0() - Duration::days(19))],
    )
    .await;
    let team_alerts = |kind: &'static str| {
        let store = f.store.clone();
        let people = [f.user("practice_admin").id, f.user("owner").id];
        let practice = f.practice.id;
        async move {
            let mut n = 0;
            for who in people {
                n += store
                    .alerts_for(practice, who)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|a| a.kind == kind)
                    .count();
            }
            n
        }
    };
    for _ in 0..2 {
        let report = watch_waitlist(&*f.store, f.practice.id, t0())
            .await
            .unwrap();
        assert_eq!(report.alerts_raised, 0, "nothing to alert yet");
        // Both are due measures (B never answered; A's GAD-7 and re-screen).
        assert_eq!(report.measures_due.len(), 2);
    }
    let order = |body: &str| {
        (
            body.find("Client Alpha").unwrap(),
            body.find("Client Beta").unwrap(),
        )
    };
    let page = waitlist_page(&f).await;
    let (a, b) = order(&page.body);
    assert!(b < a, "longest wait first");
    // A deteriorating submission: 18, still no risk answer.
    ingest(&f, &[phq9([2, 2, 2, 2, 2, 2, 2, 2, 0], t0())]).await;
    assert_eq!(team_alerts("waitlist_deterioration").await, 0);
    let first = watch_waitlist(&*f.store, f.practice.id, t0())
        .await
        .unwrap();
    assert_eq!(first.alerts_raised, 2, "admin and owner");
    let second = watch_waitlist(&*f.store, f.practice.id, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(second.alerts_raised, 0, "raised once");
    assert_eq!(
        first.measures_due, second.measures_due,
        "no new reminder keys"
    );
    assert_eq!(team_alerts("waitlist_deterioration").await, 2);
    assert_eq!(team_alerts("waitlist_risk").await, 0);
    let page = waitlist_page(&f).await;
    let (a, b) = order(&page.body);
    assert!(a < b, "the deteriorating client moves up");
    assert!(
        page.body.contains("phq9 reliably worse while waiting"),
        "{}",
        page.body
    );
    assert_eq!(
        team_alerts("waitlist_deterioration").await,
        2,
        "the page raises nothing"
    );
}

/// With no elevated domains in the request, the match derives them from the
/// client's intake (the concern in their own words and the intake measures)
/// and says where each came from; domains the intake team names are marked so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elevated_domains_come_from_the_intake_when_the_team_names_none() {
    let f = fixture().await;
    assert_eq!(
        post(
            &f,
            "treating",
            "/api/v1/me/matching-profile",
            SPANISH_PROFILE
        )
        .await
        .status,
        200
    );
    let path = format!("/api/v1/clients/{}/match", f.client_a.id);
    let without = SPANISH_REQUEST.replace(r#""elevated_domains":["trauma","anxiety"],"#, "");
    // No intake at all: no elevated domains, and the match still works.
    let a = post(&f, "owner", &path, &without).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["elevated"], serde_json::json!([]));
    // The client's words name trauma; the intake GAD-7 of 15 is elevated.
    let mut draft = tapestry_domain::intake::IntakeDraft::default();
    draft
        .save_step(
            2,
            &[("concern".into(), "flashbacks since the accident".into())],
        )
        .unwrap();
    f.store
        .save_intake_draft(f.practice.id, f.client_a.id, &draft, t0())
        .await
        .unwrap();
    let e = Episode::open(f.practice.id, f.client_a.id, t0());
    f.store.insert_episode(&e).await.unwrap();
    ingest(
        &f,
        &[answered(
            &f,
            &f.client_a,
            &e,
            "gad7",
            &[3, 3, 2, 2, 2, 2, 1],
            t0(),
        )],
    )
    .await;
    let a = post(&f, "owner", &path, &without).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let elevated = v["elevated"].as_array().unwrap();
    assert_eq!(elevated.len(), 2, "{elevated:?}");
    assert_eq!(elevated[0]["domain"], "anxiety");
    assert_eq!(elevated[0]["source"]["kind"], "intake_measure");
    assert_eq!(elevated[0]["source"]["instrument"], "gad7");
    assert_eq!(
        elevated[0]["reason"],
        "gad7 intake score 15 is at or above 10 (of 21)"
    );
    assert_eq!(elevated[1]["domain"], "trauma");
    assert_eq!(elevated[1]["source"]["kind"], "client_words");
    // The treating clinician (trauma and anxiety) is explained as a fit.
    assert!(a.body.contains("anxiety"), "{}", a.body);
    // Named by the team: marked as such, the intake is not consulted.
    let a = post(&f, "owner", &path, SPANISH_REQUEST).await;
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let sources: Vec<&str> = v["elevated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["source"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(sources, vec!["intake_team", "intake_team"]);
}

/// The waitlist watch assigns the policy's measures and the client's own
/// safety check-in (never overwriting a clinician's schedule); the waiting
/// client sees the check-in due on /me/measures and answers it; a risk
/// answer raises the pipeline's risk flag and the intake team's alert and
/// one task at once, counts as the re-screen, and the waitlist page shows
/// why the client is first, their elevated domains from the intake and the
/// task, which closes only with a note. Bad input changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_clients_rescreen_with_a_risk_answer_alerts_the_intake_team_and_opens_one_task() {
    let f = fixture().await;
    let episodes = waiting(
        &f,
        &[
            (&f.client_a, t0() - Duration::days(3)),
            (&f.client_b, t0() - Duration::days(30)),
        ],
    )
    .await;
    // Client A's intake GAD-7 (15: anxiety from the measure).
    ingest(
        &f,
        &[answered(
            &f,
            &f.client_a,
            &episodes[0],
            "gad7",
            &[3, 3, 2, 2, 2, 2, 1],
            t0() - Duration::days(3),
        )],
    )
    .await;
    // A clinician already scheduled PHQ-9 weekly for client B: kept as it is.
    f.store
        .set_measure_schedule(&MeasureSchedule::new(
            f.practice.id,
            episodes[1].id,
            "phq9",
            ScheduleRule::EveryNDays { days: 7 },
            t0() - Duration::days(10),
        ))
        .await
        .unwrap();
    let first = watch_waitlist(&*f.store, f.practice.id, t0())
        .await
        .unwrap();
    assert_eq!(
        first.schedules_added,
        3 + 2,
        "A: three; B: GAD-7 and re-screen"
    );
    assert_eq!(first.tasks_opened, 0);
    let again = watch_waitlist(&*f.store, f.practice.id, t0() + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(again.schedules_added, 0, "idempotent");
    let b_phq9 = f
        .store
        .measure_schedules(f.practice.id, episodes[1].id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.instrument == "phq9")
        .unwrap();
    assert_eq!(b_phq9.rule, ScheduleRule::EveryNDays { days: 7 });
    // The client sees the safety check-in due in the portal.
    let measures = call(&f.state, "GET", "/me/measures", f.login("client_a"), None).await;
    assert_eq!(measures.status, 200);
    assert!(
        measures.body.contains("Waiting-list safety check-in"),
        "{}",
        measures.body
    );
    // Bad input: client B answering on client A's episode is not found and
    // stores nothing.
    let before = f.fingerprint().await;
    let path_a = format!(
        "/api/v1/clients/{}/episodes/{}/submissions",
        f.client_a.id, episodes[0].id
    );
    let path_b_on_a = format!(
        "/api/v1/clients/{}/episodes/{}/submissions",
        f.client_b.id, episodes[0].id
    );
    let risky = r#"{"instrument":"risk_rescreen","answers":[1,0,1]}"#;
    let wrong = post(&f, "client_b", &path_b_on_a, risky).await;
    assert_eq!(wrong.status, 404, "{}", wrong.body);
    // A malformed answer names the item; an out-of-range one too.
    let short = post(
        &f,
        "client_a",
        &path_a,
        r#"{"instrument":"risk_rescreen","answers":[1]}"#,
    )
    .await;
    assert_eq!(short.status, 422, "{}", short.body);
    assert!(short.body.contains("answers"), "{}", short.body);
    let out = post(
        &f,
        "client_a",
        &path_a,
        r#"{"instrument":"risk_rescreen","answers":[0,5,0]}"#,
    )
    .await;
    assert_eq!(out.status, 422, "{}", out.body);
    assert!(out.body.contains("item 2"), "{}", out.body);
    assert_eq!(before, f.fingerprint().await, "nothing stored");
    // Client A answers the check-in: thoughts once or a few times, unsure about safety.
    let done = post(&f, "client_a", &path_a, risky).await;
    assert_eq!(done.status, 201, "{}", done.body);
    let receipt: serde_json::Value = serde_json::from_str(&done.body).unwrap();
    assert_eq!(
        receipt["risk_flags"].as_array().unwrap().len(),
        2,
        "{receipt}"
    );
    // At once: the intake team's alert and one task, due immediately.
    for who in ["practice_admin", "owner"] {
        let alerts = f
            .store
            .alerts_for(f.practice.id, f.user(who).id)
            .await
            .unwrap();
        assert_eq!(
            alerts.iter().filter(|a| a.kind == "waitlist_risk").count(),
            1,
            "{who}"
        );
    }
    let intake: Vec<_> = f
        .store
        .open_tasks(f.practice.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.kind.is_intake_team())
        .collect();
    assert_eq!(intake.len(), 1);
    assert_eq!(
        intake[0].kind,
        tapestry_domain::ingest::TaskKind::WaitlistRisk
    );
    assert_eq!(intake[0].client_id, f.client_a.id);
    assert_eq!(intake[0].due_at, t0(), "due immediately");
    let flags = f.store.open_risk_flags(f.practice.id).await.unwrap();
    assert!(
        flags.iter().any(|fl| Some(fl.id) == intake[0].risk_flag_id),
        "the task names the risk flag it is about"
    );
    // The pipeline's risk review for the episode exists as for any answer.
    let reviews = f
        .store
        .tasks_for_episode(f.practice.id, episodes[0].id)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.kind == tapestry_domain::ingest::TaskKind::RiskReview)
        .count();
    assert_eq!(reviews, 2);
    // The watch run twice adds no task and no alert; the re-screen counts.
    for _ in 0..2 {
        let r = watch_waitlist(&*f.store, f.practice.id, t0() + Duration::hours(3))
            .await
            .unwrap();
        assert_eq!(
            (r.tasks_opened, r.alerts_raised, r.schedules_added),
            (0, 0, 0)
        );
    }
    let (queue, _) =
        tapestry_web::matching::waitlist_queue(&*f.store, f.practice.id, t0() + Duration::hours(3))
            .await
            .unwrap();
    assert_eq!(queue[0].client_id, f.client_a.id, "risk moves A up");
    assert!(
        !queue[0]
            .due
            .contains(&tapestry_domain::matching::waitlist::Due::RiskRescreen),
        "{:?}",
        queue[0].due
    );
    // The admin's task list and the waitlist page show it with its reasons.
    let mine = call(
        &f.state,
        "GET",
        "/api/v1/me/tasks",
        f.login("practice_admin"),
        None,
    )
    .await;
    assert!(mine.body.contains("waitlist_risk"), "{}", mine.body);
    let page = waitlist_page(&f).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(r#"<td class="order-reason">open risk signal</td>"#),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("gad7 intake score 15 is at or above 10"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("Waiting client: open risk signal (moderate)"),
        "{}",
        page.body
    );
    let close = format!("/api/v1/practice/waitlist/tasks/{}/close", intake[0].id);
    assert!(page.body.contains(&close), "{}", page.body);
    // Closing without a note, or by a clinician, changes nothing.
    let before = f.fingerprint().await;
    let empty = post(&f, "practice_admin", &close, r#"{"note":"   "}"#).await;
    assert_eq!(empty.status, 422);
    assert!(empty.body.contains("note"), "{}", empty.body);
    let missing = post(&f, "practice_admin", &close, r#"{}"#).await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    let clinician = post(&f, "treating", &close, r#"{"note":"called"}"#).await;
    assert_eq!(clinician.status, 403);
    let review = f
        .store
        .tasks_for_episode(f.practice.id, episodes[0].id)
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.kind == tapestry_domain::ingest::TaskKind::RiskReview)
        .unwrap();
    let not_intake = format!("/api/v1/practice/waitlist/tasks/{}/close", review.id);
    let wrong_kind = post(&f, "practice_admin", &not_intake, r#"{"note":"called"}"#).await;
    assert_eq!(
        wrong_kind.status, 404,
        "a clinician's task is not the intake team's"
    );
    assert_eq!(before, f.fingerprint().await);
    let closed = post(
        &f,
        "owner",
        &close,
        r#"{"note":"Called; assessment booked today"}"#,
    )
    .await;
    assert_eq!(closed.status, 200, "{}", closed.body);
    let twice = post(&f, "practice_admin", &close, r#"{"note":"again"}"#).await;
    assert_eq!(twice.status, 409, "{}", twice.body);
    let page = waitlist_page(&f).await;
    assert!(page.body.contains("No open intake tasks."), "{}", page.body);
}

/// The profile page as a browser without JavaScript uses it: the form comes
/// pre-filled with the stored profile (plus blank rows), a plain urlencoded
/// post changes it (303 back to the page), and a bad licence code in the
/// second row is a 422 page naming `licences[1].jurisdiction` that stores nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_page_form_is_prefilled_and_saves_without_javascript() {
    use crate::browser::{enrol_totp, set_password};
    use crate::forms::{see_other, serve, sign_in_clinician};
    use tapestry_domain::clock::Clock as _;

    let f = fixture().await;
    spanish_profile(&f, "treating").await;
    set_password(&f, f.user("treating")).await;
    let secret = enrol_totp(&f, f.user("treating")).await;
    let base = serve(&f).await;
    let mut clinician = sign_in_clinician(&f, &base, &secret).await;
    let page = "/me/matching-profile";
    let action = "/api/v1/me/matching-profile";

    // (a) Pre-filled with the stored profile; one stored licence + 2 blank rows,
    // one stored weekly interval + 3 blank rows; outcomes stay displayed.
    let shown = clinician.get(page).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    let html = &shown.body;
    assert!(html.contains("Edit your profile"), "{html}");
    assert!(html.contains("Measured outcomes"), "{html}");
    for expected in [
        r#"<option value="GB-ENG" selected>"#,
        r#"name="licences[0].number:opt" value="HCPC-7""#,
        r#"name="licences[0].expires_on:opt" value="2030-01-01""#,
        r#"name="licences[2].number:opt" value="""#,
        r#"name="languages:csv" value="en, es""#,
        r#"name="approaches:csv" value="emdr""#,
        r#"name="formats[]" value="video" checked"#,
        r#"name="specialties[]" value="trauma" checked"#,
        r#"name="specialties[]" value="anxiety" checked"#,
        r#"name="populations[]" value="adults" checked"#,
        r#"name="caseload_limit:number" value="10""#,
        r#"name="new_clients_per_week:number" value="3""#,
        r#"name="availability.utc_offset_minutes:number" value="0""#,
        r#"<option value="540" selected>"#,
        r#"<option value="1020" selected>"#,
        r#"name="availability.intervals[3].day:number""#,
    ] {
        assert!(html.contains(expected), "missing {expected}: {html}");
    }
    assert!(
        !html.contains(r#"name="licences[3]."#),
        "exactly two blank licence rows"
    );
    assert!(!html.contains(r#"name="populations[]" value="children" checked"#));
    assert!(
        !html.contains("current_load"),
        "current load is computed, not a field"
    );

    // (b) The form as posted by a browser: add French, raise the caseload.
    let fields = |jurisdiction_1: &'static str| -> Vec<(&'static str, &'static str)> {
        vec![
            ("licences[0].jurisdiction:opt", "GB-ENG"),
            ("licences[0].number:opt", "HCPC-7"),
            ("licences[0].expires_on:opt", "2030-01-01"),
            ("licences[1].jurisdiction:opt", jurisdiction_1),
            (
                "licences[1].number:opt",
                if jurisdiction_1.is_empty() { "" } else { "X-1" },
            ),
            (
                "licences[1].expires_on:opt",
                if jurisdiction_1.is_empty() {
                    ""
                } else {
                    "2031-01-01"
                },
            ),
            ("licences[2].jurisdiction:opt", ""),
            ("licences[2].number:opt", ""),
            ("licences[2].expires_on:opt", ""),
            ("languages:csv", "en, es, fr"),
            ("formats[]", ""),
            ("formats[]", "video"),
            ("approaches:csv", "emdr"),
            ("specialties[]", ""),
            ("specialties[]", "trauma"),
            ("specialties[]", "anxiety"),
            ("populations[]", ""),
            ("populations[]", "adults"),
            ("caseload_limit:number", "12"),
            ("new_clients_per_week:number", "3"),
            ("accepts_risk:bool", "false"),
            ("accepts_risk:bool", "true"),
            ("availability.utc_offset_minutes:number", "0"),
            ("availability.intervals[0].day:number", "1"),
            ("availability.intervals[0].start_minute:number", "540"),
            ("availability.intervals[0].end_minute:number", "1020"),
            ("availability.intervals[1].day:number", ""),
            ("availability.intervals[1].start_minute:number", ""),
            ("availability.intervals[1].end_minute:number", ""),
            ("identity.characteristics:csv", ""),
            ("identity.consent_to_show:bool", "false"),
        ]
    };
    let r = clinician.submit(page, action, &fields("")).await;
    see_other(&r, page);
    let stored = f
        .store
        .matching_profile(f.practice.id, f.user("treating").id, f.clock.now())
        .await
        .unwrap()
        .expect("the profile is stored");
    let p = &stored.profile;
    assert_eq!(p.languages, vec!["en", "es", "fr"]);
    assert_eq!(p.capacity.caseload_limit, 12);
    assert_eq!(p.licences.len(), 1, "blank licence rows add nothing");
    assert_eq!(
        p.availability.intervals.len(),
        1,
        "blank hours rows add nothing"
    );
    assert!(p.accepts_risk);

    // (c) An unknown jurisdiction in the second licence row: 422 naming the
    // field, nothing stored.
    let form = clinician.get(page).await;
    let token = form.csrf_for(action);
    let before = f.fingerprint().await;
    let mut bad = vec![("_csrf", token.as_str())];
    bad.extend(fields("XX-ZZ"));
    let r = clinician.post(page, action, &bad, &[]).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("licences[1].jurisdiction"), "{}", r.body);
    assert_eq!(
        f.fingerprint().await,
        before,
        "a refused profile stores nothing"
    );
}
