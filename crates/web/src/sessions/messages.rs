//! Secure messages between sessions: one thread per client with their care
//! team, attachments (at most [`MAX_ATTACHMENT_BYTES`]; PDF, PNG, JPEG or
//! plain text, recognised from the file's first bytes, never from its name
//! alone), read state, the reply-time promise, urgent-language screening of
//! client messages (the same risk task as a risk answer), and a JSON export.
//! Bodies and attachments are sealed at rest by the store; every read and
//! write is audited by the route guard.

use crate::error::ApiError;
use crate::json::ApiJson;
use crate::routes::Authorized;
use crate::AppState;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::OnceLock;
use tapestry_domain::care::CareRole;
use tapestry_domain::episode::EpisodeStatus;
use tapestry_domain::ids::{ClientId, PracticeId, TaskId, UserId};
use tapestry_domain::ingest::{task_due_at, ClinicianTask, TaskKind};
use tapestry_domain::risk::{RiskColour, TaskDue};
use tapestry_domain::urgent_language::{self, PhraseList, UrgentMatch};
use tapestry_domain::user::Role;
use tapestry_store::security::Alert;
use tapestry_store::{Attachment, SecureMessage};
use uuid::Uuid;

/// The largest attachment accepted (5 MiB).
pub const MAX_ATTACHMENT_BYTES: usize = 5 * 1024 * 1024;
/// The longest message body (characters).
pub const MAX_MESSAGE_CHARS: usize = 20_000;
/// The request body limit of the send route (a 5 MiB file in base64 plus text).
pub const SEND_BODY_LIMIT: usize = 8 * 1024 * 1024;

/// A file type messages may carry, recognised from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachmentKind {
    Pdf,
    Png,
    Jpeg,
    Text,
}

impl AttachmentKind {
    pub fn media_type(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
            Self::Text => "text/plain; charset=utf-8",
        }
    }
    fn extensions(self) -> &'static [&'static str] {
        match self {
            Self::Pdf => &["pdf"],
            Self::Png => &["png"],
            Self::Jpeg => &["jpg", "jpeg"],
            Self::Text => &["txt"],
        }
    }
}

/// Recognises a file from its magic bytes: `%PDF-`, the PNG signature,
/// JPEG's `FF D8 FF`, or UTF-8 text without NUL or other control
/// characters (tab and line ends allowed). Anything else is `None`.
pub fn sniff(bytes: &[u8]) -> Option<AttachmentKind> {
    if bytes.starts_with(b"%PDF-") {
        return Some(AttachmentKind::Pdf);
    }
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some(AttachmentKind::Png);
    }
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        return Some(AttachmentKind::Jpeg);
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let clean = !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'));
    clean.then_some(AttachmentKind::Text)
}

/// Why an attachment is refused (the message names the field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttachmentError {
    #[error("attachment.data_base64: not valid base64")]
    NotBase64,
    #[error("attachment.data_base64: the file is empty")]
    Empty,
    #[error("attachment.data_base64: the file is larger than 5 MiB")]
    TooLarge,
    #[error("attachment.data_base64: only PDF, PNG, JPEG and plain-text files can be attached")]
    TypeNotAllowed,
    #[error("attachment.file_name: the name must end in .{0} for this kind of file")]
    NameMismatch(&'static str),
    #[error("attachment.file_name: 1 to 200 characters without slashes or control characters")]
    BadName,
}

/// Checks an attachment: size, type from its bytes, and a name that agrees.
pub fn check_attachment(file_name: &str, data_base64: &str) -> Result<Attachment, AttachmentError> {
    let name = file_name.trim();
    if name.is_empty()
        || name.chars().count() > 200
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\')
    {
        return Err(AttachmentError::BadName);
    }
    // Refuse before decoding anything clearly over the limit.
    if data_base64.len() > MAX_ATTACHMENT_BYTES / 3 * 4 + 8 {
        return Err(AttachmentError::TooLarge);
    }
    let bytes = data_encoding::BASE64
        .decode(data_base64.trim().as_bytes())
        .map_err(|_| AttachmentError::NotBase64)?;
    if bytes.is_empty() {
        return Err(AttachmentError::Empty);
    }
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(AttachmentError::TooLarge);
    }
    let kind = sniff(&bytes).ok_or(AttachmentError::TypeNotAllowed)?;
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    if !kind.extensions().contains(&ext.as_str()) {
        return Err(AttachmentError::NameMismatch(
            kind.extensions().first().copied().unwrap_or("txt"),
        ));
    }
    Ok(Attachment {
        file_name: name.to_string(),
        media_type: kind.media_type().to_string(),
        bytes,
    })
}

/// The shipped (draft) phrase list, loaded once (`None` if it fails to
/// load, which start-up validation prevents).
pub(crate) fn shipped_phrases() -> Option<&'static PhraseList> {
    static LIST: OnceLock<Option<PhraseList>> = OnceLock::new();
    LIST.get_or_init(|| match PhraseList::embedded() {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!(error = %e, "urgent-language list failed to load");
            None
        }
    })
    .as_ref()
}

/// Urgent phrases in a client's message, by the shipped list (empty when
/// the list is missing, which start-up validation prevents).
pub fn screen(body: &str) -> Vec<UrgentMatch> {
    shipped_phrases()
        .map(|p| p.screen(body))
        .unwrap_or_default()
}

/// Urgent phrases in a client's message, by the practice's reviewed list
/// when it has one, else the shipped (draft) list.
pub(crate) async fn screen_for(
    state: &AppState,
    practice: PracticeId,
    body: &str,
) -> Result<Vec<UrgentMatch>, ApiError> {
    let Some(shipped) = shipped_phrases() else {
        return Ok(Vec::new());
    };
    let own = state.store.practice_phrase_list(practice).await?;
    Ok(urgent_language::list_for(shipped, own.as_ref()).screen(body))
}

/// Whether the practice's clinical lead has reviewed its urgent-language
/// list (`None`: not reviewed, the shipped draft list is in use).
pub(crate) async fn phrase_list_review(
    state: &AppState,
    practice: PracticeId,
) -> Result<Option<urgent_language::ListReview>, ApiError> {
    Ok(state
        .store
        .practice_phrase_list(practice)
        .await?
        .and_then(|l| l.reviewed))
}

fn client_of(a: &Authorized) -> Result<ClientId, ApiError> {
    a.client_id.ok_or_else(ApiError::not_found)
}

fn is_client(a: &Authorized) -> bool {
    a.caller.actor.role == Role::Client
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AttachmentBody {
    pub file_name: String,
    pub data_base64: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendBody {
    pub body: String,
    #[serde(default)]
    pub attachment: Option<AttachmentBody>,
}

#[derive(Serialize)]
pub struct Sent {
    pub id: Uuid,
    pub sent_at: DateTime<Utc>,
    /// The care team's promise, shown to the client.
    pub reply_within_hours: Option<u32>,
    /// Shown to a client whose message contained urgent language.
    pub urgent_notice: Option<&'static str>,
}

const URGENT_NOTICE: &str = "Your care team has been alerted. Messages are not watched around the clock: if you are in danger now, call your local emergency number.";

/// The risk task a client message with urgent language raises: the same
/// `risk_review` task a risk answer raises, on the client's current
/// episode, assigned to its primary clinician. Red and immediate for
/// suicide, self-harm and harm to others; amber, same day, otherwise. The
/// task names the categories, never the message text.
async fn urgent_task(
    state: &AppState,
    a: &Authorized,
    client: ClientId,
    found: &[UrgentMatch],
) -> Result<Option<ClinicianTask>, ApiError> {
    let practice = a.caller.user.practice_id;
    let now = state.clock.now();
    let mut episodes = state.store.episodes_for_client(practice, client).await?;
    episodes.sort_by_key(|e| (e.status != EpisodeStatus::Discharged, e.opened_at));
    let Some(episode) = episodes.last() else {
        return Ok(None);
    };
    let mut categories: Vec<&str> = found.iter().map(|m| m.category.as_str()).collect();
    categories.sort_unstable();
    categories.dedup();
    let red = categories
        .iter()
        .any(|c| matches!(*c, "suicide" | "self_harm" | "harm_to_others"));
    let (colour, due) = if red {
        (RiskColour::Red, TaskDue::Immediately)
    } else {
        (RiskColour::Amber, TaskDue::SameDay)
    };
    Ok(Some(ClinicianTask {
        id: TaskId::random(),
        practice_id: practice,
        client_id: client,
        episode_id: episode.id,
        kind: TaskKind::RiskReview,
        risk_flag_id: None,
        assignee: episode.primary_clinician,
        title: "Urgent language in a secure message".into(),
        detail: format!(
            "Categories: {}. Read the client's message thread and follow the safety protocol.",
            categories.join(", ")
        ),
        colour,
        due_at: task_due_at(now, colour, due),
        created_at: now,
        completed_at: None,
    }))
}

/// `POST /api/v1/clients/{id}/messages`: sends a message (client or
/// treating clinician), with an optional attachment.
pub async fn send(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<SendBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let practice = a.caller.user.practice_id;
    let text = body.body.trim().to_string();
    if text.is_empty() && body.attachment.is_none() {
        return Err(ApiError::unprocessable("body", "the message is empty"));
    }
    if text.chars().count() > MAX_MESSAGE_CHARS {
        return Err(ApiError::unprocessable(
            "body",
            format!("longer than {MAX_MESSAGE_CHARS} characters"),
        ));
    }
    let attachment = match &body.attachment {
        Some(att) => Some(
            check_attachment(&att.file_name, &att.data_base64).map_err(|e| {
                let field = e
                    .to_string()
                    .split(':')
                    .next()
                    .unwrap_or("attachment")
                    .to_string();
                let status = if e == AttachmentError::TooLarge {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                };
                ApiError::new(status, "invalid_attachment", e.to_string())
                    .field(field, e.to_string())
            })?,
        ),
        None => None,
    };
    let now = state.clock.now();
    let from_client = is_client(&a);
    let found = if from_client {
        screen_for(&state, practice, &text).await?
    } else {
        Vec::new()
    };
    let task = if found.is_empty() {
        None
    } else {
        urgent_task(&state, &a, client, &found).await?
    };
    let message = SecureMessage {
        id: Uuid::now_v7(),
        practice_id: practice,
        client_id: client,
        sender: a.caller.user.id,
        from_client,
        body: text,
        has_attachment: attachment.is_some(),
        sent_at: now,
        read_at: None,
    };
    state
        .store
        .send_message(&message, attachment.as_ref(), task.as_ref())
        .await?;
    if !found.is_empty() {
        // Content-free alerts to everyone treating the client.
        let rels = state.store.care_for_client(practice, client).await?;
        for recipient in crate::auth::treating(&rels, now) {
            state
                .store
                .insert_alert(&Alert {
                    id: Uuid::new_v4(),
                    practice_id: practice,
                    recipient,
                    kind: "urgent_message".into(),
                    object_id: Some(client.as_uuid()),
                    created_at: now,
                })
                .await?;
        }
    }
    Ok((
        StatusCode::CREATED,
        Json(Sent {
            id: message.id,
            sent_at: now,
            reply_within_hours: state.store.reply_promise(practice, client).await?,
            urgent_notice: (!found.is_empty()).then_some(URGENT_NOTICE),
        }),
    )
        .into_response())
}

#[derive(Serialize)]
pub struct MessageView {
    pub id: Uuid,
    pub from_client: bool,
    pub sender: UserId,
    pub body: String,
    pub has_attachment: bool,
    pub sent_at: DateTime<Utc>,
    pub read_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
pub struct ThreadView {
    pub client_id: ClientId,
    /// "We reply within N hours", set by the care team.
    pub reply_within_hours: Option<u32>,
    pub messages: Vec<MessageView>,
}

async fn load_thread(state: &AppState, a: &Authorized) -> Result<ThreadView, ApiError> {
    let client = client_of(a)?;
    let practice = a.caller.user.practice_id;
    let messages = state
        .store
        .messages_for_client(practice, client)
        .await?
        .into_iter()
        .map(|m| MessageView {
            id: m.id,
            from_client: m.from_client,
            sender: m.sender,
            body: m.body,
            has_attachment: m.has_attachment,
            sent_at: m.sent_at,
            read_at: m.read_at,
        })
        .collect();
    Ok(ThreadView {
        client_id: client,
        reply_within_hours: state.store.reply_promise(practice, client).await?,
        messages,
    })
}

/// `GET /api/v1/clients/{id}/messages`: the thread. Opening it marks the
/// other side's messages read, when the reader is the client or a treating
/// clinician (a supervisor's reading does not).
pub async fn thread(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Json<ThreadView>, ApiError> {
    Ok(Json(open_thread(&state, &a).await?))
}

/// The thread, opened by the caller: the other side's messages become read
/// when the reader is the client or a treating clinician (shared by the
/// JSON route and the thread page).
pub(crate) async fn open_thread(state: &AppState, a: &Authorized) -> Result<ThreadView, ApiError> {
    let client = client_of(a)?;
    let view = load_thread(state, a).await?;
    let participant =
        is_client(a) || a.caller.actor.relationship_to(client) == Some(CareRole::Treating);
    if participant {
        state
            .store
            .mark_thread_read(
                a.caller.user.practice_id,
                client,
                is_client(a),
                state.clock.now(),
            )
            .await?;
    }
    Ok(view)
}

/// `GET /api/v1/clients/{id}/messages/export`: the thread as a JSON file
/// (attachments listed by id; download them one by one).
pub async fn export(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
) -> Result<Response, ApiError> {
    let view = load_thread(&state, &a).await?;
    let doc = serde_json::json!({
        "format": "tapestry-message-thread/1",
        "exported_at": state.clock.now(),
        "thread": view,
    });
    let mut r = Json(doc).into_response();
    r.headers_mut().insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"messages.json\""),
    );
    Ok(r)
}

/// `GET /api/v1/clients/{id}/messages/{message}/attachment`: the file, as
/// a download of the type it was recognised as.
pub async fn attachment(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    Path((_, message)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    let id = Uuid::parse_str(&message).map_err(|_| ApiError::not_found())?;
    let att = state
        .store
        .message_attachment(a.caller.user.practice_id, client, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let mut r = (StatusCode::OK, att.bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&att.media_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    let safe: String = att
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{safe}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromiseBody {
    /// Hours (1..=720); `null` removes the promise.
    pub hours: Option<u32>,
}

/// `POST /api/v1/clients/{id}/messages/reply-promise`: the treating
/// clinician sets how soon the client can expect a reply.
pub async fn set_reply_promise(
    State(state): State<AppState>,
    Extension(a): Extension<Authorized>,
    ApiJson(body): ApiJson<PromiseBody>,
) -> Result<Response, ApiError> {
    let client = client_of(&a)?;
    if is_client(&a) {
        return Err(ApiError::forbidden());
    }
    if let Some(h) = body.hours {
        if !(1..=720).contains(&h) {
            return Err(ApiError::unprocessable("hours", "must be 1..=720"));
        }
    }
    state
        .store
        .set_reply_promise(
            a.caller.user.practice_id,
            client,
            body.hours,
            a.caller.user.id,
        )
        .await?;
    Ok(Json(serde_json::json!({"reply_within_hours": body.hours})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(bytes: &[u8]) -> String {
        data_encoding::BASE64.encode(bytes)
    }

    #[test]
    fn attachments_are_recognised_from_their_bytes_not_their_names() {
        assert!(check_attachment("letter.pdf", &b64(b"%PDF-1.7 ...")).is_ok());
        assert!(check_attachment("scan.PNG", &b64(b"\x89PNG\r\n\x1a\n....")).is_ok());
        assert!(check_attachment("photo.jpeg", &b64(&[0xFF, 0xD8, 0xFF, 0xE0])).is_ok());
        assert!(check_attachment("diary.txt", &b64("sleep 6h\n".as_bytes())).is_ok());
        // An executable renamed to .pdf: refused by its bytes.
        assert_eq!(
            check_attachment("letter.pdf", &b64(b"MZ\x90\x00\x03")),
            Err(AttachmentError::TypeNotAllowed)
        );
        // A PDF named .txt: the name must agree with the content.
        assert_eq!(
            check_attachment("notes.txt", &b64(b"%PDF-1.4")),
            Err(AttachmentError::NameMismatch("pdf"))
        );
        // Empty, malformed, oversized.
        assert_eq!(check_attachment("a.txt", ""), Err(AttachmentError::Empty));
        assert_eq!(
            check_attachment("a.txt", "!!not base64!!"),
            Err(AttachmentError::NotBase64)
        );
        let huge = vec![b'a'; MAX_ATTACHMENT_BYTES + 1];
        assert_eq!(
            check_attachment("a.txt", &b64(&huge)),
            Err(AttachmentError::TooLarge)
        );
        // Exactly the limit is accepted.
        let exact = vec![b'a'; MAX_ATTACHMENT_BYTES];
        assert!(check_attachment("a.txt", &b64(&exact)).is_ok());
        // Names that could traverse or hide.
        assert_eq!(
            check_attachment("../x.txt", &b64(b"hi")),
            Err(AttachmentError::BadName)
        );
        assert_eq!(
            check_attachment("  ", &b64(b"hi")),
            Err(AttachmentError::BadName)
        );
    }

    #[test]
    fn urgent_language_is_found_in_a_message() {
        assert!(shipped_phrases().is_some(), "the embedded list loads");
        let found = screen("Honestly I think I want to END my life.");
        assert!(found.iter().any(|m| m.category == "suicide"), "{found:?}");
        assert!(screen("Can we move Thursday's session?").is_empty());
        assert!(screen("").is_empty());
    }
}
