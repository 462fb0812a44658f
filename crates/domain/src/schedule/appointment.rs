//! An appointment and its life: booked, then cancelled (on time or late),
//! attended or missed (no-show). Reschedule is a cancel plus a new booking
//! under the same policy.

use super::{AppointmentId, AppointmentType, Interval, ScheduleError, SeriesId};
use crate::ids::{ClientId, PracticeId, UserId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where an appointment is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    Booked,
    /// Cancelled: frees the slot. `late` on the appointment says whether it
    /// was inside the practice's late-cancel window.
    Cancelled,
    Attended,
    NoShow,
}

impl AppointmentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Booked => "booked",
            Self::Cancelled => "cancelled",
            Self::Attended => "attended",
            Self::NoShow => "no_show",
        }
    }
    pub fn parse(s: &str) -> Result<Self, ScheduleError> {
        Ok(match s {
            "booked" => Self::Booked,
            "cancelled" => Self::Cancelled,
            "attended" => Self::Attended,
            "no_show" => Self::NoShow,
            other => {
                return Err(ScheduleError::invalid(
                    "status",
                    format!(
                        "'{}' is not booked, cancelled, attended or no_show",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        })
    }
}

/// Who cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Party {
    Client,
    Clinician,
}

/// One appointment between a clinician and a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Appointment {
    pub id: AppointmentId,
    pub practice_id: PracticeId,
    pub clinician: UserId,
    pub client_id: ClientId,
    pub appointment_type: AppointmentType,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub status: AppointmentStatus,
    /// Cancelled by the client inside the late-cancel window.
    pub late_cancel: bool,
    pub series_id: Option<SeriesId>,
    pub created_at: DateTime<Utc>,
}

impl Appointment {
    /// A new booked appointment starting at `starts_at` (whole minutes; any
    /// seconds are an error so that stored times compare exactly).
    pub fn book(
        practice_id: PracticeId,
        clinician: UserId,
        client_id: ClientId,
        appointment_type: AppointmentType,
        starts_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Self, ScheduleError> {
        use chrono::Timelike;
        if starts_at.second() != 0 || starts_at.nanosecond() != 0 {
            return Err(ScheduleError::invalid(
                "starts_at",
                "must be a whole minute",
            ));
        }
        Ok(Self {
            id: AppointmentId::random(),
            practice_id,
            clinician,
            client_id,
            appointment_type,
            starts_at,
            ends_at: starts_at + appointment_type.duration(),
            status: AppointmentStatus::Booked,
            late_cancel: false,
            series_id: None,
            created_at: now,
        })
    }

    pub fn interval(&self) -> Interval {
        Interval {
            start: self.starts_at,
            end: self.ends_at,
        }
    }

    /// Whether this appointment holds its slot (everything but cancelled).
    pub fn holds_slot(&self) -> bool {
        self.status != AppointmentStatus::Cancelled
    }
}

/// The practice's cancellation policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CancellationPolicy {
    /// A client cancellation fewer than this many hours before the start is
    /// recorded as late (the practice decides what that means; Tapestry
    /// never charges or ends care by itself).
    pub late_cancel_hours: u32,
}

impl Default for CancellationPolicy {
    fn default() -> Self {
        Self {
            late_cancel_hours: 24,
        }
    }
}

/// The result of a cancellation decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancellation {
    pub late: bool,
}

/// Decides a cancellation at `now`: only a booked appointment that has not
/// started can be cancelled; a client cancelling inside the window is late.
/// A clinician's cancellation is never late for the client.
pub fn cancel(
    appointment: &Appointment,
    policy: &CancellationPolicy,
    by: Party,
    now: DateTime<Utc>,
) -> Result<Cancellation, ScheduleError> {
    if appointment.status != AppointmentStatus::Booked {
        return Err(ScheduleError::invalid(
            "status",
            format!(
                "a {} appointment cannot be cancelled",
                appointment.status.as_str()
            ),
        ));
    }
    if now >= appointment.starts_at {
        return Err(ScheduleError::invalid(
            "starts_at",
            "the appointment has already started",
        ));
    }
    let window = Duration::hours(i64::from(policy.late_cancel_hours));
    Ok(Cancellation {
        late: by == Party::Client && appointment.starts_at - now < window,
    })
}

/// Decides recording attendance: only a booked appointment, and only once it
/// has started.
pub fn record_attendance(
    appointment: &Appointment,
    attended: bool,
    now: DateTime<Utc>,
) -> Result<AppointmentStatus, ScheduleError> {
    if appointment.status != AppointmentStatus::Booked {
        return Err(ScheduleError::invalid(
            "status",
            format!(
                "attendance of a {} appointment cannot be recorded",
                appointment.status.as_str()
            ),
        ));
    }
    if now < appointment.starts_at {
        return Err(ScheduleError::invalid(
            "starts_at",
            "the appointment has not started yet",
        ));
    }
    Ok(if attended {
        AppointmentStatus::Attended
    } else {
        AppointmentStatus::NoShow
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{AppointmentKind, Format};
    use chrono::TimeZone;

    fn appt() -> Appointment {
        let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).unwrap();
        Appointment::book(
            PracticeId::random(),
            UserId::random(),
            ClientId::random(),
            t,
            start,
            start - Duration::days(7),
        )
        .unwrap()
    }

    #[test]
    fn late_cancel_only_for_clients_inside_the_window() {
        let a = appt();
        let p = CancellationPolicy {
            late_cancel_hours: 24,
        };
        assert!(
            !cancel(&a, &p, Party::Client, a.starts_at - Duration::hours(25))
                .unwrap()
                .late
        );
        assert!(
            cancel(&a, &p, Party::Client, a.starts_at - Duration::hours(23))
                .unwrap()
                .late
        );
        assert!(
            !cancel(&a, &p, Party::Clinician, a.starts_at - Duration::hours(1))
                .unwrap()
                .late
        );
        assert!(cancel(&a, &p, Party::Client, a.starts_at).is_err());
        let mut done = a.clone();
        done.status = AppointmentStatus::Cancelled;
        assert!(
            cancel(&done, &p, Party::Client, a.starts_at - Duration::days(3))
                .unwrap_err()
                .to_string()
                .starts_with("status:")
        );
    }

    #[test]
    fn no_show_is_recorded_only_after_the_start() {
        let a = appt();
        assert!(record_attendance(&a, false, a.starts_at - Duration::minutes(1)).is_err());
        assert_eq!(
            record_attendance(&a, false, a.starts_at + Duration::minutes(20)).unwrap(),
            AppointmentStatus::NoShow
        );
        assert_eq!(
            record_attendance(&a, true, a.ends_at).unwrap(),
            AppointmentStatus::Attended
        );
    }

    #[test]
    fn bookings_are_whole_minutes_and_end_after_their_length() {
        let a = appt();
        assert_eq!(a.ends_at - a.starts_at, Duration::minutes(50));
        let t = a.appointment_type;
        let odd = a.starts_at + Duration::seconds(30);
        assert!(Appointment::book(
            a.practice_id,
            a.clinician,
            a.client_id,
            t,
            odd,
            a.created_at
        )
        .unwrap_err()
        .to_string()
        .starts_with("starts_at:"));
        for s in [
            AppointmentStatus::Booked,
            AppointmentStatus::Cancelled,
            AppointmentStatus::Attended,
            AppointmentStatus::NoShow,
        ] {
            assert_eq!(AppointmentStatus::parse(s.as_str()).unwrap(), s);
        }
    }
}
