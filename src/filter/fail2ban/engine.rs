//! How an imported fail2ban filter runs a line: fail2ban's
//! `Filter.processLine`, `findFailure` and `_mergeFailure`, on warden's
//! compiled patterns.
//!
//! Per line:
//! 1. the date ([`super::dates`]) is cut out of the line; without one, the
//!    last date seen within a minute stands in;
//! 2. with `maxlines` > 1 the line joins a buffer of the last `maxlines`
//!    lines, which the patterns see joined by newlines (failregexes in
//!    multi-line mode); lines a match used leave the buffer, except those
//!    a `<SKIPLINES>` stepped over;
//! 3. ignoreregexes first see the whole buffer when there are fewer of them
//!    than failregexes minus two (fail2ban's heuristic);
//! 4. the prefregex must match; its `<F-CONTENT>`, when not empty, is what
//!    the failregexes and ignoreregexes then see;
//! 5. failregexes are tried in order; a match an ignoreregex also matches
//!    is dropped; the first match wins (or, in check-all mode, as
//!    `fail2ban-regex` runs, every pattern is tried);
//! 6. groups are merged with the prefregex's, then with what earlier lines
//!    of the same `<F-MLFID>` connection said ([`Connections`]); the
//!    failure id is `<F-ID>`, else the address (`ip4`, `ip6`), else the
//!    host name (`dns`), else none yet (the connection is marked pending).
//!
//! State owned per stream ([`State`]): the line buffer, the last date, the
//! date detector's memory and the connection cache.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use super::dates::{Clock, DateDetector, DateState};
use crate::core::Timestamp;
use crate::filter::compile::{Compiled, PatternList};
use crate::filter::{Filter, MatchState, addr};

/// How long the last date stands in for lines without one (fail2ban: 60 s).
const LAST_DATE_WINDOW_MS: i64 = 60_000;

/// Connections remembered per stream (fail2ban keeps 100; warden more, as
/// one stream may carry a busy server).
const MLFID_CAPACITY: usize = 4096;
/// A connection silent this long (by the stream's clock) is forgotten
/// (fail2ban: 5 minutes).
const MLFID_MAX_AGE_MS: i64 = 5 * 60 * 1000;

/// Group numbers of the groups fail2ban gives meaning to, in one pattern.
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    ip4: Option<usize>,
    ip6: Option<usize>,
    dns: Option<usize>,
    fid: Option<usize>,
    cidr: Option<usize>,
    user: Option<usize>,
    /// `alt_user*` groups, sorted by name (fail2ban's order).
    alt_user: Vec<usize>,
    mlfid: Option<usize>,
    content: Option<usize>,
    nofail: Option<usize>,
    mlfforget: Option<usize>,
    mlfgained: Option<usize>,
    skiplines: Vec<usize>,
}

impl Groups {
    pub fn of(compiled: &Compiled) -> Groups {
        let names = compiled.group_names();
        let find = |name: &str| names.iter().position(|n| n.as_deref() == Some(name));
        let mut alt: Vec<(&str, usize)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref().filter(|n| is_alt_user(n)).map(|n| (n, i)))
            .collect();
        alt.sort();
        let mut skip: Vec<(usize, usize)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.as_deref()?.strip_prefix("skiplines")?.parse().ok().map(|k: usize| (k, i)))
            .collect();
        skip.sort();
        Groups {
            ip4: find("ip4"),
            ip6: find("ip6"),
            dns: find("dns"),
            fid: find("fid"),
            cidr: find("cidr"),
            user: find("user"),
            alt_user: alt.into_iter().map(|(_, i)| i).collect(),
            mlfid: find("mlfid"),
            content: find("content"),
            nofail: find("nofail"),
            mlfforget: find("mlfforget"),
            mlfgained: find("mlfgained"),
            skiplines: skip.into_iter().map(|(_, i)| i).collect(),
        }
    }

    /// The `<F-CONTENT>` group's number.
    pub fn content(&self) -> Option<usize> {
        self.content
    }

    /// Whether a failure id can come from this pattern (fail2ban's check
    /// that a failregex has `fid`, `ip4`, `ip6`, `dns` or `mlfid`).
    pub fn has_failure_id(&self) -> bool {
        self.fid.is_some()
            || self.ip4.is_some()
            || self.ip6.is_some()
            || self.dns.is_some()
            || self.mlfid.is_some()
    }

    /// The group dictionary of a match (fail2ban's `getGroups`, with its
    /// `alt_user` merge).
    fn read(&self, hay: &str, spans: &[Option<(usize, usize)>]) -> Fail {
        let slot = |g: Option<usize>| -> Slot {
            let g = g?;
            Some(spans.get(g).copied().flatten().and_then(|(s, e)| hay.get(s..e)).map(String::from))
        };
        let mut fail = Fail {
            ip4: slot(self.ip4),
            ip6: slot(self.ip6),
            dns: slot(self.dns),
            fid: slot(self.fid),
            cidr: slot(self.cidr),
            user: slot(self.user),
            mlfid: slot(self.mlfid),
            nofail: slot(self.nofail),
            mlfforget: slot(self.mlfforget),
            mlfgained: slot(self.mlfgained),
            ..Fail::default()
        };
        for &g in &self.alt_user {
            if let Some(Some(v)) = slot(Some(g))
                && !v.is_empty()
                && !truthy(&fail.user)
            {
                fail.user = Some(Some(v));
            }
        }
        fail
    }
}

fn is_alt_user(name: &str) -> bool {
    // `alt_user`, `alt_user1`, `alt_user_2`: fail2ban's `^alt_(.*?)(?:_\d+)?$`
    // naming `user` (only `user` has a meaning warden reads).
    let Some(rest) = name.strip_prefix("alt_user") else { return false };
    let rest = rest.strip_prefix('_').unwrap_or(rest);
    rest.chars().all(|c| c.is_ascii_digit())
}

/// A key of fail2ban's group dictionary: `None` absent, `Some(None)`
/// present without a value (the group did not take part).
type Slot = Option<Option<String>>;

fn get(slot: &Slot) -> Option<&str> {
    slot.as_ref()?.as_deref()
}

/// Python truthiness of a dictionary value (present and not empty).
fn truthy(slot: &Slot) -> bool {
    get(slot).is_some_and(|s| !s.is_empty())
}

/// The part of fail2ban's failure dictionary warden reads.
#[derive(Debug, Clone, Default)]
struct Fail {
    ip4: Slot,
    ip6: Slot,
    dns: Slot,
    fid: Slot,
    cidr: Slot,
    user: Slot,
    mlfid: Slot,
    nofail: Slot,
    mlfforget: Slot,
    mlfgained: Slot,
    mlfpending: bool,
    /// Distinct users seen on a connection.
    users: Option<Vec<String>>,
}

impl Fail {
    fn slots(&mut self) -> [&mut Slot; 10] {
        [
            &mut self.ip4,
            &mut self.ip6,
            &mut self.dns,
            &mut self.fid,
            &mut self.cidr,
            &mut self.user,
            &mut self.mlfid,
            &mut self.nofail,
            &mut self.mlfforget,
            &mut self.mlfgained,
        ]
    }

    /// The failregex's groups over the prefregex's: a group that took part
    /// in the failregex match wins (fail2ban 1.1 keeps the prefregex's
    /// value when the failregex's same-named group did not take part).
    fn over(mut self, mut pre: Fail) -> Fail {
        for (mine, theirs) in self.slots().into_iter().zip(pre.slots()) {
            if mine.is_none() || (matches!(mine, Some(None)) && matches!(theirs, Some(Some(_)))) {
                *mine = theirs.take();
            }
        }
        self
    }

    /// `cached.update((k, v) for k, v in self.items() if v is not None)`.
    fn update_into(mut self, cached: &mut Fail) {
        for (mine, theirs) in self.slots().into_iter().zip(cached.slots()) {
            if let Some(Some(v)) = mine.take() {
                *theirs = Some(Some(v));
            }
        }
    }

    /// `_updateUsers`: remembers `user` (when not empty); the users so far.
    fn update_users(&mut self, user: Option<&str>) -> Option<usize> {
        if let Some(u) = user.filter(|u| !u.is_empty()) {
            let users = self.users.get_or_insert_with(Vec::new);
            if !users.iter().any(|x| x == u) && users.len() < 64 {
                users.push(u.to_string());
            }
        }
        self.users.as_ref().map(Vec::len)
    }
}

/// What the engine reads from a merged failure dictionary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Summary {
    /// `fid`, else `ip4`, `ip6`, `dns` (fail2ban's failure id).
    id: Option<String>,
    user: Option<String>,
    nofail: bool,
}

impl Summary {
    fn of(fail: &Fail) -> Summary {
        let id =
            get(&fail.fid).or_else(|| get(&fail.ip4)).or_else(|| get(&fail.ip6)).or_else(|| get(&fail.dns));
        Summary {
            id: id.map(String::from),
            user: get(&fail.user).map(String::from),
            nofail: truthy(&fail.nofail),
        }
    }

    fn take(mut fail: Fail) -> Summary {
        let nofail = truthy(&fail.nofail);
        let id = [&mut fail.fid, &mut fail.ip4, &mut fail.ip6, &mut fail.dns]
            .into_iter()
            .find_map(|s| s.take().flatten());
        Summary { id, user: fail.user.take().flatten(), nofail }
    }
}

/// Open connections by `<F-MLFID>` (fail2ban's `mlfidCache`): oldest first
/// out when full, and forgotten after a while without a line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Connections {
    /// foldhash: fast and randomly seeded (ids come from log lines).
    map: HashMap<Box<str>, Conn, foldhash::fast::RandomState>,
    /// Insertion order for eviction; entries whose seq no longer matches
    /// are stale.
    order: VecDeque<(Box<str>, u64)>,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Conn {
    seq: u64,
    /// The stream's clock when the connection was opened (fail2ban ages
    /// entries from when they were stored).
    opened: i64,
    fail: Fail,
}

impl Connections {
    fn live(&mut self, mlfid: &str, now: i64) -> bool {
        let Some(conn) = self.map.get(mlfid) else { return false };
        if now.saturating_sub(conn.opened) > MLFID_MAX_AGE_MS {
            self.map.remove(mlfid);
            return false;
        }
        true
    }

    fn insert(&mut self, mlfid: &str, now: i64, fail: Fail) {
        while self.map.len() >= MLFID_CAPACITY {
            let Some((key, seq)) = self.order.pop_front() else { break };
            if self.map.get(&key).is_some_and(|c| c.seq == seq) {
                self.map.remove(&key);
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let key: Box<str> = mlfid.into();
        self.map.insert(key.clone(), Conn { seq, opened: now, fail });
        self.order.push_back((key, seq));
        // Forgotten connections leave stale order entries; keep the queue bounded.
        if self.order.len() > 2 * MLFID_CAPACITY {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|c| c.seq == *s));
        }
    }

    fn get_mut(&mut self, mlfid: &str) -> Option<&mut Fail> {
        self.map.get_mut(mlfid).map(|c| &mut c.fail)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// `_mergeFailure`: merges a line's groups into its connection. Returns
    /// what the merged dictionary says and whether it is the connection's
    /// stored one (`false` when the connection was forgotten, or never
    /// stored).
    fn merge(&mut self, mlfid: &str, mut fail: Fail, now: i64) -> (Summary, bool) {
        let mut flags = 0u8;
        if truthy(&fail.mlfgained) {
            flags |= 8 | 1;
            if !truthy(&fail.nofail) {
                fail.nofail = fail.mlfgained.clone();
            }
        } else if truthy(&fail.nofail) {
            flags |= 1;
        }
        if truthy(&fail.mlfforget.take()) {
            flags |= 2;
        }
        let forget = flags & 2 != 0;
        let user = get(&fail.user).map(String::from);
        let (mut merged, stored, users) = if self.live(mlfid, now) {
            let Some(cached) = self.get_mut(mlfid) else { return (Summary::take(fail), false) };
            let users = cached.update_users(user.as_deref());
            if truthy(&cached.nofail.take()) {
                flags |= 4;
            }
            if truthy(&cached.mlfgained.take()) {
                flags |= 4;
            }
            if flags & 8 != 0 {
                cached.mlfpending = false;
            }
            fail.update_into(cached);
            let pending = std::mem::take(&mut cached.mlfpending);
            let reset = pending || users.is_some_and(|n| n > 1);
            if reset {
                cached.nofail = None;
                cached.mlfgained = None;
            }
            if forget {
                let gone = self.map.remove(mlfid).map(|c| c.fail).unwrap_or_default();
                return (Summary::take(gone), false);
            }
            return (Summary::of(cached), true);
        } else if !forget {
            let users = fail.update_users(user.as_deref());
            (fail, true, users)
        } else {
            (fail, false, None)
        };
        let pending = std::mem::take(&mut merged.mlfpending);
        if pending || users.is_some_and(|n| n > 1) {
            merged.nofail = None;
            merged.mlfgained = None;
        }
        if stored {
            let summary = Summary::of(&merged);
            self.insert(mlfid, now, merged);
            return (summary, true);
        }
        (Summary::take(merged), false)
    }
}

/// The compiled parts only imported filters have.
#[derive(Debug)]
pub(crate) struct Semantics {
    pub maxlines: usize,
    pub dates: DateDetector,
    pub prefix: Option<Groups>,
    pub fails: Vec<Groups>,
    /// Try every failregex on every line (fail2ban-regex's default).
    pub check_all: bool,
    /// In check-all mode: which failregexes can match a line, all at once.
    pub all_gate: Option<AllGate>,
    /// Per failregex: a regex-crate form for lines without the text of its
    /// negative look-arounds.
    pub plain: Vec<Option<Plain>>,
    /// Per failregex: regex-crate variants deciding most lines for a
    /// pattern with conditionals or look-ahead loops.
    pub split: Vec<Option<super::split::Split>>,
}

/// A fancy failregex without its plain-text negative look-arounds, for
/// lines that do not contain their texts (where they always hold).
#[derive(Debug)]
pub(crate) struct Plain {
    compiled: Compiled,
    needles: Vec<memchr::memmem::Finder<'static>>,
}

impl Plain {
    pub fn new(compiled: Compiled, literals: &[String]) -> Option<Plain> {
        if compiled.is_fancy() {
            return None;
        }
        let needles =
            literals.iter().map(|l| memchr::memmem::Finder::new(l.as_bytes()).into_owned()).collect();
        Some(Plain { compiled, needles })
    }

    fn applies(&self, hay: &str) -> bool {
        self.needles.iter().all(|n| n.find(hay.as_bytes()).is_none())
    }
}

/// Which failregexes can match a line, all at once, so check-all mode runs
/// captures only for patterns that can match, not for every pattern after
/// the first match.
///
/// A pattern whose matches must start with one of a few literals (most
/// fail2ban failregexes: `^Failed `, `^[iI]nvalid user `) is ruled out by
/// comparing the line's first bytes with them; the others' gate entries
/// share one regex that reports all the entries that match (a `RegexSet`).
#[derive(Debug)]
pub(crate) struct AllGate {
    set: Option<regex_automata::meta::Regex>,
    /// Set pattern -> failregex index.
    pattern_of: Vec<usize>,
    /// Per failregex: how it is gated.
    how: Vec<Gated>,
}

#[derive(Debug)]
enum Gated {
    /// Always tried.
    Not,
    /// By the set.
    Set,
    /// Its matches start with one of these.
    Prefixes(Vec<Box<[u8]>>),
}

impl AllGate {
    /// `sources[i]` is failregex `i`'s gate entry, if it has one.
    pub fn new(sources: &[Option<String>]) -> Option<AllGate> {
        use regex_automata::{MatchKind, meta, util::syntax};
        let mut entries = Vec::new();
        let mut pattern_of = Vec::new();
        let mut how = Vec::new();
        for (i, s) in sources.iter().enumerate() {
            let Some(s) = s else {
                how.push(Gated::Not);
                continue;
            };
            if let Some(prefixes) = start_literals(s) {
                how.push(Gated::Prefixes(prefixes));
                continue;
            }
            entries.push(s.as_str());
            pattern_of.push(i);
            how.push(Gated::Set);
        }
        if how.iter().all(|h| matches!(h, Gated::Not)) {
            return None;
        }
        let set = if entries.is_empty() {
            None
        } else {
            Some(
                meta::Regex::builder()
                    .syntax(syntax::Config::new().unicode(false).utf8(false))
                    .configure(meta::Config::new().match_kind(MatchKind::All).utf8_empty(false))
                    .build_many(&entries)
                    .ok()?,
            )
        };
        Some(AllGate { set, pattern_of, how })
    }

    /// Marks in `worth` the failregexes that can match `hay`.
    fn mark(&self, hay: &str, worth: &mut [bool]) {
        let bytes = hay.as_bytes();
        for (w, how) in worth.iter_mut().zip(&self.how) {
            *w = match how {
                Gated::Not => true,
                Gated::Set => false,
                Gated::Prefixes(list) => list.iter().any(|p| bytes.starts_with(p)),
            };
        }
        let Some(set) = &self.set else { return };
        let mut found = regex_automata::PatternSet::new(set.pattern_len());
        // Every gate entry is anchored (an unanchored pattern's entry starts
        // with a lazy `.*?`), so an anchored search finds the same entries
        // and stops as soon as none can match any more.
        let input = regex_automata::Input::new(bytes).anchored(regex_automata::Anchored::Yes);
        set.which_overlapping_matches(&input, &mut found);
        for p in found.iter() {
            if let Some(&i) = self.pattern_of.get(p.as_usize()) {
                worth[i] = true;
            }
        }
    }
}

/// Most literals a pattern's start may be ruled out by.
const MAX_START_LITERALS: usize = 16;

/// Literals one of which every match of the anchored gate entry `source`
/// starts with (a necessary condition, not a sufficient one); `None` when
/// there is no such short list (the pattern may start with anything, or
/// is not anchored at the start of the text).
fn start_literals(source: &str) -> Option<Vec<Box<[u8]>>> {
    use regex_syntax::hir::{Look, literal};
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(source).ok()?;
    // Only `^` (start of text) pins the match to the line's first byte.
    if !hir.properties().look_set_prefix().contains(Look::Start) {
        return None;
    }
    let mut seq = literal::Extractor::new().kind(literal::ExtractKind::Prefix).extract(&hir);
    // Alternatives further on multiply the literals: shorter ones say
    // nearly as much in fewer compares.
    for len in [32, 16, 8] {
        if seq.len().is_none_or(|n| n <= MAX_START_LITERALS) {
            break;
        }
        seq.keep_first_bytes(len);
        seq.dedup();
    }
    let literals = seq.literals()?;
    if literals.is_empty() || literals.len() > MAX_START_LITERALS || literals.iter().any(|l| l.is_empty()) {
        return None;
    }
    Some(literals.iter().map(|l| Box::from(l.as_bytes())).collect())
}

/// Per-stream state of an imported filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct State {
    buffer: Vec<String>,
    last_date: Option<Timestamp>,
    dates: DateState,
    connections: Connections,
    /// Reused per line: group spans, which failregexes are worth trying,
    /// and "now" as a civil date-time (for the stream's reference time).
    spans: Vec<Option<(usize, usize)>>,
    split_spans: Vec<Option<(usize, usize)>>,
    worth: Vec<bool>,
    now: Option<(i64, jiff::civil::DateTime)>,
}

impl State {
    pub fn open_connections(&self) -> usize {
        self.connections.len()
    }

    pub fn reset(&mut self) {
        self.connections.clear();
        self.buffer.clear();
        self.last_date = None;
    }
}

/// One failure fail2ban reports for a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fail2banResult {
    /// Index into the filter's failregexes.
    pub regex_index: usize,
    /// The failure id as written: an address, a host name or an `<F-ID>`;
    /// `None` while the connection's address is not known yet.
    pub id: Option<String>,
    /// The id as an address (normalised), when it is one.
    pub addr: Option<IpAddr>,
    pub user: Option<String>,
    pub time: Option<Timestamp>,
    /// Recognised but not a failure (`<F-NOFAIL>`, `<F-MLFGAINED>`, …).
    pub nofail: bool,
}

/// What an imported filter made of one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fail2banLine {
    /// The ignoreregex that dropped a match (or the line).
    pub ignored: Option<usize>,
    pub results: Vec<Fail2banResult>,
    /// Whether a date was found in the line.
    pub dated: bool,
    /// Earlier lines a multi-line match used up (they left the buffer),
    /// which `fail2ban-regex` counts as matched after all.
    pub consumed: usize,
}

/// Where a multi-line match lies in the buffer.
struct Lines {
    matched: Vec<usize>,
    unmatched: Vec<usize>,
}

/// fail2ban's `Regex.search` bookkeeping: which buffered lines a match
/// covers (minus those `<SKIPLINES>` stepped over) and which it leaves.
fn split_lines(buf: &str, count: usize, span: (usize, usize), skipped: &[&str], lines: &[String]) -> Lines {
    if count <= 1 {
        return Lines { matched: (0..count).collect(), unmatched: Vec::new() };
    }
    let (start, end) = span;
    let line_start = buf[..(start + 1).min(buf.len())].rfind('\n').map_or(0, |i| i + 1);
    let line_end = buf[end.saturating_sub(1).min(buf.len())..]
        .find('\n')
        .map_or(buf.len(), |i| end.saturating_sub(1) + i + 1);
    let c1 = buf[..line_start].matches('\n').count().min(count);
    let c2 = buf[..line_end].matches('\n').count().min(count).max(c1);
    let mut matched: Vec<usize> = (c1..c2).collect();
    let mut unmatched: Vec<usize> = (0..c1).collect();
    let mut n = 0;
    for skip in skipped {
        if let Some(m) = matched[n.min(matched.len())..].iter().position(|&i| lines[i] == *skip) {
            unmatched.push(matched.remove(n + m));
            n += m;
        }
    }
    unmatched.extend(c2..count);
    Lines { matched, unmatched }
}

/// Runs one line through an imported filter. `newline` says whether the
/// line (or the line it was cleaned from) holds a `\n`, when the caller has
/// already looked; `None` to look here.
pub(crate) fn process(
    filter: &Filter,
    sem: &Semantics,
    state: &mut MatchState,
    line: &str,
    source_time: Option<Timestamp>,
    newline: Option<bool>,
) -> Fail2banLine {
    // Patterns run on the line (or text cut from it), or, with `maxlines`
    // > 1, on buffered lines joined by newlines.
    let newline = newline.unwrap_or_else(|| memchr::memchr(b'\n', line.as_bytes()).is_some());
    state.scratch.newline_free = sem.maxlines <= 1 && !newline;
    if sem.maxlines <= 1 {
        return process_line(filter, sem, state, line, source_time);
    }
    let before = state.f2b.buffer.clone();
    let mut out = process_line(filter, sem, state, line, source_time);
    let skip = usize::from(before.len() >= sem.maxlines);
    let after = &state.f2b.buffer;
    out.consumed = before.iter().skip(skip).filter(|l| !after.contains(l)).count();
    out
}

fn process_line(
    filter: &Filter,
    sem: &Semantics,
    state: &mut MatchState,
    line: &str,
    source_time: Option<Timestamp>,
) -> Fail2banLine {
    let now = state.reference;
    let st = &mut state.f2b;
    if st.now.map(|(at, _)| at) != Some(now.0) {
        st.now = Some((now.0, civil_now(now, state.tz.as_ref())));
    }
    let clock = Clock { now, tz: state.tz.as_ref(), civil_now: st.now.map(|(_, c)| c) };
    let mut out = Fail2banLine::default();

    // 1. The date.
    let recent_last = st.last_date.filter(|l| l.0 > now.0 - LAST_DATE_WINDOW_MS);
    let mut date: Option<Timestamp> = None;
    let mut hit = sem.dates.find(line, &mut st.dates, clock);
    if source_time.is_some() {
        // The source knows the time (journald, Docker), as fail2ban's journal
        // backend does: only a date opening the line is taken out of it; one
        // inside the message stays (fail2ban would not look for it at all).
        hit = hit.filter(|h| leads(&line[..h.start]));
    }
    out.dated = hit.is_some();
    // The line as the patterns see it, with a newline (fail2ban's buffer).
    let mut text = String::with_capacity(line.len() + 1);
    match hit {
        Some(hit) if hit.start < hit.end => {
            text.push_str(&line[..hit.start]);
            text.push_str(&line[hit.end..]);
            date = hit.time;
            if date.is_some() {
                st.last_date = date;
            }
        }
        // An empty date (the pattern makes it optional): the last one.
        Some(_) => {
            text.push_str(line);
            date = Some(recent_last.unwrap_or(now));
        }
        None => text.push_str(line),
    }
    if date.is_none()
        && let Some(last) = recent_last
    {
        // No usable date: the last one, and the line stays whole.
        text.clear();
        text.push_str(line);
        date = Some(last);
    }
    if let Some(t) = source_time {
        date = Some(t);
        st.last_date = Some(t);
    }

    // 2. The buffer: the lines the patterns see, joined by newlines and
    // ending in one (`buf`); single-line patterns see it without the last.
    let multi = sem.maxlines > 1;
    let original: Vec<String> = if multi {
        st.buffer.push(text.clone());
        let excess = st.buffer.len().saturating_sub(sem.maxlines);
        st.buffer.drain(..excess);
        st.buffer.clone()
    } else {
        Vec::new()
    };
    let mut buf = if multi { join(&original) } else { text };
    if !multi {
        buf.push('\n');
    }
    let scratch = &mut state.scratch;
    let spans = &mut st.spans;
    let split_spans = &mut st.split_spans;

    // 3. ignoreregex on the whole buffer, when there are few of them.
    let ignores = filter.ignore.patterns.len();
    if ignores > 0
        && ignores + 2 < filter.fail.patterns.len()
        && let Some(i) = first_ignore(&filter.ignore, trim_nl(&buf), scratch, spans)
    {
        out.ignored = Some(i);
        return out;
    }

    // 4. The prefregex.
    let mut pre = Fail::default();
    if let (Some(prefix), Some(groups)) = (&filter.prefix, &sem.prefix) {
        let hay = trim_nl(&buf);
        if !prefix.spans(hay, scratch, spans) {
            return out;
        }
        pre = groups.read(hay, spans);
        let content = groups.content.and_then(|g| spans.get(g).copied().flatten());
        if let Some((s, e)) =
            content.filter(|(s, e)| s < e && hay.is_char_boundary(*s) && hay.is_char_boundary(*e))
        {
            let mut content = String::with_capacity(e - s + 1);
            content.push_str(&hay[s..e]);
            if multi {
                st.buffer = vec![content.clone()];
            }
            content.push('\n');
            buf = content;
        }
    }

    // 5. The failregexes.
    let count = filter.fail.patterns.len();
    let worth = &mut st.worth;
    let mut rebuild = true;
    for i in 0..count {
        if rebuild {
            let hay = if multi { buf.as_str() } else { trim_nl(&buf) };
            worth.clear();
            worth.resize(count, false);
            match &sem.all_gate {
                Some(gate) if sem.check_all => gate.mark(hay, worth),
                _ => filter.fail.candidates(hay).for_each(|k| worth[k] = true),
            }
            rebuild = false;
        }
        let hay = if multi { buf.as_str() } else { trim_nl(&buf) };
        if !worth[i] {
            continue;
        }
        let matched = match (&sem.plain[i], &sem.split[i]) {
            (Some(plain), _) if plain.applies(hay) => plain.compiled.spans(hay, scratch, spans),
            (_, Some(split)) => match split.run(hay, scratch, spans, split_spans) {
                super::split::Answer::Yes => true,
                super::split::Answer::No => false,
                super::split::Answer::Unsure => filter.fail.patterns[i].spans(hay, scratch, spans),
            },
            _ => filter.fail.patterns[i].spans(hay, scratch, spans),
        };
        if !matched {
            continue;
        }
        let groups = &sem.fails[i];
        let fail = groups.read(hay, spans);
        let lines = multi.then(|| {
            let skipped: String = groups
                .skiplines
                .iter()
                .filter_map(|&g| spans.get(g).copied().flatten())
                .filter_map(|(s, e)| hay.get(s..e))
                .collect();
            let skipped: Vec<&str> = skipped.lines().collect();
            // Group 0 is the whole match. (Multi-line patterns never run on
            // the fast matcher, which leaves it out; should one, the groups'
            // extent stands in.)
            let span = spans.first().copied().flatten().unwrap_or_else(|| {
                let taken = || spans.iter().flatten();
                (taken().map(|s| s.0).min().unwrap_or(0), taken().map(|s| s.1).max().unwrap_or(0))
            });
            split_lines(hay, original.len(), span, &skipped, &original)
        });
        // An ignoreregex on what matched drops the match.
        if !filter.ignore.is_empty() {
            let ignored = match &lines {
                Some(l) => {
                    let matched: Vec<String> = l.matched.iter().map(|&k| original[k].clone()).collect();
                    first_ignore(&filter.ignore, &matched.join("\n"), scratch, spans)
                }
                None => first_ignore(&filter.ignore, hay, scratch, spans),
            };
            if let Some(k) = ignored {
                out.ignored = Some(k);
                if let Some(l) = &lines {
                    st.buffer = l.unmatched.iter().map(|&k| original[k].clone()).collect();
                    buf = join(&st.buffer);
                    rebuild = true;
                }
                if !sem.check_all {
                    break;
                }
                continue;
            }
        }
        if let Some(l) = &lines {
            st.buffer = l.unmatched.iter().map(|&k| original[k].clone()).collect();
            buf = join(&st.buffer);
            rebuild = true;
        }
        let mut fail = fail.over(pre.clone());
        let mlfid = fail.mlfid.take().flatten();
        let summary = match &mlfid {
            Some(id) => {
                let (summary, stored) = st.connections.merge(id, fail, now.0);
                if summary.nofail && !sem.check_all {
                    return out;
                }
                if summary.id.is_none()
                    && stored
                    && let Some(cached) = st.connections.get_mut(id)
                {
                    // No failure id yet: the connection's failure is pending.
                    cached.mlfpending = true;
                }
                summary
            }
            None => Summary::take(fail),
        };
        if summary.id.is_none() {
            if mlfid.is_none() {
                // fail2ban logs "No group found" and reports nothing.
                continue;
            }
            if !sem.check_all {
                return out;
            }
        }
        out.results.push(Fail2banResult {
            regex_index: i,
            addr: summary.id.as_deref().and_then(addr::parse_addr),
            id: summary.id,
            user: summary.user,
            time: date,
            nofail: summary.nofail,
        });
        if !sem.check_all {
            break;
        }
    }
    out
}

/// Buffered lines as fail2ban joins them: each ending in a newline.
fn join(lines: &[String]) -> String {
    let mut s = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        s.push_str(l);
        s.push('\n');
    }
    s
}

/// "Now" as a civil date-time in the stream's zone, for dates that lack
/// their year or day.
fn civil_now(now: Timestamp, tz: Option<&jiff::tz::TimeZone>) -> jiff::civil::DateTime {
    let utc = jiff::tz::TimeZone::UTC;
    let tz = tz.unwrap_or(&utc);
    jiff::Timestamp::from_millisecond(now.0).map(|t| tz.to_datetime(t)).unwrap_or_default()
}

/// What fail2ban's `{^LN-BEG}` allows before a line's date: at most two
/// non-word characters.
fn leads(before: &str) -> bool {
    before.chars().count() <= 2 && before.chars().all(|c| !c.is_alphanumeric() && c != '_')
}

fn trim_nl(s: &str) -> &str {
    s.strip_suffix('\n').unwrap_or(s)
}

fn first_ignore(
    list: &PatternList,
    hay: &str,
    scratch: &mut crate::filter::backtrack::Scratch,
    spans: &mut Vec<Option<(usize, usize)>>,
) -> Option<usize> {
    list.candidates(hay).find(|&i| list.patterns[i].spans(hay, scratch, spans))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail(user: Option<&str>, ip: Option<&str>) -> Fail {
        Fail {
            user: Some(user.map(String::from)),
            ip4: Some(ip.map(String::from)),
            mlfid: Some(Some("1".into())),
            ..Fail::default()
        }
    }

    #[test]
    fn merge_follows_fail2ban() {
        let mut c = Connections::default();
        let ip = |s: &str| Some(s.to_string());
        // A nofail line lends its host to the next line of the connection.
        let first = Fail { nofail: Some(Some("x".into())), ..fail(Some("root"), Some("192.0.2.1")) };
        let (m, stored) = c.merge("1", first, 0);
        assert!(m.nofail && stored);
        let (m, _) = c.merge("1", fail(None, None), 0);
        assert_eq!((m.id, m.user.as_deref(), m.nofail), (ip("192.0.2.1"), Some("root"), false));
        // Forget drops the connection after merging.
        let bye = Fail { mlfforget: Some(Some("bye".into())), ..fail(None, None) };
        let (m, stored) = c.merge("1", bye, 0);
        assert_eq!((m.id, stored), (ip("192.0.2.1"), false));
        assert_eq!(c.len(), 0);
        // Two users on one connection count even when flagged nofail.
        c.merge("2", Fail { nofail: Some(Some("x".into())), ..fail(Some("a"), Some("192.0.2.2")) }, 0);
        let (m, _) = c.merge("2", Fail { nofail: Some(Some("x".into())), ..fail(Some("b"), None) }, 0);
        assert!(!m.nofail);
        // Old connections are forgotten.
        c.merge("3", fail(None, Some("192.0.2.3")), 0);
        let (m, _) = c.merge("3", fail(None, None), MLFID_MAX_AGE_MS + 1);
        assert_eq!(m.id, None);
    }

    #[test]
    fn the_connection_cache_is_bounded() {
        let mut c = Connections::default();
        for i in 0..MLFID_CAPACITY + 10 {
            c.merge(&i.to_string(), fail(None, Some("192.0.2.1")), 0);
            c.merge(&format!("x{i}"), Fail { mlfforget: Some(Some("bye".into())), ..fail(None, None) }, 0);
        }
        assert_eq!(c.len(), MLFID_CAPACITY);
        assert!(c.order.len() <= 2 * MLFID_CAPACITY);
        assert_eq!(c.merge("0", fail(None, None), 0).0.id, None, "the oldest went first");
    }

    #[test]
    fn start_literals_rule_out_lines_by_their_first_bytes() {
        let lits = |s: &str| {
            start_literals(s)
                .map(|v| v.iter().map(|l| String::from_utf8_lossy(l).into_owned()).collect::<Vec<_>>())
        };
        let found = lits(r"^[aA]uth(?:entication)? (?P<user>\S+)").unwrap();
        assert!(found.iter().all(|l| l.starts_with("Auth") || l.starts_with("auth")), "{found:?}");
        assert_eq!(found.len(), 4, "{found:?}");
        assert_eq!(lits(r"(?s-u:.)*?(?:Failed)"), None, "not anchored");
        assert_eq!(lits(r"^\S+ from"), None, "may start with anything");
        assert_eq!(lits(r"^(?:x)?y"), Some(vec!["xy".to_string(), "y".to_string()]));
        // The gate agrees with the set it replaces on what can match.
        let sources = vec![Some(r"^Failed (?P<x>\S+)".to_string()), Some(r"^\S+ closed".to_string()), None];
        let gate = AllGate::new(&sources).unwrap();
        let mut worth = vec![false; 3];
        gate.mark("Failed password", &mut worth);
        assert_eq!(worth, [true, false, true]);
        gate.mark("Connection closed", &mut worth);
        assert_eq!(worth, [false, true, true]);
    }

    #[test]
    fn alt_user_names() {
        assert!(is_alt_user("alt_user") && is_alt_user("alt_user1") && is_alt_user("alt_user_2"));
        assert!(!is_alt_user("alt_username") && !is_alt_user("user"));
    }

    #[test]
    fn multi_line_bookkeeping() {
        let lines: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let buf = "a\nb\nc\nd\n";
        // A match over b..c (bytes 2..5), with c stepped over.
        let l = split_lines(buf, 4, (2, 5), &["c"], &lines);
        assert_eq!((l.matched, l.unmatched), (vec![1], vec![0, 2, 3]));
        let l = split_lines("a\n", 1, (0, 1), &[], &lines[..1]);
        assert_eq!((l.matched, l.unmatched), (vec![0], vec![]));
    }
}
