//! Store tests: one conformance suite that every adapter passes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[macro_use]
mod backends;

mod conformance;
mod groups;
mod matching;
mod measurement;
mod messaging;
mod migration_0012;
mod portal;
mod records;
mod schedule;
mod security;
