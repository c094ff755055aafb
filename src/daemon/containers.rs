//! Containers followed through the Docker source, and which jail instances
//! their lines feed.
//!
//! State owned: per container id, what Docker told us ([`ContainerInfo`]),
//! whether it is running, and its routes: the jail instances its lines go
//! to. A container feeds a configured jail as is, a per-container instance
//! of it (`<jail>@<container>`) when its labels override options, or a jail
//! its labels define (`warden.jail.<name>.filter=…`).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::config::labels::{self, LabelJail};
use crate::core::SourceRef;
use crate::source::ContainerInfo;

use super::engine::{Engine, JailOrigin, JailRuntime};
use super::setup::{self, Catalog};

/// A followed container.
#[derive(Debug, Clone)]
pub struct Container {
    pub info: ContainerInfo,
    pub running: bool,
    pub routes: Arc<[Arc<str>]>,
}

/// Every container seen since start, by id.
#[derive(Debug, Default)]
pub struct Containers {
    by_id: HashMap<String, Container>,
}

impl Containers {
    /// The jail instances a line feeds: its container's routes, or the
    /// jails the source gave it.
    pub fn routes<'a>(&'a self, source: &SourceRef, given: &'a Arc<[Arc<str>]>) -> &'a Arc<[Arc<str>]> {
        match source {
            SourceRef::Docker { container_id, .. } => {
                self.by_id.get(container_id).map_or(given, |c| &c.routes)
            }
            _ => given,
        }
    }

    pub fn up(&mut self, info: ContainerInfo, routes: Vec<Arc<str>>) {
        let id = info.id.clone();
        self.by_id.insert(id, Container { info, running: true, routes: routes.into() });
    }

    pub fn down(&mut self, id: &str) {
        if let Some(c) = self.by_id.get_mut(id) {
            c.running = false;
            tracing::info!(container = %c.info.name, "container stopped; its bans stay");
        }
    }

    pub fn gone(&mut self, id: &str) {
        if let Some(c) = self.by_id.remove(id) {
            tracing::info!(container = %c.info.name, "container removed; its log cursor is forgotten");
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Container> {
        self.by_id.values()
    }
}

impl Engine {
    /// A container started (or was renamed): work out its routes, creating
    /// the jail instances its labels ask for. Bad labels are warned about,
    /// one warning each, and skipped; the rest still apply.
    pub(super) fn container_up(&mut self, info: ContainerInfo) {
        let options = labels::jail_options(&info.labels);
        // Only `warden.jails` (and config jails naming the container) make
        // it feed a jail; the Docker source already warned about options
        // for jails not listed there.
        let names: BTreeSet<String> = info.jails.iter().cloned().collect();
        let mut routes: Vec<Arc<str>> = Vec::new();
        for name in names {
            let base = self.config.jails.get(&name).cloned();
            let instance = match (base, options.get(&name)) {
                (Some(base), None) => {
                    if !base.enabled {
                        continue;
                    }
                    Some(Arc::<str>::from(name.as_str()))
                }
                (base, Some(opts)) => {
                    let catalog = Catalog(&self.registry);
                    let (jail, errors) =
                        labels::apply(&name, base.as_ref(), &self.config.jail_template, opts, &catalog);
                    for e in &errors {
                        tracing::warn!(container = %info.name, "{e}; this label is ignored");
                    }
                    jail.and_then(|jail| self.label_instance(&name, base.is_some(), jail, &info.name, opts))
                }
                (None, None) => {
                    tracing::warn!(
                        container = %info.name, jail = %name,
                        "label warden.jails names jail `{name}`, which is neither in the config nor defined by \
                         warden.jail.{name}.filter=… labels; it is ignored"
                    );
                    None
                }
            };
            if let Some(instance) = instance {
                routes.push(instance);
            }
        }
        for route in &routes {
            if let Some(rt) = self.jails.get_mut(route) {
                let before = rt.published.len();
                rt.published.extend(info.published.iter().copied());
                if rt.published.len() != before && rt.config.ports.is_empty() {
                    self.ruleset_dirty = true;
                }
            }
        }
        let names: Vec<&str> = routes.iter().map(|r| &**r).collect();
        tracing::info!(container = %info.name, jails = ?names, "container attached");
        self.containers.up(info, routes);
    }

    /// The instance for a label jail: created, replaced when its labels
    /// changed, or kept as is.
    fn label_instance(
        &mut self,
        name: &str,
        configured: bool,
        jail: LabelJail,
        container: &str,
        options: &[(String, String, String)],
    ) -> Option<Arc<str>> {
        if configured && !jail.overridden {
            return Some(Arc::from(name));
        }
        let (instance, origin) = if configured {
            (format!("{name}@{container}"), JailOrigin::Override { container: container.to_string() })
        } else {
            (name.to_string(), JailOrigin::Labels { container: container.to_string() })
        };
        let instance: Arc<str> = Arc::from(instance.as_str());
        let mut config = jail.config;
        config.name = instance.to_string();
        if let Some(existing) = self.jails.get(&instance) {
            if existing.config == config {
                return Some(instance);
            }
            if let (JailOrigin::Labels { container: first }, false) = (&existing.origin, configured)
                && first != container
            {
                tracing::warn!(
                    container, jail = %instance,
                    "jail `{instance}` is already defined by the labels of container {first}, differently; \
                     this container feeds that definition"
                );
                return Some(instance);
            }
        }
        let filter = match setup::compile_filter(&self.registry, &config) {
            Ok(filter) => Arc::new(filter),
            Err(e) => {
                tracing::warn!(container, jail = %instance, "{e:#}; the jail is ignored");
                return None;
            }
        };
        match self.jails.get_mut(&instance) {
            Some(rt) => {
                rt.jail.reconfigure(setup::jail_settings(&instance, &config));
                rt.config = config;
                rt.filter = filter;
            }
            None => {
                let rt = JailRuntime::new(&instance, config, filter, origin);
                self.jails.insert(instance.clone(), rt);
            }
        }
        let saved = SavedLabelJail {
            jail: name.to_string(),
            container: container.to_string(),
            options: options.to_vec(),
        };
        if let Err(e) = self.store.put_cursors(&[(saved.key(&instance), saved.encode())]) {
            tracing::warn!(jail = %instance, "cannot persist the jail's label definition (its bans are not re-enforced after a restart until the container is seen again): {e}");
        }
        self.ruleset_dirty = true;
        Some(instance)
    }
}

/// A label jail's definition, persisted so that its bans are enforced again
/// after a restart before Docker is even reachable. Kept in the store's
/// cursor table under `labeljail:<instance>`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SavedLabelJail {
    /// The jail name in the labels.
    pub jail: String,
    pub container: String,
    /// (option, label key, value), as [`labels::jail_options`] gives them.
    pub options: Vec<(String, String, String)>,
}

/// The store key prefix of [`SavedLabelJail`]s.
pub const LABEL_JAIL_KEY: &str = "labeljail:";

impl SavedLabelJail {
    fn key(&self, instance: &str) -> String {
        format!("{LABEL_JAIL_KEY}{instance}")
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Rebuilds the label jails persisted in `store` (see [`SavedLabelJail`]).
/// One that no longer builds (its filter was removed, say) is skipped with
/// a warning.
pub fn restore_label_jails(
    config: &crate::config::Config,
    registry: &crate::filter::Registry,
    store: &crate::store::Store,
) -> anyhow::Result<std::collections::BTreeMap<Arc<str>, JailRuntime>> {
    let mut jails = std::collections::BTreeMap::new();
    for (key, value) in store.cursors()? {
        let Some(instance) = key.strip_prefix(LABEL_JAIL_KEY) else { continue };
        let Ok(saved) = serde_json::from_slice::<SavedLabelJail>(&value) else {
            tracing::warn!(jail = instance, "a stored label jail definition is unreadable; skipped");
            continue;
        };
        let base = config.jails.get(&saved.jail);
        let catalog = Catalog(registry);
        let (jail, _) = labels::apply(&saved.jail, base, &config.jail_template, &saved.options, &catalog);
        let Some(jail) = jail else { continue };
        let mut jail_config = jail.config;
        jail_config.name = instance.to_string();
        match setup::compile_filter(registry, &jail_config) {
            Ok(filter) => {
                let origin = if base.is_some() {
                    JailOrigin::Override { container: saved.container.clone() }
                } else {
                    JailOrigin::Labels { container: saved.container.clone() }
                };
                let rt = JailRuntime::new(instance, jail_config, Arc::new(filter), origin);
                jails.insert(Arc::from(instance), rt);
            }
            Err(e) => tracing::warn!(jail = instance, "{e:#}; the label jail is not restored"),
        }
    }
    Ok(jails)
}
