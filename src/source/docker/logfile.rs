//! One container's json-file log on disk: where reading starts, reading
//! its lines, and following it across rotation.
//!
//! dockerd writes `<dir>/<id>-json.log` (the `LogPath` of container
//! inspect). With `--log-opt max-size`, a full file is closed and rotated:
//! `<id>-json.log.1` becomes `.2` and so on up to `max-file - 1`, the live
//! file becomes `.1`, and a new live file is created; with
//! `--log-opt compress=true` the `.1` is then gzipped into `.1.gz` in the
//! background (the plain `.1` is removed once the `.gz` is complete). With
//! `max-file=1` the full file is truncated in place instead.
//!
//! [`LogFiles`] holds the files still to read as open descriptors, oldest
//! first (its *segments*). An open descriptor keeps reading the same file
//! whatever it is renamed to or whether it is removed, so following needs
//! no guessing from names: [`LogFiles::refresh`] looks at the live path,
//! and a new file there is opened and queued behind the one being read.
//! Since dockerd closes a file before it renames it, a segment with a
//! successor is complete once read to its end. As long as the path is
//! looked at once per rotation, nothing is lost or read twice; the
//! follower looks on every inotify event and on every read. Files rotated
//! more than once between two looks are found at `.1`, `.2`, … while they
//! are not compressed yet; a file compressed before warden ever saw it
//! cannot be told apart from older ones and is not guessed at.
//!
//! With `max-file=1`, the live file is checked after every read for having
//! been truncated: shorter than what was read, or beginning with another
//! first line (which carries its time). It is then read again from its
//! start; lines written between the last read and the truncation are lost,
//! as they are to dockerd's own readers.
//!
//! Where to start is decided by time, with the same [`Replay`] semantics as
//! the API's `since`: the newest file whose first line is older than
//! `since` (the files are in time order), and in a large file a binary
//! search for a line a little older than `since`. Lines before `since`
//! are then dropped one by one by the caller, exactly as dockerd would.
//!
//! Memory: a 64 KiB read buffer, grown only for an entry longer than that
//! (dockerd's are at most ~100 KiB: 16 KiB of text, escaped) and capped at
//! [`ENTRY_MAX`]; a longer entry is skipped.
//!
//! Reads are plain `pread(2)` calls of at most [`CHUNK`] bytes on the
//! caller's task: the log was just written and sits in the page cache, and
//! a cold file costs one disk read per call, like any bounded piece of work
//! on a tokio worker.
//!
//! The file source's pieces ([`crate::source::file`]) follow rotation by
//! name with a grace period and split lines into `String`s on a blocking
//! thread; json-file's rotation is simpler (dockerd closes before
//! renaming) and its lines are bytes to decode, so this module is its own.
//!
//! [`Replay`]: super::cursor::Replay

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use memchr::memchr;

use super::jsonfile::entry_time;
use super::timestamp::Nanos;

/// How much one read asks for.
pub const CHUNK: usize = 64 * 1024;
/// An entry longer than this is skipped; dockerd writes at most ~100 KiB.
pub const ENTRY_MAX: usize = 1024 * 1024;
/// Files waiting to be read at most; when warden falls further behind,
/// the oldest are given up (dockerd would have removed them meanwhile).
const SEGMENTS_MAX: usize = 16;
/// A file at least this large is searched for the start rather than read
/// from its beginning.
const SEARCH_MIN: u64 = 1024 * 1024;
/// The search stops when the range is this small.
const SEARCH_STOP: u64 = 64 * 1024;
/// The search looks for a line this much older than `since`, so that the
/// lines at `since` and all pieces of a split line are after it even if
/// timestamps are slightly out of write order.
const SEARCH_MARGIN: Nanos = 1_000_000_000;
/// At most this much of the live file's first line is kept to notice it
/// was truncated and written again past where reading stood.
const HEAD: usize = 1024;
/// Times [`LogFiles::open`] tries to list the files while no rotation
/// happens.
const OPEN_ATTEMPTS: usize = 5;

/// What [`LogFiles::read`] hands over.
#[derive(Debug, PartialEq, Eq)]
pub enum Raw<'a> {
    /// One line of the file, without its `\n`.
    Line(&'a [u8]),
    /// A line longer than [`ENTRY_MAX`] was skipped.
    TooLong,
}

/// What [`LogFiles::read`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Bytes were read; there may be more.
    Read,
    /// The end of the live file: wait for news.
    Idle,
}

/// A container's json-file log; see the module docs.
#[derive(Debug)]
pub struct LogFiles {
    path: PathBuf,
    /// Oldest first; the last one is the file at `path` when last looked.
    segments: VecDeque<Segment>,
    /// `buf[..filled]` holds bytes read from the front segment;
    /// `buf[..start]` was handed over; `buf[start..scanned]` has no `\n`.
    buf: Vec<u8>,
    filled: usize,
    start: usize,
    scanned: usize,
    /// Inside a line longer than [`ENTRY_MAX`], skipping to its end.
    skipping: bool,
}

#[derive(Debug)]
struct Segment {
    /// The file's name when opened, for messages.
    name: String,
    body: Body,
}

#[derive(Debug)]
enum Body {
    Plain {
        file: File,
        ino: u64,
        /// Bytes read so far (into the buffer): where the next read starts.
        pos: u64,
        /// The first bytes of the file as last seen.
        head: Vec<u8>,
    },
    /// A rotated file dockerd compressed; complete, read once.
    Gzip(Box<GzDecoder<File>>),
}

impl LogFiles {
    /// Opens the log at `path` (the live file) with its rotated files and
    /// positions it at the first file that may hold lines from `since` on
    /// (`None`: the oldest file's beginning).
    pub fn open(path: &Path, since: Option<Nanos>) -> io::Result<LogFiles> {
        let mut segments = snapshot(path)?;
        if let Some(since) = since {
            let mut first = 0;
            for (i, segment) in segments.iter().enumerate().rev() {
                if segment.first_time()?.is_some_and(|t| t < since) {
                    first = i;
                    break;
                }
            }
            segments.drain(..first);
            if let Some(Segment { body: Body::Plain { file, pos, .. }, .. }) = segments.front_mut()
                && file.metadata()?.len() >= SEARCH_MIN
            {
                *pos = search(file, since.saturating_sub(SEARCH_MARGIN))?;
            }
        }
        let mut files = LogFiles {
            path: path.to_path_buf(),
            segments,
            buf: vec![0; CHUNK],
            filled: 0,
            start: 0,
            scanned: 0,
            skipping: false,
        };
        if let Some(Segment { body: Body::Plain { file, head, .. }, .. }) = files.segments.back_mut() {
            *head = read_head(file)?;
        }
        Ok(files)
    }

    /// The live file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads one chunk and hands over the complete lines it finished.
    /// Finished rotated files are closed on the way; at the end of the live
    /// file, looks for a rotation once more before saying
    /// [`Progress::Idle`].
    pub fn read(&mut self, on: &mut impl FnMut(Raw<'_>)) -> io::Result<Progress> {
        // Looking on every read keeps up with rotations even when reading
        // lags far behind the writer.
        self.refresh()?;
        loop {
            self.start_read();
            let only = self.segments.len() == 1;
            let Some(front) = self.segments.front_mut() else { return Ok(Progress::Idle) };
            let n = match front.read(&mut self.buf[self.filled..]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if matches!(front.body, Body::Gzip(_)) => {
                    tracing::warn!(file = %front.name, error = %e, "cannot decompress a rotated log file; skipping its rest");
                    0
                }
                Err(e) => return Err(e),
            };
            // Checked after the read, so that a chunk read across a
            // truncation is never handed over.
            if only && front.truncated()? {
                tracing::warn!(
                    file = %front.name,
                    "json-file log truncated in place (max-file=1?); reading it again from its start (lines written just before are lost)"
                );
                front.restart();
                self.reset_buffer();
                continue;
            }
            if n > 0 {
                self.filled += n;
                self.hand_over(on);
                return Ok(Progress::Read);
            }
            if self.segments.len() > 1 {
                // Its successor was known before this read: dockerd had
                // closed it, so this end is final.
                self.finish_front(on);
                continue;
            }
            self.refresh()?;
            if self.segments.len() == 1 {
                return Ok(Progress::Idle);
            }
            // A successor just appeared: the loop reads this file once more
            // for what was written before it was closed.
        }
    }

    /// Looks at the live path: a new file there (a rotation) is queued
    /// behind the ones being read, after any file it finds rotated in
    /// between (at `.1`, `.2`, … and not compressed yet).
    pub fn refresh(&mut self) -> io::Result<()> {
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            // Between a rotation's rename and create, or the container is
            // being removed: nothing new yet.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if self.holds(meta.ino()) {
            return Ok(());
        }
        let Some(live) = open_plain(&self.path)? else { return Ok(()) };
        if self.holds(live.ino().unwrap_or_default()) {
            return Ok(());
        }
        // Files rotated more than once since the last look: newest first,
        // up to one already held.
        let mut missed = Vec::new();
        for k in 1..=SEGMENTS_MAX as u32 {
            let rotated = PathBuf::from(format!("{}.{k}", self.path.display()));
            match open_plain(&rotated)? {
                Some(segment) if !self.holds(segment.ino().unwrap_or_default()) => missed.push(segment),
                _ => break,
            }
        }
        tracing::debug!(path = %self.path.display(), missed = missed.len(), "json-file log rotated; reading the new file after the old one");
        self.segments.extend(missed.into_iter().rev());
        self.segments.push_back(live);
        while self.segments.len() > SEGMENTS_MAX {
            let skipped = self.segments.pop_front().map(|s| s.name).unwrap_or_default();
            self.reset_buffer();
            tracing::warn!(
                path = %self.path.display(), skipped = %skipped,
                "the log rotated more than {SEGMENTS_MAX} times while warden was behind; the oldest file is skipped"
            );
        }
        Ok(())
    }

    fn holds(&self, ino: u64) -> bool {
        self.segments.iter().any(|s| s.ino() == Some(ino))
    }

    /// A segment with a successor ended: an unfinished last line (dockerd
    /// always ends its lines, so only after a crash) is handed over as it
    /// is, and the next segment starts with an empty buffer.
    fn finish_front(&mut self, on: &mut impl FnMut(Raw<'_>)) {
        if self.start < self.filled && !self.skipping {
            on(Raw::Line(&self.buf[self.start..self.filled]));
        }
        self.segments.pop_front();
        self.reset_buffer();
    }

    fn reset_buffer(&mut self) {
        self.filled = 0;
        self.start = 0;
        self.scanned = 0;
        self.skipping = false;
        if self.buf.len() > CHUNK {
            self.buf.truncate(CHUNK);
            self.buf.shrink_to_fit();
        }
    }

    /// Makes room for a read: moves the unfinished line to the front, and
    /// grows the buffer only when that line fills it.
    fn start_read(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.filled, 0);
            self.filled -= self.start;
            self.scanned -= self.start;
            self.start = 0;
        }
        if self.filled == self.buf.len() {
            self.buf.resize(self.buf.len() + CHUNK, 0);
        } else if self.filled < CHUNK && self.buf.len() > CHUNK {
            self.buf.truncate(CHUNK);
            self.buf.shrink_to_fit();
        }
    }

    /// Hands over the complete lines in the buffer.
    fn hand_over(&mut self, on: &mut impl FnMut(Raw<'_>)) {
        while let Some(i) = memchr(b'\n', &self.buf[self.scanned..self.filled]) {
            let end = self.scanned + i;
            if !std::mem::take(&mut self.skipping) {
                on(Raw::Line(&self.buf[self.start..end]));
            }
            self.start = end + 1;
            self.scanned = self.start;
        }
        self.scanned = self.filled;
        if self.filled - self.start > ENTRY_MAX {
            if !self.skipping {
                on(Raw::TooLong);
            }
            self.skipping = true;
            self.start = self.filled;
        }
    }
}

impl Segment {
    fn ino(&self) -> Option<u64> {
        match &self.body {
            Body::Plain { ino, .. } => Some(*ino),
            Body::Gzip(_) => None,
        }
    }

    /// Whether the file is now shorter than what was read from it, or
    /// begins differently: dockerd truncated it in place (`max-file=1`).
    fn truncated(&mut self) -> io::Result<bool> {
        let Body::Plain { file, pos, head, .. } = &mut self.body else { return Ok(false) };
        if file.metadata()?.len() < *pos {
            return Ok(true);
        }
        let now = read_head(file)?;
        let common = now.len().min(head.len());
        if now[..common] != head[..common] {
            return Ok(true);
        }
        if now.len() > head.len() {
            *head = now;
        }
        Ok(false)
    }

    /// Reads the file again from its start.
    fn restart(&mut self) {
        if let Body::Plain { pos, head, .. } = &mut self.body {
            *pos = 0;
            head.clear();
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.body {
            Body::Plain { file, pos, .. } => {
                let n = file.read_at(buf, *pos)?;
                *pos += n as u64;
                Ok(n)
            }
            Body::Gzip(decoder) => decoder.read(buf),
        }
    }

    /// The time of the file's first line, without moving where reading is.
    fn first_time(&self) -> io::Result<Option<Nanos>> {
        let line = match &self.body {
            Body::Plain { file, .. } => first_line(At { file, pos: 0 })?,
            Body::Gzip(decoder) => {
                let at = At { file: decoder.get_ref(), pos: 0 };
                // Unreadable: it cannot be read later either.
                first_line(GzDecoder::new(at)).unwrap_or_default()
            }
        };
        Ok(line.as_deref().and_then(entry_time))
    }
}

/// Reads a file through `read_at`, leaving the descriptor's own offset.
struct At<'a> {
    file: &'a File,
    pos: u64,
}

impl Read for At<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// The first complete line of `reader`, if one ends within [`ENTRY_MAX`].
fn first_line(mut reader: impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut line = Vec::new();
    let mut chunk = vec![0; 4096];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr(b'\n', &chunk[..n]) {
            line.extend_from_slice(&chunk[..i]);
            return Ok(Some(line));
        }
        line.extend_from_slice(&chunk[..n]);
        if line.len() > ENTRY_MAX {
            return Ok(None);
        }
    }
}

/// The file at `path` as a plain segment; `None` when there is none.
fn open_plain(path: &Path) -> io::Result<Option<Segment>> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let ino = file.metadata()?.ino();
    Ok(Some(Segment { name: file_name(path), body: Body::Plain { file, ino, pos: 0, head: Vec::new() } }))
}

/// The file's first line (with its `\n`), or as much of it as [`HEAD`]
/// holds: it carries the first entry's time, so a file truncated and
/// written again does not begin the same.
fn read_head(file: &File) -> io::Result<Vec<u8>> {
    let mut head = vec![0; HEAD];
    let mut n = 0;
    while n < HEAD {
        match file.read_at(&mut head[n..], n as u64) {
            Ok(0) => break,
            Ok(read) => n += read,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    head.truncate(n);
    if let Some(end) = memchr(b'\n', &head) {
        head.truncate(end + 1);
    }
    Ok(head)
}

/// The offset of a line start in `file` whose line is older than
/// `target`, as late as a binary search finds within [`SEARCH_STOP`]; 0
/// when there is none. Lines between it and the first one at `target`
/// are few and are dropped by time as they are read.
fn search(file: &File, target: Nanos) -> io::Result<u64> {
    let (mut lo, mut hi) = (0, file.metadata()?.len());
    while hi - lo > SEARCH_STOP {
        let mid = lo + (hi - lo) / 2;
        match line_after(file, mid)? {
            Some((start, Some(time))) if time < target && start < hi => lo = start,
            _ => hi = mid,
        }
    }
    Ok(lo)
}

/// The start and time of the first complete line starting after `at`.
fn line_after(file: &File, at: u64) -> io::Result<Option<(u64, Option<Nanos>)>> {
    let mut reader = At { file, pos: at };
    let mut chunk = vec![0; 4096];
    let mut skipped = 0usize;
    loop {
        let n = reader.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(i) = memchr(b'\n', &chunk[..n]) {
            let start = at + (skipped + i + 1) as u64;
            let line = first_line(At { file, pos: start })?;
            return Ok(line.map(|line| (start, entry_time(&line))));
        }
        skipped += n;
        if skipped > ENTRY_MAX {
            return Ok(None);
        }
    }
}

/// Opens the live file and the rotated ones as they are at one moment
/// (no rotation in between, or else it tries again), oldest first.
fn snapshot(path: &Path) -> io::Result<VecDeque<Segment>> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    let base = file_name(path);
    for _ in 0..OPEN_ATTEMPTS {
        let before = std::fs::metadata(path)?.ino();
        let mut rotated = rotated_files(dir, &base)?;
        let live = File::open(path)?;
        let live_ino = live.metadata()?.ino();
        if live_ino != before {
            continue;
        }
        let mut segments = VecDeque::new();
        let mut vanished = false;
        // Newest first, so that a file renamed meanwhile is met twice (and
        // dropped as a duplicate) rather than missed.
        rotated.sort_by_key(|(k, _)| *k);
        for (_, name) in &rotated {
            let file = match File::open(dir.join(name)) {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    vanished = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            let body = if name.ends_with(".gz") {
                Body::Gzip(Box::new(GzDecoder::new(file)))
            } else {
                let ino = file.metadata()?.ino();
                Body::Plain { file, ino, pos: 0, head: Vec::new() }
            };
            segments.push_front(Segment { name: name.clone(), body });
        }
        if vanished || std::fs::metadata(path)?.ino() != before {
            continue;
        }
        let mut seen = vec![live_ino];
        segments.retain(|s| match s.ino() {
            Some(ino) if seen.contains(&ino) => false,
            Some(ino) => {
                seen.push(ino);
                true
            }
            None => true,
        });
        segments.push_back(Segment {
            name: base,
            body: Body::Plain { file: live, ino: live_ino, pos: 0, head: Vec::new() },
        });
        return Ok(segments);
    }
    tracing::warn!(path = %path.display(), "the json-file log kept rotating while warden listed it; reading only the live file");
    let file = File::open(path)?;
    let ino = file.metadata()?.ino();
    Ok(VecDeque::from([Segment { name: base, body: Body::Plain { file, ino, pos: 0, head: Vec::new() } }]))
}

/// The rotated files of `base` in `dir`: `(k, name)` for `<base>.<k>` and
/// `<base>.<k>.gz`, the plain one when both exist (the `.gz` is still
/// being written then).
fn rotated_files(dir: &Path, base: &str) -> io::Result<Vec<(u32, String)>> {
    let mut found: Vec<(u32, String)> = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(suffix) = name.strip_prefix(base).and_then(|s| s.strip_prefix('.')) else { continue };
        let (number, gz) = match suffix.strip_suffix(".gz") {
            Some(number) => (number, true),
            None => (suffix, false),
        };
        let Ok(k) = number.parse::<u32>() else { continue };
        match found.iter_mut().find(|(other, _)| *other == k) {
            Some(existing) if !gz => existing.1 = name.to_string(),
            Some(_) => {}
            None => found.push((k, name.to_string())),
        }
    }
    Ok(found)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    const BASE: Nanos = 1_795_366_706_000_000_000;

    /// A json-file entry for line `i`, `i` µs after BASE.
    fn entry(i: usize) -> String {
        let stamp = jiff::Timestamp::from_nanosecond(i128::from(BASE + i as i64 * 1000)).unwrap();
        format!("{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"{stamp:.9}\"}}\n")
    }

    fn entries(range: std::ops::Range<usize>) -> String {
        range.map(entry).collect()
    }

    /// The numbers of the lines read, until idle.
    fn read_all(files: &mut LogFiles) -> Vec<usize> {
        let mut found = Vec::new();
        while files.read(&mut |raw| found.push(number(&raw))).unwrap() == Progress::Read {}
        found
    }

    fn number(raw: &Raw<'_>) -> usize {
        let Raw::Line(line) = raw else { panic!("{raw:?}") };
        let text = std::str::from_utf8(line).unwrap();
        let n = text.split("line ").nth(1).unwrap().split('\\').next().unwrap();
        n.parse().unwrap()
    }

    struct Log {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl Log {
        fn new() -> Log {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("abc-json.log");
            std::fs::write(&path, "").unwrap();
            Log { _dir: dir, path }
        }

        fn append(&self, text: &str) {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&self.path)
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }

        fn rotated(&self, k: u32, gz: bool) -> PathBuf {
            let suffix = if gz { ".gz" } else { "" };
            PathBuf::from(format!("{}.{k}{suffix}", self.path.display()))
        }

        /// What dockerd does at `max-size` with `max-file` files.
        fn rotate(&self, max_file: u32, compress: bool) {
            let _ = std::fs::remove_file(self.rotated(max_file - 1, compress));
            for k in (1..max_file - 1).rev() {
                let _ = std::fs::rename(self.rotated(k, compress), self.rotated(k + 1, compress));
            }
            std::fs::rename(&self.path, self.rotated(1, false)).unwrap();
            std::fs::write(&self.path, "").unwrap();
            if compress {
                let plain = std::fs::read(self.rotated(1, false)).unwrap();
                let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
                gz.write_all(&plain).unwrap();
                std::fs::write(self.rotated(1, true), gz.finish().unwrap()).unwrap();
                std::fs::remove_file(self.rotated(1, false)).unwrap();
            }
        }
    }

    #[test]
    fn follows_appends_and_hands_over_only_complete_lines() {
        let log = Log::new();
        log.append(&entries(0..3));
        let mut files = LogFiles::open(&log.path, None).unwrap();
        assert_eq!(read_all(&mut files), [0, 1, 2]);
        let next = entry(3);
        let (a, b) = next.split_at(20);
        log.append(a);
        assert_eq!(read_all(&mut files), Vec::<usize>::new());
        log.append(b);
        log.append(&entry(4));
        assert_eq!(read_all(&mut files), [3, 4]);
    }

    #[test]
    fn follows_rotation_plain_and_compressed_without_loss_or_repeats() {
        for compress in [false, true] {
            let log = Log::new();
            let mut files = LogFiles::open(&log.path, None).unwrap();
            let mut expected = Vec::new();
            let mut found = Vec::new();
            let mut next = 0;
            for round in 0..6 {
                log.append(&entries(next..next + 5));
                expected.extend(next..next + 5);
                next += 5;
                // Half the rounds are read before the rotation, half only after.
                if round % 2 == 0 {
                    found.extend(read_all(&mut files));
                }
                log.rotate(3, compress);
                // The follower looks on each inotify event. Plain files
                // are found again even without that look.
                if compress {
                    files.refresh().unwrap();
                }
            }
            log.append(&entries(next..next + 2));
            expected.extend(next..next + 2);
            found.extend(read_all(&mut files));
            assert_eq!(found, expected, "compress={compress}");
        }
    }

    #[test]
    fn rotations_between_looks_are_caught_up_while_the_files_are_plain() {
        let log = Log::new();
        log.append(&entries(0..2));
        let mut files = LogFiles::open(&log.path, None).unwrap();
        assert_eq!(read_all(&mut files), [0, 1]);
        log.append(&entries(2..4));
        log.rotate(5, false);
        files.refresh().unwrap();
        log.append(&entries(4..6));
        log.rotate(5, false);
        log.append(&entries(6..8));
        log.rotate(5, false);
        files.refresh().unwrap();
        assert_eq!(read_all(&mut files), [2, 3, 4, 5, 6, 7]);
        log.append(&entries(8..9));
        assert_eq!(read_all(&mut files), [8]);
        // Compressed meanwhile, the file in between cannot be told from
        // older ones: it is not guessed at.
        log.append(&entries(9..10));
        log.rotate(5, true);
        log.append(&entries(10..11));
        log.rotate(5, true);
        log.append(&entries(11..12));
        assert_eq!(read_all(&mut files), [9, 11]);
    }

    #[test]
    fn opening_starts_at_the_file_holding_since_and_reads_older_files_first() {
        for compress in [false, true] {
            let log = Log::new();
            log.append(&entries(0..10));
            log.rotate(4, compress);
            log.append(&entries(10..20));
            log.rotate(4, compress);
            log.append(&entries(20..25));
            let mut all = LogFiles::open(&log.path, None).unwrap();
            assert_eq!(read_all(&mut all), (0..25).collect::<Vec<_>>(), "compress={compress}");
            // Line 15 is in the middle file: the oldest is not read.
            let since = BASE + 15_000;
            let mut from = LogFiles::open(&log.path, Some(since)).unwrap();
            assert_eq!(read_all(&mut from), (10..25).collect::<Vec<_>>(), "compress={compress}");
            // Exactly the first line of the newest file: the one before may
            // hold lines at the same time, so it is read too.
            let mut at = LogFiles::open(&log.path, Some(BASE + 20_000)).unwrap();
            assert_eq!(read_all(&mut at)[0], 10, "compress={compress}");
            let mut late = LogFiles::open(&log.path, Some(BASE + 1_000_000)).unwrap();
            assert_eq!(read_all(&mut late), (20..25).collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_large_file_is_searched_for_the_start() {
        let log = Log::new();
        // ~4 MB: 1 µs apart, lines 0..40,000; the margin is 1 s = all of it,
        // so space them 100 ms apart instead.
        let mut text = String::new();
        for i in 0..40_000 {
            let stamp = jiff::Timestamp::from_nanosecond(i128::from(BASE + i as i64 * 100_000_000)).unwrap();
            text.push_str(&format!(
                "{{\"log\":\"line {i}\\n\",\"stream\":\"stdout\",\"time\":\"{stamp:.9}\"}}\n"
            ));
        }
        log.append(&text);
        let since = BASE + 30_000 * 100_000_000;
        let mut files = LogFiles::open(&log.path, Some(since)).unwrap();
        let found = read_all(&mut files);
        let first = found[0];
        assert!((29_000..=29_990).contains(&first), "started at line {first}");
        assert_eq!(found, (first..40_000).collect::<Vec<_>>());
    }

    #[test]
    fn truncation_in_place_is_read_again_from_the_start() {
        let log = Log::new();
        log.append(&entries(0..20));
        let mut files = LogFiles::open(&log.path, None).unwrap();
        assert_eq!(read_all(&mut files).len(), 20);
        // max-file=1: truncated, then written past where reading stood.
        std::fs::write(&log.path, entries(100..130)).unwrap();
        assert_eq!(read_all(&mut files), (100..130).collect::<Vec<_>>());
        std::fs::write(&log.path, entries(200..201)).unwrap();
        assert_eq!(read_all(&mut files), [200]);
    }

    #[test]
    fn a_line_longer_than_the_cap_is_skipped_and_memory_stays_bounded() {
        let log = Log::new();
        log.append(&entry(0));
        log.append(&format!("{{\"log\":\"{}\"}}\n", "x".repeat(3 * ENTRY_MAX)));
        log.append(&entry(1));
        let mut files = LogFiles::open(&log.path, None).unwrap();
        let mut found = Vec::new();
        let mut too_long = 0;
        loop {
            let progress = files
                .read(&mut |raw| match raw {
                    Raw::TooLong => too_long += 1,
                    raw => found.push(number(&raw)),
                })
                .unwrap();
            assert!(files.buf.len() <= ENTRY_MAX + 2 * CHUNK, "buffer of {}", files.buf.len());
            if progress == Progress::Idle {
                break;
            }
        }
        assert_eq!((found, too_long), (vec![0, 1], 1));
        assert_eq!(files.buf.len(), CHUNK, "the buffer shrinks back");
    }

    #[test]
    fn rotated_files_are_listed_plain_over_gz_and_others_ignored() {
        let dir = tempfile::tempdir().unwrap();
        for name in
            ["c-json.log", "c-json.log.1", "c-json.log.1.gz", "c-json.log.2.gz", "c-json.log.x", "other.1"]
        {
            std::fs::write(dir.path().join(name), "").unwrap();
        }
        let mut found = rotated_files(dir.path(), "c-json.log").unwrap();
        found.sort();
        assert_eq!(found, [(1, "c-json.log.1".to_string()), (2, "c-json.log.2.gz".to_string())]);
    }
}
