//! Booking over HTTP: a clinician's availability, appointment types and
//! booking rules; client self-booking within those rules (slots in the
//! client's zone); recurring series; cancel and reschedule under the
//! practice's policy; attendance (no-shows); the client's `.ics` file and
//! the clinician's secret calendar feed. The database refuses double
//! bookings (`ScheduleStore::book_appointment`): two clients racing for one
//! slot get one 201 and one 409.

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::identity::token::SecretToken;
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::practice::TimeZoneName;
use tapestry_domain::schedule::{
    self, ical, Appointment, AppointmentId, AppointmentKind, AppointmentStatus, AppointmentType,
    Availability, BookingRules, CancellationPolicy, Format, Interval, Party, Recurrence,
    ScheduleError, SeriesId, SlotQuery,
};
use tapestry_domain::user::Role;
use tapestry_store::schedule::{ClinicianSchedule, OccurrenceOutcome, Series};

/// Scheduling errors as the API envelope: a refusal is 409 with its
/// reason, a bad field 422 naming it.
pub(crate) fn schedule_error(e: ScheduleError) -> ApiError {
    match &e {
        ScheduleError::Refused(r) => ApiError::new(
            StatusCode::CONFLICT,
            "booking_refused",
            format!("The slot {r}."),
        ),
        ScheduleError::UnknownTimeZone(_) => ApiError::unprocessable("time_zone", e.to_string()),
        ScheduleError::Invalid { field, .. } => ApiError::unprocessable(*field, e.to_string()),
    }
}

fn is_client(a: &Authorized) -> bool {
    a.caller.actor.role == Role::Client
}

/// Staff who hold sessions (the calendar is theirs).
fn holds_sessions(role: Role) -> bool {
    matches!(
        role,
        Role::Clinician | Role::Supervisor | Role::PracticeOwner
    )
}

fn client_of(a: &Authorized) -> Result<ClientId, ApiError> {
    a.client_id.ok_or_else(ApiError::not_found)
}

/// The appointment named in the path, if it is this client's (in this
/// practice); anything else is the same 404.
pub(crate) async fn appointment_of(
    state: &AppState,
    a: &Authorized,
    appointment: &str,
) -> Result<Appointment, ApiError> {
    let client = client_of(a)?;
    let id = uuid::Uuid::parse_str(appointment)
        .map(AppointmentId::from_uuid)
        .map_err(|_| ApiError::not_found())?;
    let appt = state
        .store
        .appointment(a.caller.user.practice_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if appt.client_id != client {
        return Err(ApiError::not_found());
    }
    Ok(appt)
}

/// A clinician may act on appointments they hold; practice admins on any.
fn staff_may_act(a: &Authorized, appt: &Appointment) -> bool {
    a.caller.actor.role.is_practice_admin() || appt.clinician == a.caller.user.id
}

#[derive(Serialize)]
pub struct ScheduleView {
    pub availability: Option<Availability>,
    pub rules: BookingRules,
    pub policy: CancellationPolicy,
    pub appointment_types: Vec<AppointmentType>,
}

/// `GET /api/v1/me/schedule`: the caller's availability, rules and policy,
/// and the practice's appointment types.
pub async fn my_schedule(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<ScheduleView>, ApiError> {
    if !holds_sessions(a.caller.actor.role) {
        return Err(ApiError::forbidden());
    }
    let practice = a.caller.user.practice_id;
    let own = state
        .store
        .clinician_schedule(practice, a.caller.user.id)
        .await?;
    Ok(Json(ScheduleView {
        availability: own.as_ref().map(|s| s.availability.clone()),
        rules: own.as_ref().map(|s| s.rules).unwrap_or_default(),
        policy: own.as_ref().map(|s| s.policy).unwrap_or_default(),
        appointment_types: state.store.appointment_types(practice).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub availability: Availability,
    #[serde(default)]
    pub rules: Option<BookingRules>,
    #[serde(default)]
    pub policy: Option<CancellationPolicy>,
}

/// `POST /api/v1/me/schedule`: sets the caller's weekly hours, exceptions,
/// zone, booking rules and cancellation policy.
pub async fn put_my_schedule(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    if !holds_sessions(a.caller.actor.role) {
        return Err(ApiError::forbidden());
    }
    body.availability.validate().map_err(schedule_error)?;
    let rules = body.rules.unwrap_or_default();
    rules.validate().map_err(schedule_error)?;
    let schedule = ClinicianSchedule {
        practice_id: a.caller.user.practice_id,
        clinician: a.caller.user.id,
        availability: body.availability,
        rules,
        policy: body.policy.unwrap_or_default(),
        updated_at: state.clock.now(),
    };
    state.store.put_clinician_schedule(&schedule).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeBody {
    pub kind: AppointmentKind,
    pub minutes: u32,
    pub format: Format,
}

/// `POST /api/v1/me/appointment-types`: adds a type the practice offers.
pub async fn add_appointment_type(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<TypeBody>,
) -> Result<Response, ApiError> {
    if !holds_sessions(a.caller.actor.role) {
        return Err(ApiError::forbidden());
    }
    let t = AppointmentType::new(body.kind, body.minutes, body.format).map_err(schedule_error)?;
    state
        .store
        .add_appointment_type(a.caller.user.practice_id, t)
        .await?;
    Ok((StatusCode::CREATED, Json(t)).into_response())
}

#[derive(Serialize)]
pub struct FeedUrl {
    /// The secret path; shown once.
    pub url: String,
}

/// `POST /api/v1/me/calendar-feed`: a new secret feed URL (the old one
/// stops working).
pub async fn new_feed_url(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    if !holds_sessions(a.caller.actor.role) {
        return Err(ApiError::forbidden());
    }
    let token = SecretToken::generate();
    state
        .store
        .replace_feed_token(
            a.caller.user.practice_id,
            a.caller.user.id,
            &token.hash().to_hex(),
            state.clock.now(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(FeedUrl {
            url: format!("/calendar/{}.ics", token.expose()),
        }),
    )
        .into_response())
}

/// `POST /api/v1/me/calendar-feed/revoke`: turns the feed off.
pub async fn revoke_feed(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    if !holds_sessions(a.caller.actor.role) {
        return Err(ApiError::forbidden());
    }
    let n = state
        .store
        .revoke_feed_tokens(
            a.caller.user.practice_id,
            a.caller.user.id,
            state.clock.now(),
        )
        .await?;
    Ok(Json(serde_json::json!({ "revoked": n })).into_response())
}

fn calendar(body: String, download: Option<&str>) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/calendar; charset=utf-8"),
    );
    if let Some(name) = download {
        if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
            r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
    }
    r
}

/// `GET /calendar/{token}.ics`: the clinician's feed (public; the token is
/// the secret): their appointments and the group sessions they facilitate.
/// Summaries only ("Session · 50 min · video", "Group session · 90 min ·
/// video"), never a client's or a group's name.
/// A malformed, unknown or revoked token is a plain 404.
pub async fn calendar_feed(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let raw = token.strip_suffix(".ics").unwrap_or(&token);
    let Ok(secret) = SecretToken::parse(raw) else {
        return ApiError::not_found().into_response();
    };
    let owner = match state.store.feed_owner(&secret.hash().to_hex()).await {
        Ok(Some(o)) => o,
        Ok(None) => return ApiError::not_found().into_response(),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let now = state.clock.now();
    let (from, to) = (now - Duration::days(60), now + Duration::days(400));
    let feed = async {
        let appointments = state
            .store
            .appointments_for_clinician(owner.0, owner.1, from, to)
            .await?;
        let groups = state
            .store
            .group_sessions_for_clinician(owner.0, owner.1, from, to)
            .await?;
        Ok::<_, tapestry_store::StoreError>(ical::clinician_feed(&appointments, &groups, now))
    };
    match feed.await {
        Ok(text) => calendar(text, None),
        Err(e) => ApiError::from(e).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlotParams {
    pub clinician: UserId,
    pub kind: AppointmentKind,
    pub minutes: u32,
    pub format: Format,
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// An explicit IANA zone for the slots' wall-clock times; without it,
    /// the client's stored zone (else the practice's).
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// The practice's zone name ("UTC" if the practice is gone).
pub(crate) async fn practice_zone_name(
    state: &AppState,
    practice: PracticeId,
) -> Result<String, ApiError> {
    Ok(match state.store.practice(practice).await? {
        Some(p) => p.time_zone.as_str().to_string(),
        None => "UTC".to_string(),
    })
}

/// The zone a clinician's times are read and shown in: that of their
/// working hours, else the practice's.
pub(crate) async fn clinician_zone(
    state: &AppState,
    practice: PracticeId,
    clinician: UserId,
) -> Result<String, ApiError> {
    match state.store.clinician_schedule(practice, clinician).await? {
        Some(s) => Ok(s.availability.time_zone),
        None => practice_zone_name(state, practice).await,
    }
}

/// The zone a client's times are shown in: the client's own (set at intake
/// or in their settings), else the practice's, else UTC.
pub(crate) async fn client_zone(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
) -> Result<TimeZoneName, ApiError> {
    let fallback = match state.store.practice(practice).await? {
        Some(p) => p.time_zone,
        None => TimeZoneName::parse("UTC")
            .map_err(|e| ApiError::unprocessable("time_zone", e.to_string()))?,
    };
    Ok(match state.store.client(practice, client).await? {
        Some(c) => c.zone_or(&fallback).clone(),
        None => fallback,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeZoneBody {
    pub time_zone: String,
}

/// `POST /api/v1/clients/{id}/time-zone`: `{time_zone}` sets the client's
/// own IANA zone (the client in their settings, or their care team). An
/// unknown name is 422 naming `time_zone`; an empty one clears it.
pub async fn set_time_zone(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<TimeZoneBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let client = client_of(&a)?;
    let zone = match body.time_zone.trim() {
        "" => None,
        z => Some(
            TimeZoneName::parse(z)
                .map_err(|e| ApiError::unprocessable("time_zone", e.to_string()))?,
        ),
    };
    state
        .store
        .set_client_time_zone(a.caller.user.practice_id, client, zone.as_ref())
        .await?;
    Ok(Json(
        serde_json::json!({"time_zone": zone.as_ref().map(|z| z.as_str())}),
    ))
}

async fn busy_of(
    state: &AppState,
    a: &Authorized,
    clinician: UserId,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    ignore: Option<AppointmentId>,
) -> Result<Vec<Interval>, ApiError> {
    let practice = a.caller.user.practice_id;
    let mut busy: Vec<Interval> = state
        .store
        .appointments_for_clinician(practice, clinician, from, to)
        .await?
        .into_iter()
        .filter(|x| x.holds_slot() && Some(x.id) != ignore)
        .map(|x| x.interval())
        .collect();
    // Group sessions the clinician facilitates hold their time too.
    busy.extend(
        state
            .store
            .group_sessions_for_clinician(practice, clinician, from, to)
            .await?
            .into_iter()
            .filter(|g| g.status == AppointmentStatus::Booked)
            .map(|g| g.interval()),
    );
    Ok(busy)
}

async fn clinician_schedule(
    state: &AppState,
    a: &Authorized,
    clinician: UserId,
) -> Result<ClinicianSchedule, ApiError> {
    state
        .store
        .clinician_schedule(a.caller.user.practice_id, clinician)
        .await?
        .ok_or_else(|| ApiError::unprocessable("clinician", "has no availability set"))
}

/// `GET /api/v1/clients/{id}/slots?clinician=…&kind=…&minutes=…&format=…&from=…&to=…&time_zone=…`:
/// bookable slots, wall-clock times in the client's zone.
pub async fn slots(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    q: Result<Query<SlotParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<schedule::Slot>>, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::unprocessable("query", e.body_text()))?;
    Ok(Json(slots_for(&state, &a, &q).await?))
}

/// The bookable slots `q` asks for (shared by the JSON route and the
/// booking page).
pub(crate) async fn slots_for(
    state: &AppState,
    a: &Authorized,
    q: &SlotParams,
) -> Result<Vec<schedule::Slot>, ApiError> {
    let sched = clinician_schedule(state, a, q.clinician).await?;
    let t = AppointmentType::new(q.kind, q.minutes, q.format).map_err(schedule_error)?;
    let now = state.clock.now();
    let from = q.from.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() - Duration::days(1);
    let to = q.to.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc() + Duration::days(2);
    let busy = busy_of(state, a, q.clinician, from, to, None).await?;
    let zone = match &q.time_zone {
        Some(z) => z.clone(),
        None => client_zone(state, a.caller.user.practice_id, client_of(a)?)
            .await?
            .as_str()
            .to_string(),
    };
    schedule::available_slots(&SlotQuery {
        availability: &sched.availability,
        rules: &sched.rules,
        appointment_type: t,
        busy: &busy,
        now,
        client_time_zone: &zone,
        from: q.from,
        to: q.to,
    })
    .map_err(schedule_error)
}

/// An appointment as its participants see it (with the phone dial-in
/// instructions for phone sessions).
#[derive(Serialize)]
pub struct AppointmentView {
    #[serde(flatten)]
    pub appointment: Appointment,
    pub summary: String,
    pub dial_in: Option<String>,
}

fn view(state: &AppState, appointment: Appointment) -> AppointmentView {
    let dial_in = (appointment.appointment_type.format == Format::Phone)
        .then(|| state.online.config.phone_instructions.clone())
        .filter(|s| !s.trim().is_empty());
    AppointmentView {
        summary: appointment.appointment_type.summary(),
        appointment,
        dial_in,
    }
}

/// `GET /api/v1/clients/{id}/appointments`: the client's appointments.
pub async fn appointments(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<AppointmentView>>, ApiError> {
    let client = client_of(&a)?;
    let list = state
        .store
        .appointments_for_client(a.caller.user.practice_id, client)
        .await?;
    Ok(Json(list.into_iter().map(|x| view(&state, x)).collect()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    pub clinician: UserId,
    pub kind: AppointmentKind,
    #[serde(deserialize_with = "crate::sessions::flexible_u32")]
    pub minutes: u32,
    pub format: Format,
    pub starts_at: DateTime<Utc>,
    /// Staff only: weekly or fortnightly series.
    #[serde(default)]
    pub recurrence: Option<Recurrence>,
}

/// `POST /api/v1/clients/{id}/appointments`: a client books within the
/// clinician's rules; a clinician books their own calendar (rules are the
/// client's limits, not theirs). The database refuses overlaps (409).
pub async fn book(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BookBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let t = AppointmentType::new(body.kind, body.minutes, body.format).map_err(schedule_error)?;
    let offered = state.store.appointment_types(practice).await?;
    if !offered.contains(&t) {
        return Err(ApiError::unprocessable(
            "kind",
            "is not an appointment type this practice offers",
        ));
    }
    let clinician = state
        .store
        .user(practice, body.clinician)
        .await?
        .filter(|u| holds_sessions(u.role))
        .ok_or_else(|| ApiError::unprocessable("clinician", "is not a clinician here"))?;
    let appt = Appointment::book(practice, clinician.id, client, t, body.starts_at, now)
        .map_err(schedule_error)?;
    if is_client(&a) {
        if body.recurrence.is_some() {
            return Err(ApiError::unprocessable(
                "recurrence",
                "recurring appointments are arranged by the clinician",
            ));
        }
        let sched = clinician_schedule(&state, &a, clinician.id).await?;
        let busy = busy_of(
            &state,
            &a,
            clinician.id,
            appt.starts_at - Duration::days(1),
            appt.ends_at + Duration::days(1),
            None,
        )
        .await?;
        schedule::check_self_booking(
            &sched.availability,
            &sched.rules,
            appt.interval(),
            &busy,
            now,
        )
        .map_err(schedule_error)?;
    } else if !(a.caller.actor.role.is_practice_admin() || clinician.id == a.caller.user.id) {
        return Err(ApiError::forbidden());
    }
    if let Some(rule) = body.recurrence {
        return book_series(&state, &a, appt, rule).await;
    }
    state.store.book_appointment(&appt).await?;
    Ok((StatusCode::CREATED, Json(view(&state, appt))).into_response())
}

async fn book_series(
    state: &AppState,
    a: &Authorized,
    first: Appointment,
    rule: Recurrence,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let zone = clinician_zone(state, first.practice_id, first.clinician).await?;
    let tz = schedule::parse_time_zone(&zone).map_err(schedule_error)?;
    let wall = first.starts_at.with_timezone(&tz).naive_local();
    let intervals = schedule::occurrences(wall, &zone, first.appointment_type.minutes, rule)
        .map_err(schedule_error)?;
    let series = Series {
        id: SeriesId::random(),
        practice_id: first.practice_id,
        clinician: first.clinician,
        client_id: first.client_id,
        recurrence: rule,
        created_at: now,
    };
    let mut occurrences = Vec::with_capacity(intervals.len());
    for i in &intervals {
        let mut o = Appointment::book(
            first.practice_id,
            first.clinician,
            first.client_id,
            first.appointment_type,
            i.start,
            now,
        )
        .map_err(schedule_error)?;
        o.series_id = Some(series.id);
        occurrences.push(o);
    }
    let outcomes = state.store.book_series(&series, &occurrences).await?;
    let _ = a;
    let report: Vec<serde_json::Value> = outcomes
        .into_iter()
        .map(|o| match o {
            OccurrenceOutcome::Booked(id) => serde_json::json!({"booked": id}),
            OccurrenceOutcome::Conflict(at) => serde_json::json!({"conflict": at}),
        })
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"series": series.id, "occurrences": report})),
    )
        .into_response())
}

fn party(a: &Authorized) -> Party {
    if is_client(a) {
        Party::Client
    } else {
        Party::Clinician
    }
}

async fn policy_of(state: &AppState, appt: &Appointment) -> Result<CancellationPolicy, ApiError> {
    Ok(state
        .store
        .clinician_schedule(appt.practice_id, appt.clinician)
        .await?
        .map(|s| s.policy)
        .unwrap_or_default())
}

/// `POST …/appointments/{appointment}/cancel`: late cancellations (client,
/// inside the policy window) are recorded, never charged by Tapestry.
pub async fn cancel(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Response, ApiError> {
    let appt = appointment_of(&state, &a, &appointment).await?;
    if !is_client(&a) && !staff_may_act(&a, &appt) {
        return Err(ApiError::forbidden());
    }
    let now = state.clock.now();
    let policy = policy_of(&state, &appt).await?;
    let decision = schedule::cancel(&appt, &policy, party(&a), now).map_err(schedule_error)?;
    state
        .store
        .set_appointment_status(
            appt.practice_id,
            appt.id,
            AppointmentStatus::Booked,
            AppointmentStatus::Cancelled,
            decision.late,
            now,
        )
        .await?;
    Ok(
        Json(serde_json::json!({"status": "cancelled", "late_cancel": decision.late}))
            .into_response(),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RescheduleBody {
    pub starts_at: DateTime<Utc>,
}

/// `POST …/appointments/{appointment}/reschedule`: cancels and books in one
/// transaction; a client's new time must be within the rules.
pub async fn reschedule(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
    ApiJson(body): ApiJson<RescheduleBody>,
) -> Result<Response, ApiError> {
    let old = appointment_of(&state, &a, &appointment).await?;
    if !is_client(&a) && !staff_may_act(&a, &old) {
        return Err(ApiError::forbidden());
    }
    let now = state.clock.now();
    let policy = policy_of(&state, &old).await?;
    let decision = schedule::cancel(&old, &policy, party(&a), now).map_err(schedule_error)?;
    let new = Appointment::book(
        old.practice_id,
        old.clinician,
        old.client_id,
        old.appointment_type,
        body.starts_at,
        now,
    )
    .map_err(schedule_error)?;
    if is_client(&a) {
        let sched = clinician_schedule(&state, &a, old.clinician).await?;
        let busy = busy_of(
            &state,
            &a,
            old.clinician,
            new.starts_at - Duration::days(1),
            new.ends_at + Duration::days(1),
            Some(old.id),
        )
        .await?;
        schedule::check_self_booking(
            &sched.availability,
            &sched.rules,
            new.interval(),
            &busy,
            now,
        )
        .map_err(schedule_error)?;
    }
    state
        .store
        .reschedule(old.practice_id, old.id, decision.late, &new)
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, new))).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttendanceBody {
    pub attended: bool,
}

/// `POST …/appointments/{appointment}/attendance`: the clinician records
/// attended or no-show once the appointment has started.
pub async fn attendance(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
    ApiJson(body): ApiJson<AttendanceBody>,
) -> Result<Response, ApiError> {
    let appt = appointment_of(&state, &a, &appointment).await?;
    if is_client(&a) || !staff_may_act(&a, &appt) {
        return Err(ApiError::forbidden());
    }
    let now = state.clock.now();
    let status = schedule::record_attendance(&appt, body.attended, now).map_err(schedule_error)?;
    state
        .store
        .set_appointment_status(
            appt.practice_id,
            appt.id,
            AppointmentStatus::Booked,
            status,
            false,
            now,
        )
        .await?;
    Ok(Json(serde_json::json!({"status": status.as_str()})).into_response())
}

/// `GET …/appointments/{appointment}/ics`: one appointment as an iCalendar
/// file (neutral summary; the joining note or the phone instructions).
pub async fn appointment_ics(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, appointment)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let appt = appointment_of(&state, &a, &appointment).await?;
    let zone = client_zone(&state, appt.practice_id, appt.client_id).await?;
    let note = match appt.appointment_type.format {
        Format::Phone if !state.online.config.phone_instructions.trim().is_empty() => {
            state.online.config.phone_instructions.clone()
        }
        Format::InPerson => "See your appointment details in Tapestry.".to_string(),
        _ => "Sign in to Tapestry to join.".to_string(),
    };
    Ok(calendar(
        ical::appointment_ics(&appt, state.clock.now(), &note, zone.tz()),
        Some("appointment.ics"),
    ))
}
