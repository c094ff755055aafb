//! The firewall layer: turns ban decisions into kernel state that drops
//! packets, without spawning a process per ban.
//!
//! - [`ipset`]: kernel ipsets over netlink, in-process. Each jail has a v4
//!   and a v6 set (`hash:ip`, or `hash:net` for subnet bans) with timeout
//!   support, so bans expire in the kernel even while warden is down.
//!
//! Still to come (issue 3): warden's own iptables/ip6tables chains
//! (`WARDEN-DOCKER` from `DOCKER-USER`, `WARDEN-HOST` from `INPUT`) with the
//! allowlist first and one rule per jail set, backend detection (nft or
//! legacy), reconciliation of the sets with the store on startup (fill a
//! temporary set, then swap it in), and conntrack flushing so established
//! connections of a banned address stop at once.

pub mod backend;
pub mod chains;
mod error;
pub mod exec;
pub mod guard;
pub mod ipset;
pub mod rules;
pub mod save;
pub mod sets;

pub use error::FirewallError;
