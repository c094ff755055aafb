//! fail2ban's date detection (`DateDetector`, `DateTemplate`,
//! `DatePatternRegex`, `DateEpoch`, `DateTai64n`): which part of a line is
//! its date, and what instant it names.
//!
//! A filter's `datepattern` is a list of templates, one per line:
//! - a strptime-like pattern (`%Y-%m-%d %H:%M:%S`), extended with fail2ban's
//!   `%Ex…` fields (`%ExY` a plausible 4-digit year, `%Exd` an exact
//!   two-digit day, …), `%k`/`%l` (space-padded hours) and `%Z`/`%z` zones;
//!   word boundaries are added around it unless `**` at either end (or `^`,
//!   `$`) says otherwise; `{^LN-BEG}` anchors it at the line start
//!   (allowing up to two non-word characters before it), `{UNB}` drops the
//!   boundaries;
//! - `EPOCH`/`LEPOCH` (seconds, or milli/microseconds since 1970, also
//!   inside a pattern as `{EPOCH}`), `TAI64N`;
//! - `{^LN-BEG}` alone: fail2ban's default templates, line-start anchored;
//!   `{DATE}` inside a pattern: each default template in its place;
//!   `{NONE}`: no date at all.
//!
//! No `datepattern`: the default templates, each line-start anchored
//! variant first.
//!
//! The date is group 1 of the template's match (the whole match unless the
//! pattern has a group of its own); the engine cuts it out of the line.
//!
//! Detection state per stream ([`DateState`]) follows fail2ban's: the
//! template that matched last is tried first, and a template matching far
//! into the line is only taken when nothing matches closer to its start.

use std::sync::{Arc, OnceLock};

use jiff::tz::TimeZone;

use super::pyre;
use crate::core::Timestamp;
use crate::filter::backtrack::{Program, Run, Scratch};

const LINE_BEGIN: u8 = 8;
const LINE_END: u8 = 4;

/// fail2ban's default templates, in its order.
const DEFAULT_TEMPLATES: [&str; 17] = [
    r"%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%a )?%b %d %ExY %k:%M:%S(?:\.%f)?",
    r"%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S",
    r"%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\.%f)?(?: %z)?",
    r"%m/%d/%ExY:%H:%M:%S",
    r"%m-%d-%ExY %k:%M:%S(?:\.%f)?",
    r"EPOCH",
    r"{^LN-BEG}%H:%M:%S",
    r"^<%m/%d/%Exy@%H:%M:%S>",
    r"%Exy%Exm%Exd  ?%H:%M:%S",
    r"%b %d, %ExY %I:%M:%S %p",
    r"^%b-%d-%Exy %k:%M:%S",
    r"%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\s*%z)?",
    r"(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\.%f)?(?: %ExY)?",
    r"TAI64N",
];

/// A datepattern that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("datepattern {pattern:?}: {message}")]
pub struct DateError {
    pub pattern: String,
    pub message: String,
}

/// What a template turns its match into.
#[derive(Debug, Clone)]
enum Kind {
    /// strptime fields in named groups.
    Fields,
    /// Seconds since the epoch in group `group`; `long`: also milli- and
    /// microseconds.
    Epoch { group: usize, long: bool },
    /// `@4000…` TAI64N label.
    Tai64n,
}

#[derive(Debug)]
struct Template {
    /// fail2ban's template name (used to drop duplicates).
    name: String,
    flags: u8,
    re: Re,
    kind: Kind,
}

/// A template before its regex is compiled (compiling is most of the cost
/// of a detector; templates that are filtered out are never compiled).
#[derive(Debug)]
struct Pending {
    name: String,
    flags: u8,
    /// The template's regex, Python syntax.
    regex: String,
    kind: Kind,
}

impl Pending {
    fn compile(self) -> Result<Template, DateError> {
        let re =
            Re::compile(&self.regex).map_err(|message| DateError { pattern: self.name.clone(), message })?;
        Ok(Template { name: self.name, flags: self.flags, re, kind: self.kind })
    }
}

/// A compiled regex: the `regex` crate where it can, fancy-regex (behind a
/// regex-crate superset as a gate) where the pattern needs it.
#[derive(Debug)]
enum Re {
    Std { re: regex::bytes::Regex, fast: Option<Box<Fast>> },
    Fancy { gate: Option<regex::bytes::Regex>, re: Box<fancy_regex::Regex> },
}

/// The hot path for line-start anchored templates: warden's capture
/// matcher runs the template without its trailing word-boundary check,
/// and the boundary is checked at the end of what it found. When it holds,
/// that is the template's own match (the matcher takes the same choices in
/// the same order); when it does not, the full regex decides.
#[derive(Debug)]
struct Fast {
    program: Program,
    /// Group numbers of the template (the program adds one, marking the end).
    groups: usize,
    /// Whether the template ends with fail2ban's word-end boundary.
    bounded: bool,
}

/// fail2ban's word-end boundary, `(?=\b|\W|$)`.
const WORD_END: &str = r"(?=\b|\W|$)";

/// Group spans of one match (index = group number).
struct Found {
    spans: Vec<Option<(usize, usize)>>,
}

impl Re {
    fn compile(python: &str) -> Result<Re, String> {
        let rust = pyre::translate(python)?;
        let std_form =
            rust.replace(r"(?=^|\b|\W)", r"(?:^|\b|\b{end-half})").replace(WORD_END, r"(?:\b|\b{end-half})");
        if let Ok(re) = regex::bytes::RegexBuilder::new(&std_form).unicode(false).build() {
            let bounded = python.ends_with(WORD_END);
            let body = python.strip_suffix(WORD_END).unwrap_or(python);
            let fast = pyre::translate(body)
                .ok()
                .and_then(|b| Program::new(&format!("{b}()")))
                .map(|program| Box::new(Fast { program, groups: re.captures_len(), bounded }));
            return Ok(Re::Std { re, fast });
        }
        let re = fancy_regex::RegexBuilder::new(&rust)
            .backtrack_limit(crate::filter::BACKTRACK_LIMIT)
            .build()
            .map_err(|e| e.to_string())?;
        let gate = crate::filter::template::relax_for_gate(&std_form)
            .and_then(|g| regex::bytes::RegexBuilder::new(&g).unicode(false).build().ok());
        Ok(Re::Fancy { gate, re: Box::new(re) })
    }

    fn names(&self) -> Vec<Option<String>> {
        match self {
            Re::Std { re, .. } => re.capture_names().map(|n| n.map(String::from)).collect(),
            Re::Fancy { re, .. } => re.capture_names().map(|n| n.map(String::from)).collect(),
        }
    }

    /// The first match in `line[..end]` starting at or after `start`.
    fn search(&self, line: &str, start: usize, end: usize, scratch: &mut Scratch) -> Option<Found> {
        let hay = line.get(..end)?;
        match self {
            Re::Std { re, fast } => {
                if let Some(fast) = fast
                    && start == 0
                {
                    match fast.program.run(hay.as_bytes(), scratch) {
                        Run::NoMatch => return None,
                        Run::Match => {
                            let slot =
                                |i: usize| match (scratch.slots.get(2 * i), scratch.slots.get(2 * i + 1)) {
                                    (Some(&s), Some(&e)) if s != usize::MAX && e != usize::MAX => {
                                        Some((s, e))
                                    }
                                    _ => None,
                                };
                            if let Some((stop, _)) = slot(fast.groups) {
                                let word = |c: Option<&u8>| {
                                    c.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
                                };
                                let b = hay.as_bytes();
                                let boundary =
                                    !(word(stop.checked_sub(1).and_then(|i| b.get(i))) && word(b.get(stop)));
                                if !fast.bounded || boundary {
                                    let mut spans: Vec<_> = (0..fast.groups).map(slot).collect();
                                    spans[0] = Some((0, stop));
                                    return Some(Found { spans });
                                }
                            }
                        }
                        Run::GaveUp => {}
                    }
                }
                let caps = re.captures_at(hay.as_bytes(), start)?;
                Some(Found { spans: caps.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect() })
            }
            Re::Fancy { gate, re } => {
                if let Some(g) = gate
                    && !g.is_match_at(hay.as_bytes(), start)
                {
                    return None;
                }
                let caps = re.captures_from_pos(hay, start).ok()??;
                Some(Found { spans: caps.iter().map(|m| m.map(|m| (m.start(), m.end()))).collect() })
            }
        }
    }
}

/// The templates of one filter. Immutable; share it.
#[derive(Debug, Clone)]
pub struct DateDetector {
    templates: Arc<Vec<Template>>,
    /// Per template: group numbers of the strptime fields.
    fields: Arc<Vec<FieldGroups>>,
}

/// Group numbers of each strptime field in one template.
#[derive(Debug, Clone, Default)]
struct FieldGroups(Vec<(FieldName, usize)>);

/// A strptime field name as fail2ban's group names spell it (`Y`, `m`, …).
type FieldName = &'static str;

const FIELD_NAMES: [&str; 20] =
    ["y", "Y", "m", "B", "b", "d", "H", "I", "M", "S", "f", "A", "a", "w", "j", "U", "W", "z", "Z", "p"];

/// Where the date of a line is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateHit {
    /// Byte range of the date text (group 1 of the template).
    pub start: usize,
    pub end: usize,
    /// `None`: a date was found but does not parse (or is empty).
    pub time: Option<Timestamp>,
    pub template: usize,
}

/// Per-stream detection state: fail2ban tries the template that matched
/// last first, at the same place in the line.
#[derive(Debug, Clone, Default)]
pub struct DateState {
    last: Option<usize>,
    /// Start of the last match and the characters around it.
    last_pos: Option<(usize, Option<char>, Option<char>)>,
    last_end: Option<(usize, Option<char>, Option<char>)>,
    /// Per template: (times it won, distance of its last win).
    wins: Vec<(u64, usize)>,
    /// The last date parsed: (template, text, "now", instant). Consecutive
    /// lines often share their second.
    parsed: Option<(usize, String, i64, Option<Timestamp>)>,
    scratch: Scratch,
}

/// What strptime-style fields need to become an instant.
#[derive(Debug, Clone, Copy)]
pub struct Clock<'a> {
    /// "Now": years and days absent from a date are taken from it.
    pub now: Timestamp,
    /// Zone of dates without an offset (`None`: UTC).
    pub tz: Option<&'a TimeZone>,
    /// `now` as a civil date-time in `tz`, when the caller has it at hand.
    pub civil_now: Option<jiff::civil::DateTime>,
}

impl DateDetector {
    /// Builds the detector for a `datepattern` value (`None`: fail2ban's
    /// defaults). `year_now` bounds `%ExY` (2000 to three years ahead).
    pub fn new(datepattern: Option<&str>, year_now: i32) -> Result<DateDetector, DateError> {
        // Compiling the default templates is most of the cost of loading a
        // filter, and most filters share them: built detectors are shared.
        type Cache = std::sync::Mutex<std::collections::HashMap<(Option<String>, i32), DateDetector>>;
        static CACHE: OnceLock<Cache> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        let key = (datepattern.map(String::from), year_now);
        if let Some(found) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(found.clone());
        }
        let built = DateDetector::build(datepattern, year_now)?;
        let mut map = cache.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 256 {
            map.clear();
        }
        map.insert(key, built.clone());
        Ok(built)
    }

    fn build(datepattern: Option<&str>, year_now: i32) -> Result<DateDetector, DateError> {
        let mut b = Builder { templates: Vec::new(), year_now };
        match datepattern {
            None => b.add_defaults(None, false)?,
            Some(value) => {
                for pattern in value.split('\n').map(str::trim).filter(|p| !p.is_empty()) {
                    b.append(pattern)?;
                }
            }
        }
        let fields = b
            .templates
            .iter()
            .map(|t| {
                let names = t.re.names();
                FieldGroups(
                    FIELD_NAMES
                        .iter()
                        .filter_map(|f| names.iter().position(|n| n.as_deref() == Some(f)).map(|i| (*f, i)))
                        .collect(),
                )
            })
            .collect();
        Ok(DateDetector { templates: Arc::new(b.templates), fields: Arc::new(fields) })
    }

    /// Finds the date in `line` (fail2ban's `matchTime` and `getTime`).
    pub fn find(&self, line: &str, state: &mut DateState, clock: Clock<'_>) -> Option<DateHit> {
        let n = self.templates.len();
        if n == 0 {
            return None;
        }
        if state.wins.len() != n {
            state.wins = vec![(0, usize::MAX); n];
        }
        let mut chosen: Option<(usize, Found)> = None;
        let mut best: Option<(usize, Found, usize)> = None;
        let mut skip = None;
        if let Some(i) = state.last.filter(|&i| i < n) {
            let t = &self.templates[i];
            let found = if t.flags & (LINE_BEGIN | LINE_END) != 0 {
                skip = Some(i);
                t.re.search(line, 0, line.len(), &mut state.scratch)
            } else if let (Some(pos), Some(end)) = (state.last_pos, state.last_end)
                && bounds_agree(line, pos, end)
            {
                t.re.search(line, pos.0, end.0, &mut state.scratch)
            } else {
                skip = Some(i);
                t.re.search(line, 0, line.len(), &mut state.scratch)
            };
            if let Some(f) = found {
                let (start, stop) = f.spans[0].unwrap_or((0, 0));
                let same_place =
                    state.last_pos.map(|p| p.0) == Some(start) && state.last_end.map(|p| p.0) == Some(stop);
                if n == 1 || t.flags & (LINE_BEGIN | LINE_END) != 0 || same_place {
                    chosen = Some((i, f));
                } else {
                    best = Some((i, f, start));
                }
            }
        }
        if chosen.is_none() {
            let last_distance = state.last_pos.map_or(1, |p| p.0);
            for (i, t) in self.templates.iter().enumerate() {
                if Some(i) == skip {
                    continue;
                }
                let Some(f) = t.re.search(line, 0, line.len(), &mut state.scratch) else { continue };
                let distance = f.spans[0].map_or(0, |s| s.0);
                if i + 1 >= n || t.flags & (LINE_BEGIN | LINE_END) != 0 {
                    chosen = Some((i, f));
                    break;
                }
                if distance > state.wins[i].1 || distance > last_distance {
                    if best.as_ref().is_none_or(|b| distance < b.2) {
                        best = Some((i, f, distance));
                    }
                    continue;
                }
                chosen = Some((i, f));
                break;
            }
            if chosen.is_none() {
                chosen = best.map(|(i, f, _)| (i, f));
            }
        }
        let (i, f) = chosen?;
        let (start, stop) = f.spans[0].unwrap_or((0, 0));
        state.wins[i].0 += 1;
        state.wins[i].1 = start;
        state.last = Some(i);
        state.last_pos = Some((start, line[..start].chars().next_back(), line[start..].chars().next()));
        state.last_end = Some((stop, line[..stop].chars().next_back(), line[stop..].chars().next()));
        let (ds, de) = f.spans.get(1).copied().flatten().unwrap_or((start, start));
        if !line.is_char_boundary(ds) || !line.is_char_boundary(de) {
            return None;
        }
        let text = &line[ds..de];
        let time = match &state.parsed {
            _ if ds == de => None,
            Some((t, last, now, time)) if *t == i && last == text && *now == clock.now.0 => *time,
            _ => {
                let time = self.time_of(i, line, &f, clock);
                state.parsed = Some((i, text.to_string(), clock.now.0, time));
                time
            }
        };
        Some(DateHit { start: ds, end: de, time, template: i })
    }

    fn time_of(&self, i: usize, line: &str, f: &Found, clock: Clock<'_>) -> Option<Timestamp> {
        let text = |g: usize| f.spans.get(g).copied().flatten().and_then(|(s, e)| line.get(s..e));
        match self.templates[i].kind {
            Kind::Tai64n => {
                let v = text(1)?;
                let secs = i64::from_str_radix(v.get(2..17)?, 16).ok()?;
                Some(Timestamp(secs.checked_mul(1000)?))
            }
            Kind::Epoch { group, long } => epoch(text(group)?, long),
            Kind::Fields => {
                let values: Vec<(&str, &str)> =
                    self.fields[i].0.iter().filter_map(|&(name, g)| Some((name, text(g)?))).collect();
                strptime(&values, clock)
            }
        }
    }
}

/// fail2ban's check that the last template's match would sit at the same
/// place: the characters around its last start and end agree.
fn bounds_agree(
    line: &str,
    pos: (usize, Option<char>, Option<char>),
    end: (usize, Option<char>, Option<char>),
) -> bool {
    let before = |i: usize| line.get(..i).and_then(|s| s.chars().next_back());
    let at = |i: usize| line.get(i..).and_then(|s| s.chars().next());
    if pos.0 > end.0 || end.0 > line.len() {
        return false;
    }
    let start_ok =
        before(pos.0) == pos.1 || (at(pos.0) == pos.2 && !pos.2.is_some_and(char::is_alphanumeric));
    let end_ok = at(end.0) == end.2 || (before(end.0) == end.1 && !end.1.is_some_and(char::is_alphanumeric));
    start_ok && end_ok
}

fn epoch(v: &str, long: bool) -> Option<Timestamp> {
    let value: f64 = v.parse().ok()?;
    let secs = if long && v.len() >= 13 {
        if v.len() >= 16 && !v.contains('.') { value / 1_000_000.0 } else { value / 1000.0 }
    } else {
        value
    };
    Some(Timestamp((secs * 1000.0).round() as i64))
}

struct Builder {
    templates: Vec<Template>,
    year_now: i32,
}

impl Builder {
    fn push(&mut self, t: Pending, ignore_duplicate: bool) -> Result<(), DateError> {
        if self.templates.iter().any(|o| o.name == t.name) {
            if ignore_duplicate {
                return Ok(());
            }
            return Err(DateError { pattern: t.name, message: "is listed twice".into() });
        }
        self.templates.push(t.compile()?);
        Ok(())
    }

    /// `appendTemplate`.
    fn append(&mut self, pattern: &str) -> Result<(), DateError> {
        let key = if pattern.contains('%') { pattern.to_string() } else { pattern.to_uppercase() };
        if key == "{^LN-BEG}" || key == "{DEFAULT}" {
            return self.add_defaults(None, key == "{^LN-BEG}");
        }
        if key.contains("{DATE}") {
            return self.add_defaults(Some(pattern), false);
        }
        let t =
            if key == "{NONE}" { self.template("{UNB}^", "{NONE}")? } else { self.template(pattern, &key)? };
        self.push(t, false)
    }

    /// `addDefaultTemplate`: every default (the line-start anchored variant
    /// of each first, unless `pre_match`), optionally only anchored ones,
    /// or each wrapped into `pre_match` at `{DATE}`.
    fn add_defaults(&mut self, pre_match: Option<&str>, line_begin_only: bool) -> Result<(), DateError> {
        let ignore_duplicate = !self.templates.is_empty();
        let defaults = DEFAULT_TEMPLATES.iter();
        let mut list: Vec<Pending> = Vec::new();
        if let Some(pre) = pre_match {
            for p in defaults {
                let key = if p.contains('%') { p.to_string() } else { p.to_uppercase() };
                let wrapped = replace_date(pre, unbound(p));
                let wrapped_key = if key.contains('%') { wrapped.clone() } else { replace_date(pre, &key) };
                let wrapped_key =
                    if wrapped_key.contains('%') { wrapped_key } else { wrapped_key.to_uppercase() };
                list.push(self.template(&wrapped, &wrapped_key)?);
            }
        } else {
            let mut anchored = Vec::new();
            let mut plain = Vec::new();
            for p in defaults {
                let key = if p.contains('%') { p.to_string() } else { p.to_uppercase() };
                let t = self.template(p, &key)?;
                if !t.name.starts_with("{^LN-BEG}") && !t.name.starts_with('^') {
                    let a = format!("{{^LN-BEG}}{p}");
                    let akey = if a.contains('%') { a.clone() } else { a.to_uppercase() };
                    let at = self.template(&a, &akey)?;
                    if at.name != t.name {
                        anchored.push(at);
                    }
                }
                plain.push(t);
            }
            list = anchored;
            list.extend(plain);
        }
        for t in list {
            if line_begin_only && t.flags & LINE_BEGIN == 0 {
                continue;
            }
            self.push(t, ignore_duplicate)?;
        }
        Ok(())
    }

    /// `_getPatternTemplate`.
    fn template(&self, pattern: &str, key: &str) -> Result<Pending, DateError> {
        let err = |message: String| DateError { pattern: pattern.to_string(), message };
        if key.contains("EPOCH") {
            if epoch_placeholder(pattern).is_some() {
                return epoch_template(Some(pattern), false, key.contains("LEPOCH")).map_err(err);
            }
            if let Some(line_begin) = match key {
                "EPOCH" => Some(false),
                "{^LN-BEG}EPOCH" | "^EPOCH" => Some(true),
                _ => None,
            } {
                return epoch_template(None, line_begin, false).map_err(err);
            }
            if let Some(line_begin) = match key {
                "LEPOCH" => Some(false),
                "{^LN-BEG}LEPOCH" | "^LEPOCH" => Some(true),
                _ => None,
            } {
                return epoch_template(None, line_begin, true).map_err(err);
            }
        }
        match key {
            "TAI64N" => tai64n(false).map_err(err),
            "{^LN-BEG}TAI64N" | "^TAI64N" => tai64n(true).map_err(err),
            _ => pattern_template(pattern, self.year_now).map_err(err),
        }
    }
}

/// `{DATE}` (case-insensitive, not escaped) replaced by `with`.
fn replace_date(pre: &str, with: &str) -> String {
    let mut out = String::new();
    let mut rest = pre;
    while let Some(i) = rest.to_ascii_uppercase().find("{DATE}") {
        let escaped = rest[..i].ends_with('\\');
        out.push_str(&rest[..i]);
        out.push_str(if escaped { &rest[i..i + 6] } else { with });
        rest = &rest[i + 6..];
    }
    out.push_str(rest);
    out
}

/// `unboundPattern`: a pattern without its boundary markers.
fn unbound(p: &str) -> &str {
    let p = p.strip_prefix("{UNB}").unwrap_or(p);
    let p = p.strip_prefix("{^LN-BEG}").unwrap_or(p);
    let p = p.strip_prefix(r"(?:^|\b|\W)").or_else(|| p.strip_prefix(r"(^|\b|\W)")).unwrap_or(p);
    p.strip_suffix(r"(?=\b|\W|$)").unwrap_or(p)
}

/// The `{EPOCH}`/`{LEPOCH}` placeholder in a pattern: (start, end).
fn epoch_placeholder(p: &str) -> Option<(usize, usize)> {
    let upper = p.to_ascii_uppercase();
    for needle in ["{LEPOCH}", "{EPOCH}"] {
        if let Some(i) = upper.find(needle)
            && !p[..i].ends_with('\\')
        {
            return Some((i, i + needle.len()));
        }
    }
    None
}

fn epoch_template(pattern: Option<&str>, line_begin: bool, long: bool) -> Result<Pending, String> {
    let epoch_re =
        if long { r"\d{10,11}(?:\d{3}(?:\.\d{1,6}|\d{3})?)?" } else { r"\d{10,11}\b(?:\.\d{3,6})?" };
    let base = if long { "LongEpoch" } else { "Epoch" };
    if let Some(p) = pattern {
        let (s, e) = epoch_placeholder(p).ok_or("no {EPOCH}")?;
        let regex = format!("({}({epoch_re}){})", &p[..s], &p[e..]);
        let (regex, flags, _) = set_regex(&regex, Begin::Word, true, p);
        return Ok(Pending { name: p.to_string(), flags, regex, kind: Kind::Epoch { group: 2, long } });
    }
    let (regex, flags, name) = if line_begin {
        let r = format!(r"((?P<square>(?<=^\[))?{epoch_re})(?(square)(?=\]))");
        set_regex(&r, Begin::Line, true, base)
    } else {
        let r = format!(
            r"((?:^|(?P<square>(?<=^\[))|(?P<selinux>(?<=\baudit\())){epoch_re})(?:(?(selinux)(?=:\d+\)))|(?(square)(?=\])))"
        );
        set_regex(&r, Begin::None, true, base)
    };
    Ok(Pending { name, flags, regex, kind: Kind::Epoch { group: 1, long } })
}

fn tai64n(line_begin: bool) -> Result<Pending, String> {
    let (regex, flags, name) =
        set_regex("@[0-9a-f]{24}", if line_begin { Begin::Line } else { Begin::None }, true, "TAI64N");
    Ok(Pending { name, flags, regex, kind: Kind::Tai64n })
}

/// `DatePatternRegex.setRegex`: `%` fields expanded, then boundaries.
fn pattern_template(pattern: &str, year_now: i32) -> Result<Pending, String> {
    let mut p = pattern;
    let mut begin = Begin::Word;
    let mut end = true;
    if let Some(rest) = p.strip_prefix("{UNB}") {
        p = rest;
        begin = Begin::None;
        end = false;
    }
    if begin == Begin::Word
        && let Some(rest) = p.strip_prefix("{^LN-BEG}")
    {
        p = rest;
        begin = Begin::Line;
    }
    let (mut regex, name) = expand_fields(p, year_now)?;
    if has_alpha_field(p) {
        regex = format!("(?iu){regex}");
    }
    let (regex, flags, name) = set_regex(&regex, begin, end, &name);
    Ok(Pending { name, flags, regex, kind: Kind::Fields })
}

/// `RE_ALPHA_PATTERN`: `%a`, `%A`, `%b`, `%B`, `%p` or `%c` (not after `%`).
fn has_alpha_field(p: &str) -> bool {
    let b = p.as_bytes();
    (1..b.len()).any(|i| {
        b[i - 1] == b'%'
            && matches!(b[i], b'a' | b'A' | b'b' | b'B' | b'p' | b'c')
            && (i < 2 || b[i - 2] != b'%')
    })
}

/// Replaces `%X` fields with their regexes; returns (regex, name).
fn expand_fields(p: &str, year_now: i32) -> Result<(String, String), String> {
    let mut regex = String::with_capacity(p.len() * 4);
    let mut name = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('%') {
        regex.push_str(&rest[..i]);
        name.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let key = if after.starts_with("Ex") {
            after.get(..3)
        } else {
            after.get(..after.chars().next().map_or(0, char::len_utf8))
        };
        let Some(key) = key else { return Err("ends with a lone %".into()) };
        let Some((re, label)) = field(key, year_now) else {
            return Err(format!("unknown field %{key} (write %% for a literal %)"));
        };
        regex.push_str(&re);
        name.push_str(&label);
        rest = &after[key.len()..];
    }
    regex.push_str(rest);
    name.push_str(rest);
    Ok((regex, name))
}

/// fail2ban's `timeRE` (Python's `TimeRE` for the C locale, with
/// fail2ban's overrides) and the names it gives the fields.
fn field(key: &str, year_now: i32) -> Option<(String, String)> {
    let re: &str = match key {
        "%" => "%",
        "A" => "(?P<A>wednesday|thursday|saturday|tuesday|monday|friday|sunday)",
        "B" => "(?P<B>september|february|november|december|january|october|august|march|april|june|july|may)",
        "ExH" => r"(?P<H>[0-1]\d|2[0-3])",
        "ExM" => r"(?P<M>[0-5]\d)",
        "ExS" => r"(?P<S>[0-5]\d|6[0-1])",
        "ExY" => return Some((format!("(?P<Y>{}\\d)", year_prefixes(year_now)), "ExYear".into())),
        "ExZ" => r"(?P<Z>[A-Z](?:[A-Z]{2,4})?)",
        "Exd" => r"(?P<d>[1-2]\d|0[1-9]|3[0-1])",
        "Exk" => r" ?(?P<H>[0-1]?\d|2[0-3])",
        "Exl" => r" ?(?P<I>1[0-2]|\d)",
        "Exm" => r"(?P<m>0[1-9]|1[0-2])",
        "Exy" => r"(?P<y>\d{2})",
        "Exz" => r"(?P<z>(?:[A-Z](?:[A-Z]{2,4})?)?[+-][01]\d(?::?\d{2})?|[A-Z](?:[A-Z]{2,4})?)",
        "G" => r"(?P<G>\d\d\d\d)",
        "H" => r"(?P<H>[0-1]?\d|2[0-3])",
        "I" => r"(?P<I>1[0-2]|0[1-9]|[1-9])",
        "M" => r"(?P<M>[0-5]?\d)",
        "S" => r"(?P<S>[0-5]?\d|6[0-1])",
        "U" => r"(?P<U>5[0-3]|[0-4]\d|\d)",
        "V" => r"(?P<V>5[0-3]|0[1-9]|[1-4]\d|\d)",
        "W" => r"(?P<W>5[0-3]|[0-4]\d|\d)",
        "X" => r"(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)",
        "Y" => r"(?P<Y>\d{4})",
        "Z" => r"(?P<Z>Z|[A-Z]{3,5})",
        "a" => "(?P<a>mon|tue|wed|thu|fri|sat|sun)",
        "b" => "(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)",
        "c" => {
            r"(?P<a>mon|tue|wed|thu|fri|sat|sun)\s+(?P<b>jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\s+(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])\s+(?P<H>2[0-3]|[0-1]\d|\d):(?P<M>[0-5]\d|\d):(?P<S>6[0-1]|[0-5]\d|\d)\s+(?P<Y>\d\d\d\d)"
        }
        "d" => r"(?P<d>[1-2]\d|[0 ]?[1-9]|3[0-1])",
        "f" => r"(?P<f>[0-9]{1,6})",
        "j" => r"(?P<j>36[0-6]|3[0-5]\d|[1-2]\d\d|0[1-9]\d|00[1-9]|[1-9]\d|0[1-9]|[1-9])",
        "k" => r" ?(?P<H>[0-2]?\d)",
        "l" => r" ?(?P<I>1?\d)",
        "m" => r"(?P<m>0?[1-9]|1[0-2])",
        "p" => "(?P<p>am|pm)",
        "u" => "(?P<u>[1-7])",
        "w" => "(?P<w>[0-6])",
        "x" => r"(?P<m>1[0-2]|0[1-9]|[1-9])/(?P<d>3[0-1]|[1-2]\d|0[1-9]|[1-9]| [1-9])/(?P<y>\d\d)",
        "y" => r"(?P<y>\d\d)",
        "z" => r"(?P<z>Z|UTC|GMT|[+-][01]\d(?::?\d{2})?)",
        _ => return None,
    };
    let label = match key {
        "a" => "DAY",
        "A" => "DAYNAME",
        "b" => "MON",
        "B" => "MONTH",
        "d" => "Day",
        "H" => "24hour",
        "I" => "12hour",
        "j" => "Yearday",
        "m" => "Month",
        "M" => "Minute",
        "p" => "AMPM",
        "S" => "Second",
        "U" | "W" => "Yearweek",
        "w" => "Weekday",
        "y" => "Year2",
        "Y" => "Year",
        "%" => "%",
        "z" => "Zone offset",
        "f" => "Microseconds",
        "Z" => "Zone name",
        "Exd" => "ExDay",
        "ExH" => "Ex24hour",
        "Exm" => "ExMonth",
        "ExM" => "ExMinute",
        "ExS" => "ExSecond",
        "Exy" => "ExYear2",
        "ExZ" => "ExZone name",
        "Exz" => "ExZone offset",
        other => return Some((re.to_string(), format!("%{other}"))),
    };
    Some((re.to_string(), label.to_string()))
}

/// The first three digits of the years `%ExY` accepts: 2000 up to three
/// years from now, as a compact alternation (fail2ban's `_getYearCentRE`).
fn year_prefixes(year_now: i32) -> String {
    let last = (year_now.max(2000) + 3) / 10;
    let decades: Vec<i32> = (200..=last.max(200)).collect();
    if decades.len() == 1 {
        return decades[0].to_string();
    }
    // Group by century: 20[0-2] for 200..=202.
    let mut parts = Vec::new();
    let mut i = 0;
    while i < decades.len() {
        let hundred = decades[i] / 10;
        let digits: Vec<i32> =
            decades[i..].iter().take_while(|d| *d / 10 == hundred).map(|d| d % 10).collect();
        i += digits.len();
        let class = if digits.len() == 1 {
            digits[0].to_string()
        } else {
            format!("[{}-{}]", digits[0], digits[digits.len() - 1])
        };
        parts.push(format!("{hundred}{class}"));
    }
    if parts.len() == 1 { parts.remove(0) } else { format!("(?:{})", parts.join("|")) }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Begin {
    /// No boundary at the start.
    None,
    /// fail2ban's word-begin boundary.
    Word,
    /// Anchored at the line start (`{^LN-BEG}`).
    Line,
}

struct Shapes {
    global_flags: fancy_regex::Regex,
    no_word_begin: fancy_regex::Regex,
    no_word_end: fancy_regex::Regex,
    grouped: fancy_regex::Regex,
    group: fancy_regex::Regex,
    line_begin: fancy_regex::Regex,
    line_end: fancy_regex::Regex,
    del_bounds: fancy_regex::Regex,
}

/// The regexes fail2ban's `DateTemplate.setRegex` applies to a template's
/// own regex (they inspect regex syntax), compiled once.
fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| {
        // These are constant patterns; a failure here is a programming error
        // caught by the tests, so fall back to a never-matching regex.
        let re = |p: &str| fancy_regex::Regex::new(p).unwrap_or_else(|_| never());
        Shapes {
            global_flags: re(r"((?:^|(?!<\\))\(\?[a-z]+\))"),
            no_word_begin: re(r"^\(*(?:\(\?\w+\))?(?:\^|\(*\*\*|\((?:\?:)?\^)"),
            no_word_end: re(r"(?<!\\)(?:\$\)?|\\b|\\s|\*\*\)*)$"),
            grouped: re(r"(?<!(?:\(\?))(?<!\\)\((?!\?)"),
            group: re(r"^((?:\(\?\w+\))?\^?(?:\(\?\w+\))?)(.*?)(\$?)$"),
            line_begin: re(r"^(?:\(\?\w+\))?(?:\^|\((?:\?:)?\^(?!\|))"),
            line_end: re(r"(?<![\\\|])(?:\$\)?)$"),
            del_bounds: re(r"^\(*(?:\(\?\w+\))?\(*\*\*|(?<!\\)\*\*\)*$"),
        }
    })
}

fn never() -> fancy_regex::Regex {
    // `[^\s\S]` matches nothing; it always compiles.
    fancy_regex::Regex::new(r"[^\s\S]").unwrap_or_else(|_| unreachable!("a constant, valid pattern"))
}

fn is_match(re: &fancy_regex::Regex, s: &str) -> bool {
    re.is_match(s).unwrap_or(false)
}

/// `DateTemplate.setRegex`: returns (regex, flags, name).
fn set_regex(regex: &str, begin: Begin, word_end: bool, name: &str) -> (String, u8, String) {
    let s = shapes();
    let mut regex = regex.trim().to_string();
    let mut name = name.to_string();
    let mut flags_prefix = None;
    if let Ok(Some(m)) = s.global_flags.find(&regex) {
        flags_prefix = Some(m.as_str().to_string());
        regex = format!("{}{}", &regex[..m.start()], &regex[m.end()..]);
    }
    let bound_begin = begin != Begin::None && !is_match(&s.no_word_begin, &regex);
    let bound_end = word_end && !is_match(&s.no_word_end, &regex);
    if !is_match(&s.grouped, &regex)
        && let Ok(Some(c)) = s.group.captures(&regex)
    {
        let g = |i: usize| c.get(i).map_or("", |m| m.as_str());
        regex = format!("{}({}){}", g(1), g(2), g(3));
    }
    let mut flags = 0u8;
    if bound_begin {
        if begin == Begin::Line {
            flags |= LINE_BEGIN;
            regex = format!(r"^(?:\W{{0,2}})?{regex}");
            if !name.starts_with("{^LN-BEG}") {
                name = format!("{{^LN-BEG}}{name}");
            }
        } else {
            regex = format!(r"(?=^|\b|\W){regex}");
        }
    }
    if bound_end {
        regex.push_str(r"(?=\b|\W|$)");
    }
    if flags & LINE_BEGIN == 0 && is_match(&s.line_begin, &regex) {
        flags |= LINE_BEGIN;
    }
    if is_match(&s.line_end, &regex) {
        flags |= LINE_END;
    }
    if let Ok(Some(m)) = s.del_bounds.find(&regex) {
        let cleaned = m.as_str().replace("**", "");
        regex = format!("{}{}{}", &regex[..m.start()], cleaned, &regex[m.end()..]);
        // The pattern may hold both a leading and a trailing `**`.
        if let Ok(Some(m)) = s.del_bounds.find(&regex) {
            let cleaned = m.as_str().replace("**", "");
            regex = format!("{}{}{}", &regex[..m.start()], cleaned, &regex[m.end()..]);
        }
    }
    if let Some(f) = flags_prefix {
        regex = format!("{f}{regex}");
    }
    (regex, flags, name)
}

/// Offsets of zone abbreviations in minutes (fail2ban's `TZ_ABBR_OFFS`).
fn zone_abbreviation(abbr: &str) -> Option<i32> {
    const TABLE: &[(f32, &str)] = &[
        (-12.0, "Y"),
        (-11.0, "X NUT SST"),
        (-10.0, "W CKT HAST HST TAHT TKT"),
        (-9.0, "V AKST GAMT GIT HADT HNY"),
        (-8.0, "U AKDT CIST HAY HNP PST PT"),
        (-7.0, "T HAP HNR MST PDT"),
        (-6.0, "S CST EAST GALT HAR HNC MDT"),
        (-5.0, "R CDT COT EASST ECT EST ET HAC HNE PET"),
        (-4.0, "Q AST BOT CLT COST EDT FKT GYT HAE HNA PYT"),
        (-3.0, "P ADT ART BRT CLST FKST GFT HAA PMST PYST SRT UYT WGT"),
        (-2.0, "O BRST FNT PMDT UYST WGST"),
        (-1.0, "N AZOT CVT EGT"),
        (0.0, "Z EGST GMT UTC WET WT"),
        (1.0, "A CET DFT WAT WEDT WEST"),
        (2.0, "B CAT CEDT CEST EET SAST WAST"),
        (3.0, "C EAT EEDT EEST IDT MSK"),
        (4.0, "D AMT AZT GET GST KUYT MSD MUT RET SAMT SCT"),
        (5.0, "E AMST AQTT AZST HMT MAWT MVT PKT TFT TJT TMT UZT YEKT"),
        (6.0, "F ALMT BIOT BTT IOT KGT NOVT OMST YEKST"),
        (7.0, "G CXT DAVT HOVT ICT KRAT NOVST OMSST THA WIB"),
        (8.0, "H ACT AWST BDT BNT CAST HKT IRKT KRAST MYT PHT SGT ULAT WITA WST"),
        (9.0, "I AWDT IRKST JST KST PWT TLT WDT WIT YAKT"),
        (10.0, "K AEST ChST PGT VLAT YAKST YAPT"),
        (11.0, "L AEDT LHDT MAGT NCT PONT SBT VLAST VUT"),
        (12.0, "M ANAST ANAT FJT GILT MAGST MHT NZST PETST PETT TVT WFT"),
        (13.0, "FJST NZDT"),
        (11.5, "NFT"),
        (10.5, "ACDT LHST"),
        (9.5, "ACST"),
        (6.5, "CCT MMT"),
        (5.75, "NPT"),
        (5.5, "SLT"),
        (4.5, "AFT IRDT"),
        (3.5, "IRST"),
        (-2.5, "HAT NDT"),
        (-3.5, "HNT NST NT"),
        (-4.5, "HLV VET"),
        (-9.5, "MART MIT"),
    ];
    if abbr.is_empty() {
        return Some(0);
    }
    TABLE.iter().find(|(_, names)| names.split(' ').any(|n| n == abbr)).map(|(h, _)| (h * 60.0) as i32)
}

/// `zone2offset`/`validateTimeZone` for a zone text: `[ABBR][±hh[[:]mm]]`,
/// in minutes east of UTC.
fn zone_offset(zone: &str) -> Option<i32> {
    let split = zone.find(['+', '-']).unwrap_or(zone.len());
    let (abbr, off) = zone.split_at(split);
    if !abbr.chars().all(|c| c.is_ascii_alphabetic()) || abbr.len() > 5 {
        return None;
    }
    let base = zone_abbreviation(abbr)?;
    if off.is_empty() {
        return Some(base);
    }
    let sign = if off.starts_with('-') { -1 } else { 1 };
    let digits = &off[1..];
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = match digits.len() {
        2 => 0,
        4 => digits[2..4].parse().ok()?,
        5 if digits.as_bytes()[2] == b':' => digits[3..5].parse().ok()?,
        _ => return None,
    };
    if digits.len() == 2 {
        // `[+-]hh`: int() of the signed text, times 60.
        return Some(base + sign * hours * 60);
    }
    Some(base + sign * (hours * 60 + minutes))
}

const MONTHS: [&str; 12] =
    ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const MONTH_NAMES: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// fail2ban's `reGroupDictStrptime`: strptime fields to an instant.
/// Missing year: this year, or last year if that would be more than a
/// day ahead of now; missing day: today, or yesterday if ahead of now.
pub fn strptime(fields: &[(&str, &str)], clock: Clock<'_>) -> Option<Timestamp> {
    let (mut year, mut month, mut day): (Option<i32>, Option<i8>, Option<i8>) = (None, None, None);
    let (mut hour, mut minute, mut second) = (0i8, 0i8, 0i8);
    let mut julian: Option<i32> = None;
    let mut offset: Option<i32> = None;
    let ampm =
        fields.iter().find(|(k, _)| *k == "p").map(|(_, v)| v.to_ascii_lowercase()).unwrap_or_default();
    for &(key, value) in fields {
        let int = || value.trim().parse::<i32>().ok();
        match key {
            "y" => year = Some(int().map(|y| if y <= 2000 { y + 2000 } else { y })?),
            "Y" => year = Some(int()?),
            "m" => month = Some(int()? as i8),
            "B" => month = Some(MONTH_NAMES.iter().position(|m| m.eq_ignore_ascii_case(value))? as i8 + 1),
            "b" => month = Some(MONTHS.iter().position(|m| m.eq_ignore_ascii_case(value))? as i8 + 1),
            "d" => day = Some(int()? as i8),
            "H" => hour = int()? as i8,
            "I" => {
                let h = int()?;
                hour = match ampm.as_str() {
                    "pm" if h != 12 => h + 12,
                    "pm" => h,
                    _ if h == 12 => 0,
                    _ => h,
                } as i8;
            }
            "M" => minute = int()? as i8,
            "S" => second = int()? as i8,
            "j" => julian = Some(int()?),
            "z" | "Z" => {
                offset = Some(if matches!(value, "Z" | "UTC" | "GMT") { 0 } else { zone_offset(value)? });
            }
            _ => {}
        }
    }
    let utc = TimeZone::UTC;
    let now = match clock.civil_now {
        Some(now) => now,
        None => clock.tz.unwrap_or(&utc).to_datetime(jiff::Timestamp::from_millisecond(clock.now.0).ok()?),
    };
    let assume_year = year.is_none();
    let year = year.unwrap_or(i32::from(now.year()));
    if (month.is_none() || day.is_none())
        && let Some(j) = julian
    {
        let date = jiff::civil::date(i16::try_from(year).ok()?, 1, 1)
            .checked_add(jiff::Span::new().days(j - 1))
            .ok()?;
        month = Some(date.month());
        day = Some(date.day());
    }
    let assume_today = month.is_none() && day.is_none();
    let month = month.unwrap_or(now.month());
    let day = day.unwrap_or(now.day());
    // Python's datetime() rejects what is not a real date and time.
    if !valid_date(year, month, day)
        || !(0..24).contains(&hour)
        || !(0..60).contains(&minute)
        || !(0..60).contains(&second)
    {
        return None;
    }
    // Seconds since 1970 of local civil times, as plain arithmetic.
    let civil = |y: i32, m: i8, d: i8| days_from_civil(y, m, d) * DAY;
    let mut local =
        civil(year, month, day) + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    if let Some(off) = offset {
        local -= i64::from(off) * 60;
    }
    let now_local = civil(i32::from(now.year()), now.month(), now.day())
        + i64::from(now.hour()) * 3600
        + i64::from(now.minute()) * 60
        + i64::from(now.second());
    if assume_today && local > now_local {
        local -= DAY;
    }
    if assume_year && local > now_local + DAY {
        // fail2ban: `replace(year=year - 1, month=month, day=day)`, keeping
        // the time of day.
        if !valid_date(year - 1, month, day) {
            return None;
        }
        local = civil(year - 1, month, day) + local.rem_euclid(DAY);
    }
    let secs = match (offset, clock.tz) {
        (Some(_), _) | (None, None) => local,
        (None, Some(tz)) => {
            let dt = jiff::Timestamp::from_second(local).ok()?.to_zoned(TimeZone::UTC).datetime();
            tz.to_ambiguous_timestamp(dt).compatible().ok()?.as_second()
        }
    };
    Some(Timestamp::from_secs(secs))
}

const DAY: i64 = 86_400;

fn valid_date(year: i32, month: i8, day: i8) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return false,
    };
    (1..=days).contains(&day) && (1..=9999).contains(&year)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i32, m: i8, d: i8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests;
