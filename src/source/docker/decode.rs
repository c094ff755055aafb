//! Turning the bytes of a Docker log stream into timestamped lines.
//!
//! A stream from `GET /containers/{id}/logs?timestamps=1` comes in one of
//! two framings:
//!
//! - **multiplexed** (containers without a TTY): frames of an 8-byte header
//!   (stream type: 1 stdout, 2 stderr, 3 an error from dockerd itself; then
//!   a big-endian `u32` length) and a payload, one log message per frame;
//! - **raw** (TTY containers): the messages back to back, each ending with
//!   `\n` (a TTY writes `\r\n`).
//!
//! Each message is `<RFC 3339 timestamp> <text>`. Docker's log copier cuts
//! a line longer than its buffer (16 KiB) into several messages that all
//! carry the timestamp of the first piece, and only the last ends with
//! `\n`. In a multiplexed stream each piece is its own frame, so pieces with
//! the same timestamp on the same stream are joined. In a raw stream nothing
//! marks where a piece ends, so in long lines the repeated `<timestamp> `
//! prefix of the line's own timestamp is cut out.
//!
//! State: per output stream, the message being read and the line being
//! assembled. Memory is bounded by `line_max` per stream whatever arrives:
//! bytes past the cap are counted and dropped until the line ends.

use memchr::{memchr, memchr2, memmem};

use super::timestamp::{Nanos, parse_rfc3339_nanos};

/// Longest timestamp prefix accepted (`2006-01-02T15:04:05.000000000+07:00`
/// is 35 bytes).
const STAMP_MAX: usize = 40;
/// How much of an in-band dockerd message is kept for the warning.
const DAEMON_MESSAGE_MAX: usize = 1024;
/// Raw-stream lines at least this long are searched for the repeated
/// timestamp of a split line. Docker splits at 16 KiB; searching from 1 KiB
/// leaves room for log drivers with smaller buffers and costs nothing for
/// ordinary lines.
const SPLIT_SEARCH_MIN: usize = 1024;

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// One complete log line, without its line ending.
    Line {
        time: Nanos,
        text: &'a [u8],
        /// Bytes dropped from the end because the line exceeded `line_max`
        /// (in a raw stream this may count a few bytes of Docker's split
        /// markers and line ending too).
        dropped: usize,
    },
    /// Text dockerd put in the stream itself (for example
    /// `Error grabbing logs: ...`), not container output.
    DaemonMessage(&'a [u8]),
}

/// Decodes one log stream; see the module docs.
#[derive(Debug)]
pub struct LogDecoder {
    framing: Framing,
}

#[derive(Debug)]
enum Framing {
    Raw(StreamLines),
    Multiplexed { frame: Frame, stdout: Box<StreamLines>, stderr: Box<StreamLines>, daemon: Vec<u8> },
}

/// Where the multiplexed reader is within a frame.
#[derive(Debug)]
enum Frame {
    Header { bytes: [u8; 8], len: usize },
    Payload { stream: u8, remaining: usize },
}

impl LogDecoder {
    /// A decoder for a TTY container's raw stream (`tty`) or a multiplexed
    /// one, capping lines at `line_max` bytes (at least 1).
    pub fn new(tty: bool, line_max: usize) -> LogDecoder {
        let line_max = line_max.max(1);
        let framing = if tty {
            Framing::Raw(StreamLines::new(true, line_max))
        } else {
            Framing::Multiplexed {
                frame: Frame::Header { bytes: [0; 8], len: 0 },
                stdout: Box::new(StreamLines::new(false, line_max)),
                stderr: Box::new(StreamLines::new(false, line_max)),
                daemon: Vec::new(),
            }
        };
        LogDecoder { framing }
    }

    /// Feeds the next bytes of the stream; complete lines go to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(Decoded<'_>)) {
        let (frame, stdout, stderr, daemon) = match &mut self.framing {
            Framing::Raw(lines) => return lines.feed(data, out),
            Framing::Multiplexed { frame, stdout, stderr, daemon } => (frame, stdout, stderr, daemon),
        };
        while !data.is_empty() {
            match frame {
                Frame::Header { bytes, len } => {
                    let take = (8 - *len).min(data.len());
                    bytes[*len..*len + take].copy_from_slice(&data[..take]);
                    *len += take;
                    data = &data[take..];
                    if *len == 8 {
                        let remaining = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
                        *frame = Frame::Payload { stream: bytes[0], remaining };
                        if remaining == 0 {
                            *frame = Frame::Header { bytes: [0; 8], len: 0 };
                        }
                    }
                }
                Frame::Payload { stream, remaining } => {
                    let take = (*remaining).min(data.len());
                    let (payload, rest) = data.split_at(take);
                    data = rest;
                    *remaining -= take;
                    let ends = *remaining == 0;
                    match *stream {
                        1 | 2 => {
                            let lines = if *stream == 1 { &mut **stdout } else { &mut **stderr };
                            lines.feed(payload, out);
                            if ends {
                                lines.end_message(out);
                            }
                        }
                        // stdin is never logged; anything else is dockerd's own.
                        0 => {}
                        _ => {
                            let room = DAEMON_MESSAGE_MAX.saturating_sub(daemon.len());
                            daemon.extend_from_slice(&payload[..payload.len().min(room)]);
                            if ends {
                                out(Decoded::DaemonMessage(trim_line_end(daemon)));
                                daemon.clear();
                            }
                        }
                    }
                    if ends {
                        *frame = Frame::Header { bytes: [0; 8], len: 0 };
                    }
                }
            }
        }
    }

    /// The stream ended: lines still open are complete as they are.
    pub fn finish(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        match &mut self.framing {
            Framing::Raw(lines) => lines.finish(out),
            Framing::Multiplexed { frame, stdout, stderr, daemon } => {
                stdout.finish(out);
                stderr.finish(out);
                if !daemon.is_empty() {
                    out(Decoded::DaemonMessage(trim_line_end(daemon)));
                    daemon.clear();
                }
                *frame = Frame::Header { bytes: [0; 8], len: 0 };
            }
        }
    }

    /// The timestamp of the oldest line begun but not complete. A cursor
    /// past it would lose the line's remaining pieces on resume.
    pub fn oldest_open_line(&self) -> Option<Nanos> {
        match &self.framing {
            Framing::Raw(lines) => lines.open_line(),
            Framing::Multiplexed { stdout, stderr, .. } => match (stdout.open_line(), stderr.open_line()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading the `<timestamp> ` that starts a message.
    Stamp,
    /// Reading the text of the message stamped `message_time`.
    Text,
    /// Reading text that had no valid timestamp (dockerd's own words).
    Unstamped,
}

/// Messages and lines of one output stream.
#[derive(Debug)]
struct StreamLines {
    raw: bool,
    line_max: usize,
    phase: Phase,
    stamp: [u8; STAMP_MAX],
    stamp_len: usize,
    message_time: Nanos,
    /// `<timestamp> ` as it began the current message (raw streams).
    message_stamp: [u8; STAMP_MAX + 1],
    message_stamp_len: usize,
    /// The timestamp of the line being assembled, when one is open.
    line_time: Option<Nanos>,
    /// The open line's text so far, at most `line_max` bytes (raw streams:
    /// plus the split prefixes still to cut out).
    line: Vec<u8>,
    /// Bytes dropped from the open line.
    dropped: usize,
    /// Text without a timestamp, for [`Decoded::DaemonMessage`].
    unstamped: Vec<u8>,
}

impl StreamLines {
    fn new(raw: bool, line_max: usize) -> StreamLines {
        StreamLines {
            raw,
            line_max,
            phase: Phase::Stamp,
            stamp: [0; STAMP_MAX],
            stamp_len: 0,
            message_time: 0,
            message_stamp: [0; STAMP_MAX + 1],
            message_stamp_len: 0,
            line_time: None,
            line: Vec::new(),
            dropped: 0,
            unstamped: Vec::new(),
        }
    }

    fn open_line(&self) -> Option<Nanos> {
        self.line_time
    }

    fn feed(&mut self, mut data: &[u8], out: &mut impl FnMut(Decoded<'_>)) {
        while !data.is_empty() {
            match self.phase {
                Phase::Stamp => data = self.read_stamp(data, out),
                Phase::Text => match memchr(b'\n', data) {
                    Some(end) => {
                        self.line_ends_with(&data[..end], out);
                        data = &data[end + 1..];
                        // In a raw stream a timestamp follows each newline;
                        // in a frame, text after a newline (never seen) is
                        // another line of the same message.
                        if self.raw {
                            self.phase = Phase::Stamp;
                        }
                    }
                    None => {
                        self.append(data);
                        data = &[];
                    }
                },
                Phase::Unstamped => {
                    let end = memchr(b'\n', data);
                    let piece = &data[..end.unwrap_or(data.len())];
                    let room = DAEMON_MESSAGE_MAX.saturating_sub(self.unstamped.len());
                    self.unstamped.extend_from_slice(&piece[..piece.len().min(room)]);
                    match end {
                        Some(end) => {
                            self.flush_unstamped(out);
                            self.phase = Phase::Stamp;
                            data = &data[end + 1..];
                        }
                        None => data = &[],
                    }
                }
            }
        }
    }

    /// Reads (part of) a timestamp prefix; returns the bytes after it.
    fn read_stamp<'d>(&mut self, data: &'d [u8], out: &mut impl FnMut(Decoded<'_>)) -> &'d [u8] {
        let room = STAMP_MAX - self.stamp_len;
        let window = &data[..data.len().min(room + 1)];
        match memchr2(b' ', b'\n', window) {
            Some(i) if window[i] == b' ' => {
                self.stamp[self.stamp_len..self.stamp_len + i].copy_from_slice(&data[..i]);
                self.stamp_len += i;
                let stamp = &self.stamp[..self.stamp_len];
                match parse_rfc3339_nanos(stamp) {
                    Some(time) => {
                        self.message_stamp[..self.stamp_len].copy_from_slice(stamp);
                        self.message_stamp[self.stamp_len] = b' ';
                        self.message_stamp_len = self.stamp_len + 1;
                        self.stamp_len = 0;
                        self.begin_message(time, out);
                    }
                    None => self.begin_unstamped(b" "),
                }
                &data[i + 1..]
            }
            Some(i) => {
                // A newline before any space: a line with no timestamp.
                self.begin_unstamped(&data[..i]);
                self.flush_unstamped(out);
                self.phase = Phase::Stamp;
                &data[i + 1..]
            }
            None if data.len() <= room => {
                self.stamp[self.stamp_len..self.stamp_len + data.len()].copy_from_slice(data);
                self.stamp_len += data.len();
                &[]
            }
            None => {
                self.begin_unstamped(&[]);
                data
            }
        }
    }

    /// Moves the stamp bytes read so far (and `more`) to the unstamped text.
    fn begin_unstamped(&mut self, more: &[u8]) {
        self.unstamped.clear();
        self.unstamped.extend_from_slice(&self.stamp[..self.stamp_len]);
        let room = DAEMON_MESSAGE_MAX.saturating_sub(self.unstamped.len());
        self.unstamped.extend_from_slice(&more[..more.len().min(room)]);
        self.stamp_len = 0;
        self.phase = Phase::Unstamped;
    }

    fn flush_unstamped(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        let text = trim_line_end(&self.unstamped);
        if !text.is_empty() {
            out(Decoded::DaemonMessage(text));
        }
        self.unstamped.clear();
    }

    fn begin_message(&mut self, time: Nanos, out: &mut impl FnMut(Decoded<'_>)) {
        self.message_time = time;
        self.phase = Phase::Text;
        match self.line_time {
            // The next piece of a line Docker split.
            Some(open) if open == time => {}
            // A line whose last piece never came (the container exited
            // mid-line): it is complete as it is.
            Some(_) => self.emit_open_line(out),
            None => {}
        }
    }

    /// The end of a frame (multiplexed streams only).
    fn end_message(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        match self.phase {
            Phase::Stamp if self.stamp_len > 0 => {
                self.begin_unstamped(&[]);
                self.flush_unstamped(out);
            }
            Phase::Unstamped => self.flush_unstamped(out),
            // An open line here is a split line awaiting its next piece.
            _ => {}
        }
        self.stamp_len = 0;
        self.phase = Phase::Stamp;
    }

    fn finish(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        if self.line_time.is_some() {
            self.emit_open_line(out);
        }
        if self.phase == Phase::Unstamped || self.stamp_len > 0 {
            if self.phase != Phase::Unstamped {
                self.begin_unstamped(&[]);
            }
            self.flush_unstamped(out);
        }
        self.stamp_len = 0;
        self.phase = Phase::Stamp;
    }

    /// The text up to a newline: completes the open line, or is a whole line.
    fn line_ends_with(&mut self, piece: &[u8], out: &mut impl FnMut(Decoded<'_>)) {
        let needs_split_search = self.raw && piece.len() >= SPLIT_SEARCH_MIN;
        if self.line_time.is_none() && !needs_split_search {
            // The common case: the whole line is in hand, no copy needed.
            let text = trim_cr(piece);
            let keep = text.len().min(self.line_max);
            out(Decoded::Line { time: self.message_time, text: &text[..keep], dropped: text.len() - keep });
            return;
        }
        self.append(piece);
        self.emit_open_line(out);
    }

    /// Adds text to the open line (opening one if needed), within the cap.
    fn append(&mut self, mut piece: &[u8]) {
        if self.line_time.is_none() {
            self.line_time = Some(self.message_time);
            self.line.clear();
            self.dropped = 0;
        }
        if self.dropped > 0 {
            self.dropped += piece.len();
            return;
        }
        // Raw streams keep room for split prefixes that are cut out later,
        // so the cap applies to the line's real text.
        let cap = if self.raw { self.line_max + STAMP_MAX + 1 } else { self.line_max };
        loop {
            let take = cap.saturating_sub(self.line.len()).min(piece.len());
            self.line.extend_from_slice(&piece[..take]);
            piece = &piece[take..];
            if piece.is_empty() {
                return;
            }
            // Full with more to come: make room by cutting split prefixes,
            // or else the line is over the cap.
            let before = self.line.len();
            self.cut_split_prefixes();
            if self.line.len() == before {
                self.dropped += self.line.len().saturating_sub(self.line_max) + piece.len();
                self.line.truncate(self.line_max);
                return;
            }
        }
    }

    fn emit_open_line(&mut self, out: &mut impl FnMut(Decoded<'_>)) {
        let Some(time) = self.line_time.take() else { return };
        self.cut_split_prefixes();
        if self.dropped == 0 && self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        if self.line.len() > self.line_max {
            self.dropped += self.line.len() - self.line_max;
            self.line.truncate(self.line_max);
        }
        out(Decoded::Line { time, text: &self.line, dropped: self.dropped });
        self.line.clear();
        self.dropped = 0;
    }

    /// In a raw stream, removes the `<timestamp> ` prefixes Docker put in
    /// front of each later piece of a split line: the open line's own
    /// timestamp text, which no other line can carry.
    fn cut_split_prefixes(&mut self) {
        if !self.raw || self.line.len() < SPLIT_SEARCH_MIN || self.message_stamp_len == 0 {
            return;
        }
        let prefix = &self.message_stamp[..self.message_stamp_len];
        let finder = memmem::Finder::new(prefix);
        let (mut write, mut read) = (0, 0);
        while let Some(found) = finder.find(&self.line[read..]) {
            self.line.copy_within(read..read + found, write);
            write += found;
            read += found + prefix.len();
        }
        if read > 0 {
            let tail = self.line.len() - read;
            self.line.copy_within(read.., write);
            self.line.truncate(write + tail);
        }
    }
}

fn trim_cr(text: &[u8]) -> &[u8] {
    text.strip_suffix(b"\r").unwrap_or(text)
}

fn trim_line_end(text: &[u8]) -> &[u8] {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    trim_cr(text)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const T1: &str = "2026-11-21T16:58:26.642569477Z";
    const T2: &str = "2026-11-21T16:58:26.642647585Z";

    fn t(stamp: &str) -> Nanos {
        parse_rfc3339_nanos(stamp.as_bytes()).unwrap()
    }

    #[derive(Clone, PartialEq, Eq)]
    enum Out {
        Line(Nanos, Vec<u8>, usize),
        Daemon(String),
    }

    /// Long lines shown by length and ends, so a failure stays readable.
    impl std::fmt::Debug for Out {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            match self {
                Out::Line(time, text, dropped) if text.len() > 80 => write!(
                    f,
                    "Line({time}, {} bytes {:?}..{:?}, dropped {dropped})",
                    text.len(),
                    String::from_utf8_lossy(&text[..40]),
                    String::from_utf8_lossy(&text[text.len() - 40..])
                ),
                Out::Line(time, text, dropped) => {
                    write!(f, "Line({time}, {:?}, dropped {dropped})", String::from_utf8_lossy(text))
                }
                Out::Daemon(m) => write!(f, "Daemon({m:?})"),
            }
        }
    }

    /// Decodes `stream` fed in pieces of `chunk` bytes.
    fn decode(tty: bool, line_max: usize, stream: &[u8], chunk: usize) -> Vec<Out> {
        let mut decoder = LogDecoder::new(tty, line_max);
        let mut found = Vec::new();
        let mut sink = |d: Decoded<'_>| {
            found.push(match d {
                Decoded::Line { time, text, dropped } => Out::Line(time, text.to_vec(), dropped),
                Decoded::DaemonMessage(m) => Out::Daemon(String::from_utf8_lossy(m).into_owned()),
            })
        };
        for piece in stream.chunks(chunk.max(1)) {
            decoder.feed(piece, &mut sink);
        }
        decoder.finish(&mut sink);
        found
    }

    /// Decodes with every chunk size from 1 to 40 and whole, and checks
    /// they all agree.
    fn decode_all_ways(tty: bool, line_max: usize, stream: &[u8]) -> Vec<Out> {
        let whole = decode(tty, line_max, stream, stream.len());
        for chunk in 1..=40 {
            assert_eq!(decode(tty, line_max, stream, chunk), whole, "chunks of {chunk}");
        }
        whole
    }

    fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![stream, 0, 0, 0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn message(stamp: &str, text: &[u8]) -> Vec<u8> {
        [stamp.as_bytes(), b" ", text].concat()
    }

    fn line(stamp: &str, text: &str) -> Out {
        Out::Line(t(stamp), text.as_bytes().to_vec(), 0)
    }

    #[test]
    fn multiplexed_lines_from_both_streams_in_order() {
        let stream = [
            frame(1, &message(T1, b"out one\n")),
            frame(2, &message(T1, b"err one\n")),
            frame(1, &message(T2, b"crlf\r\n")),
            frame(1, &message(T2, b"\n")),
            frame(0, b"stdin is ignored"),
        ]
        .concat();
        assert_eq!(
            decode_all_ways(false, 100, &stream),
            [line(T1, "out one"), line(T1, "err one"), line(T2, "crlf"), line(T2, "")]
        );
    }

    #[test]
    fn multiplexed_split_lines_are_joined_even_with_the_other_stream_in_between() {
        let long = "x".repeat(40_000);
        let (a, rest) = long.split_at(16_384);
        let (b, c) = rest.split_at(16_384);
        let stream = [
            frame(1, &message(T1, a.as_bytes())),
            frame(2, &message(T2, b"between\n")),
            frame(1, &message(T1, b.as_bytes())),
            frame(1, &message(T1, format!("{c}\n").as_bytes())),
        ]
        .concat();
        let mut decoder = LogDecoder::new(false, 1 << 20);
        decoder.feed(&stream[..stream.len() - 10], &mut |_| {});
        assert_eq!(decoder.oldest_open_line(), Some(t(T1)));
        assert_eq!(decode_all_ways(false, 1 << 20, &stream), [line(T2, "between"), line(T1, &long)]);
    }

    #[test]
    fn a_split_line_whose_end_never_came_is_complete_when_the_next_line_starts() {
        let stream =
            [frame(1, &message(T1, b"last words")), frame(1, &message(T2, b"after restart\n"))].concat();
        assert_eq!(decode_all_ways(false, 100, &stream), [line(T1, "last words"), line(T2, "after restart")]);
        let unfinished = frame(1, &message(T1, b"no newline at the end"));
        assert_eq!(decode_all_ways(false, 100, &unfinished), [line(T1, "no newline at the end")]);
    }

    #[test]
    fn raw_stream_as_docker_writes_it_for_a_tty_container() {
        // What dockerd 20.10 sent for `echo hello; 40,000 a; echo bye` in a
        // TTY container: the long line in pieces of 16,384 bytes, each
        // stamped with the first piece's time.
        let long = "a".repeat(40_000);
        let mut stream = message(T1, b"hello\r\n");
        for (i, piece) in long.as_bytes().chunks(16_384).enumerate() {
            stream.extend_from_slice(&message(T2, piece));
            if i == 2 {
                stream.extend_from_slice(b"\r\n");
            }
        }
        stream.extend_from_slice(&message(T1, b"bye\r\n"));
        stream.extend_from_slice(&message(T2, b"nonl"));
        assert_eq!(
            decode_all_ways(true, 1 << 20, &stream),
            [line(T1, "hello"), line(T2, &long), line(T1, "bye"), line(T2, "nonl")]
        );
    }

    #[test]
    fn long_lines_are_capped_and_the_next_line_is_intact() {
        let long = "y".repeat(100 * 1024);
        let cap = 64 * 1024;
        let expected =
            vec![Out::Line(t(T1), long.as_bytes()[..cap].to_vec(), long.len() - cap), line(T2, "next")];
        let mut tty = Vec::new();
        for piece in long.as_bytes().chunks(16_384) {
            tty.extend_from_slice(&message(T1, piece));
        }
        tty.extend_from_slice(b"\r\n");
        tty.extend_from_slice(&message(T2, b"next\r\n"));
        for chunk in [1, 7, 4096, tty.len()] {
            // In a raw stream the split markers after the cap are dropped
            // unseen, so they count as dropped bytes too.
            let mut found = decode(true, cap, &tty, chunk);
            if let Some(Out::Line(_, _, dropped)) = found.first_mut() {
                let markers = (long.len() / 16_384) * (T1.len() + 1) + 1;
                assert!((long.len() - cap..=long.len() - cap + markers).contains(dropped), "{dropped}");
                *dropped = long.len() - cap;
            }
            assert_eq!(found, expected, "raw, chunks of {chunk}");
        }
        let mut muxed: Vec<u8> =
            long.as_bytes().chunks(16_384).flat_map(|piece| frame(1, &message(T1, piece))).collect();
        muxed.extend_from_slice(&frame(1, &message(T1, b"\n")));
        muxed.extend_from_slice(&frame(1, &message(T2, b"next\n")));
        for chunk in [1, 7, 4096, muxed.len()] {
            assert_eq!(decode(false, cap, &muxed, chunk), expected, "multiplexed, chunks of {chunk}");
        }
        // A line of exactly the cap is not truncated.
        let exact = [message(T1, &long.as_bytes()[..cap]), b"\n".to_vec()].concat();
        assert_eq!(decode(true, cap, &exact, 1000), [Out::Line(t(T1), long.as_bytes()[..cap].to_vec(), 0)]);
    }

    #[test]
    fn memory_stays_bounded_whatever_the_line_length() {
        let cap = 4096;
        for tty in [true, false] {
            let mut decoder = LogDecoder::new(tty, cap);
            let piece = vec![b'z'; 16_384];
            let mut dropped_total = 0;
            let mut sink = |d: Decoded<'_>| {
                if let Decoded::Line { text, dropped, .. } = d {
                    assert_eq!(text.len(), cap);
                    dropped_total = dropped;
                }
            };
            for _ in 0..640 {
                // 10 MiB in one line.
                let bytes = if tty { message(T1, &piece) } else { frame(1, &message(T1, &piece)) };
                decoder.feed(&bytes, &mut sink);
                let held = match &decoder.framing {
                    Framing::Raw(lines) => lines.line.capacity(),
                    Framing::Multiplexed { stdout, .. } => stdout.line.capacity(),
                };
                assert!(held <= 2 * (cap + STAMP_MAX + 1), "tty={tty}: holds {held} bytes");
            }
            decoder.finish(&mut sink);
            assert!(dropped_total >= 640 * 16_384 - cap - 640 * 32, "tty={tty}: dropped {dropped_total}");
        }
    }

    #[test]
    fn dockerd_messages_are_reported_apart_from_lines() {
        let muxed =
            [frame(3, b"Error grabbing logs: invalid character\n"), frame(1, &message(T1, b"ok\n"))].concat();
        assert_eq!(
            decode_all_ways(false, 100, &muxed),
            [Out::Daemon("Error grabbing logs: invalid character".into()), line(T1, "ok")]
        );
        let raw = [
            b"Error grabbing logs: file closed\n".as_slice(),
            &message(T1, b"ok\r\n"),
            b"garbage-without-space\n",
        ]
        .concat();
        assert_eq!(
            decode_all_ways(true, 100, &raw),
            [
                Out::Daemon("Error grabbing logs: file closed".into()),
                line(T1, "ok"),
                Out::Daemon("garbage-without-space".into())
            ]
        );
        let unparsable = message("not-a-time", b"text\n");
        assert_eq!(decode_all_ways(true, 100, &unparsable), [Out::Daemon("not-a-time text".into())]);
        let long_junk = [vec![b'q'; 5000], b"\n".to_vec(), message(T2, b"fine\n")].concat();
        let out = decode_all_ways(true, 100, &long_junk);
        assert!(matches!(&out[0], Out::Daemon(m) if m.len() == DAEMON_MESSAGE_MAX), "{out:?}");
        assert_eq!(out[1..], [line(T2, "fine")]);
    }

    #[test]
    fn binary_output_passes_through_as_bytes() {
        let text = b"\x00\xff\xfe invalid \xc3( utf-8";
        let stream = frame(2, &message(T1, &[text.as_slice(), b"\n"].concat()));
        assert_eq!(decode_all_ways(false, 100, &stream), [Out::Line(t(T1), text.to_vec(), 0)]);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Lines of any bytes but newlines, framed the way Docker frames
        /// them (split into pieces of `piece` bytes with the first piece's
        /// stamp), come out whole, capped at `cap`, however the bytes are
        /// chunked.
        #[test]
        fn lines_survive_any_framing(
            lines in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>().prop_filter("no newline", |b| *b != b'\n'), 0..3000), 0..1000i64),
                1..8,
            ),
            tty in any::<bool>(),
            piece in 16usize..1500,
            cap in 32usize..4000,
            chunk in 1usize..5000,
        ) {
            // Raw streams are only searched for split markers from
            // SPLIT_SEARCH_MIN bytes on, which is below where Docker splits.
            let piece = if tty { piece.max(SPLIT_SEARCH_MIN) } else { piece };
            let base = t(T1);
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            let mut time = base;
            for (text, step) in &lines {
                time += step + 1;
                let stamp = jiff::Timestamp::from_nanosecond(i128::from(time)).unwrap().to_string();
                let mut text = text.clone();
                // A TTY turns \n into \r\n; a lone trailing \r would be
                // taken for part of the line ending.
                if tty || text.last() == Some(&b'\r') {
                    text.retain(|b| *b != b'\r');
                }
                let ending: &[u8] = if tty { b"\r\n" } else { b"\n" };
                let pieces: Vec<&[u8]> = if text.is_empty() { vec![&[]] } else { text.chunks(piece).collect() };
                for (i, p) in pieces.iter().enumerate() {
                    let mut msg = message(&stamp, p);
                    if i + 1 == pieces.len() {
                        msg.extend_from_slice(ending);
                    }
                    if tty { stream.extend_from_slice(&msg) } else { stream.extend_from_slice(&frame(1, &msg)) }
                }
                let keep = text.len().min(cap);
                expected.push(Out::Line(time, text[..keep].to_vec(), text.len() - keep));
            }
            let mut found = decode(tty, cap, &stream, chunk);
            if tty && found.len() == expected.len() {
                // Raw streams may count dropped split markers and `\r`.
                for (f, e) in found.iter_mut().zip(&expected) {
                    if let (Out::Line(_, _, got), Out::Line(_, text, want)) = (f, e) {
                        let markers = (text.len() + want) / piece * (T1.len() + 2) + 1;
                        prop_assert!((*want..=want + markers).contains(got), "dropped {} for {}", got, want);
                        *got = *want;
                    }
                }
            }
            prop_assert_eq!(found, expected);
        }
    }
}
