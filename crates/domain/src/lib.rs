//! Tapestry's domain: the clinical and business rules as plain Rust.
//!
//! Nothing in this crate performs file or network I/O or reads the wall clock;
//! "now" arrives through [`clock::Clock`], data arrives as values.

pub mod access;
pub mod adapt;
pub mod care;
pub mod change;
pub mod client;
pub mod clock;
pub mod content;
pub mod episode;
pub mod fhir;
pub mod formulation;
pub mod homework;
pub mod identity;
pub mod ids;
pub mod ingest;
pub mod instrument;
pub mod intake;
pub mod knowledge;
pub mod matching;
pub mod measure_schedule;
pub mod measurement_cli;
pub mod notes;
pub mod notification;
pub mod plan;
pub mod plan_input;
pub mod practice;
pub mod risk;
pub mod safety_plan;
pub mod schedule;
pub mod scoring;
pub mod sleep_diary;
pub mod submission;
pub mod trajectory;
pub mod urgent_language;
pub mod user;
