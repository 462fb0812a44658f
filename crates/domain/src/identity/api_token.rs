//! API tokens for integrations: scoped, expiring, revocable (issue 3).
//!
//! An API token acts for the user who created it, with at most the actions
//! listed in its scope: a request is allowed only if the token's scope
//! contains the action *and* [`crate::access::authorize`] allows the user.
//! Only the SHA-256 hash is stored; the token is shown once at creation and
//! travels in an `Authorization: Bearer` header (never in a URL, G7). Requests
//! made with a bearer token carry no cookie, so they need no CSRF token.
//! API tokens cannot perform sensitive actions that need re-authentication.

use crate::access::Action;
use crate::identity::token::{SecretToken, TokenHash};
use crate::ids::{PracticeId, UserId};
use chrono::{DateTime, Duration, Utc};
use std::collections::BTreeSet;

/// Longest lifetime a token may be given.
pub const MAX_LIFETIME_DAYS: i64 = 365;

/// Why a token cannot be created or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiTokenError {
    #[error("api token: scope is empty")]
    EmptyScope,
    #[error("api token: scope may not include '{0}' (needs interactive re-authentication)")]
    SensitiveAction(&'static str),
    #[error("api token: lifetime must be between 1 day and {MAX_LIFETIME_DAYS} days")]
    BadLifetime,
    #[error("api token: name must be 1 to 100 characters")]
    BadName,
    #[error("api token: revoked")]
    Revoked,
    #[error("api token: expired")]
    Expired,
    #[error("api token: scope does not include '{0}'")]
    OutOfScope(&'static str),
}

/// An API token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    pub token_hash: TokenHash,
    pub user_id: UserId,
    pub practice_id: Option<PracticeId>,
    /// A label the user chose ("calendar sync").
    pub name: String,
    pub scope: BTreeSet<Action>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiToken {
    /// Create a token; returns what to store and the token to show once.
    pub fn create(
        user_id: UserId,
        practice_id: Option<PracticeId>,
        name: &str,
        scope: impl IntoIterator<Item = Action>,
        lifetime: Duration,
        now: DateTime<Utc>,
    ) -> Result<(Self, SecretToken), ApiTokenError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiTokenError::BadName);
        }
        let scope: BTreeSet<Action> = scope.into_iter().collect();
        if scope.is_empty() {
            return Err(ApiTokenError::EmptyScope);
        }
        if let Some(a) = scope.iter().find(|a| a.requires_reauth()) {
            return Err(ApiTokenError::SensitiveAction(a.as_str()));
        }
        if lifetime < Duration::days(1) || lifetime > Duration::days(MAX_LIFETIME_DAYS) {
            return Err(ApiTokenError::BadLifetime);
        }
        let token = SecretToken::generate();
        Ok((
            Self {
                token_hash: token.hash(),
                user_id,
                practice_id,
                name: name.to_string(),
                scope,
                created_at: now,
                expires_at: now + lifetime,
                revoked_at: None,
            },
            token,
        ))
    }

    /// May this token be used for `action` at `now`? (The user's own
    /// permissions are checked separately by `authorize`.)
    pub fn permits(&self, action: Action, now: DateTime<Utc>) -> Result<(), ApiTokenError> {
        if self.revoked_at.is_some() {
            return Err(ApiTokenError::Revoked);
        }
        if now >= self.expires_at {
            return Err(ApiTokenError::Expired);
        }
        if !self.scope.contains(&action) {
            return Err(ApiTokenError::OutOfScope(action.as_str()));
        }
        Ok(())
    }

    pub fn revoke(&mut self, now: DateTime<Utc>) {
        if self.revoked_at.is_none() {
            self.revoked_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 8, 1, 0, 0, 0).single().unwrap()
    }

    fn create(scope: Vec<Action>) -> Result<(ApiToken, SecretToken), ApiTokenError> {
        ApiToken::create(
            UserId::random(),
            None,
            "calendar sync",
            scope,
            Duration::days(30),
            now(),
        )
    }

    #[test]
    fn scope_limits_actions_and_expiry_and_revocation_end_the_token() {
        let (mut t, secret) = create(vec![Action::ReadSchedule]).unwrap();
        assert_eq!(t.token_hash, secret.hash());
        assert_eq!(t.permits(Action::ReadSchedule, now()), Ok(()));
        assert_eq!(
            t.permits(Action::ReadNotes, now()),
            Err(ApiTokenError::OutOfScope("read_notes"))
        );
        assert_eq!(
            t.permits(Action::ReadSchedule, now() + Duration::days(30)),
            Err(ApiTokenError::Expired)
        );
        t.revoke(now());
        let first = t.revoked_at;
        t.revoke(now() + Duration::days(1));
        assert_eq!(t.revoked_at, first, "revocation time is kept");
        assert_eq!(
            t.permits(Action::ReadSchedule, now()),
            Err(ApiTokenError::Revoked)
        );
    }

    #[test]
    fn creation_rejects_empty_sensitive_or_unbounded_tokens() {
        assert_eq!(create(vec![]).err(), Some(ApiTokenError::EmptyScope));
        assert_eq!(
            create(vec![Action::ReadSchedule, Action::ExportClientRecord]).err(),
            Some(ApiTokenError::SensitiveAction("export_client_record"))
        );
        for bad in [Duration::hours(1), Duration::days(366), Duration::days(-1)] {
            assert_eq!(
                ApiToken::create(
                    UserId::random(),
                    None,
                    "x",
                    [Action::ReadSchedule],
                    bad,
                    now()
                )
                .err(),
                Some(ApiTokenError::BadLifetime)
            );
        }
        for name in ["", "   ", &"n".repeat(101), "tab\there"] {
            assert_eq!(
                ApiToken::create(
                    UserId::random(),
                    None,
                    name,
                    [Action::ReadSchedule],
                    Duration::days(1),
                    now()
                )
                .err(),
                Some(ApiTokenError::BadName),
                "{name:?}"
            );
        }
    }
}
