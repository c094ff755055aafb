//! Bans warden refuses to enforce because they would lock out far more
//! than an attacker: everything (`0.0.0.0/0`, `::/0`), networks broader
//! than a floor, loopback, and the host's own addresses.
//!
//! [`check_ban_target`] is pure; [`own_addresses`] reads the host's
//! addresses from the kernel (`getifaddrs`) for it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// The broadest prefix a ban may cover, per family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BanFloor {
    pub v4: u8,
    pub v6: u8,
}

impl Default for BanFloor {
    /// /16 for IPv4 and /32 for IPv6: a large provider block at most.
    fn default() -> Self {
        BanFloor { v4: 16, v6: 32 }
    }
}

/// Why a ban was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BanRefused {
    #[error("refusing to ban {0}: it covers every address")]
    Everything(IpNet),

    #[error(
        "refusing to ban {net}: /{} is broader than the floor /{floor}; ban a /{floor} or narrower \
         (or lower the floor in the configuration)",
        net.prefix_len()
    )]
    TooBroad { net: IpNet, floor: u8 },

    #[error("refusing to ban {0}: it covers loopback, which the host itself uses")]
    Loopback(IpNet),

    #[error("refusing to ban {0}: it covers the unspecified address, which no attacker can send from")]
    Unspecified(IpNet),

    #[error("refusing to ban {net}: it covers {addr}, an address of this host")]
    OwnAddress { net: IpNet, addr: IpAddr },
}

/// Checks that banning `net` would not lock out everything, loopback, the
/// host itself, or more than `floor` allows. IPv4-mapped IPv6 networks are
/// judged as the IPv4 networks they stand for.
pub fn check_ban_target(net: IpNet, floor: BanFloor, own_addrs: &[IpAddr]) -> Result<(), BanRefused> {
    let judged = unmap(net.trunc());
    if judged.prefix_len() == 0 {
        return Err(BanRefused::Everything(net));
    }
    let floor = match judged {
        IpNet::V4(_) => floor.v4,
        IpNet::V6(_) => floor.v6,
    };
    if judged.prefix_len() < floor {
        return Err(BanRefused::TooBroad { net, floor });
    }
    let loopback = match judged {
        IpNet::V4(_) => IpNet::V4(Ipv4Net::new(Ipv4Addr::LOCALHOST, 8).unwrap_or_default()),
        IpNet::V6(_) => IpNet::V6(Ipv6Net::from(Ipv6Addr::LOCALHOST)),
    };
    if overlaps(judged, loopback) {
        return Err(BanRefused::Loopback(net));
    }
    let unspecified = match judged {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    if judged.contains(&unspecified) {
        return Err(BanRefused::Unspecified(net));
    }
    if let Some(&addr) = own_addrs.iter().find(|a| judged.contains(&unmap_addr(**a))) {
        return Err(BanRefused::OwnAddress { net, addr });
    }
    Ok(())
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn unmap_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

/// `::ffff:a.b.c.d/n` (n ≥ 96) as `a.b.c.d/(n-96)`.
fn unmap(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.network().to_ipv4_mapped() {
            Some(v4) => Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// The addresses of every interface of the host (in the calling thread's
/// network namespace), from `getifaddrs`.
pub fn own_addresses() -> io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addrs = Vec::new();
    let mut cursor = head;
    while !cursor.is_null() {
        // SAFETY: cursor points into the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cursor };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                addrs.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))));
            } else if family == libc::AF_INET6 {
                // SAFETY: AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                addrs.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
            }
        }
        cursor = ifa.ifa_next;
    }
    // SAFETY: head came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    addrs.sort();
    addrs.dedup();
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|_| IpNet::from(s.parse::<IpAddr>().unwrap()))
    }

    fn check(s: &str) -> Result<(), BanRefused> {
        let own = ["198.51.100.10".parse().unwrap(), "2001:db8:1::10".parse().unwrap()];
        check_ban_target(net(s), BanFloor::default(), &own)
    }

    #[test]
    fn ordinary_bans_pass() {
        for ok in [
            "203.0.113.7",
            "203.0.113.0/24",
            "10.1.0.0/16",
            "2001:db8:2::1",
            "2001:db9::/32",
            "::ffff:203.0.113.7",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn everything_and_too_broad_are_refused() {
        assert_eq!(check("0.0.0.0/0"), Err(BanRefused::Everything(net("0.0.0.0/0"))));
        assert_eq!(check("::/0"), Err(BanRefused::Everything(net("::/0"))));
        assert_eq!(check("::ffff:0.0.0.0/96"), Err(BanRefused::Everything(net("::ffff:0.0.0.0/96"))));
        let err = check("10.0.0.0/8").unwrap_err();
        assert_eq!(err, BanRefused::TooBroad { net: net("10.0.0.0/8"), floor: 16 });
        assert_eq!(
            err.to_string(),
            "refusing to ban 10.0.0.0/8: /8 is broader than the floor /16; ban a /16 or narrower \
             (or lower the floor in the configuration)"
        );
        assert_eq!(
            check("2001:db8::/31"),
            Err(BanRefused::TooBroad { net: net("2001:db8::/31"), floor: 32 })
        );
        let low = BanFloor { v4: 8, v6: 16 };
        assert_eq!(check_ban_target(net("10.0.0.0/8"), low, &[]), Ok(()));
    }

    #[test]
    fn loopback_unspecified_and_own_addresses_are_refused() {
        assert_eq!(check("127.0.0.1"), Err(BanRefused::Loopback(net("127.0.0.1"))));
        assert_eq!(check("127.1.0.0/16"), Err(BanRefused::Loopback(net("127.1.0.0/16"))));
        assert_eq!(check("::1"), Err(BanRefused::Loopback(net("::1"))));
        assert_eq!(check("::ffff:127.0.0.1"), Err(BanRefused::Loopback(net("::ffff:127.0.0.1"))));
        assert_eq!(check("0.0.0.0"), Err(BanRefused::Unspecified(net("0.0.0.0"))));
        let err = check("198.51.100.0/24").unwrap_err();
        assert_eq!(
            err.to_string(),
            "refusing to ban 198.51.100.0/24: it covers 198.51.100.10, an address of this host"
        );
        assert!(matches!(check("2001:db8:1::10"), Err(BanRefused::OwnAddress { .. })));
    }
}
