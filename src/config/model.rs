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
    /// Log every ban, set, rule and conntrack change instead of making it.
    pub dry_run: bool,
    pub firewall: FirewallSettings,
    pub docker: DockerSettings,
    /// Where the journald source finds the host's journal.
    pub journal_dirs: Vec<PathBuf>,
    /// `defaults` resolved into a jail with no name, no filter and a
    /// Docker source: what a jail defined by container labels starts from.
    pub jail_template: JailConfig,
    /// The `cluster:` section: bans shared with other hosts through Redis.
    pub cluster: Option<super::ClusterSettings>,
}

/// The `firewall:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirewallSettings {
    /// Which iptables to drive; `auto` picks the one holding Docker's chains.
    pub backend: BackendChoice,
    /// The broadest prefix any ban may cover (`0.0.0.0/0` is always refused).
    pub ban_floor: BanPrefix,
    /// How often warden checks that its chains and jumps are in place.
    pub check_interval: Duration,
}

impl Default for FirewallSettings {
    fn default() -> Self {
        FirewallSettings {
            backend: BackendChoice::Auto,
            ban_floor: BanPrefix { v4: 16, v6: 32 },
            check_interval: builtin::CHECK_INTERVAL,
        }
    }
}

/// `firewall.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Nft,
    Legacy,
}

/// The `docker:` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerSettings {
    /// The Docker API address; `None` means `DOCKER_HOST`, else the local socket.
    pub host: Option<String>,
    /// Longest log line kept whole; longer lines are cut, with a warning.
    pub line_max: usize,
    /// Whether json-file logs are read from disk when warden can open them.
    pub read_files: ReadFiles,
}

impl Default for DockerSettings {
    fn default() -> Self {
        DockerSettings { host: None, line_max: builtin::LINE_MAX, read_files: ReadFiles::Auto }
    }
}

/// `docker.read_files`: how the logs of a container with the `json-file`
/// driver are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadFiles {
    /// From its log file (the path Docker reports as `LogPath`) when warden
    /// can open it, which takes far less of dockerd's CPU; through the
    /// Docker API otherwise.
    #[default]
    Auto,
    /// Always through the Docker API.
    Never,
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
    /// Delete a banned address's conntrack entries, so no open connection
    /// outlives the ban.
    pub flush_conntrack: bool,
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
    /// `read_from` applies to a container seen for the first time
    /// (default: only lines logged from now on).
    Docker { containers: Vec<String>, read_from: ReadFrom },
    /// Journal entries matching any one group, where a group matches when
    /// every `FIELD: value` in it does (journalctl's `+` between groups).
    /// No groups means the filter's own `journalmatch`.
    /// `read_from` applies when there is no stored cursor yet (default: end).
    Journald { matches: Vec<BTreeMap<String, String>>, read_from: ReadFrom },
    /// Files matching a glob, followed like `tail -F`.
    File { path: PathBuf, read_from: ReadFrom },
}

/// Where to start reading a source seen for the first time (afterwards the
/// stored cursor decides). The default is per source kind: files start at
/// the beginning, as in fail2ban; Docker and journald at the end.
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
            SourceSpec::Docker { containers, .. } if containers.is_empty() => f.write_str("docker"),
            SourceSpec::Docker { containers, .. } => write!(f, "docker({})", containers.join(",")),
            SourceSpec::Journald { matches, .. } if matches.is_empty() => f.write_str("journald"),
            SourceSpec::Journald { matches, .. } => {
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
    pub const CHECK_INTERVAL: Duration = Duration::from_secs(30);
    pub const LINE_MAX: usize = 64 * 1024;
    pub const JOURNAL_DIRS: &[&str] = &["/var/log/journal", "/run/log/journal"];
}
