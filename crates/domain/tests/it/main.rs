//! Domain integration tests: one binary.
mod matching;
