//! [`Enforcer`]: the firewall task's core, a plain synchronous struct owned
//! by one thread (the daemon wraps it in a task). It turns ban decisions
//! into kernel state and keeps that state right:
//!
//! - [`Enforcer::start`]: detects the iptables backend, creates or adopts
//!   the sets, makes each jail's sets hold exactly the persisted active bans
//!   with their remaining time (filled aside and swapped in, so a restart
//!   never flushes and never opens a window), then applies the chains.
//! - [`Enforcer::ban`] / [`Enforcer::ban_batch`]: refuses what
//!   [`guard::check_ban_target`] refuses (everything, too broad, loopback,
//!   the host's own addresses) and what the allowlist covers, adds the entry
//!   with its remaining time (permanent bans: timeout 0; beyond the kernel's
//!   cap: clamped, and remembered for [`Enforcer::refresh`]), then deletes
//!   the address's conntrack entries (per jail, on by default; see below).
//! - [`Enforcer::unban`], [`Enforcer::refresh`] (re-adds long bans before
//!   their kernel timeout lapses), [`Enforcer::check`] (restores jumps and
//!   chains), [`Enforcer::cleanup`] (removes everything warden created).
//!
//! Bans and unbans are netlink messages from this process; only start,
//! check and cleanup run external programs (`iptables-save`/`-restore`),
//! through the bounded [`Runner`], one at a time.
//!
//! **Conntrack deletions are coalesced.** The kernel cannot find a
//! source's entries without walking its whole connection table, which
//! costs milliseconds on a default-sized table (about 8 ms for 262,144
//! buckets, empty or not) against microseconds for the ipset add. So a ban
//! queues its network, and the queue is walked once for all: at once when
//! the last walk is older than `conntrack_interval` (an isolated ban's
//! entries are gone when `ban` returns), otherwise by a later ban, by
//! [`Enforcer::ban_batch`], or by [`Enforcer::flush_conntrack`], which the
//! firewall task calls once the walk is due ([`Enforcer::conntrack_due`])
//! and its inbox is empty. A steady trickle of bans thus costs at most one
//! walk per interval, however many bans it holds. The ban itself is in
//! the set before any of this, and its rules already stop the flows, so
//! the delay only affects how long stale flow state lingers.
//!
//! **Dry run** (`dry_run: true`): every set, rule and conntrack change is
//! logged (`tracing::info`, with `jail` and `ip` fields where they apply;
//! a batch of bans as one line per set, each entry at `debug`) and none is
//! made. Reads still happen (iptables-save, conntrack dumps),
//! so the log says precisely what would change.
//!
//! **Stopping leaves everything in place.** Dropping an `Enforcer` changes
//! nothing in the kernel: sets, entries (with their timeouts), chains and
//! jumps stay, so bans stay enforced while warden restarts or upgrades.
//! Only [`Enforcer::cleanup`] removes them.
//!
//! State owned: the ruleset, the sockets (an [`IpsetHandle`], a
//! [`ConntrackHandle`]), the iptables [`Chains`] once the backend is known,
//! the host's own addresses (re-read on each check), and the bans whose
//! kernel timeout was clamped, with when to refresh each, and the networks
//! whose conntrack entries are still to be deleted.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::{IpNet, Ipv4Net};

use super::backend::{self, Backend};
use super::chains::Chains;
use super::conntrack::{ConntrackError, ConntrackHandle};
use super::error::FirewallError;
use super::exec::Runner;
use super::guard::{self, BanFloor, BanRefused};
use super::ipset::{EntryTimeout, Family, IpsetError, IpsetHandle, MAX_TIMEOUT_SECS, SetType};
use super::rules::{self, JailRules, Ruleset};
use super::sets;
use crate::core::{Ban, Timestamp};

/// How long before a clamped kernel timeout lapses the entry is re-added,
/// by default. The daemon calls [`Enforcer::refresh`] far more often than
/// this (say each minute), so a refresh is never late.
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(24 * 3600);

/// How the enforcer behaves; the daemon builds it from the configuration.
#[derive(Debug, Clone)]
pub struct EnforcerConfig {
    /// `--iptables-backend`: use this backend instead of detecting one.
    pub backend: Option<Backend>,
    /// Log every change instead of making it.
    pub dry_run: bool,
    /// The broadest prefix a ban may cover.
    pub ban_floor: BanFloor,
    /// Jails whose bans leave conntrack entries alone. Deleting them is the
    /// default for every other jail.
    pub keep_conntrack: BTreeSet<String>,
    /// Runs iptables at start, check and cleanup.
    pub runner: Runner,
    /// See [`DEFAULT_REFRESH_MARGIN`]; must stay well below the kernel cap.
    pub refresh_margin: Duration,
    /// Least time between two walks of the connection table during a burst
    /// of bans (see the module documentation).
    pub conntrack_interval: Duration,
}

/// See [`EnforcerConfig::conntrack_interval`]: at ~8 ms a walk, at most a
/// few percent of a core goes to walking during a burst.
pub const DEFAULT_CONNTRACK_INTERVAL: Duration = Duration::from_millis(200);

impl Default for EnforcerConfig {
    fn default() -> Self {
        EnforcerConfig {
            backend: None,
            dry_run: false,
            ban_floor: BanFloor::default(),
            keep_conntrack: BTreeSet::new(),
            runner: Runner::default(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            conntrack_interval: DEFAULT_CONNTRACK_INTERVAL,
        }
    }
}

impl EnforcerConfig {
    /// True if bans of `jail` delete the banned address's conntrack entries.
    pub fn flushes_conntrack(&self, jail: &str) -> bool {
        !self.keep_conntrack.contains(jail)
    }
}

/// Why the enforcer did not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum EnforceError {
    #[error("jail {jail}: {reason}")]
    Refused { jail: String, reason: BanRefused },

    #[error(
        "jail {jail}: refusing to ban {net}: the allowlist (ignoreip) holds {allowed}, which covers it; \
         remove it from ignoreip to ban it"
    )]
    Allowlisted { jail: String, net: IpNet, allowed: IpNet },

    #[error(
        "jail {jail}: cannot ban the network {net}: this jail bans single addresses (its sets are \
         hash:ip); ban it in a jail whose ban_prefix is /{} or shorter",
        net.prefix_len()
    )]
    NetworkInHostJail { jail: String, net: IpNet },

    #[error("no jail named {jail:?} in the firewall; known jails: {}", known.join(", "))]
    UnknownJail { jail: String, known: Vec<String> },

    #[error("jail {jail}: the ban of {net} expired at {until}; there is nothing to enforce")]
    Expired { jail: String, net: IpNet, until: String },

    #[error("the firewall is not started: call Enforcer::start before {0}")]
    NotStarted(&'static str),

    #[error("cannot read this host's addresses (needed to refuse banning them): {0}")]
    OwnAddresses(#[source] io::Error),

    #[error(transparent)]
    Firewall(#[from] FirewallError),

    #[error(transparent)]
    Conntrack(#[from] ConntrackError),
}

impl From<IpsetError> for EnforceError {
    fn from(e: IpsetError) -> Self {
        EnforceError::Firewall(e.into())
    }
}

/// What happened to the conntrack entries of a ban.
#[derive(Debug)]
pub enum ConntrackOutcome {
    /// The jail keeps conntrack entries (`keep_conntrack`).
    Kept,
    /// Queued; deleted by the next walk (see the module documentation).
    Pending,
    /// Dry run: this many entries would have been deleted.
    WouldDelete(usize),
    Deleted(usize),
    /// The bans are in place, but deleting the entries failed (logged too).
    Failed(ConntrackError),
}

/// A ban now in the kernel.
#[derive(Debug)]
pub struct Enforced {
    /// The network as put in the set (host bits cleared, mapped IPv6 as IPv4).
    pub net: IpNet,
    /// The timeout the kernel got.
    pub timeout: EntryTimeout,
    /// For bans longer than the kernel keeps: when [`Enforcer::refresh`]
    /// re-adds the entry.
    pub refresh_at: Option<Timestamp>,
    pub conntrack: ConntrackOutcome,
}

/// The result of [`Enforcer::ban_batch`].
#[derive(Debug)]
pub struct BatchEnforced {
    pub applied: usize,
    /// The bans not enforced, by their index in the batch, and why.
    pub rejected: Vec<(usize, EnforceError)>,
    pub conntrack: ConntrackOutcome,
}

/// One set's share of a batch: its entries, and their indices in the batch.
type Group = (Vec<(IpNet, EntryTimeout)>, Vec<usize>);

/// A ban whose kernel timeout was clamped to the cap.
#[derive(Debug, Clone, Copy)]
struct LongBan {
    until: Timestamp,
    refresh_at: Timestamp,
}

/// What the enforcer holds once started (or, for cleanup, connected).
struct Live {
    chains: Chains,
    ipset: IpsetHandle,
    conntrack: Option<ConntrackHandle>,
}

/// The firewall's core. See the module documentation.
pub struct Enforcer {
    config: EnforcerConfig,
    ruleset: Ruleset,
    jail_index: HashMap<String, usize>,
    own_addrs: Vec<IpAddr>,
    live: Option<Live>,
    long_bans: HashMap<(usize, IpNet), LongBan>,
    /// Networks whose conntrack entries are still to be deleted, with their jail.
    pending_conntrack: HashMap<IpNet, usize>,
    last_conntrack_walk: Option<Instant>,
}

impl Enforcer {
    /// An enforcer for `jails`, never dropping `allowlist`. Touches nothing
    /// until [`Enforcer::start`].
    pub fn new(config: EnforcerConfig, jails: Vec<JailRules>, allowlist: Vec<IpNet>) -> Enforcer {
        let jail_index = jails.iter().enumerate().map(|(i, j)| (j.name.clone(), i)).collect();
        Enforcer {
            config,
            ruleset: Ruleset { allowlist, jails },
            jail_index,
            own_addrs: Vec::new(),
            live: None,
            long_bans: HashMap::new(),
            pending_conntrack: HashMap::new(),
            last_conntrack_walk: None,
        }
    }

    pub fn ruleset(&self) -> &Ruleset {
        &self.ruleset
    }

    pub fn is_dry_run(&self) -> bool {
        self.config.dry_run
    }

    /// The backend in use, once started.
    pub fn backend(&self) -> Option<Backend> {
        self.live.as_ref().map(|l| l.chains.backend())
    }

    /// Detects the backend and opens the sockets, once.
    fn connect(&mut self) -> Result<&mut Live, EnforceError> {
        if self.live.is_none() {
            let detection = backend::detect(&self.config.runner, self.config.backend);
            let chains = Chains::new(self.config.runner, detection.backend);
            let ipset = IpsetHandle::open()?;
            let needs_conntrack = self.ruleset.jails.iter().any(|j| self.config.flushes_conntrack(&j.name));
            let conntrack = if needs_conntrack { Some(ConntrackHandle::open()?) } else { None };
            self.live = Some(Live { chains, ipset, conntrack });
        }
        self.live.as_mut().ok_or(EnforceError::NotStarted("connecting"))
    }

    fn refresh_own_addresses(&mut self) -> Result<(), EnforceError> {
        self.own_addrs = guard::own_addresses().map_err(EnforceError::OwnAddresses)?;
        Ok(())
    }

    /// Puts the firewall in place from the persisted active bans: sets
    /// created or adopted, each jail's sets made to hold exactly its bans in
    /// `active` (each with its remaining time at `now`, without a window),
    /// then the chains and jumps. Bans of unknown jails, and bans the guard
    /// refuses now (the floor or the allowlist may have changed), are
    /// skipped with a warning. Returns the chain changes made.
    pub fn start(&mut self, active: &[Ban], now: Timestamp) -> Result<Vec<String>, EnforceError> {
        self.refresh_own_addresses()?;
        self.connect()?;
        let mut desired: Vec<Vec<(IpNet, EntryTimeout)>> = vec![Vec::new(); self.ruleset.jails.len()];
        self.long_bans.clear();
        for ban in active {
            let vetted = self.jail_of(&ban.jail).and_then(|j| Ok((j, self.vet(j, ban)?)));
            match vetted.and_then(|(j, net)| Ok((j, net, self.timeout_for(j, net, ban, now)?))) {
                Ok((jail, net, (timeout, long))) => {
                    desired[jail].push((net, timeout));
                    if let Some(long) = long {
                        self.long_bans.insert((jail, net), long);
                    }
                }
                Err(EnforceError::Expired { .. }) => {}
                Err(e) => {
                    tracing::warn!(jail = %ban.jail, ip = %ban.net, "not re-installing a stored ban: {e}")
                }
            }
        }
        if self.config.dry_run {
            return self.start_dry(&desired);
        }
        let Enforcer { ruleset, live, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("start"))?;
        sets::ensure_sets(&mut live.ipset, ruleset)?;
        for (jail, entries) in ruleset.jails.iter().zip(&desired) {
            let done = sets::reconcile(&mut live.ipset, jail, entries)?;
            tracing::info!(jail = %jail.name, v4 = done.v4, v6 = done.v6, "bans re-installed from the store");
        }
        let changes = live.chains.apply(ruleset)?;
        // Sets of removed jails, or of a jail whose ban_prefix changed (its
        // sets changed type and name): no rule refers to them any more.
        let destroyed = sets::destroy_unreferenced(&mut live.ipset, &rules::referenced_sets(ruleset))?;
        for name in destroyed {
            tracing::info!(set = %name, "set no longer used by any jail destroyed");
        }
        Ok(changes)
    }

    fn start_dry(&mut self, desired: &[Vec<(IpNet, EntryTimeout)>]) -> Result<Vec<String>, EnforceError> {
        for spec in self.ruleset.set_specs() {
            tracing::info!(set = %spec.name, "dry run: would create set {} ({} {}) unless it exists", spec.name, spec.set_type, spec.family);
        }
        for net in &self.ruleset.allowlist {
            let set = rules::allow_set_name(Family::of(net));
            tracing::info!(set = %set, ip = %net, "dry run: would put {net} in the allowlist set {set}");
        }
        for (jail, entries) in self.ruleset.jails.iter().zip(desired) {
            for (net, timeout) in entries {
                let set = jail.set(Family::of(net));
                tracing::info!(jail = %jail.name, ip = %net, %timeout, "dry run: would add {net} to {set} (timeout {timeout})");
            }
            tracing::info!(
                jail = %jail.name,
                "dry run: would make sets {} and {} hold exactly these {} bans (filled aside, then swapped in)",
                jail.set_v4,
                jail.set_v6,
                entries.len()
            );
        }
        self.plan_chains_dry()
    }

    /// Dry run of [`Chains::apply`]: reads each family's table and logs the
    /// script that would run.
    fn plan_chains_dry(&mut self) -> Result<Vec<String>, EnforceError> {
        let Enforcer { ruleset, live, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("planning the chains"))?;
        let mut changes = Vec::new();
        for family in [Family::V4, Family::V6] {
            let saved = live.chains.save(family)?;
            if rules::needs_docker_user(&saved) {
                changes.push(format!("{}: would create chain {}", tables(family), rules::DOCKER_USER));
            }
            if let Some(script) = rules::apply_script(&saved, &rules::plan(ruleset, family)) {
                changes
                    .extend(script.changes.iter().map(|c| format!("{}: would change: {c}", tables(family))));
                tracing::debug!("dry run: the {} script would be:\n{}", tables(family), script.text);
            }
        }
        for change in &changes {
            tracing::info!("dry run: {change}");
        }
        Ok(changes)
    }

    fn jail_of(&self, name: &str) -> Result<usize, EnforceError> {
        self.jail_index.get(name).copied().ok_or_else(|| EnforceError::UnknownJail {
            jail: name.to_string(),
            known: self.ruleset.jails.iter().map(|j| j.name.clone()).collect(),
        })
    }

    /// The network to put in the set, if the guard and the allowlist let it.
    fn vet(&self, jail: usize, ban: &Ban) -> Result<IpNet, EnforceError> {
        let jail_name = &self.ruleset.jails[jail].name;
        guard::check_ban_target(ban.net, self.config.ban_floor, &self.own_addrs)
            .map_err(|reason| EnforceError::Refused { jail: jail_name.clone(), reason })?;
        let net = canonical(ban.net);
        if let Some(allowed) = self.ruleset.allowlist.iter().find(|a| a.contains(&net)) {
            return Err(EnforceError::Allowlisted { jail: jail_name.clone(), net, allowed: *allowed });
        }
        // hash:ip would expand an IPv4 network into one entry per address
        // (and refuses IPv6 ones): a network belongs in a hash:net jail.
        let host = net.prefix_len() == net.max_prefix_len();
        if !host && self.ruleset.jails[jail].set_spec(Family::of(&net)).set_type == SetType::HashIp {
            return Err(EnforceError::NetworkInHostJail { jail: jail_name.clone(), net });
        }
        Ok(net)
    }

    /// The kernel timeout for `ban` at `now`, and the refresh to remember if
    /// it is clamped.
    fn timeout_for(
        &self,
        jail: usize,
        net: IpNet,
        ban: &Ban,
        now: Timestamp,
    ) -> Result<(EntryTimeout, Option<LongBan>), EnforceError> {
        let Some(until) = ban.until else { return Ok((EntryTimeout::PERMANENT, None)) };
        if until <= now {
            let jail = self.ruleset.jails[jail].name.clone();
            return Err(EnforceError::Expired { jail, net, until: until.to_rfc3339() });
        }
        Ok(self.timeout_until(until, now))
    }

    fn timeout_until(&self, until: Timestamp, now: Timestamp) -> (EntryTimeout, Option<LongBan>) {
        let remaining = until.since(now);
        let timeout = EntryTimeout::after(remaining);
        let long = EntryTimeout::is_clamped(remaining).then(|| {
            let cap = Duration::from_secs(u64::from(MAX_TIMEOUT_SECS));
            let lead = cap.saturating_sub(self.config.refresh_margin).max(Duration::from_secs(60));
            LongBan { until, refresh_at: now.saturating_add(lead) }
        });
        (timeout, long)
    }

    /// Enforces one ban now: refused as the guard and the allowlist say,
    /// otherwise added to the jail's set with its remaining time, then the
    /// address's conntrack entries deleted (unless the jail keeps them).
    pub fn ban(&mut self, ban: &Ban, now: Timestamp) -> Result<Enforced, EnforceError> {
        let jail = self.jail_of(&ban.jail)?;
        let net = self.vet(jail, ban)?;
        let (timeout, long) = self.timeout_for(jail, net, ban, now)?;
        let flush = self.config.flushes_conntrack(&ban.jail);
        let dry_run = self.config.dry_run;
        let Enforcer { ruleset, live, long_bans, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("ban"))?;
        let rules = &ruleset.jails[jail];
        let set = rules.set(Family::of(&net));
        if dry_run {
            tracing::info!(jail = %rules.name, ip = %net, %timeout, "dry run: would add {net} to {set} (timeout {timeout})");
        } else {
            live.ipset.add(set, net, timeout)?;
            tracing::debug!(jail = %rules.name, ip = %net, %timeout, "banned");
        }
        match long {
            Some(long) => long_bans.insert((jail, net), long),
            None => long_bans.remove(&(jail, net)),
        };
        let conntrack = if !flush {
            ConntrackOutcome::Kept
        } else {
            self.pending_conntrack.insert(net, jail);
            if self.last_conntrack_walk.is_none_or(|t| t.elapsed() >= self.config.conntrack_interval) {
                self.flush_conntrack()
            } else {
                ConntrackOutcome::Pending
            }
        };
        Ok(Enforced { net, timeout, refresh_at: long.map(|l| l.refresh_at), conntrack })
    }

    /// Enforces many bans with a few netlink messages per thousand: refused
    /// bans are reported by index and do not stop the others; conntrack
    /// entries of all of them are deleted with one dump per family. An
    /// `Err` means the exchange with the kernel failed; bans are
    /// idempotent, so the caller can retry the whole batch.
    pub fn ban_batch(&mut self, bans: &[Ban], now: Timestamp) -> Result<BatchEnforced, EnforceError> {
        let mut rejected = Vec::new();
        // Per (jail, family): the entries and their indices in `bans`.
        let mut groups: HashMap<(usize, Family), Group> = HashMap::new();
        let mut longs = Vec::new();
        for (index, ban) in bans.iter().enumerate() {
            let checked = self.jail_of(&ban.jail).and_then(|jail| {
                let net = self.vet(jail, ban)?;
                Ok((jail, net, self.timeout_for(jail, net, ban, now)?))
            });
            match checked {
                Ok((jail, net, (timeout, long))) => {
                    let group = groups.entry((jail, Family::of(&net))).or_default();
                    group.0.push((net, timeout));
                    group.1.push(index);
                    longs.push((jail, net, long));
                }
                Err(e) => rejected.push((index, e)),
            }
        }
        let dry_run = self.config.dry_run;
        let Enforcer { ruleset, live, long_bans, config, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("ban_batch"))?;
        let mut applied = 0;
        let mut flush_nets = Vec::new();
        let mut refused_entries = BTreeSet::new();
        for ((jail, family), (entries, indices)) in &groups {
            let rules = &ruleset.jails[*jail];
            let set = rules.set(*family);
            if dry_run {
                // One line per set and batch: the daemon already logs each
                // ban, and a flood (or a restart with 100,000 stored bans)
                // would otherwise log every address twice.
                if let [(net, timeout)] = entries.as_slice() {
                    tracing::info!(jail = %rules.name, ip = %net, %timeout, "dry run: would add {net} to {set} (timeout {timeout})");
                } else {
                    tracing::info!(jail = %rules.name, entries = entries.len(), "dry run: would add {} entries to {set}", entries.len());
                    for (net, timeout) in entries {
                        tracing::debug!(jail = %rules.name, ip = %net, %timeout, "dry run: would add {net} to {set} (timeout {timeout})");
                    }
                }
                applied += entries.len();
            } else {
                let report = live.ipset.add_batch(set, entries)?;
                applied += report.applied;
                for failure in report.failures {
                    refused_entries.insert((*jail, entries[failure.index].0));
                    rejected.push((indices[failure.index], failure.error.into()));
                }
            }
            if config.flushes_conntrack(&rules.name) {
                flush_nets.extend(entries.iter().map(|(net, _)| (*net, *jail)));
            }
        }
        for (jail, net, long) in longs {
            if refused_entries.contains(&(jail, net)) {
                continue;
            }
            match long {
                Some(long) => long_bans.insert((jail, net), long),
                None => long_bans.remove(&(jail, net)),
            };
        }
        rejected.sort_by_key(|(index, _)| *index);
        let conntrack = if flush_nets.is_empty() {
            ConntrackOutcome::Kept
        } else {
            self.pending_conntrack.extend(flush_nets);
            self.flush_conntrack()
        };
        Ok(BatchEnforced { applied, rejected, conntrack })
    }

    /// Lifts the ban of `net` in `jail`; returns whether the set held it.
    pub fn unban(&mut self, net: &IpNet, jail: &str) -> Result<bool, EnforceError> {
        let jail_idx = self.jail_of(jail)?;
        let net = canonical(*net);
        self.long_bans.remove(&(jail_idx, net));
        self.pending_conntrack.remove(&net);
        let dry_run = self.config.dry_run;
        let Enforcer { ruleset, live, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("unban"))?;
        let set = ruleset.jails[jail_idx].set(Family::of(&net));
        if dry_run {
            let present = match live.ipset.test(set, net) {
                Ok(present) => present,
                // A dry run never created the set.
                Err(e) if e.is_missing_set() => false,
                Err(e) => return Err(e.into()),
            };
            tracing::info!(jail, ip = %net, "dry run: would delete {net} from {set} (present: {present})");
            return Ok(present);
        }
        let present = live.ipset.del(set, net)?;
        tracing::debug!(jail, ip = %net, present, "unbanned");
        Ok(present)
    }

    /// When the queued conntrack walk is due: `conntrack_interval` after the
    /// last walk (at once if there was none); `None` when no ban's conntrack
    /// entries are left to delete. The firewall task calls
    /// [`Enforcer::flush_conntrack`] then, once its inbox is empty.
    pub fn conntrack_due(&self) -> Option<Instant> {
        if self.pending_conntrack.is_empty() {
            return None;
        }
        let now = Instant::now();
        Some(self.last_conntrack_walk.map_or(now, |t| (t + self.config.conntrack_interval).max(now)))
    }

    /// Deletes (in a dry run, lists) the conntrack entries of every queued
    /// network, in one walk per family. A failure is logged and reported,
    /// never fatal: the bans hold anyway, and the queue is emptied so one
    /// failure does not repeat on every ban.
    pub fn flush_conntrack(&mut self) -> ConntrackOutcome {
        if self.pending_conntrack.is_empty() {
            return ConntrackOutcome::Deleted(0);
        }
        let pending = std::mem::take(&mut self.pending_conntrack);
        let nets: Vec<IpNet> = pending.keys().copied().collect();
        let Some(conntrack) = self.live.as_mut().and_then(|l| l.conntrack.as_mut()) else {
            return ConntrackOutcome::Kept;
        };
        let allowlist = &self.ruleset.allowlist;
        let result = if self.config.dry_run {
            conntrack.entries_from(&nets, allowlist).map(|entries| {
                for entry in &entries {
                    let jail =
                        jail_of_source(&pending, entry.src).map_or("", |j| &self.ruleset.jails[j].name);
                    tracing::info!(jail, ip = %entry.src, "dry run: would delete conntrack entry {entry}");
                }
                ConntrackOutcome::WouldDelete(entries.len())
            })
        } else {
            conntrack.delete_from(&nets, allowlist).map(ConntrackOutcome::Deleted)
        };
        self.last_conntrack_walk = Some(Instant::now());
        result.unwrap_or_else(|e| {
            tracing::warn!(
                bans = nets.len(),
                "the bans hold, but their connections' conntrack entries remain: {e}"
            );
            ConntrackOutcome::Failed(e)
        })
    }

    /// When the next clamped ban needs [`Enforcer::refresh`], if any does.
    pub fn next_refresh(&self) -> Option<Timestamp> {
        self.long_bans.values().map(|l| l.refresh_at).min()
    }

    /// Re-adds every ban whose clamped kernel timeout is due to lapse, with
    /// the time it has left (clamped again if still too long); forgets bans
    /// that have ended. Returns how many entries were re-added.
    pub fn refresh(&mut self, now: Timestamp) -> Result<usize, EnforceError> {
        let due: Vec<((usize, IpNet), LongBan)> =
            self.long_bans.iter().filter(|(_, l)| l.refresh_at <= now).map(|(k, l)| (*k, *l)).collect();
        let mut refreshed = 0;
        for ((jail, net), long) in due {
            if long.until <= now {
                self.long_bans.remove(&(jail, net));
                continue;
            }
            let (timeout, again) = self.timeout_until(long.until, now);
            let dry_run = self.config.dry_run;
            let Enforcer { ruleset, live, .. } = self;
            let live = live.as_mut().ok_or(EnforceError::NotStarted("refresh"))?;
            let rules = &ruleset.jails[jail];
            let set = rules.set(Family::of(&net));
            if dry_run {
                tracing::info!(jail = %rules.name, ip = %net, %timeout, "dry run: would re-add {net} to {set} (timeout {timeout})");
            } else {
                live.ipset.add(set, net, timeout)?;
                tracing::debug!(jail = %rules.name, ip = %net, %timeout, "long ban refreshed");
            }
            match again {
                Some(again) => self.long_bans.insert((jail, net), again),
                None => self.long_bans.remove(&(jail, net)),
            };
            refreshed += 1;
        }
        Ok(refreshed)
    }

    /// Re-reads the host's addresses and restores warden's jumps and chains
    /// where something removed or moved them (after Docker restarted, or
    /// periodically); returns the repairs (in a dry run, those it would make).
    pub fn check(&mut self) -> Result<Vec<String>, EnforceError> {
        self.refresh_own_addresses()?;
        if self.config.dry_run {
            return self.plan_chains_dry();
        }
        let Enforcer { ruleset, live, .. } = self;
        let live = live.as_mut().ok_or(EnforceError::NotStarted("check"))?;
        Ok(live.chains.check_jumps(ruleset)?)
    }

    /// Removes every jump, chain and set warden created, and nothing else;
    /// works without [`Enforcer::start`]. Returns what was removed (in a dry
    /// run, what would be).
    pub fn cleanup(&mut self) -> Result<Vec<String>, EnforceError> {
        let dry_run = self.config.dry_run;
        let live = self.connect()?;
        let mut removed = Vec::new();
        if dry_run {
            for family in [Family::V4, Family::V6] {
                if let Some(script) = rules::cleanup_script(&live.chains.save(family)?) {
                    removed.extend(
                        script.changes.iter().map(|c| format!("{}: would remove: {c}", tables(family))),
                    );
                }
            }
            for name in live.ipset.set_names()?.into_iter().filter(|n| rules::is_warden_set(n)) {
                removed.push(format!("would destroy set {name}"));
            }
            for change in &removed {
                tracing::info!("dry run: cleanup {change}");
            }
            return Ok(removed);
        }
        removed.extend(live.chains.cleanup()?);
        for set in sets::destroy_sets(&mut live.ipset)? {
            tracing::info!(set = %set, "cleanup: set destroyed");
            removed.push(format!("set {set} destroyed"));
        }
        self.long_bans.clear();
        Ok(removed)
    }
}

/// The jail of the queued network holding `src`, for logs.
fn jail_of_source(pending: &HashMap<IpNet, usize>, src: IpAddr) -> Option<usize> {
    pending
        .get(&IpNet::from(src))
        .or_else(|| pending.iter().find(|(n, _)| n.contains(&src)).map(|(_, j)| j))
        .copied()
}

fn tables(family: Family) -> &'static str {
    match family {
        Family::V4 => "iptables",
        Family::V6 => "ip6tables",
    }
}

/// `net` as the sets hold it: host bits cleared, and IPv4-mapped IPv6
/// (`::ffff:a.b.c.d/n`, n ≥ 96) as the IPv4 network it stands for.
fn canonical(net: IpNet) -> IpNet {
    let net = net.trunc();
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::BanOrigin;

    fn ban(net: &str, jail: &str, until: Option<i64>) -> Ban {
        Ban {
            net: net.parse().unwrap(),
            jail: jail.into(),
            origin: BanOrigin::Manual,
            at: Timestamp::from_secs(1_000),
            until: until.map(Timestamp::from_secs),
            count: 1,
            failures: 0,
        }
    }

    fn enforcer() -> Enforcer {
        let mut e = Enforcer::new(
            EnforcerConfig::default(),
            vec![JailRules::new("sshd")],
            vec!["192.0.2.0/28".parse().unwrap()],
        );
        e.own_addrs = vec!["198.51.100.10".parse().unwrap()];
        e
    }

    #[test]
    fn mapped_and_unaligned_networks_are_canonical() {
        assert_eq!(
            canonical("::ffff:203.0.113.7/128".parse().unwrap()),
            "203.0.113.7/32".parse::<IpNet>().unwrap()
        );
        assert_eq!(canonical("203.0.113.7/24".parse().unwrap()), "203.0.113.0/24".parse::<IpNet>().unwrap());
        assert_eq!(canonical("2001:db8::1/64".parse().unwrap()), "2001:db8::/64".parse::<IpNet>().unwrap());
    }

    #[test]
    fn vetting_names_the_jail_and_why() {
        let e = enforcer();
        let jail = e.jail_of("sshd").unwrap();
        assert_eq!(
            e.vet(jail, &ban("203.0.113.7/32", "sshd", None)).unwrap(),
            "203.0.113.7/32".parse::<IpNet>().unwrap()
        );
        let err = e.vet(jail, &ban("0.0.0.0/0", "sshd", None)).unwrap_err();
        assert_eq!(err.to_string(), "jail sshd: refusing to ban 0.0.0.0/0: it covers every address");
        let err = e.vet(jail, &ban("198.51.100.0/24", "sshd", None)).unwrap_err();
        assert!(err.to_string().contains("198.51.100.10, an address of this host"), "{err}");
        let err = e.vet(jail, &ban("192.0.2.3/32", "sshd", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jail sshd: refusing to ban 192.0.2.3/32: the allowlist (ignoreip) holds 192.0.2.0/28, which \
             covers it; remove it from ignoreip to ban it"
        );
        let err = e.vet(jail, &ban("203.0.113.0/24", "sshd", None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "jail sshd: cannot ban the network 203.0.113.0/24: this jail bans single addresses (its sets \
             are hash:ip); ban it in a jail whose ban_prefix is /24 or shorter"
        );
        let err = e.jail_of("nope").unwrap_err();
        assert_eq!(err.to_string(), "no jail named \"nope\" in the firewall; known jails: sshd");
    }

    #[test]
    fn timeouts_are_remaining_time_permanent_or_clamped_with_a_refresh() {
        let e = enforcer();
        let now = Timestamp::from_secs(10_000);
        let net: IpNet = "203.0.113.7/32".parse().unwrap();
        let t = |until| e.timeout_for(0, net, &ban("203.0.113.7/32", "sshd", until), now);
        assert_eq!(t(None).unwrap().0, EntryTimeout::PERMANENT);
        let (short, long) = t(Some(10_600)).unwrap();
        assert_eq!((short, long.is_none()), (EntryTimeout::from_secs(600), true));
        assert!(matches!(t(Some(10_000)), Err(EnforceError::Expired { .. })));

        let year = 365 * 24 * 3600;
        let (clamped, long) = t(Some(10_000 + year)).unwrap();
        assert_eq!(clamped, EntryTimeout::MAX);
        let long = long.unwrap();
        let lead = u64::from(MAX_TIMEOUT_SECS) - DEFAULT_REFRESH_MARGIN.as_secs();
        assert_eq!(long.refresh_at, now.saturating_add(Duration::from_secs(lead)));
        assert!(long.refresh_at < now.saturating_add(Duration::from_secs(u64::from(MAX_TIMEOUT_SECS))));
    }

    #[test]
    fn calls_before_start_say_so() {
        let mut e = enforcer();
        let err = e.ban(&ban("203.0.113.7/32", "sshd", None), Timestamp::from_secs(0)).unwrap_err();
        assert_eq!(err.to_string(), "the firewall is not started: call Enforcer::start before ban");
        assert!(matches!(
            e.unban(&"203.0.113.7/32".parse().unwrap(), "sshd"),
            Err(EnforceError::NotStarted(_))
        ));
    }
}
