//! Server-rendered pages (askama). Readable without JavaScript.

use crate::error::ApiError;
use crate::AppState;
use askama::Template;
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Renders a template into an HTML response; a template failure becomes the
/// generic error (never a stack trace).
pub fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => {
            let mut r = (StatusCode::OK, html).into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            let mut r =
                (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong.").into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
    }
}

/// A page, or the error page when building it failed.
pub fn page<T: Template>(built: Result<T, crate::error::ApiError>) -> Response {
    match built {
        Ok(p) => render(&p),
        Err(e) => e.to_html(),
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub status: u16,
    pub title: String,
    pub message: String,
    /// The fields the error names, with their problem.
    pub fields: Vec<(String, String)>,
    /// Where "Back" goes (a path on this site).
    pub back: String,
}

/// A page for something shown once after a form post without JavaScript
/// (recovery codes, a one-time link).
#[derive(Template)]
#[template(path = "once_only.html")]
pub struct OnceOnlyPage {
    pub title: String,
    pub lead: String,
    pub items: Vec<String>,
    pub next: String,
}

#[derive(Template)]
#[template(path = "home.html")]
pub struct HomePage {
    pub practice_name: String,
    pub needs_bootstrap: bool,
}

pub async fn home(State(state): State<AppState>) -> Result<Response, Response> {
    let practices = state
        .store
        .practices()
        .await
        .map_err(|e| ApiError::from(e).to_html())?;
    let needs_bootstrap = state
        .store
        .count_users()
        .await
        .map_err(|e| ApiError::from(e).to_html())?
        == 0;
    let practice_name = match practices.as_slice() {
        [only] => only.name.clone(),
        _ => "your practice".to_string(),
    };
    Ok(render(&HomePage {
        practice_name,
        needs_bootstrap,
    }))
}

pub async fn not_found_page() -> Response {
    ApiError::not_found().to_html()
}

pub async fn stylesheet() -> Response {
    let mut r = (StatusCode::OK, include_str!("../static/tapestry.css")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/css; charset=utf-8"),
    );
    r
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage;

/// The sign-in page. The form is submitted by `/static/tapestry.js` to
/// `POST /api/v1/session` (no inline script, CSP `script-src 'self'`); then
/// the second-factor step (enrolment with a QR code for staff without one).
pub async fn sign_in_page() -> Response {
    render(&SignInPage)
}

#[derive(Template)]
#[template(path = "bootstrap.html")]
pub struct BootstrapPage;

/// The one-time setup page: token from `tapestry serve`, practice and owner.
pub async fn bootstrap_page() -> Response {
    render(&BootstrapPage)
}

#[derive(Template)]
#[template(path = "client.html")]
pub struct ClientPage {
    pub name: String,
    pub id: String,
}

/// The browser script: forms as JSON, the sign-in and second-factor steps.
pub async fn script() -> Response {
    let mut r = (StatusCode::OK, include_str!("../static/tapestry.js")).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    r
}

#[derive(Template)]
#[template(path = "mfa.html")]
pub struct MfaPage {
    /// `?step=enrol`: the enrolment step is shown instead of the code step.
    pub enrol: bool,
    /// The pending enrolment's QR code (SVG drawn by the server) and key,
    /// when one has been started; without it the page offers to start.
    pub pending: Option<(String, String)>,
}

#[derive(serde::Deserialize)]
pub struct MfaQuery {
    #[serde(default)]
    pub step: Option<String>,
}

/// Second factor: verify a code, or (`?step=enrol`, or `#enrol` with
/// JavaScript) set one up with a QR code. Without JavaScript the enrolment
/// is started by a form post and its QR code is drawn here from the pending
/// secret (only an unconfirmed one, only for the signed-in account).
pub async fn mfa_page(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    axum::extract::Query(q): axum::extract::Query<MfaQuery>,
) -> Response {
    let enrol = q.step.as_deref() == Some("enrol");
    let mut pending = None;
    if enrol {
        if let Ok(Some(caller)) = crate::auth::authenticate(&state, &headers).await {
            let (practice, user) = (caller.user.practice_id, caller.user.id);
            if let Ok(Some(m)) = state.store.mfa(practice, user).await {
                if m.confirmed_at.is_none() {
                    use tapestry_domain::identity::totp;
                    let uri = totp::otpauth_uri(&m.secret, caller.user.email.as_str());
                    if let Ok(svg) = totp::qr_svg(&uri) {
                        pending = Some((svg, m.secret.to_base32()));
                    }
                }
            }
        }
    }
    render(&MfaPage { enrol, pending })
}

#[derive(Template)]
#[template(path = "reauth.html")]
pub struct ReauthPage;

/// Re-enter the password before a sensitive action.
pub async fn reauth_page() -> Response {
    render(&ReauthPage)
}

#[derive(Template)]
#[template(path = "accept_invitation.html")]
pub struct AcceptInvitationPage;

/// Accept an invitation (token from the link's fragment).
pub async fn accept_invitation_page() -> Response {
    render(&AcceptInvitationPage)
}

#[derive(Template)]
#[template(path = "reset_password.html")]
pub struct ResetPasswordPage;

/// Set a new password with a reset link (token from the fragment).
pub async fn reset_password_page() -> Response {
    render(&ResetPasswordPage)
}

/// The time zone pages show times in for a practice's users: the practice's
/// `time_zone` setting, else the zone the practice was set up with, else
/// UTC (an unknown name falls back the same way). The record pages use it
/// for every reader; booking, messages and reminders use a client's own
/// zone once they have set one (`sessions::booking::client_zone`).
pub async fn viewer_zone(
    state: &AppState,
    practice: tapestry_domain::ids::PracticeId,
) -> chrono_tz::Tz {
    let setting = state
        .store
        .setting(practice, crate::portal::SETTING_TIME_ZONE)
        .await
        .ok()
        .flatten();
    let founded = state
        .store
        .practice(practice)
        .await
        .ok()
        .flatten()
        .map(|p| p.time_zone.as_str().to_string());
    [setting, founded]
        .into_iter()
        .flatten()
        .find_map(|name| name.trim().parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC)
}

/// A moment as the viewer reads it: "3 Mar 2026, 14:05 GMT".
pub fn local_time(tz: chrono_tz::Tz, t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&tz)
        .format("%-d %b %Y, %H:%M %Z")
        .to_string()
}

/// A day as the viewer reads it: "3 Mar 2026".
pub fn local_date(tz: chrono_tz::Tz, t: chrono::DateTime<chrono::Utc>) -> String {
    t.with_timezone(&tz).format("%-d %b %Y").to_string()
}

#[cfg(test)]
mod zone_tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn times_are_shown_in_the_viewers_zone_with_its_abbreviation() {
        let t = chrono::Utc.with_ymd_and_hms(2026, 7, 1, 23, 30, 0).unwrap();
        assert_eq!(local_time(chrono_tz::UTC, t), "1 Jul 2026, 23:30 UTC");
        // Summer time in London moves the evening to the next day.
        assert_eq!(
            local_time(chrono_tz::Europe::London, t),
            "2 Jul 2026, 00:30 BST"
        );
        assert_eq!(local_date(chrono_tz::Europe::London, t), "2 Jul 2026");
        let winter = chrono::Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        assert_eq!(
            local_time(chrono_tz::America::New_York, winter),
            "1 Jan 2026, 04:00 EST"
        );
    }
}
