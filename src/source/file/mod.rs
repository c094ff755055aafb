//! The file source: follows log files like `tail -F`.
//!
//! One source follows every file matching one glob pattern
//! (`/var/log/auth.log`, `/var/log/nginx/*.log`), including files that do not
//! exist yet, and sends their lines to the daemon in [`Batch`]es, each
//! carrying the cursor of the file it came from (key `file:<path>`, value
//! [`FileCursor`]: inode and offset).
//!
//! # Following
//!
//! - **Appends** are seen through inotify on the files' directories, so
//!   latency is low and an idle source uses no CPU. A slow periodic rescan
//!   ([`FileSourceConfig::rescan_interval`]) catches what inotify cannot
//!   report: a directory created later, a glob matching in directories not
//!   yet watched, network file systems.
//! - **Rotation by rename** (logrotate's default): the old file, still open,
//!   is read to its end and kept until it has been quiet for
//!   [`FileSourceConfig::rotate_grace`] (a writer may still append before it
//!   reopens), then the new file is read from its start. A path removed
//!   without replacement is handled the same way.
//! - **Rotation to a name the pattern also matches** (`app.log` to
//!   `app-20261121.log` under `*.log`): the file goes on being read where it
//!   was, under its new name, never read twice.
//! - **Truncation in place** (`copytruncate`, `> file`): the file is read
//!   again from its start.
//! - **New files** matching the pattern are read from their start.
//!
//! # Where reading starts
//!
//! With a stored cursor whose inode is the file's, reading resumes at its
//! offset: nothing read twice, nothing skipped. A file whose inode differs
//! (rotated while warden was down) or that is shorter than the offset
//! (truncated) is read from its start. Without a cursor, files present at
//! startup start where [`FileSourceConfig::read_from`] says (files found
//! later always start at their beginning); with [`ReadFrom::End`] the source
//! sends that position at once as a batch without lines, so a restart
//! before the first new line still resumes there.
//!
//! # Limits
//!
//! Lines longer than [`FileSourceConfig::max_line_bytes`] are truncated
//! with a warning; invalid UTF-8 becomes U+FFFD. A batch holds at most
//! [`BATCH_MAX_LINES`] lines and about [`BATCH_MAX_BYTES`] bytes, so memory
//! stays bounded by the channel's capacity, whatever the files hold.
//!
//! # State
//!
//! The [`run`] loop, on its own thread, owns an inotify instance, one open
//! handle per followed file (two during a rotation) and the bytes of each
//! file's unfinished last line.

mod lines;
mod reader;
mod watch;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glob::{MatchOptions, Pattern};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::thread::{self, Stop, ThreadError, Unsent, Woken};
use super::{Batch, Cursor, SourceEvent};
use crate::config::ReadFrom;
use crate::core::{LogLine, SourceRef};
use crate::store::{Store, StoreError};
use lines::Line;
pub use reader::FileCursor;
use reader::{Identity, Reader};
use watch::Watcher;

/// Lines longer than this are truncated, unless configured otherwise.
pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
/// How often the source looks again at everything, events or not.
pub const DEFAULT_RESCAN_INTERVAL: Duration = Duration::from_secs(10);
/// How long a rotated-away file must stay quiet before it is closed.
pub const DEFAULT_ROTATE_GRACE: Duration = Duration::from_secs(1);
/// Most lines in one [`Batch`]. A batch of 1024 typical lines takes about
/// 300 KB with its [`LogLine`]s; while the daemon is busy, each source holds
/// one and the daemon's queue a few, so larger batches cost memory (4096
/// lines took 20 MB in all under a flood) and gain nothing measurable.
pub const BATCH_MAX_LINES: usize = 1024;
/// A batch is sent once its lines hold this many bytes.
pub const BATCH_MAX_BYTES: usize = 256 * 1024;
/// Lines read from one file before the others get their turn.
const VISIT_MAX_LINES: usize = 4 * BATCH_MAX_LINES;

/// What to follow and how.
#[derive(Debug, Clone)]
pub struct FileSourceConfig {
    /// A path, or a glob pattern (`*`, `?`, `[...]`) matching files; `*`
    /// does not cross `/`.
    pub pattern: PathBuf,
    /// The jails the lines feed.
    pub jails: Arc<[Arc<str>]>,
    /// Where files present at startup start when they have no cursor.
    pub read_from: ReadFrom,
    pub max_line_bytes: usize,
    pub rescan_interval: Duration,
    pub rotate_grace: Duration,
}

impl FileSourceConfig {
    /// A configuration with the default limits and timings.
    pub fn new(pattern: impl Into<PathBuf>, jails: Arc<[Arc<str>]>, read_from: ReadFrom) -> FileSourceConfig {
        FileSourceConfig {
            pattern: pattern.into(),
            jails,
            read_from,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            rescan_interval: DEFAULT_RESCAN_INTERVAL,
            rotate_grace: DEFAULT_ROTATE_GRACE,
        }
    }
}

/// Why a file source stopped.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("file source {pattern}: not a valid glob pattern ({source}); use *, ? and [...] in a path")]
    Pattern { pattern: String, source: glob::PatternError },
    #[error("file source {pattern}: cannot set up inotify: {source}")]
    Inotify { pattern: String, source: io::Error },
    #[error("file source {pattern}: cannot read the cursor {key} from the store: {source}")]
    Store { pattern: String, key: String, source: StoreError },
    #[error("file source {pattern}: {source}")]
    Thread { pattern: String, source: ThreadError },
}

/// The store key of `path`'s cursor.
pub fn cursor_key(path: &Path) -> String {
    format!("file:{}", path.display())
}

/// Follows the files matching `cfg.pattern` until `shutdown` is cancelled
/// or `tx`'s receiver is dropped, sending their lines to `tx`.
///
/// Runs on a thread of its own. Returns an error only for a broken setup
/// (invalid pattern, no inotify, unreadable store); unreadable files are
/// reported with a warning and retried at the next rescan.
pub async fn run(
    cfg: FileSourceConfig,
    store: Arc<Store>,
    tx: mpsc::Sender<SourceEvent>,
    shutdown: CancellationToken,
) -> Result<(), FileSourceError> {
    let pattern_text = cfg.pattern.display().to_string();
    let pattern = Pattern::new(&pattern_text)
        .map_err(|source| FileSourceError::Pattern { pattern: pattern_text.clone(), source })?;
    let name = "warden-file-source";
    let result = thread::run_on_thread(name, &shutdown, move |stop| {
        let mut follower = Follower::new(cfg, pattern, store, tx, Arc::clone(&stop))?;
        follower.run(&stop)
    })
    .await;
    match result {
        Ok(Ok(()) | Err(Halt::Closed)) => Ok(()),
        Ok(Err(Halt::Failed(e))) => Err(*e),
        Err(source) => Err(FileSourceError::Thread { pattern: pattern_text, source }),
    }
}

/// Why the follower loop ends early.
#[derive(Debug)]
enum Halt {
    /// The daemon dropped its receiver, or stop came while it was not
    /// receiving: nobody wants lines any more.
    Closed,
    /// Boxed: errors are rare and the loop's results stay small.
    Failed(Box<FileSourceError>),
}

impl From<FileSourceError> for Halt {
    fn from(e: FileSourceError) -> Halt {
        Halt::Failed(Box::new(e))
    }
}

/// `*` must not cross `/`, as in a shell.
const MATCH: MatchOptions = MatchOptions {
    case_sensitive: true,
    require_literal_separator: true,
    require_literal_leading_dot: false,
};

/// One followed path.
#[derive(Debug)]
struct Followed {
    key: Arc<str>,
    source: SourceRef,
    /// The file now at the path, if any.
    current: Option<Reader>,
    /// The file that was at the path before a rotation, read until quiet;
    /// `current` waits until it is gone, so lines stay in order.
    previous: Option<Previous>,
    /// A truncated line was already reported for this path.
    warned_long_line: bool,
}

#[derive(Debug)]
struct Previous {
    reader: Reader,
    quiet_until: Instant,
}

/// The follower loop's state.
struct Follower {
    cfg: FileSourceConfig,
    pattern: Pattern,
    /// The pattern of the directories holding matches.
    dir_pattern: Option<Pattern>,
    /// The directories of the pattern before its first glob character
    /// (`/var/log` for `/var/log/*/access.log`): its deepest existing
    /// ancestor is watched too, so a directory created later is seen.
    literal_dir: Option<PathBuf>,
    store: Arc<Store>,
    watcher: Watcher,
    files: BTreeMap<PathBuf, Followed>,
    /// Paths with news to read.
    dirty: BTreeSet<PathBuf>,
    /// Cursor keys of the paths followed so far in this run.
    seen: HashSet<Arc<str>>,
    out: Out,
    /// Whether the first scan (the one [`ReadFrom`] applies to) is done.
    started: bool,
}

impl Follower {
    fn new(
        cfg: FileSourceConfig,
        pattern: Pattern,
        store: Arc<Store>,
        tx: mpsc::Sender<SourceEvent>,
        stop: Arc<Stop>,
    ) -> Result<Follower, Halt> {
        let watcher = Watcher::new().map_err(|source| FileSourceError::Inotify {
            pattern: cfg.pattern.display().to_string(),
            source,
        })?;
        // The parent of a valid pattern is a valid pattern.
        let dir_pattern = cfg
            .pattern
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .and_then(|p| Pattern::new(&p).ok());
        let literal_dir = cfg.pattern.parent().map(|dir| {
            dir.components()
                .take_while(|c| !c.as_os_str().to_string_lossy().contains(['*', '?', '[']))
                .collect::<PathBuf>()
        });
        let out = Out { tx, stop, jails: Arc::clone(&cfg.jails), pending: None };
        Ok(Follower {
            cfg,
            pattern,
            dir_pattern,
            literal_dir,
            store,
            watcher,
            files: BTreeMap::new(),
            dirty: BTreeSet::new(),
            seen: HashSet::new(),
            out,
            started: false,
        })
    }

    fn run(&mut self, stop: &Stop) -> Result<(), Halt> {
        self.rescan()?;
        self.started = true;
        let mut next_rescan = Instant::now() + self.cfg.rescan_interval;
        loop {
            let more = self.read_dirty(stop)?;
            self.out.flush()?;
            if stop.is_stopped() {
                return Ok(());
            }
            let now = Instant::now();
            let mut deadline = next_rescan;
            for prev in self.files.values().filter_map(|f| f.previous.as_ref()) {
                deadline = deadline.min(prev.quiet_until);
            }
            let timeout = if more { Duration::ZERO } else { deadline.saturating_duration_since(now) };
            let woken = stop
                .wait(&[self.watcher.fd()], Some(timeout))
                .map_err(|source| FileSourceError::Inotify { pattern: self.pattern_text(), source })?;
            match woken {
                Woken::Stopped => return Ok(()),
                Woken::Ready(_) => self.handle_events()?,
                Woken::Timeout => {}
            }
            let now = Instant::now();
            if now >= next_rescan {
                self.rescan()?;
                next_rescan = now + self.cfg.rescan_interval;
            }
            // Rotated-away files whose grace ran out are finished by a read.
            for (path, followed) in &self.files {
                if followed.previous.as_ref().is_some_and(|p| p.quiet_until <= now) {
                    self.dirty.insert(path.clone());
                }
            }
        }
    }

    fn pattern_text(&self) -> String {
        self.cfg.pattern.display().to_string()
    }

    fn handle_events(&mut self) -> Result<(), Halt> {
        let changes = match self.watcher.read() {
            Ok(changes) => changes,
            Err(e) => {
                tracing::warn!(pattern = %self.pattern_text(), error = %e, "reading inotify events failed; rescanning");
                return self.rescan();
            }
        };
        if changes.rescan {
            return self.rescan();
        }
        // A rotated-away file is written to under its new name, which the
        // pattern may not match: read those on any news.
        for (path, followed) in &self.files {
            if followed.previous.is_some() {
                self.dirty.insert(path.clone());
            }
        }
        for path in changes.paths {
            if self.files.contains_key(&path) || self.pattern.matches_path_with(&path, MATCH) {
                self.check(&path)?;
            }
        }
        Ok(())
    }

    /// Watches every directory that may hold matches and looks at every
    /// match and every followed path.
    fn rescan(&mut self) -> Result<(), Halt> {
        if let Some(dir) = &self.literal_dir {
            let existing = dir.ancestors().find(|d| d.is_dir());
            if let Some(dir) = existing
                && let Err(e) = self.watcher.watch(dir)
            {
                tracing::debug!(dir = %dir.display(), error = %e, "cannot watch directory; relying on rescans");
            }
        }
        if let Some(dir_pattern) = &self.dir_pattern {
            for dir in glob::glob_with(dir_pattern.as_str(), MATCH).into_iter().flatten().flatten() {
                if dir.is_dir()
                    && let Err(e) = self.watcher.watch(&dir)
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch directory; relying on rescans");
                }
            }
        }
        let mut paths: BTreeSet<PathBuf> = self.files.keys().cloned().collect();
        match glob::glob_with(&self.pattern_text(), MATCH) {
            Ok(found) => paths.extend(found.flatten().filter(|p| p.is_file())),
            Err(e) => tracing::warn!(pattern = %self.pattern_text(), error = %e, "glob failed"),
        }
        for path in paths {
            self.check(&path)?;
        }
        Ok(())
    }

    /// Compares what is at `path` now with what is followed there: a new
    /// file, a rotation, a removal or a truncation. Marks the path dirty.
    fn check(&mut self, path: &Path) -> Result<(), Halt> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => Some(meta),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot stat log file; retrying at the next rescan");
                None
            }
        };
        if meta.is_none() && !self.files.contains_key(path) {
            return Ok(());
        }
        self.dirty.insert(path.to_path_buf());
        let now_identity = meta.as_ref().map(Identity::of);
        // A followed file renamed to another matching name (rotation with
        // dates under a glob: app.log -> app-20261121.log) is still the same
        // file: it goes on where it was, under its new name.
        let adopted = match now_identity {
            Some(identity) if !self.follows(path, identity) => self.take_reader_elsewhere(path, identity),
            _ => None,
        };
        let grace = self.cfg.rotate_grace;
        let followed = self.files.entry(path.to_path_buf()).or_insert_with(|| Followed {
            key: cursor_key(path).into(),
            source: SourceRef::File { path: path.to_path_buf() },
            current: None,
            previous: None,
            warned_long_line: false,
        });
        if let Some(current) = followed.current.as_mut().filter(|c| Some(c.identity()) == now_identity) {
            let restarted = match current.was_truncated() {
                Ok(false) => return Ok(()),
                Ok(true) => {
                    tracing::warn!(path = %path.display(), "log file truncated; reading it again from the start");
                    current.restart().map(|partial| (partial, current.cursor()))
                }
                Err(e) => Err(e),
            };
            match restarted {
                Ok((Some(line), cursor)) => self.out.push(followed, line, cursor)?,
                Ok((None, _)) => {}
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot check or reread log file; reopening it");
                    followed.current = None;
                }
            }
            return Ok(());
        }
        // The file at the path changed (rotation), appeared or went away.
        if let Some(old) = followed.current.take() {
            if let Some(older) = followed.previous.take() {
                finish(followed, older.reader, &mut self.out)?;
            }
            tracing::info!(path = %path.display(), "log file rotated or removed; finishing the old one");
            followed.previous = Some(Previous { reader: old, quiet_until: Instant::now() + grace });
        }
        let Some(identity) = now_identity else { return Ok(()) };
        // A path followed before in this run holds a new file now: its
        // stored cursor is the old file's (whose inode number the file
        // system may already have given to the new one).
        let first_sight = self.seen.insert(Arc::clone(&followed.key));
        let stored = if first_sight && adopted.is_none() {
            stored_cursor(&self.store, &followed.key, &self.cfg.pattern)?
        } else {
            None
        };
        let initial = !self.started;
        let len = meta.as_ref().map_or(0, |m| m.len());
        let (offset, why) = match adopted {
            Some(offset) => (offset, Some("log file renamed to a matching name; following it there")),
            None => start_offset(stored, identity, len, initial, self.cfg.read_from),
        };
        if let Some(why) = why {
            tracing::info!(path = %path.display(), offset, "{why}");
        }
        if path.symlink_metadata().is_ok_and(|m| m.file_type().is_symlink())
            && let Err(e) = self.watcher.watch_link_target(path)
        {
            tracing::debug!(path = %path.display(), error = %e, "cannot watch a link's target; relying on rescans");
        }
        match Reader::open(path, offset, self.cfg.max_line_bytes) {
            Ok(reader) => {
                let announce =
                    (stored.is_none() && adopted.is_none() && initial && self.cfg.read_from == ReadFrom::End)
                        .then(|| reader.cursor());
                followed.current = Some(reader);
                if let Some(cursor) = announce {
                    self.out.announce(followed, cursor)?;
                }
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open log file; retrying at the next rescan")
            }
        }
        Ok(())
    }

    /// Whether `path` is followed and its current file is `identity`.
    fn follows(&self, path: &Path, identity: Identity) -> bool {
        self.files.get(path).and_then(|f| f.current.as_ref()).is_some_and(|c| c.identity() == identity)
    }

    /// Takes the reader of `identity` from the path other than `path` that
    /// holds it, if any, and returns the offset after its last line sent.
    /// Its unfinished line is read again by whoever continues the file.
    fn take_reader_elsewhere(&mut self, path: &Path, identity: Identity) -> Option<u64> {
        for (other, followed) in self.files.iter_mut().filter(|(other, _)| other.as_path() != path) {
            let taken = if followed.previous.as_ref().is_some_and(|p| p.reader.identity() == identity) {
                followed.previous.take().map(|p| p.reader)
            } else if followed.current.as_ref().is_some_and(|c| c.identity() == identity) {
                followed.current.take()
            } else {
                continue;
            };
            // The other path gets another look: the new file there, if any,
            // or nothing left to follow.
            self.dirty.insert(other.clone());
            return taken.map(|reader| reader.cursor().offset);
        }
        None
    }

    /// Reads the dirty paths. Returns whether some file has more to read
    /// (it used up its turn).
    fn read_dirty(&mut self, stop: &Stop) -> Result<bool, Halt> {
        let mut more = false;
        let dirty = std::mem::take(&mut self.dirty);
        for path in dirty {
            if stop.is_stopped() {
                return Ok(false);
            }
            let Some(followed) = self.files.get_mut(&path) else { continue };
            if read_followed(followed, &self.cfg, &mut self.out)? {
                more = true;
                self.dirty.insert(path.clone());
            }
            if followed.current.is_none() && followed.previous.is_none() {
                self.files.remove(&path);
            }
        }
        Ok(more)
    }
}

/// Reads one path's files: the rotated-away one first, then the current
/// one once the old is finished. Returns whether its turn ran out first.
fn read_followed(followed: &mut Followed, cfg: &FileSourceConfig, out: &mut Out) -> Result<bool, Halt> {
    let mut budget = VISIT_MAX_LINES;
    if let Some(mut prev) = followed.previous.take() {
        let read = read_lines(&mut prev.reader, followed, cfg, out, &mut budget)?;
        if read > 0 {
            prev.quiet_until = Instant::now() + cfg.rotate_grace;
        }
        if budget == 0 {
            followed.previous = Some(prev);
            return Ok(true);
        }
        if prev.quiet_until > Instant::now() {
            followed.previous = Some(prev);
            return Ok(false);
        }
        finish(followed, prev.reader, out)?;
    }
    let Some(mut current) = followed.current.take() else { return Ok(false) };
    let result = read_lines(&mut current, followed, cfg, out, &mut budget);
    followed.current = Some(current);
    result?;
    Ok(budget == 0)
}

/// Reads lines from `reader` until its end or until `budget` runs out.
/// Returns how many lines were read.
fn read_lines(
    reader: &mut Reader,
    followed: &mut Followed,
    cfg: &FileSourceConfig,
    out: &mut Out,
    budget: &mut usize,
) -> Result<usize, Halt> {
    let mut read = 0;
    while *budget > 0 {
        match reader.next_line() {
            Ok(Some(line)) => {
                if line.truncated {
                    warn_long_line(followed, cfg.max_line_bytes);
                }
                read += 1;
                *budget -= 1;
                out.push(followed, line, reader.cursor())?;
            }
            Ok(None) => break,
            Err(e) => {
                if let SourceRef::File { path } = &followed.source {
                    tracing::warn!(path = %path.display(), error = %e, "cannot read log file; retrying later");
                }
                break;
            }
        }
    }
    Ok(read)
}

/// Sends the unfinished last line of a file that will not be read again.
fn finish(followed: &mut Followed, reader: Reader, out: &mut Out) -> Result<(), Halt> {
    let (partial, cursor) = reader.finish();
    if let Some(line) = partial {
        out.push(followed, line, cursor)?;
    }
    Ok(())
}

fn warn_long_line(followed: &mut Followed, max: usize) {
    if !std::mem::replace(&mut followed.warned_long_line, true)
        && let SourceRef::File { path } = &followed.source
    {
        tracing::warn!(path = %path.display(), max_bytes = max, "log line too long; truncated (reported once per file)");
    }
}

fn stored_cursor(store: &Store, key: &str, pattern: &Path) -> Result<Option<FileCursor>, Halt> {
    let bytes = store.cursor(key).map_err(|source| FileSourceError::Store {
        pattern: pattern.display().to_string(),
        key: key.to_string(),
        source,
    })?;
    let cursor = bytes.as_deref().and_then(FileCursor::decode);
    if bytes.is_some() && cursor.is_none() {
        tracing::warn!(key, "stored file cursor is not inode:offset; ignoring it");
    }
    Ok(cursor)
}

/// Where to start reading a file just opened, and why when it is worth a
/// log line.
fn start_offset(
    stored: Option<FileCursor>,
    identity: Identity,
    len: u64,
    initial: bool,
    read_from: ReadFrom,
) -> (u64, Option<&'static str>) {
    match stored {
        Some(c) if c.ino == identity.ino && c.offset <= len => (c.offset, None),
        Some(c) if c.ino == identity.ino => {
            (0, Some("log file is shorter than its cursor (truncated); reading it from the start"))
        }
        Some(_) => (0, Some("log file was replaced since its cursor (rotated); reading it from the start")),
        None if initial && read_from == ReadFrom::End => (len, None),
        None => (0, None),
    }
}

/// Lines on their way to the daemon, gathered per file into batches.
struct Out {
    tx: mpsc::Sender<SourceEvent>,
    stop: Arc<Stop>,
    jails: Arc<[Arc<str>]>,
    pending: Option<Pending>,
}

struct Pending {
    key: Arc<str>,
    lines: Vec<LogLine>,
    bytes: usize,
    cursor: FileCursor,
}

impl Out {
    fn push(&mut self, followed: &Followed, line: Line, cursor: FileCursor) -> Result<(), Halt> {
        if self.pending.as_ref().is_some_and(|p| p.key != followed.key) {
            self.flush()?;
        }
        let pending = self.pending.get_or_insert_with(|| Pending {
            key: Arc::clone(&followed.key),
            lines: Vec::new(),
            bytes: 0,
            cursor,
        });
        pending.bytes += line.text.len();
        pending.cursor = cursor;
        pending.lines.push(LogLine {
            source: followed.source.clone(),
            jails: Arc::clone(&self.jails),
            time: None,
            text: line.text,
        });
        if pending.lines.len() >= BATCH_MAX_LINES || pending.bytes >= BATCH_MAX_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends a position with no lines, for the daemon to commit.
    fn announce(&mut self, followed: &Followed, cursor: FileCursor) -> Result<(), Halt> {
        self.flush()?;
        self.pending = Some(Pending { key: Arc::clone(&followed.key), lines: Vec::new(), bytes: 0, cursor });
        self.flush()
    }

    fn flush(&mut self) -> Result<(), Halt> {
        let Some(pending) = self.pending.take() else { return Ok(()) };
        let batch = Batch {
            lines: pending.lines,
            cursor: Some(Cursor { key: pending.key, value: pending.cursor.encode() }),
        };
        self.stop.send(&self.tx, SourceEvent::Lines(batch)).map_err(|_: Unsent| Halt::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: Identity = Identity { dev: 1, ino: 7 };

    #[test]
    fn start_offset_resumes_only_the_same_inode_within_its_length() {
        let at = |ino, offset| Some(FileCursor { ino, offset });
        assert_eq!(start_offset(at(7, 40), ID, 100, true, ReadFrom::End).0, 40);
        assert_eq!(start_offset(at(7, 100), ID, 100, false, ReadFrom::Start).0, 100);
        assert_eq!(start_offset(at(7, 140), ID, 100, true, ReadFrom::Start).0, 0, "truncated while down");
        assert_eq!(start_offset(at(8, 40), ID, 100, true, ReadFrom::End).0, 0, "rotated while down");
        assert_eq!(start_offset(None, ID, 100, true, ReadFrom::End).0, 100);
        assert_eq!(start_offset(None, ID, 100, true, ReadFrom::Start).0, 0);
        assert_eq!(start_offset(None, ID, 100, false, ReadFrom::End).0, 0, "a file found later is new");
    }

    #[test]
    fn cursor_keys_name_the_path() {
        assert_eq!(cursor_key(Path::new("/var/log/auth.log")), "file:/var/log/auth.log");
    }
}
