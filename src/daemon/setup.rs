//! Turning configuration into running parts: jail settings, filters,
//! firewall rules and the enforcer's configuration. Pure functions, so a
//! reload can build everything first and swap only when all of it worked.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context as _;

use crate::config::{BackendChoice, Config, FilterCatalog, FilterRef, JailConfig};
use crate::core::{Protocol, Target};
use crate::filter::{Filter, Registry};
use crate::firewall::backend::Backend;
use crate::firewall::enforcer::EnforcerConfig;
use crate::firewall::guard::BanFloor;
use crate::firewall::rules::JailRules;
use crate::jail::{IgnoreList, JailSettings};
use crate::source::PublishedPort;

/// A [`Registry`] as the config module sees it.
pub struct Catalog<'a>(pub &'a Registry);

impl FilterCatalog for Catalog<'_> {
    fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    fn names(&self) -> Vec<String> {
        self.0.names().into_iter().map(String::from).collect()
    }
}

/// The jail module's view of a configured jail.
pub fn jail_settings(name: &str, jail: &JailConfig) -> JailSettings {
    JailSettings {
        name: Arc::from(name),
        maxretry: jail.maxretry,
        findtime: jail.findtime,
        bantime: jail.bantime,
        increment: jail.increment.clone(),
        ignore: IgnoreList::new(jail.ignoreip.iter().copied()),
        ban_prefix: jail.ban_prefix,
        max_tracked: jail.max_tracked,
    }
}

/// Compiles a jail's filter.
pub fn compile_filter(registry: &Registry, jail: &JailConfig) -> anyhow::Result<Filter> {
    let name = match &jail.filter {
        FilterRef::Name(name) => name.clone(),
        FilterRef::File(path) => path.display().to_string(),
    };
    registry
        .load(&name, &jail.filter_params)
        .with_context(|| format!("jail {}: cannot load filter {name}", jail.name))
}

/// Compiles every enabled jail's filter; all errors are reported together.
pub fn compile_filters(
    registry: &Registry,
    config: &Config,
) -> anyhow::Result<BTreeMap<String, Arc<Filter>>> {
    let mut filters = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, jail) in config.jails.iter().filter(|(_, j)| j.enabled) {
        match compile_filter(registry, jail) {
            Ok(filter) => {
                filters.insert(name.clone(), Arc::new(filter));
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    if errors.is_empty() { Ok(filters) } else { anyhow::bail!("{}", errors.join("\n")) }
}

/// The firewall's view of a jail instance. A Docker-target jail without
/// ports takes the published ports of the containers feeding it.
pub fn jail_rules(name: &str, jail: &JailConfig, published: &BTreeSet<PublishedPort>) -> JailRules {
    let mut rules = JailRules::new(name).with_ban_prefix(jail.ban_prefix);
    rules.ports = jail.ports.clone();
    rules.protocol = jail.protocol;
    rules.target = jail.target;
    rules.action = jail.action;
    if rules.ports.is_empty() && jail.target == Target::Docker && !published.is_empty() {
        let protocols: BTreeSet<Protocol> = published.iter().map(|p| p.protocol).collect();
        // One jail rule has one protocol: infer only when they agree.
        if let [protocol] = protocols.into_iter().collect::<Vec<_>>()[..] {
            rules.protocol = protocol;
            rules.ports =
                published.iter().map(|p| crate::core::PortRange { first: p.port, last: p.port }).collect();
        }
    }
    rules
}

/// The enforcer's configuration from the config file and the command line.
pub fn enforcer_config(config: &Config, dry_run: bool, backend: Option<Backend>) -> EnforcerConfig {
    let backend = backend.or(match config.firewall.backend {
        BackendChoice::Auto => None,
        BackendChoice::Nft => Some(Backend::Nft),
        BackendChoice::Legacy => Some(Backend::Legacy),
    });
    EnforcerConfig {
        backend,
        dry_run: dry_run || config.dry_run,
        ban_floor: BanFloor { v4: config.firewall.ban_floor.v4, v6: config.firewall.ban_floor.v6 },
        keep_conntrack: config
            .jails
            .values()
            .filter(|j| !j.flush_conntrack)
            .map(|j| j.name.clone())
            .collect(),
        ..EnforcerConfig::default()
    }
}
