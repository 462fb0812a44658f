//! The client's intake, saved step by step: consent, about you, what brings
//! you, preferences. The intake measures are ordinary questionnaire
//! submissions and are not part of the draft.

use serde::{Deserialize, Serialize};

/// One step of the intake and the fields it asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntakeStep {
    pub key: &'static str,
    pub heading: &'static str,
    pub fields: &'static [(&'static str, &'static str)],
}

/// The steps, in order. The measures follow the last one.
pub const STEPS: [IntakeStep; 4] = [
    IntakeStep {
        key: "consent",
        heading: "Consent",
        fields: &[(
            "consent",
            "I have read how Tapestry keeps my information and I agree to start",
        )],
    },
    IntakeStep {
        key: "about",
        heading: "About you",
        fields: &[
            ("preferred_name", "What should we call you?"),
            ("pronouns", "Pronouns (optional)"),
            (
                "emergency_contact",
                "Someone we may contact in an emergency",
            ),
            (
                "time_zone",
                "Your time zone, for appointment times (e.g. Europe/London)",
            ),
        ],
    },
    IntakeStep {
        key: "reasons",
        heading: "What brings you here",
        fields: &[
            (
                "concern",
                "In your own words, what would you like help with?",
            ),
            ("goal", "What would be different if therapy helped?"),
        ],
    },
    IntakeStep {
        key: "preferences",
        heading: "Your preferences",
        fields: &[
            (
                "therapy_type",
                "Kind of therapy you would like, if you know",
            ),
            ("format", "Video, phone, chat or in person"),
            (
                "clinician",
                "Anything that matters to you about your clinician",
            ),
            ("language", "Language for sessions"),
        ],
    },
];

/// What the client has written so far (field, value), across all steps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntakeDraft {
    pub fields: Vec<(String, String)>,
    /// The furthest step completed (0 = none).
    pub completed_steps: usize,
}

impl IntakeDraft {
    /// Saves one step's answers (replacing earlier answers to its fields).
    pub fn save_step(
        &mut self,
        step: usize,
        submitted: &[(String, String)],
    ) -> Result<(), IntakeError> {
        let spec = STEPS.get(step).ok_or(IntakeError::UnknownStep(step))?;
        for (k, _) in submitted {
            if !spec.fields.iter().any(|(f, _)| f == k) {
                return Err(IntakeError::UnknownField {
                    step: spec.key,
                    field: k.clone(),
                });
            }
        }
        if spec.key == "consent" && !submitted.iter().any(|(k, v)| k == "consent" && v == "yes") {
            return Err(IntakeError::ConsentMissing);
        }
        self.fields
            .retain(|(k, _)| !spec.fields.iter().any(|(f, _)| f == k));
        for (k, v) in submitted {
            self.fields.push((k.clone(), v.trim().to_string()));
        }
        self.completed_steps = self.completed_steps.max(step + 1);
        Ok(())
    }

    pub fn value(&self, field: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn is_complete(&self) -> bool {
        self.completed_steps >= STEPS.len()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    #[error("intake step {0}: there is no such step")]
    UnknownStep(usize),
    #[error("intake step {step}: unknown field {field:?}")]
    UnknownField { step: &'static str, field: String },
    #[error("intake consent: please tick the consent box to continue")]
    ConsentMissing,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_and_continue() {
        let mut d = IntakeDraft::default();
        assert_eq!(d.save_step(0, &[]), Err(IntakeError::ConsentMissing));
        d.save_step(0, &[("consent".into(), "yes".into())]).unwrap();
        d.save_step(2, &[("concern".into(), " low mood ".into())])
            .unwrap();
        d.save_step(2, &[("concern".into(), "sleep".into())])
            .unwrap();
        assert_eq!(d.value("concern"), "sleep");
        assert_eq!(d.fields.iter().filter(|(k, _)| k == "concern").count(), 1);
        assert_eq!(d.completed_steps, 3);
        assert!(!d.is_complete());
        assert!(matches!(
            d.save_step(9, &[]),
            Err(IntakeError::UnknownStep(9))
        ));
        assert!(matches!(
            d.save_step(1, &[("x".into(), "y".into())]),
            Err(IntakeError::UnknownField { .. })
        ));
    }
}
