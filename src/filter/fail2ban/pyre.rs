//! Python `re` syntax to what the `regex` crate and fancy-regex accept.
//!
//! fail2ban's patterns are Python regular expressions. Most of the syntax
//! is shared; what differs, and how it is carried over:
//! - `\<` and `\>` are literal characters in Python but word boundaries in
//!   Rust: written as plain `<` and `>`;
//! - `[` inside a class is literal in Python but opens a nested class in
//!   Rust; `&&`, `~~` and `--` are set operators in Rust classes: escaped;
//! - a `{` that does not start a valid repetition is literal in Python and
//!   an error in Rust: escaped; `{,n}` becomes `{0,n}`;
//! - `\Z` (end of text) becomes `\z`; `\b` inside a class is a backspace;
//! - `(?(name)yes|no)` becomes fancy-regex's `(?(<name>)yes|no)`;
//! - `(?#…)` comments are dropped; the flags `a`, `u` and `L` (Python's
//!   ASCII, Unicode and locale modes) are dropped, the others kept;
//! - fail2ban's own rewrite of `((?i)…)` and `(?:(?i)…)` into `(?i:…)`.
//!
//! Python's `$` also matches before a trailing newline; the engine never
//! hands a single-line pattern a trailing newline, so `$` carries over.

/// Translates a Python pattern; the error says what cannot be carried over.
pub fn translate(py: &str) -> Result<String, String> {
    let py = glob_flags_to_local(py);
    let chars: Vec<char> = py.chars().collect();
    let mut out = String::with_capacity(py.len() + 16);
    let mut i = 0;
    // Inside a class: the index just after its `[` (and `^`), to spot a
    // leading `]`, which is literal there.
    let mut class_start: Option<usize> = None;
    while i < chars.len() {
        let c = chars[i];
        if let Some(start) = class_start {
            match c {
                '\\' => {
                    let Some(&n) = chars.get(i + 1) else {
                        return Err("pattern ends with a lone backslash".into());
                    };
                    match n {
                        '<' | '>' => out.push(n),
                        'b' => out.push_str(r"\x08"),
                        _ => {
                            out.push('\\');
                            out.push(n);
                        }
                    }
                    i += 2;
                    continue;
                }
                ']' if i == start => out.push_str(r"\]"),
                ']' => {
                    out.push(']');
                    class_start = None;
                }
                '[' => out.push_str(r"\["),
                '&' | '~' | '-' if chars.get(i + 1) == Some(&c) => {
                    out.push('\\');
                    out.push(c);
                    out.push('\\');
                    out.push(c);
                    i += 2;
                    continue;
                }
                _ => out.push(c),
            }
            i += 1;
            continue;
        }
        match c {
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("pattern ends with a lone backslash".into());
                };
                match n {
                    '<' | '>' => out.push(n),
                    'Z' => out.push_str(r"\z"),
                    _ => {
                        out.push('\\');
                        out.push(n);
                    }
                }
                i += 2;
                continue;
            }
            '[' => {
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = Some(i);
                continue;
            }
            '{' => {
                match repetition(&chars[i..]) {
                    Some((text, len)) => {
                        out.push_str(&text);
                        i += len;
                    }
                    None => {
                        out.push_str(r"\{");
                        i += 1;
                    }
                }
                continue;
            }
            '}' => out.push_str(r"\}"),
            '(' if chars.get(i + 1) == Some(&'?') => {
                let rest: String = chars[i..].iter().take(64).collect();
                if rest.starts_with("(?#") {
                    // A comment: up to the next `)`.
                    let Some(end) = chars[i..].iter().position(|&c| c == ')') else {
                        return Err("unterminated (?#…) comment".into());
                    };
                    i += end + 1;
                    continue;
                }
                if let Some(cond) = rest.strip_prefix("(?(") {
                    let name: String = cond.chars().take_while(|&c| c != ')').collect();
                    let is_name = !name.is_empty()
                        && !name.starts_with(|c: char| c.is_ascii_digit())
                        && name.chars().all(|c| c.is_alphanumeric() || c == '_');
                    if is_name && cond[name.len()..].starts_with(')') {
                        out.push_str("(?(<");
                        out.push_str(&name);
                        out.push_str(">)");
                        i += 3 + name.chars().count() + 1;
                        continue;
                    }
                }
                if let Some(flags) = leading_flags(&rest) {
                    // `(?flags)` or `(?flags:`.
                    let kept: String = flags.chars().filter(|f| !matches!(f, 'a' | 'u' | 'L')).collect();
                    let close = rest.chars().nth(2 + flags.chars().count());
                    i += 2 + flags.chars().count() + 1;
                    match (close, kept.is_empty()) {
                        (Some(')'), true) => {}
                        (Some(')'), false) => out.push_str(&format!("(?{kept})")),
                        (_, true) => out.push_str("(?:"),
                        (_, false) => out.push_str(&format!("(?{kept}:")),
                    }
                    continue;
                }
                out.push('(');
            }
            _ => out.push(c),
        }
        i += 1;
    }
    if class_start.is_some() {
        return Err("a character class `[` is never closed".into());
    }
    Ok(out)
}

/// A pattern (Rust syntax) without its negative look-arounds whose body is
/// plain text, and those texts: `a(?!bad)b` is `ab` on any line that does
/// not contain `bad` anywhere (the look-around then always holds), which
/// lets a pattern that needs fancy-regex only for that run on the regex
/// crate for most lines. `None` when there is no such look-around.
pub fn without_literal_negative_lookarounds(rust: &str) -> Option<(String, Vec<String>)> {
    let chars: Vec<char> = rust.chars().collect();
    let mut out = String::with_capacity(rust.len());
    let mut literals = Vec::new();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            out.push(c);
            if let Some(&n) = chars.get(i + 1) {
                out.push(n);
            }
            i += 2;
            continue;
        }
        if in_class {
            in_class = c != ']';
            out.push(c);
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            // A `]` right after `[` or `[^` is literal.
            if chars.get(i + 1) == Some(&'^') {
                out.push('^');
                i += 1;
            }
            if chars.get(i + 1) == Some(&']') {
                out.push(']');
                i += 1;
            }
            i += 1;
            continue;
        }
        let head: String = chars[i..chars.len().min(i + 4)].iter().collect();
        let open = if head.starts_with("(?<!") {
            4
        } else if head.starts_with("(?!") {
            3
        } else {
            0
        };
        if open > 0
            && let Some((literal, len)) = literal_text(&chars[i + open..])
            && !literal.is_empty()
        {
            literals.push(literal);
            i += open + len + 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    (!literals.is_empty()).then_some((out, literals))
}

/// Plain text up to the `)` closing a look-around: (text, chars used
/// before the `)`); `None` when the body has regex syntax.
pub fn literal_text(chars: &[char]) -> Option<(String, usize)> {
    let mut text = String::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            ')' => return Some((text, i)),
            '\\' => {
                let n = *chars.get(i + 1)?;
                if n.is_ascii_alphanumeric() {
                    return None;
                }
                text.push(n);
                i += 2;
            }
            '.' | '^' | '$' | '|' | '?' | '*' | '+' | '(' | '[' | '{' | ']' | '}' => return None,
            _ => {
                text.push(c);
                i += 1;
            }
        }
    }
    None
}

/// The flags of a `(?flags)` or `(?flags:` group at the start of `rest`.
fn leading_flags(rest: &str) -> Option<&str> {
    let body = rest.strip_prefix("(?")?;
    let len = body.chars().take_while(|c| c.is_ascii_alphabetic() || *c == '-').count();
    if len == 0 {
        return None;
    }
    let next = body[len..].chars().next()?;
    matches!(next, ')' | ':').then(|| &body[..len])
}

/// A repetition `{n}`, `{n,}`, `{,m}` or `{n,m}` at the start of `chars`
/// (Python syntax), as Rust syntax and the number of chars it spans.
fn repetition(chars: &[char]) -> Option<(String, usize)> {
    let close = chars.iter().take(32).position(|&c| c == '}')?;
    let inner: String = chars[1..close].iter().collect();
    let (lo, hi) = match inner.split_once(',') {
        Some((lo, hi)) => (lo, Some(hi)),
        None => (inner.as_str(), None),
    };
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    if !digits(lo) || !hi.is_none_or(digits) || (lo.is_empty() && hi.is_none()) {
        return None;
    }
    let lo = if lo.is_empty() { "0" } else { lo };
    let text = match hi {
        None => format!("{{{lo}}}"),
        Some(hi) => format!("{{{lo},{hi}}}"),
    };
    Some((text, close + 1))
}

/// fail2ban's `R_GLOB2LOCFLAGS`: `((?i)x)` and `(?:(?i)x)` become `(?i:x)`.
fn glob_flags_to_local(py: &str) -> String {
    let mut out = String::with_capacity(py.len());
    let mut rest = py;
    while let Some(p) = rest.find('(') {
        let escaped = rest[..p].chars().rev().take_while(|&c| c == '\\').count() % 2 == 1;
        let after = &rest[p + 1..];
        let inner = after.strip_prefix("?:").unwrap_or(after);
        if !escaped
            && let Some(flags_body) = inner.strip_prefix("(?")
            && let Some(n) = flags_body.find(')')
            && n > 0
            && flags_body[..n].chars().all(|c| c.is_ascii_lowercase())
        {
            out.push_str(&rest[..p]);
            out.push_str("(?");
            out.push_str(&flags_body[..n]);
            out.push(':');
            rest = &flags_body[n + 1..];
            continue;
        }
        out.push_str(&rest[..=p]);
        rest = &rest[p + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(py: &str) -> String {
        translate(py).unwrap_or_else(|e| panic!("{py}: {e}"))
    }

    #[test]
    fn python_only_syntax_is_carried_over() {
        assert_eq!(t(r"\<x\>"), "<x>");
        assert_eq!(t(r"[\<[a]"), r"[<\[a]");
        assert_eq!(t(r"[]a][^]b]"), r"[\]a][^\]b]");
        assert_eq!(t(r"a{,3}b{2}c{1,}d{"), r"a{0,3}b{2}c{1,}d\{");
        assert_eq!(t(r"({{(?:\d+,){3}\d+},\d+})"), r"(\{\{(?:\d+,){3}\d+\},\d+\})");
        assert_eq!(t(r"x\Z"), r"x\z");
        assert_eq!(t(r"(?P<c>a)?(?(c)b|d)(?(1)e)"), r"(?P<c>a)?(?(<c>)b|d)(?(1)e)");
        assert_eq!(t(r"a(?#note)b"), "ab");
        assert_eq!(t(r"(?iu)x(?a:y)(?u)"), r"(?i)x(?:y)");
        assert_eq!(t(r"[a&&b~~c--d]"), r"[a\&\&b\~\~c\-\-d]");
        assert_eq!(t(r"[\b]"), r"[\x08]");
        assert!(translate(r"[abc").is_err());
        assert!(translate("ab\\").is_err());
    }

    #[test]
    fn literal_negative_lookarounds_come_out() {
        let (plain, lits) =
            without_literal_negative_lookarounds(r"^a(?!Too many)[^(?!x)]b(?<!\.c)(?!\d)").unwrap();
        assert_eq!(plain, r"^a[^(?!x)]b(?!\d)");
        assert_eq!(lits, ["Too many", ".c"]);
        assert!(without_literal_negative_lookarounds(r"a(?=b)(?!c|d)").is_none());
    }

    #[test]
    fn global_flags_become_local() {
        assert_eq!(t(r"^((?i)abc)d"), r"^(?i:abc)d");
        assert_eq!(t(r"^(?:(?i)abc)d"), r"^(?i:abc)d");
        assert_eq!(t(r"\((?i)x"), r"\((?i)x");
    }

    #[test]
    fn translated_patterns_compile_and_agree() {
        for (py, hay, want) in [
            (r"^\<(?P<u>\w+)\>$", "<abc>", true),
            (r"a{,2}b", "aab", true),
            (r"\{x\}", "{x}", true),
            (r"[[]x", "[x", true),
            (r"end\Z", "the end", true),
        ] {
            let re = fancy_regex::Regex::new(&t(py)).unwrap();
            assert_eq!(re.is_match(hay).unwrap(), want, "{py}");
        }
    }
}
