//! Tapestry's domain: the clinical and business rules as plain Rust.
//!
//! Nothing in this crate performs file or network I/O or reads the wall clock;
//! "now" arrives through [`clock::Clock`], data arrives as values.

pub mod care;
pub mod client;
pub mod clock;
pub mod content;
pub mod episode;
pub mod ids;
pub mod practice;
pub mod risk;
pub mod submission;
pub mod user;
