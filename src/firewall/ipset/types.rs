//! The values the ipset API speaks in: address families, set types, entry
//! timeouts, what to create, and what the kernel reports back.

use std::fmt;
use std::time::Duration;

use ipnet::IpNet;

use super::proto::{MAX_TIMEOUT_SECS, NFPROTO_IPV4, NFPROTO_IPV6};

/// The address family of a set: ipset's `inet` or `inet6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family `net` belongs to.
    pub fn of(net: &IpNet) -> Family {
        match net {
            IpNet::V4(_) => Family::V4,
            IpNet::V6(_) => Family::V6,
        }
    }

    /// ipset's name for the family, as `ipset list` prints it.
    pub fn name(self) -> &'static str {
        match self {
            Family::V4 => "inet",
            Family::V6 => "inet6",
        }
    }

    pub(crate) fn nfproto(self) -> u8 {
        match self {
            Family::V4 => NFPROTO_IPV4,
            Family::V6 => NFPROTO_IPV6,
        }
    }

    pub(crate) fn from_nfproto(code: u8) -> Option<Family> {
        match code {
            NFPROTO_IPV4 => Some(Family::V4),
            NFPROTO_IPV6 => Some(Family::V6),
            _ => None,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The set types warden creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SetType {
    /// One entry per address. A network added to it is expanded by the
    /// kernel (IPv4) or refused (IPv6), so networks go to [`SetType::HashNet`].
    HashIp,
    /// One entry per network (prefixes /1 to /32 or /128); an address
    /// matches if any stored network contains it.
    HashNet,
}

impl SetType {
    /// The kernel's type name.
    pub fn name(self) -> &'static str {
        match self {
            SetType::HashIp => "hash:ip",
            SetType::HashNet => "hash:net",
        }
    }
}

impl fmt::Display for SetType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How long an entry stays in a set: whole seconds, or permanent.
///
/// The kernel caps timeouts at [`EntryTimeout::MAX`] (2,147,483 s, about
/// 24.8 days) and silently shortens longer ones. Values here are clamped the
/// same way, visibly: a caller holding a longer ban must refresh the entry
/// before it lapses (see [`EntryTimeout::is_clamped`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryTimeout(u32);

impl EntryTimeout {
    /// Never expires (the kernel's timeout 0).
    pub const PERMANENT: EntryTimeout = EntryTimeout(0);
    /// The longest timeout the kernel keeps.
    pub const MAX: EntryTimeout = EntryTimeout(MAX_TIMEOUT_SECS);

    /// `secs` seconds as the kernel reads them: 0 means permanent, and
    /// anything above [`EntryTimeout::MAX`] is clamped to it.
    pub fn from_secs(secs: u32) -> Self {
        EntryTimeout(secs.min(MAX_TIMEOUT_SECS))
    }

    /// An entry that expires after `d`, rounded up to whole seconds, at
    /// least 1 s (so a short remaining time never becomes permanent) and at
    /// most [`EntryTimeout::MAX`].
    pub fn after(d: Duration) -> Self {
        let secs = d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0)).max(1);
        EntryTimeout(secs.min(u64::from(MAX_TIMEOUT_SECS)) as u32)
    }

    /// True if `d` is longer than the kernel keeps, so [`EntryTimeout::after`]
    /// shortens it and the caller must re-add the entry before it lapses.
    pub fn is_clamped(d: Duration) -> bool {
        d > Duration::from_secs(u64::from(MAX_TIMEOUT_SECS))
    }

    /// Seconds as sent to the kernel (0 for permanent).
    pub fn secs(self) -> u32 {
        self.0
    }

    pub fn is_permanent(self) -> bool {
        self.0 == 0
    }

    /// The time until expiry, or `None` if permanent.
    pub fn as_duration(self) -> Option<Duration> {
        (!self.is_permanent()).then(|| Duration::from_secs(u64::from(self.0)))
    }
}

impl fmt::Display for EntryTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_permanent() { f.write_str("permanent") } else { write!(f, "{}s", self.0) }
    }
}

/// A set to create. Sets always get timeout support, so bans expire in the
/// kernel even while warden is down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec {
    pub name: String,
    pub set_type: SetType,
    pub family: Family,
    /// Timeout of entries added without one ([`EntryTimeout::PERMANENT`]
    /// keeps them until deleted).
    pub default_timeout: EntryTimeout,
    /// Most entries the set holds; adds beyond fail with "set is full".
    pub maxelem: u32,
}

impl SetSpec {
    /// The kernel's default `maxelem`.
    pub const DEFAULT_MAXELEM: u32 = 65_536;

    /// A spec with permanent default timeout and the default `maxelem`.
    pub fn new(name: impl Into<String>, set_type: SetType, family: Family) -> Self {
        SetSpec {
            name: name.into(),
            set_type,
            family,
            default_timeout: EntryTimeout::PERMANENT,
            maxelem: Self::DEFAULT_MAXELEM,
        }
    }
}

/// What [`super::IpsetHandle::create`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    /// The set was created.
    New,
    /// A compatible set (same type and family, with timeout support) already
    /// existed and was left as it is; its settings (default timeout,
    /// maxelem) may differ from the spec and are reported here.
    Existing(SetHeader),
}

/// A set's header: its type and settings, as the kernel lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetHeader {
    pub name: String,
    /// The kernel's type name, such as `hash:ip`.
    pub type_name: String,
    /// `None` for families warden does not use (such as `list:set`'s).
    pub family: Option<Family>,
    pub revision: u8,
    /// `None` if the set was created without timeout support.
    pub default_timeout: Option<EntryTimeout>,
    pub maxelem: Option<u32>,
    pub hashsize: Option<u32>,
    /// Number of entries (including expired ones not yet collected).
    pub elements: u32,
    /// How many iptables rules refer to the set.
    pub references: u32,
    pub memsize: u32,
}

impl SetHeader {
    /// The set's type, if it is one warden creates.
    pub fn set_type(&self) -> Option<SetType> {
        [SetType::HashIp, SetType::HashNet].into_iter().find(|t| t.name() == self.type_name)
    }
}

/// One entry of a listed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedEntry {
    /// The address (as a /32 or /128) or network.
    pub net: IpNet,
    /// Remaining time, or permanent; `None` if the set has no timeouts.
    pub timeout: Option<EntryTimeout>,
}

/// A set's header and entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetListing {
    pub header: SetHeader,
    pub entries: Vec<ListedEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_round_up_and_clamp() {
        assert_eq!(EntryTimeout::after(Duration::from_millis(1)).secs(), 1);
        assert_eq!(EntryTimeout::after(Duration::ZERO).secs(), 1);
        assert_eq!(EntryTimeout::after(Duration::from_millis(1500)).secs(), 2);
        assert_eq!(EntryTimeout::after(Duration::from_secs(600)).secs(), 600);
        let long = Duration::from_secs(60 * 60 * 24 * 365);
        assert_eq!(EntryTimeout::after(long), EntryTimeout::MAX);
        assert!(EntryTimeout::is_clamped(long));
        assert!(!EntryTimeout::is_clamped(Duration::from_secs(2_147_483)));
        assert!(EntryTimeout::is_clamped(Duration::from_millis(2_147_483_001)));
        assert_eq!(EntryTimeout::from_secs(0), EntryTimeout::PERMANENT);
        assert_eq!(EntryTimeout::from_secs(u32::MAX), EntryTimeout::MAX);
        assert_eq!(EntryTimeout::PERMANENT.as_duration(), None);
        assert_eq!(EntryTimeout::from_secs(5).as_duration(), Some(Duration::from_secs(5)));
        assert_eq!(EntryTimeout::PERMANENT.to_string(), "permanent");
    }

    #[test]
    fn families_and_types_have_ipset_names() {
        assert_eq!(Family::of(&"192.0.2.0/24".parse().unwrap()), Family::V4);
        assert_eq!(Family::of(&"2001:db8::/32".parse().unwrap()), Family::V6);
        assert_eq!(Family::from_nfproto(Family::V6.nfproto()), Some(Family::V6));
        assert_eq!(Family::from_nfproto(0), None);
        assert_eq!(SetType::HashNet.to_string(), "hash:net");
    }
}
