//! Shared helpers for the benchmark programs in `src/bin/`.
