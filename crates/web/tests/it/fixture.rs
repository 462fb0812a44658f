//! A practice with every role, a second practice, sessions made directly in
//! the store (so the matrix needs no Argon2 work), and request helpers.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use std::sync::Arc;
use tapestry_domain::care::{CareRelationship, CareRole};
use tapestry_domain::client::Client;
use tapestry_domain::clock::FixedClock;
use tapestry_domain::episode::Episode;
use tapestry_domain::identity::session::Session;
use tapestry_domain::ids::*;
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answer;
use tapestry_domain::submission::Submission;
use tapestry_domain::user::{Role, User};
use tapestry_store::{SqliteStore, Store};
use tapestry_web::AppState;
use tower::ServiceExt;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

/// The nine callers of the matrix.
pub const ROLES: [&str; 9] = [
    "anonymous",
    "client_a",
    "client_b",
    "treating",
    "non_treating",
    "other_practice",
    "supervisor",
    "practice_admin",
    "owner",
];

pub struct Login {
    pub cookie: String,
    pub csrf: String,
}

/// The concrete database behind the fixture (for raw fingerprints).
pub enum Db {
    Sqlite(SqliteStore),
    Pg(tapestry_store::PgStore),
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub db: Db,
    pub store: Arc<dyn Store>,
    pub clock: Arc<FixedClock>,
    pub state: AppState,
    pub practice: Practice,
    pub client_a: Client,
    pub client_b: Client,
    pub users: Vec<(String, User)>,
    pub logins: Vec<(String, Login)>,
}

impl Fixture {
    /// The SQLite store (SQLite-only tests).
    pub fn sqlite(&self) -> &SqliteStore {
        match &self.db {
            Db::Sqlite(s) => s,
            Db::Pg(_) => panic!("this test needs SQLite"),
        }
    }
    pub async fn fingerprint(&self) -> String {
        match &self.db {
            Db::Sqlite(s) => fingerprint(s).await,
            Db::Pg(p) => pg_fingerprint(p).await,
        }
    }
    pub fn user(&self, role: &str) -> &User {
        &self.users.iter().find(|(r, _)| r == role).unwrap().1
    }
    pub fn login(&self, role: &str) -> Option<&Login> {
        self.logins.iter().find(|(r, _)| r == role).map(|(_, l)| l)
    }
}

pub async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("tapestry.db"))
        .await
        .unwrap();
    sqlite.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(sqlite.clone());
    fixture_on(dir, Db::Sqlite(sqlite), store).await
}

/// The same fixture on a throwaway PostgreSQL database, when installed.
pub async fn pg_fixture() -> Option<Fixture> {
    let url =
        tapestry_store::testing::fresh_database(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")))
            .await?;
    let pg = tapestry_store::PgStore::open(&url).await.unwrap();
    pg.migrate().await.unwrap();
    let store: Arc<dyn Store> = Arc::new(pg.clone());
    Some(fixture_on(tempfile::tempdir().unwrap(), Db::Pg(pg), store).await)
}

async fn fixture_on(dir: tempfile::TempDir, db: Db, store: Arc<dyn Store>) -> Fixture {
    let clock = Arc::new(FixedClock::new(t0()));
    let state = AppState::new(store.clone(), clock.clone(), false);
    let now = t0();
    let practice = Practice::new("Practice One", "Europe/London", now).unwrap();
    let other = Practice::new("Practice Two", "Europe/Berlin", now).unwrap();
    store.insert_practice(&practice).await.unwrap();
    store.insert_practice(&other).await.unwrap();
    let mut users = Vec::new();
    for (name, role, p) in [
        ("client_a", Role::Client, &practice),
        ("client_b", Role::Client, &practice),
        ("treating", Role::Clinician, &practice),
        ("non_treating", Role::Clinician, &practice),
        ("other_practice", Role::Clinician, &other),
        ("supervisor", Role::Supervisor, &practice),
        ("practice_admin", Role::PracticeAdmin, &practice),
        ("owner", Role::PracticeOwner, &practice),
    ] {
        let u = User::new(p.id, &format!("{name}@example.org"), name, role, now).unwrap();
        store.insert_user(&u, None).await.unwrap();
        users.push((name.to_string(), u));
    }
    let uid = |r: &str| users.iter().find(|(n, _)| n == r).unwrap().1.id;
    let mut client_a = Client::new(practice.id, "Client Alpha", None, None, now).unwrap();
    client_a.user_id = Some(uid("client_a"));
    let mut client_b = Client::new(practice.id, "Client Beta", None, None, now).unwrap();
    client_b.user_id = Some(uid("client_b"));
    store.insert_client(&client_a).await.unwrap();
    store.insert_client(&client_b).await.unwrap();
    for (who, role) in [
        ("treating", CareRole::Treating),
        ("supervisor", CareRole::Supervising),
    ] {
        store
            .insert_care_relationship(&CareRelationship {
                id: CareRelationshipId::random(),
                practice_id: practice.id,
                clinician: uid(who),
                client_id: client_a.id,
                role,
                started_at: now,
                ended_at: None,
            })
            .await
            .unwrap();
    }
    let episode = Episode::open(practice.id, client_a.id, now);
    store.insert_episode(&episode).await.unwrap();
    store
        .insert_submission(&Submission {
            id: ResponseId::random(),
            practice_id: practice.id,
            client_id: client_a.id,
            episode_id: episode.id,
            instrument: "phq9".into(),
            instrument_version: "1".into(),
            answers: [3, 1, 2, 1, 0, 2, 3, 1, 2].map(Answer::Value).to_vec(),
            total: Some(15.0),
            session: 1,
            submitted_at: now,
            idempotency_key: None,
        })
        .await
        .unwrap();
    let mut logins = Vec::new();
    for (name, u) in &users {
        logins.push((name.clone(), session_for(&state, u, true).await));
    }
    Fixture {
        dir,
        db,
        store,
        clock,
        state,
        practice,
        client_a,
        client_b,
        users,
        logins,
    }
}

/// A session for `user` made in the store; staff with a completed second
/// factor when `mfa` is true.
pub async fn session_for(state: &AppState, user: &User, mfa: bool) -> Login {
    let now = state.clock.now();
    let (mut session, mut token) = Session::start(
        user.id,
        Some(user.practice_id),
        user.role,
        mfa && user.role.is_staff(),
        &state.sessions,
        now,
    );
    if mfa && user.role.is_staff() {
        token = session.complete_mfa(now);
    }
    state.store.insert_session(&session).await.unwrap();
    Login {
        cookie: format!("tapestry_session={}", token.expose()),
        csrf: state.csrf.token_for(&session.token_hash),
    }
}

pub struct Answer_ {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

pub async fn call(
    state: &AppState,
    method: &str,
    path: &str,
    login: Option<&Login>,
    body: Option<&str>,
) -> Answer_ {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(l) = login {
        req = req
            .header("cookie", &l.cookie)
            .header("x-csrf-token", &l.csrf);
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Body::from(body.unwrap_or("").to_string()))
        .unwrap();
    let resp = tapestry_web::router(state.clone())
        .oneshot(req)
        .await
        .unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    Answer_ {
        status,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A fingerprint of every table that holds practice data (not the audit
/// log, sessions' last-seen times or throttle counters), to prove denials
/// change nothing.
pub async fn fingerprint(store: &SqliteStore) -> String {
    use sqlx::Row;
    let mut out = String::new();
    for table in [
        "practices",
        "practice_settings",
        "users",
        "clients",
        "episodes",
        "care_relationships",
        "submissions",
        "user_mfa",
        "recovery_codes",
        "invitations",
        "password_resets",
        "api_tokens",
        "break_glass_grants",
        "alerts",
        "data_keys",
        "bootstrap_tokens",
        "session_notes",
        "note_addenda",
        "safety_plans",
        "homework",
        "intake_drafts",
        "formulations",
        "plan_versions",
        "session_reviews",
        "episode_measures",
        "risk_flags",
        "clinician_tasks",
        "measure_schedules",
        "group_programmes",
        "group_members",
        "group_sessions",
        "group_attendance",
        "group_notes",
    ] {
        let cols: Vec<String> = sqlx::query(&format!("PRAGMA table_info({table})"))
            .fetch_all(store.pool())
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<String, _>("name"))
            .collect();
        let expr = cols
            .iter()
            .map(|c| format!("quote({c})"))
            .collect::<Vec<_>>()
            .join("||','||");
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, COALESCE(group_concat(x, '|'), '') AS s FROM (SELECT {expr} AS x FROM {table} ORDER BY x)"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        out.push_str(&format!(
            "{table}:{}:{}\n",
            row.get::<i64, _>("n"),
            row.get::<String, _>("s")
        ));
    }
    out
}

/// The PostgreSQL form of [`fingerprint`].
pub async fn pg_fingerprint(store: &tapestry_store::PgStore) -> String {
    use sqlx::Row;
    let mut out = String::new();
    for table in [
        "practices",
        "practice_settings",
        "users",
        "clients",
        "episodes",
        "care_relationships",
        "submissions",
        "user_mfa",
        "recovery_codes",
        "invitations",
        "password_resets",
        "api_tokens",
        "break_glass_grants",
        "alerts",
        "data_keys",
        "bootstrap_tokens",
        "session_notes",
        "note_addenda",
        "safety_plans",
        "homework",
        "intake_drafts",
        "formulations",
        "plan_versions",
        "session_reviews",
        "episode_measures",
        "risk_flags",
        "clinician_tasks",
        "measure_schedules",
        "group_programmes",
        "group_members",
        "group_sessions",
        "group_attendance",
        "group_notes",
    ] {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) AS n, COALESCE(md5(string_agg(t::text, '|' ORDER BY t::text)), '') AS s FROM {table} t"
        ))
        .fetch_one(store.pool())
        .await
        .unwrap();
        out.push_str(&format!(
            "{table}:{}:{}\n",
            row.get::<i64, _>("n"),
            row.get::<String, _>("s")
        ));
    }
    out
}
