//! Group programmes: programmes, memberships (capacity held atomically),
//! group sessions on the facilitators' calendars (never double-booked
//! against their appointments or other group sessions), attendance and
//! per-member notes (sealed at rest).

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::schedule::group::{
    Attendance, GroupId, GroupNote, GroupProgramme, GroupSession, Membership,
};
use tapestry_domain::schedule::AppointmentId;

/// The conflict returned when a group is full.
pub const GROUP_FULL: &str = "the group is full";
/// The conflict returned when the client is already a current member.
pub const ALREADY_MEMBER: &str = "the client is already a member of this group";

/// One member's attendance of one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttendanceRecord {
    pub session_id: AppointmentId,
    pub client_id: ClientId,
    pub status: Attendance,
    pub recorded_by: UserId,
    pub recorded_at: DateTime<Utc>,
}

/// One line of a group session's live chat (opened). The transcript belongs
/// to the group's record: facilitators read it; members see the chat live
/// only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupChatLine {
    pub id: uuid::Uuid,
    pub practice_id: PracticeId,
    pub group_id: GroupId,
    pub session_id: AppointmentId,
    pub sender: UserId,
    pub body: String,
    pub sent_at: DateTime<Utc>,
}

#[async_trait]
pub trait GroupStore {
    /// Appends one live-chat line (sealed) to the group's transcript.
    /// `NotFound` when the session is not this group's (or practice's).
    async fn append_group_chat_line(&self, line: &GroupChatLine) -> StoreResult<()>;
    /// The group's chat transcript across its sessions, oldest first.
    async fn group_chat_transcript(
        &self,
        practice: PracticeId,
        group: GroupId,
    ) -> StoreResult<Vec<GroupChatLine>>;

    async fn insert_group(&self, group: &GroupProgramme) -> StoreResult<()>;
    async fn group(&self, practice: PracticeId, id: GroupId)
        -> StoreResult<Option<GroupProgramme>>;
    /// Every programme of the practice, oldest first.
    async fn groups_in_practice(&self, practice: PracticeId) -> StoreResult<Vec<GroupProgramme>>;
    /// The programmes the client is currently a member of.
    async fn groups_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<GroupProgramme>>;

    /// Adds a current membership. Fails with `Conflict(GROUP_FULL)` when
    /// the group already has `capacity` current members and with
    /// `Conflict(ALREADY_MEMBER)` for a current member, leaving nothing
    /// behind; concurrent joins never exceed the capacity.
    async fn add_member(&self, practice: PracticeId, membership: &Membership) -> StoreResult<()>;
    /// Ends the client's current membership (`NotFound` if none).
    async fn remove_member(
        &self,
        practice: PracticeId,
        group: GroupId,
        client: ClientId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Every membership of the group (current and past), by join time.
    async fn memberships(
        &self,
        practice: PracticeId,
        group: GroupId,
    ) -> StoreResult<Vec<Membership>>;

    /// Books a group session. Fails with `Conflict(OVERLAP)` when the
    /// facilitator or co-facilitator has an overlapping non-cancelled
    /// appointment or group session, leaving nothing behind.
    async fn book_group_session(&self, session: &GroupSession) -> StoreResult<()>;
    async fn group_session(
        &self,
        practice: PracticeId,
        id: AppointmentId,
    ) -> StoreResult<Option<GroupSession>>;
    /// The group's sessions (every status), by start.
    async fn group_sessions(
        &self,
        practice: PracticeId,
        group: GroupId,
    ) -> StoreResult<Vec<GroupSession>>;
    /// Sessions the clinician facilitates (every status) overlapping
    /// `[from, to)`, by start: the group part of their calendar.
    async fn group_sessions_for_clinician(
        &self,
        practice: PracticeId,
        clinician: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<GroupSession>>;
    /// The practice's booked group sessions starting in `[from, to)`, by
    /// start (for reminders).
    async fn booked_group_sessions_starting_between(
        &self,
        practice: PracticeId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<GroupSession>>;
    /// Cancels a booked session (`NotFound` if not booked).
    async fn cancel_group_session(
        &self,
        practice: PracticeId,
        id: AppointmentId,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Records (or corrects) one member's attendance of a session.
    async fn set_attendance(
        &self,
        practice: PracticeId,
        record: &AttendanceRecord,
    ) -> StoreResult<()>;
    async fn attendance(
        &self,
        practice: PracticeId,
        session: AppointmentId,
    ) -> StoreResult<Vec<AttendanceRecord>>;

    /// Stores a per-member note (body sealed).
    async fn add_group_note(&self, note: &GroupNote) -> StoreResult<()>;
    /// The member's notes in the group, oldest first (opened).
    async fn group_notes(
        &self,
        practice: PracticeId,
        group: GroupId,
        client: ClientId,
    ) -> StoreResult<Vec<GroupNote>>;
}
