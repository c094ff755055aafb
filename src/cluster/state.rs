//! What the cluster's tasks share with the rest of the daemon: the merged
//! remote bans (written by the follower, read by `warden bans`) and the
//! health shown by `warden status`.
//!
//! Both sit behind mutexes held only briefly: the follower locks the merge
//! while it applies one batch, readers while they copy what they show.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::sync::{Mutex, MutexGuard};

use super::limits::Quarantined;
use super::merge::{Merge, RemoteBan};
use super::model::StreamId;
use crate::core::Timestamp;

/// One other host, as this one sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginHealth {
    /// The id of the last entry applied from its stream.
    pub cursor: Option<StreamId>,
    /// How long after Redis took it the last entry was applied.
    pub lag_ms: Option<u64>,
    /// Entries applied since the daemon started (duplicates and expired
    /// bans not counted).
    pub applied: u64,
}

/// The cluster's health.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// The follower's connection is up.
    pub following: bool,
    /// The last publish succeeded.
    pub publishing: bool,
    /// The last error of either task, until it recovers.
    pub error: Option<String>,
    pub epoch: Option<String>,
    /// Entries waiting to be published.
    pub outbox: u64,
    /// Remote entries refused by the limits since the daemon started.
    pub refused: u64,
    pub origins: BTreeMap<String, OriginHealth>,
    pub quarantined: Vec<(String, Quarantined)>,
}

/// `warden status`'s view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub host_id: String,
    /// The Redis URL, password hidden.
    pub redis: String,
    pub health: Health,
    /// Networks banned by other hosts and enforced here now.
    pub remote_bans: usize,
    /// Live bans per origin.
    pub bans_per_origin: BTreeMap<String, usize>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Shared {
    pub host_id: String,
    pub redis: String,
    merge: Mutex<Merge>,
    health: Mutex<Health>,
    /// The daemon dropped staged entries that were already in the outbox
    /// table (its queue to the publisher was full): the publisher reads
    /// the table back.
    pub outbox_skipped: AtomicBool,
}

impl Shared {
    pub fn new(host_id: String, redis: String, merge: Merge) -> Shared {
        Shared {
            host_id,
            redis,
            merge: Mutex::new(merge),
            health: Mutex::new(Health::default()),
            outbox_skipped: AtomicBool::new(false),
        }
    }

    /// The merge, for the follower to change.
    pub fn merge(&self) -> MutexGuard<'_, Merge> {
        // A panic while holding it leaves a merge that is still consistent
        // enough to read and to resync.
        self.merge.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Changes the health.
    pub fn health(&self, change: impl FnOnce(&mut Health)) {
        let mut health = self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        change(&mut health);
    }

    /// Every remote ban holding at `now`.
    pub fn remote_bans(&self, now: Timestamp) -> Vec<RemoteBan> {
        self.merge().bans(now)
    }

    pub fn status(&self, now: Timestamp) -> Status {
        let health = self.health.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let merge = self.merge();
        let bans_per_origin =
            health.origins.keys().map(|origin| (origin.clone(), merge.live_count(origin))).collect();
        Status {
            host_id: self.host_id.clone(),
            redis: self.redis.clone(),
            remote_bans: merge.banned_count(now),
            bans_per_origin,
            health,
        }
    }
}
