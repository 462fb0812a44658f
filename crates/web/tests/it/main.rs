//! Web integration tests: the security spine through the real router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod canary;
mod fixture;
mod flows;
mod lifecycle;
mod matrix;
mod matrix_records;
mod records;
