//! `warden test-filter`: runs one filter over a log file or standard input and
//! reports what it matched, warden's counterpart of `fail2ban-regex`.
//!
//! It reads the input as a stream (bounded memory whatever the file size),
//! feeds each line to [`Filter::process`] with one [`MatchState`], and tallies
//! lines matched, recognised-but-not-counted, ignored and missed, the hits per
//! failregex, the distinct hosts and the date formats seen.
//!
//! Filters imported from fail2ban (`fail2ban:sshd`) are counted the way
//! `fail2ban-regex` counts (load them with `check_all` to try every
//! failregex on every line, as it does).

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::newlines::Newlines;
use crate::core::{Clock, SystemClock};
use crate::filter::{Filter, MatchState, Outcome};

/// Longest line kept whole; longer ones are cut here (the filters never need
/// more, and it bounds memory on hostile input).
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What to print besides the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintOptions {
    pub matches: bool,
    pub missed: bool,
    pub ignored: bool,
}

/// The tally of one run.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub filter: String,
    pub input: String,
    pub lines: u64,
    /// Lines that produced a counted failure.
    pub matched: u64,
    /// Lines a failregex matched that fold into an attempt already counted
    /// (or that only carry context, like a PAM line or a disconnect).
    pub not_counted: u64,
    pub ignored: u64,
    pub missed: u64,
    /// Lines whose bytes were not valid UTF-8 (decoded lossily, still matched).
    pub invalid_utf8: u64,
    /// Lines longer than [`MAX_LINE_BYTES`], cut before matching.
    pub truncated: u64,
    /// Failures whose id is a host name, not an address (fail2ban filters
    /// only: fail2ban would resolve the name; warden bans addresses only).
    pub host_names: u64,
    pub failregex: Vec<RegexHits>,
    pub ignoreregex_hits: Vec<u64>,
    /// Counted failures per host, most first.
    pub hosts: Vec<HostCount>,
    pub distinct_hosts: usize,
    /// Lines per recognised date format.
    pub date_formats: BTreeMap<String, u64>,
    pub seconds: f64,
    pub lines_per_second: f64,
}

#[derive(Debug, Serialize)]
pub struct RegexHits {
    pub index: usize,
    pub pattern: String,
    /// Lines this pattern matched, counted or not.
    pub hits: u64,
}

#[derive(Debug, Serialize)]
pub struct HostCount {
    pub host: IpAddr,
    pub failures: u64,
}

/// Runs `filter` over `input`, writing the lines asked for by `print` to `out`
/// as they are found, and returns the tally.
pub fn run(
    filter: &Filter,
    input: impl Read,
    input_name: &str,
    print: PrintOptions,
    out: &mut dyn Write,
) -> io::Result<Report> {
    let started = Instant::now();
    let mut state = MatchState::new(SystemClock.now());
    let mut report =
        Report { filter: filter.name().to_string(), input: input_name.to_string(), ..Report::default() };
    let mut regex_hits = vec![0u64; filter.failregex_count()];
    let mut ignore_hits: Vec<u64> = Vec::new();
    let mut hosts = HostCounts::default();
    // A handful of formats per file: a linear scan beats hashing the
    // description on every matched line.
    let mut formats: Vec<(&'static str, u64)> = Vec::new();

    let mut tally = Tally {
        filter,
        state: &mut state,
        report: &mut report,
        regex_hits: &mut regex_hits,
        ignore_hits: &mut ignore_hits,
        hosts: &mut hosts,
        formats: &mut formats,
        print,
        out,
        plain: false,
        imported: filter.is_fail2ban(),
        last_format: 0,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    loop {
        // Whole lines are read where they lie in the buffer; a line the
        // buffer does not hold whole (or the last one, without a line end)
        // is assembled in `buf`.
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let whole = memchr::memrchr(b'\n', chunk).map_or(0, |i| i + 1);
        if whole > 0 {
            let lines = &chunk[..whole];
            // One UTF-8 check for the lot; lines end at '\n', a character
            // boundary, so each is valid when all are.
            let valid = std::str::from_utf8(lines).ok();
            // One search for escape bytes for the lot too: without one, the
            // lines (split at '\n') are plain ([`Filter::process_plain`]).
            tally.plain = memchr::memchr(0x1b, lines).is_none();
            let mut start = 0;
            for end in Newlines::new(lines) {
                let mut line_end = end;
                if end + 1 - start > MAX_LINE_BYTES {
                    tally.report.truncated += 1;
                    line_end = start + MAX_LINE_BYTES;
                }
                let bytes = trim_line_end_bytes(&lines[start..line_end]);
                let (s, e) = (start, start + bytes.len());
                match valid.and_then(|text| text.get(s..e)) {
                    Some(text) => tally.line(text)?,
                    None => tally.line_bytes(bytes)?,
                }
                start = end + 1;
            }
            reader.consume(whole);
            continue;
        }
        tally.plain = false;
        buf.clear();
        if read_bounded_line(&mut reader, &mut buf, &mut tally.report.truncated)? == 0 {
            break;
        }
        trim_line_end(&mut buf);
        tally.line_bytes(&buf)?;
    }

    report.failregex = regex_hits
        .into_iter()
        .enumerate()
        .map(|(index, hits)| RegexHits { index, pattern: filter.failregex_source(index).to_string(), hits })
        .collect();
    report.ignoreregex_hits = ignore_hits;
    report.distinct_hosts = hosts.len();
    report.hosts = hosts.into_sorted_counts();
    for (fmt, n) in formats {
        *report.date_formats.entry(fmt.to_string()).or_default() += n;
    }
    let elapsed = started.elapsed().max(Duration::from_micros(1));
    report.seconds = elapsed.as_secs_f64();
    report.lines_per_second = report.lines as f64 / report.seconds;
    Ok(report)
}

/// Failures per host. IPv4 addresses are keyed by their 32 bits, so the
/// table a busy log fills (tens of thousands of hosts) stays small enough
/// for the processor's caches: one lookup per counted line.
#[derive(Default)]
struct HostCounts {
    // foldhash: a fast, randomly seeded hasher; addresses come from the log,
    // so the maps must not be keyed predictably.
    v4: HashMap<u32, u64, foldhash::fast::RandomState>,
    v6: HashMap<Ipv6Addr, u64, foldhash::fast::RandomState>,
}

impl HostCounts {
    fn add(&mut self, addr: IpAddr) {
        match addr {
            IpAddr::V4(v4) => *self.v4.entry(u32::from(v4)).or_default() += 1,
            IpAddr::V6(v6) => *self.v6.entry(v6).or_default() += 1,
        }
    }

    fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// The counts, most failures first, then by address ([`IpAddr`]'s
    /// order: every IPv4 address before every IPv6 one).
    ///
    /// Sorted as packed integer keys (failures inverted, then the address's
    /// bits), which compare in one or two instructions where `IpAddr`'s
    /// comparison branches on the family: a busy log has tens of thousands
    /// of hosts. Addresses are unique, so the unstable sort's order is fixed.
    fn into_sorted_counts(self) -> Vec<HostCount> {
        let mut v4: Vec<u128> =
            self.v4.into_iter().map(|(addr, n)| (u128::from(!n) << 64) | u128::from(addr)).collect();
        v4.sort_unstable();
        // `u128::from(Ipv6Addr)` reads the octets big-endian: the same order
        // as `Ipv6Addr`'s own comparison (of its octets).
        let mut v6: Vec<(u64, u128)> = self.v6.into_iter().map(|(addr, n)| (!n, u128::from(addr))).collect();
        v6.sort_unstable();
        let mut sorted = Vec::with_capacity(v4.len() + v6.len());
        let mut v6 = v6.into_iter().map(|(n, addr)| (!n, addr)).peekable();
        for key in v4 {
            // The high 64 bits hold the inverted count, the low ones the
            // 32-bit address (see above): the casts only take them apart.
            let failures = !((key >> 64) as u64);
            // IPv6 hosts with more failures come first; on a tie, IPv4 does.
            while let Some((n, addr)) = v6.next_if(|&(n, _)| n > failures) {
                sorted.push(HostCount { host: IpAddr::V6(Ipv6Addr::from(addr)), failures: n });
            }
            sorted.push(HostCount { host: IpAddr::V4(Ipv4Addr::from(key as u32)), failures });
        }
        sorted.extend(v6.map(|(n, addr)| HostCount { host: IpAddr::V6(Ipv6Addr::from(addr)), failures: n }));
        sorted
    }
}

/// The running tally of [`run`], fed one line at a time.
struct Tally<'a> {
    filter: &'a Filter,
    state: &'a mut MatchState,
    report: &'a mut Report,
    regex_hits: &'a mut Vec<u64>,
    ignore_hits: &'a mut Vec<u64>,
    hosts: &'a mut HostCounts,
    formats: &'a mut Vec<(&'static str, u64)>,
    print: PrintOptions,
    out: &'a mut dyn Write,
    /// The lines fed now hold no '\n' and no escape byte.
    plain: bool,
    /// The filter was imported from fail2ban (counted its way).
    imported: bool,
    /// Where in `formats` the last date format counted is.
    last_format: usize,
}

impl Tally<'_> {
    /// A line that may not be UTF-8: decoded lossily (and counted) if not.
    fn line_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        match std::str::from_utf8(bytes) {
            Ok(text) => self.line(text),
            Err(_) => {
                self.report.invalid_utf8 += 1;
                self.line(&String::from_utf8_lossy(bytes))
            }
        }
    }

    fn line(&mut self, line: &str) -> io::Result<()> {
        if self.imported {
            return self.fail2ban_line(line);
        }
        self.report.lines += 1;
        self.native(line)
    }

    /// Counts a line a native filter (or, should one not answer, an
    /// imported filter's native form) processed.
    #[inline]
    fn native(&mut self, line: &str) -> io::Result<()> {
        let outcome = if self.plain {
            self.filter.process_plain(self.state, line, None)
        } else {
            self.filter.process(self.state, line, None)
        };
        match &outcome {
            Outcome::Miss => self.report.missed += 1,
            Outcome::Ignored { regex_index } => {
                self.report.ignored += 1;
                count_ignore_hit(self.ignore_hits, *regex_index);
            }
            Outcome::Match(hit) => {
                if let Some(n) = self.regex_hits.get_mut(hit.regex_index) {
                    *n += 1;
                }
                if let Some(fmt) = hit.date_format {
                    self.count_date_format(fmt);
                }
                if hit.counted {
                    self.report.matched += 1;
                    self.hosts.add(hit.addr);
                } else {
                    self.report.not_counted += 1;
                }
            }
        }
        if self.print.matches || self.print.missed || self.print.ignored {
            print_outcome(self.out, self.print, &outcome, line)?;
        }
        Ok(())
    }

    /// One more line dated in `fmt`. The format last seen is tried first:
    /// a log keeps one format, so this is one comparison per line.
    fn count_date_format(&mut self, fmt: &'static str) {
        if let Some((last, n)) = self.formats.get_mut(self.last_format)
            && std::ptr::eq(*last, fmt)
        {
            *n += 1;
            return;
        }
        match self.formats.iter().position(|(f, _)| std::ptr::eq(*f, fmt) || *f == fmt) {
            Some(i) => {
                self.formats[i].1 += 1;
                self.last_format = i;
            }
            None => {
                self.last_format = self.formats.len();
                self.formats.push((fmt, 1));
            }
        }
    }

    /// [`Tally::line`] for an imported filter.
    #[cold]
    #[inline(never)]
    fn fail2ban_line(&mut self, line: &str) -> io::Result<()> {
        if line.is_empty() || line.starts_with('#') {
            // fail2ban-regex skips comments and empty lines (sample logs
            // annotate lines with comments).
            return Ok(());
        }
        self.report.lines += 1;
        match self.filter.process_fail2ban(self.state, line, None) {
            Some(found) => self.fail2ban(found, line),
            None => self.native(line),
        }
    }
}

/// Counts a hit of ignoreregex `index`.
fn count_ignore_hit(ignore_hits: &mut Vec<u64>, index: usize) {
    if ignore_hits.len() <= index {
        ignore_hits.resize(index + 1, 0);
    }
    ignore_hits[index] += 1;
}

/// Prints a line the way `print` asks for its outcome (out of line: most
/// runs print nothing but the summary).
#[cold]
#[inline(never)]
fn print_outcome(out: &mut dyn Write, print: PrintOptions, outcome: &Outcome, line: &str) -> io::Result<()> {
    match outcome {
        Outcome::Miss if print.missed => writeln!(out, "missed: {line}"),
        Outcome::Ignored { .. } if print.ignored => writeln!(out, "ignored: {line}"),
        Outcome::Match(hit) if print.matches => {
            let tag = if hit.counted { "match" } else { "not counted" };
            writeln!(out, "{tag}: [{}] {line}", hit.addr)
        }
        _ => Ok(()),
    }
}

/// How a line's date is reported for imported filters.
const FAIL2BAN_DATE: &str = "the filter's datepattern (fail2ban)";

impl Tally<'_> {
    /// Counts a line as `fail2ban-regex` does: every failregex that matched
    /// gets a hit; a line an ignoreregex hit is ignored, one with a
    /// no-failure match is "not counted" (fail2ban-regex calls both
    /// ignored), one with failures is matched (a failure whose connection's
    /// address is not known yet included), else missed.
    fn fail2ban(&mut self, found: crate::filter::fail2ban::Fail2banLine, line: &str) -> io::Result<()> {
        let (report, print, out) = (&mut *self.report, self.print, &mut *self.out);
        for r in &found.results {
            if let Some(n) = self.regex_hits.get_mut(r.regex_index) {
                *n += 1;
            }
        }
        if found.dated {
            match self.formats.iter_mut().find(|(f, _)| *f == FAIL2BAN_DATE) {
                Some((_, n)) => *n += 1,
                None => self.formats.push((FAIL2BAN_DATE, 1)),
            }
        }
        // Earlier lines a multi-line match used count as matched after all.
        report.matched += found.consumed as u64;
        report.missed = report.missed.saturating_sub(found.consumed as u64);
        let failures: Vec<_> = found.results.iter().filter(|r| !r.nofail).collect();
        if let Some(i) = found.ignored {
            report.ignored += 1;
            count_ignore_hit(self.ignore_hits, i);
            if print.ignored {
                writeln!(out, "ignored: {line}")?;
            }
        } else if found.results.iter().any(|r| r.nofail) {
            report.not_counted += 1;
            if print.matches {
                writeln!(out, "not counted: {line}")?;
            }
        } else if !failures.is_empty() {
            report.matched += 1;
            for r in &failures {
                match (r.addr, &r.id) {
                    (Some(addr), _) => self.hosts.add(addr),
                    (None, Some(_)) => report.host_names += 1,
                    (None, None) => {}
                }
            }
            if print.matches {
                let ids: Vec<&str> = failures.iter().map(|r| r.id.as_deref().unwrap_or("pending")).collect();
                writeln!(out, "match: [{}] {line}", ids.join(", "))?;
            }
        } else {
            report.missed += 1;
            if print.missed {
                writeln!(out, "missed: {line}")?;
            }
        }
        Ok(())
    }
}

/// Reads one line into `buf` (without growing past [`MAX_LINE_BYTES`]; the
/// rest of an overlong line is skipped). Returns the bytes consumed.
fn read_bounded_line(reader: &mut impl BufRead, buf: &mut Vec<u8>, truncated: &mut u64) -> io::Result<usize> {
    let mut consumed = 0;
    let mut cut = false;
    loop {
        let chunk = match reader.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            break;
        }
        let (take, done) = match memchr::memchr(b'\n', chunk) {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = MAX_LINE_BYTES.saturating_sub(buf.len());
        if take > room {
            cut = true;
        }
        buf.extend_from_slice(&chunk[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if done {
            break;
        }
    }
    if cut {
        *truncated += 1;
    }
    Ok(consumed)
}

fn trim_line_end_bytes(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = line {
        line = rest;
    }
    line
}

fn trim_line_end(buf: &mut Vec<u8>) {
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
}

/// The human-readable summary, in the spirit of fail2ban-regex's.
pub fn render(report: &Report, top_hosts: usize) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "Filter: {}", report.filter);
    let _ = writeln!(s, "Input:  {}", report.input);
    let _ = writeln!(s);
    let _ = writeln!(s, "Failregex: {} lines matched", report.matched + report.not_counted);
    let _ = writeln!(s, "  #  hits      pattern");
    for r in &report.failregex {
        let _ = writeln!(s, "  {:<2} {:<9} {}", r.index, r.hits, r.pattern);
    }
    if !report.ignoreregex_hits.is_empty() {
        let _ = writeln!(s, "Ignoreregex hits: {:?}", report.ignoreregex_hits);
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Date formats:");
    if report.date_formats.is_empty() {
        let _ = writeln!(s, "  (none found; the source's own timestamps would be used)");
    }
    for (fmt, n) in &report.date_formats {
        let _ = writeln!(s, "  {n:<9} {fmt}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Hosts: {} distinct", report.distinct_hosts);
    for h in report.hosts.iter().take(top_hosts) {
        let _ = writeln!(s, "  {:<9} {}", h.failures, h.host);
    }
    if report.host_names > 0 {
        let _ =
            writeln!(s, "  ({} failures name a host instead of an address: not banned)", report.host_names);
    }
    if report.hosts.len() > top_hosts {
        let _ = writeln!(s, "  … {} more (use --json for all)", report.hosts.len() - top_hosts);
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "Lines: {} total, {} matched (counted failures), {} matched but not counted, {} ignored, {} missed",
        report.lines, report.matched, report.not_counted, report.ignored, report.missed
    );
    if report.invalid_utf8 > 0 || report.truncated > 0 {
        let _ = writeln!(
            s,
            "       {} with invalid UTF-8 (decoded lossily), {} longer than {} KiB (cut)",
            report.invalid_utf8,
            report.truncated,
            MAX_LINE_BYTES / 1024
        );
    }
    let _ = writeln!(s, "Processed in {:.3} s ({:.0} lines/s)", report.seconds, report.lines_per_second);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail2ban_filters_are_counted_like_fail2ban_regex() {
        let dir = tempfile::tempdir().unwrap();
        let conf = "[Definition]\n\
            prefregex = ^\\s*\\S+ svc\\[<F-MLFID>\\d+</F-MLFID>\\]: <F-CONTENT>.+</F-CONTENT>$\n\
            failregex = ^bad password from <HOST>$\n\
            \x20           ^<F-NOFAIL>hello</F-NOFAIL> from <HOST>$\n\
            \x20           ^gave up$\n\
            ignoreregex = ^bad password from 192\\.0\\.2\\.99$\n";
        std::fs::write(dir.path().join("svc.conf"), conf).unwrap();
        let registry = crate::filter::Registry::shipped().with_fail2ban_dir(dir.path());
        let options = crate::filter::fail2ban::Options { check_all: true, ..Default::default() };
        let filter = registry.load_with("fail2ban:svc", &BTreeMap::new(), &options).unwrap();
        let log = "# a comment\n\n\
            Aug 14 11:00:00 h svc[1]: bad password from 192.0.2.1\n\
            Aug 14 11:00:01 h svc[2]: bad password from attacker.example\n\
            Aug 14 11:00:02 h svc[3]: hello from 192.0.2.3\n\
            Aug 14 11:00:03 h svc[4]: gave up\n\
            Aug 14 11:00:04 h svc[5]: bad password from 192.0.2.99\n\
            Aug 14 11:00:05 h other[6]: bad password from 192.0.2.1\n";
        let mut out = Vec::new();
        let print = PrintOptions { matches: true, ..PrintOptions::default() };
        let report = run(&filter, log.as_bytes(), "log", print, &mut out).unwrap();
        let counts = (report.lines, report.matched, report.not_counted, report.ignored, report.missed);
        assert_eq!(counts, (6, 3, 1, 1, 1), "comments and empty lines are skipped");
        assert_eq!((report.distinct_hosts, report.host_names), (1, 1));
        let hits: Vec<u64> = report.failregex.iter().map(|r| r.hits).collect();
        assert_eq!(hits, [2, 1, 1], "a match an ignoreregex dropped is no hit");
        let printed = String::from_utf8(out).unwrap();
        assert!(printed.contains("match: [pending] Aug 14 11:00:03"), "{printed}");
        assert!(render(&report, 5).contains("1 failures name a host instead of an address"));
    }

    proptest::proptest! {
        /// Few distinct counts (ties are the rule in a real log, and the
        /// order among tied hosts is what the packed keys must keep), some
        /// huge ones (the inverted count must not wrap), addresses of both
        /// families from small pools so that v4/v6 ties are common.
        #[test]
        fn sorted_counts_are_ordered_like_ip_addrs(
            hosts in proptest::collection::vec(
                (proptest::bool::ANY, 0u32..64, proptest::prop_oneof![1u64..4, proptest::num::u64::ANY]),
                0..200,
            ),
        ) {
            let mut counts = HostCounts::default();
            for (is_v4, addr, n) in hosts {
                if is_v4 {
                    counts.v4.insert(addr.wrapping_mul(0x9e37_79b9), n);
                } else {
                    counts.v6.insert(Ipv6Addr::from(u128::from(addr).wrapping_mul(0x9e37_79b9_7f4a_7c15_0123)), n);
                }
            }
            let mut expected: Vec<(IpAddr, u64)> = counts
                .v4
                .iter()
                .map(|(&a, &n)| (IpAddr::V4(Ipv4Addr::from(a)), n))
                .chain(counts.v6.iter().map(|(&a, &n)| (IpAddr::V6(a), n)))
                .collect();
            expected.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let sorted: Vec<(IpAddr, u64)> =
                counts.into_sorted_counts().into_iter().map(|h| (h.host, h.failures)).collect();
            proptest::prop_assert_eq!(sorted, expected);
        }
    }

    /// Hands out its data a few bytes per read, so lines straddle buffer refills.
    struct Trickle<'a>(&'a [u8], usize);

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(out.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn buffered_and_straddling_lines_are_read_alike() {
        let filter = crate::filter::Registry::shipped().load("sshd", &BTreeMap::new()).unwrap();
        let fail = "Nov 21 15:01:19 host sshd[1]: Failed password for root from 192.0.2.1 port 2 ssh2";
        let mut data = Vec::new();
        for i in 0..50 {
            data.extend_from_slice(fail.replace("[1]", &format!("[{i}]")).as_bytes());
            data.extend_from_slice(if i % 3 == 0 { b"\r\n" } else { b"\n" });
        }
        data.extend_from_slice(b"Nov 21 15:01:20 host sshd[7]: Invalid user \xff\xfe from 192.0.2.9\n");
        data.extend_from_slice(&vec![b'x'; MAX_LINE_BYTES]);
        data.push(b'\n');
        data.extend_from_slice(b"\n");
        data.extend_from_slice(fail.as_bytes());
        let mut reports = Vec::new();
        for step in [usize::MAX, 1000, 7] {
            let report =
                run(&filter, Trickle(&data, step), "t", PrintOptions::default(), &mut io::sink()).unwrap();
            let key = (
                report.lines,
                report.matched,
                report.not_counted,
                report.missed,
                report.invalid_utf8,
                report.truncated,
                report.distinct_hosts,
            );
            reports.push(key);
        }
        assert_eq!(reports[0], (54, 52, 0, 2, 1, 1, 2), "lines, matched, …");
        assert!(reports.iter().all(|r| *r == reports[0]), "{reports:?}");
    }

    #[test]
    fn bounded_reader_cuts_long_lines_and_keeps_the_next_one() {
        let mut data = vec![b'a'; MAX_LINE_BYTES + 100];
        data.extend_from_slice(b"\nshort\r\n");
        let mut r = BufReader::with_capacity(1000, &data[..]);
        let mut buf = Vec::new();
        let mut truncated = 0;
        assert_eq!(read_bounded_line(&mut r, &mut buf, &mut truncated).unwrap(), MAX_LINE_BYTES + 101);
        assert_eq!(buf.len(), MAX_LINE_BYTES);
        assert_eq!(truncated, 1);
        buf.clear();
        read_bounded_line(&mut r, &mut buf, &mut truncated).unwrap();
        trim_line_end(&mut buf);
        assert_eq!(buf, b"short");
        buf.clear();
        assert_eq!(read_bounded_line(&mut r, &mut buf, &mut truncated).unwrap(), 0);
    }
}
