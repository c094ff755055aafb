//! Sweeping: deleting what has expired, so the state file stays as small as
//! what is still relevant.

use std::time::Duration;

use redb::{Durability, Table};

use super::FailureRecord;
use super::bans::{bans_on_key, raise_history};
use super::codec::{addr_key, encode_times, net_key};
use super::error::ResultExt;
use super::schema::{BANS, BanKey, BanValue, FAILURES, HISTORY};
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
    /// Failure times older than the horizon, dropped.
    pub failure_times_dropped: usize,
    /// (jail, address) records left without times, deleted.
    pub failure_records_removed: usize,
    /// History entries forgotten.
    pub history_removed: usize,
}

impl Store {
    /// Deletes, in one durable commit, the bans of every jail expired at
    /// `now`, and failure times and history older than `retention` allows.
    /// Call [`Store::compact`] afterwards, now and then, to shrink the file.
    pub fn sweep(&self, now: Timestamp, retention: Retention) -> Result<SweepStats, StoreError> {
        const DOING: &str = "sweep expired records from";
        let mut stats = SweepStats::default();
        // retain() predicates cannot return errors: the first one is kept
        // here (its record kept too) and returned after the pass.
        let mut failed: Option<StoreError> = None;
        let txn = self.write(Durability::Immediate, DOING)?;
        self.fold_journal_in(&txn)?;
        {
            let mut bans = txn.open_table(BANS).doing(&self.path, DOING)?;
            bans.retain(|(net, jail), (expiry, json)| {
                // Same rule as Ban::is_active, on the stored expiry.
                if expiry > now.as_millis() {
                    return true;
                }
                match self.decode_ban(net, jail, json) {
                    Ok(ban) => {
                        stats.expired_bans.push(ban);
                        false
                    }
                    Err(e) => {
                        failed = failed.take().or(Some(e));
                        true
                    }
                }
            })
            .doing(&self.path, DOING)?;

            let cutoff = now.saturating_sub(retention.history).as_millis();
            let mut history = txn.open_table(HISTORY).doing(&self.path, DOING)?;
            // A banned network's history was its bans (see `bans.rs`).
            for ban in &stats.expired_bans {
                let key = net_key(&ban.net);
                raise_history(&mut history, key.as_slice(), ban.count, ban.at).doing(&self.path, DOING)?;
            }
            history
                .retain(|key, (_, last)| {
                    // A network banned right now, by any jail, keeps its
                    // history whatever its age: a permanent ban must not
                    // reset the count.
                    let keep = last >= cutoff
                        || is_banned(&bans, key).unwrap_or_else(|e| {
                            failed = failed.take().or(Some(StoreError::from_redb(&self.path, DOING, e)));
                            true
                        });
                    stats.history_removed += usize::from(!keep);
                    keep
                })
                .doing(&self.path, DOING)?;

            let cutoff = now.saturating_sub(retention.failures);
            let mut failures = txn.open_table(FAILURES).doing(&self.path, DOING)?;
            // Records with some times left are rewritten after the pass.
            let mut trimmed: Vec<FailureRecord> = Vec::new();
            failures
                .retain(|(jail, addr), times| {
                    let record = match self.decode_failure(jail, addr, times) {
                        Ok(record) => record,
                        Err(e) => {
                            failed = failed.take().or(Some(e));
                            return true;
                        }
                    };
                    let kept: Vec<Timestamp> = record.times.iter().copied().filter(|t| *t > cutoff).collect();
                    stats.failure_times_dropped += record.times.len() - kept.len();
                    if kept.is_empty() {
                        stats.failure_records_removed += 1;
                        return false;
                    }
                    if kept.len() < record.times.len() {
                        trimmed.push(FailureRecord { times: kept, ..record });
                    }
                    true
                })
                .doing(&self.path, DOING)?;
            for record in &trimmed {
                let addr = addr_key(record.addr);
                let key = (record.jail.as_str(), addr.as_slice());
                failures.insert(key, encode_times(&record.times).as_slice()).doing(&self.path, DOING)?;
            }
        }
        if let Some(e) = failed {
            // Dropping the transaction aborts it: nothing is half-swept.
            return Err(e);
        }
        self.commit_durable(txn, DOING)?;
        Ok(stats)
    }
}

/// Whether any jail has a ban on the network whose key is `net`.
fn is_banned(bans: &Table<BanKey, BanValue>, net: &[u8]) -> Result<bool, redb::StorageError> {
    Ok(bans_on_key(bans, net)?.next().transpose()?.is_some())
}
