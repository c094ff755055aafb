//! [`IpsetError`]: which ipset operation failed, on which set and entry, and
//! why, with the kernel's errno turned into words an operator can act on.

use std::fmt;
use std::io;

use ipnet::IpNet;

use super::Family;
use super::proto::*;

/// The operation that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    Protocol,
    Create,
    Header,
    Destroy,
    Flush,
    Rename,
    Swap,
    List,
    ListNames,
    Add,
    Del,
    Test,
}

/// An ipset operation that failed, naming the set, the entry (for add,
/// delete and test) and the other set (for swap and rename).
#[derive(Debug, thiserror::Error)]
#[error("ipset: cannot {}: {kind}", describe(*op, set, entry.as_ref(), other.as_deref()))]
pub struct IpsetError {
    pub op: Op,
    /// The set operated on; empty for [`Op::Open`], [`Op::Protocol`] and [`Op::ListNames`].
    pub set: String,
    pub entry: Option<IpNet>,
    /// The second set of a swap, or the new name of a rename.
    pub other: Option<String>,
    #[source]
    pub kind: ErrorKind,
}

/// Why an ipset operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The kernel refused; the message depends on the operation, since
    /// ipset reuses codes (EXIST means "already there" for add and "not
    /// there" for delete).
    #[error("{}", kernel_message(*op, *errno))]
    Kernel { op: Op, errno: i32 },

    #[error("netlink socket error: {0}")]
    Io(#[source] io::Error),

    #[error("invalid set name: {0}; use 1 to 31 bytes without NUL (see set_name)")]
    InvalidName(&'static str),

    /// Boxed: rare, and it would otherwise double the size of every error.
    #[error("{0}")]
    Incompatible(Box<Incompatible>),

    #[error("the set holds {set_family} entries but this entry is {entry_family}; use the set of its family")]
    FamilyMismatch { set_family: Family, entry_family: Family },

    #[error(
        "the kernel speaks ipset protocol {kernel}, warden needs at least {PROTOCOL}; upgrade the kernel"
    )]
    UnsupportedProtocol { kernel: u8 },

    #[error("malformed reply from the kernel: {0}")]
    Malformed(String),
}

/// An existing set that [`super::IpsetHandle::create`] cannot adopt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "a set of that name already exists as {found_type} family {found_family}{}, \
     but warden needs {wanted_type} family {wanted_family} with timeout support; \
     destroy the old set (ipset destroy NAME) or pick another name",
    if *found_timeout { " with timeout" } else { " without timeout" }
)]
pub struct Incompatible {
    pub found_type: String,
    pub found_family: String,
    pub found_timeout: bool,
    pub wanted_type: &'static str,
    pub wanted_family: &'static str,
}

impl IpsetError {
    pub(crate) fn new(op: Op, set: &str, kind: ErrorKind) -> Self {
        IpsetError { op, set: set.to_string(), entry: None, other: None, kind }
    }

    pub(crate) fn with_entry(mut self, entry: IpNet) -> Self {
        self.entry = Some(entry);
        self
    }

    pub(crate) fn with_other(mut self, other: &str) -> Self {
        self.other = Some(other.to_string());
        self
    }

    /// The kernel's errno, if the kernel refused the operation.
    pub fn errno(&self) -> Option<i32> {
        match self.kind {
            ErrorKind::Kernel { errno, .. } => Some(errno),
            _ => None,
        }
    }

    /// True if the set operated on does not exist.
    pub fn is_missing_set(&self) -> bool {
        self.errno() == Some(libc::ENOENT)
    }

    /// True if the process lacks `CAP_NET_ADMIN` in this network namespace.
    pub fn is_permission_denied(&self) -> bool {
        matches!(self.errno(), Some(libc::EPERM) | Some(libc::EACCES))
    }
}

fn describe(op: Op, set: &str, entry: Option<&IpNet>, other: Option<&str>) -> String {
    let entry = entry.map_or_else(|| "entries".to_string(), ToString::to_string);
    let other = other.unwrap_or("");
    match op {
        Op::Open => "open a netfilter netlink socket".to_string(),
        Op::Protocol => "negotiate the ipset protocol".to_string(),
        Op::Create => format!("create set {set}"),
        Op::Header => format!("read the header of set {set}"),
        Op::Destroy => format!("destroy set {set}"),
        Op::Flush => format!("flush set {set}"),
        Op::Rename => format!("rename set {set} to {other}"),
        Op::Swap => format!("swap set {set} with {other}"),
        Op::List => format!("list set {set}"),
        Op::ListNames => "list the names of all sets".to_string(),
        Op::Add => format!("add {entry} to set {set}"),
        Op::Del => format!("delete {entry} from set {set}"),
        Op::Test => format!("test {entry} in set {set}"),
    }
}

/// A readable meaning of `errno` for `op`, followed by the code's name.
pub fn kernel_message(op: Op, errno: i32) -> String {
    let (meaning, name): (String, &str) = match errno {
        libc::ENOENT => ("set does not exist".into(), "ENOENT"),
        libc::EPERM | libc::EACCES => (
            "operation not permitted: warden needs CAP_NET_ADMIN in this network namespace \
             (run as root, or the container with --cap-add NET_ADMIN)"
                .into(),
            if errno == libc::EPERM { "EPERM" } else { "EACCES" },
        ),
        libc::EEXIST => ("a set of that name already exists with other settings".into(), "EEXIST"),
        libc::EBUSY => ("set is busy (being listed or referenced); try again".into(), "EBUSY"),
        libc::ENOMEM => ("the kernel is out of memory".into(), "ENOMEM"),
        libc::EMSGSIZE => ("the request or reply is too large".into(), "EMSGSIZE"),
        libc::EINVAL => {
            ("invalid request, or the kernel lacks ipset support (CONFIG_IP_SET)".into(), "EINVAL")
        }
        libc::EOPNOTSUPP => ("the kernel does not support this ipset command".into(), "EOPNOTSUPP"),
        ERR_PROTOCOL => ("the kernel rejected the message as malformed".into(), "IPSET_ERR_PROTOCOL"),
        ERR_FIND_TYPE => (
            "the kernel lacks this set type or revision (needs CONFIG_IP_SET_HASH_IP / _HASH_NET)".into(),
            "IPSET_ERR_FIND_TYPE",
        ),
        ERR_MAX_SETS => ("the kernel's maximum number of sets is reached".into(), "IPSET_ERR_MAX_SETS"),
        ERR_BUSY => (
            "set is in use by a kernel component (an iptables rule); remove the rule first".into(),
            "IPSET_ERR_BUSY",
        ),
        ERR_EXIST_SETNAME2 => (
            match op {
                Op::Rename => "a set with the new name already exists",
                _ => "the second set does not exist",
            }
            .into(),
            "IPSET_ERR_EXIST_SETNAME2",
        ),
        ERR_TYPE_MISMATCH => (
            "the two sets differ in type or family, so they cannot be swapped".into(),
            "IPSET_ERR_TYPE_MISMATCH",
        ),
        ERR_EXIST => (
            match op {
                Op::Add => "entry is already in the set",
                Op::Del => "entry is not in the set",
                Op::Test => "entry is not in the set",
                _ => "set already exists",
            }
            .into(),
            "IPSET_ERR_EXIST",
        ),
        ERR_INVALID_CIDR => (
            "invalid prefix length for this set (hash:net takes /1 to /32 for IPv4, /1 to /128 for IPv6)"
                .into(),
            "IPSET_ERR_INVALID_CIDR",
        ),
        ERR_INVALID_NETMASK => ("invalid netmask".into(), "IPSET_ERR_INVALID_NETMASK"),
        ERR_INVALID_FAMILY => ("invalid protocol family".into(), "IPSET_ERR_INVALID_FAMILY"),
        ERR_TIMEOUT => (
            "set was created without timeout support, so entries cannot carry a timeout".into(),
            "IPSET_ERR_TIMEOUT",
        ),
        ERR_REFERENCED => (
            "set is referenced by an iptables rule, so it cannot be renamed or destroyed".into(),
            "IPSET_ERR_REFERENCED",
        ),
        ERR_IPADDR_IPV4 => {
            ("the set holds IPv4 entries but an IPv6 one was given".into(), "IPSET_ERR_IPADDR_IPV4")
        }
        ERR_IPADDR_IPV6 => {
            ("the set holds IPv6 entries but an IPv4 one was given".into(), "IPSET_ERR_IPADDR_IPV6")
        }
        ERR_COUNTER => ("set was created without counter support".into(), "IPSET_ERR_COUNTER"),
        ERR_COMMENT => ("set was created without comment support".into(), "IPSET_ERR_COMMENT"),
        ERR_INVALID_MARKMASK => ("invalid markmask".into(), "IPSET_ERR_INVALID_MARKMASK"),
        ERR_SKBINFO => ("set was created without skbinfo support".into(), "IPSET_ERR_SKBINFO"),
        ERR_BITMASK_NETMASK_EXCL => {
            ("bitmask and netmask exclude each other".into(), "IPSET_ERR_BITMASK_NETMASK_EXCL")
        }
        ERR_HASH_FULL => (
            "set is full (its maxelem is reached); create it with a larger maxelem".into(),
            "IPSET_ERR_HASH_FULL",
        ),
        ERR_HASH_ELEM => ("entry is not valid for this set (a zero address?)".into(), "IPSET_ERR_HASH_ELEM"),
        ERR_INVALID_PROTO => ("invalid protocol".into(), "IPSET_ERR_INVALID_PROTO"),
        ERR_MISSING_PROTO => ("protocol missing".into(), "IPSET_ERR_MISSING_PROTO"),
        ERR_HASH_RANGE_UNSUPPORTED => (
            "this set type takes single addresses, not networks (use a hash:net set)".into(),
            "IPSET_ERR_HASH_RANGE_UNSUPPORTED",
        ),
        ERR_HASH_RANGE => ("invalid address range".into(), "IPSET_ERR_HASH_RANGE"),
        other => {
            let os = io::Error::from_raw_os_error(other);
            return format!("kernel error {other}: {os}");
        }
    };
    format!("{meaning} ({name})")
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self {
            Op::Open => "open",
            Op::Protocol => "protocol",
            Op::Create => "create",
            Op::Header => "header",
            Op::Destroy => "destroy",
            Op::Flush => "flush",
            Op::Rename => "rename",
            Op::Swap => "swap",
            Op::List => "list",
            Op::ListNames => "list names",
            Op::Add => "add",
            Op::Del => "del",
            Op::Test => "test",
        };
        f.write_str(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_operation_set_entry_and_meaning() {
        let err = IpsetError::new(
            Op::Add,
            "warden-sshd-v4",
            ErrorKind::Kernel { op: Op::Add, errno: libc::ENOENT },
        )
        .with_entry("203.0.113.7/32".parse().unwrap());
        assert_eq!(
            err.to_string(),
            "ipset: cannot add 203.0.113.7/32 to set warden-sshd-v4: set does not exist (ENOENT)"
        );
        assert!(err.is_missing_set());
        let perm = IpsetError::new(Op::Create, "s", ErrorKind::Kernel { op: Op::Create, errno: libc::EPERM });
        assert!(perm.to_string().contains("needs CAP_NET_ADMIN"), "{perm}");
        assert!(perm.is_permission_denied());
        let swap =
            IpsetError::new(Op::Swap, "a", ErrorKind::Kernel { op: Op::Swap, errno: ERR_EXIST_SETNAME2 })
                .with_other("b");
        assert_eq!(
            swap.to_string(),
            "ipset: cannot swap set a with b: the second set does not exist (IPSET_ERR_EXIST_SETNAME2)"
        );
    }

    #[test]
    fn the_same_code_reads_differently_per_operation() {
        assert!(kernel_message(Op::Add, ERR_EXIST).starts_with("entry is already in the set"));
        assert!(kernel_message(Op::Del, ERR_EXIST).starts_with("entry is not in the set"));
        assert!(kernel_message(Op::Rename, ERR_EXIST_SETNAME2).starts_with("a set with the new name"));
        assert!(kernel_message(Op::Add, ERR_TIMEOUT).contains("without timeout support"));
        assert!(kernel_message(Op::Add, ERR_HASH_FULL).contains("maxelem"));
    }

    #[test]
    fn unknown_codes_fall_back_to_the_os_description() {
        let msg = kernel_message(Op::List, libc::ENOSPC);
        assert!(msg.starts_with(&format!("kernel error {}: ", libc::ENOSPC)), "{msg}");
        assert!(msg.contains("space"), "{msg}");
    }
}
