//! A hash map keyed by network, compact for the key nearly every entry has:
//! a single IPv4 address.
//!
//! State owned: the entries, split in two tables. IPv4 /32 keys are stored as
//! a `u32` (4 bytes instead of an 18-byte [`IpNet`]), every other network in
//! a second table that stays empty in most deployments. With 100,000 banned
//! addresses this halves a jail's ban table. Callers pass networks already
//! normalised (`net::normalize_net`), so each network has one key.
//!
//! Both tables hash with foldhash, fast and randomly seeded per process: the
//! keys come from log lines, so an attacker chooses them.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};

type Hasher = foldhash::fast::RandomState;

/// A map from (normalised) networks to `V`.
#[derive(Debug, Clone)]
pub(crate) struct NetMap<V> {
    v4_hosts: HashMap<u32, V, Hasher>,
    others: HashMap<IpNet, V, Hasher>,
}

impl<V> Default for NetMap<V> {
    fn default() -> Self {
        NetMap { v4_hosts: HashMap::default(), others: HashMap::default() }
    }
}

/// Where a network's entry lives: the compact form of a key.
pub(super) enum Slot {
    V4Host(u32),
    Other(IpNet),
}

pub(super) fn slot(net: IpNet) -> Slot {
    match net {
        IpNet::V4(v4) if v4.prefix_len() == 32 => Slot::V4Host(u32::from(v4.addr())),
        other => Slot::Other(other),
    }
}

pub(super) fn v4_host(bits: u32) -> IpNet {
    IpNet::V4(Ipv4Net::from(Ipv4Addr::from(bits)))
}

impl<V> NetMap<V> {
    pub(crate) fn get(&self, net: IpNet) -> Option<&V> {
        match slot(net) {
            Slot::V4Host(a) => self.v4_hosts.get(&a),
            Slot::Other(n) => self.others.get(&n),
        }
    }

    /// Inserts `value` under `net`, returning the value it replaced.
    pub(crate) fn insert(&mut self, net: IpNet, value: V) -> Option<V> {
        match slot(net) {
            Slot::V4Host(a) => self.v4_hosts.insert(a, value),
            Slot::Other(n) => self.others.insert(n, value),
        }
    }

    pub(crate) fn remove(&mut self, net: IpNet) -> Option<V> {
        let removed = match slot(net) {
            Slot::V4Host(a) => self.v4_hosts.remove(&a),
            Slot::Other(n) => self.others.remove(&n),
        };
        if removed.is_some() {
            self.shrink_when_sparse();
        }
        removed
    }

    /// The entry of `net`, inserted with `make` when missing; and whether
    /// it was just inserted.
    pub(crate) fn get_or_insert_with(&mut self, net: IpNet, make: impl FnOnce() -> V) -> (&mut V, bool) {
        match slot(net) {
            Slot::V4Host(a) => match self.v4_hosts.entry(a) {
                Entry::Occupied(e) => (e.into_mut(), false),
                Entry::Vacant(e) => (e.insert(make()), true),
            },
            Slot::Other(n) => match self.others.entry(n) {
                Entry::Occupied(e) => (e.into_mut(), false),
                Entry::Vacant(e) => (e.insert(make()), true),
            },
        }
    }

    /// Every entry, in no particular order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> {
        let hosts = self.v4_hosts.iter().map(|(a, v)| (v4_host(*a), v));
        hosts.chain(self.others.iter().map(|(n, v)| (*n, v)))
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.v4_hosts.values().chain(self.others.values())
    }

    /// Keeps the entries for which `keep` returns true.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(IpNet, &mut V) -> bool) {
        self.v4_hosts.retain(|a, v| keep(v4_host(*a), v));
        self.others.retain(|n, v| keep(*n, v));
        self.shrink_when_sparse();
    }

    pub(crate) fn len(&self) -> usize {
        self.v4_hosts.len() + self.others.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.v4_hosts.is_empty() && self.others.is_empty()
    }

    /// Gives memory back once a table is mostly empty (after a wave of bans
    /// expired, say): hash tables never shrink on their own.
    fn shrink_when_sparse(&mut self) {
        fn shrink<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V, Hasher>) {
            // Below a few pages it is not worth a rehash.
            if map.capacity() > 1024 && map.len() < map.capacity() / 4 {
                map.shrink_to(map.len() * 2);
            }
        }
        shrink(&mut self.v4_hosts);
        shrink(&mut self.others);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn every_kind_of_network_is_its_own_key() {
        let mut m = NetMap::default();
        let keys =
            ["192.0.2.1/32", "192.0.2.0/24", "192.0.2.1/31", "2001:db8::1/128", "2001:db8::/64", "0.0.0.0/0"];
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.insert(net(k), i), None);
        }
        assert_eq!(m.len(), keys.len());
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(m.get(net(k)), Some(&i), "{k}");
        }
        assert_eq!(m.insert(net("192.0.2.1/32"), 10), Some(0));
        m.insert(net("2001:db8::/64"), 14);
        let mut all: Vec<(String, usize)> = m.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        all.sort();
        assert_eq!(all[0], ("0.0.0.0/0".to_string(), 5));
        assert!(all.contains(&("192.0.2.1/32".to_string(), 10)));
        assert!(all.contains(&("2001:db8::/64".to_string(), 14)));
        assert_eq!(m.remove(net("192.0.2.1/32")), Some(10));
        assert_eq!(m.remove(net("192.0.2.1/32")), None);
        assert!(m.get(net("192.0.2.1/32")).is_none());
        assert!(m.get(net("192.0.2.1/31")).is_some());
    }

    #[test]
    fn get_or_insert_with_says_whether_it_inserted() {
        let mut m: NetMap<u32> = NetMap::default();
        let (v, new) = m.get_or_insert_with(net("198.51.100.7/32"), || 1);
        assert!(new);
        *v += 1;
        let (v, new) = m.get_or_insert_with(net("198.51.100.7/32"), || 100);
        assert!(!new);
        assert_eq!(*v, 2);
        let (_, new) = m.get_or_insert_with(net("2001:db8::7/128"), || 3);
        assert!(new);
        assert_eq!(m.values().sum::<u32>(), 5);
    }

    #[test]
    fn retain_and_shrink_keep_the_survivors() {
        let mut m = NetMap::default();
        for i in 0..5000u32 {
            m.insert(v4_host(i), i);
        }
        m.insert(net("2001:db8::/64"), 7);
        m.retain(|n, v| n.prefix_len() != 32 || *v % 100 == 0);
        assert_eq!(m.len(), 51);
        assert!(m.v4_hosts.capacity() < 1000, "shrunk: {}", m.v4_hosts.capacity());
        assert_eq!(m.get(v4_host(4900)), Some(&4900));
        assert_eq!(m.get(net("2001:db8::/64")), Some(&7));
    }
}
