//! Domain integration tests: one binary.
