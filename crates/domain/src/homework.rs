//! Homework: a worksheet assigned from a plan item (a technique of the
//! library) and the client's answers to it. The worksheet's fields come from
//! the technique's homework template in `content/techniques`.

use crate::knowledge::HomeworkTemplate;
use serde::{Deserialize, Serialize};

/// Where an assignment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HomeworkStatus {
    /// Assigned, nothing written yet.
    Assigned,
    /// The client saved a draft (only the client sees it).
    Draft,
    /// Sent to the clinician; no more changes.
    Submitted,
}

impl HomeworkStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            HomeworkStatus::Assigned => "assigned",
            HomeworkStatus::Draft => "draft",
            HomeworkStatus::Submitted => "submitted",
        }
    }
    pub fn parse(text: &str) -> Result<Self, HomeworkError> {
        match text {
            "assigned" => Ok(HomeworkStatus::Assigned),
            "draft" => Ok(HomeworkStatus::Draft),
            "submitted" => Ok(HomeworkStatus::Submitted),
            other => Err(HomeworkError::UnknownStatus(other.to_string())),
        }
    }
}

/// The client's answers: (field name, value), in the template's field order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorksheetAnswers {
    pub fields: Vec<(String, String)>,
}

impl WorksheetAnswers {
    /// Checks submitted fields against the template: unknown fields are
    /// refused; numbers and 0–10 scales must parse; empty fields are kept
    /// empty (a draft may be partial).
    pub fn from_fields(
        template: &HomeworkTemplate,
        submitted: &[(String, String)],
    ) -> Result<Self, HomeworkError> {
        for (name, _) in submitted {
            if !template.fields.iter().any(|f| &f.name == name) && name != "free_text" {
                return Err(HomeworkError::UnknownField(name.clone()));
            }
        }
        let mut fields = Vec::new();
        for f in &template.fields {
            let value = submitted
                .iter()
                .find(|(n, _)| n == &f.name)
                .map(|(_, v)| v.trim().to_string())
                .unwrap_or_default();
            if !value.is_empty() {
                let ok = match f.kind.as_str() {
                    "number" => value.parse::<f64>().is_ok(),
                    "scale_0_10" => value.parse::<u8>().is_ok_and(|n| n <= 10),
                    "percent" => value.parse::<u8>().is_ok_and(|n| n <= 100),
                    _ => true,
                };
                if !ok {
                    return Err(HomeworkError::BadValue {
                        field: f.name.clone(),
                        kind: f.kind.clone(),
                    });
                }
            }
            fields.push((f.name.clone(), value));
        }
        if let Some((_, v)) = submitted.iter().find(|(n, _)| n == "free_text") {
            fields.push(("free_text".into(), v.trim().to_string()));
        }
        Ok(WorksheetAnswers { fields })
    }

    pub fn value(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub fn is_empty(&self) -> bool {
        self.fields.iter().all(|(_, v)| v.is_empty())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HomeworkError {
    #[error("homework status: unknown status {0:?}")]
    UnknownStatus(String),
    #[error("worksheet: unknown field {0:?}")]
    UnknownField(String),
    #[error("worksheet field {field}: not a valid {kind}")]
    BadValue { field: String, kind: String },
    #[error("homework: already sent to the clinician; it cannot change")]
    AlreadySubmitted,
    #[error("homework: an empty worksheet cannot be sent")]
    EmptySubmission,
    #[error("homework technique: {0:?} is not in the technique library")]
    UnknownTechnique(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::knowledge::WorksheetField;

    fn template() -> HomeworkTemplate {
        HomeworkTemplate {
            kind: "worksheet".into(),
            title: "Thought record".into(),
            instructions: "Write it down.".into(),
            fields: vec![
                WorksheetField {
                    name: "situation".into(),
                    prompt: "Situation".into(),
                    kind: "text".into(),
                },
                WorksheetField {
                    name: "belief".into(),
                    prompt: "Belief".into(),
                    kind: "percent".into(),
                },
            ],
        }
    }

    #[test]
    fn answers_follow_the_template() {
        let a =
            WorksheetAnswers::from_fields(&template(), &[("belief".into(), "80".into())]).unwrap();
        assert_eq!(a.fields[0], ("situation".into(), String::new()));
        assert_eq!(a.value("belief"), "80");
        assert!(!a.is_empty());
        assert!(WorksheetAnswers::from_fields(&template(), &[])
            .unwrap()
            .is_empty());
    }

    #[test]
    fn malformed_and_unknown_fields_are_refused_by_name() {
        let e = WorksheetAnswers::from_fields(&template(), &[("belief".into(), "180".into())]);
        assert_eq!(
            e,
            Err(HomeworkError::BadValue {
                field: "belief".into(),
                kind: "percent".into()
            })
        );
        let e = WorksheetAnswers::from_fields(&template(), &[("mood".into(), "1".into())]);
        assert_eq!(e, Err(HomeworkError::UnknownField("mood".into())));
    }
}
