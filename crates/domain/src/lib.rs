//! Tapestry's domain: the clinical and business rules as plain Rust.
//!
//! Nothing in this crate performs file or network I/O or reads the wall clock;
//! "now" arrives through [`clock::Clock`], data arrives as values.

pub mod clock;
pub mod content;
pub mod ids;
pub mod matching;
pub mod risk;
