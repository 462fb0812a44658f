//! G1 matrix rows of the matching area. Order of roles: anonymous, client A,
//! client B, treating clinician, non-treating clinician, other practice's
//! clinician, supervisor of A, practice admin, owner.

use tapestry_web::routes::RouteSpec;

/// A valid matching profile (every clinical role may keep one).
pub const PROFILE_BODY: &str = r#"{"licences":[{"jurisdiction":"GB-ENG","number":"HCPC-1","expires_on":"2030-01-01"}],"languages":["en"],"formats":["video"],"populations":["adults"],"specialties":["anxiety"],"caseload_limit":10,"new_clients_per_week":2,"availability":{"utc_offset_minutes":0,"intervals":[{"day":0,"start_minute":540,"end_minute":1020}]},"accepts_risk":true}"#;

/// A valid match request for client A.
pub const REQUEST_BODY: &str = r#"{"jurisdiction":"GB-ENG","languages":["en"],"format":"video","population":"adults","elevated_domains":["anxiety"]}"#;

pub fn expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    Some(match (spec.method, spec.path) {
        // Clinical roles (clinician, supervisor, owner) keep a matching
        // profile; clients and the non-clinical admin do not.
        ("GET" | "POST", "/api/v1/me/matching-profile") | ("GET", "/me/matching-profile") => {
            [401, 403, 403, 200, 200, 200, 200, 403, 200]
        }
        // Intake coordination (admin, owner); another practice's client
        // and another client's record are the plain 404.
        ("POST", "/api/v1/clients/{id}/match") => [401, 403, 404, 403, 403, 404, 403, 200, 200],
        // A client's own choices page (no request yet is still a page).
        ("GET", "/me/match") => [401, 200, 200, 403, 403, 403, 403, 403, 403],
        // No match request exists for the clients: 422 naming the field.
        ("POST", "/api/v1/me/match/choice") => [401, 422, 422, 403, 403, 403, 403, 403, 403],
        // The body's share is out of range: admins reach validation (422,
        // nothing assigned), everyone else is refused first.
        ("POST", "/api/v1/practice/match-runs") => [401, 403, 403, 403, 403, 403, 403, 422, 422],
        ("GET", "/practice/waitlist") => [401, 403, 403, 403, 403, 403, 403, 200, 200],
        // The intake team (admin, owner) closes its waitlist tasks; the
        // matrix's path names no task, so they reach the plain 404.
        ("POST", "/api/v1/practice/waitlist/tasks/{task}/close") => {
            [401, 403, 403, 403, 403, 403, 403, 404, 404]
        }
        _ => return None,
    })
}

pub fn body_for(spec: &RouteSpec) -> Option<&'static str> {
    Some(match (spec.method, spec.path) {
        ("POST", "/api/v1/me/matching-profile") => PROFILE_BODY,
        ("POST", "/api/v1/clients/{id}/match") => REQUEST_BODY,
        ("POST", "/api/v1/me/match/choice") => {
            r#"{"clinician":"00000000-0000-0000-0000-000000000000"}"#
        }
        ("POST", "/api/v1/practice/match-runs") => r#"{"max_share_per_clinician":0}"#,
        ("POST", "/api/v1/practice/waitlist/tasks/{task}/close") => {
            r#"{"note":"called the client"}"#
        }
        _ => return None,
    })
}
