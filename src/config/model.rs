//! The validated configuration: what the daemon runs with once every field
//! has been checked, defaults have been applied and strings have become
//! typed values from [`crate::core`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use crate::core::{Action, BanPrefix, BanTime, IncrementPolicy, PortRange, Protocol, Target};

/// Where the daemon keeps its state, where it listens, where it finds
/// filters, and its jails.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The redb database lives here (default `/var/lib/warden`).
    pub state_dir: PathBuf,
    /// The control socket for the CLI (default `/run/warden/warden.sock`).
    pub socket: PathBuf,
    /// Extra directories of `<name>.yaml` filters, besides the shipped ones.
    pub filter_dirs: Vec<PathBuf>,
    /// fail2ban's `filter.d`, where `filter: fail2ban:<name>` is read from
    /// (default `/etc/fail2ban/filter.d`).
    pub fail2ban_filter_dir: PathBuf,
    /// Jails by name, every field resolved (jail, then `defaults`, then the
    /// built-in defaults).
    pub jails: BTreeMap<String, JailConfig>,
}

/// One jail: which lines it reads, how it recognises failures, and how it bans.
#[derive(Debug, Clone, PartialEq)]
pub struct JailConfig {
    pub name: String,
    pub filter: FilterRef,
    /// Overrides for the filter's declared params (like `mode: aggressive`).
    pub filter_params: BTreeMap<String, String>,
    pub sources: Vec<SourceSpec>,
    /// Failures within `findtime` that trigger a ban.
    pub maxretry: u32,
    pub findtime: Duration,
    pub bantime: BanTime,
    pub increment: IncrementPolicy,
    /// Addresses and networks never banned; host bits already cleared.
    pub ignoreip: Vec<IpNet>,
    pub ban_prefix: BanPrefix,
    /// Destination ports the ban applies to; empty means every port.
    pub ports: Vec<PortRange>,
    pub protocol: Protocol,
    pub target: Target,
    pub action: Action,
    pub enabled: bool,
    /// Cap on addresses with failures tracked at once; the oldest is evicted.
    pub max_tracked: usize,
}

/// Which filter a jail uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterRef {
    /// A filter known by name: shipped, `<name>.yaml` in a filter dir, or
    /// `fail2ban:<name>` (fail2ban's `<name>.conf` in `fail2ban_filter_dir`).
    Name(String),
    /// A filter file given by path (a value ending in `.yaml`), resolved
    /// against the config file's directory and known to exist.
    File(PathBuf),
}

impl fmt::Display for FilterRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FilterRef::Name(name) => f.write_str(name),
            FilterRef::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Where a jail's log lines come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// Docker container logs: every container labelled into the jail
    /// (`warden.jails=<name>`), plus those named here, label or not.
    Docker { containers: Vec<String> },
    /// Journal entries matching any one group, where a group matches when
    /// every `FIELD: value` in it does (journalctl's `+` between groups).
    /// No groups means the filter's own `journalmatch`.
    Journald { matches: Vec<BTreeMap<String, String>> },
    /// Files matching a glob, followed like `tail -F`.
    File { path: PathBuf, read_from: ReadFrom },
}

/// Where to start reading a file seen for the first time (afterwards the
/// stored cursor decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFrom {
    /// From the beginning, as fail2ban does; old failures fall out of
    /// `findtime` by their timestamps anyway.
    #[default]
    Start,
    /// Only lines written from now on.
    End,
}

impl fmt::Display for SourceSpec {
    /// Compact, for `check-config`: `docker`, `docker(web,api)`,
    /// `journald(CONTAINER_TAG=x | _COMM=y)`, `file(/var/log/auth.log)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceSpec::Docker { containers } if containers.is_empty() => f.write_str("docker"),
            SourceSpec::Docker { containers } => write!(f, "docker({})", containers.join(",")),
            SourceSpec::Journald { matches } if matches.is_empty() => f.write_str("journald"),
            SourceSpec::Journald { matches } => {
                let groups: Vec<String> = matches
                    .iter()
                    .map(|g| g.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
                    .collect();
                write!(f, "journald({})", groups.join(" | "))
            }
            SourceSpec::File { path, read_from: ReadFrom::Start } => write!(f, "file({})", path.display()),
            SourceSpec::File { path, read_from: ReadFrom::End } => {
                write!(f, "file({}, from end)", path.display())
            }
        }
    }
}

/// Built-in defaults, applied where neither a jail nor `defaults` says otherwise.
pub mod builtin {
    use std::time::Duration;

    pub const STATE_DIR: &str = "/var/lib/warden";
    pub const SOCKET: &str = "/run/warden/warden.sock";
    pub const FAIL2BAN_FILTER_DIR: &str = "/etc/fail2ban/filter.d";
    pub const MAXRETRY: u32 = 5;
    pub const FINDTIME: Duration = Duration::from_secs(600);
    pub const BANTIME: Duration = Duration::from_secs(600);
    pub const IGNOREIP: &[&str] = &["127.0.0.0/8", "::1"];
    pub const MAX_TRACKED: usize = 100_000;
}
