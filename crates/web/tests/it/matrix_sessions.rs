//! Matrix rows of the sessions area (booking, room, messages). Columns as
//! `ROLES`: anonymous, client A, client B, treating, non-treating, other
//! practice, supervisor of A, practice admin, owner. Path parameters other
//! than `{id}` stay literal (`{appointment}` is no appointment: 404 once
//! authorized).

use tapestry_web::routes::RouteSpec;

pub fn expected(spec: &RouteSpec) -> Option<[u16; 9]> {
    Some(match (spec.method, spec.path) {
        ("GET", "/static/video.js" | "/static/chat.js" | "/static/messages.js") => [200; 9],
        // Pages over the booking and messages API.
        ("GET", "/clients/{id}/booking") => [401, 200, 404, 200, 403, 404, 200, 200, 200],
        // Staff have no own client record: the page is not found.
        ("GET", "/me/appointments") => [401, 200, 200, 404, 404, 404, 404, 404, 404],
        ("GET", "/schedule") => [401, 403, 403, 200, 200, 200, 200, 403, 200],
        ("GET", "/clients/{id}/messages") => [401, 200, 404, 200, 403, 404, 200, 403, 403],
        ("GET", "/me/messages") => [401, 200, 200, 403, 403, 403, 403, 403, 403],
        ("GET", "/messages") => [401, 403, 403, 200, 200, 200, 200, 200, 200],
        // "{token}" is not a feed token.
        ("GET", "/calendar/{token}") => [404; 9],
        // No join token in the query.
        ("GET", "/sessions/ws") => [400; 9],
        // A calendar is for staff who hold sessions (not clients, not admins).
        ("GET", "/api/v1/me/schedule") => [401, 403, 403, 200, 200, 200, 200, 403, 200],
        ("POST", "/api/v1/me/schedule") => [401, 403, 403, 204, 204, 204, 204, 403, 204],
        ("POST", "/api/v1/me/appointment-types" | "/api/v1/me/calendar-feed") => {
            [401, 403, 403, 201, 201, 201, 201, 403, 201]
        }
        ("POST", "/api/v1/me/calendar-feed/revoke") => {
            [401, 403, 403, 200, 200, 200, 200, 403, 200]
        }
        // No query parameters: 422 naming the query, once authorized.
        ("GET", "/api/v1/clients/{id}/slots") => [401, 422, 404, 422, 403, 404, 422, 422, 422],
        ("GET", "/api/v1/clients/{id}/appointments") => {
            [401, 200, 404, 200, 403, 404, 200, 200, 200]
        }
        // The body names a type the practice does not offer; the time
        // zone is not an IANA name.
        ("POST", "/api/v1/clients/{id}/appointments" | "/api/v1/clients/{id}/time-zone") => {
            [401, 422, 404, 422, 403, 404, 422, 422, 422]
        }
        (
            "POST",
            "/api/v1/clients/{id}/appointments/{appointment}/cancel"
            | "/api/v1/clients/{id}/appointments/{appointment}/reschedule"
            | "/api/v1/clients/{id}/appointments/{appointment}/attendance"
            | "/api/v1/clients/{id}/appointments/{appointment}/join",
        )
        | (
            "GET",
            "/api/v1/clients/{id}/appointments/{appointment}/ics"
            | "/clients/{id}/appointments/{appointment}/room",
        ) => [401, 404, 404, 404, 403, 404, 404, 404, 404],
        // Clinical reads (audited): no admin or owner without a relationship.
        ("GET", "/api/v1/clients/{id}/appointments/{appointment}/chat") => {
            [401, 404, 404, 404, 403, 404, 404, 403, 403]
        }
        ("GET", "/api/v1/clients/{id}/messages" | "/api/v1/clients/{id}/messages/export") => {
            [401, 200, 404, 200, 403, 404, 200, 403, 403]
        }
        ("GET", "/api/v1/clients/{id}/messages/{message}/attachment") => {
            [401, 404, 404, 404, 403, 404, 404, 403, 403]
        }
        ("POST", "/api/v1/clients/{id}/messages") => [401, 201, 404, 201, 403, 404, 403, 403, 403],
        // The promise is the care team's to make.
        ("POST", "/api/v1/clients/{id}/messages/reply-promise") => {
            [401, 403, 404, 200, 403, 404, 403, 403, 403]
        }
        // --- the practice's urgent-language list: its clinical roles (the
        // other practice's clinician sees their own practice's list) ---
        ("GET", "/practice/urgent-language") => [401, 403, 403, 200, 200, 200, 200, 403, 200],
        // The body's phrase is blank: 422 naming `phrase` once authorized.
        ("POST", "/api/v1/practice/urgent-language") => {
            [401, 403, 403, 422, 422, 422, 422, 403, 422]
        }
        ("POST", "/api/v1/practice/urgent-language/review") => {
            [401, 403, 403, 200, 200, 200, 200, 403, 200]
        }
        // --- group programmes ---
        ("GET", "/api/v1/me/groups" | "/groups") => [401, 200, 200, 200, 200, 200, 200, 200, 200],
        // Staff who hold sessions create programmes; not clients or admins.
        ("POST", "/api/v1/groups") => [401, 403, 403, 201, 201, 201, 201, 403, 201],
        // A client's own membership ("{group}" is no group: 404); staff
        // have no membership to change.
        ("POST", "/api/v1/me/groups/{group}/join" | "/api/v1/me/groups/{group}/leave") => {
            [401, 404, 404, 403, 403, 403, 403, 403, 403]
        }
        // "{group}" is no group: the same 404 for everyone signed in.
        (
            "GET",
            "/api/v1/groups/{group}"
            | "/groups/{group}"
            | "/api/v1/groups/{group}/members/{client}/notes"
            | "/groups/{group}/members/{client}"
            | "/groups/{group}/sessions/{session}/room"
            | "/api/v1/groups/{group}/chat",
        )
        | (
            "POST",
            "/api/v1/groups/{group}/members"
            | "/api/v1/groups/{group}/members/{client}/remove"
            | "/api/v1/groups/{group}/sessions"
            | "/api/v1/groups/{group}/sessions/{session}/cancel"
            | "/api/v1/groups/{group}/sessions/{session}/attendance"
            | "/api/v1/groups/{group}/members/{client}/notes"
            | "/api/v1/groups/{group}/sessions/{session}/join",
        ) => [401, 404, 404, 404, 404, 404, 404, 404, 404],
        _ => return None,
    })
}

pub fn body_for(spec: &RouteSpec) -> Option<&'static str> {
    Some(match (spec.method, spec.path) {
        ("POST", "/api/v1/me/schedule") => {
            r#"{"availability":{"time_zone":"Europe/London","weekly":[{"weekday":"Mon","start":"09:00:00","end":"17:00:00"}]}}"#
        }
        ("POST", "/api/v1/me/appointment-types") => {
            r#"{"kind":"session","minutes":50,"format":"video"}"#
        }
        ("POST", "/api/v1/clients/{id}/appointments") => {
            r#"{"clinician":"00000000-0000-0000-0000-000000000000","kind":"group","minutes":7,"format":"chat","starts_at":"2026-03-10T10:00:00Z"}"#
        }
        ("POST", "/api/v1/clients/{id}/time-zone") => r#"{"time_zone":"Mars/Olympus"}"#,
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/reschedule") => {
            r#"{"starts_at":"2026-03-10T10:00:00Z"}"#
        }
        ("POST", "/api/v1/clients/{id}/appointments/{appointment}/attendance") => {
            r#"{"attended":false}"#
        }
        ("POST", "/api/v1/clients/{id}/messages") => {
            r#"{"body":"Could we move Thursday's session to the afternoon?"}"#
        }
        ("POST", "/api/v1/clients/{id}/messages/reply-promise") => r#"{"hours":48}"#,
        ("POST", "/api/v1/practice/urgent-language") => {
            r#"{"op":"add","phrase":"  !! ","category":"suicide"}"#
        }
        ("POST", "/api/v1/practice/urgent-language/review") => "{}",
        ("POST", "/api/v1/groups") => {
            r#"{"name":"Managing worry","kind":"psychoeducation","capacity":"8","self_enrolment":"on","measures":"gad7, phq9"}"#
        }
        (
            "POST",
            "/api/v1/me/groups/{group}/join"
            | "/api/v1/me/groups/{group}/leave"
            | "/api/v1/groups/{group}/members/{client}/remove"
            | "/api/v1/groups/{group}/sessions/{session}/cancel"
            | "/api/v1/groups/{group}/sessions/{session}/join",
        ) => "{}",
        ("POST", "/api/v1/groups/{group}/members") => {
            r#"{"client_id":"00000000-0000-0000-0000-000000000000"}"#
        }
        ("POST", "/api/v1/groups/{group}/sessions") => {
            r#"{"starts_at":"2026-03-10T10:00:00Z","minutes":90,"format":"video"}"#
        }
        ("POST", "/api/v1/groups/{group}/sessions/{session}/attendance") => {
            r#"{"client_id":"00000000-0000-0000-0000-000000000000","status":"present"}"#
        }
        ("POST", "/api/v1/groups/{group}/members/{client}/notes") => {
            r#"{"body":"Practised the skill."}"#
        }
        _ => return None,
    })
}
