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
    // The treating clinician comes first among the client's clinicians.
    let page = call(
        &f.state,
        "GET",
        "/me/appointments?appointment_type=session:50:video&time_zone=America/New_York&from=2026-03-04",
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
        "/me/appointments?time_zone=America/New_York",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Wed 4 Mar 2026, 04:00 EST"),
        "{}",
        page.body
    );
    assert!(page.body.contains("Reschedule") && page.body.contains(">Cancel<"));
    // An unknown zone falls back to the practice's (London).
    let page = call(
        &f.state,
        "GET",
        "/me/appointments?time_zone=Mars/Olympus",
        f.login("client_a"),
        None,
    )
    .await;
    assert!(
        page.body.contains("Wed 4 Mar 2026, 09:00 GMT"),
        "{}",
        page.body
    );
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
