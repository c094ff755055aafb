//! Compilation of a [`FilterDef`] into a [`Filter`]: params applied, tags
//! expanded, each pattern compiled, and a gate built in front of each list.
//!
//! Engines, per pattern:
//! - the `regex` crate's engines (through regex-automata) in ASCII byte
//!   syntax (`\w`, `\d`, `\s` ASCII; `.` and negated classes span any
//!   non-ASCII byte), or Unicode syntax when the pattern asks for Unicode
//!   classes; plus, for `^`-anchored patterns, the fast capture matcher of
//!   `backtrack/`, which hands over to regex-automata past a step
//!   budget;
//! - `fancy-regex` (bounded backtracking) only for patterns that need
//!   lookaround, backreferences or conditionals.
//!
//! The gate decides which pattern to run captures for, keeping first-match
//! order:
//! - when every pattern runs on the fast matcher and their first bytes tell
//!   them apart, a first-byte dispatch table: a line reaches only the
//!   patterns that can start with its first byte, and of those runs only
//!   the ones whose leading literal it starts with;
//! - otherwise one multi-pattern regex-automata DFA (a `RegexSet` without
//!   the per-call allocation), every entry anchored, searched leftmost-first
//!   so it reports the first pattern that matches. A fancy pattern is gated
//!   by a regex-crate superset of itself (`relax_for_gate`) when one
//!   exists, and otherwise tried on every line that reaches it.
//!
//! A prefregex runs first and failregexes see its `<F-CONTENT>`, as in
//! fail2ban, when all patterns are fast-matcher patterns. Otherwise, when
//! the content is a plain `.+`/`.*`, each failregex is spliced into the
//! prefregex (its own `^`/`$` then mean the content's start/end) so a line
//! needs one gate pass and one capture pass; failing that, two stages again.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex_automata::util::primitives::PatternID;
use regex_automata::util::syntax;
use regex_automata::{Anchored, Input, MatchKind, meta};

use super::backtrack::{Answer, ByteSet, Program, Run, Scratch, parse_ascii};
use super::date::DateSearch;
use super::definition::{FilterDef, PatternEntry};
use super::template::{Expanded, Role, expand_tags, relax_for_gate, splice_anchors, substitute_params};
use super::{Filter, FilterError, PatternError};

/// Backtracking steps a fancy-regex pattern may take on one line before the
/// line counts as not matching it.
pub const BACKTRACK_LIMIT: usize = 100_000;
/// Most patterns one first byte may select for the dispatch gate.
const MAX_DISPATCH_CANDIDATES: usize = 6;
/// Compiled-size cap per pattern (the regex crate's default is 10 MiB).
const SIZE_LIMIT: usize = 16 << 20;

/// The engine a pattern compiled with.
#[derive(Debug)]
pub(crate) enum Engine {
    /// A regex-crate engine. Captures run the bounded backtracker (or the
    /// one-pass DFA) directly: the gate has already said the pattern matches,
    /// so no DFA pass to find the match first.
    Std(StdRegex),
    Fancy(Box<fancy_regex::Regex>),
}

/// A regex-crate engine, built when the pattern compiles or, for a pattern
/// the fast matcher runs, the first time a line needs it: regex-automata
/// then only answers lines past the fast matcher's step budget, which log
/// lines hardly ever are, and building it was a fifth of loading a filter.
/// A pattern is left lazy only when its build cannot fail, so a pattern
/// that cannot compile is still refused at load: for one the fast matcher
/// runs (no look-around but `^`/`$`, ASCII classes) regex-automata's only
/// failure is its NFA size limit, which [`nfa_size_bound`] rules out.
#[derive(Debug)]
pub(crate) struct StdRegex {
    /// `None` when a lazy build failed (logged when it did).
    built: OnceLock<Option<meta::Regex>>,
    /// Per capture group (group 0 first), its name: from the engine, or
    /// from the parse for a lazy one, so nothing needs the engine to read
    /// groups by name.
    names: Box<[Option<Box<str>>]>,
}

impl StdRegex {
    fn built(re: meta::Regex) -> StdRegex {
        let names = re.group_info().pattern_names(PatternID::ZERO).map(|n| n.map(Box::from)).collect();
        StdRegex { built: OnceLock::from(Some(re)), names }
    }

    fn lazy(hir: &regex_syntax::hir::Hir) -> StdRegex {
        let names = capture_names(hir).into_iter().map(|n| n.map(Box::from)).collect();
        StdRegex { built: OnceLock::new(), names }
    }

    /// The group named `name`.
    fn index_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n.as_deref() == Some(name))
    }

    /// Whether the engine has been built.
    #[cfg(test)]
    pub(crate) fn is_built(&self) -> bool {
        self.built.get().is_some()
    }

    /// The engine for `regex`, building it if not yet built; `None` only if
    /// a lazy build failed, which [`nfa_size_bound`] rules out. A failure
    /// is logged once, when the build is tried; the pattern's lines then
    /// count as not matching.
    pub(crate) fn get(&self, regex: &str) -> Option<&meta::Regex> {
        self.built
            .get_or_init(|| {
                let built = match parse_ascii(regex) {
                    Some(hir) => build_std_hir(&hir, true),
                    None => build_std(regex, ascii_syntax()),
                };
                built
                    .map_err(|error| {
                        tracing::error!(
                            pattern = regex,
                            "pattern failed to compile on first use ({error}); counted as no match"
                        )
                    })
                    .ok()
            })
            .as_ref()
    }
}

/// An upper bound on the heap regex-automata's NFA builder uses for `hir`
/// (the `nfa_size_limit` it checks as it adds states), with room to spare:
/// what `thompson::Compiler` adds per node, counted from its source
/// (0.4.x): at most `(m + 1) * (s + 1) + 3` states for a repetition of a
/// sub-pattern of `s` states up to `m` times, `3 * s + 3 * k + 2` for an
/// alternation of `k` (literal tries included), a state per literal byte,
/// two per class or group, one per look; each state at most 32 bytes plus
/// five patches of 4 bytes and trie union entries, counted as 128; 8 bytes
/// per class range, counted as 16. A test checks regex-automata builds
/// every shipped pattern within it.
pub(crate) fn nfa_size_bound(hir: &regex_syntax::hir::Hir) -> usize {
    use regex_syntax::hir::{Class, HirKind};
    /// (states, class ranges) of a node.
    fn walk(hir: &regex_syntax::hir::Hir) -> (usize, usize) {
        match hir.kind() {
            HirKind::Empty | HirKind::Look(_) => (1, 0),
            HirKind::Literal(lit) => (lit.0.len().max(1), 0),
            HirKind::Class(Class::Bytes(c)) => (2, c.ranges().len()),
            // regex-automata compiles an ASCII class as a byte class; the
            // others (UTF-8 automata) are not bounded here.
            HirKind::Class(Class::Unicode(c)) if c.is_ascii() => (2, c.ranges().len()),
            HirKind::Class(Class::Unicode(_)) => (usize::MAX, 0),
            HirKind::Capture(cap) => {
                let (s, r) = walk(&cap.sub);
                (s.saturating_add(2), r)
            }
            HirKind::Concat(subs) => {
                let (s, r) = walk_all(subs);
                (s.max(1), r)
            }
            HirKind::Alternation(subs) => {
                let (s, r) = walk_all(subs);
                let s = s.saturating_mul(3).saturating_add(subs.len().saturating_mul(3)).saturating_add(2);
                (s, r)
            }
            HirKind::Repetition(rep) => {
                let (s, r) = walk(&rep.sub);
                let times = (rep.max.unwrap_or(rep.min).max(1) as usize).saturating_add(1);
                (times.saturating_mul(s.saturating_add(1)).saturating_add(3), times.saturating_mul(r))
            }
        }
    }
    /// The sums of [`walk`] over `subs`.
    fn walk_all(subs: &[regex_syntax::hir::Hir]) -> (usize, usize) {
        subs.iter().map(walk).fold((0, 0), |(s, r), (a, b)| (s.saturating_add(a), r.saturating_add(b)))
    }
    let (states, ranges) = walk(hir);
    // Group 0, the match state and the unanchored prefix (3 states).
    let states = states.saturating_add(8);
    states.saturating_mul(128).saturating_add(ranges.saturating_mul(16))
}

/// Byte-oriented, ASCII-class syntax: `\w`, `\d`, `\s` are ASCII, while `.`
/// and negated classes (`\S`, `[^"]`) match any non-ASCII byte, so they
/// span non-ASCII text. This keeps automata small (Unicode `\w` alone is
/// hundreds of states) which is most of the matching cost.
fn ascii_syntax() -> syntax::Config {
    syntax::Config::new().unicode(false).utf8(false)
}

fn build_std(regex: &str, syntax: syntax::Config) -> Result<meta::Regex, String> {
    meta::Regex::builder()
        .syntax(syntax)
        .configure(meta::Config::new().utf8_empty(false).nfa_size_limit(Some(SIZE_LIMIT)))
        .build(regex)
        .map_err(build_error)
}

/// regex-automata's message, which for a pattern past the size limit
/// says only "error building NFA".
fn build_error(e: meta::BuildError) -> String {
    match e.size_limit() {
        Some(limit) => format!("{e}: the automaton would take more than the {} MiB limit", limit >> 20),
        None => e.to_string(),
    }
}

/// [`build_std`] in ASCII syntax from a parsed pattern. With `fallback_only`
/// (the fast matcher runs the pattern, and regex-automata only answers
/// lines past its step budget) only the engines that report captures
/// directly are built: no lazy or full DFA (nor the reverse automaton they
/// need) and no one-pass DFA. Every engine finds the same leftmost-first
/// match, so this changes how fast a rare fallback runs, not what it finds.
/// Both builds check the size limit on the same forward NFA; the full one
/// also on the reverse NFA its DFAs need, which has no capture states and
/// so is no larger: a pattern compiles here exactly when [`build_std`]
/// would compile it. (Saves about a third of loading the sshd filter.)
fn build_std_hir(hir: &regex_syntax::hir::Hir, fallback_only: bool) -> Result<meta::Regex, String> {
    let config = meta::Config::new().utf8_empty(false).nfa_size_limit(Some(SIZE_LIMIT));
    let config = if fallback_only { config.hybrid(false).dfa(false).onepass(false) } else { config };
    meta::Regex::builder().configure(config).build_from_hir(hir).map_err(build_error)
}

/// One compiled pattern with its roles.
#[derive(Debug)]
pub(crate) struct Compiled {
    /// The regex as compiled (params and tags expanded), for tests and reports.
    pub regex: String,
    pub engine: Engine,
    /// The hot-path capture matcher, when the pattern suits it.
    pub fast: Option<Program>,
    /// Whether the pattern needed Unicode mode (`\p{L}`, …) or fancy-regex,
    /// whose classes are Unicode: its gate entry is then wrapped in `(?u:…)`.
    unicode: bool,
    /// Capture-group index per role, in group order: per role, the first
    /// group that participated in a match wins.
    roles: Vec<(Role, usize)>,
}

/// What a match captured, as slices of the haystack.
///
/// Filled in place ([`Compiled::captures_into`]): a line's prefregex and
/// failregex write into one `Raw`, the failregex's groups over the
/// prefregex's, so the large struct is not copied from call to call.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Raw<'h> {
    pub addr: Option<&'h str>,
    pub prefix: Option<&'h str>,
    pub user: Option<&'h str>,
    pub alt_user: Option<&'h str>,
    pub id: Option<&'h str>,
    pub mlfid: Option<&'h str>,
    pub content: Option<(usize, usize)>,
    pub nofail: bool,
    pub forget: bool,
    pub gained: bool,
    pub once: bool,
}

impl Compiled {
    /// Compiles `regex`: ASCII byte syntax first, Unicode syntax if the
    /// pattern asks for Unicode classes, fancy-regex if it needs lookaround,
    /// backreferences or conditionals. The error is the regex crate's message,
    /// or fancy-regex's when the pattern needs its features.
    pub fn new(regex: &str, groups: &[(String, Role)]) -> Result<Compiled, String> {
        // Parsed once for both the fast matcher and regex-automata (which
        // would parse it again from the text, the same way).
        let hir = parse_ascii(regex);
        let fast = hir.as_ref().and_then(Program::from_hir);
        if let (Some(hir), Some(_)) = (&hir, &fast)
            && nfa_size_bound(hir) <= SIZE_LIMIT
        {
            // The fast matcher runs it: regex-automata is built on first
            // need (see `StdRegex`), and the groups are read from the parse.
            let re = StdRegex::lazy(hir);
            let roles = roles_of(groups, |name| re.index_of(name));
            let engine = Engine::Std(re);
            return Ok(Compiled { regex: regex.to_string(), engine, fast, unicode: false, roles });
        }
        let ascii = match &hir {
            Some(hir) => build_std_hir(hir, fast.is_some()),
            // regex-automata's own message for a pattern that does not parse.
            None => build_std(regex, ascii_syntax()),
        };
        let (engine, unicode) = match ascii {
            Ok(re) => (Engine::Std(StdRegex::built(re)), false),
            Err(ascii_err) => match build_std(regex, syntax::Config::new()) {
                Ok(re) => (Engine::Std(StdRegex::built(re)), true),
                Err(_) => {
                    let fancy = fancy_regex::RegexBuilder::new(regex)
                        .backtrack_limit(BACKTRACK_LIMIT)
                        .delegate_size_limit(SIZE_LIMIT)
                        .build();
                    match fancy {
                        Ok(re) => (Engine::Fancy(Box::new(re)), true),
                        Err(fancy_err) => {
                            let needs_fancy =
                                ascii_err.contains("look-around") || ascii_err.contains("backreference");
                            return Err(if needs_fancy { fancy_err.to_string() } else { ascii_err });
                        }
                    }
                }
            },
        };
        let roles = roles_of(groups, |name| match &engine {
            Engine::Std(re) => re.index_of(name),
            Engine::Fancy(re) => re.capture_names().position(|n| n == Some(name)),
        });
        let fast = if unicode { None } else { fast };
        Ok(Compiled { regex: regex.to_string(), engine, fast, unicode, roles })
    }

    pub fn is_fancy(&self) -> bool {
        matches!(self.engine, Engine::Fancy(_))
    }

    /// Runs the pattern with captures; `None` when it does not match (or a
    /// fancy pattern hits its backtrack limit).
    #[cfg(test)]
    pub fn captures<'h>(&self, hay: &'h str, scratch: &mut Scratch) -> Option<Raw<'h>> {
        let mut raw = Raw::default();
        self.captures_into(hay, scratch, &mut raw).then_some(raw)
    }

    /// Runs the pattern with captures and, when it matches, writes what its
    /// groups captured into `out`: a role one of its groups captured
    /// replaces `out`'s value, the others are left as they were, and its
    /// flags are added. `false` (and `out` untouched) when it does not
    /// match (or a fancy pattern hits its backtrack limit).
    pub fn captures_into<'h>(&self, hay: &'h str, scratch: &mut Scratch, out: &mut Raw<'h>) -> bool {
        let fast = match &self.fast {
            Some(p) => match p.run_or_header(hay.as_bytes(), scratch) {
                Answer::Ran(run) => run,
                // The line matches as the last header did: its groups are
                // read from the memo, not copied first.
                Answer::Header(found) => {
                    self.read(hay, |i| found.span_on(i, hay.len()), out);
                    return true;
                }
            },
            None => Run::GaveUp,
        };
        match fast {
            Run::NoMatch => false,
            Run::Match => {
                let slots = &scratch.slots;
                // Unset groups hold usize::MAX, which no slice accepts.
                let span = |i: usize| match slots.get(2 * i..2 * i + 2) {
                    Some(&[s, e]) => Some((s, e)),
                    _ => None,
                };
                self.read(hay, span, out);
                true
            }
            Run::GaveUp => self.captures_slow(hay, out),
        }
    }

    /// [`Compiled::captures_into`] by regex-automata or fancy-regex: for a
    /// line past the fast matcher's step budget, or a pattern it does not
    /// run. Kept apart so the hot path above stays small.
    #[cold]
    #[inline(never)]
    fn captures_slow<'h>(&self, hay: &'h str, out: &mut Raw<'h>) -> bool {
        match &self.engine {
            Engine::Std(re) => {
                let Some(re) = re.get(&self.regex) else { return false };
                let mut caps = re.create_captures();
                re.search_captures(&Input::new(hay.as_bytes()), &mut caps);
                if !caps.is_match() {
                    return false;
                }
                self.read(hay, |i| caps.get_group(i).map(|sp| (sp.start, sp.end)), out);
                true
            }
            Engine::Fancy(re) => {
                let Some(caps) = re.captures(hay).ok().flatten() else { return false };
                self.read(hay, |i| caps.get(i).map(|m| (m.start(), m.end())), out);
                true
            }
        }
    }

    /// Group names by group number (`None` for unnamed groups), for callers
    /// that read groups by name (the fail2ban import).
    pub fn group_names(&self) -> Vec<Option<String>> {
        match &self.engine {
            Engine::Std(re) => re.names.iter().map(|n| n.as_deref().map(String::from)).collect(),
            Engine::Fancy(re) => re.capture_names().map(|n| n.map(String::from)).collect(),
        }
    }

    /// Runs the pattern and writes every group's span into `out` (index =
    /// group number, `None` when the group did not participate). `false`
    /// when it does not match (or a fancy pattern hits its backtrack limit).
    pub fn spans(&self, hay: &str, scratch: &mut Scratch, out: &mut Vec<Option<(usize, usize)>>) -> bool {
        out.clear();
        match &self.engine {
            Engine::Std(re) => {
                let groups = re.names.len();
                let fast = match &self.fast {
                    Some(p) => p.run(hay.as_bytes(), scratch),
                    None => Run::GaveUp,
                };
                match fast {
                    Run::NoMatch => false,
                    Run::Match => {
                        let slots = &scratch.slots;
                        out.extend((0..groups).map(|i| match (slots.get(2 * i), slots.get(2 * i + 1)) {
                            (Some(&s), Some(&e)) if s != usize::MAX && e != usize::MAX => Some((s, e)),
                            _ => None,
                        }));
                        true
                    }
                    Run::GaveUp => {
                        let Some(re) = re.get(&self.regex) else { return false };
                        let mut caps = re.create_captures();
                        re.search_captures(&Input::new(hay.as_bytes()), &mut caps);
                        if !caps.is_match() {
                            return false;
                        }
                        out.extend((0..groups).map(|i| caps.get_group(i).map(|sp| (sp.start, sp.end))));
                        true
                    }
                }
            }
            Engine::Fancy(re) => match re.captures(hay) {
                Ok(Some(caps)) => {
                    out.extend(caps.iter().map(|m| m.map(|m| (m.start(), m.end()))));
                    true
                }
                Ok(None) => false,
                Err(e) => {
                    backtrack_limit_hit(&self.regex, &e);
                    false
                }
            },
        }
    }

    /// Writes the groups' captures into `out` (see [`Compiled::captures_into`]):
    /// per role, the first of the pattern's groups that participated wins.
    fn read<'h>(&self, hay: &'h str, span: impl Fn(usize) -> Option<(usize, usize)>, out: &mut Raw<'h>) {
        // Roles already written by this pattern (bit per text role).
        let mut written = 0u8;
        for &(role, index) in &self.roles {
            let Some((s, e)) = span(index) else { continue };
            // Byte-mode groups may in theory split a character: such a span is
            // treated as not captured rather than sliced.
            let Some(text) = hay.get(s..e) else { continue };
            let mut first = |bit: u8, slot: &mut Option<&'h str>| {
                if written & bit == 0 {
                    written |= bit;
                    *slot = Some(text);
                }
            };
            match role {
                Role::Addr => first(1, &mut out.addr),
                Role::Prefix => first(2, &mut out.prefix),
                Role::User => first(4, &mut out.user),
                Role::AltUser => first(8, &mut out.alt_user),
                Role::Id => first(16, &mut out.id),
                Role::Mlfid => first(32, &mut out.mlfid),
                Role::Content => {
                    if written & 64 == 0 {
                        written |= 64;
                        out.content = Some((s, e));
                    }
                }
                Role::NoFail => out.nofail = true,
                Role::MlfForget => out.forget = true,
                Role::MlfGained => out.gained = true,
                Role::MlfOnce => out.once = true,
            }
        }
    }
}

/// Per capture group of `hir` (group 0 first), its name.
fn capture_names(hir: &regex_syntax::hir::Hir) -> Vec<Option<&str>> {
    use regex_syntax::hir::HirKind;
    fn walk<'h>(hir: &'h regex_syntax::hir::Hir, names: &mut [Option<&'h str>]) {
        match hir.kind() {
            HirKind::Capture(cap) => {
                if let Some(slot) = names.get_mut(cap.index as usize) {
                    *slot = cap.name.as_deref();
                }
                walk(&cap.sub, names);
            }
            HirKind::Concat(subs) | HirKind::Alternation(subs) => subs.iter().for_each(|s| walk(s, names)),
            HirKind::Repetition(rep) => walk(&rep.sub, names),
            _ => {}
        }
    }
    let mut names = vec![None; hir.properties().explicit_captures_len() + 1];
    walk(hir, &mut names);
    names
}

/// The role of each of `groups` (by name) that the pattern has, with its
/// group index.
fn roles_of(groups: &[(String, Role)], index_of: impl Fn(&str) -> Option<usize>) -> Vec<(Role, usize)> {
    groups.iter().filter_map(|(name, role)| Some((*role, index_of(name)?))).collect()
}

/// Logs a line that a fancy pattern gave up on (it counts as not matching):
/// the first time, then at every power of two, so a hostile stream cannot
/// flood the log.
fn backtrack_limit_hit(regex: &str, error: &fancy_regex::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    let n = HITS.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        tracing::warn!(
            pattern = regex,
            hits = n,
            "a line took too long to match ({error}); counted as no match"
        );
    }
}

/// An ordered list of patterns behind one gate.
#[derive(Debug)]
pub(crate) struct PatternList {
    pub patterns: Vec<Compiled>,
    /// All gated patterns, anchored, in order, leftmost-first: an anchored
    /// search reports the first of them that matches (priority order), and a
    /// DFA can stop as soon as that is decided.
    gate: Option<meta::Regex>,
    /// Per pattern: whether the gate holds it (else it is always tried).
    gated: Vec<bool>,
    /// Gate pattern id -> pattern index.
    pattern_of: Vec<usize>,
    /// When every pattern runs on the fast matcher: per first byte of the
    /// line (and, last, for an empty line), the patterns that can start
    /// with it, in order. The gate is then this table: a pattern runs only
    /// on lines whose first byte it can start with, and fails fast on the
    /// literal after it.
    dispatch: Option<Vec<Box<[usize]>>>,
}

impl PatternList {
    /// `gate_sources()[i]` is the anchored gate entry for pattern `i`, if
    /// any; asked for only when the list needs a gate (building them means
    /// compiling each pattern again).
    pub fn new(
        patterns: Vec<Compiled>,
        gate_sources: impl FnOnce(&[Compiled]) -> Vec<Option<String>>,
    ) -> PatternList {
        if patterns.iter().all(|p| p.fast.is_some()) {
            let firsts: Vec<Option<ByteSet>> =
                patterns.iter().map(|p| p.fast.as_ref().and_then(Program::first_bytes)).collect();
            // Dispatch pays off when a first byte leaves few candidates;
            // patterns sharing a prefix (spliced ones) go through the gate.
            let most = (0..=255u8)
                .map(|b| firsts.iter().filter(|f| f.as_ref().is_none_or(|set| set.contains(b))).count())
                .max()
                .unwrap_or(0);
            if most <= MAX_DISPATCH_CANDIDATES {
                let gated = vec![false; patterns.len()];
                let candidates = |byte: Option<u8>| -> Box<[usize]> {
                    (0..patterns.len())
                        .filter(|&i| match (&firsts[i], byte) {
                            (Some(set), Some(b)) => set.contains(b),
                            (Some(_), None) => false,
                            (None, _) => true,
                        })
                        .collect()
                };
                let mut dispatch: Vec<Box<[usize]>> = (0..=255u8).map(|b| candidates(Some(b))).collect();
                dispatch.push(candidates(None));
                return PatternList {
                    patterns,
                    gate: None,
                    gated,
                    pattern_of: Vec::new(),
                    dispatch: Some(dispatch),
                };
            }
        }
        let gate_sources = gate_sources(&patterns);
        let mut sources = Vec::new();
        let mut pattern_of = Vec::new();
        for (i, source) in gate_sources.iter().enumerate() {
            if let Some(s) = source {
                sources.push(s.as_str());
                pattern_of.push(i);
            }
        }
        let gate = if sources.is_empty() {
            None
        } else {
            meta::Regex::builder()
                .syntax(ascii_syntax())
                .configure(
                    meta::Config::new()
                        .match_kind(MatchKind::LeftmostFirst)
                        .hybrid_cache_capacity(4 << 20)
                        .utf8_empty(false)
                        .nfa_size_limit(Some(SIZE_LIMIT * 4)),
                )
                .build_many(&sources)
                .ok()
        };
        let gated = match gate {
            Some(_) => gate_sources.iter().map(Option::is_some).collect(),
            // Without a gate every pattern is tried in order.
            None => vec![false; patterns.len()],
        };
        PatternList { patterns, gate, gated, pattern_of, dispatch: None }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    #[cfg(test)]
    pub fn is_gated(&self, i: usize) -> bool {
        self.gated.get(i).copied().unwrap_or(false)
    }

    /// The first gated pattern that matches, by the gate alone.
    fn gate_first(&self, hay: &str) -> Option<usize> {
        let gate = self.gate.as_ref()?;
        let m = gate.search(&Input::new(hay.as_bytes()).anchored(Anchored::Yes))?;
        self.pattern_of.get(m.pattern().as_usize()).copied()
    }

    /// Whether pattern `i` must be run, given the gate's first hit `first`:
    /// ungated patterns always; gated ones from the gate's hit on (those
    /// after it only if the hit's own captures failed, which only a relaxed
    /// fancy gate entry can cause).
    fn worth_trying(&self, i: usize, first: Option<usize>) -> bool {
        !self.gated[i] || first.is_some_and(|k| i >= k)
    }

    /// The patterns worth running on `hay`, in order: those the gate (or
    /// the first-byte dispatch) does not rule out.
    pub fn candidates<'a>(&'a self, hay: &'a str) -> impl Iterator<Item = usize> + 'a {
        let first = if self.dispatch.is_some() { None } else { self.gate_first(hay) };
        self.candidates_after(hay, first)
    }

    /// The patterns to try on `hay`, in order, given the gate's first hit
    /// `first` (unused with a dispatch table).
    fn candidates_after<'a>(&'a self, hay: &str, first: Option<usize>) -> impl Iterator<Item = usize> + 'a {
        let (listed, all) = match &self.dispatch {
            Some(lists) => {
                let byte = hay.as_bytes().first().map_or(256, |&b| usize::from(b));
                (lists.get(byte).map(|l| &l[..]), None)
            }
            None => (None, Some((0..self.patterns.len()).filter(move |&i| self.worth_trying(i, first)))),
        };
        listed.into_iter().flatten().copied().chain(all.into_iter().flatten())
    }

    /// The first pattern that matches: its index, with its captures written
    /// into `out` (as [`Compiled::captures_into`] does).
    pub fn first_match_into<'h>(
        &self,
        hay: &'h str,
        scratch: &mut Scratch,
        out: &mut Raw<'h>,
    ) -> Option<usize> {
        if let Some(lists) = &self.dispatch {
            let byte = hay.as_bytes().first().map_or(256, |&b| usize::from(b));
            for &i in lists.get(byte).map_or(&[][..], |l| &l[..]) {
                // A pattern whose leading literal the line lacks cannot
                // match it: checked before the call into the matcher.
                if self.patterns.get(i).is_some_and(|p| {
                    p.fast.as_ref().is_none_or(|fast| fast.admits_lead(hay.as_bytes()))
                        && p.captures_into(hay, scratch, out)
                }) {
                    return Some(i);
                }
            }
            return None;
        }
        let first = self.gate_first(hay);
        self.candidates_after(hay, first).find(|&i| self.patterns[i].captures_into(hay, scratch, out))
    }

    /// The first pattern that matches, without captures where the gate suffices.
    pub fn first_index(&self, hay: &str, scratch: &mut Scratch) -> Option<usize> {
        let first = self.gate_first(hay);
        self.candidates_after(hay, first).find(|&i| {
            // The gate's own hit on a std pattern is a match by construction.
            Some(i) == first && !self.patterns[i].is_fancy()
                || self.patterns[i].captures_into(hay, scratch, &mut Raw::default())
        })
    }
}

/// The gate entry for a pattern: itself, or a superset for fancy ones; in
/// `(?u:…)` when the pattern's classes are Unicode; prefixed with a lazy
/// `.*?` when not anchored, so every entry is anchored and leftmost-first
/// priority picks the first matching pattern.
pub(crate) fn gate_source(regex: &str, compiled: &Compiled) -> Option<String> {
    let source = if compiled.is_fancy() { relax_for_gate(regex)? } else { regex.to_string() };
    let source = if compiled.unicode { format!("(?u:{source})") } else { source };
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(&source).ok()?;
    let anchored = hir.properties().look_set_prefix().contains(regex_syntax::hir::Look::Start);
    let source = if anchored { source } else { format!("(?s-u:.)*?(?:{source})") };
    build_std(&source, ascii_syntax()).ok().map(|_| source)
}

/// Context for error messages.
struct Ctx<'a> {
    origin: &'a str,
    filter: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, line: u64, message: impl Into<String>) -> FilterError {
        FilterError::Invalid {
            origin: self.origin.to_string(),
            line,
            filter: self.filter.to_string(),
            message: message.into(),
        }
    }

    fn pattern(&self, line: u64, what: String, pattern: &str, problem: String) -> FilterError {
        FilterError::Pattern(Box::new(PatternError {
            origin: self.origin.to_string(),
            line,
            filter: self.filter.to_string(),
            what,
            pattern: pattern.to_string(),
            problem,
        }))
    }
}

/// A pattern after params and tags, with where it was written.
struct Prepared {
    source: String,
    line: u64,
    what: String,
    expanded: Expanded,
}

fn prepare(
    ctx: &Ctx,
    what: String,
    source: &str,
    line: u64,
    params: &BTreeMap<String, String>,
    next_group: &mut usize,
) -> Result<Prepared, FilterError> {
    let substituted =
        substitute_params(source, params).map_err(|e| ctx.pattern(line, what.clone(), source, e))?;
    let expanded = expand_tags(&substituted, next_group, params)
        .map_err(|e| ctx.pattern(line, what.clone(), source, e))?;
    Ok(Prepared { source: source.to_string(), line, what, expanded })
}

fn compile_one(ctx: &Ctx, p: &Prepared) -> Result<Compiled, FilterError> {
    Compiled::new(&p.expanded.regex, &p.expanded.groups)
        .map_err(|e| ctx.pattern(p.line, p.what.clone(), &p.source, format!("does not compile: {e}")))
}

/// Whether `entry` applies under `params`; unknown params in `when` are errors.
fn selected(
    ctx: &Ctx,
    entry: &PatternEntry,
    line: u64,
    params: &BTreeMap<String, String>,
) -> Result<bool, FilterError> {
    for (key, values) in &entry.when {
        let Some(value) = params.get(key) else {
            return Err(ctx.invalid(
                line,
                format!(
                    "`when` names param {key:?}, which the filter does not declare (declared: {})",
                    declared(params)
                ),
            ));
        };
        if !values.iter().any(|v| v == value) {
            return Ok(false);
        }
    }
    Ok(true)
}

fn declared(params: &BTreeMap<String, String>) -> String {
    if params.is_empty() { "none".into() } else { params.keys().cloned().collect::<Vec<_>>().join(", ") }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_')
}

/// Compiles a parsed definition with `overrides` applied to its params.
pub(crate) fn build(
    def: FilterDef,
    origin: &str,
    overrides: &BTreeMap<String, String>,
) -> Result<Filter, FilterError> {
    let name = def.name.value.clone();
    let ctx = Ctx { origin, filter: &name };
    let name_line = def.name.referenced.line();
    if !is_name(&name) {
        return Err(ctx.invalid(name_line, "`name` must be lowercase letters, digits, '-' or '_'"));
    }
    if def.description.trim().is_empty() {
        return Err(ctx.invalid(name_line, "`description` must not be empty (one line for `warden filters`)"));
    }
    let mut params = def.params.clone();
    for (key, value) in overrides {
        match params.get_mut(key) {
            Some(slot) => *slot = value.clone(),
            None => {
                return Err(ctx.invalid(
                    name_line,
                    format!(
                        "filter_params sets {key:?}, which the filter does not declare (declared: {})",
                        declared(&def.params)
                    ),
                ));
            }
        }
    }
    let date_search = match &def.datepattern {
        None => DateSearch::Auto,
        Some(dp) => DateSearch::parse(&dp.value).map_err(|e| ctx.invalid(dp.referenced.line(), e))?,
    };
    let mut next_group = 0usize;

    let prefix = match &def.prefregex {
        Some(p) => {
            Some(prepare(&ctx, "prefregex".into(), &p.value, p.referenced.line(), &params, &mut next_group)?)
        }
        None => None,
    };
    let mut prefix_compiled = prefix.as_ref().map(|p| compile_one(&ctx, p)).transpose()?;
    // A prefregex whose content runs to the end of the line reuses its
    // match for the next line that starts alike (`Program::cache_header`):
    // consecutive lines of a log mostly share their host, daemon and pid.
    if let (Some(p), Some(c)) = (&prefix, &mut prefix_compiled)
        && let Some((start, end)) = p.expanded.content
        && matches!(&p.expanded.regex[start..end], ".+" | ".*")
        && &p.expanded.regex[end..] == ")$"
        && let Some(&(_, group)) = c.roles.iter().find(|(role, _)| *role == Role::Content)
        && let Some(fast) = &mut c.fast
    {
        fast.cache_header(group);
    }

    let mut fails = Vec::new();
    for (n, entry) in def.failregex.iter().enumerate() {
        let line = entry.referenced.line();
        if selected(&ctx, &entry.value, line, &params)? {
            let what = format!("failregex #{}", n + 1);
            fails.push(prepare(&ctx, what, &entry.value.regex, line, &params, &mut next_group)?);
        }
    }
    if def.failregex.is_empty() {
        return Err(ctx.invalid(name_line, "`failregex` must list at least one pattern"));
    }
    let mut ignores = Vec::new();
    for (n, entry) in def.ignoreregex.iter().enumerate() {
        let line = entry.referenced.line();
        if selected(&ctx, &entry.value, line, &params)? {
            let what = format!("ignoreregex #{}", n + 1);
            ignores.push(prepare(&ctx, what, &entry.value.regex, line, &params, &mut next_group)?);
        }
    }

    let prefix_has_mlfid = prefix.as_ref().is_some_and(|p| p.expanded.has(Role::Mlfid));
    let prefix_has_addr =
        prefix.as_ref().is_some_and(|p| p.expanded.has(Role::Addr) || p.expanded.has(Role::Id));
    for f in &fails {
        let e = &f.expanded;
        if !(e.has(Role::Addr)
            || e.has(Role::Id)
            || e.has(Role::Mlfid)
            || prefix_has_mlfid
            || prefix_has_addr)
        {
            return Err(ctx.pattern(
                f.line,
                f.what.clone(),
                &f.source,
                "has no address: use <HOST>, <ADDR>, <IP4>, <IP6>, <SUBNET> or <F-ID>, or an <F-MLFID> that takes the address from an earlier line".into(),
            ));
        }
        if e.has(Role::Content) {
            return Err(ctx.pattern(
                f.line,
                f.what.clone(),
                &f.source,
                "uses <F-CONTENT>, which only a prefregex may".into(),
            ));
        }
    }

    let standalone: Vec<Compiled> = fails.iter().map(|f| compile_one(&ctx, f)).collect::<Result<_, _>>()?;
    let ignore_compiled: Vec<Compiled> =
        ignores.iter().map(|f| compile_one(&ctx, f)).collect::<Result<_, _>>()?;
    let ignore = PatternList::new(ignore_compiled, |compiled| {
        ignores.iter().zip(compiled).map(|(p, c)| gate_source(&p.expanded.regex, c)).collect()
    });

    // Two stages when the fast matcher runs every pattern (prefregex once,
    // then a first-byte dispatch over the content); else one spliced pass.
    let all_fast = prefix_compiled.as_ref().is_some_and(|p| p.fast.is_some())
        && standalone.iter().all(|c| c.fast.is_some());
    let spliced = match (&prefix, &prefix_compiled) {
        (Some(p), Some(_)) if !all_fast => splice_all(p, &fails),
        _ => None,
    };
    let (fail, prefix_for_two_stage) = match spliced {
        Some((compiled, gates)) => (PatternList::new(compiled, |_| gates), None),
        None => {
            let gates = |compiled: &[Compiled]| {
                fails.iter().zip(compiled).map(|(p, c)| gate_source(&p.expanded.regex, c)).collect()
            };
            (PatternList::new(standalone, gates), prefix_compiled)
        }
    };

    Ok(Filter {
        name,
        description: def.description.trim().to_string(),
        source: def.source.unwrap_or_default().trim().to_string(),
        journalmatch: def.journalmatch,
        date_search,
        failregex_sources: fails.into_iter().map(|f| f.source).collect(),
        ignore,
        fail,
        prefix: prefix_for_two_stage,
        fail2ban: None,
    })
}

/// Splices every failregex into the prefregex's content; `None` when the
/// content is not a plain `.+`/`.*` or a pattern cannot be spliced.
fn splice_all(prefix: &Prepared, fails: &[Prepared]) -> Option<(Vec<Compiled>, Vec<Option<String>>)> {
    let (start, end) = prefix.expanded.content?;
    let pre = &prefix.expanded.regex;
    if !matches!(&pre[start..end], ".+" | ".*" | ".+?" | ".*?") {
        return None;
    }
    let mut compiled = Vec::new();
    let mut gates = Vec::new();
    for f in fails {
        let s = splice_anchors(&f.expanded.regex)?;
        let lead = if s.starts_anchored { "" } else { ".*?" };
        let tail = if s.ends_anchored { "" } else { ".*" };
        let regex = format!("{}{lead}(?:{}){tail}{}", &pre[..start], s.body, &pre[end..]);
        let mut groups = prefix.expanded.groups.clone();
        groups.extend(f.expanded.groups.iter().cloned());
        let c = Compiled::new(&regex, &groups).ok()?;
        gates.push(gate_source(&regex, &c));
        compiled.push(c);
    }
    Some((compiled, gates))
}
