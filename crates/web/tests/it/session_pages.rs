//! The booking, schedule and messages pages over the JSON API: slots in the
//! client's zone, booking with the form's (text) values, the clinician's
//! schedule, the thread pages; who reaches which page is in the matrix.

use crate::fixture::*;
use crate::sessions::open_calendar;

/// The value of `name="<field>" value="…"` after `from` in `html`.
fn hidden(html: &str, field: &str) -> String {
    let key = format!(r#"name="{field}" value=""#);
    let at = html.find(&key).unwrap() + key.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_books_from_the_page_in_their_zone_and_the_clinician_sees_it() {
    let f = fixture().await;
    open_calendar(&f).await;
    // Before the client gives a zone, the practice's (London) is used.
    let page = call(
        &f.state,
        "GET",
        "/me/appointments",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Times are shown in Europe/London") && page.body.contains("Not set yet"),
        "{}",
        page.body
    );
    // The client's settings: an unknown zone is refused naming the field
    // and stores nothing; a known one is stored.
    let tz = format!("/api/v1/clients/{}/time-zone", f.client_a.id);
    for bad in ["Mars/Olympus", "Europe London; drop", &"Europe/".repeat(30)] {
        let r = call(
            &f.state,
            "POST",
            &tz,
            f.login("client_a"),
            Some(&serde_json::json!({ "time_zone": bad }).to_string()),
        )
        .await;
        assert_eq!(r.status, 422, "{}", r.body);
        assert!(r.body.contains(r#""time_zone""#), "{}", r.body);
    }
    let stored = |f: &Fixture| {
        let (s, p, c) = (f.state.store.clone(), f.practice.id, f.client_a.id);
        async move { s.client(p, c).await.unwrap().unwrap().time_zone }
    };
    assert_eq!(stored(&f).await, None);
    let r = call(
        &f.state,
        "POST",
        &tz,
        f.login("client_a"),
        Some(r#"{"time_zone":"America/New_York"}"#),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        stored(&f).await.map(|z| z.as_str().to_string()).as_deref(),
        Some("America/New_York")
    );
    // The treating clinician comes first among the client's clinicians; the
    // page uses the stored zone without being told.
    let page = call(
        &f.state,
        "GET",
        "/me/appointments?appointment_type=session:50:video&from=2026-03-04",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(page.body.contains(&format!(
        r#"name="clinician" value="{}""#,
        f.user("treating").id
    )));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("America/New_York"));
    // The first free time: Wednesday 09:00 London = 04:00 in New York.
    assert!(page.body.contains("Book Wed 4 Mar, 04:00"), "{}", page.body);
    // The form's values, as the browser sends them (all text).
    let body = serde_json::json!({
        "clinician": hidden(&page.body, "clinician"),
        "kind": hidden(&page.body, "kind"),
        "minutes": hidden(&page.body, "minutes"),
        "format": hidden(&page.body, "format"),
        "starts_at": hidden(&page.body, "starts_at"),
    })
    .to_string();
    let path = format!("/api/v1/clients/{}/appointments", f.client_a.id);
    let r = call(&f.state, "POST", &path, f.login("client_a"), Some(&body)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let page = call(
        &f.state,
        "GET",
        "/me/appointments",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Wed 4 Mar 2026, 04:00 EST"),
        "{}",
        page.body
    );
    // The client's .ics states the start in their zone.
    let id = page
        .body
        .split("/appointments/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let ics = call(
        &f.state,
        "GET",
        &format!("/api/v1/clients/{}/appointments/{id}/ics", f.client_a.id),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(ics.status, 200, "{}", ics.body);
    assert!(
        ics.body.contains("X-WR-TIMEZONE:America/New_York"),
        "{}",
        ics.body
    );
    assert!(
        ics.body.contains("Starts Wed 4 Mar 2026\\, 04:00 EST"),
        "{}",
        ics.body
    );
    // An explicit override still works (staff looking in another zone).
    let page = call(
        &f.state,
        "GET",
        "/me/appointments?time_zone=Asia/Tokyo",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Wed 4 Mar 2026, 18:00 JST"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Choose a new time") && page.body.contains(">Cancel<"));
    // Moving it: "Choose a new time" lists the same clinician's free times
    // of the same kind, each posting to the appointment's reschedule route.
    let link = page
        .body
        .split(r#"href="?reschedule="#)
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&")
        .replace("#book", "");
    assert!(link.starts_with(&id), "{link}");
    let page = call(
        &f.state,
        "GET",
        &format!("/me/appointments?reschedule={link}&from=2026-03-05"),
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("Move the appointment of Wed 4 Mar 2026, 04:00 EST"),
        "{}",
        page.body
    );
    let move_to = format!(
        "/api/v1/clients/{}/appointments/{id}/reschedule",
        f.client_a.id
    );
    assert!(page.body.contains(&move_to), "{}", page.body);
    assert!(!page.body.contains(">Book "), "{}", page.body);
    let new_start = hidden(&page.body, "starts_at");
    assert!(new_start.starts_with("2026-03-05"), "{new_start}");
    let r = call(
        &f.state,
        "POST",
        &move_to,
        f.login("client_a"),
        Some(&serde_json::json!({ "starts_at": new_start }).to_string()),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The old one is cancelled, the new one booked; asking to move the
    // cancelled one again shows the ordinary booking form.
    let page = call(
        &f.state,
        "GET",
        &format!("/me/appointments?reschedule={id}"),
        f.login("client_a"),
        None,
    )
    .await;
    assert!(page.body.contains("Thu 5 Mar 2026"), "{}", page.body);
    assert!(page.body.contains("Book a time"), "{}", page.body);
    assert!(!page.body.contains("Move the appointment"), "{}", page.body);
    // An unknown override falls back to the client's stored zone.
    let page = call(
        &f.state,
        "GET",
        "/me/appointments?time_zone=Mars/Olympus",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Wed 4 Mar 2026, 04:00 EST"),
        "{}",
        page.body
    );
    // The clinician's view of the client's booking page shows the
    // client's zone too.
    let staff = call(
        &f.state,
        "GET",
        &format!("/clients/{}/booking", f.client_a.id),
        f.login("treating"),
        None,
    )
    .await;
    assert!(staff.body.contains("04:00 EST"), "{}", staff.body);
    // The clinician's schedule lists it in their own zone.
    let s = call(&f.state, "GET", "/schedule", f.login("treating"), None).await;
    assert_eq!(s.status, 200);
    assert!(
        s.body.contains("Client Alpha") && s.body.contains("09:00 GMT"),
        "{}",
        s.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thread_pages_show_the_conversation_to_its_two_sides() {
    let f = fixture().await;
    let page = call(&f.state, "GET", "/me/messages", f.login("client_a"), None).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No messages yet") && page.body.contains(r#"type="file""#));
    let path = format!("/api/v1/clients/{}/messages", f.client_a.id);
    let text = "Could we talk about the homework on Thursday?";
    let r = call(
        &f.state,
        "POST",
        &path,
        f.login("client_a"),
        Some(&format!(r#"{{"body":"{text}"}}"#)),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    // The clinician's list: one unread, no message text.
    let list = call(&f.state, "GET", "/messages", f.login("treating"), None).await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains("Client Alpha") && list.body.contains("<td>1</td>"));
    assert!(!list.body.contains(text));
    // The non-treating clinician's list does not show client A.
    let other = call(&f.state, "GET", "/messages", f.login("non_treating"), None).await;
    assert!(!other.body.contains("Client Alpha"));
    // Opening the thread shows it and marks it read.
    let thread = format!("/clients/{}/messages", f.client_a.id);
    let t = call(&f.state, "GET", &thread, f.login("treating"), None).await;
    assert_eq!(t.status, 200);
    assert!(t.body.contains(text));
    let list = call(&f.state, "GET", "/messages", f.login("treating"), None).await;
    assert!(list.body.contains("<td>0</td>"), "{}", list.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_intake_stores_the_clients_time_zone_and_refuses_unknown_ones() {
    let f = fixture().await;
    let c = f.login("client_a");
    let post = |body: &'static str| call(&f.state, "POST", "/api/v1/me/intake", c, Some(body));
    assert_eq!(post(r#"{"step":"0","consent":"yes"}"#).await.status, 200);
    // Unknown zone: 422 naming time_zone; neither the step nor the zone saved.
    let r = post(r#"{"step":"1","preferred_name":"Al","time_zone":"Atlantis/Lost"}"#).await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains(r#""time_zone""#), "{}", r.body);
    let client = f
        .state
        .store
        .client(f.practice.id, f.client_a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.time_zone, None);
    let draft = f
        .state
        .store
        .intake_draft(f.practice.id, f.client_a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(draft.completed_steps, 1);
    // Left empty: the step saves and no zone is set.
    assert_eq!(
        post(r#"{"step":"1","preferred_name":"Al","time_zone":""}"#)
            .await
            .status,
        200
    );
    let client = f
        .state
        .store
        .client(f.practice.id, f.client_a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.time_zone, None);
    let r = post(r#"{"step":"1","preferred_name":"Al","time_zone":"Asia/Kolkata"}"#).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let client = f
        .state
        .store
        .client(f.practice.id, f.client_a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(client.time_zone.unwrap().as_str(), "Asia/Kolkata");
    // The intake page offers the field with the saved value.
    let page = call(&f.state, "GET", "/intake", c, None).await;
    assert!(
        page.body
            .contains(r#"name="time_zone" value="Asia/Kolkata""#),
        "{}",
        page.body
    );
}

/// Until the practice's clinical lead reviews its urgent-language list, the
/// messages page says so and the shipped draft list screens; once reviewed,
/// the practice's own list (with its added phrase) screens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_practices_reviewed_phrase_list_screens_and_the_page_says_whether_it_is_reviewed() {
    use tapestry_domain::urgent_language::{PhraseList, PracticePhraseList};
    let f = fixture().await;
    let page = call(&f.state, "GET", "/messages", f.login("treating"), None).await;
    assert!(
        page.body.contains("urgent-language list is unreviewed"),
        "{}",
        page.body
    );
    let shipped = PhraseList::embedded().unwrap();
    let mut list = PracticePhraseList::default();
    list.add(&shipped, "going to jump", "suicide").unwrap();
    f.state
        .store
        .put_practice_phrase_list(f.practice.id, None, &list, t0())
        .await
        .unwrap();
    let path = format!("/api/v1/clients/{}/messages", f.client_a.id);
    let send = || {
        call(
            &f.state,
            "POST",
            &path,
            f.login("client_a"),
            Some(r#"{"body":"Some days I think I am going to jump."}"#),
        )
    };
    let r = send().await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        r.body.contains(r#""urgent_notice":null"#),
        "unreviewed: {}",
        r.body
    );
    let before = list.clone();
    list.record_review(f.user("treating").id, "Dr Lead", t0().date_naive());
    f.state
        .store
        .put_practice_phrase_list(f.practice.id, Some(&before), &list, t0())
        .await
        .unwrap();
    let r = send().await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(
        !r.body.contains(r#""urgent_notice":null"#),
        "reviewed: {}",
        r.body
    );
    let page = call(&f.state, "GET", "/messages", f.login("treating"), None).await;
    assert!(
        page.body.contains("reviewed by Dr Lead on 2026-03-02"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("unreviewed"));
}
