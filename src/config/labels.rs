//! Jails from container labels: `warden.jail.<jail>.<option>=<value>`.
//!
//! A label overrides one option of a configured jail for that container
//! alone, or, for a jail the config does not have, defines it (starting from
//! `defaults`, like any jail). Each label is checked on its own with the
//! same rules as the config file, so one malformed label is reported and
//! skipped while the container's other labels still apply.
//!
//! Label values are text. Lists are comma-separated (`ports=25,465`);
//! `ban_prefix=24` sets the IPv4 prefix, `ban_prefix.v6=64` the IPv6 one;
//! `filter_params.<param>=<value>` sets a filter param. Filters are named,
//! never given as paths: a container must not make warden read files.

use std::collections::BTreeMap;
use std::path::Path;

use super::build::{ACTIONS, PROTOCOLS, TARGETS, check_ports_protocol};
use super::fields::Checker;
use super::model::JailConfig;
use super::yaml::{self, Node, Value};
use super::{FilterCatalog, FilterRef};

/// The prefix of every label warden reads.
pub const LABEL_PREFIX: &str = "warden.";
/// `warden.jails=a,b`: the jails a container's logs feed.
pub const JAILS_LABEL: &str = "warden.jails";
/// `warden.enable=false`: ignore this container.
pub const ENABLE_LABEL: &str = "warden.enable";
/// `warden.jail.<jail>.<option>`.
pub const JAIL_LABEL_PREFIX: &str = "warden.jail.";

/// The options a label may set, for messages.
pub const LABEL_OPTIONS: &[&str] = &[
    "filter",
    "filter_params.<param>",
    "maxretry",
    "findtime",
    "bantime",
    "ports",
    "protocol",
    "ban_prefix",
    "ban_prefix.v4",
    "ban_prefix.v6",
    "target",
    "action",
    "ignoreip",
    "enabled",
    "max_tracked",
    "flush_conntrack",
];

/// One label that could not be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelError {
    /// The full label key, like `warden.jail.webauth.maxretry`.
    pub label: String,
    pub value: String,
    pub message: String,
}

impl std::fmt::Display for LabelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "label {}={:?}: {}", self.label, self.value, self.message)
    }
}

/// A jail as one container sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelJail {
    pub config: JailConfig,
    /// True when labels changed anything: the container then needs its own
    /// instance of the jail.
    pub overridden: bool,
}

/// The `warden.jail.<jail>.<option>` labels of a container, grouped by
/// jail: `jail → [(option, label key, value)]`.
pub fn jail_options(labels: &BTreeMap<String, String>) -> BTreeMap<String, Vec<(String, String, String)>> {
    let mut by_jail: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (key, value) in labels {
        let Some(rest) = key.strip_prefix(JAIL_LABEL_PREFIX) else { continue };
        let (jail, option) = rest.split_once('.').unwrap_or((rest, ""));
        by_jail.entry(jail.to_string()).or_default().push((option.to_string(), key.clone(), value.clone()));
    }
    by_jail
}

/// Applies `options` (from [`jail_options`]) to `base`: the configured jail
/// of that name, or `None` for a jail defined by labels alone, which then
/// starts from `template` ([`super::Config::jail_template`]) and must name
/// a filter. Returns the jail (when it is usable) and the labels rejected.
pub fn apply(
    name: &str,
    base: Option<&JailConfig>,
    template: &JailConfig,
    options: &[(String, String, String)],
    filters: &dyn FilterCatalog,
) -> (Option<LabelJail>, Vec<LabelError>) {
    let mut jail = base.cloned().unwrap_or_else(|| JailConfig { name: name.to_string(), ..template.clone() });
    let mut errors = Vec::new();
    let mut overridden = false;
    for (option, label, value) in options {
        match apply_one(&mut jail, option, value, filters) {
            Ok(()) => overridden = true,
            Err(message) => errors.push(LabelError { label: label.clone(), value: value.clone(), message }),
        }
    }
    if let Err(message) = check_ports_protocol(&jail) {
        let label = format!("{JAIL_LABEL_PREFIX}{name}.ports");
        errors.push(LabelError { value: String::new(), label, message });
        return (None, errors);
    }
    if base.is_none() && jail.filter == FilterRef::Name(String::new()) {
        errors.push(LabelError {
            label: format!("{JAIL_LABEL_PREFIX}{name}.filter"),
            value: String::new(),
            message: format!(
                "jail `{name}` is not in the config file, so its labels must name a filter (like \
                 warden.jail.{name}.filter=nginx-http-auth); or add the jail to the config"
            ),
        });
        return (None, errors);
    }
    (Some(LabelJail { config: jail, overridden }), errors)
}

fn apply_one(
    jail: &mut JailConfig,
    option: &str,
    value: &str,
    filters: &dyn FilterCatalog,
) -> Result<(), String> {
    if let Some(param) = option.strip_prefix("filter_params.") {
        if param.is_empty() {
            return Err("expected filter_params.<param>=<value>".into());
        }
        jail.filter_params.insert(param.to_string(), value.to_string());
        return Ok(());
    }
    let list = matches!(option, "ports" | "ignoreip");
    let node = scalar_node(value, list)?;
    let mut cx = Checker::new(Path::new("label"));
    let checked = match option {
        "filter" => {
            if filters.contains(value) {
                jail.filter = FilterRef::Name(value.to_string());
                Some(())
            } else {
                let mut names = filters.names();
                names.sort();
                return Err(format!("unknown filter {value:?}; known filters: {}", names.join(", ")));
            }
        }
        "maxretry" => cx.integer(&node, option, 1, u64::from(u32::MAX)).map(|n| jail.maxretry = n as u32),
        "findtime" => cx.duration(&node, option, false).map(|d| jail.findtime = d),
        "bantime" => cx.bantime(&node, option).map(|b| jail.bantime = b),
        "max_tracked" => {
            cx.integer(&node, option, 1, u64::from(u32::MAX)).map(|n| jail.max_tracked = n as usize)
        }
        "enabled" => cx.boolean(&node, option).map(|b| jail.enabled = b),
        "flush_conntrack" => cx.boolean(&node, option).map(|b| jail.flush_conntrack = b),
        "protocol" => cx.choice(&node, option, PROTOCOLS).map(|p| jail.protocol = p),
        "target" => cx.choice(&node, option, TARGETS).map(|t| jail.target = t),
        "action" => cx.choice(&node, option, ACTIONS).map(|a| jail.action = a),
        "ban_prefix" | "ban_prefix.v4" => {
            cx.integer(&node, option, 8, 32).map(|n| jail.ban_prefix.v4 = n as u8)
        }
        "ban_prefix.v6" => cx.integer(&node, option, 16, 128).map(|n| jail.ban_prefix.v6 = n as u8),
        "ports" => {
            let items = cx.list_items(&node, option, "ports");
            let ranges: Option<Vec<_>> = items.iter().map(|(n, p)| cx.port_range(n, p)).collect();
            ranges.map(|r| jail.ports = r)
        }
        "ignoreip" => {
            let items = cx.list_items(&node, option, "addresses");
            let nets: Option<Vec<_>> = items.iter().map(|(n, p)| cx.ip_or_net(n, p)).collect();
            nets.map(|n| jail.ignoreip = n)
        }
        "" => {
            return Err(format!(
                "expected warden.jail.<jail>.<option>; options: {}",
                LABEL_OPTIONS.join(", ")
            ));
        }
        _ => {
            return Err(format!("unknown option {option:?}; labels may set: {}", LABEL_OPTIONS.join(", ")));
        }
    };
    match (checked, cx.errors.into_iter().next()) {
        (Some(()), None) => Ok(()),
        (_, Some(error)) => Err(error.message),
        (None, None) => Err("invalid value".into()),
    }
}

/// The label value as a YAML node, so the config file's checks apply
/// unchanged; `list` values are comma-separated.
fn scalar_node(value: &str, list: bool) -> Result<Node, String> {
    let text = if list {
        let items: Vec<String> =
            value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| format!("'{s}'")).collect();
        format!("[{}]", items.join(", "))
    } else {
        value.to_string()
    };
    let node = yaml::parse(&text).map_err(|e| format!("invalid value: {}", e.message))?;
    match (&node.value, list) {
        (Value::Map(_) | Value::Seq(_), false) => Err("expected a single value".into()),
        _ => Ok(node),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{FilterNames, parse};
    use crate::core::{BanTime, PortRange, Target};

    const FILTERS: FilterNames<'static> = FilterNames(&["sshd", "nginx-http-auth"]);

    fn config() -> crate::config::Config {
        let text = "defaults: {maxretry: 3, ignoreip: [10.0.0.0/8]}
jails: {webauth: {filter: nginx-http-auth, sources: [{docker: {}}], ports: [443]}}";
        parse(text, Path::new("/etc/warden/warden.yaml"), &FILTERS).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_label_jail_starts_from_defaults_and_takes_every_option() {
        let c = config();
        let l = labels(&[
            ("warden.jail.gitea.filter", "sshd"),
            ("warden.jail.gitea.maxretry", "7"),
            ("warden.jail.gitea.findtime", "2m"),
            ("warden.jail.gitea.bantime", "permanent"),
            ("warden.jail.gitea.ports", "22, 2222-2223"),
            ("warden.jail.gitea.protocol", "tcp"),
            ("warden.jail.gitea.ban_prefix", "24"),
            ("warden.jail.gitea.target", "docker"),
            ("warden.jail.gitea.filter_params.mode", "aggressive"),
            ("com.example.other", "x"),
        ]);
        let options = jail_options(&l);
        assert_eq!(options.keys().collect::<Vec<_>>(), ["gitea"]);
        let (jail, errors) = apply("gitea", None, &c.jail_template, &options["gitea"], &FILTERS);
        assert_eq!(errors, vec![]);
        let jail = jail.unwrap();
        assert!(jail.overridden);
        let j = jail.config;
        assert_eq!(j.name, "gitea");
        assert_eq!(j.filter, FilterRef::Name("sshd".into()));
        assert_eq!(j.maxretry, 7);
        assert_eq!(j.findtime, Duration::from_secs(120));
        assert_eq!(j.bantime, BanTime::Permanent);
        assert_eq!(j.ports, vec![PortRange { first: 22, last: 22 }, PortRange { first: 2222, last: 2223 }]);
        assert_eq!(j.ban_prefix.v4, 24);
        assert_eq!(j.target, Target::Docker);
        assert_eq!(j.filter_params["mode"], "aggressive");
        // From `defaults`:
        assert_eq!(j.ignoreip, vec!["10.0.0.0/8".parse().unwrap()]);
    }

    #[test]
    fn a_bad_label_is_reported_alone_and_the_others_still_apply() {
        let c = config();
        let l = labels(&[
            ("warden.jail.webauth.maxretry", "many"),
            ("warden.jail.webauth.bantime", "1h"),
            ("warden.jail.webauth.colour", "blue"),
            ("warden.jail.webauth.filter", "/etc/shadow"),
        ]);
        let options = jail_options(&l);
        let (jail, errors) =
            apply("webauth", c.jails.get("webauth"), &c.jail_template, &options["webauth"], &FILTERS);
        let jail = jail.unwrap().config;
        assert_eq!(jail.bantime, BanTime::Finite(Duration::from_secs(3600)));
        assert_eq!(jail.maxretry, 3, "the bad value left the configured one");
        assert_eq!(jail.ports, vec![PortRange { first: 443, last: 443 }]);
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{rendered:?}");
        assert!(
            rendered[0].starts_with("label warden.jail.webauth.colour=\"blue\": unknown option"),
            "{rendered:?}"
        );
        assert!(rendered[0].contains("maxretry"), "lists what is valid: {rendered:?}");
        assert!(
            rendered[1].contains("unknown filter \"/etc/shadow\"") && rendered[1].contains("nginx-http-auth")
        );
        assert!(
            rendered[2].contains("warden.jail.webauth.maxretry") && rendered[2].contains("whole number"),
            "{rendered:?}"
        );
    }

    #[test]
    fn a_label_jail_without_a_filter_or_with_contradictions_is_refused() {
        let c = config();
        let l = labels(&[("warden.jail.new.maxretry", "2")]);
        let (jail, errors) = apply("new", None, &c.jail_template, &jail_options(&l)["new"], &FILTERS);
        assert!(jail.is_none());
        assert!(errors[0].message.contains("must name a filter"), "{errors:?}");

        let l = labels(&[("warden.jail.webauth.protocol", "all")]);
        let (jail, errors) = apply(
            "webauth",
            c.jails.get("webauth"),
            &c.jail_template,
            &jail_options(&l)["webauth"],
            &FILTERS,
        );
        assert!(jail.is_none());
        assert!(errors[0].message.contains("protocol"), "{errors:?}");
    }
}
