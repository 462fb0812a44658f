//! Tapestry web.
