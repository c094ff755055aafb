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
//! Startup order: [`sets::ensure_sets`], [`sets::reconcile`] per jail from
//! the store, then [`chains::Chains::apply`] (rules cannot name missing
//! sets). Cleanup order: [`chains::Chains::cleanup`], then
//! [`sets::destroy_sets`] (referenced sets cannot be destroyed).
//!
//! Still to come (issue 3): conntrack flushing so established connections
//! of a banned address stop at once, dry run, the periodic jump check and
//! the firewall task in the daemon.

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
