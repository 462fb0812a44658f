//! What a clinician offers: appointment types, weekly hours in their own time
//! zone with exceptions, and the booking rules they set.

use super::ScheduleError;
use chrono::{NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// The kind of appointment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentKind {
    Intake,
    Session,
    Review,
    Group,
}

/// How the appointment is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Video,
    Phone,
    Chat,
    InPerson,
}

macro_rules! str_enum {
    ($ty:ident, $field:literal, $($variant:ident = $text:literal),+) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Result<Self, ScheduleError> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    other => Err(ScheduleError::invalid($field, format!("'{}' is not one of: {}", other.chars().take(40).collect::<String>(), [$($text),+].join(", ")))),
                }
            }
        }
    };
}

str_enum!(
    AppointmentKind,
    "kind",
    Intake = "intake",
    Session = "session",
    Review = "review",
    Group = "group"
);
str_enum!(
    Format,
    "format",
    Video = "video",
    Phone = "phone",
    Chat = "chat",
    InPerson = "in_person"
);

impl AppointmentKind {
    /// The neutral label used in calendars and e-mails.
    pub fn label(self) -> &'static str {
        match self {
            Self::Intake => "Intake",
            Self::Session => "Session",
            Self::Review => "Review",
            Self::Group => "Group session",
        }
    }
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Self::Video => "video",
            Self::Phone => "phone",
            Self::Chat => "chat",
            Self::InPerson => "in person",
        }
    }
}

/// An appointment type a practice offers: kind, length, format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AppointmentType {
    pub kind: AppointmentKind,
    pub minutes: u32,
    pub format: Format,
}

/// Appointment lengths are whole minutes between 5 and 8 hours.
pub const MAX_APPOINTMENT_MINUTES: u32 = 8 * 60;

impl AppointmentType {
    pub fn new(kind: AppointmentKind, minutes: u32, format: Format) -> Result<Self, ScheduleError> {
        if !(5..=MAX_APPOINTMENT_MINUTES).contains(&minutes) {
            return Err(ScheduleError::invalid(
                "minutes",
                format!("{minutes} is outside 5..={MAX_APPOINTMENT_MINUTES}"),
            ));
        }
        Ok(Self {
            kind,
            minutes,
            format,
        })
    }

    /// The content-free summary used in calendar feeds, e.g.
    /// `Session · 50 min · video`.
    pub fn summary(&self) -> String {
        format!(
            "{} · {} min · {}",
            self.kind.label(),
            self.minutes,
            self.format.label()
        )
    }

    pub fn duration(&self) -> chrono::Duration {
        chrono::Duration::minutes(i64::from(self.minutes))
    }
}

/// Working hours on one weekday, wall clock in the clinician's zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeeklyHours {
    pub weekday: Weekday,
    pub start: NaiveTime,
    pub end: NaiveTime,
}

/// A change to the weekly pattern on one date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Exception {
    /// No hours at all on this date (holiday, leave).
    DayOff { date: NaiveDate },
    /// Extra hours on this date, in addition to the weekly hours.
    ExtraHours {
        date: NaiveDate,
        start: NaiveTime,
        end: NaiveTime,
    },
}

/// A clinician's availability: weekly hours and exceptions, wall clock in
/// `time_zone` (an IANA name such as `Europe/London`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    pub time_zone: String,
    pub weekly: Vec<WeeklyHours>,
    #[serde(default)]
    pub exceptions: Vec<Exception>,
}

impl Availability {
    /// Checks the zone name and that every span ends after it starts.
    pub fn validate(&self) -> Result<chrono_tz::Tz, ScheduleError> {
        let tz = super::parse_time_zone(&self.time_zone)?;
        for (i, w) in self.weekly.iter().enumerate() {
            if w.end <= w.start {
                return Err(ScheduleError::invalid(
                    "weekly",
                    format!(
                        "entry {} ({:?}) ends at or before it starts",
                        i + 1,
                        w.weekday
                    ),
                ));
            }
        }
        for e in &self.exceptions {
            if let Exception::ExtraHours { date, start, end } = e {
                if end <= start {
                    return Err(ScheduleError::invalid(
                        "exceptions",
                        format!("extra hours on {date} end at or before they start"),
                    ));
                }
            }
        }
        Ok(tz)
    }

    /// The wall-clock spans worked on `date` (clinician's zone), sorted:
    /// weekly hours for that weekday unless the date is a day off, plus any
    /// extra hours for that date (extra hours are honoured even on a day off
    /// entry for the same date, since they are the more specific instruction).
    pub fn spans_on(&self, date: NaiveDate) -> Vec<(NaiveTime, NaiveTime)> {
        use chrono::Datelike;
        let day_off = self
            .exceptions
            .iter()
            .any(|e| matches!(e, Exception::DayOff { date: d } if *d == date));
        let mut spans: Vec<(NaiveTime, NaiveTime)> = Vec::new();
        if !day_off {
            spans.extend(
                self.weekly
                    .iter()
                    .filter(|w| w.weekday == date.weekday())
                    .map(|w| (w.start, w.end)),
            );
        }
        spans.extend(self.exceptions.iter().filter_map(|e| match e {
            Exception::ExtraHours {
                date: d,
                start,
                end,
            } if *d == date => Some((*start, *end)),
            _ => None,
        }));
        spans.sort();
        spans
    }
}

/// The rules a clinician sets for client self-booking.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookingRules {
    /// A slot must start at least this many minutes after now.
    pub min_notice_minutes: u32,
    /// A slot must start at most this many days after now.
    pub max_ahead_days: u32,
    /// Free minutes kept before and after every appointment.
    pub buffer_minutes: u32,
    /// Slots start every this many minutes from the start of a span.
    pub slot_step_minutes: u32,
}

impl Default for BookingRules {
    fn default() -> Self {
        Self {
            min_notice_minutes: 24 * 60,
            max_ahead_days: 60,
            buffer_minutes: 10,
            slot_step_minutes: 30,
        }
    }
}

impl BookingRules {
    pub fn validate(&self) -> Result<(), ScheduleError> {
        if !(5..=24 * 60).contains(&self.slot_step_minutes) {
            return Err(ScheduleError::invalid(
                "slot_step_minutes",
                "must be 5..=1440",
            ));
        }
        if self.max_ahead_days == 0 || self.max_ahead_days > 366 {
            return Err(ScheduleError::invalid("max_ahead_days", "must be 1..=366"));
        }
        if self.buffer_minutes > 240 {
            return Err(ScheduleError::invalid(
                "buffer_minutes",
                "must be at most 240",
            ));
        }
        if self.min_notice_minutes > 60 * 24 * 90 {
            return Err(ScheduleError::invalid(
                "min_notice_minutes",
                "must be at most 90 days",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_is_neutral() {
        let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
        assert_eq!(t.summary(), "Session · 50 min · video");
        assert!(AppointmentType::new(AppointmentKind::Session, 0, Format::Video).is_err());
        assert!(AppointmentType::new(AppointmentKind::Session, 10_000, Format::Video).is_err());
    }

    #[test]
    fn kinds_and_formats_round_trip_and_name_the_field() {
        for k in [
            AppointmentKind::Intake,
            AppointmentKind::Session,
            AppointmentKind::Review,
            AppointmentKind::Group,
        ] {
            assert_eq!(AppointmentKind::parse(k.as_str()).unwrap(), k);
        }
        for f in [Format::Video, Format::Phone, Format::Chat, Format::InPerson] {
            assert_eq!(Format::parse(f.as_str()).unwrap(), f);
        }
        assert!(Format::parse("carrier pigeon")
            .unwrap_err()
            .to_string()
            .starts_with("format:"));
    }

    #[test]
    fn days_off_remove_weekly_hours_but_keep_extra_hours() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(); // a Monday
        let t = |h| NaiveTime::from_hms_opt(h, 0, 0).unwrap();
        let mut a = Availability {
            time_zone: "Europe/London".into(),
            weekly: vec![WeeklyHours {
                weekday: Weekday::Mon,
                start: t(9),
                end: t(12),
            }],
            exceptions: vec![],
        };
        assert_eq!(a.spans_on(d), vec![(t(9), t(12))]);
        a.exceptions.push(Exception::DayOff { date: d });
        assert!(a.spans_on(d).is_empty());
        a.exceptions.push(Exception::ExtraHours {
            date: d,
            start: t(18),
            end: t(20),
        });
        assert_eq!(a.spans_on(d), vec![(t(18), t(20))]);
        assert!(a.validate().is_ok());
        a.weekly.push(WeeklyHours {
            weekday: Weekday::Tue,
            start: t(12),
            end: t(9),
        });
        assert!(a.validate().unwrap_err().to_string().starts_with("weekly:"));
    }
}
