//! The waitlist that watches. People waiting for a clinician keep being
//! measured and re-screened for risk; a risk answer or a reliable
//! deterioration alerts the intake team and moves the person up. The queue
//! order is explained for every person in it.
//!
//! Order: an open risk signal first (highest level first), then reliable
//! deterioration since joining, then referrals marked urgent, then the
//! longest wait. Ties keep the earlier joiner first, so the order is
//! deterministic.

use crate::ids::ClientId;
use crate::ingest::{task_due_at, TaskKind};
use crate::instrument::InstrumentRegistry;
use crate::measure_schedule::ScheduleRule;
use crate::risk::{RiskColour, RiskLevel, TaskDue};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::cmp::Reverse;

/// One total on one measure at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub instrument: String,
    pub total: f64,
    pub at: DateTime<Utc>,
}

/// A person on the waitlist, as the store knows them.
#[derive(Debug, Clone, PartialEq)]
pub struct Waiting {
    pub client_id: ClientId,
    pub joined_at: DateTime<Utc>,
    /// Marked urgent at intake.
    pub urgent: bool,
    /// Every reading since joining, any order.
    pub readings: Vec<Reading>,
    /// The highest level among open (not clinician-closed) risk flags.
    pub open_risk: Option<RiskLevel>,
    /// When the last risk re-screen was answered.
    pub last_rescreen_at: Option<DateTime<Utc>>,
}

/// How often waiting clients are measured and re-screened.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitlistPolicy {
    /// Instruments repeated while waiting (e.g. phq9, gad7).
    pub instruments: Vec<String>,
    pub measure_every: Duration,
    /// The client's own risk re-screen (Tapestry's waiting-list safety
    /// check-in, `content/instruments/risk_rescreen.toml`).
    pub rescreen_instrument: String,
    pub rescreen_every: Duration,
}

/// The re-screen the waiting client answers in the portal.
pub const RISK_RESCREEN: &str = "risk_rescreen";

impl Default for WaitlistPolicy {
    fn default() -> Self {
        Self {
            instruments: vec!["phq9".into(), "gad7".into()],
            measure_every: Duration::days(14),
            rescreen_instrument: RISK_RESCREEN.into(),
            rescreen_every: Duration::days(14),
        }
    }
}

impl WaitlistPolicy {
    /// The measure schedule the watch puts on a waiting episode: each
    /// instrument every `measure_every`, the re-screen every `rescreen_every`
    /// (whole days, at least 1). The watch adds only instruments the episode
    /// has no schedule for, so a clinician's schedule is never overwritten.
    pub fn schedule(&self) -> Vec<(String, ScheduleRule)> {
        let rule = |every: Duration| {
            let days = u32::try_from(every.num_days()).unwrap_or(u32::MAX);
            ScheduleRule::every(days.clamp(1, crate::measure_schedule::MAX_EVERY_DAYS))
                .unwrap_or(ScheduleRule::EveryNDays { days: 14 })
        };
        let mut out: Vec<(String, ScheduleRule)> = self
            .instruments
            .iter()
            .map(|i| (i.clone(), rule(self.measure_every)))
            .collect();
        if !out.iter().any(|(i, _)| i == &self.rescreen_instrument) {
            out.push((self.rescreen_instrument.clone(), rule(self.rescreen_every)));
        }
        out
    }
}

/// Something due for a waiting client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Due {
    Measure { instrument: String },
    RiskRescreen,
}

/// Why the intake team is alerted.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Alert {
    /// A risk answer or assessment is open for a waiting client.
    Risk { level: RiskLevel },
    /// A measure has worsened by at least its reliable-change threshold since joining.
    ReliableDeterioration {
        instrument: String,
        from: f64,
        to: f64,
        threshold: f64,
    },
}

/// The alert kind raised for the intake team when a waiting client has an open risk signal.
pub const ALERT_WAITLIST_RISK: &str = "waitlist_risk";
/// The alert kind raised when a waiting client reliably deteriorates.
pub const ALERT_WAITLIST_DETERIORATION: &str = "waitlist_deterioration";

/// The intake team's task for an alert: one per waiting episode and kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntakeTask {
    pub kind: TaskKind,
    pub title: String,
    pub detail: String,
    pub colour: RiskColour,
    pub due_at: DateTime<Utc>,
}

impl Alert {
    /// The kind of alert the intake team gets for this (one per kind and client).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Risk { .. } => ALERT_WAITLIST_RISK,
            Self::ReliableDeterioration { .. } => ALERT_WAITLIST_DETERIORATION,
        }
    }

    /// The task kind the intake team gets for this alert.
    pub fn task_kind(&self) -> TaskKind {
        match self {
            Self::Risk { .. } => TaskKind::WaitlistRisk,
            Self::ReliableDeterioration { .. } => TaskKind::WaitlistDeterioration,
        }
    }

    /// The intake team's task, raised at `now`. Design choices (not
    /// published rules): a risk signal is due immediately (red); a reliable
    /// deterioration the same working day (amber: 8 hours, as the risk
    /// pipeline's same-day tasks). The text stays on the waitlist page and
    /// task list; it is never e-mailed.
    pub fn intake_task(&self, now: DateTime<Utc>) -> IntakeTask {
        let (colour, due) = match self {
            Self::Risk { .. } => (RiskColour::Red, TaskDue::Immediately),
            Self::ReliableDeterioration { .. } => (RiskColour::Amber, TaskDue::SameDay),
        };
        let (title, detail) = match self {
            Self::Risk { level } => (
                format!("Waiting client: open risk signal ({})", level.as_str()),
                "Contact the client now and arrange a clinician's structured risk assessment; \
                 consider offering the next free clinician who accepts risk."
                    .to_string(),
            ),
            Self::ReliableDeterioration {
                instrument,
                from,
                to,
                threshold,
            } => (
                format!("Waiting client: {instrument} reliably worse ({from} → {to})"),
                format!(
                    "Worse by at least the reliable-change threshold ({threshold}) since joining \
                     the waitlist: contact the client today and review their place."
                ),
            ),
        };
        IntakeTask {
            kind: self.task_kind(),
            title,
            detail,
            colour,
            due_at: task_due_at(now, colour, due),
        }
    }
}

/// Why a client holds their place in the queue (the first rule that applies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderReason {
    Risk,
    Deterioration,
    Urgent,
    LongestWait,
}

impl OrderReason {
    /// Plain words for the waitlist page.
    pub fn label(self) -> &'static str {
        match self {
            Self::Risk => "open risk signal",
            Self::Deterioration => "deteriorating while waiting",
            Self::Urgent => "urgent referral",
            Self::LongestWait => "longest wait",
        }
    }
}

/// One place in the queue, with its reasons.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueEntry {
    pub position: usize,
    pub client_id: ClientId,
    pub waiting_days: i64,
    /// The rule that places the client (risk, deterioration, urgent, wait).
    pub order: OrderReason,
    pub reasons: Vec<String>,
    pub alerts: Vec<Alert>,
    pub due: Vec<Due>,
}

/// Reliable deteriorations of `w` since joining, by the instruments' own thresholds.
pub fn deteriorations(w: &Waiting, registry: &InstrumentRegistry) -> Vec<Alert> {
    let mut out = Vec::new();
    let mut instruments: Vec<&str> = w.readings.iter().map(|r| r.instrument.as_str()).collect();
    instruments.sort_unstable();
    instruments.dedup();
    for id in instruments {
        let Some(def) = registry.get(id) else {
            continue;
        };
        let Some(threshold) = def.reliable_change_threshold() else {
            continue;
        };
        let mut series: Vec<&Reading> = w.readings.iter().filter(|r| r.instrument == id).collect();
        series.sort_by_key(|r| r.at);
        let (Some(first), Some(last)) = (series.first(), series.last()) else {
            continue;
        };
        let worse_by = if def.higher_is_better {
            first.total - last.total
        } else {
            last.total - first.total
        };
        if series.len() >= 2 && worse_by >= threshold {
            out.push(Alert::ReliableDeterioration {
                instrument: id.to_string(),
                from: first.total,
                to: last.total,
                threshold,
            });
        }
    }
    out
}

/// What is due now for `w` under `policy`.
pub fn due(w: &Waiting, policy: &WaitlistPolicy, now: DateTime<Utc>) -> Vec<Due> {
    let mut out = Vec::new();
    for instrument in &policy.instruments {
        let last = w
            .readings
            .iter()
            .filter(|r| &r.instrument == instrument)
            .map(|r| r.at)
            .max();
        if last.is_none_or(|at| now - at >= policy.measure_every) {
            out.push(Due::Measure {
                instrument: instrument.clone(),
            });
        }
    }
    let last_screen = w.last_rescreen_at.unwrap_or(w.joined_at);
    if w.last_rescreen_at.is_none() || now - last_screen >= policy.rescreen_every {
        out.push(Due::RiskRescreen);
    }
    out
}

/// When `item` fell due for `w`: one interval after its last reading (or the last
/// re-screen), or on joining when there has been none.
pub fn due_since(w: &Waiting, policy: &WaitlistPolicy, item: &Due) -> DateTime<Utc> {
    match item {
        Due::Measure { instrument } => w
            .readings
            .iter()
            .filter(|r| &r.instrument == instrument)
            .map(|r| r.at)
            .max()
            .map_or(w.joined_at, |at| at + policy.measure_every),
        Due::RiskRescreen => w
            .last_rescreen_at
            .map_or(w.joined_at, |at| at + policy.rescreen_every),
    }
}

/// The key of the one measures-due reminder for what is due now for `w`
/// (`None`: nothing is due). The key names the client and the latest time
/// something fell due, so the watch asks once for each newly due measure or
/// re-screen, however often it runs, and asks again only when something new
/// falls due. The reminder itself carries no clinical content.
pub fn measures_reminder_key(
    w: &Waiting,
    policy: &WaitlistPolicy,
    now: DateTime<Utc>,
) -> Option<String> {
    let latest = due(w, policy, now)
        .iter()
        .map(|d| due_since(w, policy, d))
        .max()?;
    Some(format!(
        "waitlist-measures-due:{}:{}",
        w.client_id,
        latest.timestamp()
    ))
}

/// What the queue is sorted by: open risk, deterioration, urgency, joining time.
type SortKey = (Option<RiskLevel>, bool, bool, DateTime<Utc>);

/// The ordered, explained queue.
pub fn review(
    waiting: &[Waiting],
    registry: &InstrumentRegistry,
    policy: &WaitlistPolicy,
    now: DateTime<Utc>,
) -> Vec<QueueEntry> {
    let mut entries: Vec<(SortKey, QueueEntry)> = waiting
        .iter()
        .map(|w| {
            let mut alerts = Vec::new();
            let mut reasons = Vec::new();
            let risk = w.open_risk.filter(|l| *l > RiskLevel::None);
            if let Some(level) = risk {
                alerts.push(Alert::Risk { level });
                reasons.push(format!(
                    "open risk signal ({}) — a clinician must review before anything else",
                    level.as_str()
                ));
            }
            let worse = deteriorations(w, registry);
            for a in &worse {
                if let Alert::ReliableDeterioration {
                    instrument,
                    from,
                    to,
                    ..
                } = a
                {
                    reasons.push(format!(
                        "{instrument} reliably worse while waiting ({from} → {to})"
                    ));
                }
            }
            let deteriorated = !worse.is_empty();
            alerts.extend(worse);
            if w.urgent {
                reasons.push("referral marked urgent".to_string());
            }
            let waiting_days = (now - w.joined_at).num_days().max(0);
            reasons.push(format!("waiting {waiting_days} days"));
            let order = if risk.is_some() {
                OrderReason::Risk
            } else if deteriorated {
                OrderReason::Deterioration
            } else if w.urgent {
                OrderReason::Urgent
            } else {
                OrderReason::LongestWait
            };
            let entry = QueueEntry {
                position: 0,
                client_id: w.client_id,
                waiting_days,
                order,
                reasons,
                alerts,
                due: due(w, policy, now),
            };
            ((risk, deteriorated, w.urgent, w.joined_at), entry)
        })
        .collect();
    entries.sort_by_key(|((risk, worse, urgent, joined), e)| {
        (
            Reverse(*risk),
            Reverse(*worse),
            Reverse(*urgent),
            *joined,
            e.client_id,
        )
    });
    entries
        .into_iter()
        .enumerate()
        .map(|(i, (_, mut e))| {
            e.position = i + 1;
            e
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0).unwrap()
    }

    fn waiting(days: i64) -> Waiting {
        Waiting {
            client_id: ClientId::random(),
            joined_at: now() - Duration::days(days),
            urgent: false,
            readings: Vec::new(),
            open_risk: None,
            last_rescreen_at: None,
        }
    }

    fn reading(instrument: &str, total: f64, days_ago: i64) -> Reading {
        Reading {
            instrument: instrument.into(),
            total,
            at: now() - Duration::days(days_ago),
        }
    }

    #[test]
    fn risk_then_deterioration_then_urgency_then_longest_wait() {
        let reg = InstrumentRegistry::embedded().unwrap();
        let long_wait = waiting(60);
        let mut urgent = waiting(3);
        urgent.urgent = true;
        let mut worse = waiting(20);
        worse.readings = vec![reading("phq9", 12.0, 20), reading("phq9", 19.0, 1)];
        let mut risky = waiting(1);
        risky.open_risk = Some(RiskLevel::Moderate);
        let mut riskier = waiting(2);
        riskier.open_risk = Some(RiskLevel::High);
        let queue = review(
            &[
                long_wait.clone(),
                urgent.clone(),
                worse.clone(),
                risky.clone(),
                riskier.clone(),
            ],
            &reg,
            &WaitlistPolicy::default(),
            now(),
        );
        let order: Vec<ClientId> = queue.iter().map(|e| e.client_id).collect();
        assert_eq!(
            order,
            vec![
                riskier.client_id,
                risky.client_id,
                worse.client_id,
                urgent.client_id,
                long_wait.client_id
            ]
        );
        assert_eq!(
            queue.iter().map(|e| e.position).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        assert!(queue[0].reasons[0].contains("open risk signal (high)"));
        assert!(queue[2]
            .reasons
            .iter()
            .any(|r| r.contains("phq9 reliably worse")));
        assert!(
            matches!(queue[2].alerts[0], Alert::ReliableDeterioration { ref instrument, .. } if instrument == "phq9")
        );
    }

    #[test]
    fn change_below_the_threshold_is_not_deterioration() {
        let reg = InstrumentRegistry::embedded().unwrap();
        let mut w = waiting(30);
        // PHQ-9 reliable change is 6 points: +5 is not reliable, +6 is.
        w.readings = vec![reading("phq9", 10.0, 30), reading("phq9", 15.0, 2)];
        assert!(deteriorations(&w, &reg).is_empty());
        w.readings.push(reading("phq9", 16.0, 1));
        assert_eq!(deteriorations(&w, &reg).len(), 1);
        // Improvement is never an alert; unknown instruments are ignored, not fatal.
        w.readings = vec![
            reading("phq9", 20.0, 30),
            reading("phq9", 5.0, 1),
            reading("nosuch", 1.0, 3),
            reading("nosuch", 99.0, 1),
        ];
        assert!(deteriorations(&w, &reg).is_empty());
    }

    #[test]
    fn measures_and_rescreens_fall_due_on_schedule() {
        let policy = WaitlistPolicy::default();
        let mut w = waiting(30);
        assert_eq!(
            due(&w, &policy, now()).len(),
            3,
            "nothing yet: both measures and a re-screen are due"
        );
        w.readings = vec![reading("phq9", 10.0, 3), reading("gad7", 8.0, 20)];
        w.last_rescreen_at = Some(now() - Duration::days(3));
        assert_eq!(
            due(&w, &policy, now()),
            vec![Due::Measure {
                instrument: "gad7".into()
            }]
        );
        w.last_rescreen_at = Some(now() - Duration::days(14));
        assert!(due(&w, &policy, now()).contains(&Due::RiskRescreen));
    }

    #[test]
    fn an_empty_waitlist_is_an_empty_queue_and_order_is_deterministic() {
        let reg = InstrumentRegistry::embedded().unwrap();
        assert!(review(&[], &reg, &WaitlistPolicy::default(), now()).is_empty());
        let mut a = waiting(5);
        let mut b = waiting(5);
        b.joined_at = a.joined_at;
        if b.client_id < a.client_id {
            std::mem::swap(&mut a, &mut b);
        }
        let q1 = review(
            &[a.clone(), b.clone()],
            &reg,
            &WaitlistPolicy::default(),
            now(),
        );
        let q2 = review(&[b, a], &reg, &WaitlistPolicy::default(), now());
        assert_eq!(q1, q2);
    }

    #[test]
    fn the_reminder_key_changes_only_when_something_new_falls_due() {
        let policy = WaitlistPolicy::default();
        let mut w = waiting(30);
        w.readings = vec![reading("phq9", 10.0, 3), reading("gad7", 8.0, 3)];
        w.last_rescreen_at = Some(now() - Duration::days(3));
        assert_eq!(measures_reminder_key(&w, &policy, now()), None);
        // GAD-7 last answered 20 days ago: due since day -6.
        w.readings[1].at = now() - Duration::days(20);
        let first = measures_reminder_key(&w, &policy, now()).unwrap();
        assert!(first.starts_with(&format!("waitlist-measures-due:{}:", w.client_id)));
        // Running again later without anything new keeps the key (one reminder).
        assert_eq!(
            measures_reminder_key(&w, &policy, now() + Duration::hours(5)),
            Some(first.clone())
        );
        // The re-screen falls due too: a new key, so one new reminder.
        let later = now() + Duration::days(12);
        let second = measures_reminder_key(&w, &policy, later).unwrap();
        assert_ne!(first, second);
        // A client who never answered anything is due since joining.
        let fresh = waiting(1);
        assert_eq!(
            measures_reminder_key(&fresh, &policy, now()),
            Some(format!(
                "waitlist-measures-due:{}:{}",
                fresh.client_id,
                fresh.joined_at.timestamp()
            ))
        );
    }

    #[test]
    fn alert_kinds_are_one_per_reason() {
        assert_eq!(
            Alert::Risk {
                level: RiskLevel::High
            }
            .kind(),
            ALERT_WAITLIST_RISK
        );
        let d = Alert::ReliableDeterioration {
            instrument: "phq9".into(),
            from: 10.0,
            to: 18.0,
            threshold: 6.0,
        };
        assert_eq!(d.kind(), ALERT_WAITLIST_DETERIORATION);
    }

    #[test]
    fn the_watch_schedules_each_measure_and_the_rescreen_once() {
        let policy = WaitlistPolicy::default();
        let plan = policy.schedule();
        assert_eq!(
            plan,
            vec![
                ("phq9".to_string(), ScheduleRule::EveryNDays { days: 14 }),
                ("gad7".to_string(), ScheduleRule::EveryNDays { days: 14 }),
                (
                    RISK_RESCREEN.to_string(),
                    ScheduleRule::EveryNDays { days: 14 }
                ),
            ]
        );
        // Intervals outside 1..=366 days are clamped, never an invalid rule;
        // a re-screen also listed as a measure is scheduled once.
        let odd = WaitlistPolicy {
            instruments: vec![RISK_RESCREEN.into()],
            measure_every: Duration::hours(3),
            rescreen_instrument: RISK_RESCREEN.into(),
            rescreen_every: Duration::days(5000),
        };
        assert_eq!(
            odd.schedule(),
            vec![(
                RISK_RESCREEN.to_string(),
                ScheduleRule::EveryNDays { days: 1 }
            )]
        );
        // Empty policy: only the re-screen.
        let empty = WaitlistPolicy {
            instruments: Vec::new(),
            ..WaitlistPolicy::default()
        };
        assert_eq!(empty.schedule().len(), 1);
    }

    #[test]
    fn intake_tasks_are_due_now_for_risk_and_the_same_day_for_deterioration() {
        let risk = Alert::Risk {
            level: RiskLevel::Moderate,
        }
        .intake_task(now());
        assert_eq!(risk.kind, TaskKind::WaitlistRisk);
        assert_eq!(risk.colour, RiskColour::Red);
        assert_eq!(risk.due_at, now());
        assert!(risk.title.contains("moderate"), "{}", risk.title);
        let worse = Alert::ReliableDeterioration {
            instrument: "phq9".into(),
            from: 10.0,
            to: 18.0,
            threshold: 6.0,
        }
        .intake_task(now());
        assert_eq!(worse.kind, TaskKind::WaitlistDeterioration);
        assert_eq!(worse.colour, RiskColour::Amber);
        assert_eq!(worse.due_at, now() + Duration::hours(8));
        assert!(worse.title.contains("phq9") && worse.title.contains("10 → 18"));
    }

    #[test]
    fn each_entry_names_the_rule_that_places_it() {
        let registry = InstrumentRegistry::embedded().unwrap();
        let policy = WaitlistPolicy::default();
        let long = waiting(60);
        let mut urgent = waiting(2);
        urgent.urgent = true;
        let mut worse = waiting(10);
        worse.readings = vec![reading("phq9", 10.0, 10), reading("phq9", 18.0, 1)];
        let mut risk = waiting(1);
        risk.open_risk = Some(RiskLevel::Moderate);
        let q = review(&[long, urgent, worse, risk], &registry, &policy, now());
        let order: Vec<OrderReason> = q.iter().map(|e| e.order).collect();
        assert_eq!(
            order,
            vec![
                OrderReason::Risk,
                OrderReason::Deterioration,
                OrderReason::Urgent,
                OrderReason::LongestWait
            ]
        );
        assert_eq!(OrderReason::LongestWait.label(), "longest wait");
    }
}
