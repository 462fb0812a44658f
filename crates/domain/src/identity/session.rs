//! Server-side sessions (security goal G10).
//!
//! A session lives in the database; the browser holds only a random token
//! (in a `Secure; HttpOnly; SameSite=Lax` cookie) whose SHA-256 hash is the
//! session's key. A session ends after an idle period (staff 15 min, clients
//! 30 min) or an absolute lifetime (12 h), both configurable, and is ended by
//! sign-out, password change, MFA change or account disable (the store deletes
//! every session of that user; see [`EndReason`]). A new token is issued at
//! sign-in and again when the second factor completes ([`Session::rotate`]),
//! so a token planted before sign-in (session fixation) is worthless.

use crate::access::{Actor, BreakGlassGrant, CareLink, Role};
use crate::identity::token::{SecretToken, TokenHash};
use crate::ids::{ClientId, PracticeId, UserId};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Timeouts, configurable per site.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    pub staff_idle: Duration,
    pub client_idle: Duration,
    pub absolute: Duration,
}

impl Default for SessionPolicy {
    /// Staff 15 min idle, clients 30 min idle, everyone 12 h absolute.
    fn default() -> Self {
        Self {
            staff_idle: Duration::minutes(15),
            client_idle: Duration::minutes(30),
            absolute: Duration::hours(12),
        }
    }
}

impl SessionPolicy {
    /// The idle timeout that applies to a role.
    pub fn idle_for(&self, role: Role) -> Duration {
        if role.is_staff() {
            self.staff_idle
        } else {
            self.client_idle
        }
    }
}

/// Why a session ended; the store deletes the session (or all of the user's
/// sessions for the user-wide reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    IdleTimeout,
    AbsoluteTimeout,
    SignOut,
    PasswordChanged,
    MfaChanged,
    AccountDisabled,
}

impl EndReason {
    /// True when every session of the user must end, not only this one.
    pub fn ends_all_sessions_of_user(self) -> bool {
        matches!(
            self,
            EndReason::PasswordChanged | EndReason::MfaChanged | EndReason::AccountDisabled
        )
    }
}

/// Whether a session may still be used at an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Active,
    Expired(EndReason),
}

/// A session as stored (the token itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub token_hash: TokenHash,
    pub user_id: UserId,
    pub practice_id: Option<PracticeId>,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    /// Idle timeout fixed at creation.
    pub idle_timeout: Duration,
    /// The session ends at this instant whatever happens.
    pub absolute_deadline: DateTime<Utc>,
    /// The account had a second factor enrolled when the session started.
    pub mfa_enrolled: bool,
    /// The second factor was completed at this instant (staff must have it;
    /// clients who enrolled one too).
    pub mfa_completed_at: Option<DateTime<Utc>>,
    /// Last re-entry of a credential (for sensitive actions).
    pub reauthenticated_at: Option<DateTime<Utc>>,
}

impl Session {
    /// A new session at sign-in (password verified). Returns the session to
    /// store and the token to set in the cookie. `mfa_enrolled` comes from
    /// the account: whether it has a second factor.
    pub fn start(
        user_id: UserId,
        practice_id: Option<PracticeId>,
        role: Role,
        mfa_enrolled: bool,
        policy: &SessionPolicy,
        now: DateTime<Utc>,
    ) -> (Self, SecretToken) {
        let token = SecretToken::generate();
        let session = Self {
            token_hash: token.hash(),
            user_id,
            practice_id,
            role,
            created_at: now,
            last_seen_at: now,
            idle_timeout: policy.idle_for(role),
            absolute_deadline: now + policy.absolute,
            mfa_enrolled,
            mfa_completed_at: None,
            // Signing in is a credential entry.
            reauthenticated_at: Some(now),
        };
        (session, token)
    }

    /// Active, or why not. The idle and absolute limits are exclusive:
    /// at exactly `last_seen + idle` the session has expired.
    pub fn state(&self, now: DateTime<Utc>) -> SessionState {
        if now >= self.absolute_deadline {
            SessionState::Expired(EndReason::AbsoluteTimeout)
        } else if now >= self.last_seen_at + self.idle_timeout {
            SessionState::Expired(EndReason::IdleTimeout)
        } else {
            SessionState::Active
        }
    }

    pub fn is_valid(&self, now: DateTime<Utc>) -> bool {
        self.state(now) == SessionState::Active
    }

    /// Record activity. Refuses (and changes nothing) when already expired,
    /// so an expired session can never be revived. Time never moves backwards.
    pub fn touch(&mut self, now: DateTime<Utc>) -> Result<(), EndReason> {
        match self.state(now) {
            SessionState::Active => {
                if now > self.last_seen_at {
                    self.last_seen_at = now;
                }
                Ok(())
            }
            SessionState::Expired(reason) => Err(reason),
        }
    }

    /// The second factor was verified (or a first one enrolled and its
    /// first code verified): mark it and issue a fresh token (the caller
    /// replaces the stored hash and the cookie).
    pub fn complete_mfa(&mut self, now: DateTime<Utc>) -> SecretToken {
        self.mfa_completed_at = Some(now);
        self.mfa_enrolled = true;
        self.reauthenticated_at = Some(now);
        self.rotate()
    }

    /// A credential was re-entered for a sensitive action.
    pub fn reauthenticate(&mut self, now: DateTime<Utc>) {
        self.reauthenticated_at = Some(now);
    }

    /// Replace the token (privilege change). The old token stops working as
    /// soon as the store saves the new hash.
    pub fn rotate(&mut self) -> SecretToken {
        let token = SecretToken::generate();
        self.token_hash = token.hash();
        token
    }

    /// Staff, and clients who enrolled a factor, need it completed before
    /// anything but enrolling a first factor.
    pub fn mfa_satisfied(&self) -> bool {
        self.mfa_completed_at.is_some() || (!self.role.is_staff() && !self.mfa_enrolled)
    }

    /// The [`Actor`] for a request made with this session. The caller loads
    /// the user's client record id (clients), care relationships, break-glass
    /// grants and admin grant from the store.
    pub fn actor(
        &self,
        client_id: Option<ClientId>,
        relationships: Vec<CareLink>,
        break_glass: Vec<BreakGlassGrant>,
        granted_clinical_access: bool,
        now: DateTime<Utc>,
    ) -> Actor {
        Actor {
            user_id: self.user_id,
            practice_id: self.practice_id,
            role: self.role,
            mfa_satisfied: self.mfa_satisfied(),
            mfa_enrolled: self.mfa_enrolled,
            reauthenticated_at: self.reauthenticated_at,
            client_id: if self.role == Role::Client {
                client_id
            } else {
                None
            },
            relationships,
            break_glass,
            granted_clinical_access: granted_clinical_access && self.role == Role::PracticeAdmin,
            now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, FixedClock};
    use chrono::TimeZone;

    fn start(role: Role, clock: &FixedClock) -> (Session, SecretToken) {
        Session::start(
            UserId::random(),
            Some(PracticeId::random()),
            role,
            role.is_staff(),
            &SessionPolicy::default(),
            clock.now(),
        )
    }

    fn clock() -> FixedClock {
        FixedClock::new(Utc.with_ymd_and_hms(2026, 5, 4, 8, 0, 0).single().unwrap())
    }

    #[test]
    fn staff_idle_timeout_is_15_minutes() {
        let c = clock();
        let (mut s, _) = start(Role::Clinician, &c);
        c.advance(Duration::minutes(14) + Duration::seconds(59));
        assert!(s.is_valid(c.now()));
        assert!(s.touch(c.now()).is_ok());
        // Activity resets the idle timer.
        c.advance(Duration::minutes(14));
        assert!(s.is_valid(c.now()));
        c.advance(Duration::minutes(1));
        assert_eq!(
            s.state(c.now()),
            SessionState::Expired(EndReason::IdleTimeout)
        );
        assert_eq!(s.touch(c.now()), Err(EndReason::IdleTimeout));
        // An expired session is not revived by touching it.
        assert!(!s.is_valid(c.now()));
    }

    #[test]
    fn client_idle_timeout_is_30_minutes() {
        let c = clock();
        let (s, _) = start(Role::Client, &c);
        c.advance(Duration::minutes(29));
        assert!(s.is_valid(c.now()));
        c.advance(Duration::minutes(1));
        assert!(!s.is_valid(c.now()));
    }

    #[test]
    fn absolute_timeout_ends_even_an_active_session_at_12_hours() {
        let c = clock();
        let (mut s, _) = start(Role::Clinician, &c);
        for _ in 0..(12 * 6 - 1) {
            c.advance(Duration::minutes(10));
            s.touch(c.now()).unwrap();
        }
        // 11 h 50 min of steady activity: still valid.
        assert!(s.is_valid(c.now()));
        c.advance(Duration::minutes(10));
        assert_eq!(s.touch(c.now()), Err(EndReason::AbsoluteTimeout));
    }

    #[test]
    fn timeouts_are_configurable() {
        let c = clock();
        let policy = SessionPolicy {
            staff_idle: Duration::minutes(5),
            client_idle: Duration::minutes(60),
            absolute: Duration::hours(1),
        };
        let (s, _) = Session::start(
            UserId::random(),
            None,
            Role::PracticeAdmin,
            true,
            &policy,
            c.now(),
        );
        assert_eq!(s.idle_timeout, Duration::minutes(5));
        assert!(!s.is_valid(c.now() + Duration::minutes(5)));
        let (s, _) = Session::start(
            UserId::random(),
            None,
            Role::Client,
            false,
            &policy,
            c.now(),
        );
        assert!(s.is_valid(c.now() + Duration::minutes(59)));
        assert!(!s.is_valid(c.now() + Duration::minutes(60)));
    }

    #[test]
    fn clock_going_backwards_does_not_extend_a_session() {
        let c = clock();
        let (mut s, _) = start(Role::Clinician, &c);
        c.advance(Duration::minutes(10));
        s.touch(c.now()).unwrap();
        let seen = s.last_seen_at;
        s.touch(c.now() - Duration::minutes(5)).unwrap();
        assert_eq!(s.last_seen_at, seen);
    }

    #[test]
    fn token_is_stored_only_as_hash_and_rotates_on_mfa() {
        let c = clock();
        let (mut s, token) = start(Role::Clinician, &c);
        assert_eq!(s.token_hash, token.hash());
        assert!(!format!("{s:?}").contains(token.expose()));
        assert!(!s.mfa_satisfied());
        let new = s.complete_mfa(c.now());
        assert_ne!(new, token);
        assert_eq!(s.token_hash, new.hash());
        assert!(
            !s.token_hash.ct_eq(&token.hash()),
            "old token must stop working"
        );
        assert!(s.mfa_satisfied());
        // Every sign-in gets a different token.
        let (_, other) = start(Role::Clinician, &c);
        assert_ne!(other, token);
    }

    #[test]
    fn actor_from_session_carries_mfa_and_reauth_state() {
        use crate::access::{authorize, Action, CareRole, Decision, Resource};
        let c = clock();
        let (mut s, _) = start(Role::Clinician, &c);
        let client = ClientId::random();
        let rel = vec![CareLink {
            client_id: client,
            kind: CareRole::Treating,
        }];
        let practice = s.practice_id.unwrap();
        let record = Resource::client_record(practice, client);
        let actor = s.actor(Some(client), rel.clone(), vec![], true, c.now());
        assert_eq!(actor.client_id, None, "staff are not a client record");
        assert!(
            !actor.granted_clinical_access,
            "grants apply to admins only"
        );
        assert_eq!(
            authorize(&actor, Action::ReadNotes, &record),
            Decision::RequiresMfa
        );
        s.complete_mfa(c.now());
        let actor = s.actor(None, rel.clone(), vec![], false, c.now());
        assert_eq!(
            authorize(&actor, Action::ReadNotes, &record),
            Decision::Allow
        );
        c.advance(Duration::minutes(6));
        let actor = s.actor(None, rel, vec![], false, c.now());
        assert_eq!(
            authorize(&actor, Action::ExportClientRecord, &record),
            Decision::RequiresReauth
        );
    }

    #[test]
    fn clients_who_enrolled_a_factor_must_complete_it() {
        let c = clock();
        let (mut s, _) = Session::start(
            UserId::random(),
            None,
            Role::Client,
            true,
            &SessionPolicy::default(),
            c.now(),
        );
        assert!(!s.mfa_satisfied());
        s.complete_mfa(c.now());
        assert!(s.mfa_satisfied());
        // A staff member with nothing enrolled is not satisfied either.
        let (s, _) = Session::start(
            UserId::random(),
            None,
            Role::Clinician,
            false,
            &SessionPolicy::default(),
            c.now(),
        );
        assert!(!s.mfa_satisfied());
    }

    #[test]
    fn clients_need_no_second_factor_and_user_wide_reasons_are_marked() {
        let c = clock();
        let (s, _) = start(Role::Client, &c);
        assert!(s.mfa_satisfied());
        assert!(EndReason::PasswordChanged.ends_all_sessions_of_user());
        assert!(EndReason::AccountDisabled.ends_all_sessions_of_user());
        assert!(EndReason::MfaChanged.ends_all_sessions_of_user());
        assert!(!EndReason::SignOut.ends_all_sessions_of_user());
    }
}
