//! The practice's urgent-language review: the page that shows the shipped
//! draft phrases, the practice's own additions and removals and whether the
//! list is reviewed, and the two JSON endpoints its forms post to (add or
//! remove a phrase; record "reviewed by <caller> on <date>").
//!
//! Every route performs [`Action::ReviewUrgentLanguage`](tapestry_domain::access::Action::ReviewUrgentLanguage)
//! (the practice's clinicians, supervisors and owner), and the guard audits
//! every call, allowed or not. Any edit clears the review; until a
//! clinician reviews the list again, messages are screened with the shipped
//! draft list (see [`urgent_language::list_for`]).
//!
//! Concurrent edits never lose one another: each edit reads the list,
//! changes it and stores it with a compare-and-swap; when another edit came
//! first, it reads again and re-applies (so two concurrent adds both land).

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::State;
use axum::response::Response;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::json;
use tapestry_domain::ids::PracticeId;
use tapestry_domain::urgent_language::{
    PhraseList, PracticePhraseList, UrgentLanguageError, MAX_PHRASE_CHARS,
};

/// The page's path (the endpoints answer with it as `next`).
pub const PAGE: &str = "/practice/urgent-language";

/// How often an edit re-reads and re-applies after losing a race before
/// giving up with 409.
const ATTEMPTS: usize = 8;

/// `POST /api/v1/practice/urgent-language`: one edit of the list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhraseEdit {
    /// `add` or `remove`.
    pub op: String,
    /// The phrase (normalised before it is stored or compared).
    pub phrase: String,
    /// The category of an added phrase (e.g. `suicide`, `self_harm`).
    #[serde(default)]
    pub category: Option<String>,
}

fn shipped() -> Result<&'static PhraseList, ApiError> {
    crate::sessions::messages::shipped_phrases().ok_or_else(ApiError::internal)
}

/// The field an edit error is about, and the problem, as a 422.
fn edit_error(e: UrgentLanguageError) -> ApiError {
    let field = match e {
        UrgentLanguageError::EmptyPracticeCategory => "category",
        _ => "phrase",
    };
    let message = e.to_string();
    let problem = message
        .split_once(": ")
        .map(|(_, p)| p.to_string())
        .unwrap_or(message);
    ApiError::unprocessable(field, problem)
}

/// Reads the practice's list, applies `change` and stores it if nobody
/// changed it meanwhile (else reads again and re-applies).
async fn update(
    state: &AppState,
    practice: PracticeId,
    change: impl Fn(&mut PracticePhraseList) -> Result<(), ApiError>,
) -> Result<PracticePhraseList, ApiError> {
    for _ in 0..ATTEMPTS {
        let stored = state.store.practice_phrase_list(practice).await?;
        let mut list = stored.clone().unwrap_or_default();
        change(&mut list)?;
        if state
            .store
            .put_practice_phrase_list(practice, stored.as_ref(), &list, state.clock.now())
            .await?
        {
            return Ok(list);
        }
    }
    Err(ApiError::conflict(
        "The urgent-language list is being changed by someone else; try again.",
    ))
}

/// `POST /api/v1/practice/urgent-language`: add or remove one phrase.
/// Invalid input answers 422 naming the field, and nothing is stored.
pub async fn edit(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<PhraseEdit>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let shipped = shipped()?;
    // Checked before any normalisation or storage (a huge paste is refused
    // as such, not after work on it).
    if body.phrase.chars().count() > MAX_PHRASE_CHARS * 4 {
        return Err(edit_error(UrgentLanguageError::TooLong));
    }
    let add = match body.op.trim() {
        "add" => true,
        "remove" => false,
        _ => return Err(ApiError::unprocessable("op", "must be add or remove")),
    };
    let category = body.category.as_deref().unwrap_or("").trim().to_string();
    if add && category.chars().count() > 64 {
        return Err(ApiError::unprocessable(
            "category",
            "longer than 64 characters",
        ));
    }
    let list = update(&state, a.caller.user.practice_id, |list| {
        if add {
            list.add(shipped, &body.phrase, &category)
        } else {
            list.remove(shipped, &body.phrase)
        }
        .map_err(edit_error)
    })
    .await?;
    Ok(Json(json!({
        "next": PAGE,
        "added": list.added.len(),
        "removed": list.removed.len(),
        "reviewed": false,
    })))
}

/// `POST /api/v1/practice/urgent-language/review` (`{}`): records that the
/// caller reviewed the list as it stands today (the practice's time zone). From now on the practice's list
/// screens its clients' messages.
pub async fn review(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(_): ApiJson<crate::sessions::NoFields>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let practice = a.caller.user.practice_id;
    let zone = crate::pages::viewer_zone(&state, practice).await;
    let on = state.clock.now().with_timezone(&zone).date_naive();
    let by = a.caller.user.id;
    let name = a.caller.user.display_name.clone();
    let list = update(&state, practice, |list| {
        list.record_review(by, &name, on);
        Ok(())
    })
    .await?;
    let review = list
        .reviewed
        .map(|r| format!("reviewed by {} on {}", r.by_name, r.on))
        .unwrap_or_default();
    Ok(Json(json!({ "next": PAGE, "review": review })))
}

/// One shipped phrase on the page.
pub struct ShippedRow {
    pub text: String,
    pub category: String,
    /// Removed by the practice (no longer screens once reviewed).
    pub removed: bool,
}

#[derive(askama::Template)]
#[template(path = "sessions_urgent_language.html")]
pub struct UrgentLanguagePage {
    pub nav: crate::portal::Nav,
    /// The shipped list's own status line (e.g. "draft: awaiting clinician review").
    pub shipped_status: String,
    pub shipped: Vec<ShippedRow>,
    /// The practice's own phrases: (text, category).
    pub added: Vec<(String, String)>,
    /// "reviewed by X on date", or `None` (the shipped draft list screens).
    pub review: Option<String>,
    /// The practice has changed the shipped list at all.
    pub changed: bool,
    pub max_chars: usize,
}

/// `GET /practice/urgent-language`: the review page.
pub async fn page(State(state): State<AppState>, Extension(a): Extension<Authorized>) -> Response {
    crate::pages::page(page_of(&state, &a).await)
}

async fn page_of(state: &AppState, a: &Authorized) -> Result<UrgentLanguagePage, ApiError> {
    let shipped = shipped()?;
    let own = state
        .store
        .practice_phrase_list(a.caller.user.practice_id)
        .await?
        .unwrap_or_default();
    Ok(UrgentLanguagePage {
        nav: crate::portal::nav(state, &a.caller).await,
        shipped_status: shipped.review_status.clone(),
        shipped: shipped
            .phrases
            .iter()
            .map(|p| ShippedRow {
                text: p.text.clone(),
                category: p.category.clone(),
                removed: own.removed.contains(&p.text),
            })
            .collect(),
        added: own
            .added
            .iter()
            .map(|p| (p.text.clone(), p.category.clone()))
            .collect(),
        review: own
            .reviewed
            .as_ref()
            .map(|r| format!("reviewed by {} on {}", r.by_name, r.on)),
        changed: !own.added.is_empty() || !own.removed.is_empty(),
        max_chars: MAX_PHRASE_CHARS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_errors_name_the_field() {
        let e = edit_error(UrgentLanguageError::EmptyPracticeCategory);
        assert!(e.to_json().contains("category"));
        let e = edit_error(UrgentLanguageError::TooLong);
        assert!(e.to_json().contains(r#""phrase""#), "{}", e.to_json());
    }
}
