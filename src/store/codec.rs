//! How keys and values are laid out in the state file.
//!
//! Addresses and networks are compact bytes whose order sorts IPv4 before IPv6
//! and then numerically: a family byte (4 or 6), the address bytes, and for a
//! network the prefix length. Failure times are packed little-endian `i64`
//! milliseconds.
//!
//! A [`Ban`] is stored beside its key (network, jail) as a compact binary
//! record, [`BAN_RECORD`] then fixed fields (see [`encode_ban`]): 27 bytes
//! for a ban decided by a jail, where JSON took about 130. Smaller records
//! mean fewer B-tree pages to copy and checksum per commit, which is most of
//! what storing a burst of bans costs. Versions before schema 4 stored JSON,
//! which starts with `{`; [`decode_ban`] reads both, and a ban whose network
//! its key cannot give back exactly (host bits set) is still written as JSON.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::core::{Ban, BanOrigin, Timestamp};

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

    /// A stored key taken back, if it is not longer than any key is.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let mut buf = [0u8; 18];
        buf.get_mut(..bytes.len())?.copy_from_slice(bytes);
        Some(KeyBytes { buf, len: bytes.len() })
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

/// The first byte of a binary ban record; JSON starts with `{`.
pub(crate) const BAN_RECORD: u8 = 1;
/// Flag bit: the ban has no end (`until` is then 0).
const PERMANENT: u8 = 1;
const ORIGIN_JAIL: u8 = 0;
const ORIGIN_MANUAL: u8 = 1;
const ORIGIN_REMOTE: u8 = 2;
/// Bytes before a remote origin's host name.
const FIXED_LEN: usize = 27;

/// Encodes `ban` for the value of its (network, jail) key: [`BAN_RECORD`],
/// flags, `at`, `until` (little-endian `i64` ms), `count`, `failures`
/// (little-endian `u32`), the origin (0 jail, 1 manual, 2 remote) and a
/// remote origin's host name. The network and the jail are the key's.
pub(crate) fn encode_ban(ban: &Ban) -> Vec<u8> {
    if decode_net(net_key(&ban.net).as_slice()) != Some(ban.net) {
        // The key drops host bits; JSON keeps the ban exactly as given.
        return encode_ban_json(ban);
    }
    let (origin, host) = match &ban.origin {
        BanOrigin::Jail => (ORIGIN_JAIL, ""),
        BanOrigin::Manual => (ORIGIN_MANUAL, ""),
        BanOrigin::Remote { host } => (ORIGIN_REMOTE, host.as_str()),
    };
    let mut out = Vec::with_capacity(FIXED_LEN + host.len());
    out.push(BAN_RECORD);
    out.push(if ban.until.is_none() { PERMANENT } else { 0 });
    out.extend_from_slice(&ban.at.as_millis().to_le_bytes());
    out.extend_from_slice(&ban.until.map_or(0, Timestamp::as_millis).to_le_bytes());
    out.extend_from_slice(&ban.count.to_le_bytes());
    out.extend_from_slice(&ban.failures.to_le_bytes());
    out.push(origin);
    out.extend_from_slice(host.as_bytes());
    out
}

/// Decodes the ban stored under (`net`, `jail`), either layout. The error
/// says what is wrong with the bytes.
pub(crate) fn decode_ban(net: &[u8], jail: &str, bytes: &[u8]) -> Result<Ban, String> {
    if bytes.first() != Some(&BAN_RECORD) {
        return decode_ban_json(bytes).map_err(|e| e.to_string());
    }
    let fixed = Fixed::read(bytes)?;
    let net = decode_net(net).ok_or("the key is not a valid network")?;
    let host = &bytes[FIXED_LEN..];
    let origin = match fixed.origin {
        ORIGIN_JAIL if host.is_empty() => BanOrigin::Jail,
        ORIGIN_MANUAL if host.is_empty() => BanOrigin::Manual,
        ORIGIN_REMOTE => {
            let host = std::str::from_utf8(host).map_err(|_| "the remote host name is not UTF-8")?;
            BanOrigin::Remote { host: host.to_string() }
        }
        other => return Err(format!("unknown origin {other} (or trailing bytes) in a ban record")),
    };
    Ok(Ban {
        net,
        jail: jail.to_string(),
        origin,
        at: fixed.at,
        until: fixed.until,
        count: fixed.count,
        failures: fixed.failures,
    })
}

/// A stored ban's `count` and `at`, what the ban history keeps of it;
/// cheap for a binary record.
pub(crate) fn ban_count_at(bytes: &[u8]) -> Result<(u32, Timestamp), String> {
    if bytes.first() != Some(&BAN_RECORD) {
        return decode_ban_json(bytes).map(|b| (b.count, b.at)).map_err(|e| e.to_string());
    }
    Fixed::read(bytes).map(|f| (f.count, f.at))
}

/// The fixed fields of a binary ban record.
struct Fixed {
    at: Timestamp,
    until: Option<Timestamp>,
    count: u32,
    failures: u32,
    origin: u8,
}

impl Fixed {
    fn read(bytes: &[u8]) -> Result<Fixed, String> {
        let Some(fixed) = bytes.get(..FIXED_LEN) else {
            return Err(format!("a ban record of {} bytes is shorter than {FIXED_LEN}", bytes.len()));
        };
        let i64_at = |i: usize| i64::from_le_bytes(fixed[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().unwrap_or([0; 4]));
        let flags = fixed[1];
        if flags & !PERMANENT != 0 {
            return Err(format!("unknown flags {flags:#04x} in a ban record"));
        }
        Ok(Fixed {
            at: Timestamp(i64_at(2)),
            until: (flags & PERMANENT == 0).then(|| Timestamp(i64_at(10))),
            count: u32_at(18),
            failures: u32_at(22),
            origin: fixed[26],
        })
    }
}

/// The JSON layout of schema versions 1 to 3.
pub(crate) fn encode_ban_json(ban: &Ban) -> Vec<u8> {
    // A Ban holds only strings, numbers and enums with string tags: JSON
    // serialisation of it cannot fail.
    serde_json::to_vec(ban).unwrap_or_default()
}

pub(crate) fn decode_ban_json(bytes: &[u8]) -> Result<Ban, serde_json::Error> {
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
    fn bans_round_trip_in_both_layouts_whatever_their_origin() {
        let base = Ban {
            net: "2001:db8::/64".parse().unwrap(),
            jail: "sshd".into(),
            origin: BanOrigin::Jail,
            at: Timestamp(-10_001),
            until: Some(Timestamp(1_763_737_277_123)),
            count: 3,
            failures: 5,
        };
        let remote = BanOrigin::Remote { host: "edge-2 ü".into() };
        for ban in [
            base.clone(),
            Ban { origin: BanOrigin::Manual, until: None, ..base.clone() },
            Ban { origin: remote, count: u32::MAX, ..base.clone() },
            Ban { net: "198.51.100.7/32".parse().unwrap(), ..base.clone() },
        ] {
            let key = net_key(&ban.net);
            let bytes = encode_ban(&ban);
            assert_eq!(bytes[0], BAN_RECORD);
            assert_eq!(decode_ban(key.as_slice(), "sshd", &bytes).unwrap(), ban);
            assert_eq!(ban_count_at(&bytes).unwrap(), (ban.count, ban.at));
            let json = encode_ban_json(&ban);
            assert_eq!(decode_ban(key.as_slice(), "sshd", &json).unwrap(), ban, "JSON is still read");
            assert_eq!(ban_count_at(&json).unwrap(), (ban.count, ban.at));
        }
        assert_eq!(encode_ban(&base).len(), FIXED_LEN, "27 bytes for a jail's ban");
    }

    #[test]
    fn a_network_with_host_bits_is_kept_exactly_as_json() {
        let ban = Ban {
            net: "198.51.100.7/24".parse().unwrap(),
            jail: "web".into(),
            origin: BanOrigin::Jail,
            at: Timestamp(1),
            until: None,
            count: 1,
            failures: 0,
        };
        let bytes = encode_ban(&ban);
        assert_eq!(bytes[0], b'{');
        assert_eq!(decode_ban(net_key(&ban.net).as_slice(), "web", &bytes).unwrap(), ban);
    }

    #[test]
    fn broken_records_are_refused_with_a_reason() {
        let key = net_key(&"192.0.2.1/32".parse().unwrap());
        let good = encode_ban(&Ban {
            net: "192.0.2.1/32".parse().unwrap(),
            jail: "j".into(),
            origin: BanOrigin::Manual,
            at: Timestamp(0),
            until: None,
            count: 1,
            failures: 0,
        });
        let short = decode_ban(key.as_slice(), "j", &good[..10]).unwrap_err();
        assert!(short.contains("shorter"), "{short}");
        let mut flags = good.clone();
        flags[1] = 0x80;
        assert!(decode_ban(key.as_slice(), "j", &flags).unwrap_err().contains("flags"));
        let mut trailing = good.clone();
        trailing.push(b'x');
        assert!(decode_ban(key.as_slice(), "j", &trailing).unwrap_err().contains("origin"));
        assert!(decode_ban(&[9], "j", &good).unwrap_err().contains("key"));
        assert!(decode_ban(key.as_slice(), "j", b"{").is_err());
        assert!(ban_count_at(&good[..5]).is_err());
    }
}
