//! Random secrets that are handed to a person or browser once and stored only
//! as a SHA-256 hash: session tokens, invitation and reset links, API tokens.
//!
//! A stolen database therefore holds no usable token. Tokens carry 256 bits
//! from the operating system's CSPRNG (ASVS asks for at least 128), encoded
//! as 43 characters of unpadded base64url so they fit cookies and URLs.

use data_encoding::{BASE64URL_NOPAD, HEXLOWER};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Random bytes in every token.
pub const TOKEN_BYTES: usize = 32;
/// Length of the encoded token.
pub const TOKEN_CHARS: usize = 43;

/// A presented token that cannot be one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token: expected {TOKEN_CHARS} base64url characters, got {0} characters")]
    WrongLength(usize),
    #[error("token: contains a character outside the base64url alphabet")]
    BadCharacter,
    #[error("token hash: expected 64 lower-case hex digits")]
    BadHash,
}

/// A freshly generated secret token. Show or send it once; store [`TokenHash`].
/// `Debug` never prints the value.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct SecretToken(String);

impl SecretToken {
    /// A new token from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let token = Self(BASE64URL_NOPAD.encode(&bytes));
        bytes.zeroize();
        token
    }

    /// Check the shape of a token presented by a client (cookie, link, header)
    /// before it is hashed and looked up. Malformed input never reaches storage.
    pub fn parse(presented: &str) -> Result<Self, TokenError> {
        if presented.len() != TOKEN_CHARS {
            return Err(TokenError::WrongLength(presented.chars().count()));
        }
        match BASE64URL_NOPAD.decode(presented.as_bytes()) {
            Ok(bytes) if bytes.len() == TOKEN_BYTES => Ok(Self(presented.to_string())),
            _ => Err(TokenError::BadCharacter),
        }
    }

    /// The value to put in the cookie or link.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash to store and look up.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretToken(<redacted>)")
    }
}

/// SHA-256 of a token: what the database holds.
#[derive(Clone, Copy, Hash, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Hash any presented secret string.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, for TEXT columns.
    pub fn to_hex(&self) -> String {
        HEXLOWER.encode(&self.0)
    }

    pub fn from_hex(hex: &str) -> Result<Self, TokenError> {
        let bytes = HEXLOWER
            .decode(hex.as_bytes())
            .map_err(|_| TokenError::BadHash)?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| TokenError::BadHash)?;
        Ok(Self(arr))
    }

    /// Constant-time comparison (use this, not `==`, on secrets' hashes
    /// when the comparison itself could be timed by an attacker).
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate in logs; not enough to matter.
        let hex = self.to_hex();
        write!(f, "TokenHash({}…)", hex.get(..8).unwrap_or(""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_random_long_and_parse_back() {
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let t = SecretToken::generate();
            assert_eq!(t.expose().len(), TOKEN_CHARS);
            assert_eq!(SecretToken::parse(t.expose()).unwrap(), t);
            assert!(seen.insert(t.expose().to_string()), "duplicate token");
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let t = SecretToken::generate();
        let debug = format!("{t:?}");
        assert!(!debug.contains(t.expose()));
        let h = t.hash();
        assert!(!format!("{h:?}").contains(&h.to_hex()));
    }

    #[test]
    fn malformed_tokens_are_rejected_before_lookup() {
        let huge = "A".repeat(1_000_000);
        for bad in ["", "short", "%%%%", &huge, &"é".repeat(43), &"=".repeat(43)] {
            assert!(SecretToken::parse(bad).is_err(), "accepted {:.20}", bad);
        }
        // The 43rd character carries 4 data bits and 2 padding bits: only the
        // 16 canonical choices (padding bits zero) are accepted, so each token
        // has exactly one spelling.
        let mut s = SecretToken::generate().expose().to_string();
        s.pop();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let accepted = alphabet
            .chars()
            .filter(|c| SecretToken::parse(&format!("{s}{c}")).is_ok())
            .count();
        assert_eq!(accepted, 16);
    }

    #[test]
    fn hashes_round_trip_and_compare() {
        let t = SecretToken::generate();
        let h = t.hash();
        assert_eq!(TokenHash::from_hex(&h.to_hex()).unwrap(), h);
        assert!(h.ct_eq(&TokenHash::of(t.expose())));
        assert!(!h.ct_eq(&SecretToken::generate().hash()));
        assert!(TokenHash::from_hex("zz").is_err());
        assert!(TokenHash::from_hex(&"a".repeat(66)).is_err());
    }

    proptest::proptest! {
        /// Any presented string (cookie, header, link) parses or is refused; never panics.
        #[test]
        fn arbitrary_input_never_panics(input in ".{0,200}") {
            let _ = SecretToken::parse(&input);
            let _ = TokenHash::from_hex(&input);
        }
    }
}
