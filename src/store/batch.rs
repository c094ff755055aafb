//! Recent failures and source cursors: the batched, cheaply committed half of
//! the store. See the module docs of [`super`] for what a crash may lose.

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use redb::{Durability, ReadableDatabase, ReadableTable};

use super::codec::{KeyBytes, addr_key, decode_addr, decode_times, encode_times};
use super::error::ResultExt;
use super::schema::{CURSORS, FAILURES};
use super::{MAX_PENDING_BATCHES, Store, StoreError};
use crate::core::Timestamp;

/// The failure times a jail currently remembers for one address. Storing a
/// record replaces what was stored for that jail and address; an empty `times`
/// deletes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureRecord {
    pub jail: String,
    pub addr: IpAddr,
    pub times: Vec<Timestamp>,
}

/// Failures and cursors to commit together, so that a cursor never becomes
/// durable without the failures read up to it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    pub failures: Vec<FailureRecord>,
    /// (source id, position): replaces the source's cursor.
    pub cursors: Vec<(String, Vec<u8>)>,
    /// Sources whose cursors are no longer needed (a container gone for good).
    pub removed_cursors: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty() && self.cursors.is_empty() && self.removed_cursors.is_empty()
    }
}

impl Store {
    /// Commits `batch` atomically but not durably (see the module docs):
    /// after a crash, either all of it or none of it is there.
    pub fn commit_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        const DOING: &str = "store failures and cursors in";
        if batch.is_empty() {
            return Ok(());
        }
        let durable = self.pending_batches.fetch_add(1, Ordering::Relaxed) + 1 >= MAX_PENDING_BATCHES;
        let durability = if durable { Durability::Immediate } else { Durability::None };
        let txn = self.write(durability, DOING)?;
        {
            let mut failures = txn.open_table(FAILURES).doing(&self.path, DOING)?;
            // In key order, each page of the table is read and rewritten once
            // per batch; in the order addresses came, a batch touching most
            // of a table larger than the page cache reads, evicts and writes
            // a page per record. The sort is stable: of two records for one
            // key, the later one is written last and wins, as it would have.
            let mut records: Vec<(&str, KeyBytes, &FailureRecord)> =
                batch.failures.iter().map(|r| (r.jail.as_str(), addr_key(r.addr), r)).collect();
            records.sort_by(|a, b| (a.0, a.1.as_slice()).cmp(&(b.0, b.1.as_slice())));
            for (jail, key, record) in &records {
                let key = (*jail, key.as_slice());
                if record.times.is_empty() {
                    failures.remove(key).doing(&self.path, DOING)?;
                } else {
                    failures.insert(key, encode_times(&record.times).as_slice()).doing(&self.path, DOING)?;
                }
            }
            let mut cursors = txn.open_table(CURSORS).doing(&self.path, DOING)?;
            for (source, position) in &batch.cursors {
                cursors.insert(source.as_str(), position.as_slice()).doing(&self.path, DOING)?;
            }
            for source in &batch.removed_cursors {
                cursors.remove(source.as_str()).doing(&self.path, DOING)?;
            }
        }
        if durable { self.commit_durable(txn, DOING) } else { txn.commit().doing(&self.path, DOING) }
    }

    /// Stores failure records as one batch; see [`Store::commit_batch`].
    pub fn put_failures(&self, records: &[FailureRecord]) -> Result<(), StoreError> {
        self.commit_batch(&Batch { failures: records.to_vec(), ..Batch::default() })
    }

    /// Stores source cursors as one batch; see [`Store::commit_batch`].
    pub fn put_cursors<K: AsRef<str>, V: AsRef<[u8]>>(&self, cursors: &[(K, V)]) -> Result<(), StoreError> {
        let cursors = cursors.iter().map(|(k, v)| (k.as_ref().to_string(), v.as_ref().to_vec())).collect();
        self.commit_batch(&Batch { cursors, ..Batch::default() })
    }

    /// The failure records of `jail`, in address order.
    pub fn failures(&self, jail: &str) -> Result<Vec<FailureRecord>, StoreError> {
        const DOING: &str = "read failures from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(FAILURES).doing(&self.path, DOING)?;
        let mut records = Vec::new();
        // Keys sort by jail first, so the jail's records are one contiguous run.
        let start: (&str, &[u8]) = (jail, &[]);
        for entry in table.range(start..).doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (key_jail, addr) = key.value();
            if key_jail != jail {
                break;
            }
            records.push(self.decode_failure(key_jail, addr, value.value())?);
        }
        Ok(records)
    }

    /// Every failure record of every jail, by jail then address.
    pub fn all_failures(&self) -> Result<Vec<FailureRecord>, StoreError> {
        const DOING: &str = "read failures from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(FAILURES).doing(&self.path, DOING)?;
        let mut records = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            let (jail, addr) = key.value();
            records.push(self.decode_failure(jail, addr, value.value())?);
        }
        Ok(records)
    }

    /// The stored position of `source`, if any.
    pub fn cursor(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const DOING: &str = "read a source cursor from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(CURSORS).doing(&self.path, DOING)?;
        let found = table.get(source).doing(&self.path, DOING)?;
        Ok(found.map(|v| v.value().to_vec()))
    }

    /// Every stored (source, position), in source order.
    pub fn cursors(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        const DOING: &str = "read source cursors from";
        let txn = self.db.begin_read().doing(&self.path, DOING)?;
        let table = txn.open_table(CURSORS).doing(&self.path, DOING)?;
        let mut cursors = Vec::new();
        for entry in table.iter().doing(&self.path, DOING)? {
            let (key, value) = entry.doing(&self.path, DOING)?;
            cursors.push((key.value().to_string(), value.value().to_vec()));
        }
        Ok(cursors)
    }

    pub(super) fn decode_failure(
        &self,
        jail: &str,
        addr: &[u8],
        times: &[u8],
    ) -> Result<FailureRecord, StoreError> {
        let addr = decode_addr(addr).ok_or_else(|| self.bad_key("failures", addr))?;
        let times = decode_times(times).ok_or_else(|| StoreError::Decode {
            path: self.path.clone(),
            table: "failures",
            key: format!("{jail}/{addr}"),
            detail: format!("{} bytes is not a whole number of 8-byte times", times.len()),
        })?;
        Ok(FailureRecord { jail: jail.to_string(), addr, times })
    }
}
