//! Re-match suggestion: when a client's early session feedback with their current
//! clinician is repeatedly low, suggest offering a free switch.
//!
//! The rule is data (`content/matching/rematch.toml`, `verified = false`): among the
//! feedback forms of the first `early_sessions` sessions with the current clinician,
//! `low_occasions` or more totals below `low_below` produce a suggestion with its
//! reason. Later feedback never triggers one: the rule is about an early poor fit,
//! not about a hard patch in established therapy (which the clinician handles with
//! the ordinary "talk it through" band). A suggestion never switches anyone; the
//! client decides, and switching is free.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Where the embedded rule lives under `content/`.
pub const RULE_PATH: &str = "matching/rematch.toml";

/// The thresholds of the rule, with their provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RematchRule {
    /// Only feedback from the first this-many sessions with the clinician counts.
    pub early_sessions: u32,
    /// A feedback total below this is low.
    pub low_below: u32,
    /// This many low totals among the early sessions suggest a re-match.
    pub low_occasions: u32,
    pub provenance: Provenance,
}

/// Where a number comes from and whether it has been checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    pub source: String,
    pub verified: bool,
}

/// A rule file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RematchRuleError {
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {field}: {problem}")]
    Invalid {
        path: String,
        field: &'static str,
        problem: &'static str,
    },
    #[error("{0}: no re-match rule file")]
    Missing(&'static str),
}

impl RematchRule {
    /// Reads and checks a rule file (`path` names it in errors).
    pub fn from_toml(path: &str, text: &str) -> Result<Self, RematchRuleError> {
        let rule: RematchRule = toml::from_str(text).map_err(|e| RematchRuleError::Parse {
            path: path.to_string(),
            message: e.to_string(),
        })?;
        let invalid = |field, problem| RematchRuleError::Invalid {
            path: path.to_string(),
            field,
            problem,
        };
        if rule.early_sessions == 0 {
            return Err(invalid("early_sessions", "must be at least 1"));
        }
        if rule.low_occasions == 0 {
            return Err(invalid("low_occasions", "must be at least 1"));
        }
        if rule.low_occasions > rule.early_sessions {
            return Err(invalid(
                "low_occasions",
                "must not be more than early_sessions",
            ));
        }
        if rule.low_below == 0 {
            return Err(invalid("low_below", "must be at least 1 (0 is never low)"));
        }
        Ok(rule)
    }

    /// The rule shipped in `content/` (a site may supply its own file instead).
    pub fn embedded() -> Result<Self, RematchRuleError> {
        let file = crate::content::embedded_under(RULE_PATH)
            .into_iter()
            .next()
            .ok_or(RematchRuleError::Missing(RULE_PATH))?;
        Self::from_toml(&file.path, &file.text)
    }
}

/// One completed session-feedback form with the current clinician.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feedback {
    pub submitted_at: DateTime<Utc>,
    /// The form's total (`None` when items were missing and no total was scored).
    pub total: Option<u32>,
}

/// A suggestion to offer the client a free switch, with its reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RematchSuggestion {
    /// Low totals among the early sessions, in session order.
    pub low_totals: Vec<u32>,
    /// How many early feedback forms were considered.
    pub considered: u32,
    /// Plain-language reason, e.g. "2 of the first 3 session-feedback forms scored
    /// below 12 of 16 (7, 9)".
    pub reason: String,
    /// Whether the thresholds behind it are verified (they are not, yet).
    pub verified: bool,
}

/// Applies the rule to the feedback since the current match began (`since`, the
/// acceptance time). Forms before `since` belong to an earlier clinician and are
/// ignored; forms without a total do not count as sessions with feedback. Returns
/// `None` when the rule is not met (including no feedback at all).
pub fn suggest(
    rule: &RematchRule,
    since: DateTime<Utc>,
    feedback: &[Feedback],
) -> Option<RematchSuggestion> {
    let mut early: Vec<(DateTime<Utc>, u32)> = feedback
        .iter()
        .filter(|f| f.submitted_at >= since)
        .filter_map(|f| f.total.map(|t| (f.submitted_at, t)))
        .collect();
    early.sort_by_key(|(at, _)| *at);
    early.truncate(rule.early_sessions as usize);
    let low_totals: Vec<u32> = early
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t < rule.low_below)
        .collect();
    if (low_totals.len() as u32) < rule.low_occasions {
        return None;
    }
    let considered = early.len() as u32;
    let list: Vec<String> = low_totals.iter().map(u32::to_string).collect();
    let reason = format!(
        "{} of the first {considered} session-feedback form{} with this clinician scored below {} of 16 ({}); consider offering a free switch",
        low_totals.len(),
        if considered == 1 { "" } else { "s" },
        rule.low_below,
        list.join(", "),
    );
    Some(RematchSuggestion {
        low_totals,
        considered,
        reason,
        verified: rule.provenance.verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, 10, 0, 0).unwrap()
    }

    fn fb(day: u32, total: Option<u32>) -> Feedback {
        Feedback {
            submitted_at: at(day),
            total,
        }
    }

    fn rule() -> RematchRule {
        RematchRule::embedded().unwrap()
    }

    #[test]
    fn shipped_rule_is_unverified_data_with_a_source() {
        let r = rule();
        assert_eq!((r.early_sessions, r.low_below, r.low_occasions), (4, 12, 2));
        assert!(!r.provenance.verified);
        assert!(r.provenance.source.contains("Tapestry design"));
    }

    #[test]
    fn two_low_early_sessions_suggest_a_rematch_with_the_reason() {
        // Worked case: sessions 1–3 score 7, 13, 9 → two below 12 in the first four.
        let s = suggest(
            &rule(),
            at(1),
            &[fb(2, Some(7)), fb(9, Some(13)), fb(16, Some(9))],
        )
        .unwrap();
        assert_eq!(s.low_totals, vec![7, 9]);
        assert_eq!(s.considered, 3);
        assert_eq!(
            s.reason,
            "2 of the first 3 session-feedback forms with this clinician scored below 12 of 16 (7, 9); consider offering a free switch"
        );
        assert!(!s.verified);
    }

    #[test]
    fn one_low_session_is_not_enough_and_twelve_is_not_low() {
        assert_eq!(
            suggest(&rule(), at(1), &[fb(2, Some(3)), fb(9, Some(12))]),
            None
        );
        assert_eq!(
            suggest(&rule(), at(1), &[fb(2, Some(12)), fb(9, Some(12))]),
            None
        );
    }

    #[test]
    fn only_the_first_sessions_with_the_current_clinician_count() {
        // Low scores after the fourth session are a later hard patch, not early fit.
        let later = [
            fb(2, Some(14)),
            fb(3, Some(15)),
            fb(4, Some(13)),
            fb(5, Some(16)),
            fb(6, Some(2)),
            fb(7, Some(3)),
        ];
        assert_eq!(suggest(&rule(), at(1), &later), None);
        // Low scores with a previous clinician (before the match began) are ignored.
        let previous = [fb(1, Some(2)), fb(2, Some(3)), fb(10, Some(14))];
        assert_eq!(suggest(&rule(), at(5), &previous), None);
    }

    #[test]
    fn order_of_input_does_not_matter_and_missing_totals_are_skipped() {
        let shuffled = [
            fb(16, Some(9)),
            fb(2, None),
            fb(9, Some(5)),
            fb(3, Some(14)),
        ];
        let s = suggest(&rule(), at(1), &shuffled).unwrap();
        assert_eq!(s.low_totals, vec![5, 9]);
        assert_eq!(s.considered, 3);
    }

    #[test]
    fn empty_and_huge_feedback() {
        assert_eq!(suggest(&rule(), at(1), &[]), None);
        // A thousand forms: only the first four count (two of them low).
        let mut many: Vec<Feedback> = (0..1000)
            .map(|i| Feedback {
                submitted_at: at(1) + chrono::Duration::hours(i),
                total: Some(if i == 1 || i == 3 { 4 } else { 15 }),
            })
            .collect();
        let s = suggest(&rule(), at(1), &many).unwrap();
        assert_eq!(s.low_totals, vec![4, 4]);
        many[3].total = Some(15);
        assert_eq!(suggest(&rule(), at(1), &many), None);
    }

    #[test]
    fn malformed_rules_name_the_field() {
        let bad = "early_sessions = 2\nlow_below = 12\nlow_occasions = 3\n[provenance]\nsource = \"x\"\nverified = false\n";
        let e = RematchRule::from_toml("site/rematch.toml", bad).unwrap_err();
        assert_eq!(
            e.to_string(),
            "site/rematch.toml: low_occasions: must not be more than early_sessions"
        );
        let e = RematchRule::from_toml("site/rematch.toml", "early_sessions = 'x'").unwrap_err();
        assert!(e.to_string().starts_with("site/rematch.toml: "));
        let zero = bad.replace("early_sessions = 2", "early_sessions = 0");
        assert!(RematchRule::from_toml("r.toml", &zero)
            .unwrap_err()
            .to_string()
            .contains("early_sessions: must be at least 1"));
    }
}
