//! Group-programme conformance: capacity (also under concurrent joins),
//! memberships, group sessions that never double-book a facilitator against
//! appointments or other group sessions, attendance, sealed per-member
//! notes, practice scoping; every case on SQLite and on PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::practice::Practice;
use tapestry_domain::schedule::group::*;
use tapestry_domain::schedule::*;
use tapestry_domain::user::{Role, User};
use tapestry_store::groups::{ALREADY_MEMBER, GROUP_FULL};
use tapestry_store::{AttendanceRecord, Store, StoreError, OVERLAP};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 8, 0, 0).unwrap()
}

conformance!(
    memberships_hold_capacity_and_are_practice_scoped,
    concurrent_joins_never_exceed_capacity,
    group_sessions_never_double_book_a_facilitator,
    concurrent_group_and_single_bookings_leave_one_winner,
    attendance_is_corrected_and_notes_are_sealed_per_member,
    group_chat_is_sealed_in_the_groups_record_and_practice_scoped,
    booked_group_sessions_in_a_window_for_reminders,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    facilitator: User,
    co: User,
    clients: Vec<Client>,
}

async fn fixture(s: &Arc<dyn Store>, clients: usize) -> Fixture {
    let practice = Practice::new("Riverside", "Europe/London", t0()).unwrap();
    let other = Practice::new("Hillside", "America/Toronto", t0()).unwrap();
    s.insert_practice(&practice).await.unwrap();
    s.insert_practice(&other).await.unwrap();
    let facilitator = User::new(practice.id, "f@r.example", "Dr F", Role::Clinician, t0()).unwrap();
    let co = User::new(practice.id, "c@r.example", "Dr C", Role::Clinician, t0()).unwrap();
    s.insert_user(&facilitator, None).await.unwrap();
    s.insert_user(&co, None).await.unwrap();
    let mut out = Vec::new();
    for i in 0..clients {
        let c = Client::new(practice.id, &format!("Member {i}"), None, None, t0()).unwrap();
        s.insert_client(&c).await.unwrap();
        out.push(c);
    }
    Fixture {
        practice,
        other,
        facilitator,
        co,
        clients: out,
    }
}

fn programme(f: &Fixture, capacity: u32, co: bool) -> GroupProgramme {
    GroupProgramme::new(
        f.practice.id,
        f.facilitator.id,
        NewGroup {
            name: "Skills for worry".into(),
            kind: GroupKind::Skills,
            co_facilitator: co.then_some(f.co.id),
            capacity,
            self_enrolment: true,
            measures: vec!["gad7".into()],
        },
        t0(),
    )
    .unwrap()
}

fn member(g: &GroupProgramme, c: &Client, at: DateTime<Utc>) -> Membership {
    Membership {
        group_id: g.id,
        client_id: c.id,
        joined_at: at,
        left_at: None,
    }
}

async fn memberships_hold_capacity_and_are_practice_scoped(s: Arc<dyn Store>) {
    let f = fixture(&s, 3).await;
    let g = programme(&f, 2, true);
    s.insert_group(&g).await.unwrap();
    assert_eq!(
        s.group(f.practice.id, g.id).await.unwrap().as_ref(),
        Some(&g)
    );
    assert_eq!(
        s.groups_in_practice(f.practice.id).await.unwrap(),
        vec![g.clone()]
    );
    // Another practice does not see it and cannot add to it.
    assert_eq!(s.group(f.other.id, g.id).await.unwrap(), None);
    assert!(s.groups_in_practice(f.other.id).await.unwrap().is_empty());
    assert!(matches!(
        s.add_member(f.other.id, &member(&g, &f.clients[0], t0()))
            .await,
        Err(StoreError::NotFound(_))
    ));

    let (a, b, c) = (&f.clients[0], &f.clients[1], &f.clients[2]);
    s.add_member(f.practice.id, &member(&g, a, t0()))
        .await
        .unwrap();
    // A duplicate is refused and does not use up a place.
    assert!(matches!(
        s.add_member(f.practice.id, &member(&g, a, t0() + Duration::minutes(1))).await,
        Err(StoreError::Conflict(m)) if m == ALREADY_MEMBER
    ));
    s.add_member(f.practice.id, &member(&g, b, t0()))
        .await
        .unwrap();
    assert!(matches!(
        s.add_member(f.practice.id, &member(&g, c, t0())).await,
        Err(StoreError::Conflict(m)) if m == GROUP_FULL
    ));
    assert_eq!(
        s.groups_for_client(f.practice.id, a.id)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .groups_for_client(f.practice.id, c.id)
        .await
        .unwrap()
        .is_empty());

    // Leaving frees the place; leaving twice is not found.
    let left_at = t0() + Duration::days(1);
    s.remove_member(f.practice.id, g.id, a.id, left_at)
        .await
        .unwrap();
    assert!(matches!(
        s.remove_member(f.practice.id, g.id, a.id, left_at).await,
        Err(StoreError::NotFound(_))
    ));
    s.add_member(f.practice.id, &member(&g, c, left_at))
        .await
        .unwrap();
    assert!(s
        .groups_for_client(f.practice.id, a.id)
        .await
        .unwrap()
        .is_empty());
    let all = s.memberships(f.practice.id, g.id).await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(all.iter().filter(|m| m.is_current()).count(), 2);
    assert_eq!(
        all.iter().find(|m| m.client_id == a.id).unwrap().left_at,
        Some(left_at)
    );
    assert!(s.memberships(f.other.id, g.id).await.unwrap().is_empty());
}

async fn concurrent_joins_never_exceed_capacity(s: Arc<dyn Store>) {
    let f = fixture(&s, 16).await;
    let g = programme(&f, 5, false);
    s.insert_group(&g).await.unwrap();
    let tasks: Vec<_> = f
        .clients
        .iter()
        .map(|c| {
            let s = s.clone();
            let m = member(&g, c, t0());
            let p = f.practice.id;
            tokio::spawn(async move { s.add_member(p, &m).await })
        })
        .collect();
    let mut joined = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => joined += 1,
            Err(StoreError::Conflict(m)) => assert_eq!(m, GROUP_FULL),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(joined, 5);
    let current = s.memberships(f.practice.id, g.id).await.unwrap();
    assert_eq!(current.iter().filter(|m| m.is_current()).count(), 5);
}

fn single(f: &Fixture, clinician: &User, start: DateTime<Utc>) -> Appointment {
    let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
    Appointment::book(f.practice.id, clinician.id, f.clients[0].id, t, start, t0()).unwrap()
}

async fn group_sessions_never_double_book_a_facilitator(s: Arc<dyn Store>) {
    let f = fixture(&s, 1).await;
    let g = programme(&f, 8, true);
    s.insert_group(&g).await.unwrap();
    let day = t0() + Duration::days(3);
    s.book_appointment(&single(&f, &f.facilitator, day))
        .await
        .unwrap();

    // Overlapping the facilitator's appointment: refused, nothing stored.
    let clash =
        GroupSession::schedule(&g, day + Duration::minutes(30), 90, Format::Video, t0()).unwrap();
    assert!(matches!(
        s.book_group_session(&clash).await,
        Err(StoreError::Conflict(m)) if m == OVERLAP
    ));
    assert_eq!(
        s.group_session(f.practice.id, clash.id).await.unwrap(),
        None
    );

    // Touching the appointment's end: fine.
    let ok =
        GroupSession::schedule(&g, day + Duration::minutes(50), 90, Format::Video, t0()).unwrap();
    s.book_group_session(&ok).await.unwrap();
    assert_eq!(
        s.group_session(f.practice.id, ok.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&ok)
    );
    assert_eq!(s.group_session(f.other.id, ok.id).await.unwrap(), None);

    // Now a single appointment inside the group time is refused, for the
    // facilitator and for the co-facilitator alike.
    for who in [&f.facilitator, &f.co] {
        assert!(matches!(
            s.book_appointment(&single(&f, who, day + Duration::minutes(60))).await,
            Err(StoreError::Conflict(m)) if m == OVERLAP
        ));
    }
    // A second group session at the same time is refused too.
    let twin =
        GroupSession::schedule(&g, day + Duration::minutes(50), 60, Format::Video, t0()).unwrap();
    assert!(matches!(
        s.book_group_session(&twin).await,
        Err(StoreError::Conflict(m)) if m == OVERLAP
    ));
    // The co-facilitator's own appointment blocks a group session.
    let later = day + Duration::hours(5);
    s.book_appointment(&single(&f, &f.co, later)).await.unwrap();
    let co_clash = GroupSession::schedule(&g, later, 60, Format::Video, t0()).unwrap();
    assert!(s.book_group_session(&co_clash).await.is_err());

    // The calendar part: the facilitator and co-facilitator see it.
    for who in [&f.facilitator, &f.co] {
        let cal = s
            .group_sessions_for_clinician(f.practice.id, who.id, day, day + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(cal.iter().map(|x| x.id).collect::<Vec<_>>(), vec![ok.id]);
    }
    assert_eq!(
        s.group_sessions(f.practice.id, g.id).await.unwrap().len(),
        1
    );

    // Cancelling frees the time; cancelling twice is not found.
    s.cancel_group_session(f.practice.id, ok.id, t0())
        .await
        .unwrap();
    assert!(s
        .cancel_group_session(f.practice.id, ok.id, t0())
        .await
        .is_err());
    s.book_appointment(&single(&f, &f.co, day + Duration::minutes(60)))
        .await
        .unwrap();
}

async fn concurrent_group_and_single_bookings_leave_one_winner(s: Arc<dyn Store>) {
    let f = fixture(&s, 1).await;
    let g = programme(&f, 8, false);
    s.insert_group(&g).await.unwrap();
    for round in 0..5 {
        let start = t0() + Duration::days(10 + round);
        let mut tasks = Vec::new();
        for i in 0..16 {
            let s = s.clone();
            if i % 2 == 0 {
                let gs = GroupSession::schedule(
                    &g,
                    start + Duration::minutes(i),
                    60,
                    Format::Video,
                    t0(),
                )
                .unwrap();
                tasks.push(tokio::spawn(async move { s.book_group_session(&gs).await }));
            } else {
                let a = single(&f, &f.facilitator, start + Duration::minutes(i));
                tasks.push(tokio::spawn(async move { s.book_appointment(&a).await }));
            }
        }
        let mut won = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => won += 1,
                Err(StoreError::Conflict(m)) => assert_eq!(m, OVERLAP),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert_eq!(won, 1, "round {round}");
        let held = s
            .appointments_for_clinician(
                f.practice.id,
                f.facilitator.id,
                start,
                start + Duration::hours(2),
            )
            .await
            .unwrap()
            .len()
            + s.group_sessions_for_clinician(
                f.practice.id,
                f.facilitator.id,
                start,
                start + Duration::hours(2),
            )
            .await
            .unwrap()
            .len();
        assert_eq!(held, 1, "a failed booking leaves nothing behind");
    }
}

async fn attendance_is_corrected_and_notes_are_sealed_per_member(s: Arc<dyn Store>) {
    let f = fixture(&s, 2).await;
    let g = programme(&f, 8, true);
    s.insert_group(&g).await.unwrap();
    let session =
        GroupSession::schedule(&g, t0() + Duration::days(1), 60, Format::Video, t0()).unwrap();
    s.book_group_session(&session).await.unwrap();
    let (a, b) = (&f.clients[0], &f.clients[1]);
    let record = |c: &Client, status| AttendanceRecord {
        session_id: session.id,
        client_id: c.id,
        status,
        recorded_by: f.facilitator.id,
        recorded_at: session.starts_at,
    };
    s.set_attendance(f.practice.id, &record(a, Attendance::Absent))
        .await
        .unwrap();
    s.set_attendance(f.practice.id, &record(b, Attendance::Cancelled))
        .await
        .unwrap();
    // A correction replaces the first record.
    s.set_attendance(f.practice.id, &record(a, Attendance::Present))
        .await
        .unwrap();
    let got = s.attendance(f.practice.id, session.id).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got.iter().find(|r| r.client_id == a.id).unwrap().status,
        Attendance::Present
    );
    // Another practice records nothing and reads nothing.
    s.set_attendance(f.other.id, &record(b, Attendance::Present))
        .await
        .unwrap();
    assert_eq!(
        s.attendance(f.practice.id, session.id)
            .await
            .unwrap()
            .iter()
            .find(|r| r.client_id == b.id)
            .unwrap()
            .status,
        Attendance::Cancelled
    );
    assert!(s
        .attendance(f.other.id, session.id)
        .await
        .unwrap()
        .is_empty());

    let text = "Practised the worry postponement skill; a little tearful.";
    let note = GroupNote::new(&g, a.id, Some(session.id), f.co.id, text, t0()).unwrap();
    s.add_group_note(&note).await.unwrap();
    assert_eq!(
        s.group_notes(f.practice.id, g.id, a.id).await.unwrap(),
        vec![note.clone()]
    );
    // Per member: b has none; another practice has none.
    assert!(s
        .group_notes(f.practice.id, g.id, b.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .group_notes(f.other.id, g.id, a.id)
        .await
        .unwrap()
        .is_empty());
    // The same id twice is a conflict.
    assert!(matches!(
        s.add_group_note(&note).await,
        Err(StoreError::Conflict(_))
    ));
}

async fn group_chat_is_sealed_in_the_groups_record_and_practice_scoped(s: Arc<dyn Store>) {
    use tapestry_store::GroupChatLine;
    let f = fixture(&s, 0).await;
    let g = programme(&f, 4, false);
    s.insert_group(&g).await.unwrap();
    let other_group = programme(&f, 4, false);
    s.insert_group(&other_group).await.unwrap();
    let session =
        GroupSession::schedule(&g, t0() + Duration::hours(2), 60, Format::Video, t0()).unwrap();
    s.book_group_session(&session).await.unwrap();
    let line = |body: &str, at: i64| GroupChatLine {
        id: uuid::Uuid::now_v7(),
        practice_id: f.practice.id,
        group_id: g.id,
        session_id: session.id,
        sender: f.facilitator.id,
        body: body.into(),
        sent_at: t0() + Duration::minutes(at),
    };
    let first = line("Welcome — CANARY-chat", 1);
    s.append_group_chat_line(&first).await.unwrap();
    s.append_group_chat_line(&line("second", 2)).await.unwrap();
    // The same id twice is refused.
    assert!(s.append_group_chat_line(&first).await.is_err());
    // A session of another group, or another practice: not found, nothing stored.
    let mut wrong = line("x", 3);
    wrong.group_id = other_group.id;
    assert!(matches!(
        s.append_group_chat_line(&wrong).await,
        Err(StoreError::NotFound(_))
    ));
    let mut foreign = line("x", 3);
    foreign.practice_id = f.other.id;
    assert!(s.append_group_chat_line(&foreign).await.is_err());
    let t = s.group_chat_transcript(f.practice.id, g.id).await.unwrap();
    assert_eq!(
        t.iter().map(|l| l.body.as_str()).collect::<Vec<_>>(),
        vec!["Welcome — CANARY-chat", "second"]
    );
    assert_eq!(t[0], first);
    assert!(s
        .group_chat_transcript(f.other.id, g.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .group_chat_transcript(f.practice.id, other_group.id)
        .await
        .unwrap()
        .is_empty());
}

async fn booked_group_sessions_in_a_window_for_reminders(s: Arc<dyn Store>) {
    let f = fixture(&s, 0).await;
    let g = programme(&f, 4, false);
    s.insert_group(&g).await.unwrap();
    let at = |h: i64| {
        GroupSession::schedule(&g, t0() + Duration::hours(h), 60, Format::Video, t0()).unwrap()
    };
    let (early, inside, cancelled, late) = (at(1), at(5), at(9), at(30));
    for x in [&early, &inside, &cancelled, &late] {
        s.book_group_session(x).await.unwrap();
    }
    s.cancel_group_session(f.practice.id, cancelled.id, t0())
        .await
        .unwrap();
    let due = s
        .booked_group_sessions_starting_between(
            f.practice.id,
            t0() + Duration::hours(2),
            t0() + Duration::hours(25),
        )
        .await
        .unwrap();
    assert_eq!(
        due.iter().map(|x| x.id).collect::<Vec<_>>(),
        vec![inside.id]
    );
    assert!(s
        .booked_group_sessions_starting_between(f.other.id, t0(), t0() + Duration::days(2))
        .await
        .unwrap()
        .is_empty());
}
