//! The second factor: TOTP (RFC 6238) and recovery codes (security goal G8).
//!
//! - HMAC-SHA-1, 6 digits, 30-second steps, 160-bit secrets: what every
//!   authenticator app understands.
//! - A code is accepted for the current step and one step either side (±30 s).
//! - **Replay prevention:** [`verify`] returns the step it accepted; the store
//!   persists it per user and passes it back as `last_used_step`; any code for
//!   that step or an earlier one is refused, so each code works once.
//! - Enrolment shows an `otpauth://` URI as a QR code drawn here as SVG
//!   (no network, no third-party service sees the secret).
//! - Ten recovery codes of 80 random bits each, stored as SHA-256 hashes,
//!   each usable once.

use crate::identity::token::TokenHash;
use chrono::{DateTime, Utc};
use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha1::Sha1;
use std::fmt;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Seconds per step.
pub const STEP_SECONDS: i64 = 30;
/// Steps accepted either side of the current one.
pub const WINDOW_STEPS: u64 = 1;
/// Secret length in bytes (RFC 4226 recommends 160 bits).
pub const SECRET_BYTES: usize = 20;
/// Recovery codes issued at enrolment.
pub const RECOVERY_CODE_COUNT: usize = 10;
/// Random bytes per recovery code (80 bits, 16 base32 characters).
pub const RECOVERY_CODE_BYTES: usize = 10;
/// Issuer shown in authenticator apps.
pub const ISSUER: &str = "Tapestry";

/// Why a code or secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("totp code: must be exactly {DIGITS} digits")]
    MalformedCode,
    #[error("totp code: does not match")]
    Mismatch,
    #[error("totp code: already used (each code works once)")]
    Replayed,
    #[error("totp secret: not valid base32 of {SECRET_BYTES} bytes")]
    MalformedSecret,
    #[error("totp time: before the Unix epoch")]
    TimeBeforeEpoch,
    #[error("totp qr code: {0}")]
    QrCode(String),
    #[error("recovery code: malformed")]
    MalformedRecoveryCode,
    #[error("recovery code: does not match an unused code")]
    RecoveryCodeRejected,
}

/// A TOTP shared secret. Stored encrypted by the store (it is a credential);
/// wiped on drop; `Debug` is redacted.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; SECRET_BYTES];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// From raw bytes (any length ≥ 16 bytes is accepted, as RFC 4226 requires
    /// at least 128 bits; the RFC test vectors use 20).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TotpError> {
        if bytes.len() < 16 || bytes.len() > 64 {
            return Err(TotpError::MalformedSecret);
        }
        Ok(Self(bytes.to_vec()))
    }

    /// Base32 without padding, as in the `otpauth://` URI.
    pub fn to_base32(&self) -> String {
        BASE32_NOPAD.encode(&self.0)
    }

    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        let cleaned: String = text
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let bytes = BASE32_NOPAD
            .decode(cleaned.trim_end_matches('=').as_bytes())
            .map_err(|_| TotpError::MalformedSecret)?;
        Self::from_bytes(&bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// HOTP (RFC 4226) value for a counter, `digits` long.
pub fn hotp(secret: &TotpSecret, counter: u64, digits: u32) -> u32 {
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret.as_bytes()) else {
        // HMAC accepts keys of any length; this branch cannot be taken.
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest.get(19).copied().unwrap_or(0) & 0x0f);
    let word = digest
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0] & 0x7f, b[1], b[2], b[3]]))
        .unwrap_or(0);
    word % 10u32.pow(digits.min(9))
}

/// The step number of an instant.
pub fn step_at(now: DateTime<Utc>) -> Result<u64, TotpError> {
    u64::try_from(now.timestamp().div_euclid(STEP_SECONDS)).map_err(|_| TotpError::TimeBeforeEpoch)
}

/// The current code (for tests and for showing during enrolment checks).
pub fn code_at(secret: &TotpSecret, now: DateTime<Utc>) -> Result<String, TotpError> {
    let step = step_at(now)?;
    Ok(format!(
        "{:0width$}",
        hotp(secret, step, DIGITS),
        width = DIGITS as usize
    ))
}

/// Verify a code typed by the user at `now`. `last_used_step` is the step of
/// the user's previous accepted code (persisted by the store). On success the
/// accepted step is returned: persist it before answering the request.
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now: DateTime<Utc>,
    last_used_step: Option<u64>,
) -> Result<u64, TotpError> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(TotpError::MalformedCode);
    }
    let current = step_at(now)?;
    let first = current.saturating_sub(WINDOW_STEPS);
    let mut matched: Option<u64> = None;
    // Check every step in the window without stopping early.
    for step in first..=current.saturating_add(WINDOW_STEPS) {
        let expected = format!(
            "{:0width$}",
            hotp(secret, step, DIGITS),
            width = DIGITS as usize
        );
        if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) && matched.is_none() {
            matched = Some(step);
        }
    }
    match matched {
        None => Err(TotpError::Mismatch),
        Some(step) if last_used_step.is_some_and(|last| step <= last) => Err(TotpError::Replayed),
        Some(step) => Ok(step),
    }
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(secret: &TotpSecret, account: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={secret}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        issuer = percent_encode(ISSUER),
        account = percent_encode(account),
        secret = secret.to_base32(),
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The enrolment QR code for `uri` as a self-contained SVG document
/// (black on white, no external references), drawn locally.
pub fn qr_svg(uri: &str) -> Result<String, TotpError> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| TotpError::QrCode(e.to_string()))?;
    Ok(code
        .render()
        .min_dimensions(240, 240)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// A recovery code as shown once to the user: `XXXX-XXXX-XXXX-XXXX`.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct RecoveryCode(String);

impl RecoveryCode {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(<redacted>)")
    }
}

/// One stored recovery code: its hash and when it was used, if it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecoveryCode {
    pub hash: TokenHash,
    pub used_at: Option<DateTime<Utc>>,
}

/// Canonical form of a typed recovery code: upper case, no separators.
fn canonical_recovery(typed: &str) -> Result<String, TotpError> {
    let cleaned: String = typed
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cleaned.len() != 16 || BASE32_NOPAD.decode(cleaned.as_bytes()).is_err() {
        return Err(TotpError::MalformedRecoveryCode);
    }
    Ok(cleaned)
}

/// A fresh set of recovery codes: the codes to show once and the hashes to store.
/// Issuing a new set replaces the old one entirely.
pub fn generate_recovery_codes() -> (Vec<RecoveryCode>, Vec<StoredRecoveryCode>) {
    let mut shown = Vec::with_capacity(RECOVERY_CODE_COUNT);
    let mut stored = Vec::with_capacity(RECOVERY_CODE_COUNT);
    for _ in 0..RECOVERY_CODE_COUNT {
        let mut bytes = [0u8; RECOVERY_CODE_BYTES];
        OsRng.fill_bytes(&mut bytes);
        let raw = BASE32_NOPAD.encode(&bytes);
        bytes.zeroize();
        let grouped = raw
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect::<Vec<_>>()
            .join("-");
        stored.push(StoredRecoveryCode {
            hash: TokenHash::of(&raw),
            used_at: None,
        });
        shown.push(RecoveryCode(grouped));
    }
    (shown, stored)
}

/// Redeem a typed recovery code against the user's stored set: marks the
/// matching unused code as used at `now` and returns its index (the store
/// saves it with a conditional update so two parallel redemptions cannot
/// both succeed).
pub fn redeem_recovery_code(
    typed: &str,
    stored: &mut [StoredRecoveryCode],
    now: DateTime<Utc>,
) -> Result<usize, TotpError> {
    let hash = TokenHash::of(&canonical_recovery(typed)?);
    let mut found = None;
    for (i, code) in stored.iter().enumerate() {
        if code.hash.ct_eq(&hash) && code.used_at.is_none() && found.is_none() {
            found = Some(i);
        }
    }
    let i = found.ok_or(TotpError::RecoveryCodeRejected)?;
    if let Some(code) = stored.get_mut(i) {
        code.used_at = Some(now);
    }
    Ok(i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, 0).single().unwrap()
    }

    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    /// RFC 6238 Appendix B, SHA-1 column (8 digits).
    #[test]
    fn rfc6238_appendix_b_sha1_vectors() {
        let vectors = [
            (59, 94287082),
            (1111111109, 7081804),
            (1111111111, 14050471),
            (1234567890, 89005924),
            (2000000000, 69279037),
            (20000000000, 65353130),
        ];
        let s = rfc_secret();
        for (t, expected) in vectors {
            let step = step_at(at(t)).unwrap();
            assert_eq!(hotp(&s, step, 8), expected, "T = {t}");
            // Our 6-digit codes are the low 6 digits of the same value.
            assert_eq!(hotp(&s, step, 6), expected % 1_000_000, "T = {t}");
        }
        assert_eq!(code_at(&s, at(1111111109)).unwrap(), "081804");
    }

    #[test]
    fn window_is_plus_minus_one_step() {
        let s = TotpSecret::generate();
        let now = at(1_800_000_000);
        let step = step_at(now).unwrap();
        for (offset, ok) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let code_step = (step as i64 + offset) as u64;
            let code = format!("{:06}", hotp(&s, code_step, 6));
            let result = verify(&s, &code, now, None);
            // A 6-digit code can collide with a neighbouring step's code by chance.
            let collides = (-1..=1).any(|o| {
                o != offset && format!("{:06}", hotp(&s, (step as i64 + o) as u64, 6)) == code
            });
            if !collides {
                assert_eq!(result.is_ok(), ok, "offset {offset}");
            }
            if ok && !collides {
                assert_eq!(result.unwrap(), code_step);
            }
        }
    }

    #[test]
    fn a_code_is_accepted_once_and_earlier_steps_never() {
        let s = TotpSecret::generate();
        let now = at(1_800_000_015);
        let code = code_at(&s, now).unwrap();
        let accepted = verify(&s, &code, now, None).unwrap();
        assert_eq!(accepted, step_at(now).unwrap());
        // Replay within the same step and within the window later.
        assert_eq!(
            verify(&s, &code, now, Some(accepted)),
            Err(TotpError::Replayed)
        );
        assert_eq!(
            verify(
                &s,
                &code,
                now + chrono::Duration::seconds(30),
                Some(accepted)
            ),
            Err(TotpError::Replayed)
        );
        // The previous step's code, still inside the window, is also refused.
        let previous = format!("{:06}", hotp(&s, accepted - 1, 6));
        if previous != code {
            assert_eq!(
                verify(&s, &previous, now, Some(accepted)),
                Err(TotpError::Replayed)
            );
        }
        // The next step's code works.
        let next_time = now + chrono::Duration::seconds(30);
        let next = code_at(&s, next_time).unwrap();
        if next != code {
            assert_eq!(
                verify(&s, &next, next_time, Some(accepted)),
                Ok(accepted + 1)
            );
        }
    }

    #[test]
    fn malformed_codes_are_rejected_without_matching() {
        let s = TotpSecret::generate();
        let now = at(1_800_000_000);
        for bad in [
            "",
            "12345",
            "1234567",
            "12a456",
            "١٢٣٤٥٦",
            "123 456",
            &"9".repeat(10_000),
        ] {
            assert_eq!(
                verify(&s, bad, now, None),
                Err(TotpError::MalformedCode),
                "{bad:.10}"
            );
        }
        // Surrounding whitespace from copy-paste is tolerated.
        let code = code_at(&s, now).unwrap();
        assert!(verify(&s, &format!(" {code}\n"), now, None).is_ok());
        assert_eq!(
            verify(&s, "000000", at(-100), None).err(),
            Some(TotpError::TimeBeforeEpoch)
        );
    }

    #[test]
    fn secrets_round_trip_through_base32_and_are_redacted() {
        let s = TotpSecret::generate();
        assert_eq!(s.as_bytes().len(), 20);
        let b32 = s.to_base32();
        assert_eq!(b32.len(), 32);
        assert_eq!(TotpSecret::from_base32(&b32).unwrap(), s);
        assert_eq!(TotpSecret::from_base32(&b32.to_lowercase()).unwrap(), s);
        assert!(!format!("{s:?}").contains(&b32));
        for bad in ["", "!!!!", "AAAA", &"A".repeat(200)] {
            assert!(TotpSecret::from_base32(bad).is_err(), "{bad:.10}");
        }
    }

    #[test]
    fn otpauth_uri_has_the_standard_fields_and_escapes_the_label() {
        let s = rfc_secret();
        let uri = otpauth_uri(&s, "jane doe@example.org");
        assert!(uri.starts_with("otpauth://totp/Tapestry:jane%20doe@example.org?secret="));
        assert!(uri.contains(&format!("secret={}", s.to_base32())));
        for part in ["issuer=Tapestry", "algorithm=SHA1", "digits=6", "period=30"] {
            assert!(uri.contains(part), "{part}");
        }
        let evil = otpauth_uri(&s, "a&secret=EVIL?x#y");
        assert!(!evil.contains("&secret=EVIL"));
    }

    #[test]
    fn qr_code_is_a_local_svg_without_external_references() {
        let uri = otpauth_uri(&TotpSecret::generate(), "jane@example.org");
        let svg = qr_svg(&uri).unwrap();
        assert!(svg.contains("<svg"));
        assert!(svg.contains("</svg>"));
        assert!(!svg.contains("href"), "no links or external images");
        assert!(!svg.contains("<script"));
        assert!(!svg.contains("http://") || svg.contains("http://www.w3.org/2000/svg"));
        // Too much data for any QR version is an error, not a panic.
        assert!(qr_svg(&"x".repeat(10_000)).is_err());
    }

    #[test]
    fn recovery_codes_are_hashed_unique_and_single_use() {
        let (shown, mut stored) = generate_recovery_codes();
        assert_eq!(shown.len(), 10);
        assert_eq!(stored.len(), 10);
        let mut distinct: Vec<_> = shown.iter().map(|c| c.expose().to_string()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 10);
        for code in &shown {
            assert_eq!(code.expose().len(), 19, "XXXX-XXXX-XXXX-XXXX");
            assert!(!format!("{stored:?}").contains(code.expose()));
        }
        let now = at(1_800_000_000);
        // Typed in lower case without dashes: still accepted, once.
        let typed = shown[3].expose().replace('-', "").to_lowercase();
        assert_eq!(redeem_recovery_code(&typed, &mut stored, now), Ok(3));
        assert_eq!(stored[3].used_at, Some(now));
        assert_eq!(
            redeem_recovery_code(shown[3].expose(), &mut stored, now),
            Err(TotpError::RecoveryCodeRejected)
        );
        // Others still work; unknown and malformed codes do not.
        assert_eq!(
            redeem_recovery_code(shown[0].expose(), &mut stored, now),
            Ok(0)
        );
        assert_eq!(
            redeem_recovery_code("AAAA-AAAA-AAAA-AAAA", &mut stored, now),
            Err(TotpError::RecoveryCodeRejected)
        );
        for bad in ["", "AAAA", "!!!!-!!!!-!!!!-!!!!", &"A".repeat(5000)] {
            assert_eq!(
                redeem_recovery_code(bad, &mut stored, now),
                Err(TotpError::MalformedRecoveryCode)
            );
        }
        // An empty stored set rejects everything.
        assert!(redeem_recovery_code(shown[1].expose(), &mut [], now).is_err());
    }

    proptest::proptest! {
        /// Arbitrary typed codes, secrets and times never panic.
        #[test]
        fn arbitrary_input_never_panics(code in ".{0,40}", secs in proptest::num::i64::ANY) {
            let s = rfc_secret();
            if let Some(t) = Utc.timestamp_opt(secs.rem_euclid(1 << 40), 0).single() {
                let _ = verify(&s, &code, t, Some(u64::MAX));
            }
            let _ = TotpSecret::from_base32(&code);
            let _ = redeem_recovery_code(&code, &mut [], at(0));
        }
    }
}
