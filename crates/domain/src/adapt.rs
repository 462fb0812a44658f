//! Session review: from the history, the newest measures and the techniques
//! used, suggest adaptations (rules A1–A12), run the clinical-support
//! checklist when the client is not on track, and send the plan back to P0
//! when risk rises (pausing, never deleting, the rest).

use crate::knowledge::{render, FeatureValue, Knowledge, Phase, RuleType};
use crate::plan::{build_features, generate, pause_for_risk, Case, EvidenceRef, ItemStatus, Plan};
use serde::{Deserialize, Serialize};

/// A suggested technique the current plan's vetoes do not allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Withheld {
    pub code: String,
    pub rule: String,
    pub reason: String,
}

/// One adaptation suggestion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    pub rule: String,
    pub text: String,
    /// Technique codes to add (already filtered through the plan's vetoes).
    pub adds: Vec<String>,
    pub withheld: Vec<Withheld>,
    pub why: String,
    pub evidence: Vec<EvidenceRef>,
}

/// One domain of the clinical-support checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    pub domain: String,
    pub prompt: String,
}

/// The outcome of a session review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionReview {
    pub suggestions: Vec<Suggestion>,
    /// Present when the client is not on track.
    pub checklist: Option<Vec<ChecklistItem>>,
    pub not_on_track_reviews: u32,
    /// Risk rose and the plan went back to P0.
    pub risk_regression: bool,
    /// The plan after the review (a new version when a previous plan was given).
    pub plan: Plan,
}

/// The five clinical-support domains (Lambert's signal-client tools, TTN).
pub fn clinical_support_checklist() -> Vec<ChecklistItem> {
    [
        ("alliance", "Ask about the working relationship: is the client getting what they need from sessions? Look for and repair ruptures."),
        ("motivation", "Re-check goals and readiness: do the goals still matter to the client, and does the plan fit their stage of change?"),
        ("social_support_life_events", "Ask about support and recent life events (loss, conflict, work, housing) that may be holding progress back."),
        ("emotion_regulation", "Check whether emotions are overwhelming the work; consider regulation skills before more change work."),
        ("risk", "Re-screen suicide and self-harm risk with a structured inquiry, whatever the totals say."),
    ]
    .into_iter()
    .map(|(d, p)| ChecklistItem {
        domain: d.into(),
        prompt: p.into(),
    })
    .collect()
}

/// Review the latest session. `previous` is the plan currently in force, if any.
pub fn review(k: &Knowledge, case: &Case, previous: Option<&Plan>) -> SessionReview {
    let fresh = generate(k, case);
    let f = build_features(k, case);
    let mut suggestions = Vec::new();
    let mut checklist = false;
    for r in k
        .rules
        .iter()
        .filter(|r| r.rule_type == RuleType::Adaptation)
    {
        if !k.eval(&r.when, &f) {
            continue;
        }
        checklist |= r.effect.checklist;
        let Some(s) = &r.effect.suggest else { continue };
        let mut adds = Vec::new();
        let mut withheld = Vec::new();
        for code in &s.adds {
            match fresh.exclusion(code) {
                Some(e) => withheld.push(Withheld {
                    code: code.clone(),
                    rule: e.rule.clone(),
                    reason: e.reason.clone(),
                }),
                None => adds.push(code.clone()),
            }
        }
        suggestions.push(Suggestion {
            rule: r.id.clone(),
            text: render(&s.text, &f),
            adds,
            withheld,
            why: render(&r.explanation, &f),
            evidence: r
                .evidence
                .iter()
                .filter_map(|key| k.evidence.get(key))
                .map(|e| EvidenceRef {
                    key: e.key.clone(),
                    level: e.level,
                    verified: e.verified,
                })
                .collect(),
        });
    }
    let not_on_track = k.instruments.keys().any(|id| {
        matches!(
            f.get(&format!("change.{id}.not_on_track")),
            Some(FeatureValue::Bool(true))
        )
    });
    let runs = match f.get("history.not_on_track_reviews") {
        Some(FeatureValue::Number(x)) => *x as u32,
        _ => 0,
    };
    let rose = matches!(f.get("history.risk_rose"), Some(FeatureValue::Bool(true)));
    // Rule R-escalation already puts a fresh plan in P0 when risk rose; a
    // regression is that, or any fall back to P0 from a later phase.
    let risk_regression =
        fresh.phase == Phase::P0 && (rose || previous.is_some_and(|p| p.phase > Phase::P0));
    let plan = match previous {
        Some(prev) if risk_regression => {
            let mut next = pause_for_risk(prev, "risk rose at this session");
            // Carry in the new safety work and alerts; keep everything else.
            for item in fresh.items.iter().filter(|i| i.phase == Phase::P0) {
                if !next.has(&item.code) {
                    next.items.insert(0, item.clone());
                }
            }
            for e in &fresh.excluded {
                if !next.excluded.iter().any(|x| x.code == e.code) {
                    next.excluded.push(e.clone());
                }
            }
            for item in &mut next.items {
                if next.excluded.iter().any(|e| e.code == item.code) && item.phase > Phase::P0 {
                    item.status = ItemStatus::Paused;
                }
            }
            next.alerts = fresh.alerts.clone();
            next.halted = fresh.halted;
            next
        }
        Some(prev) => {
            let mut next = fresh;
            next.version = prev.version + 1;
            next
        }
        None => fresh,
    };
    SessionReview {
        suggestions,
        checklist: (checklist || not_on_track).then(clinical_support_checklist),
        not_on_track_reviews: runs,
        risk_regression,
        plan,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formulation::Formulation;
    use std::collections::BTreeMap;

    #[test]
    fn checklist_covers_the_five_domains() {
        let c = clinical_support_checklist();
        let domains: Vec<&str> = c.iter().map(|x| x.domain.as_str()).collect();
        assert_eq!(
            domains,
            [
                "alliance",
                "motivation",
                "social_support_life_events",
                "emotion_regulation",
                "risk"
            ]
        );
    }

    #[test]
    fn first_session_review_has_no_progress_suggestions() {
        let k = Knowledge::embedded().unwrap();
        let case = Case {
            formulation: Formulation::new(30, vec!["depression".into()]),
            measures: BTreeMap::new(),
            history: Vec::new(),
        };
        let r = review(&k, &case, None);
        assert!(r.suggestions.is_empty());
        assert!(r.checklist.is_none());
        assert!(!r.risk_regression);
        assert_eq!(r.plan.version, 1);
    }
}
