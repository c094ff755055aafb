//! Filters: turn log lines into failures.
//!
//! A filter is defined in YAML ([`definition`]), compiled once into an
//! immutable [`Filter`] (`compile.rs`: params, tags, engines, gate; `Send +
//! Sync`, shared by every stream that uses it), and run line by line with a
//! per-stream [`MatchState`].
//! [`Registry`] knows the shipped filters (embedded in the binary) and the
//! user's `filter_dirs`.
//!
//! For each line, [`Filter::process`]:
//! 1. looks at no more than [`MAX_LINE_BYTES`] of it (a longer line is cut at
//!    a character boundary), drops a trailing `\r\n`, and removes ANSI escape
//!    sequences (colour codes from container logs); NUL bytes and other
//!    control characters are matched as ordinary characters;
//! 2. finds a date ([`date`]); a leading one is stripped, with the whitespace
//!    after it, before any pattern sees the line;
//! 3. tries `ignoreregex` on the line (a match means [`Outcome::Ignored`]),
//!    then the gated failregexes in order (the first match wins), then
//!    `ignoreregex` again on the prefregex's `<F-CONTENT>` of a matched line,
//!    so ignoreregexes may be written like failregexes;
//! 4. reads the address, user and ids, merges multi-line state
//!    (`multiline.rs`, fail2ban's semantics) and reports a [`Hit`]. A source-supplied time wins over
//!    the parsed one.
//!
//! Invalid UTF-8: callers pass `&str`; [`Filter::process_bytes`] converts
//! lossily (invalid sequences become U+FFFD) and processes the result.

pub mod addr;
mod backtrack;
mod compile;
pub mod date;
pub mod definition;
pub mod fail2ban;
mod multiline;
pub mod registry;
mod template;
mod text;

use jiff::tz::TimeZone;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::core::Timestamp;

pub use compile::BACKTRACK_LIMIT;
pub use date::{DateFormat, DateMatch, DateSearch, parse_date};
pub use multiline::{
    DEFAULT_CAPACITY as DEFAULT_CONNECTION_CAPACITY, DEFAULT_MAX_AGE_MS as DEFAULT_CONNECTION_MAX_AGE_MS,
};
pub use registry::Registry;
pub use text::ShortText;

use compile::{Compiled, PatternList, Raw};
use multiline::{ConnCache, Fields, Merged};

/// The part of a line the engine looks at; the rest is ignored. Bounds the
/// work per line (1 MiB lines from a misbehaving service cost no more than
/// this) while keeping every realistic log line whole.
pub const MAX_LINE_BYTES: usize = 32 * 1024;

/// A filter that failed to load or compile. Every variant names the place.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("{origin}:{line}: invalid filter file: {message}")]
    Yaml { origin: String, line: u64, message: String },
    #[error(transparent)]
    Pattern(Box<PatternError>),
    #[error("{origin}:{line}: filter {filter:?}: {message}")]
    Invalid { origin: String, line: u64, filter: String, message: String },
    #[error(
        "{origin}: the file defines filter {found:?}, but its file name says {expected:?}: they must agree"
    )]
    NameMismatch { origin: String, expected: String, found: String },
    #[error("unknown filter {name:?}: known filters are {known}; or give the path of a filter .yaml file")]
    Unknown { name: String, known: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// An imported fail2ban filter that does not load; the message names
    /// the file, line, section and option.
    #[error("fail2ban filter {name:?}: {message}")]
    Fail2ban { name: String, message: String },
}

/// A pattern that does not expand or compile: names the file, line, filter
/// and the pattern as written.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}: filter {filter:?}: {what} {pattern:?} {problem}")]
pub struct PatternError {
    pub origin: String,
    pub line: u64,
    pub filter: String,
    /// Which pattern, e.g. `failregex #3` or `prefregex`.
    pub what: String,
    pub pattern: String,
    pub problem: String,
}

/// A compiled filter. Immutable; share it between threads.
#[derive(Debug)]
pub struct Filter {
    name: String,
    description: String,
    source: String,
    journalmatch: Vec<String>,
    date_search: DateSearch,
    failregex_sources: Vec<String>,
    ignore: PatternList,
    fail: PatternList,
    /// `Some` when patterns could not be spliced into the prefregex: it then
    /// runs first and the failregexes see its `<F-CONTENT>`.
    prefix: Option<Compiled>,
    /// Set for filters imported from fail2ban: they run with fail2ban's
    /// line semantics ([`fail2ban`]).
    fail2ban: Option<Box<fail2ban::Semantics>>,
}

/// Per-stream state: the multi-line connection cache, the reference time for
/// yearless dates, the time zone for dates without an offset, the last
/// syslog minute read, and scratch space so a line that matches nothing
/// allocates nothing.
#[derive(Debug, Clone)]
pub struct MatchState {
    reference: Timestamp,
    tz: Option<TimeZone>,
    minute: date::MinuteCache,
    conns: ConnCache,
    scratch: backtrack::Scratch,
    /// The last address text read, parsed.
    last_addr: addr::AddrMemo,
    /// Line buffer, last date and connections of an imported fail2ban filter.
    f2b: fail2ban::State,
}

impl MatchState {
    /// State for one input stream; `reference_now` resolves yearless syslog
    /// dates (the daemon moves it with [`MatchState::set_reference`]).
    pub fn new(reference_now: Timestamp) -> Self {
        MatchState {
            reference: reference_now,
            tz: None,
            minute: date::MinuteCache::default(),
            conns: ConnCache::new(multiline::DEFAULT_CAPACITY, multiline::DEFAULT_MAX_AGE_MS),
            scratch: backtrack::Scratch::default(),
            last_addr: addr::AddrMemo::default(),
            f2b: fail2ban::State::default(),
        }
    }

    /// Reads dates without an offset in `tz` instead of UTC.
    pub fn with_time_zone(mut self, tz: TimeZone) -> Self {
        self.tz = Some(tz);
        self.minute.clear();
        self
    }

    /// Caps the open connections remembered (oldest evicted first) and how
    /// long a silent one is kept.
    pub fn with_connection_limits(mut self, capacity: usize, max_age: std::time::Duration) -> Self {
        let age = i64::try_from(max_age.as_millis()).unwrap_or(i64::MAX);
        self.conns = ConnCache::new(capacity, age);
        self
    }

    pub fn set_reference(&mut self, now: Timestamp) {
        self.reference = now;
    }

    pub fn reference(&self) -> Timestamp {
        self.reference
    }

    /// Open multi-line connections currently remembered.
    pub fn open_connections(&self) -> usize {
        self.conns.len() + self.f2b.open_connections()
    }

    /// Forgets every connection (e.g. when a stream restarts).
    pub fn reset(&mut self) {
        self.conns.clear();
        self.f2b.reset();
    }
}

/// What a filter made of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No failregex matched (or one matched without yielding an address).
    Miss,
    /// An ignoreregex matched.
    Ignored {
        regex_index: usize,
    },
    Match(Hit),
}

/// A recognised line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// Normalised (IPv4-mapped IPv6 is IPv4).
    pub addr: IpAddr,
    /// Inline when short (see [`ShortText`]): no allocation per line.
    pub user: Option<ShortText>,
    /// The source's time if it gave one, else the line's date, else `None`.
    pub time: Option<Timestamp>,
    /// Index into the failregexes active under the filter's params.
    pub regex_index: usize,
    /// `false` for `<F-NOFAIL>`/`<F-MLFGAINED>` lines and lines merged into a
    /// connection that already counted: recognised, but not a new failure.
    pub counted: bool,
    /// The date format found in the line, described ([`DateFormat::describe`]).
    pub date_format: Option<&'static str>,
}

impl Filter {
    /// Parses and compiles a filter. `origin` (a path, or `shipped:<name>`)
    /// names the file in errors; `params` override the filter's params.
    pub fn from_yaml(
        text: &str,
        origin: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Filter, FilterError> {
        let def = parse_definition(text, origin)?;
        compile::build(def, origin, params)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    /// Where the filter's log formats come from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The failregexes active under the filter's params.
    pub fn failregex_count(&self) -> usize {
        self.failregex_sources.len()
    }

    pub fn journalmatch(&self) -> &[String] {
        &self.journalmatch
    }

    /// Failregex `i` as written in the file (before params and tags).
    pub fn failregex_source(&self, i: usize) -> &str {
        self.failregex_sources.get(i).map_or("", String::as_str)
    }

    /// Failregex `i` as it runs: params and tags expanded (and, when the
    /// filter splices its prefregex in, including that).
    pub fn failregex_expanded(&self, i: usize) -> &str {
        self.fail.patterns.get(i).map_or("", |p| p.regex.as_str())
    }

    /// Processes a line that may not be UTF-8 (invalid sequences become U+FFFD).
    pub fn process_bytes(
        &self,
        state: &mut MatchState,
        line: &[u8],
        source_time: Option<Timestamp>,
    ) -> Outcome {
        let text = String::from_utf8_lossy(line);
        self.process(state, &text, source_time)
    }

    /// Processes one line of a stream.
    pub fn process(&self, state: &mut MatchState, line: &str, source_time: Option<Timestamp>) -> Outcome {
        let line = clip(line);
        // One search for both rare bytes: an escape (colour codes to strip)
        // and a newline (without one, `.` runs need not look for it).
        let (escape, newline) = match memchr::memchr2(0x1b, b'\n', line.as_bytes()) {
            None => (false, false),
            Some(i) => {
                let rest = &line.as_bytes()[i..];
                (memchr::memchr(0x1b, rest).is_some(), memchr::memchr(b'\n', rest).is_some())
            }
        };
        self.process_clipped(state, line, escape, newline, source_time)
    }

    /// [`Filter::process`] for a line the caller has already searched: it
    /// holds no `\n` and no escape byte (0x1b), so neither is looked for
    /// again. (`test-filter` searches a whole buffer of lines at once.) The
    /// outcome is the one [`Filter::process`] gives for such a line.
    pub fn process_plain(
        &self,
        state: &mut MatchState,
        line: &str,
        source_time: Option<Timestamp>,
    ) -> Outcome {
        debug_assert!(memchr::memchr2(0x1b, b'\n', line.as_bytes()).is_none(), "not a plain line: {line:?}");
        self.process_clipped(state, clip(line), false, false, source_time)
    }

    /// [`Filter::process`] after clipping, told whether the line has an
    /// escape byte and a newline.
    fn process_clipped(
        &self,
        state: &mut MatchState,
        line: &str,
        escape: bool,
        newline: bool,
        source_time: Option<Timestamp>,
    ) -> Outcome {
        let cleaned;
        let line = if escape {
            cleaned = strip_ansi(line);
            cleaned.as_str()
        } else {
            line
        };
        // An imported filter's engine says for itself whether its patterns
        // see newlines (`maxlines` joins lines with them). Text cleaned of
        // escapes has no newline when the line had none.
        if let Some(f2b) = self.fail2ban.as_deref() {
            let out = fail2ban::process(self, f2b, state, line, source_time, Some(newline));
            return fail2ban::outcome(out, None);
        }
        // Whatever runs on this line runs on it or on text derived from it
        // (stripped, rendered), which has no newline if the line has none.
        state.scratch.newline_free = !newline;
        let reference = source_time.unwrap_or(state.reference);
        let date = date::find_date_cached(
            line.as_bytes(),
            self.date_search,
            reference,
            state.tz.as_ref(),
            &mut state.minute,
        );
        let rendered;
        let body = match date {
            Some(d) if d.leading => {
                let rest = trim_blanks_start(&line[d.end..]);
                match d.format {
                    DateFormat::Rfc5424 => match render_rfc5424(rest) {
                        Some(r) => {
                            rendered = r;
                            rendered.as_str()
                        }
                        None => rest,
                    },
                    _ => rest,
                }
            }
            _ => line,
        };
        if !self.ignore.is_empty()
            && let Some(regex_index) = self.ignore.first_index(body, &mut state.scratch)
        {
            return Outcome::Ignored { regex_index };
        }
        // The prefregex's captures, then the failregex's over them (its
        // values win; the prefregex's fill in what it lacks).
        let mut raw = Raw::default();
        let hay = match &self.prefix {
            None => body,
            Some(prefix) => {
                if !prefix.captures_into(body, &mut state.scratch, &mut raw) {
                    return Outcome::Miss;
                }
                match raw.content {
                    Some((s, e)) => &body[s..e],
                    None => body,
                }
            }
        };
        let Some(regex_index) = self.fail.first_match_into(hay, &mut state.scratch, &mut raw) else {
            return Outcome::Miss;
        };
        // ignoreregex also sees the prefregex's content, so it can be written
        // like the failregexes (fail2ban only tries the whole line, above).
        if !self.ignore.is_empty()
            && let Some((s, e)) = raw.content
            && let Some(regex_index) = self.ignore.first_index(&body[s..e], &mut state.scratch)
        {
            return Outcome::Ignored { regex_index };
        }
        let time = source_time.or(date.map(|d| d.time));
        let fields = Fields {
            addr: raw.addr.and_then(|text| state.last_addr.parse(text)),
            user: non_empty(raw.user),
            alt_user: non_empty(raw.alt_user),
            id: non_empty(raw.id),
            nofail: raw.nofail,
            forget: raw.forget,
            gained: raw.gained,
            once: raw.once,
        };
        let merged = match raw.mlfid {
            Some(mlfid) => state.conns.merge(mlfid, &fields, time),
            None => Merged::alone(&fields),
        };
        let Some(addr) = merged.addr else {
            return Outcome::Miss;
        };
        Outcome::Match(Hit {
            addr,
            user: merged.user,
            time,
            regex_index,
            counted: !merged.nofail,
            date_format: date.map(|d| d.format.describe()),
        })
    }
}

/// Reads a filter file into its serde model, with file:line on errors.
pub fn parse_definition(text: &str, origin: &str) -> Result<definition::FilterDef, FilterError> {
    serde_saphyr::from_str(text).map_err(|e| FilterError::Yaml {
        origin: origin.to_string(),
        line: e.location().map_or(0, |l| l.line()),
        message: e.to_string(),
    })
}

/// `text` without its leading spaces and tabs. A byte loop: `str`'s
/// `trim_start_matches` with a set of chars decodes each character first,
/// which cost ~25 instructions on every dated line.
fn trim_blanks_start(text: &str) -> &str {
    let skip = text.bytes().take_while(|&b| b == b' ' || b == b'\t').count();
    // Spaces and tabs are one byte each: `skip` is a character boundary.
    text.get(skip..).unwrap_or(text)
}

fn non_empty(s: Option<&str>) -> Option<&str> {
    s.filter(|s| !s.is_empty())
}

/// Renders the rest of an RFC 5424 header (`HOST APP PROCID MSGID SD MSG`)
/// the way journald shows a message, `HOST APP[PROCID]: MSG`, so one pattern
/// serves syslog files, journald and RFC 5424 alike. `-` fields are left out.
fn render_rfc5424(rest: &str) -> Option<String> {
    let mut parts = rest.splitn(5, ' ');
    let (host, app, procid, _msgid) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let after = parts.next().unwrap_or("");
    let msg = if let Some(tail) = after.strip_prefix('-') {
        tail
    } else if after.starts_with('[') {
        // Structured data: `[id k="v" …]` elements; `\]` inside values is escaped.
        let b = after.as_bytes();
        let mut i = 0;
        while b.get(i) == Some(&b'[') {
            let mut in_quotes = false;
            i += 1;
            while let Some(&c) = b.get(i) {
                match c {
                    b'\\' => i += 1,
                    b'"' => in_quotes = !in_quotes,
                    b']' if !in_quotes => break,
                    _ => {}
                }
                i += 1;
            }
            i += 1;
        }
        after.get(i.min(after.len())..)?
    } else {
        return None;
    };
    let msg = msg.strip_prefix(' ').unwrap_or(msg);
    let msg = msg.strip_prefix('\u{feff}').unwrap_or(msg);
    let mut out = String::with_capacity(rest.len());
    if host != "-" {
        out.push_str(host);
        out.push(' ');
    }
    if app != "-" {
        out.push_str(app);
        if procid != "-" {
            out.push('[');
            out.push_str(procid);
            out.push(']');
        }
        out.push_str(": ");
    }
    out.push_str(msg);
    Some(out)
}

/// Drops a trailing line end and cuts the line at [`MAX_LINE_BYTES`].
fn clip(line: &str) -> &str {
    let line = line.trim_end_matches(['\n', '\r']);
    if line.len() <= MAX_LINE_BYTES {
        return line;
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// Removes ANSI escape sequences: CSI (`ESC [ … final`), OSC (`ESC ] … BEL`
/// or `ESC \`) and two-byte escapes. Only ASCII is removed, so the result
/// stays valid UTF-8.
fn strip_ansi(line: &str) -> String {
    let b = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut last = 0;
    let mut i = 0;
    while let Some(off) = memchr::memchr(0x1b, &b[i..]) {
        let esc = i + off;
        out.push_str(&line[last..esc]);
        let mut j = esc + 1;
        match b.get(j) {
            Some(b'[') => {
                j += 1;
                while j < b.len() && !(0x40..=0x7e).contains(&b[j]) {
                    j += 1;
                }
                j += 1;
            }
            Some(b']') => {
                while j < b.len() && b[j] != 0x07 && !(b[j] == 0x1b && b.get(j + 1) == Some(&b'\\')) {
                    j += 1;
                }
                j += if b.get(j) == Some(&0x1b) { 2 } else { 1 };
            }
            Some(c) if c.is_ascii() => j += 1,
            _ => {}
        }
        // Never cut inside a multi-byte character.
        j = j.min(b.len());
        while !line.is_char_boundary(j) {
            j += 1;
        }
        last = j;
        i = j;
    }
    out.push_str(&line[last..]);
    out
}

#[cfg(test)]
mod tests;
