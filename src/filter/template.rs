//! Pattern templates: `<param>` substitution and tag expansion to regex syntax.
//!
//! A filter pattern is regex syntax plus `<…>` tags. Params are substituted
//! first, innermost first, so `<mdre-<mode>>` works as in fail2ban; a param
//! that refers back to itself is an error. Then the built-in tags become
//! named capture groups (`w0`, `w1`, …, numbered across the whole filter so
//! prefregex and failregex groups never clash), each with a `Role`.
//!
//! `<` is only read as a tag when it is followed by a name and `>` and is not
//! part of regex syntax (`(?P<name>`, `(?<name>`, `(?<=`, `(?<!`, `\k<name>`,
//! an escape, or a character class). Write `[<]` for a literal `<` before a word.

use std::collections::BTreeMap;

/// What a capture group produced by a tag means to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// An address (from `<HOST>`, `<ADDR>`, `<IP4>`, `<IP6>`, `<SUBNET>`).
    Addr,
    /// The `/prefix` of a `<SUBNET>`.
    Prefix,
    User,
    AltUser,
    Id,
    Mlfid,
    Content,
    NoFail,
    MlfForget,
    MlfGained,
    /// warden extension: counts only if nothing on the connection counted yet.
    MlfOnce,
}

/// Value tags that need a closing tag, and marker tags that may stand alone.
const VALUE_TAGS: [(&str, Role); 5] = [
    ("F-USER", Role::User),
    ("F-ALT_USER", Role::AltUser),
    ("F-ID", Role::Id),
    ("F-MLFID", Role::Mlfid),
    ("F-CONTENT", Role::Content),
];
const MARKER_TAGS: [(&str, Role); 4] = [
    ("F-NOFAIL", Role::NoFail),
    ("F-MLFFORGET", Role::MlfForget),
    ("F-MLFGAINED", Role::MlfGained),
    ("F-MLFONCE", Role::MlfOnce),
];

/// The tags a pattern may use, for error messages.
pub(crate) const VALID_TAGS: &str = "<HOST>, <ADDR>, <IP4>, <IP6>, <SUBNET>, <F-USER>…</F-USER>, \
<F-ALT_USER>…</F-ALT_USER>, <F-ID>…</F-ID>, <F-MLFID>…</F-MLFID>, <F-CONTENT>…</F-CONTENT>, \
<F-NOFAIL>, <F-MLFFORGET>, <F-MLFGAINED>, <F-MLFONCE>";

const IP4: &str = r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}";
// Loose on purpose (std's parser validates afterwards); the v4 tail comes
// first so `::ffff:192.0.2.1` is not cut at `192`.
const IP6: &str = r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?";

/// Longest pattern accepted after substitution; guards against params that
/// double in size at each level.
const MAX_EXPANDED_LEN: usize = 64 * 1024;
const MAX_ROUNDS: usize = 64;

/// A pattern turned into regex syntax.
#[derive(Debug, Clone)]
pub(crate) struct Expanded {
    pub regex: String,
    /// Group name and what it means, in order of appearance.
    pub groups: Vec<(String, Role)>,
    /// Byte range in `regex` of what `<F-CONTENT>` wraps, without the group.
    pub content: Option<(usize, usize)>,
}

impl Expanded {
    pub fn has(&self, role: Role) -> bool {
        self.groups.iter().any(|(_, r)| *r == role)
    }
}

/// A `<name>` candidate: byte range of the whole tag and the name inside.
struct TagAt<'a> {
    start: usize,
    end: usize,
    name: &'a str,
}

/// Finds `<name>` and `</name>` tags outside regex syntax that uses `<`.
fn find_tags(text: &str) -> Vec<TagAt<'_>> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut class_depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                i += 2;
                continue;
            }
            b'[' => i = enter_class(b, i, &mut class_depth),
            b']' if class_depth > 0 => class_depth -= 1,
            b'<' if class_depth == 0 => {
                let before = &text[..i];
                let syntax = before.ends_with("(?P") || before.ends_with("(?") || before.ends_with("\\k");
                if !syntax {
                    let rest = &b[i + 1..];
                    let slash = usize::from(rest.first() == Some(&b'/'));
                    let len = rest[slash..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_' || **c == b'-')
                        .count();
                    if len > 0 && rest.get(slash + len) == Some(&b'>') {
                        let end = i + 1 + slash + len + 1;
                        out.push(TagAt { start: i, end, name: &text[i + 1..end - 1] });
                        i = end;
                        continue;
                    }
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// At the `[` at `i`: enters a character class and returns the index of its
/// last opening byte, stepping over a `^` and, in an outermost class, a
/// leading `]`, which are literal there (`[]…]`, `[^]…]`).
fn enter_class(b: &[u8], mut i: usize, class_depth: &mut usize) -> usize {
    *class_depth += 1;
    if b.get(i + 1) == Some(&b'^') {
        i += 1;
    }
    if *class_depth == 1 && b.get(i + 1) == Some(&b']') {
        i += 1;
    }
    i
}

/// Substitutes declared params, innermost first and recursively.
pub(crate) fn substitute_params(text: &str, params: &BTreeMap<String, String>) -> Result<String, String> {
    substitute(text, params, &mut Vec::new())
}

fn substitute(
    text: &str,
    params: &BTreeMap<String, String>,
    stack: &mut Vec<String>,
) -> Result<String, String> {
    let mut text = text.to_string();
    for _ in 0..MAX_ROUNDS {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut changed = false;
        for tag in find_tags(&text) {
            let Some(value) = params.get(tag.name) else { continue };
            if stack.iter().any(|s| s == tag.name) {
                let mut chain = stack.clone();
                chain.push(tag.name.to_string());
                return Err(format!("params refer to each other in a loop: {}", chain.join(" -> ")));
            }
            stack.push(tag.name.to_string());
            let value = substitute(value, params, stack)?;
            stack.pop();
            out.push_str(&text[last..tag.start]);
            out.push_str(&value);
            last = tag.end;
            changed = true;
        }
        out.push_str(&text[last..]);
        if out.len() > MAX_EXPANDED_LEN {
            return Err(format!("pattern is longer than {MAX_EXPANDED_LEN} bytes after param substitution"));
        }
        if !changed {
            return Ok(out);
        }
        text = out;
    }
    Err(format!("params nest more than {MAX_ROUNDS} levels deep"))
}

/// Expands built-in tags into named groups; `next_group` numbers them.
/// `params` only serves the error message for an unknown tag.
pub(crate) fn expand_tags(
    text: &str,
    next_group: &mut usize,
    params: &BTreeMap<String, String>,
) -> Result<Expanded, String> {
    let mut regex = String::with_capacity(text.len() * 2);
    let mut groups = Vec::new();
    let mut open: Vec<&str> = Vec::new();
    let mut content_start = None;
    let mut content = None;
    let mut last = 0;
    let tags = find_tags(text);
    for (k, tag) in tags.iter().enumerate() {
        regex.push_str(&text[last..tag.start]);
        last = tag.end;
        let mut group = |role: Role, groups: &mut Vec<(String, Role)>| {
            let name = format!("w{}", *next_group);
            *next_group += 1;
            groups.push((name.clone(), role));
            name
        };
        match tag.name {
            "HOST" | "ADDR" => {
                let (a, b) = (group(Role::Addr, &mut groups), group(Role::Addr, &mut groups));
                regex.push_str(&format!(r"(?:\[(?P<{a}>{IP6})\]|(?P<{b}>{IP4}|{IP6}))"));
            }
            "IP4" => {
                let a = group(Role::Addr, &mut groups);
                regex.push_str(&format!("(?P<{a}>{IP4})"));
            }
            "IP6" => {
                let (a, b) = (group(Role::Addr, &mut groups), group(Role::Addr, &mut groups));
                regex.push_str(&format!(r"(?:\[(?P<{a}>{IP6})\]|(?P<{b}>{IP6}))"));
            }
            "SUBNET" => {
                let (a, b) = (group(Role::Addr, &mut groups), group(Role::Addr, &mut groups));
                let p = group(Role::Prefix, &mut groups);
                regex.push_str(&format!(
                    r"(?:\[(?P<{a}>{IP6})\]|(?P<{b}>{IP4}|{IP6}))(?:/(?P<{p}>[0-9]{{1,3}}))?"
                ));
            }
            name if name.starts_with("/F-") => {
                let inner = &name[1..];
                match open.pop() {
                    Some(o) if o == inner => {}
                    Some(o) => return Err(format!("<{name}> closes <{inner}> but <{o}> is the open tag")),
                    None => return Err(format!("<{name}> has no matching <{inner}>")),
                }
                if inner == "F-CONTENT" {
                    content = content_start.map(|s| (s, regex.len()));
                }
                regex.push(')');
            }
            name if name.starts_with("F-") => {
                let closed = tags[k + 1..].iter().any(|t| t.name.strip_prefix('/') == Some(name));
                if let Some((_, role)) = MARKER_TAGS.iter().find(|(n, _)| *n == name) {
                    let g = group(*role, &mut groups);
                    if closed {
                        regex.push_str(&format!("(?P<{g}>"));
                        open.push(name);
                    } else {
                        regex.push_str(&format!("(?P<{g}>)"));
                    }
                } else if let Some((_, role)) = VALUE_TAGS.iter().find(|(n, _)| *n == name) {
                    if !closed {
                        return Err(format!("<{name}> needs a closing </{name}>"));
                    }
                    if *role == Role::Content {
                        if content_start.is_some() {
                            return Err("<F-CONTENT> may appear only once".into());
                        }
                        let g = group(*role, &mut groups);
                        regex.push_str(&format!("(?P<{g}>"));
                        content_start = Some(regex.len());
                    } else {
                        let g = group(*role, &mut groups);
                        regex.push_str(&format!("(?P<{g}>"));
                    }
                    open.push(name);
                } else {
                    return Err(format!("unknown tag <{name}>: valid tags are {VALID_TAGS}"));
                }
            }
            name => {
                let declared: Vec<&str> = params.keys().map(String::as_str).collect();
                let declared = if declared.is_empty() { "none".to_string() } else { declared.join(", ") };
                return Err(format!(
                    "unknown tag <{name}>: valid tags are {VALID_TAGS}, or a param of this filter (declared: {declared}); write [<] for a literal '<'"
                ));
            }
        }
    }
    regex.push_str(&text[last..]);
    if let Some(o) = open.pop() {
        return Err(format!("<{o}> is never closed (</{o}>)"));
    }
    Ok(Expanded { regex, groups, content })
}

/// Where a failregex may be anchored when it is spliced into a prefregex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Splice<'a> {
    pub body: &'a str,
    pub starts_anchored: bool,
    pub ends_anchored: bool,
}

/// Splits a leading `^` and trailing `$` off `regex`; `None` when any other
/// anchor (`^`, `$`, `\A`, `\z`) remains, as the pattern then cannot be
/// spliced into a prefregex without changing its meaning.
pub(crate) fn splice_anchors(regex: &str) -> Option<Splice<'_>> {
    let mut body = regex;
    let starts_anchored = body.starts_with('^');
    if starts_anchored {
        body = &body[1..];
    }
    let mut ends_anchored = false;
    if body.ends_with('$') {
        let backslashes = body[..body.len() - 1].bytes().rev().take_while(|&c| c == b'\\').count();
        if backslashes % 2 == 0 {
            body = &body[..body.len() - 1];
            ends_anchored = true;
        }
    }
    (!has_anchor(body)).then_some(Splice { body, starts_anchored, ends_anchored })
}

/// Whether `regex` holds an anchor outside character classes.
fn has_anchor(regex: &str) -> bool {
    let b = regex.as_bytes();
    let mut i = 0;
    let mut class_depth = 0usize;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                if class_depth == 0 && matches!(b.get(i + 1), Some(b'A' | b'z' | b'Z')) {
                    return true;
                }
                i += 2;
                continue;
            }
            b'[' => i = enter_class(b, i, &mut class_depth),
            b']' if class_depth > 0 => class_depth -= 1,
            b'^' | b'$' if class_depth == 0 => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// A regex-crate-compatible superset of a fancy-regex pattern, for the gate:
/// lookarounds are dropped, backreferences become `.*`, and conditionals
/// become alternations. `None` when the pattern uses something else.
pub(crate) fn relax_for_gate(regex: &str) -> Option<String> {
    let b = regex.as_bytes();
    let mut out = String::with_capacity(regex.len());
    let mut i = 0;
    let mut class_depth = 0usize;
    // Stack of open groups: true = a dropped lookaround (skip its content).
    let mut skip_depth: Option<usize> = None;
    let mut depth = 0usize;
    while i < b.len() {
        let c = b[i];
        let rest = &regex[i..];
        if c == b'\\' {
            let next = *b.get(i + 1)?;
            if class_depth == 0 && (next.is_ascii_digit() || next == b'k') {
                // \1 or \k<name>: a backreference.
                let mut j = i + 2;
                if next == b'k' {
                    j = i + 2 + regex[i + 2..].find('>')? + 1;
                } else {
                    while b.get(j).is_some_and(u8::is_ascii_digit) {
                        j += 1;
                    }
                }
                if skip_depth.is_none() {
                    out.push_str("(?s:.*)");
                }
                i = j;
                continue;
            }
            let len = regex[i + 1..].chars().next()?.len_utf8() + 1;
            if skip_depth.is_none() {
                out.push_str(&regex[i..i + len]);
            }
            i += len;
            continue;
        }
        if class_depth == 0 && c == b'(' {
            depth += 1;
            let look = ["(?=", "(?!", "(?<=", "(?<!"].iter().find(|p| rest.starts_with(**p));
            if let Some(p) = look {
                if skip_depth.is_none() {
                    skip_depth = Some(depth);
                }
                i += p.len();
                continue;
            }
            if rest.starts_with("(?P=") {
                let end = rest.find(')')?;
                depth -= 1;
                if skip_depth.is_none() {
                    out.push_str("(?s:.*)");
                }
                i += end + 1;
                continue;
            }
            if let Some(cond) = rest.strip_prefix("(?(") {
                // (?(cond)yes|no) -> (?:yes|no)
                let end = cond.find(')')? + 3;
                if skip_depth.is_none() {
                    out.push_str("(?:");
                }
                i += end + 1;
                continue;
            }
        } else if class_depth == 0 && c == b')' {
            if skip_depth == Some(depth) {
                skip_depth = None;
                depth = depth.saturating_sub(1);
                i += 1;
                continue;
            }
            depth = depth.saturating_sub(1);
        } else if c == b'[' {
            class_depth += 1;
        } else if c == b']' && class_depth > 0 {
            class_depth -= 1;
        }
        let len = rest.chars().next()?.len_utf8();
        if skip_depth.is_none() {
            out.push_str(&regex[i..i + len]);
        }
        i += len;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn params_substitute_recursively_and_innermost_first() {
        let p = params(&[
            ("mode", "aggressive"),
            ("re-aggressive", "x<tail>"),
            ("tail", "y"),
            ("pre", "(?:\\S+ )?"),
        ]);
        assert_eq!(substitute_params("^<pre>a <re-<mode>>", &p).unwrap(), "^(?:\\S+ )?a xy");
        // Regex syntax with '<' is left alone, tags are not params.
        let text = r"(?P<n>a)(?<m>b)(?<=c)(?<!d)\k<n>[<x>]<HOST>";
        assert_eq!(substitute_params(text, &p).unwrap(), text);
    }

    #[test]
    fn param_loops_are_detected() {
        let p = params(&[("a", "<b>"), ("b", "x<a>")]);
        let err = substitute_params("<a>", &p).unwrap_err();
        assert!(err.contains("a -> b -> a"), "{err}");
        let p = params(&[("a", "<<b>>"), ("b", "a")]);
        assert!(substitute_params("<a>", &p).unwrap_err().contains("loop"));
        let p = params(&[
            ("a", "<b><b><b><b>"),
            ("b", "<c><c><c><c>"),
            ("c", "<d><d><d><d>"),
            ("d", &"x".repeat(2000)),
        ]);
        assert!(substitute_params("<a>", &p).unwrap_err().contains("longer than"));
    }

    #[test]
    fn tags_become_numbered_groups_with_roles() {
        let mut n = 3;
        let e = expand_tags("^<F-MLFID>\\d+</F-MLFID> <F-CONTENT>.+</F-CONTENT>$", &mut n, &BTreeMap::new())
            .unwrap();
        assert_eq!(e.regex, "^(?P<w3>\\d+) (?P<w4>.+)$");
        assert_eq!(e.groups, vec![("w3".into(), Role::Mlfid), ("w4".into(), Role::Content)]);
        let (s, t) = e.content.unwrap();
        assert_eq!(&e.regex[s..t], ".+");
        let e =
            expand_tags("for <F-USER>\\S+</F-USER> from <HOST><F-NOFAIL>", &mut n, &BTreeMap::new()).unwrap();
        assert!(e.regex.starts_with("for (?P<w5>\\S+) from (?:\\[(?P<w6>"), "{}", e.regex);
        assert!(e.regex.ends_with("(?P<w8>)"), "standalone marker: {}", e.regex);
        assert!(e.has(Role::Addr) && e.has(Role::User) && e.has(Role::NoFail));
        assert_eq!(n, 9);
    }

    #[test]
    fn expanded_address_tags_match_what_they_should() {
        let mut n = 0;
        for (tag, ok, bad) in [
            (
                "<HOST>",
                &["192.0.2.1", "2001:db8::1", "[2001:db8::5]", "::ffff:192.0.2.1", "::1"][..],
                &["host.example"][..],
            ),
            ("<IP4>", &["203.0.113.9"], &["2001:db8::1"]),
            ("<IP6>", &["2001:db8:0:1::2"], &["192.0.2.1"]),
            ("<SUBNET>", &["198.51.100.0/24", "2001:db8::/32", "192.0.2.7"], &["x"]),
        ] {
            let e = expand_tags(&format!("^{tag}$"), &mut n, &BTreeMap::new()).unwrap();
            let re = regex::Regex::new(&e.regex).unwrap();
            for s in ok {
                assert!(re.is_match(s), "{tag} should match {s}");
            }
            for s in bad {
                assert!(!re.is_match(s), "{tag} should not match {s}");
            }
        }
    }

    #[test]
    fn tag_errors_say_what_is_valid() {
        let mut n = 0;
        let p = params(&[("mode", "normal")]);
        let err = expand_tags("<HOTS>", &mut n, &p).unwrap_err();
        assert!(
            err.contains("unknown tag <HOTS>") && err.contains("<HOST>") && err.contains("declared: mode"),
            "{err}"
        );
        assert!(expand_tags("<F-USERX>a</F-USERX>", &mut n, &p).unwrap_err().contains("valid tags"));
        assert!(expand_tags("<F-USER>a", &mut n, &p).unwrap_err().contains("closing"));
        assert!(expand_tags("<F-USER>a<F-ID>b</F-USER></F-ID>", &mut n, &p).unwrap_err().contains("closes"));
        assert!(expand_tags("a</F-ID>", &mut n, &p).unwrap_err().contains("no matching"));
    }

    #[test]
    fn anchors_are_split_for_splicing() {
        let s = splice_anchors("^Failed for x$").unwrap();
        assert_eq!((s.body, s.starts_anchored, s.ends_anchored), ("Failed for x", true, true));
        let s = splice_anchors(r"cost \$").unwrap();
        assert_eq!((s.body, s.ends_anchored), (r"cost \$", false));
        assert!(splice_anchors("^a|^b").is_none());
        assert!(splice_anchors(r"a\z").is_none());
        assert_eq!(splice_anchors("[^$]x").unwrap().body, "[^$]x");
    }

    #[test]
    fn fancy_patterns_relax_to_a_superset() {
        let relaxed = relax_for_gate(r"^a(?=b)b(?<!x)(?P<u>c)(?P=u)\1(?(u)d|e)$").unwrap();
        assert_eq!(relaxed, "^ab(?P<u>c)(?s:.*)(?s:.*)(?:d|e)$");
        assert!(regex::Regex::new(&relaxed).is_ok());
        assert_eq!(relax_for_gate(r"(?!(?:x))y[(?=]").unwrap(), "y[(?=]");
    }
}
