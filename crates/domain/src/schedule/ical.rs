//! iCalendar (RFC 5545), written by hand: CRLF line ends, lines folded at 75
//! octets (never inside a UTF-8 character), TEXT values escaped.
//!
//! Two documents: a clinician's feed (subscribed to at a secret, revocable
//! URL) and one appointment's `.ics` for the client. Neither receives the
//! client's name or any clinical text: they are built from the appointment's
//! id, times, status and type only, and the summary is the neutral
//! [`AppointmentType::summary`], e.g. `Session · 50 min · video`.

use super::group::GroupSession;
use super::{Appointment, AppointmentId, AppointmentStatus, AppointmentType};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The longest line in octets, excluding CRLF (RFC 5545 §3.1).
pub const MAX_LINE_OCTETS: usize = 75;

const PRODID: &str = "-//Tapestry//Online sessions//EN";

/// Escapes a TEXT value: backslash, semicolon, comma and newlines.
pub fn escape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Undoes [`escape_text`].
pub fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') | Some('N') => out.push('\n'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Folds one content line into physical lines of at most 75 octets, each
/// continuation starting with a space, joined by CRLF, with a final CRLF.
pub fn fold_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len() + line.len() / 70 * 3 + 2);
    let mut used = 0usize;
    for c in line.chars() {
        let n = c.len_utf8();
        if used + n > MAX_LINE_OCTETS {
            out.push_str("\r\n ");
            used = 1;
        }
        out.push(c);
        used += n;
    }
    out.push_str("\r\n");
    out
}

/// One logical content line after unfolding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentLine {
    /// Name with any parameters, e.g. `DTSTART` or `X-FOO;A=B`.
    pub name: String,
    /// The raw (still escaped) value.
    pub value: String,
}

/// What is wrong with an iCalendar text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcalError {
    #[error("line {0}: does not end with CRLF")]
    BareLineFeed(usize),
    #[error("line {line}: {octets} octets is longer than 75")]
    TooLong { line: usize, octets: usize },
    #[error("line {0}: no ':' between name and value")]
    NoColon(usize),
    #[error("line 1: a continuation cannot come first")]
    LeadingContinuation,
}

/// Unfolds and splits an iCalendar text, checking CRLF and line lengths.
pub fn parse_content_lines(text: &str) -> Result<Vec<ContentLine>, IcalError> {
    let mut logical: Vec<String> = Vec::new();
    let body = text.strip_suffix("\r\n").unwrap_or(text);
    for (i, physical) in body.split("\r\n").enumerate() {
        if physical.contains('\n') || physical.contains('\r') {
            return Err(IcalError::BareLineFeed(i + 1));
        }
        if physical.len() > MAX_LINE_OCTETS {
            return Err(IcalError::TooLong {
                line: i + 1,
                octets: physical.len(),
            });
        }
        if let Some(rest) = physical
            .strip_prefix(' ')
            .or_else(|| physical.strip_prefix('\t'))
        {
            match logical.last_mut() {
                Some(last) => last.push_str(rest),
                None => return Err(IcalError::LeadingContinuation),
            }
        } else {
            logical.push(physical.to_string());
        }
    }
    logical
        .into_iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            let (name, value) = l.split_once(':').ok_or(IcalError::NoColon(i + 1))?;
            Ok(ContentLine {
                name: name.to_string(),
                value: value.to_string(),
            })
        })
        .collect()
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

fn push(out: &mut String, name: &str, value: &str) {
    out.push_str(&fold_line(&format!("{name}:{value}")));
}

/// What a calendar event is built from: an appointment's or a group
/// session's id, times, status and type, and nothing else (no names, no
/// notes, no group name).
struct Entry {
    id: AppointmentId,
    starts_at: DateTime<Utc>,
    ends_at: DateTime<Utc>,
    appointment_type: AppointmentType,
    status: AppointmentStatus,
}

impl From<&Appointment> for Entry {
    fn from(a: &Appointment) -> Self {
        Self {
            id: a.id,
            starts_at: a.starts_at,
            ends_at: a.ends_at,
            appointment_type: a.appointment_type,
            status: a.status,
        }
    }
}

impl From<&GroupSession> for Entry {
    fn from(g: &GroupSession) -> Self {
        Self {
            id: g.id,
            starts_at: g.starts_at,
            ends_at: g.ends_at,
            appointment_type: g.appointment_type,
            status: g.status,
        }
    }
}

/// The event for one entry: the function never sees a name or a note.
fn event(out: &mut String, a: &Entry, now: DateTime<Utc>, description: Option<&str>) {
    push(out, "BEGIN", "VEVENT");
    push(out, "UID", &format!("{}@tapestry", a.id));
    push(out, "DTSTAMP", &stamp(now));
    push(out, "DTSTART", &stamp(a.starts_at));
    push(out, "DTEND", &stamp(a.ends_at));
    push(out, "SUMMARY", &escape_text(&a.appointment_type.summary()));
    if let Some(d) = description {
        push(out, "DESCRIPTION", &escape_text(d));
    }
    let status = match a.status {
        AppointmentStatus::Cancelled => "CANCELLED",
        _ => "CONFIRMED",
    };
    push(out, "STATUS", status);
    push(out, "TRANSP", "OPAQUE");
    push(out, "CLASS", "PRIVATE");
    push(out, "END", "VEVENT");
}

fn calendar(name: &str, zone: Option<Tz>, events: impl FnOnce(&mut String)) -> String {
    let mut out = String::new();
    push(&mut out, "BEGIN", "VCALENDAR");
    push(&mut out, "VERSION", "2.0");
    push(&mut out, "PRODID", PRODID);
    push(&mut out, "CALSCALE", "GREGORIAN");
    push(&mut out, "METHOD", "PUBLISH");
    push(&mut out, "X-WR-CALNAME", &escape_text(name));
    if let Some(tz) = zone {
        // The zone calendar programs show the (UTC) times in by default.
        push(&mut out, "X-WR-TIMEZONE", tz.name());
    }
    events(&mut out);
    push(&mut out, "END", "VCALENDAR");
    out
}

/// A clinician's feed: every given appointment and group session they
/// facilitate, by start (cancelled ones appear as `STATUS:CANCELLED` so
/// subscribed calendars remove them), neutral summary ("Group session ·
/// 90 min · video"), no description, no client, no group name.
pub fn clinician_feed(
    appointments: &[Appointment],
    group_sessions: &[GroupSession],
    now: DateTime<Utc>,
) -> String {
    let mut entries: Vec<Entry> = appointments.iter().map(Entry::from).collect();
    entries.extend(group_sessions.iter().map(Entry::from));
    entries.sort_by_key(|e| (e.starts_at, e.id));
    calendar("Tapestry sessions", None, |out| {
        for e in &entries {
            event(out, e, now, None);
        }
    })
}

/// The `.ics` a client downloads for one appointment. `note` is the
/// practice's neutral joining instruction (e.g. "Sign in to Tapestry to
/// join."); it must not carry clinical content. Times stay in UTC (exact
/// across daylight-saving changes); the description states the start in
/// the client's zone `zone` and the calendar names it as its zone.
pub fn appointment_ics(
    appointment: &Appointment,
    now: DateTime<Utc>,
    note: &str,
    zone: Tz,
) -> String {
    let local = appointment.starts_at.with_timezone(&zone);
    let description = format!(
        "Starts {} ({}). {note}",
        local.format("%a %-d %b %Y, %H:%M %Z"),
        zone.name()
    );
    calendar("Tapestry appointment", Some(zone), |out| {
        event(out, &Entry::from(appointment), now, Some(&description))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ClientId, PracticeId, UserId};
    use crate::schedule::{AppointmentKind, AppointmentType, Format};
    use chrono::{Duration, TimeZone};

    fn appts() -> Vec<Appointment> {
        let now = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let kinds = [
            (AppointmentKind::Intake, 60, Format::Video),
            (AppointmentKind::Session, 50, Format::Phone),
            (AppointmentKind::Review, 30, Format::Chat),
            (AppointmentKind::Group, 90, Format::InPerson),
        ];
        kinds
            .iter()
            .enumerate()
            .map(|(i, (k, m, f))| {
                let t = AppointmentType::new(*k, *m, *f).unwrap();
                let mut a = Appointment::book(
                    PracticeId::random(),
                    UserId::random(),
                    ClientId::random(),
                    t,
                    now + Duration::days(i as i64 + 1),
                    now,
                )
                .unwrap();
                if i == 3 {
                    a.status = AppointmentStatus::Cancelled;
                }
                a
            })
            .collect()
    }

    #[test]
    fn feed_parses_and_carries_only_neutral_summaries() {
        let now = Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap();
        let a = appts();
        let text = clinician_feed(&a, &[], now);
        assert!(text.ends_with("\r\n"));
        let lines = parse_content_lines(&text).unwrap();
        let summaries: Vec<String> = lines
            .iter()
            .filter(|l| l.name == "SUMMARY")
            .map(|l| unescape_text(&l.value))
            .collect();
        assert_eq!(
            summaries,
            vec![
                "Intake · 60 min · video",
                "Session · 50 min · phone",
                "Review · 30 min · chat",
                "Group session · 90 min · in person"
            ]
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.name == "BEGIN" && l.value == "VEVENT")
                .count(),
            4
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.name == "STATUS" && l.value == "CANCELLED")
                .count(),
            1
        );
        assert!(!lines
            .iter()
            .any(|l| l.name == "DESCRIPTION" || l.name == "ATTENDEE" || l.name == "LOCATION"));
        let dtstart = lines.iter().find(|l| l.name == "DTSTART").unwrap();
        assert_eq!(dtstart.value, "20260202T000000Z");
        // No client identifier of any kind reaches the feed.
        for appt in &a {
            assert!(!text.contains(&appt.client_id.to_string()));
        }
        // Empty feed is still a valid calendar.
        assert_eq!(
            parse_content_lines(&clinician_feed(&[], &[], now))
                .unwrap()
                .len(),
            7
        );
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_characters() {
        let value = "é".repeat(100) + &"x;,\\".repeat(30) + "\nline two";
        let line = format!("DESCRIPTION:{}", escape_text(&value));
        let folded = fold_line(&line);
        for physical in folded.split("\r\n") {
            assert!(
                physical.len() <= MAX_LINE_OCTETS,
                "{} octets",
                physical.len()
            );
        }
        let parsed = parse_content_lines(&folded).unwrap();
        assert_eq!(parsed.len(), 1);
        assert_eq!(unescape_text(&parsed[0].value), value.replace('\r', ""));
        let ics = appointment_ics(
            &appts()[0],
            Utc.with_ymd_and_hms(2026, 2, 1, 0, 0, 0).unwrap(),
            &value,
            chrono_tz::UTC,
        );
        let d = parse_content_lines(&ics)
            .unwrap()
            .into_iter()
            .find(|l| l.name == "DESCRIPTION")
            .unwrap();
        assert!(unescape_text(&d.value).ends_with(&value));
    }

    #[test]
    fn the_clients_ics_states_the_start_in_their_zone_across_dst() {
        // 2026-03-10 14:00 UTC: New York has sprung forward (EDT, -4) but
        // London has not (GMT): the same instant is 10:00 and 14:00.
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let t = AppointmentType::new(AppointmentKind::Session, 50, Format::Video).unwrap();
        let a = Appointment::book(
            PracticeId::random(),
            UserId::random(),
            ClientId::random(),
            t,
            Utc.with_ymd_and_hms(2026, 3, 10, 14, 0, 0).unwrap(),
            now,
        )
        .unwrap();
        let ny = appointment_ics(&a, now, "Sign in to join.", chrono_tz::America::New_York);
        let lines = parse_content_lines(&ny).unwrap();
        let value = |n: &str| {
            lines
                .iter()
                .find(|l| l.name == n)
                .map(|l| unescape_text(&l.value))
                .unwrap()
        };
        // The instant itself stays exact (UTC).
        assert_eq!(value("DTSTART"), "20260310T140000Z");
        assert_eq!(value("X-WR-TIMEZONE"), "America/New_York");
        assert_eq!(
            value("DESCRIPTION"),
            "Starts Tue 10 Mar 2026, 10:00 EDT (America/New_York). Sign in to join."
        );
        let london = appointment_ics(&a, now, "", chrono_tz::Europe::London);
        assert!(london.contains("14:00 GMT (Europe/London)"));
    }

    #[test]
    fn malformed_text_is_refused_with_the_line_number() {
        assert_eq!(
            parse_content_lines("BEGIN:VCALENDAR\nEND:VCALENDAR\r\n"),
            Err(IcalError::BareLineFeed(1))
        );
        assert_eq!(
            parse_content_lines(" x\r\n"),
            Err(IcalError::LeadingContinuation)
        );
        assert_eq!(parse_content_lines("BEGIN\r\n"), Err(IcalError::NoColon(1)));
        let long = format!("X:{}\r\n", "a".repeat(80));
        assert!(matches!(
            parse_content_lines(&long),
            Err(IcalError::TooLong { line: 1, .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn fold_then_parse_round_trips_any_text(s in "\\PC{0,300}") {
            let line = format!("DESCRIPTION:{}", escape_text(&s));
            let parsed = parse_content_lines(&fold_line(&line)).unwrap();
            let expected: String = s.chars().filter(|c| !c.is_control() || *c == '\n').collect();
            proptest::prop_assert_eq!(unescape_text(&parsed[0].value), expected);
        }
    }
}
