//! Addresses and networks: normalisation of IPv4-mapped IPv6, parsing of
//! `ip` or `ip/prefix` from users, and the subnet a ban covers.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

/// A rejected address or network, with what would have been valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid address {input:?}: expected an IPv4 or IPv6 address, optionally with a /prefix (like 203.0.113.7, 198.51.100.0/24, 2001:db8::/48)"
)]
pub struct AddrError {
    pub input: String,
}

/// Maps `::ffff:a.b.c.d` to `a.b.c.d`, so one attacker has one identity.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Parses `ip` or `ip/prefix`; host bits are cleared and mapped v6 folded to v4.
pub fn parse_ip_or_net(input: &str) -> Result<IpNet, AddrError> {
    let s = input.trim();
    let err = || AddrError { input: input.to_string() };
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(IpNet::from(normalize_ip(ip)));
    }
    let net: IpNet = s.parse().map_err(|_| err())?;
    Ok(match net {
        IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
            Some(v4) if v6.prefix_len() >= 96 => {
                IpNet::V4(Ipv4Net::new(v4, v6.prefix_len() - 96).map_err(|_| err())?.trunc())
            }
            _ => IpNet::V6(v6.trunc()),
        },
        IpNet::V4(v4) => IpNet::V4(v4.trunc()),
    })
}

/// Prefix lengths for subnet bans (`ban_prefix`): 32 and 128 ban single hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BanPrefix {
    pub v4: u8,
    pub v6: u8,
}

impl Default for BanPrefix {
    fn default() -> Self {
        BanPrefix { v4: 32, v6: 128 }
    }
}

/// The network a ban on `ip` covers under `prefix`.
pub fn prefix_network(ip: IpAddr, prefix: BanPrefix) -> IpNet {
    match normalize_ip(ip) {
        IpAddr::V4(v4) => IpNet::V4(v4_net(v4, prefix.v4)),
        IpAddr::V6(v6) => IpNet::V6(v6_net(v6, prefix.v6)),
    }
}

fn v4_net(ip: Ipv4Addr, prefix: u8) -> Ipv4Net {
    // min() makes the prefix valid, so new() cannot fail.
    Ipv4Net::new(ip, prefix.min(32)).map(|n| n.trunc()).unwrap_or_else(|_| Ipv4Net::from(ip))
}

fn v6_net(ip: Ipv6Addr, prefix: u8) -> Ipv6Net {
    Ipv6Net::new(ip, prefix.min(128)).map(|n| n.trunc()).unwrap_or_else(|_| Ipv6Net::from(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_v6_becomes_v4() {
        let ip: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(normalize_ip(ip), "192.0.2.1".parse::<IpAddr>().unwrap());
        let plain: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(normalize_ip(plain), plain);
    }

    #[test]
    fn parses_hosts_and_networks() {
        assert_eq!(parse_ip_or_net("203.0.113.7").unwrap().to_string(), "203.0.113.7/32");
        assert_eq!(parse_ip_or_net("198.51.100.9/24").unwrap().to_string(), "198.51.100.0/24");
        assert_eq!(parse_ip_or_net("2001:db8::1/48").unwrap().to_string(), "2001:db8::/48");
        assert_eq!(parse_ip_or_net("::ffff:10.1.2.3/120").unwrap().to_string(), "10.1.2.0/24");
        for bad in ["", "1.2.3", "1.2.3.4/33", "banana", "1.2.3.4/-1"] {
            assert!(parse_ip_or_net(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prefix_network_truncates() {
        let p = BanPrefix { v4: 24, v6: 64 };
        assert_eq!(prefix_network("192.0.2.77".parse().unwrap(), p).to_string(), "192.0.2.0/24");
        assert_eq!(prefix_network("2001:db8:1:2:3::4".parse().unwrap(), p).to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            prefix_network("192.0.2.77".parse().unwrap(), BanPrefix::default()).to_string(),
            "192.0.2.77/32"
        );
    }
}
