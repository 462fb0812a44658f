//! Tapestry storage.
