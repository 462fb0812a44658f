//! Matrix expectations for the portal area (dashboard, notes, safety plan,
//! homework, client portal, practice). Roles in the order of `ROLES`:
//! anonymous, client A, client B, treating, non-treating, other practice,
//! supervisor, practice admin, owner. Writes run after the core writes, so
//! the non-treating clinician and the owner hold break-glass on client A by
//! then (it allows reads and writing notes, nothing else).
//! `{note}`, `{hw}` and `{instrument}` stay literal: an allowed caller gets
//! the same 404 as for any unknown object.

use tapestry_web::routes::RouteSpec;

const OWN_PAGE: [u16; 9] = [401, 200, 200, 403, 403, 403, 403, 403, 403];
const OWN_MISSING: [u16; 9] = [401, 404, 404, 403, 403, 403, 403, 403, 403];
const ADMIN: [u16; 9] = [401, 403, 403, 403, 403, 403, 403, 200, 200];
const TREATING_WRITE_MISSING: [u16; 9] = [401, 403, 404, 404, 403, 404, 403, 403, 403];

pub fn expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    Some(match (spec.method, spec.path) {
        ("GET", "/dashboard") => [401, 403, 403, 200, 200, 200, 200, 200, 200],
        ("GET", "/clients/{id}/notes") => [401, 403, 404, 200, 403, 404, 200, 403, 403],
        ("GET", "/clients/{id}/notes/{note}") => [401, 403, 404, 404, 403, 404, 404, 403, 403],
        // The client reads their own safety plan and homework.
        ("GET", "/clients/{id}/safety-plan" | "/clients/{id}/homework") => {
            [401, 200, 404, 200, 403, 404, 200, 403, 403]
        }
        // Staff are sent on to their own start page.
        ("GET", "/me") => [401, 200, 200, 303, 303, 303, 303, 303, 303],
        (
            "GET",
            "/intake" | "/me/measures" | "/me/homework" | "/me/safety-plan" | "/me/access-log",
        ) => OWN_PAGE,
        ("POST", "/api/v1/me/intake") => OWN_PAGE,
        (
            "GET" | "POST",
            "/me/measures/{instrument}"
            | "/api/v1/me/measures/{instrument}"
            | "/me/homework/{hw}"
            | "/api/v1/me/homework/{hw}",
        ) => OWN_MISSING,
        ("GET", "/practice" | "/practice/audit") => ADMIN,
        ("POST", "/api/v1/practice/settings") => ADMIN,
        // Break-glass may write a note.
        ("POST", "/api/v1/clients/{id}/notes") => [401, 403, 404, 201, 201, 404, 403, 403, 201],
        ("POST", "/api/v1/clients/{id}/notes/{note}") => {
            [401, 403, 404, 404, 404, 404, 403, 403, 404]
        }
        (
            "POST",
            "/api/v1/clients/{id}/notes/{note}/sign"
            | "/api/v1/clients/{id}/notes/{note}/addenda"
            | "/api/v1/clients/{id}/homework/{hw}/reviewed",
        ) => TREATING_WRITE_MISSING,
        ("POST", "/api/v1/clients/{id}/notes/{note}/cosign") => {
            [401, 403, 404, 403, 403, 404, 404, 403, 403]
        }
        ("POST", "/api/v1/clients/{id}/safety-plan" | "/api/v1/clients/{id}/homework") => {
            [401, 403, 404, 201, 403, 404, 403, 403, 403]
        }
        _ => return None,
    })
}

pub fn body_for(spec: &RouteSpec) -> Option<&'static str> {
    Some(match spec.path {
        "/api/v1/clients/{id}/notes" => r#"{"template":"soap","kind":"progress"}"#,
        "/api/v1/clients/{id}/notes/{note}" => r#"{"subjective":"Slept better"}"#,
        "/api/v1/clients/{id}/notes/{note}/addenda" => r#"{"text":"Late entry"}"#,
        "/api/v1/clients/{id}/safety-plan" => r#"{"warning_signs":"Not sleeping"}"#,
        "/api/v1/clients/{id}/homework" => r#"{"technique":"T04"}"#,
        "/api/v1/me/intake" => r#"{"step":"0","consent":"yes"}"#,
        "/api/v1/me/measures/{instrument}" => r#"{"item_1":"0"}"#,
        "/api/v1/me/homework/{hw}" => r#"{"situation":"x"}"#,
        "/api/v1/practice/settings" => r#"{"time_zone":"Europe/London"}"#,
        _ => return None,
    })
}

/// Who reaches the handler of a portal write route (for the mass-assignment
/// test, which otherwise calls as the owner): the treating clinician on a
/// client's record, the supervisor for co-signing, the client on their own.
pub fn writer(spec: &RouteSpec) -> Option<&'static str> {
    let p = spec.path;
    expected(spec)?;
    Some(if p.ends_with("/cosign") {
        "supervisor"
    } else if p.starts_with("/api/v1/clients/{id}/") {
        "treating"
    } else if p.starts_with("/api/v1/me/") {
        "client_a"
    } else {
        return None;
    })
}
