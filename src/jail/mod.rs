//! Jails: turn failures into ban decisions. Pure logic with no I/O; the
//! caller passes `now` explicitly (from its [`crate::core::Clock`]), so every
//! rule is testable with plain unit tests.
//!
//! A [`Jail`] owns its settings, its failure windows (per address or subnet,
//! bounded by `max_tracked`) and its active bans (ordered by expiry). The ban
//! history that drives `bantime_increment` is shared by all jails and passed
//! in, as is the random source for `rndtime` jitter.
//!
//! The rules, in the order [`Jail::on_failure`] applies them:
//! 1. an address on the ignore list never counts ([`Decision::Ignored`]);
//! 2. a failure older than `findtime` before `now` is dropped
//!    ([`Decision::Stale`]); failures may arrive out of order, and one
//!    dated after `now` is taken as `now`;
//! 3. while the address is banned in this jail, alone or within a subnet
//!    ban, its failures are not counted ([`Decision::AlreadyBanned`]), so
//!    log lag cannot queue up an immediate re-ban;
//! 4. failures count per *ban network*: `prefix_network(addr, ban_prefix)`.
//!    With the default /32 and /128 that is fail2ban's per-address counting.
//!    With `ban_prefix: {v4: 24}`, failures from every address of a /24 add
//!    up in one window. This is deliberate: a botnet spread over a /24 (the
//!    Mailu bad-auth-bots case) rarely trips a per-address counter, and an
//!    operator who sets `ban_prefix` has said the /24 is the unit of trust;
//! 5. `maxretry` failures within `findtime` (inclusive) ban the network for
//!    `bantime`, lengthened by `bantime_increment` from the shared history,
//!    and that network's window is cleared ([`Decision::Ban`]); otherwise
//!    the failure is [`Decision::Counted`].
//!
//! Bans end through [`Jail::expire`] (time), [`Jail::unban`] (operator), or
//! a newer ban on the same network replacing them.

pub mod expiry;
pub mod history;
pub mod ignore;
pub mod increment;
mod net;
mod netmap;
pub mod window;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use crate::core::{Ban, BanOrigin, BanPrefix, BanTime, Failure, IncrementPolicy, Timestamp, prefix_network};

pub use expiry::ActiveBans;
pub use history::{BanHistory, HistoryEntry};
pub use ignore::IgnoreList;
pub use increment::{SplitMix64, ban_duration};
pub use window::FailureWindows;

use net::{host_net, normalize_net};

/// Default cap on the addresses (or subnets) a jail tracks failures for.
/// An entry costs about 200 bytes of heap with the default `maxretry` (hash
/// entry, recency index and timestamps; measured 170–190), so this bounds a
/// jail's window memory to about 10 MB.
pub const DEFAULT_MAX_TRACKED: usize = 50_000;

/// What a jail needs to decide; the config module builds one per jail.
#[derive(Debug, Clone, PartialEq)]
pub struct JailSettings {
    pub name: Arc<str>,
    /// Failures within `findtime` that trigger a ban; 0 is taken as 1.
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: BanTime,
    pub increment: IncrementPolicy,
    pub ignore: IgnoreList,
    /// The subnet a ban covers, and the unit failures are counted per.
    pub ban_prefix: BanPrefix,
    /// Cap on tracked addresses (or subnets); the least recently failing is
    /// evicted first. 0 is taken as 1.
    pub max_tracked: usize,
}

impl JailSettings {
    /// Settings with warden's defaults: `maxretry: 5`, `findtime: 10m`,
    /// `bantime: 10m`, no increment, nothing ignored, single-address bans,
    /// [`DEFAULT_MAX_TRACKED`].
    pub fn new(name: impl Into<Arc<str>>) -> Self {
        JailSettings {
            name: name.into(),
            maxretry: 5,
            findtime: Duration::from_secs(600),
            bantime: BanTime::Finite(Duration::from_secs(600)),
            increment: IncrementPolicy::default(),
            ignore: IgnoreList::default(),
            ban_prefix: BanPrefix::default(),
            max_tracked: DEFAULT_MAX_TRACKED,
        }
    }
}

/// What a jail made of one failure.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The address is on the ignore list.
    Ignored,
    /// The failure is older than `findtime` before now; dropped.
    Stale,
    /// The address is already banned in this jail, by the ban on `net`.
    AlreadyBanned { net: IpNet },
    /// Counted; `failures` are now in the window (below `maxretry`).
    Counted { failures: u32 },
    /// The window filled up: ban this. The jail already holds it as active;
    /// the caller persists and enforces it.
    Ban(Ban),
}

/// One jail's failure windows and active bans.
#[derive(Debug, Clone)]
pub struct Jail {
    settings: JailSettings,
    windows: FailureWindows,
    bans: ActiveBans,
}

impl Jail {
    pub fn new(settings: JailSettings) -> Self {
        let windows = windows_for(&settings);
        let bans = ActiveBans::new(settings.name.clone());
        Jail { settings, windows, bans }
    }

    pub fn settings(&self) -> &JailSettings {
        &self.settings
    }

    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Applies the rules in the module docs to one failure seen at `now`.
    /// `history` is shared by all jails; `rng` returns values in `[0, 1)` for
    /// `rndtime` jitter. The caller routes failures to the right jail; this
    /// does not look at `f.jail`.
    pub fn on_failure(
        &mut self,
        f: &Failure,
        now: Timestamp,
        history: &mut BanHistory,
        rng: &mut dyn FnMut() -> f64,
    ) -> Decision {
        let addr = crate::core::normalize_ip(f.addr);
        if self.settings.ignore.contains(addr) {
            return Decision::Ignored;
        }
        if f.time < now.saturating_sub(self.settings.findtime) {
            return Decision::Stale;
        }
        if let Some(net) = self.bans.covering(addr, now) {
            return Decision::AlreadyBanned { net };
        }
        let key = prefix_network(addr, self.settings.ban_prefix);
        let failures = self.windows.record(key, f.time, now);
        if failures < self.settings.maxretry.max(1) {
            return Decision::Counted { failures };
        }
        self.windows.forget(key);
        let count = history.record(key, now);
        let length = self.ban_length(count, rng);
        Decision::Ban(self.install(key, BanOrigin::Jail, failures, count, length, now))
    }

    /// An operator's ban of `net` (an address is a /32 or /128) in this jail.
    /// `duration: None` uses the jail's `bantime` with its increment, like a
    /// jail ban; an explicit duration is taken as given. The ban is recorded
    /// in `history` and replaces any ban on exactly `net` (the operator's
    /// latest word wins). The ignore list does not apply to explicit bans;
    /// callers may warn with `settings().ignore.covers(net)`.
    pub fn ban_manual(
        &mut self,
        net: IpNet,
        duration: Option<BanTime>,
        now: Timestamp,
        history: &mut BanHistory,
        rng: &mut dyn FnMut() -> f64,
    ) -> Ban {
        let net = normalize_net(net);
        self.windows.forget(net);
        let count = history.record(net, now);
        let length = duration.unwrap_or_else(|| self.ban_length(count, rng));
        self.install(net, BanOrigin::Manual, 0, count, length, now)
    }

    /// Re-installs a ban as it is (from the store at startup, or from another
    /// host), without touching the history; returns the ban it replaced. An
    /// already expired ban is handed back by the next [`Jail::expire`].
    pub fn restore(&mut self, ban: Ban) -> Option<Ban> {
        self.windows.forget(normalize_net(ban.net));
        self.bans.insert(ban)
    }

    /// Lifts every ban of this jail that overlaps `net`: a subnet ban holding
    /// the address, and bans inside the network. Returns what was lifted, for
    /// the firewall and the store. The history is kept.
    pub fn unban(&mut self, net: IpNet) -> Vec<Ban> {
        self.bans.remove_overlapping(net)
    }

    /// Removes and returns the bans that have run out by `now`, earliest
    /// first, and forgets failure windows that have gone quiet.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Ban> {
        self.windows.prune(now);
        self.bans.pop_expired(now)
    }

    /// When the next ban runs out, for the daemon's timer.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.bans.next_expiry()
    }

    /// Whether `ip` is banned in this jail at `now`, alone or within a subnet.
    pub fn is_banned(&self, ip: IpAddr, now: Timestamp) -> bool {
        self.bans.covering(ip, now).is_some()
    }

    /// The most specific ban covering `ip` at `now`.
    pub fn ban_covering(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        self.bans.ban_covering(ip, now)
    }

    /// This jail's bans, in no particular order (expired ones linger until
    /// [`Jail::expire`] collects them). Each is built on the way out: the
    /// jail holds bans in a compact form.
    pub fn bans(&self) -> impl Iterator<Item = Ban> + '_ {
        self.bans.iter()
    }

    /// How many of this jail's bans hold at `now`, without building them.
    pub fn active_bans(&self, now: Timestamp) -> usize {
        self.bans.active(now)
    }

    /// Failures counted against `ip`'s window (its ban network's) at `now`.
    pub fn failures(&self, ip: IpAddr, now: Timestamp) -> u32 {
        self.windows.count(prefix_network(ip, self.settings.ban_prefix), now)
    }

    /// The window `ip`'s failures count in (its ban network) and the times
    /// it holds: what the daemon persists after each counted failure.
    pub fn window(&self, ip: IpAddr) -> (IpNet, &[Timestamp]) {
        let key = prefix_network(crate::core::normalize_ip(ip), self.settings.ban_prefix);
        (key, self.windows.times(key))
    }

    /// Puts persisted failure times back into `ip`'s window (at startup),
    /// without deciding anything: a window that was full would have banned.
    pub fn restore_failures(&mut self, ip: IpAddr, times: &[Timestamp], now: Timestamp) {
        let key = prefix_network(crate::core::normalize_ip(ip), self.settings.ban_prefix);
        for &time in times {
            self.windows.record(key, time, now);
        }
    }

    /// How many addresses (or subnets) have failures being tracked.
    pub fn tracked(&self) -> usize {
        self.windows.len()
    }

    /// Applies new settings (a reload), keeping active bans. Failure windows
    /// are kept unless the way they count changed (`maxretry`, `findtime`,
    /// `ban_prefix` or `max_tracked`), in which case counting starts over.
    pub fn reconfigure(&mut self, settings: JailSettings) {
        let s = &self.settings;
        let same_counting = s.maxretry == settings.maxretry
            && s.findtime == settings.findtime
            && s.ban_prefix == settings.ban_prefix
            && s.max_tracked == settings.max_tracked;
        if !same_counting {
            self.windows = windows_for(&settings);
        }
        self.settings = settings;
    }

    /// The length of ban number `count` under this jail's bantime and increment.
    fn ban_length(&self, count: u32, rng: &mut dyn FnMut() -> f64) -> BanTime {
        ban_duration(self.settings.bantime, &self.settings.increment, count, rng)
    }

    /// Builds a ban on `net` starting `now` and holds it as active.
    fn install(
        &mut self,
        net: IpNet,
        origin: BanOrigin,
        failures: u32,
        count: u32,
        length: BanTime,
        now: Timestamp,
    ) -> Ban {
        let until = match length {
            BanTime::Permanent => None,
            BanTime::Finite(d) => Some(now.saturating_add(d)),
        };
        let ban = Ban { net, jail: self.settings.name.to_string(), origin, at: now, until, count, failures };
        self.bans.insert(ban.clone());
        ban
    }
}

fn windows_for(settings: &JailSettings) -> FailureWindows {
    FailureWindows::new(settings.maxretry, settings.findtime, settings.max_tracked)
}

/// The single-address network of `ip` (mapped IPv6 folded to IPv4), for
/// callers that ban or unban one address.
pub fn host_network(ip: IpAddr) -> IpNet {
    host_net(ip)
}

#[cfg(test)]
mod tests;
