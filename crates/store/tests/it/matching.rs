#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Matching conformance: every case on SQLite and on PostgreSQL. The
//! headline case is the capacity test: 32 clients accept the same
//! clinician at once with 3 free places, and exactly 3 succeed.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::episode::Episode;
use tapestry_domain::ids::*;
use tapestry_domain::ingest::{ClinicianTask, IngestRequest, TaskKind};
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::matching::instant::{ClientRequest, MatchResult, Preferences};
use tapestry_domain::matching::profile::{
    Capacity, ClinicianProfile, Format, Licence, Population, ProblemDomain, WeeklyAvailability,
    WeeklyInterval,
};
use tapestry_domain::practice::Practice;
use tapestry_domain::risk::RiskColour;
use tapestry_domain::risk::RiskLevel;
use tapestry_domain::scoring::Answers;
use tapestry_domain::user::{Role, User};
use tapestry_store::{
    ClinicianMatch, IngestSettings, MatchOffer, MatchRun, MatchSource, Store, StoreError,
    StoredMatchRequest, StoredMatchingProfile, NO_FREE_PLACE, SWITCH_NEEDS_REASON,
    TASK_ALREADY_CLOSED, TASK_NOTE_REQUIRED,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 16, 9, 0, 0).unwrap()
}

conformance!(
    concurrent_acceptances_never_exceed_three_free_places,
    weekly_new_client_limit_is_enforced,
    profiles_round_trip_with_recomputed_load_and_stay_in_practice,
    switching_needs_a_reason_and_ends_the_current_match,
    requests_offers_and_runs_round_trip,
    waitlist_tasks_are_one_per_signal_and_close_with_a_note,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    clinician: User,
}

async fn fixture(s: &Arc<dyn Store>) -> Fixture {
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
    Fixture {
        practice,
        other,
        clinician,
    }
}

async fn new_client(s: &Arc<dyn Store>, f: &Fixture, n: usize) -> Client {
    let c = Client::new(
        f.practice.id,
        &format!("Client {n}"),
        None,
        Some("GB"),
        t0(),
    )
    .unwrap();
    s.insert_client(&c).await.unwrap();
    c
}

fn profile(caseload: i32, per_week: i32) -> ClinicianProfile {
    ClinicianProfile {
        id: ClinicianId::random(),
        display_name: "Dr Ng".into(),
        licences: vec![Licence {
            jurisdiction: "GB-ENG".into(),
            number: "HCPC-1".into(),
            expires_on: NaiveDate::from_ymd_opt(2030, 1, 1).unwrap(),
        }],
        languages: vec!["en".into()],
        formats: vec![Format::Video],
        approaches: vec!["cbt".into()],
        specialties: vec![ProblemDomain::Anxiety],
        populations: vec![Population::Adults],
        identity: None,
        capacity: Capacity {
            caseload_limit: caseload,
            current_load: 0,
            new_clients_per_week: per_week,
            new_clients_this_week: 0,
        },
        availability: WeeklyAvailability {
            utc_offset_minutes: 0,
            intervals: vec![WeeklyInterval {
                day: 0,
                start_minute: 540,
                end_minute: 1020,
            }],
        },
        accepts_risk: true,
        outcomes: vec![],
    }
}

async fn put_profile(s: &Arc<dyn Store>, f: &Fixture, caseload: i32, per_week: i32) {
    let p = profile(caseload, per_week);
    p.validate().unwrap();
    s.put_matching_profile(&StoredMatchingProfile {
        practice_id: f.practice.id,
        clinician: f.clinician.id,
        profile: p,
        updated_at: t0(),
    })
    .await
    .unwrap();
}

fn accepted(f: &Fixture, client: ClientId, at: DateTime<Utc>) -> ClinicianMatch {
    ClinicianMatch {
        id: uuid::Uuid::new_v4(),
        practice_id: f.practice.id,
        client_id: client,
        clinician: f.clinician.id,
        score: 12,
        reasons: vec!["licensed in England".into(), "works with anxiety".into()],
        source: MatchSource::Client,
        accepted_at: at,
        ended_at: None,
        end_reason: None,
    }
}

/// 10 current clients against a caseload of 13: 3 free places. 32 clients
/// accept at once; exactly 3 succeed, the other 29 are told there is no free
/// place, and the stored load is 13.
async fn concurrent_acceptances_never_exceed_three_free_places(s: Arc<dyn Store>) {
    let f = Arc::new(fixture(&s).await);
    put_profile(&s, &f, 13, 100).await;
    for n in 0..10 {
        let c = new_client(&s, &f, n).await;
        s.accept_match(&accepted(&f, c.id, t0()), t0(), None)
            .await
            .unwrap();
    }
    let mut clients = Vec::new();
    for n in 10..42 {
        clients.push(new_client(&s, &f, n).await);
    }
    let mut tasks = Vec::new();
    for c in clients {
        let (s, f) = (s.clone(), f.clone());
        tasks.push(tokio::spawn(async move {
            s.accept_match(&accepted(&f, c.id, t0() + Duration::hours(1)), t0(), None)
                .await
        }));
    }
    let (mut ok, mut full) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict(NO_FREE_PLACE)) => full += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!((ok, full), (3, 29));
    let stored = s
        .matching_profile(f.practice.id, f.clinician.id, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.profile.capacity.current_load, 13);
    assert_eq!(stored.profile.capacity.free_slots(), 0);
}

/// Plenty of caseload room, but 2 new clients a week: the third acceptance
/// in the week is refused; next week (a later `week_start`) it succeeds.
async fn weekly_new_client_limit_is_enforced(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    put_profile(&s, &f, 30, 2).await;
    let a = new_client(&s, &f, 1).await;
    let b = new_client(&s, &f, 2).await;
    let c = new_client(&s, &f, 3).await;
    s.accept_match(&accepted(&f, a.id, t0()), t0(), None)
        .await
        .unwrap();
    s.accept_match(&accepted(&f, b.id, t0()), t0(), None)
        .await
        .unwrap();
    let err = s
        .accept_match(&accepted(&f, c.id, t0()), t0(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(NO_FREE_PLACE)), "{err}");
    assert!(s
        .current_match(f.practice.id, c.id)
        .await
        .unwrap()
        .is_none());
    let next_week = t0() + Duration::days(7);
    s.accept_match(&accepted(&f, c.id, next_week), next_week, None)
        .await
        .unwrap();
}

async fn profiles_round_trip_with_recomputed_load_and_stay_in_practice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // No profile: accepting is refused as not found, nothing stored.
    let a = new_client(&s, &f, 1).await;
    let err = s
        .accept_match(&accepted(&f, a.id, t0()), t0(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
    put_profile(&s, &f, 5, 2).await;
    // Replacing is an upsert (one row).
    put_profile(&s, &f, 6, 2).await;
    s.accept_match(&accepted(&f, a.id, t0()), t0(), None)
        .await
        .unwrap();
    let all = s.matching_profiles(f.practice.id, t0()).await.unwrap();
    assert_eq!(all.len(), 1);
    let p = &all[0].profile;
    assert_eq!(p.capacity.caseload_limit, 6);
    assert_eq!(p.capacity.current_load, 1);
    assert_eq!(p.capacity.new_clients_this_week, 1);
    assert_eq!(p.licences[0].jurisdiction, "GB-ENG");
    // Another practice sees nothing.
    assert!(s
        .matching_profile(f.other.id, f.clinician.id, t0())
        .await
        .unwrap()
        .is_none());
    assert!(s
        .matching_profiles(f.other.id, t0())
        .await
        .unwrap()
        .is_empty());
    assert!(s.current_match(f.other.id, a.id).await.unwrap().is_none());
}

async fn switching_needs_a_reason_and_ends_the_current_match(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    put_profile(&s, &f, 10, 10).await;
    let a = new_client(&s, &f, 1).await;
    let first = accepted(&f, a.id, t0());
    s.accept_match(&first, t0(), None).await.unwrap();
    let second = accepted(&f, a.id, t0() + Duration::hours(2));
    for blank in [None, Some(""), Some("   ")] {
        let err = s.accept_match(&second, t0(), blank).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict(SWITCH_NEEDS_REASON)),
            "{err}"
        );
    }
    s.accept_match(&second, t0(), Some("we did not click"))
        .await
        .unwrap();
    let history = s.matches_for_client(f.practice.id, a.id).await.unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0].id, second.id);
    assert_eq!(history[1].end_reason.as_deref(), Some("we did not click"));
    assert!(history[1].ended_at.is_some());
    let current = s.current_match(f.practice.id, a.id).await.unwrap().unwrap();
    assert_eq!(current.id, second.id);
    assert_eq!(current.reasons, second.reasons);
    // The ended match frees its place: the load is 1, not 2.
    let p = s
        .matching_profile(f.practice.id, f.clinician.id, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.profile.capacity.current_load, 1);
}

async fn requests_offers_and_runs_round_trip(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let a = new_client(&s, &f, 1).await;
    let request = ClientRequest {
        jurisdiction: "GB-ENG".into(),
        languages: vec!["en".into()],
        format: Format::Video,
        population: Population::Adults,
        elevated_domains: vec![ProblemDomain::Anxiety, ProblemDomain::Depression],
        risk: RiskLevel::Low,
        urgent: false,
        preferences: Preferences::default(),
        date: NaiveDate::from_ymd_opt(2026, 11, 16).unwrap(),
    };
    let stored = StoredMatchRequest {
        practice_id: f.practice.id,
        client_id: a.id,
        request: request.clone(),
        created_at: t0(),
    };
    s.put_match_request(&stored).await.unwrap();
    s.put_match_request(&stored).await.unwrap();
    assert_eq!(
        s.match_request(f.practice.id, a.id).await.unwrap(),
        Some(stored)
    );
    assert!(s.match_request(f.other.id, a.id).await.unwrap().is_none());
    assert_eq!(s.match_requests(f.practice.id).await.unwrap().len(), 1);
    assert!(s.match_requests(f.other.id).await.unwrap().is_empty());
    assert!(s
        .latest_match_offer(f.practice.id, a.id)
        .await
        .unwrap()
        .is_none());
    for (i, unmet) in ["first", "second"].iter().enumerate() {
        let offer = MatchOffer {
            id: uuid::Uuid::new_v4(),
            practice_id: f.practice.id,
            client_id: a.id,
            result: MatchResult {
                choices: vec![],
                unmet: vec![unmet.to_string()],
                funnel: Default::default(),
                elevated: vec![],
            },
            created_at: t0() + Duration::minutes(i as i64),
        };
        s.insert_match_offer(&offer).await.unwrap();
    }
    let latest = s
        .latest_match_offer(f.practice.id, a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.result.unmet, vec!["second".to_string()]);
    assert!(s
        .latest_match_offer(f.other.id, a.id)
        .await
        .unwrap()
        .is_none());
    let run = MatchRun {
        id: uuid::Uuid::new_v4(),
        practice_id: f.practice.id,
        run_by: f.clinician.id,
        clients: 2,
        assigned: 1,
        total_score: 30,
        result: serde_json::json!([{"client": "a", "clinician": null, "reasons": ["no free place"]}]),
        created_at: t0(),
    };
    s.insert_match_run(&run).await.unwrap();
    assert_eq!(s.match_runs(f.practice.id, 10).await.unwrap(), vec![run]);
    assert!(s.match_runs(f.other.id, 10).await.unwrap().is_empty());
}

fn waitlist_task(
    f: &Fixture,
    client: &Client,
    episode: &Episode,
    kind: TaskKind,
    flag: Option<RecordId>,
) -> ClinicianTask {
    ClinicianTask {
        id: TaskId::random(),
        practice_id: f.practice.id,
        client_id: client.id,
        episode_id: episode.id,
        kind,
        risk_flag_id: flag,
        assignee: None,
        title: "Waiting client: open risk signal (moderate)".into(),
        detail: "Contact the client now.".into(),
        colour: RiskColour::Red,
        due_at: t0(),
        created_at: t0(),
        completed_at: None,
    }
}

/// A waiting client's risk answer (PHQ-9 item 9 = 1) through the submission
/// pipeline; returns the risk flag it raised.
async fn risk_answer(
    s: &Arc<dyn Store>,
    f: &Fixture,
    client: &Client,
    episode: &Episode,
    minutes: i64,
) -> RecordId {
    let registry = InstrumentRegistry::embedded().unwrap();
    let request = IngestRequest {
        practice_id: f.practice.id,
        client_id: client.id,
        episode_id: episode.id,
        instrument: "phq9".into(),
        answers: Answers::from_values(&[1, 1, 1, 1, 1, 1, 1, 1, 1]),
        idempotency_key: None,
        submitted_at: t0() + Duration::minutes(minutes),
    };
    let receipt = s
        .ingest(&registry, &IngestSettings::default(), &[request])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert_eq!(receipt.flags.len(), 1);
    receipt.flags[0]
}

async fn admin(s: &Arc<dyn Store>, practice: PracticeId, email: &str) -> User {
    let u = User::new(practice, email, "Intake", Role::PracticeAdmin, t0()).unwrap();
    s.insert_user(&u, None).await.unwrap();
    u
}

/// The waitlist watch's tasks: one per risk flag (which a risk task must
/// name) and one deterioration task per episode, however often (or
/// concurrently) the watch runs; closed only by an admin or owner with a note;
/// every refusal leaves the task as it was; a new risk answer after a closed
/// task is a new task.
async fn waitlist_tasks_are_one_per_signal_and_close_with_a_note(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let intake = admin(&s, f.practice.id, "intake@riverside.example").await;
    let elsewhere = admin(&s, f.other.id, "intake@hillside.example").await;
    let client = new_client(&s, &f, 1).await;
    let episode = Episode::open(f.practice.id, client.id, t0());
    s.insert_episode(&episode).await.unwrap();
    let flag = risk_answer(&s, &f, &client, &episode, 0).await;
    // A risk task names its flag.
    let unnamed = waitlist_task(&f, &client, &episode, TaskKind::WaitlistRisk, None);
    assert!(matches!(
        s.open_waitlist_task(&unnamed).await,
        Err(StoreError::Conflict(m)) if m.starts_with("risk_flag_id")
    ));
    let risk = waitlist_task(&f, &client, &episode, TaskKind::WaitlistRisk, Some(flag));
    assert!(s.open_waitlist_task(&risk).await.unwrap());
    // A rerun with a fresh id adds nothing; nor do 8 concurrent runs.
    let again = waitlist_task(&f, &client, &episode, TaskKind::WaitlistRisk, Some(flag));
    assert!(!s.open_waitlist_task(&again).await.unwrap());
    let mut runs = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        let t = waitlist_task(&f, &client, &episode, TaskKind::WaitlistRisk, Some(flag));
        runs.push(tokio::spawn(async move {
            s.open_waitlist_task(&t).await.unwrap()
        }));
    }
    for r in runs {
        assert!(!r.await.unwrap());
    }
    // The other kind is its own task, once per episode.
    let worse = waitlist_task(&f, &client, &episode, TaskKind::WaitlistDeterioration, None);
    assert!(s.open_waitlist_task(&worse).await.unwrap());
    let worse_again = waitlist_task(&f, &client, &episode, TaskKind::WaitlistDeterioration, None);
    assert!(!s.open_waitlist_task(&worse_again).await.unwrap());
    let waitlist_open = |tasks: Vec<ClinicianTask>| {
        tasks
            .into_iter()
            .filter(|t| t.kind.is_intake_team())
            .collect::<Vec<_>>()
    };
    let open = waitlist_open(s.open_tasks(f.practice.id).await.unwrap());
    assert_eq!(open.len(), 2);
    assert!(open.iter().any(|t| t.id == risk.id
        && t.kind == TaskKind::WaitlistRisk
        && t.risk_flag_id == Some(flag)));
    assert!(s.open_tasks(f.other.id).await.unwrap().is_empty());
    // A clinician's task kind is not opened here; another client's episode is not found.
    let clinical = waitlist_task(&f, &client, &episode, TaskKind::RiskReview, Some(flag));
    assert!(matches!(
        s.open_waitlist_task(&clinical).await,
        Err(StoreError::Conflict(_))
    ));
    let stranger = new_client(&s, &f, 2).await;
    let mut misplaced = waitlist_task(&f, &stranger, &episode, TaskKind::WaitlistRisk, Some(flag));
    misplaced.client_id = stranger.id;
    assert!(matches!(
        s.open_waitlist_task(&misplaced).await,
        Err(StoreError::NotFound(_))
    ));
    // A flag of another episode is not found.
    let stranger_episode = Episode::open(f.practice.id, stranger.id, t0());
    s.insert_episode(&stranger_episode).await.unwrap();
    let borrowed = waitlist_task(
        &f,
        &stranger,
        &stranger_episode,
        TaskKind::WaitlistRisk,
        Some(flag),
    );
    assert!(matches!(
        s.open_waitlist_task(&borrowed).await,
        Err(StoreError::NotFound(m)) if m.starts_with("risk_flag_id")
    ));
    // Refusals: empty note, another practice's admin, a clinician, unknown id.
    let at = t0() + Duration::hours(1);
    assert!(matches!(
        s.close_waitlist_task(f.practice.id, risk.id, intake.id, "  ", at).await,
        Err(StoreError::Conflict(m)) if m == TASK_NOTE_REQUIRED
    ));
    assert!(matches!(
        s.close_waitlist_task(f.other.id, risk.id, elsewhere.id, "called", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.close_waitlist_task(f.practice.id, risk.id, elsewhere.id, "called", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.close_waitlist_task(f.practice.id, risk.id, f.clinician.id, "called", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.close_waitlist_task(f.practice.id, TaskId::random(), intake.id, "called", at)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        waitlist_open(s.open_tasks(f.practice.id).await.unwrap()).len(),
        2
    );
    assert_eq!(
        s.waitlist_task_closure(f.practice.id, risk.id)
            .await
            .unwrap(),
        None
    );
    // The intake admin closes it with a note.
    let closed = s
        .close_waitlist_task(
            f.practice.id,
            risk.id,
            intake.id,
            " Called; assessment booked ",
            at,
        )
        .await
        .unwrap();
    assert_eq!(closed.completed_at, Some(at));
    assert_eq!(
        s.waitlist_task_closure(f.practice.id, risk.id)
            .await
            .unwrap(),
        Some((intake.id, "Called; assessment booked".to_string()))
    );
    assert_eq!(
        s.waitlist_task_closure(f.other.id, risk.id).await.unwrap(),
        None
    );
    assert!(matches!(
        s.close_waitlist_task(f.practice.id, risk.id, intake.id, "again", at).await,
        Err(StoreError::Conflict(m)) if m == TASK_ALREADY_CLOSED
    ));
    // Closed stays closed for its flag; a new risk answer is a new task.
    assert!(!s.open_waitlist_task(&again).await.unwrap());
    let open = waitlist_open(s.open_tasks(f.practice.id).await.unwrap());
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].kind, TaskKind::WaitlistDeterioration);
    let second = risk_answer(&s, &f, &client, &episode, 60).await;
    assert_ne!(second, flag);
    let next = waitlist_task(&f, &client, &episode, TaskKind::WaitlistRisk, Some(second));
    assert!(s.open_waitlist_task(&next).await.unwrap());
    let open = waitlist_open(s.open_tasks(f.practice.id).await.unwrap());
    assert_eq!(open.len(), 2);
    assert!(open.iter().any(|t| t.risk_flag_id == Some(second)));
}

mod sealed {
    //! The stored explanations (a match's reasons, the switch reason, a batch run's
    //! lines) name a client's problems, so they are sealed at rest and key rotation
    //! re-encrypts them (runs on both backends with raw SQL access).
    use super::*;
    use crate::security::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        explanations_are_sealed_at_rest_and_rotate(crate::security::sqlite().await).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(b) = crate::security::postgres().await else {
            return;
        };
        explanations_are_sealed_at_rest_and_rotate(b).await;
    }

    async fn explanations_are_sealed_at_rest_and_rotate(b: Backend) {
        let s = b.store.clone();
        let f = fixture(&s).await;
        put_profile(&s, &f, 10, 10).await;
        let a = new_client(&s, &f, 1).await;
        let mut first = accepted(&f, a.id, t0());
        first.reasons = vec!["works with trauma".into()];
        s.accept_match(&first, t0(), None).await.unwrap();
        let second = accepted(&f, a.id, t0() + Duration::hours(2));
        s.accept_match(
            &second,
            t0(),
            Some("talking about the assault was too hard"),
        )
        .await
        .unwrap();
        let run = MatchRun {
            id: uuid::Uuid::new_v4(),
            practice_id: f.practice.id,
            run_by: f.clinician.id,
            clients: 1,
            assigned: 0,
            total_score: 0,
            result: serde_json::json!([{"client": "a", "reasons": ["works with eating"]}]),
            created_at: t0(),
        };
        s.insert_match_run(&run).await.unwrap();
        // A waitlist task's closing note is sealed too.
        let intake = admin(&s, f.practice.id, "intake@riverside.example").await;
        let episode = Episode::open(f.practice.id, a.id, t0());
        s.insert_episode(&episode).await.unwrap();
        let task = waitlist_task(&f, &a, &episode, TaskKind::WaitlistDeterioration, None);
        assert!(s.open_waitlist_task(&task).await.unwrap());
        s.close_waitlist_task(
            f.practice.id,
            task.id,
            intake.id,
            "spoke about overdose",
            t0(),
        )
        .await
        .unwrap();
        for sql in [
            "SELECT reasons FROM clinician_matches ORDER BY accepted_at LIMIT 1",
            "SELECT end_reason FROM clinician_matches WHERE end_reason IS NOT NULL",
            "SELECT result FROM match_runs",
            "SELECT closing_note FROM clinician_tasks",
        ] {
            let raw = b.raw.text(sql).await;
            for secret in ["trauma", "assault", "eating", "overdose"] {
                assert!(!raw.contains(secret), "{sql} holds plain text: {raw}");
            }
        }
        let before = b.raw.text("SELECT result FROM match_runs").await;
        let mut keys = b.keys.clone();
        keys.add_master_key();
        let report = s.rotate_keys(&keys, true).await.unwrap();
        // Two reasons, one switch reason, one run, plus the sealed profile.
        assert!(report.reencrypted >= 5, "{report:?}");
        assert_ne!(before, b.raw.text("SELECT result FROM match_runs").await);
        keys.retire_master_key(1).unwrap();
        let reopened = (b.reopen)(keys).await;
        let history = reopened
            .matches_for_client(f.practice.id, a.id)
            .await
            .unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].reasons, vec!["works with trauma".to_string()]);
        assert_eq!(
            history[1].end_reason.as_deref(),
            Some("talking about the assault was too hard")
        );
        assert_eq!(
            reopened.match_runs(f.practice.id, 10).await.unwrap(),
            vec![run]
        );
        assert_eq!(
            reopened
                .waitlist_task_closure(f.practice.id, task.id)
                .await
                .unwrap(),
            Some((intake.id, "spoke about overdose".to_string()))
        );
    }
}
