//! Group programmes through the real router: a facilitator without a care
//! relationship runs a group; members see each other by first name only and
//! never the notes; per-member notes are sealed, audited and readable by the
//! facilitators and the member's own care team; capacity, the facilitator's
//! calendar and attendance rules hold; server-set fields are refused.

use crate::fixture::*;
use chrono::Duration;
use serde_json::Value;
use tapestry_domain::client::Client;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

/// The non-treating clinician (no care relationship with client A) creates
/// a skills group measuring PHQ-9 and GAD-7; returns its id.
async fn create_group(f: &Fixture, capacity: u32, self_enrolment: bool) -> String {
    let body = format!(
        r#"{{"name":"Worry skills","kind":"skills","capacity":"{capacity}","self_enrolment":"{}","measures":"phq9, gad7","co_facilitator":""}}"#,
        if self_enrolment { "on" } else { "" }
    );
    let a = call(
        &f.state,
        "POST",
        "/api/v1/groups",
        f.login("non_treating"),
        Some(&body),
    )
    .await;
    assert_eq!(a.status, 201, "{}", a.body);
    json(&a.body)["id"].as_str().unwrap().to_string()
}

async fn add(f: &Fixture, group: &str, client: &Client) -> Answer_ {
    call(
        &f.state,
        "POST",
        &format!("/api/v1/groups/{group}/members"),
        f.login("non_treating"),
        Some(&format!(r#"{{"client_id":"{}"}}"#, client.id)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_runs_with_capacity_calendar_and_attendance_rules() {
    let f = fixture().await;
    let g = create_group(&f, 2, false).await;
    assert_eq!(add(&f, &g, &f.client_a).await.status, 201);
    // Twice: 409, naming the problem.
    let again = add(&f, &g, &f.client_a).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("already a member"), "{}", again.body);
    assert_eq!(add(&f, &g, &f.client_b).await.status, 201);
    let third = Client::new(f.practice.id, "Client Gamma", None, None, t0()).unwrap();
    f.store.insert_client(&third).await.unwrap();
    let full = add(&f, &g, &third).await;
    assert_eq!(full.status, 409);
    assert!(full.body.contains("full"), "{}", full.body);
    // Not a client of this practice: 422 naming client_id.
    let stranger = call(
        &f.state,
        "POST",
        &format!("/api/v1/groups/{g}/members"),
        f.login("non_treating"),
        Some(r#"{"client_id":"00000000-0000-0000-0000-000000000001"}"#),
    )
    .await;
    assert_eq!(stranger.status, 422);
    // Another clinician of the practice does not run this group.
    let other = call(
        &f.state,
        "GET",
        &format!("/api/v1/groups/{g}"),
        f.login("treating"),
        None,
    )
    .await;
    assert_eq!(other.status, 403);
    // Another practice: the same 404 as no group at all.
    let elsewhere = call(
        &f.state,
        "GET",
        &format!("/api/v1/groups/{g}"),
        f.login("other_practice"),
        None,
    )
    .await;
    assert_eq!(elsewhere.status, 404);

    // A session on the facilitator's calendar; an overlapping one is 409.
    let start = t0() + Duration::days(2);
    let body = format!(
        r#"{{"starts_at":"{}","minutes":"90","format":"video"}}"#,
        start.to_rfc3339()
    );
    let path = format!("/api/v1/groups/{g}/sessions");
    let s = call(
        &f.state,
        "POST",
        &path,
        f.login("non_treating"),
        Some(&body),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    let session = json(&s.body)["id"].as_str().unwrap().to_string();
    let twin = call(
        &f.state,
        "POST",
        &path,
        f.login("non_treating"),
        Some(&body),
    )
    .await;
    assert_eq!(twin.status, 409, "{}", twin.body);
    // A one-to-one appointment for the facilitator in that time: 409 too.
    let t = tapestry_domain::schedule::AppointmentType::new(
        tapestry_domain::schedule::AppointmentKind::Session,
        50,
        tapestry_domain::schedule::Format::Video,
    )
    .unwrap();
    let single = tapestry_domain::schedule::Appointment::book(
        f.practice.id,
        f.user("non_treating").id,
        f.client_b.id,
        t,
        start + Duration::minutes(30),
        t0(),
    )
    .unwrap();
    assert!(f.store.book_appointment(&single).await.is_err());

    // Attendance: present only once started; a non-member is refused.
    let att = format!("/api/v1/groups/{g}/sessions/{session}/attendance");
    let present = format!(r#"{{"client_id":"{}","status":"present"}}"#, f.client_a.id);
    let early = call(
        &f.state,
        "POST",
        &att,
        f.login("non_treating"),
        Some(&present),
    )
    .await;
    assert_eq!(early.status, 422, "{}", early.body);
    f.clock.set(start + Duration::minutes(5));
    // Two days on, the old sign-in has lapsed: sign in again.
    let fresh = session_for(&f.state, f.user("non_treating"), true).await;
    let me = Some(&fresh);
    let ok = call(&f.state, "POST", &att, me, Some(&present)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let outsider = format!(r#"{{"client_id":"{}","status":"absent"}}"#, third.id);
    let refused = call(&f.state, "POST", &att, me, Some(&outsider)).await;
    assert_eq!(refused.status, 422);
    let bad = format!(r#"{{"client_id":"{}","status":"late"}}"#, f.client_a.id);
    let bad = call(&f.state, "POST", &att, me, Some(&bad)).await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("status"), "{}", bad.body);
    let detail = call(&f.state, "GET", &format!("/api/v1/groups/{g}"), me, None).await;
    let detail = json(&detail.body);
    assert_eq!(detail["sessions"][0]["attendance"][0]["status"], "present");
    assert_eq!(detail["roster"].as_array().unwrap().len(), 2);

    // The facilitator's page and the members' page render.
    let page = call(&f.state, "GET", &format!("/groups/{g}"), me, None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Client Alpha") && page.body.contains("Attendance"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_see_first_names_only_and_notes_stay_with_facilitators_and_care_team() {
    let f = fixture().await;
    let g = create_group(&f, 8, true).await;
    assert_eq!(add(&f, &g, &f.client_a).await.status, 201);
    // Client B joins by themself (the programme allows it).
    let join = call(
        &f.state,
        "POST",
        &format!("/api/v1/me/groups/{g}/join"),
        f.login("client_b"),
        Some("{}"),
    )
    .await;
    assert_eq!(join.status, 201, "{}", join.body);

    let note_text = "Named a worry trigger at work; practised postponement.";
    let notes = format!("/api/v1/groups/{g}/members/{}/notes", f.client_a.id);
    let w = call(
        &f.state,
        "POST",
        &notes,
        f.login("non_treating"),
        Some(&format!(r#"{{"body":"{note_text}"}}"#)),
    )
    .await;
    assert_eq!(w.status, 201, "{}", w.body);

    // What client B sees of the group: first names, no notes, no surnames.
    let mine = call(
        &f.state,
        "GET",
        "/api/v1/me/groups",
        f.login("client_b"),
        None,
    )
    .await;
    assert_eq!(mine.status, 200);
    let v = json(&mine.body);
    let members: Vec<&str> = v["member_of"][0]["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    assert_eq!(members, vec!["Client", "Client"]);
    assert!(!mine.body.contains("Alpha") && !mine.body.contains(note_text));
    let page = call(&f.state, "GET", "/groups", f.login("client_b"), None).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Alpha") && !page.body.contains(note_text));

    // Who reads A's group notes: the facilitator (no care relationship),
    // A's treating clinician and supervisor. Not A, not B, not the owner or
    // admin, not another practice.
    for (who, status) in [
        ("non_treating", 200),
        ("treating", 200),
        ("supervisor", 200),
        ("client_a", 403),
        ("client_b", 404),
        ("owner", 403),
        ("practice_admin", 403),
        ("other_practice", 404),
    ] {
        let r = call(&f.state, "GET", &notes, f.login(who), None).await;
        assert_eq!(r.status, status, "{who}: {}", r.body);
        assert_eq!(r.body.contains(note_text), status == 200, "{who}");
    }
    // The group's measures: A's PHQ-9 total from the fixture.
    let r = call(&f.state, "GET", &notes, f.login("non_treating"), None).await;
    assert_eq!(json(&r.body)["measures"][0]["total"], 15.0);
    // Facilitating opens nothing else of A's record.
    let record = format!("/api/v1/clients/{}", f.client_a.id);
    assert_eq!(
        call(&f.state, "GET", &record, f.login("non_treating"), None)
            .await
            .status,
        403
    );
    // Only facilitators write notes.
    let by_treating = call(
        &f.state,
        "POST",
        &notes,
        f.login("treating"),
        Some(r#"{"body":"x"}"#),
    )
    .await;
    assert_eq!(by_treating.status, 403);
    // A client who was never a member: not found.
    let third = Client::new(f.practice.id, "Client Gamma", None, None, t0()).unwrap();
    f.store.insert_client(&third).await.unwrap();
    let none = format!("/api/v1/groups/{g}/members/{}/notes", third.id);
    assert_eq!(
        call(&f.state, "GET", &none, f.login("non_treating"), None)
            .await
            .status,
        404
    );

    // Sealed at rest.
    let raw: Vec<String> = sqlx::query_scalar("SELECT body FROM group_notes")
        .fetch_all(f.sqlite().pool())
        .await
        .unwrap();
    assert_eq!(raw.len(), 1);
    assert!(
        raw[0].starts_with("s1.") && !raw[0].contains("worry"),
        "{}",
        raw[0]
    );

    // Audited: the write and each allowed read name client A.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT action, outcome FROM audit_events WHERE action IN ('write_group_note','read_group_member')",
    )
    .fetch_all(f.sqlite().pool())
    .await
    .unwrap();
    assert!(events.contains(&("write_group_note".into(), "allowed".into())));
    assert!(
        events
            .iter()
            .filter(|(a, o)| a == "read_group_member" && o == "allowed")
            .count()
            >= 3
    );

    // Client B leaves; the place is free again.
    let leave = call(
        &f.state,
        "POST",
        &format!("/api/v1/me/groups/{g}/leave"),
        f.login("client_b"),
        Some("{}"),
    )
    .await;
    assert_eq!(leave.status, 200);
    let mine = call(
        &f.state,
        "GET",
        "/api/v1/me/groups",
        f.login("client_b"),
        None,
    )
    .await;
    assert!(json(&mine.body)["member_of"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_writes_refuse_server_set_and_malformed_fields() {
    let f = fixture().await;
    let g = create_group(&f, 4, false).await;
    assert_eq!(add(&f, &g, &f.client_a).await.status, 201);
    let before = f.fingerprint().await;
    let a = f.client_a.id;
    for (path, body) in [
        (
            format!("/api/v1/groups/{g}/members/{a}/notes"),
            r#"{"body":"x","author":"00000000-0000-0000-0000-000000000001"}"#.to_string(),
        ),
        (
            format!("/api/v1/groups/{g}/sessions"),
            r#"{"starts_at":"2026-03-10T10:00:00Z","minutes":60,"format":"video","status":"booked"}"#
                .to_string(),
        ),
        (
            "/api/v1/groups".to_string(),
            r#"{"name":"X","kind":"skills","capacity":4,"practice_id":"00000000-0000-0000-0000-000000000001"}"#
                .to_string(),
        ),
        // Empty, huge and malformed input.
        (format!("/api/v1/groups/{g}/members/{a}/notes"), r#"{"body":"   "}"#.to_string()),
        (
            format!("/api/v1/groups/{g}/members/{a}/notes"),
            format!(r#"{{"body":"{}"}}"#, "x".repeat(20_001)),
        ),
        ("/api/v1/groups".to_string(), r#"{"name":"X","kind":"skills","capacity":"many"}"#.to_string()),
        ("/api/v1/groups".to_string(), r#"{"name":"X","kind":"skills","capacity":0}"#.to_string()),
    ] {
        let r = call(&f.state, "POST", &path, f.login("non_treating"), Some(&body)).await;
        assert!(matches!(r.status.as_u16(), 400 | 422), "{path}: {} {}", r.status, r.body);
    }
    assert_eq!(before, f.fingerprint().await);
}

/// A client of the practice with an account, signed in.
async fn member_with_login(f: &Fixture, name: &str) -> (Client, Login) {
    let u = tapestry_domain::user::User::new(
        f.practice.id,
        &format!("{}@example.org", name.to_lowercase().replace(' ', ".")),
        name,
        tapestry_domain::user::Role::Client,
        t0(),
    )
    .unwrap();
    f.store.insert_user(&u, None).await.unwrap();
    let mut c = Client::new(f.practice.id, name, None, None, t0()).unwrap();
    c.user_id = Some(u.id);
    f.store.insert_client(&c).await.unwrap();
    (c, session_for(&f.state, &u, true).await)
}

/// A video group run by the treating clinician with a session starting in
/// five minutes; returns (group id, session id).
pub(crate) async fn group_session_now(f: &Fixture, members: &[&Client]) -> (String, String) {
    let a = call(
        &f.state,
        "POST",
        "/api/v1/groups",
        f.login("treating"),
        Some(r#"{"name":"Skills group","kind":"skills","capacity":8}"#),
    )
    .await;
    let g = json(&a.body)["id"].as_str().unwrap().to_string();
    for m in members {
        let r = call(
            &f.state,
            "POST",
            &format!("/api/v1/groups/{g}/members"),
            f.login("treating"),
            Some(&format!(r#"{{"client_id":"{}"}}"#, m.id)),
        )
        .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let body = format!(
        r#"{{"starts_at":"{}","minutes":60,"format":"video"}}"#,
        (t0() + Duration::minutes(5)).to_rfc3339()
    );
    let s = call(
        &f.state,
        "POST",
        &format!("/api/v1/groups/{g}/sessions"),
        f.login("treating"),
        Some(&body),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    (g, json(&s.body)["id"].as_str().unwrap().to_string())
}

async fn group_token(f: &Fixture, login: Option<&Login>, g: &str, s: &str) -> Answer_ {
    call(
        &f.state,
        "POST",
        &format!("/api/v1/groups/{g}/sessions/{s}/join"),
        login,
        Some("{}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_room_admits_members_as_a_mesh_and_refuses_outsiders_and_the_seventh() {
    use crate::sessions::{connect, next_of, send, serve, token_of};
    let f = fixture().await;
    let addr = serve(&f).await;
    let mut extra = Vec::new();
    for name in ["Cora Doe", "Dev Roe", "Eli Poe", "Fay Loe", "Gus Outsider"] {
        extra.push(member_with_login(&f, name).await);
    }
    let members: Vec<&Client> = [&f.client_a, &f.client_b]
        .into_iter()
        .chain(extra.iter().take(4).map(|(c, _)| c))
        .collect();
    let (g, s) = group_session_now(&f, &members).await;

    // Outsiders get no token: a client who is not a member, a clinician who
    // does not facilitate, the practice admin, another practice.
    let (_, outsider) = &extra[4];
    assert_eq!(group_token(&f, Some(outsider), &g, &s).await.status, 403);
    for who in ["non_treating", "practice_admin"] {
        assert_eq!(
            group_token(&f, f.login(who), &g, &s).await.status,
            403,
            "{who}"
        );
    }
    assert_eq!(
        group_token(&f, f.login("other_practice"), &g, &s)
            .await
            .status,
        404
    );
    // A member's token altered to name the outsider does not open the room.
    let a_token = token_of(&group_token(&f, f.login("client_a"), &g, &s).await);
    let outsider_user = f
        .store
        .client(f.practice.id, extra[4].0.id)
        .await
        .unwrap()
        .unwrap()
        .user_id
        .unwrap();
    let forged = a_token.replacen(
        &f.user("client_a").id.to_string(),
        &outsider_user.to_string(),
        1,
    );
    assert_eq!(connect(addr, &forged).await.err(), Some(403));

    // The facilitator hosts; two members wait, are admitted, and meet as a mesh.
    let mut host = connect(
        addr,
        &token_of(&group_token(&f, f.login("treating"), &g, &s).await),
    )
    .await
    .unwrap();
    let host_id = next_of(&mut host, "hello").await["id"].as_u64().unwrap();
    let mut a = connect(addr, &a_token).await.unwrap();
    let a_id = next_of(&mut a, "hello").await["id"].as_u64().unwrap();
    next_of(&mut a, "waiting").await;
    let mut b = connect(
        addr,
        &token_of(&group_token(&f, f.login("client_b"), &g, &s).await),
    )
    .await
    .unwrap();
    let b_id = next_of(&mut b, "hello").await["id"].as_u64().unwrap();
    next_of(&mut b, "waiting").await;
    next_of(&mut host, "knock").await;
    send(&mut host, serde_json::json!({"type":"admit"})).await;
    // A is admitted first: the host offers to A. Then B: host and A offer to B.
    let j = next_of(&mut host, "peer_joined").await;
    assert_eq!(
        (j["id"].as_u64(), j["initiator"].as_bool()),
        (Some(a_id), Some(true))
    );
    let j = next_of(&mut a, "peer_joined").await;
    assert_eq!(
        (j["id"].as_u64(), j["initiator"].as_bool()),
        (Some(host_id), Some(false))
    );
    let j = next_of(&mut host, "peer_joined").await;
    assert_eq!(
        (j["id"].as_u64(), j["initiator"].as_bool()),
        (Some(b_id), Some(true))
    );
    let j = next_of(&mut a, "peer_joined").await;
    assert_eq!(
        (j["id"].as_u64(), j["initiator"].as_bool()),
        (Some(b_id), Some(true))
    );
    let mut b_peers = vec![
        next_of(&mut b, "peer_joined").await["id"].as_u64().unwrap(),
        next_of(&mut b, "peer_joined").await["id"].as_u64().unwrap(),
    ];
    b_peers.sort_unstable();
    let mut want = vec![host_id, a_id];
    want.sort_unstable();
    assert_eq!(b_peers, want);
    // A signal addressed to B reaches B, marked as from A.
    let offer = serde_json::json!({"sdp":{"type":"offer","sdp":"v=0 fake"}});
    send(
        &mut a,
        serde_json::json!({"type":"signal","to":b_id,"data":offer}),
    )
    .await;
    let got = next_of(&mut b, "signal").await;
    assert_eq!((got["from"].as_u64(), &got["data"]), (Some(a_id), &offer));
    // Group chat: typing and lines reach the admitted participants with the
    // sender's first name only; the line is sealed into the group's record.
    send(&mut b, serde_json::json!({"type":"typing"})).await;
    let typing = next_of(&mut a, "typing").await;
    let b_full = f.user("client_b").display_name.clone();
    let b_first = b_full.split_whitespace().next().unwrap().to_string();
    assert_eq!(typing["name"], b_first.as_str());
    let canary = "CANARY-91c2 hello all";
    send(&mut a, serde_json::json!({"type":"chat","text":canary})).await;
    for ws in [&mut host, &mut a, &mut b] {
        let line = next_of(ws, "chat").await;
        assert_eq!(line["text"], canary);
        assert_eq!(line["from"], "guest");
    }
    // Empty and huge lines are refused and not stored.
    send(&mut a, serde_json::json!({"type":"chat","text":"  "})).await;
    next_of(&mut a, "error").await;
    send(
        &mut a,
        serde_json::json!({"type":"chat","text":"x".repeat(4001)}),
    )
    .await;
    next_of(&mut a, "error").await;
    send(
        &mut host,
        serde_json::json!({"type":"chat","text":"Welcome, everyone"}),
    )
    .await;
    next_of(&mut a, "chat").await;
    use sqlx::Row;
    let rows = sqlx::query("SELECT body FROM group_chat_lines")
        .fetch_all(f.sqlite().pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for r in &rows {
        let raw: String = r.get("body");
        assert!(raw.starts_with("s1.") && !raw.contains("CANARY"), "{raw}");
    }
    // The transcript: the facilitator reads it (audited); members see the
    // chat live only; other staff and practices do not see it.
    let path = format!("/api/v1/groups/{g}/chat");
    let t = call(&f.state, "GET", &path, f.login("treating"), None).await;
    assert_eq!(t.status, 200, "{}", t.body);
    let lines: serde_json::Value = json(&t.body);
    assert_eq!(lines.as_array().unwrap().len(), 2);
    assert_eq!(lines[0]["text"], canary);
    assert_eq!(lines[1]["from"], "host");
    assert!(!t.body.contains(&b_full) && !t.body.contains("Client Alpha"));
    for (who, status) in [
        ("client_a", 403),
        ("client_b", 403),
        ("non_treating", 403),
        ("practice_admin", 403),
        ("other_practice", 404),
    ] {
        let r = call(&f.state, "GET", &path, f.login(who), None).await;
        assert_eq!(r.status, status, "{who}: {}", r.body);
        assert!(!r.body.contains("CANARY"), "{who}");
    }
    let audited = sqlx::query(
        "SELECT COUNT(*) AS n FROM audit_events WHERE action = 'group_chat_transcript_read'",
    )
    .fetch_one(f.sqlite().pool())
    .await
    .unwrap();
    assert_eq!(audited.get::<i64, _>("n"), 1);

    // Fill the room to six (host + five members); the seventh is refused,
    // at the socket (a token issued earlier) and at the token.
    let seventh_token = token_of(&group_token(&f, Some(&extra[3].1), &g, &s).await);
    let mut more = Vec::new();
    for (_, login) in extra.iter().take(3) {
        let t = token_of(&group_token(&f, Some(login), &g, &s).await);
        more.push(connect(addr, &t).await.unwrap());
    }
    for ws in more.iter_mut() {
        next_of(ws, "hello").await;
    }
    assert_eq!(
        f.state
            .online
            .rooms
            .occupancy(tapestry_domain::schedule::AppointmentId::from_uuid(
                s.parse().unwrap()
            )),
        6
    );
    assert_eq!(connect(addr, &seventh_token).await.err(), Some(409));
    let refused = group_token(&f, Some(&extra[3].1), &g, &s).await;
    assert_eq!(refused.status, 409);
    assert!(refused.body.contains("at most 6"), "{}", refused.body);
    // Someone leaves: the others hear which participant, and the place is free.
    drop(b);
    let left = next_of(&mut host, "peer_left").await;
    assert_eq!(left["id"].as_u64(), Some(b_id));
    let mut seventh = connect(addr, &seventh_token).await.unwrap();
    next_of(&mut seventh, "hello").await;
}

/// A weekly group series keeps its London wall-clock time across the EU
/// spring-forward (29 March 2026), skips (and reports) the week the
/// facilitator already has an appointment, and never books over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weekly_group_series_keeps_local_time_and_never_double_books_the_facilitator() {
    use chrono::TimeZone;
    let f = fixture().await;
    let g = create_group(&f, 6, false).await;
    let busy_at = chrono::Utc
        .with_ymd_and_hms(2026, 3, 17, 18, 30, 0)
        .unwrap();
    let t = tapestry_domain::schedule::AppointmentType::new(
        tapestry_domain::schedule::AppointmentKind::Session,
        50,
        tapestry_domain::schedule::Format::Video,
    )
    .unwrap();
    let busy = tapestry_domain::schedule::Appointment::book(
        f.practice.id,
        f.user("non_treating").id,
        f.client_b.id,
        t,
        busy_at,
        t0(),
    )
    .unwrap();
    f.store.book_appointment(&busy).await.unwrap();
    let path = format!("/api/v1/groups/{g}/sessions");
    // Malformed rules name their field and book nothing.
    for (bad, field) in [
        (r#"{"every":"weekly","until":{"count":0}}"#, "count"),
        (r#"{"every":"weekly","until":{"count":53}}"#, "count"),
        (
            r#"{"every":"daily","until":{"count":3}}"#,
            "recurrence.every",
        ),
    ] {
        let body = format!(
            r#"{{"starts_at":"2026-03-03T18:00:00Z","minutes":"90","format":"video","recurrence":{bad}}}"#
        );
        let r = call(
            &f.state,
            "POST",
            &path,
            f.login("non_treating"),
            Some(&body),
        )
        .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(r.body.contains(field), "{bad}: {}", r.body);
    }
    let body = r#"{"starts_at":"2026-03-03T18:00:00Z","minutes":"90","format":"video","recurrence":{"every":"weekly","until":{"count":6}}}"#;
    let r = call(&f.state, "POST", &path, f.login("non_treating"), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = json(&r.body);
    let occ = v["occurrences"].as_array().unwrap();
    assert_eq!(occ.len(), 6);
    assert_eq!(occ[2]["conflict"], "2026-03-17T18:00:00Z");
    assert_eq!(occ.iter().filter(|o| o.get("booked").is_some()).count(), 5);
    let stored = f
        .store
        .group_sessions_for_clinician(
            f.practice.id,
            f.user("non_treating").id,
            t0(),
            t0() + Duration::days(60),
        )
        .await
        .unwrap();
    let starts: Vec<String> = stored.iter().map(|s| s.starts_at.to_rfc3339()).collect();
    // 18:00 London: GMT (UTC) before 29 March, BST (UTC+1) after.
    assert_eq!(
        starts,
        vec![
            "2026-03-03T18:00:00+00:00",
            "2026-03-10T18:00:00+00:00",
            "2026-03-24T18:00:00+00:00",
            "2026-03-31T17:00:00+00:00",
            "2026-04-07T17:00:00+00:00",
        ]
    );
    let series = stored[0].series_id.unwrap();
    assert!(stored.iter().all(|s| s.series_id == Some(series)));
    // Fortnightly from the same start: every slot is now taken (409s are
    // reported per occurrence), so nothing new is stored.
    let body = r#"{"starts_at":"2026-03-03T18:00:00Z","minutes":"90","format":"video","recurrence":{"every":"fortnightly","until":{"count":2}}}"#;
    let r = call(&f.state, "POST", &path, f.login("non_treating"), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v = json(&r.body);
    assert!(v["occurrences"]
        .as_array()
        .unwrap()
        .iter()
        .all(|o| o.get("conflict").is_some()));
    let again = f
        .store
        .group_sessions_for_clinician(
            f.practice.id,
            f.user("non_treating").id,
            t0(),
            t0() + Duration::days(60),
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 5);
}

/// The group page's session form sends a wall time (`datetime-local`): it
/// is read in the facilitator's zone (London, BST in April); a time that is
/// neither an instant nor a wall time is refused naming `starts_at`. The
/// page shows times in that zone and offers the facilitator's own clients
/// by name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_page_schedules_in_the_facilitators_zone_and_offers_their_clients() {
    let f = fixture().await;
    let g = create_group(&f, 6, false).await;
    let path = format!("/api/v1/groups/{g}/sessions");
    let before = f.fingerprint().await;
    for bad in ["next Tuesday", "2026-04-14", "2026-13-14T18:00", ""] {
        let body = serde_json::json!({"starts_at": bad, "minutes": "90", "format": "video"});
        let r = call(
            &f.state,
            "POST",
            &path,
            f.login("non_treating"),
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
        assert!(r.body.contains("starts_at"), "{bad}: {}", r.body);
    }
    assert_eq!(before, f.fingerprint().await);
    let body = r#"{"starts_at":"2026-04-14T18:00","minutes":"90","format":"video"}"#;
    let r = call(&f.state, "POST", &path, f.login("non_treating"), Some(body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let stored = f
        .store
        .group_sessions_for_clinician(
            f.practice.id,
            f.user("non_treating").id,
            t0(),
            t0() + Duration::days(90),
        )
        .await
        .unwrap();
    assert_eq!(
        stored
            .iter()
            .map(|s| s.starts_at.to_rfc3339())
            .collect::<Vec<_>>(),
        vec!["2026-04-14T17:00:00+00:00"]
    );
    let page = call(
        &f.state,
        "GET",
        &format!("/groups/{g}"),
        f.login("non_treating"),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Tue 14 Apr 2026, 18:00 BST"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains(r#"type="datetime-local""#),
        "{}",
        page.body
    );
    // This facilitator treats nobody: the page names no client, and offers
    // only the field for a referred client's reference.
    assert!(
        !page.body.contains(r#"<select id="m-client""#),
        "{}",
        page.body
    );
    assert!(
        !page.body.contains(&f.client_a.display_name),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"id="m-ref""#), "{}", page.body);
    // A facilitator who treats client A is offered them by name, until
    // they are a member.
    let r = call(
        &f.state,
        "POST",
        "/api/v1/groups",
        f.login("treating"),
        Some(r#"{"name":"Sleep skills","kind":"skills","capacity":"4","measures":"phq9","co_facilitator":""}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mine = json(&r.body)["id"].as_str().unwrap().to_string();
    let page = call(
        &f.state,
        "GET",
        &format!("/groups/{mine}"),
        f.login("treating"),
        None,
    )
    .await;
    assert!(
        page.body.contains(&format!(
            r#"<option value="{}">{}</option>"#,
            f.client_a.id, f.client_a.display_name
        )),
        "{}",
        page.body
    );
    let r = call(
        &f.state,
        "POST",
        &format!("/api/v1/groups/{mine}/members"),
        f.login("treating"),
        Some(&format!(r#"{{"client_id":"{}"}}"#, f.client_a.id)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page = call(
        &f.state,
        "GET",
        &format!("/groups/{mine}"),
        f.login("treating"),
        None,
    )
    .await;
    assert!(
        !page.body.contains(r#"<select id="m-client""#),
        "{}",
        page.body
    );
}
