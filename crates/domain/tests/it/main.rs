//! Domain integration tests: one binary.
mod measurement;
mod plan;
