//! Risk: levels, signals and the rules that turn an answer into a clinician's task.
//! A risk signal is never hidden by an improving total.

use serde::{Deserialize, Serialize};

/// The clinician-facing suicide/self-harm risk level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskLevel {
    None,
    Low,
    Moderate,
    High,
    Imminent,
}

impl RiskLevel {
    pub const ALL: [RiskLevel; 5] = [
        RiskLevel::None,
        RiskLevel::Low,
        RiskLevel::Moderate,
        RiskLevel::High,
        RiskLevel::Imminent,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RiskLevel::None => "none",
            RiskLevel::Low => "low",
            RiskLevel::Moderate => "moderate",
            RiskLevel::High => "high",
            RiskLevel::Imminent => "imminent",
        }
    }
}

use crate::instrument::{InstrumentDef, ScoringMethod};
use crate::scoring::{Answer, Answers, DerivedValue, Score};
use chrono::{DateTime, Utc};

/// Alert colour of a risk signal (treatment_selection.md §5.3). §5.3's "amber+" (R2) and
/// "orange" (R4) are amber here with a shorter due time; red is reserved for R5 (high/imminent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskColour {
    Amber,
    Red,
}

impl RiskColour {
    /// Stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            RiskColour::Amber => "amber",
            RiskColour::Red => "red",
        }
    }
}

/// How soon the clinician task is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskDue {
    /// Now: crisis workflow (R5).
    Immediately,
    /// Before the current session ends (R1, R3).
    BeforeSessionEnds,
    /// The same day (R2, R4).
    SameDay,
}

/// What raised a risk signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RiskSource {
    /// A critical item met its trigger (e.g. PHQ-9 item 9 > 0).
    CriticalItem {
        instrument: String,
        item: u16,
        value: i32,
    },
    /// Tapestry's structured risk assessment gave a level.
    StructuredAssessment { instrument: String },
}

impl RiskSource {
    /// The instrument, and for a critical item its number and the answer given.
    pub fn parts(&self) -> (&str, Option<u16>, Option<i32>) {
        match self {
            RiskSource::CriticalItem {
                instrument,
                item,
                value,
            } => (instrument, Some(*item), Some(*value)),
            RiskSource::StructuredAssessment { instrument } => (instrument, None, None),
        }
    }
}

/// A risk signal: raised from the answers alone, never suppressed by an improving total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskSignal {
    pub source: RiskSource,
    /// The assessed level; `None` for a screening answer (a critical item is a prompt to assess,
    /// not a risk level).
    pub level: Option<RiskLevel>,
    pub colour: RiskColour,
    /// Rule id (treatment_selection.md §5.3 or the instrument's own).
    pub rule: String,
    /// False when the trigger is a Tapestry design choice, not a published rule.
    pub published_rule: bool,
    /// What the clinician is asked to do.
    pub action: String,
    pub due: TaskDue,
}

/// The description of the clinician task a signal creates (the store creates the task).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskTaskRequest {
    pub title: String,
    pub detail: String,
    pub colour: RiskColour,
    pub due: TaskDue,
    pub rule: String,
}

/// Colour of an assessed level: low and moderate → amber (R3, R4), high and imminent → red (R5).
/// `None` has no signal.
pub fn colour_for_level(level: RiskLevel) -> Option<RiskColour> {
    match level {
        RiskLevel::None => None,
        RiskLevel::Low | RiskLevel::Moderate => Some(RiskColour::Amber),
        RiskLevel::High | RiskLevel::Imminent => Some(RiskColour::Red),
    }
}

/// Risk signals for a scored response (`answers` are the ones that were scored): one per critical item that met a trigger (the highest
/// trigger met decides the rule), and for the structured risk assessment one signal for its level.
/// Depends only on the answers, never on the total or its trend.
pub fn risk_signals(def: &InstrumentDef, answers: &Answers, score: &Score) -> Vec<RiskSignal> {
    let mut out = Vec::new();
    for hit in &score.critical {
        let rule = def
            .critical
            .iter()
            .filter(|c| c.item == hit.item && hit.value >= c.at_least)
            .max_by_key(|c| c.at_least);
        if let Some(rule) = rule {
            out.push(RiskSignal {
                source: RiskSource::CriticalItem {
                    instrument: def.id.clone(),
                    item: hit.item,
                    value: hit.value,
                },
                level: None,
                colour: rule.colour,
                rule: rule.rule.clone(),
                published_rule: rule.published,
                action: rule.action.clone(),
                due: rule.due,
            });
        }
    }
    if def.scoring.method == ScoringMethod::RiskRules {
        if let Some(DerivedValue::Level(level)) = score.derived.get("risk_level") {
            let escalation_item = def.level_escalation.as_ref().map(|e| e.item);
            // A `low` result raises a signal only if something was disclosed (any answer above 0
            // other than protective factors): passive ideation is R3 (amber).
            let disclosed = def.items.iter().any(|i| {
                Some(i.number) != escalation_item
                    && matches!(
                        answers.values.get(usize::from(i.number).wrapping_sub(1)),
                        Some(Answer::Value(v)) if *v > 0
                    )
            });
            let signal_level = *level > RiskLevel::Low || disclosed;
            if let (true, Some(colour)) = (signal_level, colour_for_level(*level)) {
                let (rule, action, due) = match level {
                    RiskLevel::High | RiskLevel::Imminent => (
                        "R5",
                        "Stop plan generation and start the crisis workflow: keep the client safe, \
                         contact emergency or crisis services per local protocol, warm hand-off.",
                        TaskDue::Immediately,
                    ),
                    RiskLevel::Moderate => (
                        "R4",
                        "Risk formulation, safety plan, means-safety counselling, consultation, \
                         increased contact.",
                        TaskDue::SameDay,
                    ),
                    _ => (
                        "R3",
                        "Collaborative safety plan in session; re-screen next session.",
                        TaskDue::BeforeSessionEnds,
                    ),
                };
                out.push(RiskSignal {
                    source: RiskSource::StructuredAssessment {
                        instrument: def.id.clone(),
                    },
                    level: Some(*level),
                    colour,
                    rule: rule.to_string(),
                    published_rule: false,
                    action: action.to_string(),
                    due,
                });
            }
        }
    }
    out
}

/// The task a signal creates, titled with the instrument's short name ("PHQ-9").
pub fn task_for(def: &InstrumentDef, signal: &RiskSignal) -> RiskTaskRequest {
    let name = &def.short_title;
    let (title, detail) = match &signal.source {
        RiskSource::CriticalItem { item, value, .. } => (
            format!("Risk review: {name} item {item} answered {value}"),
            format!(
                "{} (rule {}{})",
                signal.action,
                signal.rule,
                if signal.published_rule {
                    ""
                } else {
                    "; Tapestry design choice, not a published rule"
                }
            ),
        ),
        RiskSource::StructuredAssessment { .. } => (
            format!(
                "Risk {}: {name} assessed {}",
                if signal.colour == RiskColour::Red {
                    "ACTION NOW"
                } else {
                    "follow-up"
                },
                signal.level.map(RiskLevel::as_str).unwrap_or("unknown")
            ),
            format!("{} (rule {})", signal.action, signal.rule),
        ),
    };
    RiskTaskRequest {
        title,
        detail,
        colour: signal.colour,
        due: signal.due,
        rule: signal.rule.clone(),
    }
}

/// A raised flag: open until a clinician closes it with a note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFlag {
    pub signal: RiskSignal,
    pub raised_at: DateTime<Utc>,
    pub closure: Option<RiskFlagClosure>,
}

/// Who closed a flag, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskFlagClosure {
    /// The clinician's user id.
    pub by: crate::ids::UserId,
    pub at: DateTime<Utc>,
    pub note: String,
}

/// Errors of risk-flag handling.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RiskError {
    #[error("note: a clinician's note is required to close a risk flag")]
    NoteRequired,
    #[error("flag: already closed")]
    AlreadyClosed,
}

impl RiskFlag {
    /// Opens a flag for a signal.
    pub fn raise(signal: RiskSignal, at: DateTime<Utc>) -> RiskFlag {
        RiskFlag {
            signal,
            raised_at: at,
            closure: None,
        }
    }

    /// Whether the flag is still open.
    pub fn is_open(&self) -> bool {
        self.closure.is_none()
    }

    /// Closes the flag; only a clinician can, and only with a non-empty note. Nothing else
    /// (an improving total, a later negative screen) closes it.
    pub fn close(
        &mut self,
        by: crate::ids::UserId,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<(), RiskError> {
        if self.closure.is_some() {
            return Err(RiskError::AlreadyClosed);
        }
        if note.trim().is_empty() {
            return Err(RiskError::NoteRequired);
        }
        self.closure = Some(RiskFlagClosure {
            by,
            at,
            note: note.trim().to_string(),
        });
        Ok(())
    }
}
