//! People who sign in, and the roles they hold within a practice.

use crate::ids::{PracticeId, UserId};
use crate::practice::{bounded_text, FieldError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What a user is to the practice. Decides, through the one authorization
/// policy, what they may see and do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Client,
    Clinician,
    Supervisor,
    PracticeAdmin,
    PracticeOwner,
    Operator,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Client,
        Role::Clinician,
        Role::Supervisor,
        Role::PracticeAdmin,
        Role::PracticeOwner,
        Role::Operator,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Clinician => "clinician",
            Role::Supervisor => "supervisor",
            Role::PracticeAdmin => "practice_admin",
            Role::PracticeOwner => "practice_owner",
            Role::Operator => "operator",
        }
    }

    pub fn parse(value: &str) -> Result<Self, FieldError> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
            .ok_or_else(|| {
                FieldError::new(
                    "role",
                    format!(
                        "unknown role '{}'; expected one of client, clinician, supervisor, practice_admin, practice_owner, operator",
                        value.chars().take(40).collect::<String>()
                    ),
                )
            })
    }

    /// Staff must complete a second factor before reaching clinical data.
    pub fn is_staff(self) -> bool {
        !matches!(self, Role::Client)
    }

    /// Roles that may hold care relationships and use break-glass.
    pub fn is_clinical(self) -> bool {
        matches!(
            self,
            Role::Clinician | Role::Supervisor | Role::PracticeOwner
        )
    }

    /// Roles that administer a practice.
    pub fn is_practice_admin(self) -> bool {
        matches!(self, Role::PracticeAdmin | Role::PracticeOwner)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An e-mail address, lower-cased, checked for plausible shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        let v = value.trim().to_lowercase();
        if v.is_empty() {
            return Err(FieldError::new("email", "must not be empty"));
        }
        if v.len() > 254 {
            return Err(FieldError::new("email", "must be at most 254 characters"));
        }
        let mut parts = v.split('@');
        let (local, domain) = match (parts.next(), parts.next(), parts.next()) {
            (Some(l), Some(d), None) => (l, d),
            _ => return Err(FieldError::new("email", "must contain exactly one '@'")),
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        if local.is_empty()
            || local.len() > 64
            || v.chars().any(|c| c.is_whitespace() || c.is_control())
            || !domain_ok
        {
            return Err(FieldError::new("email", "is not a valid e-mail address"));
        }
        Ok(Self(v))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether an account may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Invited,
    Disabled,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Invited => "invited",
            AccountStatus::Disabled => "disabled",
        }
    }
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        match value {
            "active" => Ok(AccountStatus::Active),
            "invited" => Ok(AccountStatus::Invited),
            "disabled" => Ok(AccountStatus::Disabled),
            other => Err(FieldError::new(
                "status",
                format!("unknown account status '{other}'"),
            )),
        }
    }
}

/// A person who signs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub practice_id: PracticeId,
    pub email: Email,
    pub display_name: String,
    pub role: Role,
    pub status: AccountStatus,
    pub created_at: DateTime<Utc>,
}

impl User {
    pub fn new(
        practice_id: PracticeId,
        email: &str,
        display_name: &str,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        Ok(Self {
            id: UserId::random(),
            practice_id,
            email: Email::parse(email)?,
            display_name: bounded_text("display_name", display_name, 120)?,
            role,
            status: AccountStatus::Active,
            created_at: now,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ana@Example.ORG ").unwrap().as_str(),
            "ana@example.org"
        );
        for bad in [
            "",
            "ana",
            "ana@",
            "@example.org",
            "a@b@c.org",
            "ana@example",
            "an a@example.org",
            "ana@exa_mple.org",
        ] {
            assert_eq!(Email::parse(bad).unwrap_err().field, "email", "{bad}");
        }
        assert!(Email::parse(&format!("{}@example.org", "a".repeat(300))).is_err());
    }

    #[test]
    fn roles_round_trip_and_unknown_roles_are_named() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()).unwrap(), r);
        }
        let err = Role::parse("god").unwrap_err();
        assert_eq!(err.field, "role");
        assert!(err.problem.contains("god"));
        assert!(!Role::Client.is_staff());
        assert!(Role::Clinician.is_staff());
    }
}
