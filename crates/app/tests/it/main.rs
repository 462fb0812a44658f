//! Black-box tests of the `tapestry` binary: it is started as a new user
//! would start it, in a fresh directory, and judged by what it prints, serves
//! and stores.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli_forms;
mod demo_journey;
mod durability;
mod faults;
mod harness;
mod security;
mod serving;
mod tls;
