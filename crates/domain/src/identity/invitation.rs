//! Invitations and password-reset links: single-use, expiring secrets
//! (security goals G8, G22).
//!
//! Who may invite whom (issue 3):
//! - the platform operator invites the owner of a new practice;
//! - a practice owner invites clinicians, supervisors and practice admins;
//! - a clinician, supervisor or owner invites a client (for a client record
//!   that already exists in the practice).
//!
//! The link carries a [`SecretToken`]; the store keeps only its hash, the
//! role and the practice. Redemption checks the token in constant time,
//! refuses expired or used invitations, and marks it used; the store must
//! persist that with a conditional update (`... WHERE redeemed_at IS NULL`) so
//! that 32 parallel redemptions give exactly one success.
//!
//! A password reset changes the password only: the session created after a
//! reset still has to complete the second factor ([`PasswordReset`] never
//! carries MFA state), and the reset ends every other session of the user.

use crate::access::Role;
use crate::identity::token::{SecretToken, TokenHash};
use crate::ids::{ClientId, PracticeId, UserId};
use chrono::{DateTime, Duration, Utc};

/// How long an invitation link stays valid.
pub const INVITATION_TTL_HOURS: i64 = 72;
/// How long a password-reset link stays valid (ASVS: short-lived).
pub const RESET_TTL_MINUTES: i64 = 30;

/// Why an invitation or reset could not be issued or redeemed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvitationError {
    #[error("invitation: a {inviter} may not invite a {invitee}")]
    RoleNotPermitted {
        inviter: &'static str,
        invitee: &'static str,
    },
    #[error("invitation: a client invitation must name the client record")]
    MissingClient,
    #[error("invitation: only client invitations name a client record")]
    UnexpectedClient,
    #[error("invitation: the inviter belongs to no practice")]
    NoPractice,
    #[error("invitation: the e-mail address is empty or malformed")]
    BadEmail,
    #[error("link: not valid (unknown, mistyped or for another purpose)")]
    TokenMismatch,
    #[error("link: has expired")]
    Expired,
    #[error("link: has already been used")]
    AlreadyUsed,
}

/// Whether `inviter` may invite someone to be `invitee`.
pub fn may_invite(inviter: Role, invitee: Role) -> bool {
    match inviter {
        Role::Operator => invitee == Role::PracticeOwner,
        Role::PracticeOwner => matches!(
            invitee,
            Role::Clinician | Role::Supervisor | Role::PracticeAdmin | Role::Client
        ),
        Role::Clinician | Role::Supervisor => invitee == Role::Client,
        Role::PracticeAdmin | Role::Client => false,
    }
}

/// Who is issuing an invitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inviter {
    pub user_id: UserId,
    pub role: Role,
    pub practice_id: Option<PracticeId>,
}

/// An invitation as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    pub token_hash: TokenHash,
    /// The practice the new account joins.
    pub practice_id: PracticeId,
    pub invited_by: UserId,
    pub role: Role,
    /// For client invitations: the client record the account will be.
    pub client_id: Option<ClientId>,
    /// Lower-cased, trimmed address the link was sent to.
    pub email: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub redeemed_at: Option<DateTime<Utc>>,
}

/// What a redeemed invitation grants: an account with this role in this practice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedInvitation {
    pub practice_id: PracticeId,
    pub role: Role,
    pub client_id: Option<ClientId>,
    pub email: String,
}

/// The one canonical form of an e-mail address for storage and sign-in
/// look-ups (G20): Unicode NFC, trimmed, lower-cased; minimal shape check.
pub fn normalise_email(email: &str) -> Result<String, InvitationError> {
    use unicode_normalization::UnicodeNormalization;
    let e = email.trim().nfc().collect::<String>().to_lowercase();
    let mut parts = e.split('@');
    let ok = matches!((parts.next(), parts.next(), parts.next()),
        (Some(local), Some(domain), None) if !local.is_empty() && domain.contains('.')
            && !domain.starts_with('.') && !domain.ends_with('.'))
        && e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(e)
    } else {
        Err(InvitationError::BadEmail)
    }
}

impl Invitation {
    /// Issue an invitation. For an operator inviting a practice owner the
    /// practice is `target_practice`; otherwise it is the inviter's own.
    pub fn issue(
        inviter: &Inviter,
        role: Role,
        email: &str,
        client_id: Option<ClientId>,
        target_practice: Option<PracticeId>,
        now: DateTime<Utc>,
    ) -> Result<(Self, SecretToken), InvitationError> {
        if !may_invite(inviter.role, role) {
            return Err(InvitationError::RoleNotPermitted {
                inviter: inviter.role.as_str(),
                invitee: role.as_str(),
            });
        }
        match (role, client_id) {
            (Role::Client, None) => return Err(InvitationError::MissingClient),
            (r, Some(_)) if r != Role::Client => return Err(InvitationError::UnexpectedClient),
            _ => {}
        }
        let practice_id = if inviter.role == Role::Operator {
            target_practice
        } else {
            inviter.practice_id
        }
        .ok_or(InvitationError::NoPractice)?;
        let email = normalise_email(email)?;
        let token = SecretToken::generate();
        Ok((
            Self {
                token_hash: token.hash(),
                practice_id,
                invited_by: inviter.user_id,
                role,
                client_id,
                email,
                created_at: now,
                expires_at: now + Duration::hours(INVITATION_TTL_HOURS),
                redeemed_at: None,
            },
            token,
        ))
    }

    /// Redeem with the token from the link. Marks the invitation used.
    pub fn redeem(
        &mut self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<AcceptedInvitation, InvitationError> {
        check_one_time(
            &self.token_hash,
            self.expires_at,
            self.redeemed_at,
            presented,
            now,
        )?;
        self.redeemed_at = Some(now);
        Ok(AcceptedInvitation {
            practice_id: self.practice_id,
            role: self.role,
            client_id: self.client_id,
            email: self.email.clone(),
        })
    }
}

/// A password-reset request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordReset {
    pub token_hash: TokenHash,
    pub user_id: UserId,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

impl PasswordReset {
    pub fn issue(user_id: UserId, now: DateTime<Utc>) -> (Self, SecretToken) {
        let token = SecretToken::generate();
        (
            Self {
                token_hash: token.hash(),
                user_id,
                created_at: now,
                expires_at: now + Duration::minutes(RESET_TTL_MINUTES),
                used_at: None,
            },
            token,
        )
    }

    /// Redeem: returns the user whose password may now be set. The caller
    /// sets the password, ends all the user's sessions, and signs them in
    /// with a session that still requires the second factor.
    pub fn redeem(
        &mut self,
        presented: &str,
        now: DateTime<Utc>,
    ) -> Result<UserId, InvitationError> {
        check_one_time(
            &self.token_hash,
            self.expires_at,
            self.used_at,
            presented,
            now,
        )?;
        self.used_at = Some(now);
        Ok(self.user_id)
    }
}

fn check_one_time(
    stored: &TokenHash,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    presented: &str,
    now: DateTime<Utc>,
) -> Result<(), InvitationError> {
    let token = SecretToken::parse(presented).map_err(|_| InvitationError::TokenMismatch)?;
    if !stored.ct_eq(&token.hash()) {
        return Err(InvitationError::TokenMismatch);
    }
    if used_at.is_some() {
        return Err(InvitationError::AlreadyUsed);
    }
    if now >= expires_at {
        return Err(InvitationError::Expired);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 0).single().unwrap()
    }

    fn inviter(role: Role) -> Inviter {
        Inviter {
            user_id: UserId::random(),
            role,
            practice_id: (role != Role::Operator).then(PracticeId::random),
        }
    }

    #[test]
    fn who_may_invite_whom() {
        let expected = [
            (Role::Operator, vec![Role::PracticeOwner]),
            (
                Role::PracticeOwner,
                vec![
                    Role::Clinician,
                    Role::Supervisor,
                    Role::PracticeAdmin,
                    Role::Client,
                ],
            ),
            (Role::Clinician, vec![Role::Client]),
            (Role::Supervisor, vec![Role::Client]),
            (Role::PracticeAdmin, vec![]),
            (Role::Client, vec![]),
        ];
        for (inviter, allowed) in expected {
            for invitee in Role::ALL {
                assert_eq!(
                    may_invite(inviter, invitee),
                    allowed.contains(&invitee),
                    "{inviter:?} → {invitee:?}"
                );
            }
        }
        // Nobody can invite an operator or a second... operator.
        assert!(Role::ALL.iter().all(|r| !may_invite(*r, Role::Operator)));
    }

    #[test]
    fn issue_checks_role_client_and_email() {
        let owner = inviter(Role::PracticeOwner);
        let clinician = inviter(Role::Clinician);
        assert!(matches!(
            Invitation::issue(&clinician, Role::Clinician, "a@b.org", None, None, now()),
            Err(InvitationError::RoleNotPermitted { .. })
        ));
        assert_eq!(
            Invitation::issue(&clinician, Role::Client, "a@b.org", None, None, now()).err(),
            Some(InvitationError::MissingClient)
        );
        assert_eq!(
            Invitation::issue(
                &owner,
                Role::Clinician,
                "a@b.org",
                Some(ClientId::random()),
                None,
                now()
            )
            .err(),
            Some(InvitationError::UnexpectedClient)
        );
        for bad in [
            "",
            "no-at",
            "a@b",
            "a@@b.org",
            "a b@c.org",
            "@b.org",
            "a@.org",
            &format!("{}@b.org", "a".repeat(300)),
        ] {
            assert_eq!(
                Invitation::issue(&owner, Role::Clinician, bad, None, None, now()).err(),
                Some(InvitationError::BadEmail),
                "{bad:.20}"
            );
        }
        let (inv, token) = Invitation::issue(
            &owner,
            Role::Clinician,
            "  New.Person@Example.ORG ",
            None,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(inv.email, "new.person@example.org");
        assert_eq!(Some(inv.practice_id), owner.practice_id);
        assert_eq!(inv.token_hash, token.hash());
        assert_eq!(inv.expires_at, now() + Duration::hours(72));
        // Operator invites an owner into the practice it names, or fails.
        let op = inviter(Role::Operator);
        let p = PracticeId::random();
        let (inv, _) =
            Invitation::issue(&op, Role::PracticeOwner, "o@x.org", None, Some(p), now()).unwrap();
        assert_eq!(inv.practice_id, p);
        assert_eq!(
            Invitation::issue(&op, Role::PracticeOwner, "o@x.org", None, None, now()).err(),
            Some(InvitationError::NoPractice)
        );
    }

    #[test]
    fn redeem_exactly_once_before_expiry() {
        let owner = inviter(Role::PracticeOwner);
        let (mut inv, token) =
            Invitation::issue(&owner, Role::Supervisor, "s@x.org", None, None, now()).unwrap();
        // Wrong and malformed tokens do not consume the invitation.
        let wrong = SecretToken::generate();
        assert_eq!(
            inv.redeem(wrong.expose(), now()).err(),
            Some(InvitationError::TokenMismatch)
        );
        assert_eq!(
            inv.redeem("garbage", now()).err(),
            Some(InvitationError::TokenMismatch)
        );
        assert_eq!(
            inv.redeem("", now()).err(),
            Some(InvitationError::TokenMismatch)
        );
        let accepted = inv
            .redeem(token.expose(), now() + Duration::hours(1))
            .unwrap();
        assert_eq!(accepted.role, Role::Supervisor);
        assert_eq!(
            inv.redeem(token.expose(), now() + Duration::hours(2)).err(),
            Some(InvitationError::AlreadyUsed)
        );
        let (mut late, token) =
            Invitation::issue(&owner, Role::Supervisor, "s@x.org", None, None, now()).unwrap();
        assert_eq!(
            late.redeem(
                token.expose(),
                now() + Duration::hours(INVITATION_TTL_HOURS)
            )
            .err(),
            Some(InvitationError::Expired)
        );
        assert_eq!(late.redeemed_at, None);
    }

    #[test]
    fn client_invitation_carries_the_client_record() {
        let clinician = inviter(Role::Clinician);
        let c = ClientId::random();
        let (mut inv, token) =
            Invitation::issue(&clinician, Role::Client, "c@x.org", Some(c), None, now()).unwrap();
        let accepted = inv.redeem(token.expose(), now()).unwrap();
        assert_eq!(accepted.client_id, Some(c));
        assert_eq!(accepted.role, Role::Client);
    }

    #[test]
    fn password_reset_is_short_lived_and_single_use() {
        let user = UserId::random();
        let (mut reset, token) = PasswordReset::issue(user, now());
        assert_eq!(
            reset.redeem(token.expose(), now() + Duration::minutes(29)),
            Ok(user)
        );
        assert_eq!(
            reset.redeem(token.expose(), now() + Duration::minutes(29)),
            Err(InvitationError::AlreadyUsed)
        );
        let (mut reset, token) = PasswordReset::issue(user, now());
        assert_eq!(
            reset.redeem(token.expose(), now() + Duration::minutes(30)),
            Err(InvitationError::Expired)
        );
        // An invitation token is no reset token.
        let owner = inviter(Role::PracticeOwner);
        let (_, inv_token) =
            Invitation::issue(&owner, Role::Clinician, "a@b.org", None, None, now()).unwrap();
        let (mut reset, _) = PasswordReset::issue(user, now());
        assert_eq!(
            reset.redeem(inv_token.expose(), now()),
            Err(InvitationError::TokenMismatch)
        );
    }

    #[test]
    fn emails_have_one_canonical_form() {
        assert_eq!(
            normalise_email(" Zoë@Example.org ").unwrap(),
            "zoë@example.org"
        );
        // Decomposed ë (e + combining diaeresis) is the same address.
        assert_eq!(
            normalise_email("Zoe\u{308}@example.org").unwrap(),
            normalise_email("zoë@example.org").unwrap()
        );
    }
}
