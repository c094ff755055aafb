//! Which source tasks run, from the jails' `sources`, and starting and
//! stopping them as a group (at start, reload and shutdown).
//!
//! State owned: the running source tasks and the token that stops them.
//! Jails reading the same file, or the same journal matches, share one
//! reader; all Docker jails share one Docker connection.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ReadFrom, SourceSpec};
use crate::core::Timestamp;
use crate::source::SourceEvent;
use crate::source::docker::{self, DockerSourceConfig};
use crate::source::file::{self, FileSourceConfig};
use crate::source::journald::{self, JournalLocation, JournaldSourceConfig};
use crate::store::Store;

use super::engine::JailRuntime;

/// Journal match groups: OR of AND-groups of `FIELD=value`.
pub type MatchGroups = Vec<BTreeMap<String, String>>;

/// What to read, grouped by reader.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `Some` when any enabled jail reads Docker logs.
    pub docker: Option<DockerPlan>,
    /// Path or glob → (jails, where a new file starts).
    pub files: BTreeMap<PathBuf, (BTreeSet<String>, ReadFrom)>,
    /// Match groups (OR of AND-groups) → (jails, where a fresh cursor starts).
    pub journald: BTreeMap<MatchGroups, (BTreeSet<String>, ReadFrom)>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DockerPlan {
    /// Container name → configured jails naming it.
    pub named: BTreeMap<String, Vec<String>>,
    /// Jails whose new containers are read from their first line.
    pub read_from_start: BTreeSet<String>,
}

/// Groups the enabled jails' sources by reader. A journald source without
/// matches takes its filter's `journalmatch` (`FIELD=value` items, OR-ed).
pub fn plan(config: &Config, jails: &BTreeMap<Arc<str>, JailRuntime>) -> Plan {
    let mut plan = Plan::default();
    for (name, jail) in config.jails.iter().filter(|(_, j)| j.enabled) {
        for source in &jail.sources {
            match source {
                SourceSpec::Docker { containers, read_from } => {
                    let docker = plan.docker.get_or_insert_with(DockerPlan::default);
                    for container in containers {
                        docker.named.entry(container.clone()).or_default().push(name.clone());
                    }
                    if *read_from == ReadFrom::Start {
                        docker.read_from_start.insert(name.clone());
                    }
                }
                SourceSpec::File { path, read_from } => {
                    let entry =
                        plan.files.entry(path.clone()).or_insert_with(|| (BTreeSet::new(), *read_from));
                    entry.0.insert(name.clone());
                    // Reading from the start wins: no jail misses lines it asked for.
                    if *read_from == ReadFrom::Start {
                        entry.1 = ReadFrom::Start;
                    }
                }
                SourceSpec::Journald { matches, read_from } => {
                    let matches = if matches.is_empty() {
                        journalmatch_groups(
                            jails.get(name.as_str()).map_or(&[][..], |rt| rt.filter.journalmatch()),
                        )
                    } else {
                        matches.clone()
                    };
                    let entry = plan.journald.entry(matches).or_insert_with(|| (BTreeSet::new(), *read_from));
                    entry.0.insert(name.clone());
                    if *read_from == ReadFrom::Start {
                        entry.1 = ReadFrom::Start;
                    }
                }
            }
        }
    }
    // Label-defined jails read Docker logs, so the Docker source runs for
    // them even when no configured jail asks for it.
    if plan.docker.is_none() && jails.values().any(|rt| rt.origin != super::engine::JailOrigin::Config) {
        plan.docker = Some(DockerPlan::default());
    }
    plan
}

fn jail_list(jails: &BTreeSet<String>) -> Arc<[Arc<str>]> {
    jails.iter().map(|j| Arc::from(j.as_str())).collect()
}

/// libsystemd reads "the system journal" (both standard directories, every
/// machine id) or one directory; a custom `journal_dirs` names the latter.
fn journal_location(dirs: &[PathBuf]) -> JournalLocation {
    let standard: Vec<PathBuf> = crate::config::builtin::JOURNAL_DIRS.iter().map(PathBuf::from).collect();
    match dirs {
        [dir] if !standard.contains(dir) => JournalLocation::Directory(dir.clone()),
        [first, rest @ ..] if !standard.contains(first) => {
            tracing::warn!(used = %first.display(), ignored = rest.len(), "journal_dirs: the journald source reads one custom directory; the others are ignored");
            JournalLocation::Directory(first.clone())
        }
        _ => JournalLocation::System,
    }
}

/// `journalmatch` items (`_SYSTEMD_UNIT=sshd.service`, OR-ed) as match
/// groups; items with `+` between fields are AND-ed, as in journalctl.
fn journalmatch_groups(items: &[String]) -> MatchGroups {
    items
        .iter()
        .map(|item| {
            item.split_whitespace()
                .filter(|part| *part != "+")
                .filter_map(|part| part.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        })
        .filter(|group| !group.is_empty())
        .collect()
}

/// Whether the config names a dockerd (`docker.host`, `$DOCKER_HOST`) or
/// the default socket exists, so that a warden on a host without Docker
/// does not keep warning that dockerd is unreachable.
fn dockerd_configured_or_present(config: &Config) -> bool {
    match docker::Endpoint::resolve(config.docker.host.as_deref()) {
        Ok(docker::Endpoint::Unix(path)) => config.docker.host.is_some() || path.exists(),
        Ok(docker::Endpoint::Tcp(_)) => true,
        Err(_) => false,
    }
}

/// The running source tasks.
pub struct Sources {
    handle: Handle,
    tx: mpsc::Sender<SourceEvent>,
    store: Arc<Store>,
    started_at: Timestamp,
    token: CancellationToken,
    tasks: Vec<(String, JoinHandle<anyhow::Result<()>>)>,
}

impl Sources {
    pub fn new(
        handle: Handle,
        tx: mpsc::Sender<SourceEvent>,
        store: Arc<Store>,
        started_at: Timestamp,
    ) -> Sources {
        Sources { handle, tx, store, started_at, token: CancellationToken::new(), tasks: Vec::new() }
    }

    /// Starts a task per reader in `plan`.
    pub fn start(&mut self, plan: Plan, config: &Config) {
        self.token = CancellationToken::new();
        for (path, (jails, read_from)) in plan.files {
            let cfg = FileSourceConfig {
                max_line_bytes: config.docker.line_max,
                ..FileSourceConfig::new(path.clone(), jail_list(&jails), read_from)
            };
            tracing::info!(path = %path.display(), jails = ?jails, "following file");
            let run = file::run(cfg, self.store.clone(), self.tx.clone(), self.token.clone());
            self.spawn(format!("file {}", path.display()), async move { Ok(run.await?) });
        }
        let location = journal_location(&config.journal_dirs);
        for (matches, (jails, read_from)) in plan.journald {
            let cfg = JournaldSourceConfig {
                location: location.clone(),
                max_line_bytes: config.docker.line_max,
                ..JournaldSourceConfig::new(matches.clone(), jail_list(&jails), read_from)
            };
            let name = journald::cursor_key(&matches);
            tracing::info!(matches = %name, jails = ?jails, "following the journal");
            let run = journald::run(cfg, self.store.clone(), self.tx.clone(), self.token.clone());
            self.spawn(name, async move { Ok(run.await?) });
        }
        // A container's labels may define a jail the config does not have,
        // which must work with no config change: so the Docker source also
        // runs when no jail asks for it, as long as there is a dockerd to ask.
        let docker = plan.docker.or_else(|| dockerd_configured_or_present(config).then(DockerPlan::default));
        if let Some(plan) = docker {
            let cfg = DockerSourceConfig {
                host: config.docker.host.clone(),
                line_max: config.docker.line_max,
                read_files: config.docker.read_files,
                named: plan.named,
                read_from_start: plan.read_from_start,
                ..DockerSourceConfig::new(self.started_at)
            };
            tracing::info!(named = ?cfg.named, "following Docker containers");
            let run = docker::run(cfg, self.store.clone(), self.tx.clone(), self.token.clone());
            self.spawn("docker".into(), async move { Ok(run.await?) });
        }
    }

    fn spawn(&mut self, name: String, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        let handle = self.handle.spawn(task);
        self.tasks.push((name, handle));
    }

    /// Stops every task; resolves once all have ended (their senders are
    /// then dropped). The caller keeps draining the channel meanwhile.
    pub fn stop(&mut self) -> impl Future<Output = ()> + use<> {
        self.token.cancel();
        let tasks = std::mem::take(&mut self.tasks);
        async move {
            for (name, task) in tasks {
                match task.await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!(source = %name, "source ended with an error: {e:#}"),
                    Err(e) => tracing::error!(source = %name, "source task failed: {e}"),
                }
            }
        }
    }
}
