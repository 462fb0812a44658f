//! Web integration tests: the security spine through the real router.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod assessments;
mod browser;
mod canary;
mod fixture;
mod flows;
mod forms;
mod groups;
mod lifecycle;
mod matching;
mod matrix;
mod matrix_matching;
mod matrix_portal;
mod matrix_records;
mod matrix_sessions;
mod portal_flows;
mod records;
mod session_pages;
mod sessions;
mod urgent_language;
mod video_browser;
