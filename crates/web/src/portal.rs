//! The clinician workspace and the client portal (route area "portal"):
//! the caseload dashboard, session notes, the safety plan, homework, the
//! client's home, intake, measures, worksheets and access log, and the
//! practice page. Server-rendered (askama); forms are sent as JSON with the
//! CSRF token by `/static/tapestry.js`.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::pages::{local_time, render, viewer_zone};
use crate::routes::{Access, Authorized, RouteSpec, Target};
use crate::AppState;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json};
use chrono::Duration;
use serde_json::json;
use std::collections::BTreeMap;
use tapestry_domain::access::{authorize, Action, Decision, Resource};
use tapestry_domain::homework::{HomeworkStatus, WorksheetAnswers};
use tapestry_domain::ids::{ClientId, PracticeId};
use tapestry_domain::ingest::IngestRequest;
use tapestry_domain::instrument::{AdministeredBy, InstrumentRegistry};
use tapestry_domain::intake::{self, IntakeDraft};
use tapestry_domain::knowledge::Knowledge;
use tapestry_domain::measure_schedule::{self, Due, DueContext};
use tapestry_domain::notes::{NoteBody, NoteKind, NoteTemplate};
use tapestry_domain::practice::TimeZoneName;
use tapestry_domain::safety_plan::{self, SafetyPlanBody};
use tapestry_domain::schedule::AppointmentStatus;
use tapestry_domain::scoring::Answers;
use tapestry_domain::user::Role;
use tapestry_store::{Addendum, Homework, IngestSettings, SessionNote};
use uuid::Uuid;

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}
const fn on_client(action: Action) -> Access {
    Access::Action(action, Target::ClientInPath)
}
const fn own(action: Action) -> Access {
    Access::Action(action, Target::OwnClientRecord)
}
const fn practice(action: Action) -> Access {
    Access::Action(action, Target::Practice)
}

/// The portal's routes: pages and the JSON endpoints their forms use.
pub const PORTAL_ROUTES: &[RouteSpec] = &[
    // Clinician
    r(
        "GET",
        "/dashboard",
        Access::Action(Action::ReadClientDirectory, Target::EachClient),
    ),
    r("GET", "/clients/{id}/notes", on_client(Action::ReadNotes)),
    r(
        "GET",
        "/clients/{id}/notes/{note}",
        on_client(Action::ReadNotes),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/notes",
        on_client(Action::WriteNotes),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/notes/{note}",
        on_client(Action::WriteNotes),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/notes/{note}/sign",
        on_client(Action::SignNote),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/notes/{note}/addenda",
        on_client(Action::AddendNote),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/notes/{note}/cosign",
        on_client(Action::CosignNote),
    ),
    r(
        "GET",
        "/clients/{id}/safety-plan",
        on_client(Action::ReadSafetyPlan),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/safety-plan",
        on_client(Action::WriteSafetyPlan),
    ),
    r(
        "GET",
        "/clients/{id}/homework",
        on_client(Action::ReadHomework),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/homework",
        on_client(Action::AssignHomework),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/homework/{hw}/reviewed",
        on_client(Action::AssignHomework),
    ),
    // Client
    r(
        "GET",
        "/me",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r("GET", "/intake", own(Action::CompleteOwnIntake)),
    r("POST", "/api/v1/me/intake", own(Action::CompleteOwnIntake)),
    r("GET", "/me/measures", own(Action::SubmitOwnMeasures)),
    r(
        "GET",
        "/me/measures/{instrument}",
        own(Action::SubmitOwnMeasures),
    ),
    r(
        "POST",
        "/api/v1/me/measures/{instrument}",
        own(Action::SubmitOwnMeasures),
    ),
    r("GET", "/me/homework", own(Action::CompleteOwnHomework)),
    r("GET", "/me/homework/{hw}", own(Action::CompleteOwnHomework)),
    r(
        "POST",
        "/api/v1/me/homework/{hw}",
        own(Action::CompleteOwnHomework),
    ),
    r("GET", "/me/safety-plan", own(Action::ReadSafetyPlan)),
    r("GET", "/me/access-log", own(Action::ReadOwnAccessLedger)),
    // Practice owner / admin
    r("GET", "/practice", practice(Action::ManagePracticeUsers)),
    r(
        "POST",
        "/api/v1/practice/settings",
        practice(Action::ManagePracticeSettings),
    ),
    r("GET", "/practice/audit", practice(Action::ReadAuditLog)),
];

/// Handlers for [`PORTAL_ROUTES`].
pub fn handler(spec: &RouteSpec) -> Option<MethodRouter<AppState>> {
    Some(match (spec.method, spec.path) {
        ("GET", "/dashboard") => get(dashboard),
        ("GET", "/clients/{id}/notes") => get(notes_page),
        ("GET", "/clients/{id}/notes/{note}") => get(note_page),
        ("POST", "/api/v1/clients/{id}/notes") => post(create_note),
        ("POST", "/api/v1/clients/{id}/notes/{note}") => post(update_note),
        ("POST", "/api/v1/clients/{id}/notes/{note}/sign") => post(sign_note),
        ("POST", "/api/v1/clients/{id}/notes/{note}/addenda") => post(add_addendum),
        ("POST", "/api/v1/clients/{id}/notes/{note}/cosign") => post(cosign_note),
        ("GET", "/clients/{id}/safety-plan") => get(safety_plan_editor),
        ("POST", "/api/v1/clients/{id}/safety-plan") => post(save_safety_plan),
        ("GET", "/clients/{id}/homework") => get(homework_page),
        ("POST", "/api/v1/clients/{id}/homework") => post(assign_homework),
        ("POST", "/api/v1/clients/{id}/homework/{hw}/reviewed") => post(homework_reviewed),
        ("GET", "/me") => get(me_home),
        ("GET", "/intake") => get(intake_page),
        ("POST", "/api/v1/me/intake") => post(save_intake),
        ("GET", "/me/measures") => get(measures_page),
        ("GET", "/me/measures/{instrument}") => get(measure_form),
        ("POST", "/api/v1/me/measures/{instrument}") => post(submit_measure),
        ("GET", "/me/homework") => get(my_homework),
        ("GET", "/me/homework/{hw}") => get(worksheet_page),
        ("POST", "/api/v1/me/homework/{hw}") => post(save_worksheet),
        ("GET", "/me/safety-plan") => get(my_safety_plan),
        ("GET", "/me/access-log") => get(access_log_page),
        ("GET", "/practice") => get(practice_page),
        ("POST", "/api/v1/practice/settings") => post(save_settings),
        ("GET", "/practice/audit") => get(audit_page),
        _ => return None,
    })
}

// ------------------------------------------------------------------ shared

/// The navigation of the signed-in person, by role.
pub struct Nav {
    pub links: Vec<(&'static str, &'static str)>,
    pub is_client: bool,
    pub crisis: String,
}

/// The default crisis text until the practice sets its own.
pub const DEFAULT_CRISIS: &str = "If you are in danger now, call your local emergency number (112 in Europe, 911 in North America, 999 in the UK).\nIf you are thinking about suicide, call or text a crisis line in your country, or go to the nearest emergency department.\nYou can also tell your clinician, but messages here are not read around the clock.";

/// Practice setting keys this area owns.
pub const SETTING_CRISIS: &str = "crisis_resources";
pub const SETTING_TIME_ZONE: &str = "time_zone";
pub const SETTING_MEASURES: &str = "measure_defaults";

/// The header links (and crisis text) for the signed-in caller.
pub async fn nav(state: &AppState, caller: &Caller) -> Nav {
    let role = caller.user.role;
    let links = match role {
        Role::Client => vec![
            ("/me", "Home"),
            ("/me/measures", "Questionnaires"),
            ("/me/homework", "Worksheets"),
            ("/me/appointments", "Appointments"),
            ("/me/messages", "Messages"),
            ("/groups", "Groups"),
            ("/me/safety-plan", "My safety plan"),
            ("/me/access-log", "Who opened my record"),
        ],
        Role::PracticeAdmin => vec![("/practice", "Practice"), ("/practice/audit", "Audit log")],
        Role::PracticeOwner => vec![
            ("/dashboard", "Caseload"),
            ("/practice", "Practice"),
            ("/practice/urgent-language", "Urgent language"),
            ("/practice/audit", "Audit log"),
        ],
        Role::Clinician => vec![
            ("/dashboard", "Caseload"),
            ("/schedule", "Schedule"),
            ("/messages", "Messages"),
            ("/groups", "Groups"),
            ("/me/matching-profile", "My profile"),
        ],
        _ => vec![("/dashboard", "Caseload")],
    };
    Nav {
        links,
        is_client: role == Role::Client,
        crisis: crisis_text(state, caller.user.practice_id).await,
    }
}

async fn crisis_text(state: &AppState, practice: PracticeId) -> String {
    match state.store.setting(practice, SETTING_CRISIS).await {
        Ok(Some(t)) if !t.trim().is_empty() => t,
        _ => DEFAULT_CRISIS.to_string(),
    }
}

fn parse_uuid(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

/// Fields the server sets itself; a form that sends one is refused before
/// anything else happens (mass assignment, G3).
const SERVER_SET: [&str; 13] = [
    "id",
    "practice_id",
    "client_id",
    "user_id",
    "owner_id",
    "author",
    "assigned_by",
    "role",
    "status",
    "signed",
    "signed_at",
    "submitted_at",
    "version",
];

/// The submitted form (field → text), without server-set fields.
fn form(body: BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ApiError> {
    match body.keys().find(|k| SERVER_SET.contains(&k.as_str())) {
        Some(k) => Err(ApiError::unprocessable(
            k.clone(),
            "is set by the server and cannot be sent",
        )),
        None => Ok(body),
    }
}

fn client_of(a: &Authorized) -> Result<ClientId, ApiError> {
    a.client_id.ok_or_else(ApiError::not_found)
}

fn next(url: String) -> Json<serde_json::Value> {
    Json(json!({ "next": url }))
}

fn fields_of(body: &BTreeMap<String, String>, skip: &[&str]) -> Vec<(String, String)> {
    body.iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn knowledge() -> Result<Knowledge, ApiError> {
    Knowledge::embedded().map_err(|e| {
        tracing::error!(error = %e, "technique library failed to load");
        ApiError::internal()
    })
}

fn registry() -> Result<InstrumentRegistry, ApiError> {
    InstrumentRegistry::embedded().map_err(|e| {
        tracing::error!(error = %e, "instrument registry failed to load");
        ApiError::internal()
    })
}

async fn client_name(state: &AppState, practice: PracticeId, id: ClientId) -> String {
    match state.store.client(practice, id).await {
        Ok(Some(c)) => c.display_name,
        _ => "Client".to_string(),
    }
}

// --------------------------------------------------------------- dashboard

/// One row of the caseload, with why it is there.
pub struct CaseRow {
    pub rank: u8,
    pub client: String,
    pub link: String,
    pub reason: &'static str,
    pub detail: String,
    pub tone: &'static str,
}

#[derive(Template)]
#[template(path = "portal_dashboard.html")]
pub struct DashboardPage {
    pub nav: Nav,
    pub name: String,
    pub rows: Vec<CaseRow>,
    pub clients: Vec<(String, String)>,
}

/// `GET /dashboard`: the caseload ordered by what needs attention.
pub async fn dashboard(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    match build_dashboard(&state, &caller).await {
        Ok(page) => render(&page),
        Err(e) => e.to_html(),
    }
}

async fn build_dashboard(state: &AppState, caller: &Caller) -> Result<DashboardPage, ApiError> {
    let p = caller.user.practice_id;
    let tz = viewer_zone(state, p).await;
    let now = state.clock.now();
    let visible: Vec<_> = state
        .store
        .clients_in_practice(p)
        .await?
        .into_iter()
        .filter(|c| {
            authorize(
                &caller.actor,
                Action::ReadClinicalRecord,
                &Resource::client_record(p, c.id),
            ) == Decision::Allow
        })
        .collect();
    let name_of = |id: ClientId| {
        visible
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.display_name.clone())
    };
    let mut episodes = Vec::new();
    for c in &visible {
        for e in state.store.episodes_for_client(p, c.id).await? {
            episodes.push(e);
        }
    }
    let client_of_episode = |id| episodes.iter().find(|e| e.id == id).map(|e| e.client_id);
    let mut rows = Vec::new();
    // 1. Open risk tasks.
    for t in state.store.open_tasks(p).await? {
        if let Some(name) = name_of(t.client_id) {
            rows.push(CaseRow {
                rank: 0,
                client: name,
                link: format!("/clients/{}", t.client_id),
                reason: "Open risk task",
                detail: format!("{} — due {}", t.title, local_time(tz, t.due_at)),
                tone: "danger",
            });
        }
    }
    // 2. Not on track.
    for m in state.store.not_on_track(p).await? {
        if let Some(cid) = client_of_episode(m.episode_id) {
            if let Some(name) = name_of(cid) {
                let why = m.track.map(|t| t.reason).unwrap_or_default();
                rows.push(CaseRow {
                    rank: 1,
                    client: name,
                    link: format!("/clients/{cid}"),
                    reason: "Not on track",
                    detail: format!("{}: {}", m.instrument.to_uppercase(), why),
                    tone: "amber",
                });
            }
        }
    }
    // 3. Overdue measures.
    for e in &episodes {
        let subs = state.store.submissions_for_episode(p, e.id).await?;
        for s in state.store.measure_schedules(p, e.id).await? {
            let done: Vec<_> = subs
                .iter()
                .filter(|x| x.instrument == s.instrument)
                .map(|x| x.submitted_at)
                .collect();
            let ctx = DueContext {
                now,
                episode_status: e.status,
                first_completed: done.iter().min().copied(),
                last_completed: done.iter().max().copied(),
                next_session: None,
                discharge_planned: false,
            };
            if let Due::Due { by, reason } = measure_schedule::due(s.rule, &ctx) {
                if by < now {
                    if let Some(name) = name_of(e.client_id) {
                        rows.push(CaseRow {
                            rank: 2,
                            client: name,
                            link: format!("/clients/{}", e.client_id),
                            reason: "Measure overdue",
                            detail: format!("{} — {reason}", s.instrument.to_uppercase()),
                            tone: "amber",
                        });
                    }
                }
            }
        }
    }
    // 4. Unsigned notes.
    for n in state.store.unsigned_notes_by(p, caller.user.id).await? {
        if let Some(name) = name_of(n.client_id) {
            rows.push(CaseRow {
                rank: 3,
                client: name,
                link: format!("/clients/{}/notes/{}", n.client_id, n.id),
                reason: "Unsigned note",
                detail: format!(
                    "{} ({}) started {}",
                    n.kind.label(),
                    n.template.label(),
                    local_time(tz, n.created_at)
                ),
                tone: "plain",
            });
        }
    }
    // 5. Homework returned.
    for h in state.store.homework_returned(p).await? {
        if let Some(name) = name_of(h.client_id) {
            rows.push(CaseRow {
                rank: 4,
                client: name,
                link: format!("/clients/{}/homework", h.client_id),
                reason: "Homework returned",
                detail: format!(
                    "{} sent {}",
                    worksheet_title(&h.technique),
                    h.submitted_at
                        .map(|t| local_time(tz, t))
                        .unwrap_or_default()
                ),
                tone: "ok",
            });
        }
    }
    // 6. Today's and this week's sessions.
    let week = now + Duration::days(7);
    for a in state
        .store
        .appointments_for_clinician(p, caller.user.id, now - Duration::hours(2), week)
        .await?
        .into_iter()
        .filter(|a| a.status == AppointmentStatus::Booked)
    {
        if let Some(name) = name_of(a.client_id) {
            let today = a.starts_at.date_naive() == now.date_naive();
            rows.push(CaseRow {
                rank: if today { 5 } else { 6 },
                client: name,
                link: format!("/clients/{}", a.client_id),
                reason: if today {
                    "Session today"
                } else {
                    "Session this week"
                },
                detail: local_time(tz, a.starts_at),
                tone: "plain",
            });
        }
    }
    rows.sort_by_key(|r| r.rank);
    Ok(DashboardPage {
        nav: nav(state, caller).await,
        name: caller.user.display_name.clone(),
        rows,
        clients: visible
            .iter()
            .map(|c| (c.id.to_string(), c.display_name.clone()))
            .collect(),
    })
}

fn worksheet_title(technique: &str) -> String {
    Knowledge::embedded()
        .ok()
        .and_then(|k| k.technique(technique).map(|t| t.homework.title.clone()))
        .unwrap_or_else(|| technique.to_string())
}

// ------------------------------------------------------------------- notes

pub struct NoteRow {
    pub id: String,
    pub kind: &'static str,
    pub template: &'static str,
    pub status: &'static str,
    pub created: String,
}

#[derive(Template)]
#[template(path = "portal_notes.html")]
pub struct NotesPage {
    pub nav: Nav,
    pub client_id: String,
    pub client: String,
    pub notes: Vec<NoteRow>,
}

fn may_read(caller: &Caller, n: &SessionNote) -> bool {
    match n.kind {
        NoteKind::Progress => true,
        NoteKind::Psychotherapy => {
            let resource = Resource {
                owner: Some(n.author),
                ..Resource::client_record(n.practice_id, n.client_id)
            };
            authorize(&caller.actor, Action::ReadPsychotherapyNote, &resource) == Decision::Allow
        }
    }
}

/// `GET /clients/{id}/notes`: the client's notes and a new-note form.
pub async fn notes_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let p = a.caller.user.practice_id;
        let tz = viewer_zone(&state, p).await;
        let notes = state.store.notes_for_client(p, id).await?;
        Ok::<_, ApiError>(NotesPage {
            nav: nav(&state, &a.caller).await,
            client_id: id.to_string(),
            client: client_name(&state, p, id).await,
            notes: notes
                .iter()
                .filter(|n| may_read(&a.caller, n))
                .map(|n| NoteRow {
                    id: n.id.to_string(),
                    kind: n.kind.label(),
                    template: n.template.label(),
                    status: match (n.signed_at, n.cosigned_at) {
                        (None, _) => "Draft",
                        (Some(_), None) => "Signed",
                        (Some(_), Some(_)) => "Signed and co-signed",
                    },
                    created: local_time(tz, n.created_at),
                })
                .collect(),
        })
    };
    crate::pages::page(run.await)
}

pub struct SectionView {
    pub key: &'static str,
    pub heading: &'static str,
    pub prompt: &'static str,
    pub text: String,
}

#[derive(Template)]
#[template(path = "portal_note.html")]
pub struct NotePage {
    pub nav: Nav,
    pub client_id: String,
    pub client: String,
    pub note_id: String,
    pub kind: &'static str,
    pub template: &'static str,
    pub sections: Vec<SectionView>,
    pub signed: Option<String>,
    pub cosigned: Option<String>,
    pub addenda: Vec<(String, String)>,
    pub can_cosign: bool,
}

/// `GET /clients/{id}/notes/{note}`: edit a draft, or read a signed note
/// with its addenda.
pub async fn note_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, note)): Path<(String, String)>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let p = a.caller.user.practice_id;
        let tz = viewer_zone(&state, p).await;
        let n = state
            .store
            .note(p, parse_uuid(&note)?)
            .await?
            .filter(|n| n.client_id == id && may_read(&a.caller, n))
            .ok_or_else(ApiError::not_found)?;
        let addenda: Vec<Addendum> = state.store.addenda(p, n.id).await?;
        let can_cosign = n.signed_at.is_some()
            && n.cosigned_at.is_none()
            && may(&a.caller, Action::CosignNote, p, id);
        Ok::<_, ApiError>(NotePage {
            nav: nav(&state, &a.caller).await,
            client_id: id.to_string(),
            client: client_name(&state, p, id).await,
            note_id: n.id.to_string(),
            kind: n.kind.label(),
            template: n.template.label(),
            sections: n
                .template
                .sections()
                .iter()
                .map(|s| SectionView {
                    key: s.key,
                    heading: s.heading,
                    prompt: s.prompt,
                    text: n.body.text(s.key).to_string(),
                })
                .collect(),
            signed: n.signed_at.map(|t| local_time(tz, t)),
            cosigned: n.cosigned_at.map(|t| local_time(tz, t)),
            addenda: addenda
                .into_iter()
                .map(|x| (local_time(tz, x.created_at), x.text))
                .collect(),
            can_cosign,
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/clients/{id}/notes`: `{kind, template}` → a new draft.
pub async fn create_note(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let body = form(body)?;
    let id = client_of(&a)?;
    let template = NoteTemplate::parse(body.get("template").map_or("", |s| s.as_str()))
        .map_err(|e| ApiError::unprocessable("template", e.to_string()))?;
    let kind = NoteKind::parse(body.get("kind").map_or("progress", |s| s.as_str()))
        .map_err(|e| ApiError::unprocessable("kind", e.to_string()))?;
    let now = state.clock.now();
    let note = SessionNote {
        id: Uuid::new_v4(),
        practice_id: a.caller.user.practice_id,
        client_id: id,
        author: a.caller.user.id,
        kind,
        template,
        body: NoteBody::from_fields(template, &[])
            .map_err(|e| ApiError::unprocessable("body", e.to_string()))?,
        signed_at: None,
        cosigned_by: None,
        cosigned_at: None,
        created_at: now,
        updated_at: now,
    };
    state.store.insert_note(&note).await?;
    Ok((
        StatusCode::CREATED,
        next(format!("/clients/{id}/notes/{}", note.id)),
    )
        .into_response())
}

async fn own_draft(state: &AppState, a: &Authorized, note: &str) -> Result<SessionNote, ApiError> {
    let id = client_of(a)?;
    let n = state
        .store
        .note(a.caller.user.practice_id, parse_uuid(note)?)
        .await?
        .filter(|n| n.client_id == id && may_read(&a.caller, n))
        .ok_or_else(ApiError::not_found)?;
    Ok(n)
}

/// `POST /api/v1/clients/{id}/notes/{note}`: save a draft's sections.
pub async fn update_note(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, note)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = form(body)?;
    let n = own_draft(&state, &a, &note).await?;
    if n.signed_at.is_some() {
        return Err(ApiError::conflict(
            "This note is signed and locked. Add an addendum instead.",
        ));
    }
    let new = NoteBody::from_fields(n.template, &fields_of(&body, &[]))
        .map_err(|e| ApiError::unprocessable("section", e.to_string()))?;
    state
        .store
        .update_note_draft(n.practice_id, n.id, &new, state.clock.now())
        .await?;
    Ok(next(format!("/clients/{}/notes/{}", n.client_id, n.id)))
}

/// `POST /api/v1/clients/{id}/notes/{note}/sign`: sign and lock.
pub async fn sign_note(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, note)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    form(body)?;
    let n = own_draft(&state, &a, &note).await?;
    if n.author != a.caller.user.id {
        return Err(ApiError::forbidden());
    }
    if n.body.is_empty() {
        return Err(ApiError::unprocessable(
            "body",
            "an empty note cannot be signed; write at least one section",
        ));
    }
    state
        .store
        .sign_note(n.practice_id, n.id, state.clock.now())
        .await?;
    Ok(next(format!("/clients/{}/notes/{}", n.client_id, n.id)))
}

/// `POST /api/v1/clients/{id}/notes/{note}/addenda`: `{text}`.
pub async fn add_addendum(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, note)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let body = form(body)?;
    let n = own_draft(&state, &a, &note).await?;
    let text = body.get("text").map(|t| t.trim()).unwrap_or("");
    if text.is_empty() {
        return Err(ApiError::unprocessable("text", "the addendum is empty"));
    }
    state
        .store
        .add_addendum(
            n.practice_id,
            &Addendum {
                id: Uuid::new_v4(),
                note_id: n.id,
                author: a.caller.user.id,
                text: text.to_string(),
                created_at: state.clock.now(),
            },
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        next(format!("/clients/{}/notes/{}", n.client_id, n.id)),
    )
        .into_response())
}

/// `POST /api/v1/clients/{id}/notes/{note}/cosign`: the supervisor's
/// co-signature on a signed note.
pub async fn cosign_note(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, note)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    form(body)?;
    let n = own_draft(&state, &a, &note).await?;
    state
        .store
        .cosign_note(n.practice_id, n.id, a.caller.user.id, state.clock.now())
        .await?;
    Ok(next(format!("/clients/{}/notes/{}", n.client_id, n.id)))
}

// ------------------------------------------------------------- safety plan

pub struct StepView {
    pub key: &'static str,
    pub heading: &'static str,
    pub prompt: &'static str,
    pub text: String,
    pub lines: Vec<String>,
}

fn steps_of(body: Option<&SafetyPlanBody>) -> Vec<StepView> {
    safety_plan::STEPS
        .iter()
        .map(|s| {
            let text = body.map(|b| b.text(s.key).to_string()).unwrap_or_default();
            StepView {
                key: s.key,
                heading: s.heading,
                prompt: s.prompt,
                lines: text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect(),
                text,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "portal_safety_plan_edit.html")]
pub struct SafetyPlanEditor {
    pub nav: Nav,
    pub client_id: String,
    pub client: String,
    pub steps: Vec<StepView>,
    pub reasons: String,
    pub version: u32,
    pub saved: String,
    pub can_write: bool,
}

/// `GET /clients/{id}/safety-plan`: the editor (latest version) and history.
pub async fn safety_plan_editor(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let p = a.caller.user.practice_id;
        let tz = viewer_zone(&state, p).await;
        let versions = state.store.safety_plans(p, id).await?;
        let latest = versions.last();
        Ok::<_, ApiError>(SafetyPlanEditor {
            nav: nav(&state, &a.caller).await,
            client_id: id.to_string(),
            client: client_name(&state, p, id).await,
            steps: steps_of(latest.map(|v| &v.body)),
            reasons: latest
                .map(|v| v.body.reasons_for_living.clone())
                .unwrap_or_default(),
            version: latest.map_or(0, |v| v.version),
            saved: latest
                .map(|v| local_time(tz, v.created_at))
                .unwrap_or_default(),
            can_write: may(&a.caller, Action::WriteSafetyPlan, p, id),
        })
    };
    crate::pages::page(run.await)
}

/// Whether the caller may take `action` on client `id`'s record (for showing
/// or hiding a form; the guard still decides every request).
fn may(caller: &Caller, action: Action, p: PracticeId, id: ClientId) -> bool {
    authorize(&caller.actor, action, &Resource::client_record(p, id)) == Decision::Allow
}

/// `POST /api/v1/clients/{id}/safety-plan`: a new version.
pub async fn save_safety_plan(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let body = form(body)?;
    let id = client_of(&a)?;
    let plan = SafetyPlanBody::from_fields(&fields_of(&body, &[]))
        .map_err(|e| ApiError::unprocessable("safety_plan", e.to_string()))?;
    let version = state
        .store
        .save_safety_plan(
            a.caller.user.practice_id,
            id,
            a.caller.user.id,
            &plan,
            state.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "version": version, "next": format!("/clients/{id}/safety-plan") })),
    )
        .into_response())
}

#[derive(Template)]
#[template(path = "portal_my_safety_plan.html")]
pub struct MySafetyPlan {
    pub nav: Nav,
    pub steps: Vec<StepView>,
    pub reasons: String,
    pub version: u32,
    pub saved: String,
}

/// `GET /me/safety-plan`: the client's own plan.
pub async fn my_safety_plan(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let tz = viewer_zone(&state, a.caller.user.practice_id).await;
        let versions = state
            .store
            .safety_plans(a.caller.user.practice_id, id)
            .await?;
        let latest = versions.last();
        Ok::<_, ApiError>(MySafetyPlan {
            nav: nav(&state, &a.caller).await,
            steps: steps_of(latest.map(|v| &v.body)),
            reasons: latest
                .map(|v| v.body.reasons_for_living.clone())
                .unwrap_or_default(),
            version: latest.map_or(0, |v| v.version),
            saved: latest
                .map(|v| local_time(tz, v.created_at))
                .unwrap_or_default(),
        })
    };
    crate::pages::page(run.await)
}

// ---------------------------------------------------------------- homework

pub struct HomeworkRow {
    pub id: String,
    pub title: String,
    pub technique: String,
    pub status: &'static str,
    pub assigned: String,
    pub answers: Vec<(String, String)>,
    pub reviewed: bool,
}

fn homework_row(k: &Knowledge, tz: chrono_tz::Tz, h: &Homework) -> HomeworkRow {
    let template = k.technique(&h.technique).map(|t| &t.homework);
    let prompt = |name: &str| {
        template
            .and_then(|t| t.fields.iter().find(|f| f.name == name))
            .map(|f| f.prompt.clone())
            .unwrap_or_else(|| name.replace('_', " "))
    };
    HomeworkRow {
        id: h.id.to_string(),
        title: template
            .map(|t| t.title.clone())
            .unwrap_or_else(|| h.technique.clone()),
        technique: k
            .technique(&h.technique)
            .map(|t| t.name.clone())
            .unwrap_or_else(|| h.technique.clone()),
        status: match h.status {
            HomeworkStatus::Assigned => "Not started",
            HomeworkStatus::Draft => "In progress",
            HomeworkStatus::Submitted => "Sent",
        },
        assigned: local_time(tz, h.assigned_at),
        answers: if h.status == HomeworkStatus::Submitted {
            h.answers
                .fields
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(n, v)| (prompt(n), v.clone()))
                .collect()
        } else {
            Vec::new()
        },
        reviewed: h.reviewed_at.is_some(),
    }
}

#[derive(Template)]
#[template(path = "portal_homework.html")]
pub struct HomeworkPage {
    pub nav: Nav,
    pub client_id: String,
    pub client: String,
    pub rows: Vec<HomeworkRow>,
    /// (code, label) of the accepted plan's items that carry a worksheet,
    /// in plan order: offered first ("assign from plan items").
    pub plan_options: Vec<(String, String)>,
    /// (code, name — worksheet title) of every other technique that
    /// carries a worksheet.
    pub options: Vec<(String, String)>,
    pub can_assign: bool,
}

/// The accepted plan's items that carry a worksheet, in plan order, each
/// labelled with its phase and what it is for; removed items are left out.
async fn plan_worksheets(
    state: &AppState,
    k: &Knowledge,
    p: PracticeId,
    id: ClientId,
) -> Result<Vec<(String, String)>, ApiError> {
    use tapestry_domain::plan::ItemStatus;
    use tapestry_store::records::PlanStatus;
    let versions = state.store.plan_versions(p, id).await?;
    let Some(accepted) = versions
        .iter()
        .filter(|v| v.status == PlanStatus::Accepted)
        .max_by_key(|v| v.version)
    else {
        return Ok(Vec::new());
    };
    Ok(accepted
        .plan
        .items
        .iter()
        .filter(|i| i.status != ItemStatus::Removed)
        .filter_map(|i| {
            let t = k.techniques.values().find(|t| t.code == i.code)?;
            (t.homework.kind != "none" && !t.homework.fields.is_empty()).then(|| {
                (
                    t.code.clone(),
                    format!(
                        "{:?} · {} — {} (plan item)",
                        i.phase, t.homework.title, t.name
                    ),
                )
            })
        })
        .collect())
}

/// `GET /clients/{id}/homework`: assign from the accepted plan's items
/// first, then from the library; see what came back.
pub async fn homework_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let p = a.caller.user.practice_id;
        let k = knowledge()?;
        let list = state.store.homework_for_client(p, id).await?;
        let tz = viewer_zone(&state, p).await;
        let mut options: Vec<(String, String)> = k
            .techniques
            .values()
            .filter(|t| t.homework.kind != "none" && !t.homework.fields.is_empty())
            .map(|t| (t.code.clone(), format!("{} — {}", t.homework.title, t.name)))
            .collect();
        options.sort_by(|x, y| x.1.cmp(&y.1));
        let plan_options = plan_worksheets(&state, &k, p, id).await?;
        options.retain(|(code, _)| !plan_options.iter().any(|(c, _)| c == code));
        Ok::<_, ApiError>(HomeworkPage {
            nav: nav(&state, &a.caller).await,
            client_id: id.to_string(),
            client: client_name(&state, p, id).await,
            rows: list.iter().map(|h| homework_row(&k, tz, h)).collect(),
            plan_options,
            options,
            can_assign: may(&a.caller, Action::AssignHomework, p, id),
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/clients/{id}/homework`: `{technique}` (code or id).
pub async fn assign_homework(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let body = form(body)?;
    let id = client_of(&a)?;
    let code = body.get("technique").map(|s| s.trim()).unwrap_or("");
    let k = knowledge()?;
    let t = k.technique(code).ok_or_else(|| {
        ApiError::unprocessable(
            "technique",
            format!("{code:?} is not in the technique library"),
        )
    })?;
    if t.homework.fields.is_empty() {
        return Err(ApiError::unprocessable(
            "technique",
            format!("{} has no worksheet to fill in", t.name),
        ));
    }
    let now = state.clock.now();
    state
        .store
        .assign_homework(&Homework {
            id: Uuid::new_v4(),
            practice_id: a.caller.user.practice_id,
            client_id: id,
            assigned_by: a.caller.user.id,
            technique: t.code.clone(),
            status: HomeworkStatus::Assigned,
            answers: WorksheetAnswers::default(),
            assigned_at: now,
            updated_at: now,
            submitted_at: None,
            reviewed_at: None,
        })
        .await?;
    Ok((StatusCode::CREATED, next(format!("/clients/{id}/homework"))).into_response())
}

/// `POST /api/v1/clients/{id}/homework/{hw}/reviewed`.
pub async fn homework_reviewed(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, hw)): Path<(String, String)>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    form(body)?;
    let id = client_of(&a)?;
    let p = a.caller.user.practice_id;
    let h = state
        .store
        .homework(p, parse_uuid(&hw)?)
        .await?
        .filter(|h| h.client_id == id)
        .ok_or_else(ApiError::not_found)?;
    state
        .store
        .mark_homework_reviewed(p, h.id, state.clock.now())
        .await?;
    Ok(next(format!("/clients/{id}/homework")))
}

#[derive(Template)]
#[template(path = "portal_my_homework.html")]
pub struct MyHomework {
    pub nav: Nav,
    pub rows: Vec<HomeworkRow>,
}

/// `GET /me/homework`: the client's worksheets.
pub async fn my_homework(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let k = knowledge()?;
        let tz = viewer_zone(&state, a.caller.user.practice_id).await;
        let list = state
            .store
            .homework_for_client(a.caller.user.practice_id, id)
            .await?;
        Ok::<_, ApiError>(MyHomework {
            nav: nav(&state, &a.caller).await,
            rows: list.iter().map(|h| homework_row(&k, tz, h)).collect(),
        })
    };
    crate::pages::page(run.await)
}

pub struct FieldView {
    pub name: String,
    pub prompt: String,
    pub kind: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "portal_worksheet.html")]
pub struct WorksheetPage {
    pub nav: Nav,
    pub id: String,
    pub title: String,
    pub technique: String,
    pub why: String,
    pub instructions: String,
    pub fields: Vec<FieldView>,
    pub submitted: bool,
    pub sleep: Option<String>,
}

async fn my_homework_item(
    state: &AppState,
    a: &Authorized,
    hw: &str,
) -> Result<Homework, ApiError> {
    let id = client_of(a)?;
    state
        .store
        .homework(a.caller.user.practice_id, parse_uuid(hw)?)
        .await?
        .filter(|h| h.client_id == id)
        .ok_or_else(ApiError::not_found)
}

/// The sleep diary's computed values, when the worksheet is one and the
/// times parse (domain::sleep_diary does the arithmetic).
fn sleep_summary(answers: &WorksheetAnswers) -> Option<String> {
    use tapestry_domain::sleep_diary::{compute, parse_time, SleepDiaryEntry};
    let t = |f: &'static str| parse_time(f, answers.value(f)).ok();
    let n = |f: &str| answers.value(f).parse::<u32>().ok();
    let entry = SleepDiaryEntry {
        bedtime: t("bedtime")?,
        lights_out: t("lights_out")?,
        sleep_onset_latency_min: n("sleep_onset_latency_min")?,
        awakenings: n("awakenings").unwrap_or(0),
        waso_min: n("waso_min").unwrap_or(0),
        final_wake: t("final_wake")?,
        out_of_bed: t("out_of_bed")?,
    };
    let m = compute(&entry).ok()?;
    Some(format!(
        "Time in bed {} h {} min, asleep {} h {} min{}.",
        m.time_in_bed_min / 60,
        m.time_in_bed_min % 60,
        m.total_sleep_time_min / 60,
        m.total_sleep_time_min % 60,
        m.sleep_efficiency_pct
            .map(|e| format!(", sleep efficiency {e:.1}%"))
            .unwrap_or_default()
    ))
}

/// `GET /me/homework/{hw}`: the worksheet form.
pub async fn worksheet_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(hw): Path<String>,
) -> Response {
    let run = async {
        let h = my_homework_item(&state, &a, &hw).await?;
        let k = knowledge()?;
        let t = k.technique(&h.technique).ok_or_else(ApiError::not_found)?;
        Ok::<_, ApiError>(WorksheetPage {
            nav: nav(&state, &a.caller).await,
            id: h.id.to_string(),
            title: t.homework.title.clone(),
            technique: t.name.clone(),
            why: t.explanation.clone(),
            instructions: t.homework.instructions.clone(),
            fields: t
                .homework
                .fields
                .iter()
                .map(|f| FieldView {
                    name: f.name.clone(),
                    prompt: f.prompt.clone(),
                    kind: f.kind.clone(),
                    value: h.answers.value(&f.name).to_string(),
                })
                .collect(),
            submitted: h.status == HomeworkStatus::Submitted,
            sleep: sleep_summary(&h.answers),
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/me/homework/{hw}`: answers, with `send=yes` to send.
pub async fn save_worksheet(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(hw): Path<String>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = form(body)?;
    let h = my_homework_item(&state, &a, &hw).await?;
    if h.status == HomeworkStatus::Submitted {
        return Err(ApiError::conflict(
            "This worksheet was already sent to your clinician.",
        ));
    }
    let k = knowledge()?;
    let t = k.technique(&h.technique).ok_or_else(ApiError::not_found)?;
    let send = body.get("send").is_some_and(|v| v == "yes");
    let answers = WorksheetAnswers::from_fields(&t.homework, &fields_of(&body, &["send"]))
        .map_err(|e| ApiError::unprocessable("worksheet", e.to_string()))?;
    if send && answers.is_empty() {
        return Err(ApiError::unprocessable(
            "worksheet",
            "write something before sending it to your clinician",
        ));
    }
    state
        .store
        .save_homework_answers(h.practice_id, h.id, &answers, send, state.clock.now())
        .await?;
    Ok(next(if send {
        "/me/homework".to_string()
    } else {
        format!("/me/homework/{}", h.id)
    }))
}

// ------------------------------------------------------------------ client

#[derive(Template)]
#[template(path = "portal_me.html")]
pub struct MeHome {
    pub nav: Nav,
    pub name: String,
    pub intake_done: bool,
    pub measures_due: usize,
    pub homework_open: usize,
    pub has_safety_plan: bool,
}

/// `GET /me`: the client's home; staff are sent to their dashboard or the
/// practice page.
pub async fn me_home(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Response {
    if caller.user.role != Role::Client {
        let to = if caller.user.role == Role::PracticeAdmin {
            "/practice"
        } else {
            "/dashboard"
        };
        return (StatusCode::SEE_OTHER, [(header::LOCATION, to)]).into_response();
    }
    let run = async {
        let p = caller.user.practice_id;
        let id = caller.actor.client_id.ok_or_else(ApiError::not_found)?;
        let draft = state.store.intake_draft(p, id).await?;
        let homework = state.store.homework_for_client(p, id).await?;
        let plans = state.store.safety_plans(p, id).await?;
        let due = due_measures(&state, p, id).await?;
        Ok::<_, ApiError>(MeHome {
            nav: nav(&state, &caller).await,
            name: caller.user.display_name.clone(),
            intake_done: draft.is_some_and(|d| d.is_complete()),
            measures_due: due.len(),
            homework_open: homework
                .iter()
                .filter(|h| h.status != HomeworkStatus::Submitted)
                .count(),
            has_safety_plan: !plans.is_empty(),
        })
    };
    crate::pages::page(run.await)
}

pub struct StepForm {
    pub index: usize,
    pub key: &'static str,
    pub heading: &'static str,
    pub fields: Vec<(String, String, String)>,
    pub done: bool,
}

#[derive(Template)]
#[template(path = "portal_intake.html")]
pub struct IntakePage {
    pub nav: Nav,
    pub steps: Vec<StepForm>,
    pub current: usize,
    pub total: usize,
    pub complete: bool,
}

/// `GET /intake`: the intake steps with save-and-continue; the current step
/// is open, the others can be revisited.
pub async fn intake_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let draft = state
            .store
            .intake_draft(a.caller.user.practice_id, id)
            .await?
            .unwrap_or_default();
        let current = draft.completed_steps.min(intake::STEPS.len());
        Ok::<_, ApiError>(IntakePage {
            nav: nav(&state, &a.caller).await,
            steps: intake::STEPS
                .iter()
                .enumerate()
                .map(|(i, s)| StepForm {
                    index: i,
                    key: s.key,
                    heading: s.heading,
                    fields: s
                        .fields
                        .iter()
                        .map(|(f, label)| {
                            (f.to_string(), label.to_string(), draft.value(f).to_string())
                        })
                        .collect(),
                    done: i < draft.completed_steps,
                })
                .collect(),
            current,
            total: intake::STEPS.len(),
            complete: draft.is_complete(),
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/me/intake`: `{step, …fields}`: saves one step.
pub async fn save_intake(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = form(body)?;
    let id = client_of(&a)?;
    let p = a.caller.user.practice_id;
    let step: usize = body
        .get("step")
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ApiError::unprocessable("step", "missing or not a number"))?;
    let mut draft: IntakeDraft = state.store.intake_draft(p, id).await?.unwrap_or_default();
    // The time zone is checked before anything is saved (an unknown name is
    // 422 naming `time_zone`); it becomes the client's own zone.
    let zone = match body.get("time_zone").map(|z| z.trim()) {
        Some(z) if !z.is_empty() => Some(
            TimeZoneName::parse(z)
                .map_err(|e| ApiError::unprocessable("time_zone", e.to_string()))?,
        ),
        _ => None,
    };
    draft
        .save_step(step, &fields_of(&body, &["step"]))
        .map_err(|e| ApiError::unprocessable("intake", e.to_string()))?;
    if let Some(zone) = &zone {
        state.store.set_client_time_zone(p, id, Some(zone)).await?;
    }
    state
        .store
        .save_intake_draft(p, id, &draft, state.clock.now())
        .await?;
    Ok(next(if draft.is_complete() {
        "/me/measures".to_string()
    } else {
        "/intake".to_string()
    }))
}

/// The instruments due for the client: scheduled ones that are due, and
/// the intake measures (PHQ-9, GAD-7) until they are first completed.
async fn due_measures(
    state: &AppState,
    p: PracticeId,
    id: ClientId,
) -> Result<Vec<(String, String)>, ApiError> {
    let now = state.clock.now();
    let mut out: Vec<(String, String)> = Vec::new();
    let episodes = state.store.episodes_for_client(p, id).await?;
    let mut completed: Vec<String> = Vec::new();
    for e in &episodes {
        let subs = state.store.submissions_for_episode(p, e.id).await?;
        completed.extend(subs.iter().map(|s| s.instrument.clone()));
        for s in state.store.measure_schedules(p, e.id).await? {
            let done: Vec<_> = subs
                .iter()
                .filter(|x| x.instrument == s.instrument)
                .map(|x| x.submitted_at)
                .collect();
            let ctx = DueContext {
                now,
                episode_status: e.status,
                first_completed: done.iter().min().copied(),
                last_completed: done.iter().max().copied(),
                next_session: None,
                discharge_planned: false,
            };
            if let Due::Due { reason, .. } = measure_schedule::due(s.rule, &ctx) {
                if !out.iter().any(|(i, _)| i == &s.instrument) {
                    out.push((s.instrument.clone(), reason));
                }
            }
        }
    }
    if !episodes.is_empty() {
        for intake in ["phq9", "gad7"] {
            if !completed.iter().any(|c| c == intake) && !out.iter().any(|(i, _)| i == intake) {
                out.push((intake.to_string(), "part of getting started".to_string()));
            }
        }
    }
    Ok(out)
}

pub struct DueView {
    pub id: String,
    pub title: String,
    pub reason: String,
    pub minutes: usize,
}

#[derive(Template)]
#[template(path = "portal_measures.html")]
pub struct MeasuresPage {
    pub nav: Nav,
    pub due: Vec<DueView>,
}

/// `GET /me/measures`: the questionnaires due now.
pub async fn measures_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let id = client_of(&a)?;
        let reg = registry()?;
        let due = due_measures(&state, a.caller.user.practice_id, id).await?;
        Ok::<_, ApiError>(MeasuresPage {
            nav: nav(&state, &a.caller).await,
            due: due
                .into_iter()
                .filter_map(|(i, reason)| {
                    reg.get(&i).map(|d| DueView {
                        id: d.id.clone(),
                        title: d.title.clone(),
                        reason,
                        minutes: (d.items.len() / 4).max(1),
                    })
                })
                .collect(),
        })
    };
    crate::pages::page(run.await)
}

pub struct ItemView {
    pub number: u16,
    pub name: String,
    pub text: String,
    pub options: Vec<(i32, String)>,
}

#[derive(Template)]
#[template(path = "portal_measure.html")]
pub struct MeasureForm {
    pub nav: Nav,
    pub id: String,
    pub title: String,
    pub stem: String,
    pub items: Vec<ItemView>,
    pub total: usize,
}

/// The questionnaire a client may answer in the portal: a known self-report
/// form. A clinician-administered form (the structured risk assessment) is
/// refused naming `instrument`; an unknown one is not found.
fn self_report<'r>(
    reg: &'r InstrumentRegistry,
    instrument: &str,
) -> Result<&'r tapestry_domain::instrument::InstrumentDef, ApiError> {
    let d = reg.get(instrument).ok_or_else(ApiError::not_found)?;
    if d.administered_by != AdministeredBy::Client {
        return Err(ApiError::unprocessable(
            "instrument",
            "this form is administered by a clinician, not answered in the portal",
        ));
    }
    Ok(d)
}

/// `GET /me/measures/{instrument}`: the questionnaire, one item per screen on
/// a phone (each item is its own fieldset; CSS gives it the screen).
pub async fn measure_form(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(instrument): Path<String>,
) -> Response {
    let run = async {
        let reg = registry()?;
        let d = self_report(&reg, &instrument)?;
        let items: Vec<ItemView> = d
            .items
            .iter()
            .map(|item| {
                let options = d
                    .answer_sets
                    .iter()
                    .find(|s| s.id == item.answers)
                    .map(|s| {
                        s.options
                            .iter()
                            .map(|o| {
                                (
                                    o.value,
                                    o.text.clone().unwrap_or_else(|| o.value.to_string()),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                ItemView {
                    number: item.number,
                    name: format!("item_{}", item.number),
                    text: item.text.clone().unwrap_or_else(|| {
                        format!("Item {} (text supplied by your practice)", item.number)
                    }),
                    options,
                }
            })
            .collect();
        Ok::<_, ApiError>(MeasureForm {
            nav: nav(&state, &a.caller).await,
            id: d.id.clone(),
            title: d.title.clone(),
            stem: d.stem.clone().unwrap_or_default(),
            total: items.len(),
            items,
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/me/measures/{instrument}`: `{item_1: "0", …}` through the
/// ingest pipeline (scores, risk flags and clinician tasks in one commit).
pub async fn submit_measure(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(instrument): Path<String>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Response, ApiError> {
    let body = form(body)?;
    let id = client_of(&a)?;
    let p = a.caller.user.practice_id;
    let reg = registry()?;
    let d = self_report(&reg, &instrument)?;
    let mut values: Vec<Option<u8>> = Vec::with_capacity(d.items.len());
    for item in &d.items {
        let key = format!("item_{}", item.number);
        match body.get(&key).map(|s| s.trim()) {
            None | Some("") => values.push(None),
            Some(v) => values.push(Some(v.parse::<u8>().map_err(|_| {
                ApiError::unprocessable(key.clone(), "not one of the answers offered")
            })?)),
        }
    }
    let episode = state
        .store
        .episodes_for_client(p, id)
        .await?
        .into_iter()
        .max_by_key(|e| e.opened_at)
        .ok_or_else(|| {
            ApiError::unprocessable("episode", "your practice has not opened your care yet")
        })?;
    let request = IngestRequest {
        practice_id: p,
        client_id: id,
        episode_id: episode.id,
        instrument: d.id.clone(),
        answers: Answers::from_options(&values),
        idempotency_key: body.get("idempotency_key").cloned(),
        submitted_at: state.clock.now(),
    };
    let results = state
        .store
        .ingest(&reg, &IngestSettings::default(), &[request])
        .await?;
    match results.into_iter().next() {
        Some(Ok(receipt)) => {
            // A risk answer while waiting alerts the intake team at once
            // (docs/matching.md §6).
            if receipt.new && !receipt.flags.is_empty() {
                crate::matching::escalate_waitlist_risk(
                    &*state.store,
                    p,
                    id,
                    episode.id,
                    state.clock.now(),
                )
                .await?;
            }
            Ok((StatusCode::CREATED, next("/me/measures".into())).into_response())
        }
        Some(Err(e)) => Err(ApiError::unprocessable("answers", e.to_string())),
        None => Err(ApiError::internal()),
    }
}

pub struct AccessRow {
    pub at: String,
    pub who: String,
    pub what: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "portal_access_log.html")]
pub struct AccessLogPage {
    pub nav: Nav,
    pub rows: Vec<AccessRow>,
}

/// Plain words for an audited action.
fn action_words(action: &str) -> String {
    match action {
        "read_clinical_record" => "opened your record".into(),
        "read_notes" => "read session notes".into(),
        "write_notes" | "sign_note" | "addend_note" | "cosign_note" => {
            "wrote in your session notes".into()
        }
        "read_measures" => "looked at your questionnaire answers".into(),
        "submit_own_measures" => "answered a questionnaire".into(),
        "read_safety_plan" => "read your safety plan".into(),
        "write_safety_plan" => "updated your safety plan".into(),
        "read_homework" => "looked at your worksheets".into(),
        "assign_homework" => "gave you a worksheet".into(),
        "complete_own_homework" => "worked on a worksheet".into(),
        "complete_own_intake" => "worked on the intake".into(),
        "read_own_access_ledger" | "read_record_access_ledger" => {
            "looked at this access log".into()
        }
        "break_glass_open" => "used emergency access".into(),
        other => other.replace('_', " "),
    }
}

/// `GET /me/access-log`: who opened my record.
pub async fn access_log_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let tz = viewer_zone(&state, a.caller.user.practice_id).await;
        let Json(entries) = crate::clinical::ledger(&state, &a).await?;
        Ok::<_, ApiError>(AccessLogPage {
            nav: nav(&state, &a.caller).await,
            rows: entries
                .into_iter()
                .rev()
                .map(|e| AccessRow {
                    at: local_time(tz, e.at),
                    who: match (e.actor_name, e.actor_role) {
                        (Some(n), Some(Role::Client)) => format!("{n} (you)"),
                        (Some(n), Some(r)) => format!("{n} ({})", r.as_str().replace('_', " ")),
                        (Some(n), None) => n,
                        _ => "Someone not signed in".into(),
                    },
                    what: action_words(&e.action),
                    outcome: if e.outcome == "allowed" {
                        String::new()
                    } else {
                        "refused".into()
                    },
                })
                .collect(),
        })
    };
    crate::pages::page(run.await)
}

// ---------------------------------------------------------------- practice

#[derive(Template)]
#[template(path = "portal_practice.html")]
pub struct PracticePage {
    pub nav: Nav,
    pub practice: String,
    pub staff: Vec<(String, String, String, String)>,
    pub can_invite: bool,
    pub time_zone: String,
    pub measures: String,
    pub crisis: String,
}

/// `GET /practice`: clinicians and invitations, practice settings.
pub async fn practice_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let p = a.caller.user.practice_id;
        let practice = state.store.practice(p).await?;
        let users = state.store.users_in_practice(p).await?;
        let setting = |v: Option<String>, d: &str| v.unwrap_or_else(|| d.to_string());
        Ok::<_, ApiError>(PracticePage {
            nav: nav(&state, &a.caller).await,
            practice: practice.map(|x| x.name).unwrap_or_default(),
            staff: users
                .into_iter()
                .filter(|u| u.role.is_staff())
                .map(|u| {
                    (
                        u.display_name,
                        u.email.as_str().to_string(),
                        u.role.as_str().replace('_', " "),
                        format!("{:?}", u.status).to_lowercase(),
                    )
                })
                .collect(),
            can_invite: a.caller.user.role == Role::PracticeOwner,
            time_zone: setting(state.store.setting(p, SETTING_TIME_ZONE).await?, "UTC"),
            measures: setting(
                state.store.setting(p, SETTING_MEASURES).await?,
                "phq9, gad7",
            ),
            crisis: crisis_text(&state, p).await,
        })
    };
    crate::pages::page(run.await)
}

/// `POST /api/v1/practice/settings`: `{time_zone, measure_defaults, crisis_resources}`.
pub async fn save_settings(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BTreeMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let body = form(body)?;
    let p = a.caller.user.practice_id;
    for k in body.keys() {
        if ![SETTING_TIME_ZONE, SETTING_MEASURES, SETTING_CRISIS].contains(&k.as_str()) {
            return Err(ApiError::unprocessable(k.clone(), "not a practice setting"));
        }
    }
    if let Some(tz) = body.get(SETTING_TIME_ZONE) {
        if tz.trim().parse::<chrono_tz::Tz>().is_err() {
            return Err(ApiError::unprocessable(
                SETTING_TIME_ZONE,
                format!("{tz:?} is not an IANA time zone such as Europe/Paris"),
            ));
        }
    }
    if let Some(m) = body.get(SETTING_MEASURES) {
        let reg = registry()?;
        for id in m.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            if reg.get(id).is_none() {
                return Err(ApiError::unprocessable(
                    SETTING_MEASURES,
                    format!("{id:?} is not a known instrument"),
                ));
            }
        }
    }
    for (k, v) in &body {
        state.store.set_setting(p, k, v.trim()).await?;
    }
    Ok(next("/practice".into()))
}

pub struct AuditRow {
    pub at: String,
    pub who: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
}

#[derive(Template)]
#[template(path = "portal_audit.html")]
pub struct AuditPage {
    pub nav: Nav,
    pub rows: Vec<AuditRow>,
    pub shown: usize,
    pub total: usize,
}

/// `GET /practice/audit`: the practice's audit log (ids and times, no content),
/// newest first, the latest 500.
pub async fn audit_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let run = async {
        let p = a.caller.user.practice_id;
        let tz = viewer_zone(&state, p).await;
        let people = state.store.users_in_practice(p).await?;
        let events: Vec<_> = state
            .store
            .audit_events()
            .await?
            .into_iter()
            .filter(|e| e.practice_id == Some(p))
            .collect();
        let total = events.len();
        let rows: Vec<AuditRow> = events
            .into_iter()
            .rev()
            .take(500)
            .map(|e| AuditRow {
                at: local_time(tz, e.at),
                who: e
                    .actor
                    .and_then(|u| people.iter().find(|x| x.id == u))
                    .map(|x| x.display_name.clone())
                    .unwrap_or_else(|| "—".into()),
                action: e.action.replace('_', " "),
                object: format!(
                    "{} {}",
                    e.object_type,
                    e.object_id
                        .map(|i| i.to_string().chars().take(8).collect::<String>())
                        .unwrap_or_default()
                ),
                outcome: e.outcome.as_str().to_string(),
            })
            .collect();
        Ok::<_, ApiError>(AuditPage {
            nav: nav(&state, &a.caller).await,
            shown: rows.len(),
            rows,
            total,
        })
    };
    crate::pages::page(run.await)
}
