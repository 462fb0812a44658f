//! Bookable slots: the clinician's hours (their zone) minus existing
//! appointments and buffers, within the booking rules, listed for a date
//! range in the *client's* zone.

use super::{
    local::{parse_time_zone, resolve_local, Edge},
    AppointmentType, Availability, BookingRefusal, BookingRules, Interval, ScheduleError,
};
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest date range one slot query may cover.
pub const MAX_QUERY_DAYS: i64 = 92;

/// One bookable slot, with its wall-clock time in the client's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Slot {
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub client_local_start: NaiveDateTime,
    pub client_time_zone: String,
}

/// A request for slots.
#[derive(Debug, Clone)]
pub struct SlotQuery<'a> {
    pub availability: &'a Availability,
    pub rules: &'a BookingRules,
    pub appointment_type: AppointmentType,
    /// The clinician's existing, not-cancelled appointments.
    pub busy: &'a [Interval],
    pub now: DateTime<Utc>,
    pub client_time_zone: &'a str,
    /// First and last date (inclusive) in the client's zone.
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// The clinician's working windows (UTC) for every clinician-local date that
/// can touch `range`.
pub fn working_windows(
    availability: &Availability,
    range: Interval,
) -> Result<Vec<Interval>, ScheduleError> {
    let tz = availability.validate()?;
    let first = range.start.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = range.end.with_timezone(&tz).date_naive() + Duration::days(1);
    let mut windows = Vec::new();
    let mut date = first;
    while date <= last {
        for (start, end) in availability.spans_on(date) {
            let s = resolve_local(tz, date.and_time(start), Edge::Start);
            let e = resolve_local(tz, date.and_time(end), Edge::End);
            // A span that lies wholly inside a DST gap collapses to nothing.
            if e > s {
                windows.push(Interval { start: s, end: e });
            }
        }
        date += Duration::days(1);
    }
    windows.sort();
    Ok(windows)
}

/// Whether a client may book `slot` themselves, and if not, why. The same
/// check that generates the offered slots, so an offered slot is bookable
/// until something else changes.
pub fn check_self_booking(
    availability: &Availability,
    rules: &BookingRules,
    slot: Interval,
    busy: &[Interval],
    now: DateTime<Utc>,
) -> Result<(), ScheduleError> {
    rules.validate()?;
    let windows = working_windows(availability, slot)?;
    refusal(&windows, rules, slot, busy, now).map_or(Ok(()), |r| Err(ScheduleError::Refused(r)))
}

fn refusal(
    windows: &[Interval],
    rules: &BookingRules,
    slot: Interval,
    busy: &[Interval],
    now: DateTime<Utc>,
) -> Option<BookingRefusal> {
    if slot.start < now {
        return Some(BookingRefusal::InThePast);
    }
    if slot.start < now + Duration::minutes(i64::from(rules.min_notice_minutes)) {
        return Some(BookingRefusal::TooSoon);
    }
    if slot.start > now + Duration::days(i64::from(rules.max_ahead_days)) {
        return Some(BookingRefusal::TooFarAhead);
    }
    if !windows.iter().any(|w| w.contains_interval(&slot)) {
        return Some(BookingRefusal::OutsideAvailability);
    }
    let buffer = Duration::minutes(i64::from(rules.buffer_minutes));
    if busy.iter().any(|b| b.widened(buffer).overlaps(&slot)) {
        return Some(BookingRefusal::Overlaps);
    }
    None
}

/// Every bookable slot whose start falls on a date from `from` to `to`
/// (inclusive) in the client's zone, sorted by start, without duplicates.
/// Empty availability gives no slots; a reversed or over-long range is an
/// error naming `to`.
pub fn available_slots(q: &SlotQuery<'_>) -> Result<Vec<Slot>, ScheduleError> {
    q.rules.validate()?;
    let client_tz = parse_time_zone(q.client_time_zone)?;
    if q.to < q.from {
        return Err(ScheduleError::invalid("to", "is before from"));
    }
    if (q.to - q.from).num_days() >= MAX_QUERY_DAYS {
        return Err(ScheduleError::invalid(
            "to",
            format!("the range may cover at most {MAX_QUERY_DAYS} days"),
        ));
    }
    let range = Interval {
        start: resolve_local(
            client_tz,
            q.from.and_time(chrono::NaiveTime::MIN),
            Edge::Start,
        ),
        end: resolve_local(
            client_tz,
            (q.to + Duration::days(1)).and_time(chrono::NaiveTime::MIN),
            Edge::Start,
        ),
    };
    let windows = working_windows(q.availability, range)?;
    let length = q.appointment_type.duration();
    let step = Duration::minutes(i64::from(q.rules.slot_step_minutes));
    let mut slots: Vec<Slot> = Vec::new();
    for window in &windows {
        let mut start = window.start;
        while start + length <= window.end {
            let slot = Interval {
                start,
                end: start + length,
            };
            if start >= range.start
                && start < range.end
                && refusal(&windows, q.rules, slot, q.busy, q.now).is_none()
            {
                slots.push(Slot {
                    starts_at: slot.start,
                    ends_at: slot.end,
                    client_local_start: slot.start.with_timezone(&client_tz).naive_local(),
                    client_time_zone: q.client_time_zone.to_string(),
                });
            }
            start += step;
        }
    }
    slots.sort_by_key(|s| s.starts_at);
    slots.dedup_by_key(|s| s.starts_at);
    Ok(slots)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{AppointmentKind, Format, WeeklyHours};
    use chrono::{NaiveTime, TimeZone, Weekday};

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn weekdays(tz: &str, start: NaiveTime, end: NaiveTime) -> Availability {
        Availability {
            time_zone: tz.into(),
            weekly: [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri,
            ]
            .into_iter()
            .map(|weekday| WeeklyHours {
                weekday,
                start,
                end,
            })
            .collect(),
            exceptions: vec![],
        }
    }

    fn rules() -> BookingRules {
        BookingRules {
            min_notice_minutes: 60,
            max_ahead_days: 90,
            buffer_minutes: 10,
            slot_step_minutes: 60,
        }
    }

    fn session() -> AppointmentType {
        AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn london_clinician_new_york_client_sees_local_times() {
        let a = weekdays("Europe/London", t(9, 0), t(12, 0));
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &[],
            now,
            client_time_zone: "America/New_York",
            from: d(2026, 1, 12),
            to: d(2026, 1, 12),
        };
        let slots = available_slots(&q).unwrap();
        // Monday 12 January: London 09:00-12:00 GMT = New York 04:00-07:00 EST.
        let starts: Vec<_> = slots.iter().map(|s| s.client_local_start.time()).collect();
        assert_eq!(starts, vec![t(4, 0), t(5, 0), t(6, 0)]);
    }

    #[test]
    fn us_and_eu_dst_weeks_shift_the_offset_between_them() {
        // Between 8 March (US springs forward) and 29 March 2026 (EU springs
        // forward) London is 4 hours ahead of New York instead of 5.
        let a = weekdays("Europe/London", t(9, 0), t(10, 0));
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let mut q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &[],
            now,
            client_time_zone: "America/New_York",
            from: d(2026, 3, 6),
            to: d(2026, 3, 6),
        };
        let first = |q: &SlotQuery| available_slots(q).unwrap()[0].client_local_start.time();
        assert_eq!(first(&q), t(4, 0)); // before US DST: 5 h apart
        q.from = d(2026, 3, 10);
        q.to = q.from;
        assert_eq!(first(&q), t(5, 0)); // US on DST, EU not yet: 4 h
        q.from = d(2026, 3, 31);
        q.to = q.from;
        assert_eq!(first(&q), t(4, 0)); // both on DST: 5 h again
    }

    #[test]
    fn hours_inside_a_dst_gap_are_shortened_not_invented() {
        // New York clinician works Sunday 01:00-04:00 on the spring-forward
        // night: 02:00-03:00 does not exist, so only two real hours remain.
        let a = Availability {
            time_zone: "America/New_York".into(),
            weekly: vec![WeeklyHours {
                weekday: Weekday::Sun,
                start: t(1, 0),
                end: t(4, 0),
            }],
            exceptions: vec![],
        };
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &[],
            now,
            client_time_zone: "America/New_York",
            from: d(2026, 3, 8),
            to: d(2026, 3, 8),
        };
        let slots = available_slots(&q).unwrap();
        let total: i64 = 2 * 60;
        let windows = working_windows(
            &a,
            Interval {
                start: slots[0].starts_at,
                end: slots[0].ends_at,
            },
        )
        .unwrap();
        assert!(windows.iter().any(|w| w.duration().num_minutes() == total));
        // 01:00 EST and 03:00 EDT (= 02:00 + 1h from 01:00 in real time).
        assert_eq!(slots.len(), 2);
        assert_eq!(slots[1].starts_at - slots[0].starts_at, Duration::hours(1));
        assert_eq!(slots[1].client_local_start.time(), t(3, 0));
    }

    #[test]
    fn fall_back_night_offers_the_repeated_hour_once_per_real_hour() {
        let a = Availability {
            time_zone: "Europe/London".into(),
            weekly: vec![WeeklyHours {
                weekday: Weekday::Sun,
                start: t(0, 0),
                end: t(3, 0),
            }],
            exceptions: vec![],
        };
        let now = Utc.with_ymd_and_hms(2026, 10, 1, 0, 0, 0).unwrap();
        let q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &[],
            now,
            client_time_zone: "Europe/London",
            from: d(2026, 10, 25),
            to: d(2026, 10, 25),
        };
        // 00:00 BST to 03:00 GMT is four real hours.
        assert_eq!(available_slots(&q).unwrap().len(), 4);
    }

    #[test]
    fn busy_buffer_notice_and_horizon_remove_slots() {
        let a = weekdays("Europe/London", t(9, 0), t(13, 0));
        let now = Utc.with_ymd_and_hms(2026, 1, 12, 8, 30, 0).unwrap();
        let busy = [Interval::new(
            Utc.with_ymd_and_hms(2026, 1, 12, 11, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 1, 12, 11, 50, 0).unwrap(),
        )
        .unwrap()];
        let q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &busy,
            now,
            client_time_zone: "Europe/London",
            from: d(2026, 1, 12),
            to: d(2026, 1, 12),
        };
        let starts: Vec<_> = available_slots(&q)
            .unwrap()
            .iter()
            .map(|s| s.client_local_start.time())
            .collect();
        // 09:00 is within an hour's notice; 10:00 ends 10:50, buffer reaches
        // 11:00: allowed; 11:00 taken; 12:00 starts 10 min after 11:50: allowed.
        assert_eq!(starts, vec![t(10, 0), t(12, 0)]);
        let refusal = check_self_booking(
            &a,
            &rules(),
            Interval::new(now + Duration::minutes(30), now + Duration::minutes(80)).unwrap(),
            &busy,
            now,
        );
        assert_eq!(
            refusal,
            Err(ScheduleError::Refused(BookingRefusal::TooSoon))
        );
        let far = now + Duration::days(200);
        assert_eq!(
            check_self_booking(
                &a,
                &rules(),
                Interval::new(far, far + Duration::minutes(50)).unwrap(),
                &[],
                now
            ),
            Err(ScheduleError::Refused(BookingRefusal::TooFarAhead))
        );
    }

    #[test]
    fn empty_reversed_and_huge_ranges() {
        let a = Availability {
            time_zone: "Europe/London".into(),
            weekly: vec![],
            exceptions: vec![],
        };
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut q = SlotQuery {
            availability: &a,
            rules: &rules(),
            appointment_type: session(),
            busy: &[],
            now,
            client_time_zone: "Europe/London",
            from: d(2026, 1, 5),
            to: d(2026, 1, 9),
        };
        assert!(available_slots(&q).unwrap().is_empty());
        q.to = d(2026, 1, 1);
        assert!(available_slots(&q)
            .unwrap_err()
            .to_string()
            .starts_with("to:"));
        q.to = d(2027, 1, 1);
        assert!(available_slots(&q)
            .unwrap_err()
            .to_string()
            .starts_with("to:"));
        q.to = d(2026, 1, 9);
        q.client_time_zone = "Nowhere/Land";
        assert!(matches!(
            available_slots(&q),
            Err(ScheduleError::UnknownTimeZone(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn offered_slots_never_overlap_busy_time_and_are_bookable(
            busy_starts in proptest::collection::vec(0i64..(14 * 24 * 4), 0..12),
            step in proptest::sample::select(vec![15u32, 30, 45, 60]),
            buffer in 0u32..30,
            client in proptest::sample::select(vec!["Europe/London", "America/New_York", "Asia/Kolkata", "Australia/Sydney"]),
        ) {
            let a = weekdays("Europe/Berlin", t(8, 0), t(18, 0));
            let now = Utc.with_ymd_and_hms(2026, 3, 20, 0, 0, 0).unwrap();
            let r = BookingRules { min_notice_minutes: 120, max_ahead_days: 30, buffer_minutes: buffer, slot_step_minutes: step };
            let busy: Vec<Interval> = busy_starts.iter().map(|q| {
                let s = now + Duration::minutes(q * 15);
                Interval::new(s, s + Duration::minutes(50)).unwrap()
            }).collect();
            let q = SlotQuery {
                availability: &a, rules: &r, appointment_type: session(), busy: &busy, now,
                client_time_zone: client, from: d(2026, 3, 20), to: d(2026, 4, 3),
            };
            let slots = available_slots(&q).unwrap();
            for s in &slots {
                let slot = Interval::new(s.starts_at, s.ends_at).unwrap();
                proptest::prop_assert!(busy.iter().all(|b| !b.widened(Duration::minutes(i64::from(buffer))).overlaps(&slot)));
                proptest::prop_assert!(check_self_booking(&a, &r, slot, &busy, now).is_ok());
                proptest::prop_assert!(s.client_local_start.date() >= q.from && s.client_local_start.date() <= q.to);
            }
            proptest::prop_assert!(slots.windows(2).all(|w| w[0].starts_at < w[1].starts_at));
        }
    }
}
