//! Writing the imported configuration as YAML text, with comments.
//!
//! The text is written by hand rather than serialised, because comments
//! carry where each jail came from. Scalars are quoted whenever YAML could
//! read them as anything but the intended text.

use std::fmt::Write as _;

use super::{Document, Field};

/// A YAML scalar for `text`: plain when that is safe, else double-quoted.
pub(super) fn scalar(text: &str) -> String {
    let safe_chars =
        text.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '@' | '+' | '-'));
    let starts_ok = text.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '/'));
    if safe_chars && starts_ok && !resolves_to_non_string(text) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether YAML 1.2's core schema reads plain `text` as a null, boolean
/// or number.
fn resolves_to_non_string(text: &str) -> bool {
    let lower = text.to_lowercase();
    matches!(lower.as_str(), "null" | "~" | "true" | "false" | ".inf" | "-.inf" | "+.inf" | ".nan")
        || text.parse::<f64>().is_ok()
        || text.strip_prefix("0x").is_some_and(|h| u64::from_str_radix(h, 16).is_ok())
        || text.strip_prefix("0o").is_some_and(|o| u64::from_str_radix(o, 8).is_ok())
}

/// [`scalar`] for a block-context value, where an inner `:` that no space
/// follows is plain text (`fail2ban:sshd`).
pub(super) fn block_scalar(text: &str) -> String {
    let colons_ok = !text.ends_with(':') && !text.contains(": ") && !text.starts_with(':');
    match text.split_once(':') {
        Some((head, tail)) if colons_ok => {
            let (h, t) = (scalar(head), scalar(&tail.replace(':', "")));
            if h == head && t == tail.replace(':', "") { text.to_string() } else { scalar(text) }
        }
        _ => scalar(text),
    }
}

/// `[a, b]` from already rendered items.
pub(super) fn flow_list(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// `{k: v, …}` from already rendered keys and values.
pub(super) fn flow_map(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// One comment line (newlines folded, so a value cannot end the comment).
fn comment(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

fn field(out: &mut String, indent: &str, f: &Field) {
    let trailer = f.comment.as_deref().map(|c| format!("  # {}", comment(c))).unwrap_or_default();
    if f.items.is_empty() {
        let _ = writeln!(out, "{indent}{}: {}{trailer}", f.key, f.value);
    } else {
        let _ = writeln!(out, "{indent}{}:{trailer}", f.key);
        for item in &f.items {
            let _ = writeln!(out, "{indent}  - {item}");
        }
    }
}

/// The whole document.
pub(super) fn render(doc: &Document) -> String {
    let mut out = String::new();
    for line in &doc.header {
        let _ = writeln!(out, "# {}", comment(line));
    }
    if let Some(dir) = &doc.filter_dir {
        let _ = writeln!(out, "fail2ban_filter_dir: {}", scalar(&dir.display().to_string()));
    }
    if !doc.defaults.is_empty() {
        out.push_str("defaults:\n");
        for f in &doc.defaults {
            for line in &f.notes {
                let _ = writeln!(out, "  # {}", comment(line));
            }
            field(&mut out, "  ", f);
        }
    }
    if doc.jails.is_empty() {
        out.push_str("jails: {}\n");
    } else {
        out.push_str("jails:\n");
    }
    for (i, jail) in doc.jails.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        for line in &jail.comments {
            let _ = writeln!(out, "  # {}", comment(line));
        }
        let _ = writeln!(out, "  {}:", scalar(&jail.name));
        for f in &jail.fields {
            for line in &f.notes {
                let _ = writeln!(out, "    # {}", comment(line));
            }
            field(&mut out, "    ", f);
        }
    }
    for line in &doc.footer {
        let _ = writeln!(out, "# {}", comment(line));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_are_quoted_when_yaml_would_misread_them() {
        for plain in ["sshd", "/var/log/auth.log", "10m", "127.0.0.0/8", "a-b_c"] {
            assert_eq!(scalar(plain), plain);
        }
        assert_eq!(scalar("fail2ban:sshd"), "\"fail2ban:sshd\"");
        assert_eq!(block_scalar("fail2ban:sshd"), "fail2ban:sshd");
        assert_eq!(block_scalar("fail2ban:a b"), "\"fail2ban:a b\"");
        assert_eq!(block_scalar("a: b"), "\"a: b\"");
        assert_eq!(scalar("::1"), "\"::1\"");
        assert_eq!(scalar("/var/log/*.log"), "\"/var/log/*.log\"");
        assert_eq!(scalar("true"), "\"true\"");
        assert_eq!(scalar("5"), "\"5\"");
        assert_eq!(scalar(""), "\"\"");
        assert_eq!(scalar("a \"b\"\\\n"), "\"a \\\"b\\\"\\\\\\n\"");
        assert_eq!(scalar("-x"), "\"-x\"");
    }
}
