//! fail2ban's `FilterReader`: the options of one filter as fail2ban's
//! client computes them before sending them to its server.
//!
//! 1. The jail's parameters (warden's `filter_params`, like `mode` or
//!    `logtype`) win over the file's options of the same name and are
//!    available to `%(name)s` interpolation.
//! 2. `[Definition]`'s `prefregex`, `failregex`, `ignoreregex`, `maxlines`,
//!    `datepattern`, `journalmatch` and `usedns` are read (interpolated).
//! 3. `[Init]`'s own options join the set (a parameter of the same name
//!    wins), each also as `known/<name>`.
//! 4. `<tag>` references between values are substituted recursively
//!    (`substituteRecursiveTags`): a tag names another value of the set, or
//!    any option of `[Definition]`/`[DEFAULT]` (`<lt_file/name>` reads
//!    section `lt_file`). Unknown tags (like `<HOST>`) are left for the
//!    regex stage.

use std::collections::BTreeMap;
use std::path::Path;

use super::ini::{Config, IniError, MissingIncludes, Vars};

/// A tag may be replaced this often within one value (fail2ban's
/// `MAX_TAG_REPLACE_COUNT`) before it counts as a loop.
const MAX_TAG_REPLACE_COUNT: usize = 25;

/// The options of `[Definition]` fail2ban sends to its server, in its order.
const CONFIG_OPTS: [&str; 7] =
    ["usedns", "prefregex", "ignoreregex", "failregex", "maxlines", "datepattern", "journalmatch"];

/// A filter's options after interpolation and tag substitution.
#[derive(Debug, Clone, Default)]
pub struct FilterOptions {
    pub prefregex: Option<String>,
    pub failregex: Vec<String>,
    pub ignoreregex: Vec<String>,
    pub maxlines: Option<String>,
    pub datepattern: Option<String>,
    pub journalmatch: Option<String>,
    pub usedns: Option<String>,
    /// Where each option was written (file, line), for messages.
    pub places: BTreeMap<String, (String, u64)>,
    /// The files read, in order.
    pub files: Vec<String>,
}

/// Errors while resolving options; each names the place.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Ini(#[from] IniError),
    #[error("{path}:{line}: [Definition] {option}: {message}")]
    Tags { path: String, line: u64, option: String, message: String },
}

/// Reads filter `name` from `dir` (fail2ban's `filter.d`) with `params`.
pub fn read(
    dir: &Path,
    name: &str,
    params: &BTreeMap<String, String>,
    missing: MissingIncludes,
) -> Result<FilterOptions, ReadError> {
    let config = Config::read(dir, name, missing)?;
    resolve(&config, params)
}

/// Applies fail2ban's option logic to an already merged configuration.
pub fn resolve(config: &Config, params: &BTreeMap<String, String>) -> Result<FilterOptions, ReadError> {
    let p_opts: Vars = params.iter().map(|(k, v)| (k.to_lowercase(), v.clone())).collect();
    let mut init: Vec<(String, String)> = p_opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut combined: Vec<(String, String)> = Vec::new();
    for opt in CONFIG_OPTS {
        if p_opts.contains_key(opt) {
            continue;
        }
        if let Some(v) = config.get("Definition", opt, &p_opts)? {
            combined.push((opt.to_string(), v));
        }
    }
    if config.has_section("Init") {
        for opt in config.own_options("Init") {
            let value = config.get("Init", &opt, &Vars::new())?.unwrap_or_default();
            if !opt.starts_with("known/") {
                set(&mut init, format!("known/{opt}"), value.clone());
            }
            if !init.iter().any(|(k, _)| *k == opt) {
                init.push((opt, value));
            }
        }
    }
    for (k, v) in init {
        set(&mut combined, k, v);
    }
    let ignore: Vec<String> = combined
        .iter()
        .filter_map(|(k, _)| k.split_once('?').map(|(base, _)| base.to_string()))
        .filter(|base| !base.is_empty() && base.chars().all(|c| c.is_alphanumeric() || c == '_'))
        .collect();
    let mut cache: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut lookup = |tag: &str| -> Result<Option<String>, IniError> {
        if let Some(v) = cache.get(tag) {
            return Ok(v.clone());
        }
        let v = config.get_ex("Definition", tag, &p_opts)?;
        cache.insert(tag.to_string(), v.clone());
        Ok(v)
    };
    let resolved = substitute_recursive(combined, &ignore, &mut lookup).map_err(|(option, message)| {
        let (path, line) = config.place("Definition", &option);
        ReadError::Tags { path, line, option, message }
    })?;

    let mut out = FilterOptions {
        files: config.files.iter().map(|p| p.display().to_string()).collect(),
        ..FilterOptions::default()
    };
    for opt in CONFIG_OPTS.iter().chain(&["prefregex"]) {
        out.places.insert(opt.to_string(), config.place("Definition", opt));
    }
    for (k, v) in resolved {
        let split = |v: &str| v.split('\n').filter(|s| !s.is_empty()).map(String::from).collect::<Vec<_>>();
        match k.as_str() {
            "failregex" => out.failregex = split(&v),
            "ignoreregex" => out.ignoreregex = split(&v),
            "prefregex" => out.prefregex = Some(v).filter(|v| !v.is_empty()),
            "maxlines" => out.maxlines = Some(v),
            "datepattern" => out.datepattern = Some(v),
            "journalmatch" => out.journalmatch = Some(v),
            "usedns" => out.usedns = Some(v),
            _ => {}
        }
    }
    Ok(out)
}

fn set(list: &mut Vec<(String, String)>, key: String, value: String) {
    match list.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = value,
        None => list.push((key, value)),
    }
}

/// `TAG_CRE` (`<([^ <>]+)>`): the next tag at or after `from`, as (start,
/// end, name).
fn next_tag(value: &str, from: usize) -> Option<(usize, usize, &str)> {
    let b = value.as_bytes();
    let mut i = from;
    while let Some(off) = memchr::memchr(b'<', b.get(i..)?) {
        let start = i + off;
        let len = b[start + 1..].iter().take_while(|&&c| !matches!(c, b' ' | b'<' | b'>')).count();
        let end = start + 1 + len;
        if len > 0 && b.get(end) == Some(&b'>') {
            return Some((start, end + 1, &value[start + 1..end]));
        }
        i = start + 1;
    }
    None
}

type Lookup<'a> = dyn FnMut(&str) -> Result<Option<String>, IniError> + 'a;

/// fail2ban's `substituteRecursiveTags`. The error is (option, message).
fn substitute_recursive(
    mut tags: Vec<(String, String)>,
    ignore: &[String],
    lookup: &mut Lookup<'_>,
) -> Result<Vec<(String, String)>, (String, String)> {
    let mut done: Vec<String> = Vec::new();
    let mut rep_counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    loop {
        let mut again = false;
        for index in 0..tags.len() {
            let tag = tags[index].0.clone();
            if ignore.contains(&tag) || done.contains(&tag) {
                continue;
            }
            let original = tags[index].1.clone();
            let mut value = original.clone();
            let mut counts = rep_counts.get(&tag).cloned().unwrap_or_default();
            let mut at = next_tag(&value, 0).map(|(s, e, n)| (s, e, n.to_string()));
            while let Some((start, end, rtag)) = at {
                if ignore.contains(&rtag) {
                    at = next_tag(&value, end).map(|(s, e, n)| (s, e, n.to_string()));
                    continue;
                }
                if rtag == tag || counts.get(&rtag).copied().unwrap_or(1) > MAX_TAG_REPLACE_COUNT {
                    return Err((
                        tag.clone(),
                        format!(
                            "<{rtag}> refers back to itself (tags form a loop), so it cannot be resolved"
                        ),
                    ));
                }
                let repl = match tags.iter().find(|(k, _)| *k == rtag) {
                    Some((_, v)) => Some(v.clone()),
                    None => lookup(&rtag).map_err(|e| (tag.clone(), e.to_string()))?,
                };
                let Some(repl) = repl else {
                    at = next_tag(&value, end).map(|(s, e, n)| (s, e, n.to_string()));
                    continue;
                };
                value = value.replace(&format!("<{rtag}>"), &repl);
                if value.len() > 1 << 20 {
                    return Err((tag.clone(), "tags expand to more than 1 MiB".to_string()));
                }
                *counts.entry(rtag).or_insert(0) += 1;
                at = next_tag(&value, start).map(|(s, e, n)| (s, e, n.to_string()));
            }
            if value != original {
                if next_tag(&value, 0).is_some() {
                    rep_counts.insert(tag.clone(), counts);
                    again = true;
                }
                tags[index].1 = value.clone();
            }
            if !value.contains('<') {
                done.push(tag);
            }
        }
        if !again {
            return Ok(tags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::fail2ban::ini::parse;

    fn options(files: &[&str], params: &[(&str, &str)]) -> Result<FilterOptions, ReadError> {
        let mut c = Config::default();
        for (i, text) in files.iter().enumerate() {
            c.merge(&parse(text, &format!("f{i}.conf")).unwrap());
        }
        let params = params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        resolve(&c, &params)
    }

    #[test]
    fn params_init_and_nested_tags() {
        let conf = "[DEFAULT]\nlogtype = file\n_daemon = sshd\n[lt_file]\npre = F<_daemon>\n[lt_journal]\npre = J\n\
                    [Definition]\nprefregex = ^<lt_<logtype>/pre> <F-CONTENT>.+</F-CONTENT>$\n\
                    failregex = a <HOST>\n  <re-<mode>>\nre-normal = n <HOST>\nre-aggressive = g <HOST>\nmode = normal\n\
                    ignoreregex =\n[Init]\nmaxlines = 2\n";
        let o = options(&[conf], &[]).unwrap();
        assert_eq!(o.prefregex.as_deref(), Some("^Fsshd <F-CONTENT>.+</F-CONTENT>$"));
        assert_eq!(o.failregex, ["a <HOST>", "n <HOST>"]);
        assert!(o.ignoreregex.is_empty());
        assert_eq!(o.maxlines.as_deref(), Some("2"));
        let o = options(&[conf], &[("mode", "aggressive"), ("logtype", "journal")]).unwrap();
        assert_eq!(o.prefregex.as_deref(), Some("^J <F-CONTENT>.+</F-CONTENT>$"));
        assert_eq!(o.failregex, ["a <HOST>", "g <HOST>"]);
    }

    #[test]
    fn tag_loops_are_errors_naming_the_option() {
        let e =
            options(&["[Definition]\nfailregex = <a>\na = x<b>\nb = <a>\n"], &[]).unwrap_err().to_string();
        assert!(e.contains("f0.conf:2") && e.contains("[Definition] failregex") && e.contains("loop"), "{e}");
    }

    #[test]
    fn known_values_of_overridden_options() {
        let o = options(
            &[
                "[Definition]\nfailregex = ^one <HOST>$\n",
                "[Definition]\nfailregex = %(known/failregex)s\n  ^two <HOST>$\n",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(o.failregex, ["^one <HOST>$", "^two <HOST>$"]);
    }
}
