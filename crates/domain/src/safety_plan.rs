//! The safety plan: a short, personal plan the client and clinician write
//! together for a crisis, in six steps (after the Stanley–Brown structure,
//! in our own words). Versioned; every version is kept.

use serde::{Deserialize, Serialize};

/// One step of the plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SafetyStep {
    pub key: &'static str,
    pub heading: &'static str,
    /// What the client is asked, in plain words.
    pub prompt: &'static str,
}

/// The six steps, in the order they are used in a crisis.
pub const STEPS: [SafetyStep; 6] = [
    SafetyStep {
        key: "warning_signs",
        heading: "My warning signs",
        prompt: "Thoughts, feelings, situations that tell me a crisis may be building.",
    },
    SafetyStep {
        key: "internal_coping",
        heading: "Things I can do on my own",
        prompt: "Ways to take my mind off things without contacting anyone.",
    },
    SafetyStep {
        key: "distraction",
        heading: "People and places that help me feel better",
        prompt: "Who I can be with and where I can go to get some distance.",
    },
    SafetyStep {
        key: "people_to_ask",
        heading: "People I can ask for help",
        prompt: "Names and how to reach them.",
    },
    SafetyStep {
        key: "professionals",
        heading: "Professionals and crisis lines",
        prompt: "My clinician, out-of-hours services, a crisis line, the emergency number.",
    },
    SafetyStep {
        key: "environment",
        heading: "Making my surroundings safer",
        prompt: "What I will do to keep means of harm out of reach.",
    },
];

/// The text of each step (newline-separated entries), in [`STEPS`] order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyPlanBody {
    pub steps: Vec<(String, String)>,
    /// The one thing most worth living for, in the client's words.
    #[serde(default)]
    pub reasons_for_living: String,
}

impl SafetyPlanBody {
    /// Builds a plan from submitted fields; unknown keys are refused.
    pub fn from_fields(fields: &[(String, String)]) -> Result<Self, SafetyPlanError> {
        let mut reasons = String::new();
        for (k, v) in fields {
            if k == "reasons_for_living" {
                reasons = v.trim().to_string();
            } else if !STEPS.iter().any(|s| s.key == k) {
                return Err(SafetyPlanError::UnknownStep(k.clone()));
            }
        }
        let steps = STEPS
            .iter()
            .map(|s| {
                let text = fields
                    .iter()
                    .find(|(k, _)| k == s.key)
                    .map(|(_, v)| v.trim().to_string())
                    .unwrap_or_default();
                (s.key.to_string(), text)
            })
            .collect();
        let body = SafetyPlanBody {
            steps,
            reasons_for_living: reasons,
        };
        if body.is_empty() {
            return Err(SafetyPlanError::Empty);
        }
        Ok(body)
    }

    pub fn text(&self, key: &str) -> &str {
        self.steps
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.reasons_for_living.is_empty() && self.steps.iter().all(|(_, v)| v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetyPlanError {
    #[error("safety plan: unknown step {0:?}")]
    UnknownStep(String),
    #[error("safety plan: every step is empty; write at least one")]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_has_six_steps_in_crisis_order() {
        assert_eq!(STEPS.len(), 6);
        assert_eq!(STEPS[0].key, "warning_signs");
        assert_eq!(STEPS[5].key, "environment");
    }

    #[test]
    fn empty_unknown_and_partial_plans() {
        assert_eq!(
            SafetyPlanBody::from_fields(&[]),
            Err(SafetyPlanError::Empty)
        );
        assert!(matches!(
            SafetyPlanBody::from_fields(&[("weapons".into(), "x".into())]),
            Err(SafetyPlanError::UnknownStep(_))
        ));
        let p =
            SafetyPlanBody::from_fields(&[("professionals".into(), " 116 123 ".into())]).unwrap();
        assert_eq!(p.text("professionals"), "116 123");
        assert_eq!(p.steps.len(), 6);
    }
}
