//! Measure schedules: which questionnaire is due when in an episode.
//!
//! A clinician assigns each instrument to an episode with one rule: before every session,
//! every N days, or at intake and discharge (instruments.md §1.14). The rules here are pure:
//! given what was completed and what is planned, they say whether the measure is due and by when.

use crate::episode::EpisodeStatus;
use crate::ids::{EpisodeId, PracticeId, RecordId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest interval a periodic schedule may have (one year).
pub const MAX_EVERY_DAYS: u32 = 366;

/// How long before a session a "before every session" measure opens: 48 hours, so a weekly
/// client answers close to the session (2-week recall overlaps at weekly sessions, which is
/// accepted practice, instruments.md §1.1). Design choice.
pub const OPENS_BEFORE_SESSION_HOURS: i64 = 48;

/// When an instrument is administered in an episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ScheduleRule {
    /// Before every session (the NHS Talking Therapies session-by-session model).
    BeforeEverySession,
    /// Every `days` days from the last completion (first one at once).
    EveryNDays { days: u32 },
    /// Once at intake and once at discharge.
    IntakeAndDischarge,
}

impl ScheduleRule {
    /// Stored name of the rule.
    pub fn as_str(self) -> &'static str {
        match self {
            ScheduleRule::BeforeEverySession => "before_every_session",
            ScheduleRule::EveryNDays { .. } => "every_n_days",
            ScheduleRule::IntakeAndDischarge => "intake_and_discharge",
        }
    }

    /// The rule from its stored name and interval.
    pub fn parse(name: &str, days: Option<u32>) -> Result<ScheduleRule, ScheduleError> {
        match (name, days) {
            ("before_every_session", _) => Ok(ScheduleRule::BeforeEverySession),
            ("intake_and_discharge", _) => Ok(ScheduleRule::IntakeAndDischarge),
            ("every_n_days", Some(d)) => ScheduleRule::every(d),
            ("every_n_days", None) => Err(ScheduleError::Days(0)),
            (other, _) => Err(ScheduleError::UnknownRule(other.chars().take(40).collect())),
        }
    }

    /// Every `days` days; 1 to [`MAX_EVERY_DAYS`].
    pub fn every(days: u32) -> Result<ScheduleRule, ScheduleError> {
        if days == 0 || days > MAX_EVERY_DAYS {
            return Err(ScheduleError::Days(days));
        }
        Ok(ScheduleRule::EveryNDays { days })
    }

    /// The interval of a periodic rule.
    pub fn days(self) -> Option<u32> {
        match self {
            ScheduleRule::EveryNDays { days } => Some(days),
            _ => None,
        }
    }
}

/// Errors of schedule definitions; each names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("every_days: {0} is not between 1 and 366")]
    Days(u32),
    #[error("rule: `{0}` is not one of before_every_session, every_n_days, intake_and_discharge")]
    UnknownRule(String),
    #[error("instrument: `{0}` is not a known instrument")]
    UnknownInstrument(String),
}

/// One instrument assigned to one episode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureSchedule {
    pub id: RecordId,
    pub practice_id: PracticeId,
    pub episode_id: EpisodeId,
    pub instrument: String,
    pub rule: ScheduleRule,
    pub created_at: DateTime<Utc>,
}

impl MeasureSchedule {
    pub fn new(
        practice_id: PracticeId,
        episode_id: EpisodeId,
        instrument: &str,
        rule: ScheduleRule,
        at: DateTime<Utc>,
    ) -> MeasureSchedule {
        MeasureSchedule {
            id: RecordId::random(),
            practice_id,
            episode_id,
            instrument: instrument.to_string(),
            rule,
            created_at: at,
        }
    }
}

/// What the rules need to know about the episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueContext {
    pub now: DateTime<Utc>,
    pub episode_status: EpisodeStatus,
    /// Completions of this instrument in the episode, oldest first is not needed: the first and
    /// last suffice.
    pub first_completed: Option<DateTime<Utc>>,
    pub last_completed: Option<DateTime<Utc>>,
    /// Start of the next booked session, if any.
    pub next_session: Option<DateTime<Utc>>,
    /// The clinician has marked the episode as ending (a discharge measure is wanted).
    pub discharge_planned: bool,
}

/// Whether a measure is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Due {
    /// Open now; should be completed by `by`.
    Due { by: DateTime<Utc>, reason: String },
    /// Not yet; opens at `opens_at`.
    Upcoming { opens_at: DateTime<Utc> },
    /// Nothing due (already done, or nothing to anchor it to).
    NotDue { reason: String },
}

/// What is due for `rule` in `ctx`. Discharged episodes have nothing due; referral and
/// waitlist episodes only their intake measure.
pub fn due(rule: ScheduleRule, ctx: &DueContext) -> Due {
    let not_due = |r: &str| Due::NotDue {
        reason: r.to_string(),
    };
    if ctx.episode_status == EpisodeStatus::Discharged {
        return not_due("episode discharged");
    }
    let in_treatment = ctx.episode_status == EpisodeStatus::Active;
    if ctx.first_completed.is_none() {
        // Every rule starts with an intake (baseline) measure.
        return Due::Due {
            by: ctx.next_session.unwrap_or(ctx.now),
            reason: "baseline (intake) measure not yet completed".into(),
        };
    }
    match rule {
        ScheduleRule::IntakeAndDischarge => {
            let discharge_done = ctx
                .last_completed
                .zip(ctx.first_completed)
                .is_some_and(|(l, f)| l > f);
            if in_treatment && ctx.discharge_planned && !discharge_done {
                Due::Due {
                    by: ctx.next_session.unwrap_or(ctx.now),
                    reason: "discharge measure".into(),
                }
            } else {
                not_due("intake done; discharge measure due when discharge is planned")
            }
        }
        ScheduleRule::BeforeEverySession => {
            let Some(session) = ctx.next_session.filter(|_| in_treatment) else {
                return not_due("no session booked");
            };
            let opens = session - Duration::hours(OPENS_BEFORE_SESSION_HOURS);
            if ctx.last_completed.is_some_and(|l| l >= opens) {
                not_due("completed for the next session")
            } else if ctx.now >= opens {
                Due::Due {
                    by: session,
                    reason: "before the next session".into(),
                }
            } else {
                Due::Upcoming { opens_at: opens }
            }
        }
        ScheduleRule::EveryNDays { days } => {
            if !in_treatment {
                return not_due("episode not in treatment");
            }
            let last = ctx
                .last_completed
                .or(ctx.first_completed)
                .unwrap_or(ctx.now);
            let by = last + Duration::days(i64::from(days));
            // Opens a day before it is due, or at once for daily measures.
            let opens = by - Duration::days(i64::from(days.min(2) - 1));
            if ctx.now >= opens {
                Due::Due {
                    by,
                    reason: format!("every {days} days"),
                }
            } else {
                Due::Upcoming { opens_at: opens }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(day: u32, hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, day, hour, 0, 0).unwrap()
    }

    fn ctx(now: DateTime<Utc>) -> DueContext {
        DueContext {
            now,
            episode_status: EpisodeStatus::Active,
            first_completed: Some(t(1, 9)),
            last_completed: Some(t(1, 9)),
            next_session: None,
            discharge_planned: false,
        }
    }

    #[test]
    fn every_rule_starts_with_a_baseline() {
        for rule in [
            ScheduleRule::BeforeEverySession,
            ScheduleRule::IntakeAndDischarge,
            ScheduleRule::EveryNDays { days: 14 },
        ] {
            let mut c = ctx(t(2, 9));
            c.first_completed = None;
            c.last_completed = None;
            c.episode_status = EpisodeStatus::Waitlist;
            assert!(matches!(due(rule, &c), Due::Due { .. }), "{rule:?}");
        }
    }

    #[test]
    fn before_every_session_opens_48_hours_before_and_closes_when_done() {
        let mut c = ctx(t(5, 9));
        c.next_session = Some(t(8, 10));
        assert_eq!(
            due(ScheduleRule::BeforeEverySession, &c),
            Due::Upcoming { opens_at: t(6, 10) }
        );
        c.now = t(7, 9);
        assert!(matches!(
            due(ScheduleRule::BeforeEverySession, &c),
            Due::Due { by, .. } if by == t(8, 10)
        ));
        c.last_completed = Some(t(7, 20));
        assert!(matches!(
            due(ScheduleRule::BeforeEverySession, &c),
            Due::NotDue { .. }
        ));
    }

    #[test]
    fn every_n_days_counts_from_the_last_completion() {
        let rule = ScheduleRule::every(14).unwrap();
        let c = ctx(t(10, 9));
        assert_eq!(due(rule, &c), Due::Upcoming { opens_at: t(14, 9) });
        let c = ctx(t(15, 9));
        assert!(matches!(due(rule, &c), Due::Due { by, .. } if by == t(15, 9)));
    }

    #[test]
    fn intake_and_discharge_waits_for_a_planned_discharge() {
        let mut c = ctx(t(20, 9));
        assert!(matches!(
            due(ScheduleRule::IntakeAndDischarge, &c),
            Due::NotDue { .. }
        ));
        c.discharge_planned = true;
        assert!(matches!(
            due(ScheduleRule::IntakeAndDischarge, &c),
            Due::Due { .. }
        ));
        c.last_completed = Some(t(19, 9));
        assert!(matches!(
            due(ScheduleRule::IntakeAndDischarge, &c),
            Due::NotDue { .. }
        ));
    }

    #[test]
    fn discharged_episodes_have_nothing_due_and_bad_intervals_are_refused() {
        let mut c = ctx(t(20, 9));
        c.episode_status = EpisodeStatus::Discharged;
        c.first_completed = None;
        assert!(matches!(
            due(ScheduleRule::BeforeEverySession, &c),
            Due::NotDue { .. }
        ));
        assert_eq!(ScheduleRule::every(0), Err(ScheduleError::Days(0)));
        assert_eq!(
            ScheduleRule::every(10_000),
            Err(ScheduleError::Days(10_000))
        );
        assert!(ScheduleRule::parse("weekly-ish", None)
            .unwrap_err()
            .to_string()
            .starts_with("rule:"));
        assert_eq!(
            ScheduleRule::parse("every_n_days", Some(7)),
            Ok(ScheduleRule::EveryNDays { days: 7 })
        );
    }
}
