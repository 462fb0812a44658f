//! Thin clinical and practice handlers. The guard in `routes.rs` has already
//! authorized the request and will audit it; handlers only load and shape
//! (explicit response DTOs, ids and content the action allows).

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::access::{authorize, open_break_glass, Action, Decision, Resource};
use tapestry_domain::identity::password::{self, PasswordContext, PasswordPolicy};
use tapestry_domain::identity::token::TokenHash;
use tapestry_domain::ids::{ClientId, UserId};
use tapestry_domain::practice::Practice;
use tapestry_domain::scoring::Answer;
use tapestry_domain::user::{Role, User};
use tapestry_store::security::{Alert, BreakGlassRecord};
use uuid::Uuid;

fn client_of(a: &Authorized) -> Result<ClientId, ApiError> {
    a.client_id.ok_or_else(ApiError::not_found)
}

#[derive(Serialize)]
pub struct ClientView {
    pub id: ClientId,
    pub display_name: String,
    pub date_of_birth: Option<chrono::NaiveDate>,
    pub jurisdiction: Option<String>,
}

async fn load_client(state: &AppState, a: &Authorized) -> Result<ClientView, ApiError> {
    let id = client_of(a)?;
    let c = state
        .store
        .client(a.caller.user.practice_id, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(ClientView {
        id: c.id,
        display_name: c.display_name,
        date_of_birth: c.date_of_birth,
        jurisdiction: c.jurisdiction,
    })
}

/// `GET /api/v1/clients/{id}`.
pub async fn client_record(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<ClientView>, ApiError> {
    Ok(Json(load_client(&state, &a).await?))
}

/// `GET /clients/{id}`: the client chart's overview (episode, phase, open
/// risk flags first, latest scores with change since intake); the other
/// sections are the records area's tabs.
pub async fn client_page(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Response {
    crate::records_pages::overview_page(&state, &a).await
}

#[derive(Serialize)]
pub struct EpisodeView {
    pub id: String,
    pub status: String,
    pub opened_at: DateTime<Utc>,
}

/// `GET /api/v1/clients/{id}/episodes`.
pub async fn episodes(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<EpisodeView>>, ApiError> {
    let id = client_of(&a)?;
    let list = state
        .store
        .episodes_for_client(a.caller.user.practice_id, id)
        .await?;
    Ok(Json(
        list.into_iter()
            .map(|e| EpisodeView {
                id: e.id.to_string(),
                status: e.status.as_str().to_string(),
                opened_at: e.opened_at,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct SubmissionView {
    pub id: String,
    pub instrument: String,
    pub total: Option<f64>,
    pub answers: Vec<Answer>,
    pub submitted_at: DateTime<Utc>,
}

/// `GET /api/v1/clients/{id}/submissions`: answers are opened from their
/// sealed form; a tampered one is an integrity error, never garbage.
pub async fn submissions(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<SubmissionView>>, ApiError> {
    let id = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let mut out = Vec::new();
    for e in state.store.episodes_for_client(practice, id).await? {
        for s in state.store.submissions_for_episode(practice, e.id).await? {
            out.push(SubmissionView {
                id: s.id.to_string(),
                instrument: s.instrument,
                total: s.total,
                answers: s.answers,
                submitted_at: s.submitted_at,
            });
        }
    }
    Ok(Json(out))
}

#[derive(Serialize)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    pub actor: Option<String>,
    /// Who that is, so a client can read their own ledger.
    pub actor_name: Option<String>,
    pub actor_role: Option<Role>,
    pub action: String,
    pub outcome: String,
}

pub(crate) async fn ledger(
    state: &AppState,
    a: &Authorized,
) -> Result<Json<Vec<AccessEntry>>, ApiError> {
    let id = client_of(a)?;
    let practice = a.caller.user.practice_id;
    let events = state
        .store
        .audit_for_object(practice, "client", id.as_uuid())
        .await?;
    let people = state.store.users_in_practice(practice).await?;
    let who = |u: Option<UserId>| people.iter().find(|p| Some(p.id) == u);
    Ok(Json(
        events
            .into_iter()
            .map(|e| AccessEntry {
                at: e.at,
                actor: e.actor.map(|u| u.to_string()),
                actor_name: who(e.actor).map(|p| p.display_name.clone()),
                actor_role: who(e.actor).map(|p| p.role),
                action: e.action,
                outcome: e.outcome.as_str().to_string(),
            })
            .collect(),
    ))
}

/// `GET /api/v1/clients/{id}/access-log`: who opened this record, when.
pub async fn record_access_log(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<AccessEntry>>, ApiError> {
    ledger(&state, &a).await
}

/// `GET /api/v1/me/access-log`: a client's view of who opened their record.
pub async fn own_access_log(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<Vec<AccessEntry>>, ApiError> {
    ledger(&state, &a).await
}

#[derive(Serialize)]
pub struct ClientListItem {
    pub id: ClientId,
    pub display_name: String,
}

/// `GET /api/v1/clients`: the clients this caller may see in the directory.
pub async fn my_clients(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<ClientListItem>>, ApiError> {
    let practice = caller.user.practice_id;
    let list = state.store.clients_in_practice(practice).await?;
    Ok(Json(
        list.into_iter()
            .filter(|c| {
                authorize(
                    &caller.actor,
                    Action::ReadClientDirectory,
                    &Resource::client_record(practice, c.id),
                ) == Decision::Allow
            })
            .map(|c| ClientListItem {
                id: c.id,
                display_name: c.display_name,
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct UserView {
    pub id: UserId,
    pub display_name: String,
    pub email: String,
    pub role: Role,
    pub status: String,
}

/// `GET /api/v1/practice/users`: accounts of the practice (admins).
pub async fn practice_users(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<UserView>>, ApiError> {
    let users = state
        .store
        .users_in_practice(caller.user.practice_id)
        .await?;
    Ok(Json(
        users
            .into_iter()
            .map(|u| UserView {
                id: u.id,
                display_name: u.display_name,
                email: u.email.as_str().to_string(),
                role: u.role,
                status: u.status.as_str().to_string(),
            })
            .collect(),
    ))
}

#[derive(Serialize)]
pub struct AlertView {
    pub kind: String,
    pub object_id: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/me/alerts`: content-free alerts (e.g. break-glass opened).
pub async fn my_alerts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<AlertView>>, ApiError> {
    let alerts = state
        .store
        .alerts_for(caller.user.practice_id, caller.user.id)
        .await?;
    Ok(Json(
        alerts
            .into_iter()
            .map(|a| AlertView {
                kind: a.kind,
                object_id: a.object_id,
                created_at: a.created_at,
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassBody {
    /// Why emergency access is needed (stored encrypted).
    pub reason: String,
}

#[derive(Serialize)]
pub struct BreakGlassOpened {
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/clients/{id}/break-glass`: opens 60 minutes of access with
/// a written reason and alerts the practice owners and treating clinicians.
pub async fn break_glass(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<BreakGlassBody>,
) -> Result<Response, ApiError> {
    let id = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let previous: Vec<DateTime<Utc>> = state
        .store
        .break_glass_for(practice, a.caller.user.id)
        .await?
        .into_iter()
        .map(|g| g.opened_at)
        .collect();
    let grant =
        open_break_glass(&a.caller.actor, practice, id, &body.reason, &previous).map_err(|e| {
            match e {
                tapestry_domain::access::BreakGlassError::RateLimited => {
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "throttled", e.to_string())
                }
                tapestry_domain::access::BreakGlassError::NotPermitted(_) => ApiError::forbidden(),
                other => ApiError::unprocessable("reason", other.to_string()),
            }
        })?;
    let record = BreakGlassRecord {
        id: Uuid::new_v4(),
        practice_id: practice,
        clinician: a.caller.user.id,
        client_id: id,
        opened_at: now,
        expires_at: grant.expires_at,
    };
    state
        .store
        .insert_break_glass(&record, body.reason.trim())
        .await?;
    let mut recipients: Vec<UserId> = state
        .store
        .users_in_practice(practice)
        .await?
        .into_iter()
        .filter(|u| u.role == Role::PracticeOwner)
        .map(|u| u.id)
        .collect();
    let rels = state.store.care_for_client(practice, id).await?;
    recipients.extend(crate::auth::treating(&rels, now));
    recipients.sort();
    recipients.dedup();
    for recipient in recipients {
        state
            .store
            .insert_alert(&Alert {
                id: Uuid::new_v4(),
                practice_id: practice,
                recipient,
                kind: "break_glass_opened".into(),
                object_id: Some(id.as_uuid()),
                created_at: now,
            })
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(BreakGlassOpened {
            expires_at: grant.expires_at,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootstrapBody {
    /// The one-time token printed by `tapestry serve`.
    pub token: String,
    pub practice_name: String,
    pub time_zone: String,
    pub owner_name: String,
    pub email: String,
    pub password: String,
}

/// `POST /api/v1/bootstrap`: with the one-time token, creates the first
/// practice and its owner; the owner then signs in and enrols a second factor.
pub async fn bootstrap(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<BootstrapBody>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let hash = TokenHash::of(body.token.trim());
    let practice = Practice::new(&body.practice_name, &body.time_zone, now)?;
    let owner = User::new(
        practice.id,
        &body.email,
        &body.owner_name,
        Role::PracticeOwner,
        now,
    )?;
    let checked = PasswordPolicy::embedded()
        .check(
            &body.password,
            &PasswordContext {
                email: Some(owner.email.as_str()),
                name: Some(&owner.display_name),
            },
        )
        .map_err(|e| ApiError::unprocessable("password", e.to_string()))?;
    let pw_hash = tokio::task::spawn_blocking(move || password::hash_password(&checked))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;
    state
        .store
        .complete_bootstrap(&hash.to_hex(), &practice, &owner, &pw_hash, now)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"next": "/sign-in"})),
    )
        .into_response())
}
