//! Store tests: one conformance suite that every adapter passes.

mod conformance;
mod schedule;
