//! The engine: filters, jails, ban history and the store, driven by one task.
//!
//! State owned: every jail instance (its filter, its per-source match state,
//! its failure windows and active bans), the shared ban history, the
//! containers seen, and the failures and cursors not yet committed.
//! Receives [`SourceEvent`]s (lines, container changes) and control calls;
//! sends bans and unbans to the firewall task.
//!
//! **Order of effects.** A ban is committed to the store durably, then
//! handed to the firewall. Failure windows and source cursors are committed
//! together in cheap batches; after a crash both roll back together, so a
//! line is neither counted twice nor lost. Bans always reach the store
//! before the cursor past their lines does.
//!
//! **Commit pacing.** A batch rewrites every failure window changed since
//! the last one, so under a flood from many addresses a commit costs about
//! as much however often it runs. Batches are committed every
//! [`COMMIT_EVERY`], or, when the last commit took longer than a
//! [`COMMIT_SHARE`]th of that, [`COMMIT_SHARE`] times its duration after
//! it ends (at most [`MAX_COMMIT_EVERY`]): committing then takes a bounded
//! share of the engine's time instead of most of it. Since cursors are
//! committed with the windows, a crash makes the sources read again at most
//! the lines of that interval (plus the store's non-durable batches; see
//! [`crate::store`]), and counts none of them twice.
//!
//! **Group commit.** A durable commit costs an `fsync` or two (about 10 ms
//! on a virtual disk), more than a line arriving every few milliseconds
//! leaves. So the bans decided from source events wait in the engine until
//! [`Engine::flush_bans`], which the daemon calls once it has handled every
//! event already queued: one commit covers them all, and a ban waits at
//! most for the commit before it instead of for one commit per queued line.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::{ClusterHandle, Replicate, Staged};
use crate::config::{Config, JailConfig};
use crate::core::{Ban, BanTime, Clock, Failure, LogLine, SourceRef, SystemClock, Timestamp};
use crate::filter::{Filter, MatchState, Outcome, Registry};
use crate::firewall::enforcer::Enforcer;
use crate::firewall::rules::JailRules;
use crate::jail::{BanHistory, Decision, Jail, SplitMix64};
use crate::source::{Batch, PublishedPort, SourceEvent};
use crate::store::{self, FailureRecord, Store, StoreError};

use super::containers::Containers;
use super::firewall::{FirewallCmd, FirewallHandle};
use super::setup;

/// How often failure windows and cursors are committed while lines flow,
/// at most (see "Commit pacing" above).
pub const COMMIT_EVERY: Duration = Duration::from_millis(250);
/// The time between two commits is at least this many times the last
/// commit's duration: committing takes at most about 1/(1 + this) of the
/// engine's time.
pub const COMMIT_SHARE: u32 = 4;
/// The longest time between two commits while lines flow, however long
/// the last one took.
pub const MAX_COMMIT_EVERY: Duration = Duration::from_secs(2);
/// Longest the engine sleeps with nothing to do; expiry is checked then.
const IDLE_TICK: Duration = Duration::from_secs(1);
/// Decisions kept for the cluster while its queue is full; beyond this the
/// oldest are dropped (their bans are in the store, and the cluster's
/// anti-entropy publishes active bans its hash lacks).
const MAX_CLUSTER_BACKLOG: usize = 100_000;
/// Match states kept per jail (one per source: container, file, journal);
/// beyond this the least useful are dropped, costing only multi-line context.
const MAX_STATES_PER_JAIL: usize = 4096;

/// Where a jail instance comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JailOrigin {
    /// The config file.
    Config,
    /// Defined by container labels (`warden.jail.<name>.filter=…`).
    Labels { container: String },
    /// A configured jail with label overrides for one container.
    Override { container: String },
}

/// One jail as it runs.
pub struct JailRuntime {
    pub config: JailConfig,
    pub jail: Jail,
    pub filter: Arc<Filter>,
    pub origin: JailOrigin,
    /// Ports published by the containers feeding it, for port inference.
    pub published: BTreeSet<PublishedPort>,
    pub total_failed: u64,
    pub total_banned: u64,
    states: HashMap<Arc<str>, MatchState>,
    /// Addresses whose failure windows changed since the last commit.
    /// Per jail, so a line costs no jail-name clone or compare; foldhash:
    /// fast and randomly seeded (addresses come from log lines).
    dirty: HashSet<IpAddr, foldhash::fast::RandomState>,
    /// What the "banned" line repeats for most of this jail's bans.
    ban_text: BanText,
}

impl JailRuntime {
    pub fn new(name: &str, config: JailConfig, filter: Arc<Filter>, origin: JailOrigin) -> JailRuntime {
        JailRuntime {
            jail: Jail::new(setup::jail_settings(name, &config)),
            config,
            filter,
            origin,
            published: BTreeSet::new(),
            total_failed: 0,
            total_banned: 0,
            states: HashMap::new(),
            dirty: HashSet::default(),
            ban_text: BanText::default(),
        }
    }

    pub fn rules(&self) -> JailRules {
        setup::jail_rules(self.jail.name(), &self.config, &self.published)
    }
}

/// Durations as the "banned" line spells them, formatted once per jail
/// rather than once per ban: under a flood of bans it adds up.
#[derive(Default)]
struct BanText {
    /// The configured bantime and its spelling.
    configured: Option<(BanTime, String)>,
    /// The length of the last ban logged (ms; `None` when permanent) and
    /// its spelling.
    last: Option<(Option<i64>, String)>,
}

impl BanText {
    /// The spellings of `bantime` and of `ban`'s length.
    fn of(&mut self, bantime: BanTime, ban: &Ban) -> (&str, &str) {
        if self.configured.as_ref().is_none_or(|(b, _)| *b != bantime) {
            self.configured = Some((bantime, bantime.to_string()));
        }
        let length = ban.until.map(|until| until.as_millis().saturating_sub(ban.at.as_millis()));
        if self.last.as_ref().is_none_or(|(l, _)| *l != length) {
            let text = match ban.until {
                Some(until) => crate::core::duration::format_duration(until.since(ban.at)),
                None => "permanent".to_string(),
            };
            self.last = Some((length, text));
        }
        let configured = self.configured.as_ref().map_or("", |(_, text)| text.as_str());
        (configured, self.last.as_ref().map_or("", |(_, text)| text.as_str()))
    }
}

/// See the module documentation.
pub struct Engine {
    pub(super) config: Config,
    pub(super) registry: Registry,
    pub(super) store: Arc<Store>,
    pub(super) jails: BTreeMap<Arc<str>, JailRuntime>,
    pub(super) history: BanHistory,
    pub(super) rng: SplitMix64,
    pub(super) firewall: FirewallHandle,
    pub(super) containers: Containers,
    cursors: HashMap<Arc<str>, Vec<u8>>,
    forgotten_cursors: Vec<String>,
    /// When the last commit ended.
    last_commit: Instant,
    /// The time from the last commit to the next (see "Commit pacing").
    commit_every: Duration,
    /// The firewall's rules no longer match the jails (a container brought
    /// a label jail or new published ports): rebuilt on the next tick.
    pub(super) ruleset_dirty: bool,
    pub(super) started: Instant,
    pub(super) dry_run: bool,
    pub(super) backend: Option<crate::firewall::backend::Backend>,
    /// Unknown jail names already warned about.
    warned: HashSet<String>,
    /// The last source seen and its state key, to avoid a lookup per line.
    last_source: Option<(SourceRef, Arc<str>)>,
    /// Bans decided from source events, not yet persisted and enforced
    /// (see "Group commit" above).
    pending_bans: Vec<Ban>,
    /// The cluster, when the config has a `cluster:` section.
    pub(super) cluster: Option<ClusterHandle>,
    /// Decisions the cluster's queue had no room for yet.
    cluster_backlog: VecDeque<Staged>,
}

/// What the daemon needs to start an engine: its state restored from the
/// store, and the enforcer and bans for the firewall task.
pub struct Restored {
    pub jails: BTreeMap<Arc<str>, JailRuntime>,
    pub history: BanHistory,
    pub active: Vec<Ban>,
}

/// Builds the jails of `config` and restores bans, history and failure
/// windows from `store`.
pub fn restore(
    config: &Config,
    filters: BTreeMap<String, Arc<Filter>>,
    store: &Store,
    extra: BTreeMap<Arc<str>, JailRuntime>,
    now: Timestamp,
) -> anyhow::Result<Restored> {
    let mut jails = extra;
    for (name, filter) in filters {
        let jail = &config.jails[&name];
        jails.insert(
            Arc::from(name.as_str()),
            JailRuntime::new(&name, jail.clone(), filter, JailOrigin::Config),
        );
    }
    let mut history = BanHistory::new();
    history.import(store.history()?.into_iter().map(|h| crate::jail::HistoryEntry {
        net: h.net,
        count: h.count,
        last: h.last,
    }));
    let mut active = Vec::new();
    for ban in store.active_bans(now)? {
        match jails.get_mut(ban.jail.as_str()) {
            Some(rt) => {
                rt.jail.restore(ban.clone());
                active.push(ban);
            }
            None => tracing::warn!(
                jail = %ban.jail, ip = %ban.net,
                "a stored ban belongs to a jail that no longer exists; it stays in the store but is not enforced \
                 (add the jail back, or `warden unban` it)"
            ),
        }
    }
    for record in store.all_failures()? {
        if let Some(rt) = jails.get_mut(record.jail.as_str()) {
            rt.jail.restore_failures(record.addr, &record.times, now);
        }
    }
    Ok(Restored { jails, history, active })
}

/// The firewall's rules for `jails` (and, with `remote`, for the bans of
/// other hosts: first, right after the allowlist), the allowlist from
/// `config`, and the enforcer built from them.
pub fn build_enforcer(
    config: &Config,
    jails: &BTreeMap<Arc<str>, JailRuntime>,
    remote: bool,
    dry_run: bool,
    backend: Option<crate::firewall::backend::Backend>,
) -> Enforcer {
    let mut fw = setup::enforcer_config(config, dry_run, backend);
    fw.keep_conntrack =
        jails.iter().filter(|(_, rt)| !rt.config.flush_conntrack).map(|(name, _)| name.to_string()).collect();
    let mut rules: Vec<JailRules> = Vec::new();
    if remote {
        rules.push(JailRules::remote());
    }
    rules.extend(jails.values().filter(|rt| rt.config.enabled).map(JailRuntime::rules));
    Enforcer::new(fw, rules, config.jail_template.ignoreip.clone())
}

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        config: Config,
        registry: Registry,
        store: Arc<Store>,
        restored: Restored,
        firewall: FirewallHandle,
        containers: Containers,
        dry_run: bool,
        backend: Option<crate::firewall::backend::Backend>,
        cluster: Option<ClusterHandle>,
    ) -> Engine {
        Engine {
            config,
            registry,
            store,
            jails: restored.jails,
            history: restored.history,
            rng: SplitMix64::new(seed()),
            firewall,
            containers,
            cursors: HashMap::new(),
            forgotten_cursors: Vec::new(),
            last_commit: Instant::now(),
            commit_every: COMMIT_EVERY,
            ruleset_dirty: false,
            started: Instant::now(),
            dry_run,
            backend,
            warned: HashSet::new(),
            last_source: None,
            pending_bans: Vec::new(),
            cluster,
            cluster_backlog: VecDeque::new(),
        }
    }

    /// Runs `change` on the store with the outbox entries that replicate
    /// `decisions` in the same commit (one `fsync` for both), then hands
    /// the entries to the cluster. Without a cluster, or with no decisions,
    /// it is `change` alone.
    pub(super) fn commit_replicated<T>(
        &mut self,
        decisions: Vec<Replicate>,
        change: impl FnOnce(&Store, &[(u64, Vec<u8>)]) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let store = &*self.store;
        let Some(cluster) = self.cluster.as_ref().filter(|_| !decisions.is_empty()) else {
            return change(store, &[]);
        };
        let (staged, result) =
            cluster.stage_with(&decisions, SystemClock.now(), |outbox| change(store, outbox));
        self.cluster_backlog.push_back(staged);
        self.offer_to_cluster();
        result
    }

    /// Offers staged entries to the cluster, in order, without waiting;
    /// what its queue has no room for waits here and is offered again on
    /// the next tick.
    pub(super) fn offer_to_cluster(&mut self) {
        let Some(cluster) = &self.cluster else { return };
        while let Some(staged) = self.cluster_backlog.pop_front() {
            if let Err(back) = cluster.offer(staged) {
                self.cluster_backlog.push_front(back);
                break;
            }
        }
        let mut held: usize = self.cluster_backlog.iter().map(|s| s.entries.len()).sum();
        let (mut dropped, mut lost) = (0, 0);
        while held > MAX_CLUSTER_BACKLOG
            && let Some(oldest) = self.cluster_backlog.pop_front()
        {
            held -= oldest.entries.len();
            dropped += oldest.entries.len();
            if oldest.durable {
                // Still in the outbox table: the publisher reads it back.
                cluster.dropped_durable();
            } else {
                lost += oldest.entries.len();
            }
        }
        if dropped > 0 {
            tracing::warn!(
                dropped,
                lost,
                "the cluster's queue is full: the oldest decisions wait in the outbox table; those not \
                 stored there ({lost}) are published by anti-entropy later (their bans are stored)"
            );
        }
    }

    pub fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    /// Handles one event from a source. Bans it decides wait for
    /// [`Engine::flush_bans`].
    pub fn on_source_event(&mut self, event: SourceEvent) {
        match event {
            SourceEvent::Lines(batch) => self.on_batch(batch),
            SourceEvent::ContainerUp(info) => self.container_up(info),
            SourceEvent::ContainerDown { id } => self.containers.down(&id),
            SourceEvent::DockerConnected => {
                self.firewall.send(FirewallCmd::Check);
            }
            SourceEvent::ContainerGone { id, cursor_key } => {
                self.containers.gone(&id);
                self.cursors.remove(&cursor_key);
                self.forgotten_cursors.push(cursor_key.to_string());
            }
        }
    }

    fn on_batch(&mut self, batch: Batch) {
        let now = self.now();
        let mut bans = std::mem::take(&mut self.pending_bans);
        for line in &batch.lines {
            let routes = self.containers.routes(&line.source, &line.jails).clone();
            for jail in routes.iter() {
                self.process(jail, line, now, &mut bans);
            }
        }
        self.pending_bans = bans;
        if let Some(cursor) = batch.cursor {
            self.cursors.insert(cursor.key, cursor.value);
        }
        if self.last_commit.elapsed() >= self.commit_every {
            self.commit();
        }
    }

    /// Persists and enforces the bans decided since the last call, in one
    /// durable commit.
    pub fn flush_bans(&mut self) {
        let bans = std::mem::take(&mut self.pending_bans);
        self.persist_and_enforce(bans, None);
    }

    /// Runs one line through one jail.
    fn process(&mut self, jail_name: &Arc<str>, line: &LogLine, now: Timestamp, bans: &mut Vec<Ban>) {
        let Engine { jails, history, rng, warned, last_source, .. } = self;
        let Some(rt) = jails.get_mut(jail_name) else {
            if warned.insert(jail_name.to_string()) {
                tracing::warn!(jail = %jail_name, source = ?line.source, "lines for an unknown jail are ignored; configure the jail or fix the label");
            }
            return;
        };
        if !rt.config.enabled {
            return;
        }
        let key = match last_source {
            Some((source, key)) if same_source(source, &line.source) => key.clone(),
            _ => {
                let key: Arc<str> = Arc::from(state_key(&line.source));
                *last_source = Some((line.source.clone(), key.clone()));
                key
            }
        };
        if rt.states.len() >= MAX_STATES_PER_JAIL && !rt.states.contains_key(&key) {
            rt.states.clear();
        }
        let state = rt.states.entry(key).or_insert_with(|| MatchState::new(now));
        state.set_reference(now);
        let Outcome::Match(hit) = rt.filter.process(state, &line.text, line.time) else { return };
        if !hit.counted {
            return;
        }
        rt.total_failed += 1;
        let failure = Failure {
            jail: jail_name.clone(),
            addr: hit.addr,
            time: hit.time.unwrap_or(now),
            user: hit.user.map(|u| u.to_string()),
        };
        match rt.jail.on_failure(&failure, now, history, &mut || rng.next_f64()) {
            Decision::Ban(ban) => {
                rt.total_banned += 1;
                log_ban(&ban, &line.source, rt.config.bantime, &mut rt.ban_text);
                rt.dirty.insert(hit.addr);
                bans.push(ban);
            }
            Decision::Counted { failures } => {
                tracing::debug!(jail = %jail_name, ip = %hit.addr, failures, "failure counted");
                rt.dirty.insert(hit.addr);
            }
            Decision::Ignored | Decision::Stale | Decision::AlreadyBanned { .. } => {}
        }
    }

    /// Commits `bans` durably, then hands them to the firewall. A store
    /// failure is logged and the bans are still enforced: blocking an
    /// attacker matters more than remembering it.
    pub(super) fn persist_and_enforce(
        &mut self,
        bans: Vec<Ban>,
        done: Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ) {
        if bans.is_empty() {
            if let Some(done) = done {
                let _ = done.send(Ok(()));
            }
            return;
        }
        // Their cluster entries (if any) are stored in the same commit.
        let decisions = if self.cluster.is_some() {
            bans.iter().cloned().map(Replicate::Ban).collect()
        } else {
            Vec::new()
        };
        if let Err(e) =
            self.commit_replicated(decisions, |store, outbox| store.put_bans_queued(&bans, outbox))
        {
            tracing::error!(bans = bans.len(), "cannot persist bans (they are enforced anyway): {e}");
        }
        // A jail a container's labels just defined (or a port it published)
        // must reach the firewall before the first ban it decides.
        self.replace_firewall_if_dirty();
        self.firewall.send(FirewallCmd::Ban { bans, done });
    }

    /// Expires bans that ran out and commits what is pending.
    pub fn tick(&mut self) {
        let now = self.now();
        let mut expired: Vec<(String, ipnet::IpNet)> = Vec::new();
        for rt in self.jails.values_mut() {
            for ban in rt.jail.expire(now) {
                tracing::info!(jail = %ban.jail, ip = %ban.net, "ban expired");
                expired.push((ban.jail, ban.net));
            }
        }
        if !expired.is_empty() {
            if let Err(e) = self.store.remove_bans(&expired) {
                tracing::error!(
                    "cannot remove expired bans from the store (the next start skips them anyway): {e}"
                );
            }
            // The kernel drops entries whose timeout ran out on its own; this
            // covers bans whose timeout was clamped or changed by hand.
            self.firewall.send(FirewallCmd::Unban { entries: expired, done: None });
        }
        self.replace_firewall_if_dirty();
        if !self.cluster_backlog.is_empty() {
            self.offer_to_cluster();
        }
        self.commit();
    }

    /// When [`Engine::tick`] should next run.
    pub fn next_tick(&self) -> Instant {
        let now_wall = self.now();
        let mut next = Instant::now() + IDLE_TICK;
        if let Some(expiry) = self.jails.values().filter_map(|rt| rt.jail.next_expiry()).min() {
            let wait =
                Duration::from_millis(expiry.as_millis().saturating_sub(now_wall.as_millis()).max(0) as u64);
            next = next.min(Instant::now() + wait);
        }
        if self.has_pending() {
            next = next.min(self.last_commit + self.commit_every);
        }
        if !self.cluster_backlog.is_empty() {
            next = next.min(Instant::now() + Duration::from_millis(100));
        }
        next
    }

    fn has_pending(&self) -> bool {
        self.jails.values().any(|rt| !rt.dirty.is_empty())
            || !self.cursors.is_empty()
            || !self.forgotten_cursors.is_empty()
    }

    /// Commits failure windows and cursors in one cheap transaction.
    pub fn commit(&mut self) {
        // A cursor must never be stored past lines whose bans are not.
        self.flush_bans();
        let started = Instant::now();
        self.last_commit = started;
        if !self.has_pending() {
            self.commit_every = COMMIT_EVERY;
            return;
        }
        let mut batch = store::Batch::default();
        for (name, rt) in self.jails.iter_mut() {
            let JailRuntime { jail, dirty, .. } = rt;
            for ip in dirty.drain() {
                let (key, times) = jail.window(ip);
                batch.failures.push(FailureRecord {
                    jail: name.to_string(),
                    addr: key.network(),
                    times: times.to_vec(),
                });
            }
        }
        batch.cursors = self.cursors.drain().map(|(k, v)| (k.to_string(), v)).collect();
        batch.removed_cursors = std::mem::take(&mut self.forgotten_cursors);
        if let Err(e) = self.store.commit_batch(&batch) {
            tracing::error!(
                "cannot commit failures and cursors (lines may be read again after a restart): {e}"
            );
        }
        self.last_commit = Instant::now();
        self.commit_every = commit_interval(self.last_commit - started);
    }

    /// Switches to a new, already validated config (a reload): jails are
    /// reconfigured in place, keeping bans and failure windows; new ones
    /// start empty; removed ones have their bans lifted. Label jails stay.
    /// The firewall is rebuilt. Returns a summary for the caller.
    pub fn apply_config(
        &mut self,
        config: Config,
        registry: Registry,
        filters: BTreeMap<String, Arc<Filter>>,
    ) -> serde_json::Value {
        let mut added = Vec::new();
        let mut removed = Vec::new();
        let mut lifted: Vec<(String, ipnet::IpNet)> = Vec::new();
        let gone: Vec<Arc<str>> = self
            .jails
            .iter()
            .filter(|(name, rt)| rt.origin == JailOrigin::Config && !filters.contains_key(&***name))
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            if let Some(rt) = self.jails.remove(&name) {
                lifted.extend(rt.jail.bans().map(|b| (b.jail, b.net)));
                removed.push(name.to_string());
            }
        }
        for (name, filter) in filters {
            let jail_config = config.jails[&name].clone();
            match self.jails.get_mut(name.as_str()) {
                Some(rt) => {
                    rt.jail.reconfigure(setup::jail_settings(&name, &jail_config));
                    rt.config = jail_config;
                    rt.filter = filter;
                    rt.states.clear();
                }
                None => {
                    added.push(name.clone());
                    let rt = JailRuntime::new(&name, jail_config, filter, JailOrigin::Config);
                    self.jails.insert(Arc::from(name.as_str()), rt);
                }
            }
        }
        if !lifted.is_empty() {
            let decisions =
                lifted.iter().map(|(jail, net)| Replicate::Unban { net: *net, jail: jail.clone() }).collect();
            if let Err(e) =
                self.commit_replicated(decisions, |store, outbox| store.remove_bans_queued(&lifted, outbox))
            {
                tracing::error!("cannot remove the bans of removed jails from the store: {e}");
            }
            self.firewall.send(FirewallCmd::Unban { entries: lifted.clone(), done: None });
        }
        if config.cluster != self.config.cluster {
            tracing::warn!("the cluster: section changed; it takes effect at the next restart");
        }
        self.config = config;
        self.registry = registry;
        self.warned.clear();
        self.replace_firewall();
        serde_json::json!({ "jails": self.jails.len(), "added": added, "removed": removed, "unbanned": lifted.len() })
    }

    /// Every active ban of every jail.
    pub fn active_bans(&self) -> Vec<Ban> {
        let now = self.now();
        self.jails.values().flat_map(|rt| rt.jail.bans().filter(|b| b.is_active(now))).collect()
    }

    /// Rebuilds the enforcer if jails or published ports changed since.
    fn replace_firewall_if_dirty(&mut self) {
        if self.ruleset_dirty {
            self.ruleset_dirty = false;
            self.replace_firewall();
        }
    }

    /// Rebuilds the enforcer for the current jails and swaps it in; bans are
    /// re-installed idempotently, without a window.
    pub(super) fn replace_firewall(&mut self) {
        let enforcer =
            build_enforcer(&self.config, &self.jails, self.cluster.is_some(), self.dry_run, self.backend);
        let (done, _) = tokio::sync::oneshot::channel();
        self.firewall.send(FirewallCmd::Replace {
            enforcer: Box::new(enforcer),
            active: self.active_bans(),
            done,
        });
    }
}

/// The time to wait after a commit that took `took` (see "Commit pacing").
fn commit_interval(took: Duration) -> Duration {
    took.saturating_mul(COMMIT_SHARE).clamp(COMMIT_EVERY, MAX_COMMIT_EVERY)
}

/// Whether two lines come from the same source. Paths compare as bytes:
/// `Path`'s own equality walks components, which costs on every line.
fn same_source(a: &SourceRef, b: &SourceRef) -> bool {
    match (a, b) {
        (SourceRef::File { path: x }, SourceRef::File { path: y }) => x.as_os_str() == y.as_os_str(),
        _ => a == b,
    }
}

/// The key of a source's match state: multi-line ids are per stream.
fn state_key(source: &SourceRef) -> String {
    match source {
        SourceRef::Docker { container_id, .. } => format!("docker:{container_id}"),
        SourceRef::Journald { .. } => "journald".to_string(),
        SourceRef::File { path } => format!("file:{}", path.display()),
        SourceRef::Stdin => "stdin".to_string(),
    }
}

fn log_ban(ban: &Ban, source: &SourceRef, bantime: BanTime, text: &mut BanText) {
    let container = match source {
        SourceRef::Docker { container_name, .. } => container_name.as_str(),
        _ => "",
    };
    let (configured, duration) = text.of(bantime, ban);
    tracing::info!(
        jail = %ban.jail, ip = %ban.net, container, failures = ban.failures, duration = %duration,
        count = ban.count, configured_bantime = %configured, "banned"
    );
}

/// A seed for `rndtime` jitter; its quality hardly matters.
fn seed() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0x5eed, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::BanOrigin;

    #[test]
    fn commit_interval_is_a_multiple_of_the_last_commit_within_bounds() {
        assert_eq!(commit_interval(Duration::ZERO), COMMIT_EVERY);
        assert_eq!(
            commit_interval(Duration::from_millis(10)),
            COMMIT_EVERY,
            "a cheap commit keeps the floor"
        );
        assert_eq!(commit_interval(Duration::from_millis(100)), Duration::from_millis(100) * COMMIT_SHARE);
        assert_eq!(commit_interval(Duration::from_secs(5)), MAX_COMMIT_EVERY);
    }

    #[test]
    fn ban_text_spells_durations_and_follows_changes() {
        let day = BanTime::Finite(Duration::from_secs(86_400));
        let ban = |secs: Option<i64>| Ban {
            net: "192.0.2.1/32".parse().unwrap(),
            jail: "sshd".into(),
            origin: BanOrigin::Jail,
            at: Timestamp::from_secs(1_000),
            until: secs.map(|s| Timestamp::from_secs(1_000 + s)),
            count: 1,
            failures: 5,
        };
        let mut text = BanText::default();
        assert_eq!(text.of(day, &ban(Some(86_400))), ("1d", "1d"));
        assert_eq!(text.of(day, &ban(Some(90_000))), ("1d", "1d1h"), "an incremented ban");
        assert_eq!(text.of(BanTime::Permanent, &ban(None)), ("permanent", "permanent"));
        assert_eq!(text.of(day, &ban(Some(600))), ("1d", "10m"));
    }
}
