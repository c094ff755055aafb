//! Persistent state in one redb file: what must survive a restart.
//!
//! The [`Store`] owns the state file (`<state_dir>/warden.redb`) and the
//! tables in it, plus a `meta` table holding the [`SCHEMA_VERSION`]:
//!
//! - **active bans**, keyed by (banned network, jail), value the whole
//!   [`Ban`] (origin included) in a compact record, so a restart
//!   re-installs every ban. Stored bans are appended to a journal first
//!   and moved into this table many at a time (see `bans.rs`); every
//!   reader sees them either way. Each
//!   jail's ban on a network is its own record: when `sshd` and `recidive`
//!   both ban an address, the shorter `sshd` ban expiring (and being
//!   removed) leaves the `recidive` ban in place;
//! - **ban history**, per network and shared by all jails: how many times it
//!   was banned and when last, which drives `bantime_increment`. While a
//!   network is banned its history is its bans; a ban leaving the table
//!   leaves its count and time in the history table (see `bans.rs`);
//! - **recent failures**, per jail and address: the failure times still inside
//!   a window, so a restart does not forgive an attacker halfway to a ban;
//! - **source cursors**: an opaque position per source (a Docker timestamp, a
//!   journald cursor, an inode and offset), so a source resumes where it was;
//! - the **cluster's** tables (`cluster.rs`): the outbox of entries to
//!   publish, stream cursors, bans and tombstones from other hosts.
//!
//! # Durability
//!
//! Bans are the promise warden makes, so they are durable before they are
//! acknowledged: [`Store::put_ban`], [`Store::put_bans`],
//! [`Store::remove_ban`] and [`Store::remove_bans`] commit with [`redb::Durability::Immediate`] (an
//! `fsync`) and return only after it. Failures and cursors change on every
//! log line; they go through [`Store::commit_batch`], which commits with
//! [`redb::Durability::None`]: visible at once to readers of this store, and
//! made durable by the next durable commit: a ban, a sweep, [`Store::flush`],
//! every [`MAX_PENDING_BATCHES`]th batch, or closing the store. The
//! trade-off: a crash (SIGKILL, power loss) may lose the failures and cursors
//! of batches since the last durable commit, so a source may re-read a few
//! lines and a window may forget a few failures, but it never loses a ban and
//! never leaves a torn file. Failures and cursors of one batch commit
//! together, so a cursor is never durable without the failures it accounts for.
//!
//! # Schema
//!
//! The file records its layout version ([`SCHEMA_VERSION`]); opening a file
//! of an older version migrates it in place, in the same transaction that
//! checks the version, and a newer one is refused. See `schema.rs`.
//!
//! # Growth
//!
//! [`Store::sweep`] deletes expired bans, failure times older than the
//! longest window, and history older than its time to live;
//! [`Store::compact`] then gives freed pages back to the file system.
//!
//! # Use
//!
//! Operations block (a durable commit waits for `fsync`), so async callers run
//! them on a blocking thread. A `Store` is `Send + Sync`: its operations take
//! `&self` and redb serialises write transactions. Only [`Store::compact`]
//! needs `&mut self`, since it moves pages under every reader. The daemon's
//! store task is expected to:
//!
//! 1. open the store and re-install [`Store::active_bans`];
//! 2. store each ban with [`Store::put_ban`] before reporting it done, and
//!    remove a jail's ban when it expires or is lifted with
//!    [`Store::remove_ban`] (or many at once with [`Store::remove_bans`]);
//! 3. commit failures and cursors in batches, and [`Store::flush`] every few
//!    seconds, which bounds what a crash may lose to those seconds;
//! 4. [`Store::sweep`] now and then (say each minute), and [`Store::compact`]
//!    more rarely (say daily, or after a sweep that removed much);
//! 5. [`Store::close`] on shutdown, which makes pending batches durable and
//!    reports any error (dropping the store does the same, silently).

mod bans;
mod batch;
mod cluster;
mod codec;
mod error;
mod schema;
mod sweep;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use redb::{Database, Durability, WriteTransaction};

pub use bans::HistoryEntry;
pub use batch::{Batch, FailureRecord};
pub use cluster::{ClusterChanges, ClusterSaved, RemoteRecord};
pub use error::StoreError;
pub use schema::SCHEMA_VERSION;
pub use sweep::{Retention, SweepStats};

use error::ResultExt;

#[cfg(doc)]
use crate::core::Ban;

/// The state file's name inside `state_dir`.
pub const STATE_FILE_NAME: &str = "warden.redb";

/// After this many non-durable batches in a row, the next batch commits
/// durably: this bounds both what a crash can lose and the pages redb must
/// keep until a durable commit lets it reuse them.
pub const MAX_PENDING_BATCHES: u32 = 64;

/// redb's page cache; the default (1 GiB) is far more than warden's state needs.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// warden's persistent state; see the module docs.
pub struct Store {
    db: Database,
    path: PathBuf,
    /// Non-durable commits since the last durable one.
    pending_batches: AtomicU32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the state file at `path`, creating it (and its directory) if
    /// missing. After a crash, redb verifies checksums and rolls back to the
    /// last complete commit. Fails with [`StoreError::Locked`] while another
    /// process has the file open, and with [`StoreError::NewerSchema`] for a
    /// file written by a newer warden.
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::from_io(&path, "create the directory of", e))?;
        }
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            // A corrupt file then fails to open with an error instead of
            // panicking later; the check reads the whole file, which is small.
            .set_check_integrity_on_open(true)
            .create(&path)
            .doing(&path, "open")?;
        let store = Store { db, path, pending_batches: AtomicU32::new(0) };
        let txn = store.write(Durability::Immediate, "initialise")?;
        schema::check_or_init(&txn, &store.path)?;
        txn.commit().doing(&store.path, "initialise")?;
        Ok(store)
    }

    /// Opens `<state_dir>/warden.redb`.
    pub fn open_in(state_dir: impl AsRef<Path>) -> Result<Store, StoreError> {
        Store::open(state_dir.as_ref().join(STATE_FILE_NAME))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes every batch committed so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        let txn = self.write(Durability::Immediate, "flush")?;
        self.commit_durable(txn, "flush")
    }

    /// Gives the pages that [`Store::sweep`] freed back to the file system by
    /// moving live pages towards the start of the file and truncating it.
    /// Returns whether anything moved.
    pub fn compact(&mut self) -> Result<bool, StoreError> {
        // Compaction wants every earlier commit durable.
        self.flush()?;
        let mut moved = false;
        while self.db.compact().doing(&self.path, "compact")? {
            moved = true;
        }
        Ok(moved)
    }

    /// Makes pending batches durable and closes the file, reporting any
    /// error that dropping the store would only log.
    pub fn close(self) -> Result<(), StoreError> {
        self.flush()?;
        let Store { db, path, .. } = self;
        db.close().doing(&path, "close")
    }

    /// Begins a write transaction that commits with `durability`.
    fn write(&self, durability: Durability, doing: &'static str) -> Result<WriteTransaction, StoreError> {
        let mut txn = self.db.begin_write().doing(&self.path, doing)?;
        txn.set_durability(durability).doing(&self.path, doing)?;
        Ok(txn)
    }

    /// Commits a transaction that must be durable before the caller returns.
    fn commit_durable(&self, txn: WriteTransaction, doing: &'static str) -> Result<(), StoreError> {
        txn.commit().doing(&self.path, doing)?;
        self.pending_batches.store(0, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
