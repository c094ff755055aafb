//! The firewall layer: turns ban decisions into kernel state that drops
//! packets, without spawning a process per ban.
//!
//! - [`ipset`]: kernel ipsets over netlink, in-process. Each jail has a v4
//!   and a v6 set (`hash:ip`, or `hash:net` for subnet bans) with timeout
//!   support, so bans expire in the kernel even while warden is down.
//! - [`sets`]: which sets the ruleset needs, [`sets::reconcile`] (fill a
//!   scratch set, swap it in: a restart never opens a window), cleanup.
//! - [`rules`]: warden's chains (`WARDEN-DOCKER` from `DOCKER-USER`,
//!   `WARDEN-HOST` from `INPUT`, allowlist first) as data, and the
//!   `iptables-restore --noflush` scripts that apply, repair and remove them.
//! - [`chains`]: runs those scripts for iptables and ip6tables.
//! - [`backend`]: nft or legacy, by where Docker's chains live.
//! - [`exec`]: the only way warden runs a program: one at a time, bounded.
//! - [`guard`]: bans refused outright (everything, too broad, loopback,
//!   the host's own addresses).
//! - [`save`]: reads `iptables-save` output.
//!
//! - [`conntrack`]: deletes a banned network's conntrack entries over
//!   netlink, in-process.
//! - [`enforcer`]: the firewall task's core, tying the above together:
//!   start from the stored bans, ban, unban, refresh long bans, check the
//!   jumps, clean up, or log all of it in a dry run.
//!
//! Startup order: [`sets::ensure_sets`], [`sets::reconcile`] per jail from
//! the store, then [`chains::Chains::apply`] (rules cannot name missing
//! sets). Cleanup order: [`chains::Chains::cleanup`], then
//! [`sets::destroy_sets`] (referenced sets cannot be destroyed).
//! [`enforcer::Enforcer`] follows both orders.
//!
//! Still to come (issue 3): the firewall task in the daemon around
//! [`enforcer::Enforcer`], and the CLI.

pub mod backend;
pub mod chains;
pub mod conntrack;
pub mod enforcer;
mod error;
pub mod exec;
pub mod guard;
pub mod ipset;
pub mod rules;
pub mod save;
pub mod sets;

pub use error::FirewallError;
