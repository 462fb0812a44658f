//! Storage for the clinician workspace and the client portal: session notes
//! (sign and lock, addenda, co-signature), safety plans (every version kept),
//! homework with the client's worksheet answers, and intake drafts. Clinical
//! content is sealed at rest (see `vault.rs`).

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tapestry_domain::homework::{HomeworkStatus, WorksheetAnswers};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::intake::IntakeDraft;
use tapestry_domain::notes::{NoteBody, NoteKind, NoteTemplate};
use tapestry_domain::safety_plan::SafetyPlanBody;
use uuid::Uuid;

/// The refusal when a signed note would change.
pub const NOTE_SIGNED: &str = "signed note is immutable; add an addendum";
/// The refusal when submitted homework would change.
pub const HOMEWORK_SUBMITTED: &str = "homework already sent to the clinician";

/// A session note as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionNote {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub author: UserId,
    pub kind: NoteKind,
    pub template: NoteTemplate,
    pub body: NoteBody,
    pub signed_at: Option<DateTime<Utc>>,
    pub cosigned_by: Option<UserId>,
    pub cosigned_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A correction or addition written after a note was signed.
#[derive(Debug, Clone, PartialEq)]
pub struct Addendum {
    pub id: Uuid,
    pub note_id: Uuid,
    pub author: UserId,
    pub text: String,
    pub created_at: DateTime<Utc>,
}

/// One version of a client's safety plan.
#[derive(Debug, Clone, PartialEq)]
pub struct SafetyPlanVersion {
    pub id: Uuid,
    pub client_id: ClientId,
    pub version: u32,
    pub author: UserId,
    pub body: SafetyPlanBody,
    pub created_at: DateTime<Utc>,
}

/// A homework assignment and the client's answers so far.
#[derive(Debug, Clone, PartialEq)]
pub struct Homework {
    pub id: Uuid,
    pub practice_id: PracticeId,
    pub client_id: ClientId,
    pub assigned_by: UserId,
    /// Technique code or id from the library (its homework template).
    pub technique: String,
    pub status: HomeworkStatus,
    pub answers: WorksheetAnswers,
    pub assigned_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub submitted_at: Option<DateTime<Utc>>,
    pub reviewed_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait PortalStore {
    // --- notes
    /// Creates a draft note.
    async fn insert_note(&self, note: &SessionNote) -> StoreResult<()>;
    /// Replaces a draft's body. A signed note: `Conflict(NOTE_SIGNED)`.
    async fn update_note_draft(
        &self,
        practice: PracticeId,
        id: Uuid,
        body: &NoteBody,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Signs (locks) a draft. Signing twice: `Conflict(NOTE_SIGNED)`.
    async fn sign_note(&self, practice: PracticeId, id: Uuid, at: DateTime<Utc>)
        -> StoreResult<()>;
    /// A supervisor's co-signature on a signed note (once).
    async fn cosign_note(
        &self,
        practice: PracticeId,
        id: Uuid,
        supervisor: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn note(&self, practice: PracticeId, id: Uuid) -> StoreResult<Option<SessionNote>>;
    /// The client's notes, newest first.
    async fn notes_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<SessionNote>>;
    /// Draft notes written by `author` in the practice.
    async fn unsigned_notes_by(
        &self,
        practice: PracticeId,
        author: UserId,
    ) -> StoreResult<Vec<SessionNote>>;
    /// Adds an addendum to a signed note (a draft: `Conflict`).
    async fn add_addendum(&self, practice: PracticeId, addendum: &Addendum) -> StoreResult<()>;
    async fn addenda(&self, practice: PracticeId, note: Uuid) -> StoreResult<Vec<Addendum>>;

    // --- safety plans
    /// Stores a new version (numbered after the latest) and returns it.
    async fn save_safety_plan(
        &self,
        practice: PracticeId,
        client: ClientId,
        author: UserId,
        body: &SafetyPlanBody,
        at: DateTime<Utc>,
    ) -> StoreResult<u32>;
    /// Every version, oldest first.
    async fn safety_plans(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<SafetyPlanVersion>>;

    // --- homework
    async fn assign_homework(&self, homework: &Homework) -> StoreResult<()>;
    async fn homework(&self, practice: PracticeId, id: Uuid) -> StoreResult<Option<Homework>>;
    /// The client's homework, newest first.
    async fn homework_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<Homework>>;
    /// Saves the client's answers as a draft, or (`submit`) sends them.
    /// Submitted homework: `Conflict(HOMEWORK_SUBMITTED)`.
    async fn save_homework_answers(
        &self,
        practice: PracticeId,
        id: Uuid,
        answers: &WorksheetAnswers,
        submit: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Submitted homework not yet reviewed, in the practice.
    async fn homework_returned(&self, practice: PracticeId) -> StoreResult<Vec<Homework>>;
    async fn mark_homework_reviewed(
        &self,
        practice: PracticeId,
        id: Uuid,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    // --- intake
    async fn save_intake_draft(
        &self,
        practice: PracticeId,
        client: ClientId,
        draft: &IntakeDraft,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    async fn intake_draft(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Option<IntakeDraft>>;
}
