//! Conditionals and look-arounds without fancy-regex, for most lines.
//!
//! fail2ban patterns use `(?(name)yes|no)` conditionals and look-aheads
//! like `(?:(?! from ).)*`, which only a backtracking engine runs, and a
//! backtracking run of such a pattern (sshd's `Failed … for …` line, for
//! one) costs tens of thousands of steps. This module answers the same
//! question with the regex crate on most lines, exactly:
//!
//! - For each way the condition groups may take part in a match (a
//!   *variant*), the pattern is rewritten into a regex-crate pattern: each
//!   conditional becomes its `yes` (or `no`) branch; a group assumed absent
//!   becomes one that cannot match; a look-ahead loop `(?:(?!TEXT).)*`
//!   becomes a plain `.*`, captured so it can be checked afterwards.
//! - Every path of the original pattern is a path of the variant that
//!   agrees with it about the condition groups, in the same order of
//!   preference. So when no variant matches, the pattern does not; and
//!   when exactly one variant matches, and its match is a real path of the
//!   pattern (its assumed groups took part, no look-ahead text starts
//!   inside a checked loop), that match is the pattern's own match, groups
//!   and all.
//! - Several variants may match when they differ only in a condition group
//!   `G` written as a greedy optional `(?P<G>…)?` at the top level of the
//!   pattern (sshd's `(?P<cond_inv>invalid user )?`). Then a *merged*
//!   variant decides: the pattern `X (?P<G>…)? Y`, with every conditional
//!   on `G` in `Y`, is rewritten into `X (?:(?P<G>…) Y_yes | Y_no)`, where
//!   `Y_yes`/`Y_no` are `Y` with those conditionals resolved. That is the
//!   same set of paths in the same order: a backtracking engine tries `G`
//!   first and, with `G` set, `Y` sees its conditionals' `yes` branches;
//!   only when all of that fails does it skip `G` and run `Y` with `G` unset.
//!   The regex crate's leftmost-first search picks the first path in that
//!   order, as the backtracking engine does, so once the merged variant's
//!   match is checked to be a real path (as above), it is the pattern's
//!   match. (Choosing "the variant with `G` present" instead would be wrong
//!   in general: a path that skips `G` after an earlier choice in `X` comes
//!   before one that takes `G` after a later choice.) The copy of `Y`'s
//!   groups in `Y_no` is renamed; whichever copy took part gives the span.
//! - Otherwise (several variants match and no merged variant covers them,
//!   or the check fails) the caller runs fancy-regex as before.

use memchr::memmem::Finder;
use regex_automata::{Input, MatchKind, PatternSet, meta, util::syntax};

use super::pyre;
use crate::filter::backtrack::Scratch;
use crate::filter::compile::Compiled;

/// Most condition groups handled (2^N variants).
const MAX_CONDITIONS: usize = 3;

/// A fancy pattern's regex-crate variants.
#[derive(Debug)]
pub(crate) struct Split {
    variants: Vec<Variant>,
    /// All variants at once: which of them match a line.
    set: meta::Regex,
    /// `merged[k][bits]`: condition `k` left to the merged variant, the
    /// others as in `bits` (bit `k` clear); empty when condition `k` is not
    /// a top-level greedy optional group.
    merged: Vec<Vec<Option<Variant>>>,
}

#[derive(Debug)]
struct Variant {
    compiled: Compiled,
    /// Groups (in the variant) assumed to take part: one of each list
    /// (a merged variant has two copies of some groups).
    must: Vec<Vec<usize>>,
    /// Loops (groups in the variant) in which no text may start.
    loops: Vec<(usize, Finder<'static>)>,
    /// Original group number -> its groups in the variant (the one that
    /// took part gives the span).
    map: Vec<Vec<usize>>,
}

/// The suffix of the renamed copies of groups in a merged variant's `Y_no`.
const NO_COPY: &str = "__no";

/// What the variants say about a line.
pub(crate) enum Answer {
    /// The pattern does not match.
    No,
    /// It matches; `spans` (by the original group numbers) are filled in.
    Yes,
    /// Ask fancy-regex.
    Unsure,
}

impl Split {
    /// The variants of `rust` (the pattern as compiled, Rust syntax), whose
    /// groups are `names` (by group number); `None` when the pattern uses
    /// something this cannot rewrite.
    pub fn new(rust: &str, names: &[Option<String>]) -> Option<Split> {
        let conditions = condition_names(rust)?;
        if conditions.is_empty() && !rust.contains("(?!") {
            return None;
        }
        if conditions.len() > MAX_CONDITIONS {
            return None;
        }
        let mut variants = Vec::new();
        for bits in 0..(1usize << conditions.len()) {
            let (text, must) = assume(rust, &conditions, bits, None)?;
            let (text, variant) = Variant::new(&text, &must, names)?;
            variants.push((text, variant));
        }
        let merged = (0..conditions.len())
            .map(|k| {
                if top_level_optional(rust, &conditions[k]).is_none() {
                    return Vec::new();
                }
                (0..(1usize << conditions.len()))
                    .map(|bits| {
                        if bits & (1 << k) != 0 {
                            return None;
                        }
                        let (text, must) = assume(rust, &conditions, bits, Some(k))?;
                        let text = merge(&text, &conditions[k])?;
                        Some(Variant::new(&text, &must, names)?.1)
                    })
                    .collect()
            })
            .collect();
        let sources: Vec<&str> = variants.iter().map(|(t, _)| t.as_str()).collect();
        let set = meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(meta::Config::new().match_kind(MatchKind::All).utf8_empty(false))
            .build_many(&sources)
            .ok()?;
        Some(Split { variants: variants.into_iter().map(|(_, v)| v).collect(), set, merged })
    }

    /// Decides `hay`; on [`Answer::Yes`], `spans` holds the groups by the
    /// original pattern's numbers.
    pub fn run(
        &self,
        hay: &str,
        scratch: &mut Scratch,
        spans: &mut Vec<Option<(usize, usize)>>,
        own: &mut Vec<Option<(usize, usize)>>,
    ) -> Answer {
        let mut found = PatternSet::new(self.set.pattern_len());
        self.set.which_overlapping_matches(&Input::new(hay.as_bytes()), &mut found);
        let mut matching = found.iter().map(|p| p.as_usize());
        let Some(first) = matching.next() else { return Answer::No };
        let differ = matching.fold(0, |acc, other| acc | (other ^ first));
        let v = if differ == 0 {
            &self.variants[first]
        } else if differ.is_power_of_two() {
            let k = differ.trailing_zeros() as usize;
            match self.merged.get(k).and_then(|m| m.get(first & !differ)) {
                Some(Some(v)) => v,
                _ => return Answer::Unsure,
            }
        } else {
            return Answer::Unsure;
        };
        if !v.compiled.spans(hay, scratch, own) {
            return Answer::Unsure;
        }
        let took_part = |g: &usize| own.get(*g).copied().flatten().is_some();
        let assumed_hold = v.must.iter().all(|copies| copies.iter().any(took_part));
        let loops_hold = v.loops.iter().all(|(g, text)| match own.get(*g).copied().flatten() {
            Some((s, e)) => {
                let window_end = (e + text.needle().len()).saturating_sub(1).min(hay.len()).max(s);
                text.find(&hay.as_bytes()[s..window_end]).is_none()
            }
            None => true,
        });
        if !assumed_hold || !loops_hold {
            return Answer::Unsure;
        }
        spans.clear();
        spans.extend(v.map.iter().map(|copies| copies.iter().find_map(|&g| own.get(g).copied().flatten())));
        Answer::Yes
    }
}

impl Variant {
    /// Compiles a rewritten pattern (conditionals resolved) whose groups
    /// `must` take part; returns the text the set is built from, too.
    fn new(text: &str, must: &[String], names: &[Option<String>]) -> Option<(String, Variant)> {
        let (text, literals) = loops_to_captures(text)?;
        let compiled = Compiled::new(&text, &[]).ok()?;
        if compiled.is_fancy() {
            return None;
        }
        let vnames = compiled.group_names();
        let index = |name: &str| vnames.iter().position(|n| n.as_deref() == Some(name));
        let copies = |name: &str| -> Vec<usize> {
            [index(name), index(&format!("{name}{NO_COPY}"))].into_iter().flatten().collect()
        };
        let must =
            must.iter().map(|n| Some(copies(n)).filter(|c| !c.is_empty())).collect::<Option<Vec<_>>>()?;
        let loops = literals
            .iter()
            .enumerate()
            .map(|(k, lit)| Some((index(&loop_name(k))?, Finder::new(lit.as_bytes()).into_owned())))
            .collect::<Option<Vec<_>>>()?;
        // Group 0 (the whole match) is group 0 in every variant.
        let map = names
            .iter()
            .enumerate()
            .map(|(i, n)| if i == 0 { vec![0] } else { n.as_deref().map(copies).unwrap_or_default() })
            .collect();
        Some((text, Variant { compiled, must, loops, map }))
    }
}

/// `rust` with each condition resolved as in `bits` (present groups forced,
/// absent ones disabled), except condition `keep`, left as written; also
/// the names of the groups assumed present.
fn assume(
    rust: &str,
    conditions: &[String],
    bits: usize,
    keep: Option<usize>,
) -> Option<(String, Vec<String>)> {
    let mut text = rust.to_string();
    let mut must = Vec::new();
    for (k, name) in conditions.iter().enumerate() {
        if Some(k) == keep {
            continue;
        }
        let yes = bits & (1 << k) != 0;
        text = resolve_conditionals(&text, name, yes)?;
        text = if yes { force_group(&text, name)? } else { disable_group(&text, name)? };
        if yes {
            must.push(name.clone());
        }
    }
    Some((text, must))
}

/// Where group `name` stands as a greedy optional `(?P<name>…)?` in the
/// pattern's top-level sequence (no top-level alternation, no conditional
/// on it before it): its start and the index of its `?`.
fn top_level_optional(s: &str, name: &str) -> Option<(usize, usize)> {
    let head = format!("(?P<{name}>");
    let at = s.find(&head)?;
    if s[at + 1..].contains(&head) || depth_at(s, at)? != 0 || top_level_alternation(s) {
        return None;
    }
    let close = close_of(s, at)?;
    let after = &s[close + 1..];
    let greedy = after.starts_with('?') && !after[1..].starts_with(['?', '+']);
    let tested_before = s[..close].contains(&format!("(?(<{name}>)"));
    (greedy && !tested_before).then_some((at, close + 1))
}

/// How many groups are open at `at` (`None` if `at` is in a class).
fn depth_at(s: &str, at: usize) -> Option<usize> {
    if in_class(s, at) {
        return None;
    }
    let b = s.as_bytes();
    let opened = (0..at).filter(|&o| b[o] == b'(' && !escaped(s, o) && !in_class(s, o));
    Some(opened.filter(|&o| close_of(s, o).is_some_and(|c| c > at)).count())
}

/// Whether the pattern has a `|` outside every group.
fn top_level_alternation(s: &str) -> bool {
    split_top_alternation(s).0.len() < s.len()
}

/// `X (?P<name>…)? Y` -> `X (?:(?P<name>…) Y_yes | Y_no)`, the groups of
/// `Y_no` renamed (see the module docs for why the order is the same).
fn merge(s: &str, name: &str) -> Option<String> {
    let (at, question) = top_level_optional(s, name)?;
    let (x, g, y) = (&s[..at], &s[at..question], &s[question + 1..]);
    let yes = resolve_conditionals(y, name, true)?;
    let no = rename_groups(&resolve_conditionals(y, name, false)?);
    Some(format!("{x}(?:{g}{yes}|{no})"))
}

/// Every named group `(?P<n>` in `s` renamed `(?P<n__no>`.
fn rename_groups(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    let mut rest = s;
    while let Some(off) = rest.find("(?P<") {
        let (before, after) = rest.split_at(off + 4);
        out.push_str(before);
        match after.split_once('>') {
            Some((n, tail)) if !escaped(s, s.len() - rest.len() + off) => {
                out.push_str(n);
                out.push_str(NO_COPY);
                out.push('>');
                rest = tail;
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}

fn loop_name(k: usize) -> String {
    format!("__lookloop{k}")
}

/// The names conditionals test, in order of first use; `None` when one
/// tests a group by number.
fn condition_names(rust: &str) -> Option<Vec<String>> {
    let mut names: Vec<String> = Vec::new();
    let mut from = 0;
    while let Some(off) = rust[from..].find("(?(") {
        let at = from + off;
        from = at + 3;
        if escaped(rust, at) || in_class(rust, at) {
            continue;
        }
        let rest = &rust[at + 3..];
        let name = rest.strip_prefix('<')?.split_once(">)")?.0;
        if !names.iter().any(|n| n == name) {
            names.push(name.to_string());
        }
    }
    Some(names)
}

/// Whether the byte at `at` is escaped by an odd run of backslashes.
fn escaped(s: &str, at: usize) -> bool {
    s.as_bytes()[..at].iter().rev().take_while(|&&c| c == b'\\').count() % 2 == 1
}

/// Whether `at` lies inside a character class.
fn in_class(s: &str, at: usize) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let mut depth = 0usize;
    while i < at {
        match b[i] {
            b'\\' => i += 1,
            b'[' => {
                depth += 1;
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if depth == 1 && b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if depth > 0 => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    depth > 0
}

/// The index of the `)` closing the group opened at `open`.
fn close_of(s: &str, open: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut class = 0usize;
    let mut i = open;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' => {
                class += 1;
                if b.get(i + 1) == Some(&b'^') {
                    i += 1;
                }
                if class == 1 && b.get(i + 1) == Some(&b']') {
                    i += 1;
                }
            }
            b']' if class > 0 => class -= 1,
            b'(' if class == 0 => depth += 1,
            b')' if class == 0 => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether a group enclosing `at` is repeated (then a capture inside it
/// only tells about the last repetition).
fn inside_repetition(s: &str, at: usize) -> bool {
    let b = s.as_bytes();
    (0..at).filter(|&o| b[o] == b'(' && !escaped(s, o) && !in_class(s, o)).any(|o| {
        close_of(s, o).is_some_and(|c| c > at && matches!(b.get(c + 1), Some(b'?' | b'*' | b'+' | b'{')))
    })
}

/// Replaces every `(?(<name>)yes|no)` with `(?:yes)` or `(?:no)`.
fn resolve_conditionals(s: &str, name: &str, yes: bool) -> Option<String> {
    let head = format!("(?(<{name}>)");
    let mut s = s.to_string();
    while let Some(at) = s.find(&head) {
        let close = close_of(&s, at)?;
        let body = &s[at + head.len()..close];
        let (y, n) = split_top_alternation(body);
        let chosen = if yes { y } else { n };
        s = format!("{}(?:{}){}", &s[..at], chosen, &s[close + 1..]);
    }
    Some(s)
}

/// `yes|no` at the top level of a conditional's body (`no` empty if absent;
/// further alternatives belong to `no`, as in fancy-regex).
fn split_top_alternation(body: &str) -> (&str, &str) {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut class = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' => class += 1,
            b']' if class > 0 => class -= 1,
            b'(' if class == 0 => depth += 1,
            b')' if class == 0 => depth = depth.saturating_sub(1),
            b'|' if class == 0 && depth == 0 => return (&body[..i], &body[i + 1..]),
            _ => {}
        }
        i += 1;
    }
    (body, "")
}

/// Makes group `name` unable to match (it keeps its number and name).
fn disable_group(s: &str, name: &str) -> Option<String> {
    let head = format!("(?P<{name}>");
    let at = s.find(&head)?;
    if inside_repetition(s, at) {
        return None;
    }
    let close = close_of(s, at)?;
    Some(format!("{}{head}[^\\s\\S]){}", &s[..at], &s[close + 1..]))
}

/// Makes group `name` take part where the pattern's shape allows: an
/// optional group loses its `?`, a group that is a whole first alternative
/// loses the other alternatives. Elsewhere the match is checked instead.
fn force_group(s: &str, name: &str) -> Option<String> {
    let head = format!("(?P<{name}>");
    let at = s.find(&head)?;
    if inside_repetition(s, at) {
        return None;
    }
    let close = close_of(s, at)?;
    let after = &s[close + 1..];
    if let Some(rest) = after.strip_prefix('?') {
        let rest = rest.strip_prefix('?').unwrap_or(rest);
        return Some(format!("{}{}", &s[..=close], rest));
    }
    if after.starts_with('|') {
        // The enclosing group must open right before this one.
        let before = &s[..at];
        let open = before.rfind('(')?;
        let opener = &before[open..];
        let plain_opener =
            opener == "(" || opener == "(?:" || (opener.starts_with("(?P<") && opener.ends_with('>'));
        if plain_opener && !escaped(s, open) {
            let outer_close = close_of(s, open)?;
            return Some(format!("{}{}", &s[..=close], &s[outer_close..]));
        }
    }
    Some(s.to_string())
}

/// Rewrites each look-ahead loop `(?:(?!TEXT).)*` (or `*?`) into a captured
/// `.*` (or `.*?`), returning the texts in capture order; `None` when such a
/// loop is itself repeated.
fn loops_to_captures(s: &str) -> Option<(String, Vec<String>)> {
    let mut out = s.to_string();
    let mut literals = Vec::new();
    let mut from = 0;
    while let Some(off) = out[from..].find("(?:(?!") {
        let at = from + off;
        let chars: Vec<char> = out[at + 6..].chars().collect();
        let Some((text, used)) = pyre::literal_text(&chars) else {
            from = at + 1;
            continue;
        };
        let body_end = at + 6 + chars[..used].iter().map(|c| c.len_utf8()).sum::<usize>();
        let rest = &out[body_end..];
        let Some(rest) = rest.strip_prefix(").)*") else {
            from = at + 1;
            continue;
        };
        if inside_repetition(&out, at) || text.is_empty() {
            return None;
        }
        let lazy = rest.starts_with('?');
        let end = body_end + 4 + usize::from(lazy);
        let replacement = format!("(?P<{}>.*{})", loop_name(literals.len()), if lazy { "?" } else { "" });
        literals.push(text);
        out = format!("{}{}{}", &out[..at], replacement, &out[end..]);
        from = at + replacement.len();
    }
    Some((out, literals))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fancy_spans(rx: &str, hay: &str) -> Option<Vec<Option<(usize, usize)>>> {
        let c = Compiled::new(rx, &[]).unwrap();
        let mut out = Vec::new();
        c.spans(hay, &mut Scratch::default(), &mut out).then_some(out)
    }

    /// The sshd `Failed … for …` shape: conditionals on an optional group
    /// and on the first branch of an alternation, and look-ahead loops.
    const FAILED: &str = r"^Failed (?:(?P<nofail>publickey)|\S+) for (?P<cond_inv>invalid user )?(?P<user>(?P<cond_user>\S+)|(?(<cond_inv>)(?:(?! from ).)*?|[^:]+)) from (?P<ip>[0-9.]+)(?: port \d+)?(?: ssh\d*)?(?(<cond_user>): |(?:(?:(?! from ).)*)$)";

    /// Runs `lines` through the split form of `rx` and checks every
    /// decided answer against fancy-regex, group by group; returns how many
    /// lines were decided without fancy-regex. (Group 0 is left out: the
    /// fast matcher does not report it, and single-line callers do not
    /// read it.)
    fn decided(rx: &str, lines: &[&str]) -> usize {
        let c = Compiled::new(rx, &[]).unwrap();
        assert!(c.is_fancy(), "{rx}");
        let names = c.group_names();
        let split = Split::new(rx, &names).expect("rewritable");
        let mut decided = 0;
        for line in lines {
            let want = fancy_spans(rx, line);
            let mut spans = Vec::new();
            match split.run(line, &mut Scratch::default(), &mut spans, &mut Vec::new()) {
                Answer::No => assert_eq!(want, None, "{line}"),
                Answer::Yes => {
                    let want = want.unwrap_or_else(|| panic!("fancy does not match {line}"));
                    for (g, _) in names.iter().enumerate().filter(|(_, n)| n.is_some()) {
                        assert_eq!(spans[g], want[g], "group {:?} of {line}", names[g]);
                    }
                }
                Answer::Unsure => continue,
            }
            decided += 1;
        }
        decided
    }

    #[test]
    fn variants_agree_with_fancy_or_defer_to_it() {
        let split = Split::new(FAILED, &Compiled::new(FAILED, &[]).unwrap().group_names()).unwrap();
        assert_eq!(split.variants.len(), 4);
        let lines = [
            "Failed password for root from 192.0.2.1 port 22 ssh2",
            "Failed password for invalid user admin from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user from 192.0.2.3 port 22 ssh2",
            "Failed publickey for bob from 192.0.2.4 port 22 ssh2: RSA SHA256:x",
            "Failed password for odd user name from 192.0.2.5 port 22 ssh2",
            "Failed password for x from y from 192.0.2.6",
            "Accepted password for root from 192.0.2.7 port 22 ssh2",
        ];
        assert!(decided(FAILED, &lines) >= 6, "most lines are decided without fancy-regex");
    }

    #[test]
    fn a_top_level_optional_condition_group_is_merged_not_guessed() {
        // Only the optional `cond_inv` qualifies; `cond_user` is a branch.
        let split = Split::new(FAILED, &Compiled::new(FAILED, &[]).unwrap().group_names()).unwrap();
        let built: Vec<usize> = split.merged.iter().map(|m| m.iter().flatten().count()).collect();
        assert_eq!(built, [2, 0]);
        // Lines where both the `invalid user` variants match (with and
        // without the group), the look-aheads included: every one is
        // decided, and agrees with fancy-regex.
        let invalid = [
            "Failed password for invalid user admin from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user admin from 192.0.2.2",
            "Failed publickey for invalid user admin from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user invalid user from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user a b c from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user  from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user x:y from 192.0.2.2 port 22 ssh2",
        ];
        assert_eq!(decided(FAILED, &invalid), invalid.len());
        // Lines where a look-ahead decides, or more than one condition is in
        // doubt: whatever is decided agrees (the rest goes to fancy-regex).
        let odd = [
            "Failed password for invalid user a from b from 192.0.2.2 port 22 ssh2",
            "Failed password for invalid user admin from 192.0.2.2 port 22 ssh2: tail",
            "Failed password for invalid user admin from 192.0.2.2 port 22 ssh2 from 192.0.2.9",
        ];
        decided(FAILED, &odd);
    }

    #[test]
    fn merging_keeps_backtracking_order_where_group_present_would_be_wrong() {
        // On `abbc` a backtracking engine takes `a`, fails `(?P<g>b)c`, and
        // matches `bbc` with `g` unset; the variant with `g` present matches
        // too (through `ab`), so "present wins" would be wrong here.
        let rx = r"^(?:a|ab)(?P<g>b)?(?(<g>)c|bbc)";
        assert_eq!(fancy_spans(rx, "abbc").unwrap()[1], None);
        assert_eq!(decided(rx, &["abbc", "abc", "ac", "abbbc", "xabbc"]), 5);
        // Unanchored, with a look-ahead loop after the group.
        let rx = r"(?:a|ab)(?P<g>b)?(?(<g>)(?:(?!z).)*c|b(?:(?!zz).)*$)";
        let lines = ["xabzc", "abbzc", "abbzzc", "abbc", "ab", "abzb", "abbzz"];
        assert_eq!(decided(rx, &lines), lines.len() - unsure(rx, &lines));
    }

    fn unsure(rx: &str, lines: &[&str]) -> usize {
        let split = Split::new(rx, &Compiled::new(rx, &[]).unwrap().group_names()).unwrap();
        lines
            .iter()
            .filter(|l| {
                let answer = split.run(l, &mut Scratch::default(), &mut Vec::new(), &mut Vec::new());
                matches!(answer, Answer::Unsure)
            })
            .count()
    }

    #[test]
    fn merging_applies_only_to_top_level_greedy_optionals() {
        let merged = |rx: &str| {
            let split = Split::new(rx, &Compiled::new(rx, &[]).unwrap().group_names()).unwrap();
            split.merged.iter().any(|m| m.iter().any(Option::is_some))
        };
        assert!(merged(r"^x(?P<g>b)?(?(<g>)c|d)"));
        // Lazy: the group is tried last, not first.
        assert!(!merged(r"^x(?P<g>b)??(?(<g>)c|d)"));
        // Nested in a group: what follows it is not the rest of the pattern.
        assert!(!merged(r"^(?:x(?P<g>b)?)(?(<g>)c|d)"));
        // A top-level alternation: the rest of the pattern is not `Y`.
        assert!(!merged(r"^x(?P<g>b)?(?(<g>)c|d)|y"));
        // Not optional.
        assert!(!merged(r"^x(?:(?P<g>b)|e)(?(<g>)c|d)"));
    }

    #[test]
    fn unsupported_shapes_are_left_to_fancy() {
        assert!(Split::new(r"(a)\1", &[]).is_none());
        assert!(Split::new(r"(?:(?P<c>a)(?(<c>)b|c))+", &[]).is_none());
        assert!(Split::new(r"(?:x(?:(?!ab).)*)+", &[]).is_none());
        assert!(Split::new(r"plain", &[]).is_none());
    }
}
