//! Who is asking: session cookies and bearer tokens become an
//! [`access::Actor`](tapestry_domain::access::Actor); sign-in, second factor,
//! re-authentication, sign-out and password change. Every decision about
//! credentials lives in `tapestry_domain::identity`; this module stores and
//! transports.

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::middleware::RequestId;
use crate::AppState;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tapestry_domain::access::{Actor, BreakGlassGrant, CareLink};
use tapestry_domain::care::CareRole;
use tapestry_domain::identity::password::{self, PasswordContext, PasswordPolicy};
use tapestry_domain::identity::session::{EndReason, Session, SessionState};
use tapestry_domain::identity::throttle::{AttemptCounters, ThrottleDecision};
use tapestry_domain::identity::token::{SecretToken, TokenHash};
use tapestry_domain::identity::totp;
use tapestry_domain::user::{AccountStatus, Role, User};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "tapestry_session";
/// The header `fetch` calls carry the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// How the caller proved who they are.
#[derive(Debug, Clone)]
pub enum Credential {
    /// A browser session (cookie); state-changing requests need CSRF.
    Session(Session),
    /// An integration's API token (no cookie, no CSRF, scope-limited).
    ApiToken(TokenHash),
}

/// An authenticated caller, as the guard hands it to handlers.
#[derive(Debug, Clone)]
pub struct Caller {
    pub actor: Actor,
    pub user: User,
    pub credential: Credential,
}

impl Caller {
    pub fn session(&self) -> Option<&Session> {
        match &self.credential {
            Credential::Session(s) => Some(s),
            Credential::ApiToken(_) => None,
        }
    }
}

/// The session token from the `Cookie` header, if well-formed.
pub fn session_token(headers: &HeaderMap) -> Option<SecretToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .and_then(|(_, value)| SecretToken::parse(value).ok())
}

/// `Set-Cookie` for a session token: HttpOnly, SameSite=Strict, Secure
/// whenever the site is reached over HTTPS.
pub fn session_cookie(state: &AppState, token: &SecretToken) -> HeaderValue {
    let secure = if state.tls { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict{secure}",
        token.expose()
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("tapestry_session=; Path=/; Max-Age=0"))
}

fn clearing_cookie(state: &AppState) -> HeaderValue {
    if state.tls {
        HeaderValue::from_static(
            "tapestry_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict; Secure",
        )
    } else {
        HeaderValue::from_static("tapestry_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
    }
}

/// Loads and refreshes the session named by the cookie; an expired session
/// is ended in the store. `Ok(None)` when there is no usable session.
pub async fn load_session(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Session>, ApiError> {
    let Some(token) = session_token(headers) else {
        return Ok(None);
    };
    let hash = token.hash();
    let Some(mut session) = state.store.session(&hash).await? else {
        return Ok(None);
    };
    let now = state.clock.now();
    if let SessionState::Expired(reason) = session.state(now) {
        state.store.end_session(&hash, reason, now).await?;
        return Ok(None);
    }
    if session.touch(now).is_err() {
        return Ok(None);
    }
    state.store.save_session(&hash, &session).await?;
    Ok(Some(session))
}

/// The actor for a user: care relationships, break-glass grants and (for
/// clients) their client record, loaded from the store.
pub async fn actor_for(
    state: &AppState,
    user: &User,
    build: impl FnOnce(
        Option<tapestry_domain::ids::ClientId>,
        Vec<CareLink>,
        Vec<BreakGlassGrant>,
    ) -> Actor,
) -> Result<Actor, ApiError> {
    let now = state.clock.now();
    let practice = user.practice_id;
    let mut links = Vec::new();
    let mut grants = Vec::new();
    let mut client_id = None;
    if user.role == Role::Client {
        client_id = state
            .store
            .client_for_user(practice, user.id)
            .await?
            .map(|c| c.id);
    } else if user.role.is_clinical() {
        for rel in state.store.care_for_clinician(practice, user.id).await? {
            if rel.ended_at.is_none_or(|end| end > now) {
                links.push(CareLink {
                    client_id: rel.client_id,
                    kind: rel.role,
                });
            }
        }
        for g in state.store.break_glass_for(practice, user.id).await? {
            if g.expires_at > now {
                grants.push(BreakGlassGrant::opened(g.client_id, g.opened_at));
            }
        }
    }
    Ok(build(client_id, links, grants))
}

/// The signed-in caller from a session cookie or bearer token, if any.
/// A malformed or unknown bearer token is 401 (never a fallback to cookies).
pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    let now = state.clock.now();
    if let Some(auth) = headers.get(header::AUTHORIZATION) {
        let token = auth
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| SecretToken::parse(t.trim()).ok())
            .ok_or_else(ApiError::unauthorized)?;
        let hash = token.hash();
        let stored = state
            .store
            .api_token(&hash)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if stored.revoked_at.is_some() || now >= stored.expires_at {
            return Err(ApiError::unauthorized());
        }
        let practice = stored.practice_id.ok_or_else(ApiError::unauthorized)?;
        let user = state
            .store
            .user(practice, stored.user_id)
            .await?
            .ok_or_else(ApiError::unauthorized)?;
        if user.status != AccountStatus::Active {
            return Err(ApiError::unauthorized());
        }
        let actor = actor_for(state, &user, |client, links, grants| {
            let mut a = Actor::staff(user.id, user.practice_id, user.role, now);
            a.client_id = if user.role == Role::Client {
                client
            } else {
                None
            };
            a.relationships = links;
            a.break_glass = grants;
            // The token was created in an MFA-completed session; it never
            // counts as a fresh credential (no re-auth actions).
            a.mfa_satisfied = true;
            a.mfa_enrolled = true;
            a
        })
        .await?;
        return Ok(Some(Caller {
            actor,
            user,
            credential: Credential::ApiToken(hash),
        }));
    }
    let Some(session) = load_session(state, headers).await? else {
        return Ok(None);
    };
    let Some(practice) = session.practice_id else {
        return Ok(None);
    };
    let Some(user) = state.store.user(practice, session.user_id).await? else {
        return Ok(None);
    };
    if user.status != AccountStatus::Active {
        state
            .store
            .end_session(&session.token_hash, EndReason::AccountDisabled, now)
            .await?;
        return Ok(None);
    }
    let actor = actor_for(state, &user, |client, links, grants| {
        session.actor(client, links, grants, false, now)
    })
    .await?;
    Ok(Some(Caller {
        actor,
        user,
        credential: Credential::Session(session),
    }))
}

/// CSRF check for a cookie-authenticated state-changing request.
pub fn check_csrf(
    state: &AppState,
    session: &Session,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let presented = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    state
        .csrf
        .verify(&session.token_hash, presented)
        .map_err(|_| ApiError::new(StatusCode::FORBIDDEN, "csrf", "The form has expired or did not come from this site. Reload the page and try again."))
}

// ------------------------------------------------------------------ sign-in

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignInBody {
    pub email: String,
    pub password: String,
}

/// What a successful sign-in (or second-factor step) answers.
#[derive(Serialize)]
pub struct SignedIn {
    /// The session must complete the second factor before anything else.
    pub mfa_required: bool,
    /// The account has no second factor yet (staff must enrol one now).
    pub mfa_enrolment_required: bool,
    /// Send this in `X-CSRF-Token` with every state-changing request.
    pub csrf_token: String,
    /// The page of the next step: enrolment, the second factor, or home.
    pub next: &'static str,
}

fn counter_key(kind: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for p in parts {
        h.update([0u8]);
        h.update(p.as_bytes());
    }
    format!("{kind}:{:x}", h.finalize())
}

fn client_address(req_headers: &HeaderMap, state: &AppState) -> String {
    // Behind a proxy the last hop it appended; otherwise one shared bucket
    // per server (the connection address is not passed to handlers).
    if state.behind_proxy {
        if let Some(v) = req_headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
        {
            if let Some(last) = v.rsplit(',').next() {
                return last.trim().chars().take(64).collect();
            }
        }
    }
    "direct".to_string()
}

/// Audits an authentication event (sign-in, second factor, re-auth): the
/// account as the object, no content (G13: failed logins and MFA failures).
async fn audit_auth(
    state: &AppState,
    user: Option<&User>,
    action: &str,
    allowed: bool,
    request_id: &RequestId,
) -> Result<(), ApiError> {
    use tapestry_store::audit_chain::{NewAuditEvent, Outcome};
    state
        .store
        .append_audit(NewAuditEvent {
            actor: user.map(|u| u.id),
            practice_id: user.map(|u| u.practice_id),
            object_type: "account".into(),
            object_id: user.map(|u| u.id.as_uuid()),
            action: action.into(),
            outcome: if allowed {
                Outcome::Allowed
            } else {
                Outcome::Denied
            },
            at: state.clock.now(),
            request_id: request_id.0.clone(),
        })
        .await?;
    Ok(())
}

fn wrong_credentials() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "sign_in_failed",
        "The e-mail address or password is not right.",
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::internal())
}

/// `POST /api/v1/session`: e-mail and password. Unknown e-mail and wrong
/// password get the same answer after the same Argon2 work; repeated
/// failures are slowed (429 + Retry-After) without locking the account.
pub async fn sign_in(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<SignInBody>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let rid = request_id.map(|r| r.0).unwrap_or(RequestId(String::new()));
    let email = body.email.trim().to_lowercase();
    if email.len() > 254 || body.password.chars().count() > 1024 {
        audit_auth(&state, None, "sign_in", false, &rid).await?;
        return Err(wrong_credentials());
    }
    let ip = client_address(&headers, &state);
    let keys = [
        counter_key("acct_ip", &[&email, &ip]),
        counter_key("acct", &[&email]),
        counter_key("ip", &[&ip]),
    ];
    let mut counters = AttemptCounters {
        account_and_ip: state.store.throttle_counter(&keys[0]).await?,
        account: state.store.throttle_counter(&keys[1]).await?,
        ip: state.store.throttle_counter(&keys[2]).await?,
    };
    if let ThrottleDecision::RetryAfter(wait) = state.throttle.check(&counters, now) {
        audit_auth(&state, None, "sign_in_throttled", false, &rid).await?;
        let mut r = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "throttled",
            "Too many attempts. Wait a little and try again.",
        )
        .into_response();
        if let Ok(v) = HeaderValue::from_str(&wait.num_seconds().max(1).to_string()) {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return Ok(r);
    }
    let creds = state.store.credentials_by_email(&email).await?;
    let presented = body.password.clone();
    let ok = match creds.as_ref().and_then(|c| c.password_hash.clone()) {
        Some(stored) => {
            blocking(move || password::verify_password(&presented, &stored).unwrap_or(false))
                .await?
        }
        None => blocking(move || password::verify_unknown_user(&presented)).await?,
    };
    let user = match creds {
        Some(c) if ok && c.user.status == AccountStatus::Active => c.user,
        other => {
            audit_auth(
                &state,
                other.as_ref().map(|c| &c.user),
                "sign_in",
                false,
                &rid,
            )
            .await?;
            state.throttle.record_failure(&mut counters, now);
            state
                .store
                .save_throttle_counter(&keys[0], &counters.account_and_ip)
                .await?;
            state
                .store
                .save_throttle_counter(&keys[1], &counters.account)
                .await?;
            state
                .store
                .save_throttle_counter(&keys[2], &counters.ip)
                .await?;
            return Err(wrong_credentials());
        }
    };
    state.throttle.record_success(&mut counters);
    state
        .store
        .save_throttle_counter(&keys[0], &counters.account_and_ip)
        .await?;
    state
        .store
        .save_throttle_counter(&keys[1], &counters.account)
        .await?;
    let mfa_enrolled = state
        .store
        .mfa(user.practice_id, user.id)
        .await?
        .is_some_and(|m| m.confirmed_at.is_some());
    let (session, token) = Session::start(
        user.id,
        Some(user.practice_id),
        user.role,
        mfa_enrolled,
        &state.sessions,
        now,
    );
    state.store.insert_session(&session).await?;
    audit_auth(&state, Some(&user), "sign_in", true, &rid).await?;
    Ok(signed_in_response(&state, &session, &token))
}

fn signed_in_response(state: &AppState, session: &Session, token: &SecretToken) -> Response {
    let mfa_required = !session.mfa_satisfied();
    let mfa_enrolment_required = !session.mfa_enrolled && session.role.is_staff();
    let body = SignedIn {
        mfa_required,
        mfa_enrolment_required,
        csrf_token: state.csrf.token_for(&session.token_hash),
        next: if mfa_enrolment_required {
            "/mfa?step=enrol"
        } else if mfa_required {
            "/mfa"
        } else {
            "/me"
        },
    };
    let mut r = Json(body).into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(state, token));
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeBody {
    /// A 6-digit authenticator code.
    #[serde(default)]
    pub code: Option<String>,
    /// Or one of the recovery codes.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// `POST /api/v1/session/mfa`: complete the second factor of a session
/// whose account has one. The token rotates (no session fixation).
pub async fn verify_mfa(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let rid = request_id.map(|r| r.0).unwrap_or(RequestId(String::new()));
    let mut session = load_session(&state, &headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    check_csrf(&state, &session, &headers)?;
    let practice = session.practice_id.ok_or_else(ApiError::unauthorized)?;
    let mfa = state
        .store
        .mfa(practice, session.user_id)
        .await?
        .filter(|m| m.confirmed_at.is_some())
        .ok_or_else(|| ApiError::conflict("second factor: none enrolled; enrol one first"))?;
    if body.code.is_some() == body.recovery_code.is_some() {
        return Err(ApiError::unprocessable(
            "code",
            "send either code or recovery_code",
        ));
    }
    let accepted = check_second_factor(&state, practice, session.user_id, &body, &mfa, now).await;
    audit_auth(&state, Some(&caller.user), "mfa_verify", accepted, &rid).await?;
    if !accepted {
        return Err(mfa_failed());
    }
    let previous = session.token_hash;
    let token = session.complete_mfa(now);
    state.store.save_session(&previous, &session).await?;
    Ok(signed_in_response(&state, &session, &token))
}

fn mfa_failed() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "mfa_failed",
        "That code is not right or was already used.",
    )
}

/// Checks a TOTP code or a recovery code and records it as used (each works
/// once, also under concurrency).
async fn check_second_factor(
    state: &AppState,
    practice: tapestry_domain::ids::PracticeId,
    user: tapestry_domain::ids::UserId,
    body: &CodeBody,
    mfa: &tapestry_store::security::StoredMfa,
    now: DateTime<Utc>,
) -> bool {
    match (body.code.as_deref(), body.recovery_code.as_deref()) {
        (Some(code), None) => match totp::verify(&mfa.secret, code, now, mfa.last_used_step) {
            Ok(step) => state
                .store
                .accept_totp_step(practice, user, step, now)
                .await
                .is_ok(),
            Err(_) => false,
        },
        (None, Some(code)) => {
            let Ok(mut stored) = state.store.recovery_codes(practice, user).await else {
                return false;
            };
            match totp::redeem_recovery_code(code, &mut stored, now) {
                Ok(i) => state
                    .store
                    .use_recovery_code(practice, user, i, now)
                    .await
                    .is_ok(),
                Err(_) => false,
            }
        }
        _ => false,
    }
}

/// A body that must be `{}` (nothing a client could smuggle in).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// What enrolment shows once: the secret for manual entry, the URI and a
/// locally drawn QR code (inline SVG).
#[derive(Serialize)]
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
    pub qr_svg: String,
}

/// `POST /api/v1/me/mfa/enrol` (action `change_own_mfa`): start TOTP
/// enrolment. Before the first factor this is the only thing a staff
/// session may do.
pub async fn begin_enrolment(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(Empty {}): ApiJson<Empty>,
) -> Result<Json<Enrolment>, ApiError> {
    let secret = totp::TotpSecret::generate();
    state
        .store
        .begin_totp_enrolment(caller.user.practice_id, caller.user.id, &secret)
        .await?;
    let uri = totp::otpauth_uri(&secret, caller.user.email.as_str());
    let qr_svg = totp::qr_svg(&uri).map_err(|_| ApiError::internal())?;
    Ok(Json(Enrolment {
        secret: secret.to_base32(),
        otpauth_uri: uri,
        qr_svg,
    }))
}

#[derive(Serialize)]
pub struct Enrolled {
    /// Shown once; each works once.
    pub recovery_codes: Vec<String>,
    pub csrf_token: String,
}

/// `POST /api/v1/me/mfa/confirm` (action `change_own_mfa`): the first code
/// from the app confirms enrolment and completes this session's second factor.
pub async fn confirm_enrolment(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    request_id: Option<axum::Extension<RequestId>>,
    ApiJson(body): ApiJson<CodeBody>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let Some(mut session) = caller.session().cloned() else {
        return Err(ApiError::forbidden());
    };
    let (practice, user) = (caller.user.practice_id, caller.user.id);
    let pending = state
        .store
        .mfa(practice, user)
        .await?
        .ok_or_else(|| ApiError::conflict("second factor: start enrolment first"))?;
    let code = body
        .code
        .as_deref()
        .ok_or_else(|| ApiError::unprocessable("code", "is required"))?;
    let accepted = match totp::verify(&pending.secret, code, now, pending.last_used_step) {
        Ok(step) => state
            .store
            .accept_totp_step(practice, user, step, now)
            .await
            .is_ok(),
        Err(_) => false,
    };
    let rid = request_id.map(|r| r.0).unwrap_or(RequestId(String::new()));
    audit_auth(&state, Some(&caller.user), "mfa_confirm", accepted, &rid).await?;
    if !accepted {
        return Err(mfa_failed());
    }
    let (shown, stored) = totp::generate_recovery_codes();
    state
        .store
        .replace_recovery_codes(practice, user, &stored)
        .await?;
    let previous = session.token_hash;
    let token = session.complete_mfa(now);
    state.store.save_session(&previous, &session).await?;
    let mut r = Json(Enrolled {
        recovery_codes: shown.iter().map(|c| c.expose().to_string()).collect(),
        csrf_token: state.csrf.token_for(&session.token_hash),
    })
    .into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, session_cookie(&state, &token));
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReauthBody {
    pub password: String,
}

/// `POST /api/v1/session/reauth`: re-enter the password before a sensitive
/// action (export, MFA change, break-glass): valid for 5 minutes.
pub async fn reauthenticate(
    State(state): State<AppState>,
    request_id: Option<axum::Extension<RequestId>>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReauthBody>,
) -> Result<StatusCode, ApiError> {
    let now = state.clock.now();
    let mut session = load_session(&state, &headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    check_csrf(&state, &session, &headers)?;
    let practice = session.practice_id.ok_or_else(ApiError::unauthorized)?;
    let user = state
        .store
        .user(practice, session.user_id)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    let creds = state
        .store
        .credentials_by_email(user.email.as_str())
        .await?
        .and_then(|c| c.password_hash);
    let presented = body.password;
    let ok = match creds {
        Some(stored) => {
            blocking(move || password::verify_password(&presented, &stored).unwrap_or(false))
                .await?
        }
        None => false,
    };
    let rid = request_id.map(|r| r.0).unwrap_or(RequestId(String::new()));
    audit_auth(&state, Some(&user), "reauthenticate", ok, &rid).await?;
    if !ok {
        return Err(wrong_credentials());
    }
    let previous = session.token_hash;
    session.reauthenticate(now);
    state.store.save_session(&previous, &session).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/session/sign-out`: ends the session, clears the cookie and
/// the browser's stored data for this site.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let session = load_session(&state, &headers)
        .await?
        .ok_or_else(ApiError::unauthorized)?;
    check_csrf(&state, &session, &headers)?;
    state
        .store
        .end_session(&session.token_hash, EndReason::SignOut, state.clock.now())
        .await?;
    Ok(signed_out(&state))
}

fn signed_out(state: &AppState) -> Response {
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, clearing_cookie(state));
    r.headers_mut().insert(
        axum::http::HeaderName::from_static("clear-site-data"),
        HeaderValue::from_static("\"cache\", \"cookies\", \"storage\""),
    );
    r
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

/// `POST /api/v1/me/password` (action `change_own_password`): checks the
/// current password and the policy, then ends every session of the user.
pub async fn change_password(
    State(state): State<AppState>,
    axum::Extension(caller): axum::Extension<Caller>,
    ApiJson(body): ApiJson<PasswordChange>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let user = caller.user;
    let stored = state
        .store
        .credentials_by_email(user.email.as_str())
        .await?
        .and_then(|c| c.password_hash)
        .ok_or_else(wrong_credentials)?;
    let current = body.current_password;
    if !blocking(move || password::verify_password(&current, &stored).unwrap_or(false)).await? {
        return Err(wrong_credentials());
    }
    let checked = PasswordPolicy::embedded()
        .check(
            &body.new_password,
            &PasswordContext {
                email: Some(user.email.as_str()),
                name: Some(&user.display_name),
            },
        )
        .map_err(|e| ApiError::unprocessable("new_password", e.to_string()))?;
    let hash = blocking(move || password::hash_password(&checked))
        .await?
        .map_err(|_| ApiError::internal())?;
    state
        .store
        .set_password_hash(user.practice_id, user.id, &hash)
        .await?;
    state
        .store
        .end_user_sessions(user.id, EndReason::PasswordChanged, now)
        .await?;
    Ok(signed_out(&state))
}

/// The treating clinicians of a client (for break-glass alerts).
pub fn treating(
    rels: &[tapestry_domain::care::CareRelationship],
    now: DateTime<Utc>,
) -> Vec<tapestry_domain::ids::UserId> {
    rels.iter()
        .filter(|r| r.role == CareRole::Treating && r.ended_at.is_none_or(|e| e > now))
        .map(|r| r.clinician)
        .collect()
}
