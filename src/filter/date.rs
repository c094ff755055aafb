//! Timestamp detection and parsing for log lines, written by hand for speed:
//! no regex runs here, every parser walks bytes once and gives up early.
//!
//! Recognised formats (see [`DateFormat`]): ISO-8601 / RFC 3339, syslog with
//! and without year (an optional weekday and `<PRI>` are accepted), the RFC 5424
//! header, epoch seconds with an optional fraction, and CLF/Apache
//! `[21/Nov/2026:15:01:17 +0000]`.
//!
//! A date at the start of a line is reported with `leading = true` so the
//! engine can strip it; otherwise CLF and ISO-8601 dates are searched for in
//! the first [`SEARCH_LIMIT`] bytes and reported without stripping.
//!
//! Times without a UTC offset are read in the caller's time zone (UTC unless
//! told otherwise). A syslog date without a year takes the year that makes it
//! the most recent such date not more than [`FUTURE_TOLERANCE_SECS`] after the
//! reference instant.

use jiff::tz::TimeZone;

use super::text::le_word;
use crate::core::Timestamp;

/// How far into the line a date is searched for when it is not at the start.
pub const SEARCH_LIMIT: usize = 4096;

/// A yearless syslog date may lie this far after the reference (clock skew,
/// lines buffered across midnight) before it is taken to be from last year.
pub const FUTURE_TOLERANCE_SECS: i64 = 2 * 86_400;

/// The date formats the engine knows, as named in `datepattern` and reported
/// by `warden test-filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DateFormat {
    Iso8601,
    Syslog,
    SyslogWithYear,
    Rfc5424,
    Epoch,
    Clf,
}

impl DateFormat {
    /// Every format, in the order `datepattern` documentation lists them.
    pub const ALL: [DateFormat; 6] = [
        DateFormat::Iso8601,
        DateFormat::Syslog,
        DateFormat::SyslogWithYear,
        DateFormat::Rfc5424,
        DateFormat::Epoch,
        DateFormat::Clf,
    ];

    /// A human-readable description, with an example, for reports.
    pub const fn describe(self) -> &'static str {
        match self {
            DateFormat::Iso8601 => "ISO-8601 (2026-11-21T15:01:17Z)",
            DateFormat::Syslog => "syslog without year (Nov 21 15:01:17)",
            DateFormat::SyslogWithYear => "syslog with year (Nov 21 2026 15:01:17)",
            DateFormat::Rfc5424 => "RFC 5424 (<34>1 2026-11-21T15:01:17Z)",
            DateFormat::Epoch => "epoch seconds (1795273277.5)",
            DateFormat::Clf => "CLF/Apache ([21/Nov/2026:15:01:17 +0000])",
        }
    }
}

/// Where to look for a date, from a filter's `datepattern`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateSearch {
    /// All formats at the start of the line, then CLF and ISO-8601 anywhere.
    Auto,
    /// Only this format: at the start (stripped) or anywhere (kept).
    Only(DateFormat),
    /// Never look for a date (the source's timestamp or "now" is used).
    Disabled,
}

impl DateSearch {
    /// Parses a `datepattern` value; the error lists what is valid.
    pub fn parse(value: &str) -> Result<DateSearch, String> {
        Ok(match value.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => DateSearch::Auto,
            "none" => DateSearch::Disabled,
            "iso8601" | "iso-8601" | "rfc3339" => DateSearch::Only(DateFormat::Iso8601),
            "syslog" => DateSearch::Only(DateFormat::Syslog),
            "rfc5424" => DateSearch::Only(DateFormat::Rfc5424),
            "epoch" => DateSearch::Only(DateFormat::Epoch),
            "clf" | "apache" => DateSearch::Only(DateFormat::Clf),
            _ => {
                return Err(format!(
                    "unknown datepattern {value:?}: valid values are auto, none, iso8601, syslog, rfc5424, epoch, clf"
                ));
            }
        })
    }
}

/// A date found in a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateMatch {
    pub time: Timestamp,
    pub format: DateFormat,
    /// Byte range of the date in the line (for a leading date, including a
    /// `<PRI>` and version in front of it).
    pub start: usize,
    pub end: usize,
    /// Whether the date starts the line (and should be stripped).
    pub leading: bool,
}

/// Finds and parses a date in `line` the default way (leading date of any
/// format, else CLF or ISO-8601 anywhere). Times without an offset are UTC;
/// `reference` resolves yearless syslog dates. For `warden test-filter` and
/// other callers that want the date alone.
pub fn parse_date(line: &str, reference: Timestamp) -> Option<DateMatch> {
    find_date(line.as_bytes(), DateSearch::Auto, reference, None)
}

/// The engine's entry point: finds a date as `search` says. `tz = None` is UTC.
pub fn find_date(
    line: &[u8],
    search: DateSearch,
    reference: Timestamp,
    tz: Option<&TimeZone>,
) -> Option<DateMatch> {
    let ctx = Ctx { reference, tz };
    match search {
        DateSearch::Disabled => None,
        DateSearch::Auto => leading(line, None, &ctx).or_else(|| anywhere(line, None, &ctx)),
        DateSearch::Only(f) => leading(line, Some(f), &ctx).or_else(|| anywhere(line, Some(f), &ctx)),
    }
}

/// Per-stream memory of the last minute a leading `Mmm dd hh:mm:ss` date
/// named, so the lines of that minute skip the month, year and time-zone
/// work: consecutive syslog lines nearly always share their minute.
///
/// State owned: the minute's text (`Mmm dd hh:mm:`), the reference it was
/// resolved against and the instant of its second 0. An entry is made only
/// when seconds 0 and 59 of the minute resolve to the same year and offset,
/// so every second in between reads as the full parser would read it. The
/// owner must [`clear`](MinuteCache::clear) it when the time zone changes.
#[derive(Debug, Clone, Default)]
pub(crate) struct MinuteCache {
    entry: Option<MinuteEntry>,
    /// The reference of the previous miss: a minute is only worth resolving
    /// for the cache (two extra parses) when the reference holds still.
    last_miss_reference: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy)]
struct MinuteEntry {
    /// The minute's text as two overlapping words (see [`minute_words`]).
    text: [u64; 2],
    reference: Timestamp,
    second_zero_ms: i64,
}

/// `Mmm dd hh:mm:`, the part of the common syslog layout a minute shares.
const MINUTE_TEXT: usize = 13;
/// `Mmm dd hh:mm:ss`.
const SYSLOG_COMMON_LEN: usize = 15;

/// A line's first [`MINUTE_TEXT`] bytes as two overlapping little-endian
/// words (bytes 0..8 and 5..13), so a minute is compared in two word
/// compares; `None` for a shorter line.
fn minute_words(line: &[u8]) -> Option<[u64; 2]> {
    let text = line.first_chunk::<MINUTE_TEXT>()?;
    Some([le_word(text, 0)?, le_word(text, MINUTE_TEXT - 8)?])
}

impl MinuteCache {
    pub fn clear(&mut self) {
        *self = MinuteCache::default();
    }
}

/// [`find_date`] for a stream: the same answer, from `cache` when the line
/// starts with the minute the previous syslog line named.
pub(crate) fn find_date_cached(
    line: &[u8],
    search: DateSearch,
    reference: Timestamp,
    tz: Option<&TimeZone>,
    cache: &mut MinuteCache,
) -> Option<DateMatch> {
    let syslog_allowed = match search {
        DateSearch::Auto => true,
        DateSearch::Only(f) => allowed(Some(f), DateFormat::Syslog),
        DateSearch::Disabled => false,
    };
    if !syslog_allowed {
        return find_date(line, search, reference, tz);
    }
    if let Some(e) = &cache.entry
        && e.reference == reference
        && minute_words(line) == Some(e.text)
        && let Some(second) = common_tail_second(line)
    {
        // A leap second reads as :59, as `resolve` does.
        let time = Timestamp(e.second_zero_ms + i64::from(second.min(59)) * 1000);
        return Some(DateMatch {
            time,
            format: DateFormat::Syslog,
            start: 0,
            end: SYSLOG_COMMON_LEN,
            leading: true,
        });
    }
    let found = find_date(line, search, reference, tz);
    let stable = cache.last_miss_reference == Some(reference);
    cache.last_miss_reference = Some(reference);
    if stable
        && let Some(m) = found
        && m.leading
        && m.format == DateFormat::Syslog
        && m.end == SYSLOG_COMMON_LEN
        && syslog_common(line).is_some()
        && let Some(text) = line.first_chunk::<MINUTE_TEXT>()
        && let Some(words) = minute_words(line)
    {
        let ctx = Ctx { reference, tz };
        let at = |second: &[u8; 2]| {
            let mut probe = [0u8; SYSLOG_COMMON_LEN];
            probe[..MINUTE_TEXT].copy_from_slice(text);
            probe[MINUTE_TEXT..].copy_from_slice(second);
            parse_syslog(&probe, &ctx).map(|(t, _, _)| t.0)
        };
        if let (Some(zero), Some(last)) = (at(b"00"), at(b"59"))
            && last == zero + 59_000
        {
            cache.entry = Some(MinuteEntry { text: words, reference, second_zero_ms: zero });
        }
    }
    found
}

/// The seconds of a line whose first [`MINUTE_TEXT`] bytes are a cached
/// minute, if the rest of the common layout holds (`ss`, then the end of
/// the line or a space not followed by a digit, as [`syslog_common`] wants).
fn common_tail_second(b: &[u8]) -> Option<u32> {
    let tens = b.get(MINUTE_TEXT)?.wrapping_sub(b'0');
    let ones = b.get(MINUTE_TEXT + 1)?.wrapping_sub(b'0');
    if tens >= 10 || ones >= 10 {
        return None;
    }
    if !matches!(b.get(SYSLOG_COMMON_LEN), None | Some(b' '))
        || b.get(SYSLOG_COMMON_LEN + 1).is_some_and(u8::is_ascii_digit)
    {
        return None;
    }
    let second = u32::from(tens) * 10 + u32::from(ones);
    // `valid` accepts up to :60; anything above is not a date.
    (second <= 60).then_some(second)
}

struct Ctx<'a> {
    reference: Timestamp,
    tz: Option<&'a TimeZone>,
}

/// Calendar fields as read from text, before time-zone resolution.
#[derive(Debug, Clone, Copy)]
struct Civil {
    year: i32,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
    millis: u16,
    /// Seconds east of UTC, when the text says.
    offset: Option<i32>,
}

fn allowed(only: Option<DateFormat>, f: DateFormat) -> bool {
    match only {
        None => true,
        Some(DateFormat::Syslog) => matches!(f, DateFormat::Syslog | DateFormat::SyslogWithYear),
        Some(o) => o == f,
    }
}

fn leading(b: &[u8], only: Option<DateFormat>, ctx: &Ctx) -> Option<DateMatch> {
    let first = *b.first()?;
    let done = |time, format, end| Some(DateMatch { time, format, start: 0, end, leading: true });
    if first == b'<' {
        // `<PRI>1 TIMESTAMP` (RFC 5424) or `<PRI>Mmm dd hh:mm:ss` (RFC 3164 on the wire).
        let close = b.iter().take(5).position(|&c| c == b'>')?;
        if close < 2 || !b[1..close].iter().all(u8::is_ascii_digit) {
            return None;
        }
        let rest = &b[close + 1..];
        if rest.starts_with(b"1 ") && allowed(only, DateFormat::Rfc5424) {
            let (civil, n) = parse_iso(&rest[2..])?;
            let time = resolve(civil, ctx)?;
            return done(time, DateFormat::Rfc5424, close + 3 + n);
        }
        let (time, fmt, n) = parse_syslog(rest, ctx)?;
        if !allowed(only, fmt) {
            return None;
        }
        return done(time, fmt, close + 1 + n);
    }
    if first.is_ascii_digit() {
        if allowed(only, DateFormat::Iso8601)
            && let Some((civil, n)) = parse_iso(b)
        {
            return done(resolve(civil, ctx)?, DateFormat::Iso8601, n);
        }
        if allowed(only, DateFormat::Epoch)
            && let Some((time, n)) = parse_epoch(b)
        {
            return done(time, DateFormat::Epoch, n);
        }
        return None;
    }
    if first == b'[' {
        if allowed(only, DateFormat::Clf)
            && let Some((civil, n)) = parse_clf(&b[1..])
        {
            return done(resolve(civil, ctx)?, DateFormat::Clf, n + 1);
        }
        return None;
    }
    if first.is_ascii_alphabetic() && allowed(only, DateFormat::Syslog) {
        let (time, fmt, n) = parse_syslog(b, ctx)?;
        return done(time, fmt, n);
    }
    None
}

fn anywhere(b: &[u8], only: Option<DateFormat>, ctx: &Ctx) -> Option<DateMatch> {
    let b = &b[..b.len().min(SEARCH_LIMIT)];
    let found = |time, format, start, end| Some(DateMatch { time, format, start, end, leading: false });
    if allowed(only, DateFormat::Clf) {
        for i in memchr::memchr_iter(b'[', b) {
            if let Some((civil, n)) = parse_clf(&b[i + 1..])
                && let Some(t) = resolve(civil, ctx)
            {
                return found(t, DateFormat::Clf, i, i + 1 + n);
            }
        }
    }
    if allowed(only, DateFormat::Iso8601) {
        // An ISO date is `dddd-dd-dd...`: look at each '-' with four digits before it.
        for i in memchr::memchr_iter(b'-', b) {
            if i < 4 || (i > 4 && b[i - 5].is_ascii_digit()) {
                continue;
            }
            if let Some((civil, n)) = parse_iso(&b[i - 4..])
                && let Some(t) = resolve(civil, ctx)
            {
                return found(t, DateFormat::Iso8601, i - 4, i - 4 + n);
            }
        }
    }
    None
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    let mut v = 0u32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(c - b'0');
    }
    Some(v)
}

/// Reads 1-9 fraction digits after a '.' or ','; returns millis and bytes used.
fn fraction(b: &[u8], at: usize) -> (u16, usize) {
    match b.get(at) {
        Some(b'.' | b',') => {}
        _ => return (0, 0),
    }
    let mut n = 0;
    let mut millis = 0u32;
    while let Some(c) = b.get(at + 1 + n).filter(|c| c.is_ascii_digit()) {
        if n < 3 {
            millis = millis * 10 + u32::from(c - b'0');
        }
        n += 1;
        if n > 18 {
            break;
        }
    }
    if n == 0 {
        return (0, 0);
    }
    for _ in n..3 {
        millis *= 10;
    }
    (millis as u16, n + 1)
}

/// `YYYY-MM-DD[T ]HH:MM[:SS][.frac][Z|±HH[:]MM|±HH]`.
fn parse_iso(b: &[u8]) -> Option<(Civil, usize)> {
    let year = digits(b, 0, 4)?;
    // '-' per ISO-8601; '/' as nginx's error log writes it (2026/11/21 15:01:17).
    let sep = *b.get(4)?;
    if !matches!(sep, b'-' | b'/') || b.get(7) != Some(&sep) {
        return None;
    }
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let hour = digits(b, 11, 2)?;
    if b.get(13) != Some(&b':') {
        return None;
    }
    let minute = digits(b, 14, 2)?;
    let mut i = 16;
    let mut second = 0;
    if b.get(16) == Some(&b':') {
        second = digits(b, 17, 2)?;
        i = 19;
    }
    let (millis, n) = fraction(b, i);
    i += n;
    let mut offset = None;
    match b.get(i) {
        Some(b'Z' | b'z') => {
            offset = Some(0);
            i += 1;
        }
        Some(&sign @ (b'+' | b'-')) => {
            if let Some((off, n)) = parse_offset(&b[i + 1..], sign == b'-') {
                offset = Some(off);
                i += 1 + n;
            }
        }
        _ => {}
    }
    let civil = Civil {
        year: year as i32,
        month: month as u8,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        millis,
        offset,
    };
    valid(&civil).then_some((civil, i))
}

/// `HH[:]MM` or `HH` after a sign; returns seconds east of UTC.
fn parse_offset(b: &[u8], negative: bool) -> Option<(i32, usize)> {
    let h = digits(b, 0, 2)?;
    let (m, n) = if b.get(2) == Some(&b':') {
        (digits(b, 3, 2)?, 5)
    } else if let Some(m) = digits(b, 2, 2) {
        (m, 4)
    } else {
        (0, 2)
    };
    if h > 23 || m > 59 {
        return None;
    }
    let secs = (h * 3600 + m * 60) as i32;
    Some((if negative { -secs } else { secs }, n))
}

fn month_from(b: &[u8]) -> Option<u8> {
    let m = b.get(..3)?;
    let lower = [m[0].to_ascii_lowercase(), m[1].to_ascii_lowercase(), m[2].to_ascii_lowercase()];
    Some(match &lower {
        b"jan" => 1,
        b"feb" => 2,
        b"mar" => 3,
        b"apr" => 4,
        b"may" => 5,
        b"jun" => 6,
        b"jul" => 7,
        b"aug" => 8,
        b"sep" => 9,
        b"oct" => 10,
        b"nov" => 11,
        b"dec" => 12,
        _ => return None,
    })
}

fn is_weekday(b: &[u8]) -> bool {
    let Some(w) = b.get(..3) else { return false };
    let lower = [w[0].to_ascii_lowercase(), w[1].to_ascii_lowercase(), w[2].to_ascii_lowercase()];
    matches!(&lower, b"mon" | b"tue" | b"wed" | b"thu" | b"fri" | b"sat" | b"sun")
}

/// `[Www ]Mmm [d]d [YYYY ]HH:MM:SS[.frac][ YYYY]`, the day space-padded or not.
fn parse_syslog(b: &[u8], ctx: &Ctx) -> Option<(Timestamp, DateFormat, usize)> {
    let (month, day, hour, minute, second, millis, year, i) = match syslog_common(b) {
        Some((month, day, hour, minute, second)) => (month, day, hour, minute, second, 0, None, 15),
        None => syslog_fields(b)?,
    };
    let civil = |year| Civil {
        year,
        month,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        millis,
        offset: None,
    };
    if let Some(y) = year {
        let c = civil(y);
        if !valid(&c) {
            return None;
        }
        return Some((resolve(c, ctx)?, DateFormat::SyslogWithYear, i));
    }
    // No year: the most recent such date not far in the future of the reference.
    let ref_year = year_of(ctx.reference);
    let limit = ctx.reference.as_secs().saturating_add(FUTURE_TOLERANCE_SECS);
    // Next year's date can only be within the tolerance in early January.
    let newest = if month == 1 { ref_year + 1 } else { ref_year };
    for y in (ref_year - 8..=newest).rev() {
        let c = civil(y);
        if !valid(&c) {
            continue;
        }
        let t = resolve(c, ctx)?;
        if t.as_secs() <= limit {
            return Some((t, DateFormat::Syslog, i));
        }
    }
    None
}

/// The layout nearly every syslog line has, `Mmm dd hh:mm:ss` (day padded
/// with a space or a digit; no weekday, fraction or year after it), read
/// at fixed offsets: (month, day, hour, minute, second). `None` means "use
/// the general parser", not "no date".
fn syslog_common(b: &[u8]) -> Option<(u8, u32, u32, u32, u32)> {
    let h: &[u8; 15] = b.first_chunk()?;
    let d = |i: usize| h[i].wrapping_sub(b'0');
    let two = |i: usize| (d(i) < 10 && d(i + 1) < 10).then(|| u32::from(d(i)) * 10 + u32::from(d(i + 1)));
    if h[3] != b' ' || h[6] != b' ' || h[9] != b':' || h[12] != b':' {
        return None;
    }
    if !matches!(b.get(15), None | Some(b' ')) || b.get(16).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let month = match &h[..3] {
        b"Jan" => 1,
        b"Feb" => 2,
        b"Mar" => 3,
        b"Apr" => 4,
        b"May" => 5,
        b"Jun" => 6,
        b"Jul" => 7,
        b"Aug" => 8,
        b"Sep" => 9,
        b"Oct" => 10,
        b"Nov" => 11,
        b"Dec" => 12,
        _ => return None,
    };
    let day = if h[4] == b' ' && d(5) < 10 { u32::from(d(5)) } else { two(4)? };
    Some((month, day, two(7)?, two(10)?, two(13)?))
}

/// The general syslog date reader: (month, day, hour, minute, second,
/// millis, year, length).
#[allow(clippy::type_complexity)]
fn syslog_fields(b: &[u8]) -> Option<(u8, u32, u32, u32, u32, u16, Option<i32>, usize)> {
    let mut i = 0;
    if is_weekday(b) && b.get(3) == Some(&b' ') && month_from(&b[4..]).is_some() {
        i = 4;
    }
    let month = month_from(&b[i..])?;
    i += 3;
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    if b.get(i) == Some(&b' ') {
        i += 1;
    }
    let day = if let Some(d) = digits(b, i, 2) {
        i += 2;
        d
    } else {
        let d = digits(b, i, 1)?;
        i += 1;
        d
    };
    if b.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    let mut year = None;
    if let Some(y) = digits(b, i, 4)
        && b.get(i + 4) == Some(&b' ')
    {
        year = Some(y as i32);
        i += 5;
    }
    let hour = digits(b, i, 2)?;
    if b.get(i + 2) != Some(&b':') || b.get(i + 5) != Some(&b':') {
        return None;
    }
    let minute = digits(b, i + 3, 2)?;
    let second = digits(b, i + 6, 2)?;
    i += 8;
    let (millis, n) = fraction(b, i);
    i += n;
    if year.is_none()
        && b.get(i) == Some(&b' ')
        && let Some(y) = digits(b, i + 1, 4)
        && b.get(i + 5).is_none_or(|c| c.is_ascii_whitespace())
    {
        year = Some(y as i32);
        i += 5;
    }
    Some((month, day, hour, minute, second, millis, year, i))
}

/// `DD/Mmm/YYYY:HH:MM:SS[ ±HHMM]]` (the opening bracket already consumed).
fn parse_clf(b: &[u8]) -> Option<(Civil, usize)> {
    let day = digits(b, 0, 2)?;
    if b.get(2) != Some(&b'/') || b.get(6) != Some(&b'/') {
        return None;
    }
    let month = month_from(&b[3..])?;
    let year = digits(b, 7, 4)?;
    if b.get(11) != Some(&b':') || b.get(14) != Some(&b':') || b.get(17) != Some(&b':') {
        return None;
    }
    let hour = digits(b, 12, 2)?;
    let minute = digits(b, 15, 2)?;
    let second = digits(b, 18, 2)?;
    let mut i = 20;
    let (millis, n) = fraction(b, i);
    i += n;
    let mut offset = None;
    if b.get(i) == Some(&b' ')
        && let Some(&sign @ (b'+' | b'-')) = b.get(i + 1)
        && let Some((off, n)) = parse_offset(&b[i + 2..], sign == b'-')
    {
        offset = Some(off);
        i += 2 + n;
    }
    if b.get(i) != Some(&b']') {
        return None;
    }
    let civil = Civil {
        year: year as i32,
        month,
        day: day as u8,
        hour: hour as u8,
        minute: minute as u8,
        second: second as u8,
        millis,
        offset,
    };
    valid(&civil).then_some((civil, i + 1))
}

/// Epoch seconds (9 or 10 digits, years 2001-2286) with an optional fraction,
/// followed by whitespace or the end of the line.
fn parse_epoch(b: &[u8]) -> Option<(Timestamp, usize)> {
    let n = b.iter().take(11).take_while(|c| c.is_ascii_digit()).count();
    if !(9..=10).contains(&n) {
        return None;
    }
    let secs = i64::from(digits(b, 0, n)?);
    let (millis, f) = fraction(b, n);
    let end = n + f;
    if !b.get(end).is_none_or(|c| c.is_ascii_whitespace()) {
        return None;
    }
    Some((Timestamp(secs * 1000 + i64::from(millis)), end))
}

fn valid(c: &Civil) -> bool {
    (1..=12).contains(&c.month)
        && c.day >= 1
        && c.day <= days_in_month(c.year, c.month)
        && c.hour < 24
        && c.minute < 60
        && c.second < 61
}

fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i32, m: u8) -> u8 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC year of `t`, cached for the last day asked about (every line of
/// a stream asks about the same reference).
fn year_of(t: Timestamp) -> i32 {
    thread_local! {
        static LAST: std::cell::Cell<(i64, i32)> = const { std::cell::Cell::new((i64::MIN, 0)) };
    }
    let day = t.as_secs().div_euclid(86_400);
    LAST.with(|last| {
        let (cached_day, year) = last.get();
        if cached_day == day {
            return year;
        }
        let year = compute_year(day);
        last.set((day, year));
        year
    })
}

fn compute_year(day: i64) -> i32 {
    // Inverse of days_from_civil, year only.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2)) as i32
}

/// Turns calendar fields into an instant: the text's offset if it has one,
/// else the caller's zone (UTC when `None`, computed without jiff).
fn resolve(c: Civil, ctx: &Ctx) -> Option<Timestamp> {
    let second = c.second.min(59); // a leap second is read as :59
    let local_secs = days_from_civil(c.year, c.month, c.day) * 86_400
        + i64::from(c.hour) * 3600
        + i64::from(c.minute) * 60
        + i64::from(second);
    let utc_secs = match (c.offset, ctx.tz) {
        (Some(off), _) => local_secs - i64::from(off),
        (None, None) => local_secs,
        (None, Some(tz)) => {
            let dt = jiff::civil::DateTime::new(
                c.year as i16,
                c.month as i8,
                c.day as i8,
                c.hour as i8,
                c.minute as i8,
                second as i8,
                0,
            )
            .ok()?;
            tz.to_ambiguous_timestamp(dt).compatible().ok()?.as_second()
        }
    };
    Some(Timestamp(utc_secs * 1000 + i64::from(c.millis)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn common_syslog_layout_reads_like_the_general_parser() {
        for line in [
            "Nov 21 15:01:17 host sshd[1]: x",
            "Nov  1 15:01:17 host",
            "Jan 01 00:00:00",
            "Dec 31 23:59:59 ",
            "Feb 30 12:00:00 x",
            "Nov 21 15:01:17 2026 host",
            "Nov 21 15:01:17.250 host",
            "nov 21 15:01:17 host",
            "Mon Nov 21 15:01:17 host",
            "Nov 1 15:01:17 host",
            "Nov 21 15:01:17x",
            "Nov 21 25:01:17 host",
        ] {
            let b = line.as_bytes();
            if let Some((month, day, hour, minute, second)) = syslog_common(b) {
                assert_eq!(syslog_fields(b), Some((month, day, hour, minute, second, 0, None, 15)), "{line}");
            }
        }
        assert!(syslog_common(b"Nov 21 15:01:17 host").is_some());
        assert!(syslog_common(b"Nov  1 15:01:17").is_some());
        assert!(syslog_common(b"Nov 21 15:01:17 2026 host").is_none());
    }

    use super::*;

    fn ts(s: &str) -> Timestamp {
        let t: jiff::Timestamp = s.parse().unwrap();
        Timestamp(t.as_millisecond())
    }

    fn reference() -> Timestamp {
        ts("2026-11-21T16:00:00Z")
    }

    fn parse(line: &str) -> Option<DateMatch> {
        parse_date(line, reference())
    }

    #[test]
    fn iso8601_variants() {
        let cases = [
            ("2026-11-21T15:01:17Z x", "2026-11-21T15:01:17Z", 20),
            ("2026-11-21T15:01:17.123456+01:00 x", "2026-11-21T14:01:17.123Z", 32),
            ("2026-11-21 15:01:17,250 x", "2026-11-21T15:01:17.250Z", 23),
            ("2026-11-21T15:01:17-0530 x", "2026-11-21T20:31:17Z", 24),
            ("2026-11-21T15:01 x", "2026-11-21T15:01:00Z", 16),
            ("2026/11/21 15:01:17 [error] x", "2026-11-21T15:01:17Z", 19),
        ];
        for (line, want, end) in cases {
            let m = parse(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(m.time, ts(want), "{line}");
            assert_eq!((m.format, m.start, m.end, m.leading), (DateFormat::Iso8601, 0, end, true), "{line}");
        }
    }

    #[test]
    fn syslog_without_year_takes_the_most_recent_year() {
        let m = parse("Nov 21 15:01:17 host sshd[1]: x").unwrap();
        assert_eq!((m.time, m.format, m.end), (ts("2026-11-21T15:01:17Z"), DateFormat::Syslog, 15));
        // A day later than the reference (within tolerance) stays in this year.
        assert_eq!(parse("Nov 22 15:00:00 h").unwrap().time, ts("2026-11-22T15:00:00Z"));
        // December is in the future: last year's.
        assert_eq!(parse("Dec 31 23:59:59 h").unwrap().time, ts("2025-12-31T23:59:59Z"));
        assert_eq!(parse("Jan  5 01:02:03 h").unwrap().time, ts("2026-01-05T01:02:03Z"));
        assert_eq!(parse("Jan 5 01:02:03 h").unwrap().time, ts("2026-01-05T01:02:03Z"));
        // Feb 29 falls back to the latest leap year.
        assert_eq!(parse("Feb 29 12:00:00 h").unwrap().time, ts("2024-02-29T12:00:00Z"));
    }

    #[test]
    fn syslog_with_year_weekday_and_fraction() {
        let m = parse("Sat Nov 21 15:01:17 2026 x").unwrap();
        assert_eq!((m.time, m.format, m.end), (ts("2026-11-21T15:01:17Z"), DateFormat::SyslogWithYear, 24));
        let m = parse("Nov 21 2025 15:01:17 x").unwrap();
        assert_eq!((m.time, m.format), (ts("2025-11-21T15:01:17Z"), DateFormat::SyslogWithYear));
        let m = parse("Nov 21 15:01:17.250 host").unwrap();
        assert_eq!((m.time, m.end), (ts("2026-11-21T15:01:17.250Z"), 19));
    }

    #[test]
    fn rfc5424_and_pri() {
        let m = parse("<34>1 2026-11-21T15:01:17.003Z host sshd 42 - - msg").unwrap();
        assert_eq!((m.time, m.format, m.end), (ts("2026-11-21T15:01:17.003Z"), DateFormat::Rfc5424, 30));
        let m = parse("<13>Nov 21 15:01:17 host x").unwrap();
        assert_eq!((m.time, m.format, m.end), (ts("2026-11-21T15:01:17Z"), DateFormat::Syslog, 19));
    }

    #[test]
    fn epoch_and_clf() {
        let m = parse("1795273277.5 rest").unwrap();
        assert_eq!((m.time, m.format, m.end), (Timestamp(1_795_273_277_500), DateFormat::Epoch, 12));
        assert!(parse("17952732770000 rest").is_none(), "too many digits is not an epoch");
        assert!(parse("1795273277x").is_none());
        let m = parse("[21/Nov/2026:15:01:17 +0100] x").unwrap();
        assert_eq!(
            (m.time, m.format, m.end, m.leading),
            (ts("2026-11-21T14:01:17Z"), DateFormat::Clf, 28, true)
        );
    }

    #[test]
    fn dates_inside_the_line_are_found_but_not_leading() {
        let line = r#"192.0.2.1 - - [21/Nov/2026:15:01:17 +0000] "GET / HTTP/1.1" 401"#;
        let m = parse(line).unwrap();
        assert_eq!(
            (m.time, m.format, m.start, m.leading),
            (ts("2026-11-21T15:01:17Z"), DateFormat::Clf, 14, false)
        );
        let json = r#"{"level":"info","time":"2026-11-21T15:01:17Z","msg":"x"}"#;
        let m = parse(json).unwrap();
        assert_eq!((m.time, m.format, m.leading), (ts("2026-11-21T15:01:17Z"), DateFormat::Iso8601, false));
        assert!(parse("host sshd[1]: Failed password for root from 192.0.2.1").is_none());
    }

    #[test]
    fn invalid_calendar_values_are_rejected() {
        for line in
            ["2026-13-01T00:00:00Z x", "2026-02-30T00:00:00Z", "Nov 31 10:00:00 h", "Foo 21 15:01:17 h"]
        {
            assert!(parse(line).is_none_or(|m| !m.leading), "{line}");
        }
    }

    #[test]
    fn zone_applies_to_times_without_offset() {
        let tz = TimeZone::get("Europe/Berlin").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(1)));
        let m = find_date(b"2026-11-21 15:01:17 x", DateSearch::Auto, reference(), Some(&tz)).unwrap();
        assert_eq!(m.time, ts("2026-11-21T14:01:17Z"));
        let m = find_date(b"2026-11-21T15:01:17Z x", DateSearch::Auto, reference(), Some(&tz)).unwrap();
        assert_eq!(m.time, ts("2026-11-21T15:01:17Z"), "an explicit offset wins over the zone");
    }

    #[test]
    fn datepattern_restricts_the_search() {
        let only_clf = DateSearch::parse("clf").unwrap();
        assert!(find_date(b"2026-11-21T15:01:17Z x", only_clf, reference(), None).is_none());
        assert_eq!(find_date(b"Nov 21 15:01:17 x", DateSearch::Disabled, reference(), None), None);
        let err = DateSearch::parse("strftime").unwrap_err();
        assert!(err.contains("valid values are"), "{err}");
    }

    #[test]
    fn minute_cache_reads_every_line_as_the_parser_does() {
        let berlin = TimeZone::get("Europe/Berlin").unwrap_or_else(|_| TimeZone::fixed(jiff::tz::offset(1)));
        let zones = [None, Some(berlin), Some(TimeZone::fixed(jiff::tz::offset(-11)))];
        // Around the year boundary (the year flips with the second), a DST
        // change, and ordinary lines, with odd seconds and near-misses.
        let references =
            ["2026-11-21T16:00:00Z", "2026-12-30T23:59:30Z", "2027-01-01T00:00:00Z", "2026-03-29T00:30:00Z"];
        let minutes =
            ["Nov 21 15:01", "Jan  1 23:59", "Jan 02 23:59", "Mar 29 02:30", "Feb 29 12:00", "Dec 31 23:59"];
        let tails = [
            ":17 host x",
            ":00",
            ":59 h",
            ":60 h",
            ":61 h",
            ":7 h",
            ":17x",
            ":17 2026 h",
            ":17.5 h",
            ":58 h",
        ];
        for tz in &zones {
            for reference in references {
                let reference = ts(reference);
                let mut cache = MinuteCache::default();
                for search in [DateSearch::Auto, DateSearch::Only(DateFormat::Syslog)] {
                    for _round in 0..2 {
                        for minute in minutes {
                            for tail in tails {
                                let line = format!("{minute}{tail}");
                                let b = line.as_bytes();
                                let want = find_date(b, search, reference, tz.as_ref());
                                let got = find_date_cached(b, search, reference, tz.as_ref(), &mut cache);
                                assert_eq!(got, want, "{line:?} at {reference:?} in {tz:?}");
                            }
                        }
                    }
                }
                assert!(cache.entry.is_some(), "some minute was cached at {reference:?} in {tz:?}");
            }
        }
    }

    #[test]
    fn civil_round_trip() {
        for (y, m, d) in [(1970, 1, 1), (2000, 2, 29), (2026, 11, 21), (1969, 12, 31)] {
            let secs = days_from_civil(y, m, d) * 86_400;
            assert_eq!(year_of(Timestamp::from_secs(secs)), y);
        }
    }
}
