//! Field-level checks: turn one YAML node into one typed value, or record
//! an error that says where the node is and what would have been valid.
//!
//! [`Checker`] owns the error list for one file. Every parser returns
//! `Option`: `None` means an error was recorded and the caller carries on
//! with the next field, so all problems surface in one pass.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::error::{ConfigError, closest};
use super::yaml::{Node, Pos, Value, quote};
use crate::core::{BanTime, PortRange, parse_duration, parse_ip_or_net};

/// Collects the errors of one configuration file.
pub(crate) struct Checker {
    file: PathBuf,
    pub errors: Vec<ConfigError>,
}

/// One mapping entry whose key is a plain, first-seen string.
pub(crate) struct Entry<'n> {
    pub key: String,
    pub key_pos: Pos,
    pub value: &'n Node,
    /// The dotted path of this entry, like `jails.sshd.bantime`.
    pub path: String,
}

/// Which keys a mapping may have.
pub(crate) enum Keys<'k> {
    /// A fixed set, in the order shown in messages.
    Known(&'k [&'k str]),
    /// A fixed set, plus keys that are valid elsewhere: those get `hint`
    /// (like "is set in each jail, not in defaults") instead of "unknown".
    KnownElsewhere { known: &'k [&'k str], elsewhere: &'k [&'k str], hint: &'k str },
    /// User-chosen names (jails, filter params, journal fields).
    Any,
}

/// `parent.key`, or `key` at the top level.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_string() } else { format!("{parent}.{key}") }
}

impl Checker {
    pub fn new(file: &Path) -> Self {
        Checker { file: file.to_path_buf(), errors: Vec::new() }
    }

    pub fn error(&mut self, pos: Pos, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.clone(),
            pos: Some(pos),
            key: key.to_string(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Node, path: &str, what: &str) {
        let found = node.value.describe();
        self.error(node.pos, path, format!("expected {what}, found {found}"));
    }

    /// The entries of a mapping at `path`. Reports a non-mapping, keys that
    /// are not plain names, duplicate keys (the first one counts) and, for
    /// [`Keys::Known`], unknown keys with a suggestion. An empty value (`key:`
    /// with nothing after it) is an empty mapping.
    pub fn entries<'n>(&mut self, node: &'n Node, path: &str, keys: Keys<'_>) -> Vec<Entry<'n>> {
        let items = match &node.value {
            Value::Map(items) => items,
            Value::Null => return Vec::new(),
            _ => {
                let what = match keys {
                    Keys::Known(known) | Keys::KnownElsewhere { known, .. } => {
                        format!("a mapping with keys {}", known.join(", "))
                    }
                    Keys::Any => "a mapping".to_string(),
                };
                self.expected(node, path, &what);
                return Vec::new();
            }
        };
        let mut out: Vec<Entry<'n>> = Vec::with_capacity(items.len());
        for (key_node, value) in items {
            let key = match &key_node.value {
                Value::Str(s) => s.clone(),
                Value::Int(_) | Value::Bool(_) | Value::Float(_) if matches!(keys, Keys::Any) => {
                    key_node.value.scalar_text().unwrap_or_default()
                }
                other => {
                    let found = other.describe();
                    self.error(key_node.pos, path, format!("expected a key name, found {found}"));
                    continue;
                }
            };
            let entry_path = join(path, &key);
            if let Some(first) = out.iter().find(|e| e.key == key) {
                let line = first.key_pos.line;
                self.error(
                    key_node.pos,
                    &entry_path,
                    format!("duplicate key {}; it is already set on line {line}", quote(&key)),
                );
                continue;
            }
            // Top-level `x-…` keys hold YAML anchors for reuse, as in
            // docker-compose files; warden ignores them.
            if path.is_empty() && key.starts_with("x-") {
                continue;
            }
            if let Keys::KnownElsewhere { known, elsewhere, hint } = keys
                && elsewhere.contains(&key.as_str())
            {
                let message = format!("`{key}` {hint}; valid keys here are: {}", known.join(", "));
                self.error(key_node.pos, &entry_path, message);
                continue;
            }
            if let Keys::Known(known) | Keys::KnownElsewhere { known, .. } = keys
                && !known.contains(&key.as_str())
            {
                let mut message = format!(
                    "unknown key {}{}; valid keys are: {}",
                    quote(&key),
                    if path.is_empty() { String::new() } else { format!(" in {path}") },
                    known.join(", ")
                );
                if path.is_empty() {
                    message.push_str(" (and x-… keys for YAML anchors)");
                }
                if let Some(best) = closest(&key, known.iter().copied()) {
                    message.push_str(&format!("; did you mean `{best}`?"));
                }
                self.error(key_node.pos, &entry_path, message);
                continue;
            }
            out.push(Entry { key, key_pos: key_node.pos, value, path: entry_path });
        }
        out
    }

    /// The items of a list. A single scalar is a one-item list, and a string
    /// may hold several items separated by commas or spaces (fail2ban's
    /// `ignoreip = 127.0.0.1/8 ::1`, `port = 80,443`).
    pub fn list_items(&mut self, node: &Node, path: &str, what: &str) -> Vec<(Node, String)> {
        let split = |item: &Node, item_path: String| -> Vec<(Node, String)> {
            match &item.value {
                Value::Str(s) if s.contains([',', ' ', '\t']) => s
                    .split([',', ' ', '\t'])
                    .filter(|part| !part.is_empty())
                    .map(|part| {
                        (Node { value: Value::Str(part.to_string()), pos: item.pos }, item_path.clone())
                    })
                    .collect(),
                _ => vec![(item.clone(), item_path)],
            }
        };
        match &node.value {
            Value::Seq(items) => {
                items.iter().enumerate().flat_map(|(i, item)| split(item, format!("{path}[{i}]"))).collect()
            }
            Value::Null => Vec::new(),
            Value::Map(_) => {
                self.expected(node, path, &format!("a list of {what}"));
                Vec::new()
            }
            _ => split(node, path.to_string()),
        }
    }

    /// The items of a list whose entries are mappings or names (no splitting).
    pub fn seq<'n>(&mut self, node: &'n Node, path: &str, what: &str) -> Vec<(&'n Node, String)> {
        match &node.value {
            Value::Seq(items) => items.iter().enumerate().map(|(i, n)| (n, format!("{path}[{i}]"))).collect(),
            Value::Null => Vec::new(),
            _ => {
                self.expected(node, path, &format!("a list of {what}"));
                Vec::new()
            }
        }
    }

    /// A non-empty string (numbers and booleans are rejected: a name that
    /// YAML read as `true` or `25` was almost certainly not meant as one).
    pub fn string(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) if !s.trim().is_empty() => Some(s.clone()),
            _ => {
                self.expected(node, path, what);
                None
            }
        }
    }

    /// Any scalar as text: for values handed on verbatim (filter params,
    /// journal field values), where `25` and `"25"` mean the same.
    pub fn scalar(&mut self, node: &Node, path: &str, what: &str) -> Option<String> {
        match node.value.scalar_text() {
            Some(text) => Some(text),
            None => {
                self.expected(node, path, what);
                None
            }
        }
    }

    pub fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.expected(node, path, "true or false");
                None
            }
        }
    }

    /// A whole number within `min..=max` (a quoted number is fine too).
    pub fn integer(&mut self, node: &Node, path: &str, min: u64, max: u64) -> Option<u64> {
        let what = || {
            // Limits that only guard the type's range are not worth reading.
            if max >= u64::from(u32::MAX) {
                format!("a whole number of at least {min}")
            } else {
                format!("a whole number from {min} to {max}")
            }
        };
        let n: Option<i128> = match &node.value {
            Value::Int(i) => Some(*i),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        };
        match n {
            Some(n) if n >= i128::from(min) && n <= i128::from(max) => u64::try_from(n).ok(),
            _ => {
                self.expected(node, path, &what());
                None
            }
        }
    }

    /// A positive finite number (a multiplier).
    pub fn positive_number(&mut self, node: &Node, path: &str) -> Option<f64> {
        let n = match &node.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Str(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match n {
            Some(n) if n.is_finite() && n > 0.0 => Some(n),
            _ => {
                self.expected(node, path, "a number greater than 0 (like 1 or 1.5)");
                None
            }
        }
    }

    /// A duration like `10m`, `1h30m`, `1w`, or plain seconds.
    /// `allow_zero` is for jitter-like fields where 0 means "none".
    pub fn duration(&mut self, node: &Node, path: &str, allow_zero: bool) -> Option<Duration> {
        let parsed = match &node.value {
            Value::Int(i) => match u64::try_from(*i) {
                Ok(secs) => Ok(Duration::from_secs(secs)),
                Err(_) => Err(format!(
                    "invalid duration {i}: it is negative; expected a number with a unit s, m, h, d, w or y (like 90s, 10m, 1h30m, 1w), or plain seconds"
                )),
            },
            Value::Str(s) => parse_duration(s).map_err(|e| e.to_string()),
            _ => {
                self.expected(node, path, "a duration (like 90s, 10m, 1h30m, 1w, or plain seconds)");
                return None;
            }
        };
        match parsed {
            Ok(d) if d.is_zero() && !allow_zero => {
                self.error(node.pos, path, "the duration must be longer than 0s (like 10m)");
                None
            }
            Ok(d) => Some(d),
            Err(message) => {
                self.error(node.pos, path, message);
                None
            }
        }
    }

    /// A ban time: a duration, `permanent`, or a negative number (forever).
    pub fn bantime(&mut self, node: &Node, path: &str) -> Option<BanTime> {
        let parsed = match &node.value {
            Value::Int(i) if *i < 0 => Ok(BanTime::Permanent),
            Value::Int(i) => match u64::try_from(*i) {
                Ok(secs) => Ok(BanTime::Finite(Duration::from_secs(secs))),
                Err(_) => Err("the number is too large".to_string()),
            },
            Value::Str(s) => BanTime::parse(s).map_err(|e| e.to_string()),
            _ => {
                self.expected(node, path, "a ban time (like 10m, 1w, or permanent)");
                return None;
            }
        };
        match parsed {
            Ok(BanTime::Finite(d)) if d.is_zero() => {
                self.error(
                    node.pos,
                    path,
                    "a ban of 0s bans nothing; use a duration (like 10m), `permanent`, or `enabled: false` on the jail",
                );
                None
            }
            Ok(bantime) => Some(bantime),
            Err(message) => {
                self.error(
                    node.pos,
                    path,
                    format!("{message}; or `permanent` (or a negative number) for forever"),
                );
                None
            }
        }
    }

    /// One of a fixed set of words.
    pub fn choice<T: Copy>(&mut self, node: &Node, path: &str, options: &[(&str, T)]) -> Option<T> {
        let names: Vec<&str> = options.iter().map(|(name, _)| *name).collect();
        if let Value::Str(s) = &node.value {
            if let Some((_, value)) = options.iter().find(|(name, _)| *name == s.as_str()) {
                return Some(*value);
            }
            let mut message = format!("invalid value {}; expected one of: {}", quote(s), names.join(", "));
            if let Some(best) = closest(s, names.iter().copied()) {
                message.push_str(&format!("; did you mean `{best}`?"));
            }
            self.error(node.pos, path, message);
            return None;
        }
        self.expected(node, path, &format!("one of: {}", names.join(", ")));
        None
    }

    /// An IP address or CIDR network, v4 or v6.
    pub fn ip_or_net(&mut self, node: &Node, path: &str) -> Option<IpNet> {
        match &node.value {
            Value::Str(s) => match parse_ip_or_net(s) {
                Ok(net) => Some(net),
                Err(_) => {
                    self.error(
                        node.pos,
                        path,
                        format!(
                            "invalid address {}; expected an IPv4 or IPv6 address, optionally with a /prefix (like 203.0.113.7, 198.51.100.0/24, 2001:db8::/48)",
                            quote(s)
                        ),
                    );
                    None
                }
            },
            _ => {
                self.expected(node, path, "an IP address or network (like 203.0.113.7 or 198.51.100.0/24)");
                None
            }
        }
    }

    /// A port (`25`) or an inclusive range (`8000:8100` or `8000-8100`).
    pub fn port_range(&mut self, node: &Node, path: &str) -> Option<PortRange> {
        const VALID: &str = "expected a port from 1 to 65535 or a range like 8000:8100 or 8000-8100";
        let parsed = match &node.value {
            Value::Int(i) => port(&i.to_string()).map(|p| PortRange { first: p, last: p }),
            Value::Str(s) => parse_port_range(s),
            _ => None,
        };
        match parsed {
            Some(range) => Some(range),
            None => {
                let found = match &node.value {
                    Value::Str(s) => match s.split_once([':', '-']).map(|(a, b)| (port(a), port(b))) {
                        Some((Some(a), Some(b))) if a > b => {
                            format!("invalid port range {}: it is reversed", quote(s))
                        }
                        _ => format!("invalid port {}", quote(s)),
                    },
                    other => format!("found {}", other.describe()),
                };
                self.error(node.pos, path, format!("{found}; {VALID}"));
                None
            }
        }
    }

    /// An absolute filesystem path.
    pub fn absolute_path(&mut self, node: &Node, path: &str, what: &str) -> Option<PathBuf> {
        let text = self.string(node, path, &format!("an absolute path to {what}"))?;
        if text.contains('\0') {
            self.error(node.pos, path, "a path cannot contain a NUL character");
            return None;
        }
        let p = PathBuf::from(&text);
        if p.is_absolute() {
            Some(p)
        } else {
            self.error(
                node.pos,
                path,
                format!(
                    "path {} is relative; expected an absolute path to {what} (starting with /)",
                    quote(&text)
                ),
            );
            None
        }
    }
}

fn port(s: &str) -> Option<u16> {
    s.trim().parse::<u16>().ok().filter(|p| *p != 0)
}

/// `25`, `8000:8100` or `8000-8100`; `None` when malformed, 0, or reversed.
pub(crate) fn parse_port_range(s: &str) -> Option<PortRange> {
    let (first, last) = match s.split_once([':', '-']) {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(s)?;
            (p, p)
        }
    };
    (first <= last).then_some(PortRange { first, last })
}

/// Checks shell-glob syntax as the file source reads it: `*` and `?` within
/// one path component, `**` as a whole component (any depth), and `[...]`
/// classes (`[abc]`, `[a-z]`, `[!abc]`). Returns why the pattern is malformed.
pub(crate) fn check_glob(pattern: &str) -> Result<(), String> {
    for component in pattern.split('/') {
        if component.contains("**") && component != "**" {
            return Err(format!(
                "`**` must be a whole path component (like /var/log/**/auth.log), not part of {}",
                quote(component)
            ));
        }
        let mut chars = component.chars().peekable();
        while let Some(c) = chars.next() {
            if c == ']' {
                return Err("`]` without a matching `[`; to match a literal `]` write `[]]`".into());
            }
            if c != '[' {
                continue;
            }
            if matches!(chars.peek(), Some('!' | '^')) {
                chars.next();
            }
            // A `]` right after the opening (or negation) is a literal member.
            let mut members = 0usize;
            if chars.peek() == Some(&']') {
                chars.next();
                members += 1;
            }
            let mut closed = false;
            for c in chars.by_ref() {
                if c == ']' {
                    closed = true;
                    break;
                }
                members += 1;
            }
            if !closed {
                return Err(format!(
                    "`[` without a closing `]` in {}; character classes look like [abc] or [0-9]",
                    quote(component)
                ));
            }
            if members == 0 {
                return Err("empty character class `[]`".into());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("25"), Some(PortRange { first: 25, last: 25 }));
        assert_eq!(parse_port_range("8000:8100"), Some(PortRange { first: 8000, last: 8100 }));
        assert_eq!(parse_port_range("8000-8100"), Some(PortRange { first: 8000, last: 8100 }));
        for bad in ["0", "65536", "8100:8000", "http", "1:", ":2", "1-2-3", "", "-5"] {
            assert_eq!(parse_port_range(bad), None, "{bad}");
        }
    }

    #[test]
    fn glob_syntax() {
        for good in [
            "/var/log/auth.log",
            "/var/log/*.log",
            "/srv/*/logs/**/access.log",
            "/a/[ab]c",
            "/a/[!x]",
            "/a/[]]",
        ] {
            assert_eq!(check_glob(good), Ok(()), "{good}");
        }
        for bad in ["/var/log/[ab", "/var/log/a]", "/var/log/x**", "/a/[]"] {
            assert!(check_glob(bad).is_err(), "{bad}");
        }
    }
}
