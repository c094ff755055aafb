//! The journald source: follows the systemd journal, selected by fields.
//!
//! It reads the journal files themselves (the host's `/var/log/journal` and
//! `/run/log/journal`, mounted read-only into warden's container), keeps
//! the entries matching any one of its match groups (`CONTAINER_TAG:
//! mailu-front`, `SYSLOG_IDENTIFIER`, `_SYSTEMD_UNIT`, any field; fields of
//! one group must all match), and sends them to the daemon in [`Batch`]es.
//! Each line is rendered as fail2ban's journal backend renders it
//! (`HOST IDENT[PID]: MESSAGE`, see [`format_line`]), so journal-mode
//! filters work unchanged. Its time is the entry's
//! `_SOURCE_REALTIME_TIMESTAMP` (when the message was logged), else its
//! `__REALTIME_TIMESTAMP` (when journald received it), as in fail2ban.
//!
//! # Cursor
//!
//! Each batch carries the journal cursor of its last entry (the string
//! `journalctl --show-cursor` prints) under the key `journald:<match
//! groups>` ([`cursor_key`]). At start, the source seeks to the stored
//! cursor and continues after that entry; without one it starts where
//! [`JournaldSourceConfig::read_from`] says (the end by default, and then
//! sends the position of the last matching entry at once, so a restart
//! before the next entry still resumes there).
//!
//! # Why libsystemd
//!
//! The journal is read through libsystemd's `sd_journal` API, loaded with
//! `dlopen` at run time (see [`sys`]), rather than a pure-Rust reader.
//! The pure-Rust `sdjournal` crate was evaluated first, as the architecture
//! prefers: its releases usable with our toolchain (0.1.15 and older; later
//! ones need rustc 1.96) read Debian 12's compact, zstd-compressed files,
//! but they order entries and resume cursors by wall-clock time first, so an
//! entry appended after a clock step backwards sorts before the stored
//! cursor and is skipped; resuming walks every matching entry from the start
//! of each file; and their live replay queues an unbounded backlog. The
//! later releases fix parts of this. libsystemd is the journal's reference
//! reader: it orders by sequence number within a file, seeks cursors by
//! bisection, follows rotation and vacuuming, reads every format and
//! compression its version knows (Debian 12's reads systemd 252's compact,
//! zstd/lz4/xz files), and its cursors are the ones `journalctl
//! --after-cursor` accepts. Loading it at run time keeps the build free of
//! libsystemd's headers and of statically linked LGPL code; the runtime
//! image (Debian) has `libsystemd0`.
//!
//! # State
//!
//! The [`run`] loop, on its own thread, owns one `sd_journal` handle: its
//! open files, inotify watches and position.

mod format;
pub mod sys;

use std::collections::BTreeMap;
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::thread::{self, Stop, ThreadError, Unsent, Woken};
use super::{Batch, Cursor, SourceEvent};
use crate::config::ReadFrom;
use crate::core::{LogLine, SourceRef, Timestamp};
use crate::store::{Store, StoreError};
pub use format::{EntryFields, format_line};
use sys::{Journal, JournalError};

/// Messages longer than this are truncated, unless configured otherwise.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// Most entries in one [`Batch`].
pub const BATCH_MAX_LINES: usize = 4096;
/// After a read error, how long to wait before trying again.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// Which journal files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalLocation {
    /// `/run/log/journal` and `/var/log/journal`, every machine id in them
    /// (a container reading its host's journal has another machine id).
    System,
    /// The journal files in this directory and its machine-id
    /// subdirectories.
    Directory(PathBuf),
}

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct JournaldSourceConfig {
    pub location: JournalLocation,
    /// Entries matching any one group are read; within a group every
    /// `FIELD: value` must match. No groups: every entry.
    pub matches: Vec<BTreeMap<String, String>>,
    /// The jails the lines feed.
    pub jails: Arc<[Arc<str>]>,
    /// Where to start without a stored cursor.
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
}

impl JournaldSourceConfig {
    /// The system journal, default limits.
    pub fn new(
        matches: Vec<BTreeMap<String, String>>,
        jails: Arc<[Arc<str>]>,
        read_from: ReadFrom,
    ) -> JournaldSourceConfig {
        JournaldSourceConfig {
            location: JournalLocation::System,
            matches,
            jails,
            read_from,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// Why a journald source stopped.
#[derive(Debug, thiserror::Error)]
pub enum JournaldError {
    #[error(
        "journald source {key}: field name {field:?} is not valid: use upper-case letters, digits and \
         underscores, not starting with a digit (like CONTAINER_TAG or _SYSTEMD_UNIT)"
    )]
    Field { key: String, field: String },
    #[error("journald source {key}: a match value for {field} contains a NUL byte")]
    Value { key: String, field: String },
    #[error("journald source {key}: cannot open the journal ({location}): {source}")]
    Open { key: String, location: String, source: JournalError },
    #[error("journald source {key}: {source}")]
    Journal { key: String, source: JournalError },
    #[error("journald source {key}: cannot read its cursor from the store: {source}")]
    Store { key: String, source: StoreError },
    #[error("journald source {key}: {source}")]
    Thread { key: String, source: ThreadError },
}

/// The store key of the cursor of a source with these match groups:
/// `journald:` and the groups as journalctl takes them, fields sorted
/// within a group and groups sorted (`journald:A=1 B=2 + C=3`), so the same
/// selection written differently shares its cursor.
pub fn cursor_key(matches: &[BTreeMap<String, String>]) -> String {
    let mut groups: Vec<String> = matches
        .iter()
        .map(|g| g.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "))
        .collect();
    groups.sort();
    groups.dedup();
    format!("journald:{}", groups.join(" + "))
}

/// Whether `name` is a journal field name libsystemd accepts in a match.
fn valid_field(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 64
        && !bytes[0].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

/// Follows the journal until `shutdown` is cancelled or `tx`'s receiver is
/// dropped, sending matching entries to `tx`.
///
/// Runs on a thread of its own. Fails for invalid matches, a journal that
/// cannot be opened (libsystemd missing, directory missing) or an
/// unreadable store; read errors inside the journal are logged and retried.
pub async fn run(
    cfg: JournaldSourceConfig,
    store: Arc<Store>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: CancellationToken,
) -> Result<(), JournaldError> {
    let key = cursor_key(&cfg.matches);
    let mut terms = Vec::new();
    for group in &cfg.matches {
        let mut group_terms = Vec::new();
        for (field, value) in group {
            if !valid_field(field) {
                return Err(JournaldError::Field { key, field: field.clone() });
            }
            if value.contains('\0') {
                return Err(JournaldError::Value { key, field: field.clone() });
            }
            group_terms.push(format!("{field}={value}").into_bytes());
        }
        terms.push(group_terms);
    }
    let thread_key = key.clone();
    let result = thread::run_on_thread("warden-journald", &shutdown, move |stop| {
        let mut follower = Follower::open(cfg, thread_key, &terms, store, tx, Arc::clone(&stop))?;
        follower.run(&stop)
    })
    .await;
    match result {
        Ok(Ok(()) | Err(Halt::Closed)) => Ok(()),
        Ok(Err(Halt::Failed(e))) => Err(*e),
        Err(source) => Err(JournaldError::Thread { key, source }),
    }
}

/// Why the follower loop ends early.
#[derive(Debug)]
enum Halt {
    /// The daemon dropped its receiver, or stop came while it was not
    /// receiving.
    Closed,
    /// Boxed: errors are rare and the loop's results stay small.
    Failed(Box<JournaldError>),
}

impl From<JournaldError> for Halt {
    fn from(e: JournaldError) -> Halt {
        Halt::Failed(Box::new(e))
    }
}

/// Field names, NUL-terminated for libsystemd.
mod field {
    use std::ffi::CStr;
    pub const MESSAGE: &CStr = c"MESSAGE";
    pub const HOSTNAME: &CStr = c"_HOSTNAME";
    pub const SYSLOG_IDENTIFIER: &CStr = c"SYSLOG_IDENTIFIER";
    pub const COMM: &CStr = c"_COMM";
    pub const SYSLOG_PID: &CStr = c"SYSLOG_PID";
    pub const PID: &CStr = c"_PID";
    pub const SOURCE_REALTIME: &CStr = c"_SOURCE_REALTIME_TIMESTAMP";
    pub const SOURCE_MONOTONIC: &CStr = c"_SOURCE_MONOTONIC_TIMESTAMP";
    pub const SYSTEMD_UNIT: &CStr = c"_SYSTEMD_UNIT";
    pub const CONTAINER_TAG: &CStr = c"CONTAINER_TAG";
}

/// The follower loop's state.
struct Follower {
    cfg: JournaldSourceConfig,
    key: Arc<str>,
    journal: Journal,
    tx: mpsc::Sender<SourceEvent>,
    stop: Arc<Stop>,
    /// The journal stands on an entry not yet sent (after seeking to a
    /// cursor whose entry is gone, the nearest one is unread).
    unread_current: bool,
    warned_long_line: bool,
}

impl Follower {
    fn open(
        cfg: JournaldSourceConfig,
        key: String,
        terms: &[Vec<Vec<u8>>],
        store: Arc<Store>,
        tx: mpsc::Sender<SourceEvent>,
        stop: Arc<Stop>,
    ) -> Result<Follower, Halt> {
        let journal = match &cfg.location {
            JournalLocation::System => Journal::open_system(),
            JournalLocation::Directory(dir) => Journal::open_directory(dir),
        };
        let location = match &cfg.location {
            JournalLocation::System => "/run/log/journal, /var/log/journal".to_string(),
            JournalLocation::Directory(dir) => dir.display().to_string(),
        };
        let mut journal =
            journal.map_err(|source| JournaldError::Open { key: key.clone(), location, source })?;
        let fail = |source| JournaldError::Journal { key: key.clone(), source };
        // Fields beyond the line cap are cut anyway; this spares
        // decompressing all of a huge one.
        journal.set_data_threshold(cfg.max_line_bytes.saturating_add(64)).map_err(fail)?;
        for (i, group) in terms.iter().enumerate() {
            if i > 0 {
                journal.add_disjunction().map_err(fail)?;
            }
            for term in group {
                journal.add_match(term).map_err(fail)?;
            }
        }
        let stored = store
            .cursor(&key)
            .map_err(|source| JournaldError::Store { key: key.clone(), source })?
            .and_then(|bytes| match CString::new(bytes) {
                Ok(cursor) => Some(cursor),
                Err(_) => {
                    tracing::warn!(key, "stored journal cursor contains a NUL byte; ignoring it");
                    None
                }
            });
        let mut follower = Follower {
            cfg,
            key: key.into(),
            journal,
            tx,
            stop,
            unread_current: false,
            warned_long_line: false,
        };
        follower.position(stored.as_deref())?;
        Ok(follower)
    }

    fn fail(&self, source: JournalError) -> JournaldError {
        JournaldError::Journal { key: self.key.to_string(), source }
    }

    /// Places the journal just before the first entry to send.
    fn position(&mut self, stored: Option<&CStr>) -> Result<(), Halt> {
        if let Some(cursor) = stored {
            if let Err(e) = self.journal.seek_cursor(cursor) {
                // Not a cursor libsystemd can parse: start as without one.
                tracing::warn!(key = %self.key, error = %e, "stored journal cursor is not valid; ignoring it");
                return self.position(None);
            }
            // seek_cursor positions near the entry; the first next() lands
            // on it if it still exists, else on the first entry after it.
            if self.journal.next_entry().map_err(|e| self.fail(e))? {
                let same = self.journal.test_cursor(cursor).map_err(|e| self.fail(e))?;
                self.unread_current = !same;
                if !same {
                    tracing::info!(key = %self.key, "stored journal cursor's entry is gone (vacuumed); resuming at the next one");
                }
            }
            return Ok(());
        }
        match self.cfg.read_from {
            ReadFrom::Start => self.journal.seek_head().map_err(|e| self.fail(e))?,
            ReadFrom::End => {
                self.journal.seek_tail().map_err(|e| self.fail(e))?;
                // Standing on the last matching entry, already "read": the
                // next next() returns what comes after it.
                if self.journal.previous_entry().map_err(|e| self.fail(e))? {
                    let cursor = self.journal.cursor().map_err(|e| self.fail(e))?;
                    self.send(Vec::new(), Some(cursor))?;
                }
            }
        }
        Ok(())
    }

    fn run(&mut self, stop: &Stop) -> Result<(), Halt> {
        let key = Arc::clone(&self.key);
        let fail = |source| JournaldError::Journal { key: key.to_string(), source };
        let poll_failed = |source| fail(JournalError::Call { call: "poll", source });
        loop {
            let full = match self.read_batch(stop) {
                Ok(full) => full,
                Err(Halt::Failed(e)) if matches!(*e, JournaldError::Journal { .. }) => {
                    tracing::warn!(error = %e, "reading the journal failed; retrying");
                    if stop.wait(&[], Some(RETRY_AFTER_ERROR)).map_err(poll_failed)? == Woken::Stopped {
                        return Ok(());
                    }
                    false
                }
                Err(halt) => return Err(halt),
            };
            if stop.is_stopped() {
                return Ok(());
            }
            if full {
                continue;
            }
            let timeout = self.journal.timeout().map_err(fail)?;
            let fd = self.journal.fd().map_err(fail)?;
            if stop.wait(&[fd], timeout).map_err(poll_failed)? == Woken::Stopped {
                return Ok(());
            }
            self.journal.process().map_err(fail)?;
        }
    }

    /// Reads and sends up to one batch of entries. Returns whether the batch
    /// was full (more may be waiting). Lines read before an error are sent
    /// before the error is returned: the journal has moved past them.
    fn read_batch(&mut self, stop: &Stop) -> Result<bool, Halt> {
        let mut lines = Vec::new();
        let mut failed = None;
        while lines.len() < BATCH_MAX_LINES && !stop.is_stopped() {
            if !std::mem::take(&mut self.unread_current) {
                match self.journal.next_entry() {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        failed = Some(self.fail(e));
                        break;
                    }
                }
            }
            match self.entry_line() {
                Ok(Some(line)) => lines.push(line),
                Ok(None) => {}
                Err(e) => tracing::warn!(key = %self.key, error = %e, "skipping an unreadable journal entry"),
            }
        }
        let full = lines.len() >= BATCH_MAX_LINES;
        if !lines.is_empty() {
            let cursor = match self.journal.cursor() {
                Ok(cursor) => Some(cursor),
                Err(e) => {
                    tracing::warn!(key = %self.key, error = %e, "cannot get the journal cursor; sending lines without it");
                    None
                }
            };
            self.send(lines, cursor)?;
        }
        match failed {
            Some(e) => Err(e.into()),
            None => Ok(full),
        }
    }

    /// The current entry as a line; `None` for an entry without a message.
    fn entry_line(&mut self) -> Result<Option<LogLine>, JournalError> {
        let j = &mut self.journal;
        let Some(message) = j.field(field::MESSAGE).map(<[u8]>::to_vec) else { return Ok(None) };
        let identifier = text(j, field::SYSLOG_IDENTIFIER);
        let tag = text(j, field::CONTAINER_TAG).or_else(|| identifier.clone());
        let mut fields = EntryFields {
            hostname: text(j, field::HOSTNAME),
            identifier: identifier.or_else(|| text(j, field::COMM)),
            pid: text(j, field::SYSLOG_PID).or_else(|| text(j, field::PID)),
            monotonic_usec: None,
            message: String::new(),
        };
        if fields.identifier.as_deref() == Some("kernel") {
            fields.monotonic_usec = number(j, field::SOURCE_MONOTONIC).or_else(|| j.monotonic_usec().ok());
        }
        let usec = match number(j, field::SOURCE_REALTIME) {
            Some(usec) => usec,
            None => j.realtime_usec()?,
        };
        let unit = text(&mut self.journal, field::SYSTEMD_UNIT);
        let mut message = message.as_slice();
        if message.len() > self.cfg.max_line_bytes {
            message = &message[..self.cfg.max_line_bytes];
            if !std::mem::replace(&mut self.warned_long_line, true) {
                tracing::warn!(key = %self.key, max_bytes = self.cfg.max_line_bytes, "journal message too long; truncated (reported once per source)");
            }
        }
        fields.message = String::from_utf8_lossy(message).into_owned();
        Ok(Some(LogLine {
            source: SourceRef::Journald { unit, tag },
            jails: Arc::clone(&self.cfg.jails),
            time: Some(Timestamp(i64::try_from(usec / 1000).unwrap_or(i64::MAX))),
            text: format_line(&fields),
        }))
    }

    /// Sends `lines` with the position after them; without one (the
    /// journal could not say), the daemon processes them but keeps its
    /// last position, so a restart reads them again rather than never.
    fn send(&mut self, lines: Vec<LogLine>, cursor: Option<CString>) -> Result<(), Halt> {
        let cursor = cursor.map(|c| Cursor { key: Arc::clone(&self.key), value: c.into_bytes() });
        let batch = Batch { lines, cursor };
        self.stop.send(&self.tx, SourceEvent::Lines(batch)).map_err(|_: Unsent| Halt::Closed)
    }
}

/// A field's value as text (invalid UTF-8 replaced), `None` when absent.
fn text(journal: &mut Journal, name: &CStr) -> Option<String> {
    journal.field(name).map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A field holding a decimal number (the `_SOURCE_*_TIMESTAMP` fields).
fn number(journal: &mut Journal, name: &CStr) -> Option<u64> {
    std::str::from_utf8(journal.field(name)?).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn cursor_keys_do_not_depend_on_how_matches_are_written() {
        let a = vec![group(&[("CONTAINER_TAG", "mailu-front")]), group(&[("_COMM", "sshd"), ("_PID", "1")])];
        let b = vec![group(&[("_PID", "1"), ("_COMM", "sshd")]), group(&[("CONTAINER_TAG", "mailu-front")])];
        assert_eq!(cursor_key(&a), cursor_key(&b));
        assert_eq!(cursor_key(&a), "journald:CONTAINER_TAG=mailu-front + _COMM=sshd _PID=1");
        assert_eq!(cursor_key(&[]), "journald:");
    }

    #[test]
    fn field_names_follow_journald_rules() {
        for ok in ["MESSAGE", "_SYSTEMD_UNIT", "CONTAINER_TAG", "X1", "__CURSOR"] {
            assert!(valid_field(ok), "{ok}");
        }
        for bad in ["", "container_tag", "1ABC", "A-B", "A B", &"A".repeat(65)] {
            assert!(!valid_field(bad), "{bad}");
        }
    }

    #[tokio::test]
    async fn invalid_matches_are_rejected_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).unwrap());
        let (tx, _rx) = mpsc::channel(1);
        let cfg = JournaldSourceConfig::new(
            vec![group(&[("container_tag", "x")])],
            Arc::from(vec![Arc::<str>::from("j")]),
            ReadFrom::End,
        );
        let err = run(cfg, store, tx, CancellationToken::new()).await.unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"container_tag\"") && msg.contains("CONTAINER_TAG"), "{msg}");
    }
}
