//! Web integration tests: the security spine through the real router.

mod canary;
mod fixture;
mod lifecycle;
mod matrix;
