//! Subcommands of the `warden` binary that are plain functions from inputs to
//! printable text, so they can be tested without spawning the binary.

pub mod check_config;
pub mod control;
pub mod import_fail2ban;
pub mod json;
mod newlines;
pub mod test_filter;
