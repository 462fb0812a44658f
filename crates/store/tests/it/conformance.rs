//! The conformance suite. Every case runs against SQLite and against
//! PostgreSQL (a throwaway `pg_ctl` cluster under target/), each on a fresh,
//! empty database. When PostgreSQL is not installed the postgres half reports
//! itself as skipped (and fails in CI, where it is required).

use chrono::{Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::care::{CareRelationship, CareRole};
use tapestry_domain::client::{Client, ClinicianProfile};
use tapestry_domain::episode::{Episode, EpisodeStatus};
use tapestry_domain::ids::*;
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answers;
use tapestry_domain::submission::Submission;
use tapestry_domain::user::{AccountStatus, Role, User};
use tapestry_store::{Store, StoreError, Stored};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    practices_and_settings,
    users_are_unique_by_email_and_scoped_to_practice,
    concurrent_signups_with_one_email_store_one_user,
    clients_are_invisible_across_practices,
    clinician_profiles_upsert_within_practice_only,
    episodes_move_by_compare_and_set,
    concurrent_episode_moves_let_exactly_one_win,
    care_relationships_are_unique_while_current,
    submissions_are_idempotent_and_keep_raw_answers,
    an_episodes_submissions_are_found_across_weeks_in_time_order,
    group_commit_is_all_or_nothing,
    bootstrap_token_is_single_use,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    clinician: User,
    client: Client,
    episode: Episode,
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
    s.insert_user(&clinician, Some("$argon2id$v=19$m=19456,t=2,p=1$x$y"))
        .await
        .unwrap();
    let client = Client::new(practice.id, "Sam Client", None, Some("GB"), t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    let episode = Episode::open(practice.id, client.id, t0());
    s.insert_episode(&episode).await.unwrap();
    Fixture {
        practice,
        other,
        clinician,
        client,
        episode,
    }
}

fn submission(f: &Fixture, raw: Vec<Option<u8>>, key: Option<&str>) -> Submission {
    let answers = Answers::from_options(&raw).values;
    Submission {
        id: ResponseId::random(),
        practice_id: f.practice.id,
        client_id: f.client.id,
        episode_id: f.episode.id,
        instrument: "phq9".into(),
        instrument_version: "1".into(),
        total: Some(raw.iter().flatten().map(|&a| f64::from(a)).sum()),
        answers,
        session: 1,
        submitted_at: t0(),
        idempotency_key: key.map(str::to_string),
    }
}

/// Migration 0009 files submissions under their week: an episode's submissions over many
/// weeks (including weeks where only another episode answered, and two in one week) come
/// back complete, in time order, and never with another episode's.
async fn an_episodes_submissions_are_found_across_weeks_in_time_order(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    // Empty: no submissions at all.
    assert!(s
        .submissions_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap()
        .is_empty());
    let second = Episode::open(f.practice.id, f.client.id, t0());
    s.insert_episode(&second).await.unwrap();
    let mut ours = Vec::new();
    for (days, mine) in [
        (0, true),
        (3, true),
        (9, false),
        (30, true),
        (200, false),
        (365, true),
    ] {
        let mut sub = submission(&f, vec![Some(1); 9], None);
        sub.submitted_at = t0() + Duration::days(days);
        if !mine {
            sub.episode_id = second.id;
        }
        s.insert_submission(&sub).await.unwrap();
        if mine {
            ours.push(sub.id);
        }
    }
    let got: Vec<ResponseId> = s
        .submissions_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap()
        .iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(got, ours);
    assert_eq!(
        s.submissions_for_episode(f.practice.id, second.id)
            .await
            .unwrap()
            .len(),
        2
    );
    // Another practice sees nothing of it.
    assert!(s
        .submissions_for_episode(f.other.id, f.episode.id)
        .await
        .unwrap()
        .is_empty());
}

async fn practices_and_settings(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    assert_eq!(
        s.practice(f.practice.id).await.unwrap().unwrap(),
        f.practice
    );
    assert!(s.practice(PracticeId::random()).await.unwrap().is_none());
    assert_eq!(s.practices().await.unwrap().len(), 2);
    // Duplicate practice id: a conflict, and the original is unchanged.
    let mut dup = f.practice.clone();
    dup.name = "Renamed".into();
    assert!(matches!(
        s.insert_practice(&dup).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.practice(f.practice.id).await.unwrap().unwrap().name,
        "Riverside"
    );
    // Settings upsert and are per practice.
    assert_eq!(s.setting(f.practice.id, "demo_seed").await.unwrap(), None);
    s.set_setting(f.practice.id, "demo_seed", "1")
        .await
        .unwrap();
    s.set_setting(f.practice.id, "demo_seed", "2")
        .await
        .unwrap();
    assert_eq!(
        s.setting(f.practice.id, "demo_seed")
            .await
            .unwrap()
            .as_deref(),
        Some("2")
    );
    assert_eq!(s.setting(f.other.id, "demo_seed").await.unwrap(), None);
    assert_eq!(
        s.practice_with_setting("demo_seed", "2").await.unwrap(),
        Some(f.practice.id)
    );
    assert_eq!(
        s.practice_with_setting("demo_seed", "1").await.unwrap(),
        None
    );
    // Unicode and large values survive unchanged.
    let big = "é😀".repeat(20_000);
    s.set_setting(f.other.id, "crisis_text", &big)
        .await
        .unwrap();
    assert_eq!(
        s.setting(f.other.id, "crisis_text").await.unwrap().unwrap(),
        big
    );
}

async fn users_are_unique_by_email_and_scoped_to_practice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    assert_eq!(
        s.user(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap(),
        f.clinician
    );
    // Another practice cannot see the user.
    assert!(s.user(f.other.id, f.clinician.id).await.unwrap().is_none());
    // Same address in other case is the same address.
    let dup = User::new(
        f.other.id,
        "DR.NG@riverside.example",
        "Imposter",
        Role::PracticeOwner,
        t0(),
    )
    .unwrap();
    assert!(matches!(
        s.insert_user(&dup, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(s.user(f.other.id, dup.id).await.unwrap().is_none());
    let creds = s
        .credentials_by_email("Dr.Ng@Riverside.Example")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.user.id, f.clinician.id);
    assert!(creds.password_hash.unwrap().starts_with("$argon2id$"));
    assert!(s
        .credentials_by_email("nobody@example.org")
        .await
        .unwrap()
        .is_none());
    // Status and password changes are scoped to the practice.
    assert!(matches!(
        s.set_user_status(f.other.id, f.clinician.id, AccountStatus::Disabled)
            .await,
        Err(StoreError::NotFound(_))
    ));
    s.set_user_status(f.practice.id, f.clinician.id, AccountStatus::Disabled)
        .await
        .unwrap();
    assert_eq!(
        s.user(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap()
            .status,
        AccountStatus::Disabled
    );
    assert!(matches!(
        s.set_password_hash(f.other.id, f.clinician.id, "x").await,
        Err(StoreError::NotFound(_))
    ));
    s.set_password_hash(f.practice.id, f.clinician.id, "$argon2id$new")
        .await
        .unwrap();
    assert_eq!(
        s.credentials_by_email("dr.ng@riverside.example")
            .await
            .unwrap()
            .unwrap()
            .password_hash
            .as_deref(),
        Some("$argon2id$new")
    );
    assert_eq!(s.users_in_practice(f.practice.id).await.unwrap().len(), 1);
    assert!(s.users_in_practice(f.other.id).await.unwrap().is_empty());
    assert_eq!(s.count_users().await.unwrap(), 1);
}

async fn concurrent_signups_with_one_email_store_one_user(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        let practice = f.practice.id;
        tasks.push(tokio::spawn(async move {
            let u = User::new(
                practice,
                "same@example.org",
                &format!("Person {i}"),
                Role::Client,
                t0(),
            )
            .unwrap();
            s.insert_user(&u, None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    assert_eq!(ok, 1);
    assert_eq!(s.count_users().await.unwrap(), 2);
}

async fn clients_are_invisible_across_practices(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    assert_eq!(
        s.client(f.practice.id, f.client.id).await.unwrap().unwrap(),
        f.client
    );
    assert!(s.client(f.other.id, f.client.id).await.unwrap().is_none());
    assert!(s.clients_in_practice(f.other.id).await.unwrap().is_empty());
    // Linking to a user of another practice is refused and changes nothing.
    let stranger = User::new(
        f.other.id,
        "stranger@example.org",
        "Stranger",
        Role::Client,
        t0(),
    )
    .unwrap();
    s.insert_user(&stranger, None).await.unwrap();
    assert!(matches!(
        s.link_client_user(f.practice.id, f.client.id, stranger.id)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.client(f.practice.id, f.client.id)
            .await
            .unwrap()
            .unwrap()
            .user_id,
        None
    );
    let own = User::new(f.practice.id, "sam@example.org", "Sam", Role::Client, t0()).unwrap();
    s.insert_user(&own, None).await.unwrap();
    s.link_client_user(f.practice.id, f.client.id, own.id)
        .await
        .unwrap();
    assert_eq!(
        s.client_for_user(f.practice.id, own.id)
            .await
            .unwrap()
            .unwrap()
            .id,
        f.client.id
    );
    assert!(s
        .client_for_user(f.other.id, own.id)
        .await
        .unwrap()
        .is_none());
    // One account cannot be two clients.
    let second = Client::new(f.practice.id, "Second", None, None, t0()).unwrap();
    s.insert_client(&second).await.unwrap();
    assert!(matches!(
        s.link_client_user(f.practice.id, second.id, own.id).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn clinician_profiles_upsert_within_practice_only(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let mut p = ClinicianProfile {
        user_id: f.clinician.id,
        practice_id: f.practice.id,
        professional_title: "Clinical psychologist".into(),
        bio: "Works with anxiety and trauma.".into(),
        languages: vec!["en".into(), "es".into()],
        accepts_new_clients: true,
        caseload_limit: 25,
    };
    s.upsert_clinician_profile(&p).await.unwrap();
    p.caseload_limit = 20;
    s.upsert_clinician_profile(&p).await.unwrap();
    assert_eq!(
        s.clinician_profile(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap(),
        p
    );
    assert_eq!(s.clinician_profiles(f.practice.id).await.unwrap().len(), 1);
    // Writing the profile of a user through another practice is refused.
    let mut hijack = p.clone();
    hijack.practice_id = f.other.id;
    hijack.bio = "changed".into();
    assert!(matches!(
        s.upsert_clinician_profile(&hijack).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        s.clinician_profile(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap()
            .bio,
        p.bio
    );
    assert!(s
        .clinician_profile(f.other.id, f.clinician.id)
        .await
        .unwrap()
        .is_none());
}

async fn episodes_move_by_compare_and_set(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    assert_eq!(
        s.episode(f.practice.id, f.episode.id)
            .await
            .unwrap()
            .unwrap(),
        f.episode
    );
    assert!(s.episode(f.other.id, f.episode.id).await.unwrap().is_none());
    // An episode for a client of another practice cannot be opened.
    let foreign = Episode::open(f.other.id, f.client.id, t0());
    assert!(matches!(
        s.insert_episode(&foreign).await,
        Err(StoreError::NotFound(_))
    ));
    let later = t0() + Duration::days(3);
    s.move_episode(
        f.practice.id,
        f.episode.id,
        EpisodeStatus::Referral,
        EpisodeStatus::Waitlist,
        later,
    )
    .await
    .unwrap();
    // A stale move (from a status it is no longer in) fails and changes nothing.
    assert!(s
        .move_episode(
            f.practice.id,
            f.episode.id,
            EpisodeStatus::Referral,
            EpisodeStatus::Active,
            later
        )
        .await
        .is_err());
    let e = s
        .episode(f.practice.id, f.episode.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (e.status, e.status_changed_at),
        (EpisodeStatus::Waitlist, later)
    );
    s.set_primary_clinician(f.practice.id, f.episode.id, f.clinician.id)
        .await
        .unwrap();
    assert_eq!(
        s.episodes_for_client(f.practice.id, f.client.id)
            .await
            .unwrap()[0]
            .primary_clinician,
        Some(f.clinician.id)
    );
    assert!(s
        .episodes_for_client(f.other.id, f.client.id)
        .await
        .unwrap()
        .is_empty());
}

async fn concurrent_episode_moves_let_exactly_one_win(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let mut tasks = Vec::new();
    for i in 0..16 {
        let s = s.clone();
        let (p, e) = (f.practice.id, f.episode.id);
        let to = if i % 2 == 0 {
            EpisodeStatus::Active
        } else {
            EpisodeStatus::Discharged
        };
        tasks.push(tokio::spawn(async move {
            s.move_episode(p, e, EpisodeStatus::Referral, to, t0())
                .await
                .is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

async fn care_relationships_are_unique_while_current(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let rel = CareRelationship::begin(
        f.practice.id,
        f.clinician.id,
        f.client.id,
        CareRole::Treating,
        t0(),
    );
    s.insert_care_relationship(&rel).await.unwrap();
    let again = CareRelationship::begin(
        f.practice.id,
        f.clinician.id,
        f.client.id,
        CareRole::Treating,
        t0(),
    );
    assert!(matches!(
        s.insert_care_relationship(&again).await,
        Err(StoreError::Conflict(_))
    ));
    // A different role for the same pair is allowed.
    let sup = CareRelationship::begin(
        f.practice.id,
        f.clinician.id,
        f.client.id,
        CareRole::Supervising,
        t0(),
    );
    s.insert_care_relationship(&sup).await.unwrap();
    assert_eq!(
        s.care_for_client(f.practice.id, f.client.id)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(s
        .care_for_client(f.other.id, f.client.id)
        .await
        .unwrap()
        .is_empty());
    // A client account cannot be made someone's clinician.
    let client_user = User::new(f.practice.id, "c@example.org", "C", Role::Client, t0()).unwrap();
    s.insert_user(&client_user, None).await.unwrap();
    let bogus = CareRelationship::begin(
        f.practice.id,
        client_user.id,
        f.client.id,
        CareRole::Treating,
        t0(),
    );
    assert!(matches!(
        s.insert_care_relationship(&bogus).await,
        Err(StoreError::NotFound(_))
    ));
    // Ending it frees the slot; it is kept as history.
    let end = t0() + Duration::days(30);
    assert!(s
        .end_care_relationship(f.other.id, rel.id, end)
        .await
        .is_err());
    s.end_care_relationship(f.practice.id, rel.id, end)
        .await
        .unwrap();
    assert!(s
        .end_care_relationship(f.practice.id, rel.id, end)
        .await
        .is_err());
    s.insert_care_relationship(&again).await.unwrap();
    let mine = s
        .care_for_clinician(f.practice.id, f.clinician.id)
        .await
        .unwrap();
    assert_eq!(mine.len(), 3);
    assert_eq!(mine.iter().filter(|r| r.is_current(end)).count(), 2);
}

async fn submissions_are_idempotent_and_keep_raw_answers(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let answers = vec![
        Some(1),
        Some(2),
        None,
        Some(3),
        Some(0),
        Some(0),
        Some(2),
        Some(1),
        Some(1),
    ];
    let first = submission(&f, answers.clone(), Some("retry-1"));
    assert_eq!(
        s.insert_submission(&first).await.unwrap(),
        Stored::New(first.id)
    );
    // A retry (new id, same key, same answers) returns the first id.
    let retry = submission(&f, answers.clone(), Some("retry-1"));
    assert_eq!(
        s.insert_submission(&retry).await.unwrap(),
        Stored::AlreadyStored(first.id)
    );
    // The same key with other answers is refused; nothing changes.
    let other = submission(&f, vec![Some(3); 9], Some("retry-1"));
    assert!(matches!(
        s.insert_submission(&other).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = s
        .submissions_for_episode(f.practice.id, f.episode.id)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].answers, Answers::from_options(&answers).values);
    assert_eq!(stored[0], first);
    // The same key in another practice is a different key.
    assert!(s.submission(f.other.id, first.id).await.unwrap().is_none());
    // Without a key, identical answers are two submissions.
    s.insert_submission(&submission(&f, answers.clone(), None))
        .await
        .unwrap();
    s.insert_submission(&submission(&f, answers.clone(), None))
        .await
        .unwrap();
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 3);
    // Concurrent retries of one key store exactly one row.
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        let sub = submission(&f, answers.clone(), Some("burst"));
        tasks.push(tokio::spawn(async move {
            s.insert_submission(&sub).await.unwrap().id()
        }));
    }
    let mut ids = std::collections::BTreeSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 4);
}

async fn group_commit_is_all_or_nothing(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    s.insert_submissions(&[]).await.unwrap();
    let batch: Vec<_> = (0..500)
        .map(|i| submission(&f, vec![Some((i % 4) as u8); 9], None))
        .collect();
    s.insert_submissions(&batch).await.unwrap();
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 500);
    // A batch with one bad row (duplicate id) stores none of its rows.
    let mut bad: Vec<_> = (0..10)
        .map(|_| submission(&f, vec![Some(1); 9], None))
        .collect();
    bad[7].id = batch[0].id;
    assert!(s.insert_submissions(&bad).await.is_err());
    assert_eq!(s.count_submissions(f.practice.id).await.unwrap(), 500);
}

async fn bootstrap_token_is_single_use(s: Arc<dyn Store>) {
    s.insert_bootstrap_token("hash-1", t0()).await.unwrap();
    assert!(matches!(
        s.insert_bootstrap_token("hash-1", t0()).await,
        Err(StoreError::Conflict(_))
    ));
    let practice = Practice::new("New Practice", "Europe/Dublin", t0()).unwrap();
    let owner = User::new(
        practice.id,
        "owner@example.org",
        "Owner",
        Role::PracticeOwner,
        t0(),
    )
    .unwrap();
    // Unknown token: nothing is created.
    assert!(matches!(
        s.complete_bootstrap("nope", &practice, &owner, "$argon2id$h", t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.practice(practice.id).await.unwrap().is_none());
    assert_eq!(s.count_users().await.unwrap(), 0);
    s.complete_bootstrap("hash-1", &practice, &owner, "$argon2id$h", t0())
        .await
        .unwrap();
    assert_eq!(
        s.user(practice.id, owner.id).await.unwrap().unwrap().role,
        Role::PracticeOwner
    );
    // Second use: refused, nothing else created.
    let p2 = Practice::new("Second", "Europe/Dublin", t0()).unwrap();
    let o2 = User::new(
        p2.id,
        "owner2@example.org",
        "Owner 2",
        Role::PracticeOwner,
        t0(),
    )
    .unwrap();
    assert!(matches!(
        s.complete_bootstrap("hash-1", &p2, &o2, "$argon2id$h", t0())
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.practice(p2.id).await.unwrap().is_none());
    assert_eq!(s.count_users().await.unwrap(), 1);
}
