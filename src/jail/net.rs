//! Address helpers private to the jail logic: one canonical form per network
//! (host bits cleared, IPv4-mapped IPv6 folded to IPv4) and networks as
//! inclusive integer ranges, which is how ignore lists and ban lookups compare
//! them.

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::core::normalize_ip;

/// The canonical form of `net`: host bits cleared, and `::ffff:a.b.c.d/p`
/// (p ≥ 96) folded to `a.b.c.d/(p-96)` so a mapped address and its IPv4 twin
/// are one identity everywhere in a jail.
pub(crate) fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V4(v4) => IpNet::V4(v4.trunc()),
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                // prefix_len() - 96 is at most 32, so new() cannot fail.
                Ipv4Net::new(v4, v6.prefix_len() - 96).map(|n| IpNet::V4(n.trunc())).unwrap_or(net)
            }
            _ => IpNet::V6(v6.trunc()),
        },
    }
}

/// The single-address network of `ip`, normalised.
pub(crate) fn host_net(ip: IpAddr) -> IpNet {
    IpNet::from(normalize_ip(ip))
}

/// The first and last IPv4 address of `net`, as integers.
pub(crate) fn v4_range(net: Ipv4Net) -> (u32, u32) {
    (u32::from(net.network()), u32::from(net.broadcast()))
}

/// The first and last IPv6 address of `net`, as integers.
pub(crate) fn v6_range(net: Ipv6Net) -> (u128, u128) {
    (u128::from(net.network()), u128::from(net.broadcast()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn folds_mapped_networks_and_clears_host_bits() {
        assert_eq!(normalize_net(net("::ffff:192.0.2.77/120")), net("192.0.2.0/24"));
        assert_eq!(normalize_net(net("::ffff:192.0.2.77/128")), net("192.0.2.77/32"));
        // Shorter than /96 reaches outside the mapped range: it stays IPv6.
        assert_eq!(normalize_net(net("::ffff:192.0.2.77/64")), net("::/64"));
        assert_eq!(normalize_net(net("2001:db8::1/32")), net("2001:db8::/32"));
        assert_eq!(normalize_net(net("198.51.100.9/24")), net("198.51.100.0/24"));
        assert_eq!(host_net("::ffff:203.0.113.5".parse().unwrap()), net("203.0.113.5/32"));
    }

    #[test]
    fn ranges_are_inclusive() {
        assert_eq!(v4_range("192.0.2.0/24".parse().unwrap()), (0xC000_0200, 0xC000_02FF));
        assert_eq!(v4_range("0.0.0.0/0".parse().unwrap()), (0, u32::MAX));
        let (a, b) = v6_range("2001:db8::/127".parse().unwrap());
        assert_eq!(b - a, 1);
    }
}
