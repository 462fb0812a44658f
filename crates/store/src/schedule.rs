//! Scheduling storage: clinicians' availability and rules, the practice's
//! appointment types, appointments (with no double booking enforced by the
//! database), recurring series and calendar-feed tokens.

use crate::error::StoreResult;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tapestry_domain::ids::{ClientId, PracticeId, UserId};
use tapestry_domain::practice::TimeZoneName;
use tapestry_domain::schedule::{
    Appointment, AppointmentId, AppointmentStatus, AppointmentType, Availability, BookingRules,
    CancellationPolicy, Recurrence, SeriesId,
};

/// A clinician's availability, booking rules and cancellation policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClinicianSchedule {
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub availability: Availability,
    pub rules: BookingRules,
    pub policy: CancellationPolicy,
    pub updated_at: DateTime<Utc>,
}

/// A recurring series; its occurrences are ordinary appointments carrying
/// the series id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub id: SeriesId,
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub client_id: ClientId,
    pub recurrence: Recurrence,
    pub created_at: DateTime<Utc>,
}

/// The outcome of booking one occurrence of a series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OccurrenceOutcome {
    Booked(AppointmentId),
    /// Another appointment holds the time; nothing was stored for it.
    Conflict(DateTime<Utc>),
}

/// The message of the conflict returned when a booking overlaps another.
pub const OVERLAP: &str = "appointment overlaps another appointment of this clinician";

#[async_trait]
pub trait ScheduleStore {
    /// Sets (or clears) the client's own time zone. Another practice's
    /// client is `NotFound("client")`.
    async fn set_client_time_zone(
        &self,
        practice: PracticeId,
        client: ClientId,
        time_zone: Option<&TimeZoneName>,
    ) -> StoreResult<()>;

    /// Creates or replaces a clinician's availability, rules and policy.
    async fn put_clinician_schedule(&self, schedule: &ClinicianSchedule) -> StoreResult<()>;
    async fn clinician_schedule(
        &self,
        practice: PracticeId,
        clinician: UserId,
    ) -> StoreResult<Option<ClinicianSchedule>>;

    /// Adds an appointment type the practice offers (adding twice is a no-op).
    async fn add_appointment_type(
        &self,
        practice: PracticeId,
        appointment_type: AppointmentType,
    ) -> StoreResult<()>;
    async fn appointment_types(&self, practice: PracticeId) -> StoreResult<Vec<AppointmentType>>;

    /// Books `appointment` (status `booked`). Fails with
    /// `Conflict(OVERLAP)` when a non-cancelled appointment of the same
    /// clinician overlaps it, leaving nothing behind. Enforced by the
    /// database: an exclusion constraint on PostgreSQL, an immediate
    /// (single-writer) transaction with an overlap check on SQLite.
    async fn book_appointment(&self, appointment: &Appointment) -> StoreResult<()>;

    /// Stores the series and books each occurrence on its own (an occupied
    /// time is reported, the others are booked).
    async fn book_series(
        &self,
        series: &Series,
        occurrences: &[Appointment],
    ) -> StoreResult<Vec<OccurrenceOutcome>>;

    async fn appointment(
        &self,
        practice: PracticeId,
        id: AppointmentId,
    ) -> StoreResult<Option<Appointment>>;

    /// A clinician's appointments (every status) that overlap `[from, to)`,
    /// by start.
    async fn appointments_for_clinician(
        &self,
        practice: PracticeId,
        clinician: UserId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Appointment>>;

    /// The practice's booked appointments starting in `[from, to)`, by
    /// start (for reminders).
    async fn booked_starting_between(
        &self,
        practice: PracticeId,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> StoreResult<Vec<Appointment>>;

    /// A client's appointments (every status), by start.
    async fn appointments_for_client(
        &self,
        practice: PracticeId,
        client: ClientId,
    ) -> StoreResult<Vec<Appointment>>;

    /// Moves an appointment from `from` to `to` only if it is still in
    /// `from` (compare-and-set); `late_cancel` is recorded with it.
    async fn set_appointment_status(
        &self,
        practice: PracticeId,
        id: AppointmentId,
        from: AppointmentStatus,
        to: AppointmentStatus,
        late_cancel: bool,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Cancels `old` (if still booked) and books `new` in one transaction:
    /// either both happen or neither. `new` may overlap `old`'s time.
    async fn reschedule(
        &self,
        practice: PracticeId,
        old: AppointmentId,
        late_cancel: bool,
        new: &Appointment,
    ) -> StoreResult<()>;

    /// Stores a new calendar-feed token hash for the clinician and revokes
    /// any earlier one (one live feed URL per clinician).
    async fn replace_feed_token(
        &self,
        practice: PracticeId,
        clinician: UserId,
        token_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    /// Revokes the clinician's feed URL; returns how many were live.
    async fn revoke_feed_tokens(
        &self,
        practice: PracticeId,
        clinician: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<u64>;
    /// Whose feed a (live) token hash opens.
    async fn feed_owner(&self, token_hash: &str) -> StoreResult<Option<(PracticeId, UserId)>>;
}
