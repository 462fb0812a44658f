//! G10 session lifecycle (injected clock), G8 TOTP through HTTP, and bad input.

use crate::fixture::*;
use chrono::Duration;
use tapestry_domain::identity::totp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sessions_end_after_15_idle_minutes_and_12_hours_absolute() {
    let f = fixture().await;
    let path = format!("/api/v1/clients/{}", f.client_a.id);
    let login = f.login("treating").unwrap();
    f.clock.advance(Duration::minutes(14));
    assert_eq!(
        call(&f.state, "GET", &path, Some(login), None).await.status,
        200
    );
    f.clock.advance(Duration::minutes(15));
    assert_eq!(
        call(&f.state, "GET", &path, Some(login), None).await.status,
        401
    );
    // Absolute: active every 10 minutes, still ends at 12 h.
    let fresh = session_for(&f.state, f.user("treating"), true).await;
    for _ in 0..71 {
        f.clock.advance(Duration::minutes(10));
        assert_eq!(
            call(&f.state, "GET", &path, Some(&fresh), None)
                .await
                .status,
            200
        );
    }
    f.clock.advance(Duration::minutes(10));
    assert_eq!(
        call(&f.state, "GET", &path, Some(&fresh), None)
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_staff_session_without_second_factor_reaches_no_clinical_data_and_codes_work_once() {
    let f = fixture().await;
    let user = f.user("treating").clone();
    let secret = totp::TotpSecret::generate();
    f.store
        .begin_totp_enrolment(f.practice.id, user.id, &secret)
        .await
        .unwrap();
    f.store
        .accept_totp_step(f.practice.id, user.id, 1, t0())
        .await
        .unwrap();
    let pre = session_for(&f.state, &user, false).await;
    let path = format!("/api/v1/clients/{}", f.client_a.id);
    let denied = call(&f.state, "GET", &path, Some(&pre), None).await;
    assert_eq!(denied.status, 401);
    assert!(denied.body.contains("mfa_required"));
    // A code from two steps ago is outside the window.
    let old = totp::code_at(&secret, t0() - Duration::seconds(61)).unwrap();
    let r = call(
        &f.state,
        "POST",
        "/api/v1/session/mfa",
        Some(&pre),
        Some(&format!(r#"{{"code":"{old}"}}"#)),
    )
    .await;
    assert_eq!(r.status, 401);
    let code = totp::code_at(&secret, t0()).unwrap();
    let ok = call(
        &f.state,
        "POST",
        "/api/v1/session/mfa",
        Some(&pre),
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // The token rotated: the old cookie no longer works.
    assert_eq!(
        call(&f.state, "GET", &path, Some(&pre), None).await.status,
        401
    );
    // The same code in another session is a replay.
    let other = session_for(&f.state, &user, false).await;
    let replay = call(
        &f.state,
        "POST",
        "/api/v1/session/mfa",
        Some(&other),
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(replay.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cookies_tokens_json_unicode_and_ids_never_answer_500() {
    let f = fixture().await;
    let login = f.login("treating").unwrap();
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("GET", "/api/v1/clients/not-a-uuid".into(), None),
        ("GET", "/api/v1/clients/%F0%9F%92%A5".into(), None),
        (
            "GET",
            format!("/api/v1/clients/{}/../../etc", f.client_a.id),
            None,
        ),
        (
            "POST",
            format!("/api/v1/clients/{}/break-glass", f.client_a.id),
            Some("{not json"),
        ),
        (
            "POST",
            format!("/api/v1/clients/{}/break-glass", f.client_a.id),
            Some(r#"{"reason":12}"#),
        ),
        (
            "POST",
            format!("/api/v1/clients/{}/break-glass", f.client_a.id),
            Some("\"\u{0000}\u{202e}\""),
        ),
        (
            "POST",
            "/api/v1/session".into(),
            Some(r#"{"email":"\ud800","password":"x"}"#),
        ),
    ];
    for (method, path, body) in cases {
        let a = call(&f.state, method, &path, Some(login), body).await;
        assert!(
            matches!(a.status.as_u16(), 400 | 401 | 403 | 404 | 415 | 422),
            "{method} {path}: {}",
            a.status
        );
        assert!(!a.body.contains("panicked") && !a.body.contains("stack"));
    }
    for cookie in [
        "tapestry_session=",
        "tapestry_session=%%%",
        "tapestry_session=ééé",
        "a=b; tapestry_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let bad = Login {
            cookie: cookie.into(),
            csrf: "x".into(),
        };
        let a = call(&f.state, "GET", "/api/v1/me/alerts", Some(&bad), None).await;
        assert_eq!(a.status, 401, "{cookie}");
        assert!(a.body.starts_with(r#"{"error""#));
    }
    let req = axum::http::Request::builder()
        .uri("/api/v1/me/alerts")
        .header("authorization", "Bearer not-a-token")
        .body(axum::body::Body::empty())
        .unwrap();
    use tower::ServiceExt;
    let resp = tapestry_web::router(f.state.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_a_413_envelope() {
    let mut f = fixture().await;
    f.state.limits.max_body_bytes = 1024;
    let big = format!(
        r#"{{"email":"a@b.org","password":"{}"}}"#,
        "x".repeat(10_000)
    );
    let a = call(&f.state, "POST", "/api/v1/session", None, Some(&big)).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(a.body.contains("too_large"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_without_the_csrf_token_are_refused() {
    let f = fixture().await;
    let login = f.login("owner").unwrap();
    let no_csrf = Login {
        cookie: login.cookie.clone(),
        csrf: "forged".into(),
    };
    let path = format!("/api/v1/clients/{}/break-glass", f.client_a.id);
    let body = r#"{"reason":"Client called the crisis line; treating clinician unreachable"}"#;
    let before = f.fingerprint().await;
    let a = call(&f.state, "POST", &path, Some(&no_csrf), Some(body)).await;
    assert_eq!(a.status, 403);
    assert!(a.body.contains("csrf"));
    assert_eq!(before, f.fingerprint().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sessions_idle_out_after_30_minutes() {
    let f = fixture().await;
    let login = f.login("client_a").unwrap();
    let path = format!("/api/v1/clients/{}/submissions", f.client_a.id);
    f.clock.advance(Duration::minutes(29));
    assert_eq!(
        call(&f.state, "GET", &path, Some(login), None).await.status,
        200
    );
    f.clock.advance(Duration::minutes(30));
    assert_eq!(
        call(&f.state, "GET", &path, Some(login), None).await.status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_cookie_is_secure_and_hsts_is_sent() {
    let f = fixture().await;
    let mut state = f.state.clone();
    state.tls = true;
    let token = tapestry_domain::identity::token::SecretToken::generate();
    let cookie = tapestry_web::auth::session_cookie(&state, &token);
    let cookie = cookie.to_str().unwrap();
    assert!(
        cookie.contains("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
    );
    let plain = tapestry_web::auth::session_cookie(&f.state, &token);
    assert!(!plain.to_str().unwrap().contains("Secure"));
    let a = call(&state, "GET", "/healthz", None, None).await;
    assert!(a.headers.get("strict-transport-security").is_some());
    let out = call(
        &state,
        "POST",
        "/api/v1/session/sign-out",
        f.login("owner"),
        None,
    )
    .await;
    assert!(out
        .headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .contains("Secure"));
}
