//! fail2ban's `port` values in warden's terms: comma- or space-separated
//! ports, service names (`ssh`, `http,https`) and `first:last` ranges, as
//! iptables' multiport match reads them. `0:65535` (fail2ban's "every
//! port") becomes warden's empty port list.

use crate::core::PortRange;

/// What a `port` value covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ports {
    /// Every port.
    All,
    /// These ports and ranges, in the order written (duplicates dropped).
    List(Vec<PortRange>),
}

/// Service names fail2ban's stock jails use, and other common ones, so the
/// import does not depend on the machine's `/etc/services` (warden's image
/// has none). Others are looked up there when it exists.
const SERVICES: &[(&str, u16)] = &[
    ("ftp-data", 20),
    ("ftp", 21),
    ("ssh", 22),
    ("telnet", 23),
    ("smtp", 25),
    ("domain", 53),
    ("http", 80),
    ("www", 80),
    ("kerberos", 88),
    ("pop3", 110),
    ("nntp", 119),
    ("ntp", 123),
    ("netbios-ssn", 139),
    ("imap", 143),
    ("imap2", 143),
    ("snmp", 161),
    ("ldap", 389),
    ("https", 443),
    ("microsoft-ds", 445),
    ("smtps", 465),
    ("ssmtp", 465),
    ("submissions", 465),
    ("isakmp", 500),
    ("submission", 587),
    ("ldaps", 636),
    ("rsync", 873),
    ("ftps-data", 989),
    ("ftps", 990),
    ("imaps", 993),
    ("pop3s", 995),
    ("socks", 1080),
    ("openvpn", 1194),
    ("ms-sql-s", 1433),
    ("mysql", 3306),
    ("squid", 3128),
    ("sieve", 4190),
    ("sip", 5060),
    ("sip-tls", 5061),
    ("xmpp-client", 5222),
    ("postgresql", 5432),
    ("redis", 6379),
    ("http-alt", 8080),
    ("webcache", 8080),
];

/// A port number or service name.
fn port(item: &str) -> Option<u16> {
    let item = item.trim();
    if let Ok(n) = item.parse::<u16>() {
        return Some(n);
    }
    let lower = item.to_lowercase();
    SERVICES.iter().find(|(name, _)| *name == lower).map(|(_, p)| *p).or_else(|| etc_services(&lower))
}

/// `name`'s TCP port in `/etc/services`, when that file exists.
fn etc_services(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").ok()?;
    text.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let service = words.next()?;
        let (number, proto) = words.next()?.split_once('/')?;
        let aliases: Vec<&str> = words.collect();
        (proto == "tcp" && (service == name || aliases.contains(&name)))
            .then(|| number.parse().ok())
            .flatten()
    })
}

/// Parses a `port` value. The error names the item warden cannot read.
pub(super) fn parse(value: &str) -> Result<Ports, String> {
    let mut list: Vec<PortRange> = Vec::new();
    let items = crate::filter::fail2ban::jails::split_words(value);
    if items.is_empty() {
        return Err("it is empty".into());
    }
    for item in items {
        let range = match item.split_once(':') {
            Some((first, last)) => {
                let (Some(first), Some(last)) = (port(first), port(last)) else {
                    return Err(format!("{item:?} is not a port range (like 8000:8100)"));
                };
                if first > last {
                    return Err(format!("port range {item:?} is reversed"));
                }
                // iptables counts port 0 in a range; warden starts at 1.
                PortRange { first: first.max(1), last }
            }
            None => match port(item) {
                Some(0) => return Err("port 0 is not a port".into()),
                Some(p) => PortRange { first: p, last: p },
                None => {
                    return Err(format!("{item:?} is neither a port number nor a known service name"));
                }
            },
        };
        if range.first == 1 && range.last == u16::MAX {
            return Ok(Ports::All);
        }
        if !list.contains(&range) {
            list.push(range);
        }
    }
    Ok(Ports::List(list))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ranges: &[(u16, u16)]) -> Ports {
        Ports::List(ranges.iter().map(|&(first, last)| PortRange { first, last }).collect())
    }

    #[test]
    fn names_numbers_and_ranges() {
        assert_eq!(parse("ssh"), Ok(list(&[(22, 22)])));
        assert_eq!(parse("http,https"), Ok(list(&[(80, 80), (443, 443)])));
        assert_eq!(parse("smtp, 465 submission,smtp"), Ok(list(&[(25, 25), (465, 465), (587, 587)])));
        assert_eq!(parse("1000:2000,ftp-data:ftp"), Ok(list(&[(1000, 2000), (20, 21)])));
        assert_eq!(parse("0:1024"), Ok(list(&[(1, 1024)])));
        assert_eq!(parse("0:65535"), Ok(Ports::All));
        assert_eq!(parse("22,1:65535"), Ok(Ports::All));
    }

    #[test]
    fn what_cannot_be_read_is_named() {
        for (bad, says) in [
            ("no-such-service-here", "no-such-service-here"),
            ("2000:1000", "reversed"),
            ("80:x", "80:x"),
            ("0", "port 0"),
            ("", "empty"),
            ("70000", "70000"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
