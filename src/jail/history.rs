//! Ban history across jails: how many times each network has been banned,
//! which drives `bantime_increment` and `Ban::count`.
//!
//! State owned: per banned network (a single address is a /32 or /128; a
//! subnet ban is keyed by its subnet), the number of bans and the time of the
//! latest. One `BanHistory` is shared by all jails, so a recidivist banned by
//! `sshd` gets a longer ban from `webauth` too. The store persists it with
//! [`BanHistory::export`] and reloads it with [`BanHistory::import`].
//!
//! Without `forget_after` the history never forgets (fail2ban's behaviour
//! while an address stays in its database); with it, a network whose last ban
//! is older than that starts over at 1, and [`BanHistory::prune`] drops such
//! entries so the map stays bounded.
//!
//! An entry is 16 bytes plus its key (4 bytes for a single IPv4 address,
//! see `netmap.rs`): the history of every address ever banned stays cheap.

use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use super::net::normalize_net;
use super::netmap::NetMap;
use crate::core::Timestamp;

/// The number of bans per network, shared by all jails.
#[derive(Debug, Clone, Default)]
pub struct BanHistory {
    entries: NetMap<Counted>,
    forget_after: Option<Duration>,
}

/// One network's entry in memory: its key is the network.
#[derive(Debug, Clone, Copy)]
struct Counted {
    count: u32,
    last: Timestamp,
}

/// One network's history, as persisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub net: IpNet,
    /// Bans so far, the latest included.
    pub count: u32,
    /// When the latest ban was decided.
    pub last: Timestamp,
}

impl BanHistory {
    /// A history that never forgets.
    pub fn new() -> Self {
        Self::default()
    }

    /// A history that forgets a network `forget_after` its last ban.
    pub fn with_forget_after(forget_after: Duration) -> Self {
        BanHistory { entries: NetMap::default(), forget_after: Some(forget_after) }
    }

    /// Records a ban of `net` at `now` and returns its count, this ban
    /// included (1 for a first offence).
    pub fn record(&mut self, net: IpNet, now: Timestamp) -> u32 {
        let net = normalize_net(net);
        let forgotten = self.previous(net, now) == 0;
        let (entry, _) = self.entries.get_or_insert_with(net, || Counted { count: 0, last: now });
        if forgotten {
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        entry.last = entry.last.max(now);
        entry.count
    }

    /// How many times `net` was banned before, as seen at `now`.
    pub fn previous(&self, net: IpNet, now: Timestamp) -> u32 {
        match self.entries.get(normalize_net(net)) {
            Some(e) if !self.is_forgotten(e, now) => e.count,
            _ => 0,
        }
    }

    /// Drops the entries forgotten by `now`.
    pub fn prune(&mut self, now: Timestamp) {
        let forget_after = self.forget_after;
        self.entries.retain(|_, e| !forgotten(forget_after, e, now));
    }

    /// Every entry, for the store (in no particular order).
    pub fn export(&self) -> Vec<HistoryEntry> {
        self.entries.iter().map(|(net, e)| HistoryEntry { net, count: e.count, last: e.last }).collect()
    }

    /// Loads persisted entries. Where a network is already known the larger
    /// count and the later time win, so importing twice changes nothing.
    pub fn import(&mut self, entries: impl IntoIterator<Item = HistoryEntry>) {
        for e in entries {
            let net = normalize_net(e.net);
            let (slot, _) = self.entries.get_or_insert_with(net, || Counted { count: 0, last: e.last });
            slot.count = slot.count.max(e.count);
            slot.last = slot.last.max(e.last);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn is_forgotten(&self, e: &Counted, now: Timestamp) -> bool {
        forgotten(self.forget_after, e, now)
    }
}

fn forgotten(forget_after: Option<Duration>, e: &Counted, now: Timestamp) -> bool {
    forget_after.is_some_and(|after| now.since(e.last) > after)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn t(secs: i64) -> Timestamp {
        Timestamp::from_secs(secs)
    }

    #[test]
    fn counts_per_network() {
        let mut h = BanHistory::new();
        assert_eq!(h.record(net("192.0.2.1/32"), t(1)), 1);
        assert_eq!(h.record(net("192.0.2.1/32"), t(2)), 2);
        assert_eq!(h.record(net("192.0.2.0/24"), t(3)), 1, "a subnet is its own key");
        assert_eq!(h.record(net("::ffff:192.0.2.1/128"), t(4)), 3, "mapped is the same address");
        assert_eq!(h.previous(net("192.0.2.1/32"), t(5)), 3);
        assert_eq!(h.previous(net("2001:db8::1/128"), t(5)), 0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn forgets_after_the_configured_time() {
        let mut h = BanHistory::with_forget_after(Duration::from_secs(100));
        let a = net("198.51.100.7/32");
        h.record(a, t(0));
        assert_eq!(h.record(a, t(100)), 2, "exactly forget_after later still remembers");
        assert_eq!(h.previous(a, t(201)), 0);
        assert_eq!(h.record(a, t(201)), 1);
        h.record(net("198.51.100.8/32"), t(50));
        h.prune(t(201));
        assert_eq!(h.export(), vec![HistoryEntry { net: a, count: 1, last: t(201) }]);
    }

    #[test]
    fn export_import_round_trips_and_merges() {
        let mut h = BanHistory::new();
        h.record(net("203.0.113.9/32"), t(10));
        h.record(net("203.0.113.9/32"), t(20));
        h.record(net("2001:db8::/64"), t(30));
        let json = serde_json::to_string(&h.export()).unwrap();
        let back: Vec<HistoryEntry> = serde_json::from_str(&json).unwrap();
        let mut restored = BanHistory::new();
        restored.import(back.clone());
        restored.import(back);
        assert_eq!(restored.previous(net("203.0.113.9/32"), t(40)), 2);
        assert_eq!(restored.previous(net("2001:db8::/64"), t(40)), 1);
        assert_eq!(restored.record(net("203.0.113.9/32"), t(50)), 3);
        restored.import([HistoryEntry { net: net("203.0.113.9/32"), count: 1, last: t(5) }]);
        assert_eq!(restored.previous(net("203.0.113.9/32"), t(60)), 3, "an older entry does not lower it");
    }
}
