//! journald (placeholder)
