//! Conformance of the measurement store on SQLite and PostgreSQL: the submission pipeline's
//! one-transaction commit (submission + measure state + risk flags + tasks), idempotency, risk
//! flag closure, measure schedules and versioned expected-recovery curves.

use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::episode::{Episode, EpisodeStatus};
use tapestry_domain::ids::*;
use tapestry_domain::ingest::{IngestError, IngestRequest};
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::measure_schedule::{MeasureSchedule, ScheduleRule};
use tapestry_domain::practice::Practice;
use tapestry_domain::risk::RiskColour;
use tapestry_domain::scoring::{Answer, Answers};
use tapestry_domain::trajectory::{
    fit_expected_recovery, EmpiricalConfig, ReferenceEpisode, TrackStatus,
};
use tapestry_domain::user::{Role, User};
use tapestry_store::{IngestSettings, Store, StoreError};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    risk_answers_create_a_flag_and_a_task_in_the_same_commit,
    an_improving_total_neither_closes_nor_hides_a_flag,
    closing_a_flag_needs_a_clinician_of_the_practice_and_a_note,
    idempotent_retries_under_16_concurrent_requests_store_once,
    bad_input_stores_nothing,
    episode_state_tracks_baseline_and_not_on_track,
    group_commit_keeps_session_order_and_is_per_request,
    schedules_are_per_episode_and_practice,
    curves_are_versioned_and_reference_sets_use_discharged_episodes,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    clinician: User,
    client_user: User,
    client: Client,
    episode: Episode,
    registry: InstrumentRegistry,
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
    let client_user = User::new(
        practice.id,
        "sam@riverside.example",
        "Sam",
        Role::Client,
        t0(),
    )
    .unwrap();
    s.insert_user(&client_user, None).await.unwrap();
    let client = Client::new(practice.id, "Sam Client", None, Some("GB"), t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    let episode = Episode::open(practice.id, client.id, t0());
    s.insert_episode(&episode).await.unwrap();
    s.set_primary_clinician(practice.id, episode.id, clinician.id)
        .await
        .unwrap();
    Fixture {
        practice,
        other,
        clinician,
        client_user,
        client,
        episode,
        registry: InstrumentRegistry::embedded().unwrap(),
    }
}

fn req(f: &Fixture, instrument: &str, values: &[i32], key: Option<&str>) -> IngestRequest {
    IngestRequest {
        practice_id: f.practice.id,
        client_id: f.client.id,
        episode_id: f.episode.id,
        instrument: instrument.into(),
        answers: Answers::from_values(values),
        idempotency_key: key.map(str::to_string),
        submitted_at: t0(),
    }
}

async fn ingest_one(
    s: &Arc<dyn Store>,
    f: &Fixture,
    r: IngestRequest,
) -> Result<tapestry_store::IngestReceipt, IngestError> {
    s.ingest(&f.registry, &IngestSettings::default(), &[r])
        .await
        .unwrap()
        .remove(0)
}

async fn risk_answers_create_a_flag_and_a_task_in_the_same_commit(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // PHQ-9 item 9 answered "several days".
    let r = ingest_one(&s, &f, req(&f, "phq9", &[1, 1, 1, 1, 1, 1, 1, 1, 1], None))
        .await
        .unwrap();
    assert!(r.new);
    assert_eq!(r.total, Some(9.0));
    assert_eq!((r.flags.len(), r.tasks.len()), (1, 1));
    // CORE-10 item 6 > 0.
    let r2 = ingest_one(
        &s,
        &f,
        req(&f, "core10", &[1, 3, 3, 1, 1, 1, 1, 1, 1, 1], None),
    )
    .await
    .unwrap();
    assert_eq!((r2.flags.len(), r2.tasks.len()), (1, 1));
    let flags = s.open_risk_flags(f.practice.id).await.unwrap();
    assert_eq!(flags.len(), 2);
    assert!(flags.iter().all(|fl| fl.flag.is_open()
        && fl.flag.signal.colour == RiskColour::Amber
        && fl.episode_id == f.episode.id));
    assert!(flags
        .iter()
        .any(|fl| fl.submission_id == r.submission_id && fl.id == r.flags[0]));
    let tasks = s.open_tasks(f.practice.id).await.unwrap();
    assert_eq!(tasks.len(), 2);
    assert!(tasks.iter().all(|t| t.assignee == Some(f.clinician.id)));
    assert!(tasks
        .iter()
        .any(|t| t.risk_flag_id == Some(r.flags[0]) && t.title.contains("PHQ-9 item 9")));
    // The submission is there with its raw answers.
    let stored = s
        .submission(f.practice.id, r.submission_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.answers, vec![Answer::Value(1); 9]);
    // Another practice sees none of it.
    assert!(s.open_risk_flags(f.other.id).await.unwrap().is_empty());
    assert!(s.open_tasks(f.other.id).await.unwrap().is_empty());
    // Completing the task does not close the flag.
    s.complete_task(f.practice.id, tasks[0].id, t0())
        .await
        .unwrap();
    assert_eq!(s.open_tasks(f.practice.id).await.unwrap().len(), 1);
    assert_eq!(s.open_risk_flags(f.practice.id).await.unwrap().len(), 2);
    assert!(matches!(
        s.complete_task(f.practice.id, tasks[0].id, t0()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn an_improving_total_neither_closes_nor_hides_a_flag(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let first = ingest_one(&s, &f, req(&f, "phq9", &[3, 3, 3, 3, 3, 3, 2, 2, 2], None))
        .await
        .unwrap();
    assert_eq!(first.flags.len(), 1);
    // Much better two weeks later, item 9 back to 0: reliable improvement, no new flag...
    let later = ingest_one(&s, &f, req(&f, "phq9", &[0, 1, 0, 1, 0, 0, 0, 0, 0], None))
        .await
        .unwrap();
    assert!(later.flags.is_empty());
    assert_eq!(
        later.track.as_ref().unwrap().status,
        TrackStatus::FunctionalRange
    );
    // ...and the earlier flag is still open and listed.
    let open = s.open_risk_flags(f.practice.id).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, first.flags[0]);
    assert_eq!(
        s.risk_flags_for_episode(f.practice.id, f.episode.id)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn closing_a_flag_needs_a_clinician_of_the_practice_and_a_note(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let r = ingest_one(&s, &f, req(&f, "phq9", &[0, 0, 0, 0, 0, 0, 0, 0, 3], None))
        .await
        .unwrap();
    let flag = r.flags[0];
    // No note, a blank note: refused, still open.
    for note in ["", "   \n"] {
        assert!(matches!(
            s.close_risk_flag(f.practice.id, flag, f.clinician.id, note, t0()).await,
            Err(StoreError::Conflict(m)) if m.starts_with("note")
        ));
    }
    // A client cannot close it; nor can anyone from another practice.
    assert!(matches!(
        s.close_risk_flag(f.practice.id, flag, f.client_user.id, "fine", t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(matches!(
        s.close_risk_flag(f.other.id, flag, f.clinician.id, "fine", t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(s.open_risk_flags(f.practice.id).await.unwrap().len(), 1);
    let closed = s
        .close_risk_flag(
            f.practice.id,
            flag,
            f.clinician.id,
            "  Reviewed in session; safety plan updated.  ",
            t0() + Duration::minutes(20),
        )
        .await
        .unwrap();
    let closure = closed.flag.closure.unwrap();
    assert_eq!(closure.by, f.clinician.id);
    assert_eq!(closure.note, "Reviewed in session; safety plan updated.");
    assert!(s.open_risk_flags(f.practice.id).await.unwrap().is_empty());
    let all = s
        .risk_flags_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(
        all[0].flag.closure.as_ref().unwrap().at,
        t0() + Duration::minutes(20)
    );
    // The note is sealed at rest and reads back intact.
    assert_eq!(
        all[0].flag.closure.as_ref().unwrap().note,
        "Reviewed in session; safety plan updated."
    );
    assert!(matches!(
        s.close_risk_flag(f.practice.id, flag, f.clinician.id, "again", t0())
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.close_risk_flag(f.practice.id, RecordId::random(), f.clinician.id, "x", t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn idempotent_retries_under_16_concurrent_requests_store_once(s: Arc<dyn Store>) {
    let f = Arc::new(fixture(&s).await);
    let mut handles = Vec::new();
    for _ in 0..16 {
        let (s, f) = (s.clone(), f.clone());
        handles.push(tokio::spawn(async move {
            let r = req(&f, "phq9", &[2, 2, 2, 2, 2, 2, 2, 2, 1], Some("retry-7f3a"));
            ingest_one(&s, &f, r).await
        }));
    }
    let mut receipts = Vec::new();
    for h in handles {
        receipts.push(h.await.unwrap().unwrap());
    }
    let first = receipts[0].clone();
    assert!(receipts
        .iter()
        .all(|r| r.submission_id == first.submission_id
            && r.flags.len() == 1
            && r.tasks.len() == 1
            && r.total == Some(17.0)));
    assert_eq!(receipts.iter().filter(|r| r.new).count(), 1);
    let flag_ids: std::collections::BTreeSet<_> = receipts.iter().map(|r| r.flags[0]).collect();
    assert_eq!(flag_ids.len(), 1, "the replay returns the same flag");
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 1);
    assert_eq!(s.open_risk_flags(f.practice.id).await.unwrap().len(), 1);
    assert_eq!(s.open_tasks(f.practice.id).await.unwrap().len(), 1);
    // The same key with different answers: a conflict, nothing stored.
    let err = ingest_one(&s, &f, req(&f, "phq9", &[0; 9], Some("retry-7f3a")))
        .await
        .unwrap_err();
    assert_eq!(err, IngestError::IdempotencyConflict);
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 1);
    let m = s
        .episode_measures(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(m[0].sessions, 1);
}

async fn bad_input_stores_nothing(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let huge = vec![1; 10_000];
    let other_client = Client::new(f.practice.id, "Someone else", None, None, t0()).unwrap();
    s.insert_client(&other_client).await.unwrap();
    let mut wrong_client = req(&f, "phq9", &[0; 9], None);
    wrong_client.client_id = other_client.id;
    let mut other_practice = req(&f, "phq9", &[0; 9], None);
    other_practice.practice_id = f.other.id;
    let mut unknown_episode = req(&f, "phq9", &[0; 9], None);
    unknown_episode.episode_id = EpisodeId::random();
    let cases: Vec<(IngestRequest, &str)> = vec![
        (req(&f, "phq9", &[], None), "answers"),
        (req(&f, "phq9", &[0; 8], None), "answers"),
        (
            req(&f, "phq9", &[0, 0, 0, 0, 4, 0, 0, 0, 0], None),
            "item 5",
        ),
        (
            req(&f, "phq9", &[0, 0, 0, 0, 0, 0, 0, 0, -1], None),
            "item 9",
        ),
        (req(&f, "phq9", &huge, None), "answers"),
        (req(&f, "phq99", &[0; 9], None), "instrument"),
        (req(&f, "phq9", &[0; 9], Some("")), "Idempotency-Key"),
        (
            req(&f, "phq9", &[0; 9], Some(&"k".repeat(5000))),
            "Idempotency-Key",
        ),
        (wrong_client, "episode"),
        (other_practice, "episode"),
        (unknown_episode, "episode"),
    ];
    for (r, names) in cases {
        let err = ingest_one(&s, &f, r).await.unwrap_err();
        assert!(err.to_string().contains(names), "{err} should name {names}");
    }
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 0);
    assert_eq!(s.count_submissions(f.other.id).await.unwrap(), 0);
    assert!(s.open_risk_flags(f.practice.id).await.unwrap().is_empty());
    assert!(s
        .episode_measures(f.practice.id, f.episode.id)
        .await
        .unwrap()
        .is_empty());
    // An empty batch is a no-op.
    assert!(s
        .ingest(&f.registry, &IngestSettings::default(), &[])
        .await
        .unwrap()
        .is_empty());
}

async fn episode_state_tracks_baseline_and_not_on_track(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // PHQ-9 totals 15, 15, 16, 22: no improvement, then reliable deterioration (≥ 6).
    for (week, values) in [
        [2, 2, 2, 2, 2, 2, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 1, 1, 1],
        [2, 2, 2, 2, 2, 2, 2, 1, 1],
        [3, 3, 3, 3, 3, 3, 2, 1, 1],
    ]
    .into_iter()
    .enumerate()
    {
        let mut r = req(&f, "phq9", &values, None);
        r.submitted_at = t0() + Duration::weeks(week as i64);
        ingest_one(&s, &f, r).await.unwrap();
    }
    let m = s
        .episode_measures(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(m.len(), 1);
    assert_eq!(
        (m[0].baseline, m[0].latest, m[0].sessions),
        (Some(15.0), Some(22.0), 4)
    );
    let track = m[0].track.clone().unwrap();
    assert_eq!(track.status, TrackStatus::Deteriorated);
    assert!(track.not_on_track);
    assert!(
        track.curve_version.is_none(),
        "no curve fitted: rational rules only"
    );
    let not = s.not_on_track(f.practice.id).await.unwrap();
    assert_eq!(not.len(), 1);
    assert!(s.not_on_track(f.other.id).await.unwrap().is_empty());
    let subs = s
        .submissions_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap();
    let sessions: Vec<u32> = subs.iter().map(|x| x.session).collect();
    assert_eq!(sessions, vec![1, 2, 3, 4]);
    // Recovered (total 4: below the cut-off, 11 points under the baseline): the flag is
    // cleared in the stored state and the episode leaves the not-on-track list; a further
    // submission keeps it off.
    for week in [4, 5] {
        let mut r = req(&f, "phq9", &[1, 1, 1, 1, 0, 0, 0, 0, 0], None);
        r.submitted_at = t0() + Duration::weeks(week);
        ingest_one(&s, &f, r).await.unwrap();
        let m = s
            .episode_measures(f.practice.id, f.episode.id)
            .await
            .unwrap();
        assert!(!m[0].track.as_ref().unwrap().not_on_track);
        assert!(s.not_on_track(f.practice.id).await.unwrap().is_empty());
    }
}

async fn group_commit_keeps_session_order_and_is_per_request(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // 301 requests (more than one multi-row chunk): good ones, a bad one in the middle and a
    // duplicate key inside the batch.
    let mut batch: Vec<IngestRequest> = (0..300)
        .map(|i| req(&f, "gad7", &[i % 4, 1, 1, 1, 1, 1, 0], None))
        .collect();
    batch.insert(150, req(&f, "gad7", &[9; 7], None));
    batch.push(req(&f, "gad7", &[1; 7], Some("dup")));
    batch.push(req(&f, "gad7", &[1; 7], Some("dup")));
    let results = s
        .ingest(&f.registry, &IngestSettings::default(), &batch)
        .await
        .unwrap();
    assert_eq!(results.len(), batch.len());
    assert!(results[150].is_err());
    let ok: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(ok.len(), 302);
    let dup_a = results[301].as_ref().unwrap();
    let dup_b = results[302].as_ref().unwrap();
    assert_eq!(dup_a.submission_id, dup_b.submission_id);
    assert!(dup_a.new && !dup_b.new);
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 301);
    let m = s
        .episode_measures(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(m[0].sessions, 301);
    assert_eq!(m[0].baseline, Some(5.0));
    let sessions: Vec<u32> = ok.iter().filter(|r| r.new).map(|r| r.session).collect();
    assert_eq!(sessions, (1..=301).collect::<Vec<u32>>());
}

async fn schedules_are_per_episode_and_practice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let phq = MeasureSchedule::new(
        f.practice.id,
        f.episode.id,
        "phq9",
        ScheduleRule::BeforeEverySession,
        t0(),
    );
    s.set_measure_schedule(&phq).await.unwrap();
    let wsas = MeasureSchedule::new(
        f.practice.id,
        f.episode.id,
        "wsas",
        ScheduleRule::every(28).unwrap(),
        t0(),
    );
    s.set_measure_schedule(&wsas).await.unwrap();
    // Re-assigning replaces the rule.
    let mut again = phq.clone();
    again.id = RecordId::random();
    again.rule = ScheduleRule::IntakeAndDischarge;
    s.set_measure_schedule(&again).await.unwrap();
    let list = s
        .measure_schedules(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].instrument, "phq9");
    assert_eq!(list[0].rule, ScheduleRule::IntakeAndDischarge);
    assert_eq!(list[1].rule, ScheduleRule::EveryNDays { days: 28 });
    // Another practice can neither see nor attach to the episode.
    assert!(s
        .measure_schedules(f.other.id, f.episode.id)
        .await
        .unwrap()
        .is_empty());
    let mut foreign = phq.clone();
    foreign.practice_id = f.other.id;
    assert!(matches!(
        s.set_measure_schedule(&foreign).await,
        Err(StoreError::NotFound(_))
    ));
    s.remove_measure_schedule(f.practice.id, f.episode.id, "wsas")
        .await
        .unwrap();
    assert!(matches!(
        s.remove_measure_schedule(f.practice.id, f.episode.id, "wsas")
            .await,
        Err(StoreError::NotFound(_))
    ));
}

async fn curves_are_versioned_and_reference_sets_use_discharged_episodes(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // One discharged episode with three complete PHQ-9s, the fixture's active one with one.
    let done = Episode::open(f.practice.id, f.client.id, t0());
    s.insert_episode(&done).await.unwrap();
    for values in [[2; 9], [1; 9], [0; 9]] {
        let mut r = req(&f, "phq9", &values, None);
        r.episode_id = done.id;
        ingest_one(&s, &f, r).await.unwrap();
    }
    ingest_one(&s, &f, req(&f, "phq9", &[3; 9], None))
        .await
        .unwrap();
    assert!(s
        .reference_episodes(f.practice.id, "phq9")
        .await
        .unwrap()
        .is_empty());
    s.move_episode(
        f.practice.id,
        done.id,
        EpisodeStatus::Referral,
        EpisodeStatus::Discharged,
        t0(),
    )
    .await
    .unwrap();
    let reference = s.reference_episodes(f.practice.id, "phq9").await.unwrap();
    assert_eq!(
        reference,
        vec![ReferenceEpisode {
            scores: vec![18.0, 9.0, 0.0]
        }]
    );
    assert!(s
        .reference_episodes(f.other.id, "phq9")
        .await
        .unwrap()
        .is_empty());

    let def = f.registry.get("phq9").unwrap();
    let synthetic: Vec<ReferenceEpisode> = (0..30)
        .map(|i| ReferenceEpisode {
            scores: (0..6)
                .map(|t| f64::from(10 + i % 10) - f64::from(t) * 1.5)
                .collect(),
        })
        .collect();
    let config = EmpiricalConfig {
        min_reference_episodes: 20,
        ..EmpiricalConfig::default()
    };
    let curve =
        fit_expected_recovery(def, &synthetic, &config, t0().date_naive(), "draft").unwrap();
    assert!(s
        .latest_recovery_curve(f.practice.id, "phq9")
        .await
        .unwrap()
        .is_none());
    let v1 = s
        .insert_recovery_curve(f.practice.id, &curve, t0())
        .await
        .unwrap();
    let v2 = s
        .insert_recovery_curve(f.practice.id, &curve, t0() + Duration::days(7))
        .await
        .unwrap();
    assert_eq!((v1.version, v2.version), (1, 2));
    assert_eq!(v2.curve.version, "phq9-v2");
    let latest = s
        .latest_recovery_curve(f.practice.id, "phq9")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest, v2);
    assert_eq!(latest.curve.n_episodes, 30);
    assert!(s
        .latest_recovery_curve(f.other.id, "phq9")
        .await
        .unwrap()
        .is_none());
    // With a curve fitted on enough episodes, the verdict names it and its n.
    let settings = IngestSettings {
        min_curve_episodes: 20,
    };
    let r = s
        .ingest(&f.registry, &settings, &[req(&f, "phq9", &[3; 9], None)])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let track = r.track.unwrap();
    assert_eq!(track.curve_version.as_deref(), Some("phq9-v2"));
    assert_eq!(track.curve_n, Some(30));
}

/// A SQLite store on a file in `dir` (so a second store can open the same database), its
/// fixture, and two PHQ-9 submissions of `answers` already through the ingest lane (its cache
/// warm).
async fn sqlite_lane_after_two(
    dir: &tempfile::TempDir,
    answers: &[i32],
) -> (Arc<dyn Store>, Fixture, std::path::PathBuf) {
    let path = dir.path().join("tapestry.db");
    let store = tapestry_store::SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let s: Arc<dyn Store> = Arc::new(store);
    let f = fixture(&s).await;
    for _ in 0..2 {
        ingest_one(&s, &f, req(&f, "phq9", answers, None))
            .await
            .unwrap();
    }
    (s, f, path)
}

/// The SQLite ingest lane keeps episode state between transactions (`sqlite/ingest.rs`). What
/// other connections commit in between — here a second store on the same file, as another
/// process would, changing the measure state with plain SQL and the primary clinician through
/// the store — must be what the next submission is decided on: not the lane's cached copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ingest_lane_decides_on_what_other_connections_committed_in_between() {
    let dir = tempfile::tempdir().unwrap();
    // Two submissions through the lane: its cache now holds baseline 20 and 2 sessions.
    let high = [3, 3, 3, 2, 2, 2, 2, 3, 0];
    let (s, f, path) = sqlite_lane_after_two(&dir, &high).await;
    let other = tapestry_store::SqliteStore::open(&path).await.unwrap();
    sqlx::query("UPDATE episode_measures SET baseline = 4, latest = 4, sessions = 10 WHERE practice_id = $1 AND episode_id = $2 AND instrument = 'phq9'")
        .bind(f.practice.id.as_uuid())
        .bind(f.episode.id.as_uuid())
        .execute(other.pool())
        .await
        .unwrap();
    let other: Arc<dyn Store> = Arc::new(other);
    let covering = User::new(
        f.practice.id,
        "dr.okafor@riverside.example",
        "Dr Okafor",
        Role::Clinician,
        t0(),
    )
    .unwrap();
    other.insert_user(&covering, None).await.unwrap();
    other
        .set_primary_clinician(f.practice.id, f.episode.id, covering.id)
        .await
        .unwrap();
    other.close().await;
    // A risk answer now: session 11 after the changed count, reliable deterioration from the
    // changed baseline (4 → 21), and the task goes to the new primary clinician.
    let risky = [3, 3, 3, 2, 2, 2, 2, 3, 1];
    let r = ingest_one(&s, &f, req(&f, "phq9", &risky, None))
        .await
        .unwrap();
    assert_eq!(r.session, 11);
    assert_eq!(
        r.reliable_change,
        Some(tapestry_domain::change::ReliableChange::Deteriorated)
    );
    let tasks = s.open_tasks(f.practice.id).await.unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].assignee, Some(covering.id));
    let m = s
        .episode_measures(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(
        (m[0].baseline, m[0].latest, m[0].sessions),
        (Some(4.0), Some(21.0), 11)
    );
    // With nothing committed elsewhere, the next one continues from the lane's own state.
    let r = ingest_one(&s, &f, req(&f, "phq9", &high, None))
        .await
        .unwrap();
    assert_eq!(r.session, 12);
    // Read back through the pool, every value the lane wrote decodes as sqlx wrote it.
    let subs = s
        .submissions_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(subs.len(), 4);
    assert!(subs.iter().all(|x| x.submitted_at == t0()));
    let mut sessions: Vec<u32> = subs.iter().map(|x| x.session).collect();
    sessions.sort_unstable();
    assert_eq!(sessions, vec![1, 2, 11, 12]);
}

/// A large transaction is decided on a second thread while the lane writes (SQLite,
/// `sqlite/ingest.rs`). When a write fails — a trigger refuses one submission in the fourth
/// chunk (earlier chunks written, later ones being decided), or refuses the measure state
/// written after every chunk (the deciding thread done) — the whole batch is rolled back:
/// nothing of it is stored, and the next submission is decided on what was committed, not on
/// the undone decisions. A large batch that succeeds keeps its order, and its risk answers in
/// different chunks each get their flag and task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_ingest_lane_rolls_back_a_large_batch_whose_write_fails() {
    let dir = tempfile::tempdir().unwrap();
    let low = [1, 1, 0, 0, 1, 0, 0, 1, 0];
    let risky = [1, 1, 0, 0, 1, 0, 0, 1, 1];
    let (s, f, path) = sqlite_lane_after_two(&dir, &low).await;
    let other = tapestry_store::SqliteStore::open(&path).await.unwrap();
    for trigger in [
        "CREATE TRIGGER refuse_total_27 BEFORE INSERT ON submissions WHEN NEW.total = 27 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        "CREATE TRIGGER refuse_latest_26 BEFORE UPDATE ON episode_measures WHEN NEW.latest = 26 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
    ] {
        sqlx::query(trigger).execute(other.pool()).await.unwrap();
    }
    other.close().await;
    // 600 PHQ-9s; keyed risk answers at 10, 300 and 590; `special` answers at one place.
    let batch = |special: Option<(usize, [i32; 9])>| -> Vec<IngestRequest> {
        (0..600)
            .map(|i| match special {
                Some((at, answers)) if at == i => req(&f, "phq9", &answers, None),
                _ if [10, 300, 590].contains(&i) => {
                    req(&f, "phq9", &risky, Some(&format!("risk-{i}")))
                }
                _ => req(&f, "phq9", &low, None),
            })
            .collect()
    };
    let mut committed = 2;
    for refused in [(450, [3; 9]), (599, [3, 3, 3, 3, 3, 3, 3, 3, 2])] {
        let failed = s
            .ingest(
                &f.registry,
                &IngestSettings::default(),
                &batch(Some(refused)),
            )
            .await;
        assert!(failed.is_err(), "a refused write fails the whole batch");
        assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), committed);
        assert!(s.open_risk_flags(f.practice.id).await.unwrap().is_empty());
        assert!(s.open_tasks(f.practice.id).await.unwrap().is_empty());
        let m = s
            .episode_measures(f.practice.id, f.episode.id)
            .await
            .unwrap();
        assert_eq!(m[0].sessions, committed as u32);
        // Decided on the committed state, not on the 600 undone decisions.
        let r = ingest_one(&s, &f, req(&f, "phq9", &low, None))
            .await
            .unwrap();
        committed += 1;
        assert_eq!(r.session, committed as u32);
    }
    let results = s
        .ingest(&f.registry, &IngestSettings::default(), &batch(None))
        .await
        .unwrap();
    let sessions: Vec<u32> = results
        .iter()
        .map(|r| r.as_ref().unwrap().session)
        .collect();
    assert_eq!(sessions, (5..=604).collect::<Vec<u32>>());
    for i in [10, 300, 590] {
        let receipt = results[i].as_ref().unwrap();
        assert_eq!(
            (receipt.flags.len(), receipt.tasks.len()),
            (1, 1),
            "request {i}"
        );
    }
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 604);
    assert_eq!(s.open_risk_flags(f.practice.id).await.unwrap().len(), 3);
    assert_eq!(s.open_tasks(f.practice.id).await.unwrap().len(), 3);
    // A keyed risk submission replays with its flag and task.
    let again = s
        .ingest(
            &f.registry,
            &IngestSettings::default(),
            &batch(None)[300..301],
        )
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(!again.new);
    assert_eq!(
        again.submission_id,
        results[300].as_ref().unwrap().submission_id
    );
    assert_eq!((again.flags.len(), again.tasks.len()), (1, 1));
}
