//! The tables of the state file and its schema version.
//!
//! Bump [`SCHEMA_VERSION`] whenever a table's name, key or value layout changes
//! in a way an older warden would misread, and teach [`check_or_init`] to
//! migrate from the previous version. A warden refuses a file whose version is
//! newer than its own rather than guess at it.
//!
//! History of versions:
//!
//! 1. bans keyed by network alone, so two jails banning one network shared a
//!    record: the later ban replaced the earlier, and removing one removed
//!    both.
//! 2. bans keyed by (network, jail): each jail's ban is its own record.
//!    [`check_or_init`] migrates a version-1 file in place, re-keying each
//!    ban by the jail it names.
//! 3. the cluster's tables (`cluster_*`, see `cluster.rs`): the outbox of
//!    entries to publish, stream cursors, bans and tombstones replicated
//!    from other hosts, and the cluster's own small values. Nothing else
//!    changed, so [`check_or_init`] migrates a version-2 file by creating
//!    them; a version-2 warden refuses a version-3 file as newer.
//! 4. ban values are a compact binary record instead of JSON (see
//!    `codec.rs`; JSON is still read), and storing a ban no longer writes
//!    its network's `ban_history` entry: a banned network's history is its
//!    bans, and the entry is written when a ban leaves the table. A
//!    version-3 file needs no change ([`check_or_init`] only stamps it); a
//!    version-3 warden would misread the new records, so it refuses a
//!    version-4 file as newer.
//! 5. the ban journal (`ban_journal`, see `bans.rs`): a stored ban is
//!    appended there first and moved into `bans` later, many at once. Older
//!    files need only the new table, created below; a version-4 warden
//!    would not see the bans still in the journal, so it refuses a
//!    version-5 file as newer.

use redb::{ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::StoreError;
use super::codec::{decode_ban_json, decode_net, hex};
use super::error::ResultExt;

/// The layout version this warden writes and understands.
pub const SCHEMA_VERSION: u64 = 5;

/// `"schema_version"` → [`SCHEMA_VERSION`] of the file.
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub(crate) const SCHEMA_VERSION_KEY: &str = "schema_version";

/// (network key ([`super::codec::net_key`]), jail) → (expiry in ms,
/// `i64::MAX` when permanent; [`crate::core::Ban`] record, see
/// [`super::codec::encode_ban`]). The expiry lets a
/// sweep find expired bans without decoding every one. Network first, so the
/// bans on one network are one contiguous run and listings are in address
/// order.
pub(crate) const BANS: TableDefinition<BanKey, BanValue> = TableDefinition::new("bans");
/// (network key, jail): the key of [`BANS`].
pub(crate) type BanKey = (&'static [u8], &'static str);
/// (expiry in ms, ban record): the value of [`BANS`].
pub(crate) type BanValue = (i64, &'static [u8]);

/// Sequence number → (network key, jail, expiry in ms, ban record): bans
/// stored but not yet moved into [`BANS`], in the order they were stored.
/// Appending at the end of a table rewrites only its last pages, where an
/// insert into [`BANS`] at a random network rewrites a page of its own, so
/// a durable commit of many bans stays small (see `bans.rs`).
pub(crate) const BAN_JOURNAL: TableDefinition<u64, JournalValue> = TableDefinition::new("ban_journal");
/// (network key, jail, expiry in ms, ban record): the value of [`BAN_JOURNAL`].
pub(crate) type JournalValue = (&'static [u8], &'static str, i64, &'static [u8]);

/// The version-1 layout of [`BANS`]: network key → (expiry, JSON ban).
pub(crate) const BANS_V1: TableDefinition<&[u8], BanValue> = TableDefinition::new("bans");

/// Network key → (ban count, last ban time in ms), shared by all jails:
/// the history of bans no longer in [`BANS`] (see `bans.rs`).
pub(crate) const HISTORY: TableDefinition<&[u8], (u32, i64)> = TableDefinition::new("ban_history");

/// (jail, address key) → packed failure times ([`super::codec::encode_times`]).
pub(crate) const FAILURES: TableDefinition<(&str, &[u8]), &[u8]> = TableDefinition::new("failures");

/// Opaque source id → opaque position chosen by the source.
pub(crate) const CURSORS: TableDefinition<&str, &[u8]> = TableDefinition::new("cursors");

/// The cluster's small values: the next outbox sequence number, the Redis
/// epoch last seen, quarantines. Name → opaque bytes chosen by the cluster.
pub(crate) const CLUSTER_META: TableDefinition<&str, &[u8]> = TableDefinition::new("cluster_meta");

/// Sequence number → encoded entry waiting to be published (and acknowledged).
pub(crate) const CLUSTER_OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("cluster_outbox");

/// Stream key → the id of the last entry applied from it.
pub(crate) const CLUSTER_CURSORS: TableDefinition<&str, &str> = TableDefinition::new("cluster_cursors");

/// (origin host, network key, jail) → (expiry in ms, `i64::MAX` when
/// permanent; encoded entry): the bans replicated from other hosts.
pub(crate) const CLUSTER_REMOTE: TableDefinition<RemoteKey, BanValue> =
    TableDefinition::new("cluster_remote");
/// (origin host, network key, jail): the key of [`CLUSTER_REMOTE`].
pub(crate) type RemoteKey = (&'static str, &'static [u8], &'static str);

/// Network key → time (ms) of the newest cluster-wide unban (tombstone) of it.
pub(crate) const CLUSTER_TOMBSTONES: TableDefinition<&[u8], i64> = TableDefinition::new("cluster_tombstones");

/// Checks the schema version of an open file, or stamps a new file with ours,
/// and makes sure every table exists so readers never meet a missing one.
pub(crate) fn check_or_init(txn: &WriteTransaction, path: &std::path::Path) -> Result<(), StoreError> {
    let ours = [
        "meta",
        "bans",
        "ban_journal",
        "ban_history",
        "failures",
        "cursors",
        "cluster_meta",
        "cluster_outbox",
        "cluster_cursors",
        "cluster_remote",
        "cluster_tombstones",
    ];
    const DOING: &str = "check the schema of";
    let foreign: Vec<String> = txn
        .list_tables()
        .doing(path, DOING)?
        .map(|t| t.name().to_string())
        .filter(|name| !ours.contains(&name.as_str()))
        .collect();
    if !foreign.is_empty() {
        return Err(StoreError::NotWardenState {
            path: path.to_path_buf(),
            detail: format!("it holds tables warden does not use: {}", foreign.join(", ")),
        });
    }
    let has_tables = txn.list_tables().doing(path, DOING)?.next().is_some();

    let mut meta = txn.open_table(META).doing(path, DOING)?;
    let found = meta.get(SCHEMA_VERSION_KEY).doing(path, DOING)?.map(|v| v.value());
    match found {
        None if has_tables => {
            return Err(StoreError::NotWardenState {
                path: path.to_path_buf(),
                detail: "it has tables but no schema version".into(),
            });
        }
        None => {
            meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).doing(path, DOING)?;
        }
        Some(found) if found > SCHEMA_VERSION => {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(SCHEMA_VERSION) => {}
        Some(1) => {
            migrate_bans_from_v1(txn, path)?;
            // Versions 3 and 5 only add tables, created below, and 4
            // reads what version 2 wrote.
            meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).doing(path, DOING)?;
        }
        Some(2..=4) => {
            // Versions 3 and 5 only add tables, created below; version 4
            // reads what version 3 wrote.
            meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION).doing(path, DOING)?;
        }
        Some(found) => {
            // Version 1 is the first; nothing older was ever written.
            return Err(StoreError::NotWardenState {
                path: path.to_path_buf(),
                detail: format!("unknown schema version {found}"),
            });
        }
    }
    drop(meta);

    txn.open_table(BANS).doing(path, DOING)?;
    txn.open_table(BAN_JOURNAL).doing(path, DOING)?;
    txn.open_table(HISTORY).doing(path, DOING)?;
    txn.open_table(FAILURES).doing(path, DOING)?;
    txn.open_table(CURSORS).doing(path, DOING)?;
    txn.open_table(CLUSTER_META).doing(path, DOING)?;
    txn.open_table(CLUSTER_OUTBOX).doing(path, DOING)?;
    txn.open_table(CLUSTER_CURSORS).doing(path, DOING)?;
    txn.open_table(CLUSTER_REMOTE).doing(path, DOING)?;
    txn.open_table(CLUSTER_TOMBSTONES).doing(path, DOING)?;
    Ok(())
}

/// Re-keys every version-1 ban by (network, the jail its record names). Runs
/// in the caller's transaction, so a crash or an error leaves the file as it
/// was, still version 1.
fn migrate_bans_from_v1(txn: &WriteTransaction, path: &std::path::Path) -> Result<(), StoreError> {
    const DOING: &str = "migrate the bans (schema version 1 to 2) of";
    let mut old_bans: Vec<(Vec<u8>, i64, Vec<u8>)> = Vec::new();
    {
        let old = txn.open_table(BANS_V1).doing(path, DOING)?;
        for entry in old.iter().doing(path, DOING)? {
            let (key, value) = entry.doing(path, DOING)?;
            let (expiry, json) = value.value();
            old_bans.push((key.value().to_vec(), expiry, json.to_vec()));
        }
    }
    txn.delete_table(BANS_V1).doing(path, DOING)?;
    let mut bans = txn.open_table(BANS).doing(path, DOING)?;
    for (net, expiry, json) in &old_bans {
        let ban = decode_ban_json(json).map_err(|e| StoreError::Decode {
            path: path.to_path_buf(),
            table: "bans",
            key: decode_net(net).map_or_else(|| hex(net), |n| n.to_string()),
            detail: format!("{e} (while migrating from schema version 1)"),
        })?;
        bans.insert((net.as_slice(), ban.jail.as_str()), (*expiry, json.as_slice())).doing(path, DOING)?;
    }
    Ok(())
}
