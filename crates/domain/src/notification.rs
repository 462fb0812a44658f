//! E-mail notifications without clinical content.
//!
//! Every template is generic: it says *that* something is waiting and asks
//! the person to sign in, never *what* (no instrument names, no diagnosis, no
//! clinician notes, no client names). The only variable parts are a time,
//! a time-zone name and the practice's sign-in address. A test in the app
//! sends every kind through a real SMTP exchange and scans for canaries.

use crate::ids::{PracticeId, UserId};
use crate::schedule::AppointmentId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What is wrong with a notification request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("time_zone: '{0}' is not an IANA time-zone name")]
    TimeZone(String),
    #[error("sign_in_url: must start with https:// or http://, be ASCII without spaces and at most 76 characters")]
    SignInUrl,
}

/// A notification to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notification {
    /// An appointment is coming up; shown in the recipient's zone.
    /// The appointment id is not shown; the worker uses it to skip the
    /// reminder if the appointment was cancelled or moved meanwhile.
    AppointmentReminder {
        appointment: AppointmentId,
        starts_at: DateTime<Utc>,
        time_zone: String,
    },
    /// Questionnaires are waiting to be filled in.
    MeasuresDue,
    /// Between-session tasks are waiting.
    HomeworkDue,
}

impl Notification {
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AppointmentReminder { .. } => "appointment_reminder",
            Self::MeasuresDue => "measures_due",
            Self::HomeworkDue => "homework_due",
        }
    }
}

/// A reminder job's payload: who gets which notification. The address is
/// looked up when the job runs, so a changed address is honoured and the
/// queue holds no contact details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReminderJob {
    pub practice_id: PracticeId,
    pub recipient: UserId,
    pub notification: Notification,
}

/// A rendered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailContent {
    pub subject: String,
    pub body: String,
}

/// Every line of a rendered body is at most this long (so mail can go as
/// 7-bit text, unwrapped, and a scan for words sees them whole).
pub const MAX_BODY_LINE: usize = 76;

/// Renders `n` at `now`. `sign_in_url` is the practice's public address.
pub fn render(
    n: &Notification,
    now: DateTime<Utc>,
    sign_in_url: &str,
) -> Result<EmailContent, NotificationError> {
    if sign_in_url.len() > MAX_BODY_LINE || !sign_in_url.is_ascii() {
        return Err(NotificationError::SignInUrl);
    }
    if !(sign_in_url.starts_with("https://") || sign_in_url.starts_with("http://"))
        || sign_in_url.chars().any(char::is_whitespace)
    {
        return Err(NotificationError::SignInUrl);
    }
    let footer = format!(
        "\n\nSign in to see the details:\n{sign_in_url}\n\nThis message was sent by Tapestry. By design it contains\nno personal details; please do not reply with any.\n"
    );
    Ok(match n {
        Notification::AppointmentReminder {
            starts_at,
            time_zone,
            ..
        } => {
            let tz: chrono_tz::Tz = time_zone
                .parse()
                .map_err(|_| NotificationError::TimeZone(time_zone.chars().take(64).collect()))?;
            let local = starts_at.with_timezone(&tz);
            let today = now.with_timezone(&tz).date_naive();
            let day = local.date_naive();
            let when = if day == today {
                "today".to_string()
            } else if Some(day) == today.succ_opt() {
                "tomorrow".to_string()
            } else {
                local.format("on %A %-d %B").to_string()
            };
            let time = local.format("%H:%M");
            EmailContent {
                subject: "Appointment reminder".into(),
                body: format!("You have an appointment {when} at {time} ({time_zone}).{footer}"),
            }
        }
        Notification::MeasuresDue => EmailContent {
            subject: "Something is waiting for you".into(),
            body: format!("You have a check-in waiting to be completed.{footer}"),
        },
        Notification::HomeworkDue => EmailContent {
            subject: "Something is waiting for you".into(),
            body: format!("You have a task waiting between appointments.{footer}"),
        },
    })
}

/// Words that must never appear in an e-mail or calendar entry (used by
/// tests across crates). Lower case; matched case-insensitively.
pub const CLINICAL_DENY_LIST: &[&str] = &[
    "suicid",
    "self-harm",
    "self harm",
    "depress",
    "anxiety",
    "anxious",
    "ptsd",
    "trauma",
    "bipolar",
    "schizo",
    "psychosis",
    "eating disorder",
    "anorexia",
    "bulimia",
    "ocd",
    "adhd",
    "diagnos",
    "phq",
    "gad-7",
    "gad7",
    "core-10",
    "pcl-5",
    "audit-c",
    "questionnaire",
    "therapy",
    "therapist",
    "psychiatr",
    "psycholog",
    "mental",
    "medication",
    "risk",
    "overdose",
    "abuse",
    "addiction",
    "formulation",
    "treatment",
    "symptom",
    "clinical",
    "counsel",
    "score",
];

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn all(now: DateTime<Utc>) -> Vec<Notification> {
        vec![
            Notification::AppointmentReminder {
                appointment: AppointmentId::random(),
                starts_at: now + chrono::Duration::hours(24),
                time_zone: "Europe/London".into(),
            },
            Notification::MeasuresDue,
            Notification::HomeworkDue,
        ]
    }

    #[test]
    fn reminder_reads_in_the_recipients_zone() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        let n = Notification::AppointmentReminder {
            appointment: AppointmentId::random(),
            starts_at: Utc.with_ymd_and_hms(2026, 6, 2, 9, 0, 0).unwrap(),
            time_zone: "Europe/London".into(),
        };
        let m = render(&n, now, "https://care.example.org").unwrap();
        assert!(
            m.body
                .starts_with("You have an appointment tomorrow at 10:00 (Europe/London)."),
            "{}",
            m.body
        );
        let n = Notification::AppointmentReminder {
            appointment: AppointmentId::random(),
            starts_at: Utc.with_ymd_and_hms(2026, 6, 5, 14, 30, 0).unwrap(),
            time_zone: "America/New_York".into(),
        };
        assert!(render(&n, now, "https://x")
            .unwrap()
            .body
            .contains("on Friday 5 June at 10:30 (America/New_York)"));
        let bad = Notification::AppointmentReminder {
            appointment: AppointmentId::random(),
            starts_at: now,
            time_zone: "Nope/Nope".into(),
        };
        assert!(render(&bad, now, "https://x")
            .unwrap_err()
            .to_string()
            .starts_with("time_zone:"));
        assert_eq!(
            render(&Notification::MeasuresDue, now, "javascript:alert(1)"),
            Err(NotificationError::SignInUrl)
        );
    }

    #[test]
    fn no_template_contains_a_clinical_word() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        for n in all(now) {
            let m = render(&n, now, "https://care.example.org").unwrap();
            let text = format!("{}\n{}", m.subject, m.body).to_lowercase();
            assert!(
                m.body
                    .lines()
                    .all(|l| l.len() <= MAX_BODY_LINE && l.is_ascii()),
                "{}",
                m.body
            );
            for w in CLINICAL_DENY_LIST {
                assert!(!text.contains(w), "{} contains '{w}'", n.kind());
            }
        }
    }

    #[test]
    fn payloads_round_trip_as_json() {
        let now = Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap();
        for n in all(now) {
            let job = ReminderJob {
                practice_id: PracticeId::random(),
                recipient: UserId::random(),
                notification: n,
            };
            let json = serde_json::to_string(&job).unwrap();
            assert_eq!(serde_json::from_str::<ReminderJob>(&json).unwrap(), job);
        }
    }
}
