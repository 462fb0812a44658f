//! G1 authorization matrix, G13 audit completeness, G3 mass assignment.
//! Routes come from `tapestry_web::routes::all_routes()`, the table the router is
//! built from; every route must have a row in `expected` or the test fails.

use crate::fixture::*;
use tapestry_domain::access::{Action, ActionKind};
use tapestry_web::routes::{all_routes, Access, RouteSpec};

/// Expected status per role, in the order of [`ROLES`]:
/// anonymous, client A (owns the record), client B, treating clinician,
/// non-treating clinician, other practice's clinician, supervisor of A,
/// practice admin, owner. `{id}` is client A's record.
fn expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    // Each route area adds its own expectations here, one line per area.
    core_expected(spec)
        .or_else(|| crate::matrix_matching::expected(spec))
        .or_else(|| crate::matrix_portal::expected(spec))
        .or_else(|| crate::matrix_sessions::expected(spec))
        .or_else(|| crate::matrix_records::expected(spec))
}

/// Request bodies for write routes, per area.
fn body_for(spec: &RouteSpec) -> Option<&'static str> {
    crate::matrix_records::body_for(spec)
        .or_else(|| crate::matrix_sessions::body_for(spec))
        .or_else(|| crate::matrix_matching::body_for(spec))
        .or_else(|| crate::matrix_portal::body_for(spec))
        .or_else(|| core_body_for(spec))
}

fn core_expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    Some(match (spec.method, spec.path) {
        (
            "GET",
            "/"
            | "/healthz"
            | "/readyz"
            | "/metrics"
            | "/static/tapestry.css"
            | "/static/tapestry.js"
            | "/mfa"
            | "/reauth"
            | "/accept-invitation"
            | "/reset-password"
            | "/sign-in"
            | "/bootstrap",
        ) => [200; 9],
        // Wrong one-time token: the same 404 for everyone.
        ("POST", "/api/v1/bootstrap") => [404; 9],
        // Wrong password for everyone; the same e-mail from the same
        // address is slowed down after five failures (throttling, G9).
        ("POST", "/api/v1/session") => [401, 401, 401, 401, 401, 401, 429, 429, 429],
        // No confirmed second factor exists for these accounts.
        ("POST", "/api/v1/session/mfa") => [401, 409, 409, 409, 409, 409, 409, 409, 409],
        ("POST", "/api/v1/session/reauth") => [401; 9],
        ("POST", "/api/v1/session/sign-out") => [401, 204, 204, 204, 204, 204, 204, 204, 204],
        ("POST", "/api/v1/me/mfa/enrol") => [401, 200, 200, 200, 200, 200, 200, 200, 200],
        // Wrong code.
        ("POST", "/api/v1/me/mfa/confirm") => [401; 9],
        // Wrong current password.
        ("POST", "/api/v1/me/password") => [401; 9],
        ("GET", "/api/v1/me/alerts") => [401, 200, 200, 200, 200, 200, 200, 200, 200],
        ("GET", "/api/v1/me/access-log") => [401, 200, 200, 403, 403, 403, 403, 403, 403],
        ("GET", "/api/v1/clients") => [401, 403, 403, 200, 200, 200, 200, 200, 200],
        ("GET", "/api/v1/clients/{id}" | "/api/v1/clients/{id}/episodes" | "/clients/{id}") => {
            [401, 403, 404, 200, 403, 404, 200, 403, 403]
        }
        ("GET", "/api/v1/clients/{id}/submissions") => {
            [401, 200, 404, 200, 403, 404, 200, 403, 403]
        }
        ("GET", "/api/v1/clients/{id}/access-log") => [401, 200, 404, 200, 403, 404, 200, 200, 200],
        // Break-glass is for staff without a relationship (re-authenticated at sign-in).
        ("POST", "/api/v1/clients/{id}/break-glass") => {
            [401, 403, 404, 403, 201, 404, 403, 403, 201]
        }
        ("GET", "/api/v1/practice/users") => [401, 403, 403, 403, 403, 403, 403, 200, 200],
        // `{id}` is not a user: admins get the plain 404.
        ("POST", "/api/v1/practice/users/{id}/password-reset") => {
            [401, 403, 403, 403, 403, 403, 403, 404, 404]
        }
        ("POST", "/api/v1/practice/invitations") => [401, 403, 403, 403, 403, 403, 403, 403, 201],
        // Client A already has an account (409); only the treating clinician
        // or the owner may invite a client at all.
        ("POST", "/api/v1/clients/{id}/invitation") => {
            [401, 403, 404, 409, 403, 404, 403, 403, 409]
        }
        ("POST", "/api/v1/invitations/accept" | "/api/v1/password-reset") => [404; 9],
        ("POST", "/api/v1/me/api-tokens") => [401, 201, 201, 201, 201, 201, 201, 201, 201],
        ("POST", "/api/v1/me/api-tokens/{id}/revoke") => {
            [401, 404, 404, 404, 404, 404, 404, 404, 404]
        }
        _ => return None,
    })
}

fn core_body_for(spec: &RouteSpec) -> Option<&'static str> {
    Some(match spec.path {
        "/api/v1/bootstrap" => {
            r#"{"token":"not-a-real-token","practice_name":"P","time_zone":"UTC","owner_name":"O","email":"o@example.org","password":"violet harbour lantern 1987"}"#
        }
        "/api/v1/session" => r#"{"email":"treating@example.org","password":"wrong password here"}"#,
        "/api/v1/session/mfa" | "/api/v1/me/mfa/confirm" => r#"{"code":"000000"}"#,
        "/api/v1/session/reauth" => r#"{"password":"wrong password here"}"#,
        "/api/v1/me/password" => {
            r#"{"current_password":"wrong password","new_password":"violet harbour lantern 1987"}"#
        }
        "/api/v1/practice/invitations" => r#"{"email":"new.staff@example.org","role":"clinician"}"#,
        "/api/v1/clients/{id}/invitation" => r#"{"email":"alpha@example.org"}"#,
        "/api/v1/invitations/accept" => {
            r#"{"token":"bogus","display_name":"New Person","password":"violet harbour lantern 1987"}"#
        }
        "/api/v1/password-reset" => {
            r#"{"token":"bogus","new_password":"violet harbour lantern 1987"}"#
        }
        "/api/v1/me/api-tokens" => {
            r#"{"name":"calendar sync","scope":["read_measures"],"days":30}"#
        }
        "/api/v1/clients/{id}/break-glass" => {
            r#"{"reason":"Client called the crisis line; treating clinician unreachable"}"#
        }
        _ if spec.is_write() => "{}",
        _ => return None,
    })
}

fn audited(spec: &RouteSpec) -> bool {
    matches!(spec.access, Access::Action(a, _) if a.kind() == ActionKind::Clinical || a == Action::ReadOwnAccessLedger || a == Action::ReviewUrgentLanguage)
}

/// Reads first, writes after, sign-out last (it ends the session).
fn ordered() -> Vec<RouteSpec> {
    let mut routes: Vec<RouteSpec> = all_routes();
    routes.sort_by_key(|r| (r.is_write(), r.path.ends_with("sign-out")));
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_times_every_role_answers_as_expected_and_is_audited() {
    run_matrix(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_matrix_holds_on_postgresql() {
    let Some(f) = pg_fixture().await else { return };
    run_matrix(f).await;
}

async fn run_matrix(f: Fixture) {
    let mut missing = Vec::new();
    let mut failures = Vec::new();
    let mut cells = 0;
    for spec in ordered() {
        let Some(row) = expected(&spec) else {
            missing.push(format!("{} {}", spec.method, spec.path));
            continue;
        };
        for (i, role) in ROLES.iter().enumerate() {
            let path = spec.path.replace("{id}", &f.client_a.id.to_string());
            let before_db = f.fingerprint().await;
            let before_audit = f.store.count_audit_events().await.unwrap();
            let answer = call(&f.state, spec.method, &path, f.login(role), body_for(&spec)).await;
            cells += 1;
            let want = row[i];
            if answer.status.as_u16() != want {
                failures.push(format!(
                    "{} {} as {role}: got {}, expected {want} ({})",
                    spec.method,
                    spec.path,
                    answer.status,
                    answer.body.chars().take(120).collect::<String>()
                ));
            }
            assert!(
                answer.status.as_u16() != 500,
                "500 from {} {path}",
                spec.method
            );
            if !answer.status.is_success() {
                // Denials and failures change no practice data.
                assert_eq!(
                    before_db,
                    f.fingerprint().await,
                    "{} {} as {role} changed the database",
                    spec.method,
                    spec.path
                );
                if path.starts_with("/api/") {
                    assert!(
                        answer.body.starts_with(r#"{"error":{"code":"#),
                        "no envelope: {}",
                        answer.body
                    );
                }
            }
            let added = f.store.count_audit_events().await.unwrap() - before_audit;
            // Sign-in attempts, second-factor codes and re-authentication are
            // audited too (G13: failed logins and MFA failures), once the
            // request reaches them.
            let auth_event = match spec.path {
                "/api/v1/session" => true,
                "/api/v1/me/mfa/confirm" | "/api/v1/session/reauth" => *role != "anonymous",
                _ => false,
            };
            let want_events = u64::from(audited(&spec) || auth_event);
            assert_eq!(
                added, want_events,
                "{} {} as {role}: {added} audit events",
                spec.method, spec.path
            );
        }
    }
    assert!(
        missing.is_empty(),
        "routes without an expected row: {missing:?}"
    );
    assert!(
        failures.is_empty(),
        "{} unexpected answers:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(cells, all_routes().len() * ROLES.len());
    println!(
        "authorization matrix: {} routes x {} roles = {cells} cells",
        all_routes().len(),
        ROLES.len()
    );
    // The audit chain of the run verifies.
    let events = f.store.audit_events().await.unwrap();
    tapestry_store::audit_chain::verify(&events).unwrap();
    // Break-glass alerted the owner and the treating clinician (content-free).
    let alerts = f
        .store
        .alerts_for(f.practice.id, f.user("treating").id)
        .await
        .unwrap();
    assert!(alerts.iter().all(|a| a.kind == "break_glass_opened"));
    assert!(!alerts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_practices_record_is_the_same_404_as_a_missing_one() {
    let f = fixture().await;
    let other = f.login("other_practice");
    let a = call(
        &f.state,
        "GET",
        &format!("/api/v1/clients/{}", f.client_a.id),
        other,
        None,
    )
    .await;
    let missing = call(
        &f.state,
        "GET",
        &format!(
            "/api/v1/clients/{}",
            tapestry_domain::ids::ClientId::random()
        ),
        other,
        None,
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(a.body, missing.body);
    // A client asking for another client's answers: the same 404.
    let b = call(
        &f.state,
        "GET",
        &format!("/api/v1/clients/{}/submissions", f.client_b.id),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!((b.status, b.body), (missing.status, missing.body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_set_fields_are_rejected_on_every_write_route() {
    let f = fixture().await;
    let mut checked = 0;
    for spec in all_routes()
        .iter()
        .filter(|r| r.is_write() && !r.path.ends_with("sign-out"))
    {
        // No risk flag exists in the fixture, so the guard answers 404 before
        // the body is read; tests/it/records.rs checks that route's body.
        // The same holds for groups (none in the fixture); tests/it/groups.rs
        // checks those bodies.
        if matches!(
            spec.access,
            Access::Action(
                _,
                tapestry_web::routes::Target::RiskFlagInPath
                    | tapestry_web::routes::Target::GroupInPath
                    | tapestry_web::routes::Target::GroupMemberInPath
            )
        ) {
            continue;
        }
        // Who writes: the caller an area names, else the first of owner,
        // treating clinician and client A the policy lets through to the
        // handler, else the first role the matrix lets through at all.
        let row = expected(spec).unwrap_or([0; 9]);
        let reaches = |ix: usize| !matches!(row[ix], 401 | 403);
        let who = crate::matrix_portal::writer(spec)
            .or_else(|| {
                ["owner", "treating", "client_a"]
                    .into_iter()
                    .find(|role| ROLES.iter().position(|r| r == role).is_some_and(reaches))
            })
            .or_else(|| {
                row.iter()
                    .position(|c| (200..300).contains(c))
                    .map(|i| ROLES[i])
            })
            .unwrap_or("owner");
        let base = body_for(spec).unwrap_or("{}");
        for field in [
            "practice_id",
            "role",
            "owner_id",
            "user_id",
            "signed",
            "status",
            "client_id",
        ] {
            let mut v: serde_json::Value = serde_json::from_str(base).unwrap();
            v[field] = serde_json::json!(f.practice.id.to_string());
            let body = v.to_string();
            let before = f.fingerprint().await;
            let path = spec.path.replace("{id}", &f.client_a.id.to_string());
            let answer = call(&f.state, spec.method, &path, f.login(who), Some(&body)).await;
            assert!(
                matches!(answer.status.as_u16(), 400 | 422),
                "{} {path} accepted {field}: {} {}",
                spec.method,
                answer.status,
                answer.body
            );
            assert!(
                answer.body.contains(r#""code":"invalid_input""#)
                    || answer.body.contains(r#""code":"bad_request""#)
            );
            assert_eq!(before, f.fingerprint().await);
            checked += 1;
        }
    }
    assert!(checked >= 7 * 8);
}
