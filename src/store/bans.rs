//! Active bans and ban history: the durable half of the store.
//!
//! The history of a network that is banned right now is its bans: their
//! `count` and `at` are what its history entry would hold. So storing a ban
//! writes one record, not two; the `ban_history` table receives a ban's
//! count and time when the ban leaves the `bans` table (removed, replaced,
//! swept), in the same transaction. Readers ([`Store::history`],
//! [`Store::history_of`]) see both tables merged, the larger count and the
//! later time winning, as raising a stored entry would have left them.
//!
//! **The journal.** Networks under attack are random, so a commit storing
//! a few hundred bans in `bans` rewrites a page of the table for nearly
//! every one of them, and the daemon commits a burst of bans every few
//! milliseconds under a flood. So [`Store::put_bans`] appends the bans to
//! `ban_journal` instead, keyed by a sequence number: a durable commit
//! rewrites only the journal's last pages. The journal moves into `bans`
//! in key order (each page rewritten once for many bans) when it reaches
//! [`JOURNAL_FOLD_AT`] bans, in the commit that stores the last of them,
//! and before anything reads or removes bans or history, so readers see
//! exactly what storing each ban in `bans` would have left there. A ban is
//! as durable in the journal as in `bans`: a crash loses neither.

use ipnet::IpNet;
use redb::{
    AccessGuard, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, StorageError, Table,
    WriteTransaction,
};

use super::codec::{KeyBytes, ban_count_at, decode_ban, decode_net, encode_ban, expiry_millis, hex, net_key};
use super::error::ResultExt;
use super::schema::{BAN_JOURNAL, BANS, BanKey, BanValue, HISTORY};
use super::{Store, StoreError};
use crate::core::{Ban, Timestamp};

/// How often a network has been banned, by any jail, and when last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub net: IpNet,
    pub count: u32,
    pub last: Timestamp,
}

/// Journal length at which storing bans also moves the journal into `bans`,
/// in the same commit. It bounds the journal (and the work of the first
/// reader after a flood), while one move of many bans rewrites each page of
/// `bans` once instead of once per commit.
pub(super) const JOURNAL_FOLD_AT: u64 = 16_384;

impl Store {
    /// Stores `ban` (replacing any ban of the same jail on the same network;
    /// other jails' bans on it stay), which raises the network's history to
    /// the ban's count and time, in one durable commit: once this returns,
    /// the ban survives a crash.
    pub fn put_ban(&self, ban: &Ban) -> Result<(), StoreError> {
        self.put_bans(std::slice::from_ref(ban))
    }

    /// Stores several bans in one durable commit (one `fsync`): the daemon
    /// stores what a burst of lines decided this way. See [`Store::put_ban`].
    pub fn put_bans(&self, bans: &[Ban]) -> Result<(), StoreError> {
        self.put_bans_queued(bans, &[])
    }

    /// [`Store::put_bans`], with the cluster's entries for these bans added
    /// to its outbox in the same commit (see [`Store::outbox_push`]).
    pub fn put_bans_queued(&self, bans: &[Ban], outbox: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
        const DOING: &str = "store a ban in";
        let txn = self.write(Durability::Immediate, DOING)?;
        self.queue_in(&txn, outbox, DOING)?;
        let journalled = {
            let mut journal = txn.open_table(BAN_JOURNAL).doing(&self.path, DOING)?;
            let next = journal.last().doing(&self.path, DOING)?.map_or(0, |(seq, _)| seq.value() + 1);
            for (seq, ban) in (next..).zip(bans) {
                let net = net_key(&ban.net);
                let record = encode_ban(ban);
                let value = (net.as_slice(), ban.jail.as_str(), expiry_millis(ban), record.as_slice());
                journal.insert(seq, value).doing(&self.path, DOING)?;
            }
            journal.len().doing(&self.path, DOING)?
        };
        if journalled >= JOURNAL_FOLD_AT {
            self.fold_journal_in(&txn)?;
        }
        self.commit_durable(txn, DOING)
    }

    /// Moves the journalled bans into `bans`, in a durable commit, if there
    /// are any: readers of `bans` call this first.
    fn fold_journal(&self) -> Result<(), StoreError> {
        const DOING: &str = "move journalled bans in";
        {
            let txn = self.db.begin_read().doing(&self.path, DOING)?;
            let journal = txn.open_table(BAN_JOURNAL).doing(&self.path, DOING)?;
            if journal.is_empty().doing(&self.path, DOING)? {
                return Ok(());
            }
        }
        let txn = self.write(Durability::Immediate, DOING)?;
        self.fold_journal_in(&txn)?;
        self.commit_durable(txn, DOING)
    }

    /// Moves the journalled bans into `bans` within `txn`, as storing each
    /// there would have: a ban replaces the same jail's ban on its network,
    /// and the replaced ban's count and time go to the history.
    pub(super) fn fold_journal_in(&self, txn: &WriteTransaction) -> Result<(), StoreError> {
        const DOING: &str = "move journalled bans in";
        let mut entries: Vec<(KeyBytes, String, i64, Vec<u8>)> = Vec::new();
        {
            let journal = txn.open_table(BAN_JOURNAL).doing(&self.path, DOING)?;
            for entry in journal.iter().doing(&self.path, DOING)? {
                let (_, value) = entry.doing(&self.path, DOING)?;
                let (net, jail, expiry, record) = value.value();
                let net = KeyBytes::from_slice(net).ok_or_else(|| self.bad_key("ban_journal", net))?;
                entries.push((net, jail.to_string(), expiry, record.to_vec()));
            }
        }
        if entries.is_empty() {
            return Ok(());
        }
        // Emptied whole: dropping the table frees its pages at once; it is
        // made again so that readers never meet a missing table.
        txn.delete_table(BAN_JOURNAL).doing(&self.path, DOING)?;
        txn.open_table(BAN_JOURNAL).doing(&self.path, DOING)?;
        // In key order, each page of `bans` is rewritten once. The sort is
        // stable: one jail's bans of one network keep the order they were
        // stored in, so the last one stays, as if each had been stored then.
        entries.sort_by(|a, b| (a.0.as_slice(), a.1.as_str()).cmp(&(b.0.as_slice(), b.1.as_str())));
        let mut table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let mut history = txn.open_table(HISTORY).doing(&self.path, DOING)?;
        for (net, jail, expiry, record) in &entries {
            let net = net.as_slice();
            let old =
                table.insert((net, jail.as_str()), (*expiry, record.as_slice())).doing(&self.path, DOING)?;
            // The replaced ban leaves the table: its history stays (a
            // replayed older ban must not make a recidivist look new).
            let old = match old {
                Some(old) => Some(self.count_at(net, jail, old.value().1)?),
                None => None,
            };
            let (count, at) = self.count_at(net, jail, record)?;
            if let Some((old_count, old_at)) =
                old.filter(|&(old_count, old_at)| old_count > count || old_at > at)
            {
                raise_history(&mut history, net, old_count, old_at).doing(&self.path, DOING)?;
            }
        }
        Ok(())
    }

    /// Removes `jail`'s ban on `net` in a durable commit and returns it, or
    /// `None` if there was none. Other jails' bans on `net` stay. An address
    /// stands for its /32 or /128; host bits are ignored. History is kept
    /// (written to `ban_history` now), so the next ban is longer.
    pub fn remove_ban(&self, jail: &str, net: impl Into<IpNet>) -> Result<Option<Ban>, StoreError> {
        let net = net.into();
        let mut removed = self.remove_bans(&[(jail.to_string(), net)])?;
        Ok(removed.pop())
    }

    /// Removes several (jail, network) bans in one durable commit (one
    /// `fsync`), for expiring many at once, and returns those that were
    /// there, in the order asked. See [`Store::remove_ban`].
    pub fn remove_bans(&self, bans: &[(String, IpNet)]) -> Result<Vec<Ban>, StoreError> {
        self.remove_bans_queued(bans, &[])
    }

    /// [`Store::remove_bans`], with the cluster's entries for these unbans
    /// added to its outbox in the same commit (see [`Store::outbox_push`]).
    pub fn remove_bans_queued(
        &self,
        bans: &[(String, IpNet)],
        outbox: &[(u64, Vec<u8>)],
    ) -> Result<Vec<Ban>, StoreError> {
        const DOING: &str = "remove a ban from";
        let txn = self.write(Durability::Immediate, DOING)?;
        self.queue_in(&txn, outbox, DOING)?;
        self.fold_journal_in(&txn)?;
        let mut removed = Vec::new();
        {
            let mut table = txn.open_table(BANS).doing(&self.path, DOING)?;
            let mut history = txn.open_table(HISTORY).doing(&self.path, DOING)?;
            for (jail, net) in bans {
                let net = net_key(net);
                let old = table.remove((net.as_slice(), jail.as_str())).doing(&self.path, DOING)?;
                if let Some(value) = old {
                    let ban = self.decode_ban(net.as_slice(), jail, value.value().1)?;
                    raise_history(&mut history, net.as_slice(), ban.count, ban.at)
                        .doing(&self.path, DOING)?;
                    removed.push(ban);
                }
            }
        }
        self.commit_durable(txn, DOING)?;
        Ok(removed)
    }

    /// `jail`'s stored ban on `net` (host bits ignored), expired or not.
    pub fn ban(&self, jail: &str, net: impl Into<IpNet>) -> Result<Option<Ban>, StoreError> {
        const DOING: &str = "read a ban from";
        self.fold_journal()?;
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let net = net_key(&net.into());
        let found = table.get((net.as_slice(), jail)).doing(&self.path, DOING)?;
        found.map(|v| self.decode_ban(net.as_slice(), jail, v.value().1)).transpose()
    }

    /// Every jail's stored ban on `net` (host bits ignored), expired or not,
    /// in jail order. Only this exact network: a ban on a wider network that
    /// contains it is not listed.
    pub fn bans_on(&self, net: impl Into<IpNet>) -> Result<Vec<Ban>, StoreError> {
        const DOING: &str = "read the bans in";
        self.fold_journal()?;
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let net = net_key(&net.into());
        let mut bans = Vec::new();
        for entry in bans_on_key(&table, net.as_slice()).doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (key_net, jail) = key.value();
            bans.push(self.decode_ban(key_net, jail, value.value().1)?);
        }
        Ok(bans)
    }

    /// Every stored ban of every jail, including expired ones not yet swept:
    /// IPv4 first, in address order, then by jail.
    pub fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        self.bans_where(|_| true)
    }

    /// The bans of every jail that still hold at `now`: what the firewall
    /// must enforce. A network banned by two jails is listed once per jail.
    pub fn active_bans(&self, now: Timestamp) -> Result<Vec<Ban>, StoreError> {
        // Same rule as Ban::is_active, on the stored expiry.
        self.bans_where(|expiry| expiry > now.as_millis())
    }

    /// The bans whose stored expiry passes `keep`; only those are decoded.
    fn bans_where(&self, keep: impl Fn(i64) -> bool) -> Result<Vec<Ban>, StoreError> {
        const DOING: &str = "read the bans in";
        self.fold_journal()?;
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let mut bans = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (net, jail) = key.value();
            let (expiry, json) = value.value();
            if keep(expiry) {
                bans.push(self.decode_ban(net, jail, json)?);
            }
        }
        Ok(bans)
    }

    /// Sets the stored history of `net` (host bits ignored) to exactly
    /// `count` bans, the last at `last`, in a durable commit. [`Store::put_ban`]
    /// already keeps history up to date; this is for corrections and imports.
    /// While `net` is banned, its bans' counts still show through
    /// [`Store::history_of`].
    pub fn record_history(
        &self,
        net: impl Into<IpNet>,
        count: u32,
        last: Timestamp,
    ) -> Result<(), StoreError> {
        const DOING: &str = "record ban history in";
        let txn = self.write(Durability::Immediate, DOING)?;
        {
            let mut table = txn.open_table(HISTORY).doing(&self.path, DOING)?;
            table
                .insert(net_key(&net.into()).as_slice(), (count, last.as_millis()))
                .doing(&self.path, DOING)?;
        }
        self.commit_durable(txn, DOING)
    }

    /// The ban history of `net` (host bits ignored), if it was ever banned
    /// and the entry has not been swept: its stored entry and its current
    /// bans, merged.
    pub fn history_of(&self, net: impl Into<IpNet>) -> Result<Option<HistoryEntry>, StoreError> {
        const DOING: &str = "read ban history from";
        self.fold_journal()?;
        let net = net.into();
        let key = net_key(&net);
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(HISTORY).doing(&self.path, DOING)?;
        let mut found = table.get(key.as_slice()).doing(&self.path, DOING)?.map(|v| {
            let (count, last) = v.value();
            (count, Timestamp(last))
        });
        let bans = txn.open_table(BANS).doing(&self.path, DOING)?;
        for entry in bans_on_key(&bans, key.as_slice()).doing(&self.path, DOING)? {
            let (k, value) = entry.doing(&self.path, DOING)?;
            let (k_net, jail) = k.value();
            found = Some(merge(found, self.count_at(k_net, jail, value.value().1)?));
        }
        Ok(found.map(|(count, last)| HistoryEntry { net: net.trunc(), count, last }))
    }

    /// All ban history, IPv4 first and in address order: the stored entries
    /// and the current bans, merged per network.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        const DOING: &str = "read ban history from";
        self.fold_journal()?;
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(HISTORY).doing(&self.path, DOING)?;
        let bans = txn.open_table(BANS).doing(&self.path, DOING)?;
        let stored = table.iter().doing(&self.path, DOING)?.map(|entry| {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let net = decode_net(key.value()).ok_or_else(|| self.bad_key("ban_history", key.value()))?;
            let (count, last) = value.value();
            Ok((net, (count, Timestamp(last))))
        });
        let banned = bans.iter().doing(&self.path, DOING)?.map(|entry| {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (net, jail) = key.value();
            let counted = self.count_at(net, jail, value.value().1)?;
            Ok((decode_net(net).ok_or_else(|| self.bad_key("bans", net))?, counted))
        });
        let mut entries: Vec<HistoryEntry> = Vec::new();
        for item in merge_by_network(stored, banned) {
            let (net, counted) = item?;
            match entries.last_mut() {
                Some(entry) if entry.net == net => {
                    (entry.count, entry.last) = merge(Some((entry.count, entry.last)), counted);
                }
                _ => entries.push(HistoryEntry { net, count: counted.0, last: counted.1 }),
            }
        }
        Ok(entries)
    }

    /// Decodes the ban stored under (`net`, `jail`).
    pub(super) fn decode_ban(&self, net: &[u8], jail: &str, value: &[u8]) -> Result<Ban, StoreError> {
        decode_ban(net, jail, value).map_err(|detail| self.bad_ban(net, jail, detail))
    }

    /// The `count` and `at` of the ban stored under (`net`, `jail`).
    pub(super) fn count_at(
        &self,
        net: &[u8],
        jail: &str,
        value: &[u8],
    ) -> Result<(u32, Timestamp), StoreError> {
        ban_count_at(value).map_err(|detail| self.bad_ban(net, jail, detail))
    }

    fn bad_ban(&self, net: &[u8], jail: &str, detail: String) -> StoreError {
        StoreError::Decode {
            path: self.path.clone(),
            table: "bans",
            key: format!("{} of jail {jail}", decode_net(net).map_or_else(|| hex(net), |n| n.to_string())),
            detail,
        }
    }

    pub(super) fn bad_key(&self, table: &'static str, key: &[u8]) -> StoreError {
        StoreError::Decode {
            path: self.path.clone(),
            table,
            key: hex(key),
            detail: "the key is not a valid address or network".into(),
        }
    }
}

/// The bans stored on the network whose key is `net`, in jail order. Keys
/// sort by network first, so they are one contiguous run from `(net, "")`.
pub(super) fn bans_on_key<'t>(
    table: &'t impl ReadableTable<BanKey, BanValue>,
    net: &'t [u8],
) -> Result<impl Iterator<Item = Result<BanEntry<'t>, StorageError>> + 't, StorageError> {
    let start: (&[u8], &str) = (net, "");
    // An error is passed on, not taken for the end of the run.
    Ok(table
        .range(start..)?
        .take_while(move |entry| entry.as_ref().map_or(true, |(key, _)| key.value().0 == net)))
}

/// One row of the bans table, as read.
type BanEntry<'t> = (AccessGuard<'t, BanKey>, AccessGuard<'t, BanValue>);

/// Two sequences sorted by network key, as one: both tables of the history
/// sort by it. An error is passed on as soon as it is met.
fn merge_by_network<T>(
    a: impl Iterator<Item = Result<(IpNet, T), StoreError>>,
    b: impl Iterator<Item = Result<(IpNet, T), StoreError>>,
) -> impl Iterator<Item = Result<(IpNet, T), StoreError>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || {
        let take_a = match (a.peek(), b.peek()) {
            (None, None) => return None,
            (Some(_), None) | (Some(Err(_)), _) => true,
            (None, Some(_)) | (_, Some(Err(_))) => false,
            (Some(Ok((x, _))), Some(Ok((y, _)))) => net_key(x).as_slice() <= net_key(y).as_slice(),
        };
        if take_a { a.next() } else { b.next() }
    })
}

/// The larger count and the later time of two history entries.
fn merge(a: Option<(u32, Timestamp)>, b: (u32, Timestamp)) -> (u32, Timestamp) {
    match a {
        Some((count, last)) => (count.max(b.0), last.max(b.1)),
        None => b,
    }
}

/// Raises a history entry to at least `count` bans and `at`, never lowering
/// either: replaying an old ban must not make a recidivist look new.
pub(super) fn raise_history(
    table: &mut Table<&[u8], (u32, i64)>,
    key: &[u8],
    count: u32,
    at: Timestamp,
) -> Result<(), redb::Error> {
    let old = table.get(key)?.map(|v| v.value());
    let (count, last) = match old {
        Some((old_count, old_last)) => (old_count.max(count), old_last.max(at.as_millis())),
        None => (count, at.as_millis()),
    };
    table.insert(key, (count, last))?;
    Ok(())
}
