//! Practices: the tenants. Every record in Tapestry belongs to exactly one.

use crate::ids::PracticeId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A field value that failed validation, naming the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: &'static str,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

/// A trimmed, non-empty, bounded piece of text (names, titles).
pub fn bounded_text(
    field: &'static str,
    value: &str,
    max_chars: usize,
) -> Result<String, FieldError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if trimmed.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// An IANA time-zone name such as `Europe/London`, checked against the tz
/// database compiled into Tapestry (`chrono-tz`), so every stored zone can
/// be used to show wall-clock times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// A known IANA name; the error names the field `time_zone`.
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let value = value.trim();
        match value.parse::<chrono_tz::Tz>() {
            Ok(tz) if !value.is_empty() && value.len() <= 64 => Ok(Self(tz.name().to_string())),
            _ => Err(FieldError::new(
                "time_zone",
                format!(
                    "'{}' is not an IANA time-zone name such as Europe/London",
                    value.chars().take(40).collect::<String>()
                ),
            )),
        }
    }
    /// The zone itself, for conversions.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::UTC)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A practice (tenant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Practice {
    pub id: PracticeId,
    pub name: String,
    pub time_zone: TimeZoneName,
    pub created_at: DateTime<Utc>,
}

impl Practice {
    pub fn new(name: &str, time_zone: &str, now: DateTime<Utc>) -> Result<Self, FieldError> {
        Ok(Self {
            id: PracticeId::random(),
            name: bounded_text("name", name, 200)?,
            time_zone: TimeZoneName::parse(time_zone)?,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn practice_names_are_trimmed_and_bounded() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let p = Practice::new("  Riverside Therapy  ", "Europe/London", now).unwrap();
        assert_eq!(p.name, "Riverside Therapy");
        assert_eq!(
            Practice::new("", "Europe/London", now).unwrap_err().field,
            "name"
        );
        assert_eq!(
            Practice::new(&"x".repeat(201), "Europe/London", now)
                .unwrap_err()
                .field,
            "name"
        );
        assert_eq!(
            Practice::new("Ok", "Europe London; drop", now)
                .unwrap_err()
                .field,
            "time_zone"
        );
        // Shaped like a zone but not in the tz database.
        assert_eq!(
            Practice::new("Ok", "Mars/Olympus", now).unwrap_err().field,
            "time_zone"
        );
        assert_eq!(
            TimeZoneName::parse(" America/New_York ").unwrap().as_str(),
            "America/New_York"
        );
        assert!(TimeZoneName::parse("").is_err());
        assert!(TimeZoneName::parse(&"Europe/".repeat(20)).is_err());
    }
}
