//! fail2ban's regex tags (`Regex._resolveHostTag`): `<HOST>`, `<ADDR>`,
//! `<IP4>`, `<IP6>`, `<DNS>`, `<CIDR>`, `<SUBNET>`, `<F-ID/>`, `<F-PORT/>`,
//! `<SKIPLINES>` and the `<F-NAME>…</F-NAME>` groups, expanded into Python
//! regex syntax with fail2ban's own group names (`ip4`, `ip6`, `dns`,
//! `cidr`, `fid`, `user`, `alt_user`, `mlfid`, `content`, `nofail`, …),
//! so patterns that refer to those groups keep working.
//!
//! Any other `<WORD>` stays as written (literal text), as in fail2ban.
//!
//! The IPv6 expression differs from fail2ban's in one spot: its final
//! `(?<=:):` (a look-behind that is always true there) is written `:`, so
//! the pattern needs no look-around.

/// `(?:\d{1,3}\.){3}\d{1,3}`
const IP4: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// fail2ban's `IP_6_RE` with `(?<=:):` written as `:`.
const IP6: &str = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)";

fn r_ip4() -> String {
    format!(r"(?:::f{{4,6}}:)?(?P<ip4>{IP4})")
}

fn r_ip6() -> String {
    format!("(?P<ip6>{IP6})")
}

const R_DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const R_CIDR: &str = r"(?P<cidr>\d+)";

fn r_addr() -> String {
    format!(r"\[?(?:{}|{})\]?", r_ip4(), r_ip6())
}

fn r_host() -> String {
    format!("(?:{}|{R_DNS})", r_addr())
}

fn r_subnet() -> String {
    format!(r"\[?(?:{}|{})(?:/{R_CIDR})?\]?", r_ip4(), r_ip6())
}

/// Expands the tags of one pattern. `use_dns = false` (fail2ban's
/// `usedns = no`) makes `<HOST>` an address only.
pub fn resolve(regex: &str, use_dns: bool) -> String {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open: Vec<String> = Vec::new();
    let mut skiplines = 0usize;
    let mut last = 0;
    for (start, end) in find_tags(regex) {
        out.push_str(&regex[last..start]);
        last = end;
        let tag = &regex[start..end];
        let name = &tag[1..tag.len() - 1];
        let replacement = match name {
            "HOST" if use_dns => r_host(),
            "HOST" => r_addr(),
            "SKIPLINES" => {
                let r = format!(r"\n(?P<skiplines{skiplines}>(?:(?:.*\n)*?))");
                skiplines += 1;
                r
            }
            "IP4" | "F-IP4/" => r_ip4(),
            "IP6" | "F-IP6/" => r_ip6(),
            "ADDR" | "F-ADDR/" => r_addr(),
            "CIDR" | "F-CIDR/" => R_CIDR.to_string(),
            "SUBNET" | "F-SUBNET/" => r_subnet(),
            "DNS" | "F-DNS/" => R_DNS.to_string(),
            "F-ID/" => r"(?P<fid>\S+)".to_string(),
            "F-PORT/" => r"(?P<fport>\w+)".to_string(),
            _ => match custom(name) {
                Some((true, custom)) if open.iter().any(|o| o == custom) => ")".to_string(),
                Some((true, _)) => tag.to_string(),
                Some((false, custom)) => {
                    open.push(custom.to_string());
                    format!("(?P<{}>", group_name(custom))
                }
                None => tag.to_string(),
            },
        };
        out.push_str(&replacement);
    }
    out.push_str(&regex[last..]);
    out
}

/// A `<name>` left in a pattern that can only be a reference to an option
/// that does not exist, like `<mdre-extra>` when the filter has no option
/// of that name (fail2ban would leave it as literal text that never
/// matches): lowercase, with `-` or `/` in it, outside group syntax.
pub fn unresolved(regex: &str) -> Option<&str> {
    let b = regex.as_bytes();
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'<', &b[i..]) {
        let start = i + off;
        i = start + 1;
        let before = &regex[..start];
        if before.ends_with("(?P")
            || before.ends_with("(?")
            || before.ends_with("\\k")
            || before.ends_with('\\')
        {
            continue;
        }
        let len = b[i..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'-' | b'/'))
            .count();
        let name = &regex[i..i + len];
        if len > 0
            && b.get(i + len) == Some(&b'>')
            && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.contains(['-', '/'])
        {
            return Some(&regex[start..=i + len]);
        }
    }
    None
}

/// `FTAG_CRE`: `</?[\w\-]+/?>`, as (start, end) byte ranges.
fn find_tags(text: &str) -> Vec<(usize, usize)> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'<', &b[i..]) {
        let start = i + off;
        let mut j = start + 1;
        if b.get(j) == Some(&b'/') {
            j += 1;
        }
        let word_start = j;
        while j < b.len() {
            let c = text[j..].chars().next().unwrap_or('\0');
            if c.is_alphanumeric() || c == '_' || c == '-' {
                j += c.len_utf8();
            } else {
                break;
            }
        }
        if j > word_start {
            if b.get(j) == Some(&b'/') {
                j += 1;
            }
            if b.get(j) == Some(&b'>') {
                out.push((start, j + 1));
                i = j + 1;
                continue;
            }
        }
        i = start + 1;
    }
    out
}

/// `FCUSTNAME_CRE` (`^(/?)F-([A-Z0-9_\-]+)$`): (closing, name after `F-`).
fn custom(name: &str) -> Option<(bool, &str)> {
    let (closing, rest) = match name.strip_prefix('/') {
        Some(r) => (true, r),
        None => (false, name),
    };
    let custom = rest.strip_prefix("F-")?;
    let valid = !custom.is_empty()
        && custom.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_' || c == b'-');
    valid.then_some((closing, custom))
}

/// `mapTag2Opt`: the group name for a custom tag (`ID` is `fid`, `PORT`
/// is `fport`, others lowercased).
fn group_name(tag: &str) -> String {
    match tag.to_lowercase().as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_expand_with_fail2ban_group_names() {
        let r = resolve("^<F-USER>\\S+</F-USER> from <HOST><F-ID/></F-NOPE>", true);
        assert!(r.starts_with(r"^(?P<user>\S+) from (?:\[?(?:(?:::f{4,6}:)?(?P<ip4>"), "{r}");
        assert!(r.contains("(?P<dns>") && r.ends_with(r"(?P<fid>\S+)</F-NOPE>"), "{r}");
        assert!(!resolve("<HOST>", false).contains("dns"));
        assert_eq!(resolve("<F-ALT_USER1>x</F-ALT_USER1>", true), "(?P<alt_user1>x)");
        assert_eq!(resolve("<F-MLFID>x</F-MLFID><CODE>(?P<user>y)", true), "(?P<mlfid>x)<CODE>(?P<user>y)");
        let r = resolve("a<SKIPLINES>b<SKIPLINES>c", true);
        assert!(r.contains("skiplines0") && r.contains("skiplines1"), "{r}");
        assert!(resolve("<SUBNET>", true).contains("(?P<cidr>"));
    }

    #[test]
    fn unresolved_references_are_spotted() {
        assert_eq!(unresolved("^a <mdre-extra> b"), Some("<mdre-extra>"));
        assert_eq!(unresolved("^<lt_x/__prefix_line>"), Some("<lt_x/__prefix_line>"));
        assert_eq!(unresolved(r"(?P<cond-x>a)\k<a-b><NOSRV><W>(?P<__connid>\d+)"), None);
    }

    #[test]
    fn expanded_addresses_match() {
        let re = regex::Regex::new(&format!("^{}$", resolve("<HOST>", true))).unwrap();
        for (text, group) in [
            ("192.0.2.1", "ip4"),
            ("::ffff:192.0.2.1", "ip4"),
            ("[2001:db8::1]", "ip6"),
            ("2001:db8::", "ip6"),
            ("example.com", "dns"),
        ] {
            let caps = re.captures(text).unwrap_or_else(|| panic!("{text}"));
            assert!(caps.name(group).is_some(), "{text} -> {group}");
        }
    }
}
