//! Recurring appointments: weekly or fortnightly at the same wall-clock time
//! in the clinician's zone (so a 10:00 London session stays at 10:00 London
//! across daylight-saving changes), for N occurrences or until a date. Every
//! occurrence is checked on its own; the caller books the free ones and
//! shows the others.

use super::{
    local::{parse_time_zone, resolve_local, Edge},
    Interval, ScheduleError,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// How often a series repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Every {
    Weekly,
    Fortnightly,
}

impl Every {
    fn days(self) -> i64 {
        match self {
            Self::Weekly => 7,
            Self::Fortnightly => 14,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Weekly => "weekly",
            Self::Fortnightly => "fortnightly",
        }
    }
}

/// When a series stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Until {
    /// This many occurrences in total (1..=MAX_OCCURRENCES).
    Count(u32),
    /// The last occurrence is on or before this date (clinician's zone).
    Date(NaiveDate),
}

/// A recurrence rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recurrence {
    pub every: Every,
    pub until: Until,
}

/// The most occurrences one series may have (a year of weekly sessions).
pub const MAX_OCCURRENCES: u32 = 52;

/// The occurrences of a series whose first session starts at wall time
/// `first` in zone `time_zone` and lasts `minutes`.
pub fn occurrences(
    first: NaiveDateTime,
    time_zone: &str,
    minutes: u32,
    rule: Recurrence,
) -> Result<Vec<Interval>, ScheduleError> {
    let tz = parse_time_zone(time_zone)?;
    let limit = match rule.until {
        Until::Count(0) => return Err(ScheduleError::invalid("count", "must be at least 1")),
        Until::Count(n) if n > MAX_OCCURRENCES => {
            return Err(ScheduleError::invalid(
                "count",
                format!("{n} is more than {MAX_OCCURRENCES}"),
            ))
        }
        Until::Count(n) => n,
        Until::Date(d) if d < first.date() => {
            return Err(ScheduleError::invalid(
                "until",
                "is before the first occurrence",
            ))
        }
        Until::Date(_) => MAX_OCCURRENCES,
    };
    let length = Duration::minutes(i64::from(minutes));
    let mut out = Vec::new();
    for i in 0..i64::from(limit) {
        let wall = first + Duration::days(i * rule.every.days());
        if let Until::Date(last) = rule.until {
            if wall.date() > last {
                break;
            }
        }
        let start = resolve_local(tz, wall, Edge::Start);
        out.push(Interval {
            start,
            end: start + length,
        });
    }
    Ok(out)
}

/// One occurrence and whether it is free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOccurrence {
    pub interval: Interval,
    /// `None` when free; the busy interval it collides with otherwise.
    pub conflict: Option<Interval>,
}

/// Checks every occurrence against the clinician's busy time (with buffer)
/// and against time already in the past.
pub fn plan_series(
    occurrences: &[Interval],
    busy: &[Interval],
    buffer_minutes: u32,
    now: DateTime<Utc>,
) -> Vec<PlannedOccurrence> {
    let buffer = Duration::minutes(i64::from(buffer_minutes));
    occurrences
        .iter()
        .map(|o| PlannedOccurrence {
            interval: *o,
            conflict: if o.start < now {
                Some(Interval {
                    start: o.start,
                    end: o.end,
                })
            } else {
                busy.iter().find(|b| b.widened(buffer).overlaps(o)).copied()
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};

    fn wall(y: i32, m: u32, d: u32, h: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, 0, 0)
            .unwrap()
    }

    #[test]
    fn weekly_series_keeps_wall_time_across_eu_dst() {
        // Ten weekly sessions from 9 March 2026 10:00 London cross 29 March.
        let occ = occurrences(
            wall(2026, 3, 9, 10),
            "Europe/London",
            50,
            Recurrence {
                every: Every::Weekly,
                until: Until::Count(10),
            },
        )
        .unwrap();
        assert_eq!(occ.len(), 10);
        let london = parse_time_zone("Europe/London").unwrap();
        assert!(occ
            .iter()
            .all(|o| o.start.with_timezone(&london).hour() == 10));
        assert_eq!(occ[0].start.hour(), 10); // GMT
        assert_eq!(occ[3].start.hour(), 9); // 30 March, BST
    }

    #[test]
    fn fortnightly_until_a_date_and_bounds() {
        let r = Recurrence {
            every: Every::Fortnightly,
            until: Until::Date(NaiveDate::from_ymd_opt(2026, 4, 30).unwrap()),
        };
        let occ = occurrences(wall(2026, 3, 2, 9), "America/New_York", 50, r).unwrap();
        assert_eq!(occ.len(), 5); // 2, 16, 30 March; 13, 27 April
        assert!(occurrences(
            wall(2026, 3, 2, 9),
            "America/New_York",
            50,
            Recurrence {
                every: Every::Weekly,
                until: Until::Count(0)
            }
        )
        .unwrap_err()
        .to_string()
        .starts_with("count:"));
        assert!(occurrences(
            wall(2026, 3, 2, 9),
            "America/New_York",
            50,
            Recurrence {
                every: Every::Weekly,
                until: Until::Count(500)
            }
        )
        .is_err());
        let huge = Recurrence {
            every: Every::Weekly,
            until: Until::Date(NaiveDate::from_ymd_opt(2099, 1, 1).unwrap()),
        };
        assert_eq!(
            occurrences(wall(2026, 3, 2, 9), "Europe/Paris", 50, huge)
                .unwrap()
                .len() as u32,
            MAX_OCCURRENCES
        );
    }

    #[test]
    fn each_occurrence_is_checked() {
        let occ = occurrences(
            wall(2026, 3, 2, 9),
            "UTC",
            50,
            Recurrence {
                every: Every::Weekly,
                until: Until::Count(3),
            },
        )
        .unwrap();
        let clash = Interval::new(
            occ[1].start + Duration::minutes(55),
            occ[1].start + Duration::minutes(105),
        )
        .unwrap();
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let plan = plan_series(&occ, &[clash], 10, now);
        assert_eq!(
            plan.iter()
                .map(|p| p.conflict.is_some())
                .collect::<Vec<_>>(),
            vec![false, true, false]
        );
        assert!(plan_series(&occ, &[clash], 0, now)
            .iter()
            .all(|p| p.conflict.is_none()));
        let later = occ[0].start + Duration::minutes(1);
        assert!(plan_series(&occ, &[], 0, later)[0].conflict.is_some());
    }
}
