//! fail2ban's configuration files, read the way fail2ban reads them: Python's
//! `configparser` rules plus fail2ban's `[INCLUDES]` and section-qualified
//! interpolation.
//!
//! - One file ([`parse`]): `[section]` headers, `name = value` or
//!   `name: value` options (names lowercased), values continued on deeper
//!   indented lines (blank lines inside a value kept, trailing ones dropped),
//!   `#`/`;` comment lines and ` ;` inline comments. A repeated section or
//!   option in one file is an error, as in Python's strict mode.
//! - A set of files ([`Config::read`]): `name.conf`, `name.d/*.conf`,
//!   `name.local`, `name.d/*.local`, each preceded by its `[INCLUDES]
//!   before` files and followed by its `after` files (recursively, a
//!   `.local` next to each), merged in that order. A later file's option
//!   replaces an earlier one; the replaced value stays reachable as
//!   `%(known/name)s` (kept in a `KNOWN/<section>` section).
//! - Interpolation ([`Config::get`]): `%(name)s` from the option's own
//!   section, `[DEFAULT]` or the caller's vars, `%(section/name)s` from
//!   another section, `%(default/name)s`, `%(known/name)s`; `%%` is a
//!   literal `%`; `%(__name__)s` is the section's own name (fail2ban's
//!   `jail.conf` builds `filter = %(__name__)s[…]` with it). At most ten
//!   levels deep.
//!
//! Nothing here knows about filters or jails; `reader.rs` applies
//! fail2ban's filter semantics on top, `jails.rs` its jail semantics.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Interpolation depth limit (Python's `MAX_INTERPOLATION_DEPTH`).
const MAX_DEPTH: usize = 10;

/// A problem reading or interpolating configuration, naming the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IniError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    #[error("{path}:{line}: {message}")]
    Syntax { path: String, line: u64, message: String },
    #[error("{path}:{line}: [{section}] {option}: {message}")]
    Value { path: String, line: u64, section: String, option: String, message: String },
    #[error("{path}:{line}: [INCLUDES] {option}: included file {include} does not exist")]
    MissingInclude { path: String, line: u64, option: String, include: String },
}

/// An option's raw value and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub text: String,
    pub path: std::sync::Arc<str>,
    pub line: u64,
}

/// Options in insertion order (Python dicts keep it; `[Init]` relies on it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options(Vec<(String, Value)>);

impl Options {
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// Sets `name`, keeping its position when it exists (like `dict.update`).
    pub fn insert(&mut self, name: String, value: Value) {
        match self.0.iter_mut().find(|(k, _)| *k == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// One parsed file: `[DEFAULT]` and the other sections, in file order.
#[derive(Debug, Clone, Default)]
pub struct File {
    pub defaults: Options,
    pub sections: Vec<(String, Options)>,
}

impl File {
    pub fn section(&self, name: &str) -> Option<&Options> {
        self.sections.iter().find(|(n, _)| n == name).map(|(_, o)| o)
    }
}

/// Parses one file's text with configparser's rules.
pub fn parse(text: &str, path: &str) -> Result<File, IniError> {
    let path: std::sync::Arc<str> = path.into();
    let syntax = |line: u64, message: String| IniError::Syntax { path: path.to_string(), line, message };
    let mut file = File::default();
    // Where option lines go: None before the first header, Some(None) in
    // [DEFAULT], Some(Some(i)) in section i.
    let mut current: Option<Option<usize>> = None;
    let mut option: Option<String> = None;
    let mut lines_of: Vec<String> = Vec::new();
    let mut value_line = 0u64;
    let mut indent_level = 0usize;
    let mut seen_sections: Vec<String> = Vec::new();
    let mut seen_options: Vec<(Option<usize>, String)> = Vec::new();

    // Stores the value being collected into its section.
    fn flush(
        file: &mut File,
        current: Option<Option<usize>>,
        option: &mut Option<String>,
        lines_of: &mut Vec<String>,
        path: &std::sync::Arc<str>,
        line: u64,
    ) {
        let (Some(target), Some(name)) = (current, option.take()) else { return };
        let text = lines_of.join("\n").trim_end().to_string();
        lines_of.clear();
        let value = Value { text, path: path.clone(), line };
        match target {
            None => file.defaults.insert(name, value),
            Some(i) => file.sections[i].1.insert(name, value),
        }
    }

    for (n, raw) in text.lines().enumerate() {
        let lineno = n as u64 + 1;
        let mut comment_start: Option<usize> = None;
        // Inline comments: `;` at the start or after whitespace.
        let mut from = 0;
        while let Some(off) = raw[from..].find(';') {
            let i = from + off;
            if i == 0 || raw[..i].chars().next_back().is_some_and(char::is_whitespace) {
                comment_start = Some(i);
                break;
            }
            from = i + 1;
        }
        let stripped = raw.trim();
        if stripped.starts_with('#') || stripped.starts_with(';') {
            comment_start = Some(0);
        }
        let value = match comment_start {
            Some(c) => raw[..c].trim(),
            None => stripped,
        };
        if value.is_empty() {
            if comment_start.is_none() && current.is_some() && option.is_some() {
                lines_of.push(String::new());
            }
            continue;
        }
        let indent = raw.find(|c: char| !c.is_whitespace()).unwrap_or(0);
        if current.is_some() && option.is_some() && indent > indent_level {
            lines_of.push(value.to_string());
            continue;
        }
        flush(&mut file, current, &mut option, &mut lines_of, &path, value_line);
        indent_level = indent;
        if let Some(header) = section_header(value) {
            if header == "DEFAULT" {
                current = Some(None);
            } else {
                if seen_sections.iter().any(|s| s == header) {
                    return Err(syntax(lineno, format!("section [{header}] appears twice in this file")));
                }
                seen_sections.push(header.to_string());
                let index = match file.sections.iter().position(|(s, _)| s == header) {
                    Some(i) => i,
                    None => {
                        file.sections.push((header.to_string(), Options::default()));
                        file.sections.len() - 1
                    }
                };
                current = Some(Some(index));
            }
            continue;
        }
        let Some(target) = current else {
            return Err(syntax(lineno, format!("{value:?} comes before any [section] header")));
        };
        let Some(delim) = value.find(['=', ':']) else {
            return Err(syntax(
                lineno,
                format!("{value:?} is neither a [section] header nor a `name = value` option"),
            ));
        };
        let name = value[..delim].trim_end().to_lowercase();
        if name.is_empty() {
            return Err(syntax(
                lineno,
                format!("{value:?} has no option name before `{}`", &value[delim..=delim]),
            ));
        }
        if seen_options.iter().any(|(s, o)| *s == target && *o == name) {
            return Err(syntax(lineno, format!("option {name:?} appears twice in this section")));
        }
        seen_options.push((target, name.clone()));
        lines_of.push(value[delim + 1..].trim().to_string());
        option = Some(name);
        value_line = lineno;
    }
    flush(&mut file, current, &mut option, &mut lines_of, &path, value_line);
    Ok(file)
}

/// `[name]` (very permissive, as in Python: anything between the first `[`
/// and the last `]`).
fn section_header(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// Several files merged, as fail2ban's `SafeConfigParserWithIncludes` does.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub defaults: Options,
    /// Every section, including `KNOWN/<section>` (values replaced by later files).
    pub sections: BTreeMap<String, Options>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// How a filter load treats an `[INCLUDES]` entry that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingIncludes {
    /// An error, except for `.local` files (optional by convention).
    Error,
    /// Skipped, as fail2ban does.
    Skip,
}

impl Config {
    /// Reads `dir/name.conf` with its `.d` directory, `.local` and includes.
    pub fn read(dir: &Path, name: &str, missing: MissingIncludes) -> Result<Config, IniError> {
        let base = dir.join(name);
        let mut files = vec![with_suffix(&base, ".conf")];
        let drop_in = with_suffix(&base, ".d");
        files.extend(sorted_glob(&drop_in, ".conf"));
        files.push(with_suffix(&base, ".local"));
        files.extend(sorted_glob(&drop_in, ".local"));
        let files: Vec<PathBuf> = files.into_iter().filter(|f| f.is_file()).collect();
        if files.is_empty() {
            return Err(IniError::Io {
                path: with_suffix(&base, ".conf").display().to_string(),
                message: "no such file".into(),
            });
        }
        let mut cache = BTreeMap::new();
        let mut order = Vec::new();
        for file in expand_local(&files) {
            includes(&file, &[], missing, &mut cache, &mut order)?;
        }
        let mut config = Config::default();
        for path in order {
            let Some(file) = cache.get(&path) else { continue };
            config.merge(file);
            config.files.push(path);
        }
        Ok(config)
    }

    /// Merges one file over what was read before.
    pub fn merge(&mut self, file: &File) {
        for (k, v) in file.defaults.iter() {
            self.defaults.insert(k.to_string(), v.clone());
        }
        for (name, options) in &file.sections {
            let merged = self.sections.entry(name.clone()).or_default();
            let replaced: Vec<(String, Value)> = options
                .iter()
                .filter_map(|(k, _)| merged.get(k).map(|old| (k.to_string(), old.clone())))
                .collect();
            for (k, v) in options.iter() {
                merged.insert(k.to_string(), v.clone());
            }
            if !replaced.is_empty() {
                let known = self.sections.entry(format!("KNOWN/{name}")).or_default();
                for (k, v) in replaced {
                    known.insert(k, v);
                }
            }
        }
    }

    pub fn has_section(&self, section: &str) -> bool {
        self.sections.contains_key(section)
    }

    /// The raw value of `option` in `section` (or `[DEFAULT]`).
    pub fn raw(&self, section: &str, option: &str) -> Option<&Value> {
        let option = option.to_lowercase();
        self.sections.get(section).and_then(|s| s.get(&option)).or_else(|| self.defaults.get(&option))
    }

    /// An option's value, interpolated. `vars` (lowercase names) win over the
    /// section and `[DEFAULT]`. `Ok(None)`: the section or option does not exist.
    pub fn get(&self, section: &str, option: &str, vars: &Vars) -> Result<Option<String>, IniError> {
        let option = option.to_lowercase();
        if section != "DEFAULT" && !self.sections.contains_key(section) {
            return Ok(None);
        }
        let (raw, place) = match vars.get(&option) {
            Some(v) => (v.clone(), None),
            None => match self.raw(section, &option) {
                Some(v) => (v.text.clone(), Some(v)),
                None => return Ok(None),
            },
        };
        let mut out = String::with_capacity(raw.len());
        let cx = Interp { config: self, section, option: &option, place, vars };
        cx.interpolate(&raw, &BTreeMap::new(), 1, &mut out)?;
        Ok(Some(out))
    }

    /// fail2ban's `get_ex`: `section/option` names another section
    /// (`known/option` tries the replaced value first, then the current one;
    /// `default/option` is `[DEFAULT]`); otherwise like [`Config::get`].
    pub fn get_ex(&self, section: &str, option: &str, vars: &Vars) -> Result<Option<String>, IniError> {
        if let Some((sec, opt)) = split_section_option(option) {
            let candidates: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec!["DEFAULT".to_string()],
                _ => vec![sec.to_string()],
            };
            for candidate in candidates {
                if let Some(v) = self.get(&candidate, opt, &Vars::new())? {
                    return Ok(Some(v));
                }
            }
        }
        self.get(section, option, vars)
    }

    /// Own option names of `section` (without `[DEFAULT]`'s), in order.
    pub fn own_options(&self, section: &str) -> Vec<String> {
        self.sections.get(section).map(|s| s.iter().map(|(k, _)| k.to_string()).collect()).unwrap_or_default()
    }

    /// Where `option` of `section` was written, for messages.
    pub fn place(&self, section: &str, option: &str) -> (String, u64) {
        match self.raw(section, option) {
            Some(v) => (v.path.to_string(), v.line),
            None => (self.files.last().map(|p| p.display().to_string()).unwrap_or_default(), 0),
        }
    }
}

/// Caller-supplied values (lowercase names), like Python's `vars=`.
pub type Vars = BTreeMap<String, String>;

/// `^([\w\-]+)/([^\s>]+)$`: a section-qualified option name.
fn split_section_option(name: &str) -> Option<(&str, &str)> {
    let (sec, opt) = name.split_once('/')?;
    let sec_ok = !sec.is_empty() && sec.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
    let opt_ok = !opt.is_empty() && !opt.chars().any(|c| c.is_whitespace() || c == '>');
    (sec_ok && opt_ok).then_some((sec, opt))
}

struct Interp<'a> {
    config: &'a Config,
    section: &'a str,
    option: &'a str,
    place: Option<&'a Value>,
    vars: &'a Vars,
}

impl Interp<'_> {
    fn error(&self, message: String) -> IniError {
        let (path, line) = match self.place {
            Some(v) => (v.path.to_string(), v.line),
            None => ("(parameters)".to_string(), 0),
        };
        IniError::Value {
            path,
            line,
            section: self.section.to_string(),
            option: self.option.to_string(),
            message,
        }
    }

    /// A `%(name)s` reference: `__name__`, then `extra` (section-qualified
    /// names mapped for this level), vars, the section and `[DEFAULT]`.
    fn lookup(&self, name: &str, extra: &BTreeMap<String, String>) -> Option<String> {
        // fail2ban's `BasicInterpolationWithName` sets it over everything else.
        if name == "__name__" {
            return Some(self.section.to_string());
        }
        if let Some(v) = extra.get(name) {
            return Some(v.clone());
        }
        if let Some(v) = self.vars.get(name) {
            return Some(v.clone());
        }
        self.config.raw(self.section, name).map(|v| v.text.clone())
    }

    /// fail2ban's `_map_section_options`: raw values for every
    /// `%(section/option)s` in `rest`.
    fn map_sections(&self, rest: &str, outer: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        let mut map = outer.clone();
        let mut from = 0;
        while let Some(off) = rest[from..].find("%(") {
            let start = from + off + 2;
            let Some(len) = rest[start..].find(")s") else { break };
            let whole = &rest[start..start + len];
            from = start + len + 2;
            let Some((sec, opt)) = whole.split_once('/') else { continue };
            let name_ok = !sec.is_empty() && sec.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-');
            if !name_ok || opt.is_empty() || opt.contains(')') || map.contains_key(whole) {
                continue;
            }
            if self.vars.contains_key(whole) || self.config.raw(self.section, whole).is_some() {
                continue;
            }
            let lower = sec.to_lowercase();
            let from_default = || self.config.defaults.get(opt).map(|v| v.text.clone());
            let value = match lower.as_str() {
                "default" => from_default(),
                "known" => self
                    .config
                    .sections
                    .get(&format!("KNOWN/{}", self.section))
                    .and_then(|s| s.get(opt))
                    .map(|v| v.text.clone())
                    .or_else(from_default),
                _ => match self.config.sections.get(sec) {
                    None => None,
                    Some(s) => s.get(opt).map(|v| v.text.clone()).or_else(from_default),
                },
            };
            if let Some(v) = value {
                map.insert(whole.to_string(), v);
            }
        }
        map
    }

    fn interpolate(
        &self,
        rest: &str,
        outer: &BTreeMap<String, String>,
        depth: usize,
        out: &mut String,
    ) -> Result<(), IniError> {
        if depth > MAX_DEPTH {
            return Err(self.error(format!(
                "interpolation nests more than {MAX_DEPTH} levels deep (values refer to each other in a loop?)"
            )));
        }
        let extra = if rest.contains("%(") && rest.contains('/') {
            self.map_sections(rest, outer)
        } else {
            outer.clone()
        };
        let mut rest = rest;
        while let Some(p) = rest.find('%') {
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            match rest.as_bytes().get(1) {
                Some(b'%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some(b'(') => {
                    let Some(close) = rest.find(")s").filter(|&c| c > 2 && !rest[2..c].contains(')')) else {
                        return Err(self.error(format!(
                            "bad interpolation reference {:?}: write %(name)s, or %% for a literal %",
                            clip(rest)
                        )));
                    };
                    let name = rest[2..close].to_lowercase();
                    rest = &rest[close + 2..];
                    let Some(value) = self.lookup(&name, &extra) else {
                        return Err(self.error(format!(
                            "%({name})s refers to an option that is not defined in [{}] or [DEFAULT]",
                            self.section
                        )));
                    };
                    if value.contains('%') {
                        self.interpolate(&value, &extra, depth + 1, out)?;
                    } else {
                        out.push_str(&value);
                    }
                }
                _ => {
                    return Err(self.error(format!(
                        "'%' must be followed by '%' or '(', found {:?} (write %% for a literal %)",
                        clip(rest)
                    )));
                }
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

fn clip(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

fn with_suffix(base: &Path, suffix: &str) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `dir/*<ext>`, sorted by name; nothing when `dir` does not exist.
fn sorted_glob(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let Ok(read) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = read
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(ext) && n.len() > ext.len())
        })
        .collect();
    out.sort();
    out
}

/// Each file followed by its `.local` sibling, when that exists and is not
/// listed already.
fn expand_local(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for f in files {
        out.push(f.clone());
        let local = f.with_extension("local");
        if !files.contains(&local) && local != *f && local.is_file() {
            out.push(local);
        }
    }
    out
}

/// Appends `path`'s `before` includes, `path` itself and its `after`
/// includes to `order` (parsing each file once into `cache`).
fn includes(
    path: &Path,
    seen: &[PathBuf],
    missing: MissingIncludes,
    cache: &mut BTreeMap<PathBuf, File>,
    order: &mut Vec<PathBuf>,
) -> Result<(), IniError> {
    if !cache.contains_key(path) {
        let text = std::fs::read_to_string(path)
            .map_err(|e| IniError::Io { path: path.display().to_string(), message: e.to_string() })?;
        let file = parse(&text, &path.display().to_string())?;
        cache.insert(path.to_path_buf(), file);
    }
    let Some(file) = cache.get(path) else { return Ok(()) };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut lists: [Vec<(PathBuf, u64, &'static str)>; 2] = [Vec::new(), Vec::new()];
    if let Some(section) = file.section("INCLUDES") {
        for (slot, option) in lists.iter_mut().zip(["before", "after"]) {
            if let Some(v) = section.get(option) {
                for entry in v.text.split('\n').filter(|e| !e.is_empty()) {
                    slot.push((dir.join(entry), v.line, option));
                }
            }
        }
    }
    let mut seen_here = seen.to_vec();
    seen_here.push(path.to_path_buf());
    let [before, after] = lists;
    let visit = |list: Vec<(PathBuf, u64, &'static str)>,
                 cache: &mut BTreeMap<PathBuf, File>,
                 order: &mut Vec<PathBuf>|
     -> Result<(), IniError> {
        for (include, line, option) in list {
            if seen.contains(&include) || include == path {
                continue;
            }
            if !include.is_file() {
                let optional = include.extension().is_some_and(|e| e == "local");
                if missing == MissingIncludes::Error && !optional {
                    return Err(IniError::MissingInclude {
                        path: path.display().to_string(),
                        line,
                        option: option.to_string(),
                        include: include.display().to_string(),
                    });
                }
                continue;
            }
            for f in expand_local(std::slice::from_ref(&include)) {
                includes(&f, &seen_here, missing, cache, order)?;
            }
        }
        Ok(())
    };
    visit(before, cache, order)?;
    order.push(path.to_path_buf());
    visit(after, cache, order)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(files: &[&str]) -> Config {
        let mut c = Config::default();
        for (i, text) in files.iter().enumerate() {
            c.merge(&parse(text, &format!("f{i}.conf")).unwrap());
        }
        c
    }

    #[test]
    fn values_comments_and_continuations() {
        let f = parse(
            "# comment\n[Definition]\nfailregex = ^a$\n            ^b$ ; inline\n# not part\n\n   ^c;d$\nx: 1\nEmpty =\n[DEFAULT]\nk = v\n",
            "t.conf",
        )
        .unwrap();
        let d = f.section("Definition").unwrap();
        assert_eq!(d.get("failregex").unwrap().text, "^a$\n^b$\n\n^c;d$");
        assert_eq!(d.get("failregex").unwrap().line, 3);
        assert_eq!(d.get("x").unwrap().text, "1");
        assert_eq!(d.get("empty").unwrap().text, "");
        assert_eq!(f.defaults.get("k").unwrap().text, "v");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("[a]\nx = 1\nx = 2\n", "t.conf").unwrap_err().to_string();
        assert!(err.contains("t.conf:3") && err.contains("twice"), "{err}");
        let err = parse("x = 1\n", "t.conf").unwrap_err().to_string();
        assert!(err.contains("t.conf:1") && err.contains("before any [section]"), "{err}");
        let err = parse("[a]\njust words\n", "t.conf").unwrap_err().to_string();
        assert!(err.contains("t.conf:2"), "{err}");
    }

    #[test]
    fn interpolation_with_sections_known_and_vars() {
        let c = config(&[
            "[DEFAULT]\nd = D\n[Definition]\na = x%(d)s\nb = %(a)s-%(lt_file/p)s-%%\nf = one\n[lt_file]\np = P%(d)s\n",
            "[Definition]\nf = %(known/f)s two\n",
        ]);
        let none = Vars::new();
        assert_eq!(c.get("Definition", "b", &none).unwrap().unwrap(), "xD-PD-%");
        assert_eq!(c.get("Definition", "f", &none).unwrap().unwrap(), "one two");
        let vars: Vars = [("d".to_string(), "V".to_string())].into();
        assert_eq!(c.get("Definition", "a", &vars).unwrap().unwrap(), "xV");
        assert_eq!(c.get("Definition", "missing", &none).unwrap(), None);
        assert_eq!(c.get("Nope", "a", &none).unwrap(), None);
        assert_eq!(c.get_ex("Definition", "lt_file/p", &none).unwrap().unwrap(), "PD");
        assert_eq!(c.get_ex("Definition", "known/f", &none).unwrap().unwrap(), "one");
    }

    #[test]
    fn name_is_the_section_being_read() {
        let c = config(&[
            "[DEFAULT]\nfilter = %(__name__)s[mode=%(mode)s]\nmode = normal\n[web]\nmode = extra\n[ssh]\n",
        ]);
        let none = Vars::new();
        assert_eq!(c.get("web", "filter", &none).unwrap().unwrap(), "web[mode=extra]");
        assert_eq!(c.get("ssh", "filter", &none).unwrap().unwrap(), "ssh[mode=normal]");
    }

    #[test]
    fn interpolation_errors_say_where() {
        let c = config(&["[Definition]\na = %(a)s\nb = %(zz)s\nc = 5%\n"]);
        let none = Vars::new();
        let e = c.get("Definition", "a", &none).unwrap_err().to_string();
        assert!(e.contains("f0.conf:2") && e.contains("[Definition] a") && e.contains("levels"), "{e}");
        let e = c.get("Definition", "b", &none).unwrap_err().to_string();
        assert!(e.contains("%(zz)s"), "{e}");
        let e = c.get("Definition", "c", &none).unwrap_err().to_string();
        assert!(e.contains("%%"), "{e}");
    }

    #[test]
    fn includes_locals_and_drop_ins_merge_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        std::fs::write(p.join("common.conf"), "[INCLUDES]\nafter = common.local\n[DEFAULT]\nx = common\n")
            .unwrap();
        std::fs::write(p.join("f.conf"), "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = a\n")
            .unwrap();
        std::fs::write(p.join("f.local"), "[Definition]\nfailregex = %(known/failregex)s\n  b\n").unwrap();
        std::fs::create_dir(p.join("f.d")).unwrap();
        std::fs::write(p.join("f.d/z.conf"), "[DEFAULT]\nx = dropin\n").unwrap();
        let c = Config::read(p, "f", MissingIncludes::Error).unwrap();
        let names: Vec<String> =
            c.files.iter().map(|f| f.strip_prefix(p).unwrap().display().to_string()).collect();
        assert_eq!(names, ["common.conf", "f.conf", "f.d/z.conf", "f.local"]);
        assert_eq!(c.get("Definition", "failregex", &Vars::new()).unwrap().unwrap(), "a\nb");
        assert_eq!(c.get("Definition", "x", &Vars::new()).unwrap().unwrap(), "dropin");

        std::fs::write(p.join("g.conf"), "[INCLUDES]\nbefore = nothere.conf\n").unwrap();
        let e = Config::read(p, "g", MissingIncludes::Error).unwrap_err().to_string();
        assert!(e.contains("g.conf:2") && e.contains("nothere.conf"), "{e}");
        assert!(Config::read(p, "g", MissingIncludes::Skip).is_ok());
        let e = Config::read(p, "absent", MissingIncludes::Error).unwrap_err().to_string();
        assert!(e.contains("absent.conf"), "{e}");
    }
}
