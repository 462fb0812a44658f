//! The clinical record area ("records"): measures (submission, scores,
//! change, trajectory, FHIR), risk flags and the clinician's tasks, the case
//! formulation, plan versions with clinician decisions and diffs, session
//! reviews; and the chart pages that show them (`records_pages`).
//!
//! Handlers are thin: the guard has authorized and will audit the request;
//! the engines live in `tapestry_domain` and persistence in the store.

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::{Access, Authorized, RouteSpec, Target};
use crate::AppState;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tapestry_domain::access::{authorize, Action, Decision as Policy, Resource};
use tapestry_domain::adapt::{ChecklistItem, Suggestion};
use tapestry_domain::formulation::{Formulation, FormulationVersion};
use tapestry_domain::ids::{ClientId, EpisodeId, PracticeId, RecordId};
use tapestry_domain::ingest::{IngestError, IngestRequest, StoredRiskFlag};
use tapestry_domain::instrument::{AdministeredBy, InstrumentRegistry};
use tapestry_domain::knowledge::{Knowledge, Phase};
use tapestry_domain::measure_schedule::{MeasureSchedule, ScheduleError, ScheduleRule};
use tapestry_domain::measurement_cli::{change_command, ChangeReport};
use tapestry_domain::plan::{
    apply_decision, diff, generate, Case, Decision, MeasureScorer, MeasureSnapshot, Plan, PlanDiff,
    SessionRecord,
};
use tapestry_domain::risk::RiskColour;
use tapestry_domain::scoring::{score as score_answers, Answer, Answers, ScoringError};
use tapestry_domain::submission::Submission;
use tapestry_store::{
    NewFormulation, NewPlanVersion, NewSessionReview, PlanOrigin, PlanRecord, PlanStatus,
    ReviewContent,
};

/// The plan engine's version, stored with every plan version.
pub const ENGINE_VERSION: &str = concat!("tapestry-plan/", env!("CARGO_PKG_VERSION"));

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

use Target::{ClientInPath, EachClient, OwnClientRecord, RiskFlagInPath};

/// The records area's route table.
pub const RECORDS_ROUTES: &[RouteSpec] = &[
    r(
        "POST",
        "/api/v1/clients/{id}/episodes/{episode}/submissions",
        Access::Action(Action::SubmitOwnMeasures, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/episodes/{episode}/assessments",
        Access::Action(Action::AdministerMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/episodes/{episode}/measure-schedules",
        Access::Action(Action::ReadMeasures, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/episodes/{episode}/measure-schedules",
        Access::Action(Action::WriteMeasures, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/episodes/{episode}/measure-schedules/{instrument}/remove",
        Access::Action(Action::WriteMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/measures",
        Access::Action(Action::ReadMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/measures/fhir",
        Access::Action(Action::ReadMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/risk-flags",
        Access::Action(Action::ReadClinicalRecord, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/risk-flags/{flag}/close",
        Access::Action(Action::WriteClinicalRecord, RiskFlagInPath),
    ),
    r(
        "GET",
        "/api/v1/me/tasks",
        Access::Action(Action::ReadClinicalRecord, EachClient),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/formulations",
        Access::Action(Action::ReadFormulation, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/formulations",
        Access::Action(Action::WriteFormulation, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/plans",
        Access::Action(Action::ReadPlan, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/plans",
        Access::Action(Action::WritePlan, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/plans/diff",
        Access::Action(Action::ReadPlan, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/plans/{version}",
        Access::Action(Action::ReadPlan, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/plans/{version}/decisions",
        Access::Action(Action::WritePlan, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/session-review",
        Access::Action(Action::WritePlan, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/measures",
        Access::Action(Action::ReadMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/formulation",
        Access::Action(Action::ReadFormulation, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/plan",
        Access::Action(Action::ReadPlan, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/review",
        // Session reviews are the clinician's working material: read like the formulation.
        Access::Action(Action::ReadFormulation, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}/risk",
        Access::Action(Action::ReadClinicalRecord, ClientInPath),
    ),
    r(
        "GET",
        "/me/progress",
        Access::Action(Action::ReadMeasures, OwnClientRecord),
    ),
    r(
        "GET",
        "/me/plan",
        Access::Action(Action::ReadPlan, OwnClientRecord),
    ),
    r("GET", "/static/records.css", Access::Public),
];

/// Handlers of [`RECORDS_ROUTES`].
pub fn handler(spec: &RouteSpec) -> Option<MethodRouter<AppState>> {
    use crate::records_pages as pages;
    Some(match (spec.method, spec.path) {
        ("POST", "/api/v1/clients/{id}/episodes/{episode}/submissions") => post(submit),
        ("POST", "/api/v1/clients/{id}/episodes/{episode}/assessments") => post(administer),
        ("GET", "/api/v1/clients/{id}/episodes/{episode}/measure-schedules") => {
            get(measure_schedules)
        }
        ("POST", "/api/v1/clients/{id}/episodes/{episode}/measure-schedules") => {
            post(assign_measure_schedule)
        }
        (
            "POST",
            "/api/v1/clients/{id}/episodes/{episode}/measure-schedules/{instrument}/remove",
        ) => post(remove_measure_schedule),
        ("GET", "/api/v1/clients/{id}/measures") => get(measures),
        ("GET", "/api/v1/clients/{id}/measures/fhir") => get(measures_fhir),
        ("GET", "/api/v1/clients/{id}/risk-flags") => get(risk_flags),
        ("POST", "/api/v1/risk-flags/{flag}/close") => post(close_flag),
        ("GET", "/api/v1/me/tasks") => get(my_tasks),
        ("GET", "/api/v1/clients/{id}/formulations") => get(formulations),
        ("POST", "/api/v1/clients/{id}/formulations") => post(new_formulation),
        ("GET", "/api/v1/clients/{id}/plans") => get(plans),
        ("POST", "/api/v1/clients/{id}/plans") => post(new_plan),
        ("GET", "/api/v1/clients/{id}/plans/diff") => get(plan_diff),
        ("GET", "/api/v1/clients/{id}/plans/{version}") => get(plan_one),
        ("POST", "/api/v1/clients/{id}/plans/{version}/decisions") => post(decide),
        ("POST", "/api/v1/clients/{id}/session-review") => post(session_review),
        ("GET", "/clients/{id}/measures") => get(pages::measures_page),
        ("GET", "/clients/{id}/formulation") => get(pages::formulation_page),
        ("GET", "/clients/{id}/plan") => get(pages::plan_page),
        ("GET", "/clients/{id}/review") => get(pages::review_page),
        ("GET", "/clients/{id}/risk") => get(pages::risk_page),
        ("GET", "/me/progress") => get(pages::my_progress),
        ("GET", "/me/plan") => get(pages::my_plan),
        ("GET", "/static/records.css") => get(pages::stylesheet),
        _ => return None,
    })
}

// ------------------------------------------------------------------ shared

pub(crate) fn client_of(a: &Authorized) -> Result<ClientId, ApiError> {
    a.client_id.ok_or_else(ApiError::not_found)
}

pub(crate) fn knowledge(state: &AppState) -> Result<&Knowledge, ApiError> {
    state
        .knowledge
        .as_deref()
        .ok_or_else(|| ApiError::unavailable("The knowledge base is not loaded."))
}

/// Everything stored about a client's measures, in one read.
pub(crate) struct MeasureData {
    /// The current episode (most recently opened), if any.
    pub episode: Option<tapestry_domain::episode::Episode>,
    /// Submissions of the current episode in session order.
    pub submissions: Vec<Submission>,
    pub flags: Vec<StoredRiskFlag>,
    pub states: Vec<tapestry_domain::ingest::EpisodeMeasure>,
}

pub(crate) async fn measure_data(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
) -> Result<MeasureData, ApiError> {
    let mut episodes = state.store.episodes_for_client(practice, client).await?;
    episodes.sort_by_key(|e| e.opened_at);
    let episode = episodes.pop();
    let mut flags = Vec::new();
    for e in state.store.episodes_for_client(practice, client).await? {
        flags.extend(state.store.risk_flags_for_episode(practice, e.id).await?);
    }
    let (submissions, states) = match &episode {
        Some(e) => {
            let mut s = state.store.submissions_for_episode(practice, e.id).await?;
            s.sort_by(|a, b| {
                (a.session, a.submitted_at)
                    .partial_cmp(&(b.session, b.submitted_at))
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            (s, state.store.episode_measures(practice, e.id).await?)
        }
        None => (Vec::new(), Vec::new()),
    };
    Ok(MeasureData {
        episode,
        submissions,
        flags,
        states,
    })
}

/// Answers as the plan engine's scorer takes them (missing and "not applicable" = unanswered).
fn as_items(answers: &[Answer]) -> Vec<Option<u8>> {
    answers
        .iter()
        .map(|a| match a {
            Answer::Value(v) => u8::try_from(*v).ok(),
            Answer::Missing | Answer::NotApplicable => None,
        })
        .collect()
}

fn snapshot(registry: &InstrumentRegistry, s: &Submission) -> Option<MeasureSnapshot> {
    registry.score(&s.instrument, &as_items(&s.answers)).ok()
}

/// The plan engine's case: the latest formulation, the newest complete score
/// of each instrument as today's measures, and earlier sessions as history
/// (session n = the n-th administration; techniques from the session reviews
/// in order).
pub fn build_case(
    registry: &InstrumentRegistry,
    formulation: Formulation,
    submissions: &[Submission],
    reviewed_techniques: &[Vec<String>],
) -> Case {
    let mut by_session: BTreeMap<u32, BTreeMap<String, MeasureSnapshot>> = BTreeMap::new();
    for s in submissions {
        if let Some(snap) = snapshot(registry, s) {
            by_session
                .entry(s.session)
                .or_default()
                .insert(s.instrument.clone(), snap);
        }
    }
    let measures = by_session
        .iter()
        .next_back()
        .map(|(_, m)| m.clone())
        .unwrap_or_default();
    let last = by_session.keys().next_back().copied();
    let history: Vec<SessionRecord> = by_session
        .iter()
        .filter(|(n, _)| Some(**n) != last)
        .enumerate()
        .map(|(i, (n, m))| SessionRecord {
            session: *n,
            measures: m.clone(),
            techniques: reviewed_techniques.get(i).cloned().unwrap_or_default(),
            alliance: None,
            homework_completed: None,
            events: Vec::new(),
            risk: None,
        })
        .collect();
    Case {
        formulation,
        measures,
        history,
    }
}

// ------------------------------------------------------------------ measures

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmissionBody {
    pub instrument: String,
    /// One answer per item: a number, `null` for missing, `"na"` for not applicable.
    pub answers: Vec<serde_json::Value>,
}

#[derive(Serialize)]
pub struct SubmissionReceipt {
    pub submission_id: String,
    /// False when an earlier request with the same `Idempotency-Key` stored it.
    pub new: bool,
    pub instrument: String,
    pub total: Option<f64>,
    pub band: Option<String>,
    pub session: u32,
    pub reliable_change: Option<tapestry_domain::change::ReliableChange>,
    pub not_on_track: Option<bool>,
    pub risk_flags: Vec<String>,
    pub tasks: Vec<String>,
}

fn scoring_error(e: &ScoringError) -> ApiError {
    let field = match e {
        ScoringError::EmptyAnswer { item }
        | ScoringError::NotANumber { item, .. }
        | ScoringError::OutOfRange { item, .. }
        | ScoringError::NotApplicableNotAllowed { item, .. } => format!("answers[{item}]"),
        ScoringError::UnknownInstrument(_) => "instrument".into(),
        _ => "answers".into(),
    };
    ApiError::unprocessable(field, e.to_string())
}

/// Parses the JSON answers, naming the item (1-based) that is not a number.
fn parse_answers(values: &[serde_json::Value]) -> Result<Answers, ApiError> {
    if values.len() > 200 {
        return Err(ApiError::unprocessable(
            "answers",
            format!("{} answers is more than any instrument has", values.len()),
        ));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        let item = i + 1;
        let a = match v {
            serde_json::Value::Null => Answer::Missing,
            serde_json::Value::String(s) if s == "na" => Answer::NotApplicable,
            serde_json::Value::Number(n) => match n.as_i64().and_then(|x| i32::try_from(x).ok()) {
                Some(x) => Answer::Value(x),
                None => {
                    return Err(ApiError::unprocessable(
                        format!("answers[{item}]"),
                        format!("item {item}: `{n}` is not a whole number"),
                    ))
                }
            },
            other => {
                let text: String = other.to_string().chars().take(20).collect();
                return Err(ApiError::unprocessable(
                    format!("answers[{item}]"),
                    format!("item {item}: `{text}` is not a number, null or \"na\""),
                ));
            }
        };
        out.push(a);
    }
    Ok(Answers {
        values: out,
        sex: None,
    })
}

/// `POST /api/v1/clients/{id}/episodes/{episode}/submissions`: validates
/// and scores the answers, stores them with the episode's measure state and
/// any risk flag and clinician task in one transaction, and answers 201
/// with the score. `Idempotency-Key` makes a retry return the first result.
pub async fn submit(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, episode)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmissionBody>,
) -> Result<Response, ApiError> {
    record_answers(&state, &a, &episode, &headers, body, AdministeredBy::Client).await
}

/// `POST /api/v1/clients/{id}/episodes/{episode}/assessments`: the treating
/// clinician or the client's supervisor records a clinician-administered form
/// (the structured risk assessment) for the episode. The same pipeline as the
/// client's own submissions: validated and scored, stored with the episode's
/// measure state, and a high or imminent level raises a red risk flag and an
/// immediate clinician task in the same transaction. `Idempotency-Key` as for
/// submissions.
pub async fn administer(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, episode)): Path<(String, String)>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SubmissionBody>,
) -> Result<Response, ApiError> {
    record_answers(
        &state,
        &a,
        &episode,
        &headers,
        body,
        AdministeredBy::Clinician,
    )
    .await
}

/// The `Idempotency-Key` header: 1 to 200 visible ASCII characters, or none.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let k = v
        .to_str()
        .map_err(|_| ApiError::unprocessable("Idempotency-Key", "must be visible ASCII"))?;
    if k.is_empty() || k.len() > 200 {
        return Err(ApiError::unprocessable(
            "Idempotency-Key",
            "must be 1 to 200 characters",
        ));
    }
    Ok(Some(k.to_string()))
}

/// One set of answers through the submission pipeline. `by` says who answers on
/// this route: a client answers self-report forms only, a clinician records
/// clinician-administered forms only; the other kind is refused naming the
/// `instrument`, with nothing stored.
async fn record_answers(
    state: &AppState,
    a: &Authorized,
    episode: &str,
    headers: &HeaderMap,
    body: SubmissionBody,
    by: AdministeredBy,
) -> Result<Response, ApiError> {
    let client = client_of(a)?;
    let practice = a.caller.user.practice_id;
    let episode: EpisodeId = episode.parse().map_err(|_| ApiError::not_found())?;
    let name: String = body.instrument.chars().take(40).collect();
    let def = state.registry.get(body.instrument.trim()).ok_or_else(|| {
        ApiError::unprocessable("instrument", format!("`{name}` is not a known instrument"))
    })?;
    if def.administered_by != by {
        return Err(ApiError::unprocessable(
            "instrument",
            match by {
                AdministeredBy::Client => format!(
                    "`{name}` is administered by a clinician: record it under the episode's assessments"
                ),
                AdministeredBy::Clinician => format!(
                    "`{name}` is answered by the client: it is not a clinician-administered form"
                ),
            },
        ));
    }
    let answers = parse_answers(&body.answers)?;
    // Validate before anything is stored: an error names the item.
    let scored = score_answers(def, &answers).map_err(|e| scoring_error(&e))?;
    let request = IngestRequest {
        practice_id: practice,
        client_id: client,
        episode_id: episode,
        instrument: def.id.clone(),
        answers,
        idempotency_key: idempotency_key(headers)?,
        submitted_at: state.clock.now(),
    };
    let mut results = state
        .store
        .ingest(
            &state.registry,
            &tapestry_store::IngestSettings::default(),
            std::slice::from_ref(&request),
        )
        .await?;
    let receipt = match results.pop() {
        Some(Ok(r)) => r,
        Some(Err(IngestError::EpisodeNotFound)) => return Err(ApiError::not_found()),
        Some(Err(IngestError::IdempotencyConflict)) => {
            return Err(ApiError::conflict(
                "Idempotency-Key: already used for a different submission",
            ))
        }
        Some(Err(IngestError::Answers(e))) => return Err(scoring_error(&e)),
        Some(Err(e)) => return Err(ApiError::unprocessable("answers", e.to_string())),
        None => return Err(ApiError::internal()),
    };
    // A risk answer from a client on the waitlist also alerts the intake
    // team and opens their task at once (docs/matching.md §6).
    if receipt.new && !receipt.flags.is_empty() {
        crate::matching::escalate_waitlist_risk(
            &*state.store,
            practice,
            client,
            episode,
            state.clock.now(),
        )
        .await?;
    }
    let status = if receipt.new {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(SubmissionReceipt {
            submission_id: receipt.submission_id.to_string(),
            new: receipt.new,
            instrument: def.id.clone(),
            total: receipt.total,
            band: scored.band,
            session: receipt.session,
            reliable_change: receipt.reliable_change,
            not_on_track: receipt.track.map(|t| t.not_on_track),
            risk_flags: receipt.flags.iter().map(|f| f.to_string()).collect(),
            tasks: receipt.tasks.iter().map(|t| t.to_string()).collect(),
        }),
    )
        .into_response())
}

// ------------------------------------------------------------------ measure schedules

/// The episode in the path, if it is one of the client's (404 otherwise: another
/// client's episode is as invisible as a missing one).
async fn client_episode(
    state: &AppState,
    a: &Authorized,
    episode: &str,
) -> Result<tapestry_domain::episode::Episode, ApiError> {
    let client = client_of(a)?;
    let practice = a.caller.user.practice_id;
    let id: EpisodeId = episode.parse().map_err(|_| ApiError::not_found())?;
    state
        .store
        .episode(practice, id)
        .await?
        .filter(|e| e.client_id == client)
        .ok_or_else(ApiError::not_found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleBody {
    pub instrument: String,
    /// `before_every_session`, `every_n_days` or `intake_and_discharge`.
    pub rule: String,
    /// For `every_n_days`: 1 to 366.
    #[serde(default)]
    pub every_days: Option<i64>,
}

#[derive(Serialize)]
pub struct ScheduleView {
    pub id: String,
    pub episode_id: String,
    pub instrument: String,
    pub rule: &'static str,
    pub every_days: Option<u32>,
    pub created_at: DateTime<Utc>,
}

impl From<&MeasureSchedule> for ScheduleView {
    fn from(s: &MeasureSchedule) -> Self {
        ScheduleView {
            id: s.id.to_string(),
            episode_id: s.episode_id.to_string(),
            instrument: s.instrument.clone(),
            rule: s.rule.as_str(),
            every_days: s.rule.days(),
            created_at: s.created_at,
        }
    }
}

/// `GET …/episodes/{episode}/measure-schedules`: the instruments assigned to the
/// episode and their rules, by instrument.
pub async fn measure_schedules(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, episode)): Path<(String, String)>,
) -> Result<Json<Vec<ScheduleView>>, ApiError> {
    let episode = client_episode(&state, &a, &episode).await?;
    let schedules = state
        .store
        .measure_schedules(episode.practice_id, episode.id)
        .await?;
    Ok(Json(schedules.iter().map(ScheduleView::from).collect()))
}

/// `POST …/episodes/{episode}/measure-schedules`: assigns an instrument to the
/// episode (re-assigning replaces its rule). Errors name the field; nothing is
/// stored then.
pub async fn assign_measure_schedule(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, episode)): Path<(String, String)>,
    ApiJson(body): ApiJson<ScheduleBody>,
) -> Result<Response, ApiError> {
    let episode = client_episode(&state, &a, &episode).await?;
    let def = state.registry.get(body.instrument.trim()).ok_or_else(|| {
        ApiError::unprocessable(
            "instrument",
            ScheduleError::UnknownInstrument(body.instrument.clone()).to_string(),
        )
    })?;
    let days = match body.every_days {
        None => None,
        Some(d) => Some(u32::try_from(d).map_err(|_| {
            ApiError::unprocessable("every_days", format!("{d} is not between 1 and 366"))
        })?),
    };
    if body.rule != "every_n_days" && days.is_some() {
        return Err(ApiError::unprocessable(
            "every_days",
            format!("only for the every_n_days rule, not `{}`", body.rule),
        ));
    }
    let rule = ScheduleRule::parse(body.rule.trim(), days).map_err(|e| {
        let field = match e {
            ScheduleError::Days(_) => "every_days",
            ScheduleError::UnknownRule(_) => "rule",
            ScheduleError::UnknownInstrument(_) => "instrument",
        };
        ApiError::unprocessable(field, e.to_string())
    })?;
    let schedule = MeasureSchedule::new(
        episode.practice_id,
        episode.id,
        &def.id,
        rule,
        state.clock.now(),
    );
    state.store.set_measure_schedule(&schedule).await?;
    Ok((StatusCode::CREATED, Json(ScheduleView::from(&schedule))).into_response())
}

/// `POST …/episodes/{episode}/measure-schedules/{instrument}/remove`: the
/// instrument is no longer asked for in this episode (its answers stay). 404
/// when it was not assigned.
pub async fn remove_measure_schedule(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, episode, instrument)): Path<(String, String, String)>,
    ApiJson(crate::auth::Empty {}): ApiJson<crate::auth::Empty>,
) -> Result<StatusCode, ApiError> {
    let episode = client_episode(&state, &a, &episode).await?;
    state
        .store
        .remove_measure_schedule(episode.practice_id, episode.id, &instrument)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Clone)]
pub struct ScorePoint {
    pub submission_id: String,
    pub session: u32,
    pub submitted_at: DateTime<Utc>,
    pub total: Option<f64>,
    pub band: Option<String>,
    pub caseness: Option<bool>,
    /// A risk flag was raised by this response.
    pub risk: bool,
}

#[derive(Serialize, Clone)]
pub struct InstrumentMeasures {
    pub instrument: String,
    pub name: String,
    pub higher_is_better: bool,
    pub points: Vec<ScorePoint>,
    pub latest: Option<ScorePoint>,
    /// Reliable and clinically significant change, sudden gains and the
    /// rational not-on-track verdict over the complete totals.
    pub change: Option<ChangeReport>,
    /// The pipeline's latest on-track verdict (may use the practice's curve).
    pub not_on_track: Option<bool>,
    pub track_reason: Option<String>,
    /// Episodes behind the expected-recovery curve, when one was used.
    pub curve_n: Option<u32>,
}

#[derive(Serialize)]
pub struct MeasuresView {
    pub episode_id: Option<String>,
    pub instruments: Vec<InstrumentMeasures>,
}

pub(crate) fn measures_view(state: &AppState, data: &MeasureData) -> MeasuresView {
    let mut ids: Vec<&str> = data
        .submissions
        .iter()
        .map(|s| s.instrument.as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut instruments = Vec::new();
    for id in ids {
        let Some(def) = state.registry.get(id) else {
            continue;
        };
        let points: Vec<ScorePoint> = data
            .submissions
            .iter()
            .filter(|s| s.instrument == id)
            .map(|s| {
                let scored = score_answers(
                    def,
                    &Answers {
                        values: s.answers.clone(),
                        sex: None,
                    },
                )
                .ok();
                ScorePoint {
                    submission_id: s.id.to_string(),
                    session: s.session,
                    submitted_at: s.submitted_at,
                    total: s.total,
                    band: scored.as_ref().and_then(|x| x.band.clone()),
                    caseness: scored.as_ref().and_then(|x| x.caseness),
                    risk: data.flags.iter().any(|f| f.submission_id == s.id),
                }
            })
            .collect();
        let totals: Vec<String> = points
            .iter()
            .filter_map(|p| p.total)
            .map(|t| t.to_string())
            .collect();
        let change = if totals.is_empty() {
            None
        } else {
            change_command(&state.registry, id, &totals.join(",")).ok()
        };
        let track = data
            .states
            .iter()
            .find(|m| m.instrument == id)
            .and_then(|m| m.track.clone());
        instruments.push(InstrumentMeasures {
            instrument: def.id.clone(),
            name: def.title.clone(),
            higher_is_better: def.higher_is_better,
            latest: points.last().cloned(),
            points,
            change,
            not_on_track: track.as_ref().map(|t| t.not_on_track),
            track_reason: track.as_ref().map(|t| t.reason.clone()),
            curve_n: track.as_ref().and_then(|t| t.curve_n),
        });
    }
    MeasuresView {
        episode_id: data.episode.as_ref().map(|e| e.id.to_string()),
        instruments,
    }
}

/// `GET /api/v1/clients/{id}/measures`.
pub async fn measures(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<MeasuresView>, ApiError> {
    let client = client_of(&a)?;
    let data = measure_data(&state, a.caller.user.practice_id, client).await?;
    Ok(Json(measures_view(&state, &data)))
}

/// `GET /api/v1/clients/{id}/measures/fhir`: a FHIR R4 collection Bundle of
/// QuestionnaireResponse and Observation resources.
pub async fn measures_fhir(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Response, ApiError> {
    use tapestry_domain::fhir::{observations, questionnaire_response, FhirContext};
    let client = client_of(&a)?;
    let data = measure_data(&state, a.caller.user.practice_id, client).await?;
    let subject = format!("Patient/{client}");
    let mut entries = Vec::new();
    for s in &data.submissions {
        let Some(def) = state.registry.get(&s.instrument) else {
            continue;
        };
        let answers = Answers {
            values: s.answers.clone(),
            sex: None,
        };
        let Ok(scored) = score_answers(def, &answers) else {
            continue;
        };
        let id = s.id.to_string();
        let authored = s.submitted_at.to_rfc3339();
        let ctx = FhirContext {
            response_id: &id,
            subject: &subject,
            authored: &authored,
        };
        entries.push(serde_json::json!({
            "resource": questionnaire_response(def, &answers, &scored, &ctx)
        }));
        for o in observations(def, &scored, &ctx) {
            entries.push(serde_json::json!({ "resource": o }));
        }
    }
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "collection",
        "total": entries.len(),
        "entry": entries,
    });
    let mut r = Json(bundle).into_response();
    r.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static("application/fhir+json"),
    );
    Ok(r)
}

// ------------------------------------------------------------------ risk

#[derive(Serialize, Clone)]
pub struct FlagView {
    pub id: String,
    pub instrument: String,
    pub item: Option<u16>,
    pub value: Option<i32>,
    pub level: Option<String>,
    pub colour: &'static str,
    pub rule: String,
    pub action: String,
    pub raised_at: DateTime<Utc>,
    pub open: bool,
    pub closed_at: Option<DateTime<Utc>>,
    pub closing_note: Option<String>,
}

pub(crate) fn colour(c: RiskColour) -> &'static str {
    match c {
        RiskColour::Red => "red",
        RiskColour::Amber => "amber",
    }
}

pub(crate) fn flag_view(f: &StoredRiskFlag) -> FlagView {
    let s = &f.flag.signal;
    let (instrument, item, value) = s.source.parts();
    let instrument = instrument.to_string();
    FlagView {
        id: f.id.to_string(),
        instrument,
        item,
        value,
        level: s.level.map(|l| l.as_str().to_string()),
        colour: colour(s.colour),
        rule: s.rule.clone(),
        action: s.action.clone(),
        raised_at: f.flag.raised_at,
        open: f.flag.closure.is_none(),
        closed_at: f.flag.closure.as_ref().map(|c| c.at),
        closing_note: f.flag.closure.as_ref().map(|c| c.note.clone()),
    }
}

/// Open flags first (red before amber, oldest first), then closed ones.
pub(crate) fn sorted_flags(flags: &[StoredRiskFlag]) -> Vec<FlagView> {
    let mut v: Vec<FlagView> = flags.iter().map(flag_view).collect();
    v.sort_by_key(|f| (!f.open, f.colour != "red", f.raised_at));
    v
}

/// `GET /api/v1/clients/{id}/risk-flags`.
pub async fn risk_flags(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<FlagView>>, ApiError> {
    let client = client_of(&a)?;
    let data = measure_data(&state, a.caller.user.practice_id, client).await?;
    Ok(Json(sorted_flags(&data.flags)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseBody {
    /// The clinician's note (required; stored with the closure).
    pub note: String,
}

/// `POST /api/v1/risk-flags/{flag}/close`: a clinician closes a flag with a
/// note; its open tasks are completed with it. Nothing else closes a flag.
pub async fn close_flag(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path(flag): Path<String>,
    ApiJson(body): ApiJson<CloseBody>,
) -> Result<Json<FlagView>, ApiError> {
    let practice = a.caller.user.practice_id;
    let flag: RecordId = flag.parse().map_err(|_| ApiError::not_found())?;
    if body.note.trim().is_empty() {
        return Err(ApiError::unprocessable(
            "note",
            "a clinician's note is required to close a risk flag",
        ));
    }
    if body.note.chars().count() > tapestry_store::MAX_REASON_CHARS {
        return Err(ApiError::unprocessable(
            "note",
            "longer than 4000 characters",
        ));
    }
    let now = state.clock.now();
    let closed = state
        .store
        .close_risk_flag(practice, flag, a.caller.user.id, body.note.trim(), now)
        .await
        .map_err(|e| match e {
            tapestry_store::StoreError::Conflict(m) if m.starts_with("note") => {
                ApiError::unprocessable("note", m)
            }
            tapestry_store::StoreError::NotFound(_) => ApiError::forbidden(),
            other => other.into(),
        })?;
    for t in state
        .store
        .tasks_for_episode(practice, closed.episode_id)
        .await?
    {
        if t.risk_flag_id == Some(flag) && t.completed_at.is_none() {
            state.store.complete_task(practice, t.id, now).await?;
        }
    }
    Ok(Json(flag_view(&closed)))
}

#[derive(Serialize)]
pub struct TaskView {
    pub id: String,
    pub kind: &'static str,
    pub client_id: String,
    pub client_name: String,
    pub risk_flag_id: Option<String>,
    pub title: String,
    pub detail: String,
    pub colour: &'static str,
    pub due_at: DateTime<Utc>,
    pub link: String,
}

/// `GET /api/v1/me/tasks`: the caller's open tasks (assigned to them, or
/// unassigned for a client they may open), risk reviews first, red before
/// amber, then by due time.
pub async fn my_tasks(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<TaskView>>, ApiError> {
    Ok(Json(tasks_for(&state, &caller).await?))
}

fn name_in(clients: &[tapestry_domain::client::Client], id: ClientId) -> String {
    clients
        .iter()
        .find(|c| c.id == id)
        .map(|c| c.display_name.clone())
        .unwrap_or_default()
}

pub(crate) async fn tasks_for(
    state: &AppState,
    caller: &Caller,
) -> Result<Vec<TaskView>, ApiError> {
    let practice = caller.user.practice_id;
    let clients = state.store.clients_in_practice(practice).await?;
    let mut out: Vec<TaskView> = Vec::new();
    for t in state.store.open_tasks(practice).await? {
        if t.assignee.is_some_and(|u| u != caller.user.id) {
            continue;
        }
        // Waitlist tasks belong to the intake team's practice-wide queue
        // (shown with their reasons on /practice/waitlist).
        if t.kind.is_intake_team() {
            if caller.user.role.is_practice_admin() {
                out.push(TaskView {
                    id: t.id.to_string(),
                    kind: t.kind.as_str(),
                    client_id: t.client_id.to_string(),
                    client_name: name_in(&clients, t.client_id),
                    risk_flag_id: None,
                    title: t.title,
                    detail: t.detail,
                    colour: colour(t.colour),
                    due_at: t.due_at,
                    link: "/practice/waitlist".to_string(),
                });
            }
            continue;
        }
        let allowed = authorize(
            &caller.actor,
            Action::ReadClinicalRecord,
            &Resource::client_record(practice, t.client_id),
        ) == Policy::Allow;
        if !allowed {
            continue;
        }
        out.push(TaskView {
            id: t.id.to_string(),
            kind: t.kind.as_str(),
            client_id: t.client_id.to_string(),
            client_name: name_in(&clients, t.client_id),
            risk_flag_id: t.risk_flag_id.map(|f| f.to_string()),
            title: t.title,
            detail: t.detail,
            colour: colour(t.colour),
            due_at: t.due_at,
            link: format!("/clients/{}/risk", t.client_id),
        });
    }
    out.sort_by_key(|t| (t.kind != "risk_review", t.colour != "red", t.due_at));
    Ok(out)
}

// ------------------------------------------------------------------ formulation

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormulationBody {
    pub formulation: serde_json::Value,
    /// Why this version was written; required for every version after the first.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Serialize)]
pub struct FormulationView {
    pub version: u32,
    pub reason: String,
    pub author: String,
    pub created_at: DateTime<Utc>,
    pub formulation: Formulation,
    /// Fields that differ from the previous version.
    pub changed: Vec<&'static str>,
}

/// Every key of `input` must exist in `known` (recursively for objects):
/// the body may not carry fields the formulation does not have.
fn unknown_field(input: &serde_json::Value, known: &serde_json::Value, at: &str) -> Option<String> {
    let (serde_json::Value::Object(i), serde_json::Value::Object(k)) = (input, known) else {
        return None;
    };
    for (key, value) in i {
        let path = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match k.get(key) {
            None => return Some(path),
            Some(inner) => {
                // Maps keyed by data (dimension ratings) are checked by validation.
                if key != "dimension_ratings" {
                    if let Some(p) = unknown_field(value, inner, &path) {
                        return Some(p);
                    }
                }
            }
        }
    }
    None
}

/// Parses and validates a formulation body; errors name the field.
pub(crate) fn parse_formulation(
    k: &Knowledge,
    value: &serde_json::Value,
) -> Result<Formulation, ApiError> {
    let f: Formulation = serde_json::from_value(value.clone()).map_err(|e| {
        let text = e.to_string();
        let field = text
            .split('`')
            .nth(1)
            .unwrap_or("formulation")
            .chars()
            .take(64)
            .collect::<String>();
        ApiError::unprocessable(
            format!("formulation.{field}"),
            format!(
                "is missing or of the wrong type ({})",
                text.chars().take(160).collect::<String>()
            ),
        )
    })?;
    let known = serde_json::to_value(&f).map_err(|_| ApiError::internal())?;
    if let Some(path) = unknown_field(value, &known, "") {
        return Err(ApiError::unprocessable(
            format!("formulation.{path}"),
            "unknown field",
        ));
    }
    f.validate(k)
        .map_err(|e| ApiError::unprocessable(format!("formulation.{}", e.field), e.problem))?;
    Ok(f)
}

/// `GET /api/v1/clients/{id}/formulations`: every version, oldest first.
pub async fn formulations(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<FormulationView>>, ApiError> {
    let client = client_of(&a)?;
    let list = state
        .store
        .formulations(a.caller.user.practice_id, client)
        .await?;
    let mut out: Vec<FormulationView> = Vec::new();
    let mut previous: Option<FormulationVersion> = None;
    for v in list {
        let this = FormulationVersion {
            version: v.version,
            formulation: v.formulation.clone(),
            reason: v.reason.clone(),
        };
        let changed = previous
            .as_ref()
            .map(|p| p.changed_fields(&this))
            .unwrap_or_default();
        out.push(FormulationView {
            version: v.version,
            reason: v.reason,
            author: v.author.to_string(),
            created_at: v.created_at,
            formulation: v.formulation,
            changed,
        });
        previous = Some(this);
    }
    Ok(Json(out))
}

/// `POST /api/v1/clients/{id}/formulations`: stores the next version.
pub async fn new_formulation(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<FormulationBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let k = knowledge(&state)?;
    let f = parse_formulation(k, &body.formulation)?;
    let latest = state.store.latest_formulation(practice, client).await?;
    let reason = match (&latest, body.reason.as_deref().map(str::trim)) {
        (_, Some(r)) if !r.is_empty() => r.to_string(),
        (None, _) => "initial formulation".to_string(),
        (Some(_), _) => {
            return Err(ApiError::unprocessable(
                "reason",
                "a revision needs a reason",
            ))
        }
    };
    if reason.chars().count() > tapestry_store::MAX_REASON_CHARS {
        return Err(ApiError::unprocessable(
            "reason",
            "longer than 4000 characters",
        ));
    }
    let stored = state
        .store
        .insert_formulation(&NewFormulation {
            practice_id: practice,
            client_id: client,
            formulation: &f,
            reason: &reason,
            author: a.caller.user.id,
            at: state.clock.now(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "version": stored.version,
            "reason": stored.reason,
            "created_at": stored.created_at,
        })),
    )
        .into_response())
}

// ------------------------------------------------------------------ plans

#[derive(Serialize)]
pub struct PlanSummary {
    pub version: u32,
    pub status: PlanStatus,
    pub phase: Phase,
    pub care_intensity: String,
    pub items: usize,
    pub origin: PlanOrigin,
    pub formulation_version: Option<u32>,
    pub engine_version: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

fn summary(p: &PlanRecord) -> PlanSummary {
    PlanSummary {
        version: p.version,
        status: p.status,
        phase: p.plan.phase,
        care_intensity: p.plan.care_intensity.clone(),
        items: p.plan.items.len(),
        origin: p.origin.clone(),
        formulation_version: p.formulation_version,
        engine_version: p.engine_version.clone(),
        created_by: p.created_by.to_string(),
        created_at: p.created_at,
    }
}

/// A client reading their own record sees accepted versions only (drafts
/// are the clinician's work in progress).
fn visible_to(a: &Authorized, p: &PlanRecord) -> bool {
    a.caller.actor.client_id.is_none() || p.status == PlanStatus::Accepted
}

/// `GET /api/v1/clients/{id}/plans`: versions, oldest first.
pub async fn plans(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<PlanSummary>>, ApiError> {
    let client = client_of(&a)?;
    let list = state
        .store
        .plan_versions(a.caller.user.practice_id, client)
        .await?;
    Ok(Json(
        list.iter()
            .filter(|p| visible_to(&a, p))
            .map(summary)
            .collect(),
    ))
}

/// `GET /api/v1/clients/{id}/plans/{version}`: one version in full.
pub async fn plan_one(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, version)): Path<(String, String)>,
) -> Result<Json<PlanRecord>, ApiError> {
    let client = client_of(&a)?;
    let version: u32 = version.parse().map_err(|_| ApiError::not_found())?;
    let p = state
        .store
        .plan_version(a.caller.user.practice_id, client, version)
        .await?
        .filter(|p| visible_to(&a, p))
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(p))
}

/// Techniques used in earlier reviewed sessions, oldest first.
async fn reviewed_techniques(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
) -> Result<Vec<Vec<String>>, ApiError> {
    Ok(state
        .store
        .session_reviews(practice, client)
        .await?
        .into_iter()
        .map(|r| r.content.techniques)
        .collect())
}

/// Generates a plan for the client from the latest formulation, measures and history.
pub(crate) async fn generate_plan(
    state: &AppState,
    practice: PracticeId,
    client: ClientId,
    by: tapestry_domain::ids::UserId,
) -> Result<PlanRecord, ApiError> {
    let k = knowledge(state)?;
    let f = state
        .store
        .latest_formulation(practice, client)
        .await?
        .ok_or_else(|| {
            ApiError::unprocessable(
                "formulation",
                "write a formulation first: the plan is generated from it",
            )
        })?;
    let data = measure_data(state, practice, client).await?;
    let techniques = reviewed_techniques(state, practice, client).await?;
    let case = build_case(
        &state.registry,
        f.formulation,
        &data.submissions,
        &techniques,
    );
    let plan = generate(k, &case);
    Ok(state
        .store
        .insert_plan_version(&NewPlanVersion {
            practice_id: practice,
            client_id: client,
            plan: &plan,
            formulation_version: Some(f.version),
            engine_version: ENGINE_VERSION,
            status: PlanStatus::Draft,
            origin: &PlanOrigin::Generated,
            created_by: by,
            at: state.clock.now(),
        })
        .await?)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerateBody {}

/// `POST /api/v1/clients/{id}/plans`: a new draft version from the latest
/// formulation, the stored measures and the session history.
pub async fn new_plan(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(_body): ApiJson<GenerateBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let p = generate_plan(&state, a.caller.user.practice_id, client, a.caller.user.id).await?;
    Ok((StatusCode::CREATED, Json(p)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `accept_plan`, or for one item `accept`, `edit`, `remove`, `add` or
    /// `override` (add a technique the engine excluded).
    pub action: String,
    #[serde(default)]
    pub code: Option<String>,
    /// What was changed (for `edit`).
    #[serde(default)]
    pub change: Option<String>,
    /// Phase for `add`/`override` (P0–P3).
    #[serde(default)]
    pub phase: Option<String>,
    pub reason: String,
}

fn plan_error(e: tapestry_domain::plan::PlanError) -> ApiError {
    use tapestry_domain::plan::PlanError as E;
    let field = match e {
        E::MissingReason => "reason",
        _ => "code",
    };
    let text = e.to_string();
    let problem = text
        .split_once(": ")
        .map(|(_, p)| p.to_string())
        .unwrap_or(text);
    ApiError::unprocessable(field, problem)
}

/// Turns a decision body into the next plan (and its status and origin).
pub(crate) fn apply_body(
    k: &Knowledge,
    current: &PlanRecord,
    body: &DecisionBody,
) -> Result<(Plan, PlanStatus, PlanOrigin), ApiError> {
    let reason = body.reason.trim();
    if reason.is_empty() {
        return Err(ApiError::unprocessable(
            "reason",
            "a reason is required for every clinician decision",
        ));
    }
    if reason.chars().count() > tapestry_store::MAX_REASON_CHARS {
        return Err(ApiError::unprocessable(
            "reason",
            "longer than 4000 characters",
        ));
    }
    let code = || {
        body.code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
            .ok_or_else(|| ApiError::unprocessable("code", "required for this action"))
    };
    let phase = || -> Result<Phase, ApiError> {
        let text = body.phase.as_deref().unwrap_or("");
        Phase::parse(text.trim())
            .ok_or_else(|| ApiError::unprocessable("phase", "must be one of P0, P1, P2, P3"))
    };
    let decision = match body.action.as_str() {
        "accept_plan" => {
            let mut plan = current.plan.clone();
            plan.version = current.version + 1;
            return Ok((
                plan,
                PlanStatus::Accepted,
                PlanOrigin::AcceptedPlan {
                    reason: reason.to_string(),
                },
            ));
        }
        "accept" => Decision::Accept { code: code()? },
        "edit" => Decision::Edit {
            code: code()?,
            change: body
                .change
                .as_deref()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .ok_or_else(|| ApiError::unprocessable("change", "say what was changed"))?,
        },
        "remove" => Decision::Remove { code: code()? },
        "add" => Decision::Add {
            code: code()?,
            phase: phase()?,
        },
        "override" => {
            let c = code()?;
            let excluded = k
                .technique(&c)
                .is_some_and(|t| current.plan.exclusion(&t.code).is_some());
            if !excluded {
                return Err(ApiError::unprocessable(
                    "code",
                    "override is for a technique the engine excluded; use add, edit or remove",
                ));
            }
            Decision::Add {
                code: c,
                phase: phase()?,
            }
        }
        other => {
            return Err(ApiError::unprocessable(
                "action",
                format!(
                    "`{}` is not one of accept_plan, accept, edit, remove, add, override",
                    other.chars().take(30).collect::<String>()
                ),
            ))
        }
    };
    let next = apply_decision(k, &current.plan, &decision, reason).map_err(plan_error)?;
    Ok((
        next,
        current.status,
        PlanOrigin::ItemDecision {
            decision,
            reason: reason.to_string(),
        },
    ))
}

/// `POST /api/v1/clients/{id}/plans/{version}/decisions`: a clinician
/// decision on the latest version makes the next version.
pub async fn decide(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, version)): Path<(String, String)>,
    ApiJson(body): ApiJson<DecisionBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let version: u32 = version.parse().map_err(|_| ApiError::not_found())?;
    let k = knowledge(&state)?;
    let current = state
        .store
        .plan_version(practice, client, version)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let latest = state.store.latest_plan(practice, client).await?;
    if let Some(l) = latest.filter(|l| l.version != version) {
        return Err(ApiError::conflict(format!(
            "version: plan version {version} is not the latest (version {} is); decide on the latest",
            l.version
        )));
    }
    let (next, status, origin) = apply_body(k, &current, &body)?;
    let stored = state
        .store
        .insert_plan_version(&NewPlanVersion {
            practice_id: practice,
            client_id: client,
            plan: &next,
            formulation_version: current.formulation_version,
            engine_version: &current.engine_version,
            status,
            origin: &origin,
            created_by: a.caller.user.id,
            at: state.clock.now(),
        })
        .await?;
    Ok((StatusCode::CREATED, Json(summary(&stored))).into_response())
}

#[derive(Deserialize)]
pub struct DiffQuery {
    pub from: Option<String>,
    pub to: Option<String>,
}

/// `GET /api/v1/clients/{id}/plans/diff?from=&to=`.
pub async fn plan_diff(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Query(q): Query<DiffQuery>,
) -> Result<Json<PlanDiff>, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let parse = |v: &Option<String>, name: &'static str| -> Result<u32, ApiError> {
        v.as_deref()
            .and_then(|s| s.trim().parse().ok())
            .ok_or_else(|| ApiError::unprocessable(name, "a plan version number is required"))
    };
    let (from, to) = (parse(&q.from, "from")?, parse(&q.to, "to")?);
    let load = |v: u32| {
        let state = state.clone();
        async move { state.store.plan_version(practice, client, v).await }
    };
    let a_plan = load(from).await?.filter(|p| visible_to(&a, p));
    let b_plan = load(to).await?.filter(|p| visible_to(&a, p));
    match (a_plan, b_plan) {
        (Some(x), Some(y)) => Ok(Json(diff(&x.plan, &y.plan))),
        _ => Err(ApiError::not_found()),
    }
}

// ------------------------------------------------------------------ session review

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBody {
    /// Technique codes (or ids) used in the session.
    #[serde(default)]
    pub techniques: Vec<String>,
}

#[derive(Serialize)]
pub struct ReviewAnswer {
    pub suggestions: Vec<Suggestion>,
    /// The clinical-support checklist, when the client is not on track.
    pub checklist: Option<Vec<ChecklistItem>>,
    pub not_on_track_reviews: u32,
    /// Risk rose: the plan went back to P0 and the rest is paused.
    pub risk_regression: bool,
    /// The plan version the review stored (only when risk sent it back to P0).
    pub plan_version: Option<u32>,
}

/// `POST /api/v1/clients/{id}/session-review`: the newest measures and the
/// techniques used → adaptation suggestions (A1–A12) and, when not on
/// track, the checklist; when risk rose, a new plan version back in P0.
pub async fn session_review(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<ReviewBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let k = knowledge(&state)?;
    if body.techniques.len() > 39 {
        return Err(ApiError::unprocessable(
            "techniques",
            "at most 39 techniques",
        ));
    }
    let mut codes = Vec::new();
    for (i, t) in body.techniques.iter().enumerate() {
        let tech = k.technique(t.trim()).ok_or_else(|| {
            ApiError::unprocessable(
                format!("techniques[{i}]"),
                format!(
                    "`{}` is not a technique",
                    t.chars().take(30).collect::<String>()
                ),
            )
        })?;
        if !codes.contains(&tech.code) {
            codes.push(tech.code.clone());
        }
    }
    let f = state
        .store
        .latest_formulation(practice, client)
        .await?
        .ok_or_else(|| ApiError::unprocessable("formulation", "write a formulation first"))?;
    let data = measure_data(&state, practice, client).await?;
    let mut techniques = reviewed_techniques(&state, practice, client).await?;
    let previous = state.store.latest_plan(practice, client).await?;
    let mut case = build_case(
        &state.registry,
        f.formulation,
        &data.submissions,
        &techniques,
    );
    // Today's techniques belong to the session being reviewed: the history's last one.
    if let Some(last) = case.history.last_mut() {
        if last.techniques.is_empty() {
            last.techniques = codes.clone();
        }
    }
    let review = tapestry_domain::adapt::review(k, &case, previous.as_ref().map(|p| &p.plan));
    let now = state.clock.now();
    let mut plan_version = None;
    if review.risk_regression {
        if let Some(prev) = &previous {
            let stored = state
                .store
                .insert_plan_version(&NewPlanVersion {
                    practice_id: practice,
                    client_id: client,
                    plan: &review.plan,
                    formulation_version: Some(f.version),
                    engine_version: ENGINE_VERSION,
                    status: PlanStatus::Draft,
                    origin: &PlanOrigin::SessionReview {
                        reason: "risk rose at this session: back to P0, the rest paused".into(),
                    },
                    created_by: a.caller.user.id,
                    at: now,
                })
                .await?;
            let _ = prev;
            plan_version = Some(stored.version);
        }
    }
    techniques.push(codes.clone());
    let content = ReviewContent {
        techniques: codes,
        review: review.clone(),
    };
    state
        .store
        .insert_session_review(&NewSessionReview {
            practice_id: practice,
            client_id: client,
            plan_version: plan_version.or(previous.as_ref().map(|p| p.version)),
            content: &content,
            created_by: a.caller.user.id,
            at: now,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(ReviewAnswer {
            suggestions: review.suggestions,
            checklist: review.checklist,
            not_on_track_reviews: review.not_on_track_reviews,
            risk_regression: review.risk_regression,
            plan_version,
        }),
    )
        .into_response())
}
