//! Identity: who a person is and how they prove it.
//!
//! Pure building blocks (CPU only, no storage, time passed in) used by the
//! store and web layers:
//!
//! - [`token`]: random secrets shown once, stored only as SHA-256 hashes;
//! - [`password`]: the password policy (NIST SP 800-63B) and Argon2id hashing (G9);
//! - [`session`]: server-side session lifecycle, idle and absolute timeouts (G10);
//! - [`totp`]: RFC 6238 second factor with replay prevention, recovery codes,
//!   `otpauth://` URI and a locally drawn QR code (G8);
//! - [`invitation`]: single-use, expiring, role-limited invitations and
//!   password-reset tokens (G8, G22);
//! - [`throttle`]: login backoff per account, per account+IP and per IP (G9);
//! - [`csrf`]: CSRF tokens bound to the session, compared in constant time (G10);
//! - [`api_token`]: scoped, expiring, revocable tokens for integrations.

pub mod api_token;
pub mod csrf;
pub mod invitation;
pub mod password;
pub mod session;
pub mod throttle;
pub mod token;
pub mod totp;
