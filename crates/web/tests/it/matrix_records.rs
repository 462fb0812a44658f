//! Matrix expectations of the records area (columns as `fixture::ROLES`:
//! anonymous, client A, client B, treating, non-treating, other practice,
//! supervisor, practice admin, owner). `{episode}`, `{flag}` and `{version}`
//! stay literal in the matrix run, so those routes answer the plain 404
//! once the caller passes the policy.

use tapestry_web::routes::RouteSpec;

/// Read by the client, the treating and the supervising clinician.
const CLIENT_AND_TEAM: [u16; 9] = [401, 200, 404, 200, 403, 404, 200, 403, 403];
/// Read by the treating and the supervising clinician only.
const TEAM: [u16; 9] = [401, 403, 404, 200, 403, 404, 200, 403, 403];
/// Written by the treating clinician only.
const TREATING_WRITES: [u16; 9] = [401, 403, 404, 201, 403, 404, 403, 403, 403];
/// A client's own pages (staff have no own client record).
const OWN_RECORD: [u16; 9] = [401, 200, 200, 403, 403, 403, 403, 403, 403];

pub fn expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    Some(match (spec.method, spec.path) {
        ("GET", "/static/records.css") => [200; 9],
        // Only the client answers their own questionnaires; `{episode}` is not an episode.
        ("POST", "/api/v1/clients/{id}/episodes/{episode}/submissions") => {
            [401, 404, 404, 403, 403, 404, 403, 403, 403]
        }
        // Clinician-administered forms: the treating clinician and the supervisor.
        ("POST", "/api/v1/clients/{id}/episodes/{episode}/assessments") => {
            [401, 403, 404, 404, 403, 404, 404, 403, 403]
        }
        // Read like the measures; assigned and removed by the treating clinician only.
        ("GET", "/api/v1/clients/{id}/episodes/{episode}/measure-schedules") => {
            [401, 404, 404, 404, 403, 404, 404, 403, 403]
        }
        (
            "POST",
            "/api/v1/clients/{id}/episodes/{episode}/measure-schedules"
            | "/api/v1/clients/{id}/episodes/{episode}/measure-schedules/{instrument}/remove",
        ) => [401, 403, 404, 404, 403, 404, 403, 403, 403],
        ("GET", "/api/v1/clients/{id}/measures" | "/api/v1/clients/{id}/measures/fhir") => {
            CLIENT_AND_TEAM
        }
        ("GET", "/clients/{id}/measures" | "/clients/{id}/plan") => CLIENT_AND_TEAM,
        ("GET", "/api/v1/clients/{id}/plans") => CLIENT_AND_TEAM,
        // No `from`/`to`: the names of the missing parameters.
        ("GET", "/api/v1/clients/{id}/plans/diff") => [401, 422, 404, 422, 403, 404, 422, 403, 403],
        ("GET", "/api/v1/clients/{id}/plans/{version}") => {
            [401, 404, 404, 404, 403, 404, 404, 403, 403]
        }
        (
            "GET",
            "/api/v1/clients/{id}/risk-flags"
            | "/clients/{id}/risk"
            | "/api/v1/clients/{id}/formulations"
            | "/clients/{id}/formulation"
            | "/clients/{id}/review",
        ) => TEAM,
        // No flag has this id: the same 404 for everyone signed in.
        ("POST", "/api/v1/risk-flags/{flag}/close") => {
            [401, 404, 404, 404, 404, 404, 404, 404, 404]
        }
        // The caller's own tasks: staff only.
        ("GET", "/api/v1/me/tasks") => [401, 403, 403, 200, 200, 200, 200, 200, 200],
        (
            "POST",
            "/api/v1/clients/{id}/formulations"
            | "/api/v1/clients/{id}/plans"
            | "/api/v1/clients/{id}/session-review",
        ) => TREATING_WRITES,
        ("POST", "/api/v1/clients/{id}/plans/{version}/decisions") => {
            [401, 403, 404, 404, 403, 404, 403, 403, 403]
        }
        ("GET", "/me/progress" | "/me/plan") => OWN_RECORD,
        _ => return None,
    })
}

pub fn body_for(spec: &RouteSpec) -> Option<&'static str> {
    Some(match spec.path {
        "/api/v1/clients/{id}/episodes/{episode}/submissions" => {
            r#"{"instrument":"phq9","answers":[1,1,1,1,1,1,1,1,0]}"#
        }
        "/api/v1/clients/{id}/episodes/{episode}/assessments" => {
            r#"{"instrument":"risk_assessment","answers":[2,1,2,2,1,1]}"#
        }
        "/api/v1/clients/{id}/episodes/{episode}/measure-schedules" => {
            r#"{"instrument":"phq9","rule":"every_n_days","every_days":14}"#
        }
        "/api/v1/clients/{id}/episodes/{episode}/measure-schedules/{instrument}/remove" => "{}",
        "/api/v1/risk-flags/{flag}/close" => {
            r#"{"note":"Spoke with the client; safety plan reviewed"}"#
        }
        "/api/v1/clients/{id}/formulations" => {
            r#"{"formulation":{"age":34,"presenting_problems":["depression"],"goals":["Enjoy weekends again"]}}"#
        }
        "/api/v1/clients/{id}/plans" => "{}",
        "/api/v1/clients/{id}/plans/{version}/decisions" => {
            r#"{"action":"accept_plan","reason":"Agreed with the client"}"#
        }
        "/api/v1/clients/{id}/session-review" => r#"{"techniques":["T06"]}"#,
        _ => return None,
    })
}
