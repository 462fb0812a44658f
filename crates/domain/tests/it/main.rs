//! Domain integration tests: one binary.
mod plan;
