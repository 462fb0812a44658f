//! Passwords: the policy a new password must meet, and how it is stored.
//!
//! Policy (NIST SP 800-63B §3.1.1.2 / OWASP ASVS 5.0 V6.2, security goal G9):
//! - Unicode is accepted and normalised with NFKC, so the same password typed
//!   on different keyboards hashes the same; length counts code points.
//! - At least [`MIN_LENGTH`] characters (the UI recommends [`RECOMMENDED_LENGTH`]),
//!   at most [`MAX_LENGTH`] (well above the required 64).
//! - No composition rules (no "one digit, one symbol").
//! - Rejected: passwords on the shipped common-password list (also with up to
//!   four digits or symbols appended), a single repeated character, a straight
//!   keyboard-order run such as `12345678` or `abcdefgh`, and passwords that
//!   contain the person's e-mail name, their name or the service name.
//!
//! Storage: Argon2id, version 0x13, m = [`ARGON2_M_KIB`] KiB, t = [`ARGON2_T`],
//! p = [`ARGON2_P`] (the OWASP minimum), 16-byte random salt, PHC string format,
//! so every stored hash carries its own parameters and can be upgraded on the
//! next successful sign-in ([`needs_rehash`]). [`verify_unknown_user`] spends
//! the same work as a real verification so an unknown e-mail address takes as
//! long as a wrong password.

use crate::content::ContentFile;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::collections::HashSet;
use std::fmt;
use std::sync::OnceLock;
use unicode_normalization::UnicodeNormalization;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Minimum length in Unicode code points (NIST 800-63B).
pub const MIN_LENGTH: usize = 8;
/// Length the sign-up form recommends (ASVS 5.0: 15).
pub const RECOMMENDED_LENGTH: usize = 15;
/// Maximum accepted length in code points (NIST: at least 64).
pub const MAX_LENGTH: usize = 256;
/// Argon2id memory cost in KiB (19 MiB, OWASP minimum).
pub const ARGON2_M_KIB: u32 = 19_456;
/// Argon2id iterations.
pub const ARGON2_T: u32 = 2;
/// Argon2id parallelism.
pub const ARGON2_P: u32 = 1;
/// Where the common-password list lives under `content/`.
pub const COMMON_PASSWORDS_PATH: &str = "security/common-passwords.txt";
/// Words specific to this service that may not appear in a password.
pub const SERVICE_WORDS: [&str; 2] = ["tapestry", "therapy"];

/// Why a new password was refused. Messages are safe to show to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    #[error("password: must be at least {min} characters (has {actual})")]
    TooShort { min: usize, actual: usize },
    #[error("password: must be at most {max} characters (has {actual})")]
    TooLong { max: usize, actual: usize },
    #[error("password: contains a control character")]
    ControlCharacter,
    #[error("password: is on the list of commonly used passwords")]
    Common,
    #[error("password: is a repeated or sequential run of characters")]
    Repetitive,
    #[error("password: contains your {0}")]
    ContainsIdentity(&'static str),
}

/// A stored hash that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordHashError {
    #[error("password hash: not a valid PHC string ({0})")]
    Malformed(String),
    #[error("password hash: algorithm '{0}' is not supported")]
    UnsupportedAlgorithm(String),
    #[error("password hash: hashing failed ({0})")]
    Hashing(String),
}

/// Personal words a password may not contain.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
}

/// A password that has been NFKC-normalised. Wiped from memory on drop;
/// `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct NormalizedPassword(String);

impl NormalizedPassword {
    pub fn new(raw: &str) -> Self {
        Self(raw.nfkc().collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Length in Unicode code points.
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }
}

impl fmt::Debug for NormalizedPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NormalizedPassword(<redacted>)")
    }
}

/// The password policy with its list of common passwords.
#[derive(Debug, Clone, Default)]
pub struct PasswordPolicy {
    common: HashSet<String>,
}

impl PasswordPolicy {
    /// A policy whose common-password list is `text`: one password per line,
    /// `#` starts a comment line, blank lines ignored, compared lower-case.
    pub fn from_list(text: &str) -> Self {
        let common = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.nfkc().collect::<String>().to_lowercase())
            .collect();
        Self { common }
    }

    /// A policy built from content files (the embedded set or a site's own).
    pub fn from_content(files: &[ContentFile]) -> Self {
        let text: String = files
            .iter()
            .filter(|f| f.path == COMMON_PASSWORDS_PATH)
            .map(|f| f.text.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Self::from_list(&text)
    }

    /// The policy with the list shipped in `content/`, built once.
    pub fn embedded() -> &'static PasswordPolicy {
        static POLICY: OnceLock<PasswordPolicy> = OnceLock::new();
        POLICY.get_or_init(|| {
            Self::from_content(&crate::content::embedded_under(COMMON_PASSWORDS_PATH))
        })
    }

    /// How many passwords the list holds.
    pub fn common_count(&self) -> usize {
        self.common.len()
    }

    /// Check a new password; on success return it normalised, ready to hash.
    pub fn check(
        &self,
        raw: &str,
        context: &PasswordContext<'_>,
    ) -> Result<NormalizedPassword, PasswordRejected> {
        // Refuse absurd input before normalising it (NFKC can expand text).
        let raw_chars = raw.chars().count();
        if raw_chars > MAX_LENGTH * 4 {
            return Err(PasswordRejected::TooLong {
                max: MAX_LENGTH,
                actual: raw_chars,
            });
        }
        let pw = NormalizedPassword::new(raw);
        let n = pw.chars();
        if n < MIN_LENGTH {
            return Err(PasswordRejected::TooShort {
                min: MIN_LENGTH,
                actual: n,
            });
        }
        if n > MAX_LENGTH {
            return Err(PasswordRejected::TooLong {
                max: MAX_LENGTH,
                actual: n,
            });
        }
        if pw.as_str().chars().any(char::is_control) {
            return Err(PasswordRejected::ControlCharacter);
        }
        let lower = pw.as_str().to_lowercase();
        if self.is_common(&lower) {
            return Err(PasswordRejected::Common);
        }
        if is_repetitive(&lower) {
            return Err(PasswordRejected::Repetitive);
        }
        if let Some(email) = context.email {
            let email = email.nfkc().collect::<String>().to_lowercase();
            let local = email.split('@').next().unwrap_or("");
            let mut words = vec![local];
            words.extend(local.split(['.', '_', '-', '+']));
            if contains_any(&lower, &words) {
                return Err(PasswordRejected::ContainsIdentity("e-mail address"));
            }
        }
        if let Some(name) = context.name {
            let name = name.nfkc().collect::<String>().to_lowercase();
            let words: Vec<&str> = name.split(|c: char| !c.is_alphanumeric()).collect();
            if contains_any(&lower, &words) {
                return Err(PasswordRejected::ContainsIdentity("name"));
            }
        }
        if contains_any(&lower, &SERVICE_WORDS) {
            return Err(PasswordRejected::ContainsIdentity("service name"));
        }
        Ok(pw)
    }

    /// On the list as typed, or a listed password with up to four digits or
    /// symbols added at the end or the start ("baseball1!", "2024football").
    fn is_common(&self, lower: &str) -> bool {
        if self.common.contains(lower) {
            return true;
        }
        let decoration = |c: char| c.is_ascii_digit() || c.is_ascii_punctuation() || c == ' ';
        let chars: Vec<char> = lower.chars().collect();
        for cut in 1..=4usize.min(chars.len()) {
            let (head, tail) = chars.split_at(chars.len() - cut);
            if tail.iter().all(|c| decoration(*c)) {
                let base: String = head.iter().collect();
                if self.common.contains(&base) {
                    return true;
                }
            }
            let (head, tail) = chars.split_at(cut);
            if head.iter().all(|c| decoration(*c)) {
                let base: String = tail.iter().collect();
                if self.common.contains(&base) {
                    return true;
                }
            }
        }
        false
    }
}

fn contains_any(haystack: &str, words: &[&str]) -> bool {
    words
        .iter()
        .filter(|w| w.chars().count() >= 4)
        .any(|w| haystack.contains(*w))
}

/// One character repeated, or a run whose code points step by +1 or -1.
fn is_repetitive(lower: &str) -> bool {
    let chars: Vec<u32> = lower.chars().map(u32::from).collect();
    let steps: Vec<i64> = chars
        .windows(2)
        .map(|w| i64::from(w[1]) - i64::from(w[0]))
        .collect();
    match steps.first() {
        Some(first) if matches!(first, -1..=1) => steps.iter().all(|s| s == first),
        _ => false,
    }
}

/// The Argon2 parameters a stored hash was made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredParams {
    pub algorithm_is_argon2id: bool,
    pub version: u32,
    pub m_kib: u32,
    pub t: u32,
    pub p: u32,
}

fn hasher() -> Result<Argon2<'static>, PasswordHashError> {
    let params = Params::new(ARGON2_M_KIB, ARGON2_T, ARGON2_P, None)
        .map_err(|e| PasswordHashError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hash a (policy-checked) password for storage. Returns a PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub fn hash_password(password: &NormalizedPassword) -> Result<String, PasswordHashError> {
    let salt = SaltString::generate(&mut OsRng);
    hasher()?
        .hash_password(password.as_str().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordHashError::Hashing(e.to_string()))
}

/// Does `presented` (as typed at sign-in; normalised here) match `stored`?
/// Uses the parameters recorded in the stored hash.
pub fn verify_password(presented: &str, stored: &str) -> Result<bool, PasswordHashError> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| PasswordHashError::Malformed(e.to_string()))?;
    if parsed.algorithm != argon2::ARGON2ID_IDENT {
        return Err(PasswordHashError::UnsupportedAlgorithm(
            parsed.algorithm.to_string(),
        ));
    }
    let pw = NormalizedPassword::new(presented);
    Ok(Argon2::default()
        .verify_password(pw.as_str().as_bytes(), &parsed)
        .is_ok())
}

/// Spend the same work as [`verify_password`] for a sign-in attempt with an
/// unknown e-mail address, and answer `false`. The caller then returns the
/// same error as for a wrong password.
pub fn verify_unknown_user(presented: &str) -> bool {
    if let Some(stored) = dummy_hash() {
        // The result is ignored on purpose: there is no account.
        let _ = verify_password(presented, stored);
    }
    false
}

fn dummy_hash() -> Option<&'static String> {
    static DUMMY: OnceLock<Option<String>> = OnceLock::new();
    DUMMY
        .get_or_init(|| {
            hash_password(&NormalizedPassword::new("no account has this password")).ok()
        })
        .as_ref()
}

/// Compute the dummy hash used by [`verify_unknown_user`] now, so that the
/// first unknown-user sign-in after start-up is not slower (call at start-up).
pub fn prepare_unknown_user_check() {
    let _ = dummy_hash();
}

/// The parameters recorded in a stored hash (for G9 checks and upgrades).
pub fn stored_params(stored: &str) -> Result<StoredParams, PasswordHashError> {
    let parsed =
        PasswordHash::new(stored).map_err(|e| PasswordHashError::Malformed(e.to_string()))?;
    let params =
        Params::try_from(&parsed).map_err(|e| PasswordHashError::Malformed(e.to_string()))?;
    Ok(StoredParams {
        algorithm_is_argon2id: parsed.algorithm == argon2::ARGON2ID_IDENT,
        version: parsed.version.unwrap_or(0),
        m_kib: params.m_cost(),
        t: params.t_cost(),
        p: params.p_cost(),
    })
}

/// True when a stored hash is weaker than the current parameters (or not
/// Argon2id, or unparsable): rehash after the next successful sign-in.
pub fn needs_rehash(stored: &str) -> bool {
    match stored_params(stored) {
        Ok(p) => {
            !p.algorithm_is_argon2id
                || p.version != 0x13
                || p.m_kib < ARGON2_M_KIB
                || p.t < ARGON2_T
                || p.p < ARGON2_P
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> &'static PasswordPolicy {
        PasswordPolicy::embedded()
    }

    fn check(pw: &str) -> Result<NormalizedPassword, PasswordRejected> {
        policy().check(pw, &PasswordContext::default())
    }

    #[test]
    fn shipped_list_is_loaded_and_large_enough() {
        // ASVS asks for at least the top 3,000; we ship every 8+ character
        // entry of a 30,000-entry frequency list.
        assert!(
            policy().common_count() > 10_000,
            "{}",
            policy().common_count()
        );
        for common in [
            "password",
            "12345678",
            "qwertyuiop",
            "iloveyou",
            "trustno1",
            "passw0rd",
        ] {
            assert_eq!(
                check(common).unwrap_err(),
                PasswordRejected::Common,
                "{common}"
            );
        }
    }

    #[test]
    fn common_passwords_are_caught_in_any_case_and_with_decorations() {
        for pw in [
            "PASSWORD",
            "Password",
            "password1!",
            "2024baseball",
            "sunshine!!",
            "football1234",
        ] {
            assert!(check(pw).is_err(), "{pw} accepted");
        }
    }

    #[test]
    fn length_limits_count_code_points_after_normalisation() {
        assert_eq!(
            check("").unwrap_err(),
            PasswordRejected::TooShort { min: 8, actual: 0 }
        );
        assert!(matches!(
            check("aB3$xY7").unwrap_err(),
            PasswordRejected::TooShort { .. }
        ));
        // 8 multi-byte characters are 8 characters, not 16+ bytes.
        assert!(check("ÄÖÜßéèñç").is_ok());
        assert!(check("日本語のパスワード").is_ok());
        // 64 and 256 are accepted, 257 is not.
        let long64: String = "correct horse battery staple "
            .repeat(3)
            .chars()
            .take(64)
            .collect();
        assert!(check(&long64).is_ok());
        let mut long256 = String::new();
        while long256.chars().count() < 256 {
            long256.push_str("mauve giraffe ");
        }
        let long256: String = long256.chars().take(256).collect();
        assert!(check(&long256).is_ok());
        let long257 = format!("{long256}x");
        assert!(matches!(
            check(&long257).unwrap_err(),
            PasswordRejected::TooLong { .. }
        ));
        // Huge input is refused without normalising megabytes.
        let huge = "x".repeat(1_000_000);
        assert!(matches!(
            check(&huge).unwrap_err(),
            PasswordRejected::TooLong { .. }
        ));
    }

    #[test]
    fn nfkc_makes_equivalent_spellings_equal() {
        // "ﬁ" ligature and full-width letters normalise to plain ASCII.
        let a = NormalizedPassword::new("ﬁsh-and-chips-Ｘ");
        let b = NormalizedPassword::new("fish-and-chips-X");
        assert_eq!(a, b);
        // Composed and decomposed é are the same password.
        assert_eq!(
            NormalizedPassword::new("caf\u{e9} au lait!"),
            NormalizedPassword::new("cafe\u{301} au lait!")
        );
    }

    #[test]
    fn no_composition_rules() {
        // All lower-case letters, no digit or symbol: fine if long and uncommon.
        assert!(check("purple elephants dance").is_ok());
        assert!(check("zq7vbnwhrt").is_ok());
    }

    #[test]
    fn repetitive_and_sequential_runs_are_rejected() {
        for pw in [
            "aaaaaaaaaa",
            "zzzzzzzzzzzz",
            "abcdefghij",
            "98765432",
            "qrstuvwxyz",
        ] {
            assert_eq!(check(pw).unwrap_err(), PasswordRejected::Repetitive, "{pw}");
        }
    }

    #[test]
    fn control_characters_are_rejected() {
        assert_eq!(
            check("good pass\u{0}word").unwrap_err(),
            PasswordRejected::ControlCharacter
        );
    }

    #[test]
    fn personal_and_service_words_are_rejected() {
        let ctx = PasswordContext {
            email: Some("Jane.Doe+work@example.org"),
            name: Some("Jane Marigold Doe"),
        };
        let p = policy();
        assert_eq!(
            p.check("jane.doe+work rules", &ctx).unwrap_err(),
            PasswordRejected::ContainsIdentity("e-mail address")
        );
        assert_eq!(
            p.check("ilovemarigolds", &ctx).unwrap_err(),
            PasswordRejected::ContainsIdentity("name")
        );
        assert_eq!(
            p.check("my tapestry login", &ctx).unwrap_err(),
            PasswordRejected::ContainsIdentity("service name")
        );
        // Short name parts (< 4 chars) do not over-reject.
        assert!(p.check("indoed forest walk", &ctx).is_ok());
    }

    #[test]
    fn a_site_list_replaces_the_embedded_one() {
        let p = PasswordPolicy::from_list("# comment\n\n  Hunter2Hunter2 \n");
        assert_eq!(p.common_count(), 1);
        assert_eq!(
            p.check("hunter2hunter2", &PasswordContext::default())
                .unwrap_err(),
            PasswordRejected::Common
        );
        assert!(PasswordPolicy::from_list("")
            .check("password", &PasswordContext::default())
            .is_ok());
    }

    #[test]
    fn stored_hashes_carry_owasp_parameters_g9() {
        let pw = check("violet meadow lantern").unwrap();
        let stored = hash_password(&pw).unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        let params = stored_params(&stored).unwrap();
        assert!(params.algorithm_is_argon2id);
        assert!(params.m_kib >= 19_456 && params.t >= 2 && params.p >= 1);
        assert!(!needs_rehash(&stored));
        // Salted: the same password hashes differently.
        assert_ne!(stored, hash_password(&pw).unwrap());
        assert!(!stored.contains("violet"));
    }

    #[test]
    fn verification_accepts_only_the_right_password() {
        let stored = hash_password(&check("violet meadow lantern").unwrap()).unwrap();
        assert!(verify_password("violet meadow lantern", &stored).unwrap());
        assert!(!verify_password("violet meadow lanterN", &stored).unwrap());
        assert!(!verify_password("", &stored).unwrap());
        // Typed in a different Unicode form, still the same password.
        let stored = hash_password(&check("caf\u{e9} au lait!").unwrap()).unwrap();
        assert!(verify_password("cafe\u{301} au lait!", &stored).unwrap());
    }

    #[test]
    fn weak_or_foreign_hashes_need_rehash_and_garbage_is_an_error() {
        let weak = "$argon2id$v=19$m=4096,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$\
                    4pBFCIKgBY8cXYyD5PNmGoe9UHrmhUzJYKg9sV3kJ2A";
        assert!(needs_rehash(weak));
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                       4pBFCIKgBY8cXYyD5PNmGoe9UHrmhUzJYKg9sV3kJ2A";
        assert!(needs_rehash(argon2i));
        assert!(matches!(
            verify_password("x", argon2i),
            Err(PasswordHashError::UnsupportedAlgorithm(_))
        ));
        for garbage in ["", "plaintext", "$argon2id$", &"$".repeat(10_000)] {
            assert!(needs_rehash(garbage));
            assert!(verify_password("x", garbage).is_err());
        }
    }

    #[test]
    fn unknown_users_are_answered_false() {
        prepare_unknown_user_check();
        assert!(!verify_unknown_user("anything at all"));
        assert!(!verify_unknown_user("no account has this password"));
    }
}
