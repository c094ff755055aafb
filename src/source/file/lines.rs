//! Splitting a file's bytes into log lines, with bounded memory.
//!
//! [`LineSplitter`] owns the bytes read from a file but not yet returned as
//! lines: at most one partial line, capped at `max_line` bytes, plus one
//! read chunk. It knows the file offset of every byte, so after each line it
//! can say where a reader should resume ([`LineSplitter::committed`]).
//!
//! A line longer than the cap is returned truncated to the cap (flagged, so
//! the caller can warn) and the rest of it, up to its newline, is skipped.
//! Invalid UTF-8 becomes U+FFFD, so binary junk never stops a file. A
//! trailing `\r` (CRLF files) is dropped.

use std::io::{self, Read};

/// How much one read asks for.
const CHUNK: usize = 64 * 1024;

/// One line, without its line ending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    pub(crate) text: String,
    /// Cut at the cap; the rest of the line was skipped.
    pub(crate) truncated: bool,
}

/// Bytes read from one file and not yet returned as lines.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    max_line: usize,
    buf: Vec<u8>,
    /// `buf[..start]` has been returned or skipped.
    start: usize,
    /// `buf[start..scanned]` holds no newline.
    scanned: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Inside an over-long line whose head was already returned.
    skipping: bool,
}

impl LineSplitter {
    /// A splitter for bytes starting at file offset `offset`.
    pub(crate) fn new(max_line: usize, offset: u64) -> LineSplitter {
        LineSplitter {
            max_line: max_line.max(1),
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            base: offset,
            skipping: false,
        }
    }

    /// The file offset just after the last line returned (or skipped): where
    /// reading resumes without repeating or losing a line.
    pub(crate) fn committed(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The file offset just after the last byte read.
    pub(crate) fn read_position(&self) -> u64 {
        self.base + self.buf.len() as u64
    }

    /// Forgets everything and starts again at `offset` (after a truncation).
    pub(crate) fn reset(&mut self, offset: u64) {
        *self = LineSplitter::new(self.max_line, offset);
    }

    /// Reads one chunk from `file` (positioned at [`Self::read_position`]).
    /// Returns the number of bytes read; 0 means end of file for now.
    pub(crate) fn fill(&mut self, file: &mut impl Read) -> io::Result<usize> {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.base += self.start as u64;
            self.scanned -= self.start;
            self.start = 0;
        }
        let old_len = self.buf.len();
        self.buf.resize(old_len + CHUNK, 0);
        let result = loop {
            match file.read(&mut self.buf[old_len..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let n = *result.as_ref().unwrap_or(&0);
        self.buf.truncate(old_len + n);
        result
    }

    /// The next complete line among the bytes read, if any.
    pub(crate) fn next_line(&mut self) -> Option<Line> {
        loop {
            match memchr::memchr(b'\n', &self.buf[self.scanned..]) {
                Some(i) => {
                    let end = self.scanned + i;
                    let line_start = self.start;
                    self.start = end + 1;
                    self.scanned = self.start;
                    if std::mem::take(&mut self.skipping) {
                        continue;
                    }
                    return Some(self.make_line(line_start, end, false));
                }
                None => {
                    self.scanned = self.buf.len();
                    if self.skipping {
                        self.start = self.buf.len();
                        return None;
                    }
                    if self.buf.len() - self.start > self.max_line {
                        let line = self.make_line(self.start, self.buf.len(), true);
                        self.start = self.buf.len();
                        self.skipping = true;
                        return Some(line);
                    }
                    return None;
                }
            }
        }
    }

    /// The bytes after the last newline, as a line of their own: for a file
    /// that is finished (rotated away or truncated) without a final newline.
    pub(crate) fn take_partial(&mut self) -> Option<Line> {
        if self.skipping || self.start >= self.buf.len() {
            self.start = self.buf.len();
            self.scanned = self.start;
            self.skipping = false;
            return None;
        }
        let line = self.make_line(self.start, self.buf.len(), false);
        self.start = self.buf.len();
        self.scanned = self.start;
        Some(line)
    }

    /// `buf[start..end]` as a line, cut to the cap when longer; `unended`
    /// says the line goes on past `end` (so it is cut in any case).
    fn make_line(&self, start: usize, end: usize, unended: bool) -> Line {
        let mut bytes = &self.buf[start..end];
        let truncated = unended || bytes.len() > self.max_line;
        if bytes.len() > self.max_line {
            bytes = &bytes[..utf8_floor(bytes, self.max_line)];
        } else if let [rest @ .., b'\r'] = bytes {
            bytes = rest;
        }
        let text = match std::str::from_utf8(bytes) {
            Ok(text) => text.to_owned(),
            Err(_) => String::from_utf8_lossy(bytes).into_owned(),
        };
        Line { text, truncated }
    }
}

/// The largest index `<= max` that does not split a UTF-8 sequence, so a cut
/// never manufactures a replacement character (at most 3 bytes back).
fn utf8_floor(bytes: &[u8], max: usize) -> usize {
    let mut cut = max.min(bytes.len());
    while cut > 0 && cut + 3 > max && bytes.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_all(max: usize, input: &[u8], chunk: usize) -> (Vec<Line>, u64) {
        let mut splitter = LineSplitter::new(max, 0);
        let mut lines = Vec::new();
        for piece in input.chunks(chunk) {
            splitter.fill(&mut &piece[..]).unwrap();
            while let Some(line) = splitter.next_line() {
                lines.push(line);
            }
        }
        (lines, splitter.committed())
    }

    fn texts(lines: &[Line]) -> Vec<&str> {
        lines.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn splits_on_newlines_whatever_the_chunking() {
        let input = b"one\ntwo\r\n\nthree\npartial";
        for chunk in [1, 2, 3, 7, 100] {
            let (lines, committed) = split_all(1024, input, chunk);
            assert_eq!(texts(&lines), ["one", "two", "", "three"], "chunk {chunk}");
            assert_eq!(committed, input.len() as u64 - "partial".len() as u64);
            assert!(lines.iter().all(|l| !l.truncated));
        }
    }

    #[test]
    fn an_over_long_line_is_cut_at_the_cap_and_its_rest_skipped() {
        let mut input = b"short\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', 100));
        input.extend(b"\nafter\n");
        for chunk in [1, 10, 1000] {
            let (lines, committed) = split_all(16, &input, chunk);
            assert_eq!(texts(&lines), ["short", &"a".repeat(16), "after"], "chunk {chunk}");
            assert!(lines[1].truncated);
            assert!(!lines[2].truncated);
            assert_eq!(committed, input.len() as u64);
        }
    }

    #[test]
    fn memory_stays_bounded_by_the_cap_and_one_chunk() {
        let mut splitter = LineSplitter::new(1000, 0);
        let mut endless = std::io::repeat(b'x');
        let mut returned = 0;
        for _ in 0..50 {
            splitter.fill(&mut endless).unwrap();
            while splitter.next_line().is_some() {
                returned += 1;
            }
            assert!(splitter.buf.capacity() <= 4 * (1000 + CHUNK), "{}", splitter.buf.capacity());
        }
        assert_eq!(returned, 1, "one truncated head, then skipping until a newline");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let (lines, _) = split_all(1024, b"ok \xff\xfe end\n", 4);
        assert_eq!(texts(&lines), ["ok \u{FFFD}\u{FFFD} end"]);
    }

    #[test]
    fn a_cut_never_splits_a_utf8_sequence() {
        // "é" is two bytes: a cap of 4 falls inside the third "é".
        let (lines, _) = split_all(5, "ééé\n".as_bytes(), 100);
        assert_eq!(texts(&lines), ["éé"]);
        assert!(lines[0].truncated);
    }

    #[test]
    fn the_partial_tail_can_be_taken_once() {
        let mut splitter = LineSplitter::new(64, 10);
        splitter.fill(&mut &b"a\nrest"[..]).unwrap();
        assert_eq!(splitter.next_line().map(|l| l.text), Some("a".into()));
        assert_eq!(splitter.committed(), 12);
        assert_eq!(splitter.take_partial().map(|l| l.text), Some("rest".into()));
        assert_eq!(splitter.take_partial(), None);
        assert_eq!(splitter.committed(), 16);
        assert_eq!(splitter.read_position(), 16);
    }
}
