//! fail2ban's jail configuration, read the way fail2ban's client reads it
//! (`JailsReader`/`JailReader`), plus the few facts about its actions and
//! filters that a migration needs (`ActionReader`, `FilterReader`).
//!
//! - [`JailFiles::read`]: `jail.conf`, `jail.d/*.conf`, `jail.local`,
//!   `jail.d/*.local` in that order (each with its `[INCLUDES]`, such as
//!   `before = paths-debian.conf`), merged; a later file's option replaces
//!   an earlier one, which stays reachable as `%(known/name)s`.
//! - [`JailFiles::get`]: one option of a jail as fail2ban computes it: the
//!   jail's section, then `[DEFAULT]`, interpolated (`%(name)s`,
//!   `%(__name__)s`, `%(known/name)s`, `%(default/name)s`,
//!   `%(section/name)s`), with where it was written.
//! - fail2ban's small parsers: [`split_with_options`] (an `action` value
//!   into actions), [`extract_options`] (`name[key=value, …]`),
//!   [`split_words`] (`ignoreip`), [`parse_bool`], [`str2seconds`]
//!   (`10m`, `1h 30m`, `1d12h`, `-1`).
//! - [`ActionFile`]: an `action.d` file's `[Init]` and `[Definition]`
//!   values under a jail's parameters (`chain="<known/chain>"` resolved).
//!
//! It lives beside the filter reader because it is the same file format
//! and reuses `ini`, which stays private here. Nothing in it knows warden's
//! configuration: `cli::import_fail2ban` maps what it reads onto warden's
//! jails, so `config` never depends on fail2ban and the layers stay
//! one-way (cli → config and filter → core).
//!
//! Not carried from fail2ban: the filter's options that fail2ban also
//! offers to a jail as `%(known/…)s` (jail files rarely use them; such a
//! reference is reported as undefined, naming the place).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use super::ini::{Config, IniError, MissingIncludes, Value, Vars};

/// The fail2ban version whose `%(fail2ban_version)s` the files see (it only
/// appears in actions' user agents, which an import does not carry).
const FAIL2BAN_VERSION: &str = "1.1.0";

/// Tags nest at most this deep when an action value is resolved.
const MAX_TAG_DEPTH: usize = 10;

/// Where an option was written.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Place {
    pub path: String,
    /// 1-based; 0 when the value was not read from a file.
    pub line: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 { f.write_str(&self.path) } else { write!(f, "{}:{}", self.path, self.line) }
    }
}

/// A problem in fail2ban's configuration; the message names the file, the
/// line, the section and the option.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JailsError {
    /// A file could not be read or parsed, or a value not interpolated.
    #[error("{0}")]
    Config(String),
    /// A value fail2ban would not accept.
    #[error("{place}: [{section}] {option}: {message}")]
    Value { place: Place, section: String, option: String, message: String },
}

impl From<IniError> for JailsError {
    fn from(e: IniError) -> Self {
        JailsError::Config(e.to_string())
    }
}

/// One option's value after interpolation, and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub value: String,
    pub place: Place,
    /// Written in the jail's own section (not inherited from `[DEFAULT]`).
    pub own: bool,
}

/// fail2ban's merged jail configuration.
#[derive(Debug, Clone)]
pub struct JailFiles {
    config: Config,
}

impl JailFiles {
    /// Reads `dir/jail.conf` and its companions, as `fail2ban-client` does.
    pub fn read(dir: &Path) -> Result<JailFiles, JailsError> {
        let mut config = Config::read(dir, "jail", MissingIncludes::Error)?;
        // fail2ban's JailReader adds these before interpolating (replacing
        // any value a file gave them).
        let builtin = [
            ("fail2ban_version", FAIL2BAN_VERSION.to_string()),
            ("fail2ban_confpath", dir.display().to_string()),
        ];
        for (name, text) in builtin {
            let value = Value { text, path: "(fail2ban built-in)".into(), line: 0 };
            config.defaults.insert(name.to_string(), value);
        }
        Ok(JailFiles { config })
    }

    /// The files read, in the order they were merged.
    pub fn files(&self) -> &[PathBuf] {
        &self.config.files
    }

    /// Every jail: each section but `[INCLUDES]` (and `[DEFAULT]`), by
    /// name. Conditional sections (`[name?family=inet6]`) add options to
    /// their section in fail2ban; they are no jails of their own.
    pub fn jails(&self) -> Vec<String> {
        self.config
            .sections
            .keys()
            .filter(|s| *s != "INCLUDES" && !s.starts_with("KNOWN/") && !s.contains('?'))
            .cloned()
            .collect()
    }

    /// Option `option` of `jail` (or of `DEFAULT`), interpolated; `None`
    /// when neither the section nor `[DEFAULT]` sets it.
    pub fn get(&self, jail: &str, option: &str) -> Result<Option<Setting>, JailsError> {
        let Some(value) = self.config.get(jail, option, &Vars::new())? else { return Ok(None) };
        let (path, line) = self.config.place(jail, option);
        let own = jail == "DEFAULT"
            || self.config.sections.get(jail).is_some_and(|s| s.get(&option.to_lowercase()).is_some());
        Ok(Some(Setting { value, place: Place { path, line }, own }))
    }

    /// Whether `jail` is enabled (`enabled`, false when unset).
    pub fn enabled(&self, jail: &str) -> Result<bool, JailsError> {
        let Some(setting) = self.get(jail, "enabled")? else { return Ok(false) };
        parse_bool(&setting.value).ok_or_else(|| JailsError::Value {
            place: setting.place,
            section: jail.to_string(),
            option: "enabled".to_string(),
            message: format!(
                "{:?} is not a boolean: write true or false (yes/no, on/off and 1/0 work too)",
                setting.value
            ),
        })
    }

    /// The files that set options of `jail`'s own section, in merge order.
    pub fn section_files(&self, jail: &str) -> Vec<String> {
        let mut paths: Vec<&str> = Vec::new();
        for section in [jail.to_string(), format!("KNOWN/{jail}")] {
            if let Some(options) = self.config.sections.get(&section) {
                paths.extend(options.iter().map(|(_, v)| &*v.path));
            }
        }
        let order = |p: &str| self.config.files.iter().position(|f| f.as_os_str() == p);
        paths.sort_by_key(|p| order(p));
        paths.dedup();
        paths.into_iter().map(String::from).collect()
    }
}

/// Python configparser's booleans.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_lowercase().as_str() {
        "1" | "yes" | "true" | "on" => Some(true),
        "0" | "no" | "false" | "off" => Some(false),
        _ => None,
    }
}

/// fail2ban's `splitwords`: items separated by commas, spaces or newlines.
pub fn split_words(value: &str) -> Vec<&str> {
    value.split(|c: char| c == ',' || c.is_whitespace()).filter(|w| !w.is_empty()).collect()
}

/// fail2ban's `splitWithOptions`: an `action` value into its actions, each
/// `name` or `name[options]` (options may span lines and come in several
/// bracket groups: `name[a=1][b=2]`).
pub fn split_with_options(value: &str) -> Vec<&str> {
    let bytes = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'[' {
            i += 1;
        }
        let mut end = i;
        let mut j = i;
        loop {
            while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                j += 1;
            }
            if bytes.get(j) != Some(&b'[') {
                break;
            }
            match bracket_end(bytes, j) {
                Some(close) => {
                    end = close + 1;
                    j = end;
                }
                None => {
                    // Unbalanced: fail2ban takes the text up to whitespace.
                    while end < bytes.len() && !bytes[end].is_ascii_whitespace() {
                        end += 1;
                    }
                    break;
                }
            }
        }
        if end > start {
            out.push(&value[start..end]);
        }
        i = end.max(start + 1);
    }
    out
}

/// The index of the `]` closing the bracket group opened at `open`,
/// skipping quoted values.
fn bracket_end(bytes: &[u8], open: usize) -> Option<usize> {
    let mut i = open + 1;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let c = bytes[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == b'"' || c == b'\'' => quote = Some(c),
            None if c == b']' => return Some(i),
            None => {}
        }
        i += 1;
    }
    None
}

/// fail2ban's `extractOptions`: `name[key=value, key="quoted, value"]` into
/// the name and its options (several groups `[…][…]` join).
pub fn extract_options(spec: &str) -> Result<(String, BTreeMap<String, String>), String> {
    let spec = spec.trim();
    let (name, body) = match spec.find('[') {
        None => (spec, None),
        Some(open) => {
            let Some(close) = spec.rfind(']').filter(|&c| c > open) else {
                return Err(format!("{spec:?}: `[` without a closing `]`"));
            };
            if !spec[close + 1..].trim().is_empty() {
                return Err(format!("{spec:?}: text after the closing `]`"));
            }
            (&spec[..open], Some(&spec[open + 1..close]))
        }
    };
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("{spec:?}: no name before the options"));
    }
    let mut options = BTreeMap::new();
    let Some(body) = body else { return Ok((name.to_string(), options)) };
    let b = body.as_bytes();
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(&mut i);
        if i >= b.len() {
            break;
        }
        let key_start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'-' | b'.')) {
            i += 1;
        }
        let key = &body[key_start..i];
        if key.is_empty() || b.get(i) != Some(&b'=') {
            let rest: String = body[key_start..].chars().take(25).collect();
            return Err(format!("{spec:?}: expected key=value, found {rest:?}"));
        }
        i += 1;
        let value = match b.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let from = i + 1;
                let Some(len) = body[from..].find(q as char) else {
                    return Err(format!("{spec:?}: option {key} has an unclosed quote"));
                };
                i = from + len + 1;
                &body[from..from + len]
            }
            _ => {
                let from = i;
                while i < b.len() && b[i] != b',' && b[i] != b']' {
                    i += 1;
                }
                &body[from..i]
            }
        };
        options.insert(key.to_string(), value.trim().to_string());
        // Separator: `,`, `][` (another group) or the end.
        let before_sep = i;
        skip_ws(&mut i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(b']') => {
                i += 1;
                skip_ws(&mut i);
                if b.get(i) != Some(&b'[') {
                    return Err(format!("{spec:?}: expected `[` after `]`"));
                }
                i += 1;
            }
            Some(_) => {
                let rest: String = body[before_sep..].chars().take(25).collect();
                return Err(format!("{spec:?}: unexpected {rest:?} after option {key}"));
            }
        }
    }
    Ok((name.to_string(), options))
}

/// fail2ban's `str2seconds`: a time as seconds. Accepts numbers (seconds),
/// numbers with units (`s`, `m`, `h`, `d`, `w`, `mo`, `y` and their long
/// forms, any case), several parts (`1h 30m`, `1d12h`), `+ - * /` and
/// parentheses. A month is a year / 12 and a year 365.25 days, as in
/// fail2ban.
pub fn str2seconds(value: &str) -> Result<f64, String> {
    let tokens = tokenize(value)?;
    let mut p = Parser { tokens: &tokens, pos: 0 };
    let v = p.expr()?;
    if p.pos != tokens.len() {
        return Err("unexpected text after the time".into());
    }
    if !v.is_finite() {
        return Err("the time is not a finite number".into());
    }
    Ok(v)
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Num(f64),
    Unit(f64),
    Op(char),
}

fn unit_seconds(word: &str) -> Option<f64> {
    const YEAR: f64 = (365.0 * 3.0 + 366.0) * 86_400.0 / 4.0;
    let w = word.to_lowercase();
    let secs = match w.as_str() {
        "d" | "dd" | "da" | "day" | "days" => 86_400.0,
        "w" | "ww" | "we" | "wee" | "week" | "weeks" => 7.0 * 86_400.0,
        "mo" | "mon" | "month" | "months" => YEAR / 12.0,
        "y" | "yy" | "ye" | "yea" | "year" | "years" => YEAR,
        "s" | "ss" | "se" | "sec" | "second" | "seconds" => 1.0,
        "m" | "mm" | "mi" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hh" | "ho" | "hou" | "hour" | "hours" => 3600.0,
        _ => return None,
    };
    Some(secs)
}

fn tokenize(value: &str) -> Result<Vec<Token>, String> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || c == b'.' {
            let from = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                i += 1;
            }
            let n: f64 =
                value[from..i].parse().map_err(|_| format!("{:?} is not a number", &value[from..i]))?;
            out.push(Token::Num(n));
        } else if c.is_ascii_alphabetic() {
            let from = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let word = &value[from..i];
            if !matches!(out.last(), Some(Token::Num(_) | Token::Op(')'))) {
                return Err(format!("unit {word:?} must follow a number"));
            }
            let secs = unit_seconds(word).ok_or_else(|| format!("unknown unit {word:?}"))?;
            out.push(Token::Unit(secs));
        } else if matches!(c, b'+' | b'-' | b'*' | b'/' | b'(' | b')') {
            out.push(Token::Op(c as char));
            i += 1;
        } else {
            let ch = value[i..].chars().next().unwrap_or('?');
            return Err(format!("unexpected character {ch:?}"));
        }
    }
    if out.is_empty() {
        return Err("it is empty".into());
    }
    Ok(out)
}

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    /// Sums terms; adjacent terms (`1h 30m`) add, as fail2ban's rewrite does.
    fn expr(&mut self) -> Result<f64, String> {
        let mut v = self.term()?;
        loop {
            match self.peek() {
                Some(Token::Op('+')) => {
                    self.pos += 1;
                    v += self.term()?;
                }
                Some(Token::Op('-')) => {
                    self.pos += 1;
                    v -= self.term()?;
                }
                Some(Token::Num(_) | Token::Op('(')) => v += self.term()?,
                _ => return Ok(v),
            }
        }
    }

    fn term(&mut self) -> Result<f64, String> {
        let mut v = self.unary()?;
        loop {
            match self.peek() {
                Some(Token::Op('*')) => {
                    self.pos += 1;
                    v *= self.unary()?;
                }
                Some(Token::Op('/')) => {
                    self.pos += 1;
                    let d = self.unary()?;
                    if d == 0.0 {
                        return Err("division by zero".into());
                    }
                    v /= d;
                }
                _ => return Ok(v),
            }
        }
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(Token::Op('-')) => {
                self.pos += 1;
                Ok(-self.unary()?)
            }
            Some(Token::Op('+')) => {
                self.pos += 1;
                self.unary()
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, String> {
        let v = match self.peek() {
            Some(Token::Num(n)) => {
                let n = *n;
                self.pos += 1;
                n
            }
            Some(Token::Op('(')) => {
                self.pos += 1;
                let v = self.expr()?;
                if self.peek() != Some(&Token::Op(')')) {
                    return Err("`(` without a closing `)`".into());
                }
                self.pos += 1;
                v
            }
            Some(Token::Op(c)) => return Err(format!("unexpected `{c}`")),
            Some(Token::Unit(_)) | None => return Err("a number is missing".into()),
        };
        if let Some(Token::Unit(secs)) = self.peek() {
            let secs = *secs;
            self.pos += 1;
            return Ok(v * secs);
        }
        Ok(v)
    }
}

/// One action file of `action.d` under a jail's parameters, as fail2ban's
/// `ActionReader` combines them: a parameter wins over the file's `[Init]`
/// value, which wins over its `[Definition]` value.
#[derive(Debug, Clone)]
pub struct ActionFile {
    config: Config,
    params: BTreeMap<String, String>,
}

impl ActionFile {
    /// Reads `action_dir/<name>.conf` (with `.local` and includes); `None`
    /// when there is no such action.
    pub fn read(
        action_dir: &Path,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<Option<ActionFile>, JailsError> {
        if !super::exists(action_dir, name) {
            return Ok(None);
        }
        let config = Config::read(action_dir, name, MissingIncludes::Skip)?;
        Ok(Some(ActionFile { config, params: params.clone() }))
    }

    /// The files read, in the order they were merged.
    pub fn files(&self) -> &[PathBuf] {
        &self.config.files
    }

    /// `option` with its `<tag>`s resolved against the same values
    /// (`<known/name>` is the file's own value, before the parameters);
    /// tags naming nothing (like `<ip>`) stay.
    pub fn get(&self, option: &str) -> Result<Option<String>, JailsError> {
        self.resolve(option, 0)
    }

    fn resolve(&self, option: &str, depth: usize) -> Result<Option<String>, JailsError> {
        if depth > MAX_TAG_DEPTH {
            return Err(JailsError::Config(format!(
                "{}: <{option}>: tags nest more than {MAX_TAG_DEPTH} levels deep (they refer to each other in a loop?)",
                self.config.files.last().map(|f| f.display().to_string()).unwrap_or_default()
            )));
        }
        let (option, with_params) = match option.strip_prefix("known/") {
            Some(own) => (own, false),
            None => (option, true),
        };
        let raw = match self.params.get(option).filter(|_| with_params) {
            Some(v) => Some(v.clone()),
            None => match self.config.get("Init", option, &Vars::new())? {
                Some(v) => Some(v),
                None => self.config.get("Definition", option, &Vars::new())?,
            },
        };
        let Some(raw) = raw else { return Ok(None) };
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw.as_str();
        while let Some(open) = rest.find('<') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find(['>', '<', ' ']).filter(|&c| c > 0 && after.as_bytes()[c] == b'>');
            let Some(close) = close else {
                out.push('<');
                rest = after;
                continue;
            };
            let tag = &after[..close];
            match self.resolve(tag, depth + 1)? {
                Some(v) => out.push_str(&v),
                None => {
                    out.push('<');
                    out.push_str(tag);
                    out.push('>');
                }
            }
            rest = &after[close + 1..];
        }
        out.push_str(rest);
        Ok(Some(out))
    }
}

/// Whether filter `name` in `filter_dir` sets `logtype` in its own
/// `[Definition]` (then fail2ban does not derive it from the backend).
pub fn filter_sets_logtype(filter_dir: &Path, name: &str) -> bool {
    super::exists(filter_dir, name)
        && Config::read(filter_dir, name, MissingIncludes::Skip)
            .is_ok_and(|c| c.sections.get("Definition").is_some_and(|d| d.get("logtype").is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn files_merge_in_fail2bans_order_with_includes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(p, "paths-mine.conf", "[DEFAULT]\nweb_log = /srv/web/*.log\nsvc_backend = auto\n");
        write(
            p,
            "jail.conf",
            "[INCLUDES]\nbefore = paths-mine.conf\n[DEFAULT]\nbantime = 10m\nfilter = %(__name__)s[mode=%(mode)s]\nmode = normal\n[web?family=inet6]\nport = 8443\n\
             [web]\nlogpath = %(web_log)s\nport = http\n[other]\nenabled = yes\n",
        );
        write(p, "jail.d/10-web.conf", "[web]\nenabled = true\nport = %(known/port)s,8080\n");
        write(p, "jail.local", "[web]\nbantime = 1h\nmode = extra\n");
        write(p, "jail.d/10-web.local", "[web]\nmaxretry = 2\n");
        let jails = JailFiles::read(p).unwrap();
        let names: Vec<String> =
            jails.files().iter().map(|f| f.strip_prefix(p).unwrap().display().to_string()).collect();
        assert_eq!(
            names,
            ["paths-mine.conf", "jail.conf", "jail.d/10-web.conf", "jail.local", "jail.d/10-web.local"]
        );
        assert_eq!(jails.jails(), ["other", "web"]);
        assert!(jails.enabled("web").unwrap());
        assert!(jails.enabled("other").unwrap());
        let get = |jail: &str, option: &str| jails.get(jail, option).unwrap().map(|s| s.value);
        assert_eq!(get("web", "filter").as_deref(), Some("web[mode=extra]"));
        assert_eq!(get("other", "filter").as_deref(), Some("other[mode=normal]"));
        assert_eq!(get("web", "port").as_deref(), Some("http,8080"));
        assert_eq!(get("web", "maxretry").as_deref(), Some("2"));
        assert_eq!(get("web", "logpath").as_deref(), Some("/srv/web/*.log"));
        assert_eq!(get("web", "bantime").as_deref(), Some("1h"));
        assert_eq!(get("other", "bantime").as_deref(), Some("10m"));
        assert_eq!(get("web", "missing"), None);
        assert_eq!(get("web", "fail2ban_confpath"), Some(p.display().to_string()));
        let bantime = jails.get("web", "bantime").unwrap().unwrap();
        assert!(bantime.own && bantime.place.path.ends_with("jail.local") && bantime.place.line == 2);
        assert!(!jails.get("other", "bantime").unwrap().unwrap().own);
        let files = jails.section_files("web");
        assert!(
            files[0].ends_with("jail.conf") && files.last().unwrap().ends_with("10-web.local"),
            "{files:?}"
        );

        // A second `%(known/port)s` sees the first one's raw text: a loop,
        // as in fail2ban (its configparser gives up after 10 levels too).
        write(p, "jail.d/10-web.local", "[web]\nport = %(known/port)s,9090\n");
        let e = JailFiles::read(p).unwrap().get("web", "port").unwrap_err().to_string();
        assert!(e.contains("10-web.local:2: [web] port") && e.contains("loop"), "{e}");
    }

    #[test]
    fn errors_name_file_section_and_option() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        let e = JailFiles::read(p).unwrap_err().to_string();
        assert!(e.contains("jail.conf"), "{e}");
        write(p, "jail.conf", "[INCLUDES]\nbefore = paths-nothere.conf\n");
        let e = JailFiles::read(p).unwrap_err().to_string();
        assert!(e.contains("jail.conf:2") && e.contains("paths-nothere.conf"), "{e}");
        write(p, "jail.conf", "[a]\nenabled = maybe\nx = %(y)s\ny = %(x)s\n");
        let jails = JailFiles::read(p).unwrap();
        let e = jails.enabled("a").unwrap_err().to_string();
        assert!(e.contains("jail.conf:2: [a] enabled") && e.contains("true or false"), "{e}");
        let e = jails.get("a", "x").unwrap_err().to_string();
        assert!(e.contains("jail.conf:3: [a] x") && e.contains("loop"), "{e}");
    }

    #[test]
    fn actions_split_and_extract_like_fail2ban() {
        let value = "iptables-multiport[port=\"ssh,2222\", protocol=tcp, chain=\"<known/chain>\"]\n\
                     sendmail-whois[dest=\"root@x\", logpath=\"/a\n/b\"]\nabuseipdb\n\
                     iptables[blocktype=RETURN][type=allports,\n  actionstart_on_demand=false]";
        let parts = split_with_options(value);
        assert_eq!(parts.len(), 4, "{parts:?}");
        let (name, opts) = extract_options(parts[0]).unwrap();
        assert_eq!(name, "iptables-multiport");
        assert_eq!(opts["port"], "ssh,2222");
        assert_eq!(opts["chain"], "<known/chain>");
        assert_eq!(opts["protocol"], "tcp");
        let (_, opts) = extract_options(parts[1]).unwrap();
        assert_eq!(opts["logpath"], "/a\n/b");
        assert_eq!(extract_options(parts[2]).unwrap(), ("abuseipdb".to_string(), BTreeMap::new()));
        let (name, opts) = extract_options(parts[3]).unwrap();
        assert_eq!(name, "iptables");
        assert_eq!((opts["blocktype"].as_str(), opts["type"].as_str()), ("RETURN", "allports"));
        assert_eq!(opts["actionstart_on_demand"], "false");
        for bad in ["x[a=1", "x[=1]", "[a=1]", "x[a=\"1]", "x[a=1] y"] {
            assert!(extract_options(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_like_str2seconds() {
        let cases = [
            ("600", 600.0),
            ("10m", 600.0),
            ("1h 30m", 5400.0),
            ("1d12h", 129_600.0),
            ("2 weeks", 1_209_600.0),
            ("-1", -1.0),
            ("1.5h", 5400.0),
            ("1year-6mo", 15_778_800.0),
            ("5*60", 300.0),
            ("1 Hour", 3600.0),
        ];
        for (input, secs) in cases {
            assert_eq!(str2seconds(input), Ok(secs), "{input}");
        }
        for bad in ["", "ten", "10 parsecs", "m", "1/0", "(1", "5 %"] {
            assert!(str2seconds(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn words_and_booleans() {
        assert_eq!(
            split_words("127.0.0.1/8 ::1,10.0.0.0/8\n  host.example"),
            ["127.0.0.1/8", "::1", "10.0.0.0/8", "host.example"]
        );
        assert_eq!(parse_bool(" Yes"), Some(true));
        assert_eq!(parse_bool("off"), Some(false));
        assert_eq!(parse_bool("sometimes"), None);
    }

    #[test]
    fn action_values_with_params_and_known_tags() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(
            p,
            "base.conf",
            "[Definition]\ntype = oneport\nactionban = block <ip>\n[Init]\nchain = IN\nblocktype = REJECT --with <why>\nwhy = port-unreachable\n",
        );
        write(p, "multi.conf", "[INCLUDES]\nbefore = base.conf\n[Definition]\ntype = multiport\n");
        let params: BTreeMap<String, String> =
            [("chain".to_string(), "<known/chain>-X".to_string())].into_iter().collect();
        let a = ActionFile::read(p, "multi", &params).unwrap().unwrap();
        assert_eq!(a.get("type").unwrap().as_deref(), Some("multiport"));
        assert_eq!(a.get("chain").unwrap().as_deref(), Some("IN-X"));
        assert_eq!(a.get("blocktype").unwrap().as_deref(), Some("REJECT --with port-unreachable"));
        assert_eq!(a.get("actionban").unwrap().as_deref(), Some("block <ip>"));
        assert_eq!(a.get("port").unwrap(), None);
        assert!(ActionFile::read(p, "nothere", &params).unwrap().is_none());
        let looped: BTreeMap<String, String> =
            [("a".to_string(), "<b>".to_string()), ("b".to_string(), "<a>".to_string())]
                .into_iter()
                .collect();
        let a = ActionFile::read(p, "multi", &looped).unwrap().unwrap();
        assert!(a.get("a").unwrap_err().to_string().contains("loop"));
    }

    #[test]
    fn logtype_in_a_filters_own_definition() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path();
        write(p, "common.conf", "[DEFAULT]\nlogtype = file\n");
        write(p, "plain.conf", "[INCLUDES]\nbefore = common.conf\n[Definition]\nfailregex = x <HOST>\n");
        write(p, "fixed.conf", "[Definition]\nlogtype = short\nfailregex = x <HOST>\n");
        assert!(!filter_sets_logtype(p, "plain"));
        assert!(filter_sets_logtype(p, "fixed"));
        assert!(!filter_sets_logtype(p, "absent"));
    }
}
