//! Compilation of a [`FilterDef`] into a [`Filter`]: params applied, tags
//! expanded, each pattern compiled with the `regex` crate when it can and with
//! `fancy-regex` (bounded backtracking) only when it needs lookaround,
//! backreferences or conditionals, and a multi-pattern gate built in front.
//!
//! The gate is one `regex-automata` meta regex holding every pattern of a
//! list (a `RegexSet` without the per-call allocation). It runs as a DFA
//! without captures and reports which patterns match; captures then run only
//! for the first of them, which keeps first-match order. A fancy pattern is
//! gated by a regex-crate superset of itself ([`relax_for_gate`]) when one
//! exists, and otherwise tried on every line that reaches it.
//!
//! When a prefregex wraps its content in `<F-CONTENT>.+</F-CONTENT>`, each
//! failregex is spliced into it (the failregex's own `^`/`$` then mean the
//! content's start/end), so a line needs one gate pass and one capture pass.
//! Otherwise the engine falls back to two stages, as fail2ban does: prefregex
//! captures first, then the gate over the content.

use std::collections::BTreeMap;

use regex_automata::util::primitives::PatternID;
use regex_automata::{Input, MatchKind, PatternSet, meta};

use super::date::DateSearch;
use super::definition::{FilterDef, PatternEntry};
use super::template::{Expanded, Role, expand_tags, relax_for_gate, splice_anchors, substitute_params};
use super::{Filter, FilterError, PatternError};

/// Backtracking steps a fancy-regex pattern may take on one line before the
/// line counts as not matching it.
pub const BACKTRACK_LIMIT: usize = 100_000;
/// Compiled-size cap per pattern (the regex crate's default is 10 MiB).
const SIZE_LIMIT: usize = 16 << 20;

/// The engine a pattern compiled with.
#[derive(Debug)]
pub(crate) enum Engine {
    Std(regex::Regex),
    Fancy(Box<fancy_regex::Regex>),
}

/// Capture-group indices per role (first participating group wins).
#[derive(Debug, Default)]
pub(crate) struct Slots {
    addr: Vec<usize>,
    prefix: Vec<usize>,
    user: Vec<usize>,
    alt_user: Vec<usize>,
    id: Vec<usize>,
    mlfid: Vec<usize>,
    content: Vec<usize>,
    nofail: Vec<usize>,
    forget: Vec<usize>,
    gained: Vec<usize>,
    once: Vec<usize>,
}

/// One compiled pattern with its roles.
#[derive(Debug)]
pub(crate) struct Compiled {
    pub engine: Engine,
    slots: Slots,
}

/// What a match captured, as slices of the haystack.
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

impl Raw<'_> {
    /// Fills what `self` lacks from `other` (the prefregex's captures).
    pub fn or(mut self, other: &Self) -> Self {
        self.addr = self.addr.or(other.addr);
        self.prefix = self.prefix.or(other.prefix);
        self.user = self.user.or(other.user);
        self.alt_user = self.alt_user.or(other.alt_user);
        self.id = self.id.or(other.id);
        self.mlfid = self.mlfid.or(other.mlfid);
        self.nofail |= other.nofail;
        self.forget |= other.forget;
        self.gained |= other.gained;
        self.once |= other.once;
        self
    }
}

impl Compiled {
    /// Compiles `regex`; the error says why (the regex crate's message, or
    /// fancy-regex's when the pattern needs its features).
    pub fn new(regex: &str, groups: &[(String, Role)]) -> Result<Compiled, String> {
        let engine = match regex::RegexBuilder::new(regex).size_limit(SIZE_LIMIT).build() {
            Ok(re) => Engine::Std(re),
            Err(std_err) => {
                let fancy = fancy_regex::RegexBuilder::new(regex)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .delegate_size_limit(SIZE_LIMIT)
                    .build();
                match fancy {
                    Ok(re) => Engine::Fancy(Box::new(re)),
                    Err(fancy_err) => {
                        let s = std_err.to_string();
                        let needs_fancy = s.contains("look-around") || s.contains("backreference");
                        return Err(if needs_fancy { fancy_err.to_string() } else { s });
                    }
                }
            }
        };
        let names: Vec<Option<String>> = match &engine {
            Engine::Std(re) => re.capture_names().map(|n| n.map(String::from)).collect(),
            Engine::Fancy(re) => re.capture_names().map(|n| n.map(String::from)).collect(),
        };
        let mut slots = Slots::default();
        for (name, role) in groups {
            let Some(index) = names.iter().position(|n| n.as_deref() == Some(name.as_str())) else {
                continue;
            };
            let list = match role {
                Role::Addr => &mut slots.addr,
                Role::Prefix => &mut slots.prefix,
                Role::User => &mut slots.user,
                Role::AltUser => &mut slots.alt_user,
                Role::Id => &mut slots.id,
                Role::Mlfid => &mut slots.mlfid,
                Role::Content => &mut slots.content,
                Role::NoFail => &mut slots.nofail,
                Role::MlfForget => &mut slots.forget,
                Role::MlfGained => &mut slots.gained,
                Role::MlfOnce => &mut slots.once,
            };
            list.push(index);
        }
        Ok(Compiled { engine, slots })
    }

    pub fn is_fancy(&self) -> bool {
        matches!(self.engine, Engine::Fancy(_))
    }

    /// Runs the pattern with captures; `None` when it does not match (or a
    /// fancy pattern hits its backtrack limit).
    pub fn captures<'h>(&self, hay: &'h str) -> Option<Raw<'h>> {
        match &self.engine {
            Engine::Std(re) => {
                let mut locs = re.capture_locations();
                re.captures_read(&mut locs, hay)?;
                Some(self.read(hay, |i| locs.get(i)))
            }
            Engine::Fancy(re) => {
                let caps = re.captures(hay).ok()??;
                Some(self.read(hay, |i| caps.get(i).map(|m| (m.start(), m.end()))))
            }
        }
    }

    fn read<'h>(&self, hay: &'h str, span: impl Fn(usize) -> Option<(usize, usize)>) -> Raw<'h> {
        let first = |list: &[usize]| list.iter().find_map(|&i| span(i));
        let text = |list: &[usize]| first(list).map(|(s, e)| &hay[s..e]);
        let s = &self.slots;
        Raw {
            addr: text(&s.addr),
            prefix: text(&s.prefix),
            user: text(&s.user),
            alt_user: text(&s.alt_user),
            id: text(&s.id),
            mlfid: text(&s.mlfid),
            content: first(&s.content),
            nofail: first(&s.nofail).is_some(),
            forget: first(&s.forget).is_some(),
            gained: first(&s.gained).is_some(),
            once: first(&s.once).is_some(),
        }
    }
}

/// An ordered list of patterns behind one gate.
#[derive(Debug)]
pub(crate) struct PatternList {
    pub patterns: Vec<Compiled>,
    gate: Option<meta::Regex>,
    /// Per pattern: its id in the gate, or `None` when it must always be tried.
    gate_of: Vec<Option<usize>>,
}

impl PatternList {
    /// `gate_sources[i]` is the regex-crate syntax gating pattern `i`, if any.
    pub fn new(patterns: Vec<Compiled>, gate_sources: Vec<Option<String>>) -> PatternList {
        let mut gated = Vec::new();
        let mut gate_of = Vec::with_capacity(patterns.len());
        for source in &gate_sources {
            gate_of.push(source.as_ref().map(|s| {
                gated.push(s.as_str());
                gated.len() - 1
            }));
        }
        let gate = if gated.is_empty() {
            None
        } else {
            meta::Regex::builder()
                .configure(
                    meta::Config::new().match_kind(MatchKind::All).nfa_size_limit(Some(SIZE_LIMIT * 4)),
                )
                .build_many(&gated)
                .ok()
        };
        if gate.is_none() {
            // Without a gate every pattern is tried in order.
            gate_of.iter_mut().for_each(|g| *g = None);
        }
        PatternList { patterns, gate, gate_of }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Patterns in the gate (the `PatternSet` capacity a search needs).
    pub fn gate_len(&self) -> usize {
        self.gate.as_ref().map_or(0, |g| g.pattern_len())
    }

    pub fn is_gated(&self, i: usize) -> bool {
        self.gate_of.get(i).is_some_and(Option::is_some)
    }

    fn run_gate(&self, hay: &str, set: &mut PatternSet) {
        set.clear();
        if let Some(gate) = &self.gate {
            gate.which_overlapping_matches(&Input::new(hay), set);
        }
    }

    fn may_match(&self, i: usize, set: &PatternSet) -> bool {
        match self.gate_of[i] {
            // A gate id fits in PatternID: it came from the gate's own pattern count.
            Some(pid) => PatternID::new(pid).is_ok_and(|p| set.contains(p)),
            None => true,
        }
    }

    /// The first pattern that matches, with its captures.
    pub fn first_match<'h>(&self, hay: &'h str, set: &mut PatternSet) -> Option<(usize, Raw<'h>)> {
        self.run_gate(hay, set);
        (0..self.patterns.len())
            .filter(|&i| self.may_match(i, set))
            .find_map(|i| self.patterns[i].captures(hay).map(|raw| (i, raw)))
    }

    /// The first pattern that matches, without captures where the gate suffices.
    pub fn first_index(&self, hay: &str, set: &mut PatternSet) -> Option<usize> {
        self.run_gate(hay, set);
        (0..self.patterns.len()).filter(|&i| self.may_match(i, set)).find(|&i| {
            // A std pattern the gate reported matches by construction.
            self.is_gated(i) && !self.patterns[i].is_fancy() || self.patterns[i].captures(hay).is_some()
        })
    }
}

/// The gate entry for a pattern: itself, or a superset for fancy ones.
fn gate_source(regex: &str, compiled: &Compiled) -> Option<String> {
    if !compiled.is_fancy() {
        return Some(regex.to_string());
    }
    let relaxed = relax_for_gate(regex)?;
    regex::RegexBuilder::new(&relaxed).size_limit(SIZE_LIMIT).build().ok().map(|_| relaxed)
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
    let prefix_compiled = prefix.as_ref().map(|p| compile_one(&ctx, p)).transpose()?;

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
    let ignore_gates =
        ignores.iter().zip(&ignore_compiled).map(|(p, c)| gate_source(&p.expanded.regex, c)).collect();
    let ignore = PatternList::new(ignore_compiled, ignore_gates);

    let spliced = match (&prefix, &prefix_compiled) {
        (Some(p), Some(_)) => splice_all(p, &fails),
        _ => None,
    };
    let (fail, prefix_for_two_stage) = match spliced {
        Some((compiled, gates)) => (PatternList::new(compiled, gates), None),
        None => {
            let gates =
                fails.iter().zip(&standalone).map(|(p, c)| gate_source(&p.expanded.regex, c)).collect();
            (PatternList::new(standalone, gates), prefix_compiled)
        }
    };

    let gate_capacity = fail.gate_len().max(ignore.gate_len());
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
        gate_capacity,
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
