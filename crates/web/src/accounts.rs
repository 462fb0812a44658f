//! Accounts: invitations (owner invites staff, clinicians invite clients),
//! administrator-issued password-reset links, and API tokens. Links are
//! shown to the inviting person (delivery by e-mail is the notifications
//! module's job); the token travels in the URL fragment, so it never reaches
//! a server log.

use crate::auth::{Caller, Credential};
use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::access::Action;
use tapestry_domain::care::CareRole;
use tapestry_domain::identity::api_token::ApiToken;
use tapestry_domain::identity::invitation::{Invitation, InvitationError, Inviter, PasswordReset};
use tapestry_domain::identity::password::{self, PasswordContext, PasswordPolicy};
use tapestry_domain::identity::session::EndReason;
use tapestry_domain::identity::token::TokenHash;
use tapestry_domain::ids::UserId;
use tapestry_domain::user::{Role, User};

fn invitation_error(e: InvitationError) -> ApiError {
    match e {
        InvitationError::TokenMismatch
        | InvitationError::Expired
        | InvitationError::AlreadyUsed => ApiError::not_found(),
        InvitationError::BadEmail => ApiError::unprocessable("email", "is empty or malformed"),
        other => ApiError::unprocessable("role", other.to_string()),
    }
}

/// A link to hand to the invited person.
#[derive(Serialize)]
pub struct Link {
    /// Path with the one-time token in the fragment.
    pub link: String,
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaffInvitation {
    pub email: String,
    /// clinician, supervisor or practice_admin.
    pub role: Role,
}

fn inviter(caller: &Caller) -> Inviter {
    Inviter {
        user_id: caller.user.id,
        role: caller.user.role,
        practice_id: Some(caller.user.practice_id),
    }
}

/// `POST /api/v1/practice/invitations` (action `invite_staff`, owners).
pub async fn invite_staff(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<StaffInvitation>,
) -> Result<Response, ApiError> {
    let (inv, token) = Invitation::issue(
        &inviter(&caller),
        body.role,
        &body.email,
        None,
        None,
        state.clock.now(),
    )
    .map_err(invitation_error)?;
    state.store.insert_invitation(&inv).await?;
    Ok(created_link(
        &format!("/accept-invitation#{}", token.expose()),
        inv.expires_at,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientInvitation {
    pub email: String,
}

/// `POST /api/v1/clients/{id}/invitation` (action `invite_client`): a link
/// that makes a sign-in for this client record. Only the client's treating
/// clinician (or the owner) may issue it, and only once the record has no
/// account, so nobody can give themselves a login to someone's record.
pub async fn invite_client(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<ClientInvitation>,
) -> Result<Response, ApiError> {
    let client_id = a.client_id.ok_or_else(ApiError::not_found)?;
    let caller = &a.caller;
    if caller.actor.relationship_to(client_id) != Some(CareRole::Treating)
        && caller.user.role != Role::PracticeOwner
    {
        return Err(ApiError::forbidden());
    }
    let client = state
        .store
        .client(caller.user.practice_id, client_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if client.user_id.is_some() {
        return Err(ApiError::conflict("client: already has an account"));
    }
    let (inv, token) = Invitation::issue(
        &inviter(caller),
        Role::Client,
        &body.email,
        Some(client_id),
        None,
        state.clock.now(),
    )
    .map_err(invitation_error)?;
    state.store.insert_invitation(&inv).await?;
    Ok(created_link(
        &format!("/accept-invitation#{}", token.expose()),
        inv.expires_at,
    ))
}

fn created_link(link: &str, expires_at: DateTime<Utc>) -> Response {
    (
        StatusCode::CREATED,
        Json(Link {
            link: link.to_string(),
            expires_at,
        }),
    )
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptInvitation {
    pub token: String,
    pub display_name: String,
    pub password: String,
}

/// `POST /api/v1/invitations/accept`: redeems the link once and creates the
/// account; staff then sign in and enrol their second factor.
pub async fn accept_invitation(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<AcceptInvitation>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let hash = TokenHash::of(body.token.trim());
    let mut inv = state
        .store
        .invitation(&hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let accepted = inv
        .redeem(body.token.trim(), now)
        .map_err(invitation_error)?;
    let user = User::new(
        accepted.practice_id,
        &accepted.email,
        &body.display_name,
        accepted.role,
        now,
    )?;
    let checked = PasswordPolicy::embedded()
        .check(
            &body.password,
            &PasswordContext {
                email: Some(user.email.as_str()),
                name: Some(&user.display_name),
            },
        )
        .map_err(|e| ApiError::unprocessable("password", e.to_string()))?;
    let pw_hash = tokio::task::spawn_blocking(move || password::hash_password(&checked))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;
    // Single use: exactly one concurrent redemption gets past this line.
    state.store.redeem_invitation(&hash, now).await?;
    state.store.insert_user(&user, Some(&pw_hash)).await?;
    if let Some(client) = accepted.client_id {
        state
            .store
            .link_client_user(accepted.practice_id, client, user.id)
            .await?;
    }
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({"next": "/sign-in"})),
    )
        .into_response())
}

/// `POST /api/v1/practice/users/{id}/password-reset` (action
/// `manage_practice_users`): a one-time reset link for a person who forgot
/// their password, shown to the administrator to pass on.
pub async fn issue_reset(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(crate::auth::Empty {}): ApiJson<crate::auth::Empty>,
) -> Result<Response, ApiError> {
    let user_id: UserId = id.parse().map_err(|_| ApiError::not_found())?;
    let practice = caller.user.practice_id;
    state
        .store
        .user(practice, user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (reset, token) = PasswordReset::issue(user_id, state.clock.now());
    state.store.insert_password_reset(practice, &reset).await?;
    Ok(created_link(
        &format!("/reset-password#{}", token.expose()),
        reset.expires_at,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResetBody {
    pub token: String,
    pub new_password: String,
}

/// `POST /api/v1/password-reset`: sets a new password with a reset link and
/// ends every session of the account. It signs nobody in: the next sign-in
/// still needs the second factor (a reset never bypasses MFA).
pub async fn redeem_reset(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ResetBody>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let hash = TokenHash::of(body.token.trim());
    let (practice, mut reset) = state
        .store
        .password_reset(&hash)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let user_id = reset
        .redeem(body.token.trim(), now)
        .map_err(invitation_error)?;
    let user = state
        .store
        .user(practice, user_id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let checked = PasswordPolicy::embedded()
        .check(
            &body.new_password,
            &PasswordContext {
                email: Some(user.email.as_str()),
                name: Some(&user.display_name),
            },
        )
        .map_err(|e| ApiError::unprocessable("new_password", e.to_string()))?;
    let pw_hash = tokio::task::spawn_blocking(move || password::hash_password(&checked))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(|_| ApiError::internal())?;
    state.store.redeem_password_reset(&hash, now).await?;
    state
        .store
        .set_password_hash(practice, user.id, &pw_hash)
        .await?;
    state
        .store
        .end_user_sessions(user.id, EndReason::PasswordChanged, now)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewApiToken {
    pub name: String,
    pub scope: Vec<Action>,
    /// Lifetime in days (1–365).
    pub days: i64,
}

#[derive(Serialize)]
pub struct CreatedApiToken {
    /// Shown once; send as `Authorization: Bearer <token>`.
    pub token: String,
    /// Identifies the token for revocation.
    pub id: String,
    pub expires_at: DateTime<Utc>,
}

/// `POST /api/v1/me/api-tokens` (action `manage_own_profile`, browser
/// session only: a token cannot mint tokens).
pub async fn create_api_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<NewApiToken>,
) -> Result<Response, ApiError> {
    if !matches!(caller.credential, Credential::Session(_)) {
        return Err(ApiError::forbidden());
    }
    let (token, secret) = ApiToken::create(
        caller.user.id,
        Some(caller.user.practice_id),
        &body.name,
        body.scope,
        Duration::days(body.days),
        state.clock.now(),
    )
    .map_err(|e| ApiError::unprocessable("scope", e.to_string()))?;
    state.store.insert_api_token(&token).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiToken {
            token: secret.expose().to_string(),
            id: token.token_hash.to_hex(),
            expires_at: token.expires_at,
        }),
    )
        .into_response())
}

/// `POST /api/v1/me/api-tokens/{id}/revoke`.
pub async fn revoke_api_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    ApiJson(crate::auth::Empty {}): ApiJson<crate::auth::Empty>,
) -> Result<StatusCode, ApiError> {
    let hash = TokenHash::from_hex(&id).map_err(|_| ApiError::not_found())?;
    state
        .store
        .revoke_api_token(caller.user.id, &hash, state.clock.now())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
