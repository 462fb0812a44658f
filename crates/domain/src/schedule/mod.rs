//! Scheduling online sessions: clinician availability in the clinician's own
//! time zone, appointment types, the booking rules a clinician sets, slot
//! generation in the client's time zone, recurring series, cancellation
//! policy, attendance and the video join window.
//!
//! Every function here is pure: "now" and existing appointments arrive as
//! values. The database enforces "no double booking, ever"; the functions here
//! decide what may be *offered* and explain why a request is refused.
//!
//! Times are `DateTime<Utc>` everywhere except at the edges, where a wall-clock
//! time in a named IANA zone is converted with [`local::resolve_local`], which
//! handles daylight-saving gaps and overlaps explicitly.

pub mod appointment;
pub mod availability;
pub mod group;
pub mod ical;
pub mod local;
pub mod recurrence;
pub mod slots;

pub use appointment::*;
pub use availability::*;
pub use local::{parse_time_zone, resolve_local, Edge};
pub use recurrence::*;
pub use slots::*;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

/// What can go wrong when scheduling. Every message names the field or item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("time_zone: '{0}' is not an IANA time-zone name")]
    UnknownTimeZone(String),
    #[error("{field}: {problem}")]
    Invalid {
        field: &'static str,
        problem: String,
    },
    #[error("booking: {0}")]
    Refused(BookingRefusal),
}

impl ScheduleError {
    pub(crate) fn invalid(field: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            field,
            problem: problem.into(),
        }
    }
}

/// Why a requested booking is refused (shown to the person booking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BookingRefusal {
    /// The start is closer to now than the clinician's minimum notice.
    TooSoon,
    /// The start is further ahead than the clinician allows.
    TooFarAhead,
    /// The slot is outside the clinician's working hours.
    OutsideAvailability,
    /// The slot (with the clinician's buffer) overlaps another appointment.
    Overlaps,
    /// The start is in the past.
    InThePast,
}

impl fmt::Display for BookingRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TooSoon => "starts sooner than the minimum notice",
            Self::TooFarAhead => "starts further ahead than bookings are open",
            Self::OutsideAvailability => "is outside the clinician's working hours",
            Self::Overlaps => "overlaps another appointment",
            Self::InThePast => "starts in the past",
        })
    }
}

macro_rules! schedule_id {
    ($($(#[$doc:meta])* $name:ident),+) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);
        impl $name {
            /// A fresh random id.
            pub fn random() -> Self { Self(Uuid::new_v4()) }
            pub fn from_uuid(uuid: Uuid) -> Self { Self(uuid) }
            pub fn as_uuid(&self) -> Uuid { self.0 }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { self.0.fmt(f) }
        }
    )+};
}

schedule_id!(
    /// One appointment.
    AppointmentId,
    /// A recurring series of appointments.
    SeriesId,
    /// A background job.
    JobId
);

/// A half-open interval of time `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    /// An interval; `end` must be after `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, ScheduleError> {
        if end <= start {
            return Err(ScheduleError::invalid("ends_at", "must be after starts_at"));
        }
        Ok(Self { start, end })
    }

    /// Half-open overlap: touching intervals (one ends as the next starts) do
    /// not overlap.
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The interval widened by `by` on both sides (for buffers).
    pub fn widened(&self, by: Duration) -> Interval {
        Interval {
            start: self.start - by,
            end: self.end + by,
        }
    }

    pub fn contains_interval(&self, other: &Interval) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    pub fn duration(&self) -> Duration {
        self.end - self.start
    }
}

/// Minutes before the start and after the end during which participants may
/// join a video, phone or chat session.
pub const JOIN_WINDOW_MINUTES: i64 = 15;

/// Whether a participant may join the session `[starts_at, ends_at)` at
/// `now`: from 15 minutes before the start until 15 minutes after the end
/// (both ends inclusive).
pub fn may_join(starts_at: DateTime<Utc>, ends_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let margin = Duration::minutes(JOIN_WINDOW_MINUTES);
    now >= starts_at - margin && now <= ends_at + margin
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, h, m, 0).unwrap()
    }

    #[test]
    fn join_window_is_fifteen_minutes_either_side() {
        let (s, e) = (at(10, 0), at(10, 50));
        assert!(!may_join(s, e, at(9, 44)));
        assert!(may_join(s, e, at(9, 45)));
        assert!(may_join(s, e, at(10, 20)));
        assert!(may_join(s, e, at(11, 5)));
        assert!(!may_join(s, e, at(11, 6)));
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let a = Interval::new(at(9, 0), at(10, 0)).unwrap();
        let b = Interval::new(at(10, 0), at(11, 0)).unwrap();
        assert!(!a.overlaps(&b) && !b.overlaps(&a));
        assert!(a.widened(Duration::minutes(1)).overlaps(&b));
        assert!(Interval::new(at(10, 0), at(10, 0)).is_err());
    }

    proptest::proptest! {
        #[test]
        fn overlap_is_symmetric(a in 0i64..1000, la in 1i64..200, b in 0i64..1000, lb in 1i64..200) {
            let base = at(0, 0);
            let x = Interval::new(base + Duration::minutes(a), base + Duration::minutes(a + la)).unwrap();
            let y = Interval::new(base + Duration::minutes(b), base + Duration::minutes(b + lb)).unwrap();
            proptest::prop_assert_eq!(x.overlaps(&y), y.overlaps(&x));
            // Overlap iff some minute lies in both.
            let shared = (a.max(b)) < ((a + la).min(b + lb));
            proptest::prop_assert_eq!(x.overlaps(&y), shared);
        }
    }
}
