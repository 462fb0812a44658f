#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Portal conformance (notes, safety plans, homework, intake drafts): every
//! case on SQLite and on PostgreSQL. Signed notes never change; another
//! practice's objects are not found; clinical content is sealed at rest.

use chrono::{DateTime, Duration, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::homework::{HomeworkStatus, WorksheetAnswers};
use tapestry_domain::intake::IntakeDraft;
use tapestry_domain::notes::{NoteBody, NoteKind, NoteTemplate};
use tapestry_domain::practice::Practice;
use tapestry_domain::safety_plan::SafetyPlanBody;
use tapestry_domain::user::{Role, User};
use tapestry_store::{
    Addendum, Homework, SessionNote, Store, StoreError, HOMEWORK_SUBMITTED, NOTE_SIGNED,
};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

conformance!(
    signed_notes_are_locked_and_take_addenda,
    notes_are_invisible_across_practices,
    safety_plans_keep_every_version,
    homework_drafts_then_sends_once,
    intake_draft_saves_and_continues,
);

struct F {
    practice: Practice,
    other: Practice,
    clinician: User,
    supervisor: User,
    client: Client,
}

async fn fixture(s: &Arc<dyn Store>) -> F {
    let practice = Practice::new("Riverside", "Europe/London", t0()).unwrap();
    let other = Practice::new("Hillside", "America/Toronto", t0()).unwrap();
    s.insert_practice(&practice).await.unwrap();
    s.insert_practice(&other).await.unwrap();
    let clinician = User::new(practice.id, "ng@r.example", "Dr Ng", Role::Clinician, t0()).unwrap();
    let supervisor =
        User::new(practice.id, "os@r.example", "Dr Os", Role::Supervisor, t0()).unwrap();
    s.insert_user(&clinician, None).await.unwrap();
    s.insert_user(&supervisor, None).await.unwrap();
    let client = Client::new(practice.id, "Sam Client", None, Some("GB"), t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    F {
        practice,
        other,
        clinician,
        supervisor,
        client,
    }
}

fn draft(f: &F) -> SessionNote {
    SessionNote {
        id: Uuid::new_v4(),
        practice_id: f.practice.id,
        client_id: f.client.id,
        author: f.clinician.id,
        kind: NoteKind::Progress,
        template: NoteTemplate::Soap,
        body: NoteBody::from_fields(
            NoteTemplate::Soap,
            &[("subjective".into(), "Low week".into())],
        )
        .unwrap(),
        signed_at: None,
        cosigned_by: None,
        cosigned_at: None,
        created_at: t0(),
        updated_at: t0(),
    }
}

async fn signed_notes_are_locked_and_take_addenda(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let n = draft(&f);
    let p = f.practice.id;
    s.insert_note(&n).await.unwrap();
    // Duplicated id: refused.
    assert!(matches!(
        s.insert_note(&n).await,
        Err(StoreError::Conflict(_))
    ));
    let edited =
        NoteBody::from_fields(NoteTemplate::Soap, &[("plan".into(), "Sleep diary".into())])
            .unwrap();
    s.update_note_draft(p, n.id, &edited, t0() + Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        s.unsigned_notes_by(p, f.clinician.id).await.unwrap().len(),
        1
    );
    // A draft cannot be addended or co-signed.
    let add = Addendum {
        id: Uuid::new_v4(),
        note_id: n.id,
        author: f.clinician.id,
        text: "Late entry".into(),
        created_at: t0(),
    };
    assert!(matches!(
        s.add_addendum(p, &add).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.cosign_note(p, n.id, f.supervisor.id, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    s.sign_note(p, n.id, t0() + Duration::minutes(10))
        .await
        .unwrap();
    // Signed: immutable, signing twice refused.
    assert!(matches!(
        s.update_note_draft(p, n.id, &NoteBody::default(), t0())
            .await,
        Err(StoreError::Conflict(NOTE_SIGNED))
    ));
    assert!(matches!(
        s.sign_note(p, n.id, t0()).await,
        Err(StoreError::Conflict(NOTE_SIGNED))
    ));
    let got = s.note(p, n.id).await.unwrap().unwrap();
    assert_eq!(got.body.text("plan"), "Sleep diary");
    assert_eq!(got.body.text("subjective"), "");
    assert!(got.signed_at.is_some());
    assert!(s
        .unsigned_notes_by(p, f.clinician.id)
        .await
        .unwrap()
        .is_empty());
    s.add_addendum(p, &add).await.unwrap();
    assert_eq!(s.addenda(p, n.id).await.unwrap()[0].text, "Late entry");
    s.cosign_note(p, n.id, f.supervisor.id, t0()).await.unwrap();
    assert!(matches!(
        s.cosign_note(p, n.id, f.supervisor.id, t0()).await,
        Err(StoreError::Conflict(_))
    ));
    let got = s.note(p, n.id).await.unwrap().unwrap();
    assert_eq!(got.cosigned_by, Some(f.supervisor.id));
    // Unknown note.
    assert!(matches!(
        s.sign_note(p, Uuid::new_v4(), t0()).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn notes_are_invisible_across_practices(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let n = draft(&f);
    s.insert_note(&n).await.unwrap();
    let q = f.other.id;
    assert!(s.note(q, n.id).await.unwrap().is_none());
    assert!(s.notes_for_client(q, f.client.id).await.unwrap().is_empty());
    assert!(matches!(
        s.sign_note(q, n.id, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.safety_plans(q, f.client.id).await.unwrap().is_empty());
    assert!(s.intake_draft(q, f.client.id).await.unwrap().is_none());
}

async fn safety_plans_keep_every_version(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let p = f.practice.id;
    assert!(s.safety_plans(p, f.client.id).await.unwrap().is_empty());
    let v1 =
        SafetyPlanBody::from_fields(&[("warning_signs".into(), "Not sleeping".into())]).unwrap();
    let v2 = SafetyPlanBody::from_fields(&[
        (
            "warning_signs".into(),
            "Not sleeping\nSkipping meals".into(),
        ),
        ("professionals".into(), "Crisis line 116 123".into()),
    ])
    .unwrap();
    assert_eq!(
        s.save_safety_plan(p, f.client.id, f.clinician.id, &v1, t0())
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.save_safety_plan(p, f.client.id, f.clinician.id, &v2, t0())
            .await
            .unwrap(),
        2
    );
    let all = s.safety_plans(p, f.client.id).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].body, v1);
    assert_eq!(all[1].body.text("professionals"), "Crisis line 116 123");
}

async fn homework_drafts_then_sends_once(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let p = f.practice.id;
    let h = Homework {
        id: Uuid::new_v4(),
        practice_id: p,
        client_id: f.client.id,
        assigned_by: f.clinician.id,
        technique: "T04".into(),
        status: HomeworkStatus::Assigned,
        answers: WorksheetAnswers::default(),
        assigned_at: t0(),
        updated_at: t0(),
        submitted_at: None,
        reviewed_at: None,
    };
    s.assign_homework(&h).await.unwrap();
    let a1 = WorksheetAnswers {
        fields: vec![("situation".into(), "Meeting".into())],
    };
    s.save_homework_answers(p, h.id, &a1, false, t0())
        .await
        .unwrap();
    assert_eq!(
        s.homework(p, h.id).await.unwrap().unwrap().status,
        HomeworkStatus::Draft
    );
    assert!(s.homework_returned(p).await.unwrap().is_empty());
    s.save_homework_answers(p, h.id, &a1, true, t0())
        .await
        .unwrap();
    let got = s.homework(p, h.id).await.unwrap().unwrap();
    assert_eq!(got.status, HomeworkStatus::Submitted);
    assert_eq!(got.answers.value("situation"), "Meeting");
    assert_eq!(s.homework_returned(p).await.unwrap().len(), 1);
    assert!(matches!(
        s.save_homework_answers(p, h.id, &WorksheetAnswers::default(), false, t0())
            .await,
        Err(StoreError::Conflict(HOMEWORK_SUBMITTED))
    ));
    s.mark_homework_reviewed(p, h.id, t0()).await.unwrap();
    assert!(s.homework_returned(p).await.unwrap().is_empty());
    assert!(s.homework(f.other.id, h.id).await.unwrap().is_none());
}

async fn intake_draft_saves_and_continues(s: Arc<dyn Store>) {
    let f = fixture(&s).await;
    let p = f.practice.id;
    let mut d = IntakeDraft::default();
    d.save_step(0, &[("consent".into(), "yes".into())]).unwrap();
    s.save_intake_draft(p, f.client.id, &d, t0()).await.unwrap();
    d.save_step(1, &[("preferred_name".into(), "Sam".into())])
        .unwrap();
    s.save_intake_draft(p, f.client.id, &d, t0()).await.unwrap();
    let got = s.intake_draft(p, f.client.id).await.unwrap().unwrap();
    assert_eq!(got.completed_steps, 2);
    assert_eq!(got.value("preferred_name"), "Sam");
}
