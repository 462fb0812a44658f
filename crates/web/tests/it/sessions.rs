//! Online sessions over HTTP and a real WebSocket: booking races, the join
//! token at the socket, the room (waiting room, admission, signalling relay,
//! sealed chat), secure messages (urgent language, attachments, sealing).

use crate::fixture::*;
use chrono::{Duration, TimeZone, Utc};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use std::net::SocketAddr;
use tapestry_domain::schedule::{
    Appointment, AppointmentKind, AppointmentType, Availability, BookingRules, Format, WeeklyHours,
};
use tapestry_store::schedule::ClinicianSchedule;
use tokio_tungstenite::tungstenite::Message;

fn session_type(format: Format) -> AppointmentType {
    AppointmentType::new(AppointmentKind::Session, 50, format).unwrap()
}

/// The treating clinician works Monday to Friday 09:00-17:00 London.
pub(crate) async fn open_calendar(f: &Fixture) {
    let weekly = [
        chrono::Weekday::Mon,
        chrono::Weekday::Tue,
        chrono::Weekday::Wed,
        chrono::Weekday::Thu,
        chrono::Weekday::Fri,
    ]
    .into_iter()
    .map(|weekday| WeeklyHours {
        weekday,
        start: chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        end: chrono::NaiveTime::from_hms_opt(17, 0, 0).unwrap(),
    })
    .collect();
    f.store
        .put_clinician_schedule(&ClinicianSchedule {
            practice_id: f.practice.id,
            clinician: f.user("treating").id,
            availability: Availability {
                time_zone: "Europe/London".into(),
                weekly,
                exceptions: vec![],
            },
            rules: BookingRules::default(),
            policy: Default::default(),
            updated_at: t0(),
        })
        .await
        .unwrap();
    for format in [Format::Video, Format::Phone] {
        f.store
            .add_appointment_type(f.practice.id, session_type(format))
            .await
            .unwrap();
    }
}

fn book_body(f: &Fixture, starts_at: &str) -> String {
    format!(
        r#"{{"clinician":"{}","kind":"session","minutes":50,"format":"video","starts_at":"{starts_at}"}}"#,
        f.user("treating").id
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_racing_for_one_slot_get_one_201_and_one_409() {
    let f = fixture().await;
    open_calendar(&f).await;
    // Wednesday 4 March 2026, 10:00 London (GMT) = 10:00 UTC; t0 is Monday.
    let body = book_body(&f, "2026-03-04T10:00:00Z");
    let path_a = format!("/api/v1/clients/{}/appointments", f.client_a.id);
    let path_b = format!("/api/v1/clients/{}/appointments", f.client_b.id);
    let (a, b) = tokio::join!(
        call(&f.state, "POST", &path_a, f.login("client_a"), Some(&body)),
        call(&f.state, "POST", &path_b, f.login("client_b"), Some(&body)),
    );
    let mut codes = [a.status.as_u16(), b.status.as_u16()];
    codes.sort_unstable();
    assert_eq!(codes, [201, 409], "{} / {}", a.body, b.body);
    // Exactly one appointment exists; the loser has none.
    let booked = f
        .store
        .appointments_for_clinician(
            f.practice.id,
            f.user("treating").id,
            t0(),
            t0() + Duration::days(7),
        )
        .await
        .unwrap();
    assert_eq!(booked.len(), 1);
    let a_has = !f
        .store
        .appointments_for_client(f.practice.id, f.client_a.id)
        .await
        .unwrap()
        .is_empty();
    let b_has = !f
        .store
        .appointments_for_client(f.practice.id, f.client_b.id)
        .await
        .unwrap()
        .is_empty();
    assert!(a_has ^ b_has);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_booking_keeps_to_the_clinicians_rules_and_slots_show_the_clients_zone() {
    let f = fixture().await;
    open_calendar(&f).await;
    let path = format!("/api/v1/clients/{}/appointments", f.client_a.id);
    // Too soon (default notice 24 h), outside hours, too far ahead: refused, nothing stored.
    for at in [
        "2026-03-02T14:00:00Z",
        "2026-03-04T20:00:00Z",
        "2026-09-01T10:00:00Z",
    ] {
        let r = call(
            &f.state,
            "POST",
            &path,
            f.login("client_a"),
            Some(&book_body(&f, at)),
        )
        .await;
        assert_eq!(r.status, 409, "{at}: {}", r.body);
        assert!(r.body.contains("booking_refused"));
    }
    // Seconds in a start time: a malformed request naming the field.
    let r = call(
        &f.state,
        "POST",
        &path,
        f.login("client_a"),
        Some(&book_body(&f, "2026-03-04T10:00:30Z")),
    )
    .await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("starts_at"));
    // A client cannot set up a series.
    let series = format!(
        r#"{{"clinician":"{}","kind":"session","minutes":50,"format":"video","starts_at":"2026-03-04T10:00:00Z","recurrence":{{"every":"weekly","until":{{"count":4}}}}}}"#,
        f.user("treating").id
    );
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&series)).await;
    assert_eq!(r.status, 422);
    // The clinician can: four weekly occurrences.
    let r = call(&f.state, "POST", &path, f.login("treating"), Some(&series)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["occurrences"].as_array().unwrap().len(), 4);
    // Slots for New York: the 09:00 London slot is 04:00 in New York.
    let slots = call(
        &f.state,
        "GET",
        &format!(
            "/api/v1/clients/{}/slots?clinician={}&kind=session&minutes=50&format=video&from=2026-03-05&to=2026-03-05&time_zone=America/New_York",
            f.client_a.id,
            f.user("treating").id
        ),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(slots.status, 200, "{}", slots.body);
    let list: Vec<Value> = serde_json::from_str(&slots.body).unwrap();
    assert!(!list.is_empty());
    assert_eq!(list[0]["client_local_start"], "2026-03-05T04:00:00");
    assert_eq!(list[0]["client_time_zone"], "America/New_York");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_no_show_ics_and_the_secret_feed_carry_no_names() {
    let f = fixture().await;
    open_calendar(&f).await;
    let path = format!("/api/v1/clients/{}/appointments", f.client_a.id);
    let phone = format!(
        r#"{{"clinician":"{}","kind":"session","minutes":50,"format":"phone","starts_at":"2026-03-04T10:00:00Z"}}"#,
        f.user("treating").id
    );
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&phone)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let id = v["id"].as_str().unwrap().to_string();
    // The client's .ics.
    let ics = call(
        &f.state,
        "GET",
        &format!("{path}/{id}/ics"),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(ics.status, 200);
    assert!(ics.body.starts_with("BEGIN:VCALENDAR"));
    assert!(!ics.body.contains("Alpha"));
    // The clinician's feed URL works without a session and names nobody.
    let feed = call(
        &f.state,
        "POST",
        "/api/v1/me/calendar-feed",
        f.login("treating"),
        Some("{}"),
    )
    .await;
    assert_eq!(feed.status, 201);
    let url = serde_json::from_str::<Value>(&feed.body).unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let cal = call(&f.state, "GET", &url, None, None).await;
    assert_eq!(cal.status, 200);
    assert!(
        cal.body.contains("Session · 50 min · phone"),
        "{}",
        cal.body
    );
    for word in ["Alpha", "Beta", "client_a", "phq"] {
        assert!(!cal.body.contains(word), "{word} in feed");
    }
    // Revoked: the same URL is a 404; a guessed one too.
    call(
        &f.state,
        "POST",
        "/api/v1/me/calendar-feed/revoke",
        f.login("treating"),
        Some("{}"),
    )
    .await;
    assert_eq!(call(&f.state, "GET", &url, None, None).await.status, 404);
    assert_eq!(
        call(&f.state, "GET", "/calendar/abc.ics", None, None)
            .await
            .status,
        404
    );
    // No-show cannot be recorded before the start, by the client, or twice.
    let att = format!("{path}/{id}/attendance");
    let r = call(
        &f.state,
        "POST",
        &att,
        f.login("treating"),
        Some(r#"{"attended":false}"#),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.body);
    f.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 4, 10, 5, 0).unwrap());
    // Sessions from two days ago have expired: sign in again.
    let (client, clinician) = (relogin(&f, "client_a").await, relogin(&f, "treating").await);
    let r = call(
        &f.state,
        "POST",
        &att,
        Some(&client),
        Some(r#"{"attended":false}"#),
    )
    .await;
    assert_eq!(r.status, 403);
    let r = call(
        &f.state,
        "POST",
        &att,
        Some(&clinician),
        Some(r#"{"attended":false}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("no_show"));
    let r = call(
        &f.state,
        "POST",
        &att,
        Some(&clinician),
        Some(r#"{"attended":true}"#),
    )
    .await;
    assert_eq!(r.status, 422);
    // Cancelling a past appointment is refused.
    let r = call(
        &f.state,
        "POST",
        &format!("{path}/{id}/cancel"),
        Some(&client),
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_client_cancellation_is_recorded_as_late() {
    let f = fixture().await;
    open_calendar(&f).await;
    let path = format!("/api/v1/clients/{}/appointments", f.client_a.id);
    let r = call(
        &f.state,
        "POST",
        &path,
        f.login("client_a"),
        Some(&book_body(&f, "2026-03-04T10:00:00Z")),
    )
    .await;
    let id = serde_json::from_str::<Value>(&r.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 3, 22, 0, 0).unwrap());
    let r = call(
        &f.state,
        "POST",
        &format!("{path}/{id}/cancel"),
        Some(&relogin(&f, "client_a").await),
        Some("{}"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains(r#""late_cancel":true"#));
}

/// An appointment for client A with the treating clinician, starting five
/// minutes after the fixture's "now" (inside the join window).
pub async fn appointment_now(f: &Fixture, format: Format) -> Appointment {
    let a = Appointment::book(
        f.practice.id,
        f.user("treating").id,
        f.client_a.id,
        session_type(format),
        t0() + Duration::minutes(5),
        t0(),
    )
    .unwrap();
    f.store.book_appointment(&a).await.unwrap();
    a
}

pub async fn serve(f: &Fixture) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tapestry_web::router(f.state.clone());
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    addr
}

async fn relogin(f: &Fixture, who: &str) -> Login {
    session_for(&f.state, f.user(who), true).await
}

async fn join_token_as(f: &Fixture, login: &Login, a: &Appointment) -> Answer_ {
    call(
        &f.state,
        "POST",
        &format!(
            "/api/v1/clients/{}/appointments/{}/join",
            f.client_a.id, a.id
        ),
        Some(login),
        Some("{}"),
    )
    .await
}

async fn join_token(f: &Fixture, who: &str, a: &Appointment) -> Answer_ {
    call(
        &f.state,
        "POST",
        &format!(
            "/api/v1/clients/{}/appointments/{}/join",
            f.client_a.id, a.id
        ),
        f.login(who),
        Some("{}"),
    )
    .await
}

pub(crate) fn token_of(r: &Answer_) -> String {
    serde_json::from_str::<Value>(&r.body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub(crate) async fn connect(addr: SocketAddr, token: &str) -> Result<Ws, u16> {
    match tokio_tungstenite::connect_async(format!("ws://{addr}/sessions/ws?token={token}")).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("unexpected socket error: {e}"),
    }
}

/// The next message of a given type (others skipped), with a generous bound.
pub(crate) async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    for _ in 0..20 {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("room went quiet")
            .expect("socket closed")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
    panic!("no {kind} message");
}

pub(crate) async fn send(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_refuses_non_participants_foreign_and_expired_tokens() {
    let f = fixture().await;
    let addr = serve(&f).await;
    let appt = appointment_now(&f, Format::Video).await;
    // Only the appointment's own participants get a token: the supervisor
    // may read the schedule but does not join; others are refused earlier.
    assert_eq!(join_token(&f, "supervisor", &appt).await.status, 403);
    assert_eq!(join_token(&f, "practice_admin", &appt).await.status, 403);
    assert_eq!(join_token(&f, "non_treating", &appt).await.status, 403);
    assert_eq!(join_token(&f, "client_b", &appt).await.status, 404);
    let grant = join_token(&f, "client_a", &appt).await;
    assert_eq!(grant.status, 201, "{}", grant.body);
    let token = token_of(&grant);
    // No token, a garbage token, a token altered to name another person.
    assert_eq!(connect(addr, "").await.err(), Some(403));
    assert_eq!(connect(addr, "not.a.token").await.err(), Some(403));
    let other = token.replacen(
        &f.user("client_a").id.to_string(),
        &f.user("client_b").id.to_string(),
        1,
    );
    assert_eq!(connect(addr, &other).await.err(), Some(403));
    // A token from another server (another key) is foreign.
    let foreign = tapestry_web::sessions::video::sign_join_token(
        &[0u8; 32],
        &tapestry_web::sessions::video::JoinClaims {
            practice: f.practice.id,
            appointment: appt.id,
            user: f.user("client_a").id,
            role: tapestry_web::sessions::video::RoomRole::Guest,
            expires_at: t0() + Duration::minutes(2),
        },
    )
    .unwrap();
    assert_eq!(connect(addr, &foreign).await.err(), Some(403));
    // The genuine token opens the socket: the client waits.
    let mut ws = connect(addr, &token).await.unwrap();
    next_of(&mut ws, "waiting").await;
    drop(ws);
    // Two minutes later the same token is expired.
    f.clock.advance(Duration::seconds(121));
    assert_eq!(connect(addr, &token).await.err(), Some(403));
    // After the window (15 minutes past the end) no token is issued at all.
    f.clock.set(appt.ends_at + Duration::minutes(16));
    assert_eq!(
        join_token_as(&f, &relogin(&f, "client_a").await, &appt)
            .await
            .status,
        409
    );
    // Nor before it opens (more than 15 minutes ahead).
    f.clock.set(appt.starts_at - Duration::minutes(16));
    assert_eq!(
        join_token_as(&f, &relogin(&f, "client_a").await, &appt)
            .await
            .status,
        409
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinician_admits_the_client_then_signals_relay_and_chat_is_sealed() {
    let f = fixture().await;
    let addr = serve(&f).await;
    let appt = appointment_now(&f, Format::Video).await;
    let mut guest = connect(addr, &token_of(&join_token(&f, "client_a", &appt).await))
        .await
        .unwrap();
    next_of(&mut guest, "waiting").await;
    let mut host = connect(addr, &token_of(&join_token(&f, "treating", &appt).await))
        .await
        .unwrap();
    next_of(&mut host, "knock").await;
    // A waiting client cannot signal or chat.
    send(
        &mut guest,
        serde_json::json!({"type":"chat","text":"hello?"}),
    )
    .await;
    let e = next_of(&mut guest, "error").await;
    assert!(e["message"].as_str().unwrap().contains("waiting room"));
    // Only the host admits.
    send(&mut guest, serde_json::json!({"type":"admit"})).await;
    send(&mut host, serde_json::json!({"type":"admit"})).await;
    next_of(&mut guest, "admitted").await;
    assert_eq!(next_of(&mut host, "peer_joined").await["initiator"], true);
    assert_eq!(next_of(&mut guest, "peer_joined").await["initiator"], false);
    // Signals go to the other side unchanged.
    let offer = serde_json::json!({"sdp":{"type":"offer","sdp":"v=0 fake"}});
    send(&mut host, serde_json::json!({"type":"signal","data":offer})).await;
    assert_eq!(next_of(&mut guest, "signal").await["data"], offer);
    // Typing and chat.
    send(&mut guest, serde_json::json!({"type":"typing"})).await;
    assert_eq!(next_of(&mut host, "typing").await["from"], "guest");
    let canary = "CANARY-7f3a I slept badly";
    send(&mut guest, serde_json::json!({"type":"chat","text":canary})).await;
    assert_eq!(next_of(&mut host, "chat").await["text"], canary);
    assert_eq!(next_of(&mut guest, "chat").await["text"], canary);
    // Empty and huge lines are refused, not stored.
    send(&mut guest, serde_json::json!({"type":"chat","text":"   "})).await;
    next_of(&mut guest, "error").await;
    send(
        &mut guest,
        serde_json::json!({"type":"chat","text":"x".repeat(4001)}),
    )
    .await;
    next_of(&mut guest, "error").await;
    // The transcript is in the record, sealed at rest.
    use sqlx::Row;
    let rows = sqlx::query("SELECT body FROM chat_lines")
        .fetch_all(f.sqlite().pool())
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let raw: String = rows[0].get("body");
    assert!(raw.starts_with("s1.") && !raw.contains("CANARY"));
    let t = call(
        &f.state,
        "GET",
        &format!(
            "/api/v1/clients/{}/appointments/{}/chat",
            f.client_a.id, appt.id
        ),
        f.login("treating"),
        None,
    )
    .await;
    assert_eq!(t.status, 200);
    assert!(t.body.contains(canary));
    // Leaving tells the other side.
    drop(guest);
    next_of(&mut host, "peer_left").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_urgent_client_message_raises_a_risk_task_without_its_text() {
    let f = fixture().await;
    let path = format!("/api/v1/clients/{}/messages", f.client_a.id);
    let before = f.store.open_tasks(f.practice.id).await.unwrap().len();
    let r = call(
        &f.state,
        "POST",
        &path,
        f.login("client_a"),
        Some(r#"{"body":"CANARY-91 Some days I want to END my life."}"#),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.contains("emergency"));
    let tasks = f.store.open_tasks(f.practice.id).await.unwrap();
    assert_eq!(tasks.len(), before + 1);
    let task = tasks
        .iter()
        .find(|t| t.title.contains("secure message"))
        .unwrap();
    assert_eq!(task.client_id, f.client_a.id);
    assert!(task.detail.contains("suicide"));
    assert!(!task.detail.contains("CANARY") && !task.title.contains("CANARY"));
    // The treating clinician is alerted (content-free).
    let alerts = f
        .store
        .alerts_for(f.practice.id, f.user("treating").id)
        .await
        .unwrap();
    assert!(alerts.iter().any(|a| a.kind == "urgent_message"));
    // An ordinary message raises nothing; a clinician's message is never screened.
    call(
        &f.state,
        "POST",
        &path,
        f.login("client_a"),
        Some(r#"{"body":"Running late today"}"#),
    )
    .await;
    call(
        &f.state,
        "POST",
        &path,
        f.login("treating"),
        Some(r#"{"body":"If you want to die, call us"}"#),
    )
    .await;
    assert_eq!(
        f.store.open_tasks(f.practice.id).await.unwrap().len(),
        before + 1
    );
    // Sealed at rest.
    use sqlx::Row;
    for r in sqlx::query("SELECT body FROM secure_messages")
        .fetch_all(f.sqlite().pool())
        .await
        .unwrap()
    {
        let raw: String = r.get("body");
        assert!(raw.starts_with("s1.") && !raw.contains("CANARY") && !raw.contains("life"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_read_state_reply_promise_and_export() {
    let f = fixture().await;
    let path = format!("/api/v1/clients/{}/messages", f.client_a.id);
    let b64 = |b: &[u8]| data_encoding::BASE64.encode(b);
    // Over 5 MiB: 413; an executable named .pdf: 422; nothing stored.
    let big = format!(
        r#"{{"body":"scan","attachment":{{"file_name":"a.txt","data_base64":"{}"}}}}"#,
        b64(&vec![b'a'; 5 * 1024 * 1024 + 1])
    );
    assert_eq!(
        call(&f.state, "POST", &path, f.login("client_a"), Some(&big))
            .await
            .status,
        413
    );
    let exe = format!(
        r#"{{"body":"scan","attachment":{{"file_name":"letter.pdf","data_base64":"{}"}}}}"#,
        b64(b"MZ\x90\x00")
    );
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&exe)).await;
    assert_eq!(r.status, 422);
    assert!(r.body.contains("attachment.data_base64"));
    // A PNG goes through, sealed, and comes back byte for byte.
    let png = b"\x89PNG\r\n\x1a\nCANARY-PNG".to_vec();
    let ok = format!(
        r#"{{"body":"my sleep chart","attachment":{{"file_name":"chart.png","data_base64":"{}"}}}}"#,
        b64(&png)
    );
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&ok)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let id = serde_json::from_str::<Value>(&r.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    use sqlx::Row;
    let raw: String = sqlx::query("SELECT content FROM message_attachments")
        .fetch_one(f.sqlite().pool())
        .await
        .unwrap()
        .get("content");
    assert!(raw.starts_with("s1.") && !raw.contains("chart"));
    let got = call(
        &f.state,
        "GET",
        &format!("{path}/{id}/attachment"),
        f.login("treating"),
        None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["content-type"], "image/png");
    // Read state: unread until the treating clinician opens the thread; the
    // supervisor's reading does not count.
    let unread = |body: &str| {
        serde_json::from_str::<Value>(body).unwrap()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["read_at"].is_null())
            .count()
    };
    let s = call(&f.state, "GET", &path, f.login("supervisor"), None).await;
    assert_eq!(unread(&s.body), 1);
    call(&f.state, "GET", &path, f.login("treating"), None).await;
    let c = call(&f.state, "GET", &path, f.login("client_a"), None).await;
    assert_eq!(unread(&c.body), 0);
    // The promise the clinician sets is what the client sees.
    let p = call(
        &f.state,
        "POST",
        &format!("{path}/reply-promise"),
        f.login("treating"),
        Some(r#"{"hours":48}"#),
    )
    .await;
    assert_eq!(p.status, 200);
    let bad = call(
        &f.state,
        "POST",
        &format!("{path}/reply-promise"),
        f.login("treating"),
        Some(r#"{"hours":0}"#),
    )
    .await;
    assert_eq!(bad.status, 422);
    let c = call(&f.state, "GET", &path, f.login("client_a"), None).await;
    assert_eq!(
        serde_json::from_str::<Value>(&c.body).unwrap()["reply_within_hours"],
        48
    );
    // Export for the client.
    let e = call(
        &f.state,
        "GET",
        &format!("{path}/export"),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(e.status, 200);
    assert!(e.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("messages.json"));
    assert!(e.body.contains("my sleep chart"));
}
