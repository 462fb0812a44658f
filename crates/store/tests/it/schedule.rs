#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Scheduling and job-queue conformance: every case on SQLite and on
//! PostgreSQL. The headline case is the double-booking test: 64
//! concurrent bookings of one slot, 100 rounds, exactly one wins each round
//! and the losers leave nothing behind.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc, Weekday};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use tapestry_domain::client::Client;
use tapestry_domain::identity::token::SecretToken;
use tapestry_domain::ids::*;
use tapestry_domain::practice::{Practice, TimeZoneName};
use tapestry_domain::schedule::*;
use tapestry_domain::user::{Role, User};
use tapestry_store::{
    ClinicianSchedule, Enqueued, JobState, NewJob, OccurrenceOutcome, PgStore, Series, SqliteStore,
    Store, StoreError, OVERLAP,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    no_double_booking_under_64_concurrent_bookings_for_100_rounds,
    overlaps_are_refused_touching_and_cancelled_are_not,
    appointments_are_invisible_across_practices,
    status_changes_are_compare_and_set,
    reschedule_is_all_or_nothing,
    series_books_free_occurrences_and_reports_conflicts,
    schedules_and_types_round_trip,
    client_time_zones_are_stored_per_practice,
    feed_tokens_are_hashed_and_revocable,
    enqueue_is_idempotent_per_practice,
    concurrent_workers_never_run_a_job_twice,
    crashed_claims_are_retried_after_the_lease,
    failures_back_off_then_fail_for_good,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    clinician: User,
    second_clinician: User,
    client: Client,
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
    let second_clinician = User::new(
        practice.id,
        "dr.os@riverside.example",
        "Dr Os",
        Role::Clinician,
        t0(),
    )
    .unwrap();
    s.insert_user(&clinician, None).await.unwrap();
    s.insert_user(&second_clinician, None).await.unwrap();
    let client = Client::new(practice.id, "Sam Client", None, Some("GB"), t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    Fixture {
        practice,
        other,
        clinician,
        second_clinician,
        client,
    }
}

fn session() -> AppointmentType {
    AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap()
}

fn appt(f: &Fixture, clinician: &User, start: DateTime<Utc>) -> Appointment {
    Appointment::book(
        f.practice.id,
        clinician.id,
        f.client.id,
        session(),
        start,
        t0(),
    )
    .unwrap()
}

fn is_overlap<T: std::fmt::Debug>(r: &Result<T, StoreError>) -> bool {
    matches!(r, Err(StoreError::Conflict(m)) if *m == OVERLAP)
}

async fn no_double_booking_under_64_concurrent_bookings_for_100_rounds(s: Arc<dyn Store>) {
    let f = Arc::new(fixture(&s).await);
    const ROUNDS: usize = 100;
    const CONTENDERS: i64 = 64;
    let mut winners = Vec::new();
    for round in 0..ROUNDS {
        let slot = t0() + Duration::days(1) + Duration::hours(2 * round as i64);
        let mut tasks = Vec::new();
        for i in 0..CONTENDERS {
            // Starts spread over ±20 min around the slot: every pair overlaps
            // (each 50-minute session contains slot + 20 min).
            let start = slot + Duration::minutes((i % 41) - 20);
            let a = appt(&f, &f.clinician, start);
            let s = s.clone();
            tasks.push(tokio::spawn(
                async move { (a.id, s.book_appointment(&a).await) },
            ));
        }
        let mut ok = Vec::new();
        let mut losers = Vec::new();
        for t in tasks {
            let (id, r) = t.await.unwrap();
            match r {
                Ok(()) => ok.push(id),
                Err(_) => {
                    assert!(is_overlap(&r), "round {round}: a losing booking failed with {r:?}, not an overlap conflict");
                    losers.push(id);
                }
            }
        }
        assert_eq!(
            ok.len(),
            1,
            "round {round}: {} bookings succeeded",
            ok.len()
        );
        assert_eq!(losers.len(), CONTENDERS as usize - 1);
        for id in losers.iter().take(8) {
            assert!(
                s.appointment(f.practice.id, *id).await.unwrap().is_none(),
                "round {round}: a failed booking left a row"
            );
        }
        winners.extend(ok);
    }
    let all = s
        .appointments_for_clinician(
            f.practice.id,
            f.clinician.id,
            t0(),
            t0() + Duration::days(30),
        )
        .await
        .unwrap();
    assert_eq!(
        all.len(),
        ROUNDS,
        "exactly one appointment per round remains"
    );
    let mut ids: Vec<_> = all.iter().map(|a| a.id).collect();
    ids.sort();
    winners.sort();
    assert_eq!(ids, winners);
    for pair in all.windows(2) {
        assert!(!pair[0].interval().overlaps(&pair[1].interval()));
    }
}

async fn overlaps_are_refused_touching_and_cancelled_are_not(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let start = t0() + Duration::days(1);
    let a = appt(&f, &f.clinician, start);
    s.book_appointment(&a).await.unwrap();
    assert_eq!(
        s.appointment(f.practice.id, a.id).await.unwrap().unwrap(),
        a
    );
    // Same id again: a conflict, not a second row.
    assert!(matches!(
        s.book_appointment(&a).await,
        Err(StoreError::Conflict(_))
    ));
    // Overlapping by one minute at either end.
    assert!(is_overlap(
        &s.book_appointment(&appt(&f, &f.clinician, start + Duration::minutes(49)))
            .await
    ));
    assert!(is_overlap(
        &s.book_appointment(&appt(&f, &f.clinician, start - Duration::minutes(49)))
            .await
    ));
    // Touching: ends exactly when the next starts.
    s.book_appointment(&appt(&f, &f.clinician, start + Duration::minutes(50)))
        .await
        .unwrap();
    s.book_appointment(&appt(&f, &f.clinician, start - Duration::minutes(50)))
        .await
        .unwrap();
    // Another clinician at the same time is fine.
    s.book_appointment(&appt(&f, &f.second_clinician, start))
        .await
        .unwrap();
    // Cancelling frees the slot.
    s.set_appointment_status(
        f.practice.id,
        a.id,
        AppointmentStatus::Booked,
        AppointmentStatus::Cancelled,
        false,
        t0(),
    )
    .await
    .unwrap();
    let again = appt(&f, &f.clinician, start);
    s.book_appointment(&again).await.unwrap();
    // Attended and no-show keep holding their time.
    s.set_appointment_status(
        f.practice.id,
        again.id,
        AppointmentStatus::Booked,
        AppointmentStatus::NoShow,
        false,
        start + Duration::minutes(20),
    )
    .await
    .unwrap();
    assert!(is_overlap(
        &s.book_appointment(&appt(&f, &f.clinician, start)).await
    ));
}

async fn appointments_are_invisible_across_practices(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let a = appt(&f, &f.clinician, t0() + Duration::days(2));
    s.book_appointment(&a).await.unwrap();
    assert!(s.appointment(f.other.id, a.id).await.unwrap().is_none());
    assert!(s
        .appointments_for_client(f.other.id, f.client.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .appointments_for_clinician(f.other.id, f.clinician.id, t0(), t0() + Duration::days(9))
        .await
        .unwrap()
        .is_empty());
    assert!(matches!(
        s.set_appointment_status(
            f.other.id,
            a.id,
            AppointmentStatus::Booked,
            AppointmentStatus::Cancelled,
            false,
            t0()
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s
        .booked_starting_between(f.other.id, t0(), t0() + Duration::days(9))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.booked_starting_between(f.practice.id, t0(), t0() + Duration::days(9))
            .await
            .unwrap(),
        vec![a.clone()]
    );
    assert!(
        s.booked_starting_between(f.practice.id, t0(), a.starts_at)
            .await
            .unwrap()
            .is_empty(),
        "the end is exclusive"
    );
    assert_eq!(
        s.appointments_for_client(f.practice.id, f.client.id)
            .await
            .unwrap(),
        vec![a]
    );
}

async fn status_changes_are_compare_and_set(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let a = appt(&f, &f.clinician, t0() + Duration::days(1));
    s.book_appointment(&a).await.unwrap();
    let p = f.practice.id;
    s.set_appointment_status(
        p,
        a.id,
        AppointmentStatus::Booked,
        AppointmentStatus::Cancelled,
        true,
        t0(),
    )
    .await
    .unwrap();
    let stored = s.appointment(p, a.id).await.unwrap().unwrap();
    assert_eq!(stored.status, AppointmentStatus::Cancelled);
    assert!(stored.late_cancel);
    // Second cancellation: it is no longer booked.
    assert!(matches!(
        s.set_appointment_status(
            p,
            a.id,
            AppointmentStatus::Booked,
            AppointmentStatus::Cancelled,
            false,
            t0()
        )
        .await,
        Err(StoreError::NotFound(_))
    ));
    // Restoring a cancelled appointment would bypass the overlap rule.
    assert!(matches!(
        s.set_appointment_status(
            p,
            a.id,
            AppointmentStatus::Cancelled,
            AppointmentStatus::Booked,
            false,
            t0()
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
}

async fn reschedule_is_all_or_nothing(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let p = f.practice.id;
    let start = t0() + Duration::days(3);
    let a = appt(&f, &f.clinician, start);
    let b = appt(&f, &f.clinician, start + Duration::hours(2));
    s.book_appointment(&a).await.unwrap();
    s.book_appointment(&b).await.unwrap();
    // Onto b's time: refused, a stays booked, nothing new stored.
    let clash = appt(
        &f,
        &f.clinician,
        start + Duration::hours(2) + Duration::minutes(10),
    );
    assert!(is_overlap(&s.reschedule(p, a.id, false, &clash).await));
    assert_eq!(
        s.appointment(p, a.id).await.unwrap().unwrap().status,
        AppointmentStatus::Booked
    );
    assert!(s.appointment(p, clash.id).await.unwrap().is_none());
    // Thirty minutes later, overlapping only its own old time: allowed.
    let moved = appt(&f, &f.clinician, start + Duration::minutes(30));
    s.reschedule(p, a.id, true, &moved).await.unwrap();
    let old = s.appointment(p, a.id).await.unwrap().unwrap();
    assert_eq!(old.status, AppointmentStatus::Cancelled);
    assert!(old.late_cancel);
    assert_eq!(
        s.appointment(p, moved.id).await.unwrap().unwrap().status,
        AppointmentStatus::Booked
    );
    // Rescheduling an unknown or already-cancelled appointment stores nothing.
    let ghost = appt(&f, &f.clinician, start + Duration::days(1));
    assert!(matches!(
        s.reschedule(p, a.id, false, &ghost).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.appointment(p, ghost.id).await.unwrap().is_none());
}

async fn series_books_free_occurrences_and_reports_conflicts(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let first = NaiveTime::from_hms_opt(10, 0, 0).unwrap();
    let rule = Recurrence {
        every: Every::Weekly,
        until: Until::Count(4),
    };
    let occ = occurrences(
        chrono::NaiveDate::from_ymd_opt(2026, 3, 16)
            .unwrap()
            .and_time(first),
        "Europe/London",
        50,
        rule,
    )
    .unwrap();
    // The third week is already taken.
    s.book_appointment(&appt(
        &f,
        &f.clinician,
        occ[2].start + Duration::minutes(30),
    ))
    .await
    .unwrap();
    let series = Series {
        id: SeriesId::random(),
        practice_id: f.practice.id,
        clinician: f.clinician.id,
        client_id: f.client.id,
        recurrence: rule,
        created_at: t0(),
    };
    let appts: Vec<_> = occ
        .iter()
        .map(|o| appt(&f, &f.clinician, o.start))
        .collect();
    let out = s.book_series(&series, &appts).await.unwrap();
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, OccurrenceOutcome::Booked(_)))
            .count(),
        3
    );
    assert_eq!(out[2], OccurrenceOutcome::Conflict(occ[2].start));
    // The fourth week (30 March) is after the EU change: 09:00 UTC = 10:00 BST.
    assert_eq!(
        occ[3].start,
        Utc.with_ymd_and_hms(2026, 4, 6, 9, 0, 0).unwrap()
    );
    let stored = s
        .appointments_for_client(f.practice.id, f.client.id)
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .filter(|a| a.series_id == Some(series.id))
            .count(),
        3
    );
}

async fn client_time_zones_are_stored_per_practice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let zone = |p: PracticeId| {
        let s = s.clone();
        let c = f.client.id;
        async move { s.client(p, c).await.unwrap().map(|c| c.time_zone) }
    };
    // A new client has none; one inserted with a zone keeps it.
    assert_eq!(zone(f.practice.id).await, Some(None));
    let ny = TimeZoneName::parse("America/New_York").unwrap();
    s.set_client_time_zone(f.practice.id, f.client.id, Some(&ny))
        .await
        .unwrap();
    assert_eq!(zone(f.practice.id).await, Some(Some(ny.clone())));
    // Another practice cannot see or set it.
    assert!(matches!(
        s.set_client_time_zone(f.other.id, f.client.id, None).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(zone(f.other.id).await, None);
    assert_eq!(zone(f.practice.id).await, Some(Some(ny)));
    // Cleared again.
    s.set_client_time_zone(f.practice.id, f.client.id, None)
        .await
        .unwrap();
    assert_eq!(zone(f.practice.id).await, Some(None));
    let mut born = Client::new(f.practice.id, "Zoned", None, None, t0()).unwrap();
    born.time_zone = Some(TimeZoneName::parse("Asia/Kolkata").unwrap());
    s.insert_client(&born).await.unwrap();
    assert_eq!(
        s.client(f.practice.id, born.id).await.unwrap().unwrap(),
        born
    );
}

async fn schedules_and_types_round_trip(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
    let schedule = ClinicianSchedule {
        practice_id: f.practice.id,
        clinician: f.clinician.id,
        availability: Availability {
            time_zone: "Europe/London".into(),
            weekly: vec![WeeklyHours {
                weekday: Weekday::Mon,
                start: t(9),
                end: t(17),
            }],
            exceptions: vec![Exception::DayOff {
                date: chrono::NaiveDate::from_ymd_opt(2026, 12, 28).unwrap(),
            }],
        },
        rules: BookingRules::default(),
        policy: CancellationPolicy {
            late_cancel_hours: 48,
        },
        updated_at: t0(),
    };
    s.put_clinician_schedule(&schedule).await.unwrap();
    assert_eq!(
        s.clinician_schedule(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap(),
        schedule
    );
    assert!(s
        .clinician_schedule(f.other.id, f.clinician.id)
        .await
        .unwrap()
        .is_none());
    let mut changed = schedule.clone();
    changed.availability.time_zone = "America/New_York".into();
    s.put_clinician_schedule(&changed).await.unwrap();
    assert_eq!(
        s.clinician_schedule(f.practice.id, f.clinician.id)
            .await
            .unwrap()
            .unwrap(),
        changed
    );
    s.add_appointment_type(f.practice.id, session())
        .await
        .unwrap();
    s.add_appointment_type(f.practice.id, session())
        .await
        .unwrap();
    let intake = AppointmentType::new(AppointmentKind::Intake, 60, Format::InPerson).unwrap();
    s.add_appointment_type(f.practice.id, intake).await.unwrap();
    assert_eq!(
        s.appointment_types(f.practice.id).await.unwrap(),
        vec![intake, session()]
    );
    assert!(s.appointment_types(f.other.id).await.unwrap().is_empty());
}

async fn feed_tokens_are_hashed_and_revocable(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let first = SecretToken::generate();
    let second = SecretToken::generate();
    let h1 = first.hash().to_hex();
    let h2 = second.hash().to_hex();
    s.replace_feed_token(f.practice.id, f.clinician.id, &h1, t0())
        .await
        .unwrap();
    assert_eq!(
        s.feed_owner(&h1).await.unwrap(),
        Some((f.practice.id, f.clinician.id))
    );
    // The secret itself never opens the feed: only its hash is stored.
    assert_eq!(s.feed_owner(first.expose()).await.unwrap(), None);
    s.replace_feed_token(f.practice.id, f.clinician.id, &h2, t0())
        .await
        .unwrap();
    assert_eq!(
        s.feed_owner(&h1).await.unwrap(),
        None,
        "the old URL stops working"
    );
    assert_eq!(
        s.feed_owner(&h2).await.unwrap(),
        Some((f.practice.id, f.clinician.id))
    );
    assert_eq!(
        s.revoke_feed_tokens(f.practice.id, f.clinician.id, t0())
            .await
            .unwrap(),
        1
    );
    assert_eq!(s.feed_owner(&h2).await.unwrap(), None);
    assert_eq!(
        s.revoke_feed_tokens(f.practice.id, f.clinician.id, t0())
            .await
            .unwrap(),
        0
    );
}

fn job(practice: PracticeId, key: &str, run_after: DateTime<Utc>, max_attempts: u32) -> NewJob {
    NewJob {
        practice_id: practice,
        key: key.into(),
        kind: "test".into(),
        payload: "{}".into(),
        run_after,
        max_attempts,
    }
}

async fn enqueue_is_idempotent_per_practice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let first = s
        .enqueue(&job(f.practice.id, "reminder:a:24h", t0(), 3), t0())
        .await
        .unwrap();
    assert!(matches!(first, Enqueued::New(_)));
    let again = s
        .enqueue(&job(f.practice.id, "reminder:a:24h", t0(), 3), t0())
        .await
        .unwrap();
    assert_eq!(again, Enqueued::AlreadyQueued(first.id()));
    let other = s
        .enqueue(&job(f.other.id, "reminder:a:24h", t0(), 3), t0())
        .await
        .unwrap();
    assert!(matches!(other, Enqueued::New(id) if id != first.id()));
    assert_eq!(
        s.count_jobs(f.practice.id, JobState::Queued).await.unwrap(),
        1
    );
    assert!(s.job(f.other.id, first.id()).await.unwrap().is_none());
    assert!(s
        .enqueue(&job(f.practice.id, "", t0(), 3), t0())
        .await
        .is_err());
    // Not yet due: nothing to claim.
    let later = s
        .enqueue(
            &job(f.practice.id, "later", t0() + Duration::hours(1), 3),
            t0(),
        )
        .await
        .unwrap();
    let c1 = s
        .claim_job("w", t0(), Duration::minutes(5))
        .await
        .unwrap()
        .unwrap();
    let c2 = s
        .claim_job("w", t0(), Duration::minutes(5))
        .await
        .unwrap()
        .unwrap();
    assert!(![c1.id, c2.id].contains(&later.id()));
    assert!(s
        .claim_job("w", t0(), Duration::minutes(5))
        .await
        .unwrap()
        .is_none());
}

async fn concurrent_workers_never_run_a_job_twice(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    const JOBS: usize = 200;
    for i in 0..JOBS {
        s.enqueue(&job(f.practice.id, &format!("job-{i}"), t0(), 3), t0())
            .await
            .unwrap();
    }
    let runs: Arc<Mutex<HashMap<JobId, u32>>> = Arc::default();
    let mut workers = Vec::new();
    for w in 0..8 {
        let s = s.clone();
        let runs = runs.clone();
        workers.push(tokio::spawn(async move {
            let name = format!("worker-{w}");
            while let Some(j) = s
                .claim_job(&name, t0(), Duration::minutes(5))
                .await
                .unwrap()
            {
                *runs.lock().unwrap().entry(j.id).or_default() += 1;
                s.complete_job(j.practice_id, j.id, &name, t0())
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    let runs = runs.lock().unwrap().clone();
    assert_eq!(runs.len(), JOBS);
    assert!(runs.values().all(|&n| n == 1), "a job ran twice");
    assert_eq!(
        s.count_jobs(f.practice.id, JobState::Done).await.unwrap(),
        JOBS as u64
    );
}

async fn crashed_claims_are_retried_after_the_lease(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let lease = Duration::minutes(5);
    let id = s
        .enqueue(&job(f.practice.id, "k", t0(), 3), t0())
        .await
        .unwrap()
        .id();
    let a = s.claim_job("crashed", t0(), lease).await.unwrap().unwrap();
    assert_eq!((a.id, a.attempts, a.state), (id, 1, JobState::Running));
    // Within the lease nobody else may take it.
    assert!(s
        .claim_job("b", t0() + Duration::minutes(4), lease)
        .await
        .unwrap()
        .is_none());
    let b = s
        .claim_job("b", t0() + Duration::minutes(6), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (b.id, b.attempts, b.claimed_by.as_deref()),
        (id, 2, Some("b"))
    );
    // The crashed worker's late completion is refused; b's is accepted.
    assert!(matches!(
        s.complete_job(f.practice.id, id, "crashed", t0()).await,
        Err(StoreError::NotFound(_))
    ));
    s.complete_job(f.practice.id, id, "b", t0() + Duration::minutes(7))
        .await
        .unwrap();
    assert_eq!(
        s.job(f.practice.id, id).await.unwrap().unwrap().state,
        JobState::Done
    );
    // A job whose last allowed attempt crashed is failed, not run again.
    let once = s
        .enqueue(&job(f.practice.id, "once", t0(), 1), t0())
        .await
        .unwrap()
        .id();
    s.claim_job("crashed", t0(), lease).await.unwrap().unwrap();
    assert!(s
        .claim_job("c", t0() + Duration::hours(1), lease)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        s.job(f.practice.id, once).await.unwrap().unwrap().state,
        JobState::Failed
    );
}

async fn failures_back_off_then_fail_for_good(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let lease = Duration::minutes(5);
    let id = s
        .enqueue(&job(f.practice.id, "k", t0(), 2), t0())
        .await
        .unwrap()
        .id();
    s.claim_job("w", t0(), lease).await.unwrap().unwrap();
    assert_eq!(
        s.fail_job(f.practice.id, id, "w", "smtp: connection refused", t0())
            .await
            .unwrap(),
        JobState::Queued
    );
    let stored = s.job(f.practice.id, id).await.unwrap().unwrap();
    assert_eq!(stored.run_after, t0() + Duration::seconds(30));
    assert_eq!(
        stored.last_error.as_deref(),
        Some("smtp: connection refused")
    );
    assert!(s
        .claim_job("w", t0() + Duration::seconds(29), lease)
        .await
        .unwrap()
        .is_none());
    s.claim_job("w", t0() + Duration::seconds(30), lease)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.fail_job(f.practice.id, id, "w", &"x".repeat(10_000), t0())
            .await
            .unwrap(),
        JobState::Failed
    );
    let stored = s.job(f.practice.id, id).await.unwrap().unwrap();
    assert_eq!(
        stored.last_error.map(|e| e.len()),
        Some(500),
        "huge errors are bounded"
    );
    assert!(s
        .claim_job("w", t0() + Duration::days(1), lease)
        .await
        .unwrap()
        .is_none());
}

/// The in-process write gate only shortens waiting; the guarantee on SQLite
/// is the immediate transaction. Here another connection (as another process
/// would) holds the write lock with an uncommitted overlapping appointment:
/// the store's booking waits for it, then sees it and refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_immediate_transaction_holds_off_another_writer() {
    use sqlx::Connection as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapestry.db");
    let store = SqliteStore::open(&path).await.unwrap();
    store.migrate().await.unwrap();
    let s: Arc<dyn Store> = Arc::new(store);
    let f = fixture(&s).await;
    let start = t0() + Duration::days(1);
    let other_writer = appt(&f, &f.clinician, start + Duration::minutes(10));
    let url = format!("sqlite:{}", path.display());
    let mut raw = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut raw)
        .await
        .unwrap();
    sqlx::query("INSERT INTO appointments (id, practice_id, clinician, client_id, kind, minutes, format, starts_at, ends_at, status, late_cancel, series_id, created_at, status_changed_at) VALUES ($1,$2,$3,$4,'session',50,'video',$5,$6,'booked',0,NULL,$7,$7)")
        .bind(other_writer.id.as_uuid())
        .bind(f.practice.id.as_uuid())
        .bind(f.clinician.id.as_uuid())
        .bind(f.client.id.as_uuid())
        .bind(other_writer.starts_at)
        .bind(other_writer.ends_at)
        .bind(t0())
        .execute(&mut raw)
        .await
        .unwrap();
    let mine = appt(&f, &f.clinician, start);
    let booking = {
        let s = s.clone();
        let mine = mine.clone();
        tokio::spawn(async move { s.book_appointment(&mine).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !booking.is_finished(),
        "the booking must wait for the other writer"
    );
    sqlx::query("COMMIT").execute(&mut raw).await.unwrap();
    let result = booking.await.unwrap();
    assert!(is_overlap(&result), "{result:?}");
    assert!(s
        .appointment(f.practice.id, mine.id)
        .await
        .unwrap()
        .is_none());
}

/// The exclusion constraint itself (not the store's lock or check) refuses
/// an overlapping row written by any other code path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_exclusion_constraint_refuses_a_raw_overlapping_insert() {
    let Some(url) =
        tapestry_store::testing::fresh_database(Path::new(env!("CARGO_TARGET_TMPDIR"))).await
    else {
        return;
    };
    let store = PgStore::open(&url).await.unwrap();
    store.migrate().await.unwrap();
    let s: Arc<dyn Store> = Arc::new(store.clone());
    let f = fixture(&s).await;
    let start = t0() + Duration::days(1);
    s.book_appointment(&appt(&f, &f.clinician, start))
        .await
        .unwrap();
    let insert = |a: Appointment, status: &'static str| {
        sqlx::query("INSERT INTO appointments (id, practice_id, clinician, client_id, kind, minutes, format, starts_at, ends_at, status, late_cancel, series_id, created_at, status_changed_at) VALUES ($1,$2,$3,$4,'session',50,'video',$5,$6,$7,FALSE,NULL,$8,$8)")
            .bind(a.id.as_uuid())
            .bind(a.practice_id.as_uuid())
            .bind(a.clinician.as_uuid())
            .bind(a.client_id.as_uuid())
            .bind(a.starts_at)
            .bind(a.ends_at)
            .bind(status)
            .bind(t0())
            .execute(store.pool())
    };
    let err = insert(
        appt(&f, &f.clinician, start + Duration::minutes(10)),
        "booked",
    )
    .await
    .unwrap_err();
    let code = err
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.to_string());
    assert_eq!(code.as_deref(), Some("23P01"), "{err}");
    // A cancelled row may overlap; so may another clinician's.
    insert(
        appt(&f, &f.clinician, start + Duration::minutes(10)),
        "cancelled",
    )
    .await
    .unwrap();
    insert(appt(&f, &f.second_clinician, start), "booked")
        .await
        .unwrap();
}
