#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Messaging conformance (secure messages, attachments, read state, reply
//! promise, urgent task, chat transcripts): every case on SQLite and on
//! PostgreSQL.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::episode::Episode;
use tapestry_domain::ids::*;
use tapestry_domain::ingest::{ClinicianTask, TaskKind};
use tapestry_domain::practice::Practice;
use tapestry_domain::risk::RiskColour;
use tapestry_domain::schedule::*;
use tapestry_domain::user::{Role, User};
use tapestry_store::{Attachment, ChatLine, SecureMessage, Store, StoreError};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    messages_round_trip_with_attachment_and_task,
    read_state_marks_only_the_other_side,
    reply_promise_is_set_and_removed,
    chat_transcripts_round_trip_per_appointment,
    practice_phrase_lists_round_trip_per_practice,
);

struct Fixture {
    practice: Practice,
    other: Practice,
    clinician: User,
    client_user: User,
    client: Client,
    episode: Episode,
}

async fn fixture(s: &Arc<dyn Store>) -> Fixture {
    let practice = Practice::new("Riverside", "Europe/London", t0()).unwrap();
    let other = Practice::new("Hillside", "America/Toronto", t0()).unwrap();
    s.insert_practice(&practice).await.unwrap();
    s.insert_practice(&other).await.unwrap();
    let clinician = User::new(practice.id, "ng@r.example", "Dr Ng", Role::Clinician, t0()).unwrap();
    let client_user = User::new(practice.id, "sam@r.example", "Sam", Role::Client, t0()).unwrap();
    s.insert_user(&clinician, None).await.unwrap();
    s.insert_user(&client_user, None).await.unwrap();
    let mut client = Client::new(practice.id, "Sam Client", None, None, t0()).unwrap();
    client.user_id = Some(client_user.id);
    s.insert_client(&client).await.unwrap();
    let episode = Episode::open(practice.id, client.id, t0());
    s.insert_episode(&episode).await.unwrap();
    Fixture {
        practice,
        other,
        clinician,
        client_user,
        client,
        episode,
    }
}

fn message(f: &Fixture, from_client: bool, body: &str, at: DateTime<Utc>) -> SecureMessage {
    SecureMessage {
        id: Uuid::now_v7(),
        practice_id: f.practice.id,
        client_id: f.client.id,
        sender: if from_client {
            f.client_user.id
        } else {
            f.clinician.id
        },
        from_client,
        body: body.into(),
        has_attachment: false,
        sent_at: at,
        read_at: None,
    }
}

async fn messages_round_trip_with_attachment_and_task(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let mut m = message(&f, true, "CANARY-1 I want to end my life", t0());
    m.has_attachment = true;
    let att = Attachment {
        file_name: "chart.png".into(),
        media_type: "image/png".into(),
        bytes: b"\x89PNG\r\n\x1a\n\x00\x01\x02".to_vec(),
    };
    let task = ClinicianTask {
        id: TaskId::random(),
        practice_id: f.practice.id,
        client_id: f.client.id,
        episode_id: f.episode.id,
        kind: TaskKind::RiskReview,
        risk_flag_id: None,
        assignee: Some(f.clinician.id),
        title: "Urgent language in a secure message".into(),
        detail: "Categories: suicide.".into(),
        colour: RiskColour::Red,
        due_at: t0(),
        created_at: t0(),
        completed_at: None,
    };
    s.send_message(&m, Some(&att), Some(&task)).await.unwrap();
    let thread = s
        .messages_for_client(f.practice.id, f.client.id)
        .await
        .unwrap();
    assert_eq!(thread, vec![m.clone()]);
    assert_eq!(
        s.message_attachment(f.practice.id, f.client.id, m.id)
            .await
            .unwrap(),
        Some(att)
    );
    let tasks = s.open_tasks(f.practice.id).await.unwrap();
    assert_eq!(tasks, vec![task]);
    // The same id twice: a conflict, nothing added.
    assert!(matches!(
        s.send_message(&m, None, None).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        s.messages_for_client(f.practice.id, f.client.id)
            .await
            .unwrap()
            .len(),
        1
    );
    // Another practice sees nothing; another client's id finds no attachment.
    assert!(s
        .messages_for_client(f.other.id, f.client.id)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.message_attachment(f.other.id, f.client.id, m.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.message_attachment(f.practice.id, ClientId::random(), m.id)
            .await
            .unwrap(),
        None
    );
    // An empty thread is an empty list.
    assert!(s
        .messages_for_client(f.practice.id, ClientId::random())
        .await
        .unwrap()
        .is_empty());
}

async fn read_state_marks_only_the_other_side(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let from_client = message(&f, true, "hello", t0());
    let from_team = message(&f, false, "hi Sam", t0() + Duration::minutes(5));
    s.send_message(&from_client, None, None).await.unwrap();
    s.send_message(&from_team, None, None).await.unwrap();
    // The clinician opens the thread: the client's message is read.
    let at = t0() + Duration::minutes(10);
    assert_eq!(
        s.mark_thread_read(f.practice.id, f.client.id, false, at)
            .await
            .unwrap(),
        1
    );
    // Again: nothing more to mark.
    assert_eq!(
        s.mark_thread_read(f.practice.id, f.client.id, false, at)
            .await
            .unwrap(),
        0
    );
    let thread = s
        .messages_for_client(f.practice.id, f.client.id)
        .await
        .unwrap();
    assert_eq!(thread[0].read_at, Some(at));
    assert_eq!(thread[1].read_at, None);
    assert_eq!(
        s.mark_thread_read(f.practice.id, f.client.id, true, at)
            .await
            .unwrap(),
        1
    );
}

async fn reply_promise_is_set_and_removed(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    assert_eq!(
        s.reply_promise(f.practice.id, f.client.id).await.unwrap(),
        None
    );
    s.set_reply_promise(f.practice.id, f.client.id, Some(48), f.clinician.id)
        .await
        .unwrap();
    assert_eq!(
        s.reply_promise(f.practice.id, f.client.id).await.unwrap(),
        Some(48)
    );
    s.set_reply_promise(f.practice.id, f.client.id, Some(24), f.clinician.id)
        .await
        .unwrap();
    assert_eq!(
        s.reply_promise(f.practice.id, f.client.id).await.unwrap(),
        Some(24)
    );
    assert_eq!(
        s.reply_promise(f.other.id, f.client.id).await.unwrap(),
        None
    );
    s.set_reply_promise(f.practice.id, f.client.id, None, f.clinician.id)
        .await
        .unwrap();
    assert_eq!(
        s.reply_promise(f.practice.id, f.client.id).await.unwrap(),
        None
    );
}

async fn chat_transcripts_round_trip_per_appointment(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let a = Appointment::book(
        f.practice.id,
        f.clinician.id,
        f.client.id,
        AppointmentType::new(AppointmentKind::Session, 50, Format::Chat).unwrap(),
        t0() + Duration::hours(1),
        t0(),
    )
    .unwrap();
    s.book_appointment(&a).await.unwrap();
    let mut lines = Vec::new();
    for (i, text) in ["hello", "ünïcode ✓ and\nnewlines", &"x".repeat(4000)]
        .iter()
        .enumerate()
    {
        let line = ChatLine {
            id: Uuid::now_v7(),
            practice_id: f.practice.id,
            appointment_id: a.id,
            sender: if i % 2 == 0 {
                f.clinician.id
            } else {
                f.client_user.id
            },
            body: text.to_string(),
            sent_at: t0() + Duration::hours(1) + Duration::seconds(i as i64),
        };
        s.append_chat_line(&line).await.unwrap();
        lines.push(line);
    }
    assert_eq!(s.chat_transcript(f.practice.id, a.id).await.unwrap(), lines);
    assert!(s
        .chat_transcript(f.other.id, a.id)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .chat_transcript(f.practice.id, AppointmentId::random())
        .await
        .unwrap()
        .is_empty());
}

async fn practice_phrase_lists_round_trip_per_practice(s: Arc<dyn Store>) {
    use tapestry_domain::urgent_language::{PhraseList, PracticePhraseList};
    let f = fixture(&s).await;
    assert_eq!(s.practice_phrase_list(f.practice.id).await.unwrap(), None);
    let shipped = PhraseList::embedded().unwrap();
    let mut list = PracticePhraseList::default();
    list.add(&shipped, "going to jump", "suicide").unwrap();
    list.remove(&shipped, "suicide").unwrap();
    assert!(s
        .put_practice_phrase_list(f.practice.id, None, &list, t0())
        .await
        .unwrap());
    assert_eq!(
        s.practice_phrase_list(f.practice.id).await.unwrap(),
        Some(list.clone())
    );
    // A second "first" write lost the race: refused, nothing changed.
    let other = PracticePhraseList::default();
    assert!(!s
        .put_practice_phrase_list(f.practice.id, None, &other, t0())
        .await
        .unwrap());
    // Replaced, not duplicated; the other practice has none.
    let before = list.clone();
    list.record_review(f.clinician.id, "Dr Ng", t0().date_naive());
    assert!(s
        .put_practice_phrase_list(f.practice.id, Some(&before), &list, t0())
        .await
        .unwrap());
    assert_eq!(
        s.practice_phrase_list(f.practice.id).await.unwrap(),
        Some(list.clone())
    );
    // A stale expectation (someone else's edit came first) stores nothing.
    assert!(!s
        .put_practice_phrase_list(f.practice.id, Some(&before), &other, t0())
        .await
        .unwrap());
    assert_eq!(
        s.practice_phrase_list(f.practice.id).await.unwrap(),
        Some(list)
    );
    assert_eq!(s.practice_phrase_list(f.other.id).await.unwrap(), None);
}
