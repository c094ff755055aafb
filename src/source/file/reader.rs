//! One open log file: its identity, its read position and the cursor that
//! records both.
//!
//! A [`Reader`] owns an open handle, so it keeps reading the same file after
//! the path is renamed or removed (the old file of a rotation), and a
//! [`LineSplitter`] holding the bytes of an unfinished line. Its
//! [`FileCursor`] is the inode and the offset after the last line returned,
//! which is what the store keeps under `file:<path>`.

use std::fmt;
use std::fs::{File, Metadata};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::lines::{Line, LineSplitter};

/// Which file a path named: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
}

impl Identity {
    pub(crate) fn of(meta: &Metadata) -> Identity {
        Identity { dev: meta.dev(), ino: meta.ino() }
    }
}

/// Where reading a file stands, as stored: `<inode>:<offset>` in ASCII.
///
/// Only the inode is kept, not the device: device numbers of the same
/// filesystem may differ between boots or between the host and a container
/// (overlay, bind mounts), while the inode of a log file stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileCursor {
    pub ino: u64,
    /// Bytes from the start of the file up to the first line not yet read.
    pub offset: u64,
}

impl FileCursor {
    pub fn encode(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    /// `None` for bytes that are not a cursor this module wrote.
    pub fn decode(bytes: &[u8]) -> Option<FileCursor> {
        let text = std::str::from_utf8(bytes).ok()?;
        let (ino, offset) = text.split_once(':')?;
        Some(FileCursor { ino: ino.parse().ok()?, offset: offset.parse().ok()? })
    }
}

impl fmt::Display for FileCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.ino, self.offset)
    }
}

/// An open file being read line by line.
#[derive(Debug)]
pub(crate) struct Reader {
    file: File,
    identity: Identity,
    lines: LineSplitter,
}

impl Reader {
    /// Opens `path` and positions it at `offset`, clamped to the file's
    /// length.
    pub(crate) fn open(path: &Path, offset: u64, max_line: usize) -> io::Result<Reader> {
        let mut file = File::open(path)?;
        // The identity comes from the open handle: a rename between the
        // caller's stat and this open shows as a rotation at the next check.
        let meta = file.metadata()?;
        let identity = Identity::of(&meta);
        let offset = offset.min(meta.len());
        file.seek(SeekFrom::Start(offset))?;
        Ok(Reader { file, identity, lines: LineSplitter::new(max_line, offset) })
    }

    pub(crate) fn identity(&self) -> Identity {
        self.identity
    }

    /// The cursor after the last line returned.
    pub(crate) fn cursor(&self) -> FileCursor {
        FileCursor { ino: self.identity.ino, offset: self.lines.committed() }
    }

    /// The next complete line, reading more of the file when needed; `None`
    /// once the end of what was written so far is reached.
    pub(crate) fn next_line(&mut self) -> io::Result<Option<Line>> {
        loop {
            if let Some(line) = self.lines.next_line() {
                return Ok(Some(line));
            }
            if self.lines.fill(&mut self.file)? == 0 {
                return Ok(None);
            }
        }
    }

    /// Whether the file is now shorter than what was read from it: it was
    /// truncated in place (`copytruncate`, `> file`).
    pub(crate) fn was_truncated(&self) -> io::Result<bool> {
        Ok(self.file.metadata()?.len() < self.lines.read_position())
    }

    /// Starts again from the beginning of the same file, returning the
    /// unfinished line that was pending, if any.
    pub(crate) fn restart(&mut self) -> io::Result<Option<Line>> {
        let partial = self.lines.take_partial();
        self.file.seek(SeekFrom::Start(0))?;
        self.lines.reset(0);
        Ok(partial)
    }

    /// Ends reading: the unfinished line that was pending, if any, as a
    /// line (the file will not be read again).
    pub(crate) fn finish(mut self) -> (Option<Line>, FileCursor) {
        let partial = self.lines.take_partial();
        (partial, self.cursor())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let cursor = FileCursor { ino: 1_234_567, offset: 89 };
        assert_eq!(cursor.encode(), b"1234567:89");
        assert_eq!(FileCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [&b""[..], b"12", b"a:1", b"1:", b"1:2:3", b"\xff:1"] {
            assert_eq!(FileCursor::decode(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn reads_lines_from_an_offset_and_notices_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "first\nsecond\nthi").unwrap();
        let mut reader = Reader::open(&path, 6, 1024).unwrap();
        assert_eq!(reader.next_line().unwrap().map(|l| l.text), Some("second".into()));
        assert_eq!(reader.next_line().unwrap(), None);
        assert_eq!(reader.cursor().offset, 13);

        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"rd\n").unwrap();
        assert_eq!(reader.next_line().unwrap().map(|l| l.text), Some("third".into()));
        assert!(!reader.was_truncated().unwrap());

        std::fs::write(&path, "new\n").unwrap();
        assert!(reader.was_truncated().unwrap());
        assert_eq!(reader.restart().unwrap(), None);
        assert_eq!(reader.next_line().unwrap().map(|l| l.text), Some("new".into()));
        assert_eq!(reader.cursor().offset, 4);
    }

    #[test]
    fn an_offset_past_the_end_is_clamped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, "abc\n").unwrap();
        let reader = Reader::open(&path, 100, 1024).unwrap();
        assert_eq!(reader.cursor().offset, 4);
    }
}
