//! The product without JavaScript: plain HTML form posts and a cookie, as a
//! browser with scripting off sends them, against the real server on a
//! loopback port. The journey's key steps, then the refusals: a missing,
//! wrong or smuggled CSRF token, a foreign `_next`, malformed fields — each
//! an HTML answer that stores nothing.

use crate::browser::{enrol_totp, set_password, PASSWORD};
use crate::fixture::*;
use reqwest::header::{HeaderMap, CONTENT_TYPE, COOKIE, LOCATION, ORIGIN, REFERER, SET_COOKIE};
use tapestry_domain::clock::Clock as _;
use tapestry_domain::identity::totp::{self, TotpSecret};

/// A browser without JavaScript: follows nothing by itself, keeps the
/// session cookie, posts forms as `application/x-www-form-urlencoded`.
pub(crate) struct Agent {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

pub(crate) struct Page {
    pub(crate) status: u16,
    headers: HeaderMap,
    pub(crate) body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The `_csrf` value the server stamped into the form posting to `action`.
    pub(crate) fn csrf_for(&self, action: &str) -> String {
        let at = self
            .body
            .find(&format!(r#"action="{action}""#))
            .unwrap_or_else(|| panic!("no form posts to {action}: {}", self.body));
        let rest = &self.body[at..];
        let field = rest.find(r#"name="_csrf" value=""#).expect("no _csrf") + 20;
        assert!(
            rest[..field].matches("<form").count() == 0,
            "the _csrf field belongs to another form"
        );
        rest[field..].split('"').next().unwrap().to_string()
    }
}

pub(crate) async fn serve(f: &Fixture) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = tapestry_web::router(f.state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

impl Agent {
    fn new(base: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_string(),
            cookie: None,
        }
    }

    async fn answer(&mut self, r: reqwest::Response) -> Page {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        for c in headers.get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            if let Some(v) = c.strip_prefix("tapestry_session=") {
                let value = v.split(';').next().unwrap();
                self.cookie = (!value.is_empty()).then(|| format!("tapestry_session={value}"));
            }
        }
        let body = r.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let r = req.send().await.unwrap();
        self.answer(r).await
    }

    /// Posts `fields` to `action` as the form on `from` would (Origin and
    /// Referer of this site), with `extra` headers.
    pub(crate) async fn post(
        &mut self,
        from: &str,
        action: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .http
            .post(format!("{}{action}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ORIGIN, &self.base)
            .header(REFERER, format!("{}{from}", self.base))
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        self.answer(r).await
    }

    /// Opens `page`, then submits its form posting to `action` with the
    /// stamped CSRF token and `fields`: a user pressing the button.
    pub(crate) async fn submit(
        &mut self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Page {
        let p = self.get(page).await;
        assert_eq!(p.status, 200, "{page}: {}", p.body);
        let token = p.csrf_for(action);
        let mut all = vec![("_csrf", token.as_str())];
        all.extend_from_slice(fields);
        self.post(page, action, &all, &[]).await
    }
}

/// What is refused, the fields and headers sent, the status, the word the
/// error page must name.
type RefusedCase<'a> = (
    &'a str,
    Vec<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
    u16,
    &'a str,
);

pub(crate) fn see_other(p: &Page, to: &str) {
    assert_eq!(p.status, 303, "expected 303 to {to}: {}", p.body);
    assert_eq!(p.location(), to, "{}", p.body);
}

/// The treating clinician signs in without JavaScript: password, then the
/// second factor, each a 303; the session token rotates.
pub(crate) async fn sign_in_clinician(f: &Fixture, base: &str, secret: &TotpSecret) -> Agent {
    let mut clinician = Agent::new(base);
    let r = clinician
        .post(
            "/sign-in",
            "/api/v1/session",
            &[("email", "treating@example.org"), ("password", PASSWORD)],
            &[],
        )
        .await;
    see_other(&r, "/mfa");
    let first_cookie = clinician.cookie.clone();
    f.clock.advance(chrono::Duration::seconds(60));
    let code = totp::code_at(secret, f.clock.now()).unwrap();
    let r = clinician
        .submit("/mfa", "/api/v1/session/mfa", &[("code", &code)])
        .await;
    see_other(&r, "/me");
    assert_ne!(clinician.cookie, first_cookie, "the session token rotates");
    see_other(&clinician.get("/me").await, "/dashboard");
    clinician
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_keeps_their_matching_profile_with_plain_form_posts() {
    let f = fixture().await;
    set_password(&f, f.user("treating")).await;
    let secret = enrol_totp(&f, f.user("treating")).await;
    let base = serve(&f).await;
    let mut clinician = sign_in_clinician(&f, &base, &secret).await;
    let page = "/me/matching-profile";
    let action = "/api/v1/me/matching-profile";
    let form = clinician.get(page).await;
    assert!(form.body.contains("Create your profile"), "{}", form.body);
    // The page offers blank rows: two licences, three weekly intervals.
    assert!(form.body.contains(r#"name="licences[1].number:opt""#));
    assert!(form
        .body
        .contains(r#"name="availability.intervals[2].day:number""#));

    let good: Vec<(&str, &str)> = vec![
        ("licences[0].jurisdiction:opt", "CA-ON"),
        ("licences[0].number:opt", "ON-4711"),
        ("licences[0].expires_on:opt", "2031-03-31"),
        ("licences[1].jurisdiction:opt", ""),
        ("licences[1].number:opt", ""),
        ("licences[1].expires_on:opt", ""),
        ("languages:csv", "en, es"),
        ("formats[]", ""),
        ("formats[]", "video"),
        ("formats[]", "phone"),
        ("approaches:csv", "cbt, act"),
        ("specialties[]", ""),
        ("specialties[]", "anxiety"),
        ("populations[]", ""),
        ("populations[]", "adults"),
        ("caseload_limit:number", "20"),
        ("new_clients_per_week:number", "3"),
        ("accepts_risk:bool", "false"),
        ("accepts_risk:bool", "true"),
        ("availability.utc_offset_minutes:number", "-300"),
        ("availability.intervals[0].day:number", "0"),
        ("availability.intervals[0].start_minute:number", "540"),
        ("availability.intervals[0].end_minute:number", "720"),
        ("availability.intervals[1].day:number", "2"),
        ("availability.intervals[1].start_minute:number", "780"),
        ("availability.intervals[1].end_minute:number", "1020"),
        ("availability.intervals[2].day:number", ""),
        ("availability.intervals[2].start_minute:number", ""),
        ("availability.intervals[2].end_minute:number", ""),
        ("identity.characteristics:csv", ""),
        ("identity.consent_to_show:bool", "false"),
    ];
    let r = clinician.submit(page, action, &good).await;
    see_other(&r, page);
    let stored = f
        .store
        .matching_profile(f.practice.id, f.user("treating").id, f.clock.now())
        .await
        .unwrap()
        .expect("the profile is stored");
    let p = &stored.profile;
    assert_eq!(p.licences.len(), 1, "the blank licence row adds nothing");
    assert_eq!(p.licences[0].jurisdiction, "CA-ON");
    assert_eq!(p.languages, vec!["en", "es"]);
    assert_eq!(p.availability.intervals.len(), 2);
    assert_eq!(p.availability.utc_offset_minutes, -300);
    assert!(p.accepts_risk);
    assert_eq!(p.capacity.caseload_limit, 20);
    // The page now shows it, filled in for the next edit.
    let shown = clinician.get(page).await;
    assert!(shown.body.contains("Edit your profile"));
    assert!(shown.body.contains(r#"value="ON-4711""#));

    // Bad profiles: an error page naming the field, the stored profile unchanged.
    let with = |field: &'static str, value: &'static str| -> Vec<(&'static str, &'static str)> {
        good.iter()
            .map(|(k, v)| if *k == field { (*k, value) } else { (*k, *v) })
            .collect()
    };
    for (fields, names) in [
        (
            with("availability.intervals[1].day:number", "0"),
            "availability",
        ),
        (with("caseload_limit:number", "-1"), "caseload_limit"),
        (with("licences[0].jurisdiction:opt", "XX-ZZ"), "licences"),
        (with("caseload_limit:number", "twenty"), "caseload_limit"),
    ] {
        let mut fields = fields;
        if names == "availability" {
            // Monday 09:00–12:00 and Monday 13:00–17:00 do not overlap; make them.
            fields = fields
                .into_iter()
                .map(|(k, v)| {
                    if k == "availability.intervals[1].start_minute:number" {
                        (k, "600")
                    } else {
                        (k, v)
                    }
                })
                .collect();
        }
        let r = clinician.submit(page, action, &fields).await;
        assert!(r.status >= 400, "{names}: {} {}", r.status, r.body);
        assert!(r.body.contains(names), "{names}: {}", r.body);
        let after = f
            .store
            .matching_profile(f.practice.id, f.user("treating").id, f.clock.now())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(after.profile, stored.profile, "{names}: nothing changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_journey_works_with_plain_form_posts_and_a_cookie() {
    let f = fixture().await;
    let a = f.client_a.id;
    set_password(&f, f.user("client_a")).await;
    set_password(&f, f.user("treating")).await;
    let secret = enrol_totp(&f, f.user("treating")).await;
    let base = serve(&f).await;

    // The client signs in: a cookie and 303 to their home.
    let mut client = Agent::new(&base);
    let sign_in = client.get("/sign-in").await;
    assert!(sign_in.body.contains(r#"action="/api/v1/session""#));
    let r = client
        .post(
            "/sign-in",
            "/api/v1/session",
            &[("email", "client_a@example.org"), ("password", PASSWORD)],
            &[],
        )
        .await;
    see_other(&r, "/me");
    assert!(client.cookie.is_some());

    // PHQ-9 with item 9 above 0 through the measure form.
    let mut answers: Vec<(String, String)> = (1..=9)
        .map(|i| {
            (
                format!("item_{i}"),
                if i == 9 { "2" } else { "1" }.to_string(),
            )
        })
        .collect();
    answers.push(("idempotency_key".into(), "no-js-1".into()));
    let fields: Vec<(&str, &str)> = answers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let form = client.get("/me/measures/phq9").await;
    let token = form.csrf_for("/api/v1/me/measures/phq9");
    let before = f.store.count_audit_events().await.unwrap();
    let mut with_token = vec![("_csrf", token.as_str())];
    with_token.extend_from_slice(&fields);
    let r = client
        .post(
            "/me/measures/phq9",
            "/api/v1/me/measures/phq9",
            &with_token,
            &[],
        )
        .await;
    see_other(&r, "/me/measures");
    // The guard audited the clinical write exactly once.
    assert_eq!(f.store.count_audit_events().await.unwrap(), before + 1);

    let mut clinician = sign_in_clinician(&f, &base, &secret).await;

    // The risk task is first on the caseload.
    let dash = clinician.get("/dashboard").await;
    let first_row = dash
        .body
        .split(r#"class="caseload""#)
        .nth(1)
        .and_then(|list| list.split("<li").nth(1))
        .unwrap_or("")
        .to_lowercase();
    assert!(
        dash.body.to_lowercase().contains("open risk task"),
        "{}",
        dash.body
    );
    assert!(first_row.contains("client alpha"), "{first_row}");

    // Close the risk flag with a note, from the risk page.
    let risk_page = format!("/clients/{a}/risk");
    let page = clinician.get(&risk_page).await;
    let action = page
        .body
        .split(r#"action="/api/v1/risk-flags/"#)
        .nth(1)
        .map(|s| format!("/api/v1/risk-flags/{}", s.split('"').next().unwrap()))
        .expect("a close form for the open flag");
    let r = clinician
        .submit(
            &risk_page,
            &action,
            &[(
                "note",
                "Assessed by phone; no plan or intent; safety plan agreed.",
            )],
        )
        .await;
    see_other(&r, &risk_page);
    let after = clinician.get(&risk_page).await;
    assert!(
        !after.body.contains(&format!(r#"action="{action}""#)),
        "the flag is closed: no close form any more"
    );

    // A safety plan, saved as version 1.
    let plan_page = format!("/clients/{a}/safety-plan");
    let r = clinician
        .submit(
            &plan_page,
            &format!("/api/v1/clients/{a}/safety-plan"),
            &[
                ("warning_signs", "Not sleeping\nStaying in bed"),
                ("internal_coping", "Walk round the block"),
                ("professionals", "Crisis line 116 123"),
                ("reasons_for_living", "My sister's children"),
            ],
        )
        .await;
    see_other(&r, &plan_page);
    let plan = clinician.get(&plan_page).await;
    assert!(plan.body.contains("Version 1"), "{}", plan.body);

    // A progress note: started, written, signed.
    let notes = format!("/clients/{a}/notes");
    let r = clinician
        .submit(
            &notes,
            &format!("/api/v1/clients/{a}/notes"),
            &[("template", "soap"), ("kind", "progress")],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let note_page = r.location().to_string();
    let note_api = format!("/api/v1{note_page}");
    let r = clinician
        .submit(
            &note_page,
            &note_api,
            &[
                ("subjective", "Low mood; item 9 discussed."),
                ("objective", ""),
                ("assessment", "Risk assessed, low."),
                ("plan", "Review safety plan next session."),
            ],
        )
        .await;
    see_other(&r, &note_page);
    let r = clinician
        .submit(&note_page, &format!("{note_api}/sign"), &[])
        .await;
    see_other(&r, &note_page);
    let signed = clinician.get(&note_page).await;
    assert!(signed.body.contains("Signed"), "{}", signed.body);
    assert!(signed.body.contains("Review safety plan next session."));

    // Sign-out: the cookie is cleared and the browser goes to sign-in.
    let r = clinician
        .submit(
            "/dashboard",
            "/api/v1/session/sign-out",
            &[("_next", "/sign-in")],
        )
        .await;
    see_other(&r, "/sign-in");
    assert!(clinician.cookie.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_form_posts_answer_a_page_and_store_nothing() {
    let f = fixture().await;
    let a = f.client_a.id;
    let base = serve(&f).await;
    let mut t = Agent::new(&base);
    t.cookie = Some(f.login("treating").unwrap().cookie.clone());
    let page = format!("/clients/{a}/safety-plan");
    let action = format!("/api/v1/clients/{a}/safety-plan");
    let token = t.get(&page).await.csrf_for(&action);
    let other_token = f.login("non_treating").unwrap().csrf.clone();
    let plan = [("warning_signs", "Pacing")];
    let before = f.fingerprint().await;

    let cases: Vec<RefusedCase> = vec![
        (
            "no _csrf",
            plan.to_vec(),
            vec![],
            403,
            "did not come from this site",
        ),
        (
            "another session's token",
            [("_csrf", other_token.as_str())]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![],
            403,
            "did not come from this site",
        ),
        (
            "the right token in the header only",
            plan.to_vec(),
            vec![("x-csrf-token", token.as_str())],
            403,
            "did not come from this site",
        ),
        (
            "a wrong field with the right header",
            [("_csrf", "forged")].into_iter().chain(plan).collect(),
            vec![("x-csrf-token", token.as_str())],
            403,
            "did not come from this site",
        ),
        (
            "a foreign _next",
            [
                ("_csrf", token.as_str()),
                ("_next", "https://evil.example/"),
            ]
            .into_iter()
            .chain(plan)
            .collect(),
            vec![],
            400,
            "_next",
        ),
        (
            "a scheme-relative _next",
            [("_csrf", token.as_str()), ("_next", "//evil.example/")]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![],
            400,
            "_next",
        ),
        (
            "an unknown step",
            vec![("_csrf", token.as_str()), ("means", "x")],
            vec![],
            422,
            "means",
        ),
        (
            "a field given twice",
            [("_csrf", token.as_str()), ("warning_signs", "again")]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![],
            422,
            "warning_signs",
        ),
        (
            "two tokens",
            [("_csrf", token.as_str()), ("_csrf", token.as_str())]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![],
            422,
            "_csrf",
        ),
        (
            "a reserved name",
            [("_csrf", token.as_str()), ("_practice_id", "x")]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![],
            422,
            "_practice_id",
        ),
        (
            "a foreign origin",
            [("_csrf", token.as_str())]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![("origin", "https://evil.example")],
            403,
            "did not come from this site",
        ),
        (
            "a cross-site fetch",
            [("_csrf", token.as_str())]
                .into_iter()
                .chain(plan)
                .collect(),
            vec![("sec-fetch-site", "cross-site")],
            403,
            "did not come from this site",
        ),
    ];
    for (what, fields, headers, status, names) in cases {
        let r = t.post(&page, &action, &fields, &headers).await;
        assert_eq!(r.status, status, "{what}: {}", r.body);
        assert!(
            r.headers
                .get(CONTENT_TYPE)
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{what}: an HTML page"
        );
        assert!(r.body.contains(names), "{what}: names {names}: {}", r.body);
        assert!(
            r.body.contains(&format!(r#"href="{page}""#)),
            "{what}: a link back to the form"
        );
        assert!(!r.body.contains("evil.example"), "{what}");
        assert_eq!(f.fingerprint().await, before, "{what}: nothing stored");
    }

    // Malformed measure answers: the page names the item; nothing stored.
    let mut c = Agent::new(&base);
    c.cookie = Some(f.login("client_a").unwrap().cookie.clone());
    let r = c
        .submit(
            "/me/measures/phq9",
            "/api/v1/me/measures/phq9",
            &[("item_1", "seven")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("item_1"), "{}", r.body);
    assert_eq!(f.fingerprint().await, before);
    // The clinician's structured risk assessment is not a portal form: the
    // page and the post are refused naming the instrument; nothing stored.
    for (method, path, body) in [
        ("GET", "/me/measures/risk_assessment", None),
        (
            "POST",
            "/api/v1/me/measures/risk_assessment",
            Some(r#"{"item_1":"0","item_2":"0"}"#),
        ),
    ] {
        let r = call(&f.state, method, path, f.login("client_a"), body).await;
        assert_eq!(r.status, 422, "{method} {path}: {}", r.body);
        assert!(r.body.contains("instrument"), "{method} {path}: {}", r.body);
        assert_eq!(f.fingerprint().await, before, "{method} {path}");
    }

    // Sign-in without the browser's same-site word (login CSRF) is refused.
    let mut anon = Agent::new(&base);
    let r = anon
        .http
        .post(format!("{base}/api/v1/session"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("email=treating%40example.org&password=x")
        .send()
        .await
        .unwrap();
    let r = anon.answer(r).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(anon.cookie.is_none());

    // The JSON path is unchanged: same handler, same answers.
    let json = call(
        &f.state,
        "POST",
        &action,
        f.login("treating"),
        Some(r#"{"warning_signs":"Pacing"}"#),
    )
    .await;
    assert_eq!(json.status, 201, "{}", json.body);
    assert!(json.body.contains(r#""version":1"#));
}

/// The urgent-language review works with plain form posts: add a phrase,
/// remove a shipped one, review; each a 303 back to the page, which then
/// shows the state. A refused edit answers the error page naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_reviews_the_urgent_language_list_without_javascript() {
    let f = fixture().await;
    set_password(&f, f.user("treating")).await;
    let secret = enrol_totp(&f, f.user("treating")).await;
    let base = serve(&f).await;
    let mut clinician = sign_in_clinician(&f, &base, &secret).await;
    let page = "/practice/urgent-language";
    let edit = "/api/v1/practice/urgent-language";
    let r = clinician
        .submit(
            page,
            edit,
            &[
                ("op", "add"),
                ("phrase", "going to jump"),
                ("category", "suicide"),
            ],
        )
        .await;
    see_other(&r, page);
    let r = clinician
        .submit(page, edit, &[("op", "remove"), ("phrase", "suicide")])
        .await;
    see_other(&r, page);
    let shown = clinician.get(page).await;
    assert!(shown.body.contains("going to jump"), "{}", shown.body);
    assert!(shown.body.contains("unreviewed"));
    let r = clinician
        .submit(page, "/api/v1/practice/urgent-language/review", &[])
        .await;
    see_other(&r, page);
    let shown = clinician.get(page).await;
    assert!(shown.body.contains("reviewed by"), "{}", shown.body);
    let before = f.store.practice_phrase_list(f.practice.id).await.unwrap();
    assert!(before.as_ref().is_some_and(|l| l.reviewed.is_some()));
    let r = clinician
        .submit(
            page,
            edit,
            &[("op", "add"), ("phrase", " "), ("category", "x")],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("phrase"), "{}", r.body);
    assert_eq!(
        f.store.practice_phrase_list(f.practice.id).await.unwrap(),
        before
    );
}
