//! Clients: the people receiving care, and their clinicians' professional profiles.

use crate::ids::{ClientId, PracticeId, UserId};
use crate::practice::{bounded_text, FieldError, TimeZoneName};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A client record. Identifying details only; clinical content lives in
/// episodes, measures, formulations and notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Client {
    pub id: ClientId,
    pub practice_id: PracticeId,
    /// The client's own sign-in account, once they have one.
    pub user_id: Option<UserId>,
    pub display_name: String,
    pub date_of_birth: Option<NaiveDate>,
    /// Where the client lives, as an ISO 3166-2 style code (e.g. `CA-ON`):
    /// decides which clinician licences are valid for them.
    pub jurisdiction: Option<String>,
    /// The client's own IANA time zone (set at intake or in their settings):
    /// booking pages, the client's `.ics` and reminders to the client show
    /// times in it. `None` until the client gives one; the practice's zone
    /// is used meanwhile.
    #[serde(default)]
    pub time_zone: Option<TimeZoneName>,
    pub created_at: DateTime<Utc>,
}

impl Client {
    pub fn new(
        practice_id: PracticeId,
        display_name: &str,
        date_of_birth: Option<NaiveDate>,
        jurisdiction: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        if let Some(dob) = date_of_birth {
            if dob > now.date_naive() {
                return Err(FieldError::new(
                    "date_of_birth",
                    "must not be in the future",
                ));
            }
            if now.date_naive().years_since(dob).unwrap_or(0) > 120 {
                return Err(FieldError::new(
                    "date_of_birth",
                    "is more than 120 years ago",
                ));
            }
        }
        let jurisdiction = match jurisdiction {
            None => None,
            Some(j) => Some(parse_jurisdiction(j)?),
        };
        Ok(Self {
            id: ClientId::random(),
            practice_id,
            user_id: None,
            display_name: bounded_text("display_name", display_name, 120)?,
            date_of_birth,
            jurisdiction,
            time_zone: None,
            created_at: now,
        })
    }

    /// The zone to show this client's times in: their own, else `fallback`
    /// (the practice's).
    pub fn zone_or<'a>(&'a self, fallback: &'a TimeZoneName) -> &'a TimeZoneName {
        self.time_zone.as_ref().unwrap_or(fallback)
    }
}

/// `CC` or `CC-SUB` (ISO 3166-1 alpha-2, optionally with a subdivision).
pub fn parse_jurisdiction(value: &str) -> Result<String, FieldError> {
    let v = value.trim().to_uppercase();
    let mut parts = v.splitn(2, '-');
    let country = parts.next().unwrap_or("");
    let sub = parts.next();
    let country_ok = country.len() == 2 && country.chars().all(|c| c.is_ascii_uppercase());
    let sub_ok = sub
        .is_none_or(|s| (1..=3).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric()));
    if country_ok && sub_ok {
        Ok(v)
    } else {
        Err(FieldError::new(
            "jurisdiction",
            format!(
                "'{}' is not a jurisdiction code like 'GB' or 'CA-ON'",
                value.chars().take(20).collect::<String>()
            ),
        ))
    }
}

/// How a clinician works with clients, as shown to clients and used by matching.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClinicianProfile {
    pub user_id: UserId,
    pub practice_id: PracticeId,
    pub professional_title: String,
    pub bio: String,
    pub languages: Vec<String>,
    pub accepts_new_clients: bool,
    pub caseload_limit: u32,
}

impl ClinicianProfile {
    pub fn validate(&self) -> Result<(), FieldError> {
        bounded_text("professional_title", &self.professional_title, 120)?;
        if self.bio.chars().count() > 4000 {
            return Err(FieldError::new("bio", "must be at most 4000 characters"));
        }
        if self.languages.is_empty() {
            return Err(FieldError::new(
                "languages",
                "must name at least one language",
            ));
        }
        for lang in &self.languages {
            if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_lowercase()) {
                return Err(FieldError::new(
                    "languages",
                    format!(
                        "'{}' is not an ISO 639 language code",
                        lang.chars().take(20).collect::<String>()
                    ),
                ));
            }
        }
        if self.caseload_limit > 500 {
            return Err(FieldError::new("caseload_limit", "must be at most 500"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn client_validation_names_fields() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).unwrap();
        let p = PracticeId::random();
        let ok = Client::new(
            p,
            "Sam",
            NaiveDate::from_ymd_opt(1990, 5, 1),
            Some("ca-on"),
            now,
        )
        .unwrap();
        assert_eq!(ok.jurisdiction.as_deref(), Some("CA-ON"));
        let future = NaiveDate::from_ymd_opt(2027, 1, 1);
        assert_eq!(
            Client::new(p, "Sam", future, None, now).unwrap_err().field,
            "date_of_birth"
        );
        assert_eq!(
            Client::new(p, "Sam", None, Some("Ontario"), now)
                .unwrap_err()
                .field,
            "jurisdiction"
        );
        assert_eq!(
            Client::new(p, " ", None, None, now).unwrap_err().field,
            "display_name"
        );
    }
}
