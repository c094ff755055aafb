//! How keys and values are laid out in the state file.
//!
//! Addresses and networks are compact bytes whose order sorts IPv4 before IPv6
//! and then numerically: a family byte (4 or 6), the address bytes, and for a
//! network the prefix length. Failure times are packed little-endian `i64`
//! milliseconds. A [`Ban`] is JSON, so it keeps its `origin` and can gain
//! optional fields without a schema change.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::core::{Ban, Timestamp};

const V4: u8 = 4;
const V6: u8 = 6;

/// Bytes of an address or network key; at most 1 + 16 + 1 bytes, on the stack.
#[derive(Clone, Copy)]
pub(crate) struct KeyBytes {
    buf: [u8; 18],
    len: usize,
}

impl KeyBytes {
    fn new(family: u8, addr: &[u8], prefix: Option<u8>) -> Self {
        let mut buf = [0u8; 18];
        buf[0] = family;
        buf[1..=addr.len()].copy_from_slice(addr);
        let mut len = 1 + addr.len();
        if let Some(prefix) = prefix {
            buf[len] = prefix;
            len += 1;
        }
        KeyBytes { buf, len }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The key of a network: host bits cleared, so `198.51.100.7/24` and
/// `198.51.100.0/24` are one ban.
pub(crate) fn net_key(net: &IpNet) -> KeyBytes {
    match net.trunc() {
        IpNet::V4(n) => KeyBytes::new(V4, &n.addr().octets(), Some(n.prefix_len())),
        IpNet::V6(n) => KeyBytes::new(V6, &n.addr().octets(), Some(n.prefix_len())),
    }
}

pub(crate) fn decode_net(bytes: &[u8]) -> Option<IpNet> {
    match bytes {
        [V4, a, b, c, d, prefix] => Ipv4Net::new(Ipv4Addr::new(*a, *b, *c, *d), *prefix).ok().map(IpNet::V4),
        [V6, rest @ ..] if rest.len() == 17 => {
            let octets: [u8; 16] = rest[..16].try_into().ok()?;
            Ipv6Net::new(Ipv6Addr::from(octets), rest[16]).ok().map(IpNet::V6)
        }
        _ => None,
    }
}

pub(crate) fn addr_key(addr: IpAddr) -> KeyBytes {
    match addr {
        IpAddr::V4(a) => KeyBytes::new(V4, &a.octets(), None),
        IpAddr::V6(a) => KeyBytes::new(V6, &a.octets(), None),
    }
}

pub(crate) fn decode_addr(bytes: &[u8]) -> Option<IpAddr> {
    match bytes {
        [V4, a, b, c, d] => Some(IpAddr::V4(Ipv4Addr::new(*a, *b, *c, *d))),
        [V6, rest @ ..] => <[u8; 16]>::try_from(rest).ok().map(|o| IpAddr::V6(Ipv6Addr::from(o))),
        _ => None,
    }
}

/// Renders a key that failed to decode, for error messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) fn encode_times(times: &[Timestamp]) -> Vec<u8> {
    times.iter().flat_map(|t| t.as_millis().to_le_bytes()).collect()
}

pub(crate) fn decode_times(bytes: &[u8]) -> Option<Vec<Timestamp>> {
    let chunks = bytes.chunks_exact(8);
    if !chunks.remainder().is_empty() {
        return None;
    }
    // chunks_exact yields 8-byte slices, so the conversion cannot fail.
    Some(chunks.map(|c| Timestamp(i64::from_le_bytes(c.try_into().unwrap_or([0; 8])))).collect())
}

/// The expiry stored beside a ban: a permanent ban never expires.
pub(crate) fn expiry_millis(ban: &Ban) -> i64 {
    ban.until.map_or(i64::MAX, Timestamp::as_millis)
}

pub(crate) fn encode_ban(ban: &Ban) -> Vec<u8> {
    // A Ban holds only strings, numbers and enums with string tags: JSON
    // serialisation of it cannot fail.
    serde_json::to_vec(ban).unwrap_or_default()
}

pub(crate) fn decode_ban(bytes: &[u8]) -> Result<Ban, serde_json::Error> {
    serde_json::from_slice(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::BanOrigin;

    #[test]
    fn networks_round_trip_and_lose_host_bits() {
        for (input, canonical) in [
            ("198.51.100.7/24", "198.51.100.0/24"),
            ("203.0.113.9/32", "203.0.113.9/32"),
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("2001:db8::1/64", "2001:db8::/64"),
            ("2001:db8::5/128", "2001:db8::5/128"),
        ] {
            let net: IpNet = input.parse().unwrap();
            let key = net_key(&net);
            assert_eq!(decode_net(key.as_slice()).unwrap().to_string(), canonical, "{input}");
        }
    }

    #[test]
    fn keys_sort_v4_first_then_numerically() {
        let keys: Vec<Vec<u8>> = ["192.0.2.1/32", "192.0.2.0/24", "10.0.0.0/8", "2001:db8::/32"]
            .iter()
            .map(|s| net_key(&s.parse().unwrap()).as_slice().to_vec())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        let order: Vec<String> = sorted.iter().map(|k| decode_net(k).unwrap().to_string()).collect();
        assert_eq!(order, ["10.0.0.0/8", "192.0.2.0/24", "192.0.2.1/32", "2001:db8::/32"]);
    }

    #[test]
    fn addresses_round_trip_and_garbage_is_refused() {
        for s in ["192.0.2.44", "2001:db8::7"] {
            let addr: IpAddr = s.parse().unwrap();
            assert_eq!(decode_addr(addr_key(addr).as_slice()), Some(addr));
        }
        assert_eq!(decode_addr(&[4, 1, 2]), None);
        assert_eq!(decode_addr(&[9, 1, 2, 3, 4]), None);
        assert_eq!(decode_net(&[4, 1, 2, 3, 4, 33]), None, "prefix too long");
        assert_eq!(decode_net(&[]), None);
        assert_eq!(hex(&[0, 0xab]), "00ab");
    }

    #[test]
    fn times_round_trip_and_truncated_values_are_refused() {
        let times = [Timestamp(-5), Timestamp(0), Timestamp(1_763_737_277_000)];
        assert_eq!(decode_times(&encode_times(&times)).unwrap(), times);
        assert_eq!(decode_times(&[]).unwrap(), []);
        assert_eq!(decode_times(&[1, 2, 3]), None);
    }

    #[test]
    fn ban_round_trips_with_origin() {
        let ban = Ban {
            net: "2001:db8::/64".parse().unwrap(),
            jail: "sshd".into(),
            origin: BanOrigin::Remote { host: "edge-2".into() },
            at: Timestamp::from_secs(10),
            until: None,
            count: 3,
            failures: 5,
        };
        assert_eq!(decode_ban(&encode_ban(&ban)).unwrap(), ban);
        assert!(decode_ban(b"{").is_err());
    }
}
