//! Tapestry storage.

pub mod audit_chain;
pub mod crypto;
