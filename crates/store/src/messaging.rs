//! Secure messages between sessions and live-chat transcripts.
//!
//! A client has one message thread with their care team. Message bodies,
//! attachments and chat lines are sealed at rest with the practice's keys
//! (see `vault.rs`); these types carry the opened text.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::ingest::ClinicianTask;
use tapestry_domain::schedule::AppointmentId;
use uuid::Uuid;

/// One secure message (opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecureMessage {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub sender: UserId,
    /// Written by the client (else by a member of the care team).
    pub from_client: bool,
    pub body: String,
    pub has_attachment: bool,
    pub sent_at: DateTime<Utc>,
    /// When the other side first opened the thread after it arrived.
    pub read_at: Option<DateTime<Utc>>,
}

/// A file attached to a message (opened). The media type was checked from
/// the file's first bytes when it was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub file_name: String,
    pub media_type: String,
    /// The file's bytes, base64 in the sealed JSON.
    #[serde(with = "bytes_b64")]
    pub bytes: Vec<u8>,
}

mod bytes_b64 {
    use data_encoding::BASE64;
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&BASE64.encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        BASE64
            .decode(text.as_bytes())
            .map_err(serde::de::Error::custom)
    }
}

/// One line of a live-chat session (opened).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub appointment_id: AppointmentId,
    pub sender: UserId,
    pub body: String,
    pub sent_at: DateTime<Utc>,
}

#[async_trait]
pub trait MessagingStore {
    /// Stores a message (sealed), its attachment (sealed) and, when the
    /// message contained urgent language, the clinician's risk task, in one
    /// transaction.
    async fn send_message(
        &self,
        message: &SecureMessage,
        attachment: Option<&Attachment>,
        urgent_task: Option<&ClinicianTask>,
    ) -> StoreResult<()>;

    /// The client's thread, oldest first.
    async fn messages_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<SecureMessage>>;

    /// The attachment of a message in the client's thread.
    async fn message_attachment(
        &self,
        practice: PracticeId,
        client: ClientId,
        message: Uuid,
    ) -> StoreResult<Option<Attachment>>;

    /// Marks every unread message written by the other side as read at `at`
    /// (`reader_is_client`: the client opened the thread). Returns how many.
    async fn mark_thread_read(
        &self,
        practice: PracticeId,
        client: ClientId,
        reader_is_client: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;

    /// The care team's promise of a reply within so many hours (`None`
    /// removes it).
    async fn set_reply_promise(
        &self,
        practice: PracticeId,
        client: ClientId,
        hours: Option<u32>,
        set_by: UserId,
    ) -> StoreResult<()>;
    /// The practice's own urgent-language list (edits and review), if it
    /// has one.
    async fn practice_phrase_list(
        &self,
        practice: PracticeId,
    ) -> StoreResult<Option<tapestry_domain::urgent_language::PracticePhraseList>>;
    /// Stores the practice's urgent-language list if the stored one is
    /// still `expected` (`None`: the practice has none yet): compare and
    /// swap, so two concurrent edits never silently lose one. `false` when
    /// another edit came first (nothing stored; read again and retry).
    async fn put_practice_phrase_list(
        &self,
        practice: PracticeId,
        expected: Option<&tapestry_domain::urgent_language::PracticePhraseList>,
        list: &tapestry_domain::urgent_language::PracticePhraseList,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;
    async fn reply_promise(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Option<u32>>;

    /// Appends one live-chat line (sealed) to an appointment's transcript.
    async fn append_chat_line(&self, line: &ChatLine) -> StoreResult<()>;
    /// An appointment's chat transcript, oldest first.
    async fn chat_transcript(
        &self,
        practice: PracticeId,
        appointment: AppointmentId,
    ) -> StoreResult<Vec<ChatLine>>;
}
