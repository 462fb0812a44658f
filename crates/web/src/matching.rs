//! Matching in the product (route area "matching"): clinicians keep their
//! matching profile, the intake team matches a client instantly (explained
//! choices and what could not be met), the client chooses (or switches, saying
//! why), the waitlist is assigned in optimal batches, the waitlist page shows
//! the ordered, explained queue with the intake team's tasks, and the
//! worker's periodic waitlist watch ([`watch_waitlist`]) schedules waiting
//! clients' measures and safety check-in and raises the intake team's alerts,
//! tasks and re-match suggestions (opening the page raises nothing).
//!
//! The engine is `tapestry_domain::matching`; this module only loads the
//! practice's data, calls it and stores the outcome. Clinicians' measured
//! outcomes are computed here from the practice's own finished episodes.

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::{Access, Authorized, RouteSpec, Target};
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::OnceLock;
use tapestry_domain::access::Action;
use tapestry_domain::care::{CareRelationship, CareRole};
use tapestry_domain::change::classify_reliable_change;
use tapestry_domain::episode::EpisodeStatus;
use tapestry_domain::ids::{ClientId, ClinicianId, EpisodeId, PracticeId, TaskId, UserId};
use tapestry_domain::ingest::{ClinicianTask, StoredRiskFlag};
use tapestry_domain::instrument::InstrumentRegistry;
use tapestry_domain::matching::assign::{AssignOptions, AssignmentGraph, AssignmentInstance, Edge};
use tapestry_domain::matching::elevation::{
    DomainMapping, DomainSource, ElevatedDomain, IntakeScore,
};
use tapestry_domain::matching::instant::{
    ClientRequest, MatchExplanation, MatchIndex, MatchResult, Preferences,
};
use tapestry_domain::matching::outcomes::{self, FinishedEpisode};
use tapestry_domain::matching::profile::{
    Capacity, ClinicianProfile, DomainOutcome, Format, IdentityCharacteristics, Licence,
    OutcomeNorms, OutcomeRating, Population, ProblemDomain, WeeklyAvailability, JURISDICTIONS,
};
use tapestry_domain::matching::rematch::{self, Feedback, RematchRule, RematchSuggestion};
use tapestry_domain::matching::waitlist::{self, QueueEntry, Reading, Waiting, WaitlistPolicy};
use tapestry_domain::measure_schedule::MeasureSchedule;
use tapestry_domain::risk::RiskLevel;
use tapestry_domain::user::Role;
use tapestry_store::{
    ClinicianMatch, MatchOffer, MatchRun, MatchSource, Store, StoreError, StoredMatchRequest,
    StoredMatchingProfile,
};
use uuid::Uuid;

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

/// How many choices a client is shown.
pub const CHOICES: usize = 5;
/// The largest share of one batch a single clinician may take (fairness cap).
pub const BATCH_MAX_SHARE: f64 = 0.5;

/// The matching routes.
pub const MATCHING_ROUTES: &[RouteSpec] = &[
    r(
        "GET",
        "/api/v1/me/matching-profile",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/matching-profile",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r(
        "GET",
        "/me/matching-profile",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/match",
        Access::Action(Action::ManageCareRelationships, Target::ClientInPath),
    ),
    r(
        "GET",
        "/me/match",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/match/choice",
        Access::Action(Action::ManageOwnProfile, Target::OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/practice/match-runs",
        Access::Action(Action::ManageCareRelationships, Target::Practice),
    ),
    r(
        "GET",
        "/practice/waitlist",
        Access::Action(Action::ManageCareRelationships, Target::Practice),
    ),
    r(
        "POST",
        "/api/v1/practice/waitlist/tasks/{task}/close",
        Access::Action(Action::ManageCareRelationships, Target::Practice),
    ),
];

/// The handlers of [`MATCHING_ROUTES`].
pub fn handler(spec: &RouteSpec) -> Option<MethodRouter<AppState>> {
    Some(match (spec.method, spec.path) {
        ("GET", "/api/v1/me/matching-profile") => get(own_profile),
        ("POST", "/api/v1/me/matching-profile") => post(put_own_profile),
        ("GET", "/me/matching-profile") => get(own_profile_page),
        ("POST", "/api/v1/clients/{id}/match") => post(match_client),
        ("GET", "/me/match") => get(my_match_page),
        ("POST", "/api/v1/me/match/choice") => post(choose),
        ("POST", "/api/v1/practice/match-runs") => post(run_batch),
        ("GET", "/practice/waitlist") => get(waitlist_page),
        ("POST", "/api/v1/practice/waitlist/tasks/{task}/close") => post(close_waitlist_task),
        _ => return None,
    })
}

fn registry() -> Option<&'static InstrumentRegistry> {
    static REGISTRY: OnceLock<Option<InstrumentRegistry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| InstrumentRegistry::embedded().ok())
        .as_ref()
}

/// Places are counted over a rolling week.
fn week_start(now: DateTime<Utc>) -> DateTime<Utc> {
    now - Duration::days(7)
}

fn require_clinical(a: &Authorized) -> Result<(), ApiError> {
    if a.caller.user.role.is_clinical() {
        Ok(())
    } else {
        Err(ApiError::forbidden())
    }
}

fn own_client(a: &Authorized) -> Result<ClientId, ApiError> {
    match (a.caller.user.role, a.caller.actor.client_id) {
        (Role::Client, Some(id)) => Ok(id),
        _ => Err(ApiError::forbidden()),
    }
}

// ---------------------------------------------------------------- profiles

/// What a clinician edits: everything but the id, the load (counted from
/// accepted matches) and the outcomes (measured, never typed in).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileBody {
    pub licences: Vec<Licence>,
    pub languages: Vec<String>,
    pub formats: Vec<Format>,
    #[serde(default)]
    pub approaches: Vec<String>,
    #[serde(default)]
    pub specialties: Vec<ProblemDomain>,
    pub populations: Vec<Population>,
    #[serde(default)]
    pub identity: Option<IdentityCharacteristics>,
    pub caseload_limit: i32,
    pub new_clients_per_week: i32,
    pub availability: WeeklyAvailability,
    #[serde(default)]
    pub accepts_risk: bool,
}

/// A stored profile as shown to its clinician.
#[derive(Debug, Serialize)]
pub struct ProfileView {
    pub profile: Option<ClinicianProfile>,
    pub free_places: Option<u32>,
}

async fn own_profile(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<ProfileView>, ApiError> {
    require_clinical(&a)?;
    let stored = state
        .store
        .matching_profile(
            a.caller.user.practice_id,
            a.caller.user.id,
            week_start(state.clock.now()),
        )
        .await?;
    let free_places = stored.as_ref().map(|p| p.profile.capacity.free_slots());
    Ok(Json(ProfileView {
        profile: stored.map(|p| p.profile),
        free_places,
    }))
}

async fn put_own_profile(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<ProfileBody>,
) -> Result<Json<ProfileView>, ApiError> {
    require_clinical(&a)?;
    let profile = ClinicianProfile {
        id: ClinicianId::from_uuid(a.caller.user.id.as_uuid()),
        display_name: a.caller.user.display_name.clone(),
        licences: body.licences,
        languages: body.languages,
        formats: body.formats,
        approaches: body.approaches,
        specialties: body.specialties,
        populations: body.populations,
        identity: body.identity,
        capacity: Capacity {
            caseload_limit: body.caseload_limit,
            current_load: 0,
            new_clients_per_week: body.new_clients_per_week,
            new_clients_this_week: 0,
        },
        availability: body.availability,
        accepts_risk: body.accepts_risk,
        outcomes: vec![],
    };
    profile_error(profile.validate())?;
    state
        .store
        .put_matching_profile(&StoredMatchingProfile {
            practice_id: a.caller.user.practice_id,
            clinician: a.caller.user.id,
            profile,
            updated_at: state.clock.now(),
        })
        .await?;
    own_profile(State(state), Extension(a)).await
}

/// A domain validation error as a 422 naming the field (the text before the
/// first colon of the message).
fn field_error(message: String) -> ApiError {
    let (field, problem) = message
        .split_once(": ")
        .map(|(f, p)| (f.to_string(), p.to_string()))
        .unwrap_or_else(|| ("body".to_string(), message.clone()));
    ApiError::unprocessable(field, problem)
}

fn profile_error<E: std::fmt::Display>(r: Result<(), E>) -> Result<(), ApiError> {
    r.map_err(|e| field_error(e.to_string()))
}

#[derive(Template)]
#[template(path = "matching_profile.html")]
struct ProfilePage {
    /// The header menu of the signed-in person.
    nav: crate::portal::Nav,
    name: String,
    has_profile: bool,
    licences: Vec<String>,
    languages: Vec<String>,
    formats: Vec<String>,
    specialties: Vec<String>,
    approaches: Vec<String>,
    capacity: String,
    accepts_risk: bool,
    outcomes: Vec<String>,
    edit: ProfileForm,
}

/// One choice of a select or a checkbox group.
struct Choice {
    value: String,
    label: String,
    chosen: bool,
}

/// One licence row of the profile form.
struct LicenceRow {
    jurisdictions: Vec<Choice>,
    number: String,
    expires_on: String,
}

/// One weekly-hours row of the profile form.
struct IntervalRow {
    days: Vec<Choice>,
    starts: Vec<Choice>,
    ends: Vec<Choice>,
}

/// The profile form, filled with the stored profile (blank rows to add more).
struct ProfileForm {
    licences: Vec<LicenceRow>,
    languages: String,
    approaches: String,
    formats: Vec<Choice>,
    specialties: Vec<Choice>,
    populations: Vec<Choice>,
    caseload_limit: String,
    new_clients_per_week: String,
    accepts_risk: bool,
    utc_offset_minutes: String,
    intervals: Vec<IntervalRow>,
    identity_consent: bool,
    identity: String,
}

/// Blank rows offered after the stored ones.
const BLANK_LICENCE_ROWS: usize = 2;
const BLANK_INTERVAL_ROWS: usize = 3;
const DAY_NAMES: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The JSON name of an enum value (its serde form), as the API expects it.
fn wire_name<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `none` first (an empty value, "not chosen"), then every value.
fn choices(
    values: impl Iterator<Item = (String, String)>,
    chosen: Option<&str>,
    none: bool,
) -> Vec<Choice> {
    let mut out = Vec::new();
    if none {
        out.push(Choice {
            value: String::new(),
            label: "—".into(),
            chosen: chosen.is_none(),
        });
    }
    out.extend(values.map(|(value, label)| Choice {
        chosen: chosen == Some(value.as_str()),
        value,
        label,
    }));
    out
}

/// One checkbox per value, ticked where the profile has it.
fn checkboxes<T: Serialize + PartialEq + Copy>(
    all: &[T],
    label: fn(T) -> &'static str,
    chosen: Option<&[T]>,
) -> Vec<Choice> {
    let chosen = chosen.unwrap_or_default();
    all.iter()
        .map(|&x| Choice {
            value: wire_name(&x),
            label: label(x).to_string(),
            chosen: chosen.contains(&x),
        })
        .collect()
}

/// Half-hour steps from 00:00 to 24:00, valued in minutes after midnight.
fn time_choices(chosen: Option<u16>) -> Vec<Choice> {
    let times = (0..=48u16).map(|h| {
        let m = h * 30;
        (m.to_string(), format!("{:02}:{:02}", m / 60, m % 60))
    });
    choices(times, chosen.map(|m| m.to_string()).as_deref(), true)
}

impl ProfileForm {
    fn new(p: Option<&ClinicianProfile>) -> ProfileForm {
        let jurisdictions = |code: Option<&str>| {
            choices(
                JURISDICTIONS
                    .iter()
                    .map(|(c, n)| (c.to_string(), format!("{n} ({c})"))),
                code,
                true,
            )
        };
        let mut licences: Vec<LicenceRow> = p
            .map(|p| p.licences.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|l| LicenceRow {
                jurisdictions: jurisdictions(Some(&l.jurisdiction)),
                number: l.number.clone(),
                expires_on: l.expires_on.to_string(),
            })
            .collect();
        licences.extend((0..BLANK_LICENCE_ROWS).map(|_| LicenceRow {
            jurisdictions: jurisdictions(None),
            number: String::new(),
            expires_on: String::new(),
        }));
        let days = |day: Option<u8>| {
            choices(
                DAY_NAMES
                    .iter()
                    .enumerate()
                    .map(|(i, d)| (i.to_string(), d.to_string())),
                day.map(|d| d.to_string()).as_deref(),
                true,
            )
        };
        let mut intervals: Vec<IntervalRow> = p
            .map(|p| p.availability.intervals.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|i| IntervalRow {
                days: days(Some(i.day)),
                starts: time_choices(Some(i.start_minute)),
                ends: time_choices(Some(i.end_minute)),
            })
            .collect();
        intervals.extend((0..BLANK_INTERVAL_ROWS).map(|_| IntervalRow {
            days: days(None),
            starts: time_choices(None),
            ends: time_choices(None),
        }));
        ProfileForm {
            licences,
            languages: p.map(|p| p.languages.join(", ")).unwrap_or_default(),
            approaches: p.map(|p| p.approaches.join(", ")).unwrap_or_default(),
            formats: checkboxes(&Format::ALL, Format::label, p.map(|p| p.formats.as_slice())),
            specialties: checkboxes(
                &ProblemDomain::ALL,
                ProblemDomain::label,
                p.map(|p| p.specialties.as_slice()),
            ),
            populations: checkboxes(
                &Population::ALL,
                Population::label,
                p.map(|p| p.populations.as_slice()),
            ),
            caseload_limit: p
                .map(|p| p.capacity.caseload_limit.to_string())
                .unwrap_or_default(),
            new_clients_per_week: p
                .map(|p| p.capacity.new_clients_per_week.to_string())
                .unwrap_or_default(),
            accepts_risk: p.is_some_and(|p| p.accepts_risk),
            utc_offset_minutes: p
                .map(|p| p.availability.utc_offset_minutes.to_string())
                .unwrap_or_else(|| "0".into()),
            intervals,
            identity_consent: p
                .and_then(|p| p.identity.as_ref())
                .is_some_and(|i| i.consent_to_show),
            identity: p
                .and_then(|p| p.identity.as_ref())
                .map(|i| i.characteristics.join(", "))
                .unwrap_or_default(),
        }
    }
}

async fn own_profile_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    if let Err(e) = require_clinical(&a) {
        return e.to_html();
    }
    let now = state.clock.now();
    let practice = a.caller.user.practice_id;
    let profiles = match measured_profiles(&state, practice, now).await {
        Ok(p) => p,
        Err(e) => return e.to_html(),
    };
    let me = ClinicianId::from_uuid(a.caller.user.id.as_uuid());
    let mine = profiles.iter().find(|p| p.id == me);
    let norms = OutcomeNorms::pooled(&profiles);
    let nav = crate::portal::nav(&state, &a.caller).await;
    let page = match mine {
        None => ProfilePage {
            nav,
            name: a.caller.user.display_name.clone(),
            has_profile: false,
            licences: vec![],
            languages: vec![],
            formats: vec![],
            specialties: vec![],
            approaches: vec![],
            capacity: String::new(),
            accepts_risk: false,
            outcomes: vec![],
            edit: ProfileForm::new(None),
        },
        Some(p) => ProfilePage {
            nav,
            name: p.display_name.clone(),
            has_profile: true,
            licences: p
                .licences
                .iter()
                .map(|l| {
                    format!(
                        "{} {} (valid through {})",
                        l.jurisdiction, l.number, l.expires_on
                    )
                })
                .collect(),
            languages: p
                .languages
                .iter()
                .map(|l| tapestry_domain::matching::profile::language_name(l).to_string())
                .collect(),
            formats: p.formats.iter().map(|f| f.label().to_string()).collect(),
            specialties: p
                .specialties
                .iter()
                .map(|d| d.label().to_string())
                .collect(),
            approaches: p
                .approaches
                .iter()
                .map(|s| tapestry_domain::matching::profile::approach_label(s))
                .collect(),
            capacity: format!(
                "{} of {} places in use; {} of {} new clients this week; {} free",
                p.capacity.current_load,
                p.capacity.caseload_limit,
                p.capacity.new_clients_this_week,
                p.capacity.new_clients_per_week,
                p.capacity.free_slots()
            ),
            accepts_risk: p.accepts_risk,
            outcomes: p
                .outcomes
                .iter()
                .map(|o| outcome_line(o, norms.expected(o.domain)))
                .collect(),
            edit: ProfileForm::new(Some(p)),
        },
    };
    crate::pages::render(&page)
}

fn outcome_line(o: &DomainOutcome, expected: f64) -> String {
    let rate = o.rate().unwrap_or(0.0) * 100.0;
    let ci = o
        .wilson_95()
        .map(|(lo, hi)| format!("95% CI {:.0}–{:.0}%", lo * 100.0, hi * 100.0))
        .unwrap_or_default();
    let rating = match o.rating(expected) {
        OutcomeRating::Effective => "effective",
        OutcomeRating::Neutral => "neutral",
        OutcomeRating::Ineffective => "ineffective",
        OutcomeRating::InsufficientData => "not rated (fewer than 15 finished episodes)",
    };
    format!(
        "{}: {} of {} reliably improved ({rate:.0}%, {ci}); rating: {rating}",
        o.domain.label(),
        o.reliably_improved,
        o.completed_episodes,
    )
}

// ------------------------------------------------------ measured outcomes

/// Every clinician's measured outcomes by presenting problem from the
/// practice's own finished (discharged) episodes: each episode counts once, for
/// the domain of the client's formulated primary problem (or, without one, the
/// domain its instrument measures), and it reliably improved when the first-to-last
/// change on the deciding instrument passes its reliable-change threshold
/// (`matching::outcomes`).
async fn measured_outcomes(
    state: &AppState,
    practice: PracticeId,
) -> Result<HashMap<UserId, Vec<DomainOutcome>>, ApiError> {
    let Some(registry) = registry() else {
        return Ok(HashMap::new());
    };
    let mut finished = Vec::new();
    for client in state.store.clients_in_practice(practice).await? {
        let mut problem: Option<Option<String>> = None;
        for episode in state.store.episodes_for_client(practice, client.id).await? {
            let (EpisodeStatus::Discharged, Some(clinician)) =
                (episode.status, episode.primary_clinician)
            else {
                continue;
            };
            if problem.is_none() {
                problem = Some(
                    state
                        .store
                        .latest_formulation(practice, client.id)
                        .await?
                        .and_then(|f| f.formulation.primary().map(str::to_string)),
                );
            }
            let mut changes = Vec::new();
            for m in state.store.episode_measures(practice, episode.id).await? {
                let (Some(first), Some(last), Some(def)) =
                    (m.baseline, m.latest, registry.get(&m.instrument))
                else {
                    continue;
                };
                let Some(threshold) = def.reliable_change_threshold() else {
                    continue;
                };
                changes.push((
                    m.instrument.clone(),
                    classify_reliable_change(first, last, threshold, def.higher_is_better),
                ));
            }
            finished.push((
                clinician,
                FinishedEpisode {
                    presenting_problem: problem.clone().flatten(),
                    changes,
                },
            ));
        }
    }
    Ok(outcomes::tally(finished))
}

/// The practice's profiles with current load and measured outcomes, in a
/// stable order (by clinician id).
async fn measured_profiles(
    state: &AppState,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<Vec<ClinicianProfile>, ApiError> {
    let stored = state
        .store
        .matching_profiles(practice, week_start(now))
        .await?;
    let mut outcomes = measured_outcomes(state, practice).await?;
    Ok(stored
        .into_iter()
        .map(|s| {
            let mut p = s.profile;
            p.id = ClinicianId::from_uuid(s.clinician.as_uuid());
            p.outcomes = outcomes.remove(&s.clinician).unwrap_or_default();
            p
        })
        .collect())
}

async fn index_for(
    state: &AppState,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<MatchIndex, ApiError> {
    let profiles = measured_profiles(state, practice, now).await?;
    let norms = OutcomeNorms::pooled(&profiles);
    MatchIndex::build(profiles, norms).map_err(|e| {
        tracing::error!(error = %e, "stored matching profile no longer valid");
        ApiError::internal()
    })
}

// ----------------------------------------------------------- instant match

/// What the intake team sends for a client: the request without the date
/// (the match is made today).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchBody {
    pub jurisdiction: String,
    pub languages: Vec<String>,
    pub format: Format,
    pub population: Population,
    #[serde(default)]
    pub elevated_domains: Vec<ProblemDomain>,
    #[serde(default)]
    pub risk: Option<RiskLevel>,
    #[serde(default)]
    pub urgent: bool,
    #[serde(default)]
    pub preferences: Preferences,
}

fn domain_mapping() -> Option<&'static DomainMapping> {
    static MAPPING: OnceLock<Option<DomainMapping>> = OnceLock::new();
    MAPPING
        .get_or_init(|| DomainMapping::embedded().ok())
        .as_ref()
}

/// The client's elevated domains from their intake, when the intake team
/// names none: the concern in the client's intake draft and the intake
/// (baseline) scores of their most recently opened episode that has any.
async fn elevated_from_intake(
    store: &dyn Store,
    practice: PracticeId,
    client: ClientId,
) -> Result<Vec<ElevatedDomain>, ApiError> {
    let Some(mapping) = domain_mapping() else {
        tracing::error!("content/matching/elevated_domains.toml does not load");
        return Err(ApiError::internal());
    };
    let concern = store
        .intake_draft(practice, client)
        .await?
        .map(|d| d.value("concern").to_string())
        .unwrap_or_default();
    let mut episodes = store.episodes_for_client(practice, client).await?;
    episodes.sort_by_key(|e| std::cmp::Reverse(e.opened_at));
    let mut scores = Vec::new();
    for episode in episodes {
        scores = store
            .episode_measures(practice, episode.id)
            .await?
            .into_iter()
            .filter_map(|m| {
                m.baseline.map(|score| IntakeScore {
                    instrument: m.instrument,
                    score,
                })
            })
            .collect();
        if !scores.is_empty() {
            break;
        }
    }
    Ok(mapping.explain(&concern, &scores))
}

/// Domains the intake team named in the match request, as elevated domains.
fn named_by_intake_team(domains: &[ProblemDomain]) -> Vec<ElevatedDomain> {
    domains
        .iter()
        .map(|&domain| ElevatedDomain {
            domain,
            source: DomainSource::IntakeTeam,
            reason: "named by the intake team".to_string(),
        })
        .collect()
}

async fn match_client(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<MatchBody>,
) -> Result<Json<MatchResult>, ApiError> {
    let client = a.client_id.ok_or_else(ApiError::not_found)?;
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let elevated = if body.elevated_domains.is_empty() {
        elevated_from_intake(&*state.store, practice, client).await?
    } else {
        named_by_intake_team(&body.elevated_domains)
    };
    let request = ClientRequest {
        jurisdiction: body.jurisdiction,
        languages: body.languages,
        format: body.format,
        population: body.population,
        elevated_domains: elevated.iter().map(|e| e.domain).collect(),
        risk: body.risk.unwrap_or(RiskLevel::None),
        urgent: body.urgent,
        preferences: body.preferences,
        date: now.date_naive(),
    };
    let index = index_for(&state, practice, now).await?;
    let mut result = index
        .match_client(&request, CHOICES)
        .map_err(|e| field_error(e.to_string()))?;
    result.elevated = elevated;
    state
        .store
        .put_match_request(&StoredMatchRequest {
            practice_id: practice,
            client_id: client,
            request,
            created_at: now,
        })
        .await?;
    state
        .store
        .insert_match_offer(&MatchOffer {
            id: Uuid::new_v4(),
            practice_id: practice,
            client_id: client,
            result: result.clone(),
            created_at: now,
        })
        .await?;
    Ok(Json(result))
}

// ----------------------------------------------------- the client's choice

#[derive(Template)]
#[template(path = "matching_choice.html")]
struct ChoicePage {
    /// The header menu of the signed-in person.
    nav: crate::portal::Nav,
    /// Early session feedback suggests this clinician may not be the right fit.
    rematch_suggested: bool,
    has_request: bool,
    current: Option<String>,
    current_reasons: String,
    choices: Vec<ChoiceView>,
    unmet: Vec<String>,
}

struct ChoiceView {
    clinician: String,
    name: String,
    summary: String,
    unmet: Vec<String>,
    is_current: bool,
}

/// The client's choices, recomputed now from the stored request so free
/// places are current.
async fn current_choices(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
    now: DateTime<Utc>,
) -> Result<Option<MatchResult>, ApiError> {
    let Some(stored) = state.store.match_request(practice, client).await? else {
        return Ok(None);
    };
    let mut request = stored.request;
    request.date = now.date_naive();
    let index = index_for(state, practice, now).await?;
    let result = index
        .match_client(&request, CHOICES)
        .map_err(|e| field_error(e.to_string()))?;
    Ok(Some(result))
}

async fn my_match_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let client = match own_client(&a) {
        Ok(c) => c,
        Err(e) => return e.to_html(),
    };
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let current = match state.store.current_match(practice, client).await {
        Ok(c) => c,
        Err(e) => return ApiError::from(e).to_html(),
    };
    let result = match current_choices(&state, practice, client, now).await {
        Ok(r) => r,
        Err(e) => return e.to_html(),
    };
    let names = staff_names(&state, practice).await.unwrap_or_default();
    let current_id = current.as_ref().map(|m| m.clinician.as_uuid());
    let rematch_suggested = match &current {
        Some(m) => match rematch_for(&*state.store, practice, client, m).await {
            Ok(s) => s.is_some(),
            Err(e) => return ApiError::from(e).to_html(),
        },
        None => false,
    };
    let page = ChoicePage {
        nav: crate::portal::nav(&state, &a.caller).await,
        rematch_suggested,
        has_request: result.is_some(),
        current: current
            .as_ref()
            .map(|m| names.get(&m.clinician).cloned().unwrap_or_default()),
        current_reasons: current
            .as_ref()
            .map(|m| m.reasons.join(" · "))
            .unwrap_or_default(),
        unmet: result.as_ref().map(|r| r.unmet.clone()).unwrap_or_default(),
        choices: result
            .map(|r| {
                r.choices
                    .iter()
                    .map(|c| ChoiceView {
                        clinician: c.clinician.as_uuid().to_string(),
                        name: c.display_name.clone(),
                        summary: c.summary(),
                        unmet: c.unmet.clone(),
                        is_current: Some(c.clinician.as_uuid()) == current_id,
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    crate::pages::render(&page)
}

async fn staff_names(
    state: &AppState,
    practice: PracticeId,
) -> Result<HashMap<UserId, String>, ApiError> {
    Ok(state
        .store
        .users_in_practice(practice)
        .await?
        .into_iter()
        .map(|u| (u.id, u.display_name))
        .collect())
}

/// The client's choice; a switch must say why.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChoiceBody {
    pub clinician: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ChoiceDone {
    pub clinician: String,
    pub reasons: Vec<String>,
    pub next: &'static str,
}

async fn choose(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<ChoiceBody>,
) -> Result<(StatusCode, Json<ChoiceDone>), ApiError> {
    let client = own_client(&a)?;
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let chosen: Uuid = body
        .clinician
        .parse()
        .map_err(|_| ApiError::unprocessable("clinician", "is not a clinician id"))?;
    let Some(result) = current_choices(&state, practice, client, now).await? else {
        return Err(ApiError::unprocessable(
            "clinician",
            "there is no match request for you yet; the intake team will make one",
        ));
    };
    let Some(choice) = result
        .choices
        .iter()
        .find(|c| c.clinician.as_uuid() == chosen)
    else {
        return Err(ApiError::unprocessable(
            "clinician",
            "is not among your current choices",
        ));
    };
    let reason = body
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty());
    let m = accept(
        &state,
        practice,
        client,
        choice,
        MatchSource::Client,
        reason,
        now,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ChoiceDone {
            clinician: m.clinician.as_uuid().to_string(),
            reasons: m.reasons,
            next: "/me/match",
        }),
    ))
}

/// Accepts `choice` for `client` (capacity enforced by the store), then
/// records the care relationship and the episode's primary clinician; a
/// switch ends the previous clinician's care relationship.
async fn accept(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
    choice: &MatchExplanation,
    source: MatchSource,
    switch_reason: Option<&str>,
    now: DateTime<Utc>,
) -> Result<ClinicianMatch, ApiError> {
    let clinician = UserId::from_uuid(choice.clinician.as_uuid());
    let previous = state.store.current_match(practice, client).await?;
    if previous.as_ref().is_some_and(|p| p.clinician == clinician) {
        return Err(ApiError::conflict("This clinician is already yours."));
    }
    let m = ClinicianMatch {
        id: Uuid::new_v4(),
        practice_id: practice,
        client_id: client,
        clinician,
        score: i64::from(choice.score),
        reasons: choice.reasons.clone(),
        source,
        accepted_at: now,
        ended_at: None,
        end_reason: None,
    };
    match state
        .store
        .accept_match(&m, week_start(now), switch_reason)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(tapestry_store::SWITCH_NEEDS_REASON)) => {
            return Err(ApiError::unprocessable(
                "reason",
                "switching clinician is free; please tell us why you want to switch",
            ))
        }
        Err(StoreError::Conflict(tapestry_store::NO_FREE_PLACE)) => {
            return Err(ApiError::conflict(
                "That clinician has just filled their last place; please choose again.",
            ))
        }
        Err(e) => return Err(e.into()),
    }
    let care = state.store.care_for_client(practice, client).await?;
    if let Some(prev) = previous {
        for rel in care.iter().filter(|c| {
            c.clinician == prev.clinician && c.role == CareRole::Treating && c.ended_at.is_none()
        }) {
            state
                .store
                .end_care_relationship(practice, rel.id, now)
                .await?;
        }
    }
    let already = care
        .iter()
        .any(|c| c.clinician == clinician && c.role == CareRole::Treating && c.ended_at.is_none());
    if !already {
        let rel = CareRelationship::begin(practice, clinician, client, CareRole::Treating, now);
        match state.store.insert_care_relationship(&rel).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let episodes = state.store.episodes_for_client(practice, client).await?;
    if let Some(ep) = episodes
        .iter()
        .filter(|e| e.status != EpisodeStatus::Discharged)
        .max_by_key(|e| e.opened_at)
    {
        state
            .store
            .set_primary_clinician(practice, ep.id, clinician)
            .await?;
    }
    Ok(m)
}

// --------------------------------------------------------- batch assignment

/// Batch options (all optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunBody {
    /// The largest share of the batch one clinician may take, in (0, 1].
    #[serde(default)]
    pub max_share_per_clinician: Option<f64>,
}

/// One waiting client's line in a batch run.
#[derive(Debug, Serialize)]
pub struct RunLine {
    pub client_id: String,
    pub clinician: Option<String>,
    pub clinician_name: Option<String>,
    pub score: Option<u32>,
    pub urgent: bool,
    /// Why this clinician (or why nobody).
    pub reasons: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: String,
    pub clients: usize,
    pub assigned: usize,
    pub total_score: i64,
    pub assignments: Vec<RunLine>,
}

async fn run_batch(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<RunBody>,
) -> Result<(StatusCode, Json<RunView>), ApiError> {
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let share = body.max_share_per_clinician.unwrap_or(BATCH_MAX_SHARE);
    if !(share > 0.0 && share <= 1.0) {
        return Err(ApiError::unprocessable(
            "max_share_per_clinician",
            "must be more than 0 and at most 1",
        ));
    }
    let index = index_for(&state, practice, now).await?;
    let mut waiting = Vec::new();
    for stored in state.store.match_requests(practice).await? {
        if state
            .store
            .current_match(practice, stored.client_id)
            .await?
            .is_none()
        {
            waiting.push(stored);
        }
    }
    // Every client's feasible clinicians (the instant match's filters and
    // score), as edges of the assignment graph.
    let mut edges = Vec::new();
    let mut results = Vec::with_capacity(waiting.len());
    for (i, w) in waiting.iter().enumerate() {
        let mut request = w.request.clone();
        request.date = now.date_naive();
        let result = index
            .match_client(&request, tapestry_domain::matching::instant::MAX_CHOICES)
            .map_err(|e| field_error(format!("clients[{i}].{e}")))?;
        for c in &result.choices {
            edges.push(Edge {
                client: u32::try_from(i).map_err(|_| ApiError::internal())?,
                clinician: u32::try_from(c.index).map_err(|_| ApiError::internal())?,
                score: i64::from(c.score),
            });
        }
        results.push(result);
    }
    let capacities: Vec<u32> = (0..index.len())
        .map(|i| index.free_slots(i).unwrap_or(0))
        .collect();
    let instance = AssignmentInstance::new(waiting.len(), capacities, edges)
        .map_err(|e| field_error(e.to_string()))?;
    let graph = AssignmentGraph::build(&instance).map_err(|e| field_error(e.to_string()))?;
    let urgent: Vec<bool> = waiting
        .iter()
        .map(|w| w.request.urgent || w.request.risk >= RiskLevel::Moderate)
        .collect();
    let solution = graph
        .solve_with(&AssignOptions {
            urgent: urgent.clone(),
            max_share_per_clinician: Some(share),
        })
        .map_err(|e| field_error(e.to_string()))?;
    let names = staff_names(&state, practice).await?;
    let mut lines = Vec::with_capacity(waiting.len());
    let mut assigned = 0;
    let mut total = 0i64;
    for (i, w) in waiting.iter().enumerate() {
        let result = results.get(i);
        let slot = solution.assignment.get(i).copied().flatten();
        let choice = slot
            .and_then(|k| result.and_then(|r| r.choices.iter().find(|c| c.index == k as usize)));
        let mut line = RunLine {
            client_id: w.client_id.to_string(),
            clinician: None,
            clinician_name: None,
            score: None,
            urgent: urgent.get(i).copied().unwrap_or(false),
            reasons: vec![],
        };
        match choice {
            Some(c) => {
                match accept(
                    &state,
                    practice,
                    w.client_id,
                    c,
                    MatchSource::Batch,
                    None,
                    now,
                )
                .await
                {
                    Ok(m) => {
                        assigned += 1;
                        total += m.score;
                        line.clinician = Some(m.clinician.as_uuid().to_string());
                        line.clinician_name = names.get(&m.clinician).cloned();
                        line.score = Some(c.score);
                        line.reasons = c.reasons.clone();
                        if line.urgent {
                            line.reasons.insert(0, "urgent: placed first".to_string());
                        }
                    }
                    Err(e) => line.reasons.push(format!("not placed: {}", e.message)),
                }
            }
            None => {
                let mut why = result.map(|r| r.unmet.clone()).unwrap_or_default();
                if result.is_some_and(|r| !r.choices.is_empty()) {
                    why.push(
                        "every suitable clinician's free places went to clients with a better or more urgent fit"
                            .to_string(),
                    );
                }
                line.reasons = why;
            }
        }
        lines.push(line);
    }
    let run = MatchRun {
        id: Uuid::new_v4(),
        practice_id: practice,
        run_by: a.caller.user.id,
        clients: i64::try_from(waiting.len()).unwrap_or(i64::MAX),
        assigned,
        total_score: total,
        result: serde_json::to_value(&lines).map_err(|_| ApiError::internal())?,
        created_at: now,
    };
    state.store.insert_match_run(&run).await?;
    Ok((
        StatusCode::CREATED,
        Json(RunView {
            id: run.id.to_string(),
            clients: waiting.len(),
            assigned: usize::try_from(assigned).unwrap_or(0),
            total_score: total,
            assignments: lines,
        }),
    ))
}

// ------------------------------------------------------------ the waitlist

#[derive(Template)]
#[template(path = "matching_waitlist.html")]
struct WaitlistPage {
    /// The header menu of the signed-in person.
    nav: crate::portal::Nav,
    rows: Vec<WaitlistRow>,
    /// How many intake-team tasks are open.
    open_tasks: usize,
    rematch: Vec<RematchRow>,
}

/// A client whose early session feedback suggests offering a free switch.
struct RematchRow {
    client_id: String,
    name: String,
    clinician: String,
    reason: String,
}

struct WaitlistRow {
    position: usize,
    client_id: String,
    name: String,
    waiting_days: i64,
    /// The rule that places the client (risk, deterioration, urgent, longest wait).
    order: &'static str,
    reasons: String,
    /// Elevated problem domains and where each comes from (the intake).
    elevated: Vec<(&'static str, String)>,
    alerts: usize,
    tasks: Vec<IntakeTaskRow>,
    due: String,
    /// The clinician the client chose or was given, while they wait for
    /// the first session.
    matched: Option<String>,
}

/// An open intake-team task, with its close-with-note form.
struct IntakeTaskRow {
    id: String,
    title: String,
    detail: String,
    colour: &'static str,
    due_at: String,
}

/// The alert kinds raised for the intake team (decided in the domain).
pub use tapestry_domain::matching::waitlist::{ALERT_WAITLIST_DETERIORATION, ALERT_WAITLIST_RISK};

/// The instrument definitions, or a clear error when the shipped content is broken.
fn loaded_registry() -> Result<&'static InstrumentRegistry, StoreError> {
    registry().ok_or_else(|| {
        StoreError::Corrupt("content/instruments: the embedded definitions do not load".into())
    })
}

/// The practice's waiting clients (episodes on the waitlist) as the waitlist
/// engine sees them, and their names.
/// The practice's waiting clients as the domain sees them, their names, and
/// the waiting episode of each (the one the watch schedules measures on).
struct Waitlist {
    waiting: Vec<Waiting>,
    names: HashMap<ClientId, String>,
    episodes: HashMap<ClientId, EpisodeId>,
}

/// Instruments whose completion counts as a risk re-screen: the client's own
/// waiting-list check-in and a clinician's structured risk assessment.
fn is_rescreen(instrument: &str, policy: &WaitlistPolicy) -> bool {
    instrument == policy.rescreen_instrument || instrument == "risk_assessment"
}

/// The highest open risk level on an episode. A screening answer carries no
/// assessed level: it counts as moderate until a clinician assesses it.
fn open_risk_level(flags: &[StoredRiskFlag], episode: EpisodeId) -> Option<RiskLevel> {
    flags
        .iter()
        .filter(|f| f.episode_id == episode && f.flag.closure.is_none())
        .map(|f| f.flag.signal.level.unwrap_or(RiskLevel::Moderate))
        .max()
}

async fn waiting_clients(
    store: &dyn Store,
    practice: PracticeId,
    policy: &WaitlistPolicy,
) -> Result<Waitlist, StoreError> {
    let requests: HashMap<ClientId, bool> = store
        .match_requests(practice)
        .await?
        .into_iter()
        .map(|r| (r.client_id, r.request.urgent))
        .collect();
    let flags = store.open_risk_flags(practice).await?;
    let mut list = Waitlist {
        waiting: Vec::new(),
        names: HashMap::new(),
        episodes: HashMap::new(),
    };
    for client in store.clients_in_practice(practice).await? {
        for episode in store.episodes_for_client(practice, client.id).await? {
            if episode.status != EpisodeStatus::Waitlist {
                continue;
            }
            let mut readings = Vec::new();
            for m in store.episode_measures(practice, episode.id).await? {
                if let Some(first) = m.baseline {
                    readings.push(Reading {
                        instrument: m.instrument.clone(),
                        total: first,
                        at: episode.opened_at,
                    });
                }
                if let (Some(last), true) = (m.latest, m.sessions >= 2) {
                    readings.push(Reading {
                        instrument: m.instrument.clone(),
                        total: last,
                        at: m.updated_at,
                    });
                }
            }
            let open_risk = open_risk_level(&flags, episode.id);
            let last_rescreen_at = store
                .submissions_for_episode(practice, episode.id)
                .await?
                .iter()
                .filter(|s| is_rescreen(&s.instrument, policy))
                .map(|s| s.submitted_at)
                .max();
            list.names.insert(client.id, client.display_name.clone());
            list.episodes.insert(client.id, episode.id);
            list.waiting.push(Waiting {
                client_id: client.id,
                joined_at: episode.status_changed_at,
                urgent: requests.get(&client.id).copied().unwrap_or(false),
                readings,
                open_risk,
                last_rescreen_at,
            });
        }
    }
    Ok(list)
}

/// The ordered, explained waitlist of the practice. Reading it changes
/// nothing: alerts are raised by [`watch_waitlist`].
pub async fn waitlist_queue(
    store: &dyn Store,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<(Vec<QueueEntry>, HashMap<ClientId, String>), StoreError> {
    let policy = WaitlistPolicy::default();
    let list = waiting_clients(store, practice, &policy).await?;
    let queue = waitlist::review(&list.waiting, loaded_registry()?, &policy, now);
    Ok((queue, list.names))
}

/// What one run of the waitlist watch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchReport {
    /// Waiting clients with measures or a risk re-screen due, each with the
    /// key of their one measures-due reminder (see
    /// [`waitlist::measures_reminder_key`]).
    pub measures_due: Vec<(ClientId, String)>,
    /// Alerts newly raised (risk, deterioration, re-match), one per recipient.
    pub alerts_raised: usize,
    /// Instruments newly put on waiting episodes' measure schedules.
    pub schedules_added: usize,
    /// Intake-team tasks newly opened (one per waiting episode and kind).
    pub tasks_opened: usize,
}

/// The waitlist that watches, run by the worker's periodic `waitlist_watch`
/// job for one practice: loads the waitlist, lets the domain decide (queue
/// order, risk and reliable deterioration since joining, what is due,
/// re-match suggestions) and stores the outcome: the policy's measures and
/// safety check-in go on each waiting episode's schedule where it has none
/// for them; each alert is raised once per kind, client and recipient (the
/// intake team: practice admins and owners; a re-match also the current
/// clinician) and opens one intake task per episode and kind, however often
/// it runs.
/// The measures-due reminders are left to the caller (the worker's reminder
/// path), keyed so that each is queued once.
pub async fn watch_waitlist(
    store: &dyn Store,
    practice: PracticeId,
    now: DateTime<Utc>,
) -> Result<WatchReport, StoreError> {
    let policy = WaitlistPolicy::default();
    let list = waiting_clients(store, practice, &policy).await?;
    let queue = waitlist::review(&list.waiting, loaded_registry()?, &policy, now);
    let measures_due = list
        .waiting
        .iter()
        .filter_map(|w| {
            waitlist::measures_reminder_key(w, &policy, now).map(|key| (w.client_id, key))
        })
        .collect();
    let mut schedules_added = 0;
    for &episode in list.episodes.values() {
        schedules_added += schedule_waiting(store, practice, episode, &policy, now).await?;
    }
    let team = intake_team(store, practice).await?;
    let mut alerts_raised = 0;
    let mut tasks_opened = 0;
    for entry in &queue {
        let Some(&episode) = list.episodes.get(&entry.client_id) else {
            continue;
        };
        for alert in &entry.alerts {
            let (alerts, task) =
                escalate(store, practice, &team, entry.client_id, episode, alert, now).await?;
            alerts_raised += alerts;
            tasks_opened += usize::from(task);
        }
    }
    for (client, current, _) in rematch_suggestions(store, practice).await? {
        let mut recipients = team.clone();
        if !recipients.contains(&current.clinician) {
            recipients.push(current.clinician);
        }
        alerts_raised += raise_once(
            store,
            practice,
            &recipients,
            ALERT_REMATCH_SUGGESTED,
            client,
            now,
        )
        .await?;
    }
    Ok(WatchReport {
        measures_due,
        alerts_raised,
        schedules_added,
        tasks_opened,
    })
}

/// Puts the waitlist policy's measures and re-screen on the waiting
/// episode's measure schedule where the episode has none for that
/// instrument (a clinician's schedule is never overwritten); returns how
/// many were added. Rerunning adds nothing.
async fn schedule_waiting(
    store: &dyn Store,
    practice: PracticeId,
    episode: EpisodeId,
    policy: &WaitlistPolicy,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let existing = store.measure_schedules(practice, episode).await?;
    let mut added = 0;
    for (instrument, rule) in policy.schedule() {
        if existing.iter().any(|s| s.instrument == instrument) {
            continue;
        }
        store
            .set_measure_schedule(&MeasureSchedule::new(
                practice,
                episode,
                &instrument,
                rule,
                now,
            ))
            .await?;
        added += 1;
    }
    Ok(added)
}

/// Tells the intake team about one waitlist alert: the alert to each admin
/// and owner once, and one practice-wide task per risk flag (the episode's
/// newest open one) or, for deterioration, per waiting episode
/// (unassigned: every admin and owner sees it on the waitlist page and their
/// task list; whoever acts closes it with a note). Returns the alerts newly
/// raised and whether the task is new.
pub(crate) async fn escalate(
    store: &dyn Store,
    practice: PracticeId,
    team: &[UserId],
    client: ClientId,
    episode: EpisodeId,
    alert: &waitlist::Alert,
    now: DateTime<Utc>,
) -> Result<(usize, bool), StoreError> {
    let raised = raise_once(store, practice, team, alert.kind(), client, now).await?;
    // A risk task is about the episode's newest open flag: each new risk
    // answer is a new task, and a closed one is not reopened for its flag.
    let risk_flag_id = match alert {
        waitlist::Alert::Risk { .. } => {
            let flags = store.open_risk_flags(practice).await?;
            let Some(newest) = flags
                .iter()
                .filter(|f| f.episode_id == episode && f.flag.closure.is_none())
                .max_by_key(|f| f.flag.raised_at)
            else {
                return Ok((raised, false));
            };
            Some(newest.id)
        }
        waitlist::Alert::ReliableDeterioration { .. } => None,
    };
    let task = alert.intake_task(now);
    let opened = store
        .open_waitlist_task(&ClinicianTask {
            id: TaskId::random(),
            practice_id: practice,
            client_id: client,
            episode_id: episode,
            kind: task.kind,
            risk_flag_id,
            assignee: None,
            title: task.title,
            detail: task.detail,
            colour: task.colour,
            due_at: task.due_at,
            created_at: now,
            completed_at: None,
        })
        .await?;
    Ok((raised, opened))
}

/// A waiting client's risk answer alerts the intake team at once (the
/// hourly watch would otherwise pick it up within the hour): called after a
/// submission that raised a risk flag. Does nothing unless the episode is on
/// the waitlist and has an open flag.
pub(crate) async fn escalate_waitlist_risk(
    store: &dyn Store,
    practice: PracticeId,
    client: ClientId,
    episode: EpisodeId,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let waiting = store
        .episode(practice, episode)
        .await?
        .is_some_and(|e| e.client_id == client && e.status == EpisodeStatus::Waitlist);
    if !waiting {
        return Ok(());
    }
    let flags = store.open_risk_flags(practice).await?;
    let Some(level) = open_risk_level(&flags, episode) else {
        return Ok(());
    };
    let team = intake_team(store, practice).await?;
    escalate(
        store,
        practice,
        &team,
        client,
        episode,
        &waitlist::Alert::Risk { level },
        now,
    )
    .await?;
    Ok(())
}

/// The intake team: the practice's admins and owners.
async fn intake_team(store: &dyn Store, practice: PracticeId) -> Result<Vec<UserId>, StoreError> {
    Ok(store
        .users_in_practice(practice)
        .await?
        .into_iter()
        .filter(|u| u.role.is_practice_admin())
        .map(|u| u.id)
        .collect())
}

/// Raises the alert `kind` about `client` for every recipient who does not
/// have it yet; returns how many were new.
async fn raise_once(
    store: &dyn Store,
    practice: PracticeId,
    recipients: &[UserId],
    kind: &str,
    client: ClientId,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let object = Some(client.as_uuid());
    let mut new = 0;
    for &recipient in recipients {
        let existing = store.alerts_for(practice, recipient).await?;
        if existing
            .iter()
            .any(|e| e.kind == kind && e.object_id == object)
        {
            continue;
        }
        store
            .insert_alert(&tapestry_store::Alert {
                id: Uuid::new_v4(),
                practice_id: practice,
                recipient,
                kind: kind.to_string(),
                object_id: object,
                created_at: now,
            })
            .await?;
        new += 1;
    }
    Ok(new)
}

// ------------------------------------------------------ re-match suggestions

/// The alert kind raised when early session feedback suggests a re-match.
pub const ALERT_REMATCH_SUGGESTED: &str = "rematch_suggested";
/// The instrument whose totals the re-match rule reads.
const SESSION_FEEDBACK: &str = "session_feedback";

fn rematch_rule() -> Option<&'static RematchRule> {
    static RULE: OnceLock<Option<RematchRule>> = OnceLock::new();
    RULE.get_or_init(|| RematchRule::embedded().ok()).as_ref()
}

/// Whether the client's early session feedback with their current clinician
/// suggests offering a free switch (`None` without a current match).
async fn rematch_for(
    store: &dyn Store,
    practice: PracticeId,
    client: ClientId,
    current: &ClinicianMatch,
) -> Result<Option<RematchSuggestion>, StoreError> {
    let Some(rule) = rematch_rule() else {
        return Ok(None);
    };
    let mut feedback = Vec::new();
    for episode in store.episodes_for_client(practice, client).await? {
        for s in store.submissions_for_episode(practice, episode.id).await? {
            if s.instrument == SESSION_FEEDBACK {
                feedback.push(Feedback {
                    submitted_at: s.submitted_at,
                    total: s.total.map(|t| t.max(0.0).round() as u32),
                });
            }
        }
    }
    Ok(rematch::suggest(rule, current.accepted_at, &feedback))
}

/// Every current match whose early feedback suggests a re-match, with the
/// suggestion (reading only; [`watch_waitlist`] raises the alerts).
async fn rematch_suggestions(
    store: &dyn Store,
    practice: PracticeId,
) -> Result<Vec<(ClientId, ClinicianMatch, RematchSuggestion)>, StoreError> {
    let mut out = Vec::new();
    for client in store.clients_in_practice(practice).await? {
        let Some(current) = store.current_match(practice, client.id).await? else {
            continue;
        };
        if let Some(s) = rematch_for(store, practice, client.id, &current).await? {
            out.push((client.id, current, s));
        }
    }
    Ok(out)
}

/// The waitlist page's rows: each client's place and why, their elevated
/// domains from the intake, what is due and the intake team's open tasks.
async fn waitlist_rows(
    state: &AppState,
    practice: PracticeId,
    queue: &[QueueEntry],
    names: &HashMap<ClientId, String>,
) -> Result<Vec<WaitlistRow>, ApiError> {
    let tz = crate::pages::viewer_zone(state, practice).await;
    let tasks: Vec<ClinicianTask> = state
        .store
        .open_tasks(practice)
        .await?
        .into_iter()
        .filter(|t| t.kind.is_intake_team())
        .collect();
    let requests: HashMap<ClientId, StoredMatchRequest> = state
        .store
        .match_requests(practice)
        .await?
        .into_iter()
        .map(|r| (r.client_id, r))
        .collect();
    let staff = staff_names(state, practice).await?;
    let mut rows = Vec::with_capacity(queue.len());
    for e in queue {
        let matched = state
            .store
            .current_match(practice, e.client_id)
            .await?
            .map(|m| staff.get(&m.clinician).cloned().unwrap_or_default());
        let named = requests
            .get(&e.client_id)
            .map(|r| r.request.elevated_domains.clone())
            .unwrap_or_default();
        let elevated = if named.is_empty() {
            elevated_from_intake(&*state.store, practice, e.client_id).await?
        } else {
            named_by_intake_team(&named)
        };
        rows.push(WaitlistRow {
            position: e.position,
            client_id: e.client_id.to_string(),
            name: names.get(&e.client_id).cloned().unwrap_or_default(),
            waiting_days: e.waiting_days,
            order: e.order.label(),
            reasons: e.reasons.join(" · "),
            elevated: elevated
                .into_iter()
                .map(|d| (d.domain.label(), d.reason))
                .collect(),
            alerts: e.alerts.len(),
            tasks: tasks
                .iter()
                .filter(|t| t.client_id == e.client_id)
                .map(|t| IntakeTaskRow {
                    id: t.id.to_string(),
                    title: t.title.clone(),
                    detail: t.detail.clone(),
                    colour: t.colour.as_str(),
                    due_at: crate::pages::local_time(tz, t.due_at),
                })
                .collect(),
            due: e
                .due
                .iter()
                .map(|d| match d {
                    waitlist::Due::Measure { instrument } => instrument.to_uppercase(),
                    waitlist::Due::RiskRescreen => "safety check-in".to_string(),
                })
                .collect::<Vec<_>>()
                .join(", "),
            matched,
        });
    }
    Ok(rows)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CloseTaskBody {
    /// What the intake team did (required; sealed at rest).
    note: String,
}

#[derive(Serialize)]
struct ClosedTask {
    id: String,
    kind: &'static str,
    client_id: String,
    completed_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/practice/waitlist/tasks/{task}/close`: an admin or owner
/// closes an intake-team task with a note. Another practice's task, a
/// clinician's task or an unknown id is 404; nothing changes on any error.
async fn close_waitlist_task(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    axum::extract::Path(task): axum::extract::Path<String>,
    ApiJson(body): ApiJson<CloseTaskBody>,
) -> Result<Json<ClosedTask>, ApiError> {
    let practice = a.caller.user.practice_id;
    let task: TaskId = task.parse().map_err(|_| ApiError::not_found())?;
    if body.note.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "note",
            "a note is required to close a waitlist task",
        ));
    }
    if body.note.chars().count() > tapestry_store::MAX_REASON_CHARS {
        return Err(ApiError::unprocessable(
            "note",
            "longer than 4000 characters",
        ));
    }
    let closed = state
        .store
        .close_waitlist_task(
            practice,
            task,
            a.caller.user.id,
            &body.note,
            state.clock.now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict(m) if m == tapestry_store::TASK_ALREADY_CLOSED => {
                ApiError::conflict(m)
            }
            StoreError::Conflict(m) => ApiError::unprocessable("note", m),
            StoreError::NotFound(_) => ApiError::not_found(),
            other => other.into(),
        })?;
    Ok(Json(ClosedTask {
        id: closed.id.to_string(),
        kind: closed.kind.as_str(),
        client_id: closed.client_id.to_string(),
        completed_at: closed.completed_at,
    }))
}

async fn waitlist_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let (queue, names) = match waitlist_queue(&*state.store, practice, now).await {
        Ok(q) => q,
        Err(e) => return ApiError::from(e).to_html(),
    };
    let rows = match waitlist_rows(&state, practice, &queue, &names).await {
        Ok(r) => r,
        Err(e) => return e.to_html(),
    };
    let suggestions = match rematch_suggestions(&*state.store, practice).await {
        Ok(s) => s,
        Err(e) => return ApiError::from(e).to_html(),
    };
    let staff = staff_names(&state, practice).await.unwrap_or_default();
    let clients: HashMap<ClientId, String> = state
        .store
        .clients_in_practice(practice)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|c| (c.id, c.display_name))
        .collect();
    let rematch = suggestions
        .iter()
        .map(|(client, current, s)| RematchRow {
            client_id: client.to_string(),
            name: clients.get(client).cloned().unwrap_or_default(),
            clinician: staff.get(&current.clinician).cloned().unwrap_or_default(),
            reason: s.reason.clone(),
        })
        .collect();
    crate::pages::render(&WaitlistPage {
        nav: crate::portal::nav(&state, &a.caller).await,
        open_tasks: rows.iter().map(|r: &WaitlistRow| r.tasks.len()).sum(),
        rows,
        rematch,
    })
}
