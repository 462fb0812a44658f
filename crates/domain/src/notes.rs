//! Session notes: the SOAP, DAP and BIRP templates, progress notes versus
//! private psychotherapy notes, and the sign-and-lock rule (a signed note
//! never changes; corrections are addenda).

use serde::{Deserialize, Serialize};

/// The structure a note is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteTemplate {
    /// Subjective, Objective, Assessment, Plan.
    Soap,
    /// Data, Assessment, Plan.
    Dap,
    /// Behaviour, Intervention, Response, Plan.
    Birp,
}

/// One section of a template: its stored key and what the writer is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoteSection {
    pub key: &'static str,
    pub heading: &'static str,
    pub prompt: &'static str,
}

const fn s(key: &'static str, heading: &'static str, prompt: &'static str) -> NoteSection {
    NoteSection {
        key,
        heading,
        prompt,
    }
}

const SOAP: &[NoteSection] = &[
    s(
        "subjective",
        "Subjective",
        "What the client reported, in their words where it matters.",
    ),
    s(
        "objective",
        "Objective",
        "What you observed; scores from this session's measures.",
    ),
    s(
        "assessment",
        "Assessment",
        "Your clinical reading: progress, risk, formulation.",
    ),
    s("plan", "Plan", "Next steps, homework, next session."),
];
const DAP: &[NoteSection] = &[
    s(
        "data",
        "Data",
        "What was said and observed, including measures.",
    ),
    s(
        "assessment",
        "Assessment",
        "Your clinical reading: progress, risk, formulation.",
    ),
    s("plan", "Plan", "Next steps, homework, next session."),
];
const BIRP: &[NoteSection] = &[
    s(
        "behaviour",
        "Behaviour",
        "Presentation and what the client brought.",
    ),
    s(
        "intervention",
        "Intervention",
        "What you did: techniques and their purpose.",
    ),
    s("response", "Response", "How the client responded."),
    s("plan", "Plan", "Next steps, homework, next session."),
];

impl NoteTemplate {
    pub const ALL: [NoteTemplate; 3] = [NoteTemplate::Soap, NoteTemplate::Dap, NoteTemplate::Birp];

    pub fn as_str(self) -> &'static str {
        match self {
            NoteTemplate::Soap => "soap",
            NoteTemplate::Dap => "dap",
            NoteTemplate::Birp => "birp",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            NoteTemplate::Soap => "SOAP",
            NoteTemplate::Dap => "DAP",
            NoteTemplate::Birp => "BIRP",
        }
    }

    pub fn parse(text: &str) -> Result<Self, NoteError> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == text)
            .ok_or_else(|| NoteError::UnknownTemplate(text.to_string()))
    }

    /// The sections of the template, in writing order.
    pub fn sections(self) -> &'static [NoteSection] {
        match self {
            NoteTemplate::Soap => SOAP,
            NoteTemplate::Dap => DAP,
            NoteTemplate::Birp => BIRP,
        }
    }
}

/// Progress notes belong to the record; private psychotherapy notes are the
/// author's own process notes and only the author may open them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteKind {
    Progress,
    Psychotherapy,
}

impl NoteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NoteKind::Progress => "progress",
            NoteKind::Psychotherapy => "psychotherapy",
        }
    }
    pub fn label(self) -> &'static str {
        match self {
            NoteKind::Progress => "Progress note",
            NoteKind::Psychotherapy => "Private psychotherapy note",
        }
    }
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        match text {
            "progress" => Ok(NoteKind::Progress),
            "psychotherapy" => Ok(NoteKind::Psychotherapy),
            other => Err(NoteError::UnknownKind(other.to_string())),
        }
    }
}

/// A note's sections as written: (section key, text), in template order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteBody {
    pub sections: Vec<(String, String)>,
}

impl NoteBody {
    /// Builds a body from submitted fields, keeping exactly the template's
    /// sections (unknown keys are refused, missing ones are empty).
    pub fn from_fields(
        template: NoteTemplate,
        fields: &[(String, String)],
    ) -> Result<NoteBody, NoteError> {
        for (key, _) in fields {
            if !template.sections().iter().any(|s| s.key == key) {
                return Err(NoteError::UnknownSection {
                    template: template.label(),
                    section: key.clone(),
                });
            }
        }
        let sections = template
            .sections()
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
        Ok(NoteBody { sections })
    }

    pub fn text(&self, key: &str) -> &str {
        self.sections
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.sections.iter().all(|(_, v)| v.trim().is_empty())
    }
}

/// Where a note is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    Draft,
    Signed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("note template: unknown template {0:?} (soap, dap or birp)")]
    UnknownTemplate(String),
    #[error("note kind: unknown kind {0:?} (progress or psychotherapy)")]
    UnknownKind(String),
    #[error("note section: {template} has no section {section:?}")]
    UnknownSection {
        template: &'static str,
        section: String,
    },
    #[error("note: a signed note cannot be changed; add an addendum")]
    Signed,
    #[error("note: an empty note cannot be signed")]
    EmptySignature,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_ends_with_a_plan() {
        for t in NoteTemplate::ALL {
            assert_eq!(t.sections().last().map(|s| s.key), Some("plan"));
            assert_eq!(NoteTemplate::parse(t.as_str()), Ok(t));
        }
        assert!(NoteTemplate::parse("narrative").is_err());
    }

    #[test]
    fn body_keeps_template_order_and_refuses_unknown_sections() {
        let b = NoteBody::from_fields(
            NoteTemplate::Dap,
            &[
                ("plan".into(), " next week ".into()),
                ("data".into(), "low mood".into()),
            ],
        )
        .unwrap();
        assert_eq!(b.sections[0].0, "data");
        assert_eq!(b.text("plan"), "next week");
        assert_eq!(b.text("assessment"), "");
        let e = NoteBody::from_fields(NoteTemplate::Dap, &[("subjective".into(), "x".into())]);
        assert!(matches!(e, Err(NoteError::UnknownSection { .. })));
        // Empty input is an empty (unsignable) body, not an error.
        assert!(NoteBody::from_fields(NoteTemplate::Soap, &[])
            .unwrap()
            .is_empty());
    }
}
