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
//! - Otherwise (several variants match, or the check fails) the caller runs
//!   fancy-regex as before.

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
}

#[derive(Debug)]
struct Variant {
    compiled: Compiled,
    /// Groups (in the variant) assumed to take part.
    must: Vec<usize>,
    /// Loops (groups in the variant) in which no text may start.
    loops: Vec<(usize, Finder<'static>)>,
    /// Original group number -> group number in the variant.
    map: Vec<Option<usize>>,
}

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
            let present: Vec<bool> = (0..conditions.len()).map(|k| bits & (1 << k) != 0).collect();
            let mut text = rust.to_string();
            for (name, &yes) in conditions.iter().zip(&present) {
                text = resolve_conditionals(&text, name, yes)?;
                text = if yes { force_group(&text, name)? } else { disable_group(&text, name)? };
            }
            let (text, literals) = loops_to_captures(&text)?;
            let compiled = Compiled::new(&text, &[]).ok()?;
            if compiled.is_fancy() {
                return None;
            }
            let vnames = compiled.group_names();
            let index = |name: &str| vnames.iter().position(|n| n.as_deref() == Some(name));
            let must = conditions
                .iter()
                .zip(&present)
                .filter(|(_, p)| **p)
                .map(|(n, _)| index(n))
                .collect::<Option<Vec<_>>>()?;
            let loops = literals
                .iter()
                .enumerate()
                .map(|(k, lit)| Some((index(&loop_name(k))?, Finder::new(lit.as_bytes()).into_owned())))
                .collect::<Option<Vec<_>>>()?;
            // Group 0 (the whole match) is group 0 in every variant.
            let map = names
                .iter()
                .enumerate()
                .map(|(i, n)| if i == 0 { Some(0) } else { n.as_deref().and_then(index) })
                .collect();
            variants.push((text, Variant { compiled, must, loops, map }));
        }
        let sources: Vec<&str> = variants.iter().map(|(t, _)| t.as_str()).collect();
        let set = meta::Regex::builder()
            .syntax(syntax::Config::new().unicode(false).utf8(false))
            .configure(meta::Config::new().match_kind(MatchKind::All).utf8_empty(false))
            .build_many(&sources)
            .ok()?;
        Some(Split { variants: variants.into_iter().map(|(_, v)| v).collect(), set })
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
        let mut matching = found.iter();
        let Some(only) = matching.next() else { return Answer::No };
        if matching.next().is_some() {
            return Answer::Unsure;
        }
        let v = &self.variants[only.as_usize()];
        if !v.compiled.spans(hay, scratch, own) {
            return Answer::Unsure;
        }
        let took_part = v.must.iter().all(|&g| own.get(g).copied().flatten().is_some());
        let loops_hold = v.loops.iter().all(|(g, text)| match own.get(*g).copied().flatten() {
            Some((s, e)) => {
                let window_end = (e + text.needle().len()).saturating_sub(1).min(hay.len()).max(s);
                text.find(&hay.as_bytes()[s..window_end]).is_none()
            }
            None => true,
        });
        if !took_part || !loops_hold {
            return Answer::Unsure;
        }
        spans.clear();
        spans.extend(v.map.iter().map(|g| g.and_then(|g| own.get(g).copied().flatten())));
        Answer::Yes
    }
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

    #[test]
    fn variants_agree_with_fancy_or_defer_to_it() {
        let c = Compiled::new(FAILED, &[]).unwrap();
        assert!(c.is_fancy());
        let split = Split::new(FAILED, &c.group_names()).expect("rewritable");
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
        let mut decided = 0;
        for line in lines {
            let want = fancy_spans(FAILED, line);
            let mut spans = Vec::new();
            match split.run(line, &mut Scratch::default(), &mut spans, &mut Vec::new()) {
                Answer::No => assert_eq!(want, None, "{line}"),
                Answer::Yes => {
                    let want = want.unwrap_or_else(|| panic!("fancy does not match {line}"));
                    let named: Vec<usize> = c
                        .group_names()
                        .iter()
                        .enumerate()
                        .filter(|(_, n)| n.is_some())
                        .map(|(i, _)| i)
                        .collect();
                    for g in named {
                        assert_eq!(spans[g], want[g], "group {g} of {line}");
                    }
                }
                Answer::Unsure => decided -= 1,
            }
            decided += 1;
        }
        assert!(decided >= 5, "most lines are decided without fancy-regex ({decided})");
    }

    #[test]
    fn unsupported_shapes_are_left_to_fancy() {
        assert!(Split::new(r"(a)\1", &[]).is_none());
        assert!(Split::new(r"(?:(?P<c>a)(?(<c>)b|c))+", &[]).is_none());
        assert!(Split::new(r"(?:x(?:(?!ab).)*)+", &[]).is_none());
        assert!(Split::new(r"plain", &[]).is_none());
    }
}
