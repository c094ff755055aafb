//! The ignore list (`ignoreip`): addresses and networks, IPv4 and IPv6, whose
//! failures never count.
//!
//! Entries are kept as written (for display and for the firewall's allowlist
//! set) and, for lookups, as sorted, merged, disjoint integer ranges per
//! family, so [`IgnoreList::contains`] and [`IgnoreList::covers`] are one
//! binary search each, however long the list.
//!
//! IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is treated as IPv4 on both sides, so
//! `::ffff:192.0.2.1` is ignored by `192.0.2.0/24` and vice versa. IPv6 entries
//! therefore only cover native IPv6 addresses: `::/0` does not ignore IPv4.

use std::net::IpAddr;

use ipnet::IpNet;

use super::net::{normalize_net, v4_range, v6_range};
use crate::core::{AddrError, normalize_ip, parse_ip_or_net};

/// A set of ignored addresses and networks with fast CIDR lookups.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoreList {
    /// Normalised entries, in the order given, duplicates removed.
    entries: Vec<IpNet>,
    /// Disjoint inclusive ranges sorted by start; adjacent ranges are merged.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IgnoreList {
    /// Builds a list from networks (a single address is a /32 or /128).
    pub fn new(nets: impl IntoIterator<Item = IpNet>) -> Self {
        let mut entries: Vec<IpNet> = Vec::new();
        for net in nets.into_iter().map(normalize_net) {
            if !entries.contains(&net) {
                entries.push(net);
            }
        }
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &entries {
            match net {
                IpNet::V4(n) => v4.push(v4_range(*n)),
                IpNet::V6(n) => v6.push(v6_range(*n)),
            }
        }
        IgnoreList { entries, v4: merge(v4), v6: merge(v6) }
    }

    /// Parses `ip` or `ip/prefix` strings, as in `ignoreip`; the error names
    /// the first bad entry and says what would be valid.
    pub fn parse<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Result<Self, AddrError> {
        let nets = items.into_iter().map(|s| parse_ip_or_net(s.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(IgnoreList::new(nets))
    }

    /// Whether `ip` is ignored.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match normalize_ip(ip) {
            IpAddr::V4(v4) => overlaps(&self.v4, u32::from(v4), u32::from(v4)),
            IpAddr::V6(v6) => overlaps(&self.v6, u128::from(v6), u128::from(v6)),
        }
    }

    /// Whether any address of `net` is ignored (the two overlap). Used to warn
    /// before banning a network that holds an allowlisted address.
    pub fn covers(&self, net: IpNet) -> bool {
        match normalize_net(net) {
            IpNet::V4(n) => {
                let (a, b) = v4_range(n);
                overlaps(&self.v4, a, b)
            }
            IpNet::V6(n) => {
                let (a, b) = v6_range(n);
                overlaps(&self.v6, a, b)
            }
        }
    }

    /// The normalised entries, in the order given.
    pub fn entries(&self) -> &[IpNet] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl FromIterator<IpNet> for IgnoreList {
    fn from_iter<I: IntoIterator<Item = IpNet>>(iter: I) -> Self {
        IgnoreList::new(iter)
    }
}

/// Sorts ranges and merges overlapping or adjacent ones, so that the ranges
/// left are disjoint and their ends increase with their starts.
fn merge<T: Copy + Ord + MaxValue>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match out.last_mut() {
            Some(last) if last.1 == T::MAX || start <= last.1.succ() => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}

/// Whether `[a, b]` meets any of the disjoint sorted `ranges`: only the last
/// range starting at or before `b` can, since ends increase with starts.
fn overlaps<T: Copy + Ord>(ranges: &[(T, T)], a: T, b: T) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= b);
    after > 0 && ranges[after - 1].1 >= a
}

/// The integer types ranges are made of (u32 for IPv4, u128 for IPv6).
trait MaxValue {
    const MAX: Self;
    /// `self + 1`; only called below `MAX`.
    fn succ(self) -> Self;
}

impl MaxValue for u32 {
    const MAX: Self = u32::MAX;
    fn succ(self) -> Self {
        self.saturating_add(1)
    }
}

impl MaxValue for u128 {
    const MAX: Self = u128::MAX;
    fn succ(self) -> Self {
        self.saturating_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn list(items: &[&str]) -> IgnoreList {
        IgnoreList::parse(items).unwrap()
    }

    #[test]
    fn empty_list_ignores_nothing() {
        let l = IgnoreList::default();
        assert!(l.is_empty());
        assert!(!l.contains(ip("127.0.0.1")));
        assert!(!l.covers(net("0.0.0.0/0")));
        assert!(!l.covers(net("::/0")));
    }

    #[test]
    fn single_addresses_and_networks_v4() {
        let l = list(&["127.0.0.0/8", "192.0.2.7", "198.51.100.0/25"]);
        assert!(l.contains(ip("127.255.3.4")));
        assert!(l.contains(ip("192.0.2.7")));
        assert!(!l.contains(ip("192.0.2.6")));
        assert!(!l.contains(ip("192.0.2.8")));
        assert!(l.contains(ip("198.51.100.0")));
        assert!(l.contains(ip("198.51.100.127")));
        assert!(!l.contains(ip("198.51.100.128")));
        assert!(!l.contains(ip("128.0.0.0")));
        assert!(!l.contains(ip("126.255.255.255")));
    }

    #[test]
    fn networks_v6_and_families_do_not_mix() {
        let l = list(&["::1", "2001:db8:aa::/48"]);
        assert!(l.contains(ip("::1")));
        assert!(l.contains(ip("2001:db8:aa:ffff::9")));
        assert!(!l.contains(ip("2001:db8:ab::1")));
        assert!(!l.contains(ip("0.0.0.1")));
        let all_v6 = list(&["::/0"]);
        assert!(all_v6.contains(ip("2001:db8::1")));
        assert!(!all_v6.contains(ip("192.0.2.1")), "IPv6 entries cover native IPv6 only");
        assert!(!all_v6.contains(ip("::ffff:192.0.2.1")), "a mapped address is IPv4");
    }

    #[test]
    fn mapped_addresses_match_ipv4_entries_both_ways() {
        let l = list(&["192.0.2.0/24", "::ffff:203.0.113.0/120"]);
        assert!(l.contains(ip("::ffff:192.0.2.9")));
        assert!(l.contains(ip("203.0.113.200")));
        assert_eq!(l.entries()[1], net("203.0.113.0/24"));
        assert!(l.covers(net("::ffff:192.0.2.128/121")));
    }

    #[test]
    fn covers_detects_any_overlap() {
        let l = list(&["192.0.2.10", "2001:db8:1::/48"]);
        // The network holds an ignored address.
        assert!(l.covers(net("192.0.2.0/24")));
        assert!(l.covers(net("0.0.0.0/0")));
        // The network lies inside an ignored one.
        assert!(l.covers(net("2001:db8:1:2::/64")));
        assert!(l.covers(net("2001:db8::/32")));
        assert!(!l.covers(net("192.0.2.0/29")));
        assert!(!l.covers(net("192.0.2.11/32")));
        assert!(!l.covers(net("2001:db8:2::/48")));
    }

    #[test]
    fn overlapping_and_adjacent_entries_merge_without_changing_answers() {
        let l = list(&["10.0.0.0/25", "10.0.0.128/25", "10.0.0.5", "10.0.0.0/8", "10.0.0.0/25"]);
        assert_eq!(l.v4, vec![(0x0A00_0000, 0x0AFF_FFFF)]);
        assert_eq!(l.len(), 4, "duplicates are dropped, distinct entries kept");
        let edges = list(&["0.0.0.0/32", "255.255.255.255/32", "255.255.255.254"]);
        assert!(edges.contains(ip("0.0.0.0")));
        assert!(edges.contains(ip("255.255.255.255")));
        assert!(edges.contains(ip("255.255.255.254")));
        assert!(!edges.contains(ip("255.255.255.253")));
        let full = list(&["0.0.0.0/0", "10.0.0.0/8"]);
        assert_eq!(full.v4, vec![(0, u32::MAX)]);
    }

    #[test]
    fn a_thousand_entries_match_like_a_linear_scan() {
        // Networks of assorted sizes spread over the IPv4 space.
        let nets: Vec<IpNet> = (0..1000u32)
            .map(|i| {
                let addr = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761));
                IpNet::V4(ipnet::Ipv4Net::new(addr, 16 + (i % 17) as u8).unwrap().trunc())
            })
            .collect();
        let l = IgnoreList::new(nets.clone());
        for i in 0..5000u32 {
            let probe = std::net::Ipv4Addr::from(i.wrapping_mul(40_503).wrapping_add(i << 20));
            let expected = nets.iter().any(|n| n.contains(&IpAddr::V4(probe)));
            assert_eq!(l.contains(IpAddr::V4(probe)), expected, "{probe}");
        }
        for n in nets.iter().take(50) {
            assert!(l.contains(n.network()) && l.contains(n.broadcast()));
        }
    }

    #[test]
    fn parse_reports_the_bad_entry() {
        let err = IgnoreList::parse(["127.0.0.1", "10.0.0.0/33"]).unwrap_err();
        assert!(err.to_string().contains("10.0.0.0/33"), "{err}");
    }
}
