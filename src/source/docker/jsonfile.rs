//! Decoding Docker's `json-file` log format into timestamped lines.
//!
//! dockerd's json-file driver writes one JSON object per log message, one
//! per line of the file:
//!
//! ```text
//! {"log":"Failed password for root from 203.0.113.5\n","stream":"stderr","time":"2026-11-21T16:58:26.642569477Z"}
//! ```
//!
//! - `log` is the message, JSON-escaped. dockerd replaced invalid UTF-8 by
//!   `\ufffd` and escapes `<`, `>`, `&` and control characters as `\u00XX`.
//!   It ends with `\n` unless dockerd split the line: its log copier cuts a
//!   line longer than 16 KiB into messages that all carry the first piece's
//!   `time`, and only the last piece ends with `\n`. A TTY container's
//!   lines end with `\r\n`.
//! - `stream` is `stdout` or `stderr`; pieces of one line are joined per
//!   stream, as [`super::decode`] does for the API's multiplexed stream.
//! - `time` is RFC 3339 with up to nine fraction digits (Go trims trailing
//!   zeros), which becomes the line's time.
//! - `attrs` (from `--log-opt labels=…`) and any other key are skipped.
//!
//! The object is read by a small scanner rather than a general JSON
//! parser: it looks only at the three keys above, borrows the message when
//! nothing needs unescaping and copies it once otherwise, and skips a line
//! older than wanted without unescaping it. Keys in any order and
//! whitespace are accepted, so a file not written by dockerd still reads.
//!
//! State: per stream, the line being assembled, at most `line_max` bytes
//! (bytes past the cap are counted and dropped), and one scratch buffer for
//! unescaping the current message.

use memchr::{memchr, memchr2};

use super::decode::Decoded;
use super::timestamp::{Nanos, parse_rfc3339_nanos};

/// Why one line of a json-file log was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("not a JSON object (byte {at})")]
    Syntax { at: usize },
    #[error("no \"time\"")]
    NoTime,
    #[error("\"time\" is not an RFC 3339 timestamp")]
    BadTime,
    #[error("invalid escape in \"log\" (byte {at})")]
    BadEscape { at: usize },
}

/// Decodes the lines of one container's json-file log; see the module docs.
#[derive(Debug)]
pub struct JsonFileDecoder {
    stdout: Joiner,
    stderr: Joiner,
    /// The current message, unescaped.
    scratch: Vec<u8>,
}

impl JsonFileDecoder {
    /// A decoder capping lines at `line_max` bytes (at least 1).
    pub fn new(line_max: usize) -> JsonFileDecoder {
        let line_max = line_max.max(1);
        JsonFileDecoder { stdout: Joiner::new(line_max), stderr: Joiner::new(line_max), scratch: Vec::new() }
    }

    /// Decodes one line of the file (without its `\n`). Complete lines go
    /// to `out`. A message older than `since` is skipped without being
    /// unescaped: its line would be dropped anyway (pieces of one line
    /// share its time, and one stream's times do not go back).
    pub fn entry(
        &mut self,
        line: &[u8],
        since: Option<Nanos>,
        out: &mut impl FnMut(Decoded<'_>),
    ) -> Result<(), EntryError> {
        let fields = scan(line)?;
        let time = fields.time.ok_or(EntryError::NoTime)?;
        if time.escaped {
            return Err(EntryError::BadTime);
        }
        let time = parse_rfc3339_nanos(time.raw).ok_or(EntryError::BadTime)?;
        let joiner = match fields.stream {
            Some(RawStr { raw: b"stderr", .. }) => &mut self.stderr,
            _ => &mut self.stdout,
        };
        let Some(log) = fields.log else {
            // dockerd omits an empty message; it carries no text.
            return Ok(());
        };
        if since.is_some_and(|since| time < since) {
            joiner.skip(time, out);
            return Ok(());
        }
        let text = if log.escaped {
            self.scratch.clear();
            unescape(log.raw, &mut self.scratch).map_err(|at| EntryError::BadEscape { at })?;
            &self.scratch[..]
        } else {
            log.raw
        };
        joiner.piece(time, text, out);
        // A long message's buffer is not kept around for short ones.
        if self.scratch.capacity() > 256 * 1024 {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    /// The log ended (the container stopped): lines still open are
    /// complete as they are.
    pub fn finish(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        self.stdout.emit(out);
        self.stderr.emit(out);
    }

    /// The timestamp of the oldest line begun but not complete. A cursor
    /// past it would lose the line's remaining pieces on resume.
    pub fn oldest_open_line(&self) -> Option<Nanos> {
        match (self.stdout.time, self.stderr.time) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The time of a json-file line, or `None` when it has none readable.
pub fn entry_time(line: &[u8]) -> Option<Nanos> {
    let time = scan(line).ok()?.time?;
    if time.escaped { None } else { parse_rfc3339_nanos(time.raw) }
}

/// The line being assembled from one stream's pieces.
#[derive(Debug)]
struct Joiner {
    line_max: usize,
    /// The open line's time, when one is open.
    time: Option<Nanos>,
    line: Vec<u8>,
    /// Bytes dropped from the open line past `line_max`.
    dropped: usize,
}

impl Joiner {
    fn new(line_max: usize) -> Joiner {
        Joiner { line_max, time: None, line: Vec::new(), dropped: 0 }
    }

    /// Adds one message of this stream.
    fn piece(&mut self, time: Nanos, text: &[u8], out: &mut impl FnMut(Decoded<'_>)) {
        // Pieces of one line share its time: another time starts another
        // line, and the open one (whose end never came, as when the
        // container was killed mid-line) is complete as it is.
        if self.time.is_some_and(|open| open != time) {
            self.emit(out);
        }
        self.time = Some(time);
        let (text, complete) = match text.strip_suffix(b"\n") {
            Some(text) => (text, true),
            None => (text, false),
        };
        let text = if complete { text.strip_suffix(b"\r").unwrap_or(text) } else { text };
        if complete && text.is_empty() && self.dropped == 0 && self.line.last() == Some(&b'\r') {
            // A TTY's `\r\n` that fell on both sides of a split.
            self.line.pop();
        }
        let room = self.line_max.saturating_sub(self.line.len());
        let take = room.min(text.len());
        self.line.extend_from_slice(&text[..take]);
        self.dropped += text.len() - take;
        if complete {
            self.emit(out);
        }
    }

    /// A message older than wanted: its line is dropped, but an open line
    /// of another time is complete now.
    fn skip(&mut self, time: Nanos, out: &mut impl FnMut(Decoded<'_>)) {
        if self.time.is_some_and(|open| open != time) {
            self.emit(out);
        }
        self.line.clear();
        self.dropped = 0;
        self.time = None;
    }

    fn emit(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        let Some(time) = self.time.take() else { return };
        out(Decoded::Line { time, text: &self.line, dropped: self.dropped });
        self.line.clear();
        self.dropped = 0;
        // A long line's buffer is not kept around for short ones.
        if self.line.capacity() > 64 * 1024 {
            self.line.shrink_to(64 * 1024);
        }
    }
}

/// A JSON string as it appears between its quotes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RawStr<'a> {
    raw: &'a [u8],
    /// Whether it holds a backslash, so needs unescaping.
    escaped: bool,
}

/// The keys of an entry that matter.
#[derive(Debug, Default)]
struct Fields<'a> {
    log: Option<RawStr<'a>>,
    stream: Option<RawStr<'a>>,
    time: Option<RawStr<'a>>,
}

/// Reads one JSON object, keeping the string values of `log`, `stream`
/// and `time` and skipping everything else.
fn scan(line: &[u8]) -> Result<Fields<'_>, EntryError> {
    let mut s = Scanner { b: line, i: 0 };
    let mut fields = Fields::default();
    s.ws();
    s.expect(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            s.expect(b'"')?;
            let key = s.string()?;
            s.ws();
            s.expect(b':')?;
            s.ws();
            let slot = match key.raw {
                b"log" => Some(&mut fields.log),
                b"stream" => Some(&mut fields.stream),
                b"time" => Some(&mut fields.time),
                _ => None,
            };
            match slot {
                Some(slot) if s.peek() == Some(b'"') => {
                    s.i += 1;
                    *slot = Some(s.string()?);
                }
                // `"log": null` and the like: treated as absent.
                _ => s.skip_value()?,
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.i += 1,
                Some(b'}') => {
                    s.i += 1;
                    break;
                }
                _ => return Err(s.error()),
            }
        }
    }
    s.ws();
    if s.i != line.len() {
        return Err(s.error());
    }
    Ok(fields)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn error(&self) -> EntryError {
        EntryError::Syntax { at: self.i }
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.i += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), EntryError> {
        if self.peek() != Some(byte) {
            return Err(self.error());
        }
        self.i += 1;
        Ok(())
    }

    /// The string whose opening quote was just read; leaves `i` after its
    /// closing quote.
    fn string(&mut self) -> Result<RawStr<'a>, EntryError> {
        let start = self.i;
        let mut escaped = false;
        loop {
            let Some(found) = memchr2(b'"', b'\\', &self.b[self.i..]) else {
                self.i = self.b.len();
                return Err(self.error());
            };
            self.i += found;
            if self.b[self.i] == b'"' {
                let raw = &self.b[start..self.i];
                self.i += 1;
                return Ok(RawStr { raw, escaped });
            }
            // A backslash: the next byte is escaped (`\uXXXX`'s digits hold
            // no quote or backslash, so they need no special case here).
            escaped = true;
            self.i += 2;
            if self.i > self.b.len() {
                self.i = self.b.len();
                return Err(self.error());
            }
        }
    }

    /// Skips any JSON value: a string, an object or array (nested), or a
    /// number or literal.
    fn skip_value(&mut self) -> Result<(), EntryError> {
        match self.peek() {
            Some(b'"') => {
                self.i += 1;
                self.string().map(|_| ())
            }
            Some(b'{' | b'[') => {
                let mut depth = 0usize;
                while let Some(byte) = self.peek() {
                    self.i += 1;
                    match byte {
                        b'"' => {
                            self.string()?;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Ok(());
                            }
                        }
                        _ => {}
                    }
                }
                Err(self.error())
            }
            Some(b) if b == b'-' || b.is_ascii_alphanumeric() => {
                while self
                    .peek()
                    .is_some_and(|b| b == b'-' || b == b'+' || b == b'.' || b.is_ascii_alphanumeric())
                {
                    self.i += 1;
                }
                Ok(())
            }
            _ => Err(self.error()),
        }
    }
}

/// Appends the unescaped `raw` (a JSON string's inside) to `out`. A lone
/// UTF-16 surrogate becomes U+FFFD; raw bytes are kept as they are.
/// Returns the offset of an invalid escape.
fn unescape(raw: &[u8], out: &mut Vec<u8>) -> Result<(), usize> {
    let mut i = 0;
    while let Some(found) = memchr(b'\\', &raw[i..]) {
        out.extend_from_slice(&raw[i..i + found]);
        i += found;
        let Some(&kind) = raw.get(i + 1) else { return Err(i) };
        let simple = match kind {
            b'"' => Some(b'"'),
            b'\\' => Some(b'\\'),
            b'/' => Some(b'/'),
            b'b' => Some(0x08),
            b'f' => Some(0x0c),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'u' => None,
            _ => return Err(i),
        };
        if let Some(byte) = simple {
            out.push(byte);
            i += 2;
            continue;
        }
        let unit = hex4(raw, i + 2).ok_or(i)?;
        i += 6;
        let c = match unit {
            0xD800..=0xDBFF => {
                // A high surrogate: a low one must follow for a character.
                let low = (raw.get(i..i + 2) == Some(b"\\u")).then(|| hex4(raw, i + 2)).flatten();
                match low {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        i += 6;
                        char::from_u32(0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00))
                    }
                    _ => None,
                }
            }
            unit => char::from_u32(unit),
        };
        let mut utf8 = [0; 4];
        out.extend_from_slice(c.unwrap_or(char::REPLACEMENT_CHARACTER).encode_utf8(&mut utf8).as_bytes());
    }
    out.extend_from_slice(&raw[i..]);
    Ok(())
}

/// The four hex digits at `at`, as a number.
fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T1: &str = "2026-11-21T16:58:26.642569477Z";
    const T2: &str = "2026-11-21T16:58:26.6426Z";

    fn t(stamp: &str) -> Nanos {
        parse_rfc3339_nanos(stamp.as_bytes()).unwrap()
    }

    /// An entry as dockerd writes it (`log` already JSON-escaped).
    fn entry(log: &str, stream: &str, time: &str) -> String {
        format!(r#"{{"log":"{log}","stream":"{stream}","time":"{time}"}}"#)
    }

    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Line(Nanos, Vec<u8>, usize);

    /// Decodes `lines`, then finishes; lines and the errors by index.
    fn decode_with(
        line_max: usize,
        since: Option<Nanos>,
        lines: &[String],
    ) -> (Vec<Line>, Vec<(usize, EntryError)>) {
        let mut decoder = JsonFileDecoder::new(line_max);
        let mut found = Vec::new();
        let mut errors = Vec::new();
        let mut sink = |d: Decoded<'_>| {
            if let Decoded::Line { time, text, dropped } = d {
                found.push(Line(time, text.to_vec(), dropped));
            }
        };
        for (i, line) in lines.iter().enumerate() {
            if let Err(e) = decoder.entry(line.as_bytes(), since, &mut sink) {
                errors.push((i, e));
            }
        }
        decoder.finish(&mut sink);
        (found, errors)
    }

    fn decode(lines: &[String]) -> Vec<Line> {
        let (found, errors) = decode_with(1 << 20, None, lines);
        assert_eq!(errors, []);
        found
    }

    fn line(stamp: &str, text: &str) -> Line {
        Line(t(stamp), text.as_bytes().to_vec(), 0)
    }

    #[test]
    fn reads_what_dockerd_writes() {
        let lines = [
            entry(r"Failed password for root from 203.0.113.5 port 22 ssh2\n", "stdout", T1),
            entry(r"err \u003cb\u003e \u0026 \u0009tab \u0022q\u0022 \\ \/\n", "stderr", T2),
            // Invalid UTF-8 in the container's output, as dockerd escapes it.
            entry(r"invalid \ufffd utf-8\n", "stdout", T2),
            entry(r"\n", "stdout", T2),
            r#"{"log":"with attrs\n","stream":"stdout","attrs":{"tag":"web","x":"{\"}"},"time":"2026-11-21T16:58:26.6426Z"}"#.into(),
            // Keys in another order, with spaces, as another writer might.
            format!(r#" {{ "time" : "{T1}" , "stream":"stderr", "log" : "reordered\n" }} "#),
        ];
        assert_eq!(
            decode(&lines),
            [
                line(T1, "Failed password for root from 203.0.113.5 port 22 ssh2"),
                line(T2, "err <b> & \ttab \"q\" \\ /"),
                line(T2, "invalid \u{fffd} utf-8"),
                line(T2, ""),
                line(T2, "with attrs"),
                line(T1, "reordered"),
            ]
        );
    }

    #[test]
    fn crlf_of_tty_containers_is_dropped_and_a_lone_cr_is_kept() {
        let lines = [
            entry(r"tty line\r\n", "stdout", T1),
            entry(r"cr inside\r not at end\n", "stdout", T1),
            entry(r"ends with cr\r", "stdout", T2),
            entry(r"\n", "stdout", T2),
        ];
        assert_eq!(
            decode(&lines),
            [line(T1, "tty line"), line(T1, "cr inside\r not at end"), line(T2, "ends with cr")]
        );
    }

    #[test]
    fn split_lines_are_joined_per_stream() {
        let long = "x".repeat(40_000);
        let (a, rest) = long.split_at(16_384);
        let (b, c) = rest.split_at(16_384);
        let lines = [
            entry(a, "stdout", T1),
            entry(r"between\n", "stderr", T2),
            entry(b, "stdout", T1),
            entry(&format!(r"{c}\n"), "stdout", T1),
        ];
        let mut decoder = JsonFileDecoder::new(1 << 20);
        decoder.entry(lines[0].as_bytes(), None, &mut |_| {}).unwrap();
        assert_eq!(decoder.oldest_open_line(), Some(t(T1)));
        assert_eq!(decode(&lines), [line(T2, "between"), line(T1, &long)]);
    }

    #[test]
    fn a_split_line_whose_end_never_came_ends_at_the_next_line_or_at_finish() {
        let lines = [entry("last words", "stdout", T1), entry(r"after restart\n", "stdout", T2)];
        assert_eq!(decode(&lines), [line(T1, "last words"), line(T2, "after restart")]);
        assert_eq!(decode(&[entry("no newline", "stdout", T1)]), [line(T1, "no newline")]);
    }

    #[test]
    fn long_lines_are_capped_and_counted() {
        let pieces: Vec<String> = (0..7).map(|_| entry(&"y".repeat(16_384), "stdout", T1)).collect();
        let mut lines = pieces.clone();
        lines.push(entry(r"end\n", "stdout", T1));
        lines.push(entry(r"next\n", "stdout", T2));
        let cap = 64 * 1024;
        let (found, errors) = decode_with(cap, None, &lines);
        assert_eq!(errors, []);
        let total = 7 * 16_384 + 3;
        assert_eq!(found, [Line(t(T1), vec![b'y'; cap], total - cap), line(T2, "next")]);
    }

    #[test]
    fn invalid_lines_are_reported_and_the_next_ones_still_read() {
        let lines = [
            "".to_string(),
            "not json".into(),
            r#"{"log":"unterminated"#.into(),
            r#"{"log":"x\n","stream":"stdout"}"#.into(),
            r#"{"log":"x\n","time":"yesterday"}"#.into(),
            format!(r#"{{"log":"bad \q escape\n","time":"{T1}"}}"#),
            format!(r#"{{"log":"short \u12","time":"{T1}"}}"#),
            format!(r#"{{"log":"x\n","time":"{T1}"}} trailing"#),
            format!(r#"{{"log":"x\n","time":"{T1}""#),
            entry(r"fine\n", "stdout", T2),
        ];
        let (found, errors) = decode_with(1024, None, &lines);
        assert_eq!(found, [line(T2, "fine")]);
        let kinds: Vec<(usize, EntryError)> = errors;
        assert_eq!(
            kinds,
            [
                (0, EntryError::Syntax { at: 0 }),
                (1, EntryError::Syntax { at: 0 }),
                (2, EntryError::Syntax { at: 20 }),
                (3, EntryError::NoTime),
                (4, EntryError::BadTime),
                (5, EntryError::BadEscape { at: 4 }),
                (6, EntryError::BadEscape { at: 6 }),
                (7, EntryError::Syntax { at: 54 }),
                (8, EntryError::Syntax { at: 52 }),
            ]
        );
        assert!(EntryError::BadEscape { at: 4 }.to_string().contains("invalid escape in \"log\""));
    }

    #[test]
    fn raw_invalid_utf8_and_odd_escapes_pass_through_as_bytes() {
        let mut raw = br#"{"log":"raw "#.to_vec();
        raw.extend_from_slice(b"\xff\xfe");
        raw.extend_from_slice(format!(r#" \ud83d\ude00 \ud800 lone \udc00\n","time":"{T1}"}}"#).as_bytes());
        let mut decoder = JsonFileDecoder::new(1024);
        let mut found = Vec::new();
        decoder
            .entry(&raw, None, &mut |d| {
                if let Decoded::Line { text, .. } = d {
                    found.push(text.to_vec());
                }
            })
            .unwrap();
        assert_eq!(found, [[&b"raw \xff\xfe "[..], "😀 \u{fffd} lone \u{fffd}".as_bytes()].concat()]);
    }

    #[test]
    fn lines_older_than_since_are_skipped_like_the_replay_drops_them() {
        let long = "z".repeat(20_000);
        let (a, b) = long.split_at(16_384);
        let lines = [
            entry(r"old\n", "stdout", T1),
            entry(a, "stderr", T1),
            entry(&format!(r"{b}\n"), "stderr", T1),
            entry(r"new\n", "stdout", T2),
            // An open old line ends when its stream moves on.
            entry("old open", "stderr", T1),
            entry(r"new err\n", "stderr", T2),
        ];
        let (found, errors) = decode_with(1 << 20, Some(t(T2)), &lines);
        assert_eq!(errors, []);
        assert_eq!(found, [line(T2, "new"), line(T2, "new err")]);
        assert_eq!(entry_time(lines[3].as_bytes()), Some(t(T2)));
        assert_eq!(entry_time(b"{}"), None);
    }

    #[test]
    fn unescape_handles_every_json_escape() {
        let mut out = Vec::new();
        unescape(br#"a\"b\\c\/d\be\ff\ng\rh\ti\u00e9\u20ac"#, &mut out).unwrap();
        assert_eq!(out, "a\"b\\c/d\u{8}e\u{c}f\ng\rh\ti\u{e9}\u{20ac}".as_bytes());
        for bad in [&br"\"[..], br"\x", br"\u00", br"\u00zz"] {
            assert_eq!(unescape(bad, &mut Vec::new()), Err(0), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
