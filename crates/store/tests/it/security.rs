//! Conformance of the security store (issue 3) on SQLite and PostgreSQL:
//! the append-only, gap-free audit chain (G13, G14), single-use tokens (G22),
//! TOTP replay (G8), sessions (G10), sealed columns and key rotation (G5).

use chrono::{Duration, TimeZone, Utc};
use std::path::Path;
use std::sync::Arc;
use tapestry_domain::client::Client;
use tapestry_domain::episode::Episode;
use tapestry_domain::identity::invitation::{Invitation, Inviter, PasswordReset};
use tapestry_domain::identity::session::{EndReason, Session, SessionPolicy};
use tapestry_domain::identity::totp::TotpSecret;
use tapestry_domain::ids::*;
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answer;
use tapestry_domain::submission::Submission;
use tapestry_domain::user::{Role, User};
use tapestry_store::audit_chain::{self, NewAuditEvent, Outcome};
use tapestry_store::crypto::KeyFile;
use tapestry_store::security::BreakGlassRecord;
use tapestry_store::{PgStore, SqliteStore, Store, StoreError};

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 2, 2, 9, 0, 0).unwrap()
}

/// Raw SQL on the same database, to play the attacker or the auditor.
pub(crate) enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    pub(crate) async fn exec(&self, sql: &str) -> Result<u64, sqlx::Error> {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|r| r.rows_affected()),
        }
    }
    pub(crate) async fn text(&self, sql: &str) -> String {
        use sqlx::Row;
        match self {
            Raw::Sqlite(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .unwrap()
                .get::<String, _>(0),
            Raw::Pg(p) => sqlx::query(sql)
                .fetch_one(p)
                .await
                .unwrap()
                .get::<String, _>(0),
        }
    }
}

pub(crate) struct Backend {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) raw: Raw,
    pub(crate) keys: KeyFile,
    pub(crate) reopen:
        Box<dyn Fn(KeyFile) -> futures_like::BoxFuture<Arc<dyn Store>> + Send + Sync>,
    _dir: Option<tempfile::TempDir>,
}

pub(crate) mod futures_like {
    pub type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;
}

pub(crate) async fn sqlite() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tapestry.db");
    let keys = KeyFile::generate();
    let store = SqliteStore::open_with_keys(&path, keys.clone())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::Sqlite(store.pool().clone());
    let reopen_path = path.clone();
    Backend {
        store: Arc::new(store),
        raw,
        keys,
        reopen: Box::new(move |k| {
            let p = reopen_path.clone();
            Box::pin(async move {
                Arc::new(SqliteStore::open_with_keys(&p, k).await.unwrap()) as Arc<dyn Store>
            })
        }),
        _dir: Some(dir),
    }
}

pub(crate) async fn postgres() -> Option<Backend> {
    let url =
        tapestry_store::testing::fresh_database(Path::new(env!("CARGO_TARGET_TMPDIR"))).await?;
    let keys = KeyFile::generate();
    let store = PgStore::open_with_keys(&url, keys.clone()).await.unwrap();
    store.migrate().await.unwrap();
    let raw = Raw::Pg(store.pool().clone());
    Some(Backend {
        store: Arc::new(store),
        raw,
        keys,
        reopen: Box::new(move |k| {
            let u = url.clone();
            Box::pin(async move {
                Arc::new(PgStore::open_with_keys(&u, k).await.unwrap()) as Arc<dyn Store>
            })
        }),
        _dir: None,
    })
}

macro_rules! both {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::sqlite().await).await; })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(b) = super::postgres().await else { return };
                super::$case(b).await;
            })+
        }
    };
}

both!(
    audit_chain_is_gap_free_under_concurrency_and_append_only,
    invitations_and_resets_redeem_exactly_once_under_concurrency,
    totp_steps_are_accepted_once_and_secrets_are_sealed,
    sessions_rotate_and_end_for_every_reason,
    key_rotation_rewraps_and_reencrypts_everything,
);

struct World {
    practice: Practice,
    owner: User,
    clinician: User,
    client: Client,
    episode: Episode,
}

async fn world(s: &Arc<dyn Store>) -> World {
    let practice = Practice::new("Riverside", "Europe/London", t0()).unwrap();
    s.insert_practice(&practice).await.unwrap();
    let owner = User::new(
        practice.id,
        "owner@r.example",
        "Owner",
        Role::PracticeOwner,
        t0(),
    )
    .unwrap();
    let clinician = User::new(practice.id, "dr@r.example", "Dr", Role::Clinician, t0()).unwrap();
    s.insert_user(&owner, None).await.unwrap();
    s.insert_user(&clinician, None).await.unwrap();
    let client = Client::new(practice.id, "Sam", None, None, t0()).unwrap();
    s.insert_client(&client).await.unwrap();
    let episode = Episode::open(practice.id, client.id, t0());
    s.insert_episode(&episode).await.unwrap();
    World {
        practice,
        owner,
        clinician,
        client,
        episode,
    }
}

fn event(w: &World, i: u32) -> NewAuditEvent {
    NewAuditEvent {
        actor: Some(w.clinician.id),
        practice_id: Some(w.practice.id),
        object_type: "client".into(),
        object_id: Some(w.client.id.as_uuid()),
        action: "read_clinical_record".into(),
        outcome: if i.is_multiple_of(3) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        at: t0() + Duration::seconds(i64::from(i)),
        request_id: format!("req{i}"),
    }
}

async fn audit_chain_is_gap_free_under_concurrency_and_append_only(b: Backend) {
    let s = b.store.clone();
    let w = Arc::new(world(&s).await);
    // An empty chain verifies.
    audit_chain::verify(&s.audit_events().await.unwrap()).unwrap();
    let mut tasks = Vec::new();
    for t in 0..8u32 {
        let s = s.clone();
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..5 {
                s.append_audit(event(&w, t * 10 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let events = s.audit_events().await.unwrap();
    assert_eq!(events.len(), 40);
    assert_eq!(
        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=40).collect::<Vec<_>>()
    );
    audit_chain::verify(&events).unwrap();
    assert_eq!(
        s.audit_for_object(w.practice.id, "client", w.client.id.as_uuid())
            .await
            .unwrap()
            .len(),
        40
    );
    // Another practice sees none of them.
    assert!(s
        .audit_for_object(PracticeId::random(), "client", w.client.id.as_uuid())
        .await
        .unwrap()
        .is_empty());
    // The application cannot change or remove audit rows.
    assert!(b
        .raw
        .exec("UPDATE audit_events SET action = 'nothing' WHERE seq = 3")
        .await
        .is_err());
    assert!(b
        .raw
        .exec("DELETE FROM audit_events WHERE seq = 40")
        .await
        .is_err());
    if matches!(b.raw, Raw::Pg(_)) {
        assert!(b.raw.exec("TRUNCATE audit_events").await.is_err());
    }
    audit_chain::verify(&s.audit_events().await.unwrap()).unwrap();
}

async fn invitations_and_resets_redeem_exactly_once_under_concurrency(b: Backend) {
    let s = b.store.clone();
    let w = world(&s).await;
    let inviter = Inviter {
        user_id: w.owner.id,
        role: Role::PracticeOwner,
        practice_id: Some(w.practice.id),
    };
    let (inv, _token) =
        Invitation::issue(&inviter, Role::Clinician, "new@r.example", None, None, t0()).unwrap();
    s.insert_invitation(&inv).await.unwrap();
    assert_eq!(
        s.invitation(&inv.token_hash).await.unwrap().unwrap().email,
        "new@r.example"
    );
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let s = s.clone();
        let h = inv.token_hash;
        tasks.push(tokio::spawn(async move {
            s.redeem_invitation(&h, t0()).await.is_ok()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    // An invitation from another practice's inviter is refused.
    let stranger = Inviter {
        user_id: UserId::random(),
        role: Role::PracticeOwner,
        practice_id: Some(w.practice.id),
    };
    let (bad, _) =
        Invitation::issue(&stranger, Role::Clinician, "x@r.example", None, None, t0()).unwrap();
    assert!(matches!(
        s.insert_invitation(&bad).await,
        Err(StoreError::NotFound(_))
    ));
    // Password reset: single use, and expired links fail.
    let (reset, _) = PasswordReset::issue(w.clinician.id, t0());
    s.insert_password_reset(w.practice.id, &reset)
        .await
        .unwrap();
    assert!(s
        .redeem_password_reset(&reset.token_hash, t0() + Duration::hours(1))
        .await
        .is_err());
    s.redeem_password_reset(&reset.token_hash, t0())
        .await
        .unwrap();
    assert!(s
        .redeem_password_reset(&reset.token_hash, t0())
        .await
        .is_err());
}

async fn totp_steps_are_accepted_once_and_secrets_are_sealed(b: Backend) {
    let s = b.store.clone();
    let w = world(&s).await;
    let (p, u) = (w.practice.id, w.clinician.id);
    let secret = TotpSecret::generate();
    s.begin_totp_enrolment(p, u, &secret).await.unwrap();
    let pending = s.mfa(p, u).await.unwrap().unwrap();
    assert!(pending.confirmed_at.is_none());
    assert_eq!(pending.secret.to_base32(), secret.to_base32());
    // The secret is not in the table in the clear.
    let stored = b.raw.text("SELECT totp_secret FROM user_mfa").await;
    assert!(!stored.contains(&secret.to_base32()));
    s.accept_totp_step(p, u, 100, t0()).await.unwrap();
    assert!(matches!(
        s.accept_totp_step(p, u, 100, t0()).await,
        Err(StoreError::NotFound(_))
    ));
    assert!(s.accept_totp_step(p, u, 99, t0()).await.is_err());
    s.accept_totp_step(p, u, 101, t0()).await.unwrap();
    let confirmed = s.mfa(p, u).await.unwrap().unwrap();
    assert_eq!(confirmed.last_used_step, Some(101));
    assert!(confirmed.confirmed_at.is_some());
    // A confirmed factor cannot be silently replaced.
    assert!(matches!(
        s.begin_totp_enrolment(p, u, &TotpSecret::generate()).await,
        Err(StoreError::Conflict(_))
    ));
    // Another practice does not see it.
    assert!(s.mfa(PracticeId::random(), u).await.unwrap().is_none());
    // Recovery codes: each once.
    let (_shown, codes) = tapestry_domain::identity::totp::generate_recovery_codes();
    s.replace_recovery_codes(p, u, &codes).await.unwrap();
    s.use_recovery_code(p, u, 3, t0()).await.unwrap();
    assert!(s.use_recovery_code(p, u, 3, t0()).await.is_err());
    assert!(s.recovery_codes(p, u).await.unwrap()[3].used_at.is_some());
}

async fn sessions_rotate_and_end_for_every_reason(b: Backend) {
    let s = b.store.clone();
    let w = world(&s).await;
    let policy = SessionPolicy::default();
    let (mut one, _) = Session::start(
        w.clinician.id,
        Some(w.practice.id),
        Role::Clinician,
        true,
        &policy,
        t0(),
    );
    let (two, _) = Session::start(
        w.clinician.id,
        Some(w.practice.id),
        Role::Clinician,
        true,
        &policy,
        t0(),
    );
    s.insert_session(&one).await.unwrap();
    s.insert_session(&two).await.unwrap();
    assert_eq!(s.session(&one.token_hash).await.unwrap().unwrap(), one);
    let old = one.token_hash;
    one.complete_mfa(t0() + Duration::minutes(1));
    s.save_session(&old, &one).await.unwrap();
    assert!(
        s.session(&old).await.unwrap().is_none(),
        "the pre-MFA token still works"
    );
    assert_eq!(
        s.session(&one.token_hash)
            .await
            .unwrap()
            .unwrap()
            .mfa_completed_at,
        one.mfa_completed_at
    );
    s.end_session(&one.token_hash, EndReason::SignOut, t0())
        .await
        .unwrap();
    assert!(s.session(&one.token_hash).await.unwrap().is_none());
    assert_eq!(
        s.end_user_sessions(w.clinician.id, EndReason::PasswordChanged, t0())
            .await
            .unwrap(),
        1
    );
    assert!(s.session(&two.token_hash).await.unwrap().is_none());
}

async fn key_rotation_rewraps_and_reencrypts_everything(b: Backend) {
    let s = b.store.clone();
    let w = world(&s).await;
    let sub = Submission {
        id: ResponseId::random(),
        practice_id: w.practice.id,
        client_id: w.client.id,
        episode_id: w.episode.id,
        instrument: "phq9".into(),
        instrument_version: "1".into(),
        answers: vec![Answer::Value(2), Answer::Missing, Answer::NotApplicable],
        total: None,
        session: 1,
        submitted_at: t0(),
        idempotency_key: None,
    };
    s.insert_submission(&sub).await.unwrap();
    let grant = BreakGlassRecord {
        id: uuid::Uuid::new_v4(),
        practice_id: w.practice.id,
        clinician: w.clinician.id,
        client_id: w.client.id,
        opened_at: t0(),
        expires_at: t0() + Duration::minutes(60),
    };
    s.insert_break_glass(&grant, "Client in crisis, treating clinician on leave")
        .await
        .unwrap();
    let before = b.raw.text("SELECT answers FROM submissions").await;
    // Without the key file nothing opens.
    let stranger = (b.reopen)(KeyFile::generate()).await;
    assert!(stranger.submission(w.practice.id, sub.id).await.is_err());
    let mut keys = b.keys.clone();
    let new_master = keys.add_master_key();
    let report = s.rotate_keys(&keys, true).await.unwrap();
    assert_eq!(report.new_data_keys, 1);
    assert!(report.rewrapped >= 2);
    assert_eq!(report.reencrypted, 2); // the answers and the reason
    assert_ne!(
        before,
        b.raw
            .text(&format!(
                "SELECT answers FROM submissions WHERE id = {}",
                quote_id(&b, sub.id.as_uuid())
            ))
            .await
    );
    // With the old master retired, everything still opens.
    keys.retire_master_key(1).unwrap();
    assert_eq!(keys.current_master_id(), new_master);
    let reopened = (b.reopen)(keys).await;
    assert_eq!(
        reopened
            .submission(w.practice.id, sub.id)
            .await
            .unwrap()
            .unwrap()
            .answers,
        sub.answers
    );
    assert!(reopened
        .break_glass_reason(w.practice.id, grant.id)
        .await
        .unwrap()
        .unwrap()
        .contains("crisis"));
    // A sealed value copied into another row does not open (AAD binds the row).
    let mut moved = sub.clone();
    moved.id = ResponseId::random();
    reopened.insert_submission(&moved).await.unwrap();
    let copy = format!(
        "UPDATE submissions SET answers = (SELECT answers FROM submissions WHERE id = {}) WHERE id = {}",
        quote_id(&b, sub.id.as_uuid()),
        quote_id(&b, moved.id.as_uuid())
    );
    assert_eq!(b.raw.exec(&copy).await.unwrap(), 1);
    assert!(matches!(
        reopened.submission(w.practice.id, moved.id).await,
        Err(StoreError::Integrity(_))
    ));
}

fn quote_id(b: &Backend, id: uuid::Uuid) -> String {
    match b.raw {
        Raw::Sqlite(_) => format!("x'{}'", id.simple()),
        Raw::Pg(_) => format!("'{id}'"),
    }
}
