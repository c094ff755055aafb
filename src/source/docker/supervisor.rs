//! Discovery and the container lifecycle: which containers are followed,
//! and what happens when they start, stop, are renamed or removed, and
//! when dockerd itself goes away.
//!
//! The [`Supervisor`] is one task. It owns the connection to dockerd, one
//! [`follow`] task per followed container, and the in-memory position of
//! every container read during this run (a stream reopened within the run
//! resumes from what was *sent*, which the store may not have committed
//! yet; only a container first seen in this run starts from the store's
//! cursor). It lists running containers at (re)connection, then follows
//! container events; when the event stream breaks it stops every follow
//! task, reconnects with capped exponential backoff, and reattaches.
//!
//! It also decides how each container's log is read ([`Logs`]): from its
//! json-file log when the driver is `json-file`, `docker.read_files` is
//! `auto` and the file can be opened, through the API otherwise, saying
//! which (once per container, and again when it changes). A container
//! whose file could not be read falls back to the API for the rest of the
//! run. It owns the one [`LogWatcher`] all file followers share.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::models::ContainerSummaryStateEnum;
use bollard::query_parameters::{EventsOptions, ListContainersOptions};
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, error, info, info_span, warn};

use super::DockerSourceConfig;
use super::client::{Client, ClientError, Endpoint};
use super::container::{Inspected, LogDriver, Readability, log_driver_warning};
use super::cursor::{Position, Replay};
use super::follow::{FollowEnd, FollowExit, FollowStart, Logs, Routing, follow};
use super::labels::{container_jails, read_labels, unused_jail_options};
use super::watch::LogWatcher;
use crate::config::ReadFiles;
use crate::source::{ContainerInfo, LogAccess, SourceEvent};
use crate::store::Store;

/// How long an API log stream may stay open after its container died
/// before it is closed from this side (dockerd normally closes it at once).
/// A json-file follower is not cut short: it ends once it has read the
/// dead container's log to its end.
const DIE_GRACE: Duration = Duration::from_secs(5);
/// How often timers (retries, die grace) are checked.
const TICK: Duration = Duration::from_millis(250);
/// First reconnection and reattachment delay; doubles up to the cap.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// A stream that lasted this long was healthy: reopen it at once.
const HEALTHY_STREAM: Duration = Duration::from_secs(10);
/// While dockerd stays unreachable, say so again this often.
const UNREACHABLE_REMINDER: Duration = Duration::from_secs(60);

/// The key under which a container's cursor is stored.
pub fn cursor_key(id: &str) -> Arc<str> {
    Arc::from(format!("docker:{id}"))
}

/// See the module docs.
pub struct Supervisor {
    cfg: DockerSourceConfig,
    endpoint: Endpoint,
    store: Arc<Store>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: CancellationToken,
    followed: HashMap<String, Followed>,
    tasks: JoinSet<FollowExit>,
    task_ids: HashMap<tokio::task::Id, String>,
    /// Positions of containers read in this run and not followed now.
    positions: HashMap<String, Position>,
    /// Containers a follow task was started for and no ContainerDown sent.
    announced: HashSet<String>,
    /// Containers to look at again: (when, attempts so far).
    retries: HashMap<String, (Instant, u32)>,
    /// Containers whose logs dockerd cannot serve.
    unreadable: HashSet<String>,
    /// Warnings already given, per container: `<id> <what>`.
    warned: HashSet<String>,
    /// Containers whose json-file log could not be read: read through the
    /// API from then on.
    file_failed: HashSet<String>,
    /// How each container's logs were last said to be read.
    access: HashMap<String, LogAccess>,
    /// How to enable reading files was said.
    mount_hint_given: bool,
    /// Shared by the file followers; started at the first one.
    watcher: Option<Arc<LogWatcher>>,
    /// inotify could not be set up: files are polled.
    watcher_failed: bool,
    receiver_gone: bool,
}

struct Followed {
    routing: watch::Sender<Arc<Routing>>,
    log_driver: LogDriver,
    cancel: CancellationToken,
    /// Tells a file follower the container died.
    died: CancellationToken,
    /// Reads a json-file log (rather than an API stream).
    reads_file: bool,
    died_at: Option<Instant>,
    /// Destroyed: forget it once its task has ended.
    gone: bool,
}

impl Supervisor {
    pub fn new(
        cfg: DockerSourceConfig,
        endpoint: Endpoint,
        store: Arc<Store>,
        tx: mpsc::Sender<SourceEvent>,
        shutdown: CancellationToken,
    ) -> Supervisor {
        Supervisor {
            cfg,
            endpoint,
            store,
            tx,
            shutdown,
            followed: HashMap::new(),
            tasks: JoinSet::new(),
            task_ids: HashMap::new(),
            positions: HashMap::new(),
            announced: HashSet::new(),
            retries: HashMap::new(),
            unreadable: HashSet::new(),
            warned: HashSet::new(),
            file_failed: HashSet::new(),
            access: HashMap::new(),
            mount_hint_given: false,
            watcher: None,
            watcher_failed: false,
            receiver_gone: false,
        }
    }

    /// Runs until `shutdown` is cancelled or the receiver is dropped.
    pub async fn run(self) {
        let span = info_span!("docker_source", endpoint = %self.endpoint);
        self.serve_until_done().instrument(span).await;
    }

    async fn serve_until_done(mut self) {
        while let Some(client) = self.connect().await {
            // dockerd (re)started: it may have rebuilt its chains, so the
            // daemon re-checks warden's jumps now rather than at the next
            // periodic check.
            self.emit(SourceEvent::DockerConnected).await;
            self.serve(&client).await;
            self.stop_all().await;
            if self.finished() {
                break;
            }
        }
        self.stop_all().await;
    }

    fn finished(&self) -> bool {
        self.receiver_gone || self.shutdown.is_cancelled() || self.tx.is_closed()
    }

    /// Connects, retrying with capped exponential backoff; `None` on shutdown.
    async fn connect(&mut self) -> Option<Client> {
        let mut delay = FIRST_RETRY;
        let mut last_warning: Option<Instant> = None;
        loop {
            if self.finished() {
                return None;
            }
            match Client::connect(&self.endpoint).await {
                Ok(client) => {
                    info!(api_version = client.api_version(), "connected to dockerd");
                    return Some(client);
                }
                Err(e) if last_warning.is_none_or(|at| at.elapsed() >= UNREACHABLE_REMINDER) => {
                    warn!(
                        error = %e,
                        retry_in = ?delay,
                        "dockerd is not reachable; Docker logs are not read until it is"
                    );
                    last_warning = Some(Instant::now());
                }
                Err(e) => debug!(error = %e, retry_in = ?delay, "dockerd is still not reachable"),
            }
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(self.cfg.retry_max.max(FIRST_RETRY));
        }
    }

    /// Lists, then follows events, until the connection breaks or the
    /// source is done.
    async fn serve(&mut self, client: &Client) {
        // Events since a moment before the listing, so none falls between.
        let since = unix_now_secs().saturating_sub(1);
        if let Err(e) = self.resync(client).await {
            warn!(error = %e, "listing containers failed; reconnecting");
            tokio::select! {
                () = self.shutdown.cancelled() => {}
                () = tokio::time::sleep(FIRST_RETRY) => {}
            }
            return;
        }
        let filters = [
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), ["start", "die", "stop", "rename", "destroy"].map(String::from).to_vec()),
        ];
        let options =
            EventsOptions { since: Some(since.to_string()), until: None, filters: Some(filters.into()) };
        let mut events = client.docker.events(Some(options));
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.finished() {
            tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return,
                Some(joined) = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    self.on_task_end(joined).await;
                }
                event = events.next() => match event {
                    Some(Ok(event)) => self.on_event(client, event).await,
                    Some(Err(e)) => {
                        warn!(error = %e, "lost the connection to dockerd; reconnecting");
                        return;
                    }
                    None => {
                        warn!("dockerd closed the event stream; reconnecting");
                        return;
                    }
                },
                _ = tick.tick() => self.on_tick(client).await,
            }
        }
    }

    /// Lists running containers, attaches those to follow, and reconciles
    /// what changed while disconnected.
    async fn resync(&mut self, client: &Client) -> Result<(), ClientError> {
        let options = ListContainersOptions { all: true, ..Default::default() };
        let listed =
            tokio::time::timeout(Duration::from_secs(30), client.docker.list_containers(Some(options)))
                .await
                .map_err(|_| ClientError::Timeout { what: "listing containers".into() })?
                .map_err(|e| ClientError::Unreachable {
                    endpoint: self.endpoint.to_string(),
                    message: e.to_string(),
                })?;
        let mut existing = HashSet::new();
        let mut running = Vec::new();
        for summary in listed {
            let Some(id) = summary.id else { continue };
            existing.insert(id.clone());
            if summary.state == Some(ContainerSummaryStateEnum::RUNNING) {
                let name =
                    summary.names.unwrap_or_default().first().map(|n| n.trim_start_matches('/').to_string());
                let labelled = summary.labels.is_some_and(|l| l.contains_key(super::labels::JAILS_LABEL));
                let named = name.is_some_and(|n| self.cfg.named.contains_key(&n));
                if labelled || named {
                    running.push(id);
                }
            }
        }
        for id in &running {
            if !self.followed.contains_key(id) {
                self.consider(client, id).await;
            }
        }
        let stale: Vec<String> = self
            .announced
            .iter()
            .filter(|id| !running.contains(id) && !self.followed.contains_key(*id))
            .cloned()
            .collect();
        for id in stale {
            self.down(&id).await;
        }
        self.forget_removed(&existing).await;
        Ok(())
    }

    /// Sends ContainerGone for stored Docker cursors of containers that no
    /// longer exist (removed while warden was not watching).
    async fn forget_removed(&mut self, existing: &HashSet<String>) {
        let store = self.store.clone();
        let cursors = match tokio::task::spawn_blocking(move || store.cursors()).await {
            Ok(Ok(cursors)) => cursors,
            Ok(Err(e)) => return warn!(error = %e, "cannot read Docker cursors to forget removed containers"),
            Err(e) => return error!(error = %e, "reading cursors panicked"),
        };
        for (key, _) in cursors {
            if let Some(id) = key.strip_prefix("docker:")
                && !existing.contains(id)
            {
                let id = id.to_string();
                self.gone(&id).await;
            }
        }
    }

    async fn on_event(&mut self, client: &Client, event: bollard::models::EventMessage) {
        let Some(id) = event.actor.as_ref().and_then(|a| a.id.clone()) else { return };
        let action = event.action.as_deref().unwrap_or_default();
        debug!(action, id = %short(&id), "container event");
        match action {
            "start" if !self.followed.contains_key(&id) => self.consider(client, &id).await,
            "die" | "stop" => match self.followed.get_mut(&id) {
                Some(f) => {
                    f.died_at.get_or_insert_with(Instant::now);
                    f.died.cancel();
                }
                None => {
                    self.retries.remove(&id);
                    self.down(&id).await;
                }
            },
            "rename" => self.renamed(client, &id).await,
            "destroy" => match self.followed.get_mut(&id) {
                Some(f) => {
                    f.gone = true;
                    f.cancel.cancel();
                }
                None => self.gone(&id).await,
            },
            _ => {}
        }
    }

    async fn on_tick(&mut self, client: &Client) {
        for f in self.followed.values().filter(|f| !f.reads_file) {
            if f.died_at.is_some_and(|at| at.elapsed() >= DIE_GRACE) {
                f.cancel.cancel();
            }
        }
        let now = Instant::now();
        let due: Vec<String> =
            self.retries.iter().filter(|(_, (at, _))| *at <= now).map(|(id, _)| id.clone()).collect();
        for id in due {
            if !self.followed.contains_key(&id) {
                self.consider(client, &id).await;
            }
        }
    }

    /// Inspects a container and follows it if it runs and opted in;
    /// otherwise makes sure the daemon knows it is down.
    async fn consider(&mut self, client: &Client, id: &str) {
        let inspected = match inspect(client, id).await {
            Ok(Some(inspected)) => inspected,
            Ok(None) => {
                self.retries.remove(id);
                return self.down(id).await;
            }
            Err(e) => {
                debug!(error = %e, id = %short(id), "inspect failed; trying again later");
                return self.retry_later(id, false);
            }
        };
        let name = inspected.name.clone();
        let reading = read_labels(&inspected.labels);
        let jails = container_jails(&reading.jails, self.cfg.named.get(&name));
        let mut problems = reading.problems;
        problems.extend(unused_jail_options(&inspected.labels, &jails));
        for problem in problems {
            let key = format!("{id} label {}={}", problem.label, problem.value);
            self.warn_once(key, || warn!(container = %name, "{problem}"));
        }
        let wanted =
            inspected.running && reading.enabled && !jails.is_empty() && !self.unreadable.contains(id);
        if !wanted {
            if !reading.enabled && !jails.is_empty() {
                debug!(container = %name, "warden.enable=false: not followed");
            }
            self.retries.remove(id);
            return self.down(id).await;
        }
        if let Some(warning) = log_driver_warning(&name, &inspected.log_driver, None) {
            self.warn_once(format!("{id} log driver"), || warn!(container = %name, "{warning}"));
        }
        if inspected.log_driver.readability() == Readability::Unreadable {
            self.unreadable.insert(id.to_string());
            self.retries.remove(id);
            return self.down(id).await;
        }
        self.attach(client, inspected, jails).await;
    }

    async fn attach(&mut self, client: &Client, inspected: Inspected, jails: Vec<String>) {
        let id = inspected.id.clone();
        let key = cursor_key(&id);
        let position = match self.positions.remove(&id) {
            Some(p) => Some(p),
            None => self.stored_position(&key, &inspected.name).await,
        };
        let replay = match position {
            Some(p) => Replay::after(p),
            None if jails.iter().any(|j| self.cfg.read_from_start.contains(j)) => Replay::from_start(),
            None => Replay::from_time(self.cfg.started_at.as_millis().saturating_mul(1_000_000)),
        };
        let (logs, access) = self.choose_logs(&inspected);
        let reads_file = matches!(logs, Logs::File { .. });
        let died = CancellationToken::new();
        let start = FollowStart {
            id: id.clone(),
            cursor_key: key,
            tty: inspected.tty,
            line_max: self.cfg.line_max,
            position,
            replay,
            logs,
            died: died.clone(),
        };
        let span = info_span!("docker", container = %inspected.name, id = %short(&id));
        let log_driver = inspected.log_driver.clone();
        let info = ContainerInfo {
            id: id.clone(),
            name: inspected.name,
            image: inspected.image,
            labels: inspected.labels,
            jails,
            published: inspected.published,
            tty: inspected.tty,
            logs: access,
        };
        let (routing, routing_rx) = watch::channel(Arc::new(Routing::new(info)));
        let cancel = self.shutdown.child_token();
        let task =
            follow(client.clone(), start, routing_rx, self.tx.clone(), cancel.clone()).instrument(span);
        let handle = self.tasks.spawn(task);
        self.task_ids.insert(handle.id(), id.clone());
        self.followed.insert(
            id.clone(),
            Followed { routing, log_driver, cancel, died, reads_file, died_at: None, gone: false },
        );
        self.announced.insert(id.clone());
        self.retries.remove(&id);
    }

    /// How to read a container's log, saying so when it is the first time
    /// for this container or it changed.
    fn choose_logs(&mut self, inspected: &Inspected) -> (Logs, LogAccess) {
        let failed = self.file_failed.contains(&inspected.id);
        let chosen = log_file(self.cfg.read_files, inspected, failed);
        let access = if chosen.is_ok() { LogAccess::File } else { LogAccess::Api };
        let name = &inspected.name;
        if self.access.insert(inspected.id.clone(), access) != Some(access) {
            match &chosen {
                Ok(path) => {
                    info!(container = %name, path = %path.display(), "reading its logs from its json-file log")
                }
                Err(api) => {
                    info!(container = %name, "reading its logs through the Docker API: {}", api.reason)
                }
            }
        }
        match chosen {
            Ok(path) => (Logs::File { path, watcher: self.watcher() }, access),
            Err(api) => {
                if let Some(dir) = api.mount.filter(|_| !self.mount_hint_given) {
                    self.mount_hint_given = true;
                    info!("{}", mount_hint(&dir));
                }
                (Logs::Api, access)
            }
        }
    }

    /// The shared inotify watcher, started at the first call; `None` (the
    /// files are polled) when inotify cannot be set up.
    fn watcher(&mut self) -> Option<Arc<LogWatcher>> {
        if self.watcher.is_none() && !self.watcher_failed {
            match LogWatcher::start() {
                Ok(watcher) => self.watcher = Some(Arc::new(watcher)),
                Err(e) => {
                    self.watcher_failed = true;
                    warn!(error = %e, "cannot set up inotify; json-file logs are polled every 50 ms instead");
                }
            }
        }
        self.watcher.clone()
    }

    /// The stored position under `key`; an unreadable one is reported and
    /// treated as none.
    async fn stored_position(&self, key: &Arc<str>, name: &str) -> Option<Position> {
        let store = self.store.clone();
        let lookup = key.clone();
        let stored = match tokio::task::spawn_blocking(move || store.cursor(&lookup)).await {
            Ok(Ok(stored)) => stored?,
            Ok(Err(e)) => {
                warn!(container = %name, error = %e, "cannot read the container's cursor; reading from warden's start");
                return None;
            }
            Err(e) => {
                error!(error = %e, "reading a cursor panicked");
                return None;
            }
        };
        match Position::decode(&stored) {
            Ok(p) => Some(p),
            Err(e) => {
                warn!(container = %name, cursor = %key, error = %e, "ignoring the stored cursor; reading from warden's start");
                None
            }
        }
    }

    async fn renamed(&mut self, client: &Client, id: &str) {
        if !self.followed.contains_key(id) {
            return self.consider(client, id).await;
        }
        let inspected = match inspect(client, id).await {
            Ok(Some(inspected)) => inspected,
            // Gone or unreachable: the stream ends on its own then.
            Ok(None) | Err(_) => return,
        };
        let reading = read_labels(&inspected.labels);
        let jails = container_jails(&reading.jails, self.cfg.named.get(&inspected.name));
        let Some(followed) = self.followed.get(id) else { return };
        if jails.is_empty() || !reading.enabled {
            // Followed only because a config jail named it by its old name.
            info!(container = %inspected.name, "renamed out of every jail: no longer followed");
            followed.cancel.cancel();
            return;
        }
        let mut info = followed.routing.borrow().info.clone();
        info!(from = %info.name, to = %inspected.name, "container renamed");
        info.name = inspected.name;
        info.jails = jails;
        followed.routing.send_replace(Arc::new(Routing::new(info.clone())));
        self.emit(SourceEvent::ContainerUp(info)).await;
    }

    async fn on_task_end(&mut self, joined: Result<(tokio::task::Id, FollowExit), tokio::task::JoinError>) {
        let exit = match joined {
            Ok((task, exit)) => {
                self.task_ids.remove(&task);
                exit
            }
            Err(e) => {
                let Some(id) = self.task_ids.remove(&e.id()) else { return };
                error!(id = %short(&id), error = %e, "a container's log task failed; retrying");
                self.followed.remove(&id);
                return self.retry_later(&id, false);
            }
        };
        let Some(followed) = self.followed.remove(&exit.id) else { return };
        if let Some(p) = exit.position {
            self.positions.insert(exit.id.clone(), p);
        }
        let id = exit.id;
        if followed.gone {
            return self.gone(&id).await;
        }
        match exit.end {
            FollowEnd::ReceiverGone => self.receiver_gone = true,
            FollowEnd::Failed(ClientError::NotReadable { message, .. }) => {
                let name = followed.routing.borrow().info.name.clone();
                if let Some(warning) = log_driver_warning(&name, &followed.log_driver, Some(&message)) {
                    self.warn_once(
                        format!("{id} log driver refused"),
                        || warn!(container = %name, "{warning}"),
                    );
                }
                self.unreadable.insert(id.clone());
                self.retry_later(&id, true);
            }
            FollowEnd::FileFailed { path, error } => {
                let name = followed.routing.borrow().info.name.clone();
                warn!(
                    container = %name, path = %path.display(), %error,
                    "cannot read the container's json-file log; reading it through the Docker API from now on"
                );
                self.file_failed.insert(id.clone());
                self.retry_later(&id, true);
            }
            FollowEnd::Failed(e) => {
                debug!(id = %short(&id), error = %e, "log stream failed");
                self.retry_later(&id, exit.delivered || exit.lasted >= HEALTHY_STREAM);
            }
            FollowEnd::Ended | FollowEnd::Cancelled => {
                self.retry_later(&id, exit.delivered || exit.lasted >= HEALTHY_STREAM);
            }
        }
    }

    /// Looks at the container again after a backoff (at once if `healthy`).
    fn retry_later(&mut self, id: &str, healthy: bool) {
        if self.shutdown.is_cancelled() {
            return;
        }
        let attempts = if healthy { 0 } else { self.retries.get(id).map_or(0, |(_, a)| a + 1) };
        let delay = if attempts == 0 {
            Duration::ZERO
        } else {
            FIRST_RETRY.saturating_mul(1 << attempts.min(16)).min(self.cfg.retry_max.max(FIRST_RETRY))
        };
        self.retries.insert(id.to_string(), (Instant::now() + delay, attempts));
    }

    /// Tells the daemon a container it was told about is down.
    async fn down(&mut self, id: &str) {
        if self.announced.remove(id) {
            self.emit(SourceEvent::ContainerDown { id: id.to_string() }).await;
        }
    }

    /// A container was removed: forget it and let the daemon drop its cursor.
    async fn gone(&mut self, id: &str) {
        self.down(id).await;
        self.positions.remove(id);
        self.retries.remove(id);
        self.unreadable.remove(id);
        self.file_failed.remove(id);
        self.access.remove(id);
        let prefix = format!("{id} ");
        self.warned.retain(|k| !k.starts_with(&prefix));
        self.emit(SourceEvent::ContainerGone { id: id.to_string(), cursor_key: cursor_key(id) }).await;
    }

    /// Sends an event to the daemon. While shutting down it is sent only
    /// if there is room: the daemon may have stopped listening, and what
    /// is lost here is redone at the next start (resync forgets removed
    /// containers' cursors).
    async fn emit(&mut self, event: SourceEvent) {
        let sent = if self.shutdown.is_cancelled() {
            match self.tx.try_send(event) {
                Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
            }
        } else {
            self.tx.send(event).await.map_err(|_| ())
        };
        if sent.is_err() {
            self.receiver_gone = true;
        }
    }

    fn warn_once(&mut self, key: String, emit: impl FnOnce()) {
        if self.warned.insert(key) {
            emit();
        }
    }

    /// Cancels every follow task and waits for them, keeping positions.
    async fn stop_all(&mut self) {
        for f in self.followed.values() {
            f.cancel.cancel();
        }
        while let Some(joined) = self.tasks.join_next_with_id().await {
            self.on_task_end(joined).await;
        }
        self.followed.clear();
        self.task_ids.clear();
    }
}

/// Inspects a container; `Ok(None)` when it does not exist.
async fn inspect(client: &Client, id: &str) -> Result<Option<Inspected>, ClientError> {
    let inspected = tokio::time::timeout(Duration::from_secs(30), client.docker.inspect_container(id, None))
        .await
        .map_err(|_| ClientError::Timeout { what: format!("inspecting container {id}") })?;
    match inspected {
        Ok(response) => Ok(Inspected::from_response(response)),
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
        Err(e) => {
            Err(ClientError::Unreachable { endpoint: client.endpoint().to_string(), message: e.to_string() })
        }
    }
}

/// Why a container's log is read through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ThroughApi {
    reason: String,
    /// dockerd's containers directory, when mounting it would let warden
    /// read the file.
    mount: Option<PathBuf>,
}

/// The json-file log to read for `inspected`, or why its log is read
/// through the API. `failed`: reading its file failed earlier.
fn log_file(read_files: ReadFiles, inspected: &Inspected, failed: bool) -> Result<PathBuf, ThroughApi> {
    let api = |reason: String| ThroughApi { reason, mount: None };
    if read_files == ReadFiles::Never {
        return Err(api("docker.read_files is never".into()));
    }
    if inspected.log_driver.name != "json-file" {
        return Err(api(format!("its log driver is {}, not json-file", inspected.log_driver.name)));
    }
    if failed {
        return Err(api("reading its json-file log failed earlier in this run".into()));
    }
    let Some(path) = &inspected.log_path else {
        return Err(api("dockerd names no json-file log for it".into()));
    };
    match std::fs::File::open(path) {
        Ok(_) => Ok(path.clone()),
        Err(e) => Err(ThroughApi {
            reason: format!("cannot open {}: {e}", path.display()),
            // <containers dir>/<id>/<id>-json.log
            mount: path.parent().and_then(Path::parent).map(Path::to_path_buf),
        }),
    }
}

/// How to let warden read json-file logs from `dir`.
fn mount_hint(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "to read json-file logs from disk instead of through the Docker API (far less CPU for dockerd, and no \
         ceiling on lines per second), mount dockerd's containers directory into warden's container read-only \
         at the same path: -v {dir}:{dir}:ro"
    )
}

/// The first 12 characters of an id, as `docker ps` shows it.
pub fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn unix_now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn inspected(driver: &str, log_path: Option<PathBuf>) -> Inspected {
        Inspected {
            id: "abc".into(),
            name: "web".into(),
            image: "nginx".into(),
            labels: BTreeMap::new(),
            tty: false,
            running: true,
            published: Vec::new(),
            log_driver: LogDriver::new(driver, None),
            log_path,
        }
    }

    #[test]
    fn a_readable_json_file_log_is_read_from_disk_and_anything_else_through_the_api() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("abc/abc-json.log");
        std::fs::create_dir(dir.path().join("abc")).unwrap();
        std::fs::write(&log, "").unwrap();
        let readable = inspected("json-file", Some(log.clone()));
        assert_eq!(log_file(ReadFiles::Auto, &readable, false), Ok(log.clone()));

        let reason = |read_files, c: &Inspected, failed| log_file(read_files, c, failed).unwrap_err();
        assert_eq!(reason(ReadFiles::Never, &readable, false).reason, "docker.read_files is never");
        assert!(reason(ReadFiles::Auto, &readable, true).reason.contains("failed earlier"));
        let local = inspected("local", Some(log.clone()));
        assert_eq!(reason(ReadFiles::Auto, &local, false).reason, "its log driver is local, not json-file");
        assert_eq!(reason(ReadFiles::Auto, &inspected("json-file", None), false).mount, None);

        // Not mounted: the reason names the file, and the hint the directory.
        let elsewhere = dir.path().join("missing/containers/abc/abc-json.log");
        let unmounted = reason(ReadFiles::Auto, &inspected("json-file", Some(elsewhere.clone())), false);
        assert!(
            unmounted.reason.starts_with(&format!("cannot open {}: ", elsewhere.display())),
            "{unmounted:?}"
        );
        let containers = dir.path().join("missing/containers");
        assert_eq!(unmounted.mount.as_deref(), Some(containers.as_path()));
        let hint = mount_hint(&containers);
        let c = containers.display();
        assert!(hint.contains(&format!("-v {c}:{c}:ro")), "{hint}");
    }
}
