//! Address captures: the text a `<HOST>`-style tag matched, validated and
//! normalised (IPv4-mapped IPv6 becomes IPv4) so one attacker has one identity.
//!
//! The tag regexes are deliberately loose; the standard library's parser is
//! the judge of what an address is.

use std::net::IpAddr;

use super::text::InlineBytes;
use crate::core::normalize_ip;

/// Parses a captured address (brackets, if any, stripped; an IPv6 zone
/// `%eth0` dropped). `None` when the text is not an address.
pub fn parse_addr(text: &str) -> Option<IpAddr> {
    // Most captures are bare dotted IPv4: one pass, no searching. Whatever
    // this rejects (brackets, zones, colons) takes the general way below.
    if let Some(v4) = parse_zero_padded_v4(text) {
        return Some(IpAddr::V4(v4));
    }
    let text = text.strip_prefix('[').unwrap_or(text);
    let text = text.strip_suffix(']').unwrap_or(text);
    let text = match memchr::memchr(b'%', text.as_bytes()) {
        Some(zone) => &text[..zone],
        None => text,
    };
    // Without a colon only dotted IPv4 can parse: read it directly (the
    // common case, and the standard parser's leading-zero rule is relaxed
    // below anyway).
    if !text.as_bytes().contains(&b':') {
        return parse_zero_padded_v4(text).map(IpAddr::V4);
    }
    match text.parse::<IpAddr>() {
        Ok(ip) => Some(normalize_ip(ip)),
        Err(_) => parse_zero_padded_v4(text).map(IpAddr::V4),
    }
}

/// The last address text [`parse_addr`] read, and what it gave: the lines
/// of one connection usually carry the same address, one after another.
#[derive(Debug, Clone, Default)]
pub(crate) struct AddrMemo {
    /// The last text of at most 16 bytes (an IPv4 address, a short IPv6
    /// one), and what it gave.
    text: Option<InlineBytes<16>>,
    addr: Option<IpAddr>,
}

impl AddrMemo {
    /// [`parse_addr`], answered from the memo when `text` is the last text.
    pub fn parse(&mut self, text: &str) -> Option<IpAddr> {
        let b = text.as_bytes();
        if let Some(last) = &self.text
            && last.is(b)
        {
            return self.addr;
        }
        let addr = parse_addr(text);
        if let Some(text) = InlineBytes::new(b) {
            *self = AddrMemo { text: Some(text), addr };
        }
        addr
    }
}

/// `192.030.0.6`: decimal octets with leading zeros, which some loggers
/// write and the standard parser rejects (as possibly octal).
///
/// Each octet's one to three digits are read without a branch on how many
/// there are (which varies from address to address, and so is mispredicted):
/// the second and third digit count when they are digits. This runs on
/// nearly every matched line.
fn parse_zero_padded_v4(text: &str) -> Option<std::net::Ipv4Addr> {
    let b = text.as_bytes();
    // `0.0.0.0` to `255.255.255.255`.
    if !(7..=15).contains(&b.len()) {
        return None;
    }
    // A non-digit (or past the end) reads as 10 or more.
    let digit = |i: usize| u32::from(b.get(i).map_or(u8::MAX, |c| c.wrapping_sub(b'0')));
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, octet) in octets.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        let (first, second, third) = (digit(i), digit(i + 1), digit(i + 2));
        if first > 9 {
            return None;
        }
        let two = second <= 9;
        let three = two && third <= 9;
        let mut value = first;
        value = if two { value * 10 + second } else { value };
        value = if three { value * 10 + third } else { value };
        i += 1 + usize::from(two) + usize::from(three);
        *octet = u8::try_from(value).ok()?;
    }
    (i == b.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// Parses a failure id that may be an address (`<F-ID>`); used when a line
/// has an id but no address tag.
pub fn addr_from_id(id: &str) -> Option<IpAddr> {
    parse_addr(id.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_rejects() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(parse_addr("192.0.2.1"), Some(v4));
        assert_eq!(parse_addr("::ffff:192.0.2.1"), Some(v4));
        assert_eq!(parse_addr("[2001:db8::1]"), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_addr("fe80::1%eth0"), Some("fe80::1".parse().unwrap()));
        assert_eq!(parse_addr("192.030.0.6"), Some("192.30.0.6".parse().unwrap()));
        assert_eq!(parse_addr("0.0.0.0"), Some("0.0.0.0".parse().unwrap()));
        assert_eq!(parse_addr("255.255.255.255"), Some("255.255.255.255".parse().unwrap()));
        for bad in [
            "999.1.1.1",
            "15:01:17",
            "",
            "1.2.3",
            "host.example",
            "1.2.3.4.5",
            "0256.1.1.1",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.4.",
            "256.1.1.1",
            "1.2.3.-4",
            "1.2.3.4 ",
        ] {
            assert_eq!(parse_addr(bad), None, "{bad}");
        }
        assert_eq!(addr_from_id(" 203.0.113.4 "), Some("203.0.113.4".parse().unwrap()));
    }

    #[test]
    fn the_memo_answers_as_parse_addr_does() {
        let mut memo = AddrMemo::default();
        for text in [
            "192.0.2.1",
            "192.0.2.1",
            "192.0.2.10",
            "192.0.2.1",
            "",
            "",
            "999.1.1.1",
            "999.1.1.1",
            "2001:db8::1",
            "2001:db8::1",
            "2001:db8:aaaa:bbbb::1",
            "2001:db8:aaaa:bbbb::1",
            "1.2.3.4",
        ] {
            assert_eq!(memo.parse(text), parse_addr(text), "{text}");
        }
    }
}
