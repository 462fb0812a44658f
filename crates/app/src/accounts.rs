//! Credentials the command line hands out: readable random passwords for new
//! accounts and one-time setup tokens. Hashing and token rules live in
//! `tapestry_domain::identity`; this only adapts them for printing.

use rand::rngs::OsRng;
use rand::RngCore;
use tapestry_domain::identity::password::{self, NormalizedPassword};
use tapestry_domain::identity::token::SecretToken;

/// A random password of 20 characters from an unambiguous alphabet (~115 bits).
pub fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    OsRng.fill_bytes(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

/// A one-time token to print, and the hash (hex) that is stored.
pub fn one_time_token() -> (String, String) {
    let token = SecretToken::generate();
    let hash = token.hash().to_hex();
    (token.expose().to_string(), hash)
}

/// Argon2id, with the parameters the identity module sets.
pub fn hash_password(plain: &str) -> anyhow::Result<String> {
    password::hash_password(&NormalizedPassword::new(plain))
        .map_err(|e| anyhow::anyhow!("password: {e}"))
}
