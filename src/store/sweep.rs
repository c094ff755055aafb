//! Sweeping: deleting what has expired, so the state file stays as small as
//! what is still relevant.

use std::time::Duration;

use redb::{Durability, ReadableTable};

use super::codec::encode_times;
use super::error::ResultExt;
use super::schema::{BANS, FAILURES, HISTORY};
use super::{Store, StoreError};
use crate::core::{Ban, Timestamp};

/// How long swept records are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Failure times older than this are dropped: the longest `findtime` of
    /// any jail, since no window looks further back.
    pub failures: Duration,
    /// History of a network not banned for this long is forgotten, unless it
    /// is banned now; fail2ban's `dbpurgeage` (default 1 day there).
    pub history: Duration,
}

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepStats {
    /// Bans that had expired, now deleted.
    pub expired_bans: Vec<Ban>,
    /// Failure times dropped, and (jail, address) records left empty and deleted.
    pub failure_times_dropped: usize,
    pub failure_records_removed: usize,
    /// History entries forgotten.
    pub history_removed: usize,
}

impl Store {
    /// Deletes, in one durable commit, the bans expired at `now`, failure
    /// times and history older than `retention` allows. Call
    /// [`Store::compact`] afterwards, now and then, to shrink the file.
    pub fn sweep(&self, now: Timestamp, retention: Retention) -> Result<SweepStats, StoreError> {
        const DOING: &str = "sweep expired records from";
        let mut stats = SweepStats::default();
        let txn = self.write(Durability::Immediate, DOING)?;
        {
            let mut bans = txn.open_table(BANS).doing(&self.path, DOING)?;
            let mut expired_keys = Vec::new();
            for entry in bans.iter().doing(&self.path, DOING)? {
                let (key, value) = entry.doing(&self.path, DOING)?;
                let ban = self.decode_ban(key.value(), value.value())?;
                if !ban.is_active(now) {
                    expired_keys.push(key.value().to_vec());
                    stats.expired_bans.push(ban);
                }
            }
            for key in &expired_keys {
                bans.remove(key.as_slice()).doing(&self.path, DOING)?;
            }

            let cutoff = now.saturating_sub(retention.history).as_millis();
            let mut history = txn.open_table(HISTORY).doing(&self.path, DOING)?;
            let mut forgotten = Vec::new();
            for entry in history.iter().doing(&self.path, DOING)? {
                let (key, value) = entry.doing(&self.path, DOING)?;
                let (_, last) = value.value();
                // A network banned right now keeps its history whatever its
                // age: a permanent ban must not reset the recidivist count.
                if last < cutoff && bans.get(key.value()).doing(&self.path, DOING)?.is_none() {
                    forgotten.push(key.value().to_vec());
                }
            }
            for key in &forgotten {
                history.remove(key.as_slice()).doing(&self.path, DOING)?;
            }
            stats.history_removed = forgotten.len();

            let cutoff = now.saturating_sub(retention.failures);
            let mut failures = txn.open_table(FAILURES).doing(&self.path, DOING)?;
            // (jail, address key, times still inside the horizon)
            let mut changed: Vec<(String, Vec<u8>, Vec<Timestamp>)> = Vec::new();
            for entry in failures.iter().doing(&self.path, DOING)? {
                let (key, value) = entry.doing(&self.path, DOING)?;
                let (jail, addr) = key.value();
                let times = self.decode_failure(jail, addr, value.value())?.times;
                let kept: Vec<Timestamp> = times.iter().copied().filter(|t| *t > cutoff).collect();
                if kept.len() != times.len() {
                    stats.failure_times_dropped += times.len() - kept.len();
                    changed.push((jail.to_string(), addr.to_vec(), kept));
                }
            }
            for (jail, addr, kept) in &changed {
                let key = (jail.as_str(), addr.as_slice());
                if kept.is_empty() {
                    failures.remove(key).doing(&self.path, DOING)?;
                    stats.failure_records_removed += 1;
                } else {
                    failures.insert(key, encode_times(kept).as_slice()).doing(&self.path, DOING)?;
                }
            }
        }
        self.commit_durable(txn, DOING)?;
        Ok(stats)
    }
}
