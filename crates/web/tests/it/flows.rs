//! End-to-end flows through the router: bootstrap, sign-in with first-time
//! TOTP enrolment, sign-out, password change and reset, invitations, API
//! tokens (G8, G9, G10), and slow clients against the real server (G19).

use crate::fixture::*;
use tapestry_domain::identity::password;
use tapestry_domain::identity::token::SecretToken;
use tapestry_domain::identity::totp;

fn cookie_of(a: &Answer_) -> String {
    a.headers
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

fn json(a: &Answer_) -> serde_json::Value {
    serde_json::from_str(&a.body).unwrap()
}

fn login_from(a: &Answer_) -> Login {
    Login {
        cookie: cookie_of(a),
        csrf: json(a)["csrf_token"].as_str().unwrap().to_string(),
    }
}

const PASSWORD: &str = "violet harbour lantern 1987";

async fn sign_in(f: &Fixture, email: &str, pw: &str) -> Answer_ {
    call(
        &f.state,
        "POST",
        "/api/v1/session",
        None,
        Some(&format!(r#"{{"email":"{email}","password":"{pw}"}}"#)),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bootstrap_sign_in_enrol_totp_and_sign_out() {
    let f = fixture().await;
    let token = SecretToken::generate();
    f.store
        .insert_bootstrap_token(&token.hash().to_hex(), t0())
        .await
        .unwrap();
    let body = format!(
        r#"{{"token":"{}","practice_name":"New Practice","time_zone":"Europe/Paris","owner_name":"Noor Haddad","email":"noor@example.org","password":"{PASSWORD}"}}"#,
        token.expose()
    );
    assert_eq!(
        call(&f.state, "POST", "/api/v1/bootstrap", None, Some(&body))
            .await
            .status,
        201
    );
    // The token works once.
    assert_eq!(
        call(&f.state, "POST", "/api/v1/bootstrap", None, Some(&body))
            .await
            .status,
        404
    );
    // G9: the stored hash is Argon2id with at least OWASP parameters.
    let creds = f
        .store
        .credentials_by_email("noor@example.org")
        .await
        .unwrap()
        .unwrap();
    let stored = creds.password_hash.unwrap();
    assert!(stored.starts_with("$argon2id$v=19$"));
    let params = password::stored_params(&stored).unwrap();
    println!("argon2id params: {params:?}");
    let started = std::time::Instant::now();
    assert!(password::verify_password(PASSWORD, &stored).unwrap());
    println!(
        "argon2id verify took {} ms (debug build, argon2 optimised)",
        started.elapsed().as_millis()
    );
    // Unknown user and wrong password: the same answer.
    let unknown = sign_in(&f, "nobody@example.org", PASSWORD).await;
    let wrong = sign_in(&f, "noor@example.org", "not the password at all").await;
    assert_eq!((unknown.status, &unknown.body), (wrong.status, &wrong.body));
    assert_eq!(unknown.status, 401);
    // Both failures are in the audit log (ids only; the unknown e-mail is not).
    let events = f.store.audit_events().await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| {
            e.action == "sign_in" && e.outcome == tapestry_store::audit_chain::Outcome::Denied
        })
        .collect();
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[0].actor, None);
    assert_eq!(failed[1].actor, Some(creds.user.id));
    assert!(!format!("{events:?}").contains("nobody@example.org"));
    // Sign in: the session needs a second factor, and staff must enrol one.
    let signed = sign_in(&f, "Noor@Example.org ", PASSWORD).await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let cookie = signed.headers.get("set-cookie").unwrap().to_str().unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert_eq!(json(&signed)["mfa_enrolment_required"], true);
    let pre = login_from(&signed);
    let users = call(&f.state, "GET", "/api/v1/practice/users", Some(&pre), None).await;
    assert_eq!(users.status, 401);
    assert!(users.body.contains("mfa_required"));
    let enrol = call(
        &f.state,
        "POST",
        "/api/v1/me/mfa/enrol",
        Some(&pre),
        Some("{}"),
    )
    .await;
    assert_eq!(enrol.status, 200, "{}", enrol.body);
    let e = json(&enrol);
    assert!(e["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = totp::TotpSecret::from_base32(e["secret"].as_str().unwrap()).unwrap();
    let code = totp::code_at(&secret, t0()).unwrap();
    let confirmed = call(
        &f.state,
        "POST",
        "/api/v1/me/mfa/confirm",
        Some(&pre),
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    )
    .await;
    assert_eq!(confirmed.status, 200, "{}", confirmed.body);
    assert_eq!(
        json(&confirmed)["recovery_codes"].as_array().unwrap().len(),
        10
    );
    let full = Login {
        cookie: cookie_of(&confirmed),
        csrf: json(&confirmed)["csrf_token"].as_str().unwrap().to_string(),
    };
    assert_eq!(
        call(&f.state, "GET", "/api/v1/practice/users", Some(&full), None)
            .await
            .status,
        200
    );
    // The pre-MFA token stopped working when the session was upgraded.
    assert_eq!(
        call(&f.state, "GET", "/api/v1/me/alerts", Some(&pre), None)
            .await
            .status,
        401
    );
    // Re-enrolling over a confirmed factor is refused.
    let again = call(
        &f.state,
        "POST",
        "/api/v1/me/mfa/enrol",
        Some(&full),
        Some("{}"),
    )
    .await;
    assert_eq!(again.status, 409);
    // Sign-out clears the cookie and the browser's data; the session is gone.
    let out = call(
        &f.state,
        "POST",
        "/api/v1/session/sign-out",
        Some(&full),
        None,
    )
    .await;
    assert_eq!(out.status, 204);
    assert!(out.headers.get("clear-site-data").is_some());
    assert_eq!(
        call(&f.state, "GET", "/api/v1/practice/users", Some(&full), None)
            .await
            .status,
        401
    );
    // A recovery code completes a later sign-in, once.
    let recovery = json(&confirmed)["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_string();
    let next = login_from(&sign_in(&f, "noor@example.org", PASSWORD).await);
    let body = format!(r#"{{"recovery_code":"{recovery}"}}"#);
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/session/mfa",
            Some(&next),
            Some(&body)
        )
        .await
        .status,
        200
    );
    let later = login_from(&sign_in(&f, "noor@example.org", PASSWORD).await);
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/session/mfa",
            Some(&later),
            Some(&body)
        )
        .await
        .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitation_then_password_change_and_reset_end_sessions_and_keep_mfa() {
    let f = fixture().await;
    let owner = f.login("owner").unwrap();
    let inv = call(
        &f.state,
        "POST",
        "/api/v1/practice/invitations",
        Some(owner),
        Some(r#"{"email":"kim@example.org","role":"clinician"}"#),
    )
    .await;
    assert_eq!(inv.status, 201, "{}", inv.body);
    let link = json(&inv)["link"].as_str().unwrap().to_string();
    let token = link.split_once('#').unwrap().1.to_string();
    let accept =
        format!(r#"{{"token":"{token}","display_name":"Kim Lee","password":"{PASSWORD}"}}"#);
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/invitations/accept",
            None,
            Some(&accept)
        )
        .await
        .status,
        201
    );
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/invitations/accept",
            None,
            Some(&accept)
        )
        .await
        .status,
        404
    );
    let a = sign_in(&f, "kim@example.org", PASSWORD).await;
    assert_eq!(json(&a)["mfa_enrolment_required"], true);
    // Password change ends every session of the user.
    let kim = f
        .store
        .credentials_by_email("kim@example.org")
        .await
        .unwrap()
        .unwrap()
        .user;
    let s1 = session_for(&f.state, &kim, true).await;
    let s2 = session_for(&f.state, &kim, true).await;
    let change =
        format!(r#"{{"current_password":"{PASSWORD}","new_password":"quiet meadow copper 2044"}}"#);
    let changed = call(
        &f.state,
        "POST",
        "/api/v1/me/password",
        Some(&s1),
        Some(&change),
    )
    .await;
    assert_eq!(changed.status, 204, "{}", changed.body);
    assert_eq!(
        call(&f.state, "GET", "/api/v1/me/alerts", Some(&s2), None)
            .await
            .status,
        401
    );
    // An admin-issued reset link sets a password once, ends sessions, and the
    // next sign-in still needs the second factor.
    let s3 = session_for(&f.state, &kim, true).await;
    let admin = f.login("practice_admin").unwrap();
    let issued = call(
        &f.state,
        "POST",
        &format!("/api/v1/practice/users/{}/password-reset", kim.id),
        Some(admin),
        Some("{}"),
    )
    .await;
    assert_eq!(issued.status, 201, "{}", issued.body);
    let token = json(&issued)["link"]
        .as_str()
        .unwrap()
        .split_once('#')
        .unwrap()
        .1
        .to_string();
    let reset = format!(r#"{{"token":"{token}","new_password":"amber lighthouse tide 3310"}}"#);
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/password-reset",
            None,
            Some(&reset)
        )
        .await
        .status,
        204
    );
    assert_eq!(
        call(
            &f.state,
            "POST",
            "/api/v1/password-reset",
            None,
            Some(&reset)
        )
        .await
        .status,
        404
    );
    assert_eq!(
        call(&f.state, "GET", "/api/v1/me/alerts", Some(&s3), None)
            .await
            .status,
        401
    );
    let after = sign_in(&f, "kim@example.org", "amber lighthouse tide 3310").await;
    assert_eq!(after.status, 200);
    assert_eq!(json(&after)["mfa_required"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_tokens_are_scoped_and_revocable() {
    let f = fixture().await;
    let treating = f.login("treating").unwrap();
    let created = call(
        &f.state,
        "POST",
        "/api/v1/me/api-tokens",
        Some(treating),
        Some(r#"{"name":"outcomes export","scope":["read_measures"],"days":30}"#),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let c = json(&created);
    let token = c["token"].as_str().unwrap().to_string();
    let bearer = |path: String| {
        let state = f.state.clone();
        let token = token.clone();
        async move {
            use tower::ServiceExt;
            let req = axum::http::Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            tapestry_web::router(state)
                .oneshot(req)
                .await
                .unwrap()
                .status()
        }
    };
    let id = f.client_a.id;
    assert_eq!(
        bearer(format!("/api/v1/clients/{id}/submissions")).await,
        200
    );
    assert_eq!(bearer(format!("/api/v1/clients/{id}")).await, 403);
    // Sensitive actions can never be in a token's scope.
    let bad = call(
        &f.state,
        "POST",
        "/api/v1/me/api-tokens",
        Some(treating),
        Some(r#"{"name":"x","scope":["export_client_record"],"days":30}"#),
    )
    .await;
    assert_eq!(bad.status, 422);
    let revoke = format!("/api/v1/me/api-tokens/{}/revoke", c["id"].as_str().unwrap());
    assert_eq!(
        call(&f.state, "POST", &revoke, Some(treating), Some("{}"))
            .await
            .status,
        204
    );
    assert_eq!(
        bearer(format!("/api/v1/clients/{id}/submissions")).await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_senders_are_cut_off_while_normal_requests_are_served() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let f = fixture().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tapestry_web::router(f.state.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(tapestry_web::server::serve(
        listener,
        app,
        tapestry_web::server::ServeOptions {
            header_read_timeout: Duration::from_secs(1),
            tls: None,
            drain_timeout: Duration::from_secs(1),
        },
        async move {
            let _ = stopped.await;
        },
    ));
    let mut slow = Vec::new();
    for _ in 0..20 {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // Keep dribbling one header byte every 200 ms on each slow connection.
    let dribble = tokio::spawn(async move {
        let mut closed = 0;
        for round in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for s in slow.iter_mut() {
                let _ = s.write_all(b"X").await;
            }
            if round == 39 {
                for s in slow.iter_mut() {
                    let mut buf = [0u8; 512];
                    match tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
                        Ok(Ok(n)) => {
                            closed += usize::from(
                                String::from_utf8_lossy(&buf[..n]).contains("408") || n > 0,
                            )
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        closed
    });
    // Meanwhile a normal client is served.
    let ok = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let closed = dribble.await.unwrap();
    assert_eq!(closed, 20, "slow connections still open");
    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_lasts_60_minutes_alerts_and_is_limited_to_three_a_day() {
    let f = fixture().await;
    let user = f.user("non_treating").clone();
    let record = format!("/api/v1/clients/{}", f.client_a.id);
    let open = format!("/api/v1/clients/{}/break-glass", f.client_a.id);
    let reason = r#"{"reason":"Client called the crisis line; treating clinician unreachable"}"#;
    let s = session_for(&f.state, &user, true).await;
    assert_eq!(
        call(&f.state, "GET", &record, Some(&s), None).await.status,
        403
    );
    // Too short a reason: refused, nothing stored.
    let short = call(
        &f.state,
        "POST",
        &open,
        Some(&s),
        Some(r#"{"reason":"need it"}"#),
    )
    .await;
    assert_eq!(short.status, 422);
    assert_eq!(
        call(&f.state, "POST", &open, Some(&s), Some(reason))
            .await
            .status,
        201
    );
    assert_eq!(
        call(&f.state, "GET", &record, Some(&s), None).await.status,
        200
    );
    for who in ["owner", "treating"] {
        let alerts = f
            .store
            .alerts_for(f.practice.id, f.user(who).id)
            .await
            .unwrap();
        assert_eq!(alerts.len(), 1, "{who}");
        assert_eq!(alerts[0].object_id, Some(f.client_a.id.as_uuid()));
    }
    assert!(f
        .store
        .alerts_for(f.practice.id, f.user("supervisor").id)
        .await
        .unwrap()
        .is_empty());
    // 61 minutes later the grant is over.
    f.clock.advance(chrono::Duration::minutes(61));
    let s = session_for(&f.state, &user, true).await;
    assert_eq!(
        call(&f.state, "GET", &record, Some(&s), None).await.status,
        403
    );
    // Two more openings today are allowed, the fourth is not.
    assert_eq!(
        call(&f.state, "POST", &open, Some(&s), Some(reason))
            .await
            .status,
        201
    );
    assert_eq!(
        call(&f.state, "POST", &open, Some(&s), Some(reason))
            .await
            .status,
        201
    );
    assert_eq!(
        call(&f.state, "POST", &open, Some(&s), Some(reason))
            .await
            .status,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_an_account_ends_its_sessions_and_no_clinical_route_works_before_mfa() {
    let f = fixture().await;
    let user = f.user("treating").clone();
    let pre = session_for(&f.state, &user, false).await;
    for spec in tapestry_web::routes::all_routes() {
        let tapestry_web::routes::Access::Action(action, _) = spec.access else {
            continue;
        };
        if action.kind() != tapestry_domain::access::ActionKind::Clinical {
            continue;
        }
        let path = spec.path.replace("{id}", &f.client_a.id.to_string());
        let body = spec.is_write().then_some(
            r#"{"reason":"Client called the crisis line; treating clinician unreachable"}"#,
        );
        let a = call(&f.state, spec.method, &path, Some(&pre), body).await;
        assert_eq!(a.status, 401, "{} {path}", spec.method);
        if path.starts_with("/api/") {
            assert!(a.body.contains("mfa_required"), "{}", a.body);
        } else {
            assert!(a.body.contains("second factor"), "{}", a.body);
        }
    }
    let full = session_for(&f.state, &user, true).await;
    let record = format!("/api/v1/clients/{}", f.client_a.id);
    assert_eq!(
        call(&f.state, "GET", &record, Some(&full), None)
            .await
            .status,
        200
    );
    f.store
        .set_user_status(
            f.practice.id,
            user.id,
            tapestry_domain::user::AccountStatus::Disabled,
        )
        .await
        .unwrap();
    assert_eq!(
        call(&f.state, "GET", &record, Some(&full), None)
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_who_opened_their_record() {
    let f = fixture().await;
    let record = format!("/api/v1/clients/{}", f.client_a.id);
    assert_eq!(
        call(&f.state, "GET", &record, f.login("treating"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&f.state, "GET", &record, f.login("non_treating"), None)
            .await
            .status,
        403
    );
    let ledger = call(
        &f.state,
        "GET",
        "/api/v1/me/access-log",
        f.login("client_a"),
        None,
    )
    .await;
    assert_eq!(ledger.status, 200);
    let entries = json(&ledger);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["actor_name"], "treating");
    assert_eq!(entries[0]["outcome"], "allowed");
    assert_eq!(entries[1]["actor_name"], "non_treating");
    assert_eq!(entries[1]["outcome"], "denied");
    // Client B's ledger does not show client A's record.
    let other = call(
        &f.state,
        "GET",
        "/api/v1/me/access-log",
        f.login("client_b"),
        None,
    )
    .await;
    assert_eq!(json(&other).as_array().unwrap().len(), 0);
}
