//! The cluster's share of the state file (see `crate::cluster`): what it
//! must not lose across a restart.
//!
//! - the **outbox**: entries this host decided, each with its sequence
//!   number, durable before they are published and kept until Redis has
//!   acknowledged them ([`Store::outbox_push`], [`Store::outbox`],
//!   [`Store::outbox_ack`]);
//! - per followed stream, the **cursor**: the id of the last entry applied;
//! - the **remote bans** applied from other hosts, and the **tombstones**
//!   (cluster-wide unbans), so a restart enforces them before Redis answers;
//! - small **meta** values (the next sequence number, the Redis epoch seen).
//!
//! The store does not read entries: they are opaque bytes the cluster
//! encodes. Cursors, remote bans and tombstones change together in one
//! [`ClusterChanges`] commit, so after a crash the bans never run ahead of
//! or behind the cursor they were read up to.

use ipnet::IpNet;
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::codec::{decode_net, net_key};
use super::error::ResultExt;
use super::schema::{CLUSTER_CURSORS, CLUSTER_META, CLUSTER_OUTBOX, CLUSTER_REMOTE, CLUSTER_TOMBSTONES};
use super::{MAX_PENDING_BATCHES, Store, StoreError};
use crate::core::Timestamp;

/// One ban replicated from another host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRecord {
    pub origin: String,
    pub net: IpNet,
    pub jail: String,
    /// `None` for a permanent ban.
    pub until: Option<Timestamp>,
    /// The entry as the cluster encoded it.
    pub data: Vec<u8>,
}

/// Changes to the cluster's state, committed atomically by
/// [`Store::commit_cluster`], in the order of the fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterChanges {
    /// Origins whose remote bans are all deleted first (a snapshot replaces
    /// them, or the origin was quarantined).
    pub cleared_origins: Vec<String>,
    /// Forget every remote ban, cursor and tombstone (Redis lost its data).
    pub clear_all: bool,
    /// Remote bans stored (replacing the same origin, network and jail).
    pub put_remote: Vec<RemoteRecord>,
    /// (origin, network, jail) deleted.
    pub removed_remote: Vec<(String, IpNet, String)>,
    /// (stream key, last id applied).
    pub cursors: Vec<(String, String)>,
    pub removed_cursors: Vec<String>,
    /// (network, time of its newest tombstone).
    pub tombstones: Vec<(IpNet, Timestamp)>,
    pub removed_tombstones: Vec<IpNet>,
    /// (name, value to store, or `None` to delete).
    pub meta: Vec<(String, Option<Vec<u8>>)>,
}

impl ClusterChanges {
    pub fn is_empty(&self) -> bool {
        *self == ClusterChanges::default()
    }
}

/// Everything [`Store::cluster_state`] reads back at startup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterSaved {
    pub cursors: Vec<(String, String)>,
    /// Remote bans still active at the time asked, by origin then network.
    pub remote: Vec<RemoteRecord>,
    pub tombstones: Vec<(IpNet, Timestamp)>,
    pub meta: Vec<(String, Vec<u8>)>,
}

impl Store {
    /// Appends `entries` ((sequence number, encoded entry), in increasing
    /// numbers) to the outbox, in one durable commit: once this returns, the
    /// entries will be published even after a crash.
    pub fn outbox_push(&self, entries: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        const DOING: &str = "queue cluster entries in";
        let txn = self.write(Durability::Immediate, DOING)?;
        self.queue_in(&txn, entries, DOING)?;
        self.commit_durable(txn, DOING)
    }

    /// Adds `entries` (in increasing numbers) to the outbox within `txn`,
    /// and raises the `next_seq` meta value past the last of them. That
    /// value only grows: commits made by different tasks may land in any
    /// order. Other changes share the commit this way (a ban, an unban), so
    /// replicating a decision costs no `fsync` of its own.
    pub(super) fn queue_in(
        &self,
        txn: &WriteTransaction,
        entries: &[(u64, Vec<u8>)],
        doing: &'static str,
    ) -> Result<(), StoreError> {
        let Some(&(last, _)) = entries.last() else { return Ok(()) };
        let mut outbox = txn.open_table(CLUSTER_OUTBOX).doing(&self.path, doing)?;
        for (seq, data) in entries {
            outbox.insert(*seq, data.as_slice()).doing(&self.path, doing)?;
        }
        let mut meta = txn.open_table(CLUSTER_META).doing(&self.path, doing)?;
        let stored = meta
            .get("next_seq")
            .doing(&self.path, doing)?
            .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
            .map_or(0, u64::from_be_bytes);
        let next_seq = (last + 1).max(stored);
        meta.insert("next_seq", next_seq.to_be_bytes().as_slice()).doing(&self.path, doing)?;
        Ok(())
    }

    /// Up to `limit` outbox entries, oldest first.
    pub fn outbox(&self, limit: usize) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        const DOING: &str = "read the cluster outbox in";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(CLUSTER_OUTBOX).doing(&self.path, DOING)?;
        let mut entries = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)?.take(limit) {
            let (seq, data) = entry.doing(&self.path, DOING)?;
            entries.push((seq.value(), data.value().to_vec()));
        }
        Ok(entries)
    }

    /// How many entries wait in the outbox.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        const DOING: &str = "read the cluster outbox in";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(CLUSTER_OUTBOX).doing(&self.path, DOING)?;
        table.len().doing(&self.path, DOING)
    }

    /// Deletes outbox entries up to and including `seq`, once Redis has them.
    /// Not durable at once: after a crash an entry may be published again,
    /// which its readers ignore (they apply each sequence number once).
    pub fn outbox_ack(&self, seq: u64) -> Result<(), StoreError> {
        const DOING: &str = "acknowledge cluster entries in";
        let (txn, durable) = self.write_batch(DOING)?;
        {
            let mut outbox = txn.open_table(CLUSTER_OUTBOX).doing(&self.path, DOING)?;
            outbox.retain_in(..=seq, |_, _| false).doing(&self.path, DOING)?;
        }
        self.commit_as(txn, durable, DOING)
    }

    /// Applies `changes` in one transaction; durable at once if `durable`,
    /// else made durable by the next durable commit (as batches are).
    pub fn commit_cluster(&self, changes: &ClusterChanges, durable: bool) -> Result<(), StoreError> {
        const DOING: &str = "store cluster state in";
        if changes.is_empty() {
            return Ok(());
        }
        let (txn, durable) = if durable {
            (self.write(Durability::Immediate, DOING)?, true)
        } else {
            self.write_batch(DOING)?
        };
        {
            let mut remote = txn.open_table(CLUSTER_REMOTE).doing(&self.path, DOING)?;
            let mut cursors = txn.open_table(CLUSTER_CURSORS).doing(&self.path, DOING)?;
            let mut tombstones = txn.open_table(CLUSTER_TOMBSTONES).doing(&self.path, DOING)?;
            let mut meta = txn.open_table(CLUSTER_META).doing(&self.path, DOING)?;
            if changes.clear_all {
                remote.retain(|_, _| false).doing(&self.path, DOING)?;
                cursors.retain(|_, _| false).doing(&self.path, DOING)?;
                tombstones.retain(|_, _| false).doing(&self.path, DOING)?;
            }
            for origin in &changes.cleared_origins {
                let start: (&str, &[u8], &str) = (origin.as_str(), &[], "");
                let mut keys: Vec<(Vec<u8>, String)> = Vec::new();
                for entry in remote.range(start..).doing(&self.path, DOING)? {
                    let (key, _) = entry.doing(&self.path, DOING)?;
                    let (key_origin, net, jail) = key.value();
                    if key_origin != origin.as_str() {
                        break;
                    }
                    keys.push((net.to_vec(), jail.to_string()));
                }
                for (net, jail) in &keys {
                    remote
                        .remove((origin.as_str(), net.as_slice(), jail.as_str()))
                        .doing(&self.path, DOING)?;
                }
            }
            for record in &changes.put_remote {
                let net = net_key(&record.net);
                let expiry = record.until.map_or(i64::MAX, Timestamp::as_millis);
                remote
                    .insert(
                        (record.origin.as_str(), net.as_slice(), record.jail.as_str()),
                        (expiry, record.data.as_slice()),
                    )
                    .doing(&self.path, DOING)?;
            }
            for (origin, net, jail) in &changes.removed_remote {
                let net = net_key(net);
                remote.remove((origin.as_str(), net.as_slice(), jail.as_str())).doing(&self.path, DOING)?;
            }
            for (stream, id) in &changes.cursors {
                cursors.insert(stream.as_str(), id.as_str()).doing(&self.path, DOING)?;
            }
            for stream in &changes.removed_cursors {
                cursors.remove(stream.as_str()).doing(&self.path, DOING)?;
            }
            for (net, at) in &changes.tombstones {
                tombstones.insert(net_key(net).as_slice(), at.as_millis()).doing(&self.path, DOING)?;
            }
            for net in &changes.removed_tombstones {
                tombstones.remove(net_key(net).as_slice()).doing(&self.path, DOING)?;
            }
            for (name, value) in &changes.meta {
                match value {
                    Some(value) => meta.insert(name.as_str(), value.as_slice()).doing(&self.path, DOING)?,
                    None => meta.remove(name.as_str()).doing(&self.path, DOING)?,
                };
            }
        }
        self.commit_as(txn, durable, DOING)
    }

    /// A transaction committed like a batch ([`Store::commit_batch`]): not
    /// durable, except every [`super::MAX_PENDING_BATCHES`]th; returns whether
    /// this one is.
    fn write_batch(&self, doing: &'static str) -> Result<(WriteTransaction, bool), StoreError> {
        let durable = self.pending_batches.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_PENDING_BATCHES;
        let durability = if durable { Durability::Immediate } else { Durability::None };
        Ok((self.write(durability, doing)?, durable))
    }

    fn commit_as(&self, txn: WriteTransaction, durable: bool, doing: &'static str) -> Result<(), StoreError> {
        if durable { self.commit_durable(txn, doing) } else { txn.commit().doing(&self.path, doing) }
    }

    /// The cluster's saved state; remote bans expired at `now` are left out.
    pub fn cluster_state(&self, now: Timestamp) -> Result<ClusterSaved, StoreError> {
        const DOING: &str = "read cluster state from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let mut saved = ClusterSaved::default();
        for entry in
            txn.open_table(CLUSTER_CURSORS).doing(&self.path, DOING)?.iter().doing(&self.path, DOING)?
        {
            let (stream, id) = entry.doing(&self.path, DOING)?;
            saved.cursors.push((stream.value().to_string(), id.value().to_string()));
        }
        for entry in
            txn.open_table(CLUSTER_REMOTE).doing(&self.path, DOING)?.iter().doing(&self.path, DOING)?
        {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (origin, net, jail) = key.value();
            let (expiry, data) = value.value();
            if expiry <= now.as_millis() {
                continue;
            }
            let net = decode_net(net).ok_or_else(|| self.bad_key("cluster_remote", net))?;
            saved.remote.push(RemoteRecord {
                origin: origin.to_string(),
                net,
                jail: jail.to_string(),
                until: (expiry != i64::MAX).then_some(Timestamp(expiry)),
                data: data.to_vec(),
            });
        }
        for entry in
            txn.open_table(CLUSTER_TOMBSTONES).doing(&self.path, DOING)?.iter().doing(&self.path, DOING)?
        {
            let (net, at) = entry.doing(&self.path, DOING)?;
            let net =
                decode_net(net.value()).ok_or_else(|| self.bad_key("cluster_tombstones", net.value()))?;
            saved.tombstones.push((net, Timestamp(at.value())));
        }
        for entry in txn.open_table(CLUSTER_META).doing(&self.path, DOING)?.iter().doing(&self.path, DOING)? {
            let (name, value) = entry.doing(&self.path, DOING)?;
            saved.meta.push((name.value().to_string(), value.value().to_vec()));
        }
        Ok(saved)
    }

    /// Deletes remote bans expired at `now` and tombstones decided before
    /// `tombstones_before`; returns how many records went. Not durable at
    /// once (a crash only brings back records that are skipped anyway).
    pub fn sweep_remote(&self, now: Timestamp, tombstones_before: Timestamp) -> Result<usize, StoreError> {
        const DOING: &str = "sweep expired remote bans from";
        let (txn, durable) = self.write_batch(DOING)?;
        let mut removed = 0;
        {
            let mut remote = txn.open_table(CLUSTER_REMOTE).doing(&self.path, DOING)?;
            remote
                .retain(|_, (expiry, _)| {
                    let keep = expiry > now.as_millis();
                    removed += usize::from(!keep);
                    keep
                })
                .doing(&self.path, DOING)?;
            let mut tombstones = txn.open_table(CLUSTER_TOMBSTONES).doing(&self.path, DOING)?;
            tombstones
                .retain(|_, at| {
                    let keep = at >= tombstones_before.as_millis();
                    removed += usize::from(!keep);
                    keep
                })
                .doing(&self.path, DOING)?;
        }
        self.commit_as(txn, durable, DOING)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        crate::core::parse_ip_or_net(s).unwrap()
    }

    fn record(origin: &str, n: &str, until: Option<i64>) -> RemoteRecord {
        RemoteRecord {
            origin: origin.into(),
            net: net(n),
            jail: "sshd".into(),
            until: until.map(Timestamp::from_secs),
            data: format!("{origin} {n}").into_bytes(),
        }
    }

    #[test]
    fn the_outbox_keeps_entries_in_order_until_acknowledged_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = Store::open_in(dir.path()).unwrap();
            store.outbox_push(&[(1, b"a".to_vec()), (2, b"b".to_vec())]).unwrap();
            store.outbox_push(&[(3, b"c".to_vec())]).unwrap();
            assert_eq!(store.outbox(2).unwrap(), [(1, b"a".to_vec()), (2, b"b".to_vec())]);
            store.outbox_ack(1).unwrap();
            assert_eq!(store.outbox_len().unwrap(), 2);
        }
        let store = Store::open_in(dir.path()).unwrap();
        assert_eq!(store.outbox(10).unwrap(), [(2, b"b".to_vec()), (3, b"c".to_vec())]);
        let meta = store.cluster_state(Timestamp(0)).unwrap().meta;
        assert_eq!(meta, [("next_seq".to_string(), 4u64.to_be_bytes().to_vec())]);
        store.outbox_ack(3).unwrap();
        assert!(store.outbox(10).unwrap().is_empty());
    }

    #[test]
    fn a_ban_and_its_outbox_entries_share_one_commit_and_the_next_number_only_grows() {
        use crate::core::{Ban, BanOrigin};
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let ban = Ban {
            net: net("192.0.2.7"),
            jail: "sshd".into(),
            origin: BanOrigin::Jail,
            at: Timestamp::from_secs(10),
            until: Some(Timestamp::from_secs(70)),
            count: 1,
            failures: 3,
        };
        let entries = [(5, b"ban".to_vec())];
        store.put_bans_queued(std::slice::from_ref(&ban), &entries).unwrap();
        assert_eq!(store.outbox(10).unwrap(), entries);
        assert_eq!(store.ban("sshd", net("192.0.2.7")).unwrap(), Some(ban.clone()));
        // A commit numbered earlier but landing later leaves the number as is.
        store.outbox_push(&[(4, b"older".to_vec())]).unwrap();
        let unban = [(6, b"unban".to_vec())];
        let removed = store.remove_bans_queued(&[("sshd".to_string(), ban.net)], &unban).unwrap();
        assert_eq!(removed, [ban]);
        assert_eq!(store.outbox(10).unwrap().iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [4, 5, 6]);
        let meta = store.cluster_state(Timestamp(0)).unwrap().meta;
        assert_eq!(meta, [("next_seq".to_string(), 7u64.to_be_bytes().to_vec())]);
        store.outbox_push(&[(3, b"oldest".to_vec())]).unwrap();
        let meta = store.cluster_state(Timestamp(0)).unwrap().meta;
        assert_eq!(meta, [("next_seq".to_string(), 7u64.to_be_bytes().to_vec())]);
    }

    #[test]
    fn changes_apply_in_order_and_expired_remote_bans_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).unwrap();
        let changes = ClusterChanges {
            put_remote: vec![
                record("mx1", "192.0.2.1", Some(100)),
                record("mx1", "192.0.2.2", None),
                record("mx2", "192.0.2.1", Some(10)),
            ],
            cursors: vec![("warden:{w}:ev:mx1".into(), "5-0".into())],
            tombstones: vec![(net("198.51.100.0/24"), Timestamp(7))],
            meta: vec![("epoch".into(), Some(b"e1".to_vec()))],
            ..ClusterChanges::default()
        };
        store.commit_cluster(&changes, true).unwrap();
        let saved = store.cluster_state(Timestamp::from_secs(50)).unwrap();
        assert_eq!(saved.remote, [record("mx1", "192.0.2.1", Some(100)), record("mx1", "192.0.2.2", None)]);
        assert_eq!(saved.cursors, [("warden:{w}:ev:mx1".to_string(), "5-0".to_string())]);
        assert_eq!(saved.tombstones, [(net("198.51.100.0/24"), Timestamp(7))]);

        // Clearing an origin happens before the puts of the same commit.
        let replace = ClusterChanges {
            cleared_origins: vec!["mx1".into()],
            put_remote: vec![record("mx1", "192.0.2.9", Some(100))],
            removed_remote: vec![("mx2".into(), net("192.0.2.1"), "sshd".into())],
            removed_tombstones: vec![net("198.51.100.0/24")],
            meta: vec![("epoch".into(), None)],
            ..ClusterChanges::default()
        };
        store.commit_cluster(&replace, false).unwrap();
        let saved = store.cluster_state(Timestamp(0)).unwrap();
        assert_eq!(saved.remote, [record("mx1", "192.0.2.9", Some(100))]);
        assert!(saved.tombstones.is_empty() && saved.meta.is_empty());

        store
            .commit_cluster(
                &ClusterChanges { tombstones: vec![(net("192.0.2.5"), Timestamp(9))], ..Default::default() },
                false,
            )
            .unwrap();
        assert_eq!(
            store.sweep_remote(Timestamp::from_secs(100), Timestamp(10)).unwrap(),
            2,
            "a ban and a tombstone"
        );
        assert!(store.cluster_state(Timestamp(0)).unwrap().tombstones.is_empty());
        store.commit_cluster(&ClusterChanges { clear_all: true, ..Default::default() }, true).unwrap();
        assert_eq!(store.cluster_state(Timestamp(0)).unwrap(), ClusterSaved::default());
    }

    #[test]
    fn a_version_2_file_gains_the_cluster_tables_and_keeps_its_bans() {
        use super::super::schema::{self, CLUSTER_META, CLUSTER_OUTBOX};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(super::super::STATE_FILE_NAME);
        let ban = crate::core::Ban {
            net: net("192.0.2.7"),
            jail: "sshd".into(),
            origin: crate::core::BanOrigin::Jail,
            at: Timestamp(1),
            until: None,
            count: 1,
            failures: 3,
        };
        Store::open(&path).unwrap().put_ban(&ban).unwrap();
        {
            // What a version-2 warden wrote: no cluster tables.
            let db = redb::Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            for table in
                ["cluster_meta", "cluster_outbox", "cluster_cursors", "cluster_remote", "cluster_tombstones"]
            {
                let handle =
                    txn.list_tables().unwrap().find(|t| redb::TableHandle::name(t) == table).unwrap();
                txn.delete_table(handle).unwrap();
            }
            txn.open_table(schema::META).unwrap().insert(schema::SCHEMA_VERSION_KEY, 2).unwrap();
            txn.commit().unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.bans().unwrap(), [ban]);
        store.outbox_push(&[(1, b"x".to_vec())]).unwrap();
        assert_eq!(store.outbox(1).unwrap().len(), 1);
        drop(store);
        let db = redb::Database::create(&path).unwrap();
        let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
        let version =
            txn.open_table(schema::META).unwrap().get(schema::SCHEMA_VERSION_KEY).unwrap().unwrap().value();
        assert_eq!(version, super::super::SCHEMA_VERSION);
        assert!(txn.open_table(CLUSTER_META).is_ok() && txn.open_table(CLUSTER_OUTBOX).is_ok());
    }
}
