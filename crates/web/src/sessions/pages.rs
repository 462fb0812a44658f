//! Pages for booking and secure messages over the existing JSON API: the
//! client's appointments and self-booking (slots in the client's time
//! zone; book, cancel, reschedule), the clinician's schedule, and the
//! message thread list, thread view and compose form (with an attachment).
//! Forms are plain `<form method="post">` whose field names are the JSON
//! API's, marked `data-json`.

use crate::error::ApiError;
use crate::routes::Authorized;
use crate::sessions::booking::{self, SlotParams};
use crate::AppState;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::Extension;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Deserialize;
use tapestry_domain::access::{authorize, Action, Resource};
use tapestry_domain::ids::{ClientId, UserId};
use tapestry_domain::schedule::{
    self, Appointment, AppointmentKind, AppointmentStatus, AppointmentType, Format,
};
use tapestry_domain::user::Role;

/// A UTC instant as wall-clock time in `zone` ("Wed 4 Mar 2026, 10:00 GMT").
pub(crate) fn local(t: DateTime<Utc>, zone: &str) -> String {
    match schedule::parse_time_zone(zone) {
        Ok(tz) => t
            .with_timezone(&tz)
            .format("%a %-d %b %Y, %H:%M %Z")
            .to_string(),
        Err(_) => t.format("%a %-d %b %Y, %H:%M UTC").to_string(),
    }
}

fn csrf_of(state: &AppState, a: &Authorized) -> String {
    a.caller
        .session()
        .map(|s| state.csrf.token_for(&s.token_hash))
        .unwrap_or_default()
}

async fn name_of(state: &AppState, a: &Authorized, user: UserId) -> String {
    match state.store.user(a.caller.user.practice_id, user).await {
        Ok(Some(u)) => u.display_name,
        _ => "—".to_string(),
    }
}

pub struct AppointmentRow {
    pub id: String,
    pub when: String,
    pub summary: String,
    pub with: String,
    pub status: &'static str,
    pub upcoming: bool,
    pub online: bool,
    pub client_id: String,
    /// The clinician and `kind:minutes:format` of the appointment, so that
    /// "Choose a new time" lists that clinician's free times of that kind.
    pub clinician_id: String,
    pub type_value: String,
}

impl AppointmentRow {
    /// The row of one appointment, its time in `zone`, with `with` (the
    /// other party's name) beside it.
    fn of(x: &Appointment, zone: &str, with: String, now: DateTime<Utc>) -> Self {
        let booked = x.status == AppointmentStatus::Booked;
        Self {
            id: x.id.to_string(),
            when: local(x.starts_at, zone),
            summary: x.appointment_type.summary(),
            with,
            status: x.status.as_str(),
            upcoming: booked && x.starts_at > now,
            online: booked
                && x.appointment_type.format != Format::InPerson
                && schedule::may_join(x.starts_at, x.ends_at, now),
            client_id: x.client_id.to_string(),
            clinician_id: x.clinician.to_string(),
            type_value: type_value(&x.appointment_type),
        }
    }
}

/// One bookable slot: its hidden form values and its label.
pub struct SlotRow {
    pub starts_at: String,
    pub label: String,
}

#[derive(Deserialize, Default)]
pub struct BookingQuery {
    pub clinician: Option<UserId>,
    /// `kind:minutes:format`, e.g. `session:50:video`.
    pub appointment_type: Option<String>,
    pub from: Option<NaiveDate>,
    pub time_zone: Option<String>,
    /// An upcoming appointment being moved: the free times then post to
    /// its reschedule route instead of booking a new one.
    pub reschedule: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "sessions_booking.html")]
pub struct BookingPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub client_id: String,
    pub csrf: String,
    pub is_client: bool,
    pub time_zone: String,
    /// The client's stored zone ("" when none is set).
    pub own_zone: String,
    pub appointments: Vec<AppointmentRow>,
    /// (user id, name) of the client's clinicians.
    pub clinicians: Vec<(String, String)>,
    /// (value, label) of the practice's appointment types.
    pub types: Vec<(String, String)>,
    pub chosen_clinician: String,
    pub chosen_type: String,
    pub from: String,
    /// Slots for the chosen clinician and type, or why there are none.
    pub slots: Vec<SlotRow>,
    pub slot_note: Option<String>,
    pub clinician_id: String,
    pub kind: String,
    pub minutes: u32,
    pub format: String,
    /// (appointment id, when) of the appointment being moved, if any.
    pub rescheduling: Option<(String, String)>,
}

fn parse_type(v: &str) -> Option<AppointmentType> {
    let mut parts = v.split(':');
    let kind = AppointmentKind::parse(parts.next()?).ok()?;
    let minutes = parts.next()?.parse().ok()?;
    let format = Format::parse(parts.next()?).ok()?;
    AppointmentType::new(kind, minutes, format).ok()
}

fn type_value(t: &AppointmentType) -> String {
    format!("{}:{}:{}", t.kind.as_str(), t.minutes, t.format.as_str())
}

async fn booking_page_of(
    state: &AppState,
    a: &Authorized,
    q: BookingQuery,
) -> Result<BookingPage, ApiError> {
    let client = a.client_id.ok_or_else(ApiError::not_found)?;
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    // The client's stored zone; `?time_zone=` only as an explicit override.
    let own_zone = state
        .store
        .client(practice, client)
        .await?
        .and_then(|c| c.time_zone)
        .map(|z| z.as_str().to_string())
        .unwrap_or_default();
    let zone = match q
        .time_zone
        .as_deref()
        .filter(|z| schedule::parse_time_zone(z).is_ok())
    {
        Some(z) => z.to_string(),
        None => booking::client_zone(state, practice, client)
            .await?
            .as_str()
            .to_string(),
    };
    let mut appointments = Vec::new();
    for x in state
        .store
        .appointments_for_client(practice, client)
        .await?
    {
        let with = name_of(state, a, x.clinician).await;
        appointments.push(AppointmentRow::of(&x, &zone, with, now));
    }
    let mut clinicians = Vec::new();
    let mut care = state.store.care_for_client(practice, client).await?;
    // Treating clinicians first (they hold the sessions), then by id.
    care.sort_by_key(|r| {
        (
            r.role != tapestry_domain::care::CareRole::Treating,
            r.clinician,
        )
    });
    for rel in care {
        if rel.ended_at.is_none()
            && !clinicians
                .iter()
                .any(|(id, _)| *id == rel.clinician.to_string())
        {
            clinicians.push((
                rel.clinician.to_string(),
                name_of(state, a, rel.clinician).await,
            ));
        }
    }
    let types: Vec<(String, String)> = state
        .store
        .appointment_types(practice)
        .await?
        .iter()
        .filter(|t| t.kind != AppointmentKind::Group)
        .map(|t| (type_value(t), t.summary()))
        .collect();
    let rescheduling = q.reschedule.as_deref().and_then(|id| {
        appointments
            .iter()
            .find(|x| x.upcoming && x.id == id)
            .map(|x| {
                (
                    x.id.clone(),
                    x.when.clone(),
                    x.clinician_id.clone(),
                    x.type_value.clone(),
                )
            })
    });
    let from = q.from.unwrap_or_else(|| now.date_naive());
    let chosen_clinician = q
        .clinician
        .map(|c| c.to_string())
        .or_else(|| rescheduling.as_ref().map(|r| r.2.clone()))
        .or_else(|| clinicians.first().map(|(id, _)| id.clone()))
        .unwrap_or_default();
    let chosen_type = q
        .appointment_type
        .clone()
        .or_else(|| rescheduling.as_ref().map(|r| r.3.clone()))
        .or_else(|| types.first().map(|(v, _)| v.clone()))
        .unwrap_or_default();
    let mut page = BookingPage {
        nav: crate::portal::nav(state, &a.caller).await,
        client_id: client.to_string(),
        csrf: csrf_of(state, a),
        is_client: a.caller.actor.role == Role::Client,
        time_zone: zone.clone(),
        own_zone,
        appointments,
        clinicians,
        types,
        chosen_clinician: chosen_clinician.clone(),
        chosen_type: chosen_type.clone(),
        from: from.to_string(),
        slots: Vec::new(),
        slot_note: None,
        clinician_id: chosen_clinician.clone(),
        kind: String::new(),
        minutes: 0,
        format: String::new(),
        rescheduling: rescheduling.map(|(id, when, _, _)| (id, when)),
    };
    let (Ok(clinician), Some(t)) = (
        chosen_clinician.parse::<uuid::Uuid>(),
        parse_type(&chosen_type),
    ) else {
        page.slot_note = Some("Choose a clinician and a kind of appointment.".into());
        return Ok(page);
    };
    let clinician = UserId::from_uuid(clinician);
    page.kind = t.kind.as_str().to_string();
    page.minutes = t.minutes;
    page.format = t.format.as_str().to_string();
    let to = from + Duration::days(13);
    match booking::slots_for(
        state,
        a,
        &SlotParams {
            clinician,
            kind: t.kind,
            minutes: t.minutes,
            format: t.format,
            from,
            to,
            time_zone: Some(zone.clone()),
        },
    )
    .await
    {
        Ok(list) => {
            page.slots = list
                .into_iter()
                .map(|s| SlotRow {
                    starts_at: s
                        .starts_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    label: s.client_local_start.format("%a %-d %b, %H:%M").to_string(),
                })
                .collect();
            if page.slots.is_empty() {
                page.slot_note = Some("No free times in these two weeks.".into());
            }
        }
        Err(e) => page.slot_note = Some(e.message),
    }
    Ok(page)
}

/// `GET /clients/{id}/booking` (and `/me/appointments` for the client):
/// appointments in the client's zone with cancel and reschedule, and the
/// free times of the client's clinicians for two weeks from `from`.
pub async fn booking_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    q: Result<Query<BookingQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    crate::pages::page(booking_page_of(&state, &a, q).await)
}

#[derive(askama::Template)]
#[template(path = "sessions_schedule.html")]
pub struct SchedulePage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub time_zone: String,
    /// Appointments and group sessions of the next two weeks, by start.
    pub rows: Vec<AppointmentRow>,
    /// (group id, session id, when, summary) of group sessions.
    pub groups: Vec<(String, String, String, String)>,
}

/// `GET /schedule`: the clinician's next two weeks (one-to-one
/// appointments with links to the room, group sessions), in their zone.
pub async fn schedule_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    q: Result<Query<BookingQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let q = q.map(|Query(q)| q).unwrap_or_default();
    crate::pages::page(schedule_page_of(&state, &a, q).await)
}

async fn schedule_page_of(
    state: &AppState,
    a: &Authorized,
    q: BookingQuery,
) -> Result<SchedulePage, ApiError> {
    if !a.caller.actor.role.is_clinical() {
        return Err(ApiError::forbidden());
    }
    let practice = a.caller.user.practice_id;
    let me = a.caller.user.id;
    let now = state.clock.now();
    let until = now + Duration::days(14);
    let zone = match q.time_zone {
        Some(z) if schedule::parse_time_zone(&z).is_ok() => z,
        _ => booking::clinician_zone(state, practice, me).await?,
    };
    let mut rows = Vec::new();
    for x in state
        .store
        .appointments_for_clinician(practice, me, now - Duration::hours(2), until)
        .await?
    {
        let with = match state.store.client(practice, x.client_id).await? {
            Some(c) => c.display_name,
            None => "—".into(),
        };
        rows.push(AppointmentRow::of(&x, &zone, with, now));
    }
    let groups = state
        .store
        .group_sessions_for_clinician(practice, me, now - Duration::hours(2), until)
        .await?
        .into_iter()
        .filter(|g| g.status == AppointmentStatus::Booked)
        .map(|g| {
            (
                g.group_id.to_string(),
                g.id.to_string(),
                local(g.starts_at, &zone),
                g.appointment_type.summary(),
            )
        })
        .collect();
    Ok(SchedulePage {
        nav: crate::portal::nav(state, &a.caller).await,
        time_zone: zone,
        rows,
        groups,
    })
}

pub struct MessageRow {
    pub id: String,
    pub mine: bool,
    pub from: String,
    pub when: String,
    pub body: String,
    pub has_attachment: bool,
}

#[derive(askama::Template)]
#[template(path = "sessions_messages.html")]
pub struct ThreadPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub client_id: String,
    pub client_name: String,
    pub csrf: String,
    pub is_client: bool,
    pub reply_within_hours: Option<u32>,
    pub messages: Vec<MessageRow>,
}

/// `GET /clients/{id}/messages` (and `/me/messages` for the client): the
/// thread with compose (and an attachment). Opening it marks the other
/// side's messages read, as the JSON thread does.
pub async fn thread_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    crate::pages::page(thread_page_of(&state, &a).await)
}

async fn thread_page_of(state: &AppState, a: &Authorized) -> Result<ThreadPage, ApiError> {
    let client = a.client_id.ok_or_else(ApiError::not_found)?;
    let practice = a.caller.user.practice_id;
    let is_client = a.caller.actor.role == Role::Client;
    let thread = crate::sessions::messages::open_thread(state, a).await?;
    let zone = if is_client {
        booking::client_zone(state, practice, client)
            .await?
            .as_str()
            .to_string()
    } else {
        booking::practice_zone_name(state, practice).await?
    };
    let mut messages = Vec::new();
    for m in thread.messages {
        messages.push(MessageRow {
            id: m.id.to_string(),
            mine: m.from_client == is_client,
            from: if m.from_client {
                "Client".to_string()
            } else {
                name_of(state, a, m.sender).await
            },
            when: local(m.sent_at, &zone),
            body: m.body,
            has_attachment: m.has_attachment,
        });
    }
    let client_name = match state.store.client(practice, client).await? {
        Some(c) => c.display_name,
        None => "—".into(),
    };
    Ok(ThreadPage {
        nav: crate::portal::nav(state, &a.caller).await,
        client_id: client.to_string(),
        client_name,
        csrf: csrf_of(state, a),
        is_client,
        reply_within_hours: thread.reply_within_hours,
        messages,
    })
}

pub struct ThreadRow {
    pub client_id: String,
    pub name: String,
    pub unread: usize,
    pub last: String,
}

#[derive(askama::Template)]
#[template(path = "sessions_threads.html")]
pub struct ThreadsPage {
    /// The header menu of the signed-in person.
    pub nav: crate::portal::Nav,
    pub rows: Vec<ThreadRow>,
    /// "reviewed by X on date", or `None` while the practice's
    /// urgent-language list is unreviewed (the shipped draft list screens).
    pub phrase_list_review: Option<String>,
}

/// `GET /messages`: the threads of the clinician's clients (those whose
/// messages they may read), with unread counts; no message text.
pub async fn threads_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    crate::pages::page(threads_page_of(&state, &a).await)
}

async fn threads_page_of(state: &AppState, a: &Authorized) -> Result<ThreadsPage, ApiError> {
    let practice = a.caller.user.practice_id;
    let zone = booking::practice_zone_name(state, practice).await?;
    let mut rows = Vec::new();
    let mut seen: Vec<ClientId> = Vec::new();
    for rel in state
        .store
        .care_for_clinician(practice, a.caller.user.id)
        .await?
    {
        if rel.ended_at.is_some() || seen.contains(&rel.client_id) {
            continue;
        }
        seen.push(rel.client_id);
        let resource = Resource::client_record(practice, rel.client_id);
        if !authorize(&a.caller.actor, Action::ReadMessages, &resource).is_allowed() {
            continue;
        }
        let Some(c) = state.store.client(practice, rel.client_id).await? else {
            continue;
        };
        let list = state
            .store
            .messages_for_client(practice, rel.client_id)
            .await?;
        rows.push(ThreadRow {
            client_id: c.id.to_string(),
            name: c.display_name,
            unread: list
                .iter()
                .filter(|m| m.from_client && m.read_at.is_none())
                .count(),
            last: list
                .last()
                .map(|m| local(m.sent_at, &zone))
                .unwrap_or_else(|| "no messages".into()),
        });
    }
    let phrase_list_review = crate::sessions::messages::phrase_list_review(state, practice)
        .await?
        .map(|r| format!("reviewed by {} on {}", r.by_name, r.on));
    Ok(ThreadsPage {
        nav: crate::portal::nav(state, &a.caller).await,
        rows,
        phrase_list_review,
    })
}
