//! Wall-clock times in named IANA zones, with daylight-saving transitions
//! handled explicitly.
//!
//! * A wall time that does **not exist** (clocks jump forward, e.g. 02:30 on
//!   the US spring-forward night) is moved to the instant the clocks jump to
//!   (03:00 new time), for starts and ends alike.
//! * A wall time that happens **twice** (clocks go back, e.g. 01:30 on the EU
//!   autumn night) resolves to the *first* occurrence for a start and the
//!   *second* occurrence for an end, so an interval always covers the whole
//!   wall-clock span a person meant.

use super::ScheduleError;
use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

/// Which end of an interval a wall time is (decides ambiguous times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    Start,
    End,
}

/// Parses an IANA zone name such as `Europe/London`.
pub fn parse_time_zone(name: &str) -> Result<Tz, ScheduleError> {
    name.parse::<Tz>()
        .map_err(|_| ScheduleError::UnknownTimeZone(name.chars().take(64).collect()))
}

/// The instant meant by wall time `local` in zone `tz` (see the module docs
/// for gaps and overlaps). Total: every wall time resolves to an instant.
pub fn resolve_local(tz: Tz, local: NaiveDateTime, edge: Edge) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(first, second) => match edge {
            Edge::Start => first.with_timezone(&Utc),
            Edge::End => second.with_timezone(&Utc),
        },
        LocalResult::None => {
            // Walk forward minute by minute to the first wall time that
            // exists: that is the moment the clocks jumped to. Gaps are at most
            // a day long (Samoa 2011), so the walk is bounded.
            let mut probe = local.with_second(0).unwrap_or(local);
            for _ in 0..(24 * 60 + 1) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            // Unreachable for real zone data; fall back to reading the wall
            // time as UTC rather than failing.
            Utc.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn wall(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, 0)
            .unwrap()
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn us_spring_forward_gap_moves_to_the_jump() {
        // 2026-03-08: New York clocks go 02:00 EST -> 03:00 EDT (07:00 UTC).
        let ny = parse_time_zone("America/New_York").unwrap();
        for edge in [Edge::Start, Edge::End] {
            assert_eq!(
                resolve_local(ny, wall(2026, 3, 8, 2, 30), edge),
                utc(2026, 3, 8, 7, 0)
            );
        }
        assert_eq!(
            resolve_local(ny, wall(2026, 3, 8, 3, 0), Edge::Start),
            utc(2026, 3, 8, 7, 0)
        );
        assert_eq!(
            resolve_local(ny, wall(2026, 3, 8, 1, 59), Edge::Start),
            utc(2026, 3, 8, 6, 59)
        );
    }

    #[test]
    fn us_fall_back_overlap_start_first_end_second() {
        // 2026-11-01: 01:30 happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
        let ny = parse_time_zone("America/New_York").unwrap();
        assert_eq!(
            resolve_local(ny, wall(2026, 11, 1, 1, 30), Edge::Start),
            utc(2026, 11, 1, 5, 30)
        );
        assert_eq!(
            resolve_local(ny, wall(2026, 11, 1, 1, 30), Edge::End),
            utc(2026, 11, 1, 6, 30)
        );
    }

    #[test]
    fn eu_spring_and_autumn_transitions() {
        // 2026-03-29: London 01:00 GMT -> 02:00 BST; 01:30 does not exist.
        let london = parse_time_zone("Europe/London").unwrap();
        assert_eq!(
            resolve_local(london, wall(2026, 3, 29, 1, 30), Edge::Start),
            utc(2026, 3, 29, 1, 0)
        );
        // 2026-10-25: 01:30 happens at 00:30 UTC (BST) and 01:30 UTC (GMT).
        assert_eq!(
            resolve_local(london, wall(2026, 10, 25, 1, 30), Edge::Start),
            utc(2026, 10, 25, 0, 30)
        );
        assert_eq!(
            resolve_local(london, wall(2026, 10, 25, 1, 30), Edge::End),
            utc(2026, 10, 25, 1, 30)
        );
        // Berlin: 02:30 on 2026-03-29 does not exist; the jump is at 01:00 UTC.
        let berlin = parse_time_zone("Europe/Berlin").unwrap();
        assert_eq!(
            resolve_local(berlin, wall(2026, 3, 29, 2, 30), Edge::Start),
            utc(2026, 3, 29, 1, 0)
        );
    }

    #[test]
    fn unknown_zones_are_named_in_the_error() {
        let err = parse_time_zone("Mars/Olympus").unwrap_err();
        assert!(err.to_string().contains("Mars/Olympus"));
        assert!(parse_time_zone("").is_err());
    }

    proptest::proptest! {
        #[test]
        fn resolution_round_trips_when_the_wall_time_exists(mins in 0i64..(366 * 24 * 60)) {
            let london = parse_time_zone("Europe/London").unwrap();
            let local = wall(2026, 1, 1, 0, 0) + Duration::minutes(mins);
            let start = resolve_local(london, local, Edge::Start);
            let end = resolve_local(london, local, Edge::End);
            proptest::prop_assert!(start <= end);
            if london.from_local_datetime(&local).single().is_some() {
                proptest::prop_assert_eq!(start.with_timezone(&london).naive_local(), local);
            }
        }
    }
}
