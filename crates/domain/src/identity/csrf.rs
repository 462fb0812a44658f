//! CSRF protection for every state-changing request made with a session
//! cookie (security goal G10).
//!
//! The token is derived, not stored: `base64url(HMAC-SHA-256(key, "tapestry-csrf-v1" ‖ session token hash))`.
//! The key is a 32-byte server secret (kept with the encryption key file);
//! the session token hash is the session's database key. Forms carry the
//! token in a hidden field, `fetch` calls in an `X-CSRF-Token` header; the
//! server recomputes and compares in constant time. A token from one session
//! is useless in another, and it changes whenever the session token rotates.
//! This is in addition to `SameSite` cookies, not instead of them.

use crate::identity::token::TokenHash;
use data_encoding::BASE64URL_NOPAD;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

const DOMAIN: &[u8] = b"tapestry-csrf-v1";

/// Why a request's CSRF token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsrfError {
    #[error("csrf token: missing")]
    Missing,
    #[error("csrf token: does not match this session")]
    Mismatch,
    #[error("csrf key: must be 32 bytes")]
    BadKey,
}

/// The server's CSRF key. Redacted `Debug`, wiped on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct CsrfKey([u8; 32]);

impl CsrfKey {
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        OsRng.fill_bytes(&mut k);
        Self(k)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CsrfError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| CsrfError::BadKey)?;
        Ok(Self(arr))
    }

    /// The token for a session.
    pub fn token_for(&self, session: &TokenHash) -> String {
        BASE64URL_NOPAD.encode(&self.mac(session))
    }

    /// Check a presented token for a session in constant time.
    pub fn verify(&self, session: &TokenHash, presented: Option<&str>) -> Result<(), CsrfError> {
        let presented = presented
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .ok_or(CsrfError::Missing)?;
        let expected = self.token_for(session);
        if bool::from(expected.as_bytes().ct_eq(presented.as_bytes())) {
            Ok(())
        } else {
            Err(CsrfError::Mismatch)
        }
    }

    fn mac(&self, session: &TokenHash) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.0) else {
            // HMAC accepts keys of any length; this branch cannot be taken.
            return [0u8; 32];
        };
        mac.update(DOMAIN);
        mac.update(session.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for CsrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::token::SecretToken;

    #[test]
    fn token_verifies_for_its_session_only() {
        let key = CsrfKey::generate();
        let s1 = SecretToken::generate().hash();
        let s2 = SecretToken::generate().hash();
        let t1 = key.token_for(&s1);
        assert_eq!(t1.len(), 43);
        assert_eq!(key.verify(&s1, Some(&t1)), Ok(()));
        assert_eq!(key.verify(&s2, Some(&t1)), Err(CsrfError::Mismatch));
        // Another server key gives another token.
        assert_eq!(
            CsrfKey::generate().verify(&s1, Some(&t1)),
            Err(CsrfError::Mismatch)
        );
        // Deterministic: the same session always gets the same token.
        assert_eq!(key.token_for(&s1), t1);
    }

    #[test]
    fn missing_empty_and_malformed_tokens_are_refused() {
        let key = CsrfKey::generate();
        let s = SecretToken::generate().hash();
        assert_eq!(key.verify(&s, None), Err(CsrfError::Missing));
        assert_eq!(key.verify(&s, Some("")), Err(CsrfError::Missing));
        assert_eq!(key.verify(&s, Some("   ")), Err(CsrfError::Missing));
        let t = key.token_for(&s);
        let truncated = &t[..42];
        let huge = "A".repeat(100_000);
        for bad in [truncated, &huge, "<script>", &t.to_uppercase()] {
            assert_eq!(
                key.verify(&s, Some(bad)),
                Err(CsrfError::Mismatch),
                "{bad:.12}"
            );
        }
    }

    #[test]
    fn key_is_redacted_and_length_checked() {
        let key = CsrfKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!(format!("{key:?}"), "CsrfKey(<redacted>)");
        assert_eq!(
            CsrfKey::from_bytes(&[0u8; 31]).err(),
            Some(CsrfError::BadKey)
        );
        assert_eq!(CsrfKey::from_bytes(&[]).err(), Some(CsrfError::BadKey));
    }
}
