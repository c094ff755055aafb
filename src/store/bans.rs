//! Active bans and ban history: the durable half of the store.

use ipnet::IpNet;
use redb::{Durability, ReadableDatabase, ReadableTable, Table};

use super::codec::{decode_ban, decode_net, encode_ban, expiry_millis, hex, net_key};
use super::error::ResultExt;
use super::schema::{BANS, HISTORY};
use super::{Store, StoreError};
use crate::core::{Ban, Timestamp};

/// How often a network has been banned, by any jail, and when last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    pub net: IpNet,
    pub count: u32,
    pub last: Timestamp,
}

impl Store {
    /// Stores `ban` (replacing any ban on the same network) and raises the
    /// network's history to the ban's count and time, in one durable commit:
    /// once this returns, the ban survives a crash.
    pub fn put_ban(&self, ban: &Ban) -> Result<(), StoreError> {
        self.put_bans(std::slice::from_ref(ban))
    }

    /// Stores several bans in one durable commit (one `fsync`); for restoring
    /// or importing many at once. See [`Store::put_ban`].
    pub fn put_bans(&self, bans: &[Ban]) -> Result<(), StoreError> {
        const DOING: &str = "store a ban in";
        let txn = self.write(Durability::Immediate, DOING)?;
        {
            let mut table = txn.open_table(BANS).doing(&self.path, DOING)?;
            let mut history = txn.open_table(HISTORY).doing(&self.path, DOING)?;
            for ban in bans {
                let key = net_key(&ban.net);
                let json = encode_ban(ban);
                table
                    .insert(key.as_slice(), (expiry_millis(ban), json.as_slice()))
                    .doing(&self.path, DOING)?;
                raise_history(&mut history, key.as_slice(), ban.count, ban.at).doing(&self.path, DOING)?;
            }
        }
        self.commit_durable(txn, DOING)
    }

    /// Removes the ban on `net` in a durable commit and returns it, or `None`
    /// if there was none. An address stands for its /32 or /128; host bits
    /// are ignored. History is kept, so the next ban is longer.
    pub fn remove_ban(&self, net: impl Into<IpNet>) -> Result<Option<Ban>, StoreError> {
        const DOING: &str = "remove a ban from";
        let txn = self.write(Durability::Immediate, DOING)?;
        let key = net_key(&net.into());
        let removed = {
            let mut table = txn.open_table(BANS).doing(&self.path, DOING)?;
            let old = table.remove(key.as_slice()).doing(&self.path, DOING)?;
            match old {
                Some(value) => Some(self.decode_ban(key.as_slice(), value.value().1)?),
                None => None,
            }
        };
        self.commit_durable(txn, DOING)?;
        Ok(removed)
    }

    /// The stored ban on `net` (host bits ignored), expired or not.
    pub fn ban(&self, net: impl Into<IpNet>) -> Result<Option<Ban>, StoreError> {
        const DOING: &str = "read a ban from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let key = net_key(&net.into());
        let found = table.get(key.as_slice()).doing(&self.path, DOING)?;
        found.map(|v| self.decode_ban(key.as_slice(), v.value().1)).transpose()
    }

    /// Every stored ban, including expired ones not yet swept, IPv4 first and
    /// in address order.
    pub fn bans(&self) -> Result<Vec<Ban>, StoreError> {
        self.bans_where(|_| true)
    }

    /// The bans that still hold at `now`: what the firewall must enforce.
    pub fn active_bans(&self, now: Timestamp) -> Result<Vec<Ban>, StoreError> {
        // Same rule as Ban::is_active, on the stored expiry.
        self.bans_where(|expiry| expiry > now.as_millis())
    }

    /// The bans whose stored expiry passes `keep`; only those are decoded.
    fn bans_where(&self, keep: impl Fn(i64) -> bool) -> Result<Vec<Ban>, StoreError> {
        const DOING: &str = "read the bans in";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(BANS).doing(&self.path, DOING)?;
        let mut bans = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (expiry, json) = value.value();
            if keep(expiry) {
                bans.push(self.decode_ban(key.value(), json)?);
            }
        }
        Ok(bans)
    }

    /// Sets the history of `net` (host bits ignored) to exactly `count` bans,
    /// the last at `last`, in a durable commit. [`Store::put_ban`] already
    /// keeps history up to date; this is for corrections and imports.
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
    /// and the entry has not been swept.
    pub fn history_of(&self, net: impl Into<IpNet>) -> Result<Option<HistoryEntry>, StoreError> {
        const DOING: &str = "read ban history from";
        let net = net.into();
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(HISTORY).doing(&self.path, DOING)?;
        let found = table.get(net_key(&net).as_slice()).doing(&self.path, DOING)?;
        Ok(found.map(|v| {
            let (count, last) = v.value();
            HistoryEntry { net: net.trunc(), count, last: Timestamp(last) }
        }))
    }

    /// All ban history, IPv4 first and in address order.
    pub fn history(&self) -> Result<Vec<HistoryEntry>, StoreError> {
        const DOING: &str = "read ban history from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(HISTORY).doing(&self.path, DOING)?;
        let mut entries = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let net = decode_net(key.value()).ok_or_else(|| self.bad_key("ban_history", key.value()))?;
            let (count, last) = value.value();
            entries.push(HistoryEntry { net, count, last: Timestamp(last) });
        }
        Ok(entries)
    }

    pub(super) fn decode_ban(&self, key: &[u8], value: &[u8]) -> Result<Ban, StoreError> {
        decode_ban(value).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            table: "bans",
            key: decode_net(key).map_or_else(|| hex(key), |n| n.to_string()),
            detail: e.to_string(),
        })
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

/// Raises a history entry to at least `count` bans and `at`, never lowering
/// either: replaying an old ban must not make a recidivist look new.
fn raise_history(
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
