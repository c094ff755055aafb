//! A jail's active bans, ordered by expiry.
//!
//! State owned: every ban the jail currently holds, by network, plus an
//! ordered index of `(until, net)` for the finite ones, so
//! [`ActiveBans::pop_expired`] finds what to unban in O(log n) per ban, and
//! the set of prefix lengths in use, so [`ActiveBans::covering`] answers
//! "is this address banned, alone or as part of a subnet?" with one hash
//! lookup per prefix length in use (usually one or two).
//!
//! A ban is held compactly, not as a [`Ban`]: the jail's name is known once,
//! the four numbers every ban has (`at`, `until`, `count`, `failures`) sit
//! in a 24-byte record, and what few bans have besides (an origin other than
//! the jail, or no end) sits in a side table that is empty in the common
//! case. A [`Ban`] is rebuilt when one is asked for. With 100,000 bans this
//! is a fifth of the memory whole `Ban`s took.
//!
//! Re-banning a network replaces its ban (the old expiry is removed from the
//! index, not left behind), and a manual unban removes both entries, so the
//! index never holds stale entries and nothing is unbanned twice.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::net::normalize_net;
use super::netmap::{NetMap, Slot, slot, v4_host};
use crate::core::{Ban, BanOrigin, Timestamp, normalize_ip};

/// Active bans of one jail, by network and by expiry.
#[derive(Debug, Clone)]
pub struct ActiveBans {
    /// The jail's name, for the bans handed out.
    jail: Arc<str>,
    held: NetMap<Held>,
    /// What bans that are not the common case (decided by the jail, with an
    /// end) have besides a [`Held`].
    rare: NetMap<Rare>,
    /// Finite bans by `(until, net)`; permanent bans never expire.
    by_expiry: ExpiryIndex,
    /// How many bans use each prefix length, per family.
    v4_lens: PrefixLens<33>,
    v6_lens: PrefixLens<129>,
}

/// The numbers of one ban.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    at: Timestamp,
    /// Meaningless for a permanent ban (see [`Rare`]).
    until: Timestamp,
    count: u32,
    failures: u32,
}

/// The rest of a ban that is manual, remote or permanent.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rare {
    origin: BanOrigin,
    permanent: bool,
}

impl ActiveBans {
    /// No bans yet, for the jail named `jail`.
    pub fn new(jail: impl Into<Arc<str>>) -> Self {
        ActiveBans {
            jail: jail.into(),
            held: NetMap::default(),
            rare: NetMap::default(),
            by_expiry: ExpiryIndex::default(),
            v4_lens: PrefixLens::default(),
            v6_lens: PrefixLens::default(),
        }
    }

    /// Adds `ban` (its net normalised; its `jail` is taken to be this
    /// jail's), replacing any ban on the same network, which is returned.
    pub fn insert(&mut self, ban: Ban) -> Option<Ban> {
        let net = normalize_net(ban.net);
        let old = self.take(net);
        if let Some(until) = ban.until {
            self.by_expiry.insert(until, net);
        }
        let permanent = ban.until.is_none();
        if permanent || ban.origin != BanOrigin::Jail {
            self.rare.insert(net, Rare { origin: ban.origin, permanent });
        }
        let held =
            Held { at: ban.at, until: ban.until.unwrap_or(ban.at), count: ban.count, failures: ban.failures };
        self.held.insert(net, held);
        self.lens_mut(net).add(net.prefix_len());
        old
    }

    /// Removes the ban on exactly `net`.
    pub fn remove(&mut self, net: IpNet) -> Option<Ban> {
        self.take(normalize_net(net))
    }

    /// Removes every ban that overlaps `net`: those covering it (unbanning
    /// an address lifts the subnet ban that holds it) and those inside it
    /// (unbanning a /16 lifts the /32s in it). Finding the bans inside is a
    /// scan, which is fine for an operator's command.
    pub fn remove_overlapping(&mut self, net: IpNet) -> Vec<Ban> {
        let net = normalize_net(net);
        let hits: Vec<IpNet> = self.held.iter().map(|(b, _)| b).filter(|b| overlap(*b, net)).collect();
        hits.into_iter().filter_map(|n| self.take(n)).collect()
    }

    /// The ban on exactly `net`, if any (active or not yet popped).
    pub fn get(&self, net: IpNet) -> Option<Ban> {
        let net = normalize_net(net);
        self.held.get(net).map(|held| self.ban(net, held))
    }

    /// The network of the most specific ban covering `ip` that is still
    /// active at `now`.
    pub fn covering(&self, ip: IpAddr, now: Timestamp) -> Option<IpNet> {
        let ip = normalize_ip(ip);
        let lens = match ip {
            IpAddr::V4(_) => &self.v4_lens.present,
            IpAddr::V6(_) => &self.v6_lens.present,
        };
        // Longest prefix first: the most specific ban wins.
        lens.iter()
            .rev()
            .filter_map(|&len| net_of(ip, len))
            .find(|net| self.held.get(*net).is_some_and(|held| self.is_active(*net, held, now)))
    }

    /// The most specific ban covering `ip` that is still active at `now`.
    pub fn ban_covering(&self, ip: IpAddr, now: Timestamp) -> Option<Ban> {
        self.covering(ip, now).and_then(|net| self.get(net))
    }

    /// Removes and returns the bans whose `until` is at or before `now`,
    /// earliest first.
    pub fn pop_expired(&mut self, now: Timestamp) -> Vec<Ban> {
        let mut out = Vec::new();
        while let Some((until, net)) = self.by_expiry.first() {
            if until > now {
                break;
            }
            // The index only holds live entries, so the ban is there; the
            // entry goes first all the same, so this loop always ends.
            self.by_expiry.remove(until, net);
            if let Some(ban) = self.take(net) {
                out.push(ban);
            }
        }
        out
    }

    /// The earliest expiry, for the daemon's timer.
    pub fn next_expiry(&self) -> Option<Timestamp> {
        self.by_expiry.first().map(|(until, _)| until)
    }

    /// Every ban, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Ban> + '_ {
        self.held.iter().map(|(net, held)| self.ban(net, held))
    }

    /// How many bans still hold at `now` (expired ones linger until popped).
    pub fn active(&self, now: Timestamp) -> usize {
        if self.rare.is_empty() {
            return self.held.values().filter(|held| held.until > now).count();
        }
        self.held.iter().filter(|(net, held)| self.is_active(*net, held, now)).count()
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// Removes the ban on `net` (normalised) from every table.
    fn take(&mut self, net: IpNet) -> Option<Ban> {
        let held = self.held.remove(net)?;
        // Made whole while its rare part is still there to read.
        let ban = self.ban(net, &held);
        self.rare.remove(net);
        if let Some(until) = ban.until {
            self.by_expiry.remove(until, net);
        }
        self.lens_mut(net).remove(net.prefix_len());
        Some(ban)
    }

    /// The ban on `net` made whole.
    fn ban(&self, net: IpNet, held: &Held) -> Ban {
        let rare = self.rare.get(net);
        let permanent = rare.is_some_and(|r| r.permanent);
        Ban {
            net,
            jail: self.jail.to_string(),
            origin: rare.map_or(BanOrigin::Jail, |r| r.origin.clone()),
            at: held.at,
            until: (!permanent).then_some(held.until),
            count: held.count,
            failures: held.failures,
        }
    }

    /// Same rule as [`Ban::is_active`].
    fn is_active(&self, net: IpNet, held: &Held, now: Timestamp) -> bool {
        held.until > now || (!self.rare.is_empty() && self.rare.get(net).is_some_and(|r| r.permanent))
    }

    fn lens_mut(&mut self, net: IpNet) -> &mut dyn LenCounter {
        match net {
            IpNet::V4(_) => &mut self.v4_lens,
            IpNet::V6(_) => &mut self.v6_lens,
        }
    }
}

/// `(until, net)` pairs in order, compact for single IPv4 addresses (16
/// bytes a pair instead of 32), like [`NetMap`].
#[derive(Debug, Clone, Default)]
struct ExpiryIndex {
    v4_hosts: BTreeSet<(Timestamp, u32)>,
    others: BTreeSet<(Timestamp, IpNet)>,
}

impl ExpiryIndex {
    fn insert(&mut self, until: Timestamp, net: IpNet) {
        match slot(net) {
            Slot::V4Host(a) => self.v4_hosts.insert((until, a)),
            Slot::Other(n) => self.others.insert((until, n)),
        };
    }

    fn remove(&mut self, until: Timestamp, net: IpNet) {
        match slot(net) {
            Slot::V4Host(a) => self.v4_hosts.remove(&(until, a)),
            Slot::Other(n) => self.others.remove(&(until, n)),
        };
    }

    /// The earliest pair.
    fn first(&self) -> Option<(Timestamp, IpNet)> {
        let host = self.v4_hosts.first().map(|&(until, a)| (until, v4_host(a)));
        let other = self.others.first().copied();
        match (host, other) {
            (Some(h), Some(o)) => Some(if o.0 < h.0 { o } else { h }),
            (h, o) => h.or(o),
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.v4_hosts.len() + self.others.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The network of `ip` with prefix `len`, host bits cleared.
fn net_of(ip: IpAddr, len: u8) -> Option<IpNet> {
    match ip {
        IpAddr::V4(v4) => Ipv4Net::new(v4, len).ok().map(|n| IpNet::V4(n.trunc())),
        IpAddr::V6(v6) => Ipv6Net::new(v6, len).ok().map(|n| IpNet::V6(n.trunc())),
    }
}

/// Whether two normalised networks share an address: one contains the other.
fn overlap(a: IpNet, b: IpNet) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// Counts bans per prefix length and keeps the lengths in use sorted.
#[derive(Debug, Clone)]
struct PrefixLens<const N: usize> {
    counts: [u32; N],
    present: Vec<u8>,
}

impl<const N: usize> Default for PrefixLens<N> {
    fn default() -> Self {
        PrefixLens { counts: [0; N], present: Vec::new() }
    }
}

trait LenCounter {
    fn add(&mut self, len: u8);
    fn remove(&mut self, len: u8);
}

impl<const N: usize> LenCounter for PrefixLens<N> {
    fn add(&mut self, len: u8) {
        let slot = &mut self.counts[usize::from(len)];
        *slot += 1;
        if *slot == 1 {
            let at = self.present.partition_point(|l| *l < len);
            self.present.insert(at, len);
        }
    }

    fn remove(&mut self, len: u8) {
        let slot = &mut self.counts[usize::from(len)];
        *slot = slot.saturating_sub(1);
        if *slot == 0 {
            self.present.retain(|l| *l != len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::BanOrigin;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }
    fn ban(n: &str, until: Option<i64>) -> Ban {
        Ban {
            net: net(n),
            jail: "test".into(),
            origin: BanOrigin::Jail,
            at: t(0),
            until: until.map(t),
            count: 1,
            failures: 3,
        }
    }

    #[test]
    fn pops_in_expiry_order_at_the_boundary() {
        let mut a = ActiveBans::new("test");
        a.insert(ban("192.0.2.3/32", Some(300)));
        a.insert(ban("192.0.2.1/32", Some(100)));
        a.insert(ban("2001:db8::/64", Some(200)));
        a.insert(ban("192.0.2.9/32", None));
        assert_eq!(a.next_expiry(), Some(t(100)));
        assert!(a.pop_expired(t(99)).is_empty());
        let popped: Vec<IpNet> = a.pop_expired(t(200)).into_iter().map(|b| b.net).collect();
        assert_eq!(popped, vec![net("192.0.2.1/32"), net("2001:db8::/64")]);
        let rest: Vec<IpNet> = a.pop_expired(t(i64::MAX / 1000)).into_iter().map(|b| b.net).collect();
        assert_eq!(rest, vec![net("192.0.2.3/32")]);
        assert_eq!(a.len(), 1, "the permanent ban stays");
        assert_eq!(a.next_expiry(), None);
    }

    #[test]
    fn rebans_replace_and_extend_without_stale_expiries() {
        let mut a = ActiveBans::new("test");
        a.insert(ban("192.0.2.1/32", Some(100)));
        let old = a.insert(ban("192.0.2.1/32", Some(500))).unwrap();
        assert_eq!(old.until, Some(t(100)));
        assert!(a.pop_expired(t(100)).is_empty(), "the extension wins");
        assert_eq!(a.by_expiry.len(), 1);
        // Same expiry again: still exactly one index entry.
        a.insert(ban("192.0.2.1/32", Some(500)));
        assert_eq!(a.by_expiry.len(), 1);
        // Shortened, then made permanent.
        a.insert(ban("192.0.2.1/32", Some(50)));
        assert_eq!(a.next_expiry(), Some(t(50)));
        a.insert(ban("192.0.2.1/32", None));
        assert!(a.by_expiry.is_empty());
        assert!(a.pop_expired(t(1_000_000)).is_empty());
        assert_eq!(a.len(), 1);
    }

    #[test]
    fn manual_removal_is_never_unbanned_again() {
        let mut a = ActiveBans::new("test");
        a.insert(ban("192.0.2.1/32", Some(100)));
        assert!(a.remove(net("192.0.2.1/32")).is_some());
        assert!(a.remove(net("192.0.2.1/32")).is_none());
        assert!(a.pop_expired(t(1000)).is_empty());
        assert!(a.covering(ip("192.0.2.1"), t(0)).is_none());
    }

    #[test]
    fn covering_finds_subnet_bans_and_respects_time() {
        let mut a = ActiveBans::new("test");
        a.insert(ban("198.51.100.0/24", Some(100)));
        a.insert(ban("198.51.100.7/32", None));
        a.insert(ban("2001:db8:1:2::/64", Some(100)));
        assert_eq!(a.covering(ip("198.51.100.7"), t(50)), Some(net("198.51.100.7/32")));
        assert_eq!(a.covering(ip("198.51.100.8"), t(50)), Some(net("198.51.100.0/24")));
        assert_eq!(a.covering(ip("::ffff:198.51.100.8"), t(50)), Some(net("198.51.100.0/24")));
        assert!(a.covering(ip("198.51.100.8"), t(100)).is_none(), "expired at until");
        assert!(a.covering(ip("198.51.101.8"), t(50)).is_none());
        assert!(a.covering(ip("2001:db8:1:2:ffff::1"), t(50)).is_some());
        assert!(a.covering(ip("2001:db8:1:3::1"), t(50)).is_none());
        a.remove(net("198.51.100.0/24"));
        assert!(a.covering(ip("198.51.100.8"), t(50)).is_none());
        assert_eq!(a.v4_lens.present, vec![32]);
    }

    #[test]
    fn remove_overlapping_lifts_covering_and_contained_bans() {
        let mut a = ActiveBans::new("test");
        a.insert(ban("198.51.100.0/24", Some(100)));
        a.insert(ban("198.51.100.7/32", Some(100)));
        a.insert(ban("203.0.113.1/32", Some(100)));
        let mut lifted: Vec<IpNet> =
            a.remove_overlapping(net("198.51.100.7/32")).into_iter().map(|b| b.net).collect();
        lifted.sort();
        assert_eq!(lifted, vec![net("198.51.100.0/24"), net("198.51.100.7/32")]);
        let inside: Vec<IpNet> =
            a.remove_overlapping(net("203.0.0.0/8")).into_iter().map(|b| b.net).collect();
        assert_eq!(inside, vec![net("203.0.113.1/32")]);
        assert!(a.is_empty() && a.by_expiry.is_empty());
    }

    #[test]
    fn bans_come_back_exactly_as_given_whatever_their_origin() {
        let mut a = ActiveBans::new("sshd");
        let given = [
            Ban { at: t(7), count: 4, failures: 9, ..ban("192.0.2.1/32", Some(100)) },
            Ban { origin: BanOrigin::Manual, ..ban("192.0.2.2/32", Some(100)) },
            Ban { origin: BanOrigin::Remote { host: "mx1".into() }, ..ban("2001:db8::/64", None) },
            ban("198.51.100.0/24", None),
        ]
        .map(|b| Ban { jail: "sshd".into(), ..b });
        for b in &given {
            assert_eq!(a.insert(b.clone()), None);
        }
        for b in &given {
            assert_eq!(a.get(b.net).as_ref(), Some(b));
        }
        let mut all: Vec<Ban> = a.iter().collect();
        all.sort_by_key(|b| b.net);
        let mut expected = given.to_vec();
        expected.sort_by_key(|b| b.net);
        assert_eq!(all, expected);
        assert_eq!(a.active(t(99)), 4);
        assert_eq!(a.active(t(100)), 2, "the permanent ones stay active");
        assert_eq!(a.ban_covering(ip("198.51.100.9"), t(1_000)), Some(given[3].clone()));

        // Replacing a rare ban by a common one leaves nothing rare behind.
        let common = Ban { jail: "sshd".into(), ..ban("2001:db8::/64", Some(50)) };
        assert_eq!(a.insert(common.clone()), Some(given[2].clone()));
        assert_eq!(a.get(common.net), Some(common.clone()));
        assert_eq!(a.pop_expired(t(60)), vec![common]);
        assert_eq!(a.remove(net("192.0.2.2/32")), Some(given[1].clone()));
        assert_eq!(a.rare.len(), 1);
    }
}
