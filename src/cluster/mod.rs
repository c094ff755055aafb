//! Ban replication across hosts through Redis or Valkey Streams.
//!
//! Each host publishes its own decisions to its own stream and bans hash
//! ([`model`] names the keys and the entry format), follows every other
//! host's stream, and [`merge`]s what they say into the bans it enforces,
//! within [`limits`] that keep a broken or compromised peer from doing harm.
//!
//! Two tokio tasks do the work:
//! - the [publisher](publish) takes this host's decisions from a bounded
//!   channel ([`ClusterHandle::offer`]), numbered and (normally) already
//!   durable in the [`outbox`], stored in the same commit as the ban they
//!   replicate ([`ClusterHandle::stage_with`]), and publishes them until
//!   Redis acknowledges them;
//! - the [follower](follow) reads every other host's stream and the control
//!   stream, and hands [`Effect`]s to the firewall through the function the
//!   daemon gives it.
//!
//! Redis being down stops neither local detection nor enforcement: the
//! outbox fills, remote bans already known stay enforced, both tasks
//! reconnect with capped backoff and carry on where they were.
//!
//! Layering: the daemon drives this module; it uses `core`, `config` and
//! `store`, and never the daemon.

pub mod connect;
pub mod follow;
pub mod limits;
pub mod merge;
pub mod model;
pub mod outbox;
pub mod publish;
pub mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use follow::ApplyFn;
pub use merge::{Effect, RemoteBan};
pub use outbox::{Replicate, Staged};
pub use state::Status;

use crate::config::{ClusterSettings, redact_url};
use crate::core::Timestamp;
use crate::store::{Store, StoreError};
use limits::Limits;
use merge::Merge;
use model::{StreamId, keys};
use outbox::Outbox;
use state::Shared;

/// Replicate batches the engine may have in flight to the publisher.
const DECISION_QUEUE: usize = 256;

/// Why the cluster cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Connect(#[from] connect::ConnectError),
    #[error("cannot read the cluster's state: {0}")]
    Store(#[from] StoreError),
}

/// The cluster, restored from the state file, before its tasks start.
pub struct Cluster {
    settings: ClusterSettings,
    client: redis::Client,
    store: Arc<Store>,
    shared: Arc<Shared>,
    outbox: Outbox,
    cursors: BTreeMap<String, StreamId>,
    ctl_cursor: StreamId,
    epoch: Option<String>,
    limits: Limits,
    snapshot_epochs: HashMap<String, String>,
}

impl Cluster {
    /// Reads the password and TLS files and restores what the state file
    /// holds: remote bans and tombstones still relevant at `now`, cursors,
    /// quarantines, the next sequence number.
    pub fn open(
        settings: ClusterSettings,
        store: Arc<Store>,
        now: Timestamp,
    ) -> Result<Cluster, ClusterError> {
        let client = connect::client(&settings)?;
        let saved = store.cluster_state(now)?;
        let mut merge = Merge::new(memory(&settings));
        let mut ignored = Vec::new();
        for (net, at) in &saved.tombstones {
            merge.tombstone(*net, *at, now, &mut ignored);
        }
        for record in &saved.remote {
            match model::Entry::decode(&record.data) {
                Ok(entry) => {
                    merge.apply(&entry, now, &mut ignored);
                }
                Err(e) => {
                    tracing::warn!(host = %record.origin, ip = %record.net, "dropping an unreadable stored remote ban: {e}")
                }
            }
        }
        let mut cursors = BTreeMap::new();
        let mut ctl_cursor = StreamId::ZERO;
        for (stream, id) in &saved.cursors {
            let Ok(id) = id.parse::<StreamId>() else { continue };
            if stream == keys::CONTROL {
                ctl_cursor = id;
            } else if let Some(origin) = stream.strip_prefix(&keys::stream("")) {
                cursors.insert(origin.to_string(), id);
            }
        }
        let mut limits = Limits::new(settings.remote_limits, Vec::new());
        let mut epoch = None;
        let mut snapshot_epochs = HashMap::new();
        for (name, value) in &saved.meta {
            if name == follow::EPOCH_META {
                epoch = String::from_utf8(value.clone()).ok();
            } else if let Some(origin) = name.strip_prefix(follow::SNAPSHOT_META) {
                if let Ok(epoch) = String::from_utf8(value.clone()) {
                    snapshot_epochs.insert(origin.to_string(), epoch);
                }
            } else if let Some(origin) = name.strip_prefix(follow::QUARANTINE_META)
                && let Some(quarantined) = follow::saved_quarantine(value)
            {
                limits.restore_quarantine(origin, quarantined);
            }
        }
        let outbox = Outbox::new(&settings.host_id, Outbox::saved_next_seq(&saved.meta));
        let shared = Arc::new(Shared::new(settings.host_id.clone(), redact_url(&settings.redis), merge));
        let quarantined = limits.quarantined(now);
        shared.health(|h| {
            h.epoch = epoch.clone();
            h.quarantined = quarantined;
            for (origin, cursor) in &cursors {
                h.origins.entry(origin.clone()).or_default().cursor = Some(*cursor);
            }
        });
        Ok(Cluster {
            settings,
            client,
            store,
            shared,
            outbox,
            cursors,
            ctl_cursor,
            epoch,
            limits,
            snapshot_epochs,
        })
    }

    /// Every remote ban to enforce now, as restored: the firewall installs
    /// them at startup, before Redis answers.
    pub fn restored(&self, now: Timestamp) -> Vec<RemoteBan> {
        self.shared.remote_bans(now)
    }

    /// Starts the publisher and the follower on the current tokio runtime.
    /// `protected`: networks no remote ban may cover (this host's addresses,
    /// the allowlists); `own_addrs`: this host's addresses, registered for
    /// the others to protect; `apply`: hands effects to the firewall.
    pub fn start(
        self,
        protected: Vec<IpNet>,
        own_addrs: Vec<IpAddr>,
        apply: ApplyFn,
        shutdown: CancellationToken,
    ) -> Result<(ClusterHandle, ClusterTasks), ClusterError> {
        let Cluster {
            settings,
            client,
            store,
            shared,
            outbox,
            cursors,
            ctl_cursor,
            epoch,
            limits,
            snapshot_epochs,
        } = self;
        let writer = connect::writer(&client).map_err(|e| connect::ConnectError::Client {
            url: redact_url(&settings.redis),
            detail: e.to_string(),
        })?;
        let (tx, rx) = mpsc::channel(DECISION_QUEUE);
        let publisher = publish::Publisher {
            shared: shared.clone(),
            store: store.clone(),
            conn: writer,
            outbox: outbox.clone(),
            own_addrs,
            ctl_retention: memory(&settings) + Duration::from_secs(24 * 3600),
            fresh: Vec::new(),
            backlog: true,
            acked: 0,
        };
        let follower = follow::Follower {
            shared: shared.clone(),
            store,
            client,
            limits,
            apply,
            protected,
            cursors,
            ctl_cursor,
            epoch,
            resync: BTreeSet::new(),
            peers: HashMap::new(),
            endpoint: Vec::new(),
            snapshot_epochs,
            memory: memory(&settings),
        };
        tracing::info!(host_id = %settings.host_id, redis = %shared.redis, "joining the cluster");
        let tasks = ClusterTasks {
            publisher: tokio::spawn(publisher.run(rx, shutdown.clone())),
            follower: tokio::spawn(follower.run(shutdown)),
        };
        Ok((ClusterHandle { decisions: tx, outbox, shared }, tasks))
    }
}

/// The cluster's running tasks; they stop when the shutdown token given to
/// [`Cluster::start`] is cancelled.
#[derive(Debug)]
pub struct ClusterTasks {
    publisher: tokio::task::JoinHandle<()>,
    follower: tokio::task::JoinHandle<()>,
}

impl ClusterTasks {
    /// Waits (at most a few seconds) until both tasks have stopped.
    pub async fn stopped(self) {
        let both = async {
            let _ = self.publisher.await;
            let _ = self.follower.await;
        };
        if tokio::time::timeout(Duration::from_secs(5), both).await.is_err() {
            tracing::warn!("the cluster's tasks did not stop within 5s");
        }
    }
}

/// How long tombstones and lifted bans are remembered: as long as any
/// remote ban may last (and at least a day).
fn memory(settings: &ClusterSettings) -> Duration {
    settings.remote_limits.max_until.max(Duration::from_secs(24 * 3600))
}

/// The daemon's end of the cluster.
#[derive(Debug, Clone)]
pub struct ClusterHandle {
    decisions: mpsc::Sender<Staged>,
    outbox: Outbox,
    shared: Arc<Shared>,
}

impl ClusterHandle {
    /// Numbers `decisions` and runs `change` with their outbox entries, for
    /// it to store them in the same commit as the change they replicate
    /// (see [`Outbox::stage_with`]). The staged entries then go to
    /// [`ClusterHandle::offer`], durable or not.
    pub fn stage_with<T>(
        &self,
        decisions: &[Replicate],
        now: Timestamp,
        change: impl FnOnce(&[(u64, Vec<u8>)]) -> Result<T, StoreError>,
    ) -> (Staged, Result<T, StoreError>) {
        self.outbox.stage_with(decisions, now, change)
    }

    /// Hands staged entries to the publisher without waiting; gives them
    /// back when its queue is full (the caller keeps them, in order, and
    /// offers them again).
    pub fn offer(&self, staged: Staged) -> Result<(), Staged> {
        if staged.entries.is_empty() {
            return Ok(());
        }
        self.decisions.try_send(staged).map_err(|e| match e {
            mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
        })
    }

    /// Tells the publisher that durable entries were dropped before it saw
    /// them: it reads them back from the outbox table.
    pub fn dropped_durable(&self) {
        self.shared.outbox_skipped.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn host_id(&self) -> &str {
        &self.shared.host_id
    }

    /// Every remote ban holding at `now`, by network.
    pub fn remote_bans(&self, now: Timestamp) -> Vec<RemoteBan> {
        self.shared.remote_bans(now)
    }

    pub fn status(&self, now: Timestamp) -> Status {
        self.shared.status(now)
    }
}
