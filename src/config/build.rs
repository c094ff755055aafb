//! The second pass: walk the YAML tree, check every field, apply defaults
//! and build the [`Config`]. Errors are collected in a [`Checker`]; a
//! [`Config`] is only produced when there are none.
//!
//! Inheritance is per field: a jail takes each setting it does not set from
//! `defaults`, and `defaults` from the built-in values. Nested settings
//! (`bantime_increment`, `ban_prefix`) inherit per sub-field too. Lists
//! (`ignoreip`, `ports`) are replaced, not merged, as in fail2ban.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use super::FilterCatalog;
use super::fields::{Checker, Entry, Keys, check_glob, join};
use super::model::{
    BackendChoice, Config, DockerSettings, FilterRef, FirewallSettings, JailConfig, ReadFiles, ReadFrom,
    SourceSpec, builtin,
};
use super::yaml::{Node, Pos, Value, quote};
use crate::core::{
    Action, BanPrefix, BanTime, IncrementPolicy, PortRange, Protocol, Target, parse_ip_or_net,
};

const TOP_KEYS: &[&str] = &[
    "state_dir",
    "socket",
    "filter_dirs",
    "fail2ban_filter_dir",
    "defaults",
    "jails",
    "dry_run",
    "firewall",
    "docker",
    "journal_dirs",
    "cluster",
];
const FIREWALL_KEYS: &[&str] = &["backend", "ban_floor", "check_interval"];
const DOCKER_SETTINGS_KEYS: &[&str] = &["host", "line_max", "read_files"];
const READ_FILES: &[(&str, ReadFiles)] = &[("auto", ReadFiles::Auto), ("never", ReadFiles::Never)];
const BACKENDS: &[(&str, BackendChoice)] =
    &[("auto", BackendChoice::Auto), ("nft", BackendChoice::Nft), ("legacy", BackendChoice::Legacy)];
const SETTING_KEYS: &[&str] = &[
    "maxretry",
    "findtime",
    "bantime",
    "bantime_increment",
    "ignoreip",
    "ban_prefix",
    "ports",
    "protocol",
    "target",
    "action",
    "enabled",
    "max_tracked",
    "flush_conntrack",
];
/// Keys that only make sense in a jail, never in `defaults`.
const JAIL_ONLY_KEYS: &[&str] = &["filter", "filter_params", "sources"];
const INCREMENT_KEYS: &[&str] = &["enabled", "factor", "multipliers", "maxtime", "rndtime"];
const BAN_PREFIX_KEYS: &[&str] = &["v4", "v6"];
const SOURCE_KINDS: &[&str] = &["docker", "journald", "file"];
const DOCKER_KEYS: &[&str] = &["containers", "read_from"];
const JOURNALD_KEYS: &[&str] = &["match", "read_from"];
const FILE_KEYS: &[&str] = &["path", "read_from"];

pub(crate) const TARGETS: &[(&str, Target)] =
    &[("docker", Target::Docker), ("host", Target::Host), ("both", Target::Both)];
pub(crate) const ACTIONS: &[(&str, Action)] = &[("drop", Action::Drop), ("reject", Action::Reject)];
pub(crate) const PROTOCOLS: &[(&str, Protocol)] =
    &[("tcp", Protocol::Tcp), ("udp", Protocol::Udp), ("all", Protocol::All)];
pub(crate) const READ_FROM: &[(&str, ReadFrom)] = &[("start", ReadFrom::Start), ("end", ReadFrom::End)];

/// Jail names appear in label keys (`warden.jail.<name>.bantime`), so no
/// dots; and in ipset names, which the kernel caps at 31 bytes.
const MAX_JAIL_NAME: usize = 24;
/// Smallest subnet bans accepted: anything wider is almost surely a typo
/// that would lock out a sizeable part of the internet.
const MIN_PREFIX_V4: u64 = 8;
const MIN_PREFIX_V6: u64 = 16;

/// A value together with where it was set, for checks across fields that
/// may come from different places (a jail's ports, `defaults`' protocol).
#[derive(Clone)]
struct Located<T> {
    value: T,
    pos: Pos,
    path: String,
}

/// Increment settings as written; each unset field is inherited.
#[derive(Clone, Default)]
struct IncrementSettings {
    enabled: Option<bool>,
    factor: Option<f64>,
    multipliers: Option<Vec<u32>>,
    maxtime: Option<Duration>,
    rndtime: Option<Duration>,
}

/// The settings a jail shares with `defaults`, as written; `None` = inherit.
#[derive(Clone, Default)]
struct Settings {
    maxretry: Option<u32>,
    findtime: Option<Duration>,
    bantime: Option<BanTime>,
    increment: IncrementSettings,
    ignoreip: Option<Vec<IpNet>>,
    prefix_v4: Option<u8>,
    prefix_v6: Option<u8>,
    ports: Option<Located<Vec<PortRange>>>,
    protocol: Option<Located<Protocol>>,
    target: Option<Target>,
    action: Option<Action>,
    enabled: Option<bool>,
    max_tracked: Option<usize>,
    flush_conntrack: Option<bool>,
}

impl Settings {
    /// `self` where set, else `fallback`.
    fn or(self, fallback: &Settings) -> Settings {
        let inc = self.increment;
        let fb = &fallback.increment;
        Settings {
            maxretry: self.maxretry.or(fallback.maxretry),
            findtime: self.findtime.or(fallback.findtime),
            bantime: self.bantime.or(fallback.bantime),
            increment: IncrementSettings {
                enabled: inc.enabled.or(fb.enabled),
                factor: inc.factor.or(fb.factor),
                multipliers: inc.multipliers.or_else(|| fb.multipliers.clone()),
                maxtime: inc.maxtime.or(fb.maxtime),
                rndtime: inc.rndtime.or(fb.rndtime),
            },
            ignoreip: self.ignoreip.or_else(|| fallback.ignoreip.clone()),
            prefix_v4: self.prefix_v4.or(fallback.prefix_v4),
            prefix_v6: self.prefix_v6.or(fallback.prefix_v6),
            ports: self.ports.or_else(|| fallback.ports.clone()),
            protocol: self.protocol.or_else(|| fallback.protocol.clone()),
            target: self.target.or(fallback.target),
            action: self.action.or(fallback.action),
            enabled: self.enabled.or(fallback.enabled),
            max_tracked: self.max_tracked.or(fallback.max_tracked),
            flush_conntrack: self.flush_conntrack.or(fallback.flush_conntrack),
        }
    }
}

/// Checks the whole document and builds the configuration.
pub(crate) fn build(
    root: &Node,
    origin: &Path,
    filters: &dyn FilterCatalog,
    cx: &mut Checker,
) -> Option<Config> {
    let mut state_dir = PathBuf::from(builtin::STATE_DIR);
    let mut socket = PathBuf::from(builtin::SOCKET);
    let mut filter_dirs = Vec::new();
    let mut fail2ban_filter_dir = PathBuf::from(builtin::FAIL2BAN_FILTER_DIR);
    let mut defaults = Settings::default();
    let mut jails_node = None;
    let mut dry_run = false;
    let mut firewall = FirewallSettings::default();
    let mut docker = DockerSettings::default();
    let mut journal_dirs: Vec<PathBuf> = builtin::JOURNAL_DIRS.iter().map(PathBuf::from).collect();
    let mut cluster = None;

    if !matches!(root.value, Value::Map(_) | Value::Null) {
        let found = root.value.describe();
        cx.error(
            root.pos,
            "",
            format!("expected a mapping with keys {}, found {found}", TOP_KEYS.join(", ")),
        );
        return None;
    }
    for entry in cx.entries(root, "", Keys::Known(TOP_KEYS)) {
        match entry.key.as_str() {
            "state_dir" => {
                if let Some(p) = cx.absolute_path(entry.value, &entry.path, "the state directory") {
                    state_dir = p;
                }
            }
            "socket" => {
                if let Some(p) = cx.absolute_path(entry.value, &entry.path, "the control socket") {
                    socket = p;
                }
            }
            "filter_dirs" => filter_dirs = filter_dir_list(cx, &entry),
            "fail2ban_filter_dir" => {
                if let Some(dir) = cx.absolute_path(entry.value, &entry.path, "fail2ban's filter.d directory")
                {
                    if !dir.is_dir() {
                        let shown = quote(&dir.to_string_lossy());
                        cx.error(entry.value.pos, &entry.path, format!("directory {shown} does not exist"));
                    }
                    fail2ban_filter_dir = dir;
                }
            }
            "defaults" => defaults = settings(cx, entry.value, &entry.path, true),
            "jails" => jails_node = Some(entry),
            "dry_run" => dry_run = cx.boolean(entry.value, &entry.path).unwrap_or(false),
            "firewall" => firewall = firewall_settings(cx, &entry),
            "docker" => docker = docker_settings(cx, &entry),
            "cluster" => cluster = super::cluster::cluster_settings(cx, &entry),
            "journal_dirs" => {
                let items = cx.list_items(entry.value, &entry.path, "directories");
                journal_dirs =
                    items.iter().filter_map(|(n, p)| cx.absolute_path(n, p, "a journal directory")).collect();
            }
            _ => {}
        }
    }

    let mut lookup = FilterLookup {
        catalog: filters,
        dirs: &filter_dirs,
        fail2ban_dir: &fail2ban_filter_dir,
        base: origin.parent(),
        names: None,
    };
    let mut jails = BTreeMap::new();
    if let Some(entry) = jails_node {
        for jail_entry in cx.entries(entry.value, &entry.path, Keys::Any) {
            if let Some(jail) = jail(cx, &jail_entry, &defaults, &mut lookup) {
                jails.insert(jail.name.clone(), jail);
            }
        }
    }
    // What a jail defined by container labels starts from.
    let jail_template = resolve(
        String::new(),
        FilterRef::Name(String::new()),
        BTreeMap::new(),
        vec![SourceSpec::Docker { containers: Vec::new(), read_from: ReadFrom::End }],
        &Settings::default().or(&defaults),
    );
    cx.errors.is_empty().then_some(Config {
        jail_template,
        state_dir,
        socket,
        filter_dirs,
        fail2ban_filter_dir,
        jails,
        dry_run,
        firewall,
        docker,
        journal_dirs,
        cluster,
    })
}

fn firewall_settings(cx: &mut Checker, entry: &Entry<'_>) -> FirewallSettings {
    let mut fw = FirewallSettings::default();
    for e in cx.entries(entry.value, &entry.path, Keys::Known(FIREWALL_KEYS)) {
        match e.key.as_str() {
            "backend" => fw.backend = cx.choice(e.value, &e.path, BACKENDS).unwrap_or_default(),
            "check_interval" => {
                fw.check_interval = cx.duration(e.value, &e.path, false).unwrap_or(fw.check_interval)
            }
            _ => {
                for f in cx.entries(e.value, &e.path, Keys::Known(BAN_PREFIX_KEYS)) {
                    if f.key == "v4" {
                        if let Some(n) = cx.integer(f.value, &f.path, 1, 32) {
                            fw.ban_floor.v4 = n as u8;
                        }
                    } else if let Some(n) = cx.integer(f.value, &f.path, 1, 128) {
                        fw.ban_floor.v6 = n as u8;
                    }
                }
            }
        }
    }
    fw
}

fn docker_settings(cx: &mut Checker, entry: &Entry<'_>) -> DockerSettings {
    let mut docker = DockerSettings::default();
    for e in cx.entries(entry.value, &entry.path, Keys::Known(DOCKER_SETTINGS_KEYS)) {
        match e.key.as_str() {
            "host" => {
                docker.host =
                    cx.string(e.value, &e.path, "a Docker API address (like unix:///var/run/docker.sock)")
            }
            "read_files" => docker.read_files = cx.choice(e.value, &e.path, READ_FILES).unwrap_or_default(),
            _ => {
                if let Some(n) = cx.integer(e.value, &e.path, 1024, 16 * 1024 * 1024) {
                    docker.line_max = n as usize;
                }
            }
        }
    }
    docker
}

fn filter_dir_list(cx: &mut Checker, entry: &Entry<'_>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (node, path) in cx.list_items(entry.value, &entry.path, "directories") {
        let Some(dir) = cx.absolute_path(&node, &path, "a directory of filters") else { continue };
        if dir.is_dir() {
            dirs.push(dir);
        } else {
            cx.error(
                node.pos,
                &path,
                format!("filter directory {} does not exist", quote(&dir.to_string_lossy())),
            );
        }
    }
    dirs
}

/// Reads the shared settings of `defaults` (`in_defaults`) or of a jail;
/// jail-only keys are the caller's.
fn settings(cx: &mut Checker, node: &Node, path: &str, in_defaults: bool) -> Settings {
    let mut s = Settings::default();
    let jail_keys: Vec<&str> = JAIL_ONLY_KEYS.iter().chain(SETTING_KEYS).copied().collect();
    let keys = if in_defaults {
        Keys::KnownElsewhere {
            known: SETTING_KEYS,
            elsewhere: JAIL_ONLY_KEYS,
            hint: "is set in each jail, not in defaults",
        }
    } else {
        Keys::Known(&jail_keys)
    };
    for entry in cx.entries(node, path, keys) {
        let (v, p) = (entry.value, entry.path.as_str());
        match entry.key.as_str() {
            "maxretry" => s.maxretry = cx.integer(v, p, 1, u64::from(u32::MAX)).map(|n| n as u32),
            "findtime" => s.findtime = cx.duration(v, p, false),
            "bantime" => s.bantime = cx.bantime(v, p),
            "bantime_increment" => s.increment = increment(cx, v, p),
            "ignoreip" => {
                let items = cx.list_items(v, p, "addresses");
                let nets: Vec<Option<IpNet>> = items.iter().map(|(n, ip)| cx.ip_or_net(n, ip)).collect();
                s.ignoreip = nets.into_iter().collect();
            }
            "ban_prefix" => {
                for e in cx.entries(v, p, Keys::Known(BAN_PREFIX_KEYS)) {
                    if e.key == "v4" {
                        s.prefix_v4 = cx.integer(e.value, &e.path, MIN_PREFIX_V4, 32).map(|n| n as u8);
                    } else {
                        s.prefix_v6 = cx.integer(e.value, &e.path, MIN_PREFIX_V6, 128).map(|n| n as u8);
                    }
                }
            }
            "ports" => {
                let items = cx.list_items(v, p, "ports");
                let ranges: Vec<Option<PortRange>> =
                    items.iter().map(|(n, ip)| cx.port_range(n, ip)).collect();
                s.ports = ranges.into_iter().collect::<Option<Vec<_>>>().map(|value| Located {
                    value,
                    pos: v.pos,
                    path: p.to_string(),
                });
            }
            "protocol" => {
                s.protocol =
                    cx.choice(v, p, PROTOCOLS).map(|value| Located { value, pos: v.pos, path: p.to_string() })
            }
            "target" => s.target = cx.choice(v, p, TARGETS),
            "action" => s.action = cx.choice(v, p, ACTIONS),
            "enabled" => s.enabled = cx.boolean(v, p),
            "max_tracked" => s.max_tracked = cx.integer(v, p, 1, u64::from(u32::MAX)).map(|n| n as usize),
            "flush_conntrack" => s.flush_conntrack = cx.boolean(v, p),
            // Jail-only keys, read by `jail`.
            _ => {}
        }
    }
    s
}

fn increment(cx: &mut Checker, node: &Node, path: &str) -> IncrementSettings {
    let mut inc = IncrementSettings::default();
    for e in cx.entries(node, path, Keys::Known(INCREMENT_KEYS)) {
        match e.key.as_str() {
            "enabled" => inc.enabled = cx.boolean(e.value, &e.path),
            "factor" => inc.factor = cx.positive_number(e.value, &e.path),
            "multipliers" => {
                let items = cx.list_items(e.value, &e.path, "multipliers");
                let values: Vec<Option<u32>> = items
                    .iter()
                    .map(|(n, p)| cx.integer(n, p, 1, u64::from(u32::MAX)).map(|m| m as u32))
                    .collect();
                inc.multipliers = values.into_iter().collect();
            }
            "maxtime" => inc.maxtime = cx.duration(e.value, &e.path, false),
            "rndtime" => inc.rndtime = cx.duration(e.value, &e.path, true),
            _ => {}
        }
    }
    inc
}

/// Resolves filter names: the caller's catalog, then `<name>.yaml` in the
/// configured filter directories.
struct FilterLookup<'a> {
    catalog: &'a dyn FilterCatalog,
    dirs: &'a [PathBuf],
    /// fail2ban's `filter.d`, for `fail2ban:<name>`.
    fail2ban_dir: &'a Path,
    /// The config file's directory, for relative filter paths.
    base: Option<&'a Path>,
    /// Every known name, gathered on the first miss (for the message).
    names: Option<Vec<String>>,
}

impl FilterLookup<'_> {
    fn resolve(&mut self, cx: &mut Checker, node: &Node, path: &str) -> Option<FilterRef> {
        let value = cx.string(node, path, "a filter name (like sshd) or a path to a .yaml filter file")?;
        if value.ends_with(".yaml") {
            let file = match self.base {
                Some(base) => base.join(&value),
                None => PathBuf::from(&value),
            };
            if file.is_file() {
                return Some(FilterRef::File(file));
            }
            cx.error(
                node.pos,
                path,
                format!("filter file {} does not exist (a relative path is relative to the config file's directory)", quote(&file.to_string_lossy())),
            );
            return None;
        }
        if let Some(name) = value.strip_prefix("fail2ban:") {
            return self.resolve_fail2ban(cx, node, path, &value, name);
        }
        if value.contains('/') || value.contains('\0') {
            cx.error(
                node.pos,
                path,
                format!(
                    "invalid filter {}: expected a filter name (like sshd) or a path ending in .yaml",
                    quote(&value)
                ),
            );
            return None;
        }
        if self.catalog.contains(&value)
            || self.dirs.iter().any(|d| d.join(format!("{value}.yaml")).is_file())
        {
            return Some(FilterRef::Name(value));
        }
        let names = self.names.get_or_insert_with(|| {
            let mut names: BTreeSet<String> = self.catalog.names().into_iter().collect();
            for dir in self.dirs {
                let Ok(read) = std::fs::read_dir(dir) else { continue };
                for file in read.flatten() {
                    let file_name = file.file_name();
                    if let Some(stem) = file_name.to_str().and_then(|n| n.strip_suffix(".yaml")) {
                        names.insert(stem.to_string());
                    }
                }
            }
            names.into_iter().collect()
        });
        let mut message = format!("unknown filter {}", quote(&value));
        if let Some(best) = super::error::closest(&value, names.iter().map(String::as_str)) {
            message.push_str(&format!(" (did you mean `{best}`?)"));
        }
        if names.is_empty() {
            message.push_str("; no named filters are available (check filter_dirs); a path to a .yaml filter file also works");
        } else {
            message.push_str(&format!("; available: {}, or a path to a .yaml filter file", names.join(", ")));
        }
        cx.error(node.pos, path, message);
        None
    }
}

impl FilterLookup<'_> {
    /// `fail2ban:<name>`: fail2ban's `<name>.conf` (or `.local`) must be in
    /// `fail2ban_filter_dir`, unless the caller's catalog knows the name.
    fn resolve_fail2ban(
        &mut self,
        cx: &mut Checker,
        node: &Node,
        path: &str,
        value: &str,
        name: &str,
    ) -> Option<FilterRef> {
        let dir = self.fail2ban_dir;
        let valid = !name.is_empty()
            && !name.starts_with('.')
            && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
        if !valid {
            cx.error(
                node.pos,
                path,
                format!(
                    "invalid fail2ban filter {}: expected fail2ban:<name>, like fail2ban:sshd",
                    quote(value)
                ),
            );
            return None;
        }
        let found = ["conf", "local"].iter().any(|ext| dir.join(format!("{name}.{ext}")).is_file());
        if found || self.catalog.contains(value) {
            return Some(FilterRef::Name(value.to_string()));
        }
        let shown = quote(&dir.to_string_lossy());
        let message = if dir.is_dir() {
            format!(
                "unknown fail2ban filter {}: no {name}.conf in {shown} (fail2ban_filter_dir)",
                quote(value)
            )
        } else {
            format!(
                "unknown fail2ban filter {}: fail2ban_filter_dir {shown} does not exist (mount fail2ban's filter.d there, or set fail2ban_filter_dir)",
                quote(value)
            )
        };
        cx.error(node.pos, path, message);
        None
    }
}

fn jail(
    cx: &mut Checker,
    entry: &Entry<'_>,
    defaults: &Settings,
    filters: &mut FilterLookup<'_>,
) -> Option<JailConfig> {
    let name = entry.key.clone();
    let name_ok = check_jail_name(cx, entry);
    let path = entry.path.as_str();
    let errors_before = cx.errors.len();

    let own = settings(cx, entry.value, path, false);
    let mut filter = None;
    let mut filter_params = BTreeMap::new();
    let mut sources = None;
    // `settings` already reported unknown and duplicate keys; read the
    // jail-only keys quietly from the same mapping.
    if let Value::Map(items) = &entry.value.value {
        let mut seen = BTreeSet::new();
        for (key, value) in items {
            let Value::Str(key) = &key.value else { continue };
            if !JAIL_ONLY_KEYS.contains(&key.as_str()) || !seen.insert(key.clone()) {
                continue;
            }
            let key_path = join(path, key);
            match key.as_str() {
                "filter" => filter = filters.resolve(cx, value, &key_path),
                "filter_params" => filter_params = params(cx, value, &key_path),
                _ => sources = Some(source_list(cx, value, &key_path)),
            }
        }
    } else if !matches!(entry.value.value, Value::Null) {
        // `settings` reported the wrong type already.
        return None;
    }
    let missing = |cx: &mut Checker, key: &str, what: &str| {
        cx.error(entry.key_pos, path, format!("missing key `{key}`: {what}"));
    };
    if !has_key(entry.value, "filter") {
        missing(cx, "filter", "every jail needs the name of the filter that recognises failures (like sshd)");
    }
    if !has_key(entry.value, "sources") {
        missing(cx, "sources", "every jail needs at least one source: docker, journald or file");
    }

    let s = own.or(defaults);
    let protocol = s.protocol.as_ref().map_or(Protocol::Tcp, |p| p.value);
    if protocol == Protocol::All
        && let Some(ports) = s.ports.as_ref().filter(|p| !p.value.is_empty())
    {
        let proto = s.protocol.as_ref().map_or(String::new(), |p| format!(" (set at {})", p.path));
        cx.error(
            ports.pos,
            &ports.path,
            format!(
                "ports need protocol tcp or udp, but jail `{name}` has protocol `all`{proto}; remove the ports to ban every port, or set protocol: tcp"
            ),
        );
    }
    if cx.errors.len() > errors_before || !name_ok {
        return None;
    }
    Some(resolve(name, filter?, filter_params, sources?, &s))
}

/// A jail with every setting `s` leaves open filled from the built-in
/// defaults.
fn resolve(
    name: String,
    filter: FilterRef,
    filter_params: BTreeMap<String, String>,
    sources: Vec<SourceSpec>,
    s: &Settings,
) -> JailConfig {
    let increment = resolve_increment(&s.increment);
    let protocol = s.protocol.as_ref().map_or(Protocol::Tcp, |p| p.value);
    let ports = s.ports.as_ref().map(|p| p.value.clone()).unwrap_or_default();
    let ignoreip = s.ignoreip.clone().unwrap_or_else(|| {
        // The built-in list is constant and valid (checked by a test).
        builtin::IGNOREIP.iter().filter_map(|ip| parse_ip_or_net(ip).ok()).collect()
    });
    let default_prefix = BanPrefix::default();
    JailConfig {
        name,
        filter,
        filter_params,
        sources,
        maxretry: s.maxretry.unwrap_or(builtin::MAXRETRY),
        findtime: s.findtime.unwrap_or(builtin::FINDTIME),
        bantime: s.bantime.unwrap_or(BanTime::Finite(builtin::BANTIME)),
        increment,
        ignoreip,
        ban_prefix: BanPrefix {
            v4: s.prefix_v4.unwrap_or(default_prefix.v4),
            v6: s.prefix_v6.unwrap_or(default_prefix.v6),
        },
        ports,
        protocol,
        target: s.target.unwrap_or_default(),
        action: s.action.unwrap_or_default(),
        enabled: s.enabled.unwrap_or(true),
        max_tracked: s.max_tracked.unwrap_or(builtin::MAX_TRACKED),
        flush_conntrack: s.flush_conntrack.unwrap_or(true),
    }
}

/// A jail's ports need a protocol: `all` with ports is refused (the same
/// rule as the config file's, for jails built from labels).
pub(crate) fn check_ports_protocol(jail: &JailConfig) -> Result<(), String> {
    if jail.protocol == Protocol::All && !jail.ports.is_empty() {
        return Err(format!(
            "ports need protocol tcp or udp, but jail `{}` has protocol `all`; set protocol=tcp or drop the ports",
            jail.name
        ));
    }
    Ok(())
}

fn resolve_increment(inc: &IncrementSettings) -> IncrementPolicy {
    let base = IncrementPolicy::default();
    IncrementPolicy {
        enabled: inc.enabled.unwrap_or(base.enabled),
        factor: inc.factor.unwrap_or(base.factor),
        multipliers: inc.multipliers.clone().unwrap_or(base.multipliers),
        maxtime: inc.maxtime.or(base.maxtime),
        rndtime: inc.rndtime.or(base.rndtime),
    }
}

fn check_jail_name(cx: &mut Checker, entry: &Entry<'_>) -> bool {
    let name = &entry.key;
    let chars_ok = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let starts_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    if chars_ok && starts_ok && name.len() <= MAX_JAIL_NAME {
        return true;
    }
    cx.error(
        entry.key_pos,
        &entry.path,
        format!(
            "invalid jail name {}: use 1 to {MAX_JAIL_NAME} letters, digits, `-` or `_`, starting with a letter or digit (names appear in container labels and ipset names)",
            quote(name)
        ),
    );
    false
}

fn params(cx: &mut Checker, node: &Node, path: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in cx.entries(node, path, Keys::Any) {
        let name_ok = e.key.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && e.key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !name_ok {
            cx.error(
                e.key_pos,
                &e.path,
                format!(
                    "invalid filter param name {}: use letters, digits, `_` or `-`, starting with a letter",
                    quote(&e.key)
                ),
            );
            continue;
        }
        if let Some(value) = cx.scalar(e.value, &e.path, "a value (text or a number)") {
            out.insert(e.key, value);
        }
    }
    out
}

fn source_list(cx: &mut Checker, node: &Node, path: &str) -> Vec<SourceSpec> {
    let items = cx.seq(node, path, "sources (like [{docker: {}}])");
    if items.is_empty() && matches!(node.value, Value::Seq(_) | Value::Null) {
        cx.error(node.pos, path, "a jail needs at least one source: docker, journald or file");
    }
    items.into_iter().filter_map(|(item, item_path)| source(cx, item, &item_path)).collect()
}

fn source(cx: &mut Checker, node: &Node, path: &str) -> Option<SourceSpec> {
    if let Value::Str(kind) = &node.value
        && SOURCE_KINDS.contains(&kind.as_str())
    {
        cx.error(
            node.pos,
            path,
            format!("a source is a mapping: write {{{kind}: {{}}}} (or `- {kind}:` in block style)"),
        );
        return None;
    }
    let entries = cx.entries(node, path, Keys::Known(SOURCE_KINDS));
    let Value::Map(items) = &node.value else {
        if matches!(node.value, Value::Null) {
            cx.error(node.pos, path, "expected a source: one of docker, journald, file (like {docker: {}})");
        }
        return None;
    };
    if items.is_empty() {
        cx.error(node.pos, path, "expected a source: one of docker, journald, file (like {docker: {}})");
        return None;
    }
    if items.len() > 1 {
        cx.error(
            node.pos,
            path,
            "a source has exactly one kind (docker, journald or file); write each source as its own list item",
        );
        return None;
    }
    let entry = entries.into_iter().next()?;
    match entry.key.as_str() {
        "docker" => docker(cx, &entry),
        "journald" => journald(cx, &entry),
        _ => file(cx, &entry),
    }
}

fn docker(cx: &mut Checker, entry: &Entry<'_>) -> Option<SourceSpec> {
    let mut containers = Vec::new();
    // Docker keeps a container's whole log: reading it all on first sight
    // would ban for attacks long over, so new containers start at "now".
    let mut read_from = ReadFrom::End;
    let mut ok = true;
    for e in cx.entries(entry.value, &entry.path, Keys::Known(DOCKER_KEYS)) {
        if e.key == "read_from" {
            match cx.choice(e.value, &e.path, READ_FROM) {
                Some(r) => read_from = r,
                None => ok = false,
            }
            continue;
        }
        for (node, p) in cx.seq(e.value, &e.path, "container names") {
            let Some(name) = cx.string(node, &p, "a container name") else {
                ok = false;
                continue;
            };
            // Docker's own rule for names, with the API's optional leading `/`.
            let bare = name.strip_prefix('/').unwrap_or(&name);
            let valid = bare.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
                && bare.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
            if valid {
                containers.push(bare.to_string());
            } else {
                ok = false;
                cx.error(
                    node.pos,
                    &p,
                    format!("invalid container name {}: Docker names are letters, digits, `_`, `.` and `-`, starting with a letter or digit", quote(&name)),
                );
            }
        }
    }
    ok.then_some(SourceSpec::Docker { containers, read_from })
}

fn journald(cx: &mut Checker, entry: &Entry<'_>) -> Option<SourceSpec> {
    let mut matches = Vec::new();
    // The journal holds weeks of history; like Docker, start at "now".
    let mut read_from = ReadFrom::End;
    let mut ok = true;
    for e in cx.entries(entry.value, &entry.path, Keys::Known(JOURNALD_KEYS)) {
        if e.key == "read_from" {
            match cx.choice(e.value, &e.path, READ_FROM) {
                Some(r) => read_from = r,
                None => ok = false,
            }
            continue;
        }
        let groups: Vec<(&Node, String)> = match &e.value.value {
            Value::Seq(_) => cx.seq(e.value, &e.path, "match groups"),
            _ => vec![(e.value, e.path.clone())],
        };
        if groups.is_empty() {
            ok = false;
            cx.error(
                e.value.pos,
                &e.path,
                "expected at least one match group (like {CONTAINER_TAG: mailu-front})",
            );
        }
        for (group, p) in groups {
            match match_group(cx, group, &p) {
                Some(g) => matches.push(g),
                None => ok = false,
            }
        }
    }
    ok.then_some(SourceSpec::Journald { matches, read_from })
}

/// One group of `FIELD: value` pairs that must all match.
fn match_group(cx: &mut Checker, node: &Node, path: &str) -> Option<BTreeMap<String, String>> {
    if !matches!(node.value, Value::Map(_)) {
        cx.error(
            node.pos,
            path,
            format!("expected a mapping of journal fields to values (like {{CONTAINER_TAG: mailu-front}}), found {}", node.value.describe()),
        );
        return None;
    }
    let mut group = BTreeMap::new();
    let mut ok = true;
    let entries = cx.entries(node, path, Keys::Any);
    if entries.is_empty() {
        cx.error(node.pos, path, "a match group needs at least one FIELD: value pair");
        return None;
    }
    for e in entries {
        // journald's rule for field names: upper-case letters, digits and
        // `_`, not starting with a digit, at most 64 characters.
        let field_ok = e.key.len() <= 64
            && e.key.chars().next().is_some_and(|c| !c.is_ascii_digit())
            && e.key.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if !field_ok {
            ok = false;
            let mut message = format!(
                "invalid journal field name {}: fields are upper-case letters, digits and `_` (like CONTAINER_TAG, _SYSTEMD_UNIT, SYSLOG_IDENTIFIER)",
                quote(&e.key)
            );
            let upper = e.key.to_ascii_uppercase();
            if upper != e.key
                && upper.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            {
                message.push_str(&format!("; did you mean `{upper}`?"));
            }
            cx.error(e.key_pos, &e.path, message);
            continue;
        }
        match cx.scalar(e.value, &e.path, "the value to match (like mailu-front)") {
            Some(value) => {
                group.insert(e.key, value);
            }
            None => ok = false,
        }
    }
    ok.then_some(group)
}

fn file(cx: &mut Checker, entry: &Entry<'_>) -> Option<SourceSpec> {
    let mut path = None;
    let mut read_from = ReadFrom::default();
    let mut ok = true;
    let entries = cx.entries(entry.value, &entry.path, Keys::Known(FILE_KEYS));
    for e in &entries {
        if e.key == "path" {
            if let Some(p) =
                cx.absolute_path(e.value, &e.path, "a log file (globs like /var/log/*.log are fine)")
            {
                match check_glob(&p.to_string_lossy()) {
                    Ok(()) => path = Some(p),
                    Err(why) => cx.error(e.value.pos, &e.path, format!("invalid glob: {why}")),
                }
            }
        } else {
            match cx.choice(e.value, &e.path, READ_FROM) {
                Some(r) => read_from = r,
                None => ok = false,
            }
        }
    }
    if !entries.iter().any(|e| e.key == "path") && !has_key(entry.value, "path") {
        cx.error(
            entry.key_pos,
            &entry.path,
            "missing key `path`: the log file to read (like /var/log/auth.log)",
        );
    }
    if !ok {
        return None;
    }
    Some(SourceSpec::File { path: path?, read_from })
}

fn has_key(node: &Node, key: &str) -> bool {
    matches!(&node.value, Value::Map(items) if items.iter().any(|(k, _)| matches!(&k.value, Value::Str(s) if s == key)))
}
