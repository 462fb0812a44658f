//! The route table: every route is registered here, with the
//! [`access::Action`](tapestry_domain::access::Action) it performs (or
//! [`Access::Public`] / [`Access::Session`]). The router is built from this
//! table and the authorization-matrix test enumerates the same table, so a
//! route cannot exist without a declared action (G1).
//!
//! For every non-public route the guard ([`guard`]) authenticates the caller
//! (session cookie or bearer token), checks CSRF on cookie-authenticated
//! writes, loads the [`Resource`] (a client of another practice, or a missing
//! one, is the same 404), calls [`authorize`] and, for clinical actions,
//! appends exactly one audit event with the outcome (G13).

use crate::auth::{self, Caller, Credential};
use crate::error::ApiError;
use crate::middleware::RequestId;
use crate::{accounts, clinical, health, pages, AppState};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use tapestry_domain::access::{authorize, Action, ActionKind, Decision, Resource};
use tapestry_domain::ids::ClientId;
use tapestry_domain::user::Role;
use tapestry_store::audit_chain::{NewAuditEvent, Outcome};

/// Which object an action is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The client named by `{id}` in the path.
    ClientInPath,
    /// The caller's own client record (clients).
    OwnClientRecord,
    /// The caller's practice.
    Practice,
    /// The caller's own account.
    OwnAccount,
    /// A list filtered item by item (each client checked with `authorize`).
    EachClient,
    /// The client whose risk flag `{flag}` names (`/api/v1/risk-flags/{flag}/…`);
    /// a flag of another practice, or none, is the same 404.
    RiskFlagInPath,
    /// A group programme named in the path (`/api/v1/groups/{group}/…` or
    /// `/groups/{group}/…`): a practice-level object owned by the actor when
    /// they facilitate it, else by its facilitator.
    GroupInPath,
    /// A member of the group in the path (`…/groups/{group}/members/{client}/…`):
    /// part of that client's record, owned by the actor when they facilitate
    /// the group. Someone who was never a member is not found.
    GroupMemberInPath,
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No sign-in needed (pages, health, sign-in itself, bootstrap).
    Public,
    /// A session is needed but no policy action (second factor, re-auth,
    /// sign-out: they act on the session itself).
    Session,
    /// Authorized by `authorize(actor, action, target)`.
    Action(Action, Target),
}

/// One row of the route table.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

impl RouteSpec {
    /// A body-carrying method (state-changing).
    pub fn is_write(&self) -> bool {
        !matches!(self.method, "GET" | "HEAD")
    }
}

const fn r(method: &'static str, path: &'static str, access: Access) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
    }
}

use Access::{Public, Session};
use Target::*;

/// One area's routes: its rows and the handlers for them. Each area of the
/// product (core and security here; measures, records, sessions in their own
/// modules) contributes one entry to [`AREAS`].
pub struct RouteArea {
    pub name: &'static str,
    pub routes: &'static [RouteSpec],
    pub handler: fn(&RouteSpec) -> Option<MethodRouter<AppState>>,
}

/// Every area of the application. The router and the authorization-matrix
/// test both read this list.
pub const AREAS: &[RouteArea] = &[
    RouteArea {
        name: "core",
        routes: ROUTES,
        handler,
    },
    RouteArea {
        name: "matching",
        routes: crate::matching::MATCHING_ROUTES,
        handler: crate::matching::handler,
    },
    RouteArea {
        name: "portal",
        routes: crate::portal::PORTAL_ROUTES,
        handler: crate::portal::handler,
    },
    RouteArea {
        name: "sessions",
        routes: crate::sessions::SESSIONS_ROUTES,
        handler: crate::sessions::handler,
    },
    RouteArea {
        name: "records",
        routes: crate::records::RECORDS_ROUTES,
        handler: crate::records::handler,
    },
];

/// Every route of the application, from every area.
pub fn all_routes() -> Vec<RouteSpec> {
    AREAS
        .iter()
        .flat_map(|a| a.routes.iter().copied())
        .collect()
}

/// The core routes: pages, health, identity, the client record basics.
pub const ROUTES: &[RouteSpec] = &[
    r("GET", "/", Public),
    r("GET", "/healthz", Public),
    r("GET", "/readyz", Public),
    r("GET", "/metrics", Public),
    r("GET", "/static/tapestry.css", Public),
    r("GET", "/static/tapestry.js", Public),
    r("GET", "/sign-in", Public),
    r("GET", "/mfa", Public),
    r("GET", "/reauth", Public),
    r("GET", "/accept-invitation", Public),
    r("GET", "/reset-password", Public),
    r("GET", "/bootstrap", Public),
    r("POST", "/api/v1/bootstrap", Public),
    r("POST", "/api/v1/session", Public),
    r("POST", "/api/v1/session/mfa", Session),
    r("POST", "/api/v1/session/reauth", Session),
    r("POST", "/api/v1/session/sign-out", Session),
    r(
        "POST",
        "/api/v1/me/mfa/enrol",
        Access::Action(Action::ChangeOwnMfa, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/mfa/confirm",
        Access::Action(Action::ChangeOwnMfa, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/password",
        Access::Action(Action::ChangeOwnPassword, OwnAccount),
    ),
    r(
        "GET",
        "/api/v1/me/alerts",
        Access::Action(Action::ManageOwnProfile, OwnAccount),
    ),
    r(
        "GET",
        "/api/v1/me/access-log",
        Access::Action(Action::ReadOwnAccessLedger, OwnClientRecord),
    ),
    r(
        "GET",
        "/api/v1/clients",
        Access::Action(Action::ReadClientDirectory, EachClient),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}",
        Access::Action(Action::ReadClinicalRecord, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/episodes",
        Access::Action(Action::ReadClinicalRecord, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/submissions",
        Access::Action(Action::ReadMeasures, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/clients/{id}/access-log",
        Access::Action(Action::ReadRecordAccessLedger, ClientInPath),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/break-glass",
        Access::Action(Action::BreakGlassOpen, ClientInPath),
    ),
    r(
        "GET",
        "/clients/{id}",
        Access::Action(Action::ReadClinicalRecord, ClientInPath),
    ),
    r(
        "GET",
        "/api/v1/practice/users",
        Access::Action(Action::ManagePracticeUsers, Practice),
    ),
    r(
        "POST",
        "/api/v1/practice/users/{id}/password-reset",
        Access::Action(Action::ManagePracticeUsers, Practice),
    ),
    r(
        "POST",
        "/api/v1/practice/invitations",
        Access::Action(Action::InviteStaff, Practice),
    ),
    r(
        "POST",
        "/api/v1/clients/{id}/invitation",
        Access::Action(Action::InviteClient, ClientInPath),
    ),
    r("POST", "/api/v1/invitations/accept", Public),
    r("POST", "/api/v1/password-reset", Public),
    r(
        "POST",
        "/api/v1/me/api-tokens",
        Access::Action(Action::ManageOwnProfile, OwnAccount),
    ),
    r(
        "POST",
        "/api/v1/me/api-tokens/{id}/revoke",
        Access::Action(Action::ManageOwnProfile, OwnAccount),
    ),
];

fn handler(spec: &RouteSpec) -> Option<MethodRouter<AppState>> {
    Some(match (spec.method, spec.path) {
        ("GET", "/") => get(pages::home),
        ("GET", "/healthz") => get(health::healthz),
        ("GET", "/readyz") => get(health::readyz),
        ("GET", "/metrics") => get(health::metrics),
        ("GET", "/static/tapestry.css") => get(pages::stylesheet),
        ("GET", "/static/tapestry.js") => get(pages::script),
        ("GET", "/sign-in") => get(pages::sign_in_page),
        ("GET", "/mfa") => get(pages::mfa_page),
        ("GET", "/reauth") => get(pages::reauth_page),
        ("GET", "/accept-invitation") => get(pages::accept_invitation_page),
        ("GET", "/reset-password") => get(pages::reset_password_page),
        ("GET", "/bootstrap") => get(pages::bootstrap_page),
        ("POST", "/api/v1/bootstrap") => post(clinical::bootstrap),
        ("POST", "/api/v1/session") => post(auth::sign_in),
        ("POST", "/api/v1/session/mfa") => post(auth::verify_mfa),
        ("POST", "/api/v1/session/reauth") => post(auth::reauthenticate),
        ("POST", "/api/v1/session/sign-out") => post(auth::sign_out),
        ("POST", "/api/v1/me/mfa/enrol") => post(auth::begin_enrolment),
        ("POST", "/api/v1/me/mfa/confirm") => post(auth::confirm_enrolment),
        ("POST", "/api/v1/me/password") => post(auth::change_password),
        ("GET", "/api/v1/me/alerts") => get(clinical::my_alerts),
        ("GET", "/api/v1/me/access-log") => get(clinical::own_access_log),
        ("GET", "/api/v1/clients") => get(clinical::my_clients),
        ("GET", "/api/v1/clients/{id}") => get(clinical::client_record),
        ("GET", "/api/v1/clients/{id}/episodes") => get(clinical::episodes),
        ("GET", "/api/v1/clients/{id}/submissions") => get(clinical::submissions),
        ("GET", "/api/v1/clients/{id}/access-log") => get(clinical::record_access_log),
        ("POST", "/api/v1/clients/{id}/break-glass") => post(clinical::break_glass),
        ("GET", "/clients/{id}") => get(clinical::client_page),
        ("GET", "/api/v1/practice/users") => get(clinical::practice_users),
        ("POST", "/api/v1/practice/users/{id}/password-reset") => post(accounts::issue_reset),
        ("POST", "/api/v1/practice/invitations") => post(accounts::invite_staff),
        ("POST", "/api/v1/clients/{id}/invitation") => post(accounts::invite_client),
        ("POST", "/api/v1/invitations/accept") => post(accounts::accept_invitation),
        ("POST", "/api/v1/password-reset") => post(accounts::redeem_reset),
        ("POST", "/api/v1/me/api-tokens") => post(accounts::create_api_token),
        ("POST", "/api/v1/me/api-tokens/{id}/revoke") => post(accounts::revoke_api_token),
        _ => return None,
    })
}

/// Rows of any area without a handler (must be empty; checked by tests).
pub fn unhandled() -> Vec<&'static str> {
    AREAS
        .iter()
        .flat_map(|a| {
            a.routes
                .iter()
                .filter(move |spec| (a.handler)(spec).is_none())
        })
        .map(|spec| spec.path)
        .collect()
}

/// Adds every route of every area to `router`, each behind its guard.
pub fn register(mut router: axum::Router<AppState>, state: &AppState) -> axum::Router<AppState> {
    for (area, spec) in AREAS
        .iter()
        .flat_map(|a| a.routes.iter().map(move |s| (a, s)))
    {
        let Some(method_router) = (area.handler)(spec) else {
            // A table row without a handler is a programming error caught by tests.
            tracing::error!(path = spec.path, "route table row without a handler");
            continue;
        };
        let guarded = match spec.access {
            Access::Public => method_router,
            _ => method_router.layer(axum::middleware::from_fn_with_state(
                (state.clone(), *spec),
                guard,
            )),
        };
        // Form posts are converted before the guard sees them (crate::forms).
        let guarded = if crate::forms::accepts_forms(spec) {
            guarded.layer(axum::middleware::from_fn_with_state(
                (state.clone(), *spec),
                crate::forms::accept_form,
            ))
        } else {
            guarded
        };
        router = router.route(spec.path, guarded);
    }
    router
}

/// What the guard resolved, for handlers.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub caller: Caller,
    /// The client the request is about (path or own record), if any.
    pub client_id: Option<ClientId>,
}

fn decision_error(d: Decision) -> ApiError {
    match d {
        Decision::NotFound => ApiError::not_found(),
        Decision::Deny => ApiError::forbidden(),
        Decision::RequiresMfa => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "mfa_required",
            "Complete your second factor first.",
        ),
        Decision::RequiresReauth => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "reauth_required",
            "Enter your password again to continue.",
        ),
        Decision::Allow => ApiError::internal(),
    }
}

/// The client id in the path, if it parses (else the request is a 404 like
/// any unknown object).
fn path_client(req: &Request) -> Option<ClientId> {
    path_client_of(req.uri().path())
}

/// The risk flag id in `/api/v1/risk-flags/{flag}/…`, if it parses.
fn path_flag(req: &Request) -> Option<tapestry_domain::ids::RecordId> {
    let rest = req.uri().path().strip_prefix("/api/v1/risk-flags/")?;
    rest.split('/').next()?.parse().ok()
}

/// The group id and, for member paths, the client id in a group path.
pub(crate) fn path_group_of(
    path: &str,
) -> Option<(tapestry_domain::schedule::group::GroupId, Option<ClientId>)> {
    let rest = path
        .strip_prefix("/api/v1/groups/")
        .or_else(|| path.strip_prefix("/groups/"))?;
    let mut parts = rest.split('/');
    let group = parts.next()?.parse::<uuid::Uuid>().ok()?;
    let member = match (parts.next(), parts.next()) {
        (Some("members"), Some(c)) => c.parse().ok(),
        _ => None,
    };
    Some((
        tapestry_domain::schedule::group::GroupId::from_uuid(group),
        member,
    ))
}

fn path_client_of(path: &str) -> Option<ClientId> {
    let rest = path
        .strip_prefix("/api/v1/clients/")
        .or_else(|| path.strip_prefix("/clients/"))?;
    rest.split('/').next()?.parse().ok()
}

/// Authentication, CSRF, authorization and audit for one route.
pub async fn guard(
    State((state, spec)): State<(AppState, RouteSpec)>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default();
    let audited = match spec.access {
        Access::Action(action, _) => {
            action.kind() == ActionKind::Clinical
                || matches!(
                    action,
                    Action::ReadOwnAccessLedger
                        | Action::ExportOwnData
                        | Action::ReviewUrgentLanguage
                )
        }
        _ => false,
    };
    // Pages answer errors as pages, the API as the JSON envelope.
    let page = !req.uri().path().starts_with("/api/");
    let (caller, client_id, result) = decide(&state, &spec, &mut req).await;
    let response = match result {
        Ok(()) => next.run(req).await,
        Err(e) if page => e.to_html(),
        Err(e) => e.into_response(),
    };
    if !audited {
        return response;
    }
    let Access::Action(action, _) = spec.access else {
        return response;
    };
    let outcome = if response.status().is_success() {
        Outcome::Allowed
    } else {
        Outcome::Denied
    };
    let event = NewAuditEvent {
        actor: caller.as_ref().map(|c| c.user.id),
        practice_id: caller.as_ref().map(|c| c.user.practice_id),
        // The practice's urgent-language list is a practice-level object.
        object_type: if action == Action::ReviewUrgentLanguage {
            "urgent_language_list".into()
        } else {
            "client".into()
        },
        object_id: if action == Action::ReviewUrgentLanguage {
            caller.as_ref().map(|c| c.user.practice_id.as_uuid())
        } else {
            client_id.map(|c| c.as_uuid())
        },
        action: action.as_str().into(),
        outcome,
        at: state.clock.now(),
        request_id,
    };
    match state.store.append_audit(event).await {
        Ok(_) => response,
        Err(e) => {
            // No clinical answer leaves without its audit event.
            tracing::error!(error = %e, "audit append failed; answer withheld");
            ApiError::internal().into_response()
        }
    }
}

async fn decide(
    state: &AppState,
    spec: &RouteSpec,
    req: &mut Request,
) -> (Option<Caller>, Option<ClientId>, Result<(), ApiError>) {
    let requested_client = path_client(req);
    let headers = req.headers().clone();
    let caller = match auth::authenticate(state, &headers).await {
        Ok(Some(c)) => c,
        Ok(None) => return (None, requested_client, Err(ApiError::unauthorized())),
        Err(e) => return (None, requested_client, Err(e)),
    };
    if spec.is_write() && spec.method != Method::GET.as_str() {
        if let Credential::Session(session) = &caller.credential {
            if let Err(e) = auth::check_csrf(state, session, &headers) {
                return (Some(caller), requested_client, Err(e));
            }
        }
    }
    let Access::Action(action, target) = spec.access else {
        // Session-only routes authenticate in their handlers.
        req.extensions_mut().insert(caller.clone());
        return (Some(caller), None, Ok(()));
    };
    if let Credential::ApiToken(hash) = &caller.credential {
        let scoped = match state.store.api_token(hash).await {
            Ok(Some(t)) => t.permits(action, state.clock.now()).is_ok(),
            _ => false,
        };
        if !scoped {
            return (Some(caller), requested_client, Err(ApiError::forbidden()));
        }
    }
    let practice = caller.user.practice_id;
    let (resource, client_id) = match target {
        Target::ClientInPath => {
            let Some(id) = requested_client else {
                return (Some(caller), None, Err(ApiError::not_found()));
            };
            match state.store.client(practice, id).await {
                Ok(Some(_)) => (Resource::client_record(practice, id), Some(id)),
                // Missing here = missing or in another practice: the same 404.
                Ok(None) => return (Some(caller), Some(id), Err(ApiError::not_found())),
                Err(e) => return (Some(caller), Some(id), Err(e.into())),
            }
        }
        Target::RiskFlagInPath => {
            let found = match path_flag(req) {
                Some(flag) => match state.store.risk_flag(practice, flag).await {
                    Ok(found) => found,
                    Err(e) => return (Some(caller), None, Err(e.into())),
                },
                None => None,
            };
            match found {
                Some(f) => (
                    Resource::client_record(practice, f.client_id),
                    Some(f.client_id),
                ),
                None => {
                    // Unknown flag: still no answer before the second factor.
                    let d = authorize(&caller.actor, action, &Resource::practice(practice));
                    let e = match d {
                        Decision::RequiresMfa | Decision::RequiresReauth => decision_error(d),
                        _ => ApiError::not_found(),
                    };
                    return (Some(caller), None, Err(e));
                }
            }
        }
        Target::GroupInPath | Target::GroupMemberInPath => {
            let found = match group_resource(state, &caller, target, req.uri().path()).await {
                Ok(found) => found,
                Err(e) => return (Some(caller), None, Err(e)),
            };
            match found {
                Some(x) => x,
                None => {
                    // Unknown group or member: still no answer before the
                    // second factor.
                    let d = authorize(&caller.actor, action, &Resource::practice(practice));
                    let e = match d {
                        Decision::RequiresMfa | Decision::RequiresReauth => decision_error(d),
                        _ => ApiError::not_found(),
                    };
                    return (Some(caller), None, Err(e));
                }
            }
        }
        Target::OwnClientRecord => match caller.actor.client_id {
            Some(id) => (Resource::client_record(practice, id), Some(id)),
            None => (Resource::practice(practice), None),
        },
        Target::Practice => (Resource::practice(practice), None),
        Target::OwnAccount => (Resource::account(Some(practice), caller.user.id), None),
        Target::EachClient => {
            // The list itself is for signed-in staff with a second factor;
            // each item is authorized on its own by the handler.
            let gate = authorize(
                &caller.actor,
                Action::ManageOwnProfile,
                &Resource::account(Some(practice), caller.user.id),
            );
            if gate != Decision::Allow {
                return (Some(caller), None, Err(decision_error(gate)));
            }
            if !caller.actor.role.is_staff() || caller.actor.role == Role::Operator {
                return (Some(caller), None, Err(ApiError::forbidden()));
            }
            req.extensions_mut().insert(Authorized {
                caller: caller.clone(),
                client_id: None,
            });
            req.extensions_mut().insert(caller.clone());
            return (Some(caller), None, Ok(()));
        }
    };
    let decision = authorize(&caller.actor, action, &resource);
    if decision != Decision::Allow {
        return (Some(caller), client_id, Err(decision_error(decision)));
    }
    req.extensions_mut().insert(Authorized {
        caller: caller.clone(),
        client_id,
    });
    req.extensions_mut().insert(caller.clone());
    (Some(caller), client_id, Ok(()))
}

/// The resource of a group route: the programme (owned by the actor when
/// they facilitate it) or, for member routes, the member's record. `None`
/// when the group, or the member's membership, does not exist here.
async fn group_resource(
    state: &AppState,
    caller: &Caller,
    target: Target,
    path: &str,
) -> Result<Option<(Resource, Option<ClientId>)>, ApiError> {
    let practice = caller.user.practice_id;
    let Some((group_id, member)) = path_group_of(path) else {
        return Ok(None);
    };
    let Some(group) = state.store.group(practice, group_id).await? else {
        return Ok(None);
    };
    let owner = if group.is_facilitator(caller.user.id) {
        caller.user.id
    } else {
        group.facilitator
    };
    if target == Target::GroupInPath {
        return Ok(Some((Resource::practice(practice).owned_by(owner), None)));
    }
    let Some(client) = member else {
        return Ok(None);
    };
    let memberships = state.store.memberships(practice, group_id).await?;
    if !memberships.iter().any(|m| m.client_id == client) {
        return Ok(None);
    }
    Ok(Some((
        Resource::client_record(practice, client).owned_by(owner),
        Some(client),
    )))
}
