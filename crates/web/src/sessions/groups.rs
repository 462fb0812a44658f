//! Group programmes over HTTP: create a programme, the roster (add and
//! remove members, clients joining and leaving by themselves when the
//! programme allows it), group sessions on the facilitators' calendars
//! (409 when a facilitator is busy), attendance, per-member notes (sealed,
//! audited clinical reads/writes) with the member's group-measure scores,
//! and the pages for facilitators and members.
//!
//! Who sees what: the facilitators (and practice admins, for running the
//! practice) see the roster with full names; a member sees the others by
//! first name only and never anyone's notes; a member's group notes are
//! for the facilitators and the member's own care team (`ReadGroupMember`).

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::schedule::group::{
    self, Attendance, GroupError, GroupId, GroupKind, GroupNote, GroupProgramme, GroupSession,
    Membership, NewGroup,
};
use tapestry_domain::schedule::{
    AppointmentId, AppointmentKind, AppointmentStatus, AppointmentType, Format, Recurrence,
};
use tapestry_domain::user::Role;
use tapestry_store::AttendanceRecord;
use uuid::Uuid;

/// Group-programme errors as the API envelope: a bad field is 422 naming
/// it; a duplicate member or a full group is 409.
fn group_error(e: GroupError) -> ApiError {
    match e {
        GroupError::Invalid { field, .. } => ApiError::unprocessable(field, e.to_string()),
        GroupError::AlreadyMember | GroupError::Full(_) => ApiError::conflict(e.to_string()),
        GroupError::NotMember => ApiError::unprocessable("client_id", e.to_string()),
        GroupError::Schedule(s) => crate::sessions::booking::schedule_error(s),
    }
}

/// A yes/no sent as JSON boolean or as a checkbox ("on", "true").
fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum B {
        Bool(bool),
        Text(String),
    }
    Ok(match B::deserialize(d)? {
        B::Bool(b) => b,
        B::Text(t) => matches!(t.trim(), "on" | "true" | "yes" | "1"),
    })
}

/// An optional id; an empty form field means none.
fn optional_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
    let text: Option<String> = Option::deserialize(d)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => t.parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Instrument ids as a JSON list or as comma-separated form text.
fn measure_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum L {
        List(Vec<String>),
        Text(String),
    }
    Ok(match L::deserialize(d)? {
        L::List(v) => v,
        L::Text(t) => t
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

fn parse_id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

fn practice_of(a: &Authorized) -> PracticeId {
    a.caller.user.practice_id
}

/// The group in the path (the guard has already found and authorized it).
async fn group_in_path(
    state: &AppState,
    a: &Authorized,
    id: &str,
) -> Result<GroupProgramme, ApiError> {
    state
        .store
        .group(practice_of(a), GroupId::from_uuid(parse_id(id)?))
        .await?
        .ok_or_else(ApiError::not_found)
}

/// The facilitators and practice admins act on a group's roster and
/// schedule (the guard's policy decision, restated for the handler).
fn runs(a: &Authorized, g: &GroupProgramme) -> bool {
    g.is_facilitator(a.caller.user.id) || a.caller.actor.role.is_practice_admin()
}

async fn display_name(state: &AppState, practice: PracticeId, user: UserId) -> String {
    match state.store.user(practice, user).await {
        Ok(Some(u)) => u.display_name,
        _ => "—".to_string(),
    }
}

async fn client_name(state: &AppState, practice: PracticeId, client: ClientId) -> String {
    match state.store.client(practice, client).await {
        Ok(Some(c)) => c.display_name,
        _ => "—".to_string(),
    }
}

// ------------------------------------------------------------------ views

#[derive(Serialize)]
pub struct SessionView {
    pub id: AppointmentId,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub minutes: u32,
    pub format: Format,
    pub status: AppointmentStatus,
}

impl From<&GroupSession> for SessionView {
    fn from(s: &GroupSession) -> Self {
        Self {
            id: s.id,
            starts_at: s.starts_at,
            ends_at: s.ends_at,
            minutes: s.appointment_type.minutes,
            format: s.appointment_type.format,
            status: s.status,
        }
    }
}

/// A programme as a member sees it: the others by first name only.
#[derive(Serialize)]
pub struct MemberGroupView {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub facilitators: Vec<String>,
    /// First names of the current members (the viewer included).
    pub members: Vec<String>,
    pub measures: Vec<String>,
    pub next_session: Option<SessionView>,
}

/// A programme in a list for staff.
#[derive(Serialize)]
pub struct GroupSummary {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub capacity: u32,
    pub members: usize,
    pub self_enrolment: bool,
    pub next_session: Option<SessionView>,
}

/// `GET /api/v1/me/groups`.
#[derive(Serialize)]
pub struct MyGroups {
    /// Client: the groups they belong to.
    pub member_of: Vec<MemberGroupView>,
    /// Client: groups open for self-enrolment with a free place.
    pub open_to_join: Vec<GroupSummary>,
    /// Staff: the groups they facilitate (practice admins: every group).
    pub facilitating: Vec<GroupSummary>,
}

async fn next_session(
    state: &AppState,
    g: &GroupProgramme,
    now: DateTime<Utc>,
) -> Result<Option<SessionView>, ApiError> {
    Ok(state
        .store
        .group_sessions(g.practice_id, g.id)
        .await?
        .iter()
        .find(|s| s.status == AppointmentStatus::Booked && s.ends_at > now)
        .map(SessionView::from))
}

async fn current_members(
    state: &AppState,
    g: &GroupProgramme,
) -> Result<Vec<Membership>, ApiError> {
    Ok(state
        .store
        .memberships(g.practice_id, g.id)
        .await?
        .into_iter()
        .filter(Membership::is_current)
        .collect())
}

async fn summary(
    state: &AppState,
    g: &GroupProgramme,
    now: DateTime<Utc>,
) -> Result<GroupSummary, ApiError> {
    Ok(GroupSummary {
        id: g.id,
        name: g.name.clone(),
        kind: g.kind,
        capacity: g.capacity,
        members: current_members(state, g).await?.len(),
        self_enrolment: g.self_enrolment,
        next_session: next_session(state, g, now).await?,
    })
}

async fn member_view(
    state: &AppState,
    g: &GroupProgramme,
    now: DateTime<Utc>,
) -> Result<MemberGroupView, ApiError> {
    let mut facilitators = Vec::new();
    for f in g.facilitators() {
        facilitators.push(display_name(state, g.practice_id, f).await);
    }
    let mut members = Vec::new();
    for m in current_members(state, g).await? {
        members.push(group::member_alias(
            &client_name(state, g.practice_id, m.client_id).await,
        ));
    }
    Ok(MemberGroupView {
        id: g.id,
        name: g.name.clone(),
        kind: g.kind,
        facilitators,
        members,
        measures: g.measures.clone(),
        next_session: next_session(state, g, now).await?,
    })
}

async fn my_groups_of(state: &AppState, a: &Authorized) -> Result<MyGroups, ApiError> {
    let practice = practice_of(a);
    let now = state.clock.now();
    let mut out = MyGroups {
        member_of: Vec::new(),
        open_to_join: Vec::new(),
        facilitating: Vec::new(),
    };
    if let Some(client) = a.caller.actor.client_id {
        let mine = state.store.groups_for_client(practice, client).await?;
        for g in state.store.groups_in_practice(practice).await? {
            if mine.iter().any(|m| m.id == g.id) {
                out.member_of.push(member_view(state, &g, now).await?);
            } else if g.self_enrolment {
                let s = summary(state, &g, now).await?;
                if u32::try_from(s.members).unwrap_or(u32::MAX) < g.capacity {
                    out.open_to_join.push(s);
                }
            }
        }
        return Ok(out);
    }
    for g in state.store.groups_in_practice(practice).await? {
        if runs(a, &g) {
            out.facilitating.push(summary(state, &g, now).await?);
        }
    }
    Ok(out)
}

/// `GET /api/v1/me/groups`: a client's groups (and those open to join); a
/// clinician's facilitated groups.
pub async fn my_groups(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<MyGroups>, ApiError> {
    Ok(Json(my_groups_of(&state, &a).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateGroupBody {
    pub name: String,
    pub kind: GroupKind,
    #[serde(default, deserialize_with = "optional_id")]
    pub co_facilitator: Option<Uuid>,
    #[serde(deserialize_with = "crate::sessions::flexible_u32")]
    pub capacity: u32,
    #[serde(default, deserialize_with = "flexible_bool")]
    pub self_enrolment: bool,
    #[serde(default, deserialize_with = "measure_list")]
    pub measures: Vec<String>,
}

#[derive(Serialize)]
pub struct Created {
    pub id: Uuid,
    /// Where the page goes next.
    pub next: String,
}

/// `POST /api/v1/groups`: a new programme facilitated by the caller (staff
/// who hold sessions); the co-facilitator must be such a colleague too.
pub async fn create_group(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<CreateGroupBody>,
) -> Result<Response, ApiError> {
    if !a.caller.actor.role.is_clinical() {
        return Err(ApiError::forbidden());
    }
    let practice = practice_of(&a);
    let co = body.co_facilitator.map(UserId::from_uuid);
    if let Some(co) = co {
        let colleague = state.store.user(practice, co).await?;
        if !colleague.is_some_and(|u| u.role.is_clinical()) {
            return Err(ApiError::unprocessable(
                "co_facilitator",
                "co_facilitator: not a clinician of this practice",
            ));
        }
    }
    let g = GroupProgramme::new(
        practice,
        a.caller.user.id,
        NewGroup {
            name: body.name,
            kind: body.kind,
            co_facilitator: co,
            capacity: body.capacity,
            self_enrolment: body.self_enrolment,
            measures: body.measures,
        },
        state.clock.now(),
    )
    .map_err(group_error)?;
    state.store.insert_group(&g).await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: g.id.as_uuid(),
            next: format!("/groups/{}", g.id),
        }),
    )
        .into_response())
}

#[derive(Serialize)]
pub struct RosterEntry {
    pub client_id: ClientId,
    pub name: String,
    pub joined_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct AttendanceView {
    pub client_id: ClientId,
    pub status: Attendance,
}

#[derive(Serialize)]
pub struct SessionDetail {
    #[serde(flatten)]
    pub session: SessionView,
    pub attendance: Vec<AttendanceView>,
}

/// `GET /api/v1/groups/{group}`: the facilitators' view.
#[derive(Serialize)]
pub struct GroupDetail {
    pub id: GroupId,
    pub name: String,
    pub kind: GroupKind,
    pub facilitator: UserId,
    pub co_facilitator: Option<UserId>,
    pub capacity: u32,
    pub self_enrolment: bool,
    pub measures: Vec<String>,
    pub roster: Vec<RosterEntry>,
    pub sessions: Vec<SessionDetail>,
}

async fn detail_of(state: &AppState, a: &Authorized, group: &str) -> Result<GroupDetail, ApiError> {
    let g = group_in_path(state, a, group).await?;
    if !runs(a, &g) {
        return Err(ApiError::forbidden());
    }
    let mut roster = Vec::new();
    for m in state.store.memberships(g.practice_id, g.id).await? {
        roster.push(RosterEntry {
            client_id: m.client_id,
            name: client_name(state, g.practice_id, m.client_id).await,
            joined_at: m.joined_at,
            left_at: m.left_at,
        });
    }
    let mut sessions = Vec::new();
    for s in state.store.group_sessions(g.practice_id, g.id).await? {
        let attendance = state
            .store
            .attendance(g.practice_id, s.id)
            .await?
            .into_iter()
            .map(|r| AttendanceView {
                client_id: r.client_id,
                status: r.status,
            })
            .collect();
        sessions.push(SessionDetail {
            session: SessionView::from(&s),
            attendance,
        });
    }
    Ok(GroupDetail {
        id: g.id,
        name: g.name,
        kind: g.kind,
        facilitator: g.facilitator,
        co_facilitator: g.co_facilitator,
        capacity: g.capacity,
        self_enrolment: g.self_enrolment,
        measures: g.measures,
        roster,
        sessions,
    })
}

/// `GET /api/v1/groups/{group}`.
pub async fn group_detail(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
) -> Result<Json<GroupDetail>, ApiError> {
    Ok(Json(detail_of(&state, &a, &group).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddMemberBody {
    pub client_id: Uuid,
}

async fn join(state: &AppState, g: &GroupProgramme, client: ClientId) -> Result<(), ApiError> {
    let memberships = state.store.memberships(g.practice_id, g.id).await?;
    let m = group::admit_member(g, &memberships, client, state.clock.now()).map_err(group_error)?;
    state.store.add_member(g.practice_id, &m).await?;
    Ok(())
}

fn done() -> Response {
    (StatusCode::OK, Json(serde_json::json!({"ok": true}))).into_response()
}

/// `POST /api/v1/groups/{group}/members`: the facilitator adds a client
/// of the practice (409 when full or already a member).
pub async fn add_member(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<AddMemberBody>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !runs(&a, &g) {
        return Err(ApiError::forbidden());
    }
    let client = ClientId::from_uuid(body.client_id);
    if state.store.client(g.practice_id, client).await?.is_none() {
        return Err(ApiError::unprocessable(
            "client_id",
            "client_id: no such client in this practice",
        ));
    }
    join(&state, &g, client).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({"ok": true}))).into_response())
}

/// `POST /api/v1/groups/{group}/members/{client}/remove`.
pub async fn remove_member(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, client)): Path<(String, String)>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !runs(&a, &g) {
        return Err(ApiError::forbidden());
    }
    let client = ClientId::from_uuid(parse_id(&client)?);
    state
        .store
        .remove_member(g.practice_id, g.id, client, state.clock.now())
        .await?;
    Ok(done())
}

/// `POST /api/v1/me/groups/{group}/join`: a client joins a programme open
/// for self-enrolment.
pub async fn join_self(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let Some(client) = a.caller.actor.client_id else {
        return Err(ApiError::forbidden());
    };
    let g = group_in_path(&state, &a, &group).await?;
    if !g.self_enrolment {
        return Err(ApiError::forbidden());
    }
    join(&state, &g, client).await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"ok": true, "next": "/groups"})),
    )
        .into_response())
}

/// `POST /api/v1/me/groups/{group}/leave`: a client leaves a programme.
pub async fn leave_self(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let Some(client) = a.caller.actor.client_id else {
        return Err(ApiError::forbidden());
    };
    let id = GroupId::from_uuid(parse_id(&group)?);
    state
        .store
        .remove_member(practice_of(&a), id, client, state.clock.now())
        .await?;
    Ok((
        StatusCode::OK,
        Json(serde_json::json!({"ok": true, "next": "/groups"})),
    )
        .into_response())
}

/// When a group session starts: an instant (`2026-06-01T17:00:00Z`), or a
/// wall time without offset (`2026-06-01T18:00`, what a page's
/// `datetime-local` field sends), read in the facilitator's zone.
#[derive(Debug, Clone, Copy)]
pub enum GroupStart {
    Instant(DateTime<Utc>),
    Wall(NaiveDateTime),
}

impl<'de> Deserialize<'de> for GroupStart {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let text = text.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self::Instant(t.with_timezone(&Utc)));
        }
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .map(Self::Wall)
            .ok_or_else(|| {
                serde::de::Error::custom(
                    "neither an instant such as 2026-06-01T17:00:00Z nor a local time such as 2026-06-01T18:00",
                )
            })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub starts_at: GroupStart,
    #[serde(deserialize_with = "crate::sessions::flexible_u32")]
    pub minutes: u32,
    pub format: Format,
    /// A weekly or fortnightly series, as for one-to-one appointments:
    /// `{"every":"weekly","until":{"count":8}}`.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// `POST /api/v1/groups/{group}/sessions`: a group appointment on the
/// facilitators' calendars (409 when either is busy then). With
/// `recurrence`, a series at the same wall-clock time in the facilitator's
/// zone: every occurrence is booked on its own (never over another
/// appointment or group session of either facilitator); the answer (201)
/// lists which were booked and which conflicted.
pub async fn schedule_session(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !runs(&a, &g) {
        return Err(ApiError::forbidden());
    }
    let now = state.clock.now();
    let zone =
        crate::sessions::booking::clinician_zone(&state, g.practice_id, g.facilitator).await?;
    let starts_at = match body.starts_at {
        GroupStart::Instant(t) => t,
        GroupStart::Wall(w) => {
            let tz = tapestry_domain::schedule::parse_time_zone(&zone)
                .map_err(crate::sessions::booking::schedule_error)?;
            tapestry_domain::schedule::resolve_local(tz, w, tapestry_domain::schedule::Edge::Start)
        }
    };
    let Some(rule) = body.recurrence else {
        let s = GroupSession::schedule(&g, starts_at, body.minutes, body.format, now)
            .map_err(group_error)?;
        state.store.book_group_session(&s).await?;
        return Ok((
            StatusCode::CREATED,
            Json(Created {
                id: s.id.as_uuid(),
                next: format!("/groups/{}", g.id),
            }),
        )
            .into_response());
    };
    let sessions = GroupSession::series(&g, starts_at, body.minutes, body.format, rule, &zone, now)
        .map_err(group_error)?;
    let mut report = Vec::with_capacity(sessions.len());
    for s in &sessions {
        report.push(match state.store.book_group_session(s).await {
            Ok(()) => serde_json::json!({"booked": s.id}),
            Err(tapestry_store::StoreError::Conflict(_)) => {
                serde_json::json!({"conflict": s.starts_at})
            }
            Err(e) => return Err(e.into()),
        });
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "series": sessions.first().and_then(|s| s.series_id),
            "occurrences": report,
            "next": format!("/groups/{}", g.id),
        })),
    )
        .into_response())
}

async fn session_of(
    state: &AppState,
    g: &GroupProgramme,
    session: &str,
) -> Result<GroupSession, ApiError> {
    let id = AppointmentId::from_uuid(parse_id(session)?);
    match state.store.group_session(g.practice_id, id).await? {
        Some(s) if s.group_id == g.id => Ok(s),
        _ => Err(ApiError::not_found()),
    }
}

/// `POST /api/v1/groups/{group}/sessions/{session}/cancel`.
pub async fn cancel_session(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, session)): Path<(String, String)>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !runs(&a, &g) {
        return Err(ApiError::forbidden());
    }
    let s = session_of(&state, &g, &session).await?;
    let now = state.clock.now();
    if now >= s.starts_at {
        return Err(ApiError::unprocessable(
            "starts_at",
            "starts_at: the session has already started",
        ));
    }
    state
        .store
        .cancel_group_session(g.practice_id, s.id, now)
        .await?;
    Ok(done())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceBody {
    pub client_id: Uuid,
    pub status: String,
}

/// `POST /api/v1/groups/{group}/sessions/{session}/attendance`: present,
/// absent or cancelled for one member (a later record corrects it).
pub async fn record_attendance(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, session)): Path<(String, String)>,
    ApiJson(body): ApiJson<AttendanceBody>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !runs(&a, &g) {
        return Err(ApiError::forbidden());
    }
    let s = session_of(&state, &g, &session).await?;
    let status = Attendance::parse(&body.status).map_err(group_error)?;
    let client = ClientId::from_uuid(body.client_id);
    let memberships = state.store.memberships(g.practice_id, g.id).await?;
    let now = state.clock.now();
    // The latest membership of the client that covers the session.
    let member = memberships
        .iter()
        .rev()
        .find(|m| m.client_id == client && m.covers(&s));
    group::check_attendance(&s, member, status, now).map_err(group_error)?;
    state
        .store
        .set_attendance(
            g.practice_id,
            &AttendanceRecord {
                session_id: s.id,
                client_id: client,
                status,
                recorded_by: a.caller.user.id,
                recorded_at: now,
            },
        )
        .await?;
    Ok(done())
}

#[derive(Serialize)]
pub struct NoteView {
    pub id: Uuid,
    pub session_id: Option<AppointmentId>,
    pub author: String,
    pub body: String,
    pub written_at: DateTime<Utc>,
}

#[derive(Serialize)]
pub struct ScoreView {
    pub instrument: String,
    pub total: Option<f64>,
    pub submitted_at: DateTime<Utc>,
}

/// `GET /api/v1/groups/{group}/members/{client}/notes`.
#[derive(Serialize)]
pub struct MemberRecord {
    pub group: String,
    pub client_id: ClientId,
    pub name: String,
    pub notes: Vec<NoteView>,
    /// The member's answers to the group's instruments (scores only).
    pub measures: Vec<ScoreView>,
    pub can_write: bool,
}

async fn member_record_of(
    state: &AppState,
    a: &Authorized,
    group: &str,
    client: &str,
) -> Result<MemberRecord, ApiError> {
    let g = group_in_path(state, a, group).await?;
    let client = ClientId::from_uuid(parse_id(client)?);
    let practice = g.practice_id;
    let mut notes = Vec::new();
    for n in state.store.group_notes(practice, g.id, client).await? {
        notes.push(NoteView {
            id: n.id,
            session_id: n.session_id,
            author: display_name(state, practice, n.author).await,
            body: n.body,
            written_at: n.written_at,
        });
    }
    let mut measures = Vec::new();
    for e in state.store.episodes_for_client(practice, client).await? {
        for s in state.store.submissions_for_episode(practice, e.id).await? {
            if g.measures.contains(&s.instrument) {
                measures.push(ScoreView {
                    instrument: s.instrument,
                    total: s.total,
                    submitted_at: s.submitted_at,
                });
            }
        }
    }
    measures.sort_by_key(|m| m.submitted_at);
    Ok(MemberRecord {
        group: g.name.clone(),
        client_id: client,
        name: client_name(state, practice, client).await,
        notes,
        measures,
        can_write: g.is_facilitator(a.caller.user.id),
    })
}

/// `GET /api/v1/groups/{group}/members/{client}/notes` (audited).
pub async fn member_record(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, client)): Path<(String, String)>,
) -> Result<Json<MemberRecord>, ApiError> {
    Ok(Json(member_record_of(&state, &a, &group, &client).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteBody {
    pub body: String,
    #[serde(default, deserialize_with = "optional_id")]
    pub session_id: Option<Uuid>,
}

/// `POST /api/v1/groups/{group}/members/{client}/notes`: a facilitator's
/// note about one member (sealed, audited).
pub async fn write_note(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, client)): Path<(String, String)>,
    ApiJson(body): ApiJson<NoteBody>,
) -> Result<Response, ApiError> {
    let g = group_in_path(&state, &a, &group).await?;
    if !g.is_facilitator(a.caller.user.id) {
        return Err(ApiError::forbidden());
    }
    let client = ClientId::from_uuid(parse_id(&client)?);
    let session = match body.session_id {
        Some(id) => Some(session_of(&state, &g, &id.to_string()).await?.id),
        None => None,
    };
    let note = GroupNote::new(
        &g,
        client,
        session,
        a.caller.user.id,
        &body.body,
        state.clock.now(),
    )
    .map_err(group_error)?;
    state.store.add_group_note(&note).await?;
    Ok((
        StatusCode::CREATED,
        Json(Created {
            id: note.id,
            next: format!("/groups/{}/members/{}", g.id, client),
        }),
    )
        .into_response())
}

// ------------------------------------------------------------------ pages

fn csrf_of(state: &AppState, a: &Authorized) -> String {
    a.caller
        .session()
        .map(|s| state.csrf.token_for(&s.token_hash))
        .unwrap_or_default()
}

pub struct SessionRow {
    pub id: String,
    pub when: String,
    pub summary: String,
    pub booked: bool,
    pub upcoming: bool,
    pub online: bool,
    /// (client id, name, recorded status or "").
    pub attendance: Vec<(String, String, String)>,
}

/// A member's next session: (session id, when, whether the room is open).
pub type NextSession = Option<(String, String, bool)>;

#[derive(askama::Template)]
#[template(path = "sessions_groups.html")]
pub struct GroupsPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub csrf: String,
    pub is_client: bool,
    pub mine: MyGroups,
    /// (group id, next session as (session id, when, room open)).
    pub member_sessions: Vec<(String, NextSession)>,
}

/// `GET /groups`: a client's groups (next session, join/leave); staff's
/// facilitated groups and the form for a new one.
pub async fn groups_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let mine = match my_groups_of(&state, &a).await {
        Ok(m) => m,
        Err(e) => return e.to_html(),
    };
    let zone = match crate::sessions::booking::practice_zone_name(&state, a.caller.user.practice_id)
        .await
    {
        Ok(z) => z,
        Err(e) => return e.to_html(),
    };
    let now = state.clock.now();
    let member_sessions = mine
        .member_of
        .iter()
        .map(|g| {
            let next = g.next_session.as_ref().map(|s| {
                (
                    s.id.to_string(),
                    crate::sessions::pages::local(s.starts_at, &zone),
                    s.format != Format::InPerson
                        && tapestry_domain::schedule::may_join(s.starts_at, s.ends_at, now),
                )
            });
            (g.id.to_string(), next)
        })
        .collect();
    crate::pages::render(&GroupsPage {
        nav: crate::portal::nav(&state, &a.caller).await,
        csrf: csrf_of(&state, &a),
        is_client: a.caller.actor.role == Role::Client,
        mine,
        member_sessions,
    })
}

#[derive(askama::Template)]
#[template(path = "sessions_group.html")]
pub struct GroupPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub csrf: String,
    pub group: GroupDetail,
    pub facilitator: bool,
    pub current: Vec<(String, String)>,
    /// (client id, name) of the caller's own clients who are not members:
    /// the choices for "Add a member".
    pub candidates: Vec<(String, String)>,
    /// The facilitator's zone: times are shown, and typed, in it.
    pub zone: String,
    pub sessions: Vec<SessionRow>,
}

/// `GET /groups/{group}`: the facilitators' page: roster, sessions,
/// attendance and links to each member's notes.
pub async fn group_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(group): Path<String>,
) -> Response {
    let detail = match detail_of(&state, &a, &group).await {
        Ok(d) => d,
        Err(e) => return e.to_html(),
    };
    let now = state.clock.now();
    let practice = a.caller.user.practice_id;
    let zone = match crate::sessions::booking::clinician_zone(&state, practice, detail.facilitator)
        .await
    {
        Ok(z) => z,
        Err(e) => return e.to_html(),
    };
    let current: Vec<(String, String)> = detail
        .roster
        .iter()
        .filter(|r| r.left_at.is_none())
        .map(|r| (r.client_id.to_string(), r.name.clone()))
        .collect();
    let sessions = detail
        .sessions
        .iter()
        .map(|s| SessionRow {
            id: s.session.id.to_string(),
            when: crate::sessions::pages::local(s.session.starts_at, &zone),
            summary: AppointmentType {
                kind: AppointmentKind::Group,
                minutes: s.session.minutes,
                format: s.session.format,
            }
            .summary(),
            booked: s.session.status == AppointmentStatus::Booked,
            upcoming: s.session.starts_at > now,
            online: s.session.format != Format::InPerson
                && tapestry_domain::schedule::may_join(s.session.starts_at, s.session.ends_at, now),
            attendance: current
                .iter()
                .map(|(id, name)| {
                    let status = s
                        .attendance
                        .iter()
                        .find(|x| x.client_id.to_string() == *id)
                        .map(|x| x.status.as_str().to_string())
                        .unwrap_or_default();
                    (id.clone(), name.clone(), status)
                })
                .collect(),
        })
        .collect();
    let facilitator =
        detail.facilitator == a.caller.user.id || detail.co_facilitator == Some(a.caller.user.id);
    let mut candidates = Vec::new();
    let care = state
        .store
        .care_for_clinician(practice, a.caller.user.id)
        .await
        .unwrap_or_default();
    for rel in care.into_iter().filter(|r| r.ended_at.is_none()) {
        let id = rel.client_id.to_string();
        if current.iter().any(|(c, _)| *c == id) || candidates.iter().any(|(c, _)| *c == id) {
            continue;
        }
        if let Ok(Some(c)) = state.store.client(practice, rel.client_id).await {
            candidates.push((id, c.display_name));
        }
    }
    candidates.sort_by(|x, y| x.1.cmp(&y.1));
    crate::pages::render(&GroupPage {
        nav: crate::portal::nav(&state, &a.caller).await,
        csrf: csrf_of(&state, &a),
        group: detail,
        facilitator,
        candidates,
        zone,
        current,
        sessions,
    })
}

#[derive(askama::Template)]
#[template(path = "sessions_group_member.html")]
pub struct MemberPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub csrf: String,
    pub group_id: String,
    pub record: MemberRecord,
}

/// `GET /groups/{group}/members/{client}`: one member's group notes and
/// group-measure scores (audited), with the note form for facilitators.
pub async fn member_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((group, client)): Path<(String, String)>,
) -> Response {
    match member_record_of(&state, &a, &group, &client).await {
        Ok(record) => crate::pages::render(&MemberPage {
            nav: crate::portal::nav(&state, &a.caller).await,
            csrf: csrf_of(&state, &a),
            group_id: group,
            record,
        }),
        Err(e) => e.to_html(),
    }
}
